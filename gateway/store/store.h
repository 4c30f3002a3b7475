/*
 * store.h - the gateway's durable records (SQLite, WAL) written by a writer
 * thread so the event loop never waits on the disk.
 *
 * Threads: every function here is called from one thread, the loop thread,
 * except where noted. The loop enqueues records (store_session_*, store_alarm_*,
 * store_lop_*, store_outbox_*); enqueueing copies the data and never touches
 * the disk. A private writer thread commits queued records in FIFO order, a
 * batch per transaction, then reports each record back through an eventfd
 * (store_completion_fd) that the loop registers with loop_add_io and answers
 * with store_dispatch_completions(). A record is "recorded" once its
 * STORE_DONE_COMMITTED completion is delivered: from then on kill -9 or power
 * loss cannot lose it (synchronous=FULL).
 *
 * Invariants:
 *   - Commit order is enqueue order; completions are delivered in that order.
 *   - Disk errors (full, I/O, read-only, corrupt, busy) never fail a record:
 *     the batch is rolled back, kept at the head of the queue and retried with
 *     backoff; the caller sees STORE_DONE_DISK_ERROR, then STORE_DONE_DISK_OK
 *     when a retry succeeds. Only a record the database itself rejects (e.g. an
 *     event for an unknown session, a duplicate seq) completes with
 *     STORE_DONE_REJECTED and is not retried.
 *   - The queue is bounded (bytes and records). Above half the byte bound only
 *     critical records (everything except droppable outbox rows and LOP
 *     measurements) are accepted; at the bound every enqueue returns -EAGAIN
 *     and counts it in stats.rejected_full. The caller owns what it could not
 *     enqueue (and should raise the storage_error alarm).
 *
 * Synchronous reads (store_list_open_sessions, store_outbox_load,
 * store_outbox_scan, store_export_sessions) read the database on the calling
 * thread: use them at start-up or from the CLI, never while supervising cuffs.
 * The one read the loop needs while running, the outbox's next rows, is
 * asynchronous (store_outbox_read): a reader thread runs it on a read-only
 * connection of its own and reports it through the same completion stream.
 */
#ifndef BFR_STORE_H
#define BFR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct store;
struct store_outbox_row;

/* File name of the database inside data_dir. */
#define STORE_DB_NAME "bfr-gateway.db"

struct store_config {
	const char *data_dir;	  /* created (0700) if missing */
	size_t queue_max_bytes;	  /* 0: 16 MiB */
	size_t queue_max_records; /* 0: 65536 */
	unsigned batch_max;	  /* records per transaction; 0: 512 */
	unsigned retry_min_ms;	  /* first retry after a disk error; 0: 50 */
	unsigned retry_max_ms;	  /* backoff cap; 0: 2000 */
};

enum store_rec_kind {
	STORE_REC_SESSION_BEGIN,
	STORE_REC_SESSION_STATE,
	STORE_REC_SESSION_END,
	STORE_REC_EVENT,
	STORE_REC_FIGURES,
	STORE_REC_ALARM,
	STORE_REC_LOP,
	STORE_REC_OUTBOX_APPEND,
	STORE_REC_OUTBOX_DELETE,
	STORE_REC_COMMAND_REPLY,
	STORE_REC_OUTBOX_READ, /* not a write: the result of store_outbox_read() */
	STORE_REC_PRESCRIPTION_SET,
	STORE_REC_PRESCRIPTION_CLEAR,
	STORE_REC_HOME_START,
};

enum store_done_kind {
	STORE_DONE_COMMITTED,  /* record is on disk; row_id set for OUTBOX_APPEND */
	STORE_DONE_REJECTED,   /* database refused the record (error); not retried */
	STORE_DONE_DISK_ERROR, /* status: a batch failed (error, sqlite_code, message); retrying */
	STORE_DONE_DISK_OK,    /* status: a retry succeeded after DISK_ERROR */
};

