/*
 * test_sim.c - the simulator's I/O layer on a real event loop: sockets and
 * their cleanup, the sample tick, the control socket, connection
 * replacement, `drop`, the over-limit -> DEFLATE latency in `stats`, and a
 * congested link (empty packets, a full socket: responses wait, only
 * notifications are dropped).
 *
 * Waits are on conditions with deadlines (the loop is run until the
 * expected PDU or reply is there), never sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "att.h"
#include "bytes.h"
#include "cuff_profile.h"
#include "loop.h"
#include "sim.h"
#include "test_alloc.h"

/* Handles with --handle-shift 0 (the layout test_cuff_gatt discovers). */
#define H_PRESSURE 0x17
#define H_PRESSURE_CCCD 0x18
#define H_CP 0x1B
#define H_CP_CCCD 0x1C

#define DEADLINE_MS 3000

struct env {
	char dir[64];
	struct loop *loop;
	struct sim *sim;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int env_setup(void **state)
{
	static struct env e;
	struct sim_config cfg = { .n_cuffs = 2, .limb = BFR_LIMB_LEG, .rate_hz = 100,
				  .seed = 9, .batch = 1 };

	memset(&e, 0, sizeof(e));
	strcpy(e.dir, "/tmp/cuffsim-test-XXXXXX");
	assert_non_null(mkdtemp(e.dir));
	cfg.dir = e.dir;
	assert_int_equal(loop_new(&e.loop), 0);
	assert_int_equal(sim_new(e.loop, &cfg, &e.sim), 0);
	assert_int_equal(sim_start(e.sim), 0);
	*state = &e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	char path[128];
	struct stat st;

	sim_free(e->sim);
	loop_free(e->loop);
	/* Every socket is unlinked again. */
	snprintf(path, sizeof(path), "%s/cuff-01.sock", e->dir);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/control.sock", e->dir);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(rmdir(e->dir), 0);
	return 0;
}

static int connect_to(const char *dir, const char *name, int type)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type, 0);

	assert_true(fd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Runs the loop until fd has something to read (or EOF); returns recv's result. */
static ssize_t recv_wait(struct env *e, int fd, void *buf, size_t cap)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;

	while (now_ms() < deadline) {
		ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);

		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return n;
		loop_run_once(e->loop, 10);
	}
	fail_msg("nothing arrived within %d ms", DEADLINE_MS);
	return -1;
}

/* Sends a control line and returns its reply line (malloc'd, without newline). */
static char *control(struct env *e, int fd, const char *line)
{
	static char acc[1 << 20];
	size_t len = 0;

	assert_int_equal(send(fd, line, strlen(line), 0), (ssize_t)strlen(line));
	for (;;) {
		ssize_t n = recv_wait(e, fd, acc + len, sizeof(acc) - 1 - len);
		char *nl;

		assert_true(n > 0);
		len += (size_t)n;
		acc[len] = '\0';
		nl = strchr(acc, '\n');
		if (nl) {
			*nl = '\0';
			assert_int_equal(nl + 1 - acc, (long)len); /* exactly one line */
			return strdup(acc);
		}
	}
}

static void att_write(int fd, uint8_t op, uint16_t handle, const uint8_t *v, size_t len)
{
	uint8_t pdu[32] = { op };

	put_le16(pdu + 1, handle);
	memcpy(pdu + 3, v, len);
	assert_int_equal(send(fd, pdu, 3 + len, 0), (ssize_t)(3 + len));
}

static void enable(struct env *e, int fd, uint16_t cccd, uint16_t bits)
{
	uint8_t v[2], rsp[ATT_MAX_MTU];

	put_le16(v, bits);
	att_write(fd, ATT_OP_WRITE_REQ, cccd, v, 2);
	for (;;) { /* notifications may come first; skip to the response */
		ssize_t n = recv_wait(e, fd, rsp, sizeof(rsp));

		assert_true(n > 0);
		if (rsp[0] == ATT_OP_WRITE_RSP)
			return;
		assert_int_equal(rsp[0], ATT_OP_HANDLE_VALUE_NTF);
	}
}

