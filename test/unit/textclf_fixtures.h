/*
 * textclf_fixtures.h: what the text-classification unit tests share
 * (test_textclf.c for the fast architecture, test_textclf_accurate.c for the
 * accurate one): the generated, seeded data set, training and loading
 * helpers, corrupt-model helpers and the zero-copy loading checks.
 *
 * The data: three classes (negative, neutral, positive) of English, Chinese
 * and emoji sentences with filler words, off-class noise words and, in the
 * held-out set, misspellings that only the character n-grams can recognise.
 *
 * Include after check.h.  The including program defines opts_of().
 */
#ifndef CAI_TEXTCLF_FIXTURES_H
#define CAI_TEXTCLF_FIXTURES_H

#include "cai/format.h"
#include "cai/options.h"
#include "cai/textclf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <json-c/json.h>

/* ---------------------------------------------------------------------- */
/* Generated data                                                         */
/* ---------------------------------------------------------------------- */

static const char *const words_pos[] = {
	"good", "great", "excellent", "wonderful", "amazing", "loved", "brilliant",
	"delightful", "superb", "enjoyable", "fantastic", "charming", "beautiful", "moving",
};
static const char *const words_neg[] = {
	"bad", "terrible", "awful", "boring", "hated", "dull", "horrible", "poor",
	"waste", "mess", "disappointing", "stupid", "painful", "tedious",
};
static const char *const words_neu[] = {
	"okay", "average", "fine", "standard", "typical", "ordinary", "moderate",
	"acceptable", "passable", "routine",
};
static const char *const fillers[] = {
	"the", "movie", "film", "story", "plot", "actor", "was", "is", "a", "this",
	"it", "and", "but", "with", "of", "acting", "scenes", "director", "really",
	"very", "quite", "The", "Film", "!", ",", ".", "I", "thought", "overall",
};
/* Chinese: the tokenizer makes each ideograph a token */
static const char *const zh_pos[] = {"\xe5\xa5\xbd\xe7\x9c\x8b", "\xe7\xb2\xbe\xe5\xbd\xa9", "\xe5\x96\x9c\xe6\xac\xa2"};	/* 好看 精彩 喜欢 */
static const char *const zh_neg[] = {"\xe9\x9a\xbe\xe7\x9c\x8b", "\xe6\x97\xa0\xe8\x81\x8a", "\xe8\xae\xa8\xe5\x8e\x8c"};	/* 难看 无聊 讨厌 */
static const char *const zh_neu[] = {"\xe4\xb8\x80\xe8\x88\xac", "\xe6\x99\xae\xe9\x80\x9a", "\xe8\xbf\x98\xe8\xa1\x8c"};	/* 一般 普通 还行 */
static const char *const zh_fill[] = {"\xe8\xbf\x99\xe9\x83\xa8", "\xe7\x94\xb5\xe5\xbd\xb1", "\xe7\x9a\x84", "\xe6\x98\xaf", "\xe5\xbe\x88", "\xe3\x80\x82"};	/* 这部 电影 的 是 很 。 */
/* emoji */
static const char *const emo_pos[] = {"\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd"};	/* 😀 👍 👍🏽 */
static const char *const emo_neg[] = {"\xf0\x9f\x98\xa1", "\xf0\x9f\x91\x8e", "\xf0\x9f\x92\xa9"};	/* 😡 👎 💩 */
static const char *const emo_neu[] = {"\xf0\x9f\x98\x90", "\xf0\x9f\xa4\xb7"};	/* 😐 🤷 */

#define N_OF(a) ((int) (sizeof(a) / sizeof((a)[0])))

static const char *const label_names[] = {"negative", "neutral", "positive"};

typedef struct Toy
{
	cai_textclf_data d;
	char	  **texts;
	size_t	   *lens;
	int32_t    *labels;
} Toy;

static uint64_t toy_state;

static inline uint32_t
toy_rand(uint32_t n)
{
	toy_state = toy_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) ((toy_state >> 33) % n);
}

