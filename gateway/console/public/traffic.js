// Pure functions over /admin/console/traffic snapshots (prom-client's JSON form): shared by the page and
// by the tests, which import this file in node.

const byName = (snap, name) => snap?.metrics.find((m) => m.name === name)?.values ?? [];
const keyOf = (labels, names) => names.map((n) => labels[n] ?? '').join('\u0000');

/** Sums a counter's values by the given label names. */
function sumBy(snap, name, names) {
  const out = new Map();
  for (const v of byName(snap, name)) {
    const k = keyOf(v.labels, names);
    out.set(k, (out.get(k) ?? 0) + v.value);
  }
  return out;
}

/** Cumulative buckets of one histogram per label value: Map<label, Array<[le, count]>> sorted by le. */
function bucketsBy(snap, name, label) {
  const out = new Map();
  for (const v of byName(snap, name)) {
    if (v.metricName !== `${name}_bucket`) continue;
    const k = v.labels[label];
    const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
    if (!out.has(k)) out.set(k, []);
    out.get(k).push([le, v.value]);
  }
  for (const b of out.values()) b.sort((a, c) => a[0] - c[0]);
  return out;
}

/**
 * Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank. Undefined for
 * an empty histogram; the upper bound of the last finite bucket when the rank falls in +Inf.
 */
export function histogramQuantile(q, buckets) {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (!total) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(1, count - prevCount));
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** Buckets of the window between two snapshots; the cumulative ones when the window saw nothing. */
function windowed(now, before) {
  if (!before) return now;
  const d = now.map(([le, c], i) => [le, c - (before[i]?.[1] ?? 0)]);
  return d.at(-1)[1] > 0 ? d : now;
}

const quantiles = (b) => (b ? { p50: histogramQuantile(0.5, b), p99: histogramQuantile(0.99, b) } : {});

/**
 * What the live page shows: totals, rates over the window since `prev`, per-route latency quantiles
 * (gateway overhead against total time), denials, rate-limit and lane rejections.
 */
export function summarizeTraffic(snap, prev) {
  const secs = prev ? (snap.at - prev.at) / 1000 : undefined;
  const reqs = sumBy(snap, 'hcgw_requests_total', ['route', 'status_class']);
  const before = sumBy(prev, 'hcgw_requests_total', ['route', 'status_class']);
  const routes = new Map();
  let total = 0, errors = 0, windowTotal = 0, windowErrors = 0;
  for (const [k, v] of reqs) {
    const [route, cls] = k.split('\u0000');
    const r = routes.get(route) ?? { route, total: 0, errors: 0, window: 0 };
    const delta = v - (before.get(k) ?? 0);
    r.total += v;
    r.window += delta;
    total += v;
    windowTotal += delta;
    if (cls === '5xx') {
      r.errors += v;
      errors += v;
      windowErrors += delta;
    }
    routes.set(route, r);
  }
  const overhead = bucketsBy(snap, 'hcgw_gateway_overhead_seconds', 'route');
  const overheadBefore = bucketsBy(prev, 'hcgw_gateway_overhead_seconds', 'route');
  const duration = bucketsBy(snap, 'hcgw_request_duration_seconds', 'route');
  const durationBefore = bucketsBy(prev, 'hcgw_request_duration_seconds', 'route');
  const denials = [...sumBy(snap, 'hcgw_policy_denials_total', ['policy', 'reason'])].map(([k, value]) => {
    const [policy, reason] = k.split('\u0000');
    return { policy, reason, value };
  });
  const rejections = [
    ...[...sumBy(snap, 'hcgw_rate_limited_total', ['route', 'limit'])].map(([k, value]) => {
      const [where, why] = k.split('\u0000');
      return { kind: 'rate-limit', where, why, value };
    }),
    ...[...sumBy(snap, 'hcgw_lane_rejected_total', ['lane', 'reason'])].map(([k, value]) => {
      const [where, why] = k.split('\u0000');
      return { kind: 'lane', where, why, value };
    }),
  ];
  return {
    total,
    errors,
    rps: secs ? windowTotal / secs : undefined,
    errorRate: windowTotal ? (100 * windowErrors) / windowTotal : 0,
    routes: [...routes.values()].sort((a, b) => a.route.localeCompare(b.route)).map((r) => ({
      ...r,
      rps: secs ? r.window / secs : undefined,
      overhead: quantiles(overhead.has(r.route) ? windowed(overhead.get(r.route), overheadBefore.get(r.route)) : undefined),
      duration: quantiles(duration.has(r.route) ? windowed(duration.get(r.route), durationBefore.get(r.route)) : undefined),
    })),
    denials,
    rejections,
  };
}
