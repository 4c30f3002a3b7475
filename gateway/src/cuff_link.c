/* cuff_link.c - see cuff_link.h */
#include "cuff_link.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "att_client.h"
#include "backoff.h"
#include "bytes.h"
#include "log.h"

#define CP_SLOTS 16
/* Non-DEFLATE requests leave these slots free so a DEFLATE always fits. */
#define CP_SLOTS_RESERVED 4

enum setup_step {
	SETUP_NONE,
	SETUP_CCCD_SERVICE_CHANGED, /* first: a change during the rest of setup is seen */
	SETUP_READ_FEATURES,
	SETUP_READ_STATUS,
	SETUP_CCCD_PRESSURE,
	SETUP_CCCD_STATUS,
	SETUP_CCCD_BATTERY,
	SETUP_CCCD_CP,
	SETUP_SUPERVISION_WRITE,
	SETUP_SUPERVISION_RESULT,
};

struct cp_slot {
	bool in_use;
	uint8_t opcode;
	uint32_t seq;
	uint64_t timer_id;
	struct cuff_link *link;
};

/* Identifies one CP write for its ATT callback; outlives a timed-out slot. */
struct cp_token {
	struct cuff_link *link;
	uint32_t seq;
};

struct cuff_link {
	struct loop *loop;
	char *id;
	struct transport_address addr;
	uint16_t supervision_timeout_ms;
	struct transport_sched *sched;
	bool own_sched;
	struct cuff_link_callbacks cb;
	void *user_data;

	enum cuff_link_state state;
	bool started;
	bool ever_connected;
	unsigned connect_id;
	uint64_t reconnect_timer;
	struct backoff backoff;
	uint32_t rng;

	struct att_client *att;
	struct gatt_discovery *disc; /* the first discovery, or one after Service Changed */
	struct gatt_cuff_handles h;
	enum setup_step step;
	bool resubscribing; /* setup after a rediscovery: CCCDs only */
	bool sc_pending;    /* Service Changed came while setup or a rediscovery ran */
	uint64_t setup_timer;
	struct bfr_features features;
	struct bfr_status status;
	uint64_t ready_since;
	uint64_t keepalive_timer;
	uint16_t token;
	bool released;          /* keepalives stopped on purpose (SR-24) */
	uint64_t release_timer; /* then the drop, or keepalives again */
	uint64_t release_at_ms;
	uint64_t cp_answered_ms; /* the last ATT response or indication to a CP write */

	struct cp_slot cp[CP_SLOTS];
	uint32_t cp_seq;

	char last_error[256];
	struct cuff_link_stats stats;
	struct att_client_stats att_done; /* totals of bearers already freed */
};

const char *cuff_link_state_name(enum cuff_link_state state)
{
	switch (state) {
	case CUFF_LINK_DISCONNECTED:
		return "disconnected";
	case CUFF_LINK_CONNECTING:
		return "connecting";
	case CUFF_LINK_DISCOVERING:
		return "discovering";
	case CUFF_LINK_READY:
		return "ready";
	case CUFF_LINK_BACKOFF:
		return "backoff";
	}
	return "unknown";
}

