/**
 * Configuration: defaults < config file (CDP_CONFIG, JSON) < environment variables.
 * Checked once at start-up against a JSON schema with every problem listed, then deep-frozen.
 * This is the only module that reads process.env (lint enforces it).
 */
import { deepFreeze } from '../lib/freeze.js'
import { readFileSync, existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { Ajv } from 'ajv'
import { CdpError } from '../errors.js'

export interface Config {
  dataDir: string
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  http: {
    host: string
    port: number
    /** body limit of POST /v1/cdp/events */
    singleBodyLimitBytes: number
    /** body limit of POST /v1/cdp/events/batch */
    batchBodyLimitBytes: number
    maxBatchItems: number
    /** POST /v1/cdp/events/import: body limit after decompression, and non-blank lines per request */
    importBodyLimitBytes: number
    importMaxLines: number
    /** serialized size limit of one event (single or batch item) */
    maxEventBytes: number
    /** requests per key per window; 429 beyond */
    rateLimitMax: number
    rateLimitWindowMs: number
    /** events per tenant per window, all of its keys together (a batch of N costs N); 429 beyond */
    tenantRateLimitMax: number
    /** failing requests (400/401/403/404/413/415) per client address per window before 429 */
    failureLimitMax: number
    failureLimitWindowMs: number
    /** slow clients: whole request, headers, idle keep-alive and idle socket deadlines */
    requestTimeoutMs: number
    headersTimeoutMs: number
    keepAliveTimeoutMs: number
    connectionTimeoutMs: number
    /** how often the background readiness probe runs; /readyz answers its last result */
    readinessIntervalMs: number
    /** unknown key ids are remembered this long, so a flood of random keys does not reach the key store */
    keyNegativeCacheMs: number
  }
  validation: {
    /** how far in the future occurredAt may be (clock skew of senders) */
    maxFutureSkewMs: number
    maxStringLength: number
    maxIdLength: number
    /** nesting depth allowed inside `properties` (objects and arrays) */
    maxPropertiesDepth: number
  }
  kafka: {
    brokers: string[]
    clientId: string
    /**
     * which library the batching producer uses (src/kafka/producer.ts); measured side by side in
     * bench/kafka-clients.ts. Consumers, admin and the direct-producer kit stay on kafkajs.
     */
    client: 'kafkajs' | 'platformatic'
    topic: string
    deadLetterTopic: string
    partitions: number
    replicationFactor: number
    minInsyncReplicas: number
    /** must exceed any consumer's lag so nothing is compacted before it is consumed */
    minCompactionLagMs: number
    /** a request waits at most this long for Kafka's acknowledgement before answering 503 */
    produceTimeoutMs: number
    /** micro-batching: how long to collect concurrent records before one send */
    lingerMs: number
    batchMaxMessages: number
    /** idempotent producers per process, each with one batch in flight (see src/kafka/producer.ts) */
    producerLanes: number
    consumerGroup: string
    connectionTimeoutMs: number
    /** SASL authentication towards the brokers; unset: none */
    sasl: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string } | undefined
    tls: TlsConfig
  }
  schemaRegistry: {
    url: string
    timeoutMs: number
  }
  clickhouse: {
    /** set: a ClickHouse server over HTTP; unset: embedded chDB under dataDir */
    url: string | undefined
    username: string | undefined
    password: string | undefined
    chdbPath: string
    database: string
    /**
     * dead_letters rows (and their redrive records) are deleted this many days after they were
     * dead-lettered (a TTL, reconciled on every start); 0 keeps them forever
     */
    deadLetterTtlDays: number
    /** a ClickHouse cluster name: migrations run ON CLUSTER with Replicated* and Distributed tables (docs/SCALING.md) */
    cluster: string | undefined
  }
  state: {
    backend: 'lmdb' | 'redis'
    redisUrl: string
    lmdbPath: string
    /**
     * fsync every LMDB commit (default). false: a process crash still loses nothing, a power loss
     * can lose the last claims (a retry would then be accepted again under a new event id; the
     * consumer still stores the fact once). Measured: about +15% single events/s (BENCHMARKS.md).
     */
    lmdbSync: boolean
    /** a pending idempotency claim older than this is considered abandoned by a crashed process */
    claimLeaseMs: number
    /** Redis AUTH (ACL user and password); they override any in redisUrl */
    redisUsername: string | undefined
    redisPassword: string | undefined
    redisTls: TlsConfig
  }
  identity: {
    defaultRegion: string
    /** a device key already linked to this many profiles stops merging */
    maxProfilesPerDevice: number
    blockedValues: string[]
  }
  consumer: {
    /** partition batches processed at once per consumer (their ClickHouse and store calls overlap) */
    partitionConcurrency: number
    /**
     * small partition batches that are ready together are processed and inserted as one, up to
     * this many records (src/pipeline/grouped.ts); a larger batch is processed on its own, next
     * to the others. 0: every partition batch on its own, with its own inserts
     */
    groupMaxRows: number
    flushMaxRows: number
    /**
     * consumer group session timeout: how long a crashed consumer keeps its partitions before the
     * group hands them on (heartbeats every min(3 s, a third of it)); docs/SCALING.md measures it
     */
    sessionTimeoutMs: number
    /** `--role consumer` answers /healthz, /readyz and /metrics on this port (host: http.host); 0: any free port */
    httpPort: number
    /** /readyz turns false when a partition of this consumer has lag and no commit for this long */
    stallAfterMs: number
    /** how often the consumer reads end and committed offsets for the lag gauge and the stall check */
    lagIntervalMs: number
    /** one fetch response at most, and per partition: bounds what a consumer holds while draining a backlog (docs/BENCHMARKS.md) */
    fetchMaxBytes: number
    fetchMaxBytesPerPartition: number
  }
  metrics: {
    /** add a tenant label to the per-event counters; off by default since tenants may be many */
    tenantLabel: boolean
  }
  contracts: {
    dir: string
    releasedFile: string
  }
  keys: {
    /** namespace of every state-store key (Redis key prefix); tests use their own */
    prefix: string
  }
  /** analyst queries (POST /v1/cdp/query): limits the caller cannot lift, PII masking key */
  query: {
    /** seconds */
    maxExecutionTime: number
    maxRowsToRead: number
    maxResultRows: number
    maxResultBytes: number
    maxMemoryUsage: number
    /** queries in flight per tenant per process; 429 beyond */
    maxConcurrentPerTenant: number
    /** threads per analyst query: in embedded mode the other cores stay with ingestion */
    maxThreads: number
    /**
     * analyst queries running at once in this process, all tenants together; 0 in a file: chosen
     * by mode (1 in embedded chDB, so a core stays with ingestion; 8 with CLICKHOUSE_URL)
     */
    maxConcurrentTotal: number
    /** queries waiting for a place beyond maxConcurrentTotal; a full queue answers 429 at once */
    maxQueued: number
    /** how long a query waits for a place before 429 (ms) */
    maxQueueWaitMs: number
    /** HMAC key of masked PII (CDP_PII_HASH_KEY); unset: generated once under dataDir. Instances must share it. */
    piiHashKey: string | undefined
  }
  /** where `cdp query` sends its request, and with which key (CDP_URL, CDP_API_KEY) */
  client: {
    url: string
    apiKey: string | undefined
  }
  /** erasure, suppression and pseudonymization (docs/PRIVACY.md) */
  privacy: {
    /** tenants whose identity values and pii properties ClickHouse stores as keyed hashes (CDP_PSEUDONYMIZE_TENANTS, comma-separated) */
    pseudonymizeTenants: string[]
    /** JSON file {"<tenant>": "<secret, 32+ characters>"} kept outside ClickHouse (CDP_PRIVACY_SECRETS_FILE) */
    secretsFile: string | undefined
    /** read from secretsFile at start-up; never set in a config file */
    tenantSecrets: Record<string, string>
    /** how often the process owning ClickHouse looks for erasure requests */
    erasurePollMs: number
    /** a running erasure whose process said nothing for this long is taken over by another */
    erasureStaleMs: number
  }
  /**
   * Retention per ClickHouse table, as a TTL reconciled on every start (src/clickhouse/retention.ts):
   * days after the table's time column a row is deleted; a table left out (or null) keeps rows forever.
   */
  retention: {
    tables: Record<string, { days: number } | null>
  }
  shutdown: {
    /** SIGTERM/SIGINT: the drain's budget; past it the process exits non-zero at once (CDP_SHUTDOWN_DEADLINE_MS) */
    deadlineMs: number
  }
}

