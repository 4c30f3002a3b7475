// Entry point: wires the store, the MQTT connection, the charts and the page,
// and runs the frame loop: MQTT messages only change the store and ask for a
// frame; each animation frame renders what changed once (DOM) and redraws
// the charts within a time budget (charts.js).

import { h, render } from 'preact';
import { Store } from './store.js';
import { Conn, brokerUrl, topicFilters } from './conn.js';
import { Charts } from './charts.js';
import { Tone } from './audio.js';
import { App } from './ui.js';
import { makeActions } from './actions.js';
import { livePressure, pressureFields } from './view.js';

const PRESSURE_SHOW_MS = 250; // the pressure number changes at most 4 times a second
const TICK_MS = 250; // staleness and countdowns

const store = new Store();
const ui = { dialog: null, reply: null, sound: false, ackBy: '' };
try {
	ui.ackBy = localStorage.getItem('bfr.ackBy') || '';
} catch {
	ui.ackBy = '';
}

const app = {
	store,
	ui,
	charts: new Charts(),
	tone: new Tone(),
	redraw: () => {
		uiDirty = true;
		requestFrame();
	},
	toggleSound() {
		ui.sound = !ui.sound;
		app.tone.enable(ui.sound);
		requestFrame();
	},
	// Figures for the benchmark and for debugging (not a contract).
	stats: { frames: 0, renders: 0 },
};
app.conn = new Conn(store, {
	url: brokerUrl(window.location),
	filters: (token) => topicFilters(window.location, token),
	onChange: () => app.redraw(),
	onData: () => requestFrame(),
});
app.act = makeActions(app);
app.charts.onWant = () => requestFrame(); // a chart came on screen: make it in a frame

const root = document.getElementById('app');
root.textContent = ''; // the "Loading" line: preact renders into an empty element
let frameAsked = false;
let lastLayout = -1;
let lastAlarms = -1;
let uiDirty = true;

function requestFrame() {
	if (!frameAsked) {
		frameAsked = true;
		requestAnimationFrame(frame);
	}
}

// Changes the text node in place (textContent would make a new node each time).
function setText(el, text) {
	const t = el.firstChild;
	if (t && t.nodeType === 3 && !t.nextSibling) {
		if (t.nodeValue !== text) t.nodeValue = text;
	} else {
		el.textContent = text;
	}
}

// A new pressure goes straight into the tile's two elements; the tile
// re-renders only for everything else (preact would diff the whole tile).
function showPressure(c) {
	const e = c.els;
	if (!e || !e.pressure || !e.pctLop || !e.pressure.isConnected) {
		store.dirty.add(c.key);
		return;
	}
	const { pressure, pctNow } = livePressure(c);
	const f = pressureFields(pressure, pctNow);
	setText(e.pressure, f.pressure.text);
	e.pressure.dataset.value = f.pressure.value ?? '';
	setText(e.pctLop, f.pctLop.text);
	e.pctLop.dataset.value = f.pctLop.value ?? '';
}

function frame() {
	frameAsked = false;
	app.stats.frames++;
	const now = Date.now();
	for (const k of store.pressureDirty) {
		const c = store.cuffs.get(k);
		if (!c) {
			store.pressureDirty.delete(k);
			continue;
		}
		if (c.shownAt === undefined || now - c.shownAt >= PRESSURE_SHOW_MS) {
			c.shown = c.sample;
			c.shownAt = now;
			store.pressureDirty.delete(k);
			showPressure(c);
		}
	}
	const dirty = store.dirty.size > 0;
	if (dirty || uiDirty || lastLayout !== store.layoutV || lastAlarms !== store.alarmsV) {
		store.takeDirty();
		lastLayout = store.layoutV;
		lastAlarms = store.alarmsV;
		uiDirty = false;
		render(h(App, { app }), root);
		app.stats.renders++;
	}
	if (app.charts.draw(now) || store.pressureDirty.size > 0) requestFrame();
}

setInterval(() => {
	const now = Date.now();
	store.tick(now);
	const alarms = store.bannerAlarms();
	let top = alarms.length ? 'high' : null;
	if (!top) {
		for (const a of store.alarms.values()) {
			if (a.priority === 'medium' && a.state === 'active') top = 'medium';
		}
	}
	app.tone.update(top, now);
	if (store.dirty.size) requestFrame();
}, TICK_MS);

window.bfrDashboard = app;
app.conn.connect();
requestFrame();
