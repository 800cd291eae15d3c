import { randomBytes } from 'node:crypto'

/** A FormData encoded as multipart/form-data: its length is known before a byte is read, and it can be read again. */
export interface Multipart {
  readonly contentType: string
  readonly length: number
  /** The encoded body from its first byte; each call starts anew. */
  chunks(): AsyncIterable<Uint8Array>
}

const CRLF = '\r\n'

// Names and file names go inside quotes: line breaks and quotes are percent-encoded, as browsers and undici do.
const escapeQuoted = (text: string): string => text.replace(/\n/g, '%0A').replace(/\r/g, '%0D').replace(/"/g, '%22')
// String values (and names) get CRLF line breaks, as the HTML form encoding prescribes.
const normaliseLineBreaks = (text: string): string => text.replace(/\r(?!\n)|(?<!\r)\n/g, CRLF)

/**
 * Encodes a FormData the way `fetch` does (WHATWG multipart/form-data
 * encoding), but with the length computed up front from the string parts and
 * the sizes of the files, so the request can carry `content-length` and be
 * sent again after REFUSED_STREAM without holding the files in memory.
 */
export function encodeMultipart(form: FormData): Multipart {
  const boundary = `----drainpipe-${randomBytes(12).toString('hex')}`
  const parts: (Uint8Array | Blob)[] = []
  for (const [name, value] of form) {
    const disposition = `--${boundary}${CRLF}Content-Disposition: form-data; name="${escapeQuoted(normaliseLineBreaks(name))}"`
    if (typeof value === 'string') {
      parts.push(Buffer.from(`${disposition}${CRLF}${CRLF}${normaliseLineBreaks(value)}${CRLF}`))
    } else {
      const type = value.type || 'application/octet-stream'
      parts.push(Buffer.from(`${disposition}; filename="${escapeQuoted(value.name)}"${CRLF}Content-Type: ${type}${CRLF}${CRLF}`))
      parts.push(value, Buffer.from(CRLF))
    }
  }
  parts.push(Buffer.from(`--${boundary}--${CRLF}`))
  const length = parts.reduce((total, part) => total + (part instanceof Blob ? part.size : part.byteLength), 0)
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    length,
    async *chunks() {
      for (const part of parts) {
        if (part instanceof Blob) yield* part.stream() as unknown as AsyncIterable<Uint8Array>
        else yield part
      }
    },
  }
}
