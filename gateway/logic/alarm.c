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
};

#define H ALARM_PRIO_HIGH
#define M ALARM_PRIO_MEDIUM
#define L ALARM_PRIO_LOW
#define PHY ALARM_KIND_PHYSIOLOGICAL
#define TEC ALARM_KIND_TECHNICAL

static const struct code_desc codes[ALARM_CODE_COUNT] = {
	[ALARM_OVER_PRESSURE_CEILING] = { "over_pressure_ceiling", H, PHY, false,
					  "pressure above ceiling, deflating" },
	[ALARM_FULL_OCCLUSION] = { "full_occlusion", H, PHY, false,
				   "full occlusion (pressure at or above LOP), deflating" },
	[ALARM_PRESSURE_HIGH] = { "pressure_high", M, PHY, false, "pressure above target band" },
	[ALARM_PRESSURE_LOW] = { "pressure_low", M, PHY, false, "pressure below target band" },
	[ALARM_LEAK] = { "leak", M, TEC, false, "cuff cannot hold target: leak suspected" },
	[ALARM_INFLATION_TIME] = { "inflation_time", H, PHY, false,
				   "continuous inflation time exceeded, deflating" },
	[ALARM_INFLATION_TIME_WARNING] = { "inflation_time_warning", L, PHY, false,
					   "continuous inflation nearing its limit" },
	[ALARM_SESSION_INFLATION_TOTAL] = { "session_inflation_total", M, PHY, false,
					    "session inflation total exceeded: no further inflation" },
	[ALARM_TELEMETRY_LOST] = { "telemetry_lost", H, TEC, false,
				   "no pressure samples from inflated cuff" },
	[ALARM_LINK_LOST_INFLATED] = { "link_lost_inflated", H, TEC, false,
				       "link lost while cuff inflated" },
	[ALARM_DEFLATE_FAILED] = { "deflate_failed", H, TEC, false,
				   "deflation not confirmed: remove cuff manually" },
	[ALARM_SENSOR_FAULT] = { "sensor_fault", H, TEC, false, "pressure sensor fault" },
	[ALARM_SUPERVISION_DEFLATED] = { "supervision_deflated", M, TEC, false,
					 "cuff deflated itself: supervision lost" },
	[ALARM_BATTERY_LOW] = { "battery_low", L, TEC, false, "cuff battery low" },
	[ALARM_BATTERY_CRITICAL] = { "battery_critical", M, TEC, false,
				     "cuff battery critical: no new exercise" },
	[ALARM_LOP_INVALID] = { "lop_invalid", M, TEC, false,
				"limb occlusion pressure invalid or missing" },
	[ALARM_ESTOP] = { "estop", H, TEC, true, "emergency stop: all cuffs deflated" },
	[ALARM_OUTBOX_FULL] = { "outbox_full", M, TEC, true, "outbox nearly full" },
	[ALARM_STORAGE_ERROR] = { "storage_error", M, TEC, true, "storage error" },
};

