#!/usr/bin/env bash
# Builds the production tree the container image holds: OUT_DIR gets package.json,
# package-lock.json, the compiled dist/ (migrations included), the production dependencies and
# entrypoint.sh, and nothing else. The Dockerfile's build stage runs this script, and so does
# test/integration/image-tree.test.ts, which starts the processes from the tree it writes.
#
# Usage: scripts/build-production-tree.sh OUT_DIR
#
# The repository's node_modules must hold the build's devDependencies (`npm ci`). The compile runs
# in a staging copy of the sources, so the repository's own dist/ is left alone.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
if [ -n "$(ls -A "$out")" ]; then
  echo "$0: $out is not empty" >&2
  exit 1
fi
if [ ! -x "$repo/node_modules/.bin/tsc" ]; then
  echo "$0: $repo/node_modules has no TypeScript compiler; run npm ci first" >&2
  exit 1
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# The compile: `npm run build` on a copy of what tsconfig.build.json compiles, and the pages.
cd "$repo"
mapfile -t sources < <(node -e '
  const { include } = JSON.parse(require("fs").readFileSync("tsconfig.build.json", "utf8"));
  for (const dir of include) console.log(dir);
')
cp package.json package-lock.json tsconfig.json tsconfig.build.json "$stage/"
# ui/: the pages, which the build compiles with Vite into dist/ui.
cp -R "${sources[@]}" ui "$stage/"
ln -s "$repo/node_modules" "$stage/node_modules"
(cd "$stage" && npm run build --silent)

# Every entry point the image runs, and every migration, must be in dist/.
for entry in bin/api.js bin/worker.js bin/start.js bin/athena.js db/migrate-cli.js ui/ux/conv.html ui/auth/index.html; do
  if [ ! -f "$stage/dist/$entry" ]; then
    echo "$0: the build did not produce dist/$entry" >&2
    exit 1
  fi
done
expected="$(find db/migrations -maxdepth 1 -name '*.sql' | wc -l)"
built="$(find "$stage/dist/db/migrations" -maxdepth 1 -name '*.sql' | wc -l)"
if [ "$expected" -eq 0 ] || [ "$built" -ne "$expected" ]; then
  echo "$0: dist/db/migrations holds $built of the $expected migrations" >&2
  exit 1
fi

cp package.json package-lock.json "$out/"
cp -R "$stage/dist" "$out/dist"
cp scripts/entrypoint.sh "$out/entrypoint.sh"
chmod 755 "$out/entrypoint.sh"
# Production dependencies only, exactly as locked. SCARF_ANALYTICS: a dependency's install script
# would otherwise report the install to its vendor.
(cd "$out" && SCARF_ANALYTICS=false npm ci --omit=dev --no-audit --no-fund --prefer-offline \
  --loglevel=error)

# npm keeps a package the lock marks devOptional (a devDependency that a production package names
# only as an optional peer, e.g. typescript for valibot) even with --omit=dev. Remove those that
# no production package depends on, with the commands they linked into node_modules/.bin.
node - "$out" <<'JS'
const fs = require('node:fs');
const { join, resolve } = require('node:path');
const out = process.argv[2];
const lock = JSON.parse(fs.readFileSync(join(out, 'package-lock.json'), 'utf8'));
const entries = Object.entries(lock.packages);
const nameOf = path => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
const uses = entry => [
  ...Object.keys(entry.dependencies ?? {}),
  ...Object.keys(entry.optionalDependencies ?? {}),
];
// What production packages install (optional peers are not installed for them), then what the
// devOptional packages among those need in turn.
const needed = new Set(Object.keys(lock.packages[''].dependencies ?? {}));
for (const [path, entry] of entries) {
  if (path !== '' && !entry.dev && !entry.devOptional) uses(entry).forEach(n => needed.add(n));
}
const candidates = entries.filter(([, entry]) => entry.devOptional);
const kept = new Set();
for (let grew = true; grew; ) {
  grew = false;
  for (const [path, entry] of candidates) {
    if (kept.has(path) || !needed.has(nameOf(path))) continue;
    kept.add(path);
    uses(entry).forEach(n => needed.add(n));
    grew = true;
  }
}
const removed = candidates.filter(([path]) => !kept.has(path)).map(([path]) => resolve(out, path));
for (const dir of removed) fs.rmSync(dir, { recursive: true, force: true });
const bin = join(out, 'node_modules', '.bin');
for (const link of fs.existsSync(bin) ? fs.readdirSync(bin) : []) {
  if (!fs.lstatSync(join(bin, link)).isSymbolicLink()) continue;
  const target = resolve(bin, fs.readlinkSync(join(bin, link)));
  if (removed.some(dir => target.startsWith(`${dir}/`))) fs.rmSync(join(bin, link));
}
for (const dir of removed) console.log(`removed ${dir.slice(out.length + 1)} (devOptional)`);
JS
echo "production tree written to $out"
