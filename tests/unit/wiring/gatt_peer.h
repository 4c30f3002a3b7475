/*
 * gatt_peer.h - a scripted cuff for the wiring's unit tests: cuffsim's own
 * GATT server (cuffsim/cuff_gatt.c, PDUs in, PDUs out) on a listening
 * AF_UNIX SOCK_SEQPACKET socket, served from the test's event loop, so the
 * gateway's cuff_link connects to it with a "sim:" address exactly as to a
 * cuffsim cuff. The test decides every pressure sample; every Control Point
 * write is logged and answered with a success indication (MEASURE_LOP with
 * the LOP the test set).
 */
#ifndef BFR_TEST_GATT_PEER_H
#define BFR_TEST_GATT_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuff_profile.h"
#include "loop.h"

#define GATT_PEER_LOG_MAX 256

struct gatt_peer {
	struct loop *loop;
	struct cuff_gatt *gatt;
	char path[108];
	int listen_fd;
	int fd;
	double lop_mmhg;   /* answered to MEASURE_LOP */
	/* true: MEASURE_LOP is left unanswered (a search in progress) until a
	 * DEFLATE ends it with FAILED, as cuffsim and the profile do, or the
	 * test calls gatt_peer_fail_lop() */
	bool hold_lop;
	bool lop_pending;
	uint8_t battery;
	/* every Control Point request, in order */
	struct bfr_cp_request cp[GATT_PEER_LOG_MAX];
	size_t n_cp;
	unsigned keepalives;
	uint16_t seq;
};

/* Listens at dir/name; the cuff's address is "sim:<path>". */
void gatt_peer_init(struct gatt_peer *p, struct loop *loop, const char *dir, const char *name);
void gatt_peer_close(struct gatt_peer *p);
/* One pressure notification of n samples (1..3), each at pressure[i]. */
void gatt_peer_notify(struct gatt_peer *p, const double *pressure, size_t n, uint16_t status);
size_t gatt_peer_count(const struct gatt_peer *p, uint8_t opcode);
/* Ends a held MEASURE_LOP with FAILED (the cuff's own search failed). */
void gatt_peer_fail_lop(struct gatt_peer *p);

#endif
