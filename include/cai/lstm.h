/*
 * lstm.h: a single-direction LSTM layer over a batch of variable-length
 * sequences, usable forward or reversed, and a bidirectional wrapper.
 *
 * Equations (gate order in every 4H block: i, f, g, o):
 *
 *   a   = x W_ih^T + h_prev W_hh^T + b          (4H)
 *   i   = sigmoid(a[0:H])     f = sigmoid(a[H:2H])
 *   g   = tanh(a[2H:3H])      o = sigmoid(a[3H:4H])
 *   c   = f * c_prev + i * g
 *   h   = o * tanh(c)
 *
 * The initial state (h, c) is zero.  Sizes: B sequences, padded length T,
 * input size C, hidden size H.  (Not "I": <complex.h>, pulled in by
 * OpenBLAS's cblas.h, defines I as a macro.)
 *
 * Layout.  Inputs are padded (B, T, C), outputs padded (B, T, H) with a row
 * stride ldo >= H (so the bidirectional wrapper writes both halves of a
 * (B, T, 2H) tensor in place).  Sequence b has len[b] real positions,
 * 0 <= len[b] <= T; positions t >= len[b] are padding: their inputs are never
 * read, their outputs are written as zeros and their input gradients are
 * left untouched (zero contribution).
 *
 * A reverse layer runs each sequence from its own last real position
 * len[b] - 1 down to 0, so padding never reaches the backward direction.
 *
 * Internally the batch is packed step-major (like a packed sequence): the
 * sequences are stably sorted by decreasing length, and step s holds the
 * n_s sequences with len > s as one contiguous block.  The input projection
 * of all sum(len) positions is one sgemm and the backward weight gradients
 * are two large sgemms over all positions (BLAS).  Each training step's
 * recurrent product, (n_s, H) x (H, 4H) forward and (n_s, 4H) x (4H, H)
 * backward, is the core's own small kernel against W_hh packed once per
 * call (a BLAS sgemm repacks all of W_hh for every step): fused
 * multiply-adds in a fixed order, the same bits on every CPU.  Inference
 * keeps BLAS (stored models answer bit for bit as in earlier releases).
 *
 * Memory.  The training forward stores everything the backward needs (and
 * the backward's own scratch) in a caller-provided float buffer sized by
 * cai_lstm_acts_size(); the first few slots of that buffer hold int32 packing
 * indices.  The backward reads it and does not modify the stored
 * activations, so it may be called more than once.  The inference forward
 * keeps only one step of state (cai_lstm_infer_size()).
 *
 * Determinism: with one BLAS thread, results are a pure function of the
 * inputs, and a sequence's do not depend on the other sequences of the
 * batch.  Extra padding (a larger T, any values in padded positions) does
 * not change a single bit of the outputs or gradients.
 */
#ifndef CAI_LSTM_H
#define CAI_LSTM_H

#include "cai/common.h"

/*
 * Tests: the recurrent products run the portable code even where the CPU
 * has AVX2 and FMA (on = true) or the best this CPU runs (false, the
 * default).  Both give the same bits; not thread-safe.
 */
void		cai_lstm_portable_kernel(bool on);

/* Views into a parameter (or gradient) slab. */
typedef struct cai_lstm_params
{
	float	   *w_ih;			/* (4H, C) */
	float	   *w_hh;			/* (4H, H) */
	float	   *b;				/* (4H) */
} cai_lstm_params;

/* Number of floats of one direction's parameters: 4H*C + 4H*H + 4H. */
size_t		cai_lstm_param_count(int C, int H);

/* Point p at a slab of cai_lstm_param_count(C, H) floats (w_ih, w_hh, b). */
void		cai_lstm_params_view(cai_lstm_params *p, float *base, int C, int H);

/*
 * Initialize: weights uniform in [-1/sqrt(H), 1/sqrt(H)], biases zero except
 * the forget gate bias, which is 1.
 */
void		cai_lstm_init(cai_lstm_params *p, int C, int H, cai_rng *rng);

/*
 * Size in floats of the activation buffer of one direction for a batch of
 * B sequences padded to T.  Fails (CAI_ERR_LIMIT) if the size overflows.
 */
cai_status	cai_lstm_acts_size(int B, int T, int C, int H, size_t *nfloats,
							   cai_error *err);