static void test_control_socket_replies(void **state)
{
	struct env *e = *state;
	int c = connect_to(e->dir, "control.sock", SOCK_STREAM);
	char *r;
	char long_line[400];

	r = control(e, c, "limit 1 120\n");
	assert_string_equal(r, "ok limit 1");
	free(r);
	r = control(e, c, "bogus 1\n");
	assert_string_equal(r, "error: unknown command 'bogus'");
	free(r);
	r = control(e, c, "leak 3\n");
	assert_string_equal(r, "error: leak: bad cuff '3' (1..2 or all)");
	free(r);
	memset(long_line, 'x', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\n';
	assert_int_equal(send(c, long_line, sizeof(long_line), 0), (ssize_t)sizeof(long_line));
	r = control(e, c, "");
	assert_string_equal(r, "error: line too long");
	free(r);
	assert_int_equal(send(c, "stats\0x", 7, 0), 7);
	r = control(e, c, "\n");
	assert_string_equal(r, "error: control character in line");
	free(r);
	r = control(e, c, "status 2\n");
	assert_true(strncmp(r, "ok {", 4) == 0);
	{
		json_error_t jerr;
		json_t *o = json_loads(r + 3, 0, &jerr);

		assert_non_null(o);
		assert_int_equal(json_integer_value(json_object_get(o, "cuff")), 2);
		assert_true(json_is_false(json_object_get(o, "connected")));
		assert_true(json_real_value(json_object_get(o, "limit")) == 250.0);
		json_decref(o);
	}
	free(r);
	close(c);
}

static void test_samples_flow_and_connection_replacement(void **state)
{
	struct env *e = *state;
	int a = connect_to(e->dir, "cuff-01.sock", SOCK_SEQPACKET), b, ctl;
	uint8_t buf[ATT_MAX_MTU];
	struct bfr_sample s[4];
	size_t n = 0;
	ssize_t len;
	char *r;

	enable(e, a, H_PRESSURE_CCCD, ATT_CCCD_NOTIFY);
	len = recv_wait(e, a, buf, sizeof(buf));
	assert_int_equal(len, 3 + 1 + BFR_SAMPLE_WIRE_SIZE);
	assert_int_equal(buf[0], ATT_OP_HANDLE_VALUE_NTF);
	assert_int_equal(get_le16(buf + 1), H_PRESSURE);
	assert_int_equal(bfr_pressure_decode(buf + 3, (size_t)len - 3, s, 4, &n), 0);
	assert_int_equal(n, 1);

	/* A second central replaces the first, which sees the link close. */
	b = connect_to(e->dir, "cuff-01.sock", SOCK_SEQPACKET);
	for (;;) {
		len = recv_wait(e, a, buf, sizeof(buf));
		if (len <= 0)
			break;
	}
	assert_int_equal(len, 0);
	/* The new link starts with notifications off: requests still answered. */
	enable(e, b, H_PRESSURE_CCCD, ATT_CCCD_NOTIFY);

	ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	r = control(e, ctl, "drop 1\n");
	assert_string_equal(r, "ok drop 1");
	free(r);
	for (;;) {
		len = recv_wait(e, b, buf, sizeof(buf));
		if (len <= 0)
			break;
	}
	assert_int_equal(len, 0);
	r = control(e, ctl, "status 1\n");
	assert_non_null(strstr(r, "\"connected\":false"));
	assert_non_null(strstr(r, "\"connections\":2"));
	free(r);
	close(a);
	close(b);
	close(ctl);
}

static void test_over_limit_to_deflate_latency(void **state)
{
	struct env *e = *state;
	int cuff = connect_to(e->dir, "cuff-02.sock", SOCK_SEQPACKET);
	int ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	uint8_t buf[ATT_MAX_MTU], deflate[2] = { BFR_CP_DEFLATE, BFR_DEFLATE_SAFETY };
	json_error_t jerr;
	json_t *root, *lat, *c2;
	char *r;
	bool over = false, indicated = false;

	enable(e, cuff, H_PRESSURE_CCCD, ATT_CCCD_NOTIFY);
	enable(e, cuff, H_CP_CCCD, ATT_CCCD_INDICATE);
	free(control(e, ctl, "limit 2 100\n"));
	r = control(e, ctl, "spike 2 150 2000\n");
	assert_string_equal(r, "ok spike 2");
	free(r);
	/* Play the gateway: the first sample above the limit triggers DEFLATE. */
	while (!over) {
		struct bfr_sample s[4];
		size_t n = 0;
		ssize_t len = recv_wait(e, cuff, buf, sizeof(buf));

		assert_true(len > 3);
		if (buf[0] != ATT_OP_HANDLE_VALUE_NTF || get_le16(buf + 1) != H_PRESSURE)
			continue;
		assert_int_equal(bfr_pressure_decode(buf + 3, (size_t)len - 3, s, 4, &n), 0);
		over = s[0].pressure_mmhg > 100;
	}
	att_write(cuff, ATT_OP_WRITE_REQ, H_CP, deflate, sizeof(deflate));
	while (!indicated) {
		ssize_t len = recv_wait(e, cuff, buf, sizeof(buf));
		struct bfr_cp_response rsp;

		assert_true(len > 0);
		if (buf[0] != ATT_OP_HANDLE_VALUE_IND)
			continue;
		assert_int_equal(bfr_cp_response_decode(buf + 3, (size_t)len - 3, &rsp), 0);
		assert_int_equal(rsp.req_opcode, BFR_CP_DEFLATE);
		assert_int_equal(rsp.result, BFR_RESULT_SUCCESS);
		indicated = true;
	}

	r = control(e, ctl, "stats\n");
	assert_true(strncmp(r, "ok {", 4) == 0);
	root = json_loads(r + 3, 0, &jerr);
	free(r);
	assert_non_null(root);
	lat = json_object_get(root, "latency");
	assert_int_equal(json_integer_value(json_object_get(lat, "count")), 1);
	assert_true(json_integer_value(json_object_get(lat, "max_us")) > 0);
	/* Generous: the round trip is local; seconds would mean a broken clock. */
	assert_true(json_integer_value(json_object_get(lat, "max_us")) < 1000000);
	assert_int_equal(json_integer_value(json_object_get(lat, "p50_us")),
			 json_integer_value(json_object_get(lat, "max_us")));
	c2 = json_array_get(json_object_get(root, "cuffs"), 1);
	assert_int_equal(json_array_size(json_object_get(c2, "latency_us")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(c2, "deflates"),
							    "safety")),
			 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(c2, "cp_writes"),
							    "deflate")),
			 1);
	assert_true(json_integer_value(json_object_get(c2, "samples_sent")) > 0);
	assert_true(json_integer_value(json_object_get(c2, "att_requests")) >= 3);
	assert_int_equal(json_integer_value(json_object_get(c2, "malformed_pdus")), 0);
	assert_int_equal(json_integer_value(json_object_get(c2, "send_failures")), 0);
	assert_true(json_is_integer(json_object_get(c2, "indications_dropped")));
	json_decref(root);
	close(cuff);
	close(ctl);
}

