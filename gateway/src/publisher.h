/*
 * publisher.h - everything the gateway sends to the broker goes through
 * here: the QoS 1 pump (outbox first, Paho only after the commit, removed on
 * PUBACK), QoS 0 telemetry, and the few messages that go straight out.
 *
 * It owns the outbox and its send window (cursor, messages in flight) and
 * the store's completion stream (the outbox's commits arrive there), so the
 * whole life of a QoS 1 message is in this one file:
 *   append (outbox, queued for commit) -> committed (ready) -> handed to Paho
 *   (in flight, at most the window: PUBLISHER_WINDOW or the broker's Receive
 *   Maximum if lower; PUBLISHER_DRAIN_BATCH per turn of
 *   the loop) -> PUBACK (ack: DELETE queued).
 * A failed publish stays in the outbox and is sent again, in order, after the
 * next connect (consumers dedupe on msg_id); after a connect the window
 * starts over from the oldest unacknowledged row. Only a PUBACK the broker
 * accepted removes a row: one it refused (reason code >= 0x80: an ACL deny,
 * a quota) stays, is reported (on_broker_refused) and is offered again, in
 * id order with the other refused rows, with a backoff of 1 s doubling to
 * PUBLISHER_RETRY_MAX_MS, until the broker takes it; then on_broker_refused
 * reports the end (present false).
 *
 * Without a store (the database could not be opened) QoS 1 messages go
 * straight to Paho while connected and are counted as lost otherwise. While
 * the disk fails, a QoS 1 message is also sent at once (its committed copy
 * follows later with the same msg_id), so an alarm is not held back by the
 * very disk it reports.
 *
 * Upward it reports only through the callbacks its owner registers; it
 * calls nothing above it. Loop thread only.
 */
#ifndef BFR_PUBLISHER_H
#define BFR_PUBLISHER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "mqtt_client.h"
#include "outbox.h"
#include "payload.h"
#include "store.h"

#define PUBLISHER_WINDOW 256 /* QoS 1 messages in flight at once */
#define PUBLISHER_DRAIN_BATCH 64 /* rows handed to Paho per turn of the loop */
#define PUBLISHER_REFILL_MIN 32  /* with rows in flight, refill once this many slots are free */
/* Of a broker's Receive Maximum, at most this many slots (and at most an
 * eighth) are left to the QoS 1 messages that bypass the outbox: replies,
 * the status, copies while the disk fails (publisher_send_window). */
#define PUBLISHER_DIRECT_RESERVE 4
#define PUBLISHER_RETRY_MIN_MS 1000
#define PUBLISHER_RETRY_MAX_MS 60000

struct publisher;

struct publisher_callbacks {
	/* A QoS 1 message could not be queued in the outbox (err: -EAGAIN store
	 * queue full, -ENOMEM, ...): the caller raises storage_error. */
	void (*on_outbox_refused)(const char *topic, int err, void *user_data);
	/* The store's writer hit a disk error (ok false, message) or recovered. */
	void (*on_disk_health)(bool ok, const char *message, void *user_data);
	/* The broker refused a row (present, its topic and PUBACK reason), or
	 * every refused row has been delivered since (present false). */
	void (*on_broker_refused)(bool present, const char *topic, int reason_code,
				  const char *reason, void *user_data);
};

/*
 * store may be NULL (no persistence). With a store the outbox is created,
 * the rows of an earlier run are reloaded (they drain first, in order) and
 * the store's completion fd is watched. Nothing goes to the broker before
 * a client is set and connected. -errno.
 */
int publisher_new(struct loop *loop, struct store *store, size_t outbox_max_bytes,
		  struct payload_ctx *ctx, const struct publisher_callbacks *cb, void *user_data,
		  struct publisher **out);
/*
 * Retained QoS 1 messages whose topic contains topic_infix (e.g. "/session/":
 * sessions' state and summary) carry an MQTT 5 Message Expiry: expiry_s
 * after they were composed (what is left of it when the outbox sends them
 * late), so the broker forgets them and retained topics do not pile up.
 * expiry_s 0: none. Alarms and the rest never expire.
 */
int publisher_expire_retained(struct publisher *pub, const char *topic_infix,
			      uint32_t expiry_s);
/* The MQTT client to publish through; NULL before it is freed. */
void publisher_set_client(struct publisher *pub, struct mqtt_client *mqtt);
/* Waits up to flush_ms for the store to commit what is queued, then frees. */
void publisher_free(struct publisher *pub, unsigned flush_ms);

