/*
 * test_vectors.c: word vector sets (src/core/vectors.c): parse -> serialize
 * -> load round trips in both file formats, every parser error with its
 * message, the writer's checks, lookup / embed / similar on crafted sets with
 * known answers, subword fallback, the NER view, corrupt bytes refused, and a
 * 341k x 100 set timed (parse, verified load, trusted load in place).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cai/tokenize.h"
#include "cai/vectors.h"
#include "check.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Bytes copied into a CAI_FORMAT_ALIGN-aligned buffer (for views). */
static uint8_t *
aligned_copy(const uint8_t *b, size_t len)
{
	uint8_t    *a = aligned_alloc(CAI_FORMAT_ALIGN, (len + CAI_FORMAT_ALIGN - 1) / CAI_FORMAT_ALIGN * CAI_FORMAT_ALIGN);

	memcpy(a, b, len);
	return a;
}

static cai_vectors *
parse_open(const char *text, size_t len, cai_vec_format fmt)
{
	uint8_t    *b = NULL;
	size_t		bl = 0;
	cai_vectors *v = NULL;
	cai_error	err = {0};

	if (cai_vectors_parse((const uint8_t *) text, len, fmt, NULL, "test", &b, &bl, NULL, NULL, &err) != CAI_OK)
	{
		fprintf(stderr, "  parse: %s\n", err.msg);
		return NULL;
	}
	if (cai_vectors_open(b, bl, false, true, &v, &err) != CAI_OK)
		fprintf(stderr, "  open: %s\n", err.msg);
	cai_free(b);
	return v;
}

/* The vector of word equals want (bitwise). */
static bool
row_is(const cai_vectors *v, const char *word, const float *want)
{
	int32_t		r = cai_vectors_find(v, word, strlen(word));
	const float *row = cai_vectors_row(v, r);

	return row != NULL && memcmp(row, want, sizeof(float) * (size_t) cai_vectors_dim(v)) == 0;
}

/* ---------------------------------------------------------------------- */

static void
test_text_round_trip(void)
{
	/* header, CRLF, blank lines, trailing spaces (fastText), UTF-8 words, a word with a space (glove.840B) */
	static const char txt[] =
		"5 3\r\n"
		"the 0.418 0.24968 -0.41242\r\n"
		"\r\n"
		"café -1e-3 2.5E+2 0 \n"
		"日本 1.17549435e-38 3.4028234e38 -0.0\n"
		". . . 0.1 0.2 0.3\n"
		"x\t12345678901234567890 0.1000000000000000055511151231257827 7\n";
	const float want_the[3] = {0.418f, 0.24968f, -0.41242f};
	const float want_cafe[3] = {-1e-3f, 2.5e2f, 0.0f};
	const float want_jp[3] = {1.17549435e-38f, 3.4028234e38f, -0.0f};
	const float want_dots[3] = {0.1f, 0.2f, 0.3f};
	const float want_x[3] = {12345678901234567890.0f, 0.1f, 7.0f};
	cai_vectors *v = parse_open(txt, sizeof(txt) - 1, CAI_VEC_TEXT);

	CHECK(v != NULL, "text with header parses and loads");
	if (v == NULL)
		return;
	CHECK(cai_vectors_count(v) == 5 && cai_vectors_dim(v) == 3, "5 x 3 (got %d x %d)", cai_vectors_count(v),
		  cai_vectors_dim(v));
	CHECK(row_is(v, "the", want_the), "the");
	CHECK(row_is(v, "café", want_cafe), "café");
	CHECK(row_is(v, "日本", want_jp), "日本 (FLT_MIN, FLT_MAX, -0)");
	CHECK(row_is(v, ". . .", want_dots), "a word with spaces keeps them");
	CHECK(row_is(v, "x", want_x), "long mantissas go through strtof");
	CHECK(cai_vectors_find(v, "The", 3) < 0, "lookup is by exact bytes");
	CHECK(!cai_vectors_lowercase(v) || true, "lowercase flag readable");
	CHECK(strcmp(cai_vectors_source(v), "test") == 0, "source kept");
	{
		size_t		l = 0;
		const char *w = cai_vectors_word(v, 1, &l);

		CHECK(w != NULL && l == 5 && memcmp(w, "café", 5) == 0 && w[5] == '\0', "word 1 is café, NUL-terminated");
		CHECK(cai_vectors_word(v, 5, NULL) == NULL && cai_vectors_word(v, -1, NULL) == NULL, "word out of range");
	}
	cai_vectors_free(v);

	/* no header, last line without newline; the same floats as strtof for many values */
	{
		char		buf[4096];
		size_t		n = 0;
		float		want[8];
		cai_rng		rng;

		cai_rng_seed(&rng, 7);
		n += (size_t) snprintf(buf + n, sizeof(buf) - n, "w");
		for (int j = 0; j < 8; j++)
		{
			char		num[64];

			snprintf(num, sizeof(num), j % 2 ? "%.9g" : "%.6f", (cai_rng_uniform(&rng) - 0.5) * (j < 4 ? 2 : 2e-5));
			want[j] = strtof(num, NULL);
			n += (size_t) snprintf(buf + n, sizeof(buf) - n, " %s", num);
		}
		v = parse_open(buf, n, CAI_VEC_TEXT);
		CHECK(v != NULL && cai_vectors_count(v) == 1 && cai_vectors_dim(v) == 8, "one line, no header");
		if (v != NULL)
			CHECK(row_is(v, "w", want), "values equal strtof's");
		cai_vectors_free(v);
	}
}

