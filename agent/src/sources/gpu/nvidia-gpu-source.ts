/**
 * NVIDIA GPU telemetry and Xid events, read with `nvidia-smi` and the kernel log (no DCGM, no NVML binding).
 *
 * One Reading per GPU per sample; `asset` is `gpu-<bus id>` (`gpu-0000:18:00.0`): the PCI address is stable
 * across reboots, the index is not, so the index is a metric. Metrics (absent when the driver prints N/A —
 * never zero):
 *
 *   fast, from one long-lived `nvidia-smi --query-gpu=… -lms <intervalMs>`:
 *     gpu.index, gpu.lost (1 when a column reads [GPU is lost], else 0), gpu.utilization_pct,
 *     gpu.memory.utilization_pct, gpu.memory.total_bytes, gpu.memory.used_bytes,
 *     gpu.temperature_c, gpu.memory_temperature_c, gpu.power.draw_w, gpu.power.limit_w (enforced),
 *     gpu.clocks.sm_mhz, gpu.clocks.mem_mhz, gpu.clocks.graphics_mhz, gpu.fan_pct, gpu.pstate (P0 → 0),
 *     gpu.throttle.active_mask (bitmask), gpu.throttle.{sw_power_cap,hw_slowdown,hw_thermal_slowdown,
 *     hw_power_brake_slowdown,sw_thermal_slowdown} (0/1), gpu.ecc.mode (1 enabled),
 *     gpu.ecc.{volatile,aggregate}.{corrected,uncorrected}, gpu.retired_pages.{sbe,dbe,pending},
 *     gpu.reset.required, gpu.reset.drain_recommended (0/1), gpu.pcie.{link_gen,link_gen_max,link_width,
 *     link_width_max}
 *   slow, every slowIntervalMs (latest values merged into each fast reading; dropped when 3 intervals old):
 *     gpu.remapped_rows.{correctable,uncorrectable,pending,failure}          (--query-remapped-rows)
 *     gpu.pcie.replays, gpu.pcie.replay_rollovers, gpu.recovery_action (0 none, 1 reset, 2 reboot,
 *     3 drain P2P, 4 drain and reset), gpu.ecc.sram_threshold_exceeded,
 *     gpu.ecc.aggregate.sram_uncorrectable.{l2,sm,microcontroller,pcie,other},
 *     gpu.remapped_rows.banks_{max,high,partial,low,none}, and the remapped-rows counts again (nvidia-smi -q)
 *     gpu.nvlink.<link>.{crc_errors,replay_errors,recovery_errors,…}, gpu.nvlink.<counter>_total
 *                                                                            (nvidia-smi nvlink -e)
 *   events: gpu.xid.<code>.count — Xids seen per code on this GPU since the agent started.
 *
 * Each Xid line in the kernel log (`/dev/kmsg`, else `journalctl -k -f`) is also a HealthEvent `gpu.xid`.
 *
 * Identity (text, so never telemetry): with the slow counters, one-shot `--query-gpu=index,pci.bus_id,name,uuid,
 * serial,vbios_version,driver_version,memory.total` (the names this driver knows). Each GPU's identity is an event
 * `gpu.identity` published on the `events` stream once per GPU per agent run, and again only when it changes (a
 * board swapped behind the same bus id has a new uuid): attributes pciAddress, index, name, uuid, serial, vbios,
 * driverVersion, memoryTotalBytes (those the driver printed), change (`first` or `changed`), previousUuid.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Logger } from '../../core/logger.js';
import { describeError } from '../../core/errors.js';
import type { Component, EventSink, HealthEvent, ReadingSink } from '../../core/types.js';
import { logUnavailable, type SourceStats } from '../interval-source.js';
import {
  FALLBACK_FIELDS,
  REMAPPED_ROWS_FIELDS,
  parseHelpQueryGpu,
  parseNvlinkErrors,
  parseQueryLine,
  parseQueryText,
  parseRemappedRows,
  parseIdentityCsv,
  parseXidLine,
  planIdentityQuery,
  planQuery,
  xidInfo,
  xidSeverity,
  type GpuIdentity,
  type GpuRow,
  type IdentityPlan,
  type QueryPlan,
} from './nvidia-smi-parsers.js';

export interface NvidiaGpuConfig {
  enabled: boolean;
  /** Fast fields, every this many ms (default 5000). */
  intervalMs: number;
  /** Remapped rows, `-q` and `nvlink -e`, every this many ms (default 60000). */
  slowIntervalMs: number;
  /** Limit for each one-shot nvidia-smi command. */
  timeoutMs: number;
  binary: string;
  /** Follow the kernel log for Xid events. */
  xid: boolean;
  kernelLog: 'auto' | 'kmsg' | 'journalctl' | 'off';
}

