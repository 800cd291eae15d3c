import { readFileSync } from 'node:fs'

const read = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url))

/** The test CA and server certificates (test/fixtures, made by make-certs.sh). */
export const pki = {
  ca: read('ca.crt'),
  /** Valid for api.test, *.test, localhost and 127.0.0.1. */
  apiTest: { cert: read('api.test.crt'), key: read('api.test.key') },
  /** Valid for other.test only. */
  otherTest: { cert: read('other.test.crt'), key: read('other.test.key') },
}
