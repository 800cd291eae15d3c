/**
 * Figures as text: numbers, ratios, sizes and durations, and tables for the
 * terminal and for Markdown.
 */

export interface Table {
  title: string
  head: string[]
  rows: string[][]
  /** Columns (by index) aligned right. */
  right?: number[]
  notes?: string[]
}

export function formatNumber(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '—'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function formatRatio(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—'
  return `${value.toFixed(2)}×`
}

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return '—'
  const sign = bytes < 0 ? '−' : ''
  const size = Math.abs(bytes)
  if (size >= 2 ** 20) return `${sign}${(size / 2 ** 20).toFixed(2)} MiB`
  if (size >= 2 ** 10) return `${sign}${(size / 2 ** 10).toFixed(1)} KiB`
  return `${sign}${Math.round(size)} B`
}

export function formatMicros(us: number | undefined): string {
  if (us === undefined || !Number.isFinite(us)) return '—'
  return us >= 10_000 ? `${(us / 1000).toFixed(1)} ms` : `${(us / 1000).toFixed(2)} ms`
}

export function terminalTable(table: Table): string {
  const widths = table.head.map((head, i) => Math.max(head.length, ...table.rows.map((row) => (row[i] ?? '').length)))
  const right = new Set(table.right ?? [])
  const line = (cells: string[]) =>
    cells.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()
  const out = [table.title, line(table.head), widths.map((w) => '─'.repeat(w)).join('  ')]
  for (const row of table.rows) out.push(line(row))
  for (const note of table.notes ?? []) out.push(`  ${note}`)
  return out.join('\n')
}

export function markdownTable(table: Table): string {
  const right = new Set(table.right ?? [])
  const escape = (cell: string) => cell.replaceAll('|', '\\|')
  const out = [`### ${table.title}`, '', `| ${table.head.map(escape).join(' | ')} |`]
  out.push(`| ${table.head.map((_, i) => (right.has(i) ? '---:' : '---')).join(' | ')} |`)
  for (const row of table.rows) out.push(`| ${row.map(escape).join(' | ')} |`)
  if (table.notes?.length) out.push('', ...table.notes.map((note) => `${note}  `))
  return out.join('\n')
}
