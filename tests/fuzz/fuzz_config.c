/*
 * fuzz_config.c - libFuzzer target: the configuration loader
 * (gateway/src/config.c on top of libconfig).
 *
 * The input is the text of a configuration file. It is written to one
 * memfd (no disk I/O) and loaded through /proc/self/fd/N with config_load,
 * the same call `bfr-gateway -c FILE --check` makes. Checks:
 *   - failure: -EINVAL, -ENOMEM, -ENOENT or -EACCES; *out untouched; the
 *     message is one non-empty line that starts with the file name, and a
 *     shorter error buffer gets a prefix of the same message;
 *   - success: every value inside its documented range (config.h,
 *     docs/configuration.md), ids valid, cuff ids and addresses unique;
 *   - what --check accepts the gateway can run: each cuff's address, type,
 *     adapter and the BLE security pass transport_parse (what cuff_link_new
 *     calls), and the cuff's limits pass limits_override from the compiled
 *     defaults (what gateway.c's cuff_limits does before any cuff exists);
 *   - config_free releases everything (LeakSanitizer, per input).
 *
 * Inputs containing "@include" are skipped: libconfig would open whatever
 * file they name, and a FIFO or a device would block the fuzzer; include
 * processing is libconfig's, not ours. Run with stdin from /dev/null for
 * the same reason (password_file = "/dev/stdin").
 *
 * LeakSanitizer: tests/fuzz/config.lsan.supp (see there and
 * docs/reliability.md) suppresses libconfig 1.5's own leak of a string
 * token when a syntax error stops its parser; nothing of ours.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "limits.h"
#include "transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                \
	do {                       \
		if (!(cond))       \
			abort();   \
	} while (0)

#define POISON ((struct config *)0x5a5a)

static int memfd = -1;
static char path[64];

static bool id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= CONFIG_ID_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static bool in(unsigned v, unsigned lo, unsigned hi)
{
	return v >= lo && v <= hi;
}

static void check_limb(const struct config_limb_limits *l, unsigned max_session)
{
	CHECK(in(l->max_pressure_mmHg, CONFIG_PRESSURE_MIN_MMHG, CONFIG_PRESSURE_MAX_MMHG));
	CHECK(in(l->max_pct_lop, CONFIG_PCT_LOP_MIN, CONFIG_PCT_LOP_MAX));
	CHECK(in(l->session_total_s, 60, max_session));
}

/* The gateway's own derivation of a cuff's limits (gateway.c, cuff_limits). */
static void check_cuff_limits(const struct config *cfg, const struct config_cuff *cc)
{
	const struct config_limb_limits *ll = config_limb_limits(cfg, cc->limb);
	const struct {
		enum limits_field field;
		double value;
	} overrides[] = {
		{ LIMITS_F_MAX_PRESSURE, cc->max_pressure_mmHg },
		{ LIMITS_F_MAX_PCT_LOP, cc->max_pct_lop },
		{ LIMITS_F_SESSION_TOTAL_S, ll->session_total_s },
		{ LIMITS_F_MAX_INFLATION_S, cfg->max_inflation_s },
		{ LIMITS_F_MIN_REPERFUSION_S, cfg->min_reperfusion_s },
		{ LIMITS_F_SAMPLE_TIMEOUT_MS, cfg->sample_timeout_ms },
		{ LIMITS_F_DEFLATE_TIMEOUT_MS, cfg->deflate_timeout_ms },
		{ LIMITS_F_LOP_MAX_AGE_S, cfg->lop_max_age_s },
	};
	struct limits l;

	CHECK(limits_defaults(cc->limb == CONFIG_LIMB_LEG ? BFR_LIMB_LEG : BFR_LIMB_ARM, &l) == 0);
	for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
		CHECK(limits_override(&l, overrides[i].field, overrides[i].value, NULL) == 0);
}

