/* ctl.c - see ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Supplementary groups looked at per peer; a process in more is judged by
 * the first ones the kernel lists. */
#define CTL_MAX_GROUPS 256
#define CTL_CLIENT_REPLY_TIMEOUT_MS 15000

struct ctl_client {
	struct ctl *ctl;
	int fd; /* -1: slot free */
	struct ctl_peer peer;
	char buf[CTL_LINE_MAX];
	size_t len;
	uint64_t timer;
};

struct ctl {
	struct loop *loop;
	struct ctl_config cfg;
	char *path;
	int fd;
	struct ctl_callbacks cb;
	void *user_data;
	struct ctl_client clients[CTL_MAX_CLIENTS];
};

/* --- server ------------------------------------------------------------------------ */

static void client_close(struct ctl_client *cl)
{
	if (cl->fd < 0)
		return;
	loop_timer_stop(cl->ctl->loop, cl->timer);
	(void)loop_del_io(cl->ctl->loop, cl->fd); /* registered: cannot fail */
	close(cl->fd);
	cl->fd = -1;
	cl->len = 0;
}

/* One short line to a peer that is waiting for it; a peer that does not
 * read gets nothing (the reply is far below any socket buffer). */
static void send_line(int fd, json_t *reply)
{
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	static const char internal[] = "{\"ok\":false,\"code\":\"internal\","
				       "\"message\":\"The gateway could not answer.\"}";
	const char *out = text ? text : internal;
	size_t len = strlen(out);

	if (send(fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len ||
	    send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
		log_warn("ctl: the reply could not be sent");
	free(text);
}

static void on_client_io(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct ctl_client *cl = user_data;
	struct ctl *ctl = cl->ctl;
	char *nl;
	ssize_t n;
	json_t *reply;

	n = recv(fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->len += (size_t)n;
	cl->buf[cl->len] = '\0';
	nl = memchr(cl->buf, '\n', cl->len);
	if (!nl) {
		if (cl->len < sizeof(cl->buf) - 1)
			return;
		reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "code", "bad_request", "message",
				  "The request is too long.");
		send_line(fd, reply);
		json_decref(reply);
		client_close(cl);
		return;
	}
	*nl = '\0';
	if (nl > cl->buf && nl[-1] == '\r')
		nl[-1] = '\0';
	reply = ctl->cb.on_request ? ctl->cb.on_request(cl->buf, &cl->peer, ctl->user_data)
				   : NULL;
	send_line(fd, reply);
	json_decref(reply);
	client_close(cl);
}

static void on_client_timeout(struct loop *loop, uint64_t id, void *user_data)
{
	struct ctl_client *cl = user_data;

	log_info("ctl: uid %u (pid %d) sent no request in time", (unsigned)cl->peer.uid,
		 (int)cl->peer.pid);
	client_close(cl);
}

static bool in_group(int fd, gid_t group, gid_t primary)
{
	gid_t groups[CTL_MAX_GROUPS];
	socklen_t len = sizeof(groups);

	if (primary == group)
		return true;
	/* ERANGE: more groups than we look at; judge by those we got. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0 && errno != ERANGE)
		return false;
	if (len > sizeof(groups))
		len = sizeof(groups);
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == group)
			return true;
	return false;
}

static bool allowed(const struct ctl *ctl, int fd, const struct ctl_peer *peer)
{
	return peer->uid == 0 || peer->uid == geteuid() ||
	       (ctl->cfg.has_group && in_group(fd, ctl->cfg.group, peer->gid));
}

static void refuse(int fd, const struct ctl_peer *peer, const char *code, const char *message)
{
	json_t *reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "message", message);

	send_line(fd, reply);
	json_decref(reply);
	close(fd);
}

static void on_accept(struct loop *loop, int lfd, uint32_t events, void *user_data)
{
	struct ctl *ctl = user_data;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct ctl_peer peer;
	struct ctl_client *cl = NULL;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("ctl: accept: %s", strerror(errno));
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("ctl: cannot tell who connected (%s): refused", strerror(errno));
		close(fd);
		return;
	}
	peer = (struct ctl_peer){ .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
	if (!allowed(ctl, fd, &peer)) {
		log_warn("ctl: uid %u gid %u (pid %d) refused: not root, not the gateway's user%s",
			 (unsigned)peer.uid, (unsigned)peer.gid, (int)peer.pid,
			 ctl->cfg.has_group ? ", not in the control group" : "");
		refuse(fd, &peer, "permission_denied",
		       "Permission denied: this user may not control the gateway.");
		return;
	}
	for (size_t i = 0; i < CTL_MAX_CLIENTS && !cl; i++)
		if (ctl->clients[i].fd < 0)
			cl = &ctl->clients[i];
	if (!cl) {
		refuse(fd, &peer, "busy", "The gateway is busy. Please try again.");
		return;
	}
	if (loop_add_io(ctl->loop, fd, EPOLLIN, on_client_io, cl) < 0) {
		refuse(fd, &peer, "internal", "The gateway could not answer.");
		return;
	}
	cl->fd = fd;
	cl->len = 0;
	cl->peer = peer;
	if (loop_timer_start(ctl->loop, cl->timer, CTL_CLIENT_TIMEOUT_MS, 0) < 0)
		client_close(cl); /* cannot happen: the timer exists since ctl_new */
}

/*
 * A socket file from an earlier run is in the way of bind(); a gateway that
 * still answers on it must not be cut off, and a file that is not a socket
 * was put there by someone else.
 */
static int clear_stale(const char *path, const struct sockaddr_un *addr, char *err,
		       size_t errlen)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "ctl: %s exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	if (r == 0) {
		snprintf(err, errlen, "ctl: %s: another gateway is listening there", path);
		return -EADDRINUSE;
	}
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int ctl_new(struct loop *loop, const struct ctl_config *cfg, const struct ctl_callbacks *cb,
	    void *user_data, struct ctl **out, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct ctl *ctl = NULL;
	bool bound = false;
	int r;

	err[0] = '\0';
	if (!cfg->path || strlen(cfg->path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "ctl: socket path missing or too long");
		return -EINVAL;
	}
	memcpy(addr.sun_path, cfg->path, strlen(cfg->path) + 1);
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->loop = loop;
	ctl->cfg = *cfg;
	ctl->fd = -1;
	if (cb)
		ctl->cb = *cb;
	ctl->user_data = user_data;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		ctl->clients[i] = (struct ctl_client){ .ctl = ctl, .fd = -1 };
	ctl->path = strdup(cfg->path);
	if (!ctl->path) {
		r = -ENOMEM;
		goto fail;
	}
	ctl->cfg.path = ctl->path;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
		r = loop_timer_new(loop, on_client_timeout, &ctl->clients[i],
				   &ctl->clients[i].timer);
		if (r < 0)
			goto fail;
	}
	r = clear_stale(ctl->path, &addr, err, errlen);
	if (r < 0)
		goto fail;
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (bind(ctl->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		goto fail;
	}
	bound = true;
	/* Who may talk is decided per connection by the kernel's credentials. */
	if (chmod(ctl->path, 0666) < 0 || listen(ctl->fd, 8) < 0) {
		r = -errno;
		goto fail;
	}
	r = loop_add_io(loop, ctl->fd, EPOLLIN, on_accept, ctl);
	if (r < 0)
		goto fail;
	*out = ctl;
	return 0;
fail:
	if (!err[0])
		snprintf(err, errlen, "ctl: cannot listen on %s: %s", cfg->path, strerror(-r));
	if (bound)
		unlink(ctl->path);
	if (ctl->fd >= 0)
		close(ctl->fd);
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		loop_timer_free(loop, ctl->clients[i].timer);
	free(ctl->path);
	free(ctl);
	return r;
}

void ctl_free(struct ctl *ctl)
{
	if (!ctl)
		return;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
		client_close(&ctl->clients[i]);
		loop_timer_free(ctl->loop, ctl->clients[i].timer);
	}
	(void)loop_del_io(ctl->loop, ctl->fd);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

/* --- client ------------------------------------------------------------------------ */

static void client_usage(FILE *f)
{
	fprintf(f, "usage: bfr-gateway ctl [-s PATH] [--json] start|stop|status\n"
		   "  start            start the prescribed session (the plan cannot be changed "
		   "here)\n"
		   "  stop             stop the running session; the cuffs deflate\n"
		   "  status           the prescription, today's sessions, supervision, cuffs\n"
		   "  -s, --socket PATH  the gateway's control socket (default %s)\n"
		   "      --json       print the gateway's answer as JSON\n",
		   CTL_DEFAULT_SOCKET);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends request, reads one reply line into buf. 0 or -errno. */
static int ask(const char *path, const char *request, char *buf, size_t cap)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int64_t deadline = mono_ms() + CTL_CLIENT_REPLY_TIMEOUT_MS;
	size_t len = 0;
	int fd, r = 0;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		goto out;
	}
	/* A refused client is answered and closed before it speaks: its
	 * request may find the connection gone, the answer is there anyway. */
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0 && errno != EPIPE &&
	    errno != ECONNRESET) {
		r = -errno;
		goto out;
	}
	while (len + 1 < cap && !memchr(buf, '\n', len)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - mono_ms();
		ssize_t n;

		if (left <= 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			r = -errno;
			goto out;
		}
		n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET && len > 0))
			break;
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			r = -errno;
			goto out;
		}
		if (n > 0)
			len += (size_t)n;
	}
	buf[len] = '\0';
	if (len == 0)
		r = -ECONNRESET;
