/**
 * Reads one OPC UA server endpoint through node-opcua's client: one session, one subscription, one monitored item
 * per configured node (sampling interval, queue size, deadband), so the server pushes changes instead of being
 * polled. Behaviour in short (docs/opcua.md has the whole story):
 * - each publish response becomes Readings, one per asset and source timestamp (values the server sampled together
 *   stay together); Good values are numbers, Uncertain ones are kept but flagged (never scored), Bad ones are absent;
 *   a status is never turned into a number;
 * - a node the server does not know, refuses, or removes is logged once (FW_ERR_OPCUA_NODE) and the others go on;
 * - the configured unit is checked against the node's EngineeringUnits (FW_ERR_OPCUA_UNIT: a warning);
 * - a server certificate that is not in the trust list is refused (FW_ERR_OPCUA_UNTRUSTED), as is a connection the
 *   server refuses (FW_ERR_OPCUA_REJECTED): logged once, retried with back-off, the other endpoints unaffected;
 * - once connected, node-opcua repairs a lost connection itself (new secure channel, session reactivated or
 *   recreated, subscription transferred or recreated, missed notifications republished where the server keeps
 *   them); a session that cannot be repaired is closed and opened again here with back-off.
 * node-opcua is imported on first start, so an agent without OPC UA endpoints never loads it (2–4 s and about 70 MiB
 * of RSS on the development VM: `node -e "await import('node-opcua-client')"`, RSS 39 → 112 MiB).
 */
import { readFileSync } from 'node:fs';
import type * as Opcua from 'node-opcua-client';
import { backoffDelay } from '../../core/backoff.js';
import { ForewarnError, describeError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Reading, ReadingSink } from '../../core/types.js';
import type { SourceStats } from '../interval-source.js';
import type { Source } from '../plugin.js';
import type { OpcuaEndpointConfig, OpcuaIdentityConfig, OpcuaNodeConfig } from './opcua-config.js';
import type { OpcuaPki, OpenPki } from './opcua-pki.js';
import { describeUnits, numericValue, statusQuality, unitMatches, type EngineeringUnits } from './opcua-values.js';

type OpcuaModule = typeof Opcua;

// A type, not an interface: /metrics reads it as SourceCounters (an index signature).
export type OpcuaCounters = {
  connects: number;
  connectFailures: number;
  /** Connections lost after they were up. */
  disconnects: number;
  /** Connections node-opcua re-established by itself, and sessions it restored on them. */
  reconnects: number;
  sessionRecoveries: number;
  /** Publish responses that carried data, and keep-alives. */
  publishes: number;
  keepalives: number;
  /** Gaps in the subscription's notification sequence numbers: publish responses lost for good. */
  missedPublishes: number;
  /** Values by status severity; Bad ones are absent from the readings, Uncertain ones flagged. */
  values: number;
  good: number;
  uncertain: number;
  bad: number;
  /** Values that are not numbers (strings, arrays, structures): not signals. */
  nonNumeric: number;
  readings: number;
  /** Nodes the server refused to monitor, or removed. */
  nodeErrors: number;
  unitMismatches: number;
};

/** Loaded on first start; a variable keeps the package out of the agent's start-up. */
const CLIENT_PACKAGE = 'node-opcua-client';
let clientModule: Promise<OpcuaModule> | null = null;
export function loadOpcua(): Promise<OpcuaModule> {
  clientModule ??= import(CLIENT_PACKAGE).then((m: OpcuaModule & { default?: OpcuaModule }) => {
    const mod = m.OPCUAClient ? m : (m.default ?? m);
    routeLibraryLogs(mod);
    return mod;
  });
  return clientModule;
}

/** node-opcua writes its warnings to the console; they go to the agent's log at debug level instead. */
let libraryLog: Logger | null = null;
function routeLibraryLogs(mod: OpcuaModule): void {
  const toLog = (...args: unknown[]) =>
    libraryLog?.debug({ component: 'node-opcua' }, args.map((a) => (typeof a === 'string' ? a : describeError(a))).join(' '));
  mod.setWarningLogger(toLog);
  mod.setErrorLogger(toLog);
  mod.setDebugLogger(toLog);
}

