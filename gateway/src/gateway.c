/*
 * gateway.c - lifecycle of the daemon and the receive path of every cuff.
 *
 * The order inside on_samples() is the product's central safety
 * property: safety engine first (its DEFLATE is written to the cuff before
 * the function goes on), then the session, then telemetry and state. See
 * gateway_private.h for the shared state.
 */
#include "gateway_private.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void gw_alarm_record(const struct alarm_record *rec, void *user_data);
static void flush_alarms(struct loop *loop, uint64_t id, void *user_data);
static void gw_housekeeping(struct loop *loop, uint64_t id, void *user_data);

uint64_t gw_wall_ms(struct gateway *gw)
{
	return payload_wall_ms(&gw->pctx);
}

struct gw_cuff *gw_find_cuff(struct gateway *gw, const char *id)
{
	for (size_t i = 0; i < gw->n_cuffs; i++)
		if (strcmp(gw->cuffs[i].cfg->id, id) == 0)
			return &gw->cuffs[i];
	return NULL;
}

/* --- cuff state publishing ------------------------------------------------ */

static void state_flush(struct loop *loop, uint64_t id, void *user_data)
{
	struct gateway *gw = user_data;
	uint64_t now = loop_now_ms(loop);
	uint64_t next = UINT64_MAX;

	gw->state_flush_timer = 0;
	for (size_t i = 0; i < gw->n_cuffs; i++) {
		struct gw_cuff *c = &gw->cuffs[i];

		if (!c->state_dirty)
			continue;
		if (now - c->state_published_ms >= GW_STATE_MIN_MS || c->state_published_ms == 0)
			gw_publish_cuff_state(c);
		else if (c->state_published_ms + GW_STATE_MIN_MS < next)
			next = c->state_published_ms + GW_STATE_MIN_MS;
	}
	if (next != UINT64_MAX)
		loop_add_timer(loop, next - now, state_flush, gw, &gw->state_flush_timer);
}

/* Discrete changes (link, alarms, session, LOP) go out within GW_STATE_MIN_MS. */
void gw_cuff_mark_dirty(struct gw_cuff *c, bool urgent)
{
	struct gateway *gw = c->gw;

	c->state_dirty = true;
	if (urgent && !gw->state_flush_timer && !gw->stopping)
		loop_add_timer(gw->loop, 0, state_flush, gw, &gw->state_flush_timer);
}

/* --- safety ---------------------------------------------------------------- */

static void safety_timer_fired(struct loop *loop, uint64_t id, void *user_data)
{
	struct gw_cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_TICK };

	c->safety_timer = 0;
	c->safety_timer_at = 0;
	gw_safety_event(c, &ev);
}

/*
 * One timer per cuff, re-armed lazily: only when the engine's next deadline
 * is earlier than the armed one. A deadline that moved later (a fresh sample
 * pushed "telemetry lost" out) just costs one early tick that finds nothing
 * due, instead of a heap update on every one of 50 samples a second.
 */
void gw_cuff_rearm_safety(struct gw_cuff *c)
{
	uint64_t due = safety_next_deadline(&c->safety);
	uint64_t now = loop_now_ms(c->gw->loop);

	if (due == SAFETY_NEVER)
		return;
	if (c->safety_timer && c->safety_timer_at <= due)
		return;
	if (c->safety_timer)
		loop_cancel_timer(c->gw->loop, c->safety_timer);
	c->safety_timer_at = due;
	if (loop_add_timer(c->gw->loop, due > now ? due - now : 0, safety_timer_fired, c,
			   &c->safety_timer) < 0) {
		c->safety_timer = 0;
		c->safety_timer_at = 0;
		log_error("cuff %s: cannot arm the safety timer", c->cfg->id);
	}
}

static const char *cuff_session_id(const struct gw_cuff *c)
{
	return c->session ? c->session->id : NULL;
}

static void send_deflate(struct gw_cuff *c, uint8_t reason)
{
	struct bfr_cp_request req = { .opcode = BFR_CP_DEFLATE, .deflate_reason = reason };
	int r = cuff_link_send_cp(c->link, &req);

	if (r < 0 && r != -ENOTCONN)
		log_error("cuff %s: DEFLATE not sent: %s", c->cfg->id, strerror(-r));
	c->commanded_target = 0;
}

static void execute_actions(struct gw_cuff *c, const struct safety_action *acts, size_t n)
{
	struct gateway *gw = c->gw;

	for (size_t i = 0; i < n; i++) {
		const struct safety_action *a = &acts[i];

		switch (a->type) {
		case SAFETY_ACT_DEFLATE:
			send_deflate(c, a->deflate_reason);
			/* Once a second at most: the engine repeats it on every sample. */
			if (loop_now_ms(gw->loop) >= c->deflate_logged_ms + 1000) {
				c->deflate_logged_ms = loop_now_ms(gw->loop);
				log_warn("cuff %s: safety DEFLATE (reason %u)", c->cfg->id,
					 (unsigned)a->deflate_reason);
			}
			break;
		case SAFETY_ACT_RAISE: {
			char id[ALARM_ID_MAX];
			int r = alarm_raise(gw->alarms, c->cfg->id, cuff_session_id(c), a->code,
					    a->message, &a->values, gw_wall_ms(gw), id);

			if (r < 0)
				log_error("cuff %s: alarm %s not raised: %s", c->cfg->id,
					  alarm_code_name(a->code), strerror(-r));
			break;
		}
		case SAFETY_ACT_CLEAR:
			alarm_condition_cleared(gw->alarms, c->cfg->id, a->code, gw_wall_ms(gw));
			break;
		case SAFETY_ACT_REFUSE:
			break; /* answered by the caller of INFLATE_CMD */
		}
	}
	/* A safety DEFLATE ends the cuff's session: it must not re-inflate. */
	for (size_t i = 0; i < n; i++) {
		const char *why = "safety";

		/* A re-sent routine DEFLATE (a slowly venting cuff) is no reason. */
		if (acts[i].type != SAFETY_ACT_DEFLATE || !c->session || c->session->ended ||
		    acts[i].deflate_reason == BFR_DEFLATE_NORMAL)
			continue;
		for (size_t j = 0; j < n; j++)
			if (acts[j].type == SAFETY_ACT_RAISE && acts[j].priority == ALARM_PRIO_HIGH) {
				why = alarm_code_name(acts[j].code);
				break;
			}
		gw_session_abort(c->session, why, acts[i].deflate_reason);
		break;
	}
}

