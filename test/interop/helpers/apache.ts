/**
 * Apache httpd (Debian `apache2`) with mod_http2 and the event MPM,
 * terminating TLS and HTTP/2 in front of an HTTP/1.1 upstream (mod_proxy),
 * from a standalone configuration in a temporary directory. The parent runs
 * in the foreground as our child process, so a graceful restart is what
 * `apachectl -k graceful` does: SIGUSR1 to the parent.
 *
 * On a graceful restart mod_http2 sends its connections a shutdown notice,
 * GOAWAY(2^31-1), then GOAWAY with the last stream it accepted; streams
 * above it it never processed.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { accepts, freePort, ready, start, startOnFreePort, stop, until, type Child, type Failure } from '../../helpers/processes.js'

export const APACHE_BINARY = '/usr/sbin/apache2'
const MODULES = '/usr/lib/apache2/modules'

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url))

export interface Apache {
  readonly host: string
  readonly port: number
  /** Graceful restarts done so far. */
  readonly restarts: number
  /** SIGUSR1 to the parent; resolves once the new generation of children serves. */
  graceful(): Promise<void>
  errorLog(): Promise<string>
  close(): Promise<void>
}

function config(dir: string, options: { host: string; port: number; upstream: { host: string; port: number } }): string {
  const modules = ['mpm_event', 'authz_core', 'ssl', 'http2', 'proxy', 'proxy_http']
  // Apache switches its children to User/Group only when started as root (and refuses to keep root).
  const user = process.getuid?.() === 0 ? 'User www-data\nGroup www-data' : ''
  return `ServerRoot ${dir}
${modules.map((name) => `LoadModule ${name}_module ${MODULES}/mod_${name}.so`).join('\n')}
${user}
PidFile ${dir}/httpd.pid
DefaultRuntimeDir ${dir}
ErrorLog ${dir}/error.log
# notice: the parent's "resuming normal operations" after each restart; ssl:error hides warnings about this test setup.
LogLevel notice ssl:error
# Small: every graceful restart forks a new generation while the old one finishes.
StartServers 1
ServerLimit 8
ThreadsPerChild 16
MaxRequestWorkers 64
MinSpareThreads 16
MaxSpareThreads 64
H2MinWorkers 4
H2MaxWorkers 16
Listen ${options.host}:${options.port}
ServerName api.test
Protocols h2
SSLEngine on
SSLCertificateFile ${fixture('api.test.crt')}
SSLCertificateKeyFile ${fixture('api.test.key')}
ProxyPass / http://${options.upstream.host}:${options.upstream.port}/
`
}

/**
 * Stops the parent (SIGTERM: it stops its children), then kills what is left
 * of its process group: mod_http2 children of an old generation sometimes
 * hang on exit, with the parent gone.
 */
async function stopAll(parent: Child): Promise<void> {
  await stop(parent, 'SIGTERM', 5000)
  try {
    process.kill(-parent.process.pid!, 'SIGKILL')
  } catch {
    // No process left in the group.
  }
}

/** How many times the parent has (re)started its children: once per start and graceful restart. */
const generations = (log: string) => log.split('AH00489').length - 1

export async function startApache(options: { host: string; upstream: { host: string; port: number } }): Promise<Apache> {
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-apache-'))
  // The children (www-data) must reach the directory the parent set up.
  await chmod(dir, 0o755)
  const configPath = join(dir, 'httpd.conf')
  const errorLog = () => readFile(join(dir, 'error.log'), 'utf8').catch(() => '')
  const launch = async (port: number): Promise<Child | Failure> => {
    await writeFile(configPath, config(dir, { ...options, port }))
    // A process group of its own: children of a restarted generation can outlive the parent (killed below).
    const candidate = start(APACHE_BINARY, ['-f', configPath, '-DFOREGROUND'], { detached: true })
    if (await ready(candidate, () => accepts(options.host, port), 10_000, 20)) return candidate
    await stopAll(candidate)
    const reason = candidate.output() + (await errorLog())
    return { reason, portTaken: /Address already in use/i.test(reason) }
  }
  const started = await startOnFreePort('apache2', 3, () => freePort(options.host), launch).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true })
    throw error
  })
  const { child, port } = started
  let restarts = 0
  let closed: Promise<void> | undefined
  return {
    host: options.host,
    port,
    get restarts() {
      return restarts
    },
    async graceful() {
      const before = generations(await errorLog())
      child.process.kill('SIGUSR1')
      await until(async () => generations(await errorLog()) > before, 'Apache to resume after a graceful restart', 10_000, 20)
      restarts++
    },
    errorLog,
    close() {
      closed ??= stopAll(child).then(() => rm(dir, { recursive: true, force: true }))
      return closed
    },
  }
}
