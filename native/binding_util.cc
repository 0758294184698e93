#include "binding_util.h"

namespace speech {

Napi::Error CodedError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

Napi::Error TaskError(Napi::Env env, Subsystem subsystem, const std::string& code, const std::string& message) {
  Napi::Error error = CodedError(env, code, message);
  error.Set("task", Napi::String::New(env, std::string(SubsystemName(subsystem))));
  return error;
}

void ThrowCoded(Napi::Env env, const char* code, const std::string& message) { throw CodedError(env, code, message); }

std::string PanicMessage(Subsystem subsystem, const std::string& what) {
  return std::string(SubsystemName(subsystem)) + " task panicked: " + what;
}

bool IsTypedArrayOf(const Napi::Value& value, napi_typedarray_type type) {
  return value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == type;
}

Napi::Promise SubmitOn(TaskHandle& task, std::unique_ptr<Job> job, const std::vector<Napi::Value>& pins) {
  return Submit(task.Env(), task.state(), task.Value(), std::move(job), pins);
}

}  // namespace speech
