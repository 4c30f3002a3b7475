/*
 * bfr-gateway - supervises BFR cuffs and publishes to MQTT.
 *
 *   bfr-gateway -c FILE                 run
 *   bfr-gateway -c FILE --check         validate the configuration only
 *   bfr-gateway -c FILE --export-sessions OUT.jsonl [--since TIME]
 *                                       write ended sessions as JSON lines
 *                                       (those started at or after TIME, RFC 3339)
 *   bfr-gateway ctl [-s SOCKET] start|stop|status
 *                                       a home gateway's local console (ctl.c)
 *
 * Exit status: 0 clean stop, 1 runtime failure, 2 bad usage or configuration.
 *
 * Under systemd (Type=notify) it reports READY=1 once the gateway is set
 * up, WATCHDOG=1 from a loop timer at half of WatchdogSec (so a hung event
 * loop, the thread of every safety check, gets the service restarted), and
 * STOPPING=1 when the orderly stop begins.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "export.h"
#include "gateway.h"
#include "log.h"
#include "loop.h"
#include "realtime.h"
#include "rfc3339.h"
#include "sd_notify.h"
#include "store.h"

struct watchdog {
	uint64_t interval_ms;
	uint64_t timer;
};

/*
 * The loop's thread (this one) as SCHED_FIFO, before gateway_new starts the
 * store's and Paho's threads (they would not inherit it anyway: realtime.h).
 * Without the privilege the gateway runs as before, only with more latency
 * under load, so that is a warning, not a reason to stop supervising.
 */
static void enter_realtime(unsigned priority)
{
	int r;

	if (priority == 0)
		return;
	r = realtime_enter((int)priority);
	if (r == 0)
		log_info("event loop: SCHED_FIFO, priority %u", priority);
	else
		log_warn("gateway.realtime_priority %u not applied (%s): the event loop runs at "
			 "the normal priority; a systemd unit grants it with LimitRTPRIO=%u "
			 "(docs/operations.md)",
			 priority, strerror(-r), priority);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bfr-gateway -c FILE [--check | --export-sessions OUT [--since TIME]] "
		   "[-v]\n"
		   "       bfr-gateway ctl [-s SOCKET] [--json] start|stop|status\n"
		   "  -c, --config FILE          configuration file (libconfig syntax)\n"
		   "      --check                validate the configuration and exit\n"
		   "      --export-sessions OUT  write ended sessions as JSON lines "
		   "(- for stdout)\n"
		   "      --since TIME           only sessions started at or after TIME "
		   "(RFC 3339,\n"
		   "                             e.g. 2026-11-24T00:00:00Z)\n"
		   "  -v, --verbose              debug logging\n"
		   "  -V, --version              print the version\n"
		   "  -h, --help                 this text\n");
}

static int export_sessions(const struct config *cfg, const char *out_path, const char *since,
			   int64_t since_ms)
{
	struct store_config scfg = { .data_dir = cfg->data_dir };
	struct export_options opt = {
		.gateway_id = cfg->gateway_id, .site = cfg->site, .since_ms = since_ms
	};
	struct store *store = NULL;
	char err[256] = "";
	FILE *out = stdout;
	size_t count = 0;
	int r = store_open(&scfg, &store, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "bfr-gateway: %s\n", err);
		return 1;
	}
	if (strcmp(out_path, "-") != 0) {
		/* Patient records: readable by the owner only, whatever the umask. */
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		out = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!out && fd >= 0)
			close(fd);
		if (!out) {
			fprintf(stderr, "bfr-gateway: %s: %s\n", out_path, strerror(errno));
			store_close(store, NULL);
			return 1;
		}
	}
	r = store_export_sessions(store, &opt, out, &count);
	if (out != stdout && fclose(out) != 0 && r == 0)
		r = -errno;
	store_close(store, NULL);
	if (r < 0) {
		fprintf(stderr, "bfr-gateway: export failed: %s\n", strerror(-r));
		return 1;
	}
	fprintf(stderr, "bfr-gateway: exported %zu sessions%s%s\n", count,
		since ? " started at or after " : "", since ? since : "");
	return 0;
}

