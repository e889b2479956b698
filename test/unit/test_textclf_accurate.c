/*
 * test_textclf_accurate.c: the accurate (BiLSTM) text classifier on the
 * generated, seeded data set of test_textclf.c: three classes of English,
 * Chinese and emoji sentences; the held-out set has misspellings that only
 * the character n-grams can recognise.
 */
#include "cai/format.h"
#include "cai/options.h"
#include "cai/textclf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <json-c/json.h>

#include "check.h"

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

static uint32_t
toy_rand(uint32_t n)
{
	toy_state = toy_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) ((toy_state >> 33) % n);
}

static void
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
static void
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

static void
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
	t->d.n = n;
	t->d.texts = (const char *const *) t->texts;
	t->d.lens = t->lens;
	t->d.labels = t->labels;
}

static void
toy_free(Toy *t)
{
	for (size_t i = 0; i < t->d.n; i++)
		free(t->texts[i]);
	free(t->texts);
	free(t->lens);
	free(t->labels);
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static cai_options *
opts_of(const char *json)
{
	cai_options *o = NULL;
	cai_error	err = {0};

	if (cai_options_parse(cai_textclf_option_defs, cai_textclf_n_option_defs, json, &o, &err) != CAI_OK)
	{
		fprintf(stderr, "options %s: %s\n", json, err.msg);
		return NULL;
	}
	return o;
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
	r.st = cai_textclf_train(o, label_names, 3, train, valid, "{\"source\": \"toy\"}", fn, ctx,
							 &r.model, &r.len, &r.metrics, &r.err);
	cai_options_free(o);
	return r;
}

static void
trained_free(Trained *r)
{
	cai_free(r->model);
	cai_free(r->metrics);
	memset(r, 0, sizeof(*r));
}

static double
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

static int
argmax(const float *p, int n)
{
	int			b = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[b])
			b = i;
	return b;
}

/* Accuracy of a loaded model on data; checks every distribution. */
static double
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

static cai_status
load(const Trained *r, cai_model_file **mf, cai_textclf **m, cai_error *err)
{
	cai_status	st = cai_format_read(r->model, r->len, mf, err);

	if (st != CAI_OK)
		return st;
	return cai_textclf_load(*mf, m, err);
}


/* ---------------------------------------------------------------------- */
/* Tests                                                                  */
/* ---------------------------------------------------------------------- */

#define ACC "\"architecture\": \"accurate\", \"dimensions\": 16, "

static Toy	tr,
			va,
			te;

typedef struct ProgressLog
{
	int			calls;
	int			epochs_done;
	int			cancel_after;	/* cancel on this call (0 = never) */
	bool		sane;
	double		last_fraction;
} ProgressLog;

static bool
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

/* The confusion matrix of the metrics JSON, as gold * n + pred counts. */
static bool
confusion_of(const char *metrics, int n, int64_t *cm)
{
	json_object *o = json_tokener_parse(metrics);
	json_object *c,
			   *mat;
	bool		ok = false;

	if (o != NULL && json_object_object_get_ex(o, "confusion_matrix", &c) &&
		json_object_object_get_ex(c, "matrix", &mat) && (int) json_object_array_length(mat) == n)
	{
		ok = true;
		for (int g = 0; g < n; g++)
		{
			json_object *row = json_object_array_get_idx(mat, g);

			for (int p = 0; p < n; p++)
				cm[g * n + p] = json_object_get_int64(json_object_array_get_idx(row, p));
		}
	}
	json_object_put(o);
	return ok;
}

