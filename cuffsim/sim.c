/*
 * sim.c - cuffsim's sockets, tick, faults and statistics.
 *
 * Sending never blocks, and a congested link delays rather than loses what
 * ATT requires to arrive: when a cuff's socket is full, responses and
 * indications wait in a bounded per-connection queue flushed on EPOLLOUT,
 * in order; only notifications are dropped (and counted), as a radio whose
 * buffers are full drops them. The queue cannot overflow: the cuff reads
 * the next request only while there is room for its answer and one
 * indication (at most one indication is ever unconfirmed), so a central
 * that stops reading is throttled, like a real link. Control clients get
 * their replies through a per-client output buffer flushed on EPOLLOUT.
 */
#include "sim.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "att.h"
#include "cuff_gatt.h"
#include "cuff_profile.h"
#include "model.h"

#define LISTEN_BACKLOG 4
#define RX_BURST 32            /* PDUs read per wakeup, so one cuff cannot starve others */
#define LAT_PER_CUFF 32        /* last measurements kept per cuff */
#define LAT_GLOBAL_MAX 65536   /* measurements kept for the percentiles */
#define CTL_OUT_MAX (8u << 20) /* a client that never reads is cut off here */
#define CP_SLOTS 8             /* index = opcode 1..6; 0 invalid/unknown */
/*
 * PDUs that wait for a full cuff socket. Requests are read only while two
 * slots are free (a response, and an indication it may trigger), and at
 * most one indication is unconfirmed, so the queue never overflows.
 */
#define OUTQ_LEN 32
#define OUTQ_ROOM_PER_REQUEST 2

struct out_pdu {
	uint16_t len;
	uint8_t data[ATT_MAX_MTU];
};

enum lat_state {
	LAT_ARMED,   /* waiting for a sample above the limit to leave */
	LAT_PENDING, /* such a sample left; waiting for DEFLATE */
	LAT_DONE,    /* measured; re-armed once below the limit again */
};

struct sim_cuff {
	struct sim *sim;
	unsigned index;
	struct cuff_model *model;
	struct cuff_gatt *gatt;
	int listen_fd;
	int conn_fd;
	uint32_t conn_events;  /* what conn_fd is registered for */
	struct out_pdu *outq;  /* OUTQ_LEN slots, allocated on the first congestion */
	size_t outq_head, outq_count;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool stall;
	bool cp_hang;          /* Control Point writes go unanswered (a dead control channel) */
	bool supervision_lost; /* supervision writes never reach the model */
	double limit_mmhg;

	struct bfr_sample pending[BFR_MAX_SAMPLES_PER_NTF];
	size_t n_pending;
	struct bfr_status last_status;
	bool status_valid;

	uint64_t connections;
	uint64_t samples_sent;
	uint64_t samples_dropped;
	uint64_t cp_writes[CP_SLOTS];
	uint64_t deflates[3];
	uint64_t supervision_writes;
	uint64_t notifications_dropped; /* the socket was full */
	uint64_t pdus_delayed;          /* responses/indications that had to wait */

	enum lat_state lat_state;
	uint64_t lat_sent_us; /* CLOCK_REALTIME, like the kernel's receive stamps */
	uint64_t rx_stamp_us; /* kernel receive time of the PDU being handled, 0 if none */
	uint32_t lat[LAT_PER_CUFF];
	size_t n_lat; /* total ever measured; lat[] holds the last LAT_PER_CUFF */
};

struct ctl_client {
	struct sim *sim;
	int fd;
	char in[CONTROL_LINE_MAX + 2];
	size_t in_len;
	bool discarding; /* inside an over-long line: drop up to the newline */
	bool closing;    /* peer finished sending: close once output is flushed */
	char *out;
	size_t out_len;
	size_t out_cap;
	struct ctl_client *next;
};

struct sim {
	struct loop *loop;
	struct sim_config cfg;
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sim_cuff *cuffs;
	unsigned n_cuffs;
	int ctl_fd;
	char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_client *clients;

	bool started;
	uint64_t start_ms;
	uint64_t tick_no;
	uint64_t tick_timer;
	uint64_t samples_done;
	uint64_t group_done[SIM_STAGGER_GROUPS]; /* samples taken per stagger group */

	struct scenario *scenario;
	size_t scenario_pos;
	uint64_t scenario_timer;

	uint32_t *lat_all;
	size_t n_lat_all;
};

static uint64_t real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* --- cuff connection ------------------------------------------------------ */

static void cuff_disconnect(struct sim_cuff *c)
{
	if (c->conn_fd < 0)
		return;
	loop_del_io(c->sim->loop, c->conn_fd);
	close(c->conn_fd);
	c->conn_fd = -1;
	c->n_pending = 0;
	free(c->outq);
	c->outq = NULL;
	c->outq_head = c->outq_count = 0;
	cuff_gatt_reset(c->gatt);
}

static bool rx_room(const struct sim_cuff *c)
{
	return c->outq_count + OUTQ_ROOM_PER_REQUEST <= OUTQ_LEN;
}

