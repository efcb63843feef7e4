import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { CONTENT_TYPE, renderExposition, type MetricFamily } from '../../core/exposition.js';
import { ForewarnError, describeError } from '../../core/errors.js';
import type { SqlQueries } from '../sql/sql-client.js';

/**
 * Central's `/metrics` (Prometheus text exposition): the families every module contributes, read at scrape time.
 * Like every page and API but the health check it needs a console session, or, for a Prometheus server, the
 * bearer token of `--metrics-token-file` (`Authorization: Bearer …`, compared in constant time).
 */

/** A module's families, computed at scrape time. */
export type MetricsCollector = (q: SqlQueries, now: number) => Promise<MetricFamily[]>;

export interface MetricsEndpointOptions {
  collectors: readonly MetricsCollector[];
  /** A file holding the bearer token Prometheus sends; without one, only a session opens /metrics. */
  tokenFile?: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export class MetricsEndpoint {
  private token: Buffer | null = null;

  constructor(private readonly options: MetricsEndpointOptions) {}

  /** Reads the token file (FW_ERR_SECRET_READ when it cannot be read or is empty). */
  load(): void {
    const file = this.options.tokenFile;
    if (!file) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ForewarnError('FW_ERR_SECRET_READ', `--metrics-token-file ${file}: cannot read it: ${describeError(err)}`, { cause: err });
    }
    if (!text) throw new ForewarnError('FW_ERR_SECRET_READ', `--metrics-token-file ${file}: the file is empty`);
    this.token = digest(text);
  }

  /** Whether the request carries the configured bearer token. Digests of equal length make the compare constant-time. */
  bearerAllowed(req: http.IncomingMessage): boolean {
    if (!this.token) return false;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1]!), this.token);
  }

  async render(q: SqlQueries, now: number): Promise<string> {
    const families: MetricFamily[] = [];
    for (const c of this.options.collectors) families.push(...(await c(q, now)));
    return renderExposition(families);
  }

  async send(req: http.IncomingMessage, res: http.ServerResponse, q: SqlQueries, now: number): Promise<void> {
    const body = await this.render(q, now);
    res.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}
