/*
 * test_att.c - ATT PDU codec, iterators, list builder and UUID helpers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "att.h"

#define PDU(...) { .bytes = { __VA_ARGS__ }, .len = sizeof((uint8_t[]){ __VA_ARGS__ }) }

struct pdu_case {
	uint8_t bytes[32];
	size_t len;
};

/* Well-formed PDUs, one or more per opcode; each must decode and re-encode to itself. */
static const struct pdu_case valid[] = {
	PDU(0x01, 0x0A, 0x01, 0x00, 0x0A),       /* Error Rsp: Read Req on 1, Attr Not Found */
	PDU(0x01, 0x02, 0x00, 0x00, 0x06),       /* Error Rsp for MTU Req: handle 0 is fine */
	PDU(0x02, 0x05, 0x02),                   /* MTU Req 517 */
	PDU(0x03, 0x17, 0x00),                   /* MTU Rsp 23 */
	PDU(0x04, 0x01, 0x00, 0xFF, 0xFF),       /* Find Info Req 1..FFFF */
	PDU(0x04, 0x05, 0x00, 0x05, 0x00),       /* start == end */
	PDU(0x05, 0x01, 0x05, 0x00, 0x02, 0x29, 0x06, 0x00, 0x01, 0x29),
	PDU(0x05, 0x02, 0x05, 0x00, 0x5f, 0x4e, 0x3d, 0x2c, 0x1b, 0x0a, 0x8e, 0x9f, 0x3b, 0x4d,
	    0x2a, 0x5c, 0x02, 0x00, 0x1e, 0x7b),
	PDU(0x06, 0x01, 0x00, 0xFF, 0xFF, 0x00, 0x28, 0x0F, 0x18), /* Find By Type Value Req */
	PDU(0x06, 0x01, 0x00, 0xFF, 0xFF, 0x00, 0x28),             /* empty value */
	PDU(0x07, 0x01, 0x00, 0x05, 0x00, 0x10, 0x00, 0x12, 0x00),
	PDU(0x08, 0x01, 0x00, 0xFF, 0xFF, 0x3A, 0x2B),             /* Read By Type Req 0x2B3A */
	PDU(0x08, 0x01, 0x00, 0xFF, 0xFF, 0x5f, 0x4e, 0x3d, 0x2c, 0x1b, 0x0a, 0x8e, 0x9f, 0x3b,
	    0x4d, 0x2a, 0x5c, 0x04, 0x00, 0x1e, 0x7b),
	/* Read By Type Rsp: two characteristic declarations, 7 bytes each */
	PDU(0x09, 0x07, 0x02, 0x00, 0x10, 0x03, 0x00, 0x19, 0x2A, 0x05, 0x00, 0x02, 0x06, 0x00,
	    0x29, 0x2A),
	PDU(0x09, 0x02, 0x07, 0x00),              /* entry with an empty value */
	PDU(0x0A, 0x03, 0x00),                    /* Read Req */
	PDU(0x0B),                                /* Read Rsp, empty */
	PDU(0x0B, 0x01, 0x02, 0x03),
	PDU(0x0C, 0x03, 0x00, 0x16, 0x00),        /* Read Blob Req offset 22 */
	PDU(0x0D, 0xAA),
	PDU(0x10, 0x01, 0x00, 0xFF, 0xFF, 0x00, 0x28), /* Read By Group Type Req, primary */
	/* Read By Group Type Rsp: two 16-bit services (entry 6) */
	PDU(0x11, 0x06, 0x01, 0x00, 0x07, 0x00, 0x00, 0x18, 0x08, 0x00, 0x0B, 0x00, 0x01, 0x18),
	/* one 128-bit service (entry 20) */
	PDU(0x11, 0x14, 0x10, 0x00, 0x20, 0x00, 0x5f, 0x4e, 0x3d, 0x2c, 0x1b, 0x0a, 0x8e, 0x9f,
	    0x3b, 0x4d, 0x2a, 0x5c, 0x01, 0x00, 0x1e, 0x7b),
	PDU(0x12, 0x04, 0x00, 0x01, 0x00),        /* Write Req CCCD notify */
	PDU(0x12, 0x04, 0x00),                    /* empty value */
	PDU(0x13),                                /* Write Rsp */
	PDU(0x1B, 0x03, 0x00, 0x01, 0x02),        /* Notification */
	PDU(0x1B, 0x03, 0x00),
	PDU(0x1D, 0x07, 0x00, 0x80, 0x01, 0x00),  /* Indication */
	PDU(0x1E),                                /* Confirmation */
	PDU(0x52, 0x0A, 0x00, 0x34, 0x12),        /* Write Cmd */
	PDU(0x0D),                                /* Read Blob Rsp, empty: offset == length */
};

struct bad_case {
	struct pdu_case pdu;
	int err;
	const char *why;
};

#define BAD(err, why, ...) { PDU(__VA_ARGS__), err, why }