out:
	close(fd);
	return r;
}

static void print_reply(json_t *reply)
{
	json_t *text = json_object_get(reply, "text"), *line;
	const char *message = json_string_value(json_object_get(reply, "message"));
	const char *code = json_string_value(json_object_get(reply, "code"));
	size_t i;

	if (json_is_array(text)) {
		json_array_foreach(text, i, line)
			if (json_is_string(line))
				printf("%s\n", json_string_value(line));
		return;
	}
	if (json_is_true(json_object_get(reply, "ok")))
		printf("%s\n", message ? message : "done");
	else
		printf("refused (%s): %s\n", code ? code : "error", message ? message : "");
}

int ctl_client_main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = CTL_DEFAULT_SOCKET, *verb;
	char request[32], buf[65536];
	json_error_t jerr;
	json_t *reply;
	bool as_json = false;
	int opt, r;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:h", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			client_usage(stdout);
			return 0;
		default:
			client_usage(stderr);
			return 2;
		}
	}
	/* Exactly one word: nothing a patient types can carry a plan or a limit. */
	if (optind != argc - 1) {
		client_usage(stderr);
		return 2;
	}
	verb = argv[optind];
	if (strcmp(verb, "start") != 0 && strcmp(verb, "stop") != 0 &&
	    strcmp(verb, "status") != 0) {
		fprintf(stderr, "bfr-gateway ctl: unknown request \"%s\"\n", verb);
		client_usage(stderr);
		return 2;
	}
	snprintf(request, sizeof(request), "%s\n", verb);
	r = ask(path, request, buf, sizeof(buf));
	if (r < 0) {
		fprintf(stderr, "bfr-gateway ctl: %s: %s (is the home gateway running?)\n", path,
			strerror(-r));
		return 2;
	}
	reply = json_loads(buf, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!json_is_object(reply)) {
		fprintf(stderr, "bfr-gateway ctl: the gateway's answer is not JSON\n");
		json_decref(reply);
		return 2;
	}
	if (as_json)
		printf("%s", buf);
	else
		print_reply(reply);
	r = json_is_true(json_object_get(reply, "ok")) ? 0 : 1;
	json_decref(reply);
	return r;
}
