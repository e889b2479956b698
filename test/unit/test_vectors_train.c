/*
 * test_vectors_train.c: word vector training (src/core/vectors_train.c):
 * planted co-occurrence groups recovered by nearest neighbours (skip-gram
 * and CBOW, one and two threads), identical bytes with one thread, a
 * different seed differs, subword vectors of unseen variants near the
 * seen ones (the lookup's hashing), CJK text per character, lower-casing,
 * long texts in pieces, cancellation and allocation failures that leak
 * nothing, the memory estimate and memory_limit_mb against a counting
 * allocator, clear errors for empty and too small corpora, finite vectors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cai/options.h"
#include "cai/tokenize.h"
#include "cai/vectors.h"
#include "check.h"

/* ---------------------------------------------------------------------- */
/* A counting allocator (as test_conformance.c), optionally failing        */
/* ---------------------------------------------------------------------- */

typedef struct Counter
{
	size_t		current;
	size_t		peak;
	long		budget;			/* allocations left; < 0: unlimited */
	long		calls;
} Counter;

static void *
count_alloc(void *ctx, size_t size)
{
	Counter    *c = ctx;
	size_t	   *p;

	c->calls++;
	if (c->budget == 0)
		return NULL;
	if (c->budget > 0)
		c->budget--;
	if ((p = malloc(size + 16)) == NULL)
		return NULL;
	p[0] = size;
	c->current += size;
	if (c->current > c->peak)
		c->peak = c->current;
	return (char *) p + 16;
}

static void
count_free(void *ctx, void *ptr)
{
	Counter    *c = ctx;
	size_t	   *p = (size_t *) ((char *) ptr - 16);

	c->current -= p[0];
	free(p);
}

/* ---------------------------------------------------------------------- */
/* Corpora                                                                */
/* ---------------------------------------------------------------------- */

typedef struct Corpus
{
	size_t		n;
	char	  **texts;
	size_t	   *lens;
} Corpus;

static void
corpus_free(Corpus *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->texts[i]);
	free(c->texts);
	free(c->lens);
	memset(c, 0, sizeof(*c));
}

static void
corpus_add(Corpus *c, const char *s)
{
	c->texts = realloc(c->texts, sizeof(char *) * (c->n + 1));
	c->lens = realloc(c->lens, sizeof(size_t) * (c->n + 1));
	c->texts[c->n] = strdup(s);
	c->lens[c->n] = strlen(s);
	c->n++;
}

static uint64_t test_rng = 88172645463325252ULL;

static uint32_t
rnd(uint32_t n)
{
	test_rng ^= test_rng << 13;
	test_rng ^= test_rng >> 7;
	test_rng ^= test_rng << 17;
	return (uint32_t) (test_rng % n);
}

#define GROUPS 5
#define PER_GROUP 6

/* Word j of group g: made-up words with no shared spelling across groups. */
static const char *const group_words[GROUPS][PER_GROUP] = {
	{"apple", "pear", "plum", "mango", "peach", "cherry"},
	{"boat", "ship", "yacht", "canoe", "ferry", "kayak"},
	{"red", "blue", "green", "yellow", "purple", "orange"},
	{"dog", "cat", "horse", "cow", "sheep", "goat"},
	{"piano", "violin", "guitar", "flute", "drum", "cello"},
};

/* Texts of 8..15 words, each drawn from one group (a topic), plus a few shared function words. */
static void
planted_corpus(Corpus *c, size_t n_texts)
{
	static const char *const fw[] = {"the", "a", "and", "of"};

	test_rng = 88172645463325252ULL;
	for (size_t i = 0; i < n_texts; i++)
	{
		char		buf[512];
		size_t		o = 0;
		int			g = (int) rnd(GROUPS);
		int			len = 8 + (int) rnd(8);

		for (int k = 0; k < len; k++)
		{
			const char *w = rnd(5) == 0 ? fw[rnd(4)] : group_words[g][rnd(PER_GROUP)];

			o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s%s", k > 0 ? " " : "", w);
		}
		corpus_add(c, buf);
	}
}

