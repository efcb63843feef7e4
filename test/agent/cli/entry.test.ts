import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIN_NODE_VERSION, nodeVersionProblem } from '../../../agent/src/cli/node-version.js';
import { ERROR_CODES, EXIT_CODES } from '../../../agent/src/core/errors.js';
import { CLI, ROOT } from '../../helpers/agent-process.js';

/** The entry (agent/src/cli.ts): the Node.js version is checked before anything that an old Node could not load. */

/** A preload that makes this Node report another version, as an old one would. */
const pretend = (version: string) => `data:text/javascript,Object.defineProperty(process.versions,"node",{value:${JSON.stringify(version)}})`;

describe('forewarn entry', () => {
  it('requires what package.json engines.node says', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(`>=${MIN_NODE_VERSION}`.replace(/\.0$/, '')).toBe(pkg.engines.node);
    expect(nodeVersionProblem('20.19.0')).toBeNull();
    expect(nodeVersionProblem('22.1.0')).toBeNull();
    expect(nodeVersionProblem('20.20.2')).toBeNull();
    expect(nodeVersionProblem('20.18.3')).toMatch(/^Node\.js 20\.19\.0 or newer is needed; this is Node\.js 20\.18\.3/);
    expect(nodeVersionProblem('18.19.0')).toContain('curl -fsSL https://deb.nodesource.com/setup_20.x | sudo -E bash - && sudo apt-get install -y nodejs');
    expect(ERROR_CODES.FW_ERR_NODE_VERSION).toBeTypeOf('string');
    expect(EXIT_CODES.FW_ERR_NODE_VERSION).toBe(1);
  });

  it('on Debian 12’s Node.js 18: one clear message with the code, exit 1, and nothing else run', () => {
    for (const args of [['--version'], ['run'], ['config', 'check']]) {
      const r = spawnSync(process.execPath, ['--import', pretend('18.19.0'), CLI, ...args], { encoding: 'utf8', cwd: ROOT });
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^forewarn: Node\.js 20\.19\.0 or newer is needed; this is Node\.js 18\.19\.0 \(/);
      expect(r.stderr).toContain('[FW_ERR_NODE_VERSION]');
    }
    // The same command on this Node runs.
    expect(spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' }).status).toBe(0);
  });

  it('imports nothing before the check but the check itself', () => {
    const entry = readFileSync(CLI, 'utf8');
    expect([...entry.matchAll(/^\s*import\s.*$/gm)].map((m) => m[0].trim())).toEqual(["import { nodeVersionProblem } from './cli/node-version.js';"]);
    expect(readFileSync(path.join(path.dirname(CLI), 'cli/node-version.js'), 'utf8')).not.toMatch(/^\s*import\s/m);
    expect(entry).toContain("import('./cli/main.js')");
  });
});