/* Reads requests only while their answers have room; EPOLLOUT while PDUs wait. */
static void update_conn_events(struct sim_cuff *c)
{
	uint32_t want = (rx_room(c) ? EPOLLIN : 0) | (c->outq_count ? EPOLLOUT : 0);

	if (c->conn_fd < 0 || want == c->conn_events)
		return;
	/* MOD of a registered fd; should it fail, the next call retries. */
	if (loop_mod_io(c->sim->loop, c->conn_fd, want) == 0)
		c->conn_events = want;
}

static int send_now(struct sim_cuff *c, const uint8_t *pdu, size_t len)
{
	ssize_t n;

	do {
		n = send(c->conn_fd, pdu, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* Sends what waits, oldest first, until the socket is full again. */
static int flush_outq(struct sim_cuff *c)
{
	while (c->outq_count) {
		const struct out_pdu *p = &c->outq[c->outq_head];
		int r = send_now(c, p->data, p->len);

		if (r < 0)
			return r;
		c->outq_head = (c->outq_head + 1) % OUTQ_LEN;
		c->outq_count--;
	}
	return 0;
}

static int queue_pdu(struct sim_cuff *c, const uint8_t *pdu, size_t len)
{
	struct out_pdu *slot;

	if (!c->outq) {
		c->outq = calloc(OUTQ_LEN, sizeof(*c->outq));
		if (!c->outq)
			return -ENOMEM;
	}
	if (c->outq_count == OUTQ_LEN)
		return -ENOBUFS; /* prevented by rx_room(); counted as a send failure */
	slot = &c->outq[(c->outq_head + c->outq_count) % OUTQ_LEN];
	memcpy(slot->data, pdu, len);
	slot->len = (uint16_t)len;
	c->outq_count++;
	c->pdus_delayed++;
	update_conn_events(c);
	return 0;
}

static int gatt_send(const uint8_t *pdu, size_t len, void *user_data)
{
	struct sim_cuff *c = user_data;
	int r = -EAGAIN;

	if (c->conn_fd < 0)
		return -ENOTCONN;
	if (len == 0 || len > ATT_MAX_MTU)
		return -EINVAL;
	/* Whatever waits goes first: a link keeps its order. */
	if (c->outq_count) {
		r = flush_outq(c);
		if (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK)
			return r;
		update_conn_events(c);
	}
	if (c->outq_count == 0) {
		r = send_now(c, pdu, len);
		if (r != -EAGAIN && r != -EWOULDBLOCK)
			return r;
	}
	if (pdu[0] == ATT_OP_HANDLE_VALUE_NTF) {
		c->notifications_dropped++;
		return -EAGAIN;
	}
	return queue_pdu(c, pdu, len);
}

static int gatt_read(enum cuff_gatt_char ch, uint8_t *buf, size_t cap, size_t *len,
		     void *user_data)
{
	struct sim_cuff *c = user_data;

	switch (ch) {
	case CUFF_CHAR_STATUS: {
		struct bfr_status st;

		cuff_model_status(c->model, &st);
		return bfr_status_encode(&st, buf, cap, len);
	}
	case CUFF_CHAR_FEATURES: {
		struct bfr_features f;

		cuff_model_features(c->model, &f);
		return bfr_features_encode(&f, buf, cap, len);
	}
	case CUFF_CHAR_BATTERY: {
		struct bfr_status st;

		if (cap < 1)
			return -ENOSPC;
		cuff_model_status(c->model, &st);
		buf[0] = st.battery_pct;
		*len = 1;
		return 0;
	}
	default:
		return -ENOENT;
	}
}

static void record_latency(struct sim_cuff *c, uint64_t us)
{
	struct sim *s = c->sim;
	uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;

	c->lat[c->n_lat % LAT_PER_CUFF] = v;
	c->n_lat++;
	if (s->n_lat_all < LAT_GLOBAL_MAX)
		s->lat_all[s->n_lat_all++] = v;
}

static void control_point_write(struct sim_cuff *c, const uint8_t *v, size_t len)
{
	struct bfr_cp_request req;
	struct bfr_cp_response rsp = { 0 };
	int err;

	err = bfr_cp_request_decode(v, len, &req);
	if (err < 0) {
		/* Never empty: cuff_gatt refuses an empty write with ATT error 0x0D. */
		c->cp_writes[0]++;
		rsp.req_opcode = v[0];
		rsp.result = err == -ENOTSUP ? BFR_RESULT_NOT_SUPPORTED :
					       BFR_RESULT_INVALID_PARAMETER;
		cuff_gatt_indicate_cp(c->gatt, &rsp);
		return;
	}
	c->cp_writes[req.opcode < CP_SLOTS ? req.opcode : 0]++;
	if (req.opcode == BFR_CP_DEFLATE) {
		if (req.deflate_reason < 3)
			c->deflates[req.deflate_reason]++;
		if (c->lat_state == LAT_PENDING) {
			/*
			 * The kernel stamped the DEFLATE when it reached our socket, so
			 * the figure is the gateway's reaction, not how long this loop
			 * was busy with other cuffs before reading it. Both stamps are
			 * CLOCK_REALTIME (SO_TIMESTAMPNS has no monotonic variant).
			 */
			uint64_t now = c->rx_stamp_us ? c->rx_stamp_us : real_us();

			record_latency(c, now > c->lat_sent_us ? now - c->lat_sent_us : 0);
			c->lat_state = LAT_DONE;
		}
	}
	if (cuff_model_control(c->model, &req, &rsp))
		cuff_gatt_indicate_cp(c->gatt, &rsp);
}

static void gatt_write(enum cuff_gatt_char ch, const uint8_t *v, size_t len, void *user_data)
{
	struct sim_cuff *c = user_data;

	if (ch == CUFF_CHAR_CONTROL_POINT) {
		control_point_write(c, v, len);
	} else if (ch == CUFF_CHAR_SUPERVISION) {
		c->supervision_writes++;
		cuff_model_supervision_write(c->model);
	}
}

static const struct cuff_gatt_ops GATT_OPS = {
	.send = gatt_send,
	.read = gatt_read,
	.write = gatt_write,
};

/*
 * SOCK_SEQPACKET reads 0 both at end of file and for an empty packet. An
 * empty packet is no PDU (BlueZ ignores it); only a hang-up ends the link.
 */
static bool peer_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	if (poll(&p, 1, 0) < 0)
		return false;
	return p.revents & (POLLHUP | POLLRDHUP | POLLERR);
}

/*
 * The cp-hang and supervision-lost faults act on the air: a Control Point
 * write that never gets its response (the client's ATT queue blocks behind
 * it), a supervision write that never arrives.
 */
static bool dropped_by_fault(const struct sim_cuff *c, const uint8_t *pdu)
{
	uint16_t handle = (uint16_t)(pdu[1] | pdu[2] << 8);

	if (c->cp_hang && pdu[0] == ATT_OP_WRITE_REQ &&
	    handle == cuff_gatt_value_handle(c->gatt, CUFF_CHAR_CONTROL_POINT))
		return true;
	return c->supervision_lost && pdu[0] == ATT_OP_WRITE_CMD &&
	       handle == cuff_gatt_value_handle(c->gatt, CUFF_CHAR_SUPERVISION);
}

static void on_conn(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct sim_cuff *c = user_data;
	uint8_t buf[ATT_MAX_MTU + 1];

	if (events & EPOLLOUT) {
		int r = flush_outq(c);

		if (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK) {
			cuff_disconnect(c);
			return;
		}
		update_conn_events(c);
	}
	for (int i = 0; i < RX_BURST && (events & EPOLLIN) && rx_room(c); i++) {
		char cbuf[CMSG_SPACE(sizeof(struct timespec))];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf,
			.msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
		struct cmsghdr *cm;

		c->rx_stamp_us = 0;
		for (cm = CMSG_FIRSTHDR(&msg); n > 0 && cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec ts;

				memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
				c->rx_stamp_us = (uint64_t)ts.tv_sec * 1000000u +
						 (uint64_t)ts.tv_nsec / 1000u;
			}
		}

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			cuff_disconnect(c);
			return;
		}
		if (n == 0 && peer_closed(fd)) {
			cuff_disconnect(c);
			return;
		}
		if (n >= 3 && dropped_by_fault(c, buf))
			continue;
		/* An oversized PDU keeps its real length so the server calls it invalid. */
		cuff_gatt_receive(c->gatt, buf, (size_t)n);
		if (c->conn_fd != fd)
			return;
	}
	if (events & (EPOLLHUP | EPOLLERR)) {
		cuff_disconnect(c);
		return;
	}
	update_conn_events(c);
}

