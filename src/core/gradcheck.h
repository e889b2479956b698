/*
 * gradcheck.h: the whole-model gradient check every architecture runs for
 * the tests (cai_arch.gradcheck).  An architecture gives a probe: one fixed
 * batch of its training data, set up as its training sets it up, its float
 * parameter tensors, and its training code's loss and gradient on that
 * batch; cai_gradcheck_compare compares that gradient with central finite
 * differences of that loss at sampled entries of every tensor.
 */
#ifndef CAI_GRADCHECK_H
#define CAI_GRADCHECK_H

#include "cai/common.h"

#define CAI_GRAD_MAX_TENSORS	16

typedef struct cai_grad_probe
{
	int			n_tensors;
	const char *name[CAI_GRAD_MAX_TENSORS];
	float	   *data[CAI_GRAD_MAX_TENSORS];	/* (numel[i]); the check perturbs entries in place and restores them */
	size_t		numel[CAI_GRAD_MAX_TENSORS];
	/*
	 * For an embedding table: the rows (of row_len floats) the batch uses;
	 * the check samples entries of these rows only.  NULL for a dense tensor
	 * (entries sampled from all of it).
	 */
	const int32_t *rows[CAI_GRAD_MAX_TENSORS];
	size_t		n_rows[CAI_GRAD_MAX_TENSORS];
	int			row_len[CAI_GRAD_MAX_TENSORS];
	/*
	 * The mean loss of the batch at the current parameters from the
	 * training's forward pass, dropout off; with grad not NULL also its
	 * gradient from the training's backward pass, grad[i] (numel[i] floats)
	 * for tensor i.  The same parameters give the same loss, bit for bit.
	 */
	cai_status	(*loss) (void *ctx, float *const *grad, double *loss, cai_error *err);
	void		(*free) (void *ctx);
	void	   *ctx;
} cai_grad_probe;

/*
 * Compare the probe's gradient with central finite differences of its loss
 * (step CAI_GRAD_EPS, rounded to float, in double) at `samples` entries of
 * every tensor.  *max_err gets the largest |analytic - numeric| /
 * max(|analytic| + |numeric|, CAI_GRAD_FLOOR).  The loss may have kinks
 * (max pooling): an entry whose difference quotients of steps CAI_GRAD_EPS
 * and CAI_GRAD_EPS / 2 differ by more than 5e-3 (relative, as above: a kink
 * nearby; the forward pass alone decides, whatever the backward pass says)
 * is replaced by another, within 4 samples draws.  A tensor whose gradient
 * is all zero, or of which fewer than half the samples could be checked,
 * counts as error 1.  Frees nothing: the caller calls p->free.
 */
#define CAI_GRAD_EPS			1e-2
#define CAI_GRAD_FLOOR			1e-3

cai_status	cai_gradcheck_compare(const cai_grad_probe *p, int samples, double *max_err, cai_error *err);

#endif							/* CAI_GRADCHECK_H */
