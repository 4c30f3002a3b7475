/*
 * test_outbox.c - commit-before-publish, order across restarts, ack, bound,
 * coalescing, and the bounded window: rows beyond it live on disk only and
 * are read back in id order (memory stays bounded whatever the depth).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "outbox.h"
#include "store_test_util.h"
#include "test_alloc.h"

#define EVENT_TOPIC "bfr/v1/s/g/session/1/event"
#define WINDOW 256 /* the wiring's PUBLISHER_WINDOW */

struct fixture {
	char *dir;
	struct store *st;
	struct outbox *ob;
	struct seen seen;
	size_t ready_calls;
	size_t max_bytes;
};

static void on_completion(const struct store_completion *c, void *user_data)
{
	struct fixture *f = user_data;

	seen_cb(c, &f->seen);
	outbox_handle_completion(f->ob, c);
}

static void on_ready(struct outbox *ob, void *user_data)
{
	struct fixture *f = user_data;

	(void)ob;
	f->ready_calls++;
}

static void open_all(struct fixture *f)
{
	struct store_config cfg = { .data_dir = f->dir };

	assert_int_equal(store_open(&cfg, &f->st, NULL, 0), 0);
	store_set_completion_cb(f->st, on_completion, f);
	assert_int_equal(outbox_new(f->st, f->max_bytes, &f->ob), 0);
	outbox_set_ready_cb(f->ob, on_ready, f);
}

