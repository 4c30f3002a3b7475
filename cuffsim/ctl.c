/* ctl.c - see ctl.h */
#include "ctl.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A `stats` reply of 1000 cuffs is about 1 MiB; anything far beyond is not cuffsim. */
#define REPLY_MAX (16u << 20)
#define TIMEOUT_MAX_S 3600.0

struct ctl_opts {
	const char *dir;
	const char *socket;
	double timeout_s;
	int first_word; /* index of the first command word in argv; argc if none */
	bool help;
};

struct ctl {
	int fd;
	double timeout_s;
	char *buf; /* received, not yet consumed */
	size_t len, cap;
	size_t consumed; /* bytes of buf belonging to the reply already returned */
	FILE *out, *err;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cuffsim ctl (--dir DIR | --socket PATH) [--timeout S] [COMMAND...]\n"
		"  --dir DIR       cuffsim's directory: talks to DIR/control.sock\n"
		"  --socket PATH   the control socket itself\n"
		"  --timeout S     seconds to wait for each reply (default %.0f)\n"
		"  COMMAND...      one control line, e.g. `leak 2 20` or `stats`; without it,\n"
		"                  lines are read from stdin (blank and '#' lines skipped)\n"
		"exit status: 0 all replies ok, 1 cuffsim refused a line, 2 usage or connection\n",
		CTL_DEFAULT_TIMEOUT_S);
}

static int parse_timeout(const char *text, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || *end || !isfinite(v) || v <= 0 || v > TIMEOUT_MAX_S)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct ctl_opts *o, FILE *err)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->timeout_s = CTL_DEFAULT_TIMEOUT_S;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = true;
			return 0;
		}
		if (strncmp(a, "-", 1) != 0)
			break;
		if (strcmp(a, "--dir") != 0 && strcmp(a, "--socket") != 0 &&
		    strcmp(a, "--timeout") != 0) {
			fprintf(err, "cuffsim ctl: unknown option '%s'\n", a);
			return -EINVAL;
		}
		if (i + 1 >= argc) {
			fprintf(err, "cuffsim ctl: %s needs a value\n", a);
			return -EINVAL;
		}
		if (strcmp(a, "--dir") == 0) {
			o->dir = argv[++i];
		} else if (strcmp(a, "--socket") == 0) {
			o->socket = argv[++i];
		} else if (parse_timeout(argv[++i], &o->timeout_s) < 0) {
			fprintf(err,
				"cuffsim ctl: --timeout: want seconds, 0 < S <= %.0f, got '%s'\n",
				TIMEOUT_MAX_S, argv[i]);
			return -EINVAL;
		}
	}
	if (!o->dir == !o->socket) {
		fprintf(err, "cuffsim ctl: give exactly one of --dir and --socket\n");
		return -EINVAL;
	}
	o->first_word = i;
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int connect_control(const struct ctl_opts *o, int *out, FILE *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int n, fd;

	if (o->dir)
		n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/control.sock", o->dir);
	else
		n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", o->socket);
	if (n < 0 || (size_t)n >= sizeof(addr.sun_path)) {
		fprintf(err, "cuffsim ctl: socket path longer than %zu bytes\n",
			sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(err, "cuffsim ctl: socket: %s\n", strerror(errno));
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;

		fprintf(err, "cuffsim ctl: cannot connect to %s: %s\n", addr.sun_path, strerror(e));
		close(fd);
		return -e;
	}
	*out = fd;
	return 0;
}

static int send_line(struct ctl *c, const char *line)
{
	size_t len = strlen(line), off = 0;
	char nl = '\n';

	while (off <= len) {
		const char *p = off < len ? line + off : &nl;
		size_t n = off < len ? len - off : 1;
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			fprintf(c->err, "cuffsim ctl: cuffsim closed the connection before '%s' "
					"was sent\n", line);
			return -ECONNRESET;
		}
		if (w < 0) {
			fprintf(c->err, "cuffsim ctl: sending '%s': %s\n", line, strerror(errno));
			return -errno;
		}
		off += (size_t)w;
	}
	return 0;
}