static const struct bad_case invalid[] = {
	BAD(-EBADMSG, "error rsp short", 0x01, 0x0A, 0x01, 0x00),
	BAD(-EBADMSG, "error rsp long", 0x01, 0x0A, 0x01, 0x00, 0x0A, 0x00),
	BAD(-EBADMSG, "error code 0", 0x01, 0x0A, 0x01, 0x00, 0x00),
	BAD(-EBADMSG, "mtu req short", 0x02, 0x17),
	BAD(-EBADMSG, "mtu req long", 0x02, 0x17, 0x00, 0x00),
	BAD(-EBADMSG, "mtu rsp empty", 0x03),
	BAD(-EBADMSG, "find info req short", 0x04, 0x01, 0x00, 0xFF),
	BAD(-EBADMSG, "find info req long", 0x04, 0x01, 0x00, 0xFF, 0xFF, 0x00),
	BAD(-EBADMSG, "find info req start 0", 0x04, 0x00, 0x00, 0xFF, 0xFF),
	BAD(-EBADMSG, "find info req start > end", 0x04, 0x06, 0x00, 0x05, 0x00),
	BAD(-EBADMSG, "find info rsp no list", 0x05, 0x01),
	BAD(-EBADMSG, "find info rsp empty", 0x05),
	BAD(-EBADMSG, "find info rsp format 3", 0x05, 0x03, 0x05, 0x00, 0x02, 0x29),
	BAD(-EBADMSG, "find info rsp format 0", 0x05, 0x00, 0x05, 0x00, 0x02, 0x29),
	BAD(-EBADMSG, "find info rsp partial entry", 0x05, 0x01, 0x05, 0x00, 0x02),
	BAD(-EBADMSG, "find info rsp format 2 with 16-bit entry", 0x05, 0x02, 0x05, 0x00, 0x02,
	    0x29),
	BAD(-EBADMSG, "find info rsp handle 0", 0x05, 0x01, 0x00, 0x00, 0x02, 0x29),
	BAD(-EBADMSG, "find info rsp descending", 0x05, 0x01, 0x06, 0x00, 0x02, 0x29, 0x05, 0x00,
	    0x01, 0x29),
	BAD(-EBADMSG, "find info rsp repeated", 0x05, 0x01, 0x06, 0x00, 0x02, 0x29, 0x06, 0x00,
	    0x01, 0x29),
	BAD(-EBADMSG, "find by type req short", 0x06, 0x01, 0x00, 0xFF, 0xFF, 0x00),
	BAD(-EBADMSG, "find by type req start 0", 0x06, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x28),
	BAD(-EBADMSG, "find by type req start > end", 0x06, 0x03, 0x00, 0x02, 0x00, 0x00, 0x28),
	BAD(-EBADMSG, "find by type rsp empty", 0x07),
	BAD(-EBADMSG, "find by type rsp partial", 0x07, 0x01, 0x00, 0x05),
	BAD(-EBADMSG, "find by type rsp handle 0", 0x07, 0x00, 0x00, 0x05, 0x00),
	BAD(-EBADMSG, "find by type rsp found > end", 0x07, 0x06, 0x00, 0x05, 0x00),
	BAD(-EBADMSG, "find by type rsp overlap", 0x07, 0x01, 0x00, 0x05, 0x00, 0x05, 0x00, 0x06,
	    0x00),
	BAD(-EBADMSG, "read by type req 6 bytes", 0x08, 0x01, 0x00, 0xFF, 0xFF, 0x03),
	BAD(-EBADMSG, "read by type req 4-byte uuid", 0x08, 0x01, 0x00, 0xFF, 0xFF, 0x03, 0x28,
	    0x00, 0x00),
	BAD(-EBADMSG, "read by type req start 0", 0x08, 0x00, 0x00, 0xFF, 0xFF, 0x03, 0x28),
	BAD(-EBADMSG, "read by type req start > end", 0x08, 0x10, 0x00, 0x0F, 0x00, 0x03, 0x28),
	BAD(-EBADMSG, "read by type rsp empty", 0x09),
	BAD(-EBADMSG, "read by type rsp no entries", 0x09, 0x07),
	BAD(-EBADMSG, "read by type rsp entry len 0", 0x09, 0x00, 0x01, 0x00),
	BAD(-EBADMSG, "read by type rsp entry len 1", 0x09, 0x01, 0x01),
	BAD(-EBADMSG, "read by type rsp list not multiple", 0x09, 0x03, 0x01, 0x00, 0xAA, 0x02,
	    0x00),
	BAD(-EBADMSG, "read by type rsp handle 0", 0x09, 0x03, 0x00, 0x00, 0xAA),
	BAD(-EBADMSG, "read by type rsp descending", 0x09, 0x03, 0x05, 0x00, 0xAA, 0x04, 0x00,
	    0xBB),
	BAD(-EBADMSG, "read req short", 0x0A, 0x03),
	BAD(-EBADMSG, "read req long", 0x0A, 0x03, 0x00, 0x00),
	BAD(-EBADMSG, "read req handle 0", 0x0A, 0x00, 0x00),
	BAD(-EBADMSG, "read blob req short", 0x0C, 0x03, 0x00, 0x00),
	BAD(-EBADMSG, "read blob req handle 0", 0x0C, 0x00, 0x00, 0x01, 0x00),
	BAD(-EBADMSG, "read by group req 8 bytes", 0x10, 0x01, 0x00, 0xFF, 0xFF, 0x00, 0x28,
	    0x00),
	BAD(-EBADMSG, "read by group req start 0", 0x10, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x28),
	BAD(-EBADMSG, "read by group rsp entry 5", 0x11, 0x05, 0x01, 0x00, 0x07, 0x00, 0x00),
	BAD(-EBADMSG, "read by group rsp entry 7", 0x11, 0x07, 0x01, 0x00, 0x07, 0x00, 0x00,
	    0x18, 0x00),
	BAD(-EBADMSG, "read by group rsp no entries", 0x11, 0x06),
	BAD(-EBADMSG, "read by group rsp partial", 0x11, 0x06, 0x01, 0x00, 0x07, 0x00, 0x00),
	BAD(-EBADMSG, "read by group rsp start 0", 0x11, 0x06, 0x00, 0x00, 0x07, 0x00, 0x00,
	    0x18),
	BAD(-EBADMSG, "read by group rsp start > end", 0x11, 0x06, 0x08, 0x00, 0x07, 0x00, 0x00,
	    0x18),
	BAD(-EBADMSG, "read by group rsp overlapping groups", 0x11, 0x06, 0x01, 0x00, 0x07, 0x00,
	    0x00, 0x18, 0x07, 0x00, 0x09, 0x00, 0x01, 0x18),
	BAD(-EBADMSG, "write req no handle", 0x12, 0x04),
	BAD(-EBADMSG, "write req handle 0", 0x12, 0x00, 0x00, 0x01, 0x00),
	BAD(-EBADMSG, "write rsp with payload", 0x13, 0x00),
	BAD(-EBADMSG, "notification no handle", 0x1B),
	BAD(-EBADMSG, "notification handle 0", 0x1B, 0x00, 0x00, 0x01),
	BAD(-EBADMSG, "indication short", 0x1D, 0x07),
	BAD(-EBADMSG, "indication handle 0", 0x1D, 0x00, 0x00),
	BAD(-EBADMSG, "confirmation with payload", 0x1E, 0x01),
	BAD(-EBADMSG, "write cmd short", 0x52, 0x0A),
	BAD(-EBADMSG, "write cmd handle 0", 0x52, 0x00, 0x00, 0x01),
	BAD(-ENOTSUP, "opcode 0", 0x00),
	BAD(-ENOTSUP, "prepare write req", 0x16, 0x03, 0x00, 0x00, 0x00, 0xAA),
	BAD(-ENOTSUP, "execute write req", 0x18, 0x01),
	BAD(-ENOTSUP, "read multiple req", 0x0E, 0x03, 0x00, 0x05, 0x00),
	BAD(-ENOTSUP, "signed write cmd", 0xD2, 0x03, 0x00),
	BAD(-ENOTSUP, "opcode 0xFF", 0xFF),
};

