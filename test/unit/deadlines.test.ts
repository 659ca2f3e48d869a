import { describe, expect, it } from 'vitest';
import { Deadlines } from '../../src/engine/deadlines.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Deadlines', () => {
  it('fires deadlines at their time, not cancelled ones, per length', async () => {
    const deadlines = new Deadlines();
    const fired: string[] = [];
    const started = performance.now();
    const at: Record<string, number> = {};
    const mark = (name: string) => () => {
      fired.push(name);
      at[name] = performance.now() - started;
    };
    deadlines.schedule(40, mark('a40'));
    const b = deadlines.schedule(40, mark('b40'));
    deadlines.schedule(20, mark('c20'));
    b.cancel();
    b.cancel();
    await sleep(10);
    deadlines.schedule(40, mark('d40'));
    await sleep(80);
    expect(fired).toEqual(['c20', 'a40', 'd40']);
    expect(at.c20).toBeGreaterThanOrEqual(19);
    expect(at.a40).toBeGreaterThanOrEqual(39);
    expect(at.d40).toBeGreaterThanOrEqual(49);
  });

  it('re-arms for the next deadline when the head was cancelled', async () => {
    const deadlines = new Deadlines();
    const fired: string[] = [];
    const first = deadlines.schedule(30, () => fired.push('first'));
    await sleep(15);
    deadlines.schedule(30, () => fired.push('second'));
    first.cancel();
    await sleep(25);
    expect(fired).toEqual([]);
    await sleep(30);
    expect(fired).toEqual(['second']);
  });
});
