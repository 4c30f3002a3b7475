/*
 * test_home.c - home sessions (home.c, DESIGN section 11) on the wiring
 * with scripted cuffs, a fake monotonic clock and a fake wall clock (UTC,
 * 2026-11-24 from 09:46:40): the prescription checked like a session start,
 * local starts by the button and the console only within the rules, stops
 * by a press, live supervision paused after the grace period and kept
 * paused, the control socket's permissions (SO_PEERCRED) with real
 * processes of other users.
 */
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctl.h"
#include "home.h"
#include "test_alloc.h"
#include "wiring.h"

#define HOUR_MS 3600000ull
/* The wiring's wall clock: 1795512600000 + now (2026-11-24T09:30:00Z + now). */
#define WALL0 1795512600000LL

#define EX_C1                                                                               \
	"{\"name\":\"knee\",\"cuffs\":[\"c1\"],\"pct_lop\":50,\"mode\":\"continuous\","     \
	"\"sets\":[20],\"tempo_s\":[1,1],\"rest_s\":0,\"reperfusion_s\":60}"
#define RX_SET(plan, rules)                                                                 \
	"{\"request_id\":\"rx-1\",\"plan\":{\"exercises\":[" plan "]}," rules "}"
#define TODAY "\"valid_from\":\"2026-11-24T00:00:00Z\",\"valid_until\":\"2026-11-30T00:00:00Z\""

static struct wiring w;
static struct home *home;
static bool active; /* set up and not yet torn down */
static char sock_path[108];

static void forward_button(struct wiring *x, struct cuff *c, bool long_press)
{
	home_cuff_button(home, c, long_press);
}

static void setup_home(size_t n_cuffs, bool enabled, const char *home_extra)
{
	char extra[512];
	struct home_deps deps;

	snprintf(sock_path, sizeof(sock_path), "/tmp/bfr-test-home-%d.sock", (int)getpid());
	if (enabled)
		snprintf(extra, sizeof(extra), "home = { control_socket = \"%s\"; %s };", sock_path,
			 home_extra ? home_extra : "");
	else
		extra[0] = '\0';
	wiring_setup(&w, n_cuffs, extra);
	deps = (struct home_deps){ .loop = w.loop, .ctx = &w.ctx, .cfg = w.cfg, .pub = w.pub,
				   .runner = w.runner, .cuffs = w.cuffs, .n_cuffs = w.n_cuffs };
	assert_int_equal(home_new(&deps, &home), 0);
	active = true;
	w.on_button = forward_button;
	wiring_connect(&w);
}

static void teardown_home(void)
{
	active = false;
	home_free(home);
	home = NULL;
	wiring_teardown(&w);
	assert_int_equal(access(sock_path, F_OK), -1); /* the socket file is gone */
}

/* cmd/prescription/{set,clear} through the parser: the reply's code. */
static enum command_error_code rx_command(enum command_verb verb, const char *payload,
					  char *message)
{
	struct command *cmd = calloc(1, sizeof(*cmd));
	struct command_error err = { 0 };
	int r;

	assert_non_null(cmd);
	if (command_parse(verb, payload, strlen(payload), cmd, &err) < 0)
		fail_msg("parser: %s", err.message);
	r = home_prescription_command(home, cmd, &err);
	free(cmd);
	if (message)
		snprintf(message, COMMAND_MESSAGE_MAX, "%s", err.message);
	assert_true((r == 0) == (err.code == CMD_ERR_NONE));
	return err.code;
}

