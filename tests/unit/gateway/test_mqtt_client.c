/*
 * test_mqtt_client.c - the MQTT client against a real mosquitto on loopback.
 *
 * Starts mosquitto on a free port, then: connect, subscribe, QoS 0/1
 * publishes coming back to us, MQTT 5 request/response properties, broker
 * killed (on_disconnected, -ENOTCONN), broker restarted on the same port
 * (on_connected again, subscriptions restored), the Last Will on free.
 * Every wait runs the loop until a condition holds or a deadline passes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"
#include "mqtt_client.h"
#include "test_alloc.h"

extern char **environ;

#define WAIT_MS 10000
#define MAX_MSGS 32

struct broker {
	pid_t pid;
	int port;
	char dir[64];
	char conf[128];
};

static struct broker broker;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static bool port_open(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool open;

	assert_true(fd >= 0);
	open = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return open;
}

static pid_t spawn(char *const argv[])
{
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t none;
	pid_t pid;

	sigemptyset(&none);
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	assert_int_equal(posix_spawnp(&pid, argv[0], &actions, &attr, argv, environ), 0);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	return pid;
}

static void broker_start(void)
{
	char *argv[] = { "mosquitto", "-c", broker.conf, NULL };
	uint64_t deadline = now_ms() + WAIT_MS;

	broker.pid = spawn(argv);
	/* Wait for the listener, polling with a deadline (the broker gives no other signal). */
	while (!port_open(broker.port)) {
		struct timespec pause = { 0, 10 * 1000000L };

		assert_true(now_ms() < deadline);
		assert_int_equal(waitpid(broker.pid, NULL, WNOHANG), 0); /* still alive */
		nanosleep(&pause, NULL);
	}
}

static void broker_kill(void)
{
	assert_int_equal(kill(broker.pid, SIGKILL), 0);
	assert_int_equal(waitpid(broker.pid, NULL, 0), broker.pid);
	broker.pid = 0;
}

static int setup(void **state)
{
	FILE *f;

	strcpy(broker.dir, "/tmp/bfr-mqtt-XXXXXX");
	if (!mkdtemp(broker.dir))
		return -1;
	snprintf(broker.conf, sizeof(broker.conf), "%s/mosquitto.conf", broker.dir);
	broker.port = free_port();
	f = fopen(broker.conf, "w");
	if (!f)
		return -1;
	fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
		   "log_dest none\n",
		broker.port);
	fclose(f);
	broker_start();
	return 0;
}

static int teardown(void **state)
{
	if (broker.pid > 0)
		broker_kill();
	unlink(broker.conf);
	rmdir(broker.dir);
	return 0;
}

/* ---- recording callbacks ------------------------------------------------- */

struct msg {
	char topic[128];
	uint8_t payload[256];
	size_t len;
	bool has_rt;
	char rt[128];
	bool has_corr;
	uint8_t corr[64];
	size_t corr_len;
};

struct rec {
	int connected;
	int disconnected;
	char reason[256];
	int done;
	uint64_t done_tags[MAX_MSGS];
	int done_results[MAX_MSGS];
	int msgs;
	struct msg msg[MAX_MSGS];
};

static void on_connected(struct mqtt_client *c, bool session_present, void *user_data)
{
	struct rec *r = user_data;

	assert_true(mqtt_client_is_connected(c));
	assert_false(session_present); /* clean start */
	r->connected++;
}

static void on_disconnected(struct mqtt_client *c, const char *reason, void *user_data)
{
	struct rec *r = user_data;

	assert_false(mqtt_client_is_connected(c));
	assert_non_null(reason);
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	r->disconnected++;
}

static void on_message(struct mqtt_client *c, const char *topic, const uint8_t *payload,
		       size_t len, const char *response_topic, const uint8_t *correlation,
		       size_t correlation_len, void *user_data)
{
	struct rec *r = user_data;
	struct msg *m;

	assert_true(r->msgs < MAX_MSGS);
	assert_true(len < sizeof(m->payload));
	assert_int_equal(payload[len], '\0');
	m = &r->msg[r->msgs++];
	snprintf(m->topic, sizeof(m->topic), "%s", topic);
	memcpy(m->payload, payload, len);
	m->len = len;
	if (response_topic) {
		m->has_rt = true;
		snprintf(m->rt, sizeof(m->rt), "%s", response_topic);
	}
	if (correlation) {
		assert_true(correlation_len <= sizeof(m->corr));
		m->has_corr = true;
		memcpy(m->corr, correlation, correlation_len);
		m->corr_len = correlation_len;
	}
}

