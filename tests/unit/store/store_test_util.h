/*
 * store_test_util.h - shared helpers for the store's unit tests (header-only,
 * static functions, because each test_*.c is its own executable).
 *
 * A temporary data_dir per test, a completion recorder, and wait_until():
 * poll the store's eventfd and dispatch until a condition holds or a deadline
 * passes, so no test sleeps to wait for the writer thread.
 */
#ifndef BFR_STORE_TEST_UTIL_H
#define BFR_STORE_TEST_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define MAX_SEEN 4096

struct seen {
	size_t n;
	struct store_completion c[MAX_SEEN];
	size_t disk_errors, disk_ok, committed, rejected;
	int last_disk_error;
};

static inline void seen_cb(const struct store_completion *c, void *user_data)
{
	struct seen *s = user_data;

	if (s->n < MAX_SEEN) {
		s->c[s->n] = *c;
		s->c[s->n].message = NULL; /* only valid during the callback */
		s->n++;
	}
	switch (c->kind) {
	case STORE_DONE_COMMITTED:
		s->committed++;
		break;
	case STORE_DONE_REJECTED:
		s->rejected++;
		break;
	case STORE_DONE_DISK_ERROR:
		s->disk_errors++;
		s->last_disk_error = c->error;
		break;
	case STORE_DONE_DISK_OK:
		s->disk_ok++;
		break;
	}
}

static inline uint64_t test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Dispatches completions until cond(arg) holds; false after timeout_ms. */
static inline bool wait_until(struct store *st, bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = store_completion_fd(st), .events = POLLIN };
		uint64_t now;

		store_dispatch_completions(st);
		if (cond(arg))
			return true;
		now = test_now_ms();
		if (now >= deadline)
			return false;
		poll(&p, 1, (int)(deadline - now));
	}
}

struct count_goal {
	struct seen *seen;
	size_t committed, rejected, disk_errors, disk_ok;
};

static inline bool goal_reached(void *arg)
{
	struct count_goal *g = arg;

	return g->seen->committed >= g->committed && g->seen->rejected >= g->rejected &&
	       g->seen->disk_errors >= g->disk_errors && g->seen->disk_ok >= g->disk_ok;
}

static inline int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/bfr-store-test-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

#endif