/** What a connection failure means to an operator: the code, and what to do, from node-opcua's status names. */
export function classifyConnectError(err: unknown, pki: Pick<OpcuaPki, 'trustedFolder' | 'rejectedFolder'> | null): { code: ErrorCode; message: string } {
  const message = describeError(err);
  if (
    /BadCertificate(Untrusted|Invalid|TimeInvalid|IssuerRevocationUnknown|RevocationUnknown|Revoked|UriInvalid|HostNameInvalid|ChainIncomplete)/.test(message)
  ) {
    return {
      code: 'FW_ERR_OPCUA_UNTRUSTED',
      message: `the server's certificate is not trusted (${message}); if it is the right server, move its certificate from ${pki?.rejectedFolder ?? 'rejected/'} to ${pki?.trustedFolder ?? 'trusted/certs/'}`,
    };
  }
  if (
    /BadSecurityChecksFailed|BadSecurityPolicyRejected|BadSecurityModeRejected|rejected by server|BadIdentityTokenRejected|BadIdentityTokenInvalid|BadUserAccessDenied|BadCertificateUseNotAllowed/.test(
      message,
    )
  ) {
    return {
      code: 'FW_ERR_OPCUA_REJECTED',
      message: `the server refused the agent (${message}): it must trust the agent's certificate (${pki ? `${pki.trustedFolder}/../../own/certs/forewarn.pem` : 'own/certs/forewarn.pem'}), offer this security mode and policy, and accept this identity`,
    };
  }
  return { code: 'FW_ERR_SOURCE_FAILED', message };
}

/** The user identity node-opcua presents; the password is read here, at connect time, and kept nowhere else. */
export function userIdentity(opcua: OpcuaModule, id: OpcuaIdentityConfig): Opcua.UserIdentityInfo {
  if (id.type === 'userName') {
    let password: string | undefined;
    try {
      password = id.passwordFile ? readFileSync(id.passwordFile, 'utf8').replace(/\r?\n$/, '') : process.env[id.passwordEnv];
    } catch (err) {
      throw new ForewarnError('FW_ERR_SECRET_READ', `identity.passwordFile: cannot read ${id.passwordFile}: ${describeError(err)}`);
    }
    if (password === undefined) throw new ForewarnError('FW_ERR_SECRET_READ', `identity.passwordEnv: ${id.passwordEnv} is not set`);
    return { type: opcua.UserTokenType.UserName, userName: id.userName, password };
  }
  if (id.type === 'certificate') {
    let pem: string;
    let privateKey: string;
    try {
      pem = readFileSync(id.certificateFile, 'utf8');
      privateKey = readFileSync(id.privateKeyFile, 'utf8');
    } catch (err) {
      throw new ForewarnError('FW_ERR_SECRET_READ', `identity.certificateFile: ${describeError(err)}`);
    }
    const der = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''), 'base64');
    return { type: opcua.UserTokenType.Certificate, certificateData: der, privateKey } as unknown as Opcua.UserIdentityInfo;
  }
  return { type: opcua.UserTokenType.Anonymous };
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  p.catch(() => {}); // a late rejection after the guard fired is not unhandled
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}

interface NodeState {
  cfg: OpcuaNodeConfig;
  /** The last quality logged for this node: a change is logged once, not every value. */
  logged: 'good' | 'uncertain' | 'bad' | 'non-numeric' | 'error';
}

/** One connection: client, session, subscription. */
interface Connection {
  client: Opcua.OPCUAClient;
  session: Opcua.ClientSession | null;
  subscription: Opcua.ClientSubscription | null;
  /** The monitored items exist: values flow. */
  ready: boolean;
  /** Resolves when the session is beyond repair and the connection must be opened again. */
  broken: Promise<string>;
  breakWith: (why: string) => void;
}

export class OpcuaSource implements Source {
  readonly name: string;
  readonly stats: SourceStats;
  readonly counters: OpcuaCounters = {
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
    reconnects: 0,
    sessionRecoveries: 0,
    publishes: 0,
    keepalives: 0,
    missedPublishes: 0,
    values: 0,
    good: 0,
    uncertain: 0,
    bad: 0,
    nonNumeric: 0,
    readings: 0,
    nodeErrors: 0,
    unitMismatches: 0,
  };
  private readonly nodes: NodeState[];
  /** Monitored item client handle → node. */
  private handles = new Map<number, NodeState>();
  private conn: Connection | null = null;
  private stopping = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private attempts = 0;
  private lastLoggedError: string | null = null;
  private lastSequence = 0;
  private pkiOpen = false;

