/*
 * gw_command.c - commands from MQTT (cmd/{verb}) to the gateway.
 *
 * command_parse() (gateway/logic/command.c) checks what a payload can get
 * wrong on its own; here come the checks that need the gateway's state
 * (unknown cuff, busy cuff, limits, alarms). A refused command changes
 * nothing and sends nothing to a cuff. Every command gets exactly one reply:
 * on the MQTT 5 Response Topic with its Correlation Data, else on
 * reply/{request_id} (MQTT 3.1.1 clients). A payload without a usable
 * request_id and without a Response Topic cannot be answered; it is logged.
 */
#include "gateway_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void reply(struct gateway *gw, const char *response_topic, const uint8_t *correlation,
		  size_t correlation_len, const char *request_id, const char *session_id,
		  const struct command_error *err)
{
	char ts[32], msg_id[96], topic[TOPIC_MAX];
	json_t *envelope = payload_new(&gw->pctx, msg_id);
	char *text = NULL;
	int r;

	json_decref(envelope);
	payload_format_ts(gw_wall_ms(gw), ts);
	r = command_reply_build(request_id, ts, msg_id, session_id, err, &text);
	if (r < 0) {
		log_error("command reply not built: %s", strerror(-r));
		return;
	}
	if (!gw->mqtt_connected) {
		/* The request came over this connection; if it is gone, so is the asker. */
	} else if (response_topic && response_topic[0]) {
		mqtt_client_publish_reply(gw->mqtt, response_topic, correlation, correlation_len,
					  text, strlen(text));
	} else if (request_id && request_id[0] && command_id_valid(request_id) &&
		   payload_topic(&gw->pctx, topic, sizeof(topic), "reply/%s", request_id) == 0) {
		mqtt_client_publish(gw->mqtt, topic, text, strlen(text), 1, false, 0);
	} else {
		log_warn("command without request_id or response topic: cannot reply");
	}
	free(text);
}

static int lookup_ready_cuff(struct gateway *gw, const char *id, struct gw_cuff **out,
			     struct command_error *err, const char *request_id)
{
	struct gw_cuff *c = gw_find_cuff(gw, id);

	if (!c) {
		command_error_set(err, CMD_ERR_UNKNOWN_CUFF, request_id, "cuff %s: no such cuff", id);
		return -ENOENT;
	}
	if (c->link_state != CUFF_LINK_READY) {
		command_error_set(err, CMD_ERR_NOT_CONNECTED, request_id, "cuff %s: not connected",
				  id);
		return -ENOTCONN;
	}
	*out = c;
	return 0;
}

