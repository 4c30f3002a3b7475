/*
 * wiring.h - the gateway's wiring assembled for unit tests: a fake clock,
 * scripted cuffs (gatt_peer) and the modules below the daemon (publisher
 * without a broker, alarms, cuffs, runner), connected the way gateway.c
 * connects them. The fan-out records what each notification carried and
 * when, so a test can check the order of things on the receive path.
 */
#ifndef BFR_TEST_WIRING_H
#define BFR_TEST_WIRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarms.h"
#include "config.h"
#include "cuff.h"
#include "gatt_peer.h"
#include "loop.h"
#include "payload.h"
#include "publisher.h"
#include "runner.h"

#define WIRING_MAX_CUFFS 4
#define WIRING_LOG_MAX 4096

struct wiring {
	uint64_t now;
	struct loop *loop;
	char dir[64];
	struct config *cfg;
	struct payload_ctx ctx;
	struct publisher *pub;
	struct alarms *alarms;
	struct transport_sched *sched;
	struct cuff *cuffs[WIRING_MAX_CUFFS];
	size_t n_cuffs;
	struct gatt_peer peers[WIRING_MAX_CUFFS];
	struct runner *runner;

	/* What went up, in order: "deflate <cuff> <why> p=<last pressure>",
	 * "samples <cuff> <n>", "ended <id> <outcome> <reason>",
	 * "alarm <code> <cuff> <session>", "button <cuff> long|short". */
	char log[WIRING_LOG_MAX][128];
	size_t n_log;
	char ended_outcome[16], ended_reason[64];
	bool quiet_samples; /* long runs: no "samples" lines (the log is bounded) */
	/* Where a test sends button presses on ("button <cuff> long|short" is
	 * logged either way). */
	void (*on_button)(struct wiring *w, struct cuff *c, bool long_press);
};

/* n_cuffs cuffs "c1".."cN" (legs), each with its peer; extra_cfg is added
 * to the configuration file (e.g. limits). */
void wiring_setup(struct wiring *w, size_t n_cuffs, const char *extra_cfg);
void wiring_teardown(struct wiring *w);
/* Starts every cuff and runs until all are READY. */
void wiring_connect(struct wiring *w);
/* Runs loop iterations (no waiting) until cond() holds; fails after 500. */
void wiring_run_until(struct wiring *w, bool (*cond)(struct wiring *w));
/* Runs a few iterations: everything already in the sockets is handled. */
void wiring_settle(struct wiring *w);
/* Advances the fake clock by ms in steps of step_ms, settling at each. */
void wiring_advance(struct wiring *w, uint64_t ms, uint64_t step_ms);
/* A session/start command for plan JSON (the "plan" object's text). */
int wiring_start(struct wiring *w, const char *plan_json, char *session_id,
		 struct command_error *err);
/* Index of the first log line starting with prefix at or after from, or -1. */
long wiring_find(const struct wiring *w, size_t from, const char *prefix);

#endif
