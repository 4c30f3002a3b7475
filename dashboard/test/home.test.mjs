// Unit tests of the page's model for home gateways (docs/dashboard.md, "Home
// gateways"): the bridge state at the clinic broker ("1"/"0", not JSON), the
// staleness it causes, the link's drops, the backlog, the prescription in
// force and the latest home/event (src/store.js, src/view.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClean } from './clean.mjs';
import { Store, parseTopic, DROPS_WINDOW_MS } from '../src/store.js';
import { cuffView, homeView, prescriptionView, homeEventView } from '../src/view.js';

const P = 'bfr/v1/clinic-a/home-0042';
const GW = 'clinic-a/home-0042';
const T0 = Date.parse('2026-11-24T09:30:00.000Z');
let n = 0;
const msg = (o) => JSON.stringify({ v: 1, ts: '2026-11-24T09:30:00.000Z', msg_id: `h-${++n}`, ...o });
const RX = {
	plan: { exercises: [{ name: 'knee extension', cuffs: ['home-left-thigh'], pct_lop: 50, mode: 'continuous',
		sets: [30, 15, 15, 15], tempo_s: [2, 2], rest_s: 30, reperfusion_s: 60 }] },
	patient: 'p-0042', valid_from: '2026-11-24T07:00:00.000Z', valid_until: '2026-12-22T19:00:00.000Z',
	max_per_day: 2, min_hours_between: 6, supervision: 'remote', set_at: '2026-11-24T07:00:01.018Z',
	request_id: 'rx-1',
};

// A home gateway that is online, with one live cuff, its bridge up (a live
// change, not a retained one).
function home(s, now = T0) {
	s.setConnected(true, now);
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 0 }), now);
	s.handle(`${P}/bridge`, '1', now);
	s.handle(`${P}/cuff/home-left-thigh/state`, msg({ cuff: 'home-left-thigh', link: 'connected' }), now);
	return s.cuffs.get(`${GW}/home-left-thigh`);
}

test('topics: bridge, prescription and home/event are a home gateway\'s', () => {
	assert.deepEqual(parseTopic(`${P}/bridge`), { site: 'clinic-a', gw: 'home-0042', kind: 'bridge', id: null });
	assert.equal(parseTopic(`${P}/prescription`).kind, 'prescription');
	assert.equal(parseTopic(`${P}/home/event`).kind, 'home-event');
	assert.equal(parseTopic(`${P}/home/other`), null);
	assert.equal(parseTopic(`${P}/bridge/x`), null);
	assert.equal(parseTopic(`${P}/supervisor`), null);
});

test('bridge: "1" up, "0" down, empty unknown, anything else changes nothing', () => {
	const s = new Store();
	s.setConnected(true, T0);
	assert.equal(s.handle(`${P}/bridge`, '1', T0), true);
	const g = s.gateways.get(GW);
	assert.equal(g.home, true);
	assert.equal(g.bridge, true);
	assert.equal(s.handle(`${P}/bridge`, new TextEncoder().encode('0'), T0 + 10), true);
	assert.equal(g.bridge, false);
	assert.equal(g.bridgeSince, T0 + 10);
	for (const bad of ['2', '10', ' 1', '1\n', 'true', '{"state":"online"}', 'up']) {
		assert.equal(s.handle(`${P}/bridge`, bad, T0 + 20), false, `"${bad}" taken`);
		assert.equal(g.bridge, false);
		assert.equal(g.bridgeSince, T0 + 10);
	}
	assert.equal(s.handle(`${P}/bridge`, '', T0 + 30), true);
	assert.equal(g.bridge, null);
	// a bad payload on an unknown gateway creates nothing
	assert.equal(s.handle('bfr/v1/clinic-a/other/bridge', 'x', T0), false);
	assert.equal(s.gateways.has('clinic-a/other'), false);
	// a clinic gateway never becomes a home one by its other topics
	s.handle('bfr/v1/clinic-a/gw1/status', msg({ state: 'online' }), T0);
	assert.equal(s.gateways.get('clinic-a/gw1').home, false);
});

test('bridge: the same state again is not a change; a retained state says "since before"', () => {
	const s = new Store();
	s.setConnected(true, T0);
	s.handle(`${P}/bridge`, '0', T0, { retained: true });
	const g = s.gateways.get(GW);
	assert.equal(g.bridgeSinceKnown, false);
	s.handle(`${P}/bridge`, '0', T0 + 5000);
	assert.equal(g.bridgeSince, T0, 'a repeated "0" moved the time');
	assert.equal(g.bridgeSinceKnown, false);
	const h = homeView(s, g, T0 + 5000);
	assert.equal(h.link.value, 'down');
	assert.match(h.link.text, /^Link to the home down \(since before \d\d:\d\d:\d\d\)$/);
	s.handle(`${P}/bridge`, '1', T0 + 6000);
	assert.equal(g.bridgeSinceKnown, true);
	assert.match(homeView(s, g, T0 + 6000).link.text, /^Link to the home up since \d\d:\d\d:\d\d$/);
	assert.equal(s.bridgeDrops(g, T0 + 6000), 0, 'a state found retained is not a drop seen');
});

