/* telemetry_json.c - see telemetry_json.h. */
#include "telemetry_json.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Below this many tenths, jansson's "%.6g" prints every digit of a value
 * rounded to 0.1 and never an exponent: the fast path prints the same. */
#define FAST_TENTHS_LIMIT 1000000.0

struct out {
	char *p, *end; /* end: the last byte, kept for the NUL */
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || (size_t)(o->end - o->p) < n) {
		o->full = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

static void put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do {
		digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, &digits[sizeof(digits) - n], n);
}

/* jansson's text of a real: how json_dumps prints json_real(v). */
static void put_real_jansson(struct out *o, double v)
{
	json_t *real = json_real(v);
	char *text = real ? json_dumps(real, JSON_ENCODE_ANY | MSG_JSON_FLAGS) : NULL;

	if (text)
		put_str(o, text);
	else
		o->full = true; /* out of memory: the caller gets -ENOSPC */
	free(text);
	json_decref(real);
}

/*
 * A sample value as msg_telemetry() has jansson print it: null when not
 * finite, else payload_round1(v) with "%.6g", plus ".0" when that shows no
 * decimal point. For fewer than 10^6 tenths "%.6g" shows the rounded value
 * exactly, as <integer part>.<tenths>, with "-" for negative values and -0.
 */
static void put_value(struct out *o, float value)
{
	double tenths, abs_tenths;
	uint64_t t;
	char frac[2];

	if (!isfinite(value)) {
		put(o, "null", 4);
		return;
	}
	tenths = round((double)value * 10.0);
	abs_tenths = fabs(tenths);
	if (abs_tenths >= FAST_TENTHS_LIMIT) {
		put_real_jansson(o, tenths / 10.0);
		return;
	}
	if (signbit(tenths))
		put(o, "-", 1);
	t = (uint64_t)abs_tenths;
	put_u64(o, t / 10);
	frac[0] = '.';
	frac[1] = (char)('0' + t % 10);
	put(o, frac, 2);
}

char *telemetry_json_quote(const char *cuff)
{
	json_t *s = json_string(cuff);
	char *text = s ? json_dumps(s, JSON_ENCODE_ANY | MSG_JSON_FLAGS) : NULL;

	json_decref(s);
	return text;
}

int telemetry_json_init(struct telemetry_json *tj, struct payload_ctx *ctx)
{
	char prefix[sizeof(ctx->gateway_id) + sizeof(ctx->boot) + 2];
	char *quoted;
	size_t n;
	int r = 0;

	snprintf(prefix, sizeof(prefix), "%s-%s-", ctx->gateway_id, ctx->boot);
	quoted = telemetry_json_quote(prefix);
	if (!quoted)
		return -ENOMEM;
	n = strlen(quoted);
	/* Without its quotes: the counter follows inside the same string. */
	if (n < 2 || n - 2 >= sizeof(tj->id_prefix)) {
		r = -EINVAL;
		goto out;
	}
	memset(tj, 0, sizeof(*tj));
	tj->ctx = ctx;
	memcpy(tj->id_prefix, quoted + 1, n - 2);
	tj->id_prefix_len = n - 2;
out:
	free(quoted);
	return r;
}

/* The envelope's ts, as payload_format_ts() writes it; strftime once a second. */
static void put_ts(struct telemetry_json *tj, struct out *o, uint64_t wall_ms)
{
	uint64_t second = wall_ms / 1000u;
	unsigned ms = (unsigned)(wall_ms % 1000u);
	size_t n;
	char tail[4];

	if (second != tj->ts_second || !tj->ts_text[0]) {
		payload_format_ts(second * 1000u, tj->ts_text);
		tj->ts_second = second;
	}
	n = strlen(tj->ts_text);
	/* ts_text ends in ".000Z": keep the dot, write this time's ms. */
	put(o, tj->ts_text, n - 4);
	tail[0] = (char)('0' + ms / 100);
	tail[1] = (char)('0' + ms / 10 % 10);
	tail[2] = (char)('0' + ms % 10);
	tail[3] = 'Z';
	put(o, tail, 4);
}

int telemetry_json_build(struct telemetry_json *tj, const char *cuff_quoted,
			 const struct msg_telemetry_sample *samples, size_t n, char *buf, size_t cap,
			 size_t *len_out)
{
	struct out o = { .p = buf, .end = buf + (cap ? cap - 1 : 0), .full = cap == 0 };
	uint64_t counter = tj->ctx->counter + 1;

	if (n == 0 || n > MSG_TELEMETRY_MAX || !samples || !cuff_quoted || !buf)
		return -EINVAL;
	/* The key order of msg_telemetry(): payload_new()'s v, ts, msg_id, then
	 * cuff and samples. */
	put_str(&o, "{\"v\":1,\"ts\":\"");
	put_ts(tj, &o, payload_wall_ms(tj->ctx));
	put_str(&o, "\",\"msg_id\":\"");
	put(&o, tj->id_prefix, tj->id_prefix_len);
	put_u64(&o, counter);
	put_str(&o, "\",\"cuff\":");
	put_str(&o, cuff_quoted);
	put_str(&o, ",\"samples\":[");
	for (size_t i = 0; i < n; i++) {
		put(&o, i ? ",[" : "[", i ? 2 : 1);
		put_u64(&o, samples[i].t_ms);
		put(&o, ",", 1);
		put_value(&o, samples[i].pressure);
		put(&o, ",", 1);
		put_value(&o, samples[i].target);
		put(&o, ",", 1);
		put_value(&o, samples[i].pulse);
		put(&o, "]", 1);
	}
	put(&o, "]}", 2);
	if (o.full)
		return -ENOSPC;
	*o.p = '\0';
	tj->ctx->counter = counter;
	*len_out = (size_t)(o.p - buf);
	return 0;
}
