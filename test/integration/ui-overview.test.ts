// The web page in a real browser (Debian's chromium, headless, driven by playwright-core), at
// desktop width and at 390 px: the admin's registry overview (cache budget, evictions, upstreams
// with latency and last error, traffic saved and storage charts drawn by the uPlot layover
// serves, users and teams, GC history behind a confirmation), what a developer sees instead,
// search and pagination, keyboard navigation, deletions with confirmation, artifact kinds and
// referrers, honest "Cached" labels, the favicon, and the README's screenshots (docs/screenshots/).
// A second layover is the upstream, so pull-through traffic is real.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS } from '../fixtures/auth/config.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, content, emptyConfig, imageConfig, MediaType, randomBlob, type Content } from '../helpers/oci-content.js';
import { getBytes, pushContent, putManifest, type Auth } from '../helpers/registry-client.js';
import { logInToWebPage } from '../helpers/web-page.js';

const CHROMIUM = '/usr/bin/chromium';
// The README's pictures are rewritten only on request (UPDATE_SCREENSHOTS=1); otherwise they go
// to a temporary directory and are checked there.
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? path.resolve(import.meta.dirname, '../../docs/screenshots') : path.join(tmpdir(), `layover-ui-shots-${process.pid}`);
const admin: Auth = { user: 'admin', password: PASSWORDS.admin };
const alice: Auth = { user: 'alice', password: PASSWORDS.alice };
const bob: Auth = { user: 'bob', password: PASSWORDS.bob };
const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
const COSIGN_SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const SPDX = 'application/spdx+json';

let upstream: InProcessLayover;
let layover: InProcessLayover;
let browser: Browser;
let desktop: Page;
let phone: Page;
let webImage: Content;

function image(seed: string, size: number, shared?: Content) {
  const layer = randomBlob(size, seed);
  const layers = shared ? [shared, layer] : [layer];
  const config = imageConfig(layers.map((l) => l.digest));
  return { blobs: [config, ...layers], manifest: buildManifest({ config, layers }) };
}

async function api<T>(pathAndQuery: string, auth: Auth = admin): Promise<{ status: number; body: T }> {
  const res = await getBytes(`${layover.url}/api/v1/${pathAndQuery}`, { auth });
  return { status: res.status, body: JSON.parse(res.body.toString() || '{}') as T };
}

function logIn(page: Page, who: Auth): Promise<void> {
  return logInToWebPage(page, layover.url, who);
}

async function pageWidth(page: Page): Promise<{ scroll: number; client: number }> {
  return (await page.evaluate('({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })')) as { scroll: number; client: number };
}

async function shoot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  const png = readFileSync(file);
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  // A blank page compresses to a few KiB; rendered cards, tables and charts do not.
  expect(png.length).toBeGreaterThan(20_000);
}

