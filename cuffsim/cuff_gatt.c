/*
 * cuff_gatt.c - attribute database and ATT server of a simulated cuff.
 *
 * The database is a flat array sorted by handle, built once; handles are
 * consecutive except for filler gaps (--handle-shift), so lookups are a
 * linear or binary scan over a few dozen entries: no cleverness needed.
 */
#include "cuff_gatt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "att.h"
#include "bytes.h"

#define PERM_READ 0x01
#define PERM_WRITE 0x02
#define PERM_WRITE_CMD 0x04

#define IND_QUEUE_LEN 16
#define IND_VALUE_MAX 8
/* Longest constant value: the Device Information strings (longer than one
 * Read Response at MTU 23, so clients must use Read Blob). */
#define STATIC_VALUE_MAX 48
#define FILLER_SERVICE_UUID 0xFFF0
/* 35 profile attributes plus at most one per filler handle. */
#define DB_ATTRS(shift) (35u + (shift))

enum attr_kind {
	ATTR_STATIC,  /* value held in the attribute */
	ATTR_CCCD,    /* per-connection, of characteristic `ch` */
	ATTR_DYNAMIC, /* value of characteristic `ch`, through ops */
};

struct attr {
	uint16_t handle;
	uint16_t group_end; /* service declarations only */
	struct att_uuid type;
	uint8_t perm;
	uint8_t kind;
	uint8_t ch;         /* enum cuff_gatt_char for CCCD and DYNAMIC */
	uint8_t props;      /* of the characteristic, for CCCD checks */
	uint8_t len;
	uint8_t value[STATIC_VALUE_MAX];
};

struct indication {
	uint8_t ch; /* enum cuff_gatt_char: CONTROL_POINT or SERVICE_CHANGED */
	uint8_t value[IND_VALUE_MAX];
	size_t len;
};

struct cuff_gatt {
	struct cuff_gatt_ops ops;
	void *user_data;
	struct attr *attrs;
	size_t n_attrs;
	size_t cap_attrs;
	uint16_t next_handle;
	uint16_t value_handle[CUFF_CHAR_COUNT];
	uint8_t props[CUFF_CHAR_COUNT];
	uint16_t server_mtu;
	/* what the database is built from, for rebuilding it with another shift */
	char device_name[STATIC_VALUE_MAX + 1];
	char serial[STATIC_VALUE_MAX + 1];
	unsigned handle_shift;
	uint16_t shift_start; /* first handle the shift moves (the filler / BFR service) */

	/* per connection */
	uint16_t mtu;
	uint16_t cccd[CUFF_CHAR_COUNT];
	bool ind_outstanding;
	struct indication ind_queue[IND_QUEUE_LEN];
	size_t ind_head;
	size_t ind_count;

	struct cuff_gatt_stats stats;
};

/* --- database construction ---------------------------------------------- */

static struct attr *add_attr(struct cuff_gatt *g, const struct att_uuid *type, uint8_t perm)
{
	struct attr *a;

	/* Capacity is computed exactly in cuff_gatt_new(); overflowing it is a bug. */
	if (g->n_attrs >= g->cap_attrs)
		abort();
	a = &g->attrs[g->n_attrs++];
	memset(a, 0, sizeof(*a));
	a->handle = g->next_handle++;
	a->type = *type;
	a->perm = perm;
	a->kind = ATTR_STATIC;
	return a;
}

static void set_static(struct attr *a, const void *value, size_t len)
{
	if (len > STATIC_VALUE_MAX)
		len = STATIC_VALUE_MAX;
	memcpy(a->value, value, len);
	a->len = (uint8_t)len;
}

static void set_uuid_value(struct attr *a, const struct att_uuid *uuid)
{
	uint16_t u16;

	if (att_uuid_is16(uuid, &u16)) {
		uint8_t le[2];

		put_le16(le, u16);
		set_static(a, le, 2);
	} else {
		set_static(a, uuid->le, 16);
	}
}

static struct attr *add_service(struct cuff_gatt *g, const struct att_uuid *uuid)
{
	struct att_uuid t;
	struct attr *a;

	att_uuid_from16(ATT_UUID_PRIMARY_SERVICE, &t);
	a = add_attr(g, &t, PERM_READ);
	set_uuid_value(a, uuid);
	return a;
}

static void end_service(struct cuff_gatt *g, size_t svc_index)
{
	g->attrs[svc_index].group_end = (uint16_t)(g->next_handle - 1);
}