static void fill_sentinel(struct att_pdu *p)
{
	memset(p, 0xA5, sizeof(*p));
}

static void assert_untouched(const struct att_pdu *p)
{
	struct att_pdu s;

	fill_sentinel(&s);
	assert_memory_equal(p, &s, sizeof(s));
}

static void test_decode_valid_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		struct att_pdu p;
		uint8_t out[ATT_MAX_MTU];
		size_t len = 0;

		fill_sentinel(&p);
		if (att_pdu_decode(valid[i].bytes, valid[i].len, &p) != 0) {
			print_error("valid case %zu (opcode 0x%02x) rejected\n", i, valid[i].bytes[0]);
			fail();
		}
		assert_int_equal(p.opcode, valid[i].bytes[0]);
		assert_int_equal(att_pdu_encode(&p, out, sizeof(out), &len), 0);
		assert_int_equal(len, valid[i].len);
		assert_memory_equal(out, valid[i].bytes, len);
		/* One byte short of the encoded length does not fit. */
		len = 1234;
		assert_int_equal(att_pdu_encode(&p, out, valid[i].len - 1, &len), -ENOSPC);
		assert_int_equal(len, 1234);
	}
}

static void test_decode_invalid(void **state)
{
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		struct att_pdu p;
		int rc;

		fill_sentinel(&p);
		rc = att_pdu_decode(invalid[i].pdu.bytes, invalid[i].pdu.len, &p);
		if (rc != invalid[i].err) {
			print_error("case \"%s\": got %d, want %d\n", invalid[i].why, rc,
				    invalid[i].err);
			fail();
		}
		assert_untouched(&p);
	}
}

/* Every strict prefix of every valid fixed-layout PDU is rejected, never read past. */
static void test_decode_truncated(void **state)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		uint8_t op = valid[i].bytes[0];

		for (size_t n = 0; n < valid[i].len; n++) {
			struct att_pdu p;
			uint8_t *copy = test_malloc(n ? n : 1);
			int rc;

			/* An exact-size heap copy lets ASan catch any overread. */
			memcpy(copy, valid[i].bytes, n);
			fill_sentinel(&p);
			rc = att_pdu_decode(copy, n, &p);
			test_free(copy);
			if (rc == 0) {
				/* Shorter is legitimate only where the tail is a variable value. */
				bool variable = op == ATT_OP_READ_RSP || op == ATT_OP_READ_BLOB_RSP ||
						(n >= 3 && (op == ATT_OP_WRITE_REQ ||
							    op == ATT_OP_WRITE_CMD ||
							    op == ATT_OP_HANDLE_VALUE_NTF ||
							    op == ATT_OP_HANDLE_VALUE_IND)) ||
						(n >= 7 && op == ATT_OP_FIND_BY_TYPE_REQ) ||
						/* 21-byte request cut to 7: a 16-bit UUID one */
						(n == 7 && (op == ATT_OP_READ_BY_TYPE_REQ ||
							    op == ATT_OP_READ_BY_GROUP_TYPE_REQ)) ||
						op == ATT_OP_FIND_INFO_RSP ||
						op == ATT_OP_FIND_BY_TYPE_RSP ||
						op == ATT_OP_READ_BY_TYPE_RSP ||
						op == ATT_OP_READ_BY_GROUP_TYPE_RSP;
				if (!variable) {
					print_error("case %zu: prefix %zu accepted\n", i, n);
					fail();
				}
				continue;
			}
			assert_int_equal(rc, -EBADMSG);
			assert_untouched(&p);
		}
	}
}

static void test_decode_sizes(void **state)
{
	static uint8_t big[ATT_MAX_MTU + 1];
	struct att_pdu p;

	/* Largest legal notification: 517 bytes, 514 of value. */
	big[0] = ATT_OP_HANDLE_VALUE_NTF;
	big[1] = 0x03;
	assert_int_equal(att_pdu_decode(big, ATT_MAX_MTU, &p), 0);
	assert_int_equal(p.handle_value.value_len, ATT_MAX_MTU - 3);

	fill_sentinel(&p);
	assert_int_equal(att_pdu_decode(big, ATT_MAX_MTU + 1, &p), -EMSGSIZE);
	assert_untouched(&p);
	assert_int_equal(att_pdu_decode(big, 0, &p), -EBADMSG);
	assert_int_equal(att_pdu_decode(NULL, 3, &p), -EBADMSG);
	assert_untouched(&p);

	/* Per-bearer MTU. */
	assert_int_equal(att_pdu_decode_mtu(big, 23, 23, &p), 0);
	fill_sentinel(&p);
	assert_int_equal(att_pdu_decode_mtu(big, 24, 23, &p), -EMSGSIZE);
	assert_untouched(&p);
}

