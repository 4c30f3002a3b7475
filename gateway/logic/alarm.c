/* alarm.c - see alarm.h. */
#include "alarm.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct code_desc {
	const char *name;
	enum alarm_priority priority;
	enum alarm_kind kind;
	bool gateway_wide;
	const char *message;
	const char *limit_unit; /* of values.limit; NULL: the code has none */
};

#define H ALARM_PRIO_HIGH
#define M ALARM_PRIO_MEDIUM
#define L ALARM_PRIO_LOW
#define PHY ALARM_KIND_PHYSIOLOGICAL
#define TEC ALARM_KIND_TECHNICAL

static const struct code_desc codes[ALARM_CODE_COUNT] = {
	[ALARM_OVER_PRESSURE_CEILING] = { "over_pressure_ceiling", H, PHY, false,
					  "pressure above ceiling, deflating", "mmHg" },
	[ALARM_FULL_OCCLUSION] = { "full_occlusion", H, PHY, false,
				   "full occlusion (pressure at or above LOP), deflating", "mmHg" },
	[ALARM_PRESSURE_HIGH] = { "pressure_high", M, PHY, false, "pressure above target band", "mmHg" },
	[ALARM_PRESSURE_LOW] = { "pressure_low", M, PHY, false, "pressure below target band", "mmHg" },
	[ALARM_LEAK] = { "leak", M, TEC, false, "cuff cannot hold target: leak suspected", "mmHg" },
	[ALARM_INFLATION_TIME] = { "inflation_time", H, PHY, false,
				   "continuous inflation time exceeded, deflating", "s" },
	[ALARM_INFLATION_TIME_WARNING] = { "inflation_time_warning", L, PHY, false,
					   "continuous inflation nearing its limit", "s" },
	[ALARM_SESSION_INFLATION_TOTAL] = { "session_inflation_total", M, PHY, false,
					    "session inflation total exceeded: no further inflation", "s" },
	[ALARM_TELEMETRY_LOST] = { "telemetry_lost", H, TEC, false,
				   "no pressure samples from inflated cuff", "s" },
	[ALARM_LINK_LOST_INFLATED] = { "link_lost_inflated", H, TEC, false,
				       "link lost while cuff inflated", NULL },
	[ALARM_DEFLATE_FAILED] = { "deflate_failed", H, TEC, false,
				   "deflation not confirmed: remove cuff manually", "mmHg" },
	[ALARM_SENSOR_FAULT] = { "sensor_fault", H, TEC, false, "pressure sensor fault", "s" },
	[ALARM_SUPERVISION_DEFLATED] = { "supervision_deflated", M, TEC, false,
					 "cuff deflated itself: supervision lost", NULL },
	[ALARM_BATTERY_LOW] = { "battery_low", L, TEC, false, "cuff battery low", "%" },
	[ALARM_BATTERY_CRITICAL] = { "battery_critical", M, TEC, false,
				     "cuff battery critical: no new exercise", "%" },
	[ALARM_LOP_INVALID] = { "lop_invalid", M, TEC, false,
				"limb occlusion pressure invalid or missing", "mmHg" },
	[ALARM_CUFF_FAULT] = { "cuff_fault", M, TEC, false,
			       "cuff reports a fault: no new inflation", NULL },
	[ALARM_ESTOP] = { "estop", H, TEC, true, "emergency stop: all cuffs deflated", NULL },
	[ALARM_OUTBOX_FULL] = { "outbox_full", M, TEC, true, "outbox nearly full", "%" },
	[ALARM_STORAGE_ERROR] = { "storage_error", M, TEC, true, "storage error", NULL },
	[ALARM_BROKER_REFUSED] = { "broker_refused", M, TEC, true,
				   "the broker refuses messages: they wait in the outbox", "reason code" },
};

