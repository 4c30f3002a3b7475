// The page's MQTT 5 connection (mqtt.js over websockets) to the listener the
// page was loaded from: subscriptions, commands with their replies, and the
// write-permission probe.
//
// Invariants:
// - A password lives only in this object's memory (for reconnects); it is
//   never written to storage, the URL or the DOM, and `logout()` drops it.
// - Every command gets exactly one outcome: the gateway's reply, the broker's
//   refusal (PUBACK reason code >= 0x80), or "no reply within 10 s".
// - Replies come back on a topic unique to this page and request:
//   bfr/v1/{site}/{gateway}/reply/{token}/{request_id}.

import mqtt from 'mqtt';

export const REPLY_TIMEOUT_MS = 10000;
const AUTH_FAILURES = new Set([4, 5, 134, 135]); // bad user name or password, not authorized

function randomToken() {
	const a = new Uint8Array(6);
	crypto.getRandomValues(a);
	return 'dash-' + Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

// The websockets URL of the listener that served the page; ?broker=ws://h:p
// overrides it (a page opened from a file, or a development server).
export function brokerUrl(loc) {
	const q = new URLSearchParams(loc.search);
	const o = q.get('broker');
	if (o && /^wss?:\/\//.test(o)) return o;
	const scheme = loc.protocol === 'https:' ? 'wss' : 'ws';
	return `${scheme}://${loc.host}/mqtt`;
}

// Subscriptions, limited to one site (?site=) and/or gateway (?gateway=).
export function topicFilters(loc, token) {
	const q = new URLSearchParams(loc.search);
	const site = q.get('site') || '+';
	const gw = q.get('gateway') || '+';
	const p = `bfr/v1/${site}/${gw}`;
	return [
		`${p}/status`,
		`${p}/sessions`,
		`${p}/cuff/+/state`,
		`${p}/cuff/+/telemetry`,
		`${p}/session/+/state`,
		`${p}/session/+/summary`,
		`${p}/alarm/+`,
		`${p}/reply/${token}/+`,
	];
}

export class Conn {
	constructor(store, { url, filters, onChange, onData }) {
		this.store = store;
		this.url = url;
		this.token = randomToken();
		this.filters = filters(this.token);
		this.onChange = onChange; // () => void: connection state changed, redraw the page
		this.onData = onData; // () => void: the store changed, draw a frame
		this.messages = 0;
		this.client = null;
		this.creds = null; // { username, password } in memory only
		this.status = 'connecting'; // connecting | online | offline | login
		this.error = '';
		this.user = null;
		this.pending = new Map(); // request_id -> { resolve, timer }
		this.n = 0;
		this.probed = new Set(); // gateway keys asked for a snapshot on this connection
	}

	connect(creds = null) {
		if (this.client) this.client.end(true);
		this.creds = creds;
		this.status = 'connecting';
		this.error = '';
		const opts = {
			protocolVersion: 5,
			clean: true,
			clientId: `${this.token}-${Math.random().toString(16).slice(2, 8)}`,
			keepalive: 10,
			reconnectPeriod: 2000,
			connectTimeout: 5000,
			resubscribe: false, // subscribed again in on('connect') below
		};
		if (creds) {
			opts.username = creds.username;
			opts.password = creds.password;
		}
		const c = mqtt.connect(this.url, opts);
		this.client = c;
		c.on('connect', () => {
			if (c !== this.client) return;
			this.status = 'online';
			this.error = '';
			this.user = creds ? creds.username : null;
			this.probed.clear();
			this.store.setConnected(true, Date.now());
			c.subscribe(this.filters, { qos: 1 }, (err, granted) => {
				const refused = (granted || []).filter((g) => g.qos >= 0x80);
				if (err || refused.length) {
					this.error = `the broker refused to send ${refused.map((g) => g.topic).join(', ') || 'updates'}`;
					this.onChange();
				}
			});
			this.onChange();
		});
		c.on('message', (topic, payload) => {
			if (c !== this.client) return;
			this.onMessage(topic, payload);
		});
		c.on('close', () => {
			if (c !== this.client) return;
			if (this.status === 'online') this.status = 'offline';
			this.store.setConnected(false, Date.now());
			this.onChange();
		});
		c.on('error', (err) => {
			if (c !== this.client) return;
			if (AUTH_FAILURES.has(err && err.code)) {
				// Wrong or missing credentials: retrying cannot help, ask the user.
				c.end(true);
				this.status = 'login';
				this.error = creds ? 'the broker refused this user name or password' : '';
				this.creds = null;
				this.store.setConnected(false, Date.now());
			} else {
				this.error = err && err.message ? err.message : 'connection error';
			}
			this.onChange();
		});
	}

	logout() {
		this.creds = null;
		this.user = null;
		if (this.client) this.client.end(true);
		this.client = null;
		this.status = 'login';
		this.store.setConnected(false, Date.now());
		for (const g of this.store.gateways.values()) g.canWrite = null;
		this.onChange();
	}

	onMessage(topic, payload) {
		const now = Date.now();
		const parts = topic.split('/');
		if (parts[4] === 'reply') {
			const rid = parts[parts.length - 1];
			const p = this.pending.get(rid);
			if (!p) return;
			let body = null;
			try {
				body = JSON.parse(new TextDecoder().decode(payload));
			} catch {
				body = null;
			}
			clearTimeout(p.timer);
			this.pending.delete(rid);
			p.resolve(body && typeof body === 'object' ? body : {
				ok: false, error: { code: 'bad_reply', message: 'the gateway sent a reply that is not JSON' },
			});
			return;
		}
		const first = parts.length === 5 && parts[4] === 'status';
		this.messages++;
		this.store.handle(topic, payload, now);
		if (first) this.probe(this.store.gateway(parts[2], parts[3]));
		this.onData();
	}

	// Can this user send commands to gateway g? A harmless QoS 1 cmd/snapshot
	// (the gateway re-publishes its retained state) answers it: the broker
	// refuses the PUBLISH of a user without write access (PUBACK >= 0x80).
	probe(g) {
		if (this.probed.has(g.key) || !this.client) return;
		this.probed.add(g.key);
		this.command(g, 'snapshot', {}).then((r) => {
			const refused = r && r.broker === true;
			g.canWrite = !refused;
			this.store.touchGateway(g);
			this.onChange();
		});
	}

	// Publishes cmd/{verb} to gateway g and resolves with the reply object
	// (ok true/false), or { ok: false, broker: true, error } when the broker
	// refused it, or { ok: false, error: {code: 'timeout'} }. Never rejects.
	command(g, verb, body) {
		const rid = `${this.token}-${++this.n}`;
		const prefix = `bfr/v1/${g.site}/${g.gw}`;
		const payload = JSON.stringify({ request_id: rid, ...body });
		return new Promise((resolve) => {
			if (!this.client || !this.client.connected) {
				resolve({ ok: false, error: { code: 'offline', message: 'not connected to the broker' } });
				return;
			}
			const timer = setTimeout(() => {
				this.pending.delete(rid);
				resolve({ ok: false, error: { code: 'timeout', message: `no reply from ${g.gw} within ${REPLY_TIMEOUT_MS / 1000} s` } });
			}, REPLY_TIMEOUT_MS);
			this.pending.set(rid, { resolve, timer });
			this.client.publish(`${prefix}/cmd/${verb}`, payload, {
				qos: 1,
				properties: { responseTopic: `${prefix}/reply/${this.token}/${rid}` },
			}, (err) => {
				if (!err) return;
				clearTimeout(timer);
				this.pending.delete(rid);
				const code = typeof err.code === 'number' ? err.code : null;
				resolve({
					ok: false,
					broker: code !== null && code >= 0x80,
					error: {
						code: code !== null ? `broker 0x${code.toString(16)}` : 'publish_failed',
						message: `the broker refused the command: ${err.message || 'error'}`,
					},
				});
			});
		});
	}
}
