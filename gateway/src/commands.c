/* commands.c - see commands.h. */
#include "commands.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "log.h"

struct commands {
	struct commands_deps deps;
	bool shutting_down;
};

int commands_new(const struct commands_deps *deps, struct commands **out)
{
	struct commands *cmds = calloc(1, sizeof(*cmds));

	if (!cmds)
		return -ENOMEM;
	cmds->deps = *deps;
	*out = cmds;
	return 0;
}

void commands_free(struct commands *cmds)
{
	free(cmds);
}

void commands_shutdown(struct commands *cmds)
{
	cmds->shutting_down = true;
}

static void reply(struct commands *cmds, const char *response_topic, const uint8_t *correlation,
		  size_t correlation_len, const char *request_id, const char *session_id,
		  const struct command_error *err)
{
	char ts[32], msg_id[96], topic[TOPIC_MAX];
	json_t *envelope = payload_new(cmds->deps.ctx, msg_id);
	char *text = NULL;
	int r;

	json_decref(envelope); /* only its fresh msg_id was wanted */
	payload_format_ts(payload_wall_ms(cmds->deps.ctx), ts);
	r = command_reply_build(request_id, ts, msg_id, session_id, err, &text);
	if (r < 0) {
		log_error("command reply not built: %s", strerror(-r));
		return;
	}
	/* The request came over this connection; if it is gone, so is the
	 * asker: a reply that cannot be sent is not retried. */
	if (!publisher_is_connected(cmds->deps.pub)) {
		log_debug("command reply dropped: not connected");
	} else if (response_topic && response_topic[0]) {
		(void)publisher_reply(cmds->deps.pub, response_topic, correlation, correlation_len,
				      text, strlen(text));
	} else if (request_id && request_id[0] && command_id_valid(request_id) &&
		   payload_topic(cmds->deps.ctx, topic, sizeof(topic), "reply/%s", request_id) == 0) {
		(void)publisher_direct(cmds->deps.pub, topic, text, strlen(text), false);
	} else {
		log_warn("command without request_id or response topic: cannot reply");
	}
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
		r = run_resume(run, err, cmd->request_id);
		if (r == -EPERM)
			return r; /* *err names the cuff and the refusal */
		break;
	default:
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

/*
 * E-stop never fails for a cuff it can reach: DEFLATE(e-stop) to every named
 * (or every) cuff, sessions on them aborted, and a gateway-wide HIGH `estop`
 * alarm that blocks new inflation until a clinician acknowledges it.
 */
static int estop(struct commands *cmds, const struct command *cmd, struct command_error *err)
{
	struct alarm_table *table = alarms_table(cmds->deps.alarms);
	uint64_t wall = payload_wall_ms(cmds->deps.ctx);
	char msg[ALARM_MSG_MAX];
	size_t n = 0;

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
		if (run)
			run_abort(run, "estop", BFR_DEFLATE_ESTOP);
		cuff_deflate(c, BFR_DEFLATE_ESTOP, false);
	}
	snprintf(msg, sizeof(msg), "emergency stop: %zu cuff%s deflated", n, n == 1 ? "" : "s");
	/* The e-stop is an event, not a lasting condition: the HIGH latch alone
	 * keeps the alarm (and the inflation block) until it is acknowledged. */
	if (alarm_raise(table, "", NULL, ALARM_ESTOP, msg, NULL, wall, NULL) < 0)
		log_error("e-stop: the estop alarm could not be raised");
	(void)alarm_condition_cleared(table, "", ALARM_ESTOP, wall); /* valid: cannot fail */
	log_warn("e-stop (request %s): %zu cuffs deflated", cmd->request_id, n);
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

void commands_handle(struct commands *cmds, const char *verb_name, const uint8_t *payload,
		     size_t len, const char *response_topic, const uint8_t *correlation,
		     size_t correlation_len)
{
	struct command_error err = { 0 };
	struct command *cmd = calloc(1, sizeof(*cmd));
	char session_id[SESSION_ID_BUF] = "";
	enum command_verb verb;
	int r;

	if (!cmd) {
		command_error_set(&err, CMD_ERR_INTERNAL, NULL, "out of memory");
		goto answer;
	}
	if (command_verb_parse(verb_name, &verb) < 0) {
		command_error_set(&err, CMD_ERR_UNKNOWN_VERB, NULL, "cmd/%.64s: unknown command",
				  verb_name);
		goto answer;
	}
	r = command_parse(verb, payload, len, cmd, &err);
	if (r < 0)
		goto answer;
	/* While stopping only what makes things safer is done. */
	if (cmds->shutting_down && verb != CMD_ESTOP && verb != CMD_ALARM_ACK) {
		command_error_set(&err, CMD_ERR_BAD_STATE, cmd->request_id,
				  "the gateway is shutting down");
		goto answer;
	}
	r = execute(cmds, cmd, &err, session_id);
	if (r < 0 && err.code == CMD_ERR_NONE)
		command_error_set(&err, CMD_ERR_INTERNAL, cmd->request_id, "%s", strerror(-r));
	if (r < 0)
		goto answer;
	snprintf(err.request_id, sizeof(err.request_id), "%s", cmd->request_id);
answer:
	if (err.code != CMD_ERR_NONE)
		log_warn("command %.64s refused: %s: %s", verb_name, command_error_name(err.code),
			 err.message);
	reply(cmds, response_topic, correlation, correlation_len, err.request_id,
	      session_id[0] ? session_id : NULL, err.code == CMD_ERR_NONE ? NULL : &err);
	free(cmd);
}
