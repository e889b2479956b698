/*
 * test_textclf_vectors.c: text classification trained with pretrained word
 * vectors (cai_train_set.vectors), both architectures.
 *
 * The crafted task: "sentiment words" (random letter strings, so their
 * character n-grams say nothing) whose vectors lie in a positive or a
 * negative cluster.  In the training rows they carry no signal at all: each
 * row has one sentiment word of a random class next to an anchor word that
 * decides the label, and the anchors' vectors lie in their class's cluster.
 * The held-out rows have a sentiment word and fillers only.  Without vectors
 * a model can only guess them; with vectors it learns the clusters'
 * direction from the anchors and reads it off the sentiment words.
 *
 * Also: freeze_vectors keeps the initialised rows bit-equal to the vectors,
 * dimensions follow the vectors or must equal them, coverage in the metrics,
 * lower-case fallback (exact word first), provenance in the metadata,
 * determinism, and no vectors (NULL or empty) giving the same bytes.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "cai/format.h"
#include "cai/model.h"

#define DIM			16
#define N_SENT		30			/* sentiment words per class */
#define N_ANCHOR	5			/* anchor words per class */
#define N_FILL		20			/* fillers; the first half have vectors */
#define N_TRAIN		(4 * N_SENT)	/* every sentiment word once with each label */
#define N_VALID		80
#define N_TEST		200

static uint64_t rng_state = 12345;

static uint32_t
rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) ((rng_state >> 33) % n);
}

static float
rnd_unit(void)
{
	return (float) rnd(1u << 24) / (float) (1u << 24) * 2.0f - 1.0f;
}

/* Words: sentiment (pos, neg), anchors (pos, neg), fillers; random letters. */
static char sent[2][N_SENT][8];
static char anchor[2][N_ANCHOR][8];
static char fill[N_FILL][8];

static void
make_word(char *w)
{
	for (int i = 0; i < 6; i++)
		w[i] = (char) ('a' + rnd(26));
	w[6] = '\0';
}

/* The vector set: built as a vector set's cai_word_vectors view would be. */
#define MAX_VEC 256
static const char *vwords[MAX_VEC];
static size_t vlens[MAX_VEC];
static float vvals[MAX_VEC * DIM];
static char vstore[MAX_VEC][8];
static size_t n_vec;
static float dir[DIM];			/* the positive direction */

static void
add_vec(const char *w, int cls)		/* cls 1 positive, 0 negative, -1 none */
{
	float	   *v = vvals + n_vec * DIM;

	strcpy(vstore[n_vec], w);
	vwords[n_vec] = vstore[n_vec];
	vlens[n_vec] = strlen(w);
	for (int d = 0; d < DIM; d++)
		v[d] = 0.3f * rnd_unit() + (cls < 0 ? 0.0f : (cls == 1 ? 0.5f : -0.5f) * dir[d]);
	n_vec++;
}

typedef struct Rows
{
	size_t		n;
	char	  **txt;
	size_t	   *len;
	int32_t    *lab;
	cai_textclf_data d;
} Rows;

static void
rows_free(Rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->txt[i]);
	free(r->txt);
	free(r->len);
	free(r->lab);
}

/*
 * Training rows (with_anchor): the anchor decides the label; row i has
 * sentiment word (i / 4) of class (i / 2) % 2 with label i % 2, so each
 * sentiment word comes once with each label.  Held-out rows: a sentiment
 * word of the label's class between fillers.
 */
static void
make_rows(Rows *r, size_t n, bool with_anchor)
{
	r->n = n;
	r->txt = calloc(n, sizeof(char *));
	r->len = calloc(n, sizeof(size_t));
	r->lab = calloc(n, sizeof(int32_t));
	for (size_t i = 0; i < n; i++)
	{
		char		buf[128];
		int			y = with_anchor ? (int) (i % 2) : (int) rnd(2);
		int			sc = with_anchor ? (int) (i / 2 % 2) : y;
		int			si = with_anchor ? (int) (i / 4 % N_SENT) : (int) rnd(N_SENT);

		if (with_anchor)
			snprintf(buf, sizeof(buf), "%s %s %s %s", fill[rnd(N_FILL)], anchor[y][rnd(N_ANCHOR)],
					 sent[sc][si], fill[rnd(N_FILL)]);
		else
			snprintf(buf, sizeof(buf), "%s %s %s", fill[rnd(N_FILL)], sent[sc][si], fill[rnd(N_FILL)]);
		r->txt[i] = strdup(buf);
		r->len[i] = strlen(buf);
		r->lab[i] = y;
	}
	r->d = (cai_textclf_data) {n, (const char *const *) r->txt, r->len, r->lab};
}

