/*
 * att.h - Bluetooth ATT PDU codec (Core Spec v5.x, Vol 3 Part F) and UUIDs.
 *
 * Pure: no I/O, no allocation. Decoding is zero-copy (pointers into the
 * caller's buffer, valid as long as it is) and strict: a PDU that is
 * truncated, too long for its opcode, or carries an impossible field
 * (start handle 0, start > end, a list entry length that does not divide the
 * list) is rejected with -EBADMSG and *out is untouched. An opcode this codec
 * does not know yields -ENOTSUP so a server can answer "Request Not
 * Supported" and a client can count it.
 *
 * Both the gateway's ATT client and cuffsim's ATT server use this file.
 *
 * Rules beyond plain lengths: an Error Response with error code 0 is
 * malformed; list responses must be non-empty, a whole number of entries
 * and in strictly ascending handle order (Find By Type Value and Read By
 * Group Type ranges must not overlap), since discovery continues after the
 * last handle and a list going backwards would loop it. An MTU below 23 is
 * legal on the wire (the bearer uses 23 then), so the codec accepts it.
 * Whatever att_pdu_encode produces, att_pdu_decode accepts, and a decoded
 * PDU re-encodes to the same bytes (a 128-bit type UUID on the Base UUID
 * re-encodes in its 2-byte form). Encoding checks the same rules (-EINVAL)
 * and never produces more than ATT_MAX_MTU bytes (-ENOSPC).
 */
#ifndef BFR_ATT_H
#define BFR_ATT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ATT_DEFAULT_MTU 23
#define ATT_MAX_MTU 517
#define ATT_CID 4
#define ATT_TRANSACTION_TIMEOUT_MS 30000

enum att_opcode {
	ATT_OP_ERROR_RSP = 0x01,
	ATT_OP_MTU_REQ = 0x02,
	ATT_OP_MTU_RSP = 0x03,
	ATT_OP_FIND_INFO_REQ = 0x04,
	ATT_OP_FIND_INFO_RSP = 0x05,
	ATT_OP_FIND_BY_TYPE_REQ = 0x06,
	ATT_OP_FIND_BY_TYPE_RSP = 0x07,
	ATT_OP_READ_BY_TYPE_REQ = 0x08,
	ATT_OP_READ_BY_TYPE_RSP = 0x09,
	ATT_OP_READ_REQ = 0x0A,
	ATT_OP_READ_RSP = 0x0B,
	ATT_OP_READ_BLOB_REQ = 0x0C,
	ATT_OP_READ_BLOB_RSP = 0x0D,
	ATT_OP_READ_BY_GROUP_TYPE_REQ = 0x10,
	ATT_OP_READ_BY_GROUP_TYPE_RSP = 0x11,
	ATT_OP_WRITE_REQ = 0x12,
	ATT_OP_WRITE_RSP = 0x13,
	ATT_OP_HANDLE_VALUE_NTF = 0x1B,
	ATT_OP_HANDLE_VALUE_IND = 0x1D,
	ATT_OP_HANDLE_VALUE_CFM = 0x1E,
	ATT_OP_WRITE_CMD = 0x52,
};

enum att_error {
	ATT_ERR_INVALID_HANDLE = 0x01,
	ATT_ERR_READ_NOT_PERMITTED = 0x02,
	ATT_ERR_WRITE_NOT_PERMITTED = 0x03,
	ATT_ERR_INVALID_PDU = 0x04,
	ATT_ERR_INSUFFICIENT_AUTHENTICATION = 0x05,
	ATT_ERR_REQUEST_NOT_SUPPORTED = 0x06,
	ATT_ERR_INVALID_OFFSET = 0x07,
	ATT_ERR_INSUFFICIENT_AUTHORIZATION = 0x08,
	ATT_ERR_ATTRIBUTE_NOT_FOUND = 0x0A,
	ATT_ERR_ATTRIBUTE_NOT_LONG = 0x0B,
	ATT_ERR_INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D,
	ATT_ERR_UNLIKELY = 0x0E,
	ATT_ERR_INSUFFICIENT_ENCRYPTION = 0x0F,
	ATT_ERR_UNSUPPORTED_GROUP_TYPE = 0x10,
};

