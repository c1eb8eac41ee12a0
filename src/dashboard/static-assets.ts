import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

/**
 * The page's own files, next to this module (the build copies them to dist/src/dashboard/assets). Resolved on first
 * use, not at import: in the single executable that resolution writes out the embedded files.
 */
export function assetsDir(): string {
  return fileURLToPath(new URL('./assets/', import.meta.url));
}
/** uPlot's files: copied into assets/vendor by the build; read from node_modules when running from source. */
export const VENDOR_FILES = ['uPlot.iife.min.js', 'uPlot.min.css'] as const;
const OWN_FILES = ['index.html', 'dashboard.css', 'dashboard.js', 'charts.js'] as const;

type AssetName = (typeof OWN_FILES)[number] | (typeof VENDOR_FILES)[number];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

/**
 * Scripts and styles only from the gateway itself (no CDN, no inline script). uPlot sets inline
 * styles on the elements it builds, hence `style-src 'unsafe-inline'`.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The dashboard's static files, read once on first request and then served from memory (about 60 kB). */
export class StaticAssets {
  private loaded: Promise<Map<string, Asset>> | undefined;

  constructor(
    private readonly logger: Logger,
    /** Default: `assetsDir()`, resolved on the first request. */
    private readonly dir?: string,
  ) {}

  isAsset(name: string): name is AssetName {
    return (
      (OWN_FILES as readonly string[]).includes(name) || (VENDOR_FILES as readonly string[]).includes(name)
    );
  }

  /** Serves asset `name`, answering 304 when the browser's copy is current. */
  async serve(name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const assets = await (this.loaded ??= this.load());
    const asset = assets.get(name);
    if (!asset) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`no such dashboard file: ${name}\n`);
      return;
    }
    const headers = {
      etag: asset.etag,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      ...(asset.type.startsWith('text/html') ? { 'content-security-policy': CSP } : {}),
    };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': asset.type, 'content-length': asset.body.length });
    res.end(asset.body);
  }

  private async load(): Promise<Map<string, Asset>> {
    const out = new Map<string, Asset>();
    const dir = this.dir ?? assetsDir();
    const files: Array<[AssetName, string[]]> = [
      ...OWN_FILES.map((name): [AssetName, string[]] => [name, [join(dir, name)]]),
      ...VENDOR_FILES.map((name): [AssetName, string[]] => [
        name,
        [join(dir, 'vendor', name), ...uplotFromNodeModules(name)],
      ]),
    ];
    for (const [name, candidates] of files) {
      const body = await readFirst(candidates);
      if (!body) {
        this.logger.error(
          { file: name, looked: candidates },
          'dashboard file missing; the page will be incomplete',
        );
        continue;
      }
      const ext = name.slice(name.lastIndexOf('.'));
      out.set(name, {
        body,
        type: TYPES[ext] ?? 'application/octet-stream',
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      });
    }
    return out;
  }
}

function uplotFromNodeModules(name: string): string[] {
  try {
    const pkg = createRequire(import.meta.url).resolve('uplot/package.json');
    return [join(dirname(pkg), 'dist', name)];
  } catch {
    return [];
  }
}

async function readFirst(paths: readonly string[]): Promise<Buffer | undefined> {
  for (const path of paths) {
    try {
      return await readFile(path);
    } catch {
      // Try the next place it may be.
    }
  }
  return undefined;
}
