/*
 * payload.h - the envelope every published MQTT payload carries, and topics.
 *
 * Every payload is a JSON object with `v` (1), `ts` (RFC 3339 UTC with
 * milliseconds, from the wall clock: stamps only, never timing) and `msg_id`
 * ("<gateway>-<boot>-<counter>": the boot part is random per process start,
 * so ids stay unique across restarts and consumers can dedupe at-least-once
 * deliveries on it). Topics are "bfr/v1/<site>/<gateway>/<suffix>".
 */
#ifndef BFR_PAYLOAD_H
#define BFR_PAYLOAD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_VERSION 1
#define TOPIC_MAX 256

struct payload_ctx {
	char gateway_id[65];
	char site[65];
	char boot[17];
	uint64_t counter;
	/* Wall-clock source in ms since the epoch; NULL means CLOCK_REALTIME. */
	uint64_t (*wall_ms)(void *data);
	void *wall_data;
};

/* boot may be NULL: then 16 random hex digits from getrandom(). */
int payload_ctx_init(struct payload_ctx *ctx, const char *site, const char *gateway_id,
		     const char *boot);

uint64_t payload_wall_ms(const struct payload_ctx *ctx);

/* Formats wall-clock ms as "2026-11-24T09:30:00.123Z" (25 bytes incl. NUL). */
void payload_format_ts(uint64_t wall_ms, char out[32]);

/*
 * A new JSON object with v, ts and a fresh msg_id. NULL on allocation
 * failure. The msg_id is also copied to msg_id_out when not NULL.
 */
json_t *payload_new(struct payload_ctx *ctx, char msg_id_out[96]);

/* "bfr/v1/<site>/<gateway>/<suffix>"; -ENAMETOOLONG if it does not fit. */
int payload_topic(const struct payload_ctx *ctx, char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Sets key to a number, or to null when value is NaN. */
int payload_set_number_or_null(json_t *obj, const char *key, double value);

/* Rounds to one decimal (pressures are 0.1 mmHg resolution at best). */
double payload_round1(double value);

#endif
