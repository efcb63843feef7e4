import {
  closeSync,
  existsSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
  truncateSync,
} from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ForewarnError, describeError } from '../core/errors.js';
import type { ModelLifecycleEvent, ShadowSummary } from '../contract/topics.js';

/**
 * Installed model versions, beside the read-only models shipped with the agent (docs/model-updates.md):
 *
 *   <storage.dir>/models/                    0700
 *     registry.lock                          an exclusive SQLite lock held for each change (released by the kernel on a crash)
 *     events.jsonl, events.offset            lifecycle events waiting for the agent to publish them
 *     <name>/state.json                      current, previous, candidate, installed versions, history
 *     <name>/<version>/                      one installed version: manifest.json, model.onnx, golden.json, …
 *
 * Every change is made under the lock and written atomically (a temporary file renamed over the state), so the
 * CLI, the running agent and a remote command can change the registry at the same time.
 */

export interface InstalledVersion {
  version: string;
  installedAt: number;
  /** The key that signed its bundle. */
  keyId: string;
  bundleSha256: string;
}

export type RollbackStage = 'load' | 'shadow' | 'operator' | 'superseded';

export interface HistoryEntry {
  ts: number;
  action: 'candidate' | 'promoted' | 'rollback';
  version: string;
  /** promoted: the version it replaced; rollback: the version in use afterwards. `null`: the shipped model, or none. */
  other?: string | null;
  stage?: RollbackStage;
  reason?: string;
}

export interface ModelState {
  schemaVersion: 1;
  name: string;
  /** The installed version that scores; `null`: the shipped model (or none, for a model not shipped). */
  current: string | null;
  /** What was current before, most recent last (`null`: the shipped model): where `rollback` goes. */
  previous: Array<string | null>;
  /** Installed, verified and checked, waiting to be shadow-scored by the agent. */
  candidate: string | null;
  /** Installed versions on disk, in install order. */
  versions: InstalledVersion[];
  /** The last HISTORY_LIMIT changes, oldest first. */
  history: HistoryEntry[];
}

const HISTORY_LIMIT = 100;
const LOCK_TIMEOUT_MS = 10_000;
/** The event journal is cut back to empty once published and larger than this. */
const JOURNAL_COMPACT_BYTES = 64 * 1024;
const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

function emptyState(name: string): ModelState {
  return { schemaVersion: 1, name, current: null, previous: [], candidate: null, versions: [], history: [] };
}

/** Orders `1.2.3`, `1.2.3-rc.1`: numerically by major.minor.patch, a pre-release before its release. Build metadata is ignored. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', pre] = v.split('+')[0]!.split(/-(.*)/s);
    return { nums: core.split('.').map((n) => Number(n)), pre: pre ?? null };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === null) return 1;
  if (y.pre === null) return -1;
  return x.pre < y.pre ? -1 : 1;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * Creates `file` 0600, or tightens one an older version left 0644: SQLite would create it with the process umask,
 * which for the CLI (`forewarn model install`) is the user's, not the agent's 077.
 */
function privateFile(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, 'a', 0o600);
  } catch {
    return; // opening the lock reports what is wrong
  }
  try {
    if (fstatSync(fd).mode & 0o077) fchmodSync(fd, 0o600);
  } catch {
    // another user's file: the lock still works
  } finally {
    closeSync(fd);
  }
}

