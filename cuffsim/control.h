/*
 * control.h - cuffsim's control language: one command per line, used by the
 * control socket and by --scenario files.
 *
 * Pure parsers: a line (or a scenario text) goes in, a validated command
 * comes out, or an error message saying what was wrong. Validation is
 * complete here (verb, cuff index against the number of cuffs, argument
 * count, numbers and their ranges), so executing a parsed command cannot
 * fail on its input, and a rejected line changes nothing.
 *
 * Grammar (docs/cuffsim.md): `verb [cuff|all] [keyword] [numbers...]`,
 * tokens separated by blanks; numbers are plain decimals (no hex, inf or
 * nan); a keyword is one of the verb's fixed words (`button 1 long`).
 */
#ifndef CUFFSIM_CONTROL_H
#define CUFFSIM_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define CONTROL_ALL 0u            /* cuff == CONTROL_ALL means every cuff */
#define CONTROL_LINE_MAX 256      /* longer lines are rejected */
#define CONTROL_MAX_CUFFS 1000
/* How long `button <cuff> long|short` holds the cuff's button (DESIGN section 11: long >= 2 s). */
#define CONTROL_BUTTON_LONG_MS 2500
#define CONTROL_BUTTON_SHORT_MS 300
/* `service-changed <cuff> <shift>`: the new filler count, as --handle-shift. */
#define CONTROL_MAX_SHIFT 1000

enum control_verb {
	CTL_LEAK,
	CTL_STUCK_VALVE,
	CTL_SENSOR_FREEZE,
	CTL_STALL,
	CTL_DROP,
	CTL_BATTERY,
	CTL_DEFLATE_FAIL,
	CTL_LOP_FAIL,
	CTL_SPIKE,
	CTL_CLEAR,
	CTL_LIMIT,
	CTL_BUTTON,
	CTL_SERVICE_CHANGED,
	CTL_CP_HANG,
	CTL_SUPERVISION_LOST,
	CTL_LOP_VALUE,
	CTL_STATS,
	CTL_STATUS,
	CTL_QUIT,
};

struct control_cmd {
	enum control_verb verb;
	unsigned cuff;  /* 1..n_cuffs, or CONTROL_ALL; 0 for verbs without a cuff */
	double value;   /* leak rate, battery pct, spike mmHg, limit mmHg, button hold ms, shift */
	double value2;  /* spike duration ms */
};

/*
 * Parses one line (a trailing "\n" or "\r\n" is allowed). 0 and *out set,
 * or -EINVAL with a message in err (always NUL-terminated when errlen > 0)
 * and *out untouched.
 */
int control_parse(const char *line, unsigned n_cuffs, struct control_cmd *out, char *err,
		  size_t errlen);
const char *control_verb_name(enum control_verb verb);

struct scenario_entry {
	uint64_t at_ms;     /* offset from start */
	unsigned line;      /* 1-based line in the file, for messages */
	struct control_cmd cmd;
};

struct scenario {
	struct scenario_entry *entries;
	size_t n;
};

/*
 * Parses a scenario: lines `<offset_seconds> <control line>`, blank lines
 * and `#` comments ignored, offsets non-decreasing. The whole text is
 * validated before anything is returned; an error names the line.
 * 0, -EINVAL (message in err) or -ENOMEM.
 */
int scenario_parse(const char *text, size_t len, unsigned n_cuffs, struct scenario **out,
		   char *err, size_t errlen);
/* Reads and parses a file; -errno of the read (message in err) too. */
int scenario_load(const char *path, unsigned n_cuffs, struct scenario **out, char *err,
		  size_t errlen);
void scenario_free(struct scenario *s);

#endif
