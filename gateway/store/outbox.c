/* outbox.c - see outbox.h. */
#include "outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Entries form one list in send order. Invariant: the committed entries (id >
 * 0) come first, in id order, then the committing ones (id == 0) in append
 * order, starting at first_pending. This holds because the store commits and
 * reports in enqueue order, so each append completion belongs to
 * first_pending.
 */
struct entry {
	struct entry *prev, *next;
	struct entry *hprev, *hnext; /* bucket chain of the coalescing index */
	uint64_t tag;
	uint32_t hash;	 /* of row.topic, for the coalescing index */
	bool indexed;	 /* in the coalescing index (see below) */
	bool handed;	 /* returned by outbox_next: never coalesced */
	bool superseded; /* coalesced while committing: delete once committed */
	size_t bytes;
	struct outbox_row row;
	char data[];
};

/*
 * Coalescing index: every entry that a newer snapshot on its topic may still
 * replace (droppable, retained, not handed, not superseded) is in the bucket
 * of its topic's hash, so an append looks at the few entries of its own
 * topic instead of scanning the whole list (O(depth) per snapshot made a
 * burst of 500 cuff states with the broker down quadratic: docs/benchmarks.md).
 */
#define INDEX_BUCKETS 1024 /* power of two; ~one topic per bucket at 500 cuffs */

struct outbox {
	struct store *store;
	size_t max_bytes;
	struct entry *head, *tail, *first_pending;
	struct entry *index[INDEX_BUCKETS];
	uint64_t next_tag;
	outbox_ready_fn ready_fn;
	void *ready_data;
	struct outbox_stats stats;
};

int outbox_new(struct store *store, size_t max_bytes, struct outbox **out)
{
	struct outbox *ob;

	if (!store || !max_bytes || !out)
		return -EINVAL;
	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	ob->store = store;
	ob->max_bytes = max_bytes;
	ob->next_tag = 1;
	*out = ob;
	return 0;
}

void outbox_free(struct outbox *ob)
{
	struct entry *e, *next;

	if (!ob)
		return;
	for (e = ob->head; e; e = next) {
		next = e->next;
		free(e);
	}
	free(ob);
}

void outbox_set_ready_cb(struct outbox *ob, outbox_ready_fn fn, void *user_data)
{
	ob->ready_fn = fn;
	ob->ready_data = user_data;
}

static size_t row_bytes(const char *topic, size_t len, const char *msg_id)
{
	return strlen(topic) + len + (msg_id ? strlen(msg_id) : 0);
}

static uint32_t topic_hash(const char *topic)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static void index_add(struct outbox *ob, struct entry *e)
{
	struct entry **b;

	if (e->indexed || !e->row.droppable || !e->row.retain || e->handed || e->superseded)
		return;
	b = &ob->index[e->hash & (INDEX_BUCKETS - 1)];
	e->hprev = NULL;
	e->hnext = *b;
	if (*b)
		(*b)->hprev = e;
	*b = e;
	e->indexed = true;
}

static void index_del(struct outbox *ob, struct entry *e)
{
	if (!e->indexed)
		return;
	if (e->hprev)
		e->hprev->hnext = e->hnext;
	else
		ob->index[e->hash & (INDEX_BUCKETS - 1)] = e->hnext;
	if (e->hnext)
		e->hnext->hprev = e->hprev;
	e->hprev = e->hnext = NULL;
	e->indexed = false;
}

static int entry_new(const char *topic, const void *payload, size_t len, int qos, bool retain,
		     bool droppable, const char *msg_id, int64_t created_ms, struct entry **out)
{
	size_t tlen = strlen(topic) + 1, mlen = msg_id ? strlen(msg_id) + 1 : 0;
	struct entry *e = malloc(sizeof(*e) + tlen + mlen + len);
	char *p;

	if (!e)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	p = e->data;
	memcpy(p, topic, tlen);
	e->row.topic = p;
	p += tlen;
	if (msg_id) {
		memcpy(p, msg_id, mlen);
		e->row.msg_id = p;
		p += mlen;
	}
	if (len)
		memcpy(p, payload, len);
	e->row.payload = p;
	e->row.len = len;
	e->row.qos = qos;
	e->row.retain = retain;
	e->row.droppable = droppable;
	e->row.created_ms = created_ms;
	e->bytes = row_bytes(topic, len, msg_id);
	e->hash = topic_hash(topic);
	*out = e;
	return 0;
}

