/* test_config.c - config loader: defaults, a full config, and a table of bad configs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "test_alloc.h"

static char dir[64];
static char conf_path[128];
static char pass_path[128];
static char ca_path[128], cert_path[128], key_path[128], other_key_path[128];
static char world_key_path[128];

/*
 * TLS material the loader checks with OpenSSL (EC P-256, valid until 2126):
 * a CA, a client certificate it signed, that certificate's key, and a key
 * of another certificate.
 */
static const char ca_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBejCCASGgAwIBAgIUV+FDongcr2o5chdT9puJpm3ZcXQwCgYIKoZIzj0EAwIw\n"
	"EjEQMA4GA1UEAwwHdGVzdCBDQTAgFw0yNjEyMDYxMjE1MzdaGA8yMTI2MTExMjEy\n"
	"MTUzN1owEjEQMA4GA1UEAwwHdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
	"A0IABI6xzreeZcckcmMlrZlBkoA2RoWN5/WPkksSLxigxRWd7RDiXIaxuktvZDXU\n"
	"WDAg+ColFWwmnhnT3TI/4gp+I22jUzBRMB0GA1UdDgQWBBRnh+q4pPa+bELa4y4w\n"
	"LcoDq7I3ozAfBgNVHSMEGDAWgBRnh+q4pPa+bELa4y4wLcoDq7I3ozAPBgNVHRMB\n"
	"Af8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIG/DtZQBATrg3xrDfka+9qjU6mM+\n"
	"wfj+3r7Tv8b4RPZnAiAhgFS/2De+hlSI3ibmdkWD63vQEiqxNHXCzcuP1eZ4SQ==\n"
	"-----END CERTIFICATE-----\n";
static const char cert_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBJDCBzAIUOk8l77ixC/nYJltBpmqu9icwUUgwCgYIKoZIzj0EAwIwEjEQMA4G\n"
	"A1UEAwwHdGVzdCBDQTAgFw0yNjEyMDYxMjE1MzdaGA8yMTI2MTExMjEyMTUzN1ow\n"
	"FzEVMBMGA1UEAwwMY2xpbmljLWEtZ3cxMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD\n"
	"QgAEtCvNDmMxCyqPG0Z4o1/aET4UevPFddwUteFAKicqGmsdHNJCcw7OZG/pDXRD\n"
	"41DjQHswiW3dgu6CHbasAjXGdzAKBggqhkjOPQQDAgNHADBEAiAeMWs/7ch2FdB6\n"
	"fwIpTrGbw6iCj/BEPIdNx95PriGgewIgK6MNfyR6wGAQd1SR0oGEkC85aDBTwDdw\n"
	"Od7SKLuHiV4=\n"
	"-----END CERTIFICATE-----\n";
static const char key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIqjXec0nzC16EZ7k\n"
	"mux9x2hqVBKpyHI4yjOAq5VjmNyhRANCAAS0K80OYzELKo8bRnijX9oRPhR688V1\n"
	"3BS14UAqJyoaax0c0kJzDs5kb+kNdEPjUONAezCJbd2C7oIdtqwCNcZ3\n"
	"-----END PRIVATE KEY-----\n";
static const char other_key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghoGNY7kCObLJi3kQ\n"
	"Vm0Ufp78qVJGx/cd54cEcx6JCWGhRANCAAT3X+Pz9x3o5t4eN6+sojurymDYA+W7\n"
	"4ogLYIjPclGeHnZhNVrJQC7RxcXLuRRw/pqNw/RkxrIGZoUe09OMahuK\n"
	"-----END PRIVATE KEY-----\n";

#define POISON ((struct config *)0x5a5a)

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/*
 * Writes text as DIR/gw.conf; "@PASS@", "@CONF@", "@CA@", "@CERT@", "@KEY@"
 * and "@OTHERKEY@" become real file paths.
 */
