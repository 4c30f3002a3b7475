/* test_config.c - config loader: defaults, a full config, and a table of bad configs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "test_alloc.h"

static char dir[64];
static char conf_path[128];
static char pass_path[128];

#define POISON ((struct config *)0x5a5a)

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Writes text as DIR/gw.conf; "@PASS@" and "@CONF@" become real file paths. */
static void write_conf(const char *text)
{
	char expanded[8192] = "";
	const char *p = text;

	while (*p) {
		if (strncmp(p, "@PASS@", 6) == 0) {
			strcat(expanded, pass_path);
			p += 6;
		} else if (strncmp(p, "@CONF@", 6) == 0) {
			strcat(expanded, conf_path);
			p += 6;
		} else {
			strncat(expanded, p, 1);
			p++;
		}
	}
	write_file(conf_path, expanded, strlen(expanded));
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/bfr-config-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/gw.conf", dir);
	snprintf(pass_path, sizeof(pass_path), "%s/password", dir);
	write_file(pass_path, "s3cret\nsecond line\n", 19);
	return 0;
}

static int teardown(void **state)
{
	unlink(conf_path);
	unlink(pass_path);
	rmdir(dir);
	return 0;
}

#define GW "gateway = { id = \"gw1\"; site = \"site1\"; };\n"

static void test_minimal_defaults(void **state)
{
	struct config *cfg = NULL;
	char err[256] = "x";

	write_conf(GW);
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(cfg->gateway_id, "gw1");
	assert_string_equal(cfg->site, "site1");
	assert_string_equal(cfg->data_dir, "/var/lib/bfr-gateway");
	assert_string_equal(cfg->mqtt.uri, "mqtt://127.0.0.1:1883");
	assert_string_equal(cfg->mqtt.client_id, "gw1");
	assert_null(cfg->mqtt.username);
	assert_null(cfg->mqtt.password);
	assert_int_equal(cfg->mqtt.telemetry_hz, 10);
	assert_int_equal(cfg->mqtt.keepalive_s, 10);
	assert_false(cfg->mqtt.tls);
	assert_null(cfg->mqtt.ca_file);
	assert_int_equal(cfg->ble_security, CONFIG_SECURITY_MEDIUM);
	assert_int_equal(cfg->leg.max_pressure_mmHg, 250);
	assert_int_equal(cfg->leg.max_pct_lop, 80);
	assert_int_equal(cfg->leg.session_total_s, 1200);
	assert_int_equal(cfg->arm.max_pressure_mmHg, 200);
	assert_int_equal(cfg->arm.max_pct_lop, 60);
	assert_int_equal(cfg->arm.session_total_s, 900);
	assert_int_equal(cfg->max_inflation_s, 600);
	assert_int_equal(cfg->min_reperfusion_s, 60);
	assert_int_equal(cfg->sample_timeout_ms, 500);
	assert_int_equal(cfg->deflate_timeout_ms, 5000);
	assert_int_equal(cfg->lop_max_age_s, 3600);
	assert_int_equal(cfg->supervision_timeout_ms, 3000);
	assert_int_equal(cfg->outbox_max_mib, 64);
	assert_int_equal(cfg->n_cuffs, 0);
	assert_null(cfg->cuffs);
	config_free(cfg);
}

static const char full_conf[] =
	"# every setting\n"
	"gateway = { id = \"clinic-a-gw1\"; site = \"clinic-a\"; data_dir = \"/tmp/gw\"; };\n"
	"mqtt = { uri = \"mqtts://broker.example:8883\"; client_id = \"gw1.client\";\n"
	"  username = \"gw\"; password_file = \"@PASS@\"; telemetry_hz = 25; keepalive_s = 30;\n"
	"  tls = { ca_file = \"@CONF@\"; cert_file = \"@CONF@\"; key_file = \"@PASS@\"; }; };\n"
	"ble = { security = \"high\"; };\n"
	"limits = { leg = { max_pressure_mmHg = 240; max_pct_lop = 70; session_total_s = 1000; };\n"
	"  arm = { max_pressure_mmHg = 180; max_pct_lop = 50; session_total_s = 600; };\n"
	"  max_inflation_s = 300; min_reperfusion_s = 90; sample_timeout_ms = 300;\n"
	"  deflate_timeout_ms = 4000; lop_max_age_s = 1800; };\n"
	"store = { outbox_max_mib = 16; };\n"
	"supervision_timeout_ms = 2000;\n"
	"cuffs = ( { id = \"bay1-left-thigh\"; address = \"sim:/run/cuffsim/cuff-01.sock\";\n"
	"            limb = \"leg\"; limits = { max_pressure_mmHg = 220; }; },\n"
	"          { id = \"bay2-right-arm\"; address = \"C4:7F:51:00:12:9A\";\n"
	"            address_type = \"random\"; adapter = \"hci1\"; limb = \"arm\";\n"
	"            limits = { max_pct_lop = 40; }; } );\n";

