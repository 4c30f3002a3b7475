/* reporter.c - see reporter.h. */
#include "reporter.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "messages.h"
#include "telemetry_json.h"

#define STATE_ALARMS_MAX 64 /* alarm ids listed in one cuff state */
#define STATUS_DEPTH_STEP 100 /* republish status when the backlog moved this much */
#define SESSIONS_MAX 256      /* ids listed in the sessions index */
#define GATEWAY_ALARMS_MAX 16 /* open gateway-wide alarms: one per gateway-wide code */

struct cuff_report {
	struct msg_telemetry_sample tele[MSG_TELEMETRY_MAX];
	size_t n_tele;
	/* Made once: the telemetry topic and the cuff id as a JSON string
	 * (NULL if that failed: then the jansson builder is used). */
	char *tele_topic;
	char *tele_cuff_quoted;
	bool state_dirty;
	uint64_t state_published_ms;
};

struct reporter {
	struct reporter_deps deps;
	struct cuff_report *per_cuff; /* by cuff_index */
	uint64_t telemetry_timer;
	unsigned telemetry_slice;
	uint64_t telemetry_due_ms; /* when the next slice is due (monotonic) */
	uint64_t housekeeping_timer;
	uint64_t state_timer; /* the next rate-limited cuff state */
	uint64_t state_post;  /* urgent cuff states, after this batch */
	size_t published_outbox_depth;
	char *published_sessions; /* the index last published, as JSON text of the ids */
	bool stopped;
	/* The open gateway-wide alarms (seqs, raise order) the cuff states list. */
	uint64_t wide_seqs[GATEWAY_ALARMS_MAX];
	size_t n_wide;
	/* Telemetry text without a jansson tree (telemetry_json.h). */
	bool tele_fast;
	struct telemetry_json tele_json;
	char tele_text[TELEMETRY_JSON_MAX];
};

/* --- cuff state ----------------------------------------------------------- */

static const char *cuff_state_name(const struct cuff_reading *r)
{
	if (!r->have_status || r->link != CUFF_LINK_READY)
		return NULL;
	switch (r->status.state) {
	case BFR_STATE_IDLE:
		return "idle";
	case BFR_STATE_INFLATING:
		return "inflating";
	case BFR_STATE_HOLDING:
		return "holding";
	case BFR_STATE_DEFLATING:
		return "deflating";
	case BFR_STATE_MEASURING_LOP:
		return "measuring_lop";
	default:
		return "fault";
	}
}

static const char *link_text(const struct cuff_reading *r)
{
	switch (r->link) {
	case CUFF_LINK_READY:
		return "connected";
	case CUFF_LINK_CONNECTING:
	case CUFF_LINK_DISCOVERING:
		return "connecting";
	case CUFF_LINK_BACKOFF:
		/* A cuff that never worked (no Bluetooth, bad address) is an error. */
		return r->was_ready ? "disconnected" : "error";
	default:
		return "disconnected";
	}
}

/*
 * A cuff's alarms_active also lists the open gateway-wide alarms (cuff:
 * null), merged into its own (open[0..n), raise order) by seq. A
 * gateway-wide alarm concerns every cuff (an unacknowledged estop blocks
 * each one's inflation), so a dashboard sees it on every tile.
 */
static size_t with_gateway_alarms(struct reporter *rep, const struct alarm_record **open,
				  size_t n)
{
	const struct alarm_record *wide[GATEWAY_ALARMS_MAX];
	size_t n_wide = 0;

	/* More than GATEWAY_ALARMS_MAX cannot be open: one per gateway-wide code. */
	(void)alarm_list_open(alarms_table(rep->deps.alarms), "", wide, GATEWAY_ALARMS_MAX,
			      &n_wide);
	for (size_t k = 0; k < n_wide && k < GATEWAY_ALARMS_MAX && n < STATE_ALARMS_MAX; k++) {
		size_t i = n++;

		for (; i > 0 && open[i - 1]->seq > wide[k]->seq; i--)
			open[i] = open[i - 1];
		open[i] = wide[k];
	}
	return n;
}

