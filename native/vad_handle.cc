#include "vad_handle.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "addon_data.h"
#include "binding_util.h"
#include "job.h"
#include "process_cache.h"
#include "task.h"
#include "task_metrics.h"

namespace speech {
namespace {

ProcessCache<const SileroVad>& LoadedVads() {
  static ProcessCache<const SileroVad> cache;
  return cache;
}

class LoadVadJob final : public Job {
 public:
  explicit LoadVadJob(std::string path) : path_(std::move(path)) {}
  void Execute() override {
    vad_ = LoadedVads().GetOrLoad(path_, [this] { return std::make_shared<const SileroVad>(path_); });
  }
  Napi::Value Result(Napi::Env env) override {
    return GetAddonData(env).vad.New({Napi::External<std::shared_ptr<const SileroVad>>::New(env, &vad_)});
  }

 private:
  std::string path_;
  std::shared_ptr<const SileroVad> vad_;
};

class ProcessJob final : public Job {
 public:
  ProcessJob(std::shared_ptr<const SileroVad> vad, std::vector<VadChannelHandle*> handles,
             std::vector<std::pair<const float*, std::size_t>> audio)
      : vad_(std::move(vad)), handles_(std::move(handles)), audio_(std::move(audio)) {
    for (VadChannelHandle* h : handles_) {
      h->busy = true;
      channels_.push_back(&h->channel());
    }
  }

