/* test_store_open.c - opening: migrations, newer/corrupt/read-only databases, bad config. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_schema.h"
#include "store_test_util.h"
#include "test_alloc.h"

struct fixture {
	char *dir;
	char path[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = make_tmpdir();
	assert_non_null(f->dir);
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, STORE_DB_NAME);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static int open_dir(const char *dir, struct store **st, char *err, size_t errlen)
{
	struct store_config cfg = { .data_dir = dir };

	return store_open(&cfg, st, err, errlen);
}

static long long sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

static void test_fresh_database_migrates_from_zero(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;

	assert_int_equal(open_dir(f->dir, &st, NULL, 0), 0);
	store_close(st, NULL);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type='table' "
					  "AND name IN ('sessions','session_events','set_figures',"
					  "'alarms','alarm_history','lop_measurements','outbox')"),
			 7);
	/* Reopening an up-to-date database changes nothing. */
	assert_int_equal(open_dir(f->dir, &st, NULL, 0), 0);
	store_close(st, NULL);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
}

static void test_migrates_from_version_1_keeping_rows(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(store_schema_migrate_to(db, 1, NULL, 0), 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO sessions (id, plan, started_ms) "
					  "VALUES ('old', '{}', 5)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(store_schema_migrate_to(db, STORE_SCHEMA_VERSION + 1, NULL, 0), -EINVAL);
	sqlite3_close(db);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 1);
	assert_int_equal(open_dir(f->dir, &st, NULL, 0), 0);
	store_close(st, NULL);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_int(f->path, "SELECT started_ms FROM sessions WHERE id='old'"), 5);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM outbox"), 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM command_replies"), 0);
}

/* 2 -> 3 (command replies) -> 4 (home sessions) keeps what version 2 held. */
static void test_migrates_from_version_2_keeping_rows(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(store_schema_migrate_to(db, 2, NULL, 0), 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO outbox (topic, payload, qos, retain, "
					  "droppable, created_ms, bytes) VALUES ('t', 'p', 1, 0, 0, 9, 1)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(open_dir(f->dir, &st, NULL, 0), 0);
	store_close(st, NULL);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 4);
	assert_int_equal(sql_int(f->path, "SELECT created_ms FROM outbox"), 9);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type='table' "
					  "AND name IN ('prescriptions','home_starts','command_replies')"),
			 3);
}

/* A failing migration rolls back whole: the version stays where it was. */
static void test_failed_migration_rolls_back(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char err[256] = "";
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(store_schema_migrate_to(db, 1, NULL, 0), 0);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE outbox (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_not_equal(open_dir(f->dir, &st, err, sizeof(err)), 0);
	assert_null(st);
	assert_non_null(strstr(err, "migration 1 -> 2"));
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 1);
}

static void test_newer_schema_is_refused_untouched(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char err[256] = "";
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE future (x); PRAGMA user_version = 99",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(open_dir(f->dir, &st, err, sizeof(err)), -EPROTO);
	assert_null(st);
	assert_non_null(strstr(err, "newer"));
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 99);
	/* Not even switched to WAL. */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM pragma_journal_mode "
					  "WHERE journal_mode = 'wal'"),
			 0);
}

static void test_corrupt_file_is_refused(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	unsigned char junk[65536], back[65536];
	char err[256] = "";
	FILE *fp;
	size_t k;

	srand(42);
	for (k = 0; k < sizeof(junk); k++)
		junk[k] = (unsigned char)rand();
	fp = fopen(f->path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	fclose(fp);
	assert_int_equal(open_dir(f->dir, &st, err, sizeof(err)), -EBADMSG);
	assert_null(st);
	assert_non_null(strstr(err, f->path));
	fp = fopen(f->path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(back, 1, sizeof(back), fp), sizeof(back));
	fclose(fp);
	assert_memory_equal(junk, back, sizeof(junk));
}

/* Read-only file: root ignores permissions, so a child drops to nobody. */
static void test_read_only_file_is_refused(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	pid_t pid;
	int status;

	assert_int_equal(open_dir(f->dir, &st, NULL, 0), 0);
	store_close(st, NULL);
	assert_int_equal(chmod(f->path, 0444), 0);
	assert_int_equal(chmod(f->dir, 0755), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256] = "";
		int ret;

		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		ret = open_dir(f->dir, &st, err, sizeof(err));
		_exit(ret == -EROFS && strstr(err, "read-only") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_bad_config(void **state)
{
	struct fixture *f = *state;
	struct store_config cfg = { 0 };
	struct store *st = NULL;
	char err[256] = "", file_as_dir[600];
	FILE *fp;

	assert_int_equal(store_open(NULL, &st, err, sizeof(err)), -EINVAL);
	assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "data_dir"));
	cfg.data_dir = "";
	assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), -EINVAL);
	/* data_dir below a regular file */
	snprintf(file_as_dir, sizeof(file_as_dir), "%s/plain", f->dir);
	fp = fopen(file_as_dir, "w");
	assert_non_null(fp);
	fclose(fp);
	strcat(file_as_dir, "/data");
	assert_int_equal(open_dir(file_as_dir, &st, err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, file_as_dir));
	assert_null(st);
}

static void test_open_allocation_failures(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	long k;
	int ret;

	for (k = 0;; k++) {
		test_alloc_fail_after(k);
		ret = open_dir(f->dir, &st, NULL, 0);
		test_alloc_reset();
		if (ret == 0)
			break;
		assert_int_equal(ret, -ENOMEM);
		assert_null(st);
	}
	assert_true(k >= 2);
	store_close(st, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh_database_migrates_from_zero, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_migrates_from_version_1_keeping_rows, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_migrates_from_version_2_keeping_rows, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_is_refused_untouched, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_file_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_allocation_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
