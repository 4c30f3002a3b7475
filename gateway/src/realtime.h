/*
 * realtime.h - the event loop's thread as a real-time (SCHED_FIFO) thread.
 *
 * Every cuff's safety check, and the DEFLATE it may send, runs on the event
 * loop's thread. Under the normal policy a notification that wakes the loop
 * waits for the CPU behind whatever else the machine runs at that moment:
 * the broker, a subscriber, a backup, another daemon. As a SCHED_FIFO
 * thread the loop takes a CPU the moment it is woken and keeps it until it
 * blocks again (docs/architecture.md "Threads and priorities";
 * docs/benchmarks.md gives the figures with and without).
 *
 * Invariants:
 * - only the calling thread changes, and with SCHED_RESET_ON_FORK: every
 *   thread it creates afterwards (Paho's, the store's, a probe) starts with
 *   the normal policy, never with the loop's priority;
 * - the loop blocks in epoll_wait whenever nothing is ready, so it never
 *   takes a CPU for longer than its work; a bug that spun would still leave
 *   the rest of the system 5 % of the CPU (the kernel's RT throttling,
 *   sched_rt_runtime_us) and be killed by the systemd watchdog, which the
 *   loop itself pings.
 */
#ifndef BFR_REALTIME_H
#define BFR_REALTIME_H

/* The highest priority accepted (SCHED_FIFO goes to 99; the kernel's own
 * threaded interrupt handlers run at 50 and must stay above the loop). */
#define REALTIME_PRIORITY_MAX 49

/*
 * Makes the calling thread SCHED_FIFO at priority (1..REALTIME_PRIORITY_MAX)
 * with SCHED_RESET_ON_FORK. 0, or -EINVAL (priority out of range), -EPERM
 * (neither CAP_SYS_NICE nor an RLIMIT_RTPRIO of at least priority; a
 * systemd unit grants it with LimitRTPRIO=), or another -errno of
 * sched_setscheduler; on failure the thread's policy is unchanged.
 */
int realtime_enter(int priority);

#endif
