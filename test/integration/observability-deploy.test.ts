// deploy/monitoring against the real thing: every series the Grafana dashboard queries is one a
// running layover's /metrics declares, and the ServiceMonitor (rendered by `kubectl kustomize`)
// selects the registry's Service, in its namespace, on the port that serves /metrics, in the base
// and in every overlay that runs the registry.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT, configOf, findObject, render, REGISTRY_CONFIG, type K8sObject } from '../e2e/manifests.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, imageConfig, randomBlob } from '../helpers/oci-content.js';
import { getBytes, pushContent } from '../helpers/registry-client.js';

interface Target { expr: string }
interface Panel { title: string; targets?: Target[]; datasource?: { uid: string } }
interface Dashboard { uid: string; panels: Panel[]; templating: { list: { name: string; query: unknown }[] } }

const DASHBOARD = path.join(REPO_ROOT, 'deploy/monitoring/layover-dashboard.json');
/** Kustomizations that run the registry; the ServiceMonitor must find it in each. */
const REGISTRY_KUSTOMIZATIONS = ['deploy/base', 'deploy/overlays/persistence', 'deploy/overlays/ephemeral', 'deploy/overlays/scale-out', 'deploy/overlays/kind', 'deploy/overlays/nodeport', 'deploy/overlays/cert-manager'];
/** Names in a PromQL expression that are series, not functions, keywords or labels. */
const SERIES = /\b((?:layover|process|nodejs)_[a-z0-9_]+)\b/g;

/** The metric family a series belongs to (histogram series end in _bucket, _sum, _count). */
function family(series: string, declared: Set<string>): string {
  if (declared.has(series)) return series;
  const base = series.replace(/_(bucket|sum|count)$/, '');
  return base;
}

