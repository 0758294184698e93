// Module init: the addon's whole JS surface (typed in src/native/binding.ts).
#include <napi.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "addon_data.h"
#include "decode_batch.h"
#include "executor.h"
#include "listen_socket.h"
#include "memory_release.h"
#include "model_handle.h"
#include "ort_env.h"
#include "stream.h"
#include "task.h"
#include "task_metrics.h"
#include "vad_handle.h"

namespace speech {
namespace {

class OrtProbeJob final : public Job {
 public:
  void Execute() override { version_ = ProbeOrt(); }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, version_); }

 private:
  std::string version_;
};

// probeOrt(task): Promise<string>, ONNX Runtime's version once a real inference succeeded.
Napi::Value ProbeOrtJs(const Napi::CallbackInfo& info) {
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  return Submit(info.Env(), task.state(), info[0].As<Napi::Object>(), std::make_unique<OrtProbeJob>());
}

// recordPanic(subsystem): a panic in JS code handling a subsystem's results (src/tasks.ts).
Napi::Value RecordPanicJs(const Napi::CallbackInfo& info) {
  const std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const auto subsystem = ParseSubsystem(name);
  if (!subsystem) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "unknown subsystem: " + name);
  TaskMetrics::Get().Panicked(*subsystem);
  return info.Env().Undefined();
}

// taskMetricSchema(): {subsystems: string[], fields: {field, kind, name, help}[]}
Napi::Value TaskMetricSchema(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  Napi::Array subsystems = Napi::Array::New(env, kSubsystemCount);
  for (std::size_t i = 0; i < kSubsystemCount; ++i) {
    subsystems.Set(static_cast<uint32_t>(i), std::string(kSubsystemNames[i]));
  }
  const auto& infos = TaskFieldInfos();
  Napi::Array fields = Napi::Array::New(env, infos.size());
  for (std::size_t i = 0; i < infos.size(); ++i) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("field", infos[i].field);
    f.Set("kind", infos[i].kind);
    f.Set("name", infos[i].name);
    f.Set("help", infos[i].help);
    fields.Set(static_cast<uint32_t>(i), f);
  }
  Napi::Object schema = Napi::Object::New(env);
  schema.Set("subsystems", subsystems);
  schema.Set("fields", fields);
  return schema;
}

Napi::Float64Array ToFloat64Array(Napi::Env env, const std::vector<double>& values) {
  Napi::Float64Array array = Napi::Float64Array::New(env, values.size());
  std::copy(values.begin(), values.end(), array.Data());
  return array;
}

// snapshot(): every native counter at one instant. Called once per scrape, on the main thread;
// it only reads atomics.
Napi::Value Snapshot(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const TaskMetrics::Snapshot snap = TaskMetrics::Get().Take();
  Napi::Object out = Napi::Object::New(env);
  out.Set("task", ToFloat64Array(env, snap.values));
  out.Set("jobsQueued", snap.jobs_queued);
  out.Set("jobsRunning", snap.jobs_running);
  out.Set("workerBusySeconds", ToFloat64Array(env, snap.worker_busy_seconds));
  out.Set("modelsLoaded", static_cast<double>(LoadedModelCount()));
  out.Set("vadsLoaded", static_cast<double>(LoadedVadCount()));
  const ResamplerStats rs = GetResamplerStats();
  Napi::Object resampler = Napi::Object::New(env);
  resampler.Set("tables", static_cast<double>(rs.tables));
  resampler.Set("tableBytes", static_cast<double>(rs.table_bytes));
  resampler.Set("designs", static_cast<double>(rs.designs));
  resampler.Set("designsOnJsThread", static_cast<double>(rs.designs_on_js_thread));
  resampler.Set("refused", static_cast<double>(rs.refused));
  out.Set("resampler", resampler);
  ReportResamplerMemory(env);
  return out;
}

// panicTotal(): task_panic_total summed over subsystems, for health (no snapshot built).
Napi::Value PanicTotal(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(TaskMetrics::Get().PanicTotal()));
}

// exitProcess(code): ends the process now, without tearing down worker threads. Node's own exit
// stops each worker and asserts that its event loop has no open handles, which uWebSockets.js
// (this build has no App.close()) cannot promise for idle keep-alive sockets. Called by the
// primary once every worker has drained and its logs are written.
Napi::Value ExitProcess(const Napi::CallbackInfo& info) {
  const int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  std::fflush(nullptr);
  std::_Exit(code);
}