/* Train, load, predict: held-out accuracy, training-time predictions reproduced, distributions. */
static void
test_train_and_predict(void)
{
	ProgressLog log = {0, 0, 0, true, 0.0};
	Trained		r = train_with("{" ACC "\"epochs\": 8}", &tr.d, &va.d, log_progress, &log);
	cai_model_file *mf = NULL;
	cai_textclf *m = NULL;
	cai_error	err;
	int			bad = 0;
	double		acc_te;
	float		p[3],
				q[3];

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK)
		return;
	CHECK(log.epochs_done == (int) json_num(r.metrics, "epochs_run"),
		  "epoch_done calls %d vs epochs_run", log.epochs_done);
	CHECK(log.sane, "progress values are sane and fractions non-decreasing");
	CHECK(json_num(r.metrics, "validation_rows") == (double) va.d.n, "validation rows");
	CHECK(json_num(r.metrics, "train_rows") == (double) tr.d.n, "train rows");
	CHECK(json_num(r.metrics, "best_epoch") >= 1, "best epoch");
	CHECK(json_num(r.metrics, "macro_f1") > 0.9, "macro_f1 %g", json_num(r.metrics, "macro_f1"));
	CHECK(strstr(r.metrics, "\"classes\":{") != NULL, "classes in metrics");
	CHECK(json_num(r.metrics, "accurate_only_accuracy") > 0.8 && json_num(r.metrics, "fast_only_accuracy") > 0.8,
		  "both members of the ensemble learn (%g, %g)", json_num(r.metrics, "accurate_only_accuracy"),
		  json_num(r.metrics, "fast_only_accuracy"));

	CHECK(load(&r, &mf, &m, &err) == CAI_OK, "load: %s", err.msg);
	if (m != NULL)
	{
		int64_t		want[9],
					got[9] = {0};

		CHECK(strstr(mf->meta_json, "\"architecture\":\"accurate\"") != NULL, "architecture in metadata");
		CHECK(cai_textclf_n_labels(m) == 3 && strcmp(cai_textclf_label(m, 0), "negative") == 0, "labels");
		CHECK(cai_textclf_memory(m) > 0, "memory");

		/* inference reproduces the training-time validation predictions exactly */
		for (size_t i = 0; i < va.d.n; i++)
		{
			if (cai_textclf_predict(m, va.d.texts[i], va.d.lens[i], p, &err) != CAI_OK)
				bad++;
			got[va.d.labels[i] * 3 + argmax(p, 3)]++;
		}
		CHECK(confusion_of(r.metrics, 3, want) && memcmp(want, got, sizeof(want)) == 0,
			  "confusion matrix after load differs from the training-time one");
		CHECK(accuracy_of(m, &va.d, &bad) == json_num(r.metrics, "accuracy"), "validation accuracy");
		acc_te = accuracy_of(m, &te.d, &bad);
		CHECK(acc_te > 0.9, "held-out accuracy (with misspellings) %.4f", acc_te);
		CHECK(bad == 0, "%d bad distributions", bad);

		/* predictions do not depend on earlier calls (no state in the model) */
		CHECK(cai_textclf_predict(m, te.d.texts[0], te.d.lens[0], p, &err) == CAI_OK &&
			  cai_textclf_predict(m, te.d.texts[1], te.d.lens[1], q, &err) == CAI_OK &&
			  cai_textclf_predict(m, te.d.texts[0], te.d.lens[0], q, &err) == CAI_OK &&
			  memcmp(p, q, sizeof(p)) == 0, "repeatable predictions");

		CHECK(cai_textclf_predict(m, "", 0, p, &err) == CAI_OK &&
			  fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-5f, "empty text");
		CHECK(cai_textclf_predict(m, NULL, 0, p, &err) == CAI_OK, "NULL empty text");
		CHECK(cai_textclf_predict(m, "\xff\xfe zzzz qqqq", 11, p, &err) == CAI_OK &&
			  fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-5f, "unknown words");
		CHECK(cai_textclf_predict(m, "the film was wonderfull and brillliant", 38, p, &err) == CAI_OK &&
			  argmax(p, 3) == 2, "misspelled positive words");
		CHECK(cai_textclf_predict(m, "\xe8\xbf\x99\xe9\x83\xa8\xe7\x94\xb5\xe5\xbd\xb1\xe5\xbe\x88\xe6\x97\xa0\xe8\x81\x8a", 21, p, &err) == CAI_OK &&
			  argmax(p, 3) == 0, "Chinese negative sentence");
		CHECK(cai_textclf_predict(m, NULL, 5, p, &err) == CAI_ERR_INVALID, "NULL text with a length");
	}
	cai_textclf_free(m);
	cai_model_file_free(mf);
	trained_free(&r);
}

