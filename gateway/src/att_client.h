/*
 * att_client.h - the client side of one ATT bearer (Core Vol 3 Part F).
 *
 * An opaque bearer over a connected SOCK_SEQPACKET fd (AF_UNIX to cuffsim
 * or AF_BLUETOOTH/L2CAP CID 4 to a real cuff: only recv/send are used, one
 * PDU per packet and one packet per wake-up, the fd level-triggered so
 * that a bearer with more waiting is served again after the other ready
 * fds). Registered with the event loop; single-threaded.
 *
 * Invariants:
 * - At most ONE request is outstanding; the rest wait in a FIFO queue.
 *   ATT_SEND_URGENT puts a request at the head of that queue (it still
 *   waits for the outstanding one: ATT cannot pre-empt a transaction).
 * - Write Commands are never queued: they may overtake queued requests.
 * - A request not answered within ATT_TRANSACTION_TIMEOUT_MS kills the
 *   bearer (the spec forbids further requests on it).
 * - Anything from the peer that is not a valid, expected PDU (malformed,
 *   unknown opcode, a response nobody asked for, a PDU longer than the MTU)
 *   is counted in the stats and dropped, never delivered.
 * - An answer to the outstanding request that is not a valid one (a
 *   response or Error Response that is malformed or longer than the MTU, a
 *   response of another kind, an Error Response for another request; handle
 *   0 in a list is malformed) is a protocol error, found at once: it is
 *   logged naming what came, and the bearer dies with -EBADMSG (no later
 *   answer could be matched to a request with certainty, as after a
 *   transaction timeout). Whether the handles of a valid list lie in the
 *   range asked for is the caller's check (gatt_discovery ends discovery at
 *   once with -EBADMSG).
 * - Requests from the peer get Error Response "Request Not Supported";
 *   every indication is confirmed, after its handlers ran (a malformed one
 *   too, undelivered: the server sends no further indication until it has
 *   the confirmation).
 * - When the bearer dies (EOF, hang-up, socket error, transaction timeout,
 *   protocol error) every pending request's callback runs once with the
 *   reason and the disconnect callback runs exactly once. No callback runs
 *   after that.
 * - Every callback may call any function here, att_client_free included.
 */
#ifndef BFR_ATT_CLIENT_H
#define BFR_ATT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "att.h"
#include "loop.h"

struct att_client;

struct att_client_stats {
	uint64_t pdus_rx;          /* every packet read, valid or not */
	uint64_t pdus_tx;          /* every packet written */
	uint64_t malformed;        /* decode errors, PDU > MTU, empty packets */
	uint64_t unknown_opcode;   /* opcodes the codec does not know */
	uint64_t unexpected_rsp;   /* response with no/another request outstanding */
	uint64_t peer_requests;    /* requests from the server, refused */
	uint64_t notifications;
	uint64_t indications;
	uint64_t timeouts;         /* transaction timeouts (at most 1: the bearer dies) */
};

/*
 * Result of a request. err 0: rsp is the matching response. err -EPROTO: rsp
 * is the peer's Error Response (rsp->error_rsp.error holds the ATT error).
 * Otherwise rsp is NULL and err is why the bearer died: -ETIMEDOUT
 * (transaction timeout), -EBADMSG (an invalid answer to the outstanding
 * request: a protocol error), -ECONNRESET (EOF/hang-up), another -errno from the
 * socket, or the write of this request failed. rsp points into the receive
 * buffer: copy what you need.
 */
typedef void (*att_response_fn)(int err, const struct att_pdu *rsp, void *user_data);
typedef void (*att_destroy_fn)(void *user_data);
/* A notification or indication value for handle (value valid during the call). */
typedef void (*att_notify_fn)(uint16_t handle, const uint8_t *value, size_t len, bool indication,
			      void *user_data);
typedef void (*att_disconnect_fn)(int err, void *user_data);

#define ATT_SEND_URGENT 0x1u

/*
 * Takes ownership of fd (closed by att_client_free) only on success. The MTU
 * starts at ATT_DEFAULT_MTU.
 */
int att_client_new(struct loop *loop, int fd, struct att_client **out);
void att_client_free(struct att_client *att);

void att_client_set_disconnect_cb(struct att_client *att, att_disconnect_fn fn, void *user_data);
/* The prefix of the bearer's log lines, e.g. "cuff bay1" (cut at 63 bytes;
 * default "ATT bearer"). */
void att_client_set_name(struct att_client *att, const char *name);

/*
 * Queues request pdu (a request opcode: MTU, Find Information, Find By Type,
 * Read By Type, Read, Read Blob, Read By Group Type, Write Request). It is
 * encoded now: -EINVAL for a non-request opcode, -ENOSPC if it does not fit
 * the MTU, -ENOTCONN once the bearer died, -ENOMEM. On success *id_out
 * (if not NULL) gets a non-zero id for att_client_cancel, and fn will run
 * exactly once unless cancelled; destroy(user_data) runs after that (or on
 * cancel). fn never runs from inside att_client_send.
 */
int att_client_send(struct att_client *att, const struct att_pdu *pdu, unsigned flags,
		    att_response_fn fn, void *user_data, att_destroy_fn destroy,
		    unsigned *id_out);

/*
 * Exchange MTU with client_mtu (23..517). On success the bearer MTU becomes
 * min(client_mtu, server_mtu) (never below 23) before fn runs.
 */
int att_client_exchange_mtu(struct att_client *att, uint16_t client_mtu, att_response_fn fn,
			    void *user_data, att_destroy_fn destroy, unsigned *id_out);

/*
 * Forgets a request: its fn will not run, destroy does. If it was already
 * written the bearer still waits for (and swallows) its response, since ATT
 * allows only one transaction at a time. -ENOENT for unknown ids.
 */
int att_client_cancel(struct att_client *att, unsigned id);

/* Write Command: sent immediately, not queued. -EAGAIN if the socket is full. */
int att_client_write_cmd(struct att_client *att, uint16_t handle, const uint8_t *value,
			 size_t len);

/*
 * Handler for notifications and indications of handle (0: every handle).
 * Several handlers may share a handle. *id_out gets an id for unregister.
 */
int att_client_register_notify(struct att_client *att, uint16_t handle, att_notify_fn fn,
			       void *user_data, att_destroy_fn destroy, unsigned *id_out);
int att_client_unregister_notify(struct att_client *att, unsigned id);

uint16_t att_client_mtu(const struct att_client *att);
/* False once the bearer died. */
bool att_client_is_connected(const struct att_client *att);
void att_client_get_stats(const struct att_client *att, struct att_client_stats *out);

#endif
