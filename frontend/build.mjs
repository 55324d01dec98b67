// Builds the chat page into dist/: the page's script (an ES module, with the syntax highlighter
// split into a chunk of its own that the page loads after it has shown) and stylesheet, all with
// content hashes in their names (cached for a year by nginx), and index.html pointing at them
// (never cached).
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(path.join(dist, 'assets'), { recursive: true });

const result = await build({
  entryPoints: { app: path.join(here, 'src/main.js'), style: path.join(here, 'src/style.css') },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  splitting: true,
  target: ['es2020'],
  outdir: path.join(dist, 'assets'),
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
/** @param {string} prefix @param {string} ext */
const find = (prefix, ext) => outputs.find((f) => f.startsWith(prefix) && f.endsWith(ext));
const html = (await readFile(path.join(here, 'index.html'), 'utf8'))
  .replace('%APP_JS%', `/assets/${find('app-', '.js')}`)
  .replace('%STYLE_CSS%', `/assets/${find('style-', '.css')}`);
await writeFile(path.join(dist, 'index.html'), html);
console.log(`frontend: built ${outputs.filter((f) => !f.endsWith('.txt')).join(', ')} into dist/`);
