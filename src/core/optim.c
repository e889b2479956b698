/*
 * optim.c: SGD / Adam / AdamW over flat slabs, gradient clipping, learning
 * rate schedules, the parameter slab and initialisers.
 */
#include "cai/optim.h"

#include <math.h>
#include <string.h>

#include "vectorize.h"

/* ---------------------------------------------------------------------
 * Configuration
 */

cai_optim_config
cai_optim_defaults(cai_optim_kind kind)
{
	cai_optim_config c;

	c.kind = kind;
	c.beta1 = 0.9f;
	c.beta2 = 0.999f;
	c.eps = 1e-8f;
	c.momentum = kind == CAI_OPTIM_SGD ? 0.9f : 0.0f;
	c.weight_decay = kind == CAI_OPTIM_ADAMW ? 0.01f : 0.0f;
	return c;
}

static bool
in_unit_interval(float x)
{
	return x >= 0.0f && x < 1.0f;
}

cai_status
cai_optim_check(const cai_optim_config *cfg, cai_error *err)
{
	if (cfg->kind != CAI_OPTIM_SGD && cfg->kind != CAI_OPTIM_ADAM && cfg->kind != CAI_OPTIM_ADAMW)
		return cai_error_set(err, CAI_ERR_INVALID, "unknown optimizer kind %d", (int) cfg->kind);
	if (!(cfg->weight_decay >= 0.0f && isfinite(cfg->weight_decay)))
		return cai_error_set(err, CAI_ERR_INVALID, "weight decay must be finite and >= 0");
	if (cfg->kind == CAI_OPTIM_SGD)
	{
		if (!in_unit_interval(cfg->momentum))
			return cai_error_set(err, CAI_ERR_INVALID, "momentum must be in [0, 1)");
		return CAI_OK;
	}
	if (!in_unit_interval(cfg->beta1) || !in_unit_interval(cfg->beta2))
		return cai_error_set(err, CAI_ERR_INVALID, "adam betas must be in [0, 1)");
	if (!(cfg->eps > 0.0f && isfinite(cfg->eps)))
		return cai_error_set(err, CAI_ERR_INVALID, "adam epsilon must be finite and > 0");
	return CAI_OK;
}

int
cai_optim_state_slabs(const cai_optim_config *cfg)
{
	if (cfg->kind == CAI_OPTIM_SGD)
		return cfg->momentum > 0.0f ? 1 : 0;
	return 2;
}

/* ---------------------------------------------------------------------
 * Steps
 */

void
cai_sgd_step(float *params, const float *grads, float *buf, size_t n,
			 float lr, float momentum, float weight_decay)
{
	if (momentum > 0.0f && buf != NULL)
	{
		for (size_t i = 0; i < n; i++)
		{
			float		g = grads[i] + weight_decay * params[i];

			buf[i] = momentum * buf[i] + g;
			params[i] -= lr * buf[i];
		}
	}
	else
	{
		for (size_t i = 0; i < n; i++)
			params[i] -= lr * (grads[i] + weight_decay * params[i]);
	}
}

/*
 * The Adam loop, with its bias corrections b1c = 1 - beta1^t and b2c = 1 -
 * beta2^t computed once by the caller (a sparse step calls this for every
 * touched row).  Vectorized (CAI_VECTORIZE: the same IEEE operations per
 * element in every clone).  The core builds with -fno-math-errno (core.mk):
 * with errno, sqrtf is a call with a branch and the loop stays scalar (it
 * was a third of the accurate classifier's training time).
 */