/*
 * Training forward.  inp (B, T, C), len (B), out (B, T, ldo) of which the
 * first H columns of each row are written; acts as sized above.
 */
cai_status	cai_lstm_forward(const cai_lstm_params *p,
							 const float *inp, const int32_t *len,
							 int B, int T, int C, int H, bool reverse,
							 float *out, int ldo,
							 float *acts, cai_error *err);

/*
 * Backward of the last cai_lstm_forward over the same inp/len/sizes/acts.
 * dout (B, T, ldo) is the gradient of the loss w.r.t. out (padding ignored).
 * Accumulates (+=) into grad->w_ih, grad->w_hh, grad->b and, unless dinp is
 * NULL, into dinp (B, T, C) at real positions only.
 */
cai_status	cai_lstm_backward(const cai_lstm_params *p, cai_lstm_params *grad,
							  const int32_t *len,
							  int B, int T, int C, int H, bool reverse,
							  const float *dout, int ldo, float *dinp,
							  float *acts, cai_error *err);

/* Size in floats of the inference work buffer: O(B * (C + H)). */
cai_status	cai_lstm_infer_size(int B, int T, int C, int H, size_t *nfloats,
								cai_error *err);

/*
 * Inference forward (no stored activations).  Same outputs as
 * cai_lstm_forward up to float rounding.  work may be NULL, in which case it
 * is allocated and freed here.
 */
cai_status	cai_lstm_infer(const cai_lstm_params *p,
						   const float *inp, const int32_t *len,
						   int B, int T, int C, int H, bool reverse,
						   float *out, int ldo,
						   float *work, cai_error *err);

/*
 * Inference from precomputed input projections, for inputs that repeat
 * (the tokens of a batch of texts): proj (n_proj, ldp), ldp >= 4H, holds
 * rows x W_ih^T + b (4H), and position t of sequence b (t < len[b]) uses row
 * idx[b * T + t] (checked to be in [0, n_proj)).  Only p->w_hh is read.
 * Given rows computed as cai_lstm_infer computes them, the outputs are
 * cai_lstm_infer's.  work: cai_lstm_infer_size(B, T, 1, H) floats (any
 * C >= 1 is enough), not NULL.
 */
cai_status	cai_lstm_infer_proj(const cai_lstm_params *p, const float *proj, int ldp,
								const int32_t *idx, int n_proj,
								const int32_t *len, int B, int T, int H, bool reverse,
								float *out, int ldo, float *work, cai_error *err);

/*
 * Bidirectional wrapper: out (B, T, 2H) = [forward layer fw | reverse layer
 * bw].  acts holds 2 * cai_lstm_acts_size floats (cai_bilstm_acts_size).
 */
cai_status	cai_bilstm_acts_size(int B, int T, int C, int H, size_t *nfloats,
								 cai_error *err);
cai_status	cai_bilstm_forward(const cai_lstm_params *fw, const cai_lstm_params *bw,
							   const float *inp, const int32_t *len,
							   int B, int T, int C, int H,
							   float *out, float *acts, cai_error *err);

/* dout (B, T, 2H); accumulates into gfw, gbw and (unless NULL) dinp (B, T, C). */
cai_status	cai_bilstm_backward(const cai_lstm_params *fw, const cai_lstm_params *bw,
								cai_lstm_params *gfw, cai_lstm_params *gbw,
								const int32_t *len, int B, int T, int C, int H,
								const float *dout, float *dinp,
								float *acts, cai_error *err);

/* Inference: work as for cai_lstm_infer (one direction's size), may be NULL. */
cai_status	cai_bilstm_infer(const cai_lstm_params *fw, const cai_lstm_params *bw,
							 const float *inp, const int32_t *len,
							 int B, int T, int C, int H,
							 float *out, float *work, cai_error *err);

/*
 * Inference from projections of both directions: proj (n_proj, 8H) holds
 * the forward layer's rows (4H) then the reverse layer's; work as for
 * cai_lstm_infer_proj.
 */
cai_status	cai_bilstm_infer_proj(const cai_lstm_params *fw, const cai_lstm_params *bw,
								  const float *proj, const int32_t *idx, int n_proj,
								  const int32_t *len, int B, int T, int H,
								  float *out, float *work, cai_error *err);

#endif							/* CAI_LSTM_H */
