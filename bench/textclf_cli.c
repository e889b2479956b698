/*
 * textclf_cli.c: standalone trainer for quick experiments and benchmarks of
 * the text classifier (not part of the extension).
 *
 *   make -f core.mk bench (build/bench/textclf_cli)
 *
 *   textclf_cli [-s] [-H] [-b] [-T] [-a fast|accurate] [-v vectors.txt] [-o model.bin] [-m model.bin]
 *               TRAIN.tsv DEV.tsv TEST.tsv ['{"epochs": 10, ...}']
 *
 * TSV files have a header line and rows "label<TAB>text".  The model is
 * trained on TRAIN, with DEV as the validation set (best epoch chosen on it),
 * or with -s on a stratified split of TRAIN (as the SQL layer does by
 * default).  Prints DEV and TEST accuracy, training seconds, model size and
 * predictions per second (single thread).  -m skips training and evaluates
 * a saved model.  -H validates on a sentence-level holdout built from TRAIN
 * instead of DEV: 1000 seeded random rows of at least 15 words, every other
 * training row that is a substring of one of them removed (SST-2's training
 * rows are all the phrases of its sentences, and DEV is a random split of
 * them, so DEV rewards memorisation).  -a (--architecture) sets the "architecture" option (it
 * overrides one given in the options JSON).  -b (--batch) also times
 * cai_textclf_predict row by row against cai_textclf_predict_batch (calls of
 * BATCH_CALL_ROWS texts) on DEV and TEST, single thread, median of 5 passes
 * each (the two alternate), and prints both rates, their ratio, the median
 * of the passes' ratios and the largest difference of a probability between
 * the two (with the rows whose labels differ).  -T (--token-ids) hands the
 * trainer the training and validation rows as token ids
 * (cai_textclf_tokens, one word table), as the SQL training worker reads
 * them, instead of texts (the same model; the worker's training path).
 * -v (--vectors) trains with
 * pretrained word vectors from a GloVe / word2vec / fastText text file
 * (cai_vectors_parse), as the "word_vectors" option does in SQL; the metrics
 * then hold their coverage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <getopt.h>
#include <math.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cai/format.h"
#include "cai/ner.h"
#include "cai/textclf.h"
#include "cai/vectors.h"
#include "bench_util.h"

static bool
on_progress(void *ctx, const cai_progress *p)
{
	(void) ctx;
	if (p->epoch_done)
		fprintf(stderr, "  epoch %d/%d loss %.4f val %.4f rows/s %.0f\n",
				p->epoch, p->epochs, p->loss, p->val_score, p->rows_per_sec);
	return true;
}

static int
word_count(const char *s, size_t len)
{
	int			words = 1;

	for (size_t j = 0; j < len; j++)
		words += s[j] == ' ';
	return words;
}

/* Move a sentence-level holdout out of tr into ho (see -H). */
static void
sentence_holdout(Tsv *tr, Tsv *ho)
{
	size_t		n_ho = 0;
	bool	   *is_ho = calloc(tr->n, sizeof(bool));
	bool	   *drop = calloc(tr->n, sizeof(bool));
	uint64_t	x = 12345;
	size_t		tries = 0;
	size_t		w = 0;
	size_t		k = 0;

	while (n_ho < 1000 && tries++ < 100 * tr->n)
	{
		size_t		i;

		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		i = (size_t) (x >> 33) % tr->n;
		if (!is_ho[i] && word_count(tr->texts[i], tr->lens[i]) >= 15)
		{
			is_ho[i] = true;
			n_ho++;
		}
	}
	for (size_t i = 0; i < tr->n; i++)
	{
		if (is_ho[i])
			continue;
		for (size_t j = 0; j < tr->n && !drop[i]; j++)
			if (is_ho[j] && strstr(tr->texts[j], tr->texts[i]) != NULL)
				drop[i] = true;
	}
	ho->texts = malloc(n_ho * sizeof(char *));
	ho->lens = malloc(n_ho * sizeof(size_t));
	ho->labels = malloc(n_ho * sizeof(int32_t));
	for (size_t i = 0; i < tr->n; i++)
	{
		if (is_ho[i])
		{
			ho->texts[k] = tr->texts[i];
			ho->lens[k] = tr->lens[i];
			ho->labels[k] = tr->labels[i];
			k++;
		}
		else if (!drop[i])
		{
			tr->texts[w] = tr->texts[i];
			tr->lens[w] = tr->lens[i];
			tr->labels[w] = tr->labels[i];
			w++;
		}
	}
	ho->n = k;
	fprintf(stderr, "sentence holdout: %zu rows; %zu training rows left (%zu phrases of them removed)\n",
			k, w, tr->n - w - k);
	tr->n = w;
	free(is_ho);
	free(drop);
}