/* word2vec binary of n words (word i = words[i]) with values vals (n, d). */
static size_t
make_binary(char *buf, const char *const *words, int n, int d, const float *vals, bool newline)
{
	size_t		p = (size_t) sprintf(buf, "%d %d\n", n, d);

	for (int i = 0; i < n; i++)
	{
		p += (size_t) sprintf(buf + p, "%s ", words[i]);
		for (int j = 0; j < d; j++)
		{
			uint32_t	u;

			memcpy(&u, &vals[i * d + j], 4);
			for (int b = 0; b < 4; b++)
				buf[p++] = (char) ((u >> (8 * b)) & 0xff);
		}
		if (newline)
			buf[p++] = '\n';
	}
	return p;
}

static void
test_binary_round_trip(void)
{
	const char *words[] = {"alpha", "β", "gamma"};
	/* values whose bytes hold ' ' and '\n' */
	float		vals[6] = {1.0f, -2.5f, 3.1415927f, 0.0f, 1e-30f, 0};
	char		buf[256];
	size_t		n;
	cai_vectors *v;

	memcpy(&vals[5], "\n \n ", 4);
	for (int nl = 0; nl < 2; nl++)
	{
		n = make_binary(buf, words, 3, 2, vals, nl == 1);
		v = parse_open(buf, n, CAI_VEC_BINARY);
		CHECK(v != NULL && cai_vectors_count(v) == 3 && cai_vectors_dim(v) == 2, "binary parses (newlines %d)", nl);
		if (v == NULL)
			continue;
		CHECK(row_is(v, "alpha", vals) && row_is(v, "β", vals + 2) && row_is(v, "gamma", vals + 4),
			  "binary values exact (newlines %d)", nl);
		cai_vectors_free(v);
	}
}

/* ---------------------------------------------------------------------- */

static void
expect_err(cai_vec_format fmt, const char *in, size_t len, const cai_vec_limits *lim, cai_status want,
		   const char *msg)
{
	uint8_t    *b = NULL;
	size_t		bl = 0;
	cai_error	err = {0};
	cai_status	st = cai_vectors_parse((const uint8_t *) in, len, fmt, lim, NULL, &b, &bl, NULL, NULL, &err);

	CHECK(st == want && strstr(err.msg, msg) != NULL && b == NULL,
		  "want %s \"%s\", got %s \"%s\"", cai_status_name(want), msg, cai_status_name(st), err.msg);
	cai_free(b);
}

#define TEXT_ERR(in, msg) expect_err(CAI_VEC_TEXT, (in), sizeof(in) - 1, NULL, CAI_ERR_FORMAT, (msg))
#define BIN_ERR(in, len, msg) expect_err(CAI_VEC_BINARY, (in), (len), NULL, CAI_ERR_FORMAT, (msg))

