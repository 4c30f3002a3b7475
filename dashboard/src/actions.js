// What the buttons do: each action opens a confirmation dialog; the confirm
// publishes one documented command (docs/mqtt-api.md, docs/sessions.md) and
// the outcome (the gateway's reply, the broker's refusal or a timeout) goes to
// the reply bar (data-field="reply").

import { describePlan } from './plans.js';

// What a physiotherapist can do about a refusal, next to the gateway's words.
const HINTS = {
	alarm_unacked: 'an unacknowledged high alarm (an e-stop counts) blocks inflation: acknowledge it first',
	reperfusion: 'the limb needs its reperfusion time after the last deflation: try again later',
	cuff_busy: 'the cuff is in another session or measuring its LOP',
	not_connected: 'the cuff is not connected to the gateway',
	limit_exceeded: 'the prescription is above the limit configured for this limb',
	battery_low: 'charge or change the cuff',
	bad_state: 'not possible in the present state',
	not_found: 'that session or alarm has already ended',
	timeout: 'the gateway may be offline: check the tile status',
};

function replyText(label, r) {
	if (r.ok) {
		let t = `${label}: accepted`;
		if (r.session_id) t += ` (session ${r.session_id})`;
		if (r.note) t += ` — ${r.note}`;
		return t;
	}
	const e = r.error || {};
	const code = e.code || 'error';
	const hint = HINTS[code] ? ` (${HINTS[code]})` : '';
	return `${label}: refused — ${code}: ${e.message || 'no message'}${hint}`;
}

