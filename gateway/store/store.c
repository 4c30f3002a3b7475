/* store.c - see store.h. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_private.h"
#include "store_schema.h"

#define DEFAULT_QUEUE_BYTES (16u * 1024 * 1024)
#define DEFAULT_QUEUE_RECORDS 65536u
#define DEFAULT_BATCH 512u
#define DEFAULT_RETRY_MIN_MS 50u
#define DEFAULT_RETRY_MAX_MS 2000u

/* Caps on single fields: a bigger one is a caller bug, refused with -E2BIG
 * before it can eat the queue. */
#define MAX_ID_LEN 256
#define MAX_TEXT_LEN (1024 * 1024)
#define MAX_TOPIC_LEN 1024
#define MAX_PAYLOAD_LEN (1024 * 1024)
/* The largest outbox row insert accepts: strings with their NULs + payload. */
#define MAX_ROW_LEN (MAX_TOPIC_LEN + 1 + MAX_PAYLOAD_LEN + MAX_ID_LEN + 1)

/* The outbox reader's connection: sequential reads gain little from caching. */
#define READER_CACHE_KIB 512
#define STR_(x) #x
#define STR(x) STR_(x)

#define REC_STRINGS 10
#define REC_INTS 5

/*
 * One queued record. Its strings and blob live in data[] behind it, so a
 * record is one allocation, made on the loop thread; the writer thread never
 * allocates. The result fields are filled by the writer and read by the loop
 * in dispatch, after the record moved to the done list under the lock.
 */
struct rec {
	struct rec *next;
	enum store_rec_kind kind;
	bool critical;
	uint64_t tag;
	size_t bytes;
	const char *s[REC_STRINGS];
	int64_t i[REC_INTS];
	double d;
	const void *blob;
	size_t blob_len;
	/* result */
	enum store_done_kind done;
	int64_t row_id;
	int error;
	int sqlite_code;
	/* OUTBOX_READ: the rows (in data[]), filled by the reader thread into
	 * buf, which the loop allocated with the record. */
	struct store_outbox_row *rows;
	size_t n_rows;
	int64_t read_to;
	char *buf;
	size_t buf_len;
	char data[];
};

enum { STMT_BEGIN, STMT_COMMIT, STMT_ROLLBACK, STMT_SAVEPOINT, STMT_RELEASE, STMT_ROLLBACK_TO,
       STMT_SESSION_BEGIN, STMT_SESSION_STATE, STMT_SESSION_END, STMT_EVENT, STMT_FIGURES,
       STMT_ALARM, STMT_ALARM_HISTORY, STMT_LOP, STMT_OUTBOX_INSERT, STMT_OUTBOX_DELETE,
       STMT_COMMAND_REPLY, STMT_PRESCRIPTION_CLEAR, STMT_PRESCRIPTION_INSERT, STMT_HOME_START,
       STMT_COUNT };

static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_SAVEPOINT] = "SAVEPOINT rec",
	[STMT_RELEASE] = "RELEASE rec",
	[STMT_ROLLBACK_TO] = "ROLLBACK TO rec",
	[STMT_SESSION_BEGIN] = "INSERT INTO sessions (id, plan, patient, started_ms) "
			       "VALUES (?1, ?2, ?3, ?4)",
	[STMT_SESSION_STATE] = "UPDATE sessions SET state = ?2 WHERE id = ?1",
	[STMT_SESSION_END] = "UPDATE sessions SET outcome = ?2, ended_ms = ?3 WHERE id = ?1",
	[STMT_EVENT] = "INSERT INTO session_events (session_id, type, payload, seq, ts_ms) "
		       "VALUES (?1, ?2, ?3, ?4, ?5)",
	[STMT_FIGURES] = "INSERT INTO set_figures (session_id, cuff, figures, exercise, set_no) "
			 "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (session_id, exercise, set_no, "
			 "cuff) DO UPDATE SET figures = excluded.figures",
	[STMT_ALARM] = "INSERT INTO alarms (alarm_id, cuff, session_id, code, priority, kind, "
		       "state, acked_by, message, vals, condition_present, raised_ms, acked_ms, "
		       "cleared_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
		       "?11, ?12, NULLIF(?13, 0), NULLIF(?14, 0), ?15) "
		       "ON CONFLICT (alarm_id) DO UPDATE SET cuff = excluded.cuff, "
		       "session_id = excluded.session_id, code = excluded.code, "
		       "priority = excluded.priority, kind = excluded.kind, state = excluded.state, "
		       "acked_by = excluded.acked_by, message = excluded.message, "
		       "vals = excluded.vals, condition_present = excluded.condition_present, "
		       "raised_ms = excluded.raised_ms, acked_ms = excluded.acked_ms, "
		       "cleared_ms = excluded.cleared_ms, updated_ms = excluded.updated_ms",
	[STMT_ALARM_HISTORY] = "INSERT INTO alarm_history (alarm_id, state, acked_by, "
			       "condition_present, changed_ms) VALUES (?1, ?7, ?8, ?11, ?15)",
	[STMT_LOP] = "INSERT INTO lop_measurements (cuff, session_id, measured_ms, lop_mmhg) "
		     "VALUES (?1, ?2, ?3, ?4)",
	[STMT_OUTBOX_INSERT] = "INSERT INTO outbox (topic, msg_id, payload, qos, retain, "
			       "droppable, created_ms, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[STMT_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
	[STMT_COMMAND_REPLY] = "INSERT OR REPLACE INTO command_replies (request_id, verb, reply, "
			       "ts_ms) VALUES (?1, ?2, ?3, ?4)",
	[STMT_PRESCRIPTION_CLEAR] = "UPDATE prescriptions SET cleared_ms = ?1 "
				    "WHERE cleared_ms IS NULL",
	[STMT_PRESCRIPTION_INSERT] = "INSERT INTO prescriptions (body, request_id, set_ms) "
				     "VALUES (?1, ?2, ?3)",
	[STMT_HOME_START] = "INSERT INTO home_starts (session_id, source, started_ms) "
			    "VALUES (?1, ?2, ?3)",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[STMT_COUNT];
	pthread_mutex_t db_lock; /* the connection: writer batches vs synchronous reads */

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t wake;  /* writer: work, stop or retry time */
	pthread_cond_t idle;  /* store_flush: queue drained */
	struct rec *head, *tail;
	bool batch_in_progress;
	struct rec *done_head, *done_tail;
	bool stopping;
	uint64_t retry_at_ns; /* 0: no backoff pending */
	unsigned retry_ms;
	int err_pending; /* a DISK_ERROR not yet dispatched */
	int err_sqlite_code;
	char err_message[256];
	struct store_stats stats;

	/* loop thread only */
	bool reported_unhealthy;
	store_completion_fn cb;
	void *cb_data;

	size_t queue_max_bytes, queue_max_records;
	unsigned batch_max, retry_min_ms, retry_max_ms;
	int efd;
	pthread_t writer;
	bool writer_started;
	char *path;

	/* The outbox reader: its own read-only connection and thread; requests
	 * wait in read_head (under lock), results join the done list. */
	sqlite3 *rdb;
	sqlite3_stmt *read_stmt;
	pthread_cond_t read_wake;
	struct rec *read_head, *read_tail;
	pthread_t reader;
	bool reader_started;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "<where>: <what>" into the caller's error buffer. */