CAI_VECTORIZE static void
adam_loop(float *restrict params, const float *restrict grads, float *restrict m, float *restrict v, size_t n,
		  float lr, float beta1, float beta2, float eps, float l2, float wd, float b1c, float b2c)
{
	for (size_t i = 0; i < n; i++)
	{
		float		p = params[i];
		float		g = grads[i] + l2 * p;
		float		mi = beta1 * m[i] + (1.0f - beta1) * g;
		float		vi = beta2 * v[i] + (1.0f - beta2) * g * g;
		float		mhat = mi / b1c;
		float		vhat = vi / b2c;

		m[i] = mi;
		v[i] = vi;
		params[i] = p - lr * (mhat / (__builtin_sqrtf(vhat) + eps) + wd * p);
	}
}

/* Adam's bias corrections at step t (t < 1 counts as 1). */
static void
adam_corrections(float beta1, float beta2, int64_t t, float *b1c, float *b2c)
{
	float		tt = (float) (t < 1 ? 1 : t);

	*b1c = 1.0f - powf(beta1, tt);
	*b2c = 1.0f - powf(beta2, tt);
}

static void
adam_generic(float *params, const float *grads, float *m, float *v, size_t n,
			 float lr, float beta1, float beta2, float eps,
			 float weight_decay, int64_t t, bool decoupled)
{
	float		b1c;
	float		b2c;

	adam_corrections(beta1, beta2, t, &b1c, &b2c);
	adam_loop(params, grads, m, v, n, lr, beta1, beta2, eps, decoupled ? 0.0f : weight_decay,
			  decoupled ? weight_decay : 0.0f, b1c, b2c);
}

void
cai_adam_step(float *params, const float *grads, float *m, float *v, size_t n,
			  float lr, float beta1, float beta2, float eps,
			  float weight_decay, int64_t t)
{
	adam_generic(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, false);
}

void
cai_adamw_step(float *params, const float *grads, float *m, float *v, size_t n,
			   float lr, float beta1, float beta2, float eps,
			   float weight_decay, int64_t t)
{
	adam_generic(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, true);
}

void
cai_optim_step(const cai_optim_config *cfg, float lr, int64_t t,
			   float *params, const float *grads, float *m, float *v, size_t n)
{
	switch (cfg->kind)
	{
		case CAI_OPTIM_SGD:
			cai_sgd_step(params, grads, m, n, lr, cfg->momentum, cfg->weight_decay);
			break;
		case CAI_OPTIM_ADAM:
			cai_adam_step(params, grads, m, v, n, lr, cfg->beta1, cfg->beta2, cfg->eps,
						  cfg->weight_decay, t);
			break;
		case CAI_OPTIM_ADAMW:
			cai_adamw_step(params, grads, m, v, n, lr, cfg->beta1, cfg->beta2, cfg->eps,
						   cfg->weight_decay, t);
			break;
	}
}

void
cai_optim_step_rows(const cai_optim_config *cfg, float lr, int64_t t,
					float *params, const float *grads, float *m, float *v, size_t D,
					const int32_t *rows, size_t n_rows)
{
	float		b1c;
	float		b2c;
	bool		decoupled = cfg->kind == CAI_OPTIM_ADAMW;

	if (cfg->kind == CAI_OPTIM_SGD)
	{
		for (size_t i = 0; i < n_rows; i++)
		{
			size_t		off = (size_t) rows[i] * D;

			cai_optim_step(cfg, lr, t, params + off, grads + off, m != NULL ? m + off : NULL, NULL, D);
		}
		return;
	}
	/* Adam, AdamW: the bias corrections once for all rows */
	adam_corrections(cfg->beta1, cfg->beta2, t, &b1c, &b2c);
	for (size_t i = 0; i < n_rows; i++)
	{
		size_t		off = (size_t) rows[i] * D;

		adam_loop(params + off, grads + off, m + off, v + off, D, lr, cfg->beta1, cfg->beta2, cfg->eps,
				  decoupled ? 0.0f : cfg->weight_decay, decoupled ? cfg->weight_decay : 0.0f, b1c, b2c);
	}
}

/* ---------------------------------------------------------------------
 * Clipping
 */

