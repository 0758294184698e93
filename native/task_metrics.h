// Task metrics: the libuv-threadpool analogue of tokio-metrics' TaskMonitor, per subsystem.
//
// A *task* is a long-lived unit of work with its own identity (one audio stream's decoder, the
// inference scheduler's jobs, one client connection on the JS side). Each job the task submits to
// the executor is one *poll*. Between polls the task is *idle* (waiting for audio); from
// submission to the moment a threadpool worker picks the job up it is *scheduled* (waiting for a
// worker). This file is the one place each analogue is defined; the exported names, types and
// help texts come from the table below and nothing else.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "subsystem.h"

namespace speech {

using Clock = std::chrono::steady_clock;

// A poll at least this long is slow: it holds a threadpool worker for a noticeable share of the
// 20-40 ms audio frames clients send, delaying every other stream queued behind it.
inline constexpr std::chrono::milliseconds kSlowPollThreshold{10};
// A scheduling delay at least this long is long: the threadpool is saturated.
inline constexpr std::chrono::milliseconds kLongDelayThreshold{10};

// X(field, kind, exported name, help). kind: counter (monotonic), gauge (current or maximum).
// Durations are seconds. The brief's tokio-metrics field names are kept as the C++ identifiers.
#define SPEECH_TASK_METRIC_FIELDS(X)                                                                                  \
  X(instrumented_count, counter, "task_instrumented_total",                                                           \
    "Tasks created (a stream's decoder, a batcher of VAD or model jobs, a client connection, ...)")                   \
  X(dropped_count, counter, "task_dropped_total", "Tasks ended and released")                                         \
  X(first_poll_count, counter, "task_first_poll_total", "Tasks whose first job has started")                          \
  X(total_first_poll_delay, counter, "task_first_poll_delay_seconds_total",                                           \
    "Time from a task's creation to the start of its first job")                                                      \
  X(total_idled_count, counter, "task_idled_total",                                                                   \
    "Times a task went idle: its job finished and it had nothing more to run")                                        \
  X(total_idle_duration, counter, "task_idle_duration_seconds_total",                                                 \
    "Time tasks spent idle, from a job's end to the next submission")                                                 \
  X(max_idle_duration, gauge, "task_max_idle_duration_seconds", "Longest single idle period of any task since start") \
  X(total_scheduled_count, counter, "task_scheduled_total",                                                           \
    "Jobs submitted to the executor (each waits for a worker before it runs)")                                        \
  X(total_scheduled_duration, counter, "task_scheduled_duration_seconds_total",                                       \
    "Time jobs waited between submission and a worker starting them")                                                 \
  X(total_poll_count, counter, "task_poll_total", "Jobs run (polls)")                                                 \
  X(total_poll_duration, counter, "task_poll_duration_seconds_total", "Time spent running jobs")                      \
  X(total_fast_poll_count, counter, "task_fast_poll_total", "Jobs that ran under 10 ms")                              \
  X(total_fast_poll_duration, counter, "task_fast_poll_duration_seconds_total",                                       \
    "Time spent in jobs that ran under 10 ms")                                                                        \
  X(total_slow_poll_count, counter, "task_slow_poll_total", "Jobs that ran 10 ms or longer")                          \
  X(total_slow_poll_duration, counter, "task_slow_poll_duration_seconds_total",                                       \
    "Time spent in jobs that ran 10 ms or longer")                                                                    \
  X(total_short_delay_count, counter, "task_short_delay_total", "Jobs that waited under 10 ms for a worker")          \
  X(total_short_delay_duration, counter, "task_short_delay_duration_seconds_total",                                   \
    "Waiting time of jobs that waited under 10 ms for a worker")                                                      \
  X(total_long_delay_count, counter, "task_long_delay_total", "Jobs that waited 10 ms or longer for a worker")        \
  X(total_long_delay_duration, counter, "task_long_delay_duration_seconds_total",                                     \
    "Waiting time of jobs that waited 10 ms or longer for a worker")                                                  \
  X(total_failed_count, counter, "task_failed_total",                                                                 \
    "Jobs that ended in an expected, typed failure (e.g. an injected model failure)")                                 \
  X(total_task_panic_count, counter, "task_panic_total",                                                              \
    "Jobs that ended in an unexpected exception (a bug), caught and turned into an error")

enum class TaskField : std::size_t {
#define SPEECH_FIELD_ENUM(field, kind, name, help) field,
  SPEECH_TASK_METRIC_FIELDS(SPEECH_FIELD_ENUM)
#undef SPEECH_FIELD_ENUM
      kCount
};
inline constexpr std::size_t kTaskFieldCount = static_cast<std::size_t>(TaskField::kCount);

struct TaskFieldInfo {
  const char* field;
  const char* kind;
  const char* name;
  const char* help;
};
const std::array<TaskFieldInfo, kTaskFieldCount>& TaskFieldInfos();

// How a job ended.
enum class Outcome { kOk, kFailed, kPanicked };

// Process-wide counters, written lock-free from the main thread and the workers.
class TaskMetrics {
 public:
  static TaskMetrics& Get();

  void TaskCreated(Subsystem s);
  void TaskDropped(Subsystem s);
  void FirstPoll(Subsystem s, Clock::duration since_creation);
  void Idled(Subsystem s, Clock::duration idle);
  // A job waited `delay` for a worker, then ran for `run` and ended with `outcome`.
  void Polled(Subsystem s, Clock::duration delay, Clock::duration run, Outcome outcome);
  // A panic found after the poll was recorded (while converting a job's result on the main thread),
  // or a failure or panic of one item of a batch job whose poll itself succeeded.
  void Panicked(Subsystem s);
  void Failed(Subsystem s);
  // Threadpool occupancy, for the runtime gauges.
  void JobQueued();
  void JobStarted();
  void JobFinished();
  // Busy time of the calling worker thread (each worker gets a stable index on first use).
  void AddWorkerBusy(Clock::duration run);

  struct Snapshot {
    std::vector<double> values;  // kSubsystemCount rows of kTaskFieldCount, row-major
    double jobs_queued = 0;      // submitted, not yet started
    double jobs_running = 0;     // started, not yet finished
    std::vector<double> worker_busy_seconds;
  };
  Snapshot Take() const;
  // Panics in every subsystem: health reads this on each probe, without a whole snapshot.
  std::uint64_t PanicTotal() const;

 private:
  static constexpr std::size_t kMaxWorkers = 1024;                      // libuv caps its pool at 1024
  using Row = std::array<std::atomic<std::uint64_t>, kTaskFieldCount>;  // counts or nanoseconds
  void Add(Subsystem s, TaskField f, std::uint64_t v);
  void Max(Subsystem s, TaskField f, std::uint64_t v);

  std::array<Row, kSubsystemCount> rows_{};
  std::atomic<std::int64_t> queued_{0};
  std::atomic<std::int64_t> running_{0};
  std::array<std::atomic<std::uint64_t>, kMaxWorkers> worker_busy_ns_{};
  std::atomic<std::size_t> workers_seen_{0};
};

}  // namespace speech
