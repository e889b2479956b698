/*
 * ops.h: dense float32 tensor ops of the core, llm.c style.
 *
 * Every layer is a *_forward / *_backward pair over plain row-major float
 * arrays with explicit sizes.  Conventions shared by every op:
 *
 * - Shapes are given in the comment next to each pointer, e.g. (N, C).
 * - Backward functions ACCUMULATE (+=) into every gradient they write, so
 *   gradients flowing in from several consumers add up; zero them before
 *   the backward pass.  A gradient pointer documented "may be NULL" is
 *   skipped when NULL.
 * - Dimensions are int (as BLAS takes them) and must be >= 0; a call with a
 *   zero dimension does nothing (forward outputs of size 0 are untouched).
 *   The caller sizes buffers; products are computed in size_t here.
 * - Functions that read ids, targets or hyperparameters from data return a
 *   cai_status and reject bad values with CAI_ERR_INVALID before writing any
 *   output; the matching backward trusts what its forward accepted but still
 *   skips out-of-range ids instead of writing out of bounds.
 * - Nothing here allocates, prints or uses threads other than BLAS's.
 *   Results are bit-identical for identical inputs with one BLAS thread.
 */
#ifndef CAI_OPS_H
#define CAI_OPS_H

#include "cai/common.h"

/* ---------------------------------------------------------------------
 * Linear layer: out = inp . weight^T + bias (cblas_sgemm).
 * The weight is stored (OC, IC) like llm.c and PyTorch: row o holds the
 * input weights of output unit o.
 */
void		cai_linear_forward(float *out,	/* (N, OC) */
							   const float *inp,	/* (N, IC) */
							   const float *weight, /* (OC, IC) */
							   const float *bias,	/* (OC), may be NULL */
							   int N, int IC, int OC);

void		cai_linear_backward(float *dinp,	/* (N, IC), may be NULL */
								float *dweight, /* (OC, IC), may be NULL */
								float *dbias,	/* (OC), may be NULL */
								const float *dout,	/* (N, OC) */
								const float *inp,	/* (N, IC) */
								const float *weight,	/* (OC, IC) */
								int N, int IC, int OC);

/* ---------------------------------------------------------------------
 * Elementwise activations over n elements.  out may alias inp.  The backward
 * takes the forward OUTPUT (enough for all three): dinp += dout * f'(x).
 * dinp must not alias dout.
 */
void		cai_tanh_forward(float *out, const float *inp, size_t n);
void		cai_tanh_backward(float *dinp, const float *dout, const float *out, size_t n);
void		cai_sigmoid_forward(float *out, const float *inp, size_t n);
void		cai_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n);
void		cai_relu_forward(float *out, const float *inp, size_t n);
void		cai_relu_backward(float *dinp, const float *dout, const float *out, size_t n);

/* ---------------------------------------------------------------------
 * Softmax and softmax + cross-entropy over rows of C classes.  Numerically
 * stable (the row maximum is subtracted; the loss is computed as
 * log(sum exp(x - max)) - (x_t - max), so it is finite even when a
 * probability underflows to 0).
 */

/* probs (N, C) = softmax(logits (N, C)) row by row; probs may alias logits. */
void		cai_softmax_forward(float *probs, const float *logits, int N, int C);

/* Index of the largest of x[0..n) (the first on ties); 0 when n <= 0. */
int			cai_argmax(const float *x, int n);

/* Target value of a row that takes no part in loss or gradient (padding). */
#define CAI_IGNORE_TARGET (-1)

/*
 * Forward: probs = softmax(logits); *loss = scale * sum over rows r with
 * targets[r] != CAI_IGNORE_TARGET of -log probs[r, targets[r]].
 * Use scale = 1/N (or 1/number of non-ignored rows) for a mean loss.
 * targets may be NULL (probabilities only, *loss = 0); loss may be NULL.
 * A target outside [0, C) other than CAI_IGNORE_TARGET is CAI_ERR_INVALID
 * (nothing written).  probs may alias logits.
 */
cai_status	cai_softmax_xent_forward(float *probs,	/* (N, C) */
									 double *loss,	/* scalar, may be NULL */
									 const float *logits,	/* (N, C) */
									 const int32_t *targets,	/* (N) */
									 int N, int C, float scale,
									 cai_error *err);

