/*
 * fuzz_link.c - stateful libFuzzer target: the gateway's ATT client, GATT
 * discovery and cuff link (gateway/src/att_client.c, gatt_discovery.c,
 * cuff_link.c) against a fuzzed peer over socketpair(AF_UNIX, SOCK_SEQPACKET).
 *
 * The peer is cuffsim's own GATT server (cuffsim/cuff_gatt.c: PDUs in, PDUs
 * out, no I/O) on the far end of the socketpair, so an honest cuff is one
 * byte of script away, and the script decides what the peer really does:
 * answer the gateway's requests honestly, swallow them, corrupt or truncate
 * the next PDU it sends, send raw PDUs of its own, notify or indicate any
 * characteristic with arbitrary values, serve malformed Features/Status/
 * Battery values, answer Control Point writes or not, close the link, refuse
 * the next connection. The gateway side is driven through the public API
 * (start, stop, cuff_link_send_cp, cuff_link_release) and time through the
 * loop's injected clock (loop_new_with_clock): the 30 s ATT timeout, the 5 s
 * set-up and Control Point timeouts, keepalives, the release of SR-24 and
 * reconnect backoff all run.
 * transport_sched_set_opener hands the link the gateway end of a fresh
 * socketpair on every (re)connection.
 *
 * Input: 4 header bytes (handle shift of the peer's attribute table, its
 * MTU, the supervision timeout and whether the gateway's socket gets a
 * tiny send buffer, so writes fail with EAGAIN), then a script of steps,
 * one opcode byte each plus its operands (see step()). Checks, besides
 * ASan/UBSan/LSan:
 *   - on_state only moves along the edges drawn in cuff_link.h;
 *   - on_ready only in READY, with Features and Status that decode;
 *   - on_samples gets 1..36 samples;
 *   - every accepted Control Point request ends in exactly one
 *     on_cp_result or on_cp_failed (cuff_link.h), counted per opcode, and
 *     cuff_link_stop leaves none open; the one documented exception, a
 *     DEFLATE superseded by a newer one when all 16 tracking slots are
 *     taken, is applied here by the same rule;
 *   - no callback after cuff_link_free;
 *   - SR-24, cuff_link_release in READY: no supervision keepalive is sent
 *     (nor attempted) until the supervision timeout plus
 *     CUFF_LINK_RELEASE_MARGIN_MS has passed; then the link has either
 *     left READY (control channel dead) or sends keepalives again;
 *   - while READY: every mandatory handle and CCCD discovered, the MTU
 *     within 23..517, no last error; the link's sample count is what
 *     on_samples got.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "cuff_gatt.h"
#include "cuff_link.h"
#include "log.h"

#define MAX_STEPS 4096
#define LINK_CP_SLOTS 16
#define MAX_SERVE 64

enum cp_mode { CP_ANSWER_OK, CP_ANSWER_SILENT, CP_ANSWER_FAIL, CP_MODES };

struct harness {
	uint64_t now;
	struct loop *loop;
	struct transport_sched *sched;
	struct cuff_link *link;
	struct cuff_gatt *gatt;
	int peer_fd; /* our end of the current socketpair; -1 when none */
	bool started;
	bool freed;

	/* the peer's behaviour */
	bool refuse_next_connect;
	bool tamper_armed;
	uint8_t tamper_pos, tamper_xor;
	bool drop_next_emit;
	bool small_sndbuf;
	enum cp_mode cp_mode;
	uint8_t last_emit[ATT_MAX_MTU + 1]; /* what the peer sent last, to repeat it */
	size_t last_emit_len;
	uint8_t values[3][16]; /* Features, Status, Battery as served to reads */
	size_t value_len[3];

	/* what the gateway reported */
	enum cuff_link_state state;
	uint64_t cp_open[256];  /* per opcode: accepted and not yet ended */
	uint64_t samples, readies;
	uint16_t supervision_timeout_ms; /* the link's, default applied */
	bool released;                   /* cuff_link_release in READY, window open */
	uint64_t release_end;            /* when the link judges the release */
	uint64_t keepalives_at_release;  /* sent + failed */

	/* the script */
	const uint8_t *p, *end;
};

/* FUZZ_LINK_TRACE=1 in the environment prints steps and states (to read a regression input). */
static bool trace;

static uint8_t next_byte(struct harness *h)
{
	return h->p < h->end ? *h->p++ : 0;
}

