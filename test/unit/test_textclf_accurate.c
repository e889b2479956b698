/*
 * test_textclf_accurate.c: the accurate (BiLSTM) text classifier on the
 * generated, seeded data set of textclf_fixtures.h: three classes of English,
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
#include "textclf_fixtures.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static cai_options *
opts_of(const char *json)
{
	cai_options *o = NULL;
	cai_error	err = {0};

	if (cai_textclf_parse_options(json, &o, &err) != CAI_OK)
	{
		fprintf(stderr, "options %s: %s\n", json, err.msg);
		return NULL;
	}
	return o;
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                  */
/* ---------------------------------------------------------------------- */

#define ACC "\"architecture\": \"accurate\", \"dimensions\": 16, "

static Toy	tr,
			va,
			te;

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

/* Same data, options and seed: bit-identical model bytes. */
/*
 * The model's tensors, and another seed gives another model (identical
 * inputs giving identical bytes: test_conformance.c).
 */
static void
test_determinism(void)
{
	Trained		a = train_with("{" ACC "\"epochs\": 2, \"seed\": 7}", &tr.d, NULL, NULL, NULL);
	Trained		c = train_with("{" ACC "\"epochs\": 2, \"seed\": 8}", &tr.d, NULL, NULL, NULL);
	cai_model_file *fa = NULL,
			   *fc = NULL;
	cai_error	err;

	CHECK(a.st == CAI_OK && c.st == CAI_OK, "train: %s %s", a.err.msg, c.err.msg);
	if (a.st != CAI_OK || c.st != CAI_OK)
		goto done;
	CHECK(cai_format_read(a.model, a.len, &fa, &err) == CAI_OK, "read a");
	CHECK(cai_format_read(c.model, c.len, &fc, &err) == CAI_OK, "read c");
	if (fa == NULL || fc == NULL)
		goto done;
	CHECK(fa->n_tensors == 15, "tensor count %d (13 + the two slot tables)", fa->n_tensors);
	{
		const cai_tensor *ea = cai_model_file_tensor(fa, "accurate.lstm.fw.w_ih");
		const cai_tensor *ec = cai_model_file_tensor(fc, "accurate.lstm.fw.w_ih");

		CHECK(ea != NULL && ec != NULL && memcmp(ea->data, ec->data, ea->nbytes) != 0,
			  "another seed gives another model");
	}
	CHECK(strstr(a.metrics, "\"evaluated_on\":\"validation\"") != NULL, "evaluated on a split");
done:
	cai_model_file_free(fa);
	cai_model_file_free(fc);
	trained_free(&a);
	trained_free(&c);
}

/*
 * Data-parallel training (threads > 1): the same seed and thread count give
 * the same bytes (2 and 3 threads, however many batches of epoch 1 ran
 * during the fast model's training), 2 threads reach the single-thread
 * quality bar of test_train_and_predict, and a cancel with threads stops
 * training with nothing returned.  (test_conformance.c: the memory estimate
 * with 2 threads; the test build aborts on an allocation on a pool thread.)
 */
static void
test_threads(void)
{
	for (int th = 2; th <= 3; th++)
	{
		char		o[128];
		Trained		a,
					b;

		snprintf(o, sizeof(o), "{" ACC "\"epochs\": 2, \"seed\": 7, \"dropout\": 0.3, \"threads\": %d}", th);
		a = train_with(o, &tr.d, NULL, NULL, NULL);
		b = train_with(o, &tr.d, NULL, NULL, NULL);
		CHECK(a.st == CAI_OK && b.st == CAI_OK, "threads %d: train: %s %s", th, a.err.msg, b.err.msg);
		if (a.st == CAI_OK && b.st == CAI_OK)
			CHECK(a.len == b.len && memcmp(a.model, b.model, a.len) == 0,
				  "threads %d: the same seed and threads give identical model bytes", th);
		/*
		 * the first batches of epoch 1 on a pool thread during the fast
		 * model's training, none, one, some or all of the epoch (100 > its
		 * batches): the same bytes
		 */
		for (int k = 0; k < 4; k++)
		{
			static const long early[] = {0, 1, 3, 100};
			Trained		e;

			cai_textclf_accurate_early_batches(early[k]);
			e = train_with(o, &tr.d, NULL, NULL, NULL);
			cai_textclf_accurate_early_batches(-1);
			CHECK(e.st == CAI_OK && a.st == CAI_OK && e.len == a.len && memcmp(e.model, a.model, a.len) == 0,
				  "threads %d: %ld early batches give the same model bytes (%s)", th, early[k], e.err.msg);
			trained_free(&e);
		}
		trained_free(&a);
		trained_free(&b);
	}
	{
		Trained		r = train_with("{" ACC "\"epochs\": 8, \"threads\": 2}", &tr.d, &va.d, NULL, NULL);
		cai_model_file *mf = NULL;
		cai_textclf *m = NULL;
		cai_error	err;
		int			bad = 0;

		CHECK(r.st == CAI_OK, "threads 2: train: %s", r.err.msg);
		if (r.st == CAI_OK)
		{
			CHECK(json_num(r.metrics, "macro_f1") > 0.9, "threads 2: macro_f1 %g", json_num(r.metrics, "macro_f1"));
			CHECK(json_num(r.metrics, "accurate_only_accuracy") > 0.8,
				  "threads 2: the BiLSTM learns (%g)", json_num(r.metrics, "accurate_only_accuracy"));
			CHECK(load(&r, &mf, &m, &err) == CAI_OK, "threads 2: load: %s", err.msg);
			if (m != NULL)
			{
				double		acc_te = accuracy_of(m, &te.d, &bad);

				CHECK(acc_te > 0.9, "threads 2: held-out accuracy (with misspellings) %.4f", acc_te);
				CHECK(bad == 0, "threads 2: %d bad distributions", bad);
			}
			cai_textclf_free(m);
			cai_model_file_free(mf);
		}
		trained_free(&r);
	}
	{
		int			calls = 0;
		Trained		c = train_with("{" ACC "\"epochs\": 20, \"threads\": 2}", &tr.d, NULL, stop_at_third_call, &calls);

		CHECK(c.st == CAI_ERR_CANCELLED && c.model == NULL, "threads 2: a progress callback cancels (status %d)",
			  (int) c.st);
		CHECK(calls == 3, "threads 2: no progress callback after cancelling (%d calls)", calls);
		trained_free(&c);
	}
}

