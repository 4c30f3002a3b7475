/*
 * mqtt_client.c - see mqtt_client.h.
 *
 * Threads: Paho calls the static paho_* functions on its own threads. They
 * touch only the event queue (under `lock`) and the eventfd. The sender
 * thread (sender_main) hands publishes to Paho: the loop thread queues
 * them (under `send_lock`) and never calls MQTTAsync_sendMessage itself.
 * Everything else in struct mqtt_client belongs to the loop thread.
 *
 * Why a sender thread: MQTTAsync_sendMessage takes Paho's client mutex,
 * which Paho's send thread holds while it scans its queue and writes. At
 * 2 000 cuffs (20 000 publishes a second) the loop thread blocked on that
 * mutex 13 883 times in 4 s, 348 ms in all (sched_wait.py), and a cuff's
 * over-limit notification waited behind it. Queuing a copy costs the loop
 * one allocation and one uncontended lock; both locks the loop shares with
 * other threads are priority-inheriting and held for a few pointer
 * writes, so a real-time loop never waits for a preempted thread.
 *
 * Allocation on Paho's threads is avoided where losing an event would hurt:
 * connection events are nodes embedded in the client, and each publish
 * carries its own completion node (allocated by publish() on the loop
 * thread, passed to Paho as the callback context). Only an incoming message
 * is copied on Paho's thread; if that allocation fails we return 0 from
 * messageArrived, which makes Paho deliver the message again later.
 *
 * Reconnect is ours, not Paho's automaticReconnect: the delay is jittered
 * (a fleet of gateways must not reconnect in lockstep after a broker
 * restart), subscriptions are re-sent and on_connected fires in one place,
 * and the loop thread always knows which connect attempt is outstanding
 * (there is at most one). It also stays clear of Paho 1.3.12's reconnect
 * leak (paho.mqtt.c #1689).
 *
 * Oversized messages: the Maximum Packet Size on CONNECT makes a compliant
 * broker drop them for us. Paho has read a packet whole before it calls
 * messageArrived, so what is left to us is not to copy it a second time:
 * the size is checked before the allocation.
 *
 * Connect failures: Paho says "TCP/TLS connect failure" for every transport
 * problem. The loop thread then starts one diagnosis thread (never more
 * than one; joined when it reports or on free) that repeats the connection
 * with OpenSSL (tls_check.c) and reports the cause as an event. It runs only
 * when a log line is due, so a broker that stays away costs one probe a
 * minute. CONNACK refusals need no probe: Paho passes the reason code in
 * `code` ("CONNACK return code"), which MQTTReasonCode_toString() names.
 */
#include "mqtt_client.h"

#include "log.h"
#include "tls_check.h"

#include <MQTTAsync.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_KEEPALIVE_S 10
#define DEFAULT_RECONNECT_MIN_MS 1000
#define DEFAULT_RECONNECT_MAX_MS 30000
#define CONNECT_TIMEOUT_S 10
#define DISCONNECT_TIMEOUT_MS 1000
#define REASON_MAX 384
#define REASON_STRING_MAX 128
#define OVERSIZE_TOPIC_MAX 128
/* A repeated connect failure or oversize drop is logged at most this often. */
#define REPEAT_LOG_MS 60000
/* Upper bound of one diagnosis: connect, handshake, wait for an alert. */
#define DIAGNOSIS_TIMEOUT_MS 3000
#define CERT_CHECK_INTERVAL_MS (24u * 3600u * 1000u)
#define MAX_PACKET_MIN 128u
#define MAX_PACKET_MAX 268435455u /* the MQTT maximum */
#define DEFAULT_MESSAGES_PER_TURN 16
#define DEFAULT_MAX_QUEUED_MESSAGES 1024
#define HOST_MAX 256
/*
 * Publishes queued in one loop turn before they go to the sender without
 * waiting for the turn's end: it starts on a long burst while the loop
 * still produces the rest of it.
 */
#define PUBLISH_FLUSH_BATCH 64
#define SENDER_THREAD_NAME "mqtt_publish"
/* PUBACKs wait for the loop at most this long (ms): see paho_publish_ok. */
#define COLLECT_MS 1

enum event_type {
	EVENT_CONNECT_OK,
	EVENT_CONNECT_FAILED,
	EVENT_LOST,
	EVENT_MESSAGE,
	EVENT_PUBLISH_DONE,
	EVENT_OVERSIZE,   /* one or more messages dropped unread */
	EVENT_DIAGNOSED,  /* the diagnosis thread has finished */
};

struct event {
	struct event *next;
	enum event_type type;
	bool queued;
};

struct message_event {
	struct event ev;
	struct mqtt_message msg;
	bool priority;
	char data[]; /* topic, payload, response topic, correlation */
};

struct publish_op {
	struct event ev;
	struct mqtt_client *client;
	uint64_t tag;
	int result;        /* written by Paho's thread under lock, like the two below */
	int reason_code;   /* -1: no acknowledgement */
	char reason_string[REASON_STRING_MAX];
	bool silent;       /* a reply: nobody to tell */
	bool reported;     /* failed locally when the connection dropped */
	struct publish_op *prev, *next; /* in-flight list, loop thread */
};

/*
 * One publish on its way to Paho: copied on the loop thread, handed to
 * Paho by the sender thread, then given back to the loop thread, which
 * frees it (sent_head). `generation` is the connection it was
 * accepted on: one queued for a connection that has since been lost is
 * failed, not sent on the next one.
 */
struct outgoing {
	struct outgoing *next;
	struct publish_op *op; /* NULL: unreported */
	uint64_t generation;
	uint32_t expiry_s;
	int qos;
	bool retain;
	size_t payload_len, correlation_len;
	char *topic, *payload, *correlation; /* into data[] */
	char data[];
};

struct subscription {
	struct subscription *next;
	int qos;
	unsigned flags; /* MQTT_SUB_* */
	char filter[];
};

enum state {
	STATE_IDLE,
	STATE_CONNECTING,
	STATE_CONNECTED,
	STATE_BACKOFF,
};

struct mqtt_client {
	struct loop *loop;
	MQTTAsync handle;
	struct mqtt_client_callbacks cb;
	void *user_data;
	int efd;

	char *uri, *client_id, *username, *password, *ca_file, *cert_file, *key_file;
	char host[HOST_MAX]; /* of uri, for the diagnosis */
	int port;
	uint32_t max_packet_size;
	char *will_topic;
	void *will_payload;
	size_t will_len;
	int will_qos;
	bool will_retain;
	bool tls;
	unsigned keepalive_s;
	unsigned reconnect_min_ms, reconnect_max_ms, backoff_ms;
	uint32_t rng;

	enum state state;
	uint64_t reconnect_timer;
	uint64_t cert_timer;
	struct subscription *subs;
	struct publish_op *inflight;

	/* Rate-limited connect failure log (loop thread). */
	char failure_logged[REASON_MAX]; /* the last reason logged */
	uint64_t failure_logged_ms;
	uint64_t failures_unlogged; /* attempts since that line */
	uint64_t connect_failures;
	uint64_t stale_resent; /* see mqtt_client_stats */
	uint64_t failures_at_connect; /* connect_failures at the last connect */
	char last_failure[sizeof(((struct mqtt_client_stats *)0)->last_failure)];
	bool probing;               /* the diagnosis thread exists */
	pthread_t probe;
	char probe_fallback[REASON_MAX]; /* Paho's words, if the probe finds nothing */
	uint64_t oversize_logged_ms; /* 0: never */
	uint64_t oversize_logged_total; /* drops counted in the log so far */
	uint64_t oversize_timer;

	/* Unreported QoS 0 publishes handed to Paho (loop thread) and those
	 * Paho has written or dropped since (its threads): the difference is
	 * how many wait in its queue. */
	uint64_t unreported_handed;
	atomic_uint_fast64_t unreported_done;

	/* Reported publishes in flight (the inflight list's length). */
	size_t inflight_count;
	/* The current connection's Receive Maximum (mqtt_client_receive_maximum). */
	unsigned receive_max;
	/* Collects PUBACKs every COLLECT_MS while any are due (paho_publish_ok). */
	uint64_t collect_timer;
	bool collecting;

	/*
	 * Publishes of this loop turn (loop thread only), spliced onto the
	 * sender's queue once per turn by the flush_post hook: one lock and at
	 * most one wake-up per turn, not per publish.
	 */
	struct outgoing *turn_head, **turn_tail;
	size_t turn_count;
	uint64_t flush_post;

