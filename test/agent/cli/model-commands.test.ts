import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../../helpers/agent-process.js';
import { machineFailureAt, tempDir } from '../../helpers/model-fixtures.js';

/** `forewarn model keygen|bundle|install|list|rollback`, the compiled CLI as operators run it. */

function config(dir: string, scoring: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'forewarn.yaml');
  writeFileSync(file, stringify({ storage: { dir: path.join(dir, 'data') }, scoring }));
  return file;
}

describe('forewarn model (updates)', () => {
  it('keygen → bundle → install → list → rollback, and refuses what it must', async () => {
    const dir = tempDir('fw-cli-model-');
    const keys = path.join(dir, 'keys');
    const gen = await runCli(['model', 'keygen', '--out', keys, '--json']);
    expect(gen.stderr).toBe('');
    expect(gen.code).toBe(0);
    const k = JSON.parse(gen.stdout) as { privateFile: string; publicFile: string; keyId: string };
    expect(statSync(k.privateFile).mode & 0o777).toBe(0o600);
    // A key is never overwritten.
    const again = await runCli(['model', 'keygen', '--out', keys]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('[FW_ERR_MODEL_KEY]');

    const bundle = path.join(dir, 'machine-failure-1.1.0.fwm');
    const b = await runCli(['model', 'bundle', machineFailureAt('1.1.0'), '--key', k.privateFile, '--out', bundle]);
    expect(b.code).toBe(0);
    expect(b.stdout).toContain(`machine-failure@1.1.0 signed with key ${k.keyId}`);

    // No trusted key: refused, with the reason.
    const untrusting = config(path.join(dir, 'a'), {});
    const refused = await runCli(['model', 'install', bundle, '--config', untrusting]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('no trusted key is configured (scoring.trustedKeys)');
    expect(refused.stderr).toContain('[FW_ERR_MODEL_UNTRUSTED]');

    const cfg = config(dir, { trustedKeys: [k.publicFile] });
    const inst = await runCli(['model', 'install', bundle, '--config', cfg]);
    expect(inst.stderr).toBe('');
    expect(inst.code).toBe(0);
    expect(inst.stdout).toContain(`machine-failure@1.1.0: signature verified (key ${k.keyId}), loads, golden outputs match (33 rows`);
    expect(inst.stdout).toContain('installed as candidate beside 1.0.0; no agent is running on');

    // A tampered bundle: rejected, exit 1, the code on stderr.
    const tampered = path.join(dir, 'tampered.fwm');
    writeFileSync(tampered, readFileSync(bundle, 'utf8').replace('"version":"1.1.0"', '"version":"1.1.1"'));
    const bad = await runCli(['model', 'install', tampered, '--config', cfg]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/does not verify.*\[FW_ERR_MODEL_UNTRUSTED\]/);

    const list = await runCli(['model', 'list', '--config', cfg, '--json']);
    expect(list.code).toBe(0);
    const models = (
      JSON.parse(list.stdout) as { models: Array<{ name: string; inUse: string; candidate: string | null; shipped: { version: string } | null }> }
    ).models;
    expect(models.find((m) => m.name === 'machine-failure')).toMatchObject({ inUse: '1.0.0', candidate: '1.1.0', shipped: { version: '1.0.0' } });
    expect(models.map((m) => m.name)).toEqual(expect.arrayContaining(['disk-failure', 'turbofan-rul']));
    const text = await runCli(['model', 'list', '--config', cfg]);
    expect(text.stdout).toMatch(/installed {2}1\.1\.0 +candidate/);

    // Nothing installed is in use yet: nothing to roll back.
    const none = await runCli(['model', 'rollback', 'machine-failure', '--config', cfg]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('[FW_ERR_MODEL_REGISTRY]');

    // Shadowing off (from the environment, like any option): promoted at once; then rolled back to the shipped model.
    const b2 = path.join(dir, 'machine-failure-1.2.0.fwm');
    expect((await runCli(['model', 'bundle', machineFailureAt('1.2.0'), '--key', k.privateFile, '--out', b2])).code).toBe(0);
    const now = await runCli(['model', 'install', b2, '--config', cfg], { env: { FOREWARN_SCORING_SHADOW_SAMPLES: '0' } });
    expect(now.code).toBe(0);
    expect(now.stdout).toContain('replaces the candidate 1.1.0');
    expect(now.stdout).toContain('installed and promoted (scoring.shadow.samples is 0)');
    const rb = await runCli(['model', 'rollback', 'machine-failure', '--config', cfg, '--reason', 'field report']);
    expect(rb.code).toBe(0);
    expect(rb.stdout).toContain('machine-failure: rolled back 1.2.0 → 1.0.0');
    const after = JSON.parse((await runCli(['model', 'list', '--config', cfg, '--json'])).stdout) as {
      models: Array<{ name: string; inUse: string; history: Array<{ reason?: string }> }>;
    };
    const mf = after.models.find((m) => m.name === 'machine-failure')!;
    expect(mf.inUse).toBe('1.0.0');
    expect(mf.history.at(-1)!.reason).toBe('field report');
  });

  it('exits 2 on usage errors', async () => {
    expect((await runCli(['model', 'install'])).code).toBe(2);
    expect((await runCli(['model', 'bundle', 'x', '--key', 'k'])).code).toBe(2);
    expect((await runCli(['model', 'list', '--bogus'])).code).toBe(2);
    const help = await runCli(['model', 'install', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('forewarn model keygen --out DIR');
  });
});
