/*
 * load_bench.c: time and private memory of loading a model from bytes that
 * are already resident (what a backend or parallel worker does when the
 * model's bytes are in a shared read-only mapping).
 *
 *   load_bench MODEL...                 bench each model file
 *   load_bench --train-ner DIR OUT JSON train an entity model on DIR/train.conll
 *                                       (validation DIR/dev.conll) into OUT
 *
 * Each model file is read into a page-aligned buffer (as mmap() gives) and
 * every page is touched first.  Paths, each the median of REPS runs:
 *
 *   copy   cai_format_read (checksum, every tensor copied) + load: the path
 *          before zero-copy loading
 *   view   cai_format_read_view(verify_checksum=false) + load: the path of a
 *          process attaching bytes validated before (trusted)
 *   viewv  cai_format_read_view(verify_checksum=true) + load: the first,
 *          validating load of bytes in place
 *
 * "private" is the bytes live through the cai allocator after the load
 * (the model file's table and copies plus the model), counted by a counting
 * cai_allocator hook; json-c's own temporary allocations are not counted
 * (they are freed before the load returns).  Predictions (text
 * classification: class probabilities of a few texts; NER: tags and scores
 * of a few sentences) of every path must be bit-identical.
 *
 * Build: make -f core.mk bench (build/bench/load_bench).  -DLOAD_BENCH_OLD
 * builds against a core without cai_format_read_view (copy path only).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cai/format.h"
#include "cai/ner.h"
#include "cai/options.h"
#include "cai/textclf.h"
#include "bench_util.h"

#define REPS 21

/* ---- counting allocator ---- */

typedef struct Counter
{
	int64_t		live;
	int64_t		peak;
	int64_t		total;
} Counter;

static Counter cnt;

static void *
count_alloc(void *ctx, size_t size)
{
	size_t	   *p = malloc(size + 16);

	if (p == NULL)
		return NULL;
	p[0] = size;
	cnt.live += (int64_t) size;
	cnt.total += (int64_t) size;
	if (cnt.live > cnt.peak)
		cnt.peak = cnt.live;
	return (char *) p + 16;
}

static void
count_free(void *ctx, void *ptr)
{
	size_t	   *p;

	if (ptr == NULL)
		return;
	p = (size_t *) ((char *) ptr - 16);
	cnt.live -= (int64_t) p[0];
	free(p);
}

static int
train_ner(const char *dir, const char *out, const char *json)
{
	Conll		tr,
				dv;
	cai_ner_data dtr,
				ddv;
	cai_options *o = NULL;
	cai_error	err;
	uint8_t    *model = NULL;
	size_t		len = 0;
	char	   *metrics = NULL;
	FILE	   *f;
	double		t0;

	if (read_conll_split(dir, "train", &tr) != 0 || read_conll_split(dir, "dev", &dv) != 0)
		return 1;
	dtr = conll_data(&tr);
	ddv = conll_data(&dv);
	if (cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, json, &o, &err) != CAI_OK)
	{
		fprintf(stderr, "options: %s\n", err.msg);
		return 1;
	}
	t0 = now();
	if (cai_ner_train(o, &dtr, &ddv, NULL, NULL, NULL, NULL, &model, &len, &metrics, &err) != CAI_OK)
	{
		fprintf(stderr, "train: %s\n", err.msg);
		return 1;
	}
	printf("trained in %.1f s, %.1f MB: %s\n", now() - t0, len / 1e6, metrics);
	f = fopen(out, "wb");
	if (f == NULL || fwrite(model, 1, len, f) != len || fclose(f) != 0)
	{
		perror(out);
		return 1;
	}
	return 0;
}

/* ---- bench ---- */

static const char *const probe_texts[] = {
	"a gorgeous , witty , seductive movie .",
	"the plot is nothing but boilerplate clichés from start to finish ,",
	"unseen wrds and misspelings still get vectors 👍",
	"",
	"Barack Obama visited the United Nations in New York on Monday .",
};
#define N_PROBES (sizeof(probe_texts) / sizeof(probe_texts[0]))

/* Model-independent fingerprint of predictions, for bit-identity across paths. */
static uint64_t
predictions(const cai_textclf *clf, const cai_ner *ner)
{
	uint64_t	h = 1469598103934665603ULL;

	for (size_t i = 0; i < N_PROBES; i++)
	{
		if (clf != NULL)
		{
			float		probs[64];

			if (cai_textclf_predict(clf, probe_texts[i], strlen(probe_texts[i]), probs, NULL) == CAI_OK)
				h = cai_hash_bytes(probs, sizeof(float) * (size_t) cai_textclf_n_labels(clf), h);
		}
		else
		{
			/* whitespace tokens */
			char		buf[256];
			const char *tok[64];
			size_t		lens[64];
			const char *tags[64];
			float		scores[64];
			size_t		n = 0;
			char	   *save = NULL;

			snprintf(buf, sizeof(buf), "%s", probe_texts[i]);
			for (char *t = strtok_r(buf, " ", &save); t != NULL && n < 64; t = strtok_r(NULL, " ", &save))
			{
				tok[n] = t;
				lens[n] = strlen(t);
				n++;
			}
			if (n > 0 && cai_ner_tag(ner, tok, lens, n, tags, scores, NULL) == CAI_OK)
			{
				h = cai_hash_bytes(scores, sizeof(float) * n, h);
				for (size_t k = 0; k < n; k++)
					h = cai_hash_bytes(tags[k], strlen(tags[k]), h);
			}
		}
	}
	return h;
}

