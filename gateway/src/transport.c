/* transport.c - see transport.h */
#include "transport.h"

#include "att.h"

#include <bluetooth/bluetooth.h>
#include <bluetooth/hci.h>
#include <bluetooth/hci_lib.h>
#include <bluetooth/l2cap.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SIM_PREFIX "sim:"

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static int parse_adapter(const char *s, int *out)
{
	char *end;
	long v;

	if (strncmp(s, "hci", 3) != 0 || s[3] < '0' || s[3] > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s + 3, &end, 10);
	if (errno || *end || v < 0 || v > TRANSPORT_MAX_ADAPTER)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int transport_parse(const char *address, const char *address_type, const char *adapter,
		    const char *security, struct transport_address *out, char *err,
		    size_t err_len)
{
	struct transport_address a = { 0 };
	bdaddr_t ba;

	if (!address || !out) {
		set_err(err, err_len, "no address");
		return -EINVAL;
	}
	if (strncmp(address, SIM_PREFIX, strlen(SIM_PREFIX)) == 0) {
		const char *path = address + strlen(SIM_PREFIX);

		if (path[0] == '\0') {
			set_err(err, err_len, "address \"%s\": empty socket path", address);
			return -EINVAL;
		}
		if (strlen(path) >= sizeof(a.path)) {
			set_err(err, err_len, "address \"%s\": socket path longer than %zu bytes",
				address, sizeof(a.path) - 1);
			return -EINVAL;
		}
		a.kind = TRANSPORT_SIM;
		strcpy(a.path, path);
		*out = a;
		return 0;
	}
	/* bachk: exactly XX:XX:XX:XX:XX:XX, hex digits. */
	if (bachk(address) < 0 || str2ba(address, &ba) < 0) {
		set_err(err, err_len,
			"address \"%s\": expected sim:/path or a BD address XX:XX:XX:XX:XX:XX",
			address);
		return -EINVAL;
	}
	a.kind = TRANSPORT_LE;
	memcpy(a.bdaddr, ba.b, sizeof(a.bdaddr));
	if (!address_type || strcmp(address_type, "public") == 0) {
		a.bdaddr_type = BDADDR_LE_PUBLIC;
	} else if (strcmp(address_type, "random") == 0) {
		a.bdaddr_type = BDADDR_LE_RANDOM;
	} else {
		set_err(err, err_len, "address_type \"%s\": expected public or random",
			address_type);
		return -EINVAL;
	}
	if (!adapter) {
		a.adapter = 0;
	} else if (parse_adapter(adapter, &a.adapter) < 0) {
		set_err(err, err_len, "adapter \"%s\": expected hciN (N 0..%d)", adapter,
			TRANSPORT_MAX_ADAPTER);
		return -EINVAL;
	}
	if (!security || strcmp(security, "medium") == 0) {
		a.security = TRANSPORT_SECURITY_MEDIUM;
	} else if (strcmp(security, "low") == 0) {
		a.security = TRANSPORT_SECURITY_LOW;
	} else if (strcmp(security, "high") == 0) {
		a.security = TRANSPORT_SECURITY_HIGH;
	} else {
		set_err(err, err_len, "security \"%s\": expected low, medium or high", security);
		return -EINVAL;
	}
	*out = a;
	return 0;
}

void transport_format(const struct transport_address *a, char *buf, size_t len)
{
	if (a->kind == TRANSPORT_SIM) {
		snprintf(buf, len, SIM_PREFIX "%s", a->path);
		return;
	}
	snprintf(buf, len, "%02X:%02X:%02X:%02X:%02X:%02X (%s, hci%d)", a->bdaddr[5],
		 a->bdaddr[4], a->bdaddr[3], a->bdaddr[2], a->bdaddr[1], a->bdaddr[0],
		 a->bdaddr_type == BDADDR_LE_RANDOM ? "random" : "public", a->adapter);
}

static int open_sim(const struct transport_address *a, int *fd_out, char *err, size_t err_len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, r;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		set_err(err, err_len, "socket(AF_UNIX): %s", strerror(-r));
		return r;
	}
	memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS) {
		r = -errno;
		set_err(err, err_len, "connect sim:%s: %s", a->path, strerror(-r));
		goto fail;
	}
	*fd_out = fd;
	return 0;
fail:
	close(fd);
	return r;
}

