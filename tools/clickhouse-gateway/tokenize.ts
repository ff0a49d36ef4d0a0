/**
 * A small tokenizer of ClickHouse SQL for the development gateway: it tells one statement from
 * several, finds the statement's first keyword and where an INSERT's data clause starts. It
 * knows ClickHouse's comments (`--`, `#`, nested block comments), string literals, quoted
 * identifiers and heredocs, so a `;` inside them is not a statement boundary. A development aid
 * only: the service's analyst guard relies on ClickHouse's own parser (src/clickhouse/guard.ts),
 * never on this.
 */
const WORD = /[A-Za-z_][A-Za-z0-9_$]*/y
const NUMBER = /[0-9][A-Za-z0-9_.]*/y
const HEREDOC = /\$([A-Za-z_][A-Za-z0-9_]*)?\$/y

export interface Token {
  kind: 'word' | 'quoted' | 'string' | 'number' | 'punct'
  /** a word or quoted identifier without quotes; a punctuation character */
  text: string
  /** where the token starts in the statement (UTF-16 index), so that a statement can be rewritten around it */
  start: number
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
      tokens.push({ kind: c === '\'' ? 'string' : 'quoted', text: q.text, start: i })
      i = q.end
      continue
    }
    if (c === '$') {
      HEREDOC.lastIndex = i
      const m = HEREDOC.exec(sql)
      if (m !== null) {
        const end = sql.indexOf(m[0], i + m[0].length)
        if (end < 0) return { ok: false, reason: 'unterminated heredoc' }
        tokens.push({ kind: 'string', text: sql.slice(i + m[0].length, end), start: i })
        i = end + m[0].length
        continue
      }
    }
    WORD.lastIndex = i
    const word = WORD.exec(sql)
    if (word !== null) { tokens.push({ kind: 'word', text: word[0], start: i }); i += word[0].length; continue }
    NUMBER.lastIndex = i
    const num = NUMBER.exec(sql)
    if (num !== null) { tokens.push({ kind: 'number', text: num[0], start: i }); i += num[0].length; continue }
    tokens.push({ kind: 'punct', text: c, start: i })
    i++
  }
  return { ok: true, tokens }
}

function lineEnd(sql: string, from: number): number {
  const nl = sql.indexOf('\n', from)
  return nl < 0 ? sql.length : nl + 1
}
