/* outbox.c - see outbox.h. */
#include "outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Where a row is, in the order of its life:
 *
 *   committing  appended, commit not yet reported: an entry on `committing`,
 *               in append order, which is commit order (the store reports in
 *               enqueue order, so each append completion is for the head). It
 *               holds its topic, payload and msg_id ("loaded") while the
 *               window's bounds leave room, so that it can join the window at
 *               its commit if the backlog is empty by then; else just its size.
 *   window      committed and in memory, payload included: an entry on
 *               `window`, in id order; either handed out by outbox_next() and
 *               not yet acknowledged, or ahead (not handed out yet).
 *   backlog     committed, on disk only: counted, not held. Read back into
 *               the window, in id order, by store_outbox_read() when fewer
 *               than OUTBOX_AHEAD_LOW rows are ahead.
 *
 * Invariants:
 *   - Every live committed row with id <= horizon is in the window; every
 *     one with horizon < id <= last_id is in the backlog. Window then
 *     backlog is therefore the send order, with nothing in between.
 *   - A commit joins the window directly only while the backlog is empty
 *     and no read is pending; otherwise it joins the backlog (which keeps
 *     the first invariant: its id is above every id in the window). Whether
 *     it can is decided at the commit, not at the append: rows appended
 *     while a small backlog was being read (a restart) are then in memory
 *     at the next connect, not one read later.
 *   - Memory: at most OUTBOX_HANDED_MAX(_BYTES) handed out plus
 *     OUTBOX_AHEAD_MAX(_BYTES) ahead and loaded while committing together
 *     (a read fills only what is left), plus one row over each byte bound;
 *     small entries for the other committing rows (bounded by the store's
 *     queue) and one index node per coalescible row.
 *   - The coalescing index holds exactly the droppable retained rows not
 *     handed out (committing, ahead, or in the backlog): at most one per
 *     retained topic in use, more only after a DELETE could not be queued.
 */

/* Coalescing index node: a droppable retained row no one has been given. */
struct snap {
	struct snap *hprev, *hnext;
	struct entry *entry; /* committing or in the window; NULL: in the backlog */
	int64_t id;	     /* 0 while committing */
	size_t bytes;
	uint32_t hash; /* of topic */
	char topic[];
};

struct entry {
	struct entry *prev, *next;
	struct snap *snap; /* its index node while it may be coalesced */
	uint64_t tag;	   /* committing: the store's tag */
	size_t bytes;	   /* topic + payload + msg_id */
	bool loaded;	   /* row.topic, row.payload, row.msg_id are set */
	bool handed;	   /* returned by outbox_next: never coalesced */
	bool superseded;   /* coalesced while committing: delete once committed */
	struct outbox_row row;
	char data[];
};

struct list {
	struct entry *head, *tail;
};

/*
 * Coalescing index: every row that a newer retained row on its topic may
 * still replace is in the bucket of its topic's hash, so an append looks at
 * the few nodes of its own topic (a whole-list scan per snapshot made a
 * burst of 500 cuff states with the broker down quadratic: docs/benchmarks.md).
 */
#define INDEX_BUCKETS 1024 /* power of two; ~one topic per bucket at 500 cuffs */

struct outbox {
	struct store *store;
	size_t max_bytes;
	struct list committing, window;
	size_t n_loaded, loaded_bytes; /* committing entries that hold their row */
	size_t n_ahead, ahead_bytes;   /* window rows not handed out */
	size_t n_handed, handed_bytes; /* window rows handed out */
	int64_t horizon;	       /* see the invariants above */
	int64_t last_id;	       /* highest id known committed */
	size_t backlog_rows, backlog_bytes;
	bool reading; /* a store_outbox_read() is pending, with read_tag */
	uint64_t read_tag;
	struct snap *index[INDEX_BUCKETS];
	uint64_t next_tag;
	outbox_ready_fn ready_fn;
	void *ready_data;
	struct outbox_stats stats;
};

/* --- lists and the index -------------------------------------------------- */

