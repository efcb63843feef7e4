// scripts/install.sh and scripts/uninstall.sh against a temporary --root (docs/install.md).
//
// The tarballs here are small packages with the release layout (VERSION, BUILD-INFO, SHA256SUMS, scripts/, dist/,
// bin/): the install scripts never look inside the agent's code, so they need not be the 22 MiB real build, which
// test/scripts/package.test.ts builds and checks. The --root has a minimal etc/passwd, group, shadow and gshadow,
// so when the tests run as root (as in CI) the scripts create and remove the forewarn user with
// `useradd --root` / `userdel --root` for real, in the temporary root, never in this host's /etc/passwd.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeFakeRelease } from '../helpers/fake-release.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const INSTALL = path.join(REPO, 'scripts/install.sh');
const UNINSTALL = path.join(REPO, 'scripts/uninstall.sh');
const IS_ROOT = process.getuid?.() === 0;
const HAS_USERADD = spawnSync('sh', ['-c', 'command -v useradd && command -v userdel && command -v groupdel']).status === 0;
const MAKES_USER = IS_ROOT && HAS_USERADD;

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'forewarn-install-test-'));
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** A package with the release layout; `tamper` alters it after SHA256SUMS is written. */
function makeTarball(version: string, tamper?: (top: string) => void): string {
  return makeFakeRelease({ dir: work, version, ...(tamper ? { tamper, tag: 'tampered' } : {}) });
}

/** A target root with just enough of /etc for useradd --root. */
function makeRoot(withPasswd = true): string {
  const root = fs.mkdtempSync(path.join(work, 'root-'));
  if (withPasswd) {
    fs.mkdirSync(path.join(root, 'etc'));
    fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\n');
    fs.writeFileSync(path.join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 });
    fs.writeFileSync(path.join(root, 'etc/gshadow'), 'root:*::\n', { mode: 0o640 });
  }
  return root;
}

function sh(script: string, args: string[]): { status: number; out: string } {
  const r = spawnSync('bash', [script, ...args], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function install(root: string, tarball: string, ...extra: string[]) {
  const r = sh(INSTALL, ['--root', root, ...extra, tarball]);
  expect(r.status, r.out).toBe(0);
  return r.out;
}

/** Every entry under root: type, mode, owner, size, content hash, mtime of files, link target (not folder mtimes). */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = path.join(rel, name);
      const st = fs.lstatSync(path.join(root, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`L ${r} -> ${fs.readlinkSync(path.join(root, r))}`);
      else if (st.isDirectory()) {
        out.push(`D ${r} ${mode} ${st.uid}:${st.gid}`);
        walk(r);
      } else {
        const hash = createHash('sha256')
          .update(fs.readFileSync(path.join(root, r)))
          .digest('hex')
          .slice(0, 16);
        out.push(`F ${r} ${mode} ${st.uid}:${st.gid} ${st.size} ${hash} ${st.mtimeMs}`);
      }
    }
  };
  walk('');
  return out;
}

function mode(p: string): string {
  return (fs.statSync(p).mode & 0o7777).toString(8).padStart(4, '0');
}

