/*
 * gw_publish.c - every payload the gateway publishes (docs/mqtt-api.md,
 * schemas/) and the QoS 1 path: outbox first, Paho only after the commit,
 * removed on PUBACK. QoS 0 telemetry goes straight to Paho when connected
 * and is dropped otherwise: the session summary carries the aggregates.
 */
#include "gateway_private.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int gw_publish_qos1_raw(struct gateway *gw, const char *topic, const void *buf, size_t len,
			unsigned flags, const char *msg_id)
{
	int r;

	if (gw->outbox) {
		r = outbox_append(gw->outbox, topic, buf, len, 1, flags, msg_id,
				  (int64_t)gw_wall_ms(gw));
		if (r == -ENOBUFS)
			return r; /* a superseded state snapshot; the next one will do */
		/*
		 * While the disk fails nothing commits, so nothing would reach the
		 * broker - not even the storage_error alarm. Send a copy now; the
		 * outbox sends it again once committed, with the same msg_id.
		 */
		if (gw->store_unhealthy && gw->mqtt_connected)
			mqtt_client_publish(gw->mqtt, topic, buf, len, 1, flags & OUTBOX_RETAIN, 0);
		if (r < 0) {
			log_error("outbox: %s not queued: %s", topic, strerror(-r));
			if (!alarm_find_open(gw->alarms, "", ALARM_STORAGE_ERROR))
				alarm_raise(gw->alarms, "", NULL, ALARM_STORAGE_ERROR,
					    "outbox refused a message", NULL, gw_wall_ms(gw), NULL);
		}
		return r;
	}
	/* No database: best effort, what the broker does not get now is lost. */
	if (!gw->mqtt_connected) {
		gw->direct_dropped++;
		return -ENOTCONN;
	}
	r = mqtt_client_publish(gw->mqtt, topic, buf, len, 1, flags & OUTBOX_RETAIN, 0);
	if (r < 0)
		gw->direct_dropped++;
	return r;
}

int gw_publish_qos1(struct gateway *gw, const char *topic, json_t *payload, unsigned flags)
{
	char *text = json_dumps(payload, GW_JSON_FLAGS);
	int r;

	if (!text)
		return -ENOMEM;
	r = gw_publish_qos1_raw(gw, topic, text, strlen(text), flags,
				json_string_value(json_object_get(payload, "msg_id")));
	free(text);
	return r;
}

