import { describe, expect, it } from 'vitest';
import { BoundedQueue, QueueFull } from '../../src/bounded-queue.js';

/** A task that finishes when the test says so, recording when it started. */
function gate(started: string[], name: string): { task: () => Promise<string>; open: () => void } {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => { open = resolve; });
  return { task: async () => { started.push(name); await opened; return name; }, open };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('bounded queue', () => {
  it('runs at most `concurrency` tasks at once, the waiting ones in arrival order', async () => {
    const queue = new BoundedQueue({ concurrency: 2, maxWaiting: 10 });
    const started: string[] = [];
    const gates = ['a', 'b', 'c', 'd', 'e'].map((n) => gate(started, n));
    const results = gates.map((g) => queue.run(g.task));
    await tick();
    expect(started).toEqual(['a', 'b']);
    expect([queue.active, queue.queued]).toEqual([2, 3]);
    gates[1]!.open();
    await tick();
    expect(started).toEqual(['a', 'b', 'c']);
    gates[0]!.open();
    await tick();
    expect(started).toEqual(['a', 'b', 'c', 'd']);
    expect([queue.active, queue.queued]).toEqual([2, 1]);
    // A newcomer waits behind those already waiting, even as slots free up.
    const late = gate(started, 'late');
    results.push(queue.run(late.task));
    gates[2]!.open();
    await tick();
    expect(started).toEqual(['a', 'b', 'c', 'd', 'e']);
    gates[3]!.open();
    gates[4]!.open();
    late.open();
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c', 'd', 'e', 'late']);
    expect([queue.active, queue.queued]).toEqual([0, 0]);
  });

  it('refuses at once, without running the task, when the waiting room is full', async () => {
    const queue = new BoundedQueue({ concurrency: 1, maxWaiting: 2 });
    const started: string[] = [];
    const gates = ['a', 'b', 'c'].map((n) => gate(started, n));
    const results = gates.map((g) => queue.run(g.task));
    let ran = false;
    await expect(queue.run(async () => { ran = true; })).rejects.toBeInstanceOf(QueueFull);
    expect(ran).toBe(false);
    gates.forEach((g) => g.open());
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c']);
    // Room again once the queue drains.
    expect(await queue.run(async () => 'again')).toBe('again');
  });

  it('frees the slot when a task fails', async () => {
    const queue = new BoundedQueue({ concurrency: 1, maxWaiting: 0 });
    await expect(queue.run(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(queue.active).toBe(0);
    expect(await queue.run(async () => 1)).toBe(1);
  });

  it('rejects limits that could never run a task', () => {
    expect(() => new BoundedQueue({ concurrency: 0, maxWaiting: 1 })).toThrow(RangeError);
    expect(() => new BoundedQueue({ concurrency: 1, maxWaiting: -1 })).toThrow(RangeError);
  });
});
