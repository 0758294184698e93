// Returning the C heap's free memory to the OS. After a load peak, glibc keeps the pages that
// hundreds of streams' buffers had used (in its arenas, and below its dynamic mmap threshold):
// measured, 400 stub-model streams left RSS at 760 MB against 220 MB idle, of which malloc_trim
// gave back 470 MB. The server asks for it periodically on a threadpool thread (src/memory-release.ts).
#pragma once

#include <napi.h>

namespace speech {

// releaseMemory(task): Promise<{ before, after }> (resident bytes around a malloc_trim(0)).
Napi::Value ReleaseMemoryJs(const Napi::CallbackInfo& info);

}  // namespace speech
