/**
 * The device's timer heap (src/device/timer-queue.ts): deadline order,
 * postponing and advancing a pending timer, cancelling, stale entries, and
 * timers armed from a callback.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TimerQueue, type TimerOwner } from '../src/device/timer-queue.js';

class Owner implements TimerOwner {
  readonly timerAt = new Float64Array(3).fill(Infinity);
  readonly timerGen = new Uint32Array(3);
  constructor(readonly name: string) {}
}

function collect(q: TimerQueue<Owner>, now: number): string[] {
  const fired: string[] = [];
  q.run(now, (o, slot) => fired.push(`${o.name}${slot}`));
  return fired;
}

describe('TimerQueue', () => {
  it('fires due timers in deadline order, once', () => {
    const q = new TimerQueue<Owner>();
    const a = new Owner('a');
    const b = new Owner('b');
    q.mod(a, 0, 30);
    q.mod(b, 1, 10);
    q.mod(a, 2, 20);
    expect(q.nextDeadline()).toBe(10);
    expect(collect(q, 25)).toEqual(['b1', 'a2']);
    expect(q.pending(a, 0)).toBe(true);
    expect(q.pending(b, 1)).toBe(false);
    expect(collect(q, 25)).toEqual([]);
    expect(collect(q, 30)).toEqual(['a0']);
    expect(q.nextDeadline()).toBe(Infinity);
  });

  it('postpones (the entry re-queues itself), advances, and cancels', () => {
    const q = new TimerQueue<Owner>();
    const a = new Owner('a');
    q.mod(a, 0, 10);
    q.mod(a, 0, 50); // later: only the field changes
    expect(q.size).toBe(1);
    expect(collect(q, 20)).toEqual([]);
    expect(q.pending(a, 0)).toBe(true);
    expect(collect(q, 50)).toEqual(['a0']);
    q.mod(a, 1, 100);
    q.mod(a, 1, 40); // earlier: a new entry, the old one is stale
    expect(collect(q, 40)).toEqual(['a1']);
    expect(collect(q, 100)).toEqual([]);
    q.mod(a, 2, 60);
    q.del(a, 2);
    expect(q.pending(a, 2)).toBe(false);
    expect(collect(q, 1000)).toEqual([]);
    expect(q.size).toBe(0);
  });

  it('runs timers a callback arms for now in the same call', () => {
    const q = new TimerQueue<Owner>();
    const a = new Owner('a');
    q.mod(a, 0, 10);
    const fired: string[] = [];
    q.run(10, (o, slot) => {
      fired.push(`${o.name}${slot}`);
      if (slot === 0) q.mod(o, 1, 5);
      if (slot === 1) q.mod(o, 0, 20);
    });
    expect(fired).toEqual(['a0', 'a1']);
    expect(q.pending(a, 0)).toBe(true);
  });

  it('matches a map of deadlines under random mod/del/run', () => {
    type Op = { kind: 'mod'; o: number; s: number; at: number } | { kind: 'del'; o: number; s: number } | { kind: 'run'; dt: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('mod' as const), o: fc.nat(2), s: fc.nat(2), at: fc.integer({ min: 0, max: 200 }) }),
      fc.record({ kind: fc.constant('del' as const), o: fc.nat(2), s: fc.nat(2) }),
      fc.record({ kind: fc.constant('run' as const), dt: fc.integer({ min: 0, max: 60 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const q = new TimerQueue<Owner>();
        const owners = [new Owner('a'), new Owner('b'), new Owner('c')];
        const model = new Map<string, number>();
        let now = 0;
        for (const x of ops) {
          if (x.kind === 'mod') {
            q.mod(owners[x.o]!, x.s, now + x.at);
            model.set(`${owners[x.o]!.name}${x.s}`, now + x.at);
          } else if (x.kind === 'del') {
            q.del(owners[x.o]!, x.s);
            model.delete(`${owners[x.o]!.name}${x.s}`);
          } else {
            now += x.dt;
            const due = [...model].filter(([, at]) => at <= now).sort((m, n) => m[1] - n[1]);
            const fired = collect(q, now);
            expect(new Set(fired)).toEqual(new Set(due.map(([k]) => k)));
            expect(fired.length).toBe(due.length);
            for (const [k] of due) model.delete(k);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
