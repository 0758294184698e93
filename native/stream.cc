#include "stream.h"

#include <algorithm>
#include <string>

#include "addon_data.h"
#include "binding_util.h"
#include "decode_batch.h"
#include "executor.h"

namespace speech {

namespace {

class StreamJob final : public Job {
 public:
  enum class Kind { kPush, kFlush };
  // An empty push has a null data pointer too: the kind, not the pointer, says which it is.
  StreamJob(StreamState& state, Kind kind, const std::uint8_t* data, std::size_t size)
      : state_(state), kind_(kind), data_(data), size_(size) {}

  void Execute() override {
    if (kind_ == Kind::kFlush) {
      discarded_ = state_.Flush(out_);
    } else {
      state_.Push(data_, size_, out_);
    }
  }

  Napi::Value Result(Napi::Env env) override {
    ReportResamplerMemory(env);  // a first push designs when prepare() was not called
    return MakeChunk(env, out_, state_.format(), size_, discarded_);
  }

 private:
  StreamState& state_;  // alive: the AudioStream owning it is pinned by the executor
  Kind kind_;
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t discarded_ = 0;
  std::vector<std::vector<float>> out_;
};

class PrepareJob final : public Job {
 public:
  explicit PrepareJob(StreamState& state) : state_(state) {}
  void Execute() override { state_.Prepare(); }
  Napi::Value Result(Napi::Env env) override {
    ReportResamplerMemory(env);
    return env.Undefined();
  }

 private:
  StreamState& state_;  // alive: the AudioStream owning it is pinned by the executor
};

// `key` is the JS property; errors name the field as the wire protocol spells it (`wire`).
int IntField(const Napi::Object& spec, const char* key, const char* wire, int fallback) {
  const Napi::Value v = spec.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) ThrowCoded(spec.Env(), "INVALID_FORMAT", std::string("format.") + wire + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= -1e9 && d <= 1e9) || d != static_cast<double>(static_cast<int>(d))) {
    ThrowCoded(spec.Env(), "INVALID_FORMAT", std::string("format.") + wire + " must be an integer");
  }
  return static_cast<int>(d);
}

// admitSampleRate(rate): null when a new stream at `rate` may start, else why not ('designs':
// the budget of new designs per second is spent; 'rates': too many uncommon rates in use). See
// SetResamplerBudget (resampler.h); a map lookup under the bank cache's lock, never a design.
Napi::Value AdmitSampleRateJs(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsNumber()) ThrowCoded(env, "INVALID_ARGUMENT", "admitSampleRate(rate) needs a number");
  switch (AdmitRate(info[0].As<Napi::Number>().Int32Value())) {
    case RateAdmission::kOk:
      return env.Null();
    case RateAdmission::kTooManyDesigns:
      return Napi::String::New(env, "designs");
    case RateAdmission::kTooManyRates:
      return Napi::String::New(env, "rates");
  }
  return env.Null();
}

// setResamplerBudget(designsPerSecond, maxRates): process-wide (0: unlimited); start-up.
Napi::Value SetResamplerBudgetJs(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "setResamplerBudget(designsPerSecond, maxRates) needs two numbers");
  }
  SetResamplerBudget(info[0].As<Napi::Number>().DoubleValue(), info[1].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

}  // namespace

void ReportResamplerMemory(Napi::Env env) {
  AddonData& data = GetAddonData(env);
  const std::int64_t bytes = GetResamplerStats().table_bytes;
  if (bytes == data.reported_resampler_bytes) return;
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes - data.reported_resampler_bytes);
  data.reported_resampler_bytes = bytes;
}

Napi::Object MakeChunk(Napi::Env env, const std::vector<std::vector<float>>& out, const PcmFormat& format,
                       std::size_t input_bytes, std::size_t discarded) {
  Napi::Array channels = Napi::Array::New(env, out.size());
  for (std::size_t c = 0; c < out.size(); ++c) {
    channels.Set(static_cast<uint32_t>(c), CopyToTypedArray<Napi::Float32Array>(env, out[c]));
  }
  Napi::Object chunk = Napi::Object::New(env);
  chunk.Set("channels", channels);
  const std::size_t frame = static_cast<std::size_t>(format.FrameBytes());
  chunk.Set("inputBytes", Napi::Number::New(env, static_cast<double>(input_bytes)));
  chunk.Set("inputSeconds", Napi::Number::New(env, static_cast<double>(input_bytes) / frame / format.sample_rate));
  chunk.Set("discardedBytes", Napi::Number::New(env, static_cast<double>(discarded)));
  return chunk;
}

