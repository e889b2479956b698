/*
 * test_textclf.c: the fast text classifier on a generated, seeded data set.
 *
 * Three classes (negative, neutral, positive) of English, Chinese and emoji
 * sentences with filler words, off-class noise words and, in the held-out
 * set, misspellings that only the character n-grams can recognise.
 */
#include "cai/format.h"
#include "cai/options.h"
#include "cai/textclf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <json-c/json.h>

#include "../../src/core/textclf_internal.h"
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
	char		buf[1024];

	/* these tests are about the fast architecture unless they say otherwise */
	if (json != NULL && strstr(json, "architecture") == NULL && json[0] == '{')
	{
		const char *rest = json + 1 + strspn(json + 1, " ");

		snprintf(buf, sizeof(buf), "{\"architecture\": \"fast\"%s%s", *rest == '}' ? "" : ", ", rest);
		json = buf;
	}
	else if (json == NULL)
		json = "{\"architecture\": \"fast\"}";
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

static Toy	tr,
			va,
			te;

/* Train, load, predict: accuracy, agreement with training-time metrics, distributions. */
static void
test_train_and_predict(void)
{
	ProgressLog log = {0, 0, 0, true, 0.0};
	Trained		r = train_with("{\"dimensions\": 24}", &tr.d, &va.d, log_progress, &log);
	cai_model_file *mf = NULL;
	cai_textclf *m = NULL;
	cai_error	err;
	int			bad = 0;
	double		acc_va,
				acc_te;
	float		p[3];

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK)
		return;
	CHECK(log.epochs_done == (int) json_num(r.metrics, "epochs_run"),
		  "epoch_done calls %d vs epochs_run", log.epochs_done);
	CHECK(log.sane, "progress values are sane and fractions non-decreasing");
	CHECK(json_num(r.metrics, "validation_rows") == (double) va.d.n, "validation rows");
	CHECK(json_num(r.metrics, "train_rows") == (double) tr.d.n, "train rows");
	CHECK(json_num(r.metrics, "best_epoch") >= 1, "best epoch");
	/* automatic epochs: 100000 row updates over 1500 rows, at most 50 passes */
	CHECK(json_num(r.metrics, "epochs_planned") == 50, "epochs planned %g", json_num(r.metrics, "epochs_planned"));
	CHECK(json_num(r.metrics, "seconds") >= 0, "seconds");

	CHECK(load(&r, &mf, &m, &err) == CAI_OK, "load: %s", err.msg);
	if (m != NULL)
	{
		CHECK(cai_textclf_n_labels(m) == 3, "labels");
		CHECK(strcmp(cai_textclf_label(m, 2), "positive") == 0, "label name");
		CHECK(cai_textclf_label(m, 3) == NULL && cai_textclf_label(m, -1) == NULL, "label out of range");
		CHECK(cai_textclf_memory(m) > 0, "memory");

		/* inference reproduces the training-time validation predictions */
		acc_va = accuracy_of(m, &va.d, &bad);
		CHECK(acc_va == json_num(r.metrics, "accuracy"),
			  "validation accuracy after load %.6f, during training %.6f", acc_va,
			  json_num(r.metrics, "accuracy"));
		acc_te = accuracy_of(m, &te.d, &bad);
		CHECK(acc_te > 0.9, "held-out accuracy (with misspellings) %.4f", acc_te);
		CHECK(bad == 0, "%d bad distributions", bad);

		/* empty and odd texts still give a distribution */
		CHECK(cai_textclf_predict(m, "", 0, p, &err) == CAI_OK, "empty text");
		CHECK(fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-5f, "empty text sums to 1");
		CHECK(cai_textclf_predict(m, NULL, 0, p, &err) == CAI_OK, "NULL empty text");
		CHECK(cai_textclf_predict(m, "\xff\xfe zzzz qqqq", 11, p, &err) == CAI_OK, "unknown words");
		CHECK(fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-5f, "unknown words sum to 1");
		CHECK(cai_textclf_predict(m, "wonderfull brillliant", 21, p, &err) == CAI_OK &&
			  argmax(p, 3) == 2, "misspelled positive words");
		CHECK(cai_textclf_predict(m, "\xe8\xbf\x99\xe9\x83\xa8\xe7\x94\xb5\xe5\xbd\xb1\xe5\xbe\x88\xe6\x97\xa0\xe8\x81\x8a", 21, p, &err) == CAI_OK &&
			  argmax(p, 3) == 0, "Chinese negative sentence");
		CHECK(cai_textclf_predict(m, "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", 8, p, &err) == CAI_OK &&
			  argmax(p, 3) == 2, "emoji with skin tone");
		CHECK(cai_textclf_predict(m, NULL, 5, p, &err) == CAI_ERR_INVALID, "NULL text with length");
		CHECK(cai_textclf_predict(NULL, "x", 1, p, &err) == CAI_ERR_INVALID, "NULL model");

		/* a very long text is cut at max_tokens, not refused */
		{
			size_t		n = 200000;
			char	   *big = malloc(n);

			for (size_t i = 0; i < n; i++)
				big[i] = (i % 5 == 4) ? ' ' : "good"[i % 5];
			CHECK(cai_textclf_predict(m, big, n, p, &err) == CAI_OK && argmax(p, 3) == 2, "long text");
			free(big);
		}
	}
	cai_textclf_free(m);
	cai_model_file_free(mf);

	/* the metadata carries what the SQL layer shows */
	if (cai_format_read(r.model, r.len, &mf, &err) == CAI_OK)
	{
		json_object *meta = json_tokener_parse(mf->meta_json);
		json_object *v,
				   *w;

		CHECK(json_object_object_get_ex(meta, "task", &v) &&
			  strcmp(json_object_get_string(v), "text_classification") == 0, "task");
		CHECK(json_object_object_get_ex(meta, "architecture", &v) &&
			  strcmp(json_object_get_string(v), "fast") == 0, "architecture");
		CHECK(json_object_object_get_ex(meta, "options", &v) &&
			  json_object_object_get_ex(v, "dimensions", &w) && json_object_get_int(w) == 24, "options");
		CHECK(json_object_object_get_ex(meta, "provenance", &v) &&
			  json_object_object_get_ex(v, "source", &w) &&
			  strcmp(json_object_get_string(w), "toy") == 0 &&
			  json_object_object_get_ex(v, "seed", &w) &&
			  json_object_object_get_ex(v, "train_rows", &w), "provenance merged");
		CHECK(json_object_object_get_ex(meta, "metrics", &v) &&
			  json_object_object_get_ex(v, "confusion_matrix", &w), "metrics in metadata");
		CHECK(cai_model_file_tensor(mf, "fast.vocab.bytes") != NULL &&
			  cai_model_file_tensor(mf, "fast.vocab.offsets") != NULL &&
			  cai_model_file_tensor(mf, "fast.buckets") != NULL &&
			  cai_model_file_tensor(mf, "fast.embedding") != NULL, "tensors");
		json_object_put(meta);
		cai_model_file_free(mf);
	}
	trained_free(&r);
}

