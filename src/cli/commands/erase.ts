/**
 * `cdp erase` and `cdp suppressions` (docs/PRIVACY.md). Both work on the shared privacy store
 * directly (LMDB under state.lmdbPath, or Redis), like `cdp keys`: no API key is needed, the
 * operator's access to the state store is the authority. `cdp erase` stores the request (the
 * identity is suppressed at once) and follows it while the running service, the process that owns
 * ClickHouse (role all or consumer), runs it; in embedded mode chDB belongs to that process, so
 * the CLI never opens ClickHouse itself.
 */
import { parseArgs } from 'node:util'
import type { Config } from '../../config/index.js'
import { isCdpError } from '../../errors.js'
import { createPrivacyStore } from '../../state/privacy-store.js'
import { createPseudonymizer, createSuppressionCheck, erasureRequests, erasureView } from '../../privacy/index.js'
import type { Command, Out } from '../command.js'

const ERASE_USAGE = [
  'usage: cdp erase --tenant T (--email E | --phone P | --external-user-id U | --device-key D) [--no-wait] [--timeout SECONDS]',
  '  erases the person the identity resolves to (merged profiles included) from every store of tenant T,',
  '  suppresses their identities, and prints progress and the receipt. Needs a running service with role',
  '  all or consumer (it owns ClickHouse and runs the erasure); --no-wait only stores the request.',
]

export const eraseCommand: Command = {
  name: 'erase',
  summary: 'erase a person of a tenant from every store (GDPR art. 17), with a receipt',
  usage: ERASE_USAGE,
  run: (args, { out, config }) => erase(config(), args, out),
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function erase(config: Readonly<Config>, args: string[], out: Out, pollMs = 500): Promise<number> {
  let values
  try {
    values = parseArgs({ args, options: {
      tenant: { type: 'string' }, email: { type: 'string' }, phone: { type: 'string' }, 'external-user-id': { type: 'string' },
      'device-key': { type: 'string' }, 'no-wait': { type: 'boolean' }, timeout: { type: 'string' },
    } }).values
  } catch (err) {
    out(`erase: ${(err as Error).message}`)
    return 2
  }
  const identity = Object.fromEntries(([['email', values.email], ['phone', values.phone], ['externalUserId', values['external-user-id']], ['deviceKey', values['device-key']]] as const)
    .filter(([, v]) => v !== undefined))
  if (values.tenant === undefined || values.tenant === '' || Object.keys(identity).length !== 1) {
    for (const l of ERASE_USAGE) out(l)
    return 2
  }
  const timeoutMs = Number(values.timeout ?? '600') * 1000
  const store = createPrivacyStore(config)
  try {
    const pseudonymizer = createPseudonymizer(config.privacy)
    const requests = erasureRequests(config, store, createSuppressionCheck(config, store, pseudonymizer), pseudonymizer)
    let rec
    try {
      rec = await requests.request(values.tenant, { identity }, 'cli')
    } catch (err) {
      if (isCdpError(err) && err.code === 'validation_failed') { out(`erase: ${err.message}`); return 2 }
      throw err
    }
    out(`erase: ${rec.id} pending for tenant ${rec.tenant}; the identity is suppressed from now on`)
    if (values['no-wait'] === true) return 0
    const t0 = Date.now()
    let last = ''
    let warned = false
    for (;;) {
      await sleep(pollMs)
      const cur = await store.getErasure(rec.id)
      if (cur === undefined) { out(`erase: ${rec.id} disappeared from the store`); return 1 }
      const line = `${cur.status}${cur.step === undefined ? '' : `: ${cur.step}`}`
      if (line !== last) { out(`erase: ${rec.id} ${line} (${((Date.now() - t0) / 1000).toFixed(1)} s)`); last = line }
      if (cur.status === 'completed' || cur.status === 'failed') {
        out(JSON.stringify(erasureView(cur), null, 2))
        return cur.status === 'completed' ? 0 : 1
      }
      if (!warned && cur.status === 'pending' && Date.now() - t0 > 10_000) {
        warned = true
        out('erase: still pending: is a service with role all or consumer running against this state store?')
      }
      if (Date.now() - t0 > timeoutMs) { out(`erase: ${rec.id} still ${cur.status} after ${timeoutMs / 1000} s; it stays queued (cdp erase prints nothing more)`); return 1 }
    }
  } finally {
    await store.close()
  }
}

const SUPPRESSIONS_USAGE = [
  'usage: cdp suppressions <command>',
  '  list [--tenant T]                       the suppressed identities (keyed hashes, never values)',
  '  lift --tenant T (HASH | ERASURE_ID)     accept that identity (or every identity of that erasure) again',
]

export const suppressionsCommand: Command = {
  name: 'suppressions',
  summary: 'list and lift the identities refused after erasures',
  usage: SUPPRESSIONS_USAGE,
  run: (args, { out, config }) => suppressions(config(), args, out),
}

export async function suppressions(config: Readonly<Config>, args: string[], out: Out): Promise<number> {
  const [sub, ...rest] = args
  let values
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { tenant: { type: 'string' } } }))
  } catch (err) {
    out(`suppressions: ${(err as Error).message}`)
    return 2
  }
  if (sub !== 'list' && sub !== 'lift') { for (const l of SUPPRESSIONS_USAGE) out(l); return 2 }
  const store = createPrivacyStore(config)
  try {
    if (sub === 'list') {
      const all = await store.listSuppressions(values.tenant)
      for (const s of all) out(`${s.tenant}\t${s.type}\t${s.hash}\t${s.erasureId}\t${s.at}`)
      out(`${all.length} suppressed identit${all.length === 1 ? 'y' : 'ies'}`)
      return 0
    }
    const what = positionals[0]
    if (values.tenant === undefined || what === undefined) { for (const l of SUPPRESSIONS_USAGE) out(l); return 2 }
    const n = await store.lift(values.tenant, what)
    out(`lifted ${n} suppression${n === 1 ? '' : 's'} of tenant ${values.tenant}`)
    return n > 0 ? 0 : 1
  } finally {
    await store.close()
  }
}
