/* wiring.c - see wiring.h. */
#include "wiring.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "command.h"
#include "transport.h"

static uint64_t fake_clock(void *data)
{
	return *(uint64_t *)data;
}

static uint64_t fake_wall(void *data)
{
	/* Wall time follows the fake clock: stamps are reproducible. */
	return 1795512600000ull + *(uint64_t *)data;
}

static void logf_(struct wiring *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct wiring *w, const char *fmt, ...)
{
	va_list ap;

	assert_true(w->n_log < WIRING_LOG_MAX);
	va_start(ap, fmt);
	vsnprintf(w->log[w->n_log++], sizeof(w->log[0]), fmt, ap);
	va_end(ap);
}

/* The daemon's fan-out (gateway.c), with a record of each notification. */
static void on_samples(struct cuff *c, const struct bfr_sample *samples, size_t n, void *ud)
{
	struct wiring *w = ud;

	if (!w->quiet_samples)
		logf_(w, "samples %s %zu", cuff_id(c), n);
	runner_cuff_samples(w->runner, c, samples, n);
}

static void on_safety_deflate(struct cuff *c, const char *why, uint8_t reason, void *ud)
{
	struct wiring *w = ud;
	struct cuff_reading rd;

	/* What the cuff has seen when the session hears of the DEFLATE. */
	cuff_read(c, &rd);
	logf_(w, "deflate %s %s p=%.1f", cuff_id(c), why, rd.pressure);
	runner_cuff_safety_deflate(w->runner, c, why, reason);
}

static void on_link_lost(struct cuff *c, void *ud)
{
	struct wiring *w = ud;

	logf_(w, "link_lost %s", cuff_id(c));
	runner_cuff_link_lost(w->runner, c);
}

static void on_lop_result(struct cuff *c, bool ok, double lop, void *ud)
{
	struct wiring *w = ud;

	logf_(w, "lop %s %s %.1f", cuff_id(c), ok ? "ok" : "failed", lop);
	runner_cuff_lop_result(w->runner, c, ok, lop);
}

static void on_target_failed(struct cuff *c, const char *why, void *ud)
{
	struct wiring *w = ud;

	runner_cuff_target_failed(w->runner, c, why);
}

static void on_button(struct cuff *c, bool long_press, void *ud)
{
	struct wiring *w = ud;

	logf_(w, "button %s %s", cuff_id(c), long_press ? "long" : "short");
	if (w->on_button)
		w->on_button(w, c, long_press);
}

static const struct cuff_callbacks cuff_cb = {
	.on_samples = on_samples,
	.on_safety_deflate = on_safety_deflate,
	.on_link_lost = on_link_lost,
	.on_lop_result = on_lop_result,
	.on_target_failed = on_target_failed,
	.on_button = on_button,
};

static void on_alarm_record(const struct alarm_record *rec, void *ud)
{
	struct wiring *w = ud;

	logf_(w, "alarm %s %s %s %s", alarm_code_name(rec->code), rec->cuff[0] ? rec->cuff : "-",
	      rec->session_id[0] ? rec->session_id : "-", alarm_state_name(rec->state));
	if (w->runner)
		runner_alarm_record(w->runner, rec);
}

static void on_ended(const char *id, const char *outcome, const char *reason, void *ud)
{
	struct wiring *w = ud;

	logf_(w, "ended %s %s %s", id, outcome, reason[0] ? reason : "-");
	snprintf(w->ended_outcome, sizeof(w->ended_outcome), "%s", outcome);
	snprintf(w->ended_reason, sizeof(w->ended_reason), "%s", reason);
}