test('staleness: the home link down greys the tiles before anything the gateway said', () => {
	const s = new Store();
	const c = home(s);
	assert.equal(s.staleness(c, T0 + 100), null);
	s.handle(`${P}/bridge`, '0', T0 + 200);
	// The status the clinic retains still says online: the bridge decides.
	assert.equal(s.gateways.get(GW).online, true);
	let st = s.staleness(c, T0 + 300);
	assert.equal(st.reason, 'bridge');
	assert.equal(st.since, T0 + 200);
	s.tick(T0 + 300);
	let v = cuffView(s, c, T0 + 5200);
	assertClean(v);
	assert.equal(v.stale, true);
	assert.equal(v.staleReason, 'bridge');
	assert.match(v.staleText, /^Link to the home down since \d\d:\d\d:\d\d \(5 s\)$/);
	assert.equal(v.link.value, 'unknown', 'a cuff link behind a cut link is not known');
	// also over an offline status (which the home may have sent before the cut)
	s.handle(`${P}/status`, msg({ state: 'offline', version: '0.1.0', cuffs: 1, outbox_depth: 0 }), T0 + 400);
	assert.equal(s.staleness(c, T0 + 500).reason, 'bridge');
	// the page's own connection first
	s.setConnected(false, T0 + 600);
	assert.equal(s.staleness(c, T0 + 600).reason, 'page');
	s.setConnected(true, T0 + 700);
	// back: fresh data and the link up make the tile live again
	s.handle(`${P}/bridge`, '1', T0 + 800);
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 3 }), T0 + 800);
	s.handle(`${P}/cuff/home-left-thigh/state`, msg({ cuff: 'home-left-thigh', link: 'connected' }), T0 + 800);
	assert.equal(s.staleness(c, T0 + 900), null);
	s.tick(T0 + 900);
	v = cuffView(s, c, T0 + 900);
	assert.equal(v.stale, false);
	assert.equal(v.staleReason, '');
	st = s.staleness(c, T0 + 800 + 2001);
	assert.equal(st.reason, 'data', 'without new data a home tile goes grey like any other');
});

test('tick: a gateway section with the link down is drawn again once a second', () => {
	const s = new Store();
	home(s);
	s.handle(`${P}/bridge`, '0', T0);
	const l0 = s.layoutV;
	s.tick(T0 + 100);
	assert.equal(s.layoutV, l0 + 1);
	s.tick(T0 + 400);
	assert.equal(s.layoutV, l0 + 1);
	s.tick(T0 + 1100);
	assert.equal(s.layoutV, l0 + 2);
	s.handle(`${P}/bridge`, '1', T0 + 1200);
	s.handle(`${P}/cuff/home-left-thigh/state`, msg({ cuff: 'home-left-thigh', link: 'connected' }), T0 + 1200);
	s.tick(T0 + 1250);
	const l1 = s.layoutV;
	s.tick(T0 + 2300);
	assert.equal(s.layoutV, l1, 'not redrawn each second with the link up and data live');
});

test('link quality: drops seen within the last hour', () => {
	const s = new Store();
	home(s);
	const g = s.gateways.get(GW);
	for (let i = 0; i < 3; i++) {
		s.handle(`${P}/bridge`, '0', T0 + i * 60000);
		s.handle(`${P}/bridge`, '1', T0 + i * 60000 + 5000);
	}
	assert.equal(s.bridgeDrops(g, T0 + 180000), 3);
	assert.equal(homeView(s, g, T0 + 180000).quality, '3 drops in the last hour');
	assert.equal(s.bridgeDrops(g, T0 + DROPS_WINDOW_MS + 60000), 1);
	assert.equal(homeView(s, g, T0 + DROPS_WINDOW_MS + 60000).quality, '1 drop in the last hour');
	assert.equal(homeView(s, g, T0 + 2 * DROPS_WINDOW_MS).quality, '');
	for (let i = 0; i < 300; i++) {
		s.handle(`${P}/bridge`, '0', T0 + i);
		s.handle(`${P}/bridge`, '1', T0 + i);
	}
	assert.ok(g.bridgeDrops.length <= 100, 'the drop times are bounded');
});