static void on_listen(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct sim_cuff *c = user_data;
	int nfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (nfd < 0)
		return;
	/* Kernel receive stamps make the DEFLATE latency independent of our tick. */
	setsockopt(nfd, SOL_SOCKET, SO_TIMESTAMPNS, &(int){ 1 }, sizeof(int));
	/* A central reconnecting after link loss: the new link wins. */
	cuff_disconnect(c);
	if (loop_add_io(loop, nfd, EPOLLIN, on_conn, c) < 0) {
		close(nfd);
		return;
	}
	c->conn_fd = nfd;
	c->conn_events = EPOLLIN;
	c->connections++;
	cuff_gatt_reset(c->gatt);
}

/* --- tick ----------------------------------------------------------------- */

static void flush_samples(struct sim_cuff *c)
{
	uint64_t sent_us;
	int r;

	if (c->n_pending == 0)
		return;
	/*
	 * The clock is read before the send: read after it, a receiver that
	 * preempts us the moment the notification is queued (a real-time
	 * gateway on this CPU) could answer before the clock is read, and its
	 * reaction would be measured as 0.
	 */
	sent_us = real_us();
	r = cuff_gatt_notify_pressure(c->gatt, c->pending, c->n_pending);
	if (r == 1) {
		c->samples_sent += c->n_pending;
		for (size_t i = 0; i < c->n_pending; i++) {
			if (c->lat_state == LAT_ARMED &&
			    c->pending[i].pressure_mmhg > c->limit_mmhg) {
				c->lat_state = LAT_PENDING;
				c->lat_sent_us = sent_us;
			}
		}
	} else {
		c->samples_dropped += c->n_pending;
	}
	c->n_pending = 0;
}

