/*
 * test_att_client.c - the ATT bearer against a scripted peer over
 * socketpair(AF_UNIX, SOCK_SEQPACKET), with an injected loop clock.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "att_client.h"
#include "test_alloc.h"

#define B(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

struct fixture {
	uint64_t now;
	struct loop *loop;
	int peer;
	struct att_client *att;
	int disconnects;
	int disconnect_err;
};

struct result {
	int calls;
	int err;
	uint8_t opcode;
	uint8_t att_error;
	int destroyed;
	int order; /* completion order stamp */
};

static int order_counter;

static uint64_t fake_clock(void *data)
{
	return *(uint64_t *)data;
}

static void on_disconnect(int err, void *user_data)
{
	struct fixture *f = user_data;

	f->disconnects++;
	f->disconnect_err = err;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];

	assert_non_null(f);
	assert_int_equal(loop_new_with_clock(fake_clock, &f->now, &f->loop), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(att_client_new(f->loop, sv[0], &f->att), 0);
	att_client_set_disconnect_cb(f->att, on_disconnect, f);
	f->peer = sv[1];
	order_counter = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	att_client_free(f->att);
	close(f->peer);
	loop_free(f->loop);
	free(f);
	test_alloc_reset();
	return 0;
}

static void on_result(int err, const struct att_pdu *rsp, void *user_data)
{
	struct result *r = user_data;

	r->calls++;
	r->err = err;
	r->order = ++order_counter;
	if (rsp) {
		r->opcode = rsp->opcode;
		if (rsp->opcode == ATT_OP_ERROR_RSP)
			r->att_error = rsp->error_rsp.error;
	}
}

static void on_destroy(void *user_data)
{
	((struct result *)user_data)->destroyed++;
}

static void pump(struct fixture *f)
{
	for (int i = 0; i < 4; i++)
		assert_int_equal(loop_run_once(f->loop, 0), 0);
}

/* Peer side: the next PDU from the client must be exactly this. */
static void expect_pdu(struct fixture *f, const uint8_t *want, size_t len)
{
	uint8_t buf[600];
	ssize_t n = recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT);

	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(buf, want, len);
}

static void expect_nothing(struct fixture *f)
{
	uint8_t buf[600];

	assert_int_equal(recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void peer_send(struct fixture *f, const uint8_t *pdu, size_t len)
{
	assert_int_equal(send(f->peer, pdu, len, 0), (ssize_t)len);
	pump(f);
}

static void read_req(struct fixture *f, uint16_t handle, unsigned flags, struct result *r,
		     unsigned *id)
{
	struct att_pdu pdu = { .opcode = ATT_OP_READ_REQ };

	pdu.read_req.handle = handle;
	assert_int_equal(att_client_send(f->att, &pdu, flags, on_result, r, on_destroy, id), 0);
}

static void test_mtu_exchange(void **state)
{
	struct fixture *f = *state;
	struct result r = { 0 };

	assert_int_equal(att_client_exchange_mtu(f->att, 517, on_result, &r, NULL, NULL), 0);
	expect_pdu(f, B(0x02, 0x05, 0x02));
	assert_int_equal(r.calls, 0); /* never from inside send */
	peer_send(f, B(0x03, 0x05, 0x02));
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(att_client_mtu(f->att), 517);

	/* smaller server MTU wins; an illegal one below 23 is treated as 23 */
	assert_int_equal(att_client_exchange_mtu(f->att, 517, on_result, &r, NULL, NULL), 0);
	expect_pdu(f, B(0x02, 0x05, 0x02));
	peer_send(f, B(0x03, 0x64, 0x00));
	assert_int_equal(att_client_mtu(f->att), 100);
	assert_int_equal(att_client_exchange_mtu(f->att, 517, on_result, &r, NULL, NULL), 0);
	expect_pdu(f, B(0x02, 0x05, 0x02));
	peer_send(f, B(0x03, 0x05, 0x00));
	assert_int_equal(att_client_mtu(f->att), 23);

	assert_int_equal(att_client_exchange_mtu(f->att, 22, on_result, &r, NULL, NULL), -EINVAL);
	assert_int_equal(att_client_exchange_mtu(f->att, 518, on_result, &r, NULL, NULL), -EINVAL);
}

static void test_one_outstanding_fifo_and_urgent(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 }, b = { 0 }, c = { 0 }, u = { 0 };

	read_req(f, 0x0010, 0, &a, NULL);
	read_req(f, 0x0011, 0, &b, NULL);
	read_req(f, 0x0012, 0, &c, NULL);
	read_req(f, 0x0099, ATT_SEND_URGENT, &u, NULL);
	pump(f);
	expect_pdu(f, B(0x0A, 0x10, 0x00));
	expect_nothing(f); /* one outstanding */

	peer_send(f, B(0x0B, 0xAA));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.opcode, ATT_OP_READ_RSP);
	assert_int_equal(a.destroyed, 1);
	/* the urgent request jumped the queue, but not the outstanding one */
	expect_pdu(f, B(0x0A, 0x99, 0x00));
	expect_nothing(f);
	peer_send(f, B(0x0B));
	expect_pdu(f, B(0x0A, 0x11, 0x00));
	peer_send(f, B(0x0B));
	expect_pdu(f, B(0x0A, 0x12, 0x00));
	peer_send(f, B(0x0B));
	assert_int_equal(a.order, 1);
	assert_int_equal(u.order, 2);
	assert_int_equal(b.order, 3);
	assert_int_equal(c.order, 4);
}

