import { spawn } from 'node:child_process';

/** Running a source's command-line tool (smartctl, ipmitool, …) safely: no shell, a timeout, a cap on output. */

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** The exit code, or null when killed by a signal or never started. */
  code: number | null;
  timedOut: boolean;
  /** Set when the process could not be started at all (ENOENT: not installed; EACCES: not executable). */
  spawnError: NodeJS.ErrnoException | null;
}

/**
 * Runs a tool without a shell, with a timeout (SIGKILL, so a hung ioctl cannot keep it) and a cap on what it may
 * print. Never rejects.
 */
export function runTool(binary: string, args: readonly string[], opts: { timeoutMs: number; maxBytes?: number; env?: NodeJS.ProcessEnv }): Promise<ToolResult> {
  const maxBytes = opts.maxBytes ?? 8 * 1024 * 1024;
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    } catch (err) {
      resolve({ stdout: '', stderr: '', code: null, timedOut: false, spawnError: err as NodeJS.ErrnoException });
      return;
    }
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    let bytes = 0;
    let timedOut = false;
    let spawnError: NodeJS.ErrnoException | null = null;
    const keep = (into: Buffer[]) => (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= maxBytes) into.push(chunk);
      else child.kill('SIGKILL');
    };
    child.stdout.on('data', keep(out));
    child.stderr.on('data', keep(errOut));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      spawnError = err as NodeJS.ErrnoException;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), code, timedOut, spawnError });
    });
  });
}
