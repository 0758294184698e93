#include "models/moonshine.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <utility>

#include "job.h"
#include "ort_env.h"

namespace speech {
namespace {

constexpr std::int64_t kBos = 1;
constexpr std::int64_t kEos = 2;
constexpr const char* kKvKinds[4] = {"decoder.key", "decoder.value", "encoder.key", "encoder.value"};
// Decoder inputs before the past key/values; outputs before the present key/values.
constexpr std::size_t kFixedInputs = 3;   // input_ids, encoder_hidden_states, use_cache_branch
constexpr std::size_t kFixedOutputs = 1;  // logits

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

std::string JoinPath(const std::string& dir, const char* file) {
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}

std::vector<std::string> Names(const Ort::Session& session, bool inputs) {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<std::string> names;
  const std::size_t n = inputs ? session.GetInputCount() : session.GetOutputCount();
  for (std::size_t i = 0; i < n; ++i) {
    names.emplace_back(inputs ? session.GetInputNameAllocated(i, allocator).get()
                              : session.GetOutputNameAllocated(i, allocator).get());
  }
  return names;
}

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

Ort::Session LoadSession(const std::string& path) {
  // Checked first: ORT's own message for a missing file is an opaque protobuf/IO error.
  if (!std::ifstream(path, std::ios::binary).good()) {
    throw JobError("MODEL_LOAD", "Moonshine model file not found or unreadable: " + path);
  }
  try {
    Ort::SessionOptions options = DefaultSessionOptions();
    // The decoder's output projection is the tied token embedding, stored as uint8 behind a
    // DequantizeLinear that ORT re-ran on every call (37.7 MB of floats written and read per
    // token, a third of a decoder step) because constant folding keeps DequantizeLinear for QDQ
    // fusions. These exports are dynamically quantized and have no QDQ pairs to fuse: folded,
    // the outputs are bit-identical, decoding costs 1.3x less CPU, RSS grows by ~56 MB (tiny).
    options.AddConfigEntry("session.disable_quant_qdq", "1");
    return Ort::Session(OrtEnv(), path.c_str(), options);
  } catch (const Ort::Exception& e) {
    throw JobError("MODEL_LOAD", "cannot load Moonshine model " + path + ": " + e.what());
  }
}

std::string PastName(int layer, int kind) { return "past_key_values." + std::to_string(layer) + "." + kKvKinds[kind]; }
std::string PresentName(int layer, int kind) { return "present." + std::to_string(layer) + "." + kKvKinds[kind]; }

}  // namespace

MoonshineWeights BestMoonshineWeights() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
#if defined(__clang__)
  // Older clang (clang-tidy-14 in `npm run lint`) rejects "avxvnni"; the addon is built by GCC.
  if (__builtin_cpu_supports("avx512vnni")) return MoonshineWeights::kInt8;
#else
  if (__builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni")) return MoonshineWeights::kInt8;
#endif
#endif
  return MoonshineWeights::kPackage;
}

MoonshineModel::MoonshineModel(const std::string& dir, MoonshineWeights weights)
    : weights_(weights),
      memory_(Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault)),
      vocabulary_(JoinPath(dir, "vocab.txt")) {
  const bool int8 = weights == MoonshineWeights::kInt8;
  const std::string encoder_path = JoinPath(dir, int8 ? "encoder_model.int8.onnx" : "encoder_model.onnx");
  const std::string decoder_path = JoinPath(dir, int8 ? "decoder_model_merged.int8.onnx" : "decoder_model_merged.onnx");
  encoder_ = LoadSession(encoder_path);
  decoder_ = LoadSession(decoder_path);

  try {
    const auto enc_in = Names(encoder_, true), enc_out = Names(encoder_, false);
    if (!Has(enc_in, "input_values") || !Has(enc_out, "last_hidden_state")) {
      throw JobError("MODEL_LOAD",
                     "not a Moonshine encoder (expects input input_values and output "
                     "last_hidden_state): " +
                         encoder_path);
    }

    const auto dec_in = Names(decoder_, true), dec_out = Names(decoder_, false);
    for (const char* name : {"input_ids", "encoder_hidden_states", "use_cache_branch"}) {
      if (!Has(dec_in, name)) {
        throw JobError("MODEL_LOAD",
                       std::string("not a merged Moonshine decoder (no input ") + name + "): " + decoder_path);
      }
    }
    if (!Has(dec_out, "logits")) {
      throw JobError("MODEL_LOAD", "not a merged Moonshine decoder (no output logits): " + decoder_path);
    }
    while (Has(dec_in, PastName(layers_, 0))) ++layers_;
    if (layers_ == 0) {
      throw JobError("MODEL_LOAD", "Moonshine decoder has no past_key_values inputs: " + decoder_path);
    }

    input_names_ = {"input_ids", "encoder_hidden_states", "use_cache_branch"};
    first_output_names_ = {"logits"};
    next_output_names_ = {"logits"};
    for (int layer = 0; layer < layers_; ++layer) {
      for (int kind = 0; kind < 4; ++kind) {
        const std::string past = PastName(layer, kind), present = PresentName(layer, kind);
        if (!Has(dec_in, past) || !Has(dec_out, present)) {
          throw JobError("MODEL_LOAD", "Moonshine decoder lacks " + past + " or " + present + ": " + decoder_path);
        }
        input_names_.push_back(past);
        first_output_names_.push_back(present);
        if (kind < 2) next_output_names_.push_back(present);
      }
    }
    for (const auto& s : input_names_) input_ptrs_.push_back(s.c_str());
    for (const auto& s : first_output_names_) first_output_ptrs_.push_back(s.c_str());
    for (const auto& s : next_output_names_) next_output_ptrs_.push_back(s.c_str());

    // Cache geometry [batch, heads, length, head_dim]; logits are [batch, length, vocab].
    const std::size_t past0 = std::find(dec_in.begin(), dec_in.end(), PastName(0, 0)) - dec_in.begin();
    const auto kv_shape = decoder_.GetInputTypeInfo(past0).GetTensorTypeAndShapeInfo().GetShape();
    const std::size_t logits_index = std::find(dec_out.begin(), dec_out.end(), "logits") - dec_out.begin();
    const auto logits_shape = decoder_.GetOutputTypeInfo(logits_index).GetTensorTypeAndShapeInfo().GetShape();
    if (kv_shape.size() != 4 || kv_shape[1] <= 0 || kv_shape[3] <= 0 || logits_shape.size() != 3) {
      throw JobError("MODEL_LOAD", "unexpected Moonshine decoder cache or logits shape: " + decoder_path);
    }
    heads_ = kv_shape[1];
    head_dim_ = kv_shape[3];
  } catch (const Ort::Exception& e) {
    throw JobError("MODEL_LOAD", "cannot inspect Moonshine model in " + dir + ": " + e.what());
  }
}

