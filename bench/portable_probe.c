/*
 * portable_probe.c: small trainings whose bytes bench/portable.sh compares
 * across builds (native, portable, AVX2 clones, baseline).
 *
 *   portable_probe SST2_DIR WIKIANN_DIR OUTDIR
 *
 * Trains a fast classifier (defaults, seed 7) on all of SST-2's training
 * rows, an accurate one (1 epoch, threads 1) on the first 8,000 and a NER
 * tagger (2 epochs, threads 1) on WikiANN's first 4,000 training sentences
 * (1,000 dev), validated on dev; writes to OUTDIR each model's bytes
 * (NAME.model), its probabilities on dev and test row by row (NAME.pred,
 * raw float32), the accurate and fast batch path on test (NAME.batch), and
 * the tagger's scores and tags on test (ner.scores, ner.tags).  Equal files
 * mean the builds computed the same bits.  Built by bench/portable.sh
 * against each build's libcaicore.a (not part of the extension).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cai/format.h"
#include "cai/ner.h"
#include "cai/textclf.h"
#include "bench_util.h"

static void
fail(const char *what, const char *msg)
{
	fprintf(stderr, "portable_probe: %s: %s\n", what, msg);
	exit(1);
}

/* Write n bytes to dir/name.ext. */
static void
put(const char *dir, const char *name, const char *ext, const void *p, size_t n)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		fail(path, "cannot write");
}

/* The first n sentences of c (at most all of them) as tagging data. */
static cai_ner_data
conll_head(const Conll *c, size_t n)
{
	cai_ner_data d = conll_data(c);

	if (n < d.n)
		d.n = n;
	return d;
}

static void
textclf(const char *sst, const char *out, const char *name, const char *opts_json, size_t max_train)
{
	char		path[4096];
	Tsv			tr,
				dv,
				te;
	cai_textclf_data dtr = {0},
				ddv = {0};
	cai_options *opts;
	cai_error	err;
	uint8_t    *model;
	size_t		model_len;
	char	   *metrics;
	cai_model_file *mf;
	cai_textclf *m;
	float	   *probs;

	snprintf(path, sizeof(path), "%s/train.tsv", sst);
	if (read_tsv(path, &tr, true) != 0)
		exit(1);
	snprintf(path, sizeof(path), "%s/dev.tsv", sst);
	if (read_tsv(path, &dv, false) != 0)
		exit(1);
	snprintf(path, sizeof(path), "%s/test.tsv", sst);
	if (read_tsv(path, &te, false) != 0)
		exit(1);
	dtr = (cai_textclf_data) {tr.n < max_train ? tr.n : max_train, (const char *const *) tr.texts, tr.lens, tr.labels};
	ddv = (cai_textclf_data) {dv.n, (const char *const *) dv.texts, dv.lens, dv.labels};
	if (cai_textclf_parse_options(opts_json, &opts, &err) != CAI_OK)
		fail("options", err.msg);
	if (cai_textclf_train(opts, (const char *const *) label_names, n_label_names, &dtr, &ddv, NULL, NULL, NULL, NULL,
						  &model, &model_len, &metrics, &err) != CAI_OK)
		fail("train", err.msg);
	put(out, name, "model", model, model_len);
	if (cai_format_read(model, model_len, &mf, &err) != CAI_OK || cai_textclf_load(mf, &m, &err) != CAI_OK)
		fail("load", err.msg);
	probs = malloc((dv.n + te.n) * (size_t) n_label_names * sizeof(float));
	if (probs == NULL)
		fail("malloc", "out of memory");
	for (size_t i = 0; i < dv.n + te.n; i++)
	{
		const Tsv  *d = i < dv.n ? &dv : &te;
		size_t		r = i < dv.n ? i : i - dv.n;

		if (cai_textclf_predict(m, d->texts[r], d->lens[r], probs + i * n_label_names, &err) != CAI_OK)
			fail("predict", err.msg);
	}
	put(out, name, "pred", probs, (dv.n + te.n) * (size_t) n_label_names * sizeof(float));
	if (cai_textclf_predict_batch(m, (const char *const *) te.texts, te.lens, te.n, probs, &err) != CAI_OK)
		fail("predict_batch", err.msg);
	put(out, name, "batch", probs, te.n * (size_t) n_label_names * sizeof(float));
	printf("%s: %zu bytes; metrics %s\n", name, model_len, metrics);
	cai_textclf_free(m);
	cai_model_file_free(mf);
	cai_free(model);
	cai_free(metrics);
	cai_options_free(opts);
	free(probs);
}

static void
ner(const char *wiki, const char *out)
{
	Conll		tr,
				dv,
				te;
	cai_ner_data dtr,
				ddv,
				dte;
	cai_options *opts;
	cai_error	err;
	uint8_t    *model;
	size_t		model_len;
	char	   *metrics;
	cai_model_file *mf;
	cai_ner    *m;
	const char **tags;
	float	   *scores;
	char	   *text = NULL;
	size_t		text_len = 0;
	FILE	   *f;

	if (read_conll_split(wiki, "train", &tr) != 0 || read_conll_split(wiki, "dev", &dv) != 0 ||
		read_conll_split(wiki, "test", &te) != 0)
		exit(1);
	dtr = conll_head(&tr, 4000);
	ddv = conll_head(&dv, 1000);
	dte = conll_data(&te);
	if (cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, "{\"epochs\": 2, \"threads\": 1}",
						  &opts, &err) != CAI_OK)
		fail("ner options", err.msg);
	if (cai_ner_train(opts, &dtr, &ddv, NULL, NULL, NULL, NULL, &model, &model_len, &metrics, &err) != CAI_OK)
		fail("ner train", err.msg);
	put(out, "ner", "model", model, model_len);
	if (cai_format_read(model, model_len, &mf, &err) != CAI_OK || cai_ner_load(mf, &m, &err) != CAI_OK)
		fail("ner load", err.msg);
	tags = calloc(te.ntok, sizeof(char *));
	scores = calloc(te.ntok, sizeof(float));
	if (tags == NULL || scores == NULL)
		fail("calloc", "out of memory");
	if (cai_ner_tag_batch(m, &dte, tags, scores, &err) != CAI_OK)
		fail("ner tag", err.msg);
	put(out, "ner", "scores", scores, te.ntok * sizeof(float));
	/* the tags, one a line */
	if ((f = open_memstream(&text, &text_len)) == NULL)
		fail("open_memstream", "out of memory");
	for (size_t i = 0; i < te.ntok; i++)
		fprintf(f, "%s\n", tags[i]);
	fclose(f);
	put(out, "ner", "tags", text, text_len);
	printf("ner: %zu bytes; metrics %s\n", model_len, metrics);
	free(text);
	free(tags);
	free(scores);
	cai_ner_free(m);
	cai_model_file_free(mf);
	cai_free(model);
	cai_free(metrics);
	cai_options_free(opts);
}

int
main(int argc, char **argv)
{
	if (argc != 4)
	{
		fprintf(stderr, "usage: portable_probe SST2_DIR WIKIANN_DIR OUTDIR\n");
		return 2;
	}
	textclf(argv[1], argv[3], "fast", "{\"architecture\": \"fast\", \"seed\": 7}", SIZE_MAX);
	textclf(argv[1], argv[3], "accurate", "{\"architecture\": \"accurate\", \"epochs\": 1, \"seed\": 7, \"threads\": 1}", 8000);
	ner(argv[2], argv[3]);
	return 0;
}
