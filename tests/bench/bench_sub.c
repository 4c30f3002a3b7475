/*
 * bench_sub.c - the measuring subscriber of issue 13: counts what arrives per
 * topic family and measures two latencies, at tens of thousands of messages
 * per second, cheaply enough not to be the limit (bench_smoke.py and
 * bench_scale.py check it against bench_pub at the same rate).
 *
 *   bench_sub --uri URI [-t FILTER]... [--qos Q] [--prefix-levels L]
 *             [--epoch ID_PREFIX=WALL_MS]... [--sample-period-ms P]
 *             [--expect-cuffs N] [--no-parse] [--duration S] [--client-id ID]
 *
 * Families: the topic without its first L levels (default 4,
 * bfr/v1/{site}/{gateway}), its second level replaced by "+"
 * (cuff/+/telemetry, cuff/+/state, session/+/event, alarm/+); replies are
 * one family, reply/#. At most FAMILIES_MAX; the rest count as "other".
 *
 * Per message (unless --no-parse; payloads are parsed with jansson):
 * - lat_ms: receipt wall clock - the envelope's `ts` (when the sender
 *   composed it; both ms, so ±1 ms);
 * - age_ms (telemetry): receipt - the newest sample's t_ms on the sender's
 *   clock, for cuff ids that start with an --epoch prefix (the wall time of
 *   that clock's t_ms 0: cuffsim's start, or bench_pub's sample_epoch_ms).
 *   For the gateway this is the lag of issue 13 (it includes the telemetry
 *   batching, up to 1/telemetry_hz);
 * - samples_missing / samples_out_of_order (telemetry, with
 *   --sample-period-ms): a message whose first sample is more than 1.5
 *   periods after the previous message's last sample of the same cuff
 *   misses (gap / period - 1) samples: telemetry lost anywhere between the
 *   cuff and here;
 * - cuff/+/state: the cuff's `link`; with --expect-cuffs N the line
 *   "connected N WALL_MS" is printed the first time N cuffs are "connected".
 *
 * stdin, one command per line: "phase NAME" prints the figures of the phase
 * so far as "phase {json}" and starts phase NAME; "count" prints "count N",
 * the messages of the phase so far; "quit" (or end of input,
 * unless --duration is given) prints the last phase and exits. stdout also
 * gets "ready" once every subscription is granted. Counters and histograms
 * (1 ms bins up to HIST_MS, the maximum exact) are per phase; link states
 * are not.
 *
 * Threads: Paho's receive thread runs on_message; everything it updates is
 * under `lock`, which the main thread takes to switch phases.
 */
#include <MQTTAsync.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define FILTERS_MAX 16
#define EPOCHS_MAX 16
#define FAMILIES_MAX 32
#define FAMILY_NAME_MAX 96
#define HIST_MS 10000
#define CUFFS_CAP 16384 /* hash table slots: more than any gateway's cuffs */
#define ID_MAX 64

enum link { LINK_UNKNOWN, LINK_CONNECTED, LINK_OTHER };

struct hist {
	uint64_t n;
	uint64_t negative; /* receipt before the stamp: clocks or ms rounding */
	int64_t max;
	uint64_t bins[HIST_MS + 1]; /* the last bin: HIST_MS and above */
};

struct family {
	char name[FAMILY_NAME_MAX];
	uint64_t msgs, bytes, samples, no_ts, bad_json;
	struct hist lat, age;
};

struct cuff {
	bool used;
	char id[ID_MAX + 1];
	enum link link;
	bool has_epoch;
	int64_t epoch_ms;
	bool have_last;
	int64_t last_t_ms; /* newest sample seen (all phases) */
	uint64_t phase_msgs;
};

struct epoch {
	const char *prefix;
	int64_t wall_ms;
};

struct options {
	const char *uri;
	const char *client_id;
	const char *filters[FILTERS_MAX];
	int n_filters;
	int qos;
	int prefix_levels;
	struct epoch epochs[EPOCHS_MAX];
	int n_epochs;
	int64_t sample_period_ms;
	unsigned expect_cuffs;
	bool no_parse;
	double duration_s;
};

struct sub {
	struct options opt;
	MQTTAsync handle;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool connect_done, connect_ok;
	int granted, refused;
	bool lost;
	bool disconnected;

	/* Per phase. */
	char phase[64];
	int64_t phase_t0_ms;
	double phase_cpu0;
	struct family families[FAMILIES_MAX];
	int n_families;
	struct family other;
	uint64_t samples_missing, samples_out_of_order;