void gw_safety_event(struct gw_cuff *c, const struct safety_event *ev)
{
	gw_safety_ask(c, ev, NULL);
}

int gw_safety_ask(struct gw_cuff *c, const struct safety_event *ev, enum limits_refusal *why)
{
	struct safety_action acts[SAFETY_MAX_ACTIONS];
	size_t n = 0;
	int r = safety_handle(&c->safety, ev, loop_now_ms(c->gw->loop), acts, SAFETY_MAX_ACTIONS,
			      &n);

	if (r < 0) {
		log_error("cuff %s: safety event %s refused: %s", c->cfg->id,
			  safety_event_name(ev->type), strerror(-r));
		if (why)
			*why = LIMITS_REFUSE_SAFETY_CONDITION;
		return r;
	}
	execute_actions(c, acts, n);
	gw_cuff_rearm_safety(c);
	for (size_t i = 0; i < n; i++)
		if (acts[i].type == SAFETY_ACT_REFUSE) {
			if (why)
				*why = acts[i].refusal;
			return -EPERM;
		}
	return 0;
}

void gw_cuff_deflate(struct gw_cuff *c, uint8_t reason, bool rest)
{
	struct safety_event ev = { .type = SAFETY_EV_DEFLATE_CMD };

	send_deflate(c, reason);
	ev.deflate.reason = reason;
	ev.deflate.rest = rest;
	gw_safety_event(c, &ev);
}

/* --- cuff link callbacks -------------------------------------------------- */

static const char *link_name(enum cuff_link_state s)
{
	switch (s) {
	case CUFF_LINK_READY:
		return "connected";
	case CUFF_LINK_CONNECTING:
	case CUFF_LINK_DISCOVERING:
		return "connecting";
	default:
		return "disconnected";
	}
}

static void on_link_state(struct cuff_link *link, enum cuff_link_state state, const char *error,
			  void *user_data)
{
	struct gw_cuff *c = user_data;
	enum cuff_link_state old = c->link_state;

	c->link_state = state;
	if (error)
		snprintf(c->link_error, sizeof(c->link_error), "%s", error);
	else if (state == CUFF_LINK_READY)
		c->link_error[0] = '\0';
	if (old == CUFF_LINK_READY && state != CUFF_LINK_READY) {
		struct safety_event ev = { .type = SAFETY_EV_LINK_DOWN };

		log_warn("cuff %s: link lost%s%s", c->cfg->id, error ? ": " : "",
			 error ? error : "");
		c->lop_measuring = false;
		c->commanded_target = 0; /* the cuff deflates itself without keepalives */
		gw_safety_event(c, &ev);
		if (c->session && !c->session->ended)
			gw_session_abort(c->session, "link_lost", BFR_DEFLATE_SAFETY);
	} else if (state != old && state != CUFF_LINK_READY) {
		log_info("cuff %s: %s%s%s", c->cfg->id, cuff_link_state_name(state),
			 error ? ": " : "", error ? error : "");
	}
	if (strcmp(link_name(old), link_name(state)) != 0 || error)
		gw_cuff_mark_dirty(c, true);
}

static void on_link_ready(struct cuff_link *link, const struct bfr_features *features,
			  const struct bfr_status *status, const struct gatt_device_info *info,
			  void *user_data)
{
	struct gw_cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_LINK_UP };

	c->was_ready = true;
	c->fresh_link = true;
	c->status = *status;
	c->have_status = true;
	log_info("cuff %s: ready (%s %s, serial %s, fw %s; %s, %u mm, max %.0f mmHg, %u Hz)",
		 c->cfg->id, info->manufacturer, info->model, info->serial, info->firmware,
		 features->limb == BFR_LIMB_LEG ? "leg" : "arm", features->cuff_width_mm,
		 features->max_pressure_mmhg, features->sample_rate_hz);
	if ((features->limb == BFR_LIMB_LEG) != (c->cfg->limb == CONFIG_LIMB_LEG))
		log_warn("cuff %s: the cuff reports a %s cuff but is configured as %s; the "
			 "configured (%s) limits apply",
			 c->cfg->id, features->limb == BFR_LIMB_LEG ? "leg" : "arm",
			 config_limb_name(c->cfg->limb), config_limb_name(c->cfg->limb));
	gw_safety_event(c, &ev);
	gw_cuff_mark_dirty(c, true);
}

static void on_samples(struct cuff_link *link, const struct bfr_sample *samples, size_t n,
		       void *user_data)
{
	struct gw_cuff *c = user_data;
	struct gateway *gw = c->gw;
	uint64_t now = loop_now_ms(gw->loop);

	/* A cuff inflated when we connect, with nothing of ours inflating it
	 * (after a restart, or inflated by someone else): the engine deflates
	 * it (SR-10); say so, this is worth a look. */
	if (c->fresh_link && n > 0) {
		c->fresh_link = false;
		if (isfinite(samples[0].pressure_mmhg) &&
		    samples[0].pressure_mmhg > BFR_SUPERVISION_ACTIVE_ABOVE_MMHG && !c->session &&
		    c->commanded_target <= 0)
			log_warn("cuff %s: found inflated at %.0f mmHg with no session: deflating",
				 c->cfg->id, samples[0].pressure_mmhg);
	}
	/* 1. Safety sees every sample of the notification before anything else. */
	for (size_t i = 0; i < n; i++) {
		struct safety_event ev = { .type = SAFETY_EV_SAMPLE };

		ev.sample.pressure_mmhg = samples[i].pressure_mmhg;
		ev.sample.target_mmhg = samples[i].target_mmhg;
		ev.sample.status = samples[i].status;
		ev.sample.pulse_mmhg = samples[i].pulse_amplitude;
		gw_safety_event(c, &ev);
	}
	for (size_t i = 0; i < n; i++) {
		const struct bfr_sample *s = &samples[i];

		/* 2. The session's timing and per-set figures. */
		if (c->session && !c->session->ended && isfinite(s->pressure_mmhg) &&
		    s->pressure_mmhg >= 0)
			gw_session_pressure(c->session, c->cfg->id, s->pressure_mmhg, now);

		/* 3. Telemetry and state: only copies, published later. */
		c->have_sample = true;
		c->pressure = s->pressure_mmhg;
		c->reported_target = s->target_mmhg;
		c->pulse = s->pulse_amplitude;
		if (c->status_bits != s->status)
			gw_cuff_mark_dirty(c, false);
		c->status_bits = s->status;
		if (c->n_tele == GW_TELEMETRY_MAX)
			gw_publish_telemetry(c);
		c->tele[c->n_tele++] = (struct gw_telemetry_sample){
			.t_ms = s->t_ms,
			.pressure = (float)s->pressure_mmhg,
			.target = (float)s->target_mmhg,
			.pulse = (float)s->pulse_amplitude,
		};
	}
}

