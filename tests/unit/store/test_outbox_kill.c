/*
 * test_outbox_kill.c - kill -9 in the middle of a drain loses no row, and the
 * next run drains what is left in id order.
 *
 * The database starts with a backlog far bigger than the outbox's window. A
 * child process loads it and drains it as the wiring does (a window of 256,
 * PUBACKs simulated by acking at once), appending a new row now and then;
 * it reports every row it hands out and every append the store committed
 * through a pipe. The parent SIGKILLs it at an arbitrary moment (mid-read,
 * mid-DELETE, mid-commit), three rounds on the same database, then drains
 * the rest itself. Checked: every row was delivered at least once; a row
 * delivered again after a kill is one of the last ones delivered before it
 * (its DELETE had not committed: at-least-once, never an older one); and
 * each run hands rows out in id order, the backlog before the appends.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "outbox.h"
#include "store_test_util.h"

#define BACKLOG 6000
#define ROUNDS 3
#define WINDOW 256
#define APPENDED_BASE 10000 /* seq of appended rows: base * round + k */

enum { REP_DELIVERED = 1, REP_COMMITTED = 2 };

struct report {
	int64_t what, seq;
};

static int report_fd = -1;

struct child {
	struct store *st;
	struct outbox *ob;
	int64_t appended, committed; /* appends made / reported committed */
	int round;
};

static void report(int64_t what, int64_t seq)
{
	struct report r = { what, seq };

	if (write(report_fd, &r, sizeof(r)) != sizeof(r))
		_exit(4);
}

static void child_completion(const struct store_completion *c, void *user_data)
{
	struct child *ch = user_data;

	outbox_handle_completion(ch->ob, c);
	/* Appends commit in append order: the n-th APPEND is the n-th row. */
	if (c->rec == STORE_REC_OUTBOX_APPEND && c->kind == STORE_DONE_COMMITTED)
		report(REP_COMMITTED, (int64_t)APPENDED_BASE * ch->round + ++ch->committed);
	else if (c->rec == STORE_REC_OUTBOX_APPEND || c->kind == STORE_DONE_REJECTED)
		_exit(3);
}

static int64_t seq_of(const struct outbox_row *row)
{
	return row->msg_id ? atoll(row->msg_id + 2) : -1;
}

static void append(struct outbox *ob, int64_t seq)
{
	char payload[64], msg_id[32];

	snprintf(payload, sizeof(payload), "{\"seq\":%lld}", (long long)seq);
	snprintf(msg_id, sizeof(msg_id), "m-%lld", (long long)seq);
	if (outbox_append(ob, "bfr/v1/s/g/session/1/event", payload, strlen(payload), 1, 0, msg_id,
			  0) < 0)
		_exit(5);
}

static void child_main(const char *dir, int round)
{
	struct store_config cfg = { .data_dir = dir };
	struct child ch = { .round = round };
	const struct outbox_row *rows[WINDOW];
	int64_t cursor = 0, last_seq = 0;
	size_t n, acked = 0;

	if (store_open(&cfg, &ch.st, NULL, 0) < 0 || outbox_new(ch.st, 1u << 30, &ch.ob) < 0)
		_exit(2);
	store_set_completion_cb(ch.st, child_completion, &ch);
	if (outbox_load_pending(ch.ob) < 0)
		_exit(6);
	for (;;) {
		struct pollfd p = { .fd = store_completion_fd(ch.st), .events = POLLIN };

		if (outbox_next(ch.ob, cursor, WINDOW, rows, &n) < 0)
			_exit(7);
		for (size_t i = 0; i < n; i++) {
			int64_t seq = seq_of(rows[i]);

			/* Id order: the backlog's seqs rise, appended ones follow. */
			if (rows[i]->id <= cursor || seq <= last_seq)
				_exit(8);
			cursor = rows[i]->id;
			last_seq = seq;
			report(REP_DELIVERED, seq);
			if (outbox_ack(ch.ob, rows[i]->id) < 0)
				_exit(9);
			if (++acked % 50 == 0)
				append(ch.ob, (int64_t)APPENDED_BASE * round + ++ch.appended);
		}
		if (!n) {
			if (outbox_depth(ch.ob) == 0)
				append(ch.ob, (int64_t)APPENDED_BASE * round + ++ch.appended);
			poll(&p, 1, 1000);
		}
		store_dispatch_completions(ch.st);
	}
}

/* Per seq: how often delivered; plus the order of deliveries of one run. */
struct tally {
	unsigned char *count; /* index: seq_index() */
	bool *committed;
	int64_t *run;	      /* the seqs one run delivered, in order */
	size_t run_n;
};

static size_t seq_index(int64_t seq)
{
	if (seq <= BACKLOG)
		return (size_t)seq;
	return BACKLOG + 1 + (size_t)(seq / APPENDED_BASE - 1) * APPENDED_BASE +
	       (size_t)(seq % APPENDED_BASE);
}

#define TALLY_SIZE (BACKLOG + 1 + (ROUNDS + 1) * (size_t)APPENDED_BASE)

/*
 * Seqs rise with ids (appended rows get both above everything before), and
 * each run hands rows out in id order. Rows delivered again in this run must
 * be exactly the last ones the run before delivered: DELETEs commit in ack
 * order, so those not yet committed at the kill are a suffix. A run that was
 * itself killed (complete false) may end inside that suffix: the writer can
 * lag thousands of DELETEs behind acks that cost nothing, and a kill can
 * come before the run has handed all of them out again. The next run
 * redelivers the rest; the last run, which drains everything, must cover
 * the whole suffix.
 */