static void test_write_cmd_overtakes_queue(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 }, b = { 0 };

	read_req(f, 0x0010, 0, &a, NULL);
	read_req(f, 0x0011, 0, &b, NULL);
	assert_int_equal(att_client_write_cmd(f->att, 0x0020, (const uint8_t[]){ 1, 0 }, 2), 0);
	expect_pdu(f, B(0x0A, 0x10, 0x00));
	expect_pdu(f, B(0x52, 0x20, 0x00, 0x01, 0x00));
	expect_nothing(f);
	peer_send(f, B(0x0B));
	expect_pdu(f, B(0x0A, 0x11, 0x00));
	/* a value longer than MTU - 3 does not fit */
	uint8_t big[21] = { 0 };
	assert_int_equal(att_client_write_cmd(f->att, 0x0020, big, sizeof(big)), -ENOSPC);
	expect_nothing(f);
}

static void test_error_response(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 };

	read_req(f, 0x0010, 0, &a, NULL);
	expect_pdu(f, B(0x0A, 0x10, 0x00));
	peer_send(f, B(0x01, 0x0A, 0x10, 0x00, 0x02));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.err, -EPROTO);
	assert_int_equal(a.att_error, ATT_ERR_READ_NOT_PERMITTED);
}

static void test_transaction_timeout_kills_bearer(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 }, b = { 0 };
	struct att_client_stats st;

	read_req(f, 0x0010, 0, &a, NULL);
	read_req(f, 0x0011, 0, &b, NULL);
	f->now += ATT_TRANSACTION_TIMEOUT_MS - 1;
	pump(f);
	assert_int_equal(a.calls, 0);
	assert_int_equal(f->disconnects, 0);
	f->now += 1;
	pump(f);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.err, -ETIMEDOUT);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.err, -ETIMEDOUT);
	assert_int_equal(a.destroyed + b.destroyed, 2);
	assert_int_equal(f->disconnects, 1);
	assert_int_equal(f->disconnect_err, -ETIMEDOUT);
	assert_false(att_client_is_connected(f->att));
	/* a late response changes nothing; no more requests per spec */
	send(f->peer, (const uint8_t[]){ 0x0B }, 1, 0);
	pump(f);
	assert_int_equal(a.calls, 1);
	att_client_get_stats(f->att, &st);
	assert_int_equal(st.timeouts, 1);
}

static void test_transaction_timeout_no_new_requests(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 };
	struct att_pdu pdu = { .opcode = ATT_OP_READ_REQ };

	read_req(f, 0x0010, 0, &a, NULL);
	f->now += ATT_TRANSACTION_TIMEOUT_MS;
	pump(f);
	pdu.read_req.handle = 1;
	assert_int_equal(att_client_send(f->att, &pdu, 0, on_result, &a, NULL, NULL), -ENOTCONN);
	assert_int_equal(att_client_write_cmd(f->att, 1, NULL, 0), -ENOTCONN);
	f->now += 100000;
	pump(f);
	assert_int_equal(f->disconnects, 1);
}

