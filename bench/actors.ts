/**
 * What one mailbox hop costs as the number of live actors grows: XState `send` to a light actor
 * (a custom ActorLogic that only counts; children of one root, as tollgate's key actors are), next
 * to reading and bumping a plain object per key, over 1 to 100,000 live keys visited in a
 * scattered order. It is the part of a grant that tollgate's design (one actor per key) pays and a
 * keyed counter does not, and the reason the concurrent workload (10,000 live keys) is slower
 * than the sequential one (1 key).
 */
import { createActor, type ActorLogic, type AnyActorRef, type Snapshot } from 'xstate';
import { fmtInt, fmtNs, median, type Section, type Suite, type SuiteOptions } from './report.js';

interface Count {
  n: number;
}
type CountSnapshot = Snapshot<undefined> & { context: Count };
type Bump = { type: 'bump' };

/** The lightest actor logic: one counter, mutated in place (snapshots are not kept). */
const counter: ActorLogic<CountSnapshot, Bump> = {
  transition(snapshot) {
    snapshot.context.n++;
    return snapshot;
  },
  getInitialSnapshot: () => ({
    status: 'active',
    output: undefined,
    error: undefined,
    context: { n: 0 },
  }),
  getPersistedSnapshot: (snapshot) => snapshot,
};

const BUMP: Bump = { type: 'bump' };

/** ns per operation of `op(i)` over `ops` operations. */
function timeOps(ops: number, op: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) op(i);
  return Number(process.hrtime.bigint() - t0) / ops;
}

/** Keys visited in a scattered order (7919 is prime, so every key is visited). */
function scatter(i: number, n: number): number {
  return (i * 7919) % n;
}

async function run(options: SuiteOptions): Promise<Section> {
  const sizes = options.quick ? [1, 1_000] : [1, 1_000, 10_000, 100_000];
  const ops = options.quick ? 100_000 : 2_000_000;
  const runs = options.quick ? 1 : 3;
  const rows: string[][] = [];
  for (const n of sizes) {
    options.log(`actors: ${fmtInt(n)} live`);
    // As tollgate's key actors are: children of one root actor, in one XState system.
    const root = createActor(counter).start();
    const actors: AnyActorRef[] = Array.from({ length: n }, () =>
      createActor(counter, { parent: root }).start(),
    );
    const plain: Count[] = Array.from({ length: n }, () => ({ n: 0 }));
    const sendNs: number[] = [];
    const plainNs: number[] = [];
    for (let r = 0; r < runs; r++) {
      sendNs.push(timeOps(ops, (i) => actors[scatter(i, n)]!.send(BUMP)));
      plainNs.push(timeOps(ops, (i) => void plain[scatter(i, n)]!.n++));
    }
    // Children cannot be stopped directly; nothing of theirs runs, so dropping them is enough.
    root.stop();
    const send = median(sendNs);
    const obj = median(plainNs);
    rows.push([fmtInt(n), fmtNs(send), fmtNs(obj), `${(send / obj).toFixed(0)}×`]);
  }
  return {
    title: 'Mailbox hop by live actors',
    blocks: [
      {
        text: [
          'XState `send` to a light actor (a custom ActorLogic that only counts; children of one root,',
          "as tollgate's key actors are) against reading and bumping a plain object per key, with that",
          `many live keys visited in a scattered order (median of ${runs} run${runs === 1 ? '' : 's'} of ${fmtInt(ops)} operations).`,
          "Every grant of tollgate pays at least one such hop (its key's mailbox); the cost grows with",
          "the live actors' working set.",
        ].join('\n'),
      },
      {
        table: {
          headers: ['live keys', 'actor send', 'plain object', 'send / object'],
          rows,
          align: ['r', 'r', 'r', 'r'],
        },
      },
    ],
  };
}

export const actorsSuite: Suite = { name: 'actors', run };
