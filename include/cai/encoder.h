/*
 * encoder.h: a BERT-style Transformer encoder (post-LayerNorm), forward and
 * backward for whole padded batches, loaded from a Hugging Face checkpoint
 * (config.json + model.safetensors).
 *
 * The network, for B sequences padded to T positions (N = B * T rows):
 *
 *   x = LN(word[ids] + position[t] + token_type[segments]); x = drop(x)
 *   per layer:
 *     q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv          (N, H) each
 *     per sequence and head (d = H / heads):
 *       P = softmax(q_h k_h^T / sqrt(d)) over the keys whose mask is 1
 *       ctx_h = drop_att(P) v_h
 *     x = LN1(x + drop(ctx Wo^T + bo))
 *     x = LN2(x + drop(gelu(x W1^T + b1) W2^T + b2))             gelu: erf form
 *   out = x                                                       (B, T, H)
 *
 * Masked (padding) keys get probability exactly 0, so the outputs at
 * unpadded positions do not depend on what the padded positions hold.  The
 * outputs at padded positions are computed but meaningless; give them a zero
 * gradient.  A row with no unmasked key gets zero attention.
 *
 * Matrix products go through cai_sgemm over all N rows at once (the linear
 * layers) and per (sequence, head) for attention; BLAS threads as set by
 * cai_blas_set_threads.  The parameters live in one float slab (the
 * tensors are views into it, in cai_encoder_tensor order); gradients in
 * cai_encoder_grads slabs of the same layout.
 *
 * Stored as a model: encoder_model.h.
 */
#ifndef CAI_ENCODER_H
#define CAI_ENCODER_H

#include "cai/common.h"

/* Limits on a config (beyond them CAI_ERR_LIMIT). */
#define CAI_ENC_MAX_VOCAB		(1 << 22)
#define CAI_ENC_MAX_HIDDEN		16384
#define CAI_ENC_MAX_LAYERS		256
#define CAI_ENC_MAX_HEADS		256
#define CAI_ENC_MAX_INTERMEDIATE 65536
#define CAI_ENC_MAX_POSITIONS	65536
#define CAI_ENC_MAX_TYPES		1024

/*
 * The checkpoint families: the same network, their own config keys and
 * tensor names.  DistilBERT has no token-type embeddings and no dropout on
 * the attention output (only on its probabilities).
 */
typedef enum cai_encoder_family
{
	CAI_ENC_BERT = 0,
	CAI_ENC_DISTILBERT
} cai_encoder_family;

typedef struct cai_encoder_config
{
	cai_encoder_family family;
	int32_t		vocab_size;		/* V */
	int32_t		hidden_size;	/* H */
	int32_t		num_hidden_layers;	/* L */
	int32_t		num_attention_heads;	/* NH, divides H */
	int32_t		intermediate_size;	/* I */
	int32_t		max_position_embeddings;	/* P: T <= P */
	int32_t		type_vocab_size;	/* TV; 0 (DistilBERT): none, segments must be 0 */
	float		layer_norm_eps;
	float		hidden_dropout_prob;	/* embeddings, attention output, feed-forward output */
	float		attention_probs_dropout_prob;
} cai_encoder_config;

/*
 * Parse and validate a config.json (json[0..len), no NUL needed).
 * model_type "bert" (or absent): required the seven sizes (integers);
 * optional layer_norm_eps (1e-12), hidden_dropout_prob and
 * attention_probs_dropout_prob (0.1), hidden_act ("gelu", the only one
 * supported), position_embedding_type ("absolute" only).  model_type
 * "distilbert": vocab_size, dim, n_layers, n_heads, hidden_dim,
 * max_position_embeddings; optional dropout, attention_dropout (0.1),
 * activation ("gelu"); eps 1e-12 as DistilBERT's code.  Not JSON, not an
 * object, a member missing or of the wrong type: CAI_ERR_FORMAT; a value
 * that makes no sense (a size < 1, heads not dividing hidden, eps <= 0,
 * dropout outside [0, 1), another activation or model type):
 * CAI_ERR_INVALID; above a limit: CAI_ERR_LIMIT.  Each message names the
 * member as the file spells it.
 */
cai_status	cai_encoder_config_from_json(const char *json, size_t len, cai_encoder_config *cfg,
										 cai_error *err);