/*
 * QoS 1 through the outbox. flags: OUTBOX_RETAIN, OUTBOX_DROPPABLE (a
 * retained snapshot a newer one supersedes). 0, -ENOBUFS (a droppable
 * snapshot over the outbox bound: the next one will do), or -errno (then
 * it was logged and on_outbox_refused has been called). Callers may ignore
 * the result: everything that can be done about a failure is done here.
 */
int publisher_qos1(struct publisher *pub, const char *topic, json_t *payload, unsigned flags);
int publisher_qos1_raw(struct publisher *pub, const char *topic, const void *buf, size_t len,
		       unsigned flags, const char *msg_id);
/* QoS 0, never queued: -ENOTCONN while disconnected, -EAGAIN when Paho is full.
 * Nothing is reported back (a failure is counted and logged here). */
int publisher_qos0(struct publisher *pub, const char *topic, json_t *payload);
/* The same for a payload already serialised (len bytes of text). */
int publisher_qos0_text(struct publisher *pub, const char *topic, const char *text, size_t len);
/*
 * Paho holds PUBLISHER_QOS0_MAX_PENDING QoS 0 messages it has not written
 * yet (the broker or the network is slower than the telemetry): new
 * telemetry should wait, its samples kept, rather than lengthen a queue the
 * QoS 1 outbox shares (Paho refuses everything past its buffer) and that
 * Paho scans on every send while holding the lock publishing needs.
 */
#define PUBLISHER_QOS0_MAX_PENDING 4096
bool publisher_qos0_busy(const struct publisher *pub);
/*
 * A retained snapshot that is published again and again while it holds
 * (a cuff's state, the sessions index): QoS 0 straight to Paho, never
 * queued (after an outage the current one is sent, not the backlog), with
 * an MQTT 5 Message Expiry of expiry_s (0: none), so the broker drops it
 * once the gateway stops refreshing it. -ENOTCONN while disconnected.
 */
int publisher_snapshot(struct publisher *pub, const char *topic, json_t *payload,
		       uint32_t expiry_s);
/* Straight to Paho (QoS 1), not recorded: messages regenerated on every
 * connect (status "online") and replies. -ENOTCONN while disconnected. */
int publisher_direct(struct publisher *pub, const char *topic, const void *buf, size_t len,
		     bool retain);
int publisher_reply(struct publisher *pub, const char *response_topic,
		    const uint8_t *correlation, size_t correlation_len, const void *buf,
		    size_t len);

/*
 * The send window for a broker's Receive Maximum (mqtt_client.h):
 * PUBLISHER_WINDOW, or fewer when the broker lets fewer be in flight, less
 * PUBLISHER_DIRECT_RESERVE slots (at most an eighth) for the QoS 1
 * messages sent past the outbox. So the outbox itself never makes Paho
 * hold a QoS 1 message it may not send yet: Paho sends such a message only
 * at the next publish or a second later, and walks its whole queue at
 * every publish behind it (docs/benchmarks.md, fifth round). Replies in a
 * burst larger than the reserve, or what Paho kept from a lost connection,
 * can still meet a full window for a moment. *refill_min gets how many
 * free slots a full window waits for before it is refilled
 * (PUBLISHER_REFILL_MIN of a full window, scaled; at least 1). At least 1
 * itself.
 */
size_t publisher_send_window(unsigned receive_max, size_t *refill_min);

/* Hands committed rows to Paho if the window has room (also a periodic kick:
 * a burst Paho refused with -EAGAIN is retried from here). */
void publisher_drain(struct publisher *pub);

/* From the owner's MQTT callbacks. */
void publisher_connected(struct publisher *pub);
void publisher_publish_result(struct publisher *pub, uint64_t tag,
			      const struct mqtt_publish_result *res);
/* Rows the broker refused, waiting to be offered again. */
size_t publisher_refused_count(const struct publisher *pub);

bool publisher_is_connected(const struct publisher *pub);
bool publisher_has_store(const struct publisher *pub);
size_t publisher_outbox_depth(const struct publisher *pub);
bool publisher_outbox_over_alarm_level(const struct publisher *pub);
/* The outbox holds outbox_max_mib or more (outbox_is_full): new sessions are
 * refused until it drains; running ones go on. False without a store. */
bool publisher_outbox_full(const struct publisher *pub);

#endif