ModelOutput MoonshineModel::Run(const float* samples, std::size_t count) {
  ModelOutput out;
  out.text = Transcribe(samples, count).text;
  return out;
}

std::vector<ModelResult> MoonshineModel::RunBatch(const std::vector<ModelInput>& inputs) {
  std::vector<MoonshineRequest> requests;
  requests.reserve(inputs.size());
  for (const ModelInput& input : inputs) requests.push_back({input.samples, input.count, input.draft});
  std::vector<ModelResult> results(inputs.size());
  try {
    MoonshineBatchOptions options;
    options.max_rows = std::max<std::size_t>(1, requests.size());  // the caller sized the batch
    std::vector<MoonshineTranscript> transcripts = TranscribeBatch(requests, options);
    for (std::size_t i = 0; i < results.size(); ++i) {
      results[i].output.text = std::move(transcripts[i].text);
      results[i].output.ids = std::move(transcripts[i].ids);
      results[i].output.decoder_calls = transcripts[i].decoder_steps;
    }
  } catch (const JobError& e) {
    for (ModelResult& r : results) {
      r.error_code = e.code();
      r.error_message = e.what();
    }
  }
  return results;
}

std::vector<std::size_t> MoonshineModel::ChunkBounds(const float* samples, std::size_t count) {
  constexpr std::size_t kHop = kSampleRate / 100;  // 10 ms energy blocks
  constexpr std::size_t kQuietHops = 40;           // a cut sits mid-way in the quietest 400 ms
  std::vector<std::size_t> cuts{0};
  std::vector<double> energy;
  while (count - cuts.back() > kMaxChunkSamples) {
    const std::size_t prev = cuts.back();
    // Greedy: the longest chunk allowed, ended at the quietest stretch of its last
    // kCutSearchSamples (a pause between phrases rather than a gap between words).
    const std::size_t hi = std::min(prev + kMaxChunkSamples, count);
    const std::size_t lo = prev + kMaxChunkSamples - kCutSearchSamples;
    std::size_t cut = hi;
    if (hi >= lo + kQuietHops * kHop) {
      const std::size_t hops = (hi - lo) / kHop;
      energy.assign(hops, 0.0);
      for (std::size_t j = 0; j < hops; ++j) {
        const float* block = samples + lo + j * kHop;
        double e = 0;
        for (std::size_t k = 0; k < kHop; ++k) e += static_cast<double>(block[k]) * block[k];
        energy[j] = e;
      }
      double window = 0, best = 0;
      for (std::size_t j = 0; j < hops; ++j) {
        window += energy[j];
        if (j >= kQuietHops) window -= energy[j - kQuietHops];
        if (j + 1 < kQuietHops) continue;
        if (j + 1 == kQuietHops || window < best) {
          best = window;
          cut = lo + (j + 1 - kQuietHops / 2) * kHop;
        }
      }
    }
    cuts.push_back(cut);
  }
  cuts.push_back(count);
  return cuts;
}

