/**
 * Values from the API's own OpenAPI document: valid ones (every documented constraint met) and
 * invalid ones (exactly one documented constraint broken). Written for the schemas this API
 * publishes (objects, arrays, strings with maxLength/pattern/format, enums, numbers with bounds,
 * nullable, oneOf with a discriminator, anyOf of `required` alternatives), not for JSON Schema at
 * large. Seeded, so a failing case can be replayed with the same seed.
 *
 * Strings are drawn from several alphabets (ASCII, Latin accents, CJK, emoji: a length limit is
 * in code points, an emoji is two UTF-16 units) and checked against the schema's pattern; values
 * sit on the documented boundaries (maxLength, minimum, maximum, maxItems) now and then, where a
 * server and its document most often disagree.
 */

export type Schema = {
  type?: string
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  minProperties?: number
  items?: Schema
  maxItems?: number
  enum?: unknown[]
  format?: string
  pattern?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  nullable?: boolean
  oneOf?: Schema[]
  anyOf?: Schema[]
  discriminator?: { propertyName: string; mapping?: Record<string, string> }
  $ref?: string
  [k: string]: unknown
}

export interface OpenApiDoc {
  components?: { schemas?: Record<string, Schema> }
  paths: Record<string, Record<string, {
    requestBody?: { content: Record<string, { schema: Schema }> }
    responses: Record<string, { description?: string; content?: Record<string, { schema: Schema }> }>
  }>>
}

/** mulberry32: small, fast, seedable */
export class Rng {
  private s: number
  constructor(seed: number) { this.s = seed >>> 0 }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int(min: number, max: number): number { return min + Math.floor(this.next() * (max - min + 1)) }
  chance(p: number): boolean { return this.next() < p }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]! }
}

