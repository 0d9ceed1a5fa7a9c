// The web UI in a real browser (Debian's chromium, headless, driven by playwright-core): log in,
// browse namespaces → repositories → tags, delete a tag and check through the API that it is
// gone, see that a developer gets no admin view, and run GC from the admin view. Renders the
// repository page to a screenshot (the README's pictures come from ui-overview.test.ts).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/registry/digest.js';
import { RegistryService } from '../../src/registry/service.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { PASSWORDS } from '../fixtures/auth/config.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildIndex, buildManifest, imageConfig, randomBlob, type Content, type Platform } from '../helpers/oci-content.js';
import { getBytes, pushContent, type Auth } from '../helpers/registry-client.js';
import { logInToWebPage } from '../helpers/web-page.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.join(tmpdir(), `layover-ui-${process.pid}.png`);
const admin: Auth = { user: 'admin', password: PASSWORDS.admin };
const alice: Auth = { user: 'alice', password: PASSWORDS.alice };
let layover: InProcessLayover;
let browser: Browser;
let page: Page;

function image(seed: string, size: number, platform: Platform = { os: 'linux', architecture: 'amd64' }) {
  const layer = randomBlob(size, seed);
  const config = imageConfig([layer.digest], platform);
  return { blobs: [config, layer], manifest: buildManifest({ config, layers: [layer] }) };
}

async function pushMulti(repo: string, tag: string, auth: Auth, seed: string) {
  const amd = image(`${seed}-amd64`, 180_000);
  const arm = image(`${seed}-arm64`, 170_000, { os: 'linux', architecture: 'arm64' });
  for (const img of [amd, arm]) await pushContent(layover.url, repo, img.manifest.digest, img.blobs, img.manifest, auth);
  const index = buildIndex({ manifests: [{ ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } }, { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } }] });
  await pushContent(layover.url, repo, tag, [], index, auth);
}

async function tagsOf(repo: string): Promise<string[]> {
  const res = await getBytes(`${layover.url}/api/v1/repository?name=${repo}`, { auth: admin });
  return (JSON.parse(res.body.toString()) as { tagList: { tag: string }[] }).tagList.map((t) => t.tag);
}