static void
test_text_errors(void)
{
	char		longw[1100];
	cai_vec_limits lim = {2, 0};
	cai_vec_limits lb = {0, 10};

	TEXT_ERR("", "input is empty");
	TEXT_ERR("\n \r\n\t\n", "input is empty");
	TEXT_ERR("a 1 2\nb 1\n", "line 2: expected 2 values (as line 1 has), found 1");
	TEXT_ERR("a 1 2\n\nb 1 2 3\n", "line 3: expected 2 values (as line 1 has), found 3");
	TEXT_ERR("a 1 2\nb 1 x\n", "line 2: value 2 (\"x\") is not a number");
	TEXT_ERR("a 1 2\nb 1,5 2\n", "line 2: value 1 (\"1,5\") is not a number");
	TEXT_ERR("a 1 nan\n", "line 1: value 2 (\"nan\") is NaN or infinite");
	TEXT_ERR("a -inf 1\n", "line 1: value 1 (\"-inf\") is NaN or infinite");
	TEXT_ERR("a 1 1e39\n", "line 1: value 2 (\"1e39\") is out of float32 range");
	TEXT_ERR("a 1 -3.5e38\n", "is out of float32 range");
	TEXT_ERR("a 1\nb 2\na 3\n", "line 3: duplicate word \"a\" (first on line 1)");
	TEXT_ERR("2 3\na 1 2\n", "line 2: expected 3 values (as the header declares), found 2");
	TEXT_ERR("2 1\na 1\nb 1 2\n", "line 3: expected 1 values (as the header declares), found 2");
	TEXT_ERR("3 1\na 1\nb 2\n", "the header (line 1) declares 3 words but the input has 2");
	TEXT_ERR("1 1\na 1\nb 2\n", "line 3: more words than the 1 the header declares");
	TEXT_ERR("2 0\na 1\n", "line 1: the header declares 0 dimensions (must be 1 to 4096)");
	TEXT_ERR("2 5000\na 1\n", "line 1: the header declares 5000 dimensions");
	TEXT_ERR("0 3\n", "line 1: the header declares no words");
	TEXT_ERR("\n\nlonely\n", "line 3: a word without values");
	TEXT_ERR("a\xff 1\n", "line 1: word is not valid UTF-8 (byte 2)");
	TEXT_ERR("a\xc0\xaf 1\n", "line 1: word is not valid UTF-8 (byte 2)");
	TEXT_ERR("ok 1\n\xed\xa0\x80 1\n", "line 2: word is not valid UTF-8 (byte 1)");
	expect_err(CAI_VEC_TEXT, "a\0b 1\n", 6, NULL, CAI_ERR_FORMAT, "line 1: word contains a NUL byte (byte 2)");
	memset(longw, 'x', 1025);
	memcpy(longw + 1025, " 1\n", 4);
	expect_err(CAI_VEC_TEXT, longw, strlen(longw), NULL, CAI_ERR_FORMAT, "line 1: word is longer than 1024 bytes");
	longw[1024] = ' ';			/* a word of exactly 1024 bytes */
	{
		cai_vectors *v = parse_open(longw, strlen(longw), CAI_VEC_TEXT);

		CHECK(v != NULL && cai_vectors_find(v, longw, 1024) == 0, "a word of 1024 bytes is accepted");
		cai_vectors_free(v);
	}
	expect_err(CAI_VEC_TEXT, "a 1\nb 2\nc 3\n", 12, &lim, CAI_ERR_LIMIT, "line 3: more than the limit of 2 words");
	expect_err(CAI_VEC_TEXT, "3 1\na 1\nb 2\nc 3\n", 16, &lim, CAI_ERR_LIMIT,
			   "line 1: the header declares 3 words, more than the limit of 2");
	expect_err(CAI_VEC_TEXT, "a 1\nb 2\nc 3\n", 12, &lb, CAI_ERR_LIMIT, "input of 12 bytes is larger than the limit of 10 bytes");
	{
		uint8_t    *b = NULL;
		size_t		bl = 0;
		cai_vec_format f;
		cai_error	err = {0};

		CHECK(cai_vectors_parse((const uint8_t *) "a 1\nb 2\n", 8, CAI_VEC_TEXT, &lim, NULL, &b, &bl, NULL, NULL, &err) == CAI_OK,
			  "exactly max_words words: %s", err.msg);
		cai_free(b);
		CHECK(cai_vec_format_find("GloVe", &f, &err) == CAI_OK && f == CAI_VEC_TEXT, "format glove");
		CHECK(cai_vec_format_find("word2vec_binary", &f, &err) == CAI_OK && f == CAI_VEC_BINARY, "format binary");
		CHECK(cai_vec_format_find("csv", &f, &err) == CAI_ERR_INVALID && strstr(err.msg, "unknown vector file format \"csv\""),
			  "unknown format: %s", err.msg);
	}
}

static void
test_binary_errors(void)
{
	const char *w2[] = {"a", "b"};
	const char *w8[] = {"alphabet", "b"};
	const char *dup[] = {"a", "a"};
	const char *bad[] = {"a", "b\xff"};
	float		vals[4] = {1, 2, 3, 4};
	char		buf[2048];
	size_t		n;
	cai_vec_limits lim = {1, 0};

	BIN_ERR("", 0, "input is empty");
	BIN_ERR("2\n", 2, "header: expected \"<words> <dimensions>\" and a newline");
	BIN_ERR("2 x\n", 4, "header: expected");
	BIN_ERR("2 2", 3, "header: expected");
	BIN_ERR("2 0\n", 4, "header declares 0 dimensions");
	BIN_ERR("0 2\n", 4, "header declares no words");
	BIN_ERR("1000 2\nabc ", 11, "header declares 1000 words of 2 dimensions but the 4 bytes after it hold at most 0");
	n = make_binary(buf, w2, 2, 2, vals, true);
	expect_err(CAI_VEC_BINARY, buf, n, &lim, CAI_ERR_LIMIT, "header declares 2 words, more than the limit of 1");
	BIN_ERR(buf, n - 3, "header declares 2 words of 2 dimensions but the 19 bytes after it hold at most 1");
	n = make_binary(buf, w8, 2, 2, vals, true);
	BIN_ERR(buf, n - 3, "entry 2: input ends inside the vector (8 bytes needed, 6 left)");
	n = make_binary(buf, w2, 2, 2, vals, true);
	memcpy(buf + n, "junkjunkjunk", 12);	/* no space: entry 3 below ends inside its word */
	BIN_ERR(buf, n + 4, "input continues after the 2 entries the header declares");
	buf[0] = '3';
	BIN_ERR(buf, n + 10, "entry 3: input ends inside the word");
	n = make_binary(buf, w2, 2, 2, vals, true);
	buf[0] = '3';
	memcpy(buf + n, "\n\n\n\n\n\n\n\n\n\n\n\n", 12);
	BIN_ERR(buf, n + 12, "input ends after 2 of the 3 entries the header declares");
	n = make_binary(buf, dup, 2, 2, vals, true);
	BIN_ERR(buf, n, "entry 2: duplicate word \"a\" (first on entry 1)");
	n = make_binary(buf, bad, 2, 2, vals, true);
	BIN_ERR(buf, n, "entry 2: word is not valid UTF-8 (byte 2)");
	n = make_binary(buf, w2, 2, 2, vals, true);
	memcpy(buf + 4 + 2 + 4, "\x00\x00\xc0\x7f", 4); /* a's second value: NaN */
	BIN_ERR(buf, n, "entry 1: value 2 is NaN or infinite");
	n = make_binary(buf, w2, 2, 2, vals, false);
	buf[4] = ' ';				/* "2 2\n" + "  " : empty word */
	BIN_ERR(buf, n, "entry 1: empty word");
	n = (size_t) sprintf(buf, "1 1\n");
	memset(buf + n, 'z', 1100);
	BIN_ERR(buf, n + 1100, "entry 1: word is longer than 1024 bytes");
}

