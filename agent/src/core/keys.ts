import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ForewarnError, describeError } from './errors.js';

/**
 * Ed25519 signing keys: loading the trusted public keys and a signing key, key ids, generating a key pair. Model
 * bundles (model-lifecycle/model-bundle.ts) and signed remote commands (commands/command-signature.ts) use the
 * same keys and the same key ids (docs/model-updates.md, docs/commands.md).
 */

/** A key pair's name: one flat file name, no directories, never `.`/`..`-led. */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export type TrustedKeys = ReadonlyMap<string, KeyObject>;

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** The key id of an ed25519 public (or private) key: sha256 of the public key's DER, first 16 hex digits. */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return sha256(pub.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

function ed25519(key: KeyObject, file: string, want: 'public' | 'private'): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ForewarnError('FW_ERR_MODEL_KEY', `${file}: not an ed25519 key (${key.asymmetricKeyType ?? key.type})`);
  }
  if (key.type !== want) throw new ForewarnError('FW_ERR_MODEL_KEY', `${file}: expected an ed25519 ${want} key`);
  return key;
}

export function loadPrivateKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ForewarnError('FW_ERR_MODEL_KEY', `${file}: cannot read the signing key: ${describeError(err)}`);
  }
  try {
    return ed25519(createPrivateKey(pem), file, 'private');
  } catch (err) {
    if (err instanceof ForewarnError) throw err;
    throw new ForewarnError('FW_ERR_MODEL_KEY', `${file}: not a PEM private key: ${describeError(err)}`);
  }
}

function loadPublicKey(file: string): KeyObject {
  const pem = readFileSync(file, 'utf8');
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ForewarnError(
      'FW_ERR_MODEL_KEY',
      `${file}: is a private key; the agent needs only the public key (the .pub.pem file), and private keys belong on the signing host`,
    );
  }
  try {
    return ed25519(createPublicKey(pem), file, 'public');
  } catch (err) {
    if (err instanceof ForewarnError) throw err;
    throw new ForewarnError('FW_ERR_MODEL_KEY', `${file}: not a PEM public key: ${describeError(err)}`);
  }
}

/**
 * The trusted public keys, by key id, from `scoring.trustedKeys`: PEM files, or directories whose `*.pem` files
 * are all read. Relative paths resolve against the working directory. A key that cannot be used is an error,
 * never silently skipped: an operator who configured it expects it to count.
 */
export function loadTrustedKeys(entries: readonly string[]): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const entry of entries) {
    const at = path.resolve(entry);
    let files: string[];
    try {
      files = statSync(at).isDirectory()
        ? readdirSync(at)
            .filter((f) => f.endsWith('.pem'))
            .sort()
            .map((f) => path.join(at, f))
        : [at];
    } catch (err) {
      throw new ForewarnError('FW_ERR_MODEL_KEY', `scoring.trustedKeys: cannot read ${entry}: ${describeError(err)}`);
    }
    for (const file of files) {
      try {
        const key = loadPublicKey(file);
        keys.set(keyIdOf(key), key);
      } catch (err) {
        if (err instanceof ForewarnError) throw err;
        throw new ForewarnError('FW_ERR_MODEL_KEY', `scoring.trustedKeys: cannot read ${file}: ${describeError(err)}`);
      }
    }
  }
  return keys;
}

/** Writes a fresh ed25519 key pair: `<name>.key.pem` (PKCS#8, 0600) and `<name>.pub.pem` (SPKI). Never overwrites. */
export function generateSigningKey(outDir: string, name = 'forewarn-model'): { privateFile: string; publicFile: string; keyId: string } {
  if (!KEY_NAME.test(name)) throw new ForewarnError('FW_ERR_USAGE', `--name ${name}: letters, digits, '.', '_', '-' only`);
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateFile = path.join(outDir, `${name}.key.pem`);
  const publicFile = path.join(outDir, `${name}.pub.pem`);
  try {
    // 'wx': an existing key is never replaced; a lost private key cannot be recovered, and one overwritten by mistake neither.
    writeFileSync(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new ForewarnError('FW_ERR_MODEL_KEY', `${privateFile}: ${describeError(err)}`);
  }
  try {
    writeFileSync(publicFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
  } catch (err) {
    throw new ForewarnError('FW_ERR_MODEL_KEY', `${publicFile}: ${describeError(err)}`);
  }
  return { privateFile, publicFile, keyId: keyIdOf(publicKey) };
}
