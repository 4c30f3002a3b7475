/*
 * gateway.h - the bfr-gateway daemon: wires cuffs, the safety engine,
 * sessions, alarms, the store and MQTT onto one event loop.
 *
 * gateway_new() takes ownership of the config; gateway_run() runs until
 * SIGTERM/SIGINT (or gateway_stop()), then deflates every inflated cuff,
 * ends running sessions as stopped, flushes the store and disconnects with
 * the Last Will. docs/architecture.md describes the data flow.
 */
#ifndef BFR_GATEWAY_H
#define BFR_GATEWAY_H

#include "config.h"
#include "loop.h"

struct gateway;

/* -errno; err gets a one-line reason. Nothing is connected yet. */
int gateway_new(struct loop *loop, struct config *cfg, struct gateway **out, char *err,
		size_t errlen);
/* Connects cuffs and the broker, then runs the loop until stopped. */
int gateway_run(struct gateway *gw);
void gateway_stop(struct gateway *gw);
void gateway_free(struct gateway *gw);

#endif