static void test_decode_fields(void **state)
{
	struct att_pdu p;
	struct att_uuid u;
	uint16_t u16;

	assert_int_equal(att_pdu_decode(valid[0].bytes, valid[0].len, &p), 0);
	assert_int_equal(p.error_rsp.req_opcode, ATT_OP_READ_REQ);
	assert_int_equal(p.error_rsp.handle, 1);
	assert_int_equal(p.error_rsp.error, ATT_ERR_ATTRIBUTE_NOT_FOUND);

	assert_int_equal(att_pdu_decode(valid[2].bytes, valid[2].len, &p), 0);
	assert_int_equal(p.mtu.mtu, 517);

	assert_int_equal(att_pdu_decode(valid[8].bytes, valid[8].len, &p), 0);
	assert_int_equal(p.find_by_type_req.start, 1);
	assert_int_equal(p.find_by_type_req.end, 0xFFFF);
	assert_int_equal(p.find_by_type_req.type, ATT_UUID_PRIMARY_SERVICE);
	assert_int_equal(p.find_by_type_req.value_len, 2);
	assert_int_equal(p.find_by_type_req.value[0], 0x0F);

	assert_int_equal(att_pdu_decode(valid[11].bytes, valid[11].len, &p), 0);
	assert_int_equal(p.read_by_type_req.start, 1);
	assert_int_equal(p.read_by_type_req.end, 0xFFFF);
	assert_true(att_uuid_is16(&p.read_by_type_req.type, &u16));
	assert_int_equal(u16, ATT_UUID_SERVER_SUPPORTED_FEATURES);

	assert_int_equal(att_pdu_decode(valid[12].bytes, valid[12].len, &p), 0);
	assert_int_equal(att_uuid_parse("7b1e0004-5c2a-4d3b-9f8e-0a1b2c3d4e5f", &u), 0);
	assert_true(att_uuid_equal(&p.read_by_type_req.type, &u));

	assert_int_equal(att_pdu_decode(valid[18].bytes, valid[18].len, &p), 0);
	assert_int_equal(p.read_blob_req.handle, 3);
	assert_int_equal(p.read_blob_req.offset, 22);

	assert_int_equal(att_pdu_decode(valid[28].bytes, valid[28].len, &p), 0);
	assert_int_equal(p.opcode, ATT_OP_HANDLE_VALUE_IND);
	assert_int_equal(p.handle_value.handle, 7);
	assert_int_equal(p.handle_value.value_len, 3);
	assert_int_equal(p.handle_value.value[0], 0x80);
	assert_ptr_equal(p.handle_value.value, valid[28].bytes + 3); /* zero-copy */
}

static void test_encode_invalid(void **state)
{
	uint8_t buf[ATT_MAX_MTU];
	uint8_t list[8] = { 0x01, 0x00, 0x00, 0x28, 0x02, 0x00, 0x00, 0x28 };
	size_t len = 99;
	struct att_pdu p;

	memset(buf, 0x5A, sizeof(buf));
	memset(&p, 0, sizeof(p));

	p.opcode = ATT_OP_READ_REQ; /* handle 0 */
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	p.opcode = ATT_OP_HANDLE_VALUE_NTF;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	p.opcode = ATT_OP_FIND_INFO_REQ;
	p.find_info_req.start = 5;
	p.find_info_req.end = 4;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	p.opcode = ATT_OP_READ_BY_TYPE_REQ;
	p.read_by_type_req.start = 0;
	p.read_by_type_req.end = 4;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	p.opcode = ATT_OP_ERROR_RSP;
	p.error_rsp.error = 0;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	p.opcode = 0x16; /* Prepare Write: not in this codec */
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);

	/* List whose length is not a multiple of the entry length. */
	memset(&p, 0, sizeof(p));
	p.opcode = ATT_OP_READ_BY_TYPE_RSP;
	p.read_by_type_rsp.entry_len = 3;
	p.read_by_type_rsp.list = list;
	p.read_by_type_rsp.list_len = 8;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	/* Group entries must be 6 or 20. */
	p.opcode = ATT_OP_READ_BY_GROUP_TYPE_RSP;
	p.read_by_type_rsp.entry_len = 4;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	p.opcode = ATT_OP_FIND_INFO_RSP;
	p.find_info_rsp.format = 3;
	p.find_info_rsp.list = list;
	p.find_info_rsp.list_len = 8;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);
	p.find_info_rsp.format = 1;
	p.find_info_rsp.list_len = 0;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -EINVAL);

	/* A value too long for the MTU. */
	static uint8_t big[ATT_MAX_MTU];
	memset(&p, 0, sizeof(p));
	p.opcode = ATT_OP_HANDLE_VALUE_NTF;
	p.handle_value.handle = 3;
	p.handle_value.value = big;
	p.handle_value.value_len = ATT_DEFAULT_MTU - 2;
	assert_int_equal(att_pdu_encode(&p, buf, ATT_DEFAULT_MTU, &len), -ENOSPC);
	/* Even with a huge buffer, no PDU longer than 517. */
	p.handle_value.value_len = ATT_MAX_MTU - 2;
	assert_int_equal(att_pdu_encode(&p, buf, sizeof(buf), &len), -ENOSPC);

	assert_int_equal(len, 99);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x5A);

	/* Exactly MTU-3 fits. */
	p.handle_value.value_len = ATT_DEFAULT_MTU - 3;
	assert_int_equal(att_pdu_encode(&p, buf, ATT_DEFAULT_MTU, &len), 0);
	assert_int_equal(len, ATT_DEFAULT_MTU);
}

