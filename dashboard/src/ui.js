// The page (preact + htm). The App re-renders at most once per animation
// frame; a cuff tile re-renders only when its version `c.v` changed (store.js),
// and its chart never re-renders through preact (charts.js redraws it).
// The data-* attributes are the contract with the browser tests
// (docs/dashboard.md, "Hooks").

import { Component, h } from 'preact';
import htm from 'htm';
import { cuffView, alarmView } from './view.js';
import { DASH, fmtAgo, fmtClock, str } from './format.js';
import { TEMPLATES, formFromTemplate, planFromForm, planFromJson, describePlan } from './plans.js';
import { bayOf } from './store.js';

const html = htm.bind(h);
const byId = (a, b) => a.localeCompare(b, undefined, { numeric: true });

export function App({ app }) {
	const { store, conn, ui } = app;
	const now = Date.now();
	if (conn.status === 'login') return html`<${Login} app=${app} />`;
	const gws = [...store.gateways.values()].sort((a, b) => byId(a.key, b.key));
	const writable = gws.some((g) => g.canWrite === true);
	const estopVisible = gws.length === 0 || gws.some((g) => g.canWrite !== false);
	const banner = store.bannerAlarms().map((a) => alarmView(a, now));
	return html`
		<header class="top">
			<h1>BFR clinic</h1>
			<${ConnStatus} app=${app} now=${now} />
			<span class="spacer"></span>
			${gws.length > 0 && !writable && gws.every((g) => g.canWrite === false)
				? html`<span class="badge" data-field="read-only">view only</span>` : null}
			${conn.user ? html`<span class="user">${conn.user}
				<button class="small" data-action="logout" onClick=${() => conn.logout()}>Log out</button></span>` : null}
			<button class="small" data-action="sound" aria-pressed=${ui.sound ? 'true' : 'false'}
				title="Audible alarm signal" onClick=${() => app.toggleSound()}>
				${ui.sound ? 'Sound on' : 'Sound off'}</button>
			${estopVisible ? html`<button class="estop" data-action="estop" onClick=${() => app.act.estop()}>
				E-STOP</button>` : null}
		</header>
		${banner.length ? html`<${Banner} app=${app} alarms=${banner} />` : null}
		<main>
			${gws.length === 0 ? html`<p class="empty">${store.connected
				? 'Waiting for gateways… (none has published its status on this broker yet)'
				: 'Connecting to the broker…'}</p>` : null}
			${gws.map((g) => html`<${Gateway} key=${g.key} app=${app} g=${g} now=${now} />`)}
		</main>
		${writable || ui.reply ? html`<${ReplyBar} ui=${ui} />` : null}
		${ui.dialog ? html`<${Dialog} app=${app} d=${ui.dialog} />` : null}
	`;
}

function ConnStatus({ app, now }) {
	const { conn, store } = app;
	let text;
	let state = conn.status;
	if (conn.status === 'online') text = 'live';
	else if (conn.status === 'connecting') text = 'connecting to the broker…';
	else {
		state = 'offline';
		text = `broker connection lost${store.disconnectedAt ? ' since ' + fmtClock(store.disconnectedAt) + ' (' + fmtAgo(store.disconnectedAt, now) + ')' : ''} — reconnecting`;
	}
	return html`<span class="conn" data-field="connection" data-state=${state}
		title=${conn.error || ''}>${text}${conn.error && conn.status !== 'online' ? ' · ' + conn.error : ''}</span>`;
}

function Banner({ app, alarms }) {
	return html`<div class="banner" data-field="banner" role="alert">
		${alarms.map((a) => {
			const g = app.store.gateways.get(a.gwKey);
			return html`<div class="banner-item alarm high" key=${a.key} data-alarm-id=${a.id}
				data-priority=${a.priority} data-state=${a.state}>
				<strong>HIGH ALARM</strong>
				<span>${a.cuff || (g ? g.gw : '')}: ${a.title}${a.message ? ' — ' + a.message : ''}</span>
				${g && g.canWrite ? html`<button data-action="ack" onClick=${() => app.act.ack(g, a)}>
					Acknowledge</button>` : null}
			</div>`;
		})}
	</div>`;
}

