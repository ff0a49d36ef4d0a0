/**
 * The import graph of src/: no cycle between files or folders, and no arrow that points up the
 * layer order below. A folder may import its own layer or any layer beneath it; a cycle
 * between two folders of one layer is still a cycle. The checker itself is tested on small
 * hand-made graphs first, so a broken checker cannot pass the real tree.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** bottom to top: the data flow reads upward (HTTP and topic in, ClickHouse out, all wired in app) */
const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'lib'],
  ['config'],
  ['observability'],
  ['avro', 'contracts', 'state'],
  ['identity', 'clickhouse', 'kafka', 'auth'],
  // privacy joins the identity graph, ClickHouse and the state stores for erasures; ingest and
  // pipeline ask it about suppression and pseudonymization
  ['privacy'],
  ['ingest', 'pipeline', 'producer'],
  ['http'],
  ['app'],
  ['cli'],
]

interface Edge { from: string; to: string }

/** src-relative path -> its folder ('errors.ts' -> 'errors', 'kafka/admin.ts' -> 'kafka') */
const folderOf = (file: string): string => file.includes('/') ? file.slice(0, file.indexOf('/')) : file.replace(/\.ts$/, '')

/** strongly connected components with more than one member (or a self-loop): the cycles */
function cycles(nodes: Iterable<string>, edges: readonly Edge[]): string[][] {
  const out = new Map<string, string[]>()
  for (const e of edges) out.set(e.from, [...(out.get(e.from) ?? []), e.to])
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++
    stack.push(v); on.add(v)
    for (const w of out.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)) }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string
      do { w = stack.pop()!; on.delete(w); scc.push(w) } while (w !== v)
      if (scc.length > 1 || (out.get(v) ?? []).includes(v)) found.push(scc.sort())
    }
  }
  for (const n of nodes) if (!idx.has(n)) visit(n)
  return found
}

/** every problem of a file graph: unknown folders, upward arrows, file cycles, folder cycles */
function checkGraph(edges: readonly Edge[], layers = LAYERS): string[] {
  const rank = new Map<string, number>()
  layers.forEach((names, i) => { for (const n of names) rank.set(n, i) })
  const problems: string[] = []
  const files = new Set(edges.flatMap((e) => [e.from, e.to]))
  for (const f of files) if (!rank.has(folderOf(f))) problems.push(`${f}: folder ${folderOf(f)} has no layer (add it to LAYERS)`)
  for (const e of edges) {
    const a = rank.get(folderOf(e.from))
    const b = rank.get(folderOf(e.to))
    if (a !== undefined && b !== undefined && b > a) problems.push(`upward: ${e.from} -> ${e.to} (${folderOf(e.from)} is below ${folderOf(e.to)})`)
  }
  for (const c of cycles(files, edges)) problems.push(`file cycle: ${c.join(' -> ')}`)
  const folderEdges = edges.map((e) => ({ from: folderOf(e.from), to: folderOf(e.to) })).filter((e) => e.from !== e.to)
  for (const c of cycles(new Set(folderEdges.flatMap((e) => [e.from, e.to])), folderEdges)) problems.push(`folder cycle: ${c.join(' <-> ')}`)
  return problems
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s+'([^']+)'/g

/** the module specifiers a file imports (static, type-only, re-exports, side effects, dynamic) */
function parseImports(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]).filter((s): s is string => s !== undefined)
}

/** the relative imports of every .ts file under `root`, as root-relative edges; imports leaving root (tools/) are not layered here */
function readGraph(root: string): Edge[] {
  const edges: Edge[] = []
  const walk = (dir: string): void => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name)
      if (ent.isDirectory()) { walk(p); continue }
      if (!ent.name.endsWith('.ts')) continue
      const text = readFileSync(p, 'utf8')
      for (const spec of parseImports(text)) {
        if (!spec.startsWith('.')) continue
        const to = relative(root, resolve(dirname(p), spec).replace(/\.js$/, '.ts'))
        if (!to.startsWith('..')) edges.push({ from: relative(root, p), to })
      }
    }
  }
  walk(root)
  return edges
}

void t.test('the checker finds upward arrows and cycles in a bad graph', async (t) => {
  const bad: Edge[] = [
    { from: 'pipeline/service.ts', to: 'http/routes/query.ts' }, // pipeline sits below http
    { from: 'kafka/a.ts', to: 'kafka/b.ts' },
    { from: 'kafka/b.ts', to: 'kafka/a.ts' }, // file cycle inside a folder
    { from: 'state/x.ts', to: 'avro/y.ts' },
    { from: 'avro/z.ts', to: 'state/w.ts' }, // folder cycle within one layer
    { from: 'scratch/tmp.ts', to: 'errors.ts' }, // a folder nobody placed
  ]
  const problems = checkGraph(bad)
  t.ok(problems.some((p) => p.startsWith('upward: pipeline/service.ts -> http/routes/query.ts')), 'upward arrow')
  t.ok(problems.some((p) => p === 'file cycle: kafka/a.ts -> kafka/b.ts'), 'file cycle')
  t.ok(problems.some((p) => p === 'folder cycle: avro <-> state'), 'folder cycle')
  t.ok(problems.some((p) => p.startsWith('scratch/tmp.ts: folder scratch has no layer')), 'unplaced folder')
  t.equal(problems.length, 4, problems.join('\n'))
})

void t.test('a graph that only points down passes', async (t) => {
  t.same(checkGraph([
    { from: 'cli/main.ts', to: 'app/serve.ts' }, { from: 'app/serve.ts', to: 'http/app.ts' },
    { from: 'http/app.ts', to: 'ingest/service.ts' }, { from: 'ingest/service.ts', to: 'errors.ts' },
  ]), [])
})

void t.test('the import parser sees static, type-only, re-export, side-effect and dynamic imports', async (t) => {
  const text = [
    "import { a } from './a.js'",
    "import type { B } from '../b/index.js'",
    "export { c, type D } from './c.js'",
    "export * from './e.js'",
    "import './side-effect.js'",
    "const g = await import('./lazy.js')",
    "import {",
    "  h,",
    "  type H,",
    "} from 'node:fs'",
    "// a comment that says import x from 'nowhere' is not an import",
  ].join('\n')
  t.same(parseImports(text), ['./a.js', '../b/index.js', './c.js', './e.js', './side-effect.js', './lazy.js', 'node:fs'])
  const src = fileURLToPath(new URL('../../../src/', import.meta.url))
  t.ok(readGraph(src).some((e) => e.from === 'cli/main.ts' && e.to === 'cli/dispatch.ts'), 'reads the tree')
})

void t.test('src/ has no upward arrow and no cycle', async (t) => {
  const src = fileURLToPath(new URL('../../../src/', import.meta.url))
  t.same(checkGraph(readGraph(src)), [])
})
