/*
 * ner_fixtures.h: a tiny deterministic entity corpus for the model interface
 * tests ("<name> lives in <city> ." with B-PER and B-LOC tags).
 */
#ifndef CAI_NER_FIXTURES_H
#define CAI_NER_FIXTURES_H

#include <stdio.h>
#include <string.h>

#include "cai/ner.h"

/* A tiny entity corpus: "<name> lives in <city> ." */
enum
{
	NER_N = 60, NER_T = 5
};
static const char *ner_tokens[NER_N * NER_T];
static size_t ner_lens[NER_N * NER_T];
static const char *ner_tags[NER_N * NER_T];
static int64_t ner_offsets[NER_N + 1];

static inline cai_ner_data
ner_corpus(void)
{
	static const char *const names[] = {"Ann", "Bob", "Chen", "Dana"};
	static const char *const cities[] = {"Paris", "Lima", "Oslo"};
	cai_ner_data d = {0};

	for (int s = 0; s < NER_N; s++)
	{
		const char *w[NER_T] = {names[s % 4], "lives", "in", cities[s % 3], "."};
		const char *t[NER_T] = {"B-PER", "O", "O", "B-LOC", "O"};

		ner_offsets[s] = s * NER_T;
		for (int i = 0; i < NER_T; i++)
		{
			ner_tokens[s * NER_T + i] = w[i];
			ner_lens[s * NER_T + i] = strlen(w[i]);
			ner_tags[s * NER_T + i] = t[i];
		}
	}
	ner_offsets[NER_N] = NER_N * NER_T;
	d.n = NER_N;
	d.offsets = ner_offsets;
	d.tokens = ner_tokens;
	d.token_lens = ner_lens;
	d.tags = ner_tags;
	return d;
}

/* Train an NER model with options json; returns the bytes (cai_free) or NULL. */
static inline uint8_t *
ner_train_bytes(const char *json, size_t *len)
{
	cai_ner_data d = ner_corpus();
	cai_options *o = NULL;
	cai_error	err = {0};
	uint8_t    *bytes = NULL;
	char	   *metrics = NULL;

	if (cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, json, &o, &err) != CAI_OK ||
		cai_ner_train(o, &d, NULL, NULL, NULL, NULL, NULL, &bytes, len, &metrics, &err) != CAI_OK)
		fprintf(stderr, "ner training %s: %s\n", json, err.msg);
	cai_options_free(o);
	cai_free(metrics);
	return bytes;
}

#endif							/* CAI_NER_FIXTURES_H */
