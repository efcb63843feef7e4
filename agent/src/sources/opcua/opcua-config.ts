/**
 * The `sources.opcua` configuration: endpoints, each with its security, identity, subscription settings and the
 * nodes it maps to assets and signals. The schema carries every default (docs/configuration.md is generated from
 * it); `resolveOpcuaConfig` adds what the schema cannot say (cross-field rules, the PKI folder under storage.dir).
 */
import path from 'node:path';
import { ForewarnError } from '../../core/errors.js';
import { DAY_MS, type SchemaNode, schemaInteger, withoutDefault } from '../../core/schema-node.js';

export const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
export const SECURITY_POLICIES = ['None', 'Basic256Sha256'] as const;
export const IDENTITY_TYPES = ['anonymous', 'userName', 'certificate'] as const;
export const DEADBAND_TYPES = ['none', 'absolute', 'percent'] as const;

export type SecurityModeName = (typeof SECURITY_MODES)[number];
export type SecurityPolicyName = (typeof SECURITY_POLICIES)[number];

export interface OpcuaIdentityConfig {
  type: (typeof IDENTITY_TYPES)[number];
  userName: string;
  /** The password is read at connect time from this file or this environment variable, never from the YAML. */
  passwordFile: string;
  passwordEnv: string;
  /** X.509 user identity (type certificate): PEM files. */
  certificateFile: string;
  privateKeyFile: string;
}

export interface OpcuaNodeConfig {
  nodeId: string;
  asset: string;
  signal: string;
  /** The unit the value is expected in; checked against the node's EngineeringUnits where it has one. */
  unit?: string;
  samplingIntervalMs?: number;
  queueSize?: number;
  deadbandType?: (typeof DEADBAND_TYPES)[number];
  deadband?: number;
}

export interface OpcuaEndpointConfig {
  enabled: boolean;
  name: string;
  url: string;
  securityMode: SecurityModeName;
  securityPolicy: SecurityPolicyName;
  identity: OpcuaIdentityConfig;
  publishingIntervalMs: number;
  samplingIntervalMs: number;
  queueSize: number;
  timeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  nodes: OpcuaNodeConfig[];
}

export interface OpcuaConfig {
  /** The agent's OPC UA PKI: its application certificate, the trust list, rejected certificates. */
  pkiDir: string;
  endpoints: OpcuaEndpointConfig[];
}

const int = schemaInteger;
const str = (description: string, dflt: string): SchemaNode => ({ type: 'string', description, default: dflt });

const NODE_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'One variable of the server, bound to an asset and a signal name',
  additionalProperties: false,
  required: ['nodeId', 'asset', 'signal'],
  properties: {
    nodeId: { type: 'string', description: 'The node id, e.g. `ns=2;s=Mill1.Torque` (`forewarn opcua browse` lists them).', minLength: 1 },
    asset: { type: 'string', description: 'Asset the value belongs to.', minLength: 1 },
    signal: { type: 'string', description: 'Signal name in the reading (the name a model input asks for).', minLength: 1 },
    unit: {
      type: 'string',
      description:
        "Engineering unit the value must be in (e.g. `K`, `rpm`, `N.m`). Checked against the node's EngineeringUnits property where the server has one; a mismatch is a warning (FW_ERR_OPCUA_UNIT).",
    },
    samplingIntervalMs: { type: 'integer', description: "How often the server samples this node; default the endpoint's.", minimum: 0, maximum: DAY_MS },
    queueSize: { type: 'integer', description: "Values the server queues between publishes; default the endpoint's.", minimum: 1, maximum: 10_000 },
    deadbandType: {
      type: 'string',
      description: "`absolute`: report a change only beyond `deadband` in the value's unit; `percent`: beyond `deadband` % of the EURange; `none`.",
      enum: DEADBAND_TYPES,
    },
    deadband: { type: 'number', description: 'The deadband (with `deadbandType`).', minimum: 0 },
  },
};

const IDENTITY_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'Who the agent is to the server',
  additionalProperties: false,
  default: {},
  properties: {
    type: {
      type: 'string',
      description: '`anonymous`, `userName` (with a password) or `certificate` (an X.509 user certificate).',
      enum: IDENTITY_TYPES,
      default: 'anonymous',
    },
    userName: str('userName: the user name.', ''),
    passwordFile: str('userName: a file holding the password (keep it 0600). Never logged.', ''),
    passwordEnv: str('userName: the environment variable holding the password, where no file is given. Never logged.', ''),
    certificateFile: str('certificate: the user certificate (PEM).', ''),
    privateKeyFile: str('certificate: its private key (PEM, keep it 0600).', ''),
  },
};

export const OPCUA_ENDPOINT_DEFAULTS = Object.freeze({
  enabled: true,
  securityMode: 'SignAndEncrypt' as SecurityModeName,
  securityPolicy: 'Basic256Sha256' as SecurityPolicyName,
  publishingIntervalMs: 1000,
  samplingIntervalMs: 1000,
  queueSize: 10,
  timeoutMs: 10_000,
  reconnectMinMs: 500,
  reconnectMaxMs: 30_000,
});
const D = OPCUA_ENDPOINT_DEFAULTS;

