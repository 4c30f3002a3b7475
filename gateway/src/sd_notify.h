/*
 * sd_notify.h - tells systemd how the service is doing (Type=notify).
 *
 * Thin wrappers over libsystemd's sd_notify(3) and sd_watchdog_enabled(3):
 * READY=1 once the gateway supervises, STOPPING=1 when the orderly stop
 * begins, WATCHDOG=1 from a loop timer, so a hung event loop (the thread
 * that runs every safety check) makes systemd kill and restart the
 * service. Without systemd ($NOTIFY_SOCKET unset) every call does nothing
 * and returns 0.
 *
 * Return values: 1 sent, 0 nothing to send to (not under systemd), -errno.
 * The prefix is sdn_, not sd_, which is libsystemd's own namespace.
 */
#ifndef BFR_SD_NOTIFY_H
#define BFR_SD_NOTIFY_H

#include <stdint.h>

int sdn_ready(void);
int sdn_stopping(void);
int sdn_watchdog(void);
/* A free-form status line for `systemctl status` (STATUS=...). */
int sdn_status(const char *status);

/*
 * The watchdog interval systemd expects pings within ($WATCHDOG_USEC, for
 * this process): 1 and *usec_out set when enabled, 0 when not (*usec_out
 * untouched), -errno on a malformed environment. Ping at half of it.
 */
int sdn_watchdog_usec(uint64_t *usec_out);

#endif
