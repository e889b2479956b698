/*
 * encoder_model.h: a pretrained encoder with its tokenizer, as one value
 * (a "bundle"): what cai_import_encoder stores and what an architecture
 * that fine-tunes an encoder starts from (cai_train_set.encoder).
 *
 * A bundle owns its parts: the checked config, the weights (encoder.h) and
 * the WordPiece vocabulary with the tokenizer options (wordpiece.h).  It is
 * read-only once built, so one bundle may serve many threads.
 */
#ifndef CAI_ENCODER_MODEL_H
#define CAI_ENCODER_MODEL_H

#include "cai/common.h"
#include "cai/encoder.h"
#include "cai/wordpiece.h"

typedef struct cai_encoder_bundle
{
	cai_encoder_config cfg;
	cai_encoder *enc;			/* weights of cfg's shape */
	cai_wordpiece_vocab *vocab; /* ids < cfg.vocab_size; holds [UNK] [CLS] [SEP] [PAD] */
	cai_wordpiece_options wp;	/* tokenizer options (lower_case for uncased vocabularies) */
} cai_encoder_bundle;

/*
 * A bundle from a checkpoint as it comes: config.json, vocab.txt and
 * model.safetensors bytes (none NUL-terminated), with the tokenizer options
 * wp (NULL: cai_wordpiece_options_default, i.e. uncased).  Errors name the
 * file: those of cai_encoder_config_from_json, cai_wordpiece_vocab_load
 * (the special tokens [UNK] [CLS] [SEP] [PAD] are needed) and
 * cai_encoder_from_safetensors; a vocabulary with more tokens than the
 * config's vocab_size (ids the embedding table lacks): CAI_ERR_FORMAT.
 * A vocabulary with fewer tokens is accepted (the extra rows are unused).
 */
cai_status	cai_encoder_bundle_from_checkpoint(const char *config_json, size_t config_len,
											   const char *vocab, size_t vocab_len,
											   const void *weights, size_t weights_len,
											   const cai_wordpiece_options *wp,
											   cai_encoder_bundle **out, cai_error *err);

void		cai_encoder_bundle_free(cai_encoder_bundle *b);	/* NULL allowed */

#endif							/* CAI_ENCODER_MODEL_H */
