#!/bin/sh
# `npm ci` and `npm install` run this (the package's `prepare` script): it builds the pages (ui/,
# into dist/ui) when their sources and Vite are present. The image's dependency layer (`npm ci`
# before the sources are copied) and the production tree (`npm ci --omit=dev`) have neither, and
# build the pages with `npm run build` instead, or need none.
set -e
[ -f ui/vite.config.ts ] && [ -d node_modules/vite ] || exit 0
node_modules/.bin/vite build --config ui/vite.config.ts
exec node_modules/.bin/vite build --config ui/widget/vite.config.ts
