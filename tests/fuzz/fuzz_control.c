/*
 * fuzz_control.c - libFuzzer target: cuffsim's control-line and scenario
 * parsers (cuffsim/control.c), against a reference parser written here
 * from docs/cuffsim.md ("Faults", "Control socket", "Scenarios").
 *
 * Input: bytes 0-1 the number of cuffs (0..1001), byte 2 bit 0 the mode
 * (0: one control line, cut at its first NUL; 1: a scenario text), the
 * rest the text. Checks:
 *   - the parser accepts exactly what the reference accepts, and then
 *     yields the same verb, cuff and numbers;
 *   - a rejected line or scenario changes nothing (*out untouched) and
 *     comes with a non-empty message (a scenario's names its line);
 *   - every accepted command is inside the documented ranges.
 * The reference: a line is at most 256 characters after one trailing "\n"
 * and "\r", has no control character but tab, splits on blanks; the verb
 * table, cuff index 1..N or `all` (at most 6 digits, the parser's limit),
 * decimal numbers ([+-]digits[.digits][e[+-]digits], finite, no
 * under/overflow) and their ranges are those of the docs.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                \
	do {                       \
		if (!(cond))       \
			abort();   \
	} while (0)

struct ref_arg {
	double min, max;
	bool min_exclusive, optional;
	double def;
};

struct ref_verb {
	const char *name;
	enum control_verb verb;
	int cuff; /* 0 none, 1 one, 2 one or all */
	int n;
	struct ref_arg a[2];
};

/* docs/cuffsim.md, "Faults" and "Control socket". */
static const struct ref_verb ref_verbs[] = {
	{ "leak", CTL_LEAK, 2, 1, { { 0, 1000, true, true, 5 } } },
	{ "stuck-valve", CTL_STUCK_VALVE, 2, 0, { { 0, 0, false, false, 0 } } },
	{ "sensor-freeze", CTL_SENSOR_FREEZE, 2, 0, { { 0, 0, false, false, 0 } } },
	{ "stall", CTL_STALL, 2, 0, { { 0, 0, false, false, 0 } } },
	{ "drop", CTL_DROP, 2, 0, { { 0, 0, false, false, 0 } } },
	{ "battery", CTL_BATTERY, 2, 1, { { 0, 100, false, false, 0 } } },
	{ "deflate-fail", CTL_DEFLATE_FAIL, 2, 0, { { 0, 0, false, false, 0 } } },
	{ "lop-fail", CTL_LOP_FAIL, 2, 0, { { 0, 0, false, false, 0 } } },
	{ "spike", CTL_SPIKE, 2, 2, { { -300, 300, false, false, 0 }, { 1, 60000, false, true, 500 } } },
	{ "clear", CTL_CLEAR, 2, 0, { { 0, 0, false, false, 0 } } },
	{ "limit", CTL_LIMIT, 2, 1, { { 0, 400, true, false, 0 } } },
	{ "stats", CTL_STATS, 0, 0, { { 0, 0, false, false, 0 } } },
	{ "status", CTL_STATUS, 1, 0, { { 0, 0, false, false, 0 } } },
	{ "quit", CTL_QUIT, 0, 0, { { 0, 0, false, false, 0 } } },
};

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A plain decimal number: [+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)? */
static bool ref_number(const char *s, size_t n, double *out)
{
	char buf[300];
	size_t i = 0, d = 0;
	char *end;
	double v;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	while (i < n && digit(s[i]))
		i++, d++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && digit(s[i]))
			i++, d++;
	}
	if (d == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && digit(s[i]))
			i++, e++;
		if (e == 0)
			return false;
	}
	if (i != n || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (errno || !isfinite(v))
		return false;
	*out = v;
	return true;
}

#define MAX_REF_TOKENS 8

/* 0 and *out, or -EINVAL: the reference verdict on one control line of len bytes. */
static int ref_line(const char *line, size_t len, unsigned n_cuffs, struct control_cmd *out)
{
	const char *tok[MAX_REF_TOKENS];
	size_t tlen[MAX_REF_TOKENS], nt = 0, next;
	const struct ref_verb *v = NULL;
	struct control_cmd c = { 0 };

	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > 256)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			return -EINVAL;
	for (size_t i = 0; i < len;) {
		size_t start;

		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		if (nt == MAX_REF_TOKENS)
			return -EINVAL; /* more than any verb takes */
		tok[nt] = line + start;
		tlen[nt++] = i - start;
	}
	if (nt == 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(ref_verbs) / sizeof(ref_verbs[0]); i++)
		if (strlen(ref_verbs[i].name) == tlen[0] &&
		    memcmp(ref_verbs[i].name, tok[0], tlen[0]) == 0)
			v = &ref_verbs[i];
	if (!v)
		return -EINVAL;
	c.verb = v->verb;
	next = 1;
	if (v->cuff) {
		unsigned long idx = 0;

		if (nt < 2)
			return -EINVAL;
		if (v->cuff == 2 && tlen[1] == 3 && memcmp(tok[1], "all", 3) == 0) {
			c.cuff = CONTROL_ALL;
		} else {
			if (tlen[1] == 0 || tlen[1] > 6)
				return -EINVAL;
			for (size_t i = 0; i < tlen[1]; i++) {
				if (!digit(tok[1][i]))
					return -EINVAL;
				idx = idx * 10 + (unsigned long)(tok[1][i] - '0');
			}
			if (idx < 1 || idx > n_cuffs)
				return -EINVAL;
			c.cuff = (unsigned)idx;
		}
		next = 2;
	}
	if (nt - next > (size_t)v->n)
		return -EINVAL;
	for (int i = 0; i < v->n; i++) {
		const struct ref_arg *a = &v->a[i];
		double x = a->def;

		if (next + (size_t)i >= nt) {
			if (!a->optional)
				return -EINVAL;
		} else if (!ref_number(tok[next + i], tlen[next + i], &x)) {
			return -EINVAL;
		}
		if (x < a->min || x > a->max || (a->min_exclusive && x == a->min))
			return -EINVAL;
		if (i == 0)
			c.value = x;
		else
			c.value2 = x;
	}
	if (c.verb == CTL_SPIKE && c.value == 0)
		return -EINVAL;
	*out = c;
	return 0;
}

