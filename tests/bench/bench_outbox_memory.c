/*
 * bench_outbox_memory.c - the outbox's memory through a long broker outage,
 * and the drain after it, faster than real time.
 *
 * Not built by CMake/ctest. tests/bench/bench_outbox_memory.sh builds this
 * file twice, with the outbox of the tree and with the old in-memory one
 * (OLD_OUTBOX_REV), and runs both; by hand:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Igateway/store tests/bench/bench_outbox_memory.c \
 *      gateway/store/store.c gateway/store/store_schema.c gateway/store/outbox.c \
 *      -lsqlite3 -ljansson -lpthread -o /tmp/bench_outbox_memory
 *   /tmp/bench_outbox_memory [--hours 24] [--cuffs 100] [--rss-stop MIB] [--restart]
 *                            [--no-drain] [--label NAME] DATA_DIR
 *
 * The producer is what the gateway publishes at QoS 1 for `cuffs` cuffs that
 * run sessions back to back while the broker is away (docs/benchmarks.md §3
 * "Outbox": 2 sets of 100 reps at a rep every 2 s), second by simulated
 * second, as fast as the store takes it:
 *   - every second: each cuff's retained state snapshot and each running
 *     session's (droppable: each coalesces the one before it);
 *   - per session (520 s, staggered per cuff): started, phase and lop_measured
 *     events, a rep event every 2 s of its 2 x 100 reps, a regulation alarm
 *     (its alarm event, the alarm record, its cleared record and the empty
 *     retained payload that removes it), completed, the final state and the
 *     summary (retained, not droppable).
 * Payloads and topics have the sizes of the real ones (clinic-a-gw1 ids).
 * Every simulated hour it prints depth, outbox bytes, database size and the
 * process's VmRSS / VmHWM (/proc/self/status: the outbox, the store, SQLite's
 * page caches and this program, which keeps O(sessions) bytes for checking).
 * --rss-stop stops producing once RSS passes MIB (for the old outbox, whose
 * memory grows with the depth). --restart closes and reopens the store and
 * the outbox after the outage (the start-up reload, timed). Then the
 * "reconnect": the drain as publisher.c does it (at most 256 in flight, one
 * PUBACK at a time, oldest first, acked at once: no network), checked in
 * order (ids rise, each session's events 1..N without a gap, each snapshot
 * topic's newest), timed in rows/s, with the loop thread's longest stall in
 * store_dispatch_completions (where the rows read back come in). --no-drain
 * stops after the outage and leaves the database in DATA_DIR: a backlog for
 * bench_outbox_drain.py, which drains it through the real gateway.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "outbox.h"
#include "store.h"

#define WINDOW 256 /* PUBLISHER_WINDOW */
#define SESSION_S 520
#define REPS_PER_SET 100
#define PREFIX "bfr/v1/clinic-a/clinic-a-gw1"
#define BOOT "3f9c2a1b7d4e6f80"

/* The old outbox.h has no window: its figures are printed as "-". */
#ifdef OUTBOX_AHEAD_MAX
#define NEW_OUTBOX 1
#else
#define NEW_OUTBOX 0
#endif

struct cuff_sim {
	unsigned session; /* global session number (1, 2, ...), 0 before the first */
	unsigned t0;	  /* its start, simulated s */
	unsigned seq;	  /* its last event seq */
	unsigned state_n; /* snapshots appended on the cuff's topic */
};

/* Durations in log2 buckets of ns: percentiles without keeping samples. */
struct hist {
	uint64_t n, max, total, bucket[64];
};

static void hist_add(struct hist *h, uint64_t ns)
{
	unsigned b = 0;

	while (b < 63 && (1ull << (b + 1)) <= ns)
		b++;
	h->bucket[b]++;
	h->n++;
	h->total += ns;
	if (ns > h->max)
		h->max = ns;
}

/* The upper bound of the bucket holding quantile q, in ms. */
static double hist_q_ms(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;

	for (unsigned b = 0; b < 64; b++) {
		seen += h->bucket[b];
		if (seen > want)
			return (double)(1ull << (b + 1)) / 1e6;
	}
	return (double)h->max / 1e6;
}

