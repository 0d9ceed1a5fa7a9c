// The layover web UI: plain browser JavaScript, served as-is (no build step, nothing from a CDN).
// It only calls /api/v1 with the user's registry credentials (HTTP Basic, kept in sessionStorage
// for this tab), so every view and action is subject to the registry's own access rules.
// Everything shown is inserted as text, never as HTML.
import { drawStorage, drawTraffic, formatBytes as bytes, resizeCharts } from './charts.js';

const CRED_KEY = 'layover.credentials';
const PAGE_SIZE = 10;
const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  namespace: null,
  repository: null,
  repositories: [],
  storage: null,
  repoFilter: '',
  repoPage: 0,
  tags: [],
  tagFilter: '',
  tagPage: 0,
  mirror: false,
};

const KIND_LABELS = {
  image: 'Image',
  index: 'Multi-platform image',
  helm: 'Helm chart',
  signature: 'Signature',
  sbom: 'SBOM',
  attestation: 'Attestation',
  artifact: 'Artifact',
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, params) {
  const auth = sessionStorage.getItem(CRED_KEY);
  const url = new URL(`/api/v1/${path}`, location.origin);
  for (const [k, v] of Object.entries(params ?? {})) url.searchParams.set(k, v);
  const res = await fetch(url, { method, headers: auth ? { authorization: `Basic ${auth}` } : {} });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body?.error?.message ?? `${res.status} ${res.statusText}`);
  return body;
}

function when(iso) {
  if (!iso) return '–';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  return s < 0 ? `in ${duration(-s)}` : `${duration(s)} ago`;
}

function duration(s) {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

function percent(f) {
  return f === undefined || f === null || Number.isNaN(f) ? '–' : `${(f * 100).toFixed(1)} %`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'title') node.title = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== undefined && c !== null && c !== '') node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** A table row that opens with a click, Enter or Space, and is reachable with Tab. */
function openableRow(props, open, ...cells) {
  const row = el('tr', { ...props, tabindex: '0', class: `clickable ${props.class ?? ''}`.trim(), onclick: open }, ...cells);
  row.addEventListener('keydown', (event) => {
    if (event.target !== row || (event.key !== 'Enter' && event.key !== ' ')) return;
    event.preventDefault();
    open();
  });
  return row;
}

function show(message, isError = false) {
  const box = $('message');
  box.textContent = message;
  box.classList.toggle('error', isError);
  box.hidden = false;
  clearTimeout(show.timer);
  show.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
}

function failed(err) {
  if (err.status === 401) return logout('Your session ended; log in again.');
  show(err.message, true);
}

/**
 * Asks before anything destructive, in a modal dialog (keyboard: Tab between the buttons, Escape
 * cancels). `typed`: the user must type this word first (a namespace's name before deleting it).
 */
function confirmAction({ title, text, action = 'Confirm', typed }) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = action;
  $('confirm-type-label').hidden = !typed;
  $('confirm-expected').textContent = typed ?? '';
  $('confirm-input').value = '';
  $('confirm-ok').disabled = Boolean(typed);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    (typed ? $('confirm-input') : $('confirm-cancel')).focus();
  });
}

// ---- login ----

async function login(event) {
  event.preventDefault();
  const user = $('login-user').value;
  const password = $('login-password').value;
  sessionStorage.setItem(CRED_KEY, btoa(unescape(encodeURIComponent(`${user}:${password}`))));
  $('login-error').hidden = true;
  try {
    await start();
  } catch (err) {
    sessionStorage.removeItem(CRED_KEY);
    $('login-error').textContent = err.status === 401 ? 'Wrong user name or password.' : err.message;
    $('login-error').hidden = false;
  }
}

function logout(reason) {
  sessionStorage.removeItem(CRED_KEY);
  state.me = null;
  state.namespace = null;
  state.repository = null;
  for (const id of ['tabs', 'who', 'repos-view', 'overview-view', 'accounts-view']) $(id).hidden = true;
  $('login-view').hidden = false;
  $('login-password').value = '';
  if (reason) show(reason, true);
}

async function start() {
  state.me = await api('GET', 'me');
  $('login-view').hidden = true;
  $('tabs').hidden = false;
  $('who').hidden = false;
  $('who-name').textContent = state.me.authEnabled ? `${state.me.name}${state.me.admin ? ' (admin)' : ''}` : 'authentication off';
  $('overview-tab').hidden = !state.me.admin;
  $('accounts-tab').hidden = !state.me.admin;
  // An admin's own namespace is usually empty: the registry as a whole is what they look after.
  await showView(state.me.admin ? 'overview' : 'repos');
}

