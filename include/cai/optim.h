/*
 * optim.h: optimizers, gradient clipping, learning-rate schedules and the
 * parameter slab of the core.
 *
 * Optimizers are one loop over a flat slab of n floats (params, grads and
 * the moment slabs m, v share one layout).  t is the 1-based step count used
 * for Adam's bias correction.  All arithmetic is float32 in index order, so
 * the same inputs give bit-identical results.
 *
 *   SGD     buf = momentum * buf + (g + wd * p);  p -= lr * buf
 *           (momentum == 0: p -= lr * (g + wd * p), buf unused, may be NULL)
 *   Adam    g' = g + wd * p  (classic L2 penalty folded into the gradient)
 *   AdamW   decoupled decay: p -= lr * wd * p  next to the Adam update
 *           m = b1 * m + (1 - b1) * g';  v = b2 * v + (1 - b2) * g'^2
 *           p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */
#ifndef CAI_OPTIM_H
#define CAI_OPTIM_H

#include "cai/common.h"
#include "cai/ops.h"

typedef enum cai_optim_kind
{
	CAI_OPTIM_SGD = 0,
	CAI_OPTIM_ADAM = 1,
	CAI_OPTIM_ADAMW = 2
} cai_optim_kind;

typedef struct cai_optim_config
{
	cai_optim_kind kind;
	float		beta1;			/* Adam(W) first moment decay, [0, 1) */
	float		beta2;			/* Adam(W) second moment decay, [0, 1) */
	float		eps;			/* Adam(W) denominator term, > 0 */
	float		momentum;		/* SGD momentum, [0, 1) */
	float		weight_decay;	/* >= 0 */
} cai_optim_config;

/*
 * Defaults: SGD momentum 0.9; Adam(W) beta1 0.9, beta2 0.999, eps 1e-8;
 * weight decay 0 for SGD and Adam, 0.01 for AdamW.
 */
cai_optim_config cai_optim_defaults(cai_optim_kind kind);

/* Reject out-of-range hyperparameters (CAI_ERR_INVALID). */
cai_status	cai_optim_check(const cai_optim_config *cfg, cai_error *err);

/* Number of state slabs (0, 1 = m, or 2 = m and v) the optimizer needs. */
int			cai_optim_state_slabs(const cai_optim_config *cfg);

void		cai_sgd_step(float *params, const float *grads, float *buf, size_t n,
						 float lr, float momentum, float weight_decay);
void		cai_adam_step(float *params, const float *grads, float *m, float *v, size_t n,
						  float lr, float beta1, float beta2, float eps,
						  float weight_decay, int64_t t);
void		cai_adamw_step(float *params, const float *grads, float *m, float *v, size_t n,
						   float lr, float beta1, float beta2, float eps,
						   float weight_decay, int64_t t);

/* Dispatch on cfg->kind; m (and v) as cai_optim_state_slabs() requires. */
void		cai_optim_step(const cai_optim_config *cfg, float lr, int64_t t,
						   float *params, const float *grads,
						   float *m, float *v, size_t n);

/*
 * Lazy (sparse) update of the listed rows of (V, D) tables only: each row
 * r in rows[0..n_rows) gets the dense update of its D floats at
 * params + r * D (likewise grads, m, v).  Rows not listed are untouched:
 * their moments do not decay and they get no weight decay (like PyTorch's
 * SparseAdam).  The caller guarantees rows are distinct and in [0, V).
 */
void		cai_optim_step_rows(const cai_optim_config *cfg, float lr, int64_t t,
								float *params, const float *grads,
								float *m, float *v, size_t D,
								const int32_t *rows, size_t n_rows);

/* ---------------------------------------------------------------------
 * Gradient clipping by global L2 norm (sums of squares in double).
 */
double		cai_sumsq(const float *x, size_t n);
double		cai_rows_sumsq(const float *x, size_t D, const int32_t *rows, size_t n_rows);
void		cai_scale(float *x, size_t n, float s);

/*
 * If max_norm > 0 and the norm exceeds it, scale grads by max_norm / norm.
 * Returns the norm before clipping.  A non-finite norm leaves the gradients
 * unchanged and is returned as is: the caller should stop with
 * CAI_ERR_NUMERIC.
 */
