// Synthetic gateways for bench_dashboard.mjs: G gateways with N cuffs in all,
// publishing what bfr-gateway publishes (docs/mqtt-api.md) at its rates:
// telemetry 10 messages/s per cuff (5 samples each, 50 Hz), retained cuff
// state once a second per cuff (as the gateway will), retained session state
// once a second for every second cuff, retained status and a few alarms.
//
//   node bench_dashboard_pub.mjs PORT CUFFS RATE_HZ
//
// Prints one JSON line a second to stdout: messages sent in that second.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'dashboard', 'package.json'));
const mqtt = require('mqtt');

const [port, nCuffs, rateHz] = process.argv.slice(2).map(Number);
const GATEWAYS = 4;
const SITE = 'bench-clinic';
const SAMPLES = 5; // per telemetry message: 50 Hz at 10 messages/s
let seq = 0;
const boot = Math.random().toString(16).slice(2, 10);
const ts = () => new Date().toISOString();
const envelope = (gw) => ({ v: 1, ts: ts(), msg_id: `${gw}-${boot}-${++seq}` });

const cuffs = [];
for (let i = 0; i < nCuffs; i++) {
	const g = i % GATEWAYS;
	const bay = Math.floor(i / (2 * GATEWAYS)) + 1;
	const side = Math.floor(i / GATEWAYS) % 2 ? 'right' : 'left';
	cuffs.push({
		gw: `bench-gw${g + 1}`,
		id: `bay${String(bay).padStart(2, '0')}-${side}-thigh`,
		lop: 180 + (i % 20),
		target: i % 2 ? 0 : 110 + (i % 10),
		session: i % 2 ? null : `s-${boot}-${i}`,
		t: 0,
		phase: Math.random() * Math.PI * 2,
	});
}
const prefix = (gw) => `bfr/v1/${SITE}/${gw}`;

const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, clean: true });
let sent = 0;

function pub(topic, payload, opts) {
	client.publish(topic, JSON.stringify(payload), opts);
	sent++;
}

function states() {
	for (const c of cuffs) {
		const p = c.target ? c.target + 2 * Math.sin(c.phase) : 0.4;
		pub(`${prefix(c.gw)}/cuff/${c.id}/state`, {
			...envelope(c.gw), cuff: c.id, link: 'connected', link_error: null,
			pressure_mmHg: Math.round(p * 10) / 10, target_mmHg: c.target, battery_pct: 80,
			lop_mmHg: c.lop, session_id: c.session, alarms_active: [],
			cuff_state: c.target ? 'holding' : 'idle', limb: 'leg', status_bits: 4,
			label: null, serial: `SIM-${c.id}`, model: 'cuffsim', firmware: '0.1.0',
			lop_measured_at: ts(), data_age_ms: 40,
		}, { qos: 1, retain: true });
		if (c.session) {
			pub(`${prefix(c.gw)}/session/${c.session}/state`, {
				...envelope(c.gw), session_id: c.session, phase: 'set', exercise_index: 0,
				exercise: 'knee extension', set: 2, rep: 7, seconds_left: 41, inflation_s_total: 300,
				cuffs: [c.id], patient: `p-${c.id}`, n_exercises: 1, n_sets: 4, n_reps: 15,
				pct_lop: 60, targets: { [c.id]: c.target }, phase_left_s: 41, session_left_s: 600,
			}, { qos: 1, retain: true });
		}
	}
}

function telemetry() {
	for (const c of cuffs) {
		const samples = [];
		for (let k = 0; k < SAMPLES; k++) {
			c.t += 20;
			c.phase += 2 * Math.PI * 1.2 * 0.02;
			const p = c.target ? c.target + 2 * Math.sin(c.phase) + (Math.random() - 0.5) : Math.random() * 0.5;
			samples.push([c.t, Math.round(p * 10) / 10, c.target, 1.5]);
		}
		pub(`${prefix(c.gw)}/cuff/${c.id}/telemetry`, { ...envelope(c.gw), cuff: c.id, samples }, { qos: 0 });
	}
}

client.on('connect', () => {
	for (let g = 1; g <= GATEWAYS; g++) {
		const gw = `bench-gw${g}`;
		pub(`${prefix(gw)}/status`, {
			...envelope(gw), state: 'online', version: 'bench', cuffs: nCuffs / GATEWAYS,
			outbox_depth: 0, gateway: gw, site: SITE,
		}, { qos: 1, retain: true });
	}
	// Two open alarms, as a clinic would have now and then.
	for (const [i, code, prio] of [[2, 'leak', 'medium'], [5, 'battery_low', 'low']]) {
		const c = cuffs[i % cuffs.length];
		pub(`${prefix(c.gw)}/alarm/${c.gw}-${i}`, {
			...envelope(c.gw), alarm_id: `${c.gw}-${i}`, cuff: c.id, session_id: c.session, code,
			priority: prio, kind: 'physiological', state: 'active', condition_present: true,
			raised_at: ts(), acked_at: null, acked_by: null, cleared_at: null,
			message: `${code} on ${c.id}`, values: { limit: 20 }, units: { limit: '%' },
		}, { qos: 1, retain: true });
	}
	states();
	// Drift-free ticks: the n-th telemetry round is due at start + n / rate.
	const start = performance.now();
	let n = 0;
	let lastReport = start;
	let sentAtReport = 0;
	const tick = () => {
		const now = performance.now();
		while (start + (n * 1000) / rateHz <= now) {
			telemetry();
			n++;
			if (n % rateHz === 0) states();
		}
		if (now - lastReport >= 1000) {
			process.stdout.write(JSON.stringify({ sent_per_s: Math.round((sent - sentAtReport) * 1000 / (now - lastReport)) }) + '\n');
			lastReport = now;
			sentAtReport = sent;
		}
		setTimeout(tick, Math.max(0, start + (n * 1000) / rateHz - performance.now()));
	};
	tick();
});

process.on('SIGTERM', () => {
	client.end(true, () => process.exit(0));
});