export const NVIDIA_GPU_DEFAULTS: NvidiaGpuConfig = {
  enabled: true,
  intervalMs: 5000,
  slowIntervalMs: 60_000,
  timeoutMs: 10_000,
  binary: 'nvidia-smi',
  xid: true,
  kernelLog: 'auto',
};

/** Seams for tests and unusual hosts; production uses the defaults. */
export interface NvidiaGpuOptions {
  /** Extra environment for the commands (merged over process.env). */
  env?: NodeJS.ProcessEnv;
  kmsgPath?: string;
  journalctlCommand?: readonly string[];
  kmsgPollMs?: number;
  restartBackoffMs?: { initial: number; max: number };
  /** While nvidia-smi is absent or unusable, look again this often. */
  unavailableRetryMs?: number;
}

export interface NvidiaGpuStats extends SourceStats {
  gpus: number;
  /** Restarts of the `-lms` process. */
  restarts: number;
  /** Slow commands that failed (one failing command is a partial failure, never fatal). */
  partialFailures: number;
  /** Lines or values that could not be parsed. */
  problems: number;
  xidEvents: number;
  kernelLog: 'off' | 'starting' | 'kmsg' | 'journalctl' | 'unavailable';
}

const DEFAULT_JOURNALCTL = ['journalctl', '-k', '-f', '-o', 'short-iso', '--since', 'now'];
const UNAVAILABLE_CODES = new Set(['ENOENT', 'EACCES', 'EPERM']);
const NO_DRIVER = /couldn't communicate with the NVIDIA driver|No devices were found|Insufficient Permissions/i;

type Slow = { ts: number; metrics: Record<string, number> };

export class NvidiaGpuSource implements Component {
  readonly name = 'nvidia-gpu';
  readonly stats: NvidiaGpuStats;
  private readonly env: NodeJS.ProcessEnv;
  private readonly backoff: { initial: number; max: number };
  private readonly unavailableRetryMs: number;
  private stopped = false;
  private booted = false;
  private plan: QueryPlan | null = null;
  private identityPlan: IdentityPlan | null = null;
  /** Per bus id, the identity last published in this run (compared as JSON). */
  private readonly identities = new Map<string, { key: string; uuid: string | undefined }>();
  private child: ChildProcess | null = null;
  private childStartedAt = 0;
  private childSamples = 0;
  private attempt = 0;
  private lastLineAt = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private group = new Map<number, GpuRow>();
  private groupTs = 0;
  private groupTimer: NodeJS.Timeout | null = null;
  private readonly slow = { remapped: new Map<string, Slow>(), q: new Map<string, Slow>(), nvlink: new Map<number, Slow>() };
  private slowTimer: NodeJS.Timeout | null = null;
  private slowBusy = false;
  private readonly xidCounts = new Map<string, Map<number, number>>();
  private readonly failingCommands = new Set<string>();
  private readonly reportedProblems = new Set<string>();
  private readonly oneShots = new Set<ChildProcess>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sleepers = new Set<() => void>();
  private kmsg: FileHandle | null = null;
  private journal: ChildProcess | null = null;
  private journalAttempt = 0;
  private kernelLogWarned = false;
  private sampleProblems = false;

  constructor(
    private readonly config: NvidiaGpuConfig,
    private readonly sink: ReadingSink,
    private readonly events: EventSink,
    private readonly log: Logger,
    private readonly options: NvidiaGpuOptions = {},
  ) {
    this.stats = {
      name: this.name,
      state: 'idle',
      samples: 0,
      errors: 0,
      lastError: null,
      lastSampleTs: null,
      gpus: 0,
      restarts: 0,
      partialFailures: 0,
      problems: 0,
      xidEvents: 0,
      kernelLog: 'off',
    };
    this.env = { ...process.env, ...options.env };
    this.backoff = options.restartBackoffMs ?? { initial: 1000, max: 60_000 };
    this.unavailableRetryMs = options.unavailableRetryMs ?? 300_000;
  }

