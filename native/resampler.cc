// Resampler design
//
// Chain: s >= 0 half-band decimators by 2 (while the rate stays above ~34 kHz and it is cheaper),
// then one polyphase Kaiser-windowed-sinc stage for the rational ratio L/M left (from gcd, e.g.
// 44.1 kHz: 44100 -> 22050 -> x 320/441). The sharp filter (7 kHz pass, 8 kHz stop) costs taps
// proportional to the rate it runs at, so halving first with cheap wide-transition half-bands
// roughly halves the work at 44.1/48 kHz and more above.
//
// Every filter is zero-phase about the output instant (the history starts with the right number
// of implicit zeros), so nothing needs delay compensation downstream: output k is the input at
// k / 16000 s. Taps are designed in double precision and run in float.
//
// Polyphase kernel: 16 consecutive outputs (a "group") share one input window; their taps are
// stored interleaved per group pattern, so each input sample is broadcast once against 16 taps
// (four SSE2 vectors). This beats a per-output dot product, which needs a coefficient load and an
// input load per four multiply-adds and is load-bound. Ratios with too many phases for such a
// table (odd rates) use rows interpolated between 1024 + 1 designed phases instead.
//
// Streaming: every stage keeps a linear history buffer, compacted once 2048 samples are consumed.
// An output is computed as soon as its input window is complete; a group whose later outputs
// still lack input is computed with zeros in their place and computed again once complete. The
// zeros only ever meet zero taps of the emitted outputs, so their values do not depend on the
// chunking (finite input).

#include "resampler.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>

// SSE2 is the x86-64 baseline. The portable fallback computes the same values (same operations
// in the same order); SPEECH_RESAMPLER_NO_SIMD forces it, e.g. to check exactly that.
#if (defined(__SSE2__) || defined(_M_X64)) && !defined(SPEECH_RESAMPLER_NO_SIMD)
#include <emmintrin.h>
#define SPEECH_RESAMPLER_SSE2 1
#else
#define SPEECH_RESAMPLER_SSE2 0
#endif