static uint16_t next_u16(struct harness *h)
{
	uint16_t lo = next_byte(h);

	return (uint16_t)(lo | next_byte(h) << 8);
}

static uint64_t fake_clock(void *data)
{
	return ((struct harness *)data)->now;
}

/* --- the peer ------------------------------------------------------------------------------- */

static int peer_send(const uint8_t *pdu, size_t len, void *user_data)
{
	struct harness *h = user_data;
	uint8_t buf[ATT_MAX_MTU + 1];

	if (h->peer_fd < 0)
		return -ENOTCONN;
	if (h->drop_next_emit) {
		h->drop_next_emit = false;
		return 0;
	}
	memcpy(buf, pdu, len);
	if (h->tamper_armed) {
		h->tamper_armed = false;
		if (h->tamper_xor == 0)
			len = h->tamper_pos < len ? h->tamper_pos : len; /* truncate */
		else if (len)
			buf[h->tamper_pos % len] ^= h->tamper_xor;
	}
	memcpy(h->last_emit, buf, len);
	h->last_emit_len = len;
	if (send(h->peer_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

static int peer_read(enum cuff_gatt_char ch, uint8_t *buf, size_t cap, size_t *len,
		     void *user_data)
{
	struct harness *h = user_data;
	int i = ch == CUFF_CHAR_FEATURES ? 0 : ch == CUFF_CHAR_STATUS ? 1 : ch == CUFF_CHAR_BATTERY ? 2 : -1;

	if (i < 0 || h->value_len[i] > cap)
		return -ENOENT;
	memcpy(buf, h->values[i], h->value_len[i]);
	*len = h->value_len[i];
	return 0;
}

static void peer_write(enum cuff_gatt_char ch, const uint8_t *v, size_t len, void *user_data)
{
	struct harness *h = user_data;
	struct bfr_cp_response rsp = { 0 };
	struct bfr_cp_request req;

	if (ch != CUFF_CHAR_CONTROL_POINT || h->cp_mode == CP_ANSWER_SILENT)
		return;
	rsp.req_opcode = len ? v[0] : 0;
	if (bfr_cp_request_decode(v, len, &req) < 0)
		rsp.result = BFR_RESULT_INVALID_PARAMETER;
	else if (h->cp_mode == CP_ANSWER_FAIL && req.opcode != BFR_CP_DEFLATE)
		rsp.result = BFR_RESULT_FAILED;
	else
		rsp.result = BFR_RESULT_SUCCESS;
	rsp.has_lop = rsp.req_opcode == BFR_CP_MEASURE_LOP && rsp.result == BFR_RESULT_SUCCESS;
	rsp.lop_mmhg = 142.5;
	cuff_gatt_indicate_cp(h->gatt, &rsp);
}

static const struct cuff_gatt_ops peer_ops = {
	.send = peer_send,
	.read = peer_read,
	.write = peer_write,
};

static void peer_close(struct harness *h)
{
	if (h->peer_fd >= 0)
		close(h->peer_fd);
	h->peer_fd = -1;
}

/* The link's transport: a fresh socketpair per connection attempt. */
static int open_socketpair(const struct transport_address *a, int *fd_out, char *err,
			   size_t err_len, void *data)
{
	struct harness *h = data;
	int sv[2];

	if (h->refuse_next_connect) {
		h->refuse_next_connect = false;
		snprintf(err, err_len, "connect refused by the script");
		return -ECONNREFUSED;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (h->small_sndbuf) {
		int size = 1; /* the kernel's minimum: a handful of PDUs */

		(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	}
	peer_close(h);
	cuff_gatt_reset(h->gatt);
	h->peer_fd = sv[1];
	*fd_out = sv[0];
	return 0;
}

/* Hands up to max PDUs from the gateway to the peer. Returns how many. */
static int serve(struct harness *h, int max)
{
	uint8_t buf[ATT_MAX_MTU + 1];
	int n = 0;

	while (n < max && h->peer_fd >= 0) {
		ssize_t r = recv(h->peer_fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r < 0)
			break;
		if (r == 0) {
			/* The gateway closed its end (SEQPACKET: it never sends empty PDUs). */
			peer_close(h);
			break;
		}
		n++;
		cuff_gatt_receive(h->gatt, buf, (size_t)r);
	}
	return n;
}

static void run_loop(struct harness *h)
{
	CHECK(loop_run_once(h->loop, 0) == 0);
}

/* --- the gateway's callbacks ---------------------------------------------------------------------- */

static bool edge_allowed(enum cuff_link_state from, enum cuff_link_state to)
{
	if (to == CUFF_LINK_DISCONNECTED)
		return from != CUFF_LINK_DISCONNECTED; /* stop */
	switch (from) {
	case CUFF_LINK_DISCONNECTED:
		return to == CUFF_LINK_CONNECTING;
	case CUFF_LINK_CONNECTING:
		return to == CUFF_LINK_DISCOVERING || to == CUFF_LINK_BACKOFF;
	case CUFF_LINK_DISCOVERING:
		return to == CUFF_LINK_READY || to == CUFF_LINK_BACKOFF;
	case CUFF_LINK_READY:
		return to == CUFF_LINK_BACKOFF;
	case CUFF_LINK_BACKOFF:
		return to == CUFF_LINK_CONNECTING;
	}
	return false;
}

static void on_state(struct cuff_link *link, enum cuff_link_state state, const char *error,
		     void *user_data)
{
	struct harness *h = user_data;

	CHECK(!h->freed);
	CHECK(edge_allowed(h->state, state));
	CHECK((state == CUFF_LINK_BACKOFF) == (error != NULL));
	CHECK(cuff_link_get_state(link) == state);
	if (trace)
		fprintf(stderr, "  state %s%s%s\n", cuff_link_state_name(state), error ? ": " : "",
			error ? error : "");
	h->state = state;
	if (state != CUFF_LINK_READY)
		h->released = false;
}

static void on_ready(struct cuff_link *link, const struct bfr_features *features,
		     const struct bfr_status *status, const struct gatt_device_info *info,
		     void *user_data)
{
	struct harness *h = user_data;

	CHECK(!h->freed && h->state == CUFF_LINK_READY);
	CHECK(features->limb <= BFR_LIMB_LEG && features->sample_rate_hz > 0);
	CHECK(status->state <= BFR_STATE_FAULT && status->battery_pct <= 100);
	CHECK(memchr(info->serial, '\0', sizeof(info->serial)));
	h->readies++;
}

static void on_samples(struct cuff_link *link, const struct bfr_sample *samples, size_t n,
		       void *user_data)
{
	struct harness *h = user_data;

	CHECK(!h->freed && n >= 1 && n <= BFR_MAX_SAMPLES_PER_NTF);
	h->samples += n;
}

static void on_status(struct cuff_link *link, const struct bfr_status *status, void *user_data)
{
	struct harness *h = user_data;

	CHECK(!h->freed && status->state <= BFR_STATE_FAULT && status->battery_pct <= 100);
}

static void on_battery(struct cuff_link *link, uint8_t pct, void *user_data)
{
	struct harness *h = user_data;

	CHECK(!h->freed && pct <= 100);
}

static void on_cp_result(struct cuff_link *link, const struct bfr_cp_response *rsp,
			 void *user_data)
{
	struct harness *h = user_data;

	if (trace)
		fprintf(stderr, "  cp result %s: %s\n", bfr_cp_opcode_name(rsp->req_opcode),
			bfr_cp_result_name(rsp->result));
	CHECK(!h->freed && h->cp_open[rsp->req_opcode] > 0);
	h->cp_open[rsp->req_opcode]--;
}

static void on_cp_failed(struct cuff_link *link, uint8_t opcode, int err, const char *why,
			 void *user_data)
{
	struct harness *h = user_data;

	if (trace)
		fprintf(stderr, "  cp failed %s: %s\n", bfr_cp_opcode_name(opcode), why);
	CHECK(!h->freed && h->cp_open[opcode] > 0 && why && why[0]);
	CHECK(err == -EPROTO || err == -ETIMEDOUT || err == -ECONNRESET || err == -ECANCELED);
	h->cp_open[opcode]--;
}

static const struct cuff_link_callbacks callbacks = {
	.on_state = on_state,
	.on_ready = on_ready,
	.on_samples = on_samples,
	.on_status = on_status,
	.on_battery = on_battery,
	.on_cp_result = on_cp_result,
	.on_cp_failed = on_cp_failed,
};

/* --- the script ------------------------------------------------------------------------------------ */

static void send_raw(struct harness *h, const uint8_t *pdu, size_t len)
{
	if (h->peer_fd >= 0)
		(void)send(h->peer_fd, pdu, len, MSG_DONTWAIT | MSG_NOSIGNAL); /* full: dropped */
}

/* A notification or indication on one of the peer's characteristics (+ a small offset). */
static void send_value(struct harness *h)
{
	uint8_t sel = next_byte(h), len = next_byte(h) % 40, value[40];
	struct att_pdu pdu = { .opcode = (sel & 0x80) ? ATT_OP_HANDLE_VALUE_IND
						    : ATT_OP_HANDLE_VALUE_NTF };
	uint8_t buf[ATT_MAX_MTU];
	size_t n;

	for (size_t i = 0; i < len; i++)
		value[i] = next_byte(h);
	pdu.handle_value.handle = (uint16_t)(cuff_gatt_value_handle(h->gatt, (enum cuff_gatt_char)(
						     sel % CUFF_CHAR_COUNT)) + (sel >> 3 & 3));
	if (!pdu.handle_value.handle)
		pdu.handle_value.handle = 1;
	pdu.handle_value.value = value;
	pdu.handle_value.value_len = len;
	if (att_pdu_encode(&pdu, buf, sizeof(buf), &n) == 0)
		send_raw(h, buf, n);
}

/* Honest pressure samples (sent only if the gateway enabled notifications). */
static void send_samples(struct harness *h)
{
	struct bfr_sample s[3];
	size_t n = next_byte(h) % 3 + 1;

	for (size_t i = 0; i < n; i++) {
		s[i].seq = next_u16(h);
		s[i].t_ms = (uint32_t)h->now;
		s[i].pressure_mmhg = next_byte(h) * 1.5;
		s[i].target_mmhg = next_byte(h);
		s[i].pulse_amplitude = 2.5;
		s[i].status = next_u16(h);
	}
	(void)cuff_gatt_notify_pressure(h->gatt, s, n); /* -EMSGSIZE at a small MTU: fine */
}

static void send_cp(struct harness *h)
{
	struct bfr_cp_request req = { .opcode = next_byte(h) % 8 };
	uint8_t a = next_byte(h);

	switch (req.opcode) {
	case BFR_CP_SET_TARGET:
		req.set_target.mmhg = a * 1.2;
		req.set_target.ramp_ms = 1000;
		break;
	case BFR_CP_DEFLATE:
		req.deflate_reason = a % 4;
		break;
	case BFR_CP_MEASURE_LOP:
		req.max_search_mmhg = a * 2.0;
		break;
	case BFR_CP_CUE:
		req.cue = a % 6;
		break;
	case BFR_CP_SET_SUPERVISION:
		req.supervision_timeout_ms = (uint16_t)(a * 20);
		break;
	default:
		break;
	}
	uint64_t open = 0;
	int r;

	for (int i = 0; i < 256; i++)
		open += h->cp_open[i];
	r = cuff_link_send_cp(h->link, &req);
	/*
	 * cuff_link.h: with every tracking slot (16, CP_SLOTS in cuff_link.c)
	 * taken, a DEFLATE supersedes the oldest DEFLATE, which then ends
	 * without a callback.
	 */
	if (r == 0 && req.opcode == BFR_CP_DEFLATE && open == LINK_CP_SLOTS) {
		CHECK(h->cp_open[BFR_CP_DEFLATE] > 0);
		h->cp_open[BFR_CP_DEFLATE]--;
	}
	if (r == 0)
		h->cp_open[req.opcode]++;
	if (trace)
		fprintf(stderr, "  send_cp %s: %s\n", bfr_cp_opcode_name(req.opcode),
			r == 0 ? "accepted" : strerror(-r));
}

static void set_value(struct harness *h)
{
	uint8_t which = next_byte(h) % 3, len = next_byte(h) % 12;

	for (size_t i = 0; i < len; i++)
		h->values[which][i] = next_byte(h);
	h->value_len[which] = len;
}

/*
 * The peer mishandles the gateway's next PDU: 0 swallows it (no answer
 * ever), 1 answers an Error Response with the next byte as code (0: Attribute
 * Not Found), 2 answers a Write Response whatever was asked, 3 answers
 * honestly and then sends the same answer again.
 */
static void misbehave(struct harness *h)
{
	uint8_t how = next_byte(h) % 4, code = next_byte(h);
	uint8_t buf[ATT_MAX_MTU + 1];
	ssize_t n;

	if (h->peer_fd < 0)
		return;
	n = recv(h->peer_fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == 0)
		peer_close(h);
	if (n <= 0)
		return;
	switch (how) {
	case 0:
		break;
	case 1: {
		uint8_t err[5] = { ATT_OP_ERROR_RSP, buf[0], n >= 3 ? buf[1] : 0,
				   n >= 3 ? buf[2] : 0, code ? code : ATT_ERR_ATTRIBUTE_NOT_FOUND };

		send_raw(h, err, sizeof(err));
		break;
	}
	case 2: {
		static const uint8_t write_rsp = ATT_OP_WRITE_RSP;

		send_raw(h, &write_rsp, 1);
		break;
	}
	case 3:
		h->last_emit_len = 0;
		cuff_gatt_receive(h->gatt, buf, (size_t)n);
		if (h->last_emit_len)
			send_raw(h, h->last_emit, h->last_emit_len);
		break;
	}
}

/* What must hold between steps. */
static void check_link(struct harness *h)
{
	const struct gatt_cuff_handles *hd;
	struct cuff_link_stats st;

	cuff_link_get_stats(h->link, &st);
	CHECK(st.samples == h->samples);
	CHECK(cuff_link_get_state(h->link) == h->state);
	if (h->state != CUFF_LINK_READY)
		return;
	if (h->released) {
		uint64_t sent = st.keepalives + st.keepalive_errors;

		/* Time moves only in steps that then run the loop: a due timer has fired. */
		if (h->now < h->release_end) {
			CHECK(sent == h->keepalives_at_release);
		} else {
			CHECK(sent > h->keepalives_at_release);
			h->released = false;
		}
	}
	hd = cuff_link_handles(h->link);
	CHECK(hd->pressure && hd->pressure_cccd && hd->control_point && hd->control_point_cccd);
	CHECK(hd->status && hd->status_cccd && hd->supervision && hd->features);
	CHECK(hd->mtu >= ATT_DEFAULT_MTU && hd->mtu <= ATT_MAX_MTU);
	CHECK(cuff_link_last_error(h->link)[0] == '\0');
	CHECK(strcmp(cuff_link_id(h->link), "fuzz") == 0);
}

/* SR-24: the gateway gives up on a DEFLATE and leaves it to the cuff's fail-safe. */
static void release(struct harness *h)
{
	struct cuff_link_stats st;

	if (h->state == CUFF_LINK_READY && !h->released) {
		cuff_link_get_stats(h->link, &st);
		h->released = true;
		h->release_end = h->now + h->supervision_timeout_ms + CUFF_LINK_RELEASE_MARGIN_MS;
		h->keepalives_at_release = st.keepalives + st.keepalive_errors;
	}
	cuff_link_release(h->link);
	if (trace)
		fprintf(stderr, "  release%s\n", h->released ? "" : " (not READY or released)");
}

static void step(struct harness *h)
{
	static const uint32_t advance[] = { 1, 10, 100, 333, 1000, 1001, 3000, 5001, 30001, 60001 };
	uint8_t op = next_byte(h);

	if (trace)
		fprintf(stderr, "step %u at +%llu ms\n", op % 16,
			(unsigned long long)(h->now - 1000000));
	switch (op % 16) {
	case 0: /* the gateway's turn */
		run_loop(h);
		break;
	case 1: /* the peer answers up to k requests honestly */
		serve(h, next_byte(h) % 8 + 1);
		run_loop(h);
		break;
	case 2: /* honest peer until quiet: discovery and set-up in one step */
		for (int round = 0, k = next_byte(h) % 48 + 1; round < k; round++) {
			run_loop(h);
			if (serve(h, MAX_SERVE) == 0 && round > 0)
				break;
		}
		run_loop(h);
		break;
	case 3: /* time passes */
		h->now += advance[next_byte(h) % 10];
		run_loop(h);
		break;
	case 4: { /* a raw PDU from the peer */
		uint8_t pdu[ATT_MAX_MTU + 1];
		size_t len = next_byte(h) % 64;

		for (size_t i = 0; i < len; i++)
			pdu[i] = next_byte(h);
		send_raw(h, pdu, len);
		run_loop(h);
		break;
	}
	case 5: /* the next PDU the peer sends is corrupted (xor 0: truncated) */
		h->tamper_armed = true;
		h->tamper_pos = next_byte(h);
		h->tamper_xor = next_byte(h);
		break;
	case 6:
		misbehave(h);
		run_loop(h);
		break;
	case 7:
		send_value(h);
		run_loop(h);
		break;
	case 8:
		send_samples(h);
		run_loop(h);
		break;
	case 9: /* Status or Battery notification of the served value */
		(void)cuff_gatt_notify(h->gatt, (next_byte(h) & 1) ? CUFF_CHAR_STATUS
								: CUFF_CHAR_BATTERY);
		run_loop(h);
		break;
	case 10:
		send_cp(h);
		break;
	case 11:
		set_value(h);
		break;
	case 12: /* the peer drops the link */
		peer_close(h);
		run_loop(h);
		break;
	case 13:
		if (h->started) {
			cuff_link_stop(h->link);
			h->started = false;
		} else {
			CHECK(cuff_link_start(h->link) == 0);
			h->started = true;
		}
		break;
	case 14:
		h->refuse_next_connect = true;
		break;
	case 15: /* how the peer answers Control Point writes; or it drops its next PDU;
		  * or the gateway releases the cuff (SR-24) */
		op = next_byte(h);
		if (op & 0x80)
			h->drop_next_emit = true;
		else if (op & 0x40)
			release(h);
		else
			h->cp_mode = (enum cp_mode)(op % CP_MODES);
		break;
	}
}

static void default_values(struct harness *h)
{
	struct bfr_features f = { .cuff_width_mm = 110, .limb = BFR_LIMB_LEG,
				  .max_pressure_mmhg = 300, .sample_rate_hz = 50,
				  .feature_bits = BFR_FEATURE_MEASURE_LOP | BFR_FEATURE_CUE };
	struct bfr_status st = { .state = BFR_STATE_IDLE, .battery_pct = 80,
				 .last_lop_mmhg = NAN, .cuff_width_mm = 110 };

	CHECK(bfr_features_encode(&f, h->values[0], sizeof(h->values[0]), &h->value_len[0]) == 0);
	CHECK(bfr_status_encode(&st, h->values[1], sizeof(h->values[1]), &h->value_len[1]) == 0);
	h->values[2][0] = 80;
	h->value_len[2] = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t timeouts[] = { 0, 300, 500, 1000, 3000 };
	struct harness h = { .now = 1000000, .peer_fd = -1, .p = data, .end = data + size };
	struct cuff_gatt_config gc = { .device_name = "BFR Cuff 01", .serial = "SIM-0001" };
	struct cuff_link_config lc = { .id = "fuzz", .address = "sim:/fuzz/cuff-01.sock" };
	unsigned steps = 0;
	uint8_t op;

	trace = getenv("FUZZ_LINK_TRACE") != NULL;
	log_set_level(trace ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	gc.handle_shift = next_byte(&h);
	gc.server_mtu = (uint16_t)(ATT_DEFAULT_MTU + next_u16(&h) % (ATT_MAX_MTU - ATT_DEFAULT_MTU + 1));
	op = next_byte(&h);
	lc.supervision_timeout_ms = timeouts[(op & 7) % 5];
	h.supervision_timeout_ms = lc.supervision_timeout_ms ? lc.supervision_timeout_ms
							     : BFR_SUPERVISION_DEFAULT_TIMEOUT_MS;
	h.small_sndbuf = op & 0x80;
	default_values(&h);

	CHECK(loop_new_with_clock(fake_clock, &h, &h.loop) == 0);
	CHECK(transport_sched_new(h.loop, &h.sched) == 0);
	transport_sched_set_opener(h.sched, open_socketpair, &h);
	lc.sched = h.sched;
	CHECK(cuff_gatt_new(&gc, &peer_ops, &h, &h.gatt) == 0);
	CHECK(cuff_link_new(h.loop, &lc, &callbacks, &h, &h.link) == 0);
	CHECK(cuff_link_start(h.link) == 0);
	h.started = true;

	while (h.p < h.end && steps++ < MAX_STEPS) {
		step(&h);
		check_link(&h);
	}

	/* Stopping ends every Control Point request that was still open. */
	cuff_link_stop(h.link);
	for (int i = 0; i < 256; i++)
		CHECK(h.cp_open[i] == 0);
	CHECK(h.state == CUFF_LINK_DISCONNECTED);
	h.freed = true;
	cuff_link_free(h.link);
	transport_sched_free(h.sched);
	cuff_gatt_free(h.gatt);
	peer_close(&h);
	loop_free(h.loop);
	return 0;
}