/* One console request over the real socket; the reply as JSON (caller frees). */
static json_t *ctl(const char *request)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char buf[8192];
	size_t len = 0;
	json_t *reply;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(addr.sun_path, sock_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
	for (int turn = 0; turn < 200 && !memchr(buf, '\n', len); turn++) {
		ssize_t n;

		wiring_settle(&w);
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
		if (n > 0)
			len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	reply = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (!json_is_object(reply))
		fail_msg("console reply to %s is not JSON: %s", request, buf);
	return reply;
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* ctl start: ok, or the refusal code. */
static void expect_start(const char *code)
{
	json_t *r = ctl("start\n");

	if (strcmp(str(r, "code"), code) != 0)
		fail_msg("start: %s (%s), want %s", str(r, "code"), str(r, "message"), code);
	assert_int_equal(json_is_true(json_object_get(r, "ok")), strcmp(code, "ok") == 0);
	json_decref(r);
}

/* What a cuff would read now: its last target, or deflated. */
static double cuff_pressure(size_t i)
{
	const struct gatt_peer *p = &w.peers[i];

	for (size_t k = p->n_cp; k-- > 0;) {
		if (p->cp[k].opcode == BFR_CP_SET_TARGET)
			return p->cp[k].set_target.mmhg;
		if (p->cp[k].opcode == BFR_CP_DEFLATE)
			break;
	}
	return 5.0;
}

/* Time passes with the cuffs reporting a sample every 100 ms, at their
 * target (the safety engine wants samples while inflated, and a deflation
 * confirmed). */
static void run_for(uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 100) {
		for (size_t i = 0; i < w.n_cuffs; i++) {
			double p = cuff_pressure(i);

			gatt_peer_notify(&w.peers[i], &p, 1, 0);
		}
		w.now += 100;
		wiring_settle(&w);
	}
}

static struct run *session_on(size_t cuff)
{
	return cuff_session_owner(w.cuffs[cuff]);
}

static bool inflating(struct wiring *x)
{
	return gatt_peer_count(&x->peers[0], BFR_CP_SET_TARGET) >= 1;
}

static bool ended(struct wiring *x)
{
	return x->ended_outcome[0] != '\0';
}

/* --- the prescription ------------------------------------------------------------------- */

static void test_prescription_checked_like_a_start(void **state)
{
	char msg[COMMAND_MESSAGE_MAX];

	setup_home(1, true, NULL);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_CLEAR, "{\"request_id\":\"c\"}", msg),
			 CMD_ERR_NOT_FOUND);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET("{\"name\":\"a\",\"cuffs\":[\"c9\"],\"pct_lop\":50,"
					   "\"mode\":\"cycle\",\"on_s\":30,\"off_s\":10,"
					   "\"cycles\":3,\"reperfusion_s\":60}",
					   TODAY ",\"supervision\":\"none\""),
				    msg),
			 CMD_ERR_UNKNOWN_CUFF);
	assert_non_null(strstr(msg, "plan.exercises[0].cuffs[0]: no such cuff c9"));
	/* leg: max_pct_lop 80 */
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET("{\"name\":\"a\",\"cuffs\":[\"c1\"],\"pct_lop\":90,"
					   "\"mode\":\"cycle\",\"on_s\":30,\"off_s\":10,"
					   "\"cycles\":3,\"reperfusion_s\":60}",
					   TODAY ",\"supervision\":\"none\""),
				    msg),
			 CMD_ERR_LIMIT_EXCEEDED);
	/* SR-26: 10 sets of 100 reps of 10 s without rest: inflated far beyond 600 s */
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET("{\"name\":\"a\",\"cuffs\":[\"c1\"],\"pct_lop\":50,"
					   "\"mode\":\"continuous\",\"sets\":[100],"
					   "\"tempo_s\":[5,5],\"rest_s\":0,\"reperfusion_s\":60}",
					   TODAY ",\"supervision\":\"none\""),
				    msg),
			 CMD_ERR_LIMIT_EXCEEDED);
	assert_non_null(strstr(msg, "max_inflation_s"));
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, "\"valid_from\":\"2026-11-01T00:00:00Z\","
						  "\"valid_until\":\"2026-11-24T09:00:00Z\","
						  "\"supervision\":\"none\""),
				    msg),
			 CMD_ERR_OUT_OF_RANGE);
	assert_non_null(strstr(msg, "valid_until: already past"));
	/* none of these set anything */
	expect_start("no_prescription");
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"supervision\":\"none\""), NULL),
			 CMD_ERR_NONE);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_CLEAR, "{\"request_id\":\"c\"}", NULL),
			 CMD_ERR_NONE);
	expect_start("no_prescription");
	teardown_home();
}

static void test_not_a_home_gateway(void **state)
{
	char msg[COMMAND_MESSAGE_MAX];

	setup_home(1, false, NULL);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"supervision\":\"none\""), msg),
			 CMD_ERR_BAD_STATE);
	assert_non_null(strstr(msg, "not a home gateway"));
	home_cuff_button(home, w.cuffs[0], true);
	wiring_settle(&w);
	assert_null(session_on(0));
	assert_int_equal(access(sock_path, F_OK), -1); /* no console either */
	teardown_home();
}

/* --- local starts and stops ------------------------------------------------------------- */

