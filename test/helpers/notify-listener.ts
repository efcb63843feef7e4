import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A stand-in for systemd's notification socket: a real AF_UNIX SOCK_DGRAM socket, bound by python3 (Node cannot
 * bind one), at a path or in the abstract namespace (`@name`). Every datagram received becomes one entry of
 * `messages()`. Like systemd, it takes no file descriptors: those sent along (systemd-notify's BARRIER=1 pipe) are
 * closed by the kernel on receipt, which is what releases the sender's barrier.
 * Installs python3 with apt-get when it is missing and we are root, as the mosquitto helper does.
 */

const LISTENER = `
import json, socket, sys
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + a[1:] if a.startswith('@') else a)
print('LISTENING', flush=True)
while True:
    d = s.recv(65536)
    print(json.dumps(d.decode('utf-8', 'replace')), flush=True)
`;

export function systemdNotifyBinary(): string | undefined {
  return ['/usr/bin/systemd-notify', '/bin/systemd-notify'].find((p) => existsSync(p));
}

let python: string | undefined;

export function python3Binary(): string {
  if (python) return python;
  const works = () => spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;
  if (!works() && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', 'python3'], { stdio: 'pipe', env });
    } catch {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'pipe' });
      execFileSync('apt-get', ['install', '-y', '-qq', 'python3'], { stdio: 'pipe', env });
    }
  }
  if (!works()) throw new Error('python3 is not installed and this user cannot install it. Install it with: sudo apt-get install python3');
  return (python = 'python3');
}

export interface NotifyListener {
  /** The value for NOTIFY_SOCKET. */
  socket: string;
  /** Each datagram's text, in order of arrival. */
  messages(): string[];
  /** The assignments (`READY=1`, `STATUS=…`) of every datagram, flattened, in order. */
  assignments(): string[];
  stop(): Promise<void>;
}

/** `abstract`: bind `@forewarn-test-…` in the abstract namespace instead of a path in a temp dir. */
export async function startNotifyListener(options: { abstract?: boolean } = {}): Promise<NotifyListener> {
  const bin = python3Binary();
  const dir = options.abstract ? undefined : mkdtempSync(path.join(tmpdir(), 'fw-notify-'));
  const socket = dir ? path.join(dir, 'notify.sock') : `@forewarn-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const proc = spawn(bin, ['-u', '-c', LISTENER, socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: string[] = [];
  let buffered = '';
  let errors = '';
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  proc.stdout.on('data', (d) => {
    buffered += String(d);
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line === 'LISTENING') listening();
      else if (line) messages.push(JSON.parse(line) as string);
    }
  });
  proc.stderr.on('data', (d) => (errors += String(d)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await Promise.race([
    ready,
    exited.then(() => {
      throw new Error(`the notify listener exited: ${errors}`);
    }),
  ]);
  return {
    socket,
    messages: () => [...messages],
    assignments: () => messages.flatMap((m) => m.split('\n')).filter(Boolean),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
