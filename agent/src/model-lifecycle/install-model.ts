import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ForewarnError, describeError, isForewarnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { OnnxModel } from '../scoring/onnx-model.js';
import type { TrustedKeys } from '../core/keys.js';
import { openBundle, parseBundle, type VerifiedBundle } from './model-bundle.js';
import type { ModelRegistry } from './model-registry.js';

/**
 * Installs a signed model bundle (docs/model-updates.md): verify → stage → load → golden and output checks →
 * candidate (or current, for a model with no version in use). The CLI (`forewarn model install`) and a remote
 * command call the same function; the running agent then shadow-scores the candidate and promotes it or rolls
 * it back. A bundle refused at any step leaves the registry's models as they were, and a `model-rejected`
 * event says why.
 */

export interface InstallContext {
  registry: ModelRegistry;
  trustedKeys: TrustedKeys;
  /** scoring.shadow.samples: 0 promotes at once, without shadowing. */
  shadowSamples: number;
  threads?: number;
  /** Install a version not newer than the one in use. */
  allowDowngrade?: boolean;
  /** Largest bundle accepted (default MAX_BUNDLE_BYTES). */
  maxBytes?: number;
  log?: Logger;
}

export interface InstallResult {
  model: string;
  version: string;
  keyId: string;
  /** `candidate`: waits for the agent to shadow it; `promoted`: in use now (a new model, or shadowing off). */
  outcome: 'candidate' | 'promoted';
  /** The version scoring before (installed or shipped); null when none. */
  currentVersion: string | null;
  /** A candidate that was still waiting and was replaced by this one. */
  superseded: string | null;
  /** The same bundle was already installed (candidate or current): nothing changed. */
  unchanged: boolean;
  dir: string;
  /** What the golden check compared. */
  golden: { rows: number; maxAbsDiff: number; tolerance: number } | null;
}

interface Golden {
  inputs: unknown[];
  tolerance?: number;
  [k: string]: unknown;
}

const invalidOutput = (kind: string, x: number) => !Number.isFinite(x) || (kind === 'probability' && (x < 0 || x > 1));

/**
 * Runs the model on its golden inputs (golden.json, recorded by its training recipe) and compares with the
 * recorded outputs: the first top-level array of numbers as long as `inputs` (`probabilities`, `rul`, …),
 * within `tolerance`. Inputs may be rows or windows; `null` stands for a missing value (NaN). Without golden.json,
 * the baseline row (each feature's baseline) must give a valid output.
 */
export async function checkGolden(model: OnnxModel, dir: string): Promise<InstallResult['golden']> {
  const kind = model.manifest.outputs.kind;
  const file = path.join(dir, 'golden.json');
  if (!existsSync(file)) {
    const width = model.width;
    const row = new Float32Array(model.steps * width);
    for (let t = 0; t < model.steps; t++) {
      model.manifest.inputs.features.forEach((f, i) => (row[t * width + i] = f.baseline ?? (f.range ? (f.range[0] + f.range[1]) / 2 : 0)));
    }
    const [score] = await model.run(row, 1);
    if (score === undefined || invalidOutput(kind, score)) {
      throw new ForewarnError('FW_ERR_MODEL_OUTPUT', `${model.name}@${model.manifest.version}: invalid output ${score} on its baseline input`);
    }
    return null;
  }
  const fail = (message: string, details?: string[]) =>
    new ForewarnError('FW_ERR_MODEL_GOLDEN', `${model.name}@${model.manifest.version}: golden.json: ${message}`, details ? { details } : undefined);
  let golden: Golden;
  try {
    golden = JSON.parse(readFileSync(file, 'utf8')) as Golden;
  } catch (err) {
    throw fail(describeError(err));
  }
  if (!golden || !Array.isArray(golden.inputs) || !golden.inputs.length) throw fail('no inputs');
  const rows = golden.inputs.length;
  const expectedKey = Object.keys(golden).find(
    (k) =>
      k !== 'inputs' && Array.isArray(golden[k]) && (golden[k] as unknown[]).length === rows && (golden[k] as unknown[]).every((x) => typeof x === 'number'),
  );
  if (!expectedKey) throw fail(`no array of ${rows} expected outputs beside its ${rows} inputs`);
  const expected = golden[expectedKey] as number[];
  const tolerance = typeof golden.tolerance === 'number' && golden.tolerance >= 0 ? golden.tolerance : 1e-4;
  const flat = (golden.inputs as unknown[]).flat(Infinity as 1);
  const size = rows * model.steps * model.width;
  if (flat.length !== size || flat.some((x) => x !== null && typeof x !== 'number')) {
    throw fail(`inputs must be ${rows} × ${model.steps > 1 ? `${model.steps} × ` : ''}${model.width} numbers (null for missing), got ${flat.length} values`);
  }
  const data = Float32Array.from(flat as Array<number | null>, (x) => (x === null ? Number.NaN : x));
  const out = await model.run(data, rows);
  const problems: string[] = [];
  let maxAbsDiff = 0;
  out.forEach((score, i) => {
    if (invalidOutput(kind, score)) {
      problems.push(`row ${i}: invalid output ${score}${kind === 'probability' ? ' (not a probability)' : ''}`);
      return;
    }
    const d = Math.abs(score - expected[i]!);
    maxAbsDiff = Math.max(maxAbsDiff, d);
    if (d > tolerance) problems.push(`row ${i}: ${score}, recorded ${expected[i]} (|Δ| ${d.toPrecision(3)} > ${tolerance})`);
  });
  if (problems.length) {
    const invalid = problems.some((p) => p.includes('invalid output'));
    throw invalid
      ? new ForewarnError('FW_ERR_MODEL_OUTPUT', `${model.name}@${model.manifest.version}: invalid outputs on its golden inputs`, {
          details: problems.slice(0, 10),
        })
      : fail(`${problems.length} of ${rows} outputs differ from the recorded ${expectedKey}`, problems.slice(0, 10));
  }
  return { rows, maxAbsDiff: Number(maxAbsDiff.toPrecision(3)), tolerance };
}