static void test_garbage_is_counted_and_never_trusted(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 };
	struct att_client_stats st;
	uint8_t oversize[24] = { 0x1B, 0x01, 0x00 };

	/* unsolicited responses: nothing outstanding */
	peer_send(f, B(0x0B, 0x01));
	peer_send(f, B(0x01, 0x0A, 0x01, 0x00, 0x0A));
	peer_send(f, B(0x09, 0x07, 0x02, 0x00, 0x10)); /* malformed too */
	struct att_pdu pdu = { .opcode = ATT_OP_READ_BY_TYPE_REQ };

	pdu.read_by_type_req.start = 1;
	pdu.read_by_type_req.end = 0xFFFF;
	att_uuid_from16(0x2803, &pdu.read_by_type_req.type);
	assert_int_equal(att_client_send(f->att, &pdu, 0, on_result, &a, NULL, NULL), 0);
	expect_pdu(f, B(0x08, 0x01, 0x00, 0xFF, 0xFF, 0x03, 0x28));
	/* garbage that is no answer to the request leaves it outstanding */
	peer_send(f, B(0x1B, 0x00, 0x00, 0x01));       /* notification of handle 0 */
	peer_send(f, oversize, sizeof(oversize));      /* notification longer than MTU 23 */
	assert_int_equal(send(f->peer, "", 0, 0), 0);  /* empty packet */
	pump(f);
	peer_send(f, B(0x3F, 0x01));                   /* unknown request opcode */
	expect_pdu(f, B(0x01, 0x3F, 0x00, 0x00, 0x06));
	peer_send(f, B(0x7F, 0x01));                   /* unknown command: no answer */
	peer_send(f, B(0x02, 0x17, 0x00));             /* server sends a request */
	expect_pdu(f, B(0x01, 0x02, 0x00, 0x00, 0x06));
	peer_send(f, B(0x0A, 0x03, 0x00));
	expect_pdu(f, B(0x01, 0x0A, 0x00, 0x00, 0x06));
	peer_send(f, B(0x52, 0x03, 0x00, 0x01));       /* a Write Command to a client */
	expect_nothing(f);
	assert_int_equal(a.calls, 0);
	assert_true(att_client_is_connected(f->att));

	att_client_get_stats(f->att, &st);
	assert_int_equal(st.unexpected_rsp, 3);
	assert_int_equal(st.malformed, 4);
	assert_int_equal(st.unknown_opcode, 2); /* 0x3F, 0x7F */
	assert_int_equal(st.peer_requests, 2);

	/* the genuine response is still accepted */
	peer_send(f, B(0x09, 0x07, 0x02, 0x00, 0x10, 0x03, 0x00, 0x19, 0x2A));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.opcode, ATT_OP_READ_BY_TYPE_RSP);
}

/* A new bearer on f, its counters reset. */
static void fresh_bearer(struct fixture *f)
{
	int sv[2];

	att_client_free(f->att);
	close(f->peer);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(att_client_new(f->loop, sv[0], &f->att), 0);
	att_client_set_disconnect_cb(f->att, on_disconnect, f);
	f->peer = sv[1];
	f->disconnects = 0;
	f->disconnect_err = 0;
}

/* Runs fn with stderr captured into buf (NUL-terminated). */
static void capture_stderr(void (*fn)(struct fixture *f, const uint8_t *pdu, size_t len),
			   struct fixture *f, const uint8_t *pdu, size_t len, char *buf,
			   size_t cap)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(tmp);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fileno(tmp), STDERR_FILENO), STDERR_FILENO);
	fn(f, pdu, len);
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, cap - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

/*
 * issue 9 item 7: a malformed answer to the outstanding request (wrong
 * length, wrong opcode for it, handle 0 in a list) is a protocol
 * error found at once: that request and the queued one fail with -EBADMSG,
 * the bearer ends (as after a timeout, but without the 30 s), and the log
 * names what was wrong (before: dropped, so the request waited for the 30 s
 * transaction timeout and was logged as one). The fake clock never moves: detection takes 0 ms.
 */