static void test_opcode_facts(void **state)
{
	static const uint8_t pairs[][2] = {
		{ ATT_OP_MTU_REQ, ATT_OP_MTU_RSP },
		{ ATT_OP_FIND_INFO_REQ, ATT_OP_FIND_INFO_RSP },
		{ ATT_OP_FIND_BY_TYPE_REQ, ATT_OP_FIND_BY_TYPE_RSP },
		{ ATT_OP_READ_BY_TYPE_REQ, ATT_OP_READ_BY_TYPE_RSP },
		{ ATT_OP_READ_REQ, ATT_OP_READ_RSP },
		{ ATT_OP_READ_BLOB_REQ, ATT_OP_READ_BLOB_RSP },
		{ ATT_OP_READ_BY_GROUP_TYPE_REQ, ATT_OP_READ_BY_GROUP_TYPE_RSP },
		{ ATT_OP_WRITE_REQ, ATT_OP_WRITE_RSP },
		{ ATT_OP_HANDLE_VALUE_IND, ATT_OP_HANDLE_VALUE_CFM },
	};
	static const uint8_t not_requests[] = {
		ATT_OP_ERROR_RSP, ATT_OP_MTU_RSP, ATT_OP_READ_RSP, ATT_OP_WRITE_CMD,
		ATT_OP_HANDLE_VALUE_NTF, ATT_OP_HANDLE_VALUE_CFM, 0x00, 0xFF,
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		assert_true(att_opcode_is_request(pairs[i][0]));
		assert_int_equal(att_response_for(pairs[i][0]), pairs[i][1]);
		assert_string_not_equal(att_opcode_name(pairs[i][0]), "unknown");
		assert_string_not_equal(att_opcode_name(pairs[i][1]), "unknown");
	}
	for (size_t i = 0; i < sizeof(not_requests); i++) {
		assert_false(att_opcode_is_request(not_requests[i]));
		assert_int_equal(att_response_for(not_requests[i]), 0);
	}
	assert_string_equal(att_opcode_name(0xFF), "unknown");
	assert_string_equal(att_error_name(ATT_ERR_ATTRIBUTE_NOT_FOUND), "Attribute Not Found");
	assert_string_equal(att_error_name(0x00), "unknown");
	assert_string_equal(att_error_name(0x80), "unknown");
}

/* A 21-byte request whose UUID lies on the Base UUID re-encodes as 7 bytes. */
static void test_uuid_shrinks_on_reencode(void **state)
{
	static const uint8_t req21[] = { 0x10, 0x01, 0x00, 0xFF, 0xFF, 0xFB, 0x34, 0x9B,
					 0x5F, 0x80, 0x00, 0x00, 0x80, 0x00, 0x10, 0x00,
					 0x00, 0x00, 0x28, 0x00, 0x00 };
	static const uint8_t req7[] = { 0x10, 0x01, 0x00, 0xFF, 0xFF, 0x00, 0x28 };
	struct att_pdu p;
	uint8_t out[32];
	size_t len;

	assert_int_equal(att_pdu_decode(req21, sizeof(req21), &p), 0);
	assert_int_equal(att_pdu_encode(&p, out, sizeof(out), &len), 0);
	assert_int_equal(len, sizeof(req7));
	assert_memory_equal(out, req7, len);
}

/*
 * Deterministic garbage (the fuzzer's invariants, inside ctest): every
 * buffer either decodes and re-encodes to itself, or fails with one of the
 * documented errors and leaves the output untouched.
 */
static uint32_t rng_state = 0x12345678;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void test_decode_garbage(void **state)
{
	static const uint8_t ops[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				       0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x10, 0x11, 0x12,
				       0x13, 0x1B, 0x1D, 0x1E, 0x52, 0x16, 0xD2 };
	uint8_t buf[ATT_MAX_MTU + 4], out[ATT_MAX_MTU];
	long accepted = 0, rejected = 0;

	for (int iter = 0; iter < 200000; iter++) {
		size_t len = (rng() % 8 == 0) ? rng() % sizeof(buf) : rng() % 48;
		struct att_pdu p;
		size_t olen;
		int rc;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		/* Small handles and lengths so lists have a chance to be well formed. */
		if (len > 0)
			buf[0] = ops[rng() % sizeof(ops)];
		for (size_t i = 1; i < len && i < 8; i++)
			if (rng() % 2)
				buf[i] = (uint8_t)(rng() % 8);

		fill_sentinel(&p);
		rc = att_pdu_decode(buf, len, &p);
		if (rc < 0) {
			assert_true(rc == -EBADMSG || rc == -ENOTSUP || rc == -EMSGSIZE);
			assert_untouched(&p);
			rejected++;
			continue;
		}
		accepted++;
		assert_int_equal(att_pdu_encode(&p, out, sizeof(out), &olen), 0);
		if ((p.opcode == ATT_OP_READ_BY_TYPE_REQ ||
		     p.opcode == ATT_OP_READ_BY_GROUP_TYPE_REQ) &&
		    att_uuid_is16(&p.read_by_type_req.type, NULL)) {
			assert_int_equal(olen, 7);
		} else {
			assert_int_equal(olen, len);
			assert_memory_equal(out, buf, len);
		}
	}
	print_message("garbage: %ld accepted, %ld rejected\n", accepted, rejected);
	/* Both paths must actually have been exercised. */
	assert_true(accepted > 10000);
	assert_true(rejected > 10000);
}

/* --- iterators ------------------------------------------------------------- */