float		cai_clip_grad_norm(float *grads, size_t n, float max_norm);

/* ---------------------------------------------------------------------
 * Learning-rate schedule, step 0-based:
 *
 *   step < warmup            lr = base * (step + 1) / warmup
 *   afterwards, with progress = (step - warmup) / max(1, total - warmup)
 *   clamped to [0, 1]:
 *     CAI_LR_CONSTANT        lr = base
 *     CAI_LR_LINEAR          lr = min + (base - min) * (1 - progress)
 *     CAI_LR_COSINE          lr = min + (base - min) * (1 + cos(pi * progress)) / 2
 *
 * So with linear decay the last step (total - 1) uses slightly more than
 * min and a step >= total uses min.
 */
typedef enum cai_lr_decay
{
	CAI_LR_CONSTANT = 0,
	CAI_LR_LINEAR = 1,
	CAI_LR_COSINE = 2
} cai_lr_decay;

float		cai_lr_schedule(cai_lr_decay decay, float base_lr, float min_lr,
							int64_t step, int64_t warmup_steps, int64_t total_steps);

/* ---------------------------------------------------------------------
 * Parameter slab: a model declares named parameters with shapes, the slab
 * computes the total size up front, can tell how many bytes params +
 * gradients + optimizer state need (so a job is refused before allocating),
 * then allocates everything in one block: data, grad, m and v are parallel
 * slabs with one layout, and each parameter is a view at the same offset in
 * each.  Every view starts on a 64-byte boundary; padding stays zero.
 *
 * A parameter marked sparse (an embedding table) gets a cai_rowset: its
 * backward must record touched rows there (cai_embedding_backward(...,
 * cai_slab_rowset(s, i), ...)); then cai_slab_step updates, and
 * cai_slab_zero_grad zeroes, only those rows, and cai_slab_clip_grad_norm
 * counts only those rows.
 *
 * Weight decay applies by default to parameters with ndim >= 2 (matrices,
 * tables) and not to vectors (biases), as in llm.c; see cai_slab_set_decay.
 *
 * A training step:
 *   cai_slab_zero_grad(&s);
 *   ... forward, loss, backward into cai_slab_grad(&s, i) ...
 *   norm = cai_slab_clip_grad_norm(&s, max_norm);   (not finite: stop)
 *   cai_slab_step(&s, &cfg, cai_lr_schedule(...), ++t, err);
 */
#define CAI_PARAM_NAME_MAX 64	/* including the NUL (as CAI_NAME_MAX) */
#define CAI_PARAM_MAX_DIMS 4
#define CAI_SLAB_ALIGN_FLOATS 16	/* 64 bytes */
#define CAI_SLAB_MAX_PARAMS 4096

typedef struct cai_param
{
	char		name[CAI_PARAM_NAME_MAX];
	int			ndim;
	int64_t		shape[CAI_PARAM_MAX_DIMS];
	size_t		offset;			/* in floats from the start of each slab */
	size_t		numel;			/* product of shape */
	bool		decay;			/* weight decay applies */
	bool		sparse;			/* updated by rows (shape[0] rows) */
	cai_rowset	rows;			/* for sparse parameters once allocated */
} cai_param;

typedef struct cai_slab
{
	int			n_params;
	int			cap_params;
	cai_param  *params;			/* (n_params) */
	size_t		numel;			/* floats per slab, padding included */
	bool		has_grad;
	int			n_state;		/* 0, 1 (m) or 2 (m, v) */
	float	   *data;			/* (numel) parameters */
	float	   *grad;			/* (numel) or NULL */
	float	   *m;				/* (numel) or NULL */
	float	   *v;				/* (numel) or NULL */
	void	   *block;			/* the one allocation behind the four */
} cai_slab;

void		cai_slab_init(cai_slab *s);

/*
 * Declare a parameter (before cai_slab_alloc).  Names are unique, at most
 * CAI_PARAM_NAME_MAX - 1 bytes; 1 <= ndim <= CAI_PARAM_MAX_DIMS; every
 * dimension >= 1; the total must not overflow.  *index (may be NULL) gets
 * the parameter's index.  Example:
 *   cai_slab_declare(&s, "fc1.weight", 2, (int64_t[]){OC, IC}, &i, err);
 */