/*
 * Backward: dlogits += scale * (probs - onehot(target)) for every row whose
 * target is in [0, C); other rows (ignored) get nothing.
 */
void		cai_softmax_xent_backward(float *dlogits,	/* (N, C) */
									  const float *probs,	/* (N, C) */
									  const int32_t *targets,	/* (N) */
									  int N, int C, float scale);

/* ---------------------------------------------------------------------
 * Inverted dropout.  In training with p > 0 each element is kept with
 * probability 1 - p (kept iff cai_rng_uniform(rng) >= p, one draw per
 * element in index order) and scaled by 1 / (1 - p); mask[i] = 1 if kept,
 * 0 if dropped.  Otherwise (p == 0 or !training) out = inp, no random draw,
 * mask untouched (may then be NULL, as may rng).  out may alias inp.
 * p must be in [0, 1): else CAI_ERR_INVALID.
 */
cai_status	cai_dropout_forward(float *out, /* (n) */
								uint8_t *mask,	/* (n) caller-supplied */
								const float *inp,	/* (n) */
								size_t n, float p, bool training,
								cai_rng *rng, cai_error *err);

/* dinp += dout * mask / (1 - p) in training with p > 0, else dinp += dout. */
void		cai_dropout_backward(float *dinp, const float *dout, const uint8_t *mask,
								 size_t n, float p, bool training);

/* ---------------------------------------------------------------------
 * Row sets: which rows of a (V, D) table received a gradient, so that the
 * optimizer and zero-grad touch only those rows of large embedding tables
 * (see cai_optim_step_rows and the sparse parameters of cai_slab).
 * Each row appears once in list, in first-touch order (deterministic).
 */
typedef struct cai_rowset
{
	int32_t		n_rows;			/* V: valid rows are [0, n_rows) */
	int32_t		count;			/* rows currently in list */
	uint8_t    *flags;			/* (n_rows) 1 if the row is in list */
	int32_t    *list;			/* (n_rows) touched rows, first count valid */
} cai_rowset;

/* Bytes cai_rowset_init allocates for n_rows rows (false on overflow). */
bool		cai_rowset_bytes(int32_t n_rows, size_t *bytes);
cai_status	cai_rowset_init(cai_rowset *rs, int32_t n_rows, cai_error *err);
void		cai_rowset_add(cai_rowset *rs, int32_t row);	/* out of range: ignored */
void		cai_rowset_clear(cai_rowset *rs);	/* O(count) */
void		cai_rowset_free(cai_rowset *rs);	/* safe on a zeroed struct */

/* ---------------------------------------------------------------------
 * Embedding lookup: out[i] = weight[ids[i]].  Any id outside [0, V) is
 * CAI_ERR_INVALID (nothing written).  Backward adds dout[i] into
 * dweight[ids[i]], skips ids outside [0, V) and, when touched is not NULL,
 * records each updated row in it.
 */
cai_status	cai_embedding_forward(float *out,	/* (N, D) */
								  const float *weight,	/* (V, D) */
								  const int32_t *ids,	/* (N) */
								  int N, int V, int D, cai_error *err);

void		cai_embedding_backward(float *dweight,	/* (V, D) */
								   cai_rowset *touched, /* may be NULL */
								   const float *dout,	/* (N, D) */
								   const int32_t *ids,	/* (N) */
								   int N, int V, int D);

/*
 * Embedding bag (mean), fastText style: bag b is ids[offsets[b] ..
 * offsets[b + 1]) and out[b] is the mean of those rows; an empty bag gives
 * a zero row and no gradient.  offsets must start at 0, never decrease and
 * every id must be in [0, V): else CAI_ERR_INVALID (nothing written).
 * For a single bag use B = 1, offsets = {0, n}.
 */
cai_status	cai_embedding_bag_mean_forward(float *out,	/* (B, D) */
										   const float *weight, /* (V, D) */
										   const int32_t *ids,	/* (offsets[B]) */
										   const int32_t *offsets,	/* (B + 1) */
										   int B, int V, int D, cai_error *err);

