/* gatt_peer.c - see gatt_peer.h. */
#include "gatt_peer.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "att.h"
#include "cuff_gatt.h"

static int peer_send(const uint8_t *pdu, size_t len, void *user_data)
{
	struct gatt_peer *p = user_data;

	if (p->fd < 0)
		return -ENOTCONN;
	return send(p->fd, pdu, len, MSG_DONTWAIT) == (ssize_t)len ? 0 : -errno;
}

static int peer_read(enum cuff_gatt_char ch, uint8_t *buf, size_t cap, size_t *len,
		     void *user_data)
{
	struct gatt_peer *p = user_data;
	struct bfr_status st = { .state = BFR_STATE_IDLE, .battery_pct = p->battery,
				 .last_lop_mmhg = NAN, .cuff_width_mm = 110 };
	struct bfr_features f = { .cuff_width_mm = 110, .limb = BFR_LIMB_LEG,
				  .max_pressure_mmhg = 300, .sample_rate_hz = 50,
				  .feature_bits = BFR_FEATURE_MEASURE_LOP | BFR_FEATURE_CUE };

	switch (ch) {
	case CUFF_CHAR_STATUS:
		return bfr_status_encode(&st, buf, cap, len);
	case CUFF_CHAR_FEATURES:
		return bfr_features_encode(&f, buf, cap, len);
	case CUFF_CHAR_BATTERY:
		if (cap < 1)
			return -ENOBUFS;
		buf[0] = p->battery;
		*len = 1;
		return 0;
	default:
		return -ENOENT;
	}
}

static void peer_write(enum cuff_gatt_char ch, const uint8_t *value, size_t len, void *user_data)
{
	struct gatt_peer *p = user_data;
	struct bfr_cp_request req;
	struct bfr_cp_response rsp = { .result = BFR_RESULT_SUCCESS };

	if (ch == CUFF_CHAR_SUPERVISION) {
		p->keepalives++;
		return;
	}
	if (ch != CUFF_CHAR_CONTROL_POINT || bfr_cp_request_decode(value, len, &req) < 0)
		return;
	assert_true(p->n_cp < GATT_PEER_LOG_MAX);
	p->cp[p->n_cp++] = req;
	rsp.req_opcode = req.opcode;
	if (req.opcode == BFR_CP_MEASURE_LOP && p->hold_lop) {
		p->lop_pending = true;
		return;
	}
	if (req.opcode == BFR_CP_DEFLATE)
		gatt_peer_fail_lop(p);
	if (req.opcode == BFR_CP_MEASURE_LOP) {
		rsp.has_lop = true;
		rsp.lop_mmhg = p->lop_mmhg;
	}
	cuff_gatt_indicate_cp(p->gatt, &rsp);
}

void gatt_peer_fail_lop(struct gatt_peer *p)
{
	struct bfr_cp_response rsp = { .req_opcode = BFR_CP_MEASURE_LOP,
				       .result = BFR_RESULT_FAILED };

	if (!p->lop_pending)
		return;
	p->lop_pending = false;
	cuff_gatt_indicate_cp(p->gatt, &rsp);
}

static const struct cuff_gatt_ops peer_ops = {
	.send = peer_send,
	.read = peer_read,
	.write = peer_write,
};

static void on_peer_io(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct gatt_peer *p = user_data;
	uint8_t buf[ATT_MAX_MTU + 1];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		cuff_gatt_receive(p->gatt, buf, (size_t)n);
	if (n == 0) {
		loop_del_io(loop, fd);
		close(fd);
		p->fd = -1;
	}
}

static void on_peer_accept(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct gatt_peer *p = user_data;
	int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	assert_true(s >= 0);
	assert_int_equal(p->fd, -1); /* one central at a time */
	p->fd = s;
	cuff_gatt_reset(p->gatt);
	assert_int_equal(loop_add_io(loop, s, EPOLLIN, on_peer_io, p), 0);
}

void gatt_peer_init(struct gatt_peer *p, struct loop *loop, const char *dir, const char *name)
{
	struct cuff_gatt_config cfg = { .device_name = "peer", .serial = name, .server_mtu = 247 };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->fd = -1;
	p->battery = 90;
	p->lop_mmhg = 200;
	assert_int_equal(cuff_gatt_new(&cfg, &peer_ops, p, &p->gatt), 0);
	snprintf(p->path, sizeof(p->path), "%s/%s.sock", dir, name);
	p->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(p->listen_fd >= 0);
	strcpy(sun.sun_path, p->path);
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(p->listen_fd, 4), 0);
	assert_int_equal(loop_add_io(loop, p->listen_fd, EPOLLIN, on_peer_accept, p), 0);
}

void gatt_peer_close(struct gatt_peer *p)
{
	if (p->fd >= 0) {
		loop_del_io(p->loop, p->fd);
		close(p->fd);
	}
	loop_del_io(p->loop, p->listen_fd);
	close(p->listen_fd);
	unlink(p->path);
	cuff_gatt_free(p->gatt);
}

void gatt_peer_notify(struct gatt_peer *p, const double *pressure, size_t n, uint16_t status)
{
	struct bfr_sample s[3];

	assert_true(n >= 1 && n <= 3);
	for (size_t i = 0; i < n; i++)
		s[i] = (struct bfr_sample){ .seq = ++p->seq, .t_ms = 20u * p->seq,
					    .pressure_mmhg = pressure[i], .target_mmhg = 0,
					    .pulse_amplitude = 1.0 + 0.1 * (p->seq % 7),
					    .status = status };
	assert_int_equal(cuff_gatt_notify_pressure(p->gatt, s, n), 1);
}

size_t gatt_peer_count(const struct gatt_peer *p, uint8_t opcode)
{
	size_t k = 0;

	for (size_t i = 0; i < p->n_cp; i++)
		k += p->cp[i].opcode == opcode;
	return k;
}