/* What the gateway can no longer vouch for once it stops: link unknown. */
static void publish_cuff_state_as(struct reporter *rep, struct cuff *c, const char *link_override,
				  uint32_t expiry_s);

static void publish_cuff_state(struct reporter *rep, struct cuff *c)
{
	publish_cuff_state_as(rep, c, NULL, REPORTER_STATE_EXPIRY_S);
}

static void publish_cuff_state_as(struct reporter *rep, struct cuff *c, const char *link_override,
				  uint32_t expiry_s)
{
	struct cuff_report *cr = &rep->per_cuff[cuff_index(c)];
	const struct alarm_record *open[STATE_ALARMS_MAX];
	const char *ids[STATE_ALARMS_MAX];
	struct cuff_reading rd;
	struct msg_cuff_state st;
	char topic[TOPIC_MAX];
	size_t n_open = 0;
	uint64_t wall = payload_wall_ms(rep->deps.ctx);
	bool live, measuring;
	json_t *p;

	cuff_read(c, &rd);
	live = rd.link == CUFF_LINK_READY && rd.have_sample && !link_override;
	measuring = live && (rd.measuring_lop || (rd.have_status &&
						  rd.status.state == BFR_STATE_MEASURING_LOP));
	/* More than STATE_ALARMS_MAX open on one cuff cannot happen: one per code. */
	(void)alarm_list_open(alarms_table(rep->deps.alarms), cuff_id(c), open, STATE_ALARMS_MAX,
			      &n_open);
	if (n_open > STATE_ALARMS_MAX)
		n_open = STATE_ALARMS_MAX;
	n_open = with_gateway_alarms(rep, open, n_open);
	for (size_t i = 0; i < n_open; i++)
		ids[i] = open[i]->alarm_id;
	st = (struct msg_cuff_state){
		.cuff = cuff_id(c),
		.link = link_override ? link_override : link_text(&rd),
		.link_error = link_override				  ? "the gateway stopped"
			      : rd.link != CUFF_LINK_READY ? rd.link_error
							   : NULL,
		.pressure_mmhg = live ? rd.pressure : NAN,
		/* A LOP search ramps up to its ceiling: that is not a target. */
		.target_mmhg = live && !measuring ? rd.reported_target : NAN,
		.battery_pct = rd.battery_pct,
		.lop_mmhg = rd.lop_mmhg,
		.session_id = rd.session_id,
		.alarm_ids = ids,
		.n_alarms = n_open,
		.cuff_state = cuff_state_name(&rd),
		.limb = config_limb_name(cuff_config(c)->limb),
		.status_bits = live ? (int)rd.status_bits : -1,
		.label = cuff_config(c)->label,
		.serial = rd.info->serial,
		.model = rd.info->model,
		.firmware = rd.info->firmware,
		.lop_measured_wall_ms = rd.lop_age_ms >= 0 && (uint64_t)rd.lop_age_ms < wall
						? wall - (uint64_t)rd.lop_age_ms
						: 0,
		.data_age_ms = live ? (int64_t)rd.sample_age_ms : -1,
		.measuring_lop = measuring,
		.lop_search_mmhg = measuring ? rd.pressure : NAN,
	};
	p = msg_cuff_state(rep->deps.ctx, &st);
	/* A snapshot: while disconnected there is nobody to tell, and every
	 * connect publishes all of them again (reporter_connected). */
	if (p && payload_topic(rep->deps.ctx, topic, sizeof(topic), "cuff/%s/state",
			       cuff_id(c)) == 0)
		(void)publisher_snapshot(rep->deps.pub, topic, p, expiry_s);
	json_decref(p);
	cr->state_dirty = false;
	cr->state_published_ms = loop_now_ms(rep->deps.loop);
}

