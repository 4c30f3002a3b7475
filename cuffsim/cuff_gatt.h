/*
 * cuff_gatt.h - the GATT server of one simulated cuff: attribute database
 * and ATT request handling, PDUs in, PDUs out.
 *
 * No I/O: cuff_gatt_receive() takes one PDU as it arrived on the bearer and
 * every PDU the server emits (responses, notifications, indications) goes
 * out through ops->send. Dynamic values (status, features, battery) are read
 * through ops->read and writes to the control point and supervision
 * characteristics are handed to ops->write, so the same server can sit on a
 * socket, a socketpair in a test, or nothing at all.
 *
 * Invariants: every request gets exactly one response or Error Response
 * (never silence); Write Commands and confirmations never get one; a
 * malformed PDU is answered with Invalid PDU and counted; an empty packet
 * (no opcode, so no request) is counted and ignored; at most one
 * indication is outstanding, later ones queue (bounded) until the client
 * confirms; notifications and indications go out only when the client
 * enabled them in the CCCD of this connection. cuff_gatt_reset() starts a
 * new connection: MTU back to 23, CCCDs cleared, indication queue emptied.
 * The database changes only through cuff_gatt_change_database(), which
 * indicates Service Changed.
 */
#ifndef CUFFSIM_CUFF_GATT_H
#define CUFFSIM_CUFF_GATT_H

#include <stddef.h>
#include <stdint.h>

#include "cuff_profile.h"

struct cuff_gatt;

/* Characteristics whose values are not constant. */
enum cuff_gatt_char {
	CUFF_CHAR_PRESSURE,
	CUFF_CHAR_CONTROL_POINT,
	CUFF_CHAR_STATUS,
	CUFF_CHAR_SUPERVISION,
	CUFF_CHAR_FEATURES,
	CUFF_CHAR_BATTERY,
	CUFF_CHAR_SERVICE_CHANGED,
	CUFF_CHAR_COUNT,
};

struct cuff_gatt_ops {
	/*
	 * One PDU for the bearer. 0 when sent or queued for sending; a failure
	 * is counted in send_failures, never retried here.
	 */
	int (*send)(const uint8_t *pdu, size_t len, void *user_data);
	/* Current value of STATUS, FEATURES or BATTERY into buf; 0 or -errno. */
	int (*read)(enum cuff_gatt_char ch, uint8_t *buf, size_t cap, size_t *len,
		    void *user_data);
	/*
	 * A write to CONTROL_POINT (after the Write Response has been sent,
	 * so a result indication sent from here follows it) or SUPERVISION.
	 */
	void (*write)(enum cuff_gatt_char ch, const uint8_t *value, size_t len, void *user_data);
};

struct cuff_gatt_config {
	unsigned handle_shift;   /* filler handles before the BFR service, 0..1000 */
	const char *device_name; /* GAP device name, <= 48 bytes */
	const char *serial;      /* 0x2A25, <= 48 bytes, unique per cuff */
	uint16_t server_mtu;     /* answered to Exchange MTU; 23..517 */
};

struct cuff_gatt_stats {
	uint64_t att_requests;   /* requests received (answered one way or another) */
	uint64_t malformed_pdus; /* answered with Invalid PDU; dropped commands, empty packets */
	uint64_t error_responses;
	uint64_t notifications;
	uint64_t indications;
	uint64_t send_failures;
	uint64_t indications_dropped; /* queue full */
	uint64_t database_changes;    /* cuff_gatt_change_database() calls that rebuilt it */
};

#define CUFF_GATT_MAX_SHIFT 1000
/* 0x2A29: 44 bytes, two full Read Responses at MTU 23 (Read, Read Blob, Read Blob). */
#define CUFF_GATT_MANUFACTURER "BFR Gateway Project - cuffsim simulated cuff"
/* ATT error from the CSS for a control point whose CCCD is not enabled. */
#define CUFF_GATT_ERR_CCCD_IMPROPER 0xFD

int cuff_gatt_new(const struct cuff_gatt_config *cfg, const struct cuff_gatt_ops *ops,
		  void *user_data, struct cuff_gatt **out);
void cuff_gatt_free(struct cuff_gatt *g);

/* A new bearer (connection): per-connection state back to defaults. */
void cuff_gatt_reset(struct cuff_gatt *g);

/* Handles one received PDU. 0, or -errno only when sending failed. */
int cuff_gatt_receive(struct cuff_gatt *g, const uint8_t *pdu, size_t len);

/* Samples that fit one pressure notification at the current MTU (>= 1). */
size_t cuff_gatt_max_batch(const struct cuff_gatt *g);

/*
 * Notifies n pressure samples. 1 when sent, 0 when the client has not
 * enabled notifications, -EMSGSIZE when n does not fit the MTU, or the
 * send error.
 */
int cuff_gatt_notify_pressure(struct cuff_gatt *g, const struct bfr_sample *s, size_t n);
/* Notifies STATUS or BATTERY (value read through ops->read). 1, 0, -errno. */
int cuff_gatt_notify(struct cuff_gatt *g, enum cuff_gatt_char ch);
/*
 * Indicates a control-point result; queued while another indication waits
 * for its confirmation. 1 sent or queued, 0 indications not enabled,
 * -ENOBUFS queue full (counted).
 */
int cuff_gatt_indicate_cp(struct cuff_gatt *g, const struct bfr_cp_response *rsp);

/*
 * The cuff's attribute database changes (a firmware that adds a service
 * would do this): it is rebuilt with handle_shift filler handles, so every
 * handle from the filler on moves, and a Service Changed indication with
 * the range (first handle that may have moved, 0xFFFF) goes to the client
 * if it enabled Service Changed indications (queued like any indication).
 * The connection's CCCD settings stay with their characteristics. 1 when
 * indicated or queued, 0 when the client did not enable the indication
 * (the database changed anyway), -ENOBUFS indication queue full (changed,
 * not indicated, counted), -ENOMEM or -EINVAL (shift > CUFF_GATT_MAX_SHIFT):
 * nothing changed.
 */
int cuff_gatt_change_database(struct cuff_gatt *g, unsigned handle_shift);
unsigned cuff_gatt_handle_shift(const struct cuff_gatt *g);

uint16_t cuff_gatt_mtu(const struct cuff_gatt *g);
/* Value handle of a characteristic (for tests and diagnostics). */
uint16_t cuff_gatt_value_handle(const struct cuff_gatt *g, enum cuff_gatt_char ch);
void cuff_gatt_get_stats(const struct cuff_gatt *g, struct cuff_gatt_stats *out);

#endif