static void hist_print(const char *what, const struct hist *h)
{
	uint64_t over = 0;

	for (unsigned b = 20; b < 64; b++) /* 2^20 ns ~ 1.05 ms */
		over += h->bucket[b];
	printf("  %s: %llu calls, mean %.3f ms, p50 < %.3f, p99 < %.3f, p99.9 < %.3f, max %.2f ms; "
	       "%llu took over 1 ms\n",
	       what, (unsigned long long)h->n, h->n ? h->total / 1e6 / (double)h->n : 0.0,
	       hist_q_ms(h, 0.5), hist_q_ms(h, 0.99), hist_q_ms(h, 0.999), h->max / 1e6,
	       (unsigned long long)over);
}

struct bench {
	struct store *st;
	struct outbox *ob;
	struct cuff_sim *cuffs;
	unsigned n_cuffs, n_sessions;
	unsigned *last_state_n; /* per cuff: newest snapshot appended */
	uint16_t *delivered_seq; /* per session: last event seq delivered */
	uint64_t msg_n;		 /* msg_id counter */
	uint64_t appended, events, snapshots, others;
	struct hist append_h, dispatch_h, read_h;
	uint64_t completions, completions_max; /* per store_dispatch_completions */
	char dir[512];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_outbox_memory: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* VmRSS and VmHWM in KiB. */
static void rss_kib(long *rss, long *hwm)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	*rss = *hwm = -1;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			*rss = atol(line + 6);
		else if (!strncmp(line, "VmHWM:", 6))
			*hwm = atol(line + 6);
	}
	fclose(f);
}

static double db_mib(const struct bench *b)
{
	char path[600];
	struct stat sb;
	double total = 0;

	snprintf(path, sizeof(path), "%s/%s", b->dir, STORE_DB_NAME);
	if (stat(path, &sb) == 0)
		total += (double)sb.st_size;
	snprintf(path, sizeof(path), "%s/%s-wal", b->dir, STORE_DB_NAME);
	if (stat(path, &sb) == 0)
		total += (double)sb.st_size;
	return total / (1024.0 * 1024.0);
}

static void dispatch(struct bench *b, int timeout_ms)
{
	struct pollfd p = { .fd = store_completion_fd(b->st), .events = POLLIN };
	uint64_t t0;
	int n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return;
	t0 = now_ns();
	n = store_dispatch_completions(b->st);
	hist_add(&b->dispatch_h, now_ns() - t0);
	b->completions += (uint64_t)n;
	if ((uint64_t)n > b->completions_max)
		b->completions_max = (uint64_t)n;
}

/* The dispatch figures, per call and per completion (faster than real time,
 * one call may carry thousands of completions: the loop sees ~400 a second). */
static void dispatch_print(struct bench *b, const char *what)
{
	hist_print(what, &b->dispatch_h);
	printf("    %llu completions, at most %llu in one call, %.2f us each on average\n",
	       (unsigned long long)b->completions, (unsigned long long)b->completions_max,
	       b->completions ? b->dispatch_h.total / 1e3 / (double)b->completions : 0.0);
	memset(&b->dispatch_h, 0, sizeof(b->dispatch_h));
	b->completions = b->completions_max = 0;
}

static void on_completion(const struct store_completion *c, void *user_data)
{
	struct bench *b = user_data;
	uint64_t t0 = now_ns();
	bool ours = outbox_handle_completion(b->ob, c);

	/* What one batch read back costs the loop: rows into the window. */
	if (c->rec == STORE_REC_OUTBOX_READ)
		hist_add(&b->read_h, now_ns() - t0);
	if (!ours && c->kind == STORE_DONE_REJECTED)
		fprintf(stderr, "rejected: %s\n", c->message ? c->message : "");
}

/* Appends, waiting for the store's queue when it is full (as a slow disk would
 * make the gateway do: the loop goes on, the record waits). */
static void append(struct bench *b, const char *topic, const char *payload, unsigned flags)
{
	char msg_id[64];
	uint64_t t0, dt = 0;
	int r;

	snprintf(msg_id, sizeof(msg_id), "clinic-a-gw1-" BOOT "-%llu",
		 (unsigned long long)++b->msg_n);
	for (;;) {
		t0 = now_ns();
		r = outbox_append(b->ob, topic, payload, strlen(payload), 1, flags, msg_id,
				  1796563000000LL + (int64_t)b->msg_n);
		dt = now_ns() - t0;
		if (r != -EAGAIN)
			break;
		dispatch(b, 100);
	}
	if (r < 0)
		die("outbox_append", r);
	b->appended++;
	hist_add(&b->append_h, dt);
}

