/**
 * Avro encoding of facts in Confluent wire format (magic 0, 4-byte schema id, Avro body).
 *
 * Encoding is local and synchronous after start-up: the value schema is registered once and its
 * avsc Type kept, so a registry outage after start-up does not stop ingestion. Decoding resolves
 * any writer schema id the registry knows (old and new versions) against our reader schema.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import avro from 'avsc'
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import { CdpError, wrapForeign, type ErrorCode } from '../errors.js'
import type { CdpEvent } from './event.js'
import { frameValue, readFrame } from './wire.js'

type Resolver = ReturnType<avro.Type['createResolver']>

const SCHEMA_PATH = fileURLToPath(new URL('../../../avro/cdp-event.avsc', import.meta.url))
const SCHEMA_PATH_SRC = fileURLToPath(new URL('../../avro/cdp-event.avsc', import.meta.url))

/** the value schema text from avro/ (works from src/ under ts-node and from dist/src) */
export function valueSchemaText(): string {
  for (const p of [SCHEMA_PATH_SRC, SCHEMA_PATH]) {
    try { return readFileSync(p, 'utf8') } catch { /* try the next layout */ }
  }
  throw new Error(`avro/cdp-event.avsc not found next to ${SCHEMA_PATH_SRC}`)
}

export const valueSubject = (topic: string): string => `${topic}-value`

export type DecodeResult =
  | { ok: true; event: CdpEvent; schemaId: number }
  | { ok: false; reason: 'not_avro' | 'unknown_schema' | 'bad_avro'; message: string }

/**
 * What a registry failure means (for wrapForeign). @kafkajs/confluent-schema-registry reports an
 * unreachable registry as a plain Error or as a ResponseError with status 400/5xx and no JSON
 * body (issue #306), so only a registry's explicit verdict on the schema counts as a permanent
 * answer; everything else, a 400 included, is `schema_registry_unavailable`.
 */
export function registryErrorCode(err: unknown): ErrorCode {
  const name = (err as { name?: unknown } | null)?.name
  return name === 'ConfluentSchemaRegistryCompatibilityError' || name === 'ConfluentSchemaRegistryInvalidSchemaError'
    ? 'contract_incompatible' : 'schema_registry_unavailable'
}

/** a registry failure as a CdpError; `what` names the operation */
export const registryError = (err: unknown, what: string): CdpError =>
  wrapForeign(err, `schema registry, ${what}`, registryErrorCode, { retryAfter: 5 })

export class SchemaCodec {
  readonly registry: SchemaRegistry
  readonly readerType: avro.Type
  private writerId = -1
  private readonly resolvers = new Map<number, { type: avro.Type; resolver: Resolver } | null>()

  private readonly url: string
  private readonly timeoutMs: number

  constructor(opts: { url: string; timeoutMs: number }) {
    this.url = opts.url.replace(/\/+$/, '')
    this.timeoutMs = opts.timeoutMs
    this.registry = new SchemaRegistry({
      host: opts.url,
      clientId: 'cdp-ingest',
      // fail fast: start-up and readiness decide what to do with an unreachable registry
      retry: { retries: 1, initialRetryTimeInSecs: 0.1, maxRetryTimeInSecs: 1 },
    })
    this.readerType = avro.Type.forSchema(JSON.parse(valueSchemaText()) as avro.Schema, { logicalTypes: {} })
  }

  /**
   * Register the value schema under `<topic>-value` with BACKWARD compatibility; keeps its id.
   * A registry that is still starting (or briefly overloaded) is retried until `waitMs` passes;
   * a refusal (incompatible schema) is final at once.
   */
  async init(topic: string, waitMs = 30_000): Promise<number> {
    const deadline = Date.now() + waitMs
    for (let attempt = 1; ; attempt++) {
      try {
        const id = await this.register(valueSubject(topic))
        this.writerId = id
        this.resolvers.set(id, { type: this.readerType, resolver: this.readerType.createResolver(this.readerType) })
        return id
      } catch (err) {
        const cdp = registryError(err, `registering ${valueSubject(topic)}`)
        if (!cdp.retriable || Date.now() + 500 > deadline) {
          throw new CdpError(cdp.code, `${cdp.message} (after ${attempt} attempts)`, { cause: err })
        }
        await new Promise((r) => setTimeout(r, Math.min(2000, 200 * attempt)))
      }
    }
  }

