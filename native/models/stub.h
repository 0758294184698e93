// The template's stub model: sleeps like a model would compute, optionally fails or panics.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>

#include "models/model.h"

namespace speech {

struct StubOptions {
  double delay_ms = 0;           // fixed cost per run
  double constant_factor = 0;    // extra cost per second of audio, in seconds (an RTF)
  double jitter = 0;             // the cost varies uniformly by ±jitter (a fraction, 0..1)
  double failure_rate = 0;       // probability a run fails with MODEL_FAILURE
  double panic_rate = 0;         // probability a run throws an unexpected exception
  double warmup_penalty_ms = 0;  // extra cost of the first run only
  std::uint64_t seed = 0;        // 0: seeded from std::random_device
};

class StubModel final : public Model {
 public:
  explicit StubModel(const StubOptions& options);
  ModelOutput Run(const float* samples, std::size_t count) override;

 private:
  // Draws are serialised; the sleep, where the time goes, is not.
  double Uniform();

  StubOptions options_;
  std::mutex rng_mutex_;
  std::mt19937_64 rng_;
  std::atomic<bool> warm_{false};
};

}  // namespace speech
