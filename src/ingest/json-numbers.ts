/**
 * Numbers JSON.parse changes silently: `1e400` becomes Infinity (then null in JSON), `1e-400`
 * becomes 0, `9007199254740993` becomes 9007199254740992. The parsed value no longer shows it,
 * and Node 20's JSON.parse gives a reviver no access to the source text, so the raw body is
 * scanned for such number tokens, with the JSON pointer of each.
 *
 * The scan only runs when a cheap test finds a candidate: a number needs at least 16 digits in
 * a row or a 3-digit exponent before a double can lose it (a shorter mantissa with a 2-digit
 * exponent is always finite, non-zero and exact for integers). Strings with long digit runs
 * (phone numbers, ids) only cost a scan that finds nothing.
 */
import type { ErrorDetail } from '../errors.js'

const CANDIDATE = /\d{16}|[eE][+-]?\d{3}/

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

/** why a number token cannot be held exactly by a double, or undefined when it can */
export function inexactNumber(token: string): string | undefined {
  const v = Number(token)
  if (!Number.isFinite(v)) return 'is too large for a 64-bit float'
  const mantissa = token.replace(/[eE].*$/, '')
  if (v === 0 && /[1-9]/.test(mantissa)) return 'is too small for a 64-bit float (it would become 0)'
  if (!/[.eE]/.test(token) && !Number.isSafeInteger(v) && BigInt(token) !== BigInt(v)) {
    return 'is an integer beyond 2^53 that a 64-bit float cannot hold exactly; send it as a string'
  }
  return undefined
}

interface Frame { array: boolean; key: string; index: number }

export interface InexactNumber { pointer: string; token: string; reason: string }

/** the 422 detail for one inexact number, with its pointer relative to what the caller judges */
export function inexactNumberDetail(n: Pick<InexactNumber, 'token' | 'reason'>, pointer: string): ErrorDetail {
  const shown = n.token.length > 40 ? `${n.token.slice(0, 40)}…` : n.token
  return { pointer, code: 'inexact_number', message: `${pointer === '' ? 'body' : pointer.slice(1).replace(/\//g, '.')}: ${shown} ${n.reason}` }
}

/**
 * The number tokens of `text` (valid JSON: call after JSON.parse succeeded) that change when
 * parsed, with their JSON pointers.
 */
export function findInexactNumbers(text: string): InexactNumber[] {
  if (!CANDIDATE.test(text)) return []
  const out: InexactNumber[] = []
  const stack: Frame[] = []
  // inside an object: true while the next string is a key
  let expectKey = false
  const pointer = () => stack.map((f) => `/${f.array ? String(f.index) : escapePointer(f.key)}`).join('')
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      let j = i + 1
      while (j < n) {
        const d = text.charCodeAt(j)
        if (d === 0x5c /* \ */) j += 2
        else if (d === 0x22) break
        else j++
      }
      if (expectKey) {
        stack[stack.length - 1]!.key = JSON.parse(text.slice(i, j + 1)) as string
        expectKey = false
      }
      i = j + 1
    } else if (c === 0x7b /* { */) {
      stack.push({ array: false, key: '', index: 0 })
      expectKey = true
      i++
    } else if (c === 0x5b /* [ */) {
      stack.push({ array: true, key: '', index: 0 })
      i++
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop()
      i++
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1]
      if (top !== undefined) {
        if (top.array) top.index++
        else expectKey = true
      }
      i++
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1
      while (j < n && /[0-9eE.+-]/.test(text[j]!)) j++
      const token = text.slice(i, j)
      const reason = inexactNumber(token)
      if (reason !== undefined) out.push({ pointer: pointer(), token, reason })
      i = j
    } else {
      i++
    }
  }
  return out
}
