// What a cuff tile shows, as plain text, computed from the store: pure, so the
// unit tests can feed it partial and odd payloads and check that no field
// ever reads "undefined", "null", "NaN" or "None".

import {
	DASH,
	fmtAgo,
	fmtAlarmCode,
	fmtAlarmValues,
	fmtClock,
	fmtCuffState,
	fmtDuration,
	fmtLink,
	fmtNum,
	fmtOf,
	fmtPhase,
	num,
	str,
} from './format.js';
import { bayOf } from './store.js';

const FINAL = new Set(['completed', 'stopped', 'aborted']);

export function alarmView(a, now) {
	const raised = a.raised_at ? Date.parse(a.raised_at) : NaN;
	return {
		key: a.key,
		id: str(a.alarm_id) || DASH,
		priority: ['high', 'medium', 'low'].includes(a.priority) ? a.priority : 'low',
		state: a.state === 'acknowledged' ? 'acknowledged' : 'active',
		title: fmtAlarmCode(a.code),
		message: str(a.message) || '',
		values: fmtAlarmValues(a.values, a.units),
		since: Number.isFinite(raised) ? `since ${fmtClock(raised)} (${fmtAgo(raised, now)})` : '',
		condition: a.condition_present === false ? 'condition gone' : '',
		ackedBy: str(a.acked_by) ? `acknowledged by ${a.acked_by}` : '',
		cuff: str(a.cuff),
		gwKey: a.gwKey,
	};
}

// The cuff's present target: the session's per-cuff target when the gateway
// sends one, else the cuff state's; none while a LOP search runs (an older
// gateway reports the search ceiling there).
export function targetOf(store, c) {
	const st = c.state || {};
	if (st.cuff_state === 'measuring_lop') return null;
	const sess = store.sessionOf(c);
	const ss = sess && store.sessionActive(sess) ? sess.state : null;
	if (ss && ss.phase === 'lop') return null;
	const t = ss && ss.targets && typeof ss.targets === 'object' ? num(ss.targets[c.id]) : null;
	return t !== null ? t : num(st.target_mmHg);
}

// The pressure a tile shows: the sample the page chose to show (c.shown, at
// most 4 a second) when it is newer than the state, else the state's; and
// that pressure in % of the cuff's LOP.
export function livePressure(c) {
	const st = c.state || {};
	let pressure = num(st.pressure_mmHg);
	if (c.shown && (c.stateAt === null || (c.telemAt !== null && c.telemAt >= c.stateAt))) {
		const p = num(c.shown[1]);
		if (p !== null) pressure = p;
	}
	const lop = num(st.lop_mmHg);
	const pctNow = pressure !== null && lop !== null && lop > 0 ? (pressure / lop) * 100 : null;
	return { pressure, pctNow };
}

export function pressureFields(pressure, pctNow) {
	return {
		pressure: { text: fmtNum(pressure, 0), value: pressure },
		pctLop: { text: pctNow === null ? DASH : `${pctNow.toFixed(0)} %`, value: pctNow },
	};
}

