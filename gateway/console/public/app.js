// The console: plain ES modules, no build step. Every datum is inserted as text (never as HTML), the
// token stays in sessionStorage and goes out only as an Authorization header to this same origin.
import uPlot from './vendor/uplot/uPlot.esm.js';
import { summarizeTraffic } from './traffic.js';

const TOKEN_KEY = 'hcgw-admin-token';
const POLL_MS = 3000;
const main = document.getElementById('main');
let stopPage = () => {};

/** h('tag.class', {attr}, ...children): builds DOM nodes; strings become text nodes. */
function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== false) el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}
const table = (head, rows) => h('table', {}, h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))), h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));

class Unauthorized extends Error {}

async function api(path, init = {}, token = sessionStorage.getItem(TOKEN_KEY)) {
  if (!token) throw new Unauthorized();
  const res = await fetch(path, { ...init, headers: { ...(init.headers ?? {}), authorization: `Bearer ${token}`, accept: 'application/json' }, cache: 'no-store', credentials: 'omit' });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new Unauthorized();
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail ?? body.title ?? `HTTP ${res.status}`);
  return body;
}

function setPage(title, ...content) {
  main.replaceChildren(h('h1', {}, title), ...content);
}

// ---- login -------------------------------------------------------------------------------------------
function loginPage(message) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, size: 40 });
  const status = h('p.error', { id: 'login-error', role: 'alert' }, message ?? '');
  const form = h('form.login.card', {
    onsubmit: async (e) => {
      e.preventDefault();
      status.textContent = '';
      try {
        // Kept only once the admin API accepted it: a refused token never reaches storage.
        await api('/admin/console/features', {}, input.value);
        sessionStorage.setItem(TOKEN_KEY, input.value);
        location.hash = '#/';
        render();
      } catch (err) {
        status.textContent = err instanceof Unauthorized ? 'Token refused.' : `Cannot reach the admin API: ${err.message}`;
      }
    },
  }, h('label', {}, 'Admin token', input), h('button', { type: 'submit', id: 'login' }, 'Sign in'), status);
  document.getElementById('nav').hidden = true;
  setPage('Sign in', form, h('p.muted', {}, 'The token is kept in this tab only (session storage) and sent as a bearer token to the admin API.'));
}

// ---- overview (SLO) ----------------------------------------------------------------------------------
async function overviewPage() {
  const [routes, traffic] = await Promise.all([api('/admin/console/routes'), api('/admin/console/traffic')]);
  const s = summarizeTraffic(traffic);
  const sla = traffic.metrics.find((m) => m.name === 'hcgw_sla_breaches_total');
  const slo = sla
    ? table(['Indicator', 'Breaches'], sla.values.map((v) => [Object.entries(v.labels).map(([k, x]) => `${k}=${x}`).join(' ') || '(all)', String(v.value)]))
    : h('p.muted', { id: 'slo-none' }, 'No SLA indicators are configured (hcgw_sla_breaches_total is not exported).');
  setPage(
    'Overview',
    h('div.cards', {},
      h('div.card', {}, h('div.muted', {}, 'Config version'), h('div.mono', { id: 'config-version' }, routes.config.version.slice(0, 16)), h('div.muted', {}, `loaded ${routes.config.loadedAt}`)),
      h('div.card', {}, h('div.muted', {}, 'Routes'), h('div.big', {}, String(routes.config.routes))),
      h('div.card', {}, h('div.muted', {}, 'Requests since start'), h('div.big', { id: 'total-requests' }, String(s.total))),
      h('div.card', {}, h('div.muted', {}, 'Error responses (5xx)'), h('div.big', {}, String(s.errors)))),
    h('h2', {}, 'Business SLOs'),
    h('div.card', { id: 'slo' }, slo),
  );
}