/* Writes a control-point value and returns the result of its indication. */
static uint8_t cp_result(struct env *e, int fd, const uint8_t *v, size_t len, uint8_t *req_op)
{
	uint8_t buf[ATT_MAX_MTU], cfm = ATT_OP_HANDLE_VALUE_CFM;
	struct bfr_cp_response rsp;
	bool write_rsp = false;

	att_write(fd, ATT_OP_WRITE_REQ, H_CP, v, len);
	for (;;) {
		ssize_t n = recv_wait(e, fd, buf, sizeof(buf));

		assert_true(n > 0);
		if (buf[0] == ATT_OP_WRITE_RSP) {
			write_rsp = true;
			continue;
		}
		if (buf[0] != ATT_OP_HANDLE_VALUE_IND)
			continue;
		/* The Write Response always comes before the result. */
		assert_true(write_rsp);
		assert_int_equal(bfr_cp_response_decode(buf + 3, (size_t)n - 3, &rsp), 0);
		assert_int_equal(send(fd, &cfm, 1, 0), 1);
		*req_op = rsp.req_opcode;
		return rsp.result;
	}
}

static void test_control_point_results_over_the_socket(void **state)
{
	static const struct {
		uint8_t v[6];
		size_t len;
		uint8_t op, result;
	} cases[] = {
		{ { BFR_CP_SET_TARGET, 0xFF, 0x07, 0, 0 }, 5, BFR_CP_SET_TARGET,
		  BFR_RESULT_INVALID_PARAMETER },                     /* NaN */
		{ { BFR_CP_SET_TARGET, 0x04, 0x01, 0, 0 }, 5, BFR_CP_SET_TARGET,
		  BFR_RESULT_LIMIT_EXCEEDED },                        /* 260 mmHg */
		{ { BFR_CP_SET_TARGET, 0x04, 0x01 }, 3, BFR_CP_SET_TARGET,
		  BFR_RESULT_INVALID_PARAMETER },                     /* truncated */
		{ { BFR_CP_DEFLATE, 3 }, 2, BFR_CP_DEFLATE, BFR_RESULT_INVALID_PARAMETER },
		{ { BFR_CP_SET_SUPERVISION, 0x10, 0x00 }, 3, BFR_CP_SET_SUPERVISION,
		  BFR_RESULT_INVALID_PARAMETER },                     /* 16 ms */
		{ { 0x7F }, 1, 0x7F, BFR_RESULT_NOT_SUPPORTED },
		{ { BFR_CP_IDENTIFY }, 1, BFR_CP_IDENTIFY, BFR_RESULT_SUCCESS },
		{ { BFR_CP_SET_TARGET, 0x64, 0x00, 0, 0 }, 5, BFR_CP_SET_TARGET,
		  BFR_RESULT_SUCCESS },                               /* 100 mmHg */
	};
	struct env *e = *state;
	int cuff = connect_to(e->dir, "cuff-01.sock", SOCK_SEQPACKET);
	int ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	char *r;

	enable(e, cuff, H_CP_CCCD, ATT_CCCD_INDICATE);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t op = 0;

		assert_int_equal(cp_result(e, cuff, cases[i].v, cases[i].len, &op), cases[i].result);
		assert_int_equal(op, cases[i].op);
	}
	r = control(e, ctl, "status 1\n");
	/* Only the last write changed the target; the invalid ones were counted. */
	assert_non_null(strstr(r, "\"target\":100"));
	assert_non_null(strstr(r, "\"invalid\":4"));
	assert_non_null(strstr(r, "\"identify_blinks\":1"));
	free(r);
	close(cuff);
	close(ctl);
}

