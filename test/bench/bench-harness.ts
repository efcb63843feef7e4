/**
 * Shared benchmark helpers: timing, CPU accounting and a count of the processes a call spawns.
 *
 * Benchmarks report; they never assert a wall-clock limit.
 *
 * Spawn counting. Importing this module patches child_process, so import it before anything that spawns
 * (run-all.ts imports it first; a *.bench.ts file should import it before other modules):
 * - `ChildProcess.prototype.spawn` is the one path every asynchronous spawn takes (spawn, exec, execFile,
 *   fork), so it is counted even when a library captured `require('child_process').exec` at load time.
 * - spawnSync, execSync and execFileSync are wrapped on the module object. A library that captured one of
 *   them before this module loaded would escape the count; as a cross-check each measurement also reports
 *   the system-wide fork count from /proc/stat (which includes other processes' forks and thread creation).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { performance } from 'node:perf_hooks';

export interface BenchReport {
  name: string;
  rows: Array<Record<string, string | number>>;
  notes: string[];
}

export interface Measurement {
  iterations: number;
  medianMs: number;
  p99Ms: number;
  meanMs: number;
  /** This process's CPU time (user + system, all threads) per call, from process.cpuUsage(). */
  cpuMsPerCall: number;
  /** CPU time of child processes the call spawned and reaped, per call (/proc/self/stat cutime + cstime). */
  childCpuMsPerCall: number;
  /** Processes this process spawned, per call. */
  spawnsPerCall: number;
  /** Forks on the whole machine during the calls, per call: an upper bound that other activity inflates. */
  systemForksPerCall: number;
}

export interface MeasureOptions {
  /** Calls made first and not measured (caches, JIT, first-call set-up). Default 3. */
  warmup?: number;
  /**
   * Pause between calls, outside the measured time, for APIs that return a cached result when called again
   * too soon (systeminformation's disksIO and networkStats within 500 ms, currentLoad within 200 ms).
   */
  gapMs?: number;
}

const require = createRequire(import.meta.url);
let spawned = 0;
let installed = false;
/** Commands spawned, most recent last (capped), for reports that name what a library runs. */
const spawnedCommands: string[] = [];

function note(cmd: unknown): void {
  spawned++;
  if (spawnedCommands.length < 10_000) spawnedCommands.push(String(cmd).replace(/\s+/g, ' ').slice(0, 160));
}

/** Installs the spawn counter (idempotent; done on import). */
export function installSpawnCounter(): void {
  if (installed) return;
  installed = true;
  const cp = require('node:child_process') as typeof import('node:child_process');
  const proto = cp.ChildProcess.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
  const origSpawn = proto.spawn;
  proto.spawn = function countedSpawn(this: unknown, ...args: unknown[]) {
    const o = args[0] as { file?: unknown; args?: unknown } | undefined;
    // exec runs `/bin/sh -c CMD`: name the command, not the shell.
    const argv = Array.isArray(o?.args) ? (o.args as unknown[]).map(String) : [String(o?.file)];
    note(argv[1] === '-c' && argv.length === 3 ? argv[2] : argv.join(' '));
    return origSpawn.apply(this, args);
  };
  const mod = cp as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ['spawnSync', 'execSync', 'execFileSync']) {
    const orig = mod[name];
    if (typeof orig !== 'function') continue;
    mod[name] = function countedSync(this: unknown, ...args: unknown[]) {
      const a = Array.isArray(args[1]) ? ` ${(args[1] as unknown[]).join(' ')}` : '';
      note(`${String(args[0])}${a} (${name})`);
      return orig.apply(this, args);
    };
  }
  syncBuiltinESMExports();
}
installSpawnCounter();

/** Processes spawned by this process since the counter was installed. */
export function spawnCount(): number {
  return spawned;
}

/** The commands spawned since `from` (a spawnCount() value), distinct, in first-seen order. */
export function commandsSince(from: number): string[] {
  const skipped = spawned - spawnedCommands.length;
  return [...new Set(spawnedCommands.slice(Math.max(0, from - skipped)))];
}

