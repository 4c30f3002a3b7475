/*
 * config.c - see config.h.
 *
 * libconfig parses; everything here is validation. Each setting is read
 * through one of a few getters that know the setting's type, range or
 * allowed strings, so every error comes out in the same
 * "FILE:LINE: path: message" shape. The first error stops the load: one
 * precise message is more useful to an operator than a cascade.
 */
#include "config.h"

#include <bluetooth/bluetooth.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"

#define PATH_TEXT_MAX 256
#define SUN_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */
#define STRING_MAX 4096

struct ctx {
	const char *path;
	char *err;
	size_t errlen;
};

static const char *type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

/* Appends printf output to the string in buf, silently shortening it. */
__attribute__((format(printf, 3, 4))) static void append(char *buf, size_t len,
							  const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* libconfig's own path syntax: a.b, list elements a.[0]; the root is "". */
static void setting_path(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *parent = config_setting_parent(s);

	buf[0] = '\0';
	if (!parent)
		return;
	setting_path(parent, buf, len);
	if (buf[0])
		append(buf, len, ".");
	if (config_setting_name(s))
		append(buf, len, "%s", config_setting_name(s));
	else
		append(buf, len, "[%d]", config_setting_index(s));
}

/*
 * Reports an error at setting `at` (its file and line), naming `at`'s path,
 * or `at`'s child `child` when the child is missing. Returns -EINVAL.
 */
__attribute__((format(printf, 4, 5))) static int
errorf(struct ctx *c, const config_setting_t *at, const char *child, const char *fmt, ...)
{
	char path[PATH_TEXT_MAX];
	char message[512];
	const char *file = config_setting_source_file(at);
	unsigned line = config_setting_source_line(at);
	va_list ap;

	if (!c->err || c->errlen == 0)
		return -EINVAL;
	setting_path(at, path, sizeof(path));
	if (child)
		append(path, sizeof(path), "%s%s", path[0] ? "." : "", child);
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (!file)
		file = c->path;
	/* The root has no line: a missing top-level setting is named without one. */
	if (line > 0)
		snprintf(c->err, c->errlen, "%s:%u: %s: %s", file, line, path, message);
	else
		snprintf(c->err, c->errlen, "%s: %s: %s", file, path, message);
	return -EINVAL;
}

static int out_of_memory(struct ctx *c)
{
	if (c->err && c->errlen > 0)
		snprintf(c->err, c->errlen, "%s: out of memory", c->path);
	return -ENOMEM;
}

static int check_members(struct ctx *c, const config_setting_t *group, const char *const *allowed)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *member = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(member);
		const char *const *a;

		for (a = allowed; *a; a++)
			if (strcmp(*a, name) == 0)
				break;
		if (!*a)
			return errorf(c, member, NULL, "unknown setting");
	}
	return 0;
}

static bool type_matches(int want, int have)
{
	if (want == CONFIG_TYPE_INT)
		return have == CONFIG_TYPE_INT || have == CONFIG_TYPE_INT64;
	return want == have;
}

/* *out = the member, or NULL when it is absent and optional. */
static int lookup(struct ctx *c, const config_setting_t *parent, const char *name, int type,
		  bool required, const config_setting_t **out)
{
	const config_setting_t *member = config_setting_get_member(parent, name);

	if (!member) {
		if (required)
			return errorf(c, parent, name, "required setting missing");
		*out = NULL;
		return 0;
	}
	if (!type_matches(type, config_setting_type(member)))
		return errorf(c, member, NULL, "expected %s, got %s", type_name(type),
			      type_name(config_setting_type(member)));
	*out = member;
	return 0;
}

static int get_uint(struct ctx *c, const config_setting_t *parent, const char *name,
		    unsigned def, unsigned min, unsigned max, unsigned *out)
{
	const config_setting_t *s;
	long long value;
	int r;

	r = lookup(c, parent, name, CONFIG_TYPE_INT, false, &s);
	if (r < 0)
		return r;
	if (!s) {
		*out = def;
		return 0;
	}
	value = config_setting_get_int64(s);
	if (value < min || value > max)
		return errorf(c, s, NULL, "must be %u..%u, got %lld", min, max, value);
	*out = (unsigned)value;
	return 0;
}

