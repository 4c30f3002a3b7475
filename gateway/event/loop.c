/*
 * loop.c - see loop.h.
 *
 * io: a table indexed by fd. Each registration gets a fresh 32-bit
 * generation, and epoll's data carries (generation << 32 | fd), so an event
 * fetched before its fd was removed (or removed and re-added) in the same
 * iteration is recognised as stale and dropped.
 *
 * timers: a slab of timer records (reused through a free list) and a binary
 * min-heap of the armed ones' slab indices ordered by (deadline, order). Ids
 * are (sequence << TIMER_SLOT_BITS | slot): the slot gives O(1) lookup, the
 * ever-growing sequence makes ids unique for the loop's life. `order` is a
 * fresh sequence number at every (re)start: FIFO among equal deadlines, and
 * run_timers() uses it to keep timers armed during its own pass for the next
 * iteration. Each armed record keeps its heap index, so cancel is O(log n).
 * One-shot timers (loop_add_timer) are released when they fire; persistent
 * ones (loop_timer_new) keep their slot until loop_timer_free. The heap and
 * slab only grow when a timer is created; an iteration allocates nothing.
 *
 * post hooks: a small table of (fn, user_data, pending); scheduled hooks run
 * in slot order, i.e. the order they were registered in. Each pending hook
 * records the scheduling sequence, so one scheduled while run_posts() is
 * running waits for the next iteration.
 *
 * With the default clock one timerfd (CLOCK_MONOTONIC, TFD_TIMER_ABSTIME)
 * is armed to the earliest deadline just before epoll_wait, only when that
 * deadline changed. With an injected clock the timerfd would measure the
 * wrong time, so epoll_wait's timeout is computed from the heap instead.
 */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define TIMER_SLOT_BITS 24
#define TIMER_SLOT_MAX (1u << TIMER_SLOT_BITS)
#define NO_SLOT UINT32_MAX
#define NOT_ARMED UINT64_MAX
#define NOT_IN_HEAP UINT32_MAX
#define SIGNAL_MAX 65 /* _NSIG on Linux; signalfd only carries 1..64 */

struct io_entry {
	loop_io_fn fn;
	void *user_data;
	uint32_t events;
	uint32_t gen; /* 0: free */
};

struct timer {
	uint64_t id; /* 0: free */
	uint64_t deadline;
	uint64_t order;  /* sequence of the latest (re)start */
	uint64_t repeat; /* 0: fires once per start */
	loop_timer_fn fn;
	void *user_data;
	bool persistent;     /* loop_timer_new: kept after firing */
	uint32_t heap_index; /* NOT_IN_HEAP while stopped */
	uint32_t next_free;  /* while free */
};

struct post {
	uint64_t id; /* 0: free */
	loop_post_fn fn;
	void *user_data;
	bool pending;
	uint64_t scheduled; /* post_seq when it was scheduled */
};

struct signal_entry {
	loop_signal_fn fn;
	void *user_data;
};

struct loop {
	int epfd;
	int timerfd;
	int sigfd;
	bool quit;

	loop_clock_fn clock_fn; /* NULL: CLOCK_MONOTONIC + timerfd */
	void *clock_data;
	uint64_t now;

	struct io_entry *io;
	size_t io_cap;
	uint32_t io_gen;

	struct timer *timers;
	uint32_t timers_cap;
	uint32_t *heap;
	uint32_t heap_cap;
	uint32_t heap_len;
	uint32_t free_head;
	uint64_t timer_seq;
	uint64_t armed_deadline;

	struct post *posts;
	uint32_t posts_cap;
	uint32_t posts_pending;
	uint64_t post_seq;

	sigset_t sigmask;
	struct signal_entry signals[SIGNAL_MAX];

	/* Room for every registered fd (io_cap entries), so one epoll_wait
	 * returns every ready descriptor and each is read before the timers of
	 * the same iteration run: after a stall (CPU starvation) a cuff's
	 * sample-timeout check must not fire while its samples wait unread in
	 * its socket. Grown with the io table, never per iteration. */
	struct epoll_event *events;
	struct epoll_event no_events[1]; /* while nothing is registered */
};

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t read_clock(const struct loop *loop)
{
	return loop->clock_fn ? loop->clock_fn(loop->clock_data) : monotonic_ms();
}

static uint64_t pack_data(uint32_t gen, int fd)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