static void event(struct bench *b, struct cuff_sim *c, unsigned ci, const char *type,
		  const char *extra)
{
	char topic[160], payload[512];

	snprintf(topic, sizeof(topic), PREFIX "/session/s" BOOT "-%u/event", c->session);
	snprintf(payload, sizeof(payload),
		 "{\"v\":1,\"ts\":\"2026-11-24T09:31:12.400Z\",\"msg_id\":\"clinic-a-gw1-" BOOT
		 "-%llu\",\"session_id\":\"s" BOOT "-%u\",\"seq\":%u,\"type\":\"%s\","
		 "\"exercise_index\":0,\"exercise\":\"squat\",\"cuff\":\"bay%03u-left-thigh\"%s}",
		 (unsigned long long)b->msg_n + 1, c->session, ++c->seq, type, ci, extra);
	append(b, topic, payload, 0);
	b->events++;
}

static void cuff_state(struct bench *b, struct cuff_sim *c, unsigned ci)
{
	char topic[160], payload[512];

	snprintf(topic, sizeof(topic), PREFIX "/cuff/bay%03u-left-thigh/state", ci);
	snprintf(payload, sizeof(payload),
		 "{\"v\":1,\"ts\":\"2026-11-24T09:31:12.400Z\",\"msg_id\":\"clinic-a-gw1-" BOOT
		 "-%llu\",\"n\":%u,\"cuff\":\"bay%03u-left-thigh\",\"link\":\"connected\","
		 "\"link_error\":null,\"pressure_mmHg\":151.8,\"target_mmHg\":152.0,"
		 "\"battery_pct\":87,\"lop_mmHg\":190.0,\"session_id\":\"s" BOOT "-%u\","
		 "\"alarms_active\":[],\"cuff_state\":\"holding\",\"limb\":\"leg\","
		 "\"status_bits\":4,\"label\":\"Bay %u left thigh\",\"serial\":\"SIM-0001-%04u\","
		 "\"data_age_ms\":20}",
		 (unsigned long long)b->msg_n + 1, ++c->state_n, ci, c->session, ci, ci);
	b->last_state_n[ci] = c->state_n;
	append(b, topic, payload, OUTBOX_RETAIN | OUTBOX_DROPPABLE);
	b->snapshots++;
}

static void session_state(struct bench *b, struct cuff_sim *c, unsigned ci, unsigned r,
			  bool final)
{
	char topic[160], payload[768];

	snprintf(topic, sizeof(topic), PREFIX "/session/s" BOOT "-%u/state", c->session);
	snprintf(payload, sizeof(payload),
		 "{\"v\":1,\"ts\":\"2026-11-24T09:31:12.400Z\",\"msg_id\":\"clinic-a-gw1-" BOOT
		 "-%llu\",\"session_id\":\"s" BOOT "-%u\",\"phase\":\"%s\",\"exercise_index\":0,"
		 "\"exercise\":\"squat\",\"set\":%u,\"rep\":%u,\"phase_left_s\":%u,"
		 "\"session_left_s\":%u,\"cumulative_inflation_s\":%u,\"patient\":\"p-0042\","
		 "\"plan\":{\"exercises\":1,\"sets\":[100,100]},\"pct_lop\":50,"
		 "\"targets\":{\"bay%03u-left-thigh\":95.0},\"cuffs\":[\"bay%03u-left-thigh\"]}",
		 (unsigned long long)b->msg_n + 1, c->session, final ? "completed" : "set",
		 r < 212 ? 1u : 2u, (r % 200) / 2, 10u, SESSION_S - r, r, ci, ci);
	append(b, topic, payload, final ? OUTBOX_RETAIN : OUTBOX_RETAIN | OUTBOX_DROPPABLE);
	if (final)
		b->others++;
	else
		b->snapshots++;
}