void wiring_setup(struct wiring *w, size_t n_cuffs, const char *extra_cfg)
{
	const struct alarms_callbacks acb = { .on_record = on_alarm_record };
	char path[128], err[256] = "";
	struct cuff_deps deps;
	struct runner_deps rdeps;
	FILE *f;

	memset(w, 0, sizeof(*w));
	assert_true(n_cuffs <= WIRING_MAX_CUFFS);
	w->now = 1000000;
	assert_int_equal(loop_new_with_clock(fake_clock, &w->now, &w->loop), 0);
	strcpy(w->dir, "/tmp/bfr-test-wiring-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(path, sizeof(path), "%s/gw.conf", w->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "gateway = { id = \"gw1\"; site = \"test\"; data_dir = \"%s\"; };\n", w->dir);
	fprintf(f, "mqtt = { uri = \"mqtt://127.0.0.1:9\"; };\n%s\ncuffs = (", extra_cfg ? extra_cfg
											  : "");
	for (size_t i = 0; i < n_cuffs; i++) {
		char name[32];

		snprintf(name, sizeof(name), "c%zu", i + 1);
		gatt_peer_init(&w->peers[i], w->loop, w->dir, name);
		fprintf(f, "%s{ id = \"%s\"; address = \"sim:%s\"; limb = \"leg\"; }",
			i ? ", " : "", name, w->peers[i].path);
	}
	fprintf(f, ");\n");
	fclose(f);
	if (config_load(path, &w->cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	assert_int_equal(payload_ctx_init(&w->ctx, "test", "gw1", "b00t"), 0);
	w->ctx.wall_ms = fake_wall;
	w->ctx.wall_data = &w->now;
	assert_int_equal(publisher_new(w->loop, NULL, 1 << 20, &w->ctx, NULL, NULL, &w->pub), 0);
	assert_int_equal(alarms_new(w->loop, &w->ctx, w->pub, NULL, n_cuffs, 1, &acb, w,
				    &w->alarms),
			 0);
	assert_int_equal(transport_sched_new(w->loop, &w->sched), 0);
	deps = (struct cuff_deps){ .loop = w->loop, .alarms = alarms_table(w->alarms),
				   .ctx = &w->ctx, .sched = w->sched, .cfg = w->cfg };
	for (size_t i = 0; i < n_cuffs; i++) {
		assert_int_equal(cuff_new(&deps, i, &cuff_cb, w, &w->cuffs[i], err, sizeof(err)), 0);
		w->n_cuffs++;
	}
	rdeps = (struct runner_deps){ .loop = w->loop, .ctx = &w->ctx, .pub = w->pub,
				      .alarms = w->alarms, .cuffs = w->cuffs,
				      .n_cuffs = w->n_cuffs,
				      .deflate_timeout_ms = w->cfg->deflate_timeout_ms,
				      .cb = { .on_ended = on_ended }, .user_data = w };
	assert_int_equal(runner_new(&rdeps, &w->runner), 0);
}

void wiring_teardown(struct wiring *w)
{
	char path[128];

	runner_free(w->runner);
	alarms_flush(w->alarms);
	for (size_t i = 0; i < w->n_cuffs; i++)
		cuff_free(w->cuffs[i]);
	for (size_t i = 0; i < w->n_cuffs; i++)
		gatt_peer_close(&w->peers[i]);
	alarms_free(w->alarms);
	publisher_free(w->pub, 0);
	transport_sched_free(w->sched);
	config_free(w->cfg);
	loop_free(w->loop);
	snprintf(path, sizeof(path), "%s/gw.conf", w->dir);
	unlink(path);
	rmdir(w->dir);
}

void wiring_settle(struct wiring *w)
{
	for (int i = 0; i < 10; i++)
		assert_int_equal(loop_run_once(w->loop, 0), 0);
}

void wiring_run_until(struct wiring *w, bool (*cond)(struct wiring *w))
{
	for (int turn = 0; turn < 500 && !cond(w); turn++)
		assert_int_equal(loop_run_once(w->loop, 0), 0);
	assert_true(cond(w));
}

void wiring_advance(struct wiring *w, uint64_t ms, uint64_t step_ms)
{
	for (uint64_t t = 0; t < ms; t += step_ms) {
		w->now += step_ms;
		wiring_settle(w);
	}
}

static bool all_ready(struct wiring *w)
{
	for (size_t i = 0; i < w->n_cuffs; i++) {
		struct cuff_reading rd;

		cuff_read(w->cuffs[i], &rd);
		if (rd.link != CUFF_LINK_READY)
			return false;
	}
	return true;
}

void wiring_connect(struct wiring *w)
{
	for (size_t i = 0; i < w->n_cuffs; i++)
		assert_int_equal(cuff_start(w->cuffs[i]), 0);
	wiring_run_until(w, all_ready);
	wiring_settle(w);
}

int wiring_start(struct wiring *w, const char *plan_json, char *session_id,
		 struct command_error *err)
{
	char payload[4096];
	struct command *cmd = calloc(1, sizeof(*cmd));
	int r;

	assert_non_null(cmd);
	snprintf(payload, sizeof(payload), "{\"request_id\":\"r1\",\"plan\":%s}", plan_json);
	r = command_parse(CMD_SESSION_START, payload, strlen(payload), cmd, err);
	if (r < 0)
		fail_msg("plan refused by the parser: %s", err->message);
	r = runner_start(w->runner, cmd, err, session_id);
	free(cmd);
	return r;
}

long wiring_find(const struct wiring *w, size_t from, const char *prefix)
{
	for (size_t i = from; i < w->n_log; i++)
		if (strncmp(w->log[i], prefix, strlen(prefix)) == 0)
			return (long)i;
	return -1;
}