static void write_conf(const char *text)
{
	const struct {
		const char *mark;
		const char *path;
	} marks[] = { { "@PASS@", pass_path }, { "@CONF@", conf_path },
		      { "@CA@", ca_path },     { "@CERT@", cert_path },
		      { "@KEY@", key_path },   { "@OTHERKEY@", other_key_path },
		      { "@WORLDKEY@", world_key_path } };
	char expanded[8192] = "";
	const char *p = text;

	while (*p) {
		size_t i, n = sizeof(marks) / sizeof(marks[0]);

		for (i = 0; i < n; i++)
			if (strncmp(p, marks[i].mark, strlen(marks[i].mark)) == 0)
				break;
		if (i < n) {
			strcat(expanded, marks[i].path);
			p += strlen(marks[i].mark);
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
	snprintf(ca_path, sizeof(ca_path), "%s/ca.crt", dir);
	snprintf(cert_path, sizeof(cert_path), "%s/gw.crt", dir);
	snprintf(key_path, sizeof(key_path), "%s/gw.key", dir);
	snprintf(other_key_path, sizeof(other_key_path), "%s/other.key", dir);
	snprintf(world_key_path, sizeof(world_key_path), "%s/world.key", dir);
	write_file(ca_path, ca_pem, strlen(ca_pem));
	write_file(cert_path, cert_pem, strlen(cert_pem));
	write_file(key_path, key_pem, strlen(key_pem));
	write_file(other_key_path, other_key_pem, strlen(other_key_pem));
	/* Private keys readable by every user are refused. */
	if (chmod(key_path, 0600) < 0 || chmod(other_key_path, 0600) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	unlink(conf_path);
	unlink(pass_path);
	unlink(ca_path);
	unlink(cert_path);
	unlink(key_path);
	unlink(other_key_path);
	unlink(world_key_path);
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
	assert_int_equal(cfg->realtime_priority, 0);
	assert_int_equal(cfg->n_cuffs, 0);
	assert_null(cfg->cuffs);
	assert_false(cfg->home.enabled);
	assert_null(cfg->home.control_socket);
	config_free(cfg);
}

/* An empty home group makes a home gateway with every default. */
static void test_home_defaults(void **state)
{
	struct config *cfg = NULL;
	char err[256] = "x";

	write_conf(GW "home = { };\n");
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
	assert_true(cfg->home.enabled);
	assert_string_equal(cfg->home.control_socket, "/run/bfr-gateway/ctl.sock");
	assert_null(cfg->home.control_group);
	assert_int_equal(cfg->home.supervisor_grace_s, 10);
	config_free(cfg);
}

static const char full_conf[] =
	"# every setting\n"
	"gateway = { id = \"clinic-a-gw1\"; site = \"clinic-a\"; data_dir = \"/tmp/gw\";\n"
	"            realtime_priority = 10; };\n"
	"mqtt = { uri = \"mqtts://broker.example:8883\"; client_id = \"gw1.client\";\n"
	"  username = \"gw\"; password_file = \"@PASS@\"; telemetry_hz = 25; keepalive_s = 30;\n"
	"  tls = { ca_file = \"@CA@\"; cert_file = \"@CERT@\"; key_file = \"@KEY@\"; }; };\n"
	"ble = { security = \"high\"; };\n"
	"limits = { leg = { max_pressure_mmHg = 240; max_pct_lop = 70; session_total_s = 1000; };\n"
	"  arm = { max_pressure_mmHg = 180; max_pct_lop = 50; session_total_s = 600; };\n"
	"  max_inflation_s = 300; min_reperfusion_s = 90; sample_timeout_ms = 300;\n"
	"  deflate_timeout_ms = 4000; lop_max_age_s = 1800; };\n"
	"store = { outbox_max_mib = 16; };\n"
	"supervision_timeout_ms = 2000;\n"
	"home = { control_socket = \"/run/bfr/ctl.sock\"; control_group = \"root\";\n"
	"         supervisor_grace_s = 0; };\n"
	"cuffs = ( { id = \"bay1-left-thigh\"; address = \"sim:/run/cuffsim/cuff-01.sock\";\n"
	"            limb = \"leg\"; limits = { max_pressure_mmHg = 220; };\n"
	"            label = \"Bay 1, linker Oberschenkel (J\xc3\xbcrgen)\"; },\n"
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
	assert_int_equal(cfg->realtime_priority, 10);
	assert_true(cfg->mqtt.tls);
	assert_string_equal(cfg->mqtt.client_id, "gw1.client");
	assert_string_equal(cfg->mqtt.username, "gw");
	assert_string_equal(cfg->mqtt.password, "s3cret");
	assert_int_equal(cfg->mqtt.telemetry_hz, 25);
	assert_int_equal(cfg->mqtt.keepalive_s, 30);
	assert_string_equal(cfg->mqtt.ca_file, ca_path);
	assert_string_equal(cfg->mqtt.cert_file, cert_path);
	assert_string_equal(cfg->mqtt.key_file, key_path);
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
	assert_true(cfg->home.enabled);
	assert_string_equal(cfg->home.control_socket, "/run/bfr/ctl.sock");
	assert_string_equal(cfg->home.control_group, "root");
	assert_int_equal(cfg->home.control_gid, 0);
	assert_int_equal(cfg->home.supervisor_grace_s, 0);
	assert_int_equal(cfg->n_cuffs, 2);

	assert_string_equal(cfg->cuffs[0].id, "bay1-left-thigh");
	assert_true(cfg->cuffs[0].is_sim);
	assert_string_equal(cfg->cuffs[0].sim_path, "/run/cuffsim/cuff-01.sock");
	assert_int_equal(cfg->cuffs[0].limb, CONFIG_LIMB_LEG);
	assert_int_equal(cfg->cuffs[0].max_pressure_mmHg, 220);
	assert_int_equal(cfg->cuffs[0].max_pct_lop, 70); /* inherited from limits.leg */
	assert_string_equal(cfg->cuffs[0].adapter, "hci0");
	assert_string_equal(cfg->cuffs[0].label, "Bay 1, linker Oberschenkel (J\xc3\xbcrgen)");
	assert_null(cfg->cuffs[1].label);
	assert_int_equal(cfg->mqtt.ended_retain_s, CONFIG_ENDED_RETAIN_S);

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
	{ "gateway = { id = \"gw1\"; site = \"s\";\n realtime_priority = 50; };\n", 2,
	  "gateway.realtime_priority", "must be 0..49, got 50" },
	{ "gateway = { id = \"gw1\"; site = \"s\"; realtime_priority = -1; };\n", 1,
	  "gateway.realtime_priority", "must be 0..49, got -1" },
	{ "gateway = { id = \"gw1\"; site = \"s\"; realtime_priority = \"high\"; };\n", 1,
	  "gateway.realtime_priority", "expected an integer, got a string" },
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
	{ GW "home = 1;\n", 2, "home", "expected a group, got an integer" },
	{ GW "home = {\n button = true; };\n", 3, "home.button", "unknown setting" },
	{ GW "home = {\n control_socket = \"run/ctl.sock\"; };\n", 3, "home.control_socket",
	  "must be an absolute path of at most 107 characters, got \"run/ctl.sock\"" },
	{ GW "home = { control_socket = \"/run/0123456789012345678901234567890123456789012345678901"
	     "234567890123456789012345678901234567890123456789.sock\"; };\n",
	  2, "home.control_socket", "must be an absolute path of at most 107 characters" },
	{ GW "home = { control_socket = 5; };\n", 2, "home.control_socket",
	  "expected a string, got an integer" },
	{ GW "home = {\n\n control_group = \"no-such-group-bfr\"; };\n", 4, "home.control_group",
	  "no such group \"no-such-group-bfr\"" },
	{ GW "home = { control_group = 100; };\n", 2, "home.control_group",
	  "expected a string, got an integer" },
	{ GW "home = { supervisor_grace_s = 301; };\n", 2, "home.supervisor_grace_s",
	  "must be 0..300, got 301" },
	{ GW "home = { supervisor_grace_s = -1; };\n", 2, "home.supervisor_grace_s",
	  "must be 0..300, got -1" },
	{ GW "home = { supervisor_grace_s = 2.5; };\n", 2, "home.supervisor_grace_s",
	  "expected an integer, got a float" },
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
	/* A label is display text: printable UTF-8, 1..64 characters. */
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  label = \"Bay 1\\tleft\"; } );\n",
	  3, "cuffs.[0].label", "a label is 1..64 characters of UTF-8 text" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  label = \"\\xc3\\x28\"; } );\n",
	  3, "cuffs.[0].label", "a label is 1..64 characters of UTF-8 text" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  label = \"0123456789012345678901234567890123456789012345678901234567890123X\"; } );\n",
	  3, "cuffs.[0].label", "a label is 1..64 characters of UTF-8 text" },
	{ GW "cuffs = ( { id = \"c0\"; address = \"sim:/a\"; limb = \"leg\";\n"
	     "  label = 5; } );\n",
	  3, "cuffs.[0].label", "expected a string" },
	{ GW "mqtt = {\n ended_retain_s = 5; };\n", 3, "mqtt.ended_retain_s",
	  "must be 10..604800, got 5" },
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

/* ---- TLS key material, checked with OpenSSL at load time (issue 11) ---- */

#define TLS_CONF(ca, cert, key)                                                              \
	GW "mqtt = { uri = \"mqtts://broker.example:8883\";\n"                                \
	   "  tls = {\n"                                                                        \
	   "    ca_file = \"" ca "\";\n"                                                        \
	   "    cert_file = \"" cert "\";\n"                                                    \
	   "    key_file = \"" key "\";\n"                                                      \
	   "  }; };\n"

static const struct bad_case tls_cases[] = {
	{ TLS_CONF("@CA@", "@CERT@", "@OTHERKEY@"), 6, "mqtt.tls.key_file",
	  "does not match the certificate" },
	{ TLS_CONF("@CONF@", "@CERT@", "@KEY@"), 4, "mqtt.tls.ca_file",
	  "holds no usable PEM CA certificate" },
	{ TLS_CONF("@CA@", "@KEY@", "@KEY@"), 5, "mqtt.tls.cert_file", "holds no PEM certificate" },
	{ TLS_CONF("@CA@", "@CERT@", "@CERT@"), 6, "mqtt.tls.key_file",
	  "holds no unencrypted PEM private key" },
	{ TLS_CONF("@CA@", "@CERT@", "@WORLDKEY@"), 6, "mqtt.tls.key_file",
	  "is readable by every user (mode 0644)" },
};

static void test_tls_key_material_refused(void **state)
{
	struct config *cfg = POISON;
	char err[512] = "";

	/* The right key, but readable by every user. */
	write_file(world_key_path, key_pem, strlen(key_pem));
	assert_int_equal(chmod(world_key_path, 0644), 0);

	for (size_t i = 0; i < sizeof(tls_cases) / sizeof(tls_cases[0]); i++) {
		const struct bad_case *bc = &tls_cases[i];
		char want[256];
		int r;

		write_conf(bc->text);
		r = config_load(conf_path, &cfg, err, sizeof(err));
		if (r != -EINVAL || cfg != POISON)
			fail_msg("tls case %zu: r=%d, err \"%s\"", i, r, err);
		snprintf(want, sizeof(want), "%s:%d: %s: ", conf_path, bc->line, bc->setting);
		if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, bc->message))
			fail_msg("tls case %zu: got \"%s\", want \"%s...%s\"", i, err, want,
				 bc->message);
	}
}

