/**
 * ClickHouse's part of an erasure (src/privacy/erasure.ts): find every row of a person in one
 * tenant, and delete them.
 *
 * Deletes are mutations (`ALTER TABLE ... DELETE`) run with `mutations_sync = 2`, so the call
 * returns once the parts are rewritten without the rows: the data is gone from disk, not merely
 * masked (a lightweight DELETE only masks rows until a merge). Views (`events_resolved`,
 * `profile_canonical`, the `_masked` views of the analyst route) store nothing; the materialized
 * view `profile_merges_to_aliases` writes into `profile_aliases`, which is cleaned here.
 * Every statement names the tenant first: another tenant's rows are never touched, even when they
 * hold the same identity value.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { clickHouseError } from './errors.js'
import { quoteIdent } from './sql.js'

/** identity type as the identities table spells it */
export type RowIdentityType = 'external' | 'email' | 'phone' | 'device'

export interface PersonIdentity { type: RowIdentityType; value: string }

export interface PersonFacts {
  /** (source, external_event_id) of the person's events */
  tuples: { source: string; externalEventId: string }[]
  eventIds: string[]
}

export interface DeadLetterRef {
  key: string
  valueBase64: string
  partition: number
  offset: string
}

export type ErasedTable = 'events' | 'identities' | 'profile_merges' | 'profile_aliases' | 'dead_letters'

export interface PersonRows {
  /** the profiles these identities were linked to, with every id aliased to the same canonical id */
  profilesOf(tenant: string, identities: PersonIdentity[]): Promise<string[]>
  /** every identity linked to these profiles */
  identitiesOf(tenant: string, profileIds: string[]): Promise<PersonIdentity[]>
  /** events attributed to these profiles, or carrying one of these identities */
  factsOf(tenant: string, profileIds: string[], identities: PersonIdentity[]): Promise<PersonFacts>
  /** the tenant's dead letters (the caller decodes their values to find the person's) */
  deadLetters(tenant: string): Promise<DeadLetterRef[]>
  /** deletes, waited for; rows removed per table */
  erase(tenant: string, what: { profileIds: string[]; identities: PersonIdentity[]; eventIds: string[]; deadLetters: DeadLetterRef[] }): Promise<Record<ErasedTable, number>>
}

const COLUMN: Record<RowIdentityType, string> = { email: 'email', phone: 'phone', external: 'external_user_id', device: 'device_key' }

