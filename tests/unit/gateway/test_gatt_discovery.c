/*
 * test_gatt_discovery.c - discovery against a scripted GATT server on the
 * other end of socketpair(AF_UNIX, SOCK_SEQPACKET). The server answers from
 * an attribute table (so handle layouts can be shifted and padded with
 * extra services and descriptors) and can be told to answer the n-th
 * request of an opcode with an Error Response, garbage, or silence.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "bytes.h"
#include "cuff_profile.h"
#include "gatt_discovery.h"
#include "test_alloc.h"

#define MAX_ATTRS 96

struct attr {
	uint16_t handle;
	struct att_uuid type;
	uint8_t value[96];
	size_t len;
};

enum fault_kind { FAULT_NONE, FAULT_ERROR, FAULT_SILENT, FAULT_GARBAGE };

struct server {
	struct attr attrs[MAX_ATTRS];
	size_t n;
	uint16_t next_handle;
	uint16_t mtu;
	uint16_t server_mtu;
	/* fault injection */
	uint8_t fault_op;
	int fault_nth; /* 1-based occurrence of fault_op */
	enum fault_kind fault;
	uint8_t fault_ecode;
	const uint8_t *garbage;
	size_t garbage_len;
	int seen[256];
	uint8_t log[128]; /* request opcodes in order */
	uint16_t log_offset[128]; /* Read Blob offsets, same index */
	uint16_t log_type[128];   /* Read By (Group) Type: the 16-bit type, 0 otherwise */
	uint16_t log_start[128], log_end[128]; /* its range */
	size_t n_log;
};

struct fixture {
	uint64_t now;
	struct loop *loop;
	int peer;
	struct att_client *att;
	struct gatt_discovery *disc;
	struct server srv;
	int calls;
	int err;
	char msg[256];
	struct gatt_cuff_handles h;
};

static uint64_t fake_clock(void *data)
{
	return *(uint64_t *)data;
}

/* --- attribute table builders ---------------------------------------------- */

static uint16_t add_attr(struct server *s, const struct att_uuid *type, const void *value,
			 size_t len)
{
	struct attr *a = &s->attrs[s->n++];

	assert_true(s->n <= MAX_ATTRS && len <= sizeof(a->value));
	a->handle = s->next_handle++;
	a->type = *type;
	memcpy(a->value, value, len);
	a->len = len;
	return a->handle;
}

static void add_service(struct server *s, const struct att_uuid *uuid)
{
	struct att_uuid t;
	uint8_t v[16];
	size_t len = att_uuid_wire_len(uuid);

	att_uuid_from16(ATT_UUID_PRIMARY_SERVICE, &t);
	memcpy(v, len == 2 ? uuid->le + 12 : uuid->le, len);
	add_attr(s, &t, v, len);
}

static void add_service16(struct server *s, uint16_t u16)
{
	struct att_uuid u;

	att_uuid_from16(u16, &u);
	add_service(s, &u);
}

static uint16_t add_char(struct server *s, uint8_t props, const struct att_uuid *uuid,
			 const void *value, size_t len)
{
	struct att_uuid t;
	uint8_t decl[19];
	size_t ulen = att_uuid_wire_len(uuid);

	att_uuid_from16(ATT_UUID_CHARACTERISTIC, &t);
	decl[0] = props;
	put_le16(decl + 1, (uint16_t)(s->next_handle + 1));
	memcpy(decl + 3, ulen == 2 ? uuid->le + 12 : uuid->le, ulen);
	add_attr(s, &t, decl, 3 + ulen);
	return add_attr(s, uuid, value, len);
}

static uint16_t add_char16(struct server *s, uint8_t props, uint16_t u16, const char *text)
{
	struct att_uuid u;

	att_uuid_from16(u16, &u);
	return add_char(s, props, &u, text, text ? strlen(text) : 0);
}

static uint16_t add_desc(struct server *s, uint16_t u16)
{
	struct att_uuid u;
	uint8_t zero[2] = { 0 };

	att_uuid_from16(u16, &u);
	return add_attr(s, &u, zero, 2);
}

struct layout_opts {
	uint16_t first_handle;
	bool gap_gatt;      /* GAP + GATT (Service Changed) services first */
	bool user_desc;     /* 0x2901 on every BFR characteristic */
	bool no_supervision;
	bool pressure_no_cccd;
	bool cp_write_only;  /* Control Point without indicate */
	bool battery;
	bool devinfo;
	/* Device Information strings instead of the short defaults */
	const char *manufacturer, *model, *serial, *firmware;
};

static struct gatt_cuff_handles expected;

static uint16_t bfr_char(struct server *s, enum bfr_uuid_id id, uint8_t props,
			 const struct layout_opts *o, uint16_t *cccd)
{
	struct att_uuid u;
	uint8_t v[9] = { 0 };
	uint16_t h;

	bfr_uuid(id, &u);
	h = add_char(s, props, &u, v, sizeof(v));
	if (o->user_desc)
		add_desc(s, ATT_UUID_CHAR_USER_DESC);
	if (cccd && !(id == BFR_UUID_PRESSURE && o->pressure_no_cccd))
		*cccd = add_desc(s, ATT_UUID_CCCD);
	return h;
}

