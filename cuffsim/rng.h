/*
 * rng.h - the simulator's own small PRNG (xoshiro-style xorshift64* seeded
 * through splitmix64).
 *
 * Determinism is a product feature of cuffsim (same --seed, same samples), so
 * nothing here depends on libc's rand() state, the platform or the time. Each
 * cuff owns one generator, seeded from (seed, cuff index), so adding a cuff
 * does not change the streams of the others.
 */
#ifndef CUFFSIM_RNG_H
#define CUFFSIM_RNG_H

#include <math.h>
#include <stdint.h>

struct sim_rng {
	uint64_t state;
	/* Box-Muller yields pairs; the second is kept for the next call. */
	double spare;
	int has_spare;
};

static inline uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);

	r->state = splitmix64(&x);
	if (r->state == 0) /* xorshift must never hold 0 */
		r->state = 0x853C49E6748FEA9Bull;
	r->has_spare = 0;
	r->spare = 0;
}

static inline uint64_t sim_rng_next(struct sim_rng *r)
{
	uint64_t x = r->state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, 1). */
static inline double sim_rng_uniform(struct sim_rng *r)
{
	return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (mean 0, sigma 1). */
static inline double sim_rng_normal(struct sim_rng *r)
{
	double u, v, s;

	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	do {
		u = 2.0 * sim_rng_uniform(r) - 1.0;
		v = 2.0 * sim_rng_uniform(r) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	s = sqrt(-2.0 * log(s) / s);
	r->spare = v * s;
	r->has_spare = 1;
	return u * s;
}

#endif