static inline void
append(char *buf, size_t *len, size_t cap, const char *w, bool space)
{
	size_t		l = strlen(w);

	if (*len + l + 2 >= cap)
		return;
	if (space && *len > 0)
		buf[(*len)++] = ' ';
	memcpy(buf + *len, w, l);
	*len += l;
	buf[*len] = '\0';
}

/* Misspell: drop, double or swap one letter. */
static inline void
misspell(const char *w, char *out, size_t cap)
{
	size_t		l = strlen(w);
	size_t		k = 1 + toy_rand((uint32_t) (l > 2 ? l - 2 : 1));
	int			how = (int) toy_rand(3);

	if (l < 4 || l + 2 > cap)
	{
		snprintf(out, cap, "%s", w);
		return;
	}
	if (how == 0)				/* drop */
		snprintf(out, cap, "%.*s%s", (int) k, w, w + k + 1);
	else if (how == 1)			/* double */
		snprintf(out, cap, "%.*s%c%s", (int) k + 1, w, w[k], w + k + 1);
	else						/* swap */
	{
		snprintf(out, cap, "%s", w);
		out[k] = w[k + 1];
		out[k + 1] = w[k];
	}
}

static inline void
toy_make(Toy *t, size_t n, uint64_t seed, bool misspellings)
{
	toy_state = seed;
	t->texts = calloc(n, sizeof(char *));
	t->lens = calloc(n, sizeof(size_t));
	t->labels = calloc(n, sizeof(int32_t));
	for (size_t i = 0; i < n; i++)
	{
		char		buf[512];
		char		mis[64];
		size_t		len = 0;
		int			y = (int) toy_rand(3);
		int			kind = (int) toy_rand(10);	/* 0-1 Chinese, 2 emoji only, else English */
		int			n_fill = 3 + (int) toy_rand(8);
		int			n_cls = 1 + (int) toy_rand(2);
		int			at[2];

		buf[0] = '\0';
		at[0] = (int) toy_rand((uint32_t) n_fill + 1);
		at[1] = (int) toy_rand((uint32_t) n_fill + 1);
		for (int k = 0; k <= n_fill; k++)
		{
			for (int c = 0; c < n_cls; c++)
			{
				const char *w;

				if (at[c] != k)
					continue;
				if (kind <= 1)
					w = y == 0 ? zh_neg[toy_rand(3)] : y == 1 ? zh_neu[toy_rand(3)] : zh_pos[toy_rand(3)];
				else if (kind == 2 || toy_rand(6) == 0)
					w = y == 0 ? emo_neg[toy_rand(3)] : y == 1 ? emo_neu[toy_rand(2)] : emo_pos[toy_rand(3)];
				else
				{
					w = y == 0 ? words_neg[toy_rand(N_OF(words_neg))] :
						y == 1 ? words_neu[toy_rand(N_OF(words_neu))] :
						words_pos[toy_rand(N_OF(words_pos))];
					if (misspellings && toy_rand(3) == 0)
					{
						misspell(w, mis, sizeof(mis));
						w = mis;
					}
					else if (toy_rand(5) == 0)
						w = y == 2 ? "GREAT" : y == 0 ? "Awful" : "Okay";
				}
				append(buf, &len, sizeof(buf), w, kind > 1);
			}
			if (k < n_fill)
				append(buf, &len, sizeof(buf),
					   kind <= 1 ? zh_fill[toy_rand(N_OF(zh_fill))] : fillers[toy_rand(N_OF(fillers))],
					   kind > 1);
		}
		/* noise: an off-class English word in a fifth of the rows with two class words */
		if (kind > 1 && n_cls == 2 && toy_rand(5) == 0)
		{
			int			z = (y + 1 + (int) toy_rand(2)) % 3;

			append(buf, &len, sizeof(buf),
				   z == 0 ? words_neg[toy_rand(N_OF(words_neg))] :
				   z == 1 ? words_neu[toy_rand(N_OF(words_neu))] :
				   words_pos[toy_rand(N_OF(words_pos))], true);
		}
		t->texts[i] = strdup(buf);
		t->lens[i] = len;
		t->labels[i] = y;
	}
	memset(&t->d, 0, sizeof(t->d));
	t->d.n = n;
	t->d.texts = (const char *const *) t->texts;
	t->d.lens = t->lens;
	t->d.labels = t->labels;
}