/** TLS towards Kafka or Redis: PEM files read when the client is created */
export interface TlsConfig {
  enabled: boolean
  caFile: string | undefined
  certFile: string | undefined
  keyFile: string | undefined
  /** false only for testing against self-signed certificates */
  rejectUnauthorized: boolean
}

const tlsSchema = {
  type: 'object', additionalProperties: false,
  properties: {
    enabled: { type: 'boolean' }, caFile: { type: ['string', 'null'] }, certFile: { type: ['string', 'null'] },
    keyFile: { type: ['string', 'null'] }, rejectUnauthorized: { type: 'boolean' },
  },
} as const

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['dataDir', 'logLevel', 'http', 'validation', 'kafka', 'schemaRegistry', 'clickhouse', 'state', 'identity', 'consumer', 'metrics', 'contracts', 'keys', 'query', 'client', 'privacy', 'retention', 'shutdown'],
  properties: {
    dataDir: { type: 'string', minLength: 1 },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    http: {
      type: 'object', additionalProperties: false,
      properties: {
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        singleBodyLimitBytes: { type: 'integer', minimum: 1024 },
        batchBodyLimitBytes: { type: 'integer', minimum: 1024 },
        maxBatchItems: { type: 'integer', minimum: 1, maximum: 10000 },
        importBodyLimitBytes: { type: 'integer', minimum: 1024 },
        importMaxLines: { type: 'integer', minimum: 1 },
        maxEventBytes: { type: 'integer', minimum: 256 },
        rateLimitMax: { type: 'integer', minimum: 1 },
        rateLimitWindowMs: { type: 'integer', minimum: 1 },
        tenantRateLimitMax: { type: 'integer', minimum: 1 },
        failureLimitMax: { type: 'integer', minimum: 1 },
        failureLimitWindowMs: { type: 'integer', minimum: 1 },
        requestTimeoutMs: { type: 'integer', minimum: 100 },
        headersTimeoutMs: { type: 'integer', minimum: 100 },
        keepAliveTimeoutMs: { type: 'integer', minimum: 100 },
        connectionTimeoutMs: { type: 'integer', minimum: 100 },
        readinessIntervalMs: { type: 'integer', minimum: 100 },
        keyNegativeCacheMs: { type: 'integer', minimum: 0 },
      },
    },
    validation: {
      type: 'object', additionalProperties: false,
      properties: {
        maxFutureSkewMs: { type: 'integer', minimum: 0 },
        maxStringLength: { type: 'integer', minimum: 1 },
        maxIdLength: { type: 'integer', minimum: 1 },
        maxPropertiesDepth: { type: 'integer', minimum: 1, maximum: 1000 },
      },
    },
    kafka: {
      type: 'object', additionalProperties: false,
      properties: {
        brokers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+:[0-9]+$' } },
        clientId: { type: 'string', minLength: 1 },
        client: { enum: ['kafkajs', 'platformatic'] },
        topic: { type: 'string', pattern: '^[a-zA-Z0-9._-]+$' },
        deadLetterTopic: { type: 'string', pattern: '^[a-zA-Z0-9._-]+$' },
        partitions: { type: 'integer', minimum: 1 },
        replicationFactor: { type: 'integer', minimum: 1 },
        minInsyncReplicas: { type: 'integer', minimum: 1 },
        minCompactionLagMs: { type: 'integer', minimum: 0 },
        produceTimeoutMs: { type: 'integer', minimum: 100 },
        lingerMs: { type: 'integer', minimum: 0, maximum: 1000 },
        batchMaxMessages: { type: 'integer', minimum: 1 },
        producerLanes: { type: 'integer', minimum: 1, maximum: 16 },
        consumerGroup: { type: 'string', minLength: 1 },
        connectionTimeoutMs: { type: 'integer', minimum: 100 },
        sasl: {
          type: ['object', 'null'], additionalProperties: false, required: ['mechanism', 'username', 'password'],
          properties: { mechanism: { enum: ['plain', 'scram-sha-256', 'scram-sha-512'] }, username: { type: 'string', minLength: 1 }, password: { type: 'string', minLength: 1 } },
        },
        tls: tlsSchema,
      },
    },
    schemaRegistry: {
      type: 'object', additionalProperties: false,
      properties: { url: { type: 'string', pattern: '^https?://' }, timeoutMs: { type: 'integer', minimum: 100 } },
    },
    clickhouse: {
      type: 'object', additionalProperties: false,
      properties: {
        url: { type: ['string', 'null'] }, username: { type: ['string', 'null'] }, password: { type: ['string', 'null'] },
        chdbPath: { type: 'string', minLength: 1 }, database: { type: 'string', pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' },
        deadLetterTtlDays: { type: 'integer', minimum: 0, maximum: 36500 },
        cluster: { type: ['string', 'null'], pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' },
      },
    },
    state: {
      type: 'object', additionalProperties: false,
      properties: {
        backend: { enum: ['lmdb', 'redis'] }, redisUrl: { type: 'string', pattern: '^rediss?://' },
        lmdbPath: { type: 'string', minLength: 1 }, lmdbSync: { type: 'boolean' }, claimLeaseMs: { type: 'integer', minimum: 100 },
        redisUsername: { type: ['string', 'null'] }, redisPassword: { type: ['string', 'null'] }, redisTls: tlsSchema,
      },
    },
    identity: {
      type: 'object', additionalProperties: false,
      properties: {
        defaultRegion: { type: 'string', pattern: '^[A-Z]{2}$' },
        maxProfilesPerDevice: { type: 'integer', minimum: 1 },
        blockedValues: { type: 'array', items: { type: 'string' } },
      },
    },
    consumer: {
      type: 'object', additionalProperties: false,
      properties: {
        partitionConcurrency: { type: 'integer', minimum: 1, maximum: 64 },
        groupMaxRows: { type: 'integer', minimum: 0 },
        flushMaxRows: { type: 'integer', minimum: 1 },
        // Kafka brokers accept 6000..300000 ms unless group.min/max.session.timeout.ms say otherwise
        sessionTimeoutMs: { type: 'integer', minimum: 1000 },
        httpPort: { type: 'integer', minimum: 0, maximum: 65535 },
        stallAfterMs: { type: 'integer', minimum: 100 },
        lagIntervalMs: { type: 'integer', minimum: 100 },
        fetchMaxBytes: { type: 'integer', minimum: 65_536 },
        fetchMaxBytesPerPartition: { type: 'integer', minimum: 65_536 },
      },
    },
    metrics: { type: 'object', additionalProperties: false, properties: { tenantLabel: { type: 'boolean' } } },
    contracts: {
      type: 'object', additionalProperties: false,
      properties: { dir: { type: 'string' }, releasedFile: { type: 'string' } },
    },
    keys: { type: 'object', additionalProperties: false, properties: { prefix: { type: 'string', pattern: '^[a-z0-9_]+$' } } },
    query: {
      type: 'object', additionalProperties: false,
      properties: {
        maxExecutionTime: { type: 'integer', minimum: 1 }, maxRowsToRead: { type: 'integer', minimum: 1 },
        maxResultRows: { type: 'integer', minimum: 1 }, maxResultBytes: { type: 'integer', minimum: 1024 },
        maxMemoryUsage: { type: 'integer', minimum: 1_048_576 }, maxConcurrentPerTenant: { type: 'integer', minimum: 1 },
        maxThreads: { type: 'integer', minimum: 1 }, piiHashKey: { type: ['string', 'null'], minLength: 16 },
        maxConcurrentTotal: { type: 'integer', minimum: 0, maximum: 1000 }, maxQueued: { type: 'integer', minimum: 0, maximum: 10_000 },
        maxQueueWaitMs: { type: 'integer', minimum: 0, maximum: 600_000 },
      },
    },
    client: {
      type: 'object', additionalProperties: false,
      properties: { url: { type: 'string', pattern: '^https?://' }, apiKey: { type: ['string', 'null'] } },
    },
    privacy: {
      type: 'object', additionalProperties: false,
      properties: {
        pseudonymizeTenants: { type: 'array', items: { type: 'string', minLength: 1 } },
        secretsFile: { type: ['string', 'null'] },
        tenantSecrets: { type: 'object', additionalProperties: { type: 'string', minLength: 32 } },
        erasurePollMs: { type: 'integer', minimum: 10 },
        erasureStaleMs: { type: 'integer', minimum: 1000 },
      },
    },
    retention: {
      type: 'object', additionalProperties: false,
      properties: {
        tables: {
          type: 'object',
          propertyNames: { pattern: '^[a-z_]+$' },
          additionalProperties: {
            type: ['object', 'null'], additionalProperties: false, required: ['days'],
            properties: { days: { type: 'integer', minimum: 1, maximum: 36500 } },
          },
        },
      },
    },
    shutdown: { type: 'object', additionalProperties: false, properties: { deadlineMs: { type: 'integer', minimum: 1000 } } },
  },
} as const

type Env = Record<string, string | undefined>

const noTls = (): TlsConfig => ({ enabled: false, caFile: undefined, certFile: undefined, keyFile: undefined, rejectUnauthorized: true })

function defaults(env: Env): Config {
  const dataDir = env.CDP_DATA_DIR ?? '.data'
  return {
    dataDir,
    logLevel: 'info',
    http: {
      host: '127.0.0.1',
      port: 8080,
      singleBodyLimitBytes: 64 * 1024,
      batchBodyLimitBytes: 8 * 1024 * 1024,
      maxBatchItems: 500,
      importBodyLimitBytes: 64 * 1024 * 1024,
      importMaxLines: 100_000,
      maxEventBytes: 32 * 1024,
      rateLimitMax: 60_000,
      rateLimitWindowMs: 60_000,
      tenantRateLimitMax: 600_000,
      failureLimitMax: 100,
      failureLimitWindowMs: 60_000,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 5_000,
      connectionTimeoutMs: 60_000,
      readinessIntervalMs: 5_000,
      keyNegativeCacheMs: 5_000,
    },
    validation: { maxFutureSkewMs: 5 * 60_000, maxStringLength: 2048, maxIdLength: 256, maxPropertiesDepth: 32 },
    kafka: {
      brokers: [`127.0.0.1:${env.KAFKA_PORT ?? '19092'}`],
      clientId: 'cdp-ingest',
      client: 'platformatic',
      topic: 'cdp.events.v1',
      deadLetterTopic: 'cdp.events.dlq.v1',
      partitions: 6,
      replicationFactor: 1,
      minInsyncReplicas: 1,
      minCompactionLagMs: 7 * 24 * 3600_000,
      produceTimeoutMs: 5000,
      lingerMs: 2,
      batchMaxMessages: 1000,
      producerLanes: 2,
      consumerGroup: 'cdp-consumer',
      connectionTimeoutMs: 3000,
      sasl: undefined,
      tls: noTls(),
    },
    schemaRegistry: { url: `http://127.0.0.1:${env.REGISTRY_PORT ?? '18081'}/apis/ccompat/v7`, timeoutMs: 3000 },
    clickhouse: { url: undefined, username: undefined, password: undefined, chdbPath: resolve(dataDir, 'chdb'), database: 'cdp', deadLetterTtlDays: 90, cluster: undefined },
    state: {
      backend: 'lmdb',
      redisUrl: `redis://127.0.0.1:${env.REDIS_PORT ?? '16379'}`,
      lmdbPath: resolve(dataDir, 'state'),
      lmdbSync: true,
      claimLeaseMs: 30_000,
      redisUsername: undefined,
      redisPassword: undefined,
      redisTls: noTls(),
    },
    identity: {
      defaultRegion: 'US',
      maxProfilesPerDevice: 3,
      blockedValues: ['null', 'undefined', 'none', 'nil', 'n/a', 'na', 'anonymous', 'unknown', '0', '-1', 'test', 'test@test.com', 'noemail@example.com', 'email@example.com'],
    },
    consumer: {
      partitionConcurrency: 3, groupMaxRows: 1000, flushMaxRows: 5000, sessionTimeoutMs: 10_000, fetchMaxBytes: 2 * 1024 * 1024, fetchMaxBytesPerPartition: 1024 * 1024,
      httpPort: 8081, stallAfterMs: 60_000, lagIntervalMs: 5_000,
    },
    metrics: { tenantLabel: false },
    contracts: { dir: 'config/contracts', releasedFile: 'config/contracts.released.json' },
    keys: { prefix: 'cdp' },
    query: {
      maxExecutionTime: 30, maxRowsToRead: 1_000_000_000, maxResultRows: 100_000, maxResultBytes: 64 * 1024 * 1024,
      maxMemoryUsage: 1024 * 1024 * 1024, maxConcurrentPerTenant: 2, maxThreads: 1, piiHashKey: undefined,
      // 0: resolved after the merge, once it is known whether ClickHouse is embedded (autoLimits)
      maxConcurrentTotal: 0, maxQueued: 16, maxQueueWaitMs: 10_000,
    },
    client: { url: `http://127.0.0.1:${env.CDP_PORT ?? '8080'}`, apiKey: undefined },
    privacy: { pseudonymizeTenants: [], secretsFile: undefined, tenantSecrets: {}, erasurePollMs: 1000, erasureStaleMs: 60_000 },
    retention: { tables: {} },
    shutdown: { deadlineMs: 20_000 },
  }
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] }

