// Pressure traces: one uPlot per cuff tile, redrawn by a scheduler instead of
// per message, so that 100 cuffs at 10 messages/s stay smooth:
// - only charts on screen (IntersectionObserver) are redrawn;
// - each at most every REDRAW_MS, and only when its trace has new samples;
// - at most FRAME_BUDGET_MS of redrawing per animation frame, round-robin,
//   so a frame never waits for all charts.

import uPlot from 'uplot';
import { targetOf } from './view.js';

export const REDRAW_MS = 100; // at most 10 redraws a second per chart
const FRAME_BUDGET_MS = 6;
// Redrawing may take at most this share of the main thread: with many charts
// on screen each is redrawn less often (measured cost per redraw x charts).
const CHART_SHARE = 0.15;
const PAINT_FLOOR_MS = 0.6;
const CREATE_PER_FRAME = 4;
const WINDOW_S = 30;

// Colours come from the page's CSS variables, read once.
const COLORS = {};
function css(name, fallback) {
	if (!(name in COLORS)) {
		const v = typeof document !== 'undefined'
			? getComputedStyle(document.documentElement).getPropertyValue(name).trim() : '';
		COLORS[name] = v || fallback;
	}
	return COLORS[name];
}

export class Charts {
	constructor() {
		this.items = new Map(); // element -> item
		this.order = []; // round-robin order of items
		this.next = 0;
		this.visible = new Set();
		this.io = typeof IntersectionObserver !== 'undefined'
			? new IntersectionObserver((entries) => {
				for (const e of entries) {
					const it = this.items.get(e.target);
					if (!it) continue;
					if (e.isIntersecting) {
						// A chart is made when it first comes on screen (by draw(),
						// a few per frame): a page of 100 cuffs shows its tiles
						// at once and makes only the charts that are seen.
						this.visible.add(it);
						if (this.onWant) this.onWant();
					} else {
						this.visible.delete(it);
					}
				}
			}) : null;
		this.ro = typeof ResizeObserver !== 'undefined'
			? new ResizeObserver((entries) => {
				for (const e of entries) {
					const it = this.items.get(e.target);
					if (it) it.resize = true;
				}
			}) : null;
		this.draws = 0; // for the benchmark
		this.costMs = 0.5; // running mean of one redraw
	}

	// Milliseconds between two redraws of one chart. The measured cost is the
	// script's only; painting the canvas afterwards costs about as much again
	// (bench_dashboard at 100 charts on screen), hence the floor.
	interval() {
		return Math.max(REDRAW_MS, (this.visible.size * Math.max(this.costMs, PAINT_FLOOR_MS)) / CHART_SHARE);
	}

	// A chart in element `el` for cuff `c` (store.js cuff: .trace, .state);
	// the target band comes from targetOf(store, c) at each redraw.
	add(el, c, store) {
		const it = { el, c, store, u: null, drawnV: -1, drawnAt: 0, resize: false };
		this.items.set(el, it);
		this.order.push(it);
		if (this.io) {
			this.io.observe(el);
		} else {
			this.create(it);
			this.visible.add(it);
		}
		if (this.ro) this.ro.observe(el);
	}

	create(it) {
		const { el, c, store } = it;
		const w = Math.max(120, el.clientWidth || 280);
		const h = Math.max(60, el.clientHeight || 90);
		const grid = css('--grid', '#333');
		const axis = css('--muted', '#999');
		const target = () => {
			const t = targetOf(store, c);
			return t !== null && t > 0 ? t : null;
		};
		const opts = {
			width: w,
			height: h,
			pxAlign: 1,
			legend: { show: false },
			cursor: { show: false },
			select: { show: false },
			scales: {
				x: {
					time: false,
					range: () => {
						const last = c.trace.lastX();
						const hi = last === null ? WINDOW_S : last;
						return [hi - WINDOW_S, hi];
					},
				},
				y: { range: () => [0, yMax(c, target())] },
			},
			axes: [
				{
					stroke: axis,
					grid: { stroke: grid, width: 1 },
					ticks: { show: false },
					size: 18,
					font: '10px system-ui, sans-serif',
					// Ticks every 10 s back from the newest sample, labelled relative to it.
					splits: (u, i, min, max) => [max - 30, max - 20, max - 10, max],
					values: (u, splits) => splits.map((s, i) => (i === splits.length - 1 ? 'now'
						: `${Math.round(s - splits[splits.length - 1])} s`)),
				},
				{
					stroke: axis,
					grid: { stroke: grid, width: 1 },
					ticks: { show: false },
					size: 30,
					space: 24,
					font: '10px system-ui, sans-serif',
				},
			],
			series: [
				{},
				{ label: 'pressure', stroke: css('--trace', '#4fc3f7'), width: 1.5, points: { show: false } },
			],
			hooks: {
				drawAxes: [(u) => drawBand(u, target())],
				draw: [(u) => drawLop(u, c)],
			},
		};
		it.u = new uPlot(opts, c.trace.data(), el);
		it.drawnV = c.trace.v;
	}