static void on_publish_done(struct mqtt_client *c, uint64_t tag, int result, void *user_data)
{
	struct rec *r = user_data;

	assert_true(r->done < MAX_MSGS);
	r->done_tags[r->done] = tag;
	r->done_results[r->done++] = result;
}

static const struct mqtt_client_callbacks callbacks = {
	.on_connected = on_connected,
	.on_disconnected = on_disconnected,
	.on_message = on_message,
	.on_publish_done = on_publish_done,
};

/* Runs the loop until *counter >= value or the deadline passes. */
static void wait_for(struct loop *loop, const int *counter, int value)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (*counter < value && now_ms() < deadline)
		assert_int_equal(loop_run_once(loop, 50), 0);
	if (*counter < value)
		fail_msg("timed out waiting for %d (have %d)", value, *counter);
}

static const struct msg *find_msg(const struct rec *r, const char *topic)
{
	for (int i = 0; i < r->msgs; i++)
		if (strcmp(r->msg[i].topic, topic) == 0)
			return &r->msg[i];
	return NULL;
}

static void wait_for_msg(struct loop *loop, struct rec *r, const char *topic)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (!find_msg(r, topic) && now_ms() < deadline)
		assert_int_equal(loop_run_once(loop, 50), 0);
	if (!find_msg(r, topic))
		fail_msg("timed out waiting for a message on %s", topic);
}

static int done_result(const struct rec *r, uint64_t tag)
{
	for (int i = 0; i < r->done; i++)
		if (r->done_tags[i] == tag)
			return r->done_results[i];
	fail_msg("no publish_done for tag %llu", (unsigned long long)tag);
	return 1;
}

static void make_options(struct mqtt_client_options *o, char *uri, size_t urilen,
			 const char *client_id)
{
	snprintf(uri, urilen, "mqtt://127.0.0.1:%d", broker.port);
	memset(o, 0, sizeof(*o));
	o->uri = uri;
	o->client_id = client_id;
	o->keepalive_s = 5;
	o->reconnect_min_ms = 100;
	o->reconnect_max_ms = 800;
}

/* ---- tests --------------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
	struct loop *loop = NULL;
	struct mqtt_client *c = (struct mqtt_client *)0x1;
	struct mqtt_client_options o;
	char uri[64];

	assert_int_equal(loop_new(&loop), 0);
	make_options(&o, uri, sizeof(uri), "bad-args");
	assert_int_equal(mqtt_client_new(NULL, &o, &callbacks, NULL, &c), -EINVAL);
	assert_int_equal(mqtt_client_new(loop, NULL, &callbacks, NULL, &c), -EINVAL);
	o.client_id = "";
	assert_int_equal(mqtt_client_new(loop, &o, &callbacks, NULL, &c), -EINVAL);
	o.client_id = "x";
	o.uri = "http://127.0.0.1:1";
	assert_int_equal(mqtt_client_new(loop, &o, &callbacks, NULL, &c), -EINVAL);
	o.uri = uri;
	o.will_topic = "w";
	o.will_qos = 3;
	assert_int_equal(mqtt_client_new(loop, &o, &callbacks, NULL, &c), -EINVAL);
	assert_ptr_equal(c, (struct mqtt_client *)0x1);

	o.will_qos = 1;
	assert_int_equal(mqtt_client_new(loop, &o, &callbacks, NULL, &c), 0);
	assert_false(mqtt_client_is_connected(c));
	assert_int_equal(mqtt_client_publish(c, "t", "x", 1, 3, false, 1), -EINVAL);
	assert_int_equal(mqtt_client_publish(c, "", "x", 1, 0, false, 1), -EINVAL);
	assert_int_equal(mqtt_client_publish(c, NULL, "x", 1, 0, false, 1), -EINVAL);
	assert_int_equal(mqtt_client_publish(c, "t", NULL, 1, 0, false, 1), -EINVAL);
	assert_int_equal(mqtt_client_publish(c, "t", "x", 1, 1, false, 1), -ENOTCONN);
	assert_int_equal(mqtt_client_publish_reply(c, "r", NULL, 3, "x", 1), -EINVAL);
	assert_int_equal(mqtt_client_subscribe(c, "t/#", 5), -EINVAL);
	assert_int_equal(mqtt_client_subscribe(c, "", 0), -EINVAL);
	/* Subscribing before connecting is remembered, not refused. */
	assert_int_equal(mqtt_client_subscribe(c, "t/#", 1), 0);
	assert_int_equal(mqtt_client_subscribe(c, "t/#", 1), -EEXIST);
	mqtt_client_free(c);
	mqtt_client_free(NULL);
	loop_free(loop);
}