  constructor(
    readonly cfg: OpcuaEndpointConfig,
    private readonly pki: OpcuaPki,
    private readonly sink: ReadingSink,
    private readonly log: Logger,
  ) {
    this.name = `opcua:${cfg.name}`;
    this.stats = { name: this.name, state: 'idle', samples: 0, errors: 0, lastError: null, lastSampleTs: null };
    this.nodes = cfg.nodes.map((n) => ({ cfg: n, logged: 'good' }));
  }

  /** Returns at once; connecting (and loading node-opcua) runs in the background. */
  async start(): Promise<void> {
    this.stopping = false;
    this.stats.state = 'running';
    libraryLog ??= this.log;
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stats.state = 'stopped';
    this.wake?.();
    this.conn?.breakWith('stopping');
    // A connect in progress (node-opcua retrying inside it) ends now rather than at its timeout.
    void this.conn?.client.disconnect().catch(() => undefined);
    await this.running;
    this.running = null;
  }

  /** Whether the subscription is up with its monitored items, for status views and tests. */
  get connected(): boolean {
    return this.conn?.ready === true;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let conn: Connection | null = null;
      try {
        conn = await this.connect();
        this.attempts = 0;
        const why = await conn.broken;
        if (!this.stopping) {
          this.counters.disconnects++;
          this.fail(new Error(`session lost: ${why}`), 'FW_ERR_SOURCE_FAILED', 'OPC UA session lost; connecting again with back-off');
        }
      } catch (err) {
        if (this.stopping) break;
        this.counters.connectFailures++;
        const { code, message } = classifyConnectError(err, this.pki);
        this.fail(
          new Error(message),
          code,
          code === 'FW_ERR_SOURCE_FAILED' ? 'cannot connect to the OPC UA server; will keep trying' : 'OPC UA connection refused; will keep trying',
        );
      } finally {
        await this.close(conn ?? this.conn);
      }
      if (this.stopping) break;
      await this.sleep(backoffDelay(this.attempts++, this.cfg.reconnectMinMs, this.cfg.reconnectMaxMs));
      // A certificate the operator trusted meanwhile counts from the next attempt, without a restart.
      await this.pki.reload().catch(() => undefined);
    }
    if (this.pkiOpen) await this.pki.release();
    this.pkiOpen = false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  /** Logged once per distinct problem (not on every retry); the source shows as failing meanwhile. */
  private fail(err: Error, code: ErrorCode, text: string): void {
    this.stats.errors++;
    this.stats.lastError = err.message;
    if (this.stats.state !== 'stopped') this.stats.state = 'failing';
    if (this.lastLoggedError !== err.message) {
      this.lastLoggedError = err.message;
      const log = code === 'FW_ERR_SOURCE_FAILED' ? this.log.warn.bind(this.log) : this.log.error.bind(this.log);
      log({ source: this.name, endpoint: this.cfg.url, err: err.message, code }, text);
    }
  }

