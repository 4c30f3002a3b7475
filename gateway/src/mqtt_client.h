/*
 * mqtt_client.h - MQTT 5 client on the event loop (Eclipse Paho MQTTAsync).
 *
 * Paho runs its own threads; its callbacks only queue an event under a
 * mutex and write an eventfd the loop watches. Every callback below
 * therefore runs on the loop thread, in the order Paho produced the events.
 * Publishing never calls into Paho on the loop thread: a publish is copied
 * and handed to Paho by the client's sender thread, in order, after the
 * loop turn (see publish() in mqtt_client.c). Paho's send and receive
 * threads and the sender run SCHED_BATCH once connected: woken by a
 * publish (or by the network), they never preempt the event loop, whose
 * safety checks come first.
 *
 * Delivery contract: nothing is buffered here. publish() refuses with
 * -ENOTCONN while disconnected (the caller's outbox keeps the message);
 * each accepted publish is reported exactly once, through on_publish_result
 * when it is set, else through on_publish_done, with `result`:
 *   0            the broker acknowledged it (QoS 1/2; PUBACK reason < 0x80,
 *                e.g. 0x10 "No matching subscribers") or it was written (QoS 0);
 *   -EACCES      the broker refused it: PUBACK reason code >= 0x80, e.g.
 *                0x87 "Not authorized" (ACL), 0x97 "Quota exceeded", 0x95
 *                "Packet too large" (mosquitto's message_size_limit),
 *                0x90 "Topic Name invalid";
 *                on_publish_result carries the code and its text;
 *   -ECONNRESET  the connection dropped before the PUBACK;
 *   -EIO         anything else (no PUBACK: Paho gave up on it).
 * A result of 0 is reported at most about 1 ms after the PUBACK (they are
 * collected, not each handed over on its own); failures at once.
 * Only 0 means the broker has the message; every other result leaves the
 * caller's copy where it is. A publish that was reported failed may still
 * have reached the broker: consumers dedupe on msg_id.
 *
 * Connection: clean start on every connect, announcing an MQTT 5 Maximum
 * Packet Size (max_packet_size) so the broker never sends bigger packets;
 * a message that arrives bigger anyway is dropped before it is copied and
 * counted (mqtt_client_get_stats). The client reconnects by itself
 * with jittered exponential backoff (reconnect_min_ms..reconnect_max_ms,
 * default 1 s..30 s) from a loop timer, restores every subscription, and
 * calls on_connected after every successful (re)connect and on_disconnected
 * once per lost connection. The Last Will (e.g. a retained "offline" status)
 * is also sent on mqtt_client_free(): it disconnects with reason 0x04
 * "disconnect with Will Message".
 *
 * Diagnostics (log lines, rate-limited: a repeated reason at most once a
 * minute, with the count of attempts in between): a refused connect names
 * the CONNACK reason ("Bad user name or password", "Not authorized"); a
 * connect that fails below MQTT is diagnosed by one handshake of our own on
 * a helper thread (tls_check.h): unreachable, not TLS, broker certificate
 * not signed by ca_file, host name mismatch, client certificate refused.
 * With TLS the client certificate's and CA's expiry is logged at start
 * and daily: a warning from 30 days before, an error once expired.
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

/* Publishes accepted and not yet completed (in the sender's queue or in
 * Paho's) at once; beyond it publish() says -EAGAIN. */
#define MQTT_CLIENT_MAX_BUFFERED 16384
/*
 * Default Maximum Packet Size announced on CONNECT: a command payload of
 * 64 KiB (COMMAND_PAYLOAD_MAX) plus room for its topic and properties, so
 * a command just over the limit still arrives and is refused with a reply.
 */
#define MQTT_CLIENT_DEFAULT_MAX_PACKET (64u * 1024u + 4096u)
/* Days before a certificate's expiry from which it is logged as a warning. */
#define MQTT_CLIENT_CERT_WARN_DAYS 30

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
	/* 0: MQTT_CLIENT_DEFAULT_MAX_PACKET; otherwise 128..268435455 bytes. */
	uint32_t max_packet_size;
	/*
	 * Incoming messages handed to on_message per loop turn (0: 16), after
	 * the turn's io and timer callbacks (a loop post hook): a flood of
	 * messages can never hold the loop longer than that many callbacks.
	 */
	unsigned messages_per_turn;
	/* Messages waiting beyond this (0: 1024) are shed: kept without their
	 * payload (msg->shed) so the owner can refuse them cheaply; beyond
	 * twice it they are dropped, counted (stats.messages_dropped). */
	unsigned max_queued_messages;
	/* Messages on exactly this topic go ahead of the others and are never
	 * shed (an e-stop must not wait behind a flood). NULL: none. */
	const char *priority_topic;
};

