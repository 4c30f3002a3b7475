/*
 * test_cuff_link.c - the cuff link against a scripted cuff: a small GATT
 * server in this file listening on an AF_UNIX SOCK_SEQPACKET socket (a
 * sim: address), served from the same event loop, with an injected clock.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <poll.h>
#include <signal.h>
#include <libgen.h>
#include <unistd.h>
#include <cmocka.h>

#include "bytes.h"
#include "cuff_link.h"
#include "test_alloc.h"

#define MAX_ATTRS 48

struct attr {
	uint16_t handle;
	struct att_uuid type;
	uint8_t value[32];
	size_t len;
};

struct cuff {
	struct attr attrs[MAX_ATTRS];
	size_t n;
	uint16_t next_handle;
	uint16_t pressure, pressure_cccd, cp, cp_cccd, status, status_cccd, supervision, features,
		battery, battery_cccd, sc, sc_cccd;
	int listen_fd;
	int fd;
	uint16_t mtu;
	/* behaviour */
	uint8_t supervision_result;
	bool cp_silent;        /* write response, but no indication */
	uint8_t cp_att_error;  /* answer CP writes with this ATT error */
	bool hold_cp;          /* do not answer CP writes until released */
	uint8_t held[64];
	size_t held_len;
	bool hold_services;    /* do not answer Read By Group Type until released */
	uint8_t held_svc[32];
	size_t held_svc_len;
	/* observations */
	uint16_t cccd_values[8]; /* pressure, status, battery, CP, Service Changed */
	uint8_t log_op[256];     /* requests in order, with their handle (0: none) */
	uint16_t log_handle[256];
	size_t n_log;
	int mtu_requests;
	uint16_t last_cmd_handle; /* where the last Write Command went */
	uint8_t cp_log[32];
	size_t n_cp;
	uint16_t sup_timeout_ms;
	uint16_t tokens[64];
	size_t n_tokens;
	int confirmations;
	int accepts;
};

struct events {
	enum cuff_link_state states[64];
	size_t n_states;
	char last_error[256];
	int ready;
	struct bfr_features features;
	struct bfr_sample samples[8];
	size_t n_samples;
	int sample_calls;
	int status_calls;
	int battery_calls;
	uint8_t battery;
	int cp_results;
	struct bfr_cp_response cp_rsp;
	int cp_failures;
	uint8_t cp_failed_opcode;
	int cp_failed_err;
	bool stop_on_samples;
};

struct fixture {
	uint64_t now;
	struct loop *loop;
	char dir[64];
	char path[108];
	char address[140];
	struct cuff cuff;
	struct events ev;
	struct cuff_link *link;
};

static uint64_t fake_clock(void *data)
{
	return *(uint64_t *)data;
}

/* --- the cuff's attribute table -------------------------------------------------- */

static uint16_t add_attr(struct cuff *c, const struct att_uuid *type, const void *v, size_t len)
{
	struct attr *a = &c->attrs[c->n++];

	a->handle = c->next_handle++;
	a->type = *type;
	memcpy(a->value, v, len);
	a->len = len;
	return a->handle;
}

static void add_service(struct cuff *c, const struct att_uuid *uuid)
{
	struct att_uuid t;
	size_t len = att_uuid_wire_len(uuid);

	att_uuid_from16(ATT_UUID_PRIMARY_SERVICE, &t);
	add_attr(c, &t, len == 2 ? uuid->le + 12 : uuid->le, len);
}

static uint16_t add_char(struct cuff *c, uint8_t props, const struct att_uuid *uuid,
			 const void *v, size_t len, uint16_t *cccd)
{
	struct att_uuid t;
	uint8_t decl[19];
	size_t ulen = att_uuid_wire_len(uuid);
	uint16_t h;

	att_uuid_from16(ATT_UUID_CHARACTERISTIC, &t);
	decl[0] = props;
	put_le16(decl + 1, (uint16_t)(c->next_handle + 1));
	memcpy(decl + 3, ulen == 2 ? uuid->le + 12 : uuid->le, ulen);
	add_attr(c, &t, decl, 3 + ulen);
	h = add_attr(c, uuid, v, len);
	if (cccd) {
		uint8_t zero[2] = { 0 };

		att_uuid_from16(ATT_UUID_CCCD, &t);
		*cccd = add_attr(c, &t, zero, 2);
	}
	return h;
}

/*
 * GATT (Service Changed) at 0x0001, then the BFR Cuff and Battery services
 * from `base` (0x0010 at first; a "firmware update" moves them). Without
 * `bfr` the BFR Cuff service is gone.
 */
static void build_cuff_at(struct cuff *c, uint16_t base, bool bfr)
{
	struct att_uuid u;
	struct bfr_features f = { .cuff_width_mm = 115, .limb = BFR_LIMB_LEG,
				  .max_pressure_mmhg = 300, .sample_rate_hz = 50,
				  .feature_bits = BFR_FEATURE_MEASURE_LOP };
	struct bfr_status st = { .state = BFR_STATE_IDLE, .battery_pct = 90,
				 .last_lop_mmhg = NAN, .cuff_width_mm = 115 };
	uint8_t fv[16], sv[16], zero[16] = { 0 };
	size_t fl, sl;

	assert_int_equal(bfr_features_encode(&f, fv, sizeof(fv), &fl), 0);
	assert_int_equal(bfr_status_encode(&st, sv, sizeof(sv), &sl), 0);
	memset(c->attrs, 0, sizeof(c->attrs));
	c->n = 0;
	c->next_handle = 0x0001;
	att_uuid_from16(ATT_UUID_GATT_SERVICE, &u);
	add_service(c, &u);
	att_uuid_from16(ATT_UUID_SERVICE_CHANGED, &u);
	c->sc = add_char(c, ATT_PROP_INDICATE, &u, zero, 4, &c->sc_cccd);
	c->next_handle = base; /* not right after: nothing may assume handles */
	if (!bfr)
		goto battery;
	bfr_uuid(BFR_UUID_SERVICE, &u);
	add_service(c, &u);
	bfr_uuid(BFR_UUID_PRESSURE, &u);
	c->pressure = add_char(c, ATT_PROP_NOTIFY, &u, zero, 1, &c->pressure_cccd);
	bfr_uuid(BFR_UUID_CONTROL_POINT, &u);
	c->cp = add_char(c, ATT_PROP_WRITE | ATT_PROP_INDICATE, &u, zero, 1, &c->cp_cccd);
	bfr_uuid(BFR_UUID_STATUS, &u);
	c->status = add_char(c, ATT_PROP_READ | ATT_PROP_NOTIFY, &u, sv, sl, &c->status_cccd);
	bfr_uuid(BFR_UUID_SUPERVISION, &u);
	c->supervision = add_char(c, ATT_PROP_WRITE_WITHOUT_RESP, &u, zero, 2, NULL);
	bfr_uuid(BFR_UUID_FEATURES, &u);
	c->features = add_char(c, ATT_PROP_READ, &u, fv, fl, NULL);
battery:
	att_uuid_from16(ATT_UUID_BATTERY_SERVICE, &u);
	add_service(c, &u);
	att_uuid_from16(ATT_UUID_BATTERY_LEVEL, &u);
	c->battery = add_char(c, ATT_PROP_READ | ATT_PROP_NOTIFY, &u, "\x5a", 1,
			      &c->battery_cccd);
}