static void cuff_sample(struct sim_cuff *c)
{
	struct bfr_cp_response rsp;
	struct bfr_sample smp;
	size_t batch;

	cuff_model_step(c->model, &smp);
	if (cuff_model_take_result(c->model, &rsp))
		cuff_gatt_indicate_cp(c->gatt, &rsp);
	if (c->lat_state == LAT_DONE && smp.pressure_mmhg <= c->limit_mmhg)
		c->lat_state = LAT_ARMED;
	if (c->conn_fd < 0 || c->stall)
		return;
	c->pending[c->n_pending++] = smp;
	batch = cuff_gatt_max_batch(c->gatt);
	if (batch > c->sim->cfg.batch)
		batch = c->sim->cfg.batch;
	if (c->n_pending >= batch)
		flush_samples(c);
}

static void cuff_notify_status(struct sim_cuff *c)
{
	struct bfr_status st;

	/* A stalled cuff sends no notifications at all, status included. */
	if (c->conn_fd < 0 || c->stall)
		return;
	cuff_model_status(c->model, &st);
	if (c->status_valid && st.state == c->last_status.state &&
	    st.faults == c->last_status.faults && st.battery_pct == c->last_status.battery_pct &&
	    (st.last_lop_mmhg == c->last_status.last_lop_mmhg ||
	     (isnan(st.last_lop_mmhg) && isnan(c->last_status.last_lop_mmhg))))
		return;
	if (!c->status_valid || st.battery_pct != c->last_status.battery_pct)
		cuff_gatt_notify(c->gatt, CUFF_CHAR_BATTERY);
	cuff_gatt_notify(c->gatt, CUFF_CHAR_STATUS);
	c->last_status = st;
	c->status_valid = true;
}

static void schedule_tick(struct sim *s);

/*
 * Without --stagger every cuff samples at the same instant, once per period
 * (the worst case for a receiver: N notifications at once). With it the
 * cuffs are split into SIM_STAGGER_GROUPS groups whose sample instants are
 * spread evenly over the period, as independent real cuffs would be. Each
 * cuff's own sequence of model steps is the same either way.
 */
static unsigned n_groups(const struct sim *s)
{
	return s->cfg.stagger ? SIM_STAGGER_GROUPS : 1;
}

uint64_t sim_sample_due_ms(uint32_t rate_hz, unsigned groups, unsigned g, uint64_t k)
{
	uint64_t num = (k + 1) * 1000u * groups + (uint64_t)g * 1000u;
	uint64_t den = (uint64_t)rate_hz * groups;

	return (num + den - 1) / den;
}

static uint64_t group_due_ms(const struct sim *s, unsigned g, uint64_t k)
{
	return sim_sample_due_ms(s->cfg.rate_hz, n_groups(s), g, k);
}

static void on_tick(struct loop *loop, uint64_t id, void *user_data)
{
	struct sim *s = user_data;
	uint64_t elapsed = loop_now_ms(loop) - s->start_ms;
	unsigned groups = n_groups(s);

	s->tick_timer = 0;
	for (unsigned g = 0; g < groups; g++) {
		while (group_due_ms(s, g, s->group_done[g]) <= elapsed) {
			for (unsigned i = g; i < s->n_cuffs; i += groups)
				cuff_sample(&s->cuffs[i]);
			s->group_done[g]++;
		}
	}
	s->samples_done = s->group_done[0];
	for (unsigned i = 0; i < s->n_cuffs; i++)
		cuff_notify_status(&s->cuffs[i]);
	schedule_tick(s);
}

static void schedule_tick(struct sim *s)
{
	uint64_t now = loop_now_ms(s->loop);
	uint64_t next = UINT64_MAX;

	for (unsigned g = 0; g < n_groups(s); g++) {
		uint64_t at = s->start_ms + group_due_ms(s, g, s->group_done[g]);

		if (at < next)
			next = at;
	}
	loop_add_timer(s->loop, next > now ? next - now : 0, on_tick, s, &s->tick_timer);
}

/* --- scenario ------------------------------------------------------------ */

static void schedule_scenario(struct sim *s);

static void on_scenario(struct loop *loop, uint64_t id, void *user_data)
{
	struct sim *s = user_data;
	uint64_t elapsed = loop_now_ms(loop) - s->start_ms;

	s->scenario_timer = 0;
	while (s->scenario_pos < s->scenario->n &&
	       s->scenario->entries[s->scenario_pos].at_ms <= elapsed) {
		const struct scenario_entry *e = &s->scenario->entries[s->scenario_pos++];
		char *reply = NULL;

		if (sim_execute(s, &e->cmd, &reply) == 0) {
			printf("cuffsim: scenario line %u: %s\n", e->line, reply);
			fflush(stdout);
		}
		free(reply);
	}
	schedule_scenario(s);
}

static void schedule_scenario(struct sim *s)
{
	uint64_t now, at;

	if (!s->started || !s->scenario || s->scenario_pos >= s->scenario->n)
		return;
	now = loop_now_ms(s->loop);
	at = s->start_ms + s->scenario->entries[s->scenario_pos].at_ms;
	loop_add_timer(s->loop, at > now ? at - now : 0, on_scenario, s, &s->scenario_timer);
}

void sim_set_scenario(struct sim *s, struct scenario *sc)
{
	if (s->scenario_timer)
		loop_cancel_timer(s->loop, s->scenario_timer);
	s->scenario_timer = 0;
	scenario_free(s->scenario);
	s->scenario = sc;
	s->scenario_pos = 0;
	schedule_scenario(s);
}