static void test_iterators(void **state)
{
	struct att_pdu p;
	size_t pos = 0;
	struct att_info_entry info;
	struct att_type_entry te;
	struct att_group_entry ge;
	struct att_handle_range hr;
	uint16_t u16;

	/* Find Information, 16-bit. */
	assert_int_equal(att_pdu_decode(valid[6].bytes, valid[6].len, &p), 0);
	assert_int_equal(att_find_info_next(&p, &pos, &info), 1);
	assert_int_equal(info.handle, 5);
	assert_true(att_uuid_is16(&info.type, &u16));
	assert_int_equal(u16, ATT_UUID_CCCD);
	assert_int_equal(att_find_info_next(&p, &pos, &info), 1);
	assert_int_equal(info.handle, 6);
	assert_true(att_uuid_is16(&info.type, &u16));
	assert_int_equal(u16, ATT_UUID_CHAR_USER_DESC);
	assert_int_equal(att_find_info_next(&p, &pos, &info), 0);
	assert_int_equal(att_find_info_next(&p, &pos, &info), 0);
	/* Wrong iterator for the PDU. */
	pos = 0;
	assert_int_equal(att_read_by_type_next(&p, &pos, &te), -EINVAL);
	assert_int_equal(att_read_by_group_next(&p, &pos, &ge), -EINVAL);
	assert_int_equal(att_find_by_type_next(&p, &pos, &hr), -EINVAL);

	/* Find Information, 128-bit. */
	assert_int_equal(att_pdu_decode(valid[7].bytes, valid[7].len, &p), 0);
	pos = 0;
	assert_int_equal(att_find_info_next(&p, &pos, &info), 1);
	assert_int_equal(info.handle, 5);
	assert_false(att_uuid_is16(&info.type, NULL));
	assert_int_equal(att_find_info_next(&p, &pos, &info), 0);

	/* Read By Type: characteristic declarations. */
	assert_int_equal(att_pdu_decode(valid[13].bytes, valid[13].len, &p), 0);
	pos = 0;
	assert_int_equal(att_read_by_type_next(&p, &pos, &te), 1);
	assert_int_equal(te.handle, 2);
	assert_int_equal(te.value_len, 5);
	{
		struct att_char_decl d;

		assert_int_equal(att_char_decl_decode(te.value, te.value_len, &d), 0);
		assert_int_equal(d.properties, ATT_PROP_NOTIFY);
		assert_int_equal(d.value_handle, 3);
		assert_true(att_uuid_is16(&d.uuid, &u16));
		assert_int_equal(u16, ATT_UUID_BATTERY_LEVEL);
	}
	assert_int_equal(att_read_by_type_next(&p, &pos, &te), 1);
	assert_int_equal(te.handle, 5);
	assert_int_equal(att_read_by_type_next(&p, &pos, &te), 0);
	pos = 0;
	assert_int_equal(att_find_info_next(&p, &pos, &info), -EINVAL);

	/* Read By Group Type. */
	assert_int_equal(att_pdu_decode(valid[21].bytes, valid[21].len, &p), 0);
	pos = 0;
	assert_int_equal(att_read_by_group_next(&p, &pos, &ge), 1);
	assert_int_equal(ge.start, 1);
	assert_int_equal(ge.end, 7);
	assert_int_equal(ge.value_len, 2);
	assert_int_equal(ge.value[0] | ge.value[1] << 8, ATT_UUID_GAP_SERVICE);
	assert_int_equal(att_read_by_group_next(&p, &pos, &ge), 1);
	assert_int_equal(ge.start, 8);
	assert_int_equal(ge.end, 11);
	assert_int_equal(att_read_by_group_next(&p, &pos, &ge), 0);

	/* Find By Type Value. */
	assert_int_equal(att_pdu_decode(valid[10].bytes, valid[10].len, &p), 0);
	pos = 0;
	assert_int_equal(att_find_by_type_next(&p, &pos, &hr), 1);
	assert_int_equal(hr.start, 1);
	assert_int_equal(hr.end, 5);
	assert_int_equal(att_find_by_type_next(&p, &pos, &hr), 1);
	assert_int_equal(hr.start, 0x10);
	assert_int_equal(hr.end, 0x12);
	assert_int_equal(att_find_by_type_next(&p, &pos, &hr), 0);

	/* A hand-built PDU with a torn list stops with -EBADMSG instead of overrunning. */
	memset(&p, 0, sizeof(p));
	p.opcode = ATT_OP_READ_BY_TYPE_RSP;
	p.read_by_type_rsp.entry_len = 7;
	p.read_by_type_rsp.list = valid[13].bytes + 2;
	p.read_by_type_rsp.list_len = 10;
	pos = 0;
	assert_int_equal(att_read_by_type_next(&p, &pos, &te), 1);
	assert_int_equal(att_read_by_type_next(&p, &pos, &te), -EBADMSG);
	assert_int_equal(pos, 7);
}

