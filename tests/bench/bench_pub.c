/*
 * bench_pub.c - the reference publisher of issue 13: what a bare Paho
 * MQTTAsync client, with the gateway's library options and no gateway work
 * around it, gets through the same broker.
 *
 * Two modes, each reporting one JSON line on stdout:
 *
 *   telemetry  QoS 0, not retained, on PREFIX/cuff/<id>/telemetry for
 *              --topics ids (p0001 ...), telemetry-shaped payloads (the
 *              envelope v/ts/msg_id, cuff, --samples samples of
 *              [t_ms, pressure, target, pulse]). Paced like the gateway's
 *              reporter: every 2 ms one slice of the topics, absolute
 *              deadlines, --rate messages per second per topic; --rate 0
 *              publishes unpaced, keeping at most --window messages
 *              outstanding (the ceiling of library + broker on the machine).
 *   outbox     QoS 1 on PREFIX/session/<id>/event, --window (default 256,
 *              the gateway's PUBLISHER_WINDOW; fewer if the broker's Receive
 *              Maximum is lower, as in the gateway) messages in flight, like
 *              the outbox drain: a new one goes out when a PUBACK comes back.
 *              "window" in the output is the one used.
 *
 * Library options are the gateway's (gateway/src/mqtt_client.c): MQTT 5,
 * MQTTAsync_createWithOptions with maxBufferedMessages
 * MQTT_CLIENT_MAX_BUFFERED and sendWhileDisconnected 0, clean start,
 * keep-alive 10 s, the same Maximum Packet Size property on CONNECT, one
 * MQTTAsync_sendMessage with onSuccess5/onFailure5 callbacks per message.
 *
 * "achieved_msgs_s" is the messages acknowledged (QoS 1) or written (QoS 0,
 * Paho's onSuccess) divided by the time from the first send to the last
 * completion. The payload's `ts` is the wall clock at composition and the
 * samples' t_ms count from "sample_epoch_ms", so bench_sub can measure both
 * latencies the same way as for the gateway's messages.
 *
 * Threads: Paho calls the callbacks on its own threads; they only touch the
 * atomic counters and signal `cond`. Signals are blocked while Paho creates
 * its threads, so SIGINT/SIGTERM reach the main thread and end the run early
 * (the summary is still printed).
 *
 *   bench_pub --uri mqtt://127.0.0.1:PORT [--mode telemetry|outbox]
 *             [--topics N] [--rate HZ] [--samples K] [--duration S]
 *             [--count M] [--window W] [--prefix P] [--client-id ID]
 *             [--epoch-ms WALL_MS]
 *
 * Exit status 0 when the run completed, 1 on a connect or runtime failure,
 * 2 on bad arguments.
 */
#include <MQTTAsync.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_client.h"
#include "publisher.h"

#define TELEMETRY_SLICE_NS 2000000u /* as REPORTER_TELEMETRY_SLICE_MS */
#define TOPIC_MAX 256
#define PAYLOAD_MAX 4096
#define SAMPLES_MAX 50
#define DRAIN_TIMEOUT_S 30

enum mode { MODE_TELEMETRY, MODE_OUTBOX };

struct options {
	const char *uri;
	const char *prefix;
	const char *client_id;
	enum mode mode;
	unsigned topics;
	double rate;      /* per topic per second; 0: unpaced */
	unsigned samples; /* per telemetry message */
	double duration_s;
	uint64_t count;   /* 0: until the duration is over */
	unsigned window;
	uint64_t epoch_ms; /* wall ms of the samples' t_ms 0; 0: a second before the start */
};

struct run {
	struct options opt;
	MQTTAsync handle;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool connect_done;
	bool connect_ok;
	unsigned receive_max; /* the CONNACK's Receive Maximum (65535: none) */
	char connect_error[256];
	atomic_uint_fast64_t completed;
	atomic_uint_fast64_t failed;
	atomic_uint_fast64_t last_done_ns; /* CLOCK_MONOTONIC of the latest completion */
	uint64_t sent;    /* MQTTAsync_sendMessage accepted (main thread) */
	uint64_t refused; /* MQTTAsync_sendMessage refused, by code below */
	int last_refusal;
	atomic_bool notify; /* the main thread waits for completions */
	bool disconnected;
	uint64_t sample_epoch_ms;
	uint64_t slices_late;
	uint64_t max_late_us;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* RFC 3339 UTC with milliseconds, as payload.c writes the envelope's ts. */
static void format_ts(uint64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms / 1000u);
	struct tm tm;
	char date[24];

