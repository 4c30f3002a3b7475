/* test_loop.c - the event loop: timers (injected clock), io, signals, removal during dispatch. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"
#include "test_alloc.h"

struct fake_clock {
	uint64_t now;
	unsigned reads;
};

static uint64_t fake_now(void *data)
{
	struct fake_clock *clock = data;

	clock->reads++;
	return clock->now;
}

/* Records the order timers fire in. */
struct record {
	uint64_t ids[64];
	int tags[64];
	size_t n;
};

struct tagged {
	struct record *rec;
	int tag;
};

static void on_record(struct loop *loop, uint64_t id, void *user_data)
{
	struct tagged *t = user_data;

	assert_true(t->rec->n < 64);
	t->rec->ids[t->rec->n] = id;
	t->rec->tags[t->rec->n++] = t->tag;
}

static struct loop *fake_loop(struct fake_clock *clock)
{
	struct loop *loop = NULL;

	assert_int_equal(loop_new_with_clock(fake_now, clock, &loop), 0);
	assert_non_null(loop);
	return loop;
}

static void test_new_rejects_bad_args(void **state)
{
	struct loop *loop = (struct loop *)0x1;

	assert_int_equal(loop_new(NULL), -EINVAL);
	assert_int_equal(loop_new_with_clock(NULL, NULL, &loop), -EINVAL);
	assert_ptr_equal(loop, (struct loop *)0x1);
	loop_free(NULL);
}

static void test_timer_order(void **state)
{
	struct fake_clock clock = { .now = 1000 };
	struct loop *loop = fake_loop(&clock);
	struct record rec = { 0 };
	struct tagged t[4] = { { &rec, 30 }, { &rec, 10 }, { &rec, 20 }, { &rec, 40 } };
	uint64_t id;

	for (int i = 0; i < 4; i++)
		assert_int_equal(loop_add_timer(loop, (uint64_t)t[i].tag, on_record, &t[i], &id), 0);
	clock.now = 1009;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(rec.n, 0);
	clock.now = 1030;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec.tags[0], 10);
	assert_int_equal(rec.tags[1], 20);
	assert_int_equal(rec.tags[2], 30);
	assert_int_equal(loop_now_ms(loop), 1030);
	clock.now = 2000;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(rec.n, 4);
	assert_int_equal(rec.tags[3], 40);
	loop_free(loop);
}

static void test_equal_deadlines_fifo(void **state)
{
	struct fake_clock clock = { .now = 5 };
	struct loop *loop = fake_loop(&clock);
	struct record rec = { 0 };
	struct tagged t[20];
	uint64_t id;

	for (int i = 0; i < 20; i++) {
		t[i] = (struct tagged){ &rec, i };
		assert_int_equal(loop_add_timer(loop, 7, on_record, &t[i], &id), 0);
	}
	clock.now = 12;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(rec.n, 20);
	for (int i = 0; i < 20; i++)
		assert_int_equal(rec.tags[i], i);
	loop_free(loop);
}

struct canceller {
	uint64_t own_id;
	uint64_t victim_id;
	int own_result;
	int victim_result;
	int runs;
};

static void on_cancel_other(struct loop *loop, uint64_t id, void *user_data)
{
	struct canceller *c = user_data;

	c->runs++;
	c->own_result = loop_cancel_timer(loop, id);
	c->victim_result = loop_cancel_timer(loop, c->victim_id);
}

static void on_must_not_run(struct loop *loop, uint64_t id, void *user_data)
{
	fail_msg("cancelled timer ran");
}

static void test_cancel_inside_callback(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct canceller c = { 0 };

	assert_int_equal(loop_add_timer(loop, 10, on_cancel_other, &c, &c.own_id), 0);
	/* Same deadline, added later: due in the same iteration, cancelled before it runs. */
	assert_int_equal(loop_add_timer(loop, 10, on_must_not_run, NULL, &c.victim_id), 0);
	assert_int_not_equal(c.own_id, 0);
	assert_int_not_equal(c.own_id, c.victim_id);
	clock.now = 10;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(c.runs, 1);
	assert_int_equal(c.own_result, -ENOENT); /* already fired */
	assert_int_equal(c.victim_result, 0);
	assert_int_equal(loop_cancel_timer(loop, c.victim_id), -ENOENT);
	assert_int_equal(loop_cancel_timer(loop, 0), -ENOENT);
	assert_int_equal(loop_cancel_timer(loop, UINT64_MAX), -ENOENT);
	clock.now = 100;
	assert_int_equal(loop_run_once(loop, 0), 0);
	loop_free(loop);
}

static void test_ids_never_reused(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	uint64_t first, second;

	assert_int_equal(loop_add_timer(loop, 1, on_must_not_run, NULL, &first), 0);
	assert_int_equal(loop_cancel_timer(loop, first), 0);
	/* Same slot reused, but a different id: the stale id must not cancel it. */
	assert_int_equal(loop_add_timer(loop, 1, on_must_not_run, NULL, &second), 0);
	assert_int_not_equal(first, second);
	assert_int_equal(loop_cancel_timer(loop, first), -ENOENT);
	assert_int_equal(loop_cancel_timer(loop, second), 0);
	loop_free(loop);
}

struct rearm {
	int runs;
	int limit;
	uint64_t seen_now[8];
};

