/**
 * The analyst SQL guard: what a statement does is decided from ClickHouse's own parser and
 * analyzer on the same engine that will run it, never from a tokenizer of ours.
 *
 * Three looks, each run with `readonly = 1` and the caller's limits (analyst.ts):
 *
 * 1. `SELECT formatQuerySingleLine({sql:String})`: the text arrives as a bound parameter, so it
 *    cannot be SQL here. ClickHouse refuses a second statement ("Multi-statements are not
 *    allowed") and a syntax error, and returns one canonical statement without comments, with
 *    Unicode quotes, heredocs and `//` comments already turned into plain tokens. From here on
 *    only this canonical text is looked at and run: what runs is what was checked.
 * 2. `EXPLAIN AST <canonical>`: the parse tree, checked before anything is analysed (analysis
 *    may run scalar subqueries and infer schemas of table functions). Every node kind must be on
 *    an allow list, every function on an allow list, table functions other than `numbers` are
 *    refused, qualified table names must be allowed tables, and the statement must be a SELECT
 *    (or UNION of them), a DESCRIBE of an allowed table, or SHOW TABLES of the analyst
 *    database, with no SETTINGS, FORMAT or INTO OUTFILE of its own. A line the walker does not
 *    recognise is a refusal.
 *    ClickHouse applies the statement's own SETTINGS while it runs this EXPLAIN, before any tree
 *    exists; `readonly = 1` is what refuses them there (a SETTINGS that changes nothing gets
 *    through to the walker as a `Set` node, which is not on the list).
 * 3. `EXPLAIN QUERY TREE <canonical>` (SELECT only): the analyzer's resolved tree names every
 *    table it reads, including the ones a CTE or an unqualified name resolves to; each must be
 *    on the caller's table list.
 */

export type GuardResult =
  | { ok: true; kind: 'select' | 'describe' | 'show' }
  | { ok: false; reason: string }

/** Tables any analyst may name besides those of the analyst database: constants and counters only. */
export const SYSTEM_TABLES: ReadonlySet<string> = new Set(['system.one', 'system.numbers', 'system.zeros'])

/** Table functions allowed in FROM: bounded by max_rows_to_read and max_execution_time. */
const TABLE_FUNCTIONS: ReadonlySet<string> = new Set(['numbers', 'zeros'])

/** AST node kinds a read-only analyst SELECT is made of. Anything else is refused. */
const NODE_KINDS: ReadonlySet<string> = new Set([
  'SelectWithUnionQuery', 'SelectIntersectExceptQuery', 'SelectQuery', 'ExpressionList', 'Subquery', 'WithElement',
  'TablesInSelectQuery', 'TablesInSelectQueryElement', 'TableExpression', 'TableIdentifier', 'TableJoin', 'ArrayJoin',
  'Identifier', 'Literal', 'Function', 'Asterisk', 'QualifiedAsterisk', 'ColumnsRegexpMatcher', 'ColumnsListMatcher',
  'QualifiedColumnsRegexpMatcher', 'QualifiedColumnsListMatcher', 'ColumnsTransformerList', 'ColumnsExceptTransformer',
  'ColumnsReplaceTransformer', 'ColumnsReplaceTransformerReplacement', 'OrderByElement', 'WindowDefinition',
  'WindowListElement', 'SampleRatio', 'Interval', 'InterpolateElement',
  // DESCRIBE / SHOW TABLES roots
  'DescribeQuery', 'ShowTables',
])

/**
 * Ordinary functions analysts need: arithmetic, comparison, logic, conditionals, types, dates,
 * strings, JSON, arrays, maps, tuples, hashes, math, URLs. Nothing that reads files, hosts,
 * settings, dictionaries, the server's state or another table (joinGet, dictGet*, file, url,
 * getSetting, currentUser, ...). Names are compared in lower case.
 */