static void alarm_rows(struct bench *b, struct cuff_sim *c, unsigned ci, bool raise)
{
	char topic[160], payload[768];

	snprintf(topic, sizeof(topic), PREFIX "/alarm/clinic-a-gw1-%u", c->session);
	snprintf(payload, sizeof(payload),
		 "{\"v\":1,\"ts\":\"2026-11-24T09:31:12.400Z\",\"msg_id\":\"clinic-a-gw1-" BOOT
		 "-%llu\",\"alarm_id\":\"clinic-a-gw1-%u\",\"cuff\":\"bay%03u-left-thigh\","
		 "\"session_id\":\"s" BOOT "-%u\",\"code\":\"regulation_under\","
		 "\"priority\":\"medium\",\"kind\":\"technical\",\"state\":\"%s\","
		 "\"condition_present\":%s,\"raised_at\":\"2026-11-24T09:31:12.400Z\","
		 "\"acked_at\":null,\"acked_by\":null,\"cleared_at\":%s,\"message\":\"pressure "
		 "15 mmHg under target for more than 1 s\",\"values\":{\"measured\":{\"value\":"
		 "80.0,\"unit\":\"mmHg\"},\"limit\":{\"value\":15.0,\"unit\":\"mmHg\"}}}",
		 (unsigned long long)b->msg_n + 1, c->session, ci, c->session,
		 raise ? "active" : "cleared", raise ? "true" : "false",
		 raise ? "null" : "\"2026-11-24T09:31:22.400Z\"");
	append(b, topic, payload, 0);
	if (!raise)
		append(b, topic, "", OUTBOX_RETAIN); /* closed: removes the retained record */
	b->others += raise ? 1 : 2;
}

static void summary(struct bench *b, struct cuff_sim *c, unsigned ci)
{
	char topic[160], payload[1536], set[2][320];

	snprintf(topic, sizeof(topic), PREFIX "/session/s" BOOT "-%u/summary", c->session);
	for (int k = 0; k < 2; k++)
		snprintf(set[k], sizeof(set[k]),
			 "{\"set\":%d,\"cuff\":\"bay%03u-left-thigh\",\"reps\":100,"
			 "\"mean_mmHg\":95.1,\"min_mmHg\":80.2,\"max_mmHg\":121.4,"
			 "\"pct_within_10\":97.5,\"pct_within_5\":88.1,\"peak_pct_lop\":63.2,"
			 "\"time_under_pressure_s\":200.4}",
			 k + 1, ci);
	snprintf(payload, sizeof(payload),
		 "{\"v\":1,\"ts\":\"2026-11-24T09:31:12.400Z\",\"msg_id\":\"clinic-a-gw1-" BOOT
		 "-%llu\",\"session_id\":\"s" BOOT "-%u\",\"outcome\":\"completed\","
		 "\"reason\":null,\"started_at\":\"2026-11-24T09:29:00.123Z\","
		 "\"ended_at\":\"2026-11-24T09:38:00.123Z\",\"patient\":\"p-0042\","
		 "\"exercises\":[{\"name\":\"squat\",\"pct_lop\":50,\"sets\":[%s,%s]}],"
		 "\"alarms\":[\"clinic-a-gw1-%u\"],\"cumulative_inflation_s\":{\"bay%03u-left-"
		 "thigh\":432}}",
		 (unsigned long long)b->msg_n + 1, c->session, set[0], set[1], c->session, ci);
	append(b, topic, payload, OUTBOX_RETAIN);
	b->others++;
}

/* One simulated second of cuff ci. */
static void cuff_second(struct bench *b, unsigned ci, unsigned t)
{
	struct cuff_sim *c = &b->cuffs[ci];
	unsigned r;
	char extra[64];

	if (t >= ci * 5 && (!c->session || t - c->t0 >= SESSION_S)) {
		c->session = ++b->n_sessions;
		c->t0 = t;
		c->seq = 0;
	}
	cuff_state(b, c, ci);
	if (!c->session)
		return;
	r = t - c->t0;
	switch (r) {
	case 0:
		event(b, c, ci, "started", "");
		event(b, c, ci, "phase", ",\"phase\":\"lop\"");
		break;
	case 10:
		event(b, c, ci, "lop_measured", ",\"lop_mmHg\":190.0");
		event(b, c, ci, "phase", ",\"phase\":\"inflating\"");
		break;
	case 12:
	case 242:
		event(b, c, ci, "phase", ",\"phase\":\"set\"");
		break;
	case 150:
		alarm_rows(b, c, ci, true);
		event(b, c, ci, "alarm", ",\"alarm_id\":\"clinic-a-gw1-x\"");
		break;
	case 160:
		alarm_rows(b, c, ci, false);
		break;
	case 212:
		event(b, c, ci, "phase", ",\"phase\":\"rest\"");
		break;
	case 444:
		event(b, c, ci, "phase", ",\"phase\":\"deflating\"");
		break;
	case 450:
		event(b, c, ci, "phase", ",\"phase\":\"reperfusion\"");
		break;
	case 510:
		event(b, c, ci, "completed", "");
		session_state(b, c, ci, r, true);
		summary(b, c, ci);
		break;
	default:
		if ((r >= 12 && r < 212 && (r - 12) % 2 == 0) ||
		    (r >= 244 && r < 444 && (r - 244) % 2 == 0)) {
			snprintf(extra, sizeof(extra), ",\"set\":%u,\"rep\":%u", r < 212 ? 1 : 2,
				 ((r < 212 ? r - 12 : r - 244) / 2) + 1);
			event(b, c, ci, "rep", extra);
		}
		break;
	}
	if (r < 510)
		session_state(b, c, ci, r, false);
}

