import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';

/**
 * A throwaway PKI for TLS tests, made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1/localhost,
 * one client certificate per name (CN = the name, so mosquitto's `use_identity_as_username` makes it the
 * username), and a second, unrelated CA ("wrong CA") for negative tests. EC P-256 keys, valid for two days.
 * Nothing is cached: every call makes new keys in the directory it is given (or a new temp dir).
 * Installs Debian's openssl when it is missing and we are root, as mosquittoBinary() does for mosquitto.
 */

const run = promisify(execFile);

export interface KeyPair {
  /** PEM certificate path. */
  cert: string;
  /** PEM private key path (mode 0600). */
  key: string;
}

export interface Pki {
  dir: string;
  /** The CA that signed the server and the client certificates. */
  ca: KeyPair;
  /** CN=localhost, SAN IP:127.0.0.1 and DNS:localhost, serverAuth; signed by `ca`. */
  server: KeyPair;
  /** Per client name: CN=name, clientAuth; signed by `ca`. */
  clients: Record<string, KeyPair>;
  /** A second CA that has nothing to do with `ca`: trusting it instead of `ca` must fail. */
  wrongCa: KeyPair;
  /** Per name in `wrongCaClients`: CN=name, clientAuth, but signed by `wrongCa` — a certificate the broker must refuse. */
  wrongCaClients: Record<string, KeyPair>;
}

let checked = false;

/** The openssl CLI, installed with apt-get when missing and we are root. */
export function opensslBinary(): string {
  if (checked) return 'openssl';
  const has = () => spawnSync('openssl', ['version']).status === 0;
  if (!has() && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', 'openssl'], { stdio: 'pipe', env });
    } catch {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'pipe' });
      execFileSync('apt-get', ['install', '-y', '-qq', 'openssl'], { stdio: 'pipe', env });
    }
  }
  if (!has()) throw new Error('openssl is not installed and this user cannot install it. Install it with: sudo apt-get install openssl');
  checked = true;
  return 'openssl';
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    // Our own minimal config, so the host's openssl.cnf (default extensions, providers) plays no part.
    await run(opensslBinary(), args, { cwd, env: { ...process.env, OPENSSL_CONF: path.join(cwd, 'openssl.cnf') } });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

async function newKey(dir: string, name: string): Promise<string> {
  const key = path.join(dir, `${name}.key`);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], dir);
  chmodSync(key, 0o600);
  return key;
}

async function makeCa(dir: string, name: string, cn: string): Promise<KeyPair> {
  const key = await newKey(dir, name);
  const cert = path.join(dir, `${name}.crt`);
  await openssl(
    [
      'req',
      '-config',
      path.join(dir, 'openssl.cnf'),
      '-x509',
      '-new',
      '-key',
      key,
      '-sha256',
      '-days',
      '2',
      '-subj',
      `/O=Forewarn tests/CN=${cn}`,
      '-extensions',
      'v3_ca',
      '-set_serial',
      serial(),
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

async function issue(dir: string, ca: KeyPair, name: string, cn: string, extensions: 'v3_server' | 'v3_client'): Promise<KeyPair> {
  const key = await newKey(dir, name);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  await openssl(['req', '-config', path.join(dir, 'openssl.cnf'), '-new', '-key', key, '-subj', `/O=Forewarn tests/CN=${cn}`, '-out', csr], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-set_serial',
      serial(),
      '-days',
      '2',
      '-sha256',
      '-extfile',
      path.join(dir, 'openssl.cnf'),
      '-extensions',
      extensions,
      '-out',
      cert,
    ],
    dir,
  );
  rmSync(csr);
  return { cert, key };
}

const serial = () => `0x${randomBytes(12).toString('hex')}`;

/** A safe file-name stem for a client name (the CN itself is used as is). */
const stem = (prefix: string, name: string) => `${prefix}-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}`;

export async function makePki(dir?: string, options: { clients?: string[]; wrongCaClients?: string[] } = {}): Promise<Pki> {
  const root = dir ?? mkdtempSync(path.join(tmpdir(), 'forewarn-pki-'));
  mkdirSync(root, { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  for (const name of [...(options.clients ?? []), ...(options.wrongCaClients ?? [])]) {
    if (/[/\\,+=<>#;"]/.test(name) || name === '') throw new Error(`client name ${JSON.stringify(name)} cannot be a plain CN`);
  }
  writeFileSync(
    path.join(root, 'openssl.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '[v3_server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1, DNS:localhost',
      'authorityKeyIdentifier = keyid',
      '[v3_client]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = clientAuth',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  const [ca, wrongCa] = await Promise.all([makeCa(root, 'ca', 'Forewarn test CA'), makeCa(root, 'wrong-ca', 'Unrelated test CA')]);
  const [server, clients, wrongCaClients] = await Promise.all([
    issue(root, ca, 'server', 'localhost', 'v3_server'),
    Promise.all((options.clients ?? []).map(async (n) => [n, await issue(root, ca, stem('client', n), n, 'v3_client')] as const)),
    Promise.all((options.wrongCaClients ?? []).map(async (n) => [n, await issue(root, wrongCa, stem('wrong-client', n), n, 'v3_client')] as const)),
  ]);
  return { dir: root, ca, server, clients: Object.fromEntries(clients), wrongCa, wrongCaClients: Object.fromEntries(wrongCaClients) };
}