static void build_cuff(struct cuff *c)
{
	build_cuff_at(c, 0x0010, true);
}

/* --- the cuff's ATT server ----------------------------------------------------------- */

static void cuff_send(struct cuff *c, const struct att_pdu *pdu)
{
	uint8_t buf[ATT_MAX_MTU];
	size_t len;

	assert_int_equal(att_pdu_encode(pdu, buf, c->mtu, &len), 0);
	assert_int_equal(send(c->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void cuff_error(struct cuff *c, uint8_t op, uint16_t handle, uint8_t ecode)
{
	struct att_pdu e = { .opcode = ATT_OP_ERROR_RSP };

	e.error_rsp.req_opcode = op;
	e.error_rsp.handle = handle;
	e.error_rsp.error = ecode;
	cuff_send(c, &e);
}

static void cuff_value(struct cuff *c, uint8_t op, uint16_t handle, const uint8_t *v, size_t len)
{
	struct att_pdu p = { .opcode = op };

	p.handle_value.handle = handle;
	p.handle_value.value = v;
	p.handle_value.value_len = len;
	cuff_send(c, &p);
}

static void cuff_cp_result(struct cuff *c, uint8_t req_opcode, uint8_t result)
{
	struct bfr_cp_response rsp = { .req_opcode = req_opcode, .result = result };
	uint8_t buf[8];
	size_t len;

	assert_int_equal(bfr_cp_response_encode(&rsp, buf, sizeof(buf), &len), 0);
	cuff_value(c, ATT_OP_HANDLE_VALUE_IND, c->cp, buf, len);
}

static uint16_t group_end(const struct cuff *c, size_t i)
{
	uint16_t v;

	/* A service ends at its last attribute (there may be a gap before the next). */
	for (size_t j = i + 1; j < c->n; j++)
		if (att_uuid_is16(&c->attrs[j].type, &v) && v == ATT_UUID_PRIMARY_SERVICE)
			return c->attrs[j - 1].handle;
	return c->attrs[c->n - 1].handle;
}

static void cuff_answer_cp(struct cuff *c, const uint8_t *v, size_t len)
{
	struct bfr_cp_request req;
	static const uint8_t write_rsp = ATT_OP_WRITE_RSP;

	assert_int_equal(bfr_cp_request_decode(v, len, &req), 0);
	if (c->n_cp < sizeof(c->cp_log))
		c->cp_log[c->n_cp++] = req.opcode;
	if (req.opcode == BFR_CP_SET_SUPERVISION) {
		c->sup_timeout_ms = req.supervision_timeout_ms;
		assert_int_equal(send(c->fd, &write_rsp, 1, 0), 1);
		cuff_cp_result(c, req.opcode, c->supervision_result);
		return;
	}
	if (c->cp_att_error) {
		cuff_error(c, ATT_OP_WRITE_REQ, c->cp, c->cp_att_error);
		return;
	}
	assert_int_equal(send(c->fd, &write_rsp, 1, 0), 1);
	if (!c->cp_silent)
		cuff_cp_result(c, req.opcode, BFR_RESULT_SUCCESS);
}

static void cuff_handle(struct cuff *c, const uint8_t *buf, size_t n)
{
	struct att_pdu req, rsp = { 0 };
	struct att_list_builder b;
	uint8_t entry[64];

	assert_int_equal(att_pdu_decode(buf, n, &req), 0);
	if (req.opcode != ATT_OP_WRITE_CMD && req.opcode != ATT_OP_HANDLE_VALUE_CFM &&
	    c->n_log < 256) {
		c->log_op[c->n_log] = req.opcode;
		c->log_handle[c->n_log++] =
			req.opcode == ATT_OP_WRITE_REQ ? req.handle_value.handle :
			req.opcode == ATT_OP_READ_REQ  ? req.read_req.handle :
			req.opcode == ATT_OP_READ_BY_GROUP_TYPE_REQ ? req.read_by_type_req.start : 0;
	}
	switch (req.opcode) {
	case ATT_OP_MTU_REQ:
		c->mtu_requests++;
		rsp.opcode = ATT_OP_MTU_RSP;
		rsp.mtu.mtu = 247;
		cuff_send(c, &rsp);
		c->mtu = req.mtu.mtu < 247 ? req.mtu.mtu : 247;
		return;
	case ATT_OP_HANDLE_VALUE_CFM:
		c->confirmations++;
		return;
	case ATT_OP_WRITE_CMD:
		assert_int_equal(req.handle_value.value_len, 2);
		c->last_cmd_handle = req.handle_value.handle;
		/* After a move, a keepalive to the old handle keeps nothing alive. */
		if (req.handle_value.handle == c->supervision && c->n_tokens < 64)
			c->tokens[c->n_tokens++] = get_le16(req.handle_value.value);
		return;
	case ATT_OP_WRITE_REQ: {
		uint16_t h = req.handle_value.handle;
		const uint16_t cccds[5] = { c->pressure_cccd, c->status_cccd, c->battery_cccd,
					    c->cp_cccd, c->sc_cccd };

		if (h == c->cp) {
			if (c->hold_cp && !c->held_len) {
				memcpy(c->held, buf, n);
				c->held_len = n;
				return;
			}
			cuff_answer_cp(c, req.handle_value.value, req.handle_value.value_len);
			return;
		}
		for (int i = 0; i < 5; i++) {
			if (h == cccds[i] && req.handle_value.value_len == 2) {
				static const uint8_t write_rsp = ATT_OP_WRITE_RSP;

				c->cccd_values[i] = get_le16(req.handle_value.value);
				assert_int_equal(send(c->fd, &write_rsp, 1, 0), 1);
				return;
			}
		}
		cuff_error(c, req.opcode, h, ATT_ERR_WRITE_NOT_PERMITTED);
		return;
	}
	case ATT_OP_READ_REQ:
		for (size_t i = 0; i < c->n; i++) {
			if (c->attrs[i].handle != req.read_req.handle)
				continue;
			rsp.opcode = ATT_OP_READ_RSP;
			rsp.value.value = c->attrs[i].value;
			rsp.value.value_len = c->attrs[i].len;
			cuff_send(c, &rsp);
			return;
		}
		cuff_error(c, req.opcode, req.read_req.handle, ATT_ERR_INVALID_HANDLE);
		return;
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
	case ATT_OP_READ_BY_TYPE_REQ: {
		bool group = req.opcode == ATT_OP_READ_BY_GROUP_TYPE_REQ;

		if (group && c->hold_services && !c->held_svc_len) {
			memcpy(c->held_svc, buf, n);
			c->held_svc_len = n;
			c->n_log--; /* logged when it is answered */
			return;
		}

		rsp.opcode = group ? ATT_OP_READ_BY_GROUP_TYPE_RSP : ATT_OP_READ_BY_TYPE_RSP;
		att_list_init(&b, c->mtu, rsp.opcode);
		for (size_t i = 0; i < c->n; i++) {
			const struct attr *a = &c->attrs[i];
			size_t len = 2;

			if (a->handle < req.read_by_type_req.start ||
			    a->handle > req.read_by_type_req.end ||
			    !att_uuid_equal(&a->type, &req.read_by_type_req.type))
				continue;
			put_le16(entry, a->handle);
			if (group) {
				put_le16(entry + 2, group_end(c, i));
				len = 4;
			}
			memcpy(entry + len, a->value, a->len);
			if (att_list_add(&b, entry, len + a->len) < 0)
				break;
		}
		if (b.len == 0) {
			cuff_error(c, req.opcode, req.read_by_type_req.start,
				   ATT_ERR_ATTRIBUTE_NOT_FOUND);
			return;
		}
		rsp.read_by_type_rsp.entry_len = (uint8_t)b.entry_len;
		rsp.read_by_type_rsp.list = b.buf;
		rsp.read_by_type_rsp.list_len = b.len;
		cuff_send(c, &rsp);
		return;
	}
	default:
		cuff_error(c, req.opcode, 0, ATT_ERR_REQUEST_NOT_SUPPORTED);
		return;
	}
}

static void cuff_io(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct cuff *c = user_data;
	uint8_t buf[ATT_MAX_MTU + 1];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		cuff_handle(c, buf, (size_t)n);
	if (n == 0) {
		loop_del_io(loop, fd);
		close(fd);
		c->fd = -1;
	}
}

static void cuff_accept(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct cuff *c = user_data;
	int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	assert_true(s >= 0);
	assert_int_equal(c->fd, -1); /* one central at a time */
	c->fd = s;
	c->mtu = ATT_DEFAULT_MTU;
	c->accepts++;
	assert_int_equal(loop_add_io(loop, s, EPOLLIN, cuff_io, c), 0);
}

static void cuff_drop(struct fixture *f)
{
	assert_true(f->cuff.fd >= 0);
	loop_del_io(f->loop, f->cuff.fd);
	close(f->cuff.fd);
	f->cuff.fd = -1;
}

/* --- link callbacks --------------------------------------------------------------------- */

static void on_state(struct cuff_link *link, enum cuff_link_state state, const char *error,
		     void *user_data)
{
	struct events *e = user_data;

	if (e->n_states < 64)
		e->states[e->n_states++] = state;
	if (error)
		snprintf(e->last_error, sizeof(e->last_error), "%s", error);
	if (state == CUFF_LINK_BACKOFF)
		assert_non_null(error);
}

static void on_ready(struct cuff_link *link, const struct bfr_features *features,
		     const struct bfr_status *status, const struct gatt_device_info *info,
		     void *user_data)
{
	struct events *e = user_data;

	e->ready++;
	e->features = *features;
}

static void on_samples(struct cuff_link *link, const struct bfr_sample *samples, size_t n,
		       void *user_data)
{
	struct events *e = user_data;

	e->sample_calls++;
	e->n_samples = n < 8 ? n : 8;
	memcpy(e->samples, samples, e->n_samples * sizeof(*samples));
	if (e->stop_on_samples)
		cuff_link_stop(link);
}

static void on_status(struct cuff_link *link, const struct bfr_status *st, void *user_data)
{
	((struct events *)user_data)->status_calls++;
}

static void on_battery(struct cuff_link *link, uint8_t pct, void *user_data)
{
	struct events *e = user_data;

	e->battery_calls++;
	e->battery = pct;
}

static void on_cp_result(struct cuff_link *link, const struct bfr_cp_response *rsp,
			 void *user_data)
{
	struct events *e = user_data;

	e->cp_results++;
	e->cp_rsp = *rsp;
}

static void on_cp_failed(struct cuff_link *link, uint8_t opcode, int err, const char *why,
			 void *user_data)
{
	struct events *e = user_data;

	e->cp_failures++;
	e->cp_failed_opcode = opcode;
	e->cp_failed_err = err;
	assert_non_null(why);
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

/* --- fixture ------------------------------------------------------------------------ */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct cuff_link_config cfg = { .id = "bay1-left-thigh", .supervision_timeout_ms = 1500 };

	assert_non_null(f);
	f->now = 1000000;
	assert_int_equal(loop_new_with_clock(fake_clock, &f->now, &f->loop), 0);
	strcpy(f->dir, "/tmp/bfr-test-link-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/cuff-01.sock", f->dir);
	snprintf(f->address, sizeof(f->address), "sim:%s", f->path);
	build_cuff(&f->cuff);
	f->cuff.fd = -1;
	f->cuff.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->cuff.listen_fd >= 0);
	strcpy(sun.sun_path, f->path);
	assert_int_equal(bind(f->cuff.listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->cuff.listen_fd, 4), 0);
	assert_int_equal(loop_add_io(f->loop, f->cuff.listen_fd, EPOLLIN, cuff_accept, &f->cuff),
			 0);
	cfg.address = f->address;
	assert_int_equal(cuff_link_new(f->loop, &cfg, &callbacks, &f->ev, &f->link), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	cuff_link_free(f->link);
	if (f->cuff.fd >= 0) {
		loop_del_io(f->loop, f->cuff.fd);
		close(f->cuff.fd);
	}
	loop_del_io(f->loop, f->cuff.listen_fd);
	close(f->cuff.listen_fd);
	unlink(f->path);
	rmdir(f->dir);
	loop_free(f->loop);
	free(f);
	test_alloc_reset();
	return 0;
}

/* Runs the loop (no real waiting) until cond holds; a bounded number of turns. */
#define RUN_UNTIL(f, cond)                                                   \
	do {                                                                 \
		for (int turn_ = 0; turn_ < 200 && !(cond); turn_++)         \
			assert_int_equal(loop_run_once((f)->loop, 0), 0);    \
		assert_true(cond);                                           \
	} while (0)

static void settle(struct fixture *f)
{
	for (int i = 0; i < 10; i++)
		assert_int_equal(loop_run_once(f->loop, 0), 0);
}

static void bring_up(struct fixture *f)
{
	assert_int_equal(cuff_link_start(f->link), 0);
	RUN_UNTIL(f, cuff_link_get_state(f->link) == CUFF_LINK_READY);
}

static void notify_pressure(struct fixture *f, double mmhg, uint16_t seq)
{
	struct bfr_sample s = { .seq = seq, .t_ms = 1234, .pressure_mmhg = mmhg,
				.target_mmhg = 180, .pulse_amplitude = 2.5, .status = 0x0005 };
	uint8_t buf[32];
	size_t len;

	assert_int_equal(bfr_pressure_encode(&s, 1, buf, sizeof(buf), &len), 0);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.pressure, buf, len);
}

/* --- tests ------------------------------------------------------------------------------- */

static void test_bring_up_and_keepalive(void **state)
{
	struct fixture *f = *state;
	const enum cuff_link_state want[] = { CUFF_LINK_CONNECTING, CUFF_LINK_DISCOVERING,
					      CUFF_LINK_READY };
	const struct gatt_cuff_handles *h;

	bring_up(f);
	assert_int_equal(f->ev.n_states, 3);
	assert_memory_equal(f->ev.states, want, sizeof(want));
	assert_int_equal(f->ev.ready, 1);
	assert_int_equal(f->ev.features.cuff_width_mm, 115);
	assert_int_equal(f->ev.features.limb, BFR_LIMB_LEG);
	h = cuff_link_handles(f->link);
	assert_int_equal(h->pressure, f->cuff.pressure);
	assert_int_equal(h->supervision, f->cuff.supervision);
	/* notifications on, indications on the Control Point */
	assert_int_equal(f->cuff.cccd_values[0], ATT_CCCD_NOTIFY);
	assert_int_equal(f->cuff.cccd_values[1], ATT_CCCD_NOTIFY);
	assert_int_equal(f->cuff.cccd_values[2], ATT_CCCD_NOTIFY);
	assert_int_equal(f->cuff.cccd_values[3], ATT_CCCD_INDICATE);
	assert_int_equal(f->cuff.sup_timeout_ms, 1500);

	/* keepalive at ready, then every timeout/3 = 500 ms, token incrementing */
	settle(f);
	assert_int_equal(f->cuff.confirmations, 1); /* SET_SUPERVISION result confirmed */
	assert_int_equal(f->cuff.n_tokens, 1);
	f->now += 499;
	settle(f);
	assert_int_equal(f->cuff.n_tokens, 1);
	for (int i = 0; i < 4; i++) {
		f->now += (i == 0) ? 1 : 500;
		settle(f);
	}
	assert_int_equal(f->cuff.n_tokens, 5);
	for (size_t i = 1; i < f->cuff.n_tokens; i++)
		assert_int_equal(f->cuff.tokens[i], (uint16_t)(f->cuff.tokens[i - 1] + 1));
}

static void test_values_delivered_and_garbage_dropped(void **state)
{
	struct fixture *f = *state;
	struct cuff_link_stats st;
	uint8_t st_buf[16];
	size_t st_len;
	struct bfr_status status = { .state = BFR_STATE_HOLDING, .battery_pct = 80,
				     .last_lop_mmhg = 220, .cuff_width_mm = 115 };

	bring_up(f);
	notify_pressure(f, 182.5, 7);
	RUN_UNTIL(f, f->ev.sample_calls == 1);
	assert_int_equal(f->ev.n_samples, 1);
	assert_int_equal(f->ev.samples[0].seq, 7);
	assert_true(fabs(f->ev.samples[0].pressure_mmhg - 182.5) < 0.01);

	/* malformed pressure values: empty, n = 0, length not matching n */
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.pressure, NULL, 0);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.pressure, (const uint8_t[]){ 0 }, 1);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.pressure,
		   (const uint8_t[]){ 1, 2, 3, 4 }, 4);
	/* status of the wrong size, battery above 100 %, a handle nobody owns */
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.status, (const uint8_t[]){ 1 }, 1);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.battery, (const uint8_t[]){ 101 },
		   1);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, 0x0200, (const uint8_t[]){ 1 }, 1);
	/* a CP indication that does not decode, and one nobody asked for */
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_IND, f->cuff.cp, (const uint8_t[]){ 0x80 }, 1);
	cuff_cp_result(&f->cuff, BFR_CP_IDENTIFY, BFR_RESULT_SUCCESS);
	settle(f);
	assert_int_equal(f->ev.sample_calls, 1);
	assert_int_equal(f->ev.status_calls, 0);
	assert_int_equal(f->ev.battery_calls, 0);
	assert_int_equal(f->ev.cp_results, 0);
	cuff_link_get_stats(f->link, &st);
	assert_int_equal(st.malformed, 7);
	assert_int_equal(st.cp_unexpected, 1);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_READY);

	assert_int_equal(bfr_status_encode(&status, st_buf, sizeof(st_buf), &st_len), 0);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.status, st_buf, st_len);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_NTF, f->cuff.battery, (const uint8_t[]){ 80 }, 1);
	RUN_UNTIL(f, f->ev.battery_calls == 1);
	assert_int_equal(f->ev.status_calls, 1);
	assert_int_equal(f->ev.battery, 80);
	cuff_link_get_stats(f->link, &st);
	assert_int_equal(st.samples, 1);
	assert_true(st.pdus_rx > 10);
	assert_true(st.pdus_tx > 10);
}

