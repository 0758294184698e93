// Moonshine overhead harness (built and run by bench/asr.ts; not part of the server).
//
// Runs the server's own MoonshineModel::Transcribe (native/models/moonshine.cc, compiled in
// unchanged) on one thread and times, inside every call, each ONNX Runtime Run it makes: the
// harness swaps the OrtApi table the C++ API calls through for a copy whose Run reads the clock
// around the real one. So per transcription it reports the call's wall time next to the time
// spent in the encoder and decoder Run calls themselves ("bare ORT"), and the model's overhead
// is everything else: tensor set-up, argmax, cache hand-over, detokenising.
//
// Usage: asr_bench MODEL_DIR RUNS FILE...   (each FILE: raw little-endian float32 16 kHz mono)
// Prints one JSON object on stdout: load seconds and per file the ids, the text and the median
// seconds of the whole call, of its Run calls and of the model's own encoder/decoder timers.

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
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
using bench::Median;
using bench::Seconds;

double Since(Clock::time_point t) { return Seconds(t, Clock::now()); }

// --- The timed Run: the harness is single-threaded, so plain globals suffice ---
const OrtApi* g_real = nullptr;
OrtApi g_timed;
double g_encoder_run = 0, g_decoder_run = 0;
int g_encoder_runs = 0, g_decoder_runs = 0;

OrtStatusPtr ORT_API_CALL TimedRun(OrtSession* session, const OrtRunOptions* options,
                                   const char* const* input_names, const OrtValue* const* inputs,
                                   std::size_t input_len, const char* const* output_names,
                                   std::size_t output_len, OrtValue** outputs) noexcept {
  const auto start = Clock::now();
  OrtStatusPtr status =
      g_real->Run(session, options, input_names, inputs, input_len, output_names, output_len, outputs);
  const double seconds = Since(start);
  // The encoder is the session fed "input_values"; every other Run is a decoder step.
  if (input_len == 1 && std::strcmp(input_names[0], "input_values") == 0) {
    g_encoder_run += seconds;
    ++g_encoder_runs;
  } else {
    g_decoder_run += seconds;
    ++g_decoder_runs;
  }
  return status;
}

void InstallTimedRun() {
  g_real = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  g_timed = *g_real;
  g_timed.Run = &TimedRun;
  Ort::detail::Global::Api(&g_timed);  // what Ort::GetApi() returns from now on, in every TU
}

std::vector<float> ReadFloats(const char* path) {
  std::ifstream file(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!file.good() && !file.eof()) {
    std::fprintf(stderr, "cannot read %s\n", path);
    std::exit(2);
  }
  std::vector<float> samples(bytes.size() / sizeof(float));
  std::memcpy(samples.data(), bytes.data(), samples.size() * sizeof(float));
  return samples;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: asr_bench MODEL_DIR RUNS FILE...\n");
    return 2;
  }
  const int runs = std::max(1, std::atoi(argv[2]));
  InstallTimedRun();

  const auto load_start = Clock::now();
  speech::MoonshineModel model(argv[1]);
  const double load_seconds = Since(load_start);

  std::string json = "{\"load_s\":" + std::to_string(load_seconds) + ",\"files\":[";
  for (int f = 3; f < argc; ++f) {
    const std::vector<float> audio = ReadFloats(argv[f]);
    const speech::MoonshineTranscript first = model.Transcribe(audio.data(), audio.size());  // warm-up
    std::vector<double> total, ratio, encoder_run, decoder_run, run_sum, encoder_timer, decoder_timer;
    int encoder_runs = 0, decoder_runs = 0;
    for (int i = 0; i < runs; ++i) {
      g_encoder_run = g_decoder_run = 0;
      g_encoder_runs = g_decoder_runs = 0;
      const auto start = Clock::now();
      const speech::MoonshineTranscript t = model.Transcribe(audio.data(), audio.size());
      total.push_back(Since(start));
      if (t.ids != first.ids) {
        std::fprintf(stderr, "%s: run %d gave different ids\n", argv[f], i);
        return 1;
      }
      encoder_run.push_back(g_encoder_run);
      decoder_run.push_back(g_decoder_run);
      run_sum.push_back(g_encoder_run + g_decoder_run);
      ratio.push_back(total.back() / run_sum.back());
      encoder_timer.push_back(t.encoder_seconds);
      decoder_timer.push_back(t.decoder_seconds);
      encoder_runs = g_encoder_runs;
      decoder_runs = g_decoder_runs;
    }
    std::string ids = "[";
    for (std::size_t i = 0; i < first.ids.size(); ++i) ids += (i ? "," : "") + std::to_string(first.ids[i]);
    ids += "]";
    json += std::string(f > 3 ? "," : "") + "{\"samples\":" + std::to_string(audio.size()) + ",\"ids\":" + ids +
            ",\"text\":" + JsonString(first.text) + ",\"encoder_runs\":" + std::to_string(encoder_runs) +
            ",\"decoder_runs\":" + std::to_string(decoder_runs) + ",\"total_s\":" + std::to_string(Median(total)) +
            ",\"run_sum_s\":" + std::to_string(Median(run_sum)) +
            ",\"overhead\":" + std::to_string(Median(ratio)) + ",\"encoder_run_s\":" +
            std::to_string(Median(encoder_run)) + ",\"decoder_run_s\":" + std::to_string(Median(decoder_run)) +
            ",\"encoder_timer_s\":" + std::to_string(Median(encoder_timer)) + ",\"decoder_timer_s\":" +
            std::to_string(Median(decoder_timer)) + "}";
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  return 0;
}