/* The matching set loads; so does a CA alone (password login over TLS). */
static void test_tls_key_material_accepted(void **state)
{
	struct config *cfg = NULL;
	char err[512] = "";

	write_conf(TLS_CONF("@CA@", "@CERT@", "@KEY@"));
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->mqtt.cert_file, cert_path);
	config_free(cfg);
	write_conf(GW "mqtt = { uri = \"mqtts://b\"; tls = { ca_file = \"@CA@\"; }; };\n");
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
	assert_null(cfg->mqtt.cert_file);
	config_free(cfg);
}

/* ---- cuff ranges and @include (issue 13: 2 000 cuffs, readable) ---- */

/* One refused configuration: -EINVAL, *out untouched, the "FILE:LINE: setting: " prefix. */
static void expect_refused(const char *file, const struct bad_case *bc, const char *what,
			   size_t i)
{
	struct config *cfg = POISON;
	char err[1024] = "";
	char want[512];
	int r;

	r = config_load(conf_path, &cfg, err, sizeof(err));
	if (r != -EINVAL || cfg != POISON)
		fail_msg("%s %zu: r=%d, err \"%s\"", what, i, r, err);
	if (bc->setting)
		snprintf(want, sizeof(want), "%s:%d: %s: ", file, bc->line, bc->setting);
	else
		snprintf(want, sizeof(want), "%s:%d: ", file, bc->line);
	if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, bc->message))
		fail_msg("%s %zu: got \"%s\", want \"%s...%s\"", what, i, err, want, bc->message);
	assert_null(strchr(err, '\n'));
}

