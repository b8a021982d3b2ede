/**
 * Output of `hcgw test`: one line per case, a readable diff under each failure, the coverage summary, and
 * JUnit XML for CI systems (the de-facto format GitLab, Jenkins and GitHub reporters read).
 */
import { relative } from 'node:path';
import type { CoverageReport } from './coverage.ts';
import type { CaseResult } from './runner.ts';

const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export function formatCase(r: CaseResult): string {
  const head = `${r.ok ? 'PASS' : 'FAIL'}  ${relative(process.cwd(), r.file)} › ${r.name}${r.route ? `  [${r.route}]` : ''}  (${Math.round(r.ms)} ms)`;
  if (r.ok) return head;
  const lines = r.mismatches.map((m) => `      ${m.what}:\n        - expected ${show(m.expected)}\n        + actual   ${show(m.actual)}`);
  const trace = r.decisions.length ? [`      trace: ${r.decisions.map((d) => `${d.policy}=${d.outcome}${d.reason ? `(${d.reason})` : ''}`).join(' → ')}`] : [];
  return [head, ...lines, ...trace].join('\n');
}

export function formatCoverage(c: CoverageReport, opts: { verbose?: boolean } = {}): string {
  const head = `coverage: ${c.percent}% of decision branches (${c.covered}/${c.total}), routes ${c.routes.covered}/${c.routes.total}`;
  if (!c.missing.length) return head;
  const shown = opts.verbose ? c.missing : c.missing.slice(0, 20);
  const more = c.missing.length - shown.length;
  return [head, '  not exercised:', ...shown.map((b) => `    ${b}`), ...(more ? [`    … ${more} more (--verbose)`] : [])].join('\n');
}

const xml = (s: string) => s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

export function junitXml(cases: CaseResult[]): string {
  const failures = cases.filter((c) => !c.ok).length;
  const seconds = (ms: number) => (ms / 1000).toFixed(3);
  const total = cases.reduce((a, c) => a + c.ms, 0);
  const body = cases.map((c) => {
    const attrs = `classname="${xml(relative(process.cwd(), c.file))}" name="${xml(c.name)}" time="${seconds(c.ms)}"`;
    if (c.ok) return `    <testcase ${attrs}/>`;
    const text = c.mismatches.map((m) => `${m.what}: expected ${show(m.expected)}, actual ${show(m.actual)}`).join('\n');
    return `    <testcase ${attrs}>\n      <failure message="${xml(c.mismatches[0]?.what ?? 'failed')}">${xml(text)}</failure>\n    </testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="${cases.length}" failures="${failures}" time="${seconds(total)}">\n  <testsuite name="hcgw policy tests" tests="${cases.length}" failures="${failures}" time="${seconds(total)}">\n${body.join('\n')}\n  </testsuite>\n</testsuites>\n`;
}