void		cai_embedding_bag_mean_backward(float *dweight, /* (V, D) */
											cai_rowset *touched,	/* NULL, or of at least V rows */
											const float *dout,	/* (B, D) */
											const int32_t *ids,
											const int32_t *offsets, /* (B + 1) */
											int B, int V, int D);

/*
 * The rows id with id % parts == part of cai_embedding_bag_mean_backward:
 * the same additions to those rows, in the same order.  Data-parallel
 * training gives each thread one such class of rows (disjoint, so the
 * threads write different rows and flags).  A row added to for the first
 * time (flags[id] 0) is flagged and appended to list (*count rows).
 */
void		cai_embedding_bag_mean_backward_part(float *dweight, /* (V, D) */
												 uint8_t *flags,	/* (V) */
												 int32_t *list, int32_t *count,
												 const float *dout, /* (B, D) */
												 const int32_t *ids,
												 const int32_t *offsets,	/* (B + 1) */
												 int B, int V, int D, int part, int parts);

/* ---------------------------------------------------------------------
 * 1-D convolution over a sequence followed by max-pooling over time (the
 * character CNN of a word).  conv[t, c] = bias[c] + sum_{k, i}
 * weight[c, k, i] * x[t + k - pad_left, i], with x = 0 outside [0, T):
 *
 *   CAI_PAD_VALID  pad_left = 0, T_out = T - K + 1 (needs T >= K)
 *   CAI_PAD_SAME   pad_left = (K - 1) / 2, pad_right = K / 2, T_out = T
 *
 * pooled[c] = max_t conv[t, c], argmax[c] the first t reaching it.  Put a
 * monotone activation (relu, tanh) AFTER the pooling: it commutes with max.
 * Forward uses im2col + sgemm in a caller-supplied scratch buffer of
 * cai_conv1d_scratch_floats() floats.  Bad sizes (T < 1, K < 1, T < K with
 * VALID) are CAI_ERR_INVALID.
 */
typedef enum cai_padding
{
	CAI_PAD_VALID = 0,
	CAI_PAD_SAME = 1
} cai_padding;

/* Output length for T, K and padding; 0 if the combination is invalid. */
int			cai_conv1d_out_len(int T, int K, cai_padding pad);

/* Scratch floats needed by cai_conv1d_maxpool_forward; false on overflow/invalid. */
bool		cai_conv1d_scratch_floats(int T, int C_in, int C_out, int K,
									  cai_padding pad, size_t *nfloats);

cai_status	cai_conv1d_maxpool_forward(float *pooled,	/* (C_out) */
									   int32_t *argmax, /* (C_out) */
									   float *scratch,	/* see above */
									   const float *inp,	/* (T, C_in) */
									   const float *weight, /* (C_out, K, C_in) */
									   const float *bias,	/* (C_out), may be NULL */
									   int T, int C_in, int C_out, int K,
									   cai_padding pad, cai_error *err);

/* Routes dpooled through argmax only; needs no scratch. */
void		cai_conv1d_maxpool_backward(float *dinp,	/* (T, C_in), may be NULL */
										float *dweight, /* (C_out, K, C_in), may be NULL */
										float *dbias,	/* (C_out), may be NULL */
										const float *dpooled,	/* (C_out) */
										const int32_t *argmax,	/* (C_out) */
										const float *inp,	/* (T, C_in) */
										const float *weight,	/* (C_out, K, C_in) */
										int T, int C_in, int C_out, int K,
										cai_padding pad);

/* ---------------------------------------------------------------------
 * Pooling over a sequence (T, C) -> (C).  T <= 0 gives zeros (and argmax 0)
 * and no gradient.  Max pooling keeps the first t on ties.
 */
void		cai_meanpool_forward(float *out, const float *inp, int T, int C);
void		cai_meanpool_backward(float *dinp, const float *dout, int T, int C);
void		cai_maxpool_forward(float *out,	/* (C) */
								int32_t *argmax,	/* (C) */
								const float *inp,	/* (T, C) */
								int T, int C);
void		cai_maxpool_backward(float *dinp,	/* (T, C) */
								 const float *dout, /* (C) */
								 const int32_t *argmax, /* (C) */
								 int T, int C);

#endif							/* CAI_OPS_H */
