import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { installModelBundle, type InstallContext } from '../../../agent/src/model-lifecycle/install-model.js';
import { ModelRegistry } from '../../../agent/src/model-lifecycle/model-registry.js';
import { createBundle, type ModelBundle } from '../../../agent/src/model-lifecycle/model-bundle.js';
import { isForewarnError, type ErrorCode } from '../../../agent/src/core/errors.js';
import type { ModelLifecycleEvent } from '../../../agent/src/contract/topics.js';
import { MODELS, bundleFile, copyModel, machineFailureAt, signingKey, tempDir } from '../../helpers/model-fixtures.js';

const key = signingKey();
const other = signingKey();

function setup(options: Partial<InstallContext> = {}) {
  const registry = new ModelRegistry(path.join(tempDir('fw-data-'), 'models'), MODELS, 3);
  const ctx: InstallContext = { registry, trustedKeys: new Map([[key.keyId, key.publicKey]]), shadowSamples: 200, ...options };
  return { registry, ctx };
}

/** Everything in the registry but its journal and lock: what a rejected bundle must leave as it was. */
function snapshot(registry: ModelRegistry): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (!['events.jsonl', 'events.offset', 'registry.lock'].includes(d.name))
        out.push(`${path.relative(registry.root, p)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
      if (d.isDirectory()) out.push(`${path.relative(registry.root, p)}/`);
    }
  };
  walk(registry.root);
  return out.sort();
}

function journal(registry: ModelRegistry): ModelLifecycleEvent[] {
  const file = path.join(registry.root, 'events.jsonl');
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ModelLifecycleEvent)
    : [];
}

async function rejection(p: Promise<unknown>): Promise<{ code: ErrorCode; message: string; details: readonly string[] }> {
  try {
    await p;
  } catch (err) {
    if (isForewarnError(err)) return { code: err.code, message: err.message, details: err.details };
    throw err;
  }
  throw new Error('expected the install to be rejected');
}

describe('installModelBundle', () => {
  it('installs a re-bundled shipped model as the candidate beside the shipped version, in a private folder', async () => {
    const { registry, ctx } = setup();
    const r = await installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), ctx);
    expect(r).toMatchObject({
      model: 'machine-failure',
      version: '1.1.0',
      keyId: key.keyId,
      outcome: 'candidate',
      currentVersion: '1.0.0',
      superseded: null,
      unchanged: false,
    });
    expect(r.golden).toMatchObject({ rows: 33, tolerance: 1e-5 });
    expect(r.golden!.maxAbsDiff).toBeLessThanOrEqual(1e-5);
    const state = registry.read('machine-failure');
    expect(state).toMatchObject({ current: null, candidate: '1.1.0', previous: [] });
    expect(state.versions.map((v) => v.version)).toEqual(['1.1.0']);
    expect(statSync(r.dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(r.dir, 'model.onnx')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(r.dir, 'model.onnx')).equals(readFileSync(path.join(MODELS, 'machine-failure/model.onnx')))).toBe(true);
    expect(journal(registry)).toEqual([
      expect.objectContaining({
        type: 'model-candidate',
        model: 'machine-failure',
        version: '1.1.0',
        currentVersion: '1.0.0',
        keyId: key.keyId,
        shadowSamples: 200,
      }),
    ]);
    // No staging folder is left behind.
    expect(readdirSync(registry.root).filter((f) => f.startsWith('.staging'))).toEqual([]);
    // The same bundle again (ed25519 signatures are deterministic: the same folder gives the same bytes) changes
    // nothing: a retried remote command is harmless.
    const before = snapshot(registry);
    expect(await installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), ctx)).toMatchObject({
      outcome: 'candidate',
      unchanged: true,
      superseded: null,
    });
    expect(snapshot(registry)).toEqual(before);
    // Another bundle under the same version replaces the waiting candidate; so does a newer one.
    const respun = await installModelBundle(
      bundleFile(
        machineFailureAt('1.1.0', (m) => (m.description = 'rebuilt')),
        key,
      ),
      ctx,
    );
    expect(respun).toMatchObject({ outcome: 'candidate', unchanged: false, superseded: '1.1.0' });
    expect(await installModelBundle(bundleFile(machineFailureAt('1.2.0'), key), ctx)).toMatchObject({ outcome: 'candidate', superseded: '1.1.0' });
    expect(registry.read('machine-failure')).toMatchObject({ candidate: '1.2.0', current: null });
    expect(registry.read('machine-failure').versions.map((v) => v.version)).toEqual(['1.2.0']);
    expect(existsSync(registry.versionDir('machine-failure', '1.1.0'))).toBe(false);
    expect(journal(registry).map((e) => `${e.type} ${'version' in e ? e.version : ''}${e.type === 'model-rollback' ? ` ${e.stage}` : ''}`)).toEqual([
      'model-candidate 1.1.0',
      'model-rollback 1.1.0 superseded',
      'model-candidate 1.1.0',
      'model-rollback 1.1.0 superseded',
      'model-candidate 1.2.0',
    ]);
  });

  it('rejects unsigned, untrusted, tampered, malformed and traversing bundles with the right code, leaving the registry as it was', async () => {
    const { registry, ctx } = setup();
    await installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), ctx);
    const before = snapshot(registry);
    const good = JSON.parse(createBundle(machineFailureAt('1.2.0'), key.privateKey).json) as ModelBundle;
    const dir = tempDir();
    const write = (name: string, b: unknown) => {
      const f = path.join(dir, name);
      writeFileSync(f, typeof b === 'string' ? b : JSON.stringify(b));
      return f;
    };
    const unsigned = structuredClone(good);
    delete unsigned.signature;
    const tampered = structuredClone(good);
    const onnx = Buffer.from(tampered.files['model.onnx']!.data, 'base64');
    onnx[100] = onnx[100]! ^ 1;
    tampered.files['model.onnx']!.data = onnx.toString('base64');
    const traversal = structuredClone(good) as unknown as { files: Record<string, unknown> };
    traversal.files['../../../../tmp/evil.sh'] = traversal.files['MODEL_CARD.md'];
    const cases: Array<[string, string, ErrorCode]> = [
      ['unsigned.fwm', write('unsigned.fwm', unsigned), 'FW_ERR_MODEL_UNTRUSTED'],
      ['untrusted.fwm', bundleFile(machineFailureAt('1.2.0'), other, path.join(dir, 'untrusted.fwm')), 'FW_ERR_MODEL_UNTRUSTED'],
      ['tampered.fwm', write('tampered.fwm', tampered), 'FW_ERR_MODEL_UNTRUSTED'],
      ['garbage.fwm', write('garbage.fwm', 'PK\u0003\u0004 this is a zip, not a bundle'), 'FW_ERR_MODEL_BUNDLE'],
      ['truncated.fwm', write('truncated.fwm', JSON.stringify(good).slice(0, 5000)), 'FW_ERR_MODEL_BUNDLE'],
      ['traversal.fwm', write('traversal.fwm', traversal), 'FW_ERR_MODEL_BUNDLE'],
    ];
    for (const [name, file, expected] of cases) {
      const r = await rejection(installModelBundle(file, ctx));
      expect(r.code, name).toBe(expected);
      expect(snapshot(registry), name).toEqual(before);
    }
    expect((await rejection(installModelBundle(bundleFile(machineFailureAt('1.2.0'), key), { ...ctx, maxBytes: 10_000 }))).code).toBe('FW_ERR_MODEL_BUNDLE');
    expect(existsSync('/tmp/evil.sh')).toBe(false);
    // Each rejection is reported as an event, with the code and what the bundle claimed to be.
    const rejected = journal(registry).filter((e) => e.type === 'model-rejected');
    expect(rejected.map((e) => [e.type === 'model-rejected' && e.bundle, e.type === 'model-rejected' && e.code])).toEqual([
      ...cases.map(([name, , c]) => [name, c]),
      ['machine-failure.fwm', 'FW_ERR_MODEL_BUNDLE'],
    ]);
    expect(rejected[0]).toMatchObject({ model: 'machine-failure', version: '1.2.0', reason: expect.stringContaining('unsigned') });
    expect(rejected[2]).toMatchObject({ reason: expect.stringContaining('model.onnx was altered after signing') });
    expect(readdirSync(registry.root).filter((f) => f.startsWith('.staging'))).toEqual([]);
  });

  it('refuses everything when no key is trusted', async () => {
    const { registry, ctx } = setup({ trustedKeys: new Map() });
    const r = await rejection(installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), ctx));
    expect(r.code).toBe('FW_ERR_MODEL_UNTRUSTED');
    expect(r.message).toContain('no trusted key is configured (scoring.trustedKeys)');
    expect(registry.names()).toEqual([]);
  });

  it('rejects a signed model that fails to load, disagrees with its manifest, or does not reproduce its golden outputs', async () => {
    const { registry, ctx } = setup();
    const cases: Array<[string, string, ErrorCode]> = [
      [
        'not an onnx graph',
        copyModel('machine-failure', { onnx: Buffer.from('definitely not a protobuf graph'), edit: (m) => (m.version = '1.1.0') }),
        'FW_ERR_MODEL_LOAD',
      ],
      ['five features for a six-input graph', machineFailureAt('1.1.0', (m) => m.inputs.features.pop()), 'FW_ERR_MODEL_SIGNATURE'],
      [
        'golden outputs that belong to another model',
        copyModel('machine-failure', {
          edit: (m) => (m.version = '1.1.0'),
          golden: (g) => (g.probabilities = (g.probabilities as number[]).map((p) => 1 - p)),
        }),
        'FW_ERR_MODEL_GOLDEN',
      ],
      [
        'the turbofan graph under this manifest',
        copyModel('machine-failure', { onnx: readFileSync(path.join(MODELS, 'turbofan-rul/model.onnx')), edit: (m) => (m.version = '1.1.0') }),
        'FW_ERR_MODEL_SIGNATURE',
      ],
    ];
    for (const [what, dir, expected] of cases) {
      const r = await rejection(installModelBundle(bundleFile(dir, key), ctx));
      expect(r.code, what).toBe(expected);
      expect(registry.read('machine-failure').versions, what).toEqual([]);
    }
    expect(journal(registry).map((e) => e.type)).toEqual(['model-rejected', 'model-rejected', 'model-rejected', 'model-rejected']);
  });

  it('refuses a version not newer than the one in use unless told to, and promotes a new model at once', async () => {
    const { registry, ctx } = setup();
    const old = await rejection(installModelBundle(bundleFile(machineFailureAt('1.0.0'), key), ctx));
    expect(old.code).toBe('FW_ERR_MODEL_REGISTRY');
    expect(old.message).toContain('not newer than 1.0.0');
    expect(await installModelBundle(bundleFile(machineFailureAt('0.9.0'), key), { ...ctx, allowDowngrade: true })).toMatchObject({
      outcome: 'candidate',
      version: '0.9.0',
    });

    // A model neither shipped nor installed: nothing to shadow it against, so it is in use at once.
    const lathe = copyModel('machine-failure', { edit: (m) => ((m.name = 'lathe-failure'), (m.version = '0.1.0')) });
    const r = await installModelBundle(bundleFile(lathe, key), ctx);
    expect(r).toMatchObject({ model: 'lathe-failure', outcome: 'promoted', currentVersion: null });
    expect(registry.read('lathe-failure')).toMatchObject({ current: '0.1.0', candidate: null, previous: [] });
    expect(registry.currentDir('lathe-failure')).toBe(registry.versionDir('lathe-failure', '0.1.0'));
    expect(journal(registry).at(-1)).toMatchObject({
      type: 'model-promoted',
      model: 'lathe-failure',
      version: '0.1.0',
      previousVersion: null,
      reason: expect.stringContaining('new model'),
    });

    // Shadowing off: promoted at once, the shipped version kept as the one to roll back to.
    const off = setup({ shadowSamples: 0 });
    expect(await installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), off.ctx)).toMatchObject({ outcome: 'promoted', currentVersion: '1.0.0' });
    expect(off.registry.read('machine-failure')).toMatchObject({ current: '1.1.0', previous: [null] });
  });

  it('accepts bytes received over the wire, as a remote command would pass them', async () => {
    const { registry, ctx } = setup();
    const bytes = Buffer.from(createBundle(machineFailureAt('1.1.0'), key.privateKey).json);
    expect(await installModelBundle(bytes, ctx)).toMatchObject({ outcome: 'candidate', version: '1.1.0' });
    expect(registry.read('machine-failure').candidate).toBe('1.1.0');
  });
});
