/** One segment of a route template: `name` matches itself, `:name` any one segment (a param). */
type Part = { literal: string } | { param: string };

export interface RouteEntry<H> {
  method: string;
  /** The template as registered, e.g. `/api/profiles/:id`; also the `route` label of the metrics. */
  template: string;
  handler: H;
  parts: Part[];
  /** One digit a segment, 1 literal or 0 param: the greater shape wins, so literal segments win over params. */
  shape: string;
}

export type RouteMatch<H> =
  | { kind: 'found'; route: RouteEntry<H>; params: Record<string, string> }
  | { kind: 'method-not-allowed'; allowed: string[] }
  | { kind: 'none' };

/**
 * Routes by method and decoded path segments. Where several templates match a path, the one with a
 * literal segment where the other has a param wins (`/api/profiles/import` over `/api/profiles/:id`),
 * so a path answers the same whichever method asks.
 */
export class Router<H> {
  private readonly routes: RouteEntry<H>[] = [];

  add(method: string, template: string, handler: H): void {
    if (!template.startsWith('/')) throw new Error(`a route template starts with /: ${template}`);
    const parts = template
      .slice(1)
      .split('/')
      .map((s): Part => (s.startsWith(':') ? { param: s.slice(1) } : { literal: s }));
    const shape = parts.map((p) => ('param' in p ? '0' : '1')).join('');
    this.routes.push({ method, template, handler, parts, shape });
  }

  match(method: string, segments: readonly string[]): RouteMatch<H> {
    let best: RouteEntry<H>[] = [];
    for (const route of this.routes) {
      if (!fits(route.parts, segments)) continue;
      const first = best[0];
      if (first === undefined || route.shape > first.shape) best = [route];
      else if (route.shape === first.shape) best.push(route);
    }
    if (best.length === 0) return { kind: 'none' };
    const route = best.find((r) => r.method === method);
    if (!route)
      return { kind: 'method-not-allowed', allowed: [...new Set(best.map((r) => r.method))].sort() };
    const params: Record<string, string> = {};
    route.parts.forEach((part, i) => {
      if ('param' in part) params[part.param] = segments[i] ?? '';
    });
    return { kind: 'found', route, params };
  }
}

function fits(parts: readonly Part[], segments: readonly string[]): boolean {
  if (parts.length !== segments.length) return false;
  return parts.every((part, i) => {
    const segment = segments[i] ?? '';
    // A param is one non-empty segment, as `([^/]+)` was.
    return 'param' in part ? segment.length > 0 : part.literal === segment;
  });
}