static void
test_write_checks(void)
{
	const char *words[] = {"a", "b", "a"};
	size_t		lens[] = {1, 1, 1};
	float		vals[6] = {1, 2, 3, 4, 5, 6};
	cai_vectors_data d = {3, 2, words, lens, vals, 0, 0, 0, 0, NULL, NULL, "w"};
	uint8_t    *b = NULL;
	size_t		bl;
	cai_error	err = {0};

	CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_ERR_INVALID && strstr(err.msg, "word 2 repeats word 0"),
		  "writer duplicate: %s", err.msg);
	words[2] = "c";
	vals[3] = NAN;
	CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_ERR_INVALID && strstr(err.msg, "vector 1 holds NaN"),
		  "writer NaN: %s", err.msg);
	vals[3] = 4;
	d.dim = 0;
	CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_ERR_INVALID && strstr(err.msg, "0 dimensions"),
		  "writer dims: %s", err.msg);
	d.dim = 2;
	d.minn = 3;
	d.maxn = 2;
	CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_ERR_INVALID && strstr(err.msg, "n-gram lengths"),
		  "writer n-grams: %s", err.msg);
	d.minn = d.maxn = 0;
	lens[1] = 0;
	CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_ERR_INVALID && strstr(err.msg, "word 1 is empty"),
		  "writer empty word: %s", err.msg);
	lens[1] = 1;
	CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_OK && b != NULL, "writer accepts: %s", err.msg);
	cai_free(b);
}

/* ---------------------------------------------------------------------- */

static void
test_similar(void)
{
	static const char txt[] =
		"king 1 0 0\n"
		"queen 0.9 0.1 0\n"
		"man 0 1 0\n"
		"woman 0.1 0.9 0\n"
		"apple 0 0 1\n"
		"zero 0 0 0\n"
		"a1 1 1 0\n"
		"a2 2 2 0\n"
		"neg -1 0 0\n";
	cai_vectors *v = parse_open(txt, sizeof(txt) - 1, CAI_VEC_TEXT);
	int32_t		ids[16];
	float		sc[16];
	int			n = -1;
	cai_vec_hit hit;
	cai_error	err = {0};

	CHECK(v != NULL, "similar set loads");
	if (v == NULL)
		return;
	CHECK(cai_vectors_similar_word(v, "king", 4, CAI_VEC_CASE_EXACT, 3, ids, sc, &n, &hit, &err) == CAI_OK &&
		  hit == CAI_VEC_EXACT && n == 3, "similar king: %s", err.msg);
	/* cos(king, queen) = .9/sqrt(.82) = .99388; a1, a2 = 1/sqrt(2) tie: a1 (row 6) first */
	CHECK(ids[0] == 1 && ids[1] == 6 && ids[2] == 7, "king -> queen a1 a2 (got %d %d %d)", ids[0], ids[1], ids[2]);
	CHECK(fabsf(sc[0] - 0.9938837f) < 1e-6f && fabsf(sc[1] - 0.70710678f) < 1e-6f && sc[1] == sc[2],
		  "scores %.7f %.7f %.7f", sc[0], sc[1], sc[2]);
	CHECK(cai_vectors_similar_word(v, "king", 4, CAI_VEC_CASE_EXACT, 100, ids, sc, &n, &hit, &err) == CAI_OK &&
		  n == 8, "k beyond V gives V - 1 (got %d)", n);
	CHECK(ids[7] == 8 && sc[7] == -1.0f && ids[6] == 5 && sc[6] == 0.0f, "worst: neg (-1), then zero (0) (got %d %g, %d %g)",
		  ids[7], sc[7], ids[6], sc[6]);
	for (int i = 1; i < n; i++)
		CHECK(sc[i - 1] > sc[i] || (sc[i - 1] == sc[i] && ids[i - 1] < ids[i]), "order at %d", i);
	CHECK(cai_vectors_similar_word(v, "KING", 4, CAI_VEC_CASE_EXACT, 3, ids, sc, &n, &hit, &err) == CAI_OK &&
		  hit == CAI_VEC_MISS && n == 0, "unknown word: no rows");
	CHECK(cai_vectors_similar_word(v, "KING", 4, CAI_VEC_CASE_FALLBACK, 1, ids, sc, &n, &hit, &err) == CAI_OK &&
		  hit == CAI_VEC_EXACT && n == 1 && ids[0] == 1, "KING falls back to king");
	CHECK(cai_vectors_similar_word(v, "king", 4, CAI_VEC_CASE_EXACT, 0, ids, sc, &n, &hit, &err) == CAI_ERR_INVALID,
		  "k 0 refused");
	{
		float		q[3] = {0, 0, 0};

		CHECK(cai_vectors_similar(v, q, -1, 2, ids, sc, &n, &err) == CAI_OK && n == 2 && ids[0] == 0 && ids[1] == 1 &&
			  sc[0] == 0 && sc[1] == 0, "zero query: all 0, row order");
		q[2] = 5;
		CHECK(cai_vectors_similar(v, q, -1, 1, ids, sc, &n, &err) == CAI_OK && n == 1 && ids[0] == 4 &&
			  fabsf(sc[0] - 1) < 1e-6f, "vector query finds apple");
	}
	cai_vectors_free(v);
}

