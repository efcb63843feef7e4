import { createHash, sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BUNDLE_FORMAT,
  createBundle,
  openBundle,
  parseBundle,
  signedMessage,
  verifyBundle,
  type ModelBundle,
} from '../../../agent/src/model-lifecycle/model-bundle.js';
import { generateSigningKey, keyIdOf, loadPrivateKey, loadTrustedKeys } from '../../../agent/src/core/keys.js';
import { isForewarnError, type ErrorCode } from '../../../agent/src/core/errors.js';
import { machineFailureAt, signingKey, tempDir } from '../../helpers/model-fixtures.js';

const key = signingKey();
const other = signingKey();
const trusted = new Map([[key.keyId, key.publicKey]]);
const modelDir = machineFailureAt('1.1.0');
const signed = () => JSON.parse(createBundle(modelDir, key.privateKey).json) as ModelBundle;
const bytes = (b: unknown) => Buffer.from(JSON.stringify(b));

function code(fn: () => unknown): ErrorCode | 'none' {
  try {
    fn();
    return 'none';
  } catch (err) {
    if (isForewarnError(err)) return err.code;
    throw err;
  }
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

/** Re-signs a bundle after changing it, as someone holding the key would. */
function resign(b: ModelBundle, k = key): ModelBundle {
  const list = Object.entries(b.files).map(([name, f]) => ({ name, size: f.size, sha256: f.sha256 }));
  b.signature = { alg: 'ed25519', keyId: keyIdOf(k.publicKey), value: sign(null, signedMessage(b.name, b.version, list), k.privateKey).toString('base64') };
  return b;
}

describe('model bundles', () => {
  it('round trip: a bundle built from a model folder verifies and gives back every file byte for byte', () => {
    const { bundle, warnings } = createBundle(modelDir, key.privateKey);
    expect(warnings).toEqual([]);
    expect(bundle).toMatchObject({ format: BUNDLE_FORMAT, name: 'machine-failure', version: '1.1.0', signature: { alg: 'ed25519', keyId: key.keyId } });
    expect(Object.keys(bundle.files).sort()).toEqual(['MODEL_CARD.md', 'golden.json', 'manifest.json', 'model.onnx', 'train.py']);
    const v = verifyBundle(parseBundle(bytes(bundle)), trusted);
    expect(v).toMatchObject({ name: 'machine-failure', version: '1.1.0', keyId: key.keyId });
    for (const [name, data] of v.files) expect(data.equals(readFileSync(path.join(modelDir, name))), name).toBe(true);
  });

  it('signs exactly the documented message: compact JSON of format, name, version and sorted [name, size, sha256]', () => {
    const b = signed();
    const files = Object.entries(b.files)
      .map(([n, f]) => [n, f.size, f.sha256] as const)
      .sort((x, y) => (x[0] < y[0] ? -1 : 1));
    // What a signer in another language builds (Python: json.dumps(x, separators=(",", ":"))).
    const expected = `["forewarn-model-bundle/1","machine-failure","1.1.0",[${files.map(([n, s, h]) => `["${n}",${s},"${h}"]`).join(',')}]]`;
    expect(
      signedMessage(
        b.name,
        b.version,
        Object.entries(b.files).map(([name, f]) => ({ name, ...f })),
      ).toString(),
    ).toBe(expected);
  });

  it('rejects an unsigned bundle, and one signed by a key it does not trust', () => {
    const unsigned = signed();
    delete unsigned.signature;
    expect(code(() => verifyBundle(parseBundle(bytes(unsigned)), trusted))).toBe('FW_ERR_MODEL_UNTRUSTED');
    expect(message(() => verifyBundle(parseBundle(bytes(unsigned)), trusted))).toContain('unsigned');
    const foreign = resign(signed(), other);
    expect(code(() => verifyBundle(foreign, trusted))).toBe('FW_ERR_MODEL_UNTRUSTED');
    expect(message(() => verifyBundle(foreign, trusted))).toContain(`signed by key "${other.keyId}", which is not among the trusted keys`);
    // The right key id with another key's signature: the signature does not verify.
    const forged = resign(signed(), other);
    forged.signature!.keyId = key.keyId;
    expect(message(() => verifyBundle(forged, trusted))).toContain('does not verify');
    // And with no key trusted at all, nothing is accepted.
    expect(message(() => verifyBundle(signed(), new Map()))).toContain('no trusted key is configured');
  });

  it('rejects a tampered model file, a tampered manifest, and a changed name or version', () => {
    const model = signed();
    const onnx = Buffer.from(model.files['model.onnx']!.data, 'base64');
    onnx[onnx.length - 10] = onnx[onnx.length - 10]! ^ 0xff;
    model.files['model.onnx']!.data = onnx.toString('base64');
    expect(message(() => verifyBundle(model, trusted))).toContain('model.onnx was altered after signing');

    // The manifest changed and its hash updated to match: the signature no longer covers it.
    const manifest = signed();
    const m = JSON.parse(Buffer.from(manifest.files['manifest.json']!.data, 'base64').toString()) as { outputs: { threshold: number } };
    m.outputs.threshold = 0.99;
    const text = Buffer.from(JSON.stringify(m));
    manifest.files['manifest.json'] = { size: text.length, sha256: createHash('sha256').update(text).digest('hex'), data: text.toString('base64') };
    expect(code(() => verifyBundle(manifest, trusted))).toBe('FW_ERR_MODEL_UNTRUSTED');
    expect(message(() => verifyBundle(manifest, trusted))).toContain('does not verify');

    const renamed = signed();
    renamed.version = '9.9.9';
    expect(message(() => verifyBundle(renamed, trusted))).toContain('does not verify');
    // A file added after signing.
    const extra = signed();
    extra.files['extra.txt'] = { size: 1, sha256: createHash('sha256').update('x').digest('hex'), data: Buffer.from('x').toString('base64') };
    expect(message(() => verifyBundle(extra, trusted))).toContain('does not verify');
  });

  it('rejects garbage, truncated and oversized files, and file names that are paths', () => {
    const text = createBundle(modelDir, key.privateKey).json;
    expect(code(() => parseBundle(Buffer.from('not json at all')))).toBe('FW_ERR_MODEL_BUNDLE');
    expect(code(() => parseBundle(Buffer.from(text.slice(0, text.length / 2))))).toBe('FW_ERR_MODEL_BUNDLE');
    expect(code(() => parseBundle(Buffer.from('{"format":"something-else"}')))).toBe('FW_ERR_MODEL_BUNDLE');
    expect(code(() => parseBundle(Buffer.from('[1,2]')))).toBe('FW_ERR_MODEL_BUNDLE');
    expect(message(() => parseBundle(Buffer.from(text), { maxBytes: 1000 }))).toMatch(/more than the 1000 a bundle may have/);
    const dir = tempDir();
    const big = path.join(dir, 'big.fwm');
    writeFileSync(big, text);
    expect(code(() => openBundle(big, trusted, { maxBytes: 1000 }))).toBe('FW_ERR_MODEL_BUNDLE');

    for (const evil of ['../../etc/cron.d/x', '/etc/passwd', 'sub/dir.txt', '..', '.hidden', 'a\\b']) {
      const b = signed() as unknown as { files: Record<string, unknown> };
      b.files[evil] = b.files['MODEL_CARD.md'];
      expect(
        code(() => parseBundle(bytes(b))),
        evil,
      ).toBe('FW_ERR_MODEL_BUNDLE');
    }
    const b = signed() as unknown as { files: Record<string, unknown> };
    b.files['../model.onnx'] = b.files['model.onnx'];
    expect(message(() => parseBundle(bytes(b)))).toContain('malformed model bundle');
    try {
      parseBundle(bytes(b));
    } catch (err) {
      expect((err as { details: string[] }).details.join('\n')).toContain('path traversal is rejected');
    }
    const badData = signed();
    badData.files['model.onnx']!.data = '!!!not base64!!!';
    expect(code(() => parseBundle(bytes(badData)))).toBe('FW_ERR_MODEL_BUNDLE');
    const unknown = { ...signed(), createdBy: 'someone' };
    expect(code(() => parseBundle(bytes(unknown)))).toBe('FW_ERR_MODEL_BUNDLE');
    const noManifest = signed();
    delete noManifest.files['manifest.json'];
    expect(message(() => parseBundle(bytes(noManifest)))).toContain('malformed');
  });

  it('keygen writes a private key only its owner can read, never overwrites, and trusted keys load from files and directories', () => {
    const dir = path.join(tempDir(), 'keys');
    const k = generateSigningKey(dir, 'centre');
    expect(statSync(k.privateFile).mode & 0o777).toBe(0o600);
    expect(existsSync(k.publicFile)).toBe(true);
    expect(keyIdOf(loadPrivateKey(k.privateFile))).toBe(k.keyId);
    expect(k.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(code(() => generateSigningKey(dir, 'centre'))).toBe('FW_ERR_MODEL_KEY');

    const pubs = path.join(tempDir(), 'trusted');
    mkdirSync(pubs);
    writeFileSync(path.join(pubs, 'a.pem'), readFileSync(k.publicFile));
    writeFileSync(path.join(pubs, 'b.pem'), readFileSync(key.publicFile));
    writeFileSync(path.join(pubs, 'README.txt'), 'not a key');
    expect([...loadTrustedKeys([pubs]).keys()].sort()).toEqual([k.keyId, key.keyId].sort());
    expect([...loadTrustedKeys([k.publicFile]).keys()]).toEqual([k.keyId]);
    // A private key configured as trusted, a missing file, a key of another type: errors, not silently skipped.
    expect(message(() => loadTrustedKeys([k.privateFile]))).toContain('is a private key');
    expect(code(() => loadTrustedKeys([path.join(pubs, 'missing.pem')]))).toBe('FW_ERR_MODEL_KEY');
    writeFileSync(path.join(pubs, 'c.pem'), 'garbage');
    expect(code(() => loadTrustedKeys([pubs]))).toBe('FW_ERR_MODEL_KEY');
    expect(code(() => loadPrivateKey(k.publicFile))).toBe('FW_ERR_MODEL_KEY');
  });
});
