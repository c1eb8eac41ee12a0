/* global document, window, location, fetch, EventSource, uPlot, setTimeout, clearTimeout */
// The dashboard page. Everything comes from the gateway's /api: the scenario rows once, then one
// summary and one batch of actions a second over server-sent events, and the history every few
// seconds. The DOM is built with textContent only: device ids and payloads come from devices.
import { Charts, count, duration } from './charts.js';

/** Steps (seconds) summed into one bar of a rate chart. */
const BUCKET_STEPS = 10;
const MAX_ACTIONS_SHOWN = 100;
/** Actions the page keeps to filter: as many as the gateway keeps. */
const MAX_ACTIONS_KEPT = 500;
/** How often the history is fetched again: a 5 s point, or a minute point for the day. */
const HISTORY_EVERY_MS = { '15m': 5_000, '1h': 5_000, '24h': 30_000 };
/** The numeric cells of a scenario row, in column order. */
const ROW_NUMBERS = [
  'perMinute',
  'suppressedPerMinute',
  'evaluations',
  'detections',
  'sent',
  'suppressed',
  'errors',
];
const ROLE_NAMES = {
  event: 'event',
  absent: 'missing event',
  condition: 'condition',
  window: 'window',
  timer: 'timer',
  action: 'action',
  emit: 'business event',
};

const state = {
  stepMs: 1000,
  slots: 600,
  endAt: 0,
  /** Scenario id → detections per step, oldest first. */
  series: new Map(),
  /** Scenario id → its table row, cells and chart. */
  rows: new Map(),
  lastSeq: -1,
  /** The latest actions, newest first, at most MAX_ACTIONS_KEPT. */
  entries: [],
  /** Reasons met so far, for the filter's choices. */
  reasonsSeen: new Set(),
  range: '1h',
  historyTimer: undefined,
  charts: undefined,
  selected: undefined,
  lastSummary: undefined,
  /** The device whose page is open. */
  device: undefined,
  deviceTimer: undefined,
};

const byId = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

async function getJson(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error?.message ?? `${res.status} ${res.statusText}`);
  return body;
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

/** A date and time in the browser's time zone, with the zone's name. */
const dateTime = new Intl.DateTimeFormat([], {
  dateStyle: 'medium',
  timeStyle: 'long',
  hour12: false,
});

function ago(ms, now) {
  if (ms === null || ms === undefined) return '–';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// ---- scenario rows and their rate charts

function buildRows(scenarios) {
  const tbody = byId('scenarios').tBodies[0];
  for (const row of state.rows.values()) row.chart?.destroy();
  state.rows.clear();
  tbody.replaceChildren();
  for (const s of scenarios) {
    const tr = el('tr');
    tr.dataset.scenario = s.id;
    const name = el('td');
    const head = el('div');
    const link = el('a', 'scenario-id', s.id);
    link.href = `#scenario/${encodeURIComponent(s.id)}`;
    link.title = 'show the definition';
    head.append(link, el('span', 'badge', s.category), el('span', 'badge', `p${s.priority}`));
    name.append(head, el('div', 'scenario-desc', s.description));
    const chartCell = el('td');
    const chartBox = el('div', 'chart');
    chartCell.append(chartBox);
    const cells = {};
    tr.append(name, chartCell);
    for (const key of ROW_NUMBERS) {
      cells[key] = el('td', 'num', '0');
      tr.append(cells[key]);
    }
    cells.lastFiredAt = el('td', 'muted', '–');
    tr.append(cells.lastFiredAt);
    tr.addEventListener('click', (e) => {
      if (e.target instanceof window.HTMLAnchorElement) return;
      location.hash = `#scenario/${encodeURIComponent(s.id)}`;
    });
    tbody.append(tr);
    state.rows.set(s.id, { tr, chartBox, cells, chart: undefined });
  }
  for (const row of state.rows.values()) row.chart = makeChart(row.chartBox);
  updateRows(scenarios, Date.now());
  drawCharts();
}

function makeChart(box) {
  // The page still works without its charts if uPlot failed to load.
  if (typeof uPlot === 'undefined') return undefined;
  return new uPlot(
    {
      width: box.clientWidth || 240,
      height: 40,
      legend: { show: false },
      cursor: { show: false },
      select: { show: false },
      scales: {
        // Half a bar of room at each end, so that the first and the latest bar are drawn whole.
        x: { time: true, range: (_u, min, max) => [min - halfBar(), max + halfBar()] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max)] },
      },
      axes: [{ show: false }, { show: false }],
      series: [
        {},
        {
          stroke: '#2f6fdf',
          fill: 'rgba(47, 111, 223, 0.3)',
          width: 1,
          points: { show: false },
          paths: uPlot.paths.bars({ size: [0.85, 100] }),
        },
      ],
    },
    [[], []],
    box,
  );
}