function Gateway({ app, g, now }) {
	const { store } = app;
	const cuffs = store.cuffsOf(g).sort((a, b) => byId(a.id, b.id));
	const bays = new Map();
	for (const c of cuffs) {
		const b = bayOf(c.id) || '';
		if (!bays.has(b)) bays.set(b, []);
		bays.get(b).push(c);
	}
	const st = g.status || {};
	const online = g.online === true;
	let stateText = 'status unknown';
	if (g.online === true) stateText = `online since ${fmtClock(g.since)}`;
	if (g.online === false) stateText = `OFFLINE since ${fmtClock(g.since)} (${fmtAgo(g.since, now)}) — nothing below is live`;
	const details = [str(st.version) ? `version ${st.version}` : null,
		typeof st.outbox_depth === 'number' && st.outbox_depth > 0 ? `${st.outbox_depth} messages waiting to be sent` : null]
		.filter(Boolean).join(' · ');
	// Unacknowledged high alarms of the gateway are in the page banner already.
	const galarms = store.gatewayAlarms(g).map((a) => alarmView(a, now))
		.filter((a) => !(a.priority === 'high' && a.state === 'active'));
	return html`<section class="gateway" data-gateway=${g.key} data-online=${online ? 'true' : 'false'}>
		<h2><span class="gw-name">${g.gw}</span> <small>${g.site}</small>
			<span class=${'gw-state ' + (online ? 'ok' : 'bad')} data-field="gateway-state">${stateText}</span>
			${details ? html`<small class="gw-details">${details}</small>` : null}</h2>
		${galarms.length ? html`<ul class="alarms gw-alarms">${galarms.map((a) =>
			html`<${AlarmItem} key=${a.key} app=${app} g=${g} a=${a} />`)}</ul>` : null}
		<div class="bays">
		${[...bays.entries()].sort((a, b) => byId(a[0], b[0])).map(([bay, list]) => html`
			<div class="bay" key=${bay} data-bay=${bay}>
				${bay ? html`<h3>${bay}</h3>` : null}
				<div class="tiles">
					${list.map((c) => html`<${Tile} key=${c.key} app=${app} c=${c} v=${c.v}
						canWrite=${g.canWrite === true} />`)}
				</div>
			</div>`)}
		</div>
	</section>`;
}

function AlarmItem({ app, g, a }) {
	return html`<li class=${'alarm ' + a.priority + (a.state === 'active' ? ' unacked' : '')}
		data-alarm-id=${a.id} data-priority=${a.priority} data-state=${a.state}>
		<strong class="alarm-title">${a.title}</strong>
		${a.state === 'active' && g.canWrite ? html`<button data-action="ack"
			onClick=${() => app.act.ack(g, a)}>Acknowledge</button>` : null}
		${a.message ? html`<span class="alarm-msg">${a.message}</span>` : null}
		<small>${[a.values, a.since, a.condition, a.ackedBy].filter(Boolean).join(' · ')}</small>
	</li>`;
}

// The elements of a tile that main.js updates directly, 4 times a second,
// without re-rendering the tile: the pressure and its % of LOP.
function keep(c, name, el) {
	if (!c.els) c.els = {};
	c.els[name] = el;
}

class Tile extends Component {
	shouldComponentUpdate(next) {
		return next.v !== this.props.v || next.canWrite !== this.props.canWrite;
	}