struct alarm_table {
	char gateway_id[ALARM_GATEWAY_MAX];
	uint64_t next_seq;
	alarm_record_fn fn;
	void *user_data;
	size_t capacity;
	struct alarm_record *slots;
	bool *used;
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

int alarm_table_new(const char *gateway_id, size_t capacity, uint64_t first_seq,
		    alarm_record_fn fn, void *user_data, struct alarm_table **out)
{
	struct alarm_table *t = NULL;

	if (!out || !valid_str(gateway_id, ALARM_GATEWAY_MAX, false) || capacity == 0 ||
	    capacity > 65536 || first_seq == 0)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto fail;
	t->slots = calloc(capacity, sizeof(*t->slots));
	t->used = calloc(capacity, sizeof(*t->used));
	if (!t->slots || !t->used)
		goto fail;
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
	free(t->used);
	free(t);
}

static void emit(const struct alarm_table *t, const struct alarm_record *r)
{
	if (t->fn)
		t->fn(r, t->user_data);
}

static struct alarm_record *find(const struct alarm_table *t, const char *cuff,
				 enum alarm_code code, size_t *idx)
{
	for (size_t i = 0; i < t->capacity; i++) {
		if (t->used[i] && t->slots[i].code == code && strcmp(t->slots[i].cuff, cuff) == 0) {
			if (idx)
				*idx = i;
			return &t->slots[i];
		}
	}
	return NULL;
}

static size_t free_slots(const struct alarm_table *t, size_t *first_free)
{
	size_t n = 0;

	for (size_t i = t->capacity; i-- > 0;) {
		if (!t->used[i]) {
			n++;
			*first_free = i;
		}
	}
	return n;
}

static void close_slot(struct alarm_table *t, size_t i, uint64_t now_ms)
{
	struct alarm_record *r = &t->slots[i];

	r->state = ALARM_STATE_CLEARED;
	r->cleared_at_ms = now_ms ? now_ms : 1;
	emit(t, r);
	t->used[i] = false;
}

/* Oldest open alarm of the lowest priority below HIGH, to make room for a HIGH. */
static bool evict_for_high(struct alarm_table *t, uint64_t now_ms, size_t *slot)
{
	size_t best = t->capacity;

	for (size_t i = 0; i < t->capacity; i++) {
		const struct alarm_record *r = &t->slots[i];

		if (!t->used[i] || r->priority == ALARM_PRIO_HIGH)
			continue;
		if (best == t->capacity || r->priority < t->slots[best].priority ||
		    (r->priority == t->slots[best].priority && r->seq < t->slots[best].seq))
			best = i;
	}
	if (best == t->capacity)
		return false;
	snprintf(t->slots[best].message, sizeof(t->slots[best].message), "evicted");
	close_slot(t, best, now_ms);
	*slot = best;
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
	size_t slot = 0, nfree;

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

	nfree = free_slots(t, &slot);
	if (cd->priority != ALARM_PRIO_HIGH && nfree <= ALARM_HIGH_RESERVE &&
	    t->capacity > ALARM_HIGH_RESERVE)
		return -ENOSPC;
	if (nfree == 0 && (cd->priority != ALARM_PRIO_HIGH || !evict_for_high(t, now_ms, &slot)))
		return -ENOSPC;

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
	t->used[slot] = true;
	emit(t, r);
done:
	if (id_out)
		memcpy(id_out, r->alarm_id, strlen(r->alarm_id) + 1);
	return 0;
}

int alarm_restore(struct alarm_table *t, const struct alarm_record *rec)
{
	size_t slot = 0;

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
	if (free_slots(t, &slot) == 0)
		return -ENOSPC;
	t->slots[slot] = *rec;
	t->slots[slot].priority = codes[rec->code].priority;
	t->slots[slot].kind = codes[rec->code].kind;
	t->used[slot] = true;
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
	struct alarm_record *r = NULL;
	size_t i;

	if (!t || !valid_str(alarm_id, ALARM_ID_MAX, false) || !valid_str(by, ALARM_BY_MAX, false))
		return -EINVAL;
	for (i = 0; i < t->capacity; i++) {
		if (t->used[i] && strcmp(t->slots[i].alarm_id, alarm_id) == 0) {
			r = &t->slots[i];
			break;
		}
	}
	if (!r)
		return -ENOENT;
	if (r->state == ALARM_STATE_ACKNOWLEDGED)
		return -EALREADY;
	r->state = ALARM_STATE_ACKNOWLEDGED;
	r->acked_at_ms = now_ms ? now_ms : 1;
	memcpy(r->acked_by, by, strlen(by) + 1);
	if (!r->condition_present) {
		close_slot(t, i, now_ms);
		return 0;
	}
	emit(t, r);
	return 0;
}

bool alarm_has_unacked_high(const struct alarm_table *t, const char *cuff)
{
	if (!t)
		return false;
	for (size_t i = 0; i < t->capacity; i++) {
		const struct alarm_record *r = &t->slots[i];

		if (!t->used[i] || r->priority != ALARM_PRIO_HIGH ||
		    r->state != ALARM_STATE_ACTIVE)
			continue;
		if (r->cuff[0] == '\0' || (cuff && strcmp(r->cuff, cuff) == 0))
			return true;
	}
	return false;
}

int alarm_list_open(const struct alarm_table *t, const char *cuff,
		    const struct alarm_record **out, size_t cap, size_t *n_out)
{
	size_t n = 0;
	uint64_t last = 0;

	if (!t || !n_out || (cap && !out))
		return -EINVAL;
	/* Raise order without sorting storage: repeatedly take the next higher seq. */
	for (;;) {
		const struct alarm_record *next = NULL;

		for (size_t i = 0; i < t->capacity; i++) {
			const struct alarm_record *r = &t->slots[i];

			if (!t->used[i] || r->seq <= last || (cuff && strcmp(r->cuff, cuff) != 0))
				continue;
			if (!next || r->seq < next->seq)
				next = r;
		}
		if (!next)
			break;
		if (n < cap)
			out[n] = next;
		n++;
		last = next->seq;
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
	for (size_t i = 0; t && alarm_id && i < t->capacity; i++)
		if (t->used[i] && strcmp(t->slots[i].alarm_id, alarm_id) == 0)
			return &t->slots[i];
	return NULL;
}

size_t alarm_open_count(const struct alarm_table *t)
{
	size_t n = 0;

	for (size_t i = 0; t && i < t->capacity; i++)
		n += t->used[i];
	return n;
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
