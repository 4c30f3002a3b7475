/*
 * fuzz.h - what every libFuzzer target of tests/fuzz/ shares.
 *
 * CHECK aborts, so a broken invariant is a finding for libFuzzer and a
 * failing replay for ctest alike (replay.c runs the same entry point
 * without libFuzzer, in gcc builds too); it stays active under NDEBUG.
 */
#ifndef BFR_FUZZ_H
#define BFR_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                \
	do {                       \
		if (!(cond))       \
			abort();   \
	} while (0)

#endif