static void test_char_decl(void **state)
{
	static const uint8_t v16[] = { 0x1A, 0x03, 0x00, 0x19, 0x2A };
	static const uint8_t v128[] = { 0x08, 0x09, 0x00, 0x5f, 0x4e, 0x3d, 0x2c, 0x1b, 0x0a,
					0x8e, 0x9f, 0x3b, 0x4d, 0x2a, 0x5c, 0x03, 0x00, 0x1e,
					0x7b };
	static const uint8_t zero_handle[] = { 0x1A, 0x00, 0x00, 0x19, 0x2A };
	struct att_char_decl d, s;
	uint8_t buf[19];
	size_t len = 0;
	char text[37];

	assert_int_equal(att_char_decl_decode(v16, sizeof(v16), &d), 0);
	assert_int_equal(d.properties, 0x1A);
	assert_int_equal(d.value_handle, 3);
	assert_int_equal(att_char_decl_encode(&d, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(v16));
	assert_memory_equal(buf, v16, len);

	assert_int_equal(att_char_decl_decode(v128, sizeof(v128), &d), 0);
	assert_int_equal(d.value_handle, 9);
	att_uuid_format(&d.uuid, text);
	assert_string_equal(text, "7b1e0003-5c2a-4d3b-9f8e-0a1b2c3d4e5f");
	assert_int_equal(att_char_decl_encode(&d, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(v128));
	assert_memory_equal(buf, v128, len);
	len = 77;
	assert_int_equal(att_char_decl_encode(&d, buf, 18, &len), -ENOSPC);
	assert_int_equal(len, 77);

	memset(&s, 0xA5, sizeof(s));
	memcpy(&d, &s, sizeof(d));
	for (size_t n = 0; n <= sizeof(v128); n++) {
		if (n == 5 || n == 19)
			continue;
		assert_int_equal(att_char_decl_decode(v128, n, &d), -EBADMSG);
	}
	assert_int_equal(att_char_decl_decode(zero_handle, sizeof(zero_handle), &d), -EBADMSG);
	assert_memory_equal(&d, &s, sizeof(d));
	d.value_handle = 0;
	assert_int_equal(att_char_decl_encode(&d, buf, sizeof(buf), &len), -EINVAL);
}

/* --- list builder ----------------------------------------------------------- */

static void test_list_builder_mtu23(void **state)
{
	struct att_list_builder b;
	uint8_t decl16[7] = { 0x02, 0x00, 0x10, 0x03, 0x00, 0x19, 0x2A };
	uint8_t decl128[21] = { 0x05, 0x00, 0x08, 0x06, 0x00 };
	uint8_t pdu[ATT_DEFAULT_MTU];
	struct att_pdu p, d;
	size_t len, pos = 0;
	struct att_type_entry te;
	int n = 0;

	/* 21 bytes of room: three 7-byte declarations. */
	att_list_init(&b, ATT_DEFAULT_MTU, ATT_OP_READ_BY_TYPE_RSP);
	assert_int_equal(b.cap, 21);
	for (int i = 0; i < 3; i++) {
		decl16[0] = (uint8_t)(2 + 3 * i);
		assert_int_equal(att_list_add(&b, decl16, sizeof(decl16)), 0);
	}
	assert_int_equal(att_list_add(&b, decl16, sizeof(decl16)), -ENOSPC);
	assert_int_equal(b.len, 21);
	/* A 128-bit declaration has another length: -E2BIG, list unchanged. */
	assert_int_equal(att_list_add(&b, decl128, sizeof(decl128)), -E2BIG);
	assert_int_equal(b.len, 21);

	memset(&p, 0, sizeof(p));
	p.opcode = ATT_OP_READ_BY_TYPE_RSP;
	p.read_by_type_rsp.entry_len = (uint8_t)b.entry_len;
	p.read_by_type_rsp.list = b.buf;
	p.read_by_type_rsp.list_len = b.len;
	assert_int_equal(att_pdu_encode(&p, pdu, sizeof(pdu), &len), 0);
	assert_int_equal(len, ATT_DEFAULT_MTU);
	assert_int_equal(att_pdu_decode(pdu, len, &d), 0);
	while (att_read_by_type_next(&d, &pos, &te) == 1)
		n++;
	assert_int_equal(n, 3);

	/* One 128-bit declaration fills the whole MTU-23 response. */
	att_list_init(&b, ATT_DEFAULT_MTU, ATT_OP_READ_BY_TYPE_RSP);
	assert_int_equal(att_list_add(&b, decl128, sizeof(decl128)), 0);
	assert_int_equal(att_list_add(&b, decl128, sizeof(decl128)), -ENOSPC);

	/* Find Information at 23: five 16-bit entries (4 bytes) or one 128-bit (18). */
	att_list_init(&b, ATT_DEFAULT_MTU, ATT_OP_FIND_INFO_RSP);
	for (int i = 0; i < 5; i++)
		assert_int_equal(att_list_add(&b, decl16, 4), 0);
	assert_int_equal(att_list_add(&b, decl16, 4), -ENOSPC);

	/* Find By Type Value has a one-byte header: 22 bytes, five 4-byte entries. */
	att_list_init(&b, ATT_DEFAULT_MTU, ATT_OP_FIND_BY_TYPE_RSP);
	assert_int_equal(b.cap, 22);

	/* Read By Group Type at 23: three 6-byte entries (18 of 21). */
	att_list_init(&b, ATT_DEFAULT_MTU, ATT_OP_READ_BY_GROUP_TYPE_RSP);
	for (int i = 0; i < 3; i++)
		assert_int_equal(att_list_add(&b, decl16, 6), 0);
	assert_int_equal(att_list_add(&b, decl16, 6), -ENOSPC);

	/* Bad arguments. */
	assert_int_equal(att_list_add(&b, decl16, 0), -EINVAL);
	assert_int_equal(att_list_add(&b, NULL, 6), -EINVAL);
	/* Not a list response: no room at all. */
	att_list_init(&b, ATT_DEFAULT_MTU, ATT_OP_READ_RSP);
	assert_int_equal(att_list_add(&b, decl16, 4), -ENOSPC);
	/* MTU below the minimum counts as 23. */
	att_list_init(&b, 5, ATT_OP_READ_BY_TYPE_RSP);
	assert_int_equal(b.cap, 21);
}

static void test_list_builder_mtu517(void **state)
{
	static uint8_t entry[256];
	struct att_list_builder b;
	uint8_t pdu[ATT_MAX_MTU];
	struct att_pdu p, d;
	size_t len;
	int n = 0;

	att_list_init(&b, ATT_MAX_MTU, ATT_OP_READ_BY_TYPE_RSP);
	assert_int_equal(b.cap, ATT_MAX_MTU - 2);
	/* 515 / 7 = 73 declarations. */
	for (;;) {
		entry[0] = (uint8_t)(n + 1);
		entry[1] = (uint8_t)((n + 1) >> 8);
		if (att_list_add(&b, entry, 7) != 0)
			break;
		n++;
	}
	assert_int_equal(n, 73);

	memset(&p, 0, sizeof(p));
	p.opcode = ATT_OP_READ_BY_TYPE_RSP;
	p.read_by_type_rsp.entry_len = (uint8_t)b.entry_len;
	p.read_by_type_rsp.list = b.buf;
	p.read_by_type_rsp.list_len = b.len;
	assert_int_equal(att_pdu_encode(&p, pdu, sizeof(pdu), &len), 0);
	assert_int_equal(att_pdu_decode(pdu, len, &d), 0);

	/* Entry lengths above 255 cannot be expressed in the length byte. */
	att_list_init(&b, ATT_MAX_MTU, ATT_OP_READ_BY_TYPE_RSP);
	assert_int_equal(att_list_add(&b, entry, 256), -EINVAL);
	assert_int_equal(att_list_add(&b, entry, 255), 0);
	assert_int_equal(att_list_add(&b, entry, 255), 0);
	assert_int_equal(att_list_add(&b, entry, 255), -ENOSPC);
	/* MTU above 517 counts as 517. */
	att_list_init(&b, 0xFFFF, ATT_OP_READ_BY_TYPE_RSP);
	assert_int_equal(b.cap, ATT_MAX_MTU - 2);

	/* Value truncation limits (Vol 3 Part F 3.4.4.2 / 3.4.4.10). */
	assert_int_equal(att_read_by_type_max_value(23), 19);
	assert_int_equal(att_read_by_type_max_value(517), 253);
	assert_int_equal(att_read_by_type_max_value(257), 253);
	assert_int_equal(att_read_by_type_max_value(100), 96);
	assert_int_equal(att_read_by_group_max_value(23), 17);
	assert_int_equal(att_read_by_group_max_value(517), 251);
	assert_int_equal(att_notification_max_value(23), 20);
	assert_int_equal(att_notification_max_value(517), 514);
	assert_int_equal(att_notification_max_value(0xFFFF), 514);
	assert_int_equal(att_notification_max_value(0), 20);
}

/* --- UUIDs ----------------------------------------------------------------- */

static void test_uuid(void **state)
{
	static const char *bad[] = {
		"",
		"2a1",
		"2a19a",
		"2g19",
		"7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5",
		"7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5fa",
		"7b1e0002x5c2a-4d3b-9f8e-0a1b2c3d4e5f",
		"7b1e00025-c2a-4d3b-9f8e-0a1b2c3d4e5f",
		"7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5g",
		"7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e-f",
		"-b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5f",
		"0x2a19",
		" 2a1",
	};
	static const uint8_t wire2a19[] = { 0x19, 0x2A };
	struct att_uuid u, v, s;
	char text[37];
	uint16_t u16 = 0;

	att_uuid_from16(0x2A19, &u);
	att_uuid_format(&u, text);
	assert_string_equal(text, "00002a19-0000-1000-8000-00805f9b34fb");
	assert_true(att_uuid_is16(&u, &u16));
	assert_int_equal(u16, 0x2A19);
	assert_int_equal(att_uuid_wire_len(&u), 2);

	assert_int_equal(att_uuid_parse("2a19", &v), 0);
	assert_true(att_uuid_equal(&u, &v));
	assert_int_equal(att_uuid_parse("2A19", &v), 0);
	assert_true(att_uuid_equal(&u, &v));
	assert_int_equal(att_uuid_parse("00002A19-0000-1000-8000-00805F9B34FB", &v), 0);
	assert_true(att_uuid_equal(&u, &v));
	assert_int_equal(att_uuid_from_wire(wire2a19, 2, &v), 0);
	assert_true(att_uuid_equal(&u, &v));

	assert_int_equal(att_uuid_parse("7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5f", &v), 0);
	/* Wire order is little-endian: the last text byte comes first. */
	assert_int_equal(v.le[0], 0x5f);
	assert_int_equal(v.le[15], 0x7b);
	assert_int_equal(v.le[12], 0x02);
	assert_false(att_uuid_is16(&v, &u16));
	assert_int_equal(u16, 0x2A19); /* untouched */
	assert_int_equal(att_uuid_wire_len(&v), 16);
	att_uuid_format(&v, text);
	assert_string_equal(text, "7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5f");
	assert_false(att_uuid_equal(&u, &v));

	/* A 32-bit-range UUID on the base is not a 16-bit one. */
	assert_int_equal(att_uuid_parse("12345678-0000-1000-8000-00805f9b34fb", &v), 0);
	assert_false(att_uuid_is16(&v, NULL));

	memset(&s, 0xA5, sizeof(s));
	v = s;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (att_uuid_parse(bad[i], &v) != -EINVAL) {
			print_error("accepted \"%s\"\n", bad[i]);
			fail();
		}
	}
	assert_int_equal(att_uuid_parse(NULL, &v), -EINVAL);
	for (size_t n = 0; n <= 17; n++) {
		if (n == 2 || n == 16)
			continue;
		assert_int_equal(att_uuid_from_wire(v.le, n, &v), -EBADMSG);
	}
	assert_memory_equal(&v, &s, sizeof(v));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_valid_roundtrip),
		cmocka_unit_test(test_decode_invalid),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_sizes),
		cmocka_unit_test(test_decode_fields),
		cmocka_unit_test(test_encode_invalid),
		cmocka_unit_test(test_opcode_facts),
		cmocka_unit_test(test_uuid_shrinks_on_reencode),
		cmocka_unit_test(test_decode_garbage),
		cmocka_unit_test(test_iterators),
		cmocka_unit_test(test_char_decl),
		cmocka_unit_test(test_list_builder_mtu23),
		cmocka_unit_test(test_list_builder_mtu517),
		cmocka_unit_test(test_uuid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
