/**
 * Resolve step: the facts to write go through the identity graph, in order, in one call (see
 * identity-step.ts for the graph side); each fact gets its profile and the graph's new rows.
 */
import { CdpError } from '../errors.js'
import type { Unique } from './dedup-step.js'
import type { IdentityResolution, ProcessorDeps } from './deps.js'

export interface Resolved extends Unique {
  resolution: IdentityResolution
}

export function resolveStep(deps: Pick<ProcessorDeps, 'identity'>): (items: Unique[]) => Promise<Resolved[]> {
  return async (items) => {
    if (items.length === 0) return []
    const resolutions = await deps.identity.resolveMany(items.map((x) => x.event))
    if (resolutions.length !== items.length) throw new CdpError('internal_error', `identity step answered ${resolutions.length} of ${items.length} events`)
    return items.map((x, i) => ({ ...x, resolution: resolutions[i]! }))
  }
}
