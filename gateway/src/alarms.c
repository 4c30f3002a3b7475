/* alarms.c - see alarms.h. */
#include "alarms.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "messages.h"

struct alarms {
	struct loop *loop;
	struct payload_ctx *ctx;
	struct publisher *pub;
	struct store *store;
	struct alarm_table *table;
	uint64_t first_seq;
	struct alarms_callbacks cb;
	void *user_data;

	/* Records to publish after the current batch of events. */
	struct alarm_record *queue;
	size_t n_queue, cap_queue;
	uint64_t flush_post;
};

struct alarm_table *alarms_table(struct alarms *a)
{
	return a->table;
}

static void record_history(struct alarms *a, const struct alarm_record *rec, json_t *values)
{
	char *text = json_dumps(values, JSON_COMPACT);
	struct store_alarm sa = {
		.alarm_id = rec->alarm_id,
		.cuff = rec->cuff[0] ? rec->cuff : NULL,
		.session_id = rec->session_id[0] ? rec->session_id : NULL,
		.code = alarm_code_name(rec->code),
		.priority = alarm_priority_name(rec->priority),
		.kind = alarm_kind_name(rec->kind),
		.state = alarm_state_name(rec->state),
		.condition_present = rec->condition_present,
		.raised_ms = (int64_t)rec->raised_at_ms,
		.acked_ms = (int64_t)rec->acked_at_ms,
		.acked_by = rec->acked_by[0] ? rec->acked_by : NULL,
		.cleared_ms = (int64_t)rec->cleared_at_ms,
		.message = rec->message,
		.values_json = text,
	};

	/* A full writer queue raises storage_error through the publisher's
	 * next outbox append; the record itself is retried by nobody. */
	if (store_alarm_record(a->store, &sa, (int64_t)payload_wall_ms(a->ctx), 0) < 0)
		log_error("alarm %s: history row not queued", rec->alarm_id);
	free(text);
}

/* A closed alarm: the record once (not retained), then the empty retained
 * payload that removes it. */
static void publish_closed(struct alarms *a, const char *alarm_id, json_t *record)
{
	char topic[TOPIC_MAX];

	if (payload_topic(a->ctx, topic, sizeof(topic), "alarm/%s", alarm_id) < 0)
		return;
	(void)publisher_qos1(a->pub, topic, record, 0);
	(void)publisher_qos1_raw(a->pub, topic, "", 0, OUTBOX_RETAIN, NULL);
}

/*
 * record: also append the change to the database's alarm history.
 *
 * The database holds open every alarm the broker may hold open for us, so
 * that a restart can close each of them from the database (recovery.c) and
 * never needs to trust what the broker sends back. The store commits in
 * queue order and a crash can fall between two rows: an open record is
 * therefore recorded before it is published, a closing one published
 * before it is recorded (a crash in between closes it once more at the
 * next start).
 */
static void publish(struct alarms *a, const struct alarm_record *rec, bool record)
{
	bool closing = rec->state == ALARM_STATE_CLEARED;
	char topic[TOPIC_MAX];
	json_t *p = msg_alarm(a->ctx, rec);

	if (!p) {
		log_error("alarm %s: out of memory, not published", rec->alarm_id);
		return;
	}
	if (a->store && record && !closing)
		record_history(a, rec, json_object_get(p, "values"));
	if (closing)
		publish_closed(a, rec->alarm_id, p);
	else if (payload_topic(a->ctx, topic, sizeof(topic), "alarm/%s", rec->alarm_id) == 0)
		(void)publisher_qos1(a->pub, topic, p, OUTBOX_RETAIN);
	if (a->store && record && closing)
		record_history(a, rec, json_object_get(p, "values"));
	json_decref(p);
}

static void publish_batch(struct alarms *a, const struct alarm_record *batch, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct alarm_record *rec = &batch[i];

		if (rec->priority >= ALARM_PRIO_MEDIUM)
			log_warn("alarm %s %s %s on %s: %s (%s)", rec->alarm_id,
				 alarm_priority_name(rec->priority), alarm_code_name(rec->code),
				 rec->cuff[0] ? rec->cuff : "gateway", rec->message,
				 alarm_state_name(rec->state));
		publish(a, rec, true);
	}
}

void alarms_flush(struct alarms *a)
{
	struct alarm_record *batch = a->queue;
	size_t n = a->n_queue;

	/* Publishing can raise an alarm (storage_error), which appends to the
	 * queue: take the batch off it first. */
	a->queue = NULL;
	a->n_queue = 0;
	a->cap_queue = 0;
	publish_batch(a, batch, n);
	free(batch);
}

/*
 * At most ALARMS_FLUSH_BATCH records per turn of the loop, the rest in the
 * next one (the hook again), after whatever io is ready: when every cuff
 * goes over the limit at once, 500 records (about 8 us each) published in
 * one hook kept the notifications still arriving, and their DEFLATEs,
 * waiting up to 4 ms (uprobes, 500 cuffs; docs/benchmarks.md). The order
 * is kept: the rest stays at the head of the queue, and a record raised
 * while this batch is published goes behind it.
 */
static void on_flush_post(struct loop *loop, void *user_data)
{
	struct alarms *a = user_data;
	struct alarm_record *batch;

	if (a->n_queue <= ALARMS_FLUSH_BATCH) {
		alarms_flush(a);
		return;
	}
	batch = malloc(ALARMS_FLUSH_BATCH * sizeof(*batch));
	if (!batch) {
		alarms_flush(a); /* all at once, then: late, but in order */
		return;
	}
	memcpy(batch, a->queue, ALARMS_FLUSH_BATCH * sizeof(*batch));
	a->n_queue -= ALARMS_FLUSH_BATCH;
	memmove(a->queue, a->queue + ALARMS_FLUSH_BATCH, a->n_queue * sizeof(*batch));
	(void)loop_post_schedule(loop, a->flush_post); /* registered in alarms_new */
	publish_batch(a, batch, ALARMS_FLUSH_BATCH);
	free(batch);
}