	remove(el) {
		const it = this.items.get(el);
		if (!it) return;
		if (this.io) this.io.unobserve(el);
		if (this.ro) this.ro.unobserve(el);
		if (it.u) it.u.destroy();
		this.items.delete(el);
		this.visible.delete(it);
		this.order = this.order.filter((x) => x !== it);
	}

	// Called once per animation frame. Returns true while charts wait for a
	// redraw (the caller schedules another frame).
	draw(now) {
		const t0 = performance.now();
		const n = this.order.length;
		const every = this.interval();
		let waiting = false;
		let made = 0;
		for (let k = 0; k < n; k++) {
			const it = this.order[(this.next + k) % n];
			if (!this.visible.has(it)) continue;
			if (!it.u) {
				if (made >= CREATE_PER_FRAME) {
					waiting = true;
					continue;
				}
				this.create(it);
				made++;
				continue;
			}
			if (it.resize) {
				it.resize = false;
				it.u.setSize({ width: Math.max(120, it.el.clientWidth), height: Math.max(60, it.el.clientHeight) });
			}
			if (it.drawnV === it.c.trace.v) continue;
			if (now - it.drawnAt < every) {
				waiting = true;
				continue;
			}
			if (performance.now() - t0 > FRAME_BUDGET_MS) {
				this.next = (this.next + k) % n;
				return true;
			}
			it.drawnV = it.c.trace.v;
			it.drawnAt = now;
			const d0 = performance.now();
			it.u.setData(it.c.trace.data());
			this.costMs += (performance.now() - d0 - this.costMs) * 0.05;
			this.draws++;
		}
		return waiting;
	}
}

function yMax(c, target) {
	let m = Math.max(c.trace.max(), target === null ? 0 : target * 1.1);
	const lop = c.state && typeof c.state.lop_mmHg === 'number' ? c.state.lop_mmHg : 0;
	if (lop > m) m = lop;
	return Math.max(100, Math.ceil((m * 1.1) / 50) * 50);
}

// The target ±10 % as a band, with the target itself dashed, under the trace.
function drawBand(u, target) {
	if (target === null) return;
	const ctx = u.ctx;
	const { left, width } = u.bbox;
	const r = uPlot.pxRatio;
	const hi = Math.round(u.valToPos(target * 1.1, 'y', true));
	const lo = Math.round(u.valToPos(target * 0.9, 'y', true));
	const y = Math.round(u.valToPos(target, 'y', true));
	ctx.save();
	ctx.fillStyle = css('--band', 'rgba(156, 204, 101, 0.18)');
	ctx.fillRect(left, hi, width, lo - hi);
	ctx.strokeStyle = css('--target', '#9ccc65');
	ctx.lineWidth = r;
	ctx.setLineDash([4 * r, 3 * r]);
	ctx.beginPath();
	ctx.moveTo(left, y);
	ctx.lineTo(left + width, y);
	ctx.stroke();
	ctx.restore();
}

// The limb occlusion pressure as a dashed line with its label.
function drawLop(u, c) {
	const lop = c.state && typeof c.state.lop_mmHg === 'number' ? c.state.lop_mmHg : null;
	if (lop === null) return;
	const y = Math.round(u.valToPos(lop, 'y', true));
	const ctx = u.ctx;
	const { left, width } = u.bbox;
	ctx.save();
	ctx.strokeStyle = css('--lop', '#ef9a9a');
	ctx.lineWidth = 1 * uPlot.pxRatio;
	ctx.setLineDash([6 * uPlot.pxRatio, 4 * uPlot.pxRatio]);
	ctx.beginPath();
	ctx.moveTo(left, y);
	ctx.lineTo(left + width, y);
	ctx.stroke();
	ctx.fillStyle = css('--lop', '#ef9a9a');
	ctx.font = `${10 * uPlot.pxRatio}px system-ui, sans-serif`;
	ctx.fillText('LOP', left + 4 * uPlot.pxRatio, y - 3 * uPlot.pxRatio);
	ctx.restore();
}
