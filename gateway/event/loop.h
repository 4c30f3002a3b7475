/*
 * loop.h - a small single-threaded epoll event loop.
 *
 * One epoll fd; timers in a min-heap behind one timerfd; signals through a
 * signalfd; "post" hooks that run once after the current batch of events
 * (Redis's beforesleep, sd-event's post sources). (A module fed by another thread, e.g. the MQTT client, owns an
 * eventfd and registers it with loop_add_io.) `now` is read from an
 * injectable monotonic clock after each epoll_wait and cached, so every
 * callback of one poll sees the same time, and the timers and hooks of an
 * iteration the time of its last poll (tests can drive time).
 *
 * One iteration: epoll_wait with room for every registered fd, the io
 * callbacks of everything that was ready; then, io first, epoll is polled
 * again (timeout 0) and whatever arrived meanwhile is handled too, until a
 * poll finds nothing (at most 5 ms, or 64 polls); then the due timers, then
 * the post hooks. A batch of ready fds, and a burst still arriving while
 * the first part of it is handled, is therefore never cut by timers or
 * hooks: all cuffs' samples of one instant are checked, and their DEFLATEs
 * sent, before anything they caused is published.
 *
 * Invariants: callbacks run only on the thread that calls loop_run(); a
 * callback may add or remove any io/timer, including its own; removing an
 * fd or cancelling a timer guarantees its callback will not run afterwards,
 * even later in the same iteration. Every function returns 0 or -errno and
 * leaves output parameters untouched on failure. Nothing here is
 * thread-safe.
 *
 * Used by bfr-gateway and cuffsim.
 */
#ifndef BFR_LOOP_H
#define BFR_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;

/* Monotonic milliseconds. The default reads CLOCK_MONOTONIC. */
typedef uint64_t (*loop_clock_fn)(void *clock_data);

typedef void (*loop_io_fn)(struct loop *loop, int fd, uint32_t events, void *user_data);
typedef void (*loop_timer_fn)(struct loop *loop, uint64_t timer_id, void *user_data);
typedef void (*loop_signal_fn)(struct loop *loop, int signo, void *user_data);

int loop_new(struct loop **out);
/* For tests: a loop whose `now` comes from clock_fn(clock_data). */
int loop_new_with_clock(loop_clock_fn clock_fn, void *clock_data, struct loop **out);
/* Frees the loop; registered fds are not closed (their owners close them). */
void loop_free(struct loop *loop);

/* Cached monotonic time of the current iteration, in ms. */
uint64_t loop_now_ms(const struct loop *loop);
/* Re-reads the clock now (e.g. before measuring a latency). */
uint64_t loop_update_now(struct loop *loop);

/* events are EPOLLIN / EPOLLOUT / ...; EPOLLERR and EPOLLHUP are implied. */
int loop_add_io(struct loop *loop, int fd, uint32_t events, loop_io_fn fn, void *user_data);
int loop_mod_io(struct loop *loop, int fd, uint32_t events);
int loop_del_io(struct loop *loop, int fd);

/*
 * One-shot timer firing at now + delay_ms, forgotten once it fired. *id_out
 * gets a non-zero id that is never reused while the loop lives.
 */
int loop_add_timer(struct loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *user_data,
		   uint64_t *id_out);
/* -ENOENT if the timer already fired or was cancelled. */
int loop_cancel_timer(struct loop *loop, uint64_t timer_id);

/*
 * Persistent timers (libuv's uv_timer_t): created stopped, started and
 * stopped any number of times under the same id, freed by the owner.
 *
 * loop_timer_start() on a running timer restarts it: it fires at
 * now + delay_ms. With repeat_ms > 0 it then fires every repeat_ms on a
 * fixed schedule (deadline + repeat_ms, so the callback's own run time does
 * not stretch the period); a loop that fell more than a period behind does
 * not fire a burst of missed periods: the next one is due at once (the next
 * iteration) and the schedule continues from there. A timer (re)started
 * from a callback never fires again in the same iteration.
 */
int loop_timer_new(struct loop *loop, loop_timer_fn fn, void *user_data, uint64_t *id_out);
/* -ENOENT for an id that is not a persistent timer of this loop. */
int loop_timer_start(struct loop *loop, uint64_t timer_id, uint64_t delay_ms, uint64_t repeat_ms);
/* Idempotent: stopping a stopped timer is 0. */
int loop_timer_stop(struct loop *loop, uint64_t timer_id);
/* Started and not yet fired (or repeating); *due_ms (may be NULL) gets its deadline. */
bool loop_timer_is_active(const struct loop *loop, uint64_t timer_id, uint64_t *due_ms);
/* Stops and forgets the timer; 0 and unknown ids are ignored. */
void loop_timer_free(struct loop *loop, uint64_t timer_id);

/*
 * Post hooks: work that must follow a batch of events rather than run inside
 * each of them (publishing what a batch of cuff samples changed, say).
 * loop_post_schedule() makes the hook run once, after the io and timer
 * callbacks of the current iteration; scheduling it again before it ran
 * changes nothing. A hook scheduled from a hook runs in the next iteration,
 * which then does not block in epoll_wait. Registering allocates; scheduling
 * never does.
 */
typedef void (*loop_post_fn)(struct loop *loop, void *user_data);

int loop_post_new(struct loop *loop, loop_post_fn fn, void *user_data, uint64_t *id_out);
/* -ENOENT for an unknown id. */
int loop_post_schedule(struct loop *loop, uint64_t post_id);
/* Forgets the hook (a pending run is dropped); 0 and unknown ids are ignored. */
void loop_post_free(struct loop *loop, uint64_t post_id);

/*
 * Blocks signo for the process and delivers it through the loop. The mask
 * is per thread: call this before any thread is started (threads inherit
 * it), or make sure other threads block signo too. Signals stay blocked
 * after loop_free (unblocking a pending one would run its default action).
 */
int loop_add_signal(struct loop *loop, int signo, loop_signal_fn fn, void *user_data);

/* Runs until loop_quit(); returns 0, or -errno if epoll itself failed. */
int loop_run(struct loop *loop);
/* Runs at most one iteration, waiting up to timeout_ms (-1: forever). */
int loop_run_once(struct loop *loop, int timeout_ms);
void loop_quit(struct loop *loop);

#endif
