/*
 * ner_cli.c: train and measure the BiLSTM-CRF tagger on CoNLL-style files
 * (`token<TAB>tag` lines, a blank line between sentences).
 *
 *   ner_cli [-e] [-o model.bin] [-v vectors.txt] [options-json] [data-dir]
 *
 * Trains on data-dir/train.conll, selects the epoch on data-dir/dev.conll,
 * and reports the test entity F1 (conlleval counting), the training seconds
 * to the best epoch and the tagging throughput on the test set, batched
 * (cai_ner_tag_batch over the whole file) and one sentence at a time
 * (cai_ner_tag).  Default data-dir: /work/shared/data/ner/wikiann-en.
 *
 * -e: also time entities in raw text as the SQL layer scores a table, each
 * test sentence joined back into one text (tokens separated by spaces):
 * cai_model_entities text by text against cai_model_entities_batch in calls
 * of ENT_CALL texts, with cai_model_tag_batch of the same sentences in calls
 * of ENT_CALL as the reference rate (without scores, as cai_tag_batch calls
 * it, and with the marginals that entity scores need); rows/s are medians of
 * ENT_ROUNDS rounds (interleaved), and the batch answers are compared with
 * the per-text ones (spans and types must be equal; the scores' largest
 * difference and how many differ by more than 1e-6 are reported).
 *
 * -o: also write the trained model's bytes to model.bin (to compare the
 * models of two builds: training must give the same bytes).
 *
 * -v: train with pretrained word vectors from a GloVe / word2vec / fastText
 * text file, as the "word_vectors" option does in SQL.
 *
 * Build: make -f core.mk bench (build/bench/ner_cli)
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cai/model.h"
#include "cai/ner.h"
#include "bench_util.h"

#define ENT_CALL	1000		/* texts per cai_model_entities_batch call */
#define ENT_ROUNDS	5

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

