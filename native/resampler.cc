#include "resampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace speech {

namespace {

// --- Design targets -----------------------------------------------------------------------------
// Kaiser design attenuation. The Kaiser length formula is approximate; 98 dB leaves margin over
// the 90 dB requirement once the taps are rounded to float.
constexpr double kAttenuationDb = 98.0;
// Downsampling band edges at 16 kHz out: flat to 7 kHz, stopband from the output Nyquist so that
// nothing aliases into the output band at all.
constexpr double kPassHz = 7000.0;
constexpr double kStopHz = 8000.0;
// Upsampling (input below 16 kHz): stopband from the input Nyquist (kills the images), passband
// to this fraction of the input rate.
constexpr double kUpPassFraction = 0.45;
// A half-band stage is only worth it while its transition band is at least this wide.
constexpr double kMinHalfbandTransitionHz = 1000.0;
// Polyphase tables with more phases than this (odd input rates) are replaced by kInterpPhases
// rows with linear interpolation between rows: accurate to > 110 dB, far smaller table.
constexpr std::int64_t kMaxExactPhases = 2048;
constexpr std::int64_t kInterpPhases = 1024;
// Taps per polyphase row are a multiple of this: the dot product keeps this many independent
// accumulators, which the compiler maps onto SIMD registers.
constexpr int kLanes = 16;
constexpr int kTapMultiple = 8;
// Input samples per internal step, so history buffers stay small and cache resident whatever
// the caller's chunk size.
constexpr std::size_t kBlock = 4096;
// Consumed history is only moved to the front of a buffer once this much has accumulated.
constexpr std::int64_t kCompactAt = 2048;
// Half-band stages compute outputs in whole blocks of kLanes and read up to this far past the
// valid data; the padding results are discarded.
constexpr std::size_t kSlack = 2 * kLanes;

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

// Taps needed for a transition `width` in cycles per sample (Kaiser's formula).
double KaiserLength(double atten_db, double width) {
  constexpr double kPi = 3.14159265358979323846;
  return (atten_db - 7.95) / (2.285 * 2.0 * kPi * width) + 1.0;
}

double Sinc(double x) {
  constexpr double kPi = 3.14159265358979323846;
  if (std::fabs(x) < 1e-12) return 1.0;
  return std::sin(kPi * x) / (kPi * x);
}

// Kaiser window over |t| < half_width, t in samples.
double Kaiser(double t, double half_width, double beta, double inv_i0_beta) {
  const double r = t / half_width;
  if (r <= -1.0 || r >= 1.0) return 0.0;
  return BesselI0(beta * std::sqrt(1.0 - r * r)) * inv_i0_beta;
}

// The chain chosen for one input rate: `halfband_pairs.size()` decimators by 2, then a polyphase
// stage converting stage_rate = input/2^s to 16 kHz by L/M.
struct Plan {
  std::vector<int> halfband_pairs;  // K: non-zero taps on each side of each half-band filter
  std::int64_t up = 1, down = 1;    // L, M
  int taps = 0;                     // T, per polyphase row
  double cutoff = 0, transition = 0;  // of the polyphase stage, cycles per stage-input sample
  bool interpolated = false;
};

// Half-band filter taps at +-1, +-3, ... +-(2K-1) around the centre tap 1/2.
int HalfbandPairs(double stage_in_rate, double stop_hz) {
  const double out_rate = stage_in_rate / 2;
  const double width = (out_rate - 2 * stop_hz) / stage_in_rate;  // pass = stop_hz, stop = out - stop_hz
  const double n = KaiserLength(kAttenuationDb, width);
  return std::max(1, static_cast<int>(std::ceil((n + 1) / 4)));
}

Plan MakePlan(int rate) {
  // Cost per input sample, in multiply-adds, of every feasible number of halvings; keep the
  // cheapest. The final sharp filter costs taps * 16000 / rate per input sample, so halving the
  // rate it runs at halves its cost, while each half-band stage is short (wide transition band).
  Plan best;
  double best_cost = 0;
  std::vector<int> pairs;
  double hb_cost = 0;
  for (int halvings = 0;; ++halvings) {
    const double stage_rate = static_cast<double>(rate) / (1 << halvings);
    Plan plan;
    plan.halfband_pairs = pairs;
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
    plan.cutoff = (pass + stop) / 2 / stage_rate;
    plan.transition = (stop - pass) / stage_rate;
    const double n = KaiserLength(kAttenuationDb, plan.transition);
    plan.taps = static_cast<int>(std::ceil(n / kTapMultiple)) * kTapMultiple;
    plan.interpolated = plan.up > kMaxExactPhases;
    const double poly_cost = plan.taps * (plan.interpolated ? 1.6 : 1.0) *
                             Resampler::kOutputRate / static_cast<double>(rate);
    const double cost = hb_cost + poly_cost;
    if (halvings == 0 || cost < best_cost) {
      best = plan;
      best_cost = cost;
    }
    // Another halving needs room for a transition band between kStopHz and (rate/2 - kStopHz).
    const double next_out = stage_rate / 2;
    if (next_out - 2 * kStopHz < kMinHalfbandTransitionHz) break;
    const int k = HalfbandPairs(stage_rate, kStopHz);
    pairs.push_back(k);
    // One output per two inputs, K symmetric pairs each (an add, a multiply and an add).
    hb_cost += 1.5 * k / (2.0 * (1 << halvings));
  }
  return best;
}

// Outputs the stream holds back (see the header); from the look-ahead of every stage.
int LatencyFromPlan(const Plan& plan, int rate) {
  // Look-ahead in input samples: each half-band stage needs 2K - 1 inputs past its centre
  // (at its own rate), the polyphase stage T/2.
  std::int64_t look = 0;
  std::int64_t scale = 1;
  for (int k : plan.halfband_pairs) {
    look += (2 * k - 1) * scale;
    scale *= 2;
  }
  look += (plan.taps / 2) * scale;
  // floor(look * 16000 / rate + 1/2): the rounding of the output count adds up to half a sample.
  const std::int64_t out = Resampler::kOutputRate;
  return static_cast<int>((2 * look * out + rate) / (2 * static_cast<std::int64_t>(rate)));
}

}  // namespace

