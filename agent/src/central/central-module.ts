import type { Logger } from '../core/logger.js';
import type { Component } from '../core/types.js';
import type { CentralStore } from './central-store.js';
import type { CentralProjection } from './projection.js';

/** What `forewarn central run` was asked for, checked. */
export interface CentralOptions {
  store: string;
  broker: string;
  group: string;
  clientId: string;
  username?: string;
  passwordFile?: string;
  password?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  rejectUnauthorized: boolean;
  ack: boolean;
  api: { host: string; port: number } | null;
  alertmanagers: string[];
  webhooks: Array<{ url: string; format: 'json' | 'slack' }>;
  consoleUrl: string;
  agentOfflineMs: number;
  assetSilentMs: number;
  versionSkewMs: number;
  /** Glob patterns of telemetry metrics rolled up per hour (none by default). */
  rollupMetrics: string[];
  /** Days each stream's records are kept (`--retain stream=DAYS`); unset streams keep their defaults. */
  retainDays: Partial<Record<'alerts' | 'risk' | 'events' | 'telemetry', number>>;
}

/**
 * The parts of the central service beyond ingest (fleet read models, the API, alert routing): each brings its
 * projections (kept in the ingest transaction) and its components (started once the store is open, stopped
 * before it closes). `startCentral` asks each factory in turn (central-modules.ts lists them).
 */
export interface CentralModule {
  projections?: CentralProjection[];
  /** Built once the store is open. */
  components?(store: CentralStore): Component[];
}

export type CentralModuleFactory = (options: CentralOptions, log: Logger) => CentralModule | null;
