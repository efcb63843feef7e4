/**
 * Lists a server's address space from the Objects folder down, for `forewarn opcua browse`: what a user needs to
 * write the node mapping (node id, browse name, data type, engineering unit, current value and status). It connects
 * as the agent does (same certificate store and trust list, same identity options), reads, and disconnects.
 * The standard `Server` object (namespace 0) is listed but not descended into: it is the server's own diagnostics.
 */
import type * as Opcua from 'node-opcua-client';
import type { Logger } from '../../core/logger.js';
import { ForewarnError } from '../../core/errors.js';
import {
  OPCUA_ENDPOINT_DEFAULTS,
  SECURITY_MODES,
  type OpcuaConfig,
  type OpcuaIdentityConfig,
  type SecurityModeName,
  type SecurityPolicyName,
} from './opcua-config.js';
import { OpcuaPki } from './opcua-pki.js';
import { classifyConnectError, loadOpcua, userIdentity, withTimeout } from './opcua-source.js';
import { describeUnits, statusQuality } from './opcua-values.js';

export interface BrowseOptions {
  url: string;
  securityMode: SecurityModeName;
  securityPolicy: SecurityPolicyName;
  identity: OpcuaIdentityConfig;
  pki: OpcuaPki;
  /** Levels below the Objects folder (1: its children only). */
  depth: number;
  timeoutMs: number;
  log: Logger;
}

export interface BrowsedNode {
  /** 1 for the Objects folder's children. */
  level: number;
  nodeId: string;
  browseName: string;
  nodeClass: 'Object' | 'Variable' | 'Method' | 'View' | 'ObjectType' | 'VariableType' | 'ReferenceType' | 'DataType' | 'Unspecified';
  dataType?: string;
  unit?: string;
  value?: string;
  status?: string;
}

export { SECURITY_MODES, type SecurityModeName };

const ANONYMOUS: OpcuaIdentityConfig = { type: 'anonymous', userName: '', passwordFile: '', passwordEnv: '', certificateFile: '', privateKeyFile: '' };

/**
 * What `forewarn opcua browse TARGET` connects to: TARGET is a configured endpoint's name (its URL, security and
 * identity) or an opc.tcp:// URL (SignAndEncrypt unless told otherwise: secure by default, like an endpoint).
 * Throws FW_ERR_USAGE for anything else. The store is the agent's own, so a trust given once serves both.
 */