/* The JSON of one cuff's `status` line (caller decrefs). */
static json_t *cuff_status(struct env *e, int ctl, unsigned cuff)
{
	char line[32], *r;
	json_error_t jerr;
	json_t *o;

	snprintf(line, sizeof(line), "status %u\n", cuff);
	r = control(e, ctl, line);
	assert_true(strncmp(r, "ok {", 4) == 0);
	o = json_loads(r + 3, 0, &jerr);
	free(r);
	assert_non_null(o);
	return o;
}

static json_int_t status_int(struct env *e, int ctl, unsigned cuff, const char *field)
{
	json_t *o = cuff_status(e, ctl, cuff);
	json_t *v = json_object_get(o, field);
	json_int_t n;

	if (!json_is_integer(v))
		fail_msg("status %u has no integer \"%s\"", cuff, field);
	n = json_integer_value(v);
	json_decref(o);
	return n;
}

static void read_req(uint8_t pdu[3], uint16_t handle)
{
	pdu[0] = ATT_OP_READ_REQ;
	put_le16(pdu + 1, handle);
}

/* BlueZ ignores an empty SEQPACKET packet; it is not the end of the link. */
static void test_empty_packet_is_not_end_of_file(void **state)
{
	struct env *e = *state;
	int cuff = connect_to(e->dir, "cuff-01.sock", SOCK_SEQPACKET);
	int ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	uint8_t req[3], rsp[ATT_MAX_MTU];
	ssize_t n;

	assert_int_equal(send(cuff, "", 0, 0), 0);
	read_req(req, H_CP_CCCD);
	assert_int_equal(send(cuff, req, sizeof(req), 0), 3);
	/* The empty packet gets no answer (it has no opcode); the request does. */
	n = recv_wait(e, cuff, rsp, sizeof(rsp));
	assert_int_equal(n, 3);
	assert_int_equal(rsp[0], ATT_OP_READ_RSP);
	assert_int_equal(status_int(e, ctl, 1, "connections"), 1);
	assert_int_equal(status_int(e, ctl, 1, "malformed_pdus"), 1);
	assert_int_equal(status_int(e, ctl, 1, "error_responses"), 0);
	{
		json_t *o = cuff_status(e, ctl, 1);

		assert_true(json_is_true(json_object_get(o, "connected")));
		json_decref(o);
	}
	close(cuff);
	close(ctl);
}