	/* The sender thread and its queue, under send_lock (priority-inheriting). */
	pthread_t sender;
	bool sender_started;
	int sender_efd; /* written to wake the sender when it sleeps */
	pthread_mutex_t send_lock;
	struct outgoing *send_head, **send_tail;
	/*
	 * Handed to Paho, to be freed by the loop thread (flush_turn), which
	 * allocated them. Freed on the sender, each would go back to the loop's
	 * malloc arena under that arena's lock, which is not
	 * priority-inheriting: the real-time loop then waited in malloc() for a
	 * preempted sender (17 waits in 6 s at 2 000 cuffs, perf sched_switch
	 * with DWARF stacks, up to 8 ms). The loop takes them back whenever it
	 * hands over a turn's publishes, so what waits here is at most what
	 * the sender handed over since the loop's last publishing turn; it
	 * stays allocated through a quiet spell and is freed on the next
	 * publish or by mqtt_client_free().
	 */
	struct outgoing *sent_head, **sent_tail;
	bool sender_idle; /* asleep on sender_efd, or about to be */
	bool send_stop;
	atomic_size_t send_pending; /* accepted, not yet handed to Paho */
	atomic_uint_fast64_t generation; /* bumped by the loop when a connection is lost */

	unsigned messages_per_turn;
	unsigned max_queued;
	char *priority_topic;
	uint64_t drain_post; /* the loop post hook that hands events over */
	uint64_t shed_logged; /* messages_shed + dropped in the log so far */
	uint64_t shed_logged_ms;

	/* Shared with Paho's threads. */
	pthread_mutex_t lock;
	struct event *head, *tail;
	struct event *prio_last; /* the last priority message queued, or NULL */
	size_t queued_messages;
	bool kicked; /* the eventfd was written since the loop last read it */
	uint64_t messages_shed, messages_dropped;
	struct event connect_ev; /* EVENT_CONNECT_OK or _FAILED */
	struct event lost_ev;
	bool session_present;
	unsigned connack_receive_max; /* as announced; 0 is a protocol error */
	char connect_reason[REASON_MAX];
	bool connect_transport; /* failed below MQTT: worth a diagnosis */
	char lost_reason[REASON_MAX];
	bool disconnect_done;
	struct event oversize_ev;
	uint64_t oversize_dropped;
	size_t oversize_largest;
	char oversize_topic[OVERSIZE_TOPIC_MAX];
	struct event diagnosed_ev;
	char diagnosis[REASON_MAX];
	bool diagnosis_found;
};

/* ---- Paho's threads ------------------------------------------------------ */

static void signal_eventfd(int fd)
{
	uint64_t one = 1;

	/* Only fails when the counter would overflow: then it is readable anyway. */
	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

/* Wakes the loop (on_eventfd). */
static void kick(struct mqtt_client *c)
{
	signal_eventfd(c->efd);
}

/* Caller holds c->lock. */
static void append_locked(struct mqtt_client *c, struct event *ev)
{
	ev->next = NULL;
	ev->queued = true;
	if (c->tail)
		c->tail->next = ev;
	else
		c->head = ev;
	c->tail = ev;
}

/*
 * Caller holds c->lock. True when the caller must kick the loop (after
 * unlocking): nobody has since the loop last read the eventfd
 * (on_eventfd clears `kicked` under the lock after it reads). An event
 * queued while a kick is pending is seen by the drain that kick starts.
 */
static bool kick_due_locked(struct mqtt_client *c)
{
	if (c->kicked)
		return false;
	c->kicked = true;
	return true;
}

static bool enqueue_locked(struct mqtt_client *c, struct event *ev)
{
	append_locked(c, ev);
	return kick_due_locked(c);
}

static const MQTTProperty *find_property(MQTTProperties *props, enum MQTTPropertyCodes id)
{
	return props ? MQTTProperties_getProperty(props, id) : NULL;
}

static void paho_connect_ok(void *context, MQTTAsync_successData5 *response)
{
	struct mqtt_client *c = context;
	const MQTTProperty *rm = response ? find_property(&response->properties,
							  MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)
					  : NULL;

	pthread_mutex_lock(&c->lock);
	c->session_present = response && response->alt.connect.sessionPresent;
	/* MQTT 5 3.2.2.3.3: absent means 65 535. */
	c->connack_receive_max = rm ? rm->value.integer2 : MQTT_RECEIVE_MAXIMUM_NONE;
	c->connect_ev.type = EVENT_CONNECT_OK;
	if (!c->connect_ev.queued)
		enqueue_locked(c, &c->connect_ev);
	pthread_mutex_unlock(&c->lock);
	kick(c);
}

static void paho_connect_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct mqtt_client *c = context;

	pthread_mutex_lock(&c->lock);
	c->connect_transport = false;
	if (response && response->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
		snprintf(c->connect_reason, sizeof(c->connect_reason),
			 "the broker refused the connection: %s (reason 0x%02x)",
			 MQTTReasonCode_toString(response->reasonCode), response->reasonCode);
	} else if (response && response->code >= MQTTREASONCODE_UNSPECIFIED_ERROR &&
		   response->code <= 0xff) {
		/* "CONNACK return code": Paho puts the CONNACK's reason in `code`. */
		snprintf(c->connect_reason, sizeof(c->connect_reason),
			 "the broker refused the connection: %s (CONNACK reason 0x%02x)",
			 MQTTReasonCode_toString((enum MQTTReasonCodes)response->code),
			 response->code);
	} else {
		snprintf(c->connect_reason, sizeof(c->connect_reason), "%s (Paho code %d)",
			 response && response->message ? response->message : "connect failed",
			 response ? response->code : 0);
		c->connect_transport = true;
	}
	c->connect_ev.type = EVENT_CONNECT_FAILED;
	if (!c->connect_ev.queued)
		enqueue_locked(c, &c->connect_ev);
	pthread_mutex_unlock(&c->lock);
	kick(c);
}

static void lost(struct mqtt_client *c, const char *reason)
{
	pthread_mutex_lock(&c->lock);
	/* A server DISCONNECT may be followed by connectionLost: one event. */
	if (!c->lost_ev.queued) {
		snprintf(c->lost_reason, sizeof(c->lost_reason), "%s", reason);
		c->lost_ev.type = EVENT_LOST;
		enqueue_locked(c, &c->lost_ev);
	}
	pthread_mutex_unlock(&c->lock);
	kick(c);
}

static void paho_connection_lost(void *context, char *cause)
{
	lost(context, cause && cause[0] ? cause : "connection lost");
}

static void paho_disconnected(void *context, MQTTProperties *properties,
			      enum MQTTReasonCodes reason)
{
	char text[REASON_MAX];

	snprintf(text, sizeof(text), "broker disconnected: %s", MQTTReasonCode_toString(reason));
	lost(context, text);
}

/* Caller holds c->lock. Priority messages go after the ones already ahead.
 * True when the caller must kick (see kick_due_locked). */
static bool enqueue_message_locked(struct mqtt_client *c, struct message_event *me)
{
	struct event *ev = &me->ev;

	c->queued_messages++;
	if (!me->priority)
		return enqueue_locked(c, ev);
	ev->queued = true;
	if (c->prio_last) {
		ev->next = c->prio_last->next;
		c->prio_last->next = ev;
	} else {
		ev->next = c->head;
		c->head = ev;
	}
	if (!ev->next)
		c->tail = ev;
	c->prio_last = ev;
	return kick_due_locked(c);
}

