/**
 * The Redis Cluster hash slot of a key name: CRC16 (XMODEM) of the hash tag, or of the whole name
 * when it has none, modulo 16384 (as the Redis Cluster specification defines it). The Redis store
 * groups keys by slot, because one script call may only touch keys of one slot.
 */

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc;
}

const encoder = new TextEncoder();

/** slotOf gives the cluster slot (0–16383) of the Redis key `name` (UTF-8 bytes). */
export function slotOf(name: string): number {
  const bytes = encoder.encode(name);
  const open = bytes.indexOf(0x7b); // '{'
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) & 16383;
  }
  return crc16(bytes) & 16383;
}