// ---- routes ------------------------------------------------------------------------------------------
const settingsText = (settings) => JSON.stringify(settings);
async function routesPage() {
  const r = await api('/admin/console/routes');
  setPage(
    'Routes',
    h('p.muted', {}, `Config ${r.config.version.slice(0, 16)} loaded ${r.config.loadedAt}; ${r.config.routes} routes; upstreams: ${r.upstreams.join(', ')}`),
    table(
      ['Route', 'Layer', 'Match', 'Upstream', 'Policy chain (in order)', 'Scopes', 'Minimization per purpose'],
      r.routes.map((route) => [
        h('span.mono', { 'data-route': route.id }, route.id),
        route.layer,
        h('span.mono', {}, `${route.methods.join(',')} ${route.path}`),
        route.upstreams.join(', '),
        h('ol', {}, route.chain.map((p) => h('li', {}, h('b', {}, p.name), ' ', h('code', {}, settingsText(p.settings))))),
        route.scopes.map((s) => h('code', {}, settingsText(s))),
        route.minimization.map((m) => h('div', {}, h('span.chip', {}, Array.isArray(m.purposeOfUse) ? m.purposeOfUse.join('|') : 'any purpose'), '→ ', h('b', {}, m.profile), m.conditions.length ? ` (also ${m.conditions.join(', ')})` : '')),
      ]),
    ),
    h('h2', {}, 'Minimization profiles'),
    table(['Profile', 'Description'], r.profiles.map((p) => [p.name, p.description])),
  );
}