function halfBar() {
  return (BUCKET_STEPS * state.stepMs) / 2000;
}

/** Per-step detections → bars of BUCKET_STEPS steps spanning the whole history window, ending now. */
function chartData(series) {
  const buckets = Math.floor(state.slots / BUCKET_STEPS);
  const span = buckets * BUCKET_STEPS;
  const padded =
    series.length >= span ? series.slice(-span) : [...new Array(span - series.length).fill(0), ...series];
  const xs = [];
  const ys = [];
  for (let b = 0; b < buckets; b++) {
    let sum = 0;
    for (let i = 0; i < BUCKET_STEPS; i++) sum += padded[b * BUCKET_STEPS + i] ?? 0;
    xs.push((state.endAt - (span - (b + 1) * BUCKET_STEPS) * state.stepMs) / 1000);
    ys.push(sum);
  }
  return [xs, ys];
}

function drawCharts() {
  for (const [id, row] of state.rows) row.chart?.setData(chartData(state.series.get(id) ?? []));
}

function updateRows(scenarios, now) {
  for (const s of scenarios) {
    const row = state.rows.get(s.id);
    if (!row) continue;
    for (const key of ROW_NUMBERS) row.cells[key].textContent = count(s[key]);
    row.cells.errors.classList.toggle('bad', s.errors > 0);
    row.cells.lastFiredAt.textContent = ago(s.lastFiredAt, now);
    row.cells.lastFiredAt.title = s.lastFiredAt ? clockTime(s.lastFiredAt) : '';
  }
}

// ---- status, reasons and the action stream

function updateStatus(s) {
  byId('gateway').textContent = s.gateway;
  const uplink = byId('st-uplink');
  uplink.textContent = s.upstream;
  uplink.className = `pill ${s.upstream}`;
  byId('st-outbox').textContent = `${count(s.outbox.depth)} actions (${bytes(s.outbox.bytes)})`;
  byId('st-timers').textContent = count(s.pendingTimers);
  updatePresence(s.presence);
}

function updatePresence(p) {
  byId('pr-connected').textContent = count(p.connected);
  byId('pr-away').textContent = count(p.away);
  byId('pr-silent').textContent = count(p.silent);
  byId('pr-never').textContent = p.neverSeenAt === null ? '…' : count(p.neverSeen);
  byId('pr-total').textContent = `${count(p.total)} in all`;
  const deadline = duration(p.silentAfterMs);
  byId('pr-away-means').textContent = `not connected, heard from within the last ${deadline}`;
  byId('pr-silent-means').textContent = `heard from since start, not connected, silent for over ${deadline}`;
  byId('pr-never-means').textContent =
    p.neverSeenAt === null
      ? 'has a profile, not heard from since start: being counted'
      : `has a profile, not heard from since start; counted every ${duration(p.neverSeenEveryMs)}, last at ${clockTime(p.neverSeenAt)}`;
}

// ---- the rules in force