async function showView(view) {
  for (const b of document.querySelectorAll('.tab')) {
    b.classList.toggle('active', b.dataset.view === view);
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  $('repos-view').hidden = view !== 'repos';
  $('overview-view').hidden = view !== 'overview';
  $('accounts-view').hidden = view !== 'accounts';
  if (view === 'repos') await loadRepositories();
  else if (view === 'overview') await loadOverview();
  else await loadAccounts();
}

// ---- repositories ----

async function loadRepositories() {
  const [{ repositories }, storage] = await Promise.all([api('GET', 'repositories'), api('GET', 'storage')]);
  state.repositories = repositories;
  state.storage = storage;
  const namespaces = new Map();
  for (const ns of state.me.namespaces) namespaces.set(ns, { count: 0, mirror: false });
  for (const r of repositories) {
    const entry = namespaces.get(r.namespace) ?? { count: 0, mirror: r.mirror };
    entry.count += 1;
    namespaces.set(r.namespace, entry);
  }
  // Own and team namespaces first, then the rest (mirrors, or everything for an admin).
  const mine = new Set(state.me.namespaces);
  const order = [...namespaces.keys()].sort((a, b) => Number(!mine.has(a)) - Number(!mine.has(b)) || a.localeCompare(b));
  if (!state.namespace || !namespaces.has(state.namespace)) state.namespace = order[0] ?? null;
  $('namespaces').replaceChildren(...order.map((ns) => {
    const info = namespaces.get(ns);
    const button = el('button', { type: 'button', class: ns === state.namespace ? 'active' : '', 'aria-pressed': String(ns === state.namespace), 'data-namespace': ns, onclick: () => selectNamespace(ns) },
      el('span', { class: 'ns-name' }, ns), el('span', {}, info.mirror ? el('span', { class: 'badge mirror' }, 'cached') : '', String(info.count)));
    return el('li', {}, button);
  }));
  renderRepositories();
  if (state.repository && repositories.some((r) => r.name === state.repository)) await loadTags(state.repository, false);
  else {
    state.repository = null;
    $('tag-panel').hidden = true;
  }
}

function selectNamespace(ns) {
  state.namespace = ns;
  state.repository = null;
  state.repoFilter = '';
  state.repoPage = 0;
  $('repo-search').value = '';
  loadRepositories().catch(failed);
}

function renderRepositories() {
  const inNamespace = state.repositories.filter((r) => r.namespace === state.namespace);
  const filter = state.repoFilter.toLowerCase();
  const rows = filter ? inNamespace.filter((r) => r.name.toLowerCase().includes(filter)) : inNamespace;
  const mirror = inNamespace.some((r) => r.mirror) || (state.storage?.namespaces ?? []).some((n) => n.namespace === state.namespace && n.kind === 'mirror');
  $('repo-panel-title').textContent = state.namespace ? `Repositories in ${state.namespace}/` : 'Repositories';
  $('repo-when-head').textContent = mirror ? 'Last cached' : 'Last push';
  $('delete-namespace').hidden = !(state.me.admin && state.namespace && inNamespace.length);
  const usage = (state.storage?.namespaces ?? []).find((n) => n.namespace === state.namespace);
  const sum = inNamespace.reduce((a, r) => a + r.size, 0);
  $('ns-storage').textContent = usage
    ? `${usage.repositories} repositor${usage.repositories === 1 ? 'y' : 'ies'}, ${bytes(usage.bytes)} stored${sum > usage.bytes ? `; the repositories' sizes add up to ${bytes(sum)} because layers they share are stored once` : ''}.`
    : '';
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.repoPage = Math.min(state.repoPage, pages - 1);
  const page = rows.slice(state.repoPage * PAGE_SIZE, (state.repoPage + 1) * PAGE_SIZE);
  $('repo-table').querySelector('tbody').replaceChildren(...page.map((r) =>
    openableRow({ class: r.name === state.repository ? 'selected' : '', 'data-repository': r.name, 'aria-label': `Open ${r.name}` }, () => loadTags(r.name).catch(failed),
      el('td', {}, r.name, r.mirror ? el('span', { class: 'badge mirror inline' }, 'cached') : ''),
      el('td', { class: 'num' }, r.tags),
      el('td', { class: 'num' }, bytes(r.size)),
      el('td', { title: r.pushedAt ?? '' }, when(r.pushedAt)))));
  $('repo-empty').textContent = filter && inNamespace.length ? `No repository matches "${state.repoFilter}".` : 'No repositories here yet.';
  $('repo-empty').hidden = rows.length > 0;
  pager($('repo-pager'), state.repoPage, pages, rows.length, (p) => { state.repoPage = p; renderRepositories(); });
}

/** Previous/next buttons and "page n of m" for a list longer than a page. */
function pager(box, current, pages, total, go) {
  if (pages <= 1) return box.replaceChildren();
  box.replaceChildren(
    el('button', { type: 'button', class: 'secondary small', 'data-page': 'prev', disabled: current === 0, onclick: () => go(current - 1) }, '‹ Previous'),
    el('span', { class: 'muted', 'data-page-info': '' }, `Page ${current + 1} of ${pages} (${total})`),
    el('button', { type: 'button', class: 'secondary small', 'data-page': 'next', disabled: current >= pages - 1, onclick: () => go(current + 1) }, 'Next ›'),
  );
}

async function loadTags(name, focus = true) {
  if (state.repository !== name) {
    state.tagFilter = '';
    state.tagPage = 0;
    $('tag-search').value = '';
  }
  state.repository = name;
  renderRepositories();
  const repo = await api('GET', 'repository', { name });
  state.tags = repo.tagList;
  state.mirror = repo.mirror;
  $('tag-panel').hidden = false;
  $('tag-panel-title').textContent = `${name} — ${repo.tags} tag${repo.tags === 1 ? '' : 's'}, ${bytes(repo.size)}`;
  $('tag-when-head').textContent = repo.mirror ? 'Cached' : 'Pushed';
  $('delete-repo').hidden = repo.mirror && !state.me.admin;
  $('tag-storage-note').textContent = 'A tag\'s size counts every layer it uses; tags and images that share layers store them once, so the sizes can add up to more than the repository\'s.';
  renderTags();
  if (focus) $('tag-panel-title').focus();
}

function renderTags() {
  const name = state.repository;
  const filter = state.tagFilter.toLowerCase();
  const rows = filter ? state.tags.filter((t) => t.tag.toLowerCase().includes(filter) || t.digest.includes(filter)) : state.tags;
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.tagPage = Math.min(state.tagPage, pages - 1);
  const page = rows.slice(state.tagPage * PAGE_SIZE, (state.tagPage + 1) * PAGE_SIZE);
  const canDelete = !state.mirror || state.me.admin;
  const body = $('tag-table').querySelector('tbody');
  body.replaceChildren();
  for (const t of page) {
    const pull = `docker pull ${state.me.registryHost}/${name}:${t.tag}`;
    const actions = el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary small', title: pull, 'data-copy': t.tag, onclick: () => copy(pull) }, 'Copy pull'));
    if (canDelete) actions.append(el('button', { type: 'button', class: 'danger', 'data-delete-tag': t.tag, onclick: () => deleteTag(name, t.tag) }, 'Delete'));
    const type = el('td', {}, el('span', { class: `badge kind-${t.kind}`, 'data-kind': t.kind, title: t.artifactType ?? t.mediaType }, KIND_LABELS[t.kind] ?? t.kind));
    if (t.referrers) {
      type.append(el('button', { type: 'button', class: 'link small', 'data-referrers': t.tag, 'aria-expanded': 'false', onclick: (e) => toggleReferrers(e.currentTarget, name, t) },
        `${t.referrers} referrer${t.referrers === 1 ? '' : 's'}`));
    }
    body.append(el('tr', { 'data-tag': t.tag },
      el('td', {}, t.tag),
      type,
      el('td', { class: 'mono opt', title: t.digest }, `${t.digest.slice(0, 19)}…`),
      el('td', { class: 'num' }, bytes(t.size)),
      el('td', { class: 'opt' }, ...t.platforms.map((p) => el('span', { class: 'badge' }, p))),
      el('td', { title: t.pushedAt }, when(t.pushedAt)),
      el('td', { class: 'opt', title: t.pulledAt ?? '' }, when(t.pulledAt)),
      actions));
  }
  $('tag-empty').textContent = filter && state.tags.length ? `No tag matches "${state.tagFilter}".` : 'No tags.';
  $('tag-empty').hidden = rows.length > 0;
  pager($('tag-pager'), state.tagPage, pages, rows.length, (p) => { state.tagPage = p; renderTags(); });
}

/** Shows (or hides) the signatures, SBOMs and other artifacts that refer to a tag's image. */
async function toggleReferrers(button, name, t) {
  const row = button.closest('tr');
  const open = row.nextElementSibling?.dataset.referrersOf === t.tag;
  if (open) {
    row.nextElementSibling.remove();
    button.setAttribute('aria-expanded', 'false');
    return;
  }
  try {
    const { referrers } = await api('GET', 'referrers', { repository: name, digest: t.digest });
    const list = el('ul', { class: 'referrers' }, ...referrers.map((r) => el('li', { 'data-referrer': r.digest },
      el('span', { class: `badge kind-${r.kind}`, 'data-kind': r.kind }, KIND_LABELS[r.kind] ?? r.kind),
      el('span', { class: 'mono', title: r.digest }, `${r.digest.slice(0, 19)}…`), ' ',
      el('span', { class: 'muted' }, r.artifactType ?? r.mediaType), ' ', bytes(r.size))));
    row.after(el('tr', { class: 'referrer-row', 'data-referrers-of': t.tag }, el('td', { colspan: '8' }, el('div', { class: 'muted small' }, `Referring to ${t.tag}:`), list)));
    button.setAttribute('aria-expanded', 'true');
  } catch (err) {
    failed(err);
  }
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    show(`Copied: ${text}`);
  } catch {
    // Clipboard access needs a secure context; show the command so it can be copied by hand.
    window.prompt('Pull command', text);
  }
}

