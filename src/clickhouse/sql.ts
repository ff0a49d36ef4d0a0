/**
 * SQL text helpers: identifier quoting, and the statement check in front of analyst queries.
 *
 * The check is a small tokenizer that knows ClickHouse's comments (`--`, `# `, `#!`, nested
 * block comments), string literals (backslash escapes and doubled quotes), quoted identifiers
 * and heredocs (`$tag$...$tag$`), so a keyword inside a string or a comment cannot hide a second
 * statement and a keyword in a comment cannot fake the first one. Anything it cannot tokenize
 * is refused.
 *
 * It is not the only guard: queries also run with `readonly = 1`. It covers what readonly
 * leaves open, measured on chDB 26.7: `SELECT ... INTO OUTFILE` writes a file, the scalar
 * `file()` reads any local file, `DESCRIBE file(...)` infers a schema from one, and chDB runs
 * `a; b` as two statements.
 */
import { CdpError } from '../errors.js'

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/

/** `name` as a backquoted identifier; refuses anything but [A-Za-z_][A-Za-z0-9_]*. */
export function quoteIdent(name: string): string {
  if (!IDENT.test(name)) throw new CdpError('config_invalid', `not a valid ClickHouse identifier: ${JSON.stringify(name)}`)
  return `\`${name}\``
}

const WORD = /[A-Za-z_][A-Za-z0-9_$]*/y
const NUMBER = /[0-9][A-Za-z0-9_.]*/y
const HEREDOC = /\$([A-Za-z_][A-Za-z0-9_]*)?\$/y

export interface Token {
  kind: 'word' | 'quoted' | 'string' | 'number' | 'punct'
  /** a word or quoted identifier without quotes; a punctuation character */
  text: string
}

export type TokenizeResult = { ok: true; tokens: Token[] } | { ok: false; reason: string }

export function tokenize(sql: string): TokenizeResult {
  const tokens: Token[] = []
  let i = 0
  const n = sql.length
  const quoted = (quote: string): { end: number; text: string } | undefined => {
    let j = i + 1
    let text = ''
    while (j < n) {
      const ch = sql[j] as string
      if (ch === '\\') { text += sql[j + 1] ?? ''; j += 2; continue }
      if (ch === quote) {
        if (sql[j + 1] === quote) { text += quote; j += 2; continue }
        return { end: j + 1, text }
      }
      text += ch
      j++
    }
    return undefined
  }
  while (i < n) {
    const c = sql[i] as string
    if (/\s/.test(c)) { i++; continue }
    if (c === '-' && sql[i + 1] === '-') { i = lineEnd(sql, i); continue }
    if (c === '#') {
      // ClickHouse reads '# ' and '#!' as comments and rejects any other '#'
      if (sql[i + 1] === ' ' || sql[i + 1] === '!') { i = lineEnd(sql, i); continue }
      return { ok: false, reason: `unexpected '#' at position ${i}` }
    }
    if (c === '/' && sql[i + 1] === '*') {
      let depth = 1
      let j = i + 2
      while (j < n && depth > 0) {
        if (sql[j] === '/' && sql[j + 1] === '*') { depth++; j += 2 } else if (sql[j] === '*' && sql[j + 1] === '/') { depth--; j += 2 } else j++
      }
      if (depth > 0) return { ok: false, reason: 'unterminated comment' }
      i = j
      continue
    }
    if (c === '\'' || c === '"' || c === '`') {
      const q = quoted(c)
      if (q === undefined) return { ok: false, reason: `unterminated ${c === '\'' ? 'string' : 'quoted identifier'}` }
      tokens.push({ kind: c === '\'' ? 'string' : 'quoted', text: q.text })
      i = q.end
      continue
    }
    if (c === '$') {
      HEREDOC.lastIndex = i
      const m = HEREDOC.exec(sql)
      if (m !== null) {
        const end = sql.indexOf(m[0], i + m[0].length)
        if (end < 0) return { ok: false, reason: 'unterminated heredoc' }
        tokens.push({ kind: 'string', text: sql.slice(i + m[0].length, end) })
        i = end + m[0].length
        continue
      }
    }
    WORD.lastIndex = i
    const word = WORD.exec(sql)
    if (word !== null) { tokens.push({ kind: 'word', text: word[0] }); i += word[0].length; continue }
    NUMBER.lastIndex = i
    const num = NUMBER.exec(sql)
    if (num !== null) { tokens.push({ kind: 'number', text: num[0] }); i += num[0].length; continue }
    tokens.push({ kind: 'punct', text: c })
    i++
  }
  return { ok: true, tokens }
}

function lineEnd(sql: string, from: number): number {
  const nl = sql.indexOf('\n', from)
  return nl < 0 ? sql.length : nl + 1
}

const READ_STATEMENTS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN'])

/** table (and scalar) functions that reach outside the database: files, network, processes */
const OUTSIDE_FUNCTIONS = new Set([
  'file', 'filecluster', 'url', 'urlcluster', 'remote', 'remotesecure', 'cluster', 'clusterallreplicas',
  'mysql', 'postgresql', 'mongodb', 'redis', 'sqlite', 'odbc', 'jdbc', 'executable', 'input', 'hive',
  'arrowflight', 'ytsaurus', 'python', 'oss', 'cos', 'cosn', 'gcs', 'hdfs', 'hdfscluster',
])
const OUTSIDE_PREFIXES = ['s3', 'azureblobstorage', 'iceberg', 'deltalake', 'hudi', 'paimon']

function reachesOutside(name: string): boolean {
  const n = name.toLowerCase()
  return OUTSIDE_FUNCTIONS.has(n) || OUTSIDE_PREFIXES.some((p) => n.startsWith(p))
}

export type ReadOnlyCheck = { ok: true; kind: string } | { ok: false; reason: string }

/** Whether `sql` is one statement that only reads: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN. */
export function checkReadOnlySql(sql: string): ReadOnlyCheck {
  const t = tokenize(sql)
  if (!t.ok) return t
  const tokens = t.tokens
  while (tokens.length > 0 && tokens[tokens.length - 1]?.text === ';' && tokens[tokens.length - 1]?.kind === 'punct') tokens.pop()
  if (tokens.some((tk) => tk.kind === 'punct' && tk.text === ';')) return { ok: false, reason: 'one statement per query' }
  const first = tokens.find((tk) => !(tk.kind === 'punct' && tk.text === '('))
  if (first === undefined) return { ok: false, reason: 'empty query' }
  const kind = first.kind === 'word' ? first.text.toUpperCase() : ''
  if (!READ_STATEMENTS.has(kind)) {
    return { ok: false, reason: `only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN are allowed, not ${first.kind === 'word' ? first.text : JSON.stringify(first.text)}` }
  }
  for (let k = 0; k < tokens.length; k++) {
    const tk = tokens[k] as Token
    const next = tokens[k + 1]
    if (tk.kind === 'word' && tk.text.toUpperCase() === 'INTO' && next?.kind === 'word' && next.text.toUpperCase() === 'OUTFILE') {
      return { ok: false, reason: 'INTO OUTFILE is not allowed' }
    }
    if ((tk.kind === 'word' || tk.kind === 'quoted') && next?.kind === 'punct' && next.text === '(' && reachesOutside(tk.text)) {
      return { ok: false, reason: `function ${tk.text}() reaches outside the database and is not allowed` }
    }
  }
  return { ok: true, kind: kind === 'DESC' ? 'DESCRIBE' : kind }
}
