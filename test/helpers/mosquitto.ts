import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';

/**
 * A real mosquitto broker for integration tests: its own config, on a free loopback port, in a temp dir.
 * Installs the Debian package when it is missing and we are root; otherwise fails saying how to install it.
 */

const CANDIDATES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'];

function findBinary(): string | undefined {
  return CANDIDATES.find((p) => existsSync(p));
}

let installed: string | undefined;

export function mosquittoBinary(): string {
  if (installed) return installed;
  let bin = findBinary();
  if (!bin && process.getuid?.() === 0) {
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', 'mosquitto'], { stdio: 'pipe', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } catch {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'pipe' });
      execFileSync('apt-get', ['install', '-y', '-qq', 'mosquitto'], { stdio: 'pipe', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    }
    bin = findBinary();
  }
  if (!bin) {
    throw new Error('mosquitto is not installed and this user cannot install it. Install it with: sudo apt-get install mosquitto');
  }
  return (installed = bin);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Broker {
  port: number;
  url: string;
  dir: string;
  stop(): Promise<void>;
  /** Freezes the broker process (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void;
  resume(): void;
  /** Stops and starts it again on the same port, keeping its persistence. */
  restart(): Promise<void>;
  log(): string;
}

export async function startMosquitto(options: { extraConfig?: string[]; port?: number } = {}): Promise<Broker> {
  const bin = mosquittoBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'forewarn-mosquitto-'));
  const port = options.port ?? (await freePort());
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      // Run as ourselves: started as root, mosquitto would drop to its own user and lose access to this temp dir.
      `user ${userInfo().username}`,
      'per_listener_settings false',
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${dir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      ...(options.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  let output = '';
  let proc: ChildProcess;
  const launch = async () => {
    proc = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (d) => (output += String(d)));
    proc.stderr?.on('data', (d) => (output += String(d)));
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${output}`))));
    await Promise.race([waitForPort(port), exited]);
  };
  const kill = async () => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGCONT');
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 3000).unref();
    });
  };
  await launch();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    log: () => output,
    pause: () => proc.kill('SIGSTOP'),
    resume: () => proc.kill('SIGCONT'),
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
