import { accessSync, constants, existsSync, readFileSync, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import mqtt, { ReasonCodes, type IClientOptions } from 'mqtt';
import { assessConfigStorage, loadConfig, type AgentConfig, type LoadedConfig } from '../config/load-config.js';
import { remoteCommandsDecision } from '../config/remote-commands.js';
import { describeError, isForewarnError } from '../core/errors.js';
import { DB_FILE } from '../store/record-store.js';
import { formatBytes, nearestExistingDir, type StorageLimits } from '../store/storage-limits.js';
import { SOURCE_PLUGINS } from '../sources/registry.js';
import { ModelRegistry } from '../model-lifecycle/model-registry.js';
import { OnnxModel } from '../scoring/onnx-model.js';
import { topics } from '../contract/topics.js';
import { parseAck } from '../sync/central-ack.js';

/**
 * `forewarn doctor`: checks what the agent needs on this host, one line each with what to fix. It reads and
 * connects; it never writes to the database or publishes. docs/observability.md lists the checks.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  message: string;
  /** What to do about it, for warn and fail. */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  config: string | null;
  checks: Check[];
}

/** The longest a broker check may take, whatever broker.connectTimeoutMs says. */
const BROKER_TIMEOUT_MS = 10_000;

const ok = (name: string, message: string): Check => ({ name, status: 'ok', message });
const warn = (name: string, message: string, fix: string): Check => ({ name, status: 'warn', message, fix });
const fail = (name: string, message: string, fix: string): Check => ({ name, status: 'fail', message, fix });