static void list_append(struct list *l, struct entry *e)
{
	e->prev = l->tail;
	e->next = NULL;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

static void list_unlink(struct list *l, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

static void list_free(struct list *l)
{
	struct entry *e, *next;

	for (e = l->head; e; e = next) {
		next = e->next;
		free(e);
	}
	l->head = l->tail = NULL;
}

static uint32_t topic_hash(const char *topic)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static struct snap **bucket(struct outbox *ob, uint32_t hash)
{
	return &ob->index[hash & (INDEX_BUCKETS - 1)];
}

static int snap_new(const char *topic, uint32_t hash, size_t bytes, struct snap **out)
{
	size_t tlen = strlen(topic) + 1;
	struct snap *sn = malloc(sizeof(*sn) + tlen);

	if (!sn)
		return -ENOMEM;
	memset(sn, 0, sizeof(*sn));
	memcpy(sn->topic, topic, tlen);
	sn->hash = hash;
	sn->bytes = bytes;
	*out = sn;
	return 0;
}

static void index_add(struct outbox *ob, struct snap *sn)
{
	struct snap **b = bucket(ob, sn->hash);

	sn->hprev = NULL;
	sn->hnext = *b;
	if (*b)
		(*b)->hprev = sn;
	*b = sn;
}

/* Takes sn out of the index and frees it (its entry, if any, stays). */
static void snap_free(struct outbox *ob, struct snap *sn)
{
	if (sn->hprev)
		sn->hprev->hnext = sn->hnext;
	else
		*bucket(ob, sn->hash) = sn->hnext;
	if (sn->hnext)
		sn->hnext->hprev = sn->hprev;
	if (sn->entry)
		sn->entry->snap = NULL;
	free(sn);
}

static void index_free(struct outbox *ob)
{
	for (size_t b = 0; b < INDEX_BUCKETS; b++)
		while (ob->index[b])
			snap_free(ob, ob->index[b]);
}

/* The index node of the backlog row id on topic, or NULL: that row was
 * coalesced (its DELETE may not have committed yet). */
static struct snap *snap_find_backlog(struct outbox *ob, const char *topic, int64_t id)
{
	uint32_t hash = topic_hash(topic);

	for (struct snap *sn = *bucket(ob, hash); sn; sn = sn->hnext)
		if (sn->id == id && !sn->entry && sn->hash == hash && !strcmp(sn->topic, topic))
			return sn;
	return NULL;
}

/* --- entries and accounting ----------------------------------------------- */

static size_t row_bytes(const char *topic, size_t len, const char *msg_id)
{
	return strlen(topic) + len + (msg_id ? strlen(msg_id) : 0);
}

/* An entry; with its row's strings and payload only when loaded. */
static int entry_new(bool loaded, const char *topic, const void *payload, size_t len, int qos,
		     bool retain, bool droppable, const char *msg_id, int64_t created_ms,
		     struct entry **out)
{
	size_t tlen = strlen(topic) + 1, mlen = msg_id ? strlen(msg_id) + 1 : 0;
	struct entry *e = malloc(sizeof(*e) + (loaded ? tlen + mlen + len : 0));
	char *p;

	if (!e)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->bytes = row_bytes(topic, len, msg_id);
	e->loaded = loaded;
	e->row.len = len;
	e->row.qos = qos;
	e->row.retain = retain;
	e->row.droppable = droppable;
	e->row.created_ms = created_ms;
	if (loaded) {
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
	}
	*out = e;
	return 0;
}

/* The row stops counting as held (acknowledged, coalesced, rejected). */
static void uncount(struct outbox *ob, size_t bytes)
{
	ob->stats.depth--;
	ob->stats.bytes -= bytes;
}

static void window_add(struct outbox *ob, struct entry *e)
{
	list_append(&ob->window, e);
	ob->n_ahead++;
	ob->ahead_bytes += e->bytes;
}

static void window_remove(struct outbox *ob, struct entry *e)
{
	list_unlink(&ob->window, e);
	if (e->handed) {
		ob->n_handed--;
		ob->handed_bytes -= e->bytes;
	} else {
		ob->n_ahead--;
		ob->ahead_bytes -= e->bytes;
	}
}

static void backlog_remove(struct outbox *ob, size_t bytes)
{
	ob->backlog_rows--;
	ob->backlog_bytes -= bytes;
}

/* May a row appended now keep its payload for the window (bounds only)? */
static bool may_load(const struct outbox *ob, size_t bytes)
{
	return ob->n_ahead + ob->n_loaded < OUTBOX_AHEAD_MAX &&
	       ob->ahead_bytes + ob->loaded_bytes + bytes <= OUTBOX_AHEAD_MAX_BYTES;
}

/*
 * Asks the store for the next backlog rows when few are ahead, within the
 * bounds that the rows ahead and the loaded committing ones share (those
 * commit within a batch; the next outbox_next() asks again).
 */
static void maybe_read(struct outbox *ob)
{
	size_t held = ob->n_ahead + ob->n_loaded, bytes = ob->ahead_bytes + ob->loaded_bytes;
	size_t rows = OUTBOX_AHEAD_MAX - held;

	if (ob->reading || !ob->backlog_rows || ob->n_ahead >= OUTBOX_AHEAD_LOW ||
	    held >= OUTBOX_AHEAD_MAX || bytes >= OUTBOX_AHEAD_MAX_BYTES)
		return;
	if (rows > OUTBOX_READ_ROWS)
		rows = OUTBOX_READ_ROWS;
	/* On failure the next outbox_next() asks again. */
	if (store_outbox_read(ob->store, ob->horizon, ob->last_id, rows,
			      OUTBOX_AHEAD_MAX_BYTES - bytes, ob->next_tag) < 0)
		return;
	ob->read_tag = ob->next_tag++;
	ob->reading = true;
}

/* --- life ------------------------------------------------------------------ */

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
	if (!ob)
		return;
	index_free(ob);
	list_free(&ob->committing);
	list_free(&ob->window);
	free(ob);
}

void outbox_set_ready_cb(struct outbox *ob, outbox_ready_fn fn, void *user_data)
{
	ob->ready_fn = fn;
	ob->ready_data = user_data;
}

static int scan_row(const struct store_outbox_meta *m, void *user_data)
{
	struct outbox *ob = user_data;
	struct snap *sn;
	int ret;

	if (m->droppable) {
		ret = snap_new(m->topic, topic_hash(m->topic), m->bytes, &sn);
		if (ret < 0)
			return ret;
		sn->id = m->id;
		index_add(ob, sn);
	}
	ob->stats.depth++;
	ob->stats.bytes += m->bytes;
	ob->backlog_rows++;
	ob->backlog_bytes += m->bytes;
	ob->last_id = m->id;
	return 0;
}

int outbox_load_pending(struct outbox *ob)
{
	int ret;

	if (ob->stats.depth || ob->committing.head || ob->window.head || ob->last_id)
		return -EBUSY;
	ret = store_outbox_scan(ob->store, scan_row, ob);
	if (ret < 0) {
		/* All or nothing: a half-counted outbox would read rows it
		 * does not account for. The rows stay on disk. */
		index_free(ob);
		ob->stats.depth = ob->stats.bytes = 0;
		ob->backlog_rows = ob->backlog_bytes = 0;
		ob->last_id = 0;
		return ret;
	}
	maybe_read(ob); /* the first window, ready before the first connect */
	return 0;
}

/* --- append and commit ----------------------------------------------------- */

/*
 * Bytes that coalescing would free for a new droppable row on topic: the
 * older rows of the topic no one has been given. Looks at one bucket.
 */
static size_t coalescible_bytes(struct outbox *ob, const char *topic, uint32_t hash)
{
	size_t bytes = 0;

	for (const struct snap *sn = *bucket(ob, hash); sn; sn = sn->hnext)
		if (sn->hash == hash && !strcmp(sn->topic, topic))
			bytes += sn->bytes;
	return bytes;
}

/* Replaces the older coalescible rows of topic, wherever they are. */
static void coalesce(struct outbox *ob, const char *topic, uint32_t hash)
{
	struct snap *sn, *next;

	for (sn = *bucket(ob, hash); sn; sn = next) {
		struct entry *e = sn->entry;
		size_t bytes = sn->bytes;

		next = sn->hnext;
		if (sn->hash != hash || strcmp(sn->topic, topic))
			continue;
		if (e && !e->row.id) {
			/* Its id is not known yet: delete it when its commit is reported. */
			e->superseded = true;
		} else if (store_outbox_delete(ob->store, e ? e->row.id : sn->id, 0) < 0) {
			/* The older row simply stays: it is still a valid (older)
			 * state and will be sent before the new one. */
			continue;
		} else if (e) {
			snap_free(ob, sn);
			sn = NULL;
			window_remove(ob, e);
			free(e);
		} else {
			backlog_remove(ob, bytes);
		}
		if (sn)
			snap_free(ob, sn);
		uncount(ob, bytes);
		ob->stats.coalesced++;
	}
}

int outbox_append(struct outbox *ob, const char *topic, const void *payload, size_t len,
		  int qos, unsigned flags, const char *msg_id, int64_t created_ms)
{
	bool retain = flags & OUTBOX_RETAIN, droppable = flags & OUTBOX_DROPPABLE;
	struct store_outbox_msg m;
	struct snap *sn = NULL;
	struct entry *e;
	size_t bytes;
	uint32_t hash = 0;
	bool loaded;
	int ret;

	if (!ob || !topic || !*topic || (len && !payload) || (flags & ~3u) ||
	    (droppable && !retain) || qos < 0 || qos > 2)
		return -EINVAL;
	bytes = row_bytes(topic, len, msg_id);
	if (retain)
		hash = topic_hash(topic);
	if (droppable &&
	    ob->stats.bytes - coalescible_bytes(ob, topic, hash) + bytes > ob->max_bytes) {
		ob->stats.refused++;
		return -ENOBUFS;
	}
	loaded = may_load(ob, bytes);
	ret = entry_new(loaded, topic, payload, len, qos, retain, droppable, msg_id, created_ms,
			&e);
	if (ret < 0)
		return ret;
	if (droppable) {
		ret = snap_new(topic, hash, bytes, &sn);
		if (ret < 0)
			goto fail;
	}
	e->tag = ob->next_tag;
	m = (struct store_outbox_msg){ .topic = topic, .payload = payload, .len = len, .qos = qos,
				       .retain = retain, .droppable = droppable,
				       .msg_id = msg_id, .created_ms = created_ms };
	ret = store_outbox_insert(ob->store, &m, e->tag);
	if (ret < 0)
		goto fail;
	ob->next_tag++;
	/* Coalesce only once the new row is safely queued: never lose both. A
	 * retained row that is not droppable (a session's final state) also
	 * replaces the snapshots before it: the broker would keep only it. */
	if (retain)
		coalesce(ob, topic, hash);
	list_append(&ob->committing, e);
	if (sn) {
		sn->entry = e;
		e->snap = sn;
		index_add(ob, sn);
	}
	if (loaded) {
		ob->n_loaded++;
		ob->loaded_bytes += bytes;
	}
	ob->stats.depth++;
	ob->stats.bytes += bytes;
	ob->stats.committing++;
	return 0;
fail:
	free(sn);
	free(e);
	return ret;
}

/* A committed row: into the window if it may, else into the backlog. */
static void place_committed(struct outbox *ob, struct entry *e)
{
	if (e->loaded && !ob->backlog_rows && !ob->reading) {
		window_add(ob, e);
		ob->horizon = e->row.id;
		if (e->snap)
			e->snap->id = e->row.id;
		return;
	}
	ob->backlog_rows++;
	ob->backlog_bytes += e->bytes;
	if (e->snap) {
		e->snap->id = e->row.id;
		e->snap->entry = NULL;
	}
	free(e);
}

static void on_append_done(struct outbox *ob, const struct store_completion *c)
{
	struct entry *e = ob->committing.head;

	if (!e || e->tag != c->tag)
		return; /* not one of ours (e.g. inserted past the outbox) */
	list_unlink(&ob->committing, e);
	ob->stats.committing--;
	if (e->loaded) {
		ob->n_loaded--;
		ob->loaded_bytes -= e->bytes;
	}
	if (c->kind == STORE_DONE_REJECTED) {
		ob->stats.failed++;
		if (!e->superseded)
			uncount(ob, e->bytes);
		if (e->snap)
			snap_free(ob, e->snap);
		free(e);
		return;
	}
	e->row.id = c->row_id;
	if (c->row_id > ob->last_id)
		ob->last_id = c->row_id;
	if (e->superseded) {
		if (store_outbox_delete(ob->store, e->row.id, 0) == 0) {
			free(e);
			return;
		}
		/* Keep it visible rather than leave an orphan row on disk that
		 * would be sent after a restart anyway. */
		e->superseded = false;
		ob->stats.depth++;
		ob->stats.bytes += e->bytes;
	}
	place_committed(ob, e);
	if (ob->ready_fn)
		ob->ready_fn(ob, ob->ready_data);
}

/* Backlog rows came back from the disk: they join the window in id order. */
static void on_read_done(struct outbox *ob, const struct store_completion *c)
{
	size_t i, added = 0;

	if (!ob->reading || c->tag != ob->read_tag)
		return; /* not ours */
	ob->reading = false;
	ob->stats.reads++;
	if (c->kind != STORE_DONE_COMMITTED) {
		ob->stats.read_failed++; /* read again by the next outbox_next() */
		return;
	}
	for (i = 0; i < c->n_rows; i++) {
		const struct store_outbox_row *r = &c->rows[i];
		struct snap *sn = NULL;
		struct entry *e;

		if (r->id <= ob->horizon)
			continue;
		if (r->droppable && !(sn = snap_find_backlog(ob, r->topic, r->id))) {
			ob->horizon = r->id; /* coalesced: no longer counted */
			continue;
		}
		if (entry_new(true, r->topic, r->payload, r->len, r->qos, r->retain, r->droppable,
			      r->msg_id, r->created_ms, &e) < 0)
			break; /* the rest stays in the backlog */
		e->row.id = r->id;
		if (sn) {
			sn->entry = e;
			e->snap = sn;
		}
		window_add(ob, e);
		backlog_remove(ob, e->bytes);
		ob->horizon = r->id;
		added++;
	}
	if (i == c->n_rows && c->read_to > ob->horizon)
		ob->horizon = c->read_to;
	if (ob->horizon >= ob->last_id && ob->backlog_rows) {
		/* Everything up to the last commit has been read: whatever is
		 * still counted is not on disk (it cannot happen; if it did, the
		 * reads would never end). */
		ob->stats.depth -= ob->backlog_rows;
		ob->stats.bytes -= ob->backlog_bytes;
		ob->backlog_rows = ob->backlog_bytes = 0;
	}
	if (i == c->n_rows)
		maybe_read(ob);
	if (added && ob->ready_fn)
		ob->ready_fn(ob, ob->ready_data);
}

bool outbox_handle_completion(struct outbox *ob, const struct store_completion *c)
{
	switch (c->rec) {
	case STORE_REC_OUTBOX_READ:
		on_read_done(ob, c);
		return true;
	case STORE_REC_OUTBOX_APPEND:
		if (c->kind == STORE_DONE_COMMITTED || c->kind == STORE_DONE_REJECTED)
			on_append_done(ob, c);
		return c->kind == STORE_DONE_COMMITTED || c->kind == STORE_DONE_REJECTED;
	case STORE_REC_OUTBOX_DELETE:
		return c->kind == STORE_DONE_COMMITTED || c->kind == STORE_DONE_REJECTED;
	default:
		return false;
	}
}

/* --- the send window --------------------------------------------------------- */

static bool may_hand_out(const struct outbox *ob)
{
	return ob->n_handed < OUTBOX_HANDED_MAX && ob->handed_bytes < OUTBOX_HANDED_MAX_BYTES;
}

int outbox_next(struct outbox *ob, int64_t after_id, size_t max,
		const struct outbox_row **rows, size_t *n)
{
	struct entry *e;
	size_t count = 0;

	if (!ob || (max && !rows) || !n)
		return -EINVAL;
	for (e = ob->window.head; e && count < max; e = e->next) {
		if (e->row.id <= after_id)
			continue;
		if (!e->handed) {
			if (!may_hand_out(ob))
				break;
			e->handed = true;
			ob->n_ahead--;
			ob->ahead_bytes -= e->bytes;
			ob->n_handed++;
			ob->handed_bytes += e->bytes;
			if (e->snap)
				snap_free(ob, e->snap);
		}
		rows[count++] = &e->row;
	}
	*n = count;
	maybe_read(ob);
	return 0;
}

const struct outbox_row *outbox_get(const struct outbox *ob, int64_t id)
{
	/* Rows refused by the broker are the oldest ones: a walk from the head. */
	for (const struct entry *e = ob ? ob->window.head : NULL; e; e = e->next)
		if (e->row.id == id)
			return &e->row;
	return NULL;
}

size_t outbox_foreach_unsent(const struct outbox *ob, outbox_row_fn fn, void *user_data)
{
	const struct entry *e;

	if (!ob || !fn)
		return 0;
	for (e = ob->window.head; e; e = e->next)
		if (!e->handed)
			fn(&e->row, user_data);
	if (ob->backlog_rows || ob->reading)
		return ob->backlog_rows + ob->stats.committing;
	for (e = ob->committing.head; e; e = e->next) {
		if (e->superseded)
			continue;
		if (!e->loaded) {
			size_t left = 0;

			for (; e; e = e->next)
				left += !e->superseded;
			return left;
		}
		fn(&e->row, user_data);
	}
	return 0;
}

int outbox_ack(struct outbox *ob, int64_t id)
{
	struct entry *e;

	if (!ob || id <= 0)
		return -EINVAL;
	for (e = ob->window.head; e && e->row.id != id; e = e->next)
		;
	if (!e)
		return -ENOENT;
	/* The message is delivered whatever happens to the DELETE: if it cannot
	 * be queued the row is resent after a restart (at-least-once). */
	if (store_outbox_delete(ob->store, id, 0) < 0)
		ob->stats.delete_failed++;
	if (e->snap)
		snap_free(ob, e->snap);
	uncount(ob, e->bytes);
	window_remove(ob, e);
	free(e);
	return 0;
}

/* --- figures ------------------------------------------------------------------ */

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

bool outbox_is_full(const struct outbox *ob)
{
	return ob->stats.bytes >= ob->max_bytes;
}

void outbox_get_stats(const struct outbox *ob, struct outbox_stats *out)
{
	*out = ob->stats;
	out->window = ob->n_handed + ob->n_ahead;
	out->handed = ob->n_handed;
	out->backlog = ob->backlog_rows;
	out->window_bytes = ob->handed_bytes + ob->ahead_bytes;
}
