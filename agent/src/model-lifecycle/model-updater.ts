import path from 'node:path';
import type { Logger } from '../core/logger.js';
import type { BindingConfig } from '../config/load-config.js';
import type { ModelLifecycleEvent } from '../contract/topics.js';
import { describeError, isForewarnError } from '../core/errors.js';
import type { Component } from '../core/types.js';
import { OnnxModel } from '../scoring/onnx-model.js';
import type { ModelRegistry, ModelState } from './model-registry.js';
import type { RiskScorer } from '../scoring/risk-scorer.js';
import { ShadowEvaluator, type ShadowLimits, type ShadowVerdict } from './shadow-evaluator.js';
import { installModelBundle, type InstallResult } from './install-model.js';
import { loadTrustedKeys } from '../core/keys.js';
import { everyOnGrid, type GridInterval } from '../core/grid.js';

/**
 * The running agent's side of safe model updates (docs/model-updates.md). It follows the model registry (polled,
 * and checked at once after an install made in this process) and acts on it:
 *
 * - the current version changed (a promotion elsewhere, `forewarn model rollback`): load it and swap it in; one
 *   that fails to load is rolled back to the version before it;
 * - a candidate appeared: load it and shadow-score it beside the current model on the same readings; the
 *   ShadowEvaluator decides, and the candidate is promoted (swapped in) or rolled back (discarded);
 * - lifecycle events in the registry's journal (from the CLI or from here) are committed to the outbox's
 *   `events` stream.
 */

export interface ModelUpdaterOptions {
  registry: ModelRegistry;
  scorer: RiskScorer;
  bindings: readonly BindingConfig[];
  shadow: ShadowLimits;
  /** How often the registry is checked for changes made by other processes. */
  pollIntervalMs: number;
  threads: number;
  /** scoring.trustedKeys, for installs made through this agent (`install`). */
  trustedKeys: readonly string[];
  /** Commits lifecycle events durably (the outbox's `events` stream); throws to keep them for the next try. */
  publish: (events: ModelLifecycleEvent[]) => void;
  /** The models that score changed: republish what depends on them (the status). */
  onModelsChanged?: () => void;
}

interface Shadowing {
  version: string;
  model: OnnxModel;
  evaluator: ShadowEvaluator;
}

export class ModelUpdater implements Component {
  readonly name = 'model-updates';
  private timer: GridInterval | null = null;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly shadows = new Map<string, Shadowing>();
  /** Versions that failed to load as current, not tried again while they stay current. */
  private readonly failed = new Set<string>();
  private lastDrainError = 0;

  constructor(
    private readonly options: ModelUpdaterOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.check();
    this.timer = everyOnGrid(() => void this.check(), this.options.pollIntervalMs).unref();
  }

  /** Looks at the registry now. Checks run one at a time. */
  check(): Promise<void> {
    return this.enqueue(() => this.reconcile());
  }

  /**
   * Installs a bundle through this agent (what a remote command calls): the same checks as
   * `forewarn model install`, then shadowing starts at once instead of at the next poll.
   */
  async install(source: string | Buffer, options: { allowDowngrade?: boolean } = {}): Promise<InstallResult> {
    try {
      return await installModelBundle(source, {
        registry: this.options.registry,
        trustedKeys: loadTrustedKeys(this.options.trustedKeys),
        shadowSamples: this.options.shadow.samples,
        threads: this.options.threads,
        allowDowngrade: options.allowDowngrade === true,
        log: this.log,
      });
    } finally {
      await this.check();
    }
  }

  /** What is being shadowed now, for the status and tests. */
  shadowing(): Array<{ model: string; version: string; progress: ReturnType<ShadowEvaluator['summary']> }> {
    return [...this.shadows].map(([model, s]) => ({ model, version: s.version, progress: s.evaluator.summary() }));
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.chain
      .then(step)
      .catch((err) => this.log.error({ err: describeError(err), code: isForewarnError(err) ? err.code : undefined }, 'model update check failed'));
    this.chain = next;
    return next;
  }

  private bound(name: string): boolean {
    return this.options.bindings.some((b) => b.model === name);
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    this.drain();
    const names = new Set([...this.options.bindings.map((b) => b.model), ...this.options.registry.names()]);
    for (const name of names) {
      try {
        await this.reconcileCurrent(name);
        await this.reconcileCandidate(name, this.options.registry.read(name));
      } catch (err) {
        this.log.error({ model: name, err: describeError(err), code: isForewarnError(err) ? err.code : undefined }, 'model update check failed');
      }
    }
    this.drain();
  }