/*
 * Optional strings default to def (NULL: none); an empty string also means
 * the default. *out is a heap copy or NULL.
 */
static int get_string(struct ctx *c, const config_setting_t *parent, const char *name,
		      bool required, const char *def, const config_setting_t **where,
		      char **out)
{
	const config_setting_t *s;
	const char *value = def;
	int r;

	r = lookup(c, parent, name, CONFIG_TYPE_STRING, required, &s);
	if (r < 0)
		return r;
	if (s) {
		value = config_setting_get_string(s);
		if (value[0] == '\0') {
			if (required)
				return errorf(c, s, NULL, "must not be empty");
			value = def;
		} else if (strlen(value) > STRING_MAX) {
			return errorf(c, s, NULL, "longer than %d characters", STRING_MAX);
		}
	}
	*where = s ? s : parent;
	if (!value) {
		*out = NULL;
		return 0;
	}
	*out = strdup(value);
	if (!*out)
		return out_of_memory(c);
	return 0;
}

static int get_enum(struct ctx *c, const config_setting_t *parent, const char *name,
		    const char *const *names, int def, int *out)
{
	const config_setting_t *s;
	const char *value;
	char expected[128] = "";
	int r, n = 0;

	r = lookup(c, parent, name, CONFIG_TYPE_STRING, def < 0, &s);
	if (r < 0)
		return r;
	if (!s) {
		*out = def;
		return 0;
	}
	value = config_setting_get_string(s);
	for (n = 0; names[n]; n++) {
		if (strcmp(names[n], value) == 0) {
			*out = n;
			return 0;
		}
	}
	for (int i = 0; i < n; i++) {
		size_t used = strlen(expected);

		snprintf(expected + used, sizeof(expected) - used, "%s\"%s\"",
			 i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
	}
	return errorf(c, s, NULL, "expected %s, got \"%s\"", expected, value);
}

static bool valid_id(const char *id)
{
	size_t len = strlen(id);

	if (len < 1 || len > CONFIG_ID_MAX)
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
	       len;
}

static int get_id(struct ctx *c, const config_setting_t *parent, const char *name, char **out)
{
	const config_setting_t *where;
	char *id = NULL;
	int r;

	r = get_string(c, parent, name, true, NULL, &where, &id);
	if (r < 0)
		return r;
	if (!valid_id(id)) {
		r = errorf(c, where, NULL,
			   "\"%s\" is not an id: use 1..%d of A-Z a-z 0-9 _ - (it is used in "
			   "MQTT topics)",
			   id, CONFIG_ID_MAX);
		free(id);
		return r;
	}
	*out = id;
	return 0;
}

static int get_group(struct ctx *c, const config_setting_t *parent, const char *name,
		     bool required, const char *const *allowed, const config_setting_t **out)
{
	int r = lookup(c, parent, name, CONFIG_TYPE_GROUP, required, out);

	if (r < 0 || !*out)
		return r;
	return check_members(c, *out, allowed);
}

/* ---- sections ---------------------------------------------------------- */

static int load_gateway(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = { "id", "site", "data_dir", NULL };
	const config_setting_t *g, *where;
	int r;

	r = get_group(c, root, "gateway", true, keys, &g);
	if (r < 0)
		return r;
	r = get_id(c, g, "id", &cfg->gateway_id);
	if (r < 0)
		return r;
	r = get_id(c, g, "site", &cfg->site);
	if (r < 0)
		return r;
	return get_string(c, g, "data_dir", false, "/var/lib/bfr-gateway", &where,
			  &cfg->data_dir);
}

static bool uri_is_tls(const char *uri, bool *valid)
{
	static const struct {
		const char *prefix;
		bool tls;
	} schemes[] = {
		{ "mqtt://", false }, { "tcp://", false }, { "ws://", false },
		{ "mqtts://", true }, { "ssl://", true },  { "wss://", true },
	};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t len = strlen(schemes[i].prefix);

		if (strncmp(uri, schemes[i].prefix, len) == 0) {
			/* A host must follow; no spaces anywhere. */
			*valid = uri[len] != '\0' && uri[len] != ':' && uri[len] != '/' &&
				 !strpbrk(uri, " \t\r\n");
			return schemes[i].tls;
		}
	}
	*valid = false;
	return false;
}

