#include "task.h"

#include <string>

#include "addon_data.h"
#include "binding_util.h"

namespace speech {

TaskState::TaskState(Subsystem subsystem) : subsystem_(subsystem), created_(Clock::now()) {
  TaskMetrics::Get().TaskCreated(subsystem_);
}

TaskState::~TaskState() { Close(); }

std::optional<Clock::time_point> TaskState::OnSubmit(Clock::time_point now) {
  if (in_flight_++ == 0 && idle_since_) {
    TaskMetrics::Get().Idled(subsystem_, now - *idle_since_);
    idle_since_.reset();
  }
  if (polled_) return std::nullopt;
  polled_ = true;
  return created_;
}

void TaskState::OnComplete(Clock::time_point now) {
  if (--in_flight_ == 0) idle_since_ = now;
}

void TaskState::Close() {
  if (closed_) return;
  closed_ = true;
  TaskMetrics::Get().TaskDropped(subsystem_);
}

Napi::Function TaskHandle::Define(Napi::Env env) {
  return DefineClass(
      env, "Task",
      {InstanceMethod<&TaskHandle::RecordPoll>("recordPoll"), InstanceMethod<&TaskHandle::Close>("close")});
}

TaskHandle::TaskHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TaskHandle>(info) {
  const std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const auto subsystem = ParseSubsystem(name);
  if (!subsystem) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "unknown subsystem: " + name);
  state_ = std::make_unique<TaskState>(*subsystem);
}

TaskHandle* TaskHandle::Unwrap(const Napi::Value& value) {
  return UnwrapAs<TaskHandle>(value, GetAddonData(value.Env()).task);
}

TaskHandle& TaskHandle::FromFirstArg(const Napi::CallbackInfo& info) {
  TaskHandle* task = Unwrap(info[0]);
  if (task == nullptr) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "the first argument must be a Task");
  return *task;
}

// recordPoll(delaySeconds, runSeconds, outcome: "ok" | "failed" | "panicked")
Napi::Value TaskHandle::RecordPoll(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsString()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "recordPoll(delaySeconds, runSeconds, outcome)");
  }
  const auto seconds = [](const Napi::Value& v) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(std::max(0.0, v.As<Napi::Number>().DoubleValue())));
  };
  const std::string outcome_name = info[2].As<Napi::String>().Utf8Value();
  const Outcome outcome = outcome_name == "ok"       ? Outcome::kOk
                          : outcome_name == "failed" ? Outcome::kFailed
                                                     : Outcome::kPanicked;
  const Clock::duration delay = seconds(info[0]);
  const Clock::duration run = seconds(info[1]);
  const Clock::time_point end = Clock::now();
  const Clock::time_point start = end - run;
  TaskMetrics& metrics = TaskMetrics::Get();
  if (const auto created = state_->OnSubmit(start - delay)) {
    metrics.FirstPoll(state_->subsystem(), start - *created);
  }
  metrics.Polled(state_->subsystem(), delay, run, outcome);
  state_->OnComplete(end);
  return env.Undefined();
}

Napi::Value TaskHandle::Close(const Napi::CallbackInfo& info) {
  state_->Close();
  return info.Env().Undefined();
}

void InitTask(Napi::Env env, Napi::Object exports) {
  const Napi::Function task = TaskHandle::Define(env);
  GetAddonData(env).task = Napi::Persistent(task);
  exports.Set("Task", task);
}

}  // namespace speech