static void on_status(struct cuff_link *link, const struct bfr_status *status, void *user_data)
{
	struct gw_cuff *c = user_data;

	if (!c->have_status || c->status.state != status->state ||
	    c->status.faults != status->faults)
		gw_cuff_mark_dirty(c, true);
	c->status = *status;
	c->have_status = true;
}

static void on_battery(struct cuff_link *link, uint8_t pct, void *user_data)
{
	struct gw_cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_BATTERY };

	if (pct > 100)
		return;
	if (c->battery_pct != pct)
		gw_cuff_mark_dirty(c, false);
	c->battery_pct = pct;
	ev.battery.pct = pct;
	gw_safety_event(c, &ev);
}

static void lop_result(struct gw_cuff *c, bool ok, double lop)
{
	struct gateway *gw = c->gw;
	struct safety_event ev = { .type = SAFETY_EV_LOP_SET };
	uint64_t now = loop_now_ms(gw->loop);

	ev.lop.lop_mmhg = ok ? lop : NAN;
	ev.lop.measured_at_ms = now;
	gw_safety_event(c, &ev);
	if (ok && gw->store)
		store_lop_record(gw->store, c->cfg->id, cuff_session_id(c), lop,
				 (int64_t)gw_wall_ms(gw), 0);
	if (c->session && !c->session->ended)
		gw_session_lop_result(c->session, c->cfg->id, ok, lop, now);
	c->lop_measuring = false;
	log_info("cuff %s: LOP measurement %s (%.1f mmHg)", c->cfg->id, ok ? "done" : "failed",
		 lop);
	gw_cuff_mark_dirty(c, true);
}

/*
 * The cuff did not take a SET_TARGET: whatever it does now, it is not what
 * the session planned. Deflate it and end the session rather than time sets
 * against a pressure that is not there.
 */
static void target_not_reached(struct gw_cuff *c, const char *why)
{
	if (c->commanded_target <= 0)
		return;
	gw_cuff_deflate(c, BFR_DEFLATE_NORMAL, false);
	if (c->session && !c->session->ended)
		gw_session_abort(c->session, why, BFR_DEFLATE_NORMAL);
}

static void on_cp_result(struct cuff_link *link, const struct bfr_cp_response *rsp,
			 void *user_data)
{
	struct gw_cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_CP_RESULT };

	ev.cp_result.opcode = rsp->req_opcode;
	ev.cp_result.result = rsp->result <= BFR_RESULT_LIMIT_EXCEEDED ? rsp->result
								     : BFR_RESULT_FAILED;
	gw_safety_event(c, &ev);
	if (rsp->req_opcode == BFR_CP_MEASURE_LOP)
		lop_result(c, rsp->result == BFR_RESULT_SUCCESS && rsp->has_lop &&
				      isfinite(rsp->lop_mmhg),
			   rsp->lop_mmhg);
	if (rsp->result != BFR_RESULT_SUCCESS) {
		log_warn("cuff %s: %s answered %s", c->cfg->id, bfr_cp_opcode_name(rsp->req_opcode),
			 bfr_cp_result_name(rsp->result));
		if (rsp->req_opcode == BFR_CP_SET_TARGET)
			target_not_reached(c, "cuff_refused");
	}
}

static void on_cp_failed(struct cuff_link *link, uint8_t opcode, int err, const char *why,
			 void *user_data)
{
	struct gw_cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_CP_RESULT };

	log_warn("cuff %s: %s failed: %s", c->cfg->id, bfr_cp_opcode_name(opcode),
		 why ? why : strerror(-err));
	ev.cp_result.opcode = opcode;
	ev.cp_result.result = BFR_RESULT_FAILED;
	gw_safety_event(c, &ev);
	if (opcode == BFR_CP_MEASURE_LOP)
		lop_result(c, false, NAN);
	else if (opcode == BFR_CP_SET_TARGET && err != -ECONNRESET)
		/* A lost link is LINK_DOWN's business (link_lost_inflated). */
		target_not_reached(c, "cuff_error");
}

static const struct cuff_link_callbacks link_callbacks = {
	.on_state = on_link_state,
	.on_ready = on_link_ready,
	.on_samples = on_samples,
	.on_status = on_status,
	.on_battery = on_battery,
	.on_cp_result = on_cp_result,
	.on_cp_failed = on_cp_failed,
};

/* --- telemetry and housekeeping ----------------------------------------- */

/*
 * Telemetry is published in GW_TELEMETRY_SLICES slices per period, a slice
 * of the cuffs every period/slices ms, instead of all cuffs at once: 500
 * JSON messages in one callback would hold the loop for milliseconds, and a
 * cuff's over-limit sample arriving then would wait for its DEFLATE behind
 * them (docs/benchmarks.md, safety latency).
 */
static void telemetry_tick(struct loop *loop, uint64_t id, void *user_data)
{
	struct gateway *gw = user_data;
	unsigned period = 1000 / gw->cfg->mqtt.telemetry_hz;
	unsigned slices = period >= GW_TELEMETRY_SLICES ? GW_TELEMETRY_SLICES : 1;
	unsigned slice = gw->telemetry_slice++ % slices;

	uint64_t now = loop_now_ms(loop);

	for (size_t i = slice; i < gw->n_cuffs; i += slices)
		gw_publish_telemetry(&gw->cuffs[i]);
	/* Fixed deadlines: the slices' own work must not stretch the period. */
	gw->telemetry_due_ms += period / slices;
	if (gw->telemetry_due_ms < now)
		gw->telemetry_due_ms = now;
	loop_add_timer(loop, gw->telemetry_due_ms - now, telemetry_tick, gw,
		       &gw->telemetry_timer);
}

static void check_storage_alarms(struct gateway *gw)
{
	uint64_t wall = gw_wall_ms(gw);

	if (!gw->outbox)
		return;
	if (outbox_over_alarm_level(gw->outbox)) {
		struct alarm_values v = { NAN, NAN, 100.0 * OUTBOX_ALARM_RATIO,
					  NAN };

		v.pressure_mmhg = NAN;
		if (!alarm_find_open(gw->alarms, "", ALARM_OUTBOX_FULL))
			alarm_raise(gw->alarms, "", NULL, ALARM_OUTBOX_FULL, NULL, &v, wall, NULL);
	} else if (alarm_find_open(gw->alarms, "", ALARM_OUTBOX_FULL)) {
		alarm_condition_cleared(gw->alarms, "", ALARM_OUTBOX_FULL, wall);
	}
}