static void test_cuff_ranges_expand(void **state)
{
	struct config *cfg = NULL;
	char err[512] = "";
	const struct config_cuff *c;

	write_conf(GW "cuffs = ( { id = \"solo\"; address = \"sim:/run/s.sock\"; limb = \"arm\"; } );\n"
		      "cuff_ranges = (\n"
		      "  { id = \"bay%04d\"; address = \"sim:/run/a/cuff-%02d.sock\";\n"
		      "    from = 1; to = 1000; limb = \"leg\"; limits = { max_pressure_mmHg = 240; }; },\n"
		      "  { id = \"bay%04d\"; address = \"sim:/run/b/cuff-%02d.sock\";\n"
		      "    from = 1001; to = 2000; address_from = 1; limb = \"leg\"; adapter = \"hci1\"; },\n"
		      "  { id = \"ble-%X\"; address = \"C4:7F:51:00:12:%02X\"; from = 10; to = 12;\n"
		      "    limb = \"arm\"; address_type = \"random\"; }\n"
		      ");\n");
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->n_cuffs, 1 + 1000 + 1000 + 3);
	/* Single cuffs first, then each range in order. */
	assert_string_equal(cfg->cuffs[0].id, "solo");
	c = &cfg->cuffs[1];
	assert_string_equal(c->id, "bay0001");
	assert_string_equal(c->address, "sim:/run/a/cuff-01.sock");
	assert_true(c->is_sim);
	assert_string_equal(c->sim_path, "/run/a/cuff-01.sock");
	assert_int_equal(c->limb, CONFIG_LIMB_LEG);
	assert_int_equal(c->max_pressure_mmHg, 240);
	assert_string_equal(c->adapter, "hci0");
	c = &cfg->cuffs[1000];
	assert_string_equal(c->id, "bay1000");
	assert_string_equal(c->address, "sim:/run/a/cuff-1000.sock");
	c = &cfg->cuffs[1001];
	assert_string_equal(c->id, "bay1001");
	assert_string_equal(c->address, "sim:/run/b/cuff-01.sock");
	assert_int_equal(c->max_pressure_mmHg, 250);
	assert_string_equal(c->adapter, "hci1");
	assert_int_equal(c->adapter_index, 1);
	assert_string_equal(cfg->cuffs[2000].id, "bay2000");
	assert_string_equal(cfg->cuffs[2000].address, "sim:/run/b/cuff-1000.sock");
	c = &cfg->cuffs[2001];
	assert_string_equal(c->id, "ble-A");
	assert_string_equal(c->address, "C4:7F:51:00:12:0A");
	assert_false(c->is_sim);
	assert_int_equal(c->bdaddr[0], 0x0a);
	assert_int_equal(c->bdaddr[5], 0xc4);
	assert_int_equal(c->address_type, CONFIG_ADDRESS_RANDOM);
	assert_int_equal(c->limb, CONFIG_LIMB_ARM);
	assert_int_equal(c->max_pressure_mmHg, 200);
	assert_string_equal(cfg->cuffs[2003].id, "ble-C");
	config_free(cfg);
}

