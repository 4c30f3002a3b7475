/*
 * command.h - strict validation of MQTT command payloads, and replies.
 *
 * Commands arrive on `cmd/{verb}`; command_parse() turns one payload into a
 * struct command or a refusal with a stable error code and a message that
 * names the field (`plan.exercises[0].pct_lop: 120 is above 100`). JSON is
 * parsed by jansson (duplicate keys refused). Checks here are the ones a
 * payload can fail on its own; the wiring then checks what needs the
 * gateway's state (unknown_cuff, cuff_busy, limit_exceeded, ...) and
 * refuses with the same codes through command_error_set().
 *
 * Invariants: pure (no I/O, no clock, no global state besides jansson's
 * allocator); parsing changes nothing outside its output; `out` is written
 * only on success. schemas/cmd-*.schema.json state the same rules; the
 * exceptions a JSON Schema cannot express are documented in docs/sessions.md
 * (duplicate keys, payload size).
 *
 * Validation order, so the reported error is predictable: JSON syntax, top
 * level is an object, request_id, unknown fields, then the remaining fields
 * in the order of the verb's field list; inside arrays, element by element.
 */
#ifndef BFR_COMMAND_H
#define BFR_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "limits.h"
#include "prescription.h"
#include "session.h"

/* Larger payloads are refused before parsing. */
#define COMMAND_PAYLOAD_MAX 65536
#define COMMAND_ESTOP_MAX_CUFFS 32
#define COMMAND_MSG_ID_MAX 200 /* code points */
#define COMMAND_TS_MAX 64      /* bytes; the format is checked too */
#define COMMAND_MESSAGE_MAX 256
#define COMMAND_REASON_MAX 128 /* code points of a stop's or e-stop's reason */

enum command_verb {
	CMD_SESSION_START = 0,
	CMD_SESSION_PAUSE,
	CMD_SESSION_RESUME,
	CMD_SESSION_STOP,
	CMD_ESTOP,
	CMD_ALARM_ACK,
	CMD_LOP_MEASURE,
	CMD_CUFF_IDENTIFY,
	CMD_SNAPSHOT,
	CMD_PRESCRIPTION_SET,
	CMD_PRESCRIPTION_CLEAR,
	CMD_VERB_COUNT,
};

/* Stable codes; the strings (command_error_name) are the API. Never renumber
 * in a way that changes a string; add new codes at the end. */
enum command_error_code {
	CMD_ERR_NONE = 0,
	CMD_ERR_BAD_JSON,       /* "bad_json": not JSON, or duplicate keys */
	CMD_ERR_BAD_REQUEST,    /* "bad_request": not an object, too large, bad characters,
				 * duplicates, fields that do not fit the mode */
	CMD_ERR_UNKNOWN_FIELD,  /* "unknown_field" */
	CMD_ERR_MISSING_FIELD,  /* "missing_field" */
	CMD_ERR_WRONG_TYPE,     /* "wrong_type": incl. 2.5 where an integer is expected */
	CMD_ERR_OUT_OF_RANGE,   /* "out_of_range": numbers, lengths, counts, enum values */
	CMD_ERR_UNKNOWN_VERB,   /* "unknown_verb" */
	/* Set by the wiring, which knows the gateway's state: */
	CMD_ERR_UNKNOWN_CUFF,   /* "unknown_cuff" */
	CMD_ERR_CUFF_BUSY,      /* "cuff_busy" */
	CMD_ERR_LIMIT_EXCEEDED, /* "limit_exceeded" */
	CMD_ERR_ALARM_UNACKED,  /* "alarm_unacked" */
	CMD_ERR_REPERFUSION,    /* "reperfusion" */
	CMD_ERR_SESSION_TOTAL,  /* "session_total" */
	CMD_ERR_LOP_INVALID,    /* "lop_invalid" */
	CMD_ERR_BATTERY_LOW,    /* "battery_low" */
	CMD_ERR_NOT_FOUND,      /* "not_found" */
	CMD_ERR_BAD_STATE,      /* "bad_state" */
	CMD_ERR_NOT_CONNECTED,  /* "not_connected" */
	CMD_ERR_INTERNAL,       /* "internal": out of memory and the like */
	CMD_ERR_CUFF_FAULT,     /* "cuff_fault": the cuff reports a fault */
	CMD_ERR_RATE_LIMITED,   /* "rate_limited": this requester sends too many commands */
	CMD_ERR_OVERLOADED,     /* "overloaded": too many commands waiting: not read */
	CMD_ERR_OUTBOX_FULL,    /* "outbox_full": the outbox is at its bound: no new session */
	CMD_ERR_COUNT,
};