static void on_rearm(struct loop *loop, uint64_t id, void *user_data)
{
	struct rearm *r = user_data;
	uint64_t next;

	r->seen_now[r->runs++] = loop_now_ms(loop);
	if (r->runs < r->limit)
		assert_int_equal(loop_add_timer(loop, 0, on_rearm, r, &next), 0);
}

static void test_add_timer_from_timer(void **state)
{
	struct fake_clock clock = { .now = 50 };
	struct loop *loop = fake_loop(&clock);
	struct rearm r = { .limit = 3 };
	uint64_t id;

	assert_int_equal(loop_add_timer(loop, 0, on_rearm, &r, &id), 0);
	/* A timer added by a timer (even with delay 0) waits for the next iteration. */
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(r.runs, 1);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(r.runs, 2);
	/* Fake clock: the wait is computed from the heap, so -1 does not block here. */
	assert_int_equal(loop_run_once(loop, -1), 0);
	assert_int_equal(r.runs, 3);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(r.runs, 3);
	loop_free(loop);
}

static void test_now_cached_per_iteration(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct record rec = { 0 };
	struct tagged t = { &rec, 1 };
	uint64_t id;
	unsigned before;

	for (int i = 0; i < 5; i++)
		assert_int_equal(loop_add_timer(loop, 1, on_record, &t, &id), 0);
	clock.now = 1;
	before = clock.reads;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(rec.n, 5);
	assert_int_equal(clock.reads - before, 1);
	clock.now = 77;
	assert_int_equal(loop_now_ms(loop), 1);
	assert_int_equal(loop_update_now(loop), 77);
	assert_int_equal(loop_now_ms(loop), 77);
	loop_free(loop);
}

struct many {
	uint64_t last_deadline;
	uint64_t last_id;
	size_t fired;
	uint64_t *deadline_of; /* by index */
};

struct many_timer {
	struct many *m;
	uint64_t deadline;
};

static void on_many(struct loop *loop, uint64_t id, void *user_data)
{
	struct many_timer *t = user_data;
	struct many *m = t->m;

	/* Non-decreasing deadlines; equal deadlines in id (insertion) order. */
	assert_true(t->deadline >= m->last_deadline);
	if (t->deadline == m->last_deadline)
		assert_true(id > m->last_id);
	assert_true(t->deadline <= loop_now_ms(loop));
	m->last_deadline = t->deadline;
	m->last_id = id;
	m->fired++;
}

static void test_ten_thousand_timers(void **state)
{
	enum { N = 10000 };
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct many m = { 0 };
	struct many_timer *t = calloc(N, sizeof(*t));
	uint64_t *ids = calloc(N, sizeof(*ids));
	uint32_t seed = 12345;
	size_t cancelled = 0;

	assert_non_null(t);
	assert_non_null(ids);
	for (int i = 0; i < N; i++) {
		seed = seed * 1103515245u + 12345u;
		t[i].m = &m;
		t[i].deadline = (seed >> 8) % 5000; /* many ties */
		assert_int_equal(loop_add_timer(loop, t[i].deadline, on_many, &t[i], &ids[i]), 0);
	}
	for (int i = 0; i < N; i += 3) {
		assert_int_equal(loop_cancel_timer(loop, ids[i]), 0);
		cancelled++;
	}
	/* Advance time in steps so firing spans many iterations. */
	for (clock.now = 0; clock.now < 5000; clock.now += 37)
		assert_int_equal(loop_run_once(loop, 0), 0);
	clock.now = 5000;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(m.fired, N - cancelled);
	for (int i = 0; i < N; i++)
		assert_int_equal(loop_cancel_timer(loop, ids[i]), -ENOENT);
	free(t);
	free(ids);
	loop_free(loop);
}

static void test_timer_bad_args(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	uint64_t id = 42;

	assert_int_equal(loop_add_timer(loop, 1, NULL, NULL, &id), -EINVAL);
	assert_int_equal(loop_add_timer(loop, 1, on_must_not_run, NULL, NULL), -EINVAL);
	assert_int_equal(id, 42);
	/* A huge delay saturates instead of wrapping into the past. */
	assert_int_equal(loop_add_timer(loop, UINT64_MAX, on_must_not_run, NULL, &id), 0);
	clock.now = 1000000;
	assert_int_equal(loop_run_once(loop, 0), 0);
	loop_free(loop);
}

/* ---- real clock (timerfd) ------------------------------------------------ */

static void on_flag(struct loop *loop, uint64_t id, void *user_data)
{
	(*(int *)user_data)++;
}

static void on_quit(struct loop *loop, uint64_t id, void *user_data)
{
	(*(int *)user_data)++;
	loop_quit(loop);
}

static uint64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_timerfd_real_clock(void **state)
{
	struct loop *loop = NULL;
	int early = 0, late = 0, cancelled = 0;
	uint64_t id, cancel_id, start;

	assert_int_equal(loop_new(&loop), 0);
	start = real_ms();
	assert_int_equal(loop_add_timer(loop, 30, on_quit, &late, &id), 0);
	assert_int_equal(loop_add_timer(loop, 10, on_flag, &early, &id), 0);
	assert_int_equal(loop_add_timer(loop, 5, on_flag, &cancelled, &cancel_id), 0);
	assert_int_equal(loop_cancel_timer(loop, cancel_id), 0);
	/* loop_run blocks in epoll_wait(-1): only the timerfd can wake it. */
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(early, 1);
	assert_int_equal(late, 1);
	assert_int_equal(cancelled, 0);
	assert_true(real_ms() - start >= 30);
	assert_true(real_ms() - start < 5000);
	loop_free(loop);
}