static void set_err(char *err, size_t errlen, const char *where, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", where, what);
}

/* Errors that say nothing about the record itself: keep it and retry later. */
static bool is_transient(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_NOMEM:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_INTERRUPT:
		return true;
	default:
		return false;
	}
}

/* ---------------------------------------------------------------- writer -- */

static void bind_text(sqlite3_stmt *st, int idx, const char *s)
{
	if (s)
		sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, idx);
}

/* Binds the record's fields to st by position: strings ?1.., then ints. */
static void bind_rec(sqlite3_stmt *st, const struct rec *r, int nstr, int nint)
{
	int k;

	for (k = 0; k < nstr; k++)
		bind_text(st, k + 1, r->s[k]);
	for (k = 0; k < nint; k++)
		sqlite3_bind_int64(st, nstr + k + 1, r->i[k]);
}

static int step_once(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Writes one record inside the open transaction. Returns an SQLite code;
 * SQLITE_NOTFOUND means an UPDATE matched no session. */
static int write_rec(struct store *s, struct rec *r)
{
	sqlite3_stmt *st;
	int rc;

	switch (r->kind) {
	case STORE_REC_SESSION_BEGIN:
		st = s->stmt[STMT_SESSION_BEGIN];
		bind_rec(st, r, 3, 1);
		return step_once(st);
	case STORE_REC_SESSION_STATE:
	case STORE_REC_SESSION_END:
		st = s->stmt[r->kind == STORE_REC_SESSION_STATE ? STMT_SESSION_STATE
							      : STMT_SESSION_END];
		bind_rec(st, r, 2, r->kind == STORE_REC_SESSION_END ? 1 : 0);
		rc = step_once(st);
		if (rc == SQLITE_OK && sqlite3_changes(s->db) == 0)
			rc = SQLITE_NOTFOUND;
		return rc;
	case STORE_REC_EVENT:
		st = s->stmt[STMT_EVENT];
		bind_rec(st, r, 3, 2);
		return step_once(st);
	case STORE_REC_FIGURES:
		st = s->stmt[STMT_FIGURES];
		bind_rec(st, r, 3, 2);
		return step_once(st);
	case STORE_REC_ALARM:
		/* The upsert and its history row stand or fall together. */
		rc = step_once(s->stmt[STMT_SAVEPOINT]);
		if (rc != SQLITE_OK)
			return rc;
		bind_rec(s->stmt[STMT_ALARM], r, 10, 5);
		rc = step_once(s->stmt[STMT_ALARM]);
		if (rc == SQLITE_OK) {
			bind_rec(s->stmt[STMT_ALARM_HISTORY], r, 10, 5);
			rc = step_once(s->stmt[STMT_ALARM_HISTORY]);
		}
		if (rc != SQLITE_OK) {
			step_once(s->stmt[STMT_ROLLBACK_TO]);
			step_once(s->stmt[STMT_RELEASE]);
			return rc;
		}
		return step_once(s->stmt[STMT_RELEASE]);
	case STORE_REC_LOP:
		st = s->stmt[STMT_LOP];
		bind_rec(st, r, 2, 1);
		sqlite3_bind_double(st, 4, r->d);
		return step_once(st);
	case STORE_REC_OUTBOX_APPEND:
		st = s->stmt[STMT_OUTBOX_INSERT];
		bind_text(st, 1, r->s[0]);
		bind_text(st, 2, r->s[1]);
		/* zeroblob-safe: an empty payload is a zero-length blob, not NULL. */
		sqlite3_bind_blob(st, 3, r->blob_len ? r->blob : "", (int)r->blob_len,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, r->i[0]);
		sqlite3_bind_int64(st, 5, r->i[1]);
		sqlite3_bind_int64(st, 6, r->i[2]);
		sqlite3_bind_int64(st, 7, r->i[3]);
		sqlite3_bind_int64(st, 8, (int64_t)r->bytes);
		rc = step_once(st);
		if (rc == SQLITE_OK)
			r->row_id = sqlite3_last_insert_rowid(s->db);
		return rc;
	case STORE_REC_OUTBOX_DELETE:
		st = s->stmt[STMT_OUTBOX_DELETE];
		sqlite3_bind_int64(st, 1, r->i[0]);
		return step_once(st);
	case STORE_REC_COMMAND_REPLY:
		st = s->stmt[STMT_COMMAND_REPLY];
		bind_rec(st, r, 3, 1);
		return step_once(st);
	case STORE_REC_OUTBOX_READ:
		break; /* the reader's, never queued for the writer */
	case STORE_REC_PRESCRIPTION_SET:
		/* The old one ends when the new one begins: both or neither. */
		rc = step_once(s->stmt[STMT_SAVEPOINT]);
		if (rc != SQLITE_OK)
			return rc;
		sqlite3_bind_int64(s->stmt[STMT_PRESCRIPTION_CLEAR], 1, r->i[0]);
		rc = step_once(s->stmt[STMT_PRESCRIPTION_CLEAR]);
		if (rc == SQLITE_OK) {
			bind_rec(s->stmt[STMT_PRESCRIPTION_INSERT], r, 2, 1);
			rc = step_once(s->stmt[STMT_PRESCRIPTION_INSERT]);
		}
		if (rc != SQLITE_OK) {
			step_once(s->stmt[STMT_ROLLBACK_TO]);
			step_once(s->stmt[STMT_RELEASE]);
			return rc;
		}
		return step_once(s->stmt[STMT_RELEASE]);
	case STORE_REC_PRESCRIPTION_CLEAR:
		st = s->stmt[STMT_PRESCRIPTION_CLEAR];
		sqlite3_bind_int64(st, 1, r->i[0]);
		return step_once(st);
	case STORE_REC_HOME_START:
		st = s->stmt[STMT_HOME_START];
		bind_rec(st, r, 2, 1);
		return step_once(st);
	}
	return SQLITE_MISUSE;
}

/*
 * Commits n records from batch as one transaction. Returns SQLITE_OK (each
 * record's done/error set: COMMITTED or REJECTED) or a transient code after
 * rolling everything back (records untouched, to be retried).
 */
static int commit_batch(struct store *s, struct rec *batch, unsigned n)
{
	struct rec *r;
	unsigned k;
	int rc;

	rc = step_once(s->stmt[STMT_BEGIN]);
	if (rc != SQLITE_OK)
		return rc;
	for (r = batch, k = 0; k < n; r = r->next, k++) {
		r->row_id = 0;
		rc = write_rec(s, r);
		if (rc == SQLITE_OK) {
			r->done = STORE_DONE_COMMITTED;
			r->error = 0;
			r->sqlite_code = 0;
		} else if (rc == SQLITE_NOTFOUND) {
			r->done = STORE_DONE_REJECTED;
			r->error = -ENOENT;
			r->sqlite_code = 0;
		} else if (is_transient(rc)) {
			goto rollback;
		} else {
			/* A failed statement undoes only itself; the batch goes on. */
			r->done = STORE_DONE_REJECTED;
			r->error = store_sqlite_errno(rc);
			r->sqlite_code = rc;
		}
	}
	rc = step_once(s->stmt[STMT_COMMIT]);
	if (rc == SQLITE_OK)
		return SQLITE_OK;
rollback:
	if (!sqlite3_get_autocommit(s->db))
		step_once(s->stmt[STMT_ROLLBACK]);
	return rc;
}

static void notify_loop(struct store *s)
{
	uint64_t one = 1;

	/* Cannot block (EFD_NONBLOCK) and cannot overflow in practice. */
	if (write(s->efd, &one, sizeof(one)) < 0) {
		/* Nothing to do: the loop will see the counter already non-zero. */
	}
}

static void *writer_main(void *arg)
{
	struct store *s = arg;
	bool failed_while_stopping = false;
	char errmsg[sizeof(s->err_message)];

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct rec *batch, *last;
		unsigned n;
		uint64_t t0, dt;
		int rc;

		while (!s->head && !s->stopping)
			pthread_cond_wait(&s->wake, &s->lock);
		if (!s->head || (s->stopping && failed_while_stopping))
			break;
		if (s->retry_at_ns && !s->stopping) {
			uint64_t now = mono_ns();

			if (now < s->retry_at_ns) {
				struct timespec ts = { .tv_sec = (time_t)(s->retry_at_ns / 1000000000u),
						       .tv_nsec = (long)(s->retry_at_ns % 1000000000u) };

				pthread_cond_timedwait(&s->wake, &s->lock, &ts);
				continue;
			}
		}

		batch = s->head;
		for (last = batch, n = 1; n < s->batch_max && last->next; n++)
			last = last->next;
		s->head = last->next;
		if (!s->head)
			s->tail = NULL;
		last->next = NULL;
		s->batch_in_progress = true;
		pthread_mutex_unlock(&s->lock);

		pthread_mutex_lock(&s->db_lock);
		t0 = mono_ns();
		rc = commit_batch(s, batch, n);
		dt = (mono_ns() - t0) / 1000u;
		if (rc != SQLITE_OK)
			snprintf(errmsg, sizeof(errmsg), "%s: %s", s->path, sqlite3_errmsg(s->db));
		pthread_mutex_unlock(&s->db_lock);

		pthread_mutex_lock(&s->lock);
		s->batch_in_progress = false;
		if (rc != SQLITE_OK) {
			/* Back to the head: order is kept, new records stay behind. */
			last->next = s->head;
			s->head = batch;
			if (!s->tail)
				s->tail = last;
			s->stats.disk_errors++;
			s->stats.healthy = false;
			s->stats.last_error = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
			s->err_pending = s->stats.last_error;
			s->err_sqlite_code = rc;
			memcpy(s->err_message, errmsg, sizeof(s->err_message));
			s->retry_ms = s->retry_ms ? s->retry_ms * 2 : s->retry_min_ms;
			if (s->retry_ms > s->retry_max_ms)
				s->retry_ms = s->retry_max_ms;
			s->retry_at_ns = mono_ns() + (uint64_t)s->retry_ms * 1000000u;
			if (s->stopping)
				failed_while_stopping = true;
		} else {
			struct rec *r;

			for (r = batch; r; r = r->next) {
				s->stats.queued_records--;
				s->stats.queued_bytes -= r->bytes;
				if (r->done == STORE_DONE_COMMITTED)
					s->stats.committed++;
				else
					s->stats.rejected++;
			}
			if (s->done_tail)
				s->done_tail->next = batch;
			else
				s->done_head = batch;
			s->done_tail = last;
			s->stats.batches++;
			s->stats.last_batch_us = dt;
			s->stats.total_batch_us += dt;
			if (dt > s->stats.max_batch_us)
				s->stats.max_batch_us = dt;
			s->stats.healthy = true;
			s->stats.last_error = 0;
			s->retry_ms = 0;
			s->retry_at_ns = 0;
		}
		notify_loop(s);
		if (!s->head)
			pthread_cond_broadcast(&s->idle);
	}
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---------------------------------------------------------------- reader -- */

/* Appends one row to r's buffer; false when it does not fit. */
static bool put_row(struct rec *r, size_t *used, sqlite3_stmt *st)
{
	const char *topic = (const char *)sqlite3_column_text(st, 1);
	size_t tlen = (size_t)sqlite3_column_bytes(st, 1);
	const void *payload = sqlite3_column_blob(st, 2);
	size_t plen = (size_t)sqlite3_column_bytes(st, 2);
	const char *msg_id = (const char *)sqlite3_column_text(st, 6);
	size_t mlen = msg_id ? (size_t)sqlite3_column_bytes(st, 6) + 1 : 0;
	struct store_outbox_row *row = &r->rows[r->n_rows];
	char *p = r->buf + *used;

	if (!topic || tlen + 1 + plen + mlen > r->buf_len - *used)
		return false;
	*row = (struct store_outbox_row){ .id = sqlite3_column_int64(st, 0),
					  .qos = sqlite3_column_int(st, 3),
					  .retain = sqlite3_column_int(st, 4) != 0,
					  .droppable = sqlite3_column_int(st, 5) != 0,
					  .created_ms = sqlite3_column_int64(st, 7),
					  .len = plen };
	memcpy(p, topic, tlen + 1);
	row->topic = p;
	p += tlen + 1;
	if (msg_id) {
		memcpy(p, msg_id, mlen);
		row->msg_id = p;
		p += mlen;
	}
	if (plen)
		memcpy(p, payload, plen);
	row->payload = p;
	*used = (size_t)(p + plen - r->buf);
	r->n_rows++;
	return true;
}

/*
 * Runs one read request: i[0] after_id, i[1] up_to_id, i[2] max_rows, i[3]
 * the byte budget (buf holds the budget plus one largest row).
 */
static void read_rows(struct store *s, struct rec *r)
{
	sqlite3_stmt *st = s->read_stmt;
	size_t used = 0;
	bool cut = false;
	int rc;

	r->n_rows = 0;
	r->read_to = r->i[1];
	sqlite3_bind_int64(st, 1, r->i[0]);
	sqlite3_bind_int64(st, 2, r->i[1]);
	sqlite3_bind_int64(st, 3, r->i[2]);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!put_row(r, &used, st)) {
			/* Only a row the store never wrote (or no memory in SQLite)
			 * gets here: the rows so far are good, the next read fails. */
			if (!r->n_rows) {
				rc = sqlite3_column_text(st, 1) ? SQLITE_TOOBIG : SQLITE_NOMEM;
				break;
			}
			cut = true;
		} else if (r->n_rows == (size_t)r->i[2] || used >= (size_t)r->i[3]) {
			cut = true;
		}
		if (cut) {
			r->read_to = r->rows[r->n_rows - 1].id;
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE) {
		r->done = STORE_DONE_COMMITTED;
		r->error = 0;
		r->sqlite_code = 0;
		return;
	}
	r->done = STORE_DONE_REJECTED;
	r->error = (rc & 0xff) == SQLITE_TOOBIG ? -EBADMSG
		 : store_sqlite_errno(rc)	  ? store_sqlite_errno(rc)
						  : -EIO;
	r->sqlite_code = rc;
	r->n_rows = 0;
}

