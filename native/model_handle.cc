#include "model_handle.h"

#include <string>

#include "addon_data.h"
#include "binding_util.h"
#include "models/moonshine.h"
#include "models/stub.h"
#include "ort_env.h"
#include "process_cache.h"
#include "task.h"
#include "task_metrics.h"

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
  LoadJob(StubOptions stub, std::string dir, MoonshineWeights weights)
      : stub_(stub), dir_(std::move(dir)), weights_(weights) {}
  void Execute() override {
    model_ = LoadedModels().GetOrLoad(Key(), [this]() -> std::shared_ptr<Model> {
      if (dir_.empty()) return std::make_shared<StubModel>(stub_);
      return std::make_shared<MoonshineModel>(dir_, weights_);
    });
  }
  Napi::Value Result(Napi::Env env) override {
    return GetAddonData(env).model.New({Napi::External<std::shared_ptr<Model>>::New(env, &model_)});
  }

 private:
  // Same files (or the same stub options): the same model.
  std::string Key() const {
    if (!dir_.empty()) return std::string("moonshine:") + (weights_ == MoonshineWeights::kInt8 ? "int8:" : "") + dir_;
    return "stub:" + std::to_string(stub_.delay_ms) + "," + std::to_string(stub_.constant_factor) + "," +
           std::to_string(stub_.jitter) + "," + std::to_string(stub_.failure_rate) + "," +
           std::to_string(stub_.panic_rate) + "," + std::to_string(stub_.warmup_penalty_ms) + "," +
           std::to_string(stub_.seed);
  }

  StubOptions stub_;
  std::string dir_;
  MoonshineWeights weights_;
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

class OrtProbeJob final : public Job {
 public:
  void Execute() override { version_ = ProbeOrt(); }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, version_); }

 private:
  std::string version_;
};

// Many utterances, possibly of many streams, in one job: the model batches what it can.
class RunBatchJob final : public Job {
 public:
  RunBatchJob(std::shared_ptr<Model> model, std::vector<ModelInput> inputs)
      : model_(std::move(model)), inputs_(std::move(inputs)) {}
  void Execute() override {
    results_ = model_->RunBatch(inputs_);
    // Each failed item counts as a failed (or panicked) model job would have.
    for (const ModelResult& r : results_) {
      if (r.panicked) TaskMetrics::Get().Panicked(Subsystem::kInference);
      else if (!r.error_code.empty()) TaskMetrics::Get().Failed(Subsystem::kInference);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array items = Napi::Array::New(env, results_.size());
    for (std::size_t i = 0; i < results_.size(); ++i) {
      const ModelResult& r = results_[i];
      if (!r.error_code.empty()) {
        items.Set(static_cast<std::uint32_t>(i), CodedError(env, r.error_code, r.error_message).Value());
        continue;
      }
      Napi::Object item = Napi::Object::New(env);
      if (r.output.count) item.Set("count", Napi::Number::New(env, static_cast<double>(*r.output.count)));
      if (r.output.text) item.Set("text", Napi::String::New(env, *r.output.text));
      Napi::Int32Array ids = Napi::Int32Array::New(env, r.output.ids.size());
      for (std::size_t k = 0; k < r.output.ids.size(); ++k) ids[k] = static_cast<std::int32_t>(r.output.ids[k]);
      item.Set("ids", ids);
      item.Set("decoderCalls", Napi::Number::New(env, r.output.decoder_calls));
      items.Set(static_cast<std::uint32_t>(i), item);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("items", items);
    return result;
  }

 private:
  std::shared_ptr<Model> model_;
  std::vector<ModelInput> inputs_;  // samples pinned by the executor; drafts copied
  std::vector<ModelResult> results_;
};

}  // namespace

std::size_t LoadedModelCount() { return LoadedModels().Live(); }

Napi::Function ModelHandle::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {InstanceMethod<&ModelHandle::Run>("run"), InstanceMethod<&ModelHandle::RunBatch>("runBatch"),
                      InstanceAccessor<&ModelHandle::MaxPadSamples>("maxPadSamples"),
                      InstanceAccessor<&ModelHandle::Weights>("weights")});
}

ModelHandle::ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
  if (!info[0].IsExternal()) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "models are made by loadModel()");
  model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
}

