// Resampler benchmark harness (built and run by bench/resampler.ts; not part of the server).
//
// Converts the same input to 16 kHz with our native/resampler.cc, libsoxr (HQ, MQ) and speexdsp
// (quality 8, 10), on one thread, in 100 ms chunks as the server receives them, and measures
//   - speed: input samples per second, the median of several timed runs, the implementations
//     interleaved run by run so a noisy neighbour slows them alike;
//   - quality: for inputs above 16 kHz the worst residue of a tone that must not pass (8.1 to
//     20 kHz: anything there would alias into the output band); for 8 kHz input the worst
//     residue beside a passband tone (its images and noise); and the gain at the passband edge
//     (7 kHz, or 45% of an input rate below 16 kHz).
// Prints one JSON object on stdout.
//
// Usage: resampler_bench [--quick]

#include <soxr.h>
#include <speex/speex_resampler.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bench_stats.h"
#include "resampler.h"

namespace {

using bench::Clock;
using bench::Median;
using bench::Seconds;

constexpr int kOut = 16000;
constexpr double kPi = 3.14159265358979323846;

// One streaming mono converter to 16 kHz: Process appends the output of n more input samples.
class Converter {
 public:
  virtual ~Converter() = default;
  virtual void Process(const float* in, std::size_t n, std::vector<float>& out) = 0;

 protected:
  // The peers' libraries take what fits: `step(in, in_len, out, room)` converts some input into at
  // most `room` samples and returns {input consumed, output written}; this feeds it all of `in`.
  template <typename Step>
  static void FeedAll(const float* in, std::size_t n, double ratio, std::vector<float>& out, Step step) {
    std::size_t done = 0;
    while (done < n) {
      const std::size_t room = static_cast<std::size_t>(static_cast<double>(n - done) * ratio) + 256;
      const std::size_t base = out.size();
      out.resize(base + room);
      const auto [consumed, written] = step(in + done, n - done, out.data() + base, room);
      out.resize(base + written);
      done += consumed;
    }
  }
};

class Ours final : public Converter {
 public:
  explicit Ours(int rate) : r_(rate) {}
  void Process(const float* in, std::size_t n, std::vector<float>& out) override { r_.Process(in, n, out); }

 private:
  speech::Resampler r_;
};

class Soxr final : public Converter {
 public:
  Soxr(int rate, unsigned long recipe) : ratio_(static_cast<double>(kOut) / rate) {
    soxr_error_t error = nullptr;
    const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    const soxr_quality_spec_t quality = soxr_quality_spec(recipe, 0);
    const soxr_runtime_spec_t runtime = soxr_runtime_spec(1);  // one thread, like ours
    s_ = soxr_create(rate, kOut, 1, &error, &io, &quality, &runtime);
    if (error != nullptr || s_ == nullptr) throw std::runtime_error(std::string("soxr_create: ") + (error ? error : "null"));
  }
  ~Soxr() override { soxr_delete(s_); }
  void Process(const float* in, std::size_t n, std::vector<float>& out) override {
    FeedAll(in, n, ratio_, out, [this](const float* src, std::size_t len, float* dst, std::size_t room) {
      std::size_t idone = 0, odone = 0;
      soxr_error_t error = soxr_process(s_, src, len, &idone, dst, room, &odone);
      if (error != nullptr) throw std::runtime_error(std::string("soxr_process: ") + error);
      return std::pair{idone, odone};
    });
  }

 private:
  soxr_t s_ = nullptr;
  double ratio_;
};

class Speex final : public Converter {
 public:
  Speex(int rate, int quality) : ratio_(static_cast<double>(kOut) / rate) {
    int error = 0;
    s_ = speex_resampler_init(1, static_cast<spx_uint32_t>(rate), kOut, quality, &error);
    if (s_ == nullptr || error != RESAMPLER_ERR_SUCCESS) throw std::runtime_error("speex_resampler_init failed");
  }
  ~Speex() override { speex_resampler_destroy(s_); }
  void Process(const float* in, std::size_t n, std::vector<float>& out) override {
    FeedAll(in, n, ratio_, out, [this](const float* src, std::size_t len, float* dst, std::size_t room) {
      spx_uint32_t in_len = static_cast<spx_uint32_t>(len), out_len = static_cast<spx_uint32_t>(room);
      speex_resampler_process_float(s_, 0, src, &in_len, dst, &out_len);
      return std::pair<std::size_t, std::size_t>{in_len, out_len};
    });
  }

