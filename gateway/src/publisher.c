/* publisher.c - see publisher.h. */
#include "publisher.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "messages.h"

struct publisher {
	struct loop *loop;
	struct mqtt_client *mqtt; /* NULL: none yet, or freed */
	struct store *store; /* borrowed; NULL without persistence */
	struct payload_ctx *ctx; /* borrowed: the wall clock of created_ms */
	struct outbox *outbox;
	bool store_fd_watched;
	struct publisher_callbacks cb;
	void *user_data;

	/* The send window: rows up to `cursor` were handed to Paho on this
	 * connection; `inflight` of them still wait for their PUBACK, at most
	 * `window` (publisher_send_window, set at each connect), refilled
	 * `refill_min` at a time. */
	int64_t cursor;
	size_t inflight;
	size_t window, refill_min;
	unsigned receive_max_logged; /* the Receive Maximum last named in the log; 0: none */

	/* Rows the broker refused, ascending ids, until it accepts them:
	 * offered again by retry_timer (in_flight while offered). */
	struct refused_row {
		int64_t id;
		bool in_flight;
	} *refused;
	size_t n_refused, cap_refused;
	uint64_t retry_timer;
	uint64_t pump_post; /* publisher_drain again, next turn of the loop */
	unsigned retry_ms;
	bool refusal_reported; /* on_broker_refused(true) was called */

	bool disk_failing; /* between a DISK_ERROR and the DISK_OK after it */
	char *expire_infix;  /* retained topics containing this expire (NULL: none) */
	uint32_t expire_s;
	uint64_t direct_lost; /* QoS 1 messages lost while running without a store */
	uint64_t qos0_refused;
};

/*
 * The Message Expiry of a message composed at created_ms: what is left of
 * expire_s since then (at least 1 s: a late message is still delivered to
 * those listening, and then leaves the broker's retained store at once).
 */
static uint32_t expiry_for(const struct publisher *pub, const char *topic, bool retain,
			   int64_t created_ms)
{
	int64_t age_s;

	if (!retain || !pub->expire_infix || !strstr(topic, pub->expire_infix))
		return 0;
	age_s = ((int64_t)payload_wall_ms(pub->ctx) - created_ms) / 1000;
	if (age_s < 0)
		age_s = 0;
	return age_s >= (int64_t)pub->expire_s ? 1 : pub->expire_s - (uint32_t)age_s;
}

static int publish_row(struct publisher *pub, const struct outbox_row *row)
{
	return mqtt_client_publish_expiring(pub->mqtt, row->topic, row->payload, row->len,
					    row->qos, row->retain,
					    expiry_for(pub, row->topic, row->retain, row->created_ms),
					    (uint64_t)row->id);
}

/* Straight to Paho (QoS 1) a message composed now. */
static int publish_now(struct publisher *pub, const char *topic, const void *buf, size_t len,
		       bool retain)
{
	return mqtt_client_publish_expiring(
		pub->mqtt, topic, buf, len, 1, retain,
		expiry_for(pub, topic, retain, (int64_t)payload_wall_ms(pub->ctx)), 0);
}

int publisher_expire_retained(struct publisher *pub, const char *topic_infix, uint32_t expiry_s)
{
	char *copy = NULL;

	if (topic_infix && expiry_s) {
		copy = strdup(topic_infix);
		if (!copy)
			return -ENOMEM;
	}
	free(pub->expire_infix);
	pub->expire_infix = copy;
	pub->expire_s = copy ? expiry_s : 0;
	return 0;
}

size_t publisher_send_window(unsigned receive_max, size_t *refill_min)
{
	size_t reserve = receive_max / 8 < PUBLISHER_DIRECT_RESERVE ? receive_max / 8
								   : PUBLISHER_DIRECT_RESERVE;
	size_t window = receive_max - reserve, refill;

	if (window > PUBLISHER_WINDOW)
		window = PUBLISHER_WINDOW;
	if (window == 0)
		window = 1;
	/* The same share of the window as PUBLISHER_REFILL_MIN of a full one. */
	refill = window * PUBLISHER_REFILL_MIN / PUBLISHER_WINDOW;
	*refill_min = refill ? refill : 1;
	return window;
}