static void test_full(void **state)
{
	static const uint8_t expected_bdaddr[6] = { 0x9a, 0x12, 0x00, 0x51, 0x7f, 0xc4 };
	struct config *cfg = NULL;
	char err[256];

	write_conf(full_conf);
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->path, conf_path);
	assert_string_equal(cfg->gateway_id, "clinic-a-gw1");
	assert_string_equal(cfg->data_dir, "/tmp/gw");
	assert_true(cfg->mqtt.tls);
	assert_string_equal(cfg->mqtt.client_id, "gw1.client");
	assert_string_equal(cfg->mqtt.username, "gw");
	assert_string_equal(cfg->mqtt.password, "s3cret");
	assert_int_equal(cfg->mqtt.telemetry_hz, 25);
	assert_int_equal(cfg->mqtt.keepalive_s, 30);
	assert_string_equal(cfg->mqtt.ca_file, conf_path);
	assert_string_equal(cfg->mqtt.key_file, pass_path);
	assert_int_equal(cfg->ble_security, CONFIG_SECURITY_HIGH);
	assert_int_equal(cfg->leg.max_pressure_mmHg, 240);
	assert_int_equal(cfg->arm.max_pct_lop, 50);
	assert_int_equal(cfg->arm.session_total_s, 600);
	assert_int_equal(cfg->max_inflation_s, 300);
	assert_int_equal(cfg->min_reperfusion_s, 90);
	assert_int_equal(cfg->sample_timeout_ms, 300);
	assert_int_equal(cfg->deflate_timeout_ms, 4000);
	assert_int_equal(cfg->lop_max_age_s, 1800);
	assert_int_equal(cfg->outbox_max_mib, 16);
	assert_int_equal(cfg->supervision_timeout_ms, 2000);
	assert_int_equal(cfg->n_cuffs, 2);

	assert_string_equal(cfg->cuffs[0].id, "bay1-left-thigh");
	assert_true(cfg->cuffs[0].is_sim);
	assert_string_equal(cfg->cuffs[0].sim_path, "/run/cuffsim/cuff-01.sock");
	assert_int_equal(cfg->cuffs[0].limb, CONFIG_LIMB_LEG);
	assert_int_equal(cfg->cuffs[0].max_pressure_mmHg, 220);
	assert_int_equal(cfg->cuffs[0].max_pct_lop, 70); /* inherited from limits.leg */
	assert_string_equal(cfg->cuffs[0].adapter, "hci0");

	assert_false(cfg->cuffs[1].is_sim);
	assert_memory_equal(cfg->cuffs[1].bdaddr, expected_bdaddr, 6);
	assert_int_equal(cfg->cuffs[1].address_type, CONFIG_ADDRESS_RANDOM);
	assert_int_equal(cfg->cuffs[1].adapter_index, 1);
	assert_int_equal(cfg->cuffs[1].limb, CONFIG_LIMB_ARM);
	assert_int_equal(cfg->cuffs[1].max_pressure_mmHg, 180);
	assert_int_equal(cfg->cuffs[1].max_pct_lop, 40);
	assert_ptr_equal(config_limb_limits(cfg, CONFIG_LIMB_ARM), &cfg->arm);
	assert_string_equal(config_limb_name(cfg->cuffs[1].limb), "arm");
	assert_string_equal(config_security_name(cfg->ble_security), "high");
	config_free(cfg);
}

