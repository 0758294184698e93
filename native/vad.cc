#include "vad.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <numeric>
#include <stdexcept>

#include "job.h"
#include "ort_env.h"

namespace speech {
namespace {

constexpr const char* kInputNames[] = {"input", "state", "sr"};
constexpr const char* kOutputNames[] = {"output", "stateN"};

bool HasNames(const std::vector<std::string>& names, const char* const* wanted, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (std::find(names.begin(), names.end(), wanted[i]) == names.end()) return false;
  }
  return true;
}

// Per-thread scratch, grown to the largest batch seen and then reused: RunBatch and
// ProcessChannels run on libuv workers concurrently, and a call allocates nothing once warm.
struct Scratch {
  std::vector<float> state_out;  // RunBatch: stateN, copied back over the caller's state
  std::vector<float> input;      // ProcessChannels: [B, kRow]
  std::vector<float> state;      // ProcessChannels: [2, B, 128]
  std::vector<float> probs;      // ProcessChannels: [B]
  std::vector<std::size_t> order, windows;
};
Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Copies n samples starting at `offset` of the virtual stream pending ++ audio.
void CopySamples(const std::vector<float>& pending, const float* audio, std::size_t offset, std::size_t n, float* out) {
  if (offset < pending.size()) {
    const std::size_t k = std::min(n, pending.size() - offset);
    std::memcpy(out, pending.data() + offset, k * sizeof(float));
    out += k;
    n -= k;
    offset = pending.size();
  }
  if (n > 0) std::memcpy(out, audio + (offset - pending.size()), n * sizeof(float));
}

}  // namespace

SileroVad::SileroVad(const std::string& model_path) {
  // Check first: ORT's own message for a missing file is an opaque protobuf/IO error.
  if (!std::ifstream(model_path, std::ios::binary).good()) {
    throw JobError("MODEL_LOAD", "Silero VAD model not found or unreadable: " + model_path);
  }
  try {
    session_ = Ort::Session(OrtEnv(), model_path.c_str(), DefaultSessionOptions());
    memory_ = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
    Ort::AllocatorWithDefaultOptions allocator;
    std::vector<std::string> inputs, outputs;
    for (std::size_t i = 0; i < session_.GetInputCount(); ++i) {
      inputs.emplace_back(session_.GetInputNameAllocated(i, allocator).get());
    }
    for (std::size_t i = 0; i < session_.GetOutputCount(); ++i) {
      outputs.emplace_back(session_.GetOutputNameAllocated(i, allocator).get());
    }
    if (inputs.size() != 3 || !HasNames(inputs, kInputNames, 3) || !HasNames(outputs, kOutputNames, 2)) {
      throw JobError("MODEL_LOAD",
                     "not a Silero VAD v5/v6 model (expects inputs input, state, sr "
                     "and outputs output, stateN): " +
                         model_path);
    }
  } catch (const Ort::Exception& e) {
    throw JobError("MODEL_LOAD", "cannot load Silero VAD model " + model_path + ": " + e.what());
  }
}

void SileroVad::RunBatch(const float* input, float* state, float* probs, int batch) const {
  if (batch <= 0) return;
  const std::size_t b = static_cast<std::size_t>(batch);
  std::vector<float>& state_out = ThreadScratch().state_out;
  if (state_out.size() < b * kStateSize) state_out.resize(b * kStateSize);

  const std::int64_t input_shape[] = {batch, kRow};
  const std::int64_t state_shape[] = {2, batch, kHidden};
  const std::int64_t probs_shape[] = {batch, 1};
  try {
    // Every tensor wraps memory we own, so a warm call allocates no tensor buffers. (Measured:
    // ORT-allocated outputs and IoBinding are within noise, ~3%, of this at every batch size;
    // a bound-once IoBinding would need per-thread, per-batch-size state for no real gain.)
    // ORT never writes input tensors, so the const_casts are safe.
    Ort::Value inputs[] = {
        Ort::Value::CreateTensor<float>(memory_, const_cast<float*>(input), b * kRow, input_shape, 2),
        Ort::Value::CreateTensor<float>(memory_, state, b * kStateSize, state_shape, 3),
        Ort::Value::CreateTensor<std::int64_t>(memory_, const_cast<std::int64_t*>(&sample_rate_), 1, nullptr, 0),
    };
    // stateN goes to scratch, not over `state`: an output aliasing an input is undefined in ORT.
    Ort::Value outputs[] = {
        Ort::Value::CreateTensor<float>(memory_, probs, b, probs_shape, 2),
        Ort::Value::CreateTensor<float>(memory_, state_out.data(), b * kStateSize, state_shape, 3),
    };
    session_.Run(Ort::RunOptions{nullptr}, kInputNames, inputs, 3, kOutputNames, outputs, 2);
  } catch (const Ort::Exception& e) {
    throw JobError("MODEL_FAILURE", std::string("Silero VAD inference failed: ") + e.what());
  }
  std::memcpy(state, state_out.data(), b * kStateSize * sizeof(float));
}

