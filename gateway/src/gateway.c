/*
 * gateway.c - the daemon: builds the modules in their start order, routes
 * what comes in (MQTT topics, cuff and alarm notifications) to the module
 * that owns it, and runs the orderly stop.
 *
 * Dependencies point one way (docs/architecture.md):
 *   gateway -> commands, recovery, reporter -> runner -> cuff -> logic
 *   everything -> alarms -> publisher -> outbox + MQTT client
 *   messages (JSON builders) are leaves.
 * Notifications travel up only through the callback structs registered
 * here; this file fans them out. It holds no state another module owns.
 */
#include "gateway.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms.h"
#include "commands.h"
#include "cuff.h"
#include "home.h"
#include "log.h"
#include "mqtt_client.h"
#include "payload.h"
#include "publisher.h"
#include "recovery.h"
#include "reporter.h"
#include "runner.h"
#include "store.h"
#include "transport.h"

#define GATEWAY_SHUTDOWN_FLUSH_MS 3000
/* From this many configured cuffs the start-up names a Paho build that keeps
 * its heap tracking (docs/operations.md "Large sites"). */
#define LARGE_SITE_CUFFS 500

struct gateway {
	struct loop *loop;
	struct config *cfg;
	struct payload_ctx ctx;
	char topic_prefix[TOPIC_MAX];
	char estop_topic[TOPIC_MAX];
	uint64_t started_wall_ms;
	bool stopping;

	struct store *store; /* NULL when the database could not be opened */
	struct publisher *pub;
	struct alarms *alarms;
	struct recovery *recovery;
	struct transport_sched *sched;
	struct cuff **cuffs;
	size_t n_cuffs;
	struct runner *runner;
	struct reporter *reporter;
	struct commands *commands;
	struct home *home;
	struct mqtt_client *mqtt;
	char *will_payload;
};

/* --- notifications, fanned out ---------------------------------------------- */

static void on_cuff_samples(struct cuff *c, const struct bfr_sample *samples, size_t n,
			    void *user_data)
{
	struct gateway *gw = user_data;

	/* Session timing first, then the copies for telemetry. */
	runner_cuff_samples(gw->runner, c, samples, n);
	reporter_cuff_samples(gw->reporter, c, samples, n);
}

static void on_cuff_safety_deflate(struct cuff *c, const char *why, uint8_t deflate_reason,
				   void *user_data)
{
	struct gateway *gw = user_data;

	runner_cuff_safety_deflate(gw->runner, c, why, deflate_reason);
}

static void on_cuff_link_lost(struct cuff *c, void *user_data)
{
	struct gateway *gw = user_data;

	runner_cuff_link_lost(gw->runner, c);
}

static void on_cuff_lop_result(struct cuff *c, bool ok, double lop_mmhg, void *user_data)
{
	struct gateway *gw = user_data;

	runner_cuff_lop_result(gw->runner, c, ok, lop_mmhg);
}

static void on_cuff_target_failed(struct cuff *c, const char *why, void *user_data)
{
	struct gateway *gw = user_data;

	runner_cuff_target_failed(gw->runner, c, why);
}

static void on_cuff_changed(struct cuff *c, bool urgent, void *user_data)
{
	struct gateway *gw = user_data;

	if (gw->reporter)
		reporter_cuff_changed(gw->reporter, c, urgent && !gw->stopping);
}

static void on_cuff_button(struct cuff *c, bool long_press, void *user_data)
{
	struct gateway *gw = user_data;

	if (gw->home)
		home_cuff_button(gw->home, c, long_press);
}

static const struct cuff_callbacks cuff_callbacks = {
	.on_samples = on_cuff_samples,
	.on_safety_deflate = on_cuff_safety_deflate,
	.on_link_lost = on_cuff_link_lost,
	.on_lop_result = on_cuff_lop_result,
	.on_target_failed = on_cuff_target_failed,
	.on_changed = on_cuff_changed,
	.on_button = on_cuff_button,
};

static void on_alarm_record(const struct alarm_record *rec, void *user_data)
{
	struct gateway *gw = user_data;
	struct cuff *c = rec->cuff[0] ? cuff_find(gw->cuffs, gw->n_cuffs, rec->cuff) : NULL;

	if (c && gw->reporter)
		reporter_cuff_changed(gw->reporter, c, !gw->stopping);
	else if (!rec->cuff[0] && gw->reporter) /* listed on every cuff */
		reporter_gateway_alarms_changed(gw->reporter, !gw->stopping);
	if (gw->runner)
		runner_alarm_record(gw->runner, rec);
}

static const struct alarms_callbacks alarms_callbacks = {
	.on_record = on_alarm_record,
};

