/**
 * Architecture rules checked by `npm run lint` (dependency-cruiser):
 * - policies and plugins are written against the Policy SDK: they import `gateway/sdk/` and the pure helpers
 *   in `gateway/lib/`, never other core internals (tests may);
 * - `gateway/lib/` stays pure: it imports only itself (and packages);
 * - no import cycles anywhere.
 */
module.exports = {
  forbidden: [
    {
      name: 'policy-imports-core',
      comment: 'Policies and plugins import only gateway/sdk/ and gateway/lib/ (the SDK is the contract; see docs/sdk.md).',
      severity: 'error',
      from: { path: '^(policies|plugins)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^gateway/', pathNot: '^gateway/(sdk|lib)/' },
    },
    {
      name: 'lib-is-pure',
      comment: 'gateway/lib/ holds pure helpers: it may not reach into the rest of the gateway.',
      severity: 'error',
      from: { path: '^gateway/lib/' },
      to: { path: '^(gateway|policies|plugins)/', pathNot: '^gateway/(lib/|sdk/(types|errors)\.ts$)' },
    },
    {
      name: 'no-cycles',
      comment: 'Import cycles make load order matter and modules impossible to test alone.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs'] },
  },
};
