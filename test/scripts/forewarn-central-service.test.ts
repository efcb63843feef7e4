import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/agent-process.js';

/**
 * scripts/forewarn-central.service (docs/central.md): `systemd-analyze verify` accepts it, it runs the central
 * command as user forewarn with its secrets from an environment file, and its exposure is as low as the agent's.
 */

const UNIT = path.join(ROOT, 'scripts/forewarn-central.service');
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
const SKIP = ANALYZE ? '' : 'systemd-analyze is not installed (Debian package systemd)';

function staged(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-central-unit-'));
  let text = readFileSync(UNIT, 'utf8');
  if (!existsSync('/usr/bin/node')) text = text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
  writeFileSync(path.join(dir, 'forewarn-central.service'), text);
  return path.join(dir, 'forewarn-central.service');
}

describe.skipIf(!!SKIP)(`scripts/forewarn-central.service${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => {
  it('runs forewarn central as user forewarn, secrets from an environment file, never on the command line', () => {
    const text = readFileSync(UNIT, 'utf8');
    for (const line of ['User=forewarn', 'Restart=always', 'EnvironmentFile=-/etc/forewarn/central.env', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=']) {
      expect(text.split('\n')).toContain(line);
    }
    const exec = text.slice(text.indexOf('ExecStart='), text.indexOf('\n', text.indexOf('--api')));
    expect(exec).toContain('cli.js central');
    expect(exec).not.toMatch(/postgres:\/\/[^@\s]*:[^@\s]*@/); // no password in the store URL
    expect(exec).not.toContain('--password ');
  });

  it('passes systemd-analyze verify and rates exposure 2.0 or less', () => {
    const unit = staged();
    try {
      const v = spawnSync(ANALYZE!, ['verify', '--man=no', unit], { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0' } });
      expect({ status: v.status, err: v.stderr.trim() }).toEqual({ status: 0, err: '' });
      const s = spawnSync(ANALYZE!, ['security', '--offline=true', '--no-pager', unit], { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0' } });
      const m = /Overall exposure level for forewarn-central\.service:\s*([\d.]+)/.exec(s.stdout + s.stderr);
      expect(m, s.stdout + s.stderr).not.toBeNull();
      expect(Number(m![1])).toBeLessThanOrEqual(2.0);
    } finally {
      rmSync(path.dirname(unit), { recursive: true, force: true });
    }
  });
});
