import { describeError, isForewarnError, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { loadTrustedKeys, type TrustedKeys } from '../core/keys.js';
import { TOPIC_ROOT, topics, type IncomingCommand } from '../contract/topics.js';
import { checkCommandSignature, type SignedFields } from './command-signature.js';

/**
 * Remote control over MQTT 5 request/response (docs/commands.md). A request arrives on
 * `forewarn/v1/{agentId}/cmd/{command}` with a response topic and correlation data; the reply goes to the
 * response topic with the same correlation data. Every request, accepted or refused, is logged and becomes a
 * `command` event. Nothing a request carries can crash the agent: every failure is a coded error reply.
 */

/** Commands that only read: the broker's ACL is their authorisation. */
export const READ_ONLY_COMMANDS = ['ping', 'status', 'flush', 'diagnostics'] as const;
/** Commands that change the agent: they must carry a signature by a key in `commands.trustedKeys`. */
export const SIGNED_COMMANDS = ['reload-config', 'set-log-level', 'install-model'] as const;
export type CommandName = (typeof READ_ONLY_COMMANDS)[number] | (typeof SIGNED_COMMANDS)[number];
const ALL: ReadonlySet<string> = new Set([...READ_ONLY_COMMANDS, ...SIGNED_COMMANDS]);
const SIGNED: ReadonlySet<string> = new Set(SIGNED_COMMANDS);

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ID = /^[\x21-\x7e]{1,128}$/;
/** Ids remembered for replay protection at most; the oldest are forgotten first. */
const MAX_REMEMBERED_IDS = 10_000;
/** Refusals and failures kept for `diagnostics`. */
const RECENT_ERRORS = 20;

export interface CommandReply {
  status: 'ok' | 'error';
  data?: unknown;
  error?: { code: ErrorCode; message: string };
  command: string;
  id?: string;
  agentId: string;
  ts: number;
}

/** The `command` event committed to the `events` stream for every request. */
export interface CommandEvent {
  ts: number;
  type: 'command';
  command: string;
  id?: string;
  /** `ok`: it ran; `refused`: it did not run (malformed, unknown, expired, unsigned, replayed); `failed`: it ran and failed. */
  outcome: 'ok' | 'refused' | 'failed';
  code?: string;
  requester?: string;
  keyId?: string;
  replied: boolean;
}

/** What the agent lets commands do. */
export interface CommandHost {
  status(): unknown;
  flush(): unknown;
  setLogLevel(level: string): unknown;
  reloadConfig(): unknown;
  diagnostics(recentErrors: ReadonlyArray<Record<string, unknown>>): unknown;
  installModel(bundle: Buffer, options: { allowDowngrade: boolean }): Promise<unknown>;
}

export interface CommandOptions {
  agentId: string;
  maxAgeSeconds: number;
  clockSkewSeconds: number;
  maxPayloadBytes: number;
  /** commands.trustedKeys: read when a signed command arrives, so a reload or a new key file applies at once. */
  trustedKeys: () => readonly string[];
}

export interface CommandOutput {
  reply(topic: string, payload: CommandReply, correlationData: Buffer | undefined): void;
  event(e: CommandEvent): void;
}

class Refused extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export class CommandHandler {
  private readonly seen = new Map<string, number>();
  private readonly recent: Array<Record<string, unknown>> = [];
  /** Commands that change the agent run one at a time. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly options: CommandOptions,
    private readonly host: CommandHost,
    private readonly log: Logger,
    private readonly out: CommandOutput,
  ) {}

  /** The command filter to subscribe to. */
  get filter(): string {
    return topics.commands(this.options.agentId);
  }

  recentErrors(): ReadonlyArray<Record<string, unknown>> {
    return this.recent;
  }

  /** Handles one request; never throws. Resolves with the reply (sent when the request had a response topic). */
  async handle(msg: IncomingCommand, now = Date.now()): Promise<CommandReply> {
    const name = msg.topic.slice(msg.topic.lastIndexOf('/') + 1).slice(0, 64);
    const requester = typeof msg.requester === 'string' ? msg.requester.slice(0, 128) : undefined;
    let id: string | undefined;
    let keyId: string | undefined;
    let responseTopic = msg.responseTopic;
    let outcome = 'ok' as CommandEvent['outcome'];
    let reply: CommandReply;
    try {
      if (
        responseTopic !== undefined &&
        (/[+#\u0000]/.test(responseTopic) || responseTopic.startsWith(`${TOPIC_ROOT}/${this.options.agentId}/cmd/`) || !responseTopic)
      ) {
        // Never reply into our own command topics (a loop) or to a filter.
        const bad = responseTopic;
        responseTopic = undefined;
        throw new Refused('FW_ERR_COMMAND_MALFORMED', `response topic ${JSON.stringify(bad.slice(0, 100))} is a filter or one of this agent's command topics`);
      }
      if (msg.payload.length > this.options.maxPayloadBytes) {
        throw new Refused(
          'FW_ERR_COMMAND_MALFORMED',
          `request of ${msg.payload.length} bytes, more than commands.maxPayloadBytes (${this.options.maxPayloadBytes})`,
        );
      }
      const req = parseRequest(msg.payload);
      id = req.id ?? undefined;
      if (!ALL.has(name)) throw new Refused('FW_ERR_COMMAND_UNKNOWN', `unknown command ${JSON.stringify(name)}; known: ${[...ALL].join(', ')}`);
      this.checkAge(req, now);
      const fields: SignedFields = {
        agentId: this.options.agentId,
        command: name,
        id: req.id,
        issuedAt: req.issuedAt,
        expiresAt: req.expiresAt,
        args: req.args,
      };
      if (SIGNED.has(name)) {
        if (req.id === null) throw new Refused('FW_ERR_COMMAND_MALFORMED', `${name} changes the agent: its request needs an id (replay protection)`);
        const check = checkCommandSignature(fields, req.signature, this.trusted());
        if (!check.ok) throw new Refused('FW_ERR_COMMAND_UNAUTHORIZED', check.reason);
        keyId = check.keyId;
      }
      if (req.id !== null) this.remember(req.id, req.issuedAt, now);
      const run = () => this.run(name as CommandName, req.args);
      let data: unknown;
      try {
        data = SIGNED.has(name) ? await (this.chain = this.chain.then(run, run)) : await run();
      } catch (err) {
        outcome = err instanceof Refused ? 'refused' : 'failed';
        throw err;
      }
      reply = { status: 'ok', ...(data === undefined ? {} : { data }), command: name, ...(id ? { id } : {}), agentId: this.options.agentId, ts: Date.now() };
    } catch (err) {
      if (outcome === 'ok') outcome = 'refused';
      const code: ErrorCode = err instanceof Refused ? err.code : isForewarnError(err) ? err.code : 'FW_ERR_COMMAND_FAILED';
      const details = isForewarnError(err) ? err.details.slice(0, 5) : [];
      const message = [describeError(err), ...details].join('; ').slice(0, 2000);
      reply = { status: 'error', error: { code, message }, command: name, ...(id ? { id } : {}), agentId: this.options.agentId, ts: Date.now() };
      this.recent.push({ ts: reply.ts, command: name, ...(id ? { id } : {}), code, message: message.slice(0, 300) });
      if (this.recent.length > RECENT_ERRORS) this.recent.shift();
    }
    const replied = responseTopic !== undefined;
    const line = { command: name, id, outcome, requester, keyId, code: reply.error?.code, replyTo: responseTopic };
    if (reply.status === 'ok') this.log.info(line, 'remote command done');
    else this.log.warn({ ...line, err: reply.error?.message }, outcome === 'failed' ? 'remote command failed' : 'remote command refused');
    try {
      this.out.event({
        ts: reply.ts,
        type: 'command',
        command: name,
        ...(id ? { id } : {}),
        outcome,
        ...(reply.error ? { code: reply.error.code } : {}),
        ...(requester ? { requester } : {}),
        ...(keyId ? { keyId } : {}),
        replied,
      });
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'could not record the command event');
    }
    if (responseTopic !== undefined) {
      try {
        this.out.reply(responseTopic, reply, msg.correlationData);
      } catch (err) {
        this.log.warn({ err: describeError(err), command: name, id }, 'could not send the command reply');
      }
    }
    return reply;
  }

  private trusted(): TrustedKeys {
    try {
      return loadTrustedKeys(this.options.trustedKeys());
    } catch (err) {
      throw new Refused('FW_ERR_COMMAND_UNAUTHORIZED', `commands.trustedKeys: ${describeError(err).replace(/^scoring\.trustedKeys: /, '')}`);
    }
  }

  private checkAge(req: Request, now: number): void {
    const skew = this.options.clockSkewSeconds * 1000;
    const maxAge = this.options.maxAgeSeconds * 1000;
    if (req.issuedAt > now + skew)
      throw new Refused(
        'FW_ERR_COMMAND_EXPIRED',
        `issued ${Math.round((req.issuedAt - now) / 1000)} s in the future (clock skew allowed: ${this.options.clockSkewSeconds} s)`,
      );
    if (req.issuedAt < now - maxAge - skew)
      throw new Refused(
        'FW_ERR_COMMAND_EXPIRED',
        `issued ${Math.round((now - req.issuedAt) / 1000)} s ago, more than commands.maxAgeSeconds (${this.options.maxAgeSeconds} s)`,
      );
    if (req.expiresAt !== null && req.expiresAt < now - skew)
      throw new Refused('FW_ERR_COMMAND_EXPIRED', `expired ${Math.round((now - req.expiresAt) / 1000)} s ago`);
  }

  /** Refuses an id seen within its maximum age; remembers it until a request that old is refused anyway. */
  private remember(id: string, issuedAt: number, now: number): void {
    for (const [k, until] of this.seen) {
      if (until > now) break;
      this.seen.delete(k);
    }
    if (this.seen.has(id)) throw new Refused('FW_ERR_COMMAND_REPLAY', `a request with id ${JSON.stringify(id)} was already accepted`);
    const until = Math.max(now, issuedAt) + (this.options.maxAgeSeconds + this.options.clockSkewSeconds) * 1000;
    this.seen.set(id, until);
    if (this.seen.size > MAX_REMEMBERED_IDS) this.seen.delete(this.seen.keys().next().value as string);
  }

  private async run(name: CommandName, args: Record<string, unknown> | null): Promise<unknown> {
    switch (name) {
      case 'ping':
        return { pong: true };
      case 'status':
        return this.host.status();
      case 'flush':
        return this.host.flush();
      case 'diagnostics':
        return this.host.diagnostics(this.recent);
      case 'set-log-level': {
        const level = args?.level;
        if (typeof level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(level)) {
          throw new Refused('FW_ERR_COMMAND_MALFORMED', `args.level must be one of ${LOG_LEVELS.join(', ')}`);
        }
        return this.host.setLogLevel(level);
      }
      case 'reload-config':
        return this.host.reloadConfig();
      case 'install-model': {
        const bundle = args?.bundle;
        if (typeof bundle !== 'string' || !bundle || !BASE64.test(bundle))
          throw new Refused('FW_ERR_COMMAND_MALFORMED', 'args.bundle must be the model bundle file, base64');
        if (args?.allowDowngrade !== undefined && typeof args.allowDowngrade !== 'boolean')
          throw new Refused('FW_ERR_COMMAND_MALFORMED', 'args.allowDowngrade must be true or false');
        return this.host.installModel(Buffer.from(bundle, 'base64'), { allowDowngrade: args?.allowDowngrade === true });
      }
    }
  }
}

interface Request {
  id: string | null;
  args: Record<string, unknown> | null;
  issuedAt: number;
  expiresAt: number | null;
  signature: unknown;
}

const REQUEST_KEYS = new Set(['id', 'args', 'issuedAt', 'expiresAt', 'signature']);

function parseRequest(payload: Buffer): Request {
  let data: unknown;
  try {
    data = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new Refused('FW_ERR_COMMAND_MALFORMED', `not JSON: ${describeError(err).slice(0, 200)}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Refused('FW_ERR_COMMAND_MALFORMED', 'the request must be a JSON object');
  const r = data as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(r)) if (!REQUEST_KEYS.has(k)) problems.push(`${k.slice(0, 40)}: unknown field`);
  if (r.id !== undefined && (typeof r.id !== 'string' || !ID.test(r.id))) problems.push('id: must be 1–128 printable ASCII characters');
  if (!Number.isSafeInteger(r.issuedAt) || (r.issuedAt as number) < 0) problems.push('issuedAt: must be milliseconds since the Unix epoch');
  if (r.expiresAt !== undefined && (!Number.isSafeInteger(r.expiresAt) || (r.expiresAt as number) < 0))
    problems.push('expiresAt: must be milliseconds since the Unix epoch');
  if (r.args !== undefined && (typeof r.args !== 'object' || r.args === null || Array.isArray(r.args))) problems.push('args: must be an object');
  if (problems.length) throw new Refused('FW_ERR_COMMAND_MALFORMED', `malformed request: ${problems.slice(0, 5).join('; ')}`);
  return {
    id: (r.id as string | undefined) ?? null,
    args: (r.args as Record<string, unknown> | undefined) ?? null,
    issuedAt: r.issuedAt as number,
    expiresAt: (r.expiresAt as number | undefined) ?? null,
    signature: r.signature,
  };
}
