/*
 * test_transformer.c: the "transformer" architecture (transformer*.c) on a
 * tiny random encoder (encoder_fixtures.h) and generated data:
 *   - text classification: texts of filler words with one sentiment word
 *     (from 5 positive and 5 negative ones) are separable by that word
 *     alone, so a model that learned anything classifies fresh texts of the
 *     same words almost perfectly: the test asks 90% on 200 new texts, and
 *     that the training loss halves from the first epoch to the last;
 *   - NER: "<name> went to <city> ." sentences with one- and two-word
 *     places and names of one or several word pieces; entity F1 above 0.9
 *     on new sentences of the same words (first piece, all pieces, CRF);
 *   - bytes: identical for the same seed and threads (1 and 2), loaded
 *     copied and in place with identical answers, damaged bytes refused;
 *   - windows: sentences longer than max_length split into windows, every
 *     token tagged, entities at both ends found;
 *   - entities on raw text at the characters of cai_tokenize's tokens;
 *   - cancel through progress; no encoder: CAI_ERR_INVALID; the gradient
 *     check of the head and encoder path.
 */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cai/model.h"
#include "check.h"
#include "encoder_fixtures.h"

static const char *const pos_words[] = {"good", "great", "fine", "nice", "love"};
static const char *const neg_words[] = {"bad", "awful", "poor", "hate", "boring"};
static const char *const fillers[] = {"the", "film", "was", "a", "movie", "it", "is", "and", "plot"};
static const char *const names1[] = {"john", "mary", "peter", "anna"};
/* names the vocabulary lacks: several pieces each ("johnson" is john ##s ##o ##n) */
static const char *const names2[] = {"johnson", "annabel", "maryann"};
static const char *const cities[] = {"paris", "london", "berlin", "rome"};
static const char *const verbs[] = {"went", "flew", "moved", "drove"};

static cai_encoder_bundle *enc;

static cai_encoder_bundle *
make_encoder(int positions)
{
	const char *w[64];
	int			n = 0;

	for (int i = 0; i < 5; i++)
		w[n++] = pos_words[i], w[n++] = neg_words[i];
	for (int i = 0; i < 9; i++)
		w[n++] = fillers[i];
	for (int i = 0; i < 4; i++)
		w[n++] = names1[i], w[n++] = cities[i], w[n++] = verbs[i];
	w[n++] = "to";
	w[n++] = "new";
	w[n++] = "york";
	w[n++] = ".";
	return fixture_bundle(w, n, 32, 2, 2, 64, positions, false, 11);
}

/* ---- classification data ---- */

typedef struct Texts
{
	cai_textclf_data d;
	char	  **texts;
	size_t	   *lens;
	int32_t    *labels;
} Texts;

static void
texts_make(Texts *t, size_t n, uint64_t seed)
{
	cai_rng		r;

	cai_rng_seed(&r, seed);
	t->texts = calloc(n, sizeof(char *));
	t->lens = calloc(n, sizeof(size_t));
	t->labels = calloc(n, sizeof(int32_t));
	for (size_t i = 0; i < n; i++)
	{
		char		buf[256] = "";
		int			len = 3 + (int) cai_rng_below(&r, 6);
		int			at = (int) cai_rng_below(&r, (uint32_t) len);
		int			y = (int) cai_rng_below(&r, 2);

		for (int k = 0; k < len; k++)
		{
			const char *w = k == at ? (y ? pos_words : neg_words)[cai_rng_below(&r, 5)] : fillers[cai_rng_below(&r, 9)];

			strcat(buf, k > 0 ? " " : "");
			strcat(buf, k == 0 && w[0] == 't' ? "The" : w);
		}
		t->texts[i] = strdup(buf);
		t->lens[i] = strlen(buf);
		t->labels[i] = y;
	}
	t->d.n = n;
	t->d.texts = (const char *const *) t->texts;
	t->d.lens = t->lens;
	t->d.labels = t->labels;
}

