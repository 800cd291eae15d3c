#!/usr/bin/env bash
# The package as a user gets it (.ci/run calls this; so can you, from anywhere):
#  1. packs a copy of the working tree without its ignored files (no dist/),
#     as a clean clone is, so the tarball has code only if prepack builds it;
#  2. installs the tarball by its name into a fresh project in a temp dir,
#     with the optional peers at the versions the lockfile has;
#  3. checks the tarball's contents (tarball.mjs);
#  4. compiles strict TypeScript against it: ES module and CommonJS with
#     module nodenext, and CommonJS with the classic node10 resolution;
#  5. imports it from ESM and requires it from CommonJS, and runs what tsc
#     wrote, on the engines floor (20.18.1) and on the Node versions CI runs
#     (20, 22, 24). Before 20.19, require() of ESM needs a flag: the floor
#     runs the CommonJS programs with --experimental-require-module.
# Exits 1 if any step failed, after running all it can.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/drainpipe-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
fail() { printf 'FAILED: %s\n' "$*"; status=1; }

name=$(node -p "require('$repo/package.json').name")
version=$(node -p "require('$repo/package.json').version")
floor=$(node -p "require('$repo/package.json').engines.node.replace(/^>=\s*/, '')")
locked() { node -p "require('$repo/node_modules/$1/package.json').version"; }

echo "pack: a copy of the working tree without ignored files"
mkdir -p "$work/source" "$work/consumer"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
  tar --null -T - -cf -) | tar -xf - -C "$work/source" || { fail "copying the working tree"; exit 1; }
ln -s "$repo/node_modules" "$work/source/node_modules"
(cd "$work/source" && npm pack --pack-destination "$work" >"$work/pack.log" 2>&1) || { cat "$work/pack.log"; fail "npm pack"; exit 1; }
tarball="$work/$name-$version.tgz"
[ -f "$tarball" ] || { cat "$work/pack.log"; fail "npm pack wrote no $name-$version.tgz"; exit 1; }

echo "install: $name-$version.tgz into a fresh project"
cp "$here"/{scenario.mjs,esm.mjs,cjs.cjs,tarball.mjs,node10.ts} "$work/consumer/"
cp "$here/typed.ts" "$work/consumer/typed.mts"
cp "$here/typed.ts" "$work/consumer/typed.cts"
echo '{ "name": "consumer", "private": true }' >"$work/consumer/package.json"
(cd "$work/consumer" && npm install --no-audit --no-fund --ignore-scripts --prefer-offline \
  "$tarball" "msw@$(locked msw)" "@connectrpc/connect@$(locked @connectrpc/connect)" "@types/node@$(locked @types/node)" \
  >"$work/install.log" 2>&1) || { cat "$work/install.log"; fail "npm install of the tarball"; exit 1; }
installed="$work/consumer/node_modules/$name"
[ -f "$installed/package.json" ] || { fail "the tarball did not install as node_modules/$name"; exit 1; }

node "$work/consumer/tarball.mjs" "$installed" || fail "tarball contents"

tsc() { (cd "$work/consumer" && node "$repo/node_modules/typescript/bin/tsc" --strict --skipLibCheck false --target es2022 --types node --noEmitOnError "$@"); }
# The DOM lib for typed.ts: msw's and Connect's own types need it (the
# subpaths import them); node10.ts shows the main entry needs no DOM.
echo "tsc: typed.mts (ESM) and typed.cts (CommonJS), module nodenext"
tsc --lib es2023,dom --module nodenext typed.mts typed.cts && echo "tsc: ok" || fail "tsc, module nodenext"
echo "tsc: node10.ts, module commonjs (node10 resolution), no DOM lib"
tsc --lib es2023 --module commonjs --moduleResolution node10 node10.ts && echo "tsc: ok" || fail "tsc, module commonjs"

nodes=("npx:$floor" "$(command -v node)" "npx:22" "npx:24")
for spec in "${nodes[@]}"; do
  bin=$spec
  if [[ $spec == npx:* ]]; then
    bin=$(npx -y -p "node@${spec#npx:}" -c 'command -v node') || { fail "no Node ${spec#npx:} from npm"; continue; }
  fi
  flags=()
  [ "$("$bin" -p 'process.features.require_module === true')" = true ] || flags=(--experimental-require-module)
  echo "run on Node $("$bin" --version)${flags[*]:+ (CommonJS with ${flags[*]})}"
  for program in esm.mjs typed.mjs; do
    (cd "$work/consumer" && "$bin" "$program") || fail "$program on Node $("$bin" --version)"
  done
  for program in cjs.cjs typed.cjs node10.js; do
    (cd "$work/consumer" && "$bin" "${flags[@]}" "$program") || fail "$program on Node $("$bin" --version)"
  done
done
exit $status