  async start(): Promise<void> {
    if (!this.config.enabled) {
      this.log.info({ source: this.name }, 'NVIDIA GPU source disabled');
      return;
    }
    if (this.stats.state !== 'idle') return;
    this.stats.state = 'running';
    this.boot();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stats.state = 'stopped';
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const wake of this.sleepers) wake();
    for (const t of [this.watchdog, this.groupTimer]) if (t) clearTimeout(t);
    if (this.slowTimer) clearInterval(this.slowTimer);
    for (const c of this.oneShots) c.kill('SIGKILL');
    const closing = [this.child, this.journal].filter((c): c is ChildProcess => c !== null).map((c) => terminate(c));
    this.child = null;
    this.journal = null;
    await this.kmsg?.close().catch(() => {});
    this.kmsg = null;
    await Promise.all(closing);
  }

  // ---- start-up: learn the fields once, then run the fast process and the slow loop ----

  /** Runs `bootOnce` in the background; nothing it does may reject into the agent. */
  private boot(): void {
    this.bootOnce().catch((err: unknown) => {
      this.fail(err, 'failing');
      this.later(() => this.boot(), this.nextDelay());
    });
  }

  private async bootOnce(): Promise<void> {
    if (this.stopped) return;
    let help: string;
    try {
      help = await this.exec(['--help-query-gpu']);
    } catch (err) {
      const unavailable = UNAVAILABLE_CODES.has(errCode(err)) || NO_DRIVER.test(describeError(err));
      this.fail(err, unavailable ? 'unavailable' : 'failing');
      this.later(() => this.boot(), unavailable ? this.unavailableRetryMs : this.nextDelay());
      return;
    }
    const parsed = parseHelpQueryGpu(help);
    if (parsed.problems.length) this.noteProblems('help', parsed.problems);
    this.plan = planQuery(parsed.problems.length ? new Set(FALLBACK_FIELDS) : parsed.fields);
    this.identityPlan = planIdentityQuery(parsed.problems.length ? null : parsed.fields);
    this.log.info({ source: this.name, fields: this.plan.fields.length }, 'nvidia-smi fields chosen');
    this.startFast();
    if (!this.booted) {
      this.booted = true;
      void this.runSlow();
      this.slowTimer = setInterval(() => void this.runSlow(), this.config.slowIntervalMs);
      this.startKernelLog().catch((err: unknown) => this.kernelLogUnavailable(describeError(err)));
    }
  }

  private fail(err: unknown, state: 'failing' | 'unavailable'): void {
    this.stats.errors++;
    this.stats.lastError = describeError(err);
    if (this.stats.state !== state && !this.stopped) {
      if (state === 'unavailable') logUnavailable(this.log, this.name, this.stats.lastError);
      else this.log.warn({ source: this.name, err: this.stats.lastError, code: 'FW_ERR_SOURCE_FAILED' }, 'nvidia-smi failing; will keep trying');
    }
    if (!this.stopped) this.stats.state = state;
  }

  // ---- the fast path: one long-lived `-lms` process ----

  private startFast(): void {
    if (this.stopped || !this.plan) return;
    const plan = this.plan;
    const args = [`--query-gpu=${plan.fields.join(',')}`, '--format=csv,noheader,nounits', '-lms', String(this.config.intervalMs)];
    let child: ChildProcess;
    try {
      child = spawn(this.config.binary, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      // spawn throws synchronously only on arguments it rejects outright (an empty binary name, say).
      this.fail(err, 'failing');
      this.later(() => this.startFast(), this.nextDelay());
      return;
    }
    this.child = child;
    this.childStartedAt = this.lastLineAt = Date.now();
    this.childSamples = 0;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-500)));
    createInterface({ input: child.stdout! }).on('line', (line) => this.onFastLine(child, line, plan));
    child.on('error', (err) => this.onFastExit(child, err));
    child.on('close', (code, signal) =>
      this.onFastExit(child, new Error(`nvidia-smi -lms exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`)),
    );
    // A child that prints nothing for 3 intervals is hung (a wedged GPU can hang NVML calls): kill and restart.
    const check = () => {
      const quiet = Date.now() - this.lastLineAt;
      const limit = Math.max(3 * this.config.intervalMs, this.childSamples ? 0 : this.config.timeoutMs);
      if (this.child === child && quiet > limit) {
        this.log.warn({ source: this.name, quietMs: quiet }, 'nvidia-smi -lms produced no output for 3 intervals; restarting it');
        child.kill('SIGKILL');
      }
    };
    this.watchdog = setInterval(check, Math.max(20, Math.min(this.config.intervalMs, 1000)));
  }

  private onFastLine(child: ChildProcess, line: string, plan: QueryPlan): void {
    if (this.child !== child) return;
    this.lastLineAt = Date.now();
    const { row, problems } = parseQueryLine(line, plan);
    if (problems.length) {
      this.sampleProblems = true;
      this.noteProblems('query', problems);
    }
    if (!row) return;
    // nvidia-smi prints a sample's GPUs together, in index order: a sample ends when an index does not go up
    // (the next sample began) or when the burst goes quiet. No GPU count is assumed, so a GPU that vanishes
    // (fallen off the bus) or appears never splits a sample.
    const indexes = [...this.group.keys()];
    if (indexes.length && row.index <= (indexes[indexes.length - 1] ?? -1)) this.flush();
    if (!this.group.size) this.groupTs = Date.now();
    this.group.set(row.index, row);
    if (this.groupTimer) clearTimeout(this.groupTimer);
    this.groupTimer = setTimeout(() => this.flush(), Math.max(5, Math.min(250, this.config.intervalMs / 2)));
  }

  private flush(): void {
    if (this.groupTimer) clearTimeout(this.groupTimer);
    this.groupTimer = null;
    if (!this.group.size || this.stopped) return;
    const rows = [...this.group.values()].sort((a, b) => a.index - b.index);
    this.group.clear();
    // A whole clean sample re-arms the "unparseable output" log line.
    if (!this.sampleProblems) this.reportedProblems.delete('query');
    this.sampleProblems = false;
    this.childSamples++;
    if (this.stats.state !== 'running') this.log.info({ source: this.name, gpus: rows.length }, 'source recovered');
    this.stats.state = 'running';
    this.stats.samples++;
    this.stats.gpus = rows.length;
    this.stats.lastSampleTs = this.groupTs;
    for (const row of rows) {
      const metrics = { ...row.metrics, ...this.slowMetrics(row) };
      for (const [code, n] of this.xidCounts.get(row.busId) ?? []) metrics[`gpu.xid.${code}.count`] = n;
      try {
        this.sink({ ts: this.groupTs, source: this.name, asset: `gpu-${row.busId}`, metrics });
      } catch (err) {
        this.log.error({ source: this.name, err: describeError(err) }, 'reading sink threw');
      }
    }
  }

  private onFastExit(child: ChildProcess, err: Error): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    this.flush();
    if (this.stopped) return;
    this.stats.restarts++;
    if (UNAVAILABLE_CODES.has(errCode(err))) {
      this.fail(err, 'unavailable');
      this.later(() => this.boot(), this.unavailableRetryMs);
      return;
    }
    // A child that ran well for a while starts a fresh backoff sequence; one that keeps dying backs off.
    if (this.childSamples > 0 && Date.now() - this.childStartedAt >= Math.max(60_000, 10 * this.config.intervalMs)) this.attempt = 0;
    const delay = this.nextDelay();
    this.fail(err, 'failing');
    this.log.debug({ source: this.name, err: err.message, delayMs: delay }, 'restarting nvidia-smi -lms');
    this.later(() => this.startFast(), delay);
  }

  private nextDelay(): number {
    const delay = Math.min(this.backoff.max, this.backoff.initial * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return delay;
  }

  // ---- the slow path: one-shot commands with a timeout ----

  private async runSlow(): Promise<void> {
    if (this.slowBusy || this.stopped) return;
    this.slowBusy = true;
    try {
      const idPlan = this.identityPlan;
      if (idPlan)
        await this.slowCommand('identity', [`--query-gpu=${idPlan.fields.join(',')}`, '--format=csv,noheader,nounits'], (text, ts) => {
          const r = parseIdentityCsv(text, idPlan);
          for (const id of r.byBus.values()) this.noteIdentity(id, ts);
          return r.problems;
        });
      await this.slowCommand('remapped-rows', [`--query-remapped-rows=${REMAPPED_ROWS_FIELDS.join(',')}`, '--format=csv,noheader,nounits'], (text, ts) => {
        const r = parseRemappedRows(text);
        for (const [bus, metrics] of r.byBus) this.slow.remapped.set(bus, { ts, metrics });
        return r.problems;
      });
      await this.slowCommand('query-text', ['-q'], (text, ts) => {
        const r = parseQueryText(text);
        for (const [bus, metrics] of r.byBus) this.slow.q.set(bus, { ts, metrics });
        return r.problems;
      });
      await this.slowCommand('nvlink', ['nvlink', '-e'], (text, ts) => {
        const r = parseNvlinkErrors(text);
        for (const [index, metrics] of r.byIndex) this.slow.nvlink.set(index, { ts, metrics });
        return r.problems;
      });
    } finally {
      this.slowBusy = false;
    }
  }

  private async slowCommand(key: string, args: string[], parse: (text: string, ts: number) => string[]): Promise<void> {
    if (this.stopped) return;
    try {
      const text = await this.exec(args);
      const problems = parse(text, Date.now());
      if (problems.length) this.noteProblems(key, problems);
      else this.reportedProblems.delete(key);
      if (this.failingCommands.delete(key)) this.log.info({ source: this.name, command: key }, 'GPU counters readable again');
    } catch (err) {
      if (this.stopped) return;
      this.stats.errors++;
      this.stats.partialFailures++;
      this.stats.lastError = `${key}: ${describeError(err)}`;
      if (!this.failingCommands.has(key)) {
        this.failingCommands.add(key);
        this.log.warn({ source: this.name, command: key, err: this.stats.lastError, code: 'FW_ERR_SOURCE_FAILED' }, 'part of the GPU sample unavailable');
      }
    }
  }

  /** Publishes a GPU's identity the first time this run sees it and whenever it differs from the last one published. */
  private noteIdentity(id: GpuIdentity, ts: number): void {
    const { index: _index, busId, ...rest } = id;
    if (rest.name === undefined && rest.uuid === undefined) return; // nothing that identifies the board
    // The index may change across a driver reload without the board changing: not part of the comparison.
    const key = JSON.stringify(rest);
    const before = this.identities.get(busId);
    if (before?.key === key || this.stopped) return;
    this.identities.set(busId, { key, uuid: rest.uuid });
    const event = gpuIdentityEvent(id, ts, before);
    if (event.attributes.previousUuid !== undefined)
      this.log.warn({ source: this.name, asset: event.asset, uuid: rest.uuid, previousUuid: before?.uuid }, event.message);
    try {
      this.events(event);
    } catch (err) {
      this.log.error({ source: this.name, err: describeError(err) }, 'event sink threw');
    }
  }

  private slowMetrics(row: GpuRow): Record<string, number> {
    const maxAge = 3 * this.config.slowIntervalMs;
    const now = Date.now();
    const out: Record<string, number> = {};
    for (const s of [this.slow.remapped.get(row.busId), this.slow.q.get(row.busId), this.slow.nvlink.get(row.index)]) {
      if (s && now - s.ts <= maxAge) Object.assign(out, s.metrics);
    }
    return out;
  }

  private exec(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.config.binary,
        args,
        { env: this.env, timeout: this.config.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 32 * 1024 * 1024 },
        (err, stdout, stderr) => {
          this.oneShots.delete(child);
          if (!err) return resolve(stdout);
          const detail = `${String(stdout).trim()} ${String(stderr).trim()}`.trim().slice(0, 300);
          reject(
            Object.assign(
              new Error(
                `${this.config.binary} ${args[0]}: ${err.killed ? `timed out after ${this.config.timeoutMs} ms` : err.message}${detail ? ` — ${detail}` : ''}`,
              ),
              { code: err.code },
            ),
          );
        },
      );
      this.oneShots.add(child);
    });
  }

  /** Parse problems are counted; the first of each kind is logged, again only after that kind parsed cleanly. */
  private noteProblems(kind: string, problems: string[]): void {
    this.stats.problems += problems.length;
    if (this.reportedProblems.has(kind)) return;
    this.reportedProblems.add(kind);
    this.log.warn({ source: this.name, kind, count: problems.length, first: problems[0] }, 'unparseable nvidia-smi output');
  }

  // ---- Xid events from the kernel log ----

  private async startKernelLog(): Promise<void> {
    const mode = this.config.kernelLog;
    if (!this.config.xid || mode === 'off' || this.stopped) return;
    this.stats.kernelLog = 'starting';
    if (mode === 'kmsg' || mode === 'auto') {
      const path = this.options.kmsgPath ?? '/dev/kmsg';
      try {
        const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
        if (this.stopped) return void (await fh.close());
        this.kmsg = fh;
      } catch (err) {
        if (mode === 'kmsg') return this.kernelLogUnavailable(`cannot open ${path}: ${describeError(err)}`);
        this.log.debug({ source: this.name, err: describeError(err) }, `${path} not readable; following journalctl`);
      }
      if (this.kmsg) return this.pumpKmsg(this.kmsg, mode);
    }
    this.followJournal();
  }

  private kernelLogUnavailable(why: string): void {
    this.stats.kernelLog = 'unavailable';
    if (this.kernelLogWarned) return;
    this.kernelLogWarned = true;
    this.log.warn({ source: this.name, err: why, code: 'FW_ERR_SOURCE_UNAVAILABLE' }, 'kernel log unreadable; GPU Xid events will not be reported');
  }

  /**
   * Reads `/dev/kmsg` without blocking a thread: the fd is non-blocking, EAGAIN means "caught up", and the
   * reader sleeps before asking again. Records already in the ring buffer at start are skipped (like
   * journalctl --since now). A regular file works the same way (EOF instead of EAGAIN), which tests use.
   */
  private async pumpKmsg(fh: FileHandle, mode: NvidiaGpuConfig['kernelLog']): Promise<void> {
    const buf = Buffer.alloc(16 * 1024);
    const pollMs = this.options.kmsgPollMs ?? 250;
    let pending = '';
    let backlog = true;
    while (!this.stopped && this.kmsg === fh) {
      let n = 0;
      try {
        n = (await fh.read(buf, 0, buf.length, null)).bytesRead;
      } catch (err) {
        const code = errCode(err);
        if (this.stopped || code === 'EPIPE' || code === 'EINTR') continue; // EPIPE: records overwritten before we read them
        if (code !== 'EAGAIN') {
          await fh.close().catch(() => {});
          this.kmsg = null;
          if (mode === 'auto') return this.followJournal();
          return this.kernelLogUnavailable(`reading kmsg: ${describeError(err)}`);
        }
      }
      if (n === 0) {
        if (backlog) {
          backlog = false;
          this.stats.kernelLog = 'kmsg';
        }
        await this.sleep(pollMs);
        continue;
      }
      const lines = (pending + buf.toString('utf8', 0, n)).split('\n');
      pending = lines.pop() ?? '';
      if (pending.length > 64 * 1024) pending = '';
      if (!backlog) for (const line of lines) this.onKernelLine(line);
    }
  }

  private followJournal(): void {
    if (this.stopped) return;
    const [cmd, ...args] = this.options.journalctlCommand ?? DEFAULT_JOURNALCTL;
    if (!cmd) return this.kernelLogUnavailable('no journalctl command');
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { env: this.env, stdio: ['ignore', 'pipe', 'ignore'] });
    } catch (err) {
      return this.kernelLogUnavailable(`${cmd}: ${describeError(err)}`);
    }
    this.journal = child;
    this.stats.kernelLog = 'journalctl';
    const startedAt = Date.now();
    createInterface({ input: child.stdout! }).on('line', (line) => this.onKernelLine(line));
    let done = false;
    const onEnd = (err: Error) => {
      if (done || this.journal !== child) return;
      done = true;
      this.journal = null;
      if (this.stopped) return;
      if (UNAVAILABLE_CODES.has(errCode(err))) {
        this.kernelLogUnavailable(`${cmd}: ${describeError(err)}`);
        return this.later(() => this.followJournal(), this.unavailableRetryMs);
      }
      if (Date.now() - startedAt > 60_000) this.journalAttempt = 0;
      const delay = Math.min(this.backoff.max, this.backoff.initial * 2 ** this.journalAttempt++);
      if (this.journalAttempt === 1) this.log.warn({ source: this.name, err: err.message }, 'journalctl exited; following it again');
      this.later(() => this.followJournal(), delay);
    };
    child.on('error', onEnd);
    child.on('close', (code, signal) => onEnd(new Error(`${cmd} exited (${signal ?? `code ${code}`})`)));
  }

  private onKernelLine(line: string): void {
    const { event: x, problem } = parseXidLine(line);
    if (problem) {
      this.stats.problems++;
      this.log.debug({ source: this.name, problem }, 'unparseable Xid line');
    }
    if (!x || this.stopped) return;
    this.kernelLogWarned = false;
    const info = xidInfo(x.code);
    const severity = xidSeverity(x.code, x.message);
    const perGpu = this.xidCounts.get(x.pciAddress) ?? new Map<number, number>();
    perGpu.set(x.code, (perGpu.get(x.code) ?? 0) + 1);
    this.xidCounts.set(x.pciAddress, perGpu);
    this.stats.xidEvents++;
    const asset = `gpu-${x.pciAddress}`;
    const attributes: Record<string, string | number | boolean> = { pciAddress: x.pciAddress, name: info.name, severity, action: info.action };
    if (x.pid !== undefined) attributes.pid = x.pid;
    if (x.process) attributes.process = x.process;
    const level = severity === 'critical' ? 'error' : severity === 'warning' ? 'warn' : 'info';
    this.log[level]({ source: this.name, asset, xid: x.code, severity }, `GPU Xid ${x.code}: ${info.name}`);
    try {
      this.events({
        ts: x.time ?? Date.now(),
        source: this.name,
        asset,
        type: 'gpu.xid',
        code: x.code,
        message: `Xid ${x.code} (${info.name}) on ${x.pciAddress}${x.message ? `: ${x.message}` : ''}`,
        attributes,
      });
    } catch (err) {
      this.log.error({ source: this.name, err: describeError(err) }, 'event sink threw');
    }
  }

  // ---- timers that stop() can cancel ----

  private later(fn: () => void, ms: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.sleepers.delete(wake);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}