static int check_readable(struct ctx *c, const config_setting_t *where, const char *file)
{
	if (file && access(file, R_OK) < 0)
		return errorf(c, where, NULL, "cannot read \"%s\": %s", file, strerror(errno));
	return 0;
}

/* The password is the file's first line, without its line ending. */
static int read_password(struct ctx *c, const config_setting_t *where, const char *file,
			 char **out)
{
	char line[1024];
	FILE *f;
	int r = 0;

	f = fopen(file, "re");
	if (!f)
		return errorf(c, where, NULL, "cannot read \"%s\": %s", file, strerror(errno));
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	if (ferror(f))
		r = errorf(c, where, NULL, "cannot read \"%s\": %s", file, strerror(errno));
	fclose(f);
	if (r < 0)
		return r;
	line[strcspn(line, "\r\n")] = '\0';
	*out = strdup(line);
	explicit_bzero(line, sizeof(line));
	if (!*out)
		return out_of_memory(c);
	return 0;
}

static int load_mqtt(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = { "uri",	    "client_id",   "username",
					    "password_file", "telemetry_hz", "keepalive_s",
					    "tls",	    NULL };
	static const char *const tls_keys[] = { "ca_file", "cert_file", "key_file", NULL };
	const config_setting_t *m, *t, *where, *cert_where;
	bool valid;
	int r;

	r = get_group(c, root, "mqtt", false, keys, &m);
	if (r < 0)
		return r;
	if (!m) {
		/* Defaults for the whole group. */
		m = root;
		cfg->mqtt.uri = strdup("mqtt://127.0.0.1:1883");
		cfg->mqtt.client_id = strdup(cfg->gateway_id);
		if (!cfg->mqtt.uri || !cfg->mqtt.client_id)
			return out_of_memory(c);
		cfg->mqtt.telemetry_hz = 10;
		cfg->mqtt.keepalive_s = 10;
		return 0;
	}
	r = get_string(c, m, "uri", false, "mqtt://127.0.0.1:1883", &where, &cfg->mqtt.uri);
	if (r < 0)
		return r;
	cfg->mqtt.tls = uri_is_tls(cfg->mqtt.uri, &valid);
	if (!valid)
		return errorf(c, where, where == m ? "uri" : NULL,
			      "expected mqtt://, mqtts://, tcp://, ssl://, ws:// or wss:// and a "
			      "host, got \"%s\"",
			      cfg->mqtt.uri);
	r = get_string(c, m, "client_id", false, cfg->gateway_id, &where, &cfg->mqtt.client_id);
	if (r < 0)
		return r;
	if (strlen(cfg->mqtt.client_id) > 128 || strpbrk(cfg->mqtt.client_id, " \t\r\n"))
		return errorf(c, where, NULL, "must be 1..128 characters without spaces");
	r = get_string(c, m, "username", false, NULL, &where, &cfg->mqtt.username);
	if (r < 0)
		return r;
	r = get_string(c, m, "password_file", false, NULL, &where, &cfg->mqtt.password_file);
	if (r < 0)
		return r;
	if (cfg->mqtt.password_file) {
		r = read_password(c, where, cfg->mqtt.password_file, &cfg->mqtt.password);
		if (r < 0)
			return r;
	}
	r = get_uint(c, m, "telemetry_hz", 10, 1, 50, &cfg->mqtt.telemetry_hz);
	if (r < 0)
		return r;
	r = get_uint(c, m, "keepalive_s", 10, 2, 300, &cfg->mqtt.keepalive_s);
	if (r < 0)
		return r;

	r = get_group(c, m, "tls", false, tls_keys, &t);
	if (r < 0 || !t)
		return r;
	r = get_string(c, t, "ca_file", false, NULL, &where, &cfg->mqtt.ca_file);
	if (r == 0)
		r = check_readable(c, where, cfg->mqtt.ca_file);
	if (r < 0)
		return r;
	r = get_string(c, t, "cert_file", false, NULL, &cert_where, &cfg->mqtt.cert_file);
	if (r == 0)
		r = check_readable(c, cert_where, cfg->mqtt.cert_file);
	if (r < 0)
		return r;
	r = get_string(c, t, "key_file", false, NULL, &where, &cfg->mqtt.key_file);
	if (r == 0)
		r = check_readable(c, where, cfg->mqtt.key_file);
	if (r < 0)
		return r;
	if (!cfg->mqtt.cert_file != !cfg->mqtt.key_file)
		return errorf(c, t, NULL, "cert_file and key_file go together: set both or neither");
	if (!cfg->mqtt.tls && (cfg->mqtt.ca_file || cfg->mqtt.cert_file))
		return errorf(c, t, NULL,
			      "TLS files are set but mqtt.uri is not mqtts://, ssl:// or wss://");
	return 0;
}

