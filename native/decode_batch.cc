#include "decode_batch.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "addon_data.h"
#include "binding_util.h"
#include "stream.h"
#include "task.h"

namespace speech {
namespace {

constexpr Subsystem kSubsystem = Subsystem::kAudioDecoding;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class DecodeBatchJob final : public Job {
 public:
  struct Item {
    AudioStream* stream;       // pinned by the executor; main thread only (Settled)
    StreamState* state;        // the stream's; touched by this job alone while its task is busy
    const std::uint8_t* data;  // pinned by the executor
    std::size_t size;
    std::optional<Clock::time_point> created;  // set when this is the stream's first poll
    std::vector<std::vector<float>> out{};
    Clock::duration run{};
    std::string code{};  // non-empty: this stream's decode failed
    std::string message{};
  };

  explicit DecodeBatchJob(std::vector<Item> items) : items_(std::move(items)), submitted_(Clock::now()) {}

  // Never throws: each stream's exception is caught and kept for that stream alone.
  void Execute() override {
    TaskMetrics& metrics = TaskMetrics::Get();
    const Clock::time_point start = Clock::now();
    wait_ = start - submitted_;
    Clock::time_point last = start;
    for (Item& item : items_) {
      if (item.created) metrics.FirstPoll(kSubsystem, start - *item.created);
      try {
        item.state->Push(item.data, item.size, item.out);
      } catch (const JobError& e) {
        item.code = e.code();
        item.message = e.what();
      } catch (const std::exception& e) {
        Panicked(item, e.what());
      } catch (...) {
        Panicked(item, "unknown exception");
      }
      const Clock::time_point now = Clock::now();
      item.run = now - last;
      last = now;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array chunks = Napi::Array::New(env, items_.size());
    const Napi::Number wait = Napi::Number::New(env, Seconds(wait_));
    for (std::size_t i = 0; i < items_.size(); ++i) {
      const Item& item = items_[i];
      if (!item.code.empty()) {
        chunks.Set(static_cast<uint32_t>(i), TaskError(env, kSubsystem, item.code, item.message).Value());
        continue;
      }
      Napi::Object chunk = MakeChunk(env, item.out, item.state->format(), item.size, 0);
      chunk.Set("waitSeconds", wait);
      chunk.Set("runSeconds", Napi::Number::New(env, Seconds(item.run)));
      chunks.Set(static_cast<uint32_t>(i), chunk);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("chunks", chunks);
    return result;
  }

  void Settled() override {
    const Clock::time_point now = Clock::now();
    for (Item& item : items_) item.stream->task().OnComplete(now);
  }

 private:
  static void Panicked(Item& item, const std::string& what) {
    TaskMetrics::Get().Panicked(kSubsystem);
    item.code = "NATIVE_PANIC";
    item.message = PanicMessage(kSubsystem, what);
    item.out.clear();
  }

  std::vector<Item> items_;
  const Clock::time_point submitted_;
  Clock::duration wait_{};
};

}  // namespace

// decodeBatch(task, streams: AudioStream[], bytes: Uint8Array[])
Napi::Value DecodeBatch(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  if (!info[1].IsArray() || !info[2].IsArray()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "decodeBatch(task, streams, bytes) needs two arrays");
  }
  const Napi::Array streams = info[1].As<Napi::Array>();
  const Napi::Array bytes = info[2].As<Napi::Array>();
  if (streams.Length() != bytes.Length()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "decodeBatch(): one Uint8Array per stream");
  }
  const uint32_t n = streams.Length();
  const AddonData& data = GetAddonData(env);
  // The streams and buffers, pinned through one array that JS cannot reach (the caller's
  // arrays could be changed while the job runs).
  Napi::Array pins = Napi::Array::New(env, 2 * static_cast<std::size_t>(n));
  std::vector<DecodeBatchJob::Item> items;
  items.reserve(n);
  std::vector<const AudioStream*> seen;
  seen.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const Napi::Value s = streams.Get(i);
    const Napi::Value b = bytes.Get(i);
    AudioStream* stream = UnwrapAs<AudioStream>(s, data.audio_stream);
    if (stream == nullptr) ThrowCoded(env, "INVALID_ARGUMENT", "decodeBatch(): streams must be AudioStreams");
    if (!IsTypedArrayOf(b, napi_uint8_array)) {
      ThrowCoded(env, "INVALID_ARGUMENT", "decodeBatch(): bytes must be Uint8Arrays");
    }
    if (stream->closed()) ThrowCoded(env, "CLOSED", "decodeBatch(): an audio stream is closed");
    if (stream->task().busy()) ThrowCoded(env, "BUSY", "decodeBatch(): an audio stream already has a job in flight");
    const Napi::Uint8Array buffer = b.As<Napi::Uint8Array>();
    items.push_back({stream, &stream->state(), buffer.Data(), buffer.ByteLength(), std::nullopt});
    seen.push_back(stream);
    pins.Set(2 * i, s);
    pins.Set(2 * i + 1, b);
  }
  std::sort(seen.begin(), seen.end());
  if (std::adjacent_find(seen.begin(), seen.end()) != seen.end()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "decodeBatch(): a stream appears twice");
  }
  // Everything checked: reserve the streams (nothing above changed any state).
  const Clock::time_point now = Clock::now();
  for (DecodeBatchJob::Item& item : items) item.created = item.stream->task().OnSubmit(now);
  return SubmitOn(task, std::make_unique<DecodeBatchJob>(std::move(items)), {pins});
}

}  // namespace speech