function updateRules(r, now) {
  if (!r) return;
  byId('ru-version').textContent =
    r.source === 'bundle' ? `bundle version ${r.version}` : 'local rules directory (no bundle)';
  const id = byId('ru-id');
  id.textContent = r.hash ? r.hash.slice(0, 16) : '–';
  id.title = r.hash ? `SHA-256 ${r.hash}` : '';
  byId('ru-signer').textContent = r.signer
    ? `key ${r.signer}${r.createdAt ? `, made ${dateTime.format(new Date(r.createdAt))}` : ''}`
    : r.source === 'bundle'
      ? '…'
      : 'not signed';
  byId('ru-since').textContent = `${dateTime.format(new Date(r.since))} (${ago(r.since, now)})`;
  const last = byId('ru-last');
  const c = r.lastChange;
  if (!c) {
    last.textContent = 'none since the gateway started';
    last.className = 'muted';
    return;
  }
  const what = c.version === null ? c.source : `version ${c.version} (${c.source})`;
  const result = c.status === 'applied' ? 'applied' : `rejected: ${c.reason}`;
  last.textContent = `${what} ${result} at ${clockTime(Date.parse(c.time))}: ${c.detail}`;
  last.className = c.status === 'applied' ? 'ok' : 'bad';
}

// ---- shadow rules: what a shadow bundle would have done differently (GET /api/shadow)

const SHADOW_EVERY_MS = 5_000;
const SHADOW_COLUMNS = ['live', 'shadow', 'same', 'newly', 'noLonger', 'changed'];

function loadShadow() {
  getJson('/api/shadow').then(renderShadow, () => undefined);
  setTimeout(loadShadow, SHADOW_EVERY_MS);
}

function renderShadow(r) {
  const section = byId('shadow');
  section.hidden = r.status !== 'running';
  if (section.hidden) return;
  const lost = r.dropped > 0 ? `, ${r.dropped} dropped (the shadow fell behind)` : '';
  const live = r.live === 0 ? 'the local rules directory' : `version ${r.live}`;
  byId('sh-summary').textContent =
    `bundle version ${r.version} beside ${live}, since ${dateTime.format(new Date(r.since))}: ` +
    `${r.inputs} inputs${lost}, ${r.errors} errors`;
  const body = byId('shadow-diff').tBodies[0];
  body.replaceChildren();
  for (const [id, d] of Object.entries(r.scenarios)) {
    const tr = el('tr');
    tr.append(el('td', '', id));
    for (const k of SHADOW_COLUMNS) {
      const differs = (k === 'newly' || k === 'noLonger' || k === 'changed') && d[k] > 0;
      tr.append(el('td', differs ? 'num bad' : 'num', String(d[k])));
    }
    body.append(tr);
  }
  if (body.rows.length === 0) {
    const tr = el('tr');
    const td = el('td', 'muted', 'no actions decided on either side yet');
    td.colSpan = SHADOW_COLUMNS.length + 1;
    tr.append(td);
    body.append(tr);
  }
}

function updateReasons(reasons) {
  const dl = byId('reasons');
  const entries = Object.entries(reasons).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) {
    dl.replaceChildren(el('dt', 'muted', 'none yet'), el('dd'));
    return;
  }
  dl.replaceChildren(...entries.flatMap(([reason, n]) => [el('dt', '', reason), el('dd', '', n)]));
}

function renderAction(entry) {
  const a = entry.action;
  const li = el('li');
  li.dataset.id = a.id;
  li.dataset.seq = String(entry.seq);
  li.title = JSON.stringify(a.payload);
  const verdict = el(
    'span',
    `verdict ${entry.verdict}`,
    entry.reason ? `${entry.verdict}: ${entry.reason}` : entry.verdict,
  );
  li.append(el('span', 'time', clockTime(a.decidedAt)), el('b', 'what', a.scenario), verdict, who(a));
  return li;
}

/** The device an action is for, linked to its page, and the action. */
function who(a) {
  const span = el('span', 'who');
  const link = el('a', 'device-link', a.actor);
  link.href = deviceHash(a.actor);
  link.title = 'open the device';
  // One tab stop for the whole list: the arrow keys move between its devices (see listKeys).
  link.tabIndex = -1;
  span.append(link, ` → ${a.action}`);
  return span;
}