static void build_layout(struct server *s, const struct layout_opts *o)
{
	struct att_uuid u;

	memset(&expected, 0, sizeof(expected));
	s->next_handle = o->first_handle ? o->first_handle : 1;
	if (o->gap_gatt) {
		add_service16(s, ATT_UUID_GAP_SERVICE);
		add_char16(s, ATT_PROP_READ, ATT_UUID_DEVICE_NAME, "BFR Cuff");
		add_char16(s, ATT_PROP_READ, ATT_UUID_APPEARANCE, "\x01");
		add_service16(s, ATT_UUID_GATT_SERVICE);
		expected.service_changed =
			add_char16(s, ATT_PROP_INDICATE, ATT_UUID_SERVICE_CHANGED, "1234");
		expected.service_changed_cccd = add_desc(s, ATT_UUID_CCCD);
	}
	bfr_uuid(BFR_UUID_SERVICE, &u);
	expected.service_start = s->next_handle;
	add_service(s, &u);
	expected.pressure = bfr_char(s, BFR_UUID_PRESSURE, ATT_PROP_NOTIFY, o,
				     &expected.pressure_cccd);
	expected.control_point =
		bfr_char(s, BFR_UUID_CONTROL_POINT,
			 o->cp_write_only ? ATT_PROP_WRITE : ATT_PROP_WRITE | ATT_PROP_INDICATE, o,
			 &expected.control_point_cccd);
	expected.status = bfr_char(s, BFR_UUID_STATUS, ATT_PROP_READ | ATT_PROP_NOTIFY, o,
				   &expected.status_cccd);
	if (!o->no_supervision)
		expected.supervision = bfr_char(s, BFR_UUID_SUPERVISION,
						ATT_PROP_WRITE_WITHOUT_RESP, o, NULL);
	expected.features = bfr_char(s, BFR_UUID_FEATURES, ATT_PROP_READ, o, NULL);
	expected.service_end = (uint16_t)(s->next_handle - 1);
	if (o->battery) {
		add_service16(s, ATT_UUID_BATTERY_SERVICE);
		expected.battery_level = add_char16(s, ATT_PROP_READ | ATT_PROP_NOTIFY,
						    ATT_UUID_BATTERY_LEVEL, "\x50");
		expected.battery_cccd = add_desc(s, ATT_UUID_CCCD);
	}
	if (o->devinfo) {
		add_service16(s, ATT_UUID_DEVICE_INFO_SERVICE);
		add_char16(s, ATT_PROP_READ, ATT_UUID_MANUFACTURER_NAME,
			   o->manufacturer ? o->manufacturer : "Acme\x01" "Cuffs");
		add_char16(s, ATT_PROP_READ, ATT_UUID_MODEL_NUMBER, o->model ? o->model : "BFR-2");
		add_char16(s, ATT_PROP_READ, ATT_UUID_SERIAL_NUMBER,
			   o->serial ? o->serial : "SN0001");
		add_char16(s, ATT_PROP_READ, ATT_UUID_FIRMWARE_REV,
			   o->firmware ? o->firmware : "1.4.2");
	}
}

/* --- the server ----------------------------------------------------------- */

static bool is16(const struct att_uuid *u, uint16_t want)
{
	uint16_t v;

	return att_uuid_is16(u, &v) && v == want;
}

static uint16_t group_end(const struct server *s, size_t i)
{
	for (size_t j = i + 1; j < s->n; j++)
		if (is16(&s->attrs[j].type, ATT_UUID_PRIMARY_SERVICE))
			return (uint16_t)(s->attrs[j].handle - 1);
	return s->attrs[s->n - 1].handle;
}

static void srv_send(struct fixture *f, const struct att_pdu *pdu)
{
	uint8_t buf[ATT_MAX_MTU];
	size_t len;

	assert_int_equal(att_pdu_encode(pdu, buf, f->srv.mtu, &len), 0);
	assert_int_equal(send(f->peer, buf, len, 0), (ssize_t)len);
}

static void srv_error(struct fixture *f, uint8_t op, uint16_t handle, uint8_t ecode)
{
	struct att_pdu e = { .opcode = ATT_OP_ERROR_RSP };

	e.error_rsp.req_opcode = op;
	e.error_rsp.handle = handle;
	e.error_rsp.error = ecode;
	srv_send(f, &e);
}

