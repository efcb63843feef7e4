import type { ErrorCode } from '../../core/errors.js';

/**
 * Query parameters of the HTTP API, checked strictly: an unknown parameter, a repeated one or a malformed value
 * is a 400 whose message reads `param: what is wrong`, never a silently ignored filter.
 */

/**
 * An answer other than 200, with its coded error: thrown by routes (the API's own codes, the console's, or a
 * module's such as FW_ERR_WORKFLOW_ACTION) and turned into `{ "error": { "code", "message" } }` by the server.
 */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 429 | 500 | 502 | 503,
    readonly code: ErrorCode,
    message: string,
    /** Extra response headers (Allow, Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badParam = (name: string, message: string) => new ApiError(400, 'FW_ERR_API_REQUEST', `${name}: ${message}`);

/** Longest accepted parameter value: ids and names are short; anything longer is a mistake or an attack. */
const MAX_VALUE_LENGTH = 256;

export class Params {
  private readonly values = new Map<string, string>();

  constructor(search: URLSearchParams, allowed: readonly string[]) {
    for (const [name, value] of search) {
      if (!allowed.includes(name)) throw badParam(name, `unknown parameter (this endpoint takes ${allowed.length ? allowed.join(', ') : 'none'})`);
      if (this.values.has(name)) throw badParam(name, 'given more than once');
      if (value.length > MAX_VALUE_LENGTH) throw badParam(name, `longer than ${MAX_VALUE_LENGTH} characters`);
      this.values.set(name, value);
    }
  }

  string(name: string): string | null {
    const v = this.values.get(name);
    return v === undefined || v === '' ? null : v;
  }

  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T;
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: null): T | null;
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T | null): T | null {
    const v = this.string(name);
    if (v === null) return fallback;
    if (!(choices as readonly string[]).includes(v)) throw badParam(name, `must be one of ${choices.join(', ')}, got "${v}"`);
    return v as T;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.string(name);
    if (v === null) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw badParam(name, `must be an integer from ${min} to ${max}, got "${v}"`);
    return Number(v);
  }

  /** A time: ms since the epoch, or an ISO 8601 date-time (`2026-12-07T10:00:00Z`). */
  time(name: string, fallback: number): number {
    const v = this.string(name);
    if (v === null) return fallback;
    const ms = /^-?\d+$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : Number.NaN;
    if (!Number.isSafeInteger(ms)) throw badParam(name, `must be ms since the epoch or an ISO 8601 time, got "${v}"`);
    return ms;
  }
}

/** An opaque paging cursor: base64url JSON of the last item's sort key. */
export function encodeCursor(key: readonly unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(params: Params, check: (key: unknown[]) => boolean): unknown[] | null {
  const v = params.string('cursor');
  if (v === null) return null;
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(v, 'base64url').toString('utf8'));
  } catch {
    key = null;
  }
  if (!Array.isArray(key) || !check(key)) throw badParam('cursor', 'not a cursor this endpoint returned (take nextCursor from the previous page)');
  return key;
}