static double
median(double *x, int n)
{
	qsort(x, (size_t) n, sizeof(double), cmp_double);
	return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/* Seconds of cai_model_tag_batch over te in calls of ENT_CALL sentences; -1 on error. */
static double
time_tag_batch(const cai_model *cm, const Conll *te, const char **tags, float *scores)
{
	double		t0 = now();
	cai_error	err;

	for (size_t s0 = 0; s0 < te->n; s0 += ENT_CALL)
	{
		cai_ner_data d = conll_data(te);

		d.n = te->n - s0 < ENT_CALL ? te->n - s0 : ENT_CALL;
		d.offsets = te->off + s0;
		if (cai_model_tag_batch(cm, &d, tags, scores, &err) != CAI_OK)
		{
			fprintf(stderr, "tag_batch: %s\n", err.msg);
			return -1;
		}
	}
	return now() - t0;
}

/* -e: per-text entities against entities_batch (see the file comment); 0 or 1 on error. */
static int
bench_entities(const uint8_t *model, size_t model_len, const Conll *te)
{
	cai_model  *cm = NULL;
	cai_error	err;
	char	  **texts = calloc(te->n, sizeof(char *));
	size_t	   *lens = calloc(te->n, sizeof(size_t));
	size_t	   *offsets = calloc(te->n + 1, sizeof(size_t));
	size_t	   *one_off = calloc(te->n + 1, sizeof(size_t));
	cai_entity *one = NULL;
	const char **tags = calloc(te->ntok, sizeof(char *));
	float	   *scores = calloc(te->ntok, sizeof(float));
	double		t_one[ENT_ROUNDS],
				t_batch[ENT_ROUNDS],
				t_tag[ENT_ROUNDS],
				t_tags[ENT_ROUNDS];
	double		maxd = 0.0;
	size_t		differ = 0;
	size_t		over = 0;
	size_t		raw_tokens = 0;
	size_t		n_one = 0;

	if (cai_model_load(model, model_len, false, true, &cm, &err) != CAI_OK)
	{
		fprintf(stderr, "model load: %s\n", err.msg);
		return 1;
	}
	for (size_t s = 0; s < te->n; s++)
	{
		size_t		len = 0;

		for (int64_t i = te->off[s]; i < te->off[s + 1]; i++)
			len += te->len[i] + 1;
		texts[s] = malloc(len + 1);
		len = 0;
		for (int64_t i = te->off[s]; i < te->off[s + 1]; i++)
		{
			if (len > 0)
				texts[s][len++] = ' ';
			memcpy(texts[s] + len, te->tok[i], te->len[i]);
			len += te->len[i];
		}
		texts[s][len] = '\0';
		lens[s] = len;
		{
			cai_token  *toks = NULL;
			size_t		nt = 0;

			if (cai_tokenize(texts[s], len, 0, &toks, &nt, &err) == CAI_OK)
				raw_tokens += nt;
			cai_free(toks);
		}
	}
	for (int r = 0; r < ENT_ROUNDS; r++)
	{
		double		t0 = now();

		/* text by text (the entities of the last round kept for the comparison) */
		n_one = 0;
		one_off[0] = 0;
		for (size_t s = 0; s < te->n; s++)
		{
			cai_entity *e = NULL;
			size_t		ne = 0;

			if (cai_model_entities(cm, texts[s], lens[s], 0, &e, &ne, &err) != CAI_OK)
			{
				fprintf(stderr, "entities of text %zu: %s\n", s, err.msg);
				return 1;
			}
			if (r == ENT_ROUNDS - 1 && ne > 0)
			{
				one = realloc(one, sizeof(cai_entity) * (n_one + ne));
				memcpy(one + n_one, e, sizeof(cai_entity) * ne);
			}
			n_one += ne;
			one_off[s + 1] = n_one;
			cai_free(e);
		}
		t_one[r] = now() - t0;

		/* calls of ENT_CALL texts */
		t0 = now();
		for (size_t s0 = 0; s0 < te->n; s0 += ENT_CALL)
		{
			size_t		k = te->n - s0 < ENT_CALL ? te->n - s0 : ENT_CALL;
			cai_entity *e = NULL;

			if (cai_model_entities_batch(cm, (const char *const *) texts + s0, lens + s0, k, 0, &e, offsets + s0,
										 &err) != CAI_OK)
			{
				fprintf(stderr, "entities_batch of texts %zu..: %s\n", s0, err.msg);
				return 1;
			}
			/* compare with the per-text entities of the last round */
			for (size_t i = 0; r == ENT_ROUNDS - 1 && i < k; i++)
			{
				size_t		s = s0 + i;
				size_t		nb = offsets[s0 + i + 1] - offsets[s0 + i];
				bool		same = nb == one_off[s + 1] - one_off[s];

				for (size_t j = 0; same && j < nb; j++)
				{
					const cai_entity *x = &e[offsets[s0 + i] + j];
					const cai_entity *y = &one[one_off[s] + j];
					double		d = fabs((double) x->score - (double) y->score);

					maxd = d > maxd ? d : maxd;
					over += d > 1e-6;
					same = x->start == y->start && x->end == y->end && x->cstart == y->cstart &&
						x->cend == y->cend && x->type == y->type;
				}
				differ += !same;
			}
			cai_free(e);
		}
		t_batch[r] = now() - t0;

		/* the reference: the same sentences as tokens, cai_model_tag_batch in calls of ENT_CALL */
		if ((t_tag[r] = time_tag_batch(cm, te, tags, NULL)) < 0 ||
			(t_tags[r] = time_tag_batch(cm, te, tags, scores)) < 0)
			return 1;
		printf("# round %d: entities text by text %.3fs, entities_batch %.3fs, tag_batch %.3fs, with scores %.3fs\n",
			   r + 1, t_one[r], t_batch[r], t_tag[r], t_tags[r]);
	}
	{
		double		one_s = median(t_one, ENT_ROUNDS);
		double		batch_s = median(t_batch, ENT_ROUNDS);
		double		tag_s = median(t_tag, ENT_ROUNDS);
		double		tags_s = median(t_tags, ENT_ROUNDS);

		printf("# entities in raw text, %zu test sentences as texts (%zu entities), median of %d rounds:\n", te->n,
			   n_one, ENT_ROUNDS);
		printf("#   cai_model_entities text by text:            %8.0f rows/s\n", (double) te->n / one_s);
		printf("#   cai_model_entities_batch, calls of %d:    %8.0f rows/s\n", ENT_CALL, (double) te->n / batch_s);
		printf("#   cai_model_tag_batch (tokens), calls of %d: %8.0f rows/s, with scores %.0f rows/s\n", ENT_CALL,
			   (double) te->n / tag_s, (double) te->n / tags_s);
		printf("#   ratio entities_batch / text by text %.2f; entities_batch / tag_batch %.2f (with scores %.2f)\n",
			   one_s / batch_s, tag_s / batch_s, tags_s / batch_s);
		printf("#   tokens: %zu in the raw texts (cai_tokenize), %zu in the file; per token entities_batch / tag_batch "
			   "with scores %.2f\n", raw_tokens, te->ntok, (tags_s / (double) te->ntok) / (batch_s / (double) raw_tokens));
		printf("#   entities_batch against text by text: %zu of %zu texts differ in spans or types; "
			   "max score difference %.3g, %zu of %zu scores differ by more than 1e-6\n",
			   differ, te->n, maxd, over, n_one);
	}
	for (size_t s = 0; s < te->n; s++)
		free(texts[s]);
	free(texts);
	free(lens);
	free(offsets);
	free(one_off);
	free(one);
	free(tags);
	free(scores);
	cai_model_free(cm);
	return differ > 0;
}

int
main(int argc, char **argv)
{
	bool		ent = false;
	const char *out_path = NULL;
	const char *vec_path = NULL;
	cai_vectors *vset = NULL;
	cai_word_vectors wv = {0};
	int			a = 1;
	const char *optjson;
	const char *dir;
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

	for (; a < argc && argv[a][0] == '-'; a++)
	{
		if (strcmp(argv[a], "-e") == 0)
			ent = true;
		else if (strcmp(argv[a], "-o") == 0 && a + 1 < argc)
			out_path = argv[++a];
		else if (strcmp(argv[a], "-v") == 0 && a + 1 < argc)
			vec_path = argv[++a];
		else
		{
			fprintf(stderr, "usage: ner_cli [-e] [-o model.bin] [-v vectors.txt] [options-json] [data-dir]\n");
			return 2;
		}
	}
	optjson = a < argc ? argv[a] : "{}";
	dir = a + 1 < argc ? argv[a + 1] : "/work/shared/data/ner/wikiann-en";
	cai_blas_set_threads(1);
	if (read_conll_split(dir, "train", &tr) != 0 || read_conll_split(dir, "dev", &dv) != 0 ||
		read_conll_split(dir, "test", &te) != 0)
		return 1;
	if (vec_path != NULL && load_vectors(vec_path, &vset, &wv) != 0)
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
	if (cai_ner_train(opts, &dtr, &ddv, vset != NULL ? &wv : NULL, NULL, progress, &log, &model, &model_len,
					  &metrics, &err) != CAI_OK)
	{
		fprintf(stderr, "train: %s: %s\n", cai_status_name(err.status), err.msg);
		return 1;
	}
	secs = now() - t0;
	best = (int) jnum(metrics, "best_epoch");
	printf("# trained in %.1fs, best epoch %d (dev F1 %.4f) reached at %.1fs; model %.1f MB\n",
		   secs, best, jnum(metrics, "f1"), best >= 1 && best <= 1000 ? log.at[best] : -1.0,
		   (double) model_len / 1048576.0);
	if (out_path != NULL && write_file(out_path, model, model_len) != 0)
		return 1;
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
	if (ent && bench_entities(model, model_len, &te) != 0)
		return 1;
	cai_free(report);
	free(pred);
	cai_ner_free(m);
	cai_model_file_free(mf);
	cai_free(model);
	cai_free(metrics);
	cai_options_free(opts);
	cai_vectors_free(vset);
	return 0;
}
