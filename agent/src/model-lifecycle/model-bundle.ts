import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ForewarnError, describeError } from '../core/errors.js';
import { keyIdOf, type TrustedKeys } from '../core/keys.js';
import { readModel } from '../scoring/model-manifest.js';

/**
 * The model bundle: one self-contained JSON file carrying a model folder, signed with ed25519 (docs/model-updates.md).
 *
 *   { "format": "forewarn-model-bundle/1", "name": "machine-failure", "version": "1.1.0",
 *     "files": { "manifest.json": { "size": 8964, "sha256": "…", "data": "<base64>" }, "model.onnx": { … }, … },
 *     "signature": { "alg": "ed25519", "keyId": "<16 hex>", "value": "<base64 of 64 bytes>" } }
 *
 * The signature covers the canonical bytes of `signedMessage`: the format, name, version and every file's name,
 * size and sha256, sorted by name. It never covers base64 text or JSON layout, so nothing outside what is
 * installed can be changed without breaking it, and anything can re-create the message from the envelope.
 */

export const BUNDLE_FORMAT = 'forewarn-model-bundle/1';
/** Largest bundle file read (the base64 envelope): a model folder is well under this. */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
/** Most files in one bundle. */
export const MAX_BUNDLE_FILES = 32;
/** A file name in a bundle: one flat name, no directories, never `.`/`..`-led. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MODEL_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const VERSION = /^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]{1,64})?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ENVELOPE_KEYS = new Set(['format', 'name', 'version', 'files', 'signature']);

export interface BundleFileEntry {
  size: number;
  sha256: string;
  /** The file's bytes, base64. */
  data: string;
}

export interface BundleSignature {
  alg: 'ed25519';
  /** First 16 hex digits of the sha256 of the signing public key's DER (SubjectPublicKeyInfo). */
  keyId: string;
  /** base64 of the 64-byte ed25519 signature over `signedMessage`. */
  value: string;
}

export interface ModelBundle {
  format: typeof BUNDLE_FORMAT;
  name: string;
  version: string;
  files: Record<string, BundleFileEntry>;
  signature?: BundleSignature;
}

