// PCM decoding benchmark harness (built and run by bench/decode.ts; not part of the server).
//
// Decodes the same input files bench/decode.ts decodes in JavaScript, with native/pcm.cc's
// DecodeFrames (mono), and prints one JSON object on stdout: per encoding the median decoded
// samples per second over several timed runs and a checksum of the output (the sum of the
// samples, in order, in double precision) so the JavaScript peer can prove it did the same work.
//
// Usage: decode_bench DIR RUNS MIN_RUN_SECONDS   (DIR holds u8.bin, s16.bin, ... alaw.bin)

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bench_stats.h"
#include "pcm.h"

namespace {

using bench::Clock;
using bench::Median;
using bench::Seconds;

struct Case {
  const char* name;
  speech::Encoding encoding;
  int bit_depth;
  bool is_float;
};

const Case kCases[] = {
    {"u8", speech::Encoding::kPcm, 8, false},     {"s16", speech::Encoding::kPcm, 16, false},
    {"s24", speech::Encoding::kPcm, 24, false},   {"s32", speech::Encoding::kPcm, 32, false},
    {"f32", speech::Encoding::kPcm, 32, true},    {"f64", speech::Encoding::kPcm, 64, true},
    {"mulaw", speech::Encoding::kMulaw, 8, false}, {"alaw", speech::Encoding::kAlaw, 8, false},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: decode_bench DIR RUNS MIN_RUN_SECONDS\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int runs = std::atoi(argv[2]);
  const double min_run = std::atof(argv[3]);
  std::printf("{\"runs\":%d,\"results\":[", runs);
  bool first = true;
  for (const Case& c : kCases) {
    std::ifstream file(dir + "/" + c.name + ".bin", std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "cannot read %s/%s.bin\n", dir.c_str(), c.name);
      return 1;
    }
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    speech::PcmFormat format;
    format.encoding = c.encoding;
    format.channels = 1;
    format.sample_rate = 16000;
    format.bit_depth = c.bit_depth;
    format.is_float = c.is_float;
    if (const auto problem = speech::ValidateFormat(format)) {
      std::fprintf(stderr, "%s: %s\n", c.name, problem->c_str());
      return 1;
    }
    const std::size_t frames = bytes.size() / static_cast<std::size_t>(format.FrameBytes());
    std::vector<std::vector<float>> out(1);
    out[0].reserve(frames);
    auto pass = [&] {
      out[0].clear();  // keeps its capacity: no allocation inside the timed loop
      speech::DecodeFrames(format, bytes.data(), frames, out);
    };
    // Warm-up, and runs sized to at least min_run seconds.
    auto t0 = Clock::now();
    pass();
    const double once = Seconds(t0, Clock::now());
    const int passes = std::max(1, static_cast<int>(min_run / std::max(once, 1e-9)) + 1);
    std::vector<double> speeds;
    for (int r = 0; r < runs; ++r) {
      t0 = Clock::now();
      for (int p = 0; p < passes; ++p) pass();
      const double t = Seconds(t0, Clock::now());
      speeds.push_back(static_cast<double>(frames) * passes / t);
    }
    double checksum = 0;
    for (const float v : out[0]) checksum += v;
    std::printf("%s{\"encoding\":\"%s\",\"samples\":%zu,\"samples_per_s\":%.6g,\"checksum\":%.17g}", first ? "" : ",",
                c.name, frames, Median(speeds), checksum);
    first = false;
  }
  std::printf("]}\n");
  return 0;
}
