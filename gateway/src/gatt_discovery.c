/* gatt_discovery.c - see gatt_discovery.h */
#include "gatt_discovery.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuff_profile.h"

/* Bounds keep a hostile peer from growing our tables; real cuffs have ~6. */
#define MAX_SERVICES 32
#define MAX_CHARS 64

enum step {
	STEP_MTU,
	STEP_SERVER_FEATURES,
	STEP_SERVICES,
	STEP_CHARS,
	STEP_DESCRIPTORS,
	STEP_DEVICE_INFO,
};

struct service {
	uint16_t start, end;
	struct att_uuid uuid;
};

struct chr {
	uint16_t decl, value, end;
	uint8_t props;
	struct att_uuid uuid;
	int svc; /* index into services */
};

enum wanted_service { IN_BFR, IN_BATTERY, IN_GATT };

/* A characteristic discovery needs, where its handles go, and how strict. */
struct wanted {
	const char *name;
	enum wanted_service svc;
	uint16_t id;   /* enum bfr_uuid_id (IN_BFR) or a 16-bit SIG UUID */
	uint8_t props; /* every one of these is required */
	bool mandatory;
	size_t value_off; /* offsetof in struct gatt_cuff_handles, or SIZE_MAX */
	size_t cccd_off;  /* SIZE_MAX: no CCCD wanted */
};

#define H(field) offsetof(struct gatt_cuff_handles, field)
#define NONE SIZE_MAX

static const struct wanted wanted[] = {
	{ "Cuff Pressure", IN_BFR, BFR_UUID_PRESSURE, ATT_PROP_NOTIFY, true, H(pressure),
	  H(pressure_cccd) },
	{ "Cuff Control Point", IN_BFR, BFR_UUID_CONTROL_POINT, ATT_PROP_WRITE | ATT_PROP_INDICATE,
	  true, H(control_point), H(control_point_cccd) },
	{ "Cuff Status", IN_BFR, BFR_UUID_STATUS, ATT_PROP_READ | ATT_PROP_NOTIFY, true, H(status),
	  H(status_cccd) },
	{ "Cuff Supervision", IN_BFR, BFR_UUID_SUPERVISION, ATT_PROP_WRITE_WITHOUT_RESP, true,
	  H(supervision), NONE },
	{ "Cuff Features", IN_BFR, BFR_UUID_FEATURES, ATT_PROP_READ, true, H(features), NONE },
	{ "Battery Level", IN_BATTERY, ATT_UUID_BATTERY_LEVEL, ATT_PROP_NOTIFY, false,
	  H(battery_level), H(battery_cccd) },
	{ "Service Changed", IN_GATT, ATT_UUID_SERVICE_CHANGED, ATT_PROP_INDICATE, false,
	  H(service_changed), H(service_changed_cccd) },
};
#define N_WANTED (sizeof(wanted) / sizeof(wanted[0]))

static const struct {
	uint16_t uuid;
	size_t off;
} devinfo_chars[] = {
	{ ATT_UUID_MANUFACTURER_NAME, offsetof(struct gatt_device_info, manufacturer) },
	{ ATT_UUID_MODEL_NUMBER, offsetof(struct gatt_device_info, model) },
	{ ATT_UUID_SERIAL_NUMBER, offsetof(struct gatt_device_info, serial) },
	{ ATT_UUID_FIRMWARE_REV, offsetof(struct gatt_device_info, firmware) },
};
#define N_DEVINFO (sizeof(devinfo_chars) / sizeof(devinfo_chars[0]))

struct gatt_discovery {
	struct att_client *att;
	gatt_discovery_fn fn;
	void *user_data;
	unsigned req_id;
	enum step step;
	uint16_t next_start; /* where the next paged request starts */

	struct service services[MAX_SERVICES];
	size_t n_services;
	int scan[4]; /* services whose characteristics we read: BFR, Battery, DIS, GATT */
	size_t n_scan, scan_pos;

	struct chr chars[MAX_CHARS];
	size_t n_chars;
	int chr_of_wanted[N_WANTED]; /* -1: not found */
	size_t desc_pos;             /* index into wanted[] */
	size_t devinfo_pos;
	uint16_t devinfo_handle;     /* the string being read */
	size_t devinfo_len;          /* bytes of it so far */
	bool devinfo_blob;           /* reading on with Read Blob */