static void close_all(struct fixture *f)
{
	outbox_free(f->ob);
	store_close(f->st, NULL);
	f->ob = NULL;
	f->st = NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = make_tmpdir();
	assert_non_null(f->dir);
	f->max_bytes = 64 * 1024 * 1024;
	open_all(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close_all(f);
	rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static struct outbox_stats stats(struct fixture *f)
{
	struct outbox_stats s;

	outbox_get_stats(f->ob, &s);
	return s;
}

static bool none_committing(void *arg)
{
	struct fixture *f = arg;

	return stats(f).committing == 0;
}

static void wait_committed(struct fixture *f)
{
	assert_true(wait_until(f->st, none_committing, f, 10000));
}

/* Reloaded, or read back: the backlog's first rows are in memory (or none is left). */
static bool window_filled(void *arg)
{
	struct fixture *f = arg;
	struct outbox_stats s = stats(f);

	return s.window > s.handed || s.backlog == 0;
}

static void path_of(struct fixture *f, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", f->dir, STORE_DB_NAME);
}

static long long db_count(struct fixture *f, const char *sql)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	assert_int_equal(store_flush(f->st, 10000), 0);
	path_of(f, path, sizeof(path));
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Runs sql on a connection of its own (behind the store's back). */
static void db_exec(struct fixture *f, const char *sql)
{
	char path[512];
	sqlite3 *db;

	path_of(f, path, sizeof(path));
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void append_event(struct fixture *f, int k)
{
	char payload[64], msg_id[32];

	snprintf(payload, sizeof(payload), "{\"seq\":%d}", k);
	snprintf(msg_id, sizeof(msg_id), "m-%d", k);
	assert_int_equal(outbox_append(f->ob, EVENT_TOPIC, payload, strlen(payload), 1, 0, msg_id,
				       k),
			 0);
}

static void append_events(struct fixture *f, int from, int to)
{
	for (int k = from; k <= to; k++) {
		append_event(f, k);
		/* Keep the store's queue from filling: as the loop would. */
		if (k % 1024 == 0)
			store_dispatch_completions(f->st);
	}
	wait_committed(f);
}

static void append_snapshot(struct fixture *f, const char *topic, const char *msg_id, int k)
{
	char payload[32];

	snprintf(payload, sizeof(payload), "{\"p\":%d}", k);
	assert_int_equal(outbox_append(f->ob, topic, payload, strlen(payload), 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, msg_id, k),
			 0);
}

/* What a drain delivered, in delivery order. */
struct delivered {
	int64_t *ids;
	char **msg_ids;
	size_t n, cap;
	int64_t cursor;
};

static void delivered_add(struct delivered *d, const struct outbox_row *row)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 1024;
		d->ids = realloc(d->ids, d->cap * sizeof(*d->ids));
		d->msg_ids = realloc(d->msg_ids, d->cap * sizeof(*d->msg_ids));
		assert_non_null(d->ids);
		assert_non_null(d->msg_ids);
	}
	d->ids[d->n] = row->id;
	d->msg_ids[d->n] = strdup(row->msg_id ? row->msg_id : "");
	assert_non_null(d->msg_ids[d->n]);
	d->n++;
}

static void delivered_free(struct delivered *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->msg_ids[i]);
	free(d->ids);
	free(d->msg_ids);
	memset(d, 0, sizeof(*d));
}

struct ready_wait {
	struct fixture *f;
	size_t calls;
};

static bool ready_again(void *arg)
{
	struct ready_wait *w = arg;

	return w->f->ready_calls > w->calls;
}

/*
 * Hands out and acknowledges rows as the wiring does (WINDOW at a time, the
 * cursor after the last one handed out) until the outbox is empty, waiting
 * for the ready callback when nothing is in memory. Each delivery batch is
 * checked to continue the id order; max_window is the most rows the outbox
 * held in memory at any point.
 */
static void drain_all(struct fixture *f, struct delivered *d, size_t *max_window)
{
	const struct outbox_row *rows[WINDOW];
	size_t n;

	for (;;) {
		struct outbox_stats s = stats(f);
		struct ready_wait w = { f, f->ready_calls };

		if (max_window && s.window > *max_window)
			*max_window = s.window;
		assert_int_equal(outbox_next(f->ob, d->cursor, WINDOW, rows, &n), 0);
		for (size_t i = 0; i < n; i++) {
			assert_true(rows[i]->id > d->cursor);
			delivered_add(d, rows[i]);
			d->cursor = rows[i]->id;
		}
		for (size_t i = 0; i < n; i++)
			assert_int_equal(outbox_ack(f->ob, d->ids[d->n - n + i]), 0);
		if (n)
			continue;
		if (outbox_depth(f->ob) == 0)
			break;
		/* Nothing in memory yet: a read (or a commit) must bring some. */
		assert_true(wait_until(f->st, ready_again, &w, 10000));
	}
}

/* The seq of event msg_id "m-<seq>" (-1 for another msg_id). */
static int seq_of(const char *msg_id)
{
	return strncmp(msg_id, "m-", 2) ? -1 : atoi(msg_id + 2);
}

static void test_visible_only_after_commit_then_ack(void **state)
{
	struct fixture *f = *state;
	const struct outbox_row *rows[8];
	size_t n = 99;
	int k;

	for (k = 1; k <= 3; k++)
		append_event(f, k);
	/* Not committed yet: nothing may be published. */
	assert_int_equal(outbox_next(f->ob, 0, 8, rows, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(outbox_depth(f->ob), 3);
	wait_committed(f);
	assert_true(f->ready_calls >= 1);
	assert_int_equal(outbox_next(f->ob, 0, 8, rows, &n), 0);
	assert_int_equal(n, 3);
	assert_true(rows[0]->id < rows[1]->id && rows[1]->id < rows[2]->id);
	assert_string_equal(rows[2]->msg_id, "m-3");
	assert_memory_equal(rows[0]->payload, "{\"seq\":1}", rows[0]->len);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 3);
	/* Window of 2: the cursor gives the rest. */
	assert_int_equal(outbox_next(f->ob, rows[0]->id, 1, rows + 3, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(rows[3], rows[1]);

	assert_int_equal(outbox_ack(f->ob, rows[0]->id), 0);
	assert_int_equal(outbox_depth(f->ob), 2);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 2);
	assert_int_equal(outbox_ack(f->ob, 999999), -ENOENT);
	assert_int_equal(outbox_ack(f->ob, 0), -EINVAL);
	/* The broker keeps up: nothing was ever read back from the disk. */
	assert_int_equal(stats(f).reads, 0);
	assert_int_equal(stats(f).backlog, 0);
}

/* What outbox_foreach_unsent showed, in order. */
struct unsent {
	int seqs[1024];
	int64_t ids[1024];
	size_t n;
};

static void on_unsent(const struct outbox_row *row, void *user_data)
{
	struct unsent *u = user_data;

	assert_true(u->n < 1024);
	u->seqs[u->n] = seq_of(row->msg_id);
	u->ids[u->n++] = row->id;
}

/*
 * The rows never handed out, in send order, for the publisher's copies while
 * the disk fails: the window's rows ahead, then the committing ones; it stops
 * (and counts) where a row is not in memory, so that no copy can overtake it.
 */
static void test_foreach_unsent_in_send_order(void **state)
{
	struct fixture *f = *state;
	const struct outbox_row *rows[8];
	struct unsent u = { 0 };
	struct delivered d = { 0 };
	size_t n, left;

	append_events(f, 1, 3);
	assert_int_equal(outbox_next(f->ob, 0, 1, rows, &n), 0);
	assert_int_equal(n, 1);
	/* 4 and 5 are committing until their completions are dispatched. */
	append_event(f, 4);
	append_event(f, 5);
	assert_int_equal(stats(f).committing, 2);
	left = outbox_foreach_unsent(f->ob, on_unsent, &u);
	assert_int_equal(left, 0);
	assert_int_equal(u.n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(u.seqs[i], i + 2);
	assert_true(u.ids[0] > rows[0]->id && u.ids[1] > u.ids[0]);
	assert_int_equal(u.ids[2], 0); /* committing: no id yet */
	assert_int_equal(u.ids[3], 0);
	wait_committed(f);
	drain_all(f, &d, NULL);
	assert_int_equal(d.n, 5);
	delivered_free(&d);
	u.n = 0;
	assert_int_equal(outbox_foreach_unsent(f->ob, on_unsent, &u), 0);
	assert_int_equal(u.n, 0);

	/* A backlog on disk: only the window's rows ahead of it are shown, and
	 * the rows behind it (backlog, then a committing one) are counted. */
	append_events(f, 6, 3005);
	append_event(f, 3006);
	u.n = 0;
	left = outbox_foreach_unsent(f->ob, on_unsent, &u);
	assert_true(u.n > 0 && u.n <= OUTBOX_AHEAD_MAX);
	for (size_t i = 0; i < u.n; i++)
		assert_int_equal(u.seqs[i], 6 + (int)i);
	assert_int_equal(left, 3001 - u.n);
	assert_int_equal(outbox_foreach_unsent(NULL, on_unsent, &u), 0);
	assert_int_equal(outbox_foreach_unsent(f->ob, NULL, NULL), 0);
	wait_committed(f);
	drain_all(f, &d, NULL);
	assert_int_equal(d.n, 3001);
	delivered_free(&d);
}

static void test_restart_drains_in_order(void **state)
{
	struct fixture *f = *state;
	const struct outbox_row *rows[16];
	int64_t ids[10], last_id;
	size_t n;
	int k;

	for (k = 1; k <= 10; k++)
		append_event(f, k);
	wait_committed(f);
	assert_int_equal(outbox_next(f->ob, 0, 16, rows, &n), 0);
	assert_int_equal(n, 10);
	for (k = 0; k < 10; k++)
		ids[k] = rows[k]->id;
	assert_int_equal(outbox_ack(f->ob, ids[0]), 0);
	assert_int_equal(outbox_ack(f->ob, ids[1]), 0);
	assert_int_equal(outbox_ack(f->ob, ids[5]), 0); /* acks may come out of order */
	assert_int_equal(store_flush(f->st, 5000), 0);
	close_all(f);

	open_all(f);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	assert_int_equal(outbox_depth(f->ob), 7);
	assert_int_equal(outbox_load_pending(f->ob), -EBUSY);
	/* The rows are read back by the store's reader: ready follows. */
	assert_true(wait_until(f->st, window_filled, f, 5000));
	assert_true(f->ready_calls >= 1);
	assert_int_equal(outbox_next(f->ob, 0, 16, rows, &n), 0);
	assert_int_equal(n, 7);
	{
		const int64_t want[] = { ids[2], ids[3], ids[4], ids[6], ids[7], ids[8], ids[9] };

		for (k = 0; k < 7; k++)
			assert_int_equal(rows[k]->id, want[k]);
	}
	assert_string_equal(rows[0]->msg_id, "m-3");
	assert_memory_equal(rows[0]->payload, "{\"seq\":3}", rows[0]->len);
	assert_int_equal(rows[0]->created_ms, 3);
	last_id = rows[6]->id;
	/* New rows continue the order after the reloaded ones. */
	append_event(f, 11);
	wait_committed(f);
	assert_int_equal(outbox_next(f->ob, last_id, 16, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_true(rows[0]->id > last_id);
	assert_string_equal(rows[0]->msg_id, "m-11");
}

/*
 * The broker is away for a long time: the outbox keeps only its window in
 * memory, the rest on disk, and after the "reconnect" every row is handed
 * out exactly once, in append order, with its own payload.
 */
static void test_window_refill_from_disk(void **state)
{
	struct fixture *f = *state;
	const int total = 5000;
	struct delivered d = { 0 };
	struct outbox_stats s;
	size_t max_window = 0;

	append_events(f, 1, total);
	s = stats(f);
	assert_int_equal(s.depth, total);
	assert_true(s.window <= OUTBOX_AHEAD_MAX);
	assert_int_equal(s.window + s.backlog, total);
	assert_true(s.backlog >= (size_t)total - OUTBOX_AHEAD_MAX);
	assert_true(s.window_bytes <= OUTBOX_AHEAD_MAX_BYTES);

	drain_all(f, &d, &max_window);
	assert_int_equal(d.n, total);
	for (int k = 0; k < total; k++)
		assert_int_equal(seq_of(d.msg_ids[k]), k + 1);
	assert_true(max_window <= OUTBOX_AHEAD_MAX);
	s = stats(f);
	assert_true(s.reads >= (uint64_t)(total - OUTBOX_AHEAD_MAX) / OUTBOX_READ_ROWS);
	assert_int_equal(s.read_failed, 0);
	assert_int_equal(s.depth, 0);
	assert_int_equal(s.bytes, 0);
	assert_int_equal(s.backlog, 0);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 0);
	/* With the backlog gone, new rows stay in memory again. */
	append_event(f, total + 1);
	wait_committed(f);
	assert_int_equal(stats(f).backlog, 0);
	assert_int_equal(stats(f).window, 1);
	delivered_free(&d);
}

/* A big backlog left by a crash: counted at start-up, read back in order. */
static void test_restart_reload_order(void **state)
{
	struct fixture *f = *state;
	const int total = 3000;
	const struct outbox_row *rows[WINDOW];
	struct delivered d = { 0 };
	size_t n, bytes;

	append_events(f, 1, total);
	bytes = outbox_bytes(f->ob);
	/* The first 300 delivered before the "crash", one out of order. */
	assert_int_equal(outbox_next(f->ob, 0, WINDOW, rows, &n), 0);
	assert_int_equal(n, WINDOW);
	for (size_t i = 0; i < n; i++)
		if (i != 7)
			assert_int_equal(outbox_ack(f->ob, rows[i]->id), 0);
	assert_int_equal(store_flush(f->st, 5000), 0);
	close_all(f);

	open_all(f);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	assert_int_equal(outbox_depth(f->ob), total - WINDOW + 1);
	assert_true(outbox_bytes(f->ob) < bytes && outbox_bytes(f->ob) > bytes * 9 / 10);
	assert_int_equal(stats(f).backlog, total - WINDOW + 1);
	/* New rows appended during the drain go after the reloaded ones. */
	append_events(f, total + 1, total + 10);
	drain_all(f, &d, NULL);
	assert_int_equal(d.n, total - WINDOW + 1 + 10);
	assert_int_equal(seq_of(d.msg_ids[0]), 8);
	for (size_t i = 1; i < d.n; i++)
		assert_int_equal(seq_of(d.msg_ids[i]), WINDOW + (int)i);
	delivered_free(&d);
}

static void test_retained_snapshots_coalesce(void **state)
{
	struct fixture *f = *state;
	const char *topic = "bfr/v1/s/g/cuff/bay1/state";
	const struct outbox_row *rows[8];
	size_t n;

	/* Coalesced while the older one is still committing. */
	append_snapshot(f, topic, "a", 1);
	append_event(f, 1);
	append_snapshot(f, topic, "b", 2);
	wait_committed(f);
	assert_int_equal(outbox_depth(f->ob), 2);
	/* Coalesced once committed (not yet handed out). */
	append_snapshot(f, topic, "c", 3);
	wait_committed(f);
	assert_int_equal(outbox_next(f->ob, 0, 8, rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0]->msg_id, "m-1"); /* the event keeps its place */
	assert_string_equal(rows[1]->msg_id, "c");
	assert_int_equal(stats(f).coalesced, 2);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 2);
	/* "c" is handed out (maybe in flight): a newer one does not replace it. */
	append_snapshot(f, topic, "d", 4);
	wait_committed(f);
	assert_int_equal(outbox_depth(f->ob), 3);
	/* Non-droppable retained rows (alarms) are never coalesced. */
	assert_int_equal(outbox_append(f->ob, "alarm/1", "{}", 2, 1, OUTBOX_RETAIN, "x", 5), 0);
	assert_int_equal(outbox_append(f->ob, "alarm/1", "", 0, 1, OUTBOX_RETAIN, "y", 6), 0);
	wait_committed(f);
	assert_int_equal(outbox_depth(f->ob), 5);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 5);
	assert_int_equal(db_count(f, "SELECT length(payload) FROM outbox WHERE msg_id='y'"), 0);
	/* A final (retained, not droppable) state replaces the snapshot "d"
	 * before it, and is itself never replaced. */
	assert_int_equal(outbox_append(f->ob, topic, "{\"final\":1}", 11, 1, OUTBOX_RETAIN, "e", 7),
			 0);
	append_snapshot(f, topic, "f", 8);
	wait_committed(f);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox WHERE msg_id = 'd'"), 0);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox WHERE msg_id IN ('e', 'f')"), 2);
	assert_int_equal(stats(f).coalesced, 3);
	assert_int_equal(outbox_depth(f->ob), 6);
}

/*
 * Coalescing reaches rows wherever they are: on disk only, read ahead into
 * memory, or returned by a read that was under way when they were replaced.
 */
static void test_coalescing_with_rows_on_disk(void **state)
{
	struct fixture *f = *state;
	const char *a = "bfr/v1/s/g/cuff/a/state", *b = "bfr/v1/s/g/cuff/b/state";
	struct delivered d = { 0 };
	struct store_stats ss;
	uint64_t reads0;
	const struct outbox_row *rows[1];
	size_t n;

	append_events(f, 1, OUTBOX_AHEAD_MAX + 100); /* the window is full: the rest is on disk */
	append_snapshot(f, a, "a1", 1);
	append_snapshot(f, b, "b1", 1);
	append_events(f, OUTBOX_AHEAD_MAX + 101, OUTBOX_AHEAD_MAX + 110);
	assert_true(stats(f).backlog >= 112);
	/* a1 is on disk only: replaced there. */
	append_snapshot(f, a, "a2", 2);
	wait_committed(f);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox WHERE msg_id = 'a1'"), 0);
	assert_int_equal(stats(f).coalesced, 1);
	assert_int_equal(outbox_depth(f->ob), OUTBOX_AHEAD_MAX + 110 + 2);

	/* A read is under way when b1 is replaced: hand out one row (the
	 * window drops below its low mark, a read goes out), let the reader
	 * finish without dispatching its result, then replace b1. */
	for (size_t k = 0; k <= OUTBOX_AHEAD_MAX - OUTBOX_AHEAD_LOW; k++) {
		store_get_stats(f->st, &ss);
		reads0 = ss.reads;
		assert_int_equal(outbox_next(f->ob, d.cursor, 1, rows, &n), 0);
		assert_int_equal(n, 1);
		delivered_add(&d, rows[0]);
		d.cursor = rows[0]->id;
		assert_int_equal(outbox_ack(f->ob, rows[0]->id), 0);
	}
	{
		uint64_t deadline = test_now_ms() + 5000;

		do {
			store_get_stats(f->st, &ss);
			if (ss.reads > reads0)
				break;
			poll(NULL, 0, 1);
		} while (test_now_ms() < deadline);
		assert_true(ss.reads > reads0);
	}
	append_snapshot(f, b, "b2", 2); /* the read's result still holds b1 */
	drain_all(f, &d, NULL);
	{
		size_t k = 0;

		for (size_t i = 0; i < d.n; i++)
			if (seq_of(d.msg_ids[i]) > 0)
				assert_int_equal(seq_of(d.msg_ids[i]), (int)++k);
		assert_int_equal(k, OUTBOX_AHEAD_MAX + 110);
		/* Snapshots: only the newest of each topic, after every event. */
		assert_int_equal(d.n, k + 2);
		assert_true(!strcmp(d.msg_ids[d.n - 2], "a2") && !strcmp(d.msg_ids[d.n - 1], "b2"));
	}
	assert_int_equal(stats(f).coalesced, 2);
	assert_int_equal(outbox_depth(f->ob), 0);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 0);

	/* A snapshot read ahead into memory (not handed out) is replaced there. */
	append_events(f, 1, OUTBOX_AHEAD_MAX + 10);
	append_snapshot(f, a, "a3", 3);
	append_events(f, 1, 10);
	delivered_free(&d);
	{
		const struct outbox_row *many[OUTBOX_AHEAD_MAX];
		struct ready_wait w = { f, f->ready_calls };

		/* Hand out the whole window: a read brings a3 in (ahead). */
		assert_int_equal(outbox_next(f->ob, 0, OUTBOX_AHEAD_MAX, many, &n), 0);
		assert_int_equal(n, OUTBOX_AHEAD_MAX);
		assert_true(wait_until(f->st, ready_again, &w, 5000));
		for (size_t i = 0; i < n; i++)
			assert_int_equal(outbox_ack(f->ob, many[i]->id), 0);
	}
	assert_true(stats(f).window > 0);
	append_snapshot(f, a, "a4", 4);
	wait_committed(f);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox WHERE msg_id = 'a3'"), 0);
	drain_all(f, &d, NULL);
	assert_string_equal(d.msg_ids[d.n - 1], "a4");
	for (size_t i = 0; i < d.n; i++)
		assert_string_not_equal(d.msg_ids[i], "a3");
	delivered_free(&d);
}

