/*
 * check.h: a tiny test harness for the core's unit tests.
 *
 * Each test program calls CHECK* macros and ends main() with
 * `return check_summary("name");`, which prints "N passed, N failed".
 * test/unit/run.sh sums every program's counts into the final line.
 */
#ifndef CAI_CHECK_H
#define CAI_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int	check_passed = 0;
static int	check_failed = 0;

#define CHECK(cond, ...) \
	do { \
		if (cond) check_passed++; \
		else { \
			check_failed++; \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* Compare two float arrays with relative+absolute tolerance; report the first differences. */
static inline int
check_close(const char *what, const float *got, const float *want, size_t n, float rtol, float atol)
{
	int			bad = 0;

	for (size_t i = 0; i < n; i++)
	{
		float		d = fabsf(got[i] - want[i]);

		if (!(d <= atol + rtol * fabsf(want[i])))
		{
			if (bad < 5)
				fprintf(stderr, "  %s[%zu]: got %.7g want %.7g (diff %.3g)\n", what, i, got[i], want[i], d);
			bad++;
		}
	}
	return bad == 0;
}

#define CHECK_CLOSE(what, got, want, n, rtol, atol) \
	CHECK(check_close((what), (got), (want), (n), (rtol), (atol)), "%s differs", (what))

static inline int
check_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
	return check_failed == 0 ? 0 : 1;
}

/*
 * The distinct strings of s[0..n) in first-seen order into distinct (room for
 * n) and each string's index there into ids: the id form of test data.
 * Returns how many are distinct.
 */
static inline size_t
check_distinct(const char *const *s, size_t n, int32_t *ids, const char **distinct)
{
	size_t		nd = 0;

	for (size_t i = 0; i < n; i++)
	{
		size_t		k = 0;

		while (k < nd && strcmp(distinct[k], s[i]) != 0)
			k++;
		if (k == nd)
			distinct[nd++] = s[i];
		ids[i] = (int32_t) k;
	}
	return nd;
}

#endif
