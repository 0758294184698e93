#include "models/stub.h"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "job.h"

namespace speech {

StubModel::StubModel(const StubOptions& options)
    : options_(options), rng_(options.seed != 0 ? options.seed : std::random_device{}()) {}

double StubModel::Uniform() {
  std::lock_guard<std::mutex> lock(rng_mutex_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

ModelOutput StubModel::Run(const float* /*samples*/, std::size_t count) {
  const double audio_seconds = static_cast<double>(count) / 16000.0;
  double cost_ms = options_.delay_ms + options_.constant_factor * audio_seconds * 1000.0;
  if (options_.jitter > 0) cost_ms *= 1.0 + options_.jitter * (2.0 * Uniform() - 1.0);
  if (!warm_.exchange(true)) cost_ms += options_.warmup_penalty_ms;
  if (cost_ms > 0) {
    // Occupies the worker like real inference would.
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cost_ms));
  }
  if (options_.panic_rate > 0 && Uniform() < options_.panic_rate) {
    throw std::logic_error("stub model panic (injected by panic_rate)");
  }
  if (options_.failure_rate > 0 && Uniform() < options_.failure_rate) {
    throw JobError("MODEL_FAILURE", "stub model failure (injected by failure_rate)");
  }
  ModelOutput out;
  out.count = static_cast<std::int64_t>(count);
  return out;
}

}  // namespace speech
