/**
 * Message compression (gRPC's compression.md): gzip with node:zlib, in the
 * shape of Connect's `Compression`, so Connect's own compressions (and any
 * other `Compression`) work as well.
 */
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { Code, ConnectError } from '@connectrpc/connect'
import type { Compression } from '@connectrpc/connect/protocol'

const gzip = promisify(zlib.gzip)
const gunzip = promisify(zlib.gunzip)

/** gzip with node:zlib, for `acceptCompression` and `sendCompression`. */
export const compressionGzip: Compression = {
  name: 'gzip',
  async compress(bytes) {
    return toArrayBufferView(await gzip(bytes))
  },
  async decompress(bytes, readMaxBytes) {
    if (bytes.length === 0) return new Uint8Array(0)
    try {
      // maxOutputLength stops a small message that inflates past the limit (a "zip bomb") while it inflates.
      return toArrayBufferView(await gunzip(bytes, { maxOutputLength: readMaxBytes }))
    } catch (error) {
      const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
      throw new ConnectError(
        tooLarge ? `received message larger than max after decompression (readMaxBytes ${readMaxBytes})` : 'gzip decompression failed',
        tooLarge ? Code.ResourceExhausted : Code.Internal,
        undefined,
        undefined,
        error,
      )
    }
  },
}

function toArrayBufferView(bytes: Buffer): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes)
}