static int load_ble(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = { "security", NULL };
	static const char *const levels[] = { "low", "medium", "high", NULL };
	const config_setting_t *b;
	int level = CONFIG_SECURITY_MEDIUM, r;

	r = get_group(c, root, "ble", false, keys, &b);
	if (r == 0 && b)
		r = get_enum(c, b, "security", levels, CONFIG_SECURITY_MEDIUM, &level);
	if (r < 0)
		return r;
	cfg->ble_security = (enum config_security)level;
	return 0;
}

static int load_limb(struct ctx *c, const config_setting_t *limits, const char *name,
		     const struct config_limb_limits *def, struct config_limb_limits *out)
{
	static const char *const keys[] = { "max_pressure_mmHg", "max_pct_lop", "session_total_s",
					    NULL };
	const config_setting_t *g = NULL;
	int r = 0;

	*out = *def;
	if (limits)
		r = get_group(c, limits, name, false, keys, &g);
	if (r < 0 || !g)
		return r;
	/*
	 * The compiled limb defaults are the loosest values: the gateway's
	 * limits_override refuses anything looser at start, so --check must too.
	 */
	r = get_uint(c, g, "max_pressure_mmHg", def->max_pressure_mmHg, CONFIG_PRESSURE_MIN_MMHG,
		     def->max_pressure_mmHg, &out->max_pressure_mmHg);
	if (r == 0)
		r = get_uint(c, g, "max_pct_lop", def->max_pct_lop, CONFIG_PCT_LOP_MIN,
			     def->max_pct_lop, &out->max_pct_lop);
	if (r == 0)
		r = get_uint(c, g, "session_total_s", def->session_total_s, 60,
			     def->session_total_s, &out->session_total_s);
	return r;
}

static int load_limits(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = { "leg",
					    "arm",
					    "max_inflation_s",
					    "min_reperfusion_s",
					    "sample_timeout_ms",
					    "deflate_timeout_ms",
					    "lop_max_age_s",
					    NULL };
	static const struct config_limb_limits leg = { 250, 80, 1200 };
	static const struct config_limb_limits arm = { 200, 60, 900 };
	const config_setting_t *l;
	int r;

	r = get_group(c, root, "limits", false, keys, &l);
	if (r < 0)
		return r;
	r = load_limb(c, l, "leg", &leg, &cfg->leg);
	if (r == 0)
		r = load_limb(c, l, "arm", &arm, &cfg->arm);
	if (r < 0)
		return r;
	if (!l) {
		cfg->max_inflation_s = 600;
		cfg->min_reperfusion_s = 60;
		cfg->sample_timeout_ms = 500;
		cfg->deflate_timeout_ms = 5000;
		cfg->lop_max_age_s = 3600;
		return 0;
	}
	r = get_uint(c, l, "max_inflation_s", 600, 10, 600, &cfg->max_inflation_s);
	if (r == 0)
		r = get_uint(c, l, "min_reperfusion_s", 60, 60, 3600, &cfg->min_reperfusion_s);
	if (r == 0)
		r = get_uint(c, l, "sample_timeout_ms", 500, 100, 500, &cfg->sample_timeout_ms);
	if (r == 0)
		r = get_uint(c, l, "deflate_timeout_ms", 5000, 1000, 5000,
			     &cfg->deflate_timeout_ms);
	if (r == 0)
		r = get_uint(c, l, "lop_max_age_s", 3600, 60, 3600, &cfg->lop_max_age_s);
	return r;
}