export function merge<T>(base: T, over: DeepPartial<T> | undefined): T {
  if (over === undefined) return base
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) }
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) {
    if (v === undefined) continue
    const b = out[k]
    out[k] = b !== null && typeof b === 'object' && !Array.isArray(b) && v !== null && typeof v === 'object' && !Array.isArray(v)
      ? merge(b, v as DeepPartial<typeof b>)
      : v
  }
  return out as T
}

function int(env: Env, name: string, errors: string[]): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isInteger(n)) { errors.push(`${name}: expected an integer, got ${JSON.stringify(raw)}`); return undefined }
  return n
}

function bool(env: Env, name: string, errors: string[]): boolean | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  if (/^(1|true|yes|on)$/i.test(raw)) return true
  if (/^(0|false|no|off)$/i.test(raw)) return false
  errors.push(`${name}: expected true or false, got ${JSON.stringify(raw)}`)
  return undefined
}

/** KAFKA_TLS / REDIS_TLS and their _CA_FILE, _CERT_FILE, _KEY_FILE, _REJECT_UNAUTHORIZED */
function tlsFromEnv(env: Env, prefix: string, errors: string[]): DeepPartial<TlsConfig> {
  const str = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name])
  return {
    enabled: bool(env, prefix, errors),
    caFile: str(`${prefix}_CA_FILE`), certFile: str(`${prefix}_CERT_FILE`), keyFile: str(`${prefix}_KEY_FILE`),
    rejectUnauthorized: bool(env, `${prefix}_REJECT_UNAUTHORIZED`, errors),
  }
}

