// Builds dist/index.html: one self-contained file, the JavaScript bundle and
// all CSS inlined. mosquitto 2.0.11 serves http_dir files without a
// Content-Type, so a browser would not run a separate module script from it;
// one classic inline <script> runs whatever the headers say.

import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = (p) => join(here, 'src', p);

const js = await build({
	entryPoints: [src('main.js')],
	bundle: true,
	format: 'iife',
	platform: 'browser',
	target: ['chrome100', 'firefox100', 'safari15'],
	minify: true,
	legalComments: 'none',
	write: false,
	define: { 'process.env.NODE_ENV': '"production"' },
	logLevel: 'warning',
});
const css = await build({
	stdin: {
		contents: `@import "uplot/dist/uPlot.min.css";\n@import "./style.css";\n`,
		resolveDir: src('.'),
		loader: 'css',
	},
	bundle: true,
	minify: true,
	write: false,
	logLevel: 'warning',
});

// Inline text must not end its own element early: "<\/" means "</" inside
// the string and regular-expression literals where such text can occur.
const script = js.outputFiles[0].text.replace(/<\/(script)/gi, '<\\/$1');
const style = css.outputFiles[0].text;
if (/<\/style/i.test(style)) throw new Error('CSS contains </style>');
const page = readFileSync(src('index.html'), 'utf8')
	.replace('/*CSS*/', () => style)
	.replace('/*JS*/', () => script);
mkdirSync(join(here, 'dist'), { recursive: true });
writeFileSync(join(here, 'dist', 'index.html'), page);
console.log(`dist/index.html: ${(page.length / 1024).toFixed(0)} KiB (JS ${(script.length / 1024).toFixed(0)} KiB, CSS ${(style.length / 1024).toFixed(0)} KiB)`);