  void Execute() override {
    if (channels_.size() == 1) {
      try {
        ProcessChannels(*vad_, channels_, audio_, probs_);
      } catch (...) {
        channels_[0]->Reset();  // a half-done step leaves the recurrent state inconsistent
        throw;
      }
      return;
    }
    // A failed batch is re-run channel by channel from these copies (a few KB), so one channel's
    // failure fails that channel's stream alone, not every stream in the batch.
    const std::vector<VadChannel> before = [this] {
      std::vector<VadChannel> copies;
      copies.reserve(channels_.size());
      for (const VadChannel* c : channels_) copies.push_back(*c);
      return copies;
    }();
    try {
      ProcessChannels(*vad_, channels_, audio_, probs_);
      return;
    } catch (...) {
      // Which channel failed is unknown: each is re-run alone below.
    }
    probs_.assign(channels_.size(), {});
    errors_.resize(channels_.size());
    for (std::size_t i = 0; i < channels_.size(); ++i) {
      *channels_[i] = before[i];
      std::vector<std::vector<float>> one(1);
      try {
        ProcessChannels(*vad_, {channels_[i]}, {audio_[i]}, one);
        probs_[i] = std::move(one[0]);
        continue;
      } catch (const JobError& e) {
        errors_[i] = {e.code(), e.what()};
        TaskMetrics::Get().Failed(Subsystem::kVad);
      } catch (const std::exception& e) {
        errors_[i] = {"NATIVE_PANIC", PanicMessage(Subsystem::kVad, e.what())};
        TaskMetrics::Get().Panicked(Subsystem::kVad);
      }
      channels_[i]->Reset();
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array probs = Napi::Array::New(env, probs_.size());
    for (std::size_t i = 0; i < probs_.size(); ++i) {
      if (i < errors_.size() && !errors_[i].first.empty()) {
        probs.Set(static_cast<uint32_t>(i), CodedError(env, errors_[i].first, errors_[i].second).Value());
        continue;
      }
      probs.Set(static_cast<uint32_t>(i), CopyToTypedArray<Napi::Float32Array>(env, probs_[i]));
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("probs", probs);
    return out;
  }

  void Settled() override {
    for (VadChannelHandle* h : handles_) h->busy = false;
  }

 private:
  std::shared_ptr<const SileroVad> vad_;
  std::vector<VadChannelHandle*> handles_;  // pinned by the executor
  std::vector<VadChannel*> channels_;
  std::vector<std::pair<const float*, std::size_t>> audio_;  // pinned by the executor
  std::vector<std::vector<float>> probs_;
  std::vector<std::pair<std::string, std::string>> errors_;  // per channel after a failed batch: code, message
};

}  // namespace

Napi::Function VadChannelHandle::Define(Napi::Env env) {
  return DefineClass(env, "VadChannel",
                     {InstanceMethod<&VadChannelHandle::Reset>("reset"),
                      InstanceMethod<&VadChannelHandle::InjectFailure>("injectFailure")});
}

VadChannelHandle::VadChannelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VadChannelHandle>(info) {}

Napi::Value VadChannelHandle::Reset(const Napi::CallbackInfo& info) {
  if (busy) ThrowCoded(info.Env(), "BUSY", "the VAD channel is in a job in flight");
  channel_.Reset();
  return info.Env().Undefined();
}

Napi::Value VadChannelHandle::InjectFailure(const Napi::CallbackInfo& info) {
  if (busy) ThrowCoded(info.Env(), "BUSY", "the VAD channel is in a job in flight");
  channel_.fail_injected = true;
  return info.Env().Undefined();
}

Napi::Function VadHandle::Define(Napi::Env env) {
  return DefineClass(env, "Vad", {InstanceMethod<&VadHandle::Process>("process")});
}

VadHandle::VadHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VadHandle>(info) {
  if (!info[0].IsExternal()) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "a Vad is made by loadVad()");
  vad_ = *info[0].As<Napi::External<std::shared_ptr<const SileroVad>>>().Data();
}

// process(task, channels: VadChannel[], audio: Float32Array[])
Napi::Value VadHandle::Process(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!info[1].IsArray() || !info[2].IsArray()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "process(task, channels, audio) needs two arrays");
  }
  const Napi::Array channels = info[1].As<Napi::Array>();
  const Napi::Array audio = info[2].As<Napi::Array>();
  if (channels.Length() != audio.Length()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "process(): one audio array per channel");
  }
  const AddonData& data = GetAddonData(env);
  std::vector<VadChannelHandle*> handles;
  std::vector<std::pair<const float*, std::size_t>> spans;
  std::vector<Napi::Value> pins{Value()};
  for (uint32_t i = 0; i < channels.Length(); ++i) {
    VadChannelHandle* h = UnwrapAs<VadChannelHandle>(channels.Get(i), data.vad_channel);
    const Napi::Value a = audio.Get(i);
    if (h == nullptr) ThrowCoded(env, "INVALID_ARGUMENT", "process(): channels must be VadChannels");
    if (!IsTypedArrayOf(a, napi_float32_array)) {
      ThrowCoded(env, "INVALID_ARGUMENT", "process(): audio must be Float32Arrays");
    }
    if (h->busy) ThrowCoded(env, "BUSY", "process(): a channel is already in a job in flight");
    const Napi::Float32Array samples = a.As<Napi::Float32Array>();
    handles.push_back(h);
    spans.emplace_back(samples.Data(), samples.ElementLength());
    pins.push_back(channels.Get(i));
    pins.push_back(a);
  }
  // Duplicates by sorting a copy: O(n log n) (a scan of the handles so far per channel was O(n^2)
  // on the event loop for a batch of many channels).
  std::vector<const VadChannelHandle*> sorted(handles.begin(), handles.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "process(): a channel appears twice");
  }
  return SubmitOn(task, std::make_unique<ProcessJob>(vad_, std::move(handles), std::move(spans)), pins);
}

std::size_t LoadedVadCount() { return LoadedVads().Live(); }

Napi::Value LoadVad(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!info[1].IsString()) ThrowCoded(env, "INVALID_ARGUMENT", "loadVad(task, path) needs a path");
  return SubmitOn(task, std::make_unique<LoadVadJob>(info[1].As<Napi::String>().Utf8Value()));
}

void InitVad(Napi::Env env, Napi::Object exports) {
  AddonData& data = GetAddonData(env);
  const Napi::Function vad = VadHandle::Define(env);
  const Napi::Function vad_channel = VadChannelHandle::Define(env);
  data.vad = Napi::Persistent(vad);
  data.vad_channel = Napi::Persistent(vad_channel);
  exports.Set("Vad", vad);
  exports.Set("VadChannel", vad_channel);
  exports.Set("loadVad", Napi::Function::New<LoadVad>(env, "loadVad"));
}

}  // namespace speech