static void test_allocation_failure(void **state)
{
	struct loop *loop = NULL;
	struct mqtt_client_options o;
	char uri[64];
	int r = -ENOMEM;

	assert_int_equal(loop_new(&loop), 0);
	make_options(&o, uri, sizeof(uri), "alloc");
	o.username = "user";
	o.password = "pw";
	o.will_topic = "w/status";
	o.will_payload = "offline";
	o.will_len = 7;
	for (long n = 0; n < 50 && r != 0; n++) {
		struct mqtt_client *c = (struct mqtt_client *)0x1;

		test_alloc_fail_after(n);
		r = mqtt_client_new(loop, &o, &callbacks, NULL, &c);
		test_alloc_reset();
		if (r == 0) {
			mqtt_client_free(c);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		assert_ptr_equal(c, (struct mqtt_client *)0x1);
	}
	assert_int_equal(r, 0);
	loop_free(loop);
}

static void run_mosquitto_pub(const char *topic, const char *message, const char *response_topic,
			      const char *correlation)
{
	char port[16];
	char *argv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "5", "-q", "1",
			 "-t", (char *)topic, "-m", (char *)message, "-D", "publish",
			 "response-topic", (char *)response_topic, "-D", "publish",
			 "correlation-data", (char *)correlation, NULL };
	int status;
	pid_t pid;

	snprintf(port, sizeof(port), "%d", broker.port);
	pid = spawn(argv);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_end_to_end(void **state)
{
	static const uint8_t binary[] = { 'a', 0, 0xff, 0x80, '\n', 'z' };
	struct loop *loop = NULL;
	struct mqtt_client *c = NULL, *watcher = NULL;
	struct mqtt_client_options o, wo;
	struct rec r = { 0 }, w = { 0 };
	const struct msg *m;
	char uri[64], wuri[64];
	int done_before;

	assert_int_equal(loop_new(&loop), 0);
	make_options(&o, uri, sizeof(uri), "gw-under-test");
	o.will_topic = "bfr/v1/site/gw/status";
	o.will_payload = "{\"state\":\"offline\"}";
	o.will_len = strlen(o.will_payload);
	o.will_qos = 1;
	o.will_retain = true;
	assert_int_equal(mqtt_client_new(loop, &o, &callbacks, &r, &c), 0);
	assert_int_equal(mqtt_client_subscribe(c, "t/#", 1), 0);
	assert_int_equal(mqtt_client_publish(c, "t/early", "x", 1, 1, false, 1), -ENOTCONN);
	assert_int_equal(mqtt_client_start(c), 0);
	assert_int_equal(mqtt_client_start(c), -EALREADY);
	wait_for(loop, &r.connected, 1);
	assert_true(mqtt_client_is_connected(c));

	/* The subscription went out before these, on the same connection. */
	assert_int_equal(mqtt_client_publish(c, "t/zero", "q0", 2, 0, false, 10), 0);
	assert_int_equal(mqtt_client_publish(c, "t/one", binary, sizeof(binary), 1, false, 11), 0);
	assert_int_equal(mqtt_client_publish(c, "t/empty", NULL, 0, 1, false, 12), 0);
	wait_for(loop, &r.done, 3);
	assert_int_equal(done_result(&r, 10), 0);
	assert_int_equal(done_result(&r, 11), 0);
	assert_int_equal(done_result(&r, 12), 0);
	wait_for_msg(loop, &r, "t/zero");
	wait_for_msg(loop, &r, "t/one");
	wait_for_msg(loop, &r, "t/empty");
	m = find_msg(&r, "t/one");
	assert_int_equal(m->len, sizeof(binary));
	assert_memory_equal(m->payload, binary, sizeof(binary));
	assert_false(m->has_rt);
	assert_false(m->has_corr);
	assert_int_equal(find_msg(&r, "t/empty")->len, 0);

	/* Out of memory while connected: refused, nothing reported later. */
	done_before = r.done;
	test_alloc_fail_after(0);
	assert_int_equal(mqtt_client_publish(c, "t/nomem", "x", 1, 1, false, 30), -ENOMEM);
	assert_int_equal(mqtt_client_subscribe(c, "nomem/#", 1), -ENOMEM);
	test_alloc_reset();
	assert_int_equal(r.done, done_before);

	/* MQTT 5 request/response: properties in, correlation back out. */
	run_mosquitto_pub("t/request", "{\"request_id\":\"r1\"}", "t/replies/r1", "corr-42");
	wait_for_msg(loop, &r, "t/request");
	m = find_msg(&r, "t/request");
	assert_true(m->has_rt);
	assert_string_equal(m->rt, "t/replies/r1");
	assert_true(m->has_corr);
	assert_int_equal(m->corr_len, 7);
	assert_memory_equal(m->corr, "corr-42", 7);
	done_before = r.done;
	assert_int_equal(mqtt_client_publish_reply(c, m->rt, m->corr, m->corr_len, "{\"ok\":true}",
						   11),
			 0);
	wait_for_msg(loop, &r, "t/replies/r1");
	m = find_msg(&r, "t/replies/r1");
	assert_true(m->has_corr);
	assert_memory_equal(m->corr, "corr-42", 7);
	assert_int_equal(r.done, done_before); /* replies are not reported */

	/* Broker dies: one on_disconnected, publishing refused. */
	broker_kill();
	wait_for(loop, &r.disconnected, 1);
	assert_false(mqtt_client_is_connected(c));
	assert_true(strlen(r.reason) > 0);
	assert_int_equal(mqtt_client_publish(c, "t/lost", "x", 1, 1, false, 20), -ENOTCONN);

	/* Broker back on the same port: reconnect, subscriptions restored. */
	broker_start();
	wait_for(loop, &r.connected, 2);
	assert_int_equal(r.disconnected, 1);
	assert_int_equal(mqtt_client_publish(c, "t/again", "back", 4, 1, false, 21), 0);
	wait_for_msg(loop, &r, "t/again");
	wait_for(loop, &r.done, done_before + 1);
	assert_int_equal(done_result(&r, 21), 0);

	/* The will (retained offline status) is published on a clean free too. */
	make_options(&wo, wuri, sizeof(wuri), "watcher");
	assert_int_equal(mqtt_client_new(loop, &wo, &callbacks, &w, &watcher), 0);
	assert_int_equal(mqtt_client_subscribe(watcher, "bfr/v1/site/gw/status", 1), 0);
	assert_int_equal(mqtt_client_start(watcher), 0);
	wait_for(loop, &w.connected, 1);
	/* Subscription acknowledged once an own message comes back through it. */
	assert_int_equal(mqtt_client_subscribe(watcher, "w/ping", 0), 0);
	assert_int_equal(mqtt_client_publish(watcher, "w/ping", "p", 1, 1, false, 1), 0);
	wait_for_msg(loop, &w, "w/ping");
	mqtt_client_free(c);
	wait_for_msg(loop, &w, "bfr/v1/site/gw/status");
	m = find_msg(&w, "bfr/v1/site/gw/status");
	assert_int_equal(m->len, strlen("{\"state\":\"offline\"}"));
	assert_memory_equal(m->payload, "{\"state\":\"offline\"}", m->len);
	mqtt_client_free(watcher);
	loop_free(loop);
}

/* Connecting to a dead port keeps retrying quietly; free stops it cleanly. */
static void test_no_broker(void **state)
{
	struct loop *loop = NULL;
	struct mqtt_client *c = NULL;
	struct mqtt_client_options o;
	struct rec r = { 0 };
	char uri[64];
	uint64_t deadline;

	assert_int_equal(loop_new(&loop), 0);
	make_options(&o, uri, sizeof(uri), "nobody");
	snprintf(uri, sizeof(uri), "mqtt://127.0.0.1:%d", free_port());
	assert_int_equal(mqtt_client_new(loop, &o, &callbacks, &r, &c), 0);
	assert_int_equal(mqtt_client_start(c), 0);
	/* Long enough for several attempts at 100..800 ms. */
	deadline = now_ms() + 1500;
	while (now_ms() < deadline)
		assert_int_equal(loop_run_once(loop, 50), 0);
	assert_int_equal(r.connected, 0);
	assert_int_equal(r.disconnected, 0);
	assert_false(mqtt_client_is_connected(c));
	mqtt_client_free(c);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_allocation_failure),
		cmocka_unit_test(test_end_to_end),
		cmocka_unit_test(test_no_broker),
	};

	/* A dead broker must not kill the test with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