  private async connect(): Promise<Connection> {
    const opcua = await loadOpcua();
    if (this.stopping) throw new Error('stopped');
    const pki: OpenPki = await this.pki.open(this.log);
    this.pkiOpen = true;
    const { timeoutMs, reconnectMinMs, reconnectMaxMs } = this.cfg;
    const client = opcua.OPCUAClient.create({
      applicationName: 'Forewarn',
      applicationUri: pki.applicationUri,
      clientName: this.name,
      securityMode: opcua.MessageSecurityMode[this.cfg.securityMode],
      securityPolicy: opcua.SecurityPolicy[this.cfg.securityPolicy],
      clientCertificateManager: pki.manager as unknown as Opcua.OPCUAClientOptions['clientCertificateManager'],
      certificateFile: pki.certificateFile,
      privateKeyFile: pki.privateKeyFile,
      endpointMustExist: false,
      keepSessionAlive: true,
      requestedSessionTimeout: Math.max(60_000, 10 * this.cfg.publishingIntervalMs),
      transportTimeout: timeoutMs,
      // One retry on the first connect (the back-off loop here does the rest); once up, node-opcua reconnects by
      // itself for as long as it takes, with this back-off.
      connectionStrategy: { maxRetry: 1, initialDelay: reconnectMinMs, maxDelay: reconnectMaxMs, randomisationFactor: 0.5 },
    });
    let breakWith: (why: string) => void = () => {};
    const broken = new Promise<string>((resolve) => (breakWith = resolve));
    const conn: Connection = { client, session: null, subscription: null, ready: false, broken, breakWith };
    this.conn = conn;
    client.on('connection_lost', () => {
      if (this.stopping) return;
      this.counters.disconnects++;
      this.fail(new Error('connection lost'), 'FW_ERR_SOURCE_FAILED', 'OPC UA connection lost; reconnecting with back-off');
    });
    client.on('connection_reestablished', () => {
      this.counters.reconnects++;
      this.log.info({ source: this.name, endpoint: this.cfg.url }, 'OPC UA connection re-established');
    });
    client.on('reconnection_attempt_has_failed', (err: Error) => {
      const { code, message } = classifyConnectError(err, this.pki);
      if (code !== 'FW_ERR_SOURCE_FAILED') this.fail(new Error(message), code, 'OPC UA reconnection refused; will keep trying');
    });
    await withTimeout(client.connect(this.cfg.url), timeoutMs * 3, `connecting to ${this.cfg.url}`);
    const session = await withTimeout(client.createSession(userIdentity(opcua, this.cfg.identity)), timeoutMs, 'creating the session');
    conn.session = session;
    session.on('session_restored', () => {
      this.counters.sessionRecoveries++;
      this.recovered('OPC UA session restored');
    });
    session.on('session_closed', () => conn.breakWith('the server closed the session'));
    const subscription = await withTimeout(
      session.createSubscription2({
        requestedPublishingInterval: this.cfg.publishingIntervalMs,
        // The server ends a subscription nobody publishes for in lifetime × interval; keep-alives every 10.
        requestedLifetimeCount: 100,
        requestedMaxKeepAliveCount: 10,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 10,
      }),
      timeoutMs,
      'creating the subscription',
    );
    conn.subscription = subscription;
    this.lastSequence = 0;
    subscription.on('received_notifications', (m: Opcua.NotificationMessage) => this.onNotifications(opcua, m));
    subscription.on('keepalive', () => {
      this.counters.keepalives++;
      this.recovered('OPC UA subscription alive again');
    });
    // A subscription created again (the server lost the old one) numbers its notifications from 1 again.
    subscription.on('subscriptionId_changed', () => (this.lastSequence = 0));
    subscription.on('terminated', () => conn.breakWith('the subscription was terminated'));
    subscription.on('internal_error', (err: Error) => conn.breakWith(describeError(err)));
    await this.monitor(opcua, subscription);
    await this.checkUnits(opcua, session).catch((err: unknown) =>
      this.log.debug({ source: this.name, err: describeError(err) }, 'could not read EngineeringUnits; units not checked'),
    );
    if (this.stopping) throw new Error('stopped');
    conn.ready = true;
    this.counters.connects++;
    this.recovered(this.counters.connects === 1 ? '' : 'OPC UA endpoint connected again');
    this.log.info(
      {
        source: this.name,
        endpoint: this.cfg.url,
        security: `${this.cfg.securityMode}/${this.cfg.securityPolicy}`,
        identity: this.cfg.identity.type,
        monitored: this.handles.size,
        of: this.nodes.length,
      },
      'OPC UA subscription active',
    );
    return conn;
  }

  private recovered(text: string): void {
    if (this.stats.state !== 'failing') return;
    this.stats.state = 'running';
    this.lastLoggedError = null;
    if (text) this.log.info({ source: this.name, endpoint: this.cfg.url }, text);
  }

