/*
 * crf.c: linear-chain CRF (forward-backward, NLL and its gradient, Viterbi,
 * marginals) and the IOB2 / BIOES transition masks.  See include/cai/crf.h.
 *
 * Forward-backward without K^2 exponentials per position.  A log-sum-exp
 * over predecessors factorizes with shifts:
 *
 *   log sum_i exp(a_i + tr_ij) = m + cmax_j + log sum_i P_i E_ij,
 *   P_i = exp(a_i - m),  m = max_i a_i,  E_ij = exp(tr_ij - cmax_j),
 *   cmax_j = max_i tr_ij,
 *
 * so a step costs K exponentials and a K x K multiply-add (the backward
 * pass uses row maxima likewise).  The K x K loops are axpy-shaped (no
 * reductions), so they vectorize without changing the summation order; on
 * GCC they are compiled with the vectorizer on and FMA contraction off, so
 * the bits do not depend on alignment.  Every factor is in [0, 1], so nothing
 * overflows; when a sum falls below CRF_TINY (scores spread over hundreds of
 * nats, where underflowed terms could matter) that entry is recomputed with
 * the plain max-shifted log-sum-exp.  Above the threshold the lost terms are
 * below 1e-307 against a sum above 1e-280: the result is exact to rounding.
 */
#include "cai/crf.h"

#include <math.h>
#include <string.h>

#define CRF_MAX_K 65536
#define CRF_TINY 1e-280

/* Views into a work buffer of cai_crf_work_size doubles. */
typedef struct crf_work
{
	double	   *tr;				/* (K, K) transitions, -inf where masked */
	double	   *st;				/* (K) start scores, -inf where masked */
	double	   *en;				/* (K) end scores, -inf where masked */
	double	   *alpha;			/* (T, K) forward log scores / Viterbi deltas */
	double	   *beta;			/* (T, K) backward log scores */
	double	   *ecol;			/* (K, K) exp(tr - cmax) by column */
	double	   *erow;			/* (K, K) exp(tr - rmax) by row */
	double	   *erowt;			/* (K, K) erow transposed, [to, from] */
	double	   *cmax;			/* (K) column maxima of tr */
	double	   *rmax;			/* (K) row maxima of tr */
	double	   *v1;				/* (K) scratch */
	double	   *v2;				/* (K) scratch */
	double	   *v3;				/* (K) scratch */
	double	   *pair;			/* (K, K) expected transition counts */
	int32_t    *bp;				/* (T, K) Viterbi back-pointers */
} crf_work;

size_t
cai_crf_param_count(int K)
{
	return (size_t) K * K + 2 * (size_t) K;
}

void
cai_crf_params_view(cai_crf_params *p, float *base, int K)
{
	p->trans = base;
	p->start = p->trans + (size_t) K * K;
	p->end = p->start + K;
}

void
cai_crf_mask_view(cai_crf_mask *m, uint8_t *base, int K)
{
	m->trans = base;
	m->start = m->trans + (size_t) K * K;
	m->end = m->start + K;
}

static cai_status
crf_check_dims(int T, int K, cai_error *err)
{
	if (K < 1 || K > CRF_MAX_K)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "crf tag count %d outside [1, %d]", K, CRF_MAX_K);
	if (T < 1)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "crf sequence length %d must be positive", T);
	return CAI_OK;
}

cai_status
cai_crf_work_size(int T, int K, size_t *ndoubles, cai_error *err)
{
	cai_status	st = crf_check_dims(T, K, err);
	size_t		tk;
	size_t		total;

	if (st != CAI_OK)
		return st;
	/*
	 * alpha, beta (T, K); bp as int32 pairs per double; tr, ecol, erow,
	 * erowt, pair (K, K); st, en, cmax, rmax, v1, v2, v3 (K)
	 */
	if (!cai_size_mul((size_t) T, (size_t) K, &tk) ||
		!cai_size_mul(tk, 2, &total) ||
		!cai_size_add(total, (tk + 1) / 2, &total) ||
		!cai_size_add(total, 5 * (size_t) K * K + 7 * (size_t) K, &total) ||
		total > SIZE_MAX / sizeof(double))
		return cai_error_set(err, CAI_ERR_LIMIT,
							 "crf work size overflows (T=%d, K=%d)", T, K);
	*ndoubles = total;
	return CAI_OK;
}

/*
 * Point w into work (allocating it when NULL: *owned is then to be freed)
 * and load the masked parameters in double precision.
 */
