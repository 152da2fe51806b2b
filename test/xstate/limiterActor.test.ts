/**
 * tollgate/xstate's limiterActor in real XState machines, on virtual time: each agent spawns its
 * own client of a shared limiter, asks by event and gets its replies as events; a stop withdraws
 * what waits and releases what is held; replies go to the asker alone.
 */
import { describe, expect, it } from 'vitest';
import { createActor, sendTo, setup, type AnyActorRef } from 'xstate';
import { AcquireTimeoutError, GrantStateError, InvalidArgumentError } from '../../src/index.js';
import { limiterActor, type LimiterReply, type LimiterRequest } from '../../src/xstate/index.js';
import { agentLogic } from './agent.js';
import { virtualSystem } from '../actors/support.js';

function setupAgents(spec = { limit: 2, concurrency: 1 as number | undefined }) {
  const { system, clock } = virtualSystem();
  const limiter = system.limiter('llm', {
    limits: [{ limit: spec.limit, interval: '1m', name: 'rpm' }],
    ...(spec.concurrency !== undefined && { concurrency: spec.concurrency }),
  });
  const agent = () => {
    const a = createActor(agentLogic(limiter));
    a.start();
    return a;
  };
  const ask = (a: AnyActorRef, request: LimiterRequest) => a.send({ type: 'ask', request });
  const replies = (a: ReturnType<typeof agent>) =>
    a.getSnapshot().context.replies.map((r) => `${r.type} ${r.id}`);
  return { system, clock, limiter, agent, ask, replies };
}

describe('limiterActor', () => {
  it('grants by event, and settles and releases by id', async () => {
    const { clock, limiter, agent, ask, replies } = setupAgents();
    const a = agent();
    ask(a, { type: 'tollgate.acquire', id: 'q1', key: 'gpt', cost: { requests: 2 } });
    await clock.increment(0);
    expect(replies(a)).toEqual(['tollgate.granted q1']);
    const granted = a.getSnapshot().context.replies[0]!;
    expect(granted.type === 'tollgate.granted' && granted.grant.key).toBe('gpt');
    ask(a, { type: 'tollgate.settle', id: 'q1', actual: { requests: 1 } });
    ask(a, { type: 'tollgate.release', id: 'q1' });
    await clock.increment(0);
    const s = await limiter.stats('gpt');
    expect([s.limits[0]!.remaining, s.inFlight]).toEqual([1, 0]);
    expect(replies(a)).toEqual(['tollgate.granted q1']);
  });

  it('replies refused to a try that does not fit, and timeout to an acquire that waited too long', async () => {
    const { clock, agent, ask, replies } = setupAgents({ limit: 1, concurrency: undefined });
    const a = agent();
    ask(a, { type: 'tollgate.acquire', id: 'q1', key: 'gpt' });
    ask(a, { type: 'tollgate.tryAcquire', id: 'q2', key: 'gpt' });
    ask(a, { type: 'tollgate.acquire', id: 'q3', key: 'gpt', timeout: '5s' });
    await clock.increment(5000);
    expect(replies(a)).toEqual([
      'tollgate.granted q1',
      'tollgate.refused q2',
      'tollgate.timeout q3',
    ]);
    const [, refused, timeout] = a.getSnapshot().context.replies;
    expect(refused).toMatchObject({ key: 'gpt', limit: 'rpm', retryAfterMs: 60_000 });
    expect(timeout?.type === 'tollgate.timeout' && timeout.error).toBeInstanceOf(
      AcquireTimeoutError,
    );
  });

  it('withdraws a waiting request on cancel (aborted, nothing booked), and cancels a grant', async () => {
    const { clock, limiter, agent, ask, replies } = setupAgents({
      limit: 1,
      concurrency: undefined,
    });
    const a = agent();
    ask(a, { type: 'tollgate.acquire', id: 'q1', key: 'gpt' });
    ask(a, { type: 'tollgate.acquire', id: 'q2', key: 'gpt' });
    await clock.increment(0);
    ask(a, { type: 'tollgate.cancel', id: 'q2' });
    await clock.increment(0);
    expect((await limiter.stats('gpt')).queued).toBe(0);
    ask(a, { type: 'tollgate.cancel', id: 'q1' });
    await clock.increment(0);
    expect((await limiter.stats('gpt')).limits[0]!.remaining).toBe(1);
    expect(replies(a)).toEqual(['tollgate.granted q1', 'tollgate.aborted q2']);
  });

  it('on the asker’s stop withdraws what waits and releases what is held, and replies no more', async () => {
    const { clock, limiter, agent, ask, replies } = setupAgents({ limit: 5, concurrency: 1 });
    const a = agent();
    const b = agent();
    ask(a, { type: 'tollgate.acquire', id: 'held', key: 'gpt', cost: { requests: 2 } });
    ask(a, { type: 'tollgate.acquire', id: 'waits', key: 'gpt' });
    ask(b, { type: 'tollgate.acquire', id: 'next', key: 'gpt' });
    await clock.increment(0);
    expect((await limiter.stats('gpt')).queued).toBe(2);
    a.stop();
    await clock.increment(0);
    // The slot went to b; a's waiter booked nothing; a's grant kept its estimate of 2.
    expect(replies(b)).toEqual(['tollgate.granted next']);
    const s = await limiter.stats('gpt');
    expect([s.limits[0]!.remaining, s.inFlight, s.queued]).toEqual([2, 1, 0]);
    expect(replies(a)).toEqual(['tollgate.granted held']);
  });

  it('sends each reply to the actor that asked, and only to it', async () => {
    const { clock, agent, ask, replies } = setupAgents({ limit: 5, concurrency: undefined });
    const a = agent();
    const b = agent();
    ask(a, { type: 'tollgate.acquire', id: 'same', key: 'gpt' });
    ask(b, { type: 'tollgate.tryAcquire', id: 'same', key: 'gpt' });
    await clock.increment(0);
    expect(replies(a)).toEqual(['tollgate.granted same']);
    expect(replies(b)).toEqual(['tollgate.granted same']);
    const ga = a.getSnapshot().context.replies[0]!;
    const gb = b.getSnapshot().context.replies[0]!;
    expect(ga.type === 'tollgate.granted' && gb.type === 'tollgate.granted').toBe(true);
    expect(
      ga.type === 'tollgate.granted' && gb.type === 'tollgate.granted' && ga.grant !== gb.grant,
    ).toBe(true);
  });

  it('fails a request with a typed error: bad input, an id in use, an id it holds nothing for', async () => {
    const { clock, agent, ask } = setupAgents({ limit: 5, concurrency: undefined });
    const a = agent();
    ask(a, { type: 'tollgate.acquire', id: 'q1', key: 'gpt', cost: { requests: -1 } });
    ask(a, { type: 'tollgate.acquire', id: 'q2', key: 'gpt' });
    ask(a, { type: 'tollgate.acquire', id: 'q2', key: 'gpt' });
    ask(a, { type: 'tollgate.settle', id: 'nope', actual: { requests: 1 } });
    ask(a, { type: 'tollgate.bogus', id: 'q9' } as never);
    await clock.increment(0);
    const failed = a
      .getSnapshot()
      .context.replies.filter((r) => r.type === 'tollgate.failed')
      .map((r) => [r.id, r.type === 'tollgate.failed' && r.error.constructor])
      .sort(([x], [y]) => String(x).localeCompare(String(y)));
    expect(failed).toEqual([
      ['nope', GrantStateError],
      ['q1', InvalidArgumentError],
      ['q2', InvalidArgumentError],
      ['q9', InvalidArgumentError],
    ]);
    const message = (id: string) =>
      a
        .getSnapshot()
        .context.replies.flatMap((r) =>
          r.type === 'tollgate.failed' && r.id === id ? [r.error.message] : [],
        )[0];
    expect(message('nope')).toBe(
      'tollgate: limiterActor on limiter "llm": settle of request "nope", but this actor holds no grant by that id',
    );
    expect(message('q2')).toBe(
      'tollgate: limiterActor on limiter "llm": event.id is "q2" (a string); expected an id no request of this asker still waits or holds a grant under',
    );
  });
});