static void test_button_starts_only_the_plan_and_stops(void **state)
{
	setup_home(2, true, NULL);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"max_per_day\":3,\"supervision\":"
							"\"remote\""),
				    NULL),
			 CMD_ERR_NONE);
	/* a short press of an idle cuff does nothing */
	home_cuff_button(home, w.cuffs[0], false);
	wiring_settle(&w);
	assert_null(session_on(0));
	/* a cuff that is not in the plan starts nothing */
	home_cuff_button(home, w.cuffs[1], true);
	wiring_settle(&w);
	assert_null(session_on(0));
	assert_null(session_on(1));
	/* a long press of c1: the prescribed plan, on c1 */
	home_cuff_button(home, w.cuffs[0], true);
	wiring_settle(&w);
	assert_non_null(session_on(0));
	wiring_run_until(&w, inflating);
	assert_true(w.peers[0].cp[w.peers[0].n_cp - 1].set_target.mmhg == 100.0);
	expect_start("session_running");
	/* a short press of the cuff in the session stops it: DEFLATE */
	home_cuff_button(home, w.cuffs[0], false);
	wiring_run_until(&w, ended);
	wiring_settle(&w);
	assert_string_equal(w.ended_outcome, "stopped");
	assert_true(gatt_peer_count(&w.peers[0], BFR_CP_DEFLATE) >= 1);
	assert_null(session_on(0));
	teardown_home();
}

/* A press held long during a session stops it too: pressing means stop. */
static void test_long_press_during_a_session_stops_it(void **state)
{
	setup_home(1, true, NULL);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"max_per_day\":2,\"supervision\":\"none\""),
				    NULL),
			 CMD_ERR_NONE);
	expect_start("ok");
	assert_non_null(session_on(0));
	home_cuff_button(home, w.cuffs[0], true);
	wiring_run_until(&w, ended);
	assert_string_equal(w.ended_outcome, "stopped");
	teardown_home();
}

/* max_per_day and min_hours_between on the wall clock; the console says why. */
static void test_rules_of_the_day(void **state)
{
	json_t *r;

	setup_home(1, true, NULL);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"max_per_day\":2,\"min_hours_between\":"
							"4,\"supervision\":\"none\""),
				    NULL),
			 CMD_ERR_NONE);
	expect_start("ok");
	r = ctl("stop\n");
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	wiring_run_until(&w, ended);
	run_for(1000); /* deflated */
	r = ctl("stop\n");
	assert_string_equal(str(r, "code"), "no_session");
	json_decref(r);
	/* 2 h later: too soon, and the console says when */
	w.now += 2 * HOUR_MS;
	wiring_settle(&w);
	r = ctl("start\n");
	assert_string_equal(str(r, "code"), "too_soon");
	assert_non_null(strstr(str(r, "message"), "You can start the next one in 2 h"));
	json_decref(r);
	/* 4 h after the first: the second of the day */
	w.now += 2 * HOUR_MS;
	w.ended_outcome[0] = '\0';
	expect_start("ok");
	expect_start("session_running");
	r = ctl("stop\n");
	json_decref(r);
	wiring_run_until(&w, ended);
	run_for(1000);
	w.now += 5 * HOUR_MS; /* 18:46 UTC: still the same day */
	wiring_settle(&w);
	expect_start("daily_limit");
	w.now += 6 * HOUR_MS; /* 00:46 the next day */
	wiring_settle(&w);
	expect_start("ok");
	teardown_home();
}

static void test_window(void **state)
{
	setup_home(1, true, NULL);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, "\"valid_from\":\"2026-11-24T11:00:00+01:00\","
						  "\"valid_until\":\"2026-11-24T12:00:00Z\","
						  "\"supervision\":\"none\""),
				    NULL),
			 CMD_ERR_NONE);
	expect_start("not_yet_valid"); /* 09:46:40 UTC, it starts at 10:00 UTC */
	w.now += HOUR_MS / 4;
	wiring_settle(&w);
	expect_start("ok");
	teardown_home();
}

/* The console's status and what it refuses to understand. */
static void test_console(void **state)
{
	json_t *r;

	setup_home(1, true, NULL);
	r = ctl("status\n");
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_true(json_is_null(json_object_get(r, "prescription")));
	assert_string_equal(str(json_object_get(r, "may_start"), "code"), "no_prescription");
	json_decref(r);
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"supervision\":\"live\""), NULL),
			 CMD_ERR_NONE);
	r = ctl("status\r\n");
	assert_string_equal(str(json_object_get(r, "prescription"), "supervision"), "live");
	assert_string_equal(str(json_object_get(r, "prescription"), "request_id"), "rx-1");
	assert_string_equal(str(json_object_get(r, "may_start"), "code"), "supervisor_absent");
	assert_false(json_is_true(json_object_get(json_object_get(r, "supervision"), "present")));
	assert_string_equal(str(json_array_get(json_object_get(r, "cuffs"), 0), "link"),
			    "connected");
	assert_true(json_array_size(json_object_get(r, "text")) >= 5);
	json_decref(r);
	r = ctl("start --plan {}\n");
	assert_string_equal(str(r, "code"), "bad_request");
	json_decref(r);
	r = ctl("START\n");
	assert_string_equal(str(r, "code"), "bad_request");
	json_decref(r);
	assert_null(session_on(0));
	teardown_home();
}

