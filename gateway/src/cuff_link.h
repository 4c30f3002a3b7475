/*
 * cuff_link.h - one configured cuff's connection: transport, ATT bearer,
 * discovery, setup and supervision, as a state machine (docs/ble.md):
 *
 *   DISCONNECTED --start--> CONNECTING --> DISCOVERING --> READY
 *        ^                      ^   |            |           |
 *        +------stop------------+   +--failure---+--lost-----+--> BACKOFF --timer--> CONNECTING
 *
 * DISCOVERING covers GATT discovery and setup: enable Service Changed
 * indications (when the cuff has them), read Features and Status, enable
 * notifications (Pressure, Status, Battery) and indications (Control
 * Point), send SET_SUPERVISION and wait for its successful result. Only
 * then is the link READY; from then on a supervision keepalive (Write
 * Command, u16 token incrementing) goes out every timeout/3.
 *
 * A Service Changed indication is confirmed and answered by discovering
 * again on the same link while staying READY: keepalives and Control Point
 * requests keep using the known handles until the new ones are found, then
 * switch to them and the CCCDs are written again there. Only a failure of
 * that discovery (or of those writes) drops the link.
 *
 * Invariants:
 * - on_samples runs synchronously from the receive path as soon as a
 *   Pressure notification decodes; nothing in this module delays it (the
 *   safety engine runs inside it). Samples are delivered in every state
 *   that has a bearer, also before READY: a cuff may still be inflated.
 * - Malformed profile values are counted and logged, never passed on.
 * - DEFLATE goes to the head of the ATT queue (behind at most the one
 *   outstanding request) and is never refused for lack of tracking slots.
 * - Every Control Point request ends in exactly one on_cp_result or
 *   on_cp_failed (ATT error, no indication within CUFF_LINK_CP_TIMEOUT_MS,
 *   link lost, or stopped), with one exception: when every tracking slot
 *   is taken, a new DEFLATE supersedes the oldest tracked DEFLATE, which
 *   then ends without a callback (the newer one's outcome stands for both;
 *   reporting it as failed would tell the safety engine a DEFLATE failed
 *   while another is on its way).
 * - Callbacks may call cuff_link_send_cp and cuff_link_stop, but not
 *   cuff_link_free.
 */
#ifndef BFR_CUFF_LINK_H
#define BFR_CUFF_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "cuff_profile.h"
#include "gatt_discovery.h"
#include "loop.h"
#include "transport.h"

#define CUFF_LINK_CP_TIMEOUT_MS 5000
#define CUFF_LINK_LOP_TIMEOUT_MS 60000
/* How long a Control Point request of this opcode waits for its indication. */
unsigned cuff_link_cp_timeout_ms(uint8_t opcode);
/* Keepalives go out every timeout/3; below this the cadence is meaningless. */
#define CUFF_LINK_MIN_SUPERVISION_MS 300
/* A session ready this long counts as successful: backoff starts over. */
#define CUFF_LINK_STABLE_MS 10000

enum cuff_link_state {
	CUFF_LINK_DISCONNECTED = 0,
	CUFF_LINK_CONNECTING,
	CUFF_LINK_DISCOVERING,
	CUFF_LINK_READY,
	CUFF_LINK_BACKOFF,
};

const char *cuff_link_state_name(enum cuff_link_state state);

struct cuff_link_config {
	const char *id;           /* copied */
	const char *address;      /* "sim:/path" or "XX:XX:XX:XX:XX:XX" */
	const char *address_type; /* "public" | "random"; NULL: public */
	const char *adapter;      /* "hciN"; NULL: hci0 */
	const char *security;     /* "low" | "medium" | "high"; NULL: medium */
	uint16_t supervision_timeout_ms; /* 0: BFR_SUPERVISION_DEFAULT_TIMEOUT_MS; else >= 300 */
	/* Shared by all links so each adapter sees one LE connect at a time;
	 * NULL: the link uses a private one (no cross-link serialisation). */
	struct transport_sched *sched;
};

