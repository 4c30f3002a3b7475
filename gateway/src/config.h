/*
 * config.h - the gateway's configuration file (libconfig syntax, DESIGN §8).
 *
 * config_load() parses and validates the whole file before returning
 * anything: unknown settings, wrong types, out-of-range numbers, bad enum
 * strings, bad ids or addresses and duplicate cuffs are errors, reported as
 * one line "FILE:LINE: setting.path: what is wrong" (list elements are
 * written `cuffs.[0]`, 0-based). Everything optional gets its default, so a
 * loaded struct config is complete and every value in it is within the
 * compiled bounds below. Safety limits can only be tightened: a configured
 * value looser than its compiled bound, or a per-cuff limit looser than its
 * limb's limit, is an error, never clamped.
 *
 * Cuffs come from the `cuffs` list and from `cuff_ranges` (a numbered
 * template naming from..to cuffs at once), in that order, at most
 * CONFIG_CUFFS_MAX in all; ids and addresses are unique across both. A
 * file may `@include` others; their paths are relative to the directory of
 * the main file, and errors in them name the included file.
 *
 * The struct is plain read-only data owned by the caller; free it with
 * config_free(). docs/configuration.md describes every setting.
 */
#ifndef BFR_CONFIG_H
#define BFR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Compiled absolute bounds: configuration may only stay inside them. 30 mmHg
 * is the lowest pressure ceiling the safety engine takes (limits.c); a limb
 * limit may also not exceed the compiled limb default (config.c load_limb).
 */
#define CONFIG_PRESSURE_MIN_MMHG 30
#define CONFIG_PRESSURE_MAX_MMHG 300
#define CONFIG_PCT_LOP_MIN 10
#define CONFIG_PCT_LOP_MAX 100
/* Ids (gateway, site, cuff) appear in MQTT topics: [A-Za-z0-9_-], 1..64. */
#define CONFIG_ID_MAX 64
#define CONFIG_LABEL_MAX 64 /* code points of a cuff's display label */
#define CONFIG_ENDED_RETAIN_S 86400 /* default mqtt.ended_retain_s */
/* Cuffs of one gateway, single and from ranges together. */
#define CONFIG_CUFFS_MAX 4096
/* The numbers of a cuff range (from, to, address_from) are 0..this. */
#define CONFIG_RANGE_NUMBER_MAX 999999

enum config_limb {
	CONFIG_LIMB_ARM = 0, /* same numbering as the Cuff Features characteristic */
	CONFIG_LIMB_LEG = 1,
};

enum config_security {
	CONFIG_SECURITY_LOW,
	CONFIG_SECURITY_MEDIUM,
	CONFIG_SECURITY_HIGH,
};

enum config_address_type {
	CONFIG_ADDRESS_PUBLIC,
	CONFIG_ADDRESS_RANDOM,
};

/* limits.leg / limits.arm */
struct config_limb_limits {
	unsigned max_pressure_mmHg; /* leg 250, arm 200; 1..300 */
	unsigned max_pct_lop;       /* leg 80, arm 60; 10..100 */
	unsigned session_total_s;   /* cumulative inflation: leg 1200, arm 900; 60..default */
};

struct config_cuff {
	char *id;
	char *address;    /* as written: "sim:/path" or "C4:7F:51:00:12:9A" */
	bool is_sim;
	const char *sim_path; /* is_sim: points into address, after "sim:" */
	uint8_t bdaddr[6];    /* !is_sim: bdaddr_t byte order (str2ba, little-endian) */
	enum config_address_type address_type; /* default public */
	char *adapter;        /* default "hci0" */
	int adapter_index;    /* N of "hciN" */
	enum config_limb limb;
	char *label;          /* display name, e.g. "Bay 1, left thigh"; NULL: none */
	/* Effective limits: the limb's, or tighter from cuffs.[i].limits. */
	unsigned max_pressure_mmHg;
	unsigned max_pct_lop;
};

struct config {
	char *path; /* the file this came from */

	char *gateway_id;
	char *site;
	char *data_dir; /* default "/var/lib/bfr-gateway" */
	/* The event loop's SCHED_FIFO priority (realtime.h); 0: the normal
	 * policy. Default 0, 0..REALTIME_PRIORITY_MAX. */
	unsigned realtime_priority;

	struct {
		char *uri;           /* default "mqtt://127.0.0.1:1883" */
		char *client_id;     /* default gateway_id */
		char *username;      /* NULL: none */
		char *password_file; /* NULL: none */
		char *password;      /* first line of password_file, or NULL */
		unsigned telemetry_hz; /* default 10, 1..50 */
		/* An ended session's retained state and summary, and a stopped
		 * gateway's cuff states, expire after this (MQTT 5 Message Expiry). */
		unsigned ended_retain_s; /* default 86400 (a day), 10..604800 */
		unsigned keepalive_s;  /* default 10, 2..300 */
		bool tls;              /* uri is mqtts:// or ssl:// (or wss://) */
		char *ca_file;         /* NULL: none (system default CAs) */
		char *cert_file;       /* NULL: none; set together with key_file */
		char *key_file;
	} mqtt;

	enum config_security ble_security; /* default medium */

	struct config_limb_limits leg;
	struct config_limb_limits arm;
	unsigned max_inflation_s;    /* continuous inflation; default 600, 10..600 */
	unsigned min_reperfusion_s;  /* default 60, 60..3600 */
	unsigned sample_timeout_ms;  /* telemetry lost; default 500, 100..500 */
	unsigned deflate_timeout_ms; /* deflation confirmation; default 5000, 1000..5000 */
	unsigned lop_max_age_s;      /* LOP validity; default 3600, 60..3600 */

	unsigned supervision_timeout_ms; /* cuff fail-safe; default 3000, 500..3000 */
	unsigned outbox_max_mib;         /* default 64, 1..4096 */

	/* home: a home gateway (DESIGN section 11); without the group, prescriptions,
	 * local starts and the control socket are off. */
	struct {
		bool enabled;
		char *control_socket;     /* default "/run/bfr-gateway/ctl.sock"; absolute */
		char *control_group;      /* NULL: none (root and the gateway's own user only) */
		unsigned control_gid;     /* control_group's, when set */
		unsigned supervisor_grace_s; /* default 10, 0..300 */
	} home;

	size_t n_cuffs;
	struct config_cuff *cuffs;
};

/*
 * Loads and validates path. On success *out owns a complete config. On
 * failure returns -ENOENT/-EACCES (file unreadable), -EINVAL (syntax or
 * validation) or -ENOMEM, writes one line into err (if errlen > 0) and
 * leaves *out untouched.
 */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
void config_free(struct config *config);

struct limits;

/*
 * The safety limits of cuff cc: its limb's compiled defaults (limits.h)
 * tightened by the configuration. The one derivation: the gateway's cuffs
 * and the config fuzz target's "what --check accepts can run" use it.
 * 0, or -EINVAL with one line in err naming the setting that would loosen a
 * compiled limit; *out untouched on failure.
 */
int config_cuff_limits(const struct config *cfg, const struct config_cuff *cc, struct limits *out,
		       char *err, size_t errlen);

/* The limits of a limb. */
const struct config_limb_limits *config_limb_limits(const struct config *config,
						     enum config_limb limb);
/* "leg" / "arm", "low" / "medium" / "high". */
const char *config_limb_name(enum config_limb limb);
const char *config_security_name(enum config_security security);

#endif