static void
texts_free(Texts *t)
{
	for (size_t i = 0; i < t->d.n; i++)
		free(t->texts[i]);
	free(t->texts);
	free(t->lens);
	free(t->labels);
}

/* ---- NER data ---- */

typedef struct Sents
{
	cai_ner_data d;
	const char **tok;
	size_t	   *len;
	const char **tag;
	int64_t    *off;
} Sents;

/* n sentences "<filler>* <name> <verb> to <city> <filler>* ." (repeat > 1: long sentences of many such clauses) */
static void
sents_make(Sents *s, size_t n, int repeat, uint64_t seed)
{
	cai_rng		r;
	size_t		cap = n * (size_t) repeat * 12 + 16;
	size_t		k = 0;

	cai_rng_seed(&r, seed);
	s->tok = calloc(cap, sizeof(char *));
	s->len = calloc(cap, sizeof(size_t));
	s->tag = calloc(cap, sizeof(char *));
	s->off = calloc(n + 1, sizeof(int64_t));
	for (size_t i = 0; i < n; i++)
	{
		s->off[i] = (int64_t) k;
		for (int rep = 0; rep < repeat; rep++)
		{
			int			pre = (int) cai_rng_below(&r, 3);

			for (int j = 0; j < pre; j++)
				s->tok[k] = fillers[cai_rng_below(&r, 9)], s->tag[k++] = "O";
			if (cai_rng_below(&r, 3) == 0)
				s->tok[k] = names2[cai_rng_below(&r, 3)], s->tag[k++] = "B-PER";
			else
				s->tok[k] = names1[cai_rng_below(&r, 4)], s->tag[k++] = "B-PER";
			s->tok[k] = verbs[cai_rng_below(&r, 4)], s->tag[k++] = "O";
			s->tok[k] = "to", s->tag[k++] = "O";
			if (cai_rng_below(&r, 3) == 0)
			{
				s->tok[k] = "new", s->tag[k++] = "B-LOC";
				s->tok[k] = "york", s->tag[k++] = "I-LOC";
			}
			else
				s->tok[k] = cities[cai_rng_below(&r, 4)], s->tag[k++] = "B-LOC";
		}
		s->tok[k] = ".", s->tag[k++] = "O";
	}
	s->off[n] = (int64_t) k;
	for (size_t i = 0; i < k; i++)
		s->len[i] = strlen(s->tok[i]);
	memset(&s->d, 0, sizeof(s->d));
	s->d.n = n;
	s->d.offsets = s->off;
	s->d.tokens = s->tok;
	s->d.token_lens = s->len;
	s->d.tags = s->tag;
}

static void
sents_free(Sents *s)
{
	free(s->tok);
	free(s->len);
	free(s->tag);
	free(s->off);
}

/* ---- helpers ---- */

typedef struct Trained
{
	cai_status	st;
	uint8_t    *b;
	size_t		len;
	char	   *metrics;
	char		msg[256];
} Trained;

static Trained
train(const char *task, const char *json, const cai_train_set *set, cai_progress_fn fn, void *ctx)
{
	const cai_arch *a = NULL;
	cai_options *o = NULL;
	cai_error	err = {0};
	Trained		r = {0};

	r.st = cai_task_parse_options(cai_task_find(task), json, &a, &o, &err);
	if (r.st == CAI_OK)
		r.st = cai_arch_train(a, o, set, "{\"test\": true}", fn, ctx, &r.b, &r.len, &r.metrics, &err);
	snprintf(r.msg, sizeof(r.msg), "%s", err.msg);
	if (r.st != CAI_OK && r.st != CAI_ERR_CANCELLED)
		fprintf(stderr, "training %s %s: %s\n", task, json, err.msg);
	cai_options_free(o);
	return r;
}

static void
trained_free(Trained *t)
{
	cai_free(t->b);
	cai_free(t->metrics);
}

