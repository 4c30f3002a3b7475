// Browser driver for the Python browser tests (tests/browser/browser.py):
// Debian's chromium through playwright-core, one JSON request per stdin line,
// one JSON answer per stdout line: {"id", "ok", "value"} or {"id", "ok":
// false, "error"}. Every wait is Playwright's own (a condition with a
// deadline). Exits, closing the browser, on EOF, on "close" or on SIGTERM.

import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'dashboard', 'package.json'));
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.BFR_CHROMIUM || '/usr/bin/chromium';
// Flags that keep Chromium from reaching out to the network (refused here)
// and from needing a sandbox or a GPU.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

let context = null;
let page = null;
const pageErrors = [];

function fn(body) {
	// Runs in the page: `arg` is the argument given with the request.
	// eslint-disable-next-line no-new-func
	return new Function('arg', body);
}

const ops = {
	async launch({ userDataDir, width = 1366, height = 768 }) {
		context = await chromium.launchPersistentContext(userDataDir, {
			executablePath: CHROMIUM,
			headless: true,
			args: FLAGS,
			viewport: { width, height },
		});
		page = context.pages()[0] || await context.newPage();
		page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
		page.on('console', (m) => {
			if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
		});
		return context.browser() ? context.browser().version() : 'chromium';
	},
	async goto({ url }) {
		const r = await page.goto(url, { waitUntil: 'load' });
		return { status: r ? r.status() : null, headers: r ? await r.allHeaders() : {} };
	},
	async newPage({ width = 1366, height = 768 }) {
		page = await context.newPage();
		await page.setViewportSize({ width, height });
		page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
		return true;
	},
	async viewport({ width, height }) {
		await page.setViewportSize({ width, height });
		return true;
	},
	async click({ selector, timeout = 5000 }) {
		await page.locator(selector).first().click({ timeout });
		return true;
	},
	async fill({ selector, value, timeout = 5000 }) {
		await page.locator(selector).first().fill(value, { timeout });
		return true;
	},
	async select({ selector, value, timeout = 5000 }) {
		await page.locator(selector).first().selectOption(value, { timeout });
		return true;
	},
	async wait({ selector, state = 'visible', timeout = 5000 }) {
		await page.locator(selector).first().waitFor({ state, timeout });
		return true;
	},
	async waitFn({ body, arg = null, timeout = 5000 }) {
		const h = await page.waitForFunction(fn(body), arg, { timeout, polling: 'raf' });
		return await h.jsonValue();
	},
	async eval({ body, arg = null }) {
		return await page.evaluate(fn(body), arg);
	},
	async count({ selector }) {
		return await page.locator(selector).count();
	},
	async screenshot({ path, fullPage = false }) {
		await page.screenshot({ path, fullPage, animations: 'allow' });
		return path;
	},
	async errors() {
		return pageErrors.splice(0);
	},
	async cdp({ method, params = {} }) {
		const s = await context.newCDPSession(page);
		const r = await s.send(method, params);
		await s.detach();
		return r;
	},
	async close() {
		if (context) await context.close();
		context = null;
		return true;
	},
};

async function shutdown(code) {
	try {
		if (context) await context.close();
	} finally {
		process.exit(code);
	}
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));

const rl = createInterface({ input: process.stdin });
const queue = [];
let running = false;

async function pump() {
	if (running) return;
	running = true;
	while (queue.length) {
		const line = queue.shift();
		let req;
		try {
			req = JSON.parse(line);
		} catch (e) {
			process.stdout.write(JSON.stringify({ id: null, ok: false, error: `bad request: ${e.message}` }) + '\n');
			continue;
		}
		try {
			if (!ops[req.op]) throw new Error(`unknown op ${req.op}`);
			const value = await ops[req.op](req.args || {});
			process.stdout.write(JSON.stringify({ id: req.id, ok: true, value: value ?? null }) + '\n');
		} catch (e) {
			process.stdout.write(JSON.stringify({ id: req.id, ok: false, error: String(e && e.message || e) }) + '\n');
		}
	}
	running = false;
}

rl.on('line', (line) => {
	queue.push(line);
	pump();
});
rl.on('close', () => shutdown(0));
