/*
 * test_cuff_gatt.c - the cuff's GATT server driven by scripted ATT PDUs over
 * socketpair(AF_UNIX, SOCK_SEQPACKET): the BlueZ discovery sequence, an
 * answer to every request, Invalid PDU for malformed ones, handle shifts,
 * CCCD gating, indications with confirmation and queueing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "att.h"
#include "bytes.h"
#include "cuff_gatt.h"
#include "cuff_profile.h"
#include "test_alloc.h"

struct fixture {
	int server_fd; /* the cuff's end */
	int client_fd; /* the test plays the central here */
	struct cuff_gatt *g;
	int cp_writes;
	int supervision_writes;
	uint8_t last_cp[32];
	size_t last_cp_len;
	bool indicate_on_write;
};

static int fx_send(const uint8_t *pdu, size_t len, void *user_data)
{
	struct fixture *f = user_data;

	if (send(f->server_fd, pdu, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

static int fx_read(enum cuff_gatt_char ch, uint8_t *buf, size_t cap, size_t *len, void *ud)
{
	struct bfr_features feat = { .cuff_width_mm = 115, .limb = BFR_LIMB_LEG,
				     .max_pressure_mmhg = 250, .sample_rate_hz = 50,
				     .feature_bits = BFR_FEATURE_MEASURE_LOP };
	struct bfr_status st = { .state = BFR_STATE_IDLE, .battery_pct = 87,
				 .last_lop_mmhg = NAN, .cuff_width_mm = 115 };

	switch (ch) {
	case CUFF_CHAR_FEATURES:
		return bfr_features_encode(&feat, buf, cap, len);
	case CUFF_CHAR_STATUS:
		return bfr_status_encode(&st, buf, cap, len);
	case CUFF_CHAR_BATTERY:
		buf[0] = 87;
		*len = 1;
		return 0;
	default:
		return -ENOENT;
	}
}

static void fx_write(enum cuff_gatt_char ch, const uint8_t *v, size_t len, void *user_data)
{
	struct fixture *f = user_data;

	if (ch == CUFF_CHAR_SUPERVISION) {
		f->supervision_writes++;
		return;
	}
	assert_int_equal(ch, CUFF_CHAR_CONTROL_POINT);
	f->cp_writes++;
	f->last_cp_len = len < sizeof(f->last_cp) ? len : sizeof(f->last_cp);
	memcpy(f->last_cp, v, f->last_cp_len);
	if (f->indicate_on_write) {
		struct bfr_cp_response rsp = { .req_opcode = v[0], .result = BFR_RESULT_SUCCESS };

		assert_int_equal(cuff_gatt_indicate_cp(f->g, &rsp), 1);
	}
}

static const struct cuff_gatt_ops OPS = { .send = fx_send, .read = fx_read, .write = fx_write };

static struct fixture *fx_new(unsigned shift)
{
	static struct fixture fx[8];
	static int next;
	struct fixture *f = &fx[next++ % 8];
	struct cuff_gatt_config cfg = { .handle_shift = shift, .device_name = "BFR Cuff 01",
					.serial = "SIM-0001", .server_mtu = ATT_MAX_MTU };
	int sv[2];

	memset(f, 0, sizeof(*f));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	f->server_fd = sv[0];
	f->client_fd = sv[1];
	assert_int_equal(cuff_gatt_new(&cfg, &OPS, f, &f->g), 0);
	return f;
}

static void fx_free(struct fixture *f)
{
	cuff_gatt_free(f->g);
	close(f->server_fd);
	close(f->client_fd);
}

/* The cuff side: take one PDU off the socket, as cuffsim's I/O layer does. */
static void serve_one(struct fixture *f)
{
	uint8_t buf[ATT_MAX_MTU + 1];
	struct pollfd p = { .fd = f->server_fd, .events = POLLIN };
	ssize_t n;

	assert_int_equal(poll(&p, 1, 1000), 1);
	n = recv(f->server_fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	assert_true(n > 0);
	cuff_gatt_receive(f->g, buf, (size_t)n);
}

/* Reads one PDU the cuff sent; -1 if nothing is there (it answers synchronously). */
static ssize_t take(struct fixture *f, uint8_t *buf, size_t cap)
{
	ssize_t n = recv(f->client_fd, buf, cap, MSG_DONTWAIT);

	return n < 0 ? -1 : n;
}

/* Sends a request and returns the single PDU that answers it. */
static size_t xfer(struct fixture *f, const uint8_t *req, size_t len, uint8_t *rsp)
{
	uint8_t extra[ATT_MAX_MTU];
	ssize_t n;

	assert_int_equal(send(f->client_fd, req, len, 0), (ssize_t)len);
	serve_one(f);
	n = take(f, rsp, ATT_MAX_MTU);
	assert_true(n > 0);
	/* Exactly one answer per request. */
	assert_int_equal(take(f, extra, sizeof(extra)), -1);
	return (size_t)n;
}

static void expect_error(const uint8_t *rsp, size_t len, uint8_t req_op, uint16_t handle,
			 uint8_t err)
{
	assert_int_equal(len, 5);
	assert_int_equal(rsp[0], ATT_OP_ERROR_RSP);
	assert_int_equal(rsp[1], req_op);
	assert_int_equal(get_le16(rsp + 2), handle);
	assert_int_equal(rsp[4], err);
}

static void exchange_mtu(struct fixture *f, uint16_t mtu)
{
	uint8_t req[3] = { ATT_OP_MTU_REQ }, rsp[ATT_MAX_MTU];

	put_le16(req + 1, mtu);
	assert_int_equal(xfer(f, req, 3, rsp), 3);
	assert_int_equal(rsp[0], ATT_OP_MTU_RSP);
	assert_int_equal(get_le16(rsp + 1), ATT_MAX_MTU);
}

static size_t read_by_type(struct fixture *f, uint16_t start, uint16_t end, uint16_t type,
			   uint8_t *rsp)
{
	uint8_t req[7] = { ATT_OP_READ_BY_TYPE_REQ };

	put_le16(req + 1, start);
	put_le16(req + 3, end);
	put_le16(req + 5, type);
	return xfer(f, req, sizeof(req), rsp);
}

static size_t read_by_group(struct fixture *f, uint16_t start, uint16_t type, uint8_t *rsp)
{
	uint8_t req[7] = { ATT_OP_READ_BY_GROUP_TYPE_REQ };

	put_le16(req + 1, start);
	put_le16(req + 3, 0xFFFF);
	put_le16(req + 5, type);
	return xfer(f, req, sizeof(req), rsp);
}

struct service {
	uint16_t start, end;
	struct att_uuid uuid;
};

struct characteristic {
	uint16_t decl;
	struct att_char_decl d;
};

struct discovery {
	struct service svc[16];
	size_t n_svc;
	struct characteristic chr[64];
	size_t n_chr;
};

/* What BlueZ's GATT client sends, in its order (DESIGN §3). */
static void discover(struct fixture *f, struct discovery *d)
{
	uint8_t rsp[ATT_MAX_MTU];
	struct att_pdu pdu;
	uint16_t start;
	size_t len;

	memset(d, 0, sizeof(*d));
	exchange_mtu(f, ATT_MAX_MTU);
	assert_int_equal(cuff_gatt_mtu(f->g), ATT_MAX_MTU);

	len = read_by_type(f, 1, 0xFFFF, ATT_UUID_SERVER_SUPPORTED_FEATURES, rsp);
	expect_error(rsp, len, ATT_OP_READ_BY_TYPE_REQ, 1, ATT_ERR_ATTRIBUTE_NOT_FOUND);

	for (start = 1;;) {
		struct att_group_entry e;
		size_t pos = 0;

		len = read_by_group(f, start, ATT_UUID_PRIMARY_SERVICE, rsp);
		if (rsp[0] == ATT_OP_ERROR_RSP) {
			expect_error(rsp, len, ATT_OP_READ_BY_GROUP_TYPE_REQ, start,
				     ATT_ERR_ATTRIBUTE_NOT_FOUND);
			break;
		}
		assert_int_equal(att_pdu_decode(rsp, len, &pdu), 0);
		assert_int_equal(pdu.opcode, ATT_OP_READ_BY_GROUP_TYPE_RSP);
		while (att_read_by_group_next(&pdu, &pos, &e) == 1) {
			struct service *s = &d->svc[d->n_svc++];

			assert_true(e.start >= start && e.end >= e.start);
			s->start = e.start;
			s->end = e.end;
			assert_int_equal(att_uuid_from_wire(e.value, e.value_len, &s->uuid), 0);
			start = e.end + 1;
		}
		assert_true(d->n_svc < 16);
	}
	assert_true(d->n_svc >= 5);

	len = read_by_group(f, 1, ATT_UUID_SECONDARY_SERVICE, rsp);
	expect_error(rsp, len, ATT_OP_READ_BY_GROUP_TYPE_REQ, 1, ATT_ERR_ATTRIBUTE_NOT_FOUND);
	len = read_by_type(f, d->svc[0].start, d->svc[d->n_svc - 1].end, ATT_UUID_INCLUDE, rsp);
	expect_error(rsp, len, ATT_OP_READ_BY_TYPE_REQ, 1, ATT_ERR_ATTRIBUTE_NOT_FOUND);

	/* All characteristics across all services at once. */
	for (start = d->svc[0].start;;) {
		struct att_type_entry e;
		size_t pos = 0;

		len = read_by_type(f, start, d->svc[d->n_svc - 1].end, ATT_UUID_CHARACTERISTIC,
				   rsp);
		if (rsp[0] == ATT_OP_ERROR_RSP) {
			expect_error(rsp, len, ATT_OP_READ_BY_TYPE_REQ, start,
				     ATT_ERR_ATTRIBUTE_NOT_FOUND);
			break;
		}
		assert_int_equal(att_pdu_decode(rsp, len, &pdu), 0);
		while (att_read_by_type_next(&pdu, &pos, &e) == 1) {
			struct characteristic *c = &d->chr[d->n_chr++];

			c->decl = e.handle;
			assert_int_equal(att_char_decl_decode(e.value, e.value_len, &c->d), 0);
			assert_int_equal(c->d.value_handle, e.handle + 1);
			start = e.handle + 1;
		}
		assert_true(d->n_chr < 64);
	}
}

static const struct characteristic *find_char(const struct discovery *d, const struct att_uuid *u)
{
	for (size_t i = 0; i < d->n_chr; i++)
		if (att_uuid_equal(&d->chr[i].d.uuid, u))
			return &d->chr[i];
	return NULL;
}

static const struct characteristic *find_bfr(const struct discovery *d, enum bfr_uuid_id id)
{
	struct att_uuid u;

	bfr_uuid(id, &u);
	return find_char(d, &u);
}

/* Find Information over a characteristic's descriptors; returns the count. */
static size_t descriptors(struct fixture *f, uint16_t from, uint16_t to, struct att_info_entry *out,
			  size_t cap)
{
	uint8_t req[5] = { ATT_OP_FIND_INFO_REQ }, rsp[ATT_MAX_MTU];
	size_t n = 0;

	while (from <= to) {
		struct att_pdu pdu;
		struct att_info_entry e;
		size_t pos = 0, len;

		put_le16(req + 1, from);
		put_le16(req + 3, to);
		len = xfer(f, req, sizeof(req), rsp);
		if (rsp[0] == ATT_OP_ERROR_RSP)
			break;
		assert_int_equal(att_pdu_decode(rsp, len, &pdu), 0);
		while (att_find_info_next(&pdu, &pos, &e) == 1) {
			assert_true(n < cap);
			out[n++] = e;
			from = e.handle + 1;
		}
		if (from == 0)
			break;
	}
	return n;
}

static uint16_t next_decl_or_end(const struct discovery *d, const struct characteristic *c)
{
	for (size_t i = 0; i < d->n_chr; i++)
		if (d->chr[i].decl > c->decl)
			for (size_t s = 0; s < d->n_svc; s++)
				if (c->decl >= d->svc[s].start && c->decl <= d->svc[s].end)
					return d->chr[i].decl - 1 < d->svc[s].end ?
						       d->chr[i].decl - 1 :
						       d->svc[s].end;
	return d->svc[d->n_svc - 1].end;
}

static uint16_t cccd_of(struct fixture *f, const struct discovery *d, const struct characteristic *c)
{
	struct att_info_entry e[8];
	size_t n = descriptors(f, c->d.value_handle + 1, next_decl_or_end(d, c), e, 8);

	for (size_t i = 0; i < n; i++) {
		uint16_t u16;

		if (att_uuid_is16(&e[i].type, &u16) && u16 == ATT_UUID_CCCD)
			return e[i].handle;
	}
	return 0;
}

static void write_req(struct fixture *f, uint16_t handle, const uint8_t *v, size_t len,
		      uint8_t *rsp, size_t *rsp_len)
{
	uint8_t req[64] = { ATT_OP_WRITE_REQ };

	put_le16(req + 1, handle);
	memcpy(req + 3, v, len);
	*rsp_len = xfer(f, req, 3 + len, rsp);
}

static void enable(struct fixture *f, uint16_t cccd, uint16_t bits)
{
	uint8_t v[2], rsp[ATT_MAX_MTU];
	size_t len;

	put_le16(v, bits);
	write_req(f, cccd, v, 2, rsp, &len);
	assert_int_equal(len, 1);
	assert_int_equal(rsp[0], ATT_OP_WRITE_RSP);
}

static void test_bluez_discovery_sequence(void **state)
{
	struct fixture *f = fx_new(0);
	struct discovery d;
	struct att_uuid u;
	const struct characteristic *c;
	struct att_info_entry e[8];
	uint16_t u16;
	uint8_t req[3] = { ATT_OP_READ_REQ }, rsp[ATT_MAX_MTU];
	struct bfr_features feat;
	size_t n, len;

	discover(f, &d);
	assert_int_equal(d.n_svc, 5);
	assert_true(att_uuid_is16(&d.svc[0].uuid, &u16) && u16 == ATT_UUID_GAP_SERVICE);
	assert_true(att_uuid_is16(&d.svc[1].uuid, &u16) && u16 == ATT_UUID_GATT_SERVICE);
	assert_true(att_uuid_is16(&d.svc[2].uuid, &u16) && u16 == ATT_UUID_DEVICE_INFO_SERVICE);
	assert_true(att_uuid_is16(&d.svc[3].uuid, &u16) && u16 == ATT_UUID_BATTERY_SERVICE);
	bfr_uuid(BFR_UUID_SERVICE, &u);
	assert_true(att_uuid_equal(&d.svc[4].uuid, &u));
	assert_int_equal(d.n_chr, 12);

	c = find_bfr(&d, BFR_UUID_PRESSURE);
	assert_non_null(c);
	assert_int_equal(c->d.properties, ATT_PROP_NOTIFY);
	/* More than one descriptor: Find Information is needed and finds both. */
	n = descriptors(f, c->d.value_handle + 1, next_decl_or_end(&d, c), e, 8);
	assert_int_equal(n, 2);
	assert_true(att_uuid_is16(&e[0].type, &u16) && u16 == ATT_UUID_CCCD);
	assert_true(att_uuid_is16(&e[1].type, &u16) && u16 == ATT_UUID_CHAR_USER_DESC);
	assert_int_equal(find_bfr(&d, BFR_UUID_CONTROL_POINT)->d.properties,
			 ATT_PROP_WRITE | ATT_PROP_INDICATE);
	assert_int_equal(find_bfr(&d, BFR_UUID_STATUS)->d.properties,
			 ATT_PROP_READ | ATT_PROP_NOTIFY);
	assert_int_equal(find_bfr(&d, BFR_UUID_SUPERVISION)->d.properties,
			 ATT_PROP_WRITE_WITHOUT_RESP);
	assert_int_equal(find_bfr(&d, BFR_UUID_FEATURES)->d.properties, ATT_PROP_READ);
	att_uuid_from16(ATT_UUID_SERVICE_CHANGED, &u);
	assert_int_equal(find_char(&d, &u)->d.properties, ATT_PROP_INDICATE);
	assert_true(cccd_of(f, &d, find_char(&d, &u)) != 0);
	att_uuid_from16(ATT_UUID_BATTERY_LEVEL, &u);
	assert_true(cccd_of(f, &d, find_char(&d, &u)) != 0);

	c = find_bfr(&d, BFR_UUID_FEATURES);
	put_le16(req + 1, c->d.value_handle);
	len = xfer(f, req, 3, rsp);
	assert_int_equal(rsp[0], ATT_OP_READ_RSP);
	assert_int_equal(bfr_features_decode(rsp + 1, len - 1, &feat), 0);
	assert_int_equal(feat.cuff_width_mm, 115);

	att_uuid_from16(ATT_UUID_SERIAL_NUMBER, &u);
	put_le16(req + 1, find_char(&d, &u)->d.value_handle);
	len = xfer(f, req, 3, rsp);
	assert_int_equal(len, 1 + strlen("SIM-0001"));
	assert_memory_equal(rsp + 1, "SIM-0001", len - 1);
	fx_free(f);
}

static void test_handle_shift_moves_handles_not_uuids(void **state)
{
	static const unsigned shifts[] = { 1, 2, 3, 4, 7, 50 };
	struct fixture *base = fx_new(0);
	struct discovery d0, d;

	discover(base, &d0);
	for (size_t i = 0; i < sizeof(shifts) / sizeof(shifts[0]); i++) {
		struct fixture *f = fx_new(shifts[i]);

		discover(f, &d);
		/* One vendor filler service more, the same BFR characteristics. */
		assert_int_equal(d.n_svc, 6);
		assert_int_equal(d.svc[5].start, d0.svc[4].start + shifts[i]);
		for (enum bfr_uuid_id id = BFR_UUID_PRESSURE; id <= BFR_UUID_FEATURES; id++) {
			const struct characteristic *a = find_bfr(&d0, id), *b = find_bfr(&d, id);

			assert_non_null(b);
			assert_int_equal(b->d.value_handle, a->d.value_handle + shifts[i]);
			assert_int_equal(b->d.properties, a->d.properties);
		}
		assert_int_equal(cuff_gatt_value_handle(f->g, CUFF_CHAR_PRESSURE),
				 find_bfr(&d, BFR_UUID_PRESSURE)->d.value_handle);
		assert_int_equal(cccd_of(f, &d, find_bfr(&d, BFR_UUID_PRESSURE)),
				 find_bfr(&d, BFR_UUID_PRESSURE)->d.value_handle + 1);
		fx_free(f);
	}
	fx_free(base);
}

static void test_every_request_answered(void **state)
{
	struct fixture *f = fx_new(3);
	uint8_t pdu[8] = { 0, 0x01, 0x00, 0xFF, 0xFF, 0x00, 0x28, 0x00 };
	uint8_t rsp[ATT_MAX_MTU];

	for (int op = 0; op <= 0xFF; op++) {
		for (size_t len = 1; len <= sizeof(pdu); len++) {
			ssize_t n;

			pdu[0] = (uint8_t)op;
			assert_int_equal(send(f->client_fd, pdu, len, 0), (ssize_t)len);
			serve_one(f);
			n = take(f, rsp, sizeof(rsp));
			if ((op & 0x40) || op == ATT_OP_HANDLE_VALUE_CFM) {
				/* Commands and confirmations are never answered. */
				assert_int_equal(n, -1);
				continue;
			}
			assert_true(n > 0);
			if (rsp[0] == ATT_OP_ERROR_RSP)
				assert_int_equal(rsp[1], op);
			else
				assert_int_equal(rsp[0], att_response_for((uint8_t)op));
			assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
		}
	}
	fx_free(f);
}

static void test_malformed_pdus_get_invalid_pdu(void **state)
{
	static const struct {
		uint8_t pdu[24];
		size_t len;
		uint8_t err;
		uint16_t handle;
	} cases[] = {
		{ { ATT_OP_MTU_REQ }, 1, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_MTU_REQ, 1, 2, 3 }, 4, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_FIND_INFO_REQ, 1, 0, 2 }, 4, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_FIND_BY_TYPE_REQ, 1, 0, 0xFF }, 4, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_READ_BY_TYPE_REQ, 1, 0, 0xFF, 0xFF, 0x03 }, 6, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_READ_BY_TYPE_REQ, 1, 0, 0xFF, 0xFF, 0x03, 0x28, 0 }, 8,
		  ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_READ_BY_GROUP_TYPE_REQ, 1, 0, 0xFF, 0xFF, 0, 0x28, 0 }, 8,
		  ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_READ_REQ, 1 }, 2, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_READ_REQ, 1, 0, 0 }, 4, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_READ_BLOB_REQ, 1, 0, 0 }, 4, ATT_ERR_INVALID_PDU, 0 },
		{ { ATT_OP_WRITE_REQ, 1 }, 2, ATT_ERR_INVALID_PDU, 0 },
		/* A request longer than the MTU in force (23 before the exchange). */
		{ { ATT_OP_WRITE_REQ, 1, 0 }, 24, ATT_ERR_INVALID_PDU, 0 },
		/* Well-formed but impossible handles: Invalid Handle, per ATT. */
		{ { ATT_OP_READ_BY_TYPE_REQ, 0, 0, 0xFF, 0xFF, 0x03, 0x28 }, 7,
		  ATT_ERR_INVALID_HANDLE, 0 },
		{ { ATT_OP_FIND_INFO_REQ, 5, 0, 1, 0 }, 5, ATT_ERR_INVALID_HANDLE, 5 },
		{ { ATT_OP_READ_REQ, 0, 0 }, 3, ATT_ERR_INVALID_HANDLE, 0 },
		{ { ATT_OP_READ_REQ, 0xFF, 0x7F }, 3, ATT_ERR_INVALID_HANDLE, 0x7FFF },
		{ { ATT_OP_READ_BY_GROUP_TYPE_REQ, 1, 0, 0xFF, 0xFF, 0x03, 0x28 }, 7,
		  ATT_ERR_UNSUPPORTED_GROUP_TYPE, 1 },
	};
	struct fixture *f = fx_new(0);
	struct cuff_gatt_stats st, st2;
	uint64_t malformed = 0;
	uint8_t rsp[ATT_MAX_MTU], big[600];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = xfer(f, cases[i].pdu, cases[i].len, rsp);

		expect_error(rsp, len, cases[i].pdu[0], cases[i].handle, cases[i].err);
		if (cases[i].err == ATT_ERR_INVALID_PDU)
			malformed++;
		cuff_gatt_get_stats(f->g, &st);
		assert_int_equal(st.malformed_pdus, malformed);
	}
	/* Larger than any ATT PDU may be. */
	memset(big, 0, sizeof(big));
	big[0] = ATT_OP_WRITE_REQ;
	big[1] = 1;
	expect_error(rsp, xfer(f, big, sizeof(big), rsp), ATT_OP_WRITE_REQ, 0, ATT_ERR_INVALID_PDU);
	/* An empty packet has no opcode, so there is no request to answer (as in BlueZ). */
	cuff_gatt_get_stats(f->g, &st);
	assert_int_equal(cuff_gatt_receive(f->g, big, 0), 0);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
	cuff_gatt_get_stats(f->g, &st2);
	assert_int_equal(st2.malformed_pdus, st.malformed_pdus + 1);
	assert_int_equal(st2.att_requests, st.att_requests);
	assert_int_equal(st2.error_responses, st.error_responses);
	/* Nothing of it changed the connection. */
	assert_int_equal(cuff_gatt_mtu(f->g), ATT_DEFAULT_MTU);
	assert_int_equal(f->cp_writes, 0);
	fx_free(f);
}