/* Same data, options and seed: bit-identical model bytes. */
static void
test_determinism(void)
{
	const char *opts = "{\"epochs\": 3, \"dropout\": 0.1, \"seed\": 7}";
	Trained		a = train_with(opts, &tr.d, NULL, NULL, NULL);
	Trained		b = train_with(opts, &tr.d, NULL, NULL, NULL);
	Trained		c = train_with("{\"epochs\": 3, \"dropout\": 0.1, \"seed\": 8}", &tr.d, NULL, NULL, NULL);
	cai_model_file *fa = NULL,
			   *fb = NULL,
			   *fc = NULL;
	cai_error	err;

	CHECK(a.st == CAI_OK && b.st == CAI_OK && c.st == CAI_OK, "train: %s %s", a.err.msg, b.err.msg);
	if (a.st != CAI_OK || b.st != CAI_OK || c.st != CAI_OK)
		goto done;
	CHECK(cai_format_read(a.model, a.len, &fa, &err) == CAI_OK, "read a");
	CHECK(cai_format_read(b.model, b.len, &fb, &err) == CAI_OK, "read b");
	CHECK(cai_format_read(c.model, c.len, &fc, &err) == CAI_OK, "read c");
	if (fa == NULL || fb == NULL || fc == NULL)
		goto done;
	CHECK(fa->n_tensors == fb->n_tensors, "tensor count");
	for (int i = 0; i < fa->n_tensors && i < fb->n_tensors; i++)
	{
		CHECK(strcmp(fa->tensors[i].name, fb->tensors[i].name) == 0 &&
			  fa->tensors[i].nbytes == fb->tensors[i].nbytes &&
			  memcmp(fa->tensors[i].data, fb->tensors[i].data, fa->tensors[i].nbytes) == 0,
			  "tensor %s differs between identical trainings", fa->tensors[i].name);
	}
	{
		CHECK(strcmp(fa->meta_json, fb->meta_json) == 0, "metadata differs:\n%s\n%s", fa->meta_json, fb->meta_json);
		CHECK(a.len == b.len && memcmp(a.model, b.model, a.len) == 0,
			  "identical trainings give identical model bytes (no wall-clock time inside)");
	}
	{
		const cai_tensor *ea = cai_model_file_tensor(fa, "fast.embedding");
		const cai_tensor *ec = cai_model_file_tensor(fc, "fast.embedding");

		CHECK(ea != NULL && ec != NULL &&
			  (ea->nbytes != ec->nbytes || memcmp(ea->data, ec->data, ea->nbytes) != 0),
			  "another seed gives another model");
	}
	CHECK(strstr(a.metrics, "\"evaluated_on\":\"validation\"") != NULL, "evaluated on validation");
	CHECK(json_num(a.metrics, "validation_rows") > 0 &&
		  json_num(a.metrics, "validation_rows") < (double) tr.d.n * 0.15, "stratified split size %g",
		  json_num(a.metrics, "validation_rows"));
done:
	cai_model_file_free(fa);
	cai_model_file_free(fb);
	cai_model_file_free(fc);
	trained_free(&a);
	trained_free(&b);
	trained_free(&c);
}

/*
 * Lock-free training (threads > 1): not reproducible bit for bit, so what
 * is checked is its quality (the bar of test_train_and_predict), that
 * "threads": 1 is the one-thread model byte for byte (its metadata without
 * "threads", as before the option existed), that the metadata records more
 * threads, and that a cancel with threads stops training with nothing
 * returned.  (test_conformance.c: the memory estimate with 2 threads; the
 * test build aborts on an allocation on a pool thread.)
 */
/* A model trained with th threads clears the one-thread bar and records its threads. */
static void
check_threads_quality(const char *what, int th)
{
	char		o[96];
	Trained		r;
	cai_model_file *mf = NULL;
	cai_textclf *m = NULL;
	cai_error	err;
	int			bad = 0;

	snprintf(o, sizeof(o), "{\"dimensions\": 24, \"dropout\": 0.1, \"threads\": %d}", th);
	r = train_with(o, &tr.d, &va.d, NULL, NULL);
	CHECK(r.st == CAI_OK, "%sthreads %d: train: %s", what, th, r.err.msg);
	if (r.st != CAI_OK)
		return;
	CHECK(load(&r, &mf, &m, &err) == CAI_OK, "%sthreads %d: load: %s", what, th, err.msg);
	if (m != NULL)
	{
		double		acc_va = accuracy_of(m, &va.d, &bad);
		double		acc_te = accuracy_of(m, &te.d, &bad);

		CHECK(acc_va == json_num(r.metrics, "accuracy"),
			  "%sthreads %d: validation accuracy after load %.6f, during training %.6f",
			  what, th, acc_va, json_num(r.metrics, "accuracy"));
		CHECK(acc_te > 0.9, "%sthreads %d: held-out accuracy (with misspellings) %.4f", what, th, acc_te);
		CHECK(bad == 0, "%sthreads %d: %d bad distributions", what, th, bad);
		CHECK(mf->meta_json != NULL && strstr(mf->meta_json, th == 2 ? "\"threads\":2" : "\"threads\":3") != NULL,
			  "%sthreads %d: the metadata records the threads", what, th);
	}
	cai_textclf_free(m);
	cai_model_file_free(mf);
	trained_free(&r);
}

static void
test_threads(void)
{
	{
		Trained		a = train_with("{\"epochs\": 3, \"dropout\": 0.1, \"seed\": 7}", &tr.d, NULL, NULL, NULL);
		Trained		b = train_with("{\"epochs\": 3, \"dropout\": 0.1, \"seed\": 7, \"threads\": 1}", &tr.d, NULL, NULL, NULL);

		CHECK(a.st == CAI_OK && b.st == CAI_OK, "train: %s %s", a.err.msg, b.err.msg);
		if (a.st == CAI_OK && b.st == CAI_OK)
			CHECK(a.len == b.len && memcmp(a.model, b.model, a.len) == 0, "threads 1 gives the default's bytes");
		trained_free(&a);
		trained_free(&b);
	}
	for (int th = 2; th <= 3; th++)
		check_threads_quality("", th);
	/*
	 * Hot rows (each shard's copies of the most used rows, the changes added
	 * at each round's end): the toy training keeps them with rounds of 16
	 * rows a shard (FAST_HOT_MIN_ROUNDS rounds an epoch), and must clear the
	 * same bar.  With words alone (no n-gram rows) every row two training
	 * rows have is hot, so no row is written by both threads: two trainings
	 * with 2 threads give the same bytes, and a third with another seed not.
	 */
	{
		const size_t shard_rows = cai_textclf_fast_shard_rows;

		cai_textclf_fast_shard_rows = 16;
		for (int th = 2; th <= 3; th++)
			check_threads_quality("hot rows, ", th);
		{
			const char *words = "{\"minn\": 0, \"maxn\": 0, \"word_ngrams\": 1, \"dropout\": 0.1, \"epochs\": 3, \"threads\": 2, \"seed\": %d}";
			char		o[160];
			Trained		a,
						b,
						c;

			snprintf(o, sizeof(o), words, 5);
			a = train_with(o, &tr.d, &va.d, NULL, NULL);
			b = train_with(o, &tr.d, &va.d, NULL, NULL);
			snprintf(o, sizeof(o), words, 6);
			c = train_with(o, &tr.d, &va.d, NULL, NULL);
			CHECK(a.st == CAI_OK && b.st == CAI_OK && c.st == CAI_OK, "hot rows, words: train: %s", a.err.msg);
			if (a.st == CAI_OK && b.st == CAI_OK && c.st == CAI_OK)
			{
				CHECK(a.len == b.len && memcmp(a.model, b.model, a.len) == 0,
					  "hot rows, words, threads 2: the same bytes twice");
				CHECK(a.len != c.len || memcmp(a.model, c.model, a.len) != 0, "hot rows, words: another seed, other bytes");
			}
			trained_free(&a);
			trained_free(&b);
			trained_free(&c);
		}
		{
			int			calls = 0;
			Trained		c = train_with("{\"epochs\": 50, \"threads\": 2}", &tr.d, NULL, stop_at_third_call, &calls);

			/* cancelled in the middle of an epoch, with the hot rows in their slots */
			CHECK(c.st == CAI_ERR_CANCELLED && c.model == NULL, "hot rows: a progress callback cancels (status %d)",
				  (int) c.st);
			trained_free(&c);
			/* out of time after the first round: the partial epoch's hot rows are in the model */
			c = train_with("{\"epochs\": 50, \"threads\": 2, \"max_seconds\": 1e-9}", &tr.d, &va.d, NULL, NULL);
			CHECK(c.st == CAI_OK && json_num(c.metrics, "epochs_run") == 1, "hot rows, max_seconds: a model after one epoch: %s",
				  c.err.msg);
			trained_free(&c);
		}
		cai_textclf_fast_shard_rows = shard_rows;
	}
	{
		int			calls = 0;
		Trained		c = train_with("{\"epochs\": 50, \"threads\": 2}", &tr.d, NULL, stop_at_third_call, &calls);

		CHECK(c.st == CAI_ERR_CANCELLED && c.model == NULL, "threads 2: a progress callback cancels (status %d)",
			  (int) c.st);
		CHECK(calls == 3, "threads 2: no progress callback after cancelling (%d calls)", calls);
		trained_free(&c);
	}
}

