/**
 * E1: per-step cost of the engine itself. A 10-step sequential workflow of inline no-op tools, run
 * `runs` times back to back on one engine, against a plain await chain of 10 async no-op calls.
 */
import { Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine, type Workflow } from '../src/index.ts';
import { expectCompleted, silentLogger, timeMs, type Progress } from './common.ts';
import { verdictOf, type FigureResult, type Target } from './report.ts';
import { pairedRatios, summarize } from './stats.ts';

const steps = 10;
const engineRuns = 2_000;
// The await chain is ~100× cheaper; more chains keep its round long enough to time (tens of ms).
const chainRuns = 50_000;

async function noopCall(value: number): Promise<number> {
  return value;
}

async function awaitChain(): Promise<number> {
  let value = 0;
  for (let i = 0; i < steps; i++) value = await noopCall(value);
  return value;
}

function noopWorkflow(id: string, stepCount: number): Workflow {
  const builder = new WorkflowBuilder(id);
  for (let i = 0; i < stepCount; i++) builder.addStep(new ToolStep(`s${i}`, 'noop'));
  return builder.build();
}

export async function benchE1(rounds: number, warmup: number, progress: Progress): Promise<FigureResult> {
  const engine = new WorkflowEngine({ tools: [new Tool({ name: 'noop', execute: () => undefined })], logger: silentLogger() });
  const ctx = new WorkflowContext({ workflowId: 'bench-e1' });
  const tenSteps = noopWorkflow('e1-ten', steps);
  const oneStep = noopWorkflow('e1-one', 1);
  const runEngine = (wf: Workflow) => async () => {
    for (let i = 0; i < engineRuns; i++) expectCompleted(await engine.executeWorkflow(wf, ctx));
  };
  let sink = 0;
  const runChains = async () => {
    for (let i = 0; i < chainRuns; i++) sink += await awaitChain();
  };

  const engineUs: number[] = [];
  const oneStepUs: number[] = [];
  const chainUs: number[] = [];
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      // Rotate the order so no side always runs right after the same neighbour (GC debt, JIT state).
      const order = [0, 1, 2].map((k) => (k + round) % 3);
      const ms: number[] = [0, 0, 0];
      for (const k of order) ms[k] = await timeMs(k === 0 ? runEngine(tenSteps) : k === 1 ? runEngine(oneStep) : runChains);
      if (round < warmup) continue;
      engineUs.push((ms[0]! * 1000) / (engineRuns * steps));
      oneStepUs.push((ms[1]! * 1000) / engineRuns);
      chainUs.push((ms[2]! * 1000) / (chainRuns * steps));
      progress(`  E1 round ${round - warmup + 1}/${rounds}: engine ${engineUs.at(-1)!.toFixed(2)} µs/step, await chain ${(chainUs.at(-1)! * 1000).toFixed(0)} ns/step`);
    }
  } finally {
    await engine.close();
  }
  if (sink !== 0) throw new Error('await chain miscounted');

  // Marginal step: (10-step run − 1-step run) / 9, paired per round; the per-run fixed cost is the rest.
  const marginal = engineUs.map((perStep, i) => (perStep * steps - oneStepUs[i]!) / (steps - 1));
  const figure = summarize(engineUs);
  const ratio = summarize(pairedRatios(engineUs, chainUs));
  const target: Target = { on: 'figure', op: '<=', value: 5, text: '≤ 5 µs/step' };
  return {
    id: 'E1',
    title: `sequential ${steps}-step workflow of inline no-op tools, ${engineRuns} runs back to back per round`,
    figure: { label: 'engine, whole run / steps', unit: 'µs/step', summary: figure },
    baseline: { label: `plain await chain of ${steps} async no-op calls`, unit: 'µs/step', summary: summarize(chainUs) },
    ratio: { label: 'engine / await chain', summary: ratio },
    target,
    verdict: verdictOf(target, figure, ratio),
    notes: [
      `1-step run (per-run fixed cost + 1 step): ${summarize(oneStepUs).median.toFixed(2)} µs/run (${summarize(oneStepUs).min.toFixed(2)}–${summarize(oneStepUs).max.toFixed(2)})`,
      `marginal step, (10-step − 1-step)/9 paired per round: ${summarize(marginal).median.toFixed(2)} µs/step (${summarize(marginal).min.toFixed(2)}–${summarize(marginal).max.toFixed(2)}); Mastra 0.24.9 on this machine: 20.7 µs/step (perf-anchors B4)`,
    ],
  };
}
