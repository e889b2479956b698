/*
 * encoder_fixtures.h: a small random encoder with a generated vocabulary,
 * as a bundle (encoder_model.h), for the tests of encoder models and of the
 * transformer architecture.  No checkpoint files needed.
 */
#ifndef CAI_ENCODER_FIXTURES_H
#define CAI_ENCODER_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cai/encoder_model.h"
#include "cai/format.h"

/*
 * A bundle of a BERT (or DistilBERT) encoder of the given shape, weights
 * normal(0, 0.02) from seed, and a vocabulary of the special tokens, the
 * words given (whole words) and "##" + each lower-case letter (so any
 * lower-case ASCII word tokenizes without [UNK]); vocab_size is the count.
 */
static inline cai_encoder_bundle *
fixture_bundle(const char *const *words, int n_words, int hidden, int layers, int heads, int intermediate,
			   int positions, bool distil, uint64_t seed)
{
	static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
	size_t		cap = 64 + 26 * 4 + 2 * 26;
	char	   *txt;
	size_t		len = 0;
	int			n = 0;
	cai_encoder_bundle *b = cai_calloc(1, sizeof(*b));
	cai_rng		rng;

	for (int i = 0; i < n_words; i++)
		cap += strlen(words[i]) + 1;
	txt = malloc(cap);
	for (int i = 0; i < 5; i++, n++)
		len += (size_t) sprintf(txt + len, "%s\n", specials[i]);
	for (char c = 'a'; c <= 'z'; c++, n++)
		len += (size_t) sprintf(txt + len, "%c\n", c);
	for (char c = 'a'; c <= 'z'; c++, n++)
		len += (size_t) sprintf(txt + len, "##%c\n", c);
	for (int i = 0; i < n_words; i++)
	{
		bool		dup = strlen(words[i]) == 1;

		for (int j = 0; j < i && !dup; j++)
			dup = strcmp(words[i], words[j]) == 0;
		if (dup)
			continue;
		len += (size_t) sprintf(txt + len, "%s\n", words[i]);
		n++;
	}
	cai_wordpiece_options_default(&b->wp);
	b->cfg.family = distil ? CAI_ENC_DISTILBERT : CAI_ENC_BERT;
	b->cfg.vocab_size = n;
	b->cfg.hidden_size = hidden;
	b->cfg.num_hidden_layers = layers;
	b->cfg.num_attention_heads = heads;
	b->cfg.intermediate_size = intermediate;
	b->cfg.max_position_embeddings = positions;
	b->cfg.type_vocab_size = distil ? 0 : 2;
	b->cfg.layer_norm_eps = 1e-12f;
	b->cfg.hidden_dropout_prob = 0.1f;
	b->cfg.attention_probs_dropout_prob = 0.1f;
	if (cai_wordpiece_vocab_load(txt, len, CAI_WP_NEED_ALL, &b->vocab, NULL) != CAI_OK ||
		cai_encoder_create(&b->cfg, &b->enc, NULL) != CAI_OK)
	{
		fprintf(stderr, "fixture_bundle: cannot build the encoder\n");
		abort();
	}
	free(txt);
	cai_rng_seed(&rng, seed);
	cai_encoder_init_random(b->enc, 0.02f, &rng);
	return b;
}

/* An aligned copy of model bytes (free()), as a shared mapping would be: for loads in place. */
static inline uint8_t *
fixture_aligned_copy(const uint8_t *b, size_t len)
{
	size_t		cap = (len + CAI_FORMAT_ALIGN - 1) / CAI_FORMAT_ALIGN * CAI_FORMAT_ALIGN;
	uint8_t    *p = aligned_alloc(CAI_FORMAT_ALIGN, cap);

	memcpy(p, b, len);
	return p;
}

#endif							/* CAI_ENCODER_FIXTURES_H */
