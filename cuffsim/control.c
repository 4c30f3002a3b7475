/*
 * control.c - control-line and scenario parsers.
 *
 * Table-driven: each verb declares whether it takes a cuff, whether `all`
 * is allowed, and its numeric arguments with ranges and defaults, so the
 * checks are the same for every verb and a new verb is one table row.
 */
#include "control.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 6
#define SCENARIO_LINE_MAX 1024
#define SCENARIO_MAX_OFFSET_S 1e6

enum cuff_arg { CUFF_NONE, CUFF_ONE, CUFF_ONE_OR_ALL };

struct num_arg {
	const char *name;
	double min, max;
	bool min_exclusive;
	bool optional;
	double def;
};

/* A word from a fixed set, after the cuff; each word stands for a value. */
struct kw_arg {
	const char *name;
	const char *words[2];
	double values[2];
};

struct verb_spec {
	const char *name;
	enum control_verb verb;
	enum cuff_arg cuff;
	unsigned n_num;
	struct num_arg num[2];
	const struct kw_arg *kw; /* NULL: none */
};

static const struct kw_arg BUTTON_KIND = {
	"kind", { "long", "short" }, { CONTROL_BUTTON_LONG_MS, CONTROL_BUTTON_SHORT_MS },
};

static const struct verb_spec VERBS[] = {
	{ "leak", CTL_LEAK, CUFF_ONE_OR_ALL, 1,
	  { { "rate", 0, 1000, true, true, 5.0 } }, NULL },
	{ "stuck-valve", CTL_STUCK_VALVE, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "sensor-freeze", CTL_SENSOR_FREEZE, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "stall", CTL_STALL, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "drop", CTL_DROP, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "battery", CTL_BATTERY, CUFF_ONE_OR_ALL, 1,
	  { { "pct", 0, 100, false, false, 0 } }, NULL },
	{ "deflate-fail", CTL_DEFLATE_FAIL, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "lop-fail", CTL_LOP_FAIL, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "spike", CTL_SPIKE, CUFF_ONE_OR_ALL, 2,
	  { { "mmhg", -300, 300, false, false, 0 }, { "ms", 1, 60000, false, true, 500 } }, NULL },
	{ "clear", CTL_CLEAR, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "limit", CTL_LIMIT, CUFF_ONE_OR_ALL, 1,
	  { { "mmhg", 0, 400, true, false, 0 } }, NULL },
	{ "button", CTL_BUTTON, CUFF_ONE_OR_ALL, 0, { { 0 } }, &BUTTON_KIND },
	{ "service-changed", CTL_SERVICE_CHANGED, CUFF_ONE_OR_ALL, 1,
	  { { "shift", 0, CONTROL_MAX_SHIFT, false, false, 0 } }, NULL },
	{ "cp-hang", CTL_CP_HANG, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "supervision-lost", CTL_SUPERVISION_LOST, CUFF_ONE_OR_ALL, 0, { { 0 } }, NULL },
	{ "lop-value", CTL_LOP_VALUE, CUFF_ONE_OR_ALL, 1,
	  { { "mmhg", 0, 1000, false, false, 0 } }, NULL },
	{ "stats", CTL_STATS, CUFF_NONE, 0, { { 0 } }, NULL },
	{ "status", CTL_STATUS, CUFF_ONE, 0, { { 0 } }, NULL },
	{ "quit", CTL_QUIT, CUFF_NONE, 0, { { 0 } }, NULL },
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *control_verb_name(enum control_verb verb)
{
	for (size_t i = 0; i < sizeof(VERBS) / sizeof(VERBS[0]); i++)
		if (VERBS[i].verb == verb)
			return VERBS[i].name;
	return "?";
}

/* Plain decimal only: strtod would also take hex, "inf" and "nan". */
static bool parse_number(const char *tok, double *out)
{
	char *end;
	double v;

	if (tok[strspn(tok, "0123456789+-.eE")] != '\0' || !strpbrk(tok, "0123456789"))
		return false;
	errno = 0;
	v = strtod(tok, &end);
	if (errno || *end != '\0' || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool parse_cuff(const char *tok, unsigned n_cuffs, bool allow_all, unsigned *out)
{
	unsigned long v;
	char *end;

	if (allow_all && strcmp(tok, "all") == 0) {
		*out = CONTROL_ALL;
		return true;
	}
	if (tok[strspn(tok, "0123456789")] != '\0' || strlen(tok) > 6)
		return false;
	v = strtoul(tok, &end, 10);
	if (*end != '\0' || v < 1 || v > n_cuffs)
		return false;
	*out = (unsigned)v;
	return true;
}

int control_parse(const char *line, unsigned n_cuffs, struct control_cmd *out, char *err,
		  size_t errlen)
{
	char buf[CONTROL_LINE_MAX + 1];
	char *tok[MAX_TOKENS + 1];
	const struct verb_spec *spec = NULL;
	struct control_cmd cmd = { 0 };
	size_t len, ntok = 0, next;
	char *save = NULL, *t;

	if (!line) {
		set_err(err, errlen, "empty line");
		return -EINVAL;
	}
	len = strlen(line);
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > CONTROL_LINE_MAX) {
		set_err(err, errlen, "line longer than %d characters", CONTROL_LINE_MAX);
		return -EINVAL;
	}
	memcpy(buf, line, len);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)buf[i] < 0x20 && buf[i] != '\t') {
			set_err(err, errlen, "control character in line");
			return -EINVAL;
		}
	}
	for (t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (ntok == MAX_TOKENS) {
			set_err(err, errlen, "too many arguments");
			return -EINVAL;
		}
		tok[ntok++] = t;
	}
	if (ntok == 0) {
		set_err(err, errlen, "empty line");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(VERBS) / sizeof(VERBS[0]); i++)
		if (strcmp(VERBS[i].name, tok[0]) == 0)
			spec = &VERBS[i];
	if (!spec) {
		set_err(err, errlen, "unknown command '%.40s'", tok[0]);
		return -EINVAL;
	}
	cmd.verb = spec->verb;
	next = 1;
	if (spec->cuff != CUFF_NONE) {
		if (ntok < 2) {
			set_err(err, errlen, "%s: missing cuff (1..%u%s)", spec->name, n_cuffs,
				spec->cuff == CUFF_ONE_OR_ALL ? " or all" : "");
			return -EINVAL;
		}
		if (!parse_cuff(tok[1], n_cuffs, spec->cuff == CUFF_ONE_OR_ALL, &cmd.cuff)) {
			set_err(err, errlen, "%s: bad cuff '%.20s' (1..%u%s)", spec->name, tok[1],
				n_cuffs, spec->cuff == CUFF_ONE_OR_ALL ? " or all" : "");
			return -EINVAL;
		}
		next = 2;
	}
	if (spec->kw) {
		const struct kw_arg *kw = spec->kw;
		size_t w;

		if (next >= ntok) {
			set_err(err, errlen, "%s: missing %s (%s or %s)", spec->name, kw->name,
				kw->words[0], kw->words[1]);
			return -EINVAL;
		}
		for (w = 0; w < 2 && strcmp(tok[next], kw->words[w]) != 0; w++)
			;
		if (w == 2) {
			set_err(err, errlen, "%s: %s '%.20s' is not %s or %s", spec->name, kw->name,
				tok[next], kw->words[0], kw->words[1]);
			return -EINVAL;
		}
		cmd.value = kw->values[w];
		next++;
	}
	if (ntok - next > spec->n_num) {
		set_err(err, errlen, "%s: too many arguments", spec->name);
		return -EINVAL;
	}
	for (unsigned i = 0; i < spec->n_num; i++) {
		const struct num_arg *a = &spec->num[i];
		double v = a->def;

		if (next + i >= ntok) {
			if (!a->optional) {
				set_err(err, errlen, "%s: missing %s", spec->name, a->name);
				return -EINVAL;
			}
		} else if (!parse_number(tok[next + i], &v)) {
			set_err(err, errlen, "%s: %s '%.20s' is not a number", spec->name, a->name,
				tok[next + i]);
			return -EINVAL;
		}
		if (v < a->min || v > a->max || (a->min_exclusive && v == a->min)) {
			set_err(err, errlen, "%s: %s %g out of range (%s%g..%g)", spec->name,
				a->name, v, a->min_exclusive ? ">" : "", a->min, a->max);
			return -EINVAL;
		}
		if (i == 0)
			cmd.value = v;
		else
			cmd.value2 = v;
	}
	if (cmd.verb == CTL_SPIKE && cmd.value == 0) {
		set_err(err, errlen, "spike: mmhg must not be 0");
		return -EINVAL;
	}
	if (cmd.verb == CTL_SERVICE_CHANGED && cmd.value != floor(cmd.value)) {
		set_err(err, errlen, "service-changed: shift %g is not a whole number", cmd.value);
		return -EINVAL;
	}
	*out = cmd;
	return 0;
}