static double
metric(const char *metrics, const char *key)
{
	json_object *o = json_tokener_parse(metrics != NULL ? metrics : "{}");
	json_object *v;
	double		d = NAN;

	if (o != NULL && json_object_object_get_ex(o, key, &v))
		d = json_object_get_double(v);
	json_object_put(o);
	return d;
}

/* the training loss of each epoch */
typedef struct Losses
{
	int			n;
	double		loss[64];
} Losses;

static bool
record_loss(void *ctx, const cai_progress *p)
{
	Losses	   *l = ctx;

	if (p->epoch_done && l->n < 64)
		l->loss[l->n++] = p->loss;
	return true;
}

static bool
cancel_at_third(void *ctx, const cai_progress *p)
{
	int		   *calls = ctx;

	(void) p;
	return ++*calls < 3;
}

/* Accuracy of a classifier on texts, through classify_batch (and classify on the first 20). */
static double
accuracy(const cai_model *m, const Texts *t)
{
	float	   *p = malloc(sizeof(float) * 2 * t->d.n);
	size_t		right = 0;
	cai_error	err = {0};

	CHECK(cai_model_classify_batch(m, t->d.texts, t->d.lens, t->d.n, p, &err) == CAI_OK, "classify_batch: %s", err.msg);
	for (size_t i = 0; i < t->d.n; i++)
		right += (p[2 * i + 1] > p[2 * i]) == (t->d.labels[i] == 1);
	for (size_t i = 0; i < 20 && i < t->d.n; i++)
	{
		float		q[2];

		CHECK(cai_model_classify(m, t->d.texts[i], t->d.lens[i], q, &err) == CAI_OK &&
			  fabsf(q[0] - p[2 * i]) < 1e-5f && fabsf(q[0] + q[1] - 1.0f) < 1e-5f,
			  "classify equals classify_batch (text %zu: %g vs %g)", i, q[0], p[2 * i]);
	}
	free(p);
	return (double) right / (double) t->d.n;
}

/* Entity F1 of a tagger on sentences (tags through tag_batch, scored by cai_conll_eval). */
static double
ner_f1(const cai_model *m, const Sents *s)
{
	size_t		n = (size_t) s->off[s->d.n];
	const char **tags = calloc(n, sizeof(char *));
	float	   *scores = calloc(n, sizeof(float));
	cai_error	err = {0};
	char	   *rep = NULL;
	double		f1 = 0;
	bool		scores_ok = true;

	CHECK(cai_model_tag_batch(m, &s->d, tags, scores, &err) == CAI_OK, "tag_batch: %s", err.msg);
	for (size_t i = 0; i < n; i++)
		scores_ok = scores_ok && tags[i] != NULL && scores[i] > 0.0f && scores[i] <= 1.0f;
	CHECK(scores_ok, "every token tagged, scores in (0, 1]");
	if (cai_conll_eval(s->off, s->d.n, s->tag, tags, &rep, &err) == CAI_OK)
		f1 = metric(rep, "f1");
	cai_free(rep);
	free(tags);
	free(scores);
	return f1;
}

/* Bytes load copied and in place; classify/tag answers equal. */
static void
load_both(const Trained *t, const char *what, cai_model **out)
{
	uint8_t    *al = fixture_aligned_copy(t->b, t->len);
	cai_model  *a = NULL;
	cai_model  *b = NULL;
	cai_error	err = {0};

	*out = NULL;
	CHECK(cai_model_load(t->b, t->len, false, true, &a, &err) == CAI_OK, "%s: loads: %s", what, err.msg);
	CHECK(cai_model_load(al, t->len, true, true, &b, &err) == CAI_OK, "%s: loads in place: %s", what, err.msg);
	if (a != NULL && b != NULL)
	{
		CHECK(strcmp(cai_model_architecture(a), "transformer") == 0 && cai_model_encoder_bundle(a) != NULL,
			  "%s: a transformer with its encoder", what);
		if (cai_model_kind(a) == CAI_KIND_CLASSIFY)
		{
			float		p[2];
			float		q[2];

			cai_model_classify(a, "the film was good", 17, p, NULL);
			cai_model_classify(b, "the film was good", 17, q, NULL);
			CHECK(memcmp(p, q, sizeof(p)) == 0, "%s: copied and in place answer alike", what);
		}
		else
		{
			const char *tok[5] = {"john", "went", "to", "paris", "."};
			size_t		len[5] = {4, 4, 2, 5, 1};
			const char *ta[5];
			const char *tb[5];

			cai_model_tag(a, tok, len, 5, ta, NULL, NULL);
			cai_model_tag(b, tok, len, 5, tb, NULL, NULL);
			for (int i = 0; i < 5; i++)
				CHECK(strcmp(ta[i], tb[i]) == 0, "%s: copied and in place tag alike", what);
		}
	}
	cai_model_free(b);
	free(al);
	*out = a;
}

