/*
 * cuffsim - simulated BFR cuffs, each a real ATT/GATT server on an AF_UNIX
 * SOCK_SEQPACKET socket (docs/cuffsim.md).
 *
 * Exit status: 0 after SIGTERM/SIGINT or `quit`, 1 on a runtime failure,
 * 2 on bad arguments or a bad scenario file (nothing is started then).
 * `cuffsim ctl ...` is the control-socket client instead (ctl.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "att.h"
#include "control.h"
#include "ctl.h"
#include "cuff_gatt.h"
#include "cuff_profile.h"
#include "loop.h"
#include "sim.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cuffsim --dir DIR --cuffs N [--limb leg|arm] [--rate HZ] [--lop MMHG]\n"
		"               [--seed S] [--scenario FILE] [--handle-shift K] [--batch N]\n"
		"               [--stagger] [--mtu N]\n"
		"  --dir DIR          where cuff-01.sock ... and control.sock are created\n"
		"  --cuffs N          number of cuffs, 1..%u\n"
		"  --limb leg|arm     limb and cuff type (default leg)\n"
		"  --rate HZ          samples per second per cuff, 1..1000 (default 50)\n"
		"  --lop MMHG         limb occlusion pressure, 50..350 (default: formula)\n"
		"  --seed S           PRNG seed (default 1)\n"
		"  --scenario FILE    timed control lines, validated before start\n"
		"  --handle-shift K   filler handles before the BFR service, 0..%u\n"
		"  --batch N          samples per notification when the MTU allows, 1..%u\n"
		"  --stagger          spread the cuffs' sample instants over the period\n"
		"                     (default: all cuffs sample at the same instant)\n"
		"  --mtu N            ATT MTU the cuffs answer to Exchange MTU, 23..517\n"
		"                     (default 517; 23 makes clients read long values with\n"
		"                     Read Blob)\n"
		"       cuffsim ctl (--dir DIR | --socket PATH) [--timeout S] [COMMAND...]\n"
		"                     send control lines to a running cuffsim (--help)\n",
		CONTROL_MAX_CUFFS, CUFF_GATT_MAX_SHIFT, (unsigned)BFR_MAX_SAMPLES_PER_NTF);
}

static int parse_ulong(const char *text, unsigned long long min, unsigned long long max,
		       unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!text[0] || text[strspn(text, "0123456789")] != '\0')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void on_signal(struct loop *loop, int signo, void *user_data)
{
	loop_quit(loop);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "cuffs", required_argument, NULL, 'n' },
		{ "limb", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'r' },
		{ "lop", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 's' },
		{ "scenario", required_argument, NULL, 'f' },
		{ "handle-shift", required_argument, NULL, 'k' },
		{ "batch", required_argument, NULL, 'b' },
		{ "stagger", no_argument, NULL, 'g' },
		{ "mtu", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sim_config cfg = {
		.limb = BFR_LIMB_LEG,
		.rate_hz = 50,
		.seed = 1,
		.batch = 1,
	};
	const char *scenario_path = NULL;
	struct scenario *sc = NULL;
	struct loop *loop = NULL;
	struct sim *sim = NULL;
	unsigned long long v;
	char err[512];
	int opt, ret = 2, r;

	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return cuffsim_ctl_main(argc - 1, argv + 1, stdin, stdout, stderr);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			cfg.dir = optarg;
			break;
		case 'n':
			if (parse_ulong(optarg, 1, CONTROL_MAX_CUFFS, &v) < 0) {
				fprintf(stderr, "cuffsim: --cuffs: want 1..%u, got '%s'\n",
					CONTROL_MAX_CUFFS, optarg);
				goto out;
			}
			cfg.n_cuffs = (unsigned)v;
			break;
		case 'l':
			if (strcmp(optarg, "leg") == 0) {
				cfg.limb = BFR_LIMB_LEG;
			} else if (strcmp(optarg, "arm") == 0) {
				cfg.limb = BFR_LIMB_ARM;
			} else {
				fprintf(stderr, "cuffsim: --limb: want leg or arm, got '%s'\n",
					optarg);
				goto out;
			}
			break;
		case 'r':
			if (parse_ulong(optarg, 1, 1000, &v) < 0) {
				fprintf(stderr, "cuffsim: --rate: want 1..1000, got '%s'\n", optarg);
				goto out;
			}
			cfg.rate_hz = (uint32_t)v;
			break;
		case 'o': {
			char *end;
			double d = strtod(optarg, &end);

			if (*end || end == optarg || !isfinite(d) || d < 50 || d > 350) {
				fprintf(stderr, "cuffsim: --lop: want 50..350 mmHg, got '%s'\n",
					optarg);
				goto out;
			}
			cfg.lop_mmhg = d;
			break;
		}
		case 's':
			if (parse_ulong(optarg, 0, UINT64_MAX, &v) < 0) {
				fprintf(stderr, "cuffsim: --seed: want an unsigned integer, got '%s'\n",
					optarg);
				goto out;
			}
			cfg.seed = v;
			break;
		case 'f':
			scenario_path = optarg;
			break;
		case 'k':
			if (parse_ulong(optarg, 0, CUFF_GATT_MAX_SHIFT, &v) < 0) {
				fprintf(stderr, "cuffsim: --handle-shift: want 0..%u, got '%s'\n",
					CUFF_GATT_MAX_SHIFT, optarg);
				goto out;
			}
			cfg.handle_shift = (unsigned)v;
			break;
		case 'b':
			if (parse_ulong(optarg, 1, BFR_MAX_SAMPLES_PER_NTF, &v) < 0) {
				fprintf(stderr, "cuffsim: --batch: want 1..%u, got '%s'\n",
					(unsigned)BFR_MAX_SAMPLES_PER_NTF, optarg);
				goto out;
			}
			cfg.batch = (unsigned)v;
			break;
		case 'g':
			cfg.stagger = true;
			break;
		case 'm':
			if (parse_ulong(optarg, ATT_DEFAULT_MTU, ATT_MAX_MTU, &v) < 0) {
				fprintf(stderr, "cuffsim: --mtu: want %u..%u, got '%s'\n",
					ATT_DEFAULT_MTU, ATT_MAX_MTU, optarg);
				goto out;
			}
			cfg.server_mtu = (uint16_t)v;
			break;
		case 'h':
			usage(stdout);
			ret = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cuffsim: unexpected argument '%s'\n", argv[optind]);
		goto out;
	}
	if (!cfg.dir || !cfg.n_cuffs) {
		fprintf(stderr, "cuffsim: --dir and --cuffs are required\n");
		usage(stderr);
		goto out;
	}
	if (scenario_path) {
		r = scenario_load(scenario_path, cfg.n_cuffs, &sc, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "cuffsim: scenario %s\n", err);
			goto out;
		}
	}

	ret = 1;
	r = loop_new(&loop);
	if (r < 0) {
		fprintf(stderr, "cuffsim: event loop: %s\n", strerror(-r));
		goto out;
	}
	r = sim_new(loop, &cfg, &sim);
	if (r < 0) {
		fprintf(stderr, "cuffsim: cannot serve in %s: %s\n", cfg.dir, strerror(-r));
		goto out;
	}
	if (loop_add_signal(loop, SIGTERM, on_signal, NULL) < 0 ||
	    loop_add_signal(loop, SIGINT, on_signal, NULL) < 0) {
		fprintf(stderr, "cuffsim: cannot handle signals\n");
		goto out;
	}
	sim_set_scenario(sim, sc);
	sc = NULL;
	r = sim_start(sim);
	if (r < 0) {
		fprintf(stderr, "cuffsim: start: %s\n", strerror(-r));
		goto out;
	}
	printf("cuffsim: ready %u cuffs in %s\n", cfg.n_cuffs, cfg.dir);
	fflush(stdout);
	r = loop_run(loop);
	if (r < 0) {
		fprintf(stderr, "cuffsim: event loop failed: %s\n", strerror(-r));
		goto out;
	}
	ret = 0;
out:
	sim_free(sim);
	loop_free(loop);
	scenario_free(sc);
	return ret;
}