const ORDINARY = `
plus minus multiply divide intDiv intDivOrZero modulo moduloOrZero negate abs gcd lcm positiveModulo pmod
equals notEquals less greater lessOrEquals greaterOrEquals in notIn globalIn globalNotIn nullIn notNullIn
and or not xor if multiIf ifNull nullIf coalesce isNull isNotNull assumeNotNull toNullable isNaN isFinite isInfinite
like notLike ilike notILike match extract extractAll extractAllGroups extractGroups multiMatchAny multiSearchAny position positionCaseInsensitive
positionUTF8 locate countSubstrings countMatches
tuple tupleElement array arrayElement map mapKeys mapValues mapContains
lambda arrayMap arrayFilter arrayExists arrayAll arrayCount arraySum arrayAvg arrayMin arrayMax arrayFirst arrayLast
arrayFirstIndex arrayLastIndex arraySort arrayReverseSort arrayReverse arrayDistinct arrayUniq arrayJoin arrayConcat
arraySlice arrayPushBack arrayPushFront arrayPopBack arrayPopFront arrayEnumerate arrayEnumerateUniq arrayCompact
arrayZip arrayFlatten arrayStringConcat arrayIntersect arrayReduce arrayCumSum arrayDifference arrayShuffle arrayProduct
has hasAll hasAny hasSubstr indexOf length empty notEmpty range emptyArrayString emptyArrayUInt64 splitByChar
splitByString splitByRegexp splitByWhitespace
CAST _CAST toString toFixedString toInt8 toInt16 toInt32 toInt64 toUInt8 toUInt16 toUInt32 toUInt64 toFloat32 toFloat64
toDecimal32 toDecimal64 toDecimal128 toInt32OrNull toInt64OrNull toUInt64OrNull toFloat64OrNull toInt64OrZero
toFloat64OrZero toDecimal64OrNull toDateOrNull toDateTimeOrNull toDateTime64OrNull toBool toUUID toTypeName
reinterpretAsString accurateCastOrNull parseDateTimeBestEffort parseDateTimeBestEffortOrNull parseDateTime64BestEffort
parseDateTime64BestEffortOrNull
now now64 today yesterday toDate toDate32 toDateTime toDateTime64 toYear toQuarter toMonth toWeek toISOWeek toDayOfMonth
toDayOfWeek toDayOfYear toHour toMinute toSecond toUnixTimestamp toUnixTimestamp64Milli fromUnixTimestamp
fromUnixTimestamp64Milli toStartOfYear toStartOfQuarter toStartOfMonth toStartOfWeek toMonday toStartOfDay toStartOfHour
toStartOfMinute toStartOfFiveMinutes toStartOfFifteenMinutes toStartOfInterval toStartOfISOYear toTimeZone toYYYYMM toYYYYMMDD
dateDiff date_diff dateAdd dateSub addDays addHours addMinutes addSeconds addWeeks addMonths addYears subtractDays
subtractHours subtractMinutes subtractSeconds subtractWeeks subtractMonths subtractYears formatDateTime timeSlot
toIntervalSecond toIntervalMinute toIntervalHour toIntervalDay toIntervalWeek toIntervalMonth toIntervalQuarter toIntervalYear
age toRelativeDayNum toRelativeHourNum
lower upper lowerUTF8 upperUTF8 concat concatWithSeparator substring substr substringUTF8 left right leftUTF8 rightUTF8
trim trimLeft trimRight trimBoth ltrim rtrim replace replaceAll replaceOne replaceRegexpAll replaceRegexpOne
startsWith endsWith lengthUTF8 char_length reverse repeat format leftPad rightPad lpad rpad base64Encode base64Decode
tryBase64Decode hex unhex toValidUTF8 normalizeUTF8NFC
JSONExtract JSONExtractString JSONExtractInt JSONExtractUInt JSONExtractFloat JSONExtractBool JSONExtractRaw
JSONExtractArrayRaw JSONExtractKeys JSONExtractKeysAndValues JSONExtractKeysAndValuesRaw JSONHas JSONLength JSONType
isValidJSON simpleJSONExtractString simpleJSONExtractInt simpleJSONExtractFloat simpleJSONExtractBool simpleJSONHas
JSON_VALUE JSON_QUERY JSON_EXISTS toJSONString
cityHash64 sipHash64 sipHash128 xxHash64 murmurHash3_64 farmHash64 MD5 SHA1 SHA256 halfMD5
round roundBankers floor ceil ceiling trunc truncate sqrt cbrt exp log ln log2 log10 pow power greatest least sign
least greatest
domain domainWithoutWWW topLevelDomain protocol path pathFull queryString fragment cutQueryString extractURLParameter
extractURLParameters cutWWW
toIPv4 toIPv6 IPv4NumToString IPv4StringToNum
rand rand64 generateUUIDv4 isValidUTF8 bitAnd bitOr bitXor bitNot bitShiftLeft bitShiftRight
`

