/**
 * Validates values against schemas of the API's OpenAPI 3.0 document with ajv: `nullable` is
 * ajv's own keyword; `discriminator` is left out (ajv's does not take a `mapping`, and the `oneOf`
 * alone decides, each branch fixing `eventType` to one value); `#/components/...` references
 * resolve into the document; `format: phone` is left to the server (any string passes here).
 */
import { Ajv, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { OpenApiDoc, Schema } from './schema-gen.js'

// ajv-formats is CommonJS: its default export arrives as the module object under ESM
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv

const DOC_ID = 'openapi.json'

function rebase(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(rebase)
  if (v === null || typeof v !== 'object') return v
  return Object.fromEntries(Object.entries(v).map(([k, x]) =>
    [k, k === '$ref' && typeof x === 'string' && x.startsWith('#/') ? `${DOC_ID}${x}` : rebase(x)]))
}

export class DocValidator {
  private readonly ajv: Ajv
  private readonly cache = new Map<Schema, ValidateFunction>()

  constructor(doc: OpenApiDoc) {
    this.ajv = new Ajv({ strict: false, allErrors: false, validateFormats: true })
    addFormats(this.ajv)
    this.ajv.addFormat('phone', true)
    this.ajv.addSchema({ $id: DOC_ID, components: rebase(doc.components ?? {}) } as never)
  }

  /** undefined when valid, otherwise ajv's first complaint */
  check(schema: Schema, value: unknown): string | undefined {
    let fn = this.cache.get(schema)
    if (fn === undefined) {
      fn = this.ajv.compile(rebase(schema) as object)
      this.cache.set(schema, fn)
    }
    if (fn(value)) return undefined
    const e = fn.errors?.[0]
    return `${e?.instancePath ?? ''} ${e?.message ?? 'invalid'}`
  }
}
