/* backoff.c - see backoff.h */
#include "backoff.h"

#include <errno.h>
#include <stddef.h>

int backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms, backoff_random_fn random,
		 void *random_data)
{
	if (!b || base_ms == 0 || max_ms < base_ms || !random)
		return -EINVAL;
	b->base_ms = base_ms;
	b->max_ms = max_ms;
	b->attempt = 0;
	b->random = random;
	b->random_data = random_data;
	return 0;
}

static uint32_t ceiling_ms(const struct backoff *b)
{
	uint64_t c = b->base_ms;

	/* Stop doubling once past max: avoids overflow for huge attempt counts. */
	for (uint32_t i = 0; i < b->attempt && c < b->max_ms; i++)
		c *= 2;
	return c > b->max_ms ? b->max_ms : (uint32_t)c;
}

uint32_t backoff_next_ms(struct backoff *b)
{
	uint32_t c = ceiling_ms(b);
	uint32_t half = c / 2;
	uint32_t span = c - half; /* the jittered part: [half, c] inclusive */
	uint32_t r = b->random(b->random_data);

	if (b->attempt < UINT32_MAX)
		b->attempt++;
	return half + (uint32_t)((uint64_t)r % ((uint64_t)span + 1));
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
