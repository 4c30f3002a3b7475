/*
 * backoff.h - jittered exponential reconnect delay ("equal jitter").
 *
 * Attempt n (0-based) waits a uniformly random time in [c/2, c] where
 * c = min(max_ms, base_ms * 2^n). Equal jitter rather than full jitter
 * because full jitter can pick ~0 ms: a cuff that drops repeatedly would then
 * hammer its adapter (which serialises LE connection attempts, so every
 * wasted attempt delays the other cuffs). Half the ceiling is a guaranteed
 * pause; the other half still spreads out many cuffs that dropped together
 * (gateway restart, RF interference) so they do not reconnect in lockstep.
 *
 * Pure: the random source is injected, so tests are deterministic. A value
 * type (no allocation); zero-initialised it is not usable, call backoff_init.
 */
#ifndef BFR_BACKOFF_H
#define BFR_BACKOFF_H

#include <stdint.h>

#define BACKOFF_DEFAULT_BASE_MS 500
#define BACKOFF_DEFAULT_MAX_MS 30000

/* Returns a uniformly distributed 32-bit random number. */
typedef uint32_t (*backoff_random_fn)(void *random_data);

struct backoff {
	uint32_t base_ms;
	uint32_t max_ms;
	uint32_t attempt; /* delays handed out since the last reset */
	backoff_random_fn random;
	void *random_data;
};

/* -EINVAL when base_ms is 0, max_ms < base_ms or random is NULL. */
int backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms, backoff_random_fn random,
		 void *random_data);
/* The delay before the next attempt; advances the attempt counter. */
uint32_t backoff_next_ms(struct backoff *b);
/* After a successful session: the next delay starts from base_ms again. */
void backoff_reset(struct backoff *b);

#endif
