/** What the schema registry client speaks, for unit tests with a fake registry: its errors and the wire format. */

/** Shaped like the registry client's ResponseError (mappersmith's error middleware): a name and a status. */
export class ResponseError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(`Confluent_Schema_Registry - ${message}`);
    this.name = "ResponseError";
    this.status = status;
  }
}

/** The Confluent wire format: magic byte 0, the schema id as a 4-byte big-endian int, then the Avro body. */
export function wire(schemaId: number, body: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}