export async function runDoctor(configFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<DoctorReport> {
  const checks: Check[] = [];
  let config: Readonly<AgentConfig>;
  let loaded: LoadedConfig;
  let file: string | null = null;
  try {
    loaded = loadConfig(configFile, env);
    config = loaded.config;
    file = loaded.file;
    checks.push(ok('config', `${loaded.file ?? 'built-in defaults'}: valid${config.broker.passwordFile ? '; broker.passwordFile readable' : ''}`));
  } catch (err) {
    const details = isForewarnError(err) ? err.details : [];
    checks.push(
      fail(
        'config',
        [describeError(err), ...details].join('; '),
        isForewarnError(err, 'FW_ERR_SECRET_READ')
          ? "make the secret file readable by the agent's user"
          : 'fix the file (`forewarn config check FILE` shows every problem)',
      ),
    );
    return { ok: false, config: configFile ?? null, checks };
  }
  checks.push(...checkTlsFiles(config));
  // One connection: the broker check, then (once connected) the centre's acknowledgement on it.
  checks.push(...(await checkBroker(config)));
  checks.push(checkRemoteCommands(config));
  checks.push(...checkStorage(loaded));
  checks.push(...(await checkSources(config)));
  checks.push(...(await checkModels(config)));
  return { ok: checks.every((c) => c.status !== 'fail'), config: file, checks };
}

/** Whether the agent will answer remote commands, and whether anyone on the broker could send them. */
export function checkRemoteCommands(config: Readonly<AgentConfig>): Check {
  const { enabled, reason } = remoteCommandsDecision(config);
  if (!enabled) return ok('commands', `off: ${reason}`);
  if (!config.broker.username && !config.broker.tls.certFile)
    return warn(
      'commands',
      `on (${reason}) over an anonymous broker connection: any client of the broker can read \`diagnostics\` and \`status\``,
      'give the agent broker credentials and an ACL (docs/commands.md), or set commands.enabled: auto or off',
    );
  return ok('commands', `on: ${reason}`);
}

function checkTlsFiles(config: Readonly<AgentConfig>): Check[] {
  const out: Check[] = [];
  const tls = config.broker.tls;
  for (const [option, f] of [
    ['caFile', tls.caFile],
    ['certFile', tls.certFile],
    ['keyFile', tls.keyFile],
  ] as const) {
    if (!f) continue;
    try {
      readFileSync(f);
      out.push(ok(`broker.tls.${option}`, `${f} readable`));
    } catch (err) {
      out.push(fail(`broker.tls.${option}`, `cannot read ${f}: ${describeError(err)}`, `make ${f} readable by the agent's user, or fix broker.tls.${option}`));
    }
  }
  if ((tls.certFile === '') !== (tls.keyFile === ''))
    out.push(fail('broker.tls', 'only one of certFile and keyFile is set', 'a client certificate needs both broker.tls.certFile and broker.tls.keyFile'));
  if (!tls.rejectUnauthorized)
    out.push(
      warn(
        'broker.tls',
        "rejectUnauthorized is false: the broker's certificate is not checked",
        "set broker.tls.caFile to the broker's CA and rejectUnauthorized: true",
      ),
    );
  return out;
}

const reasonName = (code: number) => (code === 0 ? 'Success' : (ReasonCodes as Record<number, string>)[code] || 'unknown reason');
const hex = (code: number) => `0x${code.toString(16).padStart(2, '0')}`;

/** The agent's connection options under another client id: a running agent would be dropped by a second client with its id. */
function doctorClientOptions(config: Readonly<AgentConfig>, suffix: string, timeoutMs: number): IClientOptions {
  const b = config.broker;
  const opts: IClientOptions = {
    protocolVersion: 5,
    clientId: `${b.clientId}-${suffix}`.slice(0, 64),
    clean: true,
    connectTimeout: timeoutMs,
    reconnectPeriod: 0,
    rejectUnauthorized: b.tls.rejectUnauthorized,
  };
  if (b.username) opts.username = b.username;
  if (b.password) opts.password = b.password;
  if (b.tls.caFile) opts.ca = readFileSync(b.tls.caFile);
  if (b.tls.certFile) opts.cert = readFileSync(b.tls.certFile);
  if (b.tls.keyFile) opts.key = readFileSync(b.tls.keyFile);
  return opts;
}

/** How long the doctor waits for the retained acknowledgement after its SUBACK. */
const ACK_WAIT_MS = 1500;

/**
 * On a connected client: with `broker.ack: central` records leave the outbox only on the centre's acknowledgement:
 * is one there (the retained `forewarn/v1/{id}/ack`), and may this agent read it? With `broker` it only says what
 * that means.
 */
function checkCentralAck(client: mqtt.MqttClient, config: Readonly<AgentConfig>): Promise<Check> {
  const b = config.broker;
  const name = 'broker.ack';
  const topic = topics.ack(config.agent.id);
  const none = () =>
    b.ack === 'central'
      ? warn(
          name,
          `central: no acknowledgement from a central subscriber on ${topic} yet; records the broker takes stay buffered (up to the storage quota) until one confirms them`,
          'run `forewarn subscribe` (or your own central ingest that publishes the acknowledgement, docs/mqtt.md), or set broker.ack: broker',
        )
      : ok(name, "broker: records are released on the broker's PUBACK (a broker that loses messages after acknowledging them loses them; docs/delivery.md)");
  return new Promise<Check>((resolve) => {
    client.on('message', (_t, payload) => {
      if (!payload.length) return;
      const ack = parseAck(payload, config.agent.id);
      if (typeof ack === 'string') {
        resolve(
          warn(
            name,
            `${topic} holds an acknowledgement that does not follow the contract: ${ack}`,
            'check what publishes there: only the central subscriber should (ACL: topic write forewarn/v1/+/ack for it alone)',
          ),
        );
        return;
      }
      const behind = [...ack.streams].map(([s, v]) => `${s} through ${v.through}`).join(', ');
      resolve(ok(name, `${b.ack}: the centre acknowledged at ${new Date(ack.ts).toISOString()} (${behind || 'no streams yet'})`));
    });
    client.on('close', () => resolve(none()));
    client.subscribe(topic, { qos: 1 }, (err, granted) => {
      const code = granted?.[0]?.qos;
      if (err || (typeof code === 'number' && code >= 0x80)) {
        resolve(
          b.ack === 'central'
            ? fail(
                name,
                `the broker refused the subscription to ${topic}: records would stay buffered forever`,
                'let the agent read its acknowledgements: ACL `pattern read forewarn/v1/%u/ack`',
              )
            : warn(name, `the broker refused the subscription to ${topic}: gap repair is off`, 'ACL `pattern read forewarn/v1/%u/ack`'),
        );
        return;
      }
      // A retained acknowledgement arrives right after the SUBACK; none within a moment means there is none.
      setTimeout(() => resolve(none()), ACK_WAIT_MS);
    });
  });
}

/**
 * Connects once with MQTT 5, the configured credentials and TLS, under another client id; once connected, reads the
 * centre's acknowledgement on the same connection (`broker.ack`), and disconnects.
 */
export async function checkBroker(config: Readonly<AgentConfig>): Promise<Check[]> {
  const b = config.broker;
  const name = 'broker';
  const timeoutMs = Math.min(b.connectTimeoutMs, BROKER_TIMEOUT_MS);
  let opts: IClientOptions;
  try {
    opts = doctorClientOptions(config, 'doctor', timeoutMs);
  } catch (err) {
    return [fail(name, `${b.url}: cannot read the TLS files: ${describeError(err)}`, 'fix broker.tls')];
  }
  const tlsUrl = /^(mqtts|wss|ssl|tls):/.test(b.url);
  return new Promise<Check[]>((resolve) => {
    let done = false;
    let client: mqtt.MqttClient;
    const end = (checks: Check[]) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client?.end(true);
      resolve(checks);
    };
    const finish = (c: Check) => end([c]);
    // Connected: the broker check is settled; the acknowledgement check follows on this connection.
    const connected = (c: Check) => {
      if (done) return;
      clearTimeout(timer);
      done = true;
      void checkCentralAck(client, config).then((a) => {
        client.end(true);
        resolve([c, a]);
      });
    };
    const timer = setTimeout(
      () =>
        finish(
          fail(
            name,
            `${b.url}: no CONNACK within ${timeoutMs} ms`,
            'check that the broker runs and that a firewall lets this host reach it; a TLS listener needs an mqtts:// URL',
          ),
        ),
      timeoutMs,
    );
    try {
      client = mqtt.connect(b.url, opts);
    } catch (err) {
      finish(fail(name, `${b.url}: ${describeError(err)}`, 'fix broker.url (mqtt://host:1883 or mqtts://host:8883)'));
      return;
    }
    client.on('connect', (connack) => {
      const props = connack.properties ?? {};
      const extras = [
        `CONNACK ${reasonName(connack.reasonCode ?? 0)} (${hex(connack.reasonCode ?? 0)})`,
        tlsUrl ? 'TLS ok' : 'no TLS',
        props.receiveMaximum !== undefined ? `receive maximum ${props.receiveMaximum}` : '',
        props.maximumPacketSize !== undefined ? `maximum packet ${props.maximumPacketSize} B` : '',
      ].filter(Boolean);
      if (props.maximumPacketSize !== undefined && props.maximumPacketSize < b.maxMessageBytes + 1024) {
        connected(
          warn(
            name,
            `${b.url}: connected, ${extras.join(', ')}; smaller than broker.maxMessageBytes (${b.maxMessageBytes})`,
            "lower broker.maxMessageBytes below the broker's maximum packet size",
          ),
        );
        return;
      }
      connected(
        tlsUrl || /^(127\.|localhost|\[?::1)/.test(new URL(b.url).hostname)
          ? ok(name, `${b.url}: ${extras.join(', ')}`)
          : warn(name, `${b.url}: ${extras.join(', ')}; credentials and data cross the network unencrypted`, 'use an mqtts:// URL with broker.tls'),
      );
    });
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number') {
        const fix =
          code === 0x86 || code === 0x87 || code === 0x8c
            ? "check broker.username and broker.password/passwordFile, and the broker's ACL for this user"
            : code === 0x85
              ? 'the broker refused the client id; check its client id rules (the doctor connects as broker.clientId + "-doctor")'
              : "see the broker's log for why it refused the connection";
        finish(fail(name, `${b.url}: broker refused the connection: CONNACK ${reasonName(code)} (${hex(code)})`, fix));
        return;
      }
      const c = String(code ?? '');
      const tlsProblem = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|HOSTNAME|ERR_TLS|EPROTO/i.test(`${c} ${err.message}`);
      const fix = tlsProblem
        ? "TLS failed: set broker.tls.caFile to the CA that signed the broker's certificate, make sure the URL host matches the certificate, and give a client certificate (certFile, keyFile) if the broker requires one"
        : c === 'ECONNREFUSED'
          ? "nothing listens there: start the broker, or fix broker.url's host and port"
          : c === 'ENOTFOUND' || c === 'EAI_AGAIN'
            ? 'the host name does not resolve: fix broker.url or DNS'
            : 'check broker.url and the network path to the broker';
      finish(fail(name, `${b.url}: ${tlsProblem ? 'TLS error: ' : ''}${err.message}${c && !err.message.includes(c) ? ` (${c})` : ''}`, fix));
    });
    client.on('close', () =>
      finish(
        fail(
          name,
          `${b.url}: the connection closed before a CONNACK`,
          tlsUrl ? 'check the TLS settings and the broker log' : 'is this a TLS port? then use an mqtts:// URL; else see the broker log',
        ),
      ),
    );
  });
}

