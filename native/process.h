// Process-level concerns of the addon's JS surface: replacing or ending the process, the
// threadpool's niceness, the listening sockets' receive buffer, returning free heap to the OS.
#pragma once

#include <napi.h>

namespace speech {

// Adds reexec, exitProcess, setThreadpoolNice, setListenReceiveBuffer and releaseMemory.
void InitProcess(Napi::Env env, Napi::Object exports);

}  // namespace speech