export function personRows(client: ClickHouseClient, database: string): PersonRows {
  const db = quoteIdent(database)
  const select = async <T>(query: string, params: Record<string, unknown>, what: string): Promise<T[]> => {
    try {
      return await (await client.query({ query, query_params: params, format: 'JSONEachRow' })).json<T>()
    } catch (err) {
      throw clickHouseError(err, what)
    }
  }
  const idKeys = (ids: PersonIdentity[]) => ids.map((i) => `${i.type}:${i.value}`)
  const byColumn = (ids: PersonIdentity[]) => {
    const out: Record<string, string[]> = { email: [], phone: [], external_user_id: [], device_key: [] }
    for (const i of ids) out[COLUMN[i.type]]!.push(i.value)
    return out
  }
  const eventsWhere = `tenant = {tenant:String} AND (profile_id IN {ids:Array(String)} OR event_id IN {eids:Array(String)}
    OR email IN {email:Array(String)} OR phone IN {phone:Array(String)}
    OR external_user_id IN {external_user_id:Array(String)} OR device_key IN {device_key:Array(String)})`

  return {
    async profilesOf(tenant, identities) {
      if (identities.length === 0) return []
      const rows = await select<{ id: string }>(`
        WITH linked AS (
          SELECT DISTINCT profile_id FROM ${db}.identities
          WHERE tenant = {tenant:String} AND concat(identity_type, ':', identity_value) IN {keys:Array(String)}
        ),
        canon AS (
          SELECT DISTINCT if(c.canonical_id = '', l.profile_id, c.canonical_id) AS id
          FROM linked AS l LEFT ANY JOIN ${db}.profile_canonical AS c ON c.tenant = {tenant:String} AND c.profile_id = l.profile_id
        )
        SELECT id FROM canon
        UNION DISTINCT SELECT profile_id AS id FROM linked
        UNION DISTINCT SELECT profile_id AS id FROM ${db}.profile_canonical
          WHERE tenant = {tenant:String} AND canonical_id IN (SELECT id FROM canon)`,
      { tenant, keys: idKeys(identities) }, 'erasure: finding profiles')
      return [...new Set(rows.map((r) => r.id))].sort()
    },

    async identitiesOf(tenant, profileIds) {
      if (profileIds.length === 0) return []
      const rows = await select<{ t: RowIdentityType; v: string }>(`
        SELECT DISTINCT identity_type AS t, identity_value AS v FROM ${db}.identities
        WHERE tenant = {tenant:String} AND profile_id IN {ids:Array(String)}`,
      { tenant, ids: profileIds }, 'erasure: finding identities')
      return rows.map((r) => ({ type: r.t, value: r.v }))
    },

    async factsOf(tenant, profileIds, identities) {
      const rows = await select<{ source: string; external_event_id: string; event_id: string }>(`
        SELECT DISTINCT source, external_event_id, event_id FROM ${db}.events WHERE ${eventsWhere}`,
      { tenant, ids: profileIds, eids: [], ...byColumn(identities) }, 'erasure: finding events')
      const tuples = new Map<string, { source: string; externalEventId: string }>()
      for (const r of rows) tuples.set(JSON.stringify([r.source, r.external_event_id]), { source: r.source, externalEventId: r.external_event_id })
      return { tuples: [...tuples.values()], eventIds: [...new Set(rows.map((r) => r.event_id))] }
    },

    async deadLetters(tenant) {
      const rows = await select<{ key: string; value_base64: string; kafka_partition: number; kafka_offset: string }>(`
        SELECT key, value_base64, kafka_partition, toString(kafka_offset) AS kafka_offset FROM ${db}.dead_letters
        WHERE tenant = {tenant:String}`, { tenant }, 'erasure: reading dead letters')
      return rows.map((r) => ({ key: r.key, valueBase64: r.value_base64, partition: Number(r.kafka_partition), offset: r.kafka_offset }))
    },

    async erase(tenant, what) {
      const params = {
        tenant, ids: what.profileIds, eids: what.eventIds, keys: idKeys(what.identities), ...byColumn(what.identities),
        positions: what.deadLetters.map((d) => `${d.partition}/${d.offset}`),
      }
      const where: Record<ErasedTable, string> = {
        events: eventsWhere,
        identities: `tenant = {tenant:String} AND (profile_id IN {ids:Array(String)}
          OR concat(identity_type, ':', identity_value) IN {keys:Array(String)})`,
        profile_merges: `tenant = {tenant:String} AND (from_profile_id IN {ids:Array(String)} OR to_profile_id IN {ids:Array(String)})`,
        profile_aliases: `tenant = {tenant:String} AND (profile_id IN {ids:Array(String)} OR canonical_id IN {ids:Array(String)})`,
        dead_letters: `tenant = {tenant:String} AND concat(toString(kafka_partition), '/', toString(kafka_offset)) IN {positions:Array(String)}`,
      }
      const out = {} as Record<ErasedTable, number>
      for (const table of Object.keys(where) as ErasedTable[]) {
        const [c] = await select<{ n: string }>(`SELECT count() AS n FROM ${db}.${table} WHERE ${where[table]}`, params, `erasure: counting ${table}`)
        out[table] = Number(c?.n ?? 0)
        if (out[table] === 0) continue
        try {
          await client.command({
            query: `ALTER TABLE ${db}.${table} DELETE WHERE ${where[table]}`,
            query_params: params,
            // wait until the mutation has rewritten the parts: the rows are gone when this returns
            clickhouse_settings: { mutations_sync: '2' },
          })
        } catch (err) {
          throw clickHouseError(err, `erasure: deleting from ${table}`)
        }
      }
      return out
    },
  }
}
