/**
 * `hcgw validate --strict`: runs every lint rule on a loaded config, applies the routes' waivers, and
 * formats the findings. A waiver that matches no finding is reported too, so stale ones get removed.
 */
import type { GatewayConfig } from '../../config/types.ts';
import { LINT_RULES, lintContext, type LintRule } from './rules.ts';

export interface LintFinding {
  rule: string;
  name: string;
  message: string;
  /** Config path of the gap. */
  path: string;
  route?: { id: string; index: number };
  fix: string;
  /** The waiver's reason, when the route waives this rule. */
  waived?: string;
}

export interface LintResult {
  findings: LintFinding[];
  /** Waivers naming a rule that found nothing on their route. */
  unusedWaivers: Array<{ route: { id: string; index: number }; rule: string }>;
}

const base = (r: LintRule) => ({ rule: r.id, name: r.name, fix: r.fix });

export function lintConfig(config: GatewayConfig, rules: readonly LintRule[] = LINT_RULES): LintResult {
  const ctx = lintContext(config);
  const findings: LintFinding[] = [];
  const unusedWaivers: LintResult['unusedWaivers'] = [];
  for (const rule of rules) if (rule.scope === 'config') for (const f of rule.check(ctx)) findings.push({ ...base(rule), ...f });
  config.routes.forEach((route, index) => {
    const ref = { id: route.id, index };
    const waivers = new Map((route.lint?.waive ?? []).map((w) => [w.rule as string, w.reason]));
    for (const rule of rules) {
      if (rule.scope !== 'route') continue;
      const f = rule.check(route, index, ctx);
      const reason = waivers.get(rule.id);
      if (f) findings.push({ ...base(rule), ...f, route: ref, ...(reason === undefined ? {} : { waived: reason }) });
      else if (reason !== undefined) unusedWaivers.push({ route: ref, rule: rule.id });
    }
  });
  return { findings, unusedWaivers };
}

/** Non-waived findings: what makes `validate --strict` exit 1. */
export const blocking = (r: LintResult) => r.findings.filter((f) => f.waived === undefined);

const where = (f: { path: string; route?: { id: string } }) => `${f.path}${f.route ? ` (route "${f.route.id}")` : ''}`;

export function formatLint(file: string, r: LintResult): string {
  const lines: string[] = [];
  for (const f of r.findings) {
    if (f.waived !== undefined) lines.push(`${file}: waived ${f.rule} ${where(f)}: ${f.message}\n    reason: ${f.waived}`);
    else lines.push(`${file}: ${f.rule} ${where(f)}: ${f.message}\n    fix: ${f.fix}`);
  }
  for (const u of r.unusedWaivers) lines.push(`${file}: warning: routes[${u.route.index}].lint.waive (route "${u.route.id}"): ${u.rule} finds nothing here; remove the waiver`);
  const open = blocking(r).length;
  const waived = r.findings.length - open;
  lines.push(`${file}: strict: ${open ? `${open} finding${open === 1 ? '' : 's'}` : 'OK'}${waived ? `, ${waived} waived` : ''}`);
  return lines.join('\n') + '\n';
}

/** `validate --strict` after a successful compile: prints the findings, 1 when one is not waived. */
export function strictCheck(file: string, config: GatewayConfig): number {
  const r = lintConfig(config);
  process.stdout.write(formatLint(file, r));
  return blocking(r).length ? 1 : 0;
}