	/* Across phases. */
	struct cuff cuffs[CUFFS_CAP];
	unsigned n_cuffs;
	unsigned connected;
	bool connected_reported;
	uint64_t cuff_table_full;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- figures ------------------------------------------------------------- */

static void hist_add(struct hist *h, int64_t v)
{
	if (v < 0) {
		h->negative++;
		v = 0;
	}
	h->n++;
	if (v > h->max)
		h->max = v;
	h->bins[v < HIST_MS ? v : HIST_MS]++;
}

/* Nearest rank, like benchlib.pct(); the overflow bin answers with the max. */
static int64_t hist_pct(const struct hist *h, double p)
{
	uint64_t rank = (uint64_t)((p / 100.0) * (double)h->n + 0.999999999);
	uint64_t seen = 0;

	if (rank == 0)
		rank = 1;
	for (int64_t v = 0; v < HIST_MS; v++) {
		seen += h->bins[v];
		if (seen >= rank)
			return v;
	}
	return h->max;
}

static json_t *hist_json(const struct hist *h)
{
	json_t *bins, *j;

	if (h->n == 0)
		return json_null();
	bins = json_array();
	for (int64_t v = 0; v <= HIST_MS && bins; v++)
		if (h->bins[v])
			json_array_append_new(bins, json_pack("[I,I]", (json_int_t)v,
							      (json_int_t)h->bins[v]));
	j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o*}", "n", (json_int_t)h->n,
		      "p50", (json_int_t)hist_pct(h, 50), "p90", (json_int_t)hist_pct(h, 90),
		      "p99", (json_int_t)hist_pct(h, 99), "p999", (json_int_t)hist_pct(h, 99.9),
		      "max", (json_int_t)h->max, "negative", (json_int_t)h->negative, "hist",
		      bins);
	return j;
}

/* Replaces the second level with "+", reply/... with reply/#. */
static void family_name(const struct sub *s, const char *topic, char *out, size_t len)
{
	const char *rest = topic, *p;
	size_t l1, i = 0;

	for (int skipped = 0; skipped < s->opt.prefix_levels; skipped++) {
		rest = strchr(rest, '/');
		if (!rest) {
			snprintf(out, len, "(short topic)");
			return;
		}
		rest++;
	}
	l1 = strcspn(rest, "/");
	if (l1 == 5 && strncmp(rest, "reply", 5) == 0) {
		snprintf(out, len, "reply/#");
		return;
	}
	if (!rest[l1]) {
		snprintf(out, len, "%s", rest);
		return;
	}
	p = strchr(rest + l1 + 1, '/');
	i = (size_t)snprintf(out, len, "%.*s/+", (int)l1, rest);
	if (p && i < len)
		snprintf(out + i, len - i, "%s", p);
}

/* Caller holds the lock. */
static struct family *family_for(struct sub *s, const char *name)
{
	for (int i = 0; i < s->n_families; i++)
		if (strcmp(s->families[i].name, name) == 0)
			return &s->families[i];
	if (s->n_families == FAMILIES_MAX)
		return &s->other;
	snprintf(s->families[s->n_families].name, FAMILY_NAME_MAX, "%s", name);
	return &s->families[s->n_families++];
}

static uint32_t hash_id(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h;
}

/* Caller holds the lock. NULL when the table is full. */
static struct cuff *cuff_for(struct sub *s, const char *id)
{
	uint32_t i = hash_id(id) & (CUFFS_CAP - 1);
	struct cuff *c = NULL;
	size_t best = 0;

	for (unsigned probe = 0; probe < CUFFS_CAP; probe++, i = (i + 1) & (CUFFS_CAP - 1)) {
		c = &s->cuffs[i];
		if (c->used && strcmp(c->id, id) == 0)
			return c;
		if (!c->used)
			break;
	}
	if (c->used || s->n_cuffs >= CUFFS_CAP / 2) {
		s->cuff_table_full++;
		return NULL;
	}
	c->used = true;
	snprintf(c->id, sizeof(c->id), "%s", id);
	for (int e = 0; e < s->opt.n_epochs; e++) {
		size_t l = strlen(s->opt.epochs[e].prefix);

		/* The longest matching prefix wins. */
		if (strncmp(id, s->opt.epochs[e].prefix, l) == 0 && (!c->has_epoch || l > best)) {
			c->has_epoch = true;
			c->epoch_ms = s->opt.epochs[e].wall_ms;
			best = l;
		}
	}
	s->n_cuffs++;
	return c;
}

