/*
 * telemetry_json.h - the telemetry payload (cuff/{cuff}/telemetry) written
 * straight into a buffer, without a jansson tree.
 *
 * At 2 000 cuffs the gateway publishes 20 000 telemetry messages a second;
 * building each as a jansson tree (an object, an array per sample, a real
 * per value) and dumping it cost more than the receive path of the samples
 * themselves (docs/benchmarks.md, issue 13). The text written here is the
 * same, byte for byte, as json_dumps(msg_telemetry(...), MSG_JSON_FLAGS)
 * (tests/unit/gateway/test_telemetry_json.c compares them over every SFLOAT
 * value and the envelope): keys in the same order, numbers as jansson
 * prints them, the same envelope (v, ts, msg_id from the payload context,
 * whose counter it advances like payload_new()).
 *
 * Strings (the msg_id prefix, the cuff id) are escaped once, by jansson,
 * when they are prepared; only numbers are formatted per message. A value
 * outside the fast path (|value| >= 100000 mmHg, which no real cuff sends)
 * is formatted by jansson too. Loop thread only, like the payload context.
 */
#ifndef BFR_TELEMETRY_JSON_H
#define BFR_TELEMETRY_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "messages.h"
#include "payload.h"

/* Room for any telemetry payload of MSG_TELEMETRY_MAX samples. */
#define TELEMETRY_JSON_MAX 16384

struct telemetry_json {
	struct payload_ctx *ctx;
	char id_prefix[200]; /* "<gateway>-<boot>-", escaped for a JSON string */
	size_t id_prefix_len;
	uint64_t ts_second;  /* the wall-clock second ts_text was made for */
	char ts_text[32];    /* payload_format_ts() of that second */
};

/* -EINVAL when the context's ids do not fit, -ENOMEM. */
int telemetry_json_init(struct telemetry_json *tj, struct payload_ctx *ctx);

/* A cuff id as a JSON string ("\"bay1\""), to pass to telemetry_json_build;
 * free() it. NULL on allocation failure. */
char *telemetry_json_quote(const char *cuff);

/*
 * Writes the payload of samples[0..n) (1..MSG_TELEMETRY_MAX) for the cuff
 * whose quoted id is cuff_quoted into buf (cap bytes, NUL-terminated) and
 * takes a msg_id from the context. *len_out gets its length. -EINVAL for a
 * bad n, -ENOSPC if it does not fit (nothing taken from the context).
 */
int telemetry_json_build(struct telemetry_json *tj, const char *cuff_quoted,
			 const struct msg_telemetry_sample *samples, size_t n, char *buf, size_t cap,
			 size_t *len_out);

#endif