/* ---- io ------------------------------------------------------------------ */

struct io_state {
	int calls;
	uint32_t last_events;
	int other_fd;
	int deleted_result;
};

static void on_readable(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct io_state *s = user_data;
	char buf[16];

	s->calls++;
	s->last_events = events;
	if (events & EPOLLIN)
		(void)read(fd, buf, sizeof(buf));
}

static void run_until(struct loop *loop, const int *counter, int value)
{
	uint64_t deadline = real_ms() + 3000;

	while (*counter < value && real_ms() < deadline)
		assert_int_equal(loop_run_once(loop, 100), 0);
	assert_true(*counter >= value);
}

static void test_io_readiness(void **state)
{
	struct loop *loop = NULL;
	struct io_state s = { 0 };
	int sv[2], calls;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(loop_add_io(loop, sv[1], EPOLLIN, on_readable, &s), 0);
	assert_int_equal(loop_add_io(loop, sv[1], EPOLLIN, on_readable, &s), -EEXIST);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(write(sv[0], "x", 1), 1);
	run_until(loop, &s.calls, 1);
	assert_true(s.last_events & EPOLLIN);

	/* Always writable: called on every poll (io first polls several times
	 * per iteration) until it is removed. */
	assert_int_equal(loop_mod_io(loop, sv[1], EPOLLOUT), 0);
	run_until(loop, &s.calls, 2);
	assert_true(s.last_events & EPOLLOUT);
	calls = s.calls;

	assert_int_equal(loop_del_io(loop, sv[1]), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(s.calls, calls);
	assert_int_equal(loop_del_io(loop, sv[1]), -ENOENT);
	assert_int_equal(loop_mod_io(loop, sv[1], EPOLLIN), -ENOENT);

	/* Peer hang-up is reported without asking for it. */
	assert_int_equal(loop_add_io(loop, sv[1], 0, on_readable, &s), 0);
	close(sv[0]);
	run_until(loop, &s.calls, calls + 1);
	assert_true(s.last_events & EPOLLHUP);
	assert_int_equal(loop_del_io(loop, sv[1]), 0);
	close(sv[1]);
	loop_free(loop);
}

static void test_io_bad_args(void **state)
{
	struct loop *loop = NULL;
	struct io_state s = { 0 };
	char path[] = "/tmp/bfr-loop-XXXXXX";
	int fd;

	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(loop_add_io(loop, -1, EPOLLIN, on_readable, &s), -EBADF);
	assert_int_equal(loop_add_io(loop, 0, EPOLLIN, NULL, &s), -EINVAL);
	assert_int_equal(loop_del_io(loop, -5), -ENOENT);
	assert_int_equal(loop_del_io(loop, 100000), -ENOENT);
	/* A regular file cannot be polled: the error comes back, nothing is registered. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(loop_add_io(loop, fd, EPOLLIN, on_readable, &s), -EPERM);
	assert_int_equal(loop_del_io(loop, fd), -ENOENT);
	close(fd);
	/* A closed fd: epoll_ctl reports EBADF. */
	assert_int_equal(loop_add_io(loop, fd, EPOLLIN, on_readable, &s), -EBADF);
	loop_free(loop);
}

struct pair_state {
	struct io_state a, b;
	int fds[2];
	int total;
	int readded_calls;
	int readded_fd;
};

static void on_readded(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct pair_state *p = user_data;

	p->readded_calls++;
}

/*
 * Whichever fd is dispatched first removes the other and registers it
 * afresh, its data read: the event fetched for the old registration is
 * stale, and the new one has nothing to report until more data comes.
 */
static void on_delete_other(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct pair_state *p = user_data;
	int other = fd == p->fds[0] ? p->fds[1] : p->fds[0];
	char buf[8];

	p->total++;
	(void)read(fd, buf, sizeof(buf)); /* drained: ready again only with new data */
	if (p->total > 1)
		return;
	assert_int_equal(loop_del_io(loop, other), 0);
	assert_int_equal(read(other, buf, sizeof(buf)), 1);
	assert_int_equal(loop_add_io(loop, other, EPOLLIN, on_readded, p), 0);
	p->readded_fd = other;
}

static void test_del_during_dispatch(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct pair_state p = { 0 };
	int sa[2], sb[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sa), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sb), 0);
	p.fds[0] = sa[1];
	p.fds[1] = sb[1];
	assert_int_equal(loop_add_io(loop, sa[1], EPOLLIN, on_delete_other, &p), 0);
	assert_int_equal(loop_add_io(loop, sb[1], EPOLLIN, on_delete_other, &p), 0);
	assert_int_equal(write(sa[0], "x", 1), 1);
	assert_int_equal(write(sb[0], "y", 1), 1);
	/* Both are ready before the wait: one iteration fetches both events. */
	assert_int_equal(loop_run_once(loop, 1000), 0);
	assert_int_equal(p.total, 1);
	/* The stale event of the old registration did not reach the new callback... */
	assert_int_equal(p.readded_calls, 0);
	/* ...but the new registration works. */
	assert_int_equal(write(p.readded_fd == sa[1] ? sa[0] : sb[0], "z", 1), 1);
	assert_int_equal(loop_run_once(loop, 1000), 0);
	assert_true(p.readded_calls >= 1);
	loop_del_io(loop, sa[1]);
	loop_del_io(loop, sb[1]);
	close(sa[0]);
	close(sa[1]);
	close(sb[0]);
	close(sb[1]);
	loop_free(loop);
}

