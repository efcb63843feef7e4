// ESLint (flat config): @eslint/js and typescript-eslint "recommended", the syntactic sets that need no type
// information, so the whole tree lints in seconds. Formatting is prettier's job (prettier.config.js): no stylistic
// rules here.
//
// Not enabled: @typescript-eslint/no-floating-promises and the other type-aware rules. They need a TypeScript program
// (parserOptions.projectService): measured here, no-floating-promises alone doubles `npm run lint` (7 s to 15 s) and
// found nothing in the tree as it is.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: ['dist/**', 'build/**', 'node_modules/**', 'data/**', 'firmware-bridge/c/**', 'models/**'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      // Node 20 globals for the few plain JS files (agent/bin, scripts, test fakes). In TypeScript files the compiler
      // checks undefined names, and typescript-eslint turns no-undef off there.
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
      },
    },
    rules: {
      // A leading underscore marks a name that is unused on purpose: dropping a key from a copy
      // (`const { default: _unused, ...rest } = node`), or a callback parameter kept for its position.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      // Off: the agent rejects control characters on purpose (NUL in MQTT response topics, control bytes in
      // ipmitool output), and a regular expression is the clearest way to say so.
      'no-control-regex': 'off',
    },
  },
  {
    // The console's pages (plain ES modules run by the browser, no build step): browser globals, no Node ones.
    // Listed by hand rather than from the `globals` package, which is only a transitive dependency here.
    files: ['agent/src/central/console/static/**/*.js'],
    languageOptions: {
      globals: {
        window: 'readonly',
        document: 'readonly',
        location: 'readonly',
        history: 'readonly',
        navigator: 'readonly',
        fetch: 'readonly',
        URL: 'readonly',
        URLSearchParams: 'readonly',
        EventSource: 'readonly',
        Event: 'readonly',
        Node: 'readonly',
        Element: 'readonly',
        ResizeObserver: 'readonly',
        Intl: 'readonly',
        queueMicrotask: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        console: 'readonly',
        process: 'off',
        Buffer: 'off',
        setImmediate: 'off',
      },
    },
  },
);