/*
 * Hands committed outbox rows to Paho, at most `window` in flight
 * and PUBLISHER_DRAIN_BATCH per call; when there may be more, the post hook
 * calls again next turn of the loop, after whatever io is ready. A whole
 * window in one call (256 publishes, 8-15 us each) held the rest of a
 * burst, and its DEFLATEs, for up to 7.9 ms (uprobes, on_store_fd, 500
 * cuffs; docs/benchmarks.md); a backlog's drain loses nothing by it (the
 * window fills in four turns, then each PUBACK frees one slot).
 */
void publisher_drain(struct publisher *pub)
{
	const struct outbox_row *rows[PUBLISHER_DRAIN_BATCH];
	size_t n = 0, room;

	if (!pub->outbox || !mqtt_client_is_connected(pub->mqtt) || pub->inflight >= pub->window)
		return;
	room = pub->window - pub->inflight;
	/*
	 * A full window (a backlog draining) is refilled refill_min
	 * rows at a time, not one row per PUBACK: with a real-time loop every
	 * PUBACK woke the loop and then Paho's send thread for a single row,
	 * and the drain of a 10-minute outage reached 0.46 of a bare QoS 1
	 * publisher instead of 0.55 (docs/benchmarks.md). A window with room
	 * (normal operation) still sends each row at once.
	 */
	if (pub->inflight > 0 && room < pub->refill_min)
		return;
	if (room > PUBLISHER_DRAIN_BATCH)
		room = PUBLISHER_DRAIN_BATCH;
	if (outbox_next(pub->outbox, pub->cursor, room, rows, &n) < 0)
		return;
	if (n == PUBLISHER_DRAIN_BATCH)
		(void)loop_post_schedule(pub->loop, pub->pump_post); /* ours */
	for (size_t i = 0; i < n; i++) {
		const struct outbox_row *row = rows[i];
		int r = publish_row(pub, row);

		if (r < 0) {
			/* Not connected after all: publisher_connected starts over. */
			log_debug("outbox: %" PRId64 " not published: %s", row->id, strerror(-r));
			break;
		}
		pub->cursor = row->id;
		pub->inflight++;
	}
}

static void copy_row(const struct outbox_row *row, void *user_data)
{
	struct publisher *pub = user_data;

	(void)mqtt_client_publish_expiring(pub->mqtt, row->topic, row->payload, row->len, 1,
					   row->retain,
					   expiry_for(pub, row->topic, row->retain, row->created_ms),
					   0);
}

/*
 * While the disk fails every QoS 1 message is also sent at once (see
 * publisher_qos1_raw). Before the first such copy, and again at a connect,
 * the rows that wait ahead of it and were never sent go out as copies first,
 * in order: a row appended just before the disk error was reported, or one
 * the in-flight window held back, must not arrive after a later event of its
 * session. Rows that are neither in memory nor sent (a backlog on disk) are
 * left to the outbox; the copies after them are then counted as overtaking.
 */
static void copy_unsent(struct publisher *pub)
{
	size_t left;

	if (!pub->outbox || !mqtt_client_is_connected(pub->mqtt))
		return;
	left = outbox_foreach_unsent(pub->outbox, copy_row, pub);
	if (left)
		log_warn("outbox: %zu rows not in memory while the disk fails: copies of later "
			 "messages may arrive before them",
			 left);
}

static void on_outbox_ready(struct outbox *outbox, void *user_data)
{
	publisher_drain(user_data);
}

