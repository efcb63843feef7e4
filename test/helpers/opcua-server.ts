/**
 * A real OPC UA server (node-opcua-server) serving the simulated milling machine, for the OPC UA source's tests and
 * benchmark. Objects/<asset> holds one AnalogItem per signal of millingSignals() (with its EngineeringUnits) plus
 * `Cycle`; `advance()` runs one machining process and writes all of them with one source timestamp, as a PLC scan
 * would. Its certificate store lives in `dir` and survives restart(), so a trust given once holds.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { MillingMachineSimulator, millingSignals, type MillingSample } from '../../firmware-bridge/src/simulators/milling-machine.js';
import { freePort } from './mosquitto.js';

/* The server package is CommonJS with few named exports: the pieces come from the client and data-access packages. */
import serverPkg from 'node-opcua-server';
import clientPkg from 'node-opcua-client';
import dataAccessPkg from 'node-opcua-data-access';
import certificateManagerPkg from 'node-opcua-certificate-manager';

const { OPCUAServer } = serverPkg as unknown as { OPCUAServer: new (o: Record<string, unknown>) => ServerLike };
const { DataType, StatusCodes, SecurityPolicy, MessageSecurityMode, DataValue, Variant } = clientPkg;
const { standardUnits, makeEUInformation } = dataAccessPkg as unknown as {
  standardUnits: Record<string, unknown>;
  makeEUInformation(code: string, symbol: string, description: string): unknown;
};
/** UNECE code NU, newton metre: node-opcua's table of standard units lacks it. */
const NEWTON_METRE = makeEUInformation('NU', 'N·m', 'newton metre');
const { OPCUACertificateManager } = certificateManagerPkg as unknown as {
  OPCUACertificateManager: new (o: Record<string, unknown>) => { initialize(): Promise<void>; rootDir: string; dispose(): Promise<void> };
};

interface VariableLike {
  nodeId: { toString(): string };
  setValueFromSource(v: { dataType: number; value: unknown }, status?: unknown, sourceTimestamp?: Date): void;
  browseName: { name: string };
}
interface NamespaceLike {
  namespaceUri: string;
  index: number;
  addObject(o: Record<string, unknown>): unknown;
  addAnalogDataItem(o: Record<string, unknown>): VariableLike;
  addVariable(o: Record<string, unknown>): VariableLike;
}
interface ServerLike {
  initialize(): Promise<void>;
  start(): Promise<void>;
  shutdown(ms?: number): Promise<void>;
  engine: { addressSpace: { getOwnNamespace(): NamespaceLike; rootFolder: { objects: unknown }; deleteNode(n: unknown): void } };
  currentSessionCount: number;
}

/** The signals the server publishes, their OPC UA names and units (UNECE, as a real controller would give them). */
export const MILL_NODES = [
  { signal: 'air_temperature', name: 'AirTemperature', unit: 'kelvin', configured: 'K' },
  { signal: 'process_temperature', name: 'ProcessTemperature', unit: 'kelvin', configured: 'K' },
  { signal: 'rotational_speed', name: 'RotationalSpeed', unit: 'revolutions_per_minute', configured: 'rpm' },
  { signal: 'torque', name: 'Torque', unit: 'newton_metre', configured: 'N.m' }, // not in node-opcua's table: NEWTON_METRE below
  { signal: 'tool_wear', name: 'ToolWear', unit: 'minute', configured: 'min' },
  { signal: 'product_type', name: 'ProductType', unit: null, configured: undefined },
] as const;

export interface MillOpcuaOptions {
  dir: string;
  port?: number;
  asset?: string;
  /** Policies offered (default None and Basic256Sha256, with None, Sign and SignAndEncrypt). */
  securityPolicies?: Array<'None' | 'Basic256Sha256'>;
  allowAnonymous?: boolean;
  /** Accepted user names and passwords. */
  users?: Record<string, string>;
  /** Extra plain variables `Extra<i>` (Double) for the benchmark. */
  extraVariables?: number;
}

export class MillOpcuaServer {
  readonly asset: string;
  port = 0;
  private server: ServerLike | null = null;
  private readonly sim = new MillingMachineSimulator({ seed: 7 });
  private sample: MillingSample;
  private vars = new Map<string, VariableLike>();
  extras: VariableLike[] = [];
  namespaceIndex = 1;
  private readonly pkiDir: string;
  private readonly userPkiDir: string;

  constructor(private readonly options: MillOpcuaOptions) {
    this.asset = options.asset ?? 'mill-1';
    this.sample = this.sim.next();
    this.pkiDir = path.join(options.dir, 'server-pki');
    this.userPkiDir = path.join(options.dir, 'server-user-pki');
  }

  get url(): string {
    return `opc.tcp://127.0.0.1:${this.port}/forewarn-test`;
  }
  /** Where the server keeps the certificates it trusts: a test puts the agent's there to trust it. */
  get trustedFolder(): string {
    return path.join(this.pkiDir, 'trusted', 'certs');
  }
  get userTrustedFolder(): string {
    return path.join(this.userPkiDir, 'trusted', 'certs');
  }
  get certificateFile(): string {
    return path.join(this.pkiDir, 'own', 'certs', 'certificate.pem');
  }

  nodeId(name: string): string {
    return `ns=${this.namespaceIndex};s=${this.asset}.${name}`;
  }