/** CPU ticks of reaped children (cutime + cstime), or 0 where /proc is not there. */
function childTicks(): number {
  try {
    const s = readFileSync('/proc/self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // After the comm field: state is f[0], so field N of proc(5) is f[N - 3]; cutime is 16, cstime 17.
    return Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

/** Forks since boot on the whole machine (/proc/stat `processes`), or 0 where unavailable. */
function systemForks(): number {
  try {
    const m = /^processes (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** USER_HZ. 100 on every mainstream Linux architecture; reading it would take `getconf`, a process. */
const CLOCK_TICKS_PER_S = 100;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The p-th percentile (nearest rank) of an ascending array; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Calls `fn` `iterations` times, one call at a time, and reports the median and p99 wall time per call, CPU
 * time per call (this process, and its reaped children), and processes spawned per call. Only the calls
 * themselves are measured, not the warm-up or the gaps.
 */
export async function measure(fn: () => unknown, iterations: number, options: MeasureOptions = {}): Promise<Measurement> {
  const warmup = options.warmup ?? 3;
  const gapMs = options.gapMs ?? 0;
  for (let i = 0; i < warmup; i++) {
    await fn();
    if (gapMs > 0) await sleep(gapMs);
  }
  const wall: number[] = [];
  let cpuUs = 0;
  let ticks = 0;
  let spawns = 0;
  let forks = 0;
  for (let i = 0; i < iterations; i++) {
    const ticks0 = childTicks();
    const forks0 = systemForks();
    const spawns0 = spawned;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    const t1 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    spawns += spawned - spawns0;
    forks += systemForks() - forks0;
    ticks += childTicks() - ticks0;
    cpuUs += cpu.user + cpu.system;
    wall.push(t1 - t0);
    if (gapMs > 0) await sleep(gapMs);
  }
  wall.sort((a, b) => a - b);
  return {
    iterations,
    medianMs: percentile(wall, 50),
    p99Ms: percentile(wall, 99),
    meanMs: wall.reduce((a, b) => a + b, 0) / Math.max(1, iterations),
    cpuMsPerCall: cpuUs / 1000 / iterations,
    childCpuMsPerCall: (ticks * 1000) / CLOCK_TICKS_PER_S / iterations,
    spawnsPerCall: spawns / iterations,
    systemForksPerCall: forks / iterations,
  };
}

/** The median of any array (not sorted in place); NaN when empty. */
export function median(xs: readonly number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

/** Rounds for display: 3 significant digits below 100, whole numbers above. */
export function round(x: number): number {
  if (!Number.isFinite(x)) return x;
  if (Math.abs(x) >= 100) return Math.round(x);
  return Number(x.toPrecision(3));
}

/** A measurement as a report row, after the given leading columns. */
export function measurementRow(lead: Record<string, string | number>, m: Measurement): Record<string, string | number> {
  return {
    ...lead,
    iterations: m.iterations,
    median_ms: round(m.medianMs),
    p99_ms: round(m.p99Ms),
    cpu_ms_per_call: round(m.cpuMsPerCall),
    child_cpu_ms_per_call: round(m.childCpuMsPerCall),
    total_cpu_ms_per_call: round(m.cpuMsPerCall + m.childCpuMsPerCall),
    spawns_per_call: round(m.spawnsPerCall),
    system_forks_per_call: round(m.systemForksPerCall),
  };
}

/** A plain-text table of a report's rows, then its notes. */
export function formatReport(report: BenchReport): string {
  const cols: string[] = [];
  for (const r of report.rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const cell = (v: string | number | undefined) => (v === undefined ? '' : String(v));
  const width = cols.map((c) => Math.max(c.length, ...report.rows.map((r) => cell(r[c]).length)));
  const numeric = cols.map((c) => report.rows.every((r) => r[c] === undefined || typeof r[c] === 'number'));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (numeric[i] ? v.padStart(width[i]!) : v.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  const out = [`## ${report.name}`, '', line(cols), line(width.map((w) => '-'.repeat(w)))];
  for (const r of report.rows) out.push(line(cols.map((c) => cell(r[c]))));
  if (report.notes.length) {
    out.push('');
    for (const n of report.notes) out.push(`- ${n}`);
  }
  return out.join('\n');
}

const TICK_MS = 1000 / 100; // USER_HZ

/** utime + stime of one process, in ms (/proc/<pid>/stat, 10 ms ticks). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** The fields of /proc/<pid>/stat after the comm field: field N of proc(5) is at index N - 3. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The process and its live descendants, found through the parent pid of every process in /proc. */
export function processTreePids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(statFields(Number(name))[1]);
      const list = children.get(ppid);
      if (list) list.push(Number(name));
      else children.set(ppid, [Number(name)]);
    } catch {
      // Gone between readdir and read.
    }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * CPU time of a process with its children, in ms: utime + stime + cutime + cstime of the process and of each live
 * descendant. A child that exits and is reaped moves from its own line into its parent's cutime/cstime, so the sum
 * never drops; a process that exits between two readings (and is not reaped by one of these) takes its time with it.
 */
export function processTreeCpuMs(root: number, pids = processTreePids(root)): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = statFields(pid);
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // Exited meanwhile.
    }
  }
  return ticks * TICK_MS;
}

/**
 * CPU time of a process tree in ms, at nanosecond resolution where the kernel keeps it: sum_exec_runtime of every
 * live thread of the process and its live descendants (/proc/<pid>/task/<tid>/schedstat), plus the cutime + cstime
 * of each of them (children already reaped, 10 ms ticks; rare in a steady daemon). utime + stime
 * (processTreeCpuMs) are the same runtime cut to whole 10 ms ticks (the kernel scales its 4 ms tick samples to it),
 * so at a few ms a minute that figure moves by a tick per window; this one misses only threads that exited.
 */
export function processTreeSchedMs(root: number, pids = processTreePids(root)): number {
  let ns = 0;
  let reapedTicks = 0;
  for (const pid of pids) {
    try {
      const f = statFields(pid);
      reapedTicks += Number(f[13]) + Number(f[14]);
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        try {
          ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        } catch {
          // Thread exited meanwhile.
        }
      }
    } catch {
      // Process exited meanwhile.
    }
  }
  return ns / 1e6 + reapedTicks * TICK_MS;
}

/** VmRSS (resident now) and VmHWM (the peak resident size since start) of one process, KiB. */
export function processMemoryKiB(pid: number): { rssKiB: number; hwmKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** Resident memory of one process, KiB (/proc/<pid>/status). */
export function processRssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Bytes one process has caused to be sent to the storage layer (/proc/<pid>/io write_bytes). */
export function processWriteBytes(pid: number): number {
  const m = /^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}