/* "2026-11-24T09:30:00.123Z" -> ms since the epoch; -1 if it is not that. */
static int64_t parse_ts(const char *t)
{
	static const int pos[] = { 0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22 };
	int d[sizeof(pos) / sizeof(pos[0])];
	int64_t y, m, day, era, yoe, doy, doe, days;

	if (strlen(t) != 24 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
	    t[16] != ':' || t[19] != '.' || t[23] != 'Z')
		return -1;
	for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		if (t[pos[i]] < '0' || t[pos[i]] > '9')
			return -1;
		d[i] = t[pos[i]] - '0';
	}
	y = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3];
	m = d[4] * 10 + d[5];
	day = d[6] * 10 + d[7];
	/* Days from civil (H. Hinnant's algorithm), proleptic Gregorian. */
	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	days = era * 146097 + doe - 719468;
	return ((days * 24 + d[8] * 10 + d[9]) * 60 + d[10] * 10 + d[11]) * 60000 +
	       (d[12] * 10 + d[13]) * 1000 + d[14] * 100 + d[15] * 10 + d[16];
}

/* Caller holds the lock. */
static void note_link(struct sub *s, struct cuff *c, const char *link, int64_t now)
{
	enum link l = strcmp(link, "connected") == 0 ? LINK_CONNECTED : LINK_OTHER;

	if (c->link == LINK_CONNECTED && l != LINK_CONNECTED)
		s->connected--;
	else if (c->link != LINK_CONNECTED && l == LINK_CONNECTED)
		s->connected++;
	c->link = l;
	if (s->opt.expect_cuffs && !s->connected_reported && s->connected >= s->opt.expect_cuffs) {
		s->connected_reported = true;
		printf("connected %u %" PRId64 "\n", s->connected, now);
		fflush(stdout);
	}
}

/* Caller holds the lock. */
static void note_samples(struct sub *s, struct family *f, struct cuff *c, json_t *samples,
			 int64_t now)
{
	size_t n = json_array_size(samples);
	json_int_t first, newest;

	if (n == 0)
		return;
	f->samples += n;
	first = json_integer_value(json_array_get(json_array_get(samples, 0), 0));
	newest = json_integer_value(json_array_get(json_array_get(samples, n - 1), 0));
	if (!c)
		return;
	c->phase_msgs++;
	if (c->has_epoch)
		hist_add(&f->age, now - (c->epoch_ms + newest));
	if (s->opt.sample_period_ms && c->have_last) {
		int64_t gap = first - c->last_t_ms;

		if (gap <= 0)
			s->samples_out_of_order++;
		else if (gap * 2 > s->opt.sample_period_ms * 3)
			s->samples_missing += (uint64_t)((gap + s->opt.sample_period_ms / 2) /
							 s->opt.sample_period_ms - 1);
	}
	if (!c->have_last || newest > c->last_t_ms)
		c->last_t_ms = newest;
	c->have_last = true;
}