/** Aggregate and window functions; each may carry the combinators below (countIf, uniqExactIf, ...). */
const AGGREGATES = `
count sum avg min max any anyLast anyHeavy argMin argMax uniq uniqExact uniqCombined uniqHLL12 uniqTheta groupArray
groupUniqArray groupArraySorted groupBitmap topK topKWeighted quantile quantiles quantileExact quantileTiming
quantileTDigest median stddevPop stddevSamp varPop varSamp covarPop covarSamp corr sumWithOverflow avgWeighted
windowFunnel retention sequenceMatch sequenceCount histogram simpleLinearRegression first_value last_value
row_number rank dense_rank percent_rank cume_dist lag lead lagInFrame leadInFrame nth_value ntile
`

const COMBINATORS = ['If', 'Distinct', 'OrNull', 'OrDefault', 'Array', 'Merge', 'State', 'ForEach']

const words = (s: string): string[] => s.split(/\s+/).filter((w) => w !== '')
const ORDINARY_SET: ReadonlySet<string> = new Set(words(ORDINARY).map((w) => w.toLowerCase()))
const AGGREGATE_SET: ReadonlySet<string> = new Set(words(AGGREGATES).map((w) => w.toLowerCase()))

/** Whether `name` is an allowed ordinary or aggregate function (with combinator suffixes). */
export function allowedFunction(name: string): boolean {
  const n = name.toLowerCase()
  if (ORDINARY_SET.has(n) || AGGREGATE_SET.has(n)) return true
  // peel combinators from the end: countIf, uniqExactIfState, sumArrayIf ...
  let rest = name
  for (let i = 0; i < 4; i++) {
    const c = COMBINATORS.find((s) => rest.length > s.length && rest.endsWith(s))
    if (c === undefined) return false
    rest = rest.slice(0, -c.length)
    if (AGGREGATE_SET.has(rest.toLowerCase())) return true
  }
  return false
}

interface AstLine {
  depth: number
  kind: string
  /** the rest of the line after the kind (name, alias, children count) */
  rest: string
}

const LINE = /^( *)([A-Za-z]+)(?: (.*))?$/

function parseLines(text: string): AstLine[] | string {
  const out: AstLine[] = []
  for (const raw of text.split('\n')) {
    if (raw === '') continue
    const m = LINE.exec(raw)
    if (m === null) return `unrecognised parse tree line ${JSON.stringify(raw.slice(0, 80))}`
    out.push({ depth: m[1]!.length, kind: m[2]!, rest: m[3] ?? '' })
  }
  return out
}

/** `children N` of a line, if any */
function childCount(rest: string): number {
  const m = / ?\(children ([0-9]+)\)$/.exec(rest)
  return m === null ? 0 : Number(m[1])
}

