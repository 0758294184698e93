// A unit of native work: built on the main thread from plain values, run on a libuv worker.
#pragma once

#include <napi.h>

#include <stdexcept>
#include <string>

namespace speech {

// An expected failure with a stable code (e.g. "MODEL_FAILURE"); it reaches JS as a rejected
// promise whose error carries `code`. Any other exception escaping a job is a panic: a bug.
class JobError : public std::runtime_error {
 public:
  JobError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

class Job {
 public:
  virtual ~Job() = default;
  // Worker thread. Never touches N-API: everything it needs was copied or pinned at submission.
  virtual void Execute() = 0;
  // Main thread, after Execute returned normally: turn the job's output into a JS value.
  virtual Napi::Value Result(Napi::Env env) = 0;
  // Main thread, once the job has ended however it ended, before its promise settles: release
  // what was reserved at submission (e.g. a channel's busy flag).
  virtual void Settled() {}
};

}  // namespace speech
