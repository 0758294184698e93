#include "model_handle.h"

#include <string>

#include "addon_data.h"
#include "executor.h"
#include "models/moonshine.h"
#include "models/stub.h"
#include "process_cache.h"
#include "task.h"

namespace speech {
namespace {

ProcessCache<Model>& LoadedModels() {
  static ProcessCache<Model> cache;
  return cache;
}


double NumberField(const Napi::Object& spec, const char* name) {
  const Napi::Value v = spec.Get(name);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0.0;
}

StubOptions ParseStubOptions(const Napi::Value& value) {
  StubOptions o;
  if (!value.IsObject()) return o;
  const Napi::Object spec = value.As<Napi::Object>();
  o.delay_ms = NumberField(spec, "delay_ms");
  o.constant_factor = NumberField(spec, "constant_factor");
  o.jitter = NumberField(spec, "jitter");
  o.failure_rate = NumberField(spec, "failure_rate");
  o.panic_rate = NumberField(spec, "panic_rate");
  o.warmup_penalty_ms = NumberField(spec, "warmup_penalty_ms");
  o.seed = static_cast<std::uint64_t>(NumberField(spec, "seed"));
  return o;
}

class LoadJob final : public Job {
 public:
  // `dir` empty: the stub model with `stub` options; else Moonshine from that folder.
  LoadJob(StubOptions stub, std::string dir) : stub_(stub), dir_(std::move(dir)) {}
  void Execute() override {
    model_ = LoadedModels().GetOrLoad(Key(), [this]() -> std::shared_ptr<Model> {
      if (dir_.empty()) return std::make_shared<StubModel>(stub_);
      return std::make_shared<MoonshineModel>(dir_);
    });
  }
  Napi::Value Result(Napi::Env env) override {
    return GetAddonData(env).model.New({Napi::External<std::shared_ptr<Model>>::New(env, &model_)});
  }

 private:
  // Same files (or the same stub options): the same model.
  std::string Key() const {
    if (!dir_.empty()) return "moonshine:" + dir_;
    return "stub:" + std::to_string(stub_.delay_ms) + "," + std::to_string(stub_.constant_factor) + "," +
           std::to_string(stub_.jitter) + "," + std::to_string(stub_.failure_rate) + "," +
           std::to_string(stub_.panic_rate) + "," + std::to_string(stub_.warmup_penalty_ms) + "," +
           std::to_string(stub_.seed);
  }

  StubOptions stub_;
  std::string dir_;
  std::shared_ptr<Model> model_;
};

class RunJob final : public Job {
 public:
  RunJob(std::shared_ptr<Model> model, const float* samples, std::size_t count)
      : model_(std::move(model)), samples_(samples), count_(count) {}
  void Execute() override { out_ = model_->Run(samples_, count_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    if (out_.count) result.Set("count", Napi::Number::New(env, static_cast<double>(*out_.count)));
    if (out_.text) result.Set("text", Napi::String::New(env, *out_.text));
    return result;
  }

 private:
  std::shared_ptr<Model> model_;
  const float* samples_;  // pinned by the executor
  std::size_t count_;
  ModelOutput out_;
};

}  // namespace

std::size_t LoadedModelCount() { return LoadedModels().Live(); }

Napi::Function ModelHandle::Define(Napi::Env env) {
  return DefineClass(env, "Model", {InstanceMethod<&ModelHandle::Run>("run")});
}

ModelHandle::ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
  if (!info[0].IsExternal()) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "models are made by loadModel()");
  model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
}

Napi::Value ModelHandle::Run(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowCoded(env, "INVALID_ARGUMENT", "run(task, samples) needs a Float32Array of 16 kHz samples");
  }
  Napi::Float32Array samples = info[1].As<Napi::Float32Array>();
  return Submit(env, task.state(), info[0].As<Napi::Object>(),
                std::make_unique<RunJob>(model_, samples.Data(), samples.ElementLength()),
                {Value(), samples});
}

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!info[1].IsObject()) ThrowCoded(env, "INVALID_ARGUMENT", "loadModel(task, spec) needs a spec");
  const Napi::Object spec = info[1].As<Napi::Object>();
  const Napi::Value kind = spec.Get("kind");
  const std::string name = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  std::string dir;
  if (name == "moonshine") {
    const Napi::Value d = spec.Get("dir");
    if (!d.IsString()) ThrowCoded(env, "INVALID_ARGUMENT", "a moonshine spec needs its model folder, dir");
    dir = d.As<Napi::String>().Utf8Value();
  } else if (name != "stub") {
    ThrowCoded(env, "UNKNOWN_MODEL", "unknown model kind: " + name);
  }
  return Submit(env, task.state(), info[0].As<Napi::Object>(),
                std::make_unique<LoadJob>(ParseStubOptions(spec.Get("stub")), std::move(dir)));
}

}  // namespace speech
