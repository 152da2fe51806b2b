/**
 * The in-memory peers, behind one shape: `acquire(key)` awaits one grant of cost 1 on `key`.
 * Libraries without keys (`limiter`, p-queue) get one instance per key, created on first use,
 * which is how an app would key them.
 */
import PQueue from 'p-queue';
import { RateLimiter } from 'limiter';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { createLimiterSystem, type Clock, type LimiterSystem } from '../src/index.js';

/** One limit: `limit` grants per `intervalMs`, per key. */
export interface PeerPolicy {
  readonly limit: number;
  readonly intervalMs: number;
}

export interface Peer {
  acquire(key: string): Promise<unknown>;
  close(): Promise<void>;
}

export interface PeerFactory {
  /** The name in tables. */
  readonly name: string;
  create(policy: PeerPolicy): Peer;
}

/** The policy of the grant-path workloads: so large that no peer ever refuses or waits. */
export const HUGE: PeerPolicy = { limit: 1_000_000_000, intervalMs: 60_000 };

export const RLF_NAME = 'rate-limiter-flexible (memory)';

export const tollgate: PeerFactory = {
  name: 'tollgate (memory)',
  create: (policy) => tollgatePeer(policy).peer,
};

/** tollgate with access to its system (the heap workload drives eviction through it). */
export function tollgatePeer(
  policy: PeerPolicy,
  options: { idleTimeout?: number; clock?: Clock } = {},
): { peer: Peer; system: LimiterSystem } {
  const system = createLimiterSystem({
    ...(options.idleTimeout !== undefined ? { idleTimeout: options.idleTimeout } : {}),
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
  });
  const limiter = system.limiter('bench', {
    limits: [{ limit: policy.limit, interval: policy.intervalMs }],
  });
  return {
    system,
    peer: {
      acquire: (key) => limiter.acquire(key),
      close: () => system.close(),
    },
  };
}

export const rlf: PeerFactory = {
  name: RLF_NAME,
  create(policy) {
    const rl = new RateLimiterMemory({ points: policy.limit, duration: policy.intervalMs / 1000 });
    return {
      acquire: (key) => rl.consume(key),
      close: async () => {},
    };
  },
};

export const limiterPkg: PeerFactory = {
  name: 'limiter (RateLimiter per key)',
  create(policy) {
    const byKey = new Map<string, RateLimiter>();
    return {
      acquire(key) {
        let rl = byKey.get(key);
        if (rl === undefined) {
          rl = new RateLimiter({ tokensPerInterval: policy.limit, interval: policy.intervalMs });
          byKey.set(key, rl);
        }
        return rl.removeTokens(1);
      },
      close: async () => byKey.clear(),
    };
  },
};

const noop = (): void => {};

export const pQueue: PeerFactory = {
  name: 'p-queue (queue per key)',
  create(policy) {
    const byKey = new Map<string, PQueue>();
    return {
      acquire(key) {
        let q = byKey.get(key);
        if (q === undefined) {
          q = new PQueue({ intervalCap: policy.limit, interval: policy.intervalMs });
          byKey.set(key, q);
        }
        return q.add(noop);
      },
      async close() {
        await Promise.all([...byKey.values()].map((q) => q.onIdle()));
        byKey.clear();
      },
    };
  },
};

/** Every memory peer, rate-limiter-flexible first (the reference of every ratio). */
export const MEMORY_PEERS: readonly PeerFactory[] = [rlf, tollgate, limiterPkg, pQueue];
