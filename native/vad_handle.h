// JS surface of the voice-activity detector.
//   loadVad(task, path): Promise<Vad>               loads Silero once per process, on the threadpool
//   new VadChannel()                                 one channel's recurrent state
//   channel.reset()                                  back to the start of a stream
//   vad.process(task, channels, audio): Promise<{probs: Float32Array[]}>
//       one job: every channel's new 16 kHz audio through the model in lock-step batches
//       (ProcessChannels); probs[i] has one value per whole 512-sample window of channel i.
//       Channels and audio are pinned until the promise settles; a channel in a job in flight
//       refuses to join another (BUSY).
#pragma once

#include <napi.h>

#include <cstddef>
#include <memory>

#include "vad.h"

namespace speech {

class VadChannelHandle : public Napi::ObjectWrap<VadChannelHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit VadChannelHandle(const Napi::CallbackInfo& info);
  VadChannel& channel() { return channel_; }
  bool busy = false;

 private:
  Napi::Value Reset(const Napi::CallbackInfo& info);
  // Tests: the channel's next VAD job step fails with MODEL_FAILURE, as a failing model would.
  Napi::Value InjectFailure(const Napi::CallbackInfo& info);
  VadChannel channel_;
};

class VadHandle : public Napi::ObjectWrap<VadHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit VadHandle(const Napi::CallbackInfo& info);

 private:
  Napi::Value Process(const Napi::CallbackInfo& info);
  std::shared_ptr<const SileroVad> vad_;
};

Napi::Value LoadVad(const Napi::CallbackInfo& info);

// Silero models loaded in this process now (shared by every worker thread).
std::size_t LoadedVadCount();

// Adds the Vad and VadChannel classes (their constructors kept in AddonData) and loadVad.
void InitVad(Napi::Env env, Napi::Object exports);

}  // namespace speech
