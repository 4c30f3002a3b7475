/*
 * gateway_private.h - the state the wiring modules (gateway.c, gw_publish.c,
 * gw_command.c, gw_session.c) share. Not an API: everything here lives on
 * the loop thread and is owned by struct gateway.
 *
 * Invariants:
 *  - The safety engine sees every sample before anything else does, and its
 *    DEFLATE actions are written to the cuff before the sample goes on to
 *    the session, telemetry or MQTT (gw_cuff_on_samples).
 *  - Nothing reachable from a cuff callback waits: MQTT publishes go to
 *    Paho's queue or the outbox, records go to the store's writer queue.
 *  - A cuff belongs to at most one session (gw_cuff.session).
 */
#ifndef BFR_GATEWAY_PRIVATE_H
#define BFR_GATEWAY_PRIVATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "alarm.h"
#include "command.h"
#include "config.h"
#include "cuff_link.h"
#include "gateway.h"
#include "limits.h"
#include "loop.h"
#include "mqtt_client.h"
#include "outbox.h"
#include "payload.h"
#include "safety.h"
#include "session.h"
#include "store.h"

/* Pressures have 0.1 mmHg resolution: 6 significant digits print them exactly. */
#define GW_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(6))
#define GW_TELEMETRY_MAX 50     /* samples per telemetry message (schema bound) */
#define GW_TELEMETRY_SLICES 10  /* telemetry goes out in slices of the cuffs */
#define GW_OUTBOX_WINDOW 256    /* QoS 1 messages in flight at once */
#define GW_STATE_MIN_MS 200     /* cuff state: at most 5 publishes/s per cuff */
#define GW_HOUSEKEEPING_MS 1000
#define GW_SHUTDOWN_FLUSH_MS 3000

struct gw_session;

struct gw_telemetry_sample {
	uint32_t t_ms;
	float pressure, target, pulse; /* NAN when the cuff sent a special value */
};

struct gw_cuff {
	struct gateway *gw;
	size_t index;
	const struct config_cuff *cfg;
	struct cuff_link *link;
	struct safety_state safety;
	struct limits limits;

	enum cuff_link_state link_state;
	char link_error[160];
	bool was_ready; /* the link reached READY at least once */
	bool fresh_link; /* READY and no sample seen since */

	bool have_sample;
	double pressure, reported_target, pulse;
	uint16_t status_bits;
	bool have_status;
	struct bfr_status status;
	int battery_pct; /* -1 unknown */
	double commanded_target; /* last SET_TARGET sent, 0 after DEFLATE */
	bool lop_measuring;      /* MEASURE_LOP outside a session in progress */

	struct gw_session *session;

	uint64_t safety_timer;
	uint64_t safety_timer_at;
	uint64_t deflate_logged_ms;

	struct gw_telemetry_sample tele[GW_TELEMETRY_MAX];
	size_t n_tele;

	bool state_dirty;
	double published_pressure;
	uint64_t state_published_ms;
};

struct gw_session {
	struct gateway *gw;
	struct session *s;
	char id[SESSION_ID_BUF];
	char patient[SESSION_ID_BUF];
	bool has_patient;
	struct gw_cuff *cuffs[SESSION_MAX_EXERCISES * SESSION_MAX_CUFFS];
	size_t n_cuffs;
	uint64_t timer;
	uint64_t timer_at;
	uint64_t started_wall_ms;
	json_t *alarm_ids;     /* array of alarm ids noted in this session */
	json_t *pending_notes; /* alarm ids to note once the current call returns */
	unsigned depth;        /* nesting of calls into the session */
	bool abort_pending;
	char abort_reason[64];
	uint8_t abort_deflate_reason;
	bool ended;    /* the session module emitted completed/stopped/aborted */
	bool finished; /* ...and the wiring released its cuffs and published the summary */
	char outcome[16];
	char reason[64];
	uint8_t fig_stored[SESSION_MAX_EXERCISES][SESSION_MAX_SETS]; /* bit per cuff */
	uint64_t state_published_ms;
};

struct gateway {
	struct loop *loop;
	struct config *cfg;
	struct payload_ctx pctx;
	char topic_prefix[TOPIC_MAX];
	uint64_t started_wall_ms;

	struct mqtt_client *mqtt;
	bool mqtt_connected;
	char *will_payload;

	struct store *store; /* NULL when the database could not be opened */
	struct outbox *outbox;
	int64_t outbox_cursor;
	size_t outbox_inflight;
	uint64_t direct_dropped; /* QoS 1 messages lost while running without a store */
	bool store_unhealthy; /* between a DISK_ERROR and the DISK_OK after it */

