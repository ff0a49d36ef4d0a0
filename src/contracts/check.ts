import type { ErrorDetail } from '../errors.js'
import type { ContractRegistry } from './registry.js'
import { validateProperties } from './validate.js'

export type ContractCheck = { ok: true; version: number } | { ok: false; details: ErrorDetail[] }
export type ContractChecker = (tenant: string, eventType: string, properties: unknown) => ContractCheck

/** The check the API and the consumer both apply: the event type is registered, its properties fit. */
export function contractChecker(contracts: ContractRegistry, opts: { maxStringLength: number }): ContractChecker {
  return (tenant, eventType, properties) => {
    const contract = contracts.get(tenant, eventType)
    if (contract === undefined) {
      return { ok: false, details: [{ pointer: '/eventType', code: 'unregistered_event_type', message: `eventType ${JSON.stringify(eventType)} is not registered in the CDP contract` }] }
    }
    const details = validateProperties(contract, properties, { maxStringLength: opts.maxStringLength })
    return details.length === 0 ? { ok: true, version: contract.version } : { ok: false, details }
  }
}