static int paho_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct mqtt_client *c = context;
	const MQTTProperty *rt = find_property(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
	const MQTTProperty *cd = find_property(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
	size_t rlen = rt ? (size_t)rt->value.data.len : 0;
	size_t clen = cd ? (size_t)cd->value.data.len : 0;
	bool priority = c->priority_topic && strlen(c->priority_topic) == tlen &&
			memcmp(c->priority_topic, topic, tlen) == 0;
	bool shed = false, wake;
	struct message_event *me;
	size_t kept;
	char *p;

	if (plen > c->max_packet_size) {
		/* Read by Paho already; copying it would double the damage. */
		pthread_mutex_lock(&c->lock);
		c->oversize_dropped++;
		if (plen > c->oversize_largest)
			c->oversize_largest = plen;
		snprintf(c->oversize_topic, sizeof(c->oversize_topic), "%.*s",
			 (int)(tlen < OVERSIZE_TOPIC_MAX ? tlen : OVERSIZE_TOPIC_MAX - 1), topic);
		if (!c->oversize_ev.queued)
			enqueue_locked(c, &c->oversize_ev);
		pthread_mutex_unlock(&c->lock);
		kick(c);
		goto consumed;
	}
	/*
	 * A flood: beyond the bound the loop gets the message without its
	 * payload, to refuse it cheaply; beyond twice the bound nothing.
	 * Priority messages are exempt (an e-stop is never shed).
	 */
	pthread_mutex_lock(&c->lock);
	if (!priority && c->queued_messages >= 2 * (size_t)c->max_queued) {
		c->messages_dropped++;
		pthread_mutex_unlock(&c->lock);
		goto consumed;
	}
	shed = !priority && c->queued_messages >= c->max_queued;
	if (shed)
		c->messages_shed++;
	pthread_mutex_unlock(&c->lock);
	kept = shed ? 0 : plen;
	me = malloc(sizeof(*me) + tlen + 1 + kept + 1 + rlen + 1 + clen);
	if (!me)
		return 0; /* Paho keeps the message and offers it again */
	memset(me, 0, sizeof(*me));
	me->ev.type = EVENT_MESSAGE;
	me->priority = priority;
	me->msg.retained = m->retained != 0;
	me->msg.shed = shed;
	me->msg.len = plen;
	p = me->data;
	me->msg.topic = p;
	memcpy(p, topic, tlen);
	p[tlen] = '\0';
	p += tlen + 1;
	if (!shed) {
		me->msg.payload = (const uint8_t *)p;
		if (plen)
			memcpy(p, m->payload, plen);
		p[plen] = '\0';
		p += plen + 1;
	}
	if (rt) {
		me->msg.response_topic = p;
		memcpy(p, rt->value.data.data, rlen);
		p[rlen] = '\0';
		p += rlen + 1;
	}
	if (cd) {
		memcpy(p, cd->value.data.data, clen);
		me->msg.correlation = (const uint8_t *)p;
		me->msg.correlation_len = clen;
	}
	pthread_mutex_lock(&c->lock);
	wake = enqueue_message_locked(c, me);
	pthread_mutex_unlock(&c->lock);
	if (wake)
		kick(c);
consumed:
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

/* Caller holds the client's lock. */
static void copy_reason_string(struct publish_op *op, MQTTProperties *props)
{
	const MQTTProperty *rs = find_property(props, MQTTPROPERTY_CODE_REASON_STRING);

	op->reason_string[0] = '\0';
	if (rs)
		snprintf(op->reason_string, sizeof(op->reason_string), "%.*s",
			 rs->value.data.len < REASON_STRING_MAX ? rs->value.data.len
								: REASON_STRING_MAX - 1,
			 rs->value.data.data);
}

/*
 * Once the op is queued and the lock released, the loop thread may take it,
 * report it and free it at once: nothing may read op after the unlock (the
 * fault campaign caught kick(op->client) reading a freed op: ASan
 * heap-use-after-free here, 140 busy cuffs, about once in 10 minutes).
 */
static void paho_publish_ok(void *context, MQTTAsync_successData5 *response)
{
	struct publish_op *op = context;
	struct mqtt_client *c = op->client;

	/*
	 * No kick: a PUBACK is collected by the loop's collect timer (at most
	 * COLLECT_MS later) or by the drain any other event starts. One
	 * eventfd write and one loop wake-up per PUBACK were a fifth of the
	 * gateway's CPU in an outbox drain (docs/benchmarks.md, third round).
	 */
	pthread_mutex_lock(&c->lock);
	op->result = 0;
	op->reason_code = response ? (int)response->reasonCode : 0;
	if (response)
		copy_reason_string(op, &response->properties);
	append_locked(c, &op->ev);
	pthread_mutex_unlock(&c->lock);
}

static void paho_publish_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct publish_op *op = context;
	struct mqtt_client *c = op->client; /* op may be freed after the unlock */
	bool refused = response && response->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR;
	bool wake;

	pthread_mutex_lock(&c->lock);
	/* Refused by the broker (PUBACK >= 0x80), or never acknowledged. */
	op->result = refused ? -EACCES : -EIO;
	op->reason_code = refused ? (int)response->reasonCode : -1;
	if (refused)
		copy_reason_string(op, &response->properties);
	wake = enqueue_locked(c, &op->ev);
	pthread_mutex_unlock(&c->lock);
	if (wake)
		kick(c);
}

/* An unreported publish left Paho's queue (written, or dropped): a count only,
 * no lock, no event, no wake-up of the loop. */
static void paho_unreported_ok(void *context, MQTTAsync_successData5 *response)
{
	struct mqtt_client *c = context;

	atomic_fetch_add_explicit(&c->unreported_done, 1, memory_order_relaxed);
}

static void paho_unreported_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct mqtt_client *c = context;

	atomic_fetch_add_explicit(&c->unreported_done, 1, memory_order_relaxed);
}

/* Nobody in the loop can act on a refused subscription; the operator can. */
static void paho_subscribe_ok(void *context, MQTTAsync_successData5 *response)
{
	struct subscription *sub = context;

	if (response && response->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR)
		log_warn("mqtt: subscribe \"%s\" refused: %s", sub->filter,
			MQTTReasonCode_toString(response->reasonCode));
}

static void paho_subscribe_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct subscription *sub = context;

	log_warn("mqtt: subscribe \"%s\" failed: %s", sub->filter,
		response && response->message ? response->message : "unknown error");
}

static void paho_disconnect_done(void *context)
{
	struct mqtt_client *c = context;

	pthread_mutex_lock(&c->lock);
	c->disconnect_done = true;
	pthread_mutex_unlock(&c->lock);
	kick(c);
}

static void paho_disconnect_ok(void *context, MQTTAsync_successData5 *response)
{
	paho_disconnect_done(context);
}

static void paho_disconnect_failed(void *context, MQTTAsync_failureData5 *response)
{
	paho_disconnect_done(context);
}

/* ---- the sender thread ---------------------------------------------------- */

/* A publish the sender did not hand over: reported as if Paho had failed it. */
static void sender_fail(struct mqtt_client *c, const struct outgoing *out, int result)
{
	struct publish_op *op = out->op;
	bool wake;

	if (!op) {
		atomic_fetch_add_explicit(&c->unreported_done, 1, memory_order_relaxed);
		return;
	}
	pthread_mutex_lock(&c->lock);
	op->result = result;
	op->reason_code = -1;
	op->reason_string[0] = '\0';
	wake = enqueue_locked(c, &op->ev);
	pthread_mutex_unlock(&c->lock);
	if (wake)
		kick(c);
}

static void hand_to_paho(struct mqtt_client *c, const struct outgoing *out)
{
	MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	int rc = MQTTASYNC_SUCCESS;

	/*
	 * Accepted for a connection that is gone: the caller has been told
	 * (-ECONNRESET, handle_lost) and sends it again from its outbox; sent
	 * now, it would reach the new connection ahead of that resend.
	 */
	if (out->generation != atomic_load_explicit(&c->generation, memory_order_relaxed)) {
		sender_fail(c, out, -ECONNRESET);
		return;
	}
	msg.payload = out->payload;
	msg.payloadlen = (int)out->payload_len;
	msg.qos = out->qos;
	msg.retained = out->retain;
	if (out->correlation) {
		MQTTProperty prop = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };

		prop.value.data.data = out->correlation;
		prop.value.data.len = (int)out->correlation_len;
		if (MQTTProperties_add(&msg.properties, &prop) != 0)
			rc = MQTTASYNC_FAILURE;
	}
	if (out->expiry_s && rc == MQTTASYNC_SUCCESS) {
		/* The broker drops the message (a retained one too) after this. */
		MQTTProperty prop = { .identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL,
				      .value.integer4 = out->expiry_s };

		if (MQTTProperties_add(&msg.properties, &prop) != 0)
			rc = MQTTASYNC_FAILURE;
	}
	if (out->op) {
		ropts.onSuccess5 = paho_publish_ok;
		ropts.onFailure5 = paho_publish_failed;
		ropts.context = out->op;
	} else {
		ropts.onSuccess5 = paho_unreported_ok;
		ropts.onFailure5 = paho_unreported_failed;
		ropts.context = c;
	}
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_sendMessage(c->handle, out->topic, &msg, &ropts);
	MQTTProperties_free(&msg.properties);
	if (rc != MQTTASYNC_SUCCESS)
		sender_fail(c, out, rc == MQTTASYNC_DISCONNECTED ? -ECONNRESET : -EIO);
}

/*
 * Takes the whole queue at once and hands it to Paho in order; sleeps on
 * sender_efd when there is nothing. On stop it first empties the queue, so
 * that what was published before mqtt_client_free() still goes out ahead
 * of the DISCONNECT.
 */
static void *sender_main(void *user_data)
{
	struct mqtt_client *c = user_data;

	for (;;) {
		struct outgoing *batch, **tail;
		uint64_t count;
		bool stop;

		pthread_mutex_lock(&c->send_lock);
		batch = c->send_head;
		c->send_head = NULL;
		c->send_tail = &c->send_head;
		stop = c->send_stop;
		c->sender_idle = !batch && !stop;
		pthread_mutex_unlock(&c->send_lock);
		if (!batch) {
			if (stop)
				return NULL;
			/* A blocking eventfd read fails only on EINTR (signals are blocked here). */
			(void)!read(c->sender_efd, &count, sizeof(count));
			continue;
		}
		tail = &batch;
		for (struct outgoing *out = batch; out; out = out->next) {
			hand_to_paho(c, out);
			atomic_fetch_sub_explicit(&c->send_pending, 1, memory_order_relaxed);
			tail = &out->next;
		}
		pthread_mutex_lock(&c->send_lock);
		*c->sent_tail = batch;
		c->sent_tail = tail;
		pthread_mutex_unlock(&c->send_lock);
	}
}

static void wake_sender(struct mqtt_client *c)
{
	signal_eventfd(c->sender_efd);
}

static void free_outgoing(struct outgoing *list)
{
	for (struct outgoing *next; list; list = next) {
		next = list->next;
		free(list);
	}
}