static void link_tail(struct outbox *ob, struct entry *e)
{
	e->prev = ob->tail;
	e->next = NULL;
	if (ob->tail)
		ob->tail->next = e;
	else
		ob->head = e;
	ob->tail = e;
}

static void unlink_entry(struct outbox *ob, struct entry *e)
{
	index_del(ob, e);
	if (ob->first_pending == e)
		ob->first_pending = e->next;
	if (e->prev)
		e->prev->next = e->next;
	else
		ob->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		ob->tail = e->prev;
}

/* Stops counting e as held (it is coalesced or gone). */
static void uncount(struct outbox *ob, struct entry *e)
{
	ob->stats.depth--;
	ob->stats.bytes -= e->bytes;
}

static int load_row(const struct store_outbox_row *r, void *user_data)
{
	struct outbox *ob = user_data;
	struct entry *e;
	int ret;

	ret = entry_new(r->topic, r->payload, r->len, r->qos, r->retain, r->droppable, r->msg_id,
			r->created_ms, &e);
	if (ret < 0)
		return ret;
	e->row.id = r->id;
	link_tail(ob, e);
	index_add(ob, e);
	ob->stats.depth++;
	ob->stats.bytes += e->bytes;
	return 0;
}

int outbox_load_pending(struct outbox *ob)
{
	int ret;

	if (ob->head)
		return -EBUSY;
	ret = store_outbox_load(ob->store, load_row, ob);
	if (ret < 0) {
		/* All or nothing: a half-loaded outbox would send a gap. */
		struct entry *e, *next;

		for (e = ob->head; e; e = next) {
			next = e->next;
			free(e);
		}
		ob->head = ob->tail = NULL;
		memset(ob->index, 0, sizeof(ob->index));
		ob->stats.depth = ob->stats.bytes = 0;
	}
	return ret;
}

/*
 * Older never-handed droppable retained rows on topic: how many bytes
 * coalescing would free. Looks only at the index bucket of the topic.
 */
static size_t coalescible_bytes(const struct outbox *ob, const char *topic, uint32_t hash)
{
	const struct entry *e;
	size_t bytes = 0;

	for (e = ob->index[hash & (INDEX_BUCKETS - 1)]; e; e = e->hnext) {
		if (e->hash == hash && !strcmp(e->row.topic, topic))
			bytes += e->bytes;
	}
	return bytes;
}

static void coalesce(struct outbox *ob, const char *topic, uint32_t hash)
{
	struct entry *e, *next;

	for (e = ob->index[hash & (INDEX_BUCKETS - 1)]; e; e = next) {
		next = e->hnext;
		if (e->hash != hash || strcmp(e->row.topic, topic))
			continue;
		if (!e->row.id) {
			/* Its id is not known yet: delete it when its commit is reported. */
			index_del(ob, e);
			e->superseded = true;
			uncount(ob, e);
			ob->stats.coalesced++;
			continue;
		}
		/* If the DELETE cannot be queued the older row simply stays: it is
		 * still a valid (older) state and will be sent before the new one. */
		if (store_outbox_delete(ob->store, e->row.id, 0) < 0)
			continue;
		uncount(ob, e);
		unlink_entry(ob, e);
		free(e);
		ob->stats.coalesced++;
	}
}

int outbox_append(struct outbox *ob, const char *topic, const void *payload, size_t len,
		  int qos, unsigned flags, const char *msg_id, int64_t created_ms)
{
	bool retain = flags & OUTBOX_RETAIN, droppable = flags & OUTBOX_DROPPABLE;
	struct store_outbox_msg m;
	struct entry *e;
	size_t bytes, freed = 0;
	uint32_t hash = 0;
	int ret;

	if (!ob || !topic || !*topic || (len && !payload) || (flags & ~3u) ||
	    (droppable && !retain) || qos < 0 || qos > 2)
		return -EINVAL;
	bytes = row_bytes(topic, len, msg_id);
	if (droppable) {
		hash = topic_hash(topic);
		freed = coalescible_bytes(ob, topic, hash);
		if (ob->stats.bytes - freed + bytes > ob->max_bytes) {
			ob->stats.refused++;
			return -ENOBUFS;
		}
	}
	ret = entry_new(topic, payload, len, qos, retain, droppable, msg_id, created_ms, &e);
	if (ret < 0)
		return ret;
	e->tag = ob->next_tag;
	m = (struct store_outbox_msg){ .topic = topic, .payload = payload, .len = len, .qos = qos,
				       .retain = retain, .droppable = droppable,
				       .msg_id = msg_id, .created_ms = created_ms };
	ret = store_outbox_insert(ob->store, &m, e->tag);
	if (ret < 0) {
		free(e);
		return ret;
	}
	ob->next_tag++;
	/* Coalesce only once the new row is safely queued: never lose both. */
	if (freed)
		coalesce(ob, topic, hash);
	link_tail(ob, e);
	index_add(ob, e);
	if (!ob->first_pending)
		ob->first_pending = e;
	ob->stats.depth++;
	ob->stats.bytes += e->bytes;
	ob->stats.committing++;
	return 0;
}