/** Function name: one identifier word, then an optional alias and child count. */
const FUNCTION_REST = /^([A-Za-z_][A-Za-z0-9_]*)(?: \(alias .*\))?(?: \(children [0-9]+\))?$/
const TABLE_REST = /^([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?: \(alias .*\))?(?: \(children [0-9]+\))?$/

export interface AstPolicy {
  /** the analyst database: SHOW TABLES and DESCRIBE may name it */
  database: string
  /** `db.table` names the caller may read */
  tables: ReadonlySet<string>
  /** the format clickhouse-js appended to the EXPLAIN request (one root child `Identifier <it>`) */
  explainFormat: string
}

/**
 * Checks `EXPLAIN AST` output. The tree must be consistent (each node's declared child count
 * matches the lines under it) so that an identifier containing a line break cannot fake nodes.
 */
export function checkAst(text: string, policy: AstPolicy): GuardResult {
  const parsed = parseLines(text)
  if (typeof parsed === 'string') return { ok: false, reason: parsed }
  const lines = parsed
  if (lines.length === 0) return { ok: false, reason: 'empty parse tree' }
  // structure: depth steps by one, child counts match
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    if (i === 0 ? l.depth !== 0 : l.depth > lines[i - 1]!.depth + 1) return { ok: false, reason: 'malformed parse tree' }
    if (i > 0 && l.depth === 0) return { ok: false, reason: 'more than one statement' }
    let n = 0
    for (let j = i + 1; j < lines.length && lines[j]!.depth > l.depth; j++) if (lines[j]!.depth === l.depth + 1) n++
    if (n !== childCount(l.rest)) return { ok: false, reason: 'malformed parse tree' }
  }
  const root = lines[0]!
  const top = lines.filter((l) => l.depth === 1)
  const last = top[top.length - 1]
  if (last === undefined || last.kind !== 'Identifier' || last.rest !== policy.explainFormat) {
    return { ok: false, reason: 'unexpected statement shape' }
  }
  const own = top.slice(0, -1)
  let kind: 'select' | 'describe' | 'show'
  if (root.kind === 'SelectWithUnionQuery') {
    // only the list of SELECTs: a further child is INTO OUTFILE, FORMAT, SETTINGS or COMPRESSION
    if (own.length !== 1 || own[0]!.kind !== 'ExpressionList') return { ok: false, reason: 'SETTINGS, FORMAT and INTO OUTFILE are not allowed in the query' }
    kind = 'select'
  } else if (root.kind === 'DescribeQuery') {
    if (own.length !== 1 || own[0]!.kind !== 'TableExpression') return { ok: false, reason: 'DESCRIBE takes one table' }
    kind = 'describe'
  } else if (root.kind === 'ShowTables') {
    if (root.rest !== '(children 2)' || own.length !== 1 || own[0]!.kind !== 'Identifier' || own[0]!.rest !== policy.database) {
      return { ok: false, reason: `only SHOW TABLES FROM ${policy.database} is allowed` }
    }
    return { ok: true, kind: 'show' }
  } else {
    return { ok: false, reason: `only SELECT, DESCRIBE and SHOW TABLES are allowed, not ${root.kind}` }
  }

  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    if (l === last) continue
    if (!NODE_KINDS.has(l.kind)) return { ok: false, reason: `${l.kind} is not allowed in analyst queries` }
    if (i > 0 && (l.kind === 'DescribeQuery' || l.kind === 'ShowTables')) return { ok: false, reason: `${l.kind} is not allowed here` }
    const parent = parentOf(lines, i)
    if (l.kind === 'Function') {
      const m = FUNCTION_REST.exec(l.rest)
      if (m === null) return { ok: false, reason: 'unrecognised function node' }
      const name = m[1]!
      if (parent?.kind === 'TableExpression') {
        if (!TABLE_FUNCTIONS.has(name)) return { ok: false, reason: `table function ${name}() is not allowed` }
      } else if (!allowedFunction(name)) {
        return { ok: false, reason: `function ${name}() is not allowed in analyst queries` }
      }
    } else if (l.kind === 'TableIdentifier') {
      const m = TABLE_REST.exec(l.rest)
      if (m === null) return { ok: false, reason: 'unrecognised table name' }
      // an unqualified name is a CTE or a table of the current database: the query tree decides
      if (m[2] !== undefined && !policy.tables.has(`${m[1]}.${m[2]}`)) return { ok: false, reason: `table ${m[1]}.${m[2]} is not allowed` }
      if (kind === 'describe' && m[2] === undefined) return { ok: false, reason: 'DESCRIBE needs database.table' }
    } else if (l.kind === 'Literal' && parent?.kind === 'TableExpression') {
      return { ok: false, reason: 'unexpected literal table' }
    }
  }
  return { ok: true, kind }
}

function parentOf(lines: AstLine[], i: number): AstLine | undefined {
  const d = lines[i]!.depth
  for (let j = i - 1; j >= 0; j--) if (lines[j]!.depth === d - 1) return lines[j]
  return undefined
}

// `final: 1` follows the name for SELECT ... FINAL (a read modifier of ReplacingMergeTree; the
// tenant filter still applies); names on the allow list never contain a comma
const TABLE_NODE = /^ *TABLE id: [0-9]+(?:, alias: [^,]*)?, table_name: ([^,]*)(?:, final: 1)?$/
const TABLE_FUNCTION_NODE = /^ *TABLE_FUNCTION id: [0-9]+(?:, alias: [^,]*)?, table_function_name: (.*)$/

/** Checks `EXPLAIN QUERY TREE` output: every table read is on the caller's list. */
export function checkQueryTree(text: string, tables: ReadonlySet<string>): GuardResult {
  let sawQuery = false
  for (const line of text.split('\n')) {
    if (/^ *QUERY id: /.test(line) || /^ *UNION id: /.test(line)) sawQuery = true
    if (/^ *TABLE(?:_FUNCTION)? /.test(line)) {
      const t = TABLE_NODE.exec(line)
      if (t !== null) {
        if (!tables.has(t[1]!)) return { ok: false, reason: `table ${t[1]} is not allowed` }
        continue
      }
      const f = TABLE_FUNCTION_NODE.exec(line)
      if (f !== null && TABLE_FUNCTIONS.has(f[1]!)) continue
      return { ok: false, reason: `unrecognised table in the query tree: ${line.trim().slice(0, 80)}` }
    }
  }
  return sawQuery ? { ok: true, kind: 'select' } : { ok: false, reason: 'unrecognised query tree' }
}