static int load_store(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = { "outbox_max_mib", NULL };
	const config_setting_t *s;
	int r;

	cfg->outbox_max_mib = 64;
	r = get_group(c, root, "store", false, keys, &s);
	if (r < 0 || !s)
		return r;
	return get_uint(c, s, "outbox_max_mib", 64, 1, 4096, &cfg->outbox_max_mib);
}

static int parse_address(struct ctx *c, const config_setting_t *where, struct config_cuff *cuff)
{
	const char *a = cuff->address;
	bdaddr_t ba;

	if (strncmp(a, "sim:", 4) == 0) {
		size_t len = strlen(a + 4);

		if (len == 0 || len > SUN_PATH_MAX)
			return errorf(c, where, NULL,
				      "\"sim:\" needs a socket path of 1..%d characters, got \"%s\"",
				      SUN_PATH_MAX, a);
		cuff->is_sim = true;
		cuff->sim_path = a + 4;
		return 0;
	}
	if (strlen(a) != 17 || bachk(a) < 0)
		return errorf(c, where, NULL,
			      "expected \"sim:/path\" or a Bluetooth address like "
			      "\"C4:7F:51:00:12:9A\", got \"%s\"",
			      a);
	str2ba(a, &ba);
	if (bacmp(&ba, BDADDR_ANY) == 0 || bacmp(&ba, BDADDR_ALL) == 0)
		return errorf(c, where, NULL, "\"%s\" is not a device address", a);
	memcpy(cuff->bdaddr, ba.b, sizeof(cuff->bdaddr));
	return 0;
}

static int parse_adapter(struct ctx *c, const config_setting_t *where, struct config_cuff *cuff)
{
	const char *digits;
	size_t n;

	/* The prefix first: only then are there 3 bytes to skip (issue 8 item 11). */
	if (strncmp(cuff->adapter, "hci", 3) != 0)
		goto bad;
	digits = cuff->adapter + 3;
	n = strspn(digits, "0123456789");
	/* The transport's bound: cuff_link_new refuses a higher index (docs/reliability.md, finding 6). */
	if (n == 0 || n > 5 || digits[n] != '\0' || atol(digits) > TRANSPORT_MAX_ADAPTER)
		goto bad;
	cuff->adapter_index = atoi(digits);
	return 0;
bad:
	return errorf(c, where, NULL, "expected an adapter name like \"hci0\", got \"%s\"",
		      cuff->adapter);
}

static int load_cuff(struct ctx *c, const config_setting_t *g, const struct config *cfg,
		     struct config_cuff *cuff)
{
	static const char *const keys[] = { "id",	  "address", "address_type", "adapter",
					    "limb",	  "limits",  NULL };
	static const char *const limit_keys[] = { "max_pressure_mmHg", "max_pct_lop", NULL };
	/* In the order of the message: "leg" or "arm"; index 0 is the leg. */
	static const char *const limbs[] = { "leg", "arm", NULL };
	static const char *const types[] = { "public", "random", NULL };
	const config_setting_t *where, *limits, *s;
	const struct config_limb_limits *limb;
	int value, r;