	gmtime_r(&secs, &tm);
	/* strftime: the compiler cannot bound %d of a struct tm field
	 * (gcc -O3 -Wformat-truncation fails the Release build with -Werror). */
	if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		date[0] = '\0';
	snprintf(buf, len, "%s.%03uZ", date, (unsigned)(ms % 1000u));
}

/* ---- Paho's threads ------------------------------------------------------ */

static void signal_run(struct run *r)
{
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void on_connect_ok(void *context, MQTTAsync_successData5 *response)
{
	struct run *r = context;

	const MQTTProperty *rm =
		response ? MQTTProperties_getProperty(&response->properties,
						      MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)
			 : NULL;

	pthread_mutex_lock(&r->lock);
	r->connect_done = true;
	r->connect_ok = true;
	r->receive_max = rm ? rm->value.integer2 : MQTT_RECEIVE_MAXIMUM_NONE;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void on_connect_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct run *r = context;

	pthread_mutex_lock(&r->lock);
	r->connect_done = true;
	snprintf(r->connect_error, sizeof(r->connect_error), "%s (code %d, reason 0x%02x)",
		 response && response->message ? response->message : "connect failed",
		 response ? response->code : 0, response ? (unsigned)response->reasonCode : 0u);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void on_publish_ok(void *context, MQTTAsync_successData5 *response)
{
	struct run *r = context;

	(void)response;
	atomic_fetch_add(&r->completed, 1);
	atomic_store(&r->last_done_ns, mono_ns());
	/* Paced telemetry does not wait: no lock and wake-up per message then. */
	if (atomic_load(&r->notify))
		signal_run(r);
}

static void on_publish_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct run *r = context;

	(void)response;
	atomic_fetch_add(&r->failed, 1);
	atomic_store(&r->last_done_ns, mono_ns());
	signal_run(r);
}

static void on_disconnected(void *context, MQTTAsync_successData5 *response)
{
	struct run *r = context;

	(void)response;
	pthread_mutex_lock(&r->lock);
	r->disconnected = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void on_disconnect_failed(void *context, MQTTAsync_failureData5 *response)
{
	(void)response;
	on_disconnected(context, NULL);
}

/* Paho requires one; nothing is subscribed, so it is never called. */
static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)context;
	(void)topic_len;
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_connection_lost(void *context, char *cause)
{
	fprintf(stderr, "bench_pub: connection lost: %s\n", cause ? cause : "?");
	stop_requested = 1;
	signal_run(context);
}

/* ---- main thread ----------------------------------------------------------- */

static int connect_broker(struct run *r)
{
	MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer5;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty max_packet = { .identifier = MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE };
	struct timespec deadline;
	sigset_t all, saved;
	int rc;

	copts.sendWhileDisconnected = 0;
	copts.maxBufferedMessages = MQTT_CLIENT_MAX_BUFFERED;
	copts.MQTTVersion = MQTTVERSION_5;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	rc = MQTTAsync_createWithOptions(&r->handle, r->opt.uri, r->opt.client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &copts);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setCallbacks(r->handle, r, on_connection_lost, on_message, NULL);
	max_packet.value.integer4 = MQTT_CLIENT_DEFAULT_MAX_PACKET;
	if (rc == MQTTASYNC_SUCCESS && MQTTProperties_add(&props, &max_packet) == 0)
		opts.connectProperties = &props;
	opts.keepAliveInterval = 10;
	opts.cleanstart = 1;
	opts.connectTimeout = 10;
	opts.onSuccess5 = on_connect_ok;
	opts.onFailure5 = on_connect_failed;
	opts.context = r;
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_connect(r->handle, &opts);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	MQTTProperties_free(&props);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "bench_pub: cannot start a connection to %s: Paho code %d\n",
			r->opt.uri, rc);
		return -EIO;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 15;
	pthread_mutex_lock(&r->lock);
	while (!r->connect_done && !stop_requested)
		if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) == ETIMEDOUT)
			break;
	rc = r->connect_ok ? 0 : -EIO;
	/*
	 * As the gateway (publisher_send_window, without its reserve: nothing
	 * else is sent here): no more QoS 1 messages outstanding than the
	 * broker lets be in flight. Paho 1.3 does not wake its send thread when
	 * a PUBACK frees a slot, so what waits over the Receive Maximum goes
	 * out at the next publish or a second later.
	 */
	if (rc == 0 && r->opt.mode == MODE_OUTBOX && r->receive_max < r->opt.window)
		r->opt.window = r->receive_max ? r->receive_max : 1;
	pthread_mutex_unlock(&r->lock);
	if (rc < 0)
		fprintf(stderr, "bench_pub: cannot connect to %s: %s\n", r->opt.uri,
			r->connect_done ? r->connect_error : "no answer within 15 s");
	return rc;
}