/* --- scenarios ------------------------------------------------------------- */

void scenario_free(struct scenario *s)
{
	if (!s)
		return;
	free(s->entries);
	free(s);
}

static int parse_scenario_line(const char *line, size_t len, unsigned lineno, unsigned n_cuffs,
			       struct scenario_entry *e, char *err, size_t errlen)
{
	char buf[SCENARIO_LINE_MAX + 1];
	char msg[160];
	char *p, *offset_end;
	double offset_s;

	if (len > SCENARIO_LINE_MAX) {
		set_err(err, errlen, "line %u: longer than %d characters", lineno,
			SCENARIO_LINE_MAX);
		return -EINVAL;
	}
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (memchr(line, '\0', len)) {
		set_err(err, errlen, "line %u: NUL byte", lineno);
		return -EINVAL;
	}
	p = strchr(buf, '#');
	if (p)
		*p = '\0';
	p = buf + strspn(buf, " \t\r");
	if (*p == '\0')
		return 1; /* blank or comment */
	offset_end = p + strcspn(p, " \t");
	if (*offset_end == '\0') {
		set_err(err, errlen, "line %u: missing command after the offset", lineno);
		return -EINVAL;
	}
	*offset_end = '\0';
	if (!parse_number(p, &offset_s) || offset_s < 0 || offset_s > SCENARIO_MAX_OFFSET_S) {
		set_err(err, errlen, "line %u: bad offset '%.20s' (seconds, 0..%g)", lineno, p,
			SCENARIO_MAX_OFFSET_S);
		return -EINVAL;
	}
	if (control_parse(offset_end + 1, n_cuffs, &e->cmd, msg, sizeof(msg)) < 0) {
		set_err(err, errlen, "line %u: %s", lineno, msg);
		return -EINVAL;
	}
	e->at_ms = (uint64_t)llround(offset_s * 1000.0);
	e->line = lineno;
	return 0;
}