/*
 * Without validation rows, scores come from the training rows, every k-th
 * one beyond cai_textclf_eval_train_max (set low here: 500 of the 1500
 * toy rows): sorted by label, the sample still has every class in
 * proportion (a prefix would have one); validation rows are all scored.
 */
static void
test_eval_sample(void)
{
	static const char *const cases[] = {
		"{\"epochs\": 2, \"validation_fraction\": 0}",
		"{\"architecture\": \"accurate\", \"dimensions\": 16, \"epochs\": 1, \"validation_fraction\": 0}",
	};
	cai_textclf_data sorted = tr.d;
	size_t		n = tr.d.n;
	size_t		w = 0;
	size_t		count[3] = {0};
	const char **texts = malloc(sizeof(char *) * n);
	size_t	   *lens = malloc(sizeof(size_t) * n);
	int32_t    *labels = malloc(sizeof(int32_t) * n);

	for (int32_t c = 0; c < 3; c++)
		for (size_t i = 0; i < n; i++)
			if (tr.d.labels[i] == c)
			{
				texts[w] = tr.d.texts[i];
				lens[w] = tr.d.lens[i];
				labels[w++] = c;
				count[c]++;
			}
	sorted.texts = texts;
	sorted.lens = lens;
	sorted.labels = labels;
	cai_textclf_eval_train_max = 500;
	for (int k = 0; k < N_OF(cases); k++)
	{
		Trained		r = train_with(cases[k], &sorted, NULL, NULL, NULL);
		json_object *m = r.st == CAI_OK ? json_tokener_parse(r.metrics) : NULL;
		json_object *classes = NULL;
		int			off = 0;

		CHECK(r.st == CAI_OK && m != NULL, "%s: trained (%s)", cases[k], r.err.msg);
		CHECK(json_num(r.metrics, "n") == 500 && strstr(r.metrics, "\"evaluated_on\":\"train\"") != NULL,
			  "%s: scored on %g training rows (every third of %zu)", cases[k], json_num(r.metrics, "n"), n);
		if (m != NULL && json_object_object_get_ex(m, "classes", &classes))
			for (int c = 0; c < 3; c++)
			{
				json_object *cl,
						   *sup;
				double		s = json_object_object_get_ex(classes, label_names[c], &cl) &&
					json_object_object_get_ex(cl, "support", &sup) ? json_object_get_double(sup) : -1;

				off += fabs(s - (double) count[c] / 3.0) > 1.0;
			}
		CHECK(classes != NULL && off == 0, "%s: every class in proportion (%zu, %zu, %zu rows)", cases[k],
			  count[0], count[1], count[2]);
		json_object_put(m);
		trained_free(&r);
	}
	/* validation rows: all of them */
	{
		Trained		r = train_with("{\"epochs\": 1}", &tr.d, &va.d, NULL, NULL);

		CHECK(r.st == CAI_OK && json_num(r.metrics, "n") == (double) va.d.n, "validation rows all scored: %g of %zu",
			  json_num(r.metrics, "n"), va.d.n);
		trained_free(&r);
	}
	cai_textclf_eval_train_max = TEXTCLF_EVAL_TRAIN_MAX;
	free(texts);
	free(lens);
	free(labels);
}

/* The VmFlags line of the mapping that holds p in /proc/self/smaps ("" if none). */
static void
smaps_flags(const void *p, char *out, size_t cap)
{
	FILE	   *f = fopen("/proc/self/smaps", "r");
	char		line[512];
	bool		in = false;

	out[0] = '\0';
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
	{
		unsigned long lo,
					hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t) p >= lo && (uintptr_t) p < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0)
		{
			snprintf(out, cap, "%s", line + 8);
			break;
		}
	}
	if (f != NULL)
		fclose(f);
}

/*
 * cai_calloc_large (the fast trainer's embeddings): zeroed and usable; on
 * Linux a whole number of 2 MB pages at a 2 MB boundary that the kernel was
 * advised to back with huge pages (VmFlags "hg", where the kernel has
 * transparent huge pages); small sizes from cai_calloc; overflow refused.
 */
static void
test_calloc_large(void)
{
	const size_t n = ((size_t) 5 << 20) / sizeof(float) + 3;
	size_t		mapped = 1;
	float	   *p = cai_calloc_large(n, sizeof(float), &mapped);
	bool		zero = p != NULL;
	char		flags[512];

	CHECK(p != NULL, "calloc_large: 5 MB");
	for (size_t i = 0; p != NULL && i < n; i++)
	{
		zero &= p[i] == 0.0f;
		p[i] = (float) (i & 1023);
	}
	CHECK(zero && p != NULL && p[n - 1] == (float) ((n - 1) & 1023), "calloc_large: zeroed and writable");
#if defined(__linux__)
	CHECK(mapped >= n * sizeof(float) && mapped % ((size_t) 2 << 20) == 0 && (uintptr_t) p % ((size_t) 2 << 20) == 0,
		  "calloc_large: %zu bytes mapped at a 2 MB boundary", mapped);
	{
		FILE	   *thp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
		char		mode[128] = "";

		if (thp != NULL)
		{
			if (fgets(mode, sizeof(mode), thp) == NULL)
				mode[0] = '\0';
			fclose(thp);
		}
		smaps_flags(p, flags, sizeof(flags));
		if (strstr(mode, "[madvise]") != NULL || strstr(mode, "[always]") != NULL)
			CHECK(strstr(flags, " hg") != NULL, "calloc_large: advised huge pages (VmFlags:%s)", flags);
		else
			printf("calloc_large: transparent huge pages off here (%s); advice not checked\n", mode);
	}
#endif
	cai_free_large(p, mapped);
	p = cai_calloc_large(10, sizeof(float), &mapped);
	CHECK(p != NULL && mapped == 0 && p[9] == 0.0f, "calloc_large: a small array comes from cai_calloc");
	cai_free_large(p, mapped);
	CHECK(cai_calloc_large(SIZE_MAX, 2, &mapped) == NULL && mapped == 0, "calloc_large: overflow refused");
}

/* Mean of the largest probability over d's rows (how confident the model is). */
static double
mean_confidence(const cai_textclf *m, const cai_textclf_data *d)
{
	double		s = 0.0;

	for (size_t i = 0; i < d->n; i++)
	{
		float		p[3];
		cai_error	err;

		if (cai_textclf_predict(m, d->texts[i], d->lens[i], p, &err) == CAI_OK)
			s += p[argmax(p, 3)];
	}
	return d->n > 0 ? s / (double) d->n : 0.0;
}

/*
 * weight_decay: the embedding table kept divided by a scale (the trainer's
 * FAST_DECAY_ROWS) is the model of the plain decay: with the fold threshold
 * above 1 the rows are scaled at every application instead, and every
 * probability agrees up to rounding; the decay shrinks the weights (less
 * confident predictions than without it) and still learns the classes, with
 * one thread and two; learning_rate * weight_decay must stay below 1.
 */
