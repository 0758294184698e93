// StreamCapacity: live streams are admitted against the capacity the model slots have, measured
// from what the streams cost, and the measure holds through ramps and reconnecting crowds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocalCapacityShare, StreamCapacity, TARGET_BUSY, type LiveTicket } from '../../src/pipeline/stream-capacity.js';

/** A clock the test moves, and an engine whose finals keep `busy` slots busy. */
function setup(streamsPerSlot = 60, slots = 2) {
  let t = 0;
  const engine = { finalsBusySlots: 0, finalsDone: 0, lateFinals: 0, admitting: true, admits: () => engine.admitting };
  const capacity = new StreamCapacity({ engine, slots, streamsPerSlot, now: () => t });
  return { engine, capacity, advance: (ms: number) => { t += ms; }, now: () => t };
}

function openAll(capacity: StreamCapacity, n: number): LiveTicket[] {
  return Array.from({ length: n }, () => {
    const live = capacity.open();
    assert.ok(!('refused' in live), `stream refused: ${'refused' in live ? live.refused : ''}`);
    return live;
  });
}

/**
 * Runs `seconds` of a crowd (`live`, which `tick` changes each second) whose every stream costs
 * `cost` slot-seconds per second once its first utterance has ended (4 s in), with the finals'
 * busy slots smoothed as the scheduler smooths them; returns the learnt cost after each second.
 */
function simulate(s: ReturnType<typeof setup>, cost: number, seconds: number, live: Set<LiveTicket>, tick: (second: number) => void): number[] {
  const learnt: number[] = [];
  for (let second = 0; second < seconds; second++) {
    tick(second);
    for (let q = 0; q < 4; q++) {
      s.advance(250);
      let speaking = 0;
      for (const t of live) if (s.now() - t.openedAt > 4000) speaking++;
      s.engine.finalsBusySlots += (250 / 10_000) * (speaking * cost - s.engine.finalsBusySlots);
      void s.capacity.limit; // a scrape or a start reads it
    }
    learnt.push(s.capacity.costPerStream);
  }
  return learnt;
}