/* ---- Paho's threads ------------------------------------------------------ */

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct sub *s = context;
	int64_t now = wall_ms();
	char name[FAMILY_NAME_MAX];
	json_t *p = NULL;
	struct family *f;

	(void)topic_len; /* Paho NUL-terminates the topic */
	family_name(s, topic, name, sizeof(name));
	if (!s->opt.no_parse && m->payloadlen > 0)
		p = json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL);
	pthread_mutex_lock(&s->lock);
	f = family_for(s, name);
	f->msgs++;
	f->bytes += (uint64_t)(m->payloadlen > 0 ? m->payloadlen : 0);
	if (!s->opt.no_parse && m->payloadlen > 0 && !json_is_object(p)) {
		f->bad_json++;
	} else if (p) {
		const char *ts = json_string_value(json_object_get(p, "ts"));
		const char *id = json_string_value(json_object_get(p, "cuff"));
		const char *link = json_string_value(json_object_get(p, "link"));
		json_t *samples = json_object_get(p, "samples");
		struct cuff *c = id && strlen(id) <= ID_MAX ? cuff_for(s, id) : NULL;
		int64_t t = ts ? parse_ts(ts) : -1;

		if (t < 0)
			f->no_ts++;
		else
			hist_add(&f->lat, now - t);
		if (c && link)
			note_link(s, c, link, now);
		if (json_is_array(samples))
			note_samples(s, f, c, samples, now);
	}
	pthread_mutex_unlock(&s->lock);
	json_decref(p);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void wake(struct sub *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_connect_ok(void *context, MQTTAsync_successData5 *response)
{
	struct sub *s = context;

	(void)response;
	pthread_mutex_lock(&s->lock);
	s->connect_done = s->connect_ok = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_connect_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct sub *s = context;

	fprintf(stderr, "bench_sub: connect failed: %s (code %d)\n",
		response && response->message ? response->message : "?",
		response ? response->code : 0);
	pthread_mutex_lock(&s->lock);
	s->connect_done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_subscribed(void *context, MQTTAsync_successData5 *response)
{
	struct sub *s = context;

	pthread_mutex_lock(&s->lock);
	if (response && response->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR)
		s->refused++;
	else
		s->granted++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_subscribe_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct sub *s = context;

	(void)response;
	pthread_mutex_lock(&s->lock);
	s->refused++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_disconnected(void *context, MQTTAsync_successData5 *response)
{
	struct sub *s = context;

	(void)response;
	pthread_mutex_lock(&s->lock);
	s->disconnected = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_disconnect_failed(void *context, MQTTAsync_failureData5 *response)
{
	(void)response;
	on_disconnected(context, NULL);
}

static void on_lost(void *context, char *cause)
{
	struct sub *s = context;

	fprintf(stderr, "bench_sub: connection lost: %s\n", cause ? cause : "?");
	pthread_mutex_lock(&s->lock);
	s->lost = true;
	pthread_mutex_unlock(&s->lock);
	stop_requested = 1;
	wake(s);
}

/* ---- main thread ----------------------------------------------------------- */

/* Waits on cond for pred, at most timeout_s; the caller holds the lock. */
static bool wait_locked(struct sub *s, bool (*pred)(const struct sub *), int timeout_s)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_s;
	while (!pred(s) && !stop_requested)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == ETIMEDOUT)
			break;
	return pred(s);
}

static bool connect_answered(const struct sub *s)
{
	return s->connect_done;
}

static bool subscriptions_answered(const struct sub *s)
{
	return s->granted + s->refused >= s->opt.n_filters;
}

static bool disconnect_answered(const struct sub *s)
{
	return s->disconnected;
}

/* A clean DISCONNECT, so the broker logs no socket error; at most 2 s. */
static void disconnect(struct sub *s)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;

	if (!MQTTAsync_isConnected(s->handle))
		return;
	d.timeout = 1000;
	d.onSuccess5 = on_disconnected;
	d.onFailure5 = on_disconnect_failed;
	d.context = s;
	if (MQTTAsync_disconnect(s->handle, &d) != MQTTASYNC_SUCCESS)
		return; /* destroy closes the socket anyway */
	pthread_mutex_lock(&s->lock);
	wait_locked(s, disconnect_answered, 2);
	pthread_mutex_unlock(&s->lock);
}

static int connect_and_subscribe(struct sub *s)
{
	MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer5;
	sigset_t all, saved;
	bool ok;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	rc = MQTTAsync_createWithOptions(&s->handle, s->opt.uri, s->opt.client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &copts);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setCallbacks(s->handle, s, on_lost, on_message, NULL);
	opts.keepAliveInterval = 30;
	opts.cleanstart = 1;
	opts.connectTimeout = 10;
	opts.onSuccess5 = on_connect_ok;
	opts.onFailure5 = on_connect_failed;
	opts.context = s;
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_connect(s->handle, &opts);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "bench_sub: cannot connect to %s: Paho code %d\n", s->opt.uri, rc);
		return -EIO;
	}
	pthread_mutex_lock(&s->lock);
	ok = wait_locked(s, connect_answered, 15) && s->connect_ok;
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		return -EIO;
	for (int i = 0; i < s->opt.n_filters; i++) {
		MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;

		ropts.onSuccess5 = on_subscribed;
		ropts.onFailure5 = on_subscribe_failed;
		ropts.context = s;
		rc = MQTTAsync_subscribe(s->handle, s->opt.filters[i], s->opt.qos, &ropts);
		if (rc != MQTTASYNC_SUCCESS) {
			fprintf(stderr, "bench_sub: subscribe %s: Paho code %d\n",
				s->opt.filters[i], rc);
			return -EIO;
		}
	}
	pthread_mutex_lock(&s->lock);
	ok = wait_locked(s, subscriptions_answered, 15) && s->refused == 0;
	pthread_mutex_unlock(&s->lock);
	if (!ok) {
		fprintf(stderr, "bench_sub: subscriptions not granted\n");
		return -EIO;
	}
	return 0;
}

