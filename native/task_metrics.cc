#include "task_metrics.h"

#include <algorithm>
#include <string_view>

namespace speech {
namespace {

std::uint64_t Nanos(Clock::duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
}

// Durations are exactly the families whose exported name carries the unit "seconds".
bool IsDuration(const TaskFieldInfo& info) {
  return std::string_view(info.name).find("_seconds") != std::string_view::npos;
}

}  // namespace

const std::array<TaskFieldInfo, kTaskFieldCount>& TaskFieldInfos() {
  static const std::array<TaskFieldInfo, kTaskFieldCount> infos = {{
#define SPEECH_FIELD_INFO(field, kind, name, help) {#field, #kind, name, help},
      SPEECH_TASK_METRIC_FIELDS(SPEECH_FIELD_INFO)
#undef SPEECH_FIELD_INFO
  }};
  return infos;
}

TaskMetrics& TaskMetrics::Get() {
  static TaskMetrics metrics;
  return metrics;
}

void TaskMetrics::Add(Subsystem s, TaskField f, std::uint64_t v) {
  rows_[static_cast<std::size_t>(s)][static_cast<std::size_t>(f)].fetch_add(v, std::memory_order_relaxed);
}

void TaskMetrics::Max(Subsystem s, TaskField f, std::uint64_t v) {
  auto& cell = rows_[static_cast<std::size_t>(s)][static_cast<std::size_t>(f)];
  std::uint64_t seen = cell.load(std::memory_order_relaxed);
  while (v > seen && !cell.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

void TaskMetrics::TaskCreated(Subsystem s) { Add(s, TaskField::instrumented_count, 1); }
void TaskMetrics::TaskDropped(Subsystem s) { Add(s, TaskField::dropped_count, 1); }

void TaskMetrics::FirstPoll(Subsystem s, Clock::duration since_creation) {
  Add(s, TaskField::first_poll_count, 1);
  Add(s, TaskField::total_first_poll_delay, Nanos(since_creation));
}

void TaskMetrics::Idled(Subsystem s, Clock::duration idle) {
  const std::uint64_t ns = Nanos(idle);
  Add(s, TaskField::total_idled_count, 1);
  Add(s, TaskField::total_idle_duration, ns);
  Max(s, TaskField::max_idle_duration, ns);
}

void TaskMetrics::Polled(Subsystem s, Clock::duration delay, Clock::duration run, Outcome outcome) {
  const std::uint64_t delay_ns = Nanos(delay);
  const std::uint64_t run_ns = Nanos(run);
  Add(s, TaskField::total_scheduled_count, 1);
  Add(s, TaskField::total_scheduled_duration, delay_ns);
  if (delay < kLongDelayThreshold) {
    Add(s, TaskField::total_short_delay_count, 1);
    Add(s, TaskField::total_short_delay_duration, delay_ns);
  } else {
    Add(s, TaskField::total_long_delay_count, 1);
    Add(s, TaskField::total_long_delay_duration, delay_ns);
  }
  Add(s, TaskField::total_poll_count, 1);
  Add(s, TaskField::total_poll_duration, run_ns);
  if (run < kSlowPollThreshold) {
    Add(s, TaskField::total_fast_poll_count, 1);
    Add(s, TaskField::total_fast_poll_duration, run_ns);
  } else {
    Add(s, TaskField::total_slow_poll_count, 1);
    Add(s, TaskField::total_slow_poll_duration, run_ns);
  }
  if (outcome == Outcome::kFailed) Add(s, TaskField::total_failed_count, 1);
  if (outcome == Outcome::kPanicked) Add(s, TaskField::total_task_panic_count, 1);
}

void TaskMetrics::Panicked(Subsystem s) { Add(s, TaskField::total_task_panic_count, 1); }

void TaskMetrics::Failed(Subsystem s) { Add(s, TaskField::total_failed_count, 1); }

void TaskMetrics::JobQueued() { queued_.fetch_add(1, std::memory_order_relaxed); }

void TaskMetrics::JobStarted() {
  queued_.fetch_sub(1, std::memory_order_relaxed);
  running_.fetch_add(1, std::memory_order_relaxed);
}

void TaskMetrics::JobFinished() { running_.fetch_sub(1, std::memory_order_relaxed); }

void TaskMetrics::AddWorkerBusy(Clock::duration run) {
  thread_local const std::size_t index = workers_seen_.fetch_add(1, std::memory_order_relaxed) % kMaxWorkers;
  worker_busy_ns_[index].fetch_add(Nanos(run), std::memory_order_relaxed);
}

std::uint64_t TaskMetrics::PanicTotal() const {
  constexpr auto field = static_cast<std::size_t>(TaskField::total_task_panic_count);
  std::uint64_t total = 0;
  for (const Row& row : rows_) total += row[field].load(std::memory_order_relaxed);
  return total;
}

TaskMetrics::Snapshot TaskMetrics::Take() const {
  Snapshot snap;
  const auto& infos = TaskFieldInfos();
  snap.values.reserve(kSubsystemCount * kTaskFieldCount);
  for (const Row& row : rows_) {
    for (std::size_t f = 0; f < kTaskFieldCount; ++f) {
      const double raw = static_cast<double>(row[f].load(std::memory_order_relaxed));
      snap.values.push_back(IsDuration(infos[f]) ? raw * 1e-9 : raw);
    }
  }
  snap.jobs_queued = static_cast<double>(queued_.load(std::memory_order_relaxed));
  snap.jobs_running = static_cast<double>(running_.load(std::memory_order_relaxed));
  const std::size_t workers = std::min(workers_seen_.load(std::memory_order_relaxed), kMaxWorkers);
  for (std::size_t i = 0; i < workers; ++i) {
    snap.worker_busy_seconds.push_back(static_cast<double>(worker_busy_ns_[i].load(std::memory_order_relaxed)) * 1e-9);
  }
  return snap;
}

}  // namespace speech