test('backlog: the gateway\'s outbox depth; while the link is down it is not known', () => {
	const s = new Store();
	home(s);
	const g = s.gateways.get(GW);
	let h = homeView(s, g, T0);
	assert.deepEqual(h.backlog, { value: 0, text: 'backlog: none' });
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 1 }), T0);
	assert.equal(homeView(s, g, T0).backlog.text, 'backlog: 1 record not yet sent');
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 250 }), T0);
	h = homeView(s, g, T0);
	assert.deepEqual(h.backlog, { value: 250, text: 'backlog: 250 records not yet sent' });
	s.handle(`${P}/bridge`, '0', T0 + 10);
	h = homeView(s, g, T0 + 10);
	assert.equal(h.backlog.value, null, 'the depth reported before the cut is old news');
	assert.equal(h.backlog.text, 'backlog: not known while the link is down (records wait at the home)');
	assert.equal(h.unreachable, true);
	assert.match(h.stateText, /^UNREACHABLE: link to the home down since .* — nothing below is live$/);
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 'many' }), T0);
	s.handle(`${P}/bridge`, '1', T0 + 20);
	h = homeView(s, g, T0 + 20);
	assert.deepEqual(h.backlog, { value: null, text: 'backlog: —' });
	assertClean(h);
	// back up with the depth the gateway sends on reconnecting
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 12 }), T0 + 30);
	assert.deepEqual(homeView(s, g, T0 + 30).backlog, { value: 12, text: 'backlog: 12 records not yet sent' });
});

test('data age: live, then "no data since" once the newest live message is 2 s old', () => {
	const s = new Store();
	home(s);
	const g = s.gateways.get(GW);
	let h = homeView(s, g, T0 + 1999);
	assert.deepEqual(h.data, { value: 'live', text: 'data live' });
	h = homeView(s, g, T0 + 7000);
	assert.equal(h.data.value, 'late');
	assert.match(h.data.text, /^no data since \d\d:\d\d:\d\d \(7 s\)$/);
	assertClean(h);
	// the bridge state is the brokers', not the gateway's: it is no data
	s.handle(`${P}/bridge`, '1', T0 + 7000);
	assert.equal(homeView(s, g, T0 + 7000).data.value, 'late');
	// telemetry is data
	s.handle(`${P}/cuff/home-left-thigh/telemetry`, msg({ cuff: 'home-left-thigh', samples: [0, 80] }), T0 + 7100);
	assert.equal(homeView(s, g, T0 + 7200).data.value, 'live');
	// what a page finds retained on joining is not live data
	const s2 = new Store();
	s2.setConnected(true, T0);
	s2.handle(`${P}/bridge`, '1', T0, { retained: true });
	s2.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 0 }), T0, { retained: true });
	const h2 = homeView(s2, s2.gateways.get(GW), T0);
	assert.deepEqual(h2.data, { value: 'none', text: 'no live data since the page opened' });
});

test('tick: a home whose data turns late, and then each second, is drawn again', () => {
	const s = new Store();
	home(s);
	s.tick(T0 + 100);
	const l0 = s.layoutV;
	s.tick(T0 + 1900);
	assert.equal(s.layoutV, l0, 'live data: nothing to redraw');
	s.tick(T0 + 2000);
	assert.ok(s.layoutV > l0, 'late: redrawn');
	const l1 = s.layoutV;
	s.tick(T0 + 2500);
	assert.equal(s.layoutV, l1);
	s.tick(T0 + 3000);
	assert.equal(s.layoutV, l1 + 1, 'redrawn once a second while late');
	s.handle(`${P}/cuff/home-left-thigh/state`, msg({ cuff: 'home-left-thigh', link: 'connected' }), T0 + 3100);
	const l2 = s.layoutV;
	s.tick(T0 + 3200);
	assert.equal(s.layoutV, l2 + 1, 'live again: redrawn once');
	s.tick(T0 + 4300);
	assert.equal(s.layoutV, l2 + 1);
});

test('prescription: in force, not yet valid, expired; an empty payload clears it', () => {
	const s = new Store();
	home(s);
	const g = s.gateways.get(GW);
	assert.equal(homeView(s, g, T0).prescription.value, 'none');
	s.handle(`${P}/prescription`, msg(RX), T0);
	let h = homeView(s, g, T0);
	assertClean(h);
	assert.equal(h.prescription.value, 'valid');
	assert.match(h.prescription.text, /^knee extension 30-15-15-15 at 50 % LOP · valid until \d{1,2} \w{3} \d\d:\d\d · up to 2 a day, 6 h apart · remote supervision/);
	assert.equal(h.bayTitle, 'Home · patient p-0042');
	assert.equal(prescriptionView(RX, Date.parse('2026-11-24T06:00:00Z')).value, 'not_yet_valid');
	assert.match(prescriptionView(RX, Date.parse('2026-11-24T06:00:00Z')).text, /not yet valid: from \d{1,2} \w{3} \d\d:\d\d/);
	assert.equal(prescriptionView(RX, Date.parse('2026-12-22T19:00:00Z')).value, 'expired');
	assert.match(prescriptionView({ ...RX, supervision: 'live', min_hours_between: 0 }, T0).text,
		/up to 2 a day · live supervision \(a clinician must watch\)$/);
	const cycle = { ...RX, plan: { exercises: [{ name: 'calf', mode: 'cycle', cycles: 5, on_s: 30, off_s: 10, pct_lop: 40 }] } };
	assert.match(prescriptionView(cycle, T0).text, /^calf 5 cycles at 40 % LOP · /);
	s.handle(`${P}/prescription`, '', T0 + 10);
	h = homeView(s, g, T0 + 10);
	assert.deepEqual(h.prescription, { value: 'none', text: 'No prescription', patient: '' });
	assert.equal(h.bayTitle, 'Home');
});