static void test_reads_writes_and_permissions(void **state)
{
	struct fixture *f = fx_new(0);
	struct discovery d;
	uint8_t rsp[ATT_MAX_MTU], req[8], v[4];
	uint16_t pressure, sup, cccd, name;
	struct att_uuid u;
	size_t len;

	discover(f, &d);
	pressure = find_bfr(&d, BFR_UUID_PRESSURE)->d.value_handle;
	sup = find_bfr(&d, BFR_UUID_SUPERVISION)->d.value_handle;
	cccd = cccd_of(f, &d, find_bfr(&d, BFR_UUID_PRESSURE));
	att_uuid_from16(ATT_UUID_DEVICE_NAME, &u);
	name = find_char(&d, &u)->d.value_handle;

	req[0] = ATT_OP_READ_REQ;
	put_le16(req + 1, pressure);
	expect_error(rsp, xfer(f, req, 3, rsp), ATT_OP_READ_REQ, pressure,
		     ATT_ERR_READ_NOT_PERMITTED);
	put_le16(req + 1, 0x0F00);
	expect_error(rsp, xfer(f, req, 3, rsp), ATT_OP_READ_REQ, 0x0F00, ATT_ERR_INVALID_HANDLE);

	req[0] = ATT_OP_READ_BLOB_REQ;
	put_le16(req + 1, name);
	put_le16(req + 3, 4);
	len = xfer(f, req, 5, rsp);
	assert_int_equal(rsp[0], ATT_OP_READ_BLOB_RSP);
	assert_memory_equal(rsp + 1, "Cuff 01", len - 1);
	put_le16(req + 3, 40);
	expect_error(rsp, xfer(f, req, 5, rsp), ATT_OP_READ_BLOB_REQ, name,
		     ATT_ERR_INVALID_OFFSET);

	/* Supervision is write-without-response only. */
	put_le16(v, 7);
	write_req(f, sup, v, 2, rsp, &len);
	expect_error(rsp, len, ATT_OP_WRITE_REQ, sup, ATT_ERR_WRITE_NOT_PERMITTED);
	req[0] = ATT_OP_WRITE_CMD;
	put_le16(req + 1, sup);
	put_le16(req + 3, 7);
	assert_int_equal(send(f->client_fd, req, 5, 0), 5);
	serve_one(f);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
	assert_int_equal(f->supervision_writes, 1);
	/* A supervision command of the wrong size is dropped, counted, unanswered. */
	assert_int_equal(send(f->client_fd, req, 4, 0), 4);
	serve_one(f);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
	assert_int_equal(f->supervision_writes, 1);

	/* CCCD: two bytes, and only the modes the characteristic has. */
	write_req(f, cccd, v, 1, rsp, &len);
	expect_error(rsp, len, ATT_OP_WRITE_REQ, cccd, ATT_ERR_INVALID_ATTRIBUTE_VALUE_LENGTH);
	put_le16(v, ATT_CCCD_INDICATE);
	write_req(f, cccd, v, 2, rsp, &len);
	expect_error(rsp, len, ATT_OP_WRITE_REQ, cccd, CUFF_GATT_ERR_CCCD_IMPROPER);
	enable(f, cccd, ATT_CCCD_NOTIFY);
	req[0] = ATT_OP_READ_REQ;
	put_le16(req + 1, cccd);
	len = xfer(f, req, 3, rsp);
	assert_int_equal(len, 3);
	assert_int_equal(get_le16(rsp + 1), ATT_CCCD_NOTIFY);

	fx_free(f);
}