/** The quota and floor against the size of the file system: what the agent would run with, and what cannot work. */
function checkStorageLimits(loaded: LoadedConfig): { check: Check; effective: StorageLimits } {
  const name = 'storage.limits';
  const a = assessConfigStorage(loaded);
  const lines = a.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  const size = a.fsBytes === null ? 'file system size unknown' : `${formatBytes(a.fsBytes)} file system`;
  const fix = 'set storage.minFreeBytes (and storage.maxBytes) to fit this disk, or move storage.dir to a larger file system';
  if (a.problems.some((p) => p.severity === 'error')) return { check: fail(name, lines, fix), effective: a.effective };
  if (a.problems.length) return { check: warn(name, lines, fix), effective: a.effective };
  const { maxBytes, minFreeBytes } = a.effective;
  return {
    check: ok(name, `quota ${maxBytes ? formatBytes(maxBytes) : 'none'}, floor ${minFreeBytes ? formatBytes(minFreeBytes) : 'none'} (${size})`),
    effective: a.effective,
  };
}

function checkStorage(loaded: LoadedConfig): Check[] {
  const { config } = loaded;
  const out: Check[] = [];
  const dir = path.resolve(config.storage.dir);
  const existing = nearestExistingDir(dir);
  const limits = checkStorageLimits(loaded);
  out.push(limits.check);
  try {
    const fs = statfsSync(existing);
    const free = fs.bavail * fs.bsize;
    // The limits the agent runs with: a default floor too large for this disk is clamped.
    const { minFreeBytes: floor, maxBytes } = limits.effective;
    out.push(
      free < floor
        ? fail(
            'storage.space',
            `${formatBytes(free)} free at ${existing}, below storage.minFreeBytes (${formatBytes(floor)}): unsent records would be dropped at once`,
            'free disk space, move storage.dir, or lower storage.minFreeBytes',
          )
        : free < floor + maxBytes
          ? warn(
              'storage.space',
              `${formatBytes(free)} free at ${existing}: less than storage.maxBytes (${formatBytes(maxBytes)}) above the floor (${formatBytes(floor)})`,
              'the quota cannot be reached before the floor; free space or lower storage.maxBytes',
            )
          : ok('storage.space', `${formatBytes(free)} free at ${existing}`),
    );
  } catch (err) {
    out.push(fail('storage.space', `cannot stat the file system of ${existing}: ${describeError(err)}`, 'check storage.dir'));
  }
  if (!existsSync(dir)) {
    try {
      accessSync(existing, constants.W_OK);
      out.push(ok('storage.dir', `${dir} does not exist yet; the agent will create it (0700) in ${existing}`));
    } catch {
      out.push(fail('storage.dir', `${dir} does not exist and ${existing} is not writable`, `create ${dir} owned by the agent's user with mode 0700`));
    }
    return out;
  }
  try {
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    const mode = statSync(dir).mode & 0o777;
    out.push(
      mode & 0o077
        ? warn('storage.dir', `${dir} has mode ${mode.toString(8).padStart(4, '0')}: others can read the buffered data`, `chmod 700 ${dir}`)
        : ok('storage.dir', `${dir} writable, mode 0700`),
    );
  } catch (err) {
    out.push(
      fail('storage.dir', `${dir} is not writable by this user: ${describeError(err)}`, `chown the directory to the agent's user, or run doctor as that user`),
    );
  }
  const db = path.join(dir, DB_FILE);
  if (existsSync(db)) {
    try {
      accessSync(db, constants.R_OK | constants.W_OK);
      const mode = statSync(db).mode & 0o777;
      out.push(
        mode & 0o077
          ? warn('storage.db', `${db} has mode ${mode.toString(8).padStart(4, '0')}`, `chmod 600 ${db}`)
          : ok('storage.db', `${db} writable, mode 0600`),
      );
    } catch (err) {
      out.push(fail('storage.db', `${db} is not writable by this user: ${describeError(err)}`, `chown ${db} to the agent's user`));
    }
  }
  return out;
}

