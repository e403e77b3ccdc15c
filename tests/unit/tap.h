/*
 * tap.h: a minimal Test Anything Protocol emitter for the unit tests.
 *
 * Each check prints "ok N - name" or "not ok N - name" with the values
 * that differed; tap_done() prints the plan and returns the exit status.
 */
#ifndef SG_TAP_H
#define SG_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int
tap_ok(int cond, const char *name)
{
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, name);
	fflush(stdout);
	return cond;
}

static inline int
tap_is_int(long long got, long long want, const char *name)
{
	if (!tap_ok(got == want, name))
		printf("#   got %lld, want %lld\n", got, want);
	return got == want;
}

static inline int
tap_is_str(const char *got, const char *want, const char *name)
{
	int same = got != NULL && want != NULL ? strcmp(got, want) == 0 : got == want;

	if (!tap_ok(same, name))
		printf("#   got \"%s\", want \"%s\"\n", got ? got : "(null)",
			want ? want : "(null)");
	return same;
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed == 0 && tap_n > 0 ? 0 : 1;
}

#endif