static void
test_embed_and_case(void)
{
	static const char txt[] =
		"the 1 0\n"
		"king 0 2\n"
		", 4 4\n"
		". 8 0\n"
		"Paris 3 3\n"
		"paris 1 1\n";
	cai_vectors *v = parse_open(txt, sizeof(txt) - 1, CAI_VEC_TEXT);
	float		out[2];
	size_t		nt = 0,
				nf = 0;
	cai_error	err = {0};
	int32_t		row;

	CHECK(v != NULL && !cai_vectors_lowercase(v), "mixed-case set is not lowercase");
	if (v == NULL)
		return;
	/* tokens: The king , the queen . -> the(fallback) king , the . */
	CHECK(cai_vectors_embed(v, "The king, the queen.", 20, CAI_VEC_CASE_AUTO, 0, out, &nt, &nf, &err) == CAI_OK &&
		  nt == 6 && nf == 5, "embed counts %zu / %zu", nf, nt);
	CHECK(fabsf(out[0] - 14.0f / 5) < 1e-6f && fabsf(out[1] - 6.0f / 5) < 1e-6f, "embed mean (%g %g)", out[0], out[1]);
	CHECK(cai_vectors_embed(v, "The king, the queen.", 20, CAI_VEC_CASE_EXACT, 0, out, &nt, &nf, &err) == CAI_OK &&
		  nf == 4, "exact: The misses (%zu)", nf);
	CHECK(cai_vectors_embed(v, "queen", 5, CAI_VEC_CASE_AUTO, 0, out, &nt, &nf, &err) == CAI_OK && nt == 1 && nf == 0 &&
		  out[0] == 0 && out[1] == 0, "no known token: zeros");
	CHECK(cai_vectors_embed(v, "", 0, CAI_VEC_CASE_AUTO, 0, out, &nt, &nf, &err) == CAI_OK && nt == 0 && nf == 0,
		  "empty text");
	CHECK(cai_vectors_embed(v, "a b c", 5, CAI_VEC_CASE_AUTO, 2, out, &nt, &nf, &err) == CAI_ERR_LIMIT,
		  "max_tokens applies");
	CHECK(cai_vectors_lookup(v, "Paris", 5, CAI_VEC_CASE_FALLBACK, out, &row) == CAI_VEC_EXACT && out[0] == 3,
		  "fallback keeps an exact hit");
	CHECK(cai_vectors_lookup(v, "Paris", 5, CAI_VEC_CASE_LOWER, out, &row) == CAI_VEC_EXACT && out[0] == 1 && row == 5,
		  "lower finds paris");
	CHECK(cai_vectors_lookup(v, "PARİS", 6, CAI_VEC_CASE_LOWER, out, &row) == CAI_VEC_EXACT && row == 5,
		  "U+0130 lowers to i");
	CHECK(cai_vectors_lookup(v, "nope", 4, CAI_VEC_CASE_AUTO, out, &row) == CAI_VEC_MISS && row == -1 && out[0] == 0,
		  "miss zeroes");
	cai_vectors_free(v);

	v = parse_open("the 1\nparis 2\n", 14, CAI_VEC_TEXT);
	CHECK(v != NULL && cai_vectors_lowercase(v), "a lowercase set (GloVe) says so");
	if (v != NULL)
		CHECK(cai_vectors_lookup(v, "Paris", 5, CAI_VEC_CASE_AUTO, out, &row) == CAI_VEC_EXACT && out[0] == 2,
			  "auto lower-cases for a lowercase set");
	cai_vectors_free(v);
}

