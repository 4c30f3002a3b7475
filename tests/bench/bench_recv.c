/*
 * bench_recv.c - the receive floor of issue 13: what it costs the kernel and
 * libc to take one small SEQPACKET PDU from each of many sockets through
 * epoll, the way the gateway's loop takes one notification from each cuff.
 *
 *   bench_recv [--sockets N] [--rounds R] [--mode recv|recvmmsg|et-drain]...
 *
 * Per round, one 23-byte PDU (a 4-sample pressure notification) is written
 * to each of N socket pairs, then the clock runs while an epoll loop takes
 * all N back and ends with a poll that finds nothing left. Modes, as
 * att_client.c has done them:
 *
 *   recv      level-triggered, one recv() per readiness event (since 30c801f)
 *   recvmmsg  level-triggered, one recvmmsg() asking for up to 4 (5fd4a0f)
 *   et-drain  edge-triggered, recv() until EAGAIN
 *
 * Runs go in the order given; give the modes alternately and several times
 * (--mode recv --mode recvmmsg --mode recv ...), so that a shared machine's
 * drift hits them alike; without --mode each runs once. Prints one line per
 * run, "MODE NS_PER_PDU POLLS", and last "MODE median NS" per mode. Exit
 * status 1 when a PDU is lost or the setup fails (named on stderr), 2 for a
 * bad argument.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PDU_LEN 23
#define BATCH 4
#define MAX_MODES 16

enum mode { MODE_RECV, MODE_RECVMMSG, MODE_ET_DRAIN };

static const char *const mode_names[] = { "recv", "recvmmsg", "et-drain" };

struct pairs {
	int n;
	int *writer, *reader;
	int epfd;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pairs_close(struct pairs *p)
{
	for (int i = 0; i < p->n; i++) {
		if (p->writer[i] >= 0)
			close(p->writer[i]);
		if (p->reader[i] >= 0)
			close(p->reader[i]);
	}
	if (p->epfd >= 0)
		close(p->epfd);
	free(p->writer);
	free(p->reader);
}

/* n socket pairs, the readers in one epoll set; *out untouched on failure. */
static int pairs_open(int n, enum mode mode, struct pairs *out)
{
	struct pairs pp = { .epfd = -1 }, *p = &pp;
	int err = -ENOMEM;

	p->writer = malloc(sizeof(int) * (size_t)n);
	p->reader = malloc(sizeof(int) * (size_t)n);
	if (!p->writer || !p->reader)
		goto fail;
	p->n = n;
	for (int i = 0; i < n; i++)
		p->writer[i] = p->reader[i] = -1;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		goto fail_errno;
	for (int i = 0; i < n; i++) {
		int sv[2];
		struct epoll_event ev = { .events = EPOLLIN | (mode == MODE_ET_DRAIN ? EPOLLET : 0),
					  .data.u32 = (uint32_t)i };

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
			goto fail_errno;
		p->writer[i] = sv[0];
		p->reader[i] = sv[1];
		if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, sv[1], &ev) < 0)
			goto fail_errno;
	}
	*out = pp;
	return 0;
fail_errno:
	err = -errno;
fail:
	pairs_close(p);
	return err;
}

/* Takes what is waiting on fd the mode's way: the PDUs taken, or -errno. */
static int take(enum mode mode, int fd)
{
	uint8_t buf[BATCH][64];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	int got = 0, n;

	switch (mode) {
	case MODE_RECV:
		n = (int)recv(fd, buf[0], sizeof(buf[0]), MSG_DONTWAIT);
		return n < 0 ? (errno == EAGAIN ? 0 : -errno) : 1;
	case MODE_RECVMMSG:
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ .iov_base = buf[i], .iov_len = sizeof(buf[i]) };
			msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		return n < 0 ? (errno == EAGAIN ? 0 : -errno) : n;
	case MODE_ET_DRAIN:
		while ((n = (int)recv(fd, buf[0], sizeof(buf[0]), MSG_DONTWAIT)) > 0)
			got++;
		return n < 0 && errno != EAGAIN ? -errno : got;
	}
	return -EINVAL;
}

