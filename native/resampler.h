// Streaming sample-rate conversion of one mono float channel to 16 kHz.
//
// Design (see resampler.cc): zero or more half-band decimators by 2 followed by one polyphase
// windowed-sinc stage for the remaining rational ratio L/M. All filters are linear phase and
// centred on the output instant, so output sample k is the input signal at time k / 16000 s.
// Filter banks are designed once per input rate and shared by every stream at that rate. A design
// takes milliseconds (up to ~20 ms, ~1-2 MB for an odd rate), so the constructor never designs: it
// only takes a bank already cached, and Prepare() designs a missing one, on a threadpool worker.
// One instance must be used by one thread at a time; distinct instances are independent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace speech {

class ResamplerTable;  // immutable filter bank for one rate ratio; shared across streams

class Resampler {
 public:
  static constexpr int kOutputRate = 16000;

  explicit Resampler(int input_rate);  // throws std::invalid_argument outside [8000,192000]

  // Whether the filter bank is here (or none is needed). If not, Prepare() designs it (or takes
  // it from the cache); Process and Flush call it first, so it is only needed to do it earlier.
  bool prepared() const;
  void Prepare();

  // Appends the output produced by `n` new input samples to `out`. The output is bit-identical
  // however the input is split into calls (for finite samples; NaN/Inf may spread a few samples
  // further in one split than another). `in` may be null when n == 0.
  void Process(const float* in, std::size_t n, std::vector<float>& out);
  // End of stream: appends the remaining output so that the total output count over the stream is
  // exactly round(total_input * 16000 / input_rate) (implicit zeros past the end). Then Reset().
  void Flush(std::vector<float>& out);
  void Reset();  // back to the initial state (same rate)

  // Group delay of the filter in OUTPUT samples that the stream withholds until more input
  // arrives: after any n input samples, Process has appended at least
  // round(n * 16000 / input_rate) - LatencyOutputSamples(input_rate) samples in total, and Flush
  // appends at most this many. 0 for 16 kHz input.
  static int LatencyOutputSamples(int input_rate);

 private:
  // History of one half-band decimator, split into even and odd input samples so the filter runs
  // over contiguous memory.
  struct HalfbandState {
    std::vector<float> even, odd;              // physical buffers, kept larger than the valid part
    std::size_t even_len = 0, odd_len = 0;     // valid elements
    std::int64_t even_base = 0, odd_base = 0;  // logical index of element 0
    std::int64_t in_count = 0;                 // input samples received
    std::int64_t out_count = 0;                // output samples produced
  };
  // History of the polyphase stage: a linear buffer, compacted now and then.
  struct PolyState {
    std::vector<float> buf;
    std::size_t len = 0;        // valid elements
    std::int64_t base = 0;      // logical input index of buf[0]
    std::int64_t in_count = 0;  // input samples received
    // Outputs are computed in groups of 16 consecutive ones (see resampler.cc). pos and phase
    // locate the first output of the current group, `lane` outputs of which were already emitted.
    std::int64_t pos = 0;    // integer input position
    std::int64_t phase = 0;  // fractional position, in units of 1/L
    int lane = 0;
  };

  void Run(const float* in, std::size_t n, std::vector<float>& out);
  void PushHalfband(std::size_t stage, const float* in, std::size_t n, std::vector<float>& out);
  void PushPoly(const float* in, std::size_t n, std::vector<float>& out);

  int input_rate_;
  std::shared_ptr<const ResamplerTable> table_;  // null for the 16 kHz pass-through
  std::vector<HalfbandState> halfbands_;
  PolyState poly_;
  std::uint64_t total_in_ = 0;     // input samples since the last Reset
  std::uint64_t total_out_ = 0;    // output samples since the last Reset
  std::vector<float> scratch_[2];  // half-band outputs between stages
  std::vector<float> rows_;        // interpolated tap rows (odd rates only)
};

// The rates whose banks stay cached once designed and never count against the budget below:
// 8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000.
bool IsCommonRate(int rate);

// Process-wide budget for new streams at uncommon rates whose bank is not cached (each costs a
// design): at most `designs_per_second` such admissions per second (bursts of as many, at least
// one), and at most `max_rates` distinct uncommon rates in use by streams at once (it can be
// exceeded by the designs still in flight). 0 leaves either unlimited (the default).
void SetResamplerBudget(double designs_per_second, int max_rates);
enum class RateAdmission { kOk, kTooManyDesigns, kTooManyRates };
// Whether a new stream at `input_rate` may start now (cheap: a map lookup under the cache's lock;
// an admission of an uncached uncommon rate spends one design of the budget).
RateAdmission AdmitRate(int input_rate);

// A thread that runs JavaScript calls this once: a design on it would be counted
// (designs_on_js_thread), which must stay 0.
void MarkJsThread();

struct ResamplerStats {
  std::int64_t tables = 0;       // banks alive (cached or held by a stream)
  std::int64_t table_bytes = 0;  // their heap bytes
  std::uint64_t designs = 0;     // banks designed since start
  std::uint64_t designs_on_js_thread = 0;
  std::uint64_t refused = 0;  // admissions refused by the budget
};
ResamplerStats GetResamplerStats();

}  // namespace speech
