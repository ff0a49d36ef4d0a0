// Lint is part of `npm test`. The rules that matter here guard against lost work:
// a floating promise in a producer or consumer path silently drops events.
import tseslint from 'typescript-eslint'

// Each outside library behind its own folder, so it can be replaced there alone
// (docs/ARCHITECTURE.md). `allowed`: the folders that may import it; tests, benchmarks,
// examples and scripts may import anything.
const BACKENDS = [
  { name: 'kafka', modules: ['kafkajs', '@platformatic/kafka'], allowed: ['src/kafka'],
    message: 'import the Kafka client only in src/kafka; use its exports (BatchingProducer, KafkaAdmin, ConsumerRunner, ...)' },
  { name: 'registry', modules: ['@kafkajs/confluent-schema-registry'], allowed: ['src/avro'],
    message: 'import the schema registry client only in src/avro (SchemaCodec)' },
  { name: 'clickhouse', modules: ['@clickhouse/client', '@clickhouse/client-common', 'chdb'], allowed: ['src/clickhouse', 'tools'],
    message: 'import ClickHouse and chDB only in src/clickhouse; use its facade (openClickHouse, ClickHouse)' },
  { name: 'state', modules: ['ioredis', 'lmdb'], allowed: ['src/state', 'src/identity'],
    message: 'import Redis and LMDB only in src/state and src/identity' },
]
// the direct-producer kit is for services that already use kafkajs and its registry client
const EXTRA_ALLOWED = { 'src/producer': ['kafka', 'registry'] }

const restrictImports = (allowedNames) => ['error', {
  patterns: BACKENDS.filter((b) => !allowedNames.includes(b.name))
    .map((b) => ({ group: b.modules.flatMap((m) => [m, `${m}/*`]), message: b.message })),
}]
// no-restricted-imports sees only static imports; a module loaded by name at run time
// (`await import('kafkajs')`, `createRequire(import.meta.url)('chdb/connection')`, `require(...)`)
// or named in a type (`typeof import('chdb')`) is caught here. esquery's regex literal cannot hold
// a '/', hence \u002f.
const moduleRegex = (modules) => `/^(${modules.map((m) => m.replaceAll('/', '\\u002f').replaceAll('.', '\\.')).join('|')})(\\u002f|$)/`
const restrictLoads = (allowedNames) => ['error', ...BACKENDS.filter((b) => !allowedNames.includes(b.name)).flatMap((b) => {
  const re = moduleRegex(b.modules)
  return [
    `ImportExpression[source.value=${re}]`,
    `CallExpression[callee.name='require'][arguments.0.value=${re}]`,
    `CallExpression[callee.callee.name='createRequire'][arguments.0.value=${re}]`,
    `TSImportType[argument.literal.value=${re}]`,
  ].map((selector) => ({ selector, message: b.message }))
})]
const folders = [...new Set([...BACKENDS.flatMap((b) => b.allowed), ...Object.keys(EXTRA_ALLOWED)])]
const rulesFor = (allowedNames) => ({ 'no-restricted-imports': restrictImports(allowedNames), 'no-restricted-syntax': restrictLoads(allowedNames) })
const importRules = [
  { files: ['src/**/*.ts', 'tools/**/*.ts'], rules: rulesFor([]) },
  ...folders.map((folder) => ({
    files: [`${folder}/**/*.ts`],
    rules: rulesFor([
      ...BACKENDS.filter((b) => b.allowed.includes(folder)).map((b) => b.name),
      ...(EXTRA_ALLOWED[folder] ?? []),
    ]),
  })),
]

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
  ...importRules,
)