static void
test_weight_decay(void)
{
	const char *json = "{\"epochs\": 20, \"weight_decay\": 1e-3, \"validation_fraction\": 0}";
	Trained		a = train_with(json, &tr.d, NULL, NULL, NULL);
	Trained		b,
				z,
				t2;
	cai_model_file *mf[4] = {NULL};
	cai_textclf *m[4] = {NULL};
	cai_error	err;
	int			bad = 0;
	const double fold = cai_textclf_fast_scale_fold;

	cai_textclf_fast_scale_fold = 2.0;
	b = train_with(json, &tr.d, NULL, NULL, NULL);
	cai_textclf_fast_scale_fold = fold;
	z = train_with("{\"epochs\": 20, \"weight_decay\": 0, \"validation_fraction\": 0}", &tr.d, NULL, NULL, NULL);
	t2 = train_with("{\"epochs\": 20, \"weight_decay\": 1e-3, \"validation_fraction\": 0, \"threads\": 2}",
					&tr.d, NULL, NULL, NULL);
	CHECK(a.st == CAI_OK && b.st == CAI_OK && z.st == CAI_OK && t2.st == CAI_OK, "weight decay: trained (%s %s %s %s)",
		  a.err.msg, b.err.msg, z.err.msg, t2.err.msg);
	if (a.st == CAI_OK && b.st == CAI_OK && z.st == CAI_OK && t2.st == CAI_OK &&
		load(&a, &mf[0], &m[0], &err) == CAI_OK && load(&b, &mf[1], &m[1], &err) == CAI_OK &&
		load(&z, &mf[2], &m[2], &err) == CAI_OK && load(&t2, &mf[3], &m[3], &err) == CAI_OK)
	{
		float		worst = 0.0f;
		double		ca = mean_confidence(m[0], &va.d),
					cz = mean_confidence(m[2], &va.d);

		for (size_t i = 0; i < va.d.n; i++)
		{
			float		pa[3],
						pb[3];

			if (cai_textclf_predict(m[0], va.d.texts[i], va.d.lens[i], pa, &err) != CAI_OK ||
				cai_textclf_predict(m[1], va.d.texts[i], va.d.lens[i], pb, &err) != CAI_OK)
				worst = 1.0f;
			else
				for (int c = 0; c < 3; c++)
					worst = fmaxf(worst, fabsf(pa[c] - pb[c]));
		}
		CHECK(worst < 1e-4f, "the scaled table gives the plain decay's model: largest probability difference %g",
			  (double) worst);
		CHECK(ca < cz - 0.02, "the decay shrinks the model: mean confidence %.4f with it, %.4f without", ca, cz);
		CHECK(accuracy_of(m[0], &te.d, &bad) > 0.9 && accuracy_of(m[3], &te.d, &bad) > 0.9 && bad == 0,
			  "with the decay, one and two threads still learn the classes (%.4f, %.4f)",
			  accuracy_of(m[0], &te.d, &bad), accuracy_of(m[3], &te.d, &bad));
	}
	else
		CHECK(false, "weight decay: load: %s", err.msg);
	for (int i = 0; i < 4; i++)
	{
		cai_textclf_free(m[i]);
		cai_model_file_free(mf[i]);
	}
	trained_free(&a);
	trained_free(&b);
	trained_free(&z);
	trained_free(&t2);
	a = train_with("{\"learning_rate\": 10, \"weight_decay\": 0.06}", &tr.d, NULL, NULL, NULL);
	CHECK(a.st == CAI_ERR_INVALID && strstr(a.err.msg, "weight_decay") != NULL,
		  "learning_rate * weight_decay of 0.6 refused: %s", a.err.msg);
	trained_free(&a);
}

static void
test_cancel_and_limits(void)
{
	Trained		r;

	/* max_seconds: stops after the first epoch, keeps a model */
	r = train_with("{\"epochs\": 50, \"max_seconds\": 1e-9}", &tr.d, NULL, NULL, NULL);
	CHECK(r.st == CAI_OK, "max_seconds: %s", r.err.msg);
	if (r.st == CAI_OK)
		CHECK(json_num(r.metrics, "epochs_run") == 1, "epochs_run %g", json_num(r.metrics, "epochs_run"));
	trained_free(&r);

	/* no validation split: metrics on the training rows */
	r = train_with("{\"epochs\": 2, \"validation_fraction\": 0}", &tr.d, NULL, NULL, NULL);
	CHECK(r.st == CAI_OK, "no validation: %s", r.err.msg);
	if (r.st == CAI_OK)
	{
		CHECK(strstr(r.metrics, "\"evaluated_on\":\"train\"") != NULL, "evaluated on train: %s", r.metrics);
		CHECK(json_num(r.metrics, "validation_rows") == 0, "no validation rows");
		CHECK(json_num(r.metrics, "best_epoch") == 2, "last epoch kept");
	}
	trained_free(&r);

	/* words only, no n-grams at all; tiny vocabulary through min_count */
	r = train_with("{\"epochs\": 3, \"minn\": 0, \"maxn\": 0, \"word_ngrams\": 1, \"min_count\": 1000000}",
				   &tr.d, &va.d, NULL, NULL);
	CHECK(r.st == CAI_OK, "no features: %s", r.err.msg);
	if (r.st == CAI_OK)
	{
		cai_model_file *mf = NULL;
		cai_textclf *m = NULL;
		cai_error	err;
		float		p[3];

		CHECK(load(&r, &mf, &m, &err) == CAI_OK, "load a model with no vocabulary: %s", err.msg);
		if (m != NULL)
			CHECK(cai_textclf_predict(m, "good", 4, p, &err) == CAI_OK &&
				  fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-5f, "predict");
		cai_textclf_free(m);
		cai_model_file_free(mf);
	}
	trained_free(&r);
}

