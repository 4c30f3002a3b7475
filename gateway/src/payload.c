/* payload.c - see payload.h. */
#include "payload.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static int copy_bounded(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

int payload_ctx_init(struct payload_ctx *ctx, const char *site, const char *gateway_id,
		     const char *boot)
{
	struct payload_ctx tmp = { 0 };
	uint8_t rnd[8];

	if (copy_bounded(tmp.site, sizeof(tmp.site), site) < 0 ||
	    copy_bounded(tmp.gateway_id, sizeof(tmp.gateway_id), gateway_id) < 0)
		return -EINVAL;
	if (boot) {
		if (copy_bounded(tmp.boot, sizeof(tmp.boot), boot) < 0)
			return -EINVAL;
	} else {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -EIO;
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(tmp.boot + 2 * i, 3, "%02x", rnd[i]);
	}
	*ctx = tmp;
	return 0;
}

uint64_t payload_wall_ms(const struct payload_ctx *ctx)
{
	struct timespec ts;

	if (ctx->wall_ms)
		return ctx->wall_ms(ctx->wall_data);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void payload_format_ts(uint64_t wall_ms, char out[32])
{
	time_t secs = (time_t)(wall_ms / 1000u);
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	/* strftime never writes past out (a year past 9999 would not be RFC 3339 anyway),
	 * unlike "%04d" of an int whose width the compiler cannot bound. */
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(wall_ms % 1000u));
}

json_t *payload_new(struct payload_ctx *ctx, char msg_id_out[96])
{
	char ts[32];
	char msg_id[96];
	json_t *obj;

	payload_format_ts(payload_wall_ms(ctx), ts);
	snprintf(msg_id, sizeof(msg_id), "%s-%s-%" PRIu64, ctx->gateway_id, ctx->boot,
		 ++ctx->counter);
	obj = json_pack("{s:i, s:s, s:s}", "v", PAYLOAD_VERSION, "ts", ts, "msg_id", msg_id);
	if (obj && msg_id_out)
		memcpy(msg_id_out, msg_id, strlen(msg_id) + 1);
	return obj;
}

int payload_topic(const struct payload_ctx *ctx, char *buf, size_t cap, const char *fmt, ...)
{
	char suffix[TOPIC_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(suffix, sizeof(suffix), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(suffix))
		return -ENAMETOOLONG;
	n = snprintf(buf, cap, "bfr/v1/%s/%s/%s", ctx->site, ctx->gateway_id, suffix);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

int payload_set_number_or_null(json_t *obj, const char *key, double value)
{
	json_t *v = isfinite(value) ? json_real(value) : json_null();

	if (!v)
		return -ENOMEM;
	return json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

double payload_round1(double value)
{
	return round(value * 10.0) / 10.0;
}
