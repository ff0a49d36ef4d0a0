// Prints the functions with the most self time in a .cpuprofile (node --cpu-prof): node scripts/cpu-profile-top.mjs FILE [N]
import { readFileSync } from 'node:fs'
const [file, n = '30'] = process.argv.slice(2)
const p = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(p.nodes.map((x) => [x.id, x]))
const self = new Map()
p.samples.forEach((id, i) => {
  const f = byId.get(id).callFrame
  const k = `${f.functionName || '(anon)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber}`
  self.set(k, (self.get(k) ?? 0) + p.timeDeltas[i])
})
const total = [...self.values()].reduce((a, b) => a + b, 0)
for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(`${(100 * t / total).toFixed(1).padStart(5)}%  ${k}`)
