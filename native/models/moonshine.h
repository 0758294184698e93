// Moonshine speech recognition (Useful Sensors; the ONNX export of moonshine-tiny as
// onnx-community ships it): an audio encoder and a merged KV-cache decoder, decoded greedily.
// Layer count and cache geometry are read from the model, not hard-coded.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/vocabulary.h"

namespace speech {

// One transcription with the details a caller may want for metrics or tests.
struct MoonshineTranscript {
  std::vector<std::int64_t> ids;  // generated tokens of all chunks, without BOS and EOS
  std::string text;               // each chunk's decoded text, joined with single spaces
  double encoder_seconds = 0;     // wall time in the encoder
  double decoder_seconds = 0;     // wall time in all decoder steps (including the EOS step)
  int decoder_steps = 0;          // decoder runs
  int chunks = 0;                 // encoder runs (audio over kMaxChunkSamples is cut)
  bool hit_cap = false;           // some chunk stopped at the token cap, not at EOS
};

// One utterance of a batch: its audio and, optionally, a draft of its tokens (the previous
// interim's ids for the same utterance), checked in one decoder call and kept as far as the
// model agrees with it.
struct MoonshineRequest {
  const float* samples = nullptr;
  std::size_t count = 0;
  std::vector<std::int64_t> draft;
};

// How a batch is decoded. Rows of one decoder call must share the decoder position and the
// encoder length (the merged decoder has no attention mask), so utterances of similar length are
// decoded together, each padded with silence to the longest of its group.
struct MoonshineBatchOptions {
  std::size_t max_rows = 16;  // utterances in one decoder call (RunBatch: all it is given)
  // Silence added to an utterance to join a group: 2 s cost less CPU than 0.5 s (bench/engine.ts:
  // the encoder reruns on the padding, the decoder shares more calls) with the same words.
  std::size_t max_pad_samples = 32000;
};

// Which files a MoonshineModel loads: the package's, or the int8 derivation installed beside
// them (models/derive-int8.mjs: signed weights and an int8 output projection; 1.2-1.9x less
// CPU, the same words but for near-ties of the logits).
enum class MoonshineWeights { kPackage, kInt8 };
// kInt8 where this CPU multiplies uint8 by int8 exactly (VNNI: ORT's integer kernel without it
// may saturate), else kPackage.
MoonshineWeights BestMoonshineWeights();

class MoonshineModel final : public Model {
 public:
  static constexpr int kSampleRate = 16000;
  // Shorter audio gives empty text without running the model.
  static constexpr std::size_t kMinSamples = kSampleRate / 10;
  // Longer audio is cut into chunks of at most this length, each ended in the middle of the
  // quietest 400 ms of its last kCutSearchSamples, and the chunks' texts are joined with spaces.
  // Measured with moonshine-tiny on the test fixture: runs of up to ~12 s transcribe well; from
  // ~13 s on single runs start to fail (empty output, mangled words) and beyond ~30 s they
  // collapse into repetition up to the token cap. The encoder's cost grows with the square of
  // the length, and a run's ORT arena memory with its length.
  static constexpr std::size_t kMaxChunkSamples = 12 * kSampleRate;
  static constexpr std::size_t kCutSearchSamples = 5 * kSampleRate;
  // The decoder stops at EOS or after ceil(seconds * kTokensPerSecond) tokens.
  static constexpr double kTokensPerSecond = 6.0;

  // `dir` holds encoder_model.onnx, decoder_model_merged.onnx and vocab.txt (and, for kInt8,
  // their .int8.onnx derivations). Loads both sessions (one intra-op thread each). Throws
  // JobError("MODEL_LOAD", message naming the file).
  explicit MoonshineModel(const std::string& dir, MoonshineWeights weights = MoonshineWeights::kPackage);

  // Thread-safe: any number of threads may run concurrently on one model (the sessions are
  // shared; all per-call state is local). Any length is accepted (see kMaxChunkSamples). Throws
  // JobError("MODEL_FAILURE") when ONNX Runtime fails.
  ModelOutput Run(const float* samples, std::size_t count) override;
  // TranscribeBatch of all the inputs (as many rows as given, grouped within MaxPadSamples); a
  // failure of ONNX Runtime fails every item.
  std::vector<ModelResult> RunBatch(const std::vector<ModelInput>& inputs) override;
  std::size_t MaxPadSamples() const override { return MoonshineBatchOptions{}.max_pad_samples; }
  const char* Weights() const override { return weights_ == MoonshineWeights::kInt8 ? "int8" : "package"; }
  MoonshineTranscript Transcribe(const float* samples, std::size_t count);
  // Transcribes every request; results in the order given. Same thread-safety as Run.
  std::vector<MoonshineTranscript> TranscribeBatch(const std::vector<MoonshineRequest>& requests,
                                                   const MoonshineBatchOptions& options);

  int layers() const { return layers_; }

  // Where Transcribe cuts `count` samples: chunk i is [cuts[i], cuts[i + 1]). Exposed for tests.
  static std::vector<std::size_t> ChunkBounds(const float* samples, std::size_t count);

 private:
  struct Row;
  // The encoder's output for `count` samples followed by `padded - count` zeros: [1, T, D].
  Ort::Value Encode(const float* samples, std::size_t count, std::size_t padded, double& seconds);
  // Greedy decode of rows that share one encoder length, in lock-step decoder calls; a row leaves
  // the batch at EOS or its token cap. Rows with drafts check them first, in one call, and go on
  // from the longest prefix all of them agree with; rows without decode as a group of their own.
  void DecodeRows(std::vector<Row*>& rows, std::vector<Ort::Value>& hidden);
  // One lock-step group: `hidden` is its encoder states [rows, frames, dim].
  void DecodeGroup(std::vector<Row*>& rows, Ort::Value hidden);

  MoonshineWeights weights_;
  Ort::MemoryInfo memory_;
  Ort::Session encoder_{nullptr};
  Ort::Session decoder_{nullptr};
  Vocabulary vocabulary_;

  int layers_ = 0;
  std::int64_t heads_ = 0, head_dim_ = 0;

  // Built once: the C strings point into the std::string vectors.
  std::vector<std::string> input_names_, first_output_names_, next_output_names_;
  std::vector<const char*> input_ptrs_, first_output_ptrs_, next_output_ptrs_;
};

}  // namespace speech
