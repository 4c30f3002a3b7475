/*
 * bench_store.c - what the store costs the event loop, and what the disk does.
 *
 * Not built by CMake/ctest (timings on shared CI disks mean nothing as
 * assertions). Build and run from the repository root:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Igateway/store tests/bench/bench_store.c \
 *      gateway/store/store.c gateway/store/store_schema.c gateway/store/outbox.c \
 *      -lsqlite3 -ljansson -lpthread -o /tmp/bench_store
 *   /tmp/bench_store [DATA_DIR]        (default: a fresh directory under /tmp)
 *
 * Prints:
 *   1. enqueue cost on the caller's thread (what the safety loop pays), p50/p99/max;
 *   2. burst throughput: 20000 session events enqueued at once, time until
 *      the last commit is reported, batch count and batch commit times;
 *   3. single-record latency: enqueue -> COMMITTED completion, one at a time
 *      (one fsync'd transaction each: the worst case per record);
 *   4. outbox append -> publishable latency, one at a time;
 *   5. a deep outbox (DEEP rows, a 10-minute outage of 100 cuffs): cost of a
 *      retained-snapshot append (coalescing) on top of it, then the drain's
 *      bookkeeping on the loop thread without any network: outbox_next with
 *      a window of 256 and one outbox_ack per PUBACK in order, as
 *      gw_outbox_drain()/on_mqtt_publish_done() do; then until every DELETE
 *      is committed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "outbox.h"
#include "store.h"

#define BURST 20000
#define SINGLE 300
#define DEEP 31000
#define WINDOW 256
#define SNAP_TOPICS 100

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, size_t n, const char *unit, double div)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	printf("%-44s p50 %8.1f  p99 %8.1f  max %8.1f %s\n", what, v[n / 2] / div,
	       v[n * 99 / 100] / div, v[n - 1] / div, unit);
}

static uint64_t committed;
static struct outbox *ob;

static void on_done(const struct store_completion *c, void *user_data)
{
	(void)user_data;
	if (c->kind == STORE_DONE_COMMITTED)
		committed++;
	else if (c->kind != STORE_DONE_DISK_OK)
		fprintf(stderr, "completion kind %d error %d\n", c->kind, c->error);
	if (ob)
		outbox_handle_completion(ob, c);
}

static void wait_for(struct store *st, uint64_t target)
{
	while (committed < target) {
		struct pollfd p = { .fd = store_completion_fd(st), .events = POLLIN };

		poll(&p, 1, 1000);
		store_dispatch_completions(st);
	}
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/bench-store-XXXXXX";
	struct store_config cfg = { 0 };
	static uint64_t lat[BURST];
	struct store_stats s0, s1;
	const char *payload = "{\"seq\":12345,\"type\":\"rep\",\"phase\":\"set\",\"exercise\":1,"
			      "\"set\":2,\"rep\":7,\"cuff\":\"bay1-left-thigh\",\"pressure_mmHg\":"
			      "152.5,\"target_mmHg\":150,\"ts\":\"2024-05-01T10:00:00.000Z\"}";
	struct store *st;
	char err[256];
	uint64_t t0, t1, k;
	int ret;

	cfg.data_dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
	ret = store_open(&cfg, &st, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "store_open: %s\n", err);
		return 1;
	}
	store_set_completion_cb(st, on_done, NULL);
	printf("data_dir %s, sqlite %s, payload %zu bytes\n", cfg.data_dir, sqlite3_libversion(),
	       strlen(payload));
	if (store_session_begin(st, "bench", "{}", NULL, 0, 0) < 0)
		return 1;
	wait_for(st, 1);

	/* 1 + 2: burst. */
	store_get_stats(st, &s0);
	t0 = now_ns();
	for (k = 0; k < BURST; k++) {
		uint64_t a = now_ns();

		ret = store_session_event(st, "bench", (uint32_t)k + 1, "rep", payload,
					  (int64_t)k, k);
		lat[k] = now_ns() - a;
		if (ret < 0) {
			fprintf(stderr, "enqueue %llu: %d\n", (unsigned long long)k, ret);
			return 1;
		}
	}
	wait_for(st, 1 + BURST);
	t1 = now_ns();
	store_get_stats(st, &s1);
	report("enqueue (caller thread)", lat, BURST, "us", 1000.0);
	printf("burst: %d events committed in %.1f ms = %.0f records/s, %llu batches "
	       "(mean %.0f records), batch commit mean %.2f ms max %.2f ms\n",
	       BURST, (t1 - t0) / 1e6, BURST / ((t1 - t0) / 1e9),
	       (unsigned long long)(s1.batches - s0.batches),
	       (double)BURST / (double)(s1.batches - s0.batches),
	       (s1.total_batch_us - s0.total_batch_us) / 1000.0 / (double)(s1.batches - s0.batches),
	       s1.max_batch_us / 1000.0);

	/* 3: one at a time. */
	for (k = 0; k < SINGLE; k++) {
		uint64_t a = now_ns(), target = committed + 1;

		if (store_lop_record(st, "bay1", "bench", 180.0, (int64_t)k, k) < 0)
			return 1;
		wait_for(st, target);
		lat[k] = now_ns() - a;
	}
	report("single record enqueue->committed", lat, SINGLE, "ms", 1e6);

	/* 4: outbox append -> publishable. */
	if (outbox_new(st, 16u << 20, &ob) < 0)
		return 1;
	for (k = 0; k < SINGLE; k++) {
		uint64_t a = now_ns(), target = committed + 1;

		if (outbox_append(ob, "bfr/v1/site/gw/session/bench/event", payload,
				  strlen(payload), 1, 0, "m", (int64_t)k) < 0)
			return 1;
		wait_for(st, target);
		lat[k] = now_ns() - a;
	}
	report("outbox append->publishable", lat, SINGLE, "ms", 1e6);

	/* 5: deep outbox. */
	{
		static uint64_t snap[SNAP_TOPICS * 10];
		const struct outbox_row *rows[WINDOW];
		int64_t cursor = 0, inflight_ids[WINDOW];
		size_t head = 0, inflight = 0, n, acked = 0;
		char topic[96];
		uint64_t target = committed + DEEP;

		for (k = 0; k < DEEP; k++)
			if (outbox_append(ob, "bfr/v1/site/gw/session/bench/event", payload,
					  strlen(payload), 1, 0, "m", (int64_t)k) < 0)
				return 1;
		wait_for(st, target);
		for (k = 0; k < SNAP_TOPICS * 10; k++) {
			uint64_t a;

			snprintf(topic, sizeof(topic), "bfr/v1/site/gw/cuff/cuff-%03llu/state",
				 (unsigned long long)(k % SNAP_TOPICS));
			a = now_ns();
			if (outbox_append(ob, topic, payload, strlen(payload), 1,
					  OUTBOX_RETAIN | OUTBOX_DROPPABLE, NULL, (int64_t)k) < 0)
				return 1;
			snap[k] = now_ns() - a;
			store_dispatch_completions(st);
		}
		report("snapshot append, outbox depth ~31000", snap, SNAP_TOPICS * 10, "us",
		       1000.0);
		for (;;) { /* until the snapshots are committed (publishable) */
			struct outbox_stats os;
			struct pollfd pfd = { .fd = store_completion_fd(st), .events = POLLIN };

			outbox_get_stats(ob, &os);
			if (!os.committing)
				break;
			poll(&pfd, 1, 100);
			store_dispatch_completions(st);
		}
		t0 = now_ns();
		for (;;) {
			if (outbox_next(ob, cursor, WINDOW - inflight, rows, &n) < 0)
				return 1;
			for (size_t i = 0; i < n; i++) {
				inflight_ids[(head + inflight) % WINDOW] = rows[i]->id;
				inflight++;
				cursor = rows[i]->id;
			}
			if (!inflight) {
				/* The backlog beyond the window is read back from disk
				 * by the store's reader thread: wait for it. */
				struct pollfd pfd = { .fd = store_completion_fd(st), .events = POLLIN };

				if (!outbox_depth(ob))
					break;
				poll(&pfd, 1, 100);
				store_dispatch_completions(st);
				continue;
			}
			/* One PUBACK, oldest first, then drain again (as on_mqtt_publish_done). */
			if (outbox_ack(ob, inflight_ids[head]) < 0)
				return 1;
			head = (head + 1) % WINDOW;
			inflight--;
			acked++;
		}
		t1 = now_ns();
		printf("drain bookkeeping: %zu rows next+ack in %.1f ms = %.0f rows/s (no network)\n",
		       acked, (t1 - t0) / 1e6, acked / ((t1 - t0) / 1e9));
		{
			struct store_stats ss;

			store_get_stats(st, &ss);
			while (ss.queued_records) {
				struct pollfd pfd = { .fd = store_completion_fd(st), .events = POLLIN };

				poll(&pfd, 1, 100);
				store_dispatch_completions(st);
				store_get_stats(st, &ss);
			}
		}
		t1 = now_ns();
		printf("  ... and every DELETE committed %.1f ms after the first next\n",
		       (t1 - t0) / 1e6);
	}
	outbox_free(ob);
	store_close(st, NULL);
	return 0;
}
