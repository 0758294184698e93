// Streaming at a chosen multiple of real time, like a live client.
import type { Client } from './client.js';

/** Sends `data` in frames of `frameSeconds`, `speed` times faster than real time. */
export async function sendPaced(client: Client, data: Uint8Array, bytesPerSecond: number, frameSeconds: number, speed: number): Promise<void> {
  const frame = Math.round(bytesPerSecond * frameSeconds);
  const start = performance.now();
  for (let i = 0, n = 0; i < data.length; i += frame, n++) {
    if (client.ws.readyState !== client.ws.OPEN) return; // the server closed it: nothing more to send
    client.ws.send(data.subarray(i, Math.min(i + frame, data.length)), { binary: true });
    const due = start + ((n + 1) * frameSeconds * 1000) / speed;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}
