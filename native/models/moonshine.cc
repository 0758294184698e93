#include "models/moonshine.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
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
double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

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
    return Ort::Session(OrtEnv(), path.c_str(), DefaultSessionOptions());
  } catch (const Ort::Exception& e) {
    throw JobError("MODEL_LOAD", "cannot load Moonshine model " + path + ": " + e.what());
  }
}

std::string PastName(int layer, int kind) {
  return "past_key_values." + std::to_string(layer) + "." + kKvKinds[kind];
}
std::string PresentName(int layer, int kind) {
  return "present." + std::to_string(layer) + "." + kKvKinds[kind];
}

}  // namespace

MoonshineModel::MoonshineModel(const std::string& dir)
    : memory_(Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault)),
      vocabulary_(JoinPath(dir, "vocab.txt")) {
  const std::string encoder_path = JoinPath(dir, "encoder_model.onnx");
  const std::string decoder_path = JoinPath(dir, "decoder_model_merged.onnx");
  encoder_ = LoadSession(encoder_path);
  decoder_ = LoadSession(decoder_path);

  try {
    const auto enc_in = Names(encoder_, true), enc_out = Names(encoder_, false);
    if (!Has(enc_in, "input_values") || !Has(enc_out, "last_hidden_state")) {
      throw JobError("MODEL_LOAD", "not a Moonshine encoder (expects input input_values and output "
                                   "last_hidden_state): " + encoder_path);
    }

    const auto dec_in = Names(decoder_, true), dec_out = Names(decoder_, false);
    for (const char* name : {"input_ids", "encoder_hidden_states", "use_cache_branch"}) {
      if (!Has(dec_in, name)) {
        throw JobError("MODEL_LOAD", std::string("not a merged Moonshine decoder (no input ") + name +
                                         "): " + decoder_path);
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
          throw JobError("MODEL_LOAD", "Moonshine decoder lacks " + past + " or " + present + ": " +
                                           decoder_path);
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
    const std::size_t past0 =
        std::find(dec_in.begin(), dec_in.end(), PastName(0, 0)) - dec_in.begin();
    const auto kv_shape = decoder_.GetInputTypeInfo(past0).GetTensorTypeAndShapeInfo().GetShape();
    const std::size_t logits_index = std::find(dec_out.begin(), dec_out.end(), "logits") - dec_out.begin();
    const auto logits_shape =
        decoder_.GetOutputTypeInfo(logits_index).GetTensorTypeAndShapeInfo().GetShape();
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

std::vector<std::size_t> MoonshineModel::ChunkBounds(const float* samples, std::size_t count) {
  constexpr std::size_t kHop = kSampleRate / 100;     // 10 ms energy blocks
  constexpr std::size_t kQuietHops = 40;              // a cut sits mid-way in the quietest 400 ms
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

MoonshineTranscript MoonshineModel::Transcribe(const float* samples, std::size_t count) {
  MoonshineTranscript result;
  const std::vector<std::size_t> cuts = ChunkBounds(samples, count);
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    const std::size_t first_id = result.ids.size();
    TranscribeChunk(samples + cuts[i], cuts[i + 1] - cuts[i], result);
    const std::string text = vocabulary_.Decode(
        std::vector<std::int64_t>(result.ids.begin() + first_id, result.ids.end()));
    if (text.empty()) continue;
    if (!result.text.empty()) result.text += ' ';
    result.text += text;
  }
  return result;
}

void MoonshineModel::TranscribeChunk(const float* samples, std::size_t count, MoonshineTranscript& result) {
  if (count < kMinSamples) return;
  ++result.chunks;
  const std::size_t max_tokens = static_cast<std::size_t>(
      std::ceil(static_cast<double>(count) * kTokensPerSecond / kSampleRate));
  std::size_t generated = 0;

  try {
    // --- Encoder: wraps the caller's samples (ORT never writes inputs) ---
    const auto encoder_start = Clock::now();
    const std::array<std::int64_t, 2> audio_shape{1, static_cast<std::int64_t>(count)};
    Ort::Value audio = Ort::Value::CreateTensor<float>(memory_, const_cast<float*>(samples), count,
                                                       audio_shape.data(), audio_shape.size());
    const char* encoder_in[] = {"input_values"};
    const char* encoder_out[] = {"last_hidden_state"};
    Ort::Value hidden{nullptr};
    encoder_.Run(Ort::RunOptions{nullptr}, encoder_in, &audio, 1, encoder_out, &hidden, 1);
    result.encoder_seconds += Seconds(encoder_start);

    // --- Decoder inputs: the scalars are tensors over locals, updated in place each step ---
    const auto decoder_start = Clock::now();
    const std::size_t kv_count = 4 * static_cast<std::size_t>(layers_);
    std::vector<Ort::Value> inputs;
    inputs.reserve(kFixedInputs + kv_count);
    std::int64_t token = kBos;
    bool use_cache = false;
    const std::array<std::int64_t, 2> ids_shape{1, 1};
    const std::array<std::int64_t, 1> flag_shape{1};
    inputs.push_back(Ort::Value::CreateTensor<std::int64_t>(memory_, &token, 1, ids_shape.data(), 2));
    inputs.push_back(std::move(hidden));
    inputs.push_back(Ort::Value::CreateTensor<bool>(memory_, &use_cache, 1, flag_shape.data(), 1));
    float no_data = 0;
    const std::array<std::int64_t, 4> empty_shape{1, heads_, 0, head_dim_};
    for (std::size_t i = 0; i < kv_count; ++i) {
      inputs.push_back(Ort::Value::CreateTensor<float>(memory_, &no_data, 0, empty_shape.data(), 4));
    }

    std::vector<Ort::Value> outputs;
    outputs.reserve(first_output_ptrs_.size());
    for (std::size_t step = 0; step < max_tokens; ++step) {
      // Step 0 computes the cross-attention K/V from the encoder output; afterwards only the
      // decoder self-attention cache changes (the encoder "present" outputs are dummies then).
      const bool first = step == 0;
      const auto& out_names = first ? first_output_ptrs_ : next_output_ptrs_;
      outputs.clear();
      for (std::size_t i = 0; i < out_names.size(); ++i) outputs.emplace_back(nullptr);
      decoder_.Run(Ort::RunOptions{nullptr}, input_ptrs_.data(), inputs.data(), inputs.size(),
                   out_names.data(), outputs.data(), outputs.size());
      ++result.decoder_steps;

      // Greedy: argmax straight over the last position's logits (first maximum wins).
      const auto logits_info = outputs[0].GetTensorTypeAndShapeInfo();
      const auto logits_shape = logits_info.GetShape();
      const std::int64_t vocab = logits_shape.back();
      const float* logits = outputs[0].GetTensorData<float>() +
                            (logits_info.GetElementCount() - static_cast<std::size_t>(vocab));
      const std::int64_t best = std::max_element(logits, logits + vocab) - logits;

      if (best == kEos) break;
      result.ids.push_back(best);
      if (++generated == max_tokens) {
        result.hit_cap = true;
        break;
      }
      token = best;
      use_cache = true;

      // The presents become the next step's pasts: moved, never copied.
      for (int layer = 0; layer < layers_; ++layer) {
        const std::size_t in = kFixedInputs + 4 * static_cast<std::size_t>(layer);
        if (first) {
          const std::size_t out = kFixedOutputs + 4 * static_cast<std::size_t>(layer);
          for (int kind = 0; kind < 4; ++kind) inputs[in + kind] = std::move(outputs[out + kind]);
        } else {
          const std::size_t out = kFixedOutputs + 2 * static_cast<std::size_t>(layer);
          inputs[in] = std::move(outputs[out]);
          inputs[in + 1] = std::move(outputs[out + 1]);
        }
      }
    }
    result.decoder_seconds += Seconds(decoder_start);
  } catch (const Ort::Exception& e) {
    throw JobError("MODEL_FAILURE", std::string("Moonshine inference failed: ") + e.what());
  }
}

}  // namespace speech