static void test_malformed_response_fails_at_once(void **state)
{
	struct fixture *f = *state;
	uint8_t oversize[24] = { 0x09, 0x07, 0x02, 0x00, 0x10, 0x03, 0x00, 0x19, 0x2A };
	static const struct {
		const char *what;
		uint8_t pdu[24];
		size_t len;
		const char *logged; /* the log line must name this */
	} cases[] = {
		{ "wrong response kind", { 0x0B, 0x01 }, 2, "Read Response" },
		{ "error for another request", { 0x01, 0x0A, 0x01, 0x00, 0x0A }, 5,
		  "Error Response for a Read Request" },
		{ "truncated error response", { 0x01, 0x08 }, 2, "malformed Error Response" },
		{ "list not a multiple of 7", { 0x09, 0x07, 0x02, 0x00, 0x10 }, 5,
		  "malformed Read By Type Response (5 bytes)" },
		{ "handle 0", { 0x09, 0x07, 0x00, 0x00, 0x10, 0x03, 0x00, 0x19, 0x2A }, 9,
		  "malformed Read By Type Response" },
		{ "MTU response to another request", { 0x03, 0x17, 0x00 }, 3,
		  "Exchange MTU Response" },
	};
	char log[2048];

	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *bad = i < sizeof(cases) / sizeof(cases[0]) ? cases[i].pdu : oversize;
		size_t len = i < sizeof(cases) / sizeof(cases[0]) ? cases[i].len : sizeof(oversize);
		const char *logged = i < sizeof(cases) / sizeof(cases[0])
					     ? cases[i].logged
					     : "Read By Type Response of 24 bytes, longer than the MTU 23";
		struct result a = { 0 }, b = { 0 };
		struct att_pdu pdu = { .opcode = ATT_OP_READ_BY_TYPE_REQ };
		uint64_t sent_at;

		fresh_bearer(f);
		pdu.read_by_type_req.start = 0x0001;
		pdu.read_by_type_req.end = 0x0020;
		att_uuid_from16(0x2803, &pdu.read_by_type_req.type);
		assert_int_equal(att_client_send(f->att, &pdu, 0, on_result, &a, on_destroy, NULL),
				 0);
		read_req(f, 0x0011, 0, &b, NULL);
		expect_pdu(f, B(0x08, 0x01, 0x00, 0x20, 0x00, 0x03, 0x28));
		sent_at = f->now;
		capture_stderr(peer_send, f, bad, len, log, sizeof(log));
		if (a.calls != 1)
			fail_msg("case %zu: no answer to the request after %llu ms", i,
				 (unsigned long long)(f->now - sent_at));
		assert_int_equal(f->now - sent_at, 0);
		assert_int_equal(a.err, -EBADMSG);
		assert_int_equal(a.destroyed, 1);
		assert_int_equal(b.calls, 1);
		assert_int_equal(b.err, -EBADMSG);
		assert_int_equal(f->disconnects, 1);
		assert_int_equal(f->disconnect_err, -EBADMSG);
		assert_false(att_client_is_connected(f->att));
		if (!strstr(log, logged) || !strstr(log, "Read By Type Request"))
			fail_msg("case %zu: log does not name \"%s\": %s", i, logged, log);
		/* the queued request was never written; nothing more goes out */
		expect_nothing(f);
		f->now += ATT_TRANSACTION_TIMEOUT_MS;
		pump(f);
		assert_int_equal(a.calls, 1);
		assert_int_equal(f->disconnects, 1);
	}
}

/* An owner's name prefixes the bearer's log lines. */
static void test_protocol_error_logged_with_name(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 };
	char log[1024];

	att_client_set_name(f->att, "cuff bay1-left-thigh");
	read_req(f, 0x0010, 0, &a, NULL);
	expect_pdu(f, B(0x0A, 0x10, 0x00));
	capture_stderr(peer_send, f, B(0x13), log, sizeof(log));
	assert_int_equal(a.err, -EBADMSG);
	if (!strstr(log, "cuff bay1-left-thigh: ") || !strstr(log, "Write Response") ||
	    !strstr(log, "Read Request"))
		fail_msg("log: %s", log);
}

struct notes {
	int calls;
	uint16_t handle;
	uint8_t value[8];
	size_t len;
	bool indication;
};

static void on_note(uint16_t handle, const uint8_t *value, size_t len, bool indication,
		    void *user_data)
{
	struct notes *n = user_data;

	n->calls++;
	n->handle = handle;
	n->len = len < sizeof(n->value) ? len : sizeof(n->value);
	memcpy(n->value, value, n->len);
	n->indication = indication;
}