/* NUL bytes, invalid UTF-8, empty rows, texts longer than max_tokens. */
static void
test_odd_texts(void)
{
	static const char *const texts[] = {
		"good\0movie", "\xff\xfe bad \xc3", "", "\0", "a b c d e f g h i j k l m n o p good",
		"bad\0\0bad", "\xe5\xa5\xbd", "okay \xf0\x9f\x98\x90", "x\0y okay",
	};
	static const size_t lens[] = {10, 8, 0, 1, 36, 8, 3, 9, 8};
	static const int32_t labels[] = {2, 0, 1, 1, 2, 0, 2, 1, 1};
	cai_textclf_data d = {9, texts, lens, labels};
	Trained		r = train_with("{\"max_tokens\": 4, \"epochs\": 3, \"min_count\": 1}", &d, NULL, NULL, NULL);

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

static void
test_bad_inputs(void)
{
	cai_options *o = opts_of(NULL);
	uint8_t    *model = NULL;
	size_t		len = 0;
	char	   *metrics = NULL;
	cai_error	err;
	cai_textclf_data empty = {0, NULL, NULL, NULL};
	int32_t		bad_labels[3] = {0, 3, 1};
	const char *texts[3] = {"a", "b", "c"};
	size_t		lens[3] = {1, 1, 1};
	cai_textclf_data bad = {3, texts, lens, bad_labels};
	Trained		r;

	CHECK(cai_textclf_train(o, label_names, 3, &empty, NULL, NULL, NULL, NULL, NULL,
							&model, &len, &metrics, &err) == CAI_ERR_INVALID &&
		  strcmp(err.msg, "no training rows") == 0, "no rows: %s", err.msg);
	CHECK(cai_textclf_train(o, label_names, 1, &tr.d, NULL, NULL, NULL, NULL, NULL,
							&model, &len, &metrics, &err) == CAI_ERR_INVALID &&
		  strcmp(err.msg, "need at least two classes") == 0, "one class: %s", err.msg);
	CHECK(cai_textclf_train(o, label_names, 3, &bad, NULL, NULL, NULL, NULL, NULL,
							&model, &len, &metrics, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "out of range") != NULL, "label out of range: %s", err.msg);
	CHECK(cai_textclf_train(o, label_names, 3, &tr.d, &bad, NULL, NULL, NULL, NULL,
							&model, &len, &metrics, &err) == CAI_ERR_INVALID,
		  "validation label out of range: %s", err.msg);
	CHECK(cai_textclf_train(o, label_names, 3, &tr.d, NULL, NULL, "[1, 2]", NULL, NULL,
							&model, &len, &metrics, &err) == CAI_ERR_INVALID,
		  "provenance not an object: %s", err.msg);
	{
		static const char *const dup[] = {"a", "b", "a"};

		CHECK(cai_textclf_train(o, dup, 3, &tr.d, NULL, NULL, NULL, NULL, NULL,
								&model, &len, &metrics, &err) == CAI_ERR_INVALID &&
			  strstr(err.msg, "duplicate") != NULL, "duplicate label names: %s", err.msg);
	}
	CHECK(model == NULL && metrics == NULL, "no output on errors");
	cai_options_free(o);

	CHECK(opts_of("{\"architecture\": \"tiny\"}") == NULL, "an unknown architecture is refused by the options");
	r = train_with("{\"minn\": 4, \"maxn\": 2}", &tr.d, NULL, NULL, NULL);
	CHECK(r.st == CAI_ERR_INVALID && strstr(r.err.msg, "minn") != NULL, "minn > maxn: %s", r.err.msg);
	trained_free(&r);
	r = train_with("{\"minn\": 0, \"maxn\": 3}", &tr.d, NULL, NULL, NULL);
	CHECK(r.st == CAI_ERR_INVALID, "minn 0 with maxn 3: %s", r.err.msg);
	trained_free(&r);
	r = train_with("{\"learning_rate\": 10, \"epochs\": 2}", &tr.d, NULL, NULL, NULL);
	CHECK(r.st == CAI_OK || r.st == CAI_ERR_NUMERIC, "huge learning rate: ok or numeric (%s)", r.err.msg);
	trained_free(&r);
}

/* Apply damage to a freshly read model and expect CAI_ERR_FORMAT mentioning what. */
static void
dmg_offsets_order(cai_model_file *mf)
{
	int32_t    *off = tensor(mf, "fast.vocab.offsets")->data;

	off[2] = off[1] - 1;
}

static void
dmg_offsets_end(cai_model_file *mf)
{
	int32_t    *off = tensor(mf, "fast.vocab.offsets")->data;
	cai_tensor *t = tensor(mf, "fast.vocab.offsets");

	off[t->shape[0] - 1] += 1;
}

static void
dmg_offsets_huge(cai_model_file *mf)
{
	int32_t    *off = tensor(mf, "fast.vocab.offsets")->data;

	off[1] = INT32_MAX;
}

static void
dmg_word_nul(cai_model_file *mf)
{
	char	   *b = tensor(mf, "fast.vocab.bytes")->data;
	int32_t    *off = tensor(mf, "fast.vocab.offsets")->data;

	b[off[1] - 1] = 'x';		/* first word loses its terminator */
}

static void
dmg_word_dup(cai_model_file *mf)
{
	char	   *b = tensor(mf, "fast.vocab.bytes")->data;
	int32_t    *off = tensor(mf, "fast.vocab.offsets")->data;
	int			i;

	/* find two words of equal length and make the second equal the first */
	for (i = 1; off[i + 1] - off[i] != off[1] - off[0]; i++)
		;
	memcpy(b + off[i], b, (size_t) (off[1] - off[0]));
}

static void
dmg_offsets_shape(cai_model_file *mf)
{
	cai_tensor *t = tensor(mf, "fast.vocab.offsets");

	t->shape[0] -= 1;
	t->nbytes -= 4;
}

static void
dmg_no_vocab(cai_model_file *mf)
{
	strcpy(tensor(mf, "fast.vocab.bytes")->name, "fast.vocab.other");
}

static void
dmg_vocab_dtype(cai_model_file *mf)
{
	tensor(mf, "fast.vocab.offsets")->dtype = CAI_F32;
}

static void
dmg_buckets_order(cai_model_file *mf)
{
	int32_t    *b = tensor(mf, "fast.buckets")->data;

	b[1] = b[0];
}

static void
dmg_buckets_range(cai_model_file *mf)
{
	cai_tensor *t = tensor(mf, "fast.buckets");
	int32_t    *b = t->data;

	b[t->shape[0] - 1] = INT32_MAX;
}

static void
dmg_embedding_nan(cai_model_file *mf)
{
	float	   *e = tensor(mf, "fast.embedding")->data;

	e[3] = NAN;
}

static void
dmg_embedding_shape(cai_model_file *mf)
{
	cai_tensor *t = tensor(mf, "fast.embedding");

	t->shape[0] -= 1;
	t->nbytes -= (size_t) t->shape[1] * 4;
}

static void
dmg_dims(cai_model_file *mf)
{
	char	   *fast = strstr(mf->meta_json, "\"fast\":{");
	char	   *p = fast != NULL ? strstr(fast, "\"dimensions\":") : NULL;

	if (p != NULL)
		p[10] = 'z';			/* "dimensionz" */
}

static void
dmg_task(cai_model_file *mf)
{
	dmg_meta(mf, "text_classification", "text_classificatioN");
}

static void
dmg_arch(cai_model_file *mf)
{
	dmg_meta(mf, "\"architecture\":\"fast\"", "\"architecture\":\"slow\"");
}

static void
test_corrupt_models(void)
{
	static const DamageCase cases[] = {
		{dmg_offsets_order, CAI_ERR_FORMAT, "fast.vocab.offsets"},
		{dmg_offsets_end, CAI_ERR_FORMAT, "fast.vocab.offsets"},
		{dmg_offsets_huge, CAI_ERR_FORMAT, "fast.vocab.offsets"},
		{dmg_word_nul, CAI_ERR_FORMAT, "vocabulary word"},
		{dmg_word_dup, CAI_ERR_FORMAT, "duplicate"},
		{dmg_offsets_shape, CAI_ERR_FORMAT, "fast.vocab.offsets"},
		{dmg_no_vocab, CAI_ERR_FORMAT, "fast.vocab.bytes"},
		{dmg_vocab_dtype, CAI_ERR_FORMAT, "fast.vocab.offsets"},
		{dmg_buckets_order, CAI_ERR_FORMAT, "fast.buckets"},
		{dmg_buckets_range, CAI_ERR_FORMAT, "fast.buckets"},
		{dmg_embedding_nan, CAI_ERR_FORMAT, "non-finite"},
		{dmg_embedding_shape, CAI_ERR_FORMAT, "fast.embedding"},
		{dmg_fingerprint, CAI_ERR_VERSION, "tokenizer"},
		{dmg_dims, CAI_ERR_FORMAT, "dimensions"},
		{dmg_task, CAI_ERR_FORMAT, "text classification"},
		{dmg_arch, CAI_ERR_FORMAT, "slow"},
	};
	Trained		r = train_with("{\"epochs\": 1}", &tr.d, NULL, NULL, NULL);

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK)
		return;
	check_damage_cases(&r, cases, N_OF(cases));
	trained_free(&r);
}

/* An allocator that fails the k-th allocation: every failure is a clean CAI_ERR_NOMEM. */
static long alloc_countdown;

static void *
failing_alloc(void *ctx, size_t size)
{
	if (alloc_countdown-- == 0)
		return NULL;
	return malloc(size);
}

static void
plain_free(void *ctx, void *p)
{
	free(p);
}

static void
test_out_of_memory(void)
{
	cai_allocator a = {failing_alloc, plain_free, NULL};
	cai_options *o = opts_of("{\"epochs\": 1}");
	cai_textclf_data small = tr.d;
	int			nomem = 0,
				ok = 0,
				other = 0;

	small.n = 60;
	for (long k = 0; k < 400; k += (k < 120 ? 1 : 7))
	{
		uint8_t    *model = NULL;
		size_t		len = 0;
		char	   *metrics = NULL;
		cai_error	err;
		cai_status	st;

		alloc_countdown = k;
		cai_set_allocator(&a);
		st = cai_textclf_train(o, label_names, 3, &small, NULL, NULL, NULL, NULL, NULL,
							   &model, &len, &metrics, &err);
		if (st == CAI_OK)
		{
			cai_model_file *mf = NULL;
			cai_textclf *m = NULL;

			ok++;
			/* and loading under the same allocator failure points */
			for (long j = 0; j < 40; j++)
			{
				alloc_countdown = j;
				st = cai_format_read(model, len, &mf, &err);
				if (st == CAI_OK)
					st = cai_textclf_load(mf, &m, &err);
				if (st != CAI_OK && st != CAI_ERR_NOMEM)
					other++;
				cai_textclf_free(m);
				cai_model_file_free(mf);
				m = NULL;
				mf = NULL;
			}
		}
		else if (st == CAI_ERR_NOMEM)
			nomem++;
		else
		{
			other++;
			fprintf(stderr, "  allocation %ld: %s: %s\n", k, cai_status_name(st), err.msg);
		}
		cai_set_allocator(NULL);
		cai_free(model);
		cai_free(metrics);
	}
	CHECK(other == 0, "%d failures other than out of memory", other);
	CHECK(nomem > 0 && ok > 0, "nomem %d ok %d", nomem, ok);
	cai_options_free(o);
}