// ---- live traffic ------------------------------------------------------------------------------------
const fmtMs = (s) => (s === undefined ? '–' : `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`);
async function trafficPage() {
  const series = { t: [], rps: [], errRate: [] };
  const chartEl = h('div.chart', { id: 'traffic-chart' });
  const perRoute = h('div', { id: 'per-route' });
  const denials = h('div', { id: 'denials' });
  const rejections = h('div', { id: 'rejections' });
  setPage('Live traffic', h('p.muted', {}, `Polled every ${POLL_MS / 1000} s from the gateway's own metrics.`), chartEl, h('h2', {}, 'Per route'), perRoute, h('h2', {}, 'Denials by policy and reason'), denials, h('h2', {}, 'Rate-limit and lane rejections'), rejections);
  const plot = new uPlot({ width: Math.min(1100, main.clientWidth - 20), height: 220, series: [{}, { label: 'req/s', stroke: '#0b5cad' }, { label: 'error rate %', stroke: '#b3261e', scale: '%' }], axes: [{}, { label: 'req/s' }, { side: 1, scale: '%', label: '%' }] }, [[], [], []], chartEl);
  let prev;
  let timer;
  let stopped = false;
  const tick = async () => {
    try {
      const snap = await api('/admin/console/traffic');
      const s = summarizeTraffic(snap, prev);
      prev = snap;
      series.t.push(snap.at / 1000);
      series.rps.push(s.rps ?? 0);
      series.errRate.push(s.errorRate ?? 0);
      for (const k of Object.keys(series)) if (series[k].length > 120) series[k].shift();
      plot.setData([series.t, series.rps, series.errRate]);
      perRoute.replaceChildren(table(['Route', 'Requests', 'req/s', '5xx', 'Overhead p50', 'Overhead p99', 'Total p50', 'Total p99', 'Upstream time p50 (total − overhead)'],
        s.routes.map((r) => [h('span.mono', { 'data-route': r.route }, r.route), String(r.total), r.rps === undefined ? '–' : r.rps.toFixed(2), String(r.errors), fmtMs(r.overhead.p50), fmtMs(r.overhead.p99), fmtMs(r.duration.p50), fmtMs(r.duration.p99), fmtMs(r.duration.p50 === undefined ? undefined : Math.max(0, r.duration.p50 - (r.overhead.p50 ?? 0)))])));
      denials.replaceChildren(s.denials.length ? table(['Policy', 'Reason', 'Count'], s.denials.map((d) => [d.policy, d.reason, String(d.value)])) : h('p.muted', {}, 'No denials yet.'));
      rejections.replaceChildren(s.rejections.length ? table(['Kind', 'Where', 'Why', 'Count'], s.rejections.map((d) => [d.kind, d.where, d.why, String(d.value)])) : h('p.muted', {}, 'No rate-limit or lane rejections yet.'));
    } catch (err) {
      if (err instanceof Unauthorized) return loginPage('Session ended: sign in again.');
      perRoute.replaceChildren(h('p.error', {}, err.message));
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  await tick();
  stopPage = () => {
    stopped = true;
    clearTimeout(timer);
    plot.destroy();
  };
}

// ---- audit -------------------------------------------------------------------------------------------
async function auditPage() {
  const field = (name, label, attrs = {}) => h('label', {}, label, h('input', { name, id: `audit-${name}`, ...attrs }));
  const outcome = h('select', { name: 'outcome', id: 'audit-outcome' }, h('option', { value: '' }, 'any'), h('option', { value: '0' }, 'success'), h('option', { value: '4' }, 'client failure (4xx)'), h('option', { value: '8' }, 'server failure (5xx)'), h('option', { value: '12' }, 'not completed'));
  const results = h('div', { id: 'audit-results' });
  const verifyOut = h('span', { id: 'verify-result' });
  const form = h('form.filters', {
    onsubmit: async (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) {
        if (!v) continue;
        q.set(k, k === 'from' || k === 'to' ? new Date(v).toISOString() : v);
      }
      try {
        const r = await api(`/admin/audit/search?${q}`);
        if (!r.configured) return results.replaceChildren(h('p.muted', {}, 'No file audit sink is configured: nothing to search.'));
        results.replaceChildren(
          h('p.muted', {}, `${r.hits.length} records (newest first), ${r.scanned} scanned${r.truncated ? ', scan limit reached' : ''}.`),
          table(['Recorded', 'Route', 'Client', 'Action', 'Status', 'Outcome', 'Reason', 'Denied by', 'Purpose', 'Request id'],
            r.hits.map((x) => [x.recorded, x.route, x.clientId ?? '', `${x.action} ${x.subtype}`, String(x.status), x.outcome, x.error ?? x.reason ?? '', x.deniedBy ?? '', x.purposeOfUse ?? '', h('span.mono', {}, x.requestId)])),
        );
      } catch (err) {
        results.replaceChildren(h('p.error', {}, err.message));
      }
    },
  }, field('from', 'From', { type: 'datetime-local' }), field('to', 'To', { type: 'datetime-local' }), field('route', 'Route'), field('client', 'Client id'), h('label', {}, 'Outcome', outcome), field('reason', 'Decision reason'), h('button', { type: 'submit', id: 'audit-search' }, 'Search'));
  const verify = h('button', {
    type: 'button',
    id: 'verify-chain',
    onclick: async () => {
      verifyOut.textContent = 'verifying…';
      try {
        const r = await api('/admin/audit/verify', { method: 'POST' });
        if (!r.configured) verifyOut.textContent = 'no file sink configured';
        else if (r.ok) {
          verifyOut.className = 'ok';
          verifyOut.textContent = `OK: ${r.sinks.map((s) => `${s.records} records, head ${s.head.slice(0, 12)}…`).join('; ')}`;
        } else {
          verifyOut.className = 'bad';
          verifyOut.textContent = `BROKEN: ${r.sinks.filter((s) => !s.ok).map((s) => `${s.file}:${s.line} ${s.reason}`).join('; ')}`;
        }
      } catch (err) {
        verifyOut.textContent = err.message;
      }
    },
  }, 'Verify chain');
  setPage('Audit', h('div.card', {}, verify, ' ', verifyOut), form, results, h('p.muted', {}, 'Records show who, what route and which decision — never PHI values, subjects or addresses.'));
  form.requestSubmit();
}

// ---- optional pages ----------------------------------------------------------------------------------
async function optionalPage(title, feature) {
  const f = await api('/admin/console/features');
  setPage(title, f[feature] ? h('p', {}, 'Loading…') : h('p.muted', { id: 'not-configured' }, `Not configured: this gateway has no ${title.toLowerCase()} backend.`));
}

const PAGES = {
  '#/': overviewPage,
  '#/routes': routesPage,
  '#/traffic': trafficPage,
  '#/audit': auditPage,
  '#/events': () => optionalPage('Events', 'events'),
  '#/tests': () => optionalPage('Policy tests', 'policyTests'),
};

async function render() {
  stopPage();
  stopPage = () => {};
  if (!sessionStorage.getItem(TOKEN_KEY)) return loginPage();
  const hash = PAGES[location.hash] ? location.hash : '#/';
  document.getElementById('nav').hidden = false;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('href') === hash);
  try {
    await PAGES[hash]();
  } catch (err) {
    if (err instanceof Unauthorized) return loginPage('Session ended: sign in again.');
    setPage('Error', h('p.error', {}, err.message));
  }
}

document.getElementById('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  render();
});
addEventListener('hashchange', render);
render();