/* ---- timer heap -------------------------------------------------------- */

static bool timer_before(const struct loop *loop, uint32_t a, uint32_t b)
{
	const struct timer *ta = &loop->timers[a];
	const struct timer *tb = &loop->timers[b];

	if (ta->deadline != tb->deadline)
		return ta->deadline < tb->deadline;
	return ta->order < tb->order; /* FIFO */
}

static void heap_place(struct loop *loop, uint32_t index, uint32_t slot)
{
	loop->heap[index] = slot;
	loop->timers[slot].heap_index = index;
}

static void heap_sift_up(struct loop *loop, uint32_t index)
{
	uint32_t slot = loop->heap[index];

	while (index > 0) {
		uint32_t parent = (index - 1) / 2;

		if (!timer_before(loop, slot, loop->heap[parent]))
			break;
		heap_place(loop, index, loop->heap[parent]);
		index = parent;
	}
	heap_place(loop, index, slot);
}

static void heap_sift_down(struct loop *loop, uint32_t index)
{
	uint32_t slot = loop->heap[index];

	for (;;) {
		uint32_t child = 2 * index + 1;

		if (child >= loop->heap_len)
			break;
		if (child + 1 < loop->heap_len &&
		    timer_before(loop, loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_before(loop, loop->heap[child], slot))
			break;
		heap_place(loop, index, loop->heap[child]);
		index = child;
	}
	heap_place(loop, index, slot);
}

static void heap_remove(struct loop *loop, uint32_t index)
{
	uint32_t last = loop->heap[--loop->heap_len];

	loop->timers[loop->heap[index]].heap_index = NOT_IN_HEAP;
	if (index == loop->heap_len)
		return;
	heap_place(loop, index, last);
	/* The moved element may belong above or below its new place. */
	if (index > 0 && timer_before(loop, last, loop->heap[(index - 1) / 2]))
		heap_sift_up(loop, index);
	else
		heap_sift_down(loop, index);
}

static void heap_insert(struct loop *loop, uint32_t slot)
{
	loop->heap[loop->heap_len] = slot;
	loop->timers[slot].heap_index = loop->heap_len++;
	heap_sift_up(loop, loop->timers[slot].heap_index);
}

/* (Re)arms an allocated timer; it keeps its id. */
static void timer_arm(struct loop *loop, uint32_t slot, uint64_t deadline)
{
	struct timer *t = &loop->timers[slot];

	if (t->heap_index != NOT_IN_HEAP)
		heap_remove(loop, t->heap_index);
	t->deadline = deadline;
	t->order = loop->timer_seq++;
	heap_insert(loop, slot);
}

static uint64_t deadline_after(const struct loop *loop, uint64_t delay_ms)
{
	return delay_ms > UINT64_MAX - 1 - loop->now ? UINT64_MAX - 1 : loop->now + delay_ms;
}

static void timer_release(struct loop *loop, uint32_t slot)
{
	loop->timers[slot].id = 0;
	loop->timers[slot].persistent = false;
	loop->timers[slot].heap_index = NOT_IN_HEAP;
	loop->timers[slot].fn = NULL;
	loop->timers[slot].user_data = NULL;
	loop->timers[slot].next_free = loop->free_head;
	loop->free_head = slot;
}

/* Grows slab and heap together; each keeps its new size if the other fails. */
static int timers_grow(struct loop *loop)
{
	uint32_t cap = loop->timers_cap ? loop->timers_cap * 2 : 16;
	struct timer *timers;
	uint32_t *heap;

	if (loop->timers_cap >= TIMER_SLOT_MAX)
		return -ENOSPC;
	if (cap > TIMER_SLOT_MAX)
		cap = TIMER_SLOT_MAX;
	if (loop->heap_cap < cap) {
		heap = realloc(loop->heap, cap * sizeof(*heap));
		if (!heap)
			return -ENOMEM;
		loop->heap = heap;
		loop->heap_cap = cap;
	}
	timers = realloc(loop->timers, cap * sizeof(*timers));
	if (!timers)
		return -ENOMEM;
	memset(&timers[loop->timers_cap], 0, (cap - loop->timers_cap) * sizeof(*timers));
	/* Push new slots so the lowest index is handed out first. */
	for (uint32_t slot = cap; slot-- > loop->timers_cap;) {
		timers[slot].next_free = loop->free_head;
		loop->free_head = slot;
	}
	loop->timers = timers;
	loop->timers_cap = cap;
	return 0;
}

/* Re-arms the timerfd only when the earliest deadline moved. */
static int timerfd_sync(struct loop *loop)
{
	struct itimerspec its = { 0 };
	uint64_t deadline = NOT_ARMED;

	if (loop->heap_len > 0)
		deadline = loop->timers[loop->heap[0]].deadline;
	if (deadline == loop->armed_deadline)
		return 0;
	if (deadline != NOT_ARMED) {
		its.it_value.tv_sec = (time_t)(deadline / 1000u);
		its.it_value.tv_nsec = (long)(deadline % 1000u) * 1000000L;
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1; /* all-zero would disarm */
	}
	if (timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	loop->armed_deadline = deadline;
	return 0;
}

/*
 * Fires every timer due at the cached now, in (deadline, id) order. Timers
 * added by these callbacks get a later sequence and wait for the next
 * iteration, so a timer re-arming itself with delay 0 cannot starve io.
 */
static void run_timers(struct loop *loop)
{
	uint64_t seq_limit = loop->timer_seq;

	while (loop->heap_len > 0) {
		uint32_t slot = loop->heap[0];
		struct timer *t = &loop->timers[slot];
		uint64_t id = t->id;
		loop_timer_fn fn = t->fn;
		void *user_data = t->user_data;

		/* Heap order is (deadline, order) and a timer armed now has
		 * deadline >= now: once the top was armed during this pass, every
		 * due timer left was too. */
		if (t->deadline > loop->now || t->order >= seq_limit)
			break;
		heap_remove(loop, 0);
		/* Settled before the call: the callback may re-arm, stop or free it. */
		if (!t->persistent) {
			timer_release(loop, slot);
		} else if (t->repeat) {
			uint64_t next = t->deadline + t->repeat;

			timer_arm(loop, slot, next > loop->now ? next : loop->now);
		}
		fn(loop, id, user_data);
	}
}

/* Runs the hooks scheduled before this pass, in slot (registration) order. */
static void run_posts(struct loop *loop)
{
	uint64_t limit = loop->post_seq;

	/* posts may move if a hook registers another: index, never cache. */
	for (uint32_t slot = 0; slot < loop->posts_cap && loop->posts_pending > 0; slot++) {
		struct post *p = &loop->posts[slot];

		if (!p->id || !p->pending || p->scheduled >= limit)
			continue;
		p->pending = false;
		loop->posts_pending--;
		p->fn(loop, p->user_data);
	}
}

/* ---- internal fds ------------------------------------------------------ */

static void on_timerfd(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	uint64_t expirations;

	/* Only clears readiness; run_timers decides what is due. */
	while (read(fd, &expirations, sizeof(expirations)) > 0)
		;
	/* The kernel disarmed it after expiry; make the next sync re-arm. */
	loop->armed_deadline = NOT_ARMED;
}

static void on_signalfd(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct signalfd_siginfo info;

	while (read(fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		int signo = (int)info.ssi_signo;

		if (signo <= 0 || signo >= SIGNAL_MAX || !loop->signals[signo].fn)
			continue;
		loop->signals[signo].fn(loop, signo, loop->signals[signo].user_data);
	}
}

/* ---- public ------------------------------------------------------------ */

static int loop_create(loop_clock_fn clock_fn, void *clock_data, struct loop **out)
{
	struct loop *loop;
	int r;

	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->timerfd = -1;
	loop->sigfd = -1;
	loop->free_head = NO_SLOT;
	loop->timer_seq = 1;
	loop->armed_deadline = NOT_ARMED;
	loop->clock_fn = clock_fn;
	loop->clock_data = clock_data;
	sigemptyset(&loop->sigmask);

	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		r = -errno;
		goto fail;
	}
	if (!clock_fn) {
		loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (loop->timerfd < 0) {
			r = -errno;
			goto fail;
		}
		r = loop_add_io(loop, loop->timerfd, EPOLLIN, on_timerfd, NULL);
		if (r < 0)
			goto fail;
	}
	loop->now = read_clock(loop);
	*out = loop;
	return 0;
fail:
	loop_free(loop);
	return r;
}

int loop_new(struct loop **out)
{
	if (!out)
		return -EINVAL;
	return loop_create(NULL, NULL, out);
}

int loop_new_with_clock(loop_clock_fn clock_fn, void *clock_data, struct loop **out)
{
	if (!clock_fn || !out)
		return -EINVAL;
	return loop_create(clock_fn, clock_data, out);
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	/*
	 * Signals stay blocked: unblocking one that is pending would run its
	 * default action (usually death) instead of the handler.
	 */
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	if (loop->timerfd >= 0)
		close(loop->timerfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->io);
	free(loop->events);
	free(loop->timers);
	free(loop->heap);
	free(loop->posts);
	free(loop);
}

uint64_t loop_now_ms(const struct loop *loop)
{
	return loop->now;
}

uint64_t loop_update_now(struct loop *loop)
{
	loop->now = read_clock(loop);
	return loop->now;
}

static struct io_entry *io_lookup(struct loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->io_cap || loop->io[fd].gen == 0)
		return NULL;
	return &loop->io[fd];
}

int loop_add_io(struct loop *loop, int fd, uint32_t events, loop_io_fn fn, void *user_data)
{
	struct epoll_event ev = { 0 };
	struct io_entry *entry;

	if (!loop || !fn)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	if (io_lookup(loop, fd))
		return -EEXIST;
	if ((size_t)fd >= loop->io_cap) {
		size_t cap = loop->io_cap ? loop->io_cap : 16;
		struct io_entry *io;
		struct epoll_event *evs;

		while (cap <= (size_t)fd)
			cap *= 2;
		/* First the events array (at least io_cap entries at all times; a
		 * larger one left by a failure below is harmless). Safe during
		 * dispatch: loop_run_once indexes loop->events afresh, and realloc
		 * keeps the entries it has not reached yet. */
		evs = realloc(loop->events, cap * sizeof(*evs));
		if (!evs)
			return -ENOMEM;
		loop->events = evs;
		io = realloc(loop->io, cap * sizeof(*io));
		if (!io)
			return -ENOMEM;
		memset(&io[loop->io_cap], 0, (cap - loop->io_cap) * sizeof(*io));
		loop->io = io;
		loop->io_cap = cap;
	}
	if (++loop->io_gen == 0)
		loop->io_gen = 1; /* 0 marks a free entry */
	ev.events = events;
	ev.data.u64 = pack_data(loop->io_gen, fd);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	entry = &loop->io[fd];
	entry->fn = fn;
	entry->user_data = user_data;
	entry->events = events;
	entry->gen = loop->io_gen;
	return 0;
}

int loop_mod_io(struct loop *loop, int fd, uint32_t events)
{
	struct io_entry *entry;
	struct epoll_event ev = { 0 };

	if (!loop)
		return -EINVAL;
	entry = io_lookup(loop, fd);
	if (!entry)
		return -ENOENT;
	ev.events = events;
	ev.data.u64 = pack_data(entry->gen, fd);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	entry->events = events;
	return 0;
}

int loop_del_io(struct loop *loop, int fd)
{
	struct io_entry *entry;

	if (!loop)
		return -EINVAL;
	entry = io_lookup(loop, fd);
	if (!entry)
		return -ENOENT;
	/*
	 * Failure here means the owner already closed the fd, which removed it
	 * from epoll; forgetting it is all that is left to do.
	 */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(entry, 0, sizeof(*entry));
	return 0;
}

/* A stopped timer record with a fresh id; NO_SLOT and *err on failure. */
static uint32_t timer_alloc(struct loop *loop, loop_timer_fn fn, void *user_data, bool persistent,
			    int *err)
{
	struct timer *t;
	uint32_t slot;

	if (loop->free_head == NO_SLOT) {
		*err = timers_grow(loop);
		if (*err < 0)
			return NO_SLOT;
	}
	slot = loop->free_head;
	t = &loop->timers[slot];
	loop->free_head = t->next_free;
	t->id = loop->timer_seq++ << TIMER_SLOT_BITS | slot;
	t->fn = fn;
	t->user_data = user_data;
	t->persistent = persistent;
	t->repeat = 0;
	t->heap_index = NOT_IN_HEAP;
	return slot;
}

/* The slot of a live timer id, or NO_SLOT. */
static uint32_t timer_slot(const struct loop *loop, uint64_t timer_id)
{
	uint32_t slot = (uint32_t)(timer_id & (TIMER_SLOT_MAX - 1));

	if (timer_id == 0 || slot >= loop->timers_cap || loop->timers[slot].id != timer_id)
		return NO_SLOT;
	return slot;
}

int loop_add_timer(struct loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *user_data,
		   uint64_t *id_out)
{
	uint32_t slot;
	int r = 0;

	if (!loop || !fn || !id_out)
		return -EINVAL;
	slot = timer_alloc(loop, fn, user_data, false, &r);
	if (slot == NO_SLOT)
		return r;
	timer_arm(loop, slot, deadline_after(loop, delay_ms));
	*id_out = loop->timers[slot].id;
	return 0;
}

int loop_cancel_timer(struct loop *loop, uint64_t timer_id)
{
	uint32_t slot;

	if (!loop)
		return -EINVAL;
	slot = timer_slot(loop, timer_id);
	if (slot == NO_SLOT || loop->timers[slot].persistent)
		return -ENOENT;
	heap_remove(loop, loop->timers[slot].heap_index);
	timer_release(loop, slot);
	return 0;
}

int loop_timer_new(struct loop *loop, loop_timer_fn fn, void *user_data, uint64_t *id_out)
{
	uint32_t slot;
	int r = 0;

	if (!loop || !fn || !id_out)
		return -EINVAL;
	slot = timer_alloc(loop, fn, user_data, true, &r);
	if (slot == NO_SLOT)
		return r;
	*id_out = loop->timers[slot].id;
	return 0;
}

int loop_timer_start(struct loop *loop, uint64_t timer_id, uint64_t delay_ms, uint64_t repeat_ms)
{
	uint32_t slot;

	if (!loop)
		return -EINVAL;
	slot = timer_slot(loop, timer_id);
	if (slot == NO_SLOT || !loop->timers[slot].persistent)
		return -ENOENT;
	loop->timers[slot].repeat = repeat_ms;
	timer_arm(loop, slot, deadline_after(loop, delay_ms));
	return 0;
}

int loop_timer_stop(struct loop *loop, uint64_t timer_id)
{
	uint32_t slot;

	if (!loop)
		return -EINVAL;
	slot = timer_slot(loop, timer_id);
	if (slot == NO_SLOT || !loop->timers[slot].persistent)
		return -ENOENT;
	if (loop->timers[slot].heap_index != NOT_IN_HEAP)
		heap_remove(loop, loop->timers[slot].heap_index);
	return 0;
}

bool loop_timer_is_active(const struct loop *loop, uint64_t timer_id, uint64_t *due_ms)
{
	uint32_t slot;

	if (!loop)
		return false;
	slot = timer_slot(loop, timer_id);
	if (slot == NO_SLOT || loop->timers[slot].heap_index == NOT_IN_HEAP)
		return false;
	if (due_ms)
		*due_ms = loop->timers[slot].deadline;
	return true;
}

void loop_timer_free(struct loop *loop, uint64_t timer_id)
{
	uint32_t slot;

	if (!loop)
		return;
	slot = timer_slot(loop, timer_id);
	if (slot == NO_SLOT || !loop->timers[slot].persistent)
		return;
	if (loop->timers[slot].heap_index != NOT_IN_HEAP)
		heap_remove(loop, loop->timers[slot].heap_index);
	timer_release(loop, slot);
}

/* ---- post hooks -------------------------------------------------------- */

#define POST_SLOT_BITS 24
#define POST_SLOT_MAX (1u << POST_SLOT_BITS)

static uint32_t post_slot(const struct loop *loop, uint64_t post_id)
{
	uint32_t slot = (uint32_t)(post_id & (POST_SLOT_MAX - 1));

	if (post_id == 0 || slot >= loop->posts_cap || loop->posts[slot].id != post_id)
		return NO_SLOT;
	return slot;
}

int loop_post_new(struct loop *loop, loop_post_fn fn, void *user_data, uint64_t *id_out)
{
	uint32_t slot;

	if (!loop || !fn || !id_out)
		return -EINVAL;
	for (slot = 0; slot < loop->posts_cap && loop->posts[slot].id; slot++)
		;
	if (slot == loop->posts_cap) {
		uint32_t cap = loop->posts_cap ? loop->posts_cap * 2 : 8;
		struct post *posts;

		if (loop->posts_cap >= POST_SLOT_MAX)
			return -ENOSPC;
		posts = realloc(loop->posts, cap * sizeof(*posts));
		if (!posts)
			return -ENOMEM;
		memset(&posts[loop->posts_cap], 0, (cap - loop->posts_cap) * sizeof(*posts));
		loop->posts = posts;
		loop->posts_cap = cap;
	}
	loop->posts[slot] = (struct post){
		.id = ++loop->post_seq << POST_SLOT_BITS | slot,
		.fn = fn,
		.user_data = user_data,
	};
	*id_out = loop->posts[slot].id;
	return 0;
}

int loop_post_schedule(struct loop *loop, uint64_t post_id)
{
	uint32_t slot;

	if (!loop)
		return -EINVAL;
	slot = post_slot(loop, post_id);
	if (slot == NO_SLOT)
		return -ENOENT;
	if (loop->posts[slot].pending)
		return 0;
	loop->posts[slot].pending = true;
	loop->posts[slot].scheduled = loop->post_seq++;
	loop->posts_pending++;
	return 0;
}

void loop_post_free(struct loop *loop, uint64_t post_id)
{
	uint32_t slot;

	if (!loop)
		return;
	slot = post_slot(loop, post_id);
	if (slot == NO_SLOT)
		return;
	if (loop->posts[slot].pending)
		loop->posts_pending--;
	memset(&loop->posts[slot], 0, sizeof(loop->posts[slot]));
}

int loop_add_signal(struct loop *loop, int signo, loop_signal_fn fn, void *user_data)
{
	sigset_t mask, one;
	int fd, r;

	if (!loop || !fn)
		return -EINVAL;
	if (signo <= 0 || signo >= SIGNAL_MAX || signo == SIGKILL || signo == SIGSTOP)
		return -EINVAL;
	if (loop->signals[signo].fn)
		return -EEXIST;
	mask = loop->sigmask;
	sigaddset(&mask, signo);
	/* Blocked first, so a signal arriving meanwhile waits for the signalfd. */
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
		return -errno;
	fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		r = loop_add_io(loop, fd, EPOLLIN, on_signalfd, NULL);
		if (r < 0) {
			close(fd);
			return r;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	loop->signals[signo].fn = fn;
	loop->signals[signo].user_data = user_data;
	return 0;
}

static int wait_timeout(struct loop *loop, int timeout_ms)
{
	uint64_t deadline, wait;

	if (loop->posts_pending > 0)
		return 0; /* hooks scheduled by hooks: run them without waiting */
	if (!loop->clock_fn || loop->heap_len == 0)
		return timeout_ms;
	deadline = loop->timers[loop->heap[0]].deadline;
	wait = deadline > loop->now ? deadline - loop->now : 0;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < wait)
		return timeout_ms;
	return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event *events;
	int n, r;

	if (!loop)
		return -EINVAL;
	if (loop->timerfd >= 0) {
		r = timerfd_sync(loop);
		if (r < 0)
			return r;
	}
	/* Every ready fd at once (see struct loop): never a partial batch. */
	events = loop->events ? loop->events : loop->no_events;
	n = epoll_wait(loop->epfd, events, loop->events ? (int)loop->io_cap : 1,
		       wait_timeout(loop, timeout_ms));
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	loop->now = read_clock(loop);
	for (int i = 0; i < n; i++) {
		/* A callback may grow loop->events (loop_add_io): index afresh. */
		const struct epoll_event *ev = events == loop->no_events ? &events[i] :
								     &loop->events[i];
		uint64_t data = ev->data.u64;
		int fd = (int)(uint32_t)data;
		struct io_entry *entry = io_lookup(loop, fd);

		/* Removed, or removed and re-added, earlier in this iteration. */
		if (!entry || entry->gen != (uint32_t)(data >> 32))
			continue;
		entry->fn(loop, fd, ev->events, entry->user_data);
	}
	run_timers(loop);
	run_posts(loop);
	return 0;
}

int loop_run(struct loop *loop)
{
	int r = 0;

	if (!loop)
		return -EINVAL;
	loop->quit = false;
	while (!loop->quit) {
		r = loop_run_once(loop, -1);
		if (r < 0)
			break;
	}
	return r;
}

void loop_quit(struct loop *loop)
{
	loop->quit = true;
}
