// Shared by the dashboard's unit tests: a view must never show a placeholder
// of the language ("undefined", "NaN", "null", "[object Object]").

import assert from 'node:assert/strict';

export const BAD = /\b(undefined|NaN|None|null|\[object Object\])\b/;

// Every string in a view object (recursively).
export function strings(v, out = []) {
	if (typeof v === 'string') out.push(v);
	else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
	else if (v && typeof v === 'object') Object.values(v).forEach((x) => strings(x, out));
	return out;
}

export function assertClean(view) {
	for (const s of strings(view)) assert.doesNotMatch(s, BAD, `view shows "${s}"`);
}
