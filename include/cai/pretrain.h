/*
 * pretrain.h: pretraining a small BERT encoder from scratch on unlabeled
 * text (issue 13, item 5).
 *
 * cai_pretrain_run learns a WordPiece vocabulary from the texts
 * (cai_wordpiece_train), then trains an encoder (encoder.h) from random
 * initialisation with masked-language modelling and returns it as encoder
 * model bytes (cai_encoder_model_write: task "encoder", architecture
 * "bert"), usable exactly as an imported checkpoint (cai_encoder_embed,
 * fine-tuning).
 *
 * Data: a held-out validation_fraction of the texts (drawn with the seed)
 * measures MLM accuracy; the others are tokenized and packed, in an order
 * drawn with the seed, into sequences "[CLS] a [SEP] b [SEP] ..." of at
 * most max_length pieces (a text longer than max_length - 2 pieces is cut;
 * segments all 0).
 *
 * Masking (drawn again every epoch, as RoBERTa's dynamic masking):
 * whole-word masking as BERT's: the words of a sequence (a piece and the
 * "##" pieces after it) in a random order are taken while their pieces fit
 * in round(mask_fraction * pieces) (at least 1); each piece of a taken word
 * becomes [MASK] with probability 0.8, a random non-special token with 0.1,
 * and stays with 0.1.  [CLS] and [SEP] are never masked.
 *
 * MLM head as BERT's cls.predictions: dense (H, H) + GELU + LayerNorm, then
 * the decoder TIED to the word embeddings plus a bias (V); cross-entropy
 * over the masked positions only, averaged over a batch's masked pieces.
 * The head is not part of the returned model (an encoder model has none).
 *
 * Progress (the callback's fraction) is that of training: 0 while the
 * vocabulary is learnt and the texts packed.
 *
 * Training: AdamW (decay off for biases and LayerNorm parameters), the
 * learning rate rising linearly over the warmup fraction then decaying
 * linearly to 0; global gradient norm clipped to 1; dropout as the
 * options.  Progress is the fraction of planned steps, or with max_seconds
 * the larger of that and the fraction of time spent (so the schedule also
 * decays under a time budget: such a run is not reproducible).
 * threads shards each batch over the training pool (pool.h), data
 * parallel, with the gradients added in shard order: without max_seconds
 * the bytes are a function of the texts, options, seed and threads.
 *
 * Options (cai_options_parse against cai_pretrain_option_defs; help texts
 * in the table): vocab_size 8000, min_frequency 2, lower_case true,
 * layers 4, hidden 256, heads 4, intermediate 1024, max_length 128,
 * batch_size 32, learning_rate 5e-4, warmup 0.06, weight_decay 0.01,
 * dropout 0.1, mask_fraction 0.15, epochs 10, max_seconds 0, seed 42,
 * threads 1, validation_fraction 0.02, memory_limit_mb 0.
 */
#ifndef CAI_PRETRAIN_H
#define CAI_PRETRAIN_H

#include "cai/common.h"
#include "cai/options.h"

extern const cai_opt_def cai_pretrain_option_defs[];
extern const int cai_pretrain_n_option_defs;

/*
 * Bytes pretraining on texts[0..n) with opts may allocate at most (an
 * estimate from the options and the text bytes: vocab_size bounds the
 * vocabulary, the text bytes the pieces).  0 when opts is NULL or invalid.
 * cai_pretrain_run refuses (CAI_ERR_LIMIT) when it exceeds memory_limit_mb.
 */
size_t		cai_pretrain_memory(const cai_options *opts, const char *const *texts, const size_t *lens,
								size_t n);

/*
 * Pretrain on texts[0..n) (UTF-8, lens[i] bytes each; NULL texts skipped).
 * *bytes (cai_malloc'ed): encoder model bytes whose provenance holds the
 * options, seed, vocabulary size, texts, steps, the loss curve and the
 * held-out MLM accuracy (no wall-clock figure: those are in the metrics).
 * *metrics_json (cai_malloc'ed, may be NULL to skip): the same figures
 * plus seconds, train_seconds and sequences_per_sec.
 * progress is called from the calling thread only; false cancels
 * (CAI_ERR_CANCELLED, nothing returned).  max_seconds stops training with
 * the last state (the vocabulary's time counts).  Errors: CAI_ERR_INVALID
 * (options such as heads not dividing hidden, no text with a word,
 * vocab_size below the alphabet), CAI_ERR_LIMIT (memory_limit_mb),
 * CAI_ERR_NUMERIC (training diverged), CAI_ERR_NOMEM.
 */
cai_status	cai_pretrain_run(const cai_options *opts, const char *const *texts, const size_t *lens,
							 size_t n, cai_progress_fn progress, void *progress_ctx,
							 uint8_t **bytes, size_t *len, char **metrics_json, cai_error *err);

#endif							/* CAI_PRETRAIN_H */