class ResamplerTable {
 public:
  struct Halfband {
    int pairs;               // K
    std::vector<float> taps;  // g[q] = h[2q+1] = h[-(2q+1)], q < K
  };

  explicit ResamplerTable(int rate) {
    const Plan plan = MakePlan(rate);
    latency = LatencyFromPlan(plan, rate);
    for (int k : plan.halfband_pairs) halfbands.push_back(DesignHalfband(k));
    up = plan.up;
    down = plan.down;
    taps = plan.taps;
    interpolated = plan.interpolated;
    rows = interpolated ? kInterpPhases + 1 : up;
    DesignPolyphase(plan);
  }

  std::vector<Halfband> halfbands;
  std::int64_t up = 1, down = 1;  // polyphase stage: output k at input position k * down / up
  int taps = 0;                   // T, a multiple of kLanes
  std::int64_t rows = 0;          // up, or kInterpPhases + 1 when interpolated
  bool interpolated = false;
  // Row r (phase r/rows-1 of a sample) holds T taps for inputs pos-(T/2-1) .. pos+T/2.
  std::vector<float> coefs;
  std::vector<float> deltas;  // interpolated only: row r+1 - row r
  int latency = 0;

 private:
  static Halfband DesignHalfband(int k) {
    // Cutoff exactly at a quarter of the input rate makes every even tap but the centre zero.
    const double half_width = 2.0 * k;
    const double beta = KaiserBeta(kAttenuationDb);
    const double inv_i0 = 1.0 / BesselI0(beta);
    std::vector<double> g(static_cast<std::size_t>(k));
    double sum = 0;
    for (int q = 0; q < k; ++q) {
      const double t = 2.0 * q + 1.0;
      g[static_cast<std::size_t>(q)] = 0.5 * Sinc(t / 2.0) * Kaiser(t, half_width, beta, inv_i0);
      sum += g[static_cast<std::size_t>(q)];
    }
    // Unity gain at DC and an exact zero at the input Nyquist: 1/2 + 2 * sum(g) = 1.
    Halfband hb{k, std::vector<float>(static_cast<std::size_t>(k))};
    for (int q = 0; q < k; ++q) {
      hb.taps[static_cast<std::size_t>(q)] =
          static_cast<float>(g[static_cast<std::size_t>(q)] * 0.25 / sum);
    }
    return hb;
  }

