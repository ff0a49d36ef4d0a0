/**
 * Confluent wire format, the one definition: magic byte 0, the registry schema id as 4 bytes
 * big-endian, then the Avro body. The service's codec and the direct-producer kit both frame here.
 */
const HEADER_BYTES = 5

export function frameValue(schemaId: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length)
  out[0] = 0
  out.writeUInt32BE(schemaId, 1)
  body.copy(out, HEADER_BYTES)
  return out
}

/** the schema id and Avro body of a framed value; undefined when the bytes are not framed */
export function readFrame(buf: Buffer | null): { schemaId: number; body: Buffer } | undefined {
  if (buf === null || buf.length <= HEADER_BYTES || buf[0] !== 0) return undefined
  return { schemaId: buf.readUInt32BE(1), body: buf.subarray(HEADER_BYTES) }
}