static void link_log(const struct cuff_link *link, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void link_log(const struct cuff_link *link, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("cuff %s: %s", link->id, msg);
}

/* Logs the 1st, 2nd, 4th, 8th ... occurrence: a stream of bad values cannot flood the log. */
static bool log_worthy(uint64_t count)
{
	return (count & (count - 1)) == 0;
}

static uint32_t xorshift(void *data)
{
	uint32_t *s = data;

	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void set_state(struct cuff_link *link, enum cuff_link_state state, const char *error)
{
	link->state = state;
	if (link->cb.on_state)
		link->cb.on_state(link, state, error, link->user_data);
}

/* --- teardown ----------------------------------------------------------------- */

static void cancel_timer(struct cuff_link *link, uint64_t *id)
{
	if (*id) {
		loop_cancel_timer(link->loop, *id);
		*id = 0;
	}
}

static void cp_release(struct cp_slot *s)
{
	if (s->timer_id)
		loop_cancel_timer(s->link->loop, s->timer_id);
	s->timer_id = 0;
	s->in_use = false;
}

static void fail_pending_cps(struct cuff_link *link, int err, const char *why)
{
	for (int i = 0; i < CP_SLOTS; i++) {
		struct cp_slot *s = &link->cp[i];
		uint8_t opcode = s->opcode;

		if (!s->in_use)
			continue;
		cp_release(s);
		link->stats.cp_failed++;
		if (link->cb.on_cp_failed)
			link->cb.on_cp_failed(link, opcode, err, why, link->user_data);
	}
}

static void add_att_stats(struct att_client_stats *sum, const struct att_client_stats *s)
{
	sum->pdus_rx += s->pdus_rx;
	sum->pdus_tx += s->pdus_tx;
	sum->malformed += s->malformed;
	sum->unknown_opcode += s->unknown_opcode;
	sum->unexpected_rsp += s->unexpected_rsp;
}

/* Drops bearer, discovery and timers of the current session. No callbacks. */
static void teardown_session(struct cuff_link *link)
{
	if (link->connect_id) {
		transport_sched_cancel(link->sched, link->connect_id);
		link->connect_id = 0;
	}
	if (link->disc) {
		gatt_discovery_free(link->disc);
		link->disc = NULL;
	}
	if (link->att) {
		struct att_client_stats st;

		att_client_get_stats(link->att, &st);
		add_att_stats(&link->att_done, &st);
		att_client_free(link->att); /* deferred by att_client if inside its callback */
		link->att = NULL;
	}
	cancel_timer(link, &link->setup_timer);
	cancel_timer(link, &link->keepalive_timer);
	cancel_timer(link, &link->release_timer);
	link->released = false;
	link->step = SETUP_NONE;
	link->resubscribing = false;
	link->sc_pending = false;
}

static void begin_connect(struct cuff_link *link);

static void reconnect_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct cuff_link *link = user_data;

	link->reconnect_timer = 0;
	link->stats.reconnects++;
	begin_connect(link);
}

/* The session failed or was lost: report, wait, try again. */
static void link_failed(struct cuff_link *link, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void link_failed(struct cuff_link *link, int err, const char *fmt, ...)
{
	va_list ap;
	uint32_t delay;
	bool was_ready = link->state == CUFF_LINK_READY;

	va_start(ap, fmt);
	vsnprintf(link->last_error, sizeof(link->last_error), fmt, ap);
	va_end(ap);
	teardown_session(link);
	if (was_ready && loop_now_ms(link->loop) - link->ready_since >= CUFF_LINK_STABLE_MS)
		backoff_reset(&link->backoff);
	link_log(link, "%s", link->last_error);
	fail_pending_cps(link, -ECONNRESET, "link lost");
	if (!link->started)
		return; /* stopped from inside a callback above */
	delay = backoff_next_ms(&link->backoff);
	if (loop_add_timer(link->loop, delay, reconnect_cb, link, &link->reconnect_timer) < 0)
		link->reconnect_timer = 0; /* cannot happen without ENOMEM; start() recovers */
	set_state(link, CUFF_LINK_BACKOFF, link->last_error);
	(void)err;
}

/* --- ready: keepalive ---------------------------------------------------------- */

static void keepalive_cb(struct loop *loop, uint64_t timer_id, void *user_data);

static void send_keepalive(struct cuff_link *link)
{
	uint8_t v[BFR_SUPERVISION_WIRE_SIZE];
	int r;

	put_le16(v, link->token++);
	r = att_client_write_cmd(link->att, link->h.supervision, v, sizeof(v));
	if (r < 0) {
		link->stats.keepalive_errors++;
		if (log_worthy(link->stats.keepalive_errors))
			link_log(link, "supervision keepalive not sent: %s", strerror(-r));
	} else {
		link->stats.keepalives++;
	}
	if (loop_add_timer(link->loop, link->supervision_timeout_ms / 3, keepalive_cb, link,
			   &link->keepalive_timer) < 0)
		link->keepalive_timer = 0;
}

static void keepalive_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct cuff_link *link = user_data;

	link->keepalive_timer = 0;
	if (link->state == CUFF_LINK_READY && link->att && !link->released)
		send_keepalive(link);
}

static void release_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct cuff_link *link = user_data;

	link->release_timer = 0;
	/* Requests wait (the engine re-sends its DEFLATE every second at least)
	 * and nothing came back since the release: the channel is dead. */
	for (int i = 0; i < CP_SLOTS; i++)
		if (link->cp[i].in_use && link->cp_answered_ms < link->release_at_ms) {
			link_failed(link, -ETIMEDOUT,
				    "control channel dead: left to the cuff's own fail-safe for "
				    "%u ms, reconnecting",
				    (unsigned)link->supervision_timeout_ms);
			return;
		}
	/* The cuff answers: the channel works, supervise it again. */
	link->released = false;
	send_keepalive(link);
}

