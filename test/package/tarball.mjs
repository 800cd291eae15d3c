// Checks what the tarball holds, on the copy npm installed from it
// (node tarball.mjs <installed package directory>): every export resolves,
// every source map and the file it maps are shipped, no @internal member is
// in the public types, the CHANGELOG has the version being packed, and the
// README tells how to install it by its name. Prints each problem; exits 1 if any.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'

const root = process.argv[2]
const problems = []
const read = (path) => readFileSync(join(root, path), 'utf8')
const files = readdirSync(root, { recursive: true }).map(String)
const pkg = JSON.parse(read('package.json'))

const allowed = new Set(['package.json', 'dist', 'lib', 'LICENSE', 'README.md', 'CHANGELOG.md'])
for (const top of new Set(files.map((file) => file.split(/[\\/]/)[0]))) {
  if (!allowed.has(top)) problems.push(`unexpected in the tarball: ${top}`)
}
if (!/^MIT License\n\nCopyright \(c\) \d{4} drainpipe contributors\n/.test(read('LICENSE'))) problems.push('LICENSE is not the MIT text')

const targets = (value) => (typeof value === 'string' ? [value] : Object.values(value).flatMap(targets))
for (const [subpath, entry] of Object.entries(pkg.exports)) {
  for (const target of targets(entry)) if (!existsSync(join(root, target))) problems.push(`exports['${subpath}'] names ${target}, not in the tarball`)
}
if (pkg.types && !existsSync(join(root, pkg.types))) problems.push(`"types" names ${pkg.types}, not in the tarball`)

for (const file of files.filter((name) => /\.(js|d\.ts)$/.test(name))) {
  const text = read(file)
  if (file.endsWith('.d.ts') && text.includes('@internal')) problems.push(`${file} publishes an @internal member`)
  const reference = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1]
  if (reference === undefined) continue
  const map = join(dirname(file), reference)
  if (!existsSync(join(root, map))) {
    problems.push(`${file} references ${map}, not in the tarball`)
    continue
  }
  for (const source of JSON.parse(read(map)).sources) {
    const path = relative(root, join(root, dirname(map), source))
    if (path.startsWith('..') || !existsSync(join(root, path))) problems.push(`${map} maps ${source}, not in the tarball`)
  }
}

// Keep a Changelog: an [Unreleased] section on top collects what is not released yet.
const released = /^## \[(?!Unreleased\])([^\]]+)\]/m.exec(read('CHANGELOG.md'))?.[1]
if (released !== pkg.version) problems.push(`CHANGELOG.md's latest version is ${released}, package.json says ${pkg.version}`)
if (!read('README.md').includes(`npm install ${pkg.name}`)) problems.push(`README.md does not say 'npm install ${pkg.name}'`)

for (const problem of problems) console.error(`tarball: ${problem}`)
if (problems.length > 0) process.exit(1)
console.log(`tarball: ${pkg.name}@${pkg.version}, ${files.length} files: contents, exports, maps, types, CHANGELOG, README ok`)
