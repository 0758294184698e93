// The interface every speech model implements. Models are shared by all streams: Run is called
// concurrently from several threadpool workers and must be thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "job.h"

namespace speech {

struct ModelOutput {
  std::optional<std::int64_t> count;  // the stub's answer: samples seen
  std::optional<std::string> text;    // a recogniser's transcript
  std::vector<std::int64_t> ids;      // the recogniser's tokens (a later request's draft)
  int decoder_calls = 0;              // a recogniser's decoder calls for the rows it was decoded with
};

// One utterance of a batch; `draft`: tokens the model is likely to produce (the previous interim
// of the same utterance), which a recogniser may check in one call instead of decoding them.
struct ModelInput {
  const float* samples = nullptr;
  std::size_t count = 0;
  std::vector<std::int64_t> draft;
};

// An item's answer, or its failure: a JobError's code and message, or (panicked) an unexpected
// exception, which fails that item alone as NATIVE_PANIC.
struct ModelResult {
  ModelOutput output;
  std::string error_code;  // empty: ok
  std::string error_message;
  bool panicked = false;
};

class Model {
 public:
  virtual ~Model() = default;
  // 16 kHz mono samples in [-1, 1]. Throws JobError for expected failures.
  virtual ModelOutput Run(const float* samples, std::size_t count) = 0;
  // How much (in samples) the utterances of one RunBatch may differ in length and still be
  // computed together; 0: any (the default, item by item, has no such bound).
  virtual std::size_t MaxPadSamples() const { return 0; }
  // Which weights it runs on, for logs: "stub", "package" (as published), "int8" (derived).
  virtual const char* Weights() const { return "stub"; }
  // Many utterances in one job, answers in order. By default one Run each, an item's exception
  // failing that item alone; a model that can batch its computation overrides this.
  virtual std::vector<ModelResult> RunBatch(const std::vector<ModelInput>& inputs) {
    std::vector<ModelResult> results(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      try {
        results[i].output = Run(inputs[i].samples, inputs[i].count);
      } catch (const JobError& e) {
        results[i].error_code = e.code();
        results[i].error_message = e.what();
      } catch (const std::exception& e) {
        results[i].error_code = "NATIVE_PANIC";
        results[i].error_message = std::string("inference task panicked: ") + e.what();
        results[i].panicked = true;
      }
    }
    return results;
  }
};

}  // namespace speech
