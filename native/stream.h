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
//   prepare(): Promise<void> | null                designs the resampler's filter bank on a
//       worker (a job of the stream's own task) when its rate's bank is not cached yet; null when
//       there is nothing to design. Until it settles the stream is busy (push/flush: BUSY). Without
//       it the first push designs, in its job (never on the JS thread either way).
// AudioChunk = {channels: Float32Array[], inputBytes, inputSeconds, discardedBytes,
//               waitSeconds, runSeconds}
// Many streams' pushes can also run as one job: decodeBatch() in decode_batch.h. A stream in such
// a job counts as having a job in flight (its task is busy): push and flush refuse with BUSY.
class AudioStream : public Napi::ObjectWrap<AudioStream> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AudioStream(const Napi::CallbackInfo& info);

  // For decodeBatch(): the state its job decodes into, the stream's own task (whose busy flag
  // says "a job has this stream's state"), and whether close() was called.
  StreamState& state() { return *state_; }
  TaskState& task() { return task_; }
  bool closed() const { return closed_; }

 private:
  Napi::Value Push(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Prepare(const Napi::CallbackInfo& info);
  void CheckReady(Napi::Env env) const;

  std::unique_ptr<StreamState> state_;
  TaskState task_{Subsystem::kAudioDecoding};
  bool closed_ = false;
};

PcmFormat ParseFormat(const Napi::Object& spec);

// Adds the AudioStream class (its constructor kept in AddonData), decodeBatch (decode_batch.h)
// and the sample-rate admission: admitSampleRate, setResamplerBudget.
void InitStream(Napi::Env env, Napi::Object exports);

// Tells this environment's V8 the resamplers' filter-bank bytes (process-wide; each JS thread
// reports the whole, as the banks are shared) as external memory, by the change since its last
// report. Main thread; cheap (an atomic load).
void ReportResamplerMemory(Napi::Env env);

// The JS AudioChunk for one push or flush of `input_bytes` bytes in `format` that produced `out`
// (16 kHz samples per channel), without its timing fields. Main thread.
Napi::Object MakeChunk(Napi::Env env, const std::vector<std::vector<float>>& out, const PcmFormat& format,
                       std::size_t input_bytes, std::size_t discarded);

}  // namespace speech
