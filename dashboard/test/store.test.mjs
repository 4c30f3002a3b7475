// Unit tests of the page's model and text (node --test; no browser, no npm
// packages needed): src/store.js, src/view.js, src/format.js, src/plans.js.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClean } from './clean.mjs';
import { Store, Trace, parseTopic, bayOf, STALE_MS } from '../src/store.js';
import { cuffView, alarmView, targetOf } from '../src/view.js';
import { fmtAlarmValues, fmtDuration, fmtNum, fmtOf } from '../src/format.js';
import { TEMPLATES, formFromTemplate, planFromForm, planFromJson } from '../src/plans.js';

const P = 'bfr/v1/clinic-a/gw1';
const T0 = 1_700_000_000_000;
let n = 0;
const msg = (o) => JSON.stringify({ v: 1, ts: '2026-11-24T09:30:00.000Z', msg_id: `m-${++n}`, ...o });

function online(s, now = T0) {
	s.setConnected(true, now);
	s.handle(`${P}/status`, msg({ state: 'online', version: '0.1.0', cuffs: 2, outbox_depth: 0 }), now);
}

test('topics: every kind the page uses, nothing else', () => {
	assert.deepEqual(parseTopic(`${P}/cuff/c1/state`), { site: 'clinic-a', gw: 'gw1', kind: 'cuff-state', id: 'c1' });
	assert.equal(parseTopic(`${P}/session/s1/summary`).kind, 'session-summary');
	assert.equal(parseTopic(`${P}/alarm/a1`).id, 'a1');
	assert.equal(parseTopic(`${P}/sessions`).kind, 'sessions');
	assert.equal(parseTopic(`${P}/reply/dash-1/r2`).kind, 'reply');
	assert.equal(parseTopic('bfr/v2/x/y/status'), null);
	assert.equal(parseTopic(`${P}/cuff/c1/other`), null);
	assert.equal(parseTopic(`${P}/cmd/estop`), null);
});

test('a duplicate msg_id is applied once; reconnecting forgets the ids', () => {
	const s = new Store();
	online(s);
	const m = msg({ cuff: 'c1', link: 'connected', battery_pct: 80 });
	assert.equal(s.handle(`${P}/cuff/c1/state`, m, T0), true);
	assert.equal(s.handle(`${P}/cuff/c1/state`, m, T0), false);
	s.setConnected(false, T0 + 1);
	s.setConnected(true, T0 + 2);
	assert.equal(s.handle(`${P}/cuff/c1/state`, m, T0 + 3), true);
});

test('bad payloads change nothing', () => {
	const s = new Store();
	online(s);
	assert.equal(s.handle(`${P}/cuff/c1/state`, '{not json', T0), false);
	assert.equal(s.handle(`${P}/cuff/c1/state`, '[1,2]', T0), false);
	assert.equal(s.handle(`${P}/cuff/c1/telemetry`, msg({ cuff: 'c1', samples: 'x' }), T0), false);
	assert.equal(s.cuffs.size, 0);
});

test('a cuff state with only the required fields shows dashes, never undefined/NaN/null', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connecting' }), T0);
	const c = s.cuffs.get('clinic-a/gw1/c1');
	const v = cuffView(s, c, T0);
	assertClean(v);
	assert.equal(v.pressure.text, '—');
	assert.equal(v.battery.text, '—');
	assert.equal(v.lop, 'LOP not measured');
	assert.equal(v.label, 'c1');
});

test('odd values (strings, NaN-like, objects) never leak into the text', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({
		cuff: 'c1', link: 42, pressure_mmHg: 'high', target_mmHg: {}, battery_pct: null,
		lop_mmHg: [], label: null, serial: 7, cuff_state: null, session_id: 12, alarms_active: 'x',
	}), T0);
	assertClean(cuffView(s, s.cuffs.get('clinic-a/gw1/c1'), T0));
});