	struct alarm_table *alarms;
	struct alarm_record *pending_alarms; /* to publish after this batch of events */
	size_t n_pending_alarms, cap_pending_alarms;
	uint64_t alarm_flush_timer;
	uint64_t telemetry_refused; /* QoS 0 publishes Paho would not take */
	json_t *known_alarm_ids;   /* ids raised by this run or closed from the database */
	struct transport_sched *sched;

	struct gw_cuff *cuffs;
	size_t n_cuffs;

	struct gw_session **sessions;
	size_t n_sessions, cap_sessions;
	uint64_t session_counter;
	uint64_t reap_timer;

	uint64_t telemetry_timer;
	unsigned telemetry_slice;
	uint64_t telemetry_due_ms;
	uint64_t housekeeping_timer;
	uint64_t state_flush_timer;
	size_t published_outbox_depth;
	bool stopping;
};

/* gateway.c */
struct gw_cuff *gw_find_cuff(struct gateway *gw, const char *id);
uint64_t gw_wall_ms(struct gateway *gw);
void gw_cuff_mark_dirty(struct gw_cuff *c, bool urgent);
/* Feeds one safety event and executes its actions at once. */
void gw_safety_event(struct gw_cuff *c, const struct safety_event *ev);
/* The same for a question (INFLATE_CMD, LOP_MEASURE): -EPERM and *why when refused. */
int gw_safety_ask(struct gw_cuff *c, const struct safety_event *ev, enum limits_refusal *why);
/* Sends DEFLATE and tells the safety engine; reason enum bfr_deflate_reason. */
void gw_cuff_deflate(struct gw_cuff *c, uint8_t reason, bool rest);
void gw_cuff_rearm_safety(struct gw_cuff *c);
/* Publishes the alarm records waiting for the end of the event batch now
 * (a session event that refers to an alarm must not overtake its record). */
void gw_flush_alarms(struct gateway *gw);

/* gw_publish.c: JSON payloads and the QoS 1 path through the outbox. */
/* QoS 1: outbox first (committed before publishing), or directly without a store. */
int gw_publish_qos1(struct gateway *gw, const char *topic, json_t *payload, unsigned flags);
int gw_publish_qos1_raw(struct gateway *gw, const char *topic, const void *buf, size_t len,
			unsigned flags, const char *msg_id);
void gw_publish_status(struct gateway *gw);
void gw_publish_cuff_state(struct gw_cuff *c);
void gw_publish_telemetry(struct gw_cuff *c);
/* record: also append the change to the database's alarm history. */
void gw_publish_alarm(struct gateway *gw, const struct alarm_record *rec, bool record);
void gw_outbox_drain(struct gateway *gw);
char *gw_status_json(struct gateway *gw, const char *state);

/*
 * gw_session.c. Every call into a session goes through these wrappers:
 * session callbacks run inside session calls and must not call back into
 * the session, so what they trigger (a safety abort, an alarm note) is
 * deferred until the outermost call returns; then the deferred safety
 * events run, the session's timer is re-armed and its state published.
 */
int gw_session_start(struct gateway *gw, const struct command *cmd, struct command_error *err,
		     char *session_id_out);
struct gw_session *gw_session_find(struct gateway *gw, const char *id);
void gw_session_pressure(struct gw_session *gs, const char *cuff, double mmhg, uint64_t now);
void gw_session_lop_result(struct gw_session *gs, const char *cuff, bool ok, double lop,
			   uint64_t now);
/* Noted once per alarm id. */
void gw_session_note_alarm(struct gw_session *gs, const char *alarm_id);
void gw_session_abort(struct gw_session *gs, const char *reason_code, uint8_t deflate_reason);
/* 0, or -EBUSY when the session's state does not allow it. */
int gw_session_pause(struct gw_session *gs);
int gw_session_resume(struct gw_session *gs);
int gw_session_stop(struct gw_session *gs);
void gw_session_publish_state(struct gw_session *gs);
void gw_sessions_free(struct gateway *gw);
/* The refusal code of a limits/safety reason, for replies. */
enum command_error_code gw_refusal_code(enum limits_refusal r);

/* MEASURE_LOP after asking the safety engine; -EPERM with *why when refused. */
int gw_cuff_measure_lop(struct gw_cuff *c, enum limits_refusal *why);

/* gw_command.c */
void gw_command_handle(struct gateway *gw, const char *verb, const uint8_t *payload, size_t len,
		       const char *response_topic, const uint8_t *correlation,
		       size_t correlation_len);

#endif
