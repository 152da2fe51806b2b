/**
 * tollgate/xstate's types in an app's own `setup()`: the requests a limiter actor takes and the
 * replies it sends check against the machine's declared events, and a misspelt event does not.
 * And `createLimiterSystem({ inspect })` takes XState's own inspectors.
 */
import { describe, expectTypeOf, it } from 'vitest';
import { createActor, sendTo, setup, spawnChild, type InspectionEvent } from 'xstate';
import { createLimiterSystem, type Grant } from '../../src/index.js';
import { limiterActor, type LimiterReply, type LimiterRequest } from '../../src/xstate/index.js';

const system = createLimiterSystem();
const limiter = system.limiter('api', { limits: [{ limit: 10, interval: '1s' }] });

describe('tollgate/xstate types', () => {
  it('checks an app machine that spawns the limiter, sends it requests and takes its replies', () => {
    const machine = setup({
      types: { events: {} as LimiterReply | { type: 'go' } },
      actors: { limiter: limiterActor(limiter) },
    }).createMachine({
      entry: spawnChild('limiter', { id: 'limiter' }),
      on: {
        go: {
          actions: sendTo('limiter', {
            type: 'tollgate.acquire',
            id: 'q1',
            key: 'gpt-4o',
            cost: { requests: 1 },
            timeout: '10s',
          } satisfies LimiterRequest),
        },
        'tollgate.granted': {
          actions: ({ event }) => expectTypeOf(event.grant).toEqualTypeOf<Grant>(),
        },
        'tollgate.refused': {
          actions: ({ event }) => expectTypeOf(event.retryAfterMs).toEqualTypeOf<number>(),
        },
      },
    });
    expectTypeOf(createActor(machine).send)
      .parameter(0)
      .toEqualTypeOf<LimiterReply | { type: 'go' }>();
    // @ts-expect-error: no such reply
    createActor(machine).send({ type: 'tollgate.grantd', id: 'q1' });
  });

  it('refuses a request with a misspelt type or a missing id', () => {
    // @ts-expect-error: no such request
    const misspelt: LimiterRequest = { type: 'tollgate.aquire', id: 'q', key: 'k' };
    // @ts-expect-error: every request names its id
    const noId: LimiterRequest = { type: 'tollgate.acquire', key: 'k' };
    void misspelt;
    void noId;
    const actor = createActor(limiterActor(limiter));
    // @ts-expect-error: the limiter actor takes no such event
    actor.send({ type: 'tollgate.aquire', id: 'q', key: 'k' });
    actor.send({ type: 'tollgate.release', id: 'q' });
  });

  it('takes XState inspectors: a function of its events, or an observer', () => {
    createLimiterSystem({ inspect: (e: InspectionEvent) => void e.actorRef });
    createLimiterSystem({ inspect: { next: (e: InspectionEvent) => void e.type } });
    // @ts-expect-error: not an inspector
    createLimiterSystem({ inspect: 5 });
  });
});
