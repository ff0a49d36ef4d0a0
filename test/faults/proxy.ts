/**
 * A TCP proxy of the fault suite's own (node:net), put between a client and a service to break the
 * connection at chosen points. Modes, switchable while it runs:
 *
 * - `pass`: bytes both ways, untouched.
 * - `drop`: the request goes through; when the first bytes of the answer come back, with
 *   probability `p` both sockets are reset and the answer is thrown away. The service has done the
 *   work (the produce was acknowledged, the insert executed) and the client hears nothing but a
 *   reset: the case a well-behaved client must retry, and the server must answer `duplicate`.
 * - `delay`: every chunk, both ways, waits `ms` before it is passed on (order kept).
 * - `reset`: new connections are reset at once, open ones are reset too.
 */
import { request as httpRequest, createServer as createHttpServer, type IncomingMessage } from 'node:http'
import { createServer, connect, type Server, type Socket } from 'node:net'

export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'drop'; p: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'reset' }

export interface ProxyStats { connections: number; dropped: number; resets: number }

export interface TcpProxy {
  port: number
  url: string
  set(mode: ProxyMode): void
  stats: ProxyStats
  close(): Promise<void>
}

/** listen on 127.0.0.1 (port 0: any free one); resolves with the port taken */
async function listenLocal(server: Pick<Server, 'once' | 'listen' | 'address'>, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const addr = server.address()
  if (addr === null || typeof addr !== 'object') throw new Error('proxy: no address')
  return addr.port
}

export async function startProxy(target: { host?: string; port: number }, listenPort = 0): Promise<TcpProxy> {
  let mode: ProxyMode = { kind: 'pass' }
  const stats: ProxyStats = { connections: 0, dropped: 0, resets: 0 }
  const open = new Set<Socket>()
  const host = target.host ?? '127.0.0.1'

  const kill = (...socks: Socket[]) => { for (const s of socks) if (!s.destroyed) s.resetAndDestroy() }

  // passes chunks from `from` to `to`, each after `delay()` ms, in order
  const pipeDelayed = (from: Socket, to: Socket, upstreamAnswer: boolean, other: Socket) => {
    let chain = Promise.resolve()
    from.on('data', (chunk: Buffer) => {
      const m = mode
      if (upstreamAnswer && m.kind === 'drop' && Math.random() < m.p) {
        stats.dropped++
        kill(from, to, other)
        return
      }
      const ms = m.kind === 'delay' ? m.ms : 0
      if (ms === 0) { chain = chain.then(() => { if (!to.destroyed) to.write(chunk) }); return }
      from.pause()
      chain = chain.then(() => new Promise<void>((r) => setTimeout(() => {
        if (!to.destroyed) to.write(chunk)
        if (!from.destroyed) from.resume()
        r()
      }, ms)))
    })
    from.on('end', () => { void chain.then(() => { if (!to.destroyed) to.end() }) })
  }

  const server: Server = createServer((client) => {
    stats.connections++
    if (mode.kind === 'reset') { stats.resets++; kill(client); return }
    const upstream = connect({ host, port: target.port })
    open.add(client); open.add(upstream)
    const done = () => { open.delete(client); open.delete(upstream); kill(client, upstream) }
    client.on('error', done); upstream.on('error', done)
    client.on('close', done); upstream.on('close', done)
    pipeDelayed(client, upstream, false, client)
    pipeDelayed(upstream, client, true, upstream)
  })
  const port = await listenLocal(server, listenPort)
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stats,
    set(m) {
      mode = m
      if (m.kind === 'reset') for (const s of open) { stats.resets++; kill(s) }
    },
    close: async () => {
      for (const s of open) kill(s)
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

/**
 * The same modes for HTTP, one request at a time, with the `Host` header rewritten to the
 * target's address. Needed in front of the ClickHouse gateway, which refuses a `Host` that is not
 * its own (DNS rebinding); a TCP proxy would pass on the proxy's port. `drop` resets the client's
 * connection once the target's answer headers arrived (the statement ran); `delay` holds the
 * answer `ms` before passing it on; `reset` resets every new request.
 */
export async function startHttpProxy(target: { port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = { kind: 'pass' }
  const stats: ProxyStats = { connections: 0, dropped: 0, resets: 0 }
  const server = createHttpServer((req, res) => {
    stats.connections++
    const reset = () => { if (!req.socket.destroyed) req.socket.resetAndDestroy() }
    if (mode.kind === 'reset') { stats.resets++; reset(); return }
    const up = httpRequest({ host: '127.0.0.1', port: target.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: `127.0.0.1:${target.port}` } }, (answer: IncomingMessage) => {
      const m = mode
      if (m.kind === 'drop' && Math.random() < m.p) { stats.dropped++; answer.resume(); reset(); return }
      const pass = () => { res.writeHead(answer.statusCode ?? 502, answer.headers); answer.pipe(res) }
      if (m.kind === 'delay') setTimeout(pass, m.ms)
      else pass()
    })
    up.on('error', reset)
    req.pipe(up)
  })
  server.keepAliveTimeout = 1000
  const port = await listenLocal(server, 0)
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stats,
    set(m) { mode = m },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}