async function deleteTag(name, tag) {
  const ok = await confirmAction({ title: `Delete tag ${name}:${tag}?`, text: 'The image stays if other tags use it; garbage collection reclaims the rest.', action: 'Delete tag' });
  if (!ok) return;
  try {
    await api('DELETE', 'tag', { repository: name, tag });
    show(`Deleted ${name}:${tag}`);
    await loadRepositories();
  } catch (err) {
    failed(err);
  }
}

async function deleteRepository() {
  const name = state.repository;
  const ok = await confirmAction({ title: `Delete repository ${name}?`, text: `Every tag and image of ${name} goes; garbage collection then frees the layers nothing else uses.`, action: 'Delete repository' });
  if (!ok) return;
  try {
    await api('DELETE', 'repository', { name });
    show(`Deleted repository ${name}`);
    state.repository = null;
    await loadRepositories();
  } catch (err) {
    failed(err);
  }
}

async function deleteNamespace() {
  const ns = state.namespace;
  const count = state.repositories.filter((r) => r.namespace === ns).length;
  const ok = await confirmAction({ title: `Delete namespace ${ns}?`, text: `All ${count} repositor${count === 1 ? 'y' : 'ies'} in ${ns}/ go, with their tags and images.`, action: 'Delete namespace', typed: ns });
  if (!ok) return;
  try {
    const r = await api('DELETE', 'namespace', { name: ns });
    show(`Deleted namespace ${ns} (${r.deleted.repositories.length} repositories)`);
    state.namespace = null;
    state.repository = null;
    await loadRepositories();
  } catch (err) {
    failed(err);
  }
}