int scenario_parse(const char *text, size_t len, unsigned n_cuffs, struct scenario **out,
		   char *err, size_t errlen)
{
	struct scenario *s = NULL;
	size_t cap = 0, pos = 0;
	unsigned lineno = 0;
	int ret = -EINVAL;

	if (!text || !out) {
		set_err(err, errlen, "no scenario");
		goto fail;
	}
	ret = -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - (text + pos)) : len - pos;
		struct scenario_entry e;
		int r;

		lineno++;
		r = parse_scenario_line(text + pos, llen, lineno, n_cuffs, &e, err, errlen);
		pos += llen + (nl ? 1 : 0);
		if (r < 0) {
			ret = r;
			goto fail;
		}
		if (r > 0)
			continue;
		if (s->n && e.at_ms < s->entries[s->n - 1].at_ms) {
			set_err(err, errlen, "line %u: offset goes back in time (line %u is later)",
				lineno, s->entries[s->n - 1].line);
			ret = -EINVAL;
			goto fail;
		}
		if (s->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct scenario_entry *ne = realloc(s->entries, ncap * sizeof(*ne));

			if (!ne) {
				set_err(err, errlen, "out of memory");
				ret = -ENOMEM;
				goto fail;
			}
			s->entries = ne;
			cap = ncap;
		}
		s->entries[s->n++] = e;
	}
	*out = s;
	return 0;
fail:
	scenario_free(s);
	return ret;
}

int scenario_load(const char *path, unsigned n_cuffs, struct scenario **out, char *err,
		  size_t errlen)
{
	FILE *f = NULL;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int ret;

	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nt;

			if (ncap > (16u << 20)) {
				set_err(err, errlen, "%s: larger than 16 MiB", path);
				ret = -EFBIG;
				goto fail;
			}
			nt = realloc(text, ncap);
			if (!nt) {
				set_err(err, errlen, "out of memory");
				ret = -ENOMEM;
				goto fail;
			}
			text = nt;
			cap = ncap;
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		set_err(err, errlen, "%s: read error", path);
		ret = -EIO;
		goto fail;
	}
	ret = scenario_parse(text, len, n_cuffs, out, err, errlen);
	if (ret < 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", err ? err : "");
		set_err(err, errlen, "%s: %s", path, msg);
	}
fail:
	free(text);
	if (f)
		fclose(f);
	return ret;
}
