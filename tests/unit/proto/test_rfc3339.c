/*
 * test_rfc3339.c - RFC 3339 date-times (rfc3339.h): the one formatter and
 * the one parser behind MQTT `ts`, prescriptions and the export.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rfc3339.h"

static void test_format(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} good[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1, "1970-01-01T00:00:00.001Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ 1795512600123LL, "2026-11-24T09:30:00.123Z" },
		{ 951782400000LL, "2000-02-29T00:00:00.000Z" },
		{ RFC3339_MAX_MS, "9999-12-31T23:59:59.999Z" },
		{ RFC3339_MIN_MS, "0000-01-01T00:00:00.000Z" },
	};
	char out[32];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(rfc3339_format(good[i].ms, out), 0);
		assert_string_equal(out, good[i].text);
	}
	strcpy(out, "untouched");
	assert_int_equal(rfc3339_format(RFC3339_MAX_MS + 1, out), -ERANGE);
	assert_int_equal(rfc3339_format(RFC3339_MIN_MS - 1, out), -ERANGE);
	assert_int_equal(rfc3339_format(INT64_MAX, out), -ERANGE);
	assert_int_equal(rfc3339_format(INT64_MIN, out), -ERANGE);
	assert_string_equal(out, "untouched");
}

static void test_parse(void **state)
{
	static const struct {
		const char *text;
		int64_t ms;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-11-24T09:30:00.123Z", 1795512600123LL },
		{ "2026-11-24t09:30:00.123z", 1795512600123LL },
		{ "2026-11-24T10:30:00.123+01:00", 1795512600123LL },
		{ "2026-11-24T04:00:00.123-05:30", 1795512600123LL },
		{ "2026-11-24T09:30:00.1Z", 1795512600100LL },
		{ "2026-11-24T09:30:00.12Z", 1795512600120LL },
		/* Below a millisecond rounds up: "at or after" stays exact. */
		{ "2026-11-24T09:30:00.1231Z", 1795512600124LL },
		{ "2026-11-24T09:30:00.123000000Z", 1795512600123LL },
		{ "2000-02-29T00:00:00Z", 951782400000LL },
		{ "1969-12-31T23:59:59.999Z", -1 },
		/* A leap second counts as the next minute's first. */
		{ "2016-12-31T23:59:60Z", 1483228800000LL },
		{ "9999-12-31T23:59:59.999Z", RFC3339_MAX_MS },
		{ "0000-01-01T00:00:00Z", RFC3339_MIN_MS },
	};
	char out[32], err[128];
	int64_t ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 77;
		err[0] = '\0';
		if (rfc3339_parse(good[i].text, 0, &ms, NULL, err, sizeof(err)) != 0)
			fail_msg("%s: %s", good[i].text, err);
		assert_int_equal(ms, good[i].ms);
	}
	/* What the export writes reads back as the same time. */
	assert_int_equal(rfc3339_format(1795512600123LL, out), 0);
	assert_int_equal(rfc3339_parse(out, 0, &ms, NULL, NULL, 0), 0);
	assert_int_equal(ms, 1795512600123LL);
}

