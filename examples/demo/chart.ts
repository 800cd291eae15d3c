/**
 * The demo's chart: for each client, the share of requests per backend over
 * time (one line per backend), the ideal share (1 / backends in DNS), and the
 * moments the backends changed. A self-contained SVG, no dependencies.
 *
 * The fleet simulator (sim/) draws its charts with it too: panels of other
 * quantities (handshakes per second, connections) with their own axis and
 * reference line, and lines that are not backends (the highest share, the
 * lowest). Every one of those is optional, and the demo's chart is as it was.
 */

export interface Series {
  /** Seconds since the start. */
  t: number[]
  /** Line (a backend, in the demo) → value at each `t` (a share, 0…1, unless the panel's axis says otherwise); `null` where there is none. */
  shares: Record<string, (number | null)[]>
}

/** A panel's vertical axis: from 0 to `max`, gridlines at quarters, labelled with `format`. */
export interface Axis {
  max: number
  format: (value: number) => string
}

export interface Panel {
  title: string
  subtitle: string
  series: Series
  /** Moments to point out on the time axis (e.g. "balanced"). */
  notes?: Marker[]
  /** Default: shares, 0–100 %. */
  axis?: Axis
  /** The dotted reference line as a step function (from `t` on, `value`); default: the chart's even share; `null`: none. */
  reference?: { t: number; value: number }[] | null
}

export interface Marker {
  /** Seconds since the start. */
  t: number
  label: string
}

export interface ChartInput {
  title: string
  subtitle: string
  /** The lines, one colour each, in the legend's order: the backends, in the demo. */
  backends: string[]
  panels: Panel[]
  markers: Marker[]
  /** The ideal share as a step function: from `t` on, 1 / `backends`. */
  ideal: { t: number; backends: number }[]
  duration: number
  footer: string[]
  /** The legend's heading and what the reference line is called (default: backends, and the even share). */
  legend?: { title: string; reference: [string, string] }
}

// Okabe–Ito colours: distinguishable with the common forms of colour blindness.
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#F0E442']

const WIDTH = 980
const LEFT = 64
const PLOT_WIDTH = 720
const PANEL_HEIGHT = 200
const PANEL_GAP = 92
/** Characters per line of running text before it wraps (13 px type over the chart's width). */
const WRAP = 128

