#define _GNU_SOURCE
/*
 * make_encoder.c: a random BERT encoder as an encoder model (the bytes
 * cai_export gives for an imported encoder), for benchmarks of fine-tuning
 * when no pretrained checkpoint is at hand: a WordPiece vocabulary learned
 * from a text file (one text a line; a TSV's last column), BERT's
 * initialisation (normal(0, 0.02)).
 *
 *   make_encoder TEXTS OUT [layers hidden heads intermediate positions vocab_size seed]
 *   (defaults: 2 128 2 512 128 8000 42)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cai/cai.h"

int
main(int argc, char **argv)
{
	FILE	   *f;
	char	   *buf = NULL;
	size_t		len = 0;
	size_t		cap = 0;
	const char **texts;
	size_t	   *lens;
	size_t		n = 0;
	cai_wordpiece_train_options wo;
	cai_encoder_bundle b;
	char	   *vocab = NULL;
	size_t		vlen = 0;
	uint8_t    *bytes = NULL;
	size_t		blen = 0;
	cai_error	err = {0};
	cai_rng		rng;
	int			L = argc > 3 ? atoi(argv[3]) : 2;
	int			H = argc > 4 ? atoi(argv[4]) : 128;
	int			NH = argc > 5 ? atoi(argv[5]) : 2;
	int			I = argc > 6 ? atoi(argv[6]) : 512;
	int			P = argc > 7 ? atoi(argv[7]) : 128;
	int			V = argc > 8 ? atoi(argv[8]) : 8000;
	int			seed = argc > 9 ? atoi(argv[9]) : 42;

	if (argc < 3 || (f = fopen(argv[1], "rb")) == NULL)
	{
		fprintf(stderr, "usage: make_encoder TEXTS OUT [layers hidden heads intermediate positions vocab_size seed]\n");
		return 2;
	}
	for (size_t got; (cap - len < 65536 ? (buf = realloc(buf, cap = cap * 2 + 65536)) : buf) != NULL &&
		 (got = fread(buf + len, 1, cap - len, f)) > 0;)
		len += got;
	fclose(f);
	texts = malloc(sizeof(char *) * (len + 1));
	lens = malloc(sizeof(size_t) * (len + 1));
	for (size_t at = 0; at < len;)
	{
		char	   *nl = memchr(buf + at, '\n', len - at);
		size_t		stop = nl != NULL ? (size_t) (nl - buf) : len;
		char	   *tab = memrchr(buf + at, '\t', stop - at);
		size_t		s = tab != NULL ? (size_t) (tab - buf) + 1 : at;

		texts[n] = buf + s;
		lens[n++] = stop - s;
		at = stop + 1;
	}
	cai_wordpiece_train_options_default(&wo);
	wo.vocab_size = V;
	if (cai_wordpiece_train(texts, lens, n, &wo, &vocab, &vlen, &err) != CAI_OK)
	{
		fprintf(stderr, "vocabulary: %s\n", err.msg);
		return 1;
	}
	memset(&b, 0, sizeof(b));
	cai_wordpiece_options_default(&b.wp);
	if (cai_wordpiece_vocab_load(vocab, vlen, CAI_WP_NEED_ALL, &b.vocab, &err) != CAI_OK)
	{
		fprintf(stderr, "vocabulary: %s\n", err.msg);
		return 1;
	}
	b.cfg.family = CAI_ENC_BERT;
	b.cfg.vocab_size = cai_wordpiece_vocab_size(b.vocab);
	b.cfg.hidden_size = H;
	b.cfg.num_hidden_layers = L;
	b.cfg.num_attention_heads = NH;
	b.cfg.intermediate_size = I;
	b.cfg.max_position_embeddings = P;
	b.cfg.type_vocab_size = 2;
	b.cfg.layer_norm_eps = 1e-12f;
	b.cfg.hidden_dropout_prob = 0.1f;
	b.cfg.attention_probs_dropout_prob = 0.1f;
	if (cai_encoder_create(&b.cfg, &b.enc, &err) != CAI_OK)
	{
		fprintf(stderr, "encoder: %s\n", err.msg);
		return 1;
	}
	cai_rng_seed(&rng, (uint64_t) seed);
	cai_encoder_init_random(b.enc, 0.02f, &rng);
	if (cai_encoder_model_write(&b, "{\"source\": \"bench/make_encoder (random weights)\"}", &bytes, &blen, &err) != CAI_OK ||
		(f = fopen(argv[2], "wb")) == NULL || fwrite(bytes, 1, blen, f) != blen || fclose(f) != 0)
	{
		fprintf(stderr, "writing %s: %s\n", argv[2], err.msg);
		return 1;
	}
	printf("encoder: %d layers, hidden %d, %d heads, intermediate %d, %d positions, vocabulary %d (from %zu texts), %zu bytes\n",
		   L, H, NH, I, P, b.cfg.vocab_size, n, blen);
	cai_free(bytes);
	cai_free(vocab);
	cai_encoder_free(b.enc);
	cai_wordpiece_vocab_free(b.vocab);
	free(texts);
	free(lens);
	free(buf);
	return 0;
}
