/*
 * ops.c: dense float32 tensor ops (forward and backward), llm.c style.
 *
 * See ops.h for the shared conventions: row-major, explicit sizes, backward
 * functions accumulate, data-dependent inputs validated by the forward.
 */
#include "cai/ops.h"
#include "blas.h"
#include "vectorize.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * Linear
 */

void
cai_linear_forward(float *out, const float *inp, const float *weight,
				   const float *bias, int N, int IC, int OC)
{
	cai_linear_forward_by(cai_sgemm, out, inp, weight, bias, N, IC, OC);
}

void
cai_linear_forward_by(cai_sgemm_fn sgemm, float *out, const float *inp, const float *weight,
					  const float *bias, int N, int IC, int OC)
{
	float		beta = 0.0f;

	if (N <= 0 || OC <= 0)
		return;
	if (IC <= 0)
	{
		/* empty product: out = bias (or 0) */
		for (int n = 0; n < N; n++)
		{
			float	   *o = out + (size_t) n * OC;

			if (bias != NULL)
				memcpy(o, bias, (size_t) OC * sizeof(float));
			else
				memset(o, 0, (size_t) OC * sizeof(float));
		}
		return;
	}
	if (bias != NULL)
	{
		for (int n = 0; n < N; n++)
			memcpy(out + (size_t) n * OC, bias, (size_t) OC * sizeof(float));
		beta = 1.0f;
	}
	/* out (N, OC) = inp (N, IC) . weight^T (IC, OC) + beta * out */
	sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC,
		  1.0f, inp, IC, weight, IC, beta, out, OC);
}

void
cai_linear_backward(float *dinp, float *dweight, float *dbias,
					const float *dout, const float *inp, const float *weight,
					int N, int IC, int OC)
{
	cai_linear_backward_by(cai_sgemm, dinp, dweight, dbias, dout, inp, weight, N, IC, OC);
}

void
cai_linear_backward_by(cai_sgemm_fn sgemm, float *dinp, float *dweight, float *dbias,
					   const float *dout, const float *inp, const float *weight,
					   int N, int IC, int OC)
{
	if (N <= 0 || OC <= 0)
		return;
	if (dbias != NULL)
	{
		for (int n = 0; n < N; n++)
		{
			const float *g = dout + (size_t) n * OC;

			for (int o = 0; o < OC; o++)
				dbias[o] += g[o];
		}
	}
	if (IC <= 0)
		return;
	/* dinp (N, IC) += dout (N, OC) . weight (OC, IC) */
	if (dinp != NULL)
		sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC,
			  1.0f, dout, OC, weight, IC, 1.0f, dinp, IC);
	/* dweight (OC, IC) += dout^T (OC, N) . inp (N, IC) */
	if (dweight != NULL)
		sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N,
			  1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
}

/* ---------------------------------------------------------------------
 * Activations
 */

void
cai_tanh_forward(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = tanhf(inp[i]);
}

void
cai_tanh_backward(float *dinp, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

void
cai_sigmoid_forward(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		float		x = inp[i];

		if (x >= 0.0f)
			out[i] = 1.0f / (1.0f + expf(-x));
		else
		{
			float		e = expf(x);

			out[i] = e / (1.0f + e);
		}
	}
}

void
cai_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
}

void
cai_relu_forward(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void
cai_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (out[i] > 0.0f)
			dinp[i] += dout[i];
}

/* ---------------------------------------------------------------------
 * Softmax and cross-entropy
 */

/*
 * probs = softmax(x) for one row of C; returns log(sum exp(x - max)) and
 * the max through *maxval.
 */
static float
softmax_row(float *probs, const float *x, int C, float *maxval)
{
	float		maxv = x[0];
	float		sum = 0.0f;
	float		inv;

	for (int c = 1; c < C; c++)
		if (x[c] > maxv)
			maxv = x[c];
	for (int c = 0; c < C; c++)
	{
		probs[c] = expf(x[c] - maxv);
		sum += probs[c];
	}
	inv = 1.0f / sum;
	for (int c = 0; c < C; c++)
		probs[c] *= inv;
	*maxval = maxv;
	return logf(sum);
}

void
cai_softmax_forward(float *probs, const float *logits, int N, int C)
{
	float		maxv;

	if (C <= 0)
		return;
	for (int n = 0; n < N; n++)
		(void) softmax_row(probs + (size_t) n * C, logits + (size_t) n * C, C, &maxv);
}