/*
 * Loop thread: this turn's publishes onto the sender's queue, and back
 * what the sender has handed to Paho since the last turn, to be freed here
 * (see sent_head).
 */
static void flush_turn(struct mqtt_client *c)
{
	struct outgoing *sent;
	bool wake = false;

	if (!c->turn_head)
		return;
	pthread_mutex_lock(&c->send_lock);
	*c->send_tail = c->turn_head;
	c->send_tail = c->turn_tail;
	if (c->sender_idle) {
		c->sender_idle = false;
		wake = true;
	}
	sent = c->sent_head;
	c->sent_head = NULL;
	c->sent_tail = &c->sent_head;
	pthread_mutex_unlock(&c->send_lock);
	c->turn_head = NULL;
	c->turn_tail = &c->turn_head;
	c->turn_count = 0;
	if (wake)
		wake_sender(c);
	free_outgoing(sent);
}

static void on_flush_post(struct loop *loop, void *user_data)
{
	flush_turn(user_data);
}

static void stop_sender(struct mqtt_client *c)
{
	if (!c->sender_started)
		return;
	flush_turn(c);
	pthread_mutex_lock(&c->send_lock);
	c->send_stop = true;
	pthread_mutex_unlock(&c->send_lock);
	wake_sender(c);
	pthread_join(c->sender, NULL);
	c->sender_started = false;
}

/* ---- loop thread --------------------------------------------------------- */

static int paho_errno(int rc)
{
	switch (rc) {
	case MQTTASYNC_SUCCESS:
		return 0;
	case MQTTASYNC_DISCONNECTED:
		return -ENOTCONN;
	case MQTTASYNC_BAD_UTF8_STRING:
	case MQTTASYNC_NULL_PARAMETER:
	case MQTTASYNC_BAD_QOS:
	case MQTTASYNC_BAD_STRUCTURE:
	case MQTTASYNC_BAD_PROTOCOL:
	case MQTTASYNC_BAD_MQTT_OPTION:
	case MQTTASYNC_WRONG_MQTT_VERSION:
	case MQTTASYNC_0_LEN_WILL_TOPIC:
		return -EINVAL;
	case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
	case MQTTASYNC_MAX_BUFFERED_MESSAGES:
	case MQTTASYNC_MAX_BUFFERED:
	case MQTTASYNC_NO_MORE_MSGIDS:
		return -EAGAIN;
	case MQTTASYNC_SSL_NOT_SUPPORTED:
		return -EPROTONOSUPPORT;
	default:
		return -EIO;
	}
}

/*
 * Paho starts its threads inside these calls; with every signal blocked
 * meanwhile they inherit a full mask, so process-directed signals always
 * reach the loop's signalfd and never a Paho thread.
 */
static void block_signals(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, saved);
}

static void restore_signals(const sigset_t *saved)
{
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static void schedule_reconnect(struct mqtt_client *c);

static void on_reconnect_timer(struct loop *loop, uint64_t id, void *user_data);

static void issue_connect(struct mqtt_client *c)
{
	MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty max_packet = { .identifier = MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE };
	sigset_t saved;
	int rc;

	/* Paho copies the properties; on failure the broker's own limit still applies. */
	max_packet.value.integer4 = c->max_packet_size;
	if (MQTTProperties_add(&props, &max_packet) == 0)
		opts.connectProperties = &props;
	opts.keepAliveInterval = (int)c->keepalive_s;
	opts.cleanstart = 1;
	opts.connectTimeout = CONNECT_TIMEOUT_S;
	opts.automaticReconnect = 0;
	opts.username = c->username;
	opts.password = c->password;
	opts.onSuccess5 = paho_connect_ok;
	opts.onFailure5 = paho_connect_failed;
	opts.context = c;
	if (c->will_topic) {
		will.topicName = c->will_topic;
		if (c->will_len) {
			will.payload.data = c->will_payload;
			will.payload.len = (int)c->will_len;
		} else {
			will.message = ""; /* Paho reads a string will when there is no payload */
		}
		will.qos = c->will_qos;
		will.retained = c->will_retain;
		opts.will = &will;
	}
	if (c->tls) {
		ssl.trustStore = c->ca_file;
		ssl.keyStore = c->cert_file;
		ssl.privateKey = c->key_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		opts.ssl = &ssl;
	}
	c->state = STATE_CONNECTING;
	block_signals(&saved);
	rc = MQTTAsync_connect(c->handle, &opts);
	restore_signals(&saved);
	MQTTProperties_free(&props);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warn("mqtt: connect to %s: error %d", c->uri, rc);
		schedule_reconnect(c);
	}
}

static uint32_t next_random(struct mqtt_client *c)
{
	/* xorshift32: jitter only, not security. */
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	return c->rng;
}

static void schedule_reconnect(struct mqtt_client *c)
{
	/* "Equal jitter": between half and all of the current backoff. */
	uint64_t delay = c->backoff_ms / 2 + next_random(c) % (c->backoff_ms / 2 + 1);

	c->backoff_ms = c->backoff_ms > c->reconnect_max_ms / 2 ? c->reconnect_max_ms
								 : c->backoff_ms * 2;
	c->state = STATE_BACKOFF;
	if (loop_add_timer(c->loop, delay, on_reconnect_timer, c, &c->reconnect_timer) < 0) {
		/* Without a timer there is no later: try again right away. */
		c->reconnect_timer = 0;
		issue_connect(c);
	}
}

static void on_reconnect_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct mqtt_client *c = user_data;

	c->reconnect_timer = 0;
	issue_connect(c);
}

static void send_subscribe(struct mqtt_client *c, struct subscription *sub)
{
	MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
	int rc;

	ropts.onSuccess5 = paho_subscribe_ok;
	ropts.onFailure5 = paho_subscribe_failed;
	ropts.context = sub;
	/* Retain handling 2: the broker sends no retained message on subscribe. */
	if (sub->flags & MQTT_SUB_NO_RETAINED)
		ropts.subscribeOptions.retainHandling = 2;
	rc = MQTTAsync_subscribe(c->handle, sub->filter, sub->qos, &ropts);
	if (rc != MQTTASYNC_SUCCESS)
		log_warn("mqtt: subscribe \"%s\": error %d", sub->filter, rc);
}

static void inflight_remove(struct mqtt_client *c, struct publish_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		c->inflight = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
	c->inflight_count--;
}

/* ---- diagnostics (loop thread) ------------------------------------------- */

/* Logs a connect failure and starts a new rate-limiting period. */
static void report_failure(struct mqtt_client *c, const char *text)
{
	size_t n = strnlen(text, sizeof(c->last_failure) - 1);

	/* Cut at the buffer: the log line below has the whole text. */
	memcpy(c->last_failure, text, n);
	c->last_failure[n] = '\0';
	if (c->failures_unlogged > 1)
		log_warn("mqtt: connect to %s failed: %s (%" PRIu64 " attempts since the last "
			 "report)",
			 c->uri, text, c->failures_unlogged);
	else
		log_warn("mqtt: connect to %s failed: %s", c->uri, text);
	c->failures_unlogged = 0;
}

/* A new reason, or the same one a minute later: time for a log line. */
static bool failure_due(struct mqtt_client *c, const char *key)
{
	uint64_t now = loop_now_ms(c->loop);

	if (c->probing)
		return false;
	if (strcmp(key, c->failure_logged) == 0 && c->failure_logged_ms &&
	    now - c->failure_logged_ms < REPEAT_LOG_MS)
		return false;
	snprintf(c->failure_logged, sizeof(c->failure_logged), "%s", key);
	c->failure_logged_ms = now ? now : 1;
	return true;
}

static void *probe_main(void *user_data)
{
	struct mqtt_client *c = user_data;
	const struct tls_files files = { .ca_file = c->ca_file,
					 .cert_file = c->cert_file,
					 .key_file = c->key_file };
	char text[REASON_MAX];
	bool found;

	found = tls_diagnose(c->host, c->port, c->tls ? &files : NULL, true,
			     DIAGNOSIS_TIMEOUT_MS, text, sizeof(text));
	pthread_mutex_lock(&c->lock);
	memcpy(c->diagnosis, text, sizeof(c->diagnosis));
	c->diagnosis_found = found;
	enqueue_locked(c, &c->diagnosed_ev);
	pthread_mutex_unlock(&c->lock);
	kick(c);
	return NULL;
}

/* Paho said only "TCP/TLS connect failure": find out why, off the loop thread. */
static void start_probe(struct mqtt_client *c, const char *paho_reason)
{
	sigset_t saved;
	int r;

	snprintf(c->probe_fallback, sizeof(c->probe_fallback), "%s", paho_reason);
	block_signals(&saved);
	r = pthread_create(&c->probe, NULL, probe_main, c);
	restore_signals(&saved);
	if (r != 0) {
		report_failure(c, paho_reason);
		return;
	}
	c->probing = true;
}