static void test_notifications_and_indications(void **state)
{
	struct fixture *f = *state;
	struct notes h20 = { 0 }, all = { 0 };
	unsigned id20, id_all;
	struct att_client_stats st;

	assert_int_equal(att_client_register_notify(f->att, 0x0020, on_note, &h20, NULL, &id20), 0);
	assert_int_equal(att_client_register_notify(f->att, 0, on_note, &all, NULL, &id_all), 0);
	peer_send(f, B(0x1B, 0x20, 0x00, 0x01, 0x02));
	assert_int_equal(h20.calls, 1);
	assert_int_equal(h20.len, 2);
	assert_false(h20.indication);
	assert_int_equal(all.calls, 1);
	expect_nothing(f);

	peer_send(f, B(0x1B, 0x30, 0x00, 0x05));
	assert_int_equal(h20.calls, 1);
	assert_int_equal(all.calls, 2);
	assert_int_equal(all.handle, 0x0030);

	peer_send(f, B(0x1D, 0x20, 0x00, 0x80, 0x06, 0x00));
	assert_int_equal(h20.calls, 2);
	assert_true(h20.indication);
	expect_pdu(f, B(0x1E));

	/* indication for a handle nobody listens to is confirmed all the same */
	assert_int_equal(att_client_unregister_notify(f->att, id_all), 0);
	assert_int_equal(att_client_unregister_notify(f->att, id_all), -ENOENT);
	peer_send(f, B(0x1D, 0x44, 0x00));
	expect_pdu(f, B(0x1E));
	assert_int_equal(all.calls, 3); /* the earlier indication, then nothing */

	/* malformed notification: handle missing */
	peer_send(f, B(0x1B, 0x20));
	assert_int_equal(h20.calls, 2);
	att_client_get_stats(f->att, &st);
	assert_int_equal(st.malformed, 1);
	assert_int_equal(st.notifications, 2);
	assert_int_equal(st.indications, 2);

	/*
	 * Every indication is confirmed, a malformed one too (handle missing,
	 * handle 0, longer than the MTU): the server sends no other indication
	 * until it has the confirmation, so withholding it would stall them all
	 * (a Service Changed included). It is not dispatched.
	 */
	peer_send(f, B(0x1D, 0x20));
	expect_pdu(f, B(0x1E));
	peer_send(f, B(0x1D, 0x00, 0x00, 0x01));
	expect_pdu(f, B(0x1E));
	{
		uint8_t big[ATT_DEFAULT_MTU + 1] = { 0x1D, 0x20, 0x00 };

		peer_send(f, big, sizeof(big));
	}
	expect_pdu(f, B(0x1E));
	expect_nothing(f);
	assert_int_equal(h20.calls, 2);
	att_client_get_stats(f->att, &st);
	assert_int_equal(st.malformed, 4);
	assert_int_equal(st.indications, 2);
}

/* Records the first value byte of every notification, in arrival order. */
struct sequence {
	int calls;
	uint8_t first[64];
};

static void on_sequence(uint16_t handle, const uint8_t *value, size_t len, bool indication,
			void *user_data)
{
	struct sequence *q = user_data;

	assert_true(len >= 1 && q->calls < 64);
	q->first[q->calls++] = value[0];
}

/* Another fd of the loop: when it got its turn, how many notifications the
 * bearer had delivered. */
struct neighbour {
	const struct sequence *q;
	int calls;
	int seen_at;
};

static void on_neighbour(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct neighbour *nb = user_data;
	char buf[8];

	assert_int_equal(read(fd, buf, sizeof(buf)), 1);
	if (nb->calls++ == 0)
		nb->seen_at = nb->q->calls;
}

/*
 * A backlog of PDUs on one bearer: all delivered, in order, each once; one
 * per wake-up, so one chatty bearer cannot starve the other fds: another
 * ready fd gets its turn after the first.
 */