static cai_options *
opts(const char *json)
{
	cai_options *o = NULL;
	cai_error	err = {0};

	if (cai_options_parse(cai_vectors_option_defs, cai_vectors_n_option_defs, json, &o, &err) != CAI_OK)
		fprintf(stderr, "  options %s: %s\n", json, err.msg);
	return o;
}

static cai_status
train(const Corpus *c, const char *json, uint8_t **b, size_t *bl, char **metrics, cai_error *err)
{
	cai_options *o = opts(json);
	cai_status	st;

	if (o == NULL)
		return CAI_ERR_INVALID;
	st = cai_vectors_train(o, (const char *const *) c->texts, c->lens, c->n, NULL, NULL, b, bl, metrics, err);
	cai_options_free(o);
	return st;
}

static cai_vectors *
train_open(const Corpus *c, const char *json)
{
	uint8_t    *b = NULL;
	size_t		bl = 0;
	cai_vectors *v = NULL;
	cai_error	err = {0};

	if (train(c, json, &b, &bl, NULL, &err) != CAI_OK)
	{
		fprintf(stderr, "  train %s: %s\n", json, err.msg);
		return NULL;
	}
	if (cai_vectors_open(b, bl, false, true, &v, &err) != CAI_OK)
		fprintf(stderr, "  open: %s\n", err.msg);
	cai_free(b);
	return v;
}

static int
group_of(const char *w)
{
	for (int g = 0; g < GROUPS; g++)
		for (int j = 0; j < PER_GROUP; j++)
			if (strcmp(group_words[g][j], w) == 0)
				return g;
	return -1;
}

/* Fraction of the 3 nearest neighbours of every planted word that are in its group. */
static double
planted_precision(const cai_vectors *v)
{
	int			hit = 0,
				all = 0;

	for (int g = 0; g < GROUPS; g++)
		for (int j = 0; j < PER_GROUP; j++)
		{
			const char *w = group_words[g][j];
			int32_t		ids[3];
			float		sc[3];
			int			k = 0;
			cai_vec_hit h;
			cai_error	err = {0};

			if (cai_vectors_similar_word(v, w, strlen(w), CAI_VEC_CASE_AUTO, 3, ids, sc, &k, &h, &err) != CAI_OK)
				continue;
			for (int i = 0; i < k; i++)
			{
				hit += group_of(cai_vectors_word(v, ids[i], NULL)) == g;
				all++;
			}
		}
	return all > 0 ? (double) hit / all : 0;
}

static bool
all_finite(const cai_vectors *v)
{
	for (int32_t i = 0; i < cai_vectors_count(v); i++)
	{
		const float *r = cai_vectors_row(v, i);

		for (int32_t j = 0; j < cai_vectors_dim(v); j++)
			if (!isfinite(r[j]))
				return false;
	}
	return true;
}

static float
cosine(const float *a, const float *b, int D)
{
	double		ab = 0,
				aa = 0,
				bb = 0;

	for (int j = 0; j < D; j++)
	{
		ab += (double) a[j] * b[j];
		aa += (double) a[j] * a[j];
		bb += (double) b[j] * b[j];
	}
	return aa > 0 && bb > 0 ? (float) (ab / sqrt(aa * bb)) : 0.0f;
}

/* ---------------------------------------------------------------------- */

