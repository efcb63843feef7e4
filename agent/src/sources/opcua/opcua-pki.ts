/**
 * The agent's OPC UA certificate store (node-opcua's PKI layout under `sources.opcua.pkiDir`):
 *   own/certs/forewarn.pem        the application instance certificate, created on first start
 *   own/private/private_key.pem   its key, 0600
 *   trusted/certs/                server certificates the operator trusts (copied in by hand: never automatically)
 *   rejected/                     certificates of servers that were refused, to inspect and move to trusted/certs
 * One store for all endpoints: the agent is one OPC UA application. The manager is loaded lazily, so an agent
 * without OPC UA endpoints never loads node-opcua.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from '../../core/logger.js';

/** The part of node-opcua's OPCUACertificateManager the source uses. */
export interface CertificateManagerLike {
  initialize(): Promise<void>;
  dispose(): Promise<void>;
  reloadCertificates(): Promise<void>;
  createSelfSignedCertificate(params: {
    outputFile: string;
    subject: string;
    applicationUri: string;
    dns: string[];
    startDate: Date;
    validity: number;
  }): Promise<void>;
}

export interface OpenPki {
  /** Handed to OPCUAClient as its clientCertificateManager (typed loosely: the module is loaded at run time). */
  manager: CertificateManagerLike;
  certificateFile: string;
  privateKeyFile: string;
  applicationUri: string;
}

/** Loaded on first use; a variable keeps tsc from resolving the package at build time. */
const CERTIFICATE_MANAGER_PACKAGE = 'node-opcua-certificate-manager';

const CERTIFICATE_DAYS = 10 * 365;

export class OpcuaPki {
  private opening: Promise<OpenPki> | null = null;
  private users = 0;

  constructor(
    readonly dir: string,
    private readonly agentId: string,
  ) {}

  /** Where the operator puts server certificates to trust. */
  get trustedFolder(): string {
    return path.join(this.dir, 'trusted', 'certs');
  }

  get rejectedFolder(): string {
    return path.join(this.dir, 'rejected');
  }

  /** The application URI in the certificate and in the client: stable across host renames, unique per agent. */
  get applicationUri(): string {
    return `urn:forewarn:${this.agentId}`;
  }

  /** Opens the store once (creating it and the certificate on first start); each caller later calls release(). */
  open(log: Logger): Promise<OpenPki> {
    this.users++;
    this.opening ??= this.create(log).catch((err: unknown) => {
      this.opening = null;
      throw err;
    });
    return this.opening;
  }

  /** Re-reads trusted/ and rejected/: a certificate the operator trusted since is used on the next attempt. */
  async reload(): Promise<void> {
    const pki = await this.opening?.catch(() => null);
    await pki?.manager.reloadCertificates();
  }

  async release(): Promise<void> {
    if (--this.users > 0 || !this.opening) return;
    const opening = this.opening;
    this.opening = null;
    const pki = await opening.catch(() => null);
    await pki?.manager.dispose().catch(() => undefined);
  }

  private async create(log: Logger): Promise<OpenPki> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const mod = (await import(CERTIFICATE_MANAGER_PACKAGE)) as {
      OPCUACertificateManager?: new (o: Record<string, unknown>) => CertificateManagerLike;
      default?: { OPCUACertificateManager?: new (o: Record<string, unknown>) => CertificateManagerLike };
    };
    const Manager = mod.OPCUACertificateManager ?? mod.default?.OPCUACertificateManager;
    if (!Manager) throw new Error(`${CERTIFICATE_MANAGER_PACKAGE} has no OPCUACertificateManager`);
    // Unknown server certificates are refused (and written to rejected/), never accepted on first sight. No file
    // watchers: the source reloads the folders itself before a retry, which costs nothing while all is well.
    const manager = new Manager({ rootFolder: this.dir, automaticallyAcceptUnknownCertificate: false, keySize: 2048, disableFileWatchers: true });
    await manager.initialize();
    const certificateFile = path.join(this.dir, 'own', 'certs', 'forewarn.pem');
    const privateKeyFile = path.join(this.dir, 'own', 'private', 'private_key.pem');
    if (!existsSync(certificateFile)) {
      const host = hostname();
      await manager.createSelfSignedCertificate({
        outputFile: certificateFile,
        subject: `/CN=forewarn ${this.agentId}/O=Forewarn`,
        applicationUri: this.applicationUri,
        dns: [host],
        startDate: new Date(),
        validity: CERTIFICATE_DAYS,
      });
      log.info(
        { certificate: certificateFile, applicationUri: this.applicationUri, trustList: this.trustedFolder },
        "created the agent's OPC UA application certificate; a server that checks clients must trust it",
      );
    }
    // The key is the agent's identity: private whatever the umask was when it was written.
    chmodSync(privateKeyFile, 0o600);
    chmodSync(this.dir, 0o700);
    return { manager, certificateFile, privateKeyFile, applicationUri: this.applicationUri };
  }
}