/* Declaration + value; returns the value attribute. */
static struct attr *add_char(struct cuff_gatt *g, uint8_t props, const struct att_uuid *uuid,
			     uint8_t perm)
{
	struct att_char_decl decl = { .properties = props, .uuid = *uuid };
	struct att_uuid t;
	struct attr *d, *v;
	size_t len = 0;

	att_uuid_from16(ATT_UUID_CHARACTERISTIC, &t);
	d = add_attr(g, &t, PERM_READ);
	decl.value_handle = g->next_handle;
	att_char_decl_encode(&decl, d->value, sizeof(d->value), &len);
	d->len = (uint8_t)len;
	v = add_attr(g, uuid, perm);
	v->props = props;
	return v;
}

static struct attr *add_dynamic_char(struct cuff_gatt *g, uint8_t props,
				     const struct att_uuid *uuid, uint8_t perm,
				     enum cuff_gatt_char ch)
{
	struct attr *v = add_char(g, props, uuid, perm);

	v->kind = ATTR_DYNAMIC;
	v->ch = (uint8_t)ch;
	g->value_handle[ch] = v->handle;
	g->props[ch] = props;
	return v;
}

static void add_cccd(struct cuff_gatt *g, enum cuff_gatt_char ch)
{
	struct att_uuid t;
	struct attr *a;

	att_uuid_from16(ATT_UUID_CCCD, &t);
	a = add_attr(g, &t, PERM_READ | PERM_WRITE);
	a->kind = ATTR_CCCD;
	a->ch = (uint8_t)ch;
	a->props = g->props[ch];
}

static void add_user_desc(struct cuff_gatt *g, const char *text)
{
	struct att_uuid t;
	struct attr *a;

	att_uuid_from16(ATT_UUID_CHAR_USER_DESC, &t);
	a = add_attr(g, &t, PERM_READ);
	set_static(a, text, strlen(text));
}

static void add_string_char(struct cuff_gatt *g, uint16_t uuid16, const char *text)
{
	struct att_uuid u;
	struct attr *v;

	att_uuid_from16(uuid16, &u);
	v = add_char(g, ATT_PROP_READ, &u, PERM_READ);
	set_static(v, text, strlen(text));
}

/*
 * Filler: a vendor service with characteristics that occupies exactly
 * `shift` handles, so a client that hard-codes handles breaks.
 */
static void add_filler(struct cuff_gatt *g, unsigned shift)
{
	struct att_uuid u;
	size_t svc;
	unsigned rest, pairs;

	if (shift == 0)
		return;
	att_uuid_from16(FILLER_SERVICE_UUID, &u);
	svc = g->n_attrs;
	add_service(g, &u);
	rest = shift - 1;
	pairs = rest / 2;
	for (unsigned i = 0; i < pairs; i++) {
		uint8_t v = (uint8_t)i;
		struct attr *a;

		att_uuid_from16((uint16_t)(FILLER_SERVICE_UUID + 1 + i % 14), &u);
		a = add_char(g, ATT_PROP_READ, &u, PERM_READ);
		set_static(a, &v, 1);
	}
	if (rest % 2) {
		if (pairs)
			add_user_desc(g, "filler");
		else
			g->next_handle++; /* a hole in the handle space is legal too */
	}
	end_service(g, svc);
}

