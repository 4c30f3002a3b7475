/*
 * att.c - ATT PDU codec and UUID helpers (Core Spec v5.x Vol 3 Part F 3.4).
 *
 * Decode and encode apply the same rules, so whatever att_pdu_encode
 * produces att_pdu_decode accepts, and a decoded PDU re-encodes to the same
 * bytes (except a 128-bit UUID that lies on the Base UUID, which re-encodes
 * in its 2-byte form).
 */
#include "att.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"

/* 00000000-0000-1000-8000-00805F9B34FB, little-endian. */
static const uint8_t base_uuid_le[16] = {
	0xFB, 0x34, 0x9B, 0x5F, 0x80, 0x00, 0x00, 0x80,
	0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* --- UUIDs ----------------------------------------------------------------- */

void att_uuid_from16(uint16_t u16, struct att_uuid *out)
{
	memcpy(out->le, base_uuid_le, sizeof(out->le));
	put_le16(out->le + 12, u16);
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads 2*n hex digits as n big-endian bytes. */
static int parse_hex(const char *text, size_t n, uint8_t *be)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex_nibble(text[2 * i]);
		int lo = hi < 0 ? -1 : hex_nibble(text[2 * i + 1]);

		if (lo < 0)
			return -EINVAL;
		be[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int att_uuid_parse(const char *text, struct att_uuid *out)
{
	/* Canonical group lengths in hex digits: 8-4-4-4-12. */
	static const size_t groups[5] = { 8, 4, 4, 4, 12 };
	uint8_t be[16];
	size_t len;
	const char *p;
	size_t at = 0;

	if (!text)
		return -EINVAL;
	len = strlen(text);
	if (len == 4) {
		uint8_t b[2];

		if (parse_hex(text, 2, b) < 0)
			return -EINVAL;
		att_uuid_from16((uint16_t)(b[0] << 8 | b[1]), out);
		return 0;
	}
	if (len != 36)
		return -EINVAL;
	p = text;
	for (int g = 0; g < 5; g++) {
		if (g > 0) {
			if (*p != '-')
				return -EINVAL;
			p++;
		}
		if (parse_hex(p, groups[g] / 2, be + at) < 0)
			return -EINVAL;
		p += groups[g];
		at += groups[g] / 2;
	}
	for (int i = 0; i < 16; i++)
		out->le[i] = be[15 - i];
	return 0;
}

void att_uuid_format(const struct att_uuid *uuid, char out[37])
{
	const uint8_t *b = uuid->le;

	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[15], b[14], b[13], b[12], b[11], b[10], b[9], b[8], b[7], b[6], b[5],
		 b[4], b[3], b[2], b[1], b[0]);
}

bool att_uuid_equal(const struct att_uuid *a, const struct att_uuid *b)
{
	return memcmp(a->le, b->le, sizeof(a->le)) == 0;
}

bool att_uuid_is16(const struct att_uuid *uuid, uint16_t *u16)
{
	if (memcmp(uuid->le, base_uuid_le, 12) != 0 || uuid->le[14] || uuid->le[15])
		return false;
	if (u16)
		*u16 = get_le16(uuid->le + 12);
	return true;
}

size_t att_uuid_wire_len(const struct att_uuid *uuid)
{
	return att_uuid_is16(uuid, NULL) ? 2 : 16;
}

int att_uuid_from_wire(const uint8_t *buf, size_t len, struct att_uuid *out)
{
	if (len == 2) {
		att_uuid_from16(get_le16(buf), out);
		return 0;
	}
	if (len == 16) {
		memcpy(out->le, buf, 16);
		return 0;
	}
	return -EBADMSG;
}

static int writer_uuid(struct byte_writer *w, const struct att_uuid *uuid)
{
	uint16_t u16;

	if (att_uuid_is16(uuid, &u16))
		return writer_le16(w, u16);
	return writer_bytes(w, uuid->le, 16);
}

/* --- list validation -------------------------------------------------------- */

/*
 * Lists in responses are in ascending handle order (Vol 3 Part F 3.4.3.2,
 * 3.4.4.2, 3.4.4.10); a client continues discovery from the last handle, so
 * a list that goes backwards or repeats would make it loop forever.
 */
static int check_find_info_list(uint8_t format, const uint8_t *list, size_t len)
{
	size_t entry = format == 1 ? 4 : format == 2 ? 18 : 0;
	uint16_t prev = 0;

	if (!entry || len == 0 || len % entry)
		return -EBADMSG;
	for (size_t off = 0; off < len; off += entry) {
		uint16_t h = get_le16(list + off);

		if (h == 0 || h <= prev)
			return -EBADMSG;
		prev = h;
	}
	return 0;
}

static int check_handles_list(const uint8_t *list, size_t len)
{
	uint16_t prev = 0;

	if (len == 0 || len % 4)
		return -EBADMSG;
	for (size_t off = 0; off < len; off += 4) {
		uint16_t found = get_le16(list + off);
		uint16_t group_end = get_le16(list + off + 2);

		if (found == 0 || found > group_end || found <= prev)
			return -EBADMSG;
		prev = group_end;
	}
	return 0;
}

static int check_type_list(uint8_t entry_len, const uint8_t *list, size_t len)
{
	uint16_t prev = 0;

	if (entry_len < 2 || len == 0 || len % entry_len)
		return -EBADMSG;
	for (size_t off = 0; off < len; off += entry_len) {
		uint16_t h = get_le16(list + off);

		if (h == 0 || h <= prev)
			return -EBADMSG;
		prev = h;
	}
	return 0;
}

static int check_group_list(uint8_t entry_len, const uint8_t *list, size_t len)
{
	uint16_t prev = 0;

	/* Only service UUIDs are group values in GATT: 2 or 16 bytes after two handles. */
	if ((entry_len != 6 && entry_len != 20) || len == 0 || len % entry_len)
		return -EBADMSG;
	for (size_t off = 0; off < len; off += entry_len) {
		uint16_t start = get_le16(list + off);
		uint16_t end = get_le16(list + off + 2);

		if (start == 0 || start > end || start <= prev)
			return -EBADMSG;
		prev = end;
	}
	return 0;
}

static bool range_valid(uint16_t start, uint16_t end)
{
	return start != 0 && start <= end;
}

/* --- decode ------------------------------------------------------------------ */

int att_pdu_decode(const uint8_t *buf, size_t len, struct att_pdu *out)
{
	struct byte_reader r;
	struct att_pdu p;
	uint8_t u8;
	const uint8_t *rest;
	size_t rest_len;

	if (len > ATT_MAX_MTU)
		return -EMSGSIZE;
	if (!buf || len == 0)
		return -EBADMSG;

	memset(&p, 0, sizeof(p));
	p.opcode = buf[0];
	reader_init(&r, buf + 1, len - 1);
	rest_len = len - 1;
	rest = buf + 1;

	switch (p.opcode) {
	case ATT_OP_ERROR_RSP:
		if (rest_len != 4)
			return -EBADMSG;
		reader_u8(&r, &p.error_rsp.req_opcode);
		reader_le16(&r, &p.error_rsp.handle);
		reader_u8(&r, &p.error_rsp.error);
		/* Error code 0x00 is reserved; a response without a reason is no answer. */
		if (p.error_rsp.error == 0)
			return -EBADMSG;
		break;
	case ATT_OP_MTU_REQ:
	case ATT_OP_MTU_RSP:
		/*
		 * Values below 23 are legal on the wire: the spec says to use
		 * 23 then. The bearer clamps; the codec only checks the size.
		 */
		if (rest_len != 2)
			return -EBADMSG;
		reader_le16(&r, &p.mtu.mtu);
		break;
	case ATT_OP_FIND_INFO_REQ:
		if (rest_len != 4)
			return -EBADMSG;
		reader_le16(&r, &p.find_info_req.start);
		reader_le16(&r, &p.find_info_req.end);
		if (!range_valid(p.find_info_req.start, p.find_info_req.end))
			return -EBADMSG;
		break;
	case ATT_OP_FIND_INFO_RSP:
		if (reader_u8(&r, &u8) < 0)
			return -EBADMSG;
		if (check_find_info_list(u8, rest + 1, rest_len - 1) < 0)
			return -EBADMSG;
		p.find_info_rsp.format = u8;
		p.find_info_rsp.list = rest + 1;
		p.find_info_rsp.list_len = rest_len - 1;
		break;
	case ATT_OP_FIND_BY_TYPE_REQ:
		if (rest_len < 6)
			return -EBADMSG;
		reader_le16(&r, &p.find_by_type_req.start);
		reader_le16(&r, &p.find_by_type_req.end);
		reader_le16(&r, &p.find_by_type_req.type);
		if (!range_valid(p.find_by_type_req.start, p.find_by_type_req.end))
			return -EBADMSG;
		p.find_by_type_req.value = rest + 6;
		p.find_by_type_req.value_len = rest_len - 6;
		break;
	case ATT_OP_FIND_BY_TYPE_RSP:
		if (check_handles_list(rest, rest_len) < 0)
			return -EBADMSG;
		p.value.value = rest;
		p.value.value_len = rest_len;
		break;
	case ATT_OP_READ_BY_TYPE_REQ:
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
		if (rest_len != 6 && rest_len != 20)
			return -EBADMSG;
		reader_le16(&r, &p.read_by_type_req.start);
		reader_le16(&r, &p.read_by_type_req.end);
		if (!range_valid(p.read_by_type_req.start, p.read_by_type_req.end))
			return -EBADMSG;
		att_uuid_from_wire(rest + 4, rest_len - 4, &p.read_by_type_req.type);
		break;
	case ATT_OP_READ_BY_TYPE_RSP:
	case ATT_OP_READ_BY_GROUP_TYPE_RSP:
		if (reader_u8(&r, &u8) < 0)
			return -EBADMSG;
		if (p.opcode == ATT_OP_READ_BY_TYPE_RSP ?
			    check_type_list(u8, rest + 1, rest_len - 1) < 0 :
			    check_group_list(u8, rest + 1, rest_len - 1) < 0)
			return -EBADMSG;
		p.read_by_type_rsp.entry_len = u8;
		p.read_by_type_rsp.list = rest + 1;
		p.read_by_type_rsp.list_len = rest_len - 1;
		break;
	case ATT_OP_READ_REQ:
		if (rest_len != 2)
			return -EBADMSG;
		reader_le16(&r, &p.read_req.handle);
		if (p.read_req.handle == 0)
			return -EBADMSG;
		break;
	case ATT_OP_READ_BLOB_REQ:
		if (rest_len != 4)
			return -EBADMSG;
		reader_le16(&r, &p.read_blob_req.handle);
		reader_le16(&r, &p.read_blob_req.offset);
		if (p.read_blob_req.handle == 0)
			return -EBADMSG;
		break;
	case ATT_OP_READ_RSP:
	case ATT_OP_READ_BLOB_RSP:
		p.value.value = rest;
		p.value.value_len = rest_len;
		break;
	case ATT_OP_WRITE_REQ:
	case ATT_OP_WRITE_CMD:
	case ATT_OP_HANDLE_VALUE_NTF:
	case ATT_OP_HANDLE_VALUE_IND:
		if (rest_len < 2)
			return -EBADMSG;
		reader_le16(&r, &p.handle_value.handle);
		if (p.handle_value.handle == 0)
			return -EBADMSG;
		p.handle_value.value = rest + 2;
		p.handle_value.value_len = rest_len - 2;
		break;
	case ATT_OP_WRITE_RSP:
	case ATT_OP_HANDLE_VALUE_CFM:
		if (rest_len != 0)
			return -EBADMSG;
		break;
	default:
		return -ENOTSUP;
	}

	*out = p;
	return 0;
}

int att_pdu_decode_mtu(const uint8_t *buf, size_t len, uint16_t mtu, struct att_pdu *out)
{
	if (len > mtu)
		return -EMSGSIZE;
	return att_pdu_decode(buf, len, out);
}

/* --- encode ------------------------------------------------------------------ */

static int encode_body(const struct att_pdu *pdu, struct byte_writer *w)
{
	int err = 0;

	switch (pdu->opcode) {
	case ATT_OP_ERROR_RSP:
		if (pdu->error_rsp.error == 0)
			return -EINVAL;
		err = writer_u8(w, pdu->error_rsp.req_opcode);
		if (!err)
			err = writer_le16(w, pdu->error_rsp.handle);
		if (!err)
			err = writer_u8(w, pdu->error_rsp.error);
		return err;
	case ATT_OP_MTU_REQ:
	case ATT_OP_MTU_RSP:
		return writer_le16(w, pdu->mtu.mtu);
	case ATT_OP_FIND_INFO_REQ:
		if (!range_valid(pdu->find_info_req.start, pdu->find_info_req.end))
			return -EINVAL;
		err = writer_le16(w, pdu->find_info_req.start);
		if (!err)
			err = writer_le16(w, pdu->find_info_req.end);
		return err;
	case ATT_OP_FIND_INFO_RSP:
		if (!pdu->find_info_rsp.list ||
		    check_find_info_list(pdu->find_info_rsp.format, pdu->find_info_rsp.list,
					 pdu->find_info_rsp.list_len) < 0)
			return -EINVAL;
		err = writer_u8(w, pdu->find_info_rsp.format);
		if (!err)
			err = writer_bytes(w, pdu->find_info_rsp.list, pdu->find_info_rsp.list_len);
		return err;
	case ATT_OP_FIND_BY_TYPE_REQ:
		if (!range_valid(pdu->find_by_type_req.start, pdu->find_by_type_req.end) ||
		    (pdu->find_by_type_req.value_len && !pdu->find_by_type_req.value))
			return -EINVAL;
		err = writer_le16(w, pdu->find_by_type_req.start);
		if (!err)
			err = writer_le16(w, pdu->find_by_type_req.end);
		if (!err)
			err = writer_le16(w, pdu->find_by_type_req.type);
		if (!err)
			err = writer_bytes(w, pdu->find_by_type_req.value,
					   pdu->find_by_type_req.value_len);
		return err;
	case ATT_OP_FIND_BY_TYPE_RSP:
		if (!pdu->value.value || check_handles_list(pdu->value.value, pdu->value.value_len) < 0)
			return -EINVAL;
		return writer_bytes(w, pdu->value.value, pdu->value.value_len);
	case ATT_OP_READ_BY_TYPE_REQ:
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
		if (!range_valid(pdu->read_by_type_req.start, pdu->read_by_type_req.end))
			return -EINVAL;
		err = writer_le16(w, pdu->read_by_type_req.start);
		if (!err)
			err = writer_le16(w, pdu->read_by_type_req.end);
		if (!err)
			err = writer_uuid(w, &pdu->read_by_type_req.type);
		return err;
	case ATT_OP_READ_BY_TYPE_RSP:
	case ATT_OP_READ_BY_GROUP_TYPE_RSP: {
		uint8_t el = pdu->read_by_type_rsp.entry_len;
		const uint8_t *list = pdu->read_by_type_rsp.list;
		size_t list_len = pdu->read_by_type_rsp.list_len;

		if (!list)
			return -EINVAL;
		if (pdu->opcode == ATT_OP_READ_BY_TYPE_RSP ? check_type_list(el, list, list_len) < 0 :
							     check_group_list(el, list, list_len) < 0)
			return -EINVAL;
		err = writer_u8(w, el);
		if (!err)
			err = writer_bytes(w, list, list_len);
		return err;
	}
	case ATT_OP_READ_REQ:
		if (pdu->read_req.handle == 0)
			return -EINVAL;
		return writer_le16(w, pdu->read_req.handle);
	case ATT_OP_READ_BLOB_REQ:
		if (pdu->read_blob_req.handle == 0)
			return -EINVAL;
		err = writer_le16(w, pdu->read_blob_req.handle);
		if (!err)
			err = writer_le16(w, pdu->read_blob_req.offset);
		return err;
	case ATT_OP_READ_RSP:
	case ATT_OP_READ_BLOB_RSP:
		if (pdu->value.value_len && !pdu->value.value)
			return -EINVAL;
		return writer_bytes(w, pdu->value.value, pdu->value.value_len);
	case ATT_OP_WRITE_REQ:
	case ATT_OP_WRITE_CMD:
	case ATT_OP_HANDLE_VALUE_NTF:
	case ATT_OP_HANDLE_VALUE_IND:
		if (pdu->handle_value.handle == 0 ||
		    (pdu->handle_value.value_len && !pdu->handle_value.value))
			return -EINVAL;
		err = writer_le16(w, pdu->handle_value.handle);
		if (!err)
			err = writer_bytes(w, pdu->handle_value.value, pdu->handle_value.value_len);
		return err;
	case ATT_OP_WRITE_RSP:
	case ATT_OP_HANDLE_VALUE_CFM:
		return 0;
	default:
		return -EINVAL;
	}
}

int att_pdu_encode(const struct att_pdu *pdu, uint8_t *buf, size_t cap, size_t *len)
{
	/* Build in scratch so a failure leaves buf untouched, and never exceed ATT's limit. */
	uint8_t scratch[ATT_MAX_MTU];
	struct byte_writer w;
	int err;

	if (!pdu || !buf || !len)
		return -EINVAL;
	writer_init(&w, scratch, cap < sizeof(scratch) ? cap : sizeof(scratch));
	err = writer_u8(&w, pdu->opcode);
	if (!err)
		err = encode_body(pdu, &w);
	if (err)
		return err;
	memcpy(buf, scratch, w.pos);
	*len = w.pos;
	return 0;
}

/* --- opcode facts ------------------------------------------------------------ */

uint8_t att_response_for(uint8_t req_opcode)
{
	switch (req_opcode) {
	case ATT_OP_MTU_REQ:
	case ATT_OP_FIND_INFO_REQ:
	case ATT_OP_FIND_BY_TYPE_REQ:
	case ATT_OP_READ_BY_TYPE_REQ:
	case ATT_OP_READ_REQ:
	case ATT_OP_READ_BLOB_REQ:
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
	case ATT_OP_WRITE_REQ:
		/* Every request's response opcode is the request's plus one. */
		return (uint8_t)(req_opcode + 1);
	case ATT_OP_HANDLE_VALUE_IND:
		return ATT_OP_HANDLE_VALUE_CFM;
	default:
		return 0;
	}
}

bool att_opcode_is_request(uint8_t opcode)
{
	return att_response_for(opcode) != 0;
}

const char *att_opcode_name(uint8_t opcode)
{
	switch (opcode) {
	case ATT_OP_ERROR_RSP: return "Error Response";
	case ATT_OP_MTU_REQ: return "Exchange MTU Request";
	case ATT_OP_MTU_RSP: return "Exchange MTU Response";
	case ATT_OP_FIND_INFO_REQ: return "Find Information Request";
	case ATT_OP_FIND_INFO_RSP: return "Find Information Response";
	case ATT_OP_FIND_BY_TYPE_REQ: return "Find By Type Value Request";
	case ATT_OP_FIND_BY_TYPE_RSP: return "Find By Type Value Response";
	case ATT_OP_READ_BY_TYPE_REQ: return "Read By Type Request";
	case ATT_OP_READ_BY_TYPE_RSP: return "Read By Type Response";
	case ATT_OP_READ_REQ: return "Read Request";
	case ATT_OP_READ_RSP: return "Read Response";
	case ATT_OP_READ_BLOB_REQ: return "Read Blob Request";
	case ATT_OP_READ_BLOB_RSP: return "Read Blob Response";
	case ATT_OP_READ_BY_GROUP_TYPE_REQ: return "Read By Group Type Request";
	case ATT_OP_READ_BY_GROUP_TYPE_RSP: return "Read By Group Type Response";
	case ATT_OP_WRITE_REQ: return "Write Request";
	case ATT_OP_WRITE_RSP: return "Write Response";
	case ATT_OP_HANDLE_VALUE_NTF: return "Handle Value Notification";
	case ATT_OP_HANDLE_VALUE_IND: return "Handle Value Indication";
	case ATT_OP_HANDLE_VALUE_CFM: return "Handle Value Confirmation";
	case ATT_OP_WRITE_CMD: return "Write Command";
	default: return "unknown";
	}
}

const char *att_error_name(uint8_t error)
{
	switch (error) {
	case ATT_ERR_INVALID_HANDLE: return "Invalid Handle";
	case ATT_ERR_READ_NOT_PERMITTED: return "Read Not Permitted";
	case ATT_ERR_WRITE_NOT_PERMITTED: return "Write Not Permitted";
	case ATT_ERR_INVALID_PDU: return "Invalid PDU";
	case ATT_ERR_INSUFFICIENT_AUTHENTICATION: return "Insufficient Authentication";
	case ATT_ERR_REQUEST_NOT_SUPPORTED: return "Request Not Supported";
	case ATT_ERR_INVALID_OFFSET: return "Invalid Offset";
	case ATT_ERR_INSUFFICIENT_AUTHORIZATION: return "Insufficient Authorization";
	case ATT_ERR_ATTRIBUTE_NOT_FOUND: return "Attribute Not Found";
	case ATT_ERR_ATTRIBUTE_NOT_LONG: return "Attribute Not Long";
	case ATT_ERR_INVALID_ATTRIBUTE_VALUE_LENGTH: return "Invalid Attribute Value Length";
	case ATT_ERR_UNLIKELY: return "Unlikely Error";
	case ATT_ERR_INSUFFICIENT_ENCRYPTION: return "Insufficient Encryption";
	case ATT_ERR_UNSUPPORTED_GROUP_TYPE: return "Unsupported Group Type";
	default: return "unknown";
	}
}

/* --- iterators -------------------------------------------------------------- */

/*
 * The lists were validated by att_pdu_decode; the iterators still check
 * bounds so a hand-built or reused struct att_pdu cannot make them overrun.
 *
 * One step over a list of entries of el bytes (at least min_el): 1 with
 * *entry at the entry and *pos advanced, 0 at the end, -EBADMSG for a torn
 * list (*pos untouched).
 */
static int list_next(const uint8_t *list, size_t list_len, size_t el, size_t min_el,
		     size_t *pos, const uint8_t **entry)
{
	size_t off = *pos;

	if (el < min_el)
		return -EBADMSG;
	if (off >= list_len)
		return 0;
	if (list_len - off < el)
		return -EBADMSG;
	*entry = list + off;
	*pos = off + el;
	return 1;
}

int att_find_info_next(const struct att_pdu *pdu, size_t *pos, struct att_info_entry *entry)
{
	const uint8_t *e;
	size_t el;
	int r;

	if (!pdu || !pos || pdu->opcode != ATT_OP_FIND_INFO_RSP)
		return -EINVAL;
	el = pdu->find_info_rsp.format == 1 ? 4 : pdu->find_info_rsp.format == 2 ? 18 : 0;
	r = list_next(pdu->find_info_rsp.list, pdu->find_info_rsp.list_len, el, 4, pos, &e);
	if (r <= 0)
		return r;
	entry->handle = get_le16(e);
	att_uuid_from_wire(e + 2, el - 2, &entry->type);
	return 1;
}

int att_read_by_type_next(const struct att_pdu *pdu, size_t *pos, struct att_type_entry *entry)
{
	const uint8_t *e;
	size_t el;
	int r;

	if (!pdu || !pos || pdu->opcode != ATT_OP_READ_BY_TYPE_RSP)
		return -EINVAL;
	el = pdu->read_by_type_rsp.entry_len;
	r = list_next(pdu->read_by_type_rsp.list, pdu->read_by_type_rsp.list_len, el, 2, pos, &e);
	if (r <= 0)
		return r;
	entry->handle = get_le16(e);
	entry->value = e + 2;
	entry->value_len = el - 2;
	return 1;
}

int att_read_by_group_next(const struct att_pdu *pdu, size_t *pos, struct att_group_entry *entry)
{
	const uint8_t *e;
	size_t el;
	int r;

	if (!pdu || !pos || pdu->opcode != ATT_OP_READ_BY_GROUP_TYPE_RSP)
		return -EINVAL;
	el = pdu->read_by_type_rsp.entry_len;
	r = list_next(pdu->read_by_type_rsp.list, pdu->read_by_type_rsp.list_len, el, 4, pos, &e);
	if (r <= 0)
		return r;
	entry->start = get_le16(e);
	entry->end = get_le16(e + 2);
	entry->value = e + 4;
	entry->value_len = el - 4;
	return 1;
}

int att_find_by_type_next(const struct att_pdu *pdu, size_t *pos, struct att_handle_range *entry)
{
	size_t off;

	if (!pdu || !pos || pdu->opcode != ATT_OP_FIND_BY_TYPE_RSP)
		return -EINVAL;
	off = *pos;
	if (off >= pdu->value.value_len)
		return 0;
	if (pdu->value.value_len - off < 4)
		return -EBADMSG;
	entry->start = get_le16(pdu->value.value + off);
	entry->end = get_le16(pdu->value.value + off + 2);
	*pos = off + 4;
	return 1;
}

int att_char_decl_decode(const uint8_t *value, size_t len, struct att_char_decl *out)
{
	struct att_char_decl d;

	if (!value || (len != 5 && len != 19))
		return -EBADMSG;
	d.properties = value[0];
	d.value_handle = get_le16(value + 1);
	if (d.value_handle == 0)
		return -EBADMSG;
	att_uuid_from_wire(value + 3, len - 3, &d.uuid);
	*out = d;
	return 0;
}

int att_char_decl_encode(const struct att_char_decl *decl, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t scratch[19];
	struct byte_writer w;

	if (!decl || decl->value_handle == 0)
		return -EINVAL;
	writer_init(&w, scratch, sizeof(scratch));
	writer_u8(&w, decl->properties);
	writer_le16(&w, decl->value_handle);
	writer_uuid(&w, &decl->uuid);
	if (w.pos > cap)
		return -ENOSPC;
	memcpy(buf, scratch, w.pos);
	*len = w.pos;
	return 0;
}

/* --- list builder ------------------------------------------------------------ */

static size_t list_header_len(uint8_t rsp_opcode)
{
	switch (rsp_opcode) {
	case ATT_OP_FIND_INFO_RSP:
	case ATT_OP_READ_BY_TYPE_RSP:
	case ATT_OP_READ_BY_GROUP_TYPE_RSP:
		return 2; /* opcode + format or length byte */
	case ATT_OP_FIND_BY_TYPE_RSP:
		return 1;
	default:
		return 0;
	}
}

void att_list_init(struct att_list_builder *b, uint16_t mtu, uint8_t rsp_opcode)
{
	size_t hdr = list_header_len(rsp_opcode);

	if (mtu < ATT_DEFAULT_MTU)
		mtu = ATT_DEFAULT_MTU;
	if (mtu > ATT_MAX_MTU)
		mtu = ATT_MAX_MTU;
	b->len = 0;
	b->entry_len = 0;
	/* An opcode that is not a list response gets no room: every add then fails. */
	b->cap = hdr ? mtu - hdr : 0;
}

int att_list_add(struct att_list_builder *b, const uint8_t *entry, size_t entry_len)
{
	/* The length byte of Read By (Group) Type responses limits an entry to 255. */
	if (!b || !entry || entry_len == 0 || entry_len > 255)
		return -EINVAL;
	if (b->entry_len && entry_len != b->entry_len)
		return -E2BIG;
	if (b->len > b->cap || b->cap - b->len < entry_len)
		return -ENOSPC;
	memcpy(b->buf + b->len, entry, entry_len);
	b->len += entry_len;
	b->entry_len = entry_len;
	return 0;
}

size_t att_read_by_type_max_value(uint16_t mtu)
{
	if (mtu < ATT_DEFAULT_MTU)
		mtu = ATT_DEFAULT_MTU;
	/* Vol 3 Part F 3.4.4.2: opcode, length, handle; length byte caps at 255 - 2. */
	return mtu - 4u < 253u ? mtu - 4u : 253u;
}

size_t att_read_by_group_max_value(uint16_t mtu)
{
	if (mtu < ATT_DEFAULT_MTU)
		mtu = ATT_DEFAULT_MTU;
	/* Vol 3 Part F 3.4.4.10: opcode, length, two handles; length byte caps at 255 - 4. */
	return mtu - 6u < 251u ? mtu - 6u : 251u;
}

size_t att_notification_max_value(uint16_t mtu)
{
	if (mtu < ATT_DEFAULT_MTU)
		mtu = ATT_DEFAULT_MTU;
	if (mtu > ATT_MAX_MTU)
		mtu = ATT_MAX_MTU;
	return mtu - 3u;
}
