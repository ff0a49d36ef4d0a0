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
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { CdpError } from '../errors.js'
import type { CdpEvent } from './event.js'

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
 * Registry failures that mean "try again later". @kafkajs/confluent-schema-registry reports an
 * unreachable registry as a plain Error or as a ResponseError with status 400/5xx and no JSON
 * body (issue #306), so only a registry's explicit JSON verdict counts as a permanent answer.
 */
export function registryErrorToCdp(err: unknown, what: string): CdpError {
  const e = err as { name?: string; status?: number; message?: string; code?: string }
  if (e.name === 'ConfluentSchemaRegistryCompatibilityError' || e.name === 'ConfluentSchemaRegistryInvalidSchemaError') {
    return new CdpError('contract_incompatible', `schema registry refused ${what}: ${e.message ?? ''}`, { cause: err })
  }
  return new CdpError('schema_registry_unavailable', `schema registry unavailable while ${what}`, { cause: err, retryAfter: 5 })
}

export class SchemaCodec {
  readonly registry: SchemaRegistry
  readonly readerType: avro.Type
  private writerId = -1
  private readonly resolvers = new Map<number, { type: avro.Type; resolver: Resolver } | null>()

  constructor(opts: { url: string; timeoutMs: number }) {
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
        const { id } = await this.registry.register(
          { type: SchemaType.AVRO, schema: valueSchemaText() },
          { subject: valueSubject(topic), compatibility: 'BACKWARD' as never },
        )
        this.writerId = id
        this.resolvers.set(id, { type: this.readerType, resolver: this.readerType.createResolver(this.readerType) })
        return id
      } catch (err) {
        const cdp = registryErrorToCdp(err, `registering ${valueSubject(topic)}`)
        if (!cdp.retriable || Date.now() + 500 > deadline) {
          throw new CdpError(cdp.code, `${cdp.message} (after ${attempt} attempts): ${(err as Error).message}`, { cause: err })
        }
        await new Promise((r) => setTimeout(r, Math.min(2000, 200 * attempt)))
      }
    }
  }

  get schemaId(): number {
    if (this.writerId < 0) throw new Error('SchemaCodec.init() was not called')
    return this.writerId
  }

  encode(event: CdpEvent): Buffer {
    const body = this.readerType.toBuffer(event)
    const out = Buffer.allocUnsafe(5 + body.length)
    out[0] = 0
    out.writeUInt32BE(this.schemaId, 1)
    body.copy(out, 5)
    return out
  }

  /** Never throws for bad bytes (those are values); throws CdpError when the registry is down. */
  async decode(buf: Buffer | null): Promise<DecodeResult> {
    if (buf === null || buf.length < 6 || buf[0] !== 0) {
      return { ok: false, reason: 'not_avro', message: 'value is not in Confluent Avro wire format (magic byte 0 + schema id)' }
    }
    const id = buf.readUInt32BE(1)
    let entry = this.resolvers.get(id)
    if (entry === undefined) {
      entry = await this.loadWriter(id)
      this.resolvers.set(id, entry)
    }
    if (entry === null) return { ok: false, reason: 'unknown_schema', message: `schema id ${id} is not registered or not compatible with the reader schema` }
    try {
      const event = this.readerType.fromBuffer(buf.subarray(5), entry.resolver, true) as CdpEvent
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
      throw registryErrorToCdp(err, `fetching schema ${id}`)
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
