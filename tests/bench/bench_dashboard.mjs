// Dashboard benchmark (not run by ctest; docs/benchmarks.md, "Dashboard"):
// one page in Debian's chromium showing N cuffs that each get RATE telemetry
// messages a second (bench_dashboard_pub.mjs), through a private mosquitto
// with a websockets listener serving dashboard/dist.
//
//   node tests/bench/bench_dashboard.mjs [--cuffs 100] [--rate 10] [--minutes 10]
//        [--viewport 1366x768] [--joins 3]
//
// Measures, after a 20 s warm-up, every 10 s: main-thread busy share (CDP
// Performance.getMetrics TaskDuration / wall time), frames per second and
// the longest frame (requestAnimationFrame in the page), messages received,
// JS heap used (after a forced GC once a minute); at the end, how long a page
// that joins late takes to show every tile with its pressure and state
// (navigation start to all tiles filled), and the machine's load (CPU of
// chromium, mosquitto and the publisher from /proc, and the load average).
// Prints the figures as JSON and a Markdown table.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const require = createRequire(join(root, 'dashboard', 'package.json'));
const { chromium } = require('playwright-core');

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => {
	if (v.startsWith('--')) a.push([v.slice(2), all[i + 1]]);
	return a;
}, []));
const CUFFS = Number(args.cuffs || 100);
const RATE = Number(args.rate || 10);
const MINUTES = Number(args.minutes || 10);
const [VW, VH] = (args.viewport || '1366x768').split('x').map(Number);
const JOINS = Number(args.joins || 3);
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('bench:', ...a);

