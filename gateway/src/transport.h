/*
 * transport.h - how the gateway reaches a cuff: the SOCK_SEQPACKET socket
 * that carries ATT, whichever way it travels.
 *
 *   "sim:/path"          AF_UNIX SOCK_SEQPACKET to a cuffsim cuff
 *   "XX:XX:XX:XX:XX:XX"  AF_BLUETOOTH/BTPROTO_L2CAP to the ATT fixed channel
 *                        (CID 4) of an LE device, public or random address,
 *                        through adapter hciN, with BT_SECURITY low|medium|high
 *
 * Everything above the returned fd (ATT, GATT, profile, safety) is the same
 * for both. On kernels without Bluetooth the LE path fails with
 * -EAFNOSUPPORT and a message saying so; the caller records it per cuff.
 *
 * The scheduler lets only ONE LE connection attempt be in flight per
 * adapter (BlueZ/the controller refuse parallel LE connects); others wait
 * in FIFO order. sim: attempts are never serialised. Callbacks always run
 * from the event loop, never from inside transport_sched_connect.
 */
#ifndef BFR_TRANSPORT_H
#define BFR_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define TRANSPORT_CONNECT_TIMEOUT_MS 20000
#define TRANSPORT_ERR_LEN 160
#define TRANSPORT_MAX_ADAPTER 1023

enum transport_kind {
	TRANSPORT_SIM = 1,
	TRANSPORT_LE = 2,
};

enum transport_security {
	TRANSPORT_SECURITY_LOW = 1,    /* = BT_SECURITY_LOW */
	TRANSPORT_SECURITY_MEDIUM = 2, /* encrypted (bonded cuffs) */
	TRANSPORT_SECURITY_HIGH = 3,   /* encrypted + MITM-protected */
};

struct transport_address {
	enum transport_kind kind;
	char path[108];      /* sim: the AF_UNIX path (sun_path size) */
	uint8_t bdaddr[6];   /* LE: bdaddr_t byte order (least significant first) */
	uint8_t bdaddr_type; /* LE: BDADDR_LE_PUBLIC or BDADDR_LE_RANDOM */
	int adapter;         /* LE: hci index */
	enum transport_security security;
};

/*
 * Parses a configured address. address_type ("public" | "random"), adapter
 * ("hciN") and security ("low" | "medium" | "high") may be NULL for the
 * defaults public, hci0, medium; they are ignored for sim: addresses.
 * -EINVAL with a message in err (if not NULL) naming what is wrong; *out
 * untouched on failure.
 */
int transport_parse(const char *address, const char *address_type, const char *adapter,
		    const char *security, struct transport_address *out, char *err,
		    size_t err_len);

/* Human-readable form, e.g. "sim:/run/x.sock" or "C4:7F:51:00:12:9A (random, hci0)". */
void transport_format(const struct transport_address *a, char *buf, size_t len);

/*
 * Creates the socket and starts a non-blocking connect. 0 with *fd_out set
 * (connected, or connecting: wait for EPOLLOUT and read SO_ERROR), or -errno
 * with a message in err.
 */
int transport_open(const struct transport_address *a, int *fd_out, char *err, size_t err_len);

/* --- per-adapter connection scheduler ---------------------------------- */

struct transport_sched;

/* fd >= 0 (now owned by the callee) when err is 0; else errmsg says why. */
typedef void (*transport_connect_fn)(int err, int fd, const char *errmsg, void *user_data);
/* Replaceable opener (tests); same contract as transport_open. */
typedef int (*transport_open_fn)(const struct transport_address *a, int *fd_out, char *err,
				 size_t err_len, void *data);

int transport_sched_new(struct loop *loop, struct transport_sched **out);
/* Cancels every attempt without calling back. Not from inside a callback. */
void transport_sched_free(struct transport_sched *s);
void transport_sched_set_opener(struct transport_sched *s, transport_open_fn fn, void *data);

/*
 * Queues a connection attempt; fn runs exactly once (from the loop) unless
 * the attempt is cancelled. An attempt that does not complete within
 * TRANSPORT_CONNECT_TIMEOUT_MS fails with -ETIMEDOUT.
 */
int transport_sched_connect(struct transport_sched *s, const struct transport_address *a,
			    transport_connect_fn fn, void *user_data, unsigned *id_out);
/* Closes/forgets the attempt; fn will not run. -ENOENT if unknown or done. */
int transport_sched_cancel(struct transport_sched *s, unsigned id);
/* LE attempts currently connecting on adapter (0 or 1). */
unsigned transport_sched_in_flight(const struct transport_sched *s, int adapter);

#endif