static void test_find_by_type_value(void **state)
{
	struct fixture *f = fx_new(0);
	uint8_t req[7 + 16] = { ATT_OP_FIND_BY_TYPE_REQ }, rsp[ATT_MAX_MTU];
	struct att_uuid u;
	size_t len;

	exchange_mtu(f, 100);
	bfr_uuid(BFR_UUID_SERVICE, &u);
	put_le16(req + 1, 1);
	put_le16(req + 3, 0xFFFF);
	put_le16(req + 5, ATT_UUID_PRIMARY_SERVICE);
	memcpy(req + 7, u.le, 16);
	len = xfer(f, req, sizeof(req), rsp);
	assert_int_equal(len, 5);
	assert_int_equal(rsp[0], ATT_OP_FIND_BY_TYPE_RSP);
	assert_int_equal(get_le16(rsp + 1), 21);
	assert_int_equal(get_le16(rsp + 3), 35);
	put_le16(req + 7, 0x1234);
	len = xfer(f, req, 9, rsp);
	expect_error(rsp, len, ATT_OP_FIND_BY_TYPE_REQ, 1, ATT_ERR_ATTRIBUTE_NOT_FOUND);
	fx_free(f);
}

static void test_notifications_need_cccd(void **state)
{
	struct fixture *f = fx_new(0);
	struct discovery d;
	struct bfr_sample s[40], out[40];
	uint8_t rsp[ATT_MAX_MTU];
	uint16_t pressure;
	size_t n;
	ssize_t len;

	memset(s, 0, sizeof(s));
	for (int i = 0; i < 40; i++) {
		s[i].seq = (uint16_t)i;
		s[i].t_ms = 20u * i;
		s[i].pressure_mmhg = 100 + i;
	}
	assert_int_equal(cuff_gatt_max_batch(f->g), 1);
	discover(f, &d);
	pressure = find_bfr(&d, BFR_UUID_PRESSURE)->d.value_handle;
	assert_int_equal(cuff_gatt_notify_pressure(f->g, s, 1), 0);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
	enable(f, cccd_of(f, &d, find_bfr(&d, BFR_UUID_PRESSURE)), ATT_CCCD_NOTIFY);
	assert_int_equal(cuff_gatt_max_batch(f->g), (517 - 3 - 1) / 14);
	assert_int_equal(cuff_gatt_notify_pressure(f->g, s, 36), 1);
	len = take(f, rsp, sizeof(rsp));
	assert_int_equal(len, 3 + 1 + 36 * 14);
	assert_int_equal(rsp[0], ATT_OP_HANDLE_VALUE_NTF);
	assert_int_equal(get_le16(rsp + 1), pressure);
	assert_int_equal(bfr_pressure_decode(rsp + 3, (size_t)len - 3, out, 40, &n), 0);
	assert_int_equal(n, 36);
	assert_int_equal(out[35].seq, 35);
	assert_true(out[35].pressure_mmhg == 135);
	assert_int_equal(cuff_gatt_notify_pressure(f->g, s, 37), -EMSGSIZE);
	/* Status: not enabled, nothing sent. */
	assert_int_equal(cuff_gatt_notify(f->g, CUFF_CHAR_STATUS), 0);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);

	/* A new connection starts from scratch. */
	cuff_gatt_reset(f->g);
	assert_int_equal(cuff_gatt_mtu(f->g), ATT_DEFAULT_MTU);
	assert_int_equal(cuff_gatt_notify_pressure(f->g, s, 1), 0);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
	fx_free(f);
}