#define RANGE(fields) GW "cuff_ranges = ( { " fields " } );\n"
#define SIM_RANGE(extra)                                                                    \
	RANGE("id = \"bay%04d\"; address = \"sim:/a/cuff-%02d.sock\"; limb = \"leg\"; " extra)

static const struct bad_case range_cases[] = {
	{ GW "cuff_ranges = 5;\n", 2, "cuff_ranges", "expected a list, got an integer" },
	{ GW "cuff_ranges = ( 5 );\n", 2, "cuff_ranges.[0]", "expected a group, got an integer" },
	{ SIM_RANGE("from = 1; to = 2; colour = \"red\";"), 2, "cuff_ranges.[0].colour",
	  "unknown setting" },
	{ SIM_RANGE("to = 2;"), 2, "cuff_ranges.[0].from", "required setting missing" },
	{ SIM_RANGE("from = 1;"), 2, "cuff_ranges.[0].to", "required setting missing" },
	{ GW "cuff_ranges = ( { id = \"b%d\"; address = \"sim:/a/%d\"; limb = \"leg\";\n"
	     " from = 5;\n to = 3; } );\n",
	  4, "cuff_ranges.[0].to", "must not be below from (5), got 3" },
	{ SIM_RANGE("from = -1; to = 2;"), 2, "cuff_ranges.[0].from", "must be 0..999999, got -1" },
	{ SIM_RANGE("from = 1; to = 1000000;"), 2, "cuff_ranges.[0].to",
	  "must be 0..999999, got 1000000" },
	{ SIM_RANGE("from = 1; to = \"9\";"), 2, "cuff_ranges.[0].to",
	  "expected an integer, got a string" },
	{ SIM_RANGE("from = 1; to = 10; address_from = 999995;"), 2,
	  "cuff_ranges.[0].address_from", "999995 + 9 cuffs goes beyond 999999" },
	{ SIM_RANGE("from = 1; to = 5000;"), 2, "cuff_ranges.[0]",
	  "5000 cuffs in all (cuffs and cuff_ranges up to here), more than 4096" },
	{ GW "cuff_ranges = ( { id = \"a%d\"; address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; "
	     "to = 4000; },\n { id = \"b%d\"; address = \"sim:/b/%d\"; limb = \"leg\"; from = 1; "
	     "to = 97; } );\n",
	  3, "cuff_ranges.[1]", "4097 cuffs in all" },
	{ RANGE("address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; to = 2;"), 2,
	  "cuff_ranges.[0].id", "required setting missing" },
	{ RANGE("id = \"bay\"; address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; to = 2;"), 2,
	  "cuff_ranges.[0].id", "\"bay\" is not a template: it needs exactly one %d" },
	{ RANGE("id = \"bay%d-%d\"; address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; to = 2;"),
	  2, "cuff_ranges.[0].id", "is not a template" },
	{ RANGE("id = \"bay%s\"; address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; to = 2;"), 2,
	  "cuff_ranges.[0].id", "is not a template" },
	{ RANGE("id = \"bay%4d\"; address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; to = 2;"), 2,
	  "cuff_ranges.[0].id", "is not a template" },
	{ RANGE("id = \"bay%d\"; address = \"sim:/a/x\"; limb = \"leg\"; from = 1; to = 2;"), 2,
	  "cuff_ranges.[0].address", "\"sim:/a/x\" is not a template" },
	{ RANGE("id = 7; address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; to = 2;"), 2,
	  "cuff_ranges.[0].id", "expected a string, got an integer" },
	{ GW "cuff_ranges = ( { address = \"sim:/a/%d\"; limb = \"leg\"; from = 1; to = 2;\n"
	     "  id = \"bay/%d\"; } );\n",
	  3, "cuff_ranges.[0].id",
	  "\"bay/1\" (number 1) is not an id: use 1..64 of A-Z a-z 0-9 _ -" },
	{ RANGE("id = \"a123456789012345678901234567890123456789012345678901234567890%d\"; "
		"address = \"sim:/a/%d\"; limb = \"leg\"; from = 999; to = 1000;"),
	  2, "cuff_ranges.[0].id", "(number 1000) is not an id" },
	{ RANGE("id = \"c%d\"; address = \"C4:7F:51:00:12:%X\"; limb = \"leg\"; from = 250; "
		"to = 256;"),
	  2, "cuff_ranges.[0].address",
	  "expected \"sim:/path\" or a Bluetooth address like \"C4:7F:51:00:12:9A\", got "
	  "\"C4:7F:51:00:12:100\"" },
	{ RANGE("id = \"c%d\"; address = \"00:00:00:00:00:%02x\"; limb = \"leg\"; from = 0; "
		"to = 3;"),
	  2, "cuff_ranges.[0].address", "\"00:00:00:00:00:00\" is not a device address" },
	{ RANGE("id = \"c%d\"; address = \"sim:/a/%d\"; from = 1; to = 2;"), 2,
	  "cuff_ranges.[0].limb", "required setting missing" },
	{ SIM_RANGE("from = 1; to = 2; adapter = \"hcx\";"), 2, "cuff_ranges.[0].adapter",
	  "expected an adapter name like \"hci0\", got \"hcx\"" },
	{ GW "cuff_ranges = ( { id = \"c%d\"; address = \"sim:/a/%d\"; limb = \"leg\"; from = 1;\n"
	     "  to = 2; limits = {\n max_pressure_mmHg = 260; }; } );\n",
	  4, "cuff_ranges.[0].limits.max_pressure_mmHg",
	  "260 is above the leg limit 250 (limits may only be tightened)" },
	/* Duplicates, against single cuffs and other ranges, ids and addresses. */
	{ GW "cuffs = ( { id = \"bay0005\"; address = \"sim:/solo\"; limb = \"leg\"; } );\n"
	     "cuff_ranges = ( { from = 1; to = 10; limb = \"leg\";\n"
	     "  address = \"sim:/a/cuff-%02d.sock\";\n  id = \"bay%04d\"; } );\n",
	  5, "cuff_ranges.[0].id", "\"bay0005\" (number 5): duplicate of cuffs.[0].id \"bay0005\"" },
	{ GW "cuff_ranges = (\n { id = \"bay%04d\"; address = \"sim:/a/%d\"; limb = \"leg\"; "
	     "from = 1; to = 10; },\n { id = \"bay%04d\"; address = \"sim:/b/%d\"; limb = \"leg\"; "
	     "from = 8; to = 12; } );\n",
	  4, "cuff_ranges.[1].id",
	  "\"bay0008\" (number 8): duplicate of cuff_ranges.[0].id \"bay0008\" (number 8)" },
	{ GW "cuffs = ( { id = \"solo\"; address = \"sim:/a/cuff-03.sock\"; limb = \"leg\"; } );\n"
	     "cuff_ranges = ( { id = \"bay%04d\"; address = \"sim:/a/cuff-%02d.sock\"; limb = \"leg\";"
	     " from = 1; to = 10; } );\n",
	  3, "cuff_ranges.[0].address",
	  "\"sim:/a/cuff-03.sock\" (number 3): duplicate of cuffs.[0].address "
	  "\"sim:/a/cuff-03.sock\"" },
	{ GW "cuff_ranges = (\n { id = \"a%d\"; address = \"sim:/a/cuff-%d.sock\"; limb = \"leg\"; "
	     "from = 1; to = 10; },\n { id = \"b%d\"; limb = \"leg\"; from = 11; to = 20;\n"
	     "   address = \"sim:/a/cuff-%d.sock\"; address_from = 10; } );\n",
	  5, "cuff_ranges.[1].address",
	  "\"sim:/a/cuff-10.sock\" (number 11): duplicate of cuff_ranges.[0].address "
	  "\"sim:/a/cuff-10.sock\" (number 10)" },
	{ GW "cuff_ranges = ( { id = \"c%d\"; address = \"c4:7f:51:00:12:%02x\"; limb = \"leg\"; "
	     "from = 1; to = 3; } );\n"
	     "cuffs = ( { id = \"solo\";\n address = \"C4:7F:51:00:12:02\"; limb = \"arm\"; } );\n",
	  2, "cuff_ranges.[0].address",
	  "\"c4:7f:51:00:12:02\" (number 2): duplicate of cuffs.[0].address "
	  "\"C4:7F:51:00:12:02\"" },
};

