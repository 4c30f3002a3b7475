/*
 * outbox.h - the MQTT store-and-forward outbox: every QoS 1 message is on
 * disk before it may be published, and leaves the disk only on PUBACK.
 *
 * Life of a message: outbox_append() copies it and queues an INSERT with the
 * store's writer; the row exists in memory but is invisible. When the store
 * reports the commit (the wiring passes each store completion to
 * outbox_handle_completion()), the row gets its id - the global send order -
 * and the ready callback fires. The wiring then reads rows with
 * outbox_next(after_id, ...) into its in-flight window, publishes them, and
 * calls outbox_ack(id) on PUBACK, which queues the DELETE (batched with other
 * writes). After a restart, outbox_load_pending() finds every row again, in
 * id order, so they drain in the order they were recorded. Delivery is
 * at-least-once: a row whose DELETE was not yet committed at a crash is sent
 * again; consumers dedupe on msg_id.
 *
 * Memory is bounded whatever the depth: only a window of committed rows is
 * held with its payload - the rows handed out and not yet acknowledged (at
 * most OUTBOX_HANDED_MAX rows / OUTBOX_HANDED_MAX_BYTES) and the rows ahead
 * of them (at most OUTBOX_AHEAD_MAX / OUTBOX_AHEAD_MAX_BYTES, together with
 * the committing rows that keep their payload to join the window at their
 * commit). The rest, the backlog, is on disk only; when fewer than OUTBOX_AHEAD_LOW rows are ahead,
 * the next ones are read back in id order by the store's reader thread
 * (store_outbox_read(): the loop never waits on the disk) and the ready
 * callback fires once they are in. While the backlog is empty (the broker
 * keeps up) new rows join the window at their commit and are never read back.
 * A caller that stops getting rows from outbox_next() with rows still
 * handed out (the broker refusing many of them) gets more once it acks.
 *
 * The bound, max_bytes, counts topic + payload + msg_id of every row held
 * (committing, in the window or in the backlog; the database file is larger):
 *   - fill ratio >= OUTBOX_ALARM_RATIO (0.8): the wiring raises a technical
 *     alarm (outbox_over_alarm_level());
 *   - fill ratio >= 1 (outbox_is_full()): droppable rows (OUTBOX_DROPPABLE:
 *     retained state snapshots) that coalescing does not make room for are
 *     refused with -ENOBUFS, and the wiring refuses new sessions; every other
 *     row (events, alarms, summaries) is still accepted, so the ratio may
 *     exceed 1.
 * Coalescing: a new retained row (OUTBOX_RETAIN) replaces the older droppable
 * retained rows on the same topic that were never returned by outbox_next(),
 * wherever they are (committing, in memory or on disk: their rows are
 * deleted); the new row takes its place at the end of the order. Rows once
 * handed out are never coalesced, so the caller's in-flight ids stay valid.
 *
 * Loop thread only. Row pointers from outbox_next() stay valid until that row
 * is acknowledged or the outbox is freed.
 */
#ifndef BFR_OUTBOX_H
#define BFR_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define OUTBOX_ALARM_RATIO 0.8

/* The window in memory (see above). Ahead: twice the wiring's window of 256. */
#define OUTBOX_AHEAD_MAX 512
#define OUTBOX_AHEAD_MAX_BYTES (512u * 1024)
#define OUTBOX_AHEAD_LOW 256 /* fewer rows ahead: read the next ones */
#define OUTBOX_READ_ROWS 256 /* at most per read */
#define OUTBOX_HANDED_MAX 1024
#define OUTBOX_HANDED_MAX_BYTES (2u * 1024 * 1024)

/* outbox_append flags */
#define OUTBOX_RETAIN 0x1u
#define OUTBOX_DROPPABLE 0x2u /* superseded by a newer retained row on its topic */

struct outbox;

struct outbox_row {
	int64_t id;
	const char *topic;
	const void *payload;
	size_t len;
	int qos;
	bool retain;
	bool droppable;
	const char *msg_id; /* may be NULL */
	int64_t created_ms;
};