/* Is name in the option table defs (n entries)? */
static bool
has_option(const cai_opt_def *defs, int n, const char *name)
{
	for (int j = 0; j < n; j++)
		if (strcmp(defs[j].name, name) == 0)
			return true;
	return false;
}

static void
test_option_table(void)
{
	static const char *const common[] = {
		"architecture", "epochs", "learning_rate", "seed", "dimensions", "dropout",
		"validation_fraction", "validation_source", "max_seconds", "deploy", "min_count",
		"minn", "maxn", "buckets", "max_tokens", "patience",
	};
	cai_options *o = NULL;
	cai_error	err = {0};

	for (int i = 0; i < N_OF(common); i++)
		CHECK(has_option(cai_textclf_fast_option_defs, cai_textclf_fast_n_option_defs, common[i]) &&
			  has_option(cai_textclf_accurate_option_defs, cai_textclf_accurate_n_option_defs, common[i]),
			  "both architectures have option %s", common[i]);
	/* options only one architecture uses */
	CHECK(has_option(cai_textclf_fast_option_defs, cai_textclf_fast_n_option_defs, "word_ngrams") &&
		  !has_option(cai_textclf_accurate_option_defs, cai_textclf_accurate_n_option_defs, "word_ngrams"),
		  "word_ngrams is fast's");
	CHECK(!has_option(cai_textclf_fast_option_defs, cai_textclf_fast_n_option_defs, "batch_size") &&
		  has_option(cai_textclf_accurate_option_defs, cai_textclf_accurate_n_option_defs, "batch_size"),
		  "batch_size is accurate's");
	CHECK(has_option(cai_textclf_fast_option_defs, cai_textclf_fast_n_option_defs, "threads") &&
		  has_option(cai_textclf_accurate_option_defs, cai_textclf_accurate_n_option_defs, "threads"),
		  "both architectures train with threads");
	CHECK(cai_textclf_parse_options("{\"architecture\": \"fast\", \"batch_size\": 8}", &o, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "batch_size") != NULL && strstr(err.msg, "word_ngrams") != NULL,
		  "an option of the other architecture is refused, naming the valid ones: %s", err.msg);
	CHECK(cai_textclf_parse_options("{\"word_ngrams\": 3}", &o, &err) == CAI_ERR_INVALID,
		  "word_ngrams is refused for the default (accurate) architecture");

	/* each architecture's table holds the defaults it uses */
	(void) cai_textclf_parse_options(NULL, &o, NULL);
	CHECK(o != NULL && strcmp(cai_opt_string(o, "architecture"), "accurate") == 0, "default architecture");
	CHECK(o != NULL && cai_opt_float(o, "learning_rate") == 0.003 && cai_opt_int(o, "batch_size") == 32 &&
		  cai_opt_int(o, "dimensions") == 64 && cai_opt_float(o, "dropout") == 0.5, "accurate's defaults");
	cai_options_free(o);
	o = opts_of(NULL);
	CHECK(o != NULL && cai_opt_float(o, "learning_rate") == 0.1 && cai_opt_int(o, "dimensions") == 48 &&
		  cai_opt_float(o, "dropout") == 0.0 && cai_opt_int(o, "word_ngrams") == 2, "fast's defaults");
	cai_options_free(o);
	CHECK(opts_of("{\"architecture\": \"slow\"}") == NULL, "architecture choices enforced");
}

/* ---------------------------------------------------------------------- */
/* Zero-copy loading                                                      */
/* ---------------------------------------------------------------------- */

static void
test_zero_copy(void)
{
	static const char *const tabs[] = {"fast.vocab.slots", "fast.buckets.slots", "fast.buckets.rank",
	"fast.word_vectors", "fast.word_counts"};
	Trained		r = train_with("{\"dimensions\": 24}", &tr.d, &va.d, NULL, NULL);

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK)
		return;
	check_zero_copy(r.model, r.len, &te.d, tabs, 5, "fast");
	check_table_damage(r.model, r.len, &te.d, "fast.vocab.slots", "vocabulary", "fast vocabulary");
	check_table_damage(r.model, r.len, &te.d, "fast.buckets.slots", "bucket index", "fast buckets");
	/* word vectors that do not match the embedding */
	{
		cai_model_file *mf = NULL;
		cai_textclf *m = NULL;
		cai_error	err;

		if (cai_format_read(r.model, r.len, &mf, &err) == CAI_OK)
		{
			((float *) cai_model_file_tensor(mf, "fast.word_vectors")->data)[5] += 1.0f;
			CHECK(cai_textclf_load(mf, &m, &err) == CAI_ERR_FORMAT && strstr(err.msg, "does not match") != NULL,
				  "changed word vectors rejected: %s", err.msg);
			cai_textclf_free(m);
		}
		cai_model_file_free(mf);
	}
	trained_free(&r);
}

/*
 * The bucket -> row map (fast.buckets.rank) gives, for every bucket, the
 * row the slot index gives (-1 for the buckets without a row); a damaged
 * map is refused by a verified load, its wrong shape by any load; trusted
 * damaged maps stay in bounds; a model without the map (as written before
 * it existed) loads with the slot index and predicts the same.
 */
