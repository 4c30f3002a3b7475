/*
 * messages.h - builders of every JSON payload the gateway publishes
 * (docs/mqtt-api.md, schemas/): one function per message.
 *
 * Pure: plain data in, a new JSON object out (or NULL when out of memory);
 * no I/O, no clock (times come in as wall-clock ms), no gateway state. Each
 * payload gets the envelope (v, ts, msg_id) from the payload context, so a
 * builder is only called when the message is about to be sent. The rules
 * that exist once for the whole daemon live here: how an alarm's numbers
 * are keyed (msg_alarm_values / msg_alarm_values_parse), how a session
 * summary and a per-set figures object look.
 *
 * tests/unit/gateway/test_messages.c builds every message and
 * tests/integration/test_messages_schema.py validates them against schemas/.
 */
#ifndef BFR_MESSAGES_H
#define BFR_MESSAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarm.h"
#include "figures.h"
#include "payload.h"
#include "session.h"

/* Pressures have 0.1 mmHg resolution: 6 significant digits print them exactly. */
#define MSG_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(6))
#define MSG_TELEMETRY_MAX 50 /* samples per telemetry message (schema bound) */

/* status: what the gateway is and how far behind its outbox is. */
struct msg_status {
	const char *state; /* "online" | "offline" */
	const char *gateway;
	const char *site;
	size_t cuffs;
	size_t outbox_depth;
	uint64_t started_wall_ms;
};

json_t *msg_status(struct payload_ctx *ctx, const struct msg_status *st);

/* sessions: the ids of the running sessions. */
json_t *msg_sessions(struct payload_ctx *ctx, const char *const *ids, size_t n);

/* cuff/{cuff}/state. NAN / NULL / -1 where unknown. */
struct msg_cuff_state {
	const char *cuff;
	const char *link;       /* "connected" | "connecting" | "disconnected" | "error" | "unknown" */
	const char *link_error; /* NULL: none */
	double pressure_mmhg;
	double target_mmhg;
	int battery_pct;
	double lop_mmhg;
	const char *session_id;
	const char *const *alarm_ids;
	size_t n_alarms;
	const char *cuff_state; /* "idle" ... "fault"; NULL: unknown */
	const char *limb;
	int status_bits;        /* -1: unknown */
	const char *label;      /* NULL: none configured */
	const char *serial, *model, *firmware; /* NULL or "": not read (yet) */
	uint64_t lop_measured_wall_ms; /* 0: no LOP */
	int64_t data_age_ms;    /* age of the pressure in this state; -1: none */
	bool measuring_lop;
	double lop_search_mmhg; /* the search's pressure while measuring_lop; NAN otherwise */
};

json_t *msg_cuff_state(struct payload_ctx *ctx, const struct msg_cuff_state *st);

struct msg_telemetry_sample {
	uint32_t t_ms;
	float pressure, target, pulse; /* NAN when the cuff sent a special value */
};

json_t *msg_telemetry(struct payload_ctx *ctx, const char *cuff,
		      const struct msg_telemetry_sample *samples, size_t n);

/* alarm/{id}: the full record. */
json_t *msg_alarm(struct payload_ctx *ctx, const struct alarm_record *rec);
/* The `values` object of an alarm record (finite numbers only). */
json_t *msg_alarm_values(const struct alarm_values *values);
/* The `units` object of an alarm record: the unit of each key of values. */
json_t *msg_alarm_units(enum alarm_code code, const json_t *values);
/* The reverse, for values stored with a record (NAN where absent). */
struct alarm_values msg_alarm_values_parse(const char *values_json);

/* session/{id}/event of one session event. */
json_t *msg_session_event(struct payload_ctx *ctx, const char *session_id,
			  const struct session_event *e);

/* session/{id}/state: the session's own state and what the wiring adds. */
struct msg_session_state {
	const char *session_id;
	const struct session_state *st;
	const char *const *cuffs; /* every cuff of the plan */
	size_t n_cuffs;
	const char *patient;     /* NULL: none given */
	uint64_t resume_wall_ms; /* paused: when a resume will be allowed; 0 none */
};

json_t *msg_session_state(struct payload_ctx *ctx, const struct msg_session_state *ss);

/* One set's figures; f NULL for a set that had no samples. */
json_t *msg_set_figures(const struct set_figures *f, unsigned set, const char *cuff);

/* session/{id}/summary. exercises: [{name, sets: [figures...]}], taken over. */
struct msg_summary {
	const char *session_id;
	const char *outcome; /* "completed" | "stopped" | "aborted" */
	const char *reason;  /* NULL or "": none */
	uint64_t started_wall_ms;
	uint64_t ended_wall_ms;
	json_t *alarm_ids;   /* array of ids; borrowed */
	double inflation_s;
	const char *patient; /* NULL: none given */
	const char *by;      /* who stopped it (stop, e-stop); NULL or "": nobody said */
	const char *note;    /* why, in their words; NULL or "": none */
};

json_t *msg_session_summary(struct payload_ctx *ctx, const struct msg_summary *sum,
			    json_t *exercises);

/* The plan as stored with a session (the command's plan, normalised). */
json_t *msg_plan(const struct session_plan *plan);

#endif