/*
 * Storage: `slots` holds the records (capacity of them, as before). Three
 * fixed indexes, allocated in one block by alarm_table_new(), make the
 * receive-path operations independent of the table's size:
 *   - a per-cuff entry ("" is the gateway-wide one) holding the slot of each
 *     code, found through an open-addressing hash of the cuff id (linear
 *     probing, backward-shift deletion, so no tombstones build up); an entry
 *     exists exactly while its cuff has an open alarm, so `capacity` entries
 *     always suffice;
 *   - an open-addressing hash of alarm ids to slots (alarm_ack, alarm_find_id);
 *   - a doubly-linked list of the open slots in seq order (raise order), for
 *     alarm_list_open(NULL) and eviction; a raise appends (its seq is the
 *     largest), a restore inserts in order from the tail;
 * plus a stack of free slots and the counters. A table smaller than
 * alarm_table_capacity_for() behaves exactly as documented: the reserve
 * and -ENOSPC rules only look at the free count, and eviction walks the
 * seq-ordered list for the oldest LOW, then MEDIUM (the only O(open) path
 * left, taken only when a too-small table is full).
 */
#define NIL (-1)

struct slot_meta {
	int32_t prev, next; /* seq-ordered open list; next = free stack link when unused */
	int32_t entry;      /* owning cuff entry */
	uint32_t id_hash;
	bool used;
};

struct cuff_entry {
	char name[ALARM_CUFF_MAX];
	int32_t slot[ALARM_CODE_COUNT]; /* NIL: no open alarm of that code */
	uint32_t hash;
	uint32_t n_open;
	int32_t next_free;
};

struct alarm_table {
	char gateway_id[ALARM_GATEWAY_MAX];
	uint64_t next_seq;
	alarm_record_fn fn;
	void *user_data;
	size_t capacity;
	struct alarm_record *slots;
	void *index; /* the one block below points into */
	struct slot_meta *meta;
	struct cuff_entry *entries; /* capacity of them */
	/* Buckets hold index + 1, 0 = empty: the zeroed block needs no
	 * initialisation, so pages no alarm ever used stay untouched (RSS). */
	int32_t *cuff_hash; /* hash_size buckets: entry index + 1 */
	int32_t *id_hash;   /* hash_size buckets: slot index + 1 */
	uint32_t hash_mask;
	int32_t free_slot;  /* head of the free-slot stack (slots once used) */
	int32_t free_entry; /* head of the free-entry stack (entries once used) */
	int32_t slot_hwm, entry_hwm; /* from there on: never used, free */
	int32_t head, tail; /* open slots in seq order */
	size_t n_free;
};

static bool valid_code(enum alarm_code code)
{
	return (int)code >= 0 && code < ALARM_CODE_COUNT;
}

/* Printable ASCII only: these strings end up in MQTT topics and JSON. */
static bool valid_str(const char *s, size_t max, bool allow_empty)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, max);
	if (n == max || (n == 0 && !allow_empty))
		return false;
	/* No control characters; bytes >= 0x80 are UTF-8 (a clinician called
	 * "Jürgen" acknowledges too: command.c has checked the encoding). */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

size_t alarm_table_capacity_for(size_t n_cuffs)
{
	return (n_cuffs + 1) * ALARM_CODE_COUNT;
}

/* FNV-1a, 32 bits. */
static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

