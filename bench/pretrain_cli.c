/*
 * pretrain_cli.c: pretrain an encoder (cai_pretrain_run) on a text file,
 * one text per line, and print its figures; optionally write the encoder
 * model bytes.
 *
 *   pretrain_cli [-j options_json] [-o model.bin] corpus.txt
 *
 * Output: the metrics JSON on one line ("metrics {...}"), and progress
 * lines "progress fraction loss" on stderr every few seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cai/options.h"
#include "cai/pretrain.h"
#include "bench_util.h"

static double last_report;

static bool
report(void *ctx, const cai_progress *p)
{
	double		t = now();

	if (t - last_report >= 10.0 || p->epoch_done)
	{
		fprintf(stderr, "progress %.3f epoch %d loss %.4f held-out accuracy %.4f\n", p->fraction, p->epoch,
				p->loss, p->val_score);
		last_report = t;
	}
	return true;
}

int
main(int argc, char **argv)
{
	const char *json = "{}";
	const char *out = NULL;
	int			c;
	FILE	   *f;
	char	  **texts = NULL;
	size_t	   *lens = NULL,
				n = 0,
				cap = 0;
	char	   *line = NULL;
	size_t		lcap = 0;
	ssize_t		got;
	cai_options *opts = NULL;
	cai_error	err = {0};
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	char	   *metrics = NULL;

	while ((c = getopt(argc, argv, "j:o:")) != -1)
	{
		if (c == 'j')
			json = optarg;
		else if (c == 'o')
			out = optarg;
		else
			return 2;
	}
	if (optind >= argc || (f = fopen(argv[optind], "r")) == NULL)
	{
		fprintf(stderr, "usage: pretrain_cli [-j options] [-o model.bin] corpus.txt\n");
		return 2;
	}
	while ((got = getline(&line, &lcap, f)) >= 0)
	{
		if (n == cap)
		{
			cap = cap ? 2 * cap : 1024;
			texts = realloc(texts, cap * sizeof(char *));
			lens = realloc(lens, cap * sizeof(size_t));
			if (texts == NULL || lens == NULL)
				return 1;
		}
		while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			got--;
		texts[n] = strndup(line, (size_t) got);
		lens[n++] = (size_t) got;
	}
	fclose(f);
	free(line);
	if (cai_options_parse(cai_pretrain_option_defs, cai_pretrain_n_option_defs, json, &opts, &err) != CAI_OK)
	{
		fprintf(stderr, "options: %s\n", err.msg);
		return 1;
	}
	printf("texts %zu\nmemory_estimate_mb %.1f\n", n,
		   cai_pretrain_memory(opts, (const char *const *) texts, lens, n) / 1048576.0);
	fflush(stdout);
	last_report = now();
	if (cai_pretrain_run(opts, (const char *const *) texts, lens, n, report, NULL, &bytes, &len, &metrics,
						 &err) != CAI_OK)
	{
		fprintf(stderr, "pretraining failed: %s\n", err.msg);
		return 1;
	}
	printf("model_bytes %zu\nmetrics %s\n", len, metrics);
	if (out != NULL && (f = fopen(out, "wb")) != NULL)
	{
		fwrite(bytes, 1, len, f);
		fclose(f);
	}
	cai_free(bytes);
	cai_free(metrics);
	cai_options_free(opts);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	free(lens);
	return 0;
}