static cai_textclf_data
as_data(const Tsv *t)
{
	cai_textclf_data d = {t->n, (const char *const *) t->texts, t->lens, t->labels};

	return d;
}

/*
 * d's texts as token ids in *tok (words: the word table, shared by the
 * calls), as the SQL training worker keeps rows: d then carries both.
 */
static int
as_token_ids(cai_textclf_data *d, cai_strtab *words, cai_textclf_tokens *tok, int max_tokens)
{
	cai_error	err;

	if ((words->cap == 0 && cai_strtab_init(words, 1024, &err) != CAI_OK) ||
		cai_textclf_tokens_init(tok, words, max_tokens, &err) != CAI_OK)
	{
		fprintf(stderr, "token ids: %s\n", err.msg);
		return 1;
	}
	for (size_t i = 0; i < d->n; i++)
		if (cai_textclf_tokens_add(tok, d->texts[i], d->lens[i], &err) != CAI_OK)
		{
			fprintf(stderr, "token ids: %s\n", err.msg);
			return 1;
		}
	d->tokens = tok;
	return 0;
}

/* accuracy of the loaded model on t; *secs receives the prediction time */
static double
evaluate(const cai_textclf *m, const Tsv *t, double *secs)
{
	float		probs[1024];
	size_t		correct = 0;
	double		t0 = now();
	cai_error	err;

	for (size_t i = 0; i < t->n; i++)
	{
		int			best = 0;

		if (cai_textclf_predict(m, t->texts[i], t->lens[i], probs, &err) != CAI_OK)
		{
			fprintf(stderr, "predict: %s\n", err.msg);
			exit(1);
		}
		for (int c = 1; c < cai_textclf_n_labels(m); c++)
			if (probs[c] > probs[best])
				best = c;
		correct += best == t->labels[i];
	}
	*secs = now() - t0;
	return t->n ? (double) correct / (double) t->n : 0.0;
}

#define BATCH_CALL_ROWS 1000
#define BATCH_REPS		5

/* Per-row against batched prediction on t (see -b). */
static void
bench_batch(const cai_textclf *m, const Tsv *t, const char *name)
{
	int			L = cai_textclf_n_labels(m);
	float	   *p1 = malloc(sizeof(float) * t->n * (size_t) L);
	float	   *p2 = malloc(sizeof(float) * t->n * (size_t) L);
	double		row_s[BATCH_REPS],
				batch_s[BATCH_REPS],
				ratio[BATCH_REPS];
	double		max_diff = 0.0;
	size_t		label_diffs = 0;
	cai_error	err;

	for (int rep = 0; rep < BATCH_REPS; rep++)
	{
		double		t0 = now();

		for (size_t i = 0; i < t->n; i++)
			if (cai_textclf_predict(m, t->texts[i], t->lens[i], p1 + i * (size_t) L, &err) != CAI_OK)
			{
				fprintf(stderr, "predict: %s\n", err.msg);
				exit(1);
			}
		row_s[rep] = now() - t0;
		t0 = now();
		for (size_t i = 0; i < t->n; i += BATCH_CALL_ROWS)
		{
			size_t		k = t->n - i < BATCH_CALL_ROWS ? t->n - i : BATCH_CALL_ROWS;

			if (cai_textclf_predict_batch(m, (const char *const *) t->texts + i, t->lens + i, k,
										  p2 + i * (size_t) L, &err) != CAI_OK)
			{
				fprintf(stderr, "predict_batch: %s\n", err.msg);
				exit(1);
			}
		}
		batch_s[rep] = now() - t0;
		ratio[rep] = row_s[rep] / batch_s[rep];
	}
	for (size_t i = 0; i < t->n; i++)
	{
		int			b1 = 0,
					b2 = 0;

		for (int c = 0; c < L; c++)
		{
			double		d = fabs((double) p1[i * L + c] - (double) p2[i * L + c]);

			if (d > max_diff)
				max_diff = d;
			if (p1[i * L + c] > p1[i * L + b1])
				b1 = c;
			if (p2[i * L + c] > p2[i * L + b2])
				b2 = c;
		}
		label_diffs += b1 != b2;
	}
	qsort(row_s, BATCH_REPS, sizeof(double), cmp_double);
	qsort(batch_s, BATCH_REPS, sizeof(double), cmp_double);
	qsort(ratio, BATCH_REPS, sizeof(double), cmp_double);
	printf("batch_%s rows %zu per_row_per_s %.0f batch_per_s %.0f ratio %.2f (medians of %d; median of the "
		   "passes' ratios %.2f) max_abs_diff %.3g label_diffs %zu\n",
		   name, t->n, t->n / row_s[BATCH_REPS / 2], t->n / batch_s[BATCH_REPS / 2],
		   row_s[BATCH_REPS / 2] / batch_s[BATCH_REPS / 2], BATCH_REPS, ratio[BATCH_REPS / 2], max_diff,
		   label_diffs);
	free(p1);
	free(p2);
}

