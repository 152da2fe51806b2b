/**
 * The Redis store: the same limits as the memory store, kept in Redis and decided by Lua scripts,
 * so every process and machine that shares a Redis (or a Redis Cluster) shares the limits.
 *
 * What is atomic: each call is one script run on one key (one hash slot), so a batch of one key's
 * requests, a settle, a cancel and a release each happen all at once, and two processes never
 * both take the last unit. Time is Redis' own `TIME`, read inside the script, so app servers with
 * skewed clocks agree. What is not atomic: two different keys (each is its own script run), and a
 * call whose answer is lost (a timeout or a dropped connection after the script ran): its booking
 * stands, so failures over-count and never under-count, and a slot it took comes back when its
 * lease ends.
 *
 * When Redis cannot answer (down, slow, unreachable), the `onUnavailable` policy decides:
 * `'fail-closed'` rejects with {@link StoreUnavailableError}, `'fail-open'` grants, and
 * `'insurance'` decides with an in-memory store at a fraction of the limits. After a failure the
 * store does not ask Redis again for `retryInterval`, so an outage costs one timeout, not one per
 * request. A script that raises an error is not an outage: its call rejects with
 * {@link StoreRejectedError}, and Redis is asked again at once.
 *
 * Data loss (#12): the store keeps a marker in Redis (see markerName and lua/keyState.lua). A
 * decide or settle that finds it gone (a FLUSHALL, a restart without persistence) or finds a
 * key's state gone before its time (evicted under `maxmemory`) tells the store, which tells its
 * system ({@link RedisStore.onDataLost}, the `dataLost` event) and goes on from the fresh state:
 * a key admits at most one limit's worth more than it would have, once per loss, and no grant of
 * before gives anything back to the fresh state (its epoch is gone).
 *
 * Order: every call of the store (decisions, settles, releases, resets, reads, pauses) waits for
 * the same flush, and the flush sends each key's calls in the order the runtime made them (see
 * flushQueue.ts), so Redis applies a key's operations in the runtime's order, as the memory store
 * does.
 */
import type { Clock } from '../clock.js';
import type {
  BatchMode,
  KeyCache,
  KeyReading,
  Store,
  StoreDataLoss,
  StoreDecision,
  StoreGrant,
  StoreRequest,
} from '../store.js';
import { StoreRejectedError, StoreUnavailableError } from '../errors.js';
import type { LimitReading, Ms, Policy, Units } from '../limiter/types.js';
import { checkBatchUnits, checkUnits } from '../limiter/validate.js';
import { freeChannel } from './keys.js';
import { FlushQueue, type Pending } from './flushQueue.js';
import { placeOf, type KeyPlace } from './keyPlace.js';
import { LossWatch } from './lossWatch.js';
import { Fallback } from './fallback.js';
import { SCRIPTS, type ScriptName } from './scripts.js';
import { ScriptRunner } from './scriptRunner.js';
import { decideArgs, readDecisions } from './decideCall.js';
import { policyArgs } from './policyArgs.js';
import { readOptions, type RedisStoreOptions } from './redisStoreOptions.js';
import { duplicateOf, isCluster, resubscribesItself, type RedisClient } from './client.js';

/** RedisStore is the Redis {@link Store}; create one with {@link redisStore}. */
export class RedisStore implements Store {
  readonly name = 'redis';
  readonly sync = false;
  /** The lease of a slot whose limiter sets none (`leaseTtl`); the runtime applies it. */
  readonly defaultLeaseMs: Ms;
  readonly #client: RedisClient;
  /** Sends the scripts: the timeout, whether Redis is down, whether the store is closed. */
  readonly #runner: ScriptRunner;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #runtimeTime: boolean;
  /** What answers while Redis cannot (the `onUnavailable` policy). */
  readonly #fallback: Fallback;
  readonly #subscribers = new Set<RedisClient>();
  readonly #cluster: boolean;
  /** The marker generations answered, and who hears of lost data ({@link onDataLost}). */
  readonly #loss: LossWatch;
  /** Every call waiting for the next flush, which sends each key's calls in order. */
  readonly #queue = new FlushQueue((entries) => void this.#decideMany(entries));

  /**
   * @throws InvalidArgumentError when an option is invalid (see {@link readOptions}).
   */
  constructor(options: RedisStoreOptions) {
    const settings = readOptions(options);
    this.#client = settings.client;
    this.#prefix = settings.prefix;
    this.#channel = freeChannel(this.#prefix);
    this.#runtimeTime = settings.runtimeTime;
    this.defaultLeaseMs = settings.defaultLeaseMs;
    this.#fallback = new Fallback(settings.policy, settings.fraction, settings.processes);
    this.#runner = new ScriptRunner(settings);
    this.#cluster = isCluster(this.#client);
    this.#loss = new LossWatch(this.#cluster);
  }