static void
test_subwords(void)
{
	const char *words[] = {"cat", "dog"};
	size_t		lens[] = {3, 3};
	float		vals[4] = {1, 0, 0, 1};
	float		sub[64 * 2];
	cai_vectors_data d = {2, 2, words, lens, vals, 3, 4, 64, 64, NULL, sub, "sg"};
	uint8_t    *b = NULL;
	size_t		bl = 0;
	cai_vectors *v = NULL;
	cai_error	err = {0};
	float		out[2];
	float		want[2] = {0, 0};
	int			cnt = 0;

	for (int i = 0; i < 64; i++)
	{
		sub[2 * i] = (float) i;
		sub[2 * i + 1] = 1;
	}
	CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_OK, "subword set writes: %s", err.msg);
	CHECK(cai_vectors_open(b, bl, false, true, &v, &err) == CAI_OK, "subword set loads: %s", err.msg);
	if (v == NULL)
	{
		cai_free(b);
		return;
	}
	CHECK(cai_vectors_has_subwords(v), "has subwords");
	for (int n = 3; n <= 4; n++)
	{
		uint64_t	h[64];
		size_t		nh = cai_char_ngram_hashes("cats", 4, n, n, h, 64);

		for (size_t i = 0; i < nh; i++, cnt++)
			want[0] += (float) (h[i] % 64);
	}
	want[0] /= (float) cnt;
	want[1] = 1;
	CHECK(cai_vectors_lookup(v, "cats", 4, CAI_VEC_CASE_EXACT, out, NULL) == CAI_VEC_SUBWORD &&
		  fabsf(out[0] - want[0]) < 1e-4f && out[1] == 1.0f, "cats: mean of %d n-gram rows (%g, want %g)", cnt, out[0],
		  want[0]);
	CHECK(cai_vectors_lookup(v, "cat", 3, CAI_VEC_CASE_EXACT, out, NULL) == CAI_VEC_EXACT && out[0] == 1,
		  "a word in the set keeps its row");
	cai_vectors_free(v);
	cai_free(b);

	/* sparse rows: only bucket 5; most words miss */
	{
		int32_t		ids[1] = {5};

		d.n_subword_rows = 1;
		d.subword_ids = ids;
		CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_OK && cai_vectors_open(b, bl, false, true, &v, &err) == CAI_OK,
			  "sparse subwords: %s", err.msg);
		if (v != NULL)
		{
			cai_vec_hit h = cai_vectors_lookup(v, "zebra", 5, CAI_VEC_CASE_EXACT, out, NULL);

			/* the one row (0, 1) is bucket 5's */
			CHECK(h == CAI_VEC_MISS || (h == CAI_VEC_SUBWORD && out[0] == 0 && out[1] == 1),
				  "sparse: hit only through bucket 5");
		}
		cai_vectors_free(v);
		cai_free(b);
		ids[0] = 64;
		CHECK(cai_vectors_write(&d, &b, &bl, &err) == CAI_ERR_INVALID && strstr(err.msg, "subword id 0"),
			  "subword id out of range: %s", err.msg);
	}
}

static void
test_word_vectors(void)
{
	cai_vectors *v = parse_open("b 1 2\na 3 4\n", 12, CAI_VEC_TEXT);
	cai_word_vectors wv = {0};
	cai_error	err = {0};

	if (v == NULL)
	{
		CHECK(0, "word_vectors set");
		return;
	}
	CHECK(cai_vectors_word_vectors(v, &wv, &err) == CAI_OK && wv.n == 2 && wv.dim == 2, "as cai_word_vectors");
	CHECK(wv.vectors == cai_vectors_row(v, 0), "vectors in place (no copy)");
	CHECK(wv.lens[1] == 1 && memcmp(wv.words[1], "a", 1) == 0 && wv.vectors[2] == 3, "row 1 is a");
	CHECK(wv.words[0] == cai_vectors_word(v, 0, NULL), "words in place");
	cai_vectors_free(v);
}

/* ---------------------------------------------------------------------- */

/* Rewrite tensor name of bytes with fn applied to a private copy; returns the new bytes. */
static uint8_t *
damage(const uint8_t *b, size_t bl, const char *name, void (*fn) (cai_tensor *), size_t *out_len)
{
	cai_model_file *mf = NULL;
	uint8_t    *o = NULL;

	if (cai_format_read(b, bl, &mf, NULL) != CAI_OK)
		return NULL;
	for (int i = 0; i < mf->n_tensors; i++)
		if (strcmp(mf->tensors[i].name, name) == 0)
			fn(&mf->tensors[i]);
	if (cai_format_write(mf->meta_json, mf->tensors, mf->n_tensors, &o, out_len, NULL) != CAI_OK)
		o = NULL;
	cai_model_file_free(mf);
	return o;
}