static void test_control_point_indications(void **state)
{
	struct fixture *f = fx_new(0);
	struct discovery d;
	struct bfr_cp_response r = { .req_opcode = BFR_CP_IDENTIFY };
	struct bfr_cp_response dec;
	uint8_t rsp[ATT_MAX_MTU], cfm = ATT_OP_HANDLE_VALUE_CFM, v[1] = { BFR_CP_IDENTIFY };
	uint16_t cp;
	size_t len;
	ssize_t n;

	discover(f, &d);
	cp = find_bfr(&d, BFR_UUID_CONTROL_POINT)->d.value_handle;
	/* Without indications the result could never arrive: refused. */
	write_req(f, cp, v, 1, rsp, &len);
	expect_error(rsp, len, ATT_OP_WRITE_REQ, cp, CUFF_GATT_ERR_CCCD_IMPROPER);
	assert_int_equal(f->cp_writes, 0);
	assert_int_equal(cuff_gatt_indicate_cp(f->g, &r), 0);

	enable(f, cccd_of(f, &d, find_bfr(&d, BFR_UUID_CONTROL_POINT)), ATT_CCCD_INDICATE);
	write_req(f, cp, v, 0, rsp, &len);
	expect_error(rsp, len, ATT_OP_WRITE_REQ, cp, ATT_ERR_INVALID_ATTRIBUTE_VALUE_LENGTH);

	/* Write Response first, then the result indication. */
	f->indicate_on_write = true;
	assert_int_equal(send(f->client_fd, (uint8_t[]){ ATT_OP_WRITE_REQ, (uint8_t)cp,
							(uint8_t)(cp >> 8), BFR_CP_IDENTIFY },
			      4, 0),
			 4);
	serve_one(f);
	assert_int_equal(take(f, rsp, sizeof(rsp)), 1);
	assert_int_equal(rsp[0], ATT_OP_WRITE_RSP);
	n = take(f, rsp, sizeof(rsp));
	assert_true(n > 3);
	assert_int_equal(rsp[0], ATT_OP_HANDLE_VALUE_IND);
	assert_int_equal(get_le16(rsp + 1), cp);
	assert_int_equal(bfr_cp_response_decode(rsp + 3, (size_t)n - 3, &dec), 0);
	assert_int_equal(dec.req_opcode, BFR_CP_IDENTIFY);
	assert_int_equal(f->cp_writes, 1);
	f->indicate_on_write = false;

	/* One outstanding: the next two wait for the confirmation. */
	r.req_opcode = BFR_CP_CUE;
	assert_int_equal(cuff_gatt_indicate_cp(f->g, &r), 1);
	r.req_opcode = BFR_CP_DEFLATE;
	assert_int_equal(cuff_gatt_indicate_cp(f->g, &r), 1);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
	assert_int_equal(send(f->client_fd, &cfm, 1, 0), 1);
	serve_one(f);
	n = take(f, rsp, sizeof(rsp));
	assert_true(n > 3);
	assert_int_equal(bfr_cp_response_decode(rsp + 3, (size_t)n - 3, &dec), 0);
	assert_int_equal(dec.req_opcode, BFR_CP_CUE);
	assert_int_equal(take(f, rsp, sizeof(rsp)), -1);
	assert_int_equal(send(f->client_fd, &cfm, 1, 0), 1);
	serve_one(f);
	n = take(f, rsp, sizeof(rsp));
	assert_int_equal(bfr_cp_response_decode(rsp + 3, (size_t)n - 3, &dec), 0);
	assert_int_equal(dec.req_opcode, BFR_CP_DEFLATE);

	/* The queue is bounded; overflow is refused and counted. */
	for (int i = 0; i < 16; i++)
		assert_int_equal(cuff_gatt_indicate_cp(f->g, &r), 1);
	assert_int_equal(cuff_gatt_indicate_cp(f->g, &r), -ENOBUFS);
	{
		struct cuff_gatt_stats st;

		cuff_gatt_get_stats(f->g, &st);
		assert_int_equal(st.indications_dropped, 1);
		assert_int_equal(st.indications, 3);
	}
	fx_free(f);
}