static void build_db(struct cuff_gatt *g)
{
	struct att_uuid u;
	size_t svc;
	uint8_t sc_range[4];

	g->next_handle = 1;

	att_uuid_from16(ATT_UUID_GAP_SERVICE, &u);
	svc = g->n_attrs;
	add_service(g, &u);
	add_string_char(g, ATT_UUID_DEVICE_NAME, g->device_name);
	end_service(g, svc);

	att_uuid_from16(ATT_UUID_GATT_SERVICE, &u);
	svc = g->n_attrs;
	add_service(g, &u);
	att_uuid_from16(ATT_UUID_SERVICE_CHANGED, &u);
	{
		struct attr *v = add_dynamic_char(g, ATT_PROP_INDICATE, &u, 0,
						  CUFF_CHAR_SERVICE_CHANGED);

		v->kind = ATTR_STATIC;
		put_le16(sc_range, 0x0001);
		put_le16(sc_range + 2, 0xFFFF);
		set_static(v, sc_range, sizeof(sc_range));
	}
	add_cccd(g, CUFF_CHAR_SERVICE_CHANGED);
	end_service(g, svc);

	att_uuid_from16(ATT_UUID_DEVICE_INFO_SERVICE, &u);
	svc = g->n_attrs;
	add_service(g, &u);
	add_string_char(g, ATT_UUID_MANUFACTURER_NAME, CUFF_GATT_MANUFACTURER);
	add_string_char(g, ATT_UUID_MODEL_NUMBER, "cuffsim-1");
	add_string_char(g, ATT_UUID_SERIAL_NUMBER, g->serial);
	add_string_char(g, ATT_UUID_FIRMWARE_REV, BFR_VERSION);
	end_service(g, svc);

	att_uuid_from16(ATT_UUID_BATTERY_SERVICE, &u);
	svc = g->n_attrs;
	add_service(g, &u);
	att_uuid_from16(ATT_UUID_BATTERY_LEVEL, &u);
	add_dynamic_char(g, ATT_PROP_READ | ATT_PROP_NOTIFY, &u, PERM_READ, CUFF_CHAR_BATTERY);
	add_cccd(g, CUFF_CHAR_BATTERY);
	end_service(g, svc);

	g->shift_start = g->next_handle;
	add_filler(g, g->handle_shift);

	bfr_uuid(BFR_UUID_SERVICE, &u);
	svc = g->n_attrs;
	add_service(g, &u);
	bfr_uuid(BFR_UUID_PRESSURE, &u);
	add_dynamic_char(g, ATT_PROP_NOTIFY, &u, 0, CUFF_CHAR_PRESSURE);
	add_cccd(g, CUFF_CHAR_PRESSURE);
	/* A second descriptor forces clients through Find Information. */
	add_user_desc(g, "Cuff Pressure");
	bfr_uuid(BFR_UUID_CONTROL_POINT, &u);
	add_dynamic_char(g, ATT_PROP_WRITE | ATT_PROP_INDICATE, &u, PERM_WRITE,
			 CUFF_CHAR_CONTROL_POINT);
	add_cccd(g, CUFF_CHAR_CONTROL_POINT);
	bfr_uuid(BFR_UUID_STATUS, &u);
	add_dynamic_char(g, ATT_PROP_READ | ATT_PROP_NOTIFY, &u, PERM_READ, CUFF_CHAR_STATUS);
	add_cccd(g, CUFF_CHAR_STATUS);
	bfr_uuid(BFR_UUID_SUPERVISION, &u);
	add_dynamic_char(g, ATT_PROP_WRITE_WITHOUT_RESP, &u, PERM_WRITE_CMD,
			 CUFF_CHAR_SUPERVISION);
	bfr_uuid(BFR_UUID_FEATURES, &u);
	add_dynamic_char(g, ATT_PROP_READ, &u, PERM_READ, CUFF_CHAR_FEATURES);
	end_service(g, svc);
}

int cuff_gatt_new(const struct cuff_gatt_config *cfg, const struct cuff_gatt_ops *ops,
		  void *user_data, struct cuff_gatt **out)
{
	struct cuff_gatt *g = NULL;
	int err = -EINVAL;

	if (!cfg || !ops || !ops->send || !ops->read || !ops->write || !out ||
	    cfg->handle_shift > CUFF_GATT_MAX_SHIFT || !cfg->device_name || !cfg->serial ||
	    strlen(cfg->device_name) > STATIC_VALUE_MAX || strlen(cfg->serial) > STATIC_VALUE_MAX ||
	    cfg->server_mtu < ATT_DEFAULT_MTU || cfg->server_mtu > ATT_MAX_MTU)
		goto fail;
	err = -ENOMEM;
	g = calloc(1, sizeof(*g));
	if (!g)
		goto fail;
	g->cap_attrs = DB_ATTRS(cfg->handle_shift);
	g->attrs = calloc(g->cap_attrs, sizeof(*g->attrs));
	if (!g->attrs)
		goto fail;
	g->ops = *ops;
	g->user_data = user_data;
	g->server_mtu = cfg->server_mtu;
	strcpy(g->device_name, cfg->device_name);
	strcpy(g->serial, cfg->serial);
	g->handle_shift = cfg->handle_shift;
	build_db(g);
	cuff_gatt_reset(g);
	*out = g;
	return 0;
fail:
	if (g)
		free(g->attrs);
	free(g);
	return err;
}

void cuff_gatt_free(struct cuff_gatt *g)
{
	if (!g)
		return;
	free(g->attrs);
	free(g);
}

void cuff_gatt_reset(struct cuff_gatt *g)
{
	g->mtu = ATT_DEFAULT_MTU;
	memset(g->cccd, 0, sizeof(g->cccd));
	g->ind_outstanding = false;
	g->ind_head = 0;
	g->ind_count = 0;
}

