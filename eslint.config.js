// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

const impure = {
  patterns: [
    {
      group: ['node:*'],
      message: 'engine/ and actions/ are pure: no IO. runtime/ carries out their effects.',
    },
    { group: ['aedes', 'mqtt', 'level', 'classic-level', 'pino'], message: 'engine/ and actions/ are pure.' },
    {
      // At any depth: `../runtime/x.js` from engine/, `../../runtime/x.js` from engine/kinds/.
      group: ['runtime', 'broker', 'store', 'upstream', 'ingest', 'dashboard'].flatMap((dir) => [
        `**/${dir}`,
        `**/${dir}/**`,
      ]),
      message: 'engine/ and actions/ depend only on shared/ and rules/.',
    },
  ],
};

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'build/out/',
      'node_modules/',
      'coverage/',
      'test/bench/results/',
      'src/dashboard/assets/vendor/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Stages refer to each other through closures before every one of them exists.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // A function a newcomer can read on one screen or two (docs/architecture.md).
    files: ['src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 100 }],
    },
  },
  {
    files: ['src/engine/**/*.ts', 'src/actions/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', impure],
      'no-restricted-globals': [
        'error',
        'setTimeout',
        'setInterval',
        'setImmediate',
        'process',
        'Buffer',
        'performance',
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Time is an input of the engine.' },
        { object: 'Math', property: 'random', message: 'The engine is deterministic.' },
      ],
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  prettier,
);
