// Serves the web UI at /ui: a handful of static files and the charting library (uPlot, from
// node_modules), read once, no build step and nothing fetched from elsewhere (clusters often
// have no internet). The page talks to /api/v1 only.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

interface Asset {
  /** Where the file is read from. */
  file: string;
  type: string;
  /** Versioned third-party code may be cached; the page's own files are revalidated. */
  immutable?: boolean;
}

/** The static files next to this module, or (compiled into dist/) in the source tree they ship with. */
function staticDir(): string {
  const here = fileURLToPath(new URL('./static/', import.meta.url));
  if (existsSync(path.join(here, 'index.html'))) return here;
  return fileURLToPath(new URL('../../src/ui/static/', import.meta.url));
}

function assets(): Record<string, Asset> {
  const dir = staticDir();
  const uplot = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
  const own = (name: string, type: string): Asset => ({ file: path.join(dir, name), type });
  return {
    'index.html': own('index.html', 'text/html; charset=utf-8'),
    'app.js': own('app.js', 'text/javascript; charset=utf-8'),
    'charts.js': own('charts.js', 'text/javascript; charset=utf-8'),
    'style.css': own('style.css', 'text/css; charset=utf-8'),
    'favicon.svg': own('favicon.svg', 'image/svg+xml'),
    'vendor/uplot.js': { file: path.join(uplot, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8', immutable: true },
    'vendor/uplot.css': { file: path.join(uplot, 'uPlot.min.css'), type: 'text/css; charset=utf-8', immutable: true },
  };
}

export async function uiPlugin(app: FastifyInstance): Promise<void> {
  const table = assets();
  const files = new Map<string, Buffer>();
  for (const [name, asset] of Object.entries(table)) files.set(name, await readFile(asset.file));

  const send = (name: string) => async (_req: unknown, reply: FastifyReply) => {
    const asset = table[name] as Asset;
    reply
      .type(asset.type)
      .header('Cache-Control', asset.immutable ? 'public, max-age=86400' : 'no-cache')
      .header('X-Content-Type-Options', 'nosniff')
      .header('X-Frame-Options', 'DENY')
      .header('Referrer-Policy', 'no-referrer')
      .header('Content-Security-Policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
    return reply.send(files.get(name));
  };
  app.get('/ui', async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/', send('index.html'));
  for (const name of Object.keys(table)) app.get(`/ui/${name}`, send(name));
  // Browsers ask for /favicon.ico whatever the page says (a bookmark, a tab restored).
  app.get('/favicon.ico', send('favicon.svg'));
}
