import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  /** The TLS listener's port and `mqtts://127.0.0.1:port` URL; present when started with `tls`. */
  tlsPort?: number;
  tlsUrl?: string;
  dir: string;
  stop(): Promise<void>;
  /** Freezes the broker process (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void;
  resume(): void;
  /**
   * Stops and starts it again on the same port(s), keeping its persistence and configuration. `SIGKILL` kills it
   * at once (no final save of its persistence file), as a crash or an OOM kill would; the default stops it cleanly.
   */
  restart(options?: { signal?: 'SIGTERM' | 'SIGKILL'; downMs?: number }): Promise<void>;
  /** Rewrites the ACL file (when started with `acl`) and makes mosquitto reload it (SIGHUP). */
  setAcl(lines: string[]): Promise<void>;
  log(): string;
}

export interface TlsBroker extends Broker {
  tlsPort: number;
  tlsUrl: string;
}

export interface MosquittoTls {
  /** CA that client certificates must chain to (and that clients use to check the server). */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** `require_certificate`: refuse the TLS handshake of a client without a certificate from caFile. Default false. */
  requireCertificate?: boolean;
  /** `use_identity_as_username`: the client certificate's CN becomes the username; no password check then. Default false. */
  useIdentityAsUsername?: boolean;
  /** Port of the TLS listener; a free one when left out. */
  port?: number;
  /** More lines for the TLS listener only (they follow its `listener` line). */
  listenerConfig?: string[];
}

export interface MosquittoOptions {
  /** Appended after the generated settings; listener options here apply to the plain listener, as always. */
  extraConfig?: string[];
  /** Port of the plain listener; a free one when left out. */
  port?: number;
  /** Users and passwords for a password file (made with mosquitto_passwd); implies `allow_anonymous false`. */
  passwords?: Record<string, string>;
  /** Lines of an ACL file, e.g. `pattern write forewarn/v1/%u/#`, `user central`, `topic read forewarn/v1/#`. */
  acl?: string[];
  /** A second, TLS listener on 127.0.0.1 (the plain listener stays). */
  tls?: MosquittoTls;
  /** `allow_anonymous`; default true, or false when `passwords` is given. Applies to every listener. */
  allowAnonymous?: boolean;
}

const PASSWD_CANDIDATES = ['/usr/bin/mosquitto_passwd', '/usr/sbin/mosquitto_passwd', '/usr/local/bin/mosquitto_passwd'];

/** mosquitto_passwd, from the same Debian package as the broker. */
export function mosquittoPasswdBinary(): string {
  mosquittoBinary();
  const bin = PASSWD_CANDIDATES.find((p) => existsSync(p));
  if (!bin) throw new Error('mosquitto_passwd is not installed (it comes with the mosquitto package): sudo apt-get install mosquitto');
  return bin;
}

/** Writes a mosquitto password file (hashed by mosquitto_passwd), mode 0600. */
export function writePasswordFile(file: string, passwords: Record<string, string>): void {
  const bin = mosquittoPasswdBinary();
  const entries = Object.entries(passwords);
  if (entries.length === 0) {
    writeFileSync(file, '', { mode: 0o600 });
  }
  entries.forEach(([user, password], i) => {
    if (user.includes(':')) throw new Error(`a mosquitto username cannot contain ':' (${user})`);
    execFileSync(bin, ['-b', ...(i === 0 ? ['-c'] : []), file, user, password], { stdio: 'pipe' });
  });
  chmodSync(file, 0o600);
}

/**
 * Starts mosquitto 2 with `per_listener_settings false`: allow_anonymous, the password file and the ACL file are
 * global and apply to both listeners. On the TLS listener with `useIdentityAsUsername`, the certificate's CN is the
 * username and mosquitto skips the password check there (a certificate user needs no password entry), but the
 * ACL still applies to that username; `requireCertificate` without `useIdentityAsUsername` only gates the handshake
 * (the client still authenticates with username/password when a password file is in use).
 */