struct MoonshineModel::Row {
  const float* samples = nullptr;
  std::size_t count = 0;
  std::size_t max_tokens = 0;
  std::vector<std::int64_t> draft;
  std::vector<std::int64_t> ids;  // this chunk's generated tokens
  bool hit_cap = false;
  double encoder_seconds = 0, decoder_seconds = 0;
  int steps = 0;
};

namespace {

// A new tensor of `source`'s rows (outermost dimension) listed in `keep`, in that order.
Ort::Value KeepRows(const Ort::Value& source, const std::vector<std::size_t>& keep) {
  const auto info = source.GetTensorTypeAndShapeInfo();
  std::vector<std::int64_t> shape = info.GetShape();
  const std::size_t row = info.GetElementCount() / static_cast<std::size_t>(shape[0]);
  shape[0] = static_cast<std::int64_t>(keep.size());
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value out = Ort::Value::CreateTensor<float>(allocator, shape.data(), shape.size());
  const float* from = source.GetTensorData<float>();
  float* to = out.GetTensorMutableData<float>();
  for (std::size_t i = 0; i < keep.size(); ++i) std::copy_n(from + keep[i] * row, row, to + i * row);
  return out;
}

// A self-attention cache [1, heads, length, head_dim] cut to its first `length` positions.
Ort::Value KeepPositions(const Ort::Value& source, std::int64_t length) {
  const auto info = source.GetTensorTypeAndShapeInfo();
  std::vector<std::int64_t> shape = info.GetShape();
  const std::int64_t heads = shape[0] * shape[1], had = shape[2], dim = shape[3];
  shape[2] = length;
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value out = Ort::Value::CreateTensor<float>(allocator, shape.data(), shape.size());
  const float* from = source.GetTensorData<float>();
  float* to = out.GetTensorMutableData<float>();
  for (std::int64_t h = 0; h < heads; ++h) std::copy_n(from + h * had * dim, length * dim, to + h * length * dim);
  return out;
}

// Rows [B, T, D] stacked from B tensors [1, T, D] of one shape.
Ort::Value Stack(std::vector<Ort::Value>& parts) {
  if (parts.size() == 1) return std::move(parts[0]);
  std::vector<std::int64_t> shape = parts[0].GetTensorTypeAndShapeInfo().GetShape();
  const std::size_t row = parts[0].GetTensorTypeAndShapeInfo().GetElementCount();
  shape[0] = static_cast<std::int64_t>(parts.size());
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value out = Ort::Value::CreateTensor<float>(allocator, shape.data(), shape.size());
  float* to = out.GetTensorMutableData<float>();
  for (std::size_t i = 0; i < parts.size(); ++i) std::copy_n(parts[i].GetTensorData<float>(), row, to + i * row);
  return out;
}

std::int64_t Argmax(const float* logits, std::int64_t vocab) {
  return std::max_element(logits, logits + vocab) - logits;  // the first maximum wins
}

}  // namespace