static void check_loaded(const struct config *cfg)
{
	CHECK(cfg->path && strcmp(cfg->path, path) == 0);
	CHECK(id_ok(cfg->gateway_id) && id_ok(cfg->site) && cfg->data_dir && cfg->data_dir[0]);
	CHECK(cfg->mqtt.uri && cfg->mqtt.client_id && cfg->mqtt.client_id[0]);
	CHECK(in(cfg->mqtt.telemetry_hz, 1, 50) && in(cfg->mqtt.keepalive_s, 2, 300));
	CHECK(!cfg->mqtt.cert_file == !cfg->mqtt.key_file);
	CHECK(cfg->mqtt.tls || (!cfg->mqtt.ca_file && !cfg->mqtt.cert_file));
	CHECK(!cfg->mqtt.password_file == !cfg->mqtt.password);
	CHECK(cfg->ble_security <= CONFIG_SECURITY_HIGH);
	check_limb(&cfg->leg, 1200);
	check_limb(&cfg->arm, 900);
	CHECK(in(cfg->max_inflation_s, 10, 600) && in(cfg->min_reperfusion_s, 60, 3600));
	CHECK(in(cfg->sample_timeout_ms, 100, 500) && in(cfg->deflate_timeout_ms, 1000, 5000));
	CHECK(in(cfg->lop_max_age_s, 60, 3600) && in(cfg->supervision_timeout_ms, 500, 3000));
	CHECK(in(cfg->outbox_max_mib, 1, 4096));
	CHECK(!cfg->n_cuffs == !cfg->cuffs);
	for (size_t i = 0; i < cfg->n_cuffs; i++) {
		const struct config_cuff *c = &cfg->cuffs[i];
		const struct config_limb_limits *ll = config_limb_limits(cfg, c->limb);
		struct transport_address a;
		char err[TRANSPORT_ERR_LEN];

		CHECK(id_ok(c->id) && c->address && c->adapter);
		CHECK(c->limb == CONFIG_LIMB_LEG || c->limb == CONFIG_LIMB_ARM);
		CHECK(c->max_pressure_mmHg <= ll->max_pressure_mmHg &&
		      c->max_pct_lop <= ll->max_pct_lop);
		CHECK(c->max_pressure_mmHg >= CONFIG_PRESSURE_MIN_MMHG &&
		      c->max_pct_lop >= CONFIG_PCT_LOP_MIN);
		if (c->is_sim)
			CHECK(c->sim_path == c->address + 4 && c->sim_path[0]);
		CHECK(transport_parse(c->address,
				      c->address_type == CONFIG_ADDRESS_RANDOM ? "random" : "public",
				      c->adapter, config_security_name(cfg->ble_security), &a, err,
				      sizeof(err)) == 0);
		CHECK(c->is_sim ? a.kind == TRANSPORT_SIM : a.adapter == c->adapter_index);
		check_cuff_limits(cfg, c);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(cfg->cuffs[j].id, c->id) != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = POISON;
	char err[512], small[16];
	int r;

	if (memfd < 0) {
		memfd = memfd_create("bfr-fuzz-config", MFD_CLOEXEC);
		CHECK(memfd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (memmem(data, size, "@include", 8))
		return 0;
	CHECK(ftruncate(memfd, 0) == 0);
	CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);

	r = config_load(path, &cfg, err, sizeof(err));
	if (r == 0) {
		check_loaded(cfg);
		config_free(cfg);
		return 0;
	}
	CHECK(r == -EINVAL || r == -ENOMEM || r == -ENOENT || r == -EACCES);
	CHECK(cfg == POISON);
	CHECK(strncmp(err, path, strlen(path)) == 0 && strlen(err) > strlen(path));
	CHECK(!strchr(err, '\n'));
	/* A short buffer gets the start of the same one line. */
	CHECK(config_load(path, &cfg, small, sizeof(small)) == r && cfg == POISON);
	CHECK(strncmp(small, err, sizeof(small) - 1) == 0 && strlen(small) == sizeof(small) - 1);
	return 0;
}
