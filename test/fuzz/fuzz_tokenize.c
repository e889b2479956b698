/*
 * fuzz_tokenize.c: libFuzzer target for the tokenizer and token features.
 *
 *   make -f core.mk BUILD=build-tok fuzz FUZZERS=fuzz_tokenize FUZZ_SECONDS=60
 *
 * Input: arbitrary bytes, tokenized as text.
 * Oracles (a failure traps):
 *   - tokens are in order, non-empty, inside the text, start and end on the
 *     boundaries of a sequential strict decode, only whitespace lies between
 *     them, byte and code point offsets agree with re-decoding, and the code
 *     point total equals cai_utf8_length;
 *   - CAI_TOK_INVALID tokens are exactly one undecodable byte, other tokens
 *     hold no undecodable byte;
 *   - each token tokenized on its own is one token of the same kind;
 *   - max_tokens = n succeeds and max_tokens = n - 1 fails with CAI_ERR_LIMIT;
 *   - casing is in range; normalization of valid text is valid UTF-8, fits
 *     and is idempotent; the n-gram count matches the formula.
 * Seeds: test/fuzz/corpus/fuzz_tokenize.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/tokenize.h"

#define REQUIRE(c) do { if (!(c)) __builtin_trap(); } while (0)

/* Every code point of s[0..len) decodes (no invalid byte). */
static int
all_valid(const char *s, size_t len)
{
	size_t		p = 0;

	while (p < len)
	{
		int32_t		cp;
		int			nb = cai_utf8_decode(s + p, len - p, &cp);

		if (cp < 0)
			return 0;
		p += (size_t) nb;
	}
	return 1;
}

static void
check_token_features(const char *s, size_t len, int64_t ncp)
{
	static char norm[4 * 65536 + 8];
	static char norm2[4 * 65536 + 8];
	static uint64_t hashes[4 * 65536 + 64];
	size_t		cap = sizeof(norm);
	size_t		n;
	size_t		want;
	cai_casing	c = cai_token_casing(s, len);

	REQUIRE(c >= CAI_CASE_LOWER && c < CAI_CASE_COUNT);

	n = cai_token_normalize(s, len, len % 2 == 0, norm, cap);
	REQUIRE(n < cap && norm[n] == '\0');
	if (len * 2 + 8 <= cap)		/* lower-casing can grow a code point 2 -> 3 bytes */
	{
		if (all_valid(s, len))
		{
			size_t		n2;

			REQUIRE(all_valid(norm, n));
			REQUIRE(cai_utf8_length(norm, n) == (size_t) ncp);
			n2 = cai_token_normalize(norm, n, len % 2 == 0, norm2, cap);
			REQUIRE(n2 == n && memcmp(norm, norm2, n) == 0);
		}
	}
	/* truncation never cuts a sequence of valid input */
	n = cai_token_normalize(s, len, false, norm, 3);
	REQUIRE(n <= 2 && norm[n] == '\0');

	/* n-grams over "<" token ">": L + 2 code points */
	{
		int			minn = 1 + (int) (len % 4);
		int			maxn = minn + (int) (len % 5);
		int64_t		total = ncp + 2;

		want = 0;
		for (int k = minn; k <= maxn; k++)
		{
			if (total - k + 1 > 0)
				want += (size_t) (total - k + 1);
			if (k == 1)
				want -= 2;		/* the lone "<" and ">" */
		}
		n = cai_char_ngram_hashes(s, len, minn, maxn, hashes, sizeof(hashes) / sizeof(hashes[0]));
		if (want <= sizeof(hashes) / sizeof(hashes[0]))
			REQUIRE(n == want);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *) data;
	cai_token  *t = NULL;
	size_t		n = 0;
	size_t		pos = 0;
	int64_t		cpos = 0;
	cai_error	err;
	cai_status	st;

	st = cai_tokenize(text, size, 0, &t, &n, &err);
	REQUIRE(st == CAI_OK);
	REQUIRE((n == 0) == (t == NULL));

	for (size_t i = 0; i <= n; i++)
	{
		size_t		gap_end = i < n ? (size_t) t[i].start : size;

		if (i < n)
			REQUIRE(t[i].start >= (int64_t) pos && t[i].end > t[i].start && t[i].end <= (int64_t) size);
		while (pos < gap_end)
		{
			int32_t		cp;
			int			nb = cai_utf8_decode(text + pos, size - pos, &cp);

			REQUIRE(cp >= 0 && cai_unicode_is_space(cp));
			pos += (size_t) nb;
			cpos++;
		}
		REQUIRE(pos == gap_end);
		if (i == n)
			break;
		REQUIRE(t[i].cstart == cpos);
		while (pos < (size_t) t[i].end)
		{
			int32_t		cp;
			int			nb = cai_utf8_decode(text + pos, size - pos, &cp);

			REQUIRE((cp < 0) == (t[i].kind == CAI_TOK_INVALID));
			pos += (size_t) nb;
			cpos++;
		}
		REQUIRE(pos == (size_t) t[i].end && t[i].cend == cpos);
		if (t[i].kind == CAI_TOK_INVALID)
			REQUIRE(t[i].end - t[i].start == 1);

		/* the token alone is one token of the same kind */
		{
			cai_token  *t1 = NULL;
			size_t		n1 = 0;
			size_t		tl = (size_t) (t[i].end - t[i].start);

			REQUIRE(cai_tokenize(text + t[i].start, tl, 0, &t1, &n1, NULL) == CAI_OK);
			REQUIRE(n1 == 1 && t1[0].start == 0 && t1[0].end == (int64_t) tl &&
					t1[0].cend == t[i].cend - t[i].cstart && t1[0].kind == t[i].kind);
			cai_free(t1);
		}
		check_token_features(text + t[i].start, (size_t) (t[i].end - t[i].start), t[i].cend - t[i].cstart);
	}
	REQUIRE((size_t) cpos == cai_utf8_length(text, size));
	cai_free(t);

	/* the token limit */
	if (n > 0)
	{
		REQUIRE(cai_tokenize(text, size, n, &t, &n, NULL) == CAI_OK);
		cai_free(t);
		if (n > 1)
		{
			size_t		n2 = 7;

			REQUIRE(cai_tokenize(text, size, n - 1, &t, &n2, &err) == CAI_ERR_LIMIT);
			REQUIRE(t == NULL && n2 == 0 && err.msg[0] != '\0');
		}
	}
	/* features of the whole input too */
	check_token_features(text, size, (int64_t) cai_utf8_length(text, size));
	return 0;
}