/*
 * A central that stops reading: the cuff's socket fills with notifications.
 * A request sent then is still answered (the response waits for room);
 * only notifications are dropped, and counted.
 */
static void test_full_socket_delays_responses_drops_notifications(void **state)
{
	struct env *e = *state;
	int cuff = connect_to(e->dir, "cuff-01.sock", SOCK_SEQPACKET);
	int ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	uint8_t req[3], buf[ATT_MAX_MTU];
	uint64_t deadline = now_ms() + 10000;
	int answers = 0;

	enable(e, cuff, H_PRESSURE_CCCD, ATT_CCCD_NOTIFY);
	while (status_int(e, ctl, 1, "samples_dropped") == 0) {
		if (now_ms() > deadline)
			fail_msg("the cuff's socket never filled");
		loop_run_once(e->loop, 10);
	}
	/* Three requests into the congested link (pipelined: answers keep order). */
	for (uint16_t i = 0; i < 3; i++) {
		read_req(req, i == 1 ? H_PRESSURE_CCCD : H_CP_CCCD);
		assert_int_equal(send(cuff, req, sizeof(req), 0), 3);
	}
	/* The cuff takes them in (and answers) before the central reads again. */
	while (status_int(e, ctl, 1, "att_requests") < 4) {
		if (now_ms() > deadline)
			fail_msg("the cuff did not read the requests");
	}
	deadline = now_ms() + DEADLINE_MS;
	while (answers < 3) {
		ssize_t n = recv_wait(e, cuff, buf, sizeof(buf));

		if (now_ms() > deadline)
			fail_msg("%d of 3 requests answered within %d ms", answers, DEADLINE_MS);
		assert_true(n > 0);
		if (buf[0] == ATT_OP_HANDLE_VALUE_NTF)
			continue;
		assert_int_equal(buf[0], ATT_OP_READ_RSP);
		assert_int_equal(n, 3);
		/* Pressure notifications on (1), Control Point indications off (0). */
		assert_int_equal(get_le16(buf + 1), answers == 1 ? ATT_CCCD_NOTIFY : 0);
		answers++;
	}
	assert_true(status_int(e, ctl, 1, "notifications_dropped") > 0);
	assert_true(status_int(e, ctl, 1, "pdus_delayed") >= 1);
	assert_int_equal(status_int(e, ctl, 1, "send_failures"),
			 status_int(e, ctl, 1, "notifications_dropped"));
	assert_int_equal(status_int(e, ctl, 1, "connections"), 1);
	close(cuff);
	close(ctl);
}

