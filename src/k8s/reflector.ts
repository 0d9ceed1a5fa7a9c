// A list-then-watch loop (client-go's reflector, reduced): lists a collection, reports every
// object, then watches from the list's resourceVersion and reports changes. A watch the server
// ends is resumed from the last resourceVersion; 410 Gone (history compacted) lists again and
// reports what disappeared meanwhile; other failures are reported and retried with backoff.
// stop() aborts the request in flight and nothing is started after it.
import { isGone, KubeError } from './kube-error.js';
import type { WatchEvent } from './watch-stream.js';

export interface Meta { metadata?: { name?: string; namespace?: string; resourceVersion?: string } }

export interface ReflectorSource<T extends Meta> {
  list(): Promise<{ items: T[]; resourceVersion: string }>;
  watch(resourceVersion: string, signal: AbortSignal, onEvent: (event: WatchEvent<T>) => void): Promise<void>;
}

export interface ReflectorHandlers<T> {
  upsert(object: T): void;
  remove(object: T): void;
  error(err: unknown): void;
}

export interface Reflector<T> {
  /** Resolves once the first list was reported (or failed: retries continue in the background). */
  started: Promise<void>;
  list(): T[];
  stop(): Promise<void>;
}

const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 30_000;
const MIN_WATCH_MS = 1_000;

const keyOf = (o: Meta) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export function startReflector<T extends Meta>(source: ReflectorSource<T>, handlers: ReflectorHandlers<T>): Reflector<T> {
  const cache = new Map<string, T>();
  const abort = new AbortController();
  let resourceVersion = '';
  let failures = 0;
  let markStarted: () => void = () => {};
  const started = new Promise<void>((resolve) => { markStarted = resolve; });

  function replace(items: T[]): void {
    const fresh = new Map(items.map((o) => [keyOf(o), o]));
    for (const [key, old] of cache) {
      if (!fresh.has(key)) {
        cache.delete(key);
        handlers.remove(old);
      }
    }
    for (const [key, o] of fresh) {
      cache.set(key, o);
      handlers.upsert(o);
    }
  }

  function apply(event: WatchEvent<T>): void {
    if (event.type === 'ERROR') {
      const code = (event.object as { code?: number }).code ?? 0;
      throw new KubeError(code, 'watch (error event)');
    }
    const rv = event.object.metadata?.resourceVersion;
    if (event.type === 'ADDED' || event.type === 'MODIFIED') {
      cache.set(keyOf(event.object), event.object);
      handlers.upsert(event.object);
    } else if (event.type === 'DELETED') {
      cache.delete(keyOf(event.object));
      handlers.remove(event.object);
    }
    if (rv) resourceVersion = rv;
  }

  /** Waits, or less if stopped; the listener goes with the wait so retries do not pile them up. */
  const pause = (ms: number) => new Promise<void>((resolve) => {
    if (abort.signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      abort.signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    abort.signal.addEventListener('abort', done, { once: true });
  });

  async function run(): Promise<void> {
    while (!abort.signal.aborted) {
      try {
        if (!resourceVersion) {
          const listed = await source.list();
          if (abort.signal.aborted) return;
          replace(listed.items);
          resourceVersion = listed.resourceVersion;
          markStarted();
        }
        const since = Date.now();
        await source.watch(resourceVersion, abort.signal, apply);
        failures = 0;
        // A server (or proxy) that ends every watch at once must not make this a busy loop.
        if (Date.now() - since < MIN_WATCH_MS) await pause(MIN_WATCH_MS);
      } catch (err) {
        if (abort.signal.aborted) return;
        markStarted();
        if (isGone(err)) {
          resourceVersion = '';
          continue;
        }
        handlers.error(err);
        failures++;
        await pause(Math.min(RETRY_BASE_MS * 2 ** (failures - 1), RETRY_MAX_MS));
      }
    }
  }
  // Whatever happens, watchNamespaces() must not wait forever for the first list.
  const loop = run().finally(markStarted);

  return {
    started,
    list: () => [...cache.values()],
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