/* A request longer than a line is refused; a silent client is closed. */
static void test_console_bad_clients(void **state)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char big[CTL_LINE_MAX + 10], buf[512];
	ssize_t n = 0;
	int fd;

	setup_home(1, true, NULL);
	memset(big, 'a', sizeof(big));
	strcpy(addr.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(send(fd, big, sizeof(big), MSG_NOSIGNAL), (ssize_t)sizeof(big));
	for (int turn = 0; turn < 100 && n <= 0; turn++) {
		wiring_settle(&w);
		n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	}
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"code\":\"bad_request\""));
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	wiring_settle(&w);
	w.now += CTL_CLIENT_TIMEOUT_MS;
	wiring_settle(&w);
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, 0); /* closed by the gateway */
	close(fd);
	teardown_home();
}

/* --- live supervision ------------------------------------------------------------------- */

static void presence(const char *json)
{
	home_supervisor_message(home, (const uint8_t *)json, strlen(json));
	wiring_settle(&w);
}

static enum session_phase phase(void)
{
	struct session_state st;
	struct run *run = session_on(0);

	assert_non_null(run);
	assert_int_equal(run_state(run, &st), 0);
	return st.phase;
}

static void test_live_pauses_after_grace_and_stays_paused(void **state)
{
	struct command_error err = { 0 };
	size_t deflates;
	char sid[SESSION_ID_BUF];

	setup_home(1, true, "supervisor_grace_s = 10;");
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"supervision\":\"live\""), NULL),
			 CMD_ERR_NONE);
	presence("{\"state\":\"online\",\"by\":\"dr-lee\"}");
	expect_start("supervisor_absent"); /* not connected to MQTT: nobody can watch */
	home_connected(home);
	presence("{\"state\":\"online\",\"by\":\"dr-lee\"}");
	expect_start("ok");
	wiring_run_until(&w, inflating);
	run_for(2000);
	assert_int_equal(phase(), SESSION_PHASE_SET);
	snprintf(sid, sizeof(sid), "%s", run_id(session_on(0)));
	/* the presence dies (the console's Last Will) */
	presence("{\"state\":\"offline\"}");
	deflates = gatt_peer_count(&w.peers[0], BFR_CP_DEFLATE);
	run_for(9900);
	assert_int_equal(phase(), SESSION_PHASE_SET);
	assert_int_equal(home_check_resume(home, sid, &err, "r"), -EPERM);
	assert_int_equal(err.code, CMD_ERR_BAD_STATE);
	run_for(200);
	assert_int_equal(phase(), SESSION_PHASE_PAUSED);
	assert_int_equal(gatt_peer_count(&w.peers[0], BFR_CP_DEFLATE), deflates + 1);
	/* resumed anyway while nobody watches (after the reperfusion time):
	 * paused again within a second */
	run_for(61000);
	assert_int_equal(run_resume(session_on(0), &err, "r"), 0);
	assert_int_not_equal(phase(), SESSION_PHASE_PAUSED);
	run_for(1000);
	assert_int_equal(phase(), SESSION_PHASE_PAUSED);
	/* the clinician is back: it stays paused until they resume it */
	presence("{\"state\":\"online\",\"by\":\"dr-lee\"}");
	run_for(20000);
	assert_int_equal(phase(), SESSION_PHASE_PAUSED);
	assert_int_equal(home_check_resume(home, sid, &err, "r"), 0);
	teardown_home();
}

/* Back within the grace period: nothing happens. The bridge going down
 * counts as the clinician gone; so does the gateway's own connection. */
