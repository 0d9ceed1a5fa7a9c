// A loopback stand-in for kube-apiserver that speaks enough of its REST and list/watch protocol
// for the real @kubernetes/client-node to run against it: namespaces, secrets, pods, events and
// services, with resourceVersions, 409/404/422 where the real server answers them, uid
// preconditions, label selectors, and watches that stream JSON lines (ADDED/MODIFIED/DELETED),
// end after timeoutSeconds, and answer a compacted resourceVersion with an ERROR 410 event.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';

export type Resource = 'namespaces' | 'secrets' | 'pods' | 'events' | 'services';
const RESOURCES: readonly string[] = ['namespaces', 'secrets', 'pods', 'events', 'services'];
const KINDS: Record<Resource, string> = { namespaces: 'Namespace', secrets: 'Secret', pods: 'Pod', events: 'Event', services: 'Service' };

export interface FakeMetadata {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
}

export interface FakeObject {
  apiVersion?: string;
  kind?: string;
  metadata: FakeMetadata;
  [field: string]: unknown;
}

export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  body: unknown;
  auth?: string;
  contentType?: string;
  at: number;
}

/** What an interceptor answers instead of the server: a status and body, or 'hang' (no answer ever). */
export type Interception = { status: number; body?: unknown } | 'hang' | undefined;

export interface FakeApiServer {
  url: string;
  /** The bearer token the kubeconfig sends; the server puts it into error messages, as a leak would. */
  token: string;
  requests: RecordedRequest[];
  /** A KubeConfig for the real client, pointed at this server. */
  kubeConfig(): k8s.KubeConfig;
  /** Creates or replaces an object as an administrator would; watchers see ADDED or MODIFIED. */
  put(resource: Resource, object: FakeObject): FakeObject;
  /** Deletes an object; watchers see DELETED. */
  remove(resource: Resource, namespace: string | undefined, name: string): void;
  get(resource: Resource, namespace: string | undefined, name: string): FakeObject | undefined;
  list(resource: Resource, namespace?: string): FakeObject[];
  /** Every request is offered to `fn` first; the last interceptor set wins, undefined removes it. */
  intercept(fn: ((req: RecordedRequest) => Interception) | undefined): void;
  /** Forgets the history: a watch from an older resourceVersion gets ERROR 410 (Gone). */
  compact(): void;
  /** Watch streams currently open. */
  openWatches(): number;
  /** Ends every open watch stream, as the server does at timeoutSeconds or on restart. */
  endWatches(): void;
  close(): Promise<void>;
}

interface Change { type: 'ADDED' | 'MODIFIED' | 'DELETED'; resource: Resource; object: FakeObject; rv: number }
interface Watcher { resource: Resource; namespace?: string; res: ServerResponse }

const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

function matchesSelector(object: FakeObject, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=');
    return object.metadata.labels?.[key ?? ''] === value;
  });
}

