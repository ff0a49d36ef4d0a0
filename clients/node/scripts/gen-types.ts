/**
 * Writes clients/node/src/generated.ts from the service's live OpenAPI document: the app is built
 * with inert dependencies (nothing listens, nothing connects) and asked for its document, so the
 * client's types come from the same route schemas that validate requests.
 *
 *   npx tsx clients/node/scripts/gen-types.ts          # rewrite src/generated.ts
 *   npx tsx clients/node/scripts/gen-types.ts --check  # exit 1 when the committed file is stale
 *
 * test/unit/client/generated.test.ts runs the same check. Only the shapes are emitted (types,
 * required fields, literals); length limits and patterns stay the server's business, they depend
 * on its configuration.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../../src/config/index.js'
import { buildApp } from '../../../src/http/app.js'
import { loadContracts } from '../../../src/contracts/registry.js'

export const GENERATED_PATH = fileURLToPath(new URL('../src/generated.ts', import.meta.url))

type Schema = {
  type?: string | string[]
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  items?: Schema
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  oneOf?: Schema[]
  nullable?: boolean
  description?: string
  example?: unknown
}

interface OpenApiDoc {
  components?: { schemas?: Record<string, Schema> }
  paths: Record<string, Record<string, {
    requestBody?: { content: Record<string, { schema: Schema }> }
    responses: Record<string, { content?: Record<string, { schema: Schema }> }>
  }>>
}

export async function openApiDocument(): Promise<OpenApiDoc> {
  // limits in the config do not reach the emitted types, so the defaults are as good as any
  const config = loadConfig({ overrides: { logLevel: 'silent' } })
  const app = await buildApp(config, { ingest: {} as never, keys: {} as never, readiness: async () => ({}), contracts: loadContracts(config.contracts.dir) })
  try {
    await app.ready()
    return app.swagger() as unknown as OpenApiDoc
  } finally {
    await app.close()
  }
}

/** the schema without its documentation, as a stable string: two equal shapes share one name */
function shapeKey(s: Schema): string {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip)
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).filter(([k]) => !['description', 'example', 'examples', '$id', 'title'].includes(k))
        .sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, strip(x)]))
    }
    return v
  }
  return JSON.stringify(strip(s))
}

function doc(s: Schema, indent: string): string {
  const lines: string[] = []
  if (s.description !== undefined) lines.push(s.description)
  if (s.example !== undefined) lines.push(`@example ${JSON.stringify(s.example)}`)
  if (lines.length === 0) return ''
  return `${indent}/** ${lines.join(`\n${indent} * `)} */\n`
}

function render(s: Schema, indent: string, names: Map<string, string>, self?: string): string {
  const named = names.get(shapeKey(s))
  if (named !== undefined && named !== self) return named
  if (s.nullable === true) {
    const { nullable: _n, ...rest } = s
    const inner = render(rest, indent, names)
    return inner.endsWith('| null') || inner === 'null' ? inner : `${inner} | null`
  }
  // an object's anyOf of `required` alternatives (identity: at least one field) narrows values,
  // not the shape: the properties are the type
  const union = s.properties !== undefined ? undefined : s.anyOf ?? s.oneOf
  if (union !== undefined) return union.map((x) => render(x, indent, names)).join(' | ')
  if (s.const !== undefined) return JSON.stringify(s.const).replace(/"/g, "'")
  if (s.enum !== undefined) return s.enum.map((x) => JSON.stringify(x).replace(/"/g, "'")).join(' | ')
  const type = Array.isArray(s.type) ? s.type : s.type === undefined ? [] : [s.type]
  if (type.length > 1) return type.map((t) => render({ ...s, type: t }, indent, names)).join(' | ')
  switch (type[0]) {
    case 'string': return 'string'
    case 'integer':
    case 'number': return 'number'
    case 'boolean': return 'boolean'
    case 'null': return 'null'
    case 'array': return `Array<${s.items === undefined ? 'unknown' : render(s.items, indent, names)}>`
    case 'object':
    case undefined: {
      if (s.properties === undefined) return s.type === undefined ? 'unknown' : 'Record<string, unknown>'
      const inner = `${indent}  `
      const required = new Set(s.required ?? [])
      const props = Object.entries(s.properties).map(([k, v]) =>
        `${doc(v, inner)}${inner}${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}${required.has(k) ? '' : '?'}: ${render(v, inner, names)}`)
      if (s.additionalProperties === true) props.push(`${inner}[field: string]: unknown`)
      return `{\n${props.join('\n')}\n${indent}}`
    }
    default: return 'unknown'
  }
}

/** inlines `#/components/schemas/...` references (Fastify's swagger names shared schemas def-N) */
function inlineRefs(api: OpenApiDoc): OpenApiDoc {
  const defs = api.components?.schemas ?? {}
  const walk = (v: unknown, depth: number): unknown => {
    if (depth > 32) throw new Error('schema references nest too deep')
    if (Array.isArray(v)) return v.map((x) => walk(x, depth))
    if (v === null || typeof v !== 'object') return v
    const ref = (v as { $ref?: unknown }).$ref
    if (typeof ref === 'string') {
      const target = defs[ref.replace('#/components/schemas/', '')]
      if (target === undefined) throw new Error(`unresolved reference ${ref}`)
      return walk(target, depth + 1)
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, depth)]))
  }
  return { ...api, paths: walk(api.paths, 0) as OpenApiDoc['paths'] }
}