function fromEnv(env: Env, errors: string[]): DeepPartial<Config> {
  const str = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name])
  const redisUrl = str('REDIS_URL')
  const saslMechanism = str('KAFKA_SASL_MECHANISM')
  return {
    logLevel: str('LOG_LEVEL') as Config['logLevel'] | undefined,
    http: { host: str('CDP_HOST'), port: int(env, 'CDP_PORT', errors) },
    kafka: {
      brokers: str('KAFKA_BROKERS')?.split(',').map((s) => s.trim()).filter(Boolean),
      client: str('CDP_KAFKA_CLIENT') as Config['kafka']['client'] | undefined,
      topic: str('KAFKA_TOPIC'),
      deadLetterTopic: str('KAFKA_DLQ_TOPIC'),
      consumerGroup: str('KAFKA_CONSUMER_GROUP'),
      partitions: int(env, 'KAFKA_PARTITIONS', errors),
      sasl: saslMechanism === undefined ? undefined : {
        mechanism: saslMechanism.toLowerCase() as NonNullable<Config['kafka']['sasl']>['mechanism'],
        username: str('KAFKA_SASL_USERNAME') ?? '', password: str('KAFKA_SASL_PASSWORD') ?? '',
      },
      tls: tlsFromEnv(env, 'KAFKA_TLS', errors),
    },
    schemaRegistry: { url: str('SCHEMA_REGISTRY_URL') },
    client: { url: str('CDP_URL'), apiKey: str('CDP_API_KEY') },
    privacy: {
      pseudonymizeTenants: str('CDP_PSEUDONYMIZE_TENANTS')?.split(',').map((s) => s.trim()).filter(Boolean),
      secretsFile: str('CDP_PRIVACY_SECRETS_FILE'),
    },
    shutdown: { deadlineMs: int(env, 'CDP_SHUTDOWN_DEADLINE_MS', errors) },
    query: { piiHashKey: str('CDP_PII_HASH_KEY') },
    consumer: { httpPort: int(env, 'CDP_CONSUMER_PORT', errors) },
    metrics: { tenantLabel: bool(env, 'CDP_METRICS_TENANT_LABEL', errors) },
    clickhouse: {
      url: str('CLICKHOUSE_URL'), username: str('CLICKHOUSE_USER'), password: str('CLICKHOUSE_PASSWORD'),
      database: str('CLICKHOUSE_DATABASE'), cluster: str('CLICKHOUSE_CLUSTER'),
      deadLetterTtlDays: int(env, 'CLICKHOUSE_DEAD_LETTER_TTL_DAYS', errors),
    },
    state: {
      // pointing at a Redis implies the shared (scale-out) state backend unless said otherwise
      backend: (str('STATE_BACKEND') ?? (redisUrl !== undefined ? 'redis' : undefined)) as Config['state']['backend'] | undefined,
      redisUrl,
      redisUsername: str('REDIS_USERNAME'),
      redisPassword: str('REDIS_PASSWORD'),
      redisTls: tlsFromEnv(env, 'REDIS_TLS', errors),
    },
  }
}

