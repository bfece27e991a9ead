// cromflag built-in page: device picker (searched on the host: a fleet's devices
// are never all loaded), time-range picker, one uPlot chart per numeric column,
// latest values + battery, device health (last seen, active) and open alarms
// (polled, acknowledged from the list), live updates over SSE, CSV download.
// Everything is same-origin and bundled at build time (no network beyond the host).
import uPlot from 'uplot';

const NUMERIC = new Set(['BYTE', 'SHORT', 'INTEGER', 'LONG', 'FLOAT', 'DOUBLE']);
const PRESETS = { '15m': 9e5, '1h': 36e5, '24h': 864e5, '7d': 6048e5, '30d': 2592e6, all: null };
const PAGE = 10000;      // rows per /fetch page
const MAX_PAGES = 10;    // follow rel="next" at most this often, then aggregate
const BUCKETS = 2000;    // target number of points when aggregating
const CSV_LIMIT = 100000;
const DEVICE_LIMIT = 50; // devices the picker lists at once; the search box finds the others
const SEARCH_DELAY = 200; // ms of quiet typing before the search is asked
const ALARM_POLL = 3000; // ms between reads of the open alarms (and the device's health)
const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

const $ = (id) => document.getElementById(id);
const ui = {
  device: $('device'), search: $('device-search'), range: $('range'), custom: $('custom'), from: $('from'), to: $('to'),
  apply: $('apply'), csv: $('csv'), status: $('status'), latest: $('latest'), charts: $('charts'),
  alarmBadge: $('alarm-badge'), alarmCount: $('alarm-count'), alarmNote: $('alarm-note'), alarmList: $('alarm-list'),
};

// Public state, read by tests/browser/ui-test.mjs.
const state = (window.cromflagState = {
  device: null, from: 0, to: Date.now(), series: {}, latest: null, ready: false,
  // The picker: the ids it lists, the search they answer, whether more match.
  deviceList: [], deviceSearch: '', devicesMore: false,
  meta: {},            // the selected device's row of /fetch/devices (battery, firmware, last_seen, active, …)
  alarms: [],          // the open alarms (GET /alarms?state=open), newest first
  alarmCounts: {},     // device -> number of its open alarms
  alarmsRead: false,   // the open alarms were read at least once
});

let listGen = 0;       // bumps on every device-list request; stale answers are dropped
let searchTimer = null;
let columns = [];      // numeric column names of the selected device
let plots = {};        // column -> uPlot instance
let loadGen = 0;       // bumps on every (re)load; stale responses are dropped
let stream = null;     // current EventSource
let streamOk = false;  // true while the SSE stream is open
let retryTimer = null;
let aggregatedTo = 0;  // when the load was aggregated: end of the averaged span (exclusive)

// ---------- access ----------
// A host that listens beyond loopback asks for a reader token. The page keeps
// the one typed into its sign-in form in localStorage, sends it as
// `Authorization: Bearer` on fetches, and as `access_token` where a browser
// cannot set headers (EventSource, the CSV link).
const TOKEN_KEY = 'cromflag.readToken';
const readToken = () => localStorage.getItem(TOKEN_KEY) || '';

