/**
 * `cdp dlq list|redrive`: dead letters through the running service's operator routes
 * (GET /v1/cdp/dead-letters, POST /v1/cdp/dead-letters/redrive), because in embedded mode chDB
 * and the batching producer belong to that process. Needs CDP_API_KEY with dlq:manage (and
 * CDP_URL when the service is not at http://127.0.0.1:8080).
 */
import { parseArgs } from 'node:util'
import type { Config } from '../../config/index.js'
import type { Command, Out } from '../command.js'

const USAGE = [
  'usage: cdp dlq <command>',
  '  list    [--reason R] [--tenant T] [--since ISO] [--limit N]   newest dead letters and counts by reason',
  '  redrive --reason R [--tenant T] [--since ISO] [--dry-run] [--chunk N]',
  '          re-submit the original records to the events topic once the cause is fixed; each dead letter',
  '          at most once (a second run finds nothing); records that fail again are dead-lettered again',
  '  through the running service: CDP_API_KEY, an operator key with dlq:manage (cdp keys create --operator --permission dlq:manage)',
]

export const dlqCommand: Command = {
  name: 'dlq',
  summary: 'list dead letters and redrive them after the cause is fixed',
  usage: USAGE,
  run: (args, { out, config }) => dlq(config(), args, out),
}

type Call = { ok: true; body: unknown } | { ok: false; message: string }

async function call(config: Readonly<Config>, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Call> {
  let res: Response
  try {
    res = await fetch(`${config.client.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${config.client.apiKey ?? ''}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
  } catch (err) {
    return { ok: false, message: `cannot reach the service at ${config.client.url} (is \`cdp serve\` running?): ${(err as Error).message}` }
  }
  const text = await res.text()
  if (!res.ok) return { ok: false, message: `HTTP ${res.status}: ${text}` }
  return { ok: true, body: JSON.parse(text) as unknown }
}

interface Listed {
  dead_letters: { tenant: string | null; reason_code: string; reason: string; kafka_partition: number; kafka_offset: string; key: string; dead_lettered_at: string; redriven_at: string | null }[]
  counts: { reason_code: string; total: number; pending: number }[]
}
interface Redriven { redrive_id: string; dry_run: boolean; matched: number; redriven: number; remaining: number }

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s)

export async function dlq(config: Readonly<Config>, args: string[], out: Out): Promise<number> {
  const [sub, ...rest] = args
  if (sub !== 'list' && sub !== 'redrive') { for (const l of USAGE) out(l); return 2 }
  if (config.client.apiKey === undefined) { out('cdp dlq needs CDP_API_KEY: an operator key with the dlq:manage permission (cdp keys create --operator --permission dlq:manage)'); return 2 }
  let values
  try {
    values = parseArgs({ args: rest, options: {
      reason: { type: 'string' }, tenant: { type: 'string' }, since: { type: 'string' }, limit: { type: 'string' },
      'dry-run': { type: 'boolean' }, chunk: { type: 'string' },
    } }).values
  } catch (err) { out(`dlq ${sub}: ${(err as Error).message}`); return 2 }
  const filter = { ...(values.reason === undefined ? {} : { reason: values.reason }), ...(values.tenant === undefined ? {} : { tenant: values.tenant }), ...(values.since === undefined ? {} : { since: values.since }) }

  if (sub === 'list') {
    const q = new URLSearchParams({ ...filter, ...(values.limit === undefined ? {} : { limit: values.limit }) })
    const r = await call(config, 'GET', `/v1/cdp/dead-letters?${q.toString()}`)
    if (!r.ok) { out(`dlq list failed (${r.message})`); return 1 }
    const body = r.body as Listed
    out(`${'reason'.padEnd(20)}  ${'total'.padStart(8)}  ${'pending'.padStart(8)}`)
    for (const c of body.counts) out(`${c.reason_code.padEnd(20)}  ${String(c.total).padStart(8)}  ${String(c.pending).padStart(8)}`)
    if (body.dead_letters.length > 0) out('')
    for (const d of body.dead_letters) {
      out([d.dead_lettered_at, (d.tenant ?? '-').padEnd(12), d.reason_code.padEnd(18), `${d.kafka_partition}/${d.kafka_offset}`.padEnd(10),
        d.redriven_at === null ? 'pending ' : 'redriven', clip(d.key, 60), clip(d.reason, 80)].join('  '))
    }
    return 0
  }

  if (values.reason === undefined) { out('dlq redrive: --reason is required (cdp dlq list shows the reasons)'); return 2 }
  const chunk = values.chunk === undefined ? 500 : Number(values.chunk)
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > 5000) { out('dlq redrive: --chunk must be an integer from 1 to 5000'); return 2 }
  const first = await call(config, 'POST', '/v1/cdp/dead-letters/redrive', { ...filter, dry_run: true })
  if (!first.ok) { out(`dlq redrive failed (${first.message})`); return 1 }
  const total = (first.body as Redriven).matched
  if (values['dry-run'] === true || total === 0) {
    out(`dlq redrive: ${total} dead letter(s) with reason ${values.reason} to redrive${values['dry-run'] === true ? ' (dry run: nothing sent)' : ''}`)
    return 0
  }
  let done = 0
  let redriveId: string | undefined
  for (;;) {
    const r = await call(config, 'POST', '/v1/cdp/dead-letters/redrive', { ...filter, limit: chunk, ...(redriveId === undefined ? {} : { redrive_id: redriveId }) })
    if (!r.ok) { out(`dlq redrive failed after ${done}/${total} (${r.message}); run it again to continue`); return 1 }
    const body = r.body as Redriven
    redriveId = body.redrive_id
    done += body.redriven
    out(`dlq redrive ${redriveId}: ${done}/${total} re-submitted`)
    // bounded by the first count: records that fail again while this runs wait for the next run
    if (body.redriven === 0 || body.remaining === 0 || done >= total) break
  }
  out(`dlq redrive ${redriveId}: done, ${done} record(s) re-submitted to ${config.kafka.topic}; \`cdp dlq list\` shows any that fail again under their new reason`)
  return 0
}
