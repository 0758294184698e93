// The one instrumented executor: every native unit of work goes through Submit().
//
// A job runs on a libuv threadpool worker; its result or error comes back as a promise. The
// executor times the job's wait and run into the task metrics of its task's subsystem, and turns
// any exception escaping the job into a rejected promise with a `code` (a JobError's own code, or
// "NATIVE_PANIC" for anything else, which is also counted as a panic). Nothing a job throws can
// take the process down.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "job.h"
#include "task.h"

namespace speech {

// The niceness threadpool workers take on their first job (see executor.cc; nice 10 weighs about
// a tenth of nice 0 under Linux's scheduler; 0 leaves them alone). Set at start-up, before jobs.
void SetThreadpoolNice(int nice);

// `owner` is the JS object that owns `task` (the ObjectWrap holding it); it and every value in
// `pins` (borrowed input buffers) stay referenced until the promise settles, so the job may keep
// raw pointers into them.
Napi::Promise Submit(Napi::Env env, TaskState& task, Napi::Object owner, std::unique_ptr<Job> job,
                     const std::vector<Napi::Value>& pins = {});

}  // namespace speech