	render({ app, c, canWrite }) {
		const { store, act } = app;
		const now = Date.now();
		const v = cuffView(store, c, now);
		const g = store.gateways.get(c.gwKey);
		const level = v.alarms.length ? v.alarms[0].priority : 'none';
		const flashing = v.alarms.some((a) => a.priority === 'high' && a.state === 'active');
		const cls = `tile alarm-${level}${flashing ? ' flashing' : ''}`;
		// Nothing to send commands to while the gateway (or the broker) is gone.
		const offline = !!(c.stale && c.stale.reason !== 'data');
		return html`<article class=${cls} data-cuff=${c.id} data-gateway=${c.gwKey}
			data-stale=${v.stale ? 'true' : 'false'}>
			<header class="tile-head">
				<div class="name">
					<span class="label" title=${c.id}>${v.label}</span>
					<small>${[v.label !== c.id ? c.id : null, v.limb, v.serial].filter(Boolean).join(' · ')}</small>
				</div>
				<div class="status">
					<span class=${'link link-' + (v.link.value || 'none')} data-field="link" data-value=${v.link.value}
						title=${v.linkError}>${v.link.text}</span>
					<span class=${'battery' + (v.battery.low ? ' low' : '')}>battery <b data-field="battery"
						data-value=${v.battery.value ?? ''}>${v.battery.text}</b></span>
				</div>
			</header>
			${v.stale ? html`<div class="stale-note" data-field="stale">${v.staleText}</div>` : null}
			<div class="live">
				<div class="who">${v.inSession
					? html`<span>${v.patient ? 'Patient ' + v.patient : 'Session'}</span>
						${v.exercise ? html` · <span data-field="exercise">${v.exercise}</span>` : null}
						${v.exerciseOf ? html` <small>(exercise ${v.exerciseOf})</small>` : null}`
					: html`<span class="muted" title=${v.ended}>${v.ended || 'No session'}</span>`}</div>
				<div class="numbers">
					<div class="pressure"><span class="big" data-field="pressure" ref=${(e) => keep(c, 'pressure', e)}
						data-value=${v.pressure.value ?? ''}>${v.pressure.text}</span><small>mmHg</small></div>
					<div class="kv"><label>Target</label><span><b data-field="target"
						data-value=${v.target.value ?? ''}>${v.target.text}</b> mmHg</span></div>
					<div class="kv"><label>of LOP</label><span><b data-field="pct-lop" ref=${(e) => keep(c, 'pctLop', e)}
						data-value=${v.pctLop.value ?? ''}>${v.pctLop.text}</b>
						${v.prescribed ? html` <small data-field="pct-lop-prescribed">${v.prescribed}</small>` : null}</span></div>
				</div>
				<${ChartBox} app=${app} c=${c} />
				<div class="lop-line"><span class="lop-key"></span>${v.lop}
					<span class="band-key"></span>target ±10 %</div>
				<div class="progress">
					<span class="phase" data-field="phase" data-value=${v.phase.value}>${v.phase.text}</span>
					<span hidden=${!v.inSession}>Set <b data-field="set" data-value=${v.set.value ?? ''}>${v.set.text}</b></span>
					<span hidden=${!v.inSession}>Rep <b data-field="rep" data-value=${v.rep.value ?? ''}>${v.rep.text}</b></span>
					<span hidden=${!v.inSession} data-field="time-left" data-value=${v.timeLeft.value ?? ''}>${v.timeLeft.text}</span>
					${v.sessionLeft ? html`<span data-field="session-left">${v.sessionLeft}</span>` : null}
				</div>
			</div>
			${v.alarms.length ? html`<ul class="alarms">${v.alarms.map((a) =>
				html`<${AlarmItem} key=${a.key} app=${app} g=${g} a=${a} />`)}</ul>` : null}
			${canWrite ? html`<footer class="actions">
				${v.inSession ? html`
					${v.paused
						? html`<button disabled=${offline} data-action="resume" onClick=${() => act.resume(g, v.sessionId, v.label)}>Resume</button>`
						: html`<button disabled=${offline} data-action="pause" onClick=${() => act.pause(g, v.sessionId, v.label)}>Pause</button>`}
					<button disabled=${offline} data-action="stop" onClick=${() => act.stop(g, v.sessionId, v.label)}>Stop</button>`
				: html`
					<button class="primary" disabled=${offline} data-action="start" onClick=${() => act.start(g, c.id)}>Start session</button>
					<button disabled=${offline} data-action="lop" onClick=${() => act.lop(g, c.id, v.label)}>Measure LOP</button>`}
				<button disabled=${offline} data-action="identify" onClick=${() => act.identify(g, c.id, v.label)}>Identify</button>
			</footer>` : null}
		</article>`;
	}
}

class ChartBox extends Component {
	shouldComponentUpdate() {
		return false;
	}

	componentDidMount() {
		this.props.app.charts.add(this.base, this.props.c, this.props.app.store);
	}

	componentWillUnmount() {
		this.props.app.charts.remove(this.base);
	}

	render() {
		return html`<div class="chart" aria-label="pressure trace of the last 30 s"></div>`;
	}
}

function ReplyBar({ ui }) {
	const r = ui.reply;
	return html`<div class=${'reply' + (r ? (r.ok ? ' ok' : ' bad') : '')} data-field="reply"
		data-ok=${r ? String(r.ok) : ''} data-code=${r ? r.code : ''} role="status">
		${r ? `${fmtClock(r.at)} ${r.text}` : 'Commands and their replies appear here.'}</div>`;
}

function Dialog({ app, d }) {
	if (d.kind === 'start') return html`<${StartDialog} app=${app} d=${d} />`;
	return html`<${ConfirmDialog} app=${app} d=${d} />`;
}