static void srv_handle(struct fixture *f, const uint8_t *buf, size_t n)
{
	struct server *s = &f->srv;
	struct att_pdu req, rsp = { 0 };
	struct att_list_builder b;
	uint8_t entry[64];

	assert_int_equal(att_pdu_decode(buf, n, &req), 0);
	assert_true(s->n_log < sizeof(s->log));
	s->log_offset[s->n_log] =
		req.opcode == ATT_OP_READ_BLOB_REQ ? req.read_blob_req.offset : 0;
	s->log_type[s->n_log] = 0;
	if (req.opcode == ATT_OP_READ_BY_TYPE_REQ || req.opcode == ATT_OP_READ_BY_GROUP_TYPE_REQ) {
		(void)att_uuid_is16(&req.read_by_type_req.type, &s->log_type[s->n_log]);
		s->log_start[s->n_log] = req.read_by_type_req.start;
		s->log_end[s->n_log] = req.read_by_type_req.end;
	}
	s->log[s->n_log++] = req.opcode;
	if (req.opcode == s->fault_op && ++s->seen[req.opcode] == s->fault_nth) {
		if (s->fault == FAULT_ERROR) {
			srv_error(f, req.opcode, 0x0001, s->fault_ecode);
			return;
		}
		if (s->fault == FAULT_SILENT)
			return;
		if (s->fault == FAULT_GARBAGE) {
			assert_int_equal(send(f->peer, s->garbage, s->garbage_len, 0),
					 (ssize_t)s->garbage_len);
			return;
		}
	}
	switch (req.opcode) {
	case ATT_OP_MTU_REQ:
		rsp.opcode = ATT_OP_MTU_RSP;
		rsp.mtu.mtu = s->server_mtu;
		srv_send(f, &rsp);
		s->mtu = req.mtu.mtu < s->server_mtu ? req.mtu.mtu : s->server_mtu;
		return;
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
	case ATT_OP_READ_BY_TYPE_REQ: {
		bool group = req.opcode == ATT_OP_READ_BY_GROUP_TYPE_REQ;

		rsp.opcode = group ? ATT_OP_READ_BY_GROUP_TYPE_RSP : ATT_OP_READ_BY_TYPE_RSP;
		att_list_init(&b, s->mtu, rsp.opcode);
		for (size_t i = 0; i < s->n; i++) {
			const struct attr *a = &s->attrs[i];
			size_t len = 0;

			if (a->handle < req.read_by_type_req.start ||
			    a->handle > req.read_by_type_req.end ||
			    !att_uuid_equal(&a->type, &req.read_by_type_req.type))
				continue;
			put_le16(entry, a->handle);
			len = 2;
			if (group) {
				put_le16(entry + 2, group_end(s, i));
				len = 4;
			}
			memcpy(entry + len, a->value, a->len);
			if (att_list_add(&b, entry, len + a->len) < 0)
				break;
		}
		break;
	}
	case ATT_OP_FIND_INFO_REQ:
		rsp.opcode = ATT_OP_FIND_INFO_RSP;
		att_list_init(&b, s->mtu, rsp.opcode);
		for (size_t i = 0; i < s->n; i++) {
			const struct attr *a = &s->attrs[i];
			size_t ulen = att_uuid_wire_len(&a->type);

			if (a->handle < req.find_info_req.start || a->handle > req.find_info_req.end)
				continue;
			put_le16(entry, a->handle);
			memcpy(entry + 2, ulen == 2 ? a->type.le + 12 : a->type.le, ulen);
			if (att_list_add(&b, entry, 2 + ulen) < 0)
				break;
			rsp.find_info_rsp.format = ulen == 2 ? 1 : 2;
		}
		break;
	case ATT_OP_READ_REQ:
	case ATT_OP_READ_BLOB_REQ: {
		bool blob = req.opcode == ATT_OP_READ_BLOB_REQ;
		uint16_t h = blob ? req.read_blob_req.handle : req.read_req.handle;
		size_t off = blob ? req.read_blob_req.offset : 0;

		for (size_t i = 0; i < s->n; i++) {
			const struct attr *a = &s->attrs[i];

			if (a->handle != h)
				continue;
			if (off > a->len) {
				srv_error(f, req.opcode, h, ATT_ERR_INVALID_OFFSET);
				return;
			}
			/* As much as fits one response: MTU - 1 bytes. */
			rsp.opcode = blob ? ATT_OP_READ_BLOB_RSP : ATT_OP_READ_RSP;
			rsp.value.value = a->value + off;
			rsp.value.value_len = a->len - off < s->mtu - 1u ? a->len - off : s->mtu - 1u;
			srv_send(f, &rsp);
			return;
		}
		srv_error(f, req.opcode, h, ATT_ERR_INVALID_HANDLE);
		return;
	}
	default:
		srv_error(f, req.opcode, 0, ATT_ERR_REQUEST_NOT_SUPPORTED);
		return;
	}
	if (b.len == 0) {
		srv_error(f, req.opcode, req.read_by_type_req.start, ATT_ERR_ATTRIBUTE_NOT_FOUND);
		return;
	}
	if (rsp.opcode == ATT_OP_FIND_INFO_RSP) {
		rsp.find_info_rsp.list = b.buf;
		rsp.find_info_rsp.list_len = b.len;
	} else {
		rsp.read_by_type_rsp.entry_len = (uint8_t)b.entry_len;
		rsp.read_by_type_rsp.list = b.buf;
		rsp.read_by_type_rsp.list_len = b.len;
	}
	srv_send(f, &rsp);
}

/* --- driving ---------------------------------------------------------------- */

