// Serves the web UI at /ui: a handful of static files, read once, no build step and nothing
// fetched from elsewhere (clusters often have no internet). The page talks to /api/v1 only.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** The static files next to this module, or (compiled into dist/) in the source tree they ship with. */
function staticDir(): string {
  const here = fileURLToPath(new URL('./static/', import.meta.url));
  if (existsSync(path.join(here, 'index.html'))) return here;
  return fileURLToPath(new URL('../../src/ui/static/', import.meta.url));
}

export async function uiPlugin(app: FastifyInstance): Promise<void> {
  const dir = staticDir();
  const files = new Map<string, Buffer>();
  for (const name of Object.keys(FILES)) files.set(name, await readFile(path.join(dir, name)));

  const send = (name: string) => async (_req: unknown, reply: FastifyReply) => {
    reply
      .type(FILES[name] as string)
      .header('Cache-Control', 'no-cache')
      .header('X-Content-Type-Options', 'nosniff')
      .header('X-Frame-Options', 'DENY')
      .header('Referrer-Policy', 'no-referrer')
      .header('Content-Security-Policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
    return reply.send(files.get(name));
  };
  app.get('/ui', async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/', send('index.html'));
  for (const name of Object.keys(FILES)) app.get(`/ui/${name}`, send(name));
}