class ConfirmDialog extends Component {
	constructor(props) {
		super(props);
		const values = {};
		for (const f of props.d.fields || []) values[f.name] = f.value || '';
		this.state = { values };
	}

	submit(e) {
		e.preventDefault();
		const { d } = this.props;
		if (d.busy) return;
		for (const f of d.fields || []) {
			const v = (this.state.values[f.name] || '').trim();
			if (f.required && !v) {
				d.error = `${f.label}: please fill in`;
				this.props.app.redraw();
				return;
			}
		}
		d.onConfirm(this.state.values);
	}

	render({ app, d }, { values }) {
		return html`<div class="modal" role="dialog" aria-modal="true" aria-label=${d.title}>
			<form class=${'box' + (d.danger ? ' danger' : '')} onSubmit=${(e) => this.submit(e)}>
				<h2>${d.title}</h2>
				${d.lines.map((l) => html`<p>${l}</p>`)}
				${(d.fields || []).map((f) => html`<label class="field">${f.label}
					<input name=${f.name} value=${values[f.name]} maxlength=${f.max || 64}
						required=${!!f.required} autocomplete="off"
						onInput=${(e) => this.setState({ values: { ...values, [f.name]: e.target.value } })} /></label>`)}
				${d.error ? html`<p class="dialog-error">${d.error}</p>` : null}
				<div class="buttons">
					<button type="button" data-action="cancel" onClick=${() => app.act.close()}>
						${d.error ? 'Close' : 'Cancel'}</button>
					<button type="submit" class=${d.danger ? 'danger' : 'primary'} data-action="confirm"
						disabled=${d.busy}>${d.busy ? 'Sending…' : d.confirm}</button>
				</div>
			</form>
		</div>`;
	}
}

class StartDialog extends Component {
	constructor(props) {
		super(props);
		const { app, d } = props;
		const c = app.store.cuffs.get(`${d.gwKey}/${d.cuffs[0]}`);
		const limb = c && c.state ? c.state.limb : 'leg';
		const form = formFromTemplate(TEMPLATES[0], d.cuffs, limb);
		this.state = { form, json: false, text: '', errors: [] };
	}

	set(field, value) {
		this.setState({ form: { ...this.state.form, [field]: value }, errors: [] });
	}

	template(id) {
		const tpl = TEMPLATES.find((t) => t.id === id) || TEMPLATES[0];
		const f = this.state.form;
		const c = this.props.app.store.cuffs.get(`${this.props.d.gwKey}/${f.cuffs[0]}`);
		const limb = c && c.state ? c.state.limb : 'leg';
		this.setState({ form: { ...formFromTemplate(tpl, f.cuffs, limb), patient: f.patient }, errors: [] });
	}

	toggleCuff(id, on) {
		const cuffs = this.state.form.cuffs.filter((x) => x !== id);
		if (on) cuffs.push(id);
		this.set('cuffs', cuffs);
	}

	toggleJson() {
		if (this.state.json) {
			this.setState({ json: false, errors: [] });
			return;
		}
		const { body } = planFromForm(this.state.form);
		this.setState({ json: true, text: JSON.stringify(body, null, 2), errors: [] });
	}

	body() {
		return this.state.json ? planFromJson(this.state.text) : planFromForm(this.state.form);
	}

	submit(e) {
		e.preventDefault();
		const { app, d } = this.props;
		if (d.busy) return;
		const { body, errors } = this.body();
		if (errors.length) {
			this.setState({ errors });
			return;
		}
		const g = app.store.gateways.get(d.gwKey);
		app.act.confirmStart(g, body);
	}

