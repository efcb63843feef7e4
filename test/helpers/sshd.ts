import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './mosquitto.js';

/**
 * Real OpenSSH servers on loopback for tests (scripts/rollout): each with its own host key, config and PidFile in a
 * temp dir, accepting one generated client key for the current user. Installs Debian's openssh-server when sshd is
 * missing and we are root; otherwise `sshdBinary()` returns undefined and the caller skips.
 */

const SSHD = '/usr/sbin/sshd';
let checked: string | null | undefined;

export function sshdBinary(): string | undefined {
  if (checked !== undefined) return checked ?? undefined;
  const hasClient = () => existsSync('/usr/bin/ssh') && existsSync('/usr/bin/ssh-keygen');
  if ((!existsSync(SSHD) || !hasClient()) && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', 'openssh-server', 'openssh-client'], { stdio: 'pipe', env });
    } catch {
      try {
        execFileSync('apt-get', ['update', '-qq'], { stdio: 'pipe' });
        execFileSync('apt-get', ['install', '-y', '-qq', 'openssh-server', 'openssh-client'], { stdio: 'pipe', env });
      } catch {
        /* no network or no apt: skip */
      }
    }
  }
  checked = existsSync(SSHD) && hasClient() ? SSHD : null;
  return checked ?? undefined;
}

export interface SshClientKeys {
  dir: string;
  /** The client's private key (`ssh -i`). */
  identity: string;
  publicKey: string;
  /** A known_hosts file listing every started server (`[127.0.0.1]:port key`). */
  knownHosts: string;
  user: string;
}

export interface Sshd {
  port: number;
  /** `user@127.0.0.1:port` */
  target: string;
  dir: string;
  stop(): Promise<void>;
  log(): string;
}

/** A client key pair and an (initially empty) known_hosts file, shared by the servers started with it. */
export function sshClientKeys(): SshClientKeys {
  const dir = mkdtempSync(path.join(tmpdir(), 'forewarn-ssh-client-'));
  const identity = path.join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forewarn-test', '-f', identity]);
  const knownHosts = path.join(dir, 'known_hosts');
  writeFileSync(knownHosts, '');
  return { dir, identity, publicKey: readFileSync(`${identity}.pub`, 'utf8'), knownHosts, user: userInfo().username };
}

export async function startSshd(keys: SshClientKeys): Promise<Sshd> {
  const bin = sshdBinary();
  if (!bin) throw new Error('sshd is not installed and this user cannot install it: sudo apt-get install openssh-server');
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation
  const dir = mkdtempSync(path.join(tmpdir(), 'forewarn-sshd-'));
  const hostKey = path.join(dir, 'host_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forewarn-test-host', '-f', hostKey]);
  writeFileSync(path.join(dir, 'authorized_keys'), keys.publicKey);
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UseDNS no',
      'KexAlgorithms curve25519-sha256', // the post-quantum default costs ~80 ms a connection on a small CI host
      'MaxStartups 100:30:200',
      'MaxSessions 50',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(keys.knownHosts, `${readFileSync(keys.knownHosts, 'utf8')}[127.0.0.1]:${port} ${hostPub}\n`);
  let log = '';
  const child: ChildProcess = spawn(bin, ['-D', '-e', '-f', config, '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d) => (log += d));
  child.stderr?.on('data', (d) => (log += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port, 10_000),
      exited.then(() => {
        throw new Error(`sshd exited: ${log}`);
      }),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    port,
    target: `${keys.user}@127.0.0.1:${port}`,
    dir,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