static void
test_planted(void)
{
	Corpus		c = {0};
	static const char *const runs[] = {
		"{\"model\": \"skipgram\", \"dimensions\": 32, \"epochs\": 10, \"min_count\": 1, \"maxn\": 0}",
		"{\"model\": \"skipgram\", \"dimensions\": 32, \"epochs\": 10, \"min_count\": 1}",
		"{\"model\": \"cbow\", \"dimensions\": 32, \"epochs\": 10, \"min_count\": 1, \"maxn\": 0}",
		"{\"model\": \"cbow\", \"dimensions\": 32, \"epochs\": 10, \"min_count\": 1}",
		"{\"model\": \"skipgram\", \"dimensions\": 32, \"epochs\": 10, \"min_count\": 1, \"threads\": 2}",
		"{\"model\": \"cbow\", \"dimensions\": 32, \"epochs\": 10, \"min_count\": 1, \"threads\": 3}",
	};

	planted_corpus(&c, 2000);
	for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++)
	{
		cai_vectors *v = train_open(&c, runs[r]);
		double		prec;

		CHECK(v != NULL, "%s trains", runs[r]);
		if (v == NULL)
			continue;
		prec = planted_precision(v);
		printf("planted groups, %s: precision@3 %.3f, %d words\n", runs[r], prec, cai_vectors_count(v));
		CHECK(prec >= 0.9, "%s: the 3 nearest neighbours are in the planted group %.3f of the time", runs[r], prec);
		CHECK(cai_vectors_count(v) == GROUPS * PER_GROUP + 4, "%s: %d words", runs[r], cai_vectors_count(v));
		CHECK(cai_vectors_has_subwords(v) == (strstr(runs[r], "maxn") == NULL), "%s: subwords as asked", runs[r]);
		CHECK(all_finite(v), "%s: finite vectors", runs[r]);
		CHECK(cai_vectors_lowercase(v), "%s: lower-cased by default", runs[r]);
		cai_vectors_free(v);
	}
	corpus_free(&c);
}

static void
test_determinism(void)
{
	Corpus		c = {0};
	uint8_t    *b1 = NULL,
			   *b2 = NULL,
			   *b3 = NULL;
	size_t		l1 = 0,
				l2 = 0,
				l3 = 0;
	cai_error	err = {0};
	const char *j1 = "{\"dimensions\": 24, \"epochs\": 3, \"min_count\": 2, \"seed\": 7}";
	const char *j2 = "{\"dimensions\": 24, \"epochs\": 3, \"min_count\": 2, \"seed\": 8}";
	const char *j3 = "{\"dimensions\": 24, \"epochs\": 3, \"min_count\": 2, \"seed\": 7, \"model\": \"cbow\"}";

	planted_corpus(&c, 600);
	CHECK(train(&c, j1, &b1, &l1, NULL, &err) == CAI_OK, "%s", err.msg);
	CHECK(train(&c, j1, &b2, &l2, NULL, &err) == CAI_OK, "%s", err.msg);
	CHECK(l1 == l2 && l1 > 0 && memcmp(b1, b2, l1) == 0, "threads 1: the same seed gives the same bytes");
	cai_free(b2);
	b2 = NULL;
	CHECK(train(&c, j2, &b2, &l2, NULL, &err) == CAI_OK, "%s", err.msg);
	CHECK(l1 != l2 || memcmp(b1, b2, l1) != 0, "another seed gives other bytes");
	CHECK(train(&c, j3, &b3, &l3, NULL, &err) == CAI_OK, "%s", err.msg);
	cai_free(b2);
	b2 = NULL;
	CHECK(train(&c, j3, &b2, &l2, NULL, &err) == CAI_OK, "%s", err.msg);
	CHECK(l3 == l2 && memcmp(b3, b2, l3) == 0, "cbow, threads 1: the same bytes");
	cai_free(b1);
	cai_free(b2);
	cai_free(b3);
	corpus_free(&c);
}

/*
 * Subwords: stems of 7 letters with suffixes, each stem's variants in its
 * own topic; an unseen variant (stem + "ness") gets a subword vector whose
 * nearest words are the stem's variants.
 */