struct command_error {
	enum command_error_code code;
	/* The request_id when the payload had a valid one, else "". */
	char request_id[SESSION_ID_BUF];
	char message[COMMAND_MESSAGE_MAX];
	/* > 0: the same request will not be refused for this reason after
	 * this many seconds (a reperfusion wait); in the reply's error. */
	uint32_t retry_after_s;
};

struct command {
	enum command_verb verb;
	char request_id[SESSION_ID_BUF];
	/* session/start */
	struct session_plan plan;
	bool has_patient;
	char patient[SESSION_ID_BUF];
	/* session/pause, session/resume, session/stop */
	char session_id[SESSION_ID_BUF];
	/* estop: 0 cuffs means every cuff of the gateway */
	unsigned n_cuffs;
	char cuffs[COMMAND_ESTOP_MAX_CUFFS][SESSION_ID_BUF];
	/* alarm/ack (required); session/stop, estop (optional: "" when absent) */
	char alarm_id[SESSION_ID_BUF];
	char by[SESSION_NAME_BUF];
	/* session/stop, estop: why, in the clinician's words ("" when absent) */
	char reason[COMMAND_REASON_MAX * 4 + 1];
	/* lop/measure, cuff/identify */
	char cuff[SESSION_ID_BUF];
	/* prescription/set: its plan and patient are in plan, has_patient and
	 * patient above, as for session/start */
	struct prescription_rules rules;
};

/* "session/start" ... as in the topic `cmd/{verb}`. -ENOENT when unknown. */
int command_verb_parse(const char *name, enum command_verb *out);
const char *command_verb_name(enum command_verb verb);
const char *command_error_name(enum command_error_code code);

/*
 * Parses and validates one payload of `verb`. 0 with *out filled; -EINVAL
 * with *err describing the refusal; -ENOMEM with err->code CMD_ERR_INTERNAL.
 * err may not be NULL; *out is untouched unless 0 is returned.
 */
int command_parse(enum command_verb verb, const void *payload, size_t len,
		  struct command *out, struct command_error *err);

/* Fills *err (request_id may be NULL); the message is printf-formatted and
 * truncated to fit. For the wiring's refusals. */
void command_error_set(struct command_error *err, enum command_error_code code,
		       const char *request_id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * The reply `{v, ts, msg_id, request_id, ok, session_id?, error?}` as compact
 * JSON in *out (free() it). ok is true when err is NULL or err->code is
 * CMD_ERR_NONE; session_id (may be NULL) is included only when ok.
 * request_id NULL or "" gives `"request_id": null` (the payload had none).
 * ts and msg_id come from the caller (logic reads no clock). -EINVAL on a
 * missing ts/msg_id or text that is not valid UTF-8; -ENOMEM.
 */
int command_reply_build(const char *request_id, const char *ts, const char *msg_id,
			const char *session_id, const struct command_error *err, char **out);

/* The reply code for a refusal of the limits or the safety engine. */
enum command_error_code command_refusal_code(enum limits_refusal refusal);

/* Shared checks, also for the wiring and other payloads: */
/* 1..64 code points, valid UTF-8, no '/', '#', '+' or white space. */
bool command_id_valid(const char *s);

#endif
