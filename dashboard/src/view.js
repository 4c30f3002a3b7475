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
	fmtDate,
	fmtDuration,
	fmtHomeCode,
	fmtHomeEvent,
	fmtHomeSource,
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
			: stale.reason === 'bridge' ? linkDownText(stale.since, stale.sinceKnown, now)
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
		staleReason: stale ? stale.reason : '',
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

// "Link to the home down since 12:03:45 (5 s)"; a state the page found
// retained when it joined says only that it was so before then.
function linkDownText(since, sinceKnown, now) {
	if (since === null || since === undefined) return 'Link to the home down';
	return sinceKnown === false
		? `Link to the home down (since before ${fmtClock(since)})`
		: `Link to the home down since ${fmtClock(since)} (${fmtAgo(since, now)})`;
}

const SUPERVISION = {
	none: 'no supervision',
	remote: 'remote supervision (reviewed afterwards)',
	live: 'live supervision (a clinician must watch)',
};
const HOME_WARN = new Set(['start_refused', 'supervisor_lost', 'paused']);

// One exercise of a prescribed plan, e.g. "knee extension 30-15-15-15 at 50 % LOP".
function exerciseText(e) {
	if (!e || typeof e !== 'object') return '';
	const name = str(e.name) || 'exercise';
	let what = '';
	if (e.mode === 'cycle') {
		if (num(e.cycles) !== null) what = `${e.cycles} cycles`;
	} else if (Array.isArray(e.sets) && e.sets.length && e.sets.every((x) => num(x) !== null)) {
		what = e.sets.join('-');
	}
	const pct = num(e.pct_lop);
	return [name, what, pct !== null ? `at ${pct} % LOP` : ''].filter(Boolean).join(' ');
}

// The prescription in force (retained `prescription`): its plan, window,
// rules and supervision, and where now is in its window.
export function prescriptionView(rx, now) {
	if (!rx || typeof rx !== 'object') return { value: 'none', text: 'No prescription', patient: '' };
	const exs = rx.plan && Array.isArray(rx.plan.exercises) ? rx.plan.exercises : [];
	const plan = exs.map(exerciseText).filter(Boolean).join('; ') || 'a plan';
	const from = str(rx.valid_from) ? Date.parse(rx.valid_from) : NaN;
	const until = str(rx.valid_until) ? Date.parse(rx.valid_until) : NaN;
	let value = 'valid';
	let window = Number.isFinite(until) ? `valid until ${fmtDate(until)}` : '';
	if (Number.isFinite(from) && now < from) {
		value = 'not_yet_valid';
		window = `not yet valid: from ${fmtDate(from)}`;
	} else if (Number.isFinite(until) && now >= until) {
		value = 'expired';
		window = `expired ${fmtDate(until)}`;
	}
	const perDay = num(rx.max_per_day);
	const gap = num(rx.min_hours_between);
	const rules = [perDay !== null ? `up to ${perDay} a day` : '', gap ? `${gap} h apart` : '']
		.filter(Boolean).join(', ');
	const sup = str(rx.supervision) ? SUPERVISION[rx.supervision] || rx.supervision.replace(/_/g, ' ') : '';
	return {
		value,
		text: [plan, window, rules, sup].filter(Boolean).join(' · '),
		patient: str(rx.patient) || '',
	};
}

// The latest home/event, for the clinician: when, what, how, why, and the
// sentence the patient was shown.
export function homeEventView(e) {
	if (!e) return null;
	const type = str(e.type) || '';
	const how = [fmtHomeSource(e.source), str(e.cuff) ? `(${e.cuff})` : ''].filter(Boolean).join(' ');
	const why = str(e.code) ? `: ${fmtHomeCode(e.code)}` : '';
	return {
		value: type,
		text: `${str(e.ts) ? fmtClock(e.ts) + ' ' : ''}${fmtHomeEvent(type)}${how ? ' ' + how : ''}${why}`,
		message: str(e.message) || '',
		warn: HOME_WARN.has(type),
	};
}

// What a home gateway's section shows besides its tiles (docs/dashboard.md,
// "Home gateways"): the link to the home with since when, its drops in the
// last hour and the age of its data, the backlog, the prescription and the
// latest home event.
export function homeView(store, g, now) {
	let link;
	if (g.bridge === true) {
		link = { value: 'up', text: g.bridgeSinceKnown && g.bridgeSince !== null
			? `Link to the home up since ${fmtClock(g.bridgeSince)}` : 'Link to the home up' };
	} else if (g.bridge === false) {
		link = { value: 'down', text: linkDownText(g.bridgeSince, g.bridgeSinceKnown, now) };
	} else {
		link = { value: 'unknown', text: 'Link to the home not known' };
	}
	const drops = store.bridgeDrops(g, now);
	const quality = drops > 0 ? `${drops} drop${drops > 1 ? 's' : ''} in the last hour` : '';
	// Data age: the newest live message of the gateway's own (receive time,
	// not its `ts`: no clock but the page's). A silent link shows here long
	// before the clinic broker gives the bridge up.
	let data;
	if (!store.dataLate(g, now)) data = { value: 'live', text: 'data live' };
	else if (g.heardAt === null) data = { value: 'none', text: 'no live data since the page opened' };
	else data = { value: 'late', text: `no data since ${fmtClock(g.heardAt)} (${fmtAgo(g.heardAt, now)})` };
	// Backlog: the gateway's outbox (`status` outbox_depth), while the link
	// is up; while it is down the clinic cannot know what waits at the home.
	const depth = g.bridge === false ? null : num((g.status || {}).outbox_depth);
	let backlog;
	if (g.bridge === false) backlog = 'backlog: not known while the link is down (records wait at the home)';
	else if (depth === null) backlog = `backlog: ${DASH}`;
	else backlog = depth === 0 ? 'backlog: none' : `backlog: ${depth} record${depth > 1 ? 's' : ''} not yet sent`;
	const rx = prescriptionView(g.prescription, now);
	const unreachable = g.bridge === false;
	return {
		link,
		quality,
		data,
		backlog: { value: depth, text: backlog },
		prescription: rx,
		event: homeEventView(g.homeEvents[0]),
		unreachable,
		bayTitle: rx.patient ? `Home · patient ${rx.patient}` : 'Home',
		stateText: unreachable
			? `UNREACHABLE: ${linkDownText(g.bridgeSince, g.bridgeSinceKnown, now).replace(/^Link/, 'link')} — nothing below is live`
			: '',
	};
}