// ---- overview (admins) ----

async function loadOverview() {
  const [storage, gc, upstreams, cache, usage] = await Promise.all([
    api('GET', 'storage'), api('GET', 'gc'), api('GET', 'upstreams'), api('GET', 'cache'), api('GET', 'usage', { since: '7d' }),
  ]);
  renderStorage(storage, cache);
  renderUpstreams(upstreams.upstreams);
  renderGc(gc);
  renderCharts(usage);
}

function renderStorage(storage, cache) {
  $('stat-pushed').textContent = bytes(storage.pushedBytes);
  $('stat-mirror').textContent = bytes(storage.mirrorBytes);
  $('stat-stored').textContent = bytes(storage.storedBytes);
  $('stat-stored-sub').textContent = `${storage.blobs} blobs, each stored once`;
  $('stat-shared').textContent = bytes(storage.sharedBytes);
  $('shared-explain').textContent = 'Layers used by more than one repository count in the size of each, but are stored once: sizes add up to more than what is on disk.';
  const used = storage.cacheBytes;
  if (cache.maxBytes !== undefined) {
    const fraction = used / cache.maxBytes;
    $('stat-cache').textContent = `${bytes(used)} of ${bytes(cache.maxBytes)}`;
    $('cache-meter').hidden = false;
    $('cache-meter-fill').className = fraction > 0.9 ? 'high' : '';
    $('cache-meter-fill').dataset.fraction = String(fraction);
    setMeter($('cache-meter-fill'), fraction);
    $('stat-cache-sub').textContent = `${percent(Math.min(fraction, 9.99))} of cache.maxSize used`;
  } else {
    $('stat-cache').textContent = bytes(used);
    $('cache-meter').hidden = true;
    $('stat-cache-sub').textContent = 'no cache.maxSize: the cache is not trimmed by size';
  }
  const ev = cache.evictions;
  $('stat-evictions').textContent = `${ev.images} image${ev.images === 1 ? '' : 's'}`;
  $('stat-evictions-sub').textContent = ev.runs
    ? `${bytes(ev.bytesFreed)} freed in ${ev.runs} run${ev.runs === 1 ? '' : 's'}, last ${when(ev.lastRunAt)} (since this replica started)`
    : cache.maxBytes === undefined && cache.expireAfterMs === undefined ? 'eviction is off (no cache.maxSize or cache.expireAfter)' : 'none since this replica started';
  $('ns-table').querySelector('tbody').replaceChildren(...storage.namespaces.map((n) =>
    openableRow({ 'data-ns': n.namespace, 'aria-label': `Browse ${n.namespace}` }, () => { state.namespace = n.namespace; state.repository = null; showView('repos').catch(failed); },
      el('td', {}, n.namespace),
      el('td', {}, el('span', { class: `badge ${n.kind}` }, n.kind === 'mirror' ? 'cached (mirror)' : 'pushed')),
      el('td', { class: 'num opt' }, n.repositories),
      el('td', { class: 'num' }, bytes(n.bytes)))));
}