int alarm_table_new(const char *gateway_id, size_t capacity, uint64_t first_seq,
		    alarm_record_fn fn, void *user_data, struct alarm_table **out)
{
	struct alarm_table *t = NULL;
	size_t hash_size = 8, meta_bytes, entry_bytes, hash_bytes;
	unsigned char *p;

	if (!out || !valid_str(gateway_id, ALARM_GATEWAY_MAX, false) || capacity == 0 ||
	    capacity > 65536 || first_seq == 0)
		return -EINVAL;
	*out = NULL;
	while (hash_size < 2 * capacity) /* load factor <= 1/2 */
		hash_size *= 2;
	meta_bytes = capacity * sizeof(struct slot_meta);
	entry_bytes = capacity * sizeof(struct cuff_entry);
	hash_bytes = hash_size * sizeof(int32_t);
	t = calloc(1, sizeof(*t));
	if (!t)
		goto fail;
	t->slots = calloc(capacity, sizeof(*t->slots));
	if (!t->slots)
		goto fail;
	/* One block for every index (all members are 4-byte aligned). */
	t->index = calloc(1, meta_bytes + entry_bytes + 2 * hash_bytes);
	if (!t->index)
		goto fail;
	p = t->index;
	t->meta = (struct slot_meta *)(void *)p;
	t->entries = (struct cuff_entry *)(void *)(p + meta_bytes);
	t->cuff_hash = (int32_t *)(void *)(p + meta_bytes + entry_bytes);
	t->id_hash = (int32_t *)(void *)(p + meta_bytes + entry_bytes + hash_bytes);
	t->hash_mask = (uint32_t)(hash_size - 1);
	t->free_slot = t->free_entry = NIL;
	t->head = t->tail = NIL;
	t->n_free = capacity;
	memcpy(t->gateway_id, gateway_id, strlen(gateway_id) + 1);
	t->next_seq = first_seq;
	t->fn = fn;
	t->user_data = user_data;
	t->capacity = capacity;
	*out = t;
	return 0;
fail:
	alarm_table_free(t);
	return -ENOMEM;
}

void alarm_table_free(struct alarm_table *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t->index);
	free(t);
}

static void emit(const struct alarm_table *t, const struct alarm_record *r)
{
	if (t->fn)
		t->fn(r, t->user_data);
}

/*
 * Backward-shift deletion of bucket i of a linear-probing table: moves up
 * every later element of the run whose home bucket is not in (i, j].
 */
static void hash_delete(int32_t *table, uint32_t mask, uint32_t i,
			uint32_t (*home)(const struct alarm_table *, int32_t),
			const struct alarm_table *t)
{
	uint32_t j = i;

	table[i] = 0;
	for (;;) {
		uint32_t k;

		j = (j + 1) & mask;
		if (table[j] == 0)
			return;
		k = home(t, table[j] - 1);
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		table[i] = table[j];
		table[j] = 0;
		i = j;
	}
}

static uint32_t entry_home(const struct alarm_table *t, int32_t e)
{
	return t->entries[e].hash & t->hash_mask;
}

static uint32_t id_home(const struct alarm_table *t, int32_t s)
{
	return t->meta[s].id_hash & t->hash_mask;
}

/* The entry of cuff (any string: an over-long one matches nothing), or NIL. */
static int32_t entry_find(const struct alarm_table *t, const char *cuff)
{
	uint32_t h = hash_str(cuff);

	for (uint32_t i = h & t->hash_mask;; i = (i + 1) & t->hash_mask) {
		int32_t e = t->cuff_hash[i] - 1;

		if (e == NIL)
			return NIL;
		if (t->entries[e].hash == h && strcmp(t->entries[e].name, cuff) == 0)
			return e;
	}
}

/* Called only with a valid cuff and a free slot, so an entry is always free. */
static int32_t entry_get(struct alarm_table *t, const char *cuff)
{
	int32_t e = entry_find(t, cuff);
	uint32_t i;
	struct cuff_entry *ce;

	if (e != NIL)
		return e;
	if (t->free_entry != NIL) {
		e = t->free_entry;
		t->free_entry = t->entries[e].next_free;
	} else {
		e = t->entry_hwm++;
	}
	ce = &t->entries[e];
	memcpy(ce->name, cuff, strlen(cuff) + 1);
	for (int c = 0; c < ALARM_CODE_COUNT; c++)
		ce->slot[c] = NIL;
	ce->hash = hash_str(cuff);
	ce->n_open = 0;
	for (i = ce->hash & t->hash_mask; t->cuff_hash[i] != 0; i = (i + 1) & t->hash_mask)
		;
	t->cuff_hash[i] = e + 1;
	return e;
}