/** defaults that depend on other settings: the analyst cap follows the ClickHouse mode */
function autoLimits(cfg: Config): Config {
  if (cfg.query?.maxConcurrentTotal !== 0) return cfg
  return { ...cfg, query: { ...cfg.query, maxConcurrentTotal: cfg.clickhouse?.url == null ? 1 : 8 } }
}

/** checks the schema cannot express: files that must exist, limits that must be ordered */
function crossChecks(cfg: Config, errors: string[]): void {
  for (const [where, tls] of [['kafka.tls', cfg.kafka.tls], ['state.redisTls', cfg.state.redisTls]] as const) {
    for (const f of ['caFile', 'certFile', 'keyFile'] as const) {
      const path = tls[f]
      if (path !== undefined && path !== null && !existsSync(path)) errors.push(`/${where.replace('.', '/')}/${f} file not found: ${path}`)
    }
    if ((tls.certFile == null) !== (tls.keyFile == null)) errors.push(`/${where.replace('.', '/')} certFile and keyFile go together`)
  }
  if (cfg.http.headersTimeoutMs > cfg.http.requestTimeoutMs) errors.push('/http/headersTimeoutMs must not exceed requestTimeoutMs')
  for (const tenant of cfg.privacy.pseudonymizeTenants) {
    if (cfg.privacy.tenantSecrets[tenant] === undefined) {
      errors.push(`/privacy/pseudonymizeTenants: tenant ${JSON.stringify(tenant)} has no secret in privacy.secretsFile`)
    }
  }
}

