/* att_client.c - see att_client.h */
#include "att_client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/*
 * One PDU per readiness event. The bearer's fd is level-triggered, so while
 * more PDUs wait the loop's next poll reports it again, after every other
 * ready fd has had its turn: no bearer can starve the others. A cuff
 * usually has exactly one notification waiting when the loop wakes, and one
 * recv() takes it without a second call to learn that the socket is empty.
 * Per PDU through epoll from 1 000 sockets (tests/bench/bench_recv, medians
 * of 5 alternating runs): 1.8 us this way, 2.6 us with recvmmsg() asking
 * for up to 4, 2.1-2.2 us edge-triggered with a recv() until EAGAIN
 * (docs/benchmarks.md, "fourth round").
 */

struct att_request {
	struct att_request *next;
	unsigned id;
	uint8_t opcode;
	uint16_t client_mtu; /* MTU requests only */
	att_response_fn fn;  /* NULL once cancelled while outstanding */
	void *user_data;
	att_destroy_fn destroy;
	size_t len;
	uint8_t pdu[ATT_MAX_MTU];
};

struct notify_handler {
	struct notify_handler *next;
	unsigned id;
	uint16_t handle;
	bool removed; /* unregistered during a dispatch; unlinked on leave() */
	att_notify_fn fn;
	void *user_data;
	att_destroy_fn destroy;
};

struct att_client {
	struct loop *loop;
	int fd;
	uint16_t mtu;
	bool dead;
	int busy;          /* nesting depth of dispatches into user callbacks */
	bool free_pending; /* att_client_free called while busy */
	unsigned next_id;
	uint64_t timer_id;
	struct att_request *outstanding;
	struct att_request *queue_head;
	struct att_request *queue_tail;
	struct notify_handler *handlers;
	att_disconnect_fn disconnect_fn;
	void *disconnect_data;
	struct att_client_stats stats;
	char name[64]; /* prefixes log lines: the owner's name for the link */
};

static unsigned new_id(struct att_client *att)
{
	if (++att->next_id == 0)
		att->next_id = 1;
	return att->next_id;
}

static void request_free(struct att_request *req)
{
	if (req->destroy)
		req->destroy(req->user_data);
	free(req);
}

static void stop_timer(struct att_client *att)
{
	if (att->timer_id) {
		loop_cancel_timer(att->loop, att->timer_id);
		att->timer_id = 0;
	}
}

static void detach(struct att_client *att)
{
	if (!att->dead)
		loop_del_io(att->loop, att->fd);
	att->dead = true;
	stop_timer(att);
}

static void destroy_now(struct att_client *att)
{
	struct att_request *req, *next;
	struct notify_handler *h, *hn;

	detach(att);
	if (att->outstanding)
		request_free(att->outstanding);
	for (req = att->queue_head; req; req = next) {
		next = req->next;
		request_free(req);
	}
	for (h = att->handlers; h; h = hn) {
		hn = h->next;
		if (h->destroy)
			h->destroy(h->user_data);
		free(h);
	}
	close(att->fd);
	free(att);
}

static void sweep_handlers(struct att_client *att)
{
	struct notify_handler **pp = &att->handlers;

	while (*pp) {
		struct notify_handler *h = *pp;

		if (h->removed) {
			*pp = h->next;
			if (h->destroy)
				h->destroy(h->user_data);
			free(h);
		} else {
			pp = &h->next;
		}
	}
}

static void enter(struct att_client *att)
{
	att->busy++;
}

/* Returns true when att was freed: the caller must not touch it any more. */
static bool leave(struct att_client *att)
{
	if (--att->busy > 0)
		return false;
	if (att->free_pending) {
		destroy_now(att);
		return true;
	}
	sweep_handlers(att);
	return false;
}