static void entry_put(struct alarm_table *t, int32_t e)
{
	uint32_t i = t->entries[e].hash & t->hash_mask;

	while (t->cuff_hash[i] != e + 1)
		i = (i + 1) & t->hash_mask;
	hash_delete(t->cuff_hash, t->hash_mask, i, entry_home, t);
	t->entries[e].next_free = t->free_entry;
	t->free_entry = e;
}

static int32_t id_find(const struct alarm_table *t, const char *alarm_id)
{
	uint32_t h = hash_str(alarm_id);

	for (uint32_t i = h & t->hash_mask;; i = (i + 1) & t->hash_mask) {
		int32_t s = t->id_hash[i] - 1;

		if (s == NIL)
			return NIL;
		if (t->meta[s].id_hash == h && strcmp(t->slots[s].alarm_id, alarm_id) == 0)
			return s;
	}
}

static struct alarm_record *find(const struct alarm_table *t, const char *cuff,
				 enum alarm_code code, size_t *idx)
{
	int32_t e = entry_find(t, cuff), s;

	if (e == NIL || (s = t->entries[e].slot[code]) == NIL)
		return NULL;
	if (idx)
		*idx = (size_t)s;
	return &t->slots[s];
}

/*
 * Takes a free slot (there must be one) for a record whose cuff, code,
 * alarm_id and seq the caller then fills in and links with slot_link().
 */
static size_t slot_take(struct alarm_table *t)
{
	int32_t s = t->free_slot;

	if (s != NIL)
		t->free_slot = t->meta[s].next;
	else
		s = t->slot_hwm++;
	t->n_free--;
	return (size_t)s;
}

/* Makes slot s (its record filled in) open: indexes, raise order. */
static void slot_link(struct alarm_table *t, size_t s)
{
	struct slot_meta *m = &t->meta[s];
	const struct alarm_record *r = &t->slots[s];
	int32_t e = entry_get(t, r->cuff), after = t->tail;
	uint32_t i;

	m->used = true;
	m->entry = e;
	t->entries[e].slot[r->code] = (int32_t)s;
	t->entries[e].n_open++;
	m->id_hash = hash_str(r->alarm_id);
	for (i = m->id_hash & t->hash_mask; t->id_hash[i] != 0; i = (i + 1) & t->hash_mask)
		;
	t->id_hash[i] = (int32_t)s + 1;
	/* A raise has the largest seq (O(1)); a restore may be older. */
	while (after != NIL && t->slots[after].seq > r->seq)
		after = t->meta[after].prev;
	m->prev = after;
	m->next = after == NIL ? t->head : t->meta[after].next;
	if (m->prev == NIL)
		t->head = (int32_t)s;
	else
		t->meta[m->prev].next = (int32_t)s;
	if (m->next == NIL)
		t->tail = (int32_t)s;
	else
		t->meta[m->next].prev = (int32_t)s;
}

static void slot_unlink(struct alarm_table *t, size_t s)
{
	struct slot_meta *m = &t->meta[s];
	struct cuff_entry *ce = &t->entries[m->entry];
	uint32_t i = m->id_hash & t->hash_mask;

	if (m->prev == NIL)
		t->head = m->next;
	else
		t->meta[m->prev].next = m->next;
	if (m->next == NIL)
		t->tail = m->prev;
	else
		t->meta[m->next].prev = m->prev;
	while (t->id_hash[i] != (int32_t)s + 1)
		i = (i + 1) & t->hash_mask;
	hash_delete(t->id_hash, t->hash_mask, i, id_home, t);
	ce->slot[t->slots[s].code] = NIL;
	if (--ce->n_open == 0)
		entry_put(t, m->entry);
	m->used = false;
	m->next = t->free_slot;
	t->free_slot = (int32_t)s;
	t->n_free++;
}

static void close_slot(struct alarm_table *t, size_t i, uint64_t now_ms)
{
	struct alarm_record *r = &t->slots[i];

	r->state = ALARM_STATE_CLEARED;
	r->cleared_at_ms = now_ms ? now_ms : 1;
	emit(t, r);
	slot_unlink(t, i);
}