static void open_all(struct bench *b)
{
	struct store_config cfg = { .data_dir = b->dir };
	char err[256] = "";
	int r;

	r = store_open(&cfg, &b->st, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "store_open: %s\n", err);
		exit(1);
	}
	r = outbox_new(b->st, (size_t)4096 << 20, &b->ob); /* the config's maximum */
	if (r < 0)
		die("outbox_new", r);
	store_set_completion_cb(b->st, on_completion, b);
}

static void print_window(const struct bench *b)
{
#if NEW_OUTBOX
	struct outbox_stats s;

	outbox_get_stats(b->ob, &s);
	printf(" window %5zu backlog %8zu", s.window, s.backlog);
#else
	(void)b;
	printf(" window     - backlog        -");
#endif
}

static void status_line(struct bench *b, double sim_h, double wall_s)
{
	long rss, hwm;

	rss_kib(&rss, &hwm);
	printf("  %6.2f h  depth %8zu  outbox %8.1f MiB  db %8.1f MiB ", sim_h,
	       outbox_depth(b->ob), outbox_bytes(b->ob) / (1024.0 * 1024.0), db_mib(b));
	print_window(b);
	printf("  RSS %6.1f MiB  HWM %6.1f MiB  wall %6.1f s\n", rss / 1024.0, hwm / 1024.0,
	       wall_s);
	fflush(stdout);
}

/* The payload's "seq" of an event row, the session number of its topic. */
static bool parse_event(const struct outbox_row *row, unsigned *session, unsigned *seq)
{
	const char *s = strstr(row->topic, "/session/s" BOOT "-");
	const char *q;

	if (!s || strcmp(row->topic + strlen(row->topic) - 6, "/event"))
		return false;
	*session = (unsigned)atoi(s + strlen("/session/s" BOOT "-"));
	q = memmem(row->payload, row->len, "\"seq\":", 6);
	if (!q)
		return false;
	*seq = (unsigned)atoi(q + 6);
	return true;
}

static void check_row(struct bench *b, const struct outbox_row *row, uint64_t *events,
		      uint64_t *snaps)
{
	unsigned session, seq;
	const char *n;

	if (parse_event(row, &session, &seq)) {
		if (session == 0 || session > b->n_sessions || seq != b->delivered_seq[session] + 1u) {
			fprintf(stderr, "order: session %u seq %u after %u\n", session, seq,
				session <= b->n_sessions ? b->delivered_seq[session] : 0);
			exit(2);
		}
		b->delivered_seq[session] = (uint16_t)seq;
		(*events)++;
	} else if (row->droppable) {
		(*snaps)++;
		n = memmem(row->payload, row->len, "\"n\":", 4);
		if (n) { /* a cuff's snapshot: the newest one appended */
			const char *c = strstr(row->topic, "/cuff/bay");
			unsigned ci = c ? (unsigned)atoi(c + 9) : 0;

			if ((unsigned)atoi(n + 4) != b->last_state_n[ci]) {
				fprintf(stderr, "stale snapshot of cuff %u: %d, newest %u\n", ci,
					atoi(n + 4), b->last_state_n[ci]);
				exit(2);
			}
		}
	}
}