export function makeActions(app) {
	const { store, conn, ui } = app;

	function finish(label, r) {
		ui.reply = { ok: !!r.ok, code: r.ok ? '' : (r.error && r.error.code) || 'error', text: replyText(label, r), at: Date.now() };
		app.redraw();
		return r;
	}

	// Sends; when an older gateway refuses optional fields it does not know
	// yet (`by`, `reason`: unknown_field), sends again without them.
	async function send(g, verb, body, optional = []) {
		let r = await conn.command(g, verb, body);
		const e = r.error || {};
		if (!r.ok && e.code === 'unknown_field' && optional.some((f) => String(e.message || '').startsWith(f))) {
			const b = { ...body };
			for (const f of optional) delete b[f];
			r = await conn.command(g, verb, b);
			if (r.ok) r.note = `${g.gw} does not record who and why yet`;
		}
		return r;
	}

	function open(d) {
		ui.dialog = { error: '', busy: false, ...d };
		app.redraw();
	}

	function close() {
		ui.dialog = null;
		app.redraw();
	}

	// Runs the dialog's command: the dialog closes on success and stays open
	// with the error otherwise (the reply bar shows either).
	async function run(label, fn) {
		const d = ui.dialog;
		if (d) {
			d.busy = true;
			d.error = '';
		}
		app.redraw();
		const r = await fn();
		finish(label, r);
		if (ui.dialog === d && d) {
			d.busy = false;
			if (r.ok) ui.dialog = null;
			else d.error = ui.reply.text;
		}
		app.redraw();
		return r;
	}

	const who = () => ui.ackBy || conn.user || '';
	const byFields = (reasonDefault) => [
		{ name: 'by', label: 'Who (optional)', value: who(), max: 64 },
		{ name: 'reason', label: 'Reason (optional)', value: reasonDefault, max: 64 },
	];
	const whyBody = (v) => {
		const b = {};
		if (v.by && v.by.trim()) b.by = v.by.trim();
		if (v.reason && v.reason.trim()) b.reason = v.reason.trim();
		if (b.by) ui.ackBy = b.by;
		return b;
	};

	return {
		close,

		estop() {
			const gws = [...store.gateways.values()].filter((g) => g.canWrite !== false);
			open({
				kind: 'confirm',
				danger: true,
				title: 'Emergency stop',
				lines: [
					`Deflate every cuff of ${gws.map((g) => g.gw).join(', ') || 'no gateway'} now and end their sessions.`,
					'New inflations stay blocked until the e-stop alarm is acknowledged.',
				],
				confirm: 'Deflate all cuffs',
				fields: byFields('e-stop from the dashboard'),
				onConfirm: (v) => run('Emergency stop', async () => {
					const body = whyBody(v);
					const rs = await Promise.all(gws.map((g) => send(g, 'estop', body, ['by', 'reason'])));
					if (!rs.length) return { ok: false, error: { code: 'no_gateway', message: 'no gateway to stop' } };
					const bad = rs.find((r) => !r.ok);
					return bad || { ok: true, note: rs.map((r) => r.note).filter(Boolean)[0] };
				}),
			});
		},

		start(g, cuffId) {
			open({ kind: 'start', gwKey: g.key, cuffs: [cuffId] });
		},

		confirmStart(g, body) {
			return run(`Start session (${describePlan(body)})`, async () => {
				const r = await send(g, 'session/start', body);
				if (r.ok && typeof r.session_id === 'string' && body.patient) {
					store.sentPatient.set(`${g.key}/${r.session_id}`, body.patient);
				}
				return r;
			});
		},

		pause(g, sessionId, cuffLabel) {
			open({
				kind: 'confirm',
				title: 'Pause session',
				lines: [`Pause the session on ${cuffLabel}: the cuffs deflate and the clock stops.`,
					'Resuming re-inflates (after the reperfusion time if the cuffs were deflated).'],
				confirm: 'Pause',
				onConfirm: () => run(`Pause ${cuffLabel}`, () => send(g, 'session/pause', { session_id: sessionId })),
			});
		},

		resume(g, sessionId, cuffLabel) {
			open({
				kind: 'confirm',
				title: 'Resume session',
				lines: [`Resume the session on ${cuffLabel}: the cuffs inflate to the target again.`],
				confirm: 'Resume',
				onConfirm: () => run(`Resume ${cuffLabel}`, () => send(g, 'session/resume', { session_id: sessionId })),
			});
		},

		stop(g, sessionId, cuffLabel) {
			open({
				kind: 'confirm',
				title: 'Stop session',
				lines: [`Stop the session on ${cuffLabel}: the cuffs deflate and the session ends.`],
				confirm: 'Stop session',
				fields: byFields(''),
				onConfirm: (v) => run(`Stop ${cuffLabel}`, () =>
					send(g, 'session/stop', { session_id: sessionId, ...whyBody(v) }, ['by', 'reason'])),
			});
		},

		ack(g, alarm) {
			open({
				kind: 'confirm',
				title: 'Acknowledge alarm',
				lines: [`${alarm.title}${alarm.cuff ? ' on ' + alarm.cuff : ''}: ${alarm.message}`],
				confirm: 'Acknowledge',
				fields: [{ name: 'by', label: 'Acknowledged by', value: who(), required: true, max: 64 }],
				onConfirm: (v) => {
					const by = (v.by || '').trim();
					ui.ackBy = by;
					try {
						localStorage.setItem('bfr.ackBy', by); // a name, never a password
					} catch {
						// storage may be off: the name is only a convenience
					}
					return run(`Acknowledge ${alarm.title}`, () =>
						send(g, 'alarm/ack', { alarm_id: alarm.id, by }));
				},
			});
		},

		lop(g, cuffId, cuffLabel) {
			open({
				kind: 'confirm',
				title: 'Measure LOP',
				lines: [`Measure the limb occlusion pressure on ${cuffLabel}: the cuff inflates slowly until the pulse vanishes, then deflates.`,
					'The patient should sit or lie still.'],
				confirm: 'Measure',
				onConfirm: () => run(`Measure LOP on ${cuffLabel}`, () => send(g, 'lop/measure', { cuff: cuffId })),
			});
		},

		identify(g, cuffId, cuffLabel) {
			open({
				kind: 'confirm',
				title: 'Identify cuff',
				lines: [`Make ${cuffLabel} show itself (it blinks).`],
				confirm: 'Identify',
				onConfirm: () => run(`Identify ${cuffLabel}`, () => send(g, 'cuff/identify', { cuff: cuffId })),
			});
		},
	};
}
