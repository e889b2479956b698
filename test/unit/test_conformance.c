/*
 * test_conformance.c: the same checks for every architecture in the registry
 * (model.h), so a new architecture is tested by adding its registry line.
 * For each one, on small data of its task's kind:
 *   - it trains through cai_arch_train with its own default options (few
 *     epochs), and the metrics say what was trained;
 *   - the same data, options and seed give identical bytes;
 *   - the bytes load through cai_model_load copied and in place (zero-copy),
 *     and both answer identically through the run functions;
 *   - a progress callback that asks to stop cancels mid-training
 *     (CAI_ERR_CANCELLED, no model), also with 2 threads where the
 *     architecture has the option;
 *   - every sampled corruption of the bytes (a flipped byte anywhere, a
 *     truncation anywhere) is refused by the verified load;
 *   - the training memory estimate is an upper bound of the peak of what
 *     training allocated through the core's allocator;
 *   - the whole-model gradient check (cai_arch_gradcheck): the training
 *     code's gradient of a batch against finite differences of its loss at
 *     sampled entries of every parameter tensor, max relative error below
 *     1e-2 (measured: about 4e-4 fast, 6e-3 accurate, 5e-3 bilstm_crf);
 *     the layers are also checked op by op in test_ops.c and test_seq.c;
 *   - a classifier's classify_batch equals classify row by row (labels
 *     identical, probabilities within BATCH_MAX_DIFF) on a few hundred texts
 *     of every length (empty, past max_tokens, CJK, emoji, more distinct
 *     tokens than a call caches), for n = 0 and n = 1 too; an error names
 *     its text; every allocation failure is CAI_ERR_NOMEM with nothing
 *     leaked, and a batch of the longest texts stays within a bounded
 *     scratch; a tagger has tag_batch and no classify_batch;
 *   - a tagger's entities_batch equals entities text by text (spans, types
 *     identical, scores within ENT_MAX_DIFF: measured 7e-7 with OpenBLAS,
 *     whose kernels depend on the matrix sizes, and 0 with an sgemm summing
 *     every element in one order) on 1,515 texts (empty,
 *     blank, several sentences, line breaks, CJK, emoji, no entities, one
 *     sentence past the sentence chunk, a text of thousands of tokens), for
 *     n = 0 and n = 1 too; a text past max_tokens or a NULL text fails the
 *     call naming it; scratch stays bounded; every allocation failure is
 *     CAI_ERR_NOMEM with nothing leaked; a classifier has no entities_batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/model.h"
#include "check.h"
#include "encoder_fixtures.h"
#include "ner_fixtures.h"
#include "textclf_fixtures.h"

/* entries checked per parameter tensor, and the largest relative error allowed */
#define GRAD_SAMPLES 8
#define GRAD_MAX_ERR 1e-2

/* the largest difference of a probability between classify_batch and classify */
#define BATCH_MAX_DIFF 1e-5
/* bytes a classify_batch call of the longest texts may allocate (scratch bounded by the batch) */
#define BATCH_MAX_BYTES ((size_t) 32 << 20)

static cai_options *
opts_of(const char *json)
{
	cai_options *o = NULL;

	return cai_textclf_parse_options(json, &o, NULL) == CAI_OK ? o : NULL;
}

/* ---------------------------------------------------------------------- */
/* A counting allocator: current and peak bytes allocated through the hook */
/* ---------------------------------------------------------------------- */

typedef struct Counter
{
	size_t		current;
	size_t		peak;
} Counter;