int
cai_argmax(const float *x, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

cai_status
cai_softmax_xent_forward(float *probs, double *loss, const float *logits,
						 const int32_t *targets, int N, int C, float scale,
						 cai_error *err)
{
	double		total = 0.0;

	if (N < 0 || C < 0 || (N > 0 && C == 0))
		return cai_error_set(err, CAI_ERR_INVALID, "invalid softmax shape (%d, %d)", N, C);
	if (targets != NULL)
	{
		for (int n = 0; n < N; n++)
		{
			int32_t		t = targets[n];

			if (t != CAI_IGNORE_TARGET && (t < 0 || t >= C))
				return cai_error_set(err, CAI_ERR_INVALID,
									 "target %d of row %d is outside [0, %d)", (int) t, n, C);
		}
	}
	for (int n = 0; n < N; n++)
	{
		const float *x = logits + (size_t) n * C;
		float		maxv;
		float		x_t = 0.0f;
		float		lse;
		int32_t		t = targets != NULL ? targets[n] : CAI_IGNORE_TARGET;

		/* read the target logit before probs (which may alias) overwrites it */
		if (t != CAI_IGNORE_TARGET)
			x_t = x[t];
		lse = softmax_row(probs + (size_t) n * C, x, C, &maxv);
		if (t != CAI_IGNORE_TARGET)
			total += (double) (lse - (x_t - maxv));
	}
	if (loss != NULL)
		*loss = total * (double) scale;
	return CAI_OK;
}

void
cai_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets,
						  int N, int C, float scale)
{
	for (int n = 0; n < N; n++)
	{
		int32_t		t = targets[n];
		const float *p = probs + (size_t) n * C;
		float	   *d = dlogits + (size_t) n * C;

		if (t < 0 || t >= C)
			continue;
		for (int c = 0; c < C; c++)
			d[c] += scale * (p[c] - (c == t ? 1.0f : 0.0f));
	}
}

/* ---------------------------------------------------------------------
 * Dropout
 */

cai_status
cai_dropout_forward(float *out, uint8_t *mask, const float *inp, size_t n,
					float p, bool training, cai_rng *rng, cai_error *err)
{
	float		scale;

	if (!(p >= 0.0f && p < 1.0f))
		return cai_error_set(err, CAI_ERR_INVALID, "dropout probability %g is outside [0, 1)", (double) p);
	if (!training || p == 0.0f)
	{
		if (out != inp && n > 0)
			memmove(out, inp, n * sizeof(float));
		return CAI_OK;
	}
	if (mask == NULL || rng == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "dropout in training needs a mask and an rng");
	scale = 1.0f / (1.0f - p);
	for (size_t i = 0; i < n; i++)
	{
		uint8_t		keep = cai_rng_uniform(rng) >= p;

		mask[i] = keep;
		out[i] = keep ? inp[i] * scale : 0.0f;
	}
	return CAI_OK;
}

void
cai_dropout_backward(float *dinp, const float *dout, const uint8_t *mask,
					 size_t n, float p, bool training)
{
	if (!training || !(p > 0.0f && p < 1.0f) || mask == NULL)
	{
		for (size_t i = 0; i < n; i++)
			dinp[i] += dout[i];
		return;
	}
	{
		float		scale = 1.0f / (1.0f - p);

		for (size_t i = 0; i < n; i++)
			if (mask[i])
				dinp[i] += dout[i] * scale;
	}
}

/* ---------------------------------------------------------------------
 * Row sets
 */

bool
cai_rowset_bytes(int32_t n_rows, size_t *bytes)
{
	size_t		list;

	if (n_rows < 0)
		return false;
	if (!cai_size_mul((size_t) n_rows, sizeof(int32_t), &list))
		return false;
	return cai_size_add(list, (size_t) n_rows, bytes);
}

cai_status
cai_rowset_init(cai_rowset *rs, int32_t n_rows, cai_error *err)
{
	memset(rs, 0, sizeof(*rs));
	if (n_rows < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "row set needs at least one row, got %d", (int) n_rows);
	rs->flags = cai_calloc((size_t) n_rows, sizeof(uint8_t));
	rs->list = cai_calloc((size_t) n_rows, sizeof(int32_t));
	if (rs->flags == NULL || rs->list == NULL)
	{
		cai_rowset_free(rs);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a row set of %d rows", (int) n_rows);
	}
	rs->n_rows = n_rows;
	return CAI_OK;
}