  /** Creates the monitored items, grouped by identical parameters (one request per group, not per node). */
  private async monitor(opcua: OpcuaModule, subscription: Opcua.ClientSubscription): Promise<void> {
    const groups = new Map<string, { params: Opcua.MonitoringParametersOptions; nodes: NodeState[] }>();
    for (const node of this.nodes) {
      const n = node.cfg;
      const deadbandType = n.deadbandType ?? 'none';
      const params: Opcua.MonitoringParametersOptions = {
        samplingInterval: n.samplingIntervalMs ?? this.cfg.samplingIntervalMs,
        queueSize: n.queueSize ?? this.cfg.queueSize,
        discardOldest: true,
        ...(deadbandType === 'none'
          ? {}
          : {
              filter: new opcua.DataChangeFilter({
                trigger: opcua.DataChangeTrigger.StatusValue,
                deadbandType: deadbandType === 'absolute' ? opcua.DeadbandType.Absolute : opcua.DeadbandType.Percent,
                deadbandValue: n.deadband ?? 0,
              }),
            }),
      };
      const key = `${String(params.samplingInterval)}/${String(params.queueSize)}/${deadbandType}/${n.deadband ?? ''}`;
      const group = groups.get(key) ?? { params, nodes: [] };
      group.nodes.push(node);
      groups.set(key, group);
    }
    this.handles = new Map();
    for (const { params, nodes } of groups.values()) {
      const items = nodes.map((s) => ({ nodeId: s.cfg.nodeId, attributeId: opcua.AttributeIds.Value }));
      const group = await withTimeout(
        subscription.monitorItems(items, params, opcua.TimestampsToReturn.Both),
        this.cfg.timeoutMs,
        'creating the monitored items',
      );
      group.monitoredItems.forEach((item, i) => {
        const node = nodes[i]!;
        const status = item.statusCode;
        if (status && statusQuality(status.value) === 'bad') {
          this.nodeError(node, `the server refused to monitor it: ${status.name}`);
          return;
        }
        if (node.logged === 'error') node.logged = 'good';
        this.handles.set(item.monitoringParameters.clientHandle, node);
      });
    }
  }

  private nodeError(node: NodeState, why: string): void {
    this.counters.nodeErrors++;
    if (node.logged === 'error') return;
    node.logged = 'error';
    this.log.warn(
      { source: this.name, nodeId: node.cfg.nodeId, asset: node.cfg.asset, signal: node.cfg.signal, err: why, code: 'FW_ERR_OPCUA_NODE' },
      'OPC UA node not readable; the other nodes go on',
    );
  }

  /** Reads each node's EngineeringUnits property (where it has one) and compares it with the configured unit. */
  private async checkUnits(opcua: OpcuaModule, session: Opcua.ClientSession): Promise<void> {
    const withUnit = [...this.handles.values()].filter((n) => n.cfg.unit);
    if (!withUnit.length) return;
    const paths = withUnit.map((n) => opcua.makeBrowsePath(n.cfg.nodeId, '.EngineeringUnits'));
    const found = await withTimeout(session.translateBrowsePath(paths), this.cfg.timeoutMs, 'finding EngineeringUnits');
    const targets = found.map((r, i) => ({ node: withUnit[i]!, id: r.statusCode.isGood() ? r.targets?.[0]?.targetId : undefined })).filter((t) => t.id);
    if (!targets.length) return;
    const values = await withTimeout(
      session.read(targets.map((t) => ({ nodeId: t.id as unknown as Opcua.NodeId, attributeId: opcua.AttributeIds.Value }))),
      this.cfg.timeoutMs,
      'reading EngineeringUnits',
    );
    values.forEach((dv, i) => {
      const node = targets[i]!.node;
      const eu = dv.value?.value as { displayName?: { text?: string | null }; unitId?: number } | null;
      if (!eu || typeof eu !== 'object') return;
      const units: EngineeringUnits = { displayName: eu.displayName?.text ?? '', unitId: eu.unitId ?? 0 };
      if (unitMatches(node.cfg.unit!, units)) return;
      this.counters.unitMismatches++;
      this.log.warn(
        {
          source: this.name,
          nodeId: node.cfg.nodeId,
          asset: node.cfg.asset,
          signal: node.cfg.signal,
          configured: node.cfg.unit,
          server: describeUnits(units),
          code: 'FW_ERR_OPCUA_UNIT',
        },
        `OPC UA node is in ${describeUnits(units)}, not the configured ${node.cfg.unit}: check the mapping (values are passed on as read)`,
      );
    });
  }