/* The same checks on a config filled by hand. */
cai_status	cai_encoder_config_check(const cai_encoder_config *cfg, cai_error *err);

/* Views of one layer's tensors in a slab (parameters or gradients). */
typedef struct cai_encoder_layer
{
	float	   *q_w;			/* (H, H) */
	float	   *q_b;			/* (H) */
	float	   *k_w;			/* (H, H) */
	float	   *k_b;			/* (H) */
	float	   *v_w;			/* (H, H) */
	float	   *v_b;			/* (H) */
	float	   *ao_w;			/* (H, H) attention output */
	float	   *ao_b;			/* (H) */
	float	   *ln1_g;			/* (H) */
	float	   *ln1_b;			/* (H) */
	float	   *ff1_w;			/* (I, H) intermediate */
	float	   *ff1_b;			/* (I) */
	float	   *ff2_w;			/* (H, I) output */
	float	   *ff2_b;			/* (H) */
	float	   *ln2_g;			/* (H) */
	float	   *ln2_b;			/* (H) */
} cai_encoder_layer;

typedef struct cai_encoder_weights
{
	float	   *word;			/* (V, H) */
	float	   *position;		/* (P, H) */
	float	   *token_type;		/* (TV, H) */
	float	   *emb_ln_g;		/* (H) */
	float	   *emb_ln_b;		/* (H) */
	cai_encoder_layer *layers;	/* (L) */
} cai_encoder_weights;

/* One tensor of the slab: its BERT name without prefix, shape and place. */
typedef struct cai_encoder_tensor
{
	char		name[64];		/* "encoder.layer.3.attention.self.query.weight" */
	int			ndim;			/* 1 or 2 */
	int64_t		shape[2];
	size_t		offset;			/* floats from the start of the slab */
	size_t		numel;
} cai_encoder_tensor;

typedef struct cai_encoder
{
	cai_encoder_config cfg;
	int			n_tensors;		/* 5 + 16 L */
	cai_encoder_tensor *tensors;	/* (n_tensors) */
	size_t		n_params;		/* floats in the slab */
	float	   *params;			/* (n_params) */
	cai_encoder_weights w;		/* views into params */
	bool		borrowed;		/* params belong to the caller (cai_encoder_view): read-only, not freed */
} cai_encoder;

/*
 * Gradients of an encoder's parameters, in the slab layout of its params;
 * one per training shard (data-parallel training gives each shard its own
 * and adds them in shard order).
 */
typedef struct cai_encoder_grads
{
	size_t		n_params;
	float	   *data;			/* (n_params) */
	cai_encoder_weights w;		/* views into data */
} cai_encoder_grads;

/* An encoder of a checked config with all parameters zero. */
cai_status	cai_encoder_create(const cai_encoder_config *cfg, cai_encoder **out, cai_error *err);
void		cai_encoder_free(cai_encoder *enc);	/* NULL allowed */

/*
 * An encoder of a checked config whose parameters are the caller's slab
 * params (n_params floats in the layout of cai_encoder_create's, which must
 * equal the config's count: CAI_ERR_FORMAT otherwise): for a model loaded
 * in place.  params must outlive the encoder and is never written nor
 * freed; such an encoder is only run (forward), not trained.
 */
cai_status	cai_encoder_view(const cai_encoder_config *cfg, const float *params, size_t n_params,
							 cai_encoder **out, cai_error *err);

/*
 * BERT's initialisation: normal(0, std) weights, zero biases, LN gain 1
 * (without token types their row stays zero).
 */
void		cai_encoder_init_random(cai_encoder *enc, float std, cai_rng *rng);

/* Zeroed gradients for enc's parameters. */
cai_status	cai_encoder_grads_create(const cai_encoder *enc, cai_encoder_grads **out, cai_error *err);
void		cai_encoder_grads_zero(cai_encoder_grads *g);
void		cai_encoder_grads_free(cai_encoder_grads *g);	/* NULL allowed */