int sim_start(struct sim *s)
{
	if (s->started)
		return -EALREADY;
	s->started = true;
	s->start_ms = loop_now_ms(s->loop);
	schedule_tick(s);
	schedule_scenario(s);
	return s->tick_timer ? 0 : -ENOMEM;
}

/* --- stats --------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static const char *STATE_NAMES[] = { "idle", "inflating", "holding", "deflating",
				     "measuring_lop", "fault" };

static json_t *faults_json(uint16_t faults, const struct sim_cuff *c)
{
	static const struct {
		uint16_t bit;
		const char *name;
	} names[] = {
		{ BFR_FAULT_LEAK, "leak" },
		{ BFR_FAULT_SENSOR, "sensor" },
		{ BFR_FAULT_VALVE_STUCK, "valve_stuck" },
		{ BFR_FAULT_OVER_PRESSURE, "over_pressure" },
		{ BFR_FAULT_BATTERY_LOW, "battery_low" },
		{ BFR_FAULT_DEFLATE_FAILED, "deflate_failed" },
		{ BFR_FAULT_LOP_FAILED, "lop_failed" },
		{ BFR_FAULT_SUPERVISION, "supervision" },
	};
	json_t *a = json_array();

	for (size_t i = 0; a && i < sizeof(names) / sizeof(names[0]); i++)
		if (faults & names[i].bit)
			json_array_append_new(a, json_string(names[i].name));
	if (a && c->stall)
		json_array_append_new(a, json_string("stall"));
	if (a && c->cp_hang)
		json_array_append_new(a, json_string("cp_hang"));
	if (a && c->supervision_lost)
		json_array_append_new(a, json_string("supervision_lost"));
	return a;
}

static double round1(double v)
{
	return round(v * 10.0) / 10.0;
}

static int set_count(json_t *o, const char *key, uint64_t n)
{
	return json_object_set_new(o, key, json_integer((json_int_t)n));
}

static json_t *cuff_json(const struct sim_cuff *c)
{
	struct cuff_model_info mi;
	struct cuff_gatt_stats gs;
	json_t *o, *lat;
	size_t kept = c->n_lat < LAT_PER_CUFF ? c->n_lat : LAT_PER_CUFF;

	cuff_model_info(c->model, &mi);
	cuff_gatt_get_stats(c->gatt, &gs);
	lat = json_array();
	for (size_t i = 0; lat && i < kept; i++) {
		size_t idx = (c->n_lat - kept + i) % LAT_PER_CUFF;

		json_array_append_new(lat, json_integer(c->lat[idx]));
	}
	o = json_pack(
		"{s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		" s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
		" s:{s:I, s:I, s:I, s:I}, s:I, s:I,"
		" s:f, s:f, s:f, s:f, s:o, s:f, s:s, s:o, s:f, s:I, s:o, s:I, s:I}",
		"cuff", (int)c->index, "connected", c->conn_fd >= 0, "connections",
		(json_int_t)c->connections, "samples_sent", (json_int_t)c->samples_sent,
		"samples_dropped", (json_int_t)c->samples_dropped, "notifications",
		(json_int_t)gs.notifications, "indications", (json_int_t)gs.indications,
		"att_requests", (json_int_t)gs.att_requests, "malformed_pdus",
		(json_int_t)gs.malformed_pdus, "error_responses", (json_int_t)gs.error_responses,
		"cp_writes", "set_target", (json_int_t)c->cp_writes[BFR_CP_SET_TARGET], "deflate",
		(json_int_t)c->cp_writes[BFR_CP_DEFLATE], "measure_lop",
		(json_int_t)c->cp_writes[BFR_CP_MEASURE_LOP], "cue",
		(json_int_t)c->cp_writes[BFR_CP_CUE], "identify",
		(json_int_t)c->cp_writes[BFR_CP_IDENTIFY], "set_supervision",
		(json_int_t)c->cp_writes[BFR_CP_SET_SUPERVISION], "invalid",
		(json_int_t)c->cp_writes[0], "deflates", "total",
		(json_int_t)(c->deflates[0] + c->deflates[1] + c->deflates[2]), "normal",
		(json_int_t)c->deflates[0], "safety", (json_int_t)c->deflates[1], "estop",
		(json_int_t)c->deflates[2], "supervision_writes", (json_int_t)c->supervision_writes,
		"supervision_deflates", (json_int_t)mi.supervision_deflates, "pressure",
		round1(mi.reported_mmhg), "target", round1(mi.target_mmhg), "lop",
		round1(mi.lop_mmhg), "battery_pct", round1(mi.battery_pct), "last_lop",
		isnan(mi.last_lop_mmhg) ? json_null() : json_real(mi.last_lop_mmhg), "limit",
		c->limit_mmhg, "state", mi.state < 6 ? STATE_NAMES[mi.state] : "?", "faults",
		faults_json(mi.faults, c), "true_pressure", round1(mi.pressure_mmhg),
		"identify_blinks", (json_int_t)mi.identify_blinks, "latency_us", lat, "send_failures",
		(json_int_t)gs.send_failures, "indications_dropped", (json_int_t)gs.indications_dropped);
	if (o && (set_count(o, "notifications_dropped", c->notifications_dropped) < 0 ||
		  set_count(o, "pdus_delayed", c->pdus_delayed) < 0 ||
		  json_object_set_new(o, "button",
				      json_boolean(mi.status_bits & BFR_ST_BUTTON)) < 0 ||
		  set_count(o, "button_presses", mi.button_presses) < 0 ||
		  set_count(o, "handle_shift", cuff_gatt_handle_shift(c->gatt)) < 0 ||
		  set_count(o, "database_changes", gs.database_changes) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *latency_json(const struct sim *s)
{
	uint32_t *sorted;
	size_t n = s->n_lat_all;
	json_t *o;

	if (n == 0)
		return json_pack("{s:i, s:n, s:n, s:n}", "count", 0, "p50_us", "p99_us", "max_us");
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return NULL;
	memcpy(sorted, s->lat_all, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u32);
	/* Nearest-rank percentiles: an actual measurement, never interpolated. */
	o = json_pack("{s:I, s:I, s:I, s:I}", "count", (json_int_t)n, "p50_us",
		      (json_int_t)sorted[(size_t)ceil(0.50 * n) - 1], "p99_us",
		      (json_int_t)sorted[(size_t)ceil(0.99 * n) - 1], "max_us",
		      (json_int_t)sorted[n - 1]);
	free(sorted);
	return o;
}