export function renderChart(input: ChartInput): string {
  const legendX = LEFT + PLOT_WIDTH + 28
  const subtitle = wrap(input.subtitle, WRAP)
  const footer = input.footer.flatMap((line) => wrap(line, WRAP))
  const top0 = 92 + subtitle.length * 17
  const height = top0 + input.panels.length * (PANEL_HEIGHT + PANEL_GAP) - 28 + footer.length * 18
  const x = (t: number) => LEFT + (t / input.duration) * PLOT_WIDTH
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="30" font-size="18" font-weight="600" fill="#111">${escape(input.title)}</text>`,
    ...subtitle.map((line, i) => `<text x="${LEFT}" y="${52 + i * 17}" font-size="13" fill="#444">${escape(line)}</text>`),
  )

  input.panels.forEach((panel, index) => {
    const top = top0 + index * (PANEL_HEIGHT + PANEL_GAP)
    const axis = panel.axis ?? SHARES
    const y = (value: number) => top + PANEL_HEIGHT - (Math.min(value, axis.max) / axis.max) * PANEL_HEIGHT
    out.push(
      `<text x="${LEFT}" y="${top - 22}" font-size="14" font-weight="600" fill="#111">${escape(panel.title)}</text>`,
      `<text x="${LEFT}" y="${top - 7}" font-size="12" fill="#444">${escape(panel.subtitle)}</text>`,
      `<rect x="${LEFT}" y="${top}" width="${PLOT_WIDTH}" height="${PANEL_HEIGHT}" fill="#fafafa" stroke="#ccc"/>`,
    )
    // Horizontal grid and the panel's axis.
    for (const quarter of [0, 0.25, 0.5, 0.75, 1]) {
      const value = quarter * axis.max
      out.push(
        `<line x1="${LEFT}" x2="${LEFT + PLOT_WIDTH}" y1="${y(value)}" y2="${y(value)}" stroke="#e4e4e4"/>`,
        `<text x="${LEFT - 8}" y="${y(value) + 4}" text-anchor="end" fill="#555">${escape(axis.format(value))}</text>`,
      )
    }
    // Time axis.
    const step = timeStep(input.duration)
    for (let t = 0; t <= input.duration + 1e-9; t += step) {
      out.push(
        `<line x1="${x(t)}" x2="${x(t)}" y1="${top + PANEL_HEIGHT}" y2="${top + PANEL_HEIGHT + 4}" stroke="#888"/>`,
        `<text x="${x(t)}" y="${top + PANEL_HEIGHT + 17}" text-anchor="middle" fill="#555">${timeLabel(t, step)}</text>`,
      )
    }
    // Changes to the backends (labels on staggered rows, so close ones do not overlap).
    input.markers.forEach((marker, i) => {
      // Near the right edge the label goes to the left of its line, not into the legend.
      const left = x(marker.t) > LEFT + PLOT_WIDTH - 130
      out.push(
        `<line x1="${x(marker.t)}" x2="${x(marker.t)}" y1="${top}" y2="${top + PANEL_HEIGHT}" stroke="#777" stroke-dasharray="4 3"/>`,
        `<text x="${x(marker.t) + (left ? -4 : 4)}" y="${top + 13 + (i % 3) * 13}"${left ? ' text-anchor="end"' : ''} fill="#333" font-size="11">${escape(marker.label)}</text>`,
      )
    })
    // Notes on the time axis.
    for (const note of panel.notes ?? []) {
      const nx = x(note.t)
      const base = top + PANEL_HEIGHT
      out.push(
        `<path d="M${nx.toFixed(1)},${base - 1} l-5,-9 h10 z" fill="#1a7f37"/>`,
        `<text x="${nx + 7}" y="${base - 4}" fill="#1a7f37" font-size="11" font-weight="600">${escape(note.label)}</text>`,
      )
    }
    // The reference: by default the ideal share, one over the backends in DNS.
    const reference = panel.reference === undefined ? input.ideal.map((step) => ({ t: step.t, value: 1 / step.backends })) : panel.reference
    if (reference !== null) {
      const path = reference
        .map((step, i) => {
          const end = reference[i + 1]?.t ?? input.duration
          const level = y(step.value)
          return `M${x(step.t).toFixed(1)},${level.toFixed(1)} H${x(end).toFixed(1)}`
        })
        .join(' ')
      out.push(`<path d="${path}" fill="none" stroke="#111" stroke-width="1.5" stroke-dasharray="2 3" opacity="0.7"/>`)
    }
    // One line per backend (per line of the legend that the panel has).
    input.backends.forEach((backend, b) => {
      const values = panel.series.shares[backend]
      if (values === undefined) return
      let d = ''
      let pen = false
      values.forEach((share, i) => {
        if (share === null) {
          pen = false
          return
        }
        d += `${pen ? 'L' : 'M'}${x(panel.series.t[i]!).toFixed(1)},${y(share).toFixed(1)} `
        pen = true
      })
      out.push(`<path d="${d.trim()}" fill="none" stroke="${COLOURS[b % COLOURS.length]}" stroke-width="2" stroke-linejoin="round" opacity="0.9"/>`)
    })
  })

  // Legend.
  const legendTop = top0 + 4
  const legend = input.legend ?? { title: 'backend', reference: ['even share', '(1 / backends in DNS)'] }
  out.push(`<text x="${legendX}" y="${legendTop}" font-weight="600" fill="#111">${escape(legend.title)}</text>`)
  input.backends.forEach((backend, b) => {
    const ly = legendTop + 20 + b * 20
    out.push(
      `<line x1="${legendX}" x2="${legendX + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${COLOURS[b % COLOURS.length]}" stroke-width="3"/>`,
      `<text x="${legendX + 30}" y="${ly}" fill="#222">${escape(backend)}</text>`,
    )
  })
  const idealY = legendTop + 20 + input.backends.length * 20 + 6
  out.push(
    `<line x1="${legendX}" x2="${legendX + 22}" y1="${idealY - 4}" y2="${idealY - 4}" stroke="#111" stroke-width="1.5" stroke-dasharray="2 3"/>`,
    `<text x="${legendX + 30}" y="${idealY}" fill="#222">${escape(legend.reference[0])}</text>`,
    `<text x="${legendX + 30}" y="${idealY + 14}" fill="#666" font-size="11">${escape(legend.reference[1])}</text>`,
  )

  // Footer.
  const footerTop = top0 + input.panels.length * (PANEL_HEIGHT + PANEL_GAP) - 34
  footer.forEach((line, i) => {
    out.push(`<text x="${LEFT}" y="${footerTop + i * 18}" fill="#333" font-size="13">${escape(line)}</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

const SHARES: Axis = { max: 1, format: (share) => `${Math.round(share * 100)}%` }

/** Seconds between time-axis ticks: the smallest round step that gives at most 10 of them. */
function timeStep(duration: number): number {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]
  return steps.find((step) => duration / step <= 10) ?? Math.ceil(duration / 10 / 3600) * 3600
}

/** A tick's label: seconds while the steps are under two minutes, then minutes. */
function timeLabel(t: number, step: number): string {
  return step < 120 ? `${t} s` : `${Math.round(t / 60)} min`
}

/** Splits running text into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  if (line !== '') lines.push(line)
  return lines
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}
