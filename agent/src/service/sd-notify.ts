/**
 * systemd's service notification protocol (sd_notify(3)) for `Type=notify` units: READY=1 once the agent has
 * started, WATCHDOG=1 every WATCHDOG_USEC/2 while the event loop runs, STOPPING=1 on shutdown, STATUS= lines for
 * `systemctl status`. With NOTIFY_SOCKET unset (not under systemd, or a `Type=simple` unit) it does nothing at all:
 * no timer, no process, no file.
 *
 * How the datagrams are sent: by running `systemd-notify VAR=VALUE…` (found next to systemd, /usr/bin or /bin).
 * The protocol is one AF_UNIX SOCK_DGRAM datagram to NOTIFY_SOCKET (a path, or `@name` in the abstract namespace),
 * and Node cannot send one: node:dgram does only UDP, node:net only stream sockets. The alternatives weighed:
 *  - npm `sd-notify` and `unix-dgram` are native addons without prebuilt binaries: `npm ci` would need a compiler
 *    (and `sd-notify` libsystemd's headers) on every edge host. Not acceptable.
 *  - python3 or socat as a long-lived helper: not guaranteed on a minimal host, and one more moving part.
 *  - `systemd-notify` ships with systemd itself, so it is on every host where NOTIFY_SOCKET can be set; it handles
 *    path and abstract sockets; and since systemd 246 it waits (sd_notify_barrier, at most 5 s) until the manager
 *    has read the message, so the old race (the sender exits before systemd resolves its PID to the unit, and the
 *    message is dropped) is gone. Its cost: the message comes from a child of the agent, so the unit needs
 *    `NotifyAccess=all` (scripts/forewarn.service): any process of the unit may then notify — all of them are the
 *    agent or the tools it runs. One short process per ping (every 15 s with WatchdogSec=30s) is negligible.
 *
 * The watchdog: a plain timer on the event loop, so a loop that is stuck (a runaway synchronous computation, a
 * blocking native call) stops the pings and systemd restarts the agent — which is the point. A ping is skipped while
 * the previous one is still running (a stalled systemd-notify must not pile up processes). WATCHDOG_PID, when set,
 * must be this process: otherwise the watchdog is meant for another process of the unit and is not ours to feed.
 *
 * Like sd_notify(unset_environment=1), the variables are removed from process.env once read, so the tools the
 * sources run (smartctl, ipmitool, nvidia-smi) do not inherit them.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { everyOnGrid, type GridInterval } from '../core/grid.js';

export interface NotifyLogger {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface SdNotifyOptions {
  /** Defaults to process.env (whose NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are then removed). */
  env?: NodeJS.ProcessEnv;
  /** The systemd-notify executable; found in /usr/bin or /bin when left out. */
  binary?: string;
  log?: NotifyLogger;
  /** Defaults to process.pid; compared with WATCHDOG_PID. */
  pid?: number;
}

/** The shortest ping interval, whatever WATCHDOG_USEC says: one process per ping must stay cheap. */
export const MIN_WATCHDOG_PING_MS = 50;
/** How long one systemd-notify may run (its barrier waits at most 5 s). */
const SEND_TIMEOUT_MS = 10_000;
const BINARY_CANDIDATES = ['/usr/bin/systemd-notify', '/bin/systemd-notify'];