static void
test_subwords(void)
{
	static const char *const stems[] = {"quarvol", "zintepa", "moblisk", "fendrux", "spowlic"};
	static const char *const suf[] = {"", "er", "ing", "ed", "s"};
	Corpus		c = {0};
	cai_vectors *v;
	int			good = 0;

	test_rng = 12345;
	for (int i = 0; i < 3000; i++)
	{
		char		buf[512];
		size_t		o = 0;
		int			g = (int) rnd(5);

		for (int k = 0; k < 10; k++)
			o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s%s%s", k > 0 ? " " : "",
								   stems[(k % 3 == 0) ? (int) rnd(5) : g], suf[rnd(5)]);
		corpus_add(&c, buf);
	}
	v = train_open(&c, "{\"dimensions\": 32, \"epochs\": 5, \"min_count\": 1, \"sample\": 0}");
	CHECK(v != NULL && cai_vectors_has_subwords(v), "trains with subwords");
	for (int s = 0; v != NULL && s < 5; s++)
	{
		char		w[32];
		float		q[32];
		int32_t		ids[5];
		float		sc[5];
		int			k = 0,
					same = 0;
		cai_vec_hit h;
		cai_error	err = {0};
		int32_t		row;

		snprintf(w, sizeof(w), "%sness", stems[s]);
		CHECK(cai_vectors_lookup(v, w, strlen(w), CAI_VEC_CASE_AUTO, q, &row) == CAI_VEC_SUBWORD && row == -1,
			  "%s: a subword vector", w);
		CHECK(cai_vectors_similar_word(v, w, strlen(w), CAI_VEC_CASE_AUTO, 5, ids, sc, &k, &h, &err) == CAI_OK &&
			  h == CAI_VEC_SUBWORD && k == 5, "%s: neighbours", w);
		for (int i = 0; i < k; i++)
			same += strncmp(cai_vectors_word(v, ids[i], NULL), stems[s], 7) == 0;
		good += same >= 4;
		/* closer to its stem's variant than to another stem's */
		{
			const float *a = cai_vectors_row(v, cai_vectors_find(v, stems[s], 7));
			const float *o = cai_vectors_row(v, cai_vectors_find(v, stems[(s + 1) % 5], 7));

			CHECK(a != NULL && o != NULL && cosine(q, a, 32) > cosine(q, o, 32) + 0.2f,
				  "%s: cosine %.3f to %s, %.3f to %s", w, a ? cosine(q, a, 32) : 0, stems[s],
				  o ? cosine(q, o, 32) : 0, stems[(s + 1) % 5]);
		}
	}
	CHECK(good == 5, "unseen variants: %d of 5 have 4 of their 5 neighbours among the stem's variants", good);
	/* a word sharing no n-gram with the vocabulary: a miss */
	if (v != NULL)
	{
		float		q[32];

		CHECK(cai_vectors_lookup(v, "xyxyxy", 6, CAI_VEC_CASE_AUTO, q, NULL) == CAI_VEC_MISS, "no shared n-gram: miss");
	}
	cai_vectors_free(v);
	/* without subwords the unseen variant has no vector */
	v = train_open(&c, "{\"dimensions\": 16, \"epochs\": 1, \"min_count\": 1, \"maxn\": 0}");
	if (v != NULL)
	{
		float		q[16];

		CHECK(!cai_vectors_has_subwords(v) &&
			  cai_vectors_lookup(v, "quarvolness", 11, CAI_VEC_CASE_AUTO, q, NULL) == CAI_VEC_MISS,
			  "maxn 0: no subwords, an unseen word is a miss");
	}
	cai_vectors_free(v);
	corpus_free(&c);
}