export async function startMosquitto(options: MosquittoOptions & { tls: MosquittoTls }): Promise<TlsBroker>;
export async function startMosquitto(options?: MosquittoOptions): Promise<Broker>;
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Broker> {
  const bin = mosquittoBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'forewarn-mosquitto-'));
  chmodSync(dir, 0o700);
  const port = options.port ?? (await freePort());
  const tls = options.tls;
  const tlsPort = tls ? (tls.port ?? (await freePort())) : undefined;
  const conf = path.join(dir, 'mosquitto.conf');
  const security: string[] = [];
  if (options.passwords) {
    const file = path.join(dir, 'passwords');
    writePasswordFile(file, options.passwords);
    security.push(`password_file ${file}`);
  }
  if (options.acl) {
    const file = path.join(dir, 'acl');
    writeFileSync(file, [...options.acl, ''].join('\n'), { mode: 0o600 });
    chmodSync(file, 0o600);
    security.push(`acl_file ${file}`);
  }
  const allowAnonymous = options.allowAnonymous ?? !options.passwords;
  const tlsListener = tls
    ? [
        `listener ${tlsPort} 127.0.0.1`,
        `cafile ${tls.caFile}`,
        `certfile ${tls.certFile}`,
        `keyfile ${tls.keyFile}`,
        `require_certificate ${tls.requireCertificate ? 'true' : 'false'}`,
        `use_identity_as_username ${tls.useIdentityAsUsername ? 'true' : 'false'}`,
        ...(tls.listenerConfig ?? []),
      ]
    : [];
  writeFileSync(
    conf,
    [
      // Run as ourselves: started as root, mosquitto would drop to its own user and lose access to this temp dir.
      `user ${userInfo().username}`,
      'per_listener_settings false',
      `listener ${port} 127.0.0.1`,
      `allow_anonymous ${allowAnonymous ? 'true' : 'false'}`,
      ...security,
      'persistence true',
      `persistence_location ${dir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      // "Reloading config." is an information line: setAcl waits for it.
      'log_type information',
      ...(options.extraConfig ?? []),
      // Last, so that listener options in extraConfig keep applying to the plain listener.
      ...tlsListener,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  let output = '';
  let proc: ChildProcess;
  const launch = async () => {
    proc = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (d) => (output += String(d)));
    proc.stderr?.on('data', (d) => (output += String(d)));
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${output}`))));
    exited.catch(() => undefined);
    await Promise.race([Promise.all([waitForPort(port), ...(tlsPort ? [waitForPort(tlsPort)] : [])]), exited]);
  };
  const kill = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    // This process, not whichever `proc` names when the timer fires: after a restart that is the new broker.
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => p.kill('SIGKILL'), 3000);
      p.once('exit', () => {
        clearTimeout(force);
        resolve();
      });
      p.kill('SIGCONT');
      p.kill(signal);
    });
  };
  try {
    await launch();
  } catch (err) {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    ...(tlsPort ? { tlsPort, tlsUrl: `mqtts://127.0.0.1:${tlsPort}` } : {}),
    dir,
    log: () => output,
    pause: () => proc.kill('SIGSTOP'),
    setAcl: async (lines: string[]) => {
      if (!options.acl) throw new Error('setAcl needs a broker started with an `acl` option');
      writeFileSync(path.join(dir, 'acl'), [...lines, ''].join('\n'), { mode: 0o600 });
      const before = output.length;
      proc.kill('SIGHUP');
      // mosquitto says when it has reloaded its configuration.
      await waitForOutput(() => output.slice(before), /Reloading config/i);
    },
    resume: () => proc.kill('SIGCONT'),
    restart: async (o = {}) => {
      await kill(o.signal);
      if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
      await launch();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForOutput(text: () => string, pattern: RegExp, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(text())) {
    if (Date.now() > deadline) throw new Error(`mosquitto did not log ${String(pattern)} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
