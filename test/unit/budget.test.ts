/**
 * BudgetGate (src/agents/budget.ts): reservations for requests in flight, waiting in arrival order.
 */
import { describe, expect, it } from 'vitest';
import { BudgetGate, TokenBudget } from '../../src/agents/budget.ts';

const settleSoon = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('BudgetGate', () => {
  it('admits waiting requests in arrival order: a small newcomer does not pass a large waiting one', async () => {
    const run = new TokenBudget('run', 1000);
    const gate = new BudgetGate([run]);
    const first = await gate.admit(600, 'a');
    expect(first.ok).toBe(true);
    const order: string[] = [];
    // 500 must wait for the 600 in flight; 300 would fit now, but 500 came first.
    const large = gate.admit(500, 'large').then((a) => (order.push('large'), a));
    await settleSoon();
    const small = gate.admit(300, 'small').then((a) => (order.push('small'), a));
    await settleSoon();
    expect(order).toEqual([]);
    expect(run.reserved).toBe(600);
    if (first.ok) first.reservation.settle(100);
    const [largeAdmission, smallAdmission] = await Promise.all([large, small]);
    expect(order).toEqual(['large', 'small']);
    expect(largeAdmission.ok && smallAdmission.ok).toBe(true);
    expect(run.used).toBe(100);
    expect(run.reserved).toBe(800);
  });

  it('refuses at once what could not fit even with nothing in flight, and a release frees the hold without charging', async () => {
    const run = new TokenBudget('run', 1000, 700);
    const gate = new BudgetGate([run]);
    const refused = await gate.admit(400, 'big');
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error).toMatchObject({ code: 'BUDGET_EXCEEDED', details: { scope: 'run', limit: 1000, used: 700, estimate: 400 } });
    const held = await gate.admit(250, 'a');
    const waiting = gate.admit(250, 'b');
    await settleSoon();
    if (held.ok) held.reservation.release();
    expect((await waiting).ok).toBe(true);
    // A late answer to the released request is still charged, once.
    if (held.ok) {
      held.reservation.settle(40);
      held.reservation.settle(40);
    }
    expect(run.used).toBe(740);
    expect(run.reserved).toBe(250);
  });
});