void cuff_link_release(struct cuff_link *link)
{
	if (link->state != CUFF_LINK_READY || link->released)
		return;
	link->released = true;
	link->release_at_ms = loop_now_ms(link->loop);
	cancel_timer(link, &link->keepalive_timer);
	link_log(link, "no answer to a safety DEFLATE: supervision keepalives stopped so the "
		       "cuff deflates itself");
	if (loop_add_timer(link->loop,
			   (uint64_t)link->supervision_timeout_ms + CUFF_LINK_RELEASE_MARGIN_MS,
			   release_cb, link, &link->release_timer) < 0) {
		/* Without the timer the drop cannot wait: do it now. */
		link->release_timer = 0;
		link_failed(link, -ENOMEM, "control channel dead, reconnecting");
	}
}

static void start_rediscovery(struct cuff_link *link);

static void go_ready(struct cuff_link *link)
{
	cancel_timer(link, &link->setup_timer);
	link->step = SETUP_NONE;
	link->ready_since = loop_now_ms(link->loop);
	link->last_error[0] = '\0';
	send_keepalive(link);
	set_state(link, CUFF_LINK_READY, NULL);
	if (link->state == CUFF_LINK_READY && link->cb.on_ready)
		link->cb.on_ready(link, &link->features, &link->status, &link->h.info,
				  link->user_data);
	if (link->state == CUFF_LINK_READY && link->sc_pending)
		start_rediscovery(link);
}

/* --- setup after discovery -------------------------------------------------------- */

static void on_setup_rsp(int err, const struct att_pdu *rsp, void *user_data);

static int setup_read(struct cuff_link *link, uint16_t handle)
{
	struct att_pdu pdu = { .opcode = ATT_OP_READ_REQ };

	pdu.read_req.handle = handle;
	return att_client_send(link->att, &pdu, 0, on_setup_rsp, link, NULL, NULL);
}

static int setup_write(struct cuff_link *link, uint16_t handle, const uint8_t *v, size_t len)
{
	struct att_pdu pdu = { .opcode = ATT_OP_WRITE_REQ };

	pdu.handle_value.handle = handle;
	pdu.handle_value.value = v;
	pdu.handle_value.value_len = len;
	return att_client_send(link->att, &pdu, 0, on_setup_rsp, link, NULL, NULL);
}

static int setup_cccd(struct cuff_link *link, uint16_t handle, uint16_t bits)
{
	uint8_t v[2];

	put_le16(v, bits);
	return setup_write(link, handle, v, sizeof(v));
}

static const char *setup_name(enum setup_step s)
{
	switch (s) {
	case SETUP_CCCD_SERVICE_CHANGED:
		return "enabling Service Changed indications";
	case SETUP_READ_FEATURES:
		return "reading Cuff Features";
	case SETUP_READ_STATUS:
		return "reading Cuff Status";
	case SETUP_CCCD_PRESSURE:
		return "enabling Cuff Pressure notifications";
	case SETUP_CCCD_STATUS:
		return "enabling Cuff Status notifications";
	case SETUP_CCCD_BATTERY:
		return "enabling Battery Level notifications";
	case SETUP_CCCD_CP:
		return "enabling Control Point indications";
	case SETUP_SUPERVISION_WRITE:
	case SETUP_SUPERVISION_RESULT:
		return "SET_SUPERVISION";
	case SETUP_NONE:
		break;
	}
	return "setup";
}

static void setup_timeout_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct cuff_link *link = user_data;

	link->setup_timer = 0;
	link_failed(link, -ETIMEDOUT, "SET_SUPERVISION: no Control Point indication within %d ms",
		    CUFF_LINK_CP_TIMEOUT_MS);
}

/* The CCCDs are set at the new handles after a rediscovery: back to plain READY. */
static void resubscribed(struct cuff_link *link)
{
	link->step = SETUP_NONE;
	link->resubscribing = false;
	if (link->sc_pending)
		start_rediscovery(link);
}

/*
 * Sends the request of link->step (skipping steps that do not apply). After
 * a rediscovery (resubscribing) only the CCCDs are written: Features and
 * Status are known and supervision is running.
 */
