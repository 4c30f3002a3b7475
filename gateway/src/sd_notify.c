/* sd_notify.c - see sd_notify.h. */
#include "sd_notify.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>

/* unset_environment = 0: children (there are none) and later calls keep it. */
int sdn_ready(void)
{
	return sd_notify(0, "READY=1");
}

int sdn_stopping(void)
{
	return sd_notify(0, "STOPPING=1");
}

int sdn_watchdog(void)
{
	return sd_notify(0, "WATCHDOG=1");
}

int sdn_status(const char *status)
{
	return sd_notifyf(0, "STATUS=%s", status ? status : "");
}

int sdn_watchdog_usec(uint64_t *usec_out)
{
	uint64_t usec = 0;
	int r = sd_watchdog_enabled(0, &usec);

	if (r > 0)
		*usec_out = usec;
	return r;
}