function logIn(who: Auth): Promise<void> {
  return logInToWebPage(page, layover.url, who);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (test/run.sh installs it)`);
  layover = await startLayover({
    upstreams: [{ prefix: 'docker.io', url: 'http://127.0.0.1:9' }],
    auth: {
      enabled: true,
      users: [
        { name: 'admin', password: PASSWORDS.admin, admin: true },
        { name: 'alice', password: PASSWORDS.alice, teams: ['web'] },
      ],
    },
  });
  for (const [tag, size] of [['1.0.0', 900_000], ['1.1.0', 950_000], ['latest', 950_000]] as const) {
    const img = image(tag === 'latest' ? '1.1.0' : tag, size);
    await pushContent(layover.url, 'alice/web-frontend', tag, img.blobs, img.manifest, alice);
  }
  await pushMulti('alice/api', '2.3.1', alice, 'api');
  const tool = image('tool', 400_000);
  await pushContent(layover.url, 'web/assets', 'v7', tool.blobs, tool.manifest, alice);
  const cache = new RegistryService(new EmbeddedStore(layover.root), layover.config);
  const nginx = image('nginx', 1_500_000);
  for (const b of nginx.blobs as Content[]) await cache.ingest('docker.io/library/nginx', Readable.from([b.bytes]), b.digest as Digest, b.size);
  await cache.putManifest('docker.io/library/nginx', '1.27', nginx.manifest.bytes, nginx.manifest.mediaType);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on('dialog', (dialog) => void dialog.accept());
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await layover?.close();
});

describe('web UI in headless chromium', () => {
  it('refuses a wrong password and shows no data', async () => {
    await page.goto(`${layover.url}/ui/`);
    await page.fill('#login-user', 'alice');
    await page.fill('#login-password', 'wrong');
    await page.click('#login-submit');
    await page.waitForSelector('#login-error:not([hidden])');
    expect(await page.textContent('#login-error')).toContain('Wrong user name or password');
    expect(await page.isVisible('#repos-view')).toBe(false);
  });

  it('a developer browses own and team namespaces, sees tags with platforms, copies a pull command and deletes a tag', async () => {
    await logIn(alice);
    await page.waitForSelector('#repos-view:not([hidden]) #namespaces li');
    expect(await page.isVisible('#overview-tab')).toBe(false);
    const namespaces = await page.locator('#namespaces button').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-namespace')));
    expect(namespaces.slice(0, 2)).toEqual(['alice', 'web']);
    expect(namespaces).not.toContain('bob');

    await page.click('tr[data-repository="alice/api"]');
    await page.waitForSelector('#tag-panel:not([hidden]) tr[data-tag="2.3.1"]');
    expect(await page.textContent('tr[data-tag="2.3.1"]')).toContain('linux/arm64');

    await page.click('tr[data-repository="alice/web-frontend"]');
    await page.waitForSelector('tr[data-tag="1.0.0"]');
    const pull = await page.getAttribute('tr[data-tag="1.1.0"] button.secondary', 'title');
    expect(pull).toBe(`docker pull ${layover.config.registry.publicHost}/alice/web-frontend:1.1.0`);
    await page.click('tr[data-tag="1.1.0"] button.secondary');
    await page.waitForSelector('#message:not([hidden])');

    await page.click('button[data-delete-tag="1.0.0"]');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await page.waitForSelector('tr[data-tag="1.0.0"]', { state: 'detached' });
    expect(await page.textContent('#message')).toContain('Deleted alice/web-frontend:1.0.0');
    expect(await tagsOf('alice/web-frontend')).toEqual(['1.1.0', 'latest']);

    await page.click('button[data-namespace="web"]');
    await page.waitForSelector('tr[data-repository="web/assets"]');
    await page.click('#logout');
    await page.waitForSelector('#login-view:not([hidden])');
  });

  it('an admin sees every namespace, storage, GC status, and runs GC', async () => {
    await logIn(admin);
    // An admin lands on the registry overview.
    await page.waitForSelector('#overview-view:not([hidden]) #ns-table tbody tr');
    const rows = await page.locator('#ns-table tbody tr').allTextContents();
    expect(rows.some((r) => r.startsWith('docker.io') && r.includes('mirror'))).toBe(true);
    expect(rows.some((r) => r.startsWith('alice') && r.includes('pushed'))).toBe(true);
    expect(await page.textContent('#stat-mirror')).toMatch(/MiB|KiB/);
    expect(await page.textContent('#gc-status')).toContain('Next run');

    await page.click('#gc-dry');
    // (waitForFunction would need eval, which the page's CSP rightly forbids)
    await page.locator('#gc-result', { hasText: /^Would free/ }).waitFor();
    await page.click('#gc-run');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await page.locator('#gc-result', { hasText: /^Freed/ }).waitFor();
    expect(await page.textContent('dd[data-gc="Last run"]')).toMatch(/ago: freed/);
  });

  it('renders the repository page to a screenshot', async () => {
    await page.click('button[data-view="repos"]');
    await page.click('button[data-namespace="alice"]');
    await page.click('tr[data-repository="alice/api"]');
    await page.waitForSelector('tr[data-tag="2.3.1"]');
    await page.click('tr[data-repository="alice/web-frontend"]');
    await page.waitForSelector('tr[data-tag="latest"]');
    await page.setViewportSize({ width: 1280, height: 500 });
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    expect(existsSync(SCREENSHOT)).toBe(true);
    const png = readFileSync(SCREENSHOT);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    // A blank page compresses to a few KiB; the rendered tables do not.
    expect(png.length).toBeGreaterThan(20_000);
  });
});
