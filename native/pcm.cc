#include "pcm.h"

#include <cmath>
#include <cstring>

namespace speech {
namespace {

// Little-endian loads through memcpy: unaligned-safe and compiled to plain moves.
template <typename T>
T Load(const std::uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

float Sanitize(float x) {
  if (!(x == x)) return 0.0f;  // NaN
  return x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
}

float MulawToFloat(std::uint8_t byte) {
  const std::uint8_t u = static_cast<std::uint8_t>(~byte);
  const int exponent = (u >> 4) & 0x07;
  const int mantissa = u & 0x0F;
  const int magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
  return static_cast<float>((u & 0x80) ? -magnitude : magnitude) / 32768.0f;
}

float AlawToFloat(std::uint8_t byte) {
  const std::uint8_t a = byte ^ 0x55;
  const int exponent = (a >> 4) & 0x07;
  const int mantissa = a & 0x0F;
  int magnitude = exponent == 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1);
  return static_cast<float>((a & 0x80) ? magnitude : -magnitude) / 32768.0f;
}

struct Tables {
  float mulaw[256];
  float alaw[256];
  Tables() {
    for (int i = 0; i < 256; ++i) {
      mulaw[i] = MulawToFloat(static_cast<std::uint8_t>(i));
      alaw[i] = AlawToFloat(static_cast<std::uint8_t>(i));
    }
  }
};
const Tables& G711() {
  static const Tables tables;
  return tables;
}

// One loop per (format, channel): a fixed stride and a small inlined sample function, which the
// compiler vectorises for the common mono cases.
template <typename SampleFn>
void Deinterleave(const std::uint8_t* data, std::size_t frames, int channels, int bytes_per_sample, SampleFn sample,
                  std::vector<std::vector<float>>& out) {
  if (frames == 0) return;  // `data` may be null then: no pointer arithmetic on it
  const std::size_t stride = static_cast<std::size_t>(channels) * bytes_per_sample;
  for (int c = 0; c < channels; ++c) {
    std::vector<float>& dst = out[c];
    const std::size_t base = dst.size();
    dst.resize(base + frames);
    float* o = dst.data() + base;
    const std::uint8_t* p = data + static_cast<std::size_t>(c) * bytes_per_sample;
    for (std::size_t i = 0; i < frames; ++i) o[i] = sample(p + i * stride);
  }
}

}  // namespace

std::optional<std::string> ValidateFormat(const PcmFormat& f) {
  if (f.channels < 1 || f.channels > kMaxChannels) {
    return "format.channels must be an integer from 1 to " + std::to_string(kMaxChannels);
  }
  if (f.sample_rate < kMinSampleRate || f.sample_rate > kMaxSampleRate) {
    return "format.sample_rate must be an integer from 8000 to 192000";
  }
  switch (f.encoding) {
    case Encoding::kMulaw:
    case Encoding::kAlaw:
      if (f.bit_depth != 8 || f.is_float) {
        return "format.bit_depth must be 8 (and is_float false) for mulaw and alaw";
      }
      return std::nullopt;
    case Encoding::kPcm:
      if (f.is_float) {
        if (f.bit_depth != 32 && f.bit_depth != 64) {
          return "format.bit_depth must be 32 or 64 for float PCM";
        }
      } else if (f.bit_depth != 8 && f.bit_depth != 16 && f.bit_depth != 24 && f.bit_depth != 32) {
        return "format.bit_depth must be 8, 16, 24 or 32 for integer PCM";
      }
      return std::nullopt;
  }
  return "format.encoding must be one of pcm, mulaw, alaw";
}

void DecodeFrames(const PcmFormat& f, const std::uint8_t* data, std::size_t frames,
                  std::vector<std::vector<float>>& out) {
  const int ch = f.channels;
  const int bps = f.BytesPerSample();
  switch (f.encoding) {
    case Encoding::kMulaw: {
      const float* table = G711().mulaw;
      return Deinterleave(
          data, frames, ch, bps, [table](const std::uint8_t* p) { return table[*p]; }, out);
    }
    case Encoding::kAlaw: {
      const float* table = G711().alaw;
      return Deinterleave(
          data, frames, ch, bps, [table](const std::uint8_t* p) { return table[*p]; }, out);
    }
    case Encoding::kPcm:
      break;
  }
  if (f.is_float) {
    if (f.bit_depth == 32) {
      return Deinterleave(
          data, frames, ch, bps, [](const std::uint8_t* p) { return Sanitize(Load<float>(p)); }, out);
    }
    return Deinterleave(
        data, frames, ch, bps, [](const std::uint8_t* p) { return Sanitize(static_cast<float>(Load<double>(p))); },
        out);
  }
  switch (f.bit_depth) {
    case 8:  // unsigned, 128 is zero
      return Deinterleave(
          data, frames, ch, bps,
          [](const std::uint8_t* p) { return (static_cast<float>(*p) - 128.0f) * (1.0f / 128.0f); }, out);
    case 16:
      return Deinterleave(
          data, frames, ch, bps,
          [](const std::uint8_t* p) { return static_cast<float>(Load<std::int16_t>(p)) * (1.0f / 32768.0f); }, out);
    case 24:  // 3-byte packed: shift into the top of an int32 to sign-extend
      return Deinterleave(
          data, frames, ch, bps,
          [](const std::uint8_t* p) {
            const std::int32_t v = static_cast<std::int32_t>((static_cast<std::uint32_t>(p[0]) << 8) |
                                                             (static_cast<std::uint32_t>(p[1]) << 16) |
                                                             (static_cast<std::uint32_t>(p[2]) << 24));
            return static_cast<float>(v >> 8) * (1.0f / 8388608.0f);
          },
          out);
    default:  // 32
      return Deinterleave(
          data, frames, ch, bps,
          [](const std::uint8_t* p) {
            return static_cast<float>(static_cast<double>(Load<std::int32_t>(p)) * (1.0 / 2147483648.0));
          },
          out);
  }
}

}  // namespace speech