static void
test_bucket_rank(void)
{
	const uint32_t buckets = 30011;	/* not a multiple of the 64 buckets of a block */
	Trained		r = train_with("{\"buckets\": 30011}", &tr.d, &va.d, NULL, NULL);
	cai_model_file *mf = NULL;
	cai_error	err;

	CHECK(r.st == CAI_OK, "train: %s", r.err.msg);
	if (r.st != CAI_OK || cai_format_read(r.model, r.len, &mf, &err) != CAI_OK)
	{
		trained_free(&r);
		return;
	}
	{
		const cai_tensor *tk = cai_model_file_tensor(mf, "fast.buckets");
		const cai_tensor *ts = cai_model_file_tensor(mf, "fast.buckets.slots");
		const cai_tensor *tr_ = cai_model_file_tensor(mf, "fast.buckets.rank");
		int64_t		found = 0,
					differ = 0;

		CHECK(tk != NULL && ts != NULL && tr_ != NULL, "model has fast.buckets, .slots and .rank");
		if (tk != NULL && ts != NULL && tr_ != NULL)
		{
			cai_intindex ix = {(int32_t) tk->shape[0], tk->data, ts->data, (uint32_t) ts->shape[0] - 1};

			CHECK(tr_->ndim == 2 && tr_->shape[0] == (buckets + 63) / 64 && tr_->shape[1] == 3,
				  "rank map shape (%" PRId64 ", %" PRId64 ")", tr_->shape[0], tr_->shape[1]);
			for (uint32_t b = 0; b < buckets; b++)
			{
				int32_t		want = cai_intindex_find(&ix, (int32_t) b);
				int32_t		got = cai_bucket_rank_find(tr_->data, ix.n, b);

				if (got != want && differ++ == 0)
					fprintf(stderr, "  bucket %u: rank map row %d, slot index row %d\n", b, got, want);
				found += got >= 0;
			}
			CHECK(differ == 0, "rank map and slot index agree on all %u buckets (%" PRId64 " differ)",
				  buckets, differ);
			CHECK(found == ix.n && ix.n > 0 && ix.n < (int32_t) buckets,
				  "rank map finds the %d bucket rows (%" PRId64 "), the other buckets -1", ix.n, found);
		}
	}
	cai_model_file_free(mf);
	mf = NULL;

	/* damage: kind 0 a rank out of range, 1 a mask bit more, 2 a mask bit less, 3 a block fewer */
	for (int k = 0; k < 4; k++)
	{
		cai_textclf *m = NULL;
		cai_tensor *t;
		int32_t    *a;

		if (cai_format_read(r.model, r.len, &mf, &err) != CAI_OK)
			break;
		t = (cai_tensor *) cai_model_file_tensor(mf, "fast.buckets.rank");
		a = t->data;
		if (k == 0)
			a[(t->shape[0] - 1) * 3] = INT32_MAX;
		else if (k == 1 || k == 2)
		{
			int64_t		j = 0;

			while (j < t->shape[0] - 1 && (a[j * 3 + 1] == 0 || a[j * 3 + 1] == -1))
				j++;
			a[j * 3 + 1] = k == 1 ? (int32_t) ((uint32_t) a[j * 3 + 1] | ((uint32_t) a[j * 3 + 1] + 1))
				: (int32_t) ((uint32_t) a[j * 3 + 1] & ((uint32_t) a[j * 3 + 1] - 1));
		}
		else
		{
			t->shape[0] -= 1;
			t->nbytes -= 12;
		}
		CHECK(cai_textclf_load(mf, &m, &err) == CAI_ERR_FORMAT && strstr(err.msg, "fast.buckets.rank") != NULL,
			  "damaged rank map (%d) rejected: %s", k, err.msg);
		cai_textclf_free(m);
		m = NULL;
		mf->trusted = true;
		if (k == 3)
			CHECK(cai_textclf_load(mf, &m, &err) == CAI_ERR_FORMAT,
				  "rank map of the wrong shape rejected by a trusted load: %s", err.msg);
		else
		{
			CHECK(cai_textclf_load(mf, &m, &err) == CAI_OK, "trusted damaged rank map (%d) loads: %s", k, err.msg);
			if (m != NULL)
				free(all_probs(m, &te.d));	/* bounded and in bounds (ASan) */
		}
		cai_textclf_free(m);
		cai_model_file_free(mf);
		mf = NULL;
	}

	/* without the map: the slot index, the same probabilities */
	{
		cai_model_file *mf2 = NULL;
		cai_textclf *m1 = NULL,
				   *m2 = NULL;

		if (cai_format_read(r.model, r.len, &mf, &err) == CAI_OK &&
			cai_format_read(r.model, r.len, &mf2, &err) == CAI_OK)
		{
			strcpy(((cai_tensor *) cai_model_file_tensor(mf2, "fast.buckets.rank"))->name, "fast.buckets.other");
			CHECK(cai_textclf_load(mf, &m1, &err) == CAI_OK, "load: %s", err.msg);
			CHECK(cai_textclf_load(mf2, &m2, &err) == CAI_OK, "load without the rank map: %s", err.msg);
			if (m1 != NULL && m2 != NULL)
			{
				float	   *p1 = all_probs(m1, &te.d);
				float	   *p2 = all_probs(m2, &te.d);

				CHECK(p1 != NULL && p2 != NULL &&
					  memcmp(p1, p2, sizeof(float) * (size_t) te.d.n * 3) == 0,
					  "rank map and slot index give bit-identical probabilities");
				free(p1);
				free(p2);
			}
		}
		cai_textclf_free(m1);
		cai_textclf_free(m2);
		cai_model_file_free(mf2);
		cai_model_file_free(mf);
		mf = NULL;
	}
	trained_free(&r);
}

/*
 * Rows read as token ids (cai_textclf_tokens) train the model the texts
 * train, byte for byte: fast with word n-grams 1, 2 and 3, with and without
 * a validation set (split from the rows: the rows reordered; given, or none:
 * in the data's order), accurate (and its ensemble's fast model), with word
 * vectors; another max_tokens is refused; the estimate counts the tokens.
 */