static void setup_next(struct cuff_link *link)
{
	int r = 0;

	for (;;) {
		link->step++;
		switch (link->step) {
		case SETUP_CCCD_SERVICE_CHANGED:
			if (!link->h.service_changed_cccd)
				continue;
			r = setup_cccd(link, link->h.service_changed_cccd, ATT_CCCD_INDICATE);
			break;
		case SETUP_READ_FEATURES:
			if (link->resubscribing)
				continue;
			r = setup_read(link, link->h.features);
			break;
		case SETUP_READ_STATUS:
			if (link->resubscribing)
				continue;
			r = setup_read(link, link->h.status);
			break;
		case SETUP_CCCD_PRESSURE:
			r = setup_cccd(link, link->h.pressure_cccd, ATT_CCCD_NOTIFY);
			break;
		case SETUP_CCCD_STATUS:
			r = setup_cccd(link, link->h.status_cccd, ATT_CCCD_NOTIFY);
			break;
		case SETUP_CCCD_BATTERY:
			if (!link->h.battery_cccd)
				continue;
			r = setup_cccd(link, link->h.battery_cccd, ATT_CCCD_NOTIFY);
			break;
		case SETUP_CCCD_CP:
			r = setup_cccd(link, link->h.control_point_cccd, ATT_CCCD_INDICATE);
			break;
		case SETUP_SUPERVISION_WRITE: {
			struct bfr_cp_request req = { .opcode = BFR_CP_SET_SUPERVISION };
			uint8_t buf[8];
			size_t len;

			if (link->resubscribing) {
				resubscribed(link);
				return;
			}
			req.supervision_timeout_ms = link->supervision_timeout_ms;
			r = bfr_cp_request_encode(&req, buf, sizeof(buf), &len);
			if (r == 0)
				r = setup_write(link, link->h.control_point, buf, len);
			/* The result indication may race the write response: time it from now. */
			if (r == 0)
				r = loop_add_timer(link->loop, CUFF_LINK_CP_TIMEOUT_MS,
						   setup_timeout_cb, link, &link->setup_timer);
			break;
		}
		case SETUP_SUPERVISION_RESULT:
			return; /* waiting for the indication */
		default:
			return;
		}
		break;
	}
	if (r < 0)
		link_failed(link, r, "%s%s: %s",
			    link->resubscribing ? "after Service Changed: " : "",
			    setup_name(link->step), strerror(-r));
}

static void on_setup_rsp(int err, const struct att_pdu *rsp, void *user_data)
{
	struct cuff_link *link = user_data;
	int r;

	if (err && err != -EPROTO)
		return; /* the bearer died: its disconnect callback handles the link */
	if (link->step == SETUP_NONE || link->step == SETUP_SUPERVISION_RESULT)
		return; /* SET_SUPERVISION's result indication overtook its write response */
	if (err == -EPROTO) {
		link_failed(link, err, "%s%s: ATT error %s (0x%02x)",
			    link->resubscribing ? "after Service Changed: " : "",
			    setup_name(link->step), att_error_name(rsp->error_rsp.error),
			    rsp->error_rsp.error);
		return;
	}
	switch (link->step) {
	case SETUP_READ_FEATURES:
		r = bfr_features_decode(rsp->value.value, rsp->value.value_len, &link->features);
		if (r < 0) {
			link->stats.malformed++;
			link_failed(link, r, "Cuff Features value malformed (%zu bytes)",
				    rsp->value.value_len);
			return;
		}
		break;
	case SETUP_READ_STATUS:
		r = bfr_status_decode(rsp->value.value, rsp->value.value_len, &link->status);
		if (r < 0) {
			link->stats.malformed++;
			link_failed(link, r, "Cuff Status value malformed (%zu bytes)",
				    rsp->value.value_len);
			return;
		}
		break;
	case SETUP_SUPERVISION_WRITE:
		/* The result may already have arrived (indication before write response). */
		if (link->step == SETUP_SUPERVISION_WRITE)
			link->step = SETUP_SUPERVISION_RESULT;
		return;
	default:
		break;
	}
	setup_next(link);
}

static void setup_cp_result(struct cuff_link *link, const struct bfr_cp_response *rsp)
{
	if (rsp->req_opcode != BFR_CP_SET_SUPERVISION) {
		link->stats.cp_unexpected++;
		return;
	}
	if (rsp->result != BFR_RESULT_SUCCESS) {
		/* No fail-safe, no session: a cuff we cannot supervise is not used. */
		link_failed(link, -EPROTO, "cuff refused SET_SUPERVISION(%u ms): %s",
			    link->supervision_timeout_ms, bfr_cp_result_name(rsp->result));
		return;
	}
	go_ready(link);
}

