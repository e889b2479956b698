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

/*
 * A stored encoder is a model (format.h) of task "encoder", architecture
 * "bert" (model.h; its kind CAI_KIND_ENCODER: no labels, it neither
 * classifies nor tags).  Its bytes:
 *   metadata  "task", "architecture", "labels" [], "cai_version",
 *             "encoder": {"config": the config as config.json spells it
 *             (model_type "bert" or "distilbert"), "tokenizer":
 *             {"lower_case", "special_in_text", "max_chars_per_word"},
 *             "parameters": the slab's floats, "vocab_size": the
 *             vocabulary's tokens}, "provenance" (the caller's, if any);
 *   tensors   "encoder.params" F32 (n_params): the parameter slab in
 *             encoder.c's layout (cai_encoder_tensor order), and
 *             "encoder.vocab" U8: the vocabulary as vocab.txt bytes.
 * A fine-tuned transformer model (architecture "transformer") holds its
 * encoder the same way, beside its head.  Loading views the slab in place
 * (cai_encoder_view; only the vocabulary is copied into its lookup table);
 * damaged bytes are refused with CAI_ERR_FORMAT (sizes that disagree with
 * the config, a vocabulary that does not load or lacks a special token),
 * non-finite weights with CAI_ERR_NUMERIC (unless the file is trusted).
 */

/* Model bytes of bundle b (*out cai_malloc'ed); provenance_json: a JSON object or NULL. */
cai_status	cai_encoder_model_write(const cai_encoder_bundle *b, const char *provenance_json,
									uint8_t **out, size_t *out_len, cai_error *err);

struct cai_model;

/*
 * The encoder of a loaded model: an "encoder" model's, or the fine-tuned
 * encoder of a transformer model; NULL for a model without one.  Owned by
 * the model (valid while it lives, read-only).
 */
const cai_encoder_bundle *cai_model_encoder_bundle(const struct cai_model *m);

/* Sentence embedding poolings. */
typedef enum cai_pooling
{
	CAI_POOL_MEAN = 0,			/* last layer averaged over every position, [CLS] and [SEP] included */
	CAI_POOL_CLS = 1			/* last layer at [CLS] (no pooler) */
} cai_pooling;

/* "mean" or "cls" (any case); CAI_ERR_INVALID naming both otherwise. */
cai_status	cai_pooling_parse(const char *name, cai_pooling *out, cai_error *err);

/*
 * The sentence embedding of text[0..len) into out (cfg.hidden_size floats):
 * the single-segment input "[CLS] text [SEP]" truncated to max_length
 * pieces (0: the encoder's max_position_embeddings; more than that, or
 * less than 3: CAI_ERR_INVALID), run through the encoder (no dropout) and
 * pooled (mean as sentence-transformers' mean pooling, cls without the
 * pooler).  Thread-safe on a shared bundle; allocates its activations.
 */
cai_status	cai_encoder_embed(const cai_encoder_bundle *b, const char *text, size_t len, cai_pooling pooling,
							  int max_length, float *out, cai_error *err);

#endif							/* CAI_ENCODER_MODEL_H */
