/*
 * runner.h - runs exercise sessions (gateway/logic/session.c) on real cuffs.
 *
 * One struct run per session: it lends the plan's cuffs to the session
 * (cuff_attach), feeds the session its inputs (pressure samples, LOP
 * results, its timer, pause/resume/stop/abort, alarm notes), executes what
 * each call returns - actions through the cuffs, events published through
 * the outbox and recorded - and, once the session ended, releases the cuffs
 * and publishes the final state and the summary.
 *
 * Re-entrancy (the daemon's one rule, docs/architecture.md): a pure module
 * is never re-entered, because it returns its output instead of calling
 * out; the caller executes the output after the call. While a run executes
 * an output (a DEFLATE it sends can make the safety engine raise an alarm;
 * a refused SET_TARGET asks for an abort), whatever must reach the session
 * is held in the run - an abort request, alarm ids to note - and fed after
 * the output, in that order. Alarm notes also wait when the run is idle,
 * for its next input or the end of the batch of events, so they never run
 * inside another module's callback: the samples of a notification all reach
 * the safety engine before any session work.
 *
 * A SET_TARGET is only sent when the safety engine agrees: the targets of
 * one step (both cuffs of a bilateral exercise) are checked together
 * before either is sent, and a refusal sends neither and aborts the session
 * (limit_exceeded). Loop thread only.
 */
#ifndef BFR_RUNNER_H
#define BFR_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarms.h"
#include "command.h"
#include "cuff.h"
#include "log.h"
#include "loop.h"
#include "payload.h"
#include "publisher.h"
#include "session.h"
#include "store.h"

struct runner;
struct run;

struct runner_callbacks {
	/* A session ended (after its summary was published): outcome
	 * "completed" | "stopped" | "aborted", reason "" or a code. */
	void (*on_ended)(const char *session_id, const char *outcome, const char *reason,
			 void *user_data);
};

struct runner_deps {
	struct loop *loop;
	struct payload_ctx *ctx;
	struct publisher *pub;
	struct alarms *alarms;
	struct store *store; /* NULL: nothing recorded */
	struct cuff *const *cuffs;
	size_t n_cuffs;
	unsigned deflate_timeout_ms;
	struct runner_callbacks cb; /* optional */
	void *user_data;
};

int runner_new(const struct runner_deps *deps, struct runner **out);
/* Frees every run; sessions still running are not ended (see runner_stop_all). */
void runner_free(struct runner *r);

/*
 * session/start: checks every cuff of the plan (known, free, allowed to
 * inflate, prescription within its limits), then starts the session.
 * 0 with the new id in session_id_out (SESSION_ID_BUF); -errno with *err.
 */
int runner_start(struct runner *r, const struct command *cmd, struct command_error *err,
		 char *session_id_out);
/* A session that has not ended, or NULL. */
struct run *runner_find(struct runner *r, const char *session_id);
/* Ends every running session as stopped (orderly shutdown). */
void runner_stop_all(struct runner *r);
/* Publishes the retained state of every session (housekeeping, reconnect). */
void runner_publish_states(struct runner *r);
/* Ids of the sessions running now (not ended), at most max in ids; returns
 * how many there are. Valid until the next loop turn. */
size_t runner_active(const struct runner *r, const char **ids, size_t max);

const char *run_id(const struct run *run);
#define run_log(run, level, ...) log_obj(level, "session", run_id(run), __VA_ARGS__)

/* 0, or -EBUSY when the session's state does not allow it. */
int run_pause(struct run *run);
/* Also -EPERM with *err when a cuff the resumed phase inflates may not inflate. */
int run_resume(struct run *run, struct command_error *err, const char *request_id);
int run_stop(struct run *run);
/* Who stops or e-stops it and why ("" or NULL: not said), recorded with its
 * end event and summary; call before run_stop / run_abort. */
void run_note_who(struct run *run, const char *by, const char *note);
/* Deflates (deflate_reason) and ends the session as aborted with reason_code.
 * BFR_DEFLATE_ESTOP: the open gateway-wide estop alarm (raised first if it
 * is not open yet) is named by the aborted event and listed in the summary. */
void run_abort(struct run *run, const char *reason_code, uint8_t deflate_reason);

/* What the cuffs report, for the session they are lent to (if any). */
void runner_cuff_samples(struct runner *r, struct cuff *c, const struct bfr_sample *samples,
			 size_t n);
void runner_cuff_safety_deflate(struct runner *r, struct cuff *c, const char *why,
				uint8_t deflate_reason);
void runner_cuff_link_lost(struct runner *r, struct cuff *c);
void runner_cuff_lop_result(struct runner *r, struct cuff *c, bool ok, double lop_mmhg);
void runner_cuff_target_failed(struct runner *r, struct cuff *c, const char *why);
/* An alarm record changed: an active alarm of a cuff's session is noted in it. */
void runner_alarm_record(struct runner *r, const struct alarm_record *rec);

/*
 * The checks of a plan that do not depend on the moment (a prescription,
 * issue 11): every cuff is configured (unknown_cuff), pct_lop within its
 * limb's max_pct_lop and, with a valid LOP, the target within its ceiling
 * (limit_exceeded), and the plan's times within max_inflation_s,
 * session_total_s and min_reperfusion_s (SR-26). Whether the cuffs may
 * inflate now is runner_start's business. 0, or -errno with *err.
 */
int runner_check_plan(struct runner *r, const struct session_plan *plan,
		      struct command_error *err, const char *request_id);
/* The session's state now (session_get_state). -errno. */
int run_state(struct run *run, struct session_state *out);

#endif
