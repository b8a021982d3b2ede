const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^([1-9][0-9]*)(ms|s|m|h|d)$/;

/** Same spelling as the durations elsewhere in routes.yaml: 500ms, 10s, 1m, 1h, 1d. */
export const DURATION_PATTERN = DURATION.source;

export function parseDuration(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new Error(`"${text}" is not a duration such as 10s, 1m or 1h`);
  return Number(m[1]) * UNIT_MS[m[2]];
}
