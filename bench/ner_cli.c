/*
 * ner_cli.c: train and measure the BiLSTM-CRF tagger on CoNLL-style files
 * (`token<TAB>tag` lines, a blank line between sentences).
 *
 *   ner_cli [options-json] [data-dir]
 *
 * Trains on data-dir/train.conll, selects the epoch on data-dir/dev.conll,
 * and reports the test entity F1 (conlleval counting), the training seconds
 * to the best epoch and the tagging throughput on the test set, batched
 * (cai_ner_tag_batch over the whole file) and one sentence at a time
 * (cai_ner_tag).  Default data-dir: /work/shared/data/ner/wikiann-en.
 *
 * Build: make -f core.mk bench (build/bench/ner_cli)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cai/ner.h"
#include "bench_util.h"

typedef struct Log
{
	double		start;
	double		at[1001];
	double		f1[1001];
} Log;

static bool
progress(void *ctx, const cai_progress *p)
{
	Log		   *l = ctx;

	if (p->epoch_done && p->epoch <= 1000)
	{
		l->at[p->epoch] = now() - l->start;
		l->f1[p->epoch] = p->val_score;
		printf("epoch %2d  loss/sent %.4f  dev F1 %.4f  %.0f sent/s  elapsed %.1fs\n",
			   p->epoch, p->loss, p->val_score, p->rows_per_sec, l->at[p->epoch]);
		fflush(stdout);
	}
	return true;
}

static double
jnum(const char *js, const char *key)
{
	json_object *o = json_tokener_parse(js);
	json_object *v;
	double		r = -1;

	if (o != NULL && json_object_object_get_ex(o, key, &v))
		r = json_object_get_double(v);
	json_object_put(o);
	return r;
}

int
main(int argc, char **argv)
{
	const char *optjson = argc > 1 ? argv[1] : "{}";
	const char *dir = argc > 2 ? argv[2] : "/work/shared/data/ner/wikiann-en";
	Conll		tr,
				dv,
				te;
	cai_options *opts = NULL;
	cai_error	err;
	uint8_t    *model = NULL;
	size_t		model_len = 0;
	char	   *metrics = NULL;
	cai_model_file *mf = NULL;
	cai_ner    *m = NULL;
	Log			log;
	double		t0,
				secs;
	const char **pred;
	char	   *report = NULL;
	cai_ner_data dtr,
				ddv,
				dte;
	int			best;

	cai_blas_set_threads(1);
	if (read_conll_split(dir, "train", &tr) != 0 || read_conll_split(dir, "dev", &dv) != 0 ||
		read_conll_split(dir, "test", &te) != 0)
		return 1;
	printf("# train %zu sentences (%zu tokens), dev %zu, test %zu (%zu tokens); options %s\n",
		   tr.n, tr.ntok, dv.n, te.n, te.ntok, optjson);
	if (cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, optjson, &opts, &err) != CAI_OK)
	{
		fprintf(stderr, "options: %s\n", err.msg);
		return 1;
	}
	dtr = conll_data(&tr);
	ddv = conll_data(&dv);
	dte = conll_data(&te);
	printf("# training memory estimate %.1f MB\n", (double) cai_ner_train_memory(opts, &dtr) / 1048576.0);
	memset(&log, 0, sizeof(log));
	log.start = t0 = now();
	if (cai_ner_train(opts, &dtr, &ddv, NULL, NULL, progress, &log, &model, &model_len, &metrics, &err) != CAI_OK)
	{
		fprintf(stderr, "train: %s: %s\n", cai_status_name(err.status), err.msg);
		return 1;
	}
	secs = now() - t0;
	best = (int) jnum(metrics, "best_epoch");
	printf("# trained in %.1fs, best epoch %d (dev F1 %.4f) reached at %.1fs; model %.1f MB\n",
		   secs, best, jnum(metrics, "f1"), best >= 1 && best <= 1000 ? log.at[best] : -1.0,
		   (double) model_len / 1048576.0);
	if (cai_format_read(model, model_len, &mf, &err) != CAI_OK || cai_ner_load(mf, &m, &err) != CAI_OK)
	{
		fprintf(stderr, "load: %s\n", err.msg);
		return 1;
	}

	/* test F1, batched throughput */
	pred = calloc(te.ntok, sizeof(char *));
	t0 = now();
	if (cai_ner_tag_batch(m, &dte, pred, NULL, &err) != CAI_OK)
	{
		fprintf(stderr, "tag: %s\n", err.msg);
		return 1;
	}
	secs = now() - t0;
	printf("# tagging batched: %zu tokens in %.2fs = %.0f tokens/s\n", te.ntok, secs, (double) te.ntok / secs);
	if (cai_conll_eval(te.off, te.n, (const char *const *) te.tag, pred, &report, &err) != CAI_OK)
	{
		fprintf(stderr, "eval: %s\n", err.msg);
		return 1;
	}
	printf("# test P %.4f R %.4f F1 %.4f\n", jnum(report, "precision"), jnum(report, "recall"),
		   jnum(report, "f1"));
	printf("# test report %s\n", report);

	/* one sentence at a time */
	t0 = now();
	for (size_t s = 0; s < te.n; s++)
		if (cai_ner_tag(m, (const char *const *) te.tok + te.off[s], te.len + te.off[s],
						(size_t) (te.off[s + 1] - te.off[s]), pred + te.off[s], NULL, &err) != CAI_OK)
		{
			fprintf(stderr, "tag: %s\n", err.msg);
			return 1;
		}
	secs = now() - t0;
	printf("# tagging one sentence at a time: %.0f tokens/s\n", (double) te.ntok / secs);
	printf("# metrics %s\n", metrics);
	cai_free(report);
	free(pred);
	cai_ner_free(m);
	cai_model_file_free(mf);
	cai_free(model);
	cai_free(metrics);
	cai_options_free(opts);
	return 0;
}
