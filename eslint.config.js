// Lint: typed rules on every TypeScript file; the task rules keep all asynchronous work counted.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Every promise is awaited or handed to spawn()/settle() in src/tasks.ts, which count it:
      // `void promise` would be an uncounted task.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      // Deferred work outside the task helpers would escape the task metrics.
      'no-restricted-globals': ['error',
        { name: 'setImmediate', message: 'use spawn() from src/tasks.ts' },
        { name: 'queueMicrotask', message: 'use spawn() from src/tasks.ts' },
      ],
      'no-restricted-properties': ['error',
        { object: 'process', property: 'nextTick', message: 'use spawn() from src/tasks.ts' },
      ],
      // Only src/native/binding.ts loads native code.
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.name='require']",
        message: 'native modules are loaded only in src/native/binding.ts',
      }],
    },
  },
  {
    // Plain JavaScript (the install-time model fetcher): no type information to lint with.
    files: ['**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly' } },
  },
  {
    // The live page: plain browser JavaScript (no build step), linted without types.
    files: ['src/web/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, sourceType: 'module' },
    rules: { ...tseslint.configs.disableTypeChecked.rules, 'no-undef': 'off' },
  },
  {
    // node:test's describe() and it() return promises the runner itself tracks.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off' },
  },
  {
    files: ['src/native/binding.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
