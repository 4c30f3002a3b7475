/*
 * fuzz_att.c - libFuzzer target: the ATT PDU codec (gateway/proto/att.c),
 * everything it decodes from a peer and everything it encodes back.
 *
 * The input is one PDU as it arrives on the bearer. Besides "no crash, no
 * over-read", it checks the codec's own promises (att.h):
 *   - a failed decode returns -EBADMSG, -ENOTSUP or -EMSGSIZE and leaves its
 *     output untouched;
 *   - att_pdu_decode_mtu refuses exactly the PDUs longer than the MTU;
 *   - a decoded PDU re-encodes to the same bytes (a 128-bit type UUID on
 *     the Base UUID may shrink to 2 bytes);
 *   - the list iterators walk exactly the list, entries in strictly
 *     ascending handle order, service ranges start <= end;
 *   - every characteristic declaration value decodes/re-encodes the same;
 *   - a list response rebuilt with struct att_list_builder (the server side)
 *     from the entries just walked encodes to the same bytes;
 *   - the input as text: att_uuid_parse accepts only the 4- and 36-digit
 *     forms, and what it accepts formats and parses back to the same UUID.
 * Moved here from the harness that was built by hand (165 M executions
 * without a finding); the profile decoders have their own target.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "att.h"

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

static void check_char_decl(const uint8_t *value, size_t len)
{
	struct att_char_decl d, again;
	uint8_t out[19];
	size_t n = 0;

	memset(&d, 0xA5, sizeof(d));
	if (att_char_decl_decode(value, len, &d) < 0) {
		check_untouched(&d, sizeof(d));
		return;
	}
	CHECK(d.value_handle != 0 && (len == 5 || len == 19));
	CHECK(att_char_decl_encode(&d, out, sizeof(out), &n) == 0);
	CHECK(att_char_decl_decode(out, n, &again) == 0);
	CHECK(again.properties == d.properties && again.value_handle == d.value_handle &&
	      att_uuid_equal(&again.uuid, &d.uuid));
	/* Bytes are equal unless a 128-bit UUID on the Base UUID shrank. */
	CHECK((n == len && memcmp(out, value, len) == 0) ||
	      (len == 19 && n == 5 && att_uuid_is16(&d.uuid, NULL)));
}

/*
 * Feeds each walked entry to a list builder at the PDU's own size as MTU:
 * the rebuilt list must be the received one, byte for byte.
 */
static void rebuild(struct att_list_builder *b, const uint8_t *entry, size_t len)
{
	CHECK(att_list_add(b, entry, len) == 0);
}