export async function startFakeApiServer(): Promise<FakeApiServer> {
  const token = `sa-token-${randomUUID()}`;
  const stores = new Map<Resource, Map<string, FakeObject>>(RESOURCES.map((r) => [r as Resource, new Map()]));
  const history: Change[] = [];
  const watchers = new Set<Watcher>();
  const requests: RecordedRequest[] = [];
  let rv = 1000;
  let compactedAt = 0;
  let interceptor: ((req: RecordedRequest) => Interception) | undefined;
  const held = new Set<ServerResponse>();

  const store = (resource: Resource) => stores.get(resource) as Map<string, FakeObject>;
  const wire = (resource: Resource, object: FakeObject): FakeObject => ({ apiVersion: 'v1', kind: KINDS[resource], ...structuredClone(object) });

  function send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
  const status = (req: RecordedRequest, code: number, reason: string) => ({
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason, code,
    // The real server does not echo credentials; this one does, so a test sees any leak.
    message: `${reason} (request had Authorization: ${req.auth ?? '-'})`,
  });

  function record(type: Change['type'], resource: Resource, object: FakeObject): void {
    const change: Change = { type, resource, object: structuredClone(object), rv: Number(object.metadata.resourceVersion) };
    history.push(change);
    for (const w of watchers) deliver(w, change);
  }
  function deliver(w: Watcher, change: Change): void {
    if (change.resource !== w.resource || (w.namespace !== undefined && change.object.metadata.namespace !== w.namespace)) return;
    w.res.write(`${JSON.stringify({ type: change.type, object: wire(change.resource, change.object) })}\n`);
  }

  function put(resource: Resource, object: FakeObject): FakeObject {
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    const existing = store(resource).get(key);
    const stored: FakeObject = structuredClone(object);
    stored.metadata.uid = existing?.metadata.uid ?? object.metadata.uid ?? randomUUID();
    stored.metadata.resourceVersion = String(++rv);
    store(resource).set(key, stored);
    record(existing ? 'MODIFIED' : 'ADDED', resource, stored);
    return structuredClone(stored);
  }
  function remove(resource: Resource, namespace: string | undefined, name: string): void {
    const key = keyOf(namespace, name);
    const existing = store(resource).get(key);
    if (!existing) return;
    store(resource).delete(key);
    existing.metadata.resourceVersion = String(++rv);
    record('DELETED', resource, existing);
  }

  function watch(req: RecordedRequest, res: ServerResponse, resource: Resource, namespace: string | undefined, url: URL): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const from = Number(url.searchParams.get('resourceVersion') || rv);
    if (from < compactedAt) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: status(req, 410, 'Expired') })}\n`);
      return;
    }
    const w: Watcher = { resource, namespace, res };
    for (const change of history) if (change.rv > from) deliver(w, change);
    watchers.add(w);
    const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') || 0);
    const timer = timeoutSeconds > 0 ? setTimeout(() => res.end(), timeoutSeconds * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      watchers.delete(w);
    });
  }

  function collection(req: RecordedRequest, res: ServerResponse, resource: Resource, namespace: string | undefined, url: URL): void {
    if (req.method === 'GET') {
      if (url.searchParams.get('watch') === 'true') return watch(req, res, resource, namespace, url);
      const items = [...store(resource).values()]
        .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
        .filter((o) => matchesSelector(o, url.searchParams.get('labelSelector')))
        .map((o) => wire(resource, o));
      return send(res, 200, { apiVersion: 'v1', kind: `${KINDS[resource]}List`, metadata: { resourceVersion: String(rv) }, items });
    }
    if (req.method === 'POST') {
      const body = req.body as FakeObject;
      const name = body.metadata.name || `${body.metadata.generateName ?? ''}${randomUUID().slice(0, 5)}`;
      if (namespace !== undefined && !store('namespaces').has(keyOf(undefined, namespace))) return send(res, 404, status(req, 404, 'NotFound'));
      if (store(resource).has(keyOf(namespace, name))) return send(res, 409, status(req, 409, 'AlreadyExists'));
      const created = put(resource, { ...body, metadata: { ...body.metadata, name, ...(namespace !== undefined && { namespace }), uid: undefined } });
      return send(res, 201, wire(resource, created));
    }
    send(res, 405, status(req, 405, 'MethodNotAllowed'));
  }

  function item(req: RecordedRequest, res: ServerResponse, resource: Resource, namespace: string | undefined, name: string): void {
    const current = store(resource).get(keyOf(namespace, name));
    if (req.method === 'GET') return current ? send(res, 200, wire(resource, current)) : send(res, 404, status(req, 404, 'NotFound'));
    if (!current) return send(res, 404, status(req, 404, 'NotFound'));
    if (req.method === 'PUT') {
      const body = req.body as FakeObject;
      if (body.metadata.resourceVersion !== undefined && body.metadata.resourceVersion !== current.metadata.resourceVersion) return send(res, 409, status(req, 409, 'Conflict'));
      // A Secret's type is immutable: the real server refuses to change it.
      if (resource === 'secrets' && body.type !== current.type) return send(res, 422, status(req, 422, 'Invalid'));
      return send(res, 200, wire(resource, put(resource, { ...body, metadata: { ...body.metadata, uid: current.metadata.uid } })));
    }
    if (req.method === 'DELETE') {
      const uid = (req.body as { preconditions?: { uid?: string } } | undefined)?.preconditions?.uid;
      if (uid && uid !== current.metadata.uid) return send(res, 409, status(req, 409, 'Conflict'));
      remove(resource, namespace, name);
      return send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' });
    }
    send(res, 405, status(req, 405, 'MethodNotAllowed'));
  }

  async function handle(incoming: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of incoming) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    const url = new URL(incoming.url ?? '/', 'http://x');
    const req: RecordedRequest = {
      method: incoming.method ?? '', path: url.pathname + url.search, body: text ? JSON.parse(text) : undefined,
      auth: incoming.headers.authorization, contentType: incoming.headers['content-type'], at: Date.now(),
    };
    requests.push(req);
    const interception = interceptor?.(req);
    if (interception === 'hang') {
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    if (interception) return send(res, interception.status, interception.body ?? status(req, interception.status, 'Intercepted'));

    const parts = url.pathname.replace(/^\/api\/v1\/?/, '').split('/').filter(Boolean);
    if (!url.pathname.startsWith('/api/v1/') || parts.length === 0) return send(res, 404, status(req, 404, 'NotFound'));
    const [a, b, c, d] = parts;
    if (parts.length === 1 && a !== undefined && RESOURCES.includes(a)) return collection(req, res, a as Resource, undefined, url);
    if (a === 'namespaces' && parts.length === 2 && b !== undefined) return item(req, res, 'namespaces', undefined, b);
    if (a === 'namespaces' && b !== undefined && c !== undefined && RESOURCES.includes(c)) {
      if (parts.length === 3) return collection(req, res, c as Resource, b, url);
      if (parts.length === 4 && d !== undefined) return item(req, res, c as Resource, b, d);
    }
    send(res, 404, status(req, 404, 'NotFound'));
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    token,
    requests,
    kubeConfig() {
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'loopback', server: url, skipTLSVerify: true }],
        users: [{ name: 'sa', token }],
        contexts: [{ name: 'ctx', cluster: 'loopback', user: 'sa' }],
        currentContext: 'ctx',
      });
      return kc;
    },
    put,
    remove,
    get: (resource, namespace, name) => {
      const o = store(resource).get(keyOf(namespace, name));
      return o && structuredClone(o);
    },
    list: (resource, namespace) => [...store(resource).values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace).map((o) => structuredClone(o)),
    intercept(fn) {
      interceptor = fn;
    },
    compact() {
      compactedAt = rv;
      history.length = 0;
    },
    openWatches: () => watchers.size,
    endWatches() {
      for (const w of watchers) w.res.end();
    },
    async close() {
      for (const w of watchers) w.res.end();
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