  void DesignPolyphase(const Plan& plan) {
    const double half_width = taps / 2.0;
    const double beta = KaiserBeta(kAttenuationDb);
    const double inv_i0 = 1.0 / BesselI0(beta);
    const double fc = plan.cutoff;
    const std::size_t t = static_cast<std::size_t>(taps);
    const std::int64_t divisions = interpolated ? kInterpPhases : up;
    std::vector<double> row(t);
    coefs.assign(static_cast<std::size_t>(rows) * t, 0.0f);
    for (std::int64_t r = 0; r < rows; ++r) {
      const double frac = static_cast<double>(r) / static_cast<double>(divisions);
      double sum = 0;
      for (std::size_t j = 0; j < t; ++j) {
        const double x = frac + (half_width - 1.0) - static_cast<double>(j);
        row[j] = 2.0 * fc * Sinc(2.0 * fc * x) * Kaiser(x, half_width, beta, inv_i0);
        sum += row[j];
      }
      // Unity DC gain for every phase, so a constant input gives a constant output.
      float* dst = coefs.data() + static_cast<std::size_t>(r) * t;
      for (std::size_t j = 0; j < t; ++j) dst[j] = static_cast<float>(row[j] / sum);
    }
    if (interpolated) {
      deltas.assign(coefs.size() - t, 0.0f);
      for (std::size_t i = 0; i < deltas.size(); ++i) deltas[i] = coefs[i + t] - coefs[i];
    }
  }
};

namespace {

// Tables are built once per input rate and shared. Tables no stream uses any more are dropped
// once the cache grows past a few entries, so odd client rates cannot pile up memory.
std::shared_ptr<const ResamplerTable> GetTable(int rate) {
  static std::mutex mu;
  static std::map<int, std::shared_ptr<const ResamplerTable>> cache;
  constexpr std::size_t kKeepUnused = 16;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(rate);
  if (it != cache.end()) return it->second;
  if (cache.size() >= kKeepUnused) {
    for (auto i = cache.begin(); i != cache.end();) {
      i = i->second.use_count() == 1 ? cache.erase(i) : std::next(i);
    }
  }
  auto table = std::make_shared<const ResamplerTable>(rate);
  cache.emplace(rate, table);
  return table;
}

// Dot products of T taps (a multiple of 8) with T inputs, for one output or four at once.
// Each output keeps eight partial sums (lanes l and l + 4 of two vectors), combined as
// v = lo + hi, then (v0 + v2) + (v1 + v3). Dot4 does exactly that arithmetic per output, with the
// final step done for four outputs at once by a transpose, so an output's value never depends on
// which of the two functions computed it, i.e. on how the input was chunked.
#if defined(__SSE2__) || defined(_M_X64)
inline __m128 Load4(const float* p) { return _mm_loadu_ps(p); }

inline float Dot1(const float* c, const float* x, int taps) {
  __m128 lo = _mm_setzero_ps(), hi = _mm_setzero_ps();
  for (int j = 0; j < taps; j += 8) {
    lo = _mm_add_ps(lo, _mm_mul_ps(Load4(c + j), Load4(x + j)));
    hi = _mm_add_ps(hi, _mm_mul_ps(Load4(c + j + 4), Load4(x + j + 4)));
  }
  const __m128 v = _mm_add_ps(lo, hi);
  const __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));  // (v0 + v2, v1 + v3, ..)
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

