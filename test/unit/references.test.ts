// firstAbsent: reference checks run a few at a time and stop at the first absent item.
import { describe, expect, it } from 'vitest';
import { firstAbsent } from '../../src/registry/references.js';

describe('firstAbsent', () => {
  it('finds nothing when everything is present, checking each item once', async () => {
    const seen: number[] = [];
    const items = Array.from({ length: 100 }, (_, i) => i);
    expect(await firstAbsent(items, async (i) => (seen.push(i), true), 4)).toEqual([]);
    expect(seen.sort((a, b) => a - b)).toEqual(items);
  });

  it('starts no check after the first absent item, and never more than the bound at once', async () => {
    let running = 0;
    let peak = 0;
    let calls = 0;
    const items = Array.from({ length: 30_000 }, (_, i) => i);
    const absent = await firstAbsent(items, async (i) => {
      calls += 1;
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setImmediate(resolve));
      running -= 1;
      return i < 10;
    }, 4);
    expect(absent.length).toBeGreaterThanOrEqual(1);
    expect(absent.length).toBeLessThanOrEqual(4);
    for (const i of absent) expect(i).toBeGreaterThanOrEqual(10);
    expect(peak).toBeLessThanOrEqual(4);
    expect(calls).toBeLessThanOrEqual(14);
  });

  it('an empty list needs no check', async () => {
    expect(await firstAbsent([], async () => false)).toEqual([]);
  });
});
