// Helpers every feature's JS binding shares: coded errors, typed-array arguments, copies of
// results into typed arrays, and submitting a job on the Task passed as the first argument.
#pragma once

#include <napi.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "executor.h"
#include "job.h"
#include "subsystem.h"
#include "task.h"

namespace speech {

// A JS Error with `code` set: how a typed failure crosses the boundary (thrown, rejected, or as
// one item of a batch's results).
Napi::Error CodedError(Napi::Env env, const std::string& code, const std::string& message);

// A CodedError that also names the subsystem whose job failed (`task`), as the executor's
// rejections do.
Napi::Error TaskError(Napi::Env env, Subsystem subsystem, const std::string& code, const std::string& message);

// Throws a CodedError, for argument and state errors raised synchronously.
[[noreturn]] void ThrowCoded(Napi::Env env, const char* code, const std::string& message);

// The message of a NATIVE_PANIC: "<subsystem> task panicked: <what>".
std::string PanicMessage(Subsystem subsystem, const std::string& what);

// Whether `value` is a typed array of `type` (e.g. napi_float32_array): a buffer a job may borrow.
bool IsTypedArrayOf(const Napi::Value& value, napi_typedarray_type type);

// A new typed array (e.g. Napi::Float32Array) holding a copy of `values`.
template <typename TypedArray, typename T>
TypedArray CopyToTypedArray(Napi::Env env, const std::vector<T>& values) {
  TypedArray array = TypedArray::New(env, values.size());
  std::copy(values.begin(), values.end(), array.Data());
  return array;
}

// Submits `job` as a poll of `task` (the Task given as info[0]); the task's object and `pins`
// (borrowed buffers, their owners) stay referenced until the promise settles.
Napi::Promise SubmitOn(TaskHandle& task, std::unique_ptr<Job> job, const std::vector<Napi::Value>& pins = {});

}  // namespace speech
