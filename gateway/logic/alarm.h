/*
 * alarm.h - the alarm model of IEC 60601-1-8 as DESIGN §4 and
 * docs/safety.md state it.
 *
 * Every alarm has a priority (high / medium / low), a kind (physiological /
 * technical) and a state: active -> acknowledged -> cleared. Whether its
 * condition is still present is tracked separately (condition_present).
 *   - A HIGH alarm latches: it stays open (active, or acknowledged) until it
 *     has been acknowledged AND its condition is gone, whichever comes last.
 *   - A MEDIUM or LOW alarm clears when its condition clears, acknowledged
 *     or not.
 *   - Acknowledging one alarm changes no other alarm.
 *   - At most one open alarm per (cuff, code): raising it again updates its
 *     values and condition_present, never creates a second record.
 *   - Cleared alarms leave the table; their record is emitted once with
 *     state "cleared" (the caller publishes the empty retained payload).
 *
 * Ids are "<gateway_id>-<seq>", seq a counter the caller seeds (restore it
 * from the store after a restart so ids never repeat) and that only grows.
 *
 * Storage is a fixed table allocated once by alarm_table_new(); raising,
 * acknowledging and clearing never allocate. Since duplicates are
 * impossible, a table of alarm_table_capacity_for(n_cuffs) slots can never
 * fill. If a smaller table does fill, the last ALARM_HIGH_RESERVE free slots
 * are kept for HIGH alarms (a MEDIUM/LOW raise gets -ENOSPC there, never a
 * HIGH one), and a HIGH raise into a completely full table evicts the oldest
 * open LOW, then MEDIUM, alarm (emitting it as cleared with message
 * "evicted"); only a table full of HIGH alarms refuses a HIGH (-ENOSPC).
 *
 * Every change calls the record callback synchronously with the full
 * record; the pointer is valid only during the call. Times are whatever
 * clock the caller passes (use wall-clock epoch ms: they are published as
 * timestamps); 0 means "not yet" for acked_at_ms and cleared_at_ms.
 *
 * Pure: no I/O, no clock, no allocation after alarm_table_new().
 *
 * Cost (the table is on the receive path): raise, condition_cleared, ack,
 * find_open, find_id, has_unacked_high and list_open of one cuff take time
 * independent of the capacity (hash lookups of the cuff and of the id, then
 * at most ALARM_CODE_COUNT slots); list_open(NULL) is linear in the open
 * alarms; open_count is O(1). Only a HIGH raise into a full, too-small table
 * (eviction) and a restore older than open alarms walk the open alarms.
 */
#ifndef BFR_ALARM_H
#define BFR_ALARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum alarm_code {
	ALARM_OVER_PRESSURE_CEILING = 0,
	ALARM_FULL_OCCLUSION,
	ALARM_PRESSURE_HIGH,
	ALARM_PRESSURE_LOW,
	ALARM_LEAK,
	ALARM_INFLATION_TIME,
	ALARM_INFLATION_TIME_WARNING,
	ALARM_SESSION_INFLATION_TOTAL,
	ALARM_TELEMETRY_LOST,
	ALARM_LINK_LOST_INFLATED,
	ALARM_DEFLATE_FAILED,
	ALARM_SENSOR_FAULT,
	ALARM_SUPERVISION_DEFLATED,
	ALARM_BATTERY_LOW,
	ALARM_BATTERY_CRITICAL,
	ALARM_LOP_INVALID,
	ALARM_CUFF_FAULT,
	ALARM_ESTOP,
	ALARM_OUTBOX_FULL,
	ALARM_STORAGE_ERROR,
	ALARM_BROKER_REFUSED,
	ALARM_CODE_COUNT,
};

enum alarm_priority { ALARM_PRIO_LOW = 0, ALARM_PRIO_MEDIUM, ALARM_PRIO_HIGH };
enum alarm_kind { ALARM_KIND_PHYSIOLOGICAL = 0, ALARM_KIND_TECHNICAL };
enum alarm_state { ALARM_STATE_ACTIVE = 0, ALARM_STATE_ACKNOWLEDGED, ALARM_STATE_CLEARED };

/* The numbers an alarm carries; NAN where not applicable. */
struct alarm_values {
	double pressure_mmhg;
	double target_mmhg;
	double limit;      /* the limit crossed, in its own unit (mmHg, s, %) */
	double duration_s; /* how long the condition lasted when detected */
};

#define ALARM_ID_MAX 80      /* "<gateway_id>-<seq>" + NUL */
#define ALARM_GATEWAY_MAX 48 /* gateway id, NUL included */
#define ALARM_CUFF_MAX 48    /* cuff id, NUL included; "" = gateway-wide */
#define ALARM_SESSION_MAX 64
#define ALARM_BY_MAX 65      /* who acknowledged: 64 bytes of UTF-8 + NUL (cmd/alarm/ack checks) */
#define ALARM_MSG_MAX 96
#define ALARM_HIGH_RESERVE 4

struct alarm_record {
	char alarm_id[ALARM_ID_MAX];
	char cuff[ALARM_CUFF_MAX];
	char session_id[ALARM_SESSION_MAX]; /* "" when raised outside a session */
	enum alarm_code code;
	enum alarm_priority priority;
	enum alarm_kind kind;
	enum alarm_state state;
	bool condition_present;
	uint64_t seq;
	uint64_t raised_at_ms;
	uint64_t acked_at_ms;   /* 0: not acknowledged */
	char acked_by[ALARM_BY_MAX];
	uint64_t cleared_at_ms; /* 0: open */
	char message[ALARM_MSG_MAX];
	struct alarm_values values;
};