static void *
count_alloc(void *ctx, size_t size)
{
	Counter    *c = ctx;
	size_t	   *p = malloc(size + 16);

	if (p == NULL)
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

/* The counting allocator failing once budget allocations have succeeded. */
typedef struct Failing
{
	Counter		c;
	long		budget;
} Failing;

static void *
failing_alloc(void *ctx, size_t size)
{
	Failing    *f = ctx;

	if (f->budget-- <= 0)
		return NULL;
	return count_alloc(&f->c, size);
}

static void
failing_free(void *ctx, void *ptr)
{
	count_free(&((Failing *) ctx)->c, ptr);
}

/* ---------------------------------------------------------------------- */

static Toy	texts;
static Toy	probe;
/* texts as token ids (cai_textclf_tokens), for the memory estimate from them */
static cai_strtab words;
static cai_textclf_tokens text_ids;
static cai_textclf_data texts_as_ids;
static bool use_ids;
static cai_ner_data sentences;

/* The task's small training set. */
/* a tiny random encoder for the architectures that fine-tune one (the others ignore it) */
static cai_encoder_bundle *encoder;

static cai_train_set
set_for(const cai_arch *a)
{
	cai_train_set set = {0};

	set.encoder = encoder;
	if (a->task->kind == CAI_KIND_CLASSIFY)
	{
		set.texts = use_ids ? &texts_as_ids : &texts.d;
		set.label_names = label_names;
		set.n_labels = 3;
	}
	else
		set.sentences = &sentences;
	return set;
}

static bool
has_option(const cai_arch *a, const char *name)
{
	for (int i = 0; i < *a->n_options; i++)
		if (strcmp(a->options[i].name, name) == 0)
			return true;
	return false;
}

/* Few epochs of the architecture's own defaults (threads: 0 = its default). */
static cai_options *
options_for(const cai_arch *a, int threads)
{
	char		json[160];
	char		th[32] = "";
	cai_options *o = NULL;
	cai_error	err = {0};

	if (threads > 0)
		snprintf(th, sizeof(th), ", \"threads\": %d", threads);
	if (has_option(a, "architecture"))
		snprintf(json, sizeof(json), "{\"architecture\": \"%s\", \"epochs\": 2, \"seed\": 9%s}", a->name, th);
	else
		snprintf(json, sizeof(json), "{\"epochs\": 2, \"seed\": 9%s}", th);
	if (cai_options_parse(a->options, *a->n_options, json, &o, &err) != CAI_OK)
		fprintf(stderr, "%s options %s: %s\n", a->name, json, err.msg);
	return o;
}

typedef struct Bytes
{
	cai_status	st;
	uint8_t    *b;
	size_t		len;
	char	   *metrics;
} Bytes;

static Bytes
train(const cai_arch *a, const cai_options *o, cai_progress_fn fn, void *ctx)
{
	Bytes		r = {0};
	cai_train_set set = set_for(a);
	cai_error	err = {0};

	r.st = cai_arch_train(a, o, &set, NULL, fn, ctx, &r.b, &r.len, &r.metrics, &err);
	if (r.st != CAI_OK && r.st != CAI_ERR_CANCELLED)
		fprintf(stderr, "%s: training: %s\n", a->name, err.msg);
	return r;
}

static void
bytes_free(Bytes *r)
{
	cai_free(r->b);
	cai_free(r->metrics);
	memset(r, 0, sizeof(*r));
}

/* Answers of a model on the probe texts or sentences, as one string (for comparing). */
static char *
answers(const cai_model *m)
{
	size_t		cap = 1 << 16;
	size_t		used = 0;
	char	   *out = calloc(1, cap);
	cai_error	err = {0};

	if (cai_model_kind(m) == CAI_KIND_CLASSIFY)
	{
		for (size_t i = 0; i < probe.d.n && used + 256 < cap; i++)
		{
			float		p[3];

			if (cai_model_classify(m, probe.d.texts[i], probe.d.lens[i], p, &err) != CAI_OK)
				used += (size_t) snprintf(out + used, cap - used, "error %s;", err.msg);
			else
				used += (size_t) snprintf(out + used, cap - used, "%a %a %a;", p[0], p[1], p[2]);
		}
	}
	else
	{
		const char *tags[NER_N * NER_T];
		float		scores[NER_N * NER_T];

		if (cai_model_tag_batch(m, &sentences, tags, scores, &err) != CAI_OK)
			used += (size_t) snprintf(out + used, cap - used, "error %s", err.msg);
		else
			for (int i = 0; i < NER_N * NER_T && used + 64 < cap; i++)
				used += (size_t) snprintf(out + used, cap - used, "%s %a;", tags[i], scores[i]);
	}
	return out;
}

/* ---------------------------------------------------------------------- */
/* Batched classification                                                 */
/* ---------------------------------------------------------------------- */

#define BATCH_N_LONG 12			/* texts of 512 distinct tokens: more than a call caches */

typedef struct Batch
{
	size_t		n;
	const char **texts;
	size_t	   *lens;
	char	   *owned[BATCH_N_LONG + 2];
} Batch;

/*
 * The probe and training texts, and: empty text, CJK and emoji alone, a
 * text far past max_tokens (and its byte cap), and BATCH_N_LONG texts of
 * 600 distinct made-up words each.
 */
static Batch
batch_texts(void)
{
	static const char *const extra[] = {
		"", " ", "\xe5\xa5\xbd\xe7\x9c\x8b\xe7\x9a\x84\xe7\x94\xb5\xe5\xbd\xb1",	/* 好看的电影 */
		"\xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "great", "!",
		"terrible \xf0\x9f\x98\xa1 \xe9\x9a\xbe\xe7\x9c\x8b film",
	};
	Batch		b = {0};
	size_t		cap = probe.d.n + texts.d.n + N_OF(extra) + 1 + BATCH_N_LONG;
	size_t		k = 0;

	b.texts = calloc(cap, sizeof(char *));
	b.lens = calloc(cap, sizeof(size_t));
	for (size_t i = 0; i < texts.d.n; i++)
	{
		b.texts[b.n] = texts.d.texts[i];
		b.lens[b.n++] = texts.d.lens[i];
		/* the special texts spread over the set, not in one batch */
		if (i % 25 == 0 && k < (size_t) N_OF(extra))
		{
			b.texts[b.n] = extra[k++];
			b.lens[b.n] = strlen(b.texts[b.n]);
			b.n++;
		}
		if (i % 20 == 0 && i / 20 < probe.d.n)
		{
			b.texts[b.n] = probe.d.texts[i / 20];
			b.lens[b.n++] = probe.d.lens[i / 20];
		}
	}
	for (size_t i = 0; i < BATCH_N_LONG + 1; i++)
	{
		size_t		words = i == 0 ? 4000 : 600;
		char	   *s = malloc(words * 16);
		size_t		len = 0;

		for (size_t w = 0; w < words; w++)
			len += i == 0 ? (size_t) sprintf(s + len, "%s ", words_pos[w % 7])
				: (size_t) sprintf(s + len, "zq%zux%zu ", i, w);
		b.owned[i] = s;
		b.texts[b.n] = s;
		b.lens[b.n++] = len;
	}
	return b;
}

static void
batch_free(Batch *b)
{
	for (int i = 0; i < BATCH_N_LONG + 2; i++)
		free(b->owned[i]);
	free(b->texts);
	free(b->lens);
}

/* Largest difference of probs a and b (n, L), and the rows whose best labels differ. */
static double
probs_diff(const float *a, const float *b, size_t n, int L, size_t *label_diffs)
{
	double		d = 0.0;

	*label_diffs = 0;
	for (size_t i = 0; i < n; i++)
	{
		int			ba = 0,
					bb = 0;

		for (int c = 0; c < L; c++)
		{
			double		e = fabs((double) a[i * L + c] - (double) b[i * L + c]);

			d = e > d || e != e ? e : d;
			ba = a[i * L + c] > a[i * L + ba] ? c : ba;
			bb = b[i * L + c] > b[i * L + bb] ? c : bb;
		}
		*label_diffs += ba != bb;
	}
	return d;
}

/* classify_batch against classify row by row, and its edge cases (see the file comment). */
static void
batch_conform(const cai_arch *a, const cai_model *m)
{
	Batch		b;
	int			L = cai_model_n_labels(m);
	float	   *rows;
	float	   *batch;
	size_t		label_diffs = 0;
	double		d;
	cai_error	err = {0};
	bool		ok = true;

	if (a->task->kind != CAI_KIND_CLASSIFY)
	{
		CHECK(a->classify_batch == NULL && a->tag_batch != NULL, "%s: a tagger tags in batches and does not classify",
			  a->name);
		CHECK(cai_model_classify_batch(m, NULL, NULL, 0, NULL, &err) == CAI_ERR_INVALID,
			  "%s: classify_batch of a tagger is refused", a->name);
		return;
	}
	CHECK(a->classify_batch != NULL, "%s: a classifier classifies in batches", a->name);
	if (a->classify_batch == NULL)
		return;
	b = batch_texts();
	rows = calloc(b.n * (size_t) L, sizeof(float));
	batch = calloc(b.n * (size_t) L, sizeof(float));
	for (size_t i = 0; i < b.n && ok; i++)
		ok = cai_model_classify(m, b.texts[i], b.lens[i], rows + i * (size_t) L, &err) == CAI_OK;
	CHECK(ok, "%s: classify every batch text: %s", a->name, err.msg);
	CHECK(cai_model_classify_batch(m, b.texts, b.lens, b.n, batch, &err) == CAI_OK, "%s: classify_batch: %s",
		  a->name, err.msg);
	d = probs_diff(rows, batch, b.n, L, &label_diffs);
	CHECK(d <= BATCH_MAX_DIFF && label_diffs == 0,
		  "%s: classify_batch of %zu texts: max abs difference %g (at most %g), %zu labels differ", a->name, b.n, d,
		  BATCH_MAX_DIFF, label_diffs);
	printf("%s: classify_batch of %zu texts against classify: max abs difference %.3g, %zu labels differ\n", a->name,
		   b.n, d, label_diffs);

	/* n = 0 and n = 1 (the longest text, the last but BATCH_N_LONG) */
	CHECK(cai_model_classify_batch(m, NULL, NULL, 0, NULL, &err) == CAI_OK, "%s: classify_batch of no text", a->name);
	for (size_t k = b.n - BATCH_N_LONG - 1; k <= b.n - BATCH_N_LONG; k++)
	{
		float		one[8] = {0};

		CHECK(L <= 8 && cai_model_classify_batch(m, b.texts + k, b.lens + k, 1, one, &err) == CAI_OK &&
			  probs_diff(rows + k * L, one, 1, L, &label_diffs) <= BATCH_MAX_DIFF && label_diffs == 0,
			  "%s: classify_batch of text %zu alone: %s", a->name, k, err.msg);
	}

	/* an error names its text */
	{
		const char *saved = b.texts[5];

		b.texts[5] = NULL;
		CHECK(cai_model_classify_batch(m, b.texts, b.lens, b.n, batch, &err) == CAI_ERR_INVALID &&
			  strncmp(err.msg, "text 5:", 7) == 0, "%s: a NULL text is refused, named: %s", a->name, err.msg);
		b.texts[5] = saved;
	}

	/* scratch bounded by the batch: the longest texts */
	{
		Failing		f = {{0, 0}, 1L << 40};
		cai_allocator counting = {failing_alloc, failing_free, &f};
		size_t		k = b.n - BATCH_N_LONG - 1;

		cai_set_allocator(&counting);
		CHECK(cai_model_classify_batch(m, b.texts + k, b.lens + k, BATCH_N_LONG + 1, batch, &err) == CAI_OK,
			  "%s: classify_batch of the longest texts: %s", a->name, err.msg);
		cai_set_allocator(NULL);
		CHECK(f.c.peak <= BATCH_MAX_BYTES && f.c.current == 0,
			  "%s: classify_batch of the longest texts allocated at most %zu bytes (bound %zu), %zu left", a->name,
			  f.c.peak, BATCH_MAX_BYTES, f.c.current);
		printf("%s: classify_batch of %d texts of 512 tokens: peak %zu bytes allocated\n", a->name,
			   BATCH_N_LONG + 1, f.c.peak);
	}

	/* allocation failures: CAI_ERR_NOMEM, nothing leaked */
	{
		static const long budgets[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 50, 200, 400, 700, 1000};
		int			bad = 0;
		int			nomem = 0;

		for (int k = 0; k < N_OF(budgets); k++)
		{
			Failing		f = {{0, 0}, budgets[k]};
			cai_allocator failing = {failing_alloc, failing_free, &f};
			cai_status	st;

			cai_set_allocator(&failing);
			st = cai_model_classify_batch(m, b.texts, b.lens, b.n, batch, &err);
			cai_set_allocator(NULL);
			nomem += st == CAI_ERR_NOMEM;
			if (!(st == CAI_OK || st == CAI_ERR_NOMEM) || f.c.current != 0)
			{
				bad++;
				fprintf(stderr, "%s: allocation budget %ld: status %d (%s), %zu bytes left\n", a->name, budgets[k],
						(int) st, err.msg, f.c.current);
			}
		}
		CHECK(bad == 0 && nomem > 0, "%s: classify_batch under failing allocations: %d mishandled, %d out of memory",
			  a->name, bad, nomem);
	}
	free(rows);
	free(batch);
	batch_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Batched entities                                                       */
/* ---------------------------------------------------------------------- */

/* the largest difference of an entity score between entities_batch and entities */
#define ENT_MAX_DIFF 1e-6
/* bytes an entities_batch call of many texts may allocate (scratch bounded by the window) */
#define ENT_MAX_BYTES ((size_t) 64 << 20)
#define ENT_N_SHORT 1500		/* one-sentence texts: more sentences than one window */

typedef struct EntTexts
{
	size_t		n;
	const char **texts;
	size_t	   *lens;
	size_t		long_at;		/* the text of thousands of tokens */
	char	   *owned[3];
} EntTexts;

/*
 * Short texts of the corpus' kind (one sentence, some without entities),
 * with the special texts spread among them, and at the end a sentence of 450
 * tokens without a full stop and a text of about 3,000 tokens.
 */
static EntTexts
ent_texts(void)
{
	static const char *const names[] = {"Ann", "Bob", "Chen", "Dana", "Ivo"};
	static const char *const cities[] = {"Paris", "Lima", "Oslo", "Kyiv"};
	static const char *const extra[] = {
		"", " ", "  \n ", ".", "Ann lives in Paris . Bob lives in Lima . Chen lives in Oslo .",
		"Dana lives in Lima\nAnn lives in Oslo\n\nBob lives in Paris !",
		"\xe7\x8e\x8b\xe8\x8a\xb3\xe5\x9c\xa8\xe4\xb8\x8a\xe6\xb5\xb7\xe5\xb7\xa5\xe4\xbd\x9c\xe3\x80\x82 Ann lives in Paris .",
		"\xf0\x9f\x98\x80 Bob lives in \xf0\x9f\x8f\x99 Lima \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd .",
		"the weather is nice today", "lives in in lives .", "Chen lives in Oslo ? Dana lives in Kyiv",
		"\xe5\xa5\xbd\xe7\x9c\x8b\xe7\x9a\x84\xe7\x94\xb5\xe5\xbd\xb1", "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d",
	};
	EntTexts	t = {0};
	size_t		cap = ENT_N_SHORT + N_OF(extra) + 2;
	size_t		k = 0;
	char	   *all = malloc(ENT_N_SHORT * 48);
	size_t		used = 0;

	t.texts = calloc(cap, sizeof(char *));
	t.lens = calloc(cap, sizeof(size_t));
	t.owned[0] = all;
	for (size_t i = 0; i < ENT_N_SHORT; i++)
	{
		char	   *p = all + used;
		int			len = i % 7 == 3 ? sprintf(p, "they lived there for %zu years .", i % 50)
			: sprintf(p, "%s lives in %s .", names[i % 5], cities[(i / 5) % 4]);

		used += (size_t) len + 1;
		t.texts[t.n] = p;
		t.lens[t.n++] = (size_t) len;
		if (i % 97 == 5 && k < (size_t) N_OF(extra))
		{
			t.texts[t.n] = extra[k++];
			t.lens[t.n] = strlen(t.texts[t.n]);
			t.n++;
		}
	}
	for (int j = 0; j < 2; j++)
	{
		size_t		words = j == 0 ? 450 : 3000;
		char	   *s = malloc(words * 12);
		size_t		len = 0;

		for (size_t w = 0; w < words; w++)
		{
			if (j == 0)
				len += (size_t) sprintf(s + len, "%s ", w % 3 == 0 ? names[w % 5] : w % 3 == 1 ? "and" : cities[w % 4]);
			else
				len += (size_t) sprintf(s + len, "%s ", (const char *[]) {names[w % 5], "lives", "in", cities[w % 4],
																	   w % 10 == 4 ? "\n" : "."}[w % 5]);
		}
		t.owned[1 + j] = s;
		t.long_at = t.n;
		t.texts[t.n] = s;
		t.lens[t.n++] = len;
	}
	return t;
}

static void
ent_texts_free(EntTexts *t)
{
	for (int i = 0; i < 3; i++)
		free(t->owned[i]);
	free(t->texts);
	free(t->lens);
}

/*
 * Compare the entities of texts[0..n) from one entities_batch call (all,
 * offsets) with entities text by text; the number of texts that differ, the
 * largest score difference in *diff, the entities in *total.
 */
static size_t
ent_compare(const cai_model *m, const char *const *texts, const size_t *lens, size_t n, const cai_entity *all,
			const size_t *offsets, double *diff, size_t *total)
{
	size_t		bad = 0;
	cai_error	err = {0};

	*total = 0;
	for (size_t i = 0; i < n; i++)
	{
		cai_entity *one = NULL;
		size_t		n_one = 0;
		bool		same;

		if (cai_model_entities(m, texts[i], lens[i], 0, &one, &n_one, &err) != CAI_OK)
		{
			fprintf(stderr, "text %zu: entities: %s\n", i, err.msg);
			bad++;
			continue;
		}
		*total += n_one;
		same = offsets[i + 1] - offsets[i] == n_one;
		for (size_t e = 0; same && e < n_one; e++)
		{
			const cai_entity *x = &one[e];
			const cai_entity *y = &all[offsets[i] + e];
			double		d = fabs((double) x->score - (double) y->score);

			*diff = d > *diff ? d : *diff;
			same = x->start == y->start && x->end == y->end && x->cstart == y->cstart && x->cend == y->cend &&
				x->type == y->type && d <= ENT_MAX_DIFF;
		}
		if (!same && bad++ < 3)
			fprintf(stderr, "text %zu (%.40s): %zu entities alone, %zu in the batch\n", i, texts[i], n_one,
					offsets[i + 1] - offsets[i]);
		cai_free(one);
	}
	return bad;
}

/* A model of a trained for epochs (the conformance models of 2 epochs find few entities); NULL on failure. */
static cai_model *
trained_longer(const cai_arch *a, int epochs)
{
	char		json[64];
	cai_options *o = NULL;
	cai_model  *m = NULL;
	cai_error	err = {0};
	Bytes		r = {0};

	snprintf(json, sizeof(json), "{\"epochs\": %d, \"seed\": 9}", epochs);
	if (cai_options_parse(a->options, *a->n_options, json, &o, &err) == CAI_OK)
	{
		r = train(a, o, NULL, NULL);
		if (r.st == CAI_OK && cai_model_load(r.b, r.len, false, true, &m, &err) != CAI_OK)
			fprintf(stderr, "%s: load: %s\n", a->name, err.msg);
	}
	bytes_free(&r);
	cai_options_free(o);
	return m;
}

/* entities_batch against entities text by text, and its edge cases (see the file comment). */
static void
entities_conform(const cai_arch *a, const cai_model *loaded)
{
	cai_model  *m = NULL;
	EntTexts	t;
	cai_entity *all = NULL;
	size_t	   *offsets;
	double		d = 0.0;
	size_t		total = 0;
	size_t		bad;
	cai_error	err = {0};

	if (a->task->kind != CAI_KIND_TAG)
	{
		size_t		off[2] = {7, 7};

		CHECK(a->entities_batch == NULL, "%s: a classifier has no entities_batch", a->name);
		CHECK(cai_model_entities_batch(loaded, NULL, NULL, 0, 0, &all, off, &err) == CAI_ERR_INVALID,
			  "%s: entities_batch of a classifier is refused", a->name);
		return;
	}
	CHECK(a->entities_batch != NULL, "%s: a tagger finds entities in batches", a->name);
	if (a->entities_batch == NULL)
		return;
	m = trained_longer(a, 12);
	CHECK(m != NULL, "%s: a tagger trained for 12 epochs", a->name);
	if (m == NULL)
		return;
	t = ent_texts();
	offsets = calloc(t.n + 1, sizeof(size_t));
	CHECK(cai_model_entities_batch(m, t.texts, t.lens, t.n, 0, &all, offsets, &err) == CAI_OK,
		  "%s: entities_batch: %s", a->name, err.msg);
	bad = ent_compare(m, t.texts, t.lens, t.n, all, offsets, &d, &total);
	CHECK(bad == 0 && total == offsets[t.n] && total > t.n / 2,
		  "%s: entities_batch of %zu texts: %zu texts differ from entities (of %zu entities, %zu in the batch), "
		  "max score difference %g", a->name, t.n, bad, total, offsets[t.n], d);
	printf("%s: entities_batch of %zu texts against entities: %zu entities, max score difference %.3g, %zu texts differ\n",
		   a->name, t.n, total, d, bad);
	cai_free(all);

	/* n = 0 (NULL texts allowed) and n = 1 */
	offsets[0] = 9;
	CHECK(cai_model_entities_batch(m, NULL, NULL, 0, 0, &all, offsets, &err) == CAI_OK && all == NULL &&
		  offsets[0] == 0, "%s: entities_batch of no text", a->name);
	for (size_t k = 0; k < t.n; k += k < 12 ? 1 : t.n - 1 - k > 200 ? 200 : (t.n - 1 - k > 0 ? t.n - 1 - k : 1))
	{
		size_t		tot1 = 0;

		all = NULL;
		CHECK(cai_model_entities_batch(m, t.texts + k, t.lens + k, 1, 0, &all, offsets, &err) == CAI_OK &&
			  offsets[0] == 0 && (all == NULL) == (offsets[1] == 0) &&
			  ent_compare(m, t.texts + k, t.lens + k, 1, all, offsets, &d, &tot1) == 0,
			  "%s: entities_batch of text %zu alone: %s", a->name, k, err.msg);
		cai_free(all);
	}

	/* a text past max_tokens, or NULL, fails the call, named */
	all = (cai_entity *) &err;
	CHECK(cai_model_entities_batch(m, t.texts, t.lens, t.n, 1000, &all, offsets, &err) == CAI_ERR_LIMIT &&
		  all == NULL && offsets[t.n] == 0, "%s: a text past max_tokens fails the call: %s", a->name, err.msg);
	{
		char		want[32];

		snprintf(want, sizeof(want), "text %zu:", t.long_at);
		CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s: the text past max_tokens is named: %s", a->name,
			  err.msg);
	}
	{
		const char *saved = t.texts[5];

		t.texts[5] = NULL;
		CHECK(cai_model_entities_batch(m, t.texts, t.lens, t.n, 0, &all, offsets, &err) == CAI_ERR_INVALID &&
			  strncmp(err.msg, "text 5:", 7) == 0 && all == NULL, "%s: a NULL text is refused, named: %s", a->name,
			  err.msg);
		t.texts[5] = saved;
	}

	/* scratch bounded: all the texts, and the short ones three times over */
	for (int rep = 1; rep <= 3; rep += 2)
	{
		Failing		f = {{0, 0}, 1L << 40};
		cai_allocator counting = {failing_alloc, failing_free, &f};
		size_t		nn = (size_t) rep * ENT_N_SHORT;
		const char **tx = malloc(sizeof(char *) * (nn + t.n));
		size_t	   *ln = malloc(sizeof(size_t) * (nn + t.n));
		size_t	   *of = malloc(sizeof(size_t) * (nn + t.n + 1));

		for (size_t i = 0; i < nn + t.n; i++)
		{
			tx[i] = t.texts[i < t.n ? i : i % ENT_N_SHORT];
			ln[i] = t.lens[i < t.n ? i : i % ENT_N_SHORT];
		}
		cai_set_allocator(&counting);
		CHECK(cai_model_entities_batch(m, tx, ln, nn + t.n, 0, &all, of, &err) == CAI_OK,
			  "%s: entities_batch of %zu texts: %s", a->name, nn + t.n, err.msg);
		cai_free(all);
		cai_set_allocator(NULL);
		CHECK(f.c.peak <= ENT_MAX_BYTES && f.c.current == 0,
			  "%s: entities_batch of %zu texts allocated at most %zu bytes (bound %zu), %zu left", a->name, nn + t.n,
			  f.c.peak, ENT_MAX_BYTES, f.c.current);
		printf("%s: entities_batch of %zu texts (%zu entities): peak %zu bytes allocated\n", a->name, nn + t.n,
			   of[nn + t.n], f.c.peak);
		free(tx);
		free(ln);
		free(of);
	}

	/* allocation failures: CAI_ERR_NOMEM, nothing leaked, no output */
	{
		static const long budgets[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
		25, 30, 40, 50, 80, 120, 200, 400, 700, 1000};
		int			bad_runs = 0;
		int			nomem = 0;

		for (int k = 0; k < N_OF(budgets); k++)
		{
			Failing		f = {{0, 0}, budgets[k]};
			cai_allocator failing = {failing_alloc, failing_free, &f};
			cai_status	st;

			all = NULL;
			cai_set_allocator(&failing);
			st = cai_model_entities_batch(m, t.texts, t.lens, t.n, 0, &all, offsets, &err);
			if (st == CAI_OK)
				cai_free(all);
			cai_set_allocator(NULL);
			nomem += st == CAI_ERR_NOMEM;
			if (!(st == CAI_OK || (st == CAI_ERR_NOMEM && all == NULL && offsets[t.n] == 0)) || f.c.current != 0)
			{
				bad_runs++;
				fprintf(stderr, "%s: allocation budget %ld: status %d (%s), %zu bytes left\n", a->name, budgets[k],
						(int) st, err.msg, f.c.current);
			}
		}
		CHECK(bad_runs == 0 && nomem > 0,
			  "%s: entities_batch under failing allocations: %d mishandled, %d out of memory", a->name, bad_runs,
			  nomem);
	}
	free(offsets);
	ent_texts_free(&t);
	cai_model_free(m);
}

static bool
stop_at_second_call(void *ctx, const cai_progress *p)
{
	int		   *calls = ctx;

	(void) p;
	return ++*calls < 2;
}

/*
 * The architecture's gradient check on its task's data with its own default
 * options: the training code's gradient against finite differences.
 */
static void
gradients(const cai_arch *a, const cai_options *o)
{
	cai_train_set set = set_for(a);
	cai_error	err = {0};
	double		e = 1.0;
	cai_status	st = cai_arch_gradcheck(a, o, &set, GRAD_SAMPLES, &e, &err);

	CHECK(st == CAI_OK, "%s: gradient check runs: %s", a->name, err.msg);
	CHECK(st == CAI_OK && e < GRAD_MAX_ERR, "%s: gradient check: max relative error %g (at most %g)", a->name, e,
		  GRAD_MAX_ERR);
	printf("%s: gradient check max relative error %.3g\n", a->name, e);
}

static void
conform(const cai_arch *a)
{
	cai_options *o = options_for(a, 0);
	Bytes		x;
	Bytes		y;
	cai_error	err = {0};
	cai_model  *copied = NULL;
	cai_model  *viewed = NULL;
	uint8_t    *al = NULL;

	CHECK(o != NULL, "%s: its options parse", a->name);
	if (o == NULL)
		return;

	gradients(a, o);

	/* trains; identical bytes */
	x = train(a, o, NULL, NULL);
	y = train(a, o, NULL, NULL);
	CHECK(x.st == CAI_OK && y.st == CAI_OK, "%s: trains", a->name);
	if (x.st != CAI_OK || y.st != CAI_OK)
		goto done;
	CHECK(x.len == y.len && memcmp(x.b, y.b, x.len) == 0, "%s: identical bytes for identical inputs", a->name);
	{
		json_object *mj = json_tokener_parse(x.metrics);
		json_object *v;

		CHECK(mj != NULL && json_object_object_get_ex(mj, "score", &v) && json_object_object_get_ex(mj, "seconds", &v),
			  "%s: metrics with a validation score and the time", a->name);
		json_object_put(mj);
	}

	/* loads copied and in place, answers identically */
	al = aligned_alloc(CAI_FORMAT_ALIGN, (x.len + CAI_FORMAT_ALIGN - 1) / CAI_FORMAT_ALIGN * CAI_FORMAT_ALIGN);
	memcpy(al, x.b, x.len);
	CHECK(cai_model_load(x.b, x.len, false, true, &copied, &err) == CAI_OK, "%s: load copied: %s", a->name, err.msg);
	CHECK(cai_model_load(al, x.len, true, true, &viewed, &err) == CAI_OK, "%s: load in place: %s", a->name, err.msg);
	if (copied != NULL && viewed != NULL)
	{
		char	   *ac = answers(copied);
		char	   *av = answers(viewed);

		CHECK(cai_model_arch(copied) == a && cai_model_arch(viewed) == a, "%s: the loaded model knows its architecture", a->name);
		CHECK(strstr(ac, "error") == NULL && strcmp(ac, av) == 0, "%s: copied and in-place models answer the same", a->name);
		free(ac);
		free(av);
		batch_conform(a, viewed);
		entities_conform(a, viewed);
	}

	/* cancel mid-training */
	{
		int			calls = 0;
		Bytes		c = train(a, o, stop_at_second_call, &calls);

		CHECK(c.st == CAI_ERR_CANCELLED && c.b == NULL && c.metrics == NULL,
			  "%s: a progress callback cancels mid-training, nothing returned (status %d)", a->name, (int) c.st);
		CHECK(calls == 2, "%s: no progress callback after cancelling (%d calls)", a->name, calls);
		bytes_free(&c);
	}
	/* ... also with 2 threads, where they apply (the pool threads stop with it) */
	if (has_option(a, "threads"))
	{
		int			calls = 0;
		cai_options *o2 = options_for(a, 2);
		Bytes		c = train(a, o2, stop_at_second_call, &calls);

		CHECK(c.st == CAI_ERR_CANCELLED && c.b == NULL && c.metrics == NULL,
			  "%s, threads 2: a progress callback cancels mid-training, nothing returned (status %d)", a->name, (int) c.st);
		CHECK(calls == 2, "%s, threads 2: no progress callback after cancelling (%d calls)", a->name, calls);
		bytes_free(&c);
		cai_options_free(o2);
	}

	/* every sampled corruption is refused by the verified load */
	{
		uint8_t    *bad = malloc(x.len);
		int			accepted = 0;
		int			tried = 0;

		for (int k = 0; k < 64; k++)
		{
			size_t		at = (size_t) ((double) k / 64.0 * (double) x.len);
			cai_model  *m = NULL;

			memcpy(bad, x.b, x.len);
			bad[at] ^= (uint8_t) (1u << (k % 8));
			tried++;
			if (cai_model_load(bad, x.len, false, true, &m, &err) == CAI_OK)
			{
				accepted++;
				cai_model_free(m);
			}
			if (cai_model_load(x.b, at, false, true, &m, &err) == CAI_OK)
			{
				accepted++;
				cai_model_free(m);
			}
		}
		CHECK(accepted == 0, "%s: %d of %d flipped or truncated models were accepted", a->name, accepted, 2 * tried);
		free(bad);
	}

	/* the memory estimate bounds what training allocates (also with 2 threads, where they apply) */
	for (int threads = 0; threads <= 2; threads += 2)
	{
		Counter		c = {0, 0};
		cai_allocator counting = {count_alloc, count_free, &c};
		cai_train_set set = set_for(a);
		cai_options *ot;
		size_t		estimate;
		Bytes		m;

		if (threads > 0 && !has_option(a, "threads"))
			break;
		ot = threads == 0 ? o : options_for(a, threads);
		estimate = cai_arch_train_memory(a, ot, &set);
		cai_set_allocator(&counting);
		m = train(a, ot, NULL, NULL);
		bytes_free(&m);
		cai_set_allocator(NULL);
		CHECK(estimate > 0 && c.peak <= estimate,
			  "%s, threads %d (0: default): training allocated at most %zu bytes, its estimate is %zu", a->name, threads, c.peak, estimate);
		CHECK(c.current == 0, "%s: training freed everything it allocated (%zu bytes left)", a->name, c.current);
		printf("%s, threads %d: peak %zu bytes allocated in training, estimate %zu (%.1fx)\n", a->name, threads,
			   c.peak, estimate, c.peak > 0 ? (double) estimate / (double) c.peak : 0.0);
		if (ot != o)
			cai_options_free(ot);
	}

	/* with the rows as token ids too: the estimate counts them and bounds the peak */
	if (a->task->kind == CAI_KIND_CLASSIFY && !a->reads_texts)
	{
		Counter		c = {0, 0};
		cai_allocator counting = {count_alloc, count_free, &c};
		cai_train_set set = set_for(a);
		size_t		from_texts = cai_arch_train_memory(a, o, &set);
		size_t		estimate;
		Bytes		m;
		cai_status	st;

		use_ids = true;
		set = set_for(a);
		estimate = cai_arch_train_memory(a, o, &set);
		cai_set_allocator(&counting);
		m = train(a, o, NULL, NULL);
		st = m.st;
		bytes_free(&m);
		cai_set_allocator(NULL);
		CHECK(st == CAI_OK && estimate > 0 && c.peak <= estimate && estimate <= from_texts,
			  "%s, token ids: training allocated at most %zu bytes, its estimate is %zu (from the texts %zu)",
			  a->name, c.peak, estimate, from_texts);
		printf("%s, token ids: peak %zu bytes allocated in training, estimate %zu (%.1fx; from the texts %.1fx)\n",
			   a->name, c.peak, estimate, c.peak > 0 ? (double) estimate / (double) c.peak : 0.0,
			   c.peak > 0 ? (double) from_texts / (double) c.peak : 0.0);
		use_ids = false;
	}

	/* an architecture that reads the texts refuses rows given as token ids only, with an error */
	if (a->task->kind == CAI_KIND_CLASSIFY && a->reads_texts)
	{
		Bytes		m;

		use_ids = true;
		m = train(a, o, NULL, NULL);
		CHECK(m.st == CAI_ERR_INVALID, "%s refuses rows as token ids only (%d)", a->name, (int) m.st);
		bytes_free(&m);
		use_ids = false;
	}

done:
	cai_model_free(copied);
	cai_model_free(viewed);
	free(al);
	bytes_free(&x);
	bytes_free(&y);
	cai_options_free(o);
}

int
main(void)
{
	int			n = 0;

	{
		static const char *const words[] = {"lives", "in", "paris", "lima", "oslo", "ann", "bob", "chen", "dana"};

		encoder = fixture_bundle(words, 9, 16, 1, 2, 32, 128, false, 5);
	}
	toy_make(&texts, 300, 31, false);
	toy_make(&probe, 20, 32, true);
	CHECK(cai_strtab_init(&words, 256, NULL) == CAI_OK && cai_textclf_tokens_init(&text_ids, &words, 512, NULL) == CAI_OK,
		  "token rows");
	for (size_t i = 0; i < texts.d.n; i++)
		CHECK(cai_textclf_tokens_add(&text_ids, texts.d.texts[i], texts.d.lens[i], NULL) == CAI_OK, "text %zu as ids", i);
	texts_as_ids = texts.d;
	texts_as_ids.texts = NULL;
	texts_as_ids.lens = NULL;
	texts_as_ids.tokens = &text_ids;
	sentences = ner_corpus();
	for (const cai_arch *a; (a = cai_arch_at(n)) != NULL; n++)
		/*
		 * vector sets are not models (test_vectors_train.c); encoders are
		 * imported, not trained (test_encoder_model.c); ensembles are built
		 * from trained classifiers (test_ensemble.c)
		 */
		if (a->task->kind != CAI_KIND_EMBED && a->task->kind != CAI_KIND_ENCODER && a->train != NULL)
			conform(a);
	CHECK(n >= 7, "the registry has the architectures of this build");
	cai_textclf_tokens_free(&text_ids);
	cai_strtab_free(&words);
	toy_free(&texts);
	toy_free(&probe);
	cai_encoder_bundle_free(encoder);
	return check_summary("test_conformance");
}