/* The retained index of the running sessions, when it changed (or always). */
static void publish_sessions(struct reporter *rep, bool always)
{
	const char *ids[SESSIONS_MAX];
	size_t n = runner_active(rep->deps.runner, ids, SESSIONS_MAX);
	json_t *p, *active;
	char topic[TOPIC_MAX], *text;

	if (n > SESSIONS_MAX)
		n = SESSIONS_MAX; /* cannot happen: one session per cuff at most */
	p = msg_sessions(rep->deps.ctx, ids, n);
	active = p ? json_object_get(p, "active") : NULL;
	text = active ? json_dumps(active, JSON_COMPACT) : NULL;
	if (text && (always || !rep->published_sessions ||
		     strcmp(text, rep->published_sessions) != 0) &&
	    payload_topic(rep->deps.ctx, topic, sizeof(topic), "sessions") == 0 &&
	    publisher_snapshot(rep->deps.pub, topic, p, 0) == 0) {
		free(rep->published_sessions);
		rep->published_sessions = text;
		text = NULL;
	}
	free(text);
	json_decref(p);
}

/*
 * Publishes the dirty states whose rate limit allows it; a timer for the
 * rest. At most REPORTER_STATE_BATCH per call, the others in the next turn
 * of the loop (the post hook again), after whatever io is ready: when every
 * cuff goes over the limit at once, every cuff state changes, and 500 of
 * them in one hook (about 10 us each) kept the notifications still
 * arriving, and their DEFLATEs, waiting up to 4.9 ms (uprobes, 500 cuffs;
 * docs/benchmarks.md).
 */
static void flush_states(struct reporter *rep)
{
	uint64_t now = loop_now_ms(rep->deps.loop);
	uint64_t next = UINT64_MAX;
	size_t published = 0;

	for (size_t i = 0; i < rep->deps.n_cuffs; i++) {
		struct cuff_report *cr = &rep->per_cuff[i];

		if (!cr->state_dirty)
			continue;
		if (published == REPORTER_STATE_BATCH) {
			if (!rep->stopped)
				(void)loop_post_schedule(rep->deps.loop, rep->state_post); /* ours */
			return;
		}
		if (cr->state_published_ms == 0 ||
		    now - cr->state_published_ms >= REPORTER_STATE_MIN_MS) {
			publish_cuff_state(rep, rep->deps.cuffs[i]);
			published++;
		} else if (cr->state_published_ms + REPORTER_STATE_MIN_MS < next) {
			next = cr->state_published_ms + REPORTER_STATE_MIN_MS;
		}
	}
	if (next != UINT64_MAX && !rep->stopped &&
	    loop_timer_start(rep->deps.loop, rep->state_timer, next - now, 0) < 0)
		log_error("reporter: cannot arm the state timer");
}

static void on_state_timer(struct loop *loop, uint64_t id, void *user_data)
{
	flush_states(user_data);
}

static void on_state_post(struct loop *loop, void *user_data)
{
	flush_states(user_data);
}

void reporter_cuff_changed(struct reporter *rep, struct cuff *c, bool urgent)
{
	rep->per_cuff[cuff_index(c)].state_dirty = true;
	/* Discrete changes (link, alarms, session, LOP) go out within 200 ms. */
	if (urgent && !rep->stopped)
		(void)loop_post_schedule(rep->deps.loop, rep->state_post); /* registered: 0 */
}

void reporter_gateway_alarms_changed(struct reporter *rep, bool urgent)
{
	for (size_t i = 0; i < rep->deps.n_cuffs; i++)
		reporter_cuff_changed(rep, rep->deps.cuffs[i], urgent);
}

/*
 * Gateway-wide alarms are listed in every cuff's state, but their records
 * name no cuff, so nothing marks the states dirty when one opens or
 * closes: the housekeeping compares the open set with the one last seen.
 */
static void check_gateway_alarms(struct reporter *rep)
{
	const struct alarm_record *wide[GATEWAY_ALARMS_MAX];
	size_t n = 0;
	bool same;

	(void)alarm_list_open(alarms_table(rep->deps.alarms), "", wide, GATEWAY_ALARMS_MAX, &n);
	if (n > GATEWAY_ALARMS_MAX)
		n = GATEWAY_ALARMS_MAX;
	same = n == rep->n_wide;
	for (size_t i = 0; i < n; i++) {
		same = same && rep->wide_seqs[i] == wide[i]->seq;
		rep->wide_seqs[i] = wide[i]->seq;
	}
	rep->n_wide = n;
	if (!same)
		reporter_gateway_alarms_changed(rep, false);
}

/* --- telemetry -------------------------------------------------------------- */

