import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { parseArgs } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { topics } from '../contract/topics.js';
import { ForewarnError, describeError } from '../core/errors.js';
import { loadPrivateKey } from '../core/keys.js';
import { signCommand } from './command-signature.js';
import type { CommandReply } from './command-handler.js';

/** The centre's side of remote commands (docs/commands.md): build, sign, send, wait for the reply. */

export interface CommandRequest {
  id?: string;
  args?: Record<string, unknown>;
  issuedAt: number;
  expiresAt?: number;
  signature?: { alg: 'ed25519'; keyId: string; value: string };
}

export interface BuildOptions {
  args?: Record<string, unknown>;
  /** Default: a random UUID. */
  id?: string;
  /** Default: now. */
  issuedAt?: number;
  /** Seconds from issuedAt until the request expires; default 60. 0: no expiresAt. */
  expiresInSeconds?: number;
  /** Signs the request when given (needed by reload-config, set-log-level, install-model). */
  privateKey?: KeyObject;
}

export function buildCommandRequest(agentId: string, command: string, options: BuildOptions = {}): CommandRequest {
  const issuedAt = options.issuedAt ?? Date.now();
  const expiresIn = options.expiresInSeconds ?? 60;
  const req: CommandRequest = { id: options.id ?? randomUUID(), issuedAt };
  if (options.args !== undefined) req.args = options.args;
  if (expiresIn > 0) req.expiresAt = issuedAt + expiresIn * 1000;
  if (options.privateKey) {
    req.signature = signCommand(
      { agentId, command, id: req.id ?? null, issuedAt, expiresAt: req.expiresAt ?? null, args: req.args ?? null },
      options.privateKey,
    );
  }
  return req;
}

/**
 * Publishes a request with an MQTT 5 response topic, correlation data and message expiry, and resolves with the
 * reply. The reply topic defaults to `forewarn/v1/{agentId}/reply/{id}`: the fleet ACL lets the agent write there.
 */
export async function sendCommand(
  client: MqttClient,
  agentId: string,
  command: string,
  request: CommandRequest,
  options: { timeoutMs?: number; responseTopic?: string; requester?: string } = {},
): Promise<CommandReply> {
  const correlation = Buffer.from(request.id ?? randomUUID());
  const responseTopic = options.responseTopic ?? topics.commandReply(agentId, correlation.toString('hex').slice(0, 64));
  const timeoutMs = options.timeoutMs ?? 30_000;
  let onMessage: ((topic: string, payload: Buffer, packet: { properties?: { correlationData?: Buffer } }) => void) | undefined;
  const reply = new Promise<CommandReply>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new ForewarnError('FW_ERR_COMMAND_FAILED', `no reply from ${agentId} to ${command} within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    onMessage = (topic, payload, packet) => {
      if (topic !== responseTopic || !packet.properties?.correlationData?.equals(correlation)) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(payload.toString('utf8')) as CommandReply);
      } catch (err) {
        reject(new ForewarnError('FW_ERR_COMMAND_FAILED', `unreadable reply: ${describeError(err)}`));
      }
    };
    client.on('message', onMessage);
  });
  try {
    await client.subscribeAsync(responseTopic, { qos: 1 });
    const expiry = request.expiresAt ? Math.max(1, Math.ceil((request.expiresAt - Date.now()) / 1000)) : undefined;
    await client.publishAsync(topics.command(agentId, command), JSON.stringify(request), {
      qos: 1,
      properties: {
        responseTopic,
        correlationData: correlation,
        contentType: 'application/json',
        ...(expiry ? { messageExpiryInterval: expiry } : {}),
        ...(options.requester ? { userProperties: { requester: options.requester } } : {}),
      },
    });
    return await reply;
  } finally {
    if (onMessage) client.removeListener('message', onMessage);
    await client.unsubscribeAsync(responseTopic).catch(() => undefined);
  }
}

/** The usage of `forewarn command send`: printed here on usage errors and by the CLI's `command send --help`. */
export const COMMAND_SEND_USAGE = `forewarn command send AGENT COMMAND [--args JSON] [--key KEY.pem] [--url URL] [--timeout S]
                      [--expires S] [--username U] [--ca FILE] [--cert FILE --cert-key FILE] [--requester NAME]
   publishes forewarn/v1/AGENT/cmd/COMMAND with a response topic and waits for the reply (printed as JSON).
   --key signs it (reload-config, set-log-level, install-model need it). The password comes from
   FOREWARN_COMMAND_PASSWORD. Exit code 0 when the reply says ok, 1 otherwise. See docs/commands.md.`;

const COMMAND_USAGE = `Usage:\n${COMMAND_SEND_USAGE.replace(/^/gm, '  ')}`;

/** `forewarn command send …`. */
export async function runCommandCli(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      args: { type: 'string' },
      key: { type: 'string' },
      url: { type: 'string', default: process.env.FOREWARN_BROKER_URL ?? 'mqtt://127.0.0.1:1883' },
      timeout: { type: 'string', default: '30' },
      expires: { type: 'string', default: '60' },
      username: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      'cert-key': { type: 'string' },
      requester: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${COMMAND_USAGE}\n`);
    return 0;
  }
  const [sub, agentId, command] = positionals;
  if (sub !== 'send' || !agentId || !command) throw new ForewarnError('FW_ERR_USAGE', `expected \`command send AGENT COMMAND\`\n\n${COMMAND_USAGE}`);
  let args: Record<string, unknown> | undefined;
  if (values.args !== undefined) {
    try {
      args = JSON.parse(values.args) as Record<string, unknown>;
    } catch (err) {
      throw new ForewarnError('FW_ERR_USAGE', `--args: not JSON: ${describeError(err)}`);
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new ForewarnError('FW_ERR_USAGE', '--args: must be a JSON object');
  }
  const timeout = Number(values.timeout);
  const expires = Number(values.expires);
  if (!(timeout > 0) || !(expires >= 0)) throw new ForewarnError('FW_ERR_USAGE', '--timeout and --expires take seconds');
  const request = buildCommandRequest(agentId, command, {
    ...(args ? { args } : {}),
    expiresInSeconds: expires,
    ...(values.key ? { privateKey: loadPrivateKey(values.key) } : {}),
  });
  const opts: IClientOptions = {
    protocolVersion: 5,
    clientId: `forewarn-command-${randomUUID().slice(0, 8)}`,
    reconnectPeriod: 0,
    connectTimeout: timeout * 1000,
  };
  if (values.username) opts.username = values.username;
  if (process.env.FOREWARN_COMMAND_PASSWORD) opts.password = process.env.FOREWARN_COMMAND_PASSWORD;
  if (values.ca) opts.ca = readFileSync(values.ca);
  if (values.cert) opts.cert = readFileSync(values.cert);
  if (values['cert-key']) opts.key = readFileSync(values['cert-key']);
  const client = await mqtt.connectAsync(values.url, opts);
  try {
    const reply = await sendCommand(client, agentId, command, request, {
      timeoutMs: timeout * 1000,
      ...(values.requester ? { requester: values.requester } : {}),
    });
    process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
    return reply.status === 'ok' ? 0 : 1;
  } finally {
    await client.endAsync();
  }
}