static void walk_lists(const struct att_pdu *p, size_t size)
{
	struct att_list_builder b;
	size_t pos = 0, n = 0;
	uint16_t prev = 0;
	int rc;

	att_list_init(&b, (uint16_t)size, p->opcode);
	switch (p->opcode) {
	case ATT_OP_FIND_INFO_RSP: {
		struct att_info_entry e;
		size_t el = p->find_info_rsp.format == 1 ? 4 : 18;

		while ((rc = att_find_info_next(p, &pos, &e)) == 1) {
			CHECK(e.handle > prev);
			prev = e.handle;
			rebuild(&b, p->find_info_rsp.list + n * el, el);
			n++;
		}
		CHECK(rc == 0 && n > 0 && pos == p->find_info_rsp.list_len);
		CHECK(b.len == p->find_info_rsp.list_len &&
		      memcmp(b.buf, p->find_info_rsp.list, b.len) == 0);
		break;
	}
	case ATT_OP_READ_BY_TYPE_RSP: {
		struct att_type_entry e;

		while ((rc = att_read_by_type_next(p, &pos, &e)) == 1) {
			CHECK(e.handle > prev && e.value_len + 2 == p->read_by_type_rsp.entry_len);
			prev = e.handle;
			check_char_decl(e.value, e.value_len);
			rebuild(&b, e.value - 2, e.value_len + 2);
			n++;
		}
		CHECK(rc == 0 && n > 0 && pos == p->read_by_type_rsp.list_len);
		CHECK(b.len == pos && memcmp(b.buf, p->read_by_type_rsp.list, b.len) == 0);
		break;
	}
	case ATT_OP_READ_BY_GROUP_TYPE_RSP: {
		struct att_group_entry e;
		struct att_uuid u;

		while ((rc = att_read_by_group_next(p, &pos, &e)) == 1) {
			CHECK(e.start != 0 && e.start <= e.end && e.start > prev);
			prev = e.end;
			CHECK(att_uuid_from_wire(e.value, e.value_len, &u) == 0);
			rebuild(&b, e.value - 4, e.value_len + 4);
			n++;
		}
		CHECK(rc == 0 && n > 0 && pos == p->read_by_type_rsp.list_len);
		CHECK(b.len == pos && memcmp(b.buf, p->read_by_type_rsp.list, b.len) == 0);
		break;
	}
	case ATT_OP_FIND_BY_TYPE_RSP: {
		struct att_handle_range e;

		while ((rc = att_find_by_type_next(p, &pos, &e)) == 1) {
			CHECK(e.start != 0 && e.start <= e.end && e.start > prev);
			prev = e.end;
			rebuild(&b, p->value.value + n * 4, 4);
			n++;
		}
		CHECK(rc == 0 && n > 0 && pos == p->value.value_len);
		CHECK(b.len == pos && memcmp(b.buf, p->value.value, b.len) == 0);
		break;
	}
	case ATT_OP_WRITE_REQ:
	case ATT_OP_WRITE_CMD:
	case ATT_OP_HANDLE_VALUE_NTF:
	case ATT_OP_HANDLE_VALUE_IND:
		CHECK(p->handle_value.value_len + 3 == size);
		CHECK(p->handle_value.value_len <= att_notification_max_value((uint16_t)size));
		break;
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

static void fuzz_pdu(const uint8_t *data, size_t size)
{
	static const uint16_t mtus[] = { 0, 23, 185, 247, 516, 517 };
	struct att_pdu p, q;
	uint8_t out[ATT_MAX_MTU];
	size_t len = 0;
	int rc;

	memset(&p, 0xA5, sizeof(p));
	rc = att_pdu_decode(data, size, &p);
	for (size_t i = 0; i < sizeof(mtus) / sizeof(mtus[0]); i++) {
		int rm;

		memset(&q, 0xA5, sizeof(q));
		rm = att_pdu_decode_mtu(data, size, mtus[i], &q);
		if (size > mtus[i])
			CHECK(rm == -EMSGSIZE);
		else
			CHECK(rm == rc);
		if (rm < 0)
			check_untouched(&q, sizeof(q));
	}
	if (rc < 0) {
		CHECK(rc == -EBADMSG || rc == -ENOTSUP || rc == -EMSGSIZE);
		CHECK(rc != -EMSGSIZE || size > ATT_MAX_MTU);
		check_untouched(&p, sizeof(p));
		return;
	}
	CHECK(size >= 1 && size <= ATT_MAX_MTU && p.opcode == data[0]);
	walk_lists(&p, size);
	CHECK(att_pdu_encode(&p, out, sizeof(out), &len) == 0);
	if (uuid_may_shrink(&p))
		CHECK(len == 7);
	else
		CHECK(len == size && memcmp(out, data, size) == 0);
	/* What the encoder produced, the decoder takes back. */
	CHECK(att_pdu_decode(out, len, &q) == 0 && q.opcode == p.opcode);
	/* Too small a buffer is -ENOSPC and leaves *len alone. */
	if (len > 1) {
		size_t untouched = 12345;

		CHECK(att_pdu_encode(&p, out, len - 1, &untouched) == -ENOSPC && untouched == 12345);
	}
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* "2a19" or "7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5f", either case. */
static bool ref_uuid_text(const char *s, size_t n)
{
	if (n == 4)
		return is_hex(s[0]) && is_hex(s[1]) && is_hex(s[2]) && is_hex(s[3]);
	if (n != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}

static void fuzz_uuid_text(const uint8_t *data, size_t size)
{
	char text[64], formatted[37];
	struct att_uuid u, again;

	if (size >= sizeof(text) || memchr(data, '\0', size))
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&u, 0xA5, sizeof(u));
	if (att_uuid_parse(text, &u) < 0) {
		CHECK(!ref_uuid_text(text, size));
		check_untouched(&u, sizeof(u));
		return;
	}
	CHECK(ref_uuid_text(text, size));
	att_uuid_format(&u, formatted);
	CHECK(strlen(formatted) == 36 && ref_uuid_text(formatted, 36));
	CHECK(att_uuid_parse(formatted, &again) == 0 && att_uuid_equal(&u, &again));
	if (size == 36)
		CHECK(strncasecmp(formatted, text, 36) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_pdu(data, size);
	/* A notification value handed up as a characteristic declaration. */
	if (size >= 3)
		check_char_decl(data + 3, size - 3);
	fuzz_uuid_text(data, size);
	return 0;
}
