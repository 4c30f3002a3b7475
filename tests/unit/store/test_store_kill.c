/*
 * test_store_kill.c - kill -9 at an arbitrary moment loses nothing that was
 * reported committed, and what survives is a gap-free prefix in order.
 *
 * A child process writes session events and outbox rows as fast as it can and
 * reports every committed tag through a pipe; the parent SIGKILLs it after a
 * while (so the writer thread is anywhere: mid-batch, mid-fsync, idle), then
 * reopens the database. Three rounds on the same database, so recovery after
 * recovery is covered and outbox ids keep their global order across them.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_test_util.h"

#define ROUNDS 3
#define OUTBOX_TAG (1u << 30)

static int report_fd = -1;

static void child_cb(const struct store_completion *c, void *user_data)
{
	(void)user_data;
	if (c->kind != STORE_DONE_COMMITTED)
		_exit(3); /* nothing here may be rejected or fail */
	if (write(report_fd, &c->tag, sizeof(c->tag)) != sizeof(c->tag))
		_exit(4);
}

static void child_main(const char *dir, int round)
{
	struct store_config cfg = { .data_dir = dir };
	struct store *st;
	char sid[32], payload[64], topic[64];
	uint64_t k;

	if (store_open(&cfg, &st, NULL, 0) < 0)
		_exit(2);
	store_set_completion_cb(st, child_cb, NULL);
	snprintf(sid, sizeof(sid), "s-%d", round);
	if (store_session_begin(st, sid, "{}", NULL, round, 0) < 0)
		_exit(5);
	for (k = 1;; k++) {
		struct store_outbox_msg m = { .qos = 1 };
		struct pollfd p = { .fd = store_completion_fd(st), .events = POLLIN };
		int ret;

		snprintf(payload, sizeof(payload), "{\"round\":%d,\"k\":%llu}", round,
			 (unsigned long long)k);
		snprintf(topic, sizeof(topic), "bfr/v1/s/g/session/%s/event", sid);
		m.topic = topic;
		m.payload = payload;
		m.len = strlen(payload);
		do {
			ret = store_session_event(st, sid, (uint32_t)k, "rep", payload, (int64_t)k,
						  k);
			if (ret == -EAGAIN) {
				poll(&p, 1, 100);
				store_dispatch_completions(st);
			}
		} while (ret == -EAGAIN);
		if (ret < 0)
			_exit(6);
		do {
			ret = store_outbox_insert(st, &m, OUTBOX_TAG + k);
			if (ret == -EAGAIN) {
				poll(&p, 1, 100);
				store_dispatch_completions(st);
			}
		} while (ret == -EAGAIN);
		if (ret < 0)
			_exit(7);
		if (k % 8 == 0 && poll(&p, 1, 0) > 0)
			store_dispatch_completions(st);
	}
}

static long long sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_kill9_loses_nothing_committed(void **state)
{
	char *dir = make_tmpdir();
	char path[512], sql[256];
	int round;

	(void)state;
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_DB_NAME);
	for (round = 1; round <= ROUNDS; round++) {
		uint64_t tag, max_event = 0, max_outbox = 0, reports = 0;
		int fds[2], status;
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			report_fd = fds[1];
			child_main(dir, round);
		}
		close(fds[1]);
		/* Kill at a different point each round. */
		while (read(fds[0], &tag, sizeof(tag)) == sizeof(tag)) {
			if (tag >= OUTBOX_TAG) {
				assert_int_equal(tag - OUTBOX_TAG, max_outbox + 1); /* in order */
				max_outbox = tag - OUTBOX_TAG;
			} else if (tag) {
				assert_int_equal(tag, max_event + 1);
				max_event = tag;
			}
			if (++reports == (uint64_t)(1500 * round + 37))
				kill(pid, SIGKILL);
		}
		close(fds[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
		assert_true(max_event > 0 && max_outbox > 0);

		/* Every reported event is there, and the rows form 1..N with no gap. */
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) = max(seq) AND min(seq) = 1 FROM session_events "
			 "WHERE session_id = 's-%d'",
			 round);
		assert_int_equal(sql_int(path, sql), 1);
		snprintf(sql, sizeof(sql),
			 "SELECT max(seq) FROM session_events WHERE session_id = 's-%d'", round);
		assert_true(sql_int(path, sql) >= (long long)max_event);
		/* Outbox: this round's rows are 1..N in id order, after earlier rounds. */
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM outbox WHERE json_extract(payload, '$.round') = %d",
			 round);
		assert_true(sql_int(path, sql) >= (long long)max_outbox);
		assert_int_equal(sql_int(path, "SELECT count(*) FROM (SELECT id, "
					       "json_extract(payload,'$.round') AS r, "
					       "json_extract(payload,'$.k') AS k, "
					       "lag(json_extract(payload,'$.round')) OVER w AS pr, "
					       "lag(json_extract(payload,'$.k')) OVER w AS pk "
					       "FROM outbox WINDOW w AS (ORDER BY id)) "
					       "WHERE pr IS NOT NULL AND NOT "
					       "((r = pr AND k = pk + 1) OR (r = pr + 1 AND k = 1))"),
				 0);
	}
	/* And the store opens normally on what the kills left behind. */
	{
		struct store_config cfg = { .data_dir = dir };
		struct store *st = NULL;
		char **ids = NULL;
		size_t n = 0;

		assert_int_equal(store_open(&cfg, &st, NULL, 0), 0);
		assert_int_equal(store_list_open_sessions(st, &ids, &n), 0);
		assert_int_equal(n, ROUNDS);
		store_strv_free(ids);
		store_close(st, NULL);
	}
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_loses_nothing_committed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