test('the lead fields are used when present: label, serial, session totals, targets, time left', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({
		cuff: 'c1', link: 'connected', pressure_mmHg: 151.8, target_mmHg: 152, battery_pct: 87,
		lop_mmHg: 190, lop_measured_at: '2026-11-24T09:12:00.000Z', session_id: 's1', alarms_active: [],
		cuff_state: 'holding', limb: 'leg', label: 'Bay 1 left thigh', serial: 'SIM-1', model: 'BFR-1',
		firmware: '1.2',
	}), T0);
	s.handle(`${P}/session/s1/state`, msg({
		session_id: 's1', phase: 'set', exercise_index: 0, exercise: 'knee extension', set: 2, rep: 12,
		seconds_left: 73, inflation_s_total: 40, cuffs: ['c1'], patient: 'p-0042', n_exercises: 3,
		n_sets: 4, n_reps: 15, pct_lop: 80, targets: { c1: 152 }, phase_left_s: 73, session_left_s: 760,
	}), T0);
	const v = cuffView(s, s.cuffs.get('clinic-a/gw1/c1'), T0);
	assertClean(v);
	assert.equal(v.label, 'Bay 1 left thigh');
	assert.equal(v.set.text, '2 of 4');
	assert.equal(v.rep.text, '12 of 15');
	assert.equal(v.exerciseOf, '1 of 3');
	assert.equal(v.patient, 'p-0042');
	assert.equal(v.prescribed, 'prescribed 80 %');
	assert.equal(v.pctLop.text, '80 %');
	assert.equal(v.timeLeft.text, '1:13 left');
	assert.equal(v.sessionLeft, 'session 12:40 left');
	assert.match(v.serial, /S\/N SIM-1/);
});

test('today\'s gateway (no totals): set and rep without "of n"', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected', session_id: 's1' }), T0);
	s.handle(`${P}/session/s1/state`, msg({
		session_id: 's1', phase: 'rest', exercise_index: 0, exercise: 'squat', set: 1, rep: 30,
		seconds_left: 20, inflation_s_total: 60, cuffs: ['c1'],
	}), T0);
	const v = cuffView(s, s.cuffs.get('clinic-a/gw1/c1'), T0);
	assertClean(v);
	assert.equal(v.set.text, '1');
	assert.equal(v.rep.text, '30');
	assert.equal(v.phase.text, 'Rest');
	assert.equal(v.sessionLeft, '');
});

test('during LOP search no target is shown, the search pressure is', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({
		cuff: 'c1', link: 'connected', cuff_state: 'measuring_lop', target_mmHg: 250,
		lop_search_mmHg: 132.4, pressure_mmHg: 131,
	}), T0);
	const v = cuffView(s, s.cuffs.get('clinic-a/gw1/c1'), T0);
	assert.equal(v.target.text, '—');
	assert.equal(v.phase.text, 'Measuring LOP · 132 mmHg');
	assertClean(v);
});

test('staleness: data older than 2 s, gateway offline, link unknown, page offline', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected' }), T0);
	const c = s.cuffs.get('clinic-a/gw1/c1');
	assert.equal(s.staleness(c, T0 + STALE_MS), null);
	assert.equal(s.staleness(c, T0 + STALE_MS + 1).reason, 'data');
	s.handle(`${P}/cuff/c1/telemetry`, msg({ cuff: 'c1', samples: [[1000, 10, 0, 1]] }), T0 + 3000);
	assert.equal(s.staleness(c, T0 + 4000), null);
	// data_age_ms: a state re-published with old data is stale at once
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected', data_age_ms: 5000 }), T0 + 9000);
	assert.equal(s.staleness(c, T0 + 9000).reason, 'data');
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'unknown' }), T0 + 9100);
	assert.equal(s.staleness(c, T0 + 9100).reason, 'gateway');
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected' }), T0 + 9200);
	s.handle(`${P}/status`, msg({ state: 'offline', version: '0.1.0', cuffs: 2, outbox_depth: 0 }), T0 + 9300);
	const st = s.staleness(c, T0 + 9300);
	assert.equal(st.reason, 'gateway');
	assert.equal(st.since, T0 + 9300);
	s.tick(T0 + 9300);
	const v = cuffView(s, c, T0 + 12300);
	assert.equal(v.stale, true);
	assert.match(v.staleText, /^Gateway offline since \d\d:\d\d:\d\d \(3 s\)$/);
	assert.equal(v.link.value, 'unknown');
	s.setConnected(false, T0 + 9400);
	assert.equal(s.staleness(c, T0 + 9400).reason, 'page');
});

test('tick marks a tile dirty when it turns stale, and once a second while stale', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected' }), T0);
	s.tick(T0 + 100);
	s.takeDirty();
	s.tick(T0 + 500);
	assert.equal(s.takeDirty().size, 0);
	s.tick(T0 + 2500);
	assert.equal(s.takeDirty().size, 1);
	s.tick(T0 + 2600);
	assert.equal(s.takeDirty().size, 0);
	s.tick(T0 + 3600);
	assert.equal(s.takeDirty().size, 1);
});