void VadChannel::Reset() {
  state.fill(0.0f);
  context.fill(0.0f);
  pending.clear();
  fail_injected = false;
}

void ProcessChannels(const SileroVad& vad, const std::vector<VadChannel*>& channels,
                     const std::vector<std::pair<const float*, std::size_t>>& audio,
                     std::vector<std::vector<float>>& probs, int max_batch) {
  constexpr std::size_t kWindow = SileroVad::kWindow, kContext = SileroVad::kContext;
  constexpr std::size_t kRow = SileroVad::kRow, kHidden = SileroVad::kHidden;
  const std::size_t n = channels.size();
  if (audio.size() != n) throw std::invalid_argument("ProcessChannels: audio.size() != channels.size()");
  if (max_batch < 1) throw std::invalid_argument("ProcessChannels: max_batch < 1");
  if (probs.size() < n) probs.resize(n);

  Scratch& s = ThreadScratch();
  // Windows per channel, and channels sorted by it (descending, stable): the channels that still
  // have a window at step t are then a prefix of `order`, so each step is contiguous chunks.
  s.windows.resize(n);
  std::size_t max_windows = 0;
  for (std::size_t i = 0; i < n; ++i) {
    s.windows[i] = (channels[i]->pending.size() + audio[i].second) / kWindow;
    max_windows = std::max(max_windows, s.windows[i]);
    probs[i].reserve(probs[i].size() + s.windows[i]);
  }
  s.order.resize(n);
  std::iota(s.order.begin(), s.order.end(), std::size_t{0});
  std::stable_sort(s.order.begin(), s.order.end(),
                   [&](std::size_t a, std::size_t b) { return s.windows[a] > s.windows[b]; });

  const std::size_t cap = std::min(static_cast<std::size_t>(max_batch), std::max<std::size_t>(n, 1));
  if (s.input.size() < cap * kRow) s.input.resize(cap * kRow);
  if (s.state.size() < cap * 2 * kHidden) s.state.resize(cap * 2 * kHidden);
  if (s.probs.size() < cap) s.probs.resize(cap);

  std::size_t active = n;
  for (std::size_t t = 0; t < max_windows; ++t) {
    while (active > 0 && s.windows[s.order[active - 1]] <= t) --active;
    for (std::size_t begin = 0; begin < active; begin += cap) {
      const std::size_t batch = std::min(cap, active - begin);
      // Gather: row r = [context | window t]; state [2][128] -> rows r of the [2, B, 128] tensor.
      for (std::size_t r = 0; r < batch; ++r) {
        const std::size_t i = s.order[begin + r];
        const VadChannel& ch = *channels[i];
        if (ch.fail_injected) throw JobError("MODEL_FAILURE", "injected VAD failure (VadChannel.injectFailure)");
        float* row = s.input.data() + r * kRow;
        std::memcpy(row, ch.context.data(), kContext * sizeof(float));
        CopySamples(ch.pending, audio[i].first, t * kWindow, kWindow, row + kContext);
        for (std::size_t k = 0; k < 2; ++k) {
          std::memcpy(s.state.data() + (k * batch + r) * kHidden, ch.state.data() + k * kHidden,
                      kHidden * sizeof(float));
        }
      }
      vad.RunBatch(s.input.data(), s.state.data(), s.probs.data(), static_cast<int>(batch));
      // Scatter: new state, the window's last 64 samples as the next context, the probability.
      for (std::size_t r = 0; r < batch; ++r) {
        const std::size_t i = s.order[begin + r];
        VadChannel& ch = *channels[i];
        for (std::size_t k = 0; k < 2; ++k) {
          std::memcpy(ch.state.data() + k * kHidden, s.state.data() + (k * batch + r) * kHidden,
                      kHidden * sizeof(float));
        }
        std::memcpy(ch.context.data(), s.input.data() + r * kRow + kRow - kContext, kContext * sizeof(float));
        probs[i].push_back(s.probs[r]);
      }
    }
  }

  // Carry the tail (< one window) to the next call.
  for (std::size_t i = 0; i < n; ++i) {
    VadChannel& ch = *channels[i];
    const std::size_t total = ch.pending.size() + audio[i].second;
    const std::size_t used = s.windows[i] * kWindow;
    const std::size_t rest = total - used;
    const float* in = audio[i].first;
    if (used >= ch.pending.size()) {
      // Usual case: the tail lies wholly in `audio`; assign() reuses pending's capacity.
      const std::size_t from = used - ch.pending.size();
      ch.pending.assign(in + from, in + from + rest);
    } else {
      // pending held more than was consumed (only if the caller filled it beyond a window).
      ch.pending.erase(ch.pending.begin(), ch.pending.begin() + static_cast<std::ptrdiff_t>(used));
      if (audio[i].second > 0) ch.pending.insert(ch.pending.end(), in, in + audio[i].second);
    }
  }
}

}  // namespace speech