function freePort() {
	return new Promise((resolve) => {
		const s = createServer();
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

// CPU seconds (user + system) of a process and its threads, from /proc.
function cpuSeconds(pid) {
	try {
		const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
		return (Number(f[11]) + Number(f[12])) / 100;
	} catch {
		return 0;
	}
}

function chromiumPids(profile) {
	const out = [];
	for (const p of readdirSync('/proc')) {
		if (!/^\d+$/.test(p)) continue;
		try {
			if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(profile)) out.push(Number(p));
		} catch {
			// gone meanwhile
		}
	}
	return out;
}

function totalCpu() {
	const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
	const idle = f[3] + f[4];
	return { busy: f.reduce((a, b) => a + b, 0) - idle, all: f.reduce((a, b) => a + b, 0) };
}

async function main() {
	const tmp = mkdtempSync(join(tmpdir(), 'bfr-bench-dash-'));
	const port = await freePort();
	const wsPort = await freePort();
	const conf = join(tmp, 'mosquitto.conf');
	writeFileSync(conf, [
		'per_listener_settings true',
		`listener ${port} 127.0.0.1`, 'allow_anonymous true',
		`listener ${wsPort} 127.0.0.1`, 'protocol websockets', 'socket_domain ipv4',
		`http_dir ${join(root, 'dashboard', 'dist')}`, 'allow_anonymous true',
		'persistence false', 'max_queued_messages 10000', process.getuid() === 0 ? 'user root' : '',
		'log_dest none', '',
	].join('\n'));
	const procs = [];
	const broker = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
	procs.push(broker);
	await sleep(500);
	const pub = spawn(process.execPath, [join(here, 'bench_dashboard_pub.mjs'), String(port), String(CUFFS), String(RATE)],
		{ stdio: ['ignore', 'pipe', 'inherit'] });
	procs.push(pub);
	let pubRate = [];
	pub.stdout.on('data', (d) => {
		for (const l of String(d).trim().split('\n')) {
			try {
				pubRate.push(JSON.parse(l).sent_per_s);
			} catch {
				// partial line
			}
		}
	});
	const profile = join(tmp, 'profile');
	const ctx = await chromium.launchPersistentContext(profile, {
		executablePath: process.env.BFR_CHROMIUM || '/usr/bin/chromium', headless: true, args: FLAGS,
		viewport: { width: VW, height: VH },
	});
	const result = { cuffs: CUFFS, rate_hz: RATE, minutes: MINUTES, viewport: `${VW}x${VH}`, samples: [], heap_after_gc_mb: [] };
	try {
		const page = ctx.pages()[0] || await ctx.newPage();
		await page.goto(`http://127.0.0.1:${wsPort}/`);
		await page.waitForFunction((n) => document.querySelectorAll('[data-cuff]').length >= n, CUFFS, { timeout: 30000 });
		// Frame counter in the page: frames and the longest gap between two.
		await page.evaluate(() => {
			const f = { n: 0, worst: 0, last: performance.now(), over50: 0 };
			window.__frames = f;
			const loop = (t) => {
				const d = t - f.last;
				if (d > f.worst) f.worst = d;
				if (d > 50) f.over50++;
				f.last = t;
				f.n++;
				requestAnimationFrame(loop);
			};
			requestAnimationFrame(loop);
		});
		const cdp = await ctx.newCDPSession(page);
		await cdp.send('Performance.enable');
		const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
		const pageStats = () => page.evaluate(() => {
			const f = window.__frames;
			const r = { frames: f.n, worst_ms: f.worst, over50: f.over50, messages: window.bfrDashboard.conn.messages, draws: window.bfrDashboard.charts.draws, renders: window.bfrDashboard.stats.renders };
			f.worst = 0;
			return r;
		});
		log(`warm-up 20 s: ${CUFFS} cuffs x ${RATE} msg/s, viewport ${VW}x${VH}`);
		await sleep(20000);
		await cdp.send('HeapProfiler.collectGarbage');
		let m0 = await metrics();
		result.heap_after_gc_mb.push(+(m0.JSHeapUsedSize / 1048576).toFixed(2));
		let s0 = await pageStats();
		let t0 = Date.now();
		const cpu0 = { chrome: chromiumPids(profile).reduce((a, p) => a + cpuSeconds(p), 0), broker: cpuSeconds(broker.pid), pub: cpuSeconds(pub.pid), total: totalCpu() };
		const tStart = t0;
		const end = tStart + MINUTES * 60000;
		let minute = 0;
		while (Date.now() < end) {
			await sleep(10000);
			const t1 = Date.now();
			let gcHeap = null;
			if (Math.floor((t1 - tStart) / 60000) > minute) {
				// Once a minute: the heap that survives a full GC (what would leak).
				minute = Math.floor((t1 - tStart) / 60000);
				await cdp.send('HeapProfiler.collectGarbage');
				gcHeap = +((await metrics()).JSHeapUsedSize / 1048576).toFixed(2);
				result.heap_after_gc_mb.push(gcHeap);
			}
			const m1 = await metrics();
			const s1 = await pageStats();
			const dt = (t1 - t0) / 1000;
			const sample = {
				t_s: Math.round((t1 - tStart) / 1000),
				busy_pct: +(100 * (m1.TaskDuration - m0.TaskDuration) / dt).toFixed(1),
				script_pct: +(100 * (m1.ScriptDuration - m0.ScriptDuration) / dt).toFixed(1),
				layout_pct: +(100 * (m1.LayoutDuration - m0.LayoutDuration) / dt).toFixed(1),
				style_pct: +(100 * (m1.RecalcStyleDuration - m0.RecalcStyleDuration) / dt).toFixed(1),
				fps: +((s1.frames - s0.frames) / dt).toFixed(1),
				worst_frame_ms: Math.round(s1.worst_ms),
				frames_over_50ms: s1.over50 - s0.over50,
				msgs_per_s: Math.round((s1.messages - s0.messages) / dt),
				chart_draws_per_s: Math.round((s1.draws - s0.draws) / dt),
				heap_mb: +(m1.JSHeapUsedSize / 1048576).toFixed(2),
				dom_nodes: m1.Nodes,
			};
			result.samples.push(sample);
			log(JSON.stringify(sample));
			m0 = m1;
			s0 = s1;
			t0 = t1;
		}
		const wall = (Date.now() - tStart) / 1000;
		const cpu1 = { chrome: chromiumPids(profile).reduce((a, p) => a + cpuSeconds(p), 0), broker: cpuSeconds(broker.pid), pub: cpuSeconds(pub.pid), total: totalCpu() };
		result.cpu_pct_of_one_core = {
			chromium_all_processes: +(100 * (cpu1.chrome - cpu0.chrome) / wall).toFixed(1),
			mosquitto: +(100 * (cpu1.broker - cpu0.broker) / wall).toFixed(1),
			publisher: +(100 * (cpu1.pub - cpu0.pub) / wall).toFixed(1),
		};
		result.machine_busy_pct = +(100 * (cpu1.total.busy - cpu0.total.busy) / (cpu1.total.all - cpu0.total.all)).toFixed(1);
		result.loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
		result.publisher_msgs_per_s = Math.round(pubRate.slice(-60).reduce((a, b) => a + b, 0) / Math.max(1, pubRate.slice(-60).length));

		// Late joiners: a new page while the load runs.
		result.late_join_ms = [];
		for (let j = 0; j < JOINS; j++) {
			const p2 = await ctx.newPage();
			await p2.setViewportSize({ width: VW, height: VH });
			await p2.goto(`http://127.0.0.1:${wsPort}/`);
			const ms = await p2.waitForFunction((n) => {
				const tiles = document.querySelectorAll('[data-cuff]');
				if (tiles.length < n) return false;
				for (const t of tiles) {
					if (!t.querySelector('[data-field="pressure"]').dataset.value) return false;
					if (!t.querySelector('[data-field="link"]').dataset.value) return false;
					if (!t.querySelector('[data-field="battery"]').dataset.value) return false;
				}
				return performance.now();
			}, CUFFS, { timeout: 30000, polling: 'raf' });
			result.late_join_ms.push(Math.round(await ms.jsonValue()));
			await p2.close();
		}
	} finally {
		await ctx.close();
		for (const p of procs.reverse()) p.kill('SIGTERM');
		await sleep(300);
		rmSync(tmp, { recursive: true, force: true });
	}
	const s = result.samples;
	const avg = (k) => +(s.reduce((a, x) => a + x[k], 0) / s.length).toFixed(1);
	const max = (k) => Math.max(...s.map((x) => x[k]));
	const min = (k) => Math.min(...s.map((x) => x[k]));
	result.summary = {
		busy_pct_mean: avg('busy_pct'), busy_pct_max: max('busy_pct'),
		fps_mean: avg('fps'), fps_min: min('fps'), worst_frame_ms: max('worst_frame_ms'),
		msgs_per_s_mean: avg('msgs_per_s'),
		heap_mb_first: s[0].heap_mb, heap_mb_last: s[s.length - 1].heap_mb,
		heap_mb_min: min('heap_mb'), heap_mb_max: max('heap_mb'),
	};
	console.log(JSON.stringify(result, null, 1));
	const r = result.summary;
	console.log(`
| figure | target | measured |
|---|---|---|
| main thread busy (mean / worst 10 s) | < 50 % | ${r.busy_pct_mean} % / ${r.busy_pct_max} % |
| frames per second (mean / worst 10 s) | >= 30 | ${r.fps_mean} / ${r.fps_min} |
| longest frame | | ${r.worst_frame_ms} ms |
| messages received per second | ${CUFFS * RATE}+ | ${r.msgs_per_s_mean} |
| JS heap after a full GC, once a minute | flat | ${result.heap_after_gc_mb.join(', ')} MB |
| JS heap used, every 10 s (min-max) | | ${r.heap_mb_min}-${r.heap_mb_max} MB |
| late-joining page: all tiles filled | < 1 s | ${result.late_join_ms.join(', ')} ms |
`);
}

main().catch((e) => {
	console.error(e);
	process.exit(1);
});