/** The journal file as it is now (inode, size, mtime), or null when there is none. */
function journalStamp(file: string): string | null {
  const st = statSync(file, { throwIfNoEntry: false, bigint: true });
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}` : null;
}

export class ModelRegistry {
  /** journalStamp of the event journal when this registry last read it to its end. */
  private drainedStamp: string | null = null;

  constructor(
    /** `<storage.dir>/models`. */
    readonly root: string,
    /** `scoring.modelsDir`: the shipped models, never written. */
    readonly shippedRoot: string,
    readonly keepVersions = 3,
  ) {}

  static forConfig(config: { storage: { dir: string }; scoring: { modelsDir: string; keepVersions?: number } }): ModelRegistry {
    return new ModelRegistry(path.join(config.storage.dir, 'models'), config.scoring.modelsDir, config.scoring.keepVersions ?? 3);
  }

  private modelRoot(name: string): string {
    if (!NAME.test(name)) throw new ForewarnError('FW_ERR_MODEL_REGISTRY', `${JSON.stringify(name).slice(0, 80)}: not a model name`);
    return path.join(this.root, name);
  }

  versionDir(name: string, version: string): string {
    return path.join(this.modelRoot(name), version);
  }

  /** Model names with installed state. */
  names(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && NAME.test(d.name) && existsSync(path.join(this.root, d.name, 'state.json')))
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }

  /** Model names shipped with the agent (a folder with a manifest under scoring.modelsDir). */
  shippedNames(): string[] {
    try {
      return readdirSync(this.shippedRoot, { withFileTypes: true })
        .filter((d) => d.isDirectory() && existsSync(path.join(this.shippedRoot, d.name, 'manifest.json')))
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }

  shippedDir(name: string): string | null {
    const dir = path.join(this.shippedRoot, name);
    return existsSync(path.join(dir, 'manifest.json')) ? dir : null;
  }

  /** The shipped model's version as its manifest says (not validated: for display and comparisons). */
  shippedVersion(name: string): string | null {
    const dir = this.shippedDir(name);
    if (!dir) return null;
    try {
      const v = (JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { version?: unknown }).version;
      return typeof v === 'string' ? v : null;
    } catch {
      return null;
    }
  }

  /** The version that scores for `name`: the installed current, else the shipped one; null when there is neither. */
  currentVersion(name: string, state = this.read(name)): string | null {
    return state.current ?? this.shippedVersion(name);
  }

  read(name: string): ModelState {
    const file = path.join(this.modelRoot(name), 'state.json');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState(name);
      throw new ForewarnError('FW_ERR_MODEL_REGISTRY', `${file}: ${describeError(err)}`);
    }
    try {
      const s = JSON.parse(text) as ModelState;
      if (s.schemaVersion !== 1 || s.name !== name || !Array.isArray(s.versions) || !Array.isArray(s.previous) || !Array.isArray(s.history)) {
        throw new Error('not a model state file');
      }
      return s;
    } catch (err) {
      throw new ForewarnError('FW_ERR_MODEL_REGISTRY', `${file}: ${describeError(err)}`);
    }
  }

  /** The folder the scorer should load for `name`: the installed current version, else the shipped one, else null. */
  currentDir(name: string, state = this.read(name)): string | null {
    return state.current ? this.versionDir(name, state.current) : this.shippedDir(name);
  }

  /** Folders to try in order when loading `name` at start: the current one, then what rollback would restore. */
  modelDirs(name: string): string[] {
    let state: ModelState;
    try {
      state = this.read(name);
    } catch {
      state = emptyState(name);
    }
    const dirs = [this.currentDir(name, state)];
    for (const v of [...state.previous].reverse()) dirs.push(v === null ? this.shippedDir(name) : this.versionDir(name, v));
    dirs.push(this.shippedDir(name));
    return [...new Set(dirs.filter((d): d is string => d !== null && existsSync(d)))];
  }

  private write(state: ModelState): void {
    const dir = this.modelRoot(state.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    state.history = state.history.slice(-HISTORY_LIMIT);
    writeAtomic(path.join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
  }

  /**
   * Runs `fn` holding the registry lock. `fn` must be synchronous: the lock is a blocking SQLite lock, and
   * nothing else in this process may wait on it meanwhile.
   */
  withLock<T>(fn: () => T): T {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const lockFile = path.join(this.root, 'registry.lock');
    privateFile(lockFile);
    const db = new Database(lockFile, { timeout: LOCK_TIMEOUT_MS });
    try {
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      throw new ForewarnError('FW_ERR_MODEL_REGISTRY', `${this.root}: the model registry stayed locked for ${LOCK_TIMEOUT_MS / 1000} s: ${describeError(err)}`);
    }
    try {
      return fn();
    } finally {
      try {
        db.exec('ROLLBACK');
      } catch {
        // closing releases it too
      }
      db.close();
    }
  }

  /** A staging folder on the registry's file system, so a checked version moves into place with one rename. */
  stagingDir(): string {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const dir = path.join(this.root, `.staging-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /**
   * Moves a verified, checked version from `stagedDir` into the registry. With no model of that name in use
   * (neither installed nor shipped), or when `promote` is set, it becomes current at once; otherwise it becomes
   * the candidate, replacing a candidate still waiting (recorded as superseded). A version must be newer than
   * the one in use unless `allowDowngrade`; one already installed is refused.
   */
  addVersion(
    name: string,
    version: string,
    stagedDir: string,
    info: { keyId: string; bundleSha256: string; shadowSamples: number },
    options: { allowDowngrade?: boolean; promote?: boolean; now?: number } = {},
  ): { outcome: 'candidate' | 'promoted'; currentVersion: string | null; superseded: string | null; unchanged: boolean } {
    return this.withLock(() => {
      const now = options.now ?? Date.now();
      const state = this.read(name);
      const inUse = this.currentVersion(name, state);
      // The same bundle again (a retried remote command): nothing to do.
      const same = state.versions.find((v) => v.version === version && v.bundleSha256 === info.bundleSha256 && info.bundleSha256 !== '');
      if (same && (state.candidate === version || state.current === version)) {
        rmSync(stagedDir, { recursive: true, force: true });
        const outcome = state.candidate === version ? 'candidate' : 'promoted';
        return { outcome, currentVersion: inUse, superseded: null, unchanged: true };
      }
      const superseded = state.candidate;
      if (state.versions.some((v) => v.version === version && v.version !== state.candidate)) {
        throw new ForewarnError(
          'FW_ERR_MODEL_REGISTRY',
          `${name}@${version} is already installed${state.current === version ? ' and current' : ''}; give the new model a new version`,
        );
      }
      if (inUse !== null && !options.allowDowngrade && compareVersions(version, inUse) <= 0) {
        throw new ForewarnError(
          'FW_ERR_MODEL_REGISTRY',
          `${name}@${version} is not newer than ${inUse}, the version in use (--allow-downgrade installs it anyway)`,
        );
      }
      const events: ModelLifecycleEvent[] = [];
      if (superseded) {
        this.dropVersion(state, superseded);
        state.candidate = null;
        const reason = `superseded by ${version}`;
        state.history.push({ ts: now, action: 'rollback', version: superseded, other: inUse, stage: 'superseded', reason });
        events.push({ ts: now, type: 'model-rollback', model: name, version: superseded, restoredVersion: inUse, stage: 'superseded', reason });
      }
      const target = this.versionDir(name, version);
      mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
      // A folder left by an install that crashed before its state was written.
      rmSync(target, { recursive: true, force: true });
      renameSync(stagedDir, target);
      state.versions.push({ version, installedAt: now, keyId: info.keyId, bundleSha256: info.bundleSha256 });
      const direct = inUse === null || options.promote === true;
      if (direct) {
        const reason = inUse === null ? 'new model: there is no version in use to shadow it against' : 'shadowing is off (scoring.shadow.samples = 0)';
        if (inUse !== null) state.previous.push(state.current);
        state.current = version;
        state.history.push({ ts: now, action: 'promoted', version, other: inUse, reason });
        events.push({ ts: now, type: 'model-promoted', model: name, version, previousVersion: inUse, reason });
      } else {
        state.candidate = version;
        state.history.push({ ts: now, action: 'candidate', version, other: inUse });
        events.push({ ts: now, type: 'model-candidate', model: name, version, currentVersion: inUse, keyId: info.keyId, shadowSamples: info.shadowSamples });
      }
      this.prune(state);
      this.write(state);
      this.journal(events);
      return { outcome: direct ? 'promoted' : 'candidate', currentVersion: inUse, superseded, unchanged: false };
    });
  }

  /** Makes the candidate `version` current. Returns false (and changes nothing) when it is no longer the candidate. */
  promote(name: string, version: string, reason: string, shadow?: ShadowSummary, now = Date.now()): boolean {
    return this.withLock(() => {
      const state = this.read(name);
      if (state.candidate !== version) return false;
      const before = this.currentVersion(name, state);
      if (before !== null) state.previous.push(state.current);
      state.current = version;
      state.candidate = null;
      state.history.push({ ts: now, action: 'promoted', version, other: before, reason });
      this.prune(state);
      this.write(state);
      this.journal([{ ts: now, type: 'model-promoted', model: name, version, previousVersion: before, reason, ...(shadow ? { shadow } : {}) }]);
      return true;
    });
  }

  /** Discards the candidate `version` (deleted from disk, reason kept). Returns false when it is no longer the candidate. */
  discardCandidate(name: string, version: string, stage: RollbackStage, reason: string, shadow?: ShadowSummary, now = Date.now()): boolean {
    return this.withLock(() => {
      const state = this.read(name);
      if (state.candidate !== version) return false;
      state.candidate = null;
      this.dropVersion(state, version);
      const restored = this.currentVersion(name, state);
      state.history.push({ ts: now, action: 'rollback', version, other: restored, stage, reason });
      this.write(state);
      this.journal([{ ts: now, type: 'model-rollback', model: name, version, restoredVersion: restored, stage, reason, ...(shadow ? { shadow } : {}) }]);
      return true;
    });
  }

  /**
   * Puts the previous version back in use and deletes the current one; a candidate still waiting is discarded
   * too, so nothing unproven replaces the version restored. `expect`: only when this version is still current
   * (the agent rolling back one that failed to load). Throws FW_ERR_MODEL_REGISTRY when there is nothing to go back to.
   */
  rollback(
    name: string,
    stage: RollbackStage,
    reason: string,
    expect?: string,
    now = Date.now(),
  ): { from: string; to: string | null; discarded: string | null } {
    return this.withLock(() => {
      const state = this.read(name);
      if (expect !== undefined && state.current !== expect) {
        throw new ForewarnError('FW_ERR_MODEL_REGISTRY', `${name}: ${expect} is no longer the current version`);
      }
      if (state.current === null) {
        throw new ForewarnError(
          'FW_ERR_MODEL_REGISTRY',
          `${name}: nothing to roll back: ${this.shippedDir(name) ? `it runs the version shipped with the agent (${this.shippedVersion(name) ?? '?'})` : 'no version is installed'}`,
        );
      }
      const from = state.current;
      const events: ModelLifecycleEvent[] = [];
      const discarded = state.candidate;
      if (discarded) {
        state.candidate = null;
        this.dropVersion(state, discarded);
        const r = `discarded by the rollback of ${from}`;
        state.history.push({ ts: now, action: 'rollback', version: discarded, other: from, stage, reason: r });
        events.push({ ts: now, type: 'model-rollback', model: name, version: discarded, restoredVersion: from, stage, reason: r });
      }
      // The most recent previous version still on disk; the shipped model when none is left.
      let to: string | null = null;
      while (state.previous.length) {
        const p = state.previous.pop()!;
        if (p === null || state.versions.some((v) => v.version === p)) {
          to = p;
          break;
        }
      }
      state.current = to;
      this.dropVersion(state, from);
      const restored = this.currentVersion(name, state);
      state.history.push({ ts: now, action: 'rollback', version: from, other: restored, stage, reason });
      events.push({ ts: now, type: 'model-rollback', model: name, version: from, restoredVersion: restored, stage, reason });
      this.write(state);
      this.journal(events);
      return { from, to: restored, discarded };
    });
  }

  private dropVersion(state: ModelState, version: string): void {
    state.versions = state.versions.filter((v) => v.version !== version);
    state.previous = state.previous.filter((p) => p !== version);
    rmSync(this.versionDir(state.name, version), { recursive: true, force: true });
  }

  /**
   * Keeps the current version and the most recently installed others, `keepVersions` in all; a candidate is
   * kept besides and not counted. Versions beyond are deleted, and rollback can no longer reach them.
   */
  private prune(state: ModelState): void {
    const keep = new Set<string>();
    if (state.current) keep.add(state.current);
    for (const v of [...state.versions].reverse()) {
      if (keep.size >= this.keepVersions) break;
      if (v.version !== state.candidate) keep.add(v.version);
    }
    if (state.candidate) keep.add(state.candidate);
    for (const v of state.versions.filter((x) => !keep.has(x.version))) this.dropVersion(state, v.version);
  }

  /** Appends lifecycle events to the journal, for the agent to publish. Call under the lock. */
  private journal(events: readonly ModelLifecycleEvent[]): void {
    if (!events.length) return;
    writeFileSync(path.join(this.root, 'events.jsonl'), events.map((e) => `${JSON.stringify(e)}\n`).join(''), { flag: 'a', mode: 0o600 });
  }

  /** Records an event that changed no state (a rejected bundle). */
  recordEvent(event: ModelLifecycleEvent): void {
    this.withLock(() => this.journal([event]));
  }

  /**
   * Hands the events not yet published to `publish` (which must commit them durably, or throw to keep them for
   * the next call), then remembers how far it got. At least once: a crash between the two repeats them.
   */
  drainEvents(publish: (events: ModelLifecycleEvent[]) => void): number {
    const file = path.join(this.root, 'events.jsonl');
    const seen = journalStamp(file);
    // Unchanged since this registry read it to its end: no lock to take (the agent looks every few seconds, and the
    // lock is a database opened and closed). Appends go through the lock and change the size and the mtime.
    if (seen === null || seen === this.drainedStamp) return 0;
    return this.withLock(() => {
      const offsetFile = path.join(this.root, 'events.offset');
      let offset = 0;
      try {
        offset = Number(readFileSync(offsetFile, 'utf8').trim()) || 0;
      } catch {
        offset = 0;
      }
      const size = statSync(file).size;
      if (offset > size) offset = 0;
      if (offset === size) {
        this.drainedStamp = journalStamp(file);
        return 0;
      }
      const text = readFileSync(file).subarray(offset).toString('utf8');
      const end = text.lastIndexOf('\n') + 1;
      if (end === 0) return 0;
      const events: ModelLifecycleEvent[] = [];
      for (const line of text.slice(0, end).split('\n')) {
        if (!line.trim()) continue;
        try {
          events.push(JSON.parse(line) as ModelLifecycleEvent);
        } catch {
          // a torn line from a crash mid-append: skipped
        }
      }
      if (events.length) publish(events);
      const next = offset + Buffer.byteLength(text.slice(0, end));
      if (next === size && size > JOURNAL_COMPACT_BYTES) {
        truncateSync(file, 0);
        writeAtomic(offsetFile, '0\n');
      } else {
        writeAtomic(offsetFile, `${next}\n`);
      }
      if (next === size) this.drainedStamp = journalStamp(file);
      return events.length;
    });
  }
}
