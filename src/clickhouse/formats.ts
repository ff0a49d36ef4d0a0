/**
 * Result formats, listed once. READ_ONLY_FORMATS: what runReadOnlyQuery accepts.
 * ANALYST_FORMATS: the short names `cdp query --format` takes and the ClickHouse format each
 * means; their values are what POST /v1/cdp/query accepts (QUERY_FORMATS).
 */
export const READ_ONLY_FORMATS = [
  'JSONEachRow', 'JSON', 'JSONCompact', 'JSONCompactEachRow', 'CSV', 'CSVWithNames', 'TabSeparated', 'TabSeparatedWithNames',
  // for people at a terminal (`cdp query`); clickhouse-js does not list them but passes them on
  'PrettyCompactMonoBlock', 'PrettyCompact', 'Vertical', 'Markdown',
] as const

export const ANALYST_FORMATS = {
  table: 'PrettyCompactMonoBlock',
  json: 'JSONEachRow',
  jsoneachrow: 'JSONEachRow',
  csv: 'CSVWithNames',
  tsv: 'TabSeparatedWithNames',
} as const satisfies Record<string, (typeof READ_ONLY_FORMATS)[number]>

export type QueryFormat = (typeof ANALYST_FORMATS)[keyof typeof ANALYST_FORMATS]
export const QUERY_FORMATS: readonly QueryFormat[] = [...new Set(Object.values(ANALYST_FORMATS))]
