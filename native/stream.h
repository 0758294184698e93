// The JS-visible AudioStream: a StreamState (stream_state.h) driven through the executor.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "stream_state.h"
#include "task.h"

namespace speech {

// JS: new AudioStream({encoding, channels, sampleRate, bitDepth, isFloat})
//   push(bytes: Uint8Array): Promise<AudioChunk>   bytes are borrowed (pinned) until it settles
//   flush(): Promise<AudioChunk>                   end of stream; the stream can then be reused
//   close(): void                                  ends the task; later calls reject
// AudioChunk = {channels: Float32Array[], inputFrames: number, discardedBytes: number}
class AudioStream : public Napi::ObjectWrap<AudioStream> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AudioStream(const Napi::CallbackInfo& info);

 private:
  Napi::Value Push(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void CheckReady(Napi::Env env) const;

  std::unique_ptr<StreamState> state_;
  TaskState task_{Subsystem::kAudioDecoding};
  bool closed_ = false;
};

PcmFormat ParseFormat(const Napi::Object& spec);

}  // namespace speech