static void test_control_point(void **state)
{
	struct fixture *f = *state;
	struct bfr_cp_request target = { .opcode = BFR_CP_SET_TARGET };
	struct bfr_cp_request cue = { .opcode = BFR_CP_CUE, .cue = BFR_CUE_REP_UP };
	struct bfr_cp_request deflate = { .opcode = BFR_CP_DEFLATE,
					  .deflate_reason = BFR_DEFLATE_SAFETY };

	target.set_target.mmhg = 180;
	target.set_target.ramp_ms = 2000;
	assert_int_equal(cuff_link_send_cp(f->link, &target), -ENOTCONN);
	bring_up(f);
	assert_int_equal(cuff_link_send_cp(f->link, &target), 0);
	RUN_UNTIL(f, f->ev.cp_results == 1);
	assert_int_equal(f->ev.cp_rsp.req_opcode, BFR_CP_SET_TARGET);
	assert_int_equal(f->ev.cp_rsp.result, BFR_RESULT_SUCCESS);

	/* DEFLATE overtakes a queued CUE (not the outstanding SET_TARGET) */
	f->cuff.hold_cp = true;
	f->cuff.n_cp = 0;
	assert_int_equal(cuff_link_send_cp(f->link, &target), 0);
	settle(f);
	assert_int_equal(f->cuff.held_len > 0, 1);
	assert_int_equal(cuff_link_send_cp(f->link, &cue), 0);
	assert_int_equal(cuff_link_send_cp(f->link, &deflate), 0);
	f->cuff.hold_cp = false;
	cuff_handle(&f->cuff, f->cuff.held, f->cuff.held_len);
	RUN_UNTIL(f, f->ev.cp_results == 4);
	assert_int_equal(f->cuff.n_cp, 3);
	assert_int_equal(f->cuff.cp_log[0], BFR_CP_SET_TARGET);
	assert_int_equal(f->cuff.cp_log[1], BFR_CP_DEFLATE);
	assert_int_equal(f->cuff.cp_log[2], BFR_CP_CUE);

	/* ATT error on the write */
	f->cuff.cp_att_error = ATT_ERR_INSUFFICIENT_ENCRYPTION;
	assert_int_equal(cuff_link_send_cp(f->link, &cue), 0);
	RUN_UNTIL(f, f->ev.cp_failures == 1);
	assert_int_equal(f->ev.cp_failed_err, -EPROTO);
	assert_int_equal(f->ev.cp_failed_opcode, BFR_CP_CUE);

	/* write accepted, indication never comes */
	f->cuff.cp_att_error = 0;
	f->cuff.cp_silent = true;
	assert_int_equal(cuff_link_send_cp(f->link, &deflate), 0);
	settle(f);
	f->now += CUFF_LINK_CP_TIMEOUT_MS - 1;
	settle(f);
	assert_int_equal(f->ev.cp_failures, 1);
	f->now += 1;
	settle(f);
	assert_int_equal(f->ev.cp_failures, 2);
	assert_int_equal(f->ev.cp_failed_err, -ETIMEDOUT);
	assert_int_equal(f->ev.cp_failed_opcode, BFR_CP_DEFLATE);

	/* an unencodable request is refused */
	struct bfr_cp_request bad = { .opcode = 0x7E };
	assert_int_equal(cuff_link_send_cp(f->link, &bad), -EINVAL);
}