/** Up and down move the focus between the devices of a list of actions; Enter follows the link. */
function listKeys(e) {
  if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
  const links = [...e.currentTarget.querySelectorAll('a.device-link')];
  const i = links.indexOf(document.activeElement);
  const next = e.key === 'ArrowDown' ? i + 1 : i - 1;
  if (next >= links.length || (i < 0 && e.key === 'ArrowUp')) return;
  e.preventDefault();
  (next < 0 ? e.currentTarget : links[next]).focus();
}

/** What became of an action, as the filter and the charts name it. */
function statusOf(entry) {
  return entry.verdict === 'dropped' && entry.reason === 'ttl' ? 'expired' : entry.verdict;
}

/** New entries (oldest first), after those the page has. */
function addActions(entries) {
  const fresh = [];
  for (const entry of entries) {
    if (entry.seq <= state.lastSeq) continue;
    state.lastSeq = entry.seq;
    fresh.push(entry);
    if (entry.reason) state.reasonsSeen.add(entry.reason);
  }
  if (fresh.length === 0) return;
  state.entries = [...fresh.reverse(), ...state.entries].slice(0, MAX_ACTIONS_KEPT);
  renderActions();
}

function filters() {
  const form = byId('action-filters');
  return {
    scenario: form.elements.scenario.value,
    status: form.elements.status.value,
    reason: form.elements.reason.value,
    actor: form.elements.actor.value.trim(),
    showSuppressed: form.elements.showSuppressed.checked,
  };
}

/** The kept actions that pass the filters; suppressed ones are folded into counts unless shown or asked for. */
function renderActions() {
  const f = filters();
  const shown = [];
  const folded = new Map();
  for (const entry of state.entries) {
    const status = statusOf(entry);
    const a = entry.action;
    if (f.scenario && a.scenario !== f.scenario) continue;
    if (f.status && status !== f.status) continue;
    if (f.reason && entry.reason !== f.reason) continue;
    if (f.actor && a.actor !== f.actor) continue;
    if (status === 'suppressed' && !f.showSuppressed && f.status !== 'suppressed') {
      folded.set(entry.reason, (folded.get(entry.reason) ?? 0) + 1);
      continue;
    }
    if (shown.length < MAX_ACTIONS_SHOWN) shown.push(renderAction(entry));
  }
  const list = byId('actions');
  // The list is drawn again every second: the device focused in it stays focused.
  const focusedSeq = list.contains(document.activeElement)
    ? document.activeElement.closest('li')?.dataset.seq
    : undefined;
  list.replaceChildren(...shown);
  if (focusedSeq !== undefined)
    (list.querySelector(`li[data-seq="${focusedSeq}"] a.device-link`) ?? list).focus();
  const n = [...folded.values()].reduce((a, b) => a + b, 0);
  byId('actions-folded').textContent =
    n === 0
      ? shown.length === 0
        ? 'no actions match'
        : ''
      : `${n} suppressed hidden (${[...folded].map(([r, k]) => `${r} ${k}`).join(', ')}) of the latest ${state.entries.length}`;
  fillChoices();
}

/** The filters' choices: the scenarios in force and the reasons met. */
function fillChoices() {
  const form = byId('action-filters');
  setChoices(form.elements.scenario, [...state.rows.keys()]);
  setChoices(form.elements.reason, [...state.reasonsSeen].sort());
}

function setChoices(select, values) {
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.join('\n') === values.join('\n')) return;
  const current = select.value;
  select.replaceChildren(el('option', '', 'all'), ...values.map((v) => el('option', '', v)));
  select.options[0].value = '';
  select.value = values.includes(current) ? current : '';
}

function applySummary(s, newStep) {
  state.lastSummary = s;
  state.endAt = s.at;
  if (newStep) {
    for (const [id, n] of Object.entries(s.step)) {
      const series = state.series.get(id) ?? [];
      series.push(n);
      if (series.length > state.slots) series.splice(0, series.length - state.slots);
      state.series.set(id, series);
    }
  }
  const ids = s.scenarios.map((x) => x.id).join('\n');
  if (ids !== [...state.rows.keys()].join('\n')) buildRows(s.scenarios);
  updateStatus(s);
  updateRows(s.scenarios, s.at);
  updateReasons(s.reasons);
  updateRules(s.rules, s.at);
  drawCharts();
}