/* The "reconnect": publisher_drain + one PUBACK at a time, no network. */
static void drain(struct bench *b)
{
	const struct outbox_row *rows[WINDOW];
	int64_t cursor = 0, inflight_ids[WINDOW];
	size_t head = 0, inflight = 0, n;
	uint64_t t0 = now_ns(), rows_done = 0, events = 0, snaps = 0, waits = 0;
	long rss, hwm, max_rss = 0;
	double last_print = 0;

	for (;;) {
		if (outbox_next(b->ob, cursor, WINDOW - inflight, rows, &n) < 0)
			die("outbox_next", -EIO);
		for (size_t i = 0; i < n; i++) {
			if (rows[i]->id <= cursor) {
				fprintf(stderr, "order: id %lld after %lld\n", (long long)rows[i]->id,
					(long long)cursor);
				exit(2);
			}
			check_row(b, rows[i], &events, &snaps);
			inflight_ids[(head + inflight) % WINDOW] = rows[i]->id;
			inflight++;
			cursor = rows[i]->id;
		}
		if (inflight) {
			if (outbox_ack(b->ob, inflight_ids[head]) < 0)
				die("outbox_ack", -EIO);
			head = (head + 1) % WINDOW;
			inflight--;
			rows_done++;
			if (rows_done % 256 == 0) {
				struct store_stats ss;

				/* As the loop would: DELETEs done, rows read. Acks at this
				 * speed (no network) would outrun the store's queue; a
				 * broker never acks this fast. */
				dispatch(b, 0);
				store_get_stats(b->st, &ss);
				while (ss.queued_records > 16384) {
					dispatch(b, 10);
					store_get_stats(b->st, &ss);
				}
			}
		} else if (outbox_depth(b->ob)) {
			waits++;
			dispatch(b, 1000); /* nothing in memory: the next rows are being read */
		} else {
			break;
		}
		if (rows_done % 65536 == 0) {
			double s = (now_ns() - t0) / 1e9;

			rss_kib(&rss, &hwm);
			if (rss > max_rss)
				max_rss = rss;
			if (s - last_print >= 10) {
				last_print = s;
				printf("  drain %9llu rows  %6.1f s  depth %8zu  RSS %6.1f MiB\n",
				       (unsigned long long)rows_done, s, outbox_depth(b->ob),
				       rss / 1024.0);
				fflush(stdout);
			}
		}
	}
	{
		double s = (now_ns() - t0) / 1e9;
		struct store_stats ss;
		struct outbox_stats os;

		rss_kib(&rss, &hwm);
		if (rss > max_rss)
			max_rss = rss;
		store_get_stats(b->st, &ss);
		outbox_get_stats(b->ob, &os);
		printf("drain: %llu rows in %.1f s = %.0f rows/s (no network), in order; %llu "
		       "events (each session 1..N, no gap), %llu snapshots (each the newest)\n",
		       (unsigned long long)rows_done, s, rows_done / s, (unsigned long long)events,
		       (unsigned long long)snaps);
		printf("drain: max RSS %.1f MiB; waits for a read with nothing in memory: %llu; "
		       "DELETEs not queued: %llu\n",
		       max_rss / 1024.0, (unsigned long long)waits,
		       (unsigned long long)os.delete_failed);
		dispatch_print(b, "drain, store_dispatch_completions (loop thread)");
		hist_print("drain, one read's rows into the window (loop thread)", &b->read_h);
		printf("drain: store reads %llu (%llu rows), reader thread per read: mean %.2f ms, "
		       "max %.2f ms\n",
		       (unsigned long long)ss.reads, (unsigned long long)ss.read_rows,
		       ss.reads ? ss.total_read_us / 1e3 / ss.reads : 0.0, ss.max_read_us / 1e3);
		if (events != b->events) {
			fprintf(stderr, "lost: %llu events appended, %llu delivered\n",
				(unsigned long long)b->events, (unsigned long long)events);
			exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	double hours = 24, rss_stop_mib = 0, crossed_32 = -1;
	const char *label = NEW_OUTBOX ? "new" : "old";
	bool restart = false, no_drain = false;
	unsigned t, end;
	uint64_t t0;
	int i;

	b.n_cuffs = 100;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hours") && i + 1 < argc)
			hours = atof(argv[++i]);
		else if (!strcmp(argv[i], "--cuffs") && i + 1 < argc)
			b.n_cuffs = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rss-stop") && i + 1 < argc)
			rss_stop_mib = atof(argv[++i]);
		else if (!strcmp(argv[i], "--label") && i + 1 < argc)
			label = argv[++i];
		else if (!strcmp(argv[i], "--restart"))
			restart = true;
		else if (!strcmp(argv[i], "--no-drain"))
			no_drain = true;
		else if (argv[i][0] != '-')
			snprintf(b.dir, sizeof(b.dir), "%s", argv[i]);
		else
			break;
	}
	if (i < argc || !b.dir[0] || !b.n_cuffs || hours <= 0) {
		fprintf(stderr, "usage: %s [--hours H] [--cuffs N] [--rss-stop MIB] [--restart] "
				"[--no-drain] [--label NAME] DATA_DIR\n",
			argv[0]);
		return 64;
	}
	end = (unsigned)(hours * 3600);
	b.cuffs = calloc(b.n_cuffs, sizeof(*b.cuffs));
	b.last_state_n = calloc(b.n_cuffs, sizeof(*b.last_state_n));
	/* Sessions start every SESSION_S per cuff (the first ones staggered). */
	b.delivered_seq = calloc((size_t)(end / SESSION_S + 2) * b.n_cuffs + 1, sizeof(uint16_t));
	if (!b.cuffs || !b.last_state_n || !b.delivered_seq)
		die("calloc", -ENOMEM);
	open_all(&b);
	printf("== %s outbox: %u cuffs, %.1f h of broker outage, faster than real time ==\n",
	       label, b.n_cuffs, hours);
	t0 = now_ns();
	for (t = 0; t < end; t++) {
		for (unsigned ci = 0; ci < b.n_cuffs; ci++)
			cuff_second(&b, ci, t);
		dispatch(&b, 0);
		if ((t + 1) % 60 == 0) {
			long rss, hwm;

			rss_kib(&rss, &hwm);
			if (crossed_32 < 0 && rss > 32 * 1024)
				crossed_32 = (t + 1) / 3600.0;
			if ((t + 1) % 3600 == 0 || (rss_stop_mib > 0 && rss > rss_stop_mib * 1024))
				status_line(&b, (t + 1) / 3600.0, (now_ns() - t0) / 1e9);
			if (rss_stop_mib > 0 && rss > rss_stop_mib * 1024) {
				printf("stopped producing: RSS %.1f MiB > %.0f MiB after %.2f "
				       "simulated hours\n",
				       rss / 1024.0, rss_stop_mib, (t + 1) / 3600.0);
				t++;
				break;
			}
		}
	}
	/* Everything committed before the "reconnect". */
	while (store_flush(b.st, 1000) == -ETIMEDOUT)
		dispatch(&b, 0);
	for (;;) {
		struct outbox_stats s;

		outbox_get_stats(b.ob, &s);
		if (!s.committing)
			break;
		dispatch(&b, 100);
	}
	status_line(&b, t / 3600.0, (now_ns() - t0) / 1e9);
	{
		struct outbox_stats s;
		char crossed[48] = "never";

		if (crossed_32 >= 0)
			snprintf(crossed, sizeof(crossed), "%.2f simulated h", crossed_32);
		outbox_get_stats(b.ob, &s);
		printf("outage: %.2f simulated h in %.1f s wall: %llu rows appended (%llu events, "
		       "%llu snapshots, %llu alarms/states/summaries), %llu coalesced, %zu held = "
		       "%.1f rows/s of outage; RSS passed 32 MiB at %s\n",
		       t / 3600.0, (now_ns() - t0) / 1e9, (unsigned long long)b.appended,
		       (unsigned long long)b.events, (unsigned long long)b.snapshots,
		       (unsigned long long)b.others, (unsigned long long)s.coalesced, s.depth,
		       s.depth / (double)t, crossed);
		hist_print("outage, outbox_append", &b.append_h);
		dispatch_print(&b, "outage, store_dispatch_completions");
	}
	if (restart) {
		uint64_t r0;
		long rss, hwm;
		int r;

		outbox_free(b.ob);
		store_close(b.st, NULL);
		open_all(&b);
		r0 = now_ns();
		r = outbox_load_pending(b.ob);
		if (r < 0)
			die("outbox_load_pending", r);
		rss_kib(&rss, &hwm);
		printf("restart: outbox_load_pending %.1f ms for %zu rows; RSS %.1f MiB\n",
		       (now_ns() - r0) / 1e6, outbox_depth(b.ob), rss / 1024.0);
	}
	if (!no_drain)
		drain(&b);
	outbox_free(b.ob);
	store_close(b.st, NULL);
	free(b.cuffs);
	free(b.last_state_n);
	free(b.delivered_seq);
	return 0;
}