function passwdEntry(root: string, user: string): string[] | undefined {
  const line = fs
    .readFileSync(path.join(root, 'etc/passwd'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  return line?.split(':');
}

describe('install.sh', () => {
  it('installs into a --root with the documented layout, modes and owner', () => {
    const root = makeRoot();
    const out = install(root, makeTarball('0.1.0'));
    expect(out).toContain('checksums OK');
    expect(fs.readlinkSync(path.join(root, 'opt/forewarn/current'))).toBe('0.1.0');
    expect(fs.readFileSync(path.join(root, 'opt/forewarn/current/VERSION'), 'utf8')).toBe('0.1.0\n');
    expect(mode(path.join(root, 'opt/forewarn/0.1.0'))).toBe('0755');
    expect(mode(path.join(root, 'opt/forewarn/0.1.0/bin/forewarn'))).toBe('0755');
    expect(mode(path.join(root, 'opt/forewarn/0.1.0/VERSION'))).toBe('0644');
    // Data 0700, configuration folder 0750, configuration 0640 (the agent's umask makes the database 0600).
    expect(mode(path.join(root, 'var/lib/forewarn'))).toBe('0700');
    expect(mode(path.join(root, 'etc/forewarn'))).toBe('0750');
    expect(mode(path.join(root, 'etc/forewarn/forewarn.yaml'))).toBe('0640');
    expect(fs.readFileSync(path.join(root, 'etc/forewarn/forewarn.yaml'), 'utf8')).toBe(
      fs.readFileSync(path.join(REPO, 'scripts/forewarn.default.yaml'), 'utf8'),
    );
    expect(mode(path.join(root, 'etc/systemd/system/forewarn.service'))).toBe('0644');
    expect(fs.readlinkSync(path.join(root, 'usr/local/bin/forewarn'))).toBe('/opt/forewarn/current/bin/forewarn');
    expect(out).toContain('--root: no service was enabled or started');
    // The code belongs to whoever installed it (root), never to the agent's user.
    const code = fs.statSync(path.join(root, 'opt/forewarn/0.1.0/dist/agent/src/cli.js'));
    expect(code.uid).toBe(process.getuid?.());
    if (MAKES_USER) {
      const user = passwdEntry(root, 'forewarn');
      expect(user, 'forewarn in <root>/etc/passwd').toBeDefined();
      const [, , uid, gid, , home, shell] = user!;
      expect(Number(uid)).toBeLessThan(1000); // a system user
      expect(home).toBe('/var/lib/forewarn');
      expect(shell).toMatch(/nologin$|\/false$/);
      expect(fs.readFileSync(path.join(root, 'etc/group'), 'utf8')).toContain(`forewarn:x:${gid}:`);
      const data = fs.statSync(path.join(root, 'var/lib/forewarn'));
      expect([data.uid, data.gid]).toEqual([Number(uid), Number(gid)]);
      const etc = fs.statSync(path.join(root, 'etc/forewarn'));
      expect([etc.uid, etc.gid]).toEqual([0, Number(gid)]);
      const config = fs.statSync(path.join(root, 'etc/forewarn/forewarn.yaml'));
      expect([config.uid, config.gid]).toEqual([0, Number(gid)]);
      // This host's own passwd was not touched.
      expect(spawnSync('getent', ['passwd', 'forewarn']).status === 0).toBe(hostHadForewarn);
    }
  });

  const hostHadForewarn = spawnSync('getent', ['passwd', 'forewarn']).status === 0;

  it('is idempotent: a second run changes nothing and keeps an edited configuration', () => {
    const root = makeRoot();
    const tarball = makeTarball('0.1.0');
    install(root, tarball);
    const config = path.join(root, 'etc/forewarn/forewarn.yaml');
    fs.writeFileSync(config, 'storage:\n  dir: /var/lib/forewarn\n# edited by the operator\n');
    const before = snapshot(root);
    const out = install(root, tarball);
    expect(out).toContain('already installed and intact');
    expect(out).toContain('kept the existing');
    expect(out).toContain('current is already 0.1.0');
    expect(snapshot(root)).toEqual(before);
    expect(fs.readFileSync(config, 'utf8')).toContain('# edited by the operator');
  });

  it('upgrades: keeps the configuration and the data, switches current, keeps the last three versions', () => {
    const root = makeRoot();
    install(root, makeTarball('1.0.0'));
    const config = path.join(root, 'etc/forewarn/forewarn.yaml');
    fs.writeFileSync(config, 'agent:\n  id: press-7\n');
    fs.chmodSync(config, 0o600);
    const db = path.join(root, 'var/lib/forewarn/forewarn.db');
    fs.writeFileSync(db, 'buffered records', { mode: 0o600 });

    const out = install(root, makeTarball('1.1.0'));
    expect(out).toContain('current → 1.1.0 (was 1.0.0)');
    expect(fs.readlinkSync(path.join(root, 'opt/forewarn/current'))).toBe('1.1.0');
    expect(fs.readFileSync(path.join(root, 'opt/forewarn/current/VERSION'), 'utf8')).toBe('1.1.0\n');
    expect(fs.existsSync(path.join(root, 'opt/forewarn/1.0.0/VERSION'))).toBe(true); // for rollback
    expect(fs.readFileSync(config, 'utf8')).toBe('agent:\n  id: press-7\n');
    expect(mode(config)).toBe('0600'); // an existing configuration is not touched at all
    expect(fs.readFileSync(db, 'utf8')).toBe('buffered records');
    expect(mode(db)).toBe('0600');
    expect(mode(path.join(root, 'var/lib/forewarn'))).toBe('0700');

    install(root, makeTarball('1.2.0'));
    install(root, makeTarball('1.3.0'));
    const versions = fs.readdirSync(path.join(root, 'opt/forewarn')).filter((n) => !n.startsWith('.') && n !== 'current');
    expect(versions.sort()).toEqual(['1.1.0', '1.2.0', '1.3.0']);
    expect(fs.readlinkSync(path.join(root, 'opt/forewarn/current'))).toBe('1.3.0');

    // Rolling back is installing (or pointing current at) an earlier version: it becomes the newest installed.
    install(root, makeTarball('1.1.0'));
    expect(fs.readlinkSync(path.join(root, 'opt/forewarn/current'))).toBe('1.1.0');
    expect(fs.readFileSync(db, 'utf8')).toBe('buffered records');
  });

  it('refuses a tampered tarball and installs nothing', () => {
    const root = makeRoot();
    for (const tamper of [
      (top: string) => fs.appendFileSync(path.join(top, 'dist/agent/src/cli.js'), '// injected\n'),
      (top: string) => fs.writeFileSync(path.join(top, 'dist/agent/src/extra.js'), 'unlisted\n'),
      (top: string) => fs.rmSync(path.join(top, 'bin/forewarn')),
    ]) {
      const r = sh(INSTALL, ['--root', root, makeTarball('0.2.0', tamper)]);
      expect(r.status, r.out).not.toBe(0);
      expect(r.out).toMatch(/checksum mismatch|does not list|nothing was installed/);
      expect(fs.readdirSync(path.join(root, 'opt/forewarn'))).toEqual([]);
      expect(fs.existsSync(path.join(root, 'etc/forewarn'))).toBe(false);
      expect(fs.existsSync(path.join(root, 'var/lib/forewarn'))).toBe(false);
    }
  });

  it('refuses bad usage and a missing tarball', () => {
    expect(sh(INSTALL, []).status).toBe(2);
    expect(sh(INSTALL, ['--bogus', 'x']).status).toBe(2);
    const r = sh(INSTALL, ['--root', makeRoot(), path.join(work, 'nope.tar.gz')]);
    expect(r.status).toBe(1);
    expect(r.out).toContain('no such tarball');
  });

  it('without <root>/etc/passwd says what user to create instead of creating one', () => {
    const root = makeRoot(false);
    const out = install(root, makeTarball('0.1.0'));
    expect(out).toContain('not creating the user forewarn');
    expect(out).toContain('useradd --system');
    expect(fs.existsSync(path.join(root, 'etc/passwd'))).toBe(false);
    expect(mode(path.join(root, 'var/lib/forewarn'))).toBe('0700');
  });
});

describe('uninstall.sh', () => {
  it('keeps the data and the configuration; --purge removes them and the user', () => {
    const root = makeRoot();
    install(root, makeTarball('1.0.0'));
    install(root, makeTarball('1.1.0'));
    fs.writeFileSync(path.join(root, 'var/lib/forewarn/forewarn.db'), 'buffered records', { mode: 0o600 });

    let r = sh(UNINSTALL, ['--root', root]);
    expect(r.status, r.out).toBe(0);
    expect(fs.existsSync(path.join(root, 'opt/forewarn'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'etc/systemd/system/forewarn.service'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'usr/local/bin/forewarn'))).toBe(false);
    expect(fs.readFileSync(path.join(root, 'var/lib/forewarn/forewarn.db'), 'utf8')).toBe('buffered records');
    expect(fs.existsSync(path.join(root, 'etc/forewarn/forewarn.yaml'))).toBe(true);
    if (MAKES_USER) expect(passwdEntry(root, 'forewarn')).toBeDefined();
    expect(r.out).toContain('kept the data');

    // Again: nothing left to remove is not an error.
    r = sh(UNINSTALL, ['--root', root]);
    expect(r.status, r.out).toBe(0);

    // Reinstalling finds the kept configuration and data.
    install(root, makeTarball('1.1.0'));
    expect(fs.readFileSync(path.join(root, 'var/lib/forewarn/forewarn.db'), 'utf8')).toBe('buffered records');

    r = sh(UNINSTALL, ['--root', root, '--purge']);
    expect(r.status, r.out).toBe(0);
    expect(fs.existsSync(path.join(root, 'opt/forewarn'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'var/lib/forewarn'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'etc/forewarn'))).toBe(false);
    if (MAKES_USER) {
      expect(passwdEntry(root, 'forewarn')).toBeUndefined();
      expect(fs.readFileSync(path.join(root, 'etc/group'), 'utf8')).not.toMatch(/^forewarn:/m);
    }
  });
});

// shellcheck over these and the other shell scripts: test/scripts/shellcheck.test.ts.
