// One task's identity and clock (see task_metrics.h for what a task is). Main thread only.
#pragma once

#include <napi.h>

#include "task_metrics.h"

namespace speech {

class TaskState {
 public:
  explicit TaskState(Subsystem subsystem);
  ~TaskState();
  TaskState(const TaskState&) = delete;
  TaskState& operator=(const TaskState&) = delete;

  Subsystem subsystem() const { return subsystem_; }
  bool busy() const { return in_flight_ > 0; }
  // A job is being submitted. Returns the task's creation time if this is its first poll.
  std::optional<Clock::time_point> OnSubmit(Clock::time_point now);
  // A job of this task has finished and its result was delivered.
  void OnComplete(Clock::time_point now);
  // The task has ended; counted once, here or at destruction, whichever comes first.
  void Close();

 private:
  Subsystem subsystem_;
  Clock::time_point created_;
  std::optional<Clock::time_point> idle_since_;
  int in_flight_ = 0;
  bool polled_ = false;
  bool closed_ = false;
};

// JS-visible task, for work whose owner lives in JS: a batcher of VAD or model jobs, a client
// connection, a scrape. `new Task("inference")`; `recordPoll(delay, run, outcome)` records a
// poll that ran in JS (the JS `spawn` helper); `close()` ends the task.
class TaskHandle : public Napi::ObjectWrap<TaskHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TaskHandle(const Napi::CallbackInfo& info);
  TaskState& state() { return *state_; }
  static TaskHandle* Unwrap(const Napi::Value& value);
  // The Task passed as info[0]; throws INVALID_ARGUMENT when it is something else.
  static TaskHandle& FromFirstArg(const Napi::CallbackInfo& info);

 private:
  Napi::Value RecordPoll(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  std::unique_ptr<TaskState> state_;
};

// Adds the Task class (its constructor kept in AddonData for Unwrap).
void InitTask(Napi::Env env, Napi::Object exports);

}  // namespace speech