/*
 * A central that sends requests and reads nothing is throttled (the cuff
 * stops reading once its queue is nearly full), never answered partially:
 * every request that got in is answered once it reads again.
 */
static void test_unread_responses_throttle_not_drop(void **state)
{
	struct env *e = *state;
	int cuff = connect_to(e->dir, "cuff-02.sock", SOCK_SEQPACKET);
	int ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	uint8_t req[3], buf[ATT_MAX_MTU];
	int sent = 0, answers = 0, stuck = 0;

	read_req(req, H_CP_CCCD);
	/* Until the link refuses more (the cuff stopped reading): 50 turns without progress. */
	while (sent < 5000 && stuck < 50) {
		if (send(cuff, req, sizeof(req), MSG_DONTWAIT) == 3) {
			sent++;
			stuck = 0;
			continue;
		}
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		stuck++;
		loop_run_once(e->loop, 10);
	}
	assert_true(sent < 5000);
	while (answers < sent) {
		ssize_t n = recv_wait(e, cuff, buf, sizeof(buf));

		assert_int_equal(n, 3);
		assert_int_equal(buf[0], ATT_OP_READ_RSP);
		answers++;
	}
	assert_int_equal(status_int(e, ctl, 2, "att_requests"), sent);
	assert_true(status_int(e, ctl, 2, "pdus_delayed") > 0);
	assert_int_equal(status_int(e, ctl, 2, "send_failures"), 0);
	print_message("congested link: %d requests in before the cuff throttled, all answered\n",
		      sent);
	close(cuff);
	close(ctl);
}

/*
 * Presses the button over the control socket and follows the samples: the
 * bit is in every sample while held. Returns (t of the first sample without
 * the bit) - (t of the first with it) and the number of samples with it,
 * or -1 when a sample was lost on the way (a loaded machine can stall this
 * single-threaded test long enough for the cuff to drop notifications) so
 * the caller presses again.
 */
static int button_hold(struct env *e, int cuff, int ctl, const char *line, int *n_set)
{
	uint8_t buf[ATT_MAX_MTU];
	uint32_t first = 0;
	uint16_t prev_seq = 0;
	bool have_prev = false, gap = false;
	char *r = control(e, ctl, line);

	assert_string_equal(r, "ok button 1");
	free(r);
	*n_set = 0;
	for (;;) {
		struct bfr_sample smp[4];
		size_t n = 0;
		ssize_t len = recv_wait(e, cuff, buf, sizeof(buf));

		assert_true(len > 3);
		if (buf[0] != ATT_OP_HANDLE_VALUE_NTF || get_le16(buf + 1) != H_PRESSURE)
			continue;
		assert_int_equal(bfr_pressure_decode(buf + 3, (size_t)len - 3, smp, 4, &n), 0);
		if (have_prev && smp[0].seq != (uint16_t)(prev_seq + 1))
			gap = gap || *n_set > 0 || (smp[0].status & BFR_ST_BUTTON);
		have_prev = true;
		prev_seq = smp[0].seq;
		if (smp[0].status & BFR_ST_BUTTON) {
			if (!(*n_set)++)
				first = smp[0].t_ms;
		} else if (*n_set) {
			return gap ? -1 : (int)(smp[0].t_ms - first);
		}
	}
}

static void expect_hold(struct env *e, int cuff, int ctl, const char *line, int ms, int n)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int n_set, held = button_hold(e, cuff, ctl, line, &n_set);

		if (held < 0)
			continue;
		assert_int_equal(held, ms);
		assert_int_equal(n_set, n);
		return;
	}
	fail_msg("samples lost around every one of 3 presses of '%s'", line);
}