static void on_store_completion(const struct store_completion *c, void *user_data)
{
	struct publisher *pub = user_data;

	if (pub->outbox && outbox_handle_completion(pub->outbox, c))
		return;
	switch (c->kind) {
	case STORE_DONE_COMMITTED:
		break;
	case STORE_DONE_REJECTED:
		log_error("store: record rejected: %s", c->message ? c->message : "");
		break;
	case STORE_DONE_DISK_ERROR:
		if (!pub->disk_failing) {
			log_error("store: disk error: %s", c->message ? c->message : "");
			pub->disk_failing = true;
			copy_unsent(pub);
		}
		if (pub->cb.on_disk_health)
			pub->cb.on_disk_health(false, c->message, pub->user_data);
		break;
	case STORE_DONE_DISK_OK:
		log_info("store: disk writes recovered");
		pub->disk_failing = false;
		if (pub->cb.on_disk_health)
			pub->cb.on_disk_health(true, NULL, pub->user_data);
		break;
	}
}

/* --- rows the broker refused ------------------------------------------------ */

static struct refused_row *refused_find(const struct publisher *pub, int64_t id)
{
	for (size_t i = 0; i < pub->n_refused; i++)
		if (pub->refused[i].id == id)
			return &pub->refused[i];
	return NULL;
}