/* Every 97th byte flipped and every 89th truncation: refused. */
static void
damaged(const Trained *t, const char *what)
{
	uint8_t    *c = malloc(t->len);
	int			bad = 0;

	for (size_t i = 0; i < t->len; i += 97)
	{
		cai_model  *m = NULL;

		memcpy(c, t->b, t->len);
		c[i] ^= 0x21;
		if (cai_model_load(c, t->len, false, true, &m, NULL) == CAI_OK)
			bad++;
		cai_model_free(m);
	}
	for (size_t cut = 0; cut < t->len; cut += t->len / 89 + 1)
	{
		cai_model  *m = NULL;

		if (cai_model_load(t->b, cut, false, true, &m, NULL) == CAI_OK)
			bad++;
		cai_model_free(m);
	}
	CHECK(bad == 0, "%s: %d damaged byte strings loaded", what, bad);
	free(c);
}

/* ---- tests ---- */

static void
test_classification(void)
{
	Texts		tr;
	Texts		probe;
	cai_train_set set = {0};
	const char *names[] = {"negative", "positive"};
	const char *json = "{\"architecture\": \"transformer\", \"epochs\": 6, \"learning_rate\": 0.002, "
		"\"batch_size\": 16, \"max_length\": 24, \"warmup\": 0.05, \"dropout\": 0}";
	Trained		a;
	Trained		b;
	cai_model  *m = NULL;

	texts_make(&tr, 240, 1);
	texts_make(&probe, 200, 2);
	set.texts = &tr.d;
	set.label_names = names;
	set.n_labels = 2;

	a = train("sentiment", "{\"architecture\": \"transformer\"}", &set, NULL, NULL);
	CHECK(a.st == CAI_ERR_INVALID && strstr(a.msg, "encoder") != NULL, "no encoder: %s", a.msg);
	trained_free(&a);
	set.encoder = enc;

	{
		Losses		l = {0};

		a = train("sentiment", json, &set, record_loss, &l);
		CHECK(l.n == 6 && l.loss[5] < 0.5 * l.loss[0], "the training loss falls: %g after the first epoch, %g after the last",
			  l.loss[0], l.n > 0 ? l.loss[l.n - 1] : NAN);
		printf("classification: training loss by epoch %.4f .. %.4f\n", l.loss[0], l.n > 0 ? l.loss[l.n - 1] : NAN);
	}
	b = train("sentiment", json, &set, NULL, NULL);
	CHECK(a.st == CAI_OK && b.st == CAI_OK, "trains");
	CHECK(a.len == b.len && a.b != NULL && b.b != NULL && memcmp(a.b, b.b, a.len) == 0, "same seed, same bytes");
	printf("classification metrics: %s\n", a.metrics);
	CHECK(metric(a.metrics, "score") >= 0.9, "validation accuracy %g", metric(a.metrics, "score"));
	if (a.st == CAI_OK)
	{
		load_both(&a, "classifier", &m);
		if (m != NULL)
		{
			double		acc = accuracy(m, &probe);

			printf("classification: accuracy on 200 new texts %.3f\n", acc);
			CHECK(acc >= 0.9, "accuracy on new texts %.3f (at least 0.9)", acc);
			CHECK(cai_model_n_labels(m) == 2 && strcmp(cai_model_label(m, 1), "positive") == 0, "labels");
			CHECK(cai_model_known_word(m, "boring", 6) && !cai_model_known_word(m, "zzzq", 4), "known words");
		}
		cai_model_free(m);
		damaged(&a, "classifier");
	}
	trained_free(&b);

	/* mean pooling, 2 threads, gradient accumulation: deterministic too, and learns */
	{
		const char *j2 = "{\"architecture\": \"transformer\", \"epochs\": 6, \"learning_rate\": 0.002, "
			"\"batch_size\": 8, \"grad_accumulation\": 2, \"max_length\": 24, \"pooling\": \"mean\", \"threads\": 2, "
			"\"freeze_layers\": 1}";
		Trained		c = train("sentiment", j2, &set, NULL, NULL);
		Trained		d = train("sentiment", j2, &set, NULL, NULL);

		CHECK(c.st == CAI_OK && d.st == CAI_OK && c.len == d.len && memcmp(c.b, d.b, c.len) == 0,
			  "threads 2: same seed, same bytes");
		CHECK(c.st == CAI_OK && (a.len != c.len || memcmp(a.b, c.b, a.len) != 0), "other options, other bytes");
		CHECK(metric(c.metrics, "score") >= 0.85, "mean pooling, frozen layer: validation accuracy %g",
			  metric(c.metrics, "score"));
		trained_free(&c);
		trained_free(&d);
	}
	/* cancel */
	{
		int			calls = 0;
		Trained		c = train("sentiment", json, &set, cancel_at_third, &calls);

		CHECK(c.st == CAI_ERR_CANCELLED && c.b == NULL, "cancelled through progress: %d", c.st);
		trained_free(&c);
	}
	/* the gradient check */
	{
		const cai_arch *ar = NULL;
		cai_options *o = NULL;
		double		e = 1;
		cai_error	err = {0};

		cai_task_parse_options(cai_task_find("sentiment"), "{\"architecture\": \"transformer\", \"batch_size\": 4, \"pooling\": \"mean\", \"max_length\": 24}",
							   &ar, &o, &err);
		CHECK(cai_arch_gradcheck(ar, o, &set, 8, &e, &err) == CAI_OK && e < 1e-2, "gradient check %g: %s", e, err.msg);
		printf("classification gradient check: max relative error %.3g\n", e);
		CHECK(cai_arch_train_memory(ar, o, &set) > 0, "a memory estimate");
		cai_options_free(o);
	}
	trained_free(&a);
	texts_free(&tr);
	texts_free(&probe);
}