  /** One publish response: its data changes become Readings, one per asset and source timestamp. */
  private onNotifications(opcua: OpcuaModule, m: Opcua.NotificationMessage): void {
    if (this.stopping) return;
    const seq = m.sequenceNumber;
    // node-opcua asks the server to republish what a broken link lost before it passes anything newer on, so a
    // gap that remains is notifications lost for good (the server no longer had them).
    if (this.lastSequence > 0 && seq > this.lastSequence + 1) this.counters.missedPublishes += seq - this.lastSequence - 1;
    if (seq > this.lastSequence) this.lastSequence = seq;
    this.counters.publishes++;
    const now = Date.now();
    const readings = new Map<string, Reading & { uncertain?: string[] }>();
    for (const data of m.notificationData ?? []) {
      if (!(data instanceof opcua.DataChangeNotification)) continue;
      for (const item of data.monitoredItems ?? []) {
        const node = this.handles.get(item.clientHandle);
        if (!node) continue;
        this.value(node, item.value, now, readings);
      }
    }
    if (!readings.size) return;
    this.stats.samples++;
    this.stats.lastSampleTs = now;
    this.recovered('OPC UA values arriving again');
    for (const r of [...readings.values()].sort((a, b) => a.ts - b.ts)) {
      this.counters.readings++;
      this.sink(r);
    }
  }

  private value(node: NodeState, dv: Opcua.DataValue, now: number, out: Map<string, Reading & { uncertain?: string[] }>): void {
    this.counters.values++;
    const status = dv.statusCode;
    const quality = statusQuality(status.value);
    const { asset, signal, nodeId } = node.cfg;
    if (quality === 'bad') {
      this.counters.bad++;
      // The server stops sampling a node it removed: BadNodeIdUnknown/Invalid is that node's last notification.
      if (/BadNodeId(Unknown|Invalid)/.test(status.name)) return this.nodeError(node, `the server removed it: ${status.name}`);
      if (node.logged !== 'bad') {
        node.logged = 'bad';
        this.log.warn({ source: this.name, nodeId, asset, signal, status: status.name }, 'OPC UA value Bad: the signal is missing until it is Good again');
      }
      return;
    }
    const value = numericValue(dv.value?.value);
    if (value === undefined) {
      this.counters.nonNumeric++;
      if (node.logged !== 'non-numeric') {
        node.logged = 'non-numeric';
        this.log.warn({ source: this.name, nodeId, asset, signal, dataType: String(dv.value?.dataType) }, 'OPC UA value is not a number; not a signal');
      }
      return;
    }
    if (quality === 'uncertain') this.counters.uncertain++;
    else this.counters.good++;
    if (node.logged !== quality) {
      if (quality === 'uncertain')
        this.log.info({ source: this.name, nodeId, asset, signal, status: status.name }, 'OPC UA value Uncertain: kept, flagged, not scored');
      else this.log.info({ source: this.name, nodeId, asset, signal }, 'OPC UA value Good again');
      node.logged = quality;
    }
    const ts = dv.sourceTimestamp?.getTime() ?? dv.serverTimestamp?.getTime() ?? now;
    // A queue can hold several values of one node under one millisecond (a fast writer, or the values queued
    // while the link was down): the next value of a signal goes to the next reading, never over the first.
    let n = 0;
    let r = out.get(`${asset}\0${ts}\0${n}`);
    while (r && signal in r.metrics) r = out.get(`${asset}\0${ts}\0${++n}`);
    if (!r) out.set(`${asset}\0${ts}\0${n}`, (r = { ts, source: this.name, asset, metrics: {} }));
    r.metrics[signal] = value;
    if (quality === 'uncertain') (r.uncertain ??= []).push(signal);
  }

  private async close(conn: Connection | null): Promise<void> {
    if (!conn) return;
    if (this.conn === conn) this.conn = null;
    conn.breakWith('closed');
    conn.ready = false;
    this.handles = new Map();
    const quiet = <T>(p: Promise<T> | undefined) => (p ? withTimeout(p, 2000, 'closing').catch(() => undefined) : undefined);
    await quiet(conn.subscription?.terminate());
    await quiet(conn.session?.close(true));
    await quiet(conn.client.disconnect());
    conn.subscription = null;
  }
}