/*
 * Every ready descriptor is dispatched before the timers of the same
 * iteration, however many there are: after a stall, a cuff's sample-timeout
 * timer must not fire while its samples wait unread in its socket (the fault
 * campaign found false telemetry_lost alarms with more than 64 busy cuffs
 * when one epoll_wait fetched at most 64 events). A callback that registers
 * more descriptors meanwhile (growing the events array) changes nothing.
 */
#define MANY_READY 200
#define ADDED_MIDWAY 300

struct many_state {
	int reads;
	int reads_at_timer;
	int timer_calls;
	bool grown;
	int extra[ADDED_MIDWAY][2];
};

static void on_many_readable(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct many_state *m = user_data;
	char buf[8];

	assert_int_equal(read(fd, buf, sizeof(buf)), 1);
	m->reads++;
	if (!m->grown) {
		m->grown = true;
		for (int i = 0; i < ADDED_MIDWAY; i++) {
			assert_int_equal(pipe2(m->extra[i], O_NONBLOCK | O_CLOEXEC), 0);
			assert_int_equal(loop_add_io(loop, m->extra[i][0], EPOLLIN, on_many_readable,
						     m),
					 0);
		}
	}
}

static void on_many_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct many_state *m = user_data;

	m->timer_calls++;
	m->reads_at_timer = m->reads;
}