/* CJK: each character is a token; two groups of characters co-occur. */
static void
test_cjk(void)
{
	static const char *const g[2][4] = {{"猫", "狗", "马", "牛"}, {"红", "蓝", "绿", "黄"}};
	Corpus		c = {0};
	cai_vectors *v;

	test_rng = 999;
	for (int i = 0; i < 1500; i++)
	{
		char		buf[256] = "";
		int			k = (int) rnd(2);

		for (int j = 0; j < 12; j++)
			strcat(buf, g[k][rnd(4)]);
		strcat(buf, "。");
		corpus_add(&c, buf);
	}
	v = train_open(&c, "{\"dimensions\": 16, \"epochs\": 5, \"min_count\": 1}");
	CHECK(v != NULL && cai_vectors_count(v) == 9, "CJK: 8 characters and the full stop, got %d",
		  v ? cai_vectors_count(v) : -1);
	if (v != NULL)
	{
		int			hit = 0;

		for (int k = 0; k < 2; k++)
			for (int j = 0; j < 4; j++)
			{
				int32_t		ids[3];
				float		sc[3];
				int			n = 0;
				cai_vec_hit h;
				cai_error	err = {0};

				cai_vectors_similar_word(v, g[k][j], strlen(g[k][j]), CAI_VEC_CASE_AUTO, 3, ids, sc, &n, &h, &err);
				for (int i = 0; i < n; i++)
				{
					const char *w = cai_vectors_word(v, ids[i], NULL);

					for (int x = 0; x < 4; x++)
						hit += strcmp(w, g[k][x]) == 0;
				}
			}
		CHECK(hit >= 22, "CJK: %d of 24 nearest neighbours in the character's group", hit);
		CHECK(all_finite(v), "CJK: finite");
	}
	cai_vectors_free(v);

	/*
	 * char_bigrams: the characters and every bigram of neighbours (16 in
	 * each group, each character with the full stop, keyed "猫 。"), the
	 * nearest bigrams of a group's bigram in its group
	 */
	v = train_open(&c, "{\"dimensions\": 16, \"epochs\": 5, \"min_count\": 1, \"char_bigrams\": true}");
	CHECK(v != NULL && cai_vectors_count(v) == 9 + 32 + 8, "char_bigrams: 9 characters and 40 bigrams, got %d",
		  v ? cai_vectors_count(v) : -1);
	if (v != NULL)
	{
		int32_t		ids[5];
		float		sc[5];
		int			n = 0,
					hit = 0;
		cai_vec_hit h;
		cai_error	err = {0};

		CHECK(cai_vectors_find(v, "猫 。", strlen("猫 。")) >= 0 && cai_vectors_find(v, "猫狗", strlen("猫狗")) >= 0 &&
			  cai_vectors_find(v, "猫红", strlen("猫红")) < 0, "char_bigrams: the keys of NER's bigrams");
		cai_vectors_similar_word(v, "猫狗", strlen("猫狗"), CAI_VEC_CASE_AUTO, 5, ids, sc, &n, &h, &err);
		for (int i = 0; i < n; i++)
		{
			const char *w = cai_vectors_word(v, ids[i], NULL);

			hit += strlen(w) == 6 && strstr("猫狗马牛", (char[4]) {w[0], w[1], w[2], 0}) != NULL &&
				strstr("猫狗马牛", w + 3) != NULL;
		}
		CHECK(n == 5 && hit >= 4, "char_bigrams: %d of the 5 nearest of 猫狗 are bigrams of its group", hit);
	}
	cai_vectors_free(v);
	corpus_free(&c);
}

static void
test_case_and_pieces(void)
{
	Corpus		c = {0};
	cai_vectors *v;
	char	   *big;
	size_t		o = 0;

	planted_corpus(&c, 300);
	corpus_add(&c, "Apple PEAR Plum mango");
	v = train_open(&c, "{\"dimensions\": 8, \"epochs\": 1, \"min_count\": 1}");
	CHECK(v != NULL && cai_vectors_find(v, "Apple", 5) < 0 && cai_vectors_find(v, "apple", 5) >= 0 &&
		  cai_vectors_lowercase(v), "lowercase true merges cases");
	cai_vectors_free(v);
	v = train_open(&c, "{\"dimensions\": 8, \"epochs\": 1, \"min_count\": 1, \"lowercase\": false}");
	CHECK(v != NULL && cai_vectors_find(v, "Apple", 5) >= 0 && cai_vectors_find(v, "apple", 5) >= 0 &&
		  !cai_vectors_lowercase(v), "lowercase false keeps case");
	cai_vectors_free(v);
	corpus_free(&c);

	/* one text of 20000 tokens, trained in pieces of 50 */
	big = malloc(20000 * 8);
	test_rng = 5;
	for (int i = 0; i < 20000; i++)
		o += (size_t) sprintf(big + o, "%s%s", i ? " " : "", group_words[(i / 40) % GROUPS][rnd(PER_GROUP)]);
	corpus_add(&c, big);
	free(big);
	v = train_open(&c, "{\"dimensions\": 16, \"epochs\": 5, \"min_count\": 1, \"max_tokens\": 50, \"maxn\": 0}");
	CHECK(v != NULL && cai_vectors_count(v) == GROUPS * PER_GROUP, "a long text in pieces trains");
	if (v != NULL)
		printf("one text of 20000 tokens in pieces of 50: precision@3 %.3f\n", planted_precision(v));
	cai_vectors_free(v);
	corpus_free(&c);
}