 private:
  SpeexResamplerState* s_ = nullptr;
  double ratio_;
};

struct Impl {
  const char* name;
  std::unique_ptr<Converter> (*make)(int rate);
};

const Impl kImpls[] = {
    {"ours", [](int r) -> std::unique_ptr<Converter> { return std::make_unique<Ours>(r); }},
    {"soxr_hq", [](int r) -> std::unique_ptr<Converter> { return std::make_unique<Soxr>(r, SOXR_HQ); }},
    {"soxr_mq", [](int r) -> std::unique_ptr<Converter> { return std::make_unique<Soxr>(r, SOXR_MQ); }},
    {"speex_q8", [](int r) -> std::unique_ptr<Converter> { return std::make_unique<Speex>(r, 8); }},
    {"speex_q10", [](int r) -> std::unique_ptr<Converter> { return std::make_unique<Speex>(r, 10); }},
};
constexpr std::size_t kImplCount = sizeof(kImpls) / sizeof(kImpls[0]);

// Feeds x in chunks of `chunk` samples, appending all output to `out`.
void Feed(Converter& c, const std::vector<float>& x, std::size_t chunk, std::vector<float>& out) {
  for (std::size_t i = 0; i < x.size(); i += chunk) c.Process(x.data() + i, std::min(chunk, x.size() - i), out);
}

std::vector<float> Tone(double freq, int rate, double seconds, double amplitude, double phase) {
  std::vector<float> x(static_cast<std::size_t>(std::lround(seconds * rate)));
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<float>(amplitude * std::sin(2 * kPi * freq * static_cast<double>(i) / rate + phase));
  }
  return x;
}

// Speech-like busy input: two tones and white noise (a fixed LCG).
std::vector<float> Busy(int rate, std::size_t n) {
  std::vector<float> x(n);
  std::uint32_t seed = 12345;
  for (std::size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    const double t = static_cast<double>(i) / rate;
    x[i] = static_cast<float>(0.3 * std::sin(2 * kPi * 440 * t) + 0.2 * std::sin(2 * kPi * 3100 * t) +
                              0.1 * (static_cast<double>(seed) / 4294967296.0 - 0.5));
  }
  return x;
}

// Least-squares fit of a sinusoid at freq (Hz at 16 kHz) to y[from, to): amplitude, and the RMS
// of what is left.
struct Fit {
  double amplitude, residue_rms;
};
Fit FitTone(const std::vector<float>& y, double freq, std::size_t from, std::size_t to) {
  const double w = 2 * kPi * freq / kOut;
  double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
  for (std::size_t i = from; i < to; ++i) {
    const double s = std::sin(w * static_cast<double>(i)), c = std::cos(w * static_cast<double>(i));
    ss += s * s, cc += c * c, sc += s * c, ys += y[i] * s, yc += y[i] * c;
  }
  const double det = ss * cc - sc * sc;
  const double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  double r2 = 0;
  for (std::size_t i = from; i < to; ++i) {
    const double e = y[i] - a * std::sin(w * static_cast<double>(i)) - b * std::cos(w * static_cast<double>(i));
    r2 += e * e;
  }
  return {std::hypot(a, b), std::sqrt(r2 / static_cast<double>(to - from))};
}

double Rms(const std::vector<float>& y, std::size_t from, std::size_t to) {
  double s = 0;
  for (std::size_t i = from; i < to; ++i) s += static_cast<double>(y[i]) * y[i];
  return std::sqrt(s / static_cast<double>(to - from));
}

struct Quality {
  double attenuation_db;  // worst over the tones: how far below the input tone the residue stays
  double edge_gain_db;    // gain at the passband edge
};

// Output of one tone through a fresh converter, in 100 ms chunks; the measurement window skips
// 150 ms at either end (onset, every library's delay, the missing tail).
std::vector<float> Through(const Impl& impl, int rate, const std::vector<float>& x) {
  std::unique_ptr<Converter> c = impl.make(rate);
  std::vector<float> y;
  Feed(*c, x, static_cast<std::size_t>(rate / 10), y);
  return y;
}

