/*
 * crf.h: a linear-chain conditional random field over K tags.
 *
 * The score of a tag path y (length T) given emission scores e (T, K) is
 *
 *   score(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t]
 *              + end[y_{T-1}]
 *
 * and p(y | e) = exp(score(y) - log Z).  The negative log-likelihood of a
 * gold path is log Z - score(gold).
 *
 * All dynamic programs run in double precision: forward-backward as a
 * max-shifted log-sum-exp (factorized so a position costs K exponentials and
 * K^2 multiply-adds, with an exact fallback when scores spread over hundreds
 * of nats; see crf.c) and Viterbi.  Their work buffer is sized
 * by cai_crf_work_size(); every function that takes one also accepts NULL
 * and then allocates (and frees) it itself.
 *
 * Scores may be -infinity (that choice is forbidden); NaN or +infinity in
 * emissions or parameters is CAI_ERR_NUMERIC, and a sequence with no allowed
 * path at all is CAI_ERR_INVALID.
 *
 * An optional mask restricts the paths: a disallowed transition, start or
 * end tag scores -infinity.  Build one from tag names with
 * cai_crf_mask_build() for IOB2 or BIOES.
 */
#ifndef CAI_CRF_H
#define CAI_CRF_H

#include "cai/common.h"

/* Views into a parameter (or gradient) slab. */
typedef struct cai_crf_params
{
	float	   *trans;			/* (K, K) [from, to] */
	float	   *start;			/* (K) */
	float	   *end;			/* (K) */
} cai_crf_params;

/* Number of floats of the parameters: K*K + 2K. */
size_t		cai_crf_param_count(int K);

/* Point p at a slab of cai_crf_param_count(K) floats (trans, start, end). */
void		cai_crf_params_view(cai_crf_params *p, float *base, int K);

/* Allowed transitions: 1 allowed, 0 forbidden. */
typedef struct cai_crf_mask
{
	uint8_t    *trans;			/* (K, K) [from, to] */
	uint8_t    *start;			/* (K) may be the first tag */
	uint8_t    *end;			/* (K) may be the last tag */
} cai_crf_mask;

/* Point m at K*K + 2K bytes (trans, start, end). */
void		cai_crf_mask_view(cai_crf_mask *m, uint8_t *base, int K);

typedef enum cai_tag_scheme
{
	CAI_TAGS_IOB2 = 0,			/* O, B-X, I-X */
	CAI_TAGS_BIOES = 1			/* O, B-X, I-X, E-X, S-X */
} cai_tag_scheme;

/*
 * Fill m (already pointing at K*K + 2K bytes) from K tag names.  A name is
 * "O" or a prefix letter, '-', and a non-empty type ("B-ORG.NAM",
 * "I-product"); types are compared as exact strings.
 *
 *   IOB2:  I-X only after B-X or I-X; may not start with I-X.
 *   BIOES: B-X -> I-X | E-X;  I-X -> I-X | E-X;
 *          E-X, S-X, O -> B-* | S-* | O;
 *          start with B-*, S-* or O; end with E-*, S-* or O.
 *
 * Unknown prefixes (e.g. E-X under IOB2), empty types and duplicate names
 * are CAI_ERR_INVALID.
 */
cai_status	cai_crf_mask_build(cai_tag_scheme scheme, const char *const *tags, int K,
							   cai_crf_mask *m, cai_error *err);

/* Size in doubles of the work buffer for one sequence of length T. */
cai_status	cai_crf_work_size(int T, int K, size_t *ndoubles, cai_error *err);

/* log Z of emis (T, K) under the (optional) mask. */
cai_status	cai_crf_log_partition(const cai_crf_params *p, int K,
								  const float *emis, int T,
								  const cai_crf_mask *mask,
								  double *logz, double *work, cai_error *err);

/* Score of a tag path tags (T), each in [0, K). */
cai_status	cai_crf_path_score(const cai_crf_params *p, int K,
							   const float *emis, int T, const int32_t *tags,
							   double *score, cai_error *err);

/*
 * Negative log-likelihood of the gold path tags (T) and its gradient, via
 * forward-backward marginals, scaled by gscale and accumulated (+=) into
 * demis (T, K) and grad (either may be NULL to skip).  With a mask the
 * partition function sums only allowed paths (a forbidden gold path is
 * CAI_ERR_INVALID).  Non-finite scores are CAI_ERR_NUMERIC.
 */
cai_status	cai_crf_nll(const cai_crf_params *p, int K,
						const float *emis, int T, const int32_t *tags,
						const cai_crf_mask *mask, float gscale,
						double *nll, float *demis, cai_crf_params *grad,
						double *work, cai_error *err);

/*
 * Per-token marginal probabilities marg (T, K) (each row sums to 1) and,
 * unless logz is NULL, log Z.
 */
cai_status	cai_crf_marginals(const cai_crf_params *p, int K,
							  const float *emis, int T,
							  const cai_crf_mask *mask,
							  float *marg, double *logz,
							  double *work, cai_error *err);

/*
 * Viterbi: the best path into tags (T) and, unless score is NULL, its score.
 * Ties (equal scores) go to the lower tag index at each step.  If the mask allows no path at all the
 * result is CAI_ERR_INVALID.
 */
cai_status	cai_crf_viterbi(const cai_crf_params *p, int K,
							const float *emis, int T,
							const cai_crf_mask *mask,
							int32_t *tags, double *score,
							double *work, cai_error *err);

/*
 * Batch helpers over padded emis (B, T, K) and tags (B, T) with lengths
 * len (B), 0 <= len[b] <= T (empty sequences contribute nothing).  work is
 * sized for (T, K) or NULL.
 *
 * cai_crf_nll_batch: *nll_sum = sum of the sequences' NLL; demis (B, T, K)
 * and grad accumulate gscale times the gradient (padding untouched).
 * cai_crf_viterbi_batch: tags (B, T), padding set to -1.
 */
cai_status	cai_crf_nll_batch(const cai_crf_params *p, int K,
							  const float *emis, const int32_t *tags,
							  const int32_t *len, int B, int T,
							  const cai_crf_mask *mask, float gscale,
							  double *nll_sum, float *demis, cai_crf_params *grad,
							  double *work, cai_error *err);
cai_status	cai_crf_viterbi_batch(const cai_crf_params *p, int K,
								  const float *emis, const int32_t *len,
								  int B, int T, const cai_crf_mask *mask,
								  int32_t *tags, double *work, cai_error *err);

/*
 * Marginal probability p(y_t = tags[b][t] | emissions) of each sequence's
 * given path (tags (B, T), e.g. its Viterbi path), packed: sequence b's at
 * out[len[0] + ... + len[b - 1] + t].  The values of cai_crf_marginals to
 * rounding, by a scaled forward-backward in probabilities (K exponentials a
 * position; the log-domain passes where scores spread too far): for
 * inference, where a tagger reports its confidence.
 */
cai_status	cai_crf_path_marginals_batch(const cai_crf_params *p, int K,
										 const float *emis, const int32_t *len,
										 int B, int T, const cai_crf_mask *mask,
										 const int32_t *tags, float *out,
										 double *work, cai_error *err);

#endif							/* CAI_CRF_H */