/* DESIGN section 11: `button <cuff> long|short` holds status bit 6 for 2.5 s / 0.3 s. */
static void test_button_presses(void **state)
{
	struct env *e = *state;
	int cuff = connect_to(e->dir, "cuff-01.sock", SOCK_SEQPACKET);
	int ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	char *r;

	enable(e, cuff, H_PRESSURE_CCCD, ATT_CCCD_NOTIFY);
	/* Bad lines are refused and press nothing. */
	r = control(e, ctl, "button 1 medium\n");
	assert_string_equal(r, "error: button: kind 'medium' is not long or short");
	free(r);
	r = control(e, ctl, "button 3 long\n");
	assert_string_equal(r, "error: button: bad cuff '3' (1..2 or all)");
	free(r);
	r = control(e, ctl, "button 1\n");
	assert_string_equal(r, "error: button: missing kind (long or short)");
	free(r);
	assert_int_equal(status_int(e, ctl, 1, "button_presses"), 0);

	/* 100 Hz: short = 30 samples, 300 ms; long = 250 samples, 2500 ms. */
	expect_hold(e, cuff, ctl, "button 1 short\n", 300, 30);
	expect_hold(e, cuff, ctl, "button 1 long\n", 2500, 250);
	assert_true(status_int(e, ctl, 1, "button_presses") >= 2);
	assert_int_equal(status_int(e, ctl, 2, "button_presses"), 0);
	{
		json_t *o = cuff_status(e, ctl, 1);

		assert_true(json_is_false(json_object_get(o, "button")));
		json_decref(o);
	}
	close(cuff);
	close(ctl);
}

/*
 * Issue 9 item 11: an empty Control Point write carries no opcode, so it is
 * refused at ATT level (Invalid Attribute Value Length) and no indication
 * follows; the next real write is answered as usual.
 */
static void test_empty_control_point_write_att_error(void **state)
{
	struct env *e = *state;
	int cuff = connect_to(e->dir, "cuff-01.sock", SOCK_SEQPACKET);
	int ctl = connect_to(e->dir, "control.sock", SOCK_STREAM);
	uint8_t buf[ATT_MAX_MTU], op = 0;
	const uint8_t identify = BFR_CP_IDENTIFY;
	ssize_t n;

	enable(e, cuff, H_CP_CCCD, ATT_CCCD_INDICATE);
	att_write(cuff, ATT_OP_WRITE_REQ, H_CP, &identify, 0);
	n = recv_wait(e, cuff, buf, sizeof(buf));
	assert_int_equal(n, 5);
	assert_int_equal(buf[0], ATT_OP_ERROR_RSP);
	assert_int_equal(buf[1], ATT_OP_WRITE_REQ);
	assert_int_equal(get_le16(buf + 2), H_CP);
	assert_int_equal(buf[4], ATT_ERR_INVALID_ATTRIBUTE_VALUE_LENGTH);
	/* No indication for it: the next PDU answers the next write. */
	assert_int_equal(cp_result(e, cuff, &identify, 1, &op), BFR_RESULT_SUCCESS);
	assert_int_equal(op, BFR_CP_IDENTIFY);
	{
		json_t *o = cuff_status(e, ctl, 1);
		json_t *w = json_object_get(o, "cp_writes");

		assert_int_equal(json_integer_value(json_object_get(w, "invalid")), 0);
		assert_int_equal(json_integer_value(json_object_get(w, "identify")), 1);
		assert_int_equal(json_integer_value(json_object_get(o, "indications")), 1);
		json_decref(o);
	}
	close(cuff);
	close(ctl);
}