const ALPHABETS: readonly (readonly string[])[] = [
  [...'abcdefghijklmnopqrstuvwxyz0123456789'],
  [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:/'],
  [...'abc xyz.-_éüßñøçÆ漢字テスト한국어', '😀', '🚀', '👍🏽', 'ä'],
]
const PHONES = ['+14155552671', '+442071838750', '+4915123456789', '+33612345678', '(202) 456-1111', '+61291234567', '+81312345678']

export function resolve(doc: OpenApiDoc, s: Schema): Schema {
  let cur = s
  for (let i = 0; cur.$ref !== undefined; i++) {
    if (i > 16) throw new Error(`reference loop at ${cur.$ref}`)
    const name = cur.$ref.replace('#/components/schemas/', '')
    const target = doc.components?.schemas?.[name]
    if (target === undefined) throw new Error(`unresolved ${cur.$ref}`)
    cur = target
  }
  return cur
}

const codePoints = (s: string): number => [...s].length

export class Generator {
  constructor(readonly doc: OpenApiDoc, readonly rng: Rng) {}

  private matches(s: Schema, v: string): boolean {
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) return false
    const n = codePoints(v)
    return n >= (s.minLength ?? 0) && n <= (s.maxLength ?? Infinity)
  }

  /** an ISO 8601 instant between 1901 and yesterday, in one of the shapes the patterns allow */
  private dateTime(s: Schema): string {
    const r = this.rng
    for (let i = 0; i < 20; i++) {
      const ms = Date.UTC(1901, 0, 2) + Math.floor(r.next() * (Date.now() - 2 * 86_400_000 - Date.UTC(1901, 0, 2)))
      const offsetMin = r.pick([0, 0, 60, -300, 330, 840, -720])
      const local = new Date(ms + offsetMin * 60_000).toISOString().slice(0, 19)
      const frac = r.pick(['', '.5', '.123', '.120000'])
      const off = offsetMin === 0 ? r.pick(['Z', '+00:00']) : `${offsetMin > 0 ? '+' : '-'}${String(Math.floor(Math.abs(offsetMin) / 60)).padStart(2, '0')}:${String(Math.abs(offsetMin) % 60).padStart(2, '0')}`
      const v = `${local}${frac}${off}`
      if (this.matches(s, v)) return v
    }
    return '2020-02-29T12:00:00Z'
  }

  private string(s: Schema, boundary: boolean): string {
    const r = this.rng
    if (s.format === 'date-time') return this.dateTime(s)
    if (s.format === 'email') return `${r.pick(['ana', 'li.wei', 'o+tag', 'x_9'])}${r.int(0, 1e6)}@${r.pick(['example', 'mail-host', 'b2c'])}.${r.pick(['com', 'de', 'co.uk', 'io'])}`
    if (s.format === 'phone') return r.pick(PHONES)
    const min = Math.max(s.minLength ?? 0, s.pattern !== undefined ? 1 : 0)
    const max = s.maxLength ?? 64
    for (const alphabet of [r.pick(ALPHABETS), ALPHABETS[1]!, ALPHABETS[0]!]) {
      for (let attempt = 0; attempt < 4; attempt++) {
        const len = boundary && r.chance(0.1) ? max : r.int(min, Math.min(max, Math.max(min, 24)))
        let v = ''
        for (let i = 0; i < len; i++) v += r.pick(alphabet)
        if (this.matches(s, v)) return v
      }
    }
    throw new Error(`cannot generate a string for ${JSON.stringify(s)}`)
  }

  private number(s: Schema, integer: boolean, boundary: boolean): number {
    const r = this.rng
    const lo = s.minimum ?? (integer ? Number.MIN_SAFE_INTEGER : -1e12)
    const hi = s.maximum ?? (integer ? Number.MAX_SAFE_INTEGER : 1e12)
    if (boundary && r.chance(0.15)) return r.pick([lo, hi, Math.max(lo, Math.min(hi, 0))])
    if (integer) {
      const span = Math.min(hi - lo, 1e6)
      return Math.max(lo, Math.min(hi, Math.floor(Math.max(lo, Math.min(0, hi)) + r.next() * span)))
    }
    const v = r.pick([r.next() * 1000, r.next(), r.next() * 1e9, 5e-324, 1.5e300])
    return v >= lo && v <= hi ? v : lo + (hi - lo) * r.next()
  }

  /** a value meeting every constraint of `schema`; `depth` bounds free-form nesting */
  valid(schema: Schema, depth = 0, boundary = true): unknown {
    const r = this.rng
    const s = resolve(this.doc, schema)
    if (s.oneOf !== undefined) return this.valid(r.pick(s.oneOf), depth, boundary)
    if (s.anyOf !== undefined && s.type === undefined && s.properties === undefined) return this.valid(r.pick(s.anyOf), depth, boundary)
    if (s.enum !== undefined) return r.pick(s.enum)
    switch (s.type) {
      case 'string': return this.string(s, boundary)
      case 'integer': return this.number(s, true, boundary)
      case 'number': return this.number(s, false, boundary)
      case 'boolean': return r.chance(0.5)
      case 'array': {
        const max = Math.min(s.maxItems ?? 5, 5)
        const n = boundary && s.maxItems !== undefined && s.maxItems <= 50 && r.chance(0.05) ? s.maxItems : r.int(0, max)
        return Array.from({ length: n }, () => this.item(s.items ?? {}, depth + 1, boundary))
      }
      case 'object':
      case undefined: {
        const out: Record<string, unknown> = {}
        const required = new Set(s.required ?? [])
        // anyOf of `required` alternatives (identity): one of them is met for sure
        if (s.anyOf !== undefined) for (const k of r.pick(s.anyOf).required ?? []) required.add(k)
        for (const [k, p] of Object.entries(s.properties ?? {})) {
          if (!required.has(k) && !r.chance(0.6)) continue
          out[k] = !required.has(k) && resolve(this.doc, p).nullable === true && r.chance(0.1) ? null : this.valid(p, depth + 1, boundary)
          if (typeof out[k] === 'string' && required.has(k) && (out[k] as string).trim() === '') out[k] = `${out[k] as string}x`
        }
        if (s.additionalProperties === true && depth < 3 && r.chance(0.3)) {
          for (let i = r.int(1, 3); i > 0; i--) out[`extra_${this.string({ type: 'string', pattern: '^[a-z0-9]+$', maxLength: 12 }, false)}`] = this.free(depth + 1)
        }
        if (Object.keys(out).length < (s.minProperties ?? 0)) return this.valid(s, depth, boundary)
        return out
      }
      default: return this.free(depth)
    }
  }

  private item(s: Schema, depth: number, boundary: boolean): unknown {
    return this.valid(s, depth, boundary)
  }

  /** any JSON value, for free-form places (additionalProperties: true) */
  free(depth: number): unknown {
    const r = this.rng
    const k = r.int(0, depth >= 3 ? 3 : 5)
    switch (k) {
      case 0: return r.chance(0.5)
      case 1: return r.pick([0, -1, 3.25, 1e21, 123456789])
      case 2: return null
      case 3: return this.string({ type: 'string', maxLength: 16 }, false)
      case 4: return Array.from({ length: r.int(0, 3) }, () => this.free(depth + 1))
      default: return Object.fromEntries(Array.from({ length: r.int(0, 3) }, (_, i) => [`k${i}`, this.free(depth + 1)]))
    }
  }
}

