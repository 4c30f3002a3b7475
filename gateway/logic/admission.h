/*
 * admission.h - which commands the gateway reads at all, and which it has
 * answered already (SR-27, SR-28). Pure: the time is passed in, no I/O.
 *
 * - A budget per requester: a token bucket of ADMISSION_BURST commands,
 *   refilled at ADMISSION_RATE_PER_S. A requester is a key the caller
 *   chooses (the wiring uses the reply inbox: MQTT does not say who
 *   published). At most ADMISSION_REQUESTERS are tracked; a new one takes
 *   the slot of the one heard from least recently, with a full bucket, so
 *   memory is bounded and a flood from many keys still costs each key its
 *   own budget.
 * - The replies given, by request_id: a command delivered again is answered
 *   with its first reply and not run again. The last ADMISSION_REPLIES are
 *   kept; the oldest goes first.
 *
 * Invariants: the bucket never holds more than ADMISSION_BURST nor less
 * than 0; a clock that goes back refills nothing; a failed call changes
 * nothing.
 */
#ifndef BFR_ADMISSION_H
#define BFR_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADMISSION_REQUESTERS 64
#define ADMISSION_RATE_PER_S 50
#define ADMISSION_BURST 100
#define ADMISSION_REPLIES 1024
#define ADMISSION_KEY_MAX 256 /* longer requester keys are cut (still distinct up to here) */

struct admission;

int admission_new(struct admission **out);
void admission_free(struct admission *adm);

/* Takes one command from requester's budget at now_ms: true if it may be
 * read, false (nothing taken) when its bucket is empty. */
bool admission_take(struct admission *adm, const char *requester, uint64_t now_ms);

/* Remembers the reply (JSON text) given to request_id for verb. 0, -EINVAL
 * (empty id or NULL), -EEXIST (already remembered: the first reply stands),
 * -ENOMEM (nothing changed). */
int admission_remember(struct admission *adm, const char *request_id, const char *verb,
		       const char *reply);

/* The reply given to request_id, or NULL; *verb (if not NULL) gets the verb
 * it was given for. Valid until the next admission_remember/free. */
const char *admission_reply(const struct admission *adm, const char *request_id,
			    const char **verb);

/* Replies remembered now (≤ ADMISSION_REPLIES). */
size_t admission_n_replies(const struct admission *adm);

#endif