  /** The configuration nodes that read this server as the agent's asset. */
  nodes(): Array<{ nodeId: string; asset: string; signal: string; unit?: string }> {
    return MILL_NODES.map((n) => ({ nodeId: this.nodeId(n.name), asset: this.asset, signal: n.signal, ...(n.configured ? { unit: n.configured } : {}) }));
  }

  /** The values the server holds now, by signal name (a removed node's signal is gone). */
  truth(): Record<string, number> {
    return Object.fromEntries(Object.entries(millingSignals(this.sample)).filter(([k]) => this.vars.size === 0 || this.vars.has(k)));
  }

  async start(): Promise<void> {
    mkdirSync(this.options.dir, { recursive: true });
    this.port ||= this.options.port ?? (await freePort());
    const policies = this.options.securityPolicies ?? ['None', 'Basic256Sha256'];
    const serverCertificateManager = new OPCUACertificateManager({
      rootFolder: this.pkiDir,
      automaticallyAcceptUnknownCertificate: false,
      disableFileWatchers: true,
    });
    const userCertificateManager = new OPCUACertificateManager({
      rootFolder: this.userPkiDir,
      automaticallyAcceptUnknownCertificate: false,
      disableFileWatchers: true,
    });
    await serverCertificateManager.initialize();
    await userCertificateManager.initialize();
    const users = this.options.users ?? {};
    const server = new OPCUAServer({
      port: this.port,
      hostname: '127.0.0.1',
      resourcePath: '/forewarn-test',
      securityPolicies: policies.map((p) => SecurityPolicy[p]),
      securityModes: policies.includes('None')
        ? [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt]
        : [MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
      allowAnonymous: this.options.allowAnonymous ?? true,
      serverCertificateManager,
      userCertificateManager,
      userManager: { isValidUser: (user: string, password: string) => users[user] !== undefined && users[user] === password },
      disableDiscovery: true,
      serverInfo: { applicationUri: 'urn:forewarn-test:mill', productUri: 'forewarn-test-mill' },
    });
    await server.initialize();
    const ns = server.engine.addressSpace.getOwnNamespace();
    this.namespaceIndex = ns.index;
    const device = ns.addObject({ organizedBy: server.engine.addressSpace.rootFolder.objects, browseName: this.asset, nodeId: `s=${this.asset}` });
    this.vars = new Map();
    for (const n of MILL_NODES) {
      const common = { componentOf: device, browseName: n.name, nodeId: `s=${this.asset}.${n.name}`, dataType: 'Double', minimumSamplingInterval: 0 };
      const v = n.unit
        ? ns.addAnalogDataItem({
            ...common,
            engineeringUnits: n.unit === 'newton_metre' ? NEWTON_METRE : standardUnits[n.unit],
            engineeringUnitsRange: { low: 0, high: 100_000 },
          })
        : ns.addVariable(common);
      this.vars.set(n.signal, v);
    }
    this.vars.set(
      'cycle',
      ns.addVariable({ componentOf: device, browseName: 'Cycle', nodeId: `s=${this.asset}.Cycle`, dataType: 'UInt32', minimumSamplingInterval: 0 }),
    );
    this.extras = [];
    for (let i = 0; i < (this.options.extraVariables ?? 0); i++) {
      const v = ns.addVariable({
        componentOf: device,
        browseName: `Extra${i}`,
        nodeId: `s=${this.asset}.Extra${i}`,
        dataType: 'Double',
        minimumSamplingInterval: 0,
      });
      v.setValueFromSource({ dataType: DataType.Double, value: 0 });
      this.extras.push(v);
    }
    this.write();
    await server.start();
    this.server = server;
  }

  /** One machining process: every signal written with the same source timestamp. */
  advance(): Record<string, number> {
    this.sample = this.sim.next();
    this.write();
    return this.truth();
  }

  private write(status: unknown = StatusCodes.Good): void {
    const ts = new Date();
    const values = millingSignals(this.sample);
    for (const [signal, v] of this.vars) {
      if (signal === 'cycle') v.setValueFromSource({ dataType: DataType.UInt32, value: this.sample.cycle }, status, ts);
      else v.setValueFromSource({ dataType: DataType.Double, value: values[signal] }, status, ts);
    }
  }

  /** Writes one signal's current value with a status (UncertainLastUsableValue, BadSensorFailure, …). */
  setStatus(signal: string, statusName: keyof typeof StatusCodes, value?: number): void {
    const v = this.vars.get(signal);
    if (!v) throw new Error(`no variable for ${signal}`);
    v.setValueFromSource({ dataType: DataType.Double, value: value ?? this.truth()[signal] ?? 0 }, StatusCodes[statusName], new Date());
  }

  /** Deletes a signal's node from the address space, as a reconfigured controller would. */
  removeNode(signal: string): void {
    const v = this.vars.get(signal);
    if (!v || !this.server) throw new Error(`no variable for ${signal}`);
    this.server.engine.addressSpace.deleteNode(v);
    this.vars.delete(signal);
  }

  setExtras(value: number): void {
    const ts = new Date();
    for (const v of this.extras) v.setValueFromSource({ dataType: DataType.Double, value }, StatusCodes.Good, ts);
  }

  get sessions(): number {
    return this.server?.currentSessionCount ?? 0;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    await s?.shutdown(0);
  }

  /** Stops and starts the server on the same port with a fresh address space (sessions and subscriptions lost). */
  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }
}

export { DataValue, Variant };
