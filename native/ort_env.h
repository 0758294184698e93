// The process's one ONNX Runtime environment and the session options every model uses.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <string>

namespace speech {

Ort::Env& OrtEnv();
// One intra-op thread per run: concurrency comes from the libuv threadpool, not from ORT.
Ort::SessionOptions DefaultSessionOptions();

// Runs a tiny graph built in memory (y = x + x) through a real session and checks the answer:
// proves the library loads, the API version matches and inference works. Returns ORT's version.
std::string ProbeOrt();

}  // namespace speech