static void telemetry_payload(struct run *r, unsigned topic, uint64_t n, char *buf, size_t len)
{
	char ts[32];
	uint64_t now = wall_ms();
	uint64_t t_ms = now - r->sample_epoch_ms;
	size_t used;

	format_ts(now, ts, sizeof(ts));
	used = (size_t)snprintf(buf, len,
				"{\"v\":1,\"ts\":\"%s\",\"msg_id\":\"bench-%d-%" PRIu64 "\","
				"\"cuff\":\"p%04u\",\"samples\":[",
				ts, (int)getpid(), n, topic + 1);
	/* Newest sample last, 20 ms apart like 50 Hz cuffs, gateway-like numbers. */
	for (unsigned i = 0; i < r->opt.samples && used < len; i++) {
		uint64_t t = t_ms - (uint64_t)(r->opt.samples - 1 - i) * 20u;

		used += (size_t)snprintf(buf + used, len - used, "%s[%" PRIu64 ",%.1f,0.0,%.1f]",
					 i ? "," : "", t, 120.0 + (double)((n + i) % 50) / 10.0,
					 1.5);
	}
	if (used < len)
		snprintf(buf + used, len - used, "]}");
}

static void event_payload(uint64_t n, unsigned topic, char *buf, size_t len)
{
	char ts[32];

	format_ts(wall_ms(), ts, sizeof(ts));
	/* About the size of a rep event. */
	snprintf(buf, len,
		 "{\"v\":1,\"ts\":\"%s\",\"msg_id\":\"bench-%d-%" PRIu64 "\",\"session_id\":"
		 "\"s%04u\",\"seq\":%" PRIu64 ",\"type\":\"rep\",\"exercise\":0,\"set\":0,"
		 "\"rep\":%" PRIu64 ",\"cuffs\":[\"p%04u\"],\"pressure_mmHg\":{\"p%04u\":"
		 "142.5},\"target_mmHg\":{\"p%04u\":140.0},\"elapsed_s\":12.34}",
		 ts, (int)getpid(), n, topic + 1, n, n, topic + 1, topic + 1, topic + 1);
}

static int send_one(struct run *r, const char *topic, const char *payload, int qos)
{
	MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	int rc;

	msg.payload = (void *)payload;
	msg.payloadlen = (int)strlen(payload);
	msg.qos = qos;
	msg.retained = 0;
	ropts.onSuccess5 = on_publish_ok;
	ropts.onFailure5 = on_publish_failed;
	ropts.context = r;
	rc = MQTTAsync_sendMessage(r->handle, topic, &msg, &ropts);
	if (rc == MQTTASYNC_SUCCESS) {
		r->sent++;
		return 0;
	}
	r->refused++;
	r->last_refusal = rc;
	return -EAGAIN;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
			       .tv_nsec = (long)(t % 1000000000u) };

	/* EINTR (a signal) ends the wait early; the caller looks at the flag. */
	(void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Blocks while `limit` messages are outstanding; false when asked to stop. */
static bool wait_for_room(struct run *r, uint64_t limit)
{
	pthread_mutex_lock(&r->lock);
	while (!stop_requested &&
	       r->sent - atomic_load(&r->completed) - atomic_load(&r->failed) >= limit) {
		struct timespec deadline;

		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += 100000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->cond, &r->lock, &deadline);
	}
	pthread_mutex_unlock(&r->lock);
	return !stop_requested;
}

static bool done(const struct run *r, uint64_t start_ns)
{
	if (stop_requested)
		return true;
	if (r->opt.count && r->sent + r->refused >= r->opt.count)
		return true;
	return r->opt.duration_s > 0 &&
	       (double)(mono_ns() - start_ns) / 1e9 >= r->opt.duration_s;
}