struct store_completion {
	enum store_done_kind kind;
	enum store_rec_kind rec; /* not meaningful for DISK_ERROR / DISK_OK */
	uint64_t tag;		 /* the caller's tag given at enqueue */
	int64_t row_id;		 /* outbox id of a committed OUTBOX_APPEND, else 0 */
	int error;		 /* -errno for REJECTED and DISK_ERROR, else 0 */
	int sqlite_code;	 /* extended SQLite code, or 0 */
	const char *message;	 /* valid during the callback only; may be "" */
	/* OUTBOX_READ only, valid during the callback: the rows read, in id
	 * order, and read_to: every row with after_id < id <= read_to is among
	 * them (the rest of the range is for the next read). */
	const struct store_outbox_row *rows;
	size_t n_rows;
	int64_t read_to;
};

typedef void (*store_completion_fn)(const struct store_completion *c, void *user_data);

struct store_stats {
	size_t queued_records; /* enqueued, not yet committed */
	size_t queued_bytes;
	uint64_t committed;	   /* records committed since open */
	uint64_t rejected;	   /* STORE_DONE_REJECTED */
	uint64_t rejected_full;	   /* enqueues refused with -EAGAIN */
	uint64_t batches;	   /* successful transactions */
	uint64_t disk_errors;	   /* failed batch attempts */
	uint64_t last_batch_us;	   /* duration of the last successful commit */
	uint64_t max_batch_us;
	uint64_t total_batch_us;
	int last_error;		   /* -errno of the last disk error, 0 once healthy */
	bool healthy;
	uint64_t reads;		   /* store_outbox_read() results delivered (ok or failed) */
	uint64_t read_rows;	   /* rows they returned */
	uint64_t read_failed;	   /* reads that failed (REJECTED) */
	uint64_t max_read_us;	   /* longest read on the reader thread */
	uint64_t total_read_us;
};

/*
 * Opens (creating if needed) data_dir/STORE_DB_NAME, applies migrations, and
 * starts the writer thread. Errors: -EPROTO the schema is newer than this code,
 * -EROFS the file or directory is read-only, -EBADMSG not a database or
 * corrupt, -ENOMEM, other -errno. err (may be NULL) gets a reason naming the
 * file.
 */
int store_open(const struct store_config *cfg, struct store **out, char *err, size_t errlen);

/*
 * Stops the writer after one last attempt to commit what is queued (bounded:
 * while the disk keeps failing, queued records are dropped and counted in
 * *lost if lost is not NULL). Undelivered completions are discarded. NULL ok.
 */
void store_close(struct store *store, size_t *lost);

/* The eventfd to watch for EPOLLIN; owned by the store. */
int store_completion_fd(const struct store *store);
void store_set_completion_cb(struct store *store, store_completion_fn fn, void *user_data);
/* Delivers every pending completion to the callback, in commit order. Returns
 * the number delivered. Non-blocking. */
int store_dispatch_completions(struct store *store);

/* Blocks until the queue is empty or timeout_ms passes (-ETIMEDOUT). For
 * shutdown and tests only: it waits on the disk. */
int store_flush(struct store *store, int timeout_ms);

void store_get_stats(struct store *store, struct store_stats *out);

/* --- records (enqueue; 0, -EINVAL bad argument, -EAGAIN queue full, -ENOMEM) --
 * Strings are UTF-8 and copied. *_json arguments must be valid JSON text
 * (checked here, -EINVAL otherwise) so exports are always valid. Times are
 * wall-clock ms since the epoch. tag is returned in the completion. */

int store_session_begin(struct store *store, const char *session_id, const char *plan_json,
			const char *patient, int64_t started_ms, uint64_t tag);
/* Latest session state (phase, counters) so a restart can tell where it was. */
int store_session_state(struct store *store, const char *session_id, const char *state_json,
			uint64_t tag);
