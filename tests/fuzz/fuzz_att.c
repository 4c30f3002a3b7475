/*
 * fuzz_att.c - libFuzzer target over everything bfrproto decodes from a peer.
 *
 * Build and run (from the repository root; not built by CMake):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Igateway/proto tests/fuzz/fuzz_att.c gateway/proto/att.c gateway/proto/sfloat.c gateway/proto/cuff_profile.c -lm -o /tmp/fuzz_att && /tmp/fuzz_att -max_len=600 -max_total_time=60
 *
 * Besides "no crash, no overread", it checks the codec's own promises:
 * a decoded PDU re-encodes to the same bytes (a 128-bit UUID on the Base UUID
 * may shrink to 2 bytes), the list iterators walk exactly the list, a
 * failed decode leaves its output untouched, and every profile value that
 * decodes re-encodes to the bytes it came from.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "att.h"
#include "cuff_profile.h"
#include "sfloat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                \
	do {                       \
		if (!(cond))       \
			abort();   \
	} while (0)

static void check_untouched(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		CHECK(b[i] == 0xA5);
}

static void walk_lists(const struct att_pdu *p)
{
	size_t pos = 0, n = 0;
	int rc;

	switch (p->opcode) {
	case ATT_OP_FIND_INFO_RSP: {
		struct att_info_entry e;

		while ((rc = att_find_info_next(p, &pos, &e)) == 1)
			n++;
		CHECK(rc == 0 && n > 0 && pos == p->find_info_rsp.list_len);
		break;
	}
	case ATT_OP_READ_BY_TYPE_RSP: {
		struct att_type_entry e;
		struct att_char_decl d;

		while ((rc = att_read_by_type_next(p, &pos, &e)) == 1) {
			n++;
			/* Treat every value as a characteristic declaration too. */
			if (att_char_decl_decode(e.value, e.value_len, &d) == 0)
				CHECK(d.value_handle != 0);
		}
		CHECK(rc == 0 && n > 0 && pos == p->read_by_type_rsp.list_len);
		break;
	}
	case ATT_OP_READ_BY_GROUP_TYPE_RSP: {
		struct att_group_entry e;
		struct att_uuid u;

		while ((rc = att_read_by_group_next(p, &pos, &e)) == 1) {
			n++;
			CHECK(e.start != 0 && e.start <= e.end);
			CHECK(att_uuid_from_wire(e.value, e.value_len, &u) == 0);
		}
		CHECK(rc == 0 && n > 0 && pos == p->read_by_type_rsp.list_len);
		break;
	}
	case ATT_OP_FIND_BY_TYPE_RSP: {
		struct att_handle_range e;

		while ((rc = att_find_by_type_next(p, &pos, &e)) == 1) {
			n++;
			CHECK(e.start != 0 && e.start <= e.end);
		}
		CHECK(rc == 0 && n > 0 && pos == p->value.value_len);
		break;
	}
	default:
		break;
	}
}

static bool uuid_may_shrink(const struct att_pdu *p)
{
	return (p->opcode == ATT_OP_READ_BY_TYPE_REQ ||
		p->opcode == ATT_OP_READ_BY_GROUP_TYPE_REQ) &&
	       att_uuid_is16(&p->read_by_type_req.type, NULL);
}

static void fuzz_att(const uint8_t *data, size_t size)
{
	struct att_pdu p;
	uint8_t out[ATT_MAX_MTU];
	size_t len = 0;
	int rc;

	memset(&p, 0xA5, sizeof(p));
	rc = att_pdu_decode(data, size, &p);
	if (rc < 0) {
		CHECK(rc == -EBADMSG || rc == -ENOTSUP || rc == -EMSGSIZE);
		check_untouched(&p, sizeof(p));
		return;
	}
	CHECK(size >= 1 && size <= ATT_MAX_MTU && p.opcode == data[0]);
	walk_lists(&p);
	CHECK(att_pdu_encode(&p, out, sizeof(out), &len) == 0);
	if (uuid_may_shrink(&p))
		CHECK(len == 7);
	else
		CHECK(len == size && memcmp(out, data, size) == 0);
}

static void fuzz_profile(const uint8_t *data, size_t size)
{
	struct bfr_sample samples[BFR_MAX_SAMPLES_PER_NTF];
	struct bfr_cp_request req;
	struct bfr_cp_response rsp;
	struct bfr_status st;
	struct bfr_features f;
	uint8_t out[ATT_MAX_MTU];
	size_t n = 0, len = 0;
	uint16_t token;

	if (bfr_pressure_decode(data, size, samples, BFR_MAX_SAMPLES_PER_NTF, &n) == 0) {
		CHECK(n >= 1 && size == 1 + n * BFR_SAMPLE_WIRE_SIZE);
		/* Special SFLOATs collapse to NaN, so only compare when none occurred. */
		if (bfr_pressure_encode(samples, n, out, sizeof(out), &len) == 0)
			CHECK(len == size);
	}

	memset(&req, 0xA5, sizeof(req));
	if (bfr_cp_request_decode(data, size, &req) == 0) {
		CHECK(bfr_cp_request_encode(&req, out, sizeof(out), &len) == 0);
		CHECK(len == size);
	} else {
		check_untouched(&req, sizeof(req));
	}

	memset(&rsp, 0xA5, sizeof(rsp));
	if (bfr_cp_response_decode(data, size, &rsp) == 0) {
		if (!rsp.has_lop || !isnan(rsp.lop_mmhg)) {
			CHECK(bfr_cp_response_encode(&rsp, out, sizeof(out), &len) == 0);
			CHECK(len == size);
		}
	} else {
		check_untouched(&rsp, sizeof(rsp));
	}

	memset(&st, 0xA5, sizeof(st));
	if (bfr_status_decode(data, size, &st) == 0) {
		CHECK(bfr_status_encode(&st, out, sizeof(out), &len) == 0);
		CHECK(len == size);
	} else {
		check_untouched(&st, sizeof(st));
	}

	memset(&f, 0xA5, sizeof(f));
	if (bfr_features_decode(data, size, &f) == 0) {
		if (!isnan(f.max_pressure_mmhg) && f.max_pressure_mmhg >= 0) {
			CHECK(bfr_features_encode(&f, out, sizeof(out), &len) == 0);
			CHECK(len == size);
		}
	} else {
		check_untouched(&f, sizeof(f));
	}

	if (bfr_supervision_decode(data, size, &token) == 0)
		CHECK(size == 2);

	if (size == 2) {
		double v;
		uint16_t raw = (uint16_t)(data[0] | data[1] << 8);

		if (sfloat_decode(raw, &v) == SFLOAT_CLASS_NUMBER) {
			uint16_t again;
			double back;

			CHECK(sfloat_encode(v, &again) == 0);
			CHECK(sfloat_decode(again, &back) == SFLOAT_CLASS_NUMBER);
			CHECK(fabs(back - v) <= fabs(v) * 1e-12);
		} else {
			CHECK(isnan(sfloat_to_double(raw)));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_att(data, size);
	/* Notification and indication values are what the profile decoders see in practice. */
	fuzz_profile(data, size);
	if (size >= 3)
		fuzz_profile(data + 3, size - 3);
	return 0;
}