/* Waits for one reply line; *line points into c->buf until the next call. */
static int read_reply(struct ctl *c, const char *sent, char **line)
{
	uint64_t deadline = mono_ms() + (uint64_t)llround(c->timeout_s * 1000.0);
	char *nl;

	/* Drop the previous reply. */
	if (c->consumed) {
		memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
		c->len -= c->consumed;
		c->consumed = 0;
	}
	while (!(nl = c->len ? memchr(c->buf, '\n', c->len) : NULL)) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		uint64_t now = mono_ms();
		ssize_t n;
		int r;

		if (now >= deadline) {
			fprintf(c->err, "cuffsim ctl: no reply to '%s' within %g s\n", sent,
				c->timeout_s);
			return -ETIMEDOUT;
		}
		r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno != EINTR) {
			fprintf(c->err, "cuffsim ctl: poll: %s\n", strerror(errno));
			return -errno;
		}
		if (r <= 0)
			continue;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *b;

			if (cap > REPLY_MAX) {
				fprintf(c->err, "cuffsim ctl: reply to '%s' longer than %u bytes\n",
					sent, REPLY_MAX);
				return -EMSGSIZE;
			}
			b = realloc(c->buf, cap);
			if (!b) {
				fprintf(c->err, "cuffsim ctl: out of memory\n");
				return -ENOMEM;
			}
			c->buf = b;
			c->cap = cap;
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != ECONNRESET) {
			fprintf(c->err, "cuffsim ctl: receiving: %s\n", strerror(errno));
			return -errno;
		}
		if (n <= 0) {
			fprintf(c->err, "cuffsim ctl: cuffsim closed the connection without "
					"replying to '%s'\n", sent);
			return -ECONNRESET;
		}
		c->len += (size_t)n;
	}
	*nl = '\0';
	c->consumed = (size_t)(nl - c->buf) + 1;
	*line = c->buf;
	return 0;
}

/* One line out, its reply printed: CTL_EXIT_OK, _REFUSED or _FAILED. */
static int exchange(struct ctl *c, const char *line)
{
	char *reply = NULL;

	if (send_line(c, line) < 0 || read_reply(c, line, &reply) < 0)
		return CTL_EXIT_FAILED;
	fprintf(c->out, "%s\n", reply);
	fflush(c->out);
	return strncmp(reply, "ok", 2) == 0 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
}

/* The command words as one line; NULL (message on err) for a line break in them. */
static char *join_words(int n, char **words, FILE *err)
{
	size_t len = 1;
	char *line, *p;

	for (int i = 0; i < n; i++) {
		if (strpbrk(words[i], "\r\n")) {
			fprintf(err, "cuffsim ctl: a command word contains a line break\n");
			return NULL;
		}
		len += strlen(words[i]) + 1;
	}
	line = malloc(len);
	if (!line) {
		fprintf(err, "cuffsim ctl: out of memory\n");
		return NULL;
	}
	p = line;
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? " " : "", words[i]);
	*p = '\0';
	return line;
}

static bool skipped(const char *line)
{
	line += strspn(line, " \t");
	return *line == '\0' || *line == '#';
}

static int run_stdin(struct ctl *c, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int status = CTL_EXIT_OK;

	while ((n = getline(&line, &cap, in)) >= 0) {
		int r;

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (skipped(line))
			continue;
		r = exchange(c, line);
		if (r == CTL_EXIT_FAILED) {
			status = r;
			break;
		}
		if (r == CTL_EXIT_REFUSED)
			status = r;
	}
	free(line);
	return status;
}

int cuffsim_ctl_main(int argc, char **argv, FILE *in, FILE *out, FILE *err)
{
	struct ctl_opts o;
	struct ctl c = { .fd = -1, .out = out, .err = err };
	char *line = NULL;
	int status = CTL_EXIT_FAILED;

	if (parse_args(argc, argv, &o, err) < 0) {
		usage(err);
		return CTL_EXIT_FAILED;
	}
	if (o.help) {
		usage(out);
		return CTL_EXIT_OK;
	}
	c.timeout_s = o.timeout_s;
	if (o.first_word < argc) {
		line = join_words(argc - o.first_word, argv + o.first_word, err);
		if (!line)
			goto out;
	}
	if (connect_control(&o, &c.fd, err) < 0)
		goto out;
	status = line ? exchange(&c, line) : run_stdin(&c, in);
out:
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	free(line);
	return status;
}
