/*
 * commands.c - see commands.h.
 *
 * What stands between the broker and the verbs, in this order:
 *   1. a retained message is never a command (SR-27): commands are live;
 *   2. the Response Topic, if any, must be a valid topic name under the
 *      gateway's reply/ prefix: the gateway publishes nowhere else for a
 *      requester (no confused deputy, no invalid topic that gets us cut off);
 *   3. a message the MQTT client shed (too many waiting) is refused
 *      `overloaded` without being read; a requester over its budget is
 *      refused `rate_limited` without being read (SR-28);
 *   4. a request_id answered before gets its original reply again and is not
 *      executed again (SR-27; replies are kept 24 h, on disk too).
 * Refusals are logged at most a few lines a second, with a count of the
 * ones left out, so a flood cannot drown the alarm lines.
 */
#include "commands.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "command.h"
#include "log.h"

#define REMEMBER_MS (24ull * 3600ull * 1000ull) /* replies kept on disk this long */
#define LOG_BURST 5 /* refusal lines a second */
/* Flood refusals (rate_limited, overloaded) answered a second, in all:
 * answering every one would send the flood back out through the same loop. */
#define FLOOD_REPLIES_PER_S 100

struct commands {
	struct commands_deps deps;
	bool shutting_down;
	char reply_prefix[TOPIC_MAX]; /* "bfr/v1/<site>/<gw>/reply/" */
	struct admission *admission;  /* budgets per requester, replies given */

	struct log_rate refused_log, ignored_log, flood_replies;
	uint64_t retained_ignored, bad_response_topic, shed, rate_limited, replayed;
	uint64_t flood_unanswered;
};

static uint64_t now_ms(const struct commands *cmds)
{
	return loop_now_ms(cmds->deps.loop);
}

/* Keeps a reply for re-deliveries; the oldest goes when the memory is full. */
static void remember(struct commands *cmds, const char *request_id, const char *verb,
		     const char *text)
{
	int r = admission_remember(cmds->admission, request_id, verb, text);

	/* Not kept: a re-delivery of it would run again. Say so. */
	if (r < 0 && r != -EEXIST)
		log_error("command %s: reply not remembered: %s", request_id, strerror(-r));
}

static int load_reply(const char *request_id, const char *verb, const char *reply_json,
		      int64_t ts_ms, void *user_data)
{
	remember(user_data, request_id, verb, reply_json);
	return 0;
}

int commands_new(const struct commands_deps *deps, struct commands **out)
{
	struct commands *cmds = calloc(1, sizeof(*cmds));
	int64_t since;
	int r;

	if (!cmds)
		return -ENOMEM;
	cmds->deps = *deps;
	cmds->refused_log = (struct log_rate){ .window_ms = 1000, .burst = LOG_BURST };
	cmds->ignored_log = (struct log_rate){ .window_ms = 60000, .burst = LOG_BURST };
	cmds->flood_replies = (struct log_rate){ .window_ms = 1000, .burst = FLOOD_REPLIES_PER_S };
	if (admission_new(&cmds->admission) < 0 ||
	    payload_topic(deps->ctx, cmds->reply_prefix, sizeof(cmds->reply_prefix), "reply/") < 0) {
		commands_free(cmds);
		return -ENOMEM;
	}
	if (deps->store) {
		since = (int64_t)payload_wall_ms(deps->ctx) - (int64_t)REMEMBER_MS;
		r = store_load_command_replies(deps->store, since, ADMISSION_REPLIES, load_reply,
					       cmds);
		if (r < 0)
			log_error("replies to earlier commands not read: %s (a command delivered "
				  "again would run again)",
				  strerror(-r));
		else if (admission_n_replies(cmds->admission))
			log_info("%zu replies to earlier commands remembered",
				 admission_n_replies(cmds->admission));
	}
	*out = cmds;
	return 0;
}

void commands_free(struct commands *cmds)
{
	if (!cmds)
		return;
	admission_free(cmds->admission);
	free(cmds);
}

void commands_shutdown(struct commands *cmds)
{
	cmds->shutting_down = true;
}

/* Where a reply goes: the Response Topic, else reply/{request_id}. */
struct reply_to {
	const char *response_topic; /* checked already; NULL: none */
	const uint8_t *correlation;
	size_t correlation_len;
};

