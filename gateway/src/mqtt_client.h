/*
 * mqtt_client.h - MQTT 5 client on the event loop (Eclipse Paho MQTTAsync).
 *
 * Paho runs its own threads; its callbacks only queue an event under a
 * mutex and write an eventfd the loop watches. Every callback below
 * therefore runs on the loop thread, in the order Paho produced the events.
 *
 * Delivery contract: nothing is buffered here. publish() refuses with
 * -ENOTCONN while disconnected (the caller's outbox keeps the message);
 * on_publish_done reports each accepted publish exactly once: 0 when the
 * broker acknowledged it (QoS 1/2) or it was written (QoS 0), or a negative
 * errno (-ECONNRESET when the connection dropped first, -EACCES when the
 * broker refused it, -EIO otherwise). A publish that was reported failed
 * may still have reached the broker: consumers dedupe on msg_id.
 *
 * Connection: clean start on every connect; the client reconnects by itself
 * with jittered exponential backoff (reconnect_min_ms..reconnect_max_ms,
 * default 1 s..30 s) from a loop timer, restores every subscription, and
 * calls on_connected after every successful (re)connect and on_disconnected
 * once per lost connection. The Last Will (e.g. a retained "offline" status)
 * is also sent on mqtt_client_free(): it disconnects with reason 0x04
 * "disconnect with Will Message".
 *
 * Not thread-safe: call everything from the loop thread. Do not free the
 * client from inside one of its own callbacks.
 */
#ifndef BFR_MQTT_CLIENT_H
#define BFR_MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct mqtt_client;

/* Messages Paho may hold un-sent at once (connected or not). */
#define MQTT_CLIENT_MAX_BUFFERED 16384

struct mqtt_client_options {
	const char *uri;       /* mqtt:// tcp:// ws:// or (TLS) mqtts:// ssl:// wss:// */
	const char *client_id;
	const char *username;  /* NULL: none */
	const char *password;  /* NULL: none */
	unsigned keepalive_s;  /* 0: 10 */
	const char *ca_file;   /* TLS only; NULL: system CA store */
	const char *cert_file; /* TLS client certificate, with key_file; NULL: none */
	const char *key_file;
	const char *will_topic; /* NULL: no will */
	const void *will_payload;
	size_t will_len;
	int will_qos;
	bool will_retain;
	unsigned reconnect_min_ms; /* 0: 1000 */
	unsigned reconnect_max_ms; /* 0: 30000 */
};

struct mqtt_client_callbacks {
	/* After every successful connect; subscriptions are already re-sent. */
	void (*on_connected)(struct mqtt_client *client, bool session_present, void *user_data);
	/* Once per lost connection (not for failed connect attempts). */
	void (*on_disconnected)(struct mqtt_client *client, const char *reason, void *user_data);
	/*
	 * payload is also NUL-terminated (not counted in len). response_topic
	 * and correlation are the MQTT 5 request/response properties, NULL when
	 * absent.
	 */
	void (*on_message)(struct mqtt_client *client, const char *topic, const uint8_t *payload,
			   size_t len, const char *response_topic, const uint8_t *correlation,
			   size_t correlation_len, void *user_data);
	void (*on_publish_done)(struct mqtt_client *client, uint64_t tag, int result,
				void *user_data);
};

/*
 * Copies options and callbacks (any callback may be NULL). Does not connect
 * yet. -EINVAL for missing uri/client_id or an unsupported URI scheme.
 */
int mqtt_client_new(struct loop *loop, const struct mqtt_client_options *options,
		    const struct mqtt_client_callbacks *callbacks, void *user_data,
		    struct mqtt_client **out);
/* Starts connecting (and reconnecting from then on). -EALREADY if started. */
int mqtt_client_start(struct mqtt_client *client);

/*
 * qos 0..2. -ENOTCONN while not connected, -EINVAL for bad arguments,
 * -EAGAIN when Paho's command queue is full (a burst of several hundred
 * publishes faster than the socket drains): keep it in the outbox, retry.
 */
int mqtt_client_publish(struct mqtt_client *client, const char *topic, const void *payload,
			size_t len, int qos, bool retain, uint64_t tag);
/* QoS 1 reply carrying the request's Correlation Data; its result is not reported. */
int mqtt_client_publish_reply(struct mqtt_client *client, const char *response_topic,
			      const uint8_t *correlation, size_t correlation_len,
			      const void *payload, size_t len);
/* Remembered and re-sent on every reconnect; sent now if connected. */
int mqtt_client_subscribe(struct mqtt_client *client, const char *filter, int qos);
bool mqtt_client_is_connected(const struct mqtt_client *client);

/*
 * Disconnects (with the will, waiting at most ~1 s for the broker), stops
 * Paho's threads and frees everything. Callbacks never run afterwards;
 * publishes still in flight are not reported.
 */
void mqtt_client_free(struct mqtt_client *client);

#endif
