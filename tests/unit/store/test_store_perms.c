/*
 * test_store_perms.c - the database holds patient data: a new data_dir is
 * created 0700 and a new database (with its -wal and -shm files) 0600,
 * even under the most permissive umask; an existing file keeps its mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "store_test_util.h"

static unsigned mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (unsigned)(st.st_mode & 07777);
}

static void test_new_database_is_private(void **state)
{
	char *tmp = make_tmpdir();
	char data_dir[600], path[700];
	struct store_config cfg = { .data_dir = data_dir };
	struct store *st = NULL;
	char err[256] = "";
	mode_t old = umask(0);

	assert_non_null(tmp);
	snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
	assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(mode_of(data_dir), 0700);
	snprintf(path, sizeof(path), "%s/%s", data_dir, STORE_DB_NAME);
	assert_int_equal(mode_of(path), 0600);
	/* WAL mode is on while it is open: SQLite copies the database's mode. */
	snprintf(path, sizeof(path), "%s/%s-wal", data_dir, STORE_DB_NAME);
	assert_int_equal(mode_of(path), 0600);
	snprintf(path, sizeof(path), "%s/%s-shm", data_dir, STORE_DB_NAME);
	assert_int_equal(mode_of(path), 0600);
	store_close(st, NULL);
	rm_rf(tmp);
	free(tmp);
}

static void test_existing_database_keeps_its_mode(void **state)
{
	char *tmp = make_tmpdir();
	char path[700];
	struct store_config cfg = { .data_dir = tmp };
	struct store *st = NULL;
	char err[256] = "";

	assert_non_null(tmp);
	assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), 0);
	store_close(st, NULL);
	snprintf(path, sizeof(path), "%s/%s", tmp, STORE_DB_NAME);
	/* An administrator's choice (e.g. 0640 for a backup group) stands. */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), 0);
	assert_int_equal(mode_of(path), 0640);
	store_close(st, NULL);
	rm_rf(tmp);
	free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_database_is_private),
		cmocka_unit_test(test_existing_database_keeps_its_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
