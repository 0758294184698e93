// A missing or corrupted model file stops start-up with a clear message and a non-zero exit.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, truncateSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../src/paths.js';
import { runMain } from '../helpers/server.js';

function copyOfModels(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'speech-models-'));
  for (const model of ['silero-vad', 'moonshine-tiny']) cpSync(path.join(PROJECT_ROOT, 'models', model), path.join(dir, model), { recursive: true });
  return dir;
}

describe('model files at start-up', () => {
  for (const [damage, expected] of [
    [(dir: string) => unlinkSync(path.join(dir, 'moonshine-tiny/decoder_model_merged.onnx')), /moonshine-tiny\/decoder_model_merged\.onnx is missing/],
    [(dir: string) => truncateSync(path.join(dir, 'moonshine-tiny/encoder_model.onnx'), 1000), /moonshine-tiny\/encoder_model\.onnx has 1000 bytes, expected 7937661/],
    [(dir: string) => unlinkSync(path.join(dir, 'silero-vad/silero_vad.onnx')), /silero-vad\/silero_vad\.onnx is missing/],
    [(dir: string) => unlinkSync(path.join(dir, 'moonshine-tiny/decoder_model_merged.int8.onnx')), /moonshine-tiny\/decoder_model_merged\.int8\.onnx is missing/],
  ] as const) {
    it(`refuses to start, exit 1, naming the file: ${expected.source}`, async () => {
      const dir = copyOfModels();
      try {
        damage(dir);
        const { code, stdout } = await runMain([], { MODEL: 'moonshine-tiny', MODELS_DIR: dir });
        assert.equal(code, 1);
        const failure = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'start-up failed');
        assert.ok(failure, stdout);
        assert.match(failure['error'] as string, expected);
        assert.match(failure['error'] as string, /models\/fetch\.mjs/, 'says how to repair it');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('a file with the right size but wrong content is caught by its sha256', async () => {
    const dir = copyOfModels();
    try {
      const file = path.join(dir, 'silero-vad/silero_vad.onnx');
      const { openSync, writeSync, closeSync } = await import('node:fs');
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, 1000);
      closeSync(fd);
      const { code, stdout } = await runMain([], { MODEL: 'moonshine-tiny', MODELS_DIR: dir });
      assert.equal(code, 1);
      assert.match(stdout, /silero_vad\.onnx has sha256 [0-9a-f]{64}, expected 1a153a22/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
