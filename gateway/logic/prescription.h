/*
 * prescription.h - a home patient's prescription (DESIGN section 11) and the
 * rules that decide whether a prescribed session may start locally now.
 *
 * A prescription is the plan a clinician set with cmd/prescription/set, the
 * window it is valid in, how many sessions a day it allows, the minimum
 * time between two of them and the supervision it needs. The patient can
 * only start that plan, locally (the cuff's button, `bfr-gateway ctl
 * start`); prescription_may_start() says whether that is allowed now and,
 * when it is not, why: a stable code and a sentence a patient can read.
 *
 * "Day" is the caller's: it passes the bounds of the local calendar day
 * that contains now (the gateway's time zone, docs/sessions.md), so this
 * module needs no time zone data and tests can put "now" anywhere.
 *
 * Invariants: pure. No I/O, no clock (the wall time comes in as an
 * argument), no global state; outputs are written only on success (the
 * verdict is written in both cases of prescription_may_start()).
 */
#ifndef BFR_PRESCRIPTION_H
#define BFR_PRESCRIPTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

#define PRESCRIPTION_MAX_PER_DAY_MIN 1
#define PRESCRIPTION_MAX_PER_DAY_MAX 10
#define PRESCRIPTION_MAX_PER_DAY_DEFAULT 1
#define PRESCRIPTION_MIN_HOURS_MAX 48
#define PRESCRIPTION_MIN_HOURS_DEFAULT 0
#define PRESCRIPTION_SENTENCE_MAX 320
/* "2026-11-24T09:30:00.123Z" and its NUL. */
#define PRESCRIPTION_TIME_BUF 32
/* Payloads of the supervisor presence larger than this are refused. */
#define SUPERVISOR_PAYLOAD_MAX 4096

enum prescription_supervision {
	PRESCRIPTION_SUPERVISION_NONE = 0, /* "none" */
	PRESCRIPTION_SUPERVISION_REMOTE,   /* "remote": reviewed afterwards */
	PRESCRIPTION_SUPERVISION_LIVE,     /* "live": a clinician's presence is required */
};

struct prescription_rules {
	int64_t valid_from_ms;  /* wall ms since the epoch, inclusive */
	int64_t valid_until_ms; /* exclusive; > valid_from_ms */
	unsigned max_per_day;   /* 1..10 */
	unsigned min_hours_between; /* 0..48 */
	enum prescription_supervision supervision;
};

struct prescription {
	struct session_plan plan;
	bool has_patient;
	char patient[SESSION_ID_BUF];
	struct prescription_rules rules;
};

/* Stable codes; the strings (prescription_refusal_name) are the API. */
enum prescription_refusal {
	PRESCRIPTION_OK = 0,
	PRESCRIPTION_REFUSE_NONE,              /* "no_prescription" */
	PRESCRIPTION_REFUSE_NOT_YET_VALID,     /* "not_yet_valid" */
	PRESCRIPTION_REFUSE_EXPIRED,           /* "expired" */
	PRESCRIPTION_REFUSE_DAILY_LIMIT,       /* "daily_limit" */
	PRESCRIPTION_REFUSE_TOO_SOON,          /* "too_soon" */
	PRESCRIPTION_REFUSE_SUPERVISOR_ABSENT, /* "supervisor_absent" */
	PRESCRIPTION_REFUSE_COUNT,
};

/* What "now" is: the wall time, the local day it falls in, live presence. */
struct prescription_now {
	int64_t wall_ms;
	int64_t day_start_ms; /* the local day containing wall_ms: [start, end) */
	int64_t day_end_ms;
	bool supervisor_present;
};

struct prescription_verdict {
	enum prescription_refusal refusal;
	unsigned started_today;   /* local starts in [day_start, day_end) */
	int64_t next_start_ms;    /* refused for time: when it may start; 0: not known */
	char sentence[PRESCRIPTION_SENTENCE_MAX]; /* for the patient; "" when allowed */
};

const char *prescription_refusal_name(enum prescription_refusal refusal);
const char *prescription_supervision_name(enum prescription_supervision s);
/* "none" | "remote" | "live" -> *out; -EINVAL otherwise. */
int prescription_supervision_parse(const char *name, enum prescription_supervision *out);

/*
 * May the prescribed session start now? p NULL: there is no prescription.
 * starts: wall ms of the sessions started locally so far (any order; those
 * of earlier prescriptions count too). Checks, in this order: a
 * prescription exists, now is inside [valid_from, valid_until), fewer than
 * max_per_day starts today, at least min_hours_between since the latest
 * start (a start "in the future", after the wall clock went back, counts as
 * just now), and for live supervision a clinician present. 0 when allowed,
 * -EPERM when refused; *out is filled in both cases. -EINVAL on bad
 * arguments (out untouched).
 */
int prescription_may_start(const struct prescription *p, const int64_t *starts, size_t n_starts,
			   const struct prescription_now *now, struct prescription_verdict *out);

/*
 * A sentence for the patient when the gateway itself refused to start the
 * prescribed plan (the cuff is not connected, its battery is low, ...):
 * code is the reply error code's name ("not_connected", "battery_low", ...;
 * docs/sessions.md). Never NULL.
 */
const char *prescription_start_error_sentence(const char *code);

/* Wall ms as "2026-11-24T09:30:00.123Z" (UTC). -EINVAL when out of 0..9999-12-31. */
int prescription_format_time(int64_t wall_ms, char out[PRESCRIPTION_TIME_BUF]);

/*
 * The prescription as the JSON object of cmd/prescription/set without
 * request_id and envelope: {plan, patient?, valid_from, valid_until,
 * max_per_day, min_hours_between, supervision}, times in UTC with
 * milliseconds. It parses back (command_parse, with a request_id added) to
 * the same prescription: it is both the stored and the published form.
 * NULL on allocation failure or a time out of range.
 */
json_t *prescription_to_json(const struct prescription *p);
/* The plan in the form cmd/session/start takes (cycle exercises without
 * sets/tempo_s/rest_s). NULL on allocation failure. */
json_t *prescription_plan_json(const struct session_plan *plan);

/* The clinician's presence on `supervisor` (DESIGN section 11). */
struct supervisor_presence {
	bool online;
	char by[SESSION_NAME_BUF]; /* "" when not given */
};

/*
 * Parses one `supervisor` payload: {"state": "online"|"offline", "by": text}
 * ("by" 1..64 characters without control characters, required when
 * online); other fields are ignored (consumers ignore what they do not
 * know), duplicate keys are not. An empty payload (the retained presence
 * was removed) is offline. 0 with *out; -EINVAL with a reason in err
 * (errlen bytes) and *out untouched; -ENOMEM.
 */
int supervisor_presence_parse(const void *payload, size_t len, struct supervisor_presence *out,
			      char *err, size_t errlen);

#endif