static void gw_housekeeping(struct loop *loop, uint64_t id, void *user_data)
{
	struct gateway *gw = user_data;

	for (size_t i = 0; i < gw->n_cuffs; i++) {
		struct gw_cuff *c = &gw->cuffs[i];

		if (c->have_sample && isfinite(c->pressure) &&
		    fabs(c->pressure - c->published_pressure) >= 1.0)
			c->state_dirty = true;
	}
	state_flush(loop, 0, gw);
	for (size_t i = 0; i < gw->n_sessions; i++)
		gw_session_publish_state(gw->sessions[i]);
	check_storage_alarms(gw);
	gw_outbox_drain(gw);
	if (gw->outbox && gw->mqtt_connected) {
		size_t depth = outbox_depth(gw->outbox);

		/* Status carries the depth: republish when it moved noticeably. */
		if ((depth > gw->published_outbox_depth + 100) ||
		    (depth + 100 < gw->published_outbox_depth) ||
		    (depth == 0 && gw->published_outbox_depth != 0))
			gw_publish_status(gw);
	}
	loop_add_timer(loop, GW_HOUSEKEEPING_MS, gw_housekeeping, gw, &gw->housekeeping_timer);
}

/* --- MQTT ----------------------------------------------------------------- */

/* A broker without persistence forgets retained alarms when it restarts. */
static void republish_open_alarms(struct gateway *gw)
{
	size_t n = alarm_open_count(gw->alarms);
	const struct alarm_record **open = n ? calloc(n, sizeof(*open)) : NULL;

	if (!open || alarm_list_open(gw->alarms, NULL, open, n, &n) < 0) {
		free(open);
		return;
	}
	for (size_t i = 0; i < n; i++)
		gw_publish_alarm(gw, open[i], false); /* nothing changed: no history row */
	free(open);
}

static void on_mqtt_connected(struct mqtt_client *client, bool session_present, void *user_data)
{
	struct gateway *gw = user_data;

	log_info("mqtt: connected to %s", gw->cfg->mqtt.uri);
	gw->mqtt_connected = true;
	/* Everything handed to the old connection may be lost: send again from
	 * the oldest unacknowledged row (consumers dedupe on msg_id). */
	gw->outbox_cursor = 0;
	gw->outbox_inflight = 0;
	/* Retained state is re-published on every connect (clean start). */
	gw_publish_status(gw);
	for (size_t i = 0; i < gw->n_cuffs; i++)
		gw_publish_cuff_state(&gw->cuffs[i]);
	for (size_t i = 0; i < gw->n_sessions; i++)
		gw_session_publish_state(gw->sessions[i]);
	republish_open_alarms(gw);
	gw_outbox_drain(gw);
}

static void on_mqtt_disconnected(struct mqtt_client *client, const char *reason, void *user_data)
{
	struct gateway *gw = user_data;

	log_warn("mqtt: connection lost: %s", reason ? reason : "unknown");
	gw->mqtt_connected = false;
}

/*
 * A retained alarm on our topics that our table does not hold open was left
 * by an earlier run of this gateway (a crash cannot publish the closing
 * record). It is closed publicly, so dashboards do not show a ghost forever;
 * its record stays in the database.
 */
static void close_orphan_alarm(struct gateway *gw, const char *alarm_id, const uint8_t *payload,
			       size_t len)
{
	char topic[TOPIC_MAX], ts[32];
	json_t *rec, *state, *fresh;

	if (len == 0 || !command_id_valid(alarm_id) || alarm_find_id(gw->alarms, alarm_id))
		return;
	/* Our own echo, or one closed at start from the database, is no orphan. */
	if (json_object_get(gw->known_alarm_ids, alarm_id))
		return;
	rec = json_loadb((const char *)payload, len, 0, NULL);
	state = rec ? json_object_get(rec, "state") : NULL;
	if (!json_is_string(state) || strcmp(json_string_value(state), "cleared") == 0) {
		json_decref(rec);
		return;
	}
	log_warn("alarm %s is left over from an earlier run: closing it", alarm_id);
	payload_format_ts(gw_wall_ms(gw), ts);
	json_object_set_new(rec, "state", json_string("cleared"));
	json_object_set_new(rec, "condition_present", json_false());
	json_object_set_new(rec, "cleared_at", json_string(ts));
	json_object_set_new(rec, "message", json_string("closed: the gateway restarted"));
	json_object_set_new(rec, "ts", json_string(ts));
	fresh = payload_new(&gw->pctx, NULL); /* a new msg_id: this is a new message */
	if (fresh)
		json_object_set(rec, "msg_id", json_object_get(fresh, "msg_id"));
	json_decref(fresh);
	if (payload_topic(&gw->pctx, topic, sizeof(topic), "alarm/%s", alarm_id) == 0) {
		gw_publish_qos1(gw, topic, rec, 0);
		gw_publish_qos1_raw(gw, topic, "", 0, OUTBOX_RETAIN, NULL);
	}
	json_decref(rec);
}

static void on_mqtt_message(struct mqtt_client *client, const char *topic, const uint8_t *payload,
			    size_t len, const char *response_topic, const uint8_t *correlation,
			    size_t correlation_len, void *user_data)
{
	struct gateway *gw = user_data;
	size_t plen = strlen(gw->topic_prefix);

	if (strncmp(topic, gw->topic_prefix, plen) != 0)
		return;
	if (strncmp(topic + plen, "/alarm/", 7) == 0) {
		close_orphan_alarm(gw, topic + plen + 7, payload, len);
		return;
	}
	if (strncmp(topic + plen, "/cmd/", 5) != 0)
		return;
	gw_command_handle(gw, topic + plen + 5, payload, len, response_topic, correlation,
			  correlation_len);
}

