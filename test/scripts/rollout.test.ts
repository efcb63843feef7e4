// scripts/rollout against three real sshd instances on loopback (docs/rollout.md). Each "host" is an sshd with its
// own host key and port, and its own install root (inventory `root=`), so install.sh runs with --root and the gate
// is an inventory `gate=` command. The packages are small ones in the release layout (as in install.test.ts); the
// fake agent (`dist/agent/src/cli.js`) prints its version, or exits 1 in a broken package.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto } from '../helpers/mosquitto.js';
import { sshClientKeys, sshdBinary, startSshd, type Sshd, type SshClientKeys } from '../helpers/sshd.js';

import { makeFakeRelease } from '../helpers/fake-release.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const ROLLOUT = path.join(REPO, 'scripts/rollout');
const INSTALL = path.join(REPO, 'scripts/install.sh');
const HAS_SSHD = sshdBinary() !== undefined;

let work: string;
let keys: SshClientKeys;
const servers: Sshd[] = [];

beforeAll(async () => {
  if (!HAS_SSHD) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'forewarn-rollout-test-'));
  keys = sshClientKeys();
  for (let i = 0; i < 3; i++) servers.push(await startSshd(keys));
});
afterAll(async () => {
  for (const s of servers.splice(0)) await s.stop();
  if (keys) fs.rmSync(keys.dir, { recursive: true, force: true });
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const tarballs = new Map<string, string>();
/** A package in the release layout; a `broken` one's agent exits 1. */
function makeTarball(version: string, broken = false): string {
  const key = `${version}/${broken}`;
  if (!tarballs.has(key)) {
    const cli = broken
      ? `process.stderr.write('agent broken: cannot load\\n'); process.exit(1);\n`
      : `process.stdout.write(${JSON.stringify(`agent ${version} ok\n`)});\n`;
    tarballs.set(key, makeFakeRelease({ dir: work, version, cli, ...(broken ? { tag: 'broken' } : {}) }));
  }
  return tarballs.get(key)!;
}

const GATE = `gate='node "$FOREWARN_ROOT/opt/forewarn/current/dist/agent/src/cli.js"'`;

/** Three install roots with `version` installed, and an inventory naming them. */
function fleet(version: string, gates: string[] = []): { dir: string; roots: string[]; inventory: string } {
  const dir = fs.mkdtempSync(path.join(work, 'fleet-'));
  const roots = servers.map((_, i) => path.join(dir, `host${i + 1}`));
  for (const root of roots) execFileSync('bash', [INSTALL, '--root', root, makeTarball(version)], { stdio: 'pipe' });
  const inventory = path.join(dir, 'inventory');
  fs.writeFileSync(
    inventory,
    `# test fleet\n` + servers.map((s, i) => `host${i + 1}  ${s.target}  root=${roots[i]}  agent_id=press-${i + 1}  ${gates[i] ?? GATE}\n`).join(''),
  );
  return { dir, roots, inventory };
}

/** Runs scripts/rollout; `watch` is called every 50 ms while it runs, with a function that interrupts it (SIGTERM). */
function rollout(args: string[], watch?: (kill: () => void) => void): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      ROLLOUT,
      ['--identity', keys.identity, '--known-hosts', keys.knownHosts, '--ssh-option=-F none', '--connect-timeout', '3', '--gate-interval', '0.1', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const timer = watch ? setInterval(() => watch(() => child.kill('SIGTERM')), 50) : undefined;
    child.on('close', (code) => {
      clearInterval(timer);
      resolve({ code, out });
    });
  });
}

const current = (root: string) => fs.readlinkSync(path.join(root, 'opt/forewarn/current'));
const versions = (root: string) =>
  fs
    .readdirSync(path.join(root, 'opt/forewarn'))
    .filter((n) => !n.startsWith('.') && n !== 'current')
    .sort();
interface Row {
  host: string;
  wave: string;
  from: string | null;
  to: string;
  result: string;
  reason: string | null;
  evidence: string | null;
  durationMs: number | null;
}
const readReport = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as { ok: boolean; halted: string | null; hosts: Row[] };

