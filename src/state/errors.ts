import { CdpError, isCdpError } from '../errors.js'

/** Redis replies that mean "the server cannot serve this now", not "the request is wrong". */
const TRANSIENT_REPLY = /^(BUSY|LOADING|OOM|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MISCONF|UNBLOCKED|ERR max number of clients)/

/**
 * Wrap an error from a state backend. Connection trouble, timeouts and transient server states
 * become `state_store_unavailable` (503, retriable). A Redis script error is our bug, not the
 * store's health, so it becomes `internal_error` (still retriable, but says where to look).
 */
export function storeError(backend: 'lmdb' | 'redis', op: string, err: unknown): CdpError {
  if (isCdpError(err)) return err
  const message = err instanceof Error ? err.message : String(err)
  const name = err instanceof Error ? err.name : ''
  if (backend === 'redis' && name === 'ReplyError' && !TRANSIENT_REPLY.test(message) && /script|lua/i.test(message)) {
    return new CdpError('internal_error', `${backend} ${op}: script failed: ${message}`, { cause: err })
  }
  return new CdpError('state_store_unavailable', `${backend} ${op} failed: ${message}`, { cause: err })
}