/* The text written straight into a buffer; false if it could not be. */
static bool publish_telemetry_text(struct reporter *rep, struct cuff_report *cr)
{
	size_t len;

	if (!rep->tele_fast || !cr->tele_topic || !cr->tele_cuff_quoted ||
	    telemetry_json_build(&rep->tele_json, cr->tele_cuff_quoted, cr->tele, cr->n_tele,
				 rep->tele_text, sizeof(rep->tele_text), &len) < 0)
		return false;
	(void)publisher_qos0_text(rep->deps.pub, cr->tele_topic, rep->tele_text, len); /* counted */
	return true;
}

/*
 * force: the cuff's buffer is full (it waited a whole second of samples),
 * so it goes out even while Paho is backed up; otherwise the samples wait
 * for a later slice then (publisher_qos0_busy): larger messages, none lost.
 */
static void publish_telemetry(struct reporter *rep, struct cuff *c, bool force)
{
	struct cuff_report *cr = &rep->per_cuff[cuff_index(c)];
	char topic[TOPIC_MAX];
	json_t *p;

	if (cr->n_tele == 0)
		return;
	if (!force && publisher_is_connected(rep->deps.pub) && publisher_qos0_busy(rep->deps.pub))
		return;
	/* QoS 0 live data is never queued: without a broker it is dropped (the
	 * session summary carries the aggregates). */
	if (publisher_is_connected(rep->deps.pub) && !publish_telemetry_text(rep, cr) &&
	    payload_topic(rep->deps.ctx, topic, sizeof(topic), "cuff/%s/telemetry",
			  cuff_id(c)) == 0) {
		p = msg_telemetry(rep->deps.ctx, cuff_id(c), cr->tele, cr->n_tele);
		if (p)
			(void)publisher_qos0(rep->deps.pub, topic, p); /* counted there */
		json_decref(p);
	}
	cr->n_tele = 0;
}

/* The per-cuff strings of the telemetry text; a cuff without them (out of
 * memory) is published through the jansson builder. */
static void prepare_telemetry_text(struct reporter *rep)
{
	char topic[TOPIC_MAX];

	rep->tele_fast = telemetry_json_init(&rep->tele_json, rep->deps.ctx) == 0;
	for (size_t i = 0; rep->tele_fast && i < rep->deps.n_cuffs; i++) {
		struct cuff_report *cr = &rep->per_cuff[i];
		const char *id = cuff_id(rep->deps.cuffs[i]);

		if (payload_topic(rep->deps.ctx, topic, sizeof(topic), "cuff/%s/telemetry", id) == 0)
			cr->tele_topic = strdup(topic);
		cr->tele_cuff_quoted = telemetry_json_quote(id);
	}
}

void reporter_cuff_samples(struct reporter *rep, struct cuff *c, const struct bfr_sample *samples,
			   size_t n)
{
	struct cuff_report *cr = &rep->per_cuff[cuff_index(c)];

	for (size_t i = 0; i < n; i++) {
		if (cr->n_tele == MSG_TELEMETRY_MAX)
			publish_telemetry(rep, c, true);
		cr->tele[cr->n_tele++] = (struct msg_telemetry_sample){
			.t_ms = samples[i].t_ms,
			.pressure = (float)samples[i].pressure_mmhg,
			.target = (float)samples[i].target_mmhg,
			.pulse = (float)samples[i].pulse_amplitude,
		};
	}
}

/*
 * Telemetry is published in slices, a slice of the cuffs every
 * REPORTER_TELEMETRY_SLICE_MS (period / 1 ms slices: 100 at 10 Hz), instead
 * of all cuffs at once: 2 000 messages in one callback would hold the loop
 * for milliseconds, and a cuff's over-limit sample arriving then would
 * wait for its DEFLATE behind them (docs/benchmarks.md, safety latency).
 * At 2 000 cuffs a slice is 20 messages. With 2 ms slices of 40 the
 * synchronised 2 000-cuff p99 with the broker up was 2.7-2.9 ms, with 1 ms
 * slices 1.3-1.5 ms at the same CPU (real-time loop, quiet machine); ten
 * slices of 200 had held the loop for over a millisecond each. The timer
 * repeats on a fixed schedule, so the slices' own work does not stretch
 * the period.
 */