static void handle_diagnosed(struct mqtt_client *c)
{
	char text[REASON_MAX * 2 + 8];
	bool found;

	pthread_join(c->probe, NULL);
	c->probing = false;
	pthread_mutex_lock(&c->lock);
	found = c->diagnosis_found;
	if (found)
		snprintf(text, sizeof(text), "%s", c->diagnosis);
	else
		snprintf(text, sizeof(text), "%s; %s", c->probe_fallback, c->diagnosis);
	pthread_mutex_unlock(&c->lock);
	/* Connected meanwhile: the cause went away by itself. */
	if (c->state != STATE_CONNECTED)
		report_failure(c, text);
}

static void handle_connect_failed(struct mqtt_client *c, const char *reason, bool transport)
{
	c->connect_failures++;
	c->failures_unlogged++;
	schedule_reconnect(c);
	if (!failure_due(c, reason))
		return;
	if (transport)
		start_probe(c, reason);
	else
		report_failure(c, reason);
}

static void log_oversize(struct mqtt_client *c)
{
	uint64_t dropped;
	size_t largest;
	char topic[OVERSIZE_TOPIC_MAX];

	pthread_mutex_lock(&c->lock);
	dropped = c->oversize_dropped;
	largest = c->oversize_largest;
	memcpy(topic, c->oversize_topic, sizeof(topic));
	pthread_mutex_unlock(&c->lock);
	if (dropped == c->oversize_logged_total)
		return;
	log_warn("mqtt: dropped %" PRIu64 " incoming message(s) over the %" PRIu32
		 "-byte limit without copying them (%" PRIu64 " in all, largest %zu bytes, "
		 "last on \"%s\")",
		 dropped - c->oversize_logged_total, c->max_packet_size, dropped, largest, topic);
	c->oversize_logged_total = dropped;
	c->oversize_logged_ms = loop_now_ms(c->loop) ? loop_now_ms(c->loop) : 1;
}

static void on_oversize_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct mqtt_client *c = user_data;

	c->oversize_timer = 0;
	log_oversize(c);
}

/* The first drop is logged at once, then one summary a minute at most. */
static void handle_oversize(struct mqtt_client *c)
{
	uint64_t now = loop_now_ms(c->loop);

	if (!c->oversize_logged_ms || now - c->oversize_logged_ms >= REPEAT_LOG_MS) {
		log_oversize(c);
		return;
	}
	if (!c->oversize_timer &&
	    loop_add_timer(c->loop, c->oversize_logged_ms + REPEAT_LOG_MS - now, on_oversize_timer,
			   c, &c->oversize_timer) < 0)
		c->oversize_timer = 0; /* the next drop logs instead */
}

static void log_cert_expiry(const char *what, const char *path, bool first)
{
	int64_t not_after, now = (int64_t)time(NULL);
	char date[32];
	struct tm tm;
	time_t t;

	if (!path || tls_cert_not_after(path, &not_after) < 0)
		return;
	t = (time_t)not_after;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);
	if (not_after <= now)
		log_error("mqtt: the %s \"%s\" expired on %s: the broker will refuse the "
			  "connection; renew it (docs/operations.md)",
			  what, path, date);
	else if (not_after - now < (int64_t)MQTT_CLIENT_CERT_WARN_DAYS * 86400)
		log_warn("mqtt: the %s \"%s\" expires on %s, in %" PRId64 " days: renew it "
			 "(docs/operations.md)",
			 what, path, date, (not_after - now) / 86400);
	else if (first)
		log_info("mqtt: the %s \"%s\" is valid until %s", what, path, date);
}

static void check_certs(struct mqtt_client *c, bool first)
{
	log_cert_expiry("client certificate", c->cert_file, first);
	log_cert_expiry("CA certificate", c->ca_file, first);
}

static void on_cert_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct mqtt_client *c = user_data;

	c->cert_timer = 0;
	check_certs(c, false);
	if (loop_add_timer(loop, CERT_CHECK_INTERVAL_MS, on_cert_timer, c, &c->cert_timer) < 0)
		c->cert_timer = 0; /* checked again at the next start */
}

/* ---- events (loop thread) ------------------------------------------------- */

/*
 * Paho's send and receive threads and the sender thread run SCHED_BATCH
 * (this runs on the loop's thread, whatever its own policy):
 *
 * - A thread woken under that policy never preempts the one running on its
 *   CPU, it waits for the tick. Every publish wakes Paho's send thread;
 *   under SCHED_OTHER it took the CPU from the event loop there and then
 *   (3 000 times a second at 2 000 cuffs, measured with sched_switch), and
 *   a cuff's over-limit sample waited behind it. Their share of the CPU is
 *   unchanged (same nice value).
 * - With a real-time loop (gateway.realtime_priority) they stay below
 *   every normal thread's wake-up too: the loop takes no lock of Paho's on
 *   its hot path (the sender thread calls MQTTAsync_sendMessage), and the
 *   two locks it shares with these threads inherit priority, so none of
 *   them can keep it waiting. Until the sender thread (65ad563 to it) they
 *   ran SCHED_FIFO one below the loop, because the loop waited for Paho's
 *   mutex, held by a preempted thread (535 waits in 4 s, p99 3.4 ms, at
 *   500 busy cuffs); real-time there, they took the CPU from cuffsim and
 *   the broker: at 2 000 cuffs, broker up, rotating p99 1.8-3.6 ms against
 *   1.4-2.3 ms at SCHED_BATCH, 68-72 % of a core against 51-62 %
 *   (docs/benchmarks.md, third round).
 *
 * The threads exist once the first connect went through (Paho starts them
 * for it and names them); this runs on every connect, which is cheap and
 * also covers threads Paho started again. A failure only costs latency.
 */
static void place_publishing_threads(void)
{
	static bool logged;
	const struct sched_param sp = { 0 };
	DIR *dir;
	struct dirent *e;

	dir = opendir("/proc/self/task");
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char path[64], comm[32] = "";
		long tid = strtol(e->d_name, NULL, 10);
		FILE *f;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%ld/comm", tid);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		if (strcmp(comm, "MQTTAsync_send") != 0 && strcmp(comm, "MQTTAsync_rcv") != 0 &&
		    strcmp(comm, SENDER_THREAD_NAME) != 0)
			continue;
		if (sched_setscheduler((pid_t)tid, SCHED_BATCH, &sp) < 0 && !logged) {
			logged = true;
			log_warn("mqtt: %s thread not moved to SCHED_BATCH: %s", comm,
				 strerror(errno));
		}
	}
	closedir(dir);
}

/*
 * Publishes handed to the lost connection that Paho has not completed yet:
 * the ones it had not written when the connection dropped. Paho 1.3 keeps
 * them queued across the loss ("queued up messages ... need not be cleared",
 * MQTTAsync_cleanSession) and sends them right after this CONNACK, ahead of
 * the caller's resend from its oldest unacknowledged row: a QoS 1 event can
 * then reach the broker before an older one of its session that was lost
 * with the connection (the outbox's resend brings that one moments later).
 * A fresh Paho client per connection would drop them, but destroying a
 * client with queued publishes leaks them in Paho 1.3.12 (eclipse-paho
 * issue 1474). Counted and logged so that a consumer's temporary gap can be
 * told apart from a loss (docs/mqtt-api.md, docs/reliability.md).
 */
static void count_stale(struct mqtt_client *c)
{
	uint64_t stale = 0;

	for (const struct publish_op *op = c->inflight; op; op = op->next)
		if (op->reported)
			stale++;
	if (!stale)
		return;
	c->stale_resent += stale;
	log_warn("mqtt: %" PRIu64 " publishes queued for the lost connection go out first on "
		 "this one (Paho keeps them): they may arrive before the resend of older outbox rows",
		 stale);
}

static void update_collecting(struct mqtt_client *c);

static void handle_connected(struct mqtt_client *c, bool session_present)
{
	/* The wiring logs the connect itself; this closes the failure story. */
	if (c->connect_failures > c->failures_at_connect)
		log_info("mqtt: connected after %" PRIu64 " failed attempts",
			 c->connect_failures - c->failures_at_connect);
	c->failures_at_connect = c->connect_failures;
	c->failure_logged[0] = '\0';
	c->failures_unlogged = 0;
	c->state = STATE_CONNECTED;
	update_collecting(c);
	c->backoff_ms = c->reconnect_min_ms;
	if (c->receive_max == 0) {
		/* Paho takes it as announced and then sends no QoS 1 at all. */
		log_error("mqtt: the broker announced a Receive Maximum of 0, a protocol error "
			  "(MQTT 5, 3.2.2.3.3): no QoS 1 message and no subscription (so no "
			  "command) can be sent on this connection; fix the broker");
	}
	/* Whatever the old connection left queued is Paho's to finish or drop;
	 * counting starts over, so a miscount cannot outlive a connection. */
	c->unreported_handed = atomic_load_explicit(&c->unreported_done, memory_order_relaxed);
	place_publishing_threads();
	count_stale(c);
	for (struct subscription *sub = c->subs; sub; sub = sub->next)
		send_subscribe(c, sub);
	if (c->cb.on_connected)
		c->cb.on_connected(c, session_present, c->user_data);
}

