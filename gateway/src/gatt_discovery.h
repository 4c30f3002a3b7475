/*
 * gatt_discovery.h - finds the BFR cuff's attributes on a fresh ATT bearer
 * the way a real central does (docs/ble.md "Discovery"):
 *
 *   Exchange MTU (517) -> Read By Type 0x2B3A over 0x0001-0xFFFF (errors
 *   tolerated) -> Read By Group Type 0x2800 until Attribute Not Found ->
 *   Read By Type 0x2803 over the services it needs (BFR Cuff, Battery,
 *   Device Information, GATT) -> Find Information where a notify/indicate
 *   characteristic has more than one handle after its value (one handle is
 *   taken to be the CCCD without asking) -> Read the Device Information
 *   strings, each continued with Read Blob while a chunk fills MTU - 1
 *   bytes (up to GATT_DEVINFO_LEN - 1 bytes; longer strings are cut).
 *
 * Handles are never assumed: other services (GAP, GATT with Service
 * Changed), 0x2901 descriptors, 16- and 128-bit UUIDs and any handle layout
 * are fine. Service Changed (0x2A05 in GATT 0x1801, indicate) and its CCCD
 * are found when present, so the owner can subscribe to it. Every
 * response is checked (ranges, ordering, progress); a malformed one fails
 * discovery. A missing mandatory characteristic, property or CCCD fails
 * with a message naming it. Battery, Device Information and Service
 * Changed are optional.
 */
#ifndef BFR_GATT_DISCOVERY_H
#define BFR_GATT_DISCOVERY_H

#include <stdint.h>

#include "att_client.h"

#define GATT_CLIENT_MTU 517
#define GATT_DEVINFO_LEN 64

struct gatt_device_info {
	char manufacturer[GATT_DEVINFO_LEN]; /* 0x2A29; "" when absent */
	char model[GATT_DEVINFO_LEN];        /* 0x2A24 */
	char serial[GATT_DEVINFO_LEN];       /* 0x2A25 */
	char firmware[GATT_DEVINFO_LEN];     /* 0x2A26 */
};

/* Value handles and CCCD handles; 0 means "not present" (optional ones only). */
struct gatt_cuff_handles {
	uint16_t mtu; /* negotiated */
	uint16_t service_start, service_end;
	uint16_t pressure, pressure_cccd;
	uint16_t control_point, control_point_cccd;
	uint16_t status, status_cccd;
	uint16_t supervision;
	uint16_t features;
	uint16_t battery_level, battery_cccd;
	/* GATT 0x2A05 (indicate) in service 0x1801 and its CCCD; 0 when absent */
	uint16_t service_changed, service_changed_cccd;
	struct gatt_device_info info;
};

struct gatt_discovery;

/*
 * err 0: h is complete. Otherwise h is NULL and errmsg says what failed
 * (-ENOENT: something mandatory missing, -EBADMSG: malformed response,
 * -EPROTO: unexpected ATT error, or the bearer's error such as -ETIMEDOUT).
 * Called exactly once unless the discovery is freed first; it may free the
 * discovery (and the bearer).
 */
typedef void (*gatt_discovery_fn)(int err, const char *errmsg, const struct gatt_cuff_handles *h,
				  void *user_data);

/* Starts at once on att; fn runs later from the loop. */
int gatt_discovery_start(struct att_client *att, gatt_discovery_fn fn, void *user_data,
			 struct gatt_discovery **out);
/*
 * Discovers again on a bearer that was set up already (after a Service
 * Changed indication): the same steps and checks from primary service
 * discovery on, without the MTU exchange (ATT allows one per connection)
 * and the Server Supported Features read. Same contract as
 * gatt_discovery_start; h.mtu is the bearer's MTU.
 */
int gatt_discovery_rediscover(struct att_client *att, gatt_discovery_fn fn, void *user_data,
			      struct gatt_discovery **out);
/* Cancels a running discovery (its pending request is forgotten). */
void gatt_discovery_free(struct gatt_discovery *d);

#endif