/*
 * After a restart the backlog is read while the wiring already appends
 * (recovery, cuff states): those rows keep their payload and are in memory
 * once the backlog is read, so a connect hands them all out at once, before
 * anything the connect itself publishes, not one read later.
 */
static void test_rows_appended_during_a_read_stay_in_memory(void **state)
{
	struct fixture *f = *state;
	const struct outbox_row *rows[64];
	struct store_stats ss;
	uint64_t deadline;
	size_t n;

	append_events(f, 1, 1);
	close_all(f);
	open_all(f);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	/* The reader is done, its result not yet dispatched: append now. */
	deadline = test_now_ms() + 5000;
	do {
		store_get_stats(f->st, &ss);
		if (ss.reads)
			break;
		poll(NULL, 0, 1);
	} while (test_now_ms() < deadline);
	assert_int_equal(ss.reads, 1);
	append_events(f, 2, 11);
	assert_int_equal(stats(f).backlog, 0);
	assert_int_equal(outbox_next(f->ob, 0, 64, rows, &n), 0);
	assert_int_equal(n, 11);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(seq_of(rows[i]->msg_id), (int)i + 1);
	assert_int_equal(stats(f).reads, 1);
}

/* Coalescing still works on what a restart found on disk. */
static void test_coalescing_after_restart(void **state)
{
	struct fixture *f = *state;
	const char *a = "bfr/v1/s/g/session/x/state";
	struct delivered d = { 0 };

	append_event(f, 1);
	append_snapshot(f, a, "s1", 1);
	append_event(f, 2);
	wait_committed(f);
	close_all(f);
	open_all(f);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	append_snapshot(f, a, "s2", 2);
	wait_committed(f);
	assert_int_equal(outbox_depth(f->ob), 3);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox WHERE msg_id = 's1'"), 0);
	drain_all(f, &d, NULL);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.msg_ids[0], "m-1");
	assert_string_equal(d.msg_ids[1], "m-2");
	assert_string_equal(d.msg_ids[2], "s2");
	delivered_free(&d);
}