static void
test_errors(void)
{
	Corpus		c = {0};
	uint8_t    *b = (uint8_t *) 1;
	size_t		bl = 1;
	cai_error	err = {0};
	cai_options *o;

	CHECK(train(&c, "{}", &b, &bl, NULL, &err) == CAI_ERR_INVALID && b == NULL && bl == 0 &&
		  strstr(err.msg, "min_count") != NULL, "no texts: %s", err.msg);
	corpus_add(&c, "");
	corpus_add(&c, "   ");
	corpus_add(&c, "\xff\xfe");
	CHECK(train(&c, "{\"min_count\": 1}", &b, &bl, NULL, &err) == CAI_ERR_INVALID, "empty texts: %s", err.msg);
	corpus_add(&c, "alone");
	corpus_add(&c, "single");
	CHECK(train(&c, "{\"min_count\": 1}", &b, &bl, NULL, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "two tokens") != NULL, "one token a text: %s", err.msg);
	corpus_add(&c, "two words");
	CHECK(train(&c, "{\"min_count\": 2}", &b, &bl, NULL, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "min_count (2)") != NULL, "nothing reaches min_count: %s", err.msg);
	CHECK(train(&c, "{\"min_count\": 1, \"dimensions\": 4}", &b, &bl, NULL, &err) == CAI_OK && b != NULL,
		  "one text of two words is enough: %s", err.msg);
	cai_free(b);
	CHECK(cai_options_parse(cai_vectors_option_defs, cai_vectors_n_option_defs, "{\"minn\": 5, \"maxn\": 3}", &o, &err) == CAI_OK,
		  "parses");
	CHECK(cai_vectors_train(o, (const char *const *) c.texts, c.lens, c.n, NULL, NULL, &b, &bl, NULL, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "minn") != NULL, "minn > maxn: %s", err.msg);
	CHECK(cai_vectors_train_memory(o, (const char *const *) c.texts, c.lens, c.n) == 0, "no estimate for bad options");
	cai_options_free(o);
	CHECK(cai_options_parse(cai_vectors_option_defs, cai_vectors_n_option_defs, "{\"model\": \"glove\"}", &o, &err) == CAI_ERR_INVALID,
		  "unknown model: %s", err.msg);
	corpus_free(&c);
}

/* A huge learning rate: vectors stay finite or training says it diverged; never NaN in a set. */
static void
test_finite(void)
{
	Corpus		c = {0};
	uint8_t    *b = NULL;
	size_t		bl = 0;
	cai_error	err = {0};
	cai_status	st;

	planted_corpus(&c, 500);
	st = train(&c, "{\"dimensions\": 16, \"epochs\": 5, \"min_count\": 1, \"learning_rate\": 10}", &b, &bl, NULL, &err);
	CHECK(st == CAI_OK || st == CAI_ERR_NUMERIC, "learning_rate 10: %s", err.msg);
	if (st == CAI_OK)
	{
		cai_vectors *v = NULL;

		CHECK(cai_vectors_open(b, bl, false, true, &v, &err) == CAI_OK && all_finite(v), "finite");
		cai_vectors_free(v);
	}
	else
		CHECK(b == NULL, "nothing returned");
	cai_free(b);
	corpus_free(&c);
}

