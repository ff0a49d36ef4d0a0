/**
 * Who may talk to the development gateway. It serves a whole ClickHouse on the loopback
 * interface, and loopback is not a boundary: any local process, and any web page the developer
 * opens (a form post, or a DNS name rebound to 127.0.0.1), can reach it. So:
 *
 * - a token generated at start-up must come with every statement, where ClickHouse clients put a
 *   password: HTTP basic auth (`createClient({ url, password })` in @clickhouse/client sends
 *   `Authorization: Basic base64(user:password)`; any user name is accepted, the token is the
 *   password), `X-ClickHouse-Key`, `Authorization: Bearer`, or the `password` URL parameter;
 * - a request carrying an `Origin` header comes from a browser and is refused, whatever it carries;
 * - the `Host` header must name the listen address (`127.0.0.1:<port>` or `localhost:<port>`),
 *   which a page on a rebound DNS name cannot send.
 * `/ping` needs no token, as on a server; the Origin and Host rules apply to it too.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

/** 32 random bytes, URL-safe, so it can go into a URL parameter or a header unescaped */
export function newGatewayToken(): string {
  return randomBytes(32).toString('base64url')
}

export interface AccessRefusal {
  status: 401 | 403
  /** ClickHouse's code and type for the refusal, as a server names them */
  code: number
  type: 'AUTHENTICATION_FAILED' | 'REQUIRED_PASSWORD' | 'ACCESS_DENIED'
  message: string
}

/** The token a request presents, wherever a ClickHouse client puts its password. */
export function presentedToken(headers: IncomingHttpHeaders, url: URL): string | undefined {
  const auth = headers.authorization ?? ''
  const basic = /^Basic\s+(\S+)\s*$/i.exec(auth)
  if (basic !== null) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    const password = colon < 0 ? '' : decoded.slice(colon + 1)
    if (password !== '') return password
  }
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(auth)
  if (bearer !== null) return bearer[1]
  const key = headers['x-clickhouse-key']
  if (typeof key === 'string' && key !== '') return key
  const param = url.searchParams.get('password')
  return param === null || param === '' ? undefined : param
}

/** Compared as digests so the time taken says nothing about how much of the token matched. */
function sameToken(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest()
  const db = createHash('sha256').update(b).digest()
  return timingSafeEqual(da, db)
}

/** The Origin and Host rules; undefined when the request may go on. */
export function checkOrigin(headers: IncomingHttpHeaders, port: number): AccessRefusal | undefined {
  if (headers.origin !== undefined) {
    return {
      status: 403, code: 497, type: 'ACCESS_DENIED',
      message: 'requests from a web page (with an Origin header) are refused by the ClickHouse gateway',
    }
  }
  const host = (headers.host ?? '').toLowerCase()
  if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) {
    return {
      status: 403, code: 497, type: 'ACCESS_DENIED',
      message: `Host ${JSON.stringify(headers.host ?? '')} is not the gateway's address (127.0.0.1:${port} or localhost:${port})`,
    }
  }
  return undefined
}

/** The token rule; undefined when the request presents the gateway's token. */
export function checkToken(headers: IncomingHttpHeaders, url: URL, token: string): AccessRefusal | undefined {
  const presented = presentedToken(headers, url)
  if (presented === undefined) {
    return {
      status: 401, code: 194, type: 'REQUIRED_PASSWORD',
      message: 'the ClickHouse gateway needs its token as the password (CLICKHOUSE_PASSWORD; see docs/CLICKHOUSE-GATEWAY.md)',
    }
  }
  if (!sameToken(presented, token)) {
    return {
      status: 401, code: 516, type: 'AUTHENTICATION_FAILED',
      message: 'Authentication failed: the password is not the ClickHouse gateway\'s token',
    }
  }
  return undefined
}