	struct gatt_cuff_handles h;
};

static void on_response(int err, const struct att_pdu *rsp, void *user_data);

static void finish(struct gatt_discovery *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Reports the outcome; d may be freed by the callback: touch nothing after. */
static void finish(struct gatt_discovery *d, int err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	gatt_discovery_fn fn = d->fn;

	d->fn = NULL;
	if (!fn)
		return;
	if (err == 0) {
		d->h.mtu = att_client_mtu(d->att);
		fn(0, NULL, &d->h, d->user_data);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(err, msg, NULL, d->user_data);
}

static const char *step_name(enum step s)
{
	switch (s) {
	case STEP_MTU:
		return "MTU exchange";
	case STEP_SERVER_FEATURES:
		return "Server Supported Features read";
	case STEP_SERVICES:
		return "primary service discovery";
	case STEP_CHARS:
		return "characteristic discovery";
	case STEP_DESCRIPTORS:
		return "descriptor discovery";
	case STEP_DEVICE_INFO:
		return "Device Information read";
	}
	return "discovery";
}

static int send_req(struct gatt_discovery *d, const struct att_pdu *pdu)
{
	return att_client_send(d->att, pdu, 0, on_response, d, NULL, &d->req_id);
}

static int send_read_by_type(struct gatt_discovery *d, uint8_t op, uint16_t start, uint16_t end,
			     uint16_t type)
{
	struct att_pdu pdu = { .opcode = op };

	pdu.read_by_type_req.start = start;
	pdu.read_by_type_req.end = end;
	att_uuid_from16(type, &pdu.read_by_type_req.type);
	return send_req(d, &pdu);
}

static bool uuid_is_bfr(const struct att_uuid *u, uint16_t id)
{
	struct att_uuid want;

	bfr_uuid((enum bfr_uuid_id)id, &want);
	return att_uuid_equal(u, &want);
}

static bool uuid_is16(const struct att_uuid *u, uint16_t id)
{
	uint16_t v;

	return att_uuid_is16(u, &v) && v == id;
}

static int find_service_16(const struct gatt_discovery *d, uint16_t id)
{
	for (size_t i = 0; i < d->n_services; i++)
		if (uuid_is16(&d->services[i].uuid, id))
			return (int)i;
	return -1;
}

static int find_bfr_service(const struct gatt_discovery *d)
{
	for (size_t i = 0; i < d->n_services; i++)
		if (uuid_is_bfr(&d->services[i].uuid, BFR_UUID_SERVICE))
			return (int)i;
	return -1;
}

static void next_step(struct gatt_discovery *d);

/* --- steps ------------------------------------------------------------------ */

static void request_chars(struct gatt_discovery *d)
{
	const struct service *s = &d->services[d->scan[d->scan_pos]];
	int r = send_read_by_type(d, ATT_OP_READ_BY_TYPE_REQ, d->next_start, s->end,
				  ATT_UUID_CHARACTERISTIC);

	if (r < 0)
		finish(d, r, "%s: cannot send request: %s", step_name(d->step), strerror(-r));
}

/* Moves to the next service to scan, or on to matching when all are done. */
static void chars_next_service(struct gatt_discovery *d)
{
	/* Each characteristic ends where the next declaration begins. */
	for (size_t i = 0; i < d->n_chars; i++) {
		const struct chr *c = &d->chars[i];

		if (c->svc != d->scan[d->scan_pos])
			continue;
		d->chars[i].end = d->services[c->svc].end;
		for (size_t j = 0; j < d->n_chars; j++)
			if (d->chars[j].svc == c->svc && d->chars[j].decl > c->decl &&
			    d->chars[j].decl - 1 < d->chars[i].end)
				d->chars[i].end = d->chars[j].decl - 1;
	}
	d->scan_pos++;
	if (d->scan_pos < d->n_scan) {
		d->next_start = d->services[d->scan[d->scan_pos]].start;
		request_chars(d);
		return;
	}
	next_step(d);
}

static void handle_chars(struct gatt_discovery *d, const struct att_pdu *rsp)
{
	int svc = d->scan[d->scan_pos];
	const struct service *s = &d->services[svc];
	struct att_type_entry e;
	size_t pos = 0;
	uint16_t last = 0;
	int r;

	while ((r = att_read_by_type_next(rsp, &pos, &e)) == 1) {
		struct att_char_decl decl;

		if (e.handle < d->next_start || e.handle > s->end || e.handle <= last ||
		    att_char_decl_decode(e.value, e.value_len, &decl) < 0 ||
		    decl.value_handle <= e.handle || decl.value_handle > s->end) {
			finish(d, -EBADMSG, "%s: malformed characteristic declaration at 0x%04x",
			       step_name(d->step), e.handle);
			return;
		}
		if (d->n_chars == MAX_CHARS) {
			finish(d, -EBADMSG, "%s: more than %d characteristics",
			       step_name(d->step), MAX_CHARS);
			return;
		}
		d->chars[d->n_chars++] = (struct chr){ .decl = e.handle,
						       .value = decl.value_handle,
						       .props = decl.properties,
						       .uuid = decl.uuid,
						       .svc = svc };
		last = e.handle;
	}
	if (r < 0 || last == 0) {
		finish(d, -EBADMSG, "%s: malformed Read By Type response", step_name(d->step));
		return;
	}
	/* Next page starts after the last declaration's value handle. */
	last = d->chars[d->n_chars - 1].value;
	if (last >= s->end) {
		chars_next_service(d);
		return;
	}
	d->next_start = (uint16_t)(last + 1);
	request_chars(d);
}

static void handle_services(struct gatt_discovery *d, const struct att_pdu *rsp)
{
	struct att_group_entry e;
	size_t pos = 0;
	uint16_t last_end = 0;
	int r;

	while ((r = att_read_by_group_next(rsp, &pos, &e)) == 1) {
		struct att_uuid uuid;

		if (e.start < d->next_start || e.end < e.start || (last_end && e.start <= last_end) ||
		    att_uuid_from_wire(e.value, e.value_len, &uuid) < 0) {
			finish(d, -EBADMSG, "%s: malformed service entry 0x%04x-0x%04x",
			       step_name(d->step), e.start, e.end);
			return;
		}
		if (d->n_services == MAX_SERVICES) {
			finish(d, -EBADMSG, "%s: more than %d primary services",
			       step_name(d->step), MAX_SERVICES);
			return;
		}
		d->services[d->n_services++] = (struct service){ e.start, e.end, uuid };
		last_end = e.end;
	}
	if (r < 0 || last_end == 0) {
		finish(d, -EBADMSG, "%s: malformed Read By Group Type response",
		       step_name(d->step));
		return;
	}
	if (last_end == 0xFFFF) {
		next_step(d);
		return;
	}
	d->next_start = (uint16_t)(last_end + 1);
	r = send_read_by_type(d, ATT_OP_READ_BY_GROUP_TYPE_REQ, d->next_start, 0xFFFF,
			      ATT_UUID_PRIMARY_SERVICE);
	if (r < 0)
		finish(d, r, "%s: cannot send request: %s", step_name(d->step), strerror(-r));
}

static bool match_wanted(struct gatt_discovery *d)
{
	char text[37];
	const int svc_of[] = { [IN_BFR] = find_bfr_service(d),
			       [IN_BATTERY] = find_service_16(d, ATT_UUID_BATTERY_SERVICE),
			       [IN_GATT] = find_service_16(d, ATT_UUID_GATT_SERVICE) };

	for (size_t w = 0; w < N_WANTED; w++) {
		struct att_uuid want;

		d->chr_of_wanted[w] = -1;
		if (wanted[w].svc == IN_BFR)
			bfr_uuid((enum bfr_uuid_id)wanted[w].id, &want);
		else
			att_uuid_from16(wanted[w].id, &want);
		for (size_t i = 0; i < d->n_chars; i++) {
			if (d->chars[i].svc != svc_of[wanted[w].svc] ||
			    !att_uuid_equal(&d->chars[i].uuid, &want))
				continue;
			d->chr_of_wanted[w] = (int)i;
			break;
		}
		if (d->chr_of_wanted[w] < 0) {
			if (!wanted[w].mandatory)
				continue;
			att_uuid_format(&want, text);
			finish(d, -ENOENT, "BFR Cuff service has no %s characteristic (%s)",
			       wanted[w].name, text);
			return false;
		}
		const struct chr *c = &d->chars[d->chr_of_wanted[w]];

		if ((c->props & wanted[w].props) != wanted[w].props) {
			if (!wanted[w].mandatory) {
				d->chr_of_wanted[w] = -1;
				continue;
			}
			finish(d, -ENOENT,
			       "%s characteristic lacks required properties (has 0x%02x, needs "
			       "0x%02x)", wanted[w].name, c->props, wanted[w].props);
			return false;
		}
		*(uint16_t *)((uint8_t *)&d->h + wanted[w].value_off) = c->value;
	}
	return true;
}

/* Next wanted characteristic that needs a CCCD looked up; false when none left. */
static void descriptors_next(struct gatt_discovery *d);

static void set_cccd(struct gatt_discovery *d, uint16_t handle)
{
	*(uint16_t *)((uint8_t *)&d->h + wanted[d->desc_pos].cccd_off) = handle;
}

static void no_cccd(struct gatt_discovery *d)
{
	if (wanted[d->desc_pos].mandatory) {
		finish(d, -ENOENT, "%s characteristic has no Client Characteristic Configuration "
		       "descriptor", wanted[d->desc_pos].name);
		return;
	}
	d->desc_pos++;
	descriptors_next(d);
}

static void descriptors_next(struct gatt_discovery *d)
{
	for (; d->desc_pos < N_WANTED; d->desc_pos++) {
		const struct chr *c;
		struct att_pdu pdu = { .opcode = ATT_OP_FIND_INFO_REQ };
		int r;

		if (wanted[d->desc_pos].cccd_off == NONE || d->chr_of_wanted[d->desc_pos] < 0)
			continue;
		c = &d->chars[d->chr_of_wanted[d->desc_pos]];
		if (c->end <= c->value) {
			no_cccd(d);
			return;
		}
		if (c->end == c->value + 1) {
			/* One handle after the value: the CCCD (as BlueZ assumes). */
			set_cccd(d, (uint16_t)(c->value + 1));
			continue;
		}
		if (d->next_start <= c->value || d->next_start > c->end)
			d->next_start = (uint16_t)(c->value + 1);
		pdu.find_info_req.start = d->next_start;
		pdu.find_info_req.end = c->end;
		r = send_req(d, &pdu);
		if (r < 0)
			finish(d, r, "%s: cannot send request: %s", step_name(d->step),
			       strerror(-r));
		return;
	}
	next_step(d);
}

static void handle_descriptors(struct gatt_discovery *d, const struct att_pdu *rsp)
{
	const struct chr *c = &d->chars[d->chr_of_wanted[d->desc_pos]];
	struct att_info_entry e;
	size_t pos = 0;
	uint16_t last = 0;
	int r;

	while ((r = att_find_info_next(rsp, &pos, &e)) == 1) {
		if (e.handle < d->next_start || e.handle > c->end || e.handle <= last) {
			finish(d, -EBADMSG, "%s: descriptor handle 0x%04x out of range",
			       step_name(d->step), e.handle);
			return;
		}
		last = e.handle;
		if (uuid_is16(&e.type, ATT_UUID_CCCD)) {
			set_cccd(d, e.handle);
			d->desc_pos++;
			d->next_start = 0;
			descriptors_next(d);
			return;
		}
	}
	if (r < 0 || last == 0) {
		finish(d, -EBADMSG, "%s: malformed Find Information response", step_name(d->step));
		return;
	}
	if (last >= c->end) {
		d->next_start = 0;
		no_cccd(d);
		return;
	}
	d->next_start = (uint16_t)(last + 1);
	descriptors_next(d);
}

static void devinfo_next(struct gatt_discovery *d)
{
	int dis = find_service_16(d, ATT_UUID_DEVICE_INFO_SERVICE);

	for (; dis >= 0 && d->devinfo_pos < N_DEVINFO; d->devinfo_pos++) {
		for (size_t i = 0; i < d->n_chars; i++) {
			struct att_pdu pdu = { .opcode = ATT_OP_READ_REQ };
			int r;

			if (d->chars[i].svc != dis ||
			    !uuid_is16(&d->chars[i].uuid, devinfo_chars[d->devinfo_pos].uuid) ||
			    !(d->chars[i].props & ATT_PROP_READ))
				continue;
			d->devinfo_handle = d->chars[i].value;
			d->devinfo_len = 0;
			d->devinfo_blob = false;
			pdu.read_req.handle = d->devinfo_handle;
			r = send_req(d, &pdu);
			if (r < 0)
				finish(d, r, "%s: cannot send request: %s", step_name(d->step),
				       strerror(-r));
			return;
		}
	}
	finish(d, 0, NULL);
}

/*
 * One chunk of a Device Information string: a Read Response, or a Read Blob
 * Response when the value did not fit one response (Vol 3 Part G 4.8.3,
 * what BlueZ's read_long does): a chunk that fills MTU - 1 bytes may have
 * more behind it. Reading stops once the string buffer is full. An error
 * leaves the string empty, except that Attribute Not Long or Invalid Offset
 * on a Read Blob only says the value ended at the previous chunk.
 */
static void handle_devinfo(struct gatt_discovery *d, const struct att_pdu *rsp, uint8_t ecode)
{
	char *dst = (char *)&d->h.info + devinfo_chars[d->devinfo_pos].off;
	size_t room = GATT_DEVINFO_LEN - 1 - d->devinfo_len;
	size_t n, full;

	if (!rsp) {
		if (!d->devinfo_blob ||
		    (ecode != ATT_ERR_ATTRIBUTE_NOT_LONG && ecode != ATT_ERR_INVALID_OFFSET))
			d->devinfo_len = 0;
		goto done;
	}
	n = rsp->value.value_len;
	full = att_client_mtu(d->att) - 1u;
	/* These strings end up in logs and JSON: keep them printable ASCII. */
	for (size_t i = 0; i < n && i < room; i++) {
		uint8_t ch = rsp->value.value[i];

		dst[d->devinfo_len + i] = (ch >= 0x20 && ch < 0x7F) ? (char)ch : '?';
	}
	d->devinfo_len += n < room ? n : room;
	if (n >= full && d->devinfo_len < GATT_DEVINFO_LEN - 1) {
		struct att_pdu pdu = { .opcode = ATT_OP_READ_BLOB_REQ };
		int r;

		pdu.read_blob_req.handle = d->devinfo_handle;
		pdu.read_blob_req.offset = (uint16_t)d->devinfo_len;
		d->devinfo_blob = true;
		r = send_req(d, &pdu);
		if (r < 0)
			finish(d, r, "%s: cannot send request: %s", step_name(d->step),
			       strerror(-r));
		return;
	}
done:
	dst[d->devinfo_len] = '\0';
	d->devinfo_pos++;
	devinfo_next(d);
}

static void next_step(struct gatt_discovery *d)
{
	int r = 0;

	switch (d->step) {
	case STEP_MTU:
		d->step = STEP_SERVER_FEATURES;
		r = send_read_by_type(d, ATT_OP_READ_BY_TYPE_REQ, 0x0001, 0xFFFF,
				      ATT_UUID_SERVER_SUPPORTED_FEATURES);
		break;
	case STEP_SERVER_FEATURES:
		d->step = STEP_SERVICES;
		d->next_start = 0x0001;
		r = send_read_by_type(d, ATT_OP_READ_BY_GROUP_TYPE_REQ, 0x0001, 0xFFFF,
				      ATT_UUID_PRIMARY_SERVICE);
		break;
	case STEP_SERVICES: {
		int bfr = find_bfr_service(d);
		int extra[3] = { find_service_16(d, ATT_UUID_BATTERY_SERVICE),
				 find_service_16(d, ATT_UUID_DEVICE_INFO_SERVICE),
				 find_service_16(d, ATT_UUID_GATT_SERVICE) };
		struct att_uuid u;
		char text[37];

		if (bfr < 0) {
			bfr_uuid(BFR_UUID_SERVICE, &u);
			att_uuid_format(&u, text);
			finish(d, -ENOENT, "no BFR Cuff service (%s) among %zu primary services",
			       text, d->n_services);
			return;
		}
		d->step = STEP_CHARS;
		d->n_scan = 0;
		d->scan[d->n_scan++] = bfr;
		for (int i = 0; i < 3; i++)
			if (extra[i] >= 0)
				d->scan[d->n_scan++] = extra[i];
		d->h.service_start = d->services[bfr].start;
		d->h.service_end = d->services[bfr].end;
		d->scan_pos = 0;
		d->next_start = d->services[bfr].start;
		request_chars(d);
		return;
	}
	case STEP_CHARS:
		if (!match_wanted(d))
			return;
		d->step = STEP_DESCRIPTORS;
		d->desc_pos = 0;
		d->next_start = 0;
		descriptors_next(d);
		return;
	case STEP_DESCRIPTORS:
		d->step = STEP_DEVICE_INFO;
		d->devinfo_pos = 0;
		devinfo_next(d);
		return;
	case STEP_DEVICE_INFO:
		return;
	}
	if (r < 0)
		finish(d, r, "%s: cannot send request: %s", step_name(d->step), strerror(-r));
}

static void on_response(int err, const struct att_pdu *rsp, void *user_data)
{
	struct gatt_discovery *d = user_data;
	uint8_t ecode = err == -EPROTO ? rsp->error_rsp.error : 0;

	d->req_id = 0;
	if (err && err != -EPROTO) {
		finish(d, err, "%s: %s", step_name(d->step),
		       err == -ETIMEDOUT ? "no response within 30 s (ATT transaction timeout)"
					 : strerror(-err));
		return;
	}
	switch (d->step) {
	case STEP_MTU:
	case STEP_SERVER_FEATURES:
		/* Optional for a server: any answer, error included, is fine. */
		next_step(d);
		return;
	case STEP_SERVICES:
		if (ecode == ATT_ERR_ATTRIBUTE_NOT_FOUND && d->n_services > 0) {
			next_step(d);
			return;
		}
		if (ecode == ATT_ERR_ATTRIBUTE_NOT_FOUND) {
			finish(d, -ENOENT, "%s: the device has no primary services",
			       step_name(d->step));
			return;
		}
		break;
	case STEP_CHARS:
		if (ecode == ATT_ERR_ATTRIBUTE_NOT_FOUND) {
			chars_next_service(d);
			return;
		}
		break;
	case STEP_DESCRIPTORS:
		if (ecode == ATT_ERR_ATTRIBUTE_NOT_FOUND) {
			d->next_start = 0;
			no_cccd(d);
			return;
		}
		break;
	case STEP_DEVICE_INFO:
		/* A string we cannot read stays empty. */
		handle_devinfo(d, err ? NULL : rsp, ecode);
		return;
	}
	if (err) {
		finish(d, -EPROTO, "%s: ATT error %s (0x%02x)", step_name(d->step),
		       att_error_name(ecode), ecode);
		return;
	}
	switch (d->step) {
	case STEP_SERVICES:
		handle_services(d, rsp);
		return;
	case STEP_CHARS:
		handle_chars(d, rsp);
		return;
	case STEP_DESCRIPTORS:
		handle_descriptors(d, rsp);
		return;
	default:
		return;
	}
}

/* A discovery whose first request has been sent, or -errno and *out untouched. */
static int discovery_begin(struct att_client *att, gatt_discovery_fn fn, void *user_data,
			   bool rediscover, struct gatt_discovery **out)
{
	struct gatt_discovery *d;
	int r;

	if (!att || !fn || !out)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->att = att;
	d->fn = fn;
	d->user_data = user_data;
	if (rediscover) {
		/* ATT allows one MTU exchange per connection; the features were read. */
		d->step = STEP_SERVICES;
		d->next_start = 0x0001;
		r = send_read_by_type(d, ATT_OP_READ_BY_GROUP_TYPE_REQ, 0x0001, 0xFFFF,
				      ATT_UUID_PRIMARY_SERVICE);
	} else {
		d->step = STEP_MTU;
		r = att_client_exchange_mtu(att, GATT_CLIENT_MTU, on_response, d, NULL, &d->req_id);
	}
	if (r < 0) {
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

int gatt_discovery_start(struct att_client *att, gatt_discovery_fn fn, void *user_data,
			 struct gatt_discovery **out)
{
	return discovery_begin(att, fn, user_data, false, out);
}

int gatt_discovery_rediscover(struct att_client *att, gatt_discovery_fn fn, void *user_data,
			      struct gatt_discovery **out)
{
	return discovery_begin(att, fn, user_data, true, out);
}

void gatt_discovery_free(struct gatt_discovery *d)
{
	if (!d)
		return;
	if (d->req_id)
		att_client_cancel(d->att, d->req_id);
	free(d);
}