/** What a bundle that was refused claims to be, for the event (unverified). */
function claimed(source: string | Buffer): { model?: string; version?: string } {
  try {
    const b = parseBundle(typeof source === 'string' ? readFileSync(source) : source);
    return { model: b.name, version: b.version };
  } catch {
    return {};
  }
}

export async function installModelBundle(source: string | Buffer, ctx: InstallContext): Promise<InstallResult> {
  const label = typeof source === 'string' ? path.basename(source) : 'bundle';
  let staged: string | null = null;
  let verified: VerifiedBundle | null = null;
  try {
    if (!ctx.trustedKeys.size) {
      throw new ForewarnError(
        'FW_ERR_MODEL_UNTRUSTED',
        `${label}: no trusted key is configured (scoring.trustedKeys), so no bundle can be installed; add the public key of the signer (forewarn model keygen writes one)`,
      );
    }
    verified = openBundle(source, ctx.trustedKeys, ctx.maxBytes === undefined ? {} : { maxBytes: ctx.maxBytes });
    const { name, version } = verified;
    staged = ctx.registry.stagingDir();
    for (const [file, bytes] of verified.files) writeFileSync(path.join(staged, file), bytes, { mode: 0o600 });
    // The same checks the agent makes when it loads a model: manifest schema, sha256, graph vs manifest, a warm-up run.
    const model = await OnnxModel.load(staged, { threads: ctx.threads ?? 1 });
    let golden: InstallResult['golden'];
    try {
      const m = model.manifest;
      if (m.name !== name || m.version !== version) {
        throw new ForewarnError('FW_ERR_MODEL_BUNDLE', `${label}: the bundle says ${name}@${version}, its manifest ${m.name}@${m.version}`);
      }
      golden = await checkGolden(model, staged);
    } finally {
      await model.release().catch(() => undefined);
    }
    const r = ctx.registry.addVersion(
      name,
      version,
      staged,
      { keyId: verified.keyId, bundleSha256: verified.bundleSha256, shadowSamples: ctx.shadowSamples },
      { allowDowngrade: ctx.allowDowngrade === true, promote: ctx.shadowSamples === 0 },
    );
    staged = null;
    ctx.log?.info(
      { model: name, version, outcome: r.outcome, current: r.currentVersion, keyId: verified.keyId, unchanged: r.unchanged || undefined },
      r.unchanged ? 'model bundle already installed' : r.outcome === 'candidate' ? 'model installed as candidate' : 'model installed and promoted',
    );
    return {
      model: name,
      version,
      keyId: verified.keyId,
      outcome: r.outcome,
      currentVersion: r.currentVersion,
      superseded: r.superseded,
      unchanged: r.unchanged,
      dir: ctx.registry.versionDir(name, version),
      golden,
    };
  } catch (err) {
    const code = isForewarnError(err) ? err.code : 'FW_ERR_MODEL_LOAD';
    const reason = [describeError(err), ...(isForewarnError(err) ? err.details.slice(0, 5) : [])].join('; ');
    const who = verified ? { model: verified.name, version: verified.version } : claimed(source);
    try {
      ctx.registry.recordEvent({ ts: Date.now(), type: 'model-rejected', bundle: label.slice(0, 200), ...who, code, reason: reason.slice(0, 2000) });
    } catch (journalErr) {
      ctx.log?.warn({ err: describeError(journalErr) }, 'could not record the rejected bundle');
    }
    ctx.log?.error({ code, err: describeError(err), details: isForewarnError(err) ? err.details : undefined, bundle: label, ...who }, 'model bundle rejected');
    throw err;
  } finally {
    if (staged) rmSync(staged, { recursive: true, force: true });
  }
}