/*
 * Issue 9 item 9: the manufacturer string is longer than one Read Response
 * at MTU 23, so a client must go on with Read Blob; a server configured
 * with MTU 23 (cuffsim --mtu 23) keeps every client there.
 */
static void test_long_string_read_blob_at_mtu_23(void **state)
{
	struct fixture *f = fx_new(0);
	struct cuff_gatt *g23;
	struct cuff_gatt_config cfg = { .device_name = "BFR Cuff 01", .serial = "SIM-0001",
					.server_mtu = ATT_DEFAULT_MTU };
	uint8_t rsp[ATT_MAX_MTU], req[8], got[64];
	const size_t want = strlen(CUFF_GATT_MANUFACTURER);
	uint16_t h;
	size_t len, have = 0;

	assert_true(want > 2 * (ATT_DEFAULT_MTU - 1) - 1);
	/* Find 0x2A29 by type: the value in that response is cut at MTU - 4. */
	len = read_by_type(f, 1, 0xFFFF, ATT_UUID_MANUFACTURER_NAME, rsp);
	assert_int_equal(rsp[0], ATT_OP_READ_BY_TYPE_RSP);
	assert_int_equal(rsp[1], 2 + ATT_DEFAULT_MTU - 4);
	assert_int_equal(len, 2 + 2 + ATT_DEFAULT_MTU - 4);
	h = get_le16(rsp + 2);
	req[0] = ATT_OP_READ_REQ;
	put_le16(req + 1, h);
	len = xfer(f, req, 3, rsp);
	assert_int_equal(rsp[0], ATT_OP_READ_RSP);
	assert_int_equal(len - 1, ATT_DEFAULT_MTU - 1);
	memcpy(got, rsp + 1, len - 1);
	have = len - 1;
	while (len - 1 == ATT_DEFAULT_MTU - 1) {
		req[0] = ATT_OP_READ_BLOB_REQ;
		put_le16(req + 1, h);
		put_le16(req + 3, (uint16_t)have);
		len = xfer(f, req, 5, rsp);
		assert_int_equal(rsp[0], ATT_OP_READ_BLOB_RSP);
		assert_true(have + len - 1 <= sizeof(got));
		memcpy(got + have, rsp + 1, len - 1);
		have += len - 1;
	}
	/* 44 bytes: 22 + 22, then an empty Read Blob Response at offset 44. */
	assert_int_equal(have, want);
	assert_int_equal(len, 1);
	assert_memory_equal(got, CUFF_GATT_MANUFACTURER, want);
	put_le16(req + 3, (uint16_t)(want + 1));
	expect_error(rsp, xfer(f, req, 5, rsp), ATT_OP_READ_BLOB_REQ, h, ATT_ERR_INVALID_OFFSET);
	fx_free(f);

	/* A server MTU of 23 answers 23 and keeps 23 whatever the client asks. */
	f = fx_new(0);
	assert_int_equal(cuff_gatt_new(&cfg, &OPS, f, &g23), 0);
	cuff_gatt_free(f->g);
	f->g = g23;
	req[0] = ATT_OP_MTU_REQ;
	put_le16(req + 1, ATT_MAX_MTU);
	len = xfer(f, req, 3, rsp);
	assert_int_equal(len, 3);
	assert_int_equal(rsp[0], ATT_OP_MTU_RSP);
	assert_int_equal(get_le16(rsp + 1), ATT_DEFAULT_MTU);
	assert_int_equal(cuff_gatt_mtu(f->g), ATT_DEFAULT_MTU);
	fx_free(f);
}