/* Keeps the list in id order: rows are offered again oldest first. */
static int refused_add(struct publisher *pub, int64_t id)
{
	struct refused_row *known = refused_find(pub, id);
	size_t i;

	if (known) {
		known->in_flight = false;
		return 0;
	}
	if (pub->n_refused == pub->cap_refused) {
		size_t cap = pub->cap_refused ? pub->cap_refused * 2 : 16;
		struct refused_row *v = realloc(pub->refused, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		pub->refused = v;
		pub->cap_refused = cap;
	}
	for (i = pub->n_refused; i > 0 && pub->refused[i - 1].id > id; i--)
		pub->refused[i] = pub->refused[i - 1];
	pub->refused[i] = (struct refused_row){ .id = id };
	pub->n_refused++;
	return 0;
}

static void refused_remove(struct publisher *pub, int64_t id)
{
	size_t kept = 0;

	for (size_t i = 0; i < pub->n_refused; i++)
		if (pub->refused[i].id != id)
			pub->refused[kept++] = pub->refused[i];
	pub->n_refused = kept;
}

static void arm_retry(struct publisher *pub)
{
	if (loop_timer_is_active(pub->loop, pub->retry_timer, NULL))
		return;
	if (loop_timer_start(pub->loop, pub->retry_timer, pub->retry_ms, 0) < 0)
		log_error("outbox: cannot arm the retry of refused messages");
}

/* Offers every refused row again, in id order, as far as the window has room. */
static void on_retry(struct loop *loop, uint64_t id, void *user_data)
{
	struct publisher *pub = user_data;
	bool window_full = false;

	for (size_t i = 0; i < pub->n_refused; i++) {
		struct refused_row *rr = &pub->refused[i];
		const struct outbox_row *row = outbox_get(pub->outbox, rr->id);

		if (rr->in_flight || !row || !mqtt_client_is_connected(pub->mqtt))
			continue;
		/* A refused row takes a slot of the window like any other; past it,
		 * Paho would hold the row at the head of its queue. */
		if (pub->inflight >= pub->window) {
			window_full = true;
			break;
		}
		if (publish_row(pub, row) == 0) {
			rr->in_flight = true;
			pub->inflight++;
		}
	}
	/* The next refusal waits longer; the end of the refusals resets it.
	 * Rows the window held back were not refused again: same delay. */
	if (!window_full)
		pub->retry_ms = pub->retry_ms * 2 > PUBLISHER_RETRY_MAX_MS ? PUBLISHER_RETRY_MAX_MS
									   : pub->retry_ms * 2;
	for (size_t i = 0; i < pub->n_refused; i++)
		if (!pub->refused[i].in_flight) {
			arm_retry(pub);
			break;
		}
}

static void on_pump_post(struct loop *loop, void *user_data)
{
	publisher_drain(user_data);
}

static void on_store_fd(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct publisher *pub = user_data;

	store_dispatch_completions(pub->store);
}

int publisher_new(struct loop *loop, struct store *store, size_t outbox_max_bytes,
		  struct payload_ctx *ctx, const struct publisher_callbacks *cb, void *user_data,
		  struct publisher **out)
{
	struct publisher *pub = calloc(1, sizeof(*pub));
	int r;

	if (!pub)
		return -ENOMEM;
	pub->loop = loop;
	pub->store = store;
	pub->ctx = ctx;
	pub->window = PUBLISHER_WINDOW;
	pub->refill_min = PUBLISHER_REFILL_MIN;
	if (cb)
		pub->cb = *cb;
	pub->user_data = user_data;
	pub->retry_ms = PUBLISHER_RETRY_MIN_MS;
	r = loop_timer_new(loop, on_retry, pub, &pub->retry_timer);
	if (r < 0)
		goto fail;
	r = loop_post_new(loop, on_pump_post, pub, &pub->pump_post);
	if (r < 0)
		goto fail;
	if (!store)
		goto done;
	r = outbox_new(store, outbox_max_bytes, &pub->outbox);
	if (r < 0)
		goto fail;
	outbox_set_ready_cb(pub->outbox, on_outbox_ready, pub);
	store_set_completion_cb(store, on_store_completion, pub);
	/* A failed reload loses no row: they stay on disk for the next start. */
	r = outbox_load_pending(pub->outbox);
	if (r < 0)
		log_error("outbox: reloading pending messages failed: %s", strerror(-r));
	else if (outbox_depth(pub->outbox))
		log_info("outbox: %zu messages waiting from before the restart",
			 outbox_depth(pub->outbox));
	r = loop_add_io(loop, store_completion_fd(store), EPOLLIN, on_store_fd, pub);
	if (r < 0)
		goto fail;
	pub->store_fd_watched = true;
done:
	*out = pub;
	return 0;
fail:
	loop_post_free(loop, pub->pump_post);
	loop_timer_free(loop, pub->retry_timer);
	outbox_free(pub->outbox);
	free(pub);
	return r;
}

void publisher_set_client(struct publisher *pub, struct mqtt_client *mqtt)
{
	pub->mqtt = mqtt;
}

void publisher_free(struct publisher *pub, unsigned flush_ms)
{
	if (!pub)
		return;
	if (pub->store) {
		store_flush(pub->store, flush_ms);
		if (pub->store_fd_watched)
			loop_del_io(pub->loop, store_completion_fd(pub->store));
	}
	loop_post_free(pub->loop, pub->pump_post);
	loop_timer_free(pub->loop, pub->retry_timer);
	free(pub->refused);
	free(pub->expire_infix);
	outbox_free(pub->outbox);
	if (pub->direct_lost)
		log_error("mqtt: %" PRIu64 " QoS 1 messages were lost while running without a "
			  "database",
			  pub->direct_lost);
	free(pub);
}

int publisher_qos1_raw(struct publisher *pub, const char *topic, const void *buf, size_t len,
		       unsigned flags, const char *msg_id)
{
	bool connected = mqtt_client_is_connected(pub->mqtt);
	int r;

	if (!pub->outbox) {
		/* No database: best effort, what the broker does not get now is lost. */
		r = connected ? publish_now(pub, topic, buf, len, flags & OUTBOX_RETAIN) : -ENOTCONN;
		if (r < 0)
			pub->direct_lost++;
		return r;
	}
	r = outbox_append(pub->outbox, topic, buf, len, 1, flags, msg_id, (int64_t)payload_wall_ms(pub->ctx));
	if (r == -ENOBUFS)
		return r; /* a superseded state snapshot; the next one will do */
	/*
	 * While the disk fails nothing commits, so nothing would reach the
	 * broker - not even the storage_error alarm. Send a copy now; the
	 * outbox sends it again once committed, with the same msg_id. Its
	 * result does not matter: the outbox copy is the one that counts.
	 */
	if (pub->disk_failing && connected)
		(void)publish_now(pub, topic, buf, len, flags & OUTBOX_RETAIN);
	if (r < 0) {
		log_error("outbox: %s not queued: %s", topic, strerror(-r));
		if (pub->cb.on_outbox_refused)
			pub->cb.on_outbox_refused(topic, r, pub->user_data);
	}
	return r;
}

int publisher_qos1(struct publisher *pub, const char *topic, json_t *payload, unsigned flags)
{
	char *text = json_dumps(payload, MSG_JSON_FLAGS);
	int r;

	if (!text)
		return -ENOMEM;
	r = publisher_qos1_raw(pub, topic, text, strlen(text), flags,
			       json_string_value(json_object_get(payload, "msg_id")));
	free(text);
	return r;
}

int publisher_qos0(struct publisher *pub, const char *topic, json_t *payload)
{
	char *text;
	int r;

	if (!mqtt_client_is_connected(pub->mqtt))
		return -ENOTCONN; /* QoS 0 live data is never queued */
	text = json_dumps(payload, MSG_JSON_FLAGS);
	if (!text)
		return -ENOMEM;
	r = publisher_qos0_text(pub, topic, text, strlen(text));
	free(text);
	return r;
}

/*
 * Unreported (mqtt_client_publish_unreported): nobody acts on a QoS 0
 * result, and a report per telemetry message woke the loop from Paho's
 * thread 20 000 times a second at 2 000 cuffs.
 */
int publisher_qos0_text(struct publisher *pub, const char *topic, const char *text, size_t len)
{
	int r;

	if (!mqtt_client_is_connected(pub->mqtt))
		return -ENOTCONN; /* QoS 0 live data is never queued */
	r = mqtt_client_publish_unreported(pub->mqtt, topic, text, len, false, 0);
	if (r < 0 && (pub->qos0_refused++ & 1023) == 0)
		log_warn("mqtt: telemetry refused by the client (%" PRIu64 " so far)",
			 pub->qos0_refused);
	return r;
}

bool publisher_qos0_busy(const struct publisher *pub)
{
	return pub->mqtt && mqtt_client_unreported_pending(pub->mqtt) >= PUBLISHER_QOS0_MAX_PENDING;
}

int publisher_snapshot(struct publisher *pub, const char *topic, json_t *payload,
		       uint32_t expiry_s)
{
	char *text;
	int r;

	if (!mqtt_client_is_connected(pub->mqtt))
		return -ENOTCONN;
	text = json_dumps(payload, MSG_JSON_FLAGS);
	if (!text)
		return -ENOMEM;
	/* Unreported like telemetry: the next refresh replaces it anyway. */
	r = mqtt_client_publish_unreported(pub->mqtt, topic, text, strlen(text), true, expiry_s);
	free(text);
	return r;
}

int publisher_direct(struct publisher *pub, const char *topic, const void *buf, size_t len,
		     bool retain)
{
	if (!mqtt_client_is_connected(pub->mqtt))
		return -ENOTCONN;
	return mqtt_client_publish(pub->mqtt, topic, buf, len, 1, retain, 0);
}

int publisher_reply(struct publisher *pub, const char *response_topic,
		    const uint8_t *correlation, size_t correlation_len, const void *buf,
		    size_t len)
{
	if (!mqtt_client_is_connected(pub->mqtt))
		return -ENOTCONN;
	return mqtt_client_publish_reply(pub->mqtt, response_topic, correlation, correlation_len,
					 buf, len);
}

void publisher_connected(struct publisher *pub)
{
	unsigned receive_max = mqtt_client_receive_maximum(pub->mqtt);

	/* Everything handed to the old connection may be lost: send again from
	 * the oldest unacknowledged row (consumers dedupe on msg_id). Refused
	 * rows are among them: the window covers them from here. */
	pub->cursor = 0;
	pub->inflight = 0;
	pub->window = publisher_send_window(receive_max, &pub->refill_min);
	/* Said when it changes, not at every reconnect of a flapping link; the
	 * shipped brokers' 256 (less the reserve) is not worth a word. */
	if (receive_max < PUBLISHER_WINDOW && pub->receive_max_logged != receive_max)
		log_warn("outbox: the broker allows %u QoS 1 messages in flight (its Receive "
			 "Maximum): the outbox keeps at most %zu unacknowledged instead of %d, "
			 "and a backlog drains more slowly (mosquitto: max_inflight_messages %d; "
			 "docs/operations.md)",
			 receive_max, pub->window, PUBLISHER_WINDOW, PUBLISHER_WINDOW);
	pub->receive_max_logged = receive_max < PUBLISHER_WINDOW ? receive_max : 0;
	pub->n_refused = 0;
	loop_timer_stop(pub->loop, pub->retry_timer);
	publisher_drain(pub);
	if (pub->disk_failing)
		copy_unsent(pub); /* what the window did not take, before new copies */
}

void publisher_publish_result(struct publisher *pub, uint64_t tag,
			      const struct mqtt_publish_result *res)
{
	const struct outbox_row *row;
	int r;

	if (tag == 0 || !pub->outbox)
		return;
	if (pub->inflight > 0)
		pub->inflight--;
	if (res->result == -EACCES) {
		/*
		 * The broker refused it (an ACL deny, a quota): the row stays, and
		 * is offered again with a backoff until the broker takes it.
		 */
		row = outbox_get(pub->outbox, (int64_t)tag);
		if (!row)
			goto out;
		if (refused_add(pub, (int64_t)tag) == 0)
			arm_retry(pub);
		if (!pub->refusal_reported) {
			log_error("outbox: the broker refused %s: %s (0x%02x)%s%s; kept, offered "
				  "again with a backoff",
				  row->topic, res->reason ? res->reason : "", res->reason_code,
				  res->reason_string ? ": " : "",
				  res->reason_string ? res->reason_string : "");
			pub->refusal_reported = true;
			if (pub->cb.on_broker_refused)
				pub->cb.on_broker_refused(true, row->topic, res->reason_code,
							  res->reason, pub->user_data);
		}
		goto out;
	}
	/*
	 * Any other failure leaves the row in the outbox: it is sent again, in
	 * order, after the next connect. Rewinding on a live connection would
	 * re-send older retained rows after newer ones (ghost alarms).
	 */
	if (res->result != 0) {
		struct refused_row *rr = refused_find(pub, (int64_t)tag);

		if (rr)
			rr->in_flight = false;
		goto out;
	}
	r = outbox_ack(pub->outbox, (int64_t)tag);
	if (r < 0 && r != -ENOENT)
		log_error("outbox: ack of %" PRIu64 " failed: %s", tag, strerror(-r));
	if (refused_find(pub, (int64_t)tag)) {
		refused_remove(pub, (int64_t)tag);
		if (pub->n_refused == 0 && pub->refusal_reported) {
			/* Everything once refused has been taken. */
			pub->refusal_reported = false;
			pub->retry_ms = PUBLISHER_RETRY_MIN_MS;
			log_info("outbox: the broker accepts what it refused");
			if (pub->cb.on_broker_refused)
				pub->cb.on_broker_refused(false, NULL, 0, NULL, pub->user_data);
		}
	}
out:
	publisher_drain(pub);
}

size_t publisher_refused_count(const struct publisher *pub)
{
	return pub->n_refused;
}

bool publisher_is_connected(const struct publisher *pub)
{
	return mqtt_client_is_connected(pub->mqtt);
}

bool publisher_has_store(const struct publisher *pub)
{
	return pub->outbox != NULL;
}

size_t publisher_outbox_depth(const struct publisher *pub)
{
	return pub->outbox ? outbox_depth(pub->outbox) : 0;
}

bool publisher_outbox_over_alarm_level(const struct publisher *pub)
{
	return pub->outbox && outbox_over_alarm_level(pub->outbox);
}

bool publisher_outbox_full(const struct publisher *pub)
{
	return pub->outbox && outbox_is_full(pub->outbox);
}
