// One client stream's audio front end: interleaved wire bytes in, 16 kHz mono float per channel
// out. Partial samples and partial frames carry over to the next push; nothing is dropped.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "pcm.h"
#include "resampler.h"
#include "task.h"

namespace speech {

// Touched by at most one job at a time (AudioStream refuses a second job while one is in flight).
class StreamState {
 public:
  explicit StreamState(const PcmFormat& format);
  // Decodes and resamples `size` new bytes, appending 16 kHz samples to out[c].
  void Push(const std::uint8_t* data, std::size_t size, std::vector<std::vector<float>>& out);
  // End of stream: emits the resamplers' tails and discards an incomplete trailing frame, whose
  // size in bytes it returns.
  std::size_t Flush(std::vector<std::vector<float>>& out);
  const PcmFormat& format() const { return format_; }

 private:
  void Resample(std::vector<std::vector<float>>& out);

  PcmFormat format_;
  std::vector<std::uint8_t> carry_;  // bytes of an incomplete frame, at most FrameBytes() - 1
  std::vector<std::vector<float>> decoded_;  // scratch, input rate, per channel
  std::vector<Resampler> resamplers_;
};

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