static void test_link_lost_backoff_reconnect(void **state)
{
	struct fixture *f = *state;
	struct cuff_link_stats st;
	struct bfr_cp_request cue = { .opcode = BFR_CP_CUE, .cue = BFR_CUE_REST };

	bring_up(f);
	f->cuff.cp_silent = true;
	assert_int_equal(cuff_link_send_cp(f->link, &cue), 0);
	settle(f);
	cuff_drop(f);
	RUN_UNTIL(f, cuff_link_get_state(f->link) == CUFF_LINK_BACKOFF);
	assert_non_null(strstr(f->ev.last_error, "link lost"));
	assert_int_equal(f->ev.cp_failures, 1);
	assert_int_equal(f->ev.cp_failed_err, -ECONNRESET);
	assert_int_equal(cuff_link_send_cp(f->link, &cue), -ENOTCONN);
	/* no keepalives while not ready */
	size_t tokens = f->cuff.n_tokens;

	/* first delay is in [250, 500] ms */
	f->now += 249;
	settle(f);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_BACKOFF);
	assert_int_equal(f->cuff.n_tokens, tokens);
	f->now += 251;
	RUN_UNTIL(f, cuff_link_get_state(f->link) == CUFF_LINK_READY);
	assert_int_equal(f->cuff.accepts, 2);
	assert_int_equal(f->ev.ready, 2);
	cuff_link_get_stats(f->link, &st);
	assert_int_equal(st.reconnects, 1);
}