export function renderTypes(doc: OpenApiDoc): string {
  const schemas = doc.components?.schemas ?? {}
  const api = inlineRefs(doc)
  const single = api.paths['/v1/cdp/events']?.post
  const batch = api.paths['/v1/cdp/events/batch']?.post
  if (single === undefined || batch === undefined) throw new Error('the OpenAPI document has no event routes')
  const body = (op: typeof single) => op.requestBody?.content['application/json']?.schema
  const response = (op: typeof single, status: string) => op.responses[status]?.content?.['application/json']?.schema
  const pick = (name: string, s: Schema | undefined): [string, Schema] => {
    if (s === undefined) throw new Error(`the OpenAPI document has no schema for ${name}`)
    const { description: _d, ...rest } = s
    return [name, rest]
  }
  // order matters: later types refer to earlier ones by name
  // one type per registered event type (components Event_<type>), and the generic envelope
  const eventTypes = Object.keys(schemas).filter((n) => n.startsWith('Event_')).sort()
  const typeName = (component: string) => `${component.slice('Event_'.length).split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('')}Event`
  const envelope = schemas.EventEnvelope ?? body(single)
  const types: [string, Schema][] = [
    ...(envelope?.properties?.identity === undefined ? [] : [pick('Identity', envelope.properties.identity)]),
    pick('CdpEvent', envelope),
    ...eventTypes.map((n) => pick(typeName(n), schemas[n])),
    pick('AcceptedResult', response(single, '202')),
    pick('DuplicateResult', response(single, '200')),
    pick('ErrorBody', response(single, '422')),
    pick('BatchRequest', body(batch)),
    pick('BatchResponse', response(batch, '200')),
  ]
  const names = new Map(types.map(([n, s]) => [shapeKey(s), n]))
  const out = [
    '// Generated by clients/node/scripts/gen-types.ts from the service\'s OpenAPI document. Do not edit;',
    '// run `npx tsx clients/node/scripts/gen-types.ts` after changing the API\'s route schemas.',
    '',
    `export const SINGLE_PATH = '/v1/cdp/events'`,
    `export const BATCH_PATH = '/v1/cdp/events/batch'`,
    '',
  ]
  for (const [name, s] of types) {
    out.push(`export type ${name} = ${render(s, '', names, name)}`, '')
  }
  if (eventTypes.length > 0) {
    out.push('/** an event of one of the registered types (the request body\'s oneOf, discriminated by eventType) */')
    out.push(`export type KnownEvent = ${eventTypes.map(typeName).join(' | ')}`, '')
    out.push(`export type EventType = KnownEvent['eventType']`, '')
  }
  out.push('/** one entry of BatchResponse.results, in request order */')
  out.push('export type BatchItemResult = AcceptedResult | DuplicateResult | ErrorBody', '')
  return out.join('\n')
}

async function main(): Promise<void> {
  const text = renderTypes(await openApiDocument())
  if (process.argv.includes('--check')) {
    const current = readFileSync(GENERATED_PATH, 'utf8')
    if (current !== text) {
      console.error(`${GENERATED_PATH} is stale: run npx tsx clients/node/scripts/gen-types.ts`)
      process.exit(1)
    }
    return
  }
  writeFileSync(GENERATED_PATH, text)
  console.log(`wrote ${GENERATED_PATH}`)
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main()