static void on_done(int err, const char *msg, const struct gatt_cuff_handles *h, void *user_data)
{
	struct fixture *f = user_data;

	f->calls++;
	f->err = err;
	snprintf(f->msg, sizeof(f->msg), "%s", msg ? msg : "");
	if (h)
		f->h = *h;
	else
		assert_int_not_equal(err, 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];

	assert_non_null(f);
	assert_int_equal(loop_new_with_clock(fake_clock, &f->now, &f->loop), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(att_client_new(f->loop, sv[0], &f->att), 0);
	f->peer = sv[1];
	f->srv.mtu = ATT_DEFAULT_MTU;
	f->srv.server_mtu = 517;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	gatt_discovery_free(f->disc);
	att_client_free(f->att);
	close(f->peer);
	loop_free(f->loop);
	free(f);
	test_alloc_reset();
	return 0;
}

/* Serves requests until discovery reports; a silent server needs the clock pushed. */
static void run(struct fixture *f)
{
	assert_int_equal(gatt_discovery_start(f->att, on_done, f, &f->disc), 0);
	for (int i = 0; i < 500 && f->calls == 0; i++) {
		uint8_t buf[ATT_MAX_MTU + 1];
		ssize_t n;

		assert_int_equal(loop_run_once(f->loop, 0), 0);
		while ((n = recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			srv_handle(f, buf, (size_t)n);
		if (i > 100)
			f->now += 1000; /* only a silent server lets it get this far */
	}
	assert_int_equal(f->calls, 1);
	if (f->err == 0) {
		gatt_discovery_free(f->disc);
		f->disc = NULL;
	}
}

static size_t count_op(const struct fixture *f, uint8_t op)
{
	size_t n = 0;

	for (size_t i = 0; i < f->srv.n_log; i++)
		n += f->srv.log[i] == op;
	return n;
}

static void assert_handles(const struct fixture *f)
{
	assert_int_equal(f->h.service_start, expected.service_start);
	assert_int_equal(f->h.service_end, expected.service_end);
	assert_int_equal(f->h.pressure, expected.pressure);
	assert_int_equal(f->h.pressure_cccd, expected.pressure_cccd);
	assert_int_equal(f->h.control_point, expected.control_point);
	assert_int_equal(f->h.control_point_cccd, expected.control_point_cccd);
	assert_int_equal(f->h.status, expected.status);
	assert_int_equal(f->h.status_cccd, expected.status_cccd);
	assert_int_equal(f->h.supervision, expected.supervision);
	assert_int_equal(f->h.features, expected.features);
	assert_int_equal(f->h.battery_level, expected.battery_level);
	assert_int_equal(f->h.battery_cccd, expected.battery_cccd);
	assert_int_equal(f->h.service_changed, expected.service_changed);
	assert_int_equal(f->h.service_changed_cccd, expected.service_changed_cccd);
}

static void test_minimal_layout_exact_sequence(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { 0 };
	/* MTU, 0x2B3A, services, not-found, characteristics x2 pages + not found */
	static const uint8_t first[] = { ATT_OP_MTU_REQ, ATT_OP_READ_BY_TYPE_REQ,
					 ATT_OP_READ_BY_GROUP_TYPE_REQ };

	f->srv.server_mtu = 23; /* small pages: exercises paging */
	build_layout(&f->srv, &o);
	run(f);
	assert_int_equal(f->err, 0);
	assert_memory_equal(f->srv.log, first, sizeof(first));
	assert_handles(f);
	assert_int_equal(f->h.mtu, 23);
	/* every notify/indicate characteristic had exactly one handle after it */
	assert_int_equal(count_op(f, ATT_OP_FIND_INFO_REQ), 0);
	assert_int_equal(count_op(f, ATT_OP_READ_REQ), 0);
	assert_string_equal(f->h.info.model, "");
}

static void test_full_layout_shifted_extra_services(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .first_handle = 0x0100, .gap_gatt = true,
				       .user_desc = true, .battery = true, .devinfo = true };

	build_layout(&f->srv, &o);
	run(f);
	if (f->err)
		fail_msg("discovery failed: %s", f->msg);
	assert_handles(f);
	assert_int_equal(f->h.mtu, 517);
	/* 0x2901 descriptors: Find Information used for Pressure, CP, Status */
	assert_int_equal(count_op(f, ATT_OP_FIND_INFO_REQ), 3);
	assert_string_equal(f->h.info.manufacturer, "Acme?Cuffs");
	assert_string_equal(f->h.info.model, "BFR-2");
	assert_string_equal(f->h.info.serial, "SN0001");
	assert_string_equal(f->h.info.firmware, "1.4.2");
}

static void test_mtu_and_features_errors_tolerated(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .battery = true };

	f->srv.fault_op = ATT_OP_MTU_REQ;
	f->srv.fault_nth = 1;
	f->srv.fault = FAULT_ERROR;
	f->srv.fault_ecode = ATT_ERR_REQUEST_NOT_SUPPORTED;
	build_layout(&f->srv, &o);
	run(f);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->h.mtu, 23);
	assert_handles(f);
}

struct failure_case {
	const char *name;
	struct layout_opts layout;
	uint8_t op;
	int nth;
	enum fault_kind kind;
	uint8_t ecode;
	const uint8_t *garbage;
	size_t garbage_len;
	int err;
	const char *msg;
};