/* --- Service Changed ----------------------------------------------------------------- */

/* Equal value and CCCD handles (the Device Information strings do not count). */
static bool same_handles(const struct gatt_cuff_handles *a, const struct gatt_cuff_handles *b)
{
	struct gatt_cuff_handles x = *a, y = *b;

	memset(&x.info, 0, sizeof(x.info));
	memset(&y.info, 0, sizeof(y.info));
	x.mtu = y.mtu = 0;
	return memcmp(&x, &y, sizeof(x)) == 0;
}

/*
 * Discovery on the same link has finished. The new handles take over at
 * once (keepalives, Control Point, the receive path), then every CCCD is
 * written again there: a server may have reset them with the change.
 */
static void on_rediscovered(int err, const char *msg, const struct gatt_cuff_handles *h,
			    void *user_data)
{
	struct cuff_link *link = user_data;
	struct gatt_cuff_handles nh;

	if (!err)
		nh = *h; /* h lives inside the discovery freed below */
	gatt_discovery_free(link->disc);
	link->disc = NULL;
	if (err) {
		link_failed(link, err, "discovery after Service Changed failed: %s", msg);
		return;
	}
	link_log(link, "after Service Changed: %s",
		 same_handles(&link->h, &nh) ? "handles unchanged" :
					       "handles moved, using the new ones");
	link->h = nh;
	link->resubscribing = true;
	link->step = SETUP_NONE;
	setup_next(link);
}

static void start_rediscovery(struct cuff_link *link)
{
	int r;

	link->sc_pending = false;
	r = gatt_discovery_rediscover(link->att, on_rediscovered, link, &link->disc);
	if (r < 0)
		link_failed(link, r, "Service Changed: cannot discover again: %s", strerror(-r));
}

/*
 * Service Changed (Core Vol 3 Part G 7.1): the handles in [start, end] may
 * have changed. Like BlueZ, the link stays up and discovers again; unlike
 * BlueZ (which re-reads only that range into its cache) it discovers the
 * whole table, which is a few requests. Until that finishes the known
 * handles stay in use, so keepalives continue and READY is kept.
 */
static void service_changed(struct cuff_link *link, const uint8_t *v, size_t len)
{
	uint16_t start = len == 4 ? get_le16(v) : 0;
	uint16_t end = len == 4 ? get_le16(v + 2) : 0;

	if (len != 4 || start == 0 || start > end) {
		link->stats.malformed++;
		if (log_worthy(link->stats.malformed))
			link_log(link, "malformed Service Changed value (%zu bytes) dropped", len);
		return;
	}
	link->stats.service_changed++;
	link_log(link, "Service Changed 0x%04x-0x%04x: discovering again on the same link", start,
		 end);
	if (link->state != CUFF_LINK_READY || link->disc || link->step != SETUP_NONE) {
		/* Setup or a rediscovery is running: discover (again) once it is done. */
		link->sc_pending = true;
		return;
	}
	start_rediscovery(link);
}

/* --- receive path -------------------------------------------------------------------- */

static void handle_cp_indication(struct cuff_link *link, const uint8_t *v, size_t len)
{
	struct bfr_cp_response rsp;
	struct cp_slot *match = NULL;

	link->cp_answered_ms = loop_now_ms(link->loop);
	if (bfr_cp_response_decode(v, len, &rsp) < 0) {
		link->stats.malformed++;
		if (log_worthy(link->stats.malformed))
			link_log(link, "malformed Control Point indication (%zu bytes) dropped",
				 len);
		return;
	}
	if (link->step == SETUP_SUPERVISION_WRITE || link->step == SETUP_SUPERVISION_RESULT) {
		setup_cp_result(link, &rsp);
		return;
	}
	for (int i = 0; i < CP_SLOTS; i++) {
		struct cp_slot *s = &link->cp[i];

		if (s->in_use && s->opcode == rsp.req_opcode && (!match || s->seq < match->seq))
			match = s;
	}
	if (!match) {
		link->stats.cp_unexpected++;
		if (log_worthy(link->stats.cp_unexpected))
			link_log(link, "Control Point result for %s nobody asked for",
				 bfr_cp_opcode_name(rsp.req_opcode));
		return;
	}
	cp_release(match);
	if (link->cb.on_cp_result)
		link->cb.on_cp_result(link, &rsp, link->user_data);
}