int sim_stats_json(struct sim *s, char **out)
{
	json_t *root = NULL, *cuffs, *lat;
	char *text;
	int err = -ENOMEM;

	cuffs = json_array();
	lat = latency_json(s);
	root = json_pack("{s:o*, s:o*, s:I}", "cuffs", cuffs, "latency", lat, "uptime_ms",
			 (json_int_t)(s->started ? loop_now_ms(s->loop) - s->start_ms : 0));
	if (!root || !cuffs || !lat)
		goto fail;
	for (unsigned i = 0; i < s->n_cuffs; i++) {
		if (json_array_append_new(cuffs, cuff_json(&s->cuffs[i])) < 0)
			goto fail;
	}
	text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(7));
	if (!text)
		goto fail;
	*out = text;
	err = 0;
fail:
	json_decref(root);
	return err;
}

/* --- commands ------------------------------------------------------------ */

static int reply_printf(char **reply, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int reply_printf(char **reply, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	*reply = text;
	return 0;
}

static void apply_fault(struct sim_cuff *c, const struct control_cmd *cmd)
{
	switch (cmd->verb) {
	case CTL_LEAK:
		cuff_model_set_fault(c->model, CUFF_FAULT_LEAK, cmd->value, 0);
		break;
	case CTL_STUCK_VALVE:
		cuff_model_set_fault(c->model, CUFF_FAULT_STUCK_VALVE, 0, 0);
		break;
	case CTL_SENSOR_FREEZE:
		cuff_model_set_fault(c->model, CUFF_FAULT_SENSOR_FREEZE, 0, 0);
		break;
	case CTL_STALL:
		c->stall = true;
		c->n_pending = 0;
		break;
	case CTL_DROP:
		cuff_disconnect(c);
		break;
	case CTL_BATTERY:
		cuff_model_set_fault(c->model, CUFF_FAULT_BATTERY, cmd->value, 0);
		break;
	case CTL_DEFLATE_FAIL:
		cuff_model_set_fault(c->model, CUFF_FAULT_DEFLATE_FAIL, 0, 0);
		break;
	case CTL_LOP_FAIL:
		cuff_model_set_fault(c->model, CUFF_FAULT_LOP_FAIL, 0, 0);
		break;
	case CTL_SPIKE:
		cuff_model_set_fault(c->model, CUFF_FAULT_SPIKE, cmd->value, cmd->value2);
		break;
	case CTL_CLEAR:
		cuff_model_clear_faults(c->model);
		c->stall = false;
		c->cp_hang = false;
		c->supervision_lost = false;
		break;
	case CTL_CP_HANG:
		c->cp_hang = true;
		break;
	case CTL_SUPERVISION_LOST:
		c->supervision_lost = true;
		break;
	case CTL_LOP_VALUE:
		cuff_model_set_fault(c->model, CUFF_FAULT_LOP_VALUE, cmd->value, 0);
		break;
	case CTL_LIMIT:
		c->limit_mmhg = cmd->value;
		break;
	case CTL_BUTTON:
		cuff_model_press_button(c->model, (uint32_t)cmd->value);
		break;
	default:
		break;
	}
}

int sim_execute(struct sim *s, const struct control_cmd *cmd, char **reply)
{
	char *json = NULL;
	int err;

	switch (cmd->verb) {
	case CTL_STATS:
		err = sim_stats_json(s, &json);
		if (err == 0)
			err = reply_printf(reply, "ok %s", json);
		free(json);
		return err;
	case CTL_STATUS: {
		json_t *o;

		if (cmd->cuff < 1 || cmd->cuff > s->n_cuffs)
			return reply_printf(reply, "error: status: bad cuff");
		o = cuff_json(&s->cuffs[cmd->cuff - 1]);
		json = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
		json_decref(o);
		if (!json)
			return -ENOMEM;
		err = reply_printf(reply, "ok %s", json);
		free(json);
		return err;
	}
	case CTL_QUIT:
		loop_quit(s->loop);
		return reply_printf(reply, "ok quit");
	default:
		break;
	}
	if (cmd->cuff > s->n_cuffs)
		return reply_printf(reply, "error: %s: bad cuff", control_verb_name(cmd->verb));
	for (unsigned i = 0; i < s->n_cuffs; i++) {
		if (cmd->cuff != CONTROL_ALL && cmd->cuff != i + 1)
			continue;
		/* A full indication queue is counted (indications_dropped), not an error. */
		if (cmd->verb == CTL_SERVICE_CHANGED &&
		    cuff_gatt_change_database(s->cuffs[i].gatt, (unsigned)cmd->value) == -ENOMEM)
			return reply_printf(reply,
					    "error: service-changed: out of memory at cuff %u", i + 1);
		apply_fault(&s->cuffs[i], cmd);
	}
	if (cmd->cuff == CONTROL_ALL)
		return reply_printf(reply, "ok %s all", control_verb_name(cmd->verb));
	return reply_printf(reply, "ok %s %u", control_verb_name(cmd->verb), cmd->cuff);
}

int sim_execute_line(struct sim *s, const char *line, char **reply)
{
	struct control_cmd cmd;
	char err[160];

	if (control_parse(line, s->n_cuffs, &cmd, err, sizeof(err)) < 0)
		return reply_printf(reply, "error: %s", err);
	return sim_execute(s, &cmd, reply);
}

/* --- control socket ------------------------------------------------------- */

static void client_free(struct ctl_client *cl)
{
	struct sim *s = cl->sim;

	for (struct ctl_client **pp = &s->clients; *pp; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	loop_del_io(s->loop, cl->fd);
	close(cl->fd);
	free(cl->out);
	free(cl);
}

/* Returns false when the client was freed. */
static bool client_flush(struct ctl_client *cl)
{
	while (cl->out_len) {
		ssize_t n = send(cl->fd, cl->out, cl->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			client_free(cl);
			return false;
		}
		memmove(cl->out, cl->out + n, cl->out_len - (size_t)n);
		cl->out_len -= (size_t)n;
	}
	if (cl->out_len == 0 && cl->closing) {
		client_free(cl);
		return false;
	}
	loop_mod_io(cl->sim->loop, cl->fd, cl->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
	return true;
}

static int client_queue(struct ctl_client *cl, const char *text)
{
	size_t len = strlen(text);

	if (cl->out_len + len + 1 > CTL_OUT_MAX)
		return -ENOBUFS;
	if (cl->out_len + len + 1 > cl->out_cap) {
		size_t cap = cl->out_cap ? cl->out_cap : 1024;
		char *p;

		while (cap < cl->out_len + len + 1)
			cap *= 2;
		p = realloc(cl->out, cap);
		if (!p)
			return -ENOMEM;
		cl->out = p;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_len, text, len);
	cl->out[cl->out_len + len] = '\n';
	cl->out_len += len + 1;
	return 0;
}

static int client_line(struct ctl_client *cl, const char *line)
{
	char *reply = NULL;
	int err = sim_execute_line(cl->sim, line, &reply);

	if (err == 0)
		err = client_queue(cl, reply);
	else
		err = client_queue(cl, "error: out of memory");
	free(reply);
	return err;
}

static void on_client(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct ctl_client *cl = user_data;
	char buf[4096];
	ssize_t n;

	if (events & EPOLLIN) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			client_free(cl);
			return;
		}
		if (n == 0) {
			cl->closing = true;
			shutdown(fd, SHUT_RD);
		}
		for (ssize_t i = 0; i < n; i++) {
			/* A NUL would cut the line short unseen: make the parser see it. */
			char ch = buf[i] ? buf[i] : '\x01';

			if (ch == '\n') {
				if (cl->discarding) {
					cl->discarding = false;
				} else {
					cl->in[cl->in_len] = '\0';
					if (client_line(cl, cl->in) < 0) {
						client_free(cl);
						return;
					}
				}
				cl->in_len = 0;
				continue;
			}
			if (cl->discarding)
				continue;
			if (cl->in_len == CONTROL_LINE_MAX + 1) {
				/* Answer once, then skip the rest of the line. */
				cl->discarding = true;
				cl->in_len = 0;
				if (client_queue(cl, "error: line too long") < 0) {
					client_free(cl);
					return;
				}
				continue;
			}
			cl->in[cl->in_len++] = ch;
		}
	}
	if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) {
		client_free(cl);
		return;
	}
	client_flush(cl);
}

