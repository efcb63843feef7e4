import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { CLI, runCli } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { tmpfsForTest } from '../../helpers/tmpfs.js';

/** `forewarn config check FILE` and `forewarn run`, the real CLI, on configurations that used to crash, hang or pass. */

const cleanup = cleanupAfterEach();

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-check-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function configFile(yaml: string, dir = tempDir()): string {
  const file = path.join(dir, 'forewarn.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** `forewarn run`, killed if it does not exit on its own: a refused configuration must end it, not leave it spinning. */
async function runAgent(file: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const proc = spawn(process.execPath, [CLI, 'run', '--config', file], { cwd: path.dirname(file), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => (output += String(d)));
  proc.stderr.on('data', (d) => (output += String(d)));
  const guard = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(guard);
  return { code, signal, output };
}

const procIsProc = (() => {
  try {
    return statfsSync('/proc').type === 0x9fa0;
  } catch {
    return false;
  }
})();

const BILLION_LAUGHS = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  .concat([...'bcdefghi'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`))
  .join('\n');

describe('forewarn config check', () => {
  it('exits 2 with a coded `file: message` line for an alias bomb and for an alias without its anchor', async () => {
    const bomb = configFile(BILLION_LAUGHS);
    const r = await runCli(['config', 'check', bomb]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `forewarn: ${bomb}: not valid YAML [FW_ERR_CONFIG_READ]\n  ${bomb}: Excessive alias count indicates a resource exhaustion attack`,
    );
    const undef = configFile('agent:\n  id: *nope\n');
    const u = await runCli(['config', 'check', undef]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain(`  ${undef}: Unresolved alias (the anchor must be set before the alias): nope at line 2, column 7`);
    // The agent refuses it the same way at start.
    const run = await runAgent(bomb);
    expect(run).toMatchObject({ code: 2, signal: null });
    expect(run.output).toContain('[FW_ERR_CONFIG_READ]');
  });

  it.skipIf(!procIsProc)('refuses storage.dir under /proc, and the agent exits at start instead of spinning', async () => {
    const file = configFile('storage:\n  dir: /proc/forewarn-test\nagent:\n  view: "off"\n');
    const r = await runCli(['config', 'check', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\[FW_ERR_CONFIG_INVALID\]\n {2}storage\.dir: \/proc\/forewarn-test is on proc, a virtual file system/);
    const run = await runAgent(file);
    expect(run.signal, run.output).toBeNull();
    expect(run.code, run.output).toBe(2);
    expect(run.output).toMatch(/storage\.dir: \/proc\/forewarn-test is on proc/);
  });

  it('refuses a byte size of 1e29, a model name that is a path and a trusted key that does not exist, one `path: message` each', async () => {
    const dir = tempDir();
    const file = configFile(
      `storage:\n  dir: ${dir}/data\n  maxBytes: 1e29\nscoring:\n  bindings:\n    - model: ../../../etc\n      assets: [x]\ncommands:\n  trustedKeys: [${dir}/centre.pub.pem]\n`,
      dir,
    );
    const r = await runCli(['config', 'check', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('  storage.maxBytes: must be <= 1125899906842624\n');
    expect(r.stderr).toMatch(/ {2}scoring\.bindings\.0\.model: Model name: .* \(must match /);
    // Host checks come after the schema: fix the schema problems and the missing key is named.
    const keys = configFile(`storage:\n  dir: ${dir}/data\ncommands:\n  trustedKeys: [${dir}/centre.pub.pem]\n`, dir);
    const k = await runCli(['config', 'check', keys]);
    expect(k.code).toBe(2);
    expect(k.stderr).toContain(`  commands.trustedKeys[0]: ${dir}/centre.pub.pem does not exist\n`);
  });

  it('refuses an explicit floor larger than half the disk; warns about a quota larger than the disk', async () => {
    const dir = tempDir();
    const floor = await runCli(['config', 'check', configFile(`storage:\n  dir: ${dir}/data\n  minFreeBytes: ${2 ** 50}\n`, dir)]);
    expect(floor.code).toBe(2);
    expect(floor.stderr).toMatch(/\[FW_ERR_CONFIG_INVALID\]\n {2}storage\.minFreeBytes: 1 PiB is more than half of the .* file system at /);
    const quotaFile = configFile(`storage:\n  dir: ${dir}/data\n  maxBytes: ${2 ** 50}\n`, dir);
    const quota = await runCli(['config', 'check', quotaFile]);
    expect(quota.code).toBe(0);
    expect(quota.stdout).toBe(`${quotaFile}: valid\n`);
    expect(quota.stderr).toMatch(/warning: storage\.maxBytes: 1 PiB is larger than the .* file system .* \[FW_ERR_STORAGE_LIMITS\]/);
  });

  it('on a real 16 MiB file system: the default floor is clamped with a note, an explicit 12 MiB floor refused', async (ctx: TestContext) => {
    const fs = tmpfsForTest(ctx, 16, cleanup);
    const conf = tempDir();
    const clampedFile = configFile(`storage:\n  dir: ${fs}/data\n`, conf);
    const clamped = await runCli(['config', 'check', clampedFile]);
    expect(clamped.code, clamped.stderr).toBe(0);
    expect(clamped.stderr).toContain(
      `clamped: storage.minFreeBytes: the default 256 MiB is more than half of the 16 MiB file system at ${fs}; clamped to 1.6 MiB`,
    );
    const explicit = await runCli(['config', 'check', configFile(`storage:\n  dir: ${fs}/data\n  minFreeBytes: 12582912\n  maxBytes: 8388608\n`, conf)]);
    expect(explicit.code).toBe(2);
    expect(explicit.stderr).toContain(`  storage.minFreeBytes: 12 MiB is more than half of the 16 MiB file system at ${fs}`);
  });
});