static void run_telemetry(struct run *r, uint64_t start_ns)
{
	char topic[TOPIC_MAX], payload[PAYLOAD_MAX];
	/* As the reporter: period / 2 ms slices (at least 2), one every 2 ms. */
	uint64_t period_ns = r->opt.rate > 0 ? (uint64_t)(1e9 / r->opt.rate) : 0;
	unsigned slices = period_ns >= 2 * TELEMETRY_SLICE_NS ? period_ns / TELEMETRY_SLICE_NS : 1;
	uint64_t slice_ns = period_ns / slices;
	uint64_t due = start_ns, n = 0;
	unsigned slice = 0;

	while (!done(r, start_ns)) {
		if (slice_ns) {
			uint64_t now = mono_ns();

			if (now < due) {
				sleep_until_ns(due);
			} else if (now - due > 1000000u) {
				r->slices_late++;
				if ((now - due) / 1000u > r->max_late_us)
					r->max_late_us = (now - due) / 1000u;
			}
			/* Absolute deadlines: the cadence does not stretch by the work. */
			due += slice_ns;
		}
		for (unsigned t = slice; t < r->opt.topics && !done(r, start_ns);
		     t += slice_ns ? slices : 1) {
			if (!slice_ns && !wait_for_room(r, r->opt.window))
				break;
			snprintf(topic, sizeof(topic), "%s/cuff/p%04u/telemetry", r->opt.prefix,
				 t + 1);
			telemetry_payload(r, t, n++, payload, sizeof(payload));
			(void)send_one(r, topic, payload, 0); /* a refusal is counted */
		}
		slice = slice_ns ? (slice + 1) % slices : 0;
	}
}

static void run_outbox(struct run *r, uint64_t start_ns)
{
	char topic[TOPIC_MAX], payload[PAYLOAD_MAX];
	uint64_t n = 0;

	while (!done(r, start_ns) && wait_for_room(r, r->opt.window)) {
		unsigned t = (unsigned)(n % r->opt.topics);

		snprintf(topic, sizeof(topic), "%s/session/s%04u/event", r->opt.prefix, t + 1);
		event_payload(n++, t, payload, sizeof(payload));
		if (send_one(r, topic, payload, 1) < 0)
			wait_for_room(r, 1); /* Paho's buffer is full: let it drain a little */
	}
}

/* Waits until every accepted message completed, at most DRAIN_TIMEOUT_S. */
static void drain(struct run *r)
{
	uint64_t deadline = mono_ns() + (uint64_t)DRAIN_TIMEOUT_S * 1000000000u;

	atomic_store(&r->notify, true);
	while (r->sent > atomic_load(&r->completed) + atomic_load(&r->failed) &&
	       mono_ns() < deadline) {
		struct timespec ts;

		pthread_mutex_lock(&r->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		pthread_mutex_unlock(&r->lock);
	}
}

/* Sends DISCONNECT and waits (at most 2 s) until Paho is done with it. */
static void disconnect(struct run *r)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
	struct timespec deadline;

	if (!MQTTAsync_isConnected(r->handle))
		return;
	d.timeout = 1000;
	d.onSuccess5 = on_disconnected;
	d.onFailure5 = on_disconnect_failed;
	d.context = r;
	if (MQTTAsync_disconnect(r->handle, &d) != MQTTASYNC_SUCCESS)
		return; /* destroy closes the socket anyway */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	pthread_mutex_lock(&r->lock);
	while (!r->disconnected)
		if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&r->lock);
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void report(struct run *r, uint64_t start_ns, uint64_t sent_end_ns, double cpu)
{
	uint64_t completed = atomic_load(&r->completed);
	uint64_t last = atomic_load(&r->last_done_ns);
	double span = last > start_ns ? (double)(last - start_ns) / 1e9 : 0;
	double send_span = (double)(sent_end_ns - start_ns) / 1e9;
	json_t *j;
	char *text;

	j = json_pack("{s:s, s:s, s:i, s:i, s:f, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:f, s:f,"
		      " s:f, s:f, s:I, s:I, s:I, s:f}",
		      "tool", "bench_pub", "mode",
		      r->opt.mode == MODE_TELEMETRY ? "telemetry" : "outbox", "qos",
		      r->opt.mode == MODE_TELEMETRY ? 0 : 1, "topics", (int)r->opt.topics,
		      "rate_per_topic", r->opt.rate, "window", (int)r->opt.window, "sent",
		      (json_int_t)r->sent, "completed", (json_int_t)completed, "failed",
		      (json_int_t)atomic_load(&r->failed), "refused", (json_int_t)r->refused,
		      "outstanding_at_end",
		      (json_int_t)(r->sent - completed - atomic_load(&r->failed)),
		      "last_refusal_code", r->last_refusal, "send_s", send_span, "span_s", span,
		      "achieved_msgs_s", span > 0 ? (double)completed / span : 0.0,
		      "offered_msgs_s",
		      r->opt.mode == MODE_TELEMETRY ? r->opt.rate * r->opt.topics : 0.0,
		      "slices_late",
		      (json_int_t)r->slices_late, "max_late_us", (json_int_t)r->max_late_us,
		      "sample_epoch_ms", (json_int_t)r->sample_epoch_ms, "cpu_s", cpu);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (text)
		printf("%s\n", text);
	fflush(stdout);
	free(text);
	json_decref(j);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_pub --uri URI [--mode telemetry|outbox] [--topics N] [--rate HZ]\n"
		"                 [--samples K] [--duration S] [--count M] [--window W]\n"
		"                 [--prefix P] [--client-id ID] [--epoch-ms WALL_MS]\n");
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_double(const char *s, double max, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v >= 0 && v <= max))
		return false;
	*out = v;
	return true;
}

