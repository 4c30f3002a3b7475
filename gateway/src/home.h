/*
 * home.h - home sessions (DESIGN section 11): the prescription, the starts
 * and stops a patient makes locally, and live supervision.
 *
 * The module owns:
 *  - the prescription in force (cmd/prescription/set and /clear): checked
 *    against the cuffs' limits like a session start (runner_check_plan),
 *    recorded (store) before it is used, published retained on
 *    `prescription` (an empty retained payload once cleared), read back
 *    from the database at start;
 *  - the local starts: a long press of a cuff's button or `ctl start`
 *    starts the prescribed plan, and nothing else, when the rules of
 *    logic/prescription.c allow it and runner_start accepts it; every
 *    refusal is logged, answered on the console and published on
 *    `home/event` with a sentence the patient can read. A press of the
 *    button of a cuff that is in a session (short, or held long), or
 *    `ctl stop`, stops that session (run_stop: the cuffs deflate);
 *  - live supervision: the clinician's retained presence on `supervisor`,
 *    judged together with the gateway's own MQTT connection and, on a home
 *    broker, the bridge's state (`bridge`, mosquitto's notification): a
 *    live session does not start without it, and when it is lost during
 *    one the session is paused (run_pause: the cuffs deflate) after
 *    home.supervisor_grace_s, and kept paused while it stays lost; only a
 *    clinician's session/resume resumes it;
 *  - the control socket (ctl.c), whose requests it answers.
 *
 * Button presses arrive inside the cuff's notification callback; they are
 * acted on in a loop post hook after the batch (docs/architecture.md, the
 * re-entrancy rule), never from inside the cuff. The module keeps no copy
 * of another module's state: which session is running is asked of the
 * runner (by the id this module started) and of the cuffs.
 *
 * Without the configuration's `home` group the module answers the
 * prescription commands with bad_state, ignores the buttons (logged) and
 * serves no socket. Loop thread only.
 */
#ifndef BFR_HOME_H
#define BFR_HOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "config.h"
#include "cuff.h"
#include "loop.h"
#include "payload.h"
#include "publisher.h"
#include "runner.h"
#include "store.h"

/* Local starts kept in memory for the rules (a day holds at most 10). */
#define HOME_STARTS_MAX 32

struct home;

struct home_deps {
	struct loop *loop;
	struct payload_ctx *ctx;
	const struct config *cfg;
	struct publisher *pub;
	struct runner *runner;
	struct store *store; /* NULL: nothing recorded, nothing restored */
	struct cuff *const *cuffs;
	size_t n_cuffs;
};

/* Restores the prescription and the recent local starts from the store
 * and, on a home gateway, listens on the control socket (a socket that
 * cannot be opened is logged; the gateway runs on without it). -errno. */
int home_new(const struct home_deps *deps, struct home **out);
void home_free(struct home *h);

/* cmd/prescription/set and cmd/prescription/clear: 0, or -errno with *err. */
int home_prescription_command(struct home *h, const struct command *cmd,
			      struct command_error *err);

/* A message on `supervisor` (the clinician's presence) and on `bridge`
 * (the home broker's bridge state, "1" or "0"). */
void home_supervisor_message(struct home *h, const uint8_t *payload, size_t len);
void home_bridge_state(struct home *h, const uint8_t *payload, size_t len);
/* The gateway's MQTT connection: re-publishes the retained prescription;
 * while disconnected no clinician can be watching. */
void home_connected(struct home *h);
void home_disconnected(struct home *h);

/* A press of a cuff's button (cuff_callbacks.on_button). */
void home_cuff_button(struct home *h, struct cuff *c, bool long_press);

/*
 * May a clinician's session/resume go ahead? -EPERM with *err (bad_state)
 * for a live home session whose clinician presence is lost: resuming it
 * would run it unwatched. 0 otherwise. (Whatever resumes it meanwhile is
 * paused again within a second.)
 */
int home_check_resume(struct home *h, const char *session_id, struct command_error *err,
		      const char *request_id);

/* Orderly stop: no more local starts; the control socket closes. */
void home_shutdown(struct home *h);

#endif