static cai_status
crf_work_init(crf_work *w, const cai_crf_params *p, int K, int T,
			  const cai_crf_mask *mask, double *work, double **owned,
			  cai_error *err)
{
	size_t		n;
	size_t		tk = (size_t) T * K;
	cai_status	st = cai_crf_work_size(T, K, &n, err);

	*owned = NULL;
	if (st != CAI_OK)
		return st;
	if (p == NULL || p->trans == NULL || p->start == NULL || p->end == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf parameters are null");
	if (mask != NULL && (mask->trans == NULL || mask->start == NULL || mask->end == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "crf mask has a null array");
	if (work == NULL)
	{
		work = cai_malloc(n * sizeof(double));
		if (work == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM,
								 "out of memory for crf work buffer (%zu bytes)",
								 n * sizeof(double));
		*owned = work;
	}
	w->tr = work;
	w->st = w->tr + (size_t) K * K;
	w->en = w->st + K;
	w->ecol = w->en + K;
	w->erow = w->ecol + (size_t) K * K;
	w->erowt = w->erow + (size_t) K * K;
	w->pair = w->erowt + (size_t) K * K;
	w->cmax = w->pair + (size_t) K * K;
	w->rmax = w->cmax + K;
	w->v1 = w->rmax + K;
	w->v2 = w->v1 + K;
	w->v3 = w->v2 + K;
	w->alpha = w->v3 + K;
	w->beta = w->alpha + tk;
	w->bp = (int32_t *) (w->beta + tk);

	for (size_t k = 0; k < (size_t) K * K; k++)
		w->tr[k] = (mask != NULL && !mask->trans[k]) ? -INFINITY : (double) p->trans[k];
	for (int k = 0; k < K; k++)
	{
		w->st[k] = (mask != NULL && !mask->start[k]) ? -INFINITY : (double) p->start[k];
		w->en[k] = (mask != NULL && !mask->end[k]) ? -INFINITY : (double) p->end[k];
	}
	/*
	 * -inf is a usable score (a forbidden choice); NaN and +inf are not.
	 * tr, st and en are contiguous.
	 */
	for (size_t k = 0; k < (size_t) K * K + 2 * (size_t) K; k++)
		if (isnan(w->tr[k]) || w->tr[k] == INFINITY)
			goto bad;
	return CAI_OK;
bad:
	cai_free(*owned);
	*owned = NULL;
	return cai_error_set(err, CAI_ERR_NUMERIC, "crf parameters contain NaN or infinity");
}

static cai_status
crf_check_emis(const float *emis, int T, int K, cai_error *err)
{
	for (size_t k = 0; k < (size_t) T * K; k++)
		if (isnan(emis[k]) || emis[k] == INFINITY)
			return cai_error_set(err, CAI_ERR_NUMERIC,
								 "crf emission score at position %zu, tag %zu is NaN or infinite",
								 k / (size_t) K, k % (size_t) K);
	return CAI_OK;
}

/* log(sum_i exp(a[i] + b[i * stride])), max-shifted; -inf if all are -inf */
static inline double
crf_lse(const double *a, const double *b, size_t stride, int K)
{
	double		m = -INFINITY;
	double		sum = 0.0;

	for (int i = 0; i < K; i++)
	{
		double		v = a[i] + b[i * stride];

		if (v > m)
			m = v;
	}
	if (m == -INFINITY)
		return -INFINITY;
	for (int i = 0; i < K; i++)
		sum += exp(a[i] + b[i * stride] - m);
	return m + log(sum);
}

#if defined(__GNUC__) && !defined(__clang__)
#define CRF_VECTORIZE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off")))
#else
#define CRF_VECTORIZE
#endif

/* y += a x */
CRF_VECTORIZE static void
crf_axpy(double *restrict y, double a, const double *restrict x, int K)
{
	for (int j = 0; j < K; j++)
		y[j] += a * x[j];
}

/* y += (a x) * q */
CRF_VECTORIZE static void
crf_axpy_mul(double *restrict y, double a, const double *restrict x,
			 const double *restrict q, int K)
{
	for (int j = 0; j < K; j++)
		y[j] += (a * x[j]) * q[j];
}

/* Viterbi relaxation from tag i: best[j], arg[j] take a + tr[j] if larger */
CRF_VECTORIZE static void
crf_max_update(double *restrict best, int32_t *restrict arg, double a,
			   const double *restrict tr, int32_t i, int K)
{
	for (int j = 0; j < K; j++)
	{
		double		v = a + tr[j];
		bool		gt = v > best[j];

		best[j] = gt ? v : best[j];
		arg[j] = gt ? i : arg[j];
	}
}

/* Shifted exponentials of the transitions (ecol, erowt, cmax, rmax). */
static void
crf_prepare_exp(crf_work *w, int K)
{
	for (int j = 0; j < K; j++)
		w->cmax[j] = -INFINITY;
	for (int i = 0; i < K; i++)
	{
		const double *tr = w->tr + (size_t) i * K;
		double		m = -INFINITY;

		for (int j = 0; j < K; j++)
		{
			if (tr[j] > m)
				m = tr[j];
			if (tr[j] > w->cmax[j])
				w->cmax[j] = tr[j];
		}
		w->rmax[i] = m;
	}
	for (int i = 0; i < K; i++)
	{
		const double *tr = w->tr + (size_t) i * K;
		double	   *ec = w->ecol + (size_t) i * K;
		double	   *er = w->erow + (size_t) i * K;

		for (int j = 0; j < K; j++)
		{
			ec[j] = w->cmax[j] == -INFINITY ? 0.0 : exp(tr[j] - w->cmax[j]);
			er[j] = w->rmax[i] == -INFINITY ? 0.0 : exp(tr[j] - w->rmax[i]);
			w->erowt[(size_t) j * K + i] = er[j];
		}
	}
}

/* max of a (K); -inf if all are -inf */
static inline double
crf_max(const double *a, int K)
{
	double		m = -INFINITY;

	for (int i = 0; i < K; i++)
		if (a[i] > m)
			m = a[i];
	return m;
}

/* Forward pass: alpha and log Z, with the finite check. */
static cai_status
crf_forward(crf_work *w, int K, const float *emis, int T, double *logz,
			cai_error *err)
{
	double	   *alpha = w->alpha;
	double	   *P = w->v1;
	double	   *acc = w->v2;
	double		z;

	if (T > 1)
		crf_prepare_exp(w, K);
	for (int j = 0; j < K; j++)
		alpha[j] = w->st[j] + (double) emis[j];
	for (int t = 1; t < T; t++)
	{
		const double *prev = alpha + (size_t) (t - 1) * K;
		double	   *cur = alpha + (size_t) t * K;
		const float *e = emis + (size_t) t * K;
		double		m = crf_max(prev, K);

		if (m == -INFINITY)
		{
			for (int j = 0; j < K; j++)
				cur[j] = -INFINITY;
			continue;
		}
		for (int i = 0; i < K; i++)
			P[i] = exp(prev[i] - m);
		memset(acc, 0, sizeof(double) * (size_t) K);
		for (int i = 0; i < K; i++)
			if (P[i] != 0.0)
				crf_axpy(acc, P[i], w->ecol + (size_t) i * K, K);
		for (int j = 0; j < K; j++)
		{
			if (w->cmax[j] == -INFINITY)
				cur[j] = -INFINITY;
			else if (acc[j] > CRF_TINY)
				cur[j] = (double) e[j] + (m + w->cmax[j] + log(acc[j]));
			else
				cur[j] = (double) e[j] + crf_lse(prev, w->tr + j, (size_t) K, K);
		}
	}
	z = crf_lse(alpha + (size_t) (T - 1) * K, w->en, 1, K);
	if (isnan(z) || z == INFINITY)
		return cai_error_set(err, CAI_ERR_NUMERIC, "crf log partition is not finite");
	if (z == -INFINITY)
		return cai_error_set(err, CAI_ERR_INVALID, "no tag path is allowed");
	*logz = z;
	return CAI_OK;
}

/*
 * For the step t -> t + 1 of the backward recursion: Bv[j] = e[t+1][j] +
 * beta[t+1][j], returns mB = max Bv and fills Q[j] = exp(Bv[j] - mB)
 * (unless mB is -inf).
 */
static double
crf_next_terms(const crf_work *w, int K, const float *emis, int t,
			   double *Bv, double *Q)
{
	const double *next = w->beta + (size_t) (t + 1) * K;
	const float *e = emis + (size_t) (t + 1) * K;
	double		m;

	for (int j = 0; j < K; j++)
		Bv[j] = (double) e[j] + next[j];
	m = crf_max(Bv, K);
	if (m != -INFINITY)
		for (int j = 0; j < K; j++)
			Q[j] = exp(Bv[j] - m);
	return m;
}

/* S[i] = sum_j erow[i][j] Q[j] for every i, as axpys over j */
static void
crf_row_sums(const crf_work *w, int K, const double *Q, double *S)
{
	memset(S, 0, sizeof(double) * (size_t) K);
	for (int j = 0; j < K; j++)
		if (Q[j] != 0.0)
			crf_axpy(S, Q[j], w->erowt + (size_t) j * K, K);
}

/*
 * Backward pass: beta[t][i] = log sum over suffixes after tag i at t
 * (needs crf_prepare_exp, done by crf_forward).
 */
static void
crf_backward(crf_work *w, int K, const float *emis, int T)
{
	double	   *beta = w->beta;
	double	   *Bv = w->v1;
	double	   *Q = w->v2;
	double	   *S = w->v3;

	for (int i = 0; i < K; i++)
		beta[(size_t) (T - 1) * K + i] = w->en[i];
	for (int t = T - 2; t >= 0; t--)
	{
		double	   *cur = beta + (size_t) t * K;
		double		m = crf_next_terms(w, K, emis, t, Bv, Q);

		if (m != -INFINITY)
			crf_row_sums(w, K, Q, S);
		for (int i = 0; i < K; i++)
		{
			if (m == -INFINITY || w->rmax[i] == -INFINITY)
				cur[i] = -INFINITY;
			else if (S[i] > CRF_TINY)
				cur[i] = w->rmax[i] + m + log(S[i]);
			else
				cur[i] = crf_lse(Bv, w->tr + (size_t) i * K, 1, K);
		}
	}
}

/*
 * Expected transition counts into w->pair (K, K):
 * sum_t p(y_t = i, y_{t+1} = j) = sum_t u_t(i) v_t(i, j) with the unary
 * marginal u_t(i) and the conditional v_t(i, j) = erow_ij Q_j / S_i, where
 * S_i = sum_j erow_ij Q_j (exp(tr_ij + Bv_j - beta_t(i)) when S_i is tiny).
 */
static void
crf_pair_marginals(crf_work *w, int K, const float *emis, int T, double logz)
{
	double	   *Bv = w->v1;
	double	   *Q = w->v2;
	double	   *S = w->v3;

	memset(w->pair, 0, sizeof(double) * (size_t) K * K);
	for (int t = 0; t + 1 < T; t++)
	{
		double		m = crf_next_terms(w, K, emis, t, Bv, Q);

		if (m == -INFINITY)
			continue;
		crf_row_sums(w, K, Q, S);
		for (int i = 0; i < K; i++)
		{
			double		bt = w->beta[(size_t) t * K + i];
			double		u = exp(w->alpha[(size_t) t * K + i] + bt - logz);
			double	   *acc = w->pair + (size_t) i * K;

			if (u == 0.0 || w->rmax[i] == -INFINITY)
				continue;
			if (S[i] > CRF_TINY)
				crf_axpy_mul(acc, u / S[i], w->erow + (size_t) i * K, Q, K);
			else
			{
				const double *tr = w->tr + (size_t) i * K;

				for (int j = 0; j < K; j++)
					acc[j] += u * exp(tr[j] + Bv[j] - bt);
			}
		}
	}
}

static cai_status
crf_check_tags(const int32_t *tags, int T, int K, cai_error *err)
{
	if (tags == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf tags are null");
	for (int t = 0; t < T; t++)
		if (tags[t] < 0 || tags[t] >= K)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "tag %d at position %d outside [0, %d)",
								 (int) tags[t], t, K);
	return CAI_OK;
}

/* Path score with the (masked, double) parameters in w. */
static double
crf_score(const crf_work *w, int K, const float *emis, int T, const int32_t *tags)
{
	double		s = w->st[tags[0]] + w->en[tags[T - 1]];

	for (int t = 0; t < T; t++)
		s += (double) emis[(size_t) t * K + tags[t]];
	for (int t = 1; t < T; t++)
		s += w->tr[(size_t) tags[t - 1] * K + tags[t]];
	return s;
}

cai_status
cai_crf_log_partition(const cai_crf_params *p, int K,
					  const float *emis, int T,
					  const cai_crf_mask *mask,
					  double *logz, double *work, cai_error *err)
{
	crf_work	w;
	double	   *owned;
	cai_status	st;

	if (emis == NULL || logz == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	st = crf_work_init(&w, p, K, T, mask, work, &owned, err);
	if (st == CAI_OK)
		st = crf_check_emis(emis, T, K, err);
	if (st == CAI_OK)
		st = crf_forward(&w, K, emis, T, logz, err);
	cai_free(owned);
	return st;
}

cai_status
cai_crf_path_score(const cai_crf_params *p, int K,
				   const float *emis, int T, const int32_t *tags,
				   double *score, cai_error *err)
{
	cai_status	st = crf_check_dims(T, K, err);
	double		s;

	if (st != CAI_OK)
		return st;
	if (p == NULL || p->trans == NULL || p->start == NULL || p->end == NULL ||
		emis == NULL || score == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	st = crf_check_tags(tags, T, K, err);
	if (st != CAI_OK)
		return st;
	s = (double) p->start[tags[0]] + (double) p->end[tags[T - 1]];
	for (int t = 0; t < T; t++)
		s += (double) emis[(size_t) t * K + tags[t]];
	for (int t = 1; t < T; t++)
		s += (double) p->trans[(size_t) tags[t - 1] * K + tags[t]];
	*score = s;
	return CAI_OK;
}

cai_status
cai_crf_nll(const cai_crf_params *p, int K,
			const float *emis, int T, const int32_t *tags,
			const cai_crf_mask *mask, float gscale,
			double *nll, float *demis, cai_crf_params *grad,
			double *work, cai_error *err)
{
	crf_work	w;
	double	   *owned;
	double		logz;
	double		gold;
	double		g = (double) gscale;
	cai_status	st;

	if (emis == NULL || nll == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	if (grad != NULL && (grad->trans == NULL || grad->start == NULL || grad->end == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "crf gradient has a null array");
	st = crf_work_init(&w, p, K, T, mask, work, &owned, err);
	if (st == CAI_OK)
		st = crf_check_emis(emis, T, K, err);
	if (st == CAI_OK)
		st = crf_check_tags(tags, T, K, err);
	if (st == CAI_OK)
		st = crf_forward(&w, K, emis, T, &logz, err);
	if (st != CAI_OK)
		goto done;
	gold = crf_score(&w, K, emis, T, tags);
	if (gold == -INFINITY)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "gold tag path is not allowed by the mask");
		goto done;
	}
	if (!isfinite(gold))
	{
		st = cai_error_set(err, CAI_ERR_NUMERIC, "crf gold path score is not finite");
		goto done;
	}
	*nll = logz - gold;

	if (demis == NULL && grad == NULL)
		goto done;
	crf_backward(&w, K, emis, T);

	/* unary marginals: emissions, start, end */
	for (int t = 0; t < T; t++)
	{
		const double *a = w.alpha + (size_t) t * K;
		const double *b = w.beta + (size_t) t * K;

		for (int j = 0; j < K; j++)
		{
			double		m = exp(a[j] + b[j] - logz);
			double		d = m - (tags[t] == j ? 1.0 : 0.0);

			if (demis != NULL)
				demis[(size_t) t * K + j] += (float) (g * d);
			if (grad != NULL && t == 0)
				grad->start[j] += (float) (g * d);
			if (grad != NULL && t == T - 1)
				grad->end[j] += (float) (g * d);
		}
	}
	/* pairwise marginals: expected transition counts minus the gold ones */
	if (grad != NULL && T > 1)
	{
		crf_pair_marginals(&w, K, emis, T, logz);
		for (int t = 0; t + 1 < T; t++)
			w.pair[(size_t) tags[t] * K + tags[t + 1]] -= 1.0;
		for (size_t k = 0; k < (size_t) K * K; k++)
			grad->trans[k] += (float) (g * w.pair[k]);
	}
done:
	cai_free(owned);
	return st;
}

cai_status
cai_crf_marginals(const cai_crf_params *p, int K,
				  const float *emis, int T,
				  const cai_crf_mask *mask,
				  float *marg, double *logz,
				  double *work, cai_error *err)
{
	crf_work	w;
	double	   *owned;
	double		z;
	cai_status	st;

	if (emis == NULL || marg == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	st = crf_work_init(&w, p, K, T, mask, work, &owned, err);
	if (st == CAI_OK)
		st = crf_check_emis(emis, T, K, err);
	if (st == CAI_OK)
		st = crf_forward(&w, K, emis, T, &z, err);
	if (st != CAI_OK)
		goto done;
	crf_backward(&w, K, emis, T);
	for (size_t k = 0; k < (size_t) T * K; k++)
		marg[k] = (float) exp(w.alpha[k] + w.beta[k] - z);
	if (logz != NULL)
		*logz = z;
done:
	cai_free(owned);
	return st;
}

cai_status
cai_crf_viterbi(const cai_crf_params *p, int K,
				const float *emis, int T,
				const cai_crf_mask *mask,
				int32_t *tags, double *score,
				double *work, cai_error *err)
{
	crf_work	w;
	double	   *owned;
	double	   *delta;
	double		best;
	int32_t		arg;
	cai_status	st;

	if (emis == NULL || tags == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	st = crf_work_init(&w, p, K, T, mask, work, &owned, err);
	if (st == CAI_OK)
		st = crf_check_emis(emis, T, K, err);
	if (st != CAI_OK)
	{
		cai_free(owned);
		return st;
	}
	delta = w.alpha;
	for (int j = 0; j < K; j++)
		delta[j] = w.st[j] + (double) emis[j];
	for (int t = 1; t < T; t++)
	{
		const double *prev = delta + (size_t) (t - 1) * K;
		double	   *cur = delta + (size_t) t * K;
		int32_t    *bp = w.bp + (size_t) t * K;
		const float *e = emis + (size_t) t * K;

		/* relax row by row (contiguous); ties keep the lower predecessor */
		for (int j = 0; j < K; j++)
		{
			cur[j] = prev[0] + w.tr[j];
			bp[j] = 0;
		}
		for (int i = 1; i < K; i++)
			if (prev[i] != -INFINITY)
				crf_max_update(cur, bp, prev[i], w.tr + (size_t) i * K, i, K);
		for (int j = 0; j < K; j++)
			cur[j] += (double) e[j];
	}
	{
		const double *last = delta + (size_t) (T - 1) * K;

		best = last[0] + w.en[0];
		arg = 0;
		for (int j = 1; j < K; j++)
			if (last[j] + w.en[j] > best)
			{
				best = last[j] + w.en[j];
				arg = j;
			}
	}
	if (isnan(best) || best == INFINITY)
		st = cai_error_set(err, CAI_ERR_NUMERIC, "crf viterbi score is not finite");
	else if (best == -INFINITY)
		st = cai_error_set(err, CAI_ERR_INVALID, "no tag path is allowed");
	else
	{
		tags[T - 1] = arg;
		for (int t = T - 1; t > 0; t--)
			tags[t - 1] = w.bp[(size_t) t * K + tags[t]];
		if (score != NULL)
			*score = best;
	}
	cai_free(owned);
	return st;
}

static cai_status
crf_check_batch(const float *emis, const int32_t *len, int B, int T,
				cai_error *err)
{
	if (emis == NULL || len == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	if (B < 1 || T < 1)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "crf batch sizes must be positive (B=%d, T=%d)", B, T);
	for (int b = 0; b < B; b++)
		if (len[b] < 0 || len[b] > T)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "sequence %d has length %d outside [0, %d]",
								 b, (int) len[b], T);
	return CAI_OK;
}

cai_status
cai_crf_nll_batch(const cai_crf_params *p, int K,
				  const float *emis, const int32_t *tags,
				  const int32_t *len, int B, int T,
				  const cai_crf_mask *mask, float gscale,
				  double *nll_sum, float *demis, cai_crf_params *grad,
				  double *work, cai_error *err)
{
	double	   *owned = NULL;
	double		sum = 0.0;
	size_t		n;
	cai_status	st = crf_check_batch(emis, len, B, T, err);

	if (st == CAI_OK && (tags == NULL || nll_sum == NULL))
		st = cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	if (st == CAI_OK)
		st = cai_crf_work_size(T, K, &n, err);
	if (st != CAI_OK)
		return st;
	if (work == NULL)
	{
		owned = cai_malloc(n * sizeof(double));
		if (owned == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM,
								 "out of memory for crf work buffer (%zu bytes)",
								 n * sizeof(double));
		work = owned;
	}
	for (int b = 0; b < B && st == CAI_OK; b++)
	{
		size_t		eo = (size_t) b * T * K;
		double		nll;

		if (len[b] == 0)
			continue;
		st = cai_crf_nll(p, K, emis + eo, len[b], tags + (size_t) b * T, mask, gscale,
						 &nll, demis != NULL ? demis + eo : NULL, grad, work, err);
		sum += nll;
	}
	if (st == CAI_OK)
		*nll_sum = sum;
	cai_free(owned);
	return st;
}

cai_status
cai_crf_viterbi_batch(const cai_crf_params *p, int K,
					  const float *emis, const int32_t *len,
					  int B, int T, const cai_crf_mask *mask,
					  int32_t *tags, double *work, cai_error *err)
{
	double	   *owned = NULL;
	size_t		n;
	cai_status	st = crf_check_batch(emis, len, B, T, err);

	if (st == CAI_OK && tags == NULL)
		st = cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	if (st == CAI_OK)
		st = cai_crf_work_size(T, K, &n, err);
	if (st != CAI_OK)
		return st;
	if (work == NULL)
	{
		owned = cai_malloc(n * sizeof(double));
		if (owned == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM,
								 "out of memory for crf work buffer (%zu bytes)",
								 n * sizeof(double));
		work = owned;
	}
	for (int b = 0; b < B && st == CAI_OK; b++)
	{
		int32_t    *tb = tags + (size_t) b * T;

		for (int t = len[b]; t < T; t++)
			tb[t] = -1;
		if (len[b] > 0)
			st = cai_crf_viterbi(p, K, emis + (size_t) b * T * K, len[b], mask,
								 tb, NULL, work, err);
	}
	cai_free(owned);
	return st;
}

/*
 * Marginals of given paths by the scaled forward-backward (inference only).
 *
 * Probabilities instead of log scores: with E_ij = exp(tr_ij - tmax) once
 * per batch and x_tj = exp(e_tj - max_j e_tj) once per position, a step is
 * a K x K multiply-add and a rescaling to sum 1, so a position costs K
 * exponentials instead of the log-domain passes' 5K exponentials and
 * logarithms.  The rescaled forward and backward vectors are proportional
 * to exp(alpha_t) and exp(beta_t), so p(y_t = j) = a_tj b_tj / sum_k a_tk b_tk.
 * Every factor stays a normal double with full precision, and every zero is
 * a forbidden choice rather than an underflow, as long as each factor of a
 * finite score (E, the start and end exponentials, x) is at least
 * CRF_SCALED_MIN (1e-50, a spread of 115 nats) and each nonzero entry of
 * the rescaled vectors at least CRF_SCALED_MASS (1e-200): products then stay
 * above 1e-301.  Beyond that (scores spread over hundreds of nats, never
 * seen in a trained tagger but allowed) the sequence takes the log-domain
 * passes instead.  Both give the same values to rounding.
 */
#define CRF_SCALED_MIN	1e-50
#define CRF_SCALED_MASS 1e-200

/* Rescale v (K) to sum 1; false if its sum or a nonzero entry is out of the exact range. */
static bool
crf_rescale(double *v, int K)
{
	double		c = 0.0;

	for (int j = 0; j < K; j++)
		c += v[j];
	if (!(c > CRF_TINY) || !isfinite(c))
		return false;
	for (int j = 0; j < K; j++)
	{
		v[j] /= c;
		if (v[j] != 0.0 && v[j] < CRF_SCALED_MASS)
			return false;
	}
	return true;
}

static bool
crf_scaled_path_marginals(crf_work *w, int K, const double *E, double smax, double emax,
						  const float *emis, int T, const int32_t *path, float *out)
{
	double	   *a = w->alpha;	/* (T, K) rescaled forward vectors */
	double	   *x = w->beta;	/* (T, K) shifted emission exponentials */
	double	   *b = w->v1;
	double	   *v = w->v2;
	double	   *bn = w->v3;

	for (int t = 0; t < T; t++)
	{
		const float *e = emis + (size_t) t * K;
		double	   *xt = x + (size_t) t * K;
		double		m = -INFINITY;

		for (int j = 0; j < K; j++)
			if ((double) e[j] > m)
				m = (double) e[j];
		if (m == -INFINITY)
			return false;
		for (int j = 0; j < K; j++)
		{
			xt[j] = exp((double) e[j] - m);
			if (e[j] != -INFINITY && xt[j] < CRF_SCALED_MIN)
				return false;
		}
	}
	for (int t = 0; t < T; t++)
	{
		double	   *at = a + (size_t) t * K;
		const double *xt = x + (size_t) t * K;

		if (t == 0)
			for (int j = 0; j < K; j++)
				at[j] = w->st[j] == -INFINITY ? 0.0 : exp(w->st[j] - smax) * xt[j];
		else
		{
			const double *prev = at - K;

			memset(at, 0, sizeof(double) * (size_t) K);
			for (int i = 0; i < K; i++)
				if (prev[i] != 0.0)
					crf_axpy(at, prev[i], E + (size_t) i * K, K);
			for (int j = 0; j < K; j++)
				at[j] *= xt[j];
		}
		if (!crf_rescale(at, K))
			return false;
	}
	for (int j = 0; j < K; j++)
		b[j] = w->en[j] == -INFINITY ? 0.0 : exp(w->en[j] - emax);
	for (int t = T - 1; t >= 0; t--)
	{
		const double *at = a + (size_t) t * K;
		double		den = 0.0;

		if (t < T - 1)
		{
			const double *xn = x + (size_t) (t + 1) * K;

			for (int j = 0; j < K; j++)
				v[j] = xn[j] * b[j];
			for (int i = 0; i < K; i++)
			{
				const double *Ei = E + (size_t) i * K;
				double		s = 0.0;

				for (int j = 0; j < K; j++)
					s += Ei[j] * v[j];
				bn[i] = s;
			}
			memcpy(b, bn, sizeof(double) * (size_t) K);
		}
		if (!crf_rescale(b, K))
			return false;
		for (int j = 0; j < K; j++)
			den += at[j] * b[j];
		if (!(den > CRF_TINY) || !isfinite(den))
			return false;
		out[t] = (float) (at[path[t]] * b[path[t]] / den);
	}
	return true;
}

cai_status
cai_crf_path_marginals_batch(const cai_crf_params *p, int K,
							 const float *emis, const int32_t *len,
							 int B, int T, const cai_crf_mask *mask,
							 const int32_t *tags, float *out,
							 double *work, cai_error *err)
{
	crf_work	w;
	double	   *owned = NULL;
	double	   *E;
	double		tmax = -INFINITY,
				smax = -INFINITY,
				emax = -INFINITY;
	bool		scaled = true;
	size_t		o = 0;
	cai_status	st = crf_check_batch(emis, len, B, T, err);

	if (st == CAI_OK && (tags == NULL || out == NULL))
		st = cai_error_set(err, CAI_ERR_INVALID, "crf argument is null");
	if (st == CAI_OK)
		st = crf_work_init(&w, p, K, T, mask, work, &owned, err);
	if (st != CAI_OK)
		return st;
	/* E lives in w.pair, which the log-domain forward and backward passes leave alone */
	E = w.pair;
	for (int k = 0; k < K; k++)
	{
		smax = w.st[k] > smax ? w.st[k] : smax;
		emax = w.en[k] > emax ? w.en[k] : emax;
	}
	for (size_t k = 0; k < (size_t) K * K; k++)
		tmax = w.tr[k] > tmax ? w.tr[k] : tmax;
	for (size_t k = 0; k < (size_t) K * K; k++)
	{
		E[k] = w.tr[k] == -INFINITY ? 0.0 : exp(w.tr[k] - tmax);
		if (w.tr[k] != -INFINITY && E[k] < CRF_SCALED_MIN)
			scaled = false;
	}
	for (int k = 0; k < K; k++)
		if ((w.st[k] != -INFINITY && exp(w.st[k] - smax) < CRF_SCALED_MIN) ||
			(w.en[k] != -INFINITY && exp(w.en[k] - emax) < CRF_SCALED_MIN))
			scaled = false;
	if (smax == -INFINITY || emax == -INFINITY)
		scaled = false;
	for (int b = 0; b < B && st == CAI_OK; b++)
	{
		const float *em = emis + (size_t) b * T * K;
		const int32_t *path = tags + (size_t) b * T;
		int			n = len[b];
		double		z;

		if (n == 0)
			continue;
		for (int t = 0; t < n && st == CAI_OK; t++)
			if (path[t] < 0 || path[t] >= K)
				st = cai_error_set(err, CAI_ERR_INVALID, "tag %d at position %d is outside [0, %d)",
								   (int) path[t], t, K);
		if (st == CAI_OK)
			st = crf_check_emis(em, n, K, err);
		if (st != CAI_OK)
			break;
		if (!scaled || (n > 1 && tmax == -INFINITY) ||
			!crf_scaled_path_marginals(&w, K, E, smax, emax, em, n, path, out + o))
		{
			if ((st = crf_forward(&w, K, em, n, &z, err)) != CAI_OK)
				break;
			crf_backward(&w, K, em, n);
			for (int t = 0; t < n; t++)
				out[o + t] = (float) exp(w.alpha[(size_t) t * K + path[t]] +
										 w.beta[(size_t) t * K + path[t]] - z);
		}
		o += (size_t) n;
	}
	cai_free(owned);
	return st;
}

/* Tag name parsing for the mask builder. */
typedef struct crf_tag
{
	char		kind;			/* 'O', 'B', 'I', 'E', 'S' */
	const char *type;			/* NULL for O */
} crf_tag;

static bool
crf_same_type(const crf_tag *a, const crf_tag *b)
{
	return a->type != NULL && b->type != NULL && strcmp(a->type, b->type) == 0;
}

static bool
crf_allowed(cai_tag_scheme scheme, const crf_tag *from, const crf_tag *to)
{
	if (scheme == CAI_TAGS_IOB2)
	{
		if (to->kind == 'I')
			return (from->kind == 'B' || from->kind == 'I') && crf_same_type(from, to);
		return true;
	}
	/* BIOES */
	if (from->kind == 'B' || from->kind == 'I')
		return (to->kind == 'I' || to->kind == 'E') && crf_same_type(from, to);
	return to->kind == 'B' || to->kind == 'S' || to->kind == 'O';
}

cai_status
cai_crf_mask_build(cai_tag_scheme scheme, const char *const *tags, int K,
				   cai_crf_mask *m, cai_error *err)
{
	crf_tag    *tt;
	const char *kinds;
	cai_status	st = CAI_OK;

	if (K < 1 || K > CRF_MAX_K)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "crf tag count %d outside [1, %d]", K, CRF_MAX_K);
	if (tags == NULL || m == NULL || m->trans == NULL || m->start == NULL || m->end == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "crf mask argument is null");
	if (scheme == CAI_TAGS_IOB2)
		kinds = "BI";
	else if (scheme == CAI_TAGS_BIOES)
		kinds = "BIES";
	else
		return cai_error_set(err, CAI_ERR_INVALID, "unknown tag scheme %d", (int) scheme);

	tt = cai_calloc((size_t) K, sizeof(crf_tag));
	if (tt == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for %d tags", K);
	for (int k = 0; k < K && st == CAI_OK; k++)
	{
		const char *s = tags[k];

		if (s == NULL)
			st = cai_error_set(err, CAI_ERR_INVALID, "tag %d is null", k);
		else if (strcmp(s, "O") == 0)
			tt[k].kind = 'O';
		else if (s[0] != '\0' && strchr(kinds, s[0]) != NULL && s[1] == '-' && s[2] != '\0')
		{
			tt[k].kind = s[0];
			tt[k].type = s + 2;
		}
		else
			st = cai_error_set(err, CAI_ERR_INVALID,
							   "tag \"%.64s\" is not valid in the %s scheme", s,
							   scheme == CAI_TAGS_IOB2 ? "IOB2" : "BIOES");
		for (int j = 0; j < k && st == CAI_OK; j++)
			if (strcmp(tags[j], s) == 0)
				st = cai_error_set(err, CAI_ERR_INVALID, "duplicate tag \"%.64s\"", s);
	}
	if (st == CAI_OK)
	{
		for (int i = 0; i < K; i++)
		{
			for (int j = 0; j < K; j++)
				m->trans[(size_t) i * K + j] = crf_allowed(scheme, &tt[i], &tt[j]) ? 1 : 0;
			if (scheme == CAI_TAGS_IOB2)
			{
				m->start[i] = tt[i].kind != 'I';
				m->end[i] = 1;
			}
			else
			{
				m->start[i] = tt[i].kind == 'B' || tt[i].kind == 'S' || tt[i].kind == 'O';
				m->end[i] = tt[i].kind == 'E' || tt[i].kind == 'S' || tt[i].kind == 'O';
			}
		}
	}
	cai_free(tt);
	return st;
}
