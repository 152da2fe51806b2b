/**
 * How limitedFetch meets what the SDKs do (#17). Calls that are not the provider's to count
 * (finding 1): the SDKs' `fetch('data:,')` probe
 * before an upload, blob URLs and the model list pass straight through, and a streamed body that
 * nobody reads holds no slot once its Response is gone. Before, the openai SDK's probe took a
 * concurrency slot that was never given back: with `concurrency: 1` the upload itself timed out.
 * And a JSON body that stalls until the SDK's timeout aborts (finding 12).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import OpenAI, { toFile } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import {
  VirtualClock,
  createLimiterSystem,
  type Limiter,
  type LimiterSystem,
} from '../../src/index.js';
import { limitedFetch } from '../../src/llm/fetch.js';
import { startFakeProvider, type FakeProvider } from './fakeProvider.js';

let system: LimiterSystem | undefined;
let fake: FakeProvider | undefined;
afterEach(async () => {
  await system?.close();
  await fake?.close();
  system = fake = undefined;
});

// The tests read exact `remaining` figures: on virtual time, so that no bucket refills while a
// loaded machine runs them (a tokens-per-minute bucket refills a token every few ms).
function limiter(): Limiter {
  system = createLimiterSystem({ clock: new VirtualClock() });
  return system.limiter('openai', {
    limits: [{ limit: 100, interval: '1m' }],
    concurrency: 1,
  });
}

describe('calls that pass straight through', () => {
  it('data: and blob: URLs take no slot and book nothing', async () => {
    const l = limiter();
    const held = await l.acquire('default'); // the one slot is taken
    const f = limitedFetch({ limiter: l, timeout: '1s' });
    expect(await (await f('data:,')).text()).toBe('');
    const blob = URL.createObjectURL(new Blob(['hi']));
    expect(await (await f(blob)).text()).toBe('hi');
    URL.revokeObjectURL(blob);
    const stats = await l.stats('default');
    expect(stats.inFlight).toBe(1);
    expect(stats.limits[0]!.remaining).toBe(99);
    held.release();
  });

  it('exposes Response, so an SDK need not probe', () => {
    const f = limitedFetch({ limiter: limiter() });
    expect((f as unknown as { Response: unknown }).Response).toBe(Response);
  });

  it('with the openai SDK: an upload and a model listing pass with concurrency 1', async () => {
    fake = await startFakeProvider();
    const l = limiter();
    const client = new OpenAI({
      apiKey: 'test',
      baseURL: `${fake.url}/v1`,
      fetch: limitedFetch({ limiter: l, timeout: '2s' }),
      maxRetries: 0,
    });
    const file = await client.files.create({
      file: await toFile(Buffer.from('{"a":1}\n'), 'batch.jsonl'),
      purpose: 'batch',
    });
    expect(file.filename).toBe('batch.jsonl');
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['gpt-4o']);
    // The upload counted as one request; the probe and the listing counted nothing.
    const stats = await l.stats('default');
    expect(stats.inFlight).toBe(0);
    expect(stats.limits[0]!.remaining).toBe(99);
    expect(fake.counts.other).toBe(2);
    // And the next chat call is not stuck behind a slot the probe kept.
    const chat = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
    });
    expect(chat.choices.length).toBe(1);
  });
});

describe('a streamed body nobody reads', () => {
  it('gives its slot back once its Response is garbage-collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const l = limiter();
    const never = (): Promise<Response> =>
      Promise.resolve(
        new Response(new ReadableStream({ pull: () => new Promise(() => {}) }), {
          headers: { 'content-type': 'text/event-stream' },
        }),
      );
    const f = limitedFetch({ limiter: l, fetch: never });
    // Called in a function of its own, so that nothing here keeps the response.
    await (async () => {
      const res = await f('https://api.example/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify({ model: 'm', messages: [] }),
      });
      expect(res.status).toBe(200);
    })();
    expect((await l.stats('m')).inFlight).toBe(1);
    for (let i = 0; i < 50 && (await l.stats('m')).inFlight > 0; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await l.stats('m')).inFlight).toBe(0);
  });
});

describe('a JSON body that stalls (#17, finding 12)', () => {
  it("ends in the SDK's own timeout error, which it retries, not 'Body is unusable'", async () => {
    fake = await startFakeProvider({ stallBodyMs: 1500 });
    const l = limiter();
    const client = new OpenAI({
      apiKey: 'test',
      baseURL: `${fake.url}/v1`,
      fetch: limitedFetch({ limiter: l }),
      maxRetries: 0,
      timeout: 200,
    });
    const error = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    const stats = await l.stats('gpt-4o');
    expect(stats.inFlight).toBe(0); // settled and released all the same
  });
});

describe('a 2xx that tells no usage (#17, finding 4)', () => {
  function tokenLimiter(): Limiter {
    system = createLimiterSystem({ clock: new VirtualClock() });
    return system.limiter('anthropic', {
      limits: [
        { limit: 100, interval: '1m' },
        { limit: 10_000, interval: '1m', dimension: 'inputTokens' },
        { limit: 8_000, interval: '1m', dimension: 'outputTokens' },
      ],
    });
  }
  const answer = (body: unknown) => (): Promise<Response> => Promise.resolve(Response.json(body));
  const ask = {
    model: 'claude',
    messages: [{ role: 'user', content: 'How many tokens is this sentence?' }],
  };

  it('books one request and no tokens on endpoints that generate nothing', async () => {
    const l = tokenLimiter();
    const cases: [string, unknown][] = [
      ['https://api.anthropic.com/v1/messages/count_tokens', { input_tokens: 14 }],
      ['https://api.openai.com/v1/responses/input_tokens', { object: 'response.input_tokens' }],
      ['https://api.openai.com/v1/moderations', { id: 'modr-1', results: [] }],
    ];
    for (const [url, body] of cases) {
      const f = limitedFetch({ limiter: l, fetch: answer(body) });
      await f(url, { method: 'POST', body: JSON.stringify(ask) });
    }
    const s = await l.stats('claude');
    expect(s.limits.map((x) => x.remaining)).toEqual([97, 10_000, 8_000]);
  });

  it('keeps the estimate of a generating endpoint that tells no usage', async () => {
    const l = tokenLimiter();
    const f = limitedFetch({ limiter: l, fetch: answer({ id: 'msg', content: [] }) });
    await f('https://api.anthropic.com/v1/messages', { method: 'POST', body: JSON.stringify(ask) });
    const s = await l.stats('claude');
    expect(s.limits[0]!.remaining).toBe(99);
    expect(s.limits[1]!.remaining).toBeLessThan(10_000);
    expect(s.limits[2]!.remaining).toBe(8_000 - 1024); // the default output estimate stays
  });
});

describe('max_tokens above what a limit can hold (#17, finding 11)', () => {
  const usage = (output: number) => (): Promise<Response> =>
    Promise.resolve(Response.json({ usage: { input_tokens: 12, output_tokens: output } }));
  const ask = (maxTokens: number, text = 'Write a long story.') =>
    JSON.stringify({
      model: 'm',
      max_tokens: maxTokens,
      messages: [{ role: 'user', content: text }],
    });
  const url = 'https://api.anthropic.com/v1/messages';

  it('books the output the limit can hold, and settles to the real usage', async () => {
    system = createLimiterSystem({ clock: new VirtualClock() });
    const l = system.limiter('anthropic', {
      limits: [
        { limit: 50_000, interval: '1m', dimension: 'inputTokens' },
        { limit: 8_000, interval: '1m', dimension: 'outputTokens' },
      ],
    });
    let seen = -1;
    const f = limitedFetch({
      limiter: l,
      fetch: async () => {
        seen = (await l.stats('m')).limits[1]!.remaining; // while the call is out
        return usage(300)();
      },
    });
    await f(url, { method: 'POST', body: ask(16_000) });
    expect(seen).toBe(0); // 8,000 booked, not 16,000 refused
    expect((await l.stats('m')).limits[1]!.remaining).toBe(7_700);
  });

  it('with one tokens limit, lowers the output to fit beside the input; an input too big still fails', async () => {
    system = createLimiterSystem({ clock: new VirtualClock() });
    const l = system.limiter('openai', {
      limits: [{ limit: 1_000, interval: '1m', dimension: 'tokens' }],
    });
    const f = limitedFetch({ limiter: l, fetch: usage(40) });
    await f(url, { method: 'POST', body: ask(16_000) });
    expect((await l.stats('m')).limits[0]!.remaining).toBe(1_000 - 52);
    await expect(
      f(url, { method: 'POST', body: ask(10, 'word '.repeat(2_000)) }),
    ).rejects.toMatchObject({ code: 'COST_EXCEEDS_CAPACITY' });
  });
});

describe('the breaker sees a hung or failing provider (#17, finding 9)', () => {
  it('an SDK timeout past hungAfter is a failure: a provider that never answers opens the breaker', async () => {
    fake = await startFakeProvider({ latencyMs: 1500 });
    system = createLimiterSystem();
    const l = system.limiter('openai', {
      limits: [{ limit: 100, interval: '1s' }],
      breaker: { failureThreshold: 2, openFor: '1m' },
    });
    const client = new OpenAI({
      apiKey: 'test',
      baseURL: `${fake.url}/v1`,
      fetch: limitedFetch({ limiter: l, hungAfter: 50 }),
      maxRetries: 0,
      timeout: 100, // the SDK aborts after at least 100 ms: always past hungAfter
    });
    const ask = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hi' }] };
    for (let i = 0; i < 2; i++) {
      await expect(client.chat.completions.create(ask)).rejects.toBeInstanceOf(
        OpenAI.APIConnectionTimeoutError,
      );
    }
    expect(l.breakerFor('gpt-4o')!.state).toBe('open');
    const error = await client.chat.completions.create(ask).catch((e: unknown) => e);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('CIRCUIT_OPEN');
  });

  it("an abort before hungAfter is the caller's: neutral", async () => {
    system = createLimiterSystem();
    const l = system.limiter('openai', {
      limits: [{ limit: 100, interval: '1s' }],
      breaker: { failureThreshold: 1, openFor: '1m' },
    });
    const hang = (_: unknown, init?: RequestInit): Promise<Response> =>
      new Promise((_r, reject) =>
        init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)),
      );
    const f = limitedFetch({ limiter: l, fetch: hang });
    const ac = new AbortController();
    const call = f('https://api.openai.com/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify({ model: 'gpt-4o', messages: [] }),
      signal: ac.signal,
    });
    await new Promise((r) => setTimeout(r, 5));
    ac.abort();
    await expect(call).rejects.toMatchObject({ name: 'AbortError' });
    expect(l.breakerFor('gpt-4o')!.state).toBe('closed');
  });

  it("an error event inside a 200 stream (Anthropic's overloaded_error) is a failure", async () => {
    system = createLimiterSystem();
    const l = system.limiter('anthropic', {
      limits: [{ limit: 100, interval: '1s' }],
      breaker: { failureThreshold: 1, openFor: '1m' },
    });
    const stream =
      (events: string): (() => Promise<Response>) =>
      () =>
        Promise.resolve(new Response(events, { headers: { 'content-type': 'text/event-stream' } }));
    const ok = limitedFetch({
      limiter: l,
      fetch: stream('event: message_stop\ndata: {"type":"message_stop"}\n\n'),
    });
    const post = { method: 'POST', body: JSON.stringify({ model: 'claude', messages: [] }) };
    const url = 'https://api.anthropic.com/v1/messages';
    await (await ok(url, post)).text();
    expect(l.breakerFor('claude')!.state).toBe('closed');
    const overloaded = limitedFetch({
      limiter: l,
      fetch: stream(
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
      ),
    });
    await (await overloaded(url, post)).text();
    expect(l.breakerFor('claude')!.state).toBe('open');
  });
});

describe("the provider's remaining is applied after the settle (#17, finding 5)", () => {
  it('leaves the key at what the provider reports, not that plus the refund', async () => {
    system = createLimiterSystem({ clock: new VirtualClock() });
    const l = system.limiter('openai', {
      limits: [{ limit: 1_000, interval: '1m', dimension: 'tokens' }],
    });
    const answer = (): Promise<Response> =>
      Promise.resolve(
        Response.json(
          { usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 } },
          {
            headers: {
              'x-ratelimit-remaining-tokens': '500',
              'x-ratelimit-reset-tokens': '1m',
            },
          },
        ),
      );
    const f = limitedFetch({ limiter: l, fetch: answer, accounting: 'usage' });
    await f('https://api.openai.com/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify({ model: 'm', max_tokens: 300, messages: [] }),
    });
    expect((await l.stats('m')).limits[0]!.remaining).toBe(500);
  });
});

describe('keys of calls whose body is not a string (#17, smaller findings)', () => {
  it('reads the model of a byte or Blob JSON body, and of an Azure deployment path', async () => {
    system = createLimiterSystem();
    const l = system.limiter('openai', { limits: [{ limit: 100, interval: '1m' }] });
    const keys: string[] = [];
    system.events.on('granted', (e) => keys.push(e.key));
    const f = limitedFetch({ limiter: l, fetch: async () => Response.json({}) });
    const json = JSON.stringify({ model: 'gpt-4o', messages: [] });
    const url = 'https://api.openai.com/v1/chat/completions';
    await f(url, { method: 'POST', body: new TextEncoder().encode(json) });
    await f(url, { method: 'POST', body: new Blob([json], { type: 'application/json' }) });
    await f(
      'https://x.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=1',
      {
        method: 'POST',
        body: JSON.stringify({ messages: [] }),
      },
    );
    const form = new FormData();
    form.set('purpose', 'batch');
    await f('https://api.openai.com/v1/files', { method: 'POST', body: form });
    expect(keys).toEqual(['gpt-4o', 'gpt-4o', 'my-gpt4o', 'default']);
  });
});
