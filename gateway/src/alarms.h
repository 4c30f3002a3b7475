/*
 * alarms.h - the gateway's alarms: the alarm table (gateway/logic/alarm.c),
 * the batch of records waiting to be published, and the technical alarms
 * about storage (storage_error, outbox_full).
 *
 * Anyone may raise, clear or acknowledge through the table
 * (alarms_table()): it changes synchronously, so every later decision (may
 * this cuff inflate? is a HIGH alarm unacknowledged?) sees it at once. Each
 * change the table reports is handed to the owner's on_record callback at
 * once (to mark a cuff's state dirty, to note it in a session) and queued;
 * the queue is published (alarm/{id}, retained while open; closing record
 * then an empty retained payload) and recorded in the database after the
 * current batch of events, by a loop post hook, ALARMS_FLUSH_BATCH per turn
 * of the loop, so building JSON for many cuffs never delays the next
 * cuff's safety check by more than one batch. alarms_flush() publishes
 * the queue at once, for a message that must not overtake an alarm record.
 *
 * Ids are "<gateway>-<seq>"; the first seq comes from the caller (crash
 * recovery continues after the highest one recorded).
 */
#ifndef BFR_ALARMS_H
#define BFR_ALARMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarm.h"
#include "loop.h"
#include "payload.h"
#include "publisher.h"
#include "store.h"

/* Records published per turn of the loop by the post hook (the rest next turn). */
#define ALARMS_FLUSH_BATCH 64

struct alarms;

struct alarms_callbacks {
	/* Every change of a record, as the table reports it (valid during the call). */
	void (*on_record)(const struct alarm_record *rec, void *user_data);
};

/* store may be NULL. -errno. */
int alarms_new(struct loop *loop, struct payload_ctx *ctx, struct publisher *pub,
	       struct store *store, size_t n_cuffs, uint64_t first_seq,
	       const struct alarms_callbacks *cb, void *user_data, struct alarms **out);
/* Publishes what is still queued, then frees. */
void alarms_free(struct alarms *a);

struct alarm_table *alarms_table(struct alarms *a);

/* Publishes the queued records now. */
void alarms_flush(struct alarms *a);
/* Queues a record that did not come from the table (closed at start-up). */
int alarms_queue(struct alarms *a, const struct alarm_record *rec);
/* Re-publishes every open alarm without a history row (a broker without
 * persistence forgets retained messages when it restarts). */
void alarms_republish_open(struct alarms *a);
/* An id this run raised (its seq is past the first one of this run). */
bool alarms_raised_by_this_run(const struct alarms *a, const char *alarm_id);

/* storage_error: the database is unusable (raised at start), the disk fails
 * (present) or recovered, or the outbox refused a message. */
void alarms_storage_error(struct alarms *a, bool present, const char *message);
/* broker_refused: the broker refuses messages (present, naming the first
 * refused topic and its PUBACK reason; values.limit is the reason code), or
 * everything it refused has been delivered since. */
void alarms_broker_refused(struct alarms *a, bool present, const char *topic, int reason_code,
			   const char *reason);
/* outbox_full: follows the outbox's fill level. */
void alarms_outbox_level(struct alarms *a, bool over);

#endif