static void test_parse_refusals(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "yesterday", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "1795512600123", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24 09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-1-24T09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "26-11-24T09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "+2026-11-24T09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00", "no time zone" },
		{ "2026-11-24T09:30:00.123", "no time zone" },
		{ "2026-11-24T09:30:00.Z", "no digits after the '.'" },
		{ "2026-11-24T09:30:00+0100", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00+01", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00UTC", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00Z ", "unexpected \" \" after the time zone" },
		{ "2026-11-24T09:30:00ZZ", "unexpected \"Z\" after the time zone" },
		{ "2026-13-01T00:00:00Z", "month 13 is not 01..12" },
		{ "2026-00-01T00:00:00Z", "month 00 is not 01..12" },
		{ "2026-11-00T00:00:00Z", "day 00 does not exist in 2026-11" },
		{ "2026-04-31T00:00:00Z", "day 31 does not exist in 2026-04" },
		{ "2025-02-29T00:00:00Z", "day 29 does not exist in 2025-02" },
		{ "1900-02-29T00:00:00Z", "day 29 does not exist in 1900-02" },
		{ "2026-11-24T24:00:00Z", "hour 24 is not 00..23" },
		{ "2026-11-24T09:60:00Z", "minute 60 is not 00..59" },
		{ "2026-11-24T09:30:61Z", "second 61 is not 00..60" },
		{ "2026-11-24T09:30:00+24:00", "offset +24:00 is not 00:00..23:59" },
		{ "2026-11-24T09:30:00-01:60", "offset -01:60 is not 00:00..23:59" },
	};
	char err[128];
	int64_t ms = 77;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (rfc3339_parse(bad[i].text, 0, &ms, NULL, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i].text);
		if (!strstr(err, bad[i].why))
			fail_msg("\"%s\": \"%s\" does not say \"%s\"", bad[i].text, err,
				 bad[i].why);
		assert_int_equal(ms, 77);
	}
	assert_int_equal(rfc3339_parse(NULL, 0, &ms, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(rfc3339_parse("2026-11-24T09:30:00Z", 0, NULL, NULL, NULL, 0), -EINVAL);
	/* No room for a reason is fine too. */
	assert_int_equal(rfc3339_parse("nope", 0, &ms, NULL, NULL, 0), -EINVAL);
	assert_int_equal(ms, 77);
}

/* Which kind of refusal: the callers map the shape and the ranges to
 * different error codes (bad_request, out_of_range). */
static void test_parse_kinds(void **state)
{
	static const struct {
		const char *text;
		enum rfc3339_error kind;
	} cases[] = {
		{ "2026-11-24", RFC3339_ERR_FORM },
		{ "2026-11-24T08:00:00", RFC3339_ERR_FORM },
		{ "2026-11-24T08:00:00.Z", RFC3339_ERR_FORM },
		{ "2026-11-24T08:00:00Zx", RFC3339_ERR_FORM },
		{ "\xd9\xa2" "026-11-24T08:00:00Z", RFC3339_ERR_FORM },
		{ "2026-13-01T08:00:00Z", RFC3339_ERR_RANGE },
		{ "2026-02-29T08:00:00Z", RFC3339_ERR_RANGE },
		{ "2026-11-24T08:00:61Z", RFC3339_ERR_RANGE },
		{ "2026-11-24T08:00:00+24:00", RFC3339_ERR_RANGE },
		/* Years are 0000..9999 in UTC, after the offset. */
		{ "0000-01-01T00:00:00+00:01", RFC3339_ERR_RANGE },
		{ "9999-12-31T23:59:59-00:01", RFC3339_ERR_RANGE },
		{ "9999-12-31T23:59:59.9991Z", RFC3339_ERR_RANGE },
	};
	enum rfc3339_error kind;
	char why[128];
	int64_t ms = 77;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kind = 0;
		if (rfc3339_parse(cases[i].text, 0, &ms, &kind, why, sizeof(why)) != -EINVAL)
			fail_msg("\"%s\" was accepted", cases[i].text);
		if (kind != cases[i].kind)
			fail_msg("\"%s\": kind %d, not %d (%s)", cases[i].text, kind, cases[i].kind,
				 why);
		assert_int_equal(ms, 77);
	}
}

/* Every day of years 0000..9999 (at a time that moves through the day)
 * formats to a text that parses back to the same ms, and consecutive days
 * are one day apart in the text's calendar too. */
static void test_round_trip_every_day(void **state)
{
	const int64_t day = 86400000;
	char text[RFC3339_BUF], prev[RFC3339_BUF] = "";
	int64_t back;

	for (int64_t ms = RFC3339_MIN_MS + 12345; ms <= RFC3339_MAX_MS; ms += day + 1001) {
		assert_int_equal(rfc3339_format(ms, text), 0);
		assert_int_equal(strlen(text), 24);
		assert_int_equal(rfc3339_parse(text, 0, &back, NULL, NULL, 0), 0);
		if (back != ms)
			fail_msg("%lld -> %s -> %lld", (long long)ms, text, (long long)back);
		assert_true(strcmp(prev, text) < 0); /* the text sorts like the time */
		memcpy(prev, text, sizeof(prev));
	}
}

/* The API's form: what the command schemas allow, and nothing more. */
static void test_strict(void **state)
{
	static const char *const refused[] = {
		"2026-11-24t08:00:00Z",		  "2026-11-24T08:00:00z",
		"2026-11-24T08:00:00.1234567890Z", "2016-12-31T23:59:60Z",
	};
	static const char *const lenient_only_kind_range = "2016-12-31T23:59:60Z";
	enum rfc3339_error kind;
	char why[128];
	int64_t ms = 77, lenient;

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (rfc3339_parse(refused[i], RFC3339_STRICT, &ms, &kind, why, sizeof(why)) !=
		    -EINVAL)
			fail_msg("strict: \"%s\" was accepted", refused[i]);
		assert_int_equal(kind, refused[i] == lenient_only_kind_range ? RFC3339_ERR_RANGE
									       : RFC3339_ERR_FORM);
		assert_int_equal(ms, 77);
		assert_int_equal(rfc3339_parse(refused[i], 0, &lenient, NULL, NULL, 0), 0);
	}
	assert_int_equal(rfc3339_parse("2026-11-24T09:30:00.123456789Z", RFC3339_STRICT, &ms, NULL,
				       NULL, 0),
			 0);
	assert_int_equal(ms, 1795512600124LL);
	assert_int_equal(rfc3339_parse("2026-11-24T10:30:00+01:00", RFC3339_STRICT, &ms, NULL, NULL,
				       0),
			 0);
	assert_int_equal(ms, 1795512600000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_kinds),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_round_trip_every_day),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
