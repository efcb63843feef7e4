import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/agent-process.js';

/** What a new user meets before the agent runs: the licence, the npm settings, the install line of the README. */

const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');
/** This environment without what an outer `npm test` hands down (its npm_config_* would answer for .npmrc). */
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

describe('repository', () => {
  it('ships the Apache-2.0 licence that package.json names, in full', () => {
    expect((JSON.parse(read('package.json')) as { license: string }).license).toBe('Apache-2.0');
    const license = read('LICENSE');
    expect(license).toMatch(/^\s+Apache License\n\s+Version 2\.0, January 2004\n/);
    expect(license).toContain('TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION');
    expect(license).toContain('9. Accepting Warranty or Additional Liability.');
    expect(license).toContain('END OF TERMS AND CONDITIONS');
  });

  it('.npmrc keeps onnxruntime-node from downloading CUDA files, and npx forewarn prints no npm warning', () => {
    const npmrc = read('.npmrc');
    expect(npmrc).toMatch(/^onnxruntime-node-install=skip$/m);
    expect(npmrc).toMatch(/^engine-strict=true$/m);
    // The key reaches onnxruntime-node's install script as npm hands config to scripts (npm_config_*).
    const env = spawnSync('npm', ['exec', '--', 'node', '-e', 'process.stdout.write(String(process.env.npm_config_onnxruntime_node_install))'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: cleanEnv(),
    });
    expect(env.stdout).toBe('skip');
    expect(env.stderr).not.toMatch(/npm warn/i);
    const npx = spawnSync('npx', ['forewarn', '--version'], { cwd: ROOT, encoding: 'utf8', env: cleanEnv() });
    expect(npx.status).toBe(0);
    expect(npx.stdout).toBe(`${(JSON.parse(read('package.json')) as { version: string }).version}\n`);
    expect(npx.stderr).toBe('');
  }, 60_000);

  it('the README says how to get Node.js 20 on Debian 12, in one command', () => {
    const readme = read('README.md');
    expect(readme).toContain('curl -fsSL https://deb.nodesource.com/setup_20.x | sudo -E bash - && sudo apt-get install -y nodejs');
    expect(readme).toMatch(/Debian 12[^\n]*Node\.js 18/);
  });
});
