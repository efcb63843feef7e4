import { sign, verify, type KeyObject } from 'node:crypto';
import { keyIdOf, type TrustedKeys } from '../core/keys.js';

/**
 * Signatures of remote commands (docs/commands.md). A command that changes the agent carries
 * `signature: {alg: 'ed25519', keyId, value}` — the same shape and key ids as model bundles — over the canonical
 * bytes of `commandMessage`.
 */

export const COMMAND_FORMAT = 'forewarn-command/1';

export interface CommandSignature {
  alg: 'ed25519';
  /** First 16 hex digits of the sha256 of the signing public key's DER (SubjectPublicKeyInfo). */
  keyId: string;
  /** base64 of the 64-byte ed25519 signature. */
  value: string;
}

/** What the signature covers. `id`, `expiresAt` and `args` are null when absent. */
export interface SignedFields {
  agentId: string;
  command: string;
  id: string | null;
  issuedAt: number;
  expiresAt: number | null;
  args: unknown;
}

/**
 * JSON with no whitespace and every object's keys sorted (by UTF-16 code units, which for ASCII keys is byte
 * order). Python: `json.dumps(x, separators=(",", ":"), sort_keys=True, ensure_ascii=False)`.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) return 'null';
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The bytes a command signature covers: UTF-8 of the canonical JSON array
 * `["forewarn-command/1", agentId, command, id, issuedAt, expiresAt, args]` (null for an absent id, expiresAt or args).
 */
export function commandMessage(f: SignedFields): Buffer {
  return Buffer.from(canonicalJson([COMMAND_FORMAT, f.agentId, f.command, f.id ?? null, f.issuedAt, f.expiresAt ?? null, f.args ?? null]), 'utf8');
}

export function signCommand(f: SignedFields, privateKey: KeyObject): CommandSignature {
  return { alg: 'ed25519', keyId: keyIdOf(privateKey), value: sign(null, commandMessage(f), privateKey).toString('base64') };
}

/** Why a signature is refused, or null when it verifies with a trusted key. */
export function checkCommandSignature(f: SignedFields, signature: unknown, trusted: TrustedKeys): { ok: true; keyId: string } | { ok: false; reason: string } {
  if (!trusted.size) return { ok: false, reason: 'no trusted key is configured (commands.trustedKeys), so no command that changes the agent is accepted' };
  if (signature === undefined || signature === null) return { ok: false, reason: `${f.command} changes the agent and must be signed` };
  const s = signature as Partial<CommandSignature>;
  if (typeof s !== 'object' || typeof s.alg !== 'string' || typeof s.keyId !== 'string' || typeof s.value !== 'string') {
    return { ok: false, reason: 'signature must be {alg, keyId, value}' };
  }
  if (s.alg !== 'ed25519') return { ok: false, reason: `signature algorithm ${JSON.stringify(s.alg).slice(0, 40)} is not supported (ed25519 only)` };
  const key = trusted.get(s.keyId);
  if (!key) return { ok: false, reason: `signed by key ${JSON.stringify(s.keyId).slice(0, 40)}, which is not among the trusted keys` };
  let ok = false;
  try {
    ok = verify(null, commandMessage(f), key, Buffer.from(s.value, 'base64'));
  } catch {
    ok = false;
  }
  return ok
    ? { ok: true, keyId: s.keyId }
    : { ok: false, reason: `the signature does not verify with key ${s.keyId}: the request was altered or signed with another key` };
}
