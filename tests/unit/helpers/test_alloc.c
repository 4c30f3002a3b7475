/* test_alloc.c - see test_alloc.h. Not thread-safe: unit tests are single-threaded. */
#include "test_alloc.h"

#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);

static long budget = -1; /* -1: unlimited */
static long attempts;

void test_alloc_fail_after(long n)
{
	budget = n;
	attempts = 0;
}

void test_alloc_reset(void)
{
	budget = -1;
	attempts = 0;
}

long test_alloc_count(void)
{
	return attempts;
}

/* Returns 1 when this allocation must fail. */
static int should_fail(void)
{
	attempts++;
	if (budget < 0)
		return 0;
	if (budget == 0)
		return 1;
	budget--;
	return 0;
}

void *__wrap_malloc(size_t size)
{
	return should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return should_fail() ? NULL : __real_realloc(p, size);
}

char *__wrap_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *copy = __wrap_malloc(n);

	if (copy)
		memcpy(copy, s, n);
	return copy;
}
