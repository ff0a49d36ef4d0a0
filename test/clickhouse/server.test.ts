import t from 'tap'
import { NO_SERVER, serverUrl } from './harness.js'
import { scenarios } from './scenarios.js'

const url = serverUrl(t)
for (const [name, scenario] of Object.entries(scenarios)) {
  void t.test(`server: ${name}`, { skip: url === undefined ? NO_SERVER : false }, (t) => scenario(t, 'server'))
}