bool outbox_handle_completion(struct outbox *ob, const struct store_completion *c)
{
	struct entry *e;

	if (c->kind != STORE_DONE_COMMITTED && c->kind != STORE_DONE_REJECTED)
		return false;
	if (c->rec == STORE_REC_OUTBOX_DELETE)
		return true;
	if (c->rec != STORE_REC_OUTBOX_APPEND)
		return false;
	e = ob->first_pending;
	if (!e || e->tag != c->tag)
		return true; /* not one of ours (e.g. inserted past the outbox) */
	ob->first_pending = e->next;
	ob->stats.committing--;
	if (c->kind == STORE_DONE_REJECTED) {
		ob->stats.failed++;
		if (!e->superseded)
			uncount(ob, e);
		unlink_entry(ob, e);
		free(e);
		return true;
	}
	e->row.id = c->row_id;
	if (e->superseded) {
		if (store_outbox_delete(ob->store, e->row.id, 0) < 0) {
			/* Keep it visible rather than leave an orphan row on disk
			 * that would be sent after a restart anyway. */
			e->superseded = false;
			index_add(ob, e);
			ob->stats.depth++;
			ob->stats.bytes += e->bytes;
		} else {
			unlink_entry(ob, e);
			free(e);
			return true;
		}
	}
	if (ob->ready_fn)
		ob->ready_fn(ob, ob->ready_data);
	return true;
}

int outbox_next(struct outbox *ob, int64_t after_id, size_t max,
		const struct outbox_row **rows, size_t *n)
{
	struct entry *e;
	size_t count = 0;

	if (!ob || (max && !rows) || !n)
		return -EINVAL;
	for (e = ob->head; e && e != ob->first_pending && count < max; e = e->next) {
		if (e->row.id <= after_id || e->superseded)
			continue;
		e->handed = true;
		index_del(ob, e);
		rows[count++] = &e->row;
	}
	*n = count;
	return 0;
}

const struct outbox_row *outbox_get(const struct outbox *ob, int64_t id)
{
	/* Rows refused by the broker are the oldest ones: a walk from the head. */
	for (const struct entry *e = ob ? ob->head : NULL; e && e != ob->first_pending;
	     e = e->next)
		if (e->row.id == id && !e->superseded)
			return &e->row;
	return NULL;
}

int outbox_ack(struct outbox *ob, int64_t id)
{
	struct entry *e;

	if (!ob || id <= 0)
		return -EINVAL;
	for (e = ob->head; e && e != ob->first_pending; e = e->next) {
		if (e->row.id == id)
			break;
	}
	if (!e || e == ob->first_pending)
		return -ENOENT;
	/* The message is delivered whatever happens to the DELETE: if it cannot
	 * be queued the row is resent after a restart (at-least-once). */
	if (store_outbox_delete(ob->store, id, 0) < 0)
		ob->stats.delete_failed++;
	uncount(ob, e);
	unlink_entry(ob, e);
	free(e);
	return 0;
}

size_t outbox_depth(const struct outbox *ob)
{
	return ob->stats.depth;
}

size_t outbox_bytes(const struct outbox *ob)
{
	return ob->stats.bytes;
}

double outbox_fill_ratio(const struct outbox *ob)
{
	return (double)ob->stats.bytes / (double)ob->max_bytes;
}

bool outbox_over_alarm_level(const struct outbox *ob)
{
	return outbox_fill_ratio(ob) >= OUTBOX_ALARM_RATIO;
}

void outbox_get_stats(const struct outbox *ob, struct outbox_stats *out)
{
	*out = ob->stats;
}
