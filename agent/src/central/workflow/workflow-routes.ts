import { ApiError, Params, badParam, decodeCursor, encodeCursor } from '../api/api-params.js';
import type { ApiRoute, RouteContext } from '../api/api-route.js';
import { StoreTables } from '../api/fleet-queries.js';
import type { SqlValue } from '../sql/sql-client.js';
import { applyAlertAction, parseActionRequest } from './alert-actions.js';
import { failureModes, inferAssetKind } from './failure-modes.js';

/**
 * The alert workflow's routes (docs/console.md, "Alert workflow"):
 * - `POST /api/v1/alerts/actions` (operator): body `{alertKey, action, note?, failureMode?, actionTaken?, untilTs?}`
 *   → `{alert}`, the alert row with its new `workflow`;
 * - `GET /api/v1/failure-modes?agent=&asset=` (viewer) → `{kind, modes: [{id, label}]}` (no asset: the modes of
 *   an agent-wide alert);
 * - `GET /api/v1/audit?limit=&cursor=&target=` (viewer) → `{entries, nextCursor}`, newest first.
 */

export interface WorkflowRoutesOptions {
  /** Most audit entries one page holds. Default 1,000. */
  maxPageSize?: number;
}

export interface AuditView {
  id: number;
  ts: number;
  username: string;
  action: string;
  target: string | null;
  details: unknown;
  remoteAddr: string | null;
}

export function workflowRoutes(options: WorkflowRoutesOptions = {}): ApiRoute[] {
  const maxPage = options.maxPageSize ?? 1_000;
  const tables = new StoreTables();
  return [
    {
      method: 'POST',
      pattern: '/alerts/actions',
      role: 'operator',
      async handle(ctx: RouteContext) {
        new Params(ctx.query, []);
        if (!ctx.user) throw new ApiError(401, 'FW_ERR_CONSOLE_AUTH', 'this action needs a session');
        const now = ctx.now();
        const req = parseActionRequest(ctx.body, now);
        const alert = await applyAlertAction(ctx.sql, req, { username: ctx.user.username, remoteAddr: ctx.remoteAddress, now, tables });
        return { alert };
      },
    },
    {
      method: 'GET',
      pattern: '/failure-modes',
      role: 'viewer',
      async handle(ctx: RouteContext) {
        const p = new Params(ctx.query, ['agent', 'asset']);
        const agent = p.string('agent');
        if (agent === null) throw badParam('agent', 'required: the agent of the alert');
        const asset = p.string('asset');
        const kind = await inferAssetKind(ctx.sql, tables, agent, asset);
        if (kind === null)
          throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `${asset === null ? `agent ${agent}` : `asset ${agent}/${asset}`}: central has not heard of it`);
        return { kind, modes: failureModes(kind) };
      },
    },
    {
      method: 'GET',
      pattern: '/audit',
      role: 'viewer',
      async handle(ctx: RouteContext) {
        const p = new Params(ctx.query, ['limit', 'cursor', 'target']);
        const limit = p.int('limit', 100, 1, maxPage);
        const target = p.string('target');
        const before = decodeCursor(p, (k) => k.length === 1 && Number.isSafeInteger(k[0]));
        if (!(await tables.has(ctx.sql, 'audit_log'))) return { entries: [], nextCursor: null };
        const where: string[] = [];
        const params: SqlValue[] = [];
        if (target !== null) {
          where.push('target = ?');
          params.push(target);
        }
        if (before) {
          where.push('id < ?');
          params.push(before[0] as number);
        }
        // Newest first by id: the order entries were written in, whichever worker's clock stamped them.
        const rows = await ctx.sql.all<Record<string, unknown>>(
          `SELECT id, ts, username, action, target, details, remote_addr FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
           ORDER BY id DESC LIMIT ?`,
          [...params, limit + 1],
        );
        const entries = rows.slice(0, limit).map<AuditView>((r) => {
          let details: unknown = r.details;
          try {
            details = JSON.parse(String(r.details));
          } catch {
            // kept as text
          }
          return {
            id: Number(r.id),
            ts: Number(r.ts),
            username: String(r.username),
            action: String(r.action),
            target: r.target === null ? null : String(r.target),
            details,
            remoteAddr: r.remote_addr === null ? null : String(r.remote_addr),
          };
        });
        return { entries, nextCursor: rows.length > limit ? encodeCursor([entries[entries.length - 1]!.id]) : null };
      },
    },
  ];
}