  /** Loads the version the registry says is current, when the scorer runs another. */
  private async reconcileCurrent(name: string): Promise<void> {
    if (!this.bound(name)) return;
    const { registry, scorer } = this.options;
    const state = registry.read(name);
    const desired = registry.currentDir(name, state);
    if (!desired) return;
    const loaded = scorer.current(name);
    if (loaded && path.dirname(loaded.file) === desired) return;
    // Not loaded yet, and it will load this version on the first reading of its assets: nothing to do now.
    if (!loaded && scorer.waitsToLoad(name, desired)) return;
    const key = `${desired}@${state.versions.find((v) => v.version === state.current)?.installedAt ?? 'shipped'}`;
    if (this.failed.has(key)) return;
    let model: OnnxModel;
    try {
      model = await OnnxModel.load(desired, { threads: this.options.threads });
    } catch (err) {
      this.failed.add(key);
      const reason = `failed to load: ${describeError(err)}`;
      this.log.error(
        { model: name, version: state.current ?? 'shipped', code: isForewarnError(err) ? err.code : undefined, err: describeError(err), dir: desired },
        'model version failed to load',
      );
      if (state.current === null) return;
      try {
        const r = registry.rollback(name, 'load', reason, state.current);
        this.log.warn({ model: name, version: r.from, restored: r.to }, 'model version rolled back: it failed to load');
      } catch (rollbackErr) {
        this.log.error({ model: name, err: describeError(rollbackErr) }, 'could not roll the model back');
        return;
      }
      await this.reconcileCurrent(name);
      return;
    }
    await scorer.swapModel(name, model);
    this.log.info({ model: name, version: model.manifest.version, dir: desired }, 'model version in use changed');
    this.options.onModelsChanged?.();
  }

  /** Starts shadowing a new candidate, or stops shadowing one that is no longer the candidate. */
  private async reconcileCandidate(name: string, state: ModelState): Promise<void> {
    const { registry, scorer } = this.options;
    const active = this.shadows.get(name);
    if (active && active.version !== state.candidate) {
      // Superseded by a newer candidate, or discarded by a rollback, elsewhere.
      this.shadows.delete(name);
      await scorer.unshadow(name);
      await active.model.release().catch(() => undefined);
      this.log.info({ model: name, version: active.version }, 'shadowing stopped: no longer the candidate');
    }
    if (!state.candidate || this.shadows.has(name)) return;
    const version = state.candidate;
    let model: OnnxModel;
    try {
      model = await OnnxModel.load(registry.versionDir(name, version), { threads: this.options.threads });
    } catch (err) {
      const reason = `failed to load: ${describeError(err)}`;
      registry.discardCandidate(name, version, 'load', reason);
      this.log.error(
        { model: name, version, code: isForewarnError(err) ? err.code : undefined, err: describeError(err) },
        'candidate model rolled back: it failed to load',
      );
      return;
    }
    // The candidate is judged against the current model: load it now if it waits for its first reading.
    await scorer.loadNow(name);
    const current = scorer.current(name);
    if (!current || this.options.shadow.samples === 0) {
      const reason = !this.bound(name)
        ? 'not bound to any asset on this agent: nothing to shadow it against'
        : !current
          ? 'no current model is loaded to shadow it against'
          : 'shadowing is off (scoring.shadow.samples = 0)';
      const promoted = registry.promote(name, version, reason);
      if (promoted && this.bound(name)) {
        await scorer.swapModel(name, model);
        this.options.onModelsChanged?.();
      } else {
        await model.release().catch(() => undefined);
      }
      if (promoted) this.log.info({ model: name, version, reason }, 'candidate model promoted without shadowing');
      return;
    }
    const kind = current.manifest.outputs.kind;
    if (model.manifest.outputs.kind !== kind) {
      registry.discardCandidate(name, version, 'shadow', `its output is ${model.manifest.outputs.kind}, the current model's ${kind}: not comparable`);
      await model.release().catch(() => undefined);
      this.log.warn({ code: 'FW_ERR_MODEL_SHADOW', model: name, version }, 'candidate model rolled back: different output kind');
      return;
    }
    const evaluator = new ShadowEvaluator(kind, this.options.shadow, (verdict) => void this.enqueue(() => this.decide(name, version, verdict)));
    this.shadows.set(name, { version, model, evaluator });
    const n = scorer.shadow(name, model, evaluator);
    this.log.info(
      { model: name, version, current: current.manifest.version, samples: this.options.shadow.samples, bindings: n },
      'shadow-scoring candidate model',
    );
  }

  private async decide(name: string, version: string, verdict: ShadowVerdict): Promise<void> {
    const active = this.shadows.get(name);
    if (this.stopped || !active || active.version !== version) return;
    this.shadows.delete(name);
    const { registry, scorer } = this.options;
    await scorer.unshadow(name);
    let swapped = false;
    try {
      if (verdict.decision === 'promote') {
        if (registry.promote(name, version, verdict.reason, verdict.summary)) {
          await scorer.swapModel(name, active.model);
          swapped = true;
          this.log.info({ model: name, version, shadow: verdict.summary }, 'candidate model promoted');
          this.options.onModelsChanged?.();
        }
      } else {
        registry.discardCandidate(name, version, 'shadow', verdict.reason, verdict.summary);
        this.log.warn({ code: 'FW_ERR_MODEL_SHADOW', model: name, version, reason: verdict.reason, shadow: verdict.summary }, 'candidate model rolled back');
      }
    } finally {
      if (!swapped) await active.model.release().catch(() => undefined);
      this.drain();
    }
  }

  /** Publishes the journal's unpublished lifecycle events. */
  private drain(): void {
    try {
      this.options.registry.drainEvents((events) => this.options.publish(events));
    } catch (err) {
      if (Date.now() - this.lastDrainError > 60_000) {
        this.lastDrainError = Date.now();
        this.log.warn({ err: describeError(err) }, 'could not publish model lifecycle events; will retry');
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.clear();
    await this.chain;
    // A candidate being shadowed stays the candidate: shadowing starts again, from zero, at the next start.
    for (const [name, s] of this.shadows) {
      await this.options.scorer.unshadow(name);
      await s.model.release().catch(() => undefined);
    }
    this.shadows.clear();
    this.drain();
  }
}