static void test_live_grace_bridge_and_connection(void **state)
{
	setup_home(1, true, "supervisor_grace_s = 5;");
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"supervision\":\"live\""), NULL),
			 CMD_ERR_NONE);
	home_connected(home);
	presence("{\"state\":\"online\",\"by\":\"dr-lee\"}");
	expect_start("ok");
	wiring_run_until(&w, inflating);
	presence("");
	run_for(4000);
	presence("{\"state\":\"online\",\"by\":\"dr-lee\"}");
	run_for(6000);
	assert_int_not_equal(phase(), SESSION_PHASE_PAUSED);
	home_bridge_state(home, (const uint8_t *)"0", 1);
	expect_start("session_running");
	run_for(4900);
	assert_int_not_equal(phase(), SESSION_PHASE_PAUSED);
	run_for(200);
	assert_int_equal(phase(), SESSION_PHASE_PAUSED);
	home_bridge_state(home, (const uint8_t *)"1", 1);
	teardown_home();

	setup_home(1, true, "supervisor_grace_s = 0;");
	assert_int_equal(rx_command(CMD_PRESCRIPTION_SET,
				    RX_SET(EX_C1, TODAY ",\"supervision\":\"live\""), NULL),
			 CMD_ERR_NONE);
	home_connected(home);
	presence("{\"state\":\"online\",\"by\":\"dr-lee\"}");
	expect_start("ok");
	wiring_run_until(&w, inflating);
	run_for(500);
	home_disconnected(home);
	run_for(100);
	assert_int_equal(phase(), SESSION_PHASE_PAUSED);
	/* a presence that makes no sense is no presence */
	home_connected(home);
	presence("{\"state\":\"watching\",\"by\":\"dr-lee\"}");
	expect_start("session_running");
	teardown_home();
}

/* --- who may use the console ------------------------------------------------------------ */

/* A child process as uid 65534 (and in group gid, if not -1) asks for status. */
static json_t *ctl_as(uid_t uid, gid_t gid)
{
	int pipefd[2], status = 0;
	char buf[4096];
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		gid_t groups[1] = { gid };
		char reply[4096];
		ssize_t got = 0, k;
		int fd;

		close(pipefd[0]);
		if (setgroups(gid == (gid_t)-1 ? 0 : 1, groups) < 0 || setgid(65534) < 0 ||
		    setuid(uid) < 0)
			_exit(3);
		strcpy(addr.sun_path, sock_path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
			_exit(4);
		(void)send(fd, "status\n", 7, MSG_NOSIGNAL);
		while ((k = recv(fd, reply + got, sizeof(reply) - 1 - (size_t)got, 0)) > 0)
			got += k;
		if (got > 0 && write(pipefd[1], reply, (size_t)got) != got)
			_exit(5);
		_exit(0);
	}
	close(pipefd[1]);
	while (waitpid(pid, &status, WNOHANG) == 0)
		wiring_settle(&w);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	close(pipefd[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	return json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
}

static void test_console_permissions(void **state)
{
	json_t *r;

	if (geteuid() != 0) {
		print_message("not root: cannot run clients as other users; skipped\n");
		skip();
	}
	/* without a control group: root (this process) only */
	setup_home(1, true, NULL);
	r = ctl_as(65534, (gid_t)-1);
	assert_string_equal(str(r, "code"), "permission_denied");
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	teardown_home();
	/* with one: a member (supplementary group) may, others may not */
	setup_home(1, true, "control_group = \"root\";");
	r = ctl_as(65534, 0);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_non_null(json_object_get(r, "text"));
	json_decref(r);
	r = ctl_as(65534, (gid_t)-1);
	assert_string_equal(str(r, "code"), "permission_denied");
	json_decref(r);
	teardown_home();
}

/* After a failed check too: the next test needs the socket path free. */
static int cleanup(void **state)
{
	if (active)
		teardown_home();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_prescription_checked_like_a_start, cleanup),
		cmocka_unit_test_teardown(test_not_a_home_gateway, cleanup),
		cmocka_unit_test_teardown(test_button_starts_only_the_plan_and_stops, cleanup),
		cmocka_unit_test_teardown(test_long_press_during_a_session_stops_it, cleanup),
		cmocka_unit_test_teardown(test_rules_of_the_day, cleanup),
		cmocka_unit_test_teardown(test_window, cleanup),
		cmocka_unit_test_teardown(test_console, cleanup),
		cmocka_unit_test_teardown(test_console_bad_clients, cleanup),
		cmocka_unit_test_teardown(test_live_pauses_after_grace_and_stays_paused, cleanup),
		cmocka_unit_test_teardown(test_live_grace_bridge_and_connection, cleanup),
		cmocka_unit_test_teardown(test_console_permissions, cleanup),
	};

	/* The local day of the rules is the UTC day here. */
	setenv("TZ", "UTC", 1);
	tzset();
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