static json_t *family_json(const struct family *f, double span_s)
{
	return json_pack("{s:I, s:I, s:f, s:I, s:I, s:I, s:o, s:o}", "msgs", (json_int_t)f->msgs,
			 "bytes", (json_int_t)f->bytes, "msgs_s",
			 span_s > 0 ? (double)f->msgs / span_s : 0.0, "samples",
			 (json_int_t)f->samples, "no_ts", (json_int_t)f->no_ts, "bad_json",
			 (json_int_t)f->bad_json, "lat_ms", hist_json(&f->lat), "age_ms",
			 hist_json(&f->age));
}

/* Per-cuff telemetry messages of the phase: cuffs that sent any, min, max. */
static json_t *cuffs_json(const struct sub *s)
{
	uint64_t min = UINT64_MAX, max = 0, seen = 0;

	for (unsigned i = 0; i < CUFFS_CAP; i++) {
		const struct cuff *c = &s->cuffs[i];

		if (!c->used)
			continue;
		seen += c->phase_msgs > 0;
		if (c->phase_msgs < min)
			min = c->phase_msgs;
		if (c->phase_msgs > max)
			max = c->phase_msgs;
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "known", (json_int_t)s->n_cuffs,
			 "with_telemetry", (json_int_t)seen, "msgs_min",
			 (json_int_t)(s->n_cuffs ? min : 0), "msgs_max", (json_int_t)max,
			 "connected", (json_int_t)s->connected);
}

/* Prints the phase so far and starts `next` (NULL: none). Takes the lock. */
static void end_phase(struct sub *s, const char *next)
{
	int64_t now = wall_ms();
	double cpu = cpu_s(), span;
	json_t *fam, *j;
	char *text;

	pthread_mutex_lock(&s->lock);
	span = (double)(now - s->phase_t0_ms) / 1000.0;
	fam = json_object();
	for (int i = 0; fam && i < s->n_families; i++)
		json_object_set_new(fam, s->families[i].name, family_json(&s->families[i], span));
	if (fam && s->other.msgs)
		json_object_set_new(fam, "other", family_json(&s->other, span));
	j = json_pack("{s:s, s:I, s:I, s:f, s:f, s:o*, s:o*, s:I, s:I, s:I, s:b}", "phase",
		      s->phase, "t0_ms", (json_int_t)s->phase_t0_ms, "t1_ms", (json_int_t)now,
		      "span_s", span, "cpu_s", cpu - s->phase_cpu0, "families", fam, "cuffs",
		      cuffs_json(s), "samples_missing", (json_int_t)s->samples_missing,
		      "samples_out_of_order", (json_int_t)s->samples_out_of_order,
		      "cuff_table_full", (json_int_t)s->cuff_table_full, "connection_lost",
		      s->lost);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	printf("phase %s\n", text ? text : "{\"error\":\"out of memory\"}");
	fflush(stdout);
	free(text);
	json_decref(j);
	if (next) {
		snprintf(s->phase, sizeof(s->phase), "%s", next);
		s->phase_t0_ms = now;
		s->phase_cpu0 = cpu;
		memset(s->families, 0, sizeof(s->families));
		memset(&s->other, 0, sizeof(s->other));
		snprintf(s->other.name, sizeof(s->other.name), "other");
		s->n_families = 0;
		s->samples_missing = s->samples_out_of_order = 0;
		for (unsigned i = 0; i < CUFFS_CAP; i++)
			s->cuffs[i].phase_msgs = 0;
	}
	pthread_mutex_unlock(&s->lock);
}

/* "count N": messages received in this phase so far, every family. */
static void print_count(struct sub *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->other.msgs;
	for (int i = 0; i < s->n_families; i++)
		n += s->families[i].msgs;
	pthread_mutex_unlock(&s->lock);
	printf("count %" PRIu64 "\n", n);
	fflush(stdout);
}

