import type { Change } from './compare.ts';

export interface DiffReport {
  old: string;
  new: string;
  /** True when any change widens: `hcgw diff` then exits 2, so a pipeline can ask for a second approval. */
  widening: boolean;
  counts: { widening: number; narrowing: number };
  changes: Change[];
}

export function report(oldFile: string, newFile: string, changes: Change[]): DiffReport {
  const widening = changes.filter((c) => c.effect === 'widening').length;
  return { old: oldFile, new: newFile, widening: widening > 0, counts: { widening, narrowing: changes.length - widening }, changes };
}

/** One line per change, grouped under its scope; widening first within each scope so it is not missed. */
export function renderText(r: DiffReport): string {
  if (!r.changes.length) return `${r.old} → ${r.new}: no change to the governed surface\n`;
  const lines = [`${r.old} → ${r.new}: ${r.counts.widening} widening, ${r.counts.narrowing} narrowing`];
  const scopes = [...new Set(r.changes.map((c) => c.scope))];
  for (const scope of scopes) {
    lines.push('', scope);
    const mine = r.changes.filter((c) => c.scope === scope).sort((a, b) => (a.effect === b.effect ? 0 : a.effect === 'widening' ? -1 : 1));
    for (const c of mine) lines.push(`  ${c.effect === 'widening' ? 'WIDENING ' : 'narrowing'}  ${c.aspect}: ${c.text}`);
  }
  return `${lines.join('\n')}\n`;
}
