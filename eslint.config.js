// Lint is part of `npm test`. The rules that matter here guard against lost work:
// a floating promise in a producer or consumer path silently drops events.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'clients/*/dist/**', 'node_modules/**', '.stack/**', '.data/**', 'bin/**', 'eslint.config.js'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      'no-restricted-properties': ['error',
        { object: 't', property: 'only', message: 'no .only in committed tests' },
        { object: 'tap', property: 'only', message: 'no .only in committed tests' },
        { object: 'process', property: 'env', message: 'read process.env only in src/config' },
      ],
    },
  },
  {
    // config loading, and the scripts, examples and tests around the service, may read the environment
    files: ['src/config/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', 'examples/**/*.ts'],
    rules: { 'no-restricted-properties': ['error',
      { object: 't', property: 'only', message: 'no .only in committed tests' },
      { object: 'tap', property: 'only', message: 'no .only in committed tests' }] },
  },
)
