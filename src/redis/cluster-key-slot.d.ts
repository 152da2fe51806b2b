/**
 * The types of `cluster-key-slot` (the hash slot function ioredis itself uses), which ships none:
 * the Redis Cluster slot (0-16383) of a key name, from the CRC16 of its hash tag or whole name
 * in UTF-8.
 */
declare module 'cluster-key-slot' {
  function calculateSlot(key: string | Uint8Array): number;
  export = calculateSlot;
}
