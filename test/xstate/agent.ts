/** What the tests of tollgate/xstate share: an agent machine that asks a limiter by event. */
import { assign, sendTo, setup, spawnChild } from 'xstate';
import type { Limiter } from '../../src/index.js';
import { limiterActor, type LimiterReply, type LimiterRequest } from '../../src/xstate/index.js';

/** An agent: spawns a client of `limiter` as 'limiter', forwards `ask`s to it, records replies. */
export function agentLogic(limiter: Limiter) {
  return setup({
    types: {
      context: {} as { replies: LimiterReply[] },
      events: {} as { type: 'ask'; request: LimiterRequest } | LimiterReply,
    },
    actors: { limiter: limiterActor(limiter) },
  }).createMachine({
    context: { replies: [] },
    entry: spawnChild('limiter', { id: 'limiter' }),
    on: {
      ask: { actions: sendTo('limiter', ({ event }) => event.request) },
      'tollgate.*': {
        actions: assign({
          replies: ({ context, event }) => [...context.replies, event as LimiterReply],
        }),
      },
    },
  });
}
