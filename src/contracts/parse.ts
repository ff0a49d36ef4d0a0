/**
 * Turns one JSON document (a contract file, or one entry of the released snapshot) into a
 * normalized, frozen Contract, or into every problem found in it.
 */
import { deepFreeze } from '../lib/freeze.js'
import { Ajv, type ErrorObject } from 'ajv'
import { contractFileSchema } from './schema.js'
import type { Contract, Constraints, ContractFileProblem, PropertySpec } from './types.js'

const ajv = new Ajv({ allErrors: true, discriminator: true, verbose: true })
const validateDocument = ajv.compile(contractFileSchema)

/** RFC 6901: `~` first, so an escaped `/` is not escaped twice */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1')
}

function describeAjvError(e: ErrorObject): { pointer: string; message: string } {
  const at = e.instancePath
  switch (e.keyword) {
    case 'required': {
      const p = e.params as { missingProperty: string }
      return { pointer: `${at}/${escapePointerToken(p.missingProperty)}`, message: 'is required' }
    }
    case 'additionalProperties': {
      const p = e.params as { additionalProperty: string }
      const branchType = (e.parentSchema as { properties?: { type?: { const?: string } } } | undefined)
        ?.properties?.type?.const
      const message = branchType === undefined
        ? 'is not a known field'
        : `is not a field of type "${branchType}"`
      return { pointer: `${at}/${escapePointerToken(p.additionalProperty)}`, message }
    }
    case 'discriminator': {
      const p = e.params as { error: string; tag: string; tagValue: unknown }
      const branches = (e.parentSchema as { oneOf?: { properties: { type: { const: string } } }[] } | undefined)?.oneOf ?? []
      const message = p.error === 'mapping'
        ? `must be one of ${branches.map((b) => b.properties.type.const).join(', ')} (got ${JSON.stringify(p.tagValue)})`
        : 'must be a string'
      return { pointer: `${at}/${p.tag}`, message }
    }
    case 'enum': {
      const p = e.params as { allowedValues: unknown[] }
      return { pointer: at, message: `must be one of ${p.allowedValues.map((v) => JSON.stringify(v)).join(', ')}` }
    }
    case 'propertyNames': {
      const p = e.params as { propertyName: string }
      return {
        pointer: `${at}/${escapePointerToken(p.propertyName)}`,
        message: 'is not a valid property name: letters, digits and _ only, starting with a letter, at most 64 characters',
      }
    }
    default:
      return { pointer: at, message: e.message ?? 'is invalid' }
  }
}

function checkRange(spec: Constraints, pointer: string, file: string, problems: ContractFileProblem[]): void {
  if (spec.minimum !== undefined && spec.maximum !== undefined && spec.minimum > spec.maximum) {
    problems.push({ file, pointer: `${pointer}/minimum`, message: `minimum ${spec.minimum} is greater than maximum ${spec.maximum}` })
  }
}

/** only the limits that are set, so a normalized contract has no `undefined` fields */
function constraintsOf(raw: Constraints): Constraints {
  const out: Constraints = {}
  if (raw.values !== undefined) out.values = [...raw.values]
  if (raw.maxLength !== undefined) out.maxLength = raw.maxLength
  if (raw.minimum !== undefined) out.minimum = raw.minimum
  if (raw.maximum !== undefined) out.maximum = raw.maximum
  return out
}

type RawProperty = Partial<PropertySpec> & Pick<PropertySpec, 'type'>

function normalizeProperty(raw: RawProperty): PropertySpec {
  const out: PropertySpec = {
    type: raw.type,
    required: raw.required ?? false,
    segmentable: raw.segmentable ?? false,
    pii: raw.pii ?? false,
    ...constraintsOf(raw),
  }
  if (raw.description !== undefined) out.description = raw.description
  if (raw.items !== undefined) out.items = { type: raw.items.type, ...constraintsOf(raw.items) }
  if (raw.maxItems !== undefined) out.maxItems = raw.maxItems
  return out
}


export interface ParseResult {
  contract: Contract | undefined
  problems: ContractFileProblem[]
}

/**
 * @param file where the document came from, for messages
 * @param base JSON pointer of the document inside `file` ('' for a contract file)
 */
export function parseContract(raw: unknown, file: string, base = ''): ParseResult {
  if (!validateDocument(raw)) {
    const problems = (validateDocument.errors ?? [])
      // a bad property name also fails the inner pattern; the propertyNames error already says it
      .filter((e) => !e.schemaPath.includes('/propertyNames/'))
      .map((e) => {
        const d = describeAjvError(e)
        return { file, pointer: `${base}${d.pointer}`, message: d.message }
      })
    return { contract: undefined, problems }
  }
  const doc = raw as unknown as Omit<Contract, 'properties'> & { properties: Record<string, RawProperty> }
  const problems: ContractFileProblem[] = []
  const properties: Record<string, PropertySpec> = {}
  for (const [name, spec] of Object.entries(doc.properties)) {
    const at = `${base}/properties/${escapePointerToken(name)}`
    checkRange(spec, at, file, problems)
    if (spec.items !== undefined) checkRange(spec.items, `${at}/items`, file, problems)
    properties[name] = normalizeProperty(spec)
  }
  if (problems.length > 0) return { contract: undefined, problems }
  const contract: Contract = {
    name: doc.name,
    version: doc.version,
    owner: doc.owner,
    description: doc.description,
    unknownProperties: doc.unknownProperties,
    properties,
  }
  // sorted so the snapshot and the compatibility check do not depend on how a file lists them
  if (doc.tenants !== undefined) contract.tenants = [...doc.tenants].sort()
  return { contract: deepFreeze(contract), problems }
}
