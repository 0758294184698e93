// Many audio streams' pushes as one job, for the decode batcher (src/pipeline/decode-batcher.ts).
//
//   decodeBatch(task, streams: AudioStream[], bytes: Uint8Array[])
//       : Promise<{chunks: (AudioChunk | Error)[], waitSeconds, runSeconds}>
//
// One job decodes bytes[i] into streams[i], in order, exactly as streams[i].push(bytes[i]) would:
// same samples, same carried-over partial frames. chunks[i] is stream i's AudioChunk, whose
// runSeconds is the time spent on that stream alone and waitSeconds the job's wait for a worker.
//
// Failures: the arguments are checked before anything is reserved, and any problem refuses the
// whole call synchronously (INVALID_ARGUMENT: not an AudioStream or not a Uint8Array, lengths
// differ, a stream twice; CLOSED: a closed stream; BUSY: a stream already in a job in flight).
// Once running, the streams' states are independent, so an exception while decoding one stream
// fails that stream alone: chunks[i] is then an Error with a `code` (NATIVE_PANIC, counted as a
// panic of audio_decoding, for anything but a JobError) and the other streams' chunks are
// unaffected. That stream's carried-over bytes and resampler state are then undefined: its owner
// must not push to it again (the front end ends the stream on any failure). Only a failure
// outside the per-stream decode (converting the result) rejects the promise, for every stream.
//
// Every stream is reserved for the job's life: its own task is busy (push, flush and another
// decodeBatch refuse it with BUSY) and counts the job as a poll for its idle and first-poll
// figures, while the job itself is one poll of `task`. Streams and buffers stay pinned until the
// promise settles; the buffers must not be modified before.
#pragma once

#include <napi.h>

namespace speech {

Napi::Value DecodeBatch(const Napi::CallbackInfo& info);

}  // namespace speech