/*
 * Load the parameters of a checkpoint: safetensors bytes (buf[0..len), see
 * safetensors.h) and a checked config.  Names as Hugging Face's BERT
 * (embeddings.word_embeddings.weight, encoder.layer.N.attention.self.query.
 * weight, ...; LayerNorm .gamma/.beta accepted for .weight/.bias), with or
 * without the "bert." prefix; for the DistilBERT family its names
 * (transformer.layer.N.attention.q_lin.weight, ...sa_layer_norm...,
 * ...ffn.lin1..., ...output_layer_norm...), with or without "distilbert.".
 * Dtypes F32, F16, BF16 (converted to F32).  Ignored: the pooler, the heads
 * (cls.*, classifier.*, pre_classifier.*, qa_outputs.*, vocab_transform.*,
 * vocab_layer_norm.*, vocab_projector.*, any tensor outside the prefix when
 * it is used) and embeddings.position_ids / token_type_ids.  A damaged file (CAI_ERR_FORMAT or CAI_ERR_LIMIT
 * from the reader), a tensor missing, of another shape than the config
 * says, of another dtype, given twice (a .weight and a .gamma), or an
 * unknown tensor among the encoder's own (embeddings.*, encoder.*):
 * CAI_ERR_FORMAT with a message naming the tensor.  A non-finite value:
 * CAI_ERR_NUMERIC naming the tensor.
 */
cai_status	cai_encoder_from_safetensors(const cai_encoder_config *cfg, const void *buf, size_t len,
										 cai_encoder **out, cai_error *err);

/*
 * Memory: parameter bytes (slab + tables; with one gradient slab) and
 * activation bytes for a batch of B sequences of T positions (what
 * cai_encoder_acts_create allocates).  false on overflow.
 */
bool		cai_encoder_param_bytes(const cai_encoder_config *cfg, bool with_grads, size_t *bytes);
bool		cai_encoder_act_bytes(const cai_encoder_config *cfg, int B, int T, bool for_backward,
								  size_t *bytes);

/*
 * Check up front that an encoder and its activations for (B, T) fit in
 * limit bytes (0: no limit): CAI_ERR_LIMIT with the figures if not,
 * CAI_ERR_INVALID for B or T < 1 or T > max_position_embeddings.
 */
cai_status	cai_encoder_memory_check(const cai_encoder_config *cfg, int B, int T, bool for_backward,
									 size_t limit, size_t *bytes, cai_error *err);

/*
 * Activations of one batch shape (B, T): every layer's, kept by the forward
 * pass for the backward pass (for_backward), or two layers' reused in turn
 * (inference only).
 */
typedef struct cai_encoder_acts cai_encoder_acts;

cai_status	cai_encoder_acts_create(const cai_encoder_config *cfg, int B, int T, bool for_backward,
									cai_encoder_acts **out, cai_error *err);
void		cai_encoder_acts_free(cai_encoder_acts *a);	/* NULL allowed */

/* The last hidden states of the last forward pass: (B, T, H). */
const float *cai_encoder_output(const cai_encoder_acts *a);

/*
 * The gradient of the loss with respect to the summed input embeddings
 * (word + position + token type, before the first LayerNorm) from the last
 * backward pass: (B, T, H).  NULL without for_backward.
 */
const float *cai_encoder_input_grad(const cai_encoder_acts *a);

/*
 * Forward pass for ids, segments (token types; NULL: all 0) and mask (1 for
 * a real token, 0 for padding; NULL: all 1), each (B, T) of the acts' shape.
 * training with dropout > 0 draws from rng (one draw per element, in a
 * fixed order), else deterministic (rng may be NULL).  An id, segment or
 * mask value out of range: CAI_ERR_INVALID before anything is computed.
 * training needs acts made for_backward.
 */
cai_status	cai_encoder_forward(const cai_encoder *enc, cai_encoder_acts *a, const int32_t *ids,
								const int32_t *segments, const uint8_t *mask, bool training,
								cai_rng *rng, cai_error *err);

/*
 * Backward pass of the last forward pass (same ids, segments, mask), dout
 * (B, T, H) the gradient of the loss with respect to the output: ADDS the
 * parameter gradients into g and sets the input gradient.  Needs acts made
 * for_backward.  Neither pass allocates: shards of a training pool
 * (src/core/pool.h) may run them on their own acts and grads at once.
 */
cai_status	cai_encoder_backward(const cai_encoder *enc, cai_encoder_acts *a, cai_encoder_grads *g,
								 const float *dout, const int32_t *ids, const int32_t *segments,
								 const uint8_t *mask, cai_error *err);

#endif							/* CAI_ENCODER_H */