static const uint8_t bad_group[] = { 0x11, 0x06, 0x01, 0x00, 0x05, 0x00, 0x0F, 0x18 };
static const uint8_t bad_group_len[] = { 0x11, 0x06, 0x01, 0x00, 0xFF };
static const uint8_t bad_decl[] = { 0x09, 0x05, 0x02, 0x00, 0x10, 0x01, 0x00 };
static const uint8_t bad_info[] = { 0x05, 0x01, 0x01, 0x00, 0x02, 0x29 };

static const struct failure_case failures[] = {
	{ "no services", { 0 }, ATT_OP_READ_BY_GROUP_TYPE_REQ, 1, FAULT_ERROR,
	  ATT_ERR_ATTRIBUTE_NOT_FOUND, NULL, 0, -ENOENT, "has no primary services" },
	{ "no BFR service", { 0 }, ATT_OP_READ_BY_GROUP_TYPE_REQ, 1, FAULT_GARBAGE, 0,
	  (const uint8_t[]){ 0x11, 0x06, 0x01, 0x00, 0xFF, 0xFF, 0x0F, 0x18 }, 8, -ENOENT,
	  "no BFR Cuff service (7b1e0001-5c2a-4d3b-9f8e-0a1b2c3d4e5f)" },
	{ "service before the requested start", { 0 }, ATT_OP_READ_BY_GROUP_TYPE_REQ, 2, FAULT_GARBAGE, 0,
	  bad_group, sizeof(bad_group), -EBADMSG, "malformed service entry" },
	/* A malformed answer is a protocol error at once, not a 30 s timeout (issue 9 item 7). */
	{ "truncated group list", { 0 }, ATT_OP_READ_BY_GROUP_TYPE_REQ, 1, FAULT_GARBAGE, 0,
	  bad_group_len, sizeof(bad_group_len), -EBADMSG, "primary service discovery: Bad message" },
	{ "insufficient authentication", { 0 }, ATT_OP_READ_BY_GROUP_TYPE_REQ, 1, FAULT_ERROR,
	  ATT_ERR_INSUFFICIENT_AUTHENTICATION, NULL, 0, -EPROTO,
	  "primary service discovery: ATT error" },
	{ "no characteristics", { 0 }, ATT_OP_READ_BY_TYPE_REQ, 2, FAULT_ERROR,
	  ATT_ERR_ATTRIBUTE_NOT_FOUND, NULL, 0, -ENOENT,
	  "no Cuff Pressure characteristic (7b1e0002-" },
	{ "declaration outside service", { 0 }, ATT_OP_READ_BY_TYPE_REQ, 2, FAULT_GARBAGE, 0,
	  bad_decl, sizeof(bad_decl), -EBADMSG, "malformed characteristic declaration" },
	{ "no supervision", { .no_supervision = true }, 0, 0, FAULT_NONE, 0, NULL, 0, -ENOENT,
	  "no Cuff Supervision characteristic (7b1e0005-" },
	{ "control point cannot indicate", { .cp_write_only = true }, 0, 0, FAULT_NONE, 0, NULL,
	  0, -ENOENT, "Cuff Control Point characteristic lacks required properties" },
	{ "pressure without CCCD", { .pressure_no_cccd = true }, 0, 0, FAULT_NONE, 0, NULL, 0,
	  -ENOENT, "Cuff Pressure characteristic has no Client Characteristic Configuration" },
	{ "descriptor not found", { .user_desc = true }, ATT_OP_FIND_INFO_REQ, 1, FAULT_ERROR,
	  ATT_ERR_ATTRIBUTE_NOT_FOUND, NULL, 0, -ENOENT,
	  "Cuff Pressure characteristic has no Client Characteristic" },
	{ "descriptor out of range", { .user_desc = true }, ATT_OP_FIND_INFO_REQ, 1,
	  FAULT_GARBAGE, 0, bad_info, sizeof(bad_info), -EBADMSG, "out of range" },
	{ "silence during MTU", { 0 }, ATT_OP_MTU_REQ, 1, FAULT_SILENT, 0, NULL, 0, -ETIMEDOUT,
	  "MTU exchange: no response within 30 s" },
	{ "silence during characteristics", { 0 }, ATT_OP_READ_BY_TYPE_REQ, 2, FAULT_SILENT, 0,
	  NULL, 0, -ETIMEDOUT, "characteristic discovery: no response" },
	{ "silence during descriptors", { .user_desc = true }, ATT_OP_FIND_INFO_REQ, 2,
	  FAULT_SILENT, 0, NULL, 0, -ETIMEDOUT, "descriptor discovery: no response" },
	{ "silence during device info", { .devinfo = true }, ATT_OP_READ_REQ, 3, FAULT_SILENT, 0,
	  NULL, 0, -ETIMEDOUT, "Device Information read: no response" },
};