/*
 * Sum of squares in double: eight running sums (element i into sum i mod 8,
 * combined in a fixed tree), then the tail.  One sum was a chain of
 * dependent additions (one every four cycles: the serial step of
 * clipping, a tenth of an accurate training step); eight are vector lanes.
 * The order is fixed, so the bits do not depend on the CPU.
 */
CAI_VECTORIZE static double
sumsq_lanes(const float *restrict x, size_t n)
{
	double		lane[8] = {0};
	double		s;
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
		for (int l = 0; l < 8; l++)
			lane[l] += (double) x[i + l] * (double) x[i + l];
	s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
	for (; i < n; i++)
		s += (double) x[i] * (double) x[i];
	return s;
}

double
cai_sumsq(const float *x, size_t n)
{
	return sumsq_lanes(x, n);
}

double
cai_rows_sumsq(const float *x, size_t D, const int32_t *rows, size_t n_rows)
{
	double		s = 0.0;

	for (size_t i = 0; i < n_rows; i++)
		s += cai_sumsq(x + (size_t) rows[i] * D, D);
	return s;
}

void
cai_scale(float *x, size_t n, float s)
{
	for (size_t i = 0; i < n; i++)
		x[i] *= s;
}

/* Scale factor for a norm, or 1 when no clipping applies. */
float
cai_clip_factor(double norm, float max_norm)
{
	if (max_norm > 0.0f && isfinite(norm) && norm > (double) max_norm)
		return (float) ((double) max_norm / norm);
	return 1.0f;
}

float
cai_clip_grad_norm(float *grads, size_t n, float max_norm)
{
	double		norm = sqrt(cai_sumsq(grads, n));
	float		f = cai_clip_factor(norm, max_norm);

	if (f != 1.0f)
		cai_scale(grads, n, f);
	return (float) norm;
}

/* ---------------------------------------------------------------------
 * Learning-rate schedule
 */