	render({ app, d }, { form, json, text, errors }) {
		const g = app.store.gateways.get(d.gwKey);
		const cuffs = app.store.cuffsOf(g).sort((a, b) => byId(a.id, b.id));
		const input = (field, attrs = {}) => html`<input name=${field} value=${form[field]} autocomplete="off"
			...${attrs} onInput=${(e) => this.set(field, e.target.value)} />`;
		const preview = this.body();
		return html`<div class="modal" role="dialog" aria-modal="true" aria-label="Start a session">
			<form class="box wide" onSubmit=${(e) => this.submit(e)}>
				<h2>Start a session on ${g ? g.gw : DASH}</h2>
				<div class="grid2">
					<label class="field">Protocol template
						<select name="template" value=${form.template} onChange=${(e) => this.template(e.target.value)}>
							${TEMPLATES.map((t) => html`<option value=${t.id}>${t.name}</option>`)}
						</select></label>
					<label class="field">Patient reference (optional, no names)
						${input('patient', { placeholder: 'e.g. p-0042', maxlength: 64 })}</label>
				</div>
				<fieldset class="cuffs"><legend>Cuffs (one, or two for a bilateral exercise)</legend>
					${cuffs.map((c) => html`<label class="check"><input type="checkbox" name="cuff" value=${c.id}
						checked=${form.cuffs.includes(c.id)} disabled=${json}
						onChange=${(e) => this.toggleCuff(c.id, e.target.checked)} />${c.state && str(c.state.label) ? c.state.label : c.id}</label>`)}
				</fieldset>
				${json ? html`<label class="field">Plan as JSON (docs/sessions.md)
					<textarea name="plan-json" rows="14" spellcheck="false" value=${text}
						onInput=${(e) => this.setState({ text: e.target.value, errors: [] })}></textarea></label>`
				: html`<div class="grid3">
					<label class="field">Exercise ${input('name', { maxlength: 64 })}</label>
					<label class="field">% of LOP ${input('pct_lop', { inputmode: 'numeric', size: 4 })}</label>
					<label class="field">Mode
						<select name="mode" value=${form.mode} onChange=${(e) => this.set('mode', e.target.value)}>
							<option value="continuous">continuous (inflated in rests)</option>
							<option value="intermittent">intermittent (deflated in rests)</option>
							<option value="cycle">cycle (on/off, no reps)</option>
						</select></label>
					${form.mode === 'cycle' ? html`
						<label class="field">Cycles ${input('cycles', { inputmode: 'numeric' })}</label>
						<label class="field">On (s) ${input('on_s', { inputmode: 'numeric' })}</label>
						<label class="field">Off (s) ${input('off_s', { inputmode: 'numeric' })}</label>`
					: html`
						<label class="field">Reps per set ${input('sets')}</label>
						<label class="field">Tempo up / down (s)
							<span class="pair">${input('tempo_up', { inputmode: 'numeric', size: 2 })}
							${input('tempo_down', { inputmode: 'numeric', size: 2 })}</span></label>
						<label class="field">Rest between sets (s) ${input('rest_s', { inputmode: 'numeric' })}</label>`}
					<label class="field">Reperfusion after (s) ${input('reperfusion_s', { inputmode: 'numeric' })}</label>
				</div>`}
				<p class="summary">${preview.errors.length ? '' : describePlan(preview.body)}</p>
				${errors.map((e) => html`<p class="dialog-error">${e}</p>`)}
				${d.error ? html`<p class="dialog-error">${d.error}</p>` : null}
				<div class="buttons">
					<button type="button" data-action="edit-json" onClick=${() => this.toggleJson()}>
						${json ? 'Back to the form' : 'Edit as JSON'}</button>
					<span class="spacer"></span>
					<button type="button" data-action="cancel" onClick=${() => app.act.close()}>Cancel</button>
					<button type="submit" class="primary" data-action="confirm" disabled=${d.busy}>
						${d.busy ? 'Sending…' : 'Start session'}</button>
				</div>
			</form>
		</div>`;
	}
}

class Login extends Component {
	constructor(props) {
		super(props);
		this.state = { user: '', pass: '' };
	}

	submit(e) {
		e.preventDefault();
		const { user, pass } = this.state;
		// The password goes to the connection object (memory) and leaves the form.
		this.props.app.conn.connect({ username: user.trim(), password: pass });
		this.setState({ pass: '' });
	}

	render({ app }, { user, pass }) {
		return html`<div class="login-page">
			<form class="box" data-field="login" onSubmit=${(e) => this.submit(e)} autocomplete="off">
				<h1>BFR clinic</h1>
				<p>This broker needs a user name and password.</p>
				<label class="field">User name<input name="username" value=${user} autocomplete="username"
					onInput=${(e) => this.setState({ user: e.target.value })} required /></label>
				<label class="field">Password<input name="password" type="password" value=${pass}
					autocomplete="current-password"
					onInput=${(e) => this.setState({ pass: e.target.value })} required /></label>
				${app.conn.error ? html`<p class="dialog-error" data-field="login-error">${app.conn.error}</p>` : null}
				<div class="buttons"><button type="submit" class="primary" data-action="login">Log in</button></div>
			</form>
		</div>`;
	}
}