static unsigned telemetry_slices(const struct reporter *rep)
{
	unsigned period = 1000 / rep->deps.cfg->mqtt.telemetry_hz;

	return period >= 2 * REPORTER_TELEMETRY_SLICE_MS ? period / REPORTER_TELEMETRY_SLICE_MS
							 : 1;
}

static unsigned telemetry_step_ms(const struct reporter *rep)
{
	unsigned step = 1000 / rep->deps.cfg->mqtt.telemetry_hz / telemetry_slices(rep);

	return step ? step : 1;
}

static void publish_slice(struct reporter *rep, unsigned slice, unsigned slices, uint64_t now)
{
	for (size_t i = slice; i < rep->deps.n_cuffs; i += slices) {
		publish_telemetry(rep, rep->deps.cuffs[i], false);
		/* The state again once a second, spread over the slices like the
		 * telemetry: its data_age_ms and expiry tell a page it is live. */
		if (now - rep->per_cuff[i].state_published_ms >= REPORTER_STATE_REFRESH_MS)
			publish_cuff_state(rep, rep->deps.cuffs[i]);
	}
}

/*
 * Every slice whose time has come, not just one per call: when the loop
 * was busy past a slice's time (a burst of notifications is handled whole
 * first, docs/architecture.md), the slices it missed go out now, so every
 * cuff keeps its telemetry_hz. Missing them made each cuff's messages fewer
 * and larger. At most one period is caught up: after a longer stall each
 * cuff is published once and the schedule starts again from now.
 */
static void on_telemetry_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct reporter *rep = user_data;
	unsigned slices = telemetry_slices(rep), step = telemetry_step_ms(rep);
	uint64_t now = loop_now_ms(rep->deps.loop);

	for (unsigned k = 0; k < slices && rep->telemetry_due_ms <= now; k++) {
		publish_slice(rep, rep->telemetry_slice++ % slices, slices, now);
		rep->telemetry_due_ms += step;
	}
	if (rep->telemetry_due_ms <= now)
		rep->telemetry_due_ms = now + step;
}

/* --- status and housekeeping ---------------------------------------------------- */

char *reporter_status_text(struct reporter *rep, const char *state)
{
	struct msg_status st = {
		.state = state,
		.gateway = rep->deps.cfg->gateway_id,
		.site = rep->deps.cfg->site,
		.cuffs = rep->deps.cfg->n_cuffs,
		.outbox_depth = publisher_outbox_depth(rep->deps.pub),
		.started_wall_ms = rep->deps.started_wall_ms,
	};
	json_t *p = msg_status(rep->deps.ctx, &st);
	char *text = p ? json_dumps(p, MSG_JSON_FLAGS) : NULL;

	json_decref(p);
	return text;
}

/*
 * "online" goes straight to the broker: it must not wait behind an outage's
 * backlog, and it is regenerated on every connect, so losing it costs
 * nothing. Without a connection there is nobody to tell.
 */
static void publish_status(struct reporter *rep)
{
	char topic[TOPIC_MAX];
	char *text = reporter_status_text(rep, "online");

	if (text && payload_topic(rep->deps.ctx, topic, sizeof(topic), "status") == 0)
		(void)publisher_direct(rep->deps.pub, topic, text, strlen(text), true);
	rep->published_outbox_depth = publisher_outbox_depth(rep->deps.pub);
	free(text);
}

static void on_housekeeping(struct loop *loop, uint64_t id, void *user_data)
{
	struct reporter *rep = user_data;
	size_t depth;

	check_gateway_alarms(rep);
	flush_states(rep);
	runner_publish_states(rep->deps.runner);
	publish_sessions(rep, false);
	if (publisher_has_store(rep->deps.pub))
		alarms_outbox_level(rep->deps.alarms,
				    publisher_outbox_over_alarm_level(rep->deps.pub));
	publisher_drain(rep->deps.pub);
	if (!publisher_has_store(rep->deps.pub) || !publisher_is_connected(rep->deps.pub))
		return;
	/* Status carries the backlog: republish when it moved noticeably. */
	depth = publisher_outbox_depth(rep->deps.pub);
	if (depth > rep->published_outbox_depth + STATUS_DEPTH_STEP ||
	    depth + STATUS_DEPTH_STEP < rep->published_outbox_depth ||
	    (depth == 0 && rep->published_outbox_depth != 0))
		publish_status(rep);
}