static bool same_cmd(const struct control_cmd *a, const struct control_cmd *b)
{
	return a->verb == b->verb && a->cuff == b->cuff && a->value == b->value &&
	       a->value2 == b->value2;
}

static void fuzz_line(const char *text, size_t len, unsigned n_cuffs)
{
	struct control_cmd got, want;
	char err[128];
	int r, ref;

	memset(&got, 0xA5, sizeof(got));
	memset(err, 0x5A, sizeof(err));
	r = control_parse(text, n_cuffs, &got, err, sizeof(err));
	ref = ref_line(text, len, n_cuffs, &want);
	CHECK(r == ref);
	if (r < 0) {
		struct control_cmd untouched;

		memset(&untouched, 0xA5, sizeof(untouched));
		CHECK(memcmp(&got, &untouched, sizeof(got)) == 0);
		CHECK(memchr(err, '\0', sizeof(err)) && err[0]);
		return;
	}
	CHECK(same_cmd(&got, &want));
	CHECK(strcmp(control_verb_name(got.verb), "?") != 0);
}

/* The reference scenario: lines "<offset_s> <control line>", '#' comments. */
static int ref_scenario(const char *text, size_t len, unsigned n_cuffs,
			struct scenario_entry *out, size_t cap, size_t *n_out)
{
	size_t pos = 0, n = 0;
	unsigned lineno = 0;

	while (pos < len) {
		const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - l) : len - pos, i = 0, start, end;
		double offset;
		struct scenario_entry e;

		pos += ll + (nl ? 1 : 0);
		lineno++;
		if (ll > 1024 || memchr(l, '\0', ll))
			return -EINVAL;
		if (memchr(l, '#', ll))
			ll = (size_t)((const char *)memchr(l, '#', ll) - l);
		while (i < ll && (l[i] == ' ' || l[i] == '\t' || l[i] == '\r'))
			i++;
		if (i == ll)
			continue;
		start = i;
		while (i < ll && l[i] != ' ' && l[i] != '\t')
			i++;
		end = i;
		if (i == ll)
			return -EINVAL; /* no command after the offset */
		if (!ref_number(l + start, end - start, &offset) || offset < 0 || offset > 1e6)
			return -EINVAL;
		if (ref_line(l + end + 1, ll - end - 1, n_cuffs, &e.cmd) < 0)
			return -EINVAL;
		e.at_ms = (uint64_t)llround(offset * 1000.0);
		e.line = lineno;
		if (n && e.at_ms < out[n - 1].at_ms)
			return -EINVAL;
		CHECK(n < cap);
		out[n++] = e;
	}
	*n_out = n;
	return 0;
}

static void fuzz_scenario(const char *text, size_t len, unsigned n_cuffs)
{
	static struct scenario_entry want[4096];
	struct scenario *s = (struct scenario *)0x5a5a;
	char err[256];
	size_t n = 0;
	int r, ref;

	err[0] = '\0';
	r = scenario_parse(text, len, n_cuffs, &s, err, sizeof(err));
	ref = ref_scenario(text, len, n_cuffs, want, sizeof(want) / sizeof(want[0]), &n);
	CHECK(r == ref || (r == -ENOMEM && ref == 0));
	if (r < 0) {
		CHECK(s == (struct scenario *)0x5a5a);
		CHECK(r == -ENOMEM || strncmp(err, "line ", 5) == 0);
		return;
	}
	CHECK(s->n == n);
	for (size_t i = 0; i < n; i++) {
		CHECK(s->entries[i].at_ms == want[i].at_ms && s->entries[i].line == want[i].line);
		CHECK(same_cmd(&s->entries[i].cmd, &want[i].cmd));
	}
	scenario_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	unsigned n_cuffs;
	size_t len;

	if (size < 3)
		return 0;
	n_cuffs = (unsigned)(data[0] | data[1] << 8) % (CONTROL_MAX_CUFFS + 2);
	len = size - 3;
	/* An exact-size copy: ASan sees any read past the text. */
	text = malloc(len + 1);
	CHECK(text);
	memcpy(text, data + 3, len);
	text[len] = '\0';
	if (data[2] & 1)
		fuzz_scenario(text, len, n_cuffs);
	else
		fuzz_line(text, strlen(text), n_cuffs);
	free(text);
	return 0;
}