static void test_backlog_order_and_one_per_wakeup(void **state)
{
	struct fixture *f = *state;
	struct sequence q = { 0 };
	struct neighbour nb = { .q = &q };
	struct att_client_stats st;
	int sv[2];

	assert_int_equal(att_client_register_notify(f->att, 0x0020, on_sequence, &q, NULL, NULL), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(loop_add_io(f->loop, sv[1], EPOLLIN, on_neighbour, &nb), 0);
	for (uint8_t i = 0; i < 40; i++)
		assert_int_equal(send(f->peer, (const uint8_t[]){ 0x1B, 0x20, 0x00, i }, 4, 0), 4);
	assert_int_equal(write(sv[0], "n", 1), 1);
	pump(f);
	assert_int_equal(q.calls, 40);
	assert_int_equal(nb.calls, 1);
	assert_int_equal(nb.seen_at, 1);
	for (int i = 0; i < 40; i++)
		assert_int_equal(q.first[i], i);
	att_client_get_stats(f->att, &st);
	assert_int_equal(st.pdus_rx, 40);
	assert_int_equal(st.notifications, 40);
	assert_int_equal(f->disconnects, 0);
	assert_int_equal(loop_del_io(f->loop, sv[1]), 0);
	close(sv[0]);
	close(sv[1]);
}

/* An empty packet in a backlog is counted and skipped; the data before
 * an EOF is delivered, then the bearer ends once. */
static void test_backlog_empty_pdu_then_eof(void **state)
{
	struct fixture *f = *state;
	struct sequence q = { 0 };
	struct att_client_stats st;

	assert_int_equal(att_client_register_notify(f->att, 0x0020, on_sequence, &q, NULL, NULL), 0);
	assert_int_equal(send(f->peer, (const uint8_t[]){ 0x1B, 0x20, 0x00, 7 }, 4, 0), 4);
	assert_int_equal(send(f->peer, "", 0, 0), 0);
	assert_int_equal(send(f->peer, (const uint8_t[]){ 0x1B, 0x20, 0x00, 8 }, 4, 0), 4);
	assert_int_equal(send(f->peer, (const uint8_t[]){ 0x1B, 0x20, 0x00, 9 }, 4, 0), 4);
	assert_int_equal(send(f->peer, (const uint8_t[]){ 0x1B, 0x20, 0x00, 10 }, 4, 0), 4);
	pump(f);
	assert_int_equal(q.calls, 4);
	assert_int_equal(q.first[0], 7);
	assert_int_equal(q.first[3], 10);
	att_client_get_stats(f->att, &st);
	assert_int_equal(st.malformed, 1);
	assert_int_equal(st.pdus_rx, 5);
	assert_int_equal(f->disconnects, 0);

	assert_int_equal(send(f->peer, (const uint8_t[]){ 0x1B, 0x20, 0x00, 11 }, 4, 0), 4);
	assert_int_equal(send(f->peer, (const uint8_t[]){ 0x1B, 0x20, 0x00, 12 }, 4, 0), 4);
	close(f->peer);
	f->peer = -1;
	pump(f);
	assert_int_equal(q.calls, 6);
	assert_int_equal(q.first[5], 12);
	assert_int_equal(f->disconnects, 1);
	assert_int_equal(f->disconnect_err, -ECONNRESET);
}

static void test_eof_disconnects_once(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 }, b = { 0 };

	read_req(f, 0x0010, 0, &a, NULL);
	read_req(f, 0x0011, 0, &b, NULL);
	close(f->peer);
	f->peer = -1;
	pump(f);
	assert_int_equal(f->disconnects, 1);
	assert_int_equal(f->disconnect_err, -ECONNRESET);
	assert_int_equal(a.err, -ECONNRESET);
	assert_int_equal(b.err, -ECONNRESET);
	assert_int_equal(a.calls + b.calls, 2);
	pump(f);
	f->now += 60000;
	pump(f);
	assert_int_equal(f->disconnects, 1);
}

static void free_in_callback(int err, const struct att_pdu *rsp, void *user_data)
{
	struct fixture *f = user_data;

	att_client_free(f->att);
	f->att = NULL;
}

static void free_on_disconnect(int err, void *user_data)
{
	struct fixture *f = user_data;

	f->disconnects++;
	att_client_free(f->att);
	f->att = NULL;
}

