import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

/**
 * The customer chat widget: one classic script, `/ux/widget.js` (a stable name, since sites embed
 * it with one script tag), that renders into a shadow root with its own styles. Built after the
 * pages (ui/vite.config.ts) into the same folder.
 */
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('../../dist/ui/ux', import.meta.url)),
    emptyOutDir: false,
    lib: {
      entry: fileURLToPath(new URL('./widget.tsx', import.meta.url)),
      formats: ['iife'],
      name: 'NexusChat',
      fileName: () => 'widget.js',
    },
  },
  logLevel: 'warn',
});
