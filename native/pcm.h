// PCM wire formats and their decoding into float samples in [-1, 1], one buffer per channel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace speech {

enum class Encoding { kPcm, kMulaw, kAlaw };

struct PcmFormat {
  Encoding encoding = Encoding::kPcm;
  int channels = 1;
  int sample_rate = 16000;
  int bit_depth = 16;
  bool is_float = false;

  int BytesPerSample() const { return bit_depth / 8; }
  int FrameBytes() const { return BytesPerSample() * channels; }
};

inline constexpr int kMinSampleRate = 8000;
inline constexpr int kMaxSampleRate = 192000;
inline constexpr int kMaxChannels = 64;  // the server's MAX_CHANNELS is usually far lower

// The reason a format cannot be decoded, naming the field, or nullopt when it can.
std::optional<std::string> ValidateFormat(const PcmFormat& format);

// Decodes `frames` whole interleaved frames starting at `data`, appending channel c's samples to
// out[c]. Non-finite float samples become 0 and all samples are clamped to [-1, 1], so one bad
// sample can never poison the filters downstream.
void DecodeFrames(const PcmFormat& format, const std::uint8_t* data, std::size_t frames,
                  std::vector<std::vector<float>>& out);

}  // namespace speech