function connect() {
  const live = byId('live');
  const source = new EventSource('/api/live');
  source.addEventListener('open', () => {
    live.textContent = 'live';
    live.classList.add('on');
  });
  source.addEventListener('error', () => {
    live.textContent = 'reconnecting…';
    live.classList.remove('on');
  });
  source.addEventListener('hello', (e) => {
    const hello = JSON.parse(e.data);
    // A new stream may come from a restarted gateway, whose sequence starts again: start afresh.
    state.lastSeq = -1;
    state.entries = [];
    state.stepMs = hello.history.stepMs;
    state.series = new Map(Object.entries(hello.history.matches));
    state.slots = Math.max(state.slots, ...[...state.series.values()].map((v) => v.length));
    addActions(hello.actions);
    applySummary(hello.summary, false);
    // The page starts from as many actions as the gateway keeps, so that the filters have them to sift.
    getJson(`/api/actions?limit=${MAX_ACTIONS_KEPT}`).then(
      ({ actions }) => {
        const have = new Set(state.entries.map((e) => e.seq));
        const more = actions.filter((a) => !have.has(a.seq));
        state.entries = [...state.entries, ...more].sort((a, b) => b.seq - a.seq).slice(0, MAX_ACTIONS_KEPT);
        for (const e of more) {
          if (e.reason) state.reasonsSeen.add(e.reason);
          state.lastSeq = Math.max(state.lastSeq, e.seq);
        }
        renderActions();
      },
      () => undefined,
    );
  });
  source.addEventListener('actions', (e) => addActions(JSON.parse(e.data)));
  source.addEventListener('summary', (e) => applySummary(JSON.parse(e.data), true));
}

// ---- scenario detail: its definition as a diagram

function renderDiagram(diagram) {
  const box = byId('detail-diagram');
  box.replaceChildren();
  diagram.flow.forEach((b, i) => {
    const step = el('div', 'step');
    if (i > 0) step.append(el('div', 'arrow', b.arrow ?? ''));
    const node = el('div', `box ${b.role}`);
    node.dataset.role = b.role;
    node.append(el('div', 'role', ROLE_NAMES[b.role] ?? b.role), el('div', 'title', b.title));
    for (const line of b.lines) node.append(el('div', 'line', line));
    step.append(node);
    box.append(step);
  });
}

async function showScenario(id) {
  const d = await getJson(`/api/scenarios/${encodeURIComponent(id)}`);
  byId('detail-title').textContent = d.id;
  byId('detail-description').textContent = d.description;
  byId('detail-summary').textContent = d.diagram.summary;
  renderDiagram(d.diagram);
  const meta = [
    ['kind', d.kind],
    ['state kept for', d.diagram.per],
    ['priority · category', `${d.priority} · ${d.category}`],
    ['action', d.action ? `${d.action} → ${d.to.join(', ')}` : 'none (emits only)'],
    ['holding state for', `${d.groups} group${d.groups === 1 ? '' : 's'}`],
    ['last fired', d.lastFiredAt ? clockTime(d.lastFiredAt) : 'not yet'],
    ['defined in', `${d.file}:${d.line}`],
  ];
  if (d.diagram.params.length > 0)
    meta.splice(2, 0, ['parameters', d.diagram.params.map((p) => `${p.name} = ${p.value}`).join(', ')]);
  byId('detail-meta').replaceChildren(...meta.flatMap(([k, v]) => [el('dt', '', k), el('dd', '', v)]));
  byId('detail').hidden = false;
  for (const [rowId, row] of state.rows) row.tr.classList.toggle('selected', rowId === id);
}

function hideScenario() {
  byId('detail').hidden = true;
  for (const row of state.rows.values()) row.tr.classList.remove('selected');
}