int
main(int argc, char **argv)
{
	Tsv			tr,
				dev,
				test,
				hold;
	bool		split = false;
	bool		holdout = false;
	bool		batch = false;
	const char *out_path = NULL;
	const char *in_path = NULL;
	const char *opts_json = NULL;
	const char *arch = NULL;
	const char *vec_path = NULL;
	cai_vectors *vset = NULL;
	cai_word_vectors wv = {0};
	static const struct option long_opts[] = {
		{"architecture", required_argument, NULL, 'a'},
		{"vectors", required_argument, NULL, 'v'},
		{"batch", no_argument, NULL, 'b'},
		{"token-ids", no_argument, NULL, 'T'},
		{NULL, 0, NULL, 0}
	};
	cai_options *opts;
	cai_error	err;
	uint8_t    *model;
	size_t		model_len;
	char	   *metrics;
	cai_model_file *mf;
	cai_textclf *m;
	cai_textclf_data dtr = {0},
				ddev = {0};
	bool		token_ids = false;
	cai_strtab	words = {0};
	cai_textclf_tokens tok_tr = {0},
				tok_dev = {0};
	double		t0,
				train_secs,
				secs,
				dev_acc,
				test_acc;
	int			opt;

	while ((opt = getopt_long(argc, argv, "sHbTo:m:a:v:", long_opts, NULL)) != -1)
	{
		if (opt == 'a')
			arch = optarg;
		else if (opt == 'v')
			vec_path = optarg;
		else if (opt == 's')
			split = true;
		else if (opt == 'H')
			holdout = true;
		else if (opt == 'b')
			batch = true;
		else if (opt == 'T')
			token_ids = true;
		else if (opt == 'm')
			in_path = optarg;
		else if (opt == 'o')
			out_path = optarg;
		else
			return 2;
	}
	if (argc - optind < 3)
	{
		fprintf(stderr, "usage: %s [-s] [-H] [-b] [-T] [-a fast|accurate] [-v vectors.txt] [-o model] [-m model] TRAIN.tsv DEV.tsv TEST.tsv [options-json]\n",
				argv[0]);
		return 2;
	}
	if (read_tsv(argv[optind], &tr, true) || read_tsv(argv[optind + 1], &dev, false) ||
		read_tsv(argv[optind + 2], &test, false))
		return 1;
	if (argc - optind > 3)
		opts_json = argv[optind + 3];
	if (arch != NULL)
	{
		json_object *o = json_tokener_parse(opts_json != NULL ? opts_json : "{}");

		if (o == NULL || !json_object_is_type(o, json_type_object))
		{
			fprintf(stderr, "options: not a JSON object\n");
			return 1;
		}
		json_object_object_add(o, "architecture", json_object_new_string(arch));
		opts_json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	}
	if (cai_textclf_parse_options(opts_json, &opts, &err) != CAI_OK)
	{
		fprintf(stderr, "options: %s\n", err.msg);
		return 1;
	}
	if (vec_path != NULL && load_vectors(vec_path, &vset, &wv) != 0)
		return 1;
	if (holdout)
		sentence_holdout(&tr, &hold);
	dtr = as_data(&tr);
	ddev = as_data(holdout ? &hold : &dev);
	if (token_ids &&
		(as_token_ids(&dtr, &words, &tok_tr, (int) cai_opt_int(opts, "max_tokens")) != 0 ||
		 as_token_ids(&ddev, &words, &tok_dev, (int) cai_opt_int(opts, "max_tokens")) != 0))
		return 1;
	fprintf(stderr, "train %zu, dev %zu, test %zu rows, %d labels, options %s\n",
			tr.n, dev.n, test.n, n_label_names, opts_json ? opts_json : "{}");
	printf("train_memory_estimate_mb %.1f\n",
		   cai_textclf_train_memory(opts, &dtr, n_label_names, vset != NULL ? &wv : NULL) / 1048576.0);
	t0 = now();
	if (in_path != NULL)
	{
		if ((model = read_bytes(in_path, &model_len)) == NULL)
			return 1;
		metrics = cai_strndup("{}", 2);
	}
	else if (cai_textclf_train(opts, (const char *const *) label_names, n_label_names, &dtr,
						  split ? NULL : &ddev, vset != NULL ? &wv : NULL, NULL, on_progress, NULL,
						  &model, &model_len, &metrics, &err) != CAI_OK)
	{
		fprintf(stderr, "train: %s: %s\n", cai_status_name(err.status), err.msg);
		return 1;
	}
	train_secs = now() - t0;
	if (out_path != NULL)
	{
		FILE	   *f = fopen(out_path, "wb");

		if (f == NULL || fwrite(model, 1, model_len, f) != model_len)
			perror(out_path);
		if (f != NULL)
			fclose(f);
	}
	if (cai_format_read(model, model_len, &mf, &err) != CAI_OK ||
		cai_textclf_load(mf, &m, &err) != CAI_OK)
	{
		fprintf(stderr, "load: %s\n", err.msg);
		return 1;
	}
	dev_acc = evaluate(m, &dev, &secs);
	/* the longer dev rows resemble whole sentences (SST-2 dev is phrases) */
	{
		Tsv			dl = dev;
		size_t		k = 0;

		dl.texts = malloc(dev.n * sizeof(char *));
		dl.lens = malloc(dev.n * sizeof(size_t));
		dl.labels = malloc(dev.n * sizeof(int32_t));
		for (size_t i = 0; i < dev.n; i++)
		{
			int			words = 1;

			for (size_t j = 0; j < dev.lens[i]; j++)
				words += dev.texts[i][j] == ' ';
			if (words >= 15)
			{
				dl.texts[k] = dev.texts[i];
				dl.lens[k] = dev.lens[i];
				dl.labels[k] = dev.labels[i];
				k++;
			}
		}
		dl.n = k;
		printf("dev_long_acc %.4f (%zu rows of >= 15 words)\n", evaluate(m, &dl, &secs), k);
		free(dl.texts);
		free(dl.lens);
		free(dl.labels);
	}
	test_acc = evaluate(m, &test, &secs);
	/* throughput: best of five passes over the test set (whole sentences) */
	{
		double		best = 1e30;

		for (int rep = 0; rep < 5; rep++)
		{
			evaluate(m, &test, &secs);
			if (secs < best)
				best = secs;
		}
		secs = best / (double) test.n;
	}
	printf("metrics %s\n", metrics);
	printf("dev_acc %.4f test_acc %.4f train_s %.2f model_mb %.1f loaded_mb %.1f pred_per_s %.0f\n",
		   dev_acc, test_acc, train_secs, model_len / 1048576.0,
		   cai_textclf_memory(m) / 1048576.0, 1.0 / secs);
	if (batch)
	{
		bench_batch(m, &dev, "dev");
		bench_batch(m, &test, "test");
	}
	cai_textclf_free(m);
	cai_textclf_tokens_free(&tok_tr);
	cai_textclf_tokens_free(&tok_dev);
	cai_strtab_free(&words);
	cai_model_file_free(mf);
	cai_free(model);
	cai_free(metrics);
	cai_options_free(opts);
	cai_vectors_free(vset);
	return 0;
}