static void on_outbox_refused(const char *topic, int err, void *user_data)
{
	struct gateway *gw = user_data;

	if (gw->alarms)
		alarms_storage_error(gw->alarms, true, "outbox refused a message");
}

static void on_disk_health(bool ok, const char *message, void *user_data)
{
	struct gateway *gw = user_data;

	if (gw->alarms)
		alarms_storage_error(gw->alarms, !ok, NULL);
}

static void on_broker_refused(bool present, const char *topic, int reason_code,
			      const char *reason, void *user_data)
{
	struct gateway *gw = user_data;

	if (gw->alarms)
		alarms_broker_refused(gw->alarms, present, topic, reason_code, reason);
}

static const struct publisher_callbacks publisher_callbacks = {
	.on_outbox_refused = on_outbox_refused,
	.on_disk_health = on_disk_health,
	.on_broker_refused = on_broker_refused,
};

/* --- MQTT ----------------------------------------------------------------- */

static void on_mqtt_connected(struct mqtt_client *client, bool session_present, void *user_data)
{
	struct gateway *gw = user_data;

	log_info("mqtt: connected to %s", gw->cfg->mqtt.uri);
	publisher_connected(gw->pub);
	/* Retained state is re-published on every connect (clean start); a
	 * broker without persistence forgot it when it restarted. */
	reporter_connected(gw->reporter);
	alarms_republish_open(gw->alarms);
	home_connected(gw->home);
}

static void on_mqtt_disconnected(struct mqtt_client *client, const char *reason, void *user_data)
{
	struct gateway *gw = user_data;

	log_warn("mqtt: connection lost: %s", reason ? reason : "unknown");
	home_disconnected(gw->home);
}

/* Topic routing: cmd/ to the commands, our own retained alarm/ to recovery. */
static void on_mqtt_message(struct mqtt_client *client, const struct mqtt_message *msg,
			    void *user_data)
{
	struct gateway *gw = user_data;
	size_t plen = strlen(gw->topic_prefix);
	const char *suffix = msg->topic + plen;

	if (strncmp(msg->topic, gw->topic_prefix, plen) != 0)
		return;
	if (strncmp(suffix, "/alarm/", 7) == 0 && !msg->shed)
		recovery_retained_alarm(gw->recovery, suffix + 7, msg->payload, msg->len,
					msg->retained);
	else if (strncmp(suffix, "/cmd/", 5) == 0)
		commands_handle(gw->commands, suffix + 5, msg);
	else if (strcmp(suffix, "/supervisor") == 0 && !msg->shed)
		home_supervisor_message(gw->home, msg->payload, msg->len);
	else if (strcmp(suffix, "/bridge") == 0 && !msg->shed)
		home_bridge_state(gw->home, msg->payload, msg->len);
}

static void on_mqtt_publish_result(struct mqtt_client *client, uint64_t tag,
				   const struct mqtt_publish_result *res, void *user_data)
{
	struct gateway *gw = user_data;

	publisher_publish_result(gw->pub, tag, res);
}

static const struct mqtt_client_callbacks mqtt_callbacks = {
	.on_connected = on_mqtt_connected,
	.on_disconnected = on_mqtt_disconnected,
	.on_message = on_mqtt_message,
	.on_publish_result = on_mqtt_publish_result,
};

/* --- start ---------------------------------------------------------------- */

static void open_store(struct gateway *gw)
{
	struct store_config scfg = { .data_dir = gw->cfg->data_dir };
	char err[256] = "";

	/* Supervision must go on without a disk: run without records. */
	if (store_open(&scfg, &gw->store, err, sizeof(err)) < 0) {
		log_error("store: %s; running WITHOUT persistence", err);
		gw->store = NULL;
	}
}

static int setup_cuffs(struct gateway *gw, char *err, size_t errlen)
{
	struct cuff_deps deps = {
		.loop = gw->loop,
		.alarms = alarms_table(gw->alarms),
		.ctx = &gw->ctx,
		.store = gw->store,
		.sched = gw->sched,
		.cfg = gw->cfg,
	};
	int r;

	gw->cuffs = calloc(gw->cfg->n_cuffs ? gw->cfg->n_cuffs : 1, sizeof(*gw->cuffs));
	if (!gw->cuffs)
		return -ENOMEM;
	for (size_t i = 0; i < gw->cfg->n_cuffs; i++) {
		r = cuff_new(&deps, i, &cuff_callbacks, gw, &gw->cuffs[i], err, errlen);
		if (r < 0)
			return r;
		gw->n_cuffs++;
	}
	return 0;
}

