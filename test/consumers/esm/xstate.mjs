// tollgate/xstate: an app's own machine spawns a limiter actor, asks by event, gets the grant as
// an event; the XState it runs on is the app's (the one npm installed beside tollgate).
import { createLimiterSystem } from 'tollgate';
import { limiterActor } from 'tollgate/xstate';
import { assign, createActor, sendTo, setup, spawnChild, waitFor } from 'xstate';

const system = createLimiterSystem();
const limiter = system.limiter('api', { limits: [{ limit: 1, interval: '1m' }] });
const agent = setup({ actors: { limiter: limiterActor(limiter) } }).createMachine({
  context: { replies: [] },
  entry: [
    spawnChild('limiter', { id: 'limiter' }),
    sendTo('limiter', { type: 'tollgate.acquire', id: 'a', key: 'k' }),
    sendTo('limiter', { type: 'tollgate.tryAcquire', id: 'b', key: 'k' }),
  ],
  on: {
    '*': { actions: assign({ replies: ({ context, event }) => [...context.replies, event.type] }) },
  },
});
const actor = createActor(agent).start();
await waitFor(actor, (s) => s.context.replies.length === 2);
console.log(JSON.stringify({ replies: actor.getSnapshot().context.replies }));
actor.stop();
await system.close();