async function pull(repository: string, reference: string): Promise<void> {
  const manifest = await getBytes(`${layover.url}/v2/${repository}/manifests/${reference}`, { auth: admin, headers: { accept: MediaType.ociManifest } });
  expect(manifest.status).toBe(200);
  const doc = JSON.parse(manifest.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  for (const d of [doc.config, ...doc.layers]) expect((await getBytes(`${layover.url}/v2/${repository}/blobs/${d.digest}`, { auth: admin })).status).toBe(200);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (test/run.sh installs it)`);
  upstream = await startLayover();
  const nginx = image('nginx', 1_200_000);
  await pushContent(upstream.url, 'library/nginx', '1.27', nginx.blobs, nginx.manifest);

  layover = await startLayover({
    upstreams: [
      { prefix: 'docker.io', url: upstream.url },
      // Nothing listens on port 9: every pull through it fails, and the overview says why.
      { prefix: 'ghcr.io', url: 'http://127.0.0.1:9' },
    ],
    cache: { maxSize: '50MiB' },
    usage: { sampleInterval: '1s' },
    auth: {
      enabled: true,
      users: [
        { name: 'admin', password: PASSWORDS.admin, admin: true },
        { name: 'alice', password: PASSWORDS.alice, teams: ['web'] },
        { name: 'bob', password: PASSWORDS.bob },
      ],
    },
  });

  // Pulled through twice: the first time from the upstream, the second from the cache.
  await pull('docker.io/library/nginx', '1.27');
  await pull('docker.io/library/nginx', nginx.manifest.digest);
  expect((await getBytes(`${layover.url}/v2/ghcr.io/acme/tool/manifests/1`, { auth: admin })).status).toBeGreaterThanOrEqual(500);

  // alice/web: an image with twelve tags, a cosign signature and an SBOM that refer to it.
  const web = image('web', 300_000);
  webImage = web.manifest;
  await pushContent(layover.url, 'alice/web', '1.0', web.blobs, web.manifest, alice);
  for (let i = 1; i <= 11; i++) await putManifest(layover.url, 'alice/web', `1.${i}`, web.manifest, alice);
  const empty = emptyConfig();
  const sig = content('{"critical":{}}', 'application/vnd.dev.cosign.simplesigning.v1+json');
  const signature = buildManifest({ config: empty, layers: [sig], artifactType: COSIGN_SIG, subject: web.manifest });
  await pushContent(layover.url, 'alice/web', signature.digest, [empty, sig], signature, alice);
  const spdx = content('{"spdxVersion":"SPDX-2.3"}', SPDX);
  const sbom = buildManifest({ config: empty, layers: [spdx], artifactType: SPDX, subject: web.manifest });
  await pushContent(layover.url, 'alice/web', sbom.digest, [spdx], sbom, alice);

  // alice/charts: a Helm chart as Helm pushes it (its config's media type names the artifact).
  const chartConfig = content('{"name":"demo","version":"0.1.0"}', HELM_CONFIG);
  const chart = randomBlob(20_000, 'chart', 'application/vnd.cncf.helm.chart.content.v1.tar+gzip');
  await pushContent(layover.url, 'alice/charts', '0.1.0', [chartConfig, chart], buildManifest({ config: chartConfig, layers: [chart] }), alice);

  // web/: twelve repositories (more than a page) that share one base layer.
  const base = randomBlob(400_000, 'base');
  for (let i = 0; i < 12; i++) {
    const app = image(`app-${i}`, 30_000, base);
    await pushContent(layover.url, `web/app-${String(i).padStart(2, '0')}`, 'v1', app.blobs, app.manifest, alice);
  }
  const tool = image('bob-tool', 50_000);
  await pushContent(layover.url, 'bob/tool', 'v1', tool.blobs, tool.manifest, bob);

  // Two samples after the traffic above, so both charts have lines to draw.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { body } = await api<{ samples: { servedFromCacheBytes: number }[] }>('usage');
    if (body.samples.length >= 3 && body.samples.some((s) => s.servedFromCacheBytes > 0)) break;
    if (Date.now() > deadline) throw new Error(`usage samples: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 300));
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  desktop = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await layover?.close();
  await upstream?.close();
});

