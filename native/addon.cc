// Module init: each feature adds its part of the addon's JS surface (typed in
// src/native/binding.ts) from its own file.
#include <napi.h>

#include <memory>

#include "addon_data.h"
#include "metrics.h"
#include "model_handle.h"
#include "process.h"
#include "resampler.h"
#include "stream.h"
#include "task.h"
#include "vad_handle.h"

namespace speech {
namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  MarkJsThread();  // this thread runs JS: no filter design may happen on it
  // Before any feature's Init: they keep their constructors in it.
  env.SetInstanceData<AddonData>(std::make_unique<AddonData>().release());  // freed by the environment
  InitTask(env, exports);                                                   // Task
  InitStream(env, exports);   // AudioStream, decodeBatch, admitSampleRate, setResamplerBudget
  InitModel(env, exports);    // Model, loadModel, probeOrt
  InitVad(env, exports);      // Vad, VadChannel, loadVad
  InitMetrics(env, exports);  // taskMetricSchema, snapshot, panicTotal, recordPanic
  InitProcess(env, exports);  // releaseMemory, setThreadpoolNice, setListenReceiveBuffer, reexec, exitProcess
  return exports;
}

}  // namespace
}  // namespace speech

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return speech::Init(env, exports); }

NODE_API_MODULE(speech_native, InitAddon)