static void test_cuff_ranges_refused(void **state)
{
	for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
		write_conf(range_cases[i].text);
		expect_refused(conf_path, &range_cases[i], "range case", i);
	}
}

/* Writes DIR/name (creating DIR/cuffs.d when name is in it). */
static void write_in_dir(const char *name, const char *text, char *path, size_t len)
{
	char sub[160];

	snprintf(sub, sizeof(sub), "%s/cuffs.d", dir);
	if (mkdir(sub, 0700) < 0)
		assert_int_equal(errno, EEXIST);
	snprintf(path, len, "%s/%s", dir, name);
	write_file(path, text, strlen(text));
}

/* @include paths are the main file's directory's, wherever the process runs. */
static void test_config_include(void **state)
{
	char bay1[192], bay2[192], bad[192], cwd[512], want[512];
	struct config *cfg = NULL;
	char err[1024] = "";
	const struct bad_case missing = { NULL, 4, NULL, "cannot open include file" };
	const struct bad_case limb = { NULL, 2, "cuffs.[1].limb",
				       "expected \"leg\" or \"arm\", got \"foot\"" };
	const struct bad_case syntax = { NULL, 2, NULL, "syntax error" };

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	write_in_dir("cuffs.d/bay1.conf",
		     "{ id = \"bay1-l\"; address = \"sim:/a/cuff-01.sock\"; limb = \"leg\"; },\n"
		     "{ id = \"bay1-r\"; address = \"sim:/a/cuff-02.sock\"; limb = \"leg\"; }\n",
		     bay1, sizeof(bay1));
	write_in_dir("cuffs.d/bay2.conf",
		     "cuff_ranges = ( { id = \"bay2-%d\"; address = \"sim:/b/cuff-%02d.sock\";\n"
		     "  limb = \"arm\"; from = 1; to = 8; } );\n",
		     bay2, sizeof(bay2));
	write_conf(GW "cuffs = (\n"
		      "@include \"cuffs.d/bay1.conf\"\n"
		      ");\n"
		      "@include \"cuffs.d/bay2.conf\"\n");
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->n_cuffs, 2 + 8);
	assert_string_equal(cfg->cuffs[1].id, "bay1-r");
	assert_string_equal(cfg->cuffs[9].address, "sim:/b/cuff-08.sock");
	config_free(cfg);

	/* An error in an included file names that file (its path, not the @include text). */
	write_in_dir("cuffs.d/bay1.conf",
		     "{ id = \"bay1-l\"; address = \"sim:/a/cuff-01.sock\"; limb = \"leg\"; },\n"
		     "{ id = \"bay1-r\"; address = \"sim:/a/cuff-02.sock\"; limb = \"foot\"; }\n",
		     bay1, sizeof(bay1));
	expect_refused(bay1, &limb, "include", 0);
	write_in_dir("cuffs.d/bad.conf", "{ id = \"x\"; address = \"sim:/x\"; limb = \"leg\"; },\n"
					 "{ id = ; }\n", bad, sizeof(bad));
	write_conf(GW "cuffs = (\n@include \"cuffs.d/bad.conf\"\n);\n");
	expect_refused(bad, &syntax, "include", 1);
	write_conf(GW "cuffs = (\n\n@include \"cuffs.d/none.conf\"\n);\n");
	expect_refused(conf_path, &missing, "include", 2);
	assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "(@include paths are relative to %s)", dir);
	assert_non_null(strstr(err, want));
	assert_int_equal(chdir(cwd), 0);
	unlink(bay1);
	unlink(bay2);
	unlink(bad);
	snprintf(want, sizeof(want), "%s/cuffs.d", dir);
	assert_int_equal(rmdir(want), 0);
}

