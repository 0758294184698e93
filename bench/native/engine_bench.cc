// Inference-engine harness (built and run by bench/engine.ts; not part of the server).
//
// Runs the server's own MoonshineModel::TranscribeBatch (native/models/moonshine.cc, compiled in
// unchanged) on one thread over a set of utterances, in the modes the engine chooses between:
//   single            each utterance alone, greedy from scratch (the reference)
//   batch ROWS PAD    all utterances in one call: groups of at most ROWS rows whose lengths are
//                     within PAD samples (each padded with silence to its group's longest)
//   interims STEP     each utterance's prefixes every STEP samples, then the whole utterance (the
//                     final), as the segmented route's interims would ask: once from scratch, once
//                     with the previous answer's ids as the draft
//
// Usage: [WEIGHTS=int8] engine_bench MODEL_DIR AUDIO.f32 START:END... -- MODE ARGS...
// (WEIGHTS=int8: the folder's int8 derivation, as MODEL_WEIGHTS=auto serves on a VNNI CPU)
// (AUDIO: raw float32 16 kHz mono; START:END in samples). Prints one JSON object: wall and CPU
// seconds, and per utterance the ids and text (for interims: the points where the texts with and
// without the draft differ).

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bench_stats.h"
#include "models/moonshine.h"

namespace {

using bench::Clock;

std::string Json(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string Ids(const std::vector<std::int64_t>& ids) {
  std::string out = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "]";
}

struct Span {
  std::size_t start, end;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: engine_bench MODEL_DIR AUDIO.f32 START:END... -- MODE ARGS...\n");
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> audio(bytes.size() / sizeof(float));
  std::memcpy(audio.data(), bytes.data(), audio.size() * sizeof(float));
  std::vector<Span> spans;
  int arg = 3;
  for (; arg < argc && std::strcmp(argv[arg], "--") != 0; ++arg) {
    Span s{};
    if (std::sscanf(argv[arg], "%zu:%zu", &s.start, &s.end) != 2 || s.end > audio.size() || s.start >= s.end) return 2;
    spans.push_back(s);
  }
  if (arg + 1 >= argc) return 2;
  const std::string mode = argv[arg + 1];

  const char* weights = std::getenv("WEIGHTS");
  speech::MoonshineModel model(argv[1], weights && std::strcmp(weights, "int8") == 0 ? speech::MoonshineWeights::kInt8
                                                                                    : speech::MoonshineWeights::kPackage);
  // Warm-up: ORT sizes its arenas and picks kernels on the first runs.
  model.TranscribeBatch({{audio.data() + spans[0].start, spans[0].end - spans[0].start, {}}}, {});

  std::string out = "{\"mode\":" + Json(mode);
  const auto start = Clock::now();
  const std::clock_t cpu_start = std::clock();  // this process's CPU time: steadier than wall time on a busy machine
  if (mode == "single" || mode == "batch") {
    speech::MoonshineBatchOptions options;
    if (mode == "single") options.max_rows = 1;
    if (mode == "batch" && arg + 3 < argc) {
      options.max_rows = std::strtoul(argv[arg + 2], nullptr, 10);
      options.max_pad_samples = std::strtoul(argv[arg + 3], nullptr, 10);
    }
    std::vector<speech::MoonshineRequest> requests;
    for (const Span& s : spans) requests.push_back({audio.data() + s.start, s.end - s.start, {}});
    std::vector<speech::MoonshineTranscript> results;
    if (mode == "single") {
      for (const auto& r : requests) results.push_back(model.TranscribeBatch({r}, options)[0]);
    } else {
      results = model.TranscribeBatch(requests, options);
    }
    const double seconds = bench::Seconds(start, Clock::now());
    out += ",\"seconds\":" + std::to_string(seconds) + ",\"utterances\":[";
    for (std::size_t i = 0; i < results.size(); ++i) {
      out += std::string(i ? "," : "") + "{\"ids\":" + Ids(results[i].ids) + ",\"text\":" + Json(results[i].text) +
             ",\"steps\":" + std::to_string(results[i].decoder_steps) +
             ",\"encoder_seconds\":" + std::to_string(results[i].encoder_seconds) +
             ",\"decoder_seconds\":" + std::to_string(results[i].decoder_seconds) + "}";
    }
    out += "]";
  } else if (mode == "interims" && arg + 2 < argc) {
    const std::size_t step = std::strtoul(argv[arg + 2], nullptr, 10);
    double scratch_seconds = 0, draft_seconds = 0, scratch_final = 0, draft_final = 0;
    std::string points;
    int differing = 0, differing_finals = 0, count = 0;
    for (const Span& s : spans) {
      std::vector<std::int64_t> draft;
      const std::size_t n = s.end - s.start;
      for (std::size_t end = step; ; end += step) {
        const bool final = end >= n;
        const std::size_t length = final ? n : end;
        const float* samples = audio.data() + s.start;
        auto t0 = Clock::now();
        const auto scratch = model.TranscribeBatch({{samples, length, {}}}, {})[0];
        auto t1 = Clock::now();
        const auto drafted = model.TranscribeBatch({{samples, length, draft}}, {})[0];
        auto t2 = Clock::now();
        scratch_seconds += bench::Seconds(t0, t1);
        draft_seconds += bench::Seconds(t1, t2);
        if (final) {
          scratch_final += bench::Seconds(t0, t1);
          draft_final += bench::Seconds(t1, t2);
        }
        ++count;
        if (scratch.ids != drafted.ids) {
          ++differing;
          if (final) ++differing_finals;
          points += std::string(points.empty() ? "" : ",") + "{\"scratch\":" + Json(scratch.text) + ",\"draft\":" + Json(drafted.text) +
                    ",\"final\":" + (final ? "true" : "false") + "}";
        }
        draft = drafted.ids;
        if (final) break;
      }
    }
    out += ",\"points\":" + std::to_string(count) + ",\"differing\":" + std::to_string(differing) +
           ",\"differing_finals\":" + std::to_string(differing_finals) + ",\"scratch_seconds\":" + std::to_string(scratch_seconds) +
           ",\"draft_seconds\":" + std::to_string(draft_seconds) + ",\"scratch_final_seconds\":" + std::to_string(scratch_final) +
           ",\"draft_final_seconds\":" + std::to_string(draft_final) + ",\"differences\":[" + points + "]";
  } else {
    return 2;
  }
  out += ",\"cpu_seconds\":" + std::to_string(static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC);
  std::printf("%s}\n", out.c_str());
  return 0;
}