static inline void
toy_free(Toy *t)
{
	for (size_t i = 0; i < t->d.n; i++)
		free(t->texts[i]);
	free(t->texts);
	free(t->lens);
	free(t->labels);
}

/* Defined by each test program: its options (with its default architecture), NULL if invalid. */
static cai_options *opts_of(const char *json);

typedef struct Trained
{
	cai_status	st;
	cai_error	err;
	uint8_t    *model;
	size_t		len;
	char	   *metrics;
} Trained;

static inline Trained
train_with(const char *json, const cai_textclf_data *train, const cai_textclf_data *valid,
		   cai_progress_fn fn, void *ctx)
{
	Trained		r;
	cai_options *o = opts_of(json);

	memset(&r, 0, sizeof(r));
	if (o == NULL)
	{
		r.st = CAI_ERR_INVALID;
		return r;
	}
	r.st = cai_textclf_train(o, label_names, 3, train, valid, NULL, "{\"source\": \"toy\"}", fn, ctx,
							 &r.model, &r.len, &r.metrics, &r.err);
	cai_options_free(o);
	return r;
}

static inline void
trained_free(Trained *r)
{
	cai_free(r->model);
	cai_free(r->metrics);
	memset(r, 0, sizeof(*r));
}

static inline double
json_num(const char *js, const char *key)
{
	json_object *o = json_tokener_parse(js);
	json_object *v;
	double		x = -1.0;

	if (o != NULL && json_object_object_get_ex(o, key, &v))
		x = json_object_get_double(v);
	json_object_put(o);
	return x;
}

static inline int
argmax(const float *p, int n)
{
	int			b = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[b])
			b = i;
	return b;
}

/* Accuracy of a loaded model on data; checks every distribution. */
static inline double
accuracy_of(const cai_textclf *m, const cai_textclf_data *d, int *bad_dist)
{
	size_t		ok = 0;

	for (size_t i = 0; i < d->n; i++)
	{
		float		p[3];
		cai_error	err;
		float		sum = 0;

		if (cai_textclf_predict(m, d->texts[i], d->lens[i], p, &err) != CAI_OK)
		{
			(*bad_dist)++;
			continue;
		}
		for (int c = 0; c < 3; c++)
		{
			if (!(p[c] >= 0 && p[c] <= 1))
				(*bad_dist)++;
			sum += p[c];
		}
		if (fabsf(sum - 1.0f) > 1e-5f)
			(*bad_dist)++;
		ok += argmax(p, 3) == d->labels[i];
	}
	return d->n > 0 ? (double) ok / (double) d->n : 0.0;
}

static inline cai_status
load(const Trained *r, cai_model_file **mf, cai_textclf **m, cai_error *err)
{
	cai_status	st = cai_format_read(r->model, r->len, mf, err);

	if (st != CAI_OK)
		return st;
	return cai_textclf_load(*mf, m, err);
}

static inline cai_tensor *
tensor(cai_model_file *mf, const char *name)
{
	return (cai_tensor *) cai_model_file_tensor(mf, name);
}

static inline void
dmg_meta(cai_model_file *mf, const char *from, const char *to)
{
	char	   *p = strstr(mf->meta_json, from);

	if (p != NULL && strlen(to) == strlen(from))
		memcpy(p, to, strlen(to));
}

static inline void
dmg_fingerprint(cai_model_file *mf)
{
	char	   *p = strstr(mf->meta_json, "\"feature_fingerprint\":\"");

	if (p != NULL)
	{
		p += strlen("\"feature_fingerprint\":\"");
		p[0] = p[0] == '0' ? '1' : '0';
	}
}

/* The model bytes in a fresh read-only mapping: any write through the model faults. */
static inline uint8_t *
readonly_copy(const uint8_t *b, size_t n)
{
	uint8_t    *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memcpy(p, b, n);
	if (mprotect(p, n, PROT_READ) != 0)
	{
		munmap(p, n);
		return NULL;
	}
	return p;
}