/* Reads commands until quit, end of input (without --duration) or the duration. */
static void command_loop(struct sub *s)
{
	char line[256];
	double deadline = s->opt.duration_s > 0 ? (double)wall_ms() + s->opt.duration_s * 1000 : 0;
	bool stdin_open = true;

	while (!stop_requested) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		int timeout = 200;

		if (deadline && (double)wall_ms() >= deadline)
			return;
		if (!stdin_open) {
			poll(NULL, 0, timeout); /* only the duration or a signal ends it now */
			continue;
		}
		if (poll(&pfd, 1, timeout) <= 0)
			continue;
		if (!fgets(line, sizeof(line), stdin)) {
			if (!deadline)
				return;
			stdin_open = false;
			continue;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "phase ", 6) == 0 && line[6])
			end_phase(s, line + 6);
		else if (strcmp(line, "count") == 0)
			print_count(s);
		else if (strcmp(line, "quit") == 0)
			return;
		else if (line[0])
			fprintf(stderr,
				"bench_sub: unknown command \"%s\" (phase NAME, count, quit)\n",
				line);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_sub --uri URI [-t FILTER]... [--qos 0|1] [--prefix-levels L]\n"
		"                 [--epoch ID_PREFIX=WALL_MS]... [--sample-period-ms P]\n"
		"                 [--expect-cuffs N] [--no-parse] [--duration S] [--client-id ID]\n");
}

static bool parse_long(const char *v, long long min, long long max, long long *out)
{
	char *end;
	long long x;

	if (!v || !*v)
		return false;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || *end || x < min || x > max)
		return false;
	*out = x;
	return true;
}

static bool parse_epoch(char *v, struct options *o)
{
	char *eq = v ? strchr(v, '=') : NULL;
	long long ms;

	if (!eq || eq == v || o->n_epochs == EPOCHS_MAX || !parse_long(eq + 1, 0, INT64_MAX, &ms))
		return false;
	*eq = '\0';
	o->epochs[o->n_epochs].prefix = v;
	o->epochs[o->n_epochs++].wall_ms = ms;
	return true;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	long long x;

	*o = (struct options){ .prefix_levels = 4 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = v != NULL;

		if (strcmp(a, "--no-parse") == 0) {
			o->no_parse = true;
			continue;
		}
		if (strcmp(a, "--uri") == 0) {
			o->uri = v;
		} else if (strcmp(a, "--client-id") == 0) {
			o->client_id = v;
		} else if (strcmp(a, "-t") == 0) {
			ok = v && o->n_filters < FILTERS_MAX;
			if (ok)
				o->filters[o->n_filters++] = v;
		} else if (strcmp(a, "--qos") == 0) {
			ok = parse_long(v, 0, 1, &x);
			o->qos = (int)x;
		} else if (strcmp(a, "--prefix-levels") == 0) {
			ok = parse_long(v, 0, 16, &x);
			o->prefix_levels = (int)x;
		} else if (strcmp(a, "--epoch") == 0) {
			ok = parse_epoch(v, o);
		} else if (strcmp(a, "--sample-period-ms") == 0) {
			ok = parse_long(v, 0, 60000, &x);
			o->sample_period_ms = x;
		} else if (strcmp(a, "--expect-cuffs") == 0) {
			ok = parse_long(v, 0, CUFFS_CAP / 2, &x);
			o->expect_cuffs = (unsigned)x;
		} else if (strcmp(a, "--duration") == 0) {
			ok = parse_long(v, 0, 86400, &x);
			o->duration_s = (double)x;
		} else {
			fprintf(stderr, "bench_sub: unknown option %s\n", a);
			usage();
			return 2;
		}
		if (!ok) {
			fprintf(stderr, "bench_sub: bad or missing value for %s\n", a);
			usage();
			return 2;
		}
		i++;
	}
	if (!o->uri) {
		usage();
		return 2;
	}
	if (o->n_filters == 0)
		o->filters[o->n_filters++] = "bfr/v1/#";
	return 0;
}

int main(int argc, char **argv)
{
	struct sub *s = calloc(1, sizeof(*s));
	struct sigaction sa = { .sa_handler = on_signal };
	char client_id[64];
	int status;

	if (!s)
		return 1;
	status = parse_args(argc, argv, &s->opt);
	if (status) {
		free(s);
		return status;
	}
	if (!s->opt.client_id) {
		snprintf(client_id, sizeof(client_id), "bench-sub-%d", (int)getpid());
		s->opt.client_id = client_id;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	snprintf(s->phase, sizeof(s->phase), "start");
	snprintf(s->other.name, sizeof(s->other.name), "other");
	s->phase_t0_ms = wall_ms();
	s->phase_cpu0 = cpu_s();
	status = 1;
	if (connect_and_subscribe(s) == 0) {
		printf("ready\n");
		fflush(stdout);
		command_loop(s);
		end_phase(s, NULL);
		status = s->lost ? 1 : 0;
	}
	if (s->handle) {
		stop_requested = 0; /* wait_locked() gives up on a stop request */
		disconnect(s);
		MQTTAsync_destroy(&s->handle);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return status;
}
