#include "memory_release.h"

#include <cstdint>
#include <cstdio>
#include <memory>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include "binding_util.h"
#include "task.h"

namespace speech {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }  // NOLINT(cppcoreguidelines-owning-memory): the owner
};

// Resident bytes of this process (/proc/self/statm's second field, in pages); 0 if unreadable.
std::int64_t ResidentBytes() {
  const std::unique_ptr<std::FILE, FileCloser> f(std::fopen("/proc/self/statm", "r"));
  if (!f) return 0;
  long long size = 0, resident = 0;
  const int read = std::fscanf(f.get(), "%lld %lld", &size, &resident);
  return read == 2 ? static_cast<std::int64_t>(resident) * sysconf(_SC_PAGESIZE) : 0;
}

class ReleaseJob final : public Job {
 public:
  void Execute() override {
    before_ = ResidentBytes();
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
    after_ = ResidentBytes();
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("before", Napi::Number::New(env, static_cast<double>(before_)));
    out.Set("after", Napi::Number::New(env, static_cast<double>(after_)));
    return out;
  }

 private:
  std::int64_t before_ = 0, after_ = 0;
};

}  // namespace

Napi::Value ReleaseMemoryJs(const Napi::CallbackInfo& info) {
  TaskHandle& task = TaskHandle::FromFirstArg(info);
  return SubmitOn(task, std::make_unique<ReleaseJob>());
}

}  // namespace speech
