import type { Logger } from '../core/logger.js';
import type { Component } from '../core/types.js';
import type { ApiRoute } from './api/api-route.js';
import type { MetricsCollector } from './api/metrics-endpoint.js';
import type { CentralConfig } from './central-config.js';
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
  /** At most one acknowledgement per agent this often (`--ack-interval`); DEFAULT_ACK_INTERVAL_MS when absent. */
  ackIntervalMs?: number;
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
  /** Serve the API and console over HTTPS with this certificate and key (`--tls-cert`, `--tls-key`). */
  tls?: { certFile: string; keyFile: string };
  /** Console sessions end after this long without a request (`--session-idle`, default 30 min) … */
  sessionIdleMs: number;
  /** … or this long after the login (`--session-max`, default 12 h). */
  sessionMaxMs: number;
  /** The configuration file's sections (`--config FILE`), defaults filled in; absent: every default. */
  config?: CentralConfig;
  /** A file with the bearer token that opens /metrics without a session (`--metrics-token-file`). */
  metricsTokenFile?: string;
}

/** What the modules built so far offer the components of the others: the HTTP routes of all modules. */
export interface CentralModuleContext {
  /** Every module's routes, for the HTTP server to mount. */
  routes: readonly ApiRoute[];
  /** Every module's /metrics families (startCentral always passes them). */
  metrics?: readonly MetricsCollector[];
  /** Told right after the ingest worker of this process commits a batch or a status (the console's live events). */
  commits?: CommitSignal;
}

/** An in-process notification that the store changed; `subscribe` returns the unsubscribe function. */
export interface CommitSignal {
  subscribe(listener: () => void): () => void;
}

/** A CommitSignal and the function that fires it (listeners run synchronously; one that throws is skipped). */
export function commitSignal(): CommitSignal & { notify(): void } {
  const listeners = new Set<() => void>();
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    notify() {
      for (const l of listeners) {
        try {
          l();
        } catch {
          // a listener's failure is its own: the ingest must go on
        }
      }
    },
  };
}

/**
 * The parts of the central service beyond ingest (fleet read models, the API, alert routing): each brings its
 * projections (kept in the ingest transaction), its HTTP routes (mounted on central's one HTTP server) and its
 * components (started once the store is open, stopped before it closes). `startCentral` asks each factory in turn (central-modules.ts lists them).
 */
export interface CentralModule {
  projections?: CentralProjection[];
  /** HTTP routes under /api/v1 (the server checks session, role and CSRF before they run); built once the store is open. */
  routes?(store: CentralStore): ApiRoute[];
  /** Families for central's `/metrics`, computed at scrape time. */
  metrics?(store: CentralStore): MetricsCollector[];
  /** Built once the store is open (after every module's routes). */
  components?(store: CentralStore, context: CentralModuleContext): Component[];
}

export type CentralModuleFactory = (options: CentralOptions, log: Logger) => CentralModule | null;