inline void Dot4(const float* const c[4], const float* const x[4], int taps, float* y) {
  __m128 lo0 = _mm_setzero_ps(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
  __m128 lo2 = lo0, hi2 = lo0, lo3 = lo0, hi3 = lo0;
  const float *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  for (int j = 0; j < taps; j += 8) {
    lo0 = _mm_add_ps(lo0, _mm_mul_ps(Load4(c0 + j), Load4(x0 + j)));
    hi0 = _mm_add_ps(hi0, _mm_mul_ps(Load4(c0 + j + 4), Load4(x0 + j + 4)));
    lo1 = _mm_add_ps(lo1, _mm_mul_ps(Load4(c1 + j), Load4(x1 + j)));
    hi1 = _mm_add_ps(hi1, _mm_mul_ps(Load4(c1 + j + 4), Load4(x1 + j + 4)));
    lo2 = _mm_add_ps(lo2, _mm_mul_ps(Load4(c2 + j), Load4(x2 + j)));
    hi2 = _mm_add_ps(hi2, _mm_mul_ps(Load4(c2 + j + 4), Load4(x2 + j + 4)));
    lo3 = _mm_add_ps(lo3, _mm_mul_ps(Load4(c3 + j), Load4(x3 + j)));
    hi3 = _mm_add_ps(hi3, _mm_mul_ps(Load4(c3 + j + 4), Load4(x3 + j + 4)));
  }
  const __m128 v0 = _mm_add_ps(lo0, hi0), v1 = _mm_add_ps(lo1, hi1);
  const __m128 v2 = _mm_add_ps(lo2, hi2), v3 = _mm_add_ps(lo3, hi3);
  // s01 = (v0_0 + v0_2, v1_0 + v1_2, v0_1 + v0_3, v1_1 + v1_3), likewise s23.
  const __m128 s01 = _mm_add_ps(_mm_unpacklo_ps(v0, v1), _mm_unpackhi_ps(v0, v1));
  const __m128 s23 = _mm_add_ps(_mm_unpacklo_ps(v2, v3), _mm_unpackhi_ps(v2, v3));
  _mm_storeu_ps(y, _mm_add_ps(_mm_movelh_ps(s01, s23), _mm_movehl_ps(s23, s01)));
}
#else
inline float Dot1(const float* c, const float* x, int taps) {
  float v[8] = {};
  for (int j = 0; j < taps; j += 8) {
    for (int l = 0; l < 8; ++l) v[l] += c[j + l] * x[j + l];
  }
  for (int l = 0; l < 4; ++l) v[l] += v[l + 4];
  return (v[0] + v[2]) + (v[1] + v[3]);
}

inline void Dot4(const float* const c[4], const float* const x[4], int taps, float* y) {
  for (int o = 0; o < 4; ++o) y[o] = Dot1(c[o], x[o], taps);
}
#endif

// Half-band decimation of `blocks` * kLanes outputs:
//   y[i] = e[i] / 2 + sum_q g[q] * (o[i + q] + o[i - 1 - q])
// with e[i] = x[2i] and o[i] = x[2i + 1], so the filter is centred on x[2i]. Vectorised across
// outputs; every output goes through the same lanes' arithmetic, so results do not depend on
// which block an output falls in.
void HalfbandBlocks(const float* e, const float* o, const float* g, int pairs, float* y,
                    std::size_t blocks) {
  for (std::size_t b = 0; b < blocks; ++b) {
    float acc[kLanes];
    for (int l = 0; l < kLanes; ++l) acc[l] = 0.5f * e[l];
    for (int q = 0; q < pairs; ++q) {
      const float gq = g[q];
      const float* hi = o + q;
      const float* lo = o - 1 - q;
      for (int l = 0; l < kLanes; ++l) acc[l] += gq * (hi[l] + lo[l]);
    }
    for (int l = 0; l < kLanes; ++l) y[l] = acc[l];
    e += kLanes;
    o += kLanes;
    y += kLanes;
  }
}

// Makes room for `extra` more valid elements plus the read-past slack.
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

}  // namespace

Resampler::Resampler(int input_rate) : input_rate_(input_rate) {
  if (input_rate < 8000 || input_rate > 192000) {
    throw std::invalid_argument("Resampler: input rate " + std::to_string(input_rate) +
                                " Hz is outside [8000, 192000]");
  }
  if (input_rate != kOutputRate) {
    table_ = GetTable(input_rate);
    halfbands_.resize(table_->halfbands.size());
  }
  Reset();
}

int Resampler::LatencyOutputSamples(int input_rate) {
  if (input_rate < 8000 || input_rate > 192000) {
    throw std::invalid_argument("Resampler: input rate " + std::to_string(input_rate) +
                                " Hz is outside [8000, 192000]");
  }
  if (input_rate == kOutputRate) return 0;
  return LatencyFromPlan(MakePlan(input_rate), input_rate);  // no taps needed
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
    // K zeros before the first odd sample: the filter's past before the stream started.
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
}

void Resampler::Process(const float* in, std::size_t n, std::vector<float>& out) {
  if (!table_) {  // 16 kHz: bit-identical pass-through
    out.insert(out.end(), in, in + n);
    return;
  }
  total_in_ += n;
  Run(in, n, out);
}

