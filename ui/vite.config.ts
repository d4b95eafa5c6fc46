import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

/**
 * The hub's pages, built into dist/ui and served by the API (api/pages.ts). Each page is an HTML
 * file whose path is its URL (`ux/conv.html` is `/ux/conv`, `admin/index.html` is `/admin/`); the scripts, styles and fonts go to
 * `/ux/assets/` with hashed names, so every page loads only files of the hub's origin under the
 * paths the guide's ingress routes, and no inline script (the pages' CSP forbids them).
 */
const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'ux/assets',
    // The polyfill would be an inline script; every browser the pages support has modulepreload.
    modulePreload: { polyfill: false },
    rollupOptions: {
      input: {
        admin: `${root}admin/index.html`,
        auth: `${root}auth/index.html`,
        comm: `${root}ux/comm.html`,
        conv: `${root}ux/conv.html`,
        widgetDemo: `${root}ux/widget-demo.html`,
      },
    },
  },
  logLevel: 'warn',
});