typedef struct Prog
{
	int			calls;
	int			cancel_at;		/* 0: never */
	double		last_fraction;
	bool		monotone;
	double		rate;
} Prog;

static bool
prog_fn(void *ctx, const cai_progress *p)
{
	Prog	   *g = ctx;

	g->calls++;
	g->monotone = g->monotone && p->fraction >= g->last_fraction && p->fraction <= 1.0;
	g->last_fraction = p->fraction;
	if (p->epoch_done)
		g->rate = p->rows_per_sec;
	return g->cancel_at == 0 || g->calls < g->cancel_at;
}

/*
 * Train under the counting allocator with budget allocations (< 0: all):
 * options parsed before, freed after, the counts in *cnt.
 */
static cai_status
counted_train(const Corpus *c, const char *json, Prog *g, Counter *cnt, long budget, uint8_t **b, size_t *bl,
			  char **metrics, cai_error *err)
{
	cai_options *o = opts(json);
	cai_allocator counting = {count_alloc, count_free, cnt};
	cai_status	st;

	memset(cnt, 0, sizeof(*cnt));
	cnt->budget = budget;
	*b = NULL;
	if (metrics != NULL)
		*metrics = NULL;
	cai_set_allocator(&counting);
	st = cai_vectors_train(o, (const char *const *) c->texts, c->lens, c->n, g != NULL ? prog_fn : NULL, g,
						   b, bl, metrics, err);
	cai_set_allocator(NULL);
	cai_options_free(o);
	return st;
}

/* Free what a counted training returned, through the counting allocator. */
static void
counted_free(Counter *cnt, uint8_t *b, char *metrics)
{
	cai_allocator counting = {count_alloc, count_free, cnt};

	cai_set_allocator(&counting);
	cai_free(b);
	cai_free(metrics);
	cai_set_allocator(NULL);
}

