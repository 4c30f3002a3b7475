/*
 * admission.c - see admission.h.
 *
 * Buckets count in thousandths of a command so the refill (RATE per second
 * = RATE thousandths per ms) is exact integer arithmetic: no drift, no
 * rounding that would let a steady flood through a little faster.
 */
#include "admission.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MILLI 1000u
#define FULL ((uint64_t)ADMISSION_BURST * MILLI)

struct requester {
	char key[ADMISSION_KEY_MAX];
	uint64_t milli_tokens;
	uint64_t last_ms;
	uint64_t heard_ms; /* last command, for choosing whom to forget */
};

struct admission {
	struct requester req[ADMISSION_REQUESTERS];
	size_t n_req;

	json_t *replies; /* request_id -> [verb, reply] */
	char *order[ADMISSION_REPLIES]; /* FIFO of the ids in replies */
	size_t order_head, order_count;
};

int admission_new(struct admission **out)
{
	struct admission *adm = calloc(1, sizeof(*adm));

	if (!adm)
		return -ENOMEM;
	adm->replies = json_object();
	if (!adm->replies) {
		free(adm);
		return -ENOMEM;
	}
	*out = adm;
	return 0;
}

void admission_free(struct admission *adm)
{
	if (!adm)
		return;
	for (size_t i = 0; i < adm->order_count; i++)
		free(adm->order[(adm->order_head + i) % ADMISSION_REPLIES]);
	json_decref(adm->replies);
	free(adm);
}

static struct requester *find_or_take(struct admission *adm, const char *key, uint64_t now_ms)
{
	struct requester *quietest = NULL, *r;

	for (size_t i = 0; i < adm->n_req; i++) {
		r = &adm->req[i];
		if (strncmp(r->key, key, sizeof(r->key) - 1) == 0)
			return r;
		if (!quietest || r->heard_ms < quietest->heard_ms)
			quietest = r;
	}
	r = adm->n_req < ADMISSION_REQUESTERS ? &adm->req[adm->n_req++] : quietest;
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->milli_tokens = FULL;
	r->last_ms = now_ms;
	return r;
}

bool admission_take(struct admission *adm, const char *requester, uint64_t now_ms)
{
	struct requester *r = find_or_take(adm, requester ? requester : "", now_ms);

	if (now_ms > r->last_ms) {
		uint64_t elapsed = now_ms - r->last_ms;

		/* Capped before multiplying: a long silence must not overflow. */
		if (elapsed >= FULL / ADMISSION_RATE_PER_S)
			r->milli_tokens = FULL;
		else
			r->milli_tokens += elapsed * ADMISSION_RATE_PER_S;
		if (r->milli_tokens > FULL)
			r->milli_tokens = FULL;
		r->last_ms = now_ms;
	}
	r->heard_ms = now_ms;
	if (r->milli_tokens < MILLI)
		return false;
	r->milli_tokens -= MILLI;
	return true;
}

int admission_remember(struct admission *adm, const char *request_id, const char *verb,
		       const char *reply)
{
	json_t *entry;
	char *id;

	if (!request_id || !request_id[0] || !verb || !reply)
		return -EINVAL;
	if (json_object_get(adm->replies, request_id))
		return -EEXIST;
	id = strdup(request_id);
	entry = json_pack("[s,s]", verb, reply);
	/* Added before the oldest is dropped: a failure leaves all as it was. */
	if (!id || !entry) {
		free(id);
		json_decref(entry);
		return -ENOMEM;
	}
	if (json_object_set_new(adm->replies, request_id, entry) < 0) {
		free(id); /* json_object_set_new released entry */
		return -ENOMEM;
	}
	if (adm->order_count == ADMISSION_REPLIES) {
		char *oldest = adm->order[adm->order_head];

		(void)json_object_del(adm->replies, oldest); /* present: cannot fail */
		free(oldest);
		adm->order[adm->order_head] = id;
		adm->order_head = (adm->order_head + 1) % ADMISSION_REPLIES;
	} else {
		adm->order[(adm->order_head + adm->order_count) % ADMISSION_REPLIES] = id;
		adm->order_count++;
	}
	return 0;
}

const char *admission_reply(const struct admission *adm, const char *request_id,
			    const char **verb)
{
	json_t *entry = request_id ? json_object_get(adm->replies, request_id) : NULL;

	if (!entry)
		return NULL;
	if (verb)
		*verb = json_string_value(json_array_get(entry, 0));
	return json_string_value(json_array_get(entry, 1));
}

size_t admission_n_replies(const struct admission *adm)
{
	return adm->order_count;
}
