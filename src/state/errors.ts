import type { ErrorCode } from '../errors.js'

/** Redis replies that mean "the server cannot serve this now", not "the request is wrong". */
const TRANSIENT_REPLY = /^(BUSY|LOADING|OOM|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MISCONF|UNBLOCKED|ERR max number of clients)/

/**
 * What a state backend's error means (for wrapForeign). Connection trouble, timeouts and
 * transient server states are `state_store_unavailable` (503, retriable). A Redis script error is
 * our bug, not the store's health, so it is `internal_error` (still retriable, but says where to
 * look).
 */
export function stateStoreErrorCode(err: unknown): ErrorCode {
  const message = err instanceof Error ? err.message : String(err)
  const name = err instanceof Error ? err.name : ''
  if (name === 'ReplyError' && !TRANSIENT_REPLY.test(message) && /script|lua/i.test(message)) return 'internal_error'
  return 'state_store_unavailable'
}