static char *
meta_without_time(const char *meta_json)
{
	json_object *o = json_tokener_parse(meta_json);
	json_object *v;
	char	   *s;

	if (o == NULL)
		return NULL;
	if (json_object_object_get_ex(o, "metrics", &v))
		json_object_object_del(v, "seconds");
	if (json_object_object_get_ex(o, "provenance", &v))
		json_object_object_del(v, "seconds");
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* Same data, options and seed: bit-identical tensors and metadata (but time). */
static void
test_determinism(void)
{
	Trained		a = train_with("{" ACC "\"epochs\": 2, \"seed\": 7}", &tr.d, NULL, NULL, NULL);
	Trained		b = train_with("{" ACC "\"epochs\": 2, \"seed\": 7}", &tr.d, NULL, NULL, NULL);
	Trained		c = train_with("{" ACC "\"epochs\": 2, \"seed\": 8}", &tr.d, NULL, NULL, NULL);
	cai_model_file *fa = NULL,
			   *fb = NULL,
			   *fc = NULL;
	cai_error	err;

	CHECK(a.st == CAI_OK && b.st == CAI_OK && c.st == CAI_OK, "train: %s %s %s", a.err.msg, b.err.msg, c.err.msg);
	if (a.st != CAI_OK || b.st != CAI_OK || c.st != CAI_OK)
		goto done;
	CHECK(cai_format_read(a.model, a.len, &fa, &err) == CAI_OK, "read a");
	CHECK(cai_format_read(b.model, b.len, &fb, &err) == CAI_OK, "read b");
	CHECK(cai_format_read(c.model, c.len, &fc, &err) == CAI_OK, "read c");
	if (fa == NULL || fb == NULL || fc == NULL)
		goto done;
	CHECK(fa->n_tensors == fb->n_tensors && fa->n_tensors == 15, "tensor count %d (13 + the two slot tables)", fa->n_tensors);
	for (int i = 0; i < fa->n_tensors && i < fb->n_tensors; i++)
	{
		/* the embedded fast model's metadata holds its training time: compare its parts */
		if (strcmp(fa->tensors[i].name, "accurate.fast_model") == 0)
		{
			cai_model_file *ga = NULL,
					   *gb = NULL;
			char	   *ma,
					   *mb;

			CHECK(cai_format_read(fa->tensors[i].data, fa->tensors[i].nbytes, &ga, &err) == CAI_OK &&
				  cai_format_read(fb->tensors[i].data, fb->tensors[i].nbytes, &gb, &err) == CAI_OK,
				  "embedded fast models read");
			if (ga == NULL || gb == NULL)
				continue;
			ma = meta_without_time(ga->meta_json);
			mb = meta_without_time(gb->meta_json);
			CHECK(ma != NULL && mb != NULL && strcmp(ma, mb) == 0, "fast metadata differs");
			free(ma);
			free(mb);
			CHECK(ga->n_tensors == gb->n_tensors, "fast tensor count");
			for (int j = 0; j < ga->n_tensors && j < gb->n_tensors; j++)
				CHECK(ga->tensors[j].nbytes == gb->tensors[j].nbytes &&
					  memcmp(ga->tensors[j].data, gb->tensors[j].data, ga->tensors[j].nbytes) == 0,
					  "fast tensor %s differs", ga->tensors[j].name);
			cai_model_file_free(ga);
			cai_model_file_free(gb);
			continue;
		}
		CHECK(strcmp(fa->tensors[i].name, fb->tensors[i].name) == 0 &&
			  fa->tensors[i].nbytes == fb->tensors[i].nbytes &&
			  memcmp(fa->tensors[i].data, fb->tensors[i].data, fa->tensors[i].nbytes) == 0,
			  "tensor %s differs between identical trainings", fa->tensors[i].name);
	}
	{
		char	   *ma = meta_without_time(fa->meta_json);
		char	   *mb = meta_without_time(fb->meta_json);

		CHECK(ma != NULL && mb != NULL && strcmp(ma, mb) == 0, "metadata differs:\n%s\n%s", ma, mb);
		free(ma);
		free(mb);
	}
	{
		const cai_tensor *ea = cai_model_file_tensor(fa, "accurate.lstm.fw.w_ih");
		const cai_tensor *ec = cai_model_file_tensor(fc, "accurate.lstm.fw.w_ih");

		CHECK(ea != NULL && ec != NULL && memcmp(ea->data, ec->data, ea->nbytes) != 0,
			  "another seed gives another model");
	}
	CHECK(strstr(a.metrics, "\"evaluated_on\":\"validation\"") != NULL, "evaluated on a split");
done:
	cai_model_file_free(fa);
	cai_model_file_free(fb);
	cai_model_file_free(fc);
	trained_free(&a);
	trained_free(&b);
	trained_free(&c);
}

static void
test_cancel_and_limits(void)
{
	ProgressLog log = {0, 0, 1, true, 0.0};
	Trained		r;
	cai_options *o;

	r = train_with("{" ACC "\"epochs\": 50}", &tr.d, NULL, log_progress, &log);
	CHECK(r.st == CAI_ERR_CANCELLED, "cancel: %s", cai_status_name(r.st));
	CHECK(r.model == NULL && r.metrics == NULL, "nothing returned when cancelled");
	CHECK(log.calls == 1, "no callback after cancelling (%d)", log.calls);
	trained_free(&r);

	r = train_with("{" ACC "\"epochs\": 50, \"max_seconds\": 1e-9}", &tr.d, NULL, NULL, NULL);
	CHECK(r.st == CAI_OK, "max_seconds: %s", r.err.msg);
	if (r.st == CAI_OK)
		CHECK(json_num(r.metrics, "epochs_run") == 1, "epochs_run %g", json_num(r.metrics, "epochs_run"));
	trained_free(&r);

	/* no validation rows, no n-grams, no vocabulary: still a model that predicts */
	r = train_with("{" ACC "\"epochs\": 2, \"validation_fraction\": 0, \"minn\": 0, \"maxn\": 0, "
				   "\"min_count\": 1000000}", &tr.d, NULL, NULL, NULL);
	CHECK(r.st == CAI_OK, "no features: %s", r.err.msg);
	if (r.st == CAI_OK)
	{
		cai_model_file *mf = NULL;
		cai_textclf *m = NULL;
		cai_error	err;
		float		p[3];

		CHECK(strstr(r.metrics, "\"evaluated_on\":\"train\"") != NULL, "evaluated on train");
		CHECK(json_num(r.metrics, "best_epoch") == 2, "last epoch kept");
		CHECK(load(&r, &mf, &m, &err) == CAI_OK, "load a model with no vocabulary: %s", err.msg);
		if (m != NULL)
			CHECK(cai_textclf_predict(m, "good", 4, p, &err) == CAI_OK &&
				  fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-5f, "predict");
		cai_textclf_free(m);
		cai_model_file_free(mf);
	}
	trained_free(&r);

	/* odd texts: NUL bytes, invalid UTF-8, empty rows, more tokens than max_tokens */
	{
		static const char *const texts[] = {
			"good\0movie", "\xff\xfe bad \xc3", "", "\0", "a b c d e f g h i j k l m n o p good",
			"bad\0\0bad", "\xe5\xa5\xbd", "okay \xf0\x9f\x98\x90", "x\0y okay",
		};
		static const size_t lens[] = {10, 8, 0, 1, 36, 8, 3, 9, 8};
		static const int32_t labels[] = {2, 0, 1, 1, 2, 0, 2, 1, 1};
		cai_textclf_data d = {9, texts, lens, labels};

		r = train_with("{" ACC "\"max_tokens\": 4, \"epochs\": 3, \"batch_size\": 2}", &d, NULL, NULL, NULL);
		CHECK(r.st == CAI_OK, "odd texts: %s", r.err.msg);
		if (r.st == CAI_OK)
		{
			cai_model_file *mf = NULL;
			cai_textclf *m = NULL;
			cai_error	err;
			float		p[3];

			CHECK(load(&r, &mf, &m, &err) == CAI_OK, "load: %s", err.msg);
			for (int i = 0; m != NULL && i < 9; i++)
				CHECK(cai_textclf_predict(m, texts[i], lens[i], p, &err) == CAI_OK &&
					  fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-5f, "predict odd text %d", i);
			cai_textclf_free(m);
			cai_model_file_free(mf);
		}
		trained_free(&r);
	}

	/* memory estimate: positive, above the model, and not the fast one's */
	o = opts_of("{" ACC "\"epochs\": 1}");
	if (o != NULL)
	{
		size_t		est = cai_textclf_train_memory(o, &tr.d, 3);
		cai_options *of = opts_of("{\"architecture\": \"fast\", \"dimensions\": 16}");

		r = train_with("{" ACC "\"epochs\": 1}", &tr.d, NULL, NULL, NULL);
		CHECK(r.st == CAI_OK && est > r.len, "estimate %zu vs model %zu", est, r.len);
		CHECK(of != NULL && est != cai_textclf_train_memory(of, &tr.d, 3), "architecture-specific estimate");
		trained_free(&r);
		cai_options_free(of);
	}
	cai_options_free(o);
}

/* Damage a freshly read model; expect the status and a message mentioning what. */
typedef void (*damage_fn) (cai_model_file *mf);

static cai_tensor *
tensor(cai_model_file *mf, const char *name)
{
	return (cai_tensor *) cai_model_file_tensor(mf, name);
}

static void
dmg_meta(cai_model_file *mf, const char *from, const char *to)
{
	char	   *p = strstr(mf->meta_json, from);

	if (p != NULL && strlen(to) == strlen(from))
		memcpy(p, to, strlen(to));
}

static void
dmg_offsets_order(cai_model_file *mf)
{
	int32_t    *off = tensor(mf, "accurate.vocab.offsets")->data;

	off[2] = off[1] - 1;
}

static void
dmg_word_dup(cai_model_file *mf)
{
	cai_tensor *tb = tensor(mf, "accurate.vocab.bytes");
	int32_t    *off = tensor(mf, "accurate.vocab.offsets")->data;
	char	   *b = tb->data;

	/* make word 1 equal to word 0 when both have the same length, else break the NUL */
	if (off[1] - off[0] == off[2] - off[1])
		memcpy(b + off[1], b + off[0], (size_t) (off[1] - off[0]));
	else
		b[off[1] - 1] = 'x';
}

static void
dmg_buckets_order(cai_model_file *mf)
{
	int32_t    *b = tensor(mf, "accurate.buckets")->data;

	b[1] = b[0];
}

static void
dmg_lstm_nan(cai_model_file *mf)
{
	float	   *w = tensor(mf, "accurate.lstm.bw.w_hh")->data;

	w[5] = NAN;
}

static void
dmg_output_shape(cai_model_file *mf)
{
	cai_tensor *t = tensor(mf, "accurate.output.weight");

	t->shape[0] -= 1;
	t->nbytes -= (size_t) t->shape[1] * 4;
}

static void
dmg_embedding_rows(cai_model_file *mf)
{
	cai_tensor *t = tensor(mf, "accurate.embedding");

	t->shape[0] -= 1;
	t->nbytes -= (size_t) t->shape[1] * 4;
}

static void
dmg_no_bias(cai_model_file *mf)
{
	strcpy(tensor(mf, "accurate.output.bias")->name, "accurate.output.bia");
}

static void
dmg_fingerprint(cai_model_file *mf)
{
	char	   *p = strstr(mf->meta_json, "\"feature_fingerprint\":\"");

	if (p != NULL)
	{
		p += strlen("\"feature_fingerprint\":\"");
		p[0] = p[0] == '0' ? '1' : '0';
	}
}

static void
dmg_hidden(cai_model_file *mf)
{
	dmg_meta(mf, "\"hidden\":16", "\"hidden\":17");
}

static void
dmg_no_section(cai_model_file *mf)
{
	dmg_meta(mf, "\"accurate\":{", "\"accuratX\":{");
}

static void
dmg_fast_model(cai_model_file *mf)
{
	cai_tensor *t = tensor(mf, "accurate.fast_model");

	((uint8_t *) t->data)[t->nbytes / 2] ^= 0x40;	/* its checksum fails */
}

static void
dmg_fast_missing(cai_model_file *mf)
{
	strcpy(tensor(mf, "accurate.fast_model")->name, "accurate.fast_modeL");
}

static void
test_corrupt_models(void)
{
	static const struct
	{
		damage_fn	fn;
		cai_status	want;
		const char *msg;
	}			cases[] = {
		{dmg_offsets_order, CAI_ERR_FORMAT, "accurate.vocab.offsets"},
		{dmg_word_dup, CAI_ERR_FORMAT, "vocabulary word"},
		{dmg_buckets_order, CAI_ERR_FORMAT, "accurate.buckets"},
		{dmg_lstm_nan, CAI_ERR_FORMAT, "non-finite"},
		{dmg_output_shape, CAI_ERR_FORMAT, "accurate.output.weight"},
		{dmg_embedding_rows, CAI_ERR_FORMAT, "accurate.embedding"},
		{dmg_no_bias, CAI_ERR_FORMAT, "accurate.output.bias"},
		{dmg_fingerprint, CAI_ERR_VERSION, "tokenizer"},
		{dmg_hidden, CAI_ERR_FORMAT, "accurate.lstm.fw.w_ih"},
		{dmg_no_section, CAI_ERR_FORMAT, "\"accurate\""},
		{dmg_fast_model, CAI_ERR_FORMAT, "accurate.fast_model"},
		{dmg_fast_missing, CAI_ERR_FORMAT, "accurate.fast_model"},
	};
	Trained		r = train_with("{" ACC "\"epochs\": 1}", &tr.d, NULL, NULL, NULL);

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK)
		return;
	for (int i = 0; i < N_OF(cases); i++)
	{
		cai_model_file *mf = NULL;
		cai_textclf *m = NULL;
		cai_error	err = {0};
		cai_status	st;

		if (cai_format_read(r.model, r.len, &mf, &err) != CAI_OK)
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
	trained_free(&r);
}

/* ---------------------------------------------------------------------- */
/* Zero-copy loading                                                      */
/* ---------------------------------------------------------------------- */

/* The model bytes in a fresh read-only mapping: any write through the model faults. */
static uint8_t *
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
static float *
all_probs(const cai_textclf *m, const cai_textclf_data *d)
{
	int			L = cai_textclf_n_labels(m);
	float	   *p = calloc(d->n * (size_t) L + 1, sizeof(float));

	for (size_t i = 0; i < d->n; i++)
		if (cai_textclf_predict(m, d->texts[i], d->lens[i], p + i * (size_t) L, NULL) != CAI_OK)
			p[i * (size_t) L] = -1.0f;
	return p;
}

static void
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
static void
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
static void
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

static void
test_zero_copy(void)
{
	static const char *const tabs[] = {"accurate.vocab.slots", "accurate.buckets.slots"};
	Trained		r = train_with("{" ACC "\"dimensions\": 16, \"epochs\": 2}", &tr.d, &va.d, NULL, NULL);

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK)
		return;
	check_zero_copy(r.model, r.len, &te.d, tabs, 2, "accurate");
	check_table_damage(r.model, r.len, &te.d, "accurate.vocab.slots", "vocabulary", "accurate vocabulary");
	check_table_damage(r.model, r.len, &te.d, "accurate.buckets.slots", "bucket index", "accurate buckets");
	trained_free(&r);
}

int
main(void)
{
	cai_blas_set_threads(1);
	toy_make(&tr, 1500, 1, false);
	toy_make(&va, 300, 2, false);
	toy_make(&te, 600, 3, true);

	test_train_and_predict();
	test_determinism();
	test_cancel_and_limits();
	test_corrupt_models();
	test_zero_copy();

	toy_free(&tr);
	toy_free(&va);
	toy_free(&te);
	return check_summary("test_textclf_accurate");
}
