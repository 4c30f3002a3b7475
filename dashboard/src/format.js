// Text for the page. Every value the gateway sends may be null (not known now)
// or absent (an older gateway); every function here turns such a value into
// DASH, so the page never shows "undefined", "null", "NaN" or "None".

export const DASH = '—';

export function known(v) {
	return v !== null && v !== undefined && !(typeof v === 'number' && !Number.isFinite(v));
}

export function num(v) {
	return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function str(v) {
	return typeof v === 'string' && v.length > 0 ? v : null;
}

// A number rounded to `digits` decimals with its unit, or DASH.
export function fmtNum(v, digits = 0, unit = '') {
	const n = num(v);
	if (n === null) return DASH;
	const s = n.toFixed(digits);
	return unit ? `${s} ${unit}` : s;
}

export function fmtMmHg(v) {
	return fmtNum(v, 0, 'mmHg');
}

// Seconds as m:ss (or h:mm:ss), DASH when unknown.
export function fmtDuration(s) {
	const n = num(s);
	if (n === null || n < 0) return DASH;
	const t = Math.ceil(n);
	const h = Math.floor(t / 3600);
	const m = Math.floor((t % 3600) / 60);
	const sec = t % 60;
	const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
	return `${h > 0 ? h + ':' : ''}${mm}:${String(sec).padStart(2, '0')}`;
}

// Wall-clock time of day (local) of an epoch-ms time or an RFC 3339 string.
export function fmtClock(t) {
	const ms = typeof t === 'string' ? Date.parse(t) : num(t);
	if (ms === null || !Number.isFinite(ms)) return DASH;
	const d = new Date(ms);
	const p = (x) => String(x).padStart(2, '0');
	return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// "5 s", "3 min", "2 h" since epoch-ms `t`.
export function fmtAgo(t, now) {
	const ms = num(t);
	if (ms === null) return DASH;
	const s = Math.max(0, Math.round((now - ms) / 1000));
	if (s < 120) return `${s} s`;
	if (s < 7200) return `${Math.round(s / 60)} min`;
	return `${Math.round(s / 3600)} h`;
}

// "i of n", "i" when n is unknown, DASH when i is unknown.
export function fmtOf(i, n) {
	const a = num(i);
	if (a === null) return DASH;
	const b = num(n);
	return b === null ? String(a) : `${a} of ${b}`;
}

const PHASES = {
	lop: 'Measuring LOP',
	inflating: 'Inflating',
	set: 'Exercise set',
	rest: 'Rest',
	deflating: 'Deflating',
	reperfusion: 'Reperfusion',
	paused: 'Paused',
	completed: 'Completed',
	stopped: 'Stopped',
	aborted: 'Aborted',
};

const CUFF_STATES = {
	idle: 'Idle',
	inflating: 'Inflating',
	holding: 'Holding',
	deflating: 'Deflating',
	measuring_lop: 'Measuring LOP',
	fault: 'Cuff fault',
};

const LINKS = {
	connected: 'connected',
	connecting: 'connecting…',
	disconnected: 'disconnected',
	error: 'link error',
	unknown: 'unknown',
};

// Unknown words are shown as they came (a newer gateway), with _ as spaces.
function word(table, v) {
	const s = str(v);
	if (s === null) return DASH;
	return table[s] || s.replace(/_/g, ' ');
}

export const fmtPhase = (v) => word(PHASES, v);
export const fmtCuffState = (v) => word(CUFF_STATES, v);
export const fmtLink = (v) => word(LINKS, v);

const ALARM_CODES = {
	over_pressure_ceiling: 'Pressure above the ceiling',
	full_occlusion: 'Full occlusion',
	pressure_high: 'Pressure above target',
	pressure_low: 'Pressure below target',
	leak: 'Leak suspected',
	inflation_time: 'Inflated too long',
	inflation_time_warning: 'Inflation time nearly reached',
	session_inflation_total: 'Session inflation time limit',
	telemetry_lost: 'No pressure readings',
	link_lost_inflated: 'Link lost while inflated',
	deflate_failed: 'Deflation not confirmed',
	sensor_fault: 'Pressure sensor fault',
	supervision_deflated: 'Cuff deflated itself (supervision)',
	battery_low: 'Battery low',
	battery_critical: 'Battery critical',
	lop_invalid: 'LOP measurement failed',
	estop: 'Emergency stop',
	outbox_full: 'Gateway outbox nearly full',
	storage_error: 'Gateway storage error',
	broker_refused: 'Broker refused a message',
};

export const fmtAlarmCode = (v) => word(ALARM_CODES, v);

// An alarm's values with their units: the gateway's `units` object when it
// sends one, otherwise the unit implied by the key (docs/mqtt-api.md).
const KEY_UNITS = { pressure_mmHg: 'mmHg', target_mmHg: 'mmHg', duration_s: 's' };
const KEY_NAMES = {
	pressure_mmHg: 'pressure',
	target_mmHg: 'target',
	duration_s: 'for',
	limit: 'limit',
};

export function fmtAlarmValues(values, units) {
	if (!values || typeof values !== 'object') return '';
	const parts = [];
	for (const [k, raw] of Object.entries(values)) {
		// DESIGN §10 allows {"limit": {"value": 250, "unit": "mmHg"}} as well.
		let v = raw;
		let u = units && typeof units === 'object' ? str(units[k]) : null;
		if (raw && typeof raw === 'object') {
			v = raw.value;
			u = str(raw.unit) || u;
		}
		if (num(v) === null && str(v) === null) continue;
		if (u === null) u = KEY_UNITS[k] || null;
		const name = KEY_NAMES[k] || k.replace(/_/g, ' ');
		const text = num(v) !== null ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : v;
		parts.push(`${name} ${text}${u ? (u === '%' ? ' %' : ' ' + u) : ''}`);
	}
	return parts.join(', ');
}
