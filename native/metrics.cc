#include "metrics.h"

#include <cstdint>
#include <string>

#include "binding_util.h"
#include "model_handle.h"
#include "resampler.h"
#include "stream.h"
#include "task_metrics.h"
#include "vad_handle.h"

namespace speech {
namespace {

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

// snapshot(): every native counter at one instant. Called once per scrape, on the main thread;
// it only reads atomics.
Napi::Value Snapshot(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const TaskMetrics::Snapshot snap = TaskMetrics::Get().Take();
  Napi::Object out = Napi::Object::New(env);
  out.Set("task", CopyToTypedArray<Napi::Float64Array>(env, snap.values));
  out.Set("jobsQueued", snap.jobs_queued);
  out.Set("jobsRunning", snap.jobs_running);
  out.Set("workerBusySeconds", CopyToTypedArray<Napi::Float64Array>(env, snap.worker_busy_seconds));
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

}  // namespace

void InitMetrics(Napi::Env env, Napi::Object exports) {
  exports.Set("taskMetricSchema", Napi::Function::New<TaskMetricSchema>(env, "taskMetricSchema"));
  exports.Set("snapshot", Napi::Function::New<Snapshot>(env, "snapshot"));
  exports.Set("panicTotal", Napi::Function::New<PanicTotal>(env, "panicTotal"));
  exports.Set("recordPanic", Napi::Function::New<RecordPanicJs>(env, "recordPanic"));
}

}  // namespace speech