Quality Measure(const Impl& impl, int rate, double seconds) {
  const double amplitude = 0.5, rms_in = amplitude / std::sqrt(2.0);
  const std::size_t skip = kOut * 15 / 100;
  double worst = 1e9;
  if (rate > kOut) {
    for (double f : {8100.0, 8500.0, 9000.0, 10000.0, 12000.0, 16000.0, 20000.0}) {
      if (f >= 0.49 * rate) continue;
      const std::vector<float> y = Through(impl, rate, Tone(f, rate, seconds, amplitude, 0.7));
      if (y.size() < 3 * skip) throw std::runtime_error(std::string(impl.name) + ": too little output");
      worst = std::min(worst, -20 * std::log10(Rms(y, skip, y.size() - skip) / rms_in + 1e-300));
    }
  } else {
    for (double f : {500.0, 1000.0, 2000.0, 3000.0, 3500.0}) {
      if (f >= 0.45 * rate) continue;
      const std::vector<float> y = Through(impl, rate, Tone(f, rate, seconds, amplitude, 0.7));
      if (y.size() < 3 * skip) throw std::runtime_error(std::string(impl.name) + ": too little output");
      worst = std::min(worst, -20 * std::log10(FitTone(y, f, skip, y.size() - skip).residue_rms / rms_in + 1e-300));
    }
  }
  const double edge = rate > kOut ? 7000.0 : 0.45 * rate;
  const std::vector<float> y = Through(impl, rate, Tone(edge, rate, seconds, amplitude, 0.7));
  const double gain = 20 * std::log10(FitTone(y, edge, skip, y.size() - skip).amplitude / amplitude);
  return {worst, gain};
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int rates[] = {44100, 48000, 8000};
  const int runs = quick ? 3 : 9;
  const double min_run_seconds = quick ? 0.002 : 0.05;
  const double input_seconds = quick ? 0.5 : 10.0;  // speed input, repeated as often as needed
  const double tone_seconds = 1.0;  // cheap even when quick; shorter leaves too little past the edges

  std::printf("{\"soxr\":\"%s\",\"runs\":%d,\"chunk_ms\":100,\"results\":[", soxr_version(), runs);
  bool first = true;
  for (const int rate : rates) {
    const std::vector<float> x = Busy(rate, static_cast<std::size_t>(input_seconds * rate));
    const std::size_t chunk = static_cast<std::size_t>(rate / 10);
    std::vector<std::unique_ptr<Converter>> conv;
    std::vector<int> passes;
    std::vector<float> out;
    out.reserve(static_cast<std::size_t>(input_seconds * kOut) + 4096);
    // Warm up each (tables, caches, allocations) and size its runs to at least min_run_seconds.
    for (const Impl& impl : kImpls) {
      conv.push_back(impl.make(rate));
      out.clear();
      const auto t0 = Clock::now();
      Feed(*conv.back(), x, chunk, out);
      const double t = Seconds(t0, Clock::now());
      // Sanity: every implementation produces the expected amount of output, less its delay.
      const double expected = static_cast<double>(x.size()) * kOut / rate;
      if (static_cast<double>(out.size()) < expected - 2000 || static_cast<double>(out.size()) > expected + 1) {
        std::fprintf(stderr, "%s at %d Hz: %zu output samples for %zu input\n", impl.name, rate, out.size(), x.size());
        return 1;
      }
      passes.push_back(std::max(1, static_cast<int>(std::ceil(min_run_seconds / std::max(t, 1e-9)))));
    }
    std::vector<std::vector<double>> rates_seen(kImplCount);
    for (int r = 0; r < runs; ++r) {
      for (std::size_t k = 0; k < kImplCount; ++k) {
        const auto t0 = Clock::now();
        for (int p = 0; p < passes[k]; ++p) {
          out.clear();
          Feed(*conv[k], x, chunk, out);
        }
        const double t = Seconds(t0, Clock::now());
        rates_seen[k].push_back(static_cast<double>(x.size()) * passes[k] / t);
      }
    }
    for (std::size_t k = 0; k < kImplCount; ++k) {
      const Quality q = Measure(kImpls[k], rate, tone_seconds);
      std::printf("%s{\"impl\":\"%s\",\"rate\":%d,\"samples_per_s\":%.6g,\"attenuation_db\":%.2f,\"edge_gain_db\":%.4f}",
                  first ? "" : ",", kImpls[k].name, rate, Median(rates_seen[k]), q.attenuation_db, q.edge_gain_db);
      first = false;
    }
  }
  std::printf("]}\n");
  return 0;
}