static void send_text(struct commands *cmds, const struct reply_to *to, const char *request_id,
		      const char *text)
{
	char topic[TOPIC_MAX];

	/* The request came over this connection; if it is gone, so is the
	 * asker: a reply that cannot be sent is not retried. */
	if (!publisher_is_connected(cmds->deps.pub)) {
		log_debug("command reply dropped: not connected");
	} else if (to->response_topic) {
		(void)publisher_reply(cmds->deps.pub, to->response_topic, to->correlation,
				      to->correlation_len, text, strlen(text));
	} else if (request_id && request_id[0] && command_id_valid(request_id) &&
		   payload_topic(cmds->deps.ctx, topic, sizeof(topic), "reply/%s", request_id) == 0) {
		(void)publisher_direct(cmds->deps.pub, topic, text, strlen(text), false);
	} else {
		log_debug("command without request_id or response topic: cannot reply");
	}
}

/* Builds the reply; NULL (logged) when it cannot be built. free() it. */
static char *reply_text(struct commands *cmds, const char *request_id, const char *session_id,
			const struct command_error *err)
{
	char ts[32], msg_id[96];
	json_t *envelope = payload_new(cmds->deps.ctx, msg_id);
	char *text = NULL;
	int r;

	json_decref(envelope); /* only its fresh msg_id was wanted */
	payload_format_ts(payload_wall_ms(cmds->deps.ctx), ts);
	r = command_reply_build(request_id, ts, msg_id, session_id, err, &text);
	if (r < 0) {
		log_error("command reply not built: %s", strerror(-r));
		return NULL;
	}
	return text;
}

static void reply(struct commands *cmds, const struct reply_to *to, const char *request_id,
		  const char *session_id, const struct command_error *err)
{
	char *text = reply_text(cmds, request_id, session_id, err);

	if (text)
		send_text(cmds, to, request_id, text);
	free(text);
}

static struct cuff *find_cuff(const struct commands *cmds, const char *id)
{
	return cuff_find(cmds->deps.cuffs, cmds->deps.n_cuffs, id);
}

static int lookup_ready_cuff(struct commands *cmds, const char *id, struct cuff **out,
			     struct command_error *err, const char *request_id)
{
	struct cuff *c = find_cuff(cmds, id);
	struct cuff_reading rd;

	if (!c) {
		command_error_set(err, CMD_ERR_UNKNOWN_CUFF, request_id, "cuff %s: no such cuff", id);
		return -ENOENT;
	}
	cuff_read(c, &rd);
	if (rd.link != CUFF_LINK_READY) {
		command_error_set(err, CMD_ERR_NOT_CONNECTED, request_id, "cuff %s: not connected",
				  id);
		return -ENOTCONN;
	}
	*out = c;
	return 0;
}

static int session_verb(struct commands *cmds, const struct command *cmd,
			struct command_error *err)
{
	struct run *run = runner_find(cmds->deps.runner, cmd->session_id);
	int r;

	if (!run) {
		command_error_set(err, CMD_ERR_NOT_FOUND, cmd->request_id,
				  "session_id: no running session %s", cmd->session_id);
		return -ENOENT;
	}
	switch (cmd->verb) {
	case CMD_SESSION_PAUSE:
		r = run_pause(run);
		break;
	case CMD_SESSION_RESUME:
		/* Live supervision: nobody watching, no resume (home.c). */
		if (cmds->deps.home &&
		    home_check_resume(cmds->deps.home, cmd->session_id, err, cmd->request_id) < 0)
			return -EPERM;
		r = run_resume(run, err, cmd->request_id);
		if (r == -EPERM)
			return r; /* *err names the cuff and the refusal */
		break;
	default:
		run_note_who(run, cmd->by, cmd->reason);
		r = run_stop(run);
		break;
	}
	if (r < 0)
		command_error_set(err, CMD_ERR_BAD_STATE, cmd->request_id,
				  "session %s cannot %s now", cmd->session_id,
				  cmd->verb == CMD_SESSION_PAUSE    ? "pause"
				  : cmd->verb == CMD_SESSION_RESUME ? "resume"
								    : "stop");
	return r;
}