MoonshineTranscript MoonshineModel::Transcribe(const float* samples, std::size_t count) {
  return std::move(TranscribeBatch({MoonshineRequest{samples, count, {}}}, MoonshineBatchOptions{})[0]);
}

std::vector<MoonshineTranscript> MoonshineModel::TranscribeBatch(const std::vector<MoonshineRequest>& requests,
                                                                 const MoonshineBatchOptions& options) {
  // Each request's chunks become rows; a draft only fits a request of one chunk.
  std::vector<Row> rows;
  std::vector<std::size_t> owner;
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const MoonshineRequest& request = requests[r];
    const std::vector<std::size_t> cuts = ChunkBounds(request.samples, request.count);
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
      const std::size_t count = cuts[i + 1] - cuts[i];
      if (count < kMinSamples) continue;
      Row row;
      row.samples = request.samples + cuts[i];
      row.count = count;
      row.max_tokens = static_cast<std::size_t>(std::ceil(static_cast<double>(count) * kTokensPerSecond / kSampleRate));
      if (cuts.size() == 2) row.draft = request.draft;
      rows.push_back(std::move(row));
      owner.push_back(r);
    }
  }

  // Groups: longest first, each taking the next rows while they are within max_pad_samples of
  // its longest and it has room.
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return rows[a].count > rows[b].count; });
  const std::size_t max_rows = std::max<std::size_t>(1, options.max_rows);
  try {
    for (std::size_t g = 0; g < order.size();) {
      const std::size_t padded = rows[order[g]].count;
      std::vector<Row*> group;
      std::vector<Ort::Value> hidden;
      for (; g < order.size() && group.size() < max_rows && padded - rows[order[g]].count <= options.max_pad_samples;
           ++g) {
        Row& row = rows[order[g]];
        group.push_back(&row);
        hidden.push_back(Encode(row.samples, row.count, padded, row.encoder_seconds));
      }
      DecodeRows(group, hidden);
    }
  } catch (const Ort::Exception& e) {
    throw JobError("MODEL_FAILURE", std::string("Moonshine inference failed: ") + e.what());
  }

  std::vector<MoonshineTranscript> out(requests.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    MoonshineTranscript& t = out[owner[i]];
    const Row& row = rows[i];
    ++t.chunks;
    t.ids.insert(t.ids.end(), row.ids.begin(), row.ids.end());
    t.encoder_seconds += row.encoder_seconds;
    t.decoder_seconds += row.decoder_seconds;
    t.decoder_steps += row.steps;
    t.hit_cap = t.hit_cap || row.hit_cap;
    const std::string text = vocabulary_.Decode(row.ids);
    if (text.empty()) continue;
    if (!t.text.empty()) t.text += ' ';
    t.text += text;
  }
  return out;
}

Ort::Value MoonshineModel::Encode(const float* samples, std::size_t count, std::size_t padded, double& seconds) {
  const auto start = Clock::now();
  std::vector<float> silence_padded;
  if (padded > count) {  // wraps the caller's samples otherwise (ORT never writes inputs)
    silence_padded.assign(padded, 0.0f);
    std::copy_n(samples, count, silence_padded.begin());
    samples = silence_padded.data();
  }
  const std::array<std::int64_t, 2> audio_shape{1, static_cast<std::int64_t>(padded)};
  Ort::Value audio = Ort::Value::CreateTensor<float>(memory_, const_cast<float*>(samples), padded, audio_shape.data(),
                                                     audio_shape.size());
  const char* encoder_in[] = {"input_values"};
  const char* encoder_out[] = {"last_hidden_state"};
  Ort::Value hidden{nullptr};
  encoder_.Run(Ort::RunOptions{nullptr}, encoder_in, &audio, 1, encoder_out, &hidden, 1);
  seconds += Seconds(start);
  return hidden;
}

