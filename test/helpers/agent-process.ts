import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

/** The real agent, compiled, as its own process: what `npm start` runs. */

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'dist/agent/src/cli.js');

export interface AgentProcess {
  proc: ChildProcess;
  dir: string;
  configFile: string;
  output: () => string;
  /** Parsed JSON log lines so far. */
  logs: () => Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The child's exit, once what it wrote to its pipes has been read. 'exit' can come before the last of its output
 * (a loaded machine reads the pipe later): a test that reads the output at 'exit' then finds it cut short or empty.
 * 'close' waits for the pipes; a grandchild that kept them open would hold it back, so 2 s after 'exit' this
 * resolves anyway.
 */
export function exitedWithOutput(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    let late: NodeJS.Timeout | undefined;
    proc.once('exit', (code, signal) => (late = setTimeout(() => resolve({ code, signal }), 2000)));
    proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(late);
      resolve({ code, signal });
    });
  });
}

export function writeAgentConfig(config: Record<string, unknown>, dir = mkdtempSync(path.join(tmpdir(), 'fw-agent-'))): { dir: string; file: string } {
  const file = path.join(dir, 'forewarn.yaml');
  writeFileSync(file, stringify({ storage: { dir: path.join(dir, 'data') }, ...config }));
  return { dir, file };
}

export function startAgent(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): AgentProcess {
  const { dir, file } = writeAgentConfig(config);
  return spawnAgent(['run', '--config', file], dir, file, env);
}

export function spawnAgent(args: string[], dir: string, configFile: string, env: NodeJS.ProcessEnv = {}): AgentProcess {
  let output = '';
  const proc = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => (output += String(d)));
  proc.stderr!.on('data', (d) => (output += String(d)));
  const exited = exitedWithOutput(proc);
  return {
    proc,
    dir,
    configFile,
    output: () => output,
    logs: () =>
      output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
  };
}

/** Kills the agent with SIGKILL unless it has exited already, and waits for it: a test's cleanup step. */
export async function killAgent(agent: AgentProcess): Promise<void> {
  if (agent.proc.exitCode === null && agent.proc.signalCode === null) {
    agent.proc.kill('SIGKILL');
    await agent.exited;
  }
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += String(d)));
  proc.stderr.on('data', (d) => (stderr += String(d)));
  const { code } = await exitedWithOutput(proc);
  return { code, stdout, stderr };
}