static void report_publish(struct mqtt_client *c, const struct publish_op *op, int result,
			   int reason_code, const char *reason_string)
{
	struct mqtt_publish_result res = {
		.result = result,
		.reason_code = reason_code,
		.reason = reason_code < 0 ? ""
					   : MQTTReasonCode_toString((enum MQTTReasonCodes)reason_code),
		.reason_string = reason_string && reason_string[0] ? reason_string : NULL,
	};

	if (!res.reason)
		res.reason = "";
	if (c->cb.on_publish_result)
		c->cb.on_publish_result(c, op->tag, &res, c->user_data);
	else if (c->cb.on_publish_done)
		c->cb.on_publish_done(c, op->tag, result, c->user_data);
}

static void handle_lost(struct mqtt_client *c, const char *reason)
{
	if (c->state != STATE_CONNECTED)
		return;
	/* What the sender still holds for this connection is failed, not sent later. */
	atomic_fetch_add_explicit(&c->generation, 1, memory_order_relaxed);
	schedule_reconnect(c);
	update_collecting(c);
	/*
	 * No PUBACK can come for these any more; the caller's outbox resends
	 * them after the reconnect. Their nodes stay until Paho lets go.
	 */
	for (struct publish_op *op = c->inflight; op; op = op->next) {
		if (op->reported || op->silent)
			continue;
		op->reported = true;
		report_publish(c, op, -ECONNRESET, -1, NULL);
	}
	if (c->cb.on_disconnected)
		c->cb.on_disconnected(c, reason, c->user_data);
}

static void handle_event(struct mqtt_client *c, struct event *ev, bool session_present,
			 bool transport, const char *reason)
{
	switch (ev->type) {
	case EVENT_CONNECT_OK:
		handle_connected(c, session_present);
		break;
	case EVENT_CONNECT_FAILED:
		handle_connect_failed(c, reason, transport);
		break;
	case EVENT_OVERSIZE:
		handle_oversize(c);
		break;
	case EVENT_DIAGNOSED:
		handle_diagnosed(c);
		break;
	case EVENT_LOST:
		handle_lost(c, reason);
		break;
	case EVENT_MESSAGE: {
		struct message_event *me = (struct message_event *)ev;

		if (c->cb.on_message)
			c->cb.on_message(c, &me->msg, c->user_data);
		free(me);
		break;
	}
	case EVENT_PUBLISH_DONE: {
		struct publish_op *op = (struct publish_op *)ev;

		inflight_remove(c, op);
		/* Written by Paho's thread before it queued the node: settled now. */
		if (!op->reported && !op->silent)
			report_publish(c, op, op->result, op->reason_code, op->reason_string);
		free(op);
		break;
	}
	}
}

/*
 * One event at a time: an embedded node may be queued again as soon as it
 * is out. At most messages_per_turn messages per call; true when events are
 * left for the next turn.
 */
static bool drain(struct mqtt_client *c)
{
	unsigned messages = 0;

	for (;;) {
		char reason[REASON_MAX] = "";
		bool session_present = false, transport = false, left;
		struct event *ev;

		pthread_mutex_lock(&c->lock);
		ev = c->head;
		if (ev && ev->type == EVENT_MESSAGE && messages == c->messages_per_turn) {
			pthread_mutex_unlock(&c->lock);
			return true;
		}
		if (ev) {
			c->head = ev->next;
			if (!c->head)
				c->tail = NULL;
			if (c->prio_last == ev)
				c->prio_last = NULL;
			ev->queued = false;
			if (ev->type == EVENT_MESSAGE)
				c->queued_messages--;
			if (ev == &c->connect_ev) {
				session_present = c->session_present;
				if (ev->type == EVENT_CONNECT_OK)
					c->receive_max = c->connack_receive_max;
				transport = c->connect_transport;
				memcpy(reason, c->connect_reason, sizeof(reason));
			} else if (ev == &c->lost_ev) {
				memcpy(reason, c->lost_reason, sizeof(reason));
			}
		}
		left = c->head != NULL;
		pthread_mutex_unlock(&c->lock);
		if (!ev)
			return false;
		if (ev->type == EVENT_MESSAGE)
			messages++;
		handle_event(c, ev, session_present, transport, reason);
		if (!left)
			return false;
	}
}

/* Shed and dropped messages, in the log once a minute at most. */
static void log_shed(struct mqtt_client *c)
{
	uint64_t total, now = loop_now_ms(c->loop);

	pthread_mutex_lock(&c->lock);
	total = c->messages_shed + c->messages_dropped;
	pthread_mutex_unlock(&c->lock);
	if (total == c->shed_logged ||
	    (c->shed_logged_ms && now - c->shed_logged_ms < REPEAT_LOG_MS))
		return;
	log_warn("mqtt: %" PRIu64 " incoming messages shed or dropped: more than %u waiting "
		 "(a flood?)",
		 total - c->shed_logged, c->max_queued);
	c->shed_logged = total;
	c->shed_logged_ms = now;
}

/*
 * The events are handed over from a post hook, after the turn's io and
 * timer callbacks: the cuffs' sockets and the safety timers always come
 * first, and a flood of commands costs each turn messages_per_turn
 * callbacks at most (the hook schedules itself again while events wait).
 */
static void on_drain_post(struct loop *loop, void *user_data)
{
	struct mqtt_client *c = user_data;

	if (drain(c))
		(void)loop_post_schedule(loop, c->drain_post); /* registered: cannot fail */
	log_shed(c);
}

/*
 * While reported publishes are in flight on a live connection, their
 * PUBACKs (queued without a kick) are handed over every COLLECT_MS. Not
 * while disconnected: what Paho still holds for a lost connection may
 * wait for the next one, and a gateway offline for hours must not wake
 * a thousand times a second for it.
 */
static void update_collecting(struct mqtt_client *c)
{
	bool want = c->inflight_count > 0 && c->state == STATE_CONNECTED;

	if (want == c->collecting)
		return;
	if (want && loop_timer_start(c->loop, c->collect_timer, COLLECT_MS, COLLECT_MS) < 0)
		return; /* registered: cannot fail */
	if (!want)
		(void)loop_timer_stop(c->loop, c->collect_timer);
	c->collecting = want;
}

static void on_collect_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct mqtt_client *c = user_data;

	(void)loop_post_schedule(loop, c->drain_post); /* registered: cannot fail */
	update_collecting(c);
}

static void on_eventfd(struct loop *loop, int fd, uint32_t events, void *user_data)
{
	struct mqtt_client *c = user_data;
	uint64_t count;

	/*
	 * Read first, then clear: a kick this read consumed was flagged before
	 * the clear, so the next event kicks again. Clearing first lost
	 * wake-ups: a producer flagged and wrote between the clear and the
	 * read, the read took its write, the flag stayed set, and every later
	 * message waited unseen (test_sender_reports_once_in_order: 380 and
	 * 535 of 600 arrived in 10 s, once locally, once in CI).
	 */
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&c->lock);
	c->kicked = false;
	pthread_mutex_unlock(&c->lock);
	(void)loop_post_schedule(loop, c->drain_post); /* registered: cannot fail */
}

/* ---- public -------------------------------------------------------------- */

/*
 * Priority inheritance: a real-time loop that finds the lock taken lends
 * its priority to the holder (a Paho or sender thread, possibly preempted
 * by anything of normal priority) until it lets go.
 */
static int init_pi_mutex(pthread_mutex_t *m)
{
	pthread_mutexattr_t attr;
	int r;

	r = pthread_mutexattr_init(&attr);
	if (r)
		return -r;
	r = pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
	if (r == 0)
		r = pthread_mutex_init(m, &attr);
	pthread_mutexattr_destroy(&attr);
	return -r;
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s || !s[0])
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static bool uri_is_tls(const char *uri)
{
	return strncmp(uri, "mqtts://", 8) == 0 || strncmp(uri, "ssl://", 6) == 0 ||
	       strncmp(uri, "wss://", 6) == 0;
}

/*
 * Host and port of "scheme://host[:port][/path]" ("[v6]" allowed), for
 * the diagnosis only: Paho parses the URI for the connection itself.
 */
static int parse_host_port(const char *uri, char *host, size_t hostlen, int *port)
{
	static const struct {
		const char *scheme;
		int port;
	} defaults[] = { { "mqtt://", 1883 }, { "tcp://", 1883 },  { "ws://", 80 },
			 { "mqtts://", 8883 }, { "ssl://", 8883 }, { "wss://", 443 } };
	const char *h = NULL, *end;
	size_t len;
	long p = 0;

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		size_t n = strlen(defaults[i].scheme);

		if (strncmp(uri, defaults[i].scheme, n) == 0) {
			h = uri + n;
			p = defaults[i].port;
			break;
		}
	}
	if (!h)
		return -EINVAL;
	if (*h == '[') {
		end = strchr(++h, ']');
		if (!end)
			return -EINVAL;
		len = (size_t)(end - h);
		end++;
	} else {
		len = strcspn(h, ":/");
		end = h + len;
	}
	if (len == 0 || len >= hostlen)
		return -EINVAL;
	if (*end == ':') {
		char *stop;

		p = strtol(end + 1, &stop, 10);
		if (stop == end + 1 || (*stop && *stop != '/') || p < 1 || p > 65535)
			return -EINVAL;
	}
	memcpy(host, h, len);
	host[len] = '\0';
	*port = (int)p;
	return 0;
}

