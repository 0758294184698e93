// libFuzzer target for the audio front end: wire bytes -> speech::StreamState (native/stream_state.h:
// DecodeFrames + one Resampler per channel, with partial frames carried between pushes) -> 16 kHz.
// Built and run by test/fuzz/run.sh (clang -fsanitize=fuzzer,address,undefined); on top of the
// sanitizers it checks, for every input:
//   1. decoding: StreamState's output per channel is bit-identical to an independent reference
//      decoder (written from the format definitions, not from pcm.cc) followed by a fresh
//      Resampler -> catches deinterleaving and carry-over mistakes at every rate;
//   2. chunking: the same bytes pushed in fuzzer-chosen pieces (0 bytes, 1 byte, split frames,
//      whole blocks, ...) give bit-identical output to one push;
//   3. reuse: a stream used again after Flush() gives the same output as a fresh one;
//   4. counts: after each push the output so far is within [round(n*16000/rate) - latency,
//      round(n*16000/rate)], after Flush() it is exactly round(n*16000/rate) per channel, where n
//      is the number of whole frames; Flush() reports the bytes of the incomplete trailing frame;
//   5. values: every output sample is finite; decoded samples lie in [-1, 1] and so does the
//      16 kHz pass-through; resampled samples lie within +-kMaxGain (the filters' L1 norm: a
//      full-scale input can legitimately overshoot 1 by that much, see below).
//
// Input layout (all values are reduced modulo their range, so every input is valid):
//   [0] format: pcm u8, s16, s24, s32, f32, f64, mulaw, alaw   [1] channels 1..8
//   [2] rate: < 0xE0 picks from kRates, else an arbitrary rate 8000..192000 from [2..4]
//   [5] repeat: the payload is repeated 1..32 times (long streams from short inputs, so buffer
//       compaction and the 4096-sample internal blocks are reached)
//   [6..7] seed of the chunking
//   [8..]  payload: the wire bytes
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pcm.h"
#include "resampler.h"
#include "stream_state.h"