static int write_pdu(struct att_client *att, const uint8_t *buf, size_t len)
{
	ssize_t n;

	do {
		n = send(att->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EIO; /* SEQPACKET is all-or-nothing; never expected */
	att->stats.pdus_tx++;
	return 0;
}

static void timeout_cb(struct loop *loop, uint64_t timer_id, void *user_data);

/* Makes req the outstanding request: arm the 30 s timer, then write it. */
static int start_request(struct att_client *att, struct att_request *req)
{
	int r;

	r = loop_add_timer(att->loop, ATT_TRANSACTION_TIMEOUT_MS, timeout_cb, att, &att->timer_id);
	if (r < 0)
		return r;
	r = write_pdu(att, req->pdu, req->len);
	if (r < 0) {
		stop_timer(att);
		return r;
	}
	att->outstanding = req;
	return 0;
}

/*
 * Bearer death: no further requests (spec), every pending request learns why,
 * then the owner is told once. Runs only from loop callbacks (inside enter).
 */
static void die(struct att_client *att, int err)
{
	struct att_request *list, *req;

	if (att->dead)
		return;
	detach(att);
	list = att->outstanding;
	if (list)
		list->next = att->queue_head;
	else
		list = att->queue_head;
	att->outstanding = NULL;
	att->queue_head = att->queue_tail = NULL;
	while (list) {
		req = list;
		list = req->next;
		if (req->fn && !att->free_pending)
			req->fn(err, NULL, req->user_data);
		request_free(req);
	}
	if (!att->free_pending && att->disconnect_fn)
		att->disconnect_fn(err, att->disconnect_data);
}

/* Starts the head of the queue when nothing is outstanding (loop context). */
static void process_queue(struct att_client *att)
{
	struct att_request *req;
	int r;

	if (att->dead || att->free_pending || att->outstanding || !att->queue_head)
		return;
	req = att->queue_head;
	att->queue_head = req->next;
	if (!att->queue_head)
		att->queue_tail = NULL;
	req->next = NULL;
	r = start_request(att, req);
	if (r < 0) {
		/* Put it back so die() reports the failure to its owner too. */
		req->next = att->queue_head;
		att->queue_head = req;
		if (!att->queue_tail)
			att->queue_tail = req;
		die(att, r);
	}
}

static void timeout_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct att_client *att = user_data;

	att->timer_id = 0;
	att->stats.timeouts++;
	enter(att);
	die(att, -ETIMEDOUT);
	leave(att);
}

static void complete(struct att_client *att, int err, const struct att_pdu *pdu)
{
	struct att_request *req = att->outstanding;

	att->outstanding = NULL;
	stop_timer(att);
	if (req->opcode == ATT_OP_MTU_REQ && err == 0) {
		uint16_t mtu = pdu->mtu.mtu < req->client_mtu ? pdu->mtu.mtu : req->client_mtu;

		att->mtu = mtu < ATT_DEFAULT_MTU ? ATT_DEFAULT_MTU : mtu;
	}
	if (req->fn)
		req->fn(err, pdu, req->user_data);
	request_free(req);
	process_queue(att);
}

static void send_not_supported(struct att_client *att, uint8_t req_opcode)
{
	struct att_pdu rsp = { .opcode = ATT_OP_ERROR_RSP };
	uint8_t buf[8];
	size_t len;

	rsp.error_rsp.req_opcode = req_opcode;
	rsp.error_rsp.handle = 0;
	rsp.error_rsp.error = ATT_ERR_REQUEST_NOT_SUPPORTED;
	if (att_pdu_encode(&rsp, buf, sizeof(buf), &len) == 0)
		write_pdu(att, buf, len);
}

static bool is_response(uint8_t op)
{
	switch (op) {
	case ATT_OP_MTU_RSP:
	case ATT_OP_FIND_INFO_RSP:
	case ATT_OP_FIND_BY_TYPE_RSP:
	case ATT_OP_READ_BY_TYPE_RSP:
	case ATT_OP_READ_RSP:
	case ATT_OP_READ_BLOB_RSP:
	case ATT_OP_READ_BY_GROUP_TYPE_RSP:
	case ATT_OP_WRITE_RSP:
		return true;
	default:
		return false;
	}
}

static bool is_client_request(uint8_t op)
{
	switch (op) {
	case ATT_OP_MTU_REQ:
	case ATT_OP_FIND_INFO_REQ:
	case ATT_OP_FIND_BY_TYPE_REQ:
	case ATT_OP_READ_BY_TYPE_REQ:
	case ATT_OP_READ_REQ:
	case ATT_OP_READ_BLOB_REQ:
	case ATT_OP_READ_BY_GROUP_TYPE_REQ:
	case ATT_OP_WRITE_REQ:
		return true;
	default:
		return false;
	}
}

static void dispatch_value(struct att_client *att, const struct att_pdu *pdu, bool indication)
{
	uint16_t handle = pdu->handle_value.handle;

	for (struct notify_handler *h = att->handlers; h; h = h->next) {
		if (h->removed || (h->handle && h->handle != handle))
			continue;
		h->fn(handle, pdu->handle_value.value, pdu->handle_value.value_len, indication,
		      h->user_data);
		if (att->free_pending || att->dead)
			return;
	}
}

static void confirm(struct att_client *att)
{
	static const uint8_t cfm = ATT_OP_HANDLE_VALUE_CFM;

	/* A lost confirmation looks like a slow client; the server's timeout decides. */
	if (!att->free_pending && !att->dead)
		(void)write_pdu(att, &cfm, 1);
}

/* A response or an Error Response: what answers the outstanding request. */
static bool is_answer(uint8_t op)
{
	return op == ATT_OP_ERROR_RSP || is_response(op);
}

static void protocol_error(struct att_client *att, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * The peer answered the outstanding request with something that is no valid
 * answer to it. The transaction cannot be known to be over (the real answer
 * may still come and would be taken for the next request's), so the bearer
 * ends at once, as the transaction timeout would end it 30 s later: every
 * pending request fails with -EBADMSG and the log says what came.
 */
static void protocol_error(struct att_client *att, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_warn("%s: ATT protocol error: %s in answer to a %s: closing the bearer",
		 att->name[0] ? att->name : "ATT bearer", what,
		 att_opcode_name(att->outstanding->opcode));
	die(att, -EBADMSG);
}

static void handle_pdu(struct att_client *att, const uint8_t *buf, size_t n)
{
	struct att_pdu pdu;
	int r;

	if (n > att->mtu) {
		att->stats.malformed++;
		if (att->outstanding && is_answer(buf[0])) {
			protocol_error(att, "%s of %zu bytes, longer than the MTU %u",
				       att_opcode_name(buf[0]), n, (unsigned)att->mtu);
			return;
		}
		/* Even a bad indication is confirmed: the server sends no other one until then. */
		if (buf[0] == ATT_OP_HANDLE_VALUE_IND)
			confirm(att);
		return;
	}
	r = att_pdu_decode(buf, n, &pdu);
	if (r == -ENOTSUP) {
		att->stats.unknown_opcode++;
		/* Bit 6 marks commands, which never get a response. */
		if (!(buf[0] & 0x40))
			send_not_supported(att, buf[0]);
		return;
	}
	if (r < 0) {
		att->stats.malformed++;
		if (att->outstanding && is_answer(buf[0])) {
			protocol_error(att, "malformed %s (%zu bytes)",
				       att_opcode_name(buf[0]), n);
			return;
		}
		if (buf[0] == ATT_OP_HANDLE_VALUE_IND)
			confirm(att);
		return;
	}
	switch (pdu.opcode) {
	case ATT_OP_HANDLE_VALUE_NTF:
		att->stats.notifications++;
		dispatch_value(att, &pdu, false);
		return;
	case ATT_OP_HANDLE_VALUE_IND:
		att->stats.indications++;
		dispatch_value(att, &pdu, true);
		confirm(att);
		return;
	case ATT_OP_ERROR_RSP:
		if (!att->outstanding) {
			att->stats.unexpected_rsp++;
			return;
		}
		if (pdu.error_rsp.req_opcode != att->outstanding->opcode) {
			att->stats.unexpected_rsp++;
			protocol_error(att, "Error Response for a %s",
				       att_opcode_name(pdu.error_rsp.req_opcode));
			return;
		}
		complete(att, -EPROTO, &pdu);
		return;
	default:
		break;
	}
	if (is_response(pdu.opcode)) {
		if (!att->outstanding) {
			att->stats.unexpected_rsp++;
			return;
		}
		if (att_response_for(att->outstanding->opcode) != pdu.opcode) {
			att->stats.unexpected_rsp++;
			protocol_error(att, "%s", att_opcode_name(pdu.opcode));
			return;
		}
		complete(att, 0, &pdu);
		return;
	}
	if (is_client_request(pdu.opcode)) {
		att->stats.peer_requests++;
		send_not_supported(att, pdu.opcode);
		return;
	}
	/* Write Command or Confirmation sent to a client: nothing to do with it. */
	att->stats.unexpected_rsp++;
}

static bool peer_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	if (poll(&p, 1, 0) < 0)
		return false;
	return p.revents & (POLLHUP | POLLRDHUP | POLLERR);
}

static int socket_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0)
		return -ECONNRESET;
	return -err;
}

