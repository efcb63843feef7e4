import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AgentConfig } from '../config/load-config.js';

/** What the model commands say about the agent that will act on their change (docs/model-updates.md). */

export const time = (ts: number): string =>
  new Date(ts)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');

/** The pid of the agent running on this storage directory, if any; -1 when one runs as another user. */
function runningAgent(config: AgentConfig): number | null {
  try {
    const pid = Number(readFileSync(path.join(config.storage.dir, 'agent.pid'), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? -1 : null;
  }
}

export function agentNote(config: AgentConfig, what: string): string {
  const pid = runningAgent(config);
  return pid === null
    ? `no agent is running on ${config.storage.dir}: ${what} when it starts`
    : `the running agent${pid > 0 ? ` (pid ${pid})` : ''} ${what} within scoring.updateCheckIntervalMs (${config.scoring.updateCheckIntervalMs} ms)`;
}