Napi::Value ModelHandle::Run(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!IsTypedArrayOf(info[1], napi_float32_array)) {
    ThrowCoded(env, "INVALID_ARGUMENT", "run(task, samples) needs a Float32Array of 16 kHz samples");
  }
  Napi::Float32Array samples = info[1].As<Napi::Float32Array>();
  return SubmitOn(task, std::make_unique<RunJob>(model_, samples.Data(), samples.ElementLength()), {Value(), samples});
}

Napi::Value ModelHandle::MaxPadSamples(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->MaxPadSamples()));
}

Napi::Value ModelHandle::Weights(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model_->Weights());
}

Napi::Value ModelHandle::RunBatch(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!info[1].IsArray() || !info[2].IsArray() ||
      info[1].As<Napi::Array>().Length() != info[2].As<Napi::Array>().Length() ||
      info[1].As<Napi::Array>().Length() == 0) {
    ThrowCoded(env, "INVALID_ARGUMENT", "runBatch(task, samples[], drafts[]) needs two arrays of one non-zero length");
  }
  const Napi::Array samples = info[1].As<Napi::Array>();
  const Napi::Array drafts = info[2].As<Napi::Array>();
  std::vector<ModelInput> inputs(samples.Length());
  std::vector<Napi::Value> pins{Value()};
  for (std::uint32_t i = 0; i < samples.Length(); ++i) {
    const Napi::Value s = samples.Get(i);
    if (!IsTypedArrayOf(s, napi_float32_array)) {
      ThrowCoded(env, "INVALID_ARGUMENT", "runBatch: every item's samples must be a Float32Array of 16 kHz samples");
    }
    const Napi::Float32Array f = s.As<Napi::Float32Array>();
    inputs[i].samples = f.Data();
    inputs[i].count = f.ElementLength();
    pins.push_back(s);
    const Napi::Value d = drafts.Get(i);
    if (IsTypedArrayOf(d, napi_int32_array)) {
      const Napi::Int32Array ids = d.As<Napi::Int32Array>();
      inputs[i].draft.assign(ids.Data(), ids.Data() + ids.ElementLength());
    } else if (!d.IsUndefined() && !d.IsNull()) {
      ThrowCoded(env, "INVALID_ARGUMENT", "runBatch: a draft must be an Int32Array of token ids or undefined");
    }
  }
  return SubmitOn(task, std::make_unique<RunBatchJob>(model_, std::move(inputs)), pins);
}

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!info[1].IsObject()) ThrowCoded(env, "INVALID_ARGUMENT", "loadModel(task, spec) needs a spec");
  const Napi::Object spec = info[1].As<Napi::Object>();
  const Napi::Value kind = spec.Get("kind");
  const std::string name = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  std::string dir;
  MoonshineWeights weights = MoonshineWeights::kPackage;
  if (name == "moonshine") {
    const Napi::Value d = spec.Get("dir");
    if (!d.IsString()) ThrowCoded(env, "INVALID_ARGUMENT", "a moonshine spec needs its model folder, dir");
    dir = d.As<Napi::String>().Utf8Value();
    const Napi::Value w = spec.Get("weights");
    const std::string asked = w.IsString() ? w.As<Napi::String>().Utf8Value() : "";
    if (asked == "auto") weights = BestMoonshineWeights();
    else if (asked == "int8") weights = MoonshineWeights::kInt8;
    else if (asked != "package")
      ThrowCoded(env, "INVALID_ARGUMENT", "a moonshine spec's weights are auto, int8 or package");
  } else if (name != "stub") {
    ThrowCoded(env, "UNKNOWN_MODEL", "unknown model kind: " + name);
  }
  return SubmitOn(task, std::make_unique<LoadJob>(ParseStubOptions(spec.Get("stub")), std::move(dir), weights));
}

// probeOrt(task): Promise<string>, ONNX Runtime's version once a real inference succeeded.
Napi::Value ProbeOrtJs(const Napi::CallbackInfo& info) {
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  return SubmitOn(task, std::make_unique<OrtProbeJob>());
}

void InitModel(Napi::Env env, Napi::Object exports) {
  const Napi::Function model = ModelHandle::Define(env);
  GetAddonData(env).model = Napi::Persistent(model);
  exports.Set("Model", model);
  exports.Set("loadModel", Napi::Function::New<LoadModel>(env, "loadModel"));
  exports.Set("probeOrt", Napi::Function::New<ProbeOrtJs>(env, "probeOrt"));
}

}  // namespace speech