/* Well-known 16-bit UUIDs used by the profile and by discovery. */
#define ATT_UUID_PRIMARY_SERVICE 0x2800
#define ATT_UUID_SECONDARY_SERVICE 0x2801
#define ATT_UUID_INCLUDE 0x2802
#define ATT_UUID_CHARACTERISTIC 0x2803
#define ATT_UUID_CHAR_USER_DESC 0x2901
#define ATT_UUID_CCCD 0x2902
#define ATT_UUID_GAP_SERVICE 0x1800
#define ATT_UUID_GATT_SERVICE 0x1801
#define ATT_UUID_DEVICE_INFO_SERVICE 0x180A
#define ATT_UUID_BATTERY_SERVICE 0x180F
#define ATT_UUID_DEVICE_NAME 0x2A00
#define ATT_UUID_APPEARANCE 0x2A01
#define ATT_UUID_SERVICE_CHANGED 0x2A05
#define ATT_UUID_BATTERY_LEVEL 0x2A19
#define ATT_UUID_MODEL_NUMBER 0x2A24
#define ATT_UUID_SERIAL_NUMBER 0x2A25
#define ATT_UUID_FIRMWARE_REV 0x2A26
#define ATT_UUID_MANUFACTURER_NAME 0x2A29
#define ATT_UUID_SERVER_SUPPORTED_FEATURES 0x2B3A

/* Characteristic properties (Core Vol 3 Part G 3.3.1.1). */
#define ATT_PROP_READ 0x02
#define ATT_PROP_WRITE_WITHOUT_RESP 0x04
#define ATT_PROP_WRITE 0x08
#define ATT_PROP_NOTIFY 0x10
#define ATT_PROP_INDICATE 0x20

#define ATT_CCCD_NOTIFY 0x0001
#define ATT_CCCD_INDICATE 0x0002

/*
 * A UUID, always held in its 128-bit little-endian wire form; 16-bit UUIDs
 * are expanded over the Bluetooth Base UUID so comparison is memcmp.
 */
struct att_uuid {
	uint8_t le[16];
};

void att_uuid_from16(uint16_t u16, struct att_uuid *out);
/* Parses "7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5f" or "2a19"; 0 or -EINVAL. */
int att_uuid_parse(const char *text, struct att_uuid *out);
/* Writes the canonical lower-case 36-character form plus NUL (37 bytes). */
void att_uuid_format(const struct att_uuid *uuid, char out[37]);
bool att_uuid_equal(const struct att_uuid *a, const struct att_uuid *b);
/* True and *u16 set when uuid lies on the Bluetooth Base UUID. */
bool att_uuid_is16(const struct att_uuid *uuid, uint16_t *u16);
/* Wire form: 2 bytes when att_uuid_is16, else 16. Returns bytes written. */
size_t att_uuid_wire_len(const struct att_uuid *uuid);
/* Decodes a 2- or 16-byte wire UUID; -EBADMSG for any other length. */
int att_uuid_from_wire(const uint8_t *buf, size_t len, struct att_uuid *out);

/*
 * A decoded PDU. `opcode` selects the member. Variable parts (`value`,
 * `list`) point into the decoded buffer. For list responses (Find
 * Information, Read By Type, Read By Group Type) use the iterators below.
 */
struct att_pdu {
	uint8_t opcode;
	union {
		struct {
			uint8_t req_opcode;
			uint16_t handle;
			uint8_t error;
		} error_rsp;
		struct {
			uint16_t mtu;
		} mtu; /* MTU_REQ and MTU_RSP */
		struct {
			uint16_t start;
			uint16_t end;
		} find_info_req;
		struct {
			uint8_t format; /* 1: 16-bit UUIDs, 2: 128-bit UUIDs */
			const uint8_t *list;
			size_t list_len;
		} find_info_rsp;
		struct {
			uint16_t start;
			uint16_t end;
			uint16_t type; /* 16-bit attribute type */
			const uint8_t *value;
			size_t value_len;
		} find_by_type_req;
		struct {
			uint16_t start;
			uint16_t end;
			struct att_uuid type;
		} read_by_type_req; /* READ_BY_TYPE_REQ and READ_BY_GROUP_TYPE_REQ */
		struct {
			uint8_t entry_len; /* bytes per entry incl. handle(s) */
			const uint8_t *list;
			size_t list_len;
		} read_by_type_rsp; /* READ_BY_TYPE_RSP and READ_BY_GROUP_TYPE_RSP */
		struct {
			uint16_t handle;
		} read_req;
		struct {
			uint16_t handle;
			uint16_t offset;
		} read_blob_req;
		struct {
			uint16_t handle;
			const uint8_t *value;
			size_t value_len;
		} handle_value; /* WRITE_REQ, WRITE_CMD, HANDLE_VALUE_NTF, HANDLE_VALUE_IND */
		struct {
			const uint8_t *value;
			size_t value_len;
		} value; /* READ_RSP, READ_BLOB_RSP, FIND_BY_TYPE_RSP (raw list) */
	};
};

/*
 * Decodes one PDU of len bytes. 0, -EBADMSG (malformed), -ENOTSUP (opcode
 * unknown to this codec; *out->opcode is still not written). A PDU longer
 * than ATT_MAX_MTU is -EMSGSIZE.
 */
int att_pdu_decode(const uint8_t *buf, size_t len, struct att_pdu *out);
/* As att_pdu_decode, but -EMSGSIZE for a PDU longer than the bearer's MTU. */
int att_pdu_decode_mtu(const uint8_t *buf, size_t len, uint16_t mtu, struct att_pdu *out);

