/**
 * Per-event validation of `properties` against a contract. This runs for every event on the API
 * and again in the consumer, so each contract is compiled once into plain closures (one per
 * declared property) and a call does no schema interpretation. It reports every problem, not
 * just the first, each with a stable code.
 *
 * Hand-written rather than ajv: ajv's error objects would need translating into these codes and
 * messages on every failing event, and the checks here are few and simple.
 */
import type { ErrorDetail } from '../errors.js'
import { escapePointerToken } from './parse.js'
import type { Constraints, Contract, ItemSpec, PropertySpec, ScalarType } from './types.js'

export const VALIDATION_CODES = [
  'required', 'type', 'enum', 'max_length', 'max_items', 'minimum', 'maximum',
  'unknown_property', 'invalid_timestamp',
] as const
export type ValidationCode = (typeof VALIDATION_CODES)[number]

export interface ValidateOptions {
  /** the service-wide cap on every declared string (config.validation.maxStringLength), in code points */
  maxStringLength: number
  /** JSON pointer of `properties` in the request body; '/properties' unless the caller nests it (batch items) */
  pointer?: string
}

/** Collects problems; `pointer` is the suffix after the `properties` pointer. */
type Sink = (pointer: string, code: ValidationCode, message: string) => void
type ValueCheck = (value: unknown, pointer: string, label: string, opts: ValidateOptions, report: Sink) => void

interface CompiledProperty {
  name: string
  /** '/' + escaped name, precomputed so the hot path only concatenates on failure */
  suffix: string
  label: string
  required: boolean
  check: ValueCheck
}

interface Compiled {
  properties: CompiledProperty[]
  /** only when unknown properties are rejected */
  declared: Set<string> | undefined
}

function kindOf(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

/** Length in code points, so an emoji counts as one character; .length is only a fast upper bound. */
function codePointsOver(s: string, max: number): boolean {
  if (s.length <= max) return false
  let n = 0
  for (const _ of s) if (++n > max) return true
  return false
}

// RFC 3339 profile of ISO 8601: full date, time with seconds, and an explicit offset. A local
// time without offset is ambiguous (whose noon?), so it is refused rather than guessed.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/
// DateTime64 stores 1900-01-01 .. 2299-12-31; values outside would be silently clamped.
const MIN_YEAR = 1900
const MAX_YEAR = 2299

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

/** @returns why the string is not an acceptable timestamp, or undefined when it is */
export function timestampProblem(s: string): string | undefined {
  const m = TIMESTAMP.exec(s)
  if (m === null) return 'must be an ISO 8601 timestamp with seconds and a UTC offset, e.g. 2026-05-20T12:45:00Z'
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return 'is not a valid calendar date'
  if (hour > 23 || minute > 59 || second > 59) return 'is not a valid time of day'
  if (m[7] !== undefined && (Number(m[8]) > 23 || Number(m[9]) > 59)) return 'has an invalid UTC offset'
  if (year < MIN_YEAR || year > MAX_YEAR) return `must be between ${MIN_YEAR} and ${MAX_YEAR}`
  return undefined
}

function compileScalar(type: ScalarType, spec: Constraints): ValueCheck {
  switch (type) {
    case 'string': {
      const own = spec.maxLength
      return (v, at, label, opts, report) => {
        if (typeof v !== 'string') { report(at, 'type', `${label} must be a string (got ${kindOf(v)})`); return }
        const max = own === undefined || own > opts.maxStringLength ? opts.maxStringLength : own
        if (codePointsOver(v, max)) report(at, 'max_length', `${label} must be at most ${max} characters`)
      }
    }
    case 'integer':
    case 'number': {
      const integer = type === 'integer'
      const { minimum, maximum } = spec
      return (v, at, label, _opts, report) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          report(at, 'type', `${label} must be ${integer ? 'an integer' : 'a number'} (got ${kindOf(v)})`)
          return
        }
        if (integer && !Number.isInteger(v)) { report(at, 'type', `${label} must be an integer (got ${v})`); return }
        if (integer && !Number.isSafeInteger(v)) {
          // beyond 2^53 a JSON number has already lost digits: refuse rather than store a different value
          report(at, 'type', `${label} must be an integer between ${Number.MIN_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}`)
          return
        }
        if (minimum !== undefined && v < minimum) report(at, 'minimum', `${label} must be >= ${minimum}`)
        if (maximum !== undefined && v > maximum) report(at, 'maximum', `${label} must be <= ${maximum}`)
      }
    }
    case 'boolean':
      return (v, at, label, _opts, report) => {
        if (typeof v !== 'boolean') report(at, 'type', `${label} must be a boolean (got ${kindOf(v)})`)
      }
    case 'timestamp':
      return (v, at, label, _opts, report) => {
        if (typeof v !== 'string') { report(at, 'type', `${label} must be a timestamp string (got ${kindOf(v)})`); return }
        const why = timestampProblem(v)
        if (why !== undefined) report(at, 'invalid_timestamp', `${label} ${why}`)
      }
    case 'enum': {
      const values = spec.values ?? []
      const allowed = new Set(values)
      const shown = values.length <= 20 ? values.join(', ') : `${values.slice(0, 20).join(', ')}, ...`
      return (v, at, label, _opts, report) => {
        if (typeof v !== 'string') { report(at, 'type', `${label} must be a string (got ${kindOf(v)})`); return }
        if (!allowed.has(v)) report(at, 'enum', `${label} must be one of: ${shown} (got ${JSON.stringify(v.slice(0, 64))})`)
      }
    }
  }
}