/** A bundle whose signature and every file were checked: the decoded files, by name. */
export interface VerifiedBundle {
  name: string;
  version: string;
  keyId: string;
  files: Map<string, Buffer>;
  /** sha256 of the bundle file as received, for the records. */
  bundleSha256: string;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * The bytes the signature covers: UTF-8 of the compact JSON array
 * `["forewarn-model-bundle/1", name, version, [[fileName, size, sha256], …]]`, files sorted by name (names are
 * ASCII, so this is byte order). Python's `json.dumps(x, separators=(",", ":"))` gives the same bytes.
 */
export function signedMessage(name: string, version: string, files: ReadonlyArray<{ name: string; size: number; sha256: string }>): Buffer {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Buffer.from(JSON.stringify([BUNDLE_FORMAT, name, version, sorted.map((f) => [f.name, f.size, f.sha256])]), 'utf8');
}

/**
 * Builds and signs a bundle from a model folder: its manifest must be valid and its model file must match the
 * manifest's sha256 (the same checks the agent makes). Every plain file at the top of the folder goes in (the
 * manifest, the model, golden.json, the model card, the recipe); sub-folders and dot files stay out.
 */
export function createBundle(modelDir: string, privateKey: KeyObject): { bundle: ModelBundle; json: string; warnings: string[] } {
  const { manifest } = readModel(modelDir);
  const warnings: string[] = [];
  const names = readdirSync(modelDir, { withFileTypes: true })
    .filter((d) => d.isFile() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
  const skipped = names.filter((n) => !FILE_NAME.test(n));
  if (skipped.length) warnings.push(`left out (names a bundle cannot carry): ${skipped.join(', ')}`);
  const kept = names.filter((n) => FILE_NAME.test(n));
  if (kept.length > MAX_BUNDLE_FILES) throw new ForewarnError('FW_ERR_MODEL_BUNDLE', `${modelDir}: more than ${MAX_BUNDLE_FILES} files`);
  if (!kept.includes('golden.json'))
    warnings.push('no golden.json: the agent can only check that the model loads and gives a valid output on its baseline row');
  const files: Record<string, BundleFileEntry> = {};
  const list: Array<{ name: string; size: number; sha256: string }> = [];
  for (const n of kept) {
    const bytes = readFileSync(path.join(modelDir, n));
    const entry = { size: bytes.length, sha256: sha256(bytes), data: bytes.toString('base64') };
    files[n] = entry;
    list.push({ name: n, size: entry.size, sha256: entry.sha256 });
  }
  const signature = sign(null, signedMessage(manifest.name, manifest.version, list), privateKey);
  const bundle: ModelBundle = {
    format: BUNDLE_FORMAT,
    name: manifest.name,
    version: manifest.version,
    files,
    signature: { alg: 'ed25519', keyId: keyIdOf(privateKey), value: signature.toString('base64') },
  };
  const json = JSON.stringify(bundle);
  if (Buffer.byteLength(json) > MAX_BUNDLE_BYTES)
    throw new ForewarnError('FW_ERR_MODEL_BUNDLE', `${modelDir}: the bundle would exceed ${MAX_BUNDLE_BYTES} bytes`);
  return { bundle, json, warnings };
}

const bad = (message: string, details?: string[]) => new ForewarnError('FW_ERR_MODEL_BUNDLE', message, details ? { details } : undefined);

/**
 * Parses a bundle and checks its shape: the format, a model name and version, at most MAX_BUNDLE_FILES flat file
 * names (a path, `..` or a leading dot is rejected: path traversal), sizes, hashes and strict base64. Nothing is
 * trusted yet: `verifyBundle` checks the signature. Throws FW_ERR_MODEL_BUNDLE.
 */
export function parseBundle(raw: Buffer, options: { maxBytes?: number; label?: string } = {}): ModelBundle {
  const max = options.maxBytes ?? MAX_BUNDLE_BYTES;
  const label = options.label ?? 'bundle';
  if (raw.length > max) throw bad(`${label}: ${raw.length} bytes, more than the ${max} a bundle may have`);
  let data: unknown;
  try {
    data = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw bad(`${label}: not a model bundle (not JSON: ${describeError(err)})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw bad(`${label}: not a model bundle (not a JSON object)`);
  const b = data as Record<string, unknown>;
  if (b.format !== BUNDLE_FORMAT) throw bad(`${label}: not a model bundle: format is ${JSON.stringify(b.format)?.slice(0, 60)}, expected ${BUNDLE_FORMAT}`);
  const problems: string[] = [];
  for (const k of Object.keys(b)) if (!ENVELOPE_KEYS.has(k)) problems.push(`${k}: unknown field`);
  if (typeof b.name !== 'string' || !MODEL_NAME.test(b.name)) problems.push('name: must be a model name (lower-case letters, digits, -)');
  if (typeof b.version !== 'string' || !VERSION.test(b.version)) problems.push('version: must be a version like 1.2.3');
  const files = b.files;
  if (typeof files !== 'object' || files === null || Array.isArray(files)) {
    problems.push('files: must be an object of file name → {size, sha256, data}');
  } else {
    const entries = Object.entries(files as Record<string, unknown>);
    if (!entries.length) problems.push('files: empty');
    if (entries.length > MAX_BUNDLE_FILES) problems.push(`files: ${entries.length} files, at most ${MAX_BUNDLE_FILES}`);
    for (const [name, entry] of entries) {
      if (!FILE_NAME.test(name)) {
        problems.push(
          /[/\\]|^\.\.?$|\.\./.test(name) || name.startsWith('.')
            ? `files: ${JSON.stringify(name).slice(0, 140)}: a path, not a file name (path traversal is rejected)`
            : `files: ${JSON.stringify(name).slice(0, 140)}: not a valid file name`,
        );
        continue;
      }
      const e = entry as Partial<BundleFileEntry> | null;
      if (typeof e !== 'object' || e === null) {
        problems.push(`files.${name}: must be {size, sha256, data}`);
        continue;
      }
      const extra = Object.keys(e).filter((k) => k !== 'size' && k !== 'sha256' && k !== 'data');
      if (extra.length) problems.push(`files.${name}: unknown field ${extra.join(', ')}`);
      if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) problems.push(`files.${name}.size: must be a byte count`);
      if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) problems.push(`files.${name}.sha256: must be 64 lower-case hex digits`);
      if (typeof e.data !== 'string' || !BASE64.test(e.data)) problems.push(`files.${name}.data: must be base64`);
    }
    if (!problems.length && !('manifest.json' in (files as object))) problems.push('files: no manifest.json');
  }
  const s = b.signature;
  if (s !== undefined && s !== null) {
    const sig = s as Partial<BundleSignature>;
    if (typeof sig !== 'object' || typeof sig.alg !== 'string' || typeof sig.keyId !== 'string' || typeof sig.value !== 'string') {
      problems.push('signature: must be {alg, keyId, value}');
    } else if (!BASE64.test(sig.value)) {
      problems.push('signature.value: must be base64');
    }
  }
  if (problems.length) throw bad(`${label}: malformed model bundle`, problems.slice(0, 20));
  return data as ModelBundle;
}

/**
 * Checks that the bundle is signed by a trusted key and that no file changed since: unsigned, an unknown key,
 * an altered file, or a signature that does not verify each throw FW_ERR_MODEL_UNTRUSTED. Returns the files.
 */
export function verifyBundle(bundle: ModelBundle, trusted: TrustedKeys, options: { label?: string; bundleSha256?: string } = {}): VerifiedBundle {
  const label = options.label ?? 'bundle';
  const untrusted = (message: string) => new ForewarnError('FW_ERR_MODEL_UNTRUSTED', `${label}: ${message}`);
  if (!trusted.size) throw untrusted('no trusted key is configured (scoring.trustedKeys), so no bundle can be accepted');
  const sig = bundle.signature;
  if (!sig) throw untrusted(`${bundle.name}@${bundle.version} is unsigned; only bundles signed by a trusted key are installed`);
  if (sig.alg !== 'ed25519') throw untrusted(`signature algorithm ${JSON.stringify(sig.alg).slice(0, 40)} is not supported (ed25519 only)`);
  const key = trusted.get(sig.keyId);
  if (!key) throw untrusted(`signed by key ${JSON.stringify(sig.keyId).slice(0, 40)}, which is not among the trusted keys (${[...trusted.keys()].join(', ')})`);
  const files = new Map<string, Buffer>();
  const list: Array<{ name: string; size: number; sha256: string }> = [];
  for (const [name, e] of Object.entries(bundle.files)) {
    const bytes = Buffer.from(e.data, 'base64');
    const actual = sha256(bytes);
    if (bytes.length !== e.size || actual !== e.sha256) {
      throw untrusted(`${name} was altered after signing (${bytes.length} bytes, sha256 ${actual}; signed: ${e.size} bytes, ${e.sha256})`);
    }
    files.set(name, bytes);
    list.push({ name, size: e.size, sha256: e.sha256 });
  }
  let ok = false;
  try {
    ok = verify(null, signedMessage(bundle.name, bundle.version, list), key, Buffer.from(sig.value, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok)
    throw untrusted(
      `the signature of ${bundle.name}@${bundle.version} does not verify with key ${sig.keyId}: the bundle was altered or signed with another key`,
    );
  return { name: bundle.name, version: bundle.version, keyId: sig.keyId, files, bundleSha256: options.bundleSha256 ?? '' };
}

/** Reads, parses and verifies a bundle file (or bytes already received, e.g. over MQTT). */
export function openBundle(source: string | Buffer, trusted: TrustedKeys, options: { maxBytes?: number } = {}): VerifiedBundle {
  const label = typeof source === 'string' ? path.basename(source) : 'bundle';
  let raw: Buffer;
  if (typeof source === 'string') {
    const max = options.maxBytes ?? MAX_BUNDLE_BYTES;
    let size: number;
    try {
      size = statSync(source).size;
    } catch (err) {
      throw bad(`${source}: cannot read: ${describeError(err)}`);
    }
    // Checked before reading: an oversized file is never loaded into memory.
    if (size > max) throw bad(`${label}: ${size} bytes, more than the ${max} a bundle may have`);
    raw = readFileSync(source);
  } else {
    raw = source;
  }
  const bundle = parseBundle(raw, { ...options, label });
  return verifyBundle(bundle, trusted, { label, bundleSha256: sha256(raw) });
}
