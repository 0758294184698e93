#include "executor.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "binding_util.h"

namespace speech {
namespace {

// With THREADPOOL_NICE above 0, threadpool workers run at a lower CPU priority than the event
// loops: when the cores are saturated, a loop thread (health, routing, copying frames) gets the
// CPU as soon as it is runnable instead of waiting out a scheduler slice behind inference. Linux
// niceness is per thread; each worker sets its own on its first job.
std::atomic<int> threadpool_nice{0};

// Once per threadpool worker, on its first job: its niceness and its float mode.
void PrepareThisWorkerThread() {
#if defined(__linux__)
  thread_local bool done = false;
  if (done) return;
  done = true;
#if defined(__SSE__)
  // Flush denormals to zero (FTZ) and read them as zero (DAZ) on every threadpool worker: the
  // resampler's and VAD's own float code would otherwise crawl on denormal input (issue #17).
  _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
  const int nice = threadpool_nice.load(std::memory_order_relaxed);
  if (nice > 0) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice);
#endif
}

class TaskWorker final : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, TaskState& task, std::unique_ptr<Job> job, std::optional<Clock::time_point> created)
      : Napi::AsyncWorker(env, "speech:job"),
        deferred_(Napi::Promise::Deferred::New(env)),
        task_(task),
        subsystem_(task.subsystem()),
        job_(std::move(job)),
        created_(created),
        queued_(Clock::now()) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Pin(Napi::Value value) {
    if (value.IsObject()) pins_.push_back(Napi::Persistent(value.As<Napi::Object>()));
  }

 protected:
  void Execute() override {
    PrepareThisWorkerThread();
    TaskMetrics& metrics = TaskMetrics::Get();
    const Clock::time_point start = Clock::now();
    metrics.JobStarted();
    if (created_) metrics.FirstPoll(subsystem_, start - *created_);
    try {
      job_->Execute();
    } catch (const JobError& e) {
      outcome_ = Outcome::kFailed;
      code_ = e.code();
      message_ = e.what();
    } catch (const std::exception& e) {
      outcome_ = Outcome::kPanicked;
      message_ = e.what();
    } catch (...) {
      outcome_ = Outcome::kPanicked;
      message_ = "unknown exception";
    }
    const Clock::time_point end = Clock::now();
    wait_ = start - queued_;
    run_ = end - start;
    metrics.Polled(subsystem_, wait_, run_, outcome_);
    metrics.AddWorkerBusy(run_);
    metrics.JobFinished();
  }

  // Runs instead of OnError too: Execute never calls SetError.
  void OnOK() override {
    const Napi::Env env = Env();
    task_.OnComplete(Clock::now());
    job_->Settled();
    if (outcome_ == Outcome::kOk) {
      try {
        const Napi::Value result = job_->Result(env);
        if (result.IsObject() && !result.IsTypedArray()) {
          // Every object result says how long it waited for and ran on a worker (stage metrics).
          const Napi::Object timed = result.As<Napi::Object>();
          timed.Set("waitSeconds", std::chrono::duration<double>(wait_).count());
          timed.Set("runSeconds", std::chrono::duration<double>(run_).count());
        }
        deferred_.Resolve(result);
        return;
      } catch (const Napi::Error& e) {
        outcome_ = Outcome::kPanicked;
        message_ = e.Message();
      } catch (const std::exception& e) {
        outcome_ = Outcome::kPanicked;
        message_ = e.what();
      }
      // Converting the result is part of the job: its failure is a panic like one in Execute.
      TaskMetrics::Get().Panicked(subsystem_);
    }
    const bool panicked = outcome_ == Outcome::kPanicked;
    deferred_.Reject(TaskError(env, subsystem_, panicked ? "NATIVE_PANIC" : code_,
                               panicked ? PanicMessage(subsystem_, message_) : message_)
                         .Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  TaskState& task_;  // alive: its owner is pinned
  const Subsystem subsystem_;
  std::unique_ptr<Job> job_;
  const std::optional<Clock::time_point> created_;
  const Clock::time_point queued_;
  Clock::duration wait_{};
  Clock::duration run_{};
  std::vector<Napi::ObjectReference> pins_;
  Outcome outcome_ = Outcome::kOk;
  std::string code_;
  std::string message_;
};

}  // namespace

Napi::Promise Submit(Napi::Env env, TaskState& task, Napi::Object owner, std::unique_ptr<Job> job,
                     const std::vector<Napi::Value>& pins) {
  const auto first_poll_of = task.OnSubmit(Clock::now());
  // AsyncWorker deletes itself after OnOK; ownership passes to libuv until then.
  auto worker = std::make_unique<TaskWorker>(env, task, std::move(job), first_poll_of);
  worker->Pin(owner);
  for (const Napi::Value& pin : pins) worker->Pin(pin);
  Napi::Promise promise = worker->Promise();
  TaskMetrics::Get().JobQueued();
  worker.release()->Queue();
  return promise;
}

void SetThreadpoolNice(int nice) { threadpool_nice.store(nice, std::memory_order_relaxed); }

}  // namespace speech
