/**
 * One `decide.lua` call, seen from the store: its arguments, built from the queued decisions of
 * some keys of one cluster slot ({@link decideArgs}), and the answers read back from its flat
 * reply ({@link readDecisions}). decide.lua's header describes both layouts.
 */
import type { Policy } from '../limiter/types.js';
import type { BatchMode, StoreDecision, StoreGrant } from '../store.js';
import type { Pending } from './flushQueue.js';
import { policyArgs } from './policyArgs.js';

/** decide.lua's mode letter of a batch mode, without and with slot fields (see its header). */
const MODE_LETTER: Readonly<Record<BatchMode, readonly [string, string]>> = {
  queue: ['q', 'Q'],
  each: ['e', 'E'],
};

/**
 * decideArgs builds the arguments of one `decide.lua` call for `entries` (keys of one cluster
 * slot), keys first: their count, the keys (two per entry, then the store's marker for the slot:
 * see markerName), the time ('each' when `runtimeTime`: every group then
 * carries its entry's `now`; '' for Redis TIME), the policies (each once), the grant ids of the
 * requests with slot fields, and the groups in one string.
 */
export function decideArgs(entries: readonly Pending[], runtimeTime: boolean): (string | number)[] {
  const keys: string[] = [];
  const ownTime = runtimeTime;
  const policies: Policy[] = [];
  const ids: string[] = [];
  // The groups go in one argument (see decide.lua): a few hundred short arguments cost ioredis
  // and Redis more than their text does in one.
  let groups = '';
  for (const e of entries) {
    // Slot fields (id, slot, lease) go only with a policy that counts slots, or a request
    // holding one from an earlier policy: most calls carry just the amounts.
    const slotted = e.policy.concurrency !== null || e.batch.some((r) => r.slot);
    // Both keys always: save() looks at the slot set before it forgets a key (see keyState.lua).
    keys.push(e.place.names.state, e.place.names.slots);
    let p = policies.indexOf(e.policy);
    if (p < 0) p = policies.push(e.policy) - 1;
    if (ownTime) groups += `${e.now},`;
    groups += `${MODE_LETTER[e.mode][slotted ? 1 : 0]},${p + 1},${e.batch.length}`;
    for (const r of e.batch) {
      for (const u of r.units) groups += `,${u}`;
      if (slotted) {
        ids.push(r.id);
        groups += r.slot ? ',1,' : ',0,';
        groups += r.leaseMs ?? -1;
      }
    }
    groups += ',';
  }
  keys.push(entries[0]!.place.marker);
  const args: (string | number)[] = [keys.length, ...keys, ownTime ? 'each' : '', policies.length];
  for (const p of policies) args.push(...policyArgs(p));
  args.push(...ids, groups);
  return args;
}

/**
 * readDecisions answers `e` from the flat reply of `decide.lua` (see its header), starting at
 * index `at` (its count of decisions, after its loss flag), and returns the index after this
 * key's part.
 */
export function readDecisions(e: Pending, reply: readonly (number | string)[], at: number): number {
  const n = e.policy.limits.length;
  // Marks are kept only for a policy with a token bucket, as the core does (GrantRecord.marks).
  const marked = e.policy.limits.some((l) => l.algorithm === 'token-bucket');
  const count = reply[at++] as number;
  const out: StoreDecision[] = [];
  for (let i = 0; i < count; i++) {
    const req = e.batch[i]!;
    if (reply[at] === 1) {
      const grantAt = reply[at + 1] as number;
      const epoch = reply[at + 2] as number;
      const grant: StoreGrant = marked
        ? {
            id: req.id,
            at: grantAt,
            units: req.units,
            slot: req.slot,
            marks: reply.slice(at + 3, at + 3 + n) as number[],
            epoch,
          }
        : { id: req.id, at: grantAt, units: req.units, slot: req.slot, epoch };
      out.push({ ok: true, grant });
      at += 3 + n;
    } else {
      out.push({
        ok: false,
        retryAfterMs: reply[at + 1] as number,
        limit: reply[at + 2] as string,
      });
      at += 3;
    }
  }
  e.resolve(out);
  return at;
}
