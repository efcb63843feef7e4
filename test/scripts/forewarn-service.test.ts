import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS } from '../bench/side-by-side/peers.js';
import { ROOT } from '../helpers/agent-process.js';

/**
 * scripts/forewarn.service and its drop-ins (docs/service.md): `systemd-analyze verify` accepts them without a
 * warning, and `systemd-analyze security --offline=true` rates the base unit's exposure at 2.0 or less, as each
 * privileged-source drop-in on its own.
 */

const UNIT = path.join(ROOT, 'scripts/forewarn.service');
const DROPINS = path.join(ROOT, 'scripts/forewarn.service.d');
const MAX_EXPOSURE = 2.0;

const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
const SKIP = ANALYZE ? '' : 'systemd-analyze is not installed (Debian package systemd)';

/** The unit (and the drop-ins named) in a temp dir of their own; verify wants ExecStart's program to exist. */
function stage(dropins: string[]): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-unit-'));
  let text = readFileSync(UNIT, 'utf8');
  if (!existsSync('/usr/bin/node')) text = text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
  writeFileSync(path.join(dir, 'forewarn.service'), text);
  if (dropins.length) {
    mkdirSync(path.join(dir, 'forewarn.service.d'));
    for (const d of dropins) copyFileSync(path.join(DROPINS, d), path.join(dir, 'forewarn.service.d', d));
  }
  return path.join(dir, 'forewarn.service');
}

function analyze(args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(ANALYZE!, args, { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function exposure(unit: string): number {
  const r = analyze(['security', '--offline=true', '--no-pager', unit]);
  const m = /Overall exposure level for forewarn\.service:\s*([\d.]+)/.exec(r.out + r.err);
  if (!m) throw new Error(`no exposure level in systemd-analyze output (${r.status}):\n${r.out}\n${r.err}`);
  return Number(m[1]);
}

const dropins = readdirSync(DROPINS).filter((f) => f.endsWith('.conf'));

describe.skipIf(!!SKIP)(`scripts/forewarn.service${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => {
  it('is a Type=notify unit with a watchdog, restarts always, and runs as user forewarn', () => {
    const text = readFileSync(UNIT, 'utf8');
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'Restart=always',
      'User=forewarn',
      'Group=forewarn',
      'StateDirectory=forewarn',
      'WorkingDirectory=/var/lib/forewarn',
      'ExecStart=/usr/bin/node --v8-pool-size=1 --no-opt /opt/forewarn/current/dist/agent/src/cli.js run --config /etc/forewarn/forewarn.yaml',
    ]) {
      expect(text.split('\n')).toContain(line);
    }
    expect(text).toMatch(/^WatchdogSec=\d+s$/m);
    expect(text).toMatch(/^RestartSec=\d+s$/m);
  });

  it('passes systemd-analyze verify, alone and with every drop-in', () => {
    for (const set of [[], dropins]) {
      const unit = stage(set);
      try {
        const r = analyze(['verify', '--man=no', unit]);
        expect({ status: r.status, err: r.err.trim() }, set.join(', ')).toEqual({ status: 0, err: '' });
      } finally {
        rmSync(path.dirname(unit), { recursive: true, force: true });
      }
    }
  });

  it(`rates exposure ${MAX_EXPOSURE} or less in systemd-analyze security, alone and with each privileged-source drop-in`, () => {
    expect(dropins.sort()).toEqual(['gpu.conf', 'ipmi.conf', 'kernel-log.conf', 'smart.conf']);
    for (const set of [[], ...dropins.map((d) => [d])]) {
      const unit = stage(set);
      try {
        expect(exposure(unit), set.join(', ') || 'base unit').toBeLessThanOrEqual(MAX_EXPOSURE);
      } finally {
        rmSync(path.dirname(unit), { recursive: true, force: true });
      }
    }
  });
});

// Needs no systemd: runs everywhere.
describe("the daemon's node flags", () => {
  it('starts node with the same flags as `npm start` and the side-by-side bench', () => {
    const unitFlags = /^ExecStart=\/usr\/bin\/node ((?:--\S+ )*)\S+cli\.js run/m.exec(readFileSync(UNIT, 'utf8'))?.[1]?.trim().split(' ');
    const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
    const startFlags = /^node ((?:--\S+ )*)dist\/agent\/src\/cli\.js run$/.exec(start)?.[1]?.trim().split(' ');
    expect(unitFlags).toEqual(DAEMON_NODE_FLAGS);
    expect(startFlags).toEqual(DAEMON_NODE_FLAGS);
    expect(readFileSync(path.join(ROOT, 'scripts/measure-rss.sh'), 'utf8')).toContain(`"${DAEMON_NODE_FLAGS.join(' ')}"`);
  });
});