/* After snprintf cut valid UTF-8 at a byte limit: drop a split last character. */
static void utf8_cut_tail(char *s)
{
	size_t n = strlen(s), i = n;
	unsigned char lead;
	size_t need;

	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

/*
 * E-stop never fails for a cuff it can reach: DEFLATE(e-stop) to every named
 * (or every) cuff, sessions on them aborted, and a gateway-wide HIGH `estop`
 * alarm that blocks new inflation until a clinician acknowledges it.
 */
static int estop(struct commands *cmds, const struct command *cmd, struct command_error *err)
{
	struct alarm_table *table = alarms_table(cmds->deps.alarms);
	uint64_t wall = payload_wall_ms(cmds->deps.ctx);
	char msg[ALARM_MSG_MAX], full[1024];
	size_t n = 0, len;

	for (unsigned i = 0; i < cmd->n_cuffs; i++)
		if (!find_cuff(cmds, cmd->cuffs[i])) {
			command_error_set(err, CMD_ERR_UNKNOWN_CUFF, cmd->request_id,
					  "cuffs[%u]: no such cuff %s", i, cmd->cuffs[i]);
			return -ENOENT;
		}
	for (size_t i = 0; i < cmds->deps.n_cuffs; i++) {
		struct cuff *c = cmds->deps.cuffs[i];
		struct run *run = cuff_session_owner(c);
		bool named = cmd->n_cuffs == 0;

		for (unsigned k = 0; k < cmd->n_cuffs && !named; k++)
			named = strcmp(cmd->cuffs[k], cuff_id(c)) == 0;
		if (!named)
			continue;
		n++;
		if (run) {
			run_note_who(run, cmd->by, cmd->reason);
			run_abort(run, "estop", BFR_DEFLATE_ESTOP);
		}
		cuff_deflate(c, BFR_DEFLATE_ESTOP, false);
	}
	/* Who and why go into the alarm a clinician has to acknowledge; what
	 * does not fit is cut (whole characters): the alarm is raised anyway. */
	snprintf(full, sizeof(full), "emergency stop%s%s: %zu cuff%s deflated%s%s",
		 cmd->by[0] ? " by " : "", cmd->by, n, n == 1 ? "" : "s",
		 cmd->reason[0] ? " - " : "", cmd->reason);
	len = strlen(full) < sizeof(msg) ? strlen(full) : sizeof(msg) - 1;
	memcpy(msg, full, len);
	msg[len] = '\0';
	utf8_cut_tail(msg);
	/* The e-stop is an event, not a lasting condition: the HIGH latch alone
	 * keeps the alarm (and the inflation block) until it is acknowledged. */
	if (alarm_raise(table, "", NULL, ALARM_ESTOP, msg, NULL, wall, NULL) < 0)
		log_error("e-stop: the estop alarm could not be raised");
	(void)alarm_condition_cleared(table, "", ALARM_ESTOP, wall); /* valid: cannot fail */
	log_warn("e-stop (request %s%s%s): %zu cuffs deflated", cmd->request_id,
		 cmd->by[0] ? ", by " : "", cmd->by, n);
	return 0;
}

static int ack(struct commands *cmds, const struct command *cmd, struct command_error *err)
{
	int r = alarm_ack(alarms_table(cmds->deps.alarms), cmd->alarm_id, cmd->by,
			  payload_wall_ms(cmds->deps.ctx));

	if (r == -ENOENT)
		command_error_set(err, CMD_ERR_NOT_FOUND, cmd->request_id,
				  "alarm_id: no open alarm %s", cmd->alarm_id);
	else if (r == -EALREADY)
		command_error_set(err, CMD_ERR_BAD_STATE, cmd->request_id,
				  "alarm %s is already acknowledged", cmd->alarm_id);
	else if (r < 0)
		command_error_set(err, CMD_ERR_BAD_REQUEST, cmd->request_id,
				  "by: must not contain control characters");
	return r;
}

static int measure_lop(struct commands *cmds, const struct command *cmd,
		       struct command_error *err)
{
	enum limits_refusal why = LIMITS_OK;
	struct cuff *c = NULL;
	int r = lookup_ready_cuff(cmds, cmd->cuff, &c, err, cmd->request_id);

	if (r < 0)
		return r;
	if (cuff_busy(c)) {
		command_error_set(err, CMD_ERR_CUFF_BUSY, cmd->request_id, "cuff %s is busy",
				  cuff_id(c));
		return -EBUSY;
	}
	r = cuff_measure_lop(c, &why);
	if (r < 0)
		command_error_set(err, command_refusal_code(why), cmd->request_id, "cuff %s: %s",
				  cuff_id(c), limits_refusal_name(why));
	return r;
}

static int identify(struct commands *cmds, const struct command *cmd, struct command_error *err)
{
	struct cuff *c = NULL;
	int r = lookup_ready_cuff(cmds, cmd->cuff, &c, err, cmd->request_id);

	if (r < 0)
		return r;
	r = cuff_identify(c);
	if (r < 0)
		command_error_set(err, CMD_ERR_BAD_STATE, cmd->request_id, "cuff %s: %s",
				  cuff_id(c), strerror(-r));
	return r;
}

static int execute(struct commands *cmds, const struct command *cmd, struct command_error *err,
		   char *session_id)
{
	switch (cmd->verb) {
	case CMD_SESSION_START:
		return runner_start(cmds->deps.runner, cmd, err, session_id);
	case CMD_SESSION_PAUSE:
	case CMD_SESSION_RESUME:
	case CMD_SESSION_STOP:
		return session_verb(cmds, cmd, err);
	case CMD_ESTOP:
		return estop(cmds, cmd, err);
	case CMD_ALARM_ACK:
		return ack(cmds, cmd, err);
	case CMD_LOP_MEASURE:
		return measure_lop(cmds, cmd, err);
	case CMD_CUFF_IDENTIFY:
		return identify(cmds, cmd, err);
	case CMD_SNAPSHOT:
		/* Everything retained, again: status, sessions, cuffs, running
		 * sessions' state, open alarms. */
		reporter_snapshot(cmds->deps.reporter);
		alarms_republish_open(cmds->deps.alarms);
		return 0;
	case CMD_PRESCRIPTION_SET:
	case CMD_PRESCRIPTION_CLEAR:
		if (cmds->deps.home)
			return home_prescription_command(cmds->deps.home, cmd, err);
		command_error_set(err, CMD_ERR_BAD_STATE, cmd->request_id, "not a home gateway");
		return -EPERM;
	default:
		command_error_set(err, CMD_ERR_UNKNOWN_VERB, cmd->request_id, "unknown verb");
		return -EINVAL;
	}
}

/* Valid topic name (no wildcards, no NUL) under the gateway's reply prefix. */
static bool response_topic_allowed(const struct commands *cmds, const char *topic)
{
	size_t plen = strlen(cmds->reply_prefix), len = strlen(topic);

	json_t *utf8;
	bool ok;

	if (len <= plen || len >= TOPIC_MAX || strncmp(topic, cmds->reply_prefix, plen) != 0 ||
	    strpbrk(topic, "+#"))
		return false;
	utf8 = json_string(topic); /* NULL unless valid UTF-8 */
	ok = utf8 != NULL;
	json_decref(utf8);
	return ok;
}

/* The requester's budget; it is known by its reply inbox (the Response
 * Topic without its last level): MQTT does not say who published. */
static bool requester_may(struct commands *cmds, const char *response_topic)
{
	char key[TOPIC_MAX] = "";
	const char *slash = response_topic ? strrchr(response_topic, '/') : NULL;

	if (slash)
		snprintf(key, sizeof(key), "%.*s", (int)(slash - response_topic), response_topic);
	return admission_take(cmds->admission, key, now_ms(cmds));
}

static void log_refusal(struct commands *cmds, const char *verb_name,
			const struct command_error *err)
{
	uint64_t left_out;

	if (log_rate_allow(&cmds->refused_log, now_ms(cmds), &left_out))
		log_warn("command %.64s refused: %s: %s", verb_name, command_error_name(err->code),
			 err->message);
	if (left_out)
		log_warn("... and %" PRIu64 " more commands refused in the last second", left_out);
}

/* Ignored without a reply: counted, and a line now and then. */
static void ignore(struct commands *cmds, uint64_t *counter, const char *verb_name,
		   const char *why)
{
	uint64_t left_out;

	(*counter)++;
	if (log_rate_allow(&cmds->ignored_log, now_ms(cmds), &left_out))
		log_warn("command %.64s ignored: %s (%" PRIu64 " so far)", verb_name, why,
			 *counter);
}

/* The reply given before to this request_id, sent again; false if none. */
static bool replay(struct commands *cmds, const struct reply_to *to, const char *verb_name,
		   const struct command *cmd, struct command_error *err)
{
	const char *verb = NULL;
	const char *text = admission_reply(cmds->admission, cmd->request_id, &verb);

	if (!text)
		return false;
	if (strcmp(verb, verb_name) != 0) {
		command_error_set(err, CMD_ERR_BAD_REQUEST, cmd->request_id,
				  "request_id: %s was used for cmd/%s already", cmd->request_id,
				  verb);
		return false;
	}
	cmds->replayed++;
	send_text(cmds, to, cmd->request_id, text);
	if (log_rate_allow(&cmds->refused_log, now_ms(cmds), NULL))
		log_info("command %s delivered again: answered with its first reply, not run again",
			 cmd->request_id);
	return true;
}

void commands_handle(struct commands *cmds, const char *verb_name,
		     const struct mqtt_message *msg)
{
	struct reply_to to = { .correlation = msg->correlation,
			       .correlation_len = msg->correlation_len };
	struct command_error err = { 0 };
	struct command *cmd = NULL;
	char session_id[SESSION_ID_BUF] = "";
	bool bad_topic = false, estop = strcmp(verb_name, "estop") == 0;
	enum command_verb verb;
	char *text;
	int r;

	/* 1. A retained command is a replay of the past, never a request. */
	if (msg->retained) {
		ignore(cmds, &cmds->retained_ignored, verb_name,
		       "retained (commands are live only; clear it with an empty retained payload)");
		return;
	}
	/* 2. Replies go under reply/ only; elsewhere the command is refused. */
	if (msg->response_topic) {
		if (response_topic_allowed(cmds, msg->response_topic)) {
			to.response_topic = msg->response_topic;
		} else {
			bad_topic = true;
			cmds->bad_response_topic++;
		}
	}
	/* 3. Load shedding: neither read nor run (an e-stop is never shed). */
	if (msg->shed) {
		command_error_set(&err, CMD_ERR_OVERLOADED, NULL,
				  "the gateway is overloaded: command not read, send it again");
		cmds->shed++;
		goto flood;
	}
	if (!estop && !requester_may(cmds, to.response_topic)) {
		command_error_set(&err, CMD_ERR_RATE_LIMITED, NULL,
				  "more than %d commands a second from this requester: not read",
				  ADMISSION_RATE_PER_S);
		cmds->rate_limited++;
		goto flood;
	}
	cmd = calloc(1, sizeof(*cmd));
	if (!cmd) {
		command_error_set(&err, CMD_ERR_INTERNAL, NULL, "out of memory");
		goto answer;
	}
	if (command_verb_parse(verb_name, &verb) < 0) {
		command_error_set(&err, CMD_ERR_UNKNOWN_VERB, NULL, "cmd/%.64s: unknown command",
				  verb_name);
		goto answer;
	}
	r = command_parse(verb, msg->payload, msg->len, cmd, &err);
	if (r < 0)
		goto answer;
	if (bad_topic) {
		command_error_set(&err, CMD_ERR_BAD_REQUEST, cmd->request_id,
				  "Response Topic: must be a topic name under %s", cmds->reply_prefix);
		goto answer;
	}
	/* 4. Delivered again: the first reply, and nothing runs twice. */
	if (replay(cmds, &to, verb_name, cmd, &err))
		goto out;
	if (err.code != CMD_ERR_NONE)
		goto answer;
	/* While stopping only what makes things safer is done. */
	if (cmds->shutting_down && verb != CMD_ESTOP && verb != CMD_ALARM_ACK) {
		command_error_set(&err, CMD_ERR_BAD_STATE, cmd->request_id,
				  "the gateway is shutting down");
		goto remembered;
	}
	r = execute(cmds, cmd, &err, session_id);
	if (r < 0 && err.code == CMD_ERR_NONE)
		command_error_set(&err, CMD_ERR_INTERNAL, cmd->request_id, "%s", strerror(-r));
	if (r >= 0)
		snprintf(err.request_id, sizeof(err.request_id), "%s", cmd->request_id);
remembered:
	if (err.code != CMD_ERR_NONE)
		log_refusal(cmds, verb_name, &err);
	text = reply_text(cmds, err.request_id, session_id[0] ? session_id : NULL,
			  err.code == CMD_ERR_NONE ? NULL : &err);
	if (text) {
		remember(cmds, cmd->request_id, verb_name, text);
		if (cmds->deps.store &&
		    store_command_reply(cmds->deps.store, cmd->request_id, verb_name, text,
					(int64_t)payload_wall_ms(cmds->deps.ctx), 0) < 0)
			log_error("command %s: reply not recorded (a re-delivery after a restart "
				  "would run it again)",
				  cmd->request_id);
		send_text(cmds, &to, cmd->request_id, text);
	}
	free(text);
	goto out;
flood:
	/* A flood's refusals are answered up to a rate; the rest only counted. */
	if (!log_rate_allow(&cmds->flood_replies, now_ms(cmds), NULL)) {
		cmds->flood_unanswered++;
		log_refusal(cmds, verb_name, &err);
		goto out;
	}
answer:
	if (bad_topic && log_rate_allow(&cmds->ignored_log, now_ms(cmds), NULL))
		log_warn("command %.64s: Response Topic outside %s refused (%" PRIu64 " so far)",
			 verb_name, cmds->reply_prefix, cmds->bad_response_topic);
	if (err.code != CMD_ERR_NONE)
		log_refusal(cmds, verb_name, &err);
	reply(cmds, &to, err.request_id, NULL, &err);
out:
	free(cmd);
}
