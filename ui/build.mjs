// Builds the built-in web page into $UI_OUT_DIR (default: ui/dist):
//   index.html, app.js (one minified IIFE bundle incl. uPlot), app.css (ours + uPlot's).
// Run via `npm --prefix ui run build`; the host's build.rs calls exactly that.
import { build } from 'esbuild';
import { mkdir, readFile, writeFile, copyFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.env.UI_OUT_DIR || join(here, 'dist'));
await mkdir(out, { recursive: true });

await build({
  entryPoints: [join(here, 'src/app.js')],
  outfile: join(out, 'app.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
});

const uplotCss = await readFile(join(here, 'node_modules/uplot/dist/uPlot.min.css'), 'utf8');
const ownCss = await readFile(join(here, 'src/app.css'), 'utf8');
await writeFile(join(out, 'app.css'), uplotCss + '\n' + ownCss);
await copyFile(join(here, 'src/index.html'), join(out, 'index.html'));
console.log(`ui: wrote index.html, app.js, app.css to ${out}`);