/** The ping interval for WATCHDOG_USEC (half of it, as sd_watchdog_enabled(3) advises), or null when there is no watchdog for `pid`. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  return Math.max(MIN_WATCHDOG_PING_MS, Math.floor(usec / 2000));
}

/** Values in STATUS= end at a newline: keep them on one line. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

export class SdNotify {
  /** NOTIFY_SOCKET, or null: then every method does nothing. */
  readonly socket: string | null;
  readonly watchdogMs: number | null;
  private readonly binary: string | null;
  private readonly log: NotifyLogger | undefined;
  private timer: GridInterval | null = null;
  private pinging = false;
  /** The watchdog ping in flight, if any. */
  private ping: Promise<unknown> = Promise.resolve();
  private closed = false;
  private warned = false;

  constructor(options: SdNotifyOptions = {}) {
    const env = options.env ?? process.env;
    this.log = options.log;
    this.socket = env.NOTIFY_SOCKET ? env.NOTIFY_SOCKET : null;
    this.watchdogMs = this.socket ? watchdogIntervalMs(env, options.pid ?? process.pid) : null;
    if (!options.env) {
      delete process.env.NOTIFY_SOCKET;
      delete process.env.WATCHDOG_USEC;
      delete process.env.WATCHDOG_PID;
    }
    this.binary = this.socket ? (options.binary ?? BINARY_CANDIDATES.find((p) => existsSync(p)) ?? 'systemd-notify') : null;
  }

  get enabled(): boolean {
    return this.socket !== null;
  }

  /** READY=1 (with a STATUS= line), then the watchdog pings start when WATCHDOG_USEC asks for them. */
  async ready(status?: string): Promise<void> {
    if (!this.socket || this.closed) return;
    await this.send(['READY=1', ...(status ? [`STATUS=${oneLine(status)}`] : [])]);
    this.startWatchdog();
  }

  async status(status: string): Promise<void> {
    if (!this.socket || this.closed) return;
    await this.send([`STATUS=${oneLine(status)}`]);
  }

  /**
   * RELOADING=1 while the configuration is reloaded (SIGHUP); READY=1 follows once the new pipeline runs.
   * MONOTONIC_USEC is what `Type=notify-reload` units need (sd_notify(3)); plain `Type=notify` ignores it.
   */
  async reloading(status?: string): Promise<void> {
    if (!this.socket || this.closed) return;
    await this.send(['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`, ...(status ? [`STATUS=${oneLine(status)}`] : [])]);
  }

  /** STOPPING=1, the last message: the pings stop too (systemd no longer watches a unit that is stopping). */
  async stopping(status?: string): Promise<void> {
    if (!this.socket || this.closed) return;
    // Nothing after this but the message itself: a READY=1 from a start that finishes late must not follow it.
    this.close();
    // A ping already on its way must land first: each message is its own process, and they may overtake.
    await this.ping;
    await this.send(['STOPPING=1', ...(status ? [`STATUS=${oneLine(status)}`] : [])]);
  }

  /** Stops the pings; nothing is sent afterwards. */
  close(): void {
    this.closed = true;
    this.stopWatchdog();
  }

  private startWatchdog(): void {
    if (this.watchdogMs === null || this.timer) return;
    this.timer = everyOnGrid(() => {
      if (this.pinging) return;
      this.pinging = true;
      this.ping = this.send(['WATCHDOG=1']).finally(() => (this.pinging = false));
    }, this.watchdogMs);
    // The pings alone must not keep a stopped agent alive.
    this.timer.unref();
  }

  private stopWatchdog(): void {
    this.timer?.clear();
    this.timer = null;
  }

  /** Runs systemd-notify; never throws: a failure is logged (a warning once, then at debug level). */
  private send(assignments: string[]): Promise<void> {
    const socket = this.socket;
    const binary = this.binary;
    if (!socket || !binary) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let stderr = '';
      let finished = false;
      const done = (problem: string | null) => {
        if (finished) return;
        finished = true;
        clearTimeout(timeout);
        if (problem) this.report(assignments, problem);
        resolve();
      };
      const child = spawn(binary, assignments, {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: socket },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const timeout = setTimeout(() => child.kill('SIGKILL'), SEND_TIMEOUT_MS);
      child.stderr!.on('data', (d) => (stderr += String(d)));
      child.once('error', (err) => done(`cannot run ${binary}: ${err.message}`));
      child.once('close', (code, signal) => {
        if (code === 0) done(null);
        else done(`${binary} ${signal ? `was killed (${signal})` : `exited ${code}`}${stderr.trim() ? `: ${oneLine(stderr)}` : ''}`);
      });
    });
  }

  private report(assignments: string[], problem: string): void {
    const obj = { notifySocket: this.socket, message: assignments.join(' '), problem };
    if (!this.warned) {
      this.warned = true;
      this.log?.warn(obj, 'cannot notify systemd');
    } else {
      this.log?.debug(obj, 'cannot notify systemd');
    }
  }
}