/* outcome: "completed" | "stopped" | "aborted". */
int store_session_end(struct store *store, const char *session_id, const char *outcome,
		      int64_t ended_ms, uint64_t tag);
/* seq: 1, 2, 3 ... per session (unique: a duplicate is REJECTED). */
int store_session_event(struct store *store, const char *session_id, uint32_t seq,
			const char *type, const char *payload_json, int64_t ts_ms, uint64_t tag);
/* Upsert of one set's figures (a later write for the same key replaces it). */
int store_set_figures(struct store *store, const char *session_id, uint32_t exercise,
		      uint32_t set, const char *cuff, const char *figures_json, uint64_t tag);

struct store_alarm {
	const char *alarm_id;
	const char *cuff;	/* may be NULL */
	const char *session_id; /* may be NULL */
	const char *code;
	const char *priority; /* "high" | "medium" | "low" */
	const char *kind;     /* "physiological" | "technical" */
	const char *state;    /* "active" | "acknowledged" | "cleared" */
	bool condition_present;
	int64_t raised_ms;
	int64_t acked_ms;   /* 0: not acknowledged */
	const char *acked_by; /* may be NULL */
	int64_t cleared_ms; /* 0: not cleared */
	const char *message;	 /* may be NULL */
	const char *values_json; /* may be NULL */
};
/* Upserts the alarm's current record and appends a history row stamped
 * changed_ms: call it on every lifecycle change. */
int store_alarm_record(struct store *store, const struct store_alarm *alarm, int64_t changed_ms,
		       uint64_t tag);

int store_lop_record(struct store *store, const char *cuff, const char *session_id,
		     double lop_mmHg, int64_t measured_ms, uint64_t tag);

/* The reply given to a command (its JSON text), by request_id (SR-27). */
int store_command_reply(struct store *store, const char *request_id, const char *verb,
			const char *reply_json, int64_t ts_ms, uint64_t tag);
/* Home sessions (issue 11). The prescription in force is replaced by a new
 * one (the old row keeps its cleared_ms) or cleared; body_json is
 * prescription_to_json(), request_id the command's (may be NULL). */
int store_prescription_set(struct store *store, const char *body_json, const char *request_id,
			   int64_t set_ms, uint64_t tag);
int store_prescription_clear(struct store *store, int64_t cleared_ms, uint64_t tag);
/* A session the patient started locally; source "button" | "console". */
int store_home_start(struct store *store, const char *session_id, const char *source,
		     int64_t started_ms, uint64_t tag);

/* Outbox rows: normally used through outbox.h. */
struct store_outbox_msg {
	const char *topic;
	const void *payload; /* may be NULL when len == 0 (retained delete) */
	size_t len;
	int qos;
	bool retain;
	bool droppable;
	const char *msg_id; /* may be NULL */
	int64_t created_ms;
};
int store_outbox_insert(struct store *store, const struct store_outbox_msg *msg, uint64_t tag);
int store_outbox_delete(struct store *store, int64_t row_id, uint64_t tag);

/*
 * Asynchronous read of committed outbox rows: those with after_id < id <=
 * up_to_id, in id order, at most max_rows of them, stopping after the row
 * that takes their strings and payloads past budget_bytes (so one row of any
 * size the store accepts always fits). The buffer is allocated here, on the
 * caller's thread; the reader thread runs the SELECT on its own read-only
 * connection (WAL: it never waits for the writer's commits, and it works
 * while writes fail) and never allocates. The result arrives through the
 * completion stream, in no fixed order with the writer's completions:
 * rec STORE_REC_OUTBOX_READ with tag; kind COMMITTED with rows, n_rows and
 * read_to (see struct store_completion), or REJECTED with error (-EIO,
 * -EBUSY, -EBADMSG for a row too big to be one the store wrote...) and no
 * rows. Returns 0, -EINVAL (after_id < 0, up_to_id <= after_id, max_rows not
 * in 1..STORE_READ_MAX_ROWS, budget_bytes not in 1..STORE_READ_MAX_BYTES),
 * -EAGAIN (the store is closing), -ENOMEM.
 */