namespace speech {

namespace {

// --- Design targets -----------------------------------------------------------------------------
// Kaiser design attenuation. Measured through the whole chain this gives >= 93.9 dB for every
// tone that would alias (>= 8 kHz in), for every rate: margin over the 90 dB requirement.
constexpr double kAttenuationDb = 96.0;
// Half-band stages are cheap, and Kaiser's formula is a little optimistic for them: 2 dB more.
constexpr double kHalfbandAttenuationDb = 98.0;
// Downsampling: stopband from the output Nyquist, so nothing aliases into the output band at all.
// The design passband edge sits below 7 kHz because a windowed sinc is still within 0.06 dB a
// good way into its transition band: the 0.1 dB requirement at 7 kHz holds with ~17% fewer taps
// than a design flat to 1e-5 at 7 kHz.
constexpr double kPassHz = 6850.0;
constexpr double kStopHz = 8000.0;
// Upsampling (input below 16 kHz): stopband from the input Nyquist, so every image of every input
// tone is removed, and flat (ripple ~1e-4 dB) to this fraction of the input rate.
constexpr double kUpPassFraction = 0.45;
// A half-band stage is only worth it while its transition band is at least this wide.
constexpr double kMinHalfbandTransitionHz = 1000.0;

// --- Implementation constants -------------------------------------------------------------------
// Outputs computed together by the polyphase kernel (one SIMD lane each; see GroupDot).
constexpr int kGroup = 16;
// Largest interleaved group table (floats, 2 MB) before falling back to interpolated rows; the
// common rates need 0.2 MB at most (11025 Hz: 640 phases).
constexpr std::int64_t kMaxGroupTable = std::int64_t{1} << 19;
// Fallback for rates whose ratio has many phases (odd rates): kInterpPhases + 1 rows with linear
// interpolation between neighbouring rows, accurate to well over 100 dB with a small table.
constexpr std::int64_t kInterpPhases = 1024;
// Taps per polyphase row are a multiple of this (two SIMD vectors).
constexpr int kTapMultiple = 8;
// Half-band outputs are computed in whole blocks of this many (SIMD lanes).
constexpr int kHalfbandLanes = 16;
// Input samples per internal step, so history buffers stay small and cache resident whatever
// the caller's chunk size.
constexpr std::size_t kBlock = 4096;
// Consumed history is only moved to the front of a buffer once this much has accumulated.
constexpr std::int64_t kCompactAt = 2048;
// Room kept past the valid data of every buffer: half-band padding lanes read up to
// kHalfbandLanes - 1 samples past it. (The polyphase buffer also keeps a group window's worth.)
constexpr std::size_t kSlack = 2 * kHalfbandLanes;

constexpr double kPi = 3.14159265358979323846;

double BesselI0(double x) {
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 500; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

double KaiserBeta(double atten_db) {
  if (atten_db > 50.0) return 0.1102 * (atten_db - 8.7);
  if (atten_db >= 21.0) return 0.5842 * std::pow(atten_db - 21.0, 0.4) + 0.07886 * (atten_db - 21.0);
  return 0.0;
}

double Sinc(double x) {
  if (std::fabs(x) < 1e-12) return 1.0;
  return std::sin(kPi * x) / (kPi * x);
}

// Kaiser window over |t| < half_width, t in samples.
double Kaiser(double t, double half_width, double beta, double inv_i0_beta) {
  const double r = t / half_width;
  if (r <= -1.0 || r >= 1.0) return 0.0;
  return BesselI0(beta * std::sqrt(1.0 - r * r)) * inv_i0_beta;
}

// The chain chosen for one input rate: halfbands.size() decimators by 2, then a polyphase
// stage converting stage_rate = input / 2^s to 16 kHz by L/M.
struct HalfbandPlan {
  int pairs;    // K: non-zero taps on each side of the centre
  double beta;  // Kaiser window parameter
};

struct Plan {
  std::vector<HalfbandPlan> halfbands;
  std::int64_t up = 1, down = 1;      // L, M
  int taps = 0;                       // T, per polyphase row
  double cutoff = 0, transition = 0;  // of the polyphase stage, cycles per stage-input sample
  bool grouped = false;               // interleaved group table (else interpolated rows)
  int group_span = 0;                 // taps per lane in a group table: T + spread, rounded up
};

// Half-band filter taps at +-1, +-3, ... +-(2K-1) around the centre tap 1/2: flat to stop_hz,
// and stopband from out_rate - stop_hz, i.e. whatever would alias below stop_hz is removed.
// The window spans 4K samples; the slack from rounding K up goes into a larger beta (more
// attenuation for the same taps).
HalfbandPlan PlanHalfband(double stage_in_rate, double stop_hz) {
  const double width = (stage_in_rate / 2 - 2 * stop_hz) / stage_in_rate;
  const double span = (kHalfbandAttenuationDb - 7.95) / (2.285 * 2.0 * kPi * width);
  const int pairs = std::max(1, static_cast<int>(std::ceil(span / 4)));
  const double atten = std::min(7.95 + 2.285 * 2.0 * kPi * width * 4 * pairs, 140.0);
  return {pairs, KaiserBeta(atten)};
}

// Per group pattern: where each SIMD vector of lanes has non-zero taps (see GroupDot): starts
// of vectors 0..3, then their ends.
using GroupBounds = std::array<int, 8>;

// Group layout for ratio L/M: groups start at outputs that are multiples of kGroup, so the phase
// of a group's first output is a multiple of gcd(kGroup, L); that is the pattern index.
std::int64_t GroupPatterns(std::int64_t up) { return up / std::gcd<std::int64_t>(kGroup, up); }

// Largest input offset of a group's last output from its first, over all patterns.
std::int64_t GroupSpread(std::int64_t up, std::int64_t down) { return (up - 1 + (kGroup - 1) * down) / up; }

Plan MakePlan(int rate) {
  // Try every feasible number of halvings and keep the cheapest, in multiply-adds per input
  // sample. The sharp final filter costs ~T * 16000 / rate per input sample and T grows with the
  // rate it runs at, so halving first (cheap: wide transition band) pays off at high rates.
  Plan best;
  double best_cost = 0;
  std::vector<HalfbandPlan> halfbands;
  double hb_cost = 0;
  for (int halvings = 0;; ++halvings) {
    const double stage_rate = static_cast<double>(rate) / (1 << halvings);
    Plan plan;
    plan.halfbands = halfbands;
    const std::int64_t num = static_cast<std::int64_t>(Resampler::kOutputRate) << halvings;
    const std::int64_t g = std::gcd(num, static_cast<std::int64_t>(rate));
    plan.up = num / g;
    plan.down = rate / g;
    double pass, stop;
    if (stage_rate > Resampler::kOutputRate) {
      pass = kPassHz;
      stop = kStopHz;
    } else {  // upsampling: keep what the input holds, remove the images above its Nyquist
      stop = std::min(stage_rate / 2, kStopHz);
      pass = std::min(stage_rate * kUpPassFraction, kPassHz);
    }
    // Kaiser: the window spans T samples. Rounding T up leaves slack, spent on a narrower
    // transition with the same stop edge (a flatter passband).
    const double span = (kAttenuationDb - 7.95) / (2.285 * 2.0 * kPi * (stop - pass) / stage_rate);
    plan.taps = static_cast<int>(std::ceil(span / kTapMultiple)) * kTapMultiple;
    plan.transition = (kAttenuationDb - 7.95) / (2.285 * 2.0 * kPi * plan.taps);
    plan.cutoff = stop / stage_rate - plan.transition / 2;
    const std::int64_t group_span = plan.taps + GroupSpread(plan.up, plan.down);
    plan.group_span = static_cast<int>((group_span + 3) / 4 * 4);
    plan.grouped = GroupPatterns(plan.up) * plan.group_span * kGroup <= kMaxGroupTable;
    // Relative costs measured on x86-64 (SSE2): a grouped output costs about its taps plus the
    // offset between the 4 lanes of a vector (GroupDot skips the zeros around them);
    // interpolated rows about twice their taps (see PushPoly).
    const double per_out = plan.grouped
                               ? plan.taps + 3.0 * static_cast<double>(plan.down) / static_cast<double>(plan.up) + 4
                               : 2.0 * plan.taps;
    const double cost = hb_cost + per_out * Resampler::kOutputRate / static_cast<double>(rate);
    if (halvings == 0 || cost < best_cost) {
      best = plan;
      best_cost = cost;
    }
    // Another halving needs room for a transition band between kStopHz and (rate/2 - kStopHz).
    const double next_out = stage_rate / 2;
    if (next_out - 2 * kStopHz < kMinHalfbandTransitionHz) break;
    halfbands.push_back(PlanHalfband(stage_rate, kStopHz));
    // Per input sample: one output per two inputs, K symmetric pairs each, a pair costing about
    // two polyphase taps (two loads per four lanes).
    hb_cost += 2.0 * halfbands.back().pairs / (2.0 * (1 << halvings));
  }
  return best;
}

// Outputs the stream holds back (see the header), from the look-ahead of every stage.
int LatencyFromPlan(const Plan& plan, int rate) {
  // Look-ahead in input samples: a half-band stage needs 2K - 1 inputs past its centre (at its
  // own rate), the polyphase stage T/2.
  std::int64_t look = 0;
  std::int64_t scale = 1;
  for (const HalfbandPlan& hb : plan.halfbands) {
    look += (2 * hb.pairs - 1) * scale;
    scale *= 2;
  }
  look += (plan.taps / 2) * scale;
  // floor(look * 16000 / rate + 1/2): rounding the output count adds up to half a sample.
  const std::int64_t out = Resampler::kOutputRate;
  return static_cast<int>((2 * look * out + rate) / (2 * static_cast<std::int64_t>(rate)));
}

// Live tables and their bytes, process-wide (ResamplerStats).
std::atomic<std::int64_t> g_table_count{0};
std::atomic<std::int64_t> g_table_bytes{0};
std::atomic<std::uint64_t> g_designs{0};
std::atomic<std::uint64_t> g_designs_on_js_thread{0};
std::atomic<std::uint64_t> g_refused{0};
thread_local bool t_js_thread = false;  // MarkJsThread(): this thread runs JavaScript

}  // namespace

class ResamplerTable {
 public:
  struct Halfband {
    int pairs;                 // K
    std::vector<float> taps4;  // g[q] = h[2q+1] = h[-(2q+1)], q < K, each repeated 4 times
  };