static int open_le(const struct transport_address *a, int *fd_out, char *err, size_t err_len)
{
	struct sockaddr_l2 src = { .l2_family = AF_BLUETOOTH };
	struct sockaddr_l2 dst = { .l2_family = AF_BLUETOOTH };
	struct bt_security sec = { .level = (uint8_t)a->security };
	int fd, r;

	fd = socket(AF_BLUETOOTH, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, BTPROTO_L2CAP);
	if (fd < 0) {
		r = -errno;
		if (r == -EAFNOSUPPORT)
			set_err(err, err_len, "Bluetooth not available in this kernel "
				"(AF_BLUETOOTH: Address family not supported)");
		else
			set_err(err, err_len, "socket(AF_BLUETOOTH, L2CAP): %s", strerror(-r));
		return r;
	}
	if (hci_devba(a->adapter, &src.l2_bdaddr) < 0) {
		r = errno ? -errno : -ENODEV;
		set_err(err, err_len, "adapter hci%d: %s", a->adapter, strerror(-r));
		goto fail;
	}
	src.l2_cid = htobs(ATT_CID);
	src.l2_bdaddr_type = BDADDR_LE_PUBLIC;
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
		r = -errno;
		set_err(err, err_len, "bind to hci%d: %s", a->adapter, strerror(-r));
		goto fail;
	}
	if (setsockopt(fd, SOL_BLUETOOTH, BT_SECURITY, &sec, sizeof(sec)) < 0) {
		r = -errno;
		set_err(err, err_len, "BT_SECURITY level %d: %s", sec.level, strerror(-r));
		goto fail;
	}
	memcpy(dst.l2_bdaddr.b, a->bdaddr, sizeof(a->bdaddr));
	dst.l2_cid = htobs(ATT_CID);
	dst.l2_bdaddr_type = a->bdaddr_type;
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		r = -errno;
		set_err(err, err_len, "connect: %s", strerror(-r));
		goto fail;
	}
	*fd_out = fd;
	return 0;
fail:
	close(fd);
	return r;
}

int transport_open(const struct transport_address *a, int *fd_out, char *err, size_t err_len)
{
	if (!a || !fd_out)
		return -EINVAL;
	if (a->kind == TRANSPORT_SIM)
		return open_sim(a, fd_out, err, err_len);
	if (a->kind == TRANSPORT_LE)
		return open_le(a, fd_out, err, err_len);
	set_err(err, err_len, "unknown transport kind %d", (int)a->kind);
	return -EINVAL;
}

/* --- scheduler ------------------------------------------------------------ */

enum attempt_state {
	ATTEMPT_QUEUED,
	ATTEMPT_CONNECTING,
};

struct attempt {
	struct attempt *next;
	struct transport_sched *sched;
	unsigned id;
	enum attempt_state state;
	struct transport_address addr;
	int fd;
	uint64_t timer_id;
	transport_connect_fn fn;
	void *user_data;
};

struct transport_sched {
	struct loop *loop;
	struct attempt *head; /* FIFO: queue order is connection order per adapter */
	uint64_t kick_timer;
	unsigned next_id;
	transport_open_fn open_fn;
	void *open_data;
};

static int default_open(const struct transport_address *a, int *fd_out, char *err,
			size_t err_len, void *data)
{
	return transport_open(a, fd_out, err, err_len);
}

int transport_sched_new(struct loop *loop, struct transport_sched **out)
{
	struct transport_sched *s;

	if (!loop || !out)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->open_fn = default_open;
	*out = s;
	return 0;
}

static void attempt_abandon(struct transport_sched *s, struct attempt *at)
{
	if (at->state == ATTEMPT_CONNECTING) {
		loop_del_io(s->loop, at->fd);
		close(at->fd);
	}
	if (at->timer_id)
		loop_cancel_timer(s->loop, at->timer_id);
	free(at);
}

void transport_sched_free(struct transport_sched *s)
{
	struct attempt *at, *next;

	if (!s)
		return;
	for (at = s->head; at; at = next) {
		next = at->next;
		attempt_abandon(s, at);
	}
	if (s->kick_timer)
		loop_cancel_timer(s->loop, s->kick_timer);
	free(s);
}

void transport_sched_set_opener(struct transport_sched *s, transport_open_fn fn, void *data)
{
	s->open_fn = fn ? fn : default_open;
	s->open_data = fn ? data : NULL;
}

static void unlink_attempt(struct transport_sched *s, struct attempt *at)
{
	for (struct attempt **pp = &s->head; *pp; pp = &(*pp)->next) {
		if (*pp == at) {
			*pp = at->next;
			return;
		}
	}
}

static void kick_cb(struct loop *loop, uint64_t timer_id, void *user_data);

/* Starting attempts is always deferred to the loop so callbacks never nest. */
static void schedule_kick(struct transport_sched *s)
{
	if (!s->kick_timer && loop_add_timer(s->loop, 0, kick_cb, s, &s->kick_timer) < 0)
		s->kick_timer = 0; /* retried at the next connect/complete */
}

static void finish(struct transport_sched *s, struct attempt *at, int err, int fd,
		   const char *msg)
{
	transport_connect_fn fn = at->fn;
	void *user_data = at->user_data;

	unlink_attempt(s, at);
	if (at->timer_id)
		loop_cancel_timer(s->loop, at->timer_id);
	free(at);
	schedule_kick(s);
	fn(err, fd, err ? msg : NULL, user_data);
}