// reexec(argv): replaces this process's image with argv[0] run on argv, in the same environment
// (same pid, so a supervisor's signals still reach it). Returns only by throwing.
Napi::Value Reexec(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0) {
    ThrowCoded(env, "INVALID_ARGUMENT", "reexec(argv) needs a non-empty array of strings");
  }
  const Napi::Array list = info[0].As<Napi::Array>();
  std::vector<std::string> args;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const Napi::Value v = list.Get(i);
    if (!v.IsString()) ThrowCoded(env, "INVALID_ARGUMENT", "reexec(argv) needs strings");
    args.push_back(v.As<Napi::String>().Utf8Value());
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  // Node marks its stdio close-on-exec; the new image must keep writing to the same ones.
  for (int fd = 0; fd <= 2; ++fd) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags != -1) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  execv(argv[0], argv.data());
  ThrowCoded(env, "EXEC_FAILED", std::string("execv ") + args[0] + ": " + std::strerror(errno));
}

// setThreadpoolNice(n): the niceness threadpool workers take (0: unchanged), before any job.
Napi::Value SetThreadpoolNiceJs(const Napi::CallbackInfo& info) {
  const int nice = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  if (nice < 0 || nice > 19) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "setThreadpoolNice(n) needs 0-19");
  SetThreadpoolNice(nice);
  return info.Env().Undefined();
}

// admitSampleRate(rate): null when a new stream at `rate` may start, else why not ('designs':
// the budget of new designs per second is spent; 'rates': too many uncommon rates in use). See
// SetResamplerBudget (resampler.h); a map lookup under the bank cache's lock, never a design.
Napi::Value AdmitSampleRateJs(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsNumber()) ThrowCoded(env, "INVALID_ARGUMENT", "admitSampleRate(rate) needs a number");
  switch (AdmitRate(info[0].As<Napi::Number>().Int32Value())) {
    case RateAdmission::kOk: return env.Null();
    case RateAdmission::kTooManyDesigns: return Napi::String::New(env, "designs");
    case RateAdmission::kTooManyRates: return Napi::String::New(env, "rates");
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

// setListenReceiveBuffer(port, bytes): see listen_socket.h. A start-up call of a few syscalls,
// so it runs here rather than through the executor.
Napi::Value SetListenReceiveBufferJs(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "setListenReceiveBuffer(port, bytes) needs two numbers");
  }
  try {
    const int set = SetListenReceiveBuffer(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
    return Napi::Number::New(env, set);
  } catch (const std::system_error& e) {
    ThrowCoded(env, "SOCKET_OPTION", e.what());
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  MarkJsThread();  // this thread runs JS: no filter design may happen on it
  auto data = std::make_unique<AddonData>();
  const Napi::Function task = TaskHandle::Define(env);
  const Napi::Function stream = AudioStream::Define(env);
  const Napi::Function model = ModelHandle::Define(env);
  data->task = Napi::Persistent(task);
  data->audio_stream = Napi::Persistent(stream);
  data->model = Napi::Persistent(model);
  const Napi::Function vad = VadHandle::Define(env);
  const Napi::Function vad_channel = VadChannelHandle::Define(env);
  data->vad = Napi::Persistent(vad);
  data->vad_channel = Napi::Persistent(vad_channel);
  env.SetInstanceData<AddonData>(data.release());  // owned and freed by the environment
  exports.Set("Task", task);
  exports.Set("AudioStream", stream);
  exports.Set("Model", model);
  exports.Set("Vad", vad);
  exports.Set("VadChannel", vad_channel);
  exports.Set("loadModel", Napi::Function::New<LoadModel>(env, "loadModel"));
  exports.Set("decodeBatch", Napi::Function::New<DecodeBatch>(env, "decodeBatch"));
  exports.Set("loadVad", Napi::Function::New<LoadVad>(env, "loadVad"));
  exports.Set("probeOrt", Napi::Function::New<ProbeOrtJs>(env, "probeOrt"));
  exports.Set("releaseMemory", Napi::Function::New<ReleaseMemoryJs>(env, "releaseMemory"));
  exports.Set("taskMetricSchema", Napi::Function::New<TaskMetricSchema>(env, "taskMetricSchema"));
  exports.Set("snapshot", Napi::Function::New<Snapshot>(env, "snapshot"));
  exports.Set("panicTotal", Napi::Function::New<PanicTotal>(env, "panicTotal"));
  exports.Set("recordPanic", Napi::Function::New<RecordPanicJs>(env, "recordPanic"));
  exports.Set("setThreadpoolNice", Napi::Function::New<SetThreadpoolNiceJs>(env, "setThreadpoolNice"));
  exports.Set("setListenReceiveBuffer", Napi::Function::New<SetListenReceiveBufferJs>(env, "setListenReceiveBuffer"));
  exports.Set("admitSampleRate", Napi::Function::New<AdmitSampleRateJs>(env, "admitSampleRate"));
  exports.Set("setResamplerBudget", Napi::Function::New<SetResamplerBudgetJs>(env, "setResamplerBudget"));
  exports.Set("reexec", Napi::Function::New<Reexec>(env, "reexec"));
  exports.Set("exitProcess", Napi::Function::New<ExitProcess>(env, "exitProcess"));
  return exports;
}

}  // namespace
}  // namespace speech

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return speech::Init(env, exports);
}

NODE_API_MODULE(speech_native, InitAddon)