export interface Mutation {
  /** JSON pointer of what was broken */
  pointer: string
  /** the documented keyword broken */
  keyword: string
  value: unknown
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

/**
 * One documented constraint of `schema` broken in a copy of the valid `value`, chosen at random
 * among the places the schema constrains; undefined when the value offers none.
 */
export function mutate(gen: Generator, schema: Schema, value: unknown): Mutation | undefined {
  const r = gen.rng
  const candidates: { pointer: string; keyword: string; make: () => unknown }[] = []
  /** `set(x)` returns a copy of the root value with the value at `pointer` replaced by x */
  const walk = (sch: Schema, v: unknown, pointer: string, set: (x: unknown) => unknown): void => {
    const add = (keyword: string, make: () => unknown): void => { candidates.push({ pointer, keyword, make }) }
    let s = resolve(gen.doc, sch)
    if (s.oneOf !== undefined && s.discriminator !== undefined && v !== null && typeof v === 'object') {
      const tag = (v as Record<string, unknown>)[s.discriminator.propertyName]
      const target = s.discriminator.mapping?.[String(tag)]
      if (target === undefined) return
      s = resolve(gen.doc, { $ref: target })
    }
    if (s.enum !== undefined) add('enum', () => set('not_a_documented_value'))
    if (s.nullable !== true && v !== null && pointer !== '') add('nullable', () => set(null))
    switch (s.type) {
      case 'string':
        add('type', () => set(12345))
        if (s.maxLength !== undefined && s.maxLength < 5000) add('maxLength', () => set('😀'.repeat(s.maxLength! + 1)))
        if ((s.minLength ?? 0) > 0) add('minLength', () => set(''))
        if (s.pattern !== undefined) {
          const re = new RegExp(s.pattern, 'u')
          const bad = ['.', '\u0001x', ' ', 'UPPER case', '1899-12-31T00:00:00Z', '2300-01-01T00:00:00Z', '2026-05-20T12:45:00.1234Z',
            '2026-05-20 12:45:00Z', '2026-05-20T12:45:00', '2026-05-20T24:00:00Z', 'a\u007fb']
            .filter((x) => !re.test(x) && codePoints(x) <= (s.maxLength ?? Infinity) && codePoints(x) >= (s.minLength ?? 0))
          if (bad.length > 0) add('pattern', () => set(r.pick(bad)))
        }
        break
      case 'integer':
      case 'number':
        add('type', () => set('12'))
        if (s.type === 'integer') add('type', () => set(1.5))
        if (s.minimum !== undefined && s.minimum > -1e15) add('minimum', () => set(s.minimum! - 1))
        if (s.maximum !== undefined && s.maximum < 1e15) add('maximum', () => set(s.maximum! + 1))
        break
      case 'boolean':
        add('type', () => set('true'))
        break
      case 'array':
        add('type', () => set({}))
        if (s.maxItems !== undefined && s.maxItems <= 600 && Array.isArray(v) && v.length > 0) {
          const arr = v as unknown[]
          add('maxItems', () => set(Array.from({ length: s.maxItems! + 1 }, (_, i) => arr[i % arr.length])))
        }
        if (Array.isArray(v) && s.items !== undefined) {
          v.forEach((x, i) => walk(s.items!, x, `${pointer}/${i}`, (y) => { const c = clone(v); c[i] = y; return set(c) }))
        }
        break
      case 'object':
      case undefined: {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) break
        const obj = v as Record<string, unknown>
        add('type', () => set([]))
        if (s.additionalProperties === false) add('additionalProperties', () => set({ ...obj, zz_not_documented: 1 }))
        if ((s.minProperties ?? 0) > 0) add('minProperties', () => set({}))
        for (const k of s.required ?? []) {
          if (k in obj) add('required', () => { const c = { ...obj }; delete c[k]; return set(c) })
        }
        // anyOf of `required` alternatives (identity): break all of them by blanking their fields
        if (s.anyOf !== undefined && s.anyOf.every((a) => a.required !== undefined)) {
          add('anyOf', () => {
            const c = { ...obj }
            for (const a of s.anyOf!) for (const k of a.required!) if (typeof c[k] === 'string') c[k] = ' '
            return set(c)
          })
        }
        for (const [k, p] of Object.entries(s.properties ?? {})) {
          if (!(k in obj) || obj[k] === null) continue
          walk(p, obj[k], `${pointer}/${k}`, (y) => set({ ...obj, [k]: y }))
        }
      }
    }
  }
  walk(schema, value, '', (x) => x)
  if (candidates.length === 0) return undefined
  const c = r.pick(candidates)
  return { pointer: c.pointer, keyword: c.keyword, value: c.make() }
}
