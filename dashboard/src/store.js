// The page's model of what the gateways published: pure (no DOM, no MQTT, no
// clock of its own: every call that needs the time takes `now`, epoch ms of the
// local receive clock), so it is unit-tested under node (dashboard/test/).
//
// Invariants:
// - Everything is keyed by "<site>/<gateway>/<id>", so two gateways may use the
//   same cuff or alarm ids.
// - A message is applied once: QoS 1 messages may arrive twice, consumers
//   dedupe on `msg_id` (docs/mqtt-api.md). The set of seen ids is bounded and
//   cleared when the page reconnects (the broker then re-sends retained state,
//   which is the truth at that moment).
// - Rendering is driven by version counters: a cuff's `v` changes whenever
//   anything its tile shows changes, `trace.v` when its chart has new samples,
//   `layoutV` when gateways or cuffs appear, `alarmsV` when any alarm changes.
//   The UI re-renders only what changed, at most once per animation frame.

export const STALE_MS = 2000; // a tile whose newest data is older is grey
export const TRACE_WINDOW_S = 30; // seconds of pressure trace kept per cuff
export const TRACE_CAPACITY = 2048; // samples kept per cuff (30 s at 50 Hz fit)
const SEEN_MAX = 20000; // msg_ids remembered for dedupe (~20 s at 1000 msg/s)
const FINAL_PHASES = new Set(['completed', 'stopped', 'aborted']);
const PRIORITY_RANK = { high: 0, medium: 1, low: 2 };

// bfr/v1/{site}/{gateway}/... -> { site, gw, kind, id }; null for anything else.
export function parseTopic(topic) {
	const t = topic.split('/');
	if (t.length < 5 || t[0] !== 'bfr' || t[1] !== 'v1') return null;
	const site = t[2];
	const gw = t[3];
	const rest = t.slice(4);
	const out = (kind, id = null) => ({ site, gw, kind, id });
	if (rest.length === 1 && rest[0] === 'status') return out('status');
	if (rest.length === 1 && rest[0] === 'sessions') return out('sessions');
	if (rest.length === 3 && rest[0] === 'cuff' && rest[2] === 'state') return out('cuff-state', rest[1]);
	if (rest.length === 3 && rest[0] === 'cuff' && rest[2] === 'telemetry')
		return out('telemetry', rest[1]);
	if (rest.length === 3 && rest[0] === 'session' && ['state', 'event', 'summary'].includes(rest[2]))
		return out('session-' + rest[2], rest[1]);
	if (rest.length === 2 && rest[0] === 'alarm') return out('alarm', rest[1]);
	if (rest[0] === 'reply') return out('reply', rest.slice(1).join('/'));
	return null;
}

// Pressure trace of one cuff: fixed-size ring buffers written twice (at slot
// and slot + capacity), so the newest `n` samples are always one contiguous
// subarray that uPlot can draw without copying. The target band and the LOP
// line are drawn from the present values (charts.js), not stored per sample.
export class Trace {
	constructor(capacity = TRACE_CAPACITY, windowS = TRACE_WINDOW_S) {
		this.cap = capacity;
		this.windowS = windowS;
		this.x = new Float64Array(2 * capacity); // seconds on the cuff's own clock
		this.p = new Float32Array(2 * capacity); // pressure, mmHg
		this.start = 0;
		this.n = 0;
		this.v = 0;
	}

	clear() {
		this.start = 0;
		this.n = 0;
		this.v++;
	}

	lastX() {
		return this.n ? this.x[this.start + this.n - 1] : null;
	}

	// One sample; out-of-order or repeated times are dropped, a clock that went
	// back by more than 5 s (a cuff that restarted) starts the trace afresh.
	push(tSeconds, pressure) {
		const lx = this.lastX();
		if (lx !== null && tSeconds <= lx) {
			if (lx - tSeconds < 5) return false;
			this.clear();
		}
		if (this.n === this.cap) {
			this.start = (this.start + 1) % this.cap;
			this.n--;
		}
		const s = (this.start + this.n) % this.cap;
		this.x[s] = this.x[s + this.cap] = tSeconds;
		this.p[s] = this.p[s + this.cap] = pressure;
		this.n++;
		// Keep only the window.
		while (this.n > 1 && this.x[this.start] < tSeconds - this.windowS) {
			this.start = (this.start + 1) % this.cap;
			this.n--;
		}
		this.v++;
		return true;
	}