struct outbox_stats {
	size_t depth;	    /* rows held (committing + committed), coalesced ones excluded */
	size_t bytes;	    /* their topic + payload + msg_id bytes */
	size_t committing;  /* appended, commit not yet reported */
	size_t window;	    /* committed rows in memory: handed out or ahead */
	size_t window_bytes;
	size_t handed;	    /* of which handed out, not yet acknowledged */
	size_t backlog;	    /* committed rows on disk only */
	uint64_t reads;	    /* backlog reads completed */
	uint64_t read_failed; /* of which failed (asked again by outbox_next) */
	uint64_t coalesced; /* droppable rows replaced by a newer one */
	uint64_t refused;   /* droppable rows refused at the bound (-ENOBUFS) */
	uint64_t failed;    /* rows the database rejected (not published) */
	uint64_t delete_failed; /* acks whose DELETE could not be queued (resent after restart) */
};

typedef void (*outbox_ready_fn)(struct outbox *outbox, void *user_data);

/* max_bytes > 0. The store must outlive the outbox. */
int outbox_new(struct store *store, size_t max_bytes, struct outbox **out);
void outbox_free(struct outbox *outbox);

/* Called after rows became publishable (ids committed). */
void outbox_set_ready_cb(struct outbox *outbox, outbox_ready_fn fn, void *user_data);

/* Start-up only (reads the disk, every row but no payload): counts every
 * stored row, in id order, as committed and not handed out, and asks for the
 * first window (it arrives through the completions). -EBUSY if the outbox is
 * not empty; on any other error nothing is loaded. */
int outbox_load_pending(struct outbox *outbox);

/*
 * Queues a message for commit. flags: OUTBOX_RETAIN, OUTBOX_DROPPABLE (needs
 * OUTBOX_RETAIN). Returns 0, -EINVAL, -ENOBUFS (droppable row over the bound),
 * -EAGAIN (the store's queue is full: the caller keeps the message and should
 * raise storage_error), -ENOMEM.
 */
int outbox_append(struct outbox *outbox, const char *topic, const void *payload, size_t len,
		  int qos, unsigned flags, const char *msg_id, int64_t created_ms);

/* Consumes store completions about outbox rows (returns true), ignores
 * others (false). Call it from the store's completion callback. */
bool outbox_handle_completion(struct outbox *outbox, const struct store_completion *c);

/*
 * Up to max committed rows with id > after_id, in id order, into rows[];
 * *n gets the count (0 when none is in memory yet: the ready callback
 * follows once they are). Marks them handed out; rows not yet handed out
 * stop coming at OUTBOX_HANDED_MAX(_BYTES) handed out and unacknowledged.
 */
int outbox_next(struct outbox *outbox, int64_t after_id, size_t max,
		const struct outbox_row **rows, size_t *n);

/* A committed row in the window by id (every row handed out is), or NULL.
 * The pointer stays valid until the row is acknowledged or the outbox freed. */
const struct outbox_row *outbox_get(const struct outbox *outbox, int64_t id);

/*
 * The rows not handed out yet that are in memory, in send order, up to the
 * first one that is not: the committed rows ahead in the window, then (when
 * no backlog lies between them) the committing rows that hold their payload,
 * in append order; superseded snapshots are skipped. Calls fn for each (the
 * row's id is 0 while it commits) and returns how many rows not handed out
 * it could not show (in the backlog, or committing without their payload).
 * For the publisher's copies while the disk fails: a copy of a later row must
 * not overtake an earlier one that was never sent.
 */
typedef void (*outbox_row_fn)(const struct outbox_row *row, void *user_data);
size_t outbox_foreach_unsent(const struct outbox *outbox, outbox_row_fn fn, void *user_data);

/* PUBACK for id: forgets the row and queues its DELETE. -ENOENT unknown id. */
int outbox_ack(struct outbox *outbox, int64_t id);

size_t outbox_depth(const struct outbox *outbox);
size_t outbox_bytes(const struct outbox *outbox);
/* bytes / max_bytes (may exceed 1.0, see above). */
double outbox_fill_ratio(const struct outbox *outbox);
bool outbox_over_alarm_level(const struct outbox *outbox);
/* bytes >= max_bytes: the 100 % of the policy above. */
bool outbox_is_full(const struct outbox *outbox);
void outbox_get_stats(const struct outbox *outbox, struct outbox_stats *out);

#endif