static void test_supervision_refused(void **state)
{
	struct fixture *f = *state;

	f->cuff.supervision_result = BFR_RESULT_NOT_SUPPORTED;
	assert_int_equal(cuff_link_start(f->link), 0);
	RUN_UNTIL(f, cuff_link_get_state(f->link) == CUFF_LINK_BACKOFF);
	assert_non_null(strstr(f->ev.last_error, "refused SET_SUPERVISION"));
	assert_int_equal(f->ev.ready, 0);
	assert_string_equal(cuff_link_last_error(f->link), f->ev.last_error);
}

static void test_no_cuff_and_no_bluetooth(void **state)
{
	struct fixture *f = *state;
	struct cuff_link *le;
	struct events ev = { 0 };
	struct cuff_link_config cfg = { .id = "bay2-right-arm", .address = "C4:7F:51:00:12:9A",
					.address_type = "random", .adapter = "hci0" };
	int probe = socket(AF_BLUETOOTH, SOCK_SEQPACKET, 1);

	unlink(f->path); /* nobody listening there any more */
	assert_int_equal(cuff_link_start(f->link), 0);
	RUN_UNTIL(f, cuff_link_get_state(f->link) == CUFF_LINK_BACKOFF);
	assert_non_null(strstr(f->ev.last_error, "No such file"));

	if (probe >= 0) {
		close(probe);
		return;
	}
	assert_int_equal(cuff_link_new(f->loop, &cfg, &callbacks, &ev, &le), 0);
	assert_int_equal(cuff_link_start(le), 0);
	for (int i = 0; i < 20 && cuff_link_get_state(le) != CUFF_LINK_BACKOFF; i++)
		assert_int_equal(loop_run_once(f->loop, 0), 0);
	assert_int_equal(cuff_link_get_state(le), CUFF_LINK_BACKOFF);
	assert_string_equal(ev.last_error, "Bluetooth not available in this kernel "
			    "(AF_BLUETOOTH: Address family not supported)");
	cuff_link_stop(le);
	assert_int_equal(cuff_link_get_state(le), CUFF_LINK_DISCONNECTED);
	cuff_link_free(le);
}