/* Every allocation of the range path fails once, cleanly. */
static void test_cuff_ranges_allocation_failure(void **state)
{
	char err[256];
	int r = -ENOMEM;
	long n;

	write_conf(GW "cuffs = ( { id = \"solo\"; address = \"sim:/s\"; limb = \"arm\"; } );\n"
		      "cuff_ranges = ( { id = \"bay%d\"; address = \"sim:/a/%d\"; limb = \"leg\";\n"
		      "  from = 1; to = 3; } );\n");
	for (n = 0; n < 200 && r != 0; n++) {
		struct config *cfg = POISON;

		test_alloc_fail_after(n);
		r = config_load(conf_path, &cfg, err, sizeof(err));
		test_alloc_reset();
		if (r == 0) {
			assert_int_equal(cfg->n_cuffs, 4);
			config_free(cfg);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		assert_ptr_equal(cfg, POISON);
		assert_non_null(strstr(err, "out of memory"));
	}
	assert_int_equal(r, 0);
	assert_true(n > 15); /* the hash sets, origins and each cuff's three strings */
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* N cuffs bay0001.. on two cuffsim instances, as a list or as two ranges. */
static char *big_conf(unsigned n, bool ranges)
{
	size_t len = 256 + (size_t)n * 96;
	char *text = malloc(len);
	size_t used;

	assert_non_null(text);
	used = (size_t)snprintf(text, len, "%s", GW);
	if (ranges) {
		snprintf(text + used, len - used,
			 "cuff_ranges = (\n"
			 "  { id = \"bay%%04d\"; address = \"sim:/run/a/cuff-%%02d.sock\"; limb = "
			 "\"leg\"; from = 1; to = %u; },\n"
			 "  { id = \"bay%%04d\"; address = \"sim:/run/b/cuff-%%02d.sock\"; limb = "
			 "\"leg\"; from = %u; to = %u; address_from = 1; } );\n",
			 n / 2, n / 2 + 1, n);
		return text;
	}
	used += (size_t)snprintf(text + used, len - used, "cuffs = (\n");
	for (unsigned i = 1; i <= n; i++)
		used += (size_t)snprintf(text + used, len - used,
					 "  { id = \"bay%04u\"; address = \"sim:/run/%c/cuff-%02u.sock\"; "
					 "limb = \"leg\"; }%s\n",
					 i, i <= n / 2 ? 'a' : 'b', i <= n / 2 ? i : i - n / 2,
					 i < n ? "," : "");
	snprintf(text + used, len - used, ");\n");
	return text;
}

/*
 * 2 000 cuffs: two ranges give exactly the cuffs of the 2 000-entry list, and
 * either loads in well under the time the gateway has to start (the figures
 * go to docs/configuration.md; this bound only catches a quadratic loader).
 */
static void test_2000_cuffs_ranges_equal_list(void **state)
{
	struct config *list = NULL, *ranges = NULL;
	char err[512] = "";
	struct timespec t0;
	double ms_list, ms_ranges;
	char *text;

	text = big_conf(2000, false);
	write_file(conf_path, text, strlen(text));
	free(text);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(config_load(conf_path, &list, err, sizeof(err)), 0);
	ms_list = elapsed_ms(&t0);
	text = big_conf(2000, true);
	write_file(conf_path, text, strlen(text));
	free(text);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(config_load(conf_path, &ranges, err, sizeof(err)), 0);
	ms_ranges = elapsed_ms(&t0);
	assert_int_equal(list->n_cuffs, 2000);
	assert_int_equal(ranges->n_cuffs, 2000);
	for (size_t i = 0; i < 2000; i++) {
		assert_string_equal(list->cuffs[i].id, ranges->cuffs[i].id);
		assert_string_equal(list->cuffs[i].address, ranges->cuffs[i].address);
		assert_int_equal(list->cuffs[i].limb, ranges->cuffs[i].limb);
		assert_int_equal(list->cuffs[i].max_pressure_mmHg,
				 ranges->cuffs[i].max_pressure_mmHg);
	}
	print_message("2000 cuffs: list %.1f ms, ranges %.1f ms\n", ms_list, ms_ranges);
	assert_true(ms_list < 2000 && ms_ranges < 2000);
	config_free(list);
	config_free(ranges);
}

/* More than CONFIG_CUFFS_MAX single cuffs are refused at the list. */
static void test_cuffs_over_maximum(void **state)
{
	const struct bad_case too_many = { NULL, 2, "cuffs", "4097 cuffs, more than 4096" };
	char *text = big_conf(CONFIG_CUFFS_MAX + 1, false);

	write_file(conf_path, text, strlen(text));
	free(text);
	expect_refused(conf_path, &too_many, "maximum", 0);
	text = big_conf(CONFIG_CUFFS_MAX, false);
	write_file(conf_path, text, strlen(text));
	free(text);
	{
		struct config *cfg = NULL;
		char err[256] = "";

		assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), 0);
		assert_int_equal(cfg->n_cuffs, CONFIG_CUFFS_MAX);
		config_free(cfg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_home_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_example_file_loads),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_adapter_shorter_than_prefix_is_refused),
		cmocka_unit_test(test_unreadable_and_garbage),
		cmocka_unit_test(test_allocation_failure),
		cmocka_unit_test(test_tls_key_material_refused),
		cmocka_unit_test(test_tls_key_material_accepted),
		cmocka_unit_test(test_cuff_ranges_expand),
		cmocka_unit_test(test_cuff_ranges_refused),
		cmocka_unit_test(test_config_include),
		cmocka_unit_test(test_cuff_ranges_allocation_failure),
		cmocka_unit_test(test_2000_cuffs_ranges_equal_list),
		cmocka_unit_test(test_cuffs_over_maximum),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