static void on_value(uint16_t handle, const uint8_t *v, size_t len, bool indication,
		     void *user_data)
{
	struct cuff_link *link = user_data;

	if (!link->h.pressure) {
		/* Before discovery finished nothing can be attributed: drop, count. */
		link->stats.malformed++;
		return;
	}
	if (handle == link->h.pressure && !indication) {
		struct bfr_sample samples[BFR_MAX_SAMPLES_PER_NTF];
		size_t n;

		if (bfr_pressure_decode(v, len, samples, BFR_MAX_SAMPLES_PER_NTF, &n) < 0) {
			link->stats.malformed++;
			if (log_worthy(link->stats.malformed))
				link_log(link, "malformed Cuff Pressure value (%zu bytes) dropped",
					 len);
			return;
		}
		link->stats.samples += n;
		if (link->cb.on_samples)
			link->cb.on_samples(link, samples, n, link->user_data);
		return;
	}
	if (handle == link->h.status && !indication) {
		struct bfr_status st;

		if (bfr_status_decode(v, len, &st) < 0) {
			link->stats.malformed++;
			if (log_worthy(link->stats.malformed))
				link_log(link, "malformed Cuff Status value (%zu bytes) dropped", len);
			return;
		}
		link->status = st;
		if (link->cb.on_status)
			link->cb.on_status(link, &st, link->user_data);
		return;
	}
	if (handle == link->h.battery_level && handle && !indication) {
		if (len != 1 || v[0] > 100) {
			link->stats.malformed++;
			if (log_worthy(link->stats.malformed))
				link_log(link, "malformed Battery Level (%zu bytes) dropped", len);
			return;
		}
		if (link->cb.on_battery)
			link->cb.on_battery(link, v[0], link->user_data);
		return;
	}
	if (handle == link->h.control_point && indication) {
		handle_cp_indication(link, v, len);
		return;
	}
	if (handle == link->h.service_changed && handle && indication) {
		service_changed(link, v, len);
		return;
	}
	link->stats.malformed++;
	if (log_worthy(link->stats.malformed))
		link_log(link, "%s on unexpected handle 0x%04x dropped",
			 indication ? "indication" : "notification", handle);
}

/* --- connection ------------------------------------------------------------------- */

static void on_disconnect(int err, void *user_data)
{
	struct cuff_link *link = user_data;

	link_failed(link, err, "link lost: %s",
		    err == -ETIMEDOUT ? "ATT transaction timeout (30 s)" : strerror(-err));
}

static void on_discovered(int err, const char *msg, const struct gatt_cuff_handles *h,
			  void *user_data)
{
	struct cuff_link *link = user_data;

	if (!err)
		link->h = *h; /* h lives inside the discovery freed below */
	gatt_discovery_free(link->disc); /* safe: discovery touches nothing after calling us */
	link->disc = NULL;
	if (err) {
		link_failed(link, err, "discovery failed: %s", msg);
		return;
	}
	link->step = SETUP_NONE;
	setup_next(link);
}

static void on_connected(int err, int fd, const char *msg, void *user_data)
{
	struct cuff_link *link = user_data;
	int r;

	link->connect_id = 0;
	if (err) {
		link_failed(link, err, "%s", msg ? msg : strerror(-err));
		return;
	}
	r = att_client_new(link->loop, fd, &link->att);
	if (r < 0) {
		close(fd);
		link_failed(link, r, "ATT bearer: %s", strerror(-r));
		return;
	}
	link->ever_connected = true;
	memset(&link->h, 0, sizeof(link->h));
	att_client_set_disconnect_cb(link->att, on_disconnect, link);
	r = att_client_register_notify(link->att, 0, on_value, link, NULL, NULL);
	if (r == 0)
		r = gatt_discovery_start(link->att, on_discovered, link, &link->disc);
	if (r < 0) {
		link_failed(link, r, "discovery: %s", strerror(-r));
		return;
	}
	set_state(link, CUFF_LINK_DISCOVERING, NULL);
}

static void begin_connect(struct cuff_link *link)
{
	int r;

	set_state(link, CUFF_LINK_CONNECTING, NULL);
	if (link->state != CUFF_LINK_CONNECTING)
		return; /* stopped from on_state */
	r = transport_sched_connect(link->sched, &link->addr, on_connected, link,
				    &link->connect_id);
	if (r < 0)
		link_failed(link, r, "connect: %s", strerror(-r));
}

/* --- public ---------------------------------------------------------------------- */

