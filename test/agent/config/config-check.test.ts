import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { CLI, exitedWithOutput, runCli } from '../../helpers/agent-process.js';
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
async function runAgent(file: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const proc = spawn(process.execPath, [CLI, 'run', '--config', file], {
    cwd: path.dirname(file),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += String(d)));
  proc.stderr.on('data', (d) => (output += String(d)));
  const guard = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const { code, signal } = await exitedWithOutput(proc);
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

  it('refuses an alert rule the catalogue does not know, and a clear value on the wrong side, in check and at start', async () => {
    const file = configFile('agent:\n  view: "off"\nalerts:\n  rules:\n    gpu.no_such_rule:\n      forMs: 0\n    gpu.ecc.uncorrected:\n      clearValue: 5\n');
    const r = await runCli(['config', 'check', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[FW_ERR_CONFIG_INVALID]');
    expect(r.stderr).toContain('  alerts.rules.gpu.no_such_rule: unknown rule');
    expect(r.stderr).toContain("  alerts.rules.gpu.ecc.uncorrected.clearValue: must be at most the rule's threshold 0");
    const run = await runAgent(file);
    expect(run.signal, run.output).toBeNull();
    expect(run.code, run.output).toBe(2);
    expect(run.output).toContain('alerts.rules.gpu.no_such_rule: unknown rule');
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

  it('applies the FOREWARN_* environment exactly as `run` does: a setup run refuses is not called valid', async () => {
    const dir = tempDir();
    const file = configFile(`storage:\n  dir: ${dir}/data\nagent:\n  view: "off"\nbroker:\n  keepaliveSeconds: 30s\n`, dir);
    const env = { FOREWARN_BROKER_KEEPALIVE_SECONDS: '2', FOREWARN_STORAGE_MAX_BYTES: '1GiB' };
    const line = '  broker.keepaliveSeconds: must be >= 5 (from FOREWARN_BROKER_KEEPALIVE_SECONDS)\n';
    // The file alone is valid…
    expect(await runCli(['config', 'check', file])).toMatchObject({ code: 0, stdout: `${file}: valid\n` });
    // …with the override both refuse it, with the same line.
    const check = await runCli(['config', 'check', file], { env });
    expect(check.code).toBe(2);
    expect(check.stderr).toContain(line);
    const run = await runAgent(file, env);
    expect(run, run.output).toMatchObject({ code: 2, signal: null });
    expect(run.output).toContain(line);
    // A good override is applied and named; FOREWARN_CONFIG names the file as it does for `run`.
    const ok = await runCli(['config', 'check'], { env: { FOREWARN_CONFIG: file, FOREWARN_STORAGE_MAX_BYTES: '512MiB' } });
    expect(ok).toMatchObject({ code: 0, stdout: `${file}: valid (with FOREWARN_STORAGE_MAX_BYTES from the environment)\n` });
    const json = await runCli(['config', 'check', file, '--json'], { env: { FOREWARN_STORAGE_MAX_BYTES: '512MiB' } });
    expect((JSON.parse(json.stdout) as { storage: { maxBytes: number } }).storage.maxBytes).toBe(512 * 2 ** 20);
  });
});

describe('forewarn config show', () => {
  it('prints every option with its value and where it came from; secrets redacted', async () => {
    const dir = tempDir();
    const file = configFile(`storage:\n  dir: ${dir}/data\n  maxBytes: 2GiB\nbroker:\n  username: edge-7\n`, dir);
    const env = { FOREWARN_BROKER_PASSWORD: 'hunter2-secret', FOREWARN_BROKER_URL: 'mqtt://central:1883' };
    const r = await runCli(['config', 'show', file], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    const row = (option: string) => lines.find((l) => l.startsWith(`${option}: `));
    expect(row('storage.maxBytes')).toMatch(new RegExp(`^storage\\.maxBytes: 2147483648 +# ${file}$`));
    expect(row('broker.url')).toMatch(/^broker\.url: "mqtt:\/\/central:1883" +# FOREWARN_BROKER_URL$/);
    expect(row('broker.password')).toMatch(/^broker\.password: "\[redacted\]" +# FOREWARN_BROKER_PASSWORD$/);
    expect(row('broker.maxInflight')).toMatch(/^broker\.maxInflight: 10 +# default$/);
    expect(r.stdout).not.toContain('hunter2-secret');
    const json = JSON.parse((await runCli(['config', 'show', file, '--json'], { env })).stdout) as Record<string, { value: unknown; from: string }>;
    expect(json['commands.enabled']).toEqual({ value: 'auto', from: 'default' });
    expect(json['broker.username']).toEqual({ value: 'edge-7', from: file });
    expect(json['broker.password']).toEqual({ value: '[redacted]', from: 'FOREWARN_BROKER_PASSWORD' });
    // What `run` would refuse, `show` refuses too.
    const bad = await runCli(['config', 'show', file], { env: { FOREWARN_METRICS_PORT: '70000' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('  metrics.port: must be <= 65535 (from FOREWARN_METRICS_PORT)\n');
  });

  it('stops quietly when its reader is gone (`config show | true`: EPIPE on the first write)', async () => {
    const out = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" config show | true`], { cwd: tempDir() });
    let stderr = '';
    out.stderr.on('data', (d) => (stderr += String(d)));
    await exitedWithOutput(out);
    expect(stderr).toBe('');
  });
});