  /**
   * Compatibility first, then the schema, with the registry's REST API directly: the client
   * library checks a subject's compatibility before registering and sets it only after a first
   * registration (and may change it: its issue #129), so two instances starting together could
   * see the subject without its setting and refuse to start. Setting BACKWARD on the subject
   * first is idempotent and makes the order irrelevant.
   */
  private async register(subject: string): Promise<number> {
    const headers = { 'content-type': 'application/vnd.schemaregistry.v1+json' }
    const call = async (method: string, path: string, body: unknown): Promise<unknown> => {
      let res: Response
      try {
        res = await fetch(`${this.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(this.timeoutMs) })
      } catch (err) {
        throw new CdpError('schema_registry_unavailable', `schema registry unreachable at ${this.url}: ${(err as Error).message}`, { cause: err, retryAfter: 5 })
      }
      const text = await res.text()
      if (res.status === 409 || res.status === 422) {
        throw new CdpError('contract_incompatible', `schema registry refused ${method} ${path}: ${text}`)
      }
      if (!res.ok) {
        throw new CdpError('schema_registry_unavailable', `schema registry answered ${res.status} to ${method} ${path}: ${text.slice(0, 200)}`, { retryAfter: 5 })
      }
      return text === '' ? {} : JSON.parse(text) as unknown
    }
    const s = encodeURIComponent(subject)
    try {
      await call('PUT', `/config/${s}`, { compatibility: 'BACKWARD' })
    } catch (err) {
      // Apicurio answers 409 when another instance created the rule a moment earlier: fine if
      // the rule it created is ours
      if (!(err instanceof CdpError && err.code === 'contract_incompatible')) throw err
      const current = await call('GET', `/config/${s}`, undefined) as { compatibilityLevel?: string }
      if (current.compatibilityLevel !== 'BACKWARD') throw err
    }
    const out = await call('POST', `/subjects/${s}/versions`, { schemaType: 'AVRO', schema: valueSchemaText() }) as { id?: unknown }
    if (typeof out.id !== 'number') throw new CdpError('schema_registry_unavailable', `schema registry gave no id for ${subject}`, { retryAfter: 5 })
    return out.id
  }

  get schemaId(): number {
    if (this.writerId < 0) throw new Error('SchemaCodec.init() was not called')
    return this.writerId
  }

  encode(event: CdpEvent): Buffer {
    return frameValue(this.schemaId, this.readerType.toBuffer(event))
  }

  /** Never throws for bad bytes (those are values); throws CdpError when the registry is down. */
  async decode(buf: Buffer | null): Promise<DecodeResult> {
    const frame = readFrame(buf)
    if (frame === undefined) {
      return { ok: false, reason: 'not_avro', message: 'value is not in Confluent Avro wire format (magic byte 0 + schema id)' }
    }
    const id = frame.schemaId
    let entry = this.resolvers.get(id)
    if (entry === undefined) {
      entry = await this.loadWriter(id)
      this.resolvers.set(id, entry)
    }
    if (entry === null) return { ok: false, reason: 'unknown_schema', message: `schema id ${id} is not registered or not compatible with the reader schema` }
    try {
      const event = this.readerType.fromBuffer(frame.body, entry.resolver, true) as CdpEvent
      return { ok: true, event, schemaId: id }
    } catch (err) {
      return { ok: false, reason: 'bad_avro', message: `Avro body does not decode with schema ${id}: ${(err as Error).message}` }
    }
  }

  private async loadWriter(id: number): Promise<{ type: avro.Type; resolver: Resolver } | null> {
    let schema: unknown
    try {
      schema = await this.registry.getSchema(id)
    } catch (err) {
      const status = (err as { status?: number }).status
      const msg = String((err as Error).message ?? '')
      // a registry that answered "not found" gives a definite verdict; anything else is an outage
      if (status === 404 || /not found/i.test(msg)) return null
      throw registryError(err, `fetching schema ${id}`)
    }
    try {
      const type = schema as avro.Type
      const writer = avro.Type.forSchema(JSON.parse(JSON.stringify(type.schema())) as avro.Schema)
      return { type: writer, resolver: this.readerType.createResolver(writer) }
    } catch {
      return null
    }
  }
}