const ENDPOINT_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'An OPC UA server endpoint and the nodes read from it',
  additionalProperties: false,
  required: ['name', 'url', 'nodes'],
  properties: {
    enabled: { type: 'boolean', description: 'Subscribe to this endpoint.', default: D.enabled },
    name: { type: 'string', description: 'Endpoint name; readings come from source `opcua:<name>`.', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' },
    url: { type: 'string', description: 'The endpoint URL, `opc.tcp://host:port[/path]`.', pattern: '^opc\\.tcp://' },
    securityMode: {
      type: 'string',
      description: '`None`, `Sign` or `SignAndEncrypt`. Sign and SignAndEncrypt need the server certificate in the trust list (`<pkiDir>/trusted/certs`).',
      enum: SECURITY_MODES,
      default: D.securityMode,
    },
    securityPolicy: { type: 'string', description: '`Basic256Sha256`, or `None` with securityMode None.', enum: SECURITY_POLICIES, default: D.securityPolicy },
    identity: IDENTITY_SCHEMA,
    publishingIntervalMs: int('How often the server sends the subscription its notifications.', D.publishingIntervalMs, 10, DAY_MS),
    samplingIntervalMs: int('Default sampling interval of the monitored items (0: as fast as the server can).', D.samplingIntervalMs, 0, DAY_MS),
    queueSize: int('Default queue size of the monitored items: values kept between two publishes.', D.queueSize, 1, 10_000),
    timeoutMs: int('How long one request or connection attempt may take.', D.timeoutMs, 100, 10 * 60_000),
    reconnectMinMs: int('First reconnect delay; doubles per failed attempt, with jitter.', D.reconnectMinMs, 10, DAY_MS),
    reconnectMaxMs: int('Longest reconnect delay.', D.reconnectMaxMs, 10, DAY_MS),
    nodes: { type: 'array', description: 'The nodes to monitor.', minItems: 1, items: NODE_SCHEMA },
  },
};

/** The `sources.opcua` section. */
export const OPCUA_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'OPC UA servers (subscriptions with monitored items)',
  additionalProperties: false,
  default: {},
  properties: {
    pkiDir: str(
      "The agent's OPC UA certificate store: its application certificate (created on first start, key 0600) in `own/`, trusted server certificates in `trusted/certs/`, refused ones in `rejected/`. Empty: `<storage.dir>/opcua-pki`.",
      '',
    ),
    endpoints: { type: 'array', description: 'Servers to subscribe to, one source each.', default: [], items: withoutDefault(ENDPOINT_SCHEMA) },
  },
};

/**
 * Checks what the schema cannot and fills in the PKI folder. Throws FW_ERR_CONFIG_INVALID with `path: message`
 * details. Secrets are not read here: the password is read when the source connects, so it is never held in the
 * configuration that `config show` prints.
 */
export function resolveOpcuaConfig(config: OpcuaConfig, storageDir: string): void {
  if (!config.pkiDir) config.pkiDir = path.join(storageDir, 'opcua-pki');
  config.pkiDir = path.resolve(config.pkiDir);
  const problems: string[] = [];
  const names = new Set<string>();
  config.endpoints.forEach((e, i) => {
    const at = `sources.opcua.endpoints.${i}`;
    if (names.has(e.name)) problems.push(`${at}.name: ${e.name} is used by another endpoint`);
    names.add(e.name);
    if ((e.securityMode === 'None') !== (e.securityPolicy === 'None')) {
      problems.push(`${at}.securityPolicy: securityMode ${e.securityMode} needs securityPolicy ${e.securityMode === 'None' ? 'None' : 'Basic256Sha256'}`);
    }
    if (e.reconnectMaxMs < e.reconnectMinMs) problems.push(`${at}.reconnectMaxMs: must be at least reconnectMinMs`);
    const id = e.identity;
    if (id.type === 'userName') {
      if (!id.userName) problems.push(`${at}.identity.userName: required with identity type userName`);
      if (!id.passwordFile && !id.passwordEnv) problems.push(`${at}.identity.passwordFile: userName needs passwordFile or passwordEnv`);
      // A password on an unsecured channel would cross the network readable by anyone on the way.
      if (e.securityMode === 'None') problems.push(`${at}.identity.type: a password needs securityMode Sign or SignAndEncrypt`);
    }
    if (id.type === 'certificate' && (!id.certificateFile || !id.privateKeyFile)) {
      problems.push(`${at}.identity.certificateFile: identity type certificate needs certificateFile and privateKeyFile`);
    }
    const bound = new Set<string>();
    e.nodes.forEach((n, k) => {
      const key = `${n.asset}\0${n.signal}`;
      if (bound.has(key)) problems.push(`${at}.nodes.${k}.signal: ${n.asset}/${n.signal} is bound twice`);
      bound.add(key);
      if (n.deadbandType && n.deadbandType !== 'none' && n.deadband === undefined)
        problems.push(`${at}.nodes.${k}.deadband: needed with deadbandType ${n.deadbandType}`);
      if (n.deadbandType === 'percent' && (n.deadband ?? 0) > 100) problems.push(`${at}.nodes.${k}.deadband: a percent deadband is at most 100`);
    });
  });
  if (problems.length) throw new ForewarnError('FW_ERR_CONFIG_INVALID', 'sources.opcua: invalid configuration', { details: problems });
}
