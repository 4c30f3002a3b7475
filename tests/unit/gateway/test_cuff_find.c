/*
 * test_cuff_find.c - cuff_find (gateway/src/cuff.c) finds every cuff of a
 * large configuration by id, through the index the array's first cuff
 * keeps, and gives the same answers as a scan would for unknown ids,
 * shorter lengths, another array of the same cuffs, and without memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alarm.h"
#include "config.h"
#include "cuff.h"
#include "loop.h"
#include "payload.h"
#include "test_alloc.h"

#define N 600

struct fixture {
	uint64_t now;
	char dir[64];
	struct loop *loop;
	struct config *cfg;
	struct payload_ctx ctx;
	struct alarm_table *alarms;
	struct cuff *cuffs[N];
};

static uint64_t fake_clock(void *data)
{
	return *(uint64_t *)data;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct cuff_deps deps;
	char path[128], err[256];
	FILE *cf;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/bfr-test-cuff-find-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/gw.conf", f->dir);
	cf = fopen(path, "w");
	assert_non_null(cf);
	fprintf(cf, "gateway = { id = \"gw1\"; site = \"test\"; data_dir = \"%s\"; };\n"
		    "mqtt = { uri = \"mqtt://127.0.0.1:9\"; };\n"
		    "cuff_ranges = ( { id = \"bay%%04d\"; address = \"sim:%s/cuff-%%d.sock\";\n"
		    "                  from = 1; to = %d; limb = \"leg\"; } );\n",
		f->dir, f->dir, N);
	fclose(cf);
	if (config_load(path, &f->cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	unlink(path);
	assert_int_equal(loop_new_with_clock(fake_clock, &f->now, &f->loop), 0);
	assert_int_equal(payload_ctx_init(&f->ctx, "test", "gw1", "b00t"), 0);
	assert_int_equal(alarm_table_new("gw1", N, 1, NULL, NULL, &f->alarms), 0);
	deps = (struct cuff_deps){ .loop = f->loop, .alarms = f->alarms, .ctx = &f->ctx,
				   .cfg = f->cfg };
	for (size_t i = 0; i < N; i++)
		assert_int_equal(cuff_new(&deps, i, NULL, NULL, &f->cuffs[i], err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < N; i++)
		cuff_free(f->cuffs[i]);
	alarm_table_free(f->alarms);
	loop_free(f->loop);
	config_free(f->cfg);
	rmdir(f->dir);
	free(f);
	test_alloc_reset();
	return 0;
}

/* What cuff_find must answer: the first cuff of cuffs[0..n) with this id. */
static struct cuff *scan(struct cuff *const *cuffs, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cuff_id(cuffs[i]), id) == 0)
			return cuffs[i];
	return NULL;
}

static void test_every_cuff_found(void **state)
{
	struct fixture *f = *state;
	char id[32];

	for (size_t i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "bay%04zu", i + 1);
		assert_ptr_equal(cuff_find(f->cuffs, N, id), f->cuffs[i]);
		assert_string_equal(cuff_id(f->cuffs[i]), id);
	}
	assert_null(cuff_find(f->cuffs, N, "bay0000"));
	assert_null(cuff_find(f->cuffs, N, "bay0601"));
	assert_null(cuff_find(f->cuffs, N, ""));
	assert_null(cuff_find(f->cuffs, 0, "bay0001"));
}

/* Shorter lengths and other arrays of the same cuffs: the scan's answers. */
static void test_other_lengths_and_arrays(void **state)
{
	struct fixture *f = *state;
	struct cuff *reversed[N], *dup[3];
	char id[32];

	for (size_t n = 1; n <= N; n += 97)
		for (size_t i = 0; i < N; i += 7) {
			snprintf(id, sizeof(id), "bay%04zu", i + 1);
			assert_ptr_equal(cuff_find(f->cuffs, n, id), scan(f->cuffs, n, id));
		}
	for (size_t i = 0; i < N; i++)
		reversed[i] = f->cuffs[N - 1 - i];
	for (size_t i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "bay%04zu", i + 1);
		assert_ptr_equal(cuff_find(reversed, N, id), f->cuffs[i]);
		/* The two arrays in turn: each search right, whichever index is kept. */
		assert_ptr_equal(cuff_find(f->cuffs, N, id), f->cuffs[i]);
	}
	/* The same cuff twice: the first position, as a scan. */
	dup[0] = f->cuffs[5];
	dup[1] = f->cuffs[9];
	dup[2] = f->cuffs[9];
	assert_ptr_equal(cuff_find(dup, 3, "bay0010"), f->cuffs[9]);
	assert_ptr_equal(cuff_find(dup, 3, "bay0006"), f->cuffs[5]);
	assert_null(cuff_find(dup, 3, "bay0001"));
}

/* No memory for the index: the scan answers. */
static void test_without_memory(void **state)
{
	struct fixture *f = *state;
	struct cuff *reversed[N];

	for (size_t i = 0; i < N; i++)
		reversed[i] = f->cuffs[N - 1 - i];
	test_alloc_fail_after(0);
	assert_ptr_equal(cuff_find(reversed, N, "bay0042"), f->cuffs[41]);
	assert_null(cuff_find(reversed, N, "nope"));
	test_alloc_reset();
	assert_ptr_equal(cuff_find(reversed, N, "bay0042"), f->cuffs[41]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_cuff_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_lengths_and_arrays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_memory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