  explicit ResamplerTable(int rate) {
    const Plan plan = MakePlan(rate);
    for (const HalfbandPlan& hb : plan.halfbands) halfbands.push_back(DesignHalfband(hb));
    up = plan.up;
    down = plan.down;
    taps = plan.taps;
    grouped = plan.grouped;
    group_span = plan.group_span;
    DesignPolyphase(plan);
    bytes = sizeof(*this) + group_coefs.capacity() * sizeof(float) + group_bounds.capacity() * sizeof(GroupBounds) +
            (rows.capacity() + deltas.capacity()) * sizeof(float);
    for (const Halfband& hb : halfbands) bytes += hb.taps4.capacity() * sizeof(float);
    g_table_count.fetch_add(1, std::memory_order_relaxed);
    g_table_bytes.fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  }
  ~ResamplerTable() {
    g_table_count.fetch_sub(1, std::memory_order_relaxed);
    g_table_bytes.fetch_sub(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  }
  ResamplerTable(const ResamplerTable&) = delete;
  ResamplerTable& operator=(const ResamplerTable&) = delete;

  std::size_t bytes = 0;  // heap held by this table (what the memory gauges report)

  std::vector<Halfband> halfbands;
  // Polyphase stage: output k sits at input position k * down / up; its taps cover inputs
  // floor(k * down / up) - (T/2 - 1) ... floor(k * down / up) + T/2.
  std::int64_t up = 1, down = 1;
  int taps = 0;  // T, a multiple of kTapMultiple
  // Grouped: for every pattern, group_span x kGroup taps, lanes innermost: lane o's taps shifted
  // by its input offset from the group's first output, zeros around them.
  bool grouped = false;
  int group_span = 0;
  std::vector<float> group_coefs;
  std::vector<GroupBounds> group_bounds;  // per pattern
  // Not grouped: kInterpPhases + 1 rows of T taps (row r at fractional position r /
  // kInterpPhases) and the differences of neighbouring rows.
  std::vector<float> rows, deltas;

 private:
  static Halfband DesignHalfband(const HalfbandPlan& plan) {
    // A cutoff at exactly a quarter of the input rate makes every even tap but the centre zero.
    const int k = plan.pairs;
    const double half_width = 2.0 * k;
    const double beta = plan.beta;
    const double inv_i0 = 1.0 / BesselI0(beta);
    std::vector<double> g(static_cast<std::size_t>(k));
    double sum = 0;
    for (std::size_t q = 0; q < g.size(); ++q) {
      const double t = 2.0 * static_cast<double>(q) + 1.0;
      g[q] = 0.5 * Sinc(t / 2.0) * Kaiser(t, half_width, beta, inv_i0);
      sum += g[q];
    }
    // Unity gain at DC and an exact zero at the input Nyquist: 1/2 + 2 * sum(g) = 1.
    Halfband hb{k, std::vector<float>(4 * g.size())};
    for (std::size_t q = 0; q < g.size(); ++q) {
      std::fill_n(hb.taps4.begin() + static_cast<std::ptrdiff_t>(4 * q), 4, static_cast<float>(g[q] * 0.25 / sum));
    }
    return hb;
  }

  // Taps of the polyphase filter for an output at fractional position frac (in [0, 1]) past an
  // input sample, for inputs -(T/2 - 1) ... T/2 relative to that sample. Double precision,
  // normalised to unity DC gain so every phase passes a constant exactly alike.
  static void DesignRow(const Plan& plan, double frac, std::vector<double>& row) {
    const double half_width = plan.taps / 2.0;
    static const double beta = KaiserBeta(kAttenuationDb);
    static const double inv_i0 = 1.0 / BesselI0(beta);
    const double fc = plan.cutoff;
    row.resize(static_cast<std::size_t>(plan.taps));
    double sum = 0;
    for (std::size_t j = 0; j < row.size(); ++j) {
      const double x = frac + (half_width - 1.0) - static_cast<double>(j);
      row[j] = 2.0 * fc * Sinc(2.0 * fc * x) * Kaiser(x, half_width, beta, inv_i0);
      sum += row[j];
    }
    for (double& v : row) v /= sum;
  }

  void DesignPolyphase(const Plan& plan) {
    std::vector<double> row;
    const std::size_t t = static_cast<std::size_t>(taps);
    if (grouped) {
      const std::int64_t step = std::gcd<std::int64_t>(kGroup, up);
      const std::int64_t patterns = GroupPatterns(up);
      const std::size_t span = static_cast<std::size_t>(group_span);
      group_coefs.assign(static_cast<std::size_t>(patterns) * span * kGroup, 0.0f);
      group_bounds.resize(static_cast<std::size_t>(patterns));
      for (std::int64_t p = 0; p < patterns; ++p) {
        float* block = group_coefs.data() + static_cast<std::size_t>(p) * span * kGroup;
        GroupBounds& bounds = group_bounds[static_cast<std::size_t>(p)];
        for (int o = 0; o < kGroup; ++o) {
          const std::int64_t position = p * step + o * down;  // in units of 1/L from the group
          const std::size_t offset = static_cast<std::size_t>(position / up);
          // Vector v = o / 4 spans its first lane's first tap to its last lane's last tap.
          const int first = static_cast<int>(offset) / 4 * 4;
          const int last = static_cast<int>((offset + t + 3) / 4 * 4);
          if (o % 4 == 0) bounds[static_cast<std::size_t>(o / 4)] = first;
          if (o % 4 == 3) bounds[static_cast<std::size_t>(o / 4) + 4] = last;
          DesignRow(plan, static_cast<double>(position % up) / static_cast<double>(up), row);
          for (std::size_t j = 0; j < t; ++j) {
            block[(offset + j) * kGroup + static_cast<std::size_t>(o)] = static_cast<float>(row[j]);
          }
        }
      }
      return;
    }
    rows.assign(static_cast<std::size_t>(kInterpPhases + 1) * t, 0.0f);
    for (std::int64_t r = 0; r <= kInterpPhases; ++r) {
      DesignRow(plan, static_cast<double>(r) / kInterpPhases, row);
      float* dst = rows.data() + static_cast<std::size_t>(r) * t;
      for (std::size_t j = 0; j < t; ++j) dst[j] = static_cast<float>(row[j]);
    }
    deltas.assign(rows.size() - t, 0.0f);
    for (std::size_t i = 0; i < deltas.size(); ++i) deltas[i] = rows[i + t] - rows[i];
  }
};

namespace {

// Tables are built once per input rate and shared. The common rates' tables stay once built;
// of the others, those no stream uses any more are dropped once more than a few are cached, so
// odd client rates cannot pile up memory. The lock only guards the map: a table is designed
// outside it (two streams designing the same rate at once both design; the first insert wins).
struct TableCache {
  std::mutex mu;
  std::map<int, std::shared_ptr<const ResamplerTable>> tables;
  // Admission budget of uncommon rates (SetResamplerBudget); 0: unlimited.
  double designs_per_second = 0;
  int max_rates = 0;
  double tokens = 0;
  std::chrono::steady_clock::time_point refilled = std::chrono::steady_clock::now();
};

TableCache& Cache() {
  // Never destroyed: threadpool jobs may outlive exit.
  static TableCache* cache = new TableCache();  // NOLINT(cppcoreguidelines-owning-memory)
  return *cache;
}

constexpr std::size_t kKeepUnused = 8;

std::shared_ptr<const ResamplerTable> FindTable(int rate) {
  TableCache& c = Cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.tables.find(rate);
  return it == c.tables.end() ? nullptr : it->second;
}

std::shared_ptr<const ResamplerTable> GetTable(int rate) {
  if (auto found = FindTable(rate)) return found;
  g_designs.fetch_add(1, std::memory_order_relaxed);
  if (t_js_thread) g_designs_on_js_thread.fetch_add(1, std::memory_order_relaxed);
  auto table = std::make_shared<const ResamplerTable>(rate);  // the design: no lock held
  TableCache& c = Cache();
  std::vector<std::shared_ptr<const ResamplerTable>> dropped;  // freed after the lock
  std::lock_guard<std::mutex> lock(c.mu);
  auto [it, inserted] = c.tables.emplace(rate, table);
  if (!inserted) return it->second;  // designed concurrently elsewhere: keep theirs
  std::size_t uncommon = 0;
  for (const auto& entry : c.tables) uncommon += IsCommonRate(entry.first) ? 0 : 1;
  if (uncommon > kKeepUnused) {
    for (auto i = c.tables.begin(); i != c.tables.end();) {
      if (!IsCommonRate(i->first) && i->second.use_count() == 1) {
        dropped.push_back(std::move(i->second));
        i = c.tables.erase(i);
      } else {
        ++i;
      }
    }
  }
  return table;
}

// --- Kernels ------------------------------------------------------------------------------------
// Bit-identity across chunkings rests on every output always being computed by the same
// arithmetic in the same order: the kernels never depend on alignment, and the SSE2 and portable
// versions of each kernel do the same operations per output.

// kGroup consecutive outputs from one shared input window of `span` samples:
//   y[o] = (sum over even j of c[j][o] * x[j]) + (sum over odd j of c[j][o] * x[j]).
// One input sample is broadcast against kGroup taps, so there are ~1.25 loads per 4
// multiply-adds instead of the 2 of a dot product per output. Lanes 4v..4v+3 (vector v) only
// have non-zero taps for j in [bounds[v], bounds[v + 4]); products outside are skipped (they are
// exact zeros, so for finite input skipping them changes nothing).
#if SPEECH_RESAMPLER_SSE2
// Vectors [kFirst, kLast) over taps [begin, end), both multiples of 4.
template <int kFirst, int kLast>
inline void GroupSegment(const float* c, const float* x, int begin, int end, __m128 (&even)[4], __m128 (&odd)[4]) {
  for (int j = begin; j < end; j += 4) {
    const __m128 x4 = _mm_loadu_ps(x + j);
    const __m128 b0 = _mm_shuffle_ps(x4, x4, 0x00), b1 = _mm_shuffle_ps(x4, x4, 0x55);
    const __m128 b2 = _mm_shuffle_ps(x4, x4, 0xAA), b3 = _mm_shuffle_ps(x4, x4, 0xFF);
    const float* cj = c + static_cast<std::size_t>(j) * kGroup;
    for (int v = kFirst; v < kLast; ++v) {
      even[v] = _mm_add_ps(even[v], _mm_mul_ps(_mm_loadu_ps(cj + 4 * v), b0));
      odd[v] = _mm_add_ps(odd[v], _mm_mul_ps(_mm_loadu_ps(cj + kGroup + 4 * v), b1));
      even[v] = _mm_add_ps(even[v], _mm_mul_ps(_mm_loadu_ps(cj + 2 * kGroup + 4 * v), b2));
      odd[v] = _mm_add_ps(odd[v], _mm_mul_ps(_mm_loadu_ps(cj + 3 * kGroup + 4 * v), b3));
    }
  }
}

void GroupDot(const float* c, const float* x, const GroupBounds& s, float* y) {
  static_assert(kGroup == 16, "four vectors per group");
  __m128 even[4], odd[4];
  for (int v = 0; v < 4; ++v) even[v] = odd[v] = _mm_setzero_ps();
  GroupSegment<0, 1>(c, x, s[0], s[1], even, odd);
  GroupSegment<0, 2>(c, x, s[1], s[2], even, odd);
  GroupSegment<0, 3>(c, x, s[2], s[3], even, odd);
  GroupSegment<0, 4>(c, x, s[3], s[4], even, odd);
  GroupSegment<1, 4>(c, x, s[4], s[5], even, odd);
  GroupSegment<2, 4>(c, x, s[5], s[6], even, odd);
  GroupSegment<3, 4>(c, x, s[6], s[7], even, odd);
  for (int v = 0; v < 4; ++v) _mm_storeu_ps(y + 4 * v, _mm_add_ps(even[v], odd[v]));
}
#else
void GroupDot(const float* c, const float* x, const GroupBounds& s, float* y) {
  float even[kGroup] = {}, odd[kGroup] = {};
  for (int o = 0; o < kGroup; ++o) {
    const int v = o / 4;
    for (int j = s[static_cast<std::size_t>(v)]; j < s[static_cast<std::size_t>(v) + 4]; j += 2) {
      even[o] += c[static_cast<std::size_t>(j) * kGroup + static_cast<std::size_t>(o)] * x[j];
      odd[o] += c[static_cast<std::size_t>(j + 1) * kGroup + static_cast<std::size_t>(o)] * x[j + 1];
    }
  }
  for (int o = 0; o < kGroup; ++o) y[o] = even[o] + odd[o];
}
#endif

// Dot products of T taps (a multiple of 8) with T inputs, for one output or four at once. Each
// output keeps eight partial sums (lanes of two vectors lo, hi), combined as v = lo + hi, then
// (v0 + v2) + (v1 + v3). Dot4 does exactly that per output, the last step for four outputs at
// once through a transpose.
#if SPEECH_RESAMPLER_SSE2
float Dot1(const float* c, const float* x, int taps) {
  __m128 lo = _mm_setzero_ps(), hi = _mm_setzero_ps();
  for (int j = 0; j < taps; j += 8) {
    lo = _mm_add_ps(lo, _mm_mul_ps(_mm_loadu_ps(c + j), _mm_loadu_ps(x + j)));
    hi = _mm_add_ps(hi, _mm_mul_ps(_mm_loadu_ps(c + j + 4), _mm_loadu_ps(x + j + 4)));
  }
  const __m128 v = _mm_add_ps(lo, hi);
  const __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));  // (v0 + v2, v1 + v3, ..)
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

void Dot4(const float* const c[4], const float* const x[4], int taps, float* y) {
  __m128 lo0 = _mm_setzero_ps(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
  __m128 lo2 = lo0, hi2 = lo0, lo3 = lo0, hi3 = lo0;
  const float *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  for (int j = 0; j < taps; j += 8) {
    lo0 = _mm_add_ps(lo0, _mm_mul_ps(_mm_loadu_ps(c0 + j), _mm_loadu_ps(x0 + j)));
    hi0 = _mm_add_ps(hi0, _mm_mul_ps(_mm_loadu_ps(c0 + j + 4), _mm_loadu_ps(x0 + j + 4)));
    lo1 = _mm_add_ps(lo1, _mm_mul_ps(_mm_loadu_ps(c1 + j), _mm_loadu_ps(x1 + j)));
    hi1 = _mm_add_ps(hi1, _mm_mul_ps(_mm_loadu_ps(c1 + j + 4), _mm_loadu_ps(x1 + j + 4)));
    lo2 = _mm_add_ps(lo2, _mm_mul_ps(_mm_loadu_ps(c2 + j), _mm_loadu_ps(x2 + j)));
    hi2 = _mm_add_ps(hi2, _mm_mul_ps(_mm_loadu_ps(c2 + j + 4), _mm_loadu_ps(x2 + j + 4)));
    lo3 = _mm_add_ps(lo3, _mm_mul_ps(_mm_loadu_ps(c3 + j), _mm_loadu_ps(x3 + j)));
    hi3 = _mm_add_ps(hi3, _mm_mul_ps(_mm_loadu_ps(c3 + j + 4), _mm_loadu_ps(x3 + j + 4)));
  }
  const __m128 v0 = _mm_add_ps(lo0, hi0), v1 = _mm_add_ps(lo1, hi1);
  const __m128 v2 = _mm_add_ps(lo2, hi2), v3 = _mm_add_ps(lo3, hi3);
  // s01 = (v0_0 + v0_2, v1_0 + v1_2, v0_1 + v0_3, v1_1 + v1_3), likewise s23.
  const __m128 s01 = _mm_add_ps(_mm_unpacklo_ps(v0, v1), _mm_unpackhi_ps(v0, v1));
  const __m128 s23 = _mm_add_ps(_mm_unpacklo_ps(v2, v3), _mm_unpackhi_ps(v2, v3));
  _mm_storeu_ps(y, _mm_add_ps(_mm_movelh_ps(s01, s23), _mm_movehl_ps(s23, s01)));
}
#else
float Dot1(const float* c, const float* x, int taps) {
  float v[8] = {};
  for (int j = 0; j < taps; j += 8) {
    for (int l = 0; l < 8; ++l) v[l] += c[j + l] * x[j + l];
  }
  for (int l = 0; l < 4; ++l) v[l] += v[l + 4];
  return (v[0] + v[2]) + (v[1] + v[3]);
}

void Dot4(const float* const c[4], const float* const x[4], int taps, float* y) {
  for (int o = 0; o < 4; ++o) y[o] = Dot1(c[o], x[o], taps);
}
#endif

// Half-band decimation of `blocks` * kHalfbandLanes outputs:
//   y[i] = e[i] / 2 + sum_q g[q] * (o[i + q] + o[i - 1 - q])
// with e[i] = x[2i] and o[i] = x[2i + 1], so the filter is centred on x[2i]. Vectorised across
// outputs (lanes are independent), so an output's value does not depend on its block. g4 holds
// each g[q] four times (a ready-made broadcast).
#if SPEECH_RESAMPLER_SSE2
void HalfbandBlocks(const float* e, const float* o, const float* g4, int pairs, float* y, std::size_t blocks) {
  static_assert(kHalfbandLanes == 16, "four vectors per block");
  const __m128 half = _mm_set1_ps(0.5f);
  for (std::size_t b = 0; b < blocks; ++b) {
    __m128 a0 = _mm_mul_ps(half, _mm_loadu_ps(e + 0));
    __m128 a1 = _mm_mul_ps(half, _mm_loadu_ps(e + 4));
    __m128 a2 = _mm_mul_ps(half, _mm_loadu_ps(e + 8));
    __m128 a3 = _mm_mul_ps(half, _mm_loadu_ps(e + 12));
    for (int q = 0; q < pairs; ++q) {
      const __m128 g = _mm_loadu_ps(g4 + 4 * q);
      const float* hi = o + q;
      const float* lo = o - 1 - q;
      a0 = _mm_add_ps(a0, _mm_mul_ps(g, _mm_add_ps(_mm_loadu_ps(hi + 0), _mm_loadu_ps(lo + 0))));
      a1 = _mm_add_ps(a1, _mm_mul_ps(g, _mm_add_ps(_mm_loadu_ps(hi + 4), _mm_loadu_ps(lo + 4))));
      a2 = _mm_add_ps(a2, _mm_mul_ps(g, _mm_add_ps(_mm_loadu_ps(hi + 8), _mm_loadu_ps(lo + 8))));
      a3 = _mm_add_ps(a3, _mm_mul_ps(g, _mm_add_ps(_mm_loadu_ps(hi + 12), _mm_loadu_ps(lo + 12))));
    }
    _mm_storeu_ps(y + 0, a0);
    _mm_storeu_ps(y + 4, a1);
    _mm_storeu_ps(y + 8, a2);
    _mm_storeu_ps(y + 12, a3);
    e += kHalfbandLanes;
    o += kHalfbandLanes;
    y += kHalfbandLanes;
  }
}
#else
void HalfbandBlocks(const float* e, const float* o, const float* g4, int pairs, float* y, std::size_t blocks) {
  for (std::size_t b = 0; b < blocks; ++b) {
    float acc[kHalfbandLanes];
    for (int l = 0; l < kHalfbandLanes; ++l) acc[l] = 0.5f * e[l];
    for (int q = 0; q < pairs; ++q) {
      const float g = g4[4 * q];
      for (int l = 0; l < kHalfbandLanes; ++l) acc[l] += g * (o[q + l] + o[l - 1 - q]);
    }
    for (int l = 0; l < kHalfbandLanes; ++l) y[l] = acc[l];
    e += kHalfbandLanes;
    o += kHalfbandLanes;
    y += kHalfbandLanes;
  }
}
#endif

// Splits n samples into even and odd ones (n even).
void Deinterleave(const float* in, std::size_t n, float* e, float* o) {
  std::size_t i = 0;
#if SPEECH_RESAMPLER_SSE2
  for (; i + 8 <= n; i += 8) {
    const __m128 a = _mm_loadu_ps(in + i), b = _mm_loadu_ps(in + i + 4);
    _mm_storeu_ps(e + i / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm_storeu_ps(o + i / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  }
#endif
  for (; i < n; i += 2) {
    e[i / 2] = in[i];
    o[i / 2] = in[i + 1];
  }
}

// Makes room for `extra` more valid elements plus the slack.
void Reserve(std::vector<float>& buf, std::size_t len, std::size_t extra) {
  if (buf.size() < len + extra + kSlack) buf.resize(len + extra + kSlack);
}

// Drops everything before logical index `keep_from` once enough has been consumed.
void Compact(std::vector<float>& buf, std::size_t& len, std::int64_t& base, std::int64_t keep_from) {
  const std::int64_t drop = keep_from - base;
  if (drop < kCompactAt) return;
  const std::size_t d = static_cast<std::size_t>(drop);
  std::memmove(buf.data(), buf.data() + d, (len - d) * sizeof(float));
  len -= d;
  base = keep_from;
}

void CheckRate(int input_rate) {
  if (input_rate < 8000 || input_rate > 192000) {
    throw std::invalid_argument("Resampler: input rate " + std::to_string(input_rate) +
                                " Hz is outside [8000, 192000]");
  }
}

}  // namespace

bool IsCommonRate(int rate) {
  switch (rate) {
    case 8000:
    case 11025:
    case 16000:
    case 22050:
    case 24000:
    case 32000:
    case 44100:
    case 48000:
    case 96000:
      return true;
    default:
      return false;
  }
}

void MarkJsThread() { t_js_thread = true; }

void SetResamplerBudget(double designs_per_second, int max_rates) {
  TableCache& c = Cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.designs_per_second = std::max(0.0, designs_per_second);
  c.max_rates = std::max(0, max_rates);
  c.tokens = std::max(1.0, c.designs_per_second);  // a full burst
  c.refilled = std::chrono::steady_clock::now();
}

RateAdmission AdmitRate(int input_rate) {
  if (input_rate == Resampler::kOutputRate || IsCommonRate(input_rate)) return RateAdmission::kOk;
  TableCache& c = Cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.tables.count(input_rate) > 0) return RateAdmission::kOk;  // designed: costs nothing
  if (c.max_rates > 0) {
    int in_use = 0;
    for (const auto& entry : c.tables) {
      if (!IsCommonRate(entry.first) && entry.second.use_count() > 1) ++in_use;
    }
    if (in_use >= c.max_rates) {
      g_refused.fetch_add(1, std::memory_order_relaxed);
      return RateAdmission::kTooManyRates;
    }
  }
  if (c.designs_per_second > 0) {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - c.refilled).count();
    c.refilled = now;
    const double burst = std::max(1.0, c.designs_per_second);
    c.tokens = std::min(burst, c.tokens + elapsed * c.designs_per_second);
    if (c.tokens < 1.0) {
      g_refused.fetch_add(1, std::memory_order_relaxed);
      return RateAdmission::kTooManyDesigns;
    }
    c.tokens -= 1.0;
  }
  return RateAdmission::kOk;
}

ResamplerStats GetResamplerStats() {
  ResamplerStats s;
  s.tables = g_table_count.load(std::memory_order_relaxed);
  s.table_bytes = g_table_bytes.load(std::memory_order_relaxed);
  s.designs = g_designs.load(std::memory_order_relaxed);
  s.designs_on_js_thread = g_designs_on_js_thread.load(std::memory_order_relaxed);
  s.refused = g_refused.load(std::memory_order_relaxed);
  return s;
}

Resampler::Resampler(int input_rate) : input_rate_(input_rate) {
  CheckRate(input_rate);
  if (input_rate != kOutputRate) {
    // Only a table already designed is taken here (a map lookup): the constructor may run on the
    // JS thread. Otherwise Prepare() designs it, on the first Process or Flush at the latest.
    table_ = FindTable(input_rate);
    if (table_) halfbands_.resize(table_->halfbands.size());
  }
  Reset();
}

bool Resampler::prepared() const { return input_rate_ == kOutputRate || table_ != nullptr; }

void Resampler::Prepare() {
  if (prepared()) return;
  table_ = GetTable(input_rate_);
  halfbands_.resize(table_->halfbands.size());
  Reset();  // nothing was processed yet: Process and Flush prepare first
}

int Resampler::LatencyOutputSamples(int input_rate) {
  CheckRate(input_rate);
  if (input_rate == kOutputRate) return 0;
  return LatencyFromPlan(MakePlan(input_rate), input_rate);  // needs no taps
}

void Resampler::Reset() {
  total_in_ = 0;
  total_out_ = 0;
  if (!table_) return;
  for (std::size_t s = 0; s < halfbands_.size(); ++s) {
    HalfbandState& st = halfbands_[s];
    const std::size_t k = static_cast<std::size_t>(table_->halfbands[s].pairs);
    st.in_count = 0;
    st.out_count = 0;
    st.even_len = 0;
    st.even_base = 0;
    // K zeros before the first odd sample: the signal before the stream started.
    Reserve(st.odd, 0, k);
    std::fill(st.odd.begin(), st.odd.begin() + static_cast<std::ptrdiff_t>(k), 0.0f);
    st.odd_len = k;
    st.odd_base = -static_cast<std::int64_t>(k);
  }
  // T/2 - 1 zeros before the first input: the first output is centred on input 0.
  const std::size_t pre = static_cast<std::size_t>(table_->taps / 2 - 1);
  Reserve(poly_.buf, 0, pre);
  std::fill(poly_.buf.begin(), poly_.buf.begin() + static_cast<std::ptrdiff_t>(pre), 0.0f);
  poly_.len = pre;
  poly_.base = -static_cast<std::int64_t>(pre);
  poly_.in_count = 0;
  poly_.pos = 0;
  poly_.phase = 0;
  poly_.lane = 0;
}

void Resampler::Process(const float* in, std::size_t n, std::vector<float>& out) {
  if (input_rate_ == kOutputRate) {  // 16 kHz: bit-identical pass-through
    out.insert(out.end(), in, in + n);
    return;
  }
  Prepare();
  total_in_ += n;
  Run(in, n, out);
}

void Resampler::Flush(std::vector<float>& out) {
  if (input_rate_ != kOutputRate) {
    Prepare();
    const std::uint64_t rate = static_cast<std::uint64_t>(input_rate_);
    const std::uint64_t target = (2 * total_in_ * kOutputRate + rate) / (2 * rate);
    // Push silence until every output up to the target exists, then drop the overshoot.
    static const std::array<float, 1024> kZeros{};
    const std::size_t start = out.size();
    while (total_out_ < target) Run(kZeros.data(), kZeros.size(), out);
    // Process never runs ahead of the target, so the overshoot is all from this loop.
    const std::uint64_t overshoot = total_out_ - target;
    out.resize(out.size() - std::min<std::size_t>(static_cast<std::size_t>(overshoot), out.size() - start));
  }
  Reset();
}

void Resampler::Run(const float* in, std::size_t n, std::vector<float>& out) {
  while (n > 0) {
    const std::size_t m = std::min(n, kBlock);
    const float* x = in;
    std::size_t xn = m;
    for (std::size_t s = 0; s < halfbands_.size(); ++s) {
      std::vector<float>& dst = scratch_[s & 1];
      PushHalfband(s, x, xn, dst);
      x = dst.data();
      xn = dst.size();
    }
    PushPoly(x, xn, out);
    in += m;
    n -= m;
  }
}

void Resampler::PushHalfband(std::size_t stage, const float* in, std::size_t n, std::vector<float>& out) {
  HalfbandState& st = halfbands_[stage];
  const ResamplerTable::Halfband& hb = table_->halfbands[stage];
  // Deinterleave into the even and odd histories.
  Reserve(st.even, st.even_len, n / 2 + 1);
  Reserve(st.odd, st.odd_len, n / 2 + 1);
  std::size_t i = 0;
  if (n > 0 && (st.in_count & 1)) st.odd[st.odd_len++] = in[i++];  // finish the pending pair
  const std::size_t pairs = (n - i) / 2;
  Deinterleave(in + i, 2 * pairs, st.even.data() + st.even_len, st.odd.data() + st.odd_len);
  st.even_len += pairs;
  st.odd_len += pairs;
  i += 2 * pairs;
  if (i < n) st.even[st.even_len++] = in[i];
  st.in_count += static_cast<std::int64_t>(n);

  // Output j needs odd samples up to j + K - 1, i.e. inputs up to 2j + 2K - 1.
  const std::int64_t avail = st.in_count / 2 - hb.pairs + 1;
  const std::size_t count = static_cast<std::size_t>(std::max<std::int64_t>(0, avail - st.out_count));
  const std::size_t blocks = (count + kHalfbandLanes - 1) / kHalfbandLanes;
  if (out.size() < blocks * kHalfbandLanes) out.resize(blocks * kHalfbandLanes);
  if (count > 0) {
    const std::int64_t j0 = st.out_count;
    // Padding lanes of the last block read up to kHalfbandLanes - 1 samples past the valid
    // data (inside the slack); their results are discarded.
    HalfbandBlocks(st.even.data() + (j0 - st.even_base), st.odd.data() + (j0 - st.odd_base), hb.taps4.data(), hb.pairs,
                   out.data(), blocks);
    st.out_count += static_cast<std::int64_t>(count);
  }
  out.resize(count);
  Compact(st.even, st.even_len, st.even_base, st.out_count);
  Compact(st.odd, st.odd_len, st.odd_base, st.out_count - hb.pairs);
}

void Resampler::PushPoly(const float* in, std::size_t n, std::vector<float>& out) {
  PolyState& st = poly_;
  const ResamplerTable& tb = *table_;
  // A group's window may reach up to group_span past its first tap, beyond the valid data.
  Reserve(st.buf, st.len, n + static_cast<std::size_t>(tb.group_span));
  if (n > 0) std::memcpy(st.buf.data() + st.len, in, n * sizeof(float));  // `in` may be null if n == 0
  st.len += n;
  st.in_count += static_cast<std::int64_t>(n);

  const int taps = tb.taps;
  const std::int64_t half = taps / 2;
  const std::int64_t up = tb.up, down = tb.down;
  // An output at position pos (+ phase/L) needs inputs pos - (T/2 - 1) .. pos + T/2. Outputs
  // available from the current group's start: those with pos + T/2 <= in_count - 1.
  const std::int64_t room = st.in_count - 1 - half - st.pos;
  if (room < 0) return;
  const std::int64_t avail = ((room + 1) * up - st.phase + down - 1) / down;  // from group start
  if (avail <= st.lane) return;
  const std::size_t first = out.size();
  out.resize(first + static_cast<std::size_t>(avail - st.lane));
  float* y = out.data() + first;

  if (tb.grouped) {
    const std::int64_t pattern_step = std::gcd<std::int64_t>(kGroup, up);
    const std::size_t block = static_cast<std::size_t>(tb.group_span) * kGroup;
    const std::int64_t group_adv = kGroup * down / up, group_frac = kGroup * down % up;
    std::int64_t left = avail;  // outputs available from the current group's start
    while (left > st.lane) {
      const std::int64_t start = st.pos - (half - 1) - st.base;  // window, buffer index
      const std::int64_t end = std::min<std::int64_t>(left, kGroup);
      if (end < kGroup) {
        // Partial group: the lanes still missing input would read past the valid data. Zero
        // that region (it is overwritten by later input), so the window is defined; the valid
        // lanes have zero taps there, so their values are those the full group will give.
        const std::size_t need = static_cast<std::size_t>(start + tb.group_span);
        if (need > st.buf.size()) st.buf.resize(need + kSlack);
        if (need > st.len)
          std::fill(st.buf.begin() + static_cast<std::ptrdiff_t>(st.len),
                    st.buf.begin() + static_cast<std::ptrdiff_t>(need), 0.0f);
      }
      float group[kGroup];
      const std::size_t pattern = static_cast<std::size_t>(st.phase / pattern_step);
      GroupDot(tb.group_coefs.data() + pattern * block, st.buf.data() + start, tb.group_bounds[pattern], group);
      for (std::int64_t o = st.lane; o < end; ++o) *y++ = group[o];
      if (end < kGroup) {
        st.lane = static_cast<int>(end);
        break;
      }
      st.lane = 0;
      left -= kGroup;
      st.pos += group_adv;
      st.phase += group_frac;
      if (st.phase >= up) {
        st.phase -= up;
        ++st.pos;
      }
    }
  } else {
    // Interpolated rows: taps a + f * d for each output, then a dot product.
    const std::size_t t = static_cast<std::size_t>(taps);
    if (rows_.size() < 4 * t) rows_.resize(4 * t);
    const std::int64_t step = down / up, step_frac = down % up;
    auto row = [&](std::size_t slot) -> const float* {
      const std::int64_t scaled = st.phase * kInterpPhases;
      const std::size_t r = static_cast<std::size_t>(scaled / up);
      const float f = static_cast<float>(scaled % up) / static_cast<float>(up);
      const float* a = tb.rows.data() + r * t;
      const float* d = tb.deltas.data() + r * t;
      float* dst = rows_.data() + slot * t;
      for (std::size_t j = 0; j < t; ++j) dst[j] = a[j] + f * d[j];
      return dst;
    };
    const float* x = st.buf.data() + (st.pos - (half - 1) - st.base);
    auto advance = [&] {
      st.pos += step;
      x += step;
      st.phase += step_frac;
      if (st.phase >= up) {
        st.phase -= up;
        ++st.pos;
        ++x;
      }
    };
    std::int64_t k = 0;
    for (; k + 4 <= avail; k += 4) {
      const float* c[4];
      const float* xs[4];
      for (std::size_t o = 0; o < 4; ++o) {
        c[o] = row(o);
        xs[o] = x;
        advance();
      }
      Dot4(c, xs, taps, y + k);
    }
    for (; k < avail; ++k) {
      y[k] = Dot1(row(0), x, taps);
      advance();
    }
  }
  total_out_ += static_cast<std::uint64_t>(out.size() - first);
  Compact(st.buf, st.len, st.base, st.pos - (half - 1));
}

}  // namespace speech