#define STORE_READ_MAX_ROWS 4096
#define STORE_READ_MAX_BYTES (16u * 1024 * 1024)
int store_outbox_read(struct store *store, int64_t after_id, int64_t up_to_id, size_t max_rows,
		      size_t budget_bytes, uint64_t tag);

/* --- synchronous reads (start-up / CLI; they wait on the disk) ------------- */

/* Sessions with no end time, oldest first: the wiring closes them as
 * "aborted" after a crash. *ids is a NULL-terminated array freed with
 * store_strv_free. */
int store_list_open_sessions(struct store *store, char ***ids, size_t *n);
void store_strv_free(char **v);

struct store_outbox_row {
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
/* Calls fn for every outbox row in id order (pointers valid during the call);
 * fn returns 0 to go on or -errno to stop with that error. */
int store_outbox_load(struct store *store,
		      int (*fn)(const struct store_outbox_row *row, void *user_data),
		      void *user_data);

/* What the outbox needs of each row at start-up, without its payload. */
struct store_outbox_meta {
	int64_t id;
	size_t bytes;	   /* topic + payload + msg_id, as the outbox counts them */
	bool droppable;
	const char *topic; /* droppable rows only (what coalescing needs), else NULL */
};
/* Calls fn for every outbox row in id order (pointers valid during the call);
 * fn returns 0 to go on or -errno to stop with that error. Reads every row
 * but copies no payload. */
int store_outbox_scan(struct store *store,
		      int (*fn)(const struct store_outbox_meta *row, void *user_data),
		      void *user_data);

/* Calls fn for every alarm not cleared, oldest first (strings valid during
 * the call; acked_ms / cleared_ms 0 when NULL). fn returns 0 or -errno to stop. */
int store_load_open_alarms(struct store *store,
			   int (*fn)(const struct store_alarm *alarm, void *user_data),
			   void *user_data);
/*
 * What was recorded of one session, for closing it after a crash:
 * {"session": [{plan, patient, started_ms, ended_ms, outcome, state}],
 *  "events": [{last_seq, last_ts_ms}], "figures": [{exercise, set, cuff, figures}...]}
 * (last_ts_ms: the wall time the last event was recorded with).
 * (JSON columns parsed). -ENOENT for an unknown session. Free with json_decref.
 */
int store_session_load(struct store *store, const char *session_id, json_t **out);

/* The highest <seq> of the alarm ids "<gateway_id>-<seq>" recorded (0: none). */
int store_alarm_max_seq(struct store *store, const char *gateway_id, uint64_t *out);

/*
 * Start-up: deletes the command replies older than since_ms, then calls fn
 * for the newest `max` left, oldest first (strings valid during the call).
 */
int store_load_command_replies(struct store *store, int64_t since_ms, size_t max,
			       int (*fn)(const char *request_id, const char *verb,
					 const char *reply_json, int64_t ts_ms, void *user_data),
			       void *user_data);

/* The last LOP recorded for cuff and when (wall ms); -ENOENT when none. */
int store_lop_latest(struct store *store, const char *cuff, double *lop_mmhg,
		     int64_t *measured_ms);

/* The prescription in force: its body (free() it) and when it was set;
 * -ENOENT when there is none. */
int store_prescription_current(struct store *store, char **body_json, int64_t *set_ms);
/* The start times of the latest (at most cap <= STORE_HOME_STARTS_MAX)
 * local starts, newest first. */
#define STORE_HOME_STARTS_MAX 64
int store_home_starts_recent(struct store *store, int64_t *started_ms, size_t cap, size_t *n);

/* Test hook: runs sql on the writer's connection between batches (e.g.
 * "PRAGMA max_page_count = 10" to simulate a full disk). */
int store_test_exec(struct store *store, const char *sql);

#endif
