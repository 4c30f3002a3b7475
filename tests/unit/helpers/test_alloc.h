/*
 * test_alloc.h - failing-allocator helper for unit tests.
 *
 * Every unit test is linked with -Wl,--wrap=malloc,calloc,realloc,strdup so
 * calls made by the project's own code (not by shared libraries) go through
 * here. test_alloc_fail_after(n) lets the next n allocations succeed and
 * fails every one after that until test_alloc_reset(); a test loops n from 0
 * upwards to prove each allocation failure path returns -ENOMEM cleanly
 * (ASan/LSan then proves nothing leaked on the way out).
 */
#ifndef BFR_TEST_ALLOC_H
#define BFR_TEST_ALLOC_H

#include <stddef.h>

void test_alloc_fail_after(long n);
void test_alloc_reset(void);
/* Allocations attempted since the last reset (successful or failed). */
long test_alloc_count(void);

#endif
