/*
 * reporter.h - what the gateway tells dashboards about itself and its
 * cuffs, on its own schedule: telemetry (QoS 0, at telemetry_hz, in slices),
 * each cuff's retained state (a snapshot: QoS 0, refreshed every second in
 * the telemetry slices, at most 5 publishes a second, a discrete change
 * within 200 ms, expiring REPORTER_STATE_EXPIRY_S after the last one so a
 * dead gateway's cuffs do not look connected; link "unknown" when it stops),
 * the retained index of running sessions, the gateway's status, and the 1 s
 * housekeeping (session states, outbox level alarm, status on a backlog
 * change).
 *
 * It only copies: samples into telemetry buffers, "something changed" into
 * dirty flags. Nothing it does runs inside the receive path beyond that;
 * the JSON is built from timers and the post hook. Loop thread only.
 */
#ifndef BFR_REPORTER_H
#define BFR_REPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarms.h"
#include "config.h"
#include "cuff.h"
#include "loop.h"
#include "payload.h"
#include "publisher.h"
#include "runner.h"

#define REPORTER_TELEMETRY_SLICE_MS 1 /* telemetry goes out in slices of the cuffs, one
					* every 1 ms: period / 1 ms slices per period */
#define REPORTER_STATE_MIN_MS 200    /* cuff state: at most 5 publishes/s per cuff */
#define REPORTER_HOUSEKEEPING_MS 1000
#define REPORTER_STATE_REFRESH_MS 1000 /* cuff state: at least once a second */
#define REPORTER_STATE_BATCH 64        /* dirty cuff states published per loop turn */
#define REPORTER_STATE_EXPIRY_S 10     /* ...and gone from the broker 10 s after the last */

struct reporter;

struct reporter_deps {
	struct loop *loop;
	struct payload_ctx *ctx;
	const struct config *cfg;
	struct publisher *pub;
	struct alarms *alarms;
	struct runner *runner;
	struct cuff *const *cuffs;
	size_t n_cuffs;
	uint64_t started_wall_ms;
};

int reporter_new(const struct reporter_deps *deps, struct reporter **out);
void reporter_free(struct reporter *rep);
/* Starts telemetry and housekeeping. */
int reporter_start(struct reporter *rep);
/* Stops everything periodic (orderly shutdown); copies are still taken. */
void reporter_stop(struct reporter *rep);

/* From the cuffs (through the daemon). */
void reporter_cuff_samples(struct reporter *rep, struct cuff *c, const struct bfr_sample *samples,
			   size_t n);
void reporter_cuff_changed(struct reporter *rep, struct cuff *c, bool urgent);
/* A gateway-wide alarm (no cuff) opened or closed: every cuff's state lists
 * it (alarms_active), so every one is republished. The 1 s housekeeping
 * notices such a change by itself; calling this makes it within 200 ms. */
void reporter_gateway_alarms_changed(struct reporter *rep, bool urgent);

/* After every (re)connect: the retained state again (clean start). */
void reporter_connected(struct reporter *rep);
/* cmd/snapshot: everything the reporter keeps retained, published again. */
void reporter_snapshot(struct reporter *rep);

/* status as JSON text ("online" / "offline", the Last Will); free() it. */
char *reporter_status_text(struct reporter *rep, const char *state);

#endif
