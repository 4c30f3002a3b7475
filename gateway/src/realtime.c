/*
 * realtime.c - the event loop's thread as a real-time thread (realtime.h).
 */
#include "realtime.h"

#include <errno.h>
#include <sched.h>

int realtime_enter(int priority)
{
	struct sched_param sp = { .sched_priority = priority };

	if (priority < 1 || priority > REALTIME_PRIORITY_MAX)
		return -EINVAL;
	/* pid 0: the calling thread (the kernel schedules threads, not processes). */
	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
		return -errno;
	return 0;
}
