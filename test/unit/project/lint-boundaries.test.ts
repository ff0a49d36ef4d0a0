/**
 * Issue 9: "only src/kafka imports the Kafka library, only src/clickhouse imports
 * @clickhouse/client and chdb, only src/state and src/identity import ioredis and lmdb; a lint
 * rule enforces it". This runs the project's own eslint.config.js on small snippets placed at
 * virtual paths, so a rule that stops matching (a renamed folder, a glob typo, a loading form the
 * rule cannot see) fails here rather than letting an import through silently.
 *
 * Only the boundary rules run, and without type information: the virtual files are in no
 * tsconfig project, and the type-aware rules have nothing to say about imports.
 */
import t from 'tap'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const BOUNDARY_RULES = new Set(['no-restricted-imports', 'no-restricted-syntax'])
const eslint = new ESLint({
  cwd: root,
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
  ruleFilter: ({ ruleId }) => BOUNDARY_RULES.has(ruleId),
})

/** the boundary messages for `code` as if it were the file at `path` (relative to the repo) */
async function boundaryErrors(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: resolve(root, path) })
  const fatal = result!.messages.filter((m) => m.fatal === true)
  if (fatal.length > 0) throw new Error(`${path}: ${fatal.map((m) => m.message).join('; ')}`)
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`)
}

/** every way a module is loaded in this code base: static, type-only, dynamic, createRequire, require */
const FORMS: Record<string, (m: string) => string> = {
  'static import': (m) => `import * as x from '${m}'\nexport { x }\n`,
  'type import': (m) => `import type * as x from '${m}'\nexport type X = typeof x\n`,
  'dynamic import': (m) => `export const x = await import('${m}')\n`,
  'createRequire': (m) => `import { createRequire } from 'node:module'\nexport const x: unknown = createRequire(import.meta.url)('${m}')\n`,
  'require': (m) => `declare const require: (id: string) => unknown\nexport const x = require('${m}')\n`,
  'typeof import': (m) => `export type X = typeof import('${m}')\n`,
}

const CASES = [
  { modules: ['kafkajs', '@platformatic/kafka'], allowed: ['src/kafka/x.ts', 'src/producer/x.ts'], refused: ['src/pipeline/x.ts', 'src/http/x.ts', 'src/clickhouse/x.ts', 'tools/x.ts'], says: /src\/kafka/ },
  { modules: ['@clickhouse/client', 'chdb', 'chdb/connection'], allowed: ['src/clickhouse/x.ts', 'tools/clickhouse-gateway/x.ts'], refused: ['src/pipeline/x.ts', 'src/privacy/x.ts', 'src/kafka/x.ts', 'src/app/x.ts'], says: /src\/clickhouse/ },
  { modules: ['ioredis', 'lmdb'], allowed: ['src/state/x.ts', 'src/identity/x.ts'], refused: ['src/pipeline/x.ts', 'src/auth/x.ts', 'src/clickhouse/x.ts', 'tools/x.ts'], says: /src\/state and src\/identity/ },
]

for (const c of CASES) {
  void t.test(`${c.modules.join(', ')}: refused outside ${c.allowed.join(', ')}`, async (t) => {
    for (const m of c.modules) {
      for (const [form, code] of Object.entries(FORMS)) {
        for (const path of c.refused) {
          const errors = await boundaryErrors(path, code(m))
          t.ok(errors.length >= 1 && errors.every((e) => c.says.test(e)), `${form} of ${m} in ${path} is reported`, { errors })
        }
        for (const path of c.allowed) t.same(await boundaryErrors(path, code(m)), [], `${form} of ${m} in ${path} is allowed`)
      }
    }
  })
}

void t.test('nothing else is caught: node modules, relative paths, look-alike names and strings', async (t) => {
  const code = [
    "import { createRequire } from 'node:module'",
    "import { z } from './kafkajs.js'",
    "import * as lm from 'lmdb-extra-not-a-dep'",
    "export const a = await import('../chdb/thing.js')",
    "export const b: unknown = createRequire(import.meta.url)('kafkajs-like')",
    "export const c = ['kafkajs', 'chdb', 'ioredis'].join(', ')",
    'export { z, lm }',
  ].join('\n')
  t.same(await boundaryErrors('src/pipeline/x.ts', code), [])
})
