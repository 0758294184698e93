// Per-environment state of the addon: the constructors of its classes, for type-safe unwrapping.
#pragma once

#include <napi.h>

#include <cstdint>

namespace speech {

struct AddonData {
  Napi::FunctionReference task;
  Napi::FunctionReference audio_stream;
  Napi::FunctionReference model;
  Napi::FunctionReference vad;
  Napi::FunctionReference vad_channel;
  std::int64_t reported_resampler_bytes = 0;  // external memory told to V8 (ReportResamplerMemory)
};

inline AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// `value` unwrapped as T when it was made by `ctor`, else null (a bare napi_unwrap would hand
// back any ObjectWrap's pointer under the wrong type).
template <typename T>
T* UnwrapAs(const Napi::Value& value, const Napi::FunctionReference& ctor) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value())) return nullptr;
  return Napi::ObjectWrap<T>::Unwrap(value.As<Napi::Object>());
}

}  // namespace speech