int cuff_link_new(struct loop *loop, const struct cuff_link_config *cfg,
		  const struct cuff_link_callbacks *cb, void *user_data, struct cuff_link **out)
{
	struct cuff_link *link;
	int r;

	if (!loop || !cfg || !cfg->id || !cfg->address || !out ||
	    (cfg->supervision_timeout_ms && cfg->supervision_timeout_ms < CUFF_LINK_MIN_SUPERVISION_MS))
		return -EINVAL;
	link = calloc(1, sizeof(*link));
	if (!link)
		return -ENOMEM;
	r = transport_parse(cfg->address, cfg->address_type, cfg->adapter, cfg->security,
			    &link->addr, NULL, 0);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	link->id = strdup(cfg->id);
	if (!link->id)
		goto fail;
	if (cfg->sched) {
		link->sched = cfg->sched;
	} else {
		r = transport_sched_new(loop, &link->sched);
		if (r < 0)
			goto fail;
		link->own_sched = true;
	}
	link->loop = loop;
	link->supervision_timeout_ms = cfg->supervision_timeout_ms ?
					       cfg->supervision_timeout_ms :
					       BFR_SUPERVISION_DEFAULT_TIMEOUT_MS;
	if (cb)
		link->cb = *cb;
	link->user_data = user_data;
	for (int i = 0; i < CP_SLOTS; i++)
		link->cp[i].link = link;
	/* Jitter only has to differ between cuffs and runs; not security relevant. */
	if (getrandom(&link->rng, sizeof(link->rng), GRND_NONBLOCK) != sizeof(link->rng))
		link->rng = (uint32_t)(uintptr_t)link ^ (uint32_t)loop_now_ms(loop);
	if (link->rng == 0)
		link->rng = 0x9E3779B9u;
	backoff_init(&link->backoff, BACKOFF_DEFAULT_BASE_MS, BACKOFF_DEFAULT_MAX_MS, xorshift,
		     &link->rng);
	*out = link;
	return 0;
fail:
	free(link->id);
	free(link);
	return r;
}

void cuff_link_stop(struct cuff_link *link)
{
	if (!link || !link->started)
		return;
	link->started = false;
	cancel_timer(link, &link->reconnect_timer);
	teardown_session(link);
	fail_pending_cps(link, -ECANCELED, "link stopped");
	if (link->state != CUFF_LINK_DISCONNECTED)
		set_state(link, CUFF_LINK_DISCONNECTED, NULL);
}

int cuff_link_start(struct cuff_link *link)
{
	if (!link)
		return -EINVAL;
	if (link->started)
		return 0;
	link->started = true;
	backoff_reset(&link->backoff);
	begin_connect(link);
	return 0;
}

void cuff_link_free(struct cuff_link *link)
{
	if (!link)
		return;
	link->cb = (struct cuff_link_callbacks){ 0 }; /* stopping reports to nobody */
	cuff_link_stop(link);
	if (link->own_sched)
		transport_sched_free(link->sched);
	free(link->id);
	free(link);
}

unsigned cuff_link_cp_timeout_ms(uint8_t opcode)
{
	/* A LOP search ramps the cuff up until the pulse vanishes: it takes
	 * tens of seconds, every other request answers at once. */
	return opcode == BFR_CP_MEASURE_LOP ? CUFF_LINK_LOP_TIMEOUT_MS : CUFF_LINK_CP_TIMEOUT_MS;
}

static void cp_timeout_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct cp_slot *s = user_data;
	struct cuff_link *link = s->link;
	uint8_t opcode = s->opcode;
	char why[96];

	s->timer_id = 0;
	cp_release(s);
	link->stats.cp_failed++;
	snprintf(why, sizeof(why), "no Control Point indication within %u ms",
		 cuff_link_cp_timeout_ms(opcode));
	link_log(link, "%s: %s", bfr_cp_opcode_name(opcode), why);
	if (link->cb.on_cp_failed)
		link->cb.on_cp_failed(link, opcode, -ETIMEDOUT, why, link->user_data);
}