/** Each enabled source's probe (agent/src/sources/<name>/plugin.ts): what this host offers it, with fixes. */
async function checkSources(config: Readonly<AgentConfig>): Promise<Check[]> {
  const out: Check[] = [];
  for (const plugin of SOURCE_PLUGINS) if (plugin.probe) out.push(...(await plugin.probe(config.sources[plugin.key])));
  return out;
}

async function checkModels(config: Readonly<AgentConfig>): Promise<Check[]> {
  if (!config.scoring.enabled) return [];
  const out: Check[] = [];
  const registry = ModelRegistry.forConfig(config);
  const seen = new Set<string>();
  for (const { model } of config.scoring.bindings) {
    if (seen.has(model)) continue;
    seen.add(model);
    const name = `model ${model}`;
    const dirs = registry.modelDirs(model).filter((d) => existsSync(path.join(d, 'manifest.json')));
    if (!dirs.length) {
      out.push(
        fail(
          name,
          `no ${model}/manifest.json in ${registry.modelDirs(model).join(', ') || 'scoring.modelsDir'}`,
          'install the model (forewarn model install) or fix scoring.modelsDir / scoring.bindings',
        ),
      );
      continue;
    }
    try {
      const m = await OnnxModel.load(dirs[0]!, { threads: 1 });
      out.push(ok(name, `${m.manifest.version} loads from ${dirs[0]}`));
      await m.release();
    } catch (err) {
      out.push(
        fail(name, `${dirs[0]}: ${describeError(err)}${isForewarnError(err) ? ` [${err.code}]` : ''}`, 'reinstall the model; docs/errors.md explains the code'),
      );
    }
  }
  return out;
}

export function formatDoctor(r: DoctorReport): string {
  const tag = { ok: ' ok ', warn: 'warn', fail: 'FAIL' } as const;
  const lines = r.checks.flatMap((c) => [`[${tag[c.status]}] ${c.name}: ${c.message}`, ...(c.fix ? [`       fix: ${c.fix}`] : [])]);
  const n = (s: CheckStatus) => r.checks.filter((c) => c.status === s).length;
  lines.push('', `${n('ok')} ok, ${n('warn')} warning(s), ${n('fail')} failure(s)`);
  return lines.join('\n');
}