	// [x, pressure] views for uPlot.setData.
	data() {
		const a = this.start;
		const b = this.start + this.n;
		return [this.x.subarray(a, b), this.p.subarray(a, b)];
	}

	// Highest pressure in the window (for the chart's scale).
	max() {
		let m = 0;
		for (let i = this.start, e = this.start + this.n; i < e; i++) if (this.p[i] > m) m = this.p[i];
		return m;
	}
}

function isObj(v) {
	return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function numOrNull(v) {
	return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export class Store {
	constructor() {
		this.gateways = new Map();
		this.cuffs = new Map();
		this.sessions = new Map();
		this.alarms = new Map();
		this.lastSession = new Map(); // cuff key -> key of the newest session naming it
		// Patient references this page sent with session/start, by session key:
		// shown while the gateway's session state does not carry `patient`.
		this.sentPatient = new Map();
		this.seen = new Set();
		this.layoutV = 0;
		this.alarmsV = 0;
		this.connected = false; // the page's own broker connection
		this.disconnectedAt = null;
		this.dirty = new Set(); // cuff keys whose tiles must re-render
		this.pressureDirty = new Set(); // cuff keys with a newer sample than shown
	}

	// --- connection of the page itself -------------------------------------

	setConnected(on, now) {
		if (on === this.connected) return;
		this.connected = on;
		this.disconnectedAt = on ? null : now;
		if (on) this.seen.clear();
		this.layoutV++;
		for (const k of this.cuffs.keys()) this.dirty.add(k);
	}

	// --- messages ----------------------------------------------------------

	// Applies one MQTT message (payload: string or Uint8Array). Returns false
	// for a duplicate or a message the page does not use.
	handle(topic, payload, now) {
		const tp = parseTopic(topic);
		if (!tp) return false;
		const text = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
		let p = null;
		if (text.length > 0) {
			try {
				p = JSON.parse(text);
			} catch {
				return false;
			}
			if (!isObj(p)) return false;
			if (typeof p.msg_id === 'string') {
				if (this.seen.has(p.msg_id)) return false;
				this.remember(p.msg_id);
			}
		}
		const gw = this.gateway(tp.site, tp.gw);
		switch (tp.kind) {
			case 'status':
				return p ? this.onStatus(gw, p, now) : false;
			case 'sessions':
				return p ? this.onSessions(gw, p) : false;
			case 'cuff-state':
				return p ? this.onCuffState(gw, tp.id, p, now) : false;
			case 'telemetry':
				return p ? this.onTelemetry(gw, tp.id, p, now) : false;
			case 'session-state':
			case 'session-summary':
			case 'session-event':
				return p ? this.onSession(gw, tp.kind, tp.id, p, now) : false;
			case 'alarm':
				return this.onAlarm(gw, tp.id, p);
			default:
				return false;
		}
	}

	remember(id) {
		if (this.seen.size >= SEEN_MAX) {
			// Sets iterate in insertion order: drop the oldest.
			const first = this.seen.values().next().value;
			this.seen.delete(first);
		}
		this.seen.add(id);
	}

	gateway(site, gw) {
		const key = `${site}/${gw}`;
		let g = this.gateways.get(key);
		if (!g) {
			g = {
				key,
				site,
				gw,
				status: null,
				online: null, // unknown until a status arrives
				since: null, // epoch ms of the last online/offline change seen
				canWrite: null, // null: not probed yet (see conn.js)
				active: null, // the retained `sessions` index, when the gateway sends one
			};
			this.gateways.set(key, g);
			this.layoutV++;
		}
		return g;
	}

	cuffsOf(g) {
		const out = [];
		for (const c of this.cuffs.values()) if (c.gwKey === g.key) out.push(c);
		return out;
	}

	touchGateway(g) {
		for (const c of this.cuffsOf(g)) this.dirty.add(c.key);
		this.layoutV++;
	}

	onStatus(g, p, now) {
		const online = p.state === 'online' ? true : p.state === 'offline' ? false : null;
		if (online !== g.online) g.since = now;
		g.status = p;
		g.online = online;
		this.touchGateway(g);
		return true;
	}

	onSessions(g, p) {
		g.active = Array.isArray(p.active) ? p.active.filter((s) => typeof s === 'string') : null;
		for (const c of this.cuffsOf(g)) this.dirty.add(c.key);
		return true;
	}

	cuff(g, id) {
		const key = `${g.key}/${id}`;
		let c = this.cuffs.get(key);
		if (!c) {
			c = {
				key,
				id,
				gwKey: g.key,
				state: null,
				stateAt: null, // local receive time of the last state
				telemAt: null, // local receive time of the last telemetry
				sample: null, // newest telemetry sample [t_ms, p, target, pulse]
				shown: null, // the sample the tile shows (throttled, see ui)
				trace: new Trace(),
				stale: null,
				v: 0,
			};
			this.cuffs.set(key, c);
			this.layoutV++;
		}
		return c;
	}

	onCuffState(g, id, p, now) {
		const c = this.cuff(g, id);
		const prevSession = c.state ? c.state.session_id : null;
		c.state = p;
		c.stateAt = now;
		c.v++;
		this.dirty.add(c.key);
		if (prevSession !== p.session_id) this.layoutV++;
		return true;
	}

	onTelemetry(g, id, p, now) {
		if (!Array.isArray(p.samples)) return false;
		const c = this.cuff(g, id);
		let newest = null;
		for (const s of p.samples) {
			if (!Array.isArray(s) || typeof s[0] !== 'number') continue;
			const pr = numOrNull(s[1]);
			if (pr === null) continue; // an invalid sample is a gap, not a zero
			c.trace.push(s[0] / 1000, pr);
			newest = s;
		}
		c.telemAt = now;
		if (newest) {
			c.sample = newest;
			this.pressureDirty.add(c.key);
		}
		return true;
	}

	onSession(g, kind, id, p, now) {
		const key = `${g.key}/${id}`;
		let s = this.sessions.get(key);
		if (!s) {
			s = { key, id, gwKey: g.key, state: null, summary: null, event: null, at: null };
			this.sessions.set(key, s);
		}
		if (kind === 'session-state') s.state = p;
		else if (kind === 'session-summary') s.summary = p;
		else s.event = p;
		s.at = now;
		for (const cid of this.sessionCuffIds(s)) {
			const ck = `${g.key}/${cid}`;
			const prev = this.sessions.get(this.lastSession.get(ck));
			if (!prev || prev === s || String(prev.state && prev.state.ts) <= String(p.ts)) {
				this.lastSession.set(ck, key);
			}
		}
		for (const cid of this.sessionCuffIds(s)) this.dirty.add(`${g.key}/${cid}`);
		for (const c of this.cuffsOf(g)) {
			if (c.state && c.state.session_id === id) this.dirty.add(c.key);
		}
		return true;
	}

	sessionCuffIds(s) {
		const st = s.state;
		return st && Array.isArray(st.cuffs) ? st.cuffs.filter((x) => typeof x === 'string') : [];
	}

	onAlarm(g, id, p) {
		const key = `${g.key}/${id}`;
		const prev = this.alarms.get(key);
		// An empty payload removes a closed alarm; the final `cleared` record
		// before it closes it as well.
		if (!p || p.state === 'cleared') {
			if (!prev) return false;
			this.alarms.delete(key);
		} else {
			this.alarms.set(key, { ...p, key, gwKey: g.key });
		}
		const cuffId = (p && p.cuff) || (prev && prev.cuff);
		if (cuffId) this.dirty.add(`${g.key}/${cuffId}`);
		else this.touchGateway(g);
		this.alarmsV++;
		return true;
	}

	// --- questions the UI asks ---------------------------------------------

	sessionOf(c) {
		const id = c.state && typeof c.state.session_id === 'string' ? c.state.session_id : null;
		if (id === null) return null;
		return this.sessions.get(`${c.gwKey}/${id}`) || { key: `${c.gwKey}/${id}`, id, state: null };
	}

	// The newest session that named this cuff (running or ended), or null.
	lastSessionOf(c) {
		const k = this.lastSession.get(c.key);
		return k ? this.sessions.get(k) || null : null;
	}

	sessionActive(s) {
		if (!s) return false;
		const g = this.gateways.get(s.gwKey);
		if (g && g.active) return g.active.includes(s.id);
		return !(s.state && FINAL_PHASES.has(s.state.phase));
	}

	// Open alarms of a cuff (its own records, and ids its state lists),
	// highest priority first, then oldest first.
	alarmsOfCuff(c) {
		const out = [];
		const listed = new Set(
			c.state && Array.isArray(c.state.alarms_active) ? c.state.alarms_active : []
		);
		for (const a of this.alarms.values()) {
			if (a.gwKey !== c.gwKey) continue;
			if (a.cuff === c.id || listed.has(a.alarm_id)) out.push(a);
		}
		return sortAlarms(out);
	}

	gatewayAlarms(g) {
		const out = [];
		for (const a of this.alarms.values()) if (a.gwKey === g.key && !a.cuff) out.push(a);
		return sortAlarms(out);
	}

	// Unacknowledged high alarms of every gateway: the page banner and the tone.
	bannerAlarms() {
		const out = [];
		for (const a of this.alarms.values()) {
			if (a.priority === 'high' && a.state === 'active') out.push(a);
		}
		return sortAlarms(out);
	}

	// Why a cuff's data cannot be trusted as live, or null when it is live.
	// { reason, since } with `since` in epoch ms (local receive clock).
	staleness(c, now) {
		if (!this.connected) {
			return { reason: 'page', since: this.disconnectedAt };
		}
		const g = this.gateways.get(c.gwKey);
		if (g && g.online === false) return { reason: 'gateway', since: g.since };
		if (c.state && c.state.link === 'unknown') return { reason: 'gateway', since: c.stateAt };
		const fresh = this.freshness(c);
		if (fresh === null || now - fresh > STALE_MS) return { reason: 'data', since: fresh };
		return null;
	}

	// Local time of the newest data of a cuff: its last telemetry, or its last
	// state minus the age of the data in it (`data_age_ms`, when sent).
	freshness(c) {
		let t = c.telemAt;
		if (c.stateAt !== null) {
			const age = c.state ? numOrNull(c.state.data_age_ms) : null;
			const st = c.stateAt - (age !== null && age > 0 ? age : 0);
			if (t === null || st > t) t = st;
		}
		return t;
	}

	// Re-evaluates staleness of every cuff (called a few times a second):
	// tiles whose staleness changed, or that show "since ... (N s)", re-render.
	tick(now) {
		for (const c of this.cuffs.values()) {
			const s = this.staleness(c, now);
			const was = c.stale;
			const sec = s ? Math.floor(now / 1000) : null;
			if (!s !== !was || (s && (was.reason !== s.reason || was.sec !== sec))) {
				c.stale = s ? { ...s, sec } : null;
				this.dirty.add(c.key);
			}
		}
	}

	// Moves the dirty set out (the UI re-renders those tiles).
	takeDirty() {
		const d = this.dirty;
		this.dirty = new Set();
		for (const k of d) {
			const c = this.cuffs.get(k);
			if (c) c.v++;
		}
		return d;
	}
}

export function sortAlarms(list) {
	return list.sort((a, b) => {
		const pa = PRIORITY_RANK[a.priority] ?? 3;
		const pb = PRIORITY_RANK[b.priority] ?? 3;
		if (pa !== pb) return pa - pb;
		return String(a.raised_at || '').localeCompare(String(b.raised_at || ''));
	});
}

// A cuff id like "bay1-left-thigh" belongs to bay "bay1"; ids without such a
// prefix ("cuff-01") belong to no bay (docs/dashboard.md, Layout).
export function bayOf(cuffId) {
	const i = cuffId.indexOf('-');
	if (i <= 0) return null;
	const rest = cuffId.slice(i + 1);
	if (/^[0-9]+$/.test(rest)) return null;
	return cuffId.slice(0, i);
}
