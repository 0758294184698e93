// Silero VAD (v6, 16 kHz) over many streams at once.
//
// The model is recurrent: each 512-sample window (32 ms) needs the previous window's LSTM state
// and its last 64 samples. Windows of one channel are therefore sequential, but windows of
// different channels are independent, so ProcessChannels runs "window t of every channel" as one
// batched ONNX call: on one core batch 64+ gives ~2.2x the windows/s of batch 1 (~35k vs ~16k
// windows/s measured; a window is 32 ms, so one core handles ~1100 streams' worth of audio).
#pragma once

#include <onnxruntime_cxx_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace speech {

// One loaded Silero VAD model, shared by every stream; Run is thread-safe (ORT sessions are).
class SileroVad {
 public:
  static constexpr int kSampleRate = 16000, kWindow = 512, kContext = 64, kStateSize = 2 * 128;
  static constexpr int kRow = kContext + kWindow;  // floats per input row
  static constexpr int kHidden = kStateSize / 2;   // 128

  explicit SileroVad(const std::string& model_path);  // throws JobError("MODEL_LOAD", …)

  // One ONNX call over `batch` windows: input is batch rows of kContext+kWindow floats; state is
  // [2, batch, 128] (read, then overwritten with the new state); probs gets batch values.
  // batch <= 0 does nothing. An ONNX Runtime failure throws JobError("MODEL_FAILURE", …).
  void RunBatch(const float* input, float* state, float* probs, int batch) const;

 private:
  // Mutable: Ort::Session::Run is non-const in the C++ wrapper but thread-safe in ORT itself.
  mutable Ort::Session session_{nullptr};
  Ort::MemoryInfo memory_{nullptr};
  std::int64_t sample_rate_ = kSampleRate;  // the `sr` scalar, wrapped (never written) per call
};

// The recurrent state of one channel's VAD: model state, last 64 samples, samples not yet making
// a whole window. Touched by one job at a time (the caller guarantees it).
struct VadChannel {
  std::array<float, SileroVad::kStateSize> state{};  // layout [2][128]
  std::array<float, SileroVad::kContext> context{};
  std::vector<float> pending;  // < kWindow samples carried to the next call
  bool fail_injected = false;  // tests: the next step throws MODEL_FAILURE
  void Reset();
};

// Steps every channel over its pending samples plus `audio[i]` (16 kHz) in lock-step batches:
// step t runs window t of every channel that has one, as ONE RunBatch call with the channels'
// states gathered into [2, B, 128] and scattered back after. Appends each window's probability to
// probs[i] (one per whole window). Windows of one channel stay sequential (the state recurs);
// batching is across channels. `max_batch` caps B per ONNX call (split a step if more channels).
//
// channels, audio and probs must have the same size (probs is resized if smaller) and the
// channel pointers must be distinct. The probabilities do not depend on how a channel's audio
// is split across calls, nor on the batching (bit-identical to batch 1 in tests with ORT 1.30's
// CPU kernels; expect at most float rounding on other builds).
// If RunBatch throws, the channels are left mid-step and should be Reset().
void ProcessChannels(const SileroVad& vad, const std::vector<VadChannel*>& channels,
                     const std::vector<std::pair<const float*, std::size_t>>& audio,
                     std::vector<std::vector<float>>& probs, int max_batch = 256);

}  // namespace speech