static void test_stop_inside_samples_and_bad_config(void **state)
{
	struct fixture *f = *state;
	struct cuff_link *l = (struct cuff_link *)0x1;
	struct cuff_link_config cfg = { .id = "x", .address = "C4:7F:51:00:12" };

	bring_up(f);
	f->ev.stop_on_samples = true;
	notify_pressure(f, 50, 1);
	RUN_UNTIL(f, f->ev.sample_calls == 1);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_DISCONNECTED);
	f->now += 60000;
	settle(f);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_DISCONNECTED);
	assert_int_equal(f->cuff.accepts, 1);

	assert_int_equal(cuff_link_new(f->loop, &cfg, &callbacks, NULL, &l), -EINVAL);
	cfg.address = "C4:7F:51:00:12:9A";
	cfg.security = "none";
	assert_int_equal(cuff_link_new(f->loop, &cfg, &callbacks, NULL, &l), -EINVAL);
	cfg.security = NULL;
	cfg.supervision_timeout_ms = 299;
	assert_int_equal(cuff_link_new(f->loop, &cfg, &callbacks, NULL, &l), -EINVAL);
	cfg.supervision_timeout_ms = 0;
	cfg.id = NULL;
	assert_int_equal(cuff_link_new(f->loop, &cfg, &callbacks, NULL, &l), -EINVAL);
	assert_ptr_equal(l, (struct cuff_link *)0x1);
	cfg.id = "x";
	for (long n = 0; n < 3; n++) {
		test_alloc_fail_after(n);
		assert_int_equal(cuff_link_new(f->loop, &cfg, &callbacks, NULL, &l), -ENOMEM);
		test_alloc_reset();
	}
	assert_ptr_equal(l, (struct cuff_link *)0x1);
}

/*
 * Issue 9 item 8: the setup order. Service Changed indications are enabled
 * first (a change during the rest of setup is then seen), then Features
 * and Status are read, the CCCDs written, SET_SUPERVISION sent.
 */
static void test_setup_subscribes_to_service_changed_first(void **state)
{
	struct fixture *f = *state;
	struct cuff *c = &f->cuff;
	size_t first = 0;
	const struct {
		uint8_t op;
		uint16_t handle;
	} want[] = {
		{ ATT_OP_WRITE_REQ, c->sc_cccd },     { ATT_OP_READ_REQ, c->features },
		{ ATT_OP_READ_REQ, c->status },       { ATT_OP_WRITE_REQ, c->pressure_cccd },
		{ ATT_OP_WRITE_REQ, c->status_cccd }, { ATT_OP_WRITE_REQ, c->battery_cccd },
		{ ATT_OP_WRITE_REQ, c->cp_cccd },     { ATT_OP_WRITE_REQ, c->cp },
	};

	bring_up(f);
	settle(f);
	assert_int_equal(c->cccd_values[4], ATT_CCCD_INDICATE);
	assert_int_equal(cuff_link_handles(f->link)->service_changed, c->sc);
	assert_int_equal(cuff_link_handles(f->link)->service_changed_cccd, c->sc_cccd);
	/* Setup begins with the first request after discovery (the first write). */
	while (first < c->n_log && c->log_op[first] != ATT_OP_WRITE_REQ &&
	       c->log_op[first] != ATT_OP_READ_REQ)
		first++;
	assert_int_equal(c->n_log - first, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (c->log_op[first + i] != want[i].op || c->log_handle[first + i] != want[i].handle)
			fail_msg("setup request %zu: op 0x%02x handle 0x%04x, want 0x%02x 0x%04x", i,
				 c->log_op[first + i], c->log_handle[first + i], want[i].op,
				 want[i].handle);
	}
}

static void send_service_changed(struct fixture *f, uint16_t start, uint16_t end)
{
	uint8_t v[4];

	put_le16(v, start);
	put_le16(v + 2, end);
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_IND, f->cuff.sc, v, sizeof(v));
}

/* The cuff's "firmware" moves the BFR and Battery services and forgets the CCCDs. */
static void move_cuff(struct fixture *f, uint16_t base)
{
	build_cuff_at(&f->cuff, base, true);
	memset(f->cuff.cccd_values, 0, sizeof(f->cuff.cccd_values));
}

static bool resubscribed_all(const struct cuff *c)
{
	return c->cccd_values[0] == ATT_CCCD_NOTIFY && c->cccd_values[1] == ATT_CCCD_NOTIFY &&
	       c->cccd_values[2] == ATT_CCCD_NOTIFY && c->cccd_values[3] == ATT_CCCD_INDICATE &&
	       c->cccd_values[4] == ATT_CCCD_INDICATE;
}

/*
 * Issue 9 item 8: a Service Changed indication is confirmed, the link stays
 * READY (no state change reaches the wiring), discovery runs again on the
 * same link without a second MTU exchange, keepalives go on meanwhile to
 * the known Supervision handle, and then everything uses the new handles.
 */
