/*
 * sim.h - the simulator: N cuffs, their sockets, the control socket, one
 * periodic tick for all cuffs, fault execution and statistics.
 *
 * This is cuffsim's I/O layer. Each cuff is a model (model.h) plus a GATT
 * server (cuff_gatt.h) behind an AF_UNIX SOCK_SEQPACKET listening socket
 * DIR/cuff-NN.sock; one connection per cuff, a new one replaces the old
 * (what a re-connecting central looks like). DIR/control.sock is a
 * SOCK_STREAM socket speaking control.h's line language.
 *
 * Invariants: single-threaded on the caller's loop; one timer drives every
 * cuff (samples are computed from the elapsed time, so a late tick catches
 * up instead of drifting); nothing is allocated per sample; sim_free()
 * closes and unlinks every socket it created.
 */
#ifndef CUFFSIM_SIM_H
#define CUFFSIM_SIM_H

#include <stdint.h>

#include <stdbool.h>

#include "control.h"
#include "loop.h"

struct sim;

#define SIM_STAGGER_GROUPS 10

/*
 * When sample k (from 0) of stagger group g of `groups` is due, in ms after
 * the start: the first instant t with t * rate >= (k + 1 + g / groups) * 1000.
 * With one group it is the plain schedule ceil((k + 1) * 1000 / rate).
 */
uint64_t sim_sample_due_ms(uint32_t rate_hz, unsigned groups, unsigned g, uint64_t k);

struct sim_config {
	const char *dir;
	unsigned n_cuffs;       /* 1..CONTROL_MAX_CUFFS */
	uint8_t limb;           /* enum bfr_limb */
	uint32_t rate_hz;       /* 1..1000 */
	double lop_mmhg;        /* 0: from the formula */
	uint64_t seed;
	unsigned handle_shift;  /* 0..CUFF_GATT_MAX_SHIFT */
	unsigned batch;         /* samples per notification, 1..BFR_MAX_SAMPLES_PER_NTF */
	bool stagger;           /* spread the cuffs' sample instants over the period */
	uint16_t server_mtu;    /* answered to Exchange MTU, 23..517; 0: 517 */
};

/* Creates and listens on every socket; the tick starts with sim_start(). */
int sim_new(struct loop *loop, const struct sim_config *cfg, struct sim **out);
void sim_free(struct sim *s);

/* Starts the tick (and the scenario, if any) at the loop's current time. */
int sim_start(struct sim *s);

/* Takes ownership of sc; its offsets count from sim_start(). */
void sim_set_scenario(struct sim *s, struct scenario *sc);

/*
 * Executes a parsed command. *reply gets a malloc'd line without newline
 * ("ok ..." / "error: ..."): the caller frees it. 0 or -ENOMEM.
 */
int sim_execute(struct sim *s, const struct control_cmd *cmd, char **reply);

/* Parses and executes one control line (what the control socket does). */
int sim_execute_line(struct sim *s, const char *line, char **reply);

/* The `stats` JSON document as one line; malloc'd. 0 or -ENOMEM. */
int sim_stats_json(struct sim *s, char **out);

#endif