static void test_failures(void **state)
{
	for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
		const struct failure_case *c = &failures[i];
		struct fixture *f;

		setup(state);
		f = *state;
		build_layout(&f->srv, &c->layout);
		f->srv.fault_op = c->op;
		f->srv.fault_nth = c->nth;
		f->srv.fault = c->kind;
		f->srv.fault_ecode = c->ecode;
		f->srv.garbage = c->garbage;
		f->srv.garbage_len = c->garbage_len;
		run(f);
		if (f->err != c->err || !strstr(f->msg, c->msg))
			fail_msg("case \"%s\": got %d \"%s\", want %d \"%s\"", c->name, f->err,
				 f->msg, c->err, c->msg);
		teardown(state);
	}
	*state = NULL;
}

static void test_devinfo_read_error_leaves_string_empty(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .devinfo = true };

	f->srv.fault_op = ATT_OP_READ_REQ;
	f->srv.fault_nth = 2;
	f->srv.fault = FAULT_ERROR;
	f->srv.fault_ecode = ATT_ERR_READ_NOT_PERMITTED;
	build_layout(&f->srv, &o);
	run(f);
	assert_int_equal(f->err, 0);
	assert_string_equal(f->h.info.manufacturer, "Acme?Cuffs");
	assert_string_equal(f->h.info.model, "");
	assert_string_equal(f->h.info.serial, "SN0001");
}

/* The requests of the Device Information step: the log after the last descriptor step. */
static size_t devinfo_log(const struct fixture *f, uint8_t *ops, uint16_t *offsets)
{
	size_t n = 0;

	for (size_t i = 0; i < f->srv.n_log; i++) {
		if (f->srv.log[i] != ATT_OP_READ_REQ && f->srv.log[i] != ATT_OP_READ_BLOB_REQ)
			continue;
		ops[n] = f->srv.log[i];
		offsets[n++] = f->srv.log_offset[i];
	}
	return n;
}

#define S44 "BFR Gateway Project - cuffsim simulated cuff"
#define S30 "Model BFR-2 thigh cuff, 115mm"
#define S75 "A manufacturer name that is longer than the 63 bytes the gateway keeps: cut"

/*
 * Issue 9 item 9: at MTU 23 a Read Response carries 22 bytes; a string that
 * fills it is read on with Read Blob until a shorter (or empty) chunk.
 */
static void test_long_device_strings_read_with_blob(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .devinfo = true, .manufacturer = S44, .model = S30,
				       .serial = "SN-0123456789-ABCDEFGH", /* exactly 22 */
				       .firmware = "1.4.2" };
	static const uint8_t want_ops[] = {
		ATT_OP_READ_REQ, ATT_OP_READ_BLOB_REQ, ATT_OP_READ_BLOB_REQ, /* 22 + 22 + 0 */
		ATT_OP_READ_REQ, ATT_OP_READ_BLOB_REQ,                       /* 22 + 7 */
		ATT_OP_READ_REQ, ATT_OP_READ_BLOB_REQ,                       /* 22 + 0 */
		ATT_OP_READ_REQ,                                             /* 5 */
	};
	static const uint16_t want_off[] = { 0, 22, 44, 0, 22, 0, 22, 0 };
	uint8_t ops[64];
	uint16_t off[64];
	size_t n;

	assert_int_equal(strlen(S44), 44);
	assert_int_equal(strlen(S30), 29);
	f->srv.server_mtu = 23;
	build_layout(&f->srv, &o);
	run(f);
	if (f->err)
		fail_msg("discovery failed: %s", f->msg);
	assert_int_equal(f->h.mtu, 23);
	assert_string_equal(f->h.info.manufacturer, S44);
	assert_string_equal(f->h.info.model, S30);
	assert_string_equal(f->h.info.serial, "SN-0123456789-ABCDEFGH");
	assert_string_equal(f->h.info.firmware, "1.4.2");
	n = devinfo_log(f, ops, off);
	assert_int_equal(n, sizeof(want_ops));
	assert_memory_equal(ops, want_ops, sizeof(want_ops));
	assert_memory_equal(off, want_off, sizeof(want_off));
}

/* At MTU 517 the same strings come in one Read Response each. */
static void test_long_device_strings_one_read_at_large_mtu(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .devinfo = true, .manufacturer = S44, .model = S30 };

	build_layout(&f->srv, &o);
	run(f);
	assert_int_equal(f->err, 0);
	assert_string_equal(f->h.info.manufacturer, S44);
	assert_string_equal(f->h.info.model, S30);
	assert_int_equal(count_op(f, ATT_OP_READ_BLOB_REQ), 0);
	assert_int_equal(count_op(f, ATT_OP_READ_REQ), 4);
}

/* A string longer than the gateway keeps is cut, and no more is read than kept. */
static void test_device_string_longer_than_kept_is_cut(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .devinfo = true, .manufacturer = S75 };
	char want[GATT_DEVINFO_LEN];

	assert_true(strlen(S75) > GATT_DEVINFO_LEN);
	f->srv.server_mtu = 23;
	build_layout(&f->srv, &o);
	run(f);
	assert_int_equal(f->err, 0);
	memcpy(want, S75, GATT_DEVINFO_LEN - 1);
	want[GATT_DEVINFO_LEN - 1] = '\0';
	assert_string_equal(f->h.info.manufacturer, want);
	/* 22 + 22 + 22 >= 63: the third chunk fills the buffer, no fourth request. */
	assert_int_equal(count_op(f, ATT_OP_READ_BLOB_REQ), 2);
}