/*
 * Encodes pdu into buf (capacity cap, normally the bearer MTU) and stores
 * the length in *len. Responses with lists take their list bytes verbatim
 * from pdu (build them with struct att_list_builder). -ENOSPC when it does
 * not fit, -EINVAL for an opcode it cannot encode; *len untouched on failure.
 */
int att_pdu_encode(const struct att_pdu *pdu, uint8_t *buf, size_t cap, size_t *len);

/* True for opcodes that expect a response (requests) or a confirmation. */
bool att_opcode_is_request(uint8_t opcode);
/* The response opcode a request expects (0 for non-requests). */
uint8_t att_response_for(uint8_t req_opcode);
const char *att_opcode_name(uint8_t opcode);
const char *att_error_name(uint8_t error);

/* --- list iterators (client side) -------------------------------------- */

struct att_info_entry {
	uint16_t handle;
	struct att_uuid type;
};
/*
 * Iterators: start with *pos = 0; each returns 1 with *entry set and *pos
 * advanced, 0 at the end, -EINVAL when the PDU has another opcode, and
 * -EBADMSG (pos unchanged) if a hand-built PDU's list is torn; lists from
 * att_pdu_decode never are.
 *
 * Find Information response.
 */
int att_find_info_next(const struct att_pdu *pdu, size_t *pos, struct att_info_entry *entry);

struct att_type_entry {
	uint16_t handle;
	const uint8_t *value;
	size_t value_len;
};
int att_read_by_type_next(const struct att_pdu *pdu, size_t *pos, struct att_type_entry *entry);

struct att_group_entry {
	uint16_t start;
	uint16_t end;
	const uint8_t *value; /* e.g. the service UUID, 2 or 16 bytes */
	size_t value_len;
};
int att_read_by_group_next(const struct att_pdu *pdu, size_t *pos, struct att_group_entry *entry);

/* Find By Type Value response: found attribute handle .. group end handle. */
struct att_handle_range {
	uint16_t start;
	uint16_t end;
};
int att_find_by_type_next(const struct att_pdu *pdu, size_t *pos, struct att_handle_range *entry);

/* Characteristic declaration value: properties, value handle, UUID. */
struct att_char_decl {
	uint8_t properties;
	uint16_t value_handle;
	struct att_uuid uuid;
};
int att_char_decl_decode(const uint8_t *value, size_t len, struct att_char_decl *out);
/* 5 bytes for a 16-bit UUID, 19 for 128-bit; -EINVAL for value handle 0. */
int att_char_decl_encode(const struct att_char_decl *decl, uint8_t *buf, size_t cap, size_t *len);

/* --- list builder (server side) ---------------------------------------- */

/*
 * Builds the list part of a list response within one MTU. All entries of a
 * response must have the same length: att_list_add returns -E2BIG when the
 * entry differs in length from the first one (stop and send what you have),
 * -ENOSPC when it would not fit the MTU, -EINVAL for an empty entry or one
 * longer than 255 bytes. rsp_opcode is FIND_INFO_RSP, FIND_BY_TYPE_RSP,
 * READ_BY_TYPE_RSP or READ_BY_GROUP_TYPE_RSP (any other leaves no room);
 * mtu is clamped to 23..517. The builder does not truncate values: see
 * att_read_by_type_max_value. Entries are the wire entries: handle(s) then
 * value or UUID. Then: pdu.read_by_type_rsp = { b.entry_len, b.buf, b.len }
 * (Find Information: format = entry_len == 4 ? 1 : 2; Find By Type Value:
 * pdu.value = { b.buf, b.len }); an empty builder means answer with an
 * Error Response (Attribute Not Found) instead.
 */
struct att_list_builder {
	uint8_t buf[ATT_MAX_MTU];
	size_t len;
	size_t cap;        /* mtu minus the response header */
	size_t entry_len;  /* 0 until the first entry */
};
void att_list_init(struct att_list_builder *b, uint16_t mtu, uint8_t rsp_opcode);
int att_list_add(struct att_list_builder *b, const uint8_t *entry, size_t entry_len);

/*
 * Largest attribute value a server may put in one entry of a Read By Type
 * response, min(mtu - 4, 253), and of a Read By Group Type response,
 * min(mtu - 6, 251): a longer value is truncated to this (Vol 3 Part F
 * 3.4.4.2 / 3.4.4.10) before att_list_add; the client reads the rest with
 * Read Blob. And the largest notification/indication/write value, mtu - 3.
 * mtu below 23 counts as 23.
 */
size_t att_read_by_type_max_value(uint16_t mtu);
size_t att_read_by_group_max_value(uint16_t mtu);
size_t att_notification_max_value(uint16_t mtu);

#endif