test('alarms: record, listed on the cuff, banner for active high only, empty payload removes', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected', alarms_active: ['a1'] }), T0);
	const rec = {
		alarm_id: 'a1', cuff: 'c1', session_id: null, code: 'over_pressure_ceiling', priority: 'high',
		kind: 'physiological', state: 'active', condition_present: false, raised_at: '2026-11-24T09:33:05.688Z',
		acked_at: null, acked_by: null, cleared_at: null, message: 'cuff above 250 mmHg ceiling for 1.2 s — deflated',
		values: { pressure_mmHg: 262.4, limit: 250, duration_s: 1.2 }, units: { pressure_mmHg: 'mmHg', limit: 'mmHg', duration_s: 's' },
	};
	s.handle(`${P}/alarm/a1`, msg(rec), T0);
	s.handle(`${P}/alarm/a2`, msg({ ...rec, alarm_id: 'a2', cuff: null, code: 'outbox_full', priority: 'medium' }), T0);
	const c = s.cuffs.get('clinic-a/gw1/c1');
	assert.deepEqual(s.alarmsOfCuff(c).map((a) => a.alarm_id), ['a1']);
	assert.deepEqual(s.gatewayAlarms(s.gateways.get('clinic-a/gw1')).map((a) => a.alarm_id), ['a2']);
	assert.deepEqual(s.bannerAlarms().map((a) => a.alarm_id), ['a1']);
	const av = alarmView(s.alarmsOfCuff(c)[0], T0);
	assert.equal(av.values, 'pressure 262.4 mmHg, limit 250 mmHg, for 1.2 s');
	assert.equal(av.condition, 'condition gone');
	s.handle(`${P}/alarm/a1`, msg({ ...rec, state: 'acknowledged', acked_by: 'anna' }), T0);
	assert.equal(s.bannerAlarms().length, 0);
	assert.equal(alarmView(s.alarmsOfCuff(c)[0], T0).ackedBy, 'acknowledged by anna');
	s.handle(`${P}/alarm/a1`, '', T0);
	assert.equal(s.alarmsOfCuff(c).length, 0);
});

test('alarm values: units from the gateway, implied by the key, or {value, unit}', () => {
	assert.equal(fmtAlarmValues({ limit: 80 }, { limit: '%' }), 'limit 80 %');
	assert.equal(fmtAlarmValues({ limit: 250 }), 'limit 250');
	assert.equal(fmtAlarmValues({ target_mmHg: 152 }), 'target 152 mmHg');
	assert.equal(fmtAlarmValues({ limit: { value: 250, unit: 'mmHg' } }), 'limit 250 mmHg');
	assert.equal(fmtAlarmValues({ x: null, y: 'a' }), 'y a');
	assert.equal(fmtAlarmValues(null), '');
});

test('ended session: the idle cuff says how the last one ended', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected', session_id: null }), T0);
	s.handle(`${P}/session/s1/state`, msg({ session_id: 's1', phase: 'aborted', cuffs: ['c1'], set: 1, rep: 3 }), T0);
	s.handle(`${P}/session/s1/summary`, msg({ session_id: 's1', outcome: 'aborted', reason: 'over_pressure_ceiling', by: 'anna' }), T0);
	const v = cuffView(s, s.cuffs.get('clinic-a/gw1/c1'), T0);
	assert.equal(v.inSession, false);
	assert.match(v.ended, /^Last session aborted: Pressure above the ceiling \(by anna\)/);
	assertClean(v);
});

test('the sessions index decides which sessions are active', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected', session_id: 's1' }), T0);
	s.handle(`${P}/session/s1/state`, msg({ session_id: 's1', phase: 'set', cuffs: ['c1'] }), T0);
	const c = s.cuffs.get('clinic-a/gw1/c1');
	assert.equal(cuffView(s, c, T0).inSession, true);
	s.handle(`${P}/sessions`, msg({ active: [] }), T0);
	assert.equal(cuffView(s, c, T0).inSession, false);
});

test('trace: contiguous views, window, capacity, clock going back', () => {
	const t = new Trace(8, 30);
	for (let i = 0; i < 12; i++) t.push(i, i * 10);
	const [x, p] = t.data();
	assert.deepEqual([...x], [4, 5, 6, 7, 8, 9, 10, 11]);
	assert.equal(p[7], 110);
	assert.equal(t.max(), 110);
	t.push(100, 1); // beyond the window: older samples leave
	assert.deepEqual([...t.data()[0]], [100]);
	assert.equal(t.push(100, 2), false); // repeated time dropped
	assert.equal(t.push(97, 2), false); // slightly out of order: dropped
	t.push(10, 3); // clock went back by more than 5 s: a new trace
	assert.deepEqual([...t.data()[0]], [10]);
	assert.equal(t.lastX(), 10);
});

