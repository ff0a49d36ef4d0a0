/** The `cdp` executable (bin/cdp.js runs the compiled copy). Commands: src/cli/dispatch.ts. */
import { isCdpError } from '../errors.js'
import { main } from './dispatch.js'

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    process.stderr.write(`cdp: ${isCdpError(err) ? `[${err.code}] ` : ''}${(err as Error).message ?? String(err)}\n`)
    process.exitCode = 1
  },
)
