/**
 * The names of the system's events as a value (the events' types are in events.ts, which the
 * public entry re-exports whole; this list is not public).
 */
import type { TollgateEventName } from './events.js';

/** Every name of the events of `TollgateEvents`; the check below fails to compile if one is missing. */
export const EVENT_NAMES = [
  'granted',
  'refused',
  'queued',
  'timeout',
  'aborted',
  'settled',
  'released',
  'cancelled',
  'reset',
  'paused',
  'charged',
  'storeError',
  'evicted',
  'forgotten',
  'breaker',
  'dataLost',
] as const satisfies readonly TollgateEventName[];
const everyNameListed: [Exclude<TollgateEventName, (typeof EVENT_NAMES)[number]>] extends [never]
  ? true
  : never = true;
void everyNameListed;
