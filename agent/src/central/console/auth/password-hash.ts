import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Console passwords, hashed with scrypt (node:crypto): a random 16-byte salt, N = 2^15, r = 8, p = 1 (32 MiB and
 * about 50–100 ms per hash: slow enough to make guessing a stolen table expensive, fast enough for a login).
 * Stored as `scrypt$N$r$p$salt$hash` (base64), so the cost can be raised later without breaking old hashes.
 */

const N = 2 ** 15;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
/** scrypt needs 128·N·r bytes (32 MiB here); Node's default cap is exactly 32 MiB, which refuses it. */
const MAX_MEM = 64 * 1024 * 1024;

function derive(password: string, salt: Buffer, n: number, r: number, p: number, length: number): Promise<Buffer> {
  const options: ScryptOptions = { N: n, r, p, maxmem: Math.max(MAX_MEM, 256 * n * r) };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, length, options, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, salt, N, R, P, KEY_LENGTH);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** A hash of nothing anyone knows: verified against when the user does not exist, so that costs the same time. */
let decoy: Promise<string> | undefined;

/**
 * True when `password` matches `stored`. With `stored` null (unknown user) it still runs one scrypt and answers
 * false, so the time taken does not tell whether a user exists.
 */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const target = stored ?? (await (decoy ??= hashPassword(randomBytes(24).toString('base64'))));
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(target);
  if (!m) {
    await derive(password, Buffer.alloc(16), N, R, P, KEY_LENGTH);
    return false;
  }
  const [n, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const expected = Buffer.from(m[5]!, 'base64');
  // A stored cost beyond what this code writes is a corrupt or hostile row: refuse it rather than spend gigabytes.
  if (n > 2 ** 20 || r > 32 || p > 16 || expected.length < 16 || expected.length > 64) return false;
  const actual = await derive(password, Buffer.from(m[4]!, 'base64'), n, r, p, expected.length);
  return timingSafeEqual(actual, expected) && stored !== null;
}