static void on_mqtt_publish_done(struct mqtt_client *client, uint64_t tag, int result,
				 void *user_data)
{
	struct gateway *gw = user_data;

	if (tag == 0 || !gw->outbox)
		return;
	if (gw->outbox_inflight > 0)
		gw->outbox_inflight--;
	if (result == -EACCES) {
		/* The broker refuses this topic for good (ACL): retrying forever
		 * would change nothing. The record stays in the database. */
		log_error("outbox: the broker refused message %" PRIu64 "; dropped from the outbox",
			  tag);
		result = 0;
	}
	/*
	 * Any other failure leaves the row in the outbox: it is sent again, in
	 * order, after the next connect. Rewinding on a live connection would
	 * re-send older retained rows after newer ones (ghost alarms).
	 */
	if (result == 0) {
		int r = outbox_ack(gw->outbox, (int64_t)tag);

		if (r < 0 && r != -ENOENT)
			log_error("outbox: ack of %" PRIu64 " failed: %s", tag, strerror(-r));
	}
	gw_outbox_drain(gw);
}

static const struct mqtt_client_callbacks mqtt_callbacks = {
	.on_connected = on_mqtt_connected,
	.on_disconnected = on_mqtt_disconnected,
	.on_message = on_mqtt_message,
	.on_publish_done = on_mqtt_publish_done,
};

/* --- store ---------------------------------------------------------------- */

static void on_store_completion(const struct store_completion *c, void *user_data)
{
	struct gateway *gw = user_data;
	uint64_t wall = gw_wall_ms(gw);

	if (gw->outbox && outbox_handle_completion(gw->outbox, c))
		return;
	switch (c->kind) {
	case STORE_DONE_COMMITTED:
		break;
	case STORE_DONE_REJECTED:
		log_error("store: record rejected: %s", c->message ? c->message : "");
		break;
	case STORE_DONE_DISK_ERROR:
		if (!gw->store_unhealthy)
			log_error("store: disk error: %s", c->message ? c->message : "");
		gw->store_unhealthy = true;
		if (!alarm_find_open(gw->alarms, "", ALARM_STORAGE_ERROR))
			alarm_raise(gw->alarms, "", NULL, ALARM_STORAGE_ERROR, NULL, NULL, wall,
				    NULL);
		break;
	case STORE_DONE_DISK_OK:
		log_info("store: disk writes recovered");
		gw->store_unhealthy = false;
		alarm_condition_cleared(gw->alarms, "", ALARM_STORAGE_ERROR, wall);
		break;
	}
}

static void on_store_fd(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct gateway *gw = user_data;

	store_dispatch_completions(gw->store);
}

static void on_outbox_ready(struct outbox *outbox, void *user_data)
{
	gw_outbox_drain(user_data);
}

/*
 * A session a crash interrupted is closed as aborted with what was
 * recorded: its last event is followed by an `aborted` event (the next
 * seq), and the summary carries its real start and every finished set's
 * figures from the database.
 */
static void close_interrupted_session(struct gateway *gw, const char *id)
{
	json_t *rec = NULL, *sess, *plan_ex, *figs, *exercises = NULL, *ev = NULL, *sum = NULL;
	char topic[TOPIC_MAX], started[32], ts[32];
	json_int_t last_seq, started_ms;
	char *text = NULL;
	size_t i;

	log_warn("session %s was interrupted by a gateway stop: closing it as aborted", id);
	if (store_session_load(gw->store, id, &rec) < 0) {
		log_error("session %s: its records cannot be read; closed without a summary", id);
		goto end;
	}
	sess = json_array_get(json_object_get(rec, "session"), 0);
	last_seq = json_integer_value(
		json_object_get(json_array_get(json_object_get(rec, "events"), 0), "last_seq"));
	started_ms = json_integer_value(json_object_get(sess, "started_ms"));
	plan_ex = json_object_get(json_object_get(sess, "plan"), "exercises");
	figs = json_object_get(rec, "figures");
	payload_format_ts(gw_wall_ms(gw), ts);
	payload_format_ts(started_ms > 0 ? (uint64_t)started_ms : gw_wall_ms(gw), started);

	ev = payload_new(&gw->pctx, NULL);
	if (ev) {
		json_object_set_new(ev, "session_id", json_string(id));
		json_object_set_new(ev, "seq", json_integer(last_seq + 1));
		json_object_set_new(ev, "type", json_string("aborted"));
		json_object_set_new(ev, "reason", json_string("gateway_restart"));
		text = json_dumps(ev, GW_JSON_FLAGS);
		if (text)
			store_session_event(gw->store, id, (uint32_t)(last_seq + 1), "aborted", text,
					    (int64_t)gw_wall_ms(gw), 0);
		if (payload_topic(&gw->pctx, topic, sizeof(topic), "session/%s/event", id) == 0)
			gw_publish_qos1(gw, topic, ev, 0);
	}

	exercises = json_array();
	for (i = 0; exercises && i < json_array_size(plan_ex); i++) {
		json_t *sets = json_array();
		json_t *row;
		size_t k;

		json_array_foreach(figs, k, row)
			if (json_integer_value(json_object_get(row, "exercise")) == (json_int_t)i &&
			    json_is_object(json_object_get(row, "figures")))
				json_array_append(sets, json_object_get(row, "figures"));
		json_array_append_new(exercises,
				      json_pack("{s:O, s:o}", "name",
						json_object_get(json_array_get(plan_ex, i), "name"),
						"sets", sets));
	}
	sum = payload_new(&gw->pctx, NULL);
	if (sum && exercises) {
		json_t *state = json_object_get(sess, "state");
		json_t *infl = json_object_get(state, "inflation_s_total");

		json_object_set_new(sum, "session_id", json_string(id));
		json_object_set_new(sum, "outcome", json_string("aborted"));
		json_object_set_new(sum, "reason", json_string("gateway_restart"));
		json_object_set_new(sum, "started_at", json_string(started));
		json_object_set_new(sum, "ended_at", json_string(ts));
		json_object_set(sum, "exercises", exercises);
		json_object_set_new(sum, "alarms", json_array());
		json_object_set_new(sum, "inflation_s_total",
				    json_real(json_is_number(infl) ? json_number_value(infl) : 0.0));
		if (payload_topic(&gw->pctx, topic, sizeof(topic), "session/%s/summary", id) == 0)
			gw_publish_qos1(gw, topic, sum, OUTBOX_RETAIN);
		/* The last retained state said the session was running. */
		if (json_is_object(state)) {
			json_t *fin = json_deep_copy(state);
			json_t *env = payload_new(&gw->pctx, NULL);

			if (fin && env) {
				json_object_update(fin, env);
				json_object_set_new(fin, "phase", json_string("aborted"));
				json_object_set_new(fin, "seconds_left", json_null());
				if (payload_topic(&gw->pctx, topic, sizeof(topic), "session/%s/state",
						  id) == 0)
					gw_publish_qos1(gw, topic, fin, OUTBOX_RETAIN);
			}
			json_decref(fin);
			json_decref(env);
		}
	}
end:
	store_session_end(gw->store, id, "aborted", (int64_t)gw_wall_ms(gw), 0);
	free(text);
	json_decref(sum);
	json_decref(exercises);
	json_decref(ev);
	json_decref(rec);
}

