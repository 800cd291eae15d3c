/**
 * Which drainpipe the children measure. The full run compiles lib/ with the
 * project's own build (tsc, tsconfig.build.json) into bench/out/dist and sets
 * DRAINPIPE_BENCH_LIB to it, so the figures are those of the JavaScript users
 * get; tsx's on-the-fly transform adds per-closure `__name()` calls that the
 * published build does not have. Without the variable (quick mode, or
 * `--source`), lib/ is loaded through tsx.
 */
import { pathToFileURL } from 'node:url'

type Lib = typeof import('../lib/index.js')

const built = process.env.DRAINPIPE_BENCH_LIB
const lib: Lib = built ? ((await import(pathToFileURL(built).href)) as Lib) : await import('../lib/index.js')

export const Client = lib.Client
export type Client = InstanceType<Lib['Client']>
export type { ClientOptions } from '../lib/index.js'
/** `built` or `source`, for the report. */
export const drainpipeBuild = built ? 'built' : 'source'