typedef struct Result
{
	double		ms;				/* median */
	int64_t		priv;			/* bytes live after the load */
	int64_t		peak;			/* peak during it */
	uint64_t	pred;
	int			ok;
} Result;

/* mode: 0 copy, 1 view (unverified), 2 view (verified) */
static Result
run(const uint8_t *buf, size_t len, bool ner_task, int mode)
{
	double		t[REPS];
	Result		r = {0};

	for (int k = 0; k < REPS; k++)
	{
		cai_model_file *mf = NULL;
		cai_textclf *clf = NULL;
		cai_ner    *ner = NULL;
		cai_error	err;
		cai_status	st;
		double		t0;

		cnt = (Counter) {0};
		t0 = now();
#ifdef LOAD_BENCH_OLD
		st = cai_format_read(buf, len, &mf, &err);
#else
		st = mode == 0 ? cai_format_read(buf, len, &mf, &err) :
			cai_format_read_view(buf, len, mode == 2, &mf, &err);
#endif
		if (st == CAI_OK)
			st = ner_task ? cai_ner_load(mf, &ner, &err) : cai_textclf_load(mf, &clf, &err);
		t[k] = now() - t0;
		if (st != CAI_OK)
		{
			fprintf(stderr, "load failed: %s\n", err.msg);
			cai_model_file_free(mf);
			return r;
		}
		r.priv = cnt.live;
		r.peak = cnt.peak;
		if (k == 0)
			r.pred = predictions(clf, ner);
		cai_textclf_free(clf);
		cai_ner_free(ner);
		cai_model_file_free(mf);
	}
	qsort(t, REPS, sizeof(double), cmp_double);
	r.ms = t[REPS / 2] * 1e3;
	r.ok = 1;
	return r;
}

int
main(int argc, char **argv)
{
	cai_allocator a = {count_alloc, count_free, NULL};

	if (argc == 5 && strcmp(argv[1], "--train-ner") == 0)
		return train_ner(argv[2], argv[3], argv[4]);
	if (argc < 2)
	{
		fprintf(stderr, "usage: load_bench MODEL... | load_bench --train-ner DIR OUT JSON\n");
		return 2;
	}
	cai_blas_set_threads(1);
	cai_set_allocator(&a);
	printf("| model | MB | path | load ms (median of %d) | private bytes | private %% of model | peak bytes | predictions |\n",
		   REPS);
	printf("|---|---|---|---|---|---|---|---|\n");
	for (int i = 1; i < argc; i++)
	{
		FILE	   *f = fopen(argv[i], "rb");
		uint8_t    *buf;
		size_t		len;
		cai_model_file *mf = NULL;
		bool		ner_task;
		static const char *const names[] = {"copy", "view", "viewv"};
		uint64_t	want = 0;

		if (f == NULL)
		{
			perror(argv[i]);
			return 1;
		}
		fseek(f, 0, SEEK_END);
		len = (size_t) ftell(f);
		fseek(f, 0, SEEK_SET);
		if (posix_memalign((void **) &buf, 4096, len + 4096) != 0 || fread(buf, 1, len, f) != len)
		{
			perror(argv[i]);
			return 1;
		}
		fclose(f);
		for (size_t p = 0; p < len; p += 4096)	/* resident */
			((volatile uint8_t *) buf)[p];
		if (cai_format_read(buf, len, &mf, NULL) != CAI_OK)
		{
			fprintf(stderr, "%s: not a model\n", argv[i]);
			return 1;
		}
		ner_task = strstr(mf->meta_json, "\"task\":\"ner\"") != NULL ||
			strstr(mf->meta_json, "\"task\": \"ner\"") != NULL;
		cai_model_file_free(mf);
#ifdef LOAD_BENCH_OLD
		for (int mode = 0; mode < 1; mode++)
#else
		for (int mode = 0; mode < 3; mode++)
#endif
		{
			Result		r = run(buf, len, ner_task, mode);

			if (!r.ok)
				return 1;
			if (mode == 0)
				want = r.pred;
			printf("| %s | %.1f | %s | %.3f | %" PRId64 " | %.2f | %" PRId64 " | %016" PRIx64 "%s |\n",
				   argv[i], len / 1e6, names[mode], r.ms, r.priv, 100.0 * (double) r.priv / (double) len,
				   r.peak, r.pred, r.pred == want ? "" : " DIFFERENT");
		}
		free(buf);
	}
	return 0;
}