/* Oldest open alarm of the lowest priority below HIGH, to make room for a HIGH. */
static bool evict_for_high(struct alarm_table *t, uint64_t now_ms)
{
	int32_t best = NIL;

	/* Raise order: the first LOW is the oldest LOW; failing that, the first MEDIUM. */
	for (int32_t s = t->head; s != NIL; s = t->meta[s].next) {
		enum alarm_priority p = t->slots[s].priority;

		if (p == ALARM_PRIO_LOW) {
			best = s;
			break;
		}
		if (p == ALARM_PRIO_MEDIUM && best == NIL)
			best = s;
	}
	if (best == NIL)
		return false;
	snprintf(t->slots[best].message, sizeof(t->slots[best].message), "evicted");
	close_slot(t, (size_t)best, now_ms);
	return true;
}

static bool values_equal(const struct alarm_values *a, const struct alarm_values *b)
{
	const double x[4] = { a->pressure_mmhg, a->target_mmhg, a->limit, a->duration_s };
	const double y[4] = { b->pressure_mmhg, b->target_mmhg, b->limit, b->duration_s };

	for (int i = 0; i < 4; i++) {
		if (!(x[i] == y[i] || (isnan(x[i]) && isnan(y[i]))))
			return false;
	}
	return true;
}

int alarm_raise(struct alarm_table *t, const char *cuff, const char *session_id,
		enum alarm_code code, const char *message, const struct alarm_values *values,
		uint64_t now_ms, char *id_out)
{
	const struct alarm_values none = { NAN, NAN, NAN, NAN };
	const struct code_desc *cd;
	struct alarm_record *r;
	size_t slot;

	if (!t || !valid_code(code) || !valid_str(cuff, ALARM_CUFF_MAX, true))
		return -EINVAL;
	cd = &codes[code];
	if (cd->gateway_wide != (cuff[0] == '\0'))
		return -EINVAL;
	if (!session_id)
		session_id = "";
	if (!valid_str(session_id, ALARM_SESSION_MAX, true))
		return -EINVAL;
	if (!message)
		message = cd->message;
	if (!valid_str(message, ALARM_MSG_MAX, false))
		return -EINVAL;
	if (!values)
		values = &none;

	r = find(t, cuff, code, NULL);
	if (r) {
		/* Re-raise: same alarm, fresh values; state (active/acknowledged) kept. */
		if (r->condition_present && values_equal(&r->values, values) &&
		    strcmp(r->message, message) == 0)
			goto done;
		r->condition_present = true;
		r->values = *values;
		memcpy(r->message, message, strlen(message) + 1);
		emit(t, r);
		goto done;
	}

	if (cd->priority != ALARM_PRIO_HIGH && t->n_free <= ALARM_HIGH_RESERVE &&
	    t->capacity > ALARM_HIGH_RESERVE)
		return -ENOSPC;
	if (t->n_free == 0 && (cd->priority != ALARM_PRIO_HIGH || !evict_for_high(t, now_ms)))
		return -ENOSPC;

	slot = slot_take(t);
	r = &t->slots[slot];
	memset(r, 0, sizeof(*r));
	snprintf(r->alarm_id, sizeof(r->alarm_id), "%s-%" PRIu64, t->gateway_id, t->next_seq);
	memcpy(r->cuff, cuff, strlen(cuff) + 1);
	memcpy(r->session_id, session_id, strlen(session_id) + 1);
	r->code = code;
	r->priority = cd->priority;
	r->kind = cd->kind;
	r->state = ALARM_STATE_ACTIVE;
	r->condition_present = true;
	r->seq = t->next_seq++;
	r->raised_at_ms = now_ms;
	memcpy(r->message, message, strlen(message) + 1);
	r->values = *values;
	slot_link(t, slot);
	emit(t, r);
done:
	if (id_out)
		memcpy(id_out, r->alarm_id, strlen(r->alarm_id) + 1);
	return 0;
}

