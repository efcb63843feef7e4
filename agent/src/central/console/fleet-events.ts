import type http from 'node:http';
import { describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { performance } from 'node:perf_hooks';
import { fleetSummary, SharedFleetAssets, StoreTables } from '../api/fleet-queries.js';
import type { SqlClient } from '../sql/sql-client.js';
import type { Session } from './auth/console-sessions.js';

/**
 * `GET /api/v1/events`: server-sent events that keep the console live. On connect, `event: fleet` with
 * `{summary, token}` (the summary is what GET /api/v1/fleet returns); then another whenever the change token
 * moves: one shared poll for all clients (every `pollMs`, only while someone listens) reads a cheap token made
 * of counts and newest times of the tables the console shows (alerts, their workflow, latest risk, agents,
 * assets), and only a new token costs a summary, computed once for everyone. `changed()` polls sooner: the
 * ingest worker of the same process calls it right after a commit (and the server after a change it served),
 * so a record reaches the pages in well under a poll period; at most one such poll per `wakeGapMs`, so a busy
 * fleet costs a summary every half second at most, not one per batch. The timed poll stays for what other
 * workers commit. A `: ping` comment every `pingMs`
 * keeps proxies from closing an idle stream; a stream ends when its session has ended (checked at each ping: the
 * stream itself does not keep a session alive), at logout, or at stop().
 */

export interface FleetEventsOptions {
  sql: SqlClient;
  log: Logger;
  /** Default 2 s. */
  pollMs?: number;
  /** Least time between the start of one poll and a poll that `changed()` asks for. Default 500 ms. */
  wakeGapMs?: number;
  /** Default 15 s. */
  pingMs?: number;
  /** Most streams open at once; more are refused with 503. Default 100. */
  maxStreams?: number;
  tables?: StoreTables;
  /** Every asset's state, computed once for concurrent requests (shared with the read routes). */
  sharedAssets?: SharedFleetAssets;
  /** Whether a stream's session still holds (checked at each ping); default: until it expires at the latest. */
  alive?: (session: Session) => Promise<boolean>;
  now?: () => number;
}

/** What the token is made of: a table and the column whose newest value says it changed. */
const WATCHED: ReadonlyArray<[table: string, column: string | null]> = [
  ['central_alerts', 'updated_ts'],
  ['alert_workflow', 'updated_ts'],
  ['fleet_latest_risk', 'received_ts'],
  ['fleet_agents', 'state_ts'],
  // last_seen_ts moves with every batch: only a new asset counts here.
  ['fleet_assets', null],
];

interface Stream {
  res: http.ServerResponse;
  session: Session;
  token: string | null;
}

export class FleetEvents {
  private readonly streams = new Set<Stream>();
  private readonly tables: StoreTables;
  private readonly shared: SharedFleetAssets;
  private pollTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private polling = false;
  /** `changed()` came while a poll ran: poll again after it. */
  private pending = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private lastPollTs = 0;
  private last: { token: string; data: string } | null = null;
  private stopped = false;

  constructor(private readonly options: FleetEventsOptions) {
    this.tables = options.tables ?? new StoreTables();
    this.shared = options.sharedAssets ?? new SharedFleetAssets();
  }

  get size(): number {
    return this.streams.size;
  }

  /** Takes over the response as an event stream; false (nothing written) when the cap is reached or stopped. */
  async open(req: http.IncomingMessage, res: http.ServerResponse, session: Session): Promise<boolean> {
    if (this.stopped || this.streams.size >= (this.options.maxStreams ?? 100)) return false;
    const stream: Stream = { res, session, token: null };
    this.streams.add(stream);
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const drop = () => this.streams.delete(stream);
    res.on('close', drop);
    req.on('close', drop);
    this.schedule();
    try {
      const current = await this.current();
      if (this.streams.has(stream)) this.send(stream, current);
    } catch (err) {
      this.options.log.warn({ err: describeError(err) }, 'console events: the fleet summary failed');
      this.end(stream);
    }
    return true;
  }

  /** The store changed in this process (a commit of the ingest worker, a workflow action): poll soon. */
  changed(): void {
    if (this.stopped || !this.streams.size) return;
    if (this.polling) {
      this.pending = true;
      return;
    }
    if (this.wakeTimer) return;
    const wait = Math.max(0, this.lastPollTs + (this.options.wakeGapMs ?? 500) - Date.now());
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      void this.poll();
    }, wait);
  }

  /** Ends the streams of one session (at logout). */
  endSession(idHash: string): void {
    for (const s of [...this.streams]) if (s.session.idHash === idHash) this.end(s);
  }

  stop(): void {
    this.stopped = true;
    for (const s of [...this.streams]) this.end(s);
    this.unschedule();
  }

  private end(s: Stream): void {
    this.streams.delete(s);
    if (!s.res.writableEnded) s.res.end();
    if (!this.streams.size) this.unschedule();
  }

  private send(s: Stream, event: { token: string; data: string }): void {
    s.token = event.token;
    s.res.write(`event: fleet\ndata: ${event.data}\n\n`);
  }

  private schedule(): void {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs ?? 2_000);
    this.pingTimer = setInterval(() => this.ping(), this.options.pingMs ?? 15_000);
  }

  private unschedule(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.pollTimer = this.pingTimer = this.wakeTimer = null;
    this.pending = false;
    this.last = null;
  }

  private ping(): void {
    const now = (this.options.now ?? Date.now)();
    const alive = this.options.alive ?? ((session: Session) => Promise.resolve(now < session.expiresTs));
    for (const s of [...this.streams]) {
      alive(s.session).then(
        (yes) => {
          if (!this.streams.has(s)) return;
          if (yes) s.res.write(': ping\n\n');
          else this.end(s);
        },
        (err: unknown) => this.options.log.warn({ err: describeError(err) }, 'console events: the session check failed'),
      );
    }
  }

  /** The newest event: from the last poll when the token has not moved since, else a fresh summary. */
  private async current(): Promise<{ token: string; data: string }> {
    // A computation of the assets started after this moment holds every commit the token below counts.
    const since = performance.now();
    const token = await this.token();
    if (this.last?.token === token) return this.last;
    const { sql } = this.options;
    const now = (this.options.now ?? Date.now)();
    const summary = await fleetSummary(sql, this.tables, now, () => this.shared.get(sql, this.tables, now, since));
    this.last = { token, data: JSON.stringify({ summary, token }) };
    return this.last;
  }

  private async poll(): Promise<void> {
    if (this.polling || !this.streams.size) return;
    this.polling = true;
    this.lastPollTs = Date.now();
    try {
      const event = await this.current();
      // A stream still opening (no token yet) gets its first event from open(): sending it here too would give
      // it the same summary twice when this poll and its open() read the same token.
      for (const s of this.streams) if (s.token !== null && s.token !== event.token) this.send(s, event);
    } catch (err) {
      this.options.log.warn({ err: describeError(err) }, 'console events: the change poll failed');
    } finally {
      this.polling = false;
      if (this.pending) {
        this.pending = false;
        this.changed();
      }
    }
  }

  private async token(): Promise<string> {
    const parts: string[] = [];
    for (const [table, column] of WATCHED) {
      if (!(await this.tables.has(this.options.sql, table))) {
        parts.push('-');
        continue;
      }
      const r = await this.options.sql.get<{ n: number | string; m: number | string | null }>(
        `SELECT COUNT(*) AS n, ${column ? `MAX(${column})` : 'NULL'} AS m FROM ${table}`,
      );
      parts.push(`${Number(r?.n ?? 0)}.${r?.m ?? ''}`);
    }
    return parts.join('-');
  }
}