static void on_ctl_listen(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct sim *s = user_data;
	struct ctl_client *cl;
	int nfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (nfd < 0)
		return;
	cl = calloc(1, sizeof(*cl));
	if (!cl || loop_add_io(loop, nfd, EPOLLIN, on_client, cl) < 0) {
		free(cl);
		close(nfd);
		return;
	}
	cl->sim = s;
	cl->fd = nfd;
	cl->next = s->clients;
	s->clients = cl;
}

/* --- setup ---------------------------------------------------------------- */

static int listen_unix(const char *path, int type, int *out)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A stale socket of an earlier run would make bind fail. */
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

static int cuff_setup(struct sim *s, struct sim_cuff *c, unsigned index)
{
	struct cuff_model_params mp = {
		.limb = s->cfg.limb,
		.rate_hz = s->cfg.rate_hz,
		.lop_override = s->cfg.lop_mmhg,
		.seed = s->cfg.seed,
		.index = index,
	};
	struct cuff_gatt_config gc = {
		.handle_shift = s->cfg.handle_shift,
		.server_mtu = s->cfg.server_mtu ? s->cfg.server_mtu : ATT_MAX_MTU,
	};
	struct cuff_model_info mi;
	char name[24], serial[24];
	int err;

	c->sim = s;
	c->index = index;
	c->listen_fd = -1;
	c->conn_fd = -1;
	snprintf(name, sizeof(name), "BFR Cuff %02u", index);
	snprintf(serial, sizeof(serial), "SIM-%08llX-%04u",
		 (unsigned long long)(s->cfg.seed & 0xFFFFFFFFu), index);
	gc.device_name = name;
	gc.serial = serial;
	err = cuff_model_new(&mp, &c->model);
	if (err < 0)
		return err;
	cuff_model_info(c->model, &mi);
	c->limit_mmhg = mi.max_pressure_mmhg;
	err = cuff_gatt_new(&gc, &GATT_OPS, c, &c->gatt);
	if (err < 0)
		return err;
	if ((size_t)snprintf(c->path, sizeof(c->path), "%s/cuff-%02u.sock", s->dir, index) >=
	    sizeof(c->path))
		return -ENAMETOOLONG;
	err = listen_unix(c->path, SOCK_SEQPACKET, &c->listen_fd);
	if (err < 0) {
		c->path[0] = '\0';
		return err;
	}
	return loop_add_io(s->loop, c->listen_fd, EPOLLIN, on_listen, c);
}

