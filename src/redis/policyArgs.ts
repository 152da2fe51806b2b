/**
 * A policy as the Lua scripts read it from ARGV (`read_policy` in lua/keyState.lua). Every script
 * that decides, settles or reads takes the policy with the call, so a limit change is just a call
 * with another policy.
 */
import type { Policy } from '../limiter/types.js';

/**
 * policyArgs is `policy` in the layout the scripts read: the number of limits, then per limit its
 * name, its algorithm's letter ('t' token bucket, 'f' fixed window, 's' sliding window), limit,
 * interval in ms and capacity, then the concurrency (-1 for none).
 */
export function policyArgs(policy: Policy): (string | number)[] {
  const args: (string | number)[] = [policy.limits.length];
  for (const l of policy.limits) {
    args.push(
      l.name,
      l.algorithm === 'token-bucket' ? 't' : l.algorithm === 'fixed-window' ? 'f' : 's',
    );
    args.push(l.limit, l.intervalMs, l.capacity);
  }
  args.push(policy.concurrency ?? -1);
  return args;
}
