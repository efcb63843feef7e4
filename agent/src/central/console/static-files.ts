import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../core/package-root.js';

/**
 * The console's pages and assets, served from `agent/src/central/console/static/` under the package root (the
 * same path in a checkout, in dist and in the release tarball: scripts/package.mjs copies the folder). Only
 * regular files inside the folder are served: no `..`, no dot files, no symbolic link that leads out. Answers
 * carry an ETag and Last-Modified and are revalidated each time (`no-cache`), so a new release shows at once.
 */

export const STATIC_DIR = path.join(PACKAGE_ROOT, 'agent/src/central/console/static');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
/** Larger files are not the console's. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

interface Cached {
  mtimeMs: number;
  size: number;
  body: Buffer;
  etag: string;
}

export class StaticFiles {
  private readonly cache = new Map<string, Cached>();
  private realRoot: string | null = null;

  constructor(readonly root: string = STATIC_DIR) {}

  /**
   * Serves `rel` (the path below the folder, still percent-encoded); false when there is no such file, so the
   * caller answers 404.
   */
  async serve(req: http.IncomingMessage, res: http.ServerResponse, rel: string): Promise<boolean> {
    const file = await this.resolve(rel);
    if (!file) return false;
    const entry = await this.load(file);
    if (!entry) return false;
    const headers: Record<string, string> = {
      'Content-Type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      ETag: entry.etag,
      'Last-Modified': new Date(entry.mtimeMs).toUTCString(),
      'Cache-Control': 'no-cache',
    };
    const match = req.headers['if-none-match'];
    const since = req.headers['if-modified-since'];
    if (
      match !== undefined
        ? match.split(',').some((t) => t.trim() === entry.etag)
        : since !== undefined && Date.parse(since) >= Math.floor(entry.mtimeMs / 1000) * 1000
    ) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, 'Content-Length': String(entry.size) });
    res.end(req.method === 'HEAD' ? undefined : entry.body);
    return true;
  }

  /** The file's absolute path when `rel` names a file inside the folder, else null. */
  async resolve(rel: string): Promise<string | null> {
    let segments: string[];
    try {
      segments = rel.split('/').map(decodeURIComponent);
    } catch {
      return null;
    }
    // Each segment a plain name: no empty, `.`/`..`, dot file, or a separator or NUL smuggled in by encoding.
    if (!segments.length || segments.some((s) => !s || s.startsWith('.') || /[/\\\0]/.test(s))) return null;
    const full = path.join(this.root, ...segments);
    const inside = path.relative(this.root, full);
    if (inside.startsWith('..') || path.isAbsolute(inside)) return null;
    try {
      this.realRoot ??= await realpath(this.root);
      const real = await realpath(full);
      if (!real.startsWith(this.realRoot + path.sep)) return null;
      return real;
    } catch {
      return null;
    }
  }

  private async load(file: string): Promise<Cached | null> {
    let st;
    try {
      st = await stat(file);
    } catch {
      return null;
    }
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return null;
    const hit = this.cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    const body = await readFile(file);
    const entry = { mtimeMs: st.mtimeMs, size: body.length, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
    this.cache.set(file, entry);
    return entry;
  }
}