	r = check_members(c, g, keys);
	if (r == 0)
		r = get_id(c, g, "id", &cuff->id);
	if (r == 0)
		r = get_string(c, g, "address", true, NULL, &where, &cuff->address);
	if (r == 0)
		r = parse_address(c, where, cuff);
	if (r == 0)
		r = get_enum(c, g, "address_type", types, CONFIG_ADDRESS_PUBLIC, &value);
	if (r < 0)
		return r;
	cuff->address_type = (enum config_address_type)value;
	r = get_string(c, g, "adapter", false, "hci0", &where, &cuff->adapter);
	if (r == 0)
		r = parse_adapter(c, where, cuff);
	if (r == 0)
		r = get_enum(c, g, "limb", limbs, -1, &value);
	if (r < 0)
		return r;
	cuff->limb = value == 0 ? CONFIG_LIMB_LEG : CONFIG_LIMB_ARM;
	limb = config_limb_limits(cfg, cuff->limb);
	cuff->max_pressure_mmHg = limb->max_pressure_mmHg;
	cuff->max_pct_lop = limb->max_pct_lop;
	r = get_group(c, g, "limits", false, limit_keys, &limits);
	if (r < 0 || !limits)
		return r;
	/* Range first (so the bound is named), then "no looser than the limb". */
	r = get_uint(c, limits, "max_pressure_mmHg", limb->max_pressure_mmHg,
		     CONFIG_PRESSURE_MIN_MMHG, CONFIG_PRESSURE_MAX_MMHG, &cuff->max_pressure_mmHg);
	if (r < 0)
		return r;
	s = config_setting_get_member(limits, "max_pressure_mmHg");
	if (cuff->max_pressure_mmHg > limb->max_pressure_mmHg)
		return errorf(c, s, NULL,
			      "%u is above the %s limit %u (limits may only be tightened)",
			      cuff->max_pressure_mmHg, config_limb_name(cuff->limb),
			      limb->max_pressure_mmHg);
	r = get_uint(c, limits, "max_pct_lop", limb->max_pct_lop, CONFIG_PCT_LOP_MIN,
		     CONFIG_PCT_LOP_MAX, &cuff->max_pct_lop);
	if (r < 0)
		return r;
	s = config_setting_get_member(limits, "max_pct_lop");
	if (cuff->max_pct_lop > limb->max_pct_lop)
		return errorf(c, s, NULL,
			      "%u is above the %s limit %u (limits may only be tightened)",
			      cuff->max_pct_lop, config_limb_name(cuff->limb), limb->max_pct_lop);
	return 0;
}

static bool same_address(const struct config_cuff *a, const struct config_cuff *b)
{
	if (a->is_sim != b->is_sim)
		return false;
	if (a->is_sim)
		return strcmp(a->sim_path, b->sim_path) == 0;
	return memcmp(a->bdaddr, b->bdaddr, sizeof(a->bdaddr)) == 0;
}

static int load_cuffs(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *list;
	int r, n;

	r = lookup(c, root, "cuffs", CONFIG_TYPE_LIST, false, &list);
	if (r < 0 || !list)
		return r;
	n = config_setting_length(list);
	if (n == 0)
		return 0;
	cfg->cuffs = calloc((size_t)n, sizeof(*cfg->cuffs));
	if (!cfg->cuffs)
		return out_of_memory(c);
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct config_cuff *cuff = &cfg->cuffs[i];

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return errorf(c, g, NULL, "expected a group, got %s",
				      type_name(config_setting_type(g)));
		/* Counted first so config_free releases a half-loaded cuff. */
		cfg->n_cuffs++;
		r = load_cuff(c, g, cfg, cuff);
		if (r < 0)
			return r;
		for (int j = 0; j < i; j++) {
			if (strcmp(cfg->cuffs[j].id, cuff->id) == 0)
				return errorf(c, config_setting_get_member(g, "id"), NULL,
					      "duplicate of cuffs.[%d].id \"%s\"", j, cuff->id);
			if (same_address(&cfg->cuffs[j], cuff))
				return errorf(c, config_setting_get_member(g, "address"), NULL,
					      "duplicate of cuffs.[%d].address \"%s\"", j,
					      cfg->cuffs[j].address);
		}
	}
	return 0;
}