export function browseOptionsFor(
  config: OpcuaConfig,
  agentId: string,
  target: string,
  over: { security?: SecurityModeName; userName?: string; passwordFile?: string; depth: number; log: Logger },
): BrowseOptions {
  const named = config.endpoints.find((e) => e.name === target);
  if (!named && !/^opc\.tcp:\/\//.test(target))
    throw new ForewarnError('FW_ERR_USAGE', `${target}: neither an opc.tcp:// URL nor the name of a configured endpoint`);
  const securityMode = over.security ?? named?.securityMode ?? OPCUA_ENDPOINT_DEFAULTS.securityMode;
  const identity: OpcuaIdentityConfig =
    over.userName !== undefined
      ? { ...ANONYMOUS, type: 'userName', userName: over.userName, passwordFile: over.passwordFile ?? '' }
      : (named?.identity ?? ANONYMOUS);
  return {
    url: named?.url ?? target,
    securityMode,
    securityPolicy: securityMode === 'None' ? 'None' : 'Basic256Sha256',
    identity,
    pki: new OpcuaPki(config.pkiDir, agentId),
    depth: over.depth,
    timeoutMs: named?.timeoutMs ?? OPCUA_ENDPOINT_DEFAULTS.timeoutMs,
    log: over.log,
  };
}

/** Most nodes listed; a larger address space is cut here (with a note) rather than exhausting the terminal. */
export const BROWSE_MAX_NODES = 5000;

export async function browseAddressSpace(o: BrowseOptions): Promise<{ nodes: BrowsedNode[]; truncated: boolean }> {
  const opcua = await loadOpcua();
  const pki = await o.pki.open(o.log);
  const client = opcua.OPCUAClient.create({
    applicationName: 'Forewarn',
    applicationUri: pki.applicationUri,
    clientName: 'forewarn-browse',
    securityMode: opcua.MessageSecurityMode[o.securityMode],
    securityPolicy: opcua.SecurityPolicy[o.securityPolicy],
    clientCertificateManager: pki.manager as unknown as Opcua.OPCUAClientOptions['clientCertificateManager'],
    certificateFile: pki.certificateFile,
    privateKeyFile: pki.privateKeyFile,
    endpointMustExist: false,
    transportTimeout: o.timeoutMs,
    connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
  });
  try {
    try {
      await withTimeout(client.connect(o.url), o.timeoutMs, `connecting to ${o.url}`);
    } catch (err) {
      const { code, message } = classifyConnectError(err, o.pki);
      throw new ForewarnError(code, `${o.url}: ${message}`);
    }
    let session: Opcua.ClientSession;
    try {
      session = await withTimeout(client.createSession(userIdentity(opcua, o.identity)), o.timeoutMs, 'creating the session');
    } catch (err) {
      const { code, message } = classifyConnectError(err, o.pki);
      throw new ForewarnError(code === 'FW_ERR_SOURCE_FAILED' ? 'FW_ERR_OPCUA_REJECTED' : code, `${o.url}: ${message}`);
    }
    try {
      return await walk(opcua, session, o);
    } finally {
      await withTimeout(session.close(true), 2000, 'closing').catch(() => undefined);
    }
  } finally {
    await withTimeout(client.disconnect(), 2000, 'disconnecting').catch(() => undefined);
    await o.pki.release();
  }
}

async function walk(opcua: typeof Opcua, session: Opcua.ClientSession, o: BrowseOptions): Promise<{ nodes: BrowsedNode[]; truncated: boolean }> {
  const out: BrowsedNode[] = [];
  let truncated = false;
  const visit = async (nodeId: string, level: number): Promise<void> => {
    if (level > o.depth || truncated) return;
    const result = await withTimeout(
      session.browse({
        nodeId,
        browseDirection: opcua.BrowseDirection.Forward,
        referenceTypeId: 'HierarchicalReferences',
        includeSubtypes: true,
        nodeClassMask: opcua.NodeClassMask.Object | opcua.NodeClassMask.Variable | opcua.NodeClassMask.Method,
        resultMask: 0x3f,
      }),
      o.timeoutMs,
      'browsing',
    );
    const refs = (result.references ?? []).filter((r) => r.isForward);
    const rows = refs.map((r): BrowsedNode => ({
      level,
      nodeId: r.nodeId.toString(),
      browseName: r.browseName.name ?? '',
      nodeClass: opcua.NodeClass[r.nodeClass] as BrowsedNode['nodeClass'],
    }));
    await describeVariables(opcua, session, rows, o.timeoutMs);
    for (const row of rows) {
      if (out.length >= BROWSE_MAX_NODES) {
        truncated = true;
        return;
      }
      out.push(row);
      // A variable's children are its properties (EngineeringUnits, EURange): shown on the variable's line instead.
      if (row.nodeClass !== 'Object' || row.nodeId.startsWith('i=')) continue;
      await visit(row.nodeId, level + 1);
    }
  };
  await visit('i=85', 1);
  return { nodes: out, truncated };
}

/** Data type, value, status and EngineeringUnits of the variables among `rows`, in three batched requests. */
async function describeVariables(opcua: typeof Opcua, session: Opcua.ClientSession, rows: BrowsedNode[], timeoutMs: number): Promise<void> {
  const vars = rows.filter((r) => r.nodeClass === 'Variable');
  if (!vars.length) return;
  const values = await withTimeout(
    session.read(
      vars.flatMap((v) => [
        { nodeId: v.nodeId, attributeId: opcua.AttributeIds.Value },
        { nodeId: v.nodeId, attributeId: opcua.AttributeIds.DataType },
      ]),
    ),
    timeoutMs,
    'reading values',
  );
  const euPaths = await withTimeout(
    session.translateBrowsePath(vars.map((v) => opcua.makeBrowsePath(v.nodeId, '.EngineeringUnits'))),
    timeoutMs,
    'finding units',
  );
  const euTargets = euPaths.map((p, i) => ({ row: vars[i]!, id: p.statusCode.isGood() ? p.targets?.[0]?.targetId : undefined })).filter((t) => t.id);
  const euValues = euTargets.length
    ? await withTimeout(
        session.read(euTargets.map((t) => ({ nodeId: t.id as unknown as Opcua.NodeId, attributeId: opcua.AttributeIds.Value }))),
        timeoutMs,
        'reading units',
      )
    : [];
  vars.forEach((v, i) => {
    const dv = values[2 * i]!;
    const dt = values[2 * i + 1]!;
    v.status = dv.statusCode.name;
    if (statusQuality(dv.statusCode.value) !== 'bad') v.value = formatValue(dv.value?.value);
    const typeId = dt.value?.value as { toString(): string } | undefined;
    if (typeId) v.dataType = dataTypeName(opcua, typeId.toString());
  });
  euTargets.forEach((t, i) => {
    const eu = euValues[i]?.value?.value as { displayName?: { text?: string | null }; unitId?: number } | null | undefined;
    if (eu && typeof eu === 'object') t.row.unit = describeUnits({ displayName: eu.displayName?.text ?? '', unitId: eu.unitId ?? 0 });
  });
}

function dataTypeName(opcua: typeof Opcua, id: string): string {
  const m = /^(?:ns=0;)?i=(\d+)$/.exec(id);
  const entry = m ? Object.entries(opcua.DataTypeIds as unknown as Record<string, number>).find(([, v]) => v === Number(m[1])) : undefined;
  return entry?.[0] ?? id;
}

function formatValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v instanceof Date) return v.toISOString();
  if (ArrayBuffer.isView(v) || Array.isArray(v)) return `[${(v as ArrayLike<unknown>).length} values]`;
  return String((v as { constructor?: { name?: string } }).constructor?.name ?? typeof v);
}

/** The listing as text: one line per node, indented by level; node ids in a column to copy into the mapping. */
export function formatBrowse(nodes: readonly BrowsedNode[], truncated: boolean): string {
  const names = nodes.map((n) => `${'  '.repeat(n.level - 1)}${n.browseName}`);
  const w = Math.min(48, Math.max(4, ...names.map((s) => s.length)));
  const idw = Math.min(56, Math.max(7, ...nodes.map((n) => n.nodeId.length)));
  const lines = [`${'NAME'.padEnd(w)}  ${'NODE ID'.padEnd(idw)}  CLASS     TYPE      UNIT        VALUE`];
  nodes.forEach((n, i) => {
    const extra =
      n.nodeClass === 'Variable'
        ? `${(n.dataType ?? '').padEnd(8)}  ${(n.unit ?? '').padEnd(10)}  ${n.value ?? ''}${n.status && n.status !== 'Good' && !n.status.startsWith('Good') ? ` (${n.status})` : ''}`
        : '';
    lines.push(`${names[i]!.padEnd(w)}  ${n.nodeId.padEnd(idw)}  ${n.nodeClass.padEnd(8)}  ${extra}`.trimEnd());
  });
  if (truncated) lines.push(`… stopped after ${BROWSE_MAX_NODES} nodes; browse with a smaller --depth`);
  return lines.join('\n');
}
