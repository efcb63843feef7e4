import type * as Ort from 'onnxruntime-node';
import { ForewarnError, describeError } from '../core/errors.js';
import { readModel, type ModelManifest } from './model-manifest.js';

/**
 * onnxruntime is imported on the first model load, not with this module: its native library and runtime take
 * 15–25 MiB, which an agent with no model bound to any asset never needs.
 */
let runtime: Promise<typeof Ort> | null = null;
function onnxruntime(): Promise<typeof Ort> {
  if (!runtime) {
    optOutOfRuntimeTelemetry(); // read by the runtime once, as it initialises on import
    runtime = import('onnxruntime-node');
  }
  return runtime;
}

/**
 * onnxruntime's own telemetry switches, 1.30's first and later releases' second. Since 1.29 its Linux builds
 * collect telemetry for Microsoft by default: a device id and an event cache (SQLite) under
 * `~/.cache/Microsoft/DeveloperTools/.onnxruntime`, written as models load and run, uploaded when a network is
 * there. An edge agent must neither report to a third party nor write flash unasked, so both are set to 1 unless
 * the operator set either. The runtime reads them once, when it initialises: before the import.
 */
export const ORT_TELEMETRY_SWITCHES = ['ORT_DISABLE_TELEMETRY', 'ORT_TELEMETRY_DISABLED'] as const;

export function optOutOfRuntimeTelemetry(env: NodeJS.ProcessEnv = process.env): void {
  if (ORT_TELEMETRY_SWITCHES.some((name) => env[name] !== undefined)) return;
  for (const name of ORT_TELEMETRY_SWITCHES) env[name] = '1';
}

/**
 * One loaded model: a checked manifest and an onnxruntime session whose input and output names and widths
 * agree with it. `run` takes a row-major batch of feature vectors and returns one score per row.
 */
export class OnnxModel {
  private constructor(
    readonly manifest: ModelManifest,
    readonly file: string,
    private readonly session: Ort.InferenceSession,
    private readonly ort: typeof Ort,
  ) {}

  static async load(dir: string, options: { threads?: number } = {}): Promise<OnnxModel> {
    const { manifest, bytes, file } = readModel(dir);
    let session: Ort.InferenceSession;
    let ort: typeof Ort;
    try {
      ort = await onnxruntime();
    } catch (err) {
      throw new ForewarnError('FW_ERR_MODEL_LOAD', `onnxruntime-node: ${describeError(err)}`, { cause: err });
    }
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: options.threads ?? 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new ForewarnError('FW_ERR_MODEL_LOAD', `${file}: ${describeError(err)}`, { cause: err });
    }
    const problems: string[] = [];
    if (!session.inputNames.includes(manifest.inputs.tensor)) {
      problems.push(`inputs.tensor: the model has no input ${manifest.inputs.tensor} (it has ${session.inputNames.join(', ')})`);
    }
    if (!session.outputNames.includes(manifest.outputs.tensor)) {
      problems.push(`outputs.tensor: the model has no output ${manifest.outputs.tensor} (it has ${session.outputNames.join(', ')})`);
    }
    const meta = session.inputMetadata?.find((m) => m.name === manifest.inputs.tensor);
    if (meta && meta.isTensor) {
      const width = meta.shape[meta.shape.length - 1];
      if (typeof width === 'number' && width !== manifest.inputs.features.length) {
        problems.push(`inputs.features: the model takes ${width} features, the manifest lists ${manifest.inputs.features.length}`);
      }
      if (meta.type !== 'float32') problems.push(`inputs.dtype: the model takes ${meta.type}`);
      const rank = manifest.inputs.window ? 3 : 2;
      if (meta.shape.length !== rank) {
        problems.push(
          `inputs: the model takes a rank-${meta.shape.length} tensor, the manifest describes rank ${rank}${manifest.inputs.window ? ' (a window)' : ''}`,
        );
      } else if (manifest.inputs.window && typeof meta.shape[1] === 'number' && meta.shape[1] !== manifest.inputs.window.length) {
        problems.push(`inputs.window.length: the model takes windows of ${meta.shape[1]}, the manifest says ${manifest.inputs.window.length}`);
      }
    }
    if (problems.length) {
      await session.release();
      throw new ForewarnError('FW_ERR_MODEL_SIGNATURE', `${file}: disagrees with its manifest`, { details: problems });
    }
    const model = new OnnxModel(manifest, file, session, ort);
    // Warm-up: the first run allocates; pay it at load, not on the first reading.
    const width = manifest.inputs.features.length;
    const warm = new Float32Array(model.steps * width);
    for (let t = 0; t < model.steps; t++) {
      manifest.inputs.features.forEach((f, i) => (warm[t * width + i] = f.baseline ?? (f.range ? (f.range[0] + f.range[1]) / 2 : 0)));
    }
    await model.run(warm, 1);
    return model;
  }

  get name(): string {
    return this.manifest.name;
  }

  get width(): number {
    return this.manifest.inputs.features.length;
  }

  /** Readings per sample: the window length of a sequence model, else 1. */
  get steps(): number {
    return this.manifest.inputs.window?.length ?? 1;
  }

  /** Scores `rows` samples laid out row-major in `data`: [rows, width], or [rows, steps, width] for sequence models. */
  async run(data: Float32Array, rows: number): Promise<Float32Array> {
    const dims = this.manifest.inputs.window ? [rows, this.steps, this.width] : [rows, this.width];
    const input = new this.ort.Tensor('float32', data, dims);
    const out = await this.session.run({ [this.manifest.inputs.tensor]: input }, [this.manifest.outputs.tensor]);
    const tensor = out[this.manifest.outputs.tensor];
    if (!tensor || !(tensor.data instanceof Float32Array) || tensor.data.length !== rows) {
      throw new ForewarnError(
        'FW_ERR_MODEL_OUTPUT',
        `${this.name}: expected ${rows} float32 scores from ${this.manifest.outputs.tensor}, got ${tensor ? `${tensor.type} × ${tensor.data.length}` : 'nothing'}`,
      );
    }
    return tensor.data;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Encodes a value the manifest declares categorical (string → index); numbers pass through. */
export function encodeFeature(value: unknown, categories?: string[]): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && categories) {
    const i = categories.indexOf(value.trim());
    return i >= 0 ? i : Number.NaN;
  }
  return typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
}