function compileProperty(spec: PropertySpec): ValueCheck {
  if (spec.type !== 'array') return compileScalar(spec.type, spec)
  const items = spec.items as ItemSpec
  const item = compileScalar(items.type, items)
  const maxItems = spec.maxItems
  return (v, at, label, opts, report) => {
    if (!Array.isArray(v)) { report(at, 'type', `${label} must be an array (got ${kindOf(v)})`); return }
    if (maxItems !== undefined && v.length > maxItems) {
      // element checks on an oversized array would only multiply the noise
      report(at, 'max_items', `${label} must have at most ${maxItems} items (got ${v.length})`)
      return
    }
    for (let i = 0; i < v.length; i++) item(v[i], `${at}/${i}`, `${label}[${i}]`, opts, report)
  }
}

const compiled = new WeakMap<Contract, Compiled>()

/**
 * Builds (once per contract object) the checks validateProperties runs. The registry calls it
 * at load time so no event pays for compilation.
 */
export function compileContract(contract: Contract): void {
  if (compiled.has(contract)) return
  const properties: CompiledProperty[] = Object.entries(contract.properties).map(([name, spec]) => ({
    name,
    suffix: `/${escapePointerToken(name)}`,
    label: `"${name}"`,
    required: spec.required,
    check: compileProperty(spec),
  }))
  compiled.set(contract, {
    properties,
    declared: contract.unknownProperties === 'reject' ? new Set(Object.keys(contract.properties)) : undefined,
  })
}

/**
 * Every problem with an event's `properties` under `contract`; [] when valid.
 * Null counts as absent: an optional property may be null (a Nullable column), a required one may not.
 * With `unknownProperties: 'allow'`, undeclared properties are not looked at.
 */
export function validateProperties(contract: Contract, properties: unknown, opts: ValidateOptions): ErrorDetail[] {
  let c = compiled.get(contract)
  if (c === undefined) {
    compileContract(contract)
    c = compiled.get(contract) as Compiled
  }
  const base = opts.pointer ?? '/properties'
  const errors: ErrorDetail[] = []
  const report: Sink = (suffix, code, message) => { errors.push({ pointer: base + suffix, code, message }) }

  let obj: Record<string, unknown>
  if (properties === undefined) obj = {}
  else if (properties === null || typeof properties !== 'object' || Array.isArray(properties)) {
    report('', 'type', `properties must be an object (got ${kindOf(properties)})`)
    return errors
  } else obj = properties as Record<string, unknown>

  for (const p of c.properties) {
    // own properties only: a declared name like "constructor" must not find Object.prototype's
    const v = Object.hasOwn(obj, p.name) ? obj[p.name] : undefined
    if (v === undefined || v === null) {
      if (p.required) report(p.suffix, 'required', `${p.label} is required${v === null ? ' and must not be null' : ''}`)
      continue
    }
    p.check(v, p.suffix, p.label, opts, report)
  }
  if (c.declared !== undefined) {
    for (const key of Object.keys(obj)) {
      if (!c.declared.has(key)) {
        report(`/${escapePointerToken(key)}`, 'unknown_property',
          `"${key.slice(0, 64)}" is not a property of ${contract.name} v${contract.version}`)
      }
    }
  }
  return errors
}
