/**
 * The soak's servers, in their own process (so the client's heap and CPU are
 * measured alone): `count` HTTP/2 TLS backends on 127.0.0.<first>… sharing
 * one port (test/helpers/h2-server.ts). Talks to bench/soak.ts over IPC:
 *   → { type: 'ready', hosts, port }
 *   ← { type: 'report' }  → { type: 'report', processed: [id, times][], requests, connections }
 *   ← { type: 'close' }   → exits once the servers are closed
 * Exits by itself if the parent goes away.
 */
import { startBackends } from '../test/helpers/h2-server.js'

const count = Number(process.argv[2] ?? 3)
const first = Number(process.argv[3] ?? 111)
const send = (message: unknown) => process.send?.(message)

const backends = await startBackends(count, { firstHost: first })
process.on('disconnect', () => process.exit(0))
process.on('message', (message: { type: string }) => {
  if (message.type === 'report') {
    const processed = new Map<string, number>()
    for (const backend of backends) for (const [id, times] of backend.processed) processed.set(id, (processed.get(id) ?? 0) + times)
    send({
      type: 'report',
      processed: [...processed],
      requests: backends.map((backend) => backend.requests),
      connections: backends.map((backend) => backend.connections),
    })
  } else if (message.type === 'close') {
    void Promise.all(backends.map((backend) => backend.close())).then(() => process.exit(0))
  }
})
send({ type: 'ready', hosts: backends.map((backend) => backend.host), port: backends[0]!.port })