/*
 * Read Blob errors: Attribute Not Long / Invalid Offset end the value at
 * the chunk before; any other error leaves the string empty (as a failed
 * Read does), and discovery goes on.
 */
static void test_read_blob_errors(void **state)
{
	static const struct {
		uint8_t ecode;
		const char *manufacturer;
	} cases[] = {
		{ ATT_ERR_ATTRIBUTE_NOT_LONG, "BFR Gateway Project - " },
		{ ATT_ERR_INVALID_OFFSET, "BFR Gateway Project - " },
		{ ATT_ERR_READ_NOT_PERMITTED, "" },
		{ ATT_ERR_INSUFFICIENT_AUTHENTICATION, "" },
	};
	const struct layout_opts o = { .devinfo = true, .manufacturer = S44, .model = S30 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture *f;

		setup(state);
		f = *state;
		f->srv.server_mtu = 23;
		f->srv.fault_op = ATT_OP_READ_BLOB_REQ;
		f->srv.fault_nth = 1;
		f->srv.fault = FAULT_ERROR;
		f->srv.fault_ecode = cases[i].ecode;
		build_layout(&f->srv, &o);
		run(f);
		assert_int_equal(f->err, 0);
		if (strcmp(f->h.info.manufacturer, cases[i].manufacturer) != 0)
			fail_msg("error 0x%02x: manufacturer '%s', want '%s'", cases[i].ecode,
				 f->h.info.manufacturer, cases[i].manufacturer);
		/* The next string is read as usual. */
		assert_string_equal(f->h.info.model, S30);
		teardown(state);
	}
	*state = NULL;
}

/*
 * Issue 9 item 11: the gateway's sequence is the one docs/gatt-profile.md
 * 9.1 states: MTU, 0x2B3A over everything, primary services, then
 * characteristics service by service (never across two services), no
 * secondary services, no includes, then descriptors, then Device
 * Information reads, each phase after the one before.
 */
static void test_request_order_as_documented(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .first_handle = 0x0020, .gap_gatt = true,
				       .user_desc = true, .battery = true, .devinfo = true };
	const struct server *s = &f->srv;
	int phase = 0; /* 0 MTU, 1 features, 2 services, 3 characteristics, 4 descriptors, 5 reads */

	build_layout(&f->srv, &o);
	run(f);
	assert_int_equal(f->err, 0);
	assert_int_equal(s->log[0], ATT_OP_MTU_REQ);
	assert_int_equal(s->log[1], ATT_OP_READ_BY_TYPE_REQ);
	assert_int_equal(s->log_type[1], ATT_UUID_SERVER_SUPPORTED_FEATURES);
	assert_int_equal(s->log_start[1], 0x0001);
	assert_int_equal(s->log_end[1], 0xFFFF);
	for (size_t i = 2; i < s->n_log; i++) {
		int p;

		switch (s->log[i]) {
		case ATT_OP_READ_BY_GROUP_TYPE_REQ:
			/* Primary services only: no 0x2801 (the profile has none). */
			assert_int_equal(s->log_type[i], ATT_UUID_PRIMARY_SERVICE);
			assert_int_equal(s->log_end[i], 0xFFFF);
			p = 2;
			break;
		case ATT_OP_READ_BY_TYPE_REQ: {
			bool within = false;

			/* Declarations only (no 0x2802), and within one service's range. */
			assert_int_equal(s->log_type[i], ATT_UUID_CHARACTERISTIC);
			for (size_t a = 0; a < s->n; a++) {
				if (!is16(&s->attrs[a].type, ATT_UUID_PRIMARY_SERVICE))
					continue;
				within = within || (s->log_start[i] >= s->attrs[a].handle &&
						    s->log_end[i] <= group_end(s, a));
			}
			if (!within)
				fail_msg("request %zu: 0x2803 over 0x%04x-0x%04x spans services", i,
					 s->log_start[i], s->log_end[i]);
			p = 3;
			break;
		}
		case ATT_OP_FIND_INFO_REQ:
			p = 4;
			break;
		case ATT_OP_READ_REQ:
		case ATT_OP_READ_BLOB_REQ:
			p = 5;
			break;
		default:
			fail_msg("request %zu: unexpected opcode 0x%02x", i, s->log[i]);
			return;
		}
		if (p < phase)
			fail_msg("request %zu (opcode 0x%02x) after a later phase", i, s->log[i]);
		phase = p;
	}
	assert_int_equal(phase, 5);
	/* The four services it uses, the GATT service among them. */
	assert_true(f->h.service_changed != 0);
}

