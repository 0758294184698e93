#include "process.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "binding_util.h"
#include "executor.h"
#include "listen_socket.h"
#include "memory_release.h"

namespace speech {
namespace {

// exitProcess(code): ends the process now, without tearing down worker threads. Node's own exit
// stops each worker and asserts that its event loop has no open handles, which uWebSockets.js
// (this build has no App.close()) cannot promise for idle keep-alive sockets. Called by the
// primary once every worker has drained and its logs are written.
Napi::Value ExitProcess(const Napi::CallbackInfo& info) {
  const int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  std::fflush(nullptr);
  std::_Exit(code);
}

// reexec(argv): replaces this process's image with argv[0] run on argv, in the same environment
// (same pid, so a supervisor's signals still reach it). Returns only by throwing.
Napi::Value Reexec(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0) {
    ThrowCoded(env, "INVALID_ARGUMENT", "reexec(argv) needs a non-empty array of strings");
  }
  const Napi::Array list = info[0].As<Napi::Array>();
  std::vector<std::string> args;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const Napi::Value v = list.Get(i);
    if (!v.IsString()) ThrowCoded(env, "INVALID_ARGUMENT", "reexec(argv) needs strings");
    args.push_back(v.As<Napi::String>().Utf8Value());
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  // Node marks its stdio close-on-exec; the new image must keep writing to the same ones.
  for (int fd = 0; fd <= 2; ++fd) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags != -1) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  execv(argv[0], argv.data());
  ThrowCoded(env, "EXEC_FAILED", std::string("execv ") + args[0] + ": " + std::strerror(errno));
}

// setThreadpoolNice(n): the niceness threadpool workers take (0: unchanged), before any job.
Napi::Value SetThreadpoolNiceJs(const Napi::CallbackInfo& info) {
  const int nice = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  if (nice < 0 || nice > 19) ThrowCoded(info.Env(), "INVALID_ARGUMENT", "setThreadpoolNice(n) needs 0-19");
  SetThreadpoolNice(nice);
  return info.Env().Undefined();
}

// setListenReceiveBuffer(port, bytes): see listen_socket.h. A start-up call of a few syscalls,
// so it runs here rather than through the executor.
Napi::Value SetListenReceiveBufferJs(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    ThrowCoded(env, "INVALID_ARGUMENT", "setListenReceiveBuffer(port, bytes) needs two numbers");
  }
  try {
    const int set =
        SetListenReceiveBuffer(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
    return Napi::Number::New(env, set);
  } catch (const std::system_error& e) {
    ThrowCoded(env, "SOCKET_OPTION", e.what());
  }
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("releaseMemory", Napi::Function::New<ReleaseMemoryJs>(env, "releaseMemory"));
  exports.Set("setThreadpoolNice", Napi::Function::New<SetThreadpoolNiceJs>(env, "setThreadpoolNice"));
  exports.Set("setListenReceiveBuffer", Napi::Function::New<SetListenReceiveBufferJs>(env, "setListenReceiveBuffer"));
  exports.Set("reexec", Napi::Function::New<Reexec>(env, "reexec"));
  exports.Set("exitProcess", Napi::Function::New<ExitProcess>(env, "exitProcess"));
}

}  // namespace speech