static void test_service_changed_rediscovers_on_the_same_link(void **state)
{
	struct fixture *f = *state;
	struct cuff *c = &f->cuff;
	struct bfr_cp_request identify = { .opcode = BFR_CP_IDENTIFY };
	struct cuff_link_stats st;
	uint16_t old_supervision, old_pressure;
	size_t n_states, tokens, log_at;

	bring_up(f);
	settle(f);
	n_states = f->ev.n_states;
	old_supervision = c->supervision;
	old_pressure = c->pressure;
	assert_int_equal(c->confirmations, 1); /* SET_SUPERVISION's result */

	/* The table changes; the rediscovery is held at its first request. */
	move_cuff(f, 0x0040);
	assert_int_not_equal(c->supervision, old_supervision);
	c->hold_services = true;
	log_at = c->n_log;
	send_service_changed(f, 0x0010, 0xFFFF);
	RUN_UNTIL(f, c->held_svc_len > 0);
	assert_int_equal(c->confirmations, 2); /* confirmed at once */
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_READY);
	/* Meanwhile: keepalives to the Supervision handle known so far. */
	tokens = c->n_tokens;
	f->now += 500;
	settle(f);
	assert_int_equal(c->last_cmd_handle, old_supervision);
	assert_int_equal(cuff_link_handles(f->link)->supervision, old_supervision);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_READY);

	c->hold_services = false;
	cuff_handle(c, c->held_svc, c->held_svc_len);
	c->held_svc_len = 0;
	RUN_UNTIL(f, resubscribed_all(c));
	settle(f);
	/* Same link, no state change, no second MTU exchange, primary services first. */
	assert_int_equal(c->accepts, 1);
	assert_int_equal(f->ev.n_states, n_states);
	assert_int_equal(f->ev.ready, 1);
	assert_int_equal(c->mtu_requests, 1);
	assert_int_equal(c->log_op[log_at], ATT_OP_READ_BY_GROUP_TYPE_REQ);
	assert_int_equal(cuff_link_handles(f->link)->pressure, c->pressure);
	assert_int_equal(cuff_link_handles(f->link)->supervision, c->supervision);
	assert_int_equal(c->cp_log[c->n_cp - 1], BFR_CP_SET_SUPERVISION); /* not sent again */
	assert_int_equal(c->n_cp, 1);

	/* Keepalives now reach the new handle, samples come from the new one. */
	f->now += 500;
	settle(f);
	assert_int_equal(c->last_cmd_handle, c->supervision);
	assert_true(c->n_tokens > tokens);
	assert_int_not_equal(c->pressure, old_pressure);
	notify_pressure(f, 120, 9);
	RUN_UNTIL(f, f->ev.sample_calls == 1);
	assert_int_equal(cuff_link_send_cp(f->link, &identify), 0);
	RUN_UNTIL(f, f->ev.cp_results == 1);
	assert_int_equal(f->ev.cp_rsp.req_opcode, BFR_CP_IDENTIFY);
	cuff_link_get_stats(f->link, &st);
	assert_int_equal(st.service_changed, 1);
	assert_int_equal(st.malformed, 0);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_READY);
}

/* A second Service Changed while rediscovering: one more rediscovery afterwards. */
static void test_service_changed_during_rediscovery_runs_again(void **state)
{
	struct fixture *f = *state;
	struct cuff *c = &f->cuff;
	struct cuff_link_stats st;
	size_t log_at, rounds = 0;

	bring_up(f);
	settle(f);
	c->hold_services = true;
	log_at = c->n_log;
	move_cuff(f, 0x0040);
	send_service_changed(f, 0x0010, 0xFFFF);
	RUN_UNTIL(f, c->held_svc_len > 0);
	move_cuff(f, 0x0080);
	send_service_changed(f, 0x0040, 0xFFFF);
	settle(f);
	c->hold_services = false;
	cuff_handle(c, c->held_svc, c->held_svc_len);
	c->held_svc_len = 0;
	for (int turn = 0; turn < 400; turn++) {
		assert_int_equal(loop_run_once(f->loop, 0), 0);
		if (cuff_link_handles(f->link)->pressure == c->pressure && resubscribed_all(c))
			break;
	}
	settle(f);
	assert_int_equal(cuff_link_handles(f->link)->pressure, c->pressure);
	assert_true(resubscribed_all(c));
	/* Two rounds of primary service discovery, each from handle 0x0001. */
	for (size_t i = log_at; i < c->n_log; i++)
		rounds += c->log_op[i] == ATT_OP_READ_BY_GROUP_TYPE_REQ && c->log_handle[i] == 1;
	assert_int_equal(rounds, 2);
	cuff_link_get_stats(f->link, &st);
	assert_int_equal(st.service_changed, 2);
	assert_int_equal(c->accepts, 1);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_READY);
}

/* Rediscovery fails (the BFR service is gone): only then does the link drop. */
static void test_service_changed_rediscovery_failure_drops_link(void **state)
{
	struct fixture *f = *state;
	struct cuff_link_stats st;
	uint8_t bad[3] = { 1, 0, 0 };

	bring_up(f);
	settle(f);
	/* Malformed values are confirmed, counted and change nothing. */
	cuff_value(&f->cuff, ATT_OP_HANDLE_VALUE_IND, f->cuff.sc, bad, sizeof(bad));
	send_service_changed(f, 0x0020, 0x0010); /* start > end */
	send_service_changed(f, 0x0000, 0x0010); /* handle 0 */
	settle(f);
	cuff_link_get_stats(f->link, &st);
	assert_int_equal(st.malformed, 3);
	assert_int_equal(st.service_changed, 0);
	assert_int_equal(f->cuff.confirmations, 4);

	build_cuff_at(&f->cuff, 0x0010, false);
	send_service_changed(f, 0x0010, 0xFFFF);
	RUN_UNTIL(f, cuff_link_get_state(f->link) == CUFF_LINK_BACKOFF);
	assert_non_null(strstr(f->ev.last_error, "discovery after Service Changed failed: no BFR "
				"Cuff service"));
}