int mqtt_client_new(struct loop *loop, const struct mqtt_client_options *options,
		    const struct mqtt_client_callbacks *callbacks, void *user_data,
		    struct mqtt_client **out)
{
	MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer5;
	struct mqtt_client *c;
	sigset_t saved;
	int r, rc;

	if (!loop || !options || !out || !options->uri || !options->uri[0] ||
	    !options->client_id || !options->client_id[0])
		return -EINVAL;
	if (options->will_topic && (options->will_qos < 0 || options->will_qos > 2 ||
				    (options->will_len && !options->will_payload)))
		return -EINVAL;
	if (options->max_packet_size &&
	    (options->max_packet_size < MAX_PACKET_MIN || options->max_packet_size > MAX_PACKET_MAX))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->efd = -1;
	c->sender_efd = -1;
	c->turn_tail = &c->turn_head;
	c->send_tail = &c->send_head;
	c->sent_tail = &c->sent_head;
	c->loop = loop;
	if (callbacks)
		c->cb = *callbacks;
	c->user_data = user_data;
	c->keepalive_s = options->keepalive_s ? options->keepalive_s : DEFAULT_KEEPALIVE_S;
	c->reconnect_min_ms = options->reconnect_min_ms ? options->reconnect_min_ms
							: DEFAULT_RECONNECT_MIN_MS;
	c->reconnect_max_ms = options->reconnect_max_ms ? options->reconnect_max_ms
							: DEFAULT_RECONNECT_MAX_MS;
	if (c->reconnect_max_ms < c->reconnect_min_ms)
		c->reconnect_max_ms = c->reconnect_min_ms;
	c->backoff_ms = c->reconnect_min_ms;
	c->rng = (uint32_t)(uintptr_t)c ^ (uint32_t)time(NULL) ^ 0x9e3779b9u;
	if (c->rng == 0)
		c->rng = 1;
	c->will_qos = options->will_qos;
	c->will_retain = options->will_retain;
	c->tls = uri_is_tls(options->uri);
	c->max_packet_size = options->max_packet_size ? options->max_packet_size
						      : MQTT_CLIENT_DEFAULT_MAX_PACKET;
	c->oversize_ev.type = EVENT_OVERSIZE;
	c->diagnosed_ev.type = EVENT_DIAGNOSED;
	c->messages_per_turn = options->messages_per_turn ? options->messages_per_turn
							  : DEFAULT_MESSAGES_PER_TURN;
	c->max_queued = options->max_queued_messages ? options->max_queued_messages
						     : DEFAULT_MAX_QUEUED_MESSAGES;
	r = init_pi_mutex(&c->lock);
	if (r == 0) {
		r = init_pi_mutex(&c->send_lock);
		if (r < 0)
			pthread_mutex_destroy(&c->lock);
	}
	if (r < 0) {
		free(c);
		return r;
	}
	if (parse_host_port(options->uri, c->host, sizeof(c->host), &c->port) < 0) {
		r = -EINVAL;
		goto fail;
	}

	r = dup_opt(options->uri, &c->uri);
	if (r == 0)
		r = dup_opt(options->client_id, &c->client_id);
	if (r == 0)
		r = dup_opt(options->username, &c->username);
	if (r == 0)
		r = dup_opt(options->password, &c->password);
	if (r == 0)
		r = dup_opt(options->ca_file, &c->ca_file);
	if (r == 0)
		r = dup_opt(options->cert_file, &c->cert_file);
	if (r == 0)
		r = dup_opt(options->key_file, &c->key_file);
	if (r == 0)
		r = dup_opt(options->will_topic, &c->will_topic);
	if (r == 0)
		r = dup_opt(options->priority_topic, &c->priority_topic);
	if (r == 0)
		r = loop_post_new(loop, on_drain_post, c, &c->drain_post);
	if (r == 0)
		r = loop_post_new(loop, on_flush_post, c, &c->flush_post);
	if (r == 0)
		r = loop_timer_new(loop, on_collect_timer, c, &c->collect_timer);
	if (r < 0)
		goto fail;
	if (c->will_topic && options->will_len) {
		c->will_payload = malloc(options->will_len);
		if (!c->will_payload) {
			r = -ENOMEM;
			goto fail;
		}
		memcpy(c->will_payload, options->will_payload, options->will_len);
		c->will_len = options->will_len;
	}

	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = loop_add_io(loop, c->efd, EPOLLIN, on_eventfd, c);
	if (r < 0) {
		close(c->efd);
		c->efd = -1;
		goto fail;
	}

	c->sender_efd = eventfd(0, EFD_CLOEXEC); /* blocking: the sender sleeps in read() */
	if (c->sender_efd < 0) {
		r = -errno;
		goto fail;
	}

