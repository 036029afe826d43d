/**
 * Random bytes for the small values every boot needs (reservation id, admin password,
 * MAC address), from the same generator as crypto.randomBytes but drawn from a pooled
 * buffer: each randomBytes call is a synchronous trip into OpenSSL that cost about 5 µs
 * here whatever its size, three per boot. Node's randomUUID pools its entropy the same
 * way. Every byte is handed out once.
 */
import { randomBytes, randomFillSync } from "node:crypto";

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

export function pooledRandomBytes(size: number): Buffer {
  if (size > POOL_SIZE / 4) return randomBytes(size);
  if (offset + size > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const bytes = Buffer.from(pool.subarray(offset, offset + size));
  offset += size;
  return bytes;
}