export function cuffView(store, c, now) {
	const st = c.state || {};
	const g = store.gateways.get(c.gwKey);
	const sess = store.sessionOf(c);
	const ss = sess && sess.state ? sess.state : null;
	const active = sess ? store.sessionActive(sess) : false;
	const measuring = st.cuff_state === 'measuring_lop';

	const { pressure, pctNow } = livePressure(c);

	const target = targetOf(store, c);
	const lop = num(st.lop_mmHg);
	const prescribed = ss && active ? num(ss.pct_lop) : null;

	let phase;
	let phaseValue;
	if (ss && active) {
		phaseValue = str(ss.phase) || '';
		phase = fmtPhase(ss.phase);
	} else {
		phaseValue = str(st.cuff_state) || '';
		phase = fmtCuffState(st.cuff_state);
	}
	if (measuring) {
		const search = num(st.lop_search_mmHg);
		phase = search !== null ? `Measuring LOP · ${fmtNum(search, 0, 'mmHg')}` : 'Measuring LOP';
	}

	const phaseLeft = ss && active ? (num(ss.phase_left_s) ?? num(ss.seconds_left)) : null;
	const sessionLeft = ss && active ? num(ss.session_left_s) : null;
	let timeLeft = DASH;
	if (phaseLeft !== null) timeLeft = `${fmtDuration(phaseLeft)} left`;
	if (ss && active && ss.phase === 'paused' && str(ss.resume_at)) {
		timeLeft = `paused · resume from ${fmtClock(ss.resume_at)}`;
	}
	const battery = num(st.battery_pct);
	const stale = c.stale;
	let staleText = '';
	if (stale) {
		const since = stale.since !== null && stale.since !== undefined
			? ` since ${fmtClock(stale.since)} (${fmtAgo(stale.since, now)})` : '';
		staleText = stale.reason === 'page' ? `Not connected to the broker${since}`
			: stale.reason === 'gateway' ? `Gateway offline${since}`
			: stale.since === null ? 'No data yet' : `No data${since}`;
	}
	const lopAt = str(st.lop_measured_at);
	// The last session of an idle cuff: how it ended, and why.
	let endedText = '';
	const last = active ? null : store.lastSessionOf(c);
	if (last && last.state && FINAL.has(last.state.phase)) {
		const sm = last.summary || {};
		endedText = `Last session ${fmtPhase(last.state.phase).toLowerCase()}`;
		const reason = str(sm.reason);
		if (reason && reason !== 'stopped') endedText += `: ${fmtAlarmCode(reason)}`;
		const by = str(sm.by) || str(sm.stopped_by);
		if (by) endedText += ` (by ${by})`;
		if (str(last.state.ts)) endedText += ` at ${fmtClock(last.state.ts)}`;
	}

	return {
		key: c.key,
		id: c.id,
		label: str(st.label) || c.id,
		bay: bayOf(c.id),
		gwKey: c.gwKey,
		gateway: g ? g.gw : '',
		serial: [str(st.model), str(st.serial) ? `S/N ${st.serial}` : null, str(st.firmware) ? `FW ${st.firmware}` : null]
			.filter(Boolean).join(' · '),
		limb: str(st.limb) || '',
		...pressureFields(pressure, pctNow),
		// 0 is "deflated, no target": shown as a dash, not as a target of 0 mmHg.
		target: { text: target !== null && target > 0 ? fmtNum(target, 0) : DASH, value: target },
		prescribed: prescribed === null ? '' : `prescribed ${prescribed.toFixed(0)} %`,
		lop: lop === null ? 'LOP not measured' : `LOP ${lop.toFixed(0)} mmHg${lopAt ? ' · ' + fmtClock(lopAt) : ''}`,
		lopValue: lop,
		phase: { text: phase, value: phaseValue },
		exercise: ss && active ? (str(ss.exercise) || '') : '',
		patient: ss && active ? (str(ss.patient) || store.sentPatient.get(sess.key) || '') : '',
		set: { text: ss && active ? fmtOf(ss.set, ss.n_sets) : DASH, value: ss && active ? num(ss.set) : null },
		rep: { text: ss && active ? fmtOf(ss.rep, ss.n_reps) : DASH, value: ss && active ? num(ss.rep) : null },
		// "exercise 2 of 3" only with the plan's total: "exercise 1" alone says little.
		exerciseOf: ss && active && num(ss.exercise_index) !== null && num(ss.n_exercises) !== null
			? fmtOf(ss.exercise_index + 1, ss.n_exercises) : '',
		timeLeft: { text: timeLeft, value: phaseLeft },
		sessionLeft: sessionLeft === null ? '' : `session ${fmtDuration(sessionLeft)} left`,
		battery: { text: fmtNum(battery, 0, '%'), value: battery, low: battery !== null && battery < 20 },
		// A link reported by a gateway that is gone is not known any more.
		link: stale && stale.reason !== 'data'
			? { text: fmtLink('unknown'), value: 'unknown' }
			: { text: fmtLink(st.link), value: str(st.link) || '' },
		linkError: str(st.link_error) || '',
		stale: !!stale,
		staleText,
		sessionId: sess && active ? sess.id : null,
		sessionPhase: ss && active ? str(ss.phase) : null,
		inSession: !!(sess && active),
		paused: !!(ss && active && ss.phase === 'paused'),
		ended: endedText,
		measuring,
		idle: !sess || !active,
		alarms: store.alarmsOfCuff(c).map((a) => alarmView(a, now)),
	};
}
