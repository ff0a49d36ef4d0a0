/**
 * clickhouse-connect, the analyst's Python client, with its default settings against the
 * development ClickHouse gateway (issue #13): examples/python/clickhouse_connect_roundtrip.py, in
 * the virtualenv of scripts/python-env.sh, creates a table, inserts rows of several types (its
 * default insert: Native format, body compressed with lz4, or zstd from Python 3.14 on) and
 * without compression (statement and Native data in one body), reads them back with query()
 * (Native output) and checks them itself. Here the rows are then read from chDB through the
 * gateway with @clickhouse/client and compared with what the script says it inserted, and with a
 * few values written down here.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createClient } from '@clickhouse/client'
import { startClickHouseGateway, type ExecutedStatement } from '../../tools/clickhouse-gateway/gateway.js'
import { tempDir, uniq } from '../helpers/config.js'
import { ROOT } from '../helpers/process.js'

const run = promisify(execFile)

interface Row { id: number; s: string; n: string; f: string; ts: string; note: string | null; tags: string[]; blob: string }
interface Summary { compression: string; write_compression: string; written_rows: number; count: number; read_back_equal: boolean; rows: Row[] }

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex')

// as test/integration/examples.test.ts does: the virtualenv made here too, so the file runs alone;
// without one the Python test is skipped, saying why
const env = await run('bash', [join(ROOT, 'scripts', 'python-env.sh')], { cwd: ROOT, timeout: 180_000 })
  .then(({ stdout }) => ({ python: stdout.trim().split('\n').pop()!, failed: false as const }))
  .catch((err: Error & { stderr?: string }) => ({ python: '', failed: (err.stderr ?? err.message).trim().split('\n').pop() }))
const noPython = env.failed === false ? false : `no Python virtualenv: bash scripts/python-env.sh failed (${env.failed})`

void t.test('clickhouse-connect with default settings inserts and queries through the gateway', { skip: noPython }, async (t) => {
  const statements: ExecutedStatement[] = []
  const gw = await startClickHouseGateway({ path: join(tempDir(t), 'chdb'), port: 0, onExecuted: (s) => { statements.push(s) } })
  t.teardown(() => gw.close())
  const db = uniq('connect')
  const table = 'roundtrip'

  // the token goes by environment, so that a failure message (which names the command) never shows it
  const script = join(ROOT, 'examples', 'python', 'clickhouse_connect_roundtrip.py')
  const out = await run(env.python, [script, '--port', String(gw.port), '--database', db, '--table', table],
    { cwd: ROOT, timeout: 90_000, env: { ...process.env, CLICKHOUSE_PASSWORD: gw.token } })
    .catch((err: Error & { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: `${err.stderr ?? ''}${err.message.split('\n')[0] ?? ''}` }))
  const last = out.stdout.trim().split('\n').pop() ?? ''
  if (!last.startsWith('{')) {
    t.fail('the script ran to its summary', { stderr: out.stderr.replaceAll(gw.token, '<token>').split('\n').slice(-8).join('\n') })
    return
  }
  const s = JSON.parse(last) as Summary
  t.ok(s.read_back_equal, `clickhouse-connect read back what it inserted${s.read_back_equal ? '' : `: ${out.stderr}`}`)
  t.ok(['lz4', 'zstd'].includes(s.write_compression), `the client compressed its insert with ${s.write_compression}, its default`)
  t.equal(s.written_rows, 4, 'the inserts reported the rows they wrote (X-ClickHouse-Summary)')
  t.equal(Number(s.count), 4)

  // what reached the gateway: Native inserts, as clickhouse-connect sends them by default
  const inserts = statements.filter((x) => x.kind === 'INSERT')
  t.equal(inserts.length, 2, 'two inserts')
  t.ok(inserts.every((x) => /FORMAT Native$/.test(x.sql)), 'both in Native format')
  t.ok(statements.filter((x) => x.kind === 'SELECT').some((x) => x.sql.includes(`${db}.${table}`) && /FORMAT Native\s*$/.test(x.sql)), 'read back in Native format')

  // the rows in chDB, read by another client
  const client = createClient({ url: gw.url, password: gw.token })
  t.teardown(() => client.close())
  const stored = await (await client.query({
    query: `SELECT id, lower(hex(s)) AS s, toString(n) AS n, f, toString(ts) AS ts,
              if(isNull(note), NULL, lower(hex(assumeNotNull(note)))) AS note,
              arrayMap(x -> lower(hex(x)), tags) AS tags, lower(hex(blob)) AS blob
            FROM ${db}.${table} ORDER BY id`,
    format: 'JSONEachRow',
  })).json<Omit<Row, 'f'> & { f: number }>()
  t.same(stored, s.rows.map((r) => ({ ...r, f: Number(r.f) })), 'chDB holds the rows as the script inserted them')
  // and a few values stated here, so that the comparison does not rest on the script alone
  t.equal(stored[0]?.s, hex('Grüße aus Köln, 東京, 🚀'), 'non-ASCII text, byte for byte')
  t.equal(stored[0]?.n, '-9223372036854775808', 'Int64 minimum')
  t.equal(stored[0]?.ts, '2026-01-02 03:04:05.678901', 'DateTime64(6) to the microsecond')
  t.equal(stored[0]?.note, null, 'NULL stays NULL')
  t.same(stored[0]?.tags, [hex('a'), '', hex('ü')], 'Array(String)')
  t.equal(stored[0]?.blob, '0001fffec328', 'bytes that are not UTF-8, unaltered')
  t.equal(stored[2]?.blob, Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex'), 'every byte value')
  t.equal(stored[3]?.s, hex('plain body ✓'), 'the uncompressed insert (statement and data in one body)')
})