static int setup_mqtt(struct gateway *gw, char *err, size_t errlen)
{
	char will_topic[TOPIC_MAX], filter[TOPIC_MAX];
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
		/* An e-stop never waits behind a flood of other commands (SR-28). */
		.priority_topic = gw->estop_topic,
	};
	int r;

	gw->will_payload = reporter_status_text(gw->reporter, "offline");
	if (!gw->will_payload)
		return -ENOMEM;
	r = payload_topic(&gw->ctx, will_topic, sizeof(will_topic), "status");
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
	publisher_set_client(gw->pub, gw->mqtt);
	r = payload_topic(&gw->ctx, filter, sizeof(filter), "cmd/#");
	if (r < 0)
		return r;
	/* Commands are live (SR-27): the broker sends no retained one. */
	r = mqtt_client_subscribe_opts(gw->mqtt, filter, 1, MQTT_SUB_NO_RETAINED);
	if (r < 0)
		return r;
	/* Retained alarms of an earlier run come back here (recovery). */
	r = payload_topic(&gw->ctx, filter, sizeof(filter), "alarm/+");
	if (r < 0)
		return r;
	r = mqtt_client_subscribe(gw->mqtt, filter, 1);
	if (r < 0 || !gw->cfg->home.enabled)
		return r;
	/* A home gateway: the clinician's presence, and its broker's bridge state. */
	r = payload_topic(&gw->ctx, filter, sizeof(filter), "supervisor");
	if (r == 0)
		r = mqtt_client_subscribe(gw->mqtt, filter, 1);
	if (r == 0)
		r = payload_topic(&gw->ctx, filter, sizeof(filter), "bridge");
	if (r < 0)
		return r;
	return mqtt_client_subscribe(gw->mqtt, filter, 1);
}

