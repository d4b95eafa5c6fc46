/**
 * `npm run check:cycles`: no import cycles among the hub's modules. Type-only imports are left
 * out (they vanish when compiled: `tsPreCompilationDeps: false`), as BullMQ's madge check does.
 * The folder direction (api/ and workers/ never import each other, lib/ imports none of them…)
 * is enforced by ESLint (`eslint.config.js`), where an editor shows it.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A module must not depend on itself through others.',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/|\\.test\\.ts$' },
    tsPreCompilationDeps: false,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