/**
 * The `gpu.identity` event of a GPU (docs/mqtt.md): `before` is the identity last published for its bus id in this
 * run (none: the first). Exported so that tests of the centre build the events the way the source does.
 */
export function gpuIdentityEvent(id: GpuIdentity, ts: number, before?: { uuid: string | undefined }): HealthEvent {
  const { index, busId, ...rest } = id;
  const attributes: Record<string, string | number | boolean> = { pciAddress: busId, index, ...rest, change: before ? 'changed' : 'first' };
  const swapped = before?.uuid !== undefined && before.uuid !== rest.uuid;
  if (swapped) attributes.previousUuid = before.uuid!;
  const what = `${rest.name ?? 'unnamed GPU'}${rest.uuid ? ` ${rest.uuid}` : ''}${rest.serial ? ` serial ${rest.serial}` : ''}`;
  const message = swapped ? `GPU ${busId} changed board: ${before.uuid} → ${what}` : `GPU ${busId} ${before ? 'identity changed: ' : 'is '}${what}`;
  return { ts, source: 'nvidia-gpu', asset: `gpu-${busId}`, type: 'gpu.identity', message, attributes, publish: true };
}

function errCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** SIGTERM, then SIGKILL if the process has not exited within 2 s; resolves when it has exited (or after 3 s). */
function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    const giveUp = setTimeout(done, 3000);
    function done(): void {
      clearTimeout(kill);
      clearTimeout(giveUp);
      resolve();
    }
    child.once('close', done);
    child.once('error', done);
    child.kill('SIGTERM');
  });
}