describe('createLimiterSystem({ inspect })', () => {
  it('passes XState inspection through: the key actors, named by limiter and key, and what they were sent', async () => {
    const seen: string[] = [];
    const { system, clock } = virtualSystem({
      inspect: (e) => {
        const { actorRef, event } = e as { actorRef?: { id: string }; event?: { type: string } };
        if (e.type === '@xstate.event' && actorRef?.id === 'limiter "llm", key "gpt"')
          seen.push(event!.type);
      },
    });
    const limiter = system.limiter('llm', { limits: [{ limit: 5, interval: '1m' }] });
    const g = await limiter.acquire('gpt');
    await g.settle({ requests: 0 });
    await clock.increment(0);
    expect(seen.slice(0, 3)).toEqual(['xstate.init', 'acquire', 'settle']);
  });

  it('refuses an inspector that is neither a function nor an observer', () => {
    expect(() => virtualSystem({ inspect: 5 as never })).toThrow(
      'tollgate: createLimiterSystem: options.inspect is 5; expected a function of an inspection event, or an observer { next(event) }',
    );
  });
});

describe('limiterActor invoked', () => {
  it('serves the state that invokes it, and withdraws its requests when that state is left', async () => {
    const { clock, limiter } = setupAgents({ limit: 1, concurrency: undefined });
    await limiter.acquire('gpt'); // the only unit: the invoked request waits
    const machine = setup({
      types: { events: {} as LimiterReply | { type: 'giveUp' } },
      actors: { limiter: limiterActor(limiter) },
    }).createMachine({
      initial: 'waiting',
      states: {
        waiting: {
          invoke: { src: 'limiter', id: 'limiter' },
          entry: sendTo('limiter', { type: 'tollgate.acquire', id: 'q', key: 'gpt' }),
          on: { 'tollgate.granted': 'working', giveUp: 'gaveUp' },
        },
        working: {},
        gaveUp: {},
      },
    });
    const a = createActor(machine).start();
    await clock.increment(0);
    expect((await limiter.stats('gpt')).queued).toBe(1);
    a.send({ type: 'giveUp' }); // leaving the state stops the invoked limiter client
    await clock.increment(0);
    expect(a.getSnapshot().value).toBe('gaveUp');
    const s = await limiter.stats('gpt');
    expect([s.queued, s.limits[0]!.remaining]).toEqual([0, 0]);
  });
});

describe('limiterActor cancel of a settled grant', () => {
  it('fails, and the grant stays held: a release and the asker’s stop still free its slot', async () => {
    const { clock, limiter, agent, ask, replies } = setupAgents({ limit: 5, concurrency: 1 });
    const a = agent();
    ask(a, { type: 'tollgate.acquire', id: 'q', key: 'gpt' });
    await clock.increment(0);
    ask(a, { type: 'tollgate.settle', id: 'q', actual: { requests: 1 } });
    ask(a, { type: 'tollgate.cancel', id: 'q' });
    await clock.increment(0);
    expect(replies(a)).toEqual(['tollgate.granted q', 'tollgate.failed q']);
    expect((await limiter.stats('gpt')).inFlight).toBe(1);
    a.stop();
    await clock.increment(0);
    expect((await limiter.stats('gpt')).inFlight).toBe(0);
  });
});