/* The shipped example must load: it is what operators copy. */
static void test_example_file_loads(void **state)
{
	char path[512];
	char err[512] = "";
	struct config *cfg = NULL;
	const char *tail = "tests/unit/gateway/test_config.c";
	size_t len = strlen(__FILE__);

	assert_true(len > strlen(tail));
	snprintf(path, sizeof(path), "%.*sdeploy/gateway.conf.example",
		 (int)(len - strlen(tail)), __FILE__);
	if (access(path, R_OK) < 0)
		fail_msg("missing %s", path);
	if (config_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(cfg->n_cuffs >= 2);
	config_free(cfg);
}

struct bad_case {
	const char *text;
	int line;            /* 0: the message carries no line */
	const char *setting; /* NULL: a syntax error */
	const char *message;
};

static const struct bad_case bad_cases[] = {
	{ "gateway = { id = \"gw1\";\n site = ; };\n", 2, NULL, "syntax error" },
	{ GW "cuffs = ( { id = \"c0\"; }\n", 3, NULL, "syntax error" },
	{ GW "a = 1;\na = 2;\n", 3, NULL, "duplicate setting name" },
	{ "", 0, "gateway", "required setting missing" },
	{ GW "colour = \"red\";\n", 2, "colour", "unknown setting" },
	{ "gateway = { id = \"gw1\"; site = \"s\";\n  name = \"x\"; };\n", 2, "gateway.name",
	  "unknown setting" },
	{ "gateway = 5;\n", 1, "gateway", "expected a group, got an integer" },
	{ "gateway = { site = \"s\"; };\n", 1, "gateway.id", "required setting missing" },
	{ "gateway = {\n id = \"gw 1\"; site = \"s\"; };\n", 2, "gateway.id",
	  "\"gw 1\" is not an id" },
	{ "gateway = {\n id = \"\"; site = \"s\"; };\n", 2, "gateway.id", "must not be empty" },
	{ "gateway = { id = \"a\";\n site = \"a/b\"; };\n", 2, "gateway.site", "is not an id" },
	{ "gateway = { id = "
	  "\"a12345678901234567890123456789012345678901234567890123456789012345\"; site = \"s\"; "
	  "};\n",
	  1, "gateway.id", "is not an id" },
	{ "gateway = { id = \"gw1\"; site = \"s\"; data_dir = 7; };\n", 1, "gateway.data_dir",
	  "expected a string, got an integer" },
	{ GW "mqtt = {\n telemetry_hz = 60; };\n", 3, "mqtt.telemetry_hz", "must be 1..50, got 60" },
	{ GW "mqtt = {\n telemetry_hz = 0; };\n", 3, "mqtt.telemetry_hz", "must be 1..50, got 0" },
	{ GW "mqtt = { telemetry_hz = -3; };\n", 2, "mqtt.telemetry_hz", "must be 1..50, got -3" },
	{ GW "mqtt = { telemetry_hz = 99999999999L; };\n", 2, "mqtt.telemetry_hz",
	  "must be 1..50, got 99999999999" },
	{ GW "mqtt = { telemetry_hz = \"10\"; };\n", 2, "mqtt.telemetry_hz",
	  "expected an integer, got a string" },
	{ GW "mqtt = { keepalive_s = 1; };\n", 2, "mqtt.keepalive_s", "must be 2..300, got 1" },
	{ GW "mqtt = { keepalive_s = 5.5; };\n", 2, "mqtt.keepalive_s",
	  "expected an integer, got a float" },
	{ GW "mqtt = {\n\n uri = \"http://broker\"; };\n", 4, "mqtt.uri",
	  "expected mqtt://, mqtts://, tcp://, ssl://, ws:// or wss:// and a host, got "
	  "\"http://broker\"" },
	{ GW "mqtt = { uri = \"mqtt://\"; };\n", 2, "mqtt.uri", "and a host" },
	{ GW "mqtt = { uri = true; };\n", 2, "mqtt.uri", "expected a string, got a boolean" },
	{ GW "mqtt = { client_id = \"a b\"; };\n", 2, "mqtt.client_id", "without spaces" },
	{ GW "mqtt = { password_file = \"/nonexistent/pw\"; };\n", 2, "mqtt.password_file",
	  "cannot read \"/nonexistent/pw\": No such file or directory" },
	{ GW "mqtt = { uri = \"mqtts://b\";\n tls = { cafile = \"x\"; }; };\n", 3,
	  "mqtt.tls.cafile", "unknown setting" },
	{ GW "mqtt = { uri = \"mqtts://b\";\n tls = {\n ca_file = \"/nonexistent/ca\"; }; };\n", 4,
	  "mqtt.tls.ca_file", "cannot read \"/nonexistent/ca\"" },
	{ GW "mqtt = { uri = \"mqtts://b\";\n tls = { cert_file = \"@CONF@\"; }; };\n", 3, "mqtt.tls",
	  "cert_file and key_file go together" },
	{ GW "mqtt = { uri = \"mqtt://b\";\n tls = { ca_file = \"@CONF@\"; }; };\n", 3, "mqtt.tls",
	  "TLS files are set but mqtt.uri is not mqtts://" },
	{ GW "mqtt = { tls = 1; };\n", 2, "mqtt.tls", "expected a group, got an integer" },
	{ GW "ble = { security = \"ultra\"; };\n", 2, "ble.security",
	  "expected \"low\", \"medium\" or \"high\", got \"ultra\"" },
	/* The file's strings are quoted; the message stays one line (fuzz finding). */
	{ GW "ble = { security = \"lo\\nw\t\"; };\n", 2, "ble.security",
	  "expected \"low\", \"medium\" or \"high\", got \"lo?w?\"" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"l },\n eg\"; } );\n", 2,
	  "cuffs.[0].limb", "got \"l },? eg\"" },
	{ GW "ble = 5;\n", 2, "ble", "expected a group, got an integer" },
	{ GW "ble = { secure = \"high\"; };\n", 2, "ble.secure", "unknown setting" },
	{ GW "limits = { leg = {\n max_pressure_mmHg = 301; }; };\n", 3,
	  "limits.leg.max_pressure_mmHg", "must be 30..250, got 301" },
	{ GW "limits = { arm = { max_pct_lop = 5; }; };\n", 2, "limits.arm.max_pct_lop",
	  "must be 10..60, got 5" },
	/* Looser than the compiled limb limit: the gateway would refuse to start (fuzz finding). */
	{ GW "limits = { leg = { max_pressure_mmHg = 251; }; };\n", 2,
	  "limits.leg.max_pressure_mmHg", "must be 30..250, got 251" },
	{ GW "limits = { leg = { max_pct_lop = 81; }; };\n", 2, "limits.leg.max_pct_lop",
	  "must be 10..80, got 81" },
	{ GW "limits = { arm = {\n max_pressure_mmHg = 201; }; };\n", 3,
	  "limits.arm.max_pressure_mmHg", "must be 30..200, got 201" },
	{ GW "limits = { arm = { max_pct_lop = 61; }; };\n", 2, "limits.arm.max_pct_lop",
	  "must be 10..60, got 61" },
	/* A ceiling below the safety engine's lowest (30 mmHg): the gateway would refuse it. */
	{ GW "limits = { leg = { max_pressure_mmHg = 29; }; };\n", 2,
	  "limits.leg.max_pressure_mmHg", "must be 30..250, got 29" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  limits = { max_pressure_mmHg = 20; }; } );\n",
	  3, "cuffs.[0].limits.max_pressure_mmHg", "must be 30..300, got 20" },
	{ GW "limits = { leg = { session_total_s = 2000; }; };\n", 2, "limits.leg.session_total_s",
	  "must be 60..1200, got 2000" },
	{ GW "limits = { max_inflation_s = 900; };\n", 2, "limits.max_inflation_s",
	  "must be 10..600, got 900" },
	{ GW "limits = { min_reperfusion_s = 30; };\n", 2, "limits.min_reperfusion_s",
	  "must be 60..3600, got 30" },
	{ GW "limits = { sample_timeout_ms = 1000; };\n", 2, "limits.sample_timeout_ms",
	  "must be 100..500, got 1000" },
	{ GW "limits = { deflate_timeout_ms = 9000; };\n", 2, "limits.deflate_timeout_ms",
	  "must be 1000..5000, got 9000" },
	{ GW "limits = { lop_max_age_s = 86400; };\n", 2, "limits.lop_max_age_s",
	  "must be 60..3600, got 86400" },
	{ GW "limits = { foot = { max_pct_lop = 50; }; };\n", 2, "limits.foot", "unknown setting" },
	{ GW "store = { outbox_max_mib = 0; };\n", 2, "store.outbox_max_mib",
	  "must be 1..4096, got 0" },
	{ GW "supervision_timeout_ms = 10000;\n", 2, "supervision_timeout_ms",
	  "must be 500..3000, got 10000" },
	{ GW "cuffs = 5;\n", 2, "cuffs", "expected a list, got an integer" },
	{ GW "cuffs = ( 5 );\n", 2, "cuffs.[0]", "expected a group, got an integer" },
	{ GW "cuffs = ( {\n address = \"sim:/a\"; limb = \"leg\"; } );\n", 2, "cuffs.[0].id",
	  "required setting missing" },
	{ GW "cuffs = ( {\n id = \"bay/1\"; address = \"sim:/a\"; limb = \"leg\"; } );\n", 3,
	  "cuffs.[0].id", "\"bay/1\" is not an id" },
	{ GW "cuffs = (\n { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\"; },\n"
	     " { id = \"c1\"; address = \"sim:/b\";\n"
	     "   limb = \"foot\"; } );\n",
	  5, "cuffs.[1].limb", "expected \"leg\" or \"arm\", got \"foot\"" },
	{ GW "cuffs = ( {\n id = \"c0\"; address = \"sim:/a\"; } );\n", 2, "cuffs.[0].limb",
	  "required setting missing" },
	{ GW "cuffs = ( { id = \"c0\";\n address = \"C4:7F:51:00:12\"; limb = \"leg\"; } );\n", 3,
	  "cuffs.[0].address",
	  "expected \"sim:/path\" or a Bluetooth address like \"C4:7F:51:00:12:9A\", got "
	  "\"C4:7F:51:00:12\"" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"G4:7F:51:00:12:9A\"; limb = \"leg\"; } );\n", 2,
	  "cuffs.[0].address", "expected \"sim:/path\"" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:\"; limb = \"leg\"; } );\n", 2,
	  "cuffs.[0].address", "needs a socket path" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"00:00:00:00:00:00\"; limb = \"leg\"; } );\n", 2,
	  "cuffs.[0].address", "is not a device address" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"C4:7F:51:00:12:9A\";\n address_type = \"static\"; "
	     "limb = \"leg\"; } );\n",
	  3, "cuffs.[0].address_type", "expected \"public\" or \"random\", got \"static\"" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\";\n adapter = \"hcx0\"; limb = \"leg\"; "
	     "} );\n",
	  3, "cuffs.[0].adapter", "expected an adapter name like \"hci0\", got \"hcx0\"" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; adapter = \"hci\"; limb = \"leg\"; } "
	     ");\n",
	  2, "cuffs.[0].adapter", "like \"hci0\"" },
	/* Above the transport's hci1023: the gateway would refuse the cuff at start (fuzz finding). */
	{ GW "cuffs = ( { id = \"c0\"; address = \"C4:7F:51:00:12:9A\";\n adapter = \"hci1024\"; "
	     "limb = \"leg\"; } );\n",
	  3, "cuffs.[0].adapter", "got \"hci1024\"" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  limits = {\n max_pressure_mmHg = 260; }; } );\n",
	  4, "cuffs.[0].limits.max_pressure_mmHg",
	  "260 is above the leg limit 250 (limits may only be tightened)" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"arm\";\n"
	     "  limits = { max_pct_lop = 70; }; } );\n",
	  3, "cuffs.[0].limits.max_pct_lop", "70 is above the arm limit 60" },
	{ GW "limits = { leg = { max_pressure_mmHg = 200; }; };\n"
	     "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  limits = { max_pressure_mmHg = 220; }; } );\n",
	  4, "cuffs.[0].limits.max_pressure_mmHg", "220 is above the leg limit 200" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  limits = { max_pressure_mmHg = 400; }; } );\n",
	  3, "cuffs.[0].limits.max_pressure_mmHg", "must be 30..300, got 400" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  limits = { target = 1; }; } );\n",
	  3, "cuffs.[0].limits.target", "unknown setting" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n colour = \"red\"; } "
	     ");\n",
	  3, "cuffs.[0].colour", "unknown setting" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\"; },\n"
	     "  { id = \"c0\"; address = \"sim:/b\"; limb = \"leg\"; } );\n",
	  3, "cuffs.[1].id", "duplicate of cuffs.[0].id \"c0\"" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"c4:7f:51:00:12:9a\"; limb = \"leg\"; },\n"
	     "  { id = \"c1\"; address = \"C4:7F:51:00:12:9A\"; limb = \"leg\"; } );\n",
	  3, "cuffs.[1].address", "duplicate of cuffs.[0].address" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\"; },\n"
	     "  { id = \"c1\";\n address = \"sim:/a\"; limb = \"arm\"; } );\n",
	  4, "cuffs.[1].address", "duplicate of cuffs.[0].address \"sim:/a\"" },
};

