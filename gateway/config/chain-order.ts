import type { Capability, Policy, PolicyDependencies } from '../sdk/types.ts';
import type { ConfigIssue } from './errors.ts';

export interface ChainEntry {
  name: string;
  policy: Policy;
  config: unknown;
  /** Config path of the entry, e.g. `routes[2].policies[1]`. */
  path: string;
}

export function dependenciesOf(policy: Policy, config: unknown): PolicyDependencies {
  const d = policy.dependencies;
  return (typeof d === 'function' ? d(config) : d) ?? {};
}

/** Names of the registered policies that can provide a capability (for the one-line fix). */
function providersOf(cap: Capability, registered: Iterable<Policy>): string[] {
  const out: string[] = [];
  for (const p of registered) if (typeof p.dependencies === 'object' && p.dependencies.provides?.includes(cap)) out.push(`\`${p.name}\``);
  return out;
}

/**
 * A chain's order is checked against what its policies declare (Envoy's filter dependencies), so a chain in
 * the wrong order is a config error with a fix, never a 500 at request time or a leak:
 * - `requires`: a policy above must provide it (request phase runs top-down);
 * - `after`: a policy that provides it must stand below, since the response phase runs bottom-up and this
 *   policy must see the body only once that guarantee holds.
 */
export function checkChainOrder(entries: readonly ChainEntry[], registered: Iterable<Policy>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const deps = entries.map((e) => dependenciesOf(e.policy, e.config));
  entries.forEach((e, i) => {
    const d = deps[i];
    for (const cap of d.requires ?? []) {
      if (deps.slice(0, i).some((x) => x.provides?.includes(cap))) continue;
      const later = entries.findIndex((x, j) => j > i && deps[j].provides?.includes(cap));
      const message =
        later !== -1
          ? `\`${e.name}\` needs \`${cap}\`, which \`${entries[later].name}\` provides only below it: move \`${entries[later].name}\` above \`${e.name}\``
          : `\`${e.name}\` needs \`${cap}\`, which no policy above it provides: add ${providersOf(cap, registered).join(' or ') || 'a policy providing it'} above \`${e.name}\``;
      issues.push({ path: `${e.path}.${e.name}`, message });
    }
    for (const cap of d.after ?? []) {
      const above = entries.findIndex((x, j) => j < i && deps[j].provides?.includes(cap));
      if (above === -1) continue;
      issues.push({
        path: `${e.path}.${e.name}`,
        message: `\`${e.name}\` must see the response only after \`${entries[above].name}\` (${cap}), whose response phase runs after it from this position: move \`${e.name}\` above \`${entries[above].name}\``,
      });
    }
  });
  return issues;
}
