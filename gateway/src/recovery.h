/*
 * recovery.h - what a gateway that stopped without warning (crash,
 * kill -9, power loss) left behind, put right at the next start.
 *
 *  - Alarm ids continue after the highest one recorded, so they never
 *    repeat (recovery_first_alarm_seq, before the alarm table exists).
 *  - A session that was running is closed as aborted (reason
 *    gateway_restart): its next event, a summary with its real start, its
 *    end at the time of its last record (event or state snapshot) and
 *    every finished set's figures from the database, and a final state.
 *  - Open alarms: an unacknowledged HIGH alarm latches across the restart
 *    (put back in the table, still blocking inflation until acknowledged);
 *    every other open alarm is closed (a condition still present is
 *    detected again and raised afresh).
 *  - What the broker sends on our alarm/+ topics is never acted on: the
 *    database holds open every alarm the broker may hold open for us
 *    (alarms.c records an open record before publishing it, publishes a
 *    closing one before recording it), so the close above, built from the
 *    database, reaches them all. A payload that is none of our records
 *    (foreign, forged, junk) is counted and logged, rate-limited; it adds
 *    no outbox row and publishes nothing.
 *
 * Reads the database synchronously: start-up only, except the retained-alarm
 * check, which reads nothing. Loop thread only.
 */
#ifndef BFR_RECOVERY_H
#define BFR_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "alarms.h"
#include "cuff.h"
#include "payload.h"
#include "publisher.h"
#include "store.h"

struct recovery;

struct recovery_deps {
	struct payload_ctx *ctx;
	struct publisher *pub;
	struct alarms *alarms;
	struct store *store; /* NULL: nothing to recover */
	struct cuff *const *cuffs;
	size_t n_cuffs;
};

/* The first alarm seq of this run: after the highest recorded one, or the
 * wall clock's ms for an empty (new, wiped) or missing database, which is
 * above any id an earlier run can have used. Not 1 on a new database: a
 * gateway cannot tell its first start from a reinstall, and the broker and
 * the clinic's records keep the earlier installation's ids (docs/safety.md). */
uint64_t recovery_first_alarm_seq(struct store *store, const char *gateway_id, uint64_t wall_ms);

int recovery_new(const struct recovery_deps *deps, struct recovery **out);
void recovery_free(struct recovery *rec);

/* Start-up, in this order, before the cuffs and MQTT start. */
void recovery_close_interrupted_sessions(struct recovery *rec);
void recovery_restore_alarms(struct recovery *rec);
/* Each cuff's last LOP, if it is still younger than its lop_max_age_s
 * (SR-15). Its age comes from the wall clock: a clock set back makes a
 * restored LOP look younger; one in the future is not restored. */
void recovery_restore_lops(struct recovery *rec);

/*
 * A message on alarm/{alarm_id} came from the broker (retained: delivered
 * because the broker holds it). Recognised (ours, or not: then a
 * rate-limited log line); nothing in it is trusted or acted on, with one
 * exception that follows only our own state: a retained record of an alarm
 * that this gateway raised or closed and whose id is not open in its table
 * gets the empty retained payload again. A broker that crashed can restart
 * from a persistence file saved before it took that removal (mosquitto saves
 * every autosave_interval), and would otherwise keep showing a closed alarm
 * to every dashboard that joins.
 */
void recovery_retained_alarm(struct recovery *rec, const char *alarm_id, const uint8_t *payload,
			     size_t len, bool retained);

#endif
