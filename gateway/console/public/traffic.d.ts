// Types of traffic.js (plain JavaScript so the browser loads it without a build step).
export type Buckets = Array<[number, number]>;
export function histogramQuantile(q: number, buckets: Buckets): number | undefined;
export interface TrafficSnapshot {
  at: number;
  metrics: Array<{ name: string; type?: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> }>;
}
export interface Quantiles {
  p50?: number;
  p99?: number;
}
export function summarizeTraffic(
  snap: TrafficSnapshot,
  prev?: TrafficSnapshot,
): {
  total: number;
  errors: number;
  rps?: number;
  errorRate: number;
  routes: Array<{ route: string; total: number; errors: number; window: number; rps?: number; overhead: Quantiles; duration: Quantiles }>;
  denials: Array<{ policy: string; reason: string; value: number }>;
  rejections: Array<{ kind: string; where: string; why: string; value: number }>;
};