int alarms_queue(struct alarms *a, const struct alarm_record *rec)
{
	if (a->n_queue == a->cap_queue) {
		size_t cap = a->cap_queue ? 2 * a->cap_queue : 64;
		struct alarm_record *v = realloc(a->queue, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->queue = v;
		a->cap_queue = cap;
	}
	a->queue[a->n_queue++] = *rec;
	/* Cannot fail: the hook was registered in alarms_new. */
	(void)loop_post_schedule(a->loop, a->flush_post);
	return 0;
}

static void on_table_record(const struct alarm_record *rec, void *user_data)
{
	struct alarms *a = user_data;

	if (alarms_queue(a, rec) < 0) {
		/* No memory to defer it: publish what waits, then this, in order. */
		alarms_flush(a);
		publish(a, rec, true);
	}
	if (a->cb.on_record)
		a->cb.on_record(rec, a->user_data);
}

int alarms_new(struct loop *loop, struct payload_ctx *ctx, struct publisher *pub,
	       struct store *store, size_t n_cuffs, uint64_t first_seq,
	       const struct alarms_callbacks *cb, void *user_data, struct alarms **out)
{
	struct alarms *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->loop = loop;
	a->ctx = ctx;
	a->pub = pub;
	a->store = store;
	a->first_seq = first_seq;
	if (cb)
		a->cb = *cb;
	a->user_data = user_data;
	r = loop_post_new(loop, on_flush_post, a, &a->flush_post);
	if (r < 0)
		goto fail;
	r = alarm_table_new(ctx->gateway_id, alarm_table_capacity_for(n_cuffs), first_seq,
			    on_table_record, a, &a->table);
	if (r < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	loop_post_free(loop, a->flush_post);
	free(a);
	return r;
}

void alarms_free(struct alarms *a)
{
	if (!a)
		return;
	alarms_flush(a); /* into the outbox before it closes */
	loop_post_free(a->loop, a->flush_post);
	alarm_table_free(a->table);
	free(a);
}

void alarms_republish_open(struct alarms *a)
{
	size_t n = alarm_open_count(a->table);
	const struct alarm_record **open = n ? calloc(n, sizeof(*open)) : NULL;

	if (!open || alarm_list_open(a->table, NULL, open, n, &n) < 0) {
		free(open);
		return;
	}
	for (size_t i = 0; i < n; i++)
		publish(a, open[i], false); /* nothing changed: no history row */
	free(open);
}

bool alarms_raised_by_this_run(const struct alarms *a, const char *alarm_id)
{
	size_t plen = strlen(a->ctx->gateway_id);
	const char *seq = alarm_id + plen + 1;
	char *end;
	unsigned long long n;

	if (strncmp(alarm_id, a->ctx->gateway_id, plen) != 0 || alarm_id[plen] != '-' ||
	    *seq < '0' || *seq > '9')
		return false;
	errno = 0;
	n = strtoull(seq, &end, 10);
	return errno == 0 && *end == '\0' && n >= a->first_seq && n < alarm_next_seq(a->table);
}

void alarms_storage_error(struct alarms *a, bool present, const char *message)
{
	uint64_t wall = payload_wall_ms(a->ctx);

	/* Clearing with valid arguments cannot fail. */
	if (!present) {
		(void)alarm_condition_cleared(a->table, "", ALARM_STORAGE_ERROR, wall);
		return;
	}
	if (!alarm_find_open(a->table, "", ALARM_STORAGE_ERROR) &&
	    alarm_raise(a->table, "", NULL, ALARM_STORAGE_ERROR, message, NULL, wall, NULL) < 0)
		log_error("storage_error could not be raised (%s)", message ? message : "disk");
}

void alarms_broker_refused(struct alarms *a, bool present, const char *topic, int reason_code,
			   const char *reason)
{
	uint64_t wall = payload_wall_ms(a->ctx);
	struct alarm_values v = { NAN, NAN, reason_code, NAN };
	char msg[ALARM_MSG_MAX];

	if (!present) {
		(void)alarm_condition_cleared(a->table, "", ALARM_BROKER_REFUSED, wall); /* valid */
		return;
	}
	/* The message is cut at ALARM_MSG_MAX: the reason first, then the topic. */
	snprintf(msg, sizeof(msg), "broker refused (%s): %s", reason ? reason : "?",
		 topic ? topic : "?");
	if (alarm_raise(a->table, "", NULL, ALARM_BROKER_REFUSED, msg, &v, wall, NULL) < 0)
		log_error("broker_refused could not be raised");
}

void alarms_outbox_level(struct alarms *a, bool over)
{
	uint64_t wall = payload_wall_ms(a->ctx);
	bool open = alarm_find_open(a->table, "", ALARM_OUTBOX_FULL) != NULL;

	if (over && !open) {
		struct alarm_values v = { NAN, NAN, 100.0 * OUTBOX_ALARM_RATIO, NAN };

		if (alarm_raise(a->table, "", NULL, ALARM_OUTBOX_FULL, NULL, &v, wall, NULL) < 0)
			log_error("outbox_full could not be raised");
	} else if (!over && open) {
		(void)alarm_condition_cleared(a->table, "", ALARM_OUTBOX_FULL, wall);
	}
}