test('target: none during a LOP search or the lop phase; the session\'s per-cuff target first', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected', session_id: 's1', target_mmHg: 100 }), T0);
	s.handle(`${P}/session/s1/state`, msg({ session_id: 's1', phase: 'lop', cuffs: ['c1'] }), T0);
	const c = s.cuffs.get('clinic-a/gw1/c1');
	assert.equal(targetOf(s, c), null);
	s.handle(`${P}/session/s1/state`, msg({ session_id: 's1', phase: 'set', cuffs: ['c1'], targets: { c1: 96 } }), T0);
	assert.equal(targetOf(s, c), 96);
	s.handle(`${P}/session/s1/state`, msg({ session_id: 's1', phase: 'set', cuffs: ['c1'] }), T0);
	assert.equal(targetOf(s, c), 100);
});

test('a patient this page sent is shown while the session state has none', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/state`, msg({ cuff: 'c1', link: 'connected', session_id: 's1' }), T0);
	s.handle(`${P}/session/s1/state`, msg({ session_id: 's1', phase: 'set', cuffs: ['c1'] }), T0);
	s.sentPatient.set('clinic-a/gw1/s1', 'p-7');
	assert.equal(cuffView(s, s.cuffs.get('clinic-a/gw1/c1'), T0).patient, 'p-7');
	s.handle(`${P}/session/s1/state`, msg({ session_id: 's1', phase: 'set', cuffs: ['c1'], patient: 'p-8' }), T0);
	assert.equal(cuffView(s, s.cuffs.get('clinic-a/gw1/c1'), T0).patient, 'p-8');
});

test('telemetry: invalid samples are gaps; the newest sample is kept', () => {
	const s = new Store();
	online(s);
	s.handle(`${P}/cuff/c1/telemetry`, msg({ cuff: 'c1', samples: [[1000, 10, 0, 1], [1020, null, 0, null], [1040, 12.5, 0, 1]] }), T0);
	const c = s.cuffs.get('clinic-a/gw1/c1');
	assert.equal(c.trace.n, 2);
	assert.deepEqual(c.sample, [1040, 12.5, 0, 1]);
	assert.ok(s.pressureDirty.has(c.key));
});

test('bays from cuff ids', () => {
	assert.equal(bayOf('bay1-left-thigh'), 'bay1');
	assert.equal(bayOf('cuff-01'), null);
	assert.equal(bayOf('solo'), null);
});

test('format helpers', () => {
	assert.equal(fmtNum(undefined), '—');
	assert.equal(fmtNum(NaN), '—');
	assert.equal(fmtNum(151.84, 1, 'mmHg'), '151.8 mmHg');
	assert.equal(fmtDuration(73), '1:13');
	assert.equal(fmtDuration(3725), '1:02:05');
	assert.equal(fmtDuration(null), '—');
	assert.equal(fmtOf(2, undefined), '2');
	assert.equal(fmtOf(null, 4), '—');
});

test('plans: every template makes a well-formed plan; bad form input is named', () => {
	for (const tpl of TEMPLATES) {
		const f = formFromTemplate(tpl, ['c1'], 'leg');
		const { body, errors } = planFromForm(f);
		assert.deepEqual(errors, [], tpl.id);
		const e = body.plan.exercises[0];
		assert.deepEqual(e.cuffs, ['c1']);
		if (e.mode === 'cycle') assert.ok(!('sets' in e) && e.cycles > 0);
		else assert.ok(!('cycles' in e) && e.sets.length > 0);
	}
	const f = formFromTemplate(TEMPLATES[0], [], 'arm');
	assert.equal(f.pct_lop, '50');
	f.sets = '30, x';
	f.patient = 'has space';
	const { errors } = planFromForm(f);
	assert.ok(errors.some((e) => e.startsWith('sets: "x"')));
	assert.ok(errors.some((e) => e.startsWith('choose one cuff')));
	assert.ok(errors.some((e) => e.startsWith('patient:')));
	assert.deepEqual(planFromJson('{"exercises": []}').body, { plan: { exercises: [] } });
	assert.match(planFromJson('{').errors[0], /^not valid JSON/);
	assert.match(planFromJson('[]').errors[0], /object/);
	assert.equal(planFromJson('{"plan": {"exercises": []}, "request_id": "x"}').body.request_id, undefined);
});