struct cuff_link;

struct cuff_link_callbacks {
	/* Every state change; error says why for BACKOFF, else NULL. */
	void (*on_state)(struct cuff_link *link, enum cuff_link_state state, const char *error,
			 void *user_data);
	void (*on_ready)(struct cuff_link *link, const struct bfr_features *features,
			 const struct bfr_status *status, const struct gatt_device_info *info,
			 void *user_data);
	void (*on_samples)(struct cuff_link *link, const struct bfr_sample *samples, size_t n,
			   void *user_data);
	void (*on_status)(struct cuff_link *link, const struct bfr_status *status, void *user_data);
	void (*on_battery)(struct cuff_link *link, uint8_t pct, void *user_data);
	void (*on_cp_result)(struct cuff_link *link, const struct bfr_cp_response *rsp,
			     void *user_data);
	/* err: -EPROTO (ATT error on the write), -ETIMEDOUT (no indication),
	 * -ECONNRESET (link lost), -ECANCELED (cuff_link_stop). */
	void (*on_cp_failed)(struct cuff_link *link, uint8_t opcode, int err, const char *why,
			     void *user_data);
};

struct cuff_link_stats {
	uint64_t pdus_rx, pdus_tx;  /* ATT packets over all sessions */
	uint64_t att_rejected;      /* malformed/unknown/unexpected ATT PDUs */
	uint64_t malformed;         /* profile values that failed to decode */
	uint64_t samples;
	uint64_t reconnects;        /* connection attempts after the first */
	uint64_t keepalives;        /* supervision writes sent */
	uint64_t keepalive_errors;
	uint64_t cp_sent, cp_failed, cp_unexpected;
	uint64_t service_changed;   /* Service Changed indications acted on */
};

/*
 * Validates cfg: -EINVAL for a bad address/type/adapter/security (use
 * transport_parse for the message) or a supervision timeout below 300 ms.
 * Callbacks may be NULL individually. Does not connect until
 * cuff_link_start.
 */
int cuff_link_new(struct loop *loop, const struct cuff_link_config *cfg,
		  const struct cuff_link_callbacks *cb, void *user_data, struct cuff_link **out);
void cuff_link_free(struct cuff_link *link);
int cuff_link_start(struct cuff_link *link);
/* Drops the connection (the cuff deflates itself when keepalives stop). */
void cuff_link_stop(struct cuff_link *link);

/*
 * SR-24: a safety DEFLATE was neither answered nor acted on. The
 * supervision keepalives stop, so the cuff's own fail-safe deflates it
 * within its timeout. After that timeout plus CUFF_LINK_RELEASE_MARGIN_MS:
 * if a Control Point request written before the release is still
 * unanswered, the control channel is dead and the link is dropped (BACKOFF,
 * then a fresh connection); otherwise keepalives resume. Nothing while not
 * READY or already released.
 */
#define CUFF_LINK_RELEASE_MARGIN_MS 500
void cuff_link_release(struct cuff_link *link);

/*
 * Writes a Control Point request. -ENOTCONN unless READY, -EINVAL for a
 * request that does not encode, -EBUSY when too many are pending (never for
 * DEFLATE), -ENOMEM, or the bearer's write error when the request went
 * straight to the socket (e.g. -EAGAIN: the cuff has stopped reading and
 * its socket buffer is full); on any error nothing was sent and nothing
 * changed (a DEFLATE supersedes an older one only once it is sent).
 */
int cuff_link_send_cp(struct cuff_link *link, const struct bfr_cp_request *req);

enum cuff_link_state cuff_link_get_state(const struct cuff_link *link);
const char *cuff_link_id(const struct cuff_link *link);
/* Last failure text ("" if none). */
const char *cuff_link_last_error(const struct cuff_link *link);
/* Discovered handles; only meaningful while READY. */
const struct gatt_cuff_handles *cuff_link_handles(const struct cuff_link *link);
void cuff_link_get_stats(const struct cuff_link *link, struct cuff_link_stats *out);

#endif