describe('scripts/rollout usage', () => {
  it('refuses a bad inventory line and bad usage with exit 2, before any ssh', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forewarn-rollout-usage-'));
    try {
      const inventory = path.join(dir, 'inventory');
      fs.writeFileSync(inventory, 'ok-host root@127.0.0.1:22\nbad-host 127.0.0.1 root=/x\n');
      let r = spawnSync(ROLLOUT, ['--inventory', inventory, '--package', path.join(dir, 'none.tar.gz')], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain('inventory:2: expected user@host[:port], not 127.0.0.1');
      fs.writeFileSync(inventory, 'h root@127.0.0.1 color=blue\n');
      r = spawnSync(ROLLOUT, ['--inventory', inventory, '--package', path.join(dir, 'none.tar.gz')], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('unknown setting color=blue');
      expect(spawnSync(ROLLOUT, ['--inventory', inventory], { encoding: 'utf8' }).status).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!HAS_SSHD)('scripts/rollout over ssh', () => {
  it('--dry-run shows the waves, hosts and versions and changes nothing', async () => {
    const f = fleet('1.0.0');
    const state = path.join(f.dir, 'state.json');
    const r = await rollout(['--inventory', f.inventory, '--package', makeTarball('1.1.0'), '--canary', '1', '--parallel', '2', '--state', state, '--dry-run']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('dry run: forewarn 1.1.0');
    expect(r.out).toMatch(/canary:\n\s+host1 .* 1\.0\.0 → 1\.1\.0\s+install/);
    expect(r.out).toMatch(/wave 1:\n\s+host2 .* 1\.0\.0 → 1\.1\.0\s+install.*\n\s+host3 .* 1\.0\.0 → 1\.1\.0\s+install/);
    for (const root of f.roots) {
      expect(current(root)).toBe('1.0.0');
      expect(versions(root)).toEqual(['1.0.0']);
    }
    expect(fs.existsSync(state)).toBe(false);
  });

  it('rolls a package out to three hosts: canary 1, then a wave of 2 in parallel; reports from/to per host', async () => {
    const f = fleet('1.0.0');
    const report = path.join(f.dir, 'report.json');
    const state = path.join(f.dir, 'state.json');
    const r = await rollout([
      '--inventory',
      f.inventory,
      '--package',
      makeTarball('1.1.0'),
      '--canary',
      '1',
      '--parallel',
      '2',
      '--state',
      state,
      '--report',
      report,
    ]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('All hosts are on the new version.');
    expect(r.out.indexOf('canary: host1')).toBeLessThan(r.out.indexOf('wave 1: host2, host3'));
    for (const root of f.roots) {
      expect(current(root)).toBe('1.1.0');
      expect(versions(root)).toEqual(['1.0.0', '1.1.0']); // the previous one kept for rollback
    }
    const rep = readReport(report);
    expect(rep.ok).toBe(true);
    expect(rep.hosts.map((h) => [h.host, h.wave, h.from, h.to, h.result])).toEqual([
      ['host1', 'canary', '1.0.0', '1.1.0', 'upgraded'],
      ['host2', 'wave 1', '1.0.0', '1.1.0', 'upgraded'],
      ['host3', 'wave 1', '1.0.0', '1.1.0', 'upgraded'],
    ]);
    for (const h of rep.hosts) {
      expect(h.evidence).toContain('agent 1.1.0 ok');
      expect(h.durationMs).toBeGreaterThanOrEqual(0);
    }
    // Running it again changes nothing: every host is already on the version.
    const again = await rollout([
      '--inventory',
      f.inventory,
      '--package',
      makeTarball('1.1.0'),
      '--state',
      path.join(f.dir, 'state2.json'),
      '--report',
      report,
    ]);
    expect(again.code, again.out).toBe(0);
    expect(readReport(report).hosts.map((h) => h.result)).toEqual(['unchanged', 'unchanged', 'unchanged']);
  });

  it('a package whose gate fails on the canary: the canary is rolled back, the rollout halts, the others are untouched', async () => {
    const f = fleet('1.1.0');
    const report = path.join(f.dir, 'report.json');
    const r = await rollout([
      '--inventory',
      f.inventory,
      '--package',
      makeTarball('1.2.0', true),
      '--canary',
      '1',
      '--parallel',
      '2',
      '--gate-timeout',
      '1',
      '--state',
      path.join(f.dir, 'state.json'),
      '--report',
      report,
    ]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain('HALTED');
    expect(current(f.roots[0]!)).toBe('1.1.0'); // rolled back
    expect(versions(f.roots[0]!)).toEqual(['1.1.0', '1.2.0']);
    for (const root of f.roots.slice(1)) {
      expect(current(root)).toBe('1.1.0');
      expect(versions(root)).toEqual(['1.1.0']); // never touched
    }
    const rep = readReport(report);
    expect(rep.ok).toBe(false);
    expect(rep.halted).toContain('host1 rolled-back in the canary');
    const [h1, h2, h3] = rep.hosts;
    expect([h1!.from, h1!.to, h1!.result]).toEqual(['1.1.0', '1.2.0', 'rolled-back']);
    expect(h1!.reason).toContain('gate failed');
    expect(h1!.reason).toContain('agent broken');
    expect(h1!.reason).toContain('rolled back to 1.1.0');
    expect([h2!.result, h3!.result]).toEqual(['skipped', 'skipped']);
  });

  it('--resume after an interrupted run skips the hosts already done and finishes the others', async () => {
    const release = path.join(work, `release-${Date.now()}`);
    // host2's gate waits for a file: the run is interrupted while host2 is in its gate.
    const f = fleet('1.0.0', [GATE, `gate='test -f ${release} && node "$FOREWARN_ROOT/opt/forewarn/current/dist/agent/src/cli.js"'`, GATE]);
    const state = path.join(f.dir, 'state.json');
    const report = path.join(f.dir, 'report.json');
    const args = ['--inventory', f.inventory, '--package', makeTarball('1.1.0'), '--canary', '1', '--parallel', '1', '--gate-timeout', '60'];
    let killed = false;
    const first = await rollout([...args, '--state', state], (kill) => {
      if (!killed && fs.existsSync(state)) {
        const s = JSON.parse(fs.readFileSync(state, 'utf8')) as { hosts: Record<string, { state: string }> };
        if (s.hosts.host2?.state === 'gating') {
          killed = true;
          kill();
        }
      }
    });
    expect(killed, first.out).toBe(true);
    expect(first.code, first.out).toBe(130);
    const s = JSON.parse(fs.readFileSync(state, 'utf8')) as { hosts: Record<string, { state: string; result?: string; from?: string }> };
    expect(s.hosts.host1!.result).toBe('upgraded');
    expect(s.hosts.host2!.state).toBe('gating');
    expect(s.hosts.host3!.state).toBe('pending');
    expect(current(f.roots[2]!)).toBe('1.0.0');
    const host1Dir = fs.statSync(path.join(f.roots[0]!, 'opt/forewarn/1.1.0')).mtimeMs;

    fs.writeFileSync(release, '');
    const second = await rollout([...args, '--resume', state, '--report', report]);
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain('host1: skipped (already upgraded');
    expect(fs.statSync(path.join(f.roots[0]!, 'opt/forewarn/1.1.0')).mtimeMs).toBe(host1Dir); // not touched again
    for (const root of f.roots) expect(current(root)).toBe('1.1.0');
    const rep = readReport(report);
    expect(rep.hosts.map((h) => [h.host, h.from, h.result])).toEqual([
      ['host1', '1.0.0', 'upgraded'],
      ['host2', '1.0.0', 'upgraded'], // the version it started from before the interruption
      ['host3', '1.0.0', 'upgraded'],
    ]);
  });

  it('--broker: the gate waits for status online with the new agentVersion and records flowing; a stale agent is rolled back', async () => {
    const broker = await startMosquitto();
    const client = await mqtt.connectAsync(broker.url, { clientId: `rollout-test-agents-${process.pid}` });
    try {
      const f = fleet('1.0.0');
      const status = (id: string, version: string) =>
        JSON.stringify({ schemaVersion: 1, agentId: id, state: 'online', ts: Date.now(), bootSeq: 1, agentVersion: version });
      // Every agent is online with 1.0.0 (retained) before the rollout: that alone must not pass the gate.
      for (let i = 1; i <= 3; i++) await client.publishAsync(`forewarn/v1/press-${i}/status`, status(`press-${i}`, '1.0.0'), { qos: 1, retain: true });
      const state = path.join(f.dir, 'state.json');
      const report = path.join(f.dir, 'report.json');
      const answered = new Set<string>();
      const r = await rollout(
        [
          '--inventory',
          f.inventory,
          '--package',
          makeTarball('1.1.0'),
          '--canary',
          '1',
          '--parallel',
          '2',
          '--gate-timeout',
          '3',
          '--broker',
          broker.url,
          '--state',
          state,
          '--report',
          report,
        ],
        () => {
          if (!fs.existsSync(state)) return;
          const s = JSON.parse(fs.readFileSync(state, 'utf8')) as { hosts: Record<string, { state: string }> };
          for (const [name, h] of Object.entries(s.hosts)) {
            if (h.state !== 'gating' || answered.has(name)) continue;
            answered.add(name);
            const id = `press-${name.slice(4)}`;
            // host3's agent "did not restart": it stays online with the old version, and sends records.
            const version = name === 'host3' ? '1.0.0' : '1.1.0';
            void client.publishAsync(`forewarn/v1/${id}/status`, status(id, version), { qos: 1, retain: true }).then(() =>
              client.publishAsync(`forewarn/v1/${id}/telemetry`, JSON.stringify({ schemaVersion: 1, agentId: id, stream: 'telemetry', records: [] }), {
                qos: 1,
              }),
            );
          }
        },
      );
      expect(r.code, r.out).toBe(1);
      const rep = readReport(report);
      expect(rep.hosts.map((h) => [h.host, h.result])).toEqual([
        ['host1', 'upgraded'],
        ['host2', 'upgraded'],
        ['host3', 'rolled-back'],
      ]);
      expect(rep.hosts[0]!.evidence).toContain('broker: status online with agentVersion 1.1.0');
      expect(rep.hosts[2]!.reason).toContain('not online with 1.1.0');
      expect(current(f.roots[2]!)).toBe('1.0.0');
    } finally {
      await client.endAsync();
      await broker.stop();
    }
  });
});