typedef void (*alarm_record_fn)(const struct alarm_record *rec, void *user_data);

struct alarm_table;

/* Slots that guarantee the table never fills: one per (cuff, code) plus gateway-wide. */
size_t alarm_table_capacity_for(size_t n_cuffs);

/*
 * gateway_id: non-empty, < ALARM_GATEWAY_MAX. first_seq: the next id
 * number (>= 1). fn may be NULL. -EINVAL on bad arguments, -ENOMEM.
 */
int alarm_table_new(const char *gateway_id, size_t capacity, uint64_t first_seq,
		    alarm_record_fn fn, void *user_data, struct alarm_table **out);
void alarm_table_free(struct alarm_table *t);

/*
 * Raises (or re-raises) code on cuff ("" for gateway-wide codes) with its
 * condition present. A new alarm is active with priority and kind from the
 * code table; an open one gets its values, message and condition_present
 * updated (a record is emitted only if something changed). message NULL
 * uses the code's default text; values NULL means all NAN. session_id NULL
 * or "" means none. *id_out (may be NULL, ALARM_ID_MAX bytes) gets the id.
 * -EINVAL for an unknown code, an over-long or non-printable string, a
 * gateway-wide code on a cuff or a cuff code without one; -ENOSPC (see the
 * header comment). Nothing changes on failure.
 */
int alarm_raise(struct alarm_table *t, const char *cuff, const char *session_id,
		enum alarm_code code, const char *message, const struct alarm_values *values,
		uint64_t now_ms, char *id_out);

/*
 * The condition of (cuff, code) is gone. Latched (HIGH, unacknowledged):
 * stays open with condition_present false. Otherwise: cleared. 0 if there
 * is no open alarm for (cuff, code) (clearing is idempotent); -EINVAL for
 * bad arguments.
 */
int alarm_condition_cleared(struct alarm_table *t, const char *cuff, enum alarm_code code,
			    uint64_t now_ms);

/*
 * Acknowledges alarm_id by `by` (non-empty, no control characters, UTF-8
 * welcome, < ALARM_BY_MAX bytes: command.c refuses a longer one by name).
 * Clears it at once if its condition is gone. -ENOENT for an unknown or
 * closed id, -EALREADY if already acknowledged, -EINVAL for bad strings.
 */
int alarm_ack(struct alarm_table *t, const char *alarm_id, const char *by, uint64_t now_ms);

/*
 * Puts back an open alarm recorded by an earlier run (e.g. a latched HIGH
 * still awaiting acknowledgement), without emitting a record; the id
 * counter moves past rec->seq. Priority and kind come from the code table.
 * -EINVAL for a bad record or a cleared one, -EEXIST if (cuff, code) or the
 * id is already open, -ENOSPC when the table is full.
 */
int alarm_restore(struct alarm_table *t, const struct alarm_record *rec);

/* An open, unacknowledged HIGH alarm on cuff, or a gateway-wide one (e.g. estop). */
bool alarm_has_unacked_high(const struct alarm_table *t, const char *cuff);

/*
 * Open alarms (of cuff, or all when cuff is NULL) in raise order. Fills up
 * to cap pointers, valid until the next raise/clear/ack; *n_out gets the
 * total number (which may exceed cap).
 */
int alarm_list_open(const struct alarm_table *t, const char *cuff,
		    const struct alarm_record **out, size_t cap, size_t *n_out);
/* The open alarm of (cuff, code), or NULL. */
const struct alarm_record *alarm_find_open(const struct alarm_table *t, const char *cuff,
					   enum alarm_code code);
/* The open alarm with this id, or NULL. */
const struct alarm_record *alarm_find_id(const struct alarm_table *t, const char *alarm_id);
size_t alarm_open_count(const struct alarm_table *t);
uint64_t alarm_next_seq(const struct alarm_table *t);

/* The code table (docs/safety.md). Unknown codes: "unknown", HIGH, technical. */
const char *alarm_code_name(enum alarm_code code);
int alarm_code_from_name(const char *name, enum alarm_code *out);
enum alarm_priority alarm_code_priority(enum alarm_code code);
enum alarm_kind alarm_code_kind(enum alarm_code code);
bool alarm_code_latching(enum alarm_code code);
bool alarm_code_gateway_wide(enum alarm_code code);
const char *alarm_code_default_message(enum alarm_code code);
/* Unit of values.limit ("mmHg", "s", "%", "reason code"); NULL: no limit. */
const char *alarm_code_limit_unit(enum alarm_code code);
/*
 * The message of a raise, in a clinician's words with its figures, e.g.
 * "pressure 262 mmHg above the 250 mmHg ceiling: cuff deflated". detail:
 * the engine's message; a specific one (not the code's default) is kept as
 * it is. Falls back to the default when figures are missing. ASCII, cut
 * to len (ALARM_MSG_MAX fits every sentence).
 */
void alarm_describe(enum alarm_code code, const struct alarm_values *v, const char *detail,
		    char *buf, size_t len);

const char *alarm_priority_name(enum alarm_priority p);
const char *alarm_kind_name(enum alarm_kind k);
const char *alarm_state_name(enum alarm_state s);

#endif