/* One run: rounds × n PDUs; ns per PDU and polls into the outputs. */
static int run(enum mode mode, int n, int rounds, double *ns_out, long *polls_out)
{
	struct pairs p = { .epfd = -1 };
	struct epoll_event *events = NULL;
	const uint8_t pdu[PDU_LEN] = { 0x1B, 0x20, 0x00 };
	double spent = 0;
	long polls = 0;
	int err;

	err = pairs_open(n, mode, &p);
	if (err < 0)
		return err;
	err = -ENOMEM;
	events = calloc((size_t)n, sizeof(*events));
	if (!events)
		goto out;
	for (int r = 0; r < rounds; r++) {
		int taken = 0, ready;
		double t0;

		for (int i = 0; i < n; i++) {
			if (send(p.writer[i], pdu, sizeof(pdu), 0) != (ssize_t)sizeof(pdu)) {
				err = -errno;
				goto out;
			}
		}
		t0 = now_s();
		do {
			ready = epoll_wait(p.epfd, events, n, 0);
			polls++;
			if (ready < 0) {
				err = -errno;
				goto out;
			}
			for (int k = 0; k < ready; k++) {
				int got = take(mode, p.reader[events[k].data.u32]);

				if (got < 0) {
					err = got;
					goto out;
				}
				taken += got;
			}
		} while (ready > 0);
		spent += now_s() - t0;
		if (taken != n) {
			fprintf(stderr, "bench_recv: %s took %d of %d PDUs in round %d\n",
				mode_names[mode], taken, n, r);
			err = -EPROTO;
			goto out;
		}
	}
	*ns_out = spent / ((double)n * rounds) * 1e9;
	*polls_out = polls;
	err = 0;
out:
	free(events);
	pairs_close(&p);
	return err;
}

/*
 * Two fds per socket pair: 1 000 pairs pass the usual soft limit of 1 024.
 * Raised up to the hard limit; beyond that socketpair() says EMFILE.
 */
static void raise_fd_limit(int pairs)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)pairs * 2 + 16;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int parse_mode(const char *s, enum mode *out)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*out = (enum mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "sockets", required_argument, NULL, 's' },
					      { "rounds", required_argument, NULL, 'r' },
					      { "mode", required_argument, NULL, 'm' },
					      { NULL, 0, NULL, 0 } };
	enum mode modes[MAX_MODES];
	double ns[MAX_MODES];
	int n_modes = 0, sockets = 1000, rounds = 100, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		long v;

		switch (c) {
		case 's':
		case 'r':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 1 || v > 100000) {
				fprintf(stderr, "bench_recv: --%s: want 1..100000, got '%s'\n",
					c == 's' ? "sockets" : "rounds", optarg);
				return 2;
			}
			*(c == 's' ? &sockets : &rounds) = (int)v;
			break;
		case 'm':
			if (n_modes == MAX_MODES || parse_mode(optarg, &modes[n_modes]) < 0) {
				fprintf(stderr, "bench_recv: --mode: want recv, recvmmsg or et-drain "
						"(at most %d), got '%s'\n", MAX_MODES, optarg);
				return 2;
			}
			n_modes++;
			break;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench_recv: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	raise_fd_limit(sockets);
	if (!n_modes) {
		modes[n_modes++] = MODE_RECV;
		modes[n_modes++] = MODE_RECVMMSG;
		modes[n_modes++] = MODE_ET_DRAIN;
	}
	for (int i = 0; i < n_modes; i++) {
		long polls = 0;
		int r = run(modes[i], sockets, rounds, &ns[i], &polls);

		if (r < 0) {
			fprintf(stderr, "bench_recv: %s: %s%s\n", mode_names[modes[i]], strerror(-r),
				r == -EMFILE ? " (two fds per socket: fewer --sockets, or ulimit -n)" : "");
			return 1;
		}
		printf("%s %.0f %ld\n", mode_names[modes[i]], ns[i], polls);
	}
	for (size_t m = 0; m < sizeof(mode_names) / sizeof(mode_names[0]); m++) {
		double v[MAX_MODES];
		int k = 0;

		for (int i = 0; i < n_modes; i++)
			if (modes[i] == (enum mode)m)
				v[k++] = ns[i];
		if (!k)
			continue;
		qsort(v, (size_t)k, sizeof(v[0]), cmp_double);
		printf("%s median %.0f\n", mode_names[m], k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2);
	}
	return 0;
}