static void test_free_from_callbacks(void **state)
{
	struct fixture *f = *state;
	struct att_pdu pdu = { .opcode = ATT_OP_READ_REQ };
	struct result b = { 0 };

	pdu.read_req.handle = 1;
	assert_int_equal(att_client_send(f->att, &pdu, 0, free_in_callback, f, NULL, NULL), 0);
	read_req(f, 0x0002, 0, &b, NULL);
	expect_pdu(f, B(0x0A, 0x01, 0x00));
	/* two PDUs in one wakeup: the second must not touch the freed bearer */
	send(f->peer, (const uint8_t[]){ 0x0B }, 1, 0);
	send(f->peer, (const uint8_t[]){ 0x1B, 0x01, 0x00 }, 3, 0);
	pump(f);
	assert_null(f->att);
	assert_int_equal(b.calls, 0);
	assert_int_equal(b.destroyed, 1);
	assert_int_equal(f->disconnects, 0);
	/* freed: the fd is closed, nothing (e.g. a confirmation) was written */
	uint8_t buf[8];
	assert_true(recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT) <= 0);

	/* free from inside the disconnect callback */
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(att_client_new(f->loop, sv[0], &f->att), 0);
	att_client_set_disconnect_cb(f->att, free_on_disconnect, f);
	close(sv[1]);
	pump(f);
	assert_null(f->att);
	assert_int_equal(f->disconnects, 1);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 }, b = { 0 }, c = { 0 };
	unsigned ida, idb;

	read_req(f, 0x0010, 0, &a, &ida);
	read_req(f, 0x0011, 0, &b, &idb);
	read_req(f, 0x0012, 0, &c, NULL);
	assert_int_equal(att_client_cancel(f->att, idb), 0);
	assert_int_equal(b.destroyed, 1);
	assert_int_equal(att_client_cancel(f->att, idb), -ENOENT);
	assert_int_equal(att_client_cancel(f->att, ida), 0);
	assert_int_equal(a.destroyed, 1);
	assert_int_equal(att_client_cancel(f->att, ida), -ENOENT);
	expect_pdu(f, B(0x0A, 0x10, 0x00));
	/* the cancelled outstanding request's response is swallowed, then c goes out */
	peer_send(f, B(0x0B));
	assert_int_equal(a.calls, 0);
	expect_pdu(f, B(0x0A, 0x12, 0x00));
	peer_send(f, B(0x0B));
	assert_int_equal(c.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(att_client_cancel(f->att, 12345), -ENOENT);
}

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 };
	struct att_pdu pdu = { .opcode = ATT_OP_WRITE_REQ };
	uint8_t big[21] = { 0 };

	pdu.handle_value.handle = 1;
	pdu.handle_value.value = big;
	pdu.handle_value.value_len = sizeof(big);
	assert_int_equal(att_client_send(f->att, &pdu, 0, on_result, &a, on_destroy, NULL),
			 -ENOSPC);
	pdu.opcode = ATT_OP_HANDLE_VALUE_NTF;
	pdu.handle_value.value_len = 1;
	assert_int_equal(att_client_send(f->att, &pdu, 0, on_result, &a, on_destroy, NULL),
			 -EINVAL);
	pdu.opcode = ATT_OP_MTU_REQ;
	assert_int_equal(att_client_send(f->att, &pdu, 0, on_result, &a, on_destroy, NULL),
			 -EINVAL);
	assert_int_equal(a.destroyed, 0); /* failure leaves user_data to the caller */
	expect_nothing(f);
}

static void test_allocation_failures(void **state)
{
	struct fixture *f = *state;
	struct att_client *att = (struct att_client *)0x1;
	struct result a = { 0 };
	struct att_pdu pdu = { .opcode = ATT_OP_READ_REQ };
	unsigned id = 77;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	test_alloc_fail_after(0);
	assert_int_equal(att_client_new(f->loop, sv[0], &att), -ENOMEM);
	assert_ptr_equal(att, (struct att_client *)0x1);
	pdu.read_req.handle = 1;
	assert_int_equal(att_client_send(f->att, &pdu, 0, on_result, &a, NULL, &id), -ENOMEM);
	assert_int_equal(id, 77);
	assert_int_equal(att_client_register_notify(f->att, 1, on_note, NULL, NULL, &id), -ENOMEM);
	assert_int_equal(id, 77);
	test_alloc_reset();
	expect_nothing(f);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mtu_exchange, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_outstanding_fifo_and_urgent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_cmd_overtakes_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_timeout_kills_bearer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_timeout_no_new_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_garbage_is_counted_and_never_trusted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed_response_fails_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_protocol_error_logged_with_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_notifications_and_indications, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog_order_and_one_per_wakeup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog_empty_pdu_then_eof, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_eof_disconnects_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
