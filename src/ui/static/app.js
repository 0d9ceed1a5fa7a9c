// The layover web UI: plain browser JavaScript, served as-is (no build step, nothing from a CDN).
// It only calls /api/v1 with the user's registry credentials (HTTP Basic, kept in sessionStorage
// for this tab), so every view and action is subject to the registry's own access rules.
// Everything shown is inserted as text, never as HTML.

const CRED_KEY = 'layover.credentials';
const $ = (id) => document.getElementById(id);

const state = { me: null, namespace: null, repository: null, repositories: [] };

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

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const ago = s < 0 ? `in ${duration(-s)}` : `${duration(s)} ago`;
  return ago;
}

function duration(s) {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'title') node.title = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
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
  for (const id of ['tabs', 'who', 'repos-view', 'admin-view']) $(id).hidden = true;
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
  $('admin-tab').hidden = !state.me.admin;
  await showView('repos');
}

async function showView(view) {
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.view === view);
  $('repos-view').hidden = view !== 'repos';
  $('admin-view').hidden = view !== 'admin';
  if (view === 'repos') await loadRepositories();
  else await loadAdmin();
}

// ---- developer view ----

async function loadRepositories() {
  const { repositories } = await api('GET', 'repositories');
  state.repositories = repositories;
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
  const list = $('namespaces');
  list.replaceChildren(...order.map((ns) => {
    const info = namespaces.get(ns);
    const button = el('button', { type: 'button', class: ns === state.namespace ? 'active' : '', 'data-namespace': ns, onclick: () => { state.namespace = ns; state.repository = null; loadRepositories().catch(failed); } },
      el('span', {}, ns), el('span', {}, info.mirror ? el('span', { class: 'badge mirror' }, 'mirror') : '', String(info.count)));
    return el('li', {}, button);
  }));
  renderRepositories();
  if (state.repository) await loadTags(state.repository);
  else $('tag-panel').hidden = true;
}

function renderRepositories() {
  const rows = state.repositories.filter((r) => r.namespace === state.namespace);
  $('repo-panel-title').textContent = state.namespace ? `Repositories in ${state.namespace}/` : 'Repositories';
  $('repo-table').querySelector('tbody').replaceChildren(...rows.map((r) =>
    el('tr', { class: `clickable${r.name === state.repository ? ' selected' : ''}`, 'data-repository': r.name, onclick: () => loadTags(r.name).catch(failed) },
      el('td', {}, r.name), el('td', {}, r.tags), el('td', { class: 'num' }, bytes(r.size)), el('td', {}, when(r.pushedAt)))));
  $('repo-empty').hidden = rows.length > 0;
}

async function loadTags(name) {
  state.repository = name;
  renderRepositories();
  const repo = await api('GET', 'repository', { name });
  $('tag-panel').hidden = false;
  $('tag-panel-title').textContent = `${name} — ${repo.tags} tag${repo.tags === 1 ? '' : 's'}, ${bytes(repo.size)}`;
  const canDelete = !repo.mirror || state.me.admin;
  $('tag-table').querySelector('tbody').replaceChildren(...repo.tagList.map((t) => {
    const pull = `docker pull ${state.me.registryHost}/${name}:${t.tag}`;
    const actions = el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary small', title: pull, onclick: () => copy(pull) }, 'Copy pull'),
    );
    if (canDelete) actions.append(el('button', { type: 'button', class: 'danger', 'data-delete-tag': t.tag, onclick: () => deleteTag(name, t.tag) }, 'Delete'));
    return el('tr', { 'data-tag': t.tag },
      el('td', {}, t.tag),
      el('td', { class: 'mono', title: t.digest }, `${t.digest.slice(0, 19)}…`),
      el('td', { class: 'num' }, bytes(t.size)),
      el('td', {}, ...t.platforms.map((p) => el('span', { class: 'badge' }, p))),
      el('td', { title: t.pushedAt }, when(t.pushedAt)),
      el('td', { title: t.pulledAt ?? '' }, when(t.pulledAt)),
      actions);
  }));
  $('tag-empty').hidden = repo.tagList.length > 0;
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
  if (!window.confirm(`Delete tag ${name}:${tag}? The image stays if other tags use it; garbage collection reclaims the rest.`)) return;
  try {
    await api('DELETE', 'tag', { repository: name, tag });
    show(`Deleted ${name}:${tag}`);
    await loadRepositories();
  } catch (err) {
    failed(err);
  }
}

// ---- admin view ----

async function loadAdmin() {
  const [storage, gc, upstreams] = await Promise.all([api('GET', 'storage'), api('GET', 'gc'), api('GET', 'upstreams')]);
  $('stat-pushed').textContent = bytes(storage.pushedBytes);
  $('stat-mirror').textContent = bytes(storage.mirrorBytes);
  $('stat-stored').textContent = `${bytes(storage.storedBytes)}`;
  $('ns-table').querySelector('tbody').replaceChildren(...storage.namespaces.map((n) =>
    el('tr', {}, el('td', {}, n.namespace), el('td', {}, el('span', { class: `badge ${n.kind}` }, n.kind)), el('td', { class: 'num' }, n.repositories), el('td', { class: 'num' }, bytes(n.bytes)))));
  renderGc(gc);
  let hits = 0;
  let total = 0;
  $('upstream-table').querySelector('tbody').replaceChildren(...upstreams.upstreams.map((u) => {
    hits += u.hits;
    total += u.hits + u.misses;
    return el('tr', {}, el('td', { title: u.url }, u.prefix), el('td', { class: u.up ? 'up' : 'down' }, u.up ? 'up' : 'down'),
      el('td', { class: 'num' }, u.hitRate === undefined ? '–' : `${(u.hitRate * 100).toFixed(1)} %`));
  }));
  $('upstream-empty').hidden = upstreams.upstreams.length > 0;
  $('stat-hit').textContent = total ? `${((hits / total) * 100).toFixed(1)} %` : '–';
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
}

async function runGc(dryRun) {
  for (const id of ['gc-run', 'gc-dry']) $(id).disabled = true;
  $('gc-result').textContent = dryRun ? 'Dry run…' : 'Collecting…';
  try {
    const r = await api('POST', 'gc', dryRun ? { dryRun: 'true' } : {});
    await loadAdmin();
    $('gc-result').textContent = `${dryRun ? 'Would free' : 'Freed'} ${bytes(r.blobs.bytesFreed)}: ${r.blobs.deleted} blobs, ${r.manifests.deleted} manifests, ${r.uploadsRemoved} abandoned uploads (${r.durationMs} ms).`;
  } catch (err) {
    $('gc-result').textContent = '';
    failed(err);
  } finally {
    for (const id of ['gc-run', 'gc-dry']) $(id).disabled = false;
  }
}

// ---- wiring ----

$('login-form').addEventListener('submit', login);
$('logout').addEventListener('click', () => logout());
$('close-tags').addEventListener('click', () => { state.repository = null; $('tag-panel').hidden = true; renderRepositories(); });
for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showView(b.dataset.view).catch(failed));
$('gc-run').addEventListener('click', () => runGc(false));
$('gc-dry').addEventListener('click', () => runGc(true));
if (sessionStorage.getItem(CRED_KEY)) start().catch(() => logout());