/* Class probabilities of every text of d (n * n_labels floats, malloc'ed). */
static inline float *
all_probs(const cai_textclf *m, const cai_textclf_data *d)
{
	int			L = cai_textclf_n_labels(m);
	float	   *p = calloc(d->n * (size_t) L + 1, sizeof(float));

	for (size_t i = 0; i < d->n; i++)
		if (cai_textclf_predict(m, d->texts[i], d->lens[i], p + i * (size_t) L, NULL) != CAI_OK)
			p[i * (size_t) L] = -1.0f;
	return p;
}

static inline void
zc_rename(cai_model_file *mf, const char *name)
{
	cai_tensor *t = (cai_tensor *) cai_model_file_tensor(mf, name);

	if (t != NULL)
		t->name[0] = 'x';		/* unknown to the loader: as in a model written before */
}

/*
 * A model loaded in place from a read-only mapping (trusted or verified)
 * predicts bit for bit what the copying path predicts, allocates little, and
 * so does a model without the serialized tables (an older model, which gets
 * private ones).  serialized names the optional tensors of the architecture.
 */
static inline void
check_zero_copy(const uint8_t *model, size_t len, const cai_textclf_data *d,
				const char *const *serialized, int n_serialized, const char *what)
{
	cai_model_file *mf = NULL;
	cai_textclf *m = NULL;
	cai_error	err;
	float	   *want = NULL;
	uint8_t    *ro = readonly_copy(model, len);

	CHECK(ro != NULL, "%s: read-only mapping", what);
	if (ro == NULL)
		return;
	CHECK(cai_format_read(model, len, &mf, &err) == CAI_OK && cai_textclf_load(mf, &m, &err) == CAI_OK,
		  "%s: copy load: %s", what, err.msg);
	if (m != NULL)
		want = all_probs(m, d);
	cai_textclf_free(m);
	cai_model_file_free(mf);
	m = NULL;
	mf = NULL;
	if (want == NULL)
		goto done;

	for (int verify = 0; verify < 2; verify++)
	{
		float	   *got;

		CHECK(cai_format_read_view(ro, len, verify, &mf, &err) == CAI_OK && cai_textclf_load(mf, &m, &err) == CAI_OK,
			  "%s: view load (verify %d): %s", what, verify, err.msg);
		if (m == NULL)
			continue;
		CHECK(cai_textclf_memory(m) * 100 < len, "%s: view load keeps %zu private bytes of %zu",
			  what, cai_textclf_memory(m), len);
		got = all_probs(m, d);
		CHECK(memcmp(got, want, sizeof(float) * d->n * (size_t) cai_textclf_n_labels(m)) == 0,
			  "%s: view predictions bit for bit (verify %d)", what, verify);
		free(got);
		cai_textclf_free(m);
		cai_model_file_free(mf);
		m = NULL;
		mf = NULL;
	}

	/* without the serialized tables (an older model): built privately, same predictions */
	CHECK(cai_format_read(model, len, &mf, &err) == CAI_OK, "%s: read", what);
	if (mf != NULL)
	{
		for (int i = 0; i < n_serialized; i++)
			zc_rename(mf, serialized[i]);
		for (int trusted = 0; trusted < 2; trusted++)
		{
			mf->trusted = trusted;
			CHECK(cai_textclf_load(mf, &m, &err) == CAI_OK, "%s: load without tables: %s", what, err.msg);
			if (m != NULL)
			{
				float	   *got = all_probs(m, d);

				CHECK(memcmp(got, want, sizeof(float) * d->n * (size_t) cai_textclf_n_labels(m)) == 0,
					  "%s: predictions without the serialized tables bit for bit", what);
				free(got);
			}
			cai_textclf_free(m);
			m = NULL;
		}
		cai_model_file_free(mf);
		mf = NULL;
	}
done:
	free(want);
	munmap(ro, len);
}

