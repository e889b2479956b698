/*
 * transformer_internal.h: the "transformer" architecture of text
 * classification and NER: a pretrained encoder (encoder_model.h) fine-tuned
 * with a linear head (and, for NER, an optional CRF).
 *
 *   transformer.c        the model: inputs (word pieces, windows), the
 *                        batched forward pass and head, load, inference
 *                        (classify, tag, entities), model bytes
 *   transformer_train.c  options, training (AdamW, warm-up and linear
 *                        decay, gradient accumulation, layer freezing, the
 *                        training pool), memory estimate, gradient check
 *
 * Classification: "[CLS] text [SEP]" truncated to max_length pieces, pooled
 * (the last layer's [CLS] vector, or the mean over every position), logits
 * = pooled W^T + b, softmax.
 *
 * NER: each token is split into word pieces (cai_wordpiece_tokenize of the
 * token's text; a token with no piece gets [UNK]).  Labels sit on the first
 * piece of each token (labeling "first") or on every piece (labeling "all":
 * an entity's tags run over its tokens' pieces, BIOES).  Tags are internal
 * BIOES as the BiLSTM-CRF's (ner_internal.h: 0 O, 1 + 4t + {B,I,E,S}), the
 * output IOB2.  A sentence of more than max_length - 2 pieces is split into
 * windows of max_length - 2 pieces, each starting half a window after the
 * previous one (the last ends at the sentence's end); each labeled unit
 * (token or piece) takes its prediction from the window where it is most
 * central (the first such window on ties).  Training trains on every
 * window, gold entities cut at the window's edges.
 *
 * Internal header of the core, beside its sources.
 */
#ifndef CAI_TRANSFORMER_INTERNAL_H
#define CAI_TRANSFORMER_INTERNAL_H

#include "cai/encoder_model.h"
#include "cai/model.h"
#include "ner_internal.h"
#include "transformer_arch.h"

#define TF_INFER_BATCH 32		/* inputs per inference forward pass */

typedef struct Tf
{
	bool		ner;			/* task: NER, else text classification */
	cai_encoder_bundle *b;		/* owned; its encoder views the model file when loaded */
	int			H;
	int			K;				/* classes, or internal tags 1 + 4 types */
	float	   *head;			/* (K H + K [+ K K + 2K]): W (K, H), bias (K), CRF; owned only when own_head */
	bool		own_head;
	bool		crf;
	cai_crf_params crfp;		/* views into head (crf) */
	cai_pooling pooling;		/* classification */
	bool		all_pieces;		/* NER labeling "all" */
	int			max_length;		/* pieces per input, [CLS] and [SEP] included */
	cai_strtab	classes;		/* classification: class names */
	cai_ner		tt;				/* NER: only its tag tables (types, labels, tags, tag_label, mask) */
} Tf;

/* Floats of the head: W, bias, CRF. */
size_t		tf_head_size(int K, int H, bool crf);
/* Point the CRF view at the head's CRF part. */
void		tf_head_views(Tf *m);
void		tf_free(Tf *m);			/* NULL allowed */

/*
 * Inputs: a list of encoder inputs (ids with [CLS] and [SEP]) and, for
 * NER, their labeled positions with the unit (token or piece of the
 * sentence) each stands for and, in training, its gold internal tag.
 */
typedef struct TfInputs
{
	size_t		n;
	size_t		cap;
	int64_t    *id_off;			/* (n + 1) into ids */
	int32_t    *ids;
	int64_t    *lab_off;		/* (n + 1) into pos, lab_gold; label j of input i is unit u0[i] + j - lab_off[i] */
	int32_t    *pos;			/* position of a label in its input (1 .. T - 2) */
	int32_t    *lab_gold;		/* gold internal tag of a label (training), else -1 */
	int32_t    *gold;			/* (n) classification: the input's class (training), else -1 */
	int32_t    *sent;			/* (n) sentence (NER) or row of each input */
	int32_t    *u0;				/* (n) NER: the window's first and last + 1 units */
	int32_t    *u1;
	size_t		ids_cap;
	size_t		lab_cap;
	/* NER: sentences (in the order given) and their units */
	size_t		n_sent;
	int64_t    *unit_off;		/* (n_sent + 1) into unit_tok */
	int32_t    *unit_tok;		/* token (in its sentence) of each unit */
	size_t		unit_cap;
	size_t		sent_cap;
} TfInputs;

void		tf_inputs_free(TfInputs *in);

/* Classification inputs of n texts (gold from labels, may be NULL). */
cai_status	tf_inputs_texts(const Tf *m, const char *const *texts, const size_t *lens, const int32_t *labels,
							size_t n, const int32_t *rows, TfInputs *in, cai_error *err);

/*
 * NER inputs (windows) of sentences rows[0..n) of data (rows NULL: all, in
 * order); tags: internal gold tags per token (indexed like data->tokens) or
 * NULL.  Sentence i's units are unit_tok[unit_off[i] .. unit_off[i + 1]).
 */
cai_status	tf_inputs_sentences(const Tf *m, const cai_ner_data *data, const int32_t *tags, const int32_t *rows,
								size_t n, TfInputs *in, cai_error *err);

/*
 * The batch forward pass of inputs idx[0..B) without dropout (inference):
 * out gets their logits: (B, K) for classification, or the emissions of
 * their labeled positions, in order, (sum of labels, K) for NER.
 */
cai_status	tf_forward_infer(const Tf *m, const TfInputs *in, const int32_t *idx, int B, float *out,
							 cai_error *err);

/* Pooled (B, H) of the last layer h (B, T, H) of inputs of lens[b] positions. */
void		tf_pool(const Tf *m, const float *h, int B, int T, const int *lens, float *pooled);

/* Class probabilities of n texts (probs (n, K)), in batches of similar length. */
cai_status	tf_classify(const Tf *m, const char *const *texts, const size_t *lens, size_t n, float *probs,
						cai_error *err);

/* Internal tags and marginals (may be NULL) of sentences: a ner_tag_fn (ner_internal.h). */
cai_status	tf_tag_sentences(const void *model, size_t n, const int64_t *offsets, const char *const *tokens,
							 const size_t *lens, int32_t *pred, float *scores, cai_error *err);

/* Model bytes of m with metadata root (task, labels, options, metrics, provenance added by the caller). */
cai_status	tf_serialize(const Tf *m, struct json_object *root, uint8_t **out, size_t *out_len, cai_error *err);

#endif							/* CAI_TRANSFORMER_INTERNAL_H */