	/* No Paho buffering while disconnected: the caller's outbox does that. */
	copts.sendWhileDisconnected = 0;
	/*
	 * Paho applies this bound while connected too (default 100): a telemetry
	 * burst of 500 cuffs plus the outbox window must fit (docs/benchmarks.md).
	 * publish() refuses at MQTT_CLIENT_MAX_BUFFERED (-EAGAIN), so Paho, at
	 * twice that, never refuses what the sender hands over.
	 */
	copts.maxBufferedMessages = 2 * MQTT_CLIENT_MAX_BUFFERED;
	copts.MQTTVersion = MQTTVERSION_5;
	block_signals(&saved);
	rc = MQTTAsync_createWithOptions(&c->handle, c->uri, c->client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &copts);
	if (rc == MQTTASYNC_SUCCESS) {
		r = -pthread_create(&c->sender, NULL, sender_main, c);
		c->sender_started = r == 0;
		if (c->sender_started)
			(void)pthread_setname_np(c->sender, SENDER_THREAD_NAME);
	}
	restore_signals(&saved);
	if (rc != MQTTASYNC_SUCCESS) {
		c->handle = NULL;
		r = rc == MQTTASYNC_FAILURE ? -ENOMEM : paho_errno(rc);
		goto fail;
	}
	if (r < 0)
		goto fail;
	rc = MQTTAsync_setCallbacks(c->handle, c, paho_connection_lost, paho_message, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setDisconnected(c->handle, c, paho_disconnected);
	if (rc != MQTTASYNC_SUCCESS) {
		r = paho_errno(rc);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	mqtt_client_free(c);
	return r;
}

int mqtt_client_start(struct mqtt_client *client)
{
	if (!client)
		return -EINVAL;
	if (client->state != STATE_IDLE)
		return -EALREADY;
	if (client->tls) {
		check_certs(client, true);
		if (loop_add_timer(client->loop, CERT_CHECK_INTERVAL_MS, on_cert_timer, client,
				   &client->cert_timer) < 0)
			client->cert_timer = 0; /* checked at start only */
	}
	issue_connect(client);
	return 0;
}

/* The op that carries a publish's completion back to the loop, listed in flight. */
static struct publish_op *op_new(struct mqtt_client *c, uint64_t tag, bool silent)
{
	struct publish_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->ev.type = EVENT_PUBLISH_DONE;
	op->client = c;
	op->tag = tag;
	op->reason_code = -1;
	op->silent = silent;
	/* Listed before Paho can answer, so a fast completion finds it. */
	op->next = c->inflight;
	if (c->inflight)
		c->inflight->prev = op;
	c->inflight = op;
	c->inflight_count++;
	update_collecting(c);
	return op;
}

/*
 * Copies the publish for the sender thread and queues it for the end of
 * this loop turn (or at once when the turn has queued PUBLISH_FLUSH_BATCH).
 * report false (QoS 0 only): no op, no callbacks given to Paho, so nothing
 * comes back through the event queue and the eventfd for it.
 */
static int publish(struct mqtt_client *c, const char *topic, const void *payload, size_t len,
		   int qos, bool retain, uint32_t expiry_s, uint64_t tag,
		   const uint8_t *correlation, size_t correlation_len, bool silent, bool report)
{
	struct outgoing *out;
	struct publish_op *op = NULL;
	size_t topic_len;

	if (!c || !topic || !topic[0] || (len && !payload) || qos < 0 || qos > 2 ||
	    len > INT32_MAX || correlation_len > UINT16_MAX || (correlation_len && !correlation) ||
	    (!report && qos != 0))
		return -EINVAL;
	topic_len = strlen(topic);
	if (topic_len > UINT16_MAX)
		return -EINVAL;
	if (c->state != STATE_CONNECTED)
		return -ENOTCONN;
	/* Paho's own bound is twice this: it never refuses what was accepted here. */
	if (c->inflight_count + mqtt_client_unreported_pending(c) >= MQTT_CLIENT_MAX_BUFFERED)
		return -EAGAIN;
	out = malloc(sizeof(*out) + topic_len + 1 + len + correlation_len);
	if (!out)
		return -ENOMEM;
	if (report) {
		op = op_new(c, tag, silent);
		if (!op) {
			free(out);
			return -ENOMEM;
		}
	}
	out->next = NULL;
	out->op = op;
	out->generation = atomic_load_explicit(&c->generation, memory_order_relaxed);
	out->expiry_s = expiry_s;
	out->qos = qos;
	out->retain = retain;
	out->topic = out->data;
	memcpy(out->topic, topic, topic_len + 1);
	out->payload = out->topic + topic_len + 1;
	out->payload_len = len;
	if (len)
		memcpy(out->payload, payload, len);
	out->correlation = correlation_len ? out->payload + len : NULL;
	out->correlation_len = correlation_len;
	if (correlation_len)
		memcpy(out->correlation, correlation, correlation_len);
	if (!op)
		c->unreported_handed++;
	atomic_fetch_add_explicit(&c->send_pending, 1, memory_order_relaxed);
	*c->turn_tail = out;
	c->turn_tail = &out->next;
	if (++c->turn_count >= PUBLISH_FLUSH_BATCH)
		flush_turn(c);
	else
		(void)loop_post_schedule(c->loop, c->flush_post); /* registered: cannot fail */
	return 0;
}

int mqtt_client_publish(struct mqtt_client *client, const char *topic, const void *payload,
			size_t len, int qos, bool retain, uint64_t tag)
{
	return publish(client, topic, payload, len, qos, retain, 0, tag, NULL, 0, false, true);
}

int mqtt_client_publish_expiring(struct mqtt_client *client, const char *topic,
				 const void *payload, size_t len, int qos, bool retain,
				 uint32_t expiry_s, uint64_t tag)
{
	return publish(client, topic, payload, len, qos, retain, expiry_s, tag, NULL, 0, false,
		       true);
}

int mqtt_client_publish_unreported(struct mqtt_client *client, const char *topic,
				   const void *payload, size_t len, bool retain, uint32_t expiry_s)
{
	return publish(client, topic, payload, len, 0, retain, expiry_s, 0, NULL, 0, true, false);
}

int mqtt_client_publish_reply(struct mqtt_client *client, const char *response_topic,
			      const uint8_t *correlation, size_t correlation_len,
			      const void *payload, size_t len)
{
	return publish(client, response_topic, payload, len, 1, false, 0, 0, correlation,
		       correlation_len, true, true);
}

int mqtt_client_subscribe(struct mqtt_client *client, const char *filter, int qos)
{
	return mqtt_client_subscribe_opts(client, filter, qos, 0);
}

int mqtt_client_subscribe_opts(struct mqtt_client *client, const char *filter, int qos,
			       unsigned flags)
{
	struct subscription *sub, **tail;
	size_t len;

	if (!client || !filter || !filter[0] || qos < 0 || qos > 2 || (flags & ~MQTT_SUB_NO_RETAINED))
		return -EINVAL;
	len = strlen(filter);
	if (len > UINT16_MAX)
		return -EINVAL;
	for (sub = client->subs; sub; sub = sub->next)
		if (strcmp(sub->filter, filter) == 0)
			return -EEXIST;
	sub = calloc(1, sizeof(*sub) + len + 1);
	if (!sub)
		return -ENOMEM;
	sub->qos = qos;
	sub->flags = flags;
	memcpy(sub->filter, filter, len + 1);
	for (tail = &client->subs; *tail; tail = &(*tail)->next)
		;
	*tail = sub;
	if (client->state == STATE_CONNECTED)
		send_subscribe(client, sub);
	return 0;
}

size_t mqtt_client_unreported_pending(struct mqtt_client *client)
{
	uint64_t done = atomic_load_explicit(&client->unreported_done, memory_order_relaxed);

	return client->unreported_handed > done ? (size_t)(client->unreported_handed - done) : 0;
}

bool mqtt_client_is_connected(const struct mqtt_client *client)
{
	return client && client->state == STATE_CONNECTED;
}

bool mqtt_client_paho_tracks_heap(void)
{
	/*
	 * Paho compiles Heap.c, and exports its Heap_get_info, only without
	 * PAHO_HIGH_PERFORMANCE; nothing else tells a build's options at run
	 * time. Paho is a shared library, so the loaded one is the one asked.
	 */
	return dlsym(RTLD_DEFAULT, "Heap_get_info") != NULL;
}

unsigned mqtt_client_receive_maximum(const struct mqtt_client *client)
{
	if (!mqtt_client_is_connected(client))
		return 0;
	return client->receive_max ? client->receive_max : 1;
}

void mqtt_client_get_stats(const struct mqtt_client *client, struct mqtt_client_stats *out)
{
	/* The counters Paho's thread writes are read under the lock. */
	struct mqtt_client *c = (struct mqtt_client *)client;

	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	out->oversize_dropped = c->oversize_dropped;
	out->oversize_largest = c->oversize_largest;
	out->messages_shed = c->messages_shed;
	out->messages_dropped = c->messages_dropped;
	pthread_mutex_unlock(&c->lock);
	out->connect_failures = c->connect_failures;
	out->stale_resent = c->stale_resent;
	out->publishes_queued = atomic_load_explicit(&c->send_pending, memory_order_relaxed);
	memcpy(out->last_failure, c->last_failure, sizeof(out->last_failure));
}

static bool disconnect_done(struct mqtt_client *c)
{
	bool done;

	pthread_mutex_lock(&c->lock);
	done = c->disconnect_done;
	pthread_mutex_unlock(&c->lock);
	return done;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Blocks the loop thread for at most ~DISCONNECT_TIMEOUT_MS: shutdown only. */
static void disconnect(struct mqtt_client *c)
{
	MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;
	uint64_t deadline;

	opts.timeout = DISCONNECT_TIMEOUT_MS;
	opts.onSuccess5 = paho_disconnect_ok;
	opts.onFailure5 = paho_disconnect_failed;
	opts.context = c;
	/* A deliberate shutdown still tells everyone the gateway is offline. */
	if (c->will_topic)
		opts.reasonCode = MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE;
	if (MQTTAsync_disconnect(c->handle, &opts) != MQTTASYNC_SUCCESS)
		return;
	deadline = monotonic_ms() + DISCONNECT_TIMEOUT_MS + 500;
	while (!disconnect_done(c)) {
		struct pollfd pfd = { .fd = c->efd, .events = POLLIN };
		uint64_t now = monotonic_ms();
		uint64_t count;

		if (now >= deadline)
			break;
		if (poll(&pfd, 1, (int)(deadline - now)) > 0 &&
		    read(c->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			break;
	}
}

void mqtt_client_free(struct mqtt_client *client)
{
	struct mqtt_client *c = client;

	if (!c)
		return;
	if (c->reconnect_timer)
		loop_cancel_timer(c->loop, c->reconnect_timer);
	if (c->cert_timer)
		loop_cancel_timer(c->loop, c->cert_timer);
	if (c->oversize_timer)
		loop_cancel_timer(c->loop, c->oversize_timer);
	/* Bounded by DIAGNOSIS_TIMEOUT_MS (and the resolver's own timeout). */
	if (c->probing)
		pthread_join(c->probe, NULL);
	/* What was published before this goes to Paho ahead of the DISCONNECT. */
	stop_sender(c);
	if (c->handle) {
		if (c->state == STATE_CONNECTED || c->state == STATE_CONNECTING)
			disconnect(c);
		/* After this no Paho thread touches the client. */
		MQTTAsync_destroy(&c->handle);
	}
	/* Left only when the sender never started. */
	free_outgoing(c->turn_head);
	free_outgoing(c->send_head);
	/* Handed to Paho since the last turn (the sender has stopped). */
	free_outgoing(c->sent_head);
	if (c->sender_efd >= 0)
		close(c->sender_efd);
	/* Undelivered events: only messages own their memory. */
	for (struct event *ev = c->head, *next; ev; ev = next) {
		next = ev->next;
		if (ev->type == EVENT_MESSAGE)
			free(ev);
	}
	while (c->inflight) {
		struct publish_op *op = c->inflight;

		c->inflight = op->next;
		free(op);
	}
	while (c->subs) {
		struct subscription *sub = c->subs;

		c->subs = sub->next;
		free(sub);
	}
	if (c->efd >= 0) {
		loop_del_io(c->loop, c->efd);
		close(c->efd);
	}
	loop_post_free(c->loop, c->drain_post);
	loop_post_free(c->loop, c->flush_post);
	loop_timer_free(c->loop, c->collect_timer);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	free(c->priority_topic);
	free(c->uri);
	free(c->client_id);
	free(c->username);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->will_topic);
	free(c->will_payload);
	free(c);
}