describe('the web page in headless chromium', () => {
  it('loads without a single 404, favicon included, and serves uPlot itself', async () => {
    const failures: string[] = [];
    const loaded: string[] = [];
    const page = await browser.newPage();
    page.on('response', (res) => {
      loaded.push(res.url());
      if (res.status() >= 400) failures.push(`${res.status()} ${res.url()}`);
    });
    await page.goto(`${layover.url}/ui/`);
    await page.waitForLoadState('networkidle');
    expect(failures).toEqual([]);
    expect(loaded).toContain(`${layover.url}/ui/vendor/uplot.js`);
    expect(loaded.every((u) => u.startsWith(layover.url))).toBe(true);
    expect(await page.evaluate('typeof window.uPlot')).toBe('function');
    expect(await page.getAttribute('link[rel="icon"]', 'href')).toBe('/ui/favicon.svg');
    await page.close();
    for (const p of ['/favicon.ico', '/ui/favicon.svg']) {
      const res = await getBytes(`${layover.url}${p}`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^image\/svg\+xml/);
      expect(res.body.toString()).toContain('<svg');
    }
  });

  it('an admin lands on the overview: cache budget, evictions, traffic saved, upstreams with URL, latency, last error and health', async () => {
    await logIn(desktop, admin);
    await desktop.waitForSelector('#overview-view:not([hidden]) #upstream-table tbody tr');
    expect(await desktop.isVisible('#repos-view')).toBe(false);
    expect(await desktop.textContent('#stat-cache')).toMatch(/ of 50\.0 MiB$/);
    expect(await desktop.textContent('#stat-cache-sub')).toContain('of cache.maxSize used');
    expect(await desktop.textContent('#stat-evictions')).toMatch(/^\d+ images?$/);
    expect(await desktop.textContent('#stat-saved')).toMatch(/MiB|KiB/);
    expect(await desktop.textContent('#stat-saved-sub')).toMatch(/fetched upstream/);
    expect(await desktop.textContent('#stat-shared')).toMatch(/KiB|MiB/);
    expect(await desktop.textContent('#shared-explain')).toContain('stored once');

    const docker = desktop.locator('tr[data-upstream="docker.io"]');
    expect(await docker.textContent()).toContain(upstream.url);
    expect(await docker.locator('td').nth(1).textContent()).toBe('up');
    expect(await docker.locator('td').nth(2).textContent()).toMatch(/^\d+ ms$/);
    expect(await docker.locator('td').nth(3).textContent()).toMatch(/%$/);
    expect(await docker.locator('td').nth(4).textContent()).toBe('none');
    const ghcr = desktop.locator('tr[data-upstream="ghcr.io"]');
    expect(await ghcr.textContent()).toContain('http://127.0.0.1:9');
    expect(await ghcr.locator('td.last-error').textContent()).toMatch(/unreachable/);

    const ns = await desktop.locator('#ns-table tbody tr').allTextContents();
    expect(ns.some((r) => r.startsWith('docker.io') && r.includes('cached (mirror)'))).toBe(true);
    expect(ns.some((r) => r.startsWith('alice') && r.includes('pushed'))).toBe(true);
  });

  it('draws traffic saved and storage by namespace over time with the served uPlot', async () => {
    await desktop.waitForSelector('#chart-traffic canvas');
    await desktop.waitForSelector('#chart-storage canvas');
    expect(await desktop.locator('#chart-traffic .u-legend').textContent()).toMatch(/Served from cache.*Fetched upstream/);
    const storageLegend = await desktop.locator('#chart-storage .u-legend').textContent();
    for (const ns of ['alice', 'web', 'docker.io']) expect(storageLegend).toContain(ns);
    // Drawn: a canvas of the card's width, with pixels that are not the background.
    const box = await desktop.locator('#chart-traffic canvas').boundingBox();
    expect(box?.width).toBeGreaterThan(200);
    const inked = await desktop.evaluate(`(() => {
      const c = document.querySelector('#chart-storage canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    })()`);
    expect(inked).toBeGreaterThan(500);
  });

  it('asks before "Run GC now", and shows the run in the GC history', async () => {
    await desktop.click('#gc-run');
    await desktop.waitForSelector('#confirm[open]');
    expect(await desktop.textContent('#confirm-title')).toBe('Run garbage collection now?');
    await desktop.click('#confirm-cancel');
    await desktop.waitForSelector('#confirm', { state: 'hidden' });
    expect(await desktop.textContent('#gc-result')).toBe('');
    const before = await api<{ lastRun?: unknown }>('gc');
    expect(before.body.lastRun).toBeUndefined();

    await desktop.click('#gc-run');
    await desktop.waitForSelector('#confirm[open]');
    await desktop.click('#confirm-ok');
    await desktop.locator('#gc-result', { hasText: /^Freed/ }).waitFor();
    expect(await desktop.locator('#gc-history tbody tr').first().textContent()).toContain('collected');
    expect((await api<{ lastRun?: unknown }>('gc')).body.lastRun).toBeDefined();
  });

  it('lists users and teams for an admin (read-only)', async () => {
    await desktop.click('#accounts-tab');
    await desktop.waitForSelector('#users-table tr[data-user="alice"]');
    expect(await desktop.textContent('#users-table tr[data-user="admin"]')).toContain('admin');
    expect(await desktop.textContent('#users-table tr[data-user="alice"]')).toContain('web');
    expect(await desktop.textContent('#teams-table tr[data-team="web"]')).toContain('alice');
  });

  it('a developer lands on repositories and gets no admin view, nor the admin API', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, alice);
    await page.waitForSelector('#repos-view:not([hidden]) #namespaces li');
    expect(await page.isVisible('#overview-tab')).toBe(false);
    expect(await page.isVisible('#accounts-tab')).toBe(false);
    expect(await page.isVisible('#overview-view')).toBe(false);
    expect(await page.isVisible('#delete-namespace')).toBe(false);
    const namespaces = await page.locator('#namespaces button').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-namespace')));
    expect(namespaces.slice(0, 2)).toEqual(['alice', 'web']);
    expect(namespaces).not.toContain('bob');
    for (const endpoint of ['usage', 'cache', 'users', 'teams', 'upstreams', 'gc']) expect((await api(endpoint, alice)).status, endpoint).toBe(403);
    await page.close();
  });

  it('filters and pages repositories and tags', async () => {
    await logIn(desktop, alice);
    await desktop.click('button[data-namespace="web"]');
    await desktop.waitForSelector('tr[data-repository="web/app-00"]');
    expect(await desktop.locator('#repo-table tbody tr').count()).toBe(10);
    expect(await desktop.textContent('#repo-pager [data-page-info]')).toBe('Page 1 of 2 (12)');
    await desktop.click('#repo-pager [data-page="next"]');
    await desktop.waitForSelector('tr[data-repository="web/app-11"]');
    expect(await desktop.locator('#repo-table tbody tr').count()).toBe(2);
    expect(await desktop.isDisabled('#repo-pager [data-page="next"]')).toBe(true);
    await desktop.fill('#repo-search', 'app-07');
    expect(await desktop.locator('#repo-table tbody tr').allTextContents()).toEqual([expect.stringContaining('web/app-07')]);
    expect(await desktop.textContent('#repo-pager')).toBe('');
    await desktop.fill('#repo-search', 'nothing-like-this');
    expect(await desktop.textContent('#repo-empty')).toContain('No repository matches');
    // Shared layers: the namespace says why its repositories add up to more than it stores.
    expect(await desktop.textContent('#ns-storage')).toMatch(/layers they share are stored once/);

    await desktop.click('button[data-namespace="alice"]');
    await desktop.click('tr[data-repository="alice/web"]');
    await desktop.waitForSelector('#tag-panel:not([hidden]) tr[data-tag="1.0"]');
    expect(await desktop.locator('#tag-table tbody tr').count()).toBe(10);
    expect(await desktop.textContent('#tag-pager [data-page-info]')).toBe('Page 1 of 2 (12)');
    await desktop.click('#tag-pager [data-page="next"]');
    expect(await desktop.locator('#tag-table tbody tr').count()).toBe(2);
    await desktop.fill('#tag-search', '1.1');
    const tags = await desktop.locator('#tag-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-tag')));
    expect(tags.sort()).toEqual(['1.1', '1.10', '1.11']);
  });

  it('labels artifact kinds and lists an image\'s referrers', async () => {
    await desktop.fill('#tag-search', '1.0');
    const image = desktop.locator('tr[data-tag="1.0"]');
    expect(await image.locator('[data-kind]').first().textContent()).toBe('Image');
    expect(await image.locator('button[data-referrers]').textContent()).toBe('2 referrers');
    await image.locator('button[data-referrers]').click();
    await desktop.waitForSelector('tr[data-referrers-of="1.0"] li');
    const kinds = await desktop.locator('tr[data-referrers-of="1.0"] li [data-kind]').allTextContents();
    expect(kinds.sort()).toEqual(['SBOM', 'Signature']);
    expect(await desktop.textContent('tr[data-referrers-of="1.0"]')).toContain(COSIGN_SIG);
    const { body } = await api<{ referrers: { kind: string }[] }>(`referrers?repository=alice/web&digest=${webImage.digest}`, alice);
    expect(body.referrers.map((r) => r.kind).sort()).toEqual(['sbom', 'signature']);

    await desktop.click('tr[data-repository="alice/charts"]');
    await desktop.waitForSelector('tr[data-tag="0.1.0"]');
    expect(await desktop.textContent('tr[data-tag="0.1.0"] [data-kind="helm"]')).toBe('Helm chart');
    expect(await desktop.textContent('#tag-when-head')).toBe('Pushed');
  });

  it('says "Cached", not "Pushed", for mirror repositories', async () => {
    await logIn(desktop, admin);
    await desktop.click('button[data-view="repos"]');
    await desktop.click('button[data-namespace="docker.io"]');
    await desktop.waitForSelector('tr[data-repository="docker.io/library/nginx"]');
    expect(await desktop.textContent('#repo-when-head')).toBe('Last cached');
    expect(await desktop.textContent('tr[data-repository="docker.io/library/nginx"]')).toContain('cached');
    await desktop.click('tr[data-repository="docker.io/library/nginx"]');
    await desktop.waitForSelector('tr[data-tag="1.27"]');
    expect(await desktop.textContent('#tag-when-head')).toBe('Cached');
  });

  it('reaches repository rows with Tab and opens them with Enter', async () => {
    await logIn(desktop, alice);
    await desktop.click('button[data-namespace="web"]');
    await desktop.waitForSelector('tr[data-repository="web/app-00"]');
    await desktop.focus('#repo-search');
    await desktop.keyboard.press('Tab');
    expect(await desktop.evaluate('document.activeElement.dataset.repository')).toBe('web/app-00');
    await desktop.keyboard.press('Tab');
    expect(await desktop.evaluate('document.activeElement.dataset.repository')).toBe('web/app-01');
    await desktop.keyboard.press('Enter');
    await desktop.waitForSelector('#tag-panel:not([hidden]) tr[data-tag="v1"]');
    expect(await desktop.textContent('#tag-panel-title')).toContain('web/app-01');
    // Focus moves to the opened repository, so the keyboard continues there.
    expect(await desktop.evaluate('document.activeElement.id')).toBe('tag-panel-title');
    // The namespace list is buttons: Tab reaches them, Enter selects.
    await desktop.focus('button[data-namespace="alice"]');
    await desktop.keyboard.press('Enter');
    await desktop.waitForSelector('tr[data-repository="alice/web"]');
  });

  it('deletes a repository only after confirmation', async () => {
    await desktop.click('button[data-namespace="web"]');
    await desktop.click('tr[data-repository="web/app-00"]');
    await desktop.waitForSelector('#tag-panel:not([hidden]) tr[data-tag="v1"]');
    await desktop.click('#delete-repo');
    await desktop.waitForSelector('#confirm[open]');
    await desktop.keyboard.press('Escape');
    await desktop.waitForSelector('#confirm', { state: 'hidden' });
    expect((await api('repository?name=web/app-00', alice)).status).toBe(200);

    await desktop.click('#delete-repo');
    await desktop.waitForSelector('#confirm[open]');
    await desktop.click('#confirm-ok');
    await desktop.waitForSelector('tr[data-repository="web/app-00"]', { state: 'detached' });
    expect(await desktop.textContent('#message')).toContain('Deleted repository web/app-00');
    expect((await api('repository?name=web/app-00', alice)).status).toBe(404);
  });

  it('lets an admin delete a namespace once its name is typed', async () => {
    await logIn(desktop, admin);
    await desktop.click('button[data-view="repos"]');
    await desktop.click('button[data-namespace="bob"]');
    await desktop.waitForSelector('tr[data-repository="bob/tool"]');
    await desktop.click('#delete-namespace');
    await desktop.waitForSelector('#confirm[open]');
    expect(await desktop.isDisabled('#confirm-ok')).toBe(true);
    await desktop.fill('#confirm-input', 'bo');
    expect(await desktop.isDisabled('#confirm-ok')).toBe(true);
    await desktop.fill('#confirm-input', 'bob');
    await desktop.click('#confirm-ok');
    await desktop.locator('#message', { hasText: 'Deleted namespace bob' }).waitFor();
    expect((await api('repository?name=bob/tool')).status).toBe(404);
    expect(await desktop.locator('button[data-namespace="bob"]').count()).toBe(0);
  });

  it('fits a 390 px phone: no horizontal page overflow on the overview or a repository page', async () => {
    await logIn(phone, admin);
    await phone.waitForSelector('#overview-view:not([hidden]) #chart-storage canvas');
    let width = await pageWidth(phone);
    expect(width.client).toBe(390);
    expect(width.scroll).toBeLessThanOrEqual(390);
    await shoot(phone, 'overview-390.png');

    await phone.click('button[data-view="repos"]');
    await phone.click('button[data-namespace="alice"]');
    await phone.click('tr[data-repository="alice/web"]');
    await phone.waitForSelector('#tag-panel:not([hidden]) tr[data-tag="1.0"]');
    await phone.click('tr[data-tag="1.0"] button[data-referrers]');
    await phone.waitForSelector('tr[data-referrers-of="1.0"] li');
    width = await pageWidth(phone);
    expect(width.scroll).toBeLessThanOrEqual(390);
    await shoot(phone, 'repository-390.png');

    await phone.click('#accounts-tab');
    await phone.waitForSelector('#users-table tr[data-user="alice"]');
    expect((await pageWidth(phone)).scroll).toBeLessThanOrEqual(390);
  });

  it('saves the desktop screenshots', async () => {
    await logIn(desktop, admin);
    await desktop.waitForSelector('#overview-view:not([hidden]) #chart-storage canvas');
    expect((await pageWidth(desktop)).scroll).toBeLessThanOrEqual(1280);
    await shoot(desktop, 'overview-desktop.png');
    await desktop.click('button[data-view="repos"]');
    await desktop.click('button[data-namespace="alice"]');
    await desktop.click('tr[data-repository="alice/web"]');
    await desktop.waitForSelector('tr[data-tag="1.0"]');
    await desktop.click('tr[data-tag="1.0"] button[data-referrers]');
    await desktop.waitForSelector('tr[data-referrers-of="1.0"] li');
    await shoot(desktop, 'repository-desktop.png');
  });
});