/** the per-tenant pseudonymization secrets: read from their own file, so they never sit in the config file */
function readTenantSecrets(file: string | undefined, errors: string[]): Record<string, string> | undefined {
  if (file === undefined || file === null) return undefined
  if (!existsSync(file)) { errors.push(`/privacy/secretsFile file not found: ${file}`); return undefined }
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'))
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected an object of tenant -> secret')
    return v as Record<string, string>
  } catch (err) {
    errors.push(`/privacy/secretsFile ${file}: ${(err as Error).message}`)
    return undefined
  }
}

export interface LoadConfigOptions {
  env?: Env
  /** overrides applied last (tests, CLI flags) */
  overrides?: DeepPartial<Config>
}

const ajv = new Ajv({ allErrors: true })
const validate = ajv.compile(schema)

export function loadConfig(opts: LoadConfigOptions = {}): Readonly<Config> {
  const env = opts.env ?? process.env
  const errors: string[] = []
  let fileCfg: DeepPartial<Config> | undefined
  const file = env.CDP_CONFIG
  if (file !== undefined && file !== '') {
    if (!existsSync(file)) errors.push(`CDP_CONFIG: file not found: ${file}`)
    else {
      try { fileCfg = JSON.parse(readFileSync(file, 'utf8')) as DeepPartial<Config> } catch (err) {
        errors.push(`CDP_CONFIG: ${file} is not valid JSON: ${(err as Error).message}`)
      }
    }
  }
  const envCfg = fromEnv(env, errors)
  const merged = autoLimits(merge(merge(merge(defaults(env), fileCfg), envCfg), opts.overrides))
  const secrets = readTenantSecrets(merged.privacy?.secretsFile, errors)
  const cfg = secrets === undefined ? merged : { ...merged, privacy: { ...merged.privacy, tenantSecrets: { ...merged.privacy.tenantSecrets, ...secrets } } }
  if (!validate(cfg)) {
    for (const e of validate.errors ?? []) errors.push(`${e.instancePath || '/'} ${e.message ?? 'is invalid'}`)
  } else {
    crossChecks(cfg, errors)
  }
  if (errors.length > 0) {
    throw new CdpError('config_invalid', `invalid configuration:\n  - ${errors.join('\n  - ')}`)
  }
  return deepFreeze(cfg)
}

/** The environment, for the few places (stack scripts, CLI) that must pass it to children. */
export function processEnv(): Env {
  return process.env
}
