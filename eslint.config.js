// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/, bottom first: a module may import its own layer and the layers below it,
 * never one above (README, "Layout"). Each entry names the layer's files and the import paths that
 * reach it from elsewhere in src/ (a folder, or a file at the root of src/).
 */
const LAYERS = [
  {
    name: 'errors',
    files: ['src/errors.ts', 'src/describe.ts'],
    targets: ['errors.js', 'describe.js'],
  },
  { name: 'limiter', files: ['src/limiter/**'], targets: ['limiter/*'] },
  { name: 'contracts', files: ['src/clock.ts', 'src/store.ts'], targets: ['clock.js', 'store.js'] },
  { name: 'memory', files: ['src/memory/**'], targets: ['memory/*'] },
  { name: 'machines', files: ['src/machines/**'], targets: ['machines/*'] },
  { name: 'breaker', files: ['src/breaker/**'], targets: ['breaker/*'] },
  { name: 'observe', files: ['src/observe/**'], targets: ['observe/*'] },
  { name: 'actors', files: ['src/actors/**'], targets: ['actors/*'] },
  { name: 'redis', files: ['src/redis/**'], targets: ['redis/*'] },
  { name: 'llm', files: ['src/llm/**'], targets: ['llm/*'] },
  { name: 'index', files: ['src/index.ts'], targets: ['index.js'] },
];

/** One config block per layer: imports of any layer above it are errors. */
const layerRules = LAYERS.map((layer, i) => {
  const above = LAYERS.slice(i + 1).flatMap((l) => l.targets);
  const group = above.flatMap((t) => [`./${t}`, `../${t}`]);
  return {
    files: layer.files,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns:
            group.length === 0
              ? []
              : [
                  {
                    group,
                    message: `src/${layer.name} is below the modules it imports here: imports point down (see the layers in eslint.config.js).`,
                  },
                ],
        },
      ],
    },
  };
});

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'test/consumers/**',
      '.stryker-tmp/**',
      'reports/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='Date'][property.name='now']",
          message: 'Read time from the injected clock.',
        },
      ],
    },
  },
  ...layerRules,
  {
    files: ['scripts/**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        performance: 'readonly',
      },
    },
  },
  {
    files: ['test/**', 'bench/**', 'examples/**'],
    rules: {
      'no-restricted-syntax': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