/** The meter's width through the CSSOM (the page's CSP forbids inline style attributes). */
function setMeter(fill, fraction) {
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
}

function renderUpstreams(list) {
  let hits = 0;
  let total = 0;
  let served = 0;
  let fetched = 0;
  $('upstream-table').querySelector('tbody').replaceChildren(...list.map((u) => {
    hits += u.hits;
    total += u.hits + u.misses;
    served += u.servedFromCacheBytes ?? 0;
    fetched += u.fetchedUpstreamBytes ?? 0;
    return el('tr', { 'data-upstream': u.prefix },
      el('td', {}, el('div', {}, u.prefix), el('div', { class: 'muted small url' }, u.url)),
      el('td', {}, el('span', { class: u.up ? 'up' : 'down' }, u.up ? 'up' : 'down')),
      el('td', { class: 'num', title: u.lastLatencyMs === undefined ? '' : `last ${u.lastLatencyMs} ms` }, u.latencyMs === undefined ? '–' : `${u.latencyMs} ms`),
      el('td', { class: 'num' }, percent(u.hitRate)),
      el('td', { class: 'last-error' }, u.lastError ? el('span', { title: u.lastError.at }, `${u.lastError.message} (${when(u.lastError.at)})`) : el('span', { class: 'muted' }, 'none')));
  }));
  $('upstream-empty').hidden = list.length > 0;
  $('stat-hit').textContent = total ? percent(hits / total) : '–';
  $('stat-saved').textContent = bytes(served);
  $('stat-saved-sub').textContent = `served from the cache; ${bytes(fetched)} fetched upstream (since this replica started)`;
}

function renderCharts(usage) {
  const samples = usage.samples;
  const every = duration(Math.round(usage.intervalMs / 1000));
  const empty = samples.length < 2 ? `Not enough samples yet: one is taken every ${every} (usage.sampleInterval).` : '';
  for (const [id, draw] of [['chart-traffic', drawTraffic], ['chart-storage', drawStorage]]) {
    $(`${id}-empty`).textContent = empty;
    $(`${id}-empty`).hidden = !empty;
    $(id).hidden = Boolean(empty);
    if (!empty) draw($(id), samples);
  }
}