static void
test_progress_cancel_memory(void)
{
	Corpus		c = {0};
	uint8_t    *b = NULL;
	size_t		bl = 0;
	char	   *metrics = NULL;
	cai_error	err = {0};
	Counter		cnt;
	Prog		g;
	cai_status	st;

	planted_corpus(&c, 3000);
	/* progress, metrics, peak against the estimate, with two threads (pool threads must not allocate) */
	for (int threads = 1; threads <= 2; threads++)
	{
		char		json[160];
		cai_options *o;
		size_t		estimate;

		snprintf(json, sizeof(json), "{\"dimensions\": 50, \"epochs\": 3, \"min_count\": 1, \"threads\": %d}", threads);
		o = opts(json);
		estimate = cai_vectors_train_memory(o, (const char *const *) c.texts, c.lens, c.n);
		cai_options_free(o);
		g = (Prog) {0, 0, 0, true, 0};
		st = counted_train(&c, json, &g, &cnt, -1, &b, &bl, &metrics, &err);
		counted_free(&cnt, b, metrics);
		CHECK(st == CAI_OK, "threads %d: %s", threads, err.msg);
		CHECK(cnt.current == 0, "threads %d: %zu bytes left allocated", threads, cnt.current);
		CHECK(estimate > 0 && cnt.peak <= estimate, "threads %d: peak %zu, estimate %zu", threads, cnt.peak, estimate);
		printf("threads %d: peak %zu bytes allocated, estimate %zu (%.1fx)\n", threads, cnt.peak, estimate,
			   (double) estimate / (double) (cnt.peak ? cnt.peak : 1));
		CHECK(g.calls >= 3 && g.monotone && g.rate > 0, "progress: %d calls, monotone %d, %.0f tokens/s",
			  g.calls, g.monotone, g.rate);
	}
	/* metrics */
	st = counted_train(&c, "{\"dimensions\": 8, \"epochs\": 2, \"min_count\": 1}", NULL, &cnt, -1, &b, &bl, &metrics, &err);
	CHECK(st == CAI_OK && metrics != NULL && strstr(metrics, "\"words\":34") != NULL &&
		  strstr(metrics, "\"epochs_run\":2") != NULL && strstr(metrics, "tokens_per_sec") != NULL,
		  "metrics: %s", metrics ? metrics : "(null)");
	counted_free(&cnt, b, metrics);

	/* cancel at the first and at the third call: nothing returned, nothing leaked */
	for (int at = 1; at <= 3; at += 2)
	{
		g = (Prog) {0, at, 0, true, 0};
		st = counted_train(&c, "{\"dimensions\": 50, \"epochs\": 3, \"min_count\": 1, \"threads\": 2}", &g, &cnt, -1,
						   &b, &bl, &metrics, &err);
		CHECK(st == CAI_ERR_CANCELLED && b == NULL && bl == 0 && metrics == NULL && cnt.current == 0 && g.calls == at,
			  "cancel at call %d: %s, %zu bytes left, %d calls", at, cai_status_name(st), cnt.current, g.calls);
	}

	/* memory_limit_mb: refused before going past it; a limit that fits trains within it */
	st = counted_train(&c, "{\"dimensions\": 50, \"epochs\": 1, \"min_count\": 1, \"memory_limit_mb\": 1}", NULL, &cnt, -1,
					   &b, &bl, NULL, &err);
	CHECK(st == CAI_ERR_LIMIT && b == NULL && cnt.current == 0 && strstr(err.msg, "memory_limit_mb") != NULL,
		  "limit 1 MB: %s (%s), peak %zu", cai_status_name(st), err.msg, cnt.peak);
	st = counted_train(&c, "{\"dimensions\": 50, \"epochs\": 1, \"min_count\": 1, \"memory_limit_mb\": 16}", NULL, &cnt, -1,
					   &b, &bl, NULL, &err);
	counted_free(&cnt, b, NULL);
	CHECK(st == CAI_OK && cnt.peak <= 16u * 1024 * 1024, "limit 16 MB: %s, peak %zu", err.msg, cnt.peak);
	corpus_free(&c);
}

/* Every allocation failing in turn: CAI_ERR_NOMEM, nothing returned, nothing leaked. */
static void
test_alloc_failures(void)
{
	Corpus		c = {0};
	const char *json = "{\"dimensions\": 8, \"epochs\": 1, \"min_count\": 1, \"threads\": 2}";
	uint8_t    *b = NULL;
	size_t		bl = 0;
	char	   *metrics = NULL;
	cai_error	err = {0};
	Counter		cnt;
	long		total;
	int			bad = 0;

	planted_corpus(&c, 100);
	counted_train(&c, json, NULL, &cnt, -1, &b, &bl, &metrics, &err);
	total = cnt.calls;
	counted_free(&cnt, b, metrics);
	for (long k = 0; k < total; k++)
	{
		cai_status	st = counted_train(&c, json, NULL, &cnt, k, &b, &bl, &metrics, &err);

		if (st == CAI_OK)
			counted_free(&cnt, b, metrics);
		else if (st != CAI_ERR_NOMEM || b != NULL || metrics != NULL || cnt.current != 0)
		{
			if (bad++ < 3)
				fprintf(stderr, "  allocation %ld failing: %s (%s), %zu bytes left\n", k, cai_status_name(st), err.msg,
						cnt.current);
		}
	}
	CHECK(bad == 0, "%d of %ld allocation failures not clean", bad, total);
	printf("allocation failures: each of %ld allocations failed in turn\n", total);
	corpus_free(&c);
}

int
main(void)
{
	test_planted();
	test_determinism();
	test_subwords();
	test_cjk();
	test_case_and_pieces();
	test_errors();
	test_finite();
	test_progress_cancel_memory();
	test_alloc_failures();
	return check_summary("test_vectors_train");
}