describe('StreamCapacity', () => {
  it('admits as many live streams as the prior cost says the slots serve, then refuses with the limit in its reason', () => {
    const { capacity } = setup(60, 2);
    const limit = 120;
    assert.equal(capacity.limit, limit);
    openAll(capacity, limit);
    const refused = capacity.open();
    assert.ok('refused' in refused);
    assert.match(refused.refused, new RegExp(`capacity of ${limit} live streams`));
    assert.equal(capacity.admissible, 0);
  });

  it('gives a place back when a stream closes, once however often it is closed', () => {
    const { capacity } = setup(2, 1);
    const [a] = openAll(capacity, 2);
    capacity.close(a!);
    capacity.close(a!);
    assert.equal(capacity.admissible, 1);
    openAll(capacity, 1);
    assert.ok('refused' in capacity.open());
  });

  it('refuses every new stream while the engine refuses them (behind, saturated or shedding)', () => {
    const { capacity, engine } = setup();
    engine.admitting = false;
    const refused = capacity.open();
    assert.ok('refused' in refused);
    assert.match(refused.refused, /behind or shedding/);
    assert.equal(capacity.admissible, 0);
  });

  it('learns a dearer cost from mature streams and lowers the limit to it', () => {
    const s = setup(60, 2);
    const learnt = simulate(s, 0.02, 90, new Set(openAll(s.capacity, 60)), () => {});
    assert.ok(Math.abs(learnt.at(-1)! - 0.02) / 0.02 < 0.05, `learnt ${learnt.at(-1)}`);
    assert.equal(s.capacity.limit, Math.floor((TARGET_BUSY * 2) / learnt.at(-1)!));
  });

  it('does not learn a cost too low while a crowd ramps in (no utterance has ended yet)', () => {
    const s = setup(60, 2);
    const live = new Set<LiveTicket>();
    const learnt = simulate(s, 0.013, 30, live, (second) => {
      if (second < 5) for (const t of openAll(s.capacity, 20)) live.add(t);
    });
    for (const c of learnt) assert.ok(c > (TARGET_BUSY / 60) * 0.85, `learnt ${c} during the ramp`);
  });

  it('keeps its measure while a whole crowd reconnects at once (each stream closes and opens again)', () => {
    const s = setup(60, 2);
    const live = new Set(openAll(s.capacity, 100));
    const learnt = simulate(s, 0.013, 100, live, (second) => {
      if (second !== 40 && second !== 71) return;
      for (const t of live) s.capacity.close(t);
      live.clear();
      for (const t of openAll(s.capacity, 100)) live.add(t);
    });
    for (const c of learnt) assert.ok(Math.abs(c - 0.013) / 0.013 < 0.15, `learnt ${c}, true cost 0.013`);
  });

  it('cuts the limit to 90 % of the live streams when finals come late, keeps those it holds, and recovers after 30 s on time at the limit', () => {
    const s = setup(60, 2); // the prior's limit: 120
    const live = openAll(s.capacity, 100);
    // A burst of utterances ended together and its queue made 5 of 100 finals late.
    s.engine.finalsDone = 100;
    s.engine.lateFinals = 5;
    s.advance(5000);
    assert.equal(s.capacity.limit, 90);
    assert.ok('refused' in s.capacity.open(), 'no new stream while the load is the one that made finals late');
    for (const t of live.slice(0, 20)) s.capacity.close(t);
    assert.equal(s.capacity.admissible, 10, 'streams ending make room up to the cut');
    openAll(s.capacity, 10);
    s.engine.finalsDone = 200;
    s.engine.lateFinals = 10; // late again within 10 s: no second cut for the same burst
    s.advance(5000);
    assert.equal(s.capacity.limit, 90);
    s.advance(29_000);
    assert.equal(s.capacity.limit, 90, 'under 30 s since the late window: still cut');
    s.advance(1000);
    assert.equal(s.capacity.limit, 91, 'on time for 30 s at the limit: one more');
    for (let i = 0; i < 60; i++) {
      s.advance(2000);
      if (s.capacity.admissible > 0) openAll(s.capacity, 1);
    }
    assert.equal(s.capacity.limit, 120, 'back to the prior\'s limit, one stream per 2 s, and no further on the prior');
  });

  it('is not cut by a straggler: late finals must be 2 % of a window\'s and at least 3', () => {
    const s = setup(60, 2);
    openAll(s.capacity, 100);
    s.engine.finalsDone = 400;
    s.engine.lateFinals = 2; // one GC pause, one long utterance
    s.advance(5000);
    assert.equal(s.capacity.limit, 120);
    s.engine.finalsDone = 800;
    s.engine.lateFinals = 7; // 5 of 400: 1.25 %
    s.advance(5000);
    assert.equal(s.capacity.limit, 120);
  });

  it('does not trust a cheaper cost by itself: the limit rises past the prior only while streams at it are on time', () => {
    const s = setup(60, 2);
    const live = new Set(openAll(s.capacity, 60));
    simulate(s, 0.006, 60, live, () => {});
    assert.ok(s.capacity.costPerStream < 0.007, `learnt ${s.capacity.costPerStream}`);
    assert.equal(s.capacity.limit, 120, 'a cheap cost measured at 60 streams says nothing of 200');
    simulate(s, 0.006, 70, live, () => {
      while (s.capacity.admissible > 0) for (const t of openAll(s.capacity, 1)) live.add(t);
    });
    assert.ok(s.capacity.limit > 130, `on time at the limit for over 30 s: ${s.capacity.limit}`);
    assert.ok(s.capacity.limit <= 120 + 36, `one stream per 2 s: ${s.capacity.limit}`);
  });

  it('shares the live streams and the mean cost across the workers of one process', () => {
    const share = new LocalCapacityShare();
    const engine = { finalsBusySlots: 0, finalsDone: 0, lateFinals: 0, admits: () => true };
    const a = new StreamCapacity({ engine, slots: 1, streamsPerSlot: 2, share });
    const b = new StreamCapacity({ engine, slots: 1, streamsPerSlot: 2, share });
    openAll(a, 2);
    assert.ok('refused' in b.open(), 'the process holds its 2 streams, whichever worker took them');
  });
});