static void close_interrupted_sessions(struct gateway *gw)
{
	char **ids = NULL;
	size_t n = 0;

	if (store_list_open_sessions(gw->store, &ids, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		close_interrupted_session(gw, ids[i]);
	store_strv_free(ids);
}

static int open_store(struct gateway *gw)
{
	struct store_config scfg = { .data_dir = gw->cfg->data_dir };
	char err[256] = "";
	int r = store_open(&scfg, &gw->store, err, sizeof(err));

	if (r < 0) {
		/* Supervision must go on without a disk: run without records. */
		log_error("store: %s; running WITHOUT persistence", err);
		gw->store = NULL;
		return r;
	}
	store_set_completion_cb(gw->store, on_store_completion, gw);
	r = outbox_new(gw->store, (size_t)gw->cfg->outbox_max_mib << 20, &gw->outbox);
	if (r < 0)
		return r;
	outbox_set_ready_cb(gw->outbox, on_outbox_ready, gw);
	r = outbox_load_pending(gw->outbox);
	if (r < 0)
		log_error("outbox: reloading pending messages failed: %s", strerror(-r));
	else if (outbox_depth(gw->outbox))
		log_info("outbox: %zu messages waiting from before the restart",
			 outbox_depth(gw->outbox));
	r = loop_add_io(gw->loop, store_completion_fd(gw->store), EPOLLIN, on_store_fd, gw);
	if (r < 0)
		return r;
	close_interrupted_sessions(gw);
	return 0;
}

/* --- lifecycle ------------------------------------------------------------ */

/*
 * Open alarms recorded by an earlier run. An unacknowledged HIGH alarm
 * latches across the restart: it is put back (its condition unknown until
 * the safety engine sees it again) and still blocks inflation until a
 * clinician acknowledges it. Anything else is closed: a condition that is
 * still there is detected again and raised afresh.
 */
static int queue_alarm(struct gateway *gw, const struct alarm_record *rec)
{
	if (gw->n_pending_alarms == gw->cap_pending_alarms) {
		size_t cap = gw->cap_pending_alarms ? 2 * gw->cap_pending_alarms : 64;
		struct alarm_record *v = realloc(gw->pending_alarms, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		gw->pending_alarms = v;
		gw->cap_pending_alarms = cap;
	}
	gw->pending_alarms[gw->n_pending_alarms++] = *rec;
	json_object_set_new(gw->known_alarm_ids, rec->alarm_id, json_true());
	return 0;
}

/* The numbers recorded with an alarm ("values" of the published record). */
static struct alarm_values restored_values(const char *values_json)
{
	struct alarm_values v = { NAN, NAN, NAN, NAN };
	json_t *o = values_json ? json_loads(values_json, 0, NULL) : NULL;
	json_t *x;

	if ((x = json_object_get(o, "pressure_mmHg")) && json_is_number(x))
		v.pressure_mmhg = json_number_value(x);
	if ((x = json_object_get(o, "target_mmHg")) && json_is_number(x))
		v.target_mmhg = json_number_value(x);
	if ((x = json_object_get(o, "limit")) && json_is_number(x))
		v.limit = json_number_value(x);
	if ((x = json_object_get(o, "duration_s")) && json_is_number(x))
		v.duration_s = json_number_value(x);
	json_decref(o);
	return v;
}

static int restore_alarm(const struct store_alarm *a, void *user_data)
{
	struct gateway *gw = user_data;
	struct alarm_record rec = { 0 };
	const char *dash = strrchr(a->alarm_id, '-');
	enum alarm_code code;
	bool known_cuff = !a->cuff || gw_find_cuff(gw, a->cuff);

	if (alarm_code_from_name(a->code, &code) < 0 || !dash)
		return 0;
	snprintf(rec.alarm_id, sizeof(rec.alarm_id), "%s", a->alarm_id);
	snprintf(rec.cuff, sizeof(rec.cuff), "%s", a->cuff ? a->cuff : "");
	snprintf(rec.session_id, sizeof(rec.session_id), "%s", a->session_id ? a->session_id : "");
	snprintf(rec.acked_by, sizeof(rec.acked_by), "%s", a->acked_by ? a->acked_by : "");
	snprintf(rec.message, sizeof(rec.message), "%s",
		 a->message && a->message[0] ? a->message : alarm_code_default_message(code));
	rec.code = code;
	rec.priority = alarm_code_priority(code);
	rec.kind = alarm_code_kind(code);
	rec.seq = strtoull(dash + 1, NULL, 10);
	rec.raised_at_ms = (uint64_t)a->raised_ms;
	rec.acked_at_ms = (uint64_t)a->acked_ms;
	rec.state = a->acked_ms ? ALARM_STATE_ACKNOWLEDGED : ALARM_STATE_ACTIVE;
	rec.values = restored_values(a->values_json);
	rec.condition_present = false;
	json_object_set_new(gw->known_alarm_ids, rec.alarm_id, json_true());
	if (known_cuff && alarm_code_latching(code) && rec.state == ALARM_STATE_ACTIVE &&
	    alarm_restore(gw->alarms, &rec) == 0) {
		log_warn("alarm %s (%s on %s) is still unacknowledged from before the restart",
			 rec.alarm_id, a->code, a->cuff ? a->cuff : "gateway");
		return 0;
	}
	rec.state = ALARM_STATE_CLEARED;
	rec.cleared_at_ms = gw_wall_ms(gw);
	snprintf(rec.message, sizeof(rec.message), "closed: the gateway restarted");
	/* Published once the read is over: the database is locked meanwhile. */
	return queue_alarm(gw, &rec);
}

static int cuff_limits(const struct config *cfg, const struct config_cuff *cc,
		       struct limits *out, char *err, size_t errlen)
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

static int setup_cuffs(struct gateway *gw, char *err, size_t errlen)
{
	static const char *const security[] = { "low", "medium", "high" };
	int r;

	gw->cuffs = calloc(gw->cfg->n_cuffs ? gw->cfg->n_cuffs : 1, sizeof(*gw->cuffs));
	if (!gw->cuffs)
		return -ENOMEM;
	for (size_t i = 0; i < gw->cfg->n_cuffs; i++) {
		struct gw_cuff *c = &gw->cuffs[i];
		const struct config_cuff *cc = &gw->cfg->cuffs[i];
		struct cuff_link_config lc = {
			.id = cc->id,
			.address = cc->address,
			.address_type = cc->address_type == CONFIG_ADDRESS_RANDOM ? "random"
										    : "public",
			.adapter = cc->adapter,
			.security = security[gw->cfg->ble_security],
			.supervision_timeout_ms = (uint16_t)gw->cfg->supervision_timeout_ms,
			.sched = gw->sched,
		};

		c->gw = gw;
		c->index = i;
		c->cfg = cc;
		c->battery_pct = -1;
		c->pressure = NAN;
		c->published_pressure = NAN;
		r = cuff_limits(gw->cfg, cc, &c->limits, err, errlen);
		if (r < 0)
			return r;
		r = safety_init(&c->safety, &c->limits, loop_now_ms(gw->loop));
		if (r < 0) {
			snprintf(err, errlen, "cuff %s: invalid safety limits", cc->id);
			return r;
		}
		r = cuff_link_new(gw->loop, &lc, &link_callbacks, c, &c->link);
		if (r < 0) {
			snprintf(err, errlen, "cuff %s: %s", cc->id, strerror(-r));
			return r;
		}
		gw->n_cuffs++;
	}
	return 0;
}

static int setup_mqtt(struct gateway *gw, char *err, size_t errlen)
{
	char will_topic[TOPIC_MAX];
	char filter[TOPIC_MAX];
	struct mqtt_client_options o = {
		.uri = gw->cfg->mqtt.uri,
		.client_id = gw->cfg->mqtt.client_id,
		.username = gw->cfg->mqtt.username,
		.password = gw->cfg->mqtt.password,
		.keepalive_s = gw->cfg->mqtt.keepalive_s,
		.ca_file = gw->cfg->mqtt.ca_file,
		.cert_file = gw->cfg->mqtt.cert_file,
		.key_file = gw->cfg->mqtt.key_file,
		.will_qos = 1,
		.will_retain = true,
		/* A clinic broker that restarts should see us back within seconds:
		 * the outbox drains only once we are connected. */
		.reconnect_max_ms = 2000,
	};
	int r;

	gw->will_payload = gw_status_json(gw, "offline");
	if (!gw->will_payload)
		return -ENOMEM;
	r = payload_topic(&gw->pctx, will_topic, sizeof(will_topic), "status");
	if (r < 0)
		return r;
	o.will_topic = will_topic;
	o.will_payload = gw->will_payload;
	o.will_len = strlen(gw->will_payload);
	r = mqtt_client_new(gw->loop, &o, &mqtt_callbacks, gw, &gw->mqtt);
	if (r < 0) {
		snprintf(err, errlen, "mqtt: cannot use %s: %s", o.uri, strerror(-r));
		return r;
	}
	r = payload_topic(&gw->pctx, filter, sizeof(filter), "cmd/#");
	if (r < 0)
		return r;
	r = mqtt_client_subscribe(gw->mqtt, filter, 1);
	if (r < 0)
		return r;
	/* Retained alarms of an earlier run come back here (close_orphan_alarm). */
	r = payload_topic(&gw->pctx, filter, sizeof(filter), "alarm/+");
	if (r < 0)
		return r;
	return mqtt_client_subscribe(gw->mqtt, filter, 1);
}

static void on_signal(struct loop *loop, int signo, void *user_data)
{
	struct gateway *gw = user_data;

	log_info("signal %d: shutting down", signo);
	gateway_stop(gw);
}

int gateway_new(struct loop *loop, struct config *cfg, struct gateway **out, char *err,
		size_t errlen)
{
	struct gateway *gw = calloc(1, sizeof(*gw));
	uint64_t first_seq, max_seq = 0;
	int r = -ENOMEM;

	if (!gw) {
		config_free(cfg);
		return -ENOMEM;
	}
	gw->loop = loop;
	gw->cfg = cfg;
	r = payload_ctx_init(&gw->pctx, cfg->site, cfg->gateway_id, NULL);
	if (r < 0) {
		snprintf(err, errlen, "cannot initialise message ids");
		goto fail;
	}
	gw->started_wall_ms = gw_wall_ms(gw);
	snprintf(gw->topic_prefix, sizeof(gw->topic_prefix), "bfr/v1/%s/%s", cfg->site,
		 cfg->gateway_id);
	gw->known_alarm_ids = json_object();
	if (!gw->known_alarm_ids)
		goto fail;
	open_store(gw);
	/* Alarm ids continue after the highest one recorded, so they never
	 * repeat; with an empty (new, wiped) or no database they start at the
	 * wall clock's ms, above any id an earlier run can have used. */
	first_seq = gw->started_wall_ms;
	if (gw->store && store_alarm_max_seq(gw->store, cfg->gateway_id, &max_seq) == 0 &&
	    max_seq > 0)
		first_seq = max_seq + 1;
	r = alarm_table_new(cfg->gateway_id, alarm_table_capacity_for(cfg->n_cuffs), first_seq,
			    gw_alarm_record, gw, &gw->alarms);
	if (r < 0) {
		snprintf(err, errlen, "cannot create the alarm table: %s", strerror(-r));
		goto fail;
	}
	r = transport_sched_new(loop, &gw->sched);
	if (r < 0)
		goto fail;
	r = setup_cuffs(gw, err, errlen);
	if (r < 0)
		goto fail;
	r = setup_mqtt(gw, err, errlen);
	if (r < 0)
		goto fail;
	if (gw->store) {
		store_load_open_alarms(gw->store, restore_alarm, gw);
		gw_flush_alarms(gw); /* the ones closed at start */
	}
	else
		alarm_raise(gw->alarms, "", NULL, ALARM_STORAGE_ERROR,
			    "database unavailable: running without records", NULL, gw_wall_ms(gw),
			    NULL);
	*out = gw;
	return 0;
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "%s", strerror(-r));
	gateway_free(gw);
	return r;
}

int gateway_run(struct gateway *gw)
{
	int r;

	loop_add_signal(gw->loop, SIGTERM, on_signal, gw);
	loop_add_signal(gw->loop, SIGINT, on_signal, gw);
	/* No configuration reload: a hang-up stops in order rather than die. */
	loop_add_signal(gw->loop, SIGHUP, on_signal, gw);
	for (size_t i = 0; i < gw->n_cuffs; i++) {
		r = cuff_link_start(gw->cuffs[i].link);
		if (r < 0)
			log_error("cuff %s: cannot start: %s", gw->cuffs[i].cfg->id, strerror(-r));
	}
	r = mqtt_client_start(gw->mqtt);
	if (r < 0)
		log_error("mqtt: cannot start: %s (cuffs are supervised regardless)", strerror(-r));
	gw->telemetry_due_ms = loop_now_ms(gw->loop);
	loop_add_timer(gw->loop, 0, telemetry_tick, gw, &gw->telemetry_timer);
	loop_add_timer(gw->loop, GW_HOUSEKEEPING_MS, gw_housekeeping, gw,
		       &gw->housekeeping_timer);
	log_info("bfr-gateway %s: %s/%s supervising %zu cuffs", BFR_VERSION, gw->cfg->site,
		 gw->cfg->gateway_id, gw->n_cuffs);
	return loop_run(gw->loop);
}

/*
 * Orderly stop: sessions end as stopped, inflated cuffs get a DEFLATE (the
 * cuffs' own supervision would deflate them anyway within its timeout),
 * records are flushed, then the broker sees the Last Will "offline".
 */
void gateway_stop(struct gateway *gw)
{
	if (gw->stopping)
		return;
	gw->stopping = true;
	for (size_t i = 0; i < gw->n_sessions; i++) {
		struct gw_session *gs = gw->sessions[i];

		if (!gs->ended)
			gw_session_stop(gs);
	}
	for (size_t i = 0; i < gw->n_cuffs; i++) {
		struct gw_cuff *c = &gw->cuffs[i];

		if (safety_inflated(&c->safety) || (isfinite(c->pressure) && c->pressure > 10))
			send_deflate(c, BFR_DEFLATE_NORMAL);
	}
	loop_quit(gw->loop);
}

void gateway_free(struct gateway *gw)
{
	size_t lost = 0;

	if (!gw)
		return;
	/* Let the DEFLATEs queued by gateway_stop reach the cuffs. */
	if (gw->stopping)
		for (int i = 0; i < 5; i++)
			loop_run_once(gw->loop, 10);
	gw_sessions_free(gw);
	flush_alarms(gw->loop, 0, gw); /* into the outbox before it closes */
	for (size_t i = 0; i < gw->n_cuffs; i++) {
		if (gw->cuffs[i].safety_timer)
			loop_cancel_timer(gw->loop, gw->cuffs[i].safety_timer);
		cuff_link_free(gw->cuffs[i].link);
	}
	free(gw->cuffs);
	if (gw->mqtt)
		mqtt_client_free(gw->mqtt);
	if (gw->store) {
		store_flush(gw->store, GW_SHUTDOWN_FLUSH_MS);
		loop_del_io(gw->loop, store_completion_fd(gw->store));
	}
	outbox_free(gw->outbox);
	if (gw->store) {
		store_close(gw->store, &lost);
		if (lost)
			log_error("store: %zu records could not be written", lost);
	}
	transport_sched_free(gw->sched);
	alarm_table_free(gw->alarms);
	if (gw->telemetry_timer)
		loop_cancel_timer(gw->loop, gw->telemetry_timer);
	if (gw->housekeeping_timer)
		loop_cancel_timer(gw->loop, gw->housekeeping_timer);
	if (gw->state_flush_timer)
		loop_cancel_timer(gw->loop, gw->state_flush_timer);
	if (gw->reap_timer)
		loop_cancel_timer(gw->loop, gw->reap_timer);
	if (gw->alarm_flush_timer)
		loop_cancel_timer(gw->loop, gw->alarm_flush_timer);
	free(gw->pending_alarms);
	free(gw->will_payload);
	json_decref(gw->known_alarm_ids);
	config_free(gw->cfg);
	free(gw);
}

/* --- alarms ---------------------------------------------------------------- */

/*
 * Alarm records are published and stored after the current batch of socket
 * events: building JSON and queueing records for 500 cuffs inside the
 * receive path would delay the next cuff's safety check (see
 * docs/benchmarks.md). The alarm table itself changed synchronously, so
 * every decision (may inflate? unacked HIGH?) already sees the new state.
 */
static void flush_alarms(struct loop *loop, uint64_t id, void *user_data)
{
	struct gateway *gw = user_data;
	struct alarm_record *batch;
	size_t n;

	if (gw->alarm_flush_timer && id == 0)
		loop_cancel_timer(loop, gw->alarm_flush_timer);
	gw->alarm_flush_timer = 0;
	/* Publishing can raise an alarm (storage_error), which appends to the
	 * pending list: take the batch off it first. */
	batch = gw->pending_alarms;
	n = gw->n_pending_alarms;
	gw->pending_alarms = NULL;
	gw->n_pending_alarms = 0;
	gw->cap_pending_alarms = 0;
	for (size_t i = 0; i < n; i++) {
		const struct alarm_record *rec = &batch[i];

		if (rec->priority >= ALARM_PRIO_MEDIUM)
			log_warn("alarm %s %s %s on %s: %s (%s)", rec->alarm_id,
				 alarm_priority_name(rec->priority), alarm_code_name(rec->code),
				 rec->cuff[0] ? rec->cuff : "gateway", rec->message,
				 alarm_state_name(rec->state));
		gw_publish_alarm(gw, rec, true);
	}
	free(batch);
}

void gw_flush_alarms(struct gateway *gw)
{
	if (gw->n_pending_alarms)
		flush_alarms(gw->loop, 0, gw);
}

static void gw_alarm_record(const struct alarm_record *rec, void *user_data)
{
	struct gateway *gw = user_data;
	struct gw_cuff *c = rec->cuff[0] ? gw_find_cuff(gw, rec->cuff) : NULL;

	if (queue_alarm(gw, rec) < 0) {
		/* No memory to defer it: publish what waits, then this, in order. */
		gw_flush_alarms(gw);
		gw_publish_alarm(gw, rec, true);
	} else if (!gw->alarm_flush_timer) {
		loop_add_timer(gw->loop, 0, flush_alarms, gw, &gw->alarm_flush_timer);
	}
	if (c) {
		gw_cuff_mark_dirty(c, true);
		if (c->session && rec->state == ALARM_STATE_ACTIVE && rec->acked_at_ms == 0 &&
		    strcmp(rec->session_id, c->session->id) == 0)
			gw_session_note_alarm(c->session, rec->alarm_id);
	}
}