/* ---- public ------------------------------------------------------------ */

/*
 * Messages quote the file's own strings, which may hold line breaks
 * (libconfig allows them, raw or as \n) and other control characters: the
 * message must stay one line, so each becomes '?'.
 */
static void one_line(char *msg)
{
	for (; msg && *msg; msg++)
		if ((unsigned char)*msg < 0x20 || *msg == 0x7f)
			*msg = '?';
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	static const char *const keys[] = { "gateway", "mqtt",	 "ble",
					    "limits",  "store", "supervision_timeout_ms",
					    "cuffs",   NULL };
	struct ctx c = { .path = path, .err = err, .errlen = errlen };
	const config_setting_t *root;
	struct config *cfg = NULL;
	config_t lc;
	FILE *f;
	int r;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!path || !out)
		return -EINVAL;
	config_init(&lc);
	/* Only for a clean errno: libconfig reports file errors without one. */
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		if (err && errlen > 0)
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
		goto fail;
	}
	fclose(f);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		r = -EINVAL;
		if (err && errlen > 0)
			snprintf(err, errlen, "%s:%d: %s",
				 config_error_file(&lc) ? config_error_file(&lc) : path,
				 config_error_line(&lc), config_error_text(&lc));
		goto fail;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		r = out_of_memory(&c);
		goto fail;
	}
	cfg->path = strdup(path);
	if (!cfg->path) {
		r = out_of_memory(&c);
		goto fail;
	}
	root = config_root_setting(&lc);
	r = check_members(&c, root, keys);
	if (r == 0)
		r = load_gateway(&c, root, cfg);
	if (r == 0)
		r = load_mqtt(&c, root, cfg);
	if (r == 0)
		r = load_ble(&c, root, cfg);
	if (r == 0)
		r = load_limits(&c, root, cfg);
	if (r == 0)
		r = load_store(&c, root, cfg);
	if (r == 0)
		r = get_uint(&c, root, "supervision_timeout_ms", 3000, 500, 3000,
			     &cfg->supervision_timeout_ms);
	if (r == 0)
		r = load_cuffs(&c, root, cfg);
	if (r < 0)
		goto fail;
	config_destroy(&lc);
	*out = cfg;
	return 0;
fail:
	one_line(err);
	config_free(cfg);
	config_destroy(&lc);
	return r;
}

void config_free(struct config *config)
{
	if (!config)
		return;
	for (size_t i = 0; i < config->n_cuffs; i++) {
		free(config->cuffs[i].id);
		free(config->cuffs[i].address);
		free(config->cuffs[i].adapter);
	}
	free(config->cuffs);
	free(config->path);
	free(config->gateway_id);
	free(config->site);
	free(config->data_dir);
	free(config->mqtt.uri);
	free(config->mqtt.client_id);
	free(config->mqtt.username);
	free(config->mqtt.password_file);
	if (config->mqtt.password) {
		explicit_bzero(config->mqtt.password, strlen(config->mqtt.password));
		free(config->mqtt.password);
	}
	free(config->mqtt.ca_file);
	free(config->mqtt.cert_file);
	free(config->mqtt.key_file);
	free(config);
}

const struct config_limb_limits *config_limb_limits(const struct config *config,
						     enum config_limb limb)
{
	return limb == CONFIG_LIMB_LEG ? &config->leg : &config->arm;
}

const char *config_limb_name(enum config_limb limb)
{
	return limb == CONFIG_LIMB_LEG ? "leg" : "arm";
}

const char *config_security_name(enum config_security security)
{
	switch (security) {
	case CONFIG_SECURITY_LOW:
		return "low";
	case CONFIG_SECURITY_HIGH:
		return "high";
	default:
		return "medium";
	}
}