/* Hands committed outbox rows to Paho, at most GW_OUTBOX_WINDOW in flight. */
void gw_outbox_drain(struct gateway *gw)
{
	const struct outbox_row *rows[GW_OUTBOX_WINDOW];
	size_t n = 0;

	if (!gw->outbox || !gw->mqtt_connected || gw->outbox_inflight >= GW_OUTBOX_WINDOW)
		return;
	if (outbox_next(gw->outbox, gw->outbox_cursor, GW_OUTBOX_WINDOW - gw->outbox_inflight, rows,
			&n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct outbox_row *row = rows[i];
		int r = mqtt_client_publish(gw->mqtt, row->topic, row->payload, row->len, row->qos,
					    row->retain, (uint64_t)row->id);

		if (r < 0) {
			/* Not connected after all: on_connected starts over from 0. */
			log_debug("outbox: %" PRId64 " not published: %s", row->id, strerror(-r));
			break;
		}
		gw->outbox_cursor = row->id;
		gw->outbox_inflight++;
	}
}

char *gw_status_json(struct gateway *gw, const char *state)
{
	char started[32];
	json_t *p = payload_new(&gw->pctx, NULL);
	char *text;

	if (!p)
		return NULL;
	payload_format_ts(gw->started_wall_ms, started);
	json_object_set_new(p, "state", json_string(state));
	json_object_set_new(p, "version", json_string(BFR_VERSION));
	json_object_set_new(p, "cuffs", json_integer((json_int_t)gw->cfg->n_cuffs));
	json_object_set_new(p, "outbox_depth",
			    json_integer(gw->outbox ? (json_int_t)outbox_depth(gw->outbox) : 0));
	json_object_set_new(p, "gateway", json_string(gw->cfg->gateway_id));
	json_object_set_new(p, "site", json_string(gw->cfg->site));
	json_object_set_new(p, "started_at", json_string(started));
	text = json_dumps(p, GW_JSON_FLAGS);
	json_decref(p);
	return text;
}

void gw_publish_status(struct gateway *gw)
{
	char topic[TOPIC_MAX];
	char *text = gw_status_json(gw, "online");

	if (!text || payload_topic(&gw->pctx, topic, sizeof(topic), "status") < 0) {
		free(text);
		return;
	}
	/*
	 * "online" goes straight to the broker when connected: it must not wait
	 * behind an outage's backlog, and it is regenerated on every connect, so
	 * losing it costs nothing. Without a connection there is nobody to tell.
	 */
	if (gw->mqtt_connected)
		mqtt_client_publish(gw->mqtt, topic, text, strlen(text), 1, true, 0);
	gw->published_outbox_depth = gw->outbox ? outbox_depth(gw->outbox) : 0;
	free(text);
}

static const char *cuff_state_name(const struct gw_cuff *c)
{
	if (!c->have_status || c->link_state != CUFF_LINK_READY)
		return NULL;
	switch (c->status.state) {
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

static const char *cuff_link_text(const struct gw_cuff *c)
{
	switch (c->link_state) {
	case CUFF_LINK_READY:
		return "connected";
	case CUFF_LINK_CONNECTING:
	case CUFF_LINK_DISCOVERING:
		return "connecting";
	case CUFF_LINK_BACKOFF:
		/* A cuff that never worked (no Bluetooth, bad address) is an error. */
		return c->was_ready ? "disconnected" : "error";
	default:
		return "disconnected";
	}
}

void gw_publish_cuff_state(struct gw_cuff *c)
{
	struct gateway *gw = c->gw;
	const struct alarm_record *open[64];
	char topic[TOPIC_MAX];
	size_t n_open = 0;
	json_t *p = payload_new(&gw->pctx, NULL);
	json_t *alarms = json_array();
	const char *cs = cuff_state_name(c);
	int64_t age;
	double lop = safety_lop(&c->safety, loop_now_ms(gw->loop), &age);
	bool live = c->link_state == CUFF_LINK_READY && c->have_sample;

	if (!p || !alarms)
		goto out;
	alarm_list_open(gw->alarms, c->cfg->id, open, 64, &n_open);
	for (size_t i = 0; i < n_open && i < 64; i++)
		json_array_append_new(alarms, json_string(open[i]->alarm_id));
	json_object_set_new(p, "cuff", json_string(c->cfg->id));
	json_object_set_new(p, "link", json_string(cuff_link_text(c)));
	json_object_set_new(p, "link_error",
			    c->link_error[0] && c->link_state != CUFF_LINK_READY
				    ? json_string(c->link_error)
				    : json_null());
	payload_set_number_or_null(p, "pressure_mmHg", live ? payload_round1(c->pressure) : NAN);
	payload_set_number_or_null(p, "target_mmHg",
				   live ? payload_round1(c->reported_target) : NAN);
	json_object_set_new(p, "battery_pct",
			    c->battery_pct >= 0 ? json_integer(c->battery_pct) : json_null());
	payload_set_number_or_null(p, "lop_mmHg", payload_round1(lop));
	json_object_set_new(p, "session_id", c->session ? json_string(c->session->id) : json_null());
	json_object_set_new(p, "alarms_active", alarms);
	alarms = NULL;
	json_object_set_new(p, "cuff_state", cs ? json_string(cs) : json_null());
	json_object_set_new(p, "limb", json_string(config_limb_name(c->cfg->limb)));
	json_object_set_new(p, "status_bits", live ? json_integer(c->status_bits) : json_null());
	if (payload_topic(&gw->pctx, topic, sizeof(topic), "cuff/%s/state", c->cfg->id) == 0)
		gw_publish_qos1(gw, topic, p, OUTBOX_RETAIN | OUTBOX_DROPPABLE);
	c->state_dirty = false;
	c->published_pressure = c->pressure;
	c->state_published_ms = loop_now_ms(gw->loop);
out:
	json_decref(alarms);
	json_decref(p);
}

static json_t *number_or_null(float v)
{
	return isfinite(v) ? json_real(payload_round1(v)) : json_null();
}

void gw_publish_telemetry(struct gw_cuff *c)
{
	struct gateway *gw = c->gw;
	char topic[TOPIC_MAX];
	json_t *p, *samples;
	char *text;

	if (c->n_tele == 0)
		return;
	if (!gw->mqtt_connected)
		goto out; /* QoS 0 live data is never queued */
	p = payload_new(&gw->pctx, NULL);
	samples = json_array();
	if (!p || !samples) {
		json_decref(p);
		json_decref(samples);
		goto out;
	}
	for (size_t i = 0; i < c->n_tele; i++) {
		const struct gw_telemetry_sample *s = &c->tele[i];

		json_array_append_new(samples, json_pack("[I,o,o,o]", (json_int_t)s->t_ms,
							 number_or_null(s->pressure),
							 number_or_null(s->target),
							 number_or_null(s->pulse)));
	}
	json_object_set_new(p, "cuff", json_string(c->cfg->id));
	json_object_set_new(p, "samples", samples);
	text = json_dumps(p, GW_JSON_FLAGS);
	if (text && payload_topic(&gw->pctx, topic, sizeof(topic), "cuff/%s/telemetry",
				  c->cfg->id) == 0)
		if (mqtt_client_publish(gw->mqtt, topic, text, strlen(text), 0, false, 0) < 0 &&
		    (gw->telemetry_refused++ & 1023) == 0)
			log_warn("mqtt: telemetry refused by the client (%" PRIu64 " so far)",
				 gw->telemetry_refused);
	free(text);
	json_decref(p);
out:
	c->n_tele = 0;
}

static json_t *ts_or_null(uint64_t wall_ms)
{
	char ts[32];

	if (wall_ms == 0)
		return json_null();
	payload_format_ts(wall_ms, ts);
	return json_string(ts);
}

void gw_publish_alarm(struct gateway *gw, const struct alarm_record *rec, bool record)
{
	char topic[TOPIC_MAX];
	json_t *p = payload_new(&gw->pctx, NULL);
	json_t *values = json_object();
	const struct {
		const char *key;
		double v;
	} vals[] = {
		{ "pressure_mmHg", rec->values.pressure_mmhg },
		{ "target_mmHg", rec->values.target_mmhg },
		{ "limit", rec->values.limit },
		{ "duration_s", rec->values.duration_s },
	};
	char *text = NULL;

	if (!p || !values)
		goto out;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (isfinite(vals[i].v))
			json_object_set_new(values, vals[i].key, json_real(payload_round1(vals[i].v)));
	json_object_set_new(p, "alarm_id", json_string(rec->alarm_id));
	json_object_set_new(p, "cuff", rec->cuff[0] ? json_string(rec->cuff) : json_null());
	json_object_set_new(p, "session_id",
			    rec->session_id[0] ? json_string(rec->session_id) : json_null());
	json_object_set_new(p, "code", json_string(alarm_code_name(rec->code)));
	json_object_set_new(p, "priority", json_string(alarm_priority_name(rec->priority)));
	json_object_set_new(p, "kind", json_string(alarm_kind_name(rec->kind)));
	json_object_set_new(p, "state", json_string(alarm_state_name(rec->state)));
	json_object_set_new(p, "condition_present", json_boolean(rec->condition_present));
	json_object_set_new(p, "raised_at", ts_or_null(rec->raised_at_ms));
	json_object_set_new(p, "acked_at", ts_or_null(rec->acked_at_ms));
	json_object_set_new(p, "acked_by", rec->acked_by[0] ? json_string(rec->acked_by) : json_null());
	json_object_set_new(p, "cleared_at", ts_or_null(rec->cleared_at_ms));
	json_object_set_new(p, "message", json_string(rec->message));
	json_object_set_new(p, "values", values);
	values = NULL;
	if (payload_topic(&gw->pctx, topic, sizeof(topic), "alarm/%s", rec->alarm_id) < 0)
		goto out;
	if (rec->state == ALARM_STATE_CLEARED) {
		/* The closing record once, then the empty retained payload removes it. */
		gw_publish_qos1(gw, topic, p, 0);
		gw_publish_qos1_raw(gw, topic, "", 0, OUTBOX_RETAIN, NULL);
	} else {
		gw_publish_qos1(gw, topic, p, OUTBOX_RETAIN);
	}
	if (gw->store && record) {
		struct store_alarm sa = {
			.alarm_id = rec->alarm_id,
			.cuff = rec->cuff[0] ? rec->cuff : NULL,
			.session_id = rec->session_id[0] ? rec->session_id : NULL,
			.code = alarm_code_name(rec->code),
			.priority = alarm_priority_name(rec->priority),
			.kind = alarm_kind_name(rec->kind),
			.state = alarm_state_name(rec->state),
			.condition_present = rec->condition_present,
			.raised_ms = (int64_t)rec->raised_at_ms,
			.acked_ms = (int64_t)rec->acked_at_ms,
			.acked_by = rec->acked_by[0] ? rec->acked_by : NULL,
			.cleared_ms = (int64_t)rec->cleared_at_ms,
			.message = rec->message,
		};

		text = json_dumps(json_object_get(p, "values"), JSON_COMPACT);
		sa.values_json = text;
		store_alarm_record(gw->store, &sa, (int64_t)gw_wall_ms(gw), 0);
	}
out:
	free(text);
	json_decref(values);
	json_decref(p);
}
