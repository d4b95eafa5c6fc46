// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Folder direction (docs/architecture.md, "Dependency direction"), from the bottom up:
 * lib (what every part uses) ← domain (the channels' rules) ← db (SQL, one owner per table)
 * ← queues (BullMQ queues over db's durable work records) ← api | workers (never each other)
 * ← athena (the AI connector, a service built from those parts; nothing imports it).
 * bin/ wires them together. A folder imports only from the folders below it. ui/ (the pages,
 * bundled for browsers) imports none of them: it speaks the public API.
 */
const boundary = (from, banned) => ({
  files: [`${from}/**/*.ts`, `${from}/**/*.tsx`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: banned.map(folder => ({
          group: [`**/${folder}/*`, `../${folder}/*`, `./${folder}/*`],
          message: `${from}/ must not import ${folder}/ (see docs/architecture.md, "Dependency direction").`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  // loadtest/ holds k6 scripts, type-checked against @types/k6 by `tsc -p loadtest`.
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'loadtest/**',
      '.dependency-cruiser.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      eqeqeq: ['error', 'smart'],
      curly: ['error', 'multi-line'],
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Read configuration through lib/config.ts.',
        },
      ],
    },
  },
  {
    files: ['lib/config.ts', 'test/**/*.ts', 'bench/**/*.ts', 'vitest.config.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Tests read untyped response bodies (supertest's `any`) and write stand-in processors
    // that need not await; promise rules stay on.
    files: ['test/**/*.ts', '**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
  boundary('api', ['workers', 'athena', 'bin']),
  boundary('workers', ['api', 'athena', 'bin']),
  boundary('athena', ['bin']),
  boundary('queues', ['api', 'workers', 'athena', 'bin']),
  boundary('db', ['queues', 'api', 'workers', 'athena', 'bin']),
  boundary('domain', ['db', 'queues', 'api', 'workers', 'athena', 'bin']),
  boundary('lib', ['domain', 'db', 'queues', 'api', 'workers', 'athena', 'bin']),
  // The pages run in browsers and speak the public API only.
  boundary('ui', ['lib', 'domain', 'db', 'queues', 'api', 'workers', 'athena', 'bin']),
);
