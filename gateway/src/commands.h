/*
 * commands.h - commands from MQTT (cmd/{verb}) to the gateway: each verb
 * turned into calls on the runner, the cuffs and the alarm table, and
 * exactly one reply.
 *
 * Commands are live and run once (SR-27): retained deliveries are ignored,
 * and a request_id answered before is answered again with its first reply.
 * They cannot crowd out safety (SR-28): the MQTT client hands over a bounded
 * number per loop turn, sheds what waits beyond its bound, and each
 * requester (told apart by its reply inbox) has a budget of commands a
 * second; an e-stop is never shed or limited. See commands.c for the order.
 *
 * command_parse() (gateway/logic/command.c) checks what a payload can get
 * wrong on its own; the checks that need the gateway's state (unknown cuff,
 * busy cuff, limits, alarms) are made by the module that owns that state
 * (runner_start, run_resume, cuff_measure_lop). A refused command changes
 * nothing and sends nothing to a cuff. The reply goes to the MQTT 5
 * Response Topic with its Correlation Data, else to reply/{request_id}
 * (MQTT 3.1.1 clients); a payload without a usable request_id and without
 * a Response Topic cannot be answered and is logged.
 */
#ifndef BFR_COMMANDS_H
#define BFR_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "alarms.h"
#include "cuff.h"
#include "home.h"
#include "loop.h"
#include "mqtt_client.h"
#include "payload.h"
#include "publisher.h"
#include "reporter.h"
#include "runner.h"
#include "store.h"

struct commands;

struct commands_deps {
	struct loop *loop;
	struct store *store; /* NULL: replies remembered in memory only */
	struct payload_ctx *ctx;
	struct publisher *pub;
	struct runner *runner;
	struct reporter *reporter; /* cmd/snapshot */
	struct alarms *alarms;
	struct cuff *const *cuffs;
	size_t n_cuffs;
	struct home *home; /* prescription/set, prescription/clear */
};

int commands_new(const struct commands_deps *deps, struct commands **out);
void commands_free(struct commands *cmds);

/* From now on only what makes things safer (estop, alarm/ack) is done. */
void commands_shutdown(struct commands *cmds);

/* One message on cmd/{verb_name}. */
void commands_handle(struct commands *cmds, const char *verb_name,
		     const struct mqtt_message *msg);

#endif