/* One incoming message; everything valid during the callback only. */
struct mqtt_message {
	const char *topic;
	const uint8_t *payload; /* also NUL-terminated (not counted in len); NULL when shed */
	size_t len;             /* the payload's size, also when shed */
	const char *response_topic; /* MQTT 5 Response Topic, NULL when absent */
	const uint8_t *correlation; /* MQTT 5 Correlation Data, NULL when absent */
	size_t correlation_len;
	bool retained; /* delivered because it was retained, not published just now */
	bool shed;     /* the queue was over max_queued_messages: payload not kept */
};

/* mqtt_client_subscribe_opts() flags */
#define MQTT_SUB_NO_RETAINED 0x1u /* retain handling 2: retained messages are not sent */

/* The outcome of one publish (see the delivery contract above). */
struct mqtt_publish_result {
	int result;
	/*
	 * The MQTT 5 reason code of the PUBACK (0, 0x10, or >= 0x80 when
	 * refused); 0 for a QoS 0 message that was written; -1 when no
	 * acknowledgement came (connection lost, local failure).
	 */
	int reason_code;
	const char *reason;        /* its text ("Not authorized"); "" when reason_code is -1 */
	const char *reason_string; /* the broker's Reason String property, or NULL */
};

/* Counters since mqtt_client_new(). */
struct mqtt_client_stats {
	uint64_t messages_shed;    /* handed over without payload (queue over the bound) */
	uint64_t messages_dropped; /* not handed over at all (queue over twice the bound) */
	uint64_t oversize_dropped; /* incoming messages larger than max_packet_size */
	size_t oversize_largest;   /* the largest such payload, bytes */
	uint64_t connect_failures; /* failed connect attempts */
	/* Publishes handed to a connection that was lost which Paho still held
	 * at the next connect: it sends them on the new connection before
	 * anything published after the connect (see handle_connected). */
	uint64_t stale_resent;
	/* Publishes accepted and not yet handed to Paho (the sender thread's
	 * queue, see mqtt_client_publish): normally 0 within a loop turn. */
	size_t publishes_queued;
	/* Why the last connect failed, as logged (after the diagnosis); "" none yet. */
	char last_failure[384];
};

struct mqtt_client_callbacks {
	/* After every successful connect; subscriptions are already re-sent. */
	void (*on_connected)(struct mqtt_client *client, bool session_present, void *user_data);
	/* Once per lost connection (not for failed connect attempts). */
	void (*on_disconnected)(struct mqtt_client *client, const char *reason, void *user_data);
	/* An incoming message, at most messages_per_turn per loop turn. */
	void (*on_message)(struct mqtt_client *client, const struct mqtt_message *msg,
			   void *user_data);
	/* Either of these two (on_publish_result wins when both are set). */
	void (*on_publish_done)(struct mqtt_client *client, uint64_t tag, int result,
				void *user_data);
	void (*on_publish_result)(struct mqtt_client *client, uint64_t tag,
				  const struct mqtt_publish_result *result, void *user_data);
};

/*
 * Copies options and callbacks (any callback may be NULL). Does not connect
 * yet. -EINVAL for missing uri/client_id, an unsupported URI scheme or a
 * max_packet_size out of range.
 */
int mqtt_client_new(struct loop *loop, const struct mqtt_client_options *options,
		    const struct mqtt_client_callbacks *callbacks, void *user_data,
		    struct mqtt_client **out);
/* Starts connecting (and reconnecting from then on). -EALREADY if started. */
int mqtt_client_start(struct mqtt_client *client);

