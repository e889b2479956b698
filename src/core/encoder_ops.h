/*
 * encoder_ops.h: the encoder's LayerNorm and GELU (erf form), for heads
 * built on an encoder (internal to src/core).  Backward passes ADD into
 * dx, dg, db.
 */
#ifndef CAI_ENCODER_OPS_H
#define CAI_ENCODER_OPS_H

#include <stddef.h>

/* out (N, C) = (x - mean) * rstd * g + b per row; mean and rstd (N) kept. */
void		cai_enc_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *g,
									  const float *b, int N, int C, float eps);
void		cai_enc_layernorm_backward(float *dx, float *dg, float *db, const float *dout, const float *x,
									   const float *mean, const float *rstd, const float *g, int N, int C);
/* out = 0.5 x (1 + erf(x / sqrt 2)); backward takes the input x. */
void		cai_enc_gelu_forward(float *out, const float *x, size_t n);
void		cai_enc_gelu_backward(float *dx, const float *dout, const float *x, size_t n);

#endif							/* CAI_ENCODER_OPS_H */