/* A Service Changed during setup is acted on once the link is READY. */
static void test_service_changed_during_setup(void **state)
{
	struct fixture *f = *state;
	struct cuff *c = &f->cuff;
	struct cuff_link_stats st;

	uint16_t old_cp;

	c->hold_cp = true; /* setup waits at SET_SUPERVISION */
	assert_int_equal(cuff_link_start(f->link), 0);
	RUN_UNTIL(f, c->held_len > 0);
	old_cp = c->cp;
	move_cuff(f, 0x0040);
	c->cccd_values[4] = ATT_CCCD_INDICATE; /* setup already enabled it */
	send_service_changed(f, 0x0010, 0xFFFF);
	settle(f);
	assert_int_equal(cuff_link_get_state(f->link), CUFF_LINK_DISCOVERING);
	/* The cuff answers the SET_SUPERVISION written before the move, where it was. */
	c->hold_cp = false;
	c->cp = old_cp;
	cuff_answer_cp(c, c->held + 3, c->held_len - 3);
	build_cuff_at(c, 0x0040, true);
	RUN_UNTIL(f, cuff_link_get_state(f->link) == CUFF_LINK_READY);
	RUN_UNTIL(f, cuff_link_handles(f->link)->pressure == c->pressure && resubscribed_all(c));
	cuff_link_get_stats(f->link, &st);
	assert_int_equal(st.service_changed, 1);
	assert_int_equal(c->accepts, 1);
}

/* Receive path cost: notification bytes on the socket -> on_samples, measured. */
static void test_receive_path_throughput(void **state)
{
	struct fixture *f = *state;
	const int total = 20000;
	struct timespec a, b;
	double us;

	bring_up(f);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int sent = 0; sent < total;) {
		/* keep the socket buffer from filling: batches of 64 */
		for (int k = 0; k < 64 && sent < total; k++, sent++)
			notify_pressure(f, 100 + (sent % 50), (uint16_t)sent);
		RUN_UNTIL(f, f->ev.sample_calls == sent);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	us = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
	assert_int_equal(f->ev.sample_calls, total);
	assert_int_equal(f->ev.samples[0].seq, (uint16_t)(total - 1));
	print_message("receive path: %d notifications in %.0f us, %.2f us each "
		      "(incl. the scripted peer's encode+send; ASan build)\n",
		      total, us, us / total);
}

/*
 * End to end against the real cuffsim binary (built next to this test).
 * Real clock; every wait is on a condition with a deadline.
 */
static uint64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define RUN_REAL_UNTIL(loop, cond, ms)                                        \
	do {                                                                  \
		uint64_t deadline_ = real_ms() + (ms);                        \
		while (!(cond) && real_ms() < deadline_)                      \
			assert_int_equal(loop_run_once((loop), 50), 0);       \
		assert_true(cond);                                            \
	} while (0)

static void test_against_cuffsim(void **state)
{
	char exe[4096], sim[4096 + 16], dir[] = "/tmp/bfr-test-e2e-XXXXXX";
	char address[4096], line[256] = "";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct loop *loop;
	struct cuff_link *link;
	struct events ev = { 0 };
	struct cuff_link_config cfg = { .id = "e2e" };
	struct bfr_cp_request target = { .opcode = BFR_CP_SET_TARGET };
	struct bfr_cp_request deflate = { .opcode = BFR_CP_DEFLATE };
	struct cuff_link_stats st;
	int out[2], status;
	pid_t pid;

	assert_true(n > 0);
	exe[n] = '\0';
	snprintf(sim, sizeof(sim), "%s/cuffsim", dirname(exe));
	if (access(sim, X_OK) != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	assert_int_equal(pipe(out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		close(out[0]);
		execl(sim, "cuffsim", "--dir", dir, "--cuffs", "1", "--seed", "7", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	/* cuffsim prints a line once its sockets listen */
	struct pollfd p = { .fd = out[0], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_true(read(out[0], line, sizeof(line) - 1) > 0);
	assert_non_null(strstr(line, "ready"));

	snprintf(address, sizeof(address), "sim:%s/cuff-01.sock", dir);
	cfg.address = address;
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(cuff_link_new(loop, &cfg, &callbacks, &ev, &link), 0);
	uint64_t t0 = real_ms(), t_ready, t_cp;

	assert_int_equal(cuff_link_start(link), 0);
	RUN_REAL_UNTIL(loop, cuff_link_get_state(link) == CUFF_LINK_READY, 5000);
	t_ready = real_ms();
	assert_int_equal(ev.ready, 1);
	RUN_REAL_UNTIL(loop, ev.sample_calls >= 5, 5000);
	target.set_target.mmhg = 80;
	target.set_target.ramp_ms = 500;
	t_cp = real_ms();
	assert_int_equal(cuff_link_send_cp(link, &target), 0);
	RUN_REAL_UNTIL(loop, ev.cp_results + ev.cp_failures >= 1, 6000);
	print_message("cuffsim: start->READY %llu ms, SET_TARGET result after %llu ms\n",
		      (unsigned long long)(t_ready - t0), (unsigned long long)(real_ms() - t_cp));
	assert_int_equal(ev.cp_failures, 0);
	assert_int_equal(ev.cp_rsp.req_opcode, BFR_CP_SET_TARGET);
	assert_int_equal(ev.cp_rsp.result, BFR_RESULT_SUCCESS);
	deflate.deflate_reason = BFR_DEFLATE_NORMAL;
	assert_int_equal(cuff_link_send_cp(link, &deflate), 0);
	RUN_REAL_UNTIL(loop, ev.cp_results + ev.cp_failures >= 2, 6000);
	assert_int_equal(ev.cp_rsp.req_opcode, BFR_CP_DEFLATE);
	cuff_link_get_stats(link, &st);
	assert_int_equal(st.att_rejected, 0);
	assert_int_equal(st.malformed, 0);
	assert_true(st.keepalives >= 1);
	print_message("cuffsim: %llu PDUs rx, %llu tx, %llu samples, %llu keepalives\n",
		      (unsigned long long)st.pdus_rx, (unsigned long long)st.pdus_tx,
		      (unsigned long long)st.samples, (unsigned long long)st.keepalives);

	cuff_link_free(link);
	loop_free(loop);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(out[0]);
	char path[4096 + 32];
	snprintf(path, sizeof(path), "%s/cuff-01.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bring_up_and_keepalive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_delivered_and_garbage_dropped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_control_point, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_lost_backoff_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_supervision_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_cuff_and_no_bluetooth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_inside_samples_and_bad_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_setup_subscribes_to_service_changed_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_service_changed_rediscovers_on_the_same_link,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_changed_during_rediscovery_runs_again,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_changed_rediscovery_failure_drops_link,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_changed_during_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_path_throughput, setup, teardown),
		cmocka_unit_test(test_against_cuffsim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
