/**
 * Agents that are XState machines share one budget through messages (tollgate/xstate): a
 * controller spawns delegates; each delegate spawns its own client of the limiter, asks for a
 * grant by event, gets it as an event, calls the model, settles with the usage and reports it to
 * the controller, which tallies the run. The whole run is inspected: the key actors show in the
 * same inspection stream as the agents.
 */
import {
  assign,
  createActor,
  fromPromise,
  sendParent,
  sendTo,
  setup,
  spawnChild,
  waitFor,
  type InspectionEvent,
} from 'xstate';
import { createLimiterSystem, type Grant } from '../src/index.js';
import { limiterActor, type LimiterReply } from '../src/xstate/index.js';

// The inspection stream: who sent what to whom (a console inspector would draw it).
const actorsSeen = new Set<string>();
let eventsSeen = 0;
const inspect = (e: InspectionEvent): void => {
  if (e.type !== '@xstate.event') return;
  eventsSeen++;
  actorsSeen.add((e.actorRef as { id?: string }).id ?? e.actorRef.sessionId);
};

const system = createLimiterSystem({ inspect });
const budget = system.limiter('anthropic', {
  algorithm: 'sliding-window', // a budget counts what was used in the last minute, exactly
  limits: [
    { limit: 50, interval: '1m' },
    { limit: 20_000, interval: '1m', dimension: 'inputTokens' },
    { limit: 8_000, interval: '1m', dimension: 'outputTokens' },
  ],
  concurrency: 2,
});

interface Usage {
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** The model: answers after a few ms with what it used. */
const callModel = fromPromise(async ({ input }: { input: { prompt: string } }) => {
  await new Promise((r) => setTimeout(r, 5));
  return { inputTokens: 300 + input.prompt.length, outputTokens: 150 };
});

type DelegateEvent =
  | LimiterReply
  | { type: 'xstate.done.actor.model'; output: { inputTokens: number; outputTokens: number } };

/** A delegate: `calls` model calls, one at a time, each through its own limiter client. */
const delegate = setup({
  types: {
    input: {} as { name: string; calls: number },
    context: {} as { name: string; left: number; grant: Grant | null; usage: Usage },
    events: {} as DelegateEvent,
  },
  actors: { limiter: limiterActor(budget), model: callModel },
}).createMachine({
  context: ({ input }) => ({
    name: input.name,
    left: input.calls,
    grant: null,
    usage: { calls: 0, inputTokens: 0, outputTokens: 0 },
  }),
  entry: spawnChild('limiter', { id: 'limiter' }),
  initial: 'asking',
  states: {
    asking: {
      entry: sendTo('limiter', ({ context }) => ({
        type: 'tollgate.acquire',
        id: `${context.name}-${context.left}`,
        key: 'claude',
        cost: { inputTokens: 600, outputTokens: 1_000 },
        timeout: '30s',
      })),
      on: {
        'tollgate.granted': {
          target: 'calling',
          actions: assign({ grant: ({ event }) => event.grant }),
        },
        'tollgate.timeout': 'done',
        'tollgate.failed': 'done',
      },
    },
    calling: {
      invoke: {
        id: 'model',
        src: 'model',
        input: ({ context }) => ({ prompt: `${context.name} step ${context.left}` }),
        onDone: {
          target: 'next',
          actions: [
            // The grant's settle and release go through the limiter client, by the request's id.
            sendTo('limiter', ({ context, event }) => ({
              type: 'tollgate.settle',
              id: `${context.name}-${context.left}`,
              actual: event.output,
            })),
            sendTo('limiter', ({ context }) => ({
              type: 'tollgate.release',
              id: `${context.name}-${context.left}`,
            })),
            assign({
              usage: ({ context, event }) => ({
                calls: context.usage.calls + 1,
                inputTokens: context.usage.inputTokens + event.output.inputTokens,
                outputTokens: context.usage.outputTokens + event.output.outputTokens,
              }),
              left: ({ context }) => context.left - 1,
              grant: null,
            }),
          ],
        },
      },
    },
    next: { always: [{ guard: ({ context }) => context.left === 0, target: 'done' }, 'asking'] },
    done: {
      entry: sendParent(({ context }) => ({
        type: 'usage',
        name: context.name,
        usage: context.usage,
      })),
      type: 'final',
    },
  },
});

/** The controller: spawns the delegates and tallies the run's usage as they report it. */
const controller = setup({
  types: {
    context: {} as { reports: { name: string; usage: Usage }[] },
    events: {} as { type: 'usage'; name: string; usage: Usage },
  },
  actors: { delegate },
}).createMachine({
  context: { reports: [] },
  entry: [
    spawnChild('delegate', { id: 'researcher', input: { name: 'researcher', calls: 3 } }),
    spawnChild('delegate', { id: 'writer', input: { name: 'writer', calls: 2 } }),
    spawnChild('delegate', { id: 'critic', input: { name: 'critic', calls: 2 } }),
  ],
  on: {
    usage: {
      actions: assign({
        reports: ({ context, event }) => [
          ...context.reports,
          { name: event.name, usage: event.usage },
        ],
      }),
    },
  },
});

const run = createActor(controller, { inspect }).start();
const done = await waitFor(run, (s) => s.context.reports.length === 3, { timeout: 30_000 });
for (const { name, usage } of done.context.reports) {
  console.log(`${name}: ${usage.calls} calls, ${usage.inputTokens} in, ${usage.outputTokens} out`);
}
const total = done.context.reports.reduce(
  (t, { usage }) => ({
    calls: t.calls + usage.calls,
    inputTokens: t.inputTokens + usage.inputTokens,
    outputTokens: t.outputTokens + usage.outputTokens,
  }),
  { calls: 0, inputTokens: 0, outputTokens: 0 },
);
console.log(`run total: ${total.calls} calls, ${total.inputTokens} in, ${total.outputTokens} out`);
const s = await budget.stats('claude');
console.log(`budget left: ${s.limits.map((l) => `${l.name}=${l.remaining}`).join(', ')}`);
console.log(
  `inspected: ${eventsSeen} events to ${actorsSeen.size} actors, the key actor of anthropic's claude among them: ${actorsSeen.has('limiter "anthropic", key "claude"')}`,
);
run.stop();
await system.close();