void MoonshineModel::DecodeRows(std::vector<Row*>& rows, std::vector<Ort::Value>& hidden) {
  // Rows with a draft and rows without decode as two groups: a row without one would hold the
  // others to decoding from scratch.
  std::vector<Row*> drafted, undrafted;
  std::vector<Ort::Value> drafted_hidden, undrafted_hidden;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const bool has = !rows[i]->draft.empty() && rows[i]->max_tokens > 0;
    (has ? drafted : undrafted).push_back(rows[i]);
    (has ? drafted_hidden : undrafted_hidden).push_back(std::move(hidden[i]));
  }
  if (!drafted.empty()) DecodeGroup(drafted, Stack(drafted_hidden));
  if (!undrafted.empty()) DecodeGroup(undrafted, Stack(undrafted_hidden));
}

void MoonshineModel::DecodeGroup(std::vector<Row*>& rows, Ort::Value hidden) {
  const auto decoder_start = Clock::now();
  const std::size_t kv_count = 4 * static_cast<std::size_t>(layers_);
  std::vector<Row*> active = rows;
  // Rows whose draft the model rejects from its first token: decoded from scratch afterwards.
  std::vector<Row*> stragglers;
  Ort::Value straggler_hidden{nullptr};

  // Step 0 feeds BOS, and when the rows have drafts, the drafts after it (all cut to the
  // shortest: the rows of one call share their length): one call checks them all.
  std::vector<std::int64_t> tokens;
  std::size_t draft_length = std::numeric_limits<std::size_t>::max();
  for (const Row* row : active) draft_length = std::min({draft_length, row->draft.size(), row->max_tokens});
  if (draft_length > 0) {
    for (const Row* row : active) {
      tokens.push_back(kBos);
      tokens.insert(tokens.end(), row->draft.begin(), row->draft.begin() + static_cast<std::ptrdiff_t>(draft_length));
    }
  } else {
    tokens.assign(active.size(), kBos);
  }

  std::vector<Ort::Value> inputs;
  inputs.reserve(kFixedInputs + kv_count);
  bool use_cache = false;
  const std::array<std::int64_t, 1> flag_shape{1};
  inputs.emplace_back(nullptr);  // input_ids, made for each call
  inputs.push_back(std::move(hidden));
  inputs.push_back(Ort::Value::CreateTensor<bool>(memory_, &use_cache, 1, flag_shape.data(), 1));
  float no_data = 0;
  const std::array<std::int64_t, 4> empty_shape{static_cast<std::int64_t>(active.size()), heads_, 0, head_dim_};
  for (std::size_t i = 0; i < kv_count; ++i) {
    inputs.push_back(Ort::Value::CreateTensor<float>(memory_, &no_data, 0, empty_shape.data(), 4));
  }

  std::vector<Ort::Value> outputs;
  outputs.reserve(first_output_ptrs_.size());
  int steps = 0;
  bool first = true;
  while (!active.empty()) {
    const std::int64_t batch = static_cast<std::int64_t>(active.size());
    const std::int64_t length = static_cast<std::int64_t>(tokens.size()) / batch;
    const std::array<std::int64_t, 2> ids_shape{batch, length};
    inputs[0] = Ort::Value::CreateTensor<std::int64_t>(memory_, tokens.data(), tokens.size(), ids_shape.data(), 2);
    // Step 0 computes the cross-attention K/V from the encoder output; afterwards only the
    // decoder self-attention cache changes (the encoder "present" outputs are dummies then).
    const auto& out_names = first ? first_output_ptrs_ : next_output_ptrs_;
    outputs.clear();
    for (std::size_t i = 0; i < out_names.size(); ++i) outputs.emplace_back(nullptr);
    decoder_.Run(Ort::RunOptions{nullptr}, input_ptrs_.data(), inputs.data(), inputs.size(), out_names.data(),
                 outputs.data(), outputs.size());
    ++steps;

    // logits: [batch, length, vocab]
    const std::int64_t vocab = outputs[0].GetTensorTypeAndShapeInfo().GetShape().back();
    const float* logits = outputs[0].GetTensorData<float>();
    // Positions of the self-attention cache to keep: all, unless the drafts were cut short.
    std::int64_t keep_positions = -1;
    std::vector<std::size_t> keep;
    tokens.clear();
    if (first && draft_length > 0) {
      // Keep the longest prefix of the drafts that the model agrees with in every row (the rows
      // go on in lock-step from one position). The token after it comes from a one-token call,
      // as in decoding from scratch: a call of many tokens quantizes its activations with
      // another scale, which tips near-ties (seen: a stray "1." first).
      // A row that rejects its draft's first token would hold every row to scratch: it leaves
      // the group, to be decoded from scratch after it, unless all do.
      std::size_t agreed = draft_length;
      std::vector<std::size_t> rejected;
      for (std::int64_t b = 0; b < batch; ++b) {
        const Row& row = *active[static_cast<std::size_t>(b)];
        const float* row_logits = logits + b * length * vocab;
        std::size_t n = 0;
        while (n < agreed && Argmax(row_logits + static_cast<std::int64_t>(n) * vocab, vocab) == row.draft[n]) ++n;
        if (n == 0) rejected.push_back(static_cast<std::size_t>(b));
        else agreed = n;
      }
      if (rejected.size() ==
          active.size()) {  // no use: step 0 again from scratch, BOS alone; the pasts are still the empty ones
        draft_length = 0;
        tokens.assign(active.size(), kBos);
        continue;
      }
      if (!rejected.empty()) {
        straggler_hidden = KeepRows(inputs[1], rejected);
        for (std::size_t b : rejected) {
          active[b]->draft.clear();
          stragglers.push_back(active[b]);
        }
      }
      for (std::int64_t b = 0; b < batch; ++b) {
        Row& row = *active[static_cast<std::size_t>(b)];
        if (row.draft.empty()) continue;  // rejected: decoded after this group
        row.ids.assign(row.draft.begin(), row.draft.begin() + static_cast<std::ptrdiff_t>(agreed));
        if (row.ids.size() >= row.max_tokens) {
          row.hit_cap = true;
          continue;
        }
        keep.push_back(static_cast<std::size_t>(b));
        tokens.push_back(row.draft[agreed - 1]);
      }
      keep_positions = static_cast<std::int64_t>(agreed);  // BOS and all but the last agreed token
    } else {
      for (std::int64_t b = 0; b < batch; ++b) {
        Row& row = *active[static_cast<std::size_t>(b)];
        const std::int64_t best = Argmax(logits + (b * length + length - 1) * vocab, vocab);
        if (best == kEos) continue;
        if (row.ids.size() < row.max_tokens) row.ids.push_back(best);
        if (row.ids.size() >= row.max_tokens) {
          row.hit_cap = true;
          continue;
        }
        keep.push_back(static_cast<std::size_t>(b));
        tokens.push_back(best);
      }
    }
    if (keep.empty()) break;
    use_cache = true;

    // The presents become the next call's pasts: moved, never copied, unless rows left the batch
    // or a draft was cut (then the kept rows or positions are copied out).
    for (int layer = 0; layer < layers_; ++layer) {
      const std::size_t in = kFixedInputs + 4 * static_cast<std::size_t>(layer);
      const std::size_t out = kFixedOutputs + (first ? 4 : 2) * static_cast<std::size_t>(layer);
      for (int kind = 0; kind < (first ? 4 : 2); ++kind) inputs[in + kind] = std::move(outputs[out + kind]);
      if (keep_positions >= 0) {
        for (int kind = 0; kind < 2; ++kind) inputs[in + kind] = KeepPositions(inputs[in + kind], keep_positions);
      }
    }
    if (keep.size() < active.size()) {
      for (std::size_t i = 1; i < inputs.size(); ++i) {
        if (i == 2) continue;  // use_cache_branch
        inputs[i] = KeepRows(inputs[i], keep);
      }
      std::vector<Row*> still;
      still.reserve(keep.size());
      for (std::size_t k : keep) still.push_back(active[k]);
      active = std::move(still);
    }
    first = false;
  }
  const double seconds = Seconds(decoder_start);
  for (Row* row : rows) {
    row->decoder_seconds = seconds;
    row->steps = steps;
  }
  if (!stragglers.empty()) {
    DecodeGroup(stragglers, std::move(straggler_hidden));
    for (Row* row : stragglers) ++row->steps;  // the draft check they were in
  }
}

}  // namespace speech