void reporter_connected(struct reporter *rep)
{
	publish_status(rep);
	for (size_t i = 0; i < rep->deps.n_cuffs; i++)
		publish_cuff_state(rep, rep->deps.cuffs[i]);
	runner_publish_states(rep->deps.runner);
	publish_sessions(rep, true);
}

void reporter_snapshot(struct reporter *rep)
{
	reporter_connected(rep);
}

/* --- life -------------------------------------------------------------------- */

int reporter_new(const struct reporter_deps *deps, struct reporter **out)
{
	struct reporter *rep = calloc(1, sizeof(*rep));
	int r = -ENOMEM;

	if (!rep)
		return -ENOMEM;
	rep->deps = *deps;
	rep->per_cuff = calloc(deps->n_cuffs ? deps->n_cuffs : 1, sizeof(*rep->per_cuff));
	if (!rep->per_cuff)
		goto fail;
	r = loop_timer_new(deps->loop, on_telemetry_timer, rep, &rep->telemetry_timer);
	if (r < 0)
		goto fail;
	r = loop_timer_new(deps->loop, on_housekeeping, rep, &rep->housekeeping_timer);
	if (r < 0)
		goto fail;
	r = loop_timer_new(deps->loop, on_state_timer, rep, &rep->state_timer);
	if (r < 0)
		goto fail;
	r = loop_post_new(deps->loop, on_state_post, rep, &rep->state_post);
	if (r < 0)
		goto fail;
	prepare_telemetry_text(rep);
	*out = rep;
	return 0;
fail:
	reporter_free(rep);
	return r;
}

void reporter_free(struct reporter *rep)
{
	if (!rep)
		return;
	loop_timer_free(rep->deps.loop, rep->telemetry_timer);
	loop_timer_free(rep->deps.loop, rep->housekeeping_timer);
	loop_timer_free(rep->deps.loop, rep->state_timer);
	loop_post_free(rep->deps.loop, rep->state_post);
	free(rep->published_sessions);
	for (size_t i = 0; rep->per_cuff && i < rep->deps.n_cuffs; i++) {
		free(rep->per_cuff[i].tele_topic);
		free(rep->per_cuff[i].tele_cuff_quoted);
	}
	free(rep->per_cuff);
	free(rep);
}

int reporter_start(struct reporter *rep)
{
	int r;

	rep->telemetry_due_ms = loop_now_ms(rep->deps.loop);
	r = loop_timer_start(rep->deps.loop, rep->telemetry_timer, 0, telemetry_step_ms(rep));
	if (r < 0)
		return r;
	return loop_timer_start(rep->deps.loop, rep->housekeeping_timer, REPORTER_HOUSEKEEPING_MS,
				REPORTER_HOUSEKEEPING_MS);
}

void reporter_stop(struct reporter *rep)
{
	json_t *p;
	char topic[TOPIC_MAX];

	/* What stays retained says what is known: nothing live any more. */
	if (!rep->stopped && publisher_is_connected(rep->deps.pub)) {
		for (size_t i = 0; i < rep->deps.n_cuffs; i++)
			publish_cuff_state_as(rep, rep->deps.cuffs[i], "unknown",
					      rep->deps.cfg->mqtt.ended_retain_s);
		p = msg_sessions(rep->deps.ctx, NULL, 0);
		if (p && payload_topic(rep->deps.ctx, topic, sizeof(topic), "sessions") == 0)
			(void)publisher_snapshot(rep->deps.pub, topic, p, 0);
		json_decref(p);
	}
	rep->stopped = true;
	loop_timer_stop(rep->deps.loop, rep->telemetry_timer);
	loop_timer_stop(rep->deps.loop, rep->housekeeping_timer);
	loop_timer_stop(rep->deps.loop, rep->state_timer);
}
