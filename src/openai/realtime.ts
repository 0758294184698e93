// Placeholder: replaced by the Realtime transcription route.
import type { TemplatedApp } from 'uWebSockets.js';
import type { OpenAiDeps } from './routes.js';

export function registerRealtime(_app: TemplatedApp, _deps: OpenAiDeps): { drain(): Promise<void>; close(): number } {
  return { drain: () => Promise.resolve(), close: () => 0 };
}