test('prescription: odd payloads never show undefined/NaN/null', () => {
	for (const rx of [{}, { plan: null }, { plan: { exercises: 'x' } }, { plan: { exercises: [null, 7, {}] } },
		{ ...RX, valid_from: 'soon', valid_until: 12, max_per_day: '2', min_hours_between: null, supervision: 3 },
		{ ...RX, plan: { exercises: [{ name: null, sets: [1, 'x'], pct_lop: 'half' }] }, patient: {} },
		{ ...RX, supervision: 'video_call' }]) {
		const v = prescriptionView(rx, T0);
		assertClean(v);
		assert.ok(v.text.length > 0);
	}
	assert.match(prescriptionView({ ...RX, supervision: 'video_call' }, T0).text, /video call$/);
	const s = new Store();
	s.setConnected(true, T0);
	assert.equal(s.handle(`${P}/prescription`, '[1]', T0), false);
	assert.equal(s.handle(`${P}/prescription`, '{bad', T0), false);
	assert.equal(s.gateways.size, 0);
});

test('home events: newest first, at most 5, in a clinician\'s words with the patient\'s sentence', () => {
	const s = new Store();
	home(s);
	const g = s.gateways.get(GW);
	assert.equal(homeView(s, g, T0).event, null);
	s.handle(`${P}/home/event`, msg({ ts: '2026-11-24T17:02:10.500Z', type: 'start_refused', source: 'button',
		cuff: 'home-left-thigh', code: 'too_soon',
		message: 'Your sessions must be at least 6 hours apart.' }), T0);
	let ev = homeView(s, g, T0).event;
	assertClean(ev);
	assert.equal(ev.value, 'start_refused');
	assert.equal(ev.warn, true);
	assert.match(ev.text, /^\d\d:\d\d:\d\d Start refused with the cuff's button \(home-left-thigh\): too soon after the last one$/);
	assert.equal(ev.message, 'Your sessions must be at least 6 hours apart.');
	s.handle(`${P}/home/event`, msg({ type: 'started', source: 'console', session_id: 's-2',
		message: 'Your session has started.' }), T0 + 1);
	ev = homeView(s, g, T0 + 1).event;
	assert.equal(ev.value, 'started');
	assert.equal(ev.warn, false);
	assert.match(ev.text, /Session started at the home console$/);
	for (let i = 0; i < 10; i++) s.handle(`${P}/home/event`, msg({ type: 'paused', source: 'supervision', code: 'supervisor_absent' }), T0 + 2 + i);
	assert.equal(g.homeEvents.length, 5);
	assert.match(homeView(s, g, T0).event.text, /Session paused: nobody watching by live supervision: no clinician watching$/);
	// a repeated msg_id (QoS 1) is one event
	const m = msg({ type: 'supervisor_back', source: 'supervision' });
	s.handle(`${P}/home/event`, m, T0 + 20);
	assert.equal(s.handle(`${P}/home/event`, m, T0 + 21), false);
	for (const e of [{}, { type: 7, source: [], cuff: {}, code: null, message: 5 }, { type: 'new_kind', source: 'robot' }]) {
		const v = homeEventView(e);
		assertClean(v);
	}
	assert.match(homeEventView({ type: 'new_kind', source: 'robot' }).text, /^new kind by robot$/);
	assert.equal(s.handle(`${P}/home/event`, '', T0), false);
});

test('a home gateway without its bridge state yet: link not known, nothing greyed for it', () => {
	const s = new Store();
	s.setConnected(true, T0);
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 1, outbox_depth: 0 }), T0);
	s.handle(`${P}/prescription`, msg(RX), T0);
	s.handle(`${P}/cuff/home-left-thigh/state`, msg({ cuff: 'home-left-thigh', link: 'connected' }), T0);
	const g = s.gateways.get(GW);
	const h = homeView(s, g, T0);
	assertClean(h);
	assert.equal(g.home, true);
	assert.equal(h.link.value, 'unknown');
	assert.equal(h.unreachable, false);
	assert.equal(s.staleness(s.cuffs.get(`${GW}/home-left-thigh`), T0 + 100), null);
});