function withToken(url) {
  const token = readToken();
  if (!token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}access_token=${enc(token)}`;
}

function askForToken(why) {
  const form = $('login');
  form.hidden = false;
  $('login-why').textContent = why;
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  localStorage.setItem(TOKEN_KEY, $('token').value.trim());
  location.reload();
});

// ---------- helpers ----------

async function getJson(url) {
  const headers = { accept: 'application/json' };
  if (readToken()) headers.authorization = `Bearer ${readToken()}`;
  const res = await fetch(url, { headers });
  if (res.status === 401 || res.status === 403) {
    askForToken(res.status === 401 ? 'This host needs a reader token.' : 'This token may not read that.');
    throw new Error(`${url}: HTTP ${res.status}`);
  }
  if (res.status === 404) return { res, body: null };
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return { res, body: await res.json() };
}

// The rel="next" target of a Link header, as a same-origin path.
function nextLink(res) {
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') || '');
  if (!m) return null;
  const u = new URL(m[1], location.href);
  return u.pathname + u.search;
}

function setStatus(text, warn = false) {
  ui.status.textContent = text;
  ui.status.className = warn ? 'warn' : '';
}

const enc = encodeURIComponent;
const isLive = () => ui.range.value !== 'custom';

// datetime-local <-> epoch ms (local time)
function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 6e4);
  return d.toISOString().slice(0, 19);
}
const fromLocalInput = (s) => (s ? new Date(s).getTime() : NaN);

// The [from, to] of the current range; live ranges end now.
function currentRange() {
  const key = ui.range.value;
  if (key === 'custom') {
    const f = fromLocalInput(ui.from.value), t = fromLocalInput(ui.to.value);
    // inputs have second precision: make "to" cover its whole second
    return { from: isNaN(f) ? 0 : f, to: isNaN(t) ? Date.now() : t + 999 };
  }
  const now = Date.now();
  return { from: PRESETS[key] == null ? 0 : now - PRESETS[key], to: now };
}

// ---------- device list ----------

// One page of /fetch/devices: the devices whose id contains `search` (all
// without one), in id order, `limit` of them; the host pages the rest.
function devicesUrl(search, limit) {
  return `/fetch/devices?limit=${limit}${search ? `&search=${enc(search)}` : ''}`;
}

function option(value, text, disabled = false) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = text;
  o.disabled = disabled;
  return o;
}

// Lists the devices the search box finds (the first DEVICE_LIMIT); the
// selected device stays listed, first, when the search does not find it.
async function refreshDevices() {
  const gen = ++listGen;
  const search = ui.search.value;
  let names = [], more = false, failed = false;
  try {
    const { res, body } = await getJson(devicesUrl(search, DEVICE_LIMIT));
    names = (Array.isArray(body) ? body : []).map((d) => d?.deviceid).filter((n) => typeof n === 'string');
    more = Boolean(nextLink(res));
  } catch (e) {
    failed = true;
  }
  if (gen !== listGen) return null; // a later search answers instead
  const same = names.join('\n') === state.deviceList.join('\n') && search === state.deviceSearch &&
    more === state.devicesMore && (!state.device || ui.device.value === state.device);
  Object.assign(state, { deviceList: names, deviceSearch: search, devicesMore: more });
  if (same) return names; // leave an open picker alone
  const options = names.map((n) => option(n, deviceLabel(n)));
  if (state.device && !names.includes(state.device)) options.unshift(option(state.device, deviceLabel(state.device)));
  if (more) options.push(option('', `… more: refine the search`, true));
  if (!options.length) {
    options.push(search || failed
      ? option('', failed ? '(search failed)' : '(no device matches)', true)
      : option('', '(waiting for devices…)'));
  }
  ui.device.replaceChildren(...options);
  ui.device.value = state.device || names[0] || '';
  return names;
}

// The selected device's own row of /fetch/devices: a search for its id lists
// it, among the ids that contain it (a few pages at most, in practice one).
async function loadMeta(dev) {
  let url = devicesUrl(dev, 100);
  for (let page = 0; url && page < 10; page++) {
    const { res, body } = await getJson(url);
    const row = (Array.isArray(body) ? body : []).find((d) => d?.deviceid === dev);
    if (row) return row;
    url = nextLink(res);
  }
  return {};
}

// Poll every 2 s until a device exists, then select the first one.
async function pickDevice() {
  const names = await refreshDevices();
  if (!state.device && names?.length) {
    ui.device.value = names[0];
    await selectDevice(names[0]);
  } else if (!state.device) {
    state.ready = true; // no devices yet still counts as loaded
    setStatus('No devices yet');
    setTimeout(pickDevice, 2000);
  }
}

async function selectDevice(name) {
  state.device = name || null;
  renderAlarms();
  closeStream();
  if (!name) return;
  await load();
  openStream();
}

// ---------- loading ----------

async function fetchRows(dev, from, to, numCols) {
  let url = `/fetch/${enc(dev)}?from=${from}&to=${to}&limit=${PAGE}`;
  let rows = [];
  for (let page = 0; url; page++) {
    if (page === MAX_PAGES) return fetchAggregated(dev, rows[0].timestamp, to, numCols);
    const { res, body } = await getJson(url);
    if (!body) break;
    rows = rows.concat(body);
    url = nextLink(res);
  }
  return rows;
}

// Too many rows: ask for one averaged row per bucket over the span that holds data.
async function fetchAggregated(dev, first, to, numCols) {
  const end = Math.min(to, state.latest?.timestamp ?? to) + 1;
  const interval = Math.max(1, Math.ceil((end - first) / BUCKETS));
  aggregatedTo = end; // raw rows before this are already inside a bucket
  const url = `/fetch/${enc(dev)}?from=${first}&to=${end}&agg=avg&interval=${interval}ms` +
    `&columns=${numCols.map(enc).join(',')}&limit=${BUCKETS * 2}`;
  const { body } = await getJson(url);
  return body || [];
}

async function load() {
  const gen = ++loadGen;
  const dev = state.device;
  const { from, to } = currentRange();
  setStatus('Loading…');
  aggregatedTo = 0;
  try {
    const [{ body: schema }, { body: latest }, meta] = await Promise.all([
      getJson(`/devices/${enc(dev)}/schema`),
      getJson(`/devices/${enc(dev)}/latest`),
      loadMeta(dev).catch(() => ({})),
    ]);
    if (gen !== loadGen) return;
    state.meta = meta;
    const cols = (schema?.columns || []).slice(1);
    columns = cols.filter((c) => NUMERIC.has(String(c.type).toUpperCase())).map((c) => c.name);
    state.latest = latest;
    const rows = await fetchRows(dev, from, to, columns);
    if (gen !== loadGen) return;
    Object.assign(state, { from, to, series: {} });
    for (const c of columns) state.series[c] = { timestamps: [], values: [] };
    appendRows(rows, false);
    ui.csv.href = withToken(`/fetch/${enc(dev)}?from=${from}&to=${to}&limit=${CSV_LIMIT}&format=csv`);
    ui.csv.setAttribute('download', `${dev}.csv`);
    buildCharts();
    renderLatest();
    setStatus(aggregatedTo ? `${rows.length} averaged points` : `${rows.length} rows`);
  } catch (e) {
    if (gen === loadGen) setStatus(`Load failed: ${e.message}`, true);
  }
  state.ready = true;
}

// Merge rows (any order) into state.series, keeping timestamps sorted and unique.
function appendRows(rows, redraw = true) {
  for (const row of rows) {
    const ts = Number(row.timestamp);
    if (!Number.isFinite(ts)) continue;
    for (const c of columns) {
      const s = state.series[c];
      const v = row[c] == null ? null : Number(row[c]);
      const n = s.timestamps.length;
      if (!n || ts > s.timestamps[n - 1]) { s.timestamps.push(ts); s.values.push(v); continue; }
      let lo = 0, hi = n; // binary search for the insert position
      while (lo < hi) { const mid = (lo + hi) >> 1; s.timestamps[mid] < ts ? (lo = mid + 1) : (hi = mid); }
      if (s.timestamps[lo] === ts) s.values[lo] = v;
      else { s.timestamps.splice(lo, 0, ts); s.values.splice(lo, 0, v); }
    }
  }
  if (redraw) for (const c of columns) plots[c]?.setData(plotData(c));
}

// uPlot wants [x seconds[], y[]].
const plotData = (c) => [state.series[c].timestamps.map((t) => t / 1000), state.series[c].values];

// Streamed/polled rows: keep those in range; live ranges slide forward.
function onRows(rows) {
  if (!Array.isArray(rows) || !rows.length) return;
  const dev = state.device;
  rows = rows.filter((r) => r && (r.deviceid == null || r.deviceid === dev));
  if (isLive()) {
    const { from, to } = currentRange();
    Object.assign(state, { from, to });
    for (const c of columns) { // drop points that slid out of the window
      const s = state.series[c];
      let k = 0;
      while (k < s.timestamps.length && s.timestamps[k] < from) k++;
      if (k) { s.timestamps.splice(0, k); s.values.splice(0, k); }
    }
  }
  const inRange = rows.filter((r) => r.timestamp >= state.from && (isLive() || r.timestamp <= state.to));
  appendRows(inRange);
  const newest = rows.reduce((a, r) => (!a || r.timestamp >= a.timestamp ? r : a), null);
  if (newest && (!state.latest || newest.timestamp >= state.latest.timestamp)) {
    state.latest = { ...(state.latest || {}), ...newest };
    renderLatest();
  }
  if (!Object.keys(plots).length && columns.length) buildCharts();
  refreshMeta();
}

// Device metadata (battery, firmware) changes with inserts, and devices come
// and go from the picker's search: re-read both at most every 5 s.
let metaAt = 0;
async function refreshMeta() {
  if (Date.now() - metaAt < 5000) return;
  metaAt = Date.now();
  const dev = state.device;
  if (!dev) return;
  const [meta] = await Promise.all([loadMeta(dev).catch(() => null), refreshDevices()]);
  if (meta && dev === state.device) state.meta = meta;
  renderLatest();
}

// ---------- rendering ----------

function buildCharts() {
  for (const p of Object.values(plots)) p.destroy();
  plots = {};
  ui.charts.replaceChildren();
  if (!columns.length) {
    ui.charts.innerHTML = '<div class="nodata">No numeric columns (yet).</div>';
    return;
  }
  columns.forEach((c, i) => {
    const color = COLORS[i % COLORS.length];
    const card = document.createElement('div');
    card.className = 'chart';
    card.dataset.column = c;
    const h = document.createElement('h2');
    h.textContent = c;
    const box = document.createElement('div');
    box.className = 'plot';
    card.append(h, box);
    ui.charts.append(card);
    plots[c] = new uPlot({
      width: Math.max(200, box.clientWidth || 400),
      height: 220,
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      series: [{}, { label: c, stroke: color, width: 1.5, fill: color + '14', spanGaps: true }],
      axes: [{}, { size: 55 }],
    }, plotData(c), box);
  });
}

// Keep charts as wide as their grid cells.
new ResizeObserver(() => {
  for (const [c, p] of Object.entries(plots)) {
    const box = ui.charts.querySelector(`.chart[data-column="${CSS.escape(c)}"] .plot`);
    if (box && box.clientWidth && Math.abs(box.clientWidth - p.width) > 2) p.setSize({ width: box.clientWidth, height: 220 });
  }
}).observe(ui.charts);

function renderLatest() {
  ui.latest.replaceChildren();
  const meta = state.meta || {};
  const latest = state.latest;
  const item = (k, v, cls = 'item') => {
    const el = document.createElement('div');
    el.className = cls;
    el.innerHTML = '<span class="k"></span><span class="v"></span>';
    el.firstChild.textContent = k;
    el.lastChild.textContent = v;
    ui.latest.append(el);
    return el;
  };
  const batt = latest?.batt_lvl ?? meta.batt_lvl;
  if (batt != null) item('battery', `${batt}%`, Number(batt) < 20 ? 'batt low' : 'batt');
  // Health, from the device's row of /fetch/devices (null: not known yet).
  if (meta.active != null) {
    item('status', meta.active ? 'active' : 'inactive', `item health ${meta.active ? 'active' : 'inactive'}`);
  }
  if (meta.last_seen != null) item('last seen', new Date(meta.last_seen).toLocaleString(), 'item health-seen');
  for (const [k, v] of Object.entries(meta)) {
    if (!['deviceid', 'batt_lvl', 'last_seen', 'active'].includes(k)) item(k, String(v));
  }
  if (!latest) {
    const el = document.createElement('div');
    el.className = 'empty';
    el.textContent = 'No rows yet.';
    ui.latest.append(el);
    return;
  }
  item('time', new Date(latest.timestamp).toLocaleString());
  for (const [k, v] of Object.entries(latest)) {
    if (k === 'timestamp' || k === 'batt_lvl' || k === 'deviceid') continue;
    item(k, typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : String(v));
  }
}

// ---------- alarms ----------
// The open alarms of every device, read every ALARM_POLL ms: a badge with
// the selected device's count, counts in the picker, and the list with an
// Acknowledge button (POST /alarms/<id>/ack, which takes the admin token
// where tokens are required). The selected device's health is re-read with
// them, so active/inactive follows without a reload.

function deviceLabel(id) {
  const n = state.alarmCounts[id] || 0;
  return n ? `${id} (${n} alarm${n === 1 ? '' : 's'})` : id;
}

async function pollAlarms() {
  try {
    const { body } = await getJson('/alarms?state=open');
    const alarms = Array.isArray(body?.alarms) ? body.alarms : [];
    const counts = {};
    for (const a of alarms) counts[a.device] = (counts[a.device] || 0) + 1;
    Object.assign(state, { alarms, alarmCounts: counts, alarmsRead: true });
  } catch (e) {
    ui.alarmNote.textContent = `Alarms could not be read: ${e.message}`;
  }
  const dev = state.device;
  if (dev) {
    const meta = await loadMeta(dev).catch(() => null);
    if (meta && dev === state.device) {
      state.meta = meta;
      renderLatest();
    }
  }
  renderAlarms();
}

function renderAlarms() {
  const { alarms } = state;
  const mine = state.device ? state.alarmCounts[state.device] || 0 : 0;
  ui.alarmBadge.hidden = !mine;
  ui.alarmBadge.textContent = String(mine);
  ui.alarmCount.hidden = !alarms.length;
  ui.alarmCount.textContent = String(alarms.length);
  for (const o of ui.device.options) if (o.value) o.textContent = deviceLabel(o.value);
  if (state.alarmsRead) ui.alarmNote.textContent = 'No open alarms.';
  ui.alarmNote.hidden = alarms.length > 0;
  ui.alarmList.parentElement.hidden = !alarms.length;
  ui.alarmList.replaceChildren(...alarms.map((a) => {
    const tr = document.createElement('tr');
    tr.className = a.state;
    tr.dataset.alarmId = a.id;
    const cell = (text, cls = '') => {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
      return td;
    };
    cell(a.device, 'device');
    cell(a.rule, 'rule');
    cell(a.severity, 'severity');
    cell(a.state, 'state');
    cell(new Date(a.raised).toLocaleString(), 'raised');
    const actions = cell('', 'actions');
    if (a.state === 'raised') {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'ack';
      button.textContent = 'Acknowledge';
      button.addEventListener('click', () => acknowledge(a.id, button));
      actions.append(button);
    } else if (a.acknowledged != null) {
      actions.textContent = `at ${new Date(a.acknowledged).toLocaleTimeString()}`;
    }
    return tr;
  }));
}

async function acknowledge(id, button) {
  button.disabled = true;
  const headers = {};
  if (readToken()) headers.authorization = `Bearer ${readToken()}`;
  try {
    const res = await fetch(`/alarms/${enc(id)}/ack`, { method: 'POST', headers });
    if (res.status === 401 || res.status === 403) {
      askForToken('Acknowledging an alarm takes the admin token.');
    } else if (!res.ok) {
      setStatus(`Acknowledge failed: HTTP ${res.status}`, true);
    } else {
      const acked = await res.json();
      state.alarms = state.alarms.map((a) => (a.id === acked.id ? acked : a));
      renderAlarms();
    }
  } catch (e) {
    setStatus(`Acknowledge failed: ${e.message}`, true);
  }
  button.disabled = false;
  pollAlarms();
}

// ---------- live updates ----------

function closeStream() {
  clearTimeout(retryTimer);
  if (stream) stream.close();
  stream = null;
  streamOk = false;
}

// SSE stream of committed batches. On a drop or a missing route, retry quietly
// with backoff; while the stream is down, poll for new rows instead.
function openStream(delay = 1000) {
  closeStream();
  const dev = state.device;
  if (!dev) return;
  const es = (stream = new EventSource(withToken(`/stream/${enc(dev)}`)));
  es.addEventListener('open', () => {
    streamOk = true;
    delay = 1000;
    if (ui.status.className === 'warn') setStatus('Live');
    catchUp(); // rows committed between the load and the stream opening
  });
  // The host sends `event: ready` once subscribed: catch up once more so no batch falls in the gap.
  es.addEventListener('ready', () => catchUp());
  es.addEventListener('rows', (ev) => {
    try { onRows(JSON.parse(ev.data)); } catch (e) { /* ignore a malformed batch */ }
  });
  es.addEventListener('dropped', (ev) => {
    let why = '';
    try { why = JSON.stringify(JSON.parse(ev.data)); } catch (e) { why = ev.data; }
    setStatus(`Live stream dropped ${why}; reconnecting…`, true);
    retry();
  });
  es.onerror = () => {
    streamOk = false;
    // EventSource reconnects on its own while CONNECTING; a CLOSED one (404, bad type) needs us.
    if (es.readyState === EventSource.CLOSED) retry();
  };
  function retry() {
    if (stream !== es) return;
    es.close();
    streamOk = false;
    retryTimer = setTimeout(() => { if (state.device === dev) openStream(Math.min(delay * 2, 30000)); }, delay);
  }
}

// Fetch rows newer than the newest shown one (used on stream (re)open and as polling fallback).
async function catchUp() {
  const dev = state.device;
  if (!dev || !columns.length) return;
  const last = Math.max(state.from - 1, aggregatedTo - 1,
    ...columns.map((c) => state.series[c].timestamps.at(-1) ?? -Infinity));
  const to = isLive() ? Date.now() : state.to;
  if (last >= to) return;
  try {
    const { body } = await getJson(`/fetch/${enc(dev)}?from=${last + 1}&to=${to}&limit=${PAGE}`);
    if (body && dev === state.device) onRows(body);
  } catch (e) { /* quiet: next tick retries */ }
}

// Polling fallback while the stream is unavailable (live ranges only).
setInterval(() => { if (state.device && !streamOk && isLive() && !document.hidden) catchUp(); }, 5000);
// Keep device metadata (battery etc.) fresh.
setInterval(() => { if (state.device) refreshMeta(); }, 30000);
// Open alarms and the selected device's health.
setInterval(() => { if (!document.hidden) pollAlarms(); }, ALARM_POLL);

// ---------- controls ----------

ui.device.addEventListener('change', () => { if (ui.device.value) selectDevice(ui.device.value); });
// Type-ahead: the host searches the ids as the text changes; Enter picks the first match.
ui.search.addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(refreshDevices, SEARCH_DELAY);
});
ui.search.addEventListener('keydown', async (ev) => {
  if (ev.key !== 'Enter') return;
  ev.preventDefault();
  clearTimeout(searchTimer);
  const names = await refreshDevices();
  if (names?.length && names[0] !== state.device) {
    ui.device.value = names[0];
    await selectDevice(names[0]);
  }
});
ui.range.addEventListener('change', () => {
  const custom = ui.range.value === 'custom';
  ui.custom.hidden = !custom;
  if (custom) {
    ui.from.value ||= toLocalInput(state.from || Date.now() - 864e5);
    ui.to.value ||= toLocalInput(state.to || Date.now());
    return; // wait for Apply
  }
  if (state.device) load();
});
ui.apply.addEventListener('click', () => { if (state.device) load(); });

pickDevice();
pollAlarms();