static void dmg_dup(cai_tensor *t) { ((char *) t->data)[2] = 'a'; }	/* "a\0b\0" -> "a\0a\0" */
static void dmg_utf8(cai_tensor *t) { ((uint8_t *) t->data)[2] = 0xff; }
static void dmg_nan(cai_tensor *t) { ((float *) t->data)[1] = NAN; }
static void dmg_norm(cai_tensor *t) { ((float *) t->data)[0] *= 2; }
static void dmg_off(cai_tensor *t) { ((int32_t *) t->data)[1] = 1000; }
static void dmg_slot(cai_tensor *t)
{
	int32_t    *s = t->data;

	for (int64_t i = 0; i < t->shape[0]; i++)
		s[i] = s[i] != 0 ? 0 : 1;
}
/* move the first filled slot to the first empty one before it: its word is no longer found */
static void dmg_move(cai_tensor *t)
{
	int32_t    *s = t->data;
	int64_t		z = -1;

	for (int64_t i = 0; i < t->shape[0]; i++)
		if (s[i] == 0 && z < 0)
			z = i;
		else if (s[i] != 0 && z >= 0)
		{
			s[z] = s[i];
			s[i] = 0;
			break;
		}
}

static void
test_corrupt(void)
{
	static const char txt[] = "a 1 2 3\nb 4 5 6\nc 7 8 9\nd -1 -2 -3\n";
	uint8_t    *b = NULL;
	size_t		bl = 0;
	cai_error	err = {0};
	int			accepted = 0;
	struct
	{
		const char *tensor;
		void		(*fn) (cai_tensor *);
		const char *msg;
	}			cases[] = {
		{"words.bytes", dmg_dup, "duplicate"},
		{"words.bytes", dmg_utf8, "not valid UTF-8"},
		{"vectors", dmg_nan, "NaN"},
		{"norms", dmg_norm, "norm 0 does not match"},
		{"words.offsets", dmg_off, "bad offsets"},
		{"words.slots", dmg_slot, "word index"},
		{"words.slots", dmg_move, "not in its slot"},
	};

	CHECK(cai_vectors_parse((const uint8_t *) txt, sizeof(txt) - 1, CAI_VEC_TEXT, NULL, NULL, &b, &bl, NULL, NULL, &err) == CAI_OK,
		  "corrupt base: %s", err.msg);
	for (int k = 0; k < 64; k++)
	{
		size_t		at = (size_t) ((double) k / 64.0 * (double) bl);
		uint8_t    *bad = malloc(bl);
		cai_vectors *v = NULL;

		memcpy(bad, b, bl);
		bad[at] ^= (uint8_t) (1u << (k % 8));
		if (cai_vectors_open(bad, bl, false, true, &v, &err) == CAI_OK)
		{
			accepted++;
			cai_vectors_free(v);
		}
		if (cai_vectors_open(b, at, false, true, &v, &err) == CAI_OK)
		{
			accepted++;
			cai_vectors_free(v);
		}
		free(bad);
	}
	CHECK(accepted == 0, "%d of 128 flipped or truncated sets were accepted", accepted);

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		size_t		dl = 0;
		uint8_t    *d = damage(b, bl, cases[c].tensor, cases[c].fn, &dl);
		cai_vectors *v = NULL;
		uint8_t    *al;

		CHECK(d != NULL, "damage %zu written", c);
		if (d == NULL)
			continue;
		err.msg[0] = '\0';
		CHECK(cai_vectors_open(d, dl, false, true, &v, &err) == CAI_ERR_FORMAT && strstr(err.msg, cases[c].msg),
			  "damaged %s refused with \"%s\": %s", cases[c].tensor, cases[c].msg, err.msg);
		cai_vectors_free(v);
		v = NULL;
		/* trusted: loads without the scans, and queries stay in bounds */
		al = aligned_copy(d, dl);
		if (cai_vectors_open(al, dl, true, false, &v, &err) == CAI_OK)
		{
			float		out[3];
			int32_t		ids[8];
			float		sc[8];
			int			n;
			cai_vec_hit h;
			cai_word_vectors wv;

			for (int32_t i = 0; i < 4; i++)
			{
				size_t		l;
				const char *w = cai_vectors_word(v, i, &l);

				if (w != NULL)
					(void) cai_vectors_find(v, w, l);
			}
			(void) cai_vectors_lookup(v, "zz", 2, CAI_VEC_CASE_AUTO, out, NULL);
			(void) cai_vectors_embed(v, "a b c d e", 9, CAI_VEC_CASE_AUTO, 0, out, NULL, NULL, &err);
			(void) cai_vectors_similar_word(v, "a", 1, CAI_VEC_CASE_EXACT, 8, ids, sc, &n, &h, &err);
			(void) cai_vectors_word_vectors(v, &wv, &err);
			cai_vectors_free(v);
		}
		free(al);
		cai_free(d);
	}

	/* not a vector set at all: metadata without "kind" */
	{
		cai_tensor	t = {.name = "x", .dtype = CAI_F32, .ndim = 1, .shape = {1}, .nbytes = 4};
		float		one = 1;
		uint8_t    *o = NULL;
		size_t		ol = 0;
		cai_vectors *v = NULL;

		t.data = &one;
		CHECK(cai_format_write("{\"task\":\"text_classification\",\"architecture\":\"fast\",\"labels\":[],\"cai_version\":\"0\"}",
							   &t, 1, &o, &ol, &err) == CAI_OK, "other model written");
		CHECK(cai_vectors_open(o, ol, false, true, &v, &err) == CAI_ERR_FORMAT && strstr(err.msg, "not a vector set"),
			  "another model is not a vector set: %s", err.msg);
		cai_free(o);
	}
	cai_free(b);
}

