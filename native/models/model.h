// The interface every speech model implements. Models are shared by all streams: Run is called
// concurrently from several threadpool workers and must be thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace speech {

struct ModelOutput {
  std::optional<std::int64_t> count;  // the stub's answer: samples seen
  std::optional<std::string> text;    // a recogniser's transcript
};

class Model {
 public:
  virtual ~Model() = default;
  // 16 kHz mono samples in [-1, 1]. Throws JobError for expected failures.
  virtual ModelOutput Run(const float* samples, std::size_t count) = 0;
};

}  // namespace speech