static Rows train_rows, valid_rows, test_rows;
static const char *const names[] = {"negative", "positive"};

static cai_word_vectors
the_vectors(void)
{
	return (cai_word_vectors) {n_vec, DIM, vwords, vlens, vvals};
}

typedef struct Trained
{
	cai_status	st;
	cai_error	err;
	uint8_t    *model;
	size_t		len;
	char	   *metrics;
} Trained;

static Trained
train(const char *opts_json, const cai_word_vectors *vec, const char *prov)
{
	const cai_task *task = cai_task_find("text_classification");
	const cai_arch *a = NULL;
	cai_options *o = NULL;
	cai_train_set set = {0};
	Trained		r;

	memset(&r, 0, sizeof(r));
	set.texts = &train_rows.d;
	set.valid_texts = &valid_rows.d;
	set.label_names = names;
	set.n_labels = 2;
	set.vectors = vec;
	r.st = cai_task_parse_options(task, opts_json, &a, &o, &r.err);
	if (r.st == CAI_OK)
		r.st = cai_arch_train(a, o, &set, prov, NULL, NULL, &r.model, &r.len, &r.metrics, &r.err);
	cai_options_free(o);
	return r;
}

static void
trained_free(Trained *t)
{
	cai_free(t->model);
	cai_free(t->metrics);
}

/* Accuracy of a model on the test rows. */
static double
test_accuracy(const Trained *t)
{
	cai_model  *m = NULL;
	cai_error	err = {0};
	float	   *p = malloc(sizeof(float) * 2 * N_TEST);
	size_t		ok = 0;

	if (t->st != CAI_OK || cai_model_load(t->model, t->len, false, true, &m, &err) != CAI_OK ||
		cai_model_classify_batch(m, (const char *const *) test_rows.txt, test_rows.len, N_TEST, p, &err) != CAI_OK)
	{
		fprintf(stderr, "test_accuracy: %s\n", err.msg);
		cai_model_free(m);
		free(p);
		return -1;
	}
	for (size_t i = 0; i < N_TEST; i++)
		ok += (p[2 * i + 1] > p[2 * i]) == (test_rows.lab[i] == 1);
	cai_model_free(m);
	free(p);
	return (double) ok / N_TEST;
}

