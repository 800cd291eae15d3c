/**
 * nginx (Debian `nginx-light`) as an HTTP/2-over-TLS front for chaos tests,
 * with the test PKI's api.test certificate, proxying to an HTTP/1.1 upstream.
 * `keepaliveRequests` makes nginx end every connection with GOAWAY after
 * that many requests (nginx ≥ 1.19.7 applies `keepalive_requests` to HTTP/2).
 *
 * Everything lives in a temporary prefix directory (config, pid, logs, temp
 * paths); nginx runs in the foreground (`daemon off`) as our child process.
 */
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { accepts, freePort, start, startOnFreePort, stop, until, type Child, type Failure } from '../../helpers/processes.js'

export const NGINX_BINARY = '/usr/sbin/nginx'

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url))

export interface NginxOptions {
  /** Loopback address to listen on. */
  host: string
  upstream: { host: string; port: number }
  /** Requests per connection before nginx sends GOAWAY. Default 50. */
  keepaliveRequests?: number
}

export interface Nginx {
  readonly host: string
  readonly port: number
  /** The tail of nginx's error log. */
  errorLog(): Promise<string>
  close(): Promise<void>
}

function config(dir: string, options: NginxOptions & { port: number }): string {
  // Workers run as root only when we are root (nginx ignores `user` otherwise); the files are ours anyway.
  const user = process.getuid?.() === 0 ? 'user root root;' : ''
  return `${user}
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app {
    server ${options.upstream.host}:${options.upstream.port};
    keepalive 32;
  }
  server {
    listen ${options.host}:${options.port} ssl http2;
    server_name api.test;
    ssl_certificate ${fixture('api.test.crt')};
    ssl_certificate_key ${fixture('api.test.key')};
    keepalive_requests ${options.keepaliveRequests ?? 50};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
}

export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-nginx-'))
  const launch = async (port: number): Promise<Child | Failure> => {
    const configPath = join(dir, 'nginx.conf')
    await writeFile(configPath, config(dir, { ...options, port }))
    const candidate = start(NGINX_BINARY, ['-p', dir, '-e', join(dir, 'error.log'), '-c', configPath])
    try {
      await until(async () => !candidate.running || (await accepts(options.host, port)), `nginx on ${options.host}:${port}`, 5000)
    } catch (error) {
      await stop(candidate, 'SIGKILL')
      throw error
    }
    if (candidate.running) return candidate
    return { reason: candidate.output(), portTaken: /Address already in use/i.test(candidate.output()) }
  }
  const starting = startOnFreePort('nginx', 3, () => freePort(options.host), launch)
  const { child, port } = await starting.catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true })
    throw error
  })
  let closed: Promise<void> | undefined
  return {
    host: options.host,
    port,
    errorLog: () => readFile(join(dir, 'error.log'), 'utf8').catch(() => ''),
    close() {
      // SIGQUIT: graceful shutdown (SIGTERM is fast shutdown).
      closed ??= stop(child, 'SIGQUIT', 3000).then(() => rm(dir, { recursive: true, force: true }))
      return closed
    },
  }
}
