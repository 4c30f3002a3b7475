/* test_outbox.c - commit-before-publish, order across restarts, ack, bound, coalescing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "outbox.h"
#include "store_test_util.h"
#include "test_alloc.h"

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
	f->max_bytes = 1024 * 1024;
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

static bool none_committing(void *arg)
{
	struct fixture *f = arg;
	struct outbox_stats s;

	outbox_get_stats(f->ob, &s);
	return s.committing == 0;
}

static void wait_committed(struct fixture *f)
{
	assert_true(wait_until(f->st, none_committing, f, 5000));
}

static long long db_count(struct fixture *f, const char *sql)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	assert_int_equal(store_flush(f->st, 5000), 0);
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void append_event(struct fixture *f, int k)
{
	char payload[64], msg_id[32];

	snprintf(payload, sizeof(payload), "{\"seq\":%d}", k);
	snprintf(msg_id, sizeof(msg_id), "m-%d", k);
	assert_int_equal(outbox_append(f->ob, "bfr/v1/s/g/session/1/event", payload,
				       strlen(payload), 1, 0, msg_id, k),
			 0);
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
	assert_int_equal(outbox_next(f->ob, 0, 16, rows, &n), 0);
	assert_int_equal(n, 7);
	{
		const int64_t want[] = { ids[2], ids[3], ids[4], ids[6], ids[7], ids[8], ids[9] };

		for (k = 0; k < 7; k++)
			assert_int_equal(rows[k]->id, want[k]);
	}
	assert_string_equal(rows[0]->msg_id, "m-3");
	last_id = rows[6]->id;
	/* New rows continue the order after the reloaded ones. */
	append_event(f, 11);
	wait_committed(f);
	assert_int_equal(outbox_next(f->ob, last_id, 16, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_true(rows[0]->id > last_id);
}

static void test_retained_snapshots_coalesce(void **state)
{
	struct fixture *f = *state;
	const char *topic = "bfr/v1/s/g/cuff/bay1/state";
	const struct outbox_row *rows[8];
	struct outbox_stats s;
	size_t n;

	/* Coalesced while the older one is still committing. */
	assert_int_equal(outbox_append(f->ob, topic, "{\"p\":1}", 7, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, "a", 1),
			 0);
	append_event(f, 1);
	assert_int_equal(outbox_append(f->ob, topic, "{\"p\":2}", 7, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, "b", 2),
			 0);
	wait_committed(f);
	assert_int_equal(outbox_depth(f->ob), 2);
	/* Coalesced once committed (not yet handed out). */
	assert_int_equal(outbox_append(f->ob, topic, "{\"p\":3}", 7, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, "c", 3),
			 0);
	wait_committed(f);
	assert_int_equal(outbox_next(f->ob, 0, 8, rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0]->msg_id, "m-1"); /* the event keeps its place */
	assert_string_equal(rows[1]->msg_id, "c");
	outbox_get_stats(f->ob, &s);
	assert_int_equal(s.coalesced, 2);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 2);
	/* "c" is handed out (maybe in flight): a newer one does not replace it. */
	assert_int_equal(outbox_append(f->ob, topic, "{\"p\":4}", 7, 1,
				       OUTBOX_RETAIN | OUTBOX_DROPPABLE, "d", 4),
			 0);
	wait_committed(f);
	assert_int_equal(outbox_depth(f->ob), 3);
	/* Non-droppable retained rows (alarms) are never coalesced. */
	assert_int_equal(outbox_append(f->ob, "alarm/1", "{}", 2, 1, OUTBOX_RETAIN, "x", 5), 0);
	assert_int_equal(outbox_append(f->ob, "alarm/1", "", 0, 1, OUTBOX_RETAIN, "y", 6), 0);
	wait_committed(f);
	assert_int_equal(outbox_depth(f->ob), 5);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 5);
	assert_int_equal(db_count(f, "SELECT length(payload) FROM outbox WHERE msg_id='y'"), 0);
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
	/* Events are never refused by the bound. */
	for (k = 0; k < 5; k++)
		assert_int_equal(outbox_append(f->ob, "ev/1/", payload, 100, 1, 0, NULL, 20 + k),
				 0);
	assert_true(outbox_fill_ratio(f->ob) > 1.0);
	outbox_get_stats(f->ob, &s);
	assert_int_equal(s.refused, 1);
	assert_int_equal(s.coalesced, 1);
	assert_int_equal(s.depth, 14);
	wait_committed(f);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 14);
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
		ret = outbox_append(f->ob, "t/1", "x", 1, 1, 0, "m", 1);
		test_alloc_reset();
		if (ret == 0)
			break;
		assert_int_equal(ret, -ENOMEM);
		assert_int_equal(outbox_depth(f->ob), 0);
	}
	assert_true(k >= 2); /* the entry and the store record */
	test_alloc_fail_after(0);
	assert_int_equal(outbox_new(f->st, 100, &ob), -ENOMEM);
	test_alloc_reset();
	assert_null(ob);
	wait_committed(f);
	assert_int_equal(db_count(f, "SELECT count(*) FROM outbox"), 1);

	/* A failed reload leaves the outbox empty, not half-loaded. */
	close_all(f);
	open_all(f);
	test_alloc_fail_after(0);
	assert_int_equal(outbox_load_pending(f->ob), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(outbox_depth(f->ob), 0);
	assert_int_equal(outbox_load_pending(f->ob), 0);
	assert_int_equal(outbox_depth(f->ob), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_visible_only_after_commit_then_ack, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_restart_drains_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retained_snapshots_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_alarm_and_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