static int setup_modules(struct gateway *gw, char *err, size_t errlen)
{
	struct recovery_deps rdeps = { .ctx = &gw->ctx, .store = gw->store };
	struct runner_deps udeps = {
		.loop = gw->loop,
		.ctx = &gw->ctx,
		.store = gw->store,
		.deflate_timeout_ms = gw->cfg->deflate_timeout_ms,
	};
	struct reporter_deps pdeps = {
		.loop = gw->loop,
		.ctx = &gw->ctx,
		.cfg = gw->cfg,
		.started_wall_ms = gw->started_wall_ms,
	};
	struct commands_deps cdeps = { .loop = gw->loop, .store = gw->store, .ctx = &gw->ctx };
	struct home_deps hdeps = {
		.loop = gw->loop,
		.ctx = &gw->ctx,
		.cfg = gw->cfg,
		.store = gw->store,
	};
	uint64_t first_seq;
	int r;

	r = publisher_new(gw->loop, gw->store, (size_t)gw->cfg->outbox_max_mib << 20, &gw->ctx,
			  &publisher_callbacks, gw, &gw->pub);
	if (r < 0) {
		snprintf(err, errlen, "cannot set up the outbox: %s", strerror(-r));
		return r;
	}
	/* Ended sessions' retained state and summary expire (the running ones
	 * are refreshed every second, so the expiry only ever ends history). */
	r = publisher_expire_retained(gw->pub, "/session/", gw->cfg->mqtt.ended_retain_s);
	if (r < 0)
		return r;
	first_seq = recovery_first_alarm_seq(gw->store, gw->cfg->gateway_id, gw->started_wall_ms);
	r = alarms_new(gw->loop, &gw->ctx, gw->pub, gw->store, gw->cfg->n_cuffs, first_seq,
		       &alarms_callbacks, gw, &gw->alarms);
	if (r < 0) {
		snprintf(err, errlen, "cannot create the alarm table: %s", strerror(-r));
		return r;
	}
	r = transport_sched_new(gw->loop, &gw->sched);
	if (r < 0)
		return r;
	r = setup_cuffs(gw, err, errlen);
	if (r < 0)
		return r;
	rdeps.pub = gw->pub;
	rdeps.alarms = gw->alarms;
	rdeps.cuffs = gw->cuffs;
	rdeps.n_cuffs = gw->n_cuffs;
	r = recovery_new(&rdeps, &gw->recovery);
	if (r < 0)
		return r;
	recovery_close_interrupted_sessions(gw->recovery);
	udeps.pub = gw->pub;
	udeps.alarms = gw->alarms;
	udeps.cuffs = gw->cuffs;
	udeps.n_cuffs = gw->n_cuffs;
	r = runner_new(&udeps, &gw->runner);
	if (r < 0)
		return r;
	pdeps.pub = gw->pub;
	pdeps.alarms = gw->alarms;
	pdeps.runner = gw->runner;
	pdeps.cuffs = gw->cuffs;
	pdeps.n_cuffs = gw->n_cuffs;
	r = reporter_new(&pdeps, &gw->reporter);
	if (r < 0)
		return r;
	hdeps.pub = gw->pub;
	hdeps.runner = gw->runner;
	hdeps.cuffs = gw->cuffs;
	hdeps.n_cuffs = gw->n_cuffs;
	r = home_new(&hdeps, &gw->home);
	if (r < 0)
		return r;
	cdeps.home = gw->home;
	cdeps.pub = gw->pub;
	cdeps.runner = gw->runner;
	cdeps.reporter = gw->reporter;
	cdeps.alarms = gw->alarms;
	cdeps.cuffs = gw->cuffs;
	cdeps.n_cuffs = gw->n_cuffs;
	return commands_new(&cdeps, &gw->commands);
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
	int r;

	if (!gw) {
		config_free(cfg);
		return -ENOMEM;
	}
	gw->loop = loop;
	gw->cfg = cfg;
	r = payload_ctx_init(&gw->ctx, cfg->site, cfg->gateway_id, NULL);
	if (r < 0) {
		snprintf(err, errlen, "cannot initialise message ids");
		goto fail;
	}
	gw->started_wall_ms = payload_wall_ms(&gw->ctx);
	snprintf(gw->topic_prefix, sizeof(gw->topic_prefix), "bfr/v1/%s/%s", cfg->site,
		 cfg->gateway_id);
	if (payload_topic(&gw->ctx, gw->estop_topic, sizeof(gw->estop_topic), "cmd/estop") < 0) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	open_store(gw);
	r = setup_modules(gw, err, errlen);
	if (r < 0)
		goto fail;
	r = setup_mqtt(gw, err, errlen);
	if (r < 0)
		goto fail;
	if (gw->store) {
		recovery_restore_alarms(gw->recovery);
		recovery_restore_lops(gw->recovery);
	} else
		alarms_storage_error(gw->alarms, true,
				     "database unavailable: running without records");
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

	/* Cannot fail for these signals on a fresh loop. */
	(void)loop_add_signal(gw->loop, SIGTERM, on_signal, gw);
	(void)loop_add_signal(gw->loop, SIGINT, on_signal, gw);
	/* No configuration reload: a hang-up stops in order rather than die. */
	(void)loop_add_signal(gw->loop, SIGHUP, on_signal, gw);
	/* A cuff that cannot start says so itself; the others carry on. */
	for (size_t i = 0; i < gw->n_cuffs; i++)
		(void)cuff_start(gw->cuffs[i]);
	r = mqtt_client_start(gw->mqtt);
	if (r < 0)
		log_error("mqtt: cannot start: %s (cuffs are supervised regardless)", strerror(-r));
	r = reporter_start(gw->reporter);
	if (r < 0)
		log_error("cannot start telemetry and housekeeping: %s", strerror(-r));
	log_info("bfr-gateway %s: %s/%s supervising %zu cuffs", BFR_VERSION, gw->cfg->site,
		 gw->cfg->gateway_id, gw->n_cuffs);
	/* Below this many cuffs Paho's bookkeeping is not what limits a site. */
	if (gw->n_cuffs >= LARGE_SITE_CUFFS && mqtt_client_paho_tracks_heap())
		log_warn("mqtt: the Paho library loaded here keeps its debugging heap tracking (built "
			 "without PAHO_HIGH_PERFORMANCE, as Debian's is): with %zu cuffs it takes a "
			 "large share of the CPU (a third of the gateway's at 2 000 cuffs); "
			 "docs/operations.md \"Large sites\" says how to use a build without it",
			 gw->n_cuffs);
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
	commands_shutdown(gw->commands);
	home_shutdown(gw->home);
	reporter_stop(gw->reporter);
	runner_stop_all(gw->runner);
	for (size_t i = 0; i < gw->n_cuffs; i++)
		cuff_deflate_for_shutdown(gw->cuffs[i]);
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
			(void)loop_run_once(gw->loop, 10);
	commands_free(gw->commands);
	home_free(gw->home);
	reporter_free(gw->reporter);
	runner_free(gw->runner);
	if (gw->alarms)
		alarms_flush(gw->alarms); /* into the outbox before it closes */
	for (size_t i = 0; i < gw->n_cuffs; i++)
		cuff_free(gw->cuffs[i]);
	free(gw->cuffs);
	if (gw->mqtt) {
		mqtt_client_free(gw->mqtt);
		publisher_set_client(gw->pub, NULL);
	}
	recovery_free(gw->recovery);
	alarms_free(gw->alarms);
	publisher_free(gw->pub, GATEWAY_SHUTDOWN_FLUSH_MS);
	if (gw->store) {
		store_close(gw->store, &lost);
		if (lost)
			log_error("store: %zu records could not be written", lost);
	}
	transport_sched_free(gw->sched);
	free(gw->will_payload);
	config_free(gw->cfg);
	free(gw);
}