static void test_bad_configs(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct config *cfg = POISON;
		char err[512] = "";
		char want[256];
		int r;

		write_conf(bc->text);
		r = config_load(conf_path, &cfg, err, sizeof(err));
		if (r != -EINVAL || cfg != POISON)
			fail_msg("case %zu: r=%d, err \"%s\"", i, r, err);
		if (bc->line > 0)
			snprintf(want, sizeof(want), "%s:%d: %s%s", conf_path, bc->line,
				 bc->setting ? bc->setting : "", bc->setting ? ": " : "");
		else
			snprintf(want, sizeof(want), "%s: %s: ", conf_path, bc->setting);
		if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, bc->message))
			fail_msg("case %zu: got \"%s\", want \"%s...%s\"", i, err, want,
				 bc->message);
		assert_null(strchr(err, '\n'));
	}
	assert_true(sizeof(bad_cases) / sizeof(bad_cases[0]) >= 25);
}

/*
 * Issue 8 item 11 (found by fuzzing): an adapter name shorter than "hci"
 * made parse_adapter read past the end of the string (ASan
 * heap-buffer-overflow). Each must be refused, naming the setting.
 */
static void test_adapter_shorter_than_prefix_is_refused(void **state)
{
	static const char *const names[] = { "h", "hc", "x", "hci", "hc1" };
	char text[512], want[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct config *cfg = POISON;
		char err[512] = "";

		snprintf(text, sizeof(text),
			 GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\";\n"
			    " adapter = \"%s\"; limb = \"leg\"; } );\n",
			 names[i]);
		write_conf(text);
		assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), -EINVAL);
		assert_ptr_equal(cfg, POISON);
		snprintf(want, sizeof(want),
			 "%s:3: cuffs.[0].adapter: expected an adapter name like \"hci0\", got \"%s\"",
			 conf_path, names[i]);
		assert_string_equal(err, want);
	}
}

