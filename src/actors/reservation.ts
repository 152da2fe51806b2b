/**
 * The {@link Reservation} `limiter.reserve` returns: a view of one waiter that was sent to its
 * key's mailbox, with the way to give it back.
 */
import type { Done } from '../machines/keyContext.js';
import { WaiterState, type Waiter } from '../machines/waiter.js';
import type { Grant } from './grant.js';
import type { Reservation } from './options.js';

/**
 * reservationOf wraps `w`, already dispatched. `abort` sends the key an `abort` of `w` and calls
 * `done` once the key handled it: a waiter still pending may be decided meanwhile (the store was
 * deciding it), and the key then gives the grant back in place.
 */
export function reservationOf(w: Waiter<Grant>, abort: (done: Done) => void): Reservation {
  const granted = w.promise();
  granted.catch(() => {}); // a cancelled reservation rejects `granted`: not unhandled
  return {
    granted,
    get etaMs() {
      return w.state === WaiterState.Granted ? 0 : w.etaMs;
    },
    cancel: async () => {
      if (w.state === WaiterState.Pending) {
        await new Promise<void>((resolve, reject) => abort({ resolve, reject }));
      } else if (w.state === WaiterState.Granted) await w.grant!.cancel();
    },
  };
}
