/*
 * gradcheck.c: the finite-difference comparison of the whole-model gradient
 * check (see gradcheck.h).
 */
#include "gradcheck.h"

#include <math.h>

/* Quotients of steps h and h / 2 that differ by more than this (relative): a kink nearby. */
#define GRAD_KINK				5e-3
#define GRAD_SEED				7

/* Index of an entry of tensor i to check: of a row the batch uses, or of any. */
static size_t
sample_entry(const cai_grad_probe *p, int i, cai_rng *rng)
{
	if (p->rows[i] != NULL && p->n_rows[i] > 0)
	{
		int32_t		r = p->rows[i][cai_rng_below(rng, (uint32_t) p->n_rows[i])];

		return (size_t) r * (size_t) p->row_len[i] + cai_rng_below(rng, (uint32_t) p->row_len[i]);
	}
	return cai_rng_below(rng, (uint32_t) p->numel[i]);
}

static double
rel_err(double a, double b)
{
	double		e = fabs(a - b) / fmax(fabs(a) + fabs(b), CAI_GRAD_FLOOR);

	return isfinite(e) ? e : INFINITY;
}

/* Central difference quotient of the loss in entry x, step h (rounded to float). */
static cai_status
quotient(const cai_grad_probe *p, float *x, double h, double *q, cai_error *err)
{
	const float old = *x;
	const float xp = (float) (old + h);
	const float xm = (float) (old - h);
	double		lp = 0.0;
	double		lm = 0.0;
	cai_status	st;

	*x = xp;
	st = p->loss(p->ctx, NULL, &lp, err);
	*x = xm;
	if (st == CAI_OK)
		st = p->loss(p->ctx, NULL, &lm, err);
	*x = old;
	*q = (lp - lm) / ((double) xp - (double) xm);
	return st;
}

cai_status
cai_gradcheck_compare(const cai_grad_probe *p, int samples, double *max_err, cai_error *err)
{
	float	   *grad[CAI_GRAD_MAX_TENSORS] = {0};
	double		loss;
	double		worst = 0.0;
	cai_rng		rng;
	cai_status	st = CAI_OK;

	*max_err = 0.0;
	if (p->n_tensors > CAI_GRAD_MAX_TENSORS)
		return cai_error_set(err, CAI_ERR_INTERNAL, "gradient check of too many tensors");
	for (int i = 0; i < p->n_tensors; i++)
		if ((grad[i] = cai_malloc(sizeof(float) * (p->numel[i] > 0 ? p->numel[i] : 1))) == NULL)
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory in the gradient check");
			goto done;
		}
	if ((st = p->loss(p->ctx, grad, &loss, err)) != CAI_OK)
		goto done;
	if (!isfinite(loss))
	{
		st = cai_error_set(err, CAI_ERR_NUMERIC, "the loss of the gradient check's batch is not finite");
		goto done;
	}
	cai_rng_seed(&rng, GRAD_SEED);
	for (int i = 0; i < p->n_tensors; i++)
	{
		bool		any = false;
		int			checked = 0;

		if (p->numel[i] == 0)
			continue;
		for (size_t j = 0; j < p->numel[i] && !any; j++)
			any = grad[i][j] != 0.0f;
		/* every tensor takes part in the loss: no gradient at all is a broken backward pass */
		if (!any)
			worst = fmax(worst, 1.0);
		for (int k = 0; k < 4 * samples && checked < samples; k++)
		{
			size_t		j = sample_entry(p, i, &rng);
			double		q1;
			double		q2;

			if ((st = quotient(p, p->data[i] + j, CAI_GRAD_EPS, &q1, err)) != CAI_OK ||
				(st = quotient(p, p->data[i] + j, CAI_GRAD_EPS / 2, &q2, err)) != CAI_OK)
				goto done;
			if (rel_err(q1, q2) > GRAD_KINK)
				continue;
			worst = fmax(worst, rel_err(q1, (double) grad[i][j]));
			checked++;
		}
		if (2 * checked < samples)
			worst = fmax(worst, 1.0);
	}
	*max_err = worst;
done:
	for (int i = 0; i < p->n_tensors; i++)
		cai_free(grad[i]);
	return st;
}
