// An ES module consumer of the installed package (run by check.sh).
import * as main from 'drainpipe-http2'
import * as grpc from 'drainpipe-http2/grpc'
import * as testing from 'drainpipe-http2/testing'
import * as msw from 'msw'
import { exercise } from './scenario.mjs'

await exercise('esm', { main, testing, grpc, msw })
console.log(`esm.mjs: ok on Node ${process.version}`)