/* Drives a discovery already started (rediscovery) until it reports. */
static void serve_until_done(struct fixture *f)
{
	for (int i = 0; i < 500 && f->calls == 0; i++) {
		uint8_t buf[ATT_MAX_MTU + 1];
		ssize_t n;

		assert_int_equal(loop_run_once(f->loop, 0), 0);
		while ((n = recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			srv_handle(f, buf, (size_t)n);
	}
	assert_int_equal(f->calls, 1);
}

/*
 * Issue 9 item 8: after Service Changed the gateway discovers again on the
 * same bearer. No second MTU exchange (ATT allows one per connection), no
 * Server Supported Features; primary services first; the new handles.
 */
static void test_rediscover_on_the_same_bearer(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .gap_gatt = true, .user_desc = true, .battery = true };
	const struct layout_opts moved = { .first_handle = 0x0040, .gap_gatt = true,
					   .user_desc = true, .battery = true };
	struct gatt_cuff_handles first;

	build_layout(&f->srv, &o);
	run(f);
	assert_int_equal(f->err, 0);
	assert_handles(f);
	assert_true(f->h.service_changed_cccd > f->h.service_changed);
	first = f->h;

	/* The server's table changes: everything moves up. */
	memset(f->srv.attrs, 0, sizeof(f->srv.attrs));
	f->srv.n = 0;
	f->srv.n_log = 0;
	f->calls = 0;
	build_layout(&f->srv, &moved);
	assert_int_equal(gatt_discovery_rediscover(f->att, on_done, f, &f->disc), 0);
	serve_until_done(f);
	if (f->err)
		fail_msg("rediscovery failed: %s", f->msg);
	gatt_discovery_free(f->disc);
	f->disc = NULL;
	assert_handles(f);
	assert_int_not_equal(f->h.pressure, first.pressure);
	assert_int_equal(f->h.mtu, first.mtu);
	assert_int_equal(f->srv.log[0], ATT_OP_READ_BY_GROUP_TYPE_REQ);
	assert_int_equal(count_op(f, ATT_OP_MTU_REQ), 0);

	/* The BFR service gone after the change: rediscovery fails, naming it. */
	memset(f->srv.attrs, 0, sizeof(f->srv.attrs));
	f->srv.n = 0;
	f->calls = 0;
	f->srv.next_handle = 1;
	add_service16(&f->srv, ATT_UUID_GAP_SERVICE);
	add_char16(&f->srv, ATT_PROP_READ, ATT_UUID_DEVICE_NAME, "BFR Cuff");
	assert_int_equal(gatt_discovery_rediscover(f->att, on_done, f, &f->disc), 0);
	serve_until_done(f);
	assert_int_equal(f->err, -ENOENT);
	assert_non_null(strstr(f->msg, "no BFR Cuff service"));
	assert_int_equal(gatt_discovery_rediscover(NULL, on_done, f, &f->disc), -EINVAL);
}

/* A Service Changed without indicate, or outside the GATT service, is not used. */
static void test_service_changed_only_in_gatt_with_indicate(void **state)
{
	struct fixture *f = *state;
	const struct layout_opts o = { .battery = true };

	build_layout(&f->srv, &o);
	/* In the Battery service, where it does not belong. */
	add_char16(&f->srv, ATT_PROP_INDICATE, ATT_UUID_SERVICE_CHANGED, "1234");
	add_desc(&f->srv, ATT_UUID_CCCD);
	add_service16(&f->srv, ATT_UUID_GATT_SERVICE);
	/* In GATT but read-only. */
	add_char16(&f->srv, ATT_PROP_READ, ATT_UUID_SERVICE_CHANGED, "1234");
	run(f);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->h.service_changed, 0);
	assert_int_equal(f->h.service_changed_cccd, 0);
}

static void test_free_while_running_and_alloc_failure(void **state)
{
	struct fixture *f = *state;
	struct gatt_discovery *d = (struct gatt_discovery *)0x1;
	const struct layout_opts o = { 0 };

	build_layout(&f->srv, &o);
	test_alloc_fail_after(0);
	assert_int_equal(gatt_discovery_start(f->att, on_done, f, &d), -ENOMEM);
	assert_ptr_equal(d, (struct gatt_discovery *)0x1);
	test_alloc_fail_after(1); /* discovery allocated, its first request not */
	assert_int_equal(gatt_discovery_start(f->att, on_done, f, &d), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(gatt_discovery_start(f->att, on_done, f, &d), 0);
	assert_int_equal(loop_run_once(f->loop, 0), 0);
	gatt_discovery_free(d);
	/* the MTU request is outstanding; its answer must not reach the freed discovery */
	uint8_t buf[32];
	assert_true(recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT) > 0);
	assert_int_equal(send(f->peer, (const uint8_t[]){ 0x03, 0x05, 0x02 }, 3, 0), 3);
	assert_int_equal(loop_run_once(f->loop, 0), 0);
	assert_int_equal(f->calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_minimal_layout_exact_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_layout_shifted_extra_services, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mtu_and_features_errors_tolerated, setup,
						teardown),
		cmocka_unit_test(test_failures),
		cmocka_unit_test_setup_teardown(test_devinfo_read_error_leaves_string_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_free_while_running_and_alloc_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_device_strings_read_with_blob, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_device_strings_one_read_at_large_mtu,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_string_longer_than_kept_is_cut, setup,
						teardown),
		cmocka_unit_test(test_read_blob_errors),
		cmocka_unit_test_setup_teardown(test_request_order_as_documented, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rediscover_on_the_same_bearer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_changed_only_in_gatt_with_indicate,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