int alarm_restore(struct alarm_table *t, const struct alarm_record *rec)
{
	size_t slot;

	if (!t || !rec || !valid_code(rec->code) || rec->state == ALARM_STATE_CLEARED ||
	    !valid_str(rec->cuff, ALARM_CUFF_MAX, true) ||
	    codes[rec->code].gateway_wide != (rec->cuff[0] == '\0') ||
	    !valid_str(rec->alarm_id, ALARM_ID_MAX, false) ||
	    !valid_str(rec->session_id, ALARM_SESSION_MAX, true) ||
	    !valid_str(rec->acked_by, ALARM_BY_MAX, true) ||
	    !valid_str(rec->message, ALARM_MSG_MAX, false))
		return -EINVAL;
	if (find(t, rec->cuff, rec->code, NULL) || alarm_find_id(t, rec->alarm_id))
		return -EEXIST;
	if (t->n_free == 0)
		return -ENOSPC;
	slot = slot_take(t);
	t->slots[slot] = *rec;
	t->slots[slot].priority = codes[rec->code].priority;
	t->slots[slot].kind = codes[rec->code].kind;
	slot_link(t, slot);
	if (rec->seq >= t->next_seq)
		t->next_seq = rec->seq + 1;
	return 0;
}

int alarm_condition_cleared(struct alarm_table *t, const char *cuff, enum alarm_code code,
			    uint64_t now_ms)
{
	struct alarm_record *r;
	size_t i = 0;

	if (!t || !valid_code(code) || !valid_str(cuff, ALARM_CUFF_MAX, true))
		return -EINVAL;
	r = find(t, cuff, code, &i);
	if (!r || !r->condition_present)
		return 0;
	r->condition_present = false;
	if (alarm_code_latching(code) && r->state == ALARM_STATE_ACTIVE) {
		emit(t, r);
		return 0;
	}
	close_slot(t, i, now_ms);
	return 0;
}

int alarm_ack(struct alarm_table *t, const char *alarm_id, const char *by, uint64_t now_ms)
{
	struct alarm_record *r;
	int32_t i;

	if (!t || !valid_str(alarm_id, ALARM_ID_MAX, false) || !valid_str(by, ALARM_BY_MAX, false))
		return -EINVAL;
	i = id_find(t, alarm_id);
	if (i == NIL)
		return -ENOENT;
	r = &t->slots[i];
	if (r->state == ALARM_STATE_ACKNOWLEDGED)
		return -EALREADY;
	r->state = ALARM_STATE_ACKNOWLEDGED;
	r->acked_at_ms = now_ms ? now_ms : 1;
	memcpy(r->acked_by, by, strlen(by) + 1);
	if (!r->condition_present) {
		close_slot(t, (size_t)i, now_ms);
		return 0;
	}
	emit(t, r);
	return 0;
}

static bool entry_has_unacked_high(const struct alarm_table *t, int32_t e)
{
	if (e == NIL)
		return false;
	for (int c = 0; c < ALARM_CODE_COUNT; c++) {
		int32_t s = t->entries[e].slot[c];

		if (s != NIL && t->slots[s].priority == ALARM_PRIO_HIGH &&
		    t->slots[s].state == ALARM_STATE_ACTIVE)
			return true;
	}
	return false;
}

bool alarm_has_unacked_high(const struct alarm_table *t, const char *cuff)
{
	if (!t)
		return false;
	return entry_has_unacked_high(t, entry_find(t, "")) ||
	       (cuff && cuff[0] && entry_has_unacked_high(t, entry_find(t, cuff)));
}

