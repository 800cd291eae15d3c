/**
 * A seeded source of uniform numbers in [0, 1), so that a simulation with
 * the same seed and parameters runs the same way every time: the clients'
 * `random` option (age jitter, backoff), the DNS answer order, arrivals.
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, public
 * domain): 128 bits of state, fast in 32-bit integer arithmetic.
 */
export function seededRandom(seed: number): () => number {
  let a = 0x9e3779b9
  let b = 0x243f6a88
  let c = 0xb7e15162
  let d = seed >>> 0
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  // The first outputs still show the seed's bits: discard them.
  for (let i = 0; i < 15; i++) next()
  return next
}