void Resampler::Flush(std::vector<float>& out) {
  if (table_) {
    const std::uint64_t rate = static_cast<std::uint64_t>(input_rate_);
    const std::uint64_t target = (2 * total_in_ * kOutputRate + rate) / (2 * rate);
    // Push silence until every output up to the target exists, then drop the overshoot.
    static const std::array<float, 1024> kZeros{};
    while (total_out_ < target) Run(kZeros.data(), kZeros.size(), out);
    out.resize(out.size() - static_cast<std::size_t>(total_out_ - target));
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

void Resampler::PushHalfband(std::size_t stage, const float* in, std::size_t n,
                             std::vector<float>& out) {
  HalfbandState& st = halfbands_[stage];
  const ResamplerTable::Halfband& hb = table_->halfbands[stage];
  // Deinterleave into the even and odd histories.
  Reserve(st.even, st.even_len, n / 2 + 1);
  Reserve(st.odd, st.odd_len, n / 2 + 1);
  float* e = st.even.data() + st.even_len;
  float* o = st.odd.data() + st.odd_len;
  std::size_t i = 0;
  if (n > 0 && (st.in_count & 1)) *o++ = in[i++];
  for (; i + 1 < n; i += 2) {
    *e++ = in[i];
    *o++ = in[i + 1];
  }
  if (i < n) *e++ = in[i];
  st.even_len = static_cast<std::size_t>(e - st.even.data());
  st.odd_len = static_cast<std::size_t>(o - st.odd.data());
  st.in_count += static_cast<std::int64_t>(n);

  // Output j needs odd samples up to j + K - 1, i.e. inputs up to 2j + 2K - 1.
  const std::int64_t avail = st.in_count / 2 - hb.pairs + 1;
  const std::int64_t count = std::max<std::int64_t>(0, avail - st.out_count);
  const std::size_t cnt = static_cast<std::size_t>(count);
  const std::size_t blocks = (cnt + kLanes - 1) / kLanes;
  if (out.size() < blocks * kLanes) out.resize(blocks * kLanes);
  if (cnt > 0) {
    const std::int64_t j0 = st.out_count;
    // The padding lanes read up to kLanes - 1 elements past the valid data, inside the slack.
    HalfbandBlocks(st.even.data() + (j0 - st.even_base), st.odd.data() + (j0 - st.odd_base),
                   hb.taps.data(), hb.pairs, out.data(), blocks);
    st.out_count += count;
  }
  out.resize(cnt);
  Compact(st.even, st.even_len, st.even_base, st.out_count);
  Compact(st.odd, st.odd_len, st.odd_base, st.out_count - hb.pairs);
}

void Resampler::PushPoly(const float* in, std::size_t n, std::vector<float>& out) {
  PolyState& st = poly_;
  const ResamplerTable& tb = *table_;
  Reserve(st.buf, st.len, n);
  std::memcpy(st.buf.data() + st.len, in, n * sizeof(float));
  st.len += n;
  st.in_count += static_cast<std::int64_t>(n);

  const int taps = tb.taps;
  const std::int64_t half = taps / 2;
  // Output at position pos (+ phase/L) needs inputs pos - (T/2 - 1) .. pos + T/2.
  const std::int64_t room = st.in_count - 1 - half - st.pos;
  if (room < 0) return;
  const std::int64_t up = tb.up, down = tb.down;
  const std::int64_t count = ((room + 1) * up - st.phase + down - 1) / down;
  if (count <= 0) return;
  const std::size_t first = out.size();
  out.resize(first + static_cast<std::size_t>(count));
  float* y = out.data() + first;
  const std::int64_t step = down / up, step_frac = down % up;
  const float* x = st.buf.data() + (st.pos - (half - 1) - st.base);
  std::int64_t phase = st.phase;
  std::int64_t advanced = 0;
  const std::size_t t = static_cast<std::size_t>(taps);
  // Row of taps for the current phase: straight from the table, or interpolated between two
  // rows into `rows_` (float arithmetic, the same whatever the chunking).
  auto row = [&](std::size_t slot) -> const float* {
    if (!tb.interpolated) return tb.coefs.data() + static_cast<std::size_t>(phase) * t;
    const std::int64_t scaled = phase * kInterpPhases;
    const std::size_t r = static_cast<std::size_t>(scaled / up);
    const float f = static_cast<float>(scaled % up) / static_cast<float>(up);
    const float* a = tb.coefs.data() + r * t;
    const float* d = tb.deltas.data() + r * t;
    float* dst = rows_.data() + slot * t;
    for (std::size_t j = 0; j < t; ++j) dst[j] = a[j] + f * d[j];
    return dst;
  };
  auto advance = [&] {
    advanced += step;
    phase += step_frac;
    if (phase >= up) {
      phase -= up;
      ++advanced;
    }
  };
  if (tb.interpolated && rows_.size() < 4 * t) rows_.resize(4 * t);
  std::int64_t k = 0;
  for (; k + 4 <= count; k += 4) {
    const float* c[4];
    const float* xs[4];
    for (int o = 0; o < 4; ++o) {
      c[o] = row(static_cast<std::size_t>(o));
      xs[o] = x + advanced;
      advance();
    }
    Dot4(c, xs, taps, y + k);
  }
  for (; k < count; ++k) {
    y[k] = Dot1(row(0), x + advanced, taps);
    advance();
  }
  st.pos += advanced;
  st.phase = phase;
  total_out_ += static_cast<std::uint64_t>(count);
  Compact(st.buf, st.len, st.base, st.pos - (half - 1));
}

}  // namespace speech