/* Acks in any order; a row on disk only was never handed out: -ENOENT. */
static void test_ack_of_rows(void **state)
{
	struct fixture *f = *state;
	const struct outbox_row *rows[WINDOW];
	int64_t backlog_id, first;
	size_t n;

	append_events(f, 1, OUTBOX_AHEAD_MAX + 50);
	assert_int_equal(outbox_next(f->ob, 0, WINDOW, rows, &n), 0);
	assert_int_equal(n, WINDOW);
	/* The last row appended is on disk only. */
	backlog_id = rows[0]->id + OUTBOX_AHEAD_MAX + 49;
	assert_null(outbox_get(f->ob, backlog_id));
	assert_int_equal(outbox_ack(f->ob, backlog_id), -ENOENT);
	/* Handed out: found by id (what the wiring does for refused rows). */
	assert_ptr_equal(outbox_get(f->ob, rows[10]->id), rows[10]);
	assert_int_equal(outbox_ack(f->ob, rows[WINDOW - 1]->id), 0);
	first = rows[0]->id; /* rows[0] is freed by its ack */
	assert_int_equal(outbox_ack(f->ob, first), 0);
	assert_int_equal(outbox_ack(f->ob, first), -ENOENT);
	assert_int_equal(outbox_depth(f->ob), OUTBOX_AHEAD_MAX + 48);
	/* A reconnect hands out again from the oldest unacknowledged row. */
	assert_int_equal(outbox_next(f->ob, 0, 2, rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0]->msg_id, "m-2");
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), OUTBOX_AHEAD_MAX + 48);
}