static void
test_token_ids(void)
{
	static const char *const cases[] = {
		"{\"word_ngrams\": 1, \"epochs\": 3}",
		"{\"word_ngrams\": 2, \"epochs\": 3}",
		"{\"word_ngrams\": 3, \"epochs\": 3, \"dropout\": 0.2}",
		"{\"word_ngrams\": 2, \"epochs\": 2, \"validation_fraction\": 0}",
		"{\"architecture\": \"accurate\", \"dimensions\": 16, \"epochs\": 2}",
		"{\"architecture\": \"accurate\", \"dimensions\": 16, \"epochs\": 1, \"validation_fraction\": 0}",
	};
	cai_strtab	words = {0};
	cai_textclf_tokens ttr = {0};
	cai_textclf_tokens tva = {0};
	cai_error	err = {0};
	cai_textclf_data dtr = tr.d;
	cai_textclf_data dva = va.d;
	bool		ok = true;

	CHECK(cai_strtab_init(&words, 1024, &err) == CAI_OK &&
		  cai_textclf_tokens_init(&ttr, &words, 512, &err) == CAI_OK &&
		  cai_textclf_tokens_init(&tva, &words, 512, &err) == CAI_OK, "token rows init: %s", err.msg);
	for (size_t i = 0; i < tr.d.n; i++)
		ok &= cai_textclf_tokens_add(&ttr, tr.d.texts[i], tr.d.lens[i], &err) == CAI_OK;
	for (size_t i = 0; i < va.d.n; i++)
		ok &= cai_textclf_tokens_add(&tva, va.d.texts[i], va.d.lens[i], &err) == CAI_OK;
	CHECK(ok && ttr.n == tr.d.n && tva.n == va.d.n, "rows added: %s", err.msg);
	CHECK(cai_textclf_tokens_memory(&ttr) > 0 && cai_textclf_tokens_memory(&ttr) < 16 * tr.d.n + (4 << 20) + 1024,
		  "token rows memory %zu: one chunk and the offsets", cai_textclf_tokens_memory(&ttr));

	/* a row's text rebuilt from its ids tokenizes to the same words */
	{
		char	   *buf = NULL;
		size_t		cap = 0;
		int			same = 0;

		for (size_t i = 0; i < tr.d.n; i++)
		{
			size_t		l = cai_textclf_tokens_text(&ttr, i, &buf, &cap);
			cai_textclf_tokens one = {0};

			size_t		n1,
						n2;

			if (l != (size_t) -1 && cai_textclf_tokens_init(&one, &words, 512, &err) == CAI_OK &&
				cai_textclf_tokens_add(&one, buf, l, &err) == CAI_OK)
			{
				const int32_t *a = cai_textclf_tokens_row(&one, 0, &n1);
				const int32_t *b = cai_textclf_tokens_row(&ttr, i, &n2);

				same += n1 == n2 && memcmp(a, b, sizeof(int32_t) * n1) == 0;
			}
			cai_textclf_tokens_free(&one);
		}
		CHECK(same == (int) tr.d.n, "rebuilt texts tokenize the same: %d of %zu", same, tr.d.n);
		cai_free(buf);
	}

	/* rows over more than one chunk: each row whole in one, empty rows anywhere */
	{
		cai_textclf_tokens big = {0};
		char	   *text = malloc(500 * 6);
		size_t		len = 0;
		size_t		n0 = 0;
		const int32_t *first = NULL;
		int			bad = 0;

		for (int w = 0; w < 500; w++)
			len += (size_t) sprintf(text + len, "%sw%d", w > 0 ? " " : "", w % 97);
		CHECK(cai_textclf_tokens_init(&big, &words, 512, &err) == CAI_OK, "big rows init");
		for (int r = 0; r < 2300; r++)
			bad += cai_textclf_tokens_add(&big, r % 100 == 7 ? NULL : text, r % 100 == 7 ? 0 : len, &err) != CAI_OK;
		CHECK(bad == 0 && big.n == 2300, "2300 big rows added: %s", err.msg);
		first = cai_textclf_tokens_row(&big, 0, &n0);
		for (size_t r = 0; r < big.n; r++)
		{
			size_t		n;
			const int32_t *ids = cai_textclf_tokens_row(&big, r, &n);

			bad += r % 100 == 7 ? n != 0 : n != n0 || memcmp(ids, first, sizeof(int32_t) * n) != 0;
		}
		CHECK(n0 == 500 && big.n_chunks == 2 && bad == 0 && cai_textclf_tokens_count(&big) == 500 * (2300 - 23),
			  "2300 rows of 500 tokens in %zu chunks: %d rows differ, %zu tokens", big.n_chunks, bad,
			  cai_textclf_tokens_count(&big));
		cai_textclf_tokens_free(&big);
		free(text);
	}

	dtr.tokens = &ttr;
	dtr.texts = NULL;
	dtr.lens = NULL;
	dva.tokens = &tva;
	dva.texts = NULL;
	dva.lens = NULL;
	for (int c = 0; c < N_OF(cases); c++)
	{
		for (int with_valid = 0; with_valid < 2; with_valid++)
		{
			Trained		a = train_with(cases[c], &tr.d, with_valid ? &va.d : NULL, NULL, NULL);
			Trained		b = train_with(cases[c], &dtr, with_valid ? &dva : NULL, NULL, NULL);

			CHECK(a.st == CAI_OK && b.st == CAI_OK, "%s valid %d: trained (%s / %s)", cases[c], with_valid,
				  a.err.msg, b.err.msg);
			CHECK(a.len == b.len && a.len > 0 && memcmp(a.model, b.model, a.len) == 0,
				  "%s valid %d: model from token ids equals the model from texts (%zu / %zu bytes)",
				  cases[c], with_valid, a.len, b.len);
			trained_free(&a);
			trained_free(&b);
		}
	}

	/* the estimate from ids counts the buckets used: below the one from texts (test_conformance: above the peak) */
	{
		cai_options *o = opts_of("{\"word_ngrams\": 2}");
		size_t		mt = cai_textclf_train_memory(o, &tr.d, 3, NULL);
		size_t		mi = cai_textclf_train_memory(o, &dtr, 3, NULL);

		CHECK(mt > 0 && mi > 0 && mi < mt, "estimates from texts %zu and ids %zu", mt, mi);
		cai_options_free(o);
	}

	/*
	 * many threads of long rows: the hot rows' slots and copies stay within
	 * their budget (64 MB; 65 copies of 16,384 rows of 300 floats would be
	 * 1.3 GB), so 64 threads cost little more than 2 besides their scratch
	 */
	{
		cai_options *o2 = opts_of("{\"architecture\": \"fast\", \"dimensions\": 300, \"threads\": 2}");
		cai_options *o64 = opts_of("{\"architecture\": \"fast\", \"dimensions\": 300, \"threads\": 64}");
		size_t		m2 = cai_textclf_train_memory(o2, &tr.d, 3, NULL);
		size_t		m64 = cai_textclf_train_memory(o64, &tr.d, 3, NULL);

		CHECK(m2 > 0 && m64 > m2 && m64 - m2 < ((size_t) 128 << 20),
			  "estimates with 2 and 64 threads of 300 dimensions: %zu and %zu bytes", m2, m64);
		cai_options_free(o2);
		cai_options_free(o64);
	}

	/*
	 * the buckets counted for the estimate: the same with 1, 2 and 3 threads
	 * (each thread its rows and its bitmap), and at least the bucket rows a
	 * training on those rows makes (the word table holds the validation
	 * rows' words too: their character n-grams are counted)
	 */
	{
		cai_options *o = opts_of("{\"architecture\": \"fast\", \"word_ngrams\": 3, \"validation_fraction\": 0}");
		size_t		k1 = cai_textclf_fast_count_buckets(o, &ttr, 1);
		size_t		k2 = cai_textclf_fast_count_buckets(o, &ttr, 2);
		size_t		k3 = cai_textclf_fast_count_buckets(o, &ttr, 3);
		Trained		a = train_with("{\"architecture\": \"fast\", \"word_ngrams\": 3, \"validation_fraction\": 0, \"epochs\": 1}",
								   &dtr, NULL, NULL, NULL);
		json_object *m = a.metrics != NULL ? json_tokener_parse(a.metrics) : NULL;
		json_object *br = NULL;

		CHECK(k1 > 0 && k1 != SIZE_MAX && k2 == k1 && k3 == k1, "buckets counted with 1, 2, 3 threads: %zu %zu %zu",
			  k1, k2, k3);
		CHECK(a.st == CAI_OK && m != NULL && json_object_object_get_ex(m, "bucket_rows", &br) &&
			  (size_t) json_object_get_int64(br) <= k1 && (size_t) json_object_get_int64(br) > k1 / 2,
			  "the training's bucket rows %lld, the count %zu",
			  br != NULL ? (long long) json_object_get_int64(br) : -1LL, k1);
		/* the rows' pass that marks the buckets, split over 2 threads: the same bucket rows */
		{
			Trained		b = train_with("{\"architecture\": \"fast\", \"word_ngrams\": 3, \"validation_fraction\": 0, "
									   "\"epochs\": 1, \"threads\": 2}", &dtr, NULL, NULL, NULL);
			json_object *mb = b.metrics != NULL ? json_tokener_parse(b.metrics) : NULL;
			json_object *bb = NULL;

			CHECK(b.st == CAI_OK && mb != NULL && json_object_object_get_ex(mb, "bucket_rows", &bb) && br != NULL &&
				  json_object_get_int64(bb) == json_object_get_int64(br), "bucket rows with 2 threads %lld, with 1 %lld",
				  bb != NULL ? (long long) json_object_get_int64(bb) : -1LL,
				  br != NULL ? (long long) json_object_get_int64(br) : -1LL);
			json_object_put(mb);
			trained_free(&b);
		}
		json_object_put(m);
		trained_free(&a);
		cai_options_free(o);
	}

	/* ids read for another max_tokens, and a mix of texts and ids, are refused */
	{
		Trained		a = train_with("{\"max_tokens\": 100}", &dtr, NULL, NULL, NULL);
		Trained		b = train_with(NULL, &tr.d, &dva, NULL, NULL);

		CHECK(a.st == CAI_ERR_INVALID && strstr(a.err.msg, "max_tokens") != NULL, "other max_tokens: %s", a.err.msg);
		CHECK(b.st == CAI_ERR_INVALID, "texts with validation ids: %s", b.err.msg);
		trained_free(&a);
		trained_free(&b);
	}
	cai_textclf_tokens_free(&ttr);
	cai_textclf_tokens_free(&tva);
	cai_strtab_free(&words);
}

/*
 * The inline forms training's loops use give what the functions give:
 * cai_popcount64 (the portable build's bit count, no libgcc call) against
 * the builtin, and cai_rng_u64_inline / cai_rng_uniform_inline against
 * cai_rng_u64 / cai_rng_uniform from the same state.
 */
static void
test_inline_helpers(void)
{
	cai_rng		a;
	cai_rng		b;
	int			bad_count = 0;
	int			bad_rng = 0;
	const uint64_t edges[] = {0, 1, UINT64_MAX, UINT64_C(1) << 63, UINT64_C(0x5555555555555555)};

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		bad_count += cai_popcount64(edges[i]) != (uint32_t) __builtin_popcountll(edges[i]);
	cai_rng_seed(&a, 7);
	cai_rng_seed(&b, 7);
	for (int i = 0; i < 100000; i++)
	{
		uint64_t	x = cai_rng_u64(&a);

		bad_rng += x != cai_rng_u64_inline(&b);
		bad_count += cai_popcount64(x) != (uint32_t) __builtin_popcountll(x);
		bad_rng += cai_rng_uniform(&a) != cai_rng_uniform_inline(&b);
	}
	CHECK(bad_count == 0, "cai_popcount64 differs from the builtin %d times", bad_count);
	CHECK(bad_rng == 0, "the inline rng differs %d times", bad_rng);
	CHECK(cai_popcount64(UINT64_MAX) == 64 && cai_popcount64(0) == 0, "cai_popcount64 edges");
}

int
main(void)
{
	toy_make(&tr, 1500, 1, false);
	toy_make(&va, 300, 2, false);
	toy_make(&te, 600, 3, true);

	test_option_table();
	test_train_and_predict();
	test_determinism();
	test_eval_sample();
	test_weight_decay();
	test_calloc_large();
	test_inline_helpers();
	test_cancel_and_limits();
	test_threads();
	test_odd_texts();
	test_bad_inputs();
	test_corrupt_models();
	test_out_of_memory();
	test_zero_copy();
	test_bucket_rank();
	test_token_ids();

	toy_free(&tr);
	toy_free(&va);
	toy_free(&te);
	return check_summary("test_textclf");
}