/* ---------------------------------------------------------------------- */

static void
test_large(void)
{
#ifdef SANITIZED
	const int	V = 34100;		/* a tenth under the sanitizers */
#else
	const int	V = 341000;
#endif
	const int	D = 100;
	size_t		cap = (size_t) V * (D * 10 + 16) + 64;
	char	   *txt = malloc(cap);
	size_t		n = (size_t) sprintf(txt, "%d %d\n", V, D);
	cai_rng		rng;
	uint8_t    *b = NULL;
	size_t		bl = 0;
	cai_error	err = {0};
	double		t0,
				t_parse,
				t_copy,
				t_view,
				t_trusted;
	cai_vectors *v = NULL;
	uint8_t    *al;
	int			ok = 0;

	cai_rng_seed(&rng, 42);
	for (int i = 0; i < V; i++)
	{
		n += (size_t) sprintf(txt + n, "w%d", i);
		for (int j = 0; j < D; j++)
		{
			int			x = (int) cai_rng_below(&rng, 200001) - 100000;

			n += (size_t) sprintf(txt + n, " %s0.%05d", x < 0 ? "-" : "", x < 0 ? -x : x);
		}
		txt[n++] = '\n';
	}
	t0 = now_ms();
	CHECK(cai_vectors_parse((const uint8_t *) txt, n, CAI_VEC_TEXT, NULL, "synthetic", &b, &bl, NULL, NULL, &err) == CAI_OK,
		  "large parse: %s", err.msg);
	t_parse = now_ms() - t0;
	al = aligned_copy(b, bl);

	t0 = now_ms();
	CHECK(cai_vectors_open(b, bl, false, true, &v, &err) == CAI_OK, "large copy load: %s", err.msg);
	t_copy = now_ms() - t0;
	cai_vectors_free(v);
	t0 = now_ms();
	CHECK(cai_vectors_open(al, bl, true, true, &v, &err) == CAI_OK, "large view load: %s", err.msg);
	t_view = now_ms() - t0;
	cai_vectors_free(v);
	t0 = now_ms();
	CHECK(cai_vectors_open(al, bl, true, false, &v, &err) == CAI_OK, "large trusted view: %s", err.msg);
	t_trusted = now_ms() - t0;
	if (v != NULL)
	{
		/* spot checks against the text */
		char		w[16];
		int32_t		ids[10];
		float		sc[10];
		int			k;
		cai_vec_hit h;

		for (int i = 0; i < V; i += V / 97)
		{
			const float *row;

			snprintf(w, sizeof(w), "w%d", i);
			row = cai_vectors_row(v, cai_vectors_find(v, w, strlen(w)));
			ok += row != NULL && row == cai_vectors_row(v, i);
		}
		CHECK(ok == 98 || ok == 97 + (V % 97 == 0), "large: words found at their rows (%d)", ok);
		t0 = now_ms();
		CHECK(cai_vectors_similar_word(v, "w123", 4, CAI_VEC_CASE_EXACT, 10, ids, sc, &k, &h, &err) == CAI_OK && k == 10,
			  "large similar");
		printf("vectors: %d x %d similar (k 10): %.1f ms\n", V, D, now_ms() - t0);
	}
	cai_vectors_free(v);
	printf("vectors: %d x %d text (%.1f MB) parse %.0f ms; model %.1f MB: load copied+verified %.1f ms, "
		   "view verified %.1f ms, view trusted %.3f ms\n",
		   V, D, n / 1e6, t_parse, bl / 1e6, t_copy, t_view, t_trusted);
	CHECK(t_trusted < 50, "trusted view load is O(1) in V (%.3f ms)", t_trusted);
	free(al);
	cai_free(b);
	free(txt);
}

int
main(void)
{
	test_text_round_trip();
	test_binary_round_trip();
	test_text_errors();
	test_binary_errors();
	test_write_checks();
	test_similar();
	test_embed_and_case();
	test_subwords();
	test_word_vectors();
	test_corrupt();
	test_large();
	return check_summary("test_vectors");
}