static void test_every_ready_fd_before_timers(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	static struct many_state m;
	int sv[MANY_READY][2];
	uint64_t id;

	memset(&m, 0, sizeof(m));
	for (int i = 0; i < MANY_READY; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv[i]), 0);
		assert_int_equal(loop_add_io(loop, sv[i][1], EPOLLIN, on_many_readable, &m), 0);
		assert_int_equal(write(sv[i][0], "x", 1), 1);
	}
	assert_int_equal(loop_add_timer(loop, 0, on_many_timer, &m, &id), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(m.timer_calls, 1);
	assert_int_equal(m.reads_at_timer, MANY_READY);
	assert_int_equal(m.reads, MANY_READY);

	/* The descriptors registered during the dispatch work from now on. */
	for (int i = 0; i < ADDED_MIDWAY; i++)
		assert_int_equal(write(m.extra[i][1], "y", 1), 1);
	assert_int_equal(loop_add_timer(loop, 0, on_many_timer, &m, &id), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(m.timer_calls, 2);
	assert_int_equal(m.reads_at_timer, MANY_READY + ADDED_MIDWAY);

	for (int i = 0; i < MANY_READY; i++) {
		assert_int_equal(loop_del_io(loop, sv[i][1]), 0);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	for (int i = 0; i < ADDED_MIDWAY; i++) {
		assert_int_equal(loop_del_io(loop, m.extra[i][0]), 0);
		close(m.extra[i][0]);
		close(m.extra[i][1]);
	}
	loop_free(loop);
}

static void on_del_self(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	int *calls = user_data;

	(*calls)++;
	assert_int_equal(loop_del_io(loop, fd), 0);
}

static void test_del_self_and_closed_fd(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	int calls = 0;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(loop_add_io(loop, sv[1], EPOLLIN, on_del_self, &calls), 0);
	assert_int_equal(write(sv[0], "x", 1), 1);
	assert_int_equal(loop_run_once(loop, 1000), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(calls, 1);
	/* Closing before deleting is tolerated: the entry is forgotten. */
	assert_int_equal(loop_add_io(loop, sv[1], EPOLLIN, on_del_self, &calls), 0);
	close(sv[1]);
	assert_int_equal(loop_del_io(loop, sv[1]), 0);
	close(sv[0]);
	loop_free(loop);
}

/* ---- signals ------------------------------------------------------------- */

static void on_signal(struct loop *loop, int signo, void *user_data)
{
	int *got = user_data;

	*got = signo;
}

static void test_signal(void **state)
{
	struct loop *loop = NULL;
	int got = 0;

	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(loop_add_signal(loop, SIGUSR1, on_signal, &got), 0);
	assert_int_equal(loop_add_signal(loop, SIGUSR1, on_signal, &got), -EEXIST);
	assert_int_equal(loop_add_signal(loop, 0, on_signal, &got), -EINVAL);
	assert_int_equal(loop_add_signal(loop, 65, on_signal, &got), -EINVAL);
	assert_int_equal(loop_add_signal(loop, SIGKILL, on_signal, &got), -EINVAL);
	assert_int_equal(loop_add_signal(loop, SIGUSR2, NULL, &got), -EINVAL);
	assert_int_equal(raise(SIGUSR1), 0);
	run_until(loop, &got, 1);
	assert_int_equal(got, SIGUSR1);

	/* A second signal on the same loop shares the signalfd. */
	got = 0;
	assert_int_equal(loop_add_signal(loop, SIGUSR2, on_signal, &got), 0);
	assert_int_equal(raise(SIGUSR2), 0);
	run_until(loop, &got, 1);
	assert_int_equal(got, SIGUSR2);
	loop_free(loop);
}

/* ---- allocation ---------------------------------------------------------- */

static void test_alloc_failures_new(void **state)
{
	struct fake_clock clock = { 0 };
	int r = -ENOMEM;
	long n;

	for (n = 0; n < 20 && r != 0; n++) {
		struct loop *loop = NULL;

		test_alloc_fail_after(n);
		r = loop_new(&loop);
		test_alloc_reset();
		if (r == 0) {
			loop_free(loop);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		assert_null(loop);
	}
	assert_int_equal(r, 0);
	r = -ENOMEM;
	for (n = 0; n < 20 && r != 0; n++) {
		struct loop *loop = NULL;

		test_alloc_fail_after(n);
		r = loop_new_with_clock(fake_now, &clock, &loop);
		test_alloc_reset();
		if (r == 0)
			loop_free(loop);
		else
			assert_int_equal(r, -ENOMEM);
	}
	assert_int_equal(r, 0);
}

static void test_alloc_failures_grow(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct record rec = { 0 };
	struct tagged t = { &rec, 0 };
	struct io_state s = { 0 };
	uint64_t id = 0, kept;
	int r = -ENOMEM;
	int highfd, sv[2];

	/* Fill the first chunk of slots, then fail growth at every step. */
	for (int i = 0; i < 16; i++)
		assert_int_equal(loop_add_timer(loop, 5, on_record, &t, &kept), 0);
	for (long n = 0; n < 5 && r != 0; n++) {
		id = 0;
		test_alloc_fail_after(n);
		r = loop_add_timer(loop, 5, on_record, &t, &id);
		test_alloc_reset();
		if (r != 0) {
			assert_int_equal(r, -ENOMEM);
			assert_int_equal(id, 0);
		}
	}
	assert_int_equal(r, 0);
	clock.now = 5;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(rec.n, 17);

	/* io table growth fails for a large fd; nothing gets registered. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	highfd = dup2(sv[1], 200);
	assert_int_equal(highfd, 200);
	test_alloc_fail_after(0);
	assert_int_equal(loop_add_io(loop, highfd, EPOLLIN, on_readable, &s), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(loop_del_io(loop, highfd), -ENOENT);
	assert_int_equal(loop_add_io(loop, highfd, EPOLLIN, on_readable, &s), 0);
	assert_int_equal(loop_del_io(loop, highfd), 0);
	close(highfd);
	close(sv[0]);
	close(sv[1]);
	loop_free(loop);
}

static void on_periodic(struct loop *loop, uint64_t id, void *user_data)
{
	uint64_t next;

	(*(int *)user_data)++;
	assert_int_equal(loop_add_timer(loop, 1, on_periodic, user_data, &next), 0);
}

static void test_no_allocation_per_iteration(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	int runs = 0;
	uint64_t id;
	int sv[2];
	struct io_state s = { 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(loop_add_io(loop, sv[1], EPOLLIN, on_readable, &s), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(loop_add_timer(loop, 1, on_periodic, &runs, &id), 0);
	test_alloc_reset();
	for (int i = 0; i < 1000; i++) {
		clock.now++;
		assert_int_equal(write(sv[0], "x", 1), 1);
		assert_int_equal(loop_run_once(loop, 0), 0);
	}
	assert_int_equal(test_alloc_count(), 0);
	assert_int_equal(runs, 4000);
	assert_int_equal(s.calls, 1000);
	loop_del_io(loop, sv[1]);
	close(sv[0]);
	close(sv[1]);
	loop_free(loop);
}

/* --- persistent timers ---------------------------------------------------- */

struct ticker {
	int fired;
	uint64_t at[16];
	uint64_t restart_ms; /* restart itself from the callback with this delay */
	bool stop_self, free_self;
};

static void on_tick(struct loop *loop, uint64_t id, void *user_data)
{
	struct ticker *t = user_data;

	assert_true(t->fired < 16);
	t->at[t->fired++] = loop_now_ms(loop);
	if (t->restart_ms)
		assert_int_equal(loop_timer_start(loop, id, t->restart_ms, 0), 0);
	if (t->stop_self)
		assert_int_equal(loop_timer_stop(loop, id), 0);
	if (t->free_self)
		loop_timer_free(loop, id);
}

static void step_until(struct loop *loop, struct fake_clock *clock, uint64_t until)
{
	while (clock->now < until) {
		clock->now++;
		assert_int_equal(loop_run_once(loop, 0), 0);
	}
}

static void test_persistent_timer_restart_and_stop(void **state)
{
	struct fake_clock clock = { .now = 100 };
	struct loop *loop = fake_loop(&clock);
	struct ticker t = { 0 };
	uint64_t id, due = 0;

	assert_int_equal(loop_timer_new(loop, on_tick, &t, &id), 0);
	assert_false(loop_timer_is_active(loop, id, &due));
	assert_int_equal(loop_timer_start(loop, id, 10, 0), 0);
	assert_true(loop_timer_is_active(loop, id, &due));
	assert_int_equal(due, 110);
	/* Restarting a running timer moves it; the id stays. */
	clock.now = 105;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(loop_timer_start(loop, id, 10, 0), 0);
	step_until(loop, &clock, 114);
	assert_int_equal(t.fired, 0);
	step_until(loop, &clock, 115);
	assert_int_equal(t.fired, 1);
	assert_int_equal(t.at[0], 115);
	/* Fired once: inactive, but still there to start again. */
	assert_false(loop_timer_is_active(loop, id, NULL));
	assert_int_equal(loop_timer_start(loop, id, 5, 0), 0);
	assert_int_equal(loop_timer_stop(loop, id), 0);
	assert_int_equal(loop_timer_stop(loop, id), 0); /* idempotent */
	step_until(loop, &clock, 200);
	assert_int_equal(t.fired, 1);
	/* A one-shot id is not a persistent timer, and vice versa. */
	assert_int_equal(loop_cancel_timer(loop, id), -ENOENT);
	loop_timer_free(loop, id);
	assert_int_equal(loop_timer_start(loop, id, 1, 0), -ENOENT);
	assert_int_equal(loop_timer_stop(loop, id), -ENOENT);
	loop_timer_free(loop, id); /* twice: ignored */
	loop_timer_free(loop, 0);
	loop_free(loop);
}

static void test_persistent_timer_repeat_fixed_schedule(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct ticker t = { 0 };
	uint64_t id;

	assert_int_equal(loop_timer_new(loop, on_tick, &t, &id), 0);
	assert_int_equal(loop_timer_start(loop, id, 10, 10), 0);
	/* Wake up late (at 13): the next deadline stays 20, not 23. */
	clock.now = 13;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(t.fired, 1);
	step_until(loop, &clock, 20);
	assert_int_equal(t.fired, 2);
	assert_int_equal(t.at[1], 20);
	/* Far behind (at 75): one firing, then on from now, no burst. */
	clock.now = 75;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(t.fired, 3);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(t.fired, 4); /* the one due "now" runs next iteration */
	step_until(loop, &clock, 84);
	assert_int_equal(t.fired, 4);
	step_until(loop, &clock, 85);
	assert_int_equal(t.fired, 5);
	loop_timer_free(loop, id);
	loop_free(loop);
}

static void test_persistent_timer_changes_inside_callback(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct ticker restart = { .restart_ms = 0 }, stop = { .stop_self = true },
		      freed = { .free_self = true };
	uint64_t a, b, c;

	/* Restarted with delay 0 inside its callback: not again this iteration. */
	assert_int_equal(loop_timer_new(loop, on_tick, &restart, &a), 0);
	assert_int_equal(loop_timer_start(loop, a, 1, 0), 0);
	restart.restart_ms = 0;
	assert_int_equal(loop_timer_new(loop, on_tick, &stop, &b), 0);
	assert_int_equal(loop_timer_start(loop, b, 1, 1), 0);
	assert_int_equal(loop_timer_new(loop, on_tick, &freed, &c), 0);
	assert_int_equal(loop_timer_start(loop, c, 1, 1), 0);
	clock.now = 1;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(restart.fired, 1);
	assert_int_equal(stop.fired, 1);
	assert_int_equal(freed.fired, 1);
	/* A repeating timer stopped by its callback stays stopped. */
	assert_false(loop_timer_is_active(loop, b, NULL));
	assert_int_equal(loop_timer_start(loop, c, 1, 0), -ENOENT);
	/* restart_ms 0 means "no restart" in the ticker: arm it by hand at 0. */
	assert_int_equal(loop_timer_start(loop, a, 0, 0), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(restart.fired, 2);
	step_until(loop, &clock, 50);
	assert_int_equal(stop.fired, 1);
	assert_int_equal(freed.fired, 1);
	loop_timer_free(loop, a);
	loop_timer_free(loop, b);
	loop_free(loop);
}

static void test_persistent_timer_bad_args(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct ticker t = { 0 };
	uint64_t id = 77;

	assert_int_equal(loop_timer_new(NULL, on_tick, &t, &id), -EINVAL);
	assert_int_equal(loop_timer_new(loop, NULL, &t, &id), -EINVAL);
	assert_int_equal(loop_timer_new(loop, on_tick, &t, NULL), -EINVAL);
	assert_int_equal(id, 77);
	assert_int_equal(loop_timer_start(NULL, 1, 0, 0), -EINVAL);
	assert_int_equal(loop_timer_start(loop, 0, 0, 0), -ENOENT);
	assert_int_equal(loop_timer_stop(loop, 12345), -ENOENT);
	assert_false(loop_timer_is_active(loop, 0, NULL));
	/* A failed allocation leaves nothing behind. */
	test_alloc_fail_after(0);
	assert_int_equal(loop_timer_new(loop, on_tick, &t, &id), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(id, 77);
	loop_free(loop);
}

/* --- post hooks --------------------------------------------------------- */

struct hook {
	int runs;
	int order;     /* position in the shared sequence when it last ran */
	int *seq;
	uint64_t reschedule; /* schedule this post id from the callback */
	uint64_t free_id;    /* free this post id from the callback */
};

static void on_hook(struct loop *loop, void *user_data)
{
	struct hook *h = user_data;

	h->runs++;
	h->order = ++*h->seq;
	if (h->reschedule)
		assert_int_equal(loop_post_schedule(loop, h->reschedule), 0);
	if (h->free_id)
		loop_post_free(loop, h->free_id);
}

struct hook_on_io {
	uint64_t post;
	int io_calls;
	int post_runs_seen;
	struct hook *h;
};

static void on_io_schedule(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct hook_on_io *x = user_data;
	char buf[8];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	x->io_calls++;
	/* The hook has not run yet inside the batch. */
	x->post_runs_seen = x->h->runs;
	assert_int_equal(loop_post_schedule(loop, x->post), 0);
	assert_int_equal(loop_post_schedule(loop, x->post), 0); /* twice: once */
}

static void test_post_runs_once_after_batch(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	int seq = 0;
	struct hook h = { .seq = &seq };
	struct hook_on_io a = { .h = &h }, b = { .h = &h };
	int sv1[2], sv2[2];

	assert_int_equal(loop_post_new(loop, on_hook, &h, &a.post), 0);
	b.post = a.post;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv1), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv2), 0);
	assert_int_equal(loop_add_io(loop, sv1[1], EPOLLIN, on_io_schedule, &a), 0);
	assert_int_equal(loop_add_io(loop, sv2[1], EPOLLIN, on_io_schedule, &b), 0);
	assert_int_equal(write(sv1[0], "x", 1), 1);
	assert_int_equal(write(sv2[0], "y", 1), 1);
	assert_int_equal(loop_run_once(loop, 0), 0);
	/* Both io callbacks ran before the hook, which ran once. */
	assert_int_equal(a.io_calls + b.io_calls, 2);
	assert_int_equal(a.post_runs_seen + b.post_runs_seen, 0);
	assert_int_equal(h.runs, 1);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(h.runs, 1); /* not scheduled again */
	loop_del_io(loop, sv1[1]);
	loop_del_io(loop, sv2[1]);
	close(sv1[0]);
	close(sv1[1]);
	close(sv2[0]);
	close(sv2[1]);
	loop_post_free(loop, a.post);
	loop_free(loop);
}

/*
 * A batch larger than the old fixed 64-event array: every fd that is ready
 * is handled in the same iteration, before its timers and post hooks (so
 * the DEFLATEs of 2 000 cuffs sampling at once all leave before anything is
 * published). Fails with a fixed 64: the hook and the timer ran after 64.
 */
#define BATCH_FDS 300

struct batch {
	int io_calls;
	int io_before_post; /* io callbacks that ran before the hook */
	int io_before_timer;
	bool post_ran, timer_ran;
	uint64_t post;
};

static void on_batch_io(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct batch *b = user_data;
	char buf[8];

	assert_int_equal(read(fd, buf, sizeof(buf)), 1);
	b->io_calls++;
	if (!b->post_ran)
		b->io_before_post++;
	if (!b->timer_ran)
		b->io_before_timer++;
	assert_int_equal(loop_post_schedule(loop, b->post), 0);
}

static void on_batch_post(struct loop *loop, void *user_data)
{
	((struct batch *)user_data)->post_ran = true;
}

static void on_batch_timer(struct loop *loop, uint64_t id, void *user_data)
{
	((struct batch *)user_data)->timer_ran = true;
}

static void test_every_ready_fd_before_timers_and_posts(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct batch b = { 0 };
	int sv[BATCH_FDS][2];
	uint64_t id;

	assert_int_equal(loop_post_new(loop, on_batch_post, &b, &b.post), 0);
	for (int i = 0; i < BATCH_FDS; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv[i]), 0);
		assert_int_equal(loop_add_io(loop, sv[i][1], EPOLLIN, on_batch_io, &b), 0);
		assert_int_equal(write(sv[i][0], "x", 1), 1);
	}
	assert_int_equal(loop_add_timer(loop, 0, on_batch_timer, &b, &id), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(b.io_calls, BATCH_FDS);
	assert_int_equal(b.io_before_post, BATCH_FDS);
	assert_int_equal(b.io_before_timer, BATCH_FDS);
	assert_true(b.post_ran && b.timer_ran);
	for (int i = 0; i < BATCH_FDS; i++) {
		assert_int_equal(loop_del_io(loop, sv[i][1]), 0);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	loop_post_free(loop, b.post);
	loop_free(loop);
}

/*
 * io first: what arrives while the loop handles a batch is handled in the
 * same iteration, before its timers and hooks (a burst of notifications
 * that is still being written). Fails without the extra polls: the hook
 * and the timer ran between the first fd and the second.
 */
struct chain {
	struct batch *b;
	int next_peer; /* written by the first callback: "arrives meanwhile" */
};

static void on_chain_io(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct chain *c = user_data;

	on_batch_io(loop, fd, events, c->b);
	if (c->next_peer >= 0)
		assert_int_equal(write(c->next_peer, "y", 1), 1);
}

static void test_io_arriving_meanwhile_before_timers_and_posts(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct batch b = { 0 };
	int sv[3][2];
	struct chain c[3];
	uint64_t id;

	assert_int_equal(loop_post_new(loop, on_batch_post, &b, &b.post), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv[i]), 0);
	for (int i = 0; i < 3; i++) {
		c[i] = (struct chain){ .b = &b, .next_peer = i < 2 ? sv[i + 1][0] : -1 };
		assert_int_equal(loop_add_io(loop, sv[i][1], EPOLLIN, on_chain_io, &c[i]), 0);
	}
	assert_int_equal(loop_add_timer(loop, 0, on_batch_timer, &b, &id), 0);
	assert_int_equal(write(sv[0][0], "x", 1), 1);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(b.io_calls, 3);
	assert_int_equal(b.io_before_post, 3);
	assert_int_equal(b.io_before_timer, 3);
	assert_true(b.post_ran && b.timer_ran);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(loop_del_io(loop, sv[i][1]), 0);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	loop_post_free(loop, b.post);
	loop_free(loop);
}

/* ...but bounded: an fd that never stops being ready (its callback does not
 * drain it) cannot hold the timers back; with an injected clock that does
 * not move, the bound is 64 polls. */
static void on_never_drained(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	(*(int *)user_data)++;
}

static void test_io_first_is_bounded(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	struct batch b = { 0 };
	int calls = 0, sv[2];
	uint64_t id;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(loop_add_io(loop, sv[1], EPOLLIN, on_never_drained, &calls), 0);
	assert_int_equal(loop_add_timer(loop, 0, on_batch_timer, &b, &id), 0);
	assert_int_equal(write(sv[0], "x", 1), 1);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(calls, 64);
	assert_true(b.timer_ran);
	assert_int_equal(loop_del_io(loop, sv[1]), 0);
	close(sv[0]);
	close(sv[1]);
	loop_free(loop);
}

static void test_post_order_reschedule_and_free(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	int seq = 0;
	struct hook first = { .seq = &seq }, second = { .seq = &seq }, third = { .seq = &seq };
	uint64_t p1, p2, p3;

	assert_int_equal(loop_post_new(loop, on_hook, &first, &p1), 0);
	assert_int_equal(loop_post_new(loop, on_hook, &second, &p2), 0);
	assert_int_equal(loop_post_new(loop, on_hook, &third, &p3), 0);
	/* Registration order, whatever the scheduling order. */
	assert_int_equal(loop_post_schedule(loop, p3), 0);
	assert_int_equal(loop_post_schedule(loop, p1), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(first.order, 1);
	assert_int_equal(third.order, 2);
	assert_int_equal(second.runs, 0);
	/* A hook scheduling itself runs again next iteration, and that
	 * iteration does not block (timeout -1 would hang this test). */
	first.reschedule = p1;
	assert_int_equal(loop_post_schedule(loop, p1), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(first.runs, 2);
	first.reschedule = 0;
	assert_int_equal(loop_run_once(loop, -1), 0);
	assert_int_equal(first.runs, 3);
	/* A pending hook freed by an earlier one does not run. */
	first.free_id = p2;
	assert_int_equal(loop_post_schedule(loop, p1), 0);
	assert_int_equal(loop_post_schedule(loop, p2), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(second.runs, 0);
	assert_int_equal(loop_post_schedule(loop, p2), -ENOENT);
	loop_post_free(loop, p2); /* already gone: ignored */
	loop_post_free(loop, p1);
	loop_post_free(loop, p3);
	loop_free(loop);
}

static void test_post_bad_args_and_no_allocation(void **state)
{
	struct fake_clock clock = { .now = 0 };
	struct loop *loop = fake_loop(&clock);
	int seq = 0;
	struct hook h = { .seq = &seq };
	uint64_t id = 5, p;

	assert_int_equal(loop_post_new(NULL, on_hook, &h, &id), -EINVAL);
	assert_int_equal(loop_post_new(loop, NULL, &h, &id), -EINVAL);
	assert_int_equal(loop_post_new(loop, on_hook, &h, NULL), -EINVAL);
	test_alloc_fail_after(0);
	assert_int_equal(loop_post_new(loop, on_hook, &h, &id), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(id, 5);
	assert_int_equal(loop_post_schedule(loop, 0), -ENOENT);
	assert_int_equal(loop_post_schedule(NULL, 1), -EINVAL);
	assert_int_equal(loop_post_new(loop, on_hook, &h, &p), 0);
	test_alloc_reset();
	for (int i = 0; i < 100; i++) {
		assert_int_equal(loop_post_schedule(loop, p), 0);
		assert_int_equal(loop_run_once(loop, 0), 0);
	}
	assert_int_equal(test_alloc_count(), 0);
	assert_int_equal(h.runs, 100);
	loop_post_free(loop, p);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_rejects_bad_args),
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_equal_deadlines_fifo),
		cmocka_unit_test(test_cancel_inside_callback),
		cmocka_unit_test(test_ids_never_reused),
		cmocka_unit_test(test_add_timer_from_timer),
		cmocka_unit_test(test_now_cached_per_iteration),
		cmocka_unit_test(test_ten_thousand_timers),
		cmocka_unit_test(test_timer_bad_args),
		cmocka_unit_test(test_timerfd_real_clock),
		cmocka_unit_test(test_io_readiness),
		cmocka_unit_test(test_io_bad_args),
		cmocka_unit_test(test_del_during_dispatch),
		cmocka_unit_test(test_every_ready_fd_before_timers),
		cmocka_unit_test(test_del_self_and_closed_fd),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_alloc_failures_new),
		cmocka_unit_test(test_alloc_failures_grow),
		cmocka_unit_test(test_no_allocation_per_iteration),
		cmocka_unit_test(test_persistent_timer_restart_and_stop),
		cmocka_unit_test(test_persistent_timer_repeat_fixed_schedule),
		cmocka_unit_test(test_persistent_timer_changes_inside_callback),
		cmocka_unit_test(test_persistent_timer_bad_args),
		cmocka_unit_test(test_post_runs_once_after_batch),
		cmocka_unit_test(test_every_ready_fd_before_timers_and_posts),
		cmocka_unit_test(test_io_arriving_meanwhile_before_timers_and_posts),
		cmocka_unit_test(test_io_first_is_bounded),
		cmocka_unit_test(test_post_order_reschedule_and_free),
		cmocka_unit_test(test_post_bad_args_and_no_allocation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
