// One client stream's audio front end, without N-API: interleaved wire bytes in, 16 kHz mono
// float per channel out. Partial samples and partial frames carry over to the next push; nothing
// is dropped. (native/stream.h wraps it for JS; the fuzz target drives it directly.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pcm.h"
#include "resampler.h"

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
  // Whether every resampler has its filter bank; Prepare() designs the missing ones (a worker
  // thread: the constructor, on the JS thread, only takes banks already cached).
  bool prepared() const;
  void Prepare();

 private:
  void Resample(std::vector<std::vector<float>>& out);

  PcmFormat format_;
  std::vector<std::uint8_t> carry_;          // bytes of an incomplete frame, at most FrameBytes() - 1
  std::vector<std::vector<float>> decoded_;  // scratch, input rate, per channel
  std::vector<Resampler> resamplers_;
};

}  // namespace speech
