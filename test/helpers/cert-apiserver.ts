// A loopback stand-in for kube-apiserver with what the webhook's self-signed mode touches: Secrets
// (create, get, replace with resourceVersion → 409 on a stale one) and one
// MutatingWebhookConfiguration (get, replace with resourceVersion). `interfere(n)` makes the next
// n replaces of the configuration lose a race: another writer changes it between read and write.
// Driven through the real @kubernetes/client-node, so paths, bodies and status codes are real.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { createKube, type Kube } from '../../src/k8s/kube.js';

type Obj = { metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> }; [key: string]: unknown };
interface Webhook { name: string; clientConfig: { caBundle?: string } }

export interface CertApiserver {
  kube(): Kube;
  secret(namespace: string, name: string): Obj | undefined;
  webhookConfig(): Obj & { webhooks: Webhook[] };
  /** The PEM bundle in the first webhook's caBundle ('' when unset). */
  caBundle(): string;
  /** Every caBundle written, in order, as PEM. */
  caBundleWrites: string[];
  interfere(times: number): void;
  close(): Promise<void>;
}

export async function startCertApiserver(configName = 'layover'): Promise<CertApiserver> {
  const secrets = new Map<string, Obj>();
  let version = 10;
  let config: Obj & { webhooks: Webhook[] } = {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: configName, resourceVersion: String(version) },
    webhooks: [{ name: 'pods.mirror.layover.dev', clientConfig: {}, sideEffects: 'None', admissionReviewVersions: ['v1'] } as Webhook],
  };
  const caBundleWrites: string[] = [];
  let interferences = 0;
  const send = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const failure = (res: ServerResponse, code: number, reason: string) => send(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Obj) : undefined;
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const secret = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(path);
    if (secret) {
      const key = `${secret[1]}/${secret[2] ?? body?.metadata.name}`;
      const current = secrets.get(key);
      if (req.method === 'GET') return current ? send(res, 200, current) : failure(res, 404, 'NotFound');
      if (!body) return failure(res, 400, 'BadRequest');
      if (req.method === 'POST') {
        if (current) return failure(res, 409, 'AlreadyExists');
        const stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
        secrets.set(key, stored);
        return send(res, 201, stored);
      }
      if (req.method === 'PUT') {
        if (!current) return failure(res, 404, 'NotFound');
        if (body.metadata.resourceVersion !== current.metadata.resourceVersion) return failure(res, 409, 'Conflict');
        const stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
        secrets.set(key, stored);
        return send(res, 200, stored);
      }
    }
    if (path === `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configName}`) {
      if (req.method === 'GET') {
        const read = structuredClone(config);
        if (interferences > 0) {
          interferences--;
          // Someone else writes right after this read: the reader's resourceVersion is now stale.
          config = { ...config, metadata: { ...config.metadata, labels: { ...config.metadata.labels, 'other-writer': String(version) }, resourceVersion: String(++version) } };
        }
        return send(res, 200, read);
      }
      if (req.method === 'PUT' && body) {
        if (body.metadata.resourceVersion !== config.metadata.resourceVersion) return failure(res, 409, 'Conflict');
        config = { ...(body as typeof config), metadata: { ...body.metadata, resourceVersion: String(++version) } };
        caBundleWrites.push(Buffer.from(config.webhooks[0]?.clientConfig.caBundle ?? '', 'base64').toString());
        return send(res, 200, config);
      }
    }
    failure(res, 404, 'NotFound');
  }

  const server = createServer((req, res) => void handle(req, res).catch(() => failure(res, 500, 'InternalError')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    // Plain HTTP on loopback; the client wants skipTLSVerify to accept a cluster without a CA.
    clusters: [{ name: 'loopback', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'webhook', token: 'loopback-token' }],
    contexts: [{ name: 'loopback', cluster: 'loopback', user: 'webhook' }],
    currentContext: 'loopback',
  });
  return {
    kube: () => createKube(kc),
    secret: (namespace, name) => secrets.get(`${namespace}/${name}`),
    webhookConfig: () => config,
    caBundle: () => Buffer.from(config.webhooks[0]?.clientConfig.caBundle ?? '', 'base64').toString(),
    caBundleWrites,
    interfere(times) {
      interferences = times;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