/*
 * Rows handed out and never acknowledged (a broker that refuses them) stay
 * in memory; at OUTBOX_HANDED_MAX no more are handed out until acks come.
 */
static void test_handed_out_rows_are_bounded(void **state)
{
	struct fixture *f = *state;
	const struct outbox_row *rows[WINDOW];
	int64_t cursor = 0, first = 0;
	size_t n, handed = 0;

	append_events(f, 1, OUTBOX_HANDED_MAX + 300);
	for (;;) {
		struct ready_wait w = { f, f->ready_calls };

		assert_int_equal(outbox_next(f->ob, cursor, WINDOW, rows, &n), 0);
		if (!n && stats(f).handed == OUTBOX_HANDED_MAX)
			break;
		if (!n) {
			assert_true(wait_until(f->st, ready_again, &w, 5000));
			continue;
		}
		if (!handed)
			first = rows[0]->id;
		handed += n;
		cursor = rows[n - 1]->id;
	}
	assert_int_equal(handed, OUTBOX_HANDED_MAX);
	assert_true(stats(f).window <= OUTBOX_HANDED_MAX + OUTBOX_AHEAD_MAX);
	/* Every one is still there for a retry. */
	assert_non_null(outbox_get(f->ob, first));
	assert_non_null(outbox_get(f->ob, cursor));
	/* An ack makes room for one more (once the read under way is in). */
	assert_true(wait_until(f->st, window_filled, f, 5000));
	assert_int_equal(outbox_ack(f->ob, first), 0);
	assert_int_equal(outbox_next(f->ob, cursor, WINDOW, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_true(rows[0]->id > cursor);
}

static void test_bound_alarm_and_refusal(void **state)
{
	struct fixture *f = *state;
	char payload[100];
	struct outbox_stats s;
	int k;

	close_all(f);
	f->max_bytes = 1000;
	open_all(f);
	memset(payload, 'p', sizeof(payload));
	/* topic 5 + payload 100 + msg_id 0 = 105 bytes a row */
	for (k = 0; k < 7; k++)
		assert_int_equal(outbox_append(f->ob, "ev/1/", payload, 100, 1, 0, NULL, k), 0);
	assert_false(outbox_over_alarm_level(f->ob));
	assert_int_equal(outbox_append(f->ob, "ev/1/", payload, 100, 1, 0, NULL, 8), 0);
	assert_true(outbox_over_alarm_level(f->ob)); /* 840 / 1000 */
	assert_false(outbox_is_full(f->ob));
	assert_int_equal(outbox_append(f->ob, "st/1/", payload, 100, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, NULL, 9),
			 0); /* 945 */
	assert_int_equal(outbox_append(f->ob, "st/2/", payload, 100, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, NULL, 10),
			 -ENOBUFS);
	/* Replacing the same topic's snapshot fits: the old one goes. */
	assert_int_equal(outbox_append(f->ob, "st/1/", payload, 100, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, NULL, 11),
			 0);
	assert_false(outbox_is_full(f->ob));
	/* Events are never refused by the bound. */
	for (k = 0; k < 5; k++)
		assert_int_equal(outbox_append(f->ob, "ev/1/", payload, 100, 1, 0, NULL, 20 + k),
				 0);
	assert_true(outbox_fill_ratio(f->ob) > 1.0);
	assert_true(outbox_is_full(f->ob));
	outbox_get_stats(f->ob, &s);
	assert_int_equal(s.refused, 1);
	assert_int_equal(s.coalesced, 1);
	assert_int_equal(s.depth, 14);
	wait_committed(f);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 14);
	/* The bound counts what is on disk as well: the same after a restart. */
	close_all(f);
	open_all(f);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	assert_int_equal(outbox_bytes(f->ob), 14 * 105);
	assert_true(outbox_is_full(f->ob));
	assert_int_equal(outbox_append(f->ob, "st/2/", payload, 100, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, NULL, 30),
			 -ENOBUFS);
}

static bool read_failed(void *arg)
{
	return stats(arg).read_failed > 0;
}

/* A read that fails is asked again; no row is skipped. */
static void test_read_failure_is_retried(void **state)
{
	struct fixture *f = *state;
	struct delivered d = { 0 };
	struct outbox_stats s;
	struct ready_wait w;
	const struct outbox_row *rows[WINDOW];
	size_t n;

	append_events(f, 1, 3);
	assert_int_equal(store_flush(f->st, 5000), 0);
	close_all(f);
	/* Between the events, a row no gateway can have written: bigger than
	 * anything store_outbox_insert accepts, so the reader cannot return it. */
	db_exec(f, "UPDATE outbox SET id = id + 10 WHERE msg_id IN ('m-2', 'm-3')");
	db_exec(f, "INSERT INTO outbox (id, topic, payload, qos, retain, droppable, msg_id, "
		   "created_ms, bytes) VALUES (2, 'big', zeroblob(3 * 1024 * 1024), 1, 0, 0, "
		   "'big', 0, 0)");
	open_all(f);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	assert_int_equal(outbox_depth(f->ob), 4);
	/* The first read stops before the big row, the next one fails. */
	assert_true(wait_until(f->st, window_filled, f, 5000));
	assert_int_equal(outbox_next(f->ob, 0, WINDOW, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0]->msg_id, "m-1");
	delivered_add(&d, rows[0]);
	d.cursor = rows[0]->id;
	assert_true(wait_until(f->st, read_failed, f, 5000));
	s = stats(f); /* a failed read is not retried by itself: none is under way */
	assert_true(s.read_failed >= 1);
	assert_int_equal(s.backlog, 3);
	/* Someone removes it: the next read goes on with the rows after it. */
	db_exec(f, "DELETE FROM outbox WHERE id = 2");
	w = (struct ready_wait){ f, f->ready_calls };
	assert_int_equal(outbox_next(f->ob, d.cursor, WINDOW, rows, &n), 0);
	assert_true(wait_until(f->st, ready_again, &w, 5000));
	assert_int_equal(outbox_next(f->ob, d.cursor, WINDOW, rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0]->msg_id, "m-2");
	assert_string_equal(rows[1]->msg_id, "m-3");
	/* The deleted row was counted: the outbox squares its count once it
	 * has read everything up to its last id. */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(outbox_ack(f->ob, rows[i]->id), 0);
	assert_int_equal(outbox_ack(f->ob, d.ids[0]), 0);
	assert_int_equal(outbox_depth(f->ob), 0);
	delivered_free(&d);
}

static void test_bad_arguments_change_nothing(void **state)
{
	struct fixture *f = *state;
	const struct outbox_row *rows[2];
	struct outbox *ob = NULL;
	size_t n;

	assert_int_equal(outbox_append(f->ob, NULL, "x", 1, 1, 0, NULL, 0), -EINVAL);
	assert_int_equal(outbox_append(f->ob, "", "x", 1, 1, 0, NULL, 0), -EINVAL);
	assert_int_equal(outbox_append(f->ob, "t", NULL, 1, 1, 0, NULL, 0), -EINVAL);
	assert_int_equal(outbox_append(f->ob, "t", "x", 1, 7, 0, NULL, 0), -EINVAL);
	assert_int_equal(outbox_append(f->ob, "t", "x", 1, 1, 0x80, NULL, 0), -EINVAL);
	assert_int_equal(outbox_append(f->ob, "t", "x", 1, 1, OUTBOX_DROPPABLE, NULL, 0),
			 -EINVAL);
	assert_int_equal(outbox_next(f->ob, 0, 2, NULL, &n), -EINVAL);
	assert_int_equal(outbox_new(f->st, 0, &ob), -EINVAL);
	assert_null(ob);
	assert_int_equal(outbox_depth(f->ob), 0);
	assert_int_equal(outbox_bytes(f->ob), 0);
	assert_int_equal(outbox_next(f->ob, 0, 2, rows, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 0);
}

static void test_allocation_failures(void **state)
{
	struct fixture *f = *state;
	struct outbox *ob = NULL;
	long k;
	int ret;

	for (k = 0;; k++) {
		test_alloc_fail_after(k);
		ret = outbox_append(f->ob, "t/1", "{\"p\":0}", 7, 1, OUTBOX_RETAIN | OUTBOX_DROPPABLE,
				    "m", 1);
		test_alloc_reset();
		if (ret == 0)
			break;
		assert_int_equal(ret, -ENOMEM);
		assert_int_equal(outbox_depth(f->ob), 0);
	}
	assert_true(k >= 3); /* the entry, its index node and the store record */
	test_alloc_fail_after(0);
	assert_int_equal(outbox_new(f->st, 100, &ob), -ENOMEM);
	test_alloc_reset();
	assert_null(ob);
	append_events(f, 1, 2);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 3);

	/* A failed reload leaves the outbox empty, not half-loaded. */
	close_all(f);
	open_all(f);
	test_alloc_fail_after(0);
	assert_int_equal(outbox_load_pending(f->ob), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(outbox_depth(f->ob), 0);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	assert_int_equal(outbox_depth(f->ob), 3);
	close_all(f);
	open_all(f);
	/* The window's read cannot be asked for: the next outbox_next asks. */
	test_alloc_fail_after(1); /* the index node, then the read's buffer fails */
	assert_int_equal(outbox_load_pending(f->ob), 0);
	test_alloc_reset();
	assert_int_equal(outbox_depth(f->ob), 3);
	{
		struct delivered d = { 0 };

		drain_all(f, &d, NULL);
		assert_int_equal(d.n, 3);
		delivered_free(&d);
	}
}

/* Rows read back but not taken in for lack of memory stay on disk, in order. */
static void test_allocation_failure_while_reading(void **state)
{
	struct fixture *f = *state;
	const int total = OUTBOX_AHEAD_MAX + 40;
	struct delivered d = { 0 };

	append_events(f, 1, total);
	close_all(f);
	open_all(f);
	/* Only five entries can be made when the first read comes back. */
	test_alloc_fail_after(1); /* the read's buffer */
	assert_int_equal(outbox_load_pending(f->ob), 0);
	test_alloc_fail_after(5);
	assert_true(wait_until(f->st, window_filled, f, 5000));
	test_alloc_reset();
	assert_int_equal(stats(f).window, 5);
	assert_int_equal(stats(f).backlog, total - 5);
	drain_all(f, &d, NULL);
	assert_int_equal(d.n, total);
	for (int k = 0; k < total; k++)
		assert_int_equal(seq_of(d.msg_ids[k]), k + 1);
	delivered_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_visible_only_after_commit_then_ack, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_foreach_unsent_in_send_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_drains_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_refill_from_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_reload_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retained_snapshots_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalescing_with_rows_on_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalescing_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_appended_during_a_read_stay_in_memory, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ack_of_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handed_out_rows_are_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_alarm_and_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_failure_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocation_failure_while_reading, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