PcmFormat ParseFormat(const Napi::Object& spec) {
  const Napi::Env env = spec.Env();
  PcmFormat f;
  const Napi::Value encoding = spec.Get("encoding");
  const std::string name = encoding.IsString() ? encoding.As<Napi::String>().Utf8Value() : "pcm";
  if (name == "pcm") f.encoding = Encoding::kPcm;
  else if (name == "mulaw") f.encoding = Encoding::kMulaw;
  else if (name == "alaw") f.encoding = Encoding::kAlaw;
  else ThrowCoded(env, "INVALID_FORMAT", "format.encoding must be one of pcm, mulaw, alaw");
  f.channels = IntField(spec, "channels", "channels", 1);
  f.sample_rate = IntField(spec, "sampleRate", "sample_rate", 16000);
  f.bit_depth = IntField(spec, "bitDepth", "bit_depth", f.encoding == Encoding::kPcm ? 16 : 8);
  f.is_float = spec.Get("isFloat").ToBoolean();
  if (const auto problem = ValidateFormat(f)) ThrowCoded(env, "INVALID_FORMAT", *problem);
  return f;
}

Napi::Function AudioStream::Define(Napi::Env env) {
  return DefineClass(env, "AudioStream",
                     {InstanceMethod<&AudioStream::Push>("push"), InstanceMethod<&AudioStream::Flush>("flush"),
                      InstanceMethod<&AudioStream::Close>("close"), InstanceMethod<&AudioStream::Prepare>("prepare")});
}

AudioStream::AudioStream(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AudioStream>(info) {
  if (!info[0].IsObject()) ThrowCoded(info.Env(), "INVALID_FORMAT", "AudioStream(format) needs a format object");
  state_ = std::make_unique<StreamState>(ParseFormat(info[0].As<Napi::Object>()));
}

void AudioStream::CheckReady(Napi::Env env) const {
  if (closed_) ThrowCoded(env, "CLOSED", "the audio stream is closed");
  // One job per stream keeps its output in order and its state single-threaded.
  if (task_.busy()) ThrowCoded(env, "BUSY", "the audio stream already has a job in flight");
}

Napi::Value AudioStream::Push(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  CheckReady(env);
  if (!IsTypedArrayOf(info[0], napi_uint8_array)) {
    ThrowCoded(env, "INVALID_ARGUMENT", "push(bytes) needs a Uint8Array");
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  return Submit(env, task_, Value(),
                std::make_unique<StreamJob>(*state_, StreamJob::Kind::kPush, bytes.Data(), bytes.ByteLength()),
                {bytes});
}

Napi::Value AudioStream::Flush(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  CheckReady(env);
  return Submit(env, task_, Value(), std::make_unique<StreamJob>(*state_, StreamJob::Kind::kFlush, nullptr, 0));
}

Napi::Value AudioStream::Prepare(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  CheckReady(env);
  if (state_->prepared()) return env.Null();
  return Submit(env, task_, Value(), std::make_unique<PrepareJob>(*state_));
}

Napi::Value AudioStream::Close(const Napi::CallbackInfo& info) {
  closed_ = true;
  task_.Close();
  // Its resamplers release their filter banks now rather than at GC (the last stream at an
  // uncommon rate frees that rate's place in MAX_SAMPLE_RATES). A job in flight still uses the
  // state: it then goes with the object.
  if (!task_.busy()) state_.reset();
  ReportResamplerMemory(info.Env());
  return info.Env().Undefined();
}

void InitStream(Napi::Env env, Napi::Object exports) {
  const Napi::Function stream = AudioStream::Define(env);
  GetAddonData(env).audio_stream = Napi::Persistent(stream);
  exports.Set("AudioStream", stream);
  exports.Set("decodeBatch", Napi::Function::New<DecodeBatch>(env, "decodeBatch"));
  exports.Set("admitSampleRate", Napi::Function::New<AdmitSampleRateJs>(env, "admitSampleRate"));
  exports.Set("setResamplerBudget", Napi::Function::New<SetResamplerBudgetJs>(env, "setResamplerBudget"));
}

}  // namespace speech