float
cai_lr_schedule(cai_lr_decay decay, float base_lr, float min_lr,
				int64_t step, int64_t warmup_steps, int64_t total_steps)
{
	double		progress;
	int64_t		span;

	if (step < 0)
		step = 0;
	if (warmup_steps > 0 && step < warmup_steps)
		return (float) ((double) base_lr * (double) (step + 1) / (double) warmup_steps);
	if (warmup_steps < 0)
		warmup_steps = 0;
	span = total_steps - warmup_steps;
	if (span < 1)
		span = 1;
	progress = (double) (step - warmup_steps) / (double) span;
	if (progress > 1.0)
		progress = 1.0;
	switch (decay)
	{
		case CAI_LR_CONSTANT:
			return base_lr;
		case CAI_LR_LINEAR:
			return (float) (min_lr + ((double) base_lr - min_lr) * (1.0 - progress));
		case CAI_LR_COSINE:
			return (float) (min_lr + ((double) base_lr - min_lr) *
							0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
	}
	return base_lr;
}

/* ---------------------------------------------------------------------
 * Parameter slab
 */

void
cai_slab_init(cai_slab *s)
{
	memset(s, 0, sizeof(*s));
}

int
cai_slab_find(const cai_slab *s, const char *name)
{
	for (int i = 0; i < s->n_params; i++)
		if (strcmp(s->params[i].name, name) == 0)
			return i;
	return -1;
}

cai_status
cai_slab_declare(cai_slab *s, const char *name, int ndim, const int64_t *shape,
				 int *index, cai_error *err)
{
	cai_param  *p;
	size_t		numel = 1;
	size_t		offset;
	size_t		end;
	size_t		len;

	if (s->block != NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter \"%s\" declared after the slab was allocated", name);
	len = strlen(name);
	if (len == 0 || len >= CAI_PARAM_NAME_MAX)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter name length %zu is outside [1, %d]",
							 len, CAI_PARAM_NAME_MAX - 1);
	if (cai_slab_find(s, name) >= 0)
		return cai_error_set(err, CAI_ERR_INVALID, "duplicate parameter \"%s\"", name);
	if (ndim < 1 || ndim > CAI_PARAM_MAX_DIMS)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter \"%s\" has %d dimensions, must be 1 to %d",
							 name, ndim, CAI_PARAM_MAX_DIMS);
	if (s->n_params >= CAI_SLAB_MAX_PARAMS)
		return cai_error_set(err, CAI_ERR_LIMIT, "more than %d parameters", CAI_SLAB_MAX_PARAMS);
	for (int d = 0; d < ndim; d++)
	{
		if (shape[d] < 1)
			return cai_error_set(err, CAI_ERR_INVALID, "parameter \"%s\" dimension %d is %lld, must be >= 1",
								 name, d, (long long) shape[d]);
		if ((uint64_t) shape[d] > SIZE_MAX || !cai_size_mul(numel, (size_t) shape[d], &numel))
			return cai_error_set(err, CAI_ERR_LIMIT, "parameter \"%s\" is too large", name);
	}
	/* view starts aligned; the slab end is kept aligned as well */
	offset = s->numel;
	if (!cai_size_add(offset, numel, &end) ||
		!cai_size_add(end, CAI_SLAB_ALIGN_FLOATS - 1, &end))
		return cai_error_set(err, CAI_ERR_LIMIT, "parameter slab is too large at \"%s\"", name);
	end -= end % CAI_SLAB_ALIGN_FLOATS;

	if (s->n_params == s->cap_params)
	{
		int			cap = s->cap_params == 0 ? 16 : s->cap_params * 2;
		cai_param  *np;

		np = cai_realloc(s->params, (size_t) s->cap_params * sizeof(cai_param),
						 (size_t) cap * sizeof(cai_param));
		if (np == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM, "out of memory declaring parameter \"%s\"", name);
		s->params = np;
		s->cap_params = cap;
	}
	p = &s->params[s->n_params];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, len + 1);
	p->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		p->shape[d] = shape[d];
	p->offset = offset;
	p->numel = numel;
	p->decay = ndim >= 2;
	p->sparse = false;
	s->numel = end;
	if (index != NULL)
		*index = s->n_params;
	s->n_params++;
	return CAI_OK;
}

cai_status
cai_slab_set_sparse(cai_slab *s, int i, cai_error *err)
{
	if (i < 0 || i >= s->n_params)
		return cai_error_set(err, CAI_ERR_INVALID, "no parameter %d", i);
	if (s->block != NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter \"%s\" marked sparse after allocation",
							 s->params[i].name);
	if (s->params[i].shape[0] > INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "sparse parameter \"%s\" has more than %d rows",
							 s->params[i].name, INT32_MAX);
	s->params[i].sparse = true;
	return CAI_OK;
}

void
cai_slab_set_decay(cai_slab *s, int i, bool decay)
{
	if (i >= 0 && i < s->n_params)
		s->params[i].decay = decay;
}

/* Bytes of the float slabs (without alignment slack and row sets). */
static bool
slab_float_bytes(const cai_slab *s, bool with_grads, int n_state, size_t *bytes)
{
	size_t		one;

	if (!cai_size_mul(s->numel, sizeof(float), &one))
		return false;
	return cai_size_mul(one, (size_t) (1 + (with_grads ? 1 : 0) + n_state), bytes);
}

cai_status
cai_slab_bytes(const cai_slab *s, bool with_grads, int n_state, size_t *bytes,
			   cai_error *err)
{
	size_t		total;

	if (n_state < 0 || n_state > 2)
		return cai_error_set(err, CAI_ERR_INVALID, "optimizer state slabs must be 0 to 2, got %d", n_state);
	if (!slab_float_bytes(s, with_grads, n_state, &total) ||
		!cai_size_add(total, 64, &total))
		return cai_error_set(err, CAI_ERR_LIMIT, "parameter slab size overflows");
	if (with_grads)
	{
		for (int i = 0; i < s->n_params; i++)
		{
			size_t		rb;

			if (!s->params[i].sparse)
				continue;
			if (!cai_rowset_bytes((int32_t) s->params[i].shape[0], &rb) ||
				!cai_size_add(total, rb, &total))
				return cai_error_set(err, CAI_ERR_LIMIT, "parameter slab size overflows");
		}
	}
	*bytes = total;
	return CAI_OK;
}