static void test_unreadable_and_garbage(void **state)
{
	struct config *cfg = POISON;
	char err[256] = "";
	uint8_t garbage[512];
	uint32_t seed = 7;

	assert_int_equal(config_load("/nonexistent/gw.conf", &cfg, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "/nonexistent/gw.conf: cannot read: No such file or directory");
	assert_ptr_equal(cfg, POISON);
	assert_int_equal(config_load(NULL, &cfg, err, sizeof(err)), -EINVAL);
	assert_int_equal(config_load(conf_path, NULL, err, sizeof(err)), -EINVAL);

	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof(garbage); i++) {
			seed = seed * 1103515245u + 12345u;
			garbage[i] = (uint8_t)(seed >> 16);
		}
		write_file(conf_path, (const char *)garbage, sizeof(garbage));
		err[0] = '\0';
		assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), -EINVAL);
		assert_ptr_equal(cfg, POISON);
		assert_true(strncmp(err, conf_path, strlen(conf_path)) == 0);
	}
	/* No error buffer at all is allowed. */
	write_conf("gateway = 1;\n");
	assert_int_equal(config_load(conf_path, &cfg, NULL, 0), -EINVAL);
	assert_ptr_equal(cfg, POISON);
}

static void test_allocation_failure(void **state)
{
	char err[256];
	int r = -ENOMEM;
	long n;

	write_conf(full_conf);
	for (n = 0; n < 200 && r != 0; n++) {
		struct config *cfg = POISON;

		test_alloc_fail_after(n);
		r = config_load(conf_path, &cfg, err, sizeof(err));
		test_alloc_reset();
		if (r == 0) {
			config_free(cfg);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		assert_ptr_equal(cfg, POISON);
		assert_non_null(strstr(err, "out of memory"));
	}
	assert_int_equal(r, 0);
	assert_true(n > 10); /* every string and the cuff array were failed once */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_example_file_loads),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_adapter_shorter_than_prefix_is_refused),
		cmocka_unit_test(test_unreadable_and_garbage),
		cmocka_unit_test(test_allocation_failure),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
