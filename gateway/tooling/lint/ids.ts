/**
 * The lint rule ids and the route key that waives them. Kept apart from the rules so the config schema
 * can name the ids without loading the rules. An id is a contract: waivers in users' files name it.
 */
export const LINT_RULE_IDS = ['HCGW-L001', 'HCGW-L002', 'HCGW-L003', 'HCGW-L004', 'HCGW-L005', 'HCGW-L006', 'HCGW-L007', 'HCGW-L008', 'HCGW-L009'] as const;
export type LintRuleId = (typeof LINT_RULE_IDS)[number];

export interface RouteLintConfig {
  waive: Array<{ rule: LintRuleId; reason: string }>;
}

/** `routes[].lint`: a waiver names a known rule and says why; an unknown id or a missing reason is a config error. */
export const routeLintProperty = {
  lint: {
    type: 'object',
    additionalProperties: false,
    required: ['waive'],
    description: '`hcgw validate --strict` settings of this route (docs/policy-tooling.md)',
    properties: {
      waive: {
        type: 'array',
        description: 'Lint findings accepted on this route, each with the reason a reviewer can check',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['rule', 'reason'],
          properties: {
            rule: { enum: [...LINT_RULE_IDS], description: 'The rule id (HCGW-L001…)' },
            reason: { type: 'string', pattern: '\\S', minLength: 10, description: 'Why this route may break the rule (printed with the waived finding)' },
          },
        },
      },
    },
  },
} as const;