void
cai_rowset_add(cai_rowset *rs, int32_t row)
{
	if (row < 0 || row >= rs->n_rows || rs->flags[row])
		return;
	rs->flags[row] = 1;
	rs->list[rs->count++] = row;
}

void
cai_rowset_clear(cai_rowset *rs)
{
	for (int32_t i = 0; i < rs->count; i++)
		rs->flags[rs->list[i]] = 0;
	rs->count = 0;
}

void
cai_rowset_free(cai_rowset *rs)
{
	cai_free(rs->flags);
	cai_free(rs->list);
	memset(rs, 0, sizeof(*rs));
}

/* ---------------------------------------------------------------------
 * Embeddings
 */

static cai_status
check_ids(const int32_t *ids, size_t n, int V, cai_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= V)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "id %d at position %zu is outside [0, %d)", (int) ids[i], i, V);
	return CAI_OK;
}

cai_status
cai_embedding_forward(float *out, const float *weight, const int32_t *ids,
					  int N, int V, int D, cai_error *err)
{
	cai_status	st;

	if (N < 0 || V < 0 || D < 0)
		return cai_error_set(err, CAI_ERR_INVALID, "invalid embedding shape");
	if (N == 0)
		return CAI_OK;
	if ((st = check_ids(ids, (size_t) N, V, err)) != CAI_OK)
		return st;
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t) n * D, weight + (size_t) ids[n] * D, (size_t) D * sizeof(float));
	return CAI_OK;
}

void
cai_embedding_backward(float *dweight, cai_rowset *touched, const float *dout,
					   const int32_t *ids, int N, int V, int D)
{
	for (int n = 0; n < N; n++)
	{
		int32_t		id = ids[n];
		float	   *dw;
		const float *g = dout + (size_t) n * D;

		if (id < 0 || id >= V)
			continue;
		dw = dweight + (size_t) id * D;
		for (int d = 0; d < D; d++)
			dw[d] += g[d];
		if (touched != NULL)
			cai_rowset_add(touched, id);
	}
}

/*
 * The sums of cai_embedding_bag_mean_forward, its arguments checked: a
 * kernel (vectorize.h; static, since clang 14 does not give a
 * multiversioned global function its own name).
 */
CAI_VECTORIZE static void
embedding_bag_mean_rows(float *out, const float *weight, const int32_t *ids,
						const int32_t *offsets, int B, int D)
{
	for (int b = 0; b < B; b++)
	{
		float	   *o = out + (size_t) b * D;
		int32_t		start = offsets[b];
		int32_t		end = offsets[b + 1];
		float		inv;

		memset(o, 0, (size_t) D * sizeof(float));
		if (end == start)
			continue;
		for (int32_t j = start; j < end; j++)
		{
			const float *w = weight + (size_t) ids[j] * D;

			for (int d = 0; d < D; d++)
				o[d] += w[d];
		}
		inv = 1.0f / (float) (end - start);
		for (int d = 0; d < D; d++)
			o[d] *= inv;
	}
}

cai_status
cai_embedding_bag_mean_forward(float *out, const float *weight, const int32_t *ids,
							   const int32_t *offsets, int B, int V, int D,
							   cai_error *err)
{
	cai_status	st;

	if (B < 0 || V < 0 || D < 0)
		return cai_error_set(err, CAI_ERR_INVALID, "invalid embedding bag shape");
	if (B == 0)
		return CAI_OK;
	if (offsets[0] != 0)
		return cai_error_set(err, CAI_ERR_INVALID, "embedding bag offsets must start at 0");
	for (int b = 0; b < B; b++)
		if (offsets[b + 1] < offsets[b])
			return cai_error_set(err, CAI_ERR_INVALID, "embedding bag offsets decrease at bag %d", b);
	if ((st = check_ids(ids, (size_t) offsets[B], V, err)) != CAI_OK)
		return st;
	embedding_bag_mean_rows(out, weight, ids, offsets, B, D);
	return CAI_OK;
}

/* dw += g * inv (a bag's share of its gradient into one row): element-wise, the same bits in any clone */
CAI_VECTORIZE static void
bag_add_scaled(float *restrict dw, const float *restrict g, float inv, int D)
{
	for (int d = 0; d < D; d++)
		dw[d] += g[d] * inv;
}