int alarm_list_open(const struct alarm_table *t, const char *cuff,
		    const struct alarm_record **out, size_t cap, size_t *n_out)
{
	size_t n = 0;

	if (!t || !n_out || (cap && !out))
		return -EINVAL;
	if (!cuff) {
		/* All of them: the open list is in raise order already. */
		for (int32_t s = t->head; s != NIL; s = t->meta[s].next) {
			if (n < cap)
				out[n] = &t->slots[s];
			n++;
		}
	} else {
		/* One cuff: its few slots, insertion-sorted by seq. */
		const struct alarm_record *mine[ALARM_CODE_COUNT];
		int32_t e = entry_find(t, cuff);

		for (int c = 0; e != NIL && c < ALARM_CODE_COUNT; c++) {
			int32_t s = t->entries[e].slot[c];
			size_t k;

			if (s == NIL)
				continue;
			for (k = n; k > 0 && mine[k - 1]->seq > t->slots[s].seq; k--)
				mine[k] = mine[k - 1];
			mine[k] = &t->slots[s];
			n++;
		}
		for (size_t k = 0; k < n && k < cap; k++)
			out[k] = mine[k];
	}
	*n_out = n;
	return 0;
}

const struct alarm_record *alarm_find_open(const struct alarm_table *t, const char *cuff,
					   enum alarm_code code)
{
	if (!t || !cuff || !valid_code(code))
		return NULL;
	return find(t, cuff, code, NULL);
}

const struct alarm_record *alarm_find_id(const struct alarm_table *t, const char *alarm_id)
{
	int32_t s;

	if (!t || !alarm_id)
		return NULL;
	s = id_find(t, alarm_id);
	return s == NIL ? NULL : &t->slots[s];
}

size_t alarm_open_count(const struct alarm_table *t)
{
	return t ? t->capacity - t->n_free : 0;
}

uint64_t alarm_next_seq(const struct alarm_table *t)
{
	return t ? t->next_seq : 0;
}

const char *alarm_code_name(enum alarm_code code)
{
	return valid_code(code) ? codes[code].name : "unknown";
}

int alarm_code_from_name(const char *name, enum alarm_code *out)
{
	if (!name || !out)
		return -EINVAL;
	for (int i = 0; i < ALARM_CODE_COUNT; i++) {
		if (strcmp(codes[i].name, name) == 0) {
			*out = (enum alarm_code)i;
			return 0;
		}
	}
	return -ENOENT;
}

enum alarm_priority alarm_code_priority(enum alarm_code code)
{
	return valid_code(code) ? codes[code].priority : ALARM_PRIO_HIGH;
}

enum alarm_kind alarm_code_kind(enum alarm_code code)
{
	return valid_code(code) ? codes[code].kind : ALARM_KIND_TECHNICAL;
}

bool alarm_code_latching(enum alarm_code code)
{
	return alarm_code_priority(code) == ALARM_PRIO_HIGH;
}

bool alarm_code_gateway_wide(enum alarm_code code)
{
	return valid_code(code) && codes[code].gateway_wide;
}

const char *alarm_code_default_message(enum alarm_code code)
{
	return valid_code(code) ? codes[code].message : "unknown alarm";
}

const char *alarm_code_limit_unit(enum alarm_code code)
{
	return valid_code(code) ? codes[code].limit_unit : NULL;
}

/* What a clinician reads: what happened, the figures, what was done. The
 * formats take the values they name, finite or not ("nan" never shows:
 * a code whose figures are missing falls back to its default sentence). */