/*
 * Batched classification of texts with more distinct tokens than a call's
 * token cache holds (4096): a text of 4500 distinct words is a batch of its
 * own computed position by position, one of 4095 fills the cache so that
 * the short texts' batch empties it; every answer equals
 * cai_textclf_predict's (1e-5, the same label).  max_tokens 5000 lets the
 * texts through.
 */
static void
test_batch_past_the_cache(void)
{
	static const int words[] = {4500, 3, 4095, 0, 7, 4500};
	enum
	{
		N = 6
	};
	Trained		r = train_with("{" ACC "\"max_tokens\": 5000, \"epochs\": 1}", &tr.d, NULL, NULL, NULL);
	cai_model_file *mf = NULL;
	cai_textclf *m = NULL;
	cai_error	err;
	char	   *texts[N];
	size_t		lens[N];
	float		pb[N * 3],
				p1[3];
	double		worst = 0.0;
	int			labels_differ = 0;

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK || load(&r, &mf, &m, &err) != CAI_OK)
		goto done;
	for (int i = 0; i < N; i++)
	{
		texts[i] = malloc((size_t) words[i] * 12 + 1);
		lens[i] = 0;
		for (int w = 0; w < words[i]; w++)
			lens[i] += (size_t) sprintf(texts[i] + lens[i], "%sw%dx%d", w > 0 ? " " : "", i % 3, w);
		texts[i][lens[i]] = '\0';
	}
	CHECK(cai_textclf_predict_batch(m, (const char *const *) texts, lens, N, pb, &err) == CAI_OK,
		  "predict_batch: %s", err.msg);
	for (int i = 0; i < N; i++)
	{
		int			a = 0,
					b = 0;

		CHECK(cai_textclf_predict(m, texts[i], lens[i], p1, &err) == CAI_OK, "predict %d: %s", i, err.msg);
		for (int c = 0; c < 3; c++)
		{
			double		d = fabs((double) pb[i * 3 + c] - (double) p1[c]);

			worst = d > worst ? d : worst;
			a = p1[c] > p1[a] ? c : a;
			b = pb[i * 3 + c] > pb[i * 3 + b] ? c : b;
		}
		labels_differ += a != b;
		free(texts[i]);
	}
	CHECK(worst <= 1e-5 && labels_differ == 0,
		  "texts past the token cache: batch vs single max diff %g, %d labels differ", worst, labels_differ);
done:
	cai_textclf_free(m);
	cai_model_file_free(mf);
	trained_free(&r);
}

static void
test_cancel_and_limits(void)
{
	Trained		r;
	cai_options *o;

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

	/* the memory estimate is the accurate architecture's, not the fast one's */
	o = opts_of("{" ACC "\"epochs\": 1}");
	if (o != NULL)
	{
		size_t		est = cai_textclf_train_memory(o, &tr.d, 3, NULL);
		cai_options *of = opts_of("{\"architecture\": \"fast\", \"dimensions\": 16}");

		CHECK(of != NULL && est != cai_textclf_train_memory(of, &tr.d, 3, NULL), "architecture-specific estimate");
		cai_options_free(of);
	}
	cai_options_free(o);
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
	static const DamageCase cases[] = {
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
	check_damage_cases(&r, cases, N_OF(cases));
	trained_free(&r);
}

/* ---------------------------------------------------------------------- */
/* Zero-copy loading                                                      */
/* ---------------------------------------------------------------------- */

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
	test_threads();
	test_batch_past_the_cache();
	test_cancel_and_limits();
	test_corrupt_models();
	test_zero_copy();

	toy_free(&tr);
	toy_free(&va);
	toy_free(&te);
	return check_summary("test_textclf_accurate");
}