/*
 * The bag backward for the rows id with id % parts == part; a row added to
 * for the first time (flags[id] 0) is flagged and appended to list (*count
 * rows); flags NULL: no bookkeeping.
 */
static void
bag_mean_backward(float *dweight, uint8_t *flags, int32_t *list, int32_t *count,
				  const float *dout, const int32_t *ids, const int32_t *offsets,
				  int B, int V, int D, int part, int parts)
{
	/* a row's class without a division where parts is a power of two (2 threads: every id of every shard) */
	const uint32_t mask = (parts & (parts - 1)) == 0 ? (uint32_t) parts - 1 : 0;

	for (int b = 0; b < B; b++)
	{
		const float *g = dout + (size_t) b * D;
		int32_t		start = offsets[b];
		int32_t		end = offsets[b + 1];
		float		inv;

		if (end <= start)
			continue;
		inv = 1.0f / (float) (end - start);
		for (int32_t j = start; j < end; j++)
		{
			int32_t		id = ids[j];

			if (id < 0 || id >= V ||
				(parts > 1 && (mask != 0 ? (int32_t) ((uint32_t) id & mask) : id % parts) != part))
				continue;
			bag_add_scaled(dweight + (size_t) id * D, g, inv, D);
			if (flags != NULL && !flags[id])
			{
				flags[id] = 1;
				list[(*count)++] = id;
			}
		}
	}
}

void
cai_embedding_bag_mean_backward(float *dweight, cai_rowset *touched, const float *dout,
								const int32_t *ids, const int32_t *offsets,
								int B, int V, int D)
{
	bag_mean_backward(dweight, touched != NULL ? touched->flags : NULL, touched != NULL ? touched->list : NULL,
					  touched != NULL ? &touched->count : NULL, dout, ids, offsets, B, V, D, 0, 1);
}

void
cai_embedding_bag_mean_backward_part(float *dweight, uint8_t *flags, int32_t *list, int32_t *count,
									 const float *dout, const int32_t *ids, const int32_t *offsets,
									 int B, int V, int D, int part, int parts)
{
	bag_mean_backward(dweight, flags, list, count, dout, ids, offsets, B, V, D, part, parts);
}

/* ---------------------------------------------------------------------
 * Conv1d + max-pool over time
 */

int
cai_conv1d_out_len(int T, int K, cai_padding pad)
{
	if (T < 1 || K < 1)
		return 0;
	if (pad == CAI_PAD_SAME)
		return T;
	if (pad == CAI_PAD_VALID)
		return T >= K ? T - K + 1 : 0;
	return 0;
}

static int
conv1d_pad_left(int K, cai_padding pad)
{
	return pad == CAI_PAD_SAME ? (K - 1) / 2 : 0;
}

bool
cai_conv1d_scratch_floats(int T, int C_in, int C_out, int K, cai_padding pad,
						  size_t *nfloats)
{
	int			T_out = cai_conv1d_out_len(T, K, pad);
	size_t		kc,
				cols,
				conv;

	if (T_out < 1 || C_in < 1 || C_out < 1)
		return false;
	/* K * C_in goes to BLAS as an int */
	if (!cai_size_mul((size_t) K, (size_t) C_in, &kc) || kc > (size_t) INT32_MAX)
		return false;
	if (!cai_size_mul((size_t) T_out, kc, &cols) ||
		!cai_size_mul((size_t) T_out, (size_t) C_out, &conv))
		return false;
	return cai_size_add(cols, conv, nfloats);
}

cai_status
cai_conv1d_maxpool_forward(float *pooled, int32_t *argmax, float *scratch,
						   const float *inp, const float *weight, const float *bias,
						   int T, int C_in, int C_out, int K, cai_padding pad,
						   cai_error *err)
{
	size_t		nfloats;
	int			T_out = cai_conv1d_out_len(T, K, pad);
	int			pad_left = conv1d_pad_left(K, pad);
	int			KC;
	float	   *cols;
	float	   *conv;

	if (!cai_conv1d_scratch_floats(T, C_in, C_out, K, pad, &nfloats))
		return cai_error_set(err, CAI_ERR_INVALID,
							 "invalid conv1d shape (T %d, C_in %d, C_out %d, K %d, padding %d)",
							 T, C_in, C_out, K, (int) pad);
	KC = K * C_in;
	cols = scratch;				/* (T_out, K * C_in) */
	conv = scratch + (size_t) T_out * KC;	/* (T_out, C_out) */

	/* im2col */
	for (int t = 0; t < T_out; t++)
	{
		float	   *row = cols + (size_t) t * KC;

		for (int k = 0; k < K; k++)
		{
			int			src = t + k - pad_left;
			float	   *dst = row + (size_t) k * C_in;

			if (src >= 0 && src < T)
				memcpy(dst, inp + (size_t) src * C_in, (size_t) C_in * sizeof(float));
			else
				memset(dst, 0, (size_t) C_in * sizeof(float));
		}
	}
	cai_linear_forward(conv, cols, weight, bias, T_out, KC, C_out);
	cai_maxpool_forward(pooled, argmax, conv, T_out, C_out);
	return CAI_OK;
}

