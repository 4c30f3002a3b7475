/*
 * config.c - see config.h.
 *
 * libconfig parses; everything here is validation. Each setting is read
 * through one of a few getters that know the setting's type, range or
 * allowed strings, so every error comes out in the same
 * "FILE:LINE: path: message" shape. The first error stops the load: one
 * precise message is more useful to an operator than a cascade.
 *
 * Cuff ranges are validated once per range (templates, numbers, the fields
 * every cuff of the range shares), then each number is expanded and only
 * what differs (id, address) is checked again. Duplicate ids and addresses
 * are found through two hash sets, so a 2 000-cuff file loads in
 * milliseconds, and each duplicate is reported against the first cuff that
 * had the id or address.
 */
#include "config.h"

#include "tls_check.h"

#include <bluetooth/bluetooth.h>
#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "realtime.h"
#include "transport.h"

#define PATH_TEXT_MAX 256
#define SUN_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */
#define STRING_MAX 4096

struct ctx {
	const char *path;
	const char *include_dir; /* @include paths are relative to it */
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
 * The file to name in a message: libconfig knows an included file by the
 * name its @include gave, which is relative to the include directory.
 */
static const char *file_name(const struct ctx *c, const char *file, char *buf, size_t len)
{
	if (!file || strcmp(file, c->path) == 0)
		return c->path;
	if (file[0] == '/' || !c->include_dir)
		return file;
	snprintf(buf, len, "%s/%s", c->include_dir, file);
	return buf;
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
	char file_buf[PATH_TEXT_MAX * 2];
	const char *file = file_name(c, config_setting_source_file(at), file_buf,
				     sizeof(file_buf));
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
	const config_setting_t *s = NULL; /* set by lookup() when it returns 0 */
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
	const config_setting_t *s = NULL; /* set by lookup() when it returns 0 */
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

/* Display text: valid UTF-8 (jansson's check: it goes into JSON), no
 * control characters, 1..CONFIG_LABEL_MAX code points (a clinic screen). */
static bool valid_label(const char *s)
{
	json_t *utf8 = json_string(s); /* NULL unless valid UTF-8 */
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	if (!utf8)
		return false;
	json_decref(utf8);
	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7F)
			return false;
		/* C1 controls U+0080..U+009F: C2 80..C2 9F */
		if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
			return false;
		n += (*p & 0xC0) != 0x80; /* a lead byte starts a code point */
	}
	return n >= 1 && n <= CONFIG_LABEL_MAX;
}