/*
 * qos 0..2. -ENOTCONN while not connected, -EINVAL for bad arguments,
 * -EAGAIN when MQTT_CLIENT_MAX_BUFFERED publishes are already handed over
 * and not completed (faster than the socket drains): keep it in the
 * outbox, retry. Accepted means copied: the arguments may be reused at
 * once. A publish accepted just before the connection drops may still fail
 * without reaching Paho (-ECONNRESET, reported as any other).
 */
int mqtt_client_publish(struct mqtt_client *client, const char *topic, const void *payload,
			size_t len, int qos, bool retain, uint64_t tag);
/* The same with an MQTT 5 Message Expiry Interval (0: none): the broker
 * forgets the message, a retained one too, expiry_s after receiving it. */
int mqtt_client_publish_expiring(struct mqtt_client *client, const char *topic,
				 const void *payload, size_t len, int qos, bool retain,
				 uint32_t expiry_s, uint64_t tag);
/*
 * QoS 0 whose outcome nobody waits for (telemetry, a retained snapshot
 * refreshed every second): the exception to the delivery contract above,
 * it is never reported. Nothing is allocated for it here and its
 * completion only counts (an atomic add on Paho's thread): it does not
 * wake the loop (queue + eventfd) once per message, which at 20 000
 * telemetry messages a second was a loop wake-up each. expiry_s as in
 * mqtt_client_publish_expiring. -ENOTCONN, -EINVAL, -EAGAIN as
 * mqtt_client_publish.
 */
int mqtt_client_publish_unreported(struct mqtt_client *client, const char *topic,
				   const void *payload, size_t len, bool retain, uint32_t expiry_s);
/*
 * Unreported publishes of this connection still in Paho's queue (handed
 * over, neither written nor dropped yet). Counting starts over at every
 * connect. For flow control: Paho's queue is shared with the QoS 1 outbox,
 * and each of its sends scans it under the lock publish() needs.
 */
size_t mqtt_client_unreported_pending(struct mqtt_client *client);
/* QoS 1 reply carrying the request's Correlation Data; its result is not reported. */
int mqtt_client_publish_reply(struct mqtt_client *client, const char *response_topic,
			      const uint8_t *correlation, size_t correlation_len,
			      const void *payload, size_t len);
/* Remembered and re-sent on every reconnect; sent now if connected. */
int mqtt_client_subscribe(struct mqtt_client *client, const char *filter, int qos);
/* The same with MQTT_SUB_* flags. */
int mqtt_client_subscribe_opts(struct mqtt_client *client, const char *filter, int qos,
			       unsigned flags);
bool mqtt_client_is_connected(const struct mqtt_client *client);
/*
 * How many QoS 1 publishes the broker lets this connection have in flight
 * (its MQTT 5 Receive Maximum, from the CONNACK; MQTT_RECEIVE_MAXIMUM_NONE
 * when it announced none), valid from on_connected; 0 while not connected.
 * Paho keeps the ones over it at the head of its command queue, sends them
 * only at the next publish or a second later (a PUBACK does not wake its
 * send thread), and walks the whole queue at each publish added behind
 * them: a caller with many QoS 1 messages to send keeps fewer than this
 * many unacknowledged. A Receive Maximum of 0, a protocol error, is logged
 * and given as 1 (Paho then sends no QoS 1 message and no SUBSCRIBE).
 */
#define MQTT_RECEIVE_MAXIMUM_NONE 65535u
unsigned mqtt_client_receive_maximum(const struct mqtt_client *client);
/*
 * True when the loaded Paho library was built with its debugging heap
 * tracking (without PAHO_HIGH_PERFORMANCE, as Debian 12 builds it): every
 * allocation and free inside Paho then takes one process-wide mutex and
 * updates a tree of all its blocks. At 2 000 cuffs that is about a third
 * of the gateway's CPU (docs/benchmarks.md, fifth round).
 */
bool mqtt_client_paho_tracks_heap(void);
void mqtt_client_get_stats(const struct mqtt_client *client, struct mqtt_client_stats *out);

/*
 * Disconnects (with the will, waiting at most ~1 s for the broker), stops
 * Paho's threads (and a running connection diagnosis, at most ~3 s) and
 * frees everything. Callbacks never run afterwards; publishes still in
 * flight are not reported.
 */
void mqtt_client_free(struct mqtt_client *client);

#endif