  /** The key prefix in use. */
  get prefix(): string {
    return this.#prefix;
  }

  /**
   * isDegraded tells whether the store answers by its `onUnavailable` policy at `now` (after a
   * failure).
   */
  isDegraded(now: Ms): boolean {
    return this.#runner.isDown(now);
  }

  /**
   * useClock takes the system's clock to time the store's calls, unless the store was given its
   * own (`clock` option), which it keeps.
   */
  useClock(clock: Clock): void {
    this.#runner.useClock(clock);
  }

  #now(now: Ms): string {
    return this.#runtimeTime ? String(now) : '';
  }

  /**
   * call runs one script on one key with the store's timeout (see {@link ScriptRunner.send}).
   * Only decisions are short-circuited while Redis is marked down: settles, releases and cancels
   * are always tried, since skipping them would leak what the grants hold. It issues the command
   * before it returns.
   */
  #call<T>(
    op: string,
    name: ScriptName,
    place: KeyPlace,
    args: (string | number)[],
    now: Ms,
  ): Promise<T> {
    const keys = [place.names.state, place.names.slots];
    if (SCRIPTS[name].keys === 3) keys.push(place.marker);
    return this.#runner.send<T>(op, name, [...keys, ...args], now);
  }

  /** Where `key` lives: its names, its group and its slot's marker (see keyPlace.ts). */
  #place(key: string): KeyPlace {
    return placeOf(this, this.#prefix, this.#cluster, key, undefined);
  }

  /**
   * onDataLost calls `listener` whenever a call finds that Redis lost data of this store: the
   * marker gone ('flushed': FLUSHALL, a restart without persistence, a failover to an empty
   * replica), or a key's state gone before its time ('evicted': `maxmemory` with an `allkeys-*`
   * policy, or a DEL). It is the first decide or settle on the slot (or the key) after the loss
   * that finds it, in each process that had used the slot before. The system relays it as its
   * `dataLost` event. Returns a function that stops listening.
   */
  onDataLost(listener: (loss: StoreDataLoss) => void): () => void {
    return this.#loss.listen(listener);
  }

  /**
   * decide queues the request for the next script call: the decisions that the keys of one
   * cluster slot (every key, on a single Redis) ask for before the store's flush runs (a
   * microtask queued by the first of them: the code running now, and promise callbacks queued
   * ahead of the flush) go to Redis in one call of `decide.lua`, up to MAX_KEYS_PER_CALL keys each
   * (see flushQueue.ts). A key has at most one decide in flight (its actor waits for the answer),
   * so a call never holds one key twice.
   *
   * Rejects with InvalidArgumentError, and sends nothing for the key, when a request's units have
   * not one amount per limit of `policy`.
   */
  decide(
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
    cache?: KeyCache,
  ): Promise<StoreDecision[]> {
    return new Promise<StoreDecision[]>((resolve, reject) => {
      try {
        checkBatchUnits(policy, batch, 'decide');
      } catch (e) {
        reject(e);
        return;
      }
      const place = placeOf(this, this.#prefix, this.#cluster, key, cache);
      this.#queue.queueDecision(place, policy, batch, mode, now, resolve, reject);
    });
  }

  /**
   * One `decide.lua` call for `entries` (keys of one slot); each entry is answered on its own.
   * The call is issued before the first `await` (see {@link FlushQueue.flush}).
   */
  async #decideMany(entries: readonly Pending[]): Promise<void> {
    const now = entries[0]!.now;
    const closed = this.#runner.closed;
    if (closed || this.#runner.isDown(now)) {
      // Not sent: the policy answers (a closed store grants nothing, whatever its policy).
      const error = closed
        ? new StoreUnavailableError('the redis store is closed')
        : new StoreUnavailableError('redis failed recently; retrying after retryInterval');
      this.#answerFailure(entries, error);
      return;
    }
    const args = decideArgs(entries, this.#runtimeTime);
    let reply: (number | string)[];
    try {
      reply = await this.#runner.send<(number | string)[]>('decide', 'tollgateDecide', args, now);
    } catch (error) {
      // The call may have run, or run in part (a script that fails keeps what it wrote before),
      // or may still run (a timeout): give back any slot it booked before anyone is answered, so
      // that the release is written after the decision and before any later one under the same
      // grant id (a waiter asks again under its id).
      this.#freeSlots(entries);
      this.#answerFailure(entries, error);
      return;
    }
    const first = entries[0]!.place;
    this.#loss.notice(first.group, reply[0] as string, now);
    let lost: string[] | undefined;
    let at = 1;
    for (const e of entries) {
      // Each key's part opens with whether its state was lost (see decide.lua).
      if (reply[at] === 1) (lost ??= []).push(e.place.key);
      at = readDecisions(e, reply, at + 1);
    }
    if (lost !== undefined) this.#loss.lost('evicted', lost, first.group, now);
    if (this.#fallback.owes) this.#bookOwed(now);
  }

  /**
   * bookOwed books into Redis what the `onUnavailable` policy granted while Redis was away (see
   * {@link Fallback.drain}): one settle per key, from nothing to the units owed, which books them
   * as an extra charge, in the key's order with its other calls. A booking that fails is owed
   * again, for the next time Redis answers.
   */
  #bookOwed(now: Ms): void {
    for (const { key, policy, units } of this.#fallback.drain()) {
      const owed = units.map((u) => Math.max(0, u));
      if (owed.every((u) => u === 0)) continue;
      const record: StoreGrant = { id: BOOKING_ID, at: now, units: owed.map(() => 0), slot: false };
      this.#adjust('settle', key, policy, record, owed, false, now).catch(() =>
        this.#fallback.owe(key, policy, owed),
      );
    }
  }

  /**
   * freeSlots sends, for each key of a failed decide call, an idempotent release of every slot
   * its requests asked for (by grant id), on the same client, so that it runs after the decide if
   * the decide runs at all. Not retried: a retry could come after a later decision under the same
   * grant id and free that one's slot; a release that fails leaves the slot to its lease.
   */
  #freeSlots(entries: readonly Pending[]): void {
    for (const e of entries) {
      let ids: string[] | undefined;
      for (const r of e.batch) if (r.slot) (ids ??= []).push(r.id);
      if (ids === undefined) continue;
      const { names, key } = e.place;
      this.#runner.scripts
        .tollgateRelease(names.state, names.slots, this.#channel, key, ...ids)
        .catch(() => {});
    }
  }

  /** Answers `entries` after their call failed: by the `onUnavailable` policy, or the error. */
  #answerFailure(entries: readonly Pending[], error: unknown): void {
    for (const e of entries) {
      // A closed store grants nothing, whatever its policy; a rejection is no outage.
      if (this.#runner.closed || error instanceof StoreRejectedError) {
        e.reject(error);
        continue;
      }
      try {
        e.resolve(this.#fallback.decide(error, e.place.key, e.policy, e.batch, e.mode, e.now));
      } catch (failure) {
        e.reject(failure);
      }
    }
  }

  /**
   * settle moves the grant to `actual` in Redis (see settle.lua): nothing comes back to a grant
   * of another epoch than the key's, an extra charge books.
   *
   * @throws InvalidArgumentError (rejects, sending nothing) when `grant.units` or `actual` has not
   *   one amount per limit of `policy`.
   */
  async settle(
    key: string,
    policy: Policy,
    grant: StoreGrant,
    actual: Units,
    now: Ms,
  ): Promise<void> {
    checkUnits(policy, grant.units, 'settle', 'grant.units');
    checkUnits(policy, actual, 'settle', 'actual');
    await this.#adjust('settle', key, policy, grant, actual, false, now);
  }

  async cancel(key: string, policy: Policy, grant: StoreGrant, now: Ms): Promise<void> {
    checkUnits(policy, grant.units, 'cancel', 'grant.units');
    await this.#adjust(
      'cancel',
      key,
      policy,
      grant,
      grant.units.map(() => 0),
      grant.slot,
      now,
    );
  }

  async #adjust(
    op: string,
    key: string,
    policy: Policy,
    grant: StoreGrant,
    actual: Units,
    free: boolean,
    now: Ms,
  ): Promise<void> {
    if (this.#fallback.adjust(key, policy, grant, actual, free, now)) {
      // A grant settled after its units were booked owes its extra usage: book it while Redis is up.
      if (this.#fallback.owes && !this.#runner.isDown(now) && !this.#runner.closed) {
        this.#bookOwed(now);
      }
      return;
    }
    const args = [
      this.#now(now),
      ...policyArgs(policy),
      grant.id,
      grant.at,
      grant.epoch ?? '',
      free ? '1' : '0',
      this.#channel,
    ];
    for (const u of grant.units) args.push(u);
    for (const u of actual) args.push(u);
    for (let i = 0; i < policy.limits.length; i++) args.push(grant.marks?.[i] ?? 0);
    args.push(key);
    const place = this.#place(key);
    const [, gen, lost] = await this.#queue.enqueue(key, () =>
      this.#call<[number, string, number]>(op, 'tollgateSettle', place, args, now),
    );
    this.#loss.notice(place.group, gen, now);
    if (lost === 1) this.#loss.lost('evicted', [key], place.group, now);
  }

  async release(key: string, policy: Policy, grant: StoreGrant, now: Ms): Promise<void> {
    if (!grant.slot || this.#fallback.release(key, policy, grant, now)) return;
    await this.#queue.enqueue(key, () => this.#releaseSlot(key, grant.id, now));
  }

  /**
   * releaseSlot frees the slot held under `id`. A slot whose release is lost stays held in every
   * process (until its lease), so a failed release is tried again a few times, retryInterval
   * apart (on the store's clock), before it is given up; a rejection by the script is not
   * retried.
   */
  async #releaseSlot(key: string, id: string, now: Ms): Promise<void> {
    const place = this.#place(key);
    for (let attempt = 1; ; attempt++) {
      try {
        // The first attempt is issued now, in the flush's order.
        await this.#call('release', 'tollgateRelease', place, [this.#channel, key, id], now);
        return;
      } catch (e) {
        if (attempt >= RELEASE_ATTEMPTS || this.#runner.closed || e instanceof StoreRejectedError) {
          throw e;
        }
        await this.#runner.waitRetryInterval();
      }
    }
  }

  async read(key: string, policy: Policy, now: Ms): Promise<KeyReading> {
    const args = [this.#now(now), ...policyArgs(policy)];
    const r = await this.#queue.enqueue(key, () =>
      this.#call<number[]>('read', 'tollgateRead', this.#place(key), args, now),
    );
    const limits = policy.limits.map((l, i): LimitReading => ({
      name: l.name,
      dimension: l.dimension,
      algorithm: l.algorithm,
      limit: l.limit,
      capacity: l.capacity,
      remaining: r[2 + 2 * i]!,
      resetMs: r[3 + 2 * i]!,
    }));
    return { at: r[0]!, inFlight: r[1]!, limits };
  }

  async reset(key: string, now: Ms): Promise<void> {
    this.#fallback.reset(key);
    await this.#queue.enqueue(key, () =>
      this.#call('reset', 'tollgateReset', this.#place(key), [this.#channel, key], now),
    );
  }

  async pause(key: string, forMs: Ms, now: Ms): Promise<void> {
    this.#fallback.pause(key, forMs, now);
    await this.#queue.enqueue(key, () =>
      this.#call('pause', 'tollgatePause', this.#place(key), [this.#now(now), forMs], now),
    );
  }

  /** sweep drops what the insurance store keeps for keys back at full capacity. */
  sweep(now: Ms): void {
    this.#fallback.sweep(now);
  }

  /**
   * watch calls `listener` with a key's name whenever any process frees capacity of that key (a
   * released slot, a refund, a reset), through Redis pub/sub on a duplicate connection. The
   * runtime uses it to wake that key's waiters at once instead of at the next poll.
   */
  watch(listener: (key: string) => void): () => void {
    const sub = duplicateOf(this.#client);
    this.#subscribers.add(sub);
    // A subscriber that loses its connection reconnects by itself; waiters still poll meanwhile.
    sub.on('error', () => {});
    sub.on('message', (channel: string, key: string) => {
      if (channel === this.#channel) listener(key);
    });
    const subscribe = (): void => void sub.subscribe(this.#channel).catch(() => {});
    // Now (a lazy client connects for it), and for a single Redis again on every connection after
    // (see duplicateOf); a SUBSCRIBE repeated on one connection changes nothing.
    subscribe();
    if (resubscribesItself(sub)) sub.on('ready', subscribe);
    return () => {
      if (this.#subscribers.delete(sub)) sub.disconnect();
    };
  }

  /**
   * close stops the store: the calls queued for the next flush are sent now (settles, releases,
   * resets…), except decisions, which are refused; later calls reject. The client is not closed.
   */
  async close(): Promise<void> {
    if (!this.#runner.closed && this.#queue.length > 0) this.#queue.flush(true);
    this.#runner.close();
    for (const sub of this.#subscribers) sub.disconnect();
    this.#subscribers.clear();
  }
}

/** The grant id of a booking of what the fallback granted (see `#bookOwed`); it holds no slot. */
const BOOKING_ID = 'tollgate:fallback-booking';

/** How many times a failed release is tried (see {@link RedisStore.release}). */
const RELEASE_ATTEMPTS = 3;

/**
 * redisStore creates a {@link RedisStore} for `createLimiterSystem({ store })`.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const system = createLimiterSystem({ store: redisStore({ client: new Redis(), prefix: 'myapp:' }) });
 */
export function redisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