static int get_id(struct ctx *c, const config_setting_t *parent, const char *name, char **out)
{
	const config_setting_t *where = NULL; /* set by get_string() when it returns 0 */
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
	static const char *const keys[] = { "id", "site", "data_dir", "realtime_priority", NULL };
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
	r = get_string(c, g, "data_dir", false, "/var/lib/bfr-gateway", &where, &cfg->data_dir);
	if (r < 0)
		return r;
	return get_uint(c, g, "realtime_priority", 0, 0, REALTIME_PRIORITY_MAX,
			&cfg->realtime_priority);
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

/*
 * The files are loaded as the connection will load them, so that a key
 * that does not belong to its certificate, or a CA file without a
 * certificate, stops the gateway here (and `--check`) with the setting
 * named, not at every connect attempt with "TCP/TLS connect failure".
 */
static int check_tls_files(struct ctx *c, const struct config *cfg,
			   const config_setting_t *ca_where, const config_setting_t *cert_where,
			   const config_setting_t *key_where)
{
	const struct tls_files files = { .ca_file = cfg->mqtt.ca_file,
					 .cert_file = cfg->mqtt.cert_file,
					 .key_file = cfg->mqtt.key_file };
	enum tls_file which = TLS_FILE_CA;
	char why[512];
	int r;

	r = tls_check_files(&files, &which, why, sizeof(why));
	if (r == -ENOMEM)
		return out_of_memory(c);
	if (r == 0)
		return 0;
	switch (which) {
	case TLS_FILE_CA:
		return errorf(c, ca_where, NULL, "%s", why);
	case TLS_FILE_CERT:
		return errorf(c, cert_where, NULL, "%s", why);
	default:
		return errorf(c, key_where, NULL, "%s", why);
	}
}

static int load_mqtt(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = { "uri",	    "client_id",   "username",
					    "password_file", "telemetry_hz", "keepalive_s",
					    "tls",	    "ended_retain_s", NULL };
	static const char *const tls_keys[] = { "ca_file", "cert_file", "key_file", NULL };
	const config_setting_t *m, *t, *where, *ca_where, *cert_where, *key_where;
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
		cfg->mqtt.ended_retain_s = CONFIG_ENDED_RETAIN_S;
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
	r = get_uint(c, m, "ended_retain_s", CONFIG_ENDED_RETAIN_S, 10, 7 * 86400,
		     &cfg->mqtt.ended_retain_s);
	if (r < 0)
		return r;

	r = get_group(c, m, "tls", false, tls_keys, &t);
	if (r < 0 || !t)
		return r;
	r = get_string(c, t, "ca_file", false, NULL, &ca_where, &cfg->mqtt.ca_file);
	if (r == 0)
		r = check_readable(c, ca_where, cfg->mqtt.ca_file);
	if (r < 0)
		return r;
	r = get_string(c, t, "cert_file", false, NULL, &cert_where, &cfg->mqtt.cert_file);
	if (r == 0)
		r = check_readable(c, cert_where, cfg->mqtt.cert_file);
	if (r < 0)
		return r;
	r = get_string(c, t, "key_file", false, NULL, &key_where, &cfg->mqtt.key_file);
	if (r == 0)
		r = check_readable(c, key_where, cfg->mqtt.key_file);
	if (r < 0)
		return r;
	if (!cfg->mqtt.cert_file != !cfg->mqtt.key_file)
		return errorf(c, t, NULL, "cert_file and key_file go together: set both or neither");
	if (!cfg->mqtt.tls && (cfg->mqtt.ca_file || cfg->mqtt.cert_file))
		return errorf(c, t, NULL,
			      "TLS files are set but mqtt.uri is not mqtts://, ssl:// or wss://");
	return check_tls_files(c, cfg, ca_where, cert_where, key_where);
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

/* The gid of a group name; the name must exist when the file is loaded. */
static int lookup_group(struct ctx *c, const config_setting_t *where, const char *name,
			unsigned *gid)
{
	char buf[4096];
	struct group gr, *found = NULL;
	int r = getgrnam_r(name, &gr, buf, sizeof(buf), &found);

	if (r != 0)
		return errorf(c, where, NULL, "cannot look up group \"%s\": %s", name,
			      strerror(r));
	if (!found)
		return errorf(c, where, NULL, "no such group \"%s\"", name);
	*gid = (unsigned)found->gr_gid;
	return 0;
}

static int load_home(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = { "control_socket", "control_group",
					    "supervisor_grace_s", NULL };
	const config_setting_t *h, *where;
	int r;

	r = get_group(c, root, "home", false, keys, &h);
	if (r < 0 || !h)
		return r;
	cfg->home.enabled = true;
	r = get_string(c, h, "control_socket", false, "/run/bfr-gateway/ctl.sock", &where,
		       &cfg->home.control_socket);
	if (r < 0)
		return r;
	if (cfg->home.control_socket[0] != '/' || strlen(cfg->home.control_socket) > SUN_PATH_MAX)
		return errorf(c, where, where == h ? "control_socket" : NULL,
			      "must be an absolute path of at most %d characters, got \"%s\"",
			      SUN_PATH_MAX, cfg->home.control_socket);
	r = get_string(c, h, "control_group", false, NULL, &where, &cfg->home.control_group);
	if (r == 0 && cfg->home.control_group)
		r = lookup_group(c, where, cfg->home.control_group, &cfg->home.control_gid);
	if (r < 0)
		return r;
	return get_uint(c, h, "supervisor_grace_s", 10, 0, 300, &cfg->home.supervisor_grace_s);
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

/*
 * What a single cuff and every cuff of a range share: address_type,
 * adapter, limb and the per-cuff limits. cuff->adapter is a heap copy.
 */
static int load_cuff_common(struct ctx *c, const config_setting_t *g, const struct config *cfg,
			    struct config_cuff *cuff)
{
	static const char *const limit_keys[] = { "max_pressure_mmHg", "max_pct_lop", NULL };
	/* In the order of the message: "leg" or "arm"; index 0 is the leg. */
	static const char *const limbs[] = { "leg", "arm", NULL };
	static const char *const types[] = { "public", "random", NULL };
	const config_setting_t *where, *limits, *s;
	const struct config_limb_limits *limb;
	int value, r;

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

static int load_cuff(struct ctx *c, const config_setting_t *g, const struct config *cfg,
		     struct config_cuff *cuff)
{
	static const char *const keys[] = { "id",	  "address", "address_type", "adapter",
					    "limb",	  "limits",  "label",	     NULL };
	const config_setting_t *where;
	int r;

	r = check_members(c, g, keys);
	if (r == 0)
		r = get_id(c, g, "id", &cuff->id);
	if (r == 0)
		r = get_string(c, g, "address", true, NULL, &where, &cuff->address);
	if (r == 0)
		r = parse_address(c, where, cuff);
	if (r == 0)
		r = load_cuff_common(c, g, cfg, cuff);
	/* A label names one cuff: single cuffs only, not ranges. */
	if (r == 0)
		r = get_string(c, g, "label", false, NULL, &where, &cuff->label);
	if (r == 0 && cuff->label && !valid_label(cuff->label))
		r = errorf(c, where, NULL,
			   "a label is 1..%d characters of UTF-8 text without control characters "
			   "(it is shown on the dashboard)",
			   CONFIG_LABEL_MAX);
	return r;
}

static bool same_address(const struct config_cuff *a, const struct config_cuff *b)
{
	if (a->is_sim != b->is_sim)
		return false;
	if (a->is_sim)
		return strcmp(a->sim_path, b->sim_path) == 0;
	return memcmp(a->bdaddr, b->bdaddr, sizeof(a->bdaddr)) == 0;
}

static bool same_id(const struct config_cuff *a, const struct config_cuff *b)
{
	return strcmp(a->id, b->id) == 0;
}

static uint32_t fnv1a(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint32_t id_hash(const struct config_cuff *cuff)
{
	return fnv1a(cuff->id, strlen(cuff->id));
}

/* Equal addresses (same_address) hash alike: by path, or by the parsed bytes. */
static uint32_t address_hash(const struct config_cuff *cuff)
{
	if (cuff->is_sim)
		return fnv1a(cuff->sim_path, strlen(cuff->sim_path));
	return fnv1a(cuff->bdaddr, sizeof(cuff->bdaddr)) ^ 1u;
}

/* Open addressing over indexes into cfg->cuffs; -1 marks a free slot. */
struct cuff_set {
	int *slots;
	size_t mask;
};

static int cuff_set_init(struct cuff_set *set, size_t n)
{
	size_t size = 16;

	while (size < 2 * n)
		size *= 2;
	set->slots = malloc(size * sizeof(*set->slots));
	if (!set->slots)
		return -ENOMEM;
	memset(set->slots, 0xff, size * sizeof(*set->slots)); /* every slot -1 */
	set->mask = size - 1;
	return 0;
}

/* Adds cuff i; returns the index of an equal cuff already there, or -1. */
static int cuff_set_add(struct cuff_set *set, const struct config_cuff *cuffs, int i,
			uint32_t (*hash)(const struct config_cuff *),
			bool (*equal)(const struct config_cuff *, const struct config_cuff *))
{
	size_t k = hash(&cuffs[i]) & set->mask;

	while (set->slots[k] >= 0) {
		if (equal(&cuffs[set->slots[k]], &cuffs[i]))
			return set->slots[k];
		k = (k + 1) & set->mask;
	}
	set->slots[k] = i;
	return -1;
}

/* Where a cuff was configured: cuffs.[index], or number `number` of cuff_ranges.[range]. */
struct origin {
	int range; /* -1: a single cuff */
	int index;
	unsigned number;
};

struct cuff_load {
	struct config *cfg;
	struct origin *origins; /* by index into cfg->cuffs */
	struct cuff_set ids, addresses;
};

/* `cuffs.[2].id "c2"` or `cuff_ranges.[0].id "bay0005" (number 5)`. */
static void describe(const struct cuff_load *cl, int i, const char *field, const char *value,
		     char *buf, size_t len)
{
	const struct origin *o = &cl->origins[i];

	if (o->range < 0)
		snprintf(buf, len, "cuffs.[%d].%s \"%s\"", o->index, field, value);
	else
		snprintf(buf, len, "cuff_ranges.[%d].%s \"%s\" (number %u)", o->range, field, value,
			 o->number);
}

/* Cuff i is loaded: its id and address must be new. */
static int check_unique(struct ctx *c, struct cuff_load *cl, int i,
			const config_setting_t *id_where, const config_setting_t *address_where)
{
	const struct config_cuff *cuffs = cl->cfg->cuffs;
	const struct origin *o = &cl->origins[i];
	char earlier[512], self[256] = "";
	int j;

	j = cuff_set_add(&cl->ids, cuffs, i, id_hash, same_id);
	if (j >= 0) {
		describe(cl, j, "id", cuffs[j].id, earlier, sizeof(earlier));
		if (o->range >= 0)
			snprintf(self, sizeof(self), "\"%s\" (number %u): ", cuffs[i].id,
				 o->number);
		return errorf(c, id_where, NULL, "%sduplicate of %s", self, earlier);
	}
	j = cuff_set_add(&cl->addresses, cuffs, i, address_hash, same_address);
	if (j >= 0) {
		describe(cl, j, "address", cuffs[j].address, earlier, sizeof(earlier));
		if (o->range >= 0)
			snprintf(self, sizeof(self), "\"%s\" (number %u): ", cuffs[i].address,
				 o->number);
		return errorf(c, address_where, NULL, "%sduplicate of %s", self, earlier);
	}
	return 0;
}

static int load_single_cuffs(struct ctx *c, struct cuff_load *cl, const config_setting_t *list)
{
	struct config *cfg = cl->cfg;
	int n = list ? config_setting_length(list) : 0;

	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		int k = (int)cfg->n_cuffs;
		int r;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return errorf(c, g, NULL, "expected a group, got %s",
				      type_name(config_setting_type(g)));
		/* Counted first so config_free releases a half-loaded cuff. */
		cfg->n_cuffs++;
		cl->origins[k] = (struct origin){ .range = -1, .index = i };
		r = load_cuff(c, g, cfg, &cfg->cuffs[k]);
		if (r == 0)
			r = check_unique(c, cl, k, config_setting_get_member(g, "id"),
					 config_setting_get_member(g, "address"));
		if (r < 0)
			return r;
	}
	return 0;
}

/* A range's id or address: one number conversion between a prefix and a suffix. */
struct template {
	const char *text;
	size_t prefix_len; /* the text before '%' */
	const char *suffix;
	int width;         /* of %0Nd; 0: none */
	char conversion;   /* 'd', 'x' or 'X' */
};

static int get_template(struct ctx *c, const config_setting_t *g, const char *name,
			const config_setting_t **where, struct template *t)
{
	const char *text, *pct, *p;
	int r;

	r = lookup(c, g, name, CONFIG_TYPE_STRING, true, where);
	if (r < 0)
		return r;
	text = config_setting_get_string(*where);
	if (strlen(text) > STRING_MAX)
		return errorf(c, *where, NULL, "longer than %d characters", STRING_MAX);
	pct = strchr(text, '%');
	p = pct ? pct + 1 : NULL;
	t->width = 0;
	if (p && p[0] == '0' && p[1] >= '1' && p[1] <= '9') {
		t->width = p[1] - '0';
		p += 2;
	}
	if (!p || (*p != 'd' && *p != 'x' && *p != 'X') || strchr(p + 1, '%'))
		return errorf(c, *where, NULL,
			      "\"%s\" is not a template: it needs exactly one %%d (or %%0Nd, "
			      "%%x, %%X, %%0Nx, %%0NX with N 1..9) where the number goes",
			      text);
	t->text = text;
	t->prefix_len = (size_t)(pct - text);
	t->conversion = *p;
	t->suffix = p + 1;
	return 0;
}

static int expand(struct ctx *c, const struct template *t, unsigned number, char **out)
{
	char buf[STRING_MAX + 16];
	int prefix = (int)t->prefix_len;

	/* Literal formats only: the template itself is never a format string. */
	switch (t->conversion) {
	case 'x':
		snprintf(buf, sizeof(buf), "%.*s%0*x%s", prefix, t->text, t->width, number,
			 t->suffix);
		break;
	case 'X':
		snprintf(buf, sizeof(buf), "%.*s%0*X%s", prefix, t->text, t->width, number,
			 t->suffix);
		break;
	default:
		snprintf(buf, sizeof(buf), "%.*s%0*u%s", prefix, t->text, t->width, number,
			 t->suffix);
		break;
	}
	*out = strdup(buf);
	return *out ? 0 : out_of_memory(c);
}

struct numbers {
	unsigned from, to, address_from;
};

static int get_number(struct ctx *c, const config_setting_t *g, const char *name, bool required,
		      unsigned def, unsigned *out)
{
	const config_setting_t *s;
	int r = lookup(c, g, name, CONFIG_TYPE_INT, required, &s);

	if (r < 0)
		return r;
	return get_uint(c, g, name, def, 0, CONFIG_RANGE_NUMBER_MAX, out);
}

/* from <= to, and address_from (default from) leaves room for every cuff. */
static int range_numbers(struct ctx *c, const config_setting_t *g, struct numbers *n)
{
	int r;

	r = get_number(c, g, "from", true, 0, &n->from);
	if (r == 0)
		r = get_number(c, g, "to", true, 0, &n->to);
	if (r < 0)
		return r;
	if (n->to < n->from)
		return errorf(c, config_setting_get_member(g, "to"), NULL,
			      "must not be below from (%u), got %u", n->from, n->to);
	r = get_number(c, g, "address_from", false, n->from, &n->address_from);
	if (r < 0)
		return r;
	if (n->address_from + (n->to - n->from) > CONFIG_RANGE_NUMBER_MAX)
		return errorf(c, config_setting_get_member(g, "address_from"), NULL,
			      "%u + %u cuffs goes beyond %d", n->address_from, n->to - n->from,
			      CONFIG_RANGE_NUMBER_MAX);
	return 0;
}

static int range_cuff(struct ctx *c, struct cuff_load *cl, const struct config_cuff *proto,
		      const struct template *id, const struct template *address,
		      const config_setting_t *id_where, const config_setting_t *address_where,
		      int range, unsigned number, unsigned address_number)
{
	struct config *cfg = cl->cfg;
	int k = (int)cfg->n_cuffs;
	struct config_cuff *cuff = &cfg->cuffs[k];
	int r;

	*cuff = *proto;
	cuff->adapter = NULL;
	/* Counted first so config_free releases a half-made cuff. */
	cfg->n_cuffs++;
	cl->origins[k] = (struct origin){ .range = range, .number = number };
	cuff->adapter = strdup(proto->adapter);
	if (!cuff->adapter)
		return out_of_memory(c);
	r = expand(c, id, number, &cuff->id);
	if (r < 0)
		return r;
	if (!valid_id(cuff->id))
		return errorf(c, id_where, NULL,
			      "\"%s\" (number %u) is not an id: use 1..%d of A-Z a-z 0-9 _ - (it "
			      "is used in MQTT topics)",
			      cuff->id, number, CONFIG_ID_MAX);
	r = expand(c, address, address_number, &cuff->address);
	if (r == 0)
		r = parse_address(c, address_where, cuff);
	if (r == 0)
		r = check_unique(c, cl, k, id_where, address_where);
	return r;
}

static int load_range(struct ctx *c, struct cuff_load *cl, const config_setting_t *g, int range)
{
	const config_setting_t *id_where, *address_where;
	struct config_cuff proto = { 0 };
	struct template id, address;
	struct numbers n;
	int r;

	r = range_numbers(c, g, &n);
	if (r == 0)
		r = get_template(c, g, "id", &id_where, &id);
	if (r == 0)
		r = get_template(c, g, "address", &address_where, &address);
	if (r == 0)
		r = load_cuff_common(c, g, cl->cfg, &proto);
	for (unsigned i = 0; r == 0 && i <= n.to - n.from; i++)
		r = range_cuff(c, cl, &proto, &id, &address, id_where, address_where, range,
			       n.from + i, n.address_from + i);
	free(proto.adapter);
	return r;
}

/* The first pass over cuff_ranges: shapes and numbers, and the total of cuffs. */
static int count_range_cuffs(struct ctx *c, const config_setting_t *ranges, size_t *total)
{
	static const char *const keys[] = { "id",	  "address", "from",   "to",
					    "address_from", "address_type", "adapter", "limb",
					    "limits",	  NULL };
	int n = ranges ? config_setting_length(ranges) : 0;

	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(ranges, (unsigned)i);
		struct numbers num;
		int r;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return errorf(c, g, NULL, "expected a group, got %s",
				      type_name(config_setting_type(g)));
		r = check_members(c, g, keys);
		if (r == 0)
			r = range_numbers(c, g, &num);
		if (r < 0)
			return r;
		*total += (size_t)(num.to - num.from) + 1;
		if (*total > CONFIG_CUFFS_MAX)
			return errorf(c, g, NULL,
				      "%zu cuffs in all (cuffs and cuff_ranges up to here), more "
				      "than %d",
				      *total, CONFIG_CUFFS_MAX);
	}
	return 0;
}

static int load_cuffs(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *list, *ranges;
	struct cuff_load cl = { .cfg = cfg };
	size_t total;
	int r;

	r = lookup(c, root, "cuffs", CONFIG_TYPE_LIST, false, &list);
	if (r == 0)
		r = lookup(c, root, "cuff_ranges", CONFIG_TYPE_LIST, false, &ranges);
	if (r < 0)
		return r;
	total = list ? (size_t)config_setting_length(list) : 0;
	if (total > CONFIG_CUFFS_MAX)
		return errorf(c, list, NULL, "%zu cuffs, more than %d", total, CONFIG_CUFFS_MAX);
	r = count_range_cuffs(c, ranges, &total);
	if (r < 0 || total == 0)
		return r;
	cfg->cuffs = calloc(total, sizeof(*cfg->cuffs));
	cl.origins = calloc(total, sizeof(*cl.origins));
	if (!cfg->cuffs || !cl.origins || cuff_set_init(&cl.ids, total) < 0 ||
	    cuff_set_init(&cl.addresses, total) < 0) {
		r = out_of_memory(c);
		goto out;
	}
	r = load_single_cuffs(c, &cl, list);
	for (int i = 0; r == 0 && ranges && i < config_setting_length(ranges); i++)
		r = load_range(c, &cl, config_setting_get_elem(ranges, (unsigned)i), i);
out:
	free(cl.origins);
	free(cl.ids.slots);
	free(cl.addresses.slots);
	return r;
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
					    "cuffs",   "cuff_ranges", "home", NULL };
	struct ctx c = { .path = path, .err = err, .errlen = errlen };
	const config_setting_t *root;
	struct config *cfg = NULL;
	char *dir = NULL, file_buf[PATH_TEXT_MAX * 2];
	config_t lc;
	FILE *f;
	int r;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!path || !out)
		return -EINVAL;
	config_init(&lc);
	/* @include "x.conf" means the x.conf next to this file, whatever the cwd. */
	dir = strdup(path);
	if (!dir) {
		r = out_of_memory(&c);
		goto fail;
	}
	c.include_dir = dirname(dir);
	config_set_include_dir(&lc, c.include_dir);
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
		const char *text = config_error_text(&lc);
		bool include = strcmp(text, "cannot open include file") == 0;

		r = -EINVAL;
		if (err && errlen > 0)
			snprintf(err, errlen, "%s:%d: %s%s%s%s",
				 file_name(&c, config_error_file(&lc), file_buf, sizeof(file_buf)),
				 config_error_line(&lc), text,
				 include ? " (@include paths are relative to " : "",
				 include ? c.include_dir : "", include ? ")" : "");
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
	if (r == 0)
		r = load_home(&c, root, cfg);
	if (r < 0)
		goto fail;
	config_destroy(&lc);
	free(dir);
	*out = cfg;
	return 0;
fail:
	one_line(err);
	config_free(cfg);
	config_destroy(&lc);
	free(dir);
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
		free(config->cuffs[i].label);
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
	free(config->home.control_socket);
	free(config->home.control_group);
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

int config_cuff_limits(const struct config *cfg, const struct config_cuff *cc, struct limits *out,
		       char *err, size_t errlen)
{
	const struct config_limb_limits *ll = config_limb_limits(cfg, cc->limb);
	struct limits l;
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
	int r = limits_defaults(cc->limb == CONFIG_LIMB_LEG ? BFR_LIMB_LEG : BFR_LIMB_ARM, &l);

	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++) {
		r = limits_override(&l, overrides[i].field, overrides[i].value, NULL);
		if (r < 0) {
			snprintf(err, errlen,
				 "cuff %s: %s = %g would loosen the compiled %s limit; limits can "
				 "only be tightened",
				 cc->id, limits_field_name(overrides[i].field), overrides[i].value,
				 config_limb_name(cc->limb));
			return r;
		}
	}
	*out = l;
	return 0;
}