static int session_verb(struct gateway *gw, const struct command *cmd, struct command_error *err)
{
	struct gw_session *gs = gw_session_find(gw, cmd->session_id);
	int r = 0;

	if (!gs || gs->ended) {
		command_error_set(err, CMD_ERR_NOT_FOUND, cmd->request_id,
				  "session_id: no running session %s", cmd->session_id);
		return -ENOENT;
	}
	switch (cmd->verb) {
	case CMD_SESSION_PAUSE:
		r = gw_session_pause(gs);
		break;
	case CMD_SESSION_RESUME: {
		const struct session_exercise *ex = NULL;
		struct session_state st;

		/* Resuming a phase that holds pressure re-inflates the current
		 * exercise's cuffs: the safety engine must agree first. */
		if (session_get_state(gs->s, loop_now_ms(gw->loop), &st) == 0 && st.exercise >= 0 &&
		    (st.paused_phase == SESSION_PHASE_INFLATING ||
		     st.paused_phase == SESSION_PHASE_SET ||
		     (st.paused_phase == SESSION_PHASE_REST &&
		      session_plan(gs->s)->exercises[st.exercise].mode == SESSION_MODE_CONTINUOUS)))
			ex = &session_plan(gs->s)->exercises[st.exercise];
		for (unsigned i = 0; ex && i < ex->n_cuffs; i++) {
			enum limits_refusal why = LIMITS_OK;
			struct gw_cuff *c = gw_find_cuff(gw, ex->cuffs[i]);

			if (c && safety_may_inflate(&c->safety, loop_now_ms(gw->loop),
					       alarm_has_unacked_high(gw->alarms, c->cfg->id),
					       &why) < 0) {
				command_error_set(err, gw_refusal_code(why), cmd->request_id,
						  "cuff %s: %s", c->cfg->id,
						  limits_refusal_name(why));
				return -EPERM;
			}
		}
		r = gw_session_resume(gs);
		break;
	}
	default:
		r = gw_session_stop(gs);
		break;
	}
	if (r < 0)
		command_error_set(err, CMD_ERR_BAD_STATE, cmd->request_id,
				  "session %s cannot %s now", gs->id,
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
static int estop(struct gateway *gw, const struct command *cmd, struct command_error *err)
{
	char msg[ALARM_MSG_MAX];
	size_t n = 0;

	for (unsigned i = 0; i < cmd->n_cuffs; i++)
		if (!gw_find_cuff(gw, cmd->cuffs[i])) {
			command_error_set(err, CMD_ERR_UNKNOWN_CUFF, cmd->request_id,
					  "cuffs[%u]: no such cuff %s", i, cmd->cuffs[i]);
			return -ENOENT;
		}
	for (size_t i = 0; i < gw->n_cuffs; i++) {
		struct gw_cuff *c = &gw->cuffs[i];
		bool named = cmd->n_cuffs == 0;

		for (unsigned k = 0; k < cmd->n_cuffs && !named; k++)
			named = strcmp(cmd->cuffs[k], c->cfg->id) == 0;
		if (!named)
			continue;
		n++;
		if (c->session && !c->session->ended)
			gw_session_abort(c->session, "estop", BFR_DEFLATE_ESTOP);
		gw_cuff_deflate(c, BFR_DEFLATE_ESTOP, false);
	}
	snprintf(msg, sizeof(msg), "emergency stop: %zu cuff%s deflated", n, n == 1 ? "" : "s");
	/* The e-stop is an event, not a lasting condition: the HIGH latch alone
	 * keeps the alarm (and the inflation block) until it is acknowledged. */
	alarm_raise(gw->alarms, "", NULL, ALARM_ESTOP, msg, NULL, gw_wall_ms(gw), NULL);
	alarm_condition_cleared(gw->alarms, "", ALARM_ESTOP, gw_wall_ms(gw));
	log_warn("e-stop (request %s): %zu cuffs deflated", cmd->request_id, n);
	return 0;
}

static int execute(struct gateway *gw, const struct command *cmd, struct command_error *err,
		   char *session_id)
{
	struct gw_cuff *c = NULL;
	enum limits_refusal why = LIMITS_OK;
	struct bfr_cp_request req = { .opcode = BFR_CP_IDENTIFY };
	int r;

	switch (cmd->verb) {
	case CMD_SESSION_START:
		return gw_session_start(gw, cmd, err, session_id);
	case CMD_SESSION_PAUSE:
	case CMD_SESSION_RESUME:
	case CMD_SESSION_STOP:
		return session_verb(gw, cmd, err);
	case CMD_ESTOP:
		return estop(gw, cmd, err);
	case CMD_ALARM_ACK:
		r = alarm_ack(gw->alarms, cmd->alarm_id, cmd->by, gw_wall_ms(gw));
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
	case CMD_LOP_MEASURE:
		r = lookup_ready_cuff(gw, cmd->cuff, &c, err, cmd->request_id);
		if (r < 0)
			return r;
		if (c->session || c->lop_measuring) {
			command_error_set(err, CMD_ERR_CUFF_BUSY, cmd->request_id,
					  "cuff %s is busy", c->cfg->id);
			return -EBUSY;
		}
		r = gw_cuff_measure_lop(c, &why);
		if (r < 0)
			command_error_set(err, gw_refusal_code(why), cmd->request_id, "cuff %s: %s",
					  c->cfg->id, limits_refusal_name(why));
		return r;
	case CMD_CUFF_IDENTIFY:
		r = lookup_ready_cuff(gw, cmd->cuff, &c, err, cmd->request_id);
		if (r < 0)
			return r;
		r = cuff_link_send_cp(c->link, &req);
		if (r < 0)
			command_error_set(err, CMD_ERR_BAD_STATE, cmd->request_id,
					  "cuff %s: %s", c->cfg->id, strerror(-r));
		return r;
	default:
		command_error_set(err, CMD_ERR_UNKNOWN_VERB, cmd->request_id, "unknown verb");
		return -EINVAL;
	}
}

void gw_command_handle(struct gateway *gw, const char *verb_name, const uint8_t *payload,
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
	if (gw->stopping && verb != CMD_ESTOP && verb != CMD_ALARM_ACK) {
		command_error_set(&err, CMD_ERR_BAD_STATE, cmd->request_id,
				  "the gateway is shutting down");
		goto answer;
	}
	r = execute(gw, cmd, &err, session_id);
	if (r < 0 && err.code == CMD_ERR_NONE)
		command_error_set(&err, CMD_ERR_INTERNAL, cmd->request_id, "%s", strerror(-r));
	if (r < 0)
		goto answer;
	snprintf(err.request_id, sizeof(err.request_id), "%s", cmd->request_id);
answer:
	if (err.code != CMD_ERR_NONE)
		log_warn("command %.64s refused: %s: %s", verb_name, command_error_name(err.code),
			 err.message);
	reply(gw, response_topic, correlation, correlation_len, err.request_id,
	      session_id[0] ? session_id : NULL, err.code == CMD_ERR_NONE ? NULL : &err);
	free(cmd);
}