/* The next PDU the cuff sent, which must be an indication on handle; returns its value. */
static size_t take_indication(struct fixture *f, uint16_t handle, uint8_t *value)
{
	uint8_t pdu[ATT_MAX_MTU];
	ssize_t n = take(f, pdu, sizeof(pdu));

	assert_true(n >= 3);
	assert_int_equal(pdu[0], ATT_OP_HANDLE_VALUE_IND);
	assert_int_equal(get_le16(pdu + 1), handle);
	memcpy(value, pdu + 3, (size_t)n - 3);
	return (size_t)n - 3;
}

/*
 * Issue 9 item 8, the server side: `service-changed` rebuilds the database
 * with another shift, so the BFR handles move, and indicates Service
 * Changed (first moved handle .. 0xFFFF) to a client that enabled it.
 */
static void test_database_change_indicates_service_changed(void **state)
{
	struct fixture *f = fx_new(0);
	struct discovery d, d2;
	const struct characteristic *pc;
	uint16_t sc, sc_cccd, pressure, cp, cfm_h;
	uint8_t v[64], cfm = ATT_OP_HANDLE_VALUE_CFM;
	struct bfr_sample smp = { .seq = 1, .pressure_mmhg = 50, .target_mmhg = 0 };
	struct bfr_cp_response r = { .req_opcode = BFR_CP_IDENTIFY };
	struct cuff_gatt_stats st;
	size_t len;

	discover(f, &d);
	sc = cuff_gatt_value_handle(f->g, CUFF_CHAR_SERVICE_CHANGED);
	sc_cccd = (uint16_t)(sc + 1);
	pc = find_bfr(&d, BFR_UUID_PRESSURE);
	pressure = pc->d.value_handle;
	cp = find_bfr(&d, BFR_UUID_CONTROL_POINT)->d.value_handle;
	enable(f, cccd_of(f, &d, pc), ATT_CCCD_NOTIFY);

	/* Not enabled: the database changes, nothing is indicated. */
	assert_int_equal(cuff_gatt_change_database(f->g, 3), 0);
	assert_int_equal(take(f, v, sizeof(v)), -1);
	assert_int_equal(cuff_gatt_handle_shift(f->g), 3);
	assert_int_equal(cuff_gatt_value_handle(f->g, CUFF_CHAR_PRESSURE), pressure + 3);
	/* Handles before the shift stay: GAP, GATT, DIS, Battery. */
	assert_int_equal(cuff_gatt_value_handle(f->g, CUFF_CHAR_SERVICE_CHANGED), sc);

	enable(f, sc_cccd, ATT_CCCD_INDICATE);
	assert_int_equal(cuff_gatt_change_database(f->g, 40), 1);
	len = take_indication(f, sc, v);
	assert_int_equal(len, 4);
	assert_int_equal(get_le16(v), 21); /* where the filler / BFR service begins */
	assert_int_equal(get_le16(v + 2), 0xFFFF);
	assert_int_equal(send(f->client_fd, &cfm, 1, 0), 1);
	serve_one(f);

	/* The connection's CCCDs stayed with their characteristics. */
	assert_int_equal(cuff_gatt_notify_pressure(f->g, &smp, 1), 1);
	assert_int_equal(take(f, v, sizeof(v)), 3 + 1 + BFR_SAMPLE_WIRE_SIZE);
	assert_int_equal(get_le16(v + 1), pressure + 40);
	/* A client that discovers again finds everything 40 handles on. */
	discover(f, &d2);
	assert_int_equal(find_bfr(&d2, BFR_UUID_PRESSURE)->d.value_handle, pressure + 40);
	assert_int_equal(find_bfr(&d2, BFR_UUID_CONTROL_POINT)->d.value_handle, cp + 40);

	/* Behind an unconfirmed indication, Service Changed waits its turn. */
	enable(f, cccd_of(f, &d2, find_bfr(&d2, BFR_UUID_CONTROL_POINT)), ATT_CCCD_INDICATE);
	assert_int_equal(cuff_gatt_indicate_cp(f->g, &r), 1);
	assert_int_equal(cuff_gatt_change_database(f->g, 0), 1);
	cfm_h = (uint16_t)(cp + 40);
	/* The queued CP result goes out on the Control Point's handle of the new database. */
	take_indication(f, cfm_h, v);
	assert_int_equal(take(f, v, sizeof(v)), -1);
	assert_int_equal(send(f->client_fd, &cfm, 1, 0), 1);
	serve_one(f);
	len = take_indication(f, sc, v);
	assert_int_equal(get_le16(v), 21);

	/* Out of memory or a bad shift: nothing changes. */
	test_alloc_fail_after(0);
	assert_int_equal(cuff_gatt_change_database(f->g, 7), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(cuff_gatt_change_database(f->g, CUFF_GATT_MAX_SHIFT + 1), -EINVAL);
	assert_int_equal(cuff_gatt_handle_shift(f->g), 0);
	assert_int_equal(cuff_gatt_value_handle(f->g, CUFF_CHAR_PRESSURE), pressure);
	cuff_gatt_get_stats(f->g, &st);
	assert_int_equal(st.database_changes, 3);
	fx_free(f);
}

static void test_new_rejects_bad_config_and_alloc_failure(void **state)
{
	struct cuff_gatt_config cfg = { .handle_shift = 0, .device_name = "x", .serial = "y",
					.server_mtu = 517 };
	struct cuff_gatt *g = (struct cuff_gatt *)0x1;
	int err = -ENOMEM;

	cfg.handle_shift = CUFF_GATT_MAX_SHIFT + 1;
	assert_int_equal(cuff_gatt_new(&cfg, &OPS, NULL, &g), -EINVAL);
	cfg.handle_shift = 0;
	cfg.server_mtu = 22;
	assert_int_equal(cuff_gatt_new(&cfg, &OPS, NULL, &g), -EINVAL);
	cfg.server_mtu = 517;
	cfg.serial = "a serial number that is far too long for any cuff (49)";
	assert_int_equal(cuff_gatt_new(&cfg, &OPS, NULL, &g), -EINVAL);
	cfg.serial = "y";
	assert_ptr_equal(g, (struct cuff_gatt *)0x1);
	for (long n = 0; err == -ENOMEM; n++) {
		test_alloc_fail_after(n);
		err = cuff_gatt_new(&cfg, &OPS, NULL, &g);
		test_alloc_reset();
		if (err == -ENOMEM)
			assert_ptr_equal(g, (struct cuff_gatt *)0x1);
	}
	assert_int_equal(err, 0);
	cuff_gatt_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bluez_discovery_sequence),
		cmocka_unit_test(test_handle_shift_moves_handles_not_uuids),
		cmocka_unit_test(test_every_request_answered),
		cmocka_unit_test(test_malformed_pdus_get_invalid_pdu),
		cmocka_unit_test(test_reads_writes_and_permissions),
		cmocka_unit_test(test_find_by_type_value),
		cmocka_unit_test(test_notifications_need_cccd),
		cmocka_unit_test(test_control_point_indications),
		cmocka_unit_test(test_long_string_read_blob_at_mtu_23),
		cmocka_unit_test(test_database_change_indicates_service_changed),
		cmocka_unit_test(test_new_rejects_bad_config_and_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
