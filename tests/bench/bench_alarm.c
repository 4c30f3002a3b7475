/*
 * bench_alarm.c - what the alarm table (gateway/logic/alarm.c) costs the
 * gateway's receive path at N cuffs.
 *
 * Not built by CMake/ctest (timings are no assertions). Build and run from
 * the repository root, optimised and without sanitizers:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Igateway/logic tests/bench/bench_alarm.c \
 *      gateway/logic/alarm.c -lm -o /tmp/bench_alarm
 *   /tmp/bench_alarm [N_CUFFS] [ROUNDS]      (default 500 cuffs, 20 rounds)
 *
 * Table: alarm_table_capacity_for(N), as the gateway makes it. Background:
 * every cuff has a LOW battery_low and every third one a MEDIUM leak open, so
 * the table is not empty (the scans of the old linear table grow with the
 * open alarms). One round is the "spike all" burst as the gateway runs it:
 *   1. raise over_pressure_ceiling (HIGH) on every cuff, each followed by
 *      alarm_has_unacked_high() and alarm_list_open(cuff) (the cuff-state
 *      publish of gw_publish_cuff_state);
 *   2. condition cleared on every cuff (latched: stays open), list_open(cuff);
 *   3. alarm_find_id + alarm_ack of every alarm (clears it), list_open(cuff);
 * plus one alarm_list_open(NULL) (the startup / republish listing) per round.
 * Prints the mean per call of each operation and the whole round's time.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alarm.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t sink;

static void on_record(const struct alarm_record *rec, void *user_data)
{
	(void)user_data;
	sink += rec->seq;
}

enum op { OP_RAISE, OP_UNACKED, OP_LIST_CUFF, OP_CLEAR, OP_FIND_ID, OP_ACK, OP_LIST_ALL, OP_N };
static const char *op_name[OP_N] = { "raise (new HIGH)",   "has_unacked_high",
				     "list_open(cuff)",    "condition_cleared",
				     "find_id",            "ack (clears)",
				     "list_open(NULL)" };

int main(int argc, char **argv)
{
	size_t n_cuffs = argc > 1 ? strtoul(argv[1], NULL, 10) : 500;
	int rounds = argc > 2 ? atoi(argv[2]) : 20;
	struct alarm_table *t = NULL;
	char (*cuff)[24] = calloc(n_cuffs, sizeof(*cuff));
	char (*ids)[ALARM_ID_MAX] = calloc(n_cuffs, sizeof(*ids));
	const struct alarm_record *list[64];
	const struct alarm_record **all = NULL;
	uint64_t total[OP_N] = { 0 }, calls[OP_N] = { 0 }, round_ns = 0, worst_round = 0;
	size_t n = 0, cap_all;
	uint64_t ms = 1000;

	if (!cuff || !ids || n_cuffs == 0 || rounds <= 0)
		return 2;
	if (alarm_table_new("bench-gw", alarm_table_capacity_for(n_cuffs), 1, on_record, NULL,
			    &t) < 0)
		return 1;
	cap_all = alarm_table_capacity_for(n_cuffs);
	all = calloc(cap_all, sizeof(*all));
	if (!all)
		return 1;
	for (size_t c = 0; c < n_cuffs; c++) {
		snprintf(cuff[c], sizeof(cuff[c]), "bay%03zu", c);
		if (alarm_raise(t, cuff[c], NULL, ALARM_BATTERY_LOW, NULL, NULL, ms, NULL) < 0)
			return 1;
		if (c % 3 == 0 &&
		    alarm_raise(t, cuff[c], NULL, ALARM_LEAK, NULL, NULL, ms, NULL) < 0)
			return 1;
	}

#define TIMED(op, expr)                                                                            \
	do {                                                                                       \
		uint64_t t0_ = now_ns();                                                           \
		if ((expr) < 0)                                                                    \
			return 1;                                                                  \
		total[op] += now_ns() - t0_;                                                       \
		calls[op]++;                                                                       \
	} while (0)

	for (int r = 0; r < rounds; r++) {
		uint64_t r0 = now_ns();
		struct alarm_values v = { 280, 150, 250, NAN };

		for (size_t c = 0; c < n_cuffs; c++) {
			TIMED(OP_RAISE, alarm_raise(t, cuff[c], "s-1", ALARM_OVER_PRESSURE_CEILING,
						    NULL, &v, ++ms, ids[c]));
			TIMED(OP_UNACKED, alarm_has_unacked_high(t, cuff[c]) ? 0 : -1);
			TIMED(OP_LIST_CUFF, alarm_list_open(t, cuff[c], list, 64, &n));
		}
		for (size_t c = 0; c < n_cuffs; c++) {
			TIMED(OP_CLEAR,
			      alarm_condition_cleared(t, cuff[c], ALARM_OVER_PRESSURE_CEILING, ++ms));
			TIMED(OP_LIST_CUFF, alarm_list_open(t, cuff[c], list, 64, &n));
		}
		TIMED(OP_LIST_ALL, alarm_list_open(t, NULL, all, cap_all, &n));
		for (size_t c = 0; c < n_cuffs; c++) {
			TIMED(OP_FIND_ID, alarm_find_id(t, ids[c]) ? 0 : -1);
			TIMED(OP_ACK, alarm_ack(t, ids[c], "bench", ++ms));
			TIMED(OP_LIST_CUFF, alarm_list_open(t, cuff[c], list, 64, &n));
		}
		round_ns += now_ns() - r0;
		if (now_ns() - r0 > worst_round)
			worst_round = now_ns() - r0;
		if (alarm_open_count(t) != n_cuffs + (n_cuffs + 2) / 3)
			return 1;
	}
	printf("alarm table: %zu cuffs, capacity %zu, %zu open in background, %d rounds\n",
	       n_cuffs, cap_all, alarm_open_count(t), rounds);
	for (int op = 0; op < OP_N; op++)
		printf("  %-20s %10.3f us/call  (%" PRIu64 " calls)\n", op_name[op],
		       calls[op] ? (double)total[op] / (double)calls[op] / 1000.0 : 0.0,
		       calls[op]);
	printf("  whole round (burst): mean %.3f ms, worst %.3f ms\n",
	       (double)round_ns / rounds / 1e6, (double)worst_round / 1e6);
	alarm_table_free(t);
	free(all);
	free(cuff);
	free(ids);
	return sink == 0;
}