static void io_cb(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct att_client *att = user_data;
	/*
	 * On the stack, not in the bearer: everything done with the PDU
	 * (decode, handlers, responses' callbacks) happens inside io_cb, and
	 * 2 000 bearers would otherwise hold 1 MB of buffers idle nearly all
	 * the time. One byte more than any PDU may have, so that a longer one
	 * shows as too long.
	 */
	uint8_t buf[ATT_MAX_MTU + 1];
	ssize_t n;

	if (att->dead || att->free_pending)
		return;
	enter(att);
	do
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			die(att, -errno);
		else if (events & (EPOLLHUP | EPOLLERR))
			die(att, socket_error(fd));
	} else if (n == 0 && peer_closed(fd)) {
		/* SEQPACKET: 0 is either EOF or an (invalid) empty PDU. */
		die(att, -ECONNRESET);
	} else {
		att->stats.pdus_rx++;
		if (n == 0)
			att->stats.malformed++;
		else
			handle_pdu(att, buf, (size_t)n);
	}
	leave(att);
}

int att_client_new(struct loop *loop, int fd, struct att_client **out)
{
	struct att_client *att;
	int r;

	if (!loop || fd < 0 || !out)
		return -EINVAL;
	att = calloc(1, sizeof(*att));
	if (!att)
		return -ENOMEM;
	att->loop = loop;
	att->fd = fd;
	att->mtu = ATT_DEFAULT_MTU;
	r = loop_add_io(loop, fd, EPOLLIN, io_cb, att);
	if (r < 0) {
		free(att);
		return r;
	}
	*out = att;
	return 0;
}

