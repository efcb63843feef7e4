import type { ApiRoute } from './api-route.js';

/**
 * Matches a request path (under /api/v1, already split and percent-decoded) to the routes modules registered. A
 * `:name` segment matches one non-empty segment; everything else must be equal. Two routes with the same method
 * and pattern are a programming error, refused when the table is built.
 */

interface Compiled {
  route: ApiRoute;
  segments: string[];
}

export type RouteMatch =
  | { kind: 'route'; route: ApiRoute; params: Record<string, string> }
  /** The path exists but not for this method: the methods it has. */
  | { kind: 'method'; allow: string[] }
  | { kind: 'none' };

export class RouteTable {
  private readonly compiled: Compiled[] = [];

  constructor(routes: readonly ApiRoute[]) {
    const seen = new Set<string>();
    for (const route of routes) {
      if (!route.pattern.startsWith('/')) throw new Error(`route pattern "${route.pattern}" must start with /`);
      const key = `${route.method} ${route.pattern.replace(/:[^/]+/g, ':')}`;
      if (seen.has(key)) throw new Error(`two routes for ${route.method} ${route.pattern}`);
      seen.add(key);
      this.compiled.push({ route, segments: route.pattern.slice(1).split('/') });
    }
  }

  match(method: string, parts: readonly string[]): RouteMatch {
    const allow = new Set<string>();
    let found: { route: ApiRoute; params: Record<string, string> } | null = null;
    for (const c of this.compiled) {
      const params = matchSegments(c.segments, parts);
      if (!params) continue;
      allow.add(c.route.method);
      if (c.route.method === 'GET') allow.add('HEAD');
      const wanted = method === 'HEAD' ? 'GET' : method;
      // A literal segment beats a parameter: `/assets/x/y` before `/assets/:agent/:asset` if both are registered.
      if (c.route.method === wanted && (!found || specificity(c.segments) > specificity(found.route.pattern.slice(1).split('/'))))
        found = { route: c.route, params };
    }
    if (found) return { kind: 'route', ...found };
    return allow.size ? { kind: 'method', allow: [...allow] } : { kind: 'none' };
  }
}

function matchSegments(pattern: readonly string[], parts: readonly string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const v = parts[i]!;
    if (p.startsWith(':')) {
      if (!v) return null;
      params[p.slice(1)] = v;
    } else if (p !== v) return null;
  }
  return params;
}

const specificity = (segments: readonly string[]): number => segments.filter((s) => !s.startsWith(':')).length;
