// JS handle of a loaded model, shared by every stream. Created only by loadModel().
//   loadModel(task, {kind: "stub", stub: {...}} | {kind: "moonshine", dir}): Promise<Model>
//       loads on the threadpool, once per process (process_cache.h); a missing or corrupt file
//       rejects with MODEL_LOAD
//   model.run(task, samples: Float32Array): Promise<{count?: number, text?: string}>
//   model.runBatch(task, samples: Float32Array[], drafts: (Int32Array | undefined)[]):
//       Promise<{items: ({count?, text?, ids: Int32Array} | Error with code)[]}>, one job for
//       many utterances (Moonshine decodes them together; see models/moonshine.h)
#pragma once

#include <napi.h>

#include <cstddef>
#include <memory>

#include "models/model.h"

namespace speech {

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelHandle(const Napi::CallbackInfo& info);

 private:
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value RunBatch(const Napi::CallbackInfo& info);
  Napi::Value MaxPadSamples(const Napi::CallbackInfo& info);
  Napi::Value Weights(const Napi::CallbackInfo& info);
  std::shared_ptr<Model> model_;
};

Napi::Value LoadModel(const Napi::CallbackInfo& info);
// probeOrt(task): Promise<string>, ONNX Runtime's version once a real inference succeeded.
Napi::Value ProbeOrtJs(const Napi::CallbackInfo& info);

// Adds the Model class (its constructor kept in AddonData), loadModel and probeOrt.
void InitModel(Napi::Env env, Napi::Object exports);

// Speech models loaded in this process now (shared by every worker thread).
std::size_t LoadedModelCount();

}  // namespace speech