void att_client_free(struct att_client *att)
{
	if (!att)
		return;
	if (att->busy) {
		/* Inside one of our callbacks: finish unwinding first. */
		detach(att);
		att->free_pending = true;
		return;
	}
	destroy_now(att);
}

void att_client_set_name(struct att_client *att, const char *name)
{
	snprintf(att->name, sizeof(att->name), "%s", name ? name : "");
}

void att_client_set_disconnect_cb(struct att_client *att, att_disconnect_fn fn, void *user_data)
{
	att->disconnect_fn = fn;
	att->disconnect_data = user_data;
}

static int queue_request(struct att_client *att, struct att_request *req, unsigned flags)
{
	int r;

	if (!att->outstanding && !att->queue_head) {
		r = start_request(att, req);
		if (r < 0)
			return r;
		return 0;
	}
	if (flags & ATT_SEND_URGENT) {
		req->next = att->queue_head;
		att->queue_head = req;
		if (!att->queue_tail)
			att->queue_tail = req;
	} else {
		if (att->queue_tail)
			att->queue_tail->next = req;
		else
			att->queue_head = req;
		att->queue_tail = req;
	}
	return 0;
}

static int send_common(struct att_client *att, const struct att_pdu *pdu, uint16_t client_mtu,
		       unsigned flags, att_response_fn fn, void *user_data, att_destroy_fn destroy,
		       unsigned *id_out)
{
	struct att_request *req;
	int r;

	if (!att || !pdu || !fn)
		return -EINVAL;
	if (att->dead)
		return -ENOTCONN;
	if (!is_client_request(pdu->opcode))
		return -EINVAL;
	req = calloc(1, sizeof(*req));
	if (!req)
		return -ENOMEM;
	r = att_pdu_encode(pdu, req->pdu, att->mtu, &req->len);
	if (r < 0)
		goto fail;
	req->opcode = pdu->opcode;
	req->client_mtu = client_mtu;
	req->fn = fn;
	req->user_data = user_data;
	req->destroy = destroy;
	req->id = new_id(att);
	r = queue_request(att, req, flags);
	if (r < 0)
		goto fail;
	if (id_out)
		*id_out = req->id;
	return 0;
fail:
	free(req); /* destroy is not called: the caller still owns user_data */
	return r;
}