namespace {

using speech::Encoding;
using speech::PcmFormat;
using speech::Resampler;
using speech::StreamState;
using Channels = std::vector<std::vector<float>>;

// Common rates, rates either side of 16 kHz and the half-band thresholds, and odd ones (large
// L/M, interpolated filter rows).
constexpr int kRates[] = {8000,  11025, 12000, 16000, 22050, 24000,  32000,  44100,  48000,
                          64000, 88200, 96000, 176400, 192000, 8001, 9600, 10000, 12345, 15999,
                          16001, 19200, 31999, 34000, 37800, 44056, 47999, 50000, 77777, 100000,
                          191999};
constexpr int kNumRates = sizeof(kRates) / sizeof(kRates[0]);

// Largest |output| a full-scale input can produce: the L1 norm of the resampling filter (max over
// output phases). Measured with impulse responses for every rate in kRates: 2.67 for upsampling
// from 8-12 kHz, <= 2.30 when downsampling, exactly 1 at 16 kHz. A read of stale or foreign
// memory, or a wrong tap index, shows up as a much larger value (or a mismatch in check 1).
constexpr float kMaxGain = 3.0f;

constexpr std::size_t kMaxStreamBytes = 1 << 15;  // payload x repeat: 4 resampler blocks of s16 mono

struct Fmt {
  Encoding encoding;
  int bit_depth;
  bool is_float;
  const char* name;
};
constexpr Fmt kFormats[] = {
    {Encoding::kPcm, 8, false, "u8"},     {Encoding::kPcm, 16, false, "s16"},
    {Encoding::kPcm, 24, false, "s24"},   {Encoding::kPcm, 32, false, "s32"},
    {Encoding::kPcm, 32, true, "f32"},    {Encoding::kPcm, 64, true, "f64"},
    {Encoding::kMulaw, 8, false, "mulaw"}, {Encoding::kAlaw, 8, false, "alaw"},
};

const char* g_what = "";  // the format under test, for failure messages

[[noreturn]] void Fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Fail(const char* fmt, ...) {
  std::fprintf(stderr, "\n==pcm_fuzz== INVARIANT VIOLATED (%s): ", g_what);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::abort();
}
#define CHECK(cond, ...) \
  do {                   \
    if (!(cond)) Fail(__VA_ARGS__); \
  } while (0)

// --- Reference decoder: from the format definitions (G.711 as in the ITU/Sun reference code) ---
float RefMulaw(std::uint8_t b) {
  const int u = static_cast<std::uint8_t>(~b);
  int t = ((u & 0x0F) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return static_cast<float>((u & 0x80) ? 0x84 - t : t - 0x84) / 32768.0f;
}

float RefAlaw(std::uint8_t b) {
  const int a = b ^ 0x55;
  int t = (a & 0x0F) << 4;
  const int seg = (a & 0x70) >> 4;
  if (seg == 0) {
    t += 8;
  } else {
    t += 0x108;
    if (seg > 1) t <<= seg - 1;
  }
  return static_cast<float>((a & 0x80) ? t : -t) / 32768.0f;
}

float RefSample(const Fmt& f, const std::uint8_t* p) {
  switch (f.encoding) {
    case Encoding::kMulaw: return RefMulaw(p[0]);
    case Encoding::kAlaw: return RefAlaw(p[0]);
    case Encoding::kPcm: break;
  }
  if (f.is_float) {
    double d;
    if (f.bit_depth == 32) {
      float x;
      std::memcpy(&x, p, 4);
      d = x;
    } else {
      std::memcpy(&d, p, 8);
    }
    if (std::isnan(d)) return 0.0f;
    return static_cast<float>(d < -1.0 ? -1.0 : (d > 1.0 ? 1.0 : d));  // clamp, then narrow
  }
  switch (f.bit_depth) {
    case 8: return static_cast<float>(static_cast<int>(p[0]) - 128) / 128.0f;
    case 16: return static_cast<float>(static_cast<std::int16_t>(p[0] | (p[1] << 8))) / 32768.0f;
    case 24: {
      std::int32_t v = p[0] | (p[1] << 8) | (p[2] << 16);
      if (v & 0x800000) v -= 0x1000000;
      return static_cast<float>(v) / 8388608.0f;
    }
    default: {
      const std::int32_t v = static_cast<std::int32_t>(static_cast<std::uint32_t>(p[0]) |
                                                      (static_cast<std::uint32_t>(p[1]) << 8) |
                                                      (static_cast<std::uint32_t>(p[2]) << 16) |
                                                      (static_cast<std::uint32_t>(p[3]) << 24));
      return static_cast<float>(static_cast<double>(v) / 2147483648.0);
    }
  }
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

std::size_t FirstDiff(const std::vector<float>& a, const std::vector<float>& b) {
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && std::memcmp(&a[i], &b[i], 4) == 0) ++i;
  return i;
}

// Where the `n` bytes to push start: null for every empty push, as the addon passes an empty
// Uint8Array's data. (StreamState::Push(nullptr, 0) with 2+ channels was undefined behaviour,
// nullptr + offset in native/pcm.cc Deinterleave, until it was fixed: issue #8.)
const std::uint8_t* Bytes(const std::vector<std::uint8_t>& v, std::size_t pos, std::size_t n) {
  static const std::uint8_t dummy = 0;
  if (n == 0) return nullptr;
  return v.empty() ? &dummy : v.data() + pos;
}

std::uint64_t Target(std::uint64_t frames, int rate) {  // round(frames * 16000 / rate), half up
  return (2 * frames * 16000 + static_cast<std::uint64_t>(rate)) / (2 * static_cast<std::uint64_t>(rate));
}

std::uint64_t SplitMix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Pushes `bytes` in pieces (one piece when seed == 0), checking the running counts; then flushes.
Channels RunStream(StreamState& st, const std::vector<std::uint8_t>& bytes, std::uint64_t seed) {
  const PcmFormat& f = st.format();
  const std::size_t frame = static_cast<std::size_t>(f.FrameBytes());
  const int latency = Resampler::LatencyOutputSamples(f.sample_rate);
  Channels total(static_cast<std::size_t>(f.channels));
  std::size_t pos = 0;
  do {
    std::size_t left = bytes.size() - pos, n = left;
    if (seed != 0) {
      const std::uint64_t r = SplitMix(seed);
      switch (r % 8) {
        case 0: n = 0; break;                              // empty push
        case 1: n = 1; break;                              // one byte
        case 2: n = 1 + (r >> 8) % (2 * frame); break;     // around a frame
        case 3: n = frame - 1 + (r >> 8) % 3; break;       // frame - 1 .. frame + 1
        case 4: n = 1 + (r >> 8) % 257; break;
        case 5: n = 1 + (r >> 8) % (4096 * frame + 7); break;  // up to a resampler block
        case 6: n = (r >> 8) % (left + 1); break;
        default: n = left; break;
      }
      if (n > left) n = left;
    }
    Channels out;  // fresh per push, like the addon's StreamJob
    st.Push(Bytes(bytes, pos, n), n, out);
    pos += n;
    // Every push returns one (maybe empty) vector per channel, also one that only extends an
    // incomplete frame (it used to return none, so the addon resolved with `channels: []`).
    CHECK(out.size() == total.size(), "push of %zu bytes returned %zu channel vectors, want %zu",
          n, out.size(), total.size());
    for (std::size_t c = 0; c < out.size(); ++c) {
      total[c].insert(total[c].end(), out[c].begin(), out[c].end());
    }
    const std::uint64_t target = Target(pos / frame, f.sample_rate);
    for (std::size_t c = 0; c < total.size(); ++c) {
      const std::uint64_t have = total[c].size();
      CHECK(have <= target, "after %zu bytes channel %zu has %llu samples, more than round(n*16000/rate) = %llu",
            pos, c, (unsigned long long)have, (unsigned long long)target);
      CHECK(have + static_cast<std::uint64_t>(latency) >= target,
            "after %zu bytes channel %zu has %llu samples, withholding more than the latency %d (target %llu)",
            pos, c, (unsigned long long)have, latency, (unsigned long long)target);
    }
  } while (seed != 0 && pos < bytes.size());
  Channels out;
  const std::size_t discarded = st.Flush(out);
  CHECK(discarded == bytes.size() % frame, "Flush discarded %zu bytes, want %zu", discarded,
        bytes.size() % frame);
  CHECK(out.size() == total.size(), "flush returned %zu channel vectors, want %zu", out.size(), total.size());
  const std::uint64_t target = Target(bytes.size() / frame, f.sample_rate);
  for (std::size_t c = 0; c < total.size(); ++c) {
    CHECK(out[c].size() <= static_cast<std::size_t>(latency), "flush appended %zu samples, latency is %d",
          out[c].size(), latency);
    total[c].insert(total[c].end(), out[c].begin(), out[c].end());
    CHECK(total[c].size() == target, "channel %zu: %zu samples after flush for %zu frames, want %llu", c,
          total[c].size(), bytes.size() / frame, (unsigned long long)target);
  }
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  const Fmt& fm = kFormats[data[0] % 8];
  PcmFormat f;
  f.encoding = fm.encoding;
  f.bit_depth = fm.bit_depth;
  f.is_float = fm.is_float;
  f.channels = 1 + data[1] % 8;
  if (data[2] < 0xE0) {
    f.sample_rate = kRates[data[2] % kNumRates];
  } else {
    const std::uint32_t r = (static_cast<std::uint32_t>(data[2] & 0x1F) << 16) | (data[3] << 8) | data[4];
    f.sample_rate = speech::kMinSampleRate + static_cast<int>(r % (speech::kMaxSampleRate - speech::kMinSampleRate + 1));
  }
  if (speech::ValidateFormat(f)) std::abort();  // the table above only holds valid formats
  // Filter banks are cached per rate but dropped once 8+ are unused, i.e. after nearly every
  // input here: keep the kRates ones alive (designing one costs up to ~100 ms under the
  // sanitizers). Arbitrary rates still go through design and eviction every time.
  static std::vector<Resampler> pinned = [] {
    std::vector<Resampler> v;
    for (int r : kRates) v.emplace_back(r);
    return v;
  }();
  const int repeat = 1 + data[5] % 32;
  const std::uint64_t seed = 1 + (static_cast<std::uint64_t>(data[6]) << 8 | data[7]);
  const std::uint8_t* payload = data + 8;
  const std::size_t payload_size = size - 8;

  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < repeat && bytes.size() + payload_size <= kMaxStreamBytes; ++i) {
    bytes.insert(bytes.end(), payload, payload + payload_size);
  }
  if (bytes.empty()) bytes.assign(payload, payload + std::min(payload_size, kMaxStreamBytes));

  char what[96];
  std::snprintf(what, sizeof what, "%s x%d @ %d Hz, %zu bytes, chunk seed %llu", fm.name, f.channels,
                f.sample_rate, bytes.size(), (unsigned long long)seed);
  g_what = what;

  const std::size_t frame = static_cast<std::size_t>(f.FrameBytes());
  const std::size_t frames = bytes.size() / frame;
  const std::size_t ch = static_cast<std::size_t>(f.channels);

  // Decoding alone: DecodeFrames == reference, all in [-1, 1].
  Channels decoded(ch), reference(ch);
  speech::DecodeFrames(f, Bytes(bytes, 0, bytes.size()), frames, decoded);
  for (std::size_t c = 0; c < ch; ++c) {
    reference[c].resize(frames);
    for (std::size_t i = 0; i < frames; ++i) {
      reference[c][i] = RefSample(fm, bytes.data() + i * frame + c * static_cast<std::size_t>(fm.bit_depth / 8));
    }
    CHECK(decoded[c].size() == frames, "DecodeFrames gave %zu samples for %zu frames", decoded[c].size(), frames);
    for (std::size_t i = 0; i < frames; ++i) {
      const float x = decoded[c][i];
      CHECK(std::isfinite(x) && x >= -1.0f && x <= 1.0f, "decoded sample %zu of channel %zu is %g", i, c, x);
      CHECK(std::memcmp(&x, &reference[c][i], 4) == 0, "decoded sample %zu of channel %zu is %.9g, reference %.9g",
            i, c, x, reference[c][i]);
    }
  }

  // The stream: one push, then the same stream again (reuse after Flush), then a fresh stream in
  // pieces; and the reference: each channel through a fresh Resampler directly.
  StreamState whole(f);
  const Channels a = RunStream(whole, bytes, 0);
  const Channels again = RunStream(whole, bytes, 0);
  StreamState pieces(f);
  const Channels b = RunStream(pieces, bytes, seed);
  const float bound = f.sample_rate == Resampler::kOutputRate ? 1.0f : kMaxGain;
  for (std::size_t c = 0; c < ch; ++c) {
    Resampler rs(f.sample_rate);
    std::vector<float> want;
    rs.Process(reference[c].data(), reference[c].size(), want);
    rs.Flush(want);
    CHECK(SameBits(a[c], want), "channel %zu: stream output differs from reference decode + resample at sample %zu (%zu vs %zu samples)",
          c, FirstDiff(a[c], want), a[c].size(), want.size());
    CHECK(SameBits(a[c], again[c]), "channel %zu: a stream reused after flush differs at sample %zu", c,
          FirstDiff(a[c], again[c]));
    CHECK(SameBits(a[c], b[c]), "channel %zu: chunked output differs from one push at sample %zu (%zu vs %zu samples)",
          c, FirstDiff(a[c], b[c]), b[c].size(), a[c].size());
    for (std::size_t i = 0; i < a[c].size(); ++i) {
      const float y = a[c][i];
      CHECK(std::isfinite(y) && std::fabs(y) <= bound, "output sample %zu of channel %zu is %g (bound %g)", i,
            c, y, bound);
    }
  }
  return 0;
}