void alarm_describe(enum alarm_code code, const struct alarm_values *v, const char *detail,
		    char *buf, size_t len)
{
	double p = v ? v->pressure_mmhg : NAN, t = v ? v->target_mmhg : NAN;
	double lim = v ? v->limit : NAN, d = v ? v->duration_s : NAN;
	const char *def = alarm_code_default_message(code);
	int n = -1;

	if (!buf || len == 0)
		return;
	/* A specific sentence from the engine (e.g. "reading frozen") stands. */
	if (detail && detail != def) {
		snprintf(buf, len, "%s", detail);
		return;
	}
	switch (code) {
	case ALARM_OVER_PRESSURE_CEILING:
		if (isfinite(p) && isfinite(lim))
			n = snprintf(buf, len, "pressure %.0f mmHg above the %.0f mmHg ceiling: cuff deflated",
				     p, lim);
		break;
	case ALARM_FULL_OCCLUSION:
		if (isfinite(lim) && isfinite(d))
			n = snprintf(buf, len,
				     "at or above the limb occlusion pressure (%.0f mmHg) for %.1f s: "
				     "cuff deflated",
				     lim, d);
		break;
	case ALARM_PRESSURE_HIGH:
	case ALARM_PRESSURE_LOW:
		if (isfinite(p) && isfinite(t) && isfinite(d))
			n = snprintf(buf, len, "pressure %.0f mmHg, target %.0f mmHg: %s the band for %.1f s",
				     p, t, code == ALARM_PRESSURE_HIGH ? "above" : "below", d);
		break;
	case ALARM_LEAK:
		if (isfinite(p) && isfinite(t) && isfinite(d))
			n = snprintf(buf, len,
				     "cuff cannot hold %.0f mmHg (at %.0f mmHg for %.1f s): leak suspected",
				     t, p, d);
		break;
	case ALARM_INFLATION_TIME:
	case ALARM_INFLATION_TIME_WARNING:
		if (isfinite(lim) && isfinite(d))
			n = snprintf(buf, len, "inflated %.0f s without a break, limit %.0f s%s", d, lim,
				     code == ALARM_INFLATION_TIME ? ": cuff deflated" : "");
		break;
	case ALARM_SESSION_INFLATION_TOTAL:
		if (isfinite(lim) && isfinite(d))
			n = snprintf(buf, len,
				     "%.0f s under pressure in this session, limit %.0f s: cuff deflated, "
				     "no further inflation",
				     d, lim);
		break;
	case ALARM_TELEMETRY_LOST:
		if (isfinite(d))
			n = snprintf(buf, len, "no pressure reading for %.1f s while inflated: cuff deflated",
				     d);
		break;
	case ALARM_LINK_LOST_INFLATED:
		if (isfinite(p))
			n = snprintf(buf, len,
				     "connection lost while inflated (last %.0f mmHg): check the patient", p);
		break;
	case ALARM_DEFLATE_FAILED:
		if (isfinite(p) && isfinite(d))
			n = snprintf(buf, len,
				     "deflation not confirmed after %.0f s (%.0f mmHg): remove the cuff "
				     "manually",
				     d, p);
		break;
	case ALARM_BATTERY_LOW:
	case ALARM_BATTERY_CRITICAL:
		if (isfinite(lim))
			n = snprintf(buf, len, "cuff battery below %.0f %%%s", lim,
				     code == ALARM_BATTERY_CRITICAL ? ": no new exercise" : "");
		break;
	case ALARM_LOP_INVALID:
		n = isfinite(lim) ? snprintf(buf, len,
					     "limb occlusion pressure %.0f mmHg is not plausible: the "
					     "previous one is kept",
					     lim)
				  : snprintf(buf, len,
					     "limb occlusion pressure not measured: the previous one is "
					     "kept");
		break;
	default:
		break;
	}
	if (n < 0)
		snprintf(buf, len, "%s", def);
}

const char *alarm_priority_name(enum alarm_priority p)
{
	switch (p) {
	case ALARM_PRIO_LOW:
		return "low";
	case ALARM_PRIO_MEDIUM:
		return "medium";
	case ALARM_PRIO_HIGH:
		return "high";
	}
	return "unknown";
}

const char *alarm_kind_name(enum alarm_kind k)
{
	switch (k) {
	case ALARM_KIND_PHYSIOLOGICAL:
		return "physiological";
	case ALARM_KIND_TECHNICAL:
		return "technical";
	}
	return "unknown";
}

const char *alarm_state_name(enum alarm_state s)
{
	switch (s) {
	case ALARM_STATE_ACTIVE:
		return "active";
	case ALARM_STATE_ACKNOWLEDGED:
		return "acknowledged";
	case ALARM_STATE_CLEARED:
		return "cleared";
	}
	return "unknown";
}