int att_client_send(struct att_client *att, const struct att_pdu *pdu, unsigned flags,
		    att_response_fn fn, void *user_data, att_destroy_fn destroy, unsigned *id_out)
{
	if (pdu && pdu->opcode == ATT_OP_MTU_REQ)
		return -EINVAL; /* use att_client_exchange_mtu so the MTU gets applied */
	return send_common(att, pdu, 0, flags, fn, user_data, destroy, id_out);
}

int att_client_exchange_mtu(struct att_client *att, uint16_t client_mtu, att_response_fn fn,
			    void *user_data, att_destroy_fn destroy, unsigned *id_out)
{
	struct att_pdu pdu = { .opcode = ATT_OP_MTU_REQ };

	if (client_mtu < ATT_DEFAULT_MTU || client_mtu > ATT_MAX_MTU)
		return -EINVAL;
	pdu.mtu.mtu = client_mtu;
	return send_common(att, &pdu, client_mtu, 0, fn, user_data, destroy, id_out);
}

int att_client_cancel(struct att_client *att, unsigned id)
{
	struct att_request **pp;

	if (!att || id == 0)
		return -EINVAL;
	if (att->outstanding && att->outstanding->id == id) {
		struct att_request *req = att->outstanding;

		if (!req->fn && !req->destroy)
			return -ENOENT;
		req->fn = NULL;
		if (req->destroy)
			req->destroy(req->user_data);
		req->destroy = NULL;
		return 0;
	}
	for (pp = &att->queue_head; *pp; pp = &(*pp)->next) {
		struct att_request *req = *pp;

		if (req->id != id)
			continue;
		*pp = req->next;
		if (att->queue_tail == req) {
			struct att_request *t = att->queue_head;

			while (t && t->next)
				t = t->next;
			att->queue_tail = t;
		}
		request_free(req);
		return 0;
	}
	return -ENOENT;
}

int att_client_write_cmd(struct att_client *att, uint16_t handle, const uint8_t *value, size_t len)
{
	struct att_pdu pdu = { .opcode = ATT_OP_WRITE_CMD };
	uint8_t buf[ATT_MAX_MTU];
	size_t n;
	int r;

	if (!att || (len && !value))
		return -EINVAL;
	if (att->dead)
		return -ENOTCONN;
	pdu.handle_value.handle = handle;
	pdu.handle_value.value = value;
	pdu.handle_value.value_len = len;
	r = att_pdu_encode(&pdu, buf, att->mtu, &n);
	if (r < 0)
		return r;
	return write_pdu(att, buf, n);
}

int att_client_register_notify(struct att_client *att, uint16_t handle, att_notify_fn fn,
			       void *user_data, att_destroy_fn destroy, unsigned *id_out)
{
	struct notify_handler *h, **pp;

	if (!att || !fn)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->id = new_id(att);
	h->handle = handle;
	h->fn = fn;
	h->user_data = user_data;
	h->destroy = destroy;
	for (pp = &att->handlers; *pp; pp = &(*pp)->next)
		;
	*pp = h;
	if (id_out)
		*id_out = h->id;
	return 0;
}

int att_client_unregister_notify(struct att_client *att, unsigned id)
{
	struct notify_handler **pp;

	if (!att || id == 0)
		return -EINVAL;
	for (pp = &att->handlers; *pp; pp = &(*pp)->next) {
		struct notify_handler *h = *pp;

		if (h->id != id || h->removed)
			continue;
		if (att->busy) {
			h->removed = true; /* a dispatch may be walking the list */
			return 0;
		}
		*pp = h->next;
		if (h->destroy)
			h->destroy(h->user_data);
		free(h);
		return 0;
	}
	return -ENOENT;
}

uint16_t att_client_mtu(const struct att_client *att)
{
	return att->mtu;
}

bool att_client_is_connected(const struct att_client *att)
{
	return !att->dead;
}

void att_client_get_stats(const struct att_client *att, struct att_client_stats *out)
{
	*out = att->stats;
}