/* 0, or 2 after printing what was wrong. */
static int parse_args(int argc, char **argv, struct options *o)
{
	unsigned long long u;

	*o = (struct options){ .prefix = "bfr/v1/bench/pub", .client_id = NULL,
			       .mode = MODE_TELEMETRY, .topics = 100, .rate = 10, .samples = 5,
			       .duration_s = 10, .window = 0 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = v != NULL;

		if (strcmp(a, "--uri") == 0) {
			o->uri = v;
		} else if (strcmp(a, "--prefix") == 0) {
			o->prefix = v;
		} else if (strcmp(a, "--client-id") == 0) {
			o->client_id = v;
		} else if (strcmp(a, "--mode") == 0) {
			ok = v && (strcmp(v, "telemetry") == 0 || strcmp(v, "outbox") == 0);
			if (ok)
				o->mode = strcmp(v, "outbox") == 0 ? MODE_OUTBOX : MODE_TELEMETRY;
		} else if (strcmp(a, "--topics") == 0) {
			ok = parse_uint(v, 9999, &u) && u > 0;
			o->topics = (unsigned)u;
		} else if (strcmp(a, "--rate") == 0) {
			ok = parse_double(v, 1000, &o->rate);
		} else if (strcmp(a, "--samples") == 0) {
			ok = parse_uint(v, SAMPLES_MAX, &u) && u > 0;
			o->samples = (unsigned)u;
		} else if (strcmp(a, "--duration") == 0) {
			ok = parse_double(v, 86400, &o->duration_s);
		} else if (strcmp(a, "--count") == 0) {
			ok = parse_uint(v, UINT64_MAX, &u);
			o->count = u;
		} else if (strcmp(a, "--epoch-ms") == 0) {
			ok = parse_uint(v, UINT64_MAX, &u) && u > 0;
			o->epoch_ms = u;
		} else if (strcmp(a, "--window") == 0) {
			ok = parse_uint(v, MQTT_CLIENT_MAX_BUFFERED, &u) && u > 0;
			o->window = (unsigned)u;
		} else {
			fprintf(stderr, "bench_pub: unknown option %s\n", a);
			usage();
			return 2;
		}
		if (!ok) {
			fprintf(stderr, "bench_pub: bad or missing value for %s\n", a);
			usage();
			return 2;
		}
		i++;
	}
	if (!o->uri) {
		usage();
		return 2;
	}
	if (o->duration_s == 0 && o->count == 0) {
		fprintf(stderr, "bench_pub: --duration 0 needs --count\n");
		return 2;
	}
	if (o->window == 0)
		o->window = o->mode == MODE_OUTBOX ? PUBLISHER_WINDOW : MQTT_CLIENT_MAX_BUFFERED;
	return 0;
}

int main(int argc, char **argv)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sigaction sa = { .sa_handler = on_signal };
	char client_id[64];
	uint64_t start_ns, sent_end_ns;
	double cpu0;
	int status;

	if (!r)
		return 1;
	status = parse_args(argc, argv, &r->opt);
	if (status) {
		free(r);
		return status;
	}
	if (!r->opt.client_id) {
		snprintf(client_id, sizeof(client_id), "bench-pub-%d", (int)getpid());
		r->opt.client_id = client_id;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	status = 1;
	if (connect_broker(r) < 0)
		goto out;
	cpu0 = cpu_s();
	/* A second back, so the oldest sample of the first message has t_ms > 0. */
	r->sample_epoch_ms = r->opt.epoch_ms ? r->opt.epoch_ms : wall_ms() - 1000u;
	if (r->sample_epoch_ms + 1000u > wall_ms()) {
		fprintf(stderr, "bench_pub: --epoch-ms must be at least 1 s in the past\n");
		goto out;
	}
	atomic_store(&r->notify, r->opt.mode == MODE_OUTBOX || r->opt.rate == 0);
	start_ns = mono_ns();
	if (r->opt.mode == MODE_TELEMETRY)
		run_telemetry(r, start_ns);
	else
		run_outbox(r, start_ns);
	sent_end_ns = mono_ns();
	drain(r);
	report(r, start_ns, sent_end_ns, cpu_s() - cpu0);
	status = 0;
out:
	if (r->handle) {
		disconnect(r);
		MQTTAsync_destroy(&r->handle);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return status;
}