describe('deploy/monitoring', { timeout: 120_000 }, () => {
  let layover: InProcessLayover;
  let upstream: DockerRegistry;
  let declared: Set<string>;
  let dashboard: Dashboard;
  let text: string;

  beforeAll(async () => {
    // A pull through a real upstream, so the upstream and mirror series have values too.
    upstream = await startDockerRegistry();
    layover = await startLayover({ cache: { maxSize: '1GiB' }, upstreams: [{ prefix: 'up', url: upstream.url }] });
    const layer = randomBlob(20_000, 'observe-upstream');
    const config = imageConfig([layer.digest]);
    const manifest = buildManifest({ config, layers: [layer] });
    await pushContent(upstream.url, 'lib/img', 'v1', [config, layer], manifest);
    expect((await getBytes(`${layover.url}/v2/up/lib/img/manifests/v1`)).status).toBe(200);
    expect((await getBytes(`${layover.url}/v2/up/lib/img/blobs/${layer.digest}`)).status).toBe(200);
    // A cold blob's client gets its last byte on the digest's verdict and the commit, which
    // records it as mirrored storage, lands just behind; a HEAD of it on this replica waits for
    // that commit, so the scrape (whose figures are then reused for 15 s) sees it.
    expect((await request(`${layover.url}/v2/up/lib/img/blobs/${layer.digest}`, { method: 'HEAD' })).statusCode).toBe(200);
    const res = await request(`${layover.url}/metrics`);
    expect(res.statusCode).toBe(200);
    text = await res.body.text();
    declared = new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1] as string));
    dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
  });
  afterAll(async () => {
    await layover?.close();
    await upstream?.close();
  });

  it('observes upstream latency by upstream and kind, and counts mirrored storage', () => {
    expect(Number(/^layover_upstream_request_duration_seconds_count\{upstream="up",kind="manifest"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^layover_upstream_request_duration_seconds_count\{upstream="up",kind="blob"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^layover_storage_blobs\{origin="mirrored"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
  });

  it('queries only metrics that a real /metrics scrape declares', () => {
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets ?? []) for (const m of t.expr.matchAll(SERIES)) used.add(m[1] as string);
    }
    for (const v of dashboard.templating.list) for (const m of JSON.stringify(v.query).matchAll(SERIES)) used.add(m[1] as string);
    // The list: process metrics, latency by route, storage, cache budget, upstream latency and errors.
    for (const required of ['process_resident_memory_bytes', 'layover_http_request_duration_seconds_bucket', 'layover_storage_bytes', 'layover_storage_blobs', 'layover_cache_used_bytes', 'layover_cache_max_bytes', 'layover_upstream_request_duration_seconds_bucket', 'layover_upstream_errors_total']) {
      expect(used, required).toContain(required);
    }
    const missing = [...used].filter((s) => !declared.has(family(s, declared)));
    expect(missing).toEqual([]);
    // Histograms are queried through their buckets, with a `le` grouping.
    for (const panel of dashboard.panels) for (const t of panel.targets ?? []) if (t.expr.includes('_bucket')) expect(t.expr).toMatch(/histogram_quantile\([\d.]+, sum by \(le\b/);
  });

  it('is valid Grafana dashboard JSON with a data source variable', () => {
    expect(dashboard.uid).toBe('layover-registry');
    expect(dashboard.templating.list.map((v) => v.name)).toContain('datasource');
    for (const panel of dashboard.panels) expect(panel.datasource?.uid).toBe('${datasource}');
  });

  it('has a ServiceMonitor that selects the registry Service and its /metrics port, in every registry kustomization', async () => {
    const monitoring = await render('deploy/monitoring');
    const monitor = findObject(monitoring, 'ServiceMonitor', 'layover-registry') as K8sObject & {
      spec: { namespaceSelector: { matchNames: string[] }; selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string; scheme?: string }[] };
    };
    // The dashboard ships in the same kustomization, for Grafana's sidecar.
    const dashboardMap = findObject(monitoring, 'ConfigMap', 'layover-grafana-dashboard') as K8sObject & { data: Record<string, string> };
    expect(dashboardMap.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboardMap.data['layover-dashboard.json'] as string)).toEqual(dashboard);

    for (const dir of REGISTRY_KUSTOMIZATIONS) {
      const objs = await render(dir);
      const services = objs.filter((o) => o.kind === 'Service' && monitor.spec.namespaceSelector.matchNames.includes(o.metadata.namespace ?? '')
        && Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v));
      expect(services.map((s) => s.metadata.name), dir).toEqual(['layover-registry']);
      const service = services[0] as K8sObject & { spec: { selector: Record<string, string>; ports: { name: string; targetPort: string | number }[] } };
      const [endpoint] = monitor.spec.endpoints;
      expect(endpoint?.path).toBe('/metrics');
      const port = service.spec.ports.find((p) => p.name === endpoint?.port);
      expect(port, dir).toBeDefined();
      // The Service's port leads to the registry container's port, where /metrics is served.
      const pods = objs.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind) && Object.entries(service.spec.selector).every(([k, v]) => (o as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels[k] === v));
      expect(pods, dir).toHaveLength(1);
      const containers = (pods[0] as unknown as { spec: { template: { spec: { containers: { ports?: { name?: string; containerPort: number }[] }[] } } } }).spec.template.spec.containers;
      const containerPort = containers.flatMap((c) => c.ports ?? []).find((p) => p.name === port?.targetPort || p.containerPort === port?.targetPort);
      expect(containerPort, dir).toBeDefined();
      const raw = configOf(objs, REGISTRY_CONFIG);
      const listen = String(raw.registry?.listen ?? '');
      expect(listen.endsWith(`:${containerPort?.containerPort}`), dir).toBe(true);
      // Plain HTTP unless the registry serves TLS.
      expect(endpoint?.scheme ?? 'http', dir).toBe(raw.registry?.tls ? 'https' : 'http');
    }
  });

  it('is a valid kustomization of known kinds only', async () => {
    const doc = parse(await readFile(path.join(REPO_ROOT, 'deploy/monitoring/kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect(doc.resources).toEqual(['servicemonitor.yaml']);
    const kinds = (await render('deploy/monitoring')).map((o) => `${o.apiVersion}/${o.kind}`).sort();
    expect(kinds).toEqual(['monitoring.coreos.com/v1/ServiceMonitor', 'v1/ConfigMap']);
  });
});