static void connect_io_cb(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct attempt *at = user_data;
	struct transport_sched *s = at->sched;
	char msg[256];
	char name[128];
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	loop_del_io(loop, fd);
	at->state = ATTEMPT_QUEUED; /* fd no longer registered: abandon must not del it */
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	else if (soerr == 0 && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLOUT))
		soerr = ECONNREFUSED;
	if (soerr) {
		close(fd);
		transport_format(&at->addr, name, sizeof(name));
		snprintf(msg, sizeof(msg), "connect %s: %s", name, strerror(soerr));
		finish(s, at, -soerr, -1, msg);
		return;
	}
	finish(s, at, 0, fd, NULL);
}

static void connect_timeout_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct attempt *at = user_data;
	char msg[256];
	char name[128];

	at->timer_id = 0;
	loop_del_io(loop, at->fd);
	close(at->fd);
	at->state = ATTEMPT_QUEUED;
	transport_format(&at->addr, name, sizeof(name));
	snprintf(msg, sizeof(msg), "connect %s: no connection within %d ms", name,
		 TRANSPORT_CONNECT_TIMEOUT_MS);
	finish(at->sched, at, -ETIMEDOUT, -1, msg);
}

static bool adapter_busy(const struct transport_sched *s, int adapter)
{
	for (const struct attempt *at = s->head; at; at = at->next)
		if (at->addr.kind == TRANSPORT_LE && at->addr.adapter == adapter &&
		    at->state == ATTEMPT_CONNECTING)
			return true;
	return false;
}

/* Starts one attempt; on an immediate failure reports it and returns false. */
static bool start_attempt(struct transport_sched *s, struct attempt *at)
{
	char msg[TRANSPORT_ERR_LEN] = "";
	int fd = -1, r;

	r = s->open_fn(&at->addr, &fd, msg, sizeof(msg), s->open_data);
	if (r == 0) {
		r = loop_add_io(s->loop, fd, EPOLLOUT, connect_io_cb, at);
		if (r == 0) {
			r = loop_add_timer(s->loop, TRANSPORT_CONNECT_TIMEOUT_MS,
					   connect_timeout_cb, at, &at->timer_id);
			if (r < 0)
				loop_del_io(s->loop, fd);
		}
		if (r == 0) {
			at->fd = fd;
			at->state = ATTEMPT_CONNECTING;
			return true;
		}
		close(fd);
		snprintf(msg, sizeof(msg), "connect: %s", strerror(-r));
	}
	finish(s, at, r, -1, msg[0] ? msg : strerror(-r));
	return false;
}

static void kick_cb(struct loop *loop, uint64_t timer_id, void *user_data)
{
	struct transport_sched *s = user_data;
	struct attempt *at;

	s->kick_timer = 0;
restart:
	for (at = s->head; at; at = at->next) {
		if (at->state != ATTEMPT_QUEUED)
			continue;
		if (at->addr.kind == TRANSPORT_LE && adapter_busy(s, at->addr.adapter))
			continue;
		/* A failure runs a callback that may change the list: walk again. */
		if (!start_attempt(s, at))
			goto restart;
	}
}

int transport_sched_connect(struct transport_sched *s, const struct transport_address *a,
			    transport_connect_fn fn, void *user_data, unsigned *id_out)
{
	struct attempt *at, **pp;

	if (!s || !a || !fn || (a->kind != TRANSPORT_SIM && a->kind != TRANSPORT_LE))
		return -EINVAL;
	at = calloc(1, sizeof(*at));
	if (!at)
		return -ENOMEM;
	at->sched = s;
	at->addr = *a;
	at->fd = -1;
	at->fn = fn;
	at->user_data = user_data;
	at->state = ATTEMPT_QUEUED;
	if (++s->next_id == 0)
		s->next_id = 1;
	at->id = s->next_id;
	for (pp = &s->head; *pp; pp = &(*pp)->next)
		;
	*pp = at;
	schedule_kick(s);
	if (id_out)
		*id_out = at->id;
	return 0;
}

int transport_sched_cancel(struct transport_sched *s, unsigned id)
{
	for (struct attempt *at = s ? s->head : NULL; at; at = at->next) {
		if (at->id != id)
			continue;
		unlink_attempt(s, at);
		attempt_abandon(s, at);
		schedule_kick(s);
		return 0;
	}
	return -ENOENT;
}

unsigned transport_sched_in_flight(const struct transport_sched *s, int adapter)
{
	unsigned n = 0;

	for (const struct attempt *at = s->head; at; at = at->next)
		if (at->addr.kind == TRANSPORT_LE && at->addr.adapter == adapter &&
		    at->state == ATTEMPT_CONNECTING)
			n++;
	return n;
}