/* json at the path a.b (NULL if absent). */
static json_object *
jget(json_object *o, const char *a, const char *b)
{
	json_object *v = NULL;

	if (o == NULL || !json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b != NULL && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return v;
}

/* The metadata of model bytes, parsed (NULL on failure). */
static json_object *
meta_of(const uint8_t *bytes, size_t len)
{
	cai_model_file *mf = NULL;
	json_object *o = NULL;

	if (cai_format_read(bytes, len, &mf, NULL) == CAI_OK)
		o = json_tokener_parse(mf->meta_json);
	cai_model_file_free(mf);
	return o;
}

/* Row of word w in the embedding of a model (prefix "fast" or "accurate"); NULL if not in its vocabulary. */
static const float *
emb_row(const cai_model_file *mf, const char *prefix, const char *w)
{
	char		name[64];
	const cai_tensor *bytes,
			   *offs,
			   *emb;

	snprintf(name, sizeof(name), "%s.vocab.bytes", prefix);
	bytes = cai_model_file_tensor(mf, name);
	snprintf(name, sizeof(name), "%s.vocab.offsets", prefix);
	offs = cai_model_file_tensor(mf, name);
	snprintf(name, sizeof(name), "%s.embedding", prefix);
	emb = cai_model_file_tensor(mf, name);
	if (bytes == NULL || offs == NULL || emb == NULL)
		return NULL;
	for (int64_t v = 0; v + 1 < offs->shape[0]; v++)
	{
		const int32_t *o = offs->data;

		if (strcmp((const char *) bytes->data + o[v], w) == 0)
			return (const float *) emb->data + v * emb->shape[1];
	}
	return NULL;
}

/* Does object o have key a (even with a null value)? */
static bool
has_key(json_object *o, const char *a)
{
	return o != NULL && json_object_object_get_ex(o, a, NULL);
}

static const float *
vec_of(const char *w)
{
	for (size_t i = 0; i < n_vec; i++)
		if (strcmp(vwords[i], w) == 0)
			return vvals + i * DIM;
	return NULL;
}

/* The vector training should give word w (lower-case): its own, else the first whose lower case it is. */
static const float *
vec_for(const char *w)
{
	const float *v = vec_of(w);

	for (size_t i = 0; i < n_vec && v == NULL; i++)
		if (strcasecmp(vwords[i], w) == 0)
			v = vvals + i * DIM;
	return v;
}

/* The distinct words of the training rows, into words (room for 256); their count. */
static int
train_words(const char **words)
{
	int			n = 0;
	static char store[256][8];

	for (size_t i = 0; i < train_rows.n; i++)
	{
		char	   *s = strdup(train_rows.txt[i]);

		for (char *w = strtok(s, " "); w != NULL; w = strtok(NULL, " "))
		{
			int			j = 0;

			while (j < n && strcmp(words[j], w) != 0)
				j++;
			if (j == n && n < 256)
			{
				strcpy(store[n], w);
				words[n] = store[n];
				n++;
			}
		}
		free(s);
	}
	return n;
}

static void
setup(void)
{
	for (int d = 0; d < DIM; d++)
		dir[d] = rnd_unit() > 0 ? 1.0f : -1.0f;
	for (int c = 0; c < 2; c++)
	{
		for (int i = 0; i < N_SENT; i++)
			make_word(sent[c][i]);
		for (int i = 0; i < N_ANCHOR; i++)
			make_word(anchor[c][i]);
	}
	for (int i = 0; i < N_FILL; i++)
		make_word(fill[i]);
	/* a word the data lack, first: must not disturb anything */
	add_vec("unrelated", 1);
	/* a cased form before the exact one of the first filler: the exact word wins */
	{
		char		up[8];

		strcpy(up, fill[0]);
		up[0] = (char) (up[0] - 'a' + 'A');
		add_vec(up, 1);
	}
	for (int c = 0; c < 2; c++)
	{
		for (int i = 0; i < N_SENT; i++)
			add_vec(sent[c][i], c);
		for (int i = 0; i < N_ANCHOR; i++)
			add_vec(anchor[c][i], c);
	}
	for (int i = 0; i < N_FILL / 2; i++)
		add_vec(fill[i], -1);
	/* the second half of the fillers only in capitals: found through lower-casing */
	{
		char		up[8];

		strcpy(up, fill[N_FILL / 2]);
		for (char *p = up; *p; p++)
			*p = (char) (*p - 'a' + 'A');
		add_vec(up, -1);
	}
	make_rows(&train_rows, N_TRAIN, true);
	make_rows(&valid_rows, N_VALID, false);
	make_rows(&test_rows, N_TEST, false);
}

/* Both architectures: clearly better with vectors, deterministic, coverage, dimensions. */
static void
test_arch(const char *arch, const char *extra)
{
	char		js[256],
				js_dim[256],
				js_bad[256];
	cai_word_vectors vec = the_vectors();
	cai_word_vectors empty = {0};
	Trained		a,
				b,
				c,
				e,
				bad;
	double		acc_without,
				acc_with;
	json_object *m;

	snprintf(js, sizeof(js), "{\"architecture\": \"%s\"%s}", arch, extra);
	snprintf(js_dim, sizeof(js_dim), "{\"architecture\": \"%s\", \"dimensions\": %d%s}", arch, DIM, extra);
	snprintf(js_bad, sizeof(js_bad), "{\"architecture\": \"%s\", \"dimensions\": %d%s}", arch, DIM + 4, extra);

	a = train(js_dim, NULL, NULL);
	b = train(js, &vec, NULL);
	CHECK(a.st == CAI_OK && b.st == CAI_OK, "%s: trained: %s / %s", arch, a.err.msg, b.err.msg);
	acc_without = test_accuracy(&a);
	acc_with = test_accuracy(&b);
	printf("%s: held-out accuracy without vectors %.3f, with vectors %.3f\n", arch, acc_without, acc_with);
	CHECK(acc_with >= 0.85 && acc_with >= acc_without + 0.2,
		  "%s: vectors help: %.3f against %.3f", arch, acc_with, acc_without);

	/* coverage: every vocabulary word but half the fillers... found: through the capitals one more */
	m = b.metrics != NULL ? json_tokener_parse(b.metrics) : NULL;
	{
		json_object *cw = jget(m, "vector_coverage", "words");
		json_object *ct = jget(m, "vector_coverage", "tokens");
		json_object *cf = jget(m, "vector_coverage", "words_found");
		int64_t		words = 0,
					found = 0,
					toks = 0,
					toks_found = 0;
		const char *tw[256];
		int			ntw = train_words(tw);

		/* expected, from the rows: every word is a token */
		for (int j = 0; j < ntw; j++)
		{
			words++;
			found += vec_for(tw[j]) != NULL;
		}
		for (size_t i = 0; i < train_rows.n; i++)
		{
			char	   *s = strdup(train_rows.txt[i]);

			for (char *w = strtok(s, " "); w != NULL; w = strtok(NULL, " "))
			{
				toks++;
				toks_found += vec_for(w) != NULL;
			}
			free(s);
		}
		CHECK(cw != NULL && ct != NULL && cf != NULL &&
			  json_object_get_int64(cf) == found &&
			  fabs(json_object_get_double(cw) - (double) found / (double) words) < 1e-9 &&
			  fabs(json_object_get_double(ct) - (double) toks_found / (double) toks) < 1e-9,
			  "%s: coverage %s, want %lld of %lld words, %lld of %lld tokens", arch,
			  m != NULL ? json_object_to_json_string(jget(m, "vector_coverage", NULL)) : "(none)",
			  (long long) found, (long long) words, (long long) toks_found, (long long) toks);
	}
	CHECK(jget(m, "vector_coverage", NULL) != NULL && a.metrics != NULL && strstr(a.metrics, "vector_coverage") == NULL,
		  "%s: coverage only with vectors", arch);
	json_object_put(m);

	/* the dimension follows the vectors, or must equal them */
	m = b.st == CAI_OK ? meta_of(b.model, b.len) : NULL;
	CHECK(json_object_get_int(jget(m, arch, "dimensions")) == DIM &&
		  json_object_get_int(jget(m, "options", "dimensions")) == DIM &&
		  has_key(jget(m, "options", NULL), "word_vectors") && jget(m, "metrics", "vector_coverage") != NULL,
		  "%s: dimensions %d from the vectors, vector options and coverage stored", arch,
		  json_object_get_int(jget(m, arch, "dimensions")));
	json_object_put(m);
	m = a.st == CAI_OK ? meta_of(a.model, a.len) : NULL;
	CHECK(m != NULL && jget(m, "options", NULL) != NULL && !has_key(jget(m, "options", NULL), "word_vectors") &&
		  !has_key(jget(m, "options", NULL), "freeze_vectors"),
		  "%s: without vectors the options stored are those of before", arch);
	json_object_put(m);
	bad = train(js_bad, &vec, NULL);
	CHECK(bad.st == CAI_ERR_INVALID && strstr(bad.err.msg, "16") != NULL && strstr(bad.err.msg, "20") != NULL &&
		  strstr(bad.err.msg, "dimensions") != NULL, "%s: dimension mismatch: %s", arch, bad.err.msg);
	trained_free(&bad);
	c = train(js_dim, &vec, NULL);
	CHECK(c.st == CAI_OK && c.len == b.len && memcmp(c.model, b.model, b.len) == 0,
		  "%s: dimensions set to the vectors' size: the same model", arch);
	trained_free(&c);

	/* deterministic; no vectors and empty vectors: the same bytes */
	c = train(js, &vec, NULL);
	CHECK(c.st == CAI_OK && c.len == b.len && memcmp(c.model, b.model, b.len) == 0, "%s: deterministic with vectors", arch);
	trained_free(&c);
	e = train(js_dim, &empty, NULL);
	CHECK(e.st == CAI_OK && e.len == a.len && memcmp(e.model, a.model, a.len) == 0,
		  "%s: empty vectors train as none", arch);
	trained_free(&e);

	/* provenance: what the SQL layer passes arrives in the metadata */
	c = train(js, &vec, "{\"source\": \"t\", \"vectors\": {\"name\": \"toy\", \"version\": 3, \"checksum\": \"ab12\"}}");
	m = c.st == CAI_OK ? meta_of(c.model, c.len) : NULL;
	CHECK(m != NULL && jget(m, "provenance", "vectors") != NULL &&
		  strcmp(json_object_get_string(jget(jget(m, "provenance", "vectors"), "name", NULL)), "toy") == 0 &&
		  json_object_get_int(jget(jget(m, "provenance", "vectors"), "version", NULL)) == 3 &&
		  strcmp(json_object_get_string(jget(jget(m, "provenance", "vectors"), "checksum", NULL)), "ab12") == 0 &&
		  strcmp(json_object_get_string(jget(m, "provenance", "source")), "t") == 0,
		  "%s: provenance vectors in the metadata: %s", arch,
		  m != NULL ? json_object_to_json_string(jget(m, "provenance", NULL)) : c.err.msg);
	json_object_put(m);
	trained_free(&c);

	trained_free(&a);
	trained_free(&b);
}

/*
 * Every training word with a vector has its row bit for bit in the frozen
 * model fr (the exact word over a cased form listed before it, the capitals
 * of a word that has no lower-case vector).
 */
static void
check_frozen(const Trained *fr, const char *what)
{
	cai_model_file *mf = NULL;
	const char *tw[256];
	int			ntw = train_words(tw);
	int			with_vec = 0,
				equal = 0;

	printf("%s: held-out accuracy %.3f\n", what, test_accuracy(fr));
	CHECK(test_accuracy(fr) >= 0.85, "%s: accuracy %.3f", what, test_accuracy(fr));
	if (fr->st != CAI_OK || cai_format_read(fr->model, fr->len, &mf, NULL) != CAI_OK)
		return;
	for (int i = 0; i < ntw; i++)
	{
		const float *row = emb_row(mf, "accurate", tw[i]);
		const float *want = vec_for(tw[i]);

		CHECK(row != NULL, "%s: %s in the vocabulary", what, tw[i]);
		with_vec += want != NULL;
		equal += row != NULL && want != NULL && memcmp(row, want, sizeof(float) * DIM) == 0;
	}
	CHECK(with_vec > 2 * N_SENT && equal == with_vec, "%s: %d of %d rows equal their vectors",
		  what, equal, with_vec);
	cai_model_file_free(mf);
}

/*
 * accurate: freeze_vectors keeps the rows bit-equal to the vectors, with
 * one thread and with two (each drops them from its class of rows); the
 * ensemble's fast model gets them too.
 */
static void
test_freeze(void)
{
	cai_word_vectors vec = the_vectors();
	Trained		fr = train("{\"architecture\": \"accurate\", \"freeze_vectors\": true}", &vec, NULL);
	Trained		fr2 = train("{\"architecture\": \"accurate\", \"freeze_vectors\": true, \"threads\": 2}", &vec, NULL);
	Trained		ft = train("{\"architecture\": \"accurate\"}", &vec, NULL);
	cai_model_file *mf = NULL;
	const char *tw[256];
	int			ntw = train_words(tw);
	int			with_vec = 0,
				moved = 0;

	CHECK(fr.st == CAI_OK && fr2.st == CAI_OK && ft.st == CAI_OK, "accurate: trained: %s / %s / %s",
		  fr.err.msg, fr2.err.msg, ft.err.msg);
	check_frozen(&fr, "accurate, freeze_vectors");
	check_frozen(&fr2, "accurate, freeze_vectors, 2 threads");
	trained_free(&fr2);
	/* fine-tuned: they move */
	if (ft.st == CAI_OK && cai_format_read(ft.model, ft.len, &mf, NULL) == CAI_OK)
	{
		const cai_tensor *fast = cai_model_file_tensor(mf, "accurate.fast_model");
		json_object *fm = fast != NULL ? meta_of(fast->data, (size_t) fast->shape[0]) : NULL;

		for (int i = 0; i < ntw; i++)
		{
			const float *row = emb_row(mf, "accurate", tw[i]);
			const float *want = vec_for(tw[i]);

			with_vec += want != NULL;
			moved += row != NULL && want != NULL && memcmp(row, want, sizeof(float) * DIM) != 0;
		}
		CHECK(moved == with_vec, "accurate, fine-tuned: %d of %d rows moved", moved, with_vec);
		/* the ensemble's fast model trained with the vectors too */
		CHECK(json_object_get_int(jget(fm, "fast", "dimensions")) == DIM &&
			  jget(fm, "metrics", "vector_coverage") != NULL,
			  "accurate: its fast model has the vectors' size and coverage");
		json_object_put(fm);
	}
	cai_model_file_free(mf);
	/* the option exists only where it means something */
	{
		Trained		x = train("{\"architecture\": \"fast\", \"freeze_vectors\": true}", &vec, NULL);

		CHECK(x.st == CAI_ERR_INVALID && strstr(x.err.msg, "freeze_vectors") != NULL,
			  "fast has no freeze_vectors: %s", x.err.msg);
		trained_free(&x);
	}
	trained_free(&fr);
	trained_free(&ft);
}

/*
 * Both architectures: vector words the training rows lack get vocabulary
 * rows that keep their vectors bit for bit (no training row moves them), up
 * to vector_words of them, none with 0; a word the tokenizer would split
 * gets none; coverage counts the training words only.
 */
static void
test_vector_words_of(const char *arch)
{
	char		js[3][128];
	static const char *extra[] = {"zqxunseen", "Zqxcased", "two words", "zqxthird"};
	const char *w[MAX_VEC + 4];
	size_t		l[MAX_VEC + 4];
	float	   *v = malloc(sizeof(float) * (n_vec + 4) * DIM);
	cai_word_vectors vec;
	Trained		all,
				one,
				none,
				base;
	cai_model_file *mf = NULL;
	json_object *ma = NULL,
			   *mb = NULL;

	memcpy(w, vwords, sizeof(char *) * n_vec);
	memcpy(l, vlens, sizeof(size_t) * n_vec);
	memcpy(v, vvals, sizeof(float) * n_vec * DIM);
	for (int i = 0; i < 4; i++)
	{
		w[n_vec + i] = extra[i];
		l[n_vec + i] = strlen(extra[i]);
		for (int d = 0; d < DIM; d++)
			v[(n_vec + i) * DIM + d] = 0.25f * (float) (i + 1) - 0.01f * (float) d;
	}
	vec = (cai_word_vectors) {n_vec + 4, DIM, w, l, v};
	snprintf(js[0], sizeof(js[0]), "{\"architecture\": \"%s\", \"epochs\": 2}", arch);
	snprintf(js[1], sizeof(js[1]), "{\"architecture\": \"%s\", \"epochs\": 2, \"vector_words\": 1}", arch);
	snprintf(js[2], sizeof(js[2]), "{\"architecture\": \"%s\", \"epochs\": 2, \"vector_words\": 0}", arch);
	all = train(js[0], &vec, NULL);
	one = train(js[1], &vec, NULL);
	none = train(js[2], &vec, NULL);
	base = train(js[0], &(cai_word_vectors) {n_vec, DIM, vwords, vlens, vvals}, NULL);
	CHECK(all.st == CAI_OK && one.st == CAI_OK && none.st == CAI_OK && base.st == CAI_OK,
		  "%s vector_words: trained: %s / %s / %s / %s", arch, all.err.msg, one.err.msg, none.err.msg, base.err.msg);
	if (all.st == CAI_OK && cai_format_read(all.model, all.len, &mf, NULL) == CAI_OK)
	{
		const float *r0 = emb_row(mf, arch, "zqxunseen");
		const float *r1 = emb_row(mf, arch, "zqxcased");
		const float *r3 = emb_row(mf, arch, "zqxthird");

		CHECK(r0 != NULL && memcmp(r0, v + n_vec * DIM, sizeof(float) * DIM) == 0 &&
			  r1 != NULL && memcmp(r1, v + (n_vec + 1) * DIM, sizeof(float) * DIM) == 0 &&
			  r3 != NULL && memcmp(r3, v + (n_vec + 3) * DIM, sizeof(float) * DIM) == 0,
			  "%s vector_words: words only the vectors have keep their vectors (lower-cased)", arch);
		CHECK(emb_row(mf, arch, "two words") == NULL, "%s vector_words: no row for a word of two tokens", arch);
	}
	cai_model_file_free(mf);
	mf = NULL;
	if (one.st == CAI_OK && none.st == CAI_OK)
	{
		json_object *m1 = meta_of(one.model, one.len);
		json_object *m0 = meta_of(none.model, none.len);

		CHECK(json_object_get_int(jget(m1, arch, "vocab_size")) ==
			  json_object_get_int(jget(m0, arch, "vocab_size")) + 1,
			  "%s vector_words 1: one vector word added", arch);
		json_object_put(m1);
		json_object_put(m0);
	}
	if (none.st == CAI_OK && cai_format_read(none.model, none.len, &mf, NULL) == CAI_OK)
		CHECK(emb_row(mf, arch, "zqxunseen") == NULL, "%s vector_words 0: training words only", arch);
	cai_model_file_free(mf);
	ma = all.st == CAI_OK ? meta_of(all.model, all.len) : NULL;
	mb = base.st == CAI_OK ? meta_of(base.model, base.len) : NULL;
	CHECK(ma != NULL && mb != NULL &&
		  json_object_get_int(jget(ma, "metrics", "vector_coverage") != NULL ?
							  json_object_object_get(jget(ma, "metrics", "vector_coverage"), "words_found") : NULL) ==
		  json_object_get_int(jget(mb, "metrics", "vector_coverage") != NULL ?
							  json_object_object_get(jget(mb, "metrics", "vector_coverage"), "words_found") : NULL),
		  "%s vector_words: coverage counts the training words only", arch);
	json_object_put(ma);
	json_object_put(mb);
	trained_free(&all);
	trained_free(&one);
	trained_free(&none);
	trained_free(&base);
	free(v);
}

static void
test_vector_words(void)
{
	test_vector_words_of("accurate");
	test_vector_words_of("fast");
}

/* Bad vectors are refused before training. */
static void
test_bad_vectors(void)
{
	cai_word_vectors vec = the_vectors();
	float		saved = vvals[5];
	Trained		t;

	vvals[5] = NAN;
	t = train("{\"architecture\": \"fast\"}", &vec, NULL);
	CHECK(t.st == CAI_ERR_INVALID && strstr(t.err.msg, "NaN") != NULL, "NaN refused: %s", t.err.msg);
	trained_free(&t);
	vvals[5] = saved;
	vec.words = NULL;
	t = train("{\"architecture\": \"accurate\"}", &vec, NULL);
	CHECK(t.st == CAI_ERR_INVALID && strstr(t.err.msg, "lack") != NULL, "no words refused: %s", t.err.msg);
	trained_free(&t);
	/* the estimate follows the vectors' size */
	{
		const cai_task *task = cai_task_find("text_classification");
		const cai_arch *a = NULL;
		cai_options *o = NULL;
		cai_train_set set = {0};
		size_t		m0,
					m1;
		cai_word_vectors big = the_vectors();

		set.texts = &train_rows.d;
		set.label_names = names;
		set.n_labels = 2;
		big.dim = 256;			/* only the size is read */
		CHECK(cai_task_parse_options(task, "{\"architecture\": \"accurate\"}", &a, &o, NULL) == CAI_OK, "options");
		m0 = cai_arch_train_memory(a, o, &set);
		set.vectors = &big;
		m1 = cai_arch_train_memory(a, o, &set);
		CHECK(m0 > 0 && m1 > m0, "memory estimate with 256-dimensional vectors %zu > %zu", m1, m0);
		cai_options_free(o);
	}
}

int
main(void)
{
	setup();
	test_arch("fast", "");
	test_arch("accurate", "");
	test_freeze();
	test_vector_words();
	test_bad_vectors();
	rows_free(&train_rows);
	rows_free(&valid_rows);
	rows_free(&test_rows);
	return check_summary("test_textclf_vectors");
}