static void *reader_main(void *arg)
{
	struct store *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct rec *r;
		uint64_t t0, dt;

		while (!s->read_head && !s->stopping)
			pthread_cond_wait(&s->read_wake, &s->lock);
		if (s->stopping)
			break; /* unanswered reads are freed with the store */
		r = s->read_head;
		s->read_head = r->next;
		if (!s->read_head)
			s->read_tail = NULL;
		r->next = NULL;
		pthread_mutex_unlock(&s->lock);

		t0 = mono_ns();
		read_rows(s, r);
		dt = (mono_ns() - t0) / 1000u;

		pthread_mutex_lock(&s->lock);
		s->stats.reads++;
		s->stats.read_rows += r->n_rows;
		if (r->done == STORE_DONE_REJECTED)
			s->stats.read_failed++;
		s->stats.total_read_us += dt;
		if (dt > s->stats.max_read_us)
			s->stats.max_read_us = dt;
		if (s->done_tail)
			s->done_tail->next = r;
		else
			s->done_head = r;
		s->done_tail = r;
		notify_loop(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* --------------------------------------------------------------- enqueue -- */

static bool valid_json(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (!j)
		return false;
	json_decref(j);
	return true;
}

/* Checks a string argument: required ones non-empty; all bounded. */
static int check_str(const char *v, bool required, size_t max)
{
	if (!v)
		return required ? -EINVAL : 0;
	if (required && !*v)
		return -EINVAL;
	if (strnlen(v, max + 1) > max)
		return -E2BIG;
	return 0;
}

static int check_json(const char *v, bool required)
{
	int ret = check_str(v, required, MAX_TEXT_LEN);

	if (ret < 0 || !v)
		return ret;
	return valid_json(v) ? 0 : -EINVAL;
}

/* Builds a record holding copies of nstr strings (NULLs stay NULL) and blob. */
static int rec_new(enum store_rec_kind kind, uint64_t tag, const char *const *strs, int nstr,
		   const void *blob, size_t blob_len, struct rec **out)
{
	size_t len[REC_STRINGS] = { 0 };
	size_t total = sizeof(struct rec) + blob_len;
	struct rec *r;
	char *p;
	int k;

	for (k = 0; k < nstr; k++) {
		if (strs[k]) {
			len[k] = strlen(strs[k]) + 1;
			total += len[k];
		}
	}
	r = malloc(total);
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->tag = tag;
	r->bytes = total;
	r->critical = true;
	p = r->data;
	for (k = 0; k < nstr; k++) {
		if (strs[k]) {
			memcpy(p, strs[k], len[k]);
			r->s[k] = p;
			p += len[k];
		}
	}
	if (blob_len) {
		memcpy(p, blob, blob_len);
		r->blob = p;
	}
	r->blob_len = blob_len;
	*out = r;
	return 0;
}

/* Queues r or, when the bound is reached, frees it and returns -EAGAIN. */
static int enqueue(struct store *s, struct rec *r)
{
	size_t max_bytes = s->queue_max_bytes;
	int ret = 0;

	/* Half the queue is kept for records that must never be dropped. */
	if (!r->critical)
		max_bytes /= 2;
	pthread_mutex_lock(&s->lock);
	if (s->stopping || s->stats.queued_records >= s->queue_max_records ||
	    s->stats.queued_bytes + r->bytes > max_bytes) {
		s->stats.rejected_full++;
		ret = -EAGAIN;
		goto out;
	}
	r->next = NULL;
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	s->stats.queued_records++;
	s->stats.queued_bytes += r->bytes;
	pthread_cond_signal(&s->wake);
out:
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		free(r);
	return ret;
}

int store_session_begin(struct store *store, const char *session_id, const char *plan_json,
			const char *patient, int64_t started_ms, uint64_t tag)
{
	const char *strs[] = { session_id, plan_json, patient };
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	if ((ret = check_str(session_id, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_json(plan_json, true)) < 0 ||
	    (ret = check_str(patient, false, MAX_ID_LEN)) < 0)
		return ret;
	ret = rec_new(STORE_REC_SESSION_BEGIN, tag, strs, 3, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = started_ms;
	return enqueue(store, r);
}

int store_session_state(struct store *store, const char *session_id, const char *state_json,
			uint64_t tag)
{
	const char *strs[] = { session_id, state_json };
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	if ((ret = check_str(session_id, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_json(state_json, true)) < 0)
		return ret;
	ret = rec_new(STORE_REC_SESSION_STATE, tag, strs, 2, NULL, 0, &r);
	if (ret < 0)
		return ret;
	return enqueue(store, r);
}

int store_session_end(struct store *store, const char *session_id, const char *outcome,
		      int64_t ended_ms, uint64_t tag)
{
	const char *strs[] = { session_id, outcome };
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	if ((ret = check_str(session_id, true, MAX_ID_LEN)) < 0)
		return ret;
	if (!outcome || (strcmp(outcome, "completed") && strcmp(outcome, "stopped") &&
			 strcmp(outcome, "aborted")))
		return -EINVAL;
	ret = rec_new(STORE_REC_SESSION_END, tag, strs, 2, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = ended_ms;
	return enqueue(store, r);
}

int store_session_event(struct store *store, const char *session_id, uint32_t seq,
			const char *type, const char *payload_json, int64_t ts_ms, uint64_t tag)
{
	const char *strs[] = { session_id, type, payload_json };
	struct rec *r;
	int ret;

	if (!store || seq == 0)
		return -EINVAL;
	if ((ret = check_str(session_id, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(type, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_json(payload_json, true)) < 0)
		return ret;
	ret = rec_new(STORE_REC_EVENT, tag, strs, 3, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = seq;
	r->i[1] = ts_ms;
	return enqueue(store, r);
}

int store_set_figures(struct store *store, const char *session_id, uint32_t exercise,
		      uint32_t set, const char *cuff, const char *figures_json, uint64_t tag)
{
	const char *strs[] = { session_id, cuff, figures_json };
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	if ((ret = check_str(session_id, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(cuff, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_json(figures_json, true)) < 0)
		return ret;
	ret = rec_new(STORE_REC_FIGURES, tag, strs, 3, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = exercise;
	r->i[1] = set;
	return enqueue(store, r);
}

static bool one_of(const char *v, const char *a, const char *b, const char *c)
{
	return v && (!strcmp(v, a) || !strcmp(v, b) || !strcmp(v, c));
}

int store_alarm_record(struct store *store, const struct store_alarm *a, int64_t changed_ms,
		       uint64_t tag)
{
	struct rec *r;
	int ret;

	if (!store || !a)
		return -EINVAL;
	if ((ret = check_str(a->alarm_id, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(a->cuff, false, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(a->session_id, false, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(a->code, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(a->acked_by, false, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(a->message, false, MAX_TEXT_LEN)) < 0 ||
	    (ret = check_json(a->values_json, false)) < 0)
		return ret;
	if (!one_of(a->priority, "high", "medium", "low") ||
	    !one_of(a->kind, "physiological", "technical", "technical") ||
	    !one_of(a->state, "active", "acknowledged", "cleared"))
		return -EINVAL;
	{
		/* Order = the ?N positions of STMT_ALARM. */
		const char *strs[] = { a->alarm_id, a->cuff, a->session_id, a->code, a->priority,
				       a->kind, a->state, a->acked_by, a->message, a->values_json };

		ret = rec_new(STORE_REC_ALARM, tag, strs, 10, NULL, 0, &r);
	}
	if (ret < 0)
		return ret;
	r->i[0] = a->condition_present;
	r->i[1] = a->raised_ms;
	r->i[2] = a->acked_ms;
	r->i[3] = a->cleared_ms;
	r->i[4] = changed_ms;
	return enqueue(store, r);
}

int store_lop_record(struct store *store, const char *cuff, const char *session_id,
		     double lop_mmHg, int64_t measured_ms, uint64_t tag)
{
	const char *strs[] = { cuff, session_id };
	struct rec *r;
	int ret;

	if (!store || !(lop_mmHg > 0 && lop_mmHg < 1000))
		return -EINVAL;
	if ((ret = check_str(cuff, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(session_id, false, MAX_ID_LEN)) < 0)
		return ret;
	ret = rec_new(STORE_REC_LOP, tag, strs, 2, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = measured_ms;
	r->d = lop_mmHg;
	return enqueue(store, r);
}

int store_command_reply(struct store *store, const char *request_id, const char *verb,
			const char *reply_json, int64_t ts_ms, uint64_t tag)
{
	const char *strs[] = { request_id, verb, reply_json };
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	if ((ret = check_str(request_id, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(verb, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_json(reply_json, true)) < 0)
		return ret;
	ret = rec_new(STORE_REC_COMMAND_REPLY, tag, strs, 3, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = ts_ms;
	return enqueue(store, r);
}

int store_prescription_set(struct store *store, const char *body_json, const char *request_id,
			   int64_t set_ms, uint64_t tag)
{
	const char *strs[] = { body_json, request_id };
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	if ((ret = check_json(body_json, true)) < 0 ||
	    (ret = check_str(request_id, false, MAX_ID_LEN)) < 0)
		return ret;
	ret = rec_new(STORE_REC_PRESCRIPTION_SET, tag, strs, 2, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = set_ms;
	return enqueue(store, r);
}

int store_prescription_clear(struct store *store, int64_t cleared_ms, uint64_t tag)
{
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	ret = rec_new(STORE_REC_PRESCRIPTION_CLEAR, tag, NULL, 0, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = cleared_ms;
	return enqueue(store, r);
}

int store_home_start(struct store *store, const char *session_id, const char *source,
		     int64_t started_ms, uint64_t tag)
{
	const char *strs[] = { session_id, source };
	struct rec *r;
	int ret;

	if (!store)
		return -EINVAL;
	if ((ret = check_str(session_id, true, MAX_ID_LEN)) < 0 ||
	    (ret = check_str(source, true, MAX_ID_LEN)) < 0)
		return ret;
	ret = rec_new(STORE_REC_HOME_START, tag, strs, 2, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = started_ms;
	return enqueue(store, r);
}

int store_outbox_insert(struct store *store, const struct store_outbox_msg *m, uint64_t tag)
{
	struct rec *r;
	int ret;

	if (!store || !m || (m->qos != 0 && m->qos != 1 && m->qos != 2) ||
	    (m->len && !m->payload))
		return -EINVAL;
	if ((ret = check_str(m->topic, true, MAX_TOPIC_LEN)) < 0 ||
	    (ret = check_str(m->msg_id, false, MAX_ID_LEN)) < 0)
		return ret;
	if (m->len > MAX_PAYLOAD_LEN)
		return -E2BIG;
	{
		const char *strs[] = { m->topic, m->msg_id };

		ret = rec_new(STORE_REC_OUTBOX_APPEND, tag, strs, 2, m->payload, m->len, &r);
	}
	if (ret < 0)
		return ret;
	r->critical = !m->droppable;
	r->i[0] = m->qos;
	r->i[1] = m->retain;
	r->i[2] = m->droppable;
	r->i[3] = m->created_ms;
	return enqueue(store, r);
}

int store_outbox_delete(struct store *store, int64_t row_id, uint64_t tag)
{
	struct rec *r;
	int ret;

	if (!store || row_id <= 0)
		return -EINVAL;
	ret = rec_new(STORE_REC_OUTBOX_DELETE, tag, NULL, 0, NULL, 0, &r);
	if (ret < 0)
		return ret;
	r->i[0] = row_id;
	return enqueue(store, r);
}

int store_outbox_read(struct store *store, int64_t after_id, int64_t up_to_id, size_t max_rows,
		      size_t budget_bytes, uint64_t tag)
{
	size_t rows_len = max_rows * sizeof(struct store_outbox_row);
	struct rec *r;
	int ret = 0;

	if (!store || after_id < 0 || up_to_id <= after_id || !max_rows ||
	    max_rows > STORE_READ_MAX_ROWS || !budget_bytes || budget_bytes > STORE_READ_MAX_BYTES)
		return -EINVAL;
	/* Rows first: sizeof(struct rec) keeps them aligned. Pages the reader
	 * does not fill are never touched, so the spare room for one largest
	 * row costs address space, not memory. */
	r = malloc(sizeof(*r) + rows_len + budget_bytes + MAX_ROW_LEN);
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->kind = STORE_REC_OUTBOX_READ;
	r->tag = tag;
	r->rows = (struct store_outbox_row *)(void *)((char *)r + sizeof(*r));
	r->buf = (char *)r->rows + rows_len;
	r->buf_len = budget_bytes + MAX_ROW_LEN;
	r->i[0] = after_id;
	r->i[1] = up_to_id;
	r->i[2] = (int64_t)max_rows;
	r->i[3] = (int64_t)budget_bytes;
	pthread_mutex_lock(&store->lock);
	if (store->stopping || !store->reader_started) {
		ret = -EAGAIN;
	} else {
		if (store->read_tail)
			store->read_tail->next = r;
		else
			store->read_head = r;
		store->read_tail = r;
		pthread_cond_signal(&store->read_wake);
	}
	pthread_mutex_unlock(&store->lock);
	if (ret < 0)
		free(r);
	return ret;
}

/* ----------------------------------------------------------- completions -- */

int store_completion_fd(const struct store *store)
{
	return store->efd;
}

void store_set_completion_cb(struct store *store, store_completion_fn fn, void *user_data)
{
	store->cb = fn;
	store->cb_data = user_data;
}

int store_dispatch_completions(struct store *s)
{
	struct store_completion c;
	struct rec *list, *r;
	char message[sizeof(s->err_message)];
	uint64_t counter;
	int err, code, n = 0;
	bool healthy;

	if (read(s->efd, &counter, sizeof(counter)) < 0) {
		/* EAGAIN: spurious wake-up or nothing new; still drain below. */
	}
	pthread_mutex_lock(&s->lock);
	list = s->done_head;
	s->done_head = s->done_tail = NULL;
	err = s->err_pending;
	code = s->err_sqlite_code;
	s->err_pending = 0;
	memcpy(message, s->err_message, sizeof(message));
	healthy = s->stats.healthy;
	pthread_mutex_unlock(&s->lock);

	if (err) {
		memset(&c, 0, sizeof(c));
		c.kind = STORE_DONE_DISK_ERROR;
		c.error = err;
		c.sqlite_code = code;
		c.message = message;
		s->reported_unhealthy = true;
		if (s->cb)
			s->cb(&c, s->cb_data);
		n++;
	}
	while (list) {
		r = list;
		list = r->next;
		memset(&c, 0, sizeof(c));
		c.kind = r->done;
		c.rec = r->kind;
		c.tag = r->tag;
		c.row_id = r->row_id;
		c.error = r->error;
		c.sqlite_code = r->sqlite_code;
		c.message = r->sqlite_code ? sqlite3_errstr(r->sqlite_code)
			  : r->error == -ENOENT ? "no such session" : "";
		if (r->kind == STORE_REC_OUTBOX_READ) {
			c.rows = r->rows;
			c.n_rows = r->n_rows;
			c.read_to = r->read_to;
		}
		if (s->cb)
			s->cb(&c, s->cb_data);
		free(r);
		n++;
	}
	if (healthy && s->reported_unhealthy) {
		memset(&c, 0, sizeof(c));
		c.kind = STORE_DONE_DISK_OK;
		c.message = "";
		s->reported_unhealthy = false;
		if (s->cb)
			s->cb(&c, s->cb_data);
		n++;
	}
	return n;
}

int store_flush(struct store *s, int timeout_ms)
{
	struct timespec ts;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (s->head || s->batch_in_progress) {
		if (pthread_cond_timedwait(&s->idle, &s->lock, &ts) == ETIMEDOUT) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------ open/close -- */

sqlite3 *store_db_acquire(struct store *store)
{
	pthread_mutex_lock(&store->db_lock);
	return store->db;
}

void store_db_release(struct store *store)
{
	pthread_mutex_unlock(&store->db_lock);
}

int store_test_exec(struct store *store, const char *sql)
{
	int rc;

	pthread_mutex_lock(&store->db_lock);
	rc = sqlite3_exec(store->db, sql, NULL, NULL, NULL);
	pthread_mutex_unlock(&store->db_lock);
	return store_sqlite_errno(rc);
}

static int exec_pragma(struct store *s, const char *sql, char *err, size_t errlen)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	set_err(err, errlen, s->path, sqlite3_errmsg(s->db));
	return store_sqlite_errno(rc);
}

static void free_list(struct rec *r, size_t *count)
{
	while (r) {
		struct rec *next = r->next;

		if (count)
			(*count)++;
		free(r);
		r = next;
	}
}

static void store_free(struct store *s)
{
	int k;

	for (k = 0; k < STMT_COUNT; k++)
		sqlite3_finalize(s->stmt[k]);
	if (s->db)
		sqlite3_close(s->db);
	if (s->efd >= 0)
		close(s->efd);
	free_list(s->head, NULL);
	free_list(s->done_head, NULL);
	free_list(s->read_head, NULL);
	sqlite3_finalize(s->read_stmt);
	if (s->rdb)
		sqlite3_close(s->rdb);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->read_wake);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->db_lock);
	free(s->path);
	free(s);
}

/*
 * The outbox reader's connection, opened once the file is in WAL mode and
 * migrated: read-only, so it can never write; in WAL a reader neither waits
 * for the writer's commits nor blocks them.
 */
static int open_reader(struct store *s, char *err, size_t errlen)
{
	int rc;

	rc = sqlite3_open_v2(s->path, &s->rdb, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(s->rdb, 1);
		sqlite3_busy_timeout(s->rdb, 1000); /* the reader thread's own wait */
		rc = sqlite3_exec(s->rdb, "PRAGMA cache_size = -" STR(READER_CACHE_KIB), NULL,
				  NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->rdb,
					"SELECT id, topic, payload, qos, retain, droppable, msg_id, "
					"created_ms FROM outbox WHERE id > ?1 AND id <= ?2 "
					"ORDER BY id LIMIT ?3",
					-1, SQLITE_PREPARE_PERSISTENT, &s->read_stmt, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, s->path,
			s->rdb ? sqlite3_errmsg(s->rdb) : sqlite3_errstr(rc));
		return store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
	}
	return 0;
}

static int open_db(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc, version, ret, k;
	bool wal;

	rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, s->path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		return store_sqlite_errno(rc);
	}
	sqlite3_extended_result_codes(s->db, 1);
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		set_err(err, errlen, s->path, "database file is read-only; the gateway must write it");
		return -EROFS;
	}
	/* Read the version before anything writes: a newer database must stay
	 * exactly as it is. This is also the first read, so it spots a file
	 * that is not a database at all. */
	ret = store_schema_version(s->db, &version);
	if (ret < 0) {
		set_err(err, errlen, s->path, sqlite3_errmsg(s->db));
		return ret;
	}
	if (version > STORE_SCHEMA_VERSION)
		return store_schema_migrate(s->db, err, errlen); /* reports -EPROTO */

	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	wal = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	if (!wal) {
		set_err(err, errlen, s->path, sqlite3_errmsg(s->db));
		return rc == SQLITE_ROW ? -EIO : store_sqlite_errno(rc);
	}
	/* FULL: a commit is on the platter (WAL fsynced) before its completion
	 * is reported, which is what "recorded" promises. */
	if ((ret = exec_pragma(s, "PRAGMA synchronous = FULL", err, errlen)) < 0 ||
	    (ret = exec_pragma(s, "PRAGMA foreign_keys = ON", err, errlen)) < 0)
		return ret;
	/* Only the writer thread (and start-up reads) wait on this. */
	sqlite3_busy_timeout(s->db, 1000);
	ret = store_schema_migrate(s->db, err, errlen);
	if (ret < 0)
		return ret;
	for (k = 0; k < STMT_COUNT; k++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[k], -1, SQLITE_PREPARE_PERSISTENT,
					&s->stmt[k], NULL);
		if (rc != SQLITE_OK) {
			set_err(err, errlen, s->path, sqlite3_errmsg(s->db));
			return store_sqlite_errno(rc);
		}
	}
	return open_reader(s, err, errlen);
}

/*
 * Sessions and alarms are patient data: a new database file is created
 * readable and writable by its owner only, whatever the umask, before
 * SQLite opens it (SQLite gives the -wal and -shm files the database's
 * mode). An existing file keeps the mode its administrator gave it.
 */
static int create_private(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	close(fd);
	return 0;
}

/* The writer makes one last attempt at what is queued; the reader stops at once. */
static void stop_threads(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->wake);
	pthread_cond_signal(&s->read_wake);
	pthread_mutex_unlock(&s->lock);
	if (s->writer_started)
		pthread_join(s->writer, NULL);
	if (s->reader_started)
		pthread_join(s->reader, NULL);
	s->writer_started = s->reader_started = false;
}

int store_open(const struct store_config *cfg, struct store **out, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct store *s;
	size_t plen;
	int ret;

	if (!cfg || !cfg->data_dir || !*cfg->data_dir || !out) {
		set_err(err, errlen, "store", "data_dir is required");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->efd = -1;
	s->stats.healthy = true;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->db_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_cond_init(&s->idle, &ca);
	pthread_cond_init(&s->read_wake, &ca);
	pthread_condattr_destroy(&ca);
	s->queue_max_bytes = cfg->queue_max_bytes ? cfg->queue_max_bytes : DEFAULT_QUEUE_BYTES;
	s->queue_max_records =
		cfg->queue_max_records ? cfg->queue_max_records : DEFAULT_QUEUE_RECORDS;
	s->batch_max = cfg->batch_max ? cfg->batch_max : DEFAULT_BATCH;
	s->retry_min_ms = cfg->retry_min_ms ? cfg->retry_min_ms : DEFAULT_RETRY_MIN_MS;
	s->retry_max_ms = cfg->retry_max_ms ? cfg->retry_max_ms : DEFAULT_RETRY_MAX_MS;
	if (s->retry_max_ms < s->retry_min_ms)
		s->retry_max_ms = s->retry_min_ms;

	plen = strlen(cfg->data_dir) + sizeof("/" STORE_DB_NAME);
	s->path = malloc(plen);
	if (!s->path) {
		ret = -ENOMEM;
		goto fail;
	}
	snprintf(s->path, plen, "%s/%s", cfg->data_dir, STORE_DB_NAME);
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		set_err(err, errlen, cfg->data_dir, strerror(-ret));
		goto fail;
	}
	ret = create_private(s->path);
	if (ret < 0) {
		set_err(err, errlen, s->path, strerror(-ret));
		goto fail;
	}
	ret = open_db(s, err, errlen);
	if (ret < 0)
		goto fail;
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		ret = -errno;
		set_err(err, errlen, s->path, strerror(-ret));
		goto fail;
	}
	ret = -pthread_create(&s->writer, NULL, writer_main, s);
	if (ret < 0) {
		set_err(err, errlen, s->path, strerror(-ret));
		goto fail;
	}
	s->writer_started = true;
	ret = -pthread_create(&s->reader, NULL, reader_main, s);
	if (ret < 0) {
		set_err(err, errlen, s->path, strerror(-ret));
		goto fail;
	}
	s->reader_started = true;
	*out = s;
	return 0;
fail:
	stop_threads(s);
	store_free(s);
	return ret;
}

void store_close(struct store *s, size_t *lost)
{
	size_t n = 0;

	if (!s)
		return;
	stop_threads(s);
	free_list(s->head, &n);
	s->head = s->tail = NULL;
	if (lost)
		*lost = n;
	store_free(s);
}

/* ---------------------------------------------------- synchronous reads -- */

void store_strv_free(char **v)
{
	char **p;

	if (!v)
		return;
	for (p = v; *p; p++)
		free(*p);
	free(v);
}

int store_list_open_sessions(struct store *store, char ***ids, size_t *n)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL, **grown;
	size_t count = 0;
	int rc, ret = 0;

	if (!store || !ids || !n)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	rc = sqlite3_prepare_v2(store->db,
				"SELECT id FROM sessions WHERE ended_ms IS NULL "
				"ORDER BY started_ms, rowid",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	v = calloc(1, sizeof(*v));
	if (!v) {
		ret = -ENOMEM;
		goto fail;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		grown = realloc(v, (count + 2) * sizeof(*v));
		if (!grown) {
			ret = -ENOMEM;
			goto fail;
		}
		v = grown;
		v[count] = strdup((const char *)sqlite3_column_text(st, 0));
		if (!v[count]) {
			ret = -ENOMEM;
			goto fail;
		}
		v[++count] = NULL;
	}
	if (rc != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	*ids = v;
	*n = count;
	return 0;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
fail:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	store_strv_free(v);
	return ret;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : NULL;
}

int store_load_open_alarms(struct store *store,
			   int (*fn)(const struct store_alarm *alarm, void *user_data),
			   void *user_data)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	if (!store || !fn)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	rc = sqlite3_prepare_v2(store->db,
				"SELECT alarm_id, cuff, session_id, code, priority, kind, state, "
				"condition_present, raised_ms, acked_ms, acked_by, cleared_ms, "
				"message, vals FROM alarms WHERE state <> 'cleared' "
				"ORDER BY raised_ms, rowid",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_alarm a = {
			.alarm_id = col_text(st, 0),
			.cuff = col_text(st, 1),
			.session_id = col_text(st, 2),
			.code = col_text(st, 3),
			.priority = col_text(st, 4),
			.kind = col_text(st, 5),
			.state = col_text(st, 6),
			.condition_present = sqlite3_column_int(st, 7) != 0,
			.raised_ms = sqlite3_column_int64(st, 8),
			.acked_ms = sqlite3_column_int64(st, 9),
			.acked_by = col_text(st, 10),
			.cleared_ms = sqlite3_column_int64(st, 11),
			.message = col_text(st, 12),
			.values_json = col_text(st, 13),
		};

		if (!a.alarm_id || !a.code || !a.state)
			continue;
		ret = fn(&a, user_data);
		if (ret < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE)
		goto sqlfail;
	goto fail;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
fail:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	return ret;
}

/* One query's rows as JSON; column values that hold JSON text are parsed. */
static int load_rows(struct store *store, const char *sql, const char *id, json_t *into,
		     const char *key)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int rc;

	if (!arr)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(store->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = json_object();

		for (int i = 0; row && i < sqlite3_column_count(st); i++) {
			const char *name = sqlite3_column_name(st, i);
			json_t *v;

			switch (sqlite3_column_type(st, i)) {
			case SQLITE_INTEGER:
				v = json_integer(sqlite3_column_int64(st, i));
				break;
			case SQLITE_TEXT:
				v = json_loads(col_text(st, i), JSON_DECODE_ANY, NULL);
				if (!v)
					v = json_string(col_text(st, i));
				break;
			default:
				v = json_null();
				break;
			}
			json_object_set_new(row, name, v);
		}
		json_array_append_new(arr, row);
	}
done:
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
	}
	json_object_set_new(into, key, arr);
	return 0;
}

int store_session_load(struct store *store, const char *session_id, json_t **out)
{
	json_t *o;
	int r;

	if (!store || !session_id || !out)
		return -EINVAL;
	o = json_object();
	if (!o)
		return -ENOMEM;
	pthread_mutex_lock(&store->db_lock);
	r = load_rows(store,
		      "SELECT plan, patient, started_ms, ended_ms, outcome, state FROM sessions "
		      "WHERE id = ?1",
		      session_id, o, "session");
	if (r == 0)
		r = load_rows(store,
			      "SELECT MAX(seq) AS last_seq, MAX(ts_ms) AS last_ts_ms FROM session_events "
			      "WHERE session_id = ?1",
			      session_id, o, "events");
	if (r == 0)
		r = load_rows(store,
			      "SELECT exercise, set_no AS \"set\", cuff, figures FROM set_figures "
			      "WHERE session_id = ?1 ORDER BY exercise, set_no, cuff",
			      session_id, o, "figures");
	pthread_mutex_unlock(&store->db_lock);
	if (r == 0 && json_array_size(json_object_get(o, "session")) != 1)
		r = -ENOENT;
	if (r < 0) {
		json_decref(o);
		return r;
	}
	*out = o;
	return 0;
}

int store_alarm_max_seq(struct store *store, const char *gateway_id, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 max = 0;
	int rc, ret = 0;

	if (!store || !gateway_id || !out)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	/* Ids are "<gateway>-<seq>"; the numeric tail after the gateway's prefix. */
	rc = sqlite3_prepare_v2(store->db,
				"SELECT MAX(CAST(substr(alarm_id, length(?1) + 2) AS INTEGER)) "
				"FROM alarms WHERE substr(alarm_id, 1, length(?1) + 1) = ?1 || '-'",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_text(st, 1, gateway_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		goto sqlfail;
	max = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	*out = max > 0 ? (uint64_t)max : 0;
	return 0;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	return ret;
}

int store_load_command_replies(struct store *store, int64_t since_ms, size_t max,
			       int (*fn)(const char *request_id, const char *verb,
					 const char *reply_json, int64_t ts_ms, void *user_data),
			       void *user_data)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	if (!store || !fn || max > INT32_MAX)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	/* What no client can still be waiting for goes first. */
	rc = sqlite3_prepare_v2(store->db, "DELETE FROM command_replies WHERE ts_ms < ?1", -1,
				&st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_int64(st, 1, since_ms);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	rc = sqlite3_prepare_v2(store->db,
				"SELECT request_id, verb, reply, ts_ms FROM (SELECT * FROM "
				"command_replies ORDER BY ts_ms DESC LIMIT ?1) ORDER BY ts_ms",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_int(st, 1, (int)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && ret == 0)
		ret = fn((const char *)sqlite3_column_text(st, 0),
			 (const char *)sqlite3_column_text(st, 1),
			 (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3),
			 user_data);
	if (ret == 0 && rc != SQLITE_DONE)
		goto sqlfail;
	goto out;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	return ret;
}

int store_lop_latest(struct store *store, const char *cuff, double *lop_mmhg,
		     int64_t *measured_ms)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	if (!store || !cuff || !lop_mmhg || !measured_ms)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	rc = sqlite3_prepare_v2(store->db,
				"SELECT lop_mmhg, measured_ms FROM lop_measurements WHERE cuff = ?1 "
				"ORDER BY id DESC LIMIT 1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_text(st, 1, cuff, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW)
		goto sqlfail;
	*lop_mmhg = sqlite3_column_double(st, 0);
	*measured_ms = sqlite3_column_int64(st, 1);
	goto out;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	return ret;
}

int store_outbox_load(struct store *store,
		      int (*fn)(const struct store_outbox_row *row, void *user_data),
		      void *user_data)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	if (!store || !fn)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	rc = sqlite3_prepare_v2(store->db,
				"SELECT id, topic, payload, qos, retain, droppable, msg_id, "
				"created_ms FROM outbox ORDER BY id",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto done;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_outbox_row row = {
			.id = sqlite3_column_int64(st, 0),
			.topic = (const char *)sqlite3_column_text(st, 1),
			.payload = sqlite3_column_blob(st, 2),
			.len = (size_t)sqlite3_column_bytes(st, 2),
			.qos = sqlite3_column_int(st, 3),
			.retain = sqlite3_column_int(st, 4) != 0,
			.droppable = sqlite3_column_int(st, 5) != 0,
			.msg_id = (const char *)sqlite3_column_text(st, 6),
			.created_ms = sqlite3_column_int64(st, 7),
		};

		if (!row.topic) {
			rc = SQLITE_NOMEM;
			break;
		}
		ret = fn(&row, user_data);
		if (ret < 0)
			break;
	}
done:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	if (ret < 0)
		return ret;
	if (rc != SQLITE_DONE)
		return store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
	return 0;
}

int store_outbox_scan(struct store *store,
		      int (*fn)(const struct store_outbox_meta *row, void *user_data),
		      void *user_data)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	if (!store || !fn)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	/* Bytes as the outbox counts them (the bytes column holds the size of
	 * the queued record instead); length() of a BLOB is a byte count and
	 * reads no payload. */
	rc = sqlite3_prepare_v2(store->db,
				"SELECT id, droppable, length(CAST(topic AS BLOB)) + length(payload) + "
				"ifnull(length(CAST(msg_id AS BLOB)), 0), "
				"CASE WHEN droppable THEN topic END FROM outbox ORDER BY id",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto done;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_outbox_meta m = {
			.id = sqlite3_column_int64(st, 0),
			.droppable = sqlite3_column_int(st, 1) != 0,
			.bytes = (size_t)sqlite3_column_int64(st, 2),
			.topic = (const char *)sqlite3_column_text(st, 3),
		};

		if (m.droppable && !m.topic) {
			rc = SQLITE_NOMEM;
			break;
		}
		ret = fn(&m, user_data);
		if (ret < 0)
			break;
	}
done:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	if (ret < 0)
		return ret;
	if (rc != SQLITE_DONE)
		return store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
	return 0;
}

int store_prescription_current(struct store *store, char **body_json, int64_t *set_ms)
{
	sqlite3_stmt *st = NULL;
	char *body = NULL;
	int rc, ret = 0;

	if (!store || !body_json || !set_ms)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	rc = sqlite3_prepare_v2(store->db,
				"SELECT body, set_ms FROM prescriptions WHERE cleared_ms IS NULL "
				"ORDER BY id DESC LIMIT 1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW)
		goto sqlfail;
	body = strdup(col_text(st, 0));
	if (!body) {
		ret = -ENOMEM;
		goto out;
	}
	*body_json = body;
	*set_ms = sqlite3_column_int64(st, 1);
	goto out;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	return ret;
}

int store_home_starts_recent(struct store *store, int64_t *started_ms, size_t cap, size_t *n)
{
	int64_t found[STORE_HOME_STARTS_MAX];
	sqlite3_stmt *st = NULL;
	size_t count = 0;
	int rc, ret = 0;

	if (!store || !n || (cap && !started_ms) || cap > STORE_HOME_STARTS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&store->db_lock);
	rc = sqlite3_prepare_v2(store->db,
				"SELECT started_ms FROM home_starts ORDER BY started_ms DESC LIMIT ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_int64(st, 1, (int64_t)cap);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < cap)
		found[count++] = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		goto sqlfail;
	if (count)
		memcpy(started_ms, found, count * sizeof(found[0]));
	*n = count;
	goto out;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&store->db_lock);
	return ret;
}
