// The task metrics' JS surface: their schema, a snapshot of every native counter, the panic
// total for health, and panics found in JS code.
#pragma once

#include <napi.h>

namespace speech {

// Adds taskMetricSchema, snapshot, panicTotal and recordPanic.
void InitMetrics(Napi::Env env, Napi::Object exports);

}  // namespace speech