/* Damage to the serialized tables: rejected when verified, harmless when trusted. */
static inline void
check_table_damage(const uint8_t *model, size_t len, const cai_textclf_data *d,
				   const char *slots, const char *want_msg, const char *what)
{
	for (int k = 0; k < 4; k++)
	{
		cai_model_file *mf = NULL;
		cai_textclf *m = NULL;
		cai_error	err;
		cai_tensor *t;
		int32_t    *s;

		if (cai_format_read(model, len, &mf, &err) != CAI_OK)
			return;
		t = (cai_tensor *) cai_model_file_tensor(mf, slots);
		CHECK(t != NULL, "%s: model has %s", what, slots);
		if (t == NULL)
		{
			cai_model_file_free(mf);
			return;
		}
		s = t->data;
		for (int64_t i = 0; i < t->shape[0]; i++)
		{
			if (k == 0 && s[i] != 0)
			{
				s[i] = INT32_MAX;	/* out of range */
				break;
			}
			if (k == 1)
				s[i] = 1 + (int32_t) (i % 3);	/* full: no empty slot, ids repeat */
			if (k == 2 && s[i] == 0)
			{
				s[i] = 1;		/* one id twice */
				break;
			}
			if (k == 3)
				s[i] = -5;
		}
		CHECK(cai_textclf_load(mf, &m, &err) == CAI_ERR_FORMAT && strstr(err.msg, want_msg) != NULL,
			  "%s: damaged %s (%d) rejected: %s", what, slots, k, err.msg);
		cai_textclf_free(m);
		m = NULL;
		mf->trusted = true;
		CHECK(cai_textclf_load(mf, &m, &err) == CAI_OK, "%s: trusted damaged load: %s", what, err.msg);
		if (m != NULL)
			free(all_probs(m, d));	/* bounded and in bounds (ASan) */
		cai_textclf_free(m);
		cai_model_file_free(mf);
	}
}

/* Progress reports seen by log_progress. */
typedef struct ProgressLog
{
	int			calls;
	int			epochs_done;
	int			cancel_after;	/* cancel on this call (0 = never) */
	bool		sane;			/* every report in range, fractions non-decreasing */
	double		last_fraction;
} ProgressLog;

/* Progress callback: records the reports and cancels on call cancel_after. */
static inline bool
log_progress(void *ctx, const cai_progress *p)
{
	ProgressLog *l = ctx;

	l->calls++;
	if (p->epoch_done)
	{
		l->epochs_done++;
		if (!(p->loss >= 0) || !(p->val_score >= 0 && p->val_score <= 1) || !(p->rows_per_sec > 0))
			l->sane = false;
	}
	if (p->fraction < l->last_fraction - 1e-12 || p->fraction > 1.0)
		l->sane = false;
	l->last_fraction = p->fraction;
	return l->cancel_after == 0 || l->calls < l->cancel_after;
}

/*
 * Damage cases of a model's loading: each damages a freshly read copy of the
 * model bytes; loading must fail with the status want and a message
 * mentioning msg, and return no model.
 */
typedef void (*damage_fn) (cai_model_file *mf);

typedef struct DamageCase
{
	damage_fn	fn;
	cai_status	want;
	const char *msg;
} DamageCase;

static inline void
check_damage_cases(const Trained *r, const DamageCase *cases, int n)
{
	for (int i = 0; i < n; i++)
	{
		cai_model_file *mf = NULL;
		cai_textclf *m = NULL;
		cai_error	err = {0};
		cai_status	st;

		if (cai_format_read(r->model, r->len, &mf, &err) != CAI_OK)
		{
			CHECK(false, "read: %s", err.msg);
			continue;
		}
		cases[i].fn(mf);
		st = cai_textclf_load(mf, &m, &err);
		CHECK(st == cases[i].want && strstr(err.msg, cases[i].msg) != NULL,
			  "damage %d: got %s \"%s\", want %s mentioning \"%s\"", i, cai_status_name(st),
			  err.msg, cai_status_name(cases[i].want), cases[i].msg);
		CHECK(m == NULL, "no model on error");
		cai_textclf_free(m);
		cai_model_file_free(mf);
	}
}

/* Cancels at the progress callback's third call (training has started by then). */
static inline bool
stop_at_third_call(void *ctx, const cai_progress *p)
{
	int		   *calls = ctx;

	(void) p;
	return ++*calls < 3;
}

#endif							/* CAI_TEXTCLF_FIXTURES_H */