static void test_sim_new_rejects_bad_config(void **state)
{
	struct loop *loop;
	struct sim *s = (struct sim *)0x1;
	struct sim_config cfg = { .dir = "/tmp", .n_cuffs = 1, .limb = BFR_LIMB_LEG,
				  .rate_hz = 50, .batch = 1 };
	char longdir[200];

	assert_int_equal(loop_new(&loop), 0);
	cfg.n_cuffs = 0;
	assert_int_equal(sim_new(loop, &cfg, &s), -EINVAL);
	cfg.n_cuffs = 1;
	cfg.batch = BFR_MAX_SAMPLES_PER_NTF + 1;
	assert_int_equal(sim_new(loop, &cfg, &s), -EINVAL);
	cfg.batch = 1;
	cfg.rate_hz = 0;
	assert_int_equal(sim_new(loop, &cfg, &s), -EINVAL);
	cfg.rate_hz = 50;
	cfg.server_mtu = 22;
	assert_int_equal(sim_new(loop, &cfg, &s), -EINVAL);
	cfg.server_mtu = 518;
	assert_int_equal(sim_new(loop, &cfg, &s), -EINVAL);
	cfg.server_mtu = 0;
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[sizeof(longdir) - 1] = '\0';
	cfg.dir = longdir;
	assert_int_equal(sim_new(loop, &cfg, &s), -ENAMETOOLONG);
	cfg.dir = "/nonexistent/cuffsim";
	assert_int_equal(sim_new(loop, &cfg, &s), -ENOENT);
	assert_ptr_equal(s, (struct sim *)0x1);
	loop_free(loop);
}

static void test_sim_new_alloc_failure_leaves_nothing(void **state)
{
	char dir[] = "/tmp/cuffsim-alloc-XXXXXX";
	struct sim_config cfg = { .n_cuffs = 3, .limb = BFR_LIMB_ARM, .rate_hz = 50, .batch = 1 };
	struct loop *loop;
	struct sim *s = (struct sim *)0x1;
	int err = -ENOMEM;

	assert_non_null(mkdtemp(dir));
	cfg.dir = dir;
	assert_int_equal(loop_new(&loop), 0);
	for (long n = 0; err == -ENOMEM; n++) {
		test_alloc_fail_after(n);
		err = sim_new(loop, &cfg, &s);
		test_alloc_reset();
		if (err == -ENOMEM) {
			assert_ptr_equal(s, (struct sim *)0x1);
			/* Every socket created on the way was closed and unlinked. */
			assert_int_equal(rmdir(dir), 0);
			assert_non_null(mkdtemp(strcpy(dir, "/tmp/cuffsim-alloc-XXXXXX")));
			cfg.dir = dir;
		}
	}
	assert_int_equal(err, 0);
	sim_free(s);
	loop_free(loop);
	assert_int_equal(rmdir(dir), 0);
}

/* --stagger: one group is the plain schedule; ten groups spread over the period. */
static void test_stagger_schedule(void **state)
{
	(void)state;
	for (uint32_t rate = 1; rate <= 1000; rate += 7)
		for (uint64_t k = 0; k < 50; k++) {
			uint64_t t = sim_sample_due_ms(rate, 1, 0, k);

			/* The first ms at which k + 1 samples are due, as before. */
			assert_true(t * rate >= (k + 1) * 1000);
			assert_true(t == 0 || (t - 1) * rate < (k + 1) * 1000);
		}
	/* 50 Hz, 10 groups: sample instants 2 ms apart, each group every 20 ms. */
	for (unsigned g = 0; g < SIM_STAGGER_GROUPS; g++) {
		assert_int_equal(sim_sample_due_ms(50, SIM_STAGGER_GROUPS, g, 0), 20 + 2 * g);
		assert_int_equal(sim_sample_due_ms(50, SIM_STAGGER_GROUPS, g, 7), 160 + 2 * g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stagger_schedule),
		cmocka_unit_test_setup_teardown(test_control_socket_replies, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_samples_flow_and_connection_replacement,
						env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_over_limit_to_deflate_latency, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_control_point_results_over_the_socket,
						env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_empty_packet_is_not_end_of_file, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_full_socket_delays_responses_drops_notifications,
						env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_unread_responses_throttle_not_drop, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_button_presses, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_empty_control_point_write_att_error, env_setup,
						env_teardown),
		cmocka_unit_test(test_sim_new_rejects_bad_config),
		cmocka_unit_test(test_sim_new_alloc_failure_leaves_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
