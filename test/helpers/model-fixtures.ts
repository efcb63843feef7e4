import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { keyIdOf } from '../../agent/src/core/keys.js';
import { createBundle } from '../../agent/src/model-lifecycle/model-bundle.js';
import type { ModelManifest } from '../../agent/src/scoring/model-manifest.js';

/** Real model folders and signed bundles built from the shipped models, for the model-update tests. */

export const MODELS = path.resolve(import.meta.dirname, '../../models');

export function tempDir(prefix = 'fw-model-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  privateFile: string;
  publicFile: string;
}

export function signingKey(dir = tempDir('fw-key-')): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  mkdirSync(dir, { recursive: true });
  const privateFile = path.join(dir, 'signer.key.pem');
  const publicFile = path.join(dir, 'signer.pub.pem');
  writeFileSync(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), privateFile, publicFile };
}

/**
 * A copy of a shipped model folder (without __pycache__), with its manifest edited. Replacing the model file
 * (`onnx`) updates the manifest's sha256 so the folder stays self-consistent, as a real (broken) release would be.
 */
export function copyModel(
  name: string,
  options: { edit?: (m: ModelManifest) => void; onnx?: Buffer; golden?: (g: Record<string, unknown>) => void; into?: string } = {},
): string {
  const dir = path.join(options.into ?? tempDir(), name);
  cpSync(path.join(MODELS, name), dir, { recursive: true });
  rmSync(path.join(dir, '__pycache__'), { recursive: true, force: true });
  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as ModelManifest;
  if (options.onnx) {
    writeFileSync(path.join(dir, manifest.file), options.onnx);
    manifest.sha256 = createHash('sha256').update(options.onnx).digest('hex');
  }
  options.edit?.(manifest);
  writeFileSync(manifestFile, JSON.stringify(manifest, null, 2));
  if (options.golden) {
    const g = JSON.parse(readFileSync(path.join(dir, 'golden.json'), 'utf8')) as Record<string, unknown>;
    options.golden(g);
    writeFileSync(path.join(dir, 'golden.json'), JSON.stringify(g));
  }
  return dir;
}

/** Signs a model folder into a bundle file; returns the file. */
export function bundleFile(modelDir: string, key: SigningKey, file = path.join(tempDir('fw-bundle-'), `${path.basename(modelDir)}.fwm`)): string {
  writeFileSync(file, createBundle(modelDir, key.privateKey).json);
  return file;
}

/** machine-failure at another version: the shipped graph, so it agrees with the shipped model exactly. */
export function machineFailureAt(version: string, edit?: (m: ModelManifest) => void): string {
  return copyModel('machine-failure', {
    edit: (m) => {
      m.version = version;
      edit?.(m);
    },
  });
}

/** Real rows of the AI4I holdout (machine-failure's golden inputs) as readings, healthy and failing mixed. */
export function machineReadings(asset: string): Array<{ ts: number; source: string; asset: string; metrics: Record<string, number> }> {
  const golden = JSON.parse(readFileSync(path.join(MODELS, 'machine-failure', 'golden.json'), 'utf8')) as { inputs: number[][] };
  const names = ['product_type', 'air_temperature', 'process_temperature', 'rotational_speed', 'torque', 'tool_wear'];
  return golden.inputs.map((row, i) => ({ ts: 1_000 + i, source: 'test', asset, metrics: Object.fromEntries(names.map((n, k) => [n, row[k]!])) }));
}
