// BufferPool: buffers given back are handed out again, the smallest that fits, within a byte cap.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from '../../src/pipeline/buffer-pool.js';

describe('BufferPool', () => {
  it('hands a buffer given back to the next taker, the smallest one that fits', () => {
    const pool = new BufferPool(1 << 20);
    const small = new Float32Array(1000);
    const big = new Float32Array(8000);
    pool.give(big);
    pool.give(small);
    assert.equal(pool.take(500), small);
    assert.equal(pool.take(500), big, 'the next fitting one');
    assert.notEqual(pool.take(500), big, 'each buffer goes out once');
  });

  it('allocates when nothing given back fits', () => {
    const pool = new BufferPool(1 << 20);
    const given = new Float32Array(100);
    pool.give(given);
    const taken = pool.take(1000);
    assert.notEqual(taken, given);
    assert.ok(taken.length >= 1000);
  });

  it('keeps at most its cap, dropping the smallest buffers first', () => {
    const pool = new BufferPool(40_000); // bytes: 10,000 samples
    const a = new Float32Array(6000);
    const b = new Float32Array(3000);
    const c = new Float32Array(2000);
    pool.give(a);
    pool.give(b);
    pool.give(c); // 11,000 samples: over the cap, c goes
    assert.equal(pool.take(1), b);
    assert.equal(pool.take(1), a);
    assert.notEqual(pool.take(1), c, 'dropped, not handed out');
    pool.give(new Float32Array(20_000)); // larger than the whole cap: never kept
    assert.equal(pool.take(15_000).length, 15_000);
  });
});