static void on_watchdog(struct loop *loop, uint64_t id, void *user_data)
{
	struct watchdog *wd = user_data;

	/* Nothing to do if systemd cannot be told: it will restart us anyway. */
	(void)sdn_watchdog();
	if (loop_add_timer(loop, wd->interval_ms, on_watchdog, wd, &wd->timer) < 0)
		wd->timer = 0;
}

/* Pings at half of WatchdogSec; no timer when the watchdog is off. */
static void watchdog_start(struct loop *loop, struct watchdog *wd)
{
	uint64_t usec = 0;

	if (sdn_watchdog_usec(&usec) <= 0)
		return;
	wd->interval_ms = usec / 2000 ? usec / 2000 : 1;
	log_info("systemd watchdog: pinging every %" PRIu64 " ms", wd->interval_ms);
	if (loop_add_timer(loop, wd->interval_ms, on_watchdog, wd, &wd->timer) < 0)
		log_error("systemd watchdog: cannot add the timer; systemd will restart the "
			  "service");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "export-sessions", required_argument, NULL, 'e' },
		{ "since", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *export_path = NULL, *since = NULL;
	int64_t since_ms = EXPORT_SINCE_ALL;
	struct config *cfg = NULL;
	struct gateway *gw = NULL;
	struct loop *loop = NULL;
	struct watchdog wd = { 0 };
	sigset_t stop_signals;
	bool check = false;
	char err[512] = "";
	int opt, r;

	/* The console of a home gateway: a client, no configuration needed (the
	 * patient's user may not read it). */
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return ctl_client_main(argc - 1, argv + 1);
	while ((opt = getopt_long(argc, argv, "c:vVh", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'e':
			export_path = optarg;
			break;
		case 's':
			since = optarg;
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case 'V':
			printf("bfr-gateway %s\n", BFR_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config_path || optind != argc || (check && export_path)) {
		usage(stderr);
		return 2;
	}
	if (since && !export_path) {
		fprintf(stderr, "bfr-gateway: --since selects what --export-sessions writes; "
				"give both\n");
		return 2;
	}
	/* Before the configuration: a bad argument is reported as such, and no
	 * output file is created for it. */
	if (since && rfc3339_parse(since, 0, &since_ms, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "bfr-gateway: --since \"%s\": %s\n", since, err);
		return 2;
	}
	r = config_load(config_path, &cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bfr-gateway: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: OK (%zu cuffs)\n", config_path, cfg->n_cuffs);
		config_free(cfg);
		return 0;
	}
	if (export_path) {
		r = export_sessions(cfg, export_path, since, since_ms);
		config_free(cfg);
		return r;
	}
	/* A broker that goes away mid-write must not kill the supervisor. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Block the stop signals before any thread exists (the store's writer,
	 * Paho's): threads inherit the mask, so SIGTERM can only arrive through
	 * the loop's signalfd and run the orderly stop.
	 */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	r = loop_new(&loop);
	if (r < 0) {
		fprintf(stderr, "bfr-gateway: event loop: %s\n", strerror(-r));
		config_free(cfg);
		return 1;
	}
	enter_realtime(cfg->realtime_priority);
	r = gateway_new(loop, cfg, &gw, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bfr-gateway: %s\n", err);
		loop_free(loop);
		return r == -EINVAL ? 2 : 1;
	}
	watchdog_start(loop, &wd);
	(void)sdn_ready(); /* without systemd there is nobody to tell */
	r = gateway_run(gw);
	/* The stop (flush, DEFLATEs, disconnect) gets a whole watchdog interval. */
	(void)sdn_stopping();
	(void)sdn_watchdog();
	if (wd.timer)
		loop_cancel_timer(loop, wd.timer);
	gateway_free(gw);
	loop_free(loop);
	return r < 0 ? 1 : 0;
}