void
cai_conv1d_maxpool_backward(float *dinp, float *dweight, float *dbias,
							const float *dpooled, const int32_t *argmax,
							const float *inp, const float *weight,
							int T, int C_in, int C_out, int K, cai_padding pad)
{
	int			T_out = cai_conv1d_out_len(T, K, pad);
	int			pad_left = conv1d_pad_left(K, pad);

	if (T_out < 1 || C_in < 1)
		return;
	for (int c = 0; c < C_out; c++)
	{
		int32_t		t = argmax[c];
		float		g = dpooled[c];
		size_t		wbase = (size_t) c * K * C_in;

		if (t < 0 || t >= T_out)
			continue;
		if (dbias != NULL)
			dbias[c] += g;
		for (int k = 0; k < K; k++)
		{
			int			src = t + k - pad_left;
			const float *x;
			const float *w;

			if (src < 0 || src >= T)
				continue;
			x = inp + (size_t) src * C_in;
			w = weight + wbase + (size_t) k * C_in;
			if (dweight != NULL)
			{
				float	   *dw = dweight + wbase + (size_t) k * C_in;

				for (int i = 0; i < C_in; i++)
					dw[i] += g * x[i];
			}
			if (dinp != NULL)
			{
				float	   *dx = dinp + (size_t) src * C_in;

				for (int i = 0; i < C_in; i++)
					dx[i] += g * w[i];
			}
		}
	}
}

/* ---------------------------------------------------------------------
 * Pooling over time
 */

void
cai_meanpool_forward(float *out, const float *inp, int T, int C)
{
	float		inv;

	if (C <= 0)
		return;
	memset(out, 0, (size_t) C * sizeof(float));
	if (T <= 0)
		return;
	for (int t = 0; t < T; t++)
	{
		const float *x = inp + (size_t) t * C;

		for (int c = 0; c < C; c++)
			out[c] += x[c];
	}
	inv = 1.0f / (float) T;
	for (int c = 0; c < C; c++)
		out[c] *= inv;
}

void
cai_meanpool_backward(float *dinp, const float *dout, int T, int C)
{
	float		inv;

	if (T <= 0 || C <= 0)
		return;
	inv = 1.0f / (float) T;
	for (int t = 0; t < T; t++)
	{
		float	   *dx = dinp + (size_t) t * C;

		for (int c = 0; c < C; c++)
			dx[c] += dout[c] * inv;
	}
}

/* cai_maxpool_forward's body: a kernel (see embedding_bag_mean_rows) */
CAI_VECTORIZE static void
maxpool_forward(float *out, int32_t *argmax, const float *inp, int T, int C)
{
	if (C <= 0)
		return;
	if (T <= 0)
	{
		memset(out, 0, (size_t) C * sizeof(float));
		memset(argmax, 0, (size_t) C * sizeof(int32_t));
		return;
	}
	memcpy(out, inp, (size_t) C * sizeof(float));
	memset(argmax, 0, (size_t) C * sizeof(int32_t));
	for (int t = 1; t < T; t++)
	{
		const float *x = inp + (size_t) t * C;

		for (int c = 0; c < C; c++)
		{
			if (x[c] > out[c])
			{
				out[c] = x[c];
				argmax[c] = t;
			}
		}
	}
}

void
cai_maxpool_forward(float *out, int32_t *argmax, const float *inp, int T, int C)
{
	maxpool_forward(out, argmax, inp, T, C);
}

void
cai_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int T, int C)
{
	for (int c = 0; c < C; c++)
	{
		int32_t		t = argmax[c];

		if (t >= 0 && t < T)
			dinp[(size_t) t * C + c] += dout[c];
	}
}