cai_status	cai_slab_declare(cai_slab *s, const char *name, int ndim,
							 const int64_t *shape, int *index, cai_error *err);
/* Mark parameter i sparse / set whether weight decay applies (before alloc). */
cai_status	cai_slab_set_sparse(cai_slab *s, int i, cai_error *err);
void		cai_slab_set_decay(cai_slab *s, int i, bool decay);

/* Index of the named parameter, -1 if none. */
int			cai_slab_find(const cai_slab *s, const char *name);

/*
 * Bytes cai_slab_alloc will allocate for parameters, gradients (if
 * with_grads), n_state optimizer slabs and the row sets of sparse
 * parameters.  CAI_ERR_LIMIT on size_t overflow.
 */
cai_status	cai_slab_bytes(const cai_slab *s, bool with_grads, int n_state,
						   size_t *bytes, cai_error *err);

/*
 * Allocate (zeroed) in one block.  max_bytes > 0 refuses with CAI_ERR_LIMIT
 * a slab needing more, before allocating.  n_state is 0..2 (use
 * cai_optim_state_slabs); inference uses with_grads = false, n_state = 0.
 */
cai_status	cai_slab_alloc(cai_slab *s, bool with_grads, int n_state,
						   size_t max_bytes, cai_error *err);
void		cai_slab_free(cai_slab *s);	/* frees declarations too; re-init after */

/* Views of parameter i (NULL if that slab is absent). */
float	   *cai_slab_data(const cai_slab *s, int i);
float	   *cai_slab_grad(const cai_slab *s, int i);
cai_rowset *cai_slab_rowset(cai_slab *s, int i);	/* NULL unless sparse */

/* Copy values into the named parameter after checking ndim and shape. */
cai_status	cai_slab_load(cai_slab *s, const char *name, int ndim, const int64_t *shape,
						  const float *values, cai_error *err);

/* Zero gradients: dense parameters fully, sparse ones by touched rows (then cleared). */
void		cai_slab_zero_grad(cai_slab *s);

/* Global gradient norm over dense params and touched sparse rows; clip as cai_clip_grad_norm. */
float		cai_slab_clip_grad_norm(cai_slab *s, float max_norm);

/* One optimizer step over every parameter (sparse ones by touched rows). */
cai_status	cai_slab_step(cai_slab *s, const cai_optim_config *cfg, float lr,
						  int64_t t, cai_error *err);

/*
 * cai_slab_step in parts that threads may run at once: cai_slab_step_check
 * once (what cai_slab_step refuses), then cai_slab_step_part for part =
 * 0 .. parts - 1, each updating slice part of parts of the dense
 * parameters' floats (taken in slab order) and of each sparse parameter's
 * touched rows.  The update is elementwise, so the parameters come out the
 * same bits as with one cai_slab_step, whatever parts is.
 */
cai_status	cai_slab_step_check(const cai_slab *s, const cai_optim_config *cfg, float lr, cai_error *err);
void		cai_slab_step_part(const cai_slab *s, const cai_optim_config *cfg, float lr, int64_t t,
							   int part, int parts);

/*
 * Clipping with threads: the caller sums the squares of the gradients in
 * parts (cai_sumsq, cai_rows_sumsq; the parts added in a fixed order), takes
 * the factor of the total's square root (cai_clip_factor: 1 = no clipping),
 * and each part scales slice part of the gradients by it before
 * cai_slab_step_part (the same bits as cai_slab_clip_grad_norm's scaling).
 */
float		cai_clip_factor(double norm, float max_norm);
void		cai_slab_scale_grad_part(const cai_slab *s, float f, int part, int parts);

/* ---------------------------------------------------------------------
 * Initialisation (cai_rng only, index order).
 */
void		cai_init_uniform(float *x, size_t n, float a, cai_rng *rng);	/* U(-a, a) */
void		cai_init_normal(float *x, size_t n, float std, cai_rng *rng);
void		cai_init_const(float *x, size_t n, float value);
/* Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)). */
void		cai_init_xavier(float *x, size_t n, int fan_in, int fan_out, cai_rng *rng);

#endif							/* CAI_OPTIM_H */
