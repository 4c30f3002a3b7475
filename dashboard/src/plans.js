// Plan templates for cmd/session/start (docs/sessions.md, "The plan") and the
// form <-> plan conversion of the start dialog. Pure.
//
// The templates are common BFR protocols (Patterson et al. 2019 position
// stand: 30-15-15-15 reps, 30-60 s rest, 40-80 % LOP; lower % for arms). They
// are starting points a physiotherapist edits; the gateway checks every value
// against its limits and refuses what it would not do.

export const TEMPLATES = [
	{
		id: 'standard',
		name: 'Standard 30-15-15-15, continuous',
		exercise: { name: 'knee extension', mode: 'continuous', sets: [30, 15, 15, 15], tempo_s: [2, 2], rest_s: 30, reperfusion_s: 60 },
		pct: { leg: 60, arm: 50 },
	},
	{
		id: 'intermittent',
		name: 'Intermittent 30-15-15-15, deflated in rests',
		exercise: { name: 'leg press', mode: 'intermittent', sets: [30, 15, 15, 15], tempo_s: [1, 2], rest_s: 45, reperfusion_s: 90 },
		pct: { leg: 60, arm: 50 },
	},
	{
		id: 'strength',
		name: 'Low-load strength 4 x 15, continuous',
		exercise: { name: 'biceps curl', mode: 'continuous', sets: [15, 15, 15, 15], tempo_s: [2, 2], rest_s: 60, reperfusion_s: 60 },
		pct: { leg: 70, arm: 50 },
	},
	{
		id: 'cycle',
		name: 'Cycle (KAATSU style) 5 x 30 s on / 10 s off',
		exercise: { name: 'walking', mode: 'cycle', on_s: 30, off_s: 10, cycles: 5, reperfusion_s: 60 },
		pct: { leg: 40, arm: 40 },
	},
	{
		id: 'short',
		name: 'Short trial: 2 sets of 5 reps',
		exercise: { name: 'knee extension', mode: 'continuous', sets: [5, 5], tempo_s: [1, 1], rest_s: 5, reperfusion_s: 60 },
		pct: { leg: 60, arm: 50 },
	},
];

// The form's fields for a template and cuffs (limb "leg" or "arm").
export function formFromTemplate(tpl, cuffs, limb) {
	const e = tpl.exercise;
	return {
		template: tpl.id,
		patient: '',
		name: e.name,
		cuffs: [...cuffs],
		pct_lop: String(tpl.pct[limb === 'arm' ? 'arm' : 'leg']),
		mode: e.mode,
		sets: e.sets ? e.sets.join(', ') : '30, 15, 15, 15',
		tempo_up: String(e.tempo_s ? e.tempo_s[0] : 2),
		tempo_down: String(e.tempo_s ? e.tempo_s[1] : 2),
		rest_s: String(e.rest_s ?? 30),
		on_s: String(e.on_s ?? 30),
		off_s: String(e.off_s ?? 10),
		cycles: String(e.cycles ?? 5),
		reperfusion_s: String(e.reperfusion_s),
	};
}

function int(field, text, errors) {
	const s = String(text).trim();
	if (!/^[0-9]+$/.test(s)) {
		errors.push(`${field}: "${s}" is not a whole number`);
		return 0;
	}
	return Number(s);
}

// The cmd/session/start body ({plan, patient?}) from the form; errors lists
// what is not even well-formed (ranges are the gateway's to check and explain).
export function planFromForm(f) {
	const errors = [];
	const ex = {
		name: String(f.name).trim(),
		cuffs: f.cuffs,
		pct_lop: int('% LOP', f.pct_lop, errors),
		mode: f.mode,
	};
	if (!ex.name) errors.push('exercise name is empty');
	if (!f.cuffs.length) errors.push('choose one cuff, or two for a bilateral exercise');
	if (f.cuffs.length > 2) errors.push('at most two cuffs per exercise');
	if (f.mode === 'cycle') {
		ex.on_s = int('on', f.on_s, errors);
		ex.off_s = int('off', f.off_s, errors);
		ex.cycles = int('cycles', f.cycles, errors);
	} else {
		const parts = String(f.sets).split(/[\s,]+/).filter(Boolean);
		if (!parts.length) errors.push('sets: give the reps of each set, e.g. 30, 15, 15, 15');
		ex.sets = parts.map((p) => int('sets', p, errors));
		ex.tempo_s = [int('tempo up', f.tempo_up, errors), int('tempo down', f.tempo_down, errors)];
		ex.rest_s = int('rest', f.rest_s, errors);
	}
	ex.reperfusion_s = int('reperfusion', f.reperfusion_s, errors);
	const body = { plan: { exercises: [ex] } };
	const patient = String(f.patient || '').trim();
	if (patient) {
		if (/[\s/#+]/.test(patient)) errors.push('patient: a reference without spaces, "/", "#" or "+"');
		body.patient = patient;
	}
	return { body, errors };
}

// The start body from the JSON editor: either {plan, patient?} or a bare plan
// ({exercises: [...]}); errors when it is not JSON or not an object.
export function planFromJson(text) {
	let v;
	try {
		v = JSON.parse(text);
	} catch (e) {
		return { body: null, errors: [`not valid JSON: ${e.message}`] };
	}
	if (!v || typeof v !== 'object' || Array.isArray(v)) {
		return { body: null, errors: ['the plan must be a JSON object'] };
	}
	const body = Array.isArray(v.exercises) ? { plan: v } : v;
	if (!body.plan) return { body: null, errors: ['no "plan" (or "exercises") in the JSON'] };
	delete body.request_id; // the page sets its own
	return { body, errors: [] };
}

// Short description of a plan, for the confirmation line.
export function describePlan(body) {
	const exs = body && body.plan && Array.isArray(body.plan.exercises) ? body.plan.exercises : [];
	return exs.map((e) => {
		const what = e.mode === 'cycle'
			? `${e.cycles} × ${e.on_s} s on / ${e.off_s} s off`
			: `${Array.isArray(e.sets) ? e.sets.join('-') : '?'} reps`;
		return `${e.name}: ${what} at ${e.pct_lop} % LOP on ${(e.cuffs || []).join(' + ')}`;
	}).join('; ');
}