function route() {
  const device = /^#device\/(.+)$/.exec(location.hash);
  if (device) {
    hideScenario();
    showDevice(decodeURIComponent(device[1]), true);
    return;
  }
  hideDevice();
  const m = /^#scenario\/(.+)$/.exec(location.hash);
  if (!m) {
    hideScenario();
    return;
  }
  showScenario(decodeURIComponent(m[1])).catch((err) => {
    byId('detail-title').textContent = 'scenario not found';
    byId('detail-summary').textContent = err.message;
    byId('detail-diagram').replaceChildren();
    byId('detail-meta').replaceChildren();
    byId('detail').hidden = false;
  });
}

// ---- a device's page

/** How often an open device page is read again. */
const DEVICE_EVERY_MS = 5_000;
const PRESENCE_MEANS = {
  connected: "connected to the gateway's broker now",
  away: 'not connected, heard from within the silence deadline',
  silent: 'heard from since start, not within the silence deadline',
  'never-seen': 'not heard from since the gateway started',
};

function deviceHash(id) {
  return `#device/${encodeURIComponent(id)}`;
}

/** GETs a device's `part` (`overview`, `explain`), or null when the gateway does not know the device. */
async function devicePartOf(id, part) {
  const res = await fetch(`/api/devices/${encodeURIComponent(id)}/${part}`, {
    headers: { accept: 'application/json' },
  });
  if (res.status === 404) return null;
  const body = await res.json();
  if (!res.ok) throw new Error(body.error?.message ?? `${res.status} ${res.statusText}`);
  return body;
}

/** The overview of device `id` with its explanation (`explain`), or null when the gateway does not know it. */
async function deviceOverview(id) {
  const overview = await devicePartOf(id, 'overview');
  return overview && { ...overview, explain: await devicePartOf(id, 'explain') };
}

function showDevice(id, opened) {
  clearTimeout(state.deviceTimer);
  state.device = id;
  deviceOverview(id).then(
    (d) => {
      if (state.device !== id) return;
      if (d) renderDevice(d);
      else renderUnknownDevice(id);
      byId('device-page').hidden = false;
      if (opened) byId('device-title').focus();
      if (d) state.deviceTimer = setTimeout(() => showDevice(id, false), DEVICE_EVERY_MS);
    },
    (err) => {
      if (state.device !== id) return;
      byId('device-title').textContent = id;
      byId('device-presence').textContent = `cannot read the device: ${err.message}`;
      byId('device-body').replaceChildren();
      byId('device-page').hidden = false;
    },
  );
}

function hideDevice() {
  clearTimeout(state.deviceTimer);
  state.device = undefined;
  byId('device-page').hidden = true;
}

function renderUnknownDevice(id) {
  byId('device-title').textContent = id;
  const p = byId('device-presence');
  p.className = 'summary not-known';
  p.textContent = 'not known: no profile, not seen since the gateway started, no decisions kept';
  byId('device-body').replaceChildren();
}

function renderDevice(d) {
  const now = state.lastSummary?.at ?? Date.now();
  byId('device-title').textContent = d.id;
  const p = byId('device-presence');
  p.className = `summary presence-state ${d.presence}`;
  const seen = d.lastSeenAt ? `; last heard from ${clockTime(d.lastSeenAt)} (${ago(d.lastSeenAt, now)})` : '';
  p.textContent = `${d.presence.replace('-', ' ')}: ${PRESENCE_MEANS[d.presence]}${seen}`;
  p.title = `silent after ${duration(d.silentAfterMs)}`;
  byId('device-body').replaceChildren(
    ...devicePart('Profile', profileList(d.profile), 'device-profile'),
    ...devicePart('Last events', eventList(d), 'device-events'),
    ...devicePart('Recent decisions', decisionList(d), 'device-decisions'),
    ...devicePart('Where it stands', standingList(d), 'device-standing'),
  );
}

function devicePart(title, body, id) {
  const h = el('h3', '', title);
  h.id = `${id}-title`;
  body.id = id;
  body.setAttribute('aria-labelledby', h.id);
  return [h, body];
}

function metaList(rows) {
  const dl = el('dl', 'meta');
  dl.append(...rows.flatMap(([k, v]) => [el('dt', '', k), el('dd', '', v)]));
  return dl;
}