/* --- sending ------------------------------------------------------------ */

static int send_pdu(struct cuff_gatt *g, const struct att_pdu *pdu)
{
	uint8_t buf[ATT_MAX_MTU];
	size_t len = 0;
	int err;

	err = att_pdu_encode(pdu, buf, g->mtu, &len);
	if (err == 0)
		err = g->ops.send(buf, len, g->user_data);
	if (err < 0)
		g->stats.send_failures++;
	return err;
}

static int send_error(struct cuff_gatt *g, uint8_t req_opcode, uint16_t handle, uint8_t error)
{
	struct att_pdu pdu = { .opcode = ATT_OP_ERROR_RSP };

	pdu.error_rsp.req_opcode = req_opcode;
	pdu.error_rsp.handle = handle;
	pdu.error_rsp.error = error;
	g->stats.error_responses++;
	return send_pdu(g, &pdu);
}

/* --- attribute access ------------------------------------------------------ */

static struct attr *find_attr(struct cuff_gatt *g, uint16_t handle)
{
	size_t lo = 0, hi = g->n_attrs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (g->attrs[mid].handle == handle)
			return &g->attrs[mid];
		if (g->attrs[mid].handle < handle)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Value of a readable attribute into buf; 0 or an ATT error code. */
static uint8_t read_value(struct cuff_gatt *g, const struct attr *a, uint8_t *buf, size_t cap,
			  size_t *len)
{
	size_t n = 0;

	if (!(a->perm & PERM_READ))
		return ATT_ERR_READ_NOT_PERMITTED;
	switch (a->kind) {
	case ATTR_CCCD:
		if (cap < 2)
			return ATT_ERR_UNLIKELY;
		put_le16(buf, g->cccd[a->ch]);
		*len = 2;
		return 0;
	case ATTR_DYNAMIC:
		if (g->ops.read((enum cuff_gatt_char)a->ch, buf, cap, &n, g->user_data) < 0)
			return ATT_ERR_UNLIKELY;
		*len = n;
		return 0;
	default:
		if (cap < a->len)
			return ATT_ERR_UNLIKELY;
		memcpy(buf, a->value, a->len);
		*len = a->len;
		return 0;
	}
}

/* --- request handlers -------------------------------------------------------- */

static int handle_mtu(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct att_pdu rsp = { .opcode = ATT_OP_MTU_RSP };
	uint16_t client = req->mtu.mtu < ATT_DEFAULT_MTU ? ATT_DEFAULT_MTU : req->mtu.mtu;
	int err;

	rsp.mtu.mtu = g->server_mtu;
	/* The response still travels at the old MTU; the new one applies after. */
	err = send_pdu(g, &rsp);
	g->mtu = client < g->server_mtu ? client : g->server_mtu;
	return err;
}

static int handle_read_by_group(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct att_list_builder b;
	struct att_pdu rsp = { .opcode = ATT_OP_READ_BY_GROUP_TYPE_RSP };
	uint16_t start = req->read_by_type_req.start, end = req->read_by_type_req.end;
	uint16_t type;
	size_t maxv = att_read_by_group_max_value(g->mtu);

	if (!att_uuid_is16(&req->read_by_type_req.type, &type) ||
	    (type != ATT_UUID_PRIMARY_SERVICE && type != ATT_UUID_SECONDARY_SERVICE))
		return send_error(g, req->opcode, start, ATT_ERR_UNSUPPORTED_GROUP_TYPE);
	att_list_init(&b, g->mtu, rsp.opcode);
	for (size_t i = 0; i < g->n_attrs; i++) {
		const struct attr *a = &g->attrs[i];
		uint8_t entry[4 + STATIC_VALUE_MAX];
		size_t vlen = a->len < maxv ? a->len : maxv;

		if (a->handle < start || a->handle > end ||
		    !att_uuid_equal(&a->type, &req->read_by_type_req.type))
			continue;
		put_le16(entry, a->handle);
		put_le16(entry + 2, a->group_end);
		memcpy(entry + 4, a->value, vlen);
		if (att_list_add(&b, entry, 4 + vlen) < 0)
			break;
	}
	if (b.len == 0)
		return send_error(g, req->opcode, start, ATT_ERR_ATTRIBUTE_NOT_FOUND);
	rsp.read_by_type_rsp.entry_len = (uint8_t)b.entry_len;
	rsp.read_by_type_rsp.list = b.buf;
	rsp.read_by_type_rsp.list_len = b.len;
	return send_pdu(g, &rsp);
}

static int handle_read_by_type(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct att_list_builder b;
	struct att_pdu rsp = { .opcode = ATT_OP_READ_BY_TYPE_RSP };
	uint16_t start = req->read_by_type_req.start, end = req->read_by_type_req.end;
	size_t maxv = att_read_by_type_max_value(g->mtu);

	att_list_init(&b, g->mtu, rsp.opcode);
	for (size_t i = 0; i < g->n_attrs; i++) {
		const struct attr *a = &g->attrs[i];
		uint8_t entry[2 + ATT_MAX_MTU];
		size_t vlen = 0;
		uint8_t err;

		if (a->handle < start || a->handle > end ||
		    !att_uuid_equal(&a->type, &req->read_by_type_req.type))
			continue;
		err = read_value(g, a, entry + 2, sizeof(entry) - 2, &vlen);
		if (err) {
			/* The first match decides the error; later ones end the list. */
			if (b.len == 0)
				return send_error(g, req->opcode, a->handle, err);
			break;
		}
		if (vlen > maxv)
			vlen = maxv;
		put_le16(entry, a->handle);
		if (att_list_add(&b, entry, 2 + vlen) < 0)
			break;
	}
	if (b.len == 0)
		return send_error(g, req->opcode, start, ATT_ERR_ATTRIBUTE_NOT_FOUND);
	rsp.read_by_type_rsp.entry_len = (uint8_t)b.entry_len;
	rsp.read_by_type_rsp.list = b.buf;
	rsp.read_by_type_rsp.list_len = b.len;
	return send_pdu(g, &rsp);
}

static int handle_find_info(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct att_list_builder b;
	struct att_pdu rsp = { .opcode = ATT_OP_FIND_INFO_RSP };
	uint16_t start = req->find_info_req.start, end = req->find_info_req.end;

	att_list_init(&b, g->mtu, rsp.opcode);
	for (size_t i = 0; i < g->n_attrs; i++) {
		const struct attr *a = &g->attrs[i];
		uint8_t entry[18];
		uint16_t u16;
		size_t len;

		if (a->handle < start || a->handle > end)
			continue;
		put_le16(entry, a->handle);
		if (att_uuid_is16(&a->type, &u16)) {
			put_le16(entry + 2, u16);
			len = 4;
		} else {
			memcpy(entry + 2, a->type.le, 16);
			len = 18;
		}
		if (att_list_add(&b, entry, len) < 0)
			break;
	}
	if (b.len == 0)
		return send_error(g, req->opcode, start, ATT_ERR_ATTRIBUTE_NOT_FOUND);
	rsp.find_info_rsp.format = b.entry_len == 4 ? 1 : 2;
	rsp.find_info_rsp.list = b.buf;
	rsp.find_info_rsp.list_len = b.len;
	return send_pdu(g, &rsp);
}

static int handle_find_by_type(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct att_list_builder b;
	struct att_pdu rsp = { .opcode = ATT_OP_FIND_BY_TYPE_RSP };
	uint16_t start = req->find_by_type_req.start, end = req->find_by_type_req.end;
	struct att_uuid type;

	att_uuid_from16(req->find_by_type_req.type, &type);
	att_list_init(&b, g->mtu, rsp.opcode);
	for (size_t i = 0; i < g->n_attrs; i++) {
		const struct attr *a = &g->attrs[i];
		uint8_t entry[4];

		if (a->handle < start || a->handle > end || !att_uuid_equal(&a->type, &type) ||
		    a->kind != ATTR_STATIC || a->len != req->find_by_type_req.value_len ||
		    memcmp(a->value, req->find_by_type_req.value, a->len) != 0)
			continue;
		put_le16(entry, a->handle);
		put_le16(entry + 2, a->group_end ? a->group_end : a->handle);
		if (att_list_add(&b, entry, sizeof(entry)) < 0)
			break;
	}
	if (b.len == 0)
		return send_error(g, req->opcode, start, ATT_ERR_ATTRIBUTE_NOT_FOUND);
	rsp.value.value = b.buf;
	rsp.value.value_len = b.len;
	return send_pdu(g, &rsp);
}

static int handle_read(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct att_pdu rsp = { .opcode = ATT_OP_READ_RSP };
	bool blob = req->opcode == ATT_OP_READ_BLOB_REQ;
	uint16_t handle = blob ? req->read_blob_req.handle : req->read_req.handle;
	uint16_t offset = blob ? req->read_blob_req.offset : 0;
	uint8_t buf[ATT_MAX_MTU];
	size_t len = 0, max = g->mtu - 1u;
	const struct attr *a = find_attr(g, handle);
	uint8_t err;

	if (!a)
		return send_error(g, req->opcode, handle, ATT_ERR_INVALID_HANDLE);
	err = read_value(g, a, buf, sizeof(buf), &len);
	if (err)
		return send_error(g, req->opcode, handle, err);
	if (offset > len)
		return send_error(g, req->opcode, handle, ATT_ERR_INVALID_OFFSET);
	if (blob)
		rsp.opcode = ATT_OP_READ_BLOB_RSP;
	rsp.value.value = buf + offset;
	rsp.value.value_len = len - offset < max ? len - offset : max;
	return send_pdu(g, &rsp);
}

static uint8_t write_cccd(struct cuff_gatt *g, struct attr *a, const uint8_t *v, size_t len)
{
	uint16_t bits, allowed = 0;

	if (len != 2)
		return ATT_ERR_INVALID_ATTRIBUTE_VALUE_LENGTH;
	bits = get_le16(v);
	if (a->props & ATT_PROP_NOTIFY)
		allowed |= ATT_CCCD_NOTIFY;
	if (a->props & ATT_PROP_INDICATE)
		allowed |= ATT_CCCD_INDICATE;
	/* Reserved bits, or a mode the characteristic does not have. */
	if (bits & ~allowed)
		return CUFF_GATT_ERR_CCCD_IMPROPER;
	g->cccd[a->ch] = bits;
	return 0;
}

static int handle_write_req(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct att_pdu rsp = { .opcode = ATT_OP_WRITE_RSP };
	uint16_t handle = req->handle_value.handle;
	const uint8_t *v = req->handle_value.value;
	size_t len = req->handle_value.value_len;
	struct attr *a = find_attr(g, handle);
	uint8_t err = 0;
	int ret;

	if (!a)
		return send_error(g, req->opcode, handle, ATT_ERR_INVALID_HANDLE);
	if (!(a->perm & PERM_WRITE))
		return send_error(g, req->opcode, handle, ATT_ERR_WRITE_NOT_PERMITTED);
	if (a->kind == ATTR_CCCD) {
		err = write_cccd(g, a, v, len);
	} else if (a->kind == ATTR_DYNAMIC && a->ch == CUFF_CHAR_CONTROL_POINT) {
		/* A result nobody can receive is a command nobody should send. */
		if (!(g->cccd[CUFF_CHAR_CONTROL_POINT] & ATT_CCCD_INDICATE))
			err = CUFF_GATT_ERR_CCCD_IMPROPER;
		else if (len == 0)
			err = ATT_ERR_INVALID_ATTRIBUTE_VALUE_LENGTH;
	} else {
		err = ATT_ERR_WRITE_NOT_PERMITTED;
	}
	if (err)
		return send_error(g, req->opcode, handle, err);
	ret = send_pdu(g, &rsp);
	if (a->kind == ATTR_DYNAMIC)
		g->ops.write((enum cuff_gatt_char)a->ch, v, len, g->user_data);
	return ret;
}

static void handle_write_cmd(struct cuff_gatt *g, const struct att_pdu *req)
{
	struct attr *a = find_attr(g, req->handle_value.handle);

	/* Commands get no response, whatever happens; a bad one is counted. */
	if (!a || !(a->perm & PERM_WRITE_CMD) || a->kind != ATTR_DYNAMIC ||
	    req->handle_value.value_len != BFR_SUPERVISION_WIRE_SIZE) {
		g->stats.malformed_pdus++;
		return;
	}
	g->ops.write((enum cuff_gatt_char)a->ch, req->handle_value.value,
		     req->handle_value.value_len, g->user_data);
}

static int send_indication(struct cuff_gatt *g, const struct indication *ind)
{
	struct att_pdu pdu = { .opcode = ATT_OP_HANDLE_VALUE_IND };
	int err;

	pdu.handle_value.handle = g->value_handle[ind->ch];
	pdu.handle_value.value = ind->value;
	pdu.handle_value.value_len = ind->len;
	err = send_pdu(g, &pdu);
	if (err == 0) {
		g->ind_outstanding = true;
		g->stats.indications++;
	}
	return err;
}

static int handle_confirmation(struct cuff_gatt *g)
{
	struct indication *next;

	if (!g->ind_outstanding) {
		g->stats.malformed_pdus++; /* a confirmation of nothing */
		return 0;
	}
	g->ind_outstanding = false;
	if (g->ind_count == 0)
		return 0;
	next = &g->ind_queue[g->ind_head];
	g->ind_head = (g->ind_head + 1) % IND_QUEUE_LEN;
	g->ind_count--;
	return send_indication(g, next);
}

/*
 * Sends an indication now, or queues it behind the one awaiting its
 * confirmation. 1 sent or queued, 0 the client has not enabled
 * indications on ch, -ENOBUFS queue full (counted), or the send error.
 */
static int indicate(struct cuff_gatt *g, enum cuff_gatt_char ch, const uint8_t *value,
		    size_t len)
{
	struct indication ind = { .ch = (uint8_t)ch, .len = len };
	int err;

	if (len > IND_VALUE_MAX)
		return -EINVAL;
	if (!(g->cccd[ch] & ATT_CCCD_INDICATE))
		return 0;
	memcpy(ind.value, value, len);
	if (!g->ind_outstanding) {
		err = send_indication(g, &ind);
		return err < 0 ? err : 1;
	}
	if (g->ind_count == IND_QUEUE_LEN) {
		g->stats.indications_dropped++;
		return -ENOBUFS;
	}
	g->ind_queue[(g->ind_head + g->ind_count) % IND_QUEUE_LEN] = ind;
	g->ind_count++;
	return 1;
}

/*
 * The codec calls a zero or inverted handle range malformed; ATT wants
 * Invalid Handle for those, so look before decoding.
 */
static bool bad_handle_range(const uint8_t *pdu, size_t len, uint16_t *handle)
{
	uint16_t start, end;

	switch (pdu[0]) {
	case ATT_OP_FIND_INFO_REQ:
		if (len != 5)
			return false;
		break;
	case ATT_OP_FIND_BY_TYPE_REQ:
		if (len < 7)
			return false;
		break;
	case ATT_OP_READ_BY_TYPE_REQ:
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
		if (len != 7 && len != 21)
			return false;
		break;
	case ATT_OP_READ_REQ:
	case ATT_OP_READ_BLOB_REQ:
	case ATT_OP_WRITE_REQ:
		if (len < 3 || (pdu[0] == ATT_OP_READ_REQ && len != 3) ||
		    (pdu[0] == ATT_OP_READ_BLOB_REQ && len != 5))
			return false;
		*handle = 0;
		return get_le16(pdu + 1) == 0;
	default:
		return false;
	}
	start = get_le16(pdu + 1);
	end = get_le16(pdu + 3);
	*handle = start;
	return start == 0 || start > end;
}

int cuff_gatt_receive(struct cuff_gatt *g, const uint8_t *buf, size_t len)
{
	struct att_pdu req;
	uint16_t handle = 0;
	int err;

	if (!buf || len == 0) {
		/* No opcode, so no request to answer: counted and ignored, as BlueZ does. */
		g->stats.malformed_pdus++;
		return 0;
	}
	if (buf[0] & 0x40) { /* command flag: never answered */
		if (buf[0] == ATT_OP_WRITE_CMD && att_pdu_decode_mtu(buf, len, g->mtu, &req) == 0)
			handle_write_cmd(g, &req);
		else
			g->stats.malformed_pdus++;
		return 0;
	}
	if (buf[0] == ATT_OP_HANDLE_VALUE_CFM) {
		if (att_pdu_decode(buf, len, &req) < 0) {
			g->stats.malformed_pdus++;
			return 0;
		}
		return handle_confirmation(g);
	}
	g->stats.att_requests++;
	if (bad_handle_range(buf, len, &handle))
		return send_error(g, buf[0], handle, ATT_ERR_INVALID_HANDLE);
	err = att_pdu_decode_mtu(buf, len, g->mtu, &req);
	if (err == -ENOTSUP)
		return send_error(g, buf[0], 0, ATT_ERR_REQUEST_NOT_SUPPORTED);
	if (err < 0) {
		g->stats.malformed_pdus++;
		return send_error(g, buf[0], 0, ATT_ERR_INVALID_PDU);
	}
	switch (req.opcode) {
	case ATT_OP_MTU_REQ:
		return handle_mtu(g, &req);
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
		return handle_read_by_group(g, &req);
	case ATT_OP_READ_BY_TYPE_REQ:
		return handle_read_by_type(g, &req);
	case ATT_OP_FIND_INFO_REQ:
		return handle_find_info(g, &req);
	case ATT_OP_FIND_BY_TYPE_REQ:
		return handle_find_by_type(g, &req);
	case ATT_OP_READ_REQ:
	case ATT_OP_READ_BLOB_REQ:
		return handle_read(g, &req);
	case ATT_OP_WRITE_REQ:
		return handle_write_req(g, &req);
	default:
		/* Responses and notifications sent to a server: not requests it serves. */
		return send_error(g, req.opcode, 0, ATT_ERR_REQUEST_NOT_SUPPORTED);
	}
}

/* --- server-initiated ---------------------------------------------------- */

size_t cuff_gatt_max_batch(const struct cuff_gatt *g)
{
	size_t n = (att_notification_max_value(g->mtu) - 1) / BFR_SAMPLE_WIRE_SIZE;

	return n < 1 ? 1 : n;
}

static int notify_value(struct cuff_gatt *g, enum cuff_gatt_char ch, const uint8_t *value,
			size_t len)
{
	struct att_pdu pdu = { .opcode = ATT_OP_HANDLE_VALUE_NTF };
	int err;

	pdu.handle_value.handle = g->value_handle[ch];
	pdu.handle_value.value = value;
	pdu.handle_value.value_len = len;
	err = send_pdu(g, &pdu);
	if (err < 0)
		return err;
	g->stats.notifications++;
	return 1;
}

int cuff_gatt_notify_pressure(struct cuff_gatt *g, const struct bfr_sample *s, size_t n)
{
	uint8_t value[ATT_MAX_MTU];
	size_t len = 0;
	int err;

	if (!(g->cccd[CUFF_CHAR_PRESSURE] & ATT_CCCD_NOTIFY))
		return 0;
	if (n == 0 || n > cuff_gatt_max_batch(g))
		return -EMSGSIZE;
	err = bfr_pressure_encode(s, n, value, att_notification_max_value(g->mtu), &len);
	if (err < 0)
		return err;
	return notify_value(g, CUFF_CHAR_PRESSURE, value, len);
}

int cuff_gatt_notify(struct cuff_gatt *g, enum cuff_gatt_char ch)
{
	uint8_t value[ATT_MAX_MTU];
	size_t len = 0;
	int err;

	if (ch != CUFF_CHAR_STATUS && ch != CUFF_CHAR_BATTERY)
		return -EINVAL;
	if (!(g->cccd[ch] & ATT_CCCD_NOTIFY))
		return 0;
	err = g->ops.read(ch, value, att_notification_max_value(g->mtu), &len, g->user_data);
	if (err < 0)
		return err;
	return notify_value(g, ch, value, len);
}

int cuff_gatt_indicate_cp(struct cuff_gatt *g, const struct bfr_cp_response *rsp)
{
	uint8_t value[IND_VALUE_MAX];
	size_t len = 0;
	int err;

	if (!(g->cccd[CUFF_CHAR_CONTROL_POINT] & ATT_CCCD_INDICATE))
		return 0;
	err = bfr_cp_response_encode(rsp, value, sizeof(value), &len);
	if (err < 0)
		return err;
	return indicate(g, CUFF_CHAR_CONTROL_POINT, value, len);
}

int cuff_gatt_change_database(struct cuff_gatt *g, unsigned handle_shift)
{
	struct attr *attrs, *old = g->attrs;
	uint8_t value[4];
	uint16_t start;

	if (handle_shift > CUFF_GATT_MAX_SHIFT)
		return -EINVAL;
	attrs = calloc(DB_ATTRS(handle_shift), sizeof(*attrs));
	if (!attrs)
		return -ENOMEM;
	/* Everything from the shift on may move: the old and the new place. */
	start = g->shift_start;
	g->attrs = attrs;
	g->n_attrs = 0;
	g->cap_attrs = DB_ATTRS(handle_shift);
	g->handle_shift = handle_shift;
	build_db(g);
	free(old);
	g->stats.database_changes++;
	put_le16(value, start);
	put_le16(value + 2, 0xFFFF);
	return indicate(g, CUFF_CHAR_SERVICE_CHANGED, value, sizeof(value));
}

unsigned cuff_gatt_handle_shift(const struct cuff_gatt *g)
{
	return g->handle_shift;
}

uint16_t cuff_gatt_mtu(const struct cuff_gatt *g)
{
	return g->mtu;
}

uint16_t cuff_gatt_value_handle(const struct cuff_gatt *g, enum cuff_gatt_char ch)
{
	return ch < CUFF_CHAR_COUNT ? g->value_handle[ch] : 0;
}

void cuff_gatt_get_stats(const struct cuff_gatt *g, struct cuff_gatt_stats *out)
{
	*out = g->stats;
}