static void check_redelivery_is_a_suffix(const int64_t *prev, size_t prev_n, const int64_t *cur,
					 size_t cur_n, bool complete)
{
	size_t i = 0;

	for (size_t j = 1; j < cur_n; j++)
		assert_true(cur[j] > cur[j - 1]);
	if (!prev_n || !cur_n)
		return;
	assert_true(cur[0] >= prev[0]); /* nothing older than the oldest was left */
	while (i < prev_n && prev[i] < cur[0])
		i++;
	for (size_t j = 0; i < prev_n; i++, j++) {
		if (j == cur_n && !complete)
			break;
		assert_true(j < cur_n);
		assert_int_equal(cur[j], prev[i]);
	}
}

static void on_parent_completion(const struct store_completion *c, void *user_data)
{
	outbox_handle_completion(user_data, c);
}

/* The parent's own drain of what the last kill left. */
static size_t drain_rest(const char *dir, int64_t *out, size_t cap)
{
	struct store_config cfg = { .data_dir = dir };
	const struct outbox_row *rows[WINDOW];
	struct store *st;
	struct outbox *ob;
	int64_t cursor = 0;
	size_t n, total = 0;
	uint64_t deadline = test_now_ms() + 60000;

	assert_int_equal(store_open(&cfg, &st, NULL, 0), 0);
	assert_int_equal(outbox_new(st, 1u << 30, &ob), 0);
	store_set_completion_cb(st, on_parent_completion, ob);
	assert_int_equal(outbox_load_pending(ob), 0);
	while (outbox_depth(ob)) {
		assert_int_equal(outbox_next(ob, cursor, WINDOW, rows, &n), 0);
		for (size_t i = 0; i < n; i++) {
			assert_true(rows[i]->id > cursor);
			cursor = rows[i]->id;
			assert_true(total < cap);
			out[total++] = seq_of(rows[i]);
			assert_int_equal(outbox_ack(ob, rows[i]->id), 0);
		}
		if (!n) {
			struct pollfd p = { .fd = store_completion_fd(st), .events = POLLIN };

			assert_true(test_now_ms() < deadline);
			poll(&p, 1, 100);
		}
		store_dispatch_completions(st);
	}
	assert_int_equal(store_flush(st, 5000), 0);
	outbox_free(ob);
	store_close(st, NULL);
	return total;
}

static void fill_backlog(const char *dir)
{
	struct store_config cfg = { .data_dir = dir };
	struct store *st;
	struct outbox *ob;

	assert_int_equal(store_open(&cfg, &st, NULL, 0), 0);
	assert_int_equal(outbox_new(st, 1u << 30, &ob), 0);
	store_set_completion_cb(st, on_parent_completion, ob);
	for (int k = 1; k <= BACKLOG; k++) {
		append(ob, k);
		if (k % 1024 == 0)
			store_dispatch_completions(st);
	}
	assert_int_equal(store_flush(st, 10000), 0);
	outbox_free(ob);
	store_close(st, NULL);
}

static void test_kill9_mid_drain_loses_nothing(void **state)
{
	char *dir = make_tmpdir();
	struct tally t = { 0 };
	int64_t *prev = NULL;
	size_t prev_n = 0;

	(void)state;
	assert_non_null(dir);
	t.count = calloc(TALLY_SIZE, 1);
	t.committed = calloc(TALLY_SIZE, sizeof(bool));
	t.run = calloc(TALLY_SIZE, sizeof(*t.run));
	prev = calloc(TALLY_SIZE, sizeof(*prev));
	assert_true(t.count && t.committed && t.run && prev);
	fill_backlog(dir);
	for (int k = 1; k <= BACKLOG; k++)
		t.committed[k] = true;

	for (int round = 1; round <= ROUNDS + 1; round++) {
		struct report r;
		size_t reports = 0;
		int fds[2], status;
		pid_t pid;

		t.run_n = 0;
		if (round > ROUNDS) {
			t.run_n = drain_rest(dir, t.run, TALLY_SIZE);
		} else {
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
			while (read(fds[0], &r, sizeof(r)) == sizeof(r)) {
				if (r.what == REP_DELIVERED)
					t.run[t.run_n++] = r.seq;
				else
					t.committed[seq_index(r.seq)] = true;
				if (++reports == (size_t)(1300 * round + 37))
					kill(pid, SIGKILL);
			}
			close(fds[0]);
			assert_int_equal(waitpid(pid, &status, 0), pid);
			assert_true(WIFSIGNALED(status)); /* not an _exit(n): a check failed */
			assert_int_equal(WTERMSIG(status), SIGKILL);
		}
		for (size_t i = 0; i < t.run_n; i++) {
			size_t ix = seq_index(t.run[i]);

			assert_true(ix < TALLY_SIZE);
			if (t.count[ix] < 255)
				t.count[ix]++;
		}
		check_redelivery_is_a_suffix(prev, prev_n, t.run, t.run_n, round > ROUNDS);
		print_message("round %d: %zu rows delivered, seq %lld .. %lld\n", round, t.run_n,
			      t.run_n ? (long long)t.run[0] : 0LL,
			      t.run_n ? (long long)t.run[t.run_n - 1] : 0LL);
		memcpy(prev, t.run, t.run_n * sizeof(*prev));
		prev_n = t.run_n;
	}
	/* Every row recorded (the backlog, every committed append) was delivered. */
	for (size_t ix = 1; ix < TALLY_SIZE; ix++)
		if (t.committed[ix])
			assert_true(t.count[ix] >= 1);
	free(t.count);
	free(t.committed);
	free(t.run);
	free(prev);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_mid_drain_loses_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
