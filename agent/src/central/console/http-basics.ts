import type http from 'node:http';
import { ApiError } from '../api/api-params.js';
import type { RouteFile } from '../api/api-route.js';

/** What every answer of central's HTTP server shares: security headers, JSON errors, cookies and JSON bodies. */

/** The console loads nothing from elsewhere, runs no inline script or style, and may not be framed. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

export const MAX_BODY_BYTES = 64 * 1024;

export function sendJson(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // A route that returns nothing answers `null`, still JSON.
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** A route's non-JSON answer (a CSV download), 200. */
export function sendFile(req: http.IncomingMessage, res: http.ServerResponse, file: RouteFile): void {
  res.writeHead(200, {
    'Content-Type': file.contentType,
    'Content-Length': String(Buffer.byteLength(file.body)),
    'Cache-Control': 'no-store',
    // The name is the route's own (letters, digits, dots and dashes), never the client's.
    ...(file.filename ? { 'Content-Disposition': `attachment; filename="${file.filename.replace(/[^A-Za-z0-9._-]/g, '_')}"` } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : file.body);
}

export function sendError(req: http.IncomingMessage, res: http.ServerResponse, e: ApiError): void {
  sendJson(req, res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
}

/** One cookie's value from a Cookie header, or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

const badBody = (message: string) => new ApiError(400, 'FW_ERR_API_REQUEST', `body: ${message}`);

/**
 * The JSON body of a request: `undefined` when there is none; 415 when it is not `application/json`, 413 past
 * `limit` bytes, 400 when it does not parse. Reading stops at the limit (the connection is then closed).
 */
export async function readJsonBody(req: http.IncomingMessage, res: http.ServerResponse, limit = MAX_BODY_BYTES): Promise<unknown> {
  const declared = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && (declared === undefined || declared === '0')) return undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const tooLarge = () => {
    res.setHeader('Connection', 'close');
    return new ApiError(413, 'FW_ERR_API_REQUEST', `body: larger than ${limit} bytes`);
  };
  if (type !== 'application/json') {
    res.setHeader('Connection', 'close');
    throw new ApiError(415, 'FW_ERR_API_REQUEST', `body: Content-Type must be application/json, got "${type || 'none'}"`);
  }
  if (declared !== undefined && Number(declared) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badBody(`not valid JSON (${(err as Error).message})`);
  }
}

/** Checks that a parsed body is a JSON object and returns it. */
export function bodyObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badBody('must be a JSON object');
  return body as Record<string, unknown>;
}

/** A string field of a body object; `max` caps its length. */
export function bodyString(body: Record<string, unknown>, name: string, max: number): string {
  const v = body[name];
  if (typeof v !== 'string' || v === '') throw badBody(`${name}: required, a non-empty string`);
  if (v.length > max) throw badBody(`${name}: longer than ${max} characters`);
  return v;
}