function renderGc(gc) {
  const rows = [
    ['Schedule', `every ${duration(Math.round(gc.intervalMs / 1000))}${gc.keepUntagged ? ', keeps untagged' : ''}`],
    ['Next run', gc.nextRunAt ? `${when(gc.nextRunAt)} (${new Date(gc.nextRunAt).toLocaleString()})` : 'not scheduled'],
    ['Last run', gc.lastRun ? `${when(gc.lastRun.finishedAt)}: freed ${bytes(gc.lastRun.blobs.bytesFreed)} (${gc.lastRun.blobs.deleted} blobs, ${gc.lastRun.manifests.deleted} manifests) in ${gc.lastRun.durationMs} ms` : 'never'],
  ];
  if (gc.running) rows.push(['Now', 'running…']);
  if (gc.lastError) rows.push(['Last error', gc.lastError.message]);
  $('gc-status').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-gc': k }, v)]));
  // `history` (newest first) where the server keeps one; otherwise the last runs it remembers.
  const history = Array.isArray(gc.history) ? gc.history : [gc.lastRun, gc.lastDryRun].filter(Boolean).sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
  $('gc-history').querySelector('tbody').replaceChildren(...history.slice(0, 20).map((r) => el('tr', { 'data-gc-run': r.finishedAt },
    el('td', { title: r.finishedAt }, when(r.finishedAt)),
    el('td', {}, r.dryRun ? 'dry run' : 'collected'),
    el('td', { class: 'num' }, bytes(r.blobs?.bytesFreed)),
    el('td', { class: 'num' }, r.blobs?.deleted ?? '–'),
    el('td', { class: 'num' }, r.manifests?.deleted ?? '–'),
    el('td', { class: 'num opt' }, `${r.durationMs} ms`))));
  $('gc-history-empty').hidden = history.length > 0;
}

async function runGc(dryRun) {
  if (!dryRun) {
    const ok = await confirmAction({ title: 'Run garbage collection now?', text: 'Blobs and untagged images nothing references are deleted for good (those newer than gc.grace are kept). Pushes and pulls go on meanwhile.', action: 'Run GC' });
    if (!ok) return;
  }
  for (const id of ['gc-run', 'gc-dry']) $(id).disabled = true;
  $('gc-result').textContent = dryRun ? 'Dry run…' : 'Collecting…';
  try {
    const r = await api('POST', 'gc', dryRun ? { dryRun: 'true' } : {});
    await loadOverview();
    $('gc-result').textContent = `${dryRun ? 'Would free' : 'Freed'} ${bytes(r.blobs.bytesFreed)}: ${r.blobs.deleted} blobs, ${r.manifests.deleted} manifests, ${r.uploadsRemoved} abandoned uploads (${r.durationMs} ms).`;
  } catch (err) {
    $('gc-result').textContent = '';
    failed(err);
  } finally {
    for (const id of ['gc-run', 'gc-dry']) $(id).disabled = false;
  }
}

// ---- users and teams (admins, read-only) ----

async function loadAccounts() {
  const [{ users }, { teams }] = await Promise.all([api('GET', 'users'), api('GET', 'teams')]);
  $('users-table').querySelector('tbody').replaceChildren(...users.map((u) => el('tr', { 'data-user': u.name },
    el('td', {}, u.name), el('td', {}, u.admin ? el('span', { class: 'badge pushed' }, 'admin') : 'user'), el('td', {}, u.teams.join(', ') || '–'))));
  $('users-empty').hidden = users.length > 0;
  $('teams-table').querySelector('tbody').replaceChildren(...teams.map((t) => el('tr', { 'data-team': t.name },
    el('td', {}, t.name), el('td', {}, t.members.join(', ') || '–'))));
  $('teams-empty').hidden = teams.length > 0;
}

// ---- wiring ----

$('login-form').addEventListener('submit', login);
$('logout').addEventListener('click', () => logout());
$('close-tags').addEventListener('click', () => { state.repository = null; $('tag-panel').hidden = true; renderRepositories(); });
$('delete-repo').addEventListener('click', () => deleteRepository());
$('delete-namespace').addEventListener('click', () => deleteNamespace());
$('repo-search').addEventListener('input', (e) => { state.repoFilter = e.target.value; state.repoPage = 0; renderRepositories(); });
$('tag-search').addEventListener('input', (e) => { state.tagFilter = e.target.value; state.tagPage = 0; renderTags(); });
$('confirm-input').addEventListener('input', (e) => { $('confirm-ok').disabled = e.target.value !== $('confirm-expected').textContent; });
for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showView(b.dataset.view).catch(failed));
$('gc-run').addEventListener('click', () => runGc(false));
$('gc-dry').addEventListener('click', () => runGc(true));
let resizeTimer;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(resizeCharts, 100); });
if (sessionStorage.getItem(CRED_KEY)) start().catch(() => logout());