static void
test_ner(const char *extra, const char *what)
{
	Sents		tr;
	Sents		probe;
	Sents		longs;
	cai_train_set set = {0};
	char		json[512];
	Trained		a;
	Trained		b;
	cai_model  *m = NULL;

	sents_make(&tr, 200, 1, 3);
	sents_make(&probe, 100, 1, 4);
	sents_make(&longs, 10, 6, 5);
	set.sentences = &tr.d;
	set.encoder = enc;
	snprintf(json, sizeof(json), "{\"architecture\": \"transformer\", \"epochs\": 6, \"learning_rate\": 0.002, "
			 "\"batch_size\": 16, \"max_length\": 16, \"dropout\": 0%s}", extra);
	{
		Losses		l = {0};

		a = train("ner", json, &set, record_loss, &l);
		CHECK(l.n == 6 && l.loss[5] < 0.5 * l.loss[0], "%s: the training loss falls: %g after the first epoch, %g after the last",
			  what, l.loss[0], l.n > 0 ? l.loss[l.n - 1] : NAN);
		printf("ner %s: training loss by epoch %.4f .. %.4f\n", what, l.loss[0], l.n > 0 ? l.loss[l.n - 1] : NAN);
	}
	b = train("ner", json, &set, NULL, NULL);
	CHECK(a.st == CAI_OK && b.st == CAI_OK && a.len == b.len && memcmp(a.b, b.b, a.len) == 0, "%s: same bytes", what);
	printf("ner %s: validation F1 %.3f\n", what, metric(a.metrics, "f1"));
	CHECK(metric(a.metrics, "score") >= 0.9, "%s: validation F1 %g", what, metric(a.metrics, "score"));
	if (a.st == CAI_OK)
	{
		load_both(&a, what, &m);
		if (m != NULL)
		{
			double		f1 = ner_f1(m, &probe);
			double		f1l = ner_f1(m, &longs);

			printf("ner %s: F1 on 100 new sentences %.3f, on 10 sentences of %lld tokens (windows) %.3f\n", what, f1,
				   (long long) (longs.off[1] - longs.off[0]), f1l);
			CHECK(f1 >= 0.9, "%s: F1 on new sentences %.3f (at least 0.9)", what, f1);
			CHECK(f1l >= 0.9, "%s: F1 on long sentences in windows %.3f (at least 0.9)", what, f1l);
			CHECK(cai_model_n_labels(m) == 2 && strcmp(cai_model_label(m, 0), "LOC") == 0, "%s: types", what);
			/* entities in raw text */
			{
				const char *text = "And Mary flew to New York.  Anna moved to Rome!";
				cai_entity *e = NULL;
				size_t		ne = 0;
				cai_error	err = {0};
				const char *want[] = {"Mary", "New York", "Anna", "Rome"};

				CHECK(cai_model_entities(m, text, strlen(text), 0, &e, &ne, &err) == CAI_OK, "%s: entities: %s", what,
					  err.msg);
				CHECK(ne == 4, "%s: 4 entities, got %zu", what, ne);
				for (size_t i = 0; i < ne && i < 4; i++)
					CHECK((size_t) (e[i].end - e[i].start) == strlen(want[i]) &&
						  memcmp(text + e[i].start, want[i], strlen(want[i])) == 0 && e[i].cstart == e[i].start,
						  "%s: entity %zu is \"%s\" (got %.*s)", what, i, want[i], (int) (e[i].end - e[i].start),
						  text + e[i].start);
				cai_free(e);
				{
					const char *texts[2] = {text, "peter drove to berlin ."};
					size_t		lens[2] = {strlen(text), 23};
					size_t		offs[3];

					CHECK(cai_model_entities_batch(m, texts, lens, 2, 0, &e, offs, &err) == CAI_OK &&
						  offs[1] == 4 && offs[2] == 6, "%s: entities_batch (%zu, %zu)", what, offs[1], offs[2]);
					cai_free(e);
				}
			}
		}
		cai_model_free(m);
		damaged(&a, what);
	}
	{
		const cai_arch *ar = NULL;
		cai_options *o = NULL;
		double		e = 1;
		cai_error	err = {0};

		snprintf(json, sizeof(json), "{\"architecture\": \"transformer\", \"batch_size\": 4, \"max_length\": 16%s}", extra);
		cai_task_parse_options(cai_task_find("ner"), json, &ar, &o, &err);
		CHECK(cai_arch_gradcheck(ar, o, &set, 8, &e, &err) == CAI_OK && e < 1e-2, "%s: gradient check %g: %s", what, e,
			  err.msg);
		printf("ner %s: gradient check max relative error %.3g\n", what, e);
		cai_options_free(o);
	}
	trained_free(&a);
	trained_free(&b);
	sents_free(&tr);
	sents_free(&probe);
	sents_free(&longs);
}

int
main(void)
{
	enc = make_encoder(64);
	test_classification();
	test_ner("", "first piece");
	test_ner(", \"labeling\": \"all\"", "all pieces");
	test_ner(", \"crf\": true", "crf");
	cai_encoder_bundle_free(enc);
	return check_summary("test_transformer");
}