/** The profile as stored, without any field named like a secret (the gateway leaves those out). */
function profileList(profile) {
  if (!profile) return el('p', 'muted', 'no profile');
  const rows = Object.entries(profile).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
  return rows.length === 0 ? el('p', 'muted', 'an empty profile') : metaList(rows);
}

function eventList(d) {
  if (d.events.length === 0)
    return el('p', 'muted', `none kept (the last ${d.eventsKept.perDevice} of recently active devices are)`);
  const ol = el('ol', 'device-events');
  for (const e of d.events) {
    const li = el('li');
    const fields = Object.entries(e.data).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
    if (e.more > 0) fields.push(`+${e.more} more`);
    li.append(
      el('span', 'time', clockTime(e.at)),
      el('b', '', e.source === 'broker' ? `${e.type} (broker)` : e.type),
      el('span', 'data', fields.join(', ')),
    );
    ol.append(li);
  }
  return ol;
}

function decisionList(d) {
  if (d.decisions.length === 0)
    return el('p', 'muted', `none among the latest ${d.decisionsAmong} decisions of the gateway`);
  const ol = el('ol', 'actions');
  ol.append(...d.decisions.map(renderAction));
  return ol;
}

/** Every scenario as the gateway explains it: where the device stands, and its latest decisions with their reasons. */
function standingList(d) {
  const scenarios = d.explain?.scenarios ?? [];
  const busy = scenarios.filter((s) => s.groups.length > 0 || s.decisions.length > 0);
  const quiet = scenarios.filter((s) => s.groups.length === 0 && s.decisions.length === 0);
  const ol = el('ol', 'standing');
  for (const s of busy) {
    const li = el('li');
    li.dataset.scenario = s.scenario;
    const head = el('div', 'standing-head');
    head.append(el('b', '', s.scenario), el('span', 'state', s.state));
    head.title = s.summary;
    li.append(head);
    if (s.decisions.length > 0) {
      const why = el('ul', 'why');
      for (const dec of s.decisions) {
        const item = el('li', `verdict-${dec.verdict}`);
        item.append(el('span', 'time', clockTime(dec.at)), el('span', '', `${dec.action}: ${dec.why}`));
        why.append(item);
      }
      li.append(why);
    }
    ol.append(li);
  }
  if (quiet.length > 0) {
    const li = el(
      'li',
      'muted quiet',
      `nothing pending, no decisions kept: ${quiet.map((s) => s.scenario).join(', ')}`,
    );
    ol.append(li);
  }
  if (scenarios.length === 0) ol.append(el('li', 'muted', 'no scenarios'));
  return ol;
}

byId('device-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = byId('device-id').value.trim();
  if (!id) return;
  if (location.hash === deviceHash(id)) showDevice(id, true);
  else location.hash = deviceHash(id);
});

// ---- the history charts

function loadHistory() {
  clearTimeout(state.historyTimer);
  const range = state.range;
  getJson(`/api/history?range=${range}`).then(
    (history) => {
      if (range === state.range) {
        state.lastHistory = history;
        state.charts.draw(history);
      }
    },
    () => undefined,
  );
  state.historyTimer = setTimeout(loadHistory, HISTORY_EVERY_MS[range]);
}

byId('range').addEventListener('change', (e) => {
  state.range = e.target.value;
  loadHistory();
});

byId('action-filters').addEventListener('input', () => renderActions());
byId('actions').addEventListener('keydown', listKeys);
byId('action-filters').addEventListener('submit', (e) => e.preventDefault());

// Colours come from the theme: the charts are drawn again when it changes.
window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  if (state.lastHistory) state.charts.draw(state.lastHistory, true);
});

window.addEventListener('hashchange', route);
window.addEventListener('resize', () => {
  for (const row of state.rows.values())
    row.chart?.setSize({ width: row.chartBox.clientWidth || 240, height: 40 });
});

state.charts = new Charts(byId('charts'));
loadHistory();
loadShadow();

getJson('/api/scenarios').then(
  ({ scenarios }) => {
    buildRows(scenarios);
    connect();
    route();
  },
  (err) => {
    byId('live').textContent = `cannot reach the gateway: ${err.message}`;
  },
);
