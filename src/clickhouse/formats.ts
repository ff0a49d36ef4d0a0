/**
 * Analyst result formats, listed once: the short names `cdp query --format` takes and the
 * ClickHouse format each means; their values are what POST /v1/cdp/query accepts (QUERY_FORMATS).
 */
export const ANALYST_FORMATS = {
  table: 'PrettyCompactMonoBlock',
  json: 'JSONEachRow',
  jsoneachrow: 'JSONEachRow',
  csv: 'CSVWithNames',
  tsv: 'TabSeparatedWithNames',
} as const satisfies Record<string, string>

export type QueryFormat = (typeof ANALYST_FORMATS)[keyof typeof ANALYST_FORMATS]
export const QUERY_FORMATS: readonly QueryFormat[] = [...new Set(Object.values(ANALYST_FORMATS))]
