/**
 * The demo's live terminal view, refreshed every second: for each client, the
 * share of the last second's requests per backend, max/min, requests per
 * second and failures. On a terminal the screen is redrawn in place;
 * otherwise (a pipe, a CI log) one compact line per second is printed, and
 * the live view's header line each time the phase changes.
 */
import type { Window } from '../../test/helpers/load.js'

export interface ClientRow {
  name: string
  window: Window
  failed: number
  /** The 99th percentile of the last second's requests (ms). */
  p99: number | null
}

export interface Frame {
  elapsed: number
  duration: number
  phase: string
  backends: string[]
  /** Backends currently in DNS. */
  inDns: string[]
  /** What is wrong with a backend now ('25× slower', 'failing'), by address. */
  marks: Record<string, string>
  clients: ClientRow[]
  bound: number
}

const BAR = 30
const ESC = '\u001b['

export function renderFrame(frame: Frame, colour: boolean): string {
  const style = (code: string) => (text: string) => (colour ? `${ESC}${code}m${text}${ESC}0m` : text)
  const bold = style('1')
  const dim = style('2')
  const good = style('32')
  const bad = style('31')
  const column = BAR + 10
  const row = (label: string, cells: string[]) => pad(label, 22) + cells.map((cell) => pad(cell, column)).join('  ')
  const lines: string[] = []
  lines.push(bold(renderHeader(frame)))
  lines.push(dim(`share of the last second's requests per backend; even share ${(100 / frame.inDns.length).toFixed(1)}% over ${frame.inDns.length} backends in DNS`))
  lines.push('')
  lines.push(row('', frame.clients.map((client) => bold(client.name))))
  for (const backend of frame.backends) {
    const cells = frame.clients.map((client) => {
      const count = client.window.counts[backend] ?? 0
      const share = client.window.total === 0 ? 0 : count / client.window.total
      const filled = Math.min(BAR, Math.round(share * BAR))
      return `${'█'.repeat(filled)}${dim('░'.repeat(BAR - filled))} ${(share * 100).toFixed(1).padStart(5)}%`
    })
    const mark = frame.marks[backend]
    const label = mark === undefined ? backend : `${backend} ${bad(mark)}`
    lines.push(row(frame.inDns.includes(backend) ? label : dim(label), cells))
  }
  lines.push('')
  lines.push(
    row(
      'max/min',
      frame.clients.map((client) => {
        const text = balanceText(client.window, frame.inDns)
        return balance(client.window, frame.inDns) <= frame.bound ? good(`${text} ✓`) : bad(text)
      }),
    ),
  )
  lines.push(row('req/s', frame.clients.map((client) => String(client.window.total))))
  lines.push(row('p99', frame.clients.map((client) => (client.p99 === null ? '—' : `${client.p99.toFixed(0)} ms`))))
  lines.push(row('failed', frame.clients.map((client) => (client.failed === 0 ? good('0') : bad(String(client.failed))))))
  return lines.join('\n')
}

function pad(text: string, width: number): string {
  // eslint-disable-next-line no-control-regex
  const visible = text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').length
  return text + ' '.repeat(Math.max(0, width - visible))
}

/** The live view's first line: time and phase ("scaled out to 6 backends at 7.5 s"). */
export function renderHeader(frame: Frame): string {
  return `drainpipe demo  ${frame.elapsed.toFixed(0).padStart(3)} s / ${frame.duration.toFixed(0)} s   ${frame.phase}`
}

/** One line per second for logs. */
export function renderLine(frame: Frame): string {
  const parts = frame.clients.map((client) => {
    const shares = frame.backends.map((backend) => {
      const count = client.window.counts[backend] ?? 0
      return client.window.total === 0 ? '0' : Math.round((100 * count) / client.window.total).toString()
    })
    const p99 = client.p99 === null ? '—' : `${client.p99.toFixed(0)} ms`
    return `${client.name}: [${shares.join(' ')}]% max/min ${balanceText(client.window, frame.inDns)} p99 ${p99} failed ${client.failed}`
  })
  return `${frame.elapsed.toFixed(0).padStart(3)} s  ${parts.join('  |  ')}`
}

/** max/min of the shares of the backends in DNS. */
export function balance(window: Window, inDns: string[]): number {
  const counts = inDns.map((backend) => window.counts[backend] ?? 0)
  const min = Math.min(...counts)
  return min === 0 ? Number.POSITIVE_INFINITY : Math.max(...counts) / min
}

/** The balance as shown: a ratio, or how many backends in DNS got nothing (where the ratio has no finite value). */
function balanceText(window: Window, inDns: string[]): string {
  const idle = inDns.filter((backend) => (window.counts[backend] ?? 0) === 0).length
  return idle === 0 ? balance(window, inDns).toFixed(2) : `— (${idle} of ${inDns.length} got none)`
}

export const screen = {
  clear: `${ESC}H${ESC}2J`,
  home: `${ESC}H`,
  clearBelow: `${ESC}J`,
  hideCursor: `${ESC}?25l`,
  showCursor: `${ESC}?25h`,
}