cai_status
cai_slab_alloc(cai_slab *s, bool with_grads, int n_state, size_t max_bytes,
			   cai_error *err)
{
	size_t		bytes;
	size_t		fbytes;
	cai_status	st;
	uintptr_t	base;
	unsigned char *cur;

	if (s->block != NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter slab already allocated");
	if (s->n_params == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter slab has no parameters");
	if ((st = cai_slab_bytes(s, with_grads, n_state, &bytes, err)) != CAI_OK)
		return st;
	if (max_bytes > 0 && bytes > max_bytes)
		return cai_error_set(err, CAI_ERR_LIMIT, "parameters and optimizer state need %zu bytes, limit is %zu",
							 bytes, max_bytes);
	s->block = cai_malloc(bytes);
	if (s->block == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory allocating %zu bytes of parameters", bytes);
	memset(s->block, 0, bytes);

	base = ((uintptr_t) s->block + 63) & ~(uintptr_t) 63;
	cur = (unsigned char *) base;
	fbytes = s->numel * sizeof(float);
	s->data = (float *) cur;
	cur += fbytes;
	s->grad = NULL;
	s->m = NULL;
	s->v = NULL;
	if (with_grads)
	{
		s->grad = (float *) cur;
		cur += fbytes;
	}
	if (n_state >= 1)
	{
		s->m = (float *) cur;
		cur += fbytes;
	}
	if (n_state >= 2)
	{
		s->v = (float *) cur;
		cur += fbytes;
	}
	s->has_grad = with_grads;
	s->n_state = n_state;

	/* row sets: all int32 lists first (4-byte aligned), then the flag bytes */
	for (int i = 0; i < s->n_params; i++)
	{
		cai_param  *p = &s->params[i];

		memset(&p->rows, 0, sizeof(p->rows));
		if (!p->sparse || !with_grads)
			continue;
		p->rows.n_rows = (int32_t) p->shape[0];
		p->rows.list = (int32_t *) cur;
		cur += (size_t) p->rows.n_rows * sizeof(int32_t);
	}
	for (int i = 0; i < s->n_params; i++)
	{
		cai_param  *p = &s->params[i];

		if (!p->sparse || !with_grads)
			continue;
		p->rows.flags = (uint8_t *) cur;
		cur += (size_t) p->rows.n_rows;
	}
	return CAI_OK;
}

void
cai_slab_free(cai_slab *s)
{
	cai_free(s->block);
	cai_free(s->params);
	memset(s, 0, sizeof(*s));
}

float *
cai_slab_data(const cai_slab *s, int i)
{
	if (i < 0 || i >= s->n_params || s->data == NULL)
		return NULL;
	return s->data + s->params[i].offset;
}

float *
cai_slab_grad(const cai_slab *s, int i)
{
	if (i < 0 || i >= s->n_params || s->grad == NULL)
		return NULL;
	return s->grad + s->params[i].offset;
}

cai_rowset *
cai_slab_rowset(cai_slab *s, int i)
{
	if (i < 0 || i >= s->n_params || !s->params[i].sparse || s->params[i].rows.list == NULL)
		return NULL;
	return &s->params[i].rows;
}

cai_status
cai_slab_load(cai_slab *s, const char *name, int ndim, const int64_t *shape,
			  const float *values, cai_error *err)
{
	int			i = cai_slab_find(s, name);
	cai_param  *p;

	if (i < 0)
		return cai_error_set(err, CAI_ERR_FORMAT, "unknown parameter \"%s\"", name);
	p = &s->params[i];
	if (s->data == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter slab is not allocated");
	if (ndim != p->ndim)
		return cai_error_set(err, CAI_ERR_FORMAT, "parameter \"%s\" has %d dimensions, expected %d",
							 name, ndim, p->ndim);
	for (int d = 0; d < ndim; d++)
		if (shape[d] != p->shape[d])
			return cai_error_set(err, CAI_ERR_FORMAT, "parameter \"%s\" dimension %d is %lld, expected %lld",
								 name, d, (long long) shape[d], (long long) p->shape[d]);
	memcpy(s->data + p->offset, values, p->numel * sizeof(float));
	return CAI_OK;
}

static size_t
row_width(const cai_param *p)
{
	return p->numel / (size_t) p->shape[0];
}

void
cai_slab_zero_grad(cai_slab *s)
{
	if (s->grad == NULL)
		return;
	for (int i = 0; i < s->n_params; i++)
	{
		cai_param  *p = &s->params[i];
		float	   *g = s->grad + p->offset;

		if (p->sparse)
		{
			size_t		D = row_width(p);

			for (int32_t r = 0; r < p->rows.count; r++)
				memset(g + (size_t) p->rows.list[r] * D, 0, D * sizeof(float));
			cai_rowset_clear(&p->rows);
		}
		else
			memset(g, 0, p->numel * sizeof(float));
	}
}

float
cai_slab_clip_grad_norm(cai_slab *s, float max_norm)
{
	double		sumsq = 0.0;
	double		norm;
	float		f;

	if (s->grad == NULL)
		return 0.0f;
	for (int i = 0; i < s->n_params; i++)
	{
		cai_param  *p = &s->params[i];
		const float *g = s->grad + p->offset;

		if (p->sparse)
			sumsq += cai_rows_sumsq(g, row_width(p), p->rows.list, (size_t) p->rows.count);
		else
			sumsq += cai_sumsq(g, p->numel);
	}
	norm = sqrt(sumsq);
	f = cai_clip_factor(norm, max_norm);
	if (f != 1.0f)
		cai_slab_scale_grad_part(s, f, 0, 1);
	return (float) norm;
}

cai_status
cai_slab_step_check(const cai_slab *s, const cai_optim_config *cfg, float lr, cai_error *err)
{
	cai_status	st;

	if ((st = cai_optim_check(cfg, err)) != CAI_OK)
		return st;
	if (s->data == NULL || s->grad == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "parameter slab has no gradients");
	if (s->n_state < cai_optim_state_slabs(cfg))
		return cai_error_set(err, CAI_ERR_INVALID, "optimizer needs %d state slabs, slab has %d",
							 cai_optim_state_slabs(cfg), s->n_state);
	if (!(lr >= 0.0f && isfinite(lr)))
		return cai_error_set(err, CAI_ERR_INVALID, "learning rate must be finite and >= 0");
	return CAI_OK;
}

/*
 * Slice part of parts of a slab (cai_slab_step_part): [d0, d1) of the dense
 * parameters' floats taken in slab order, and of each sparse parameter's
 * touched rows, its list from r0 to r1.
 */
typedef struct SlabSlice
{
	size_t		d0;
	size_t		d1;
	int			part;
	int			parts;
} SlabSlice;

static SlabSlice
slab_slice(const cai_slab *s, int part, int parts)
{
	SlabSlice	sl;
	size_t		dense = 0;

	for (int i = 0; i < s->n_params; i++)
		if (!s->params[i].sparse)
			dense += s->params[i].numel;
	sl.d0 = dense * (size_t) part / (size_t) parts;
	sl.d1 = dense * (size_t) (part + 1) / (size_t) parts;
	sl.part = part;
	sl.parts = parts;
	return sl;
}

/*
 * Parameter p's share of slice sl: floats [*a, *b) of it if dense (pos: the
 * dense floats before it, advanced), rows [*a, *b) of its list if sparse.
 */
static void
slab_slice_of(const SlabSlice *sl, const cai_param *p, size_t *pos, size_t *a, size_t *b)
{
	if (p->sparse)
	{
		size_t		R = (size_t) p->rows.count;

		*a = R * (size_t) sl->part / (size_t) sl->parts;
		*b = R * (size_t) (sl->part + 1) / (size_t) sl->parts;
		return;
	}
	{
		size_t		lo = *pos > sl->d0 ? *pos : sl->d0;
		size_t		hi = *pos + p->numel < sl->d1 ? *pos + p->numel : sl->d1;

		*a = lo - *pos;
		*b = hi > lo ? hi - *pos : *a;
	}
	*pos += p->numel;
}

void
cai_slab_step_part(const cai_slab *s, const cai_optim_config *cfg, float lr, int64_t t, int part, int parts)
{
	SlabSlice	sl = slab_slice(s, part, parts);
	size_t		pos = 0;

	for (int i = 0; i < s->n_params; i++)
	{
		const cai_param *p = &s->params[i];
		cai_optim_config c = *cfg;
		size_t		off = p->offset;
		float	   *m = s->m != NULL ? s->m + off : NULL;
		float	   *v = s->v != NULL ? s->v + off : NULL;
		size_t		a,
					b;

		slab_slice_of(&sl, p, &pos, &a, &b);
		if (!p->decay)
			c.weight_decay = 0.0f;
		if (p->sparse)
			cai_optim_step_rows(&c, lr, t, s->data + off, s->grad + off, m, v, row_width(p),
								p->rows.list + a, b - a);
		else if (a < b)
			cai_optim_step(&c, lr, t, s->data + off + a, s->grad + off + a,
						   m != NULL ? m + a : NULL, v != NULL ? v + a : NULL, b - a);
	}
}

void
cai_slab_scale_grad_part(const cai_slab *s, float f, int part, int parts)
{
	SlabSlice	sl = slab_slice(s, part, parts);
	size_t		pos = 0;

	for (int i = 0; i < s->n_params; i++)
	{
		const cai_param *p = &s->params[i];
		float	   *g = s->grad + p->offset;
		size_t		a,
					b;

		slab_slice_of(&sl, p, &pos, &a, &b);
		if (p->sparse)
		{
			size_t		D = row_width(p);

			for (size_t r = a; r < b; r++)
				cai_scale(g + (size_t) p->rows.list[r] * D, D, f);
		}
		else if (a < b)
			cai_scale(g + a, b - a, f);
	}
}

cai_status
cai_slab_step(cai_slab *s, const cai_optim_config *cfg, float lr, int64_t t,
			  cai_error *err)
{
	cai_status	st;

	if ((st = cai_slab_step_check(s, cfg, lr, err)) != CAI_OK)
		return st;
	cai_slab_step_part(s, cfg, lr, t, 0, 1);
	return CAI_OK;
}

/* ---------------------------------------------------------------------
 * Initialisation
 */

void
cai_init_uniform(float *x, size_t n, float a, cai_rng *rng)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (2.0f * cai_rng_uniform(rng) - 1.0f) * a;
}

void
cai_init_normal(float *x, size_t n, float std, cai_rng *rng)
{
	for (size_t i = 0; i < n; i++)
		x[i] = cai_rng_normal(rng) * std;
}

void
cai_init_const(float *x, size_t n, float value)
{
	for (size_t i = 0; i < n; i++)
		x[i] = value;
}

void
cai_init_xavier(float *x, size_t n, int fan_in, int fan_out, cai_rng *rng)
{
	double		fans = (double) fan_in + (double) fan_out;
	float		a = fans > 0.0 ? (float) sqrt(6.0 / fans) : 0.0f;

	cai_init_uniform(x, n, a, rng);
}