static void on_cp_write(int err, const struct att_pdu *rsp, void *user_data)
{
	struct cp_token *t = user_data;
	struct cuff_link *link = t->link;
	struct cp_slot *s = NULL;
	char why[96];
	uint8_t opcode;

	if (err == 0 || err == -EPROTO)
		link->cp_answered_ms = loop_now_ms(link->loop);
	if (err != -EPROTO)
		return; /* success: the indication completes it; death: link_failed does */
	for (int i = 0; i < CP_SLOTS; i++)
		if (link->cp[i].in_use && link->cp[i].seq == t->seq)
			s = &link->cp[i];
	if (!s)
		return; /* already timed out */
	opcode = s->opcode;
	cp_release(s);
	link->stats.cp_failed++;
	snprintf(why, sizeof(why), "Control Point write failed: ATT error %s (0x%02x)",
		 att_error_name(rsp->error_rsp.error), rsp->error_rsp.error);
	link_log(link, "%s: %s", bfr_cp_opcode_name(opcode), why);
	if (link->cb.on_cp_failed)
		link->cb.on_cp_failed(link, opcode, -EPROTO, why, link->user_data);
}

int cuff_link_send_cp(struct cuff_link *link, const struct bfr_cp_request *req)
{
	struct att_pdu pdu = { .opcode = ATT_OP_WRITE_REQ };
	uint8_t buf[16];
	size_t len;
	struct cp_slot *slot = NULL, *superseded = NULL;
	struct cp_token *token;
	uint64_t timer_id;
	bool deflate;
	int used = 0, r;

	if (!link || !req)
		return -EINVAL;
	if (link->state != CUFF_LINK_READY || !link->att)
		return -ENOTCONN;
	r = bfr_cp_request_encode(req, buf, sizeof(buf), &len);
	if (r < 0)
		return -EINVAL;
	deflate = req->opcode == BFR_CP_DEFLATE;
	for (int i = 0; i < CP_SLOTS; i++) {
		if (link->cp[i].in_use)
			used++;
		else if (!slot)
			slot = &link->cp[i];
	}
	if (!slot && deflate) {
		/*
		 * Every slot is taken (a cuff that answers nothing while the safety
		 * engine re-sends DEFLATE): the new DEFLATE supersedes the oldest
		 * one and takes its slot, and a DEFLATE is never refused. Only once
		 * the new one is on its way: if it cannot be sent, the old one
		 * stays tracked.
		 */
		for (int i = 0; i < CP_SLOTS; i++) {
			struct cp_slot *c = &link->cp[i];

			if (c->in_use && c->opcode == BFR_CP_DEFLATE &&
			    (!superseded || c->seq < superseded->seq))
				superseded = c;
		}
		slot = superseded;
	}
	if (!slot || (!deflate && used >= CP_SLOTS - CP_SLOTS_RESERVED))
		return -EBUSY;
	token = malloc(sizeof(*token));
	if (!token)
		return -ENOMEM;
	token->link = link;
	token->seq = ++link->cp_seq;
	r = loop_add_timer(link->loop, cuff_link_cp_timeout_ms(req->opcode), cp_timeout_cb, slot,
			   &timer_id);
	if (r < 0)
		goto fail;
	pdu.handle_value.handle = link->h.control_point;
	pdu.handle_value.value = buf;
	pdu.handle_value.value_len = len;
	r = att_client_send(link->att, &pdu, deflate ? ATT_SEND_URGENT : 0, on_cp_write, token,
			    free, NULL);
	if (r < 0) {
		loop_cancel_timer(link->loop, timer_id);
		goto fail;
	}
	if (superseded)
		cp_release(superseded); /* its own timer goes; the slot is reused below */
	slot->timer_id = timer_id;
	slot->in_use = true;
	slot->opcode = req->opcode;
	slot->seq = token->seq;
	link->stats.cp_sent++;
	return 0;
fail:
	free(token);
	return r;
}

enum cuff_link_state cuff_link_get_state(const struct cuff_link *link)
{
	return link->state;
}

const char *cuff_link_id(const struct cuff_link *link)
{
	return link->id;
}

const char *cuff_link_last_error(const struct cuff_link *link)
{
	return link->last_error;
}

const struct gatt_cuff_handles *cuff_link_handles(const struct cuff_link *link)
{
	return &link->h;
}

void cuff_link_get_stats(const struct cuff_link *link, struct cuff_link_stats *out)
{
	struct att_client_stats total = link->att_done;
	struct cuff_link_stats s = link->stats;

	if (link->att) {
		struct att_client_stats cur;

		att_client_get_stats(link->att, &cur);
		add_att_stats(&total, &cur);
	}
	s.pdus_rx = total.pdus_rx;
	s.pdus_tx = total.pdus_tx;
	s.att_rejected = total.malformed + total.unknown_opcode + total.unexpected_rsp;
	*out = s;
}