int sim_new(struct loop *loop, const struct sim_config *cfg, struct sim **out)
{
	struct sim *s = NULL;
	int err = -EINVAL;

	if (!loop || !cfg || !out || !cfg->dir || cfg->n_cuffs < 1 ||
	    cfg->n_cuffs > CONTROL_MAX_CUFFS || cfg->rate_hz < 1 || cfg->rate_hz > 1000 ||
	    cfg->batch < 1 || cfg->batch > BFR_MAX_SAMPLES_PER_NTF ||
	    cfg->handle_shift > CUFF_GATT_MAX_SHIFT ||
	    (cfg->server_mtu &&
	     (cfg->server_mtu < ATT_DEFAULT_MTU || cfg->server_mtu > ATT_MAX_MTU)) ||
	    (cfg->limb != BFR_LIMB_ARM && cfg->limb != BFR_LIMB_LEG))
		goto fail;
	err = -ENAMETOOLONG;
	if (strlen(cfg->dir) + sizeof("/control.sock") > sizeof(s->dir))
		goto fail;
	err = -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	s->loop = loop;
	s->cfg = *cfg;
	s->ctl_fd = -1;
	strcpy(s->dir, cfg->dir);
	s->cfg.dir = s->dir;
	s->cuffs = calloc(cfg->n_cuffs, sizeof(*s->cuffs));
	s->lat_all = calloc(LAT_GLOBAL_MAX, sizeof(*s->lat_all));
	if (!s->cuffs || !s->lat_all)
		goto fail;
	for (unsigned i = 0; i < cfg->n_cuffs; i++) {
		s->cuffs[i].listen_fd = -1;
		s->cuffs[i].conn_fd = -1;
	}
	for (unsigned i = 0; i < cfg->n_cuffs; i++) {
		s->n_cuffs = i + 1;
		err = cuff_setup(s, &s->cuffs[i], i + 1);
		if (err < 0)
			goto fail;
	}
	if ((size_t)snprintf(s->ctl_path, sizeof(s->ctl_path), "%s/control.sock", s->dir) >=
	    sizeof(s->ctl_path)) {
		s->ctl_path[0] = '\0';
		err = -ENAMETOOLONG;
		goto fail;
	}
	err = listen_unix(s->ctl_path, SOCK_STREAM, &s->ctl_fd);
	if (err < 0) {
		s->ctl_path[0] = '\0';
		goto fail;
	}
	err = loop_add_io(loop, s->ctl_fd, EPOLLIN, on_ctl_listen, s);
	if (err < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	sim_free(s);
	return err;
}

void sim_free(struct sim *s)
{
	if (!s)
		return;
	if (s->tick_timer)
		loop_cancel_timer(s->loop, s->tick_timer);
	if (s->scenario_timer)
		loop_cancel_timer(s->loop, s->scenario_timer);
	while (s->clients)
		client_free(s->clients);
	if (s->ctl_fd >= 0) {
		loop_del_io(s->loop, s->ctl_fd);
		close(s->ctl_fd);
	}
	if (s->ctl_path[0])
		unlink(s->ctl_path);
	for (unsigned i = 0; s->cuffs && i < s->n_cuffs; i++) {
		struct sim_cuff *c = &s->cuffs[i];

		if (c->gatt)
			cuff_disconnect(c);
		if (c->listen_fd >= 0) {
			loop_del_io(s->loop, c->listen_fd);
			close(c->listen_fd);
		}
		if (c->path[0])
			unlink(c->path);
		cuff_gatt_free(c->gatt);
		cuff_model_free(c->model);
	}
	scenario_free(s->scenario);
	free(s->cuffs);
	free(s->lat_all);
	free(s);
}
