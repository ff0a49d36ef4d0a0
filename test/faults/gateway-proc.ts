/**
 * The fault suite's ClickHouse gateway process: the project's gateway (tools/clickhouse-gateway)
 * on one chDB data dir, run as a process of its own so scenarios can stop and start it. Unlike
 * `cdp clickhouse-gateway`, which makes a fresh token at every start, it takes the token the suite
 * chose for the scenario (FAULTS_GATEWAY_TOKEN, in the environment, never in argv): a gateway
 * restarted mid-scenario (clickhouse-down) must accept the services started before it.
 *
 *   tsx test/faults/gateway-proc.ts <port> <chdb dir>
 */
import { startClickHouseGateway } from '../../tools/clickhouse-gateway/gateway.js'

const [portArg, path] = process.argv.slice(2)
const token = process.env.FAULTS_GATEWAY_TOKEN
if (portArg === undefined || path === undefined || token === undefined) {
  console.error('usage: FAULTS_GATEWAY_TOKEN=… tsx test/faults/gateway-proc.ts <port> <chdb dir>')
  process.exit(2)
}
const log = {
  warn: (obj: object, msg: string) => console.error(JSON.stringify({ level: 'warn', msg, ...obj })),
  debug: () => undefined,
}
const gateway = await startClickHouseGateway({ path, port: Number(portArg), token, log })
console.log(`faults gateway: listening on ${gateway.url} with chDB at ${path}`)
await new Promise<void>((done) => { process.once('SIGTERM', done); process.once('SIGINT', done) })
await gateway.close()
process.exit(0)
