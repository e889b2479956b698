/*
 * test_seq.c: the LSTM and CRF sequence layers.
 *
 * LSTM: finite-difference gradients (forward and reverse, bidirectional),
 * a scalar double-precision reference, padding invariance, inference path,
 * determinism, argument errors.  CRF: log partition, Viterbi and marginals
 * against brute force (with and without masks), NLL gradients against
 * finite differences, IOB2/BIOES mask builder, batch helpers, errors.
 */
#include "cai/common.h"
#include "cai/crf.h"
#include "cai/lstm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static cai_rng rng;

static float *
rand_array(size_t n, float scale)
{
	float	   *a = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
		a[i] = (2.0f * cai_rng_uniform(&rng) - 1.0f) * scale;
	return a;
}

static float *
zeros(size_t n)
{
	return calloc(n, sizeof(float));
}

/* ------------------------------------------------------------------ */
/* LSTM                                                               */
/* ------------------------------------------------------------------ */

typedef struct lstm_case
{
	int			B,
				T,
				C,
				H;
	const int32_t *len;
	float	   *pslab;			/* parameters of one direction (or two for bi) */
	float	   *inp;			/* (B, T, C) */
	float	   *wts;			/* (B, T, OH) loss weights */
} lstm_case;

/* loss = sum over real positions of out . wts, computed in double */
static double
lstm_loss(const float *out, const float *wts, const int32_t *len, int B, int T, int OH)
{
	double		s = 0.0;

	for (int b = 0; b < B; b++)
		for (int t = 0; t < len[b]; t++)
			for (int j = 0; j < OH; j++)
			{
				size_t		k = ((size_t) b * T + t) * OH + j;

				s += (double) out[k] * (double) wts[k];
			}
	return s;
}

/* Run the (bi)LSTM forward of case c and return the loss. */
static double
lstm_run(lstm_case *c, bool bi, bool reverse, float *out, float *acts)
{
	cai_lstm_params p,
				q;
	cai_error	err;
	size_t		np = cai_lstm_param_count(c->C, c->H);
	cai_status	st;

	cai_lstm_params_view(&p, c->pslab, c->C, c->H);
	if (bi)
	{
		cai_lstm_params_view(&q, c->pslab + np, c->C, c->H);
		st = cai_bilstm_forward(&p, &q, c->inp, c->len, c->B, c->T, c->C, c->H, out, acts, &err);
	}
	else
		st = cai_lstm_forward(&p, c->inp, c->len, c->B, c->T, c->C, c->H, reverse,
							  out, c->H, acts, &err);
	if (st != CAI_OK)
	{
		fprintf(stderr, "lstm forward failed: %s\n", err.msg);
		return NAN;
	}
	return lstm_loss(out, c->wts, c->len, c->B, c->T, bi ? 2 * c->H : c->H);
}

static void
fd_compare(const char *what, float *x, size_t n, const float *analytic,
		   double (*f) (void *), void *ctx, float eps)
{
	float	   *num = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
	{
		float		x0 = x[i];
		float		xp = x0 + eps;
		float		xm = x0 - eps;
		double		lp,
					lm;

		x[i] = xp;
		lp = f(ctx);
		x[i] = xm;
		lm = f(ctx);
		x[i] = x0;
		num[i] = (float) ((lp - lm) / ((double) xp - (double) xm));
	}
	CHECK_CLOSE(what, analytic, num, n, 2e-2f, 2e-3f);
	free(num);
}

typedef struct lstm_fd_ctx
{
	lstm_case  *c;
	bool		bi;
	bool		reverse;
	float	   *out;
	float	   *acts;
} lstm_fd_ctx;

static double
lstm_fd_loss(void *arg)
{
	lstm_fd_ctx *x = arg;

	return lstm_run(x->c, x->bi, x->reverse, x->out, x->acts);
}

static void
test_lstm_grad(bool bi, bool reverse, int B, int T, int C, int H, const int32_t *len)
{
	lstm_case	c = {.B = B, .T = T, .C = C, .H = H, .len = len};
	int			OH = bi ? 2 * c.H : c.H;
	int			ndir = bi ? 2 : 1;
	size_t		np = cai_lstm_param_count(c.C, c.H);
	size_t		nx = (size_t) c.B * c.T * c.C;
	size_t		ny = (size_t) c.B * c.T * OH;
	size_t		na;
	cai_error	err;
	cai_lstm_params p[2],
				g[2];
	float	   *gslab,
			   *dinp,
			   *out,
			   *acts,
			   *dout;
	char		name[64];
	const char *tag = bi ? "bi" : reverse ? "rev" : "fwd";
	lstm_fd_ctx fx;
	cai_status	st;

	c.pslab = rand_array(np * ndir, 0.6f);
	c.inp = rand_array(nx, 1.0f);
	c.wts = rand_array(ny, 1.0f);
	gslab = zeros(np * ndir);
	dinp = zeros(nx);
	out = zeros(ny);
	if (bi)
		cai_bilstm_acts_size(c.B, c.T, c.C, c.H, &na, &err);
	else
		cai_lstm_acts_size(c.B, c.T, c.C, c.H, &na, &err);
	acts = zeros(na);

	lstm_run(&c, bi, reverse, out, acts);
	/* dout = wts at real positions, garbage at padding (must be ignored) */
	dout = malloc(ny * sizeof(float));
	memcpy(dout, c.wts, ny * sizeof(float));
	for (int b = 0; b < c.B; b++)
		for (int t = len[b]; t < c.T; t++)
			for (int j = 0; j < OH; j++)
				dout[((size_t) b * c.T + t) * OH + j] = 1e3f;
	for (int d = 0; d < ndir; d++)
	{
		cai_lstm_params_view(&p[d], c.pslab + d * np, c.C, c.H);
		cai_lstm_params_view(&g[d], gslab + d * np, c.C, c.H);
	}
	if (bi)
		st = cai_bilstm_backward(&p[0], &p[1], &g[0], &g[1], len, c.B, c.T, c.C, c.H,
								 dout, dinp, acts, &err);
	else
		st = cai_lstm_backward(&p[0], &g[0], len, c.B, c.T, c.C, c.H, reverse,
							   dout, c.H, dinp, acts, &err);
	CHECK(st == CAI_OK, "%s backward: %s", tag, err.msg);

	/* padded outputs are zero, padded input gradients untouched */
	{
		bool		pad_ok = true;

		for (int b = 0; b < c.B; b++)
			for (int t = len[b]; t < c.T; t++)
			{
				for (int j = 0; j < OH; j++)
					pad_ok &= out[((size_t) b * c.T + t) * OH + j] == 0.0f;
				for (int k = 0; k < c.C; k++)
					pad_ok &= dinp[((size_t) b * c.T + t) * c.C + k] == 0.0f;
			}
		CHECK(pad_ok, "%s: padding has nonzero outputs or gradients", tag);
	}

	fx.c = &c;
	fx.bi = bi;
	fx.reverse = reverse;
	fx.out = out;
	fx.acts = acts;
	snprintf(name, sizeof(name), "%s dinp", tag);
	fd_compare(name, c.inp, nx, dinp, lstm_fd_loss, &fx, 1e-2f);
	for (int d = 0; d < ndir; d++)
	{
		snprintf(name, sizeof(name), "%s[%d] dW_ih", tag, d);
		fd_compare(name, p[d].w_ih, (size_t) 4 * c.H * c.C, g[d].w_ih, lstm_fd_loss, &fx, 1e-2f);
		snprintf(name, sizeof(name), "%s[%d] dW_hh", tag, d);
		fd_compare(name, p[d].w_hh, (size_t) 4 * c.H * c.H, g[d].w_hh, lstm_fd_loss, &fx, 1e-2f);
		snprintf(name, sizeof(name), "%s[%d] db", tag, d);
		fd_compare(name, p[d].b, (size_t) 4 * c.H, g[d].b, lstm_fd_loss, &fx, 1e-2f);
	}

	/* backward accumulates and is repeatable: a second call doubles the gradients */
	{
		float	   *g1 = malloc(np * ndir * sizeof(float));
		float	   *twice = malloc(np * ndir * sizeof(float));

		lstm_run(&c, bi, reverse, out, acts);
		memcpy(g1, gslab, np * ndir * sizeof(float));
		if (bi)
			st = cai_bilstm_backward(&p[0], &p[1], &g[0], &g[1], len, c.B, c.T, c.C, c.H,
									 dout, NULL, acts, &err);
		else
			st = cai_lstm_backward(&p[0], &g[0], len, c.B, c.T, c.C, c.H, reverse,
								   dout, c.H, NULL, acts, &err);
		for (size_t i = 0; i < np * ndir; i++)
			twice[i] = 2.0f * g1[i];
		snprintf(name, sizeof(name), "%s accumulated grads", tag);
		CHECK_CLOSE(name, gslab, twice, np * ndir, 1e-5f, 1e-6f);
		free(g1);
		free(twice);
	}

	free(c.pslab);
	free(c.inp);
	free(c.wts);
	free(gslab);
	free(dinp);
	free(out);
	free(acts);
	free(dout);
}

static double
sigmoid_d(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

/* Scalar double reference of one direction for one sequence. */
static void
lstm_reference(const cai_lstm_params *p, const float *x, int L, int C, int H,
			   bool reverse, double *y /* (L, H) */ )
{
	double	   *h = calloc(H, sizeof(double));
	double	   *c = calloc(H, sizeof(double));
	double	   *a = malloc(4 * H * sizeof(double));

	for (int s = 0; s < L; s++)
	{
		int			t = reverse ? L - 1 - s : s;

		for (int k = 0; k < 4 * H; k++)
		{
			double		v = p->b[k];

			for (int m = 0; m < C; m++)
				v += (double) p->w_ih[(size_t) k * C + m] * x[(size_t) t * C + m];
			for (int m = 0; m < H; m++)
				v += (double) p->w_hh[(size_t) k * H + m] * h[m];
			a[k] = v;
		}
		for (int j = 0; j < H; j++)
		{
			double		i = sigmoid_d(a[j]);
			double		f = sigmoid_d(a[H + j]);
			double		g = tanh(a[2 * H + j]);
			double		o = sigmoid_d(a[3 * H + j]);

			c[j] = f * c[j] + i * g;
			h[j] = o * tanh(c[j]);
			y[(size_t) t * H + j] = h[j];
		}
	}
	free(h);
	free(c);
	free(a);
}

/*
 * Forward vs the scalar reference, the inference path, padding invariance
 * (larger T with NaN padding: bit-identical), sequence alone vs in a batch,
 * determinism.  B sequences of lengths len padded to T (and T2 > T).
 */
static void
test_lstm_reference_and_padding(int B, int T, int T2, int C, int H, const int32_t *len)
{
	size_t		np = cai_lstm_param_count(C, H);
	float	   *pslab = rand_array(2 * np, 0.5f);
	float	   *inp = rand_array((size_t) B * T * C, 1.0f);
	float	   *inp2 = malloc((size_t) B * T2 * C * sizeof(float));
	float	   *out = zeros((size_t) B * T * 2 * H);
	float	   *out2 = zeros((size_t) B * T2 * 2 * H);
	float	   *outi = zeros((size_t) B * T * 2 * H);
	size_t		na,
				na2,
				ni;
	float	   *acts,
			   *acts2,
			   *work;
	cai_lstm_params fw,
				bw;
	cai_error	err;
	cai_status	st;
	bool		ok;
	double		maxdiff = 0.0;

	cai_lstm_params_view(&fw, pslab, C, H);
	cai_lstm_params_view(&bw, pslab + np, C, H);
	cai_bilstm_acts_size(B, T, C, H, &na, &err);
	cai_bilstm_acts_size(B, T2, C, H, &na2, &err);
	cai_lstm_infer_size(B, T, C, H, &ni, &err);
	acts = zeros(na);
	acts2 = zeros(na2);
	work = zeros(ni);

	/* same real inputs in a wider padded batch, NaN in the padding */
	for (size_t k = 0; k < (size_t) B * T2 * C; k++)
		inp2[k] = NAN;
	for (int b = 0; b < B; b++)
		memcpy(inp2 + (size_t) b * T2 * C, inp + (size_t) b * T * C,
			   (size_t) len[b] * C * sizeof(float));

	st = cai_bilstm_forward(&fw, &bw, inp, len, B, T, C, H, out, acts, &err);
	CHECK(st == CAI_OK, "bilstm forward: %s", err.msg);
	st = cai_bilstm_forward(&fw, &bw, inp2, len, B, T2, C, H, out2, acts2, &err);
	CHECK(st == CAI_OK, "bilstm forward padded: %s", err.msg);

	/* reference */
	for (int b = 0; b < B; b++)
	{
		double	   *y = malloc(((size_t) T * H + 1) * sizeof(double));

		for (int d = 0; d < 2; d++)
		{
			lstm_reference(d == 0 ? &fw : &bw, inp + (size_t) b * T * C, len[b], C, H, d == 1, y);
			for (int t = 0; t < len[b]; t++)
				for (int j = 0; j < H; j++)
				{
					double		diff = fabs(out[((size_t) b * T + t) * 2 * H + d * H + j] -
											y[(size_t) t * H + j]);

					if (diff > maxdiff)
						maxdiff = diff;
				}
		}
		free(y);
	}
	CHECK(maxdiff < 1e-5, "bilstm vs double reference: max diff %g", maxdiff);

	/* padding invariance: bit-identical real outputs, zero padding */
	ok = true;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T2; t++)
			for (int j = 0; j < 2 * H; j++)
			{
				float		v2 = out2[((size_t) b * T2 + t) * 2 * H + j];

				if (t < len[b])
					ok &= memcmp(&v2, &out[((size_t) b * T + t) * 2 * H + j], sizeof(float)) == 0;
				else
					ok &= v2 == 0.0f;
			}
	CHECK(ok, "wider padding (NaN filled) changes bilstm outputs");

	/* backward under wider padding: identical gradients, padding untouched */
	{
		float	   *dout = rand_array((size_t) B * T * 2 * H, 1.0f);
		float	   *dout2 = malloc((size_t) B * T2 * 2 * H * sizeof(float));
		float	   *g = zeros(2 * np);
		float	   *g2 = zeros(2 * np);
		float	   *dinp = zeros((size_t) B * T * C);
		float	   *dinp2 = zeros((size_t) B * T2 * C);
		cai_lstm_params gf,
					gb,
					gf2,
					gb2;

		for (size_t k = 0; k < (size_t) B * T2 * 2 * H; k++)
			dout2[k] = NAN;
		for (int b = 0; b < B; b++)
			memcpy(dout2 + (size_t) b * T2 * 2 * H, dout + (size_t) b * T * 2 * H,
				   (size_t) len[b] * 2 * H * sizeof(float));
		cai_lstm_params_view(&gf, g, C, H);
		cai_lstm_params_view(&gb, g + np, C, H);
		cai_lstm_params_view(&gf2, g2, C, H);
		cai_lstm_params_view(&gb2, g2 + np, C, H);
		st = cai_bilstm_backward(&fw, &bw, &gf, &gb, len, B, T, C, H, dout, dinp, acts, &err);
		CHECK(st == CAI_OK, "bilstm backward: %s", err.msg);
		st = cai_bilstm_backward(&fw, &bw, &gf2, &gb2, len, B, T2, C, H, dout2, dinp2, acts2, &err);
		CHECK(st == CAI_OK, "bilstm backward padded: %s", err.msg);
		CHECK(memcmp(g, g2, 2 * np * sizeof(float)) == 0,
			  "wider padding changes parameter gradients");
		ok = true;
		for (int b = 0; b < B; b++)
			for (int t = 0; t < T2; t++)
				for (int k = 0; k < C; k++)
				{
					float		v2 = dinp2[((size_t) b * T2 + t) * C + k];

					if (t < len[b])
						ok &= memcmp(&v2, &dinp[((size_t) b * T + t) * C + k], sizeof(float)) == 0;
					else
						ok &= v2 == 0.0f;
				}
		CHECK(ok, "wider padding changes input gradients");

		/* determinism: the whole forward + backward again, bit for bit */
		{
			float	   *g3 = zeros(2 * np);
			float	   *dinp3 = zeros((size_t) B * T * C);
			float	   *out3 = zeros((size_t) B * T * 2 * H);
			cai_lstm_params gf3,
						gb3;

			cai_lstm_params_view(&gf3, g3, C, H);
			cai_lstm_params_view(&gb3, g3 + np, C, H);
			memset(acts, 0x7f, na * sizeof(float));
			cai_bilstm_forward(&fw, &bw, inp, len, B, T, C, H, out3, acts, &err);
			cai_bilstm_backward(&fw, &bw, &gf3, &gb3, len, B, T, C, H, dout, dinp3, acts, &err);
			CHECK(memcmp(out, out3, (size_t) B * T * 2 * H * sizeof(float)) == 0,
				  "bilstm forward not deterministic");
			CHECK(memcmp(g, g3, 2 * np * sizeof(float)) == 0 &&
				  memcmp(dinp, dinp3, (size_t) B * T * C * sizeof(float)) == 0,
				  "bilstm backward not deterministic");

			/* the recurrent products' portable code: the same bits as this CPU's kernel */
			memset(g3, 0, 2 * np * sizeof(float));
			memset(dinp3, 0, (size_t) B * T * C * sizeof(float));
			cai_lstm_portable_kernel(true);
			cai_bilstm_forward(&fw, &bw, inp, len, B, T, C, H, out3, acts, &err);
			cai_bilstm_backward(&fw, &bw, &gf3, &gb3, len, B, T, C, H, dout, dinp3, acts, &err);
			cai_lstm_portable_kernel(false);
			CHECK(memcmp(out, out3, (size_t) B * T * 2 * H * sizeof(float)) == 0,
				  "bilstm forward: the portable kernel gives other bits (H = %d)", H);
			CHECK(memcmp(g, g3, 2 * np * sizeof(float)) == 0 &&
				  memcmp(dinp, dinp3, (size_t) B * T * C * sizeof(float)) == 0,
				  "bilstm backward: the portable kernel gives other bits (H = %d)", H);
			free(g3);
			free(dinp3);
			free(out3);
		}
		free(dout);
		free(dout2);
		free(g);
		free(g2);
		free(dinp);
		free(dinp2);
	}

	/* inference path: same outputs up to rounding, zero padding */
	st = cai_bilstm_infer(&fw, &bw, inp, len, B, T, C, H, outi, work, &err);
	CHECK(st == CAI_OK, "bilstm infer: %s", err.msg);
	CHECK_CLOSE("bilstm infer vs forward", outi, out, (size_t) B * T * 2 * H, 1e-5f, 1e-6f);
	{
		float	   *outi2 = malloc((size_t) B * T2 * 2 * H * sizeof(float));

		memset(outi2, 0x7f, (size_t) B * T2 * 2 * H * sizeof(float));
		st = cai_bilstm_infer(&fw, &bw, inp2, len, B, T2, C, H, outi2, NULL, &err);
		CHECK(st == CAI_OK, "bilstm infer with own work: %s", err.msg);
		CHECK_CLOSE("bilstm infer (NaN padding, own work) vs forward", outi2, out2,
					(size_t) B * T2 * 2 * H, 1e-5f, 1e-6f);
		free(outi2);
	}

	/* each sequence alone (B = 1, T = len) vs in the batch */
	{
		int			nbits = 0;
		double		worst = 0.0;

		for (int b = 0; b < B; b++)
		{
			int32_t		l1 = len[b];
			int			T1 = l1 > 0 ? l1 : 1;
			size_t		na1;
			float	   *a1,
					   *o1 = zeros((size_t) T1 * 2 * H);

			cai_bilstm_acts_size(1, T1, C, H, &na1, &err);
			a1 = zeros(na1);
			st = cai_bilstm_forward(&fw, &bw, inp + (size_t) b * T * C, &l1, 1, T1, C, H, o1, a1, &err);
			CHECK(st == CAI_OK, "bilstm alone: %s", err.msg);
			for (int k = 0; k < l1 * 2 * H; k++)
			{
				float		v = out[(size_t) b * T * 2 * H + k];
				double		d = fabs((double) o1[k] - v);

				if (memcmp(&o1[k], &v, sizeof(float)) != 0)
					nbits++;
				if (d > worst)
					worst = d;
			}
			free(a1);
			free(o1);
		}
		/*
		 * Bit-identical with OpenBLAS 0.3.21 (a sgemm row does not depend on
		 * the other rows); a BLAS that routes M = 1 to gemv could differ by
		 * rounding, which the tolerance check still bounds.
		 */
		CHECK(worst < 1e-6, "sequence alone vs in batch: max diff %g", worst);
		CHECK(nbits == 0, "sequence alone vs in batch: %d values differ in bits (max diff %g)",
			  nbits, worst);
	}

	free(pslab);
	free(inp);
	free(inp2);
	free(out);
	free(out2);
	free(outi);
	free(acts);
	free(acts2);
	free(work);
}

/*
 * Inference from precomputed projections: a table of V input vectors, each
 * position of the batch one of them (idx); the rows x W_ih^T + b of the
 * table, given to cai_bilstm_infer_proj, give cai_bilstm_infer's outputs on
 * the gathered inputs (bit for bit with a BLAS whose sgemm rows do not
 * depend on the other rows; the tolerance bounds any other), zero padding.
 */
static void
test_lstm_infer_proj(void)
{
	enum
	{
		B = 5, T = 7, C = 6, H = 8, V = 9
	};
	static const int32_t len[B] = {4, 7, 1, 0, 6};
	size_t		np = cai_lstm_param_count(C, H);
	float	   *pslab = rand_array(2 * np, 0.5f);
	float	   *table = rand_array((size_t) V * C, 1.0f);
	float	   *proj = zeros((size_t) V * 8 * H);
	float	   *inp = zeros((size_t) B * T * C);
	float	   *out = zeros((size_t) B * T * 2 * H);
	float	   *outp = zeros((size_t) B * T * 2 * H);
	int32_t		idx[B * T];
	size_t		ni;
	float	   *work;
	cai_lstm_params fw,
				bw;
	cai_error	err;
	cai_status	st;

	cai_lstm_params_view(&fw, pslab, C, H);
	cai_lstm_params_view(&bw, pslab + np, C, H);
	cai_lstm_infer_size(B, T, C, H, &ni, &err);
	work = zeros(ni);
	for (int k = 0; k < B * T; k++)
	{
		/* padding positions hold an index out of range: never read */
		idx[k] = k % T < len[k / T] ? (k * 5) % V : -1;
		if (idx[k] >= 0)
			memcpy(inp + (size_t) k * C, table + (size_t) idx[k] * C, sizeof(float) * C);
	}
	for (int v = 0; v < V; v++)
		for (int d = 0; d < 2; d++)
		{
			const cai_lstm_params *p = d == 0 ? &fw : &bw;

			for (int j = 0; j < 4 * H; j++)
			{
				float		a = p->b[j];

				/* the same sum as a one-row sgemm over C: enough for the tolerance */
				for (int c = 0; c < C; c++)
					a += table[(size_t) v * C + c] * p->w_ih[(size_t) j * C + c];
				proj[(size_t) v * 8 * H + (size_t) d * 4 * H + j] = a;
			}
		}
	st = cai_bilstm_infer(&fw, &bw, inp, len, B, T, C, H, out, work, &err);
	CHECK(st == CAI_OK, "bilstm infer: %s", err.msg);
	memset(outp, 0x7f, (size_t) B * T * 2 * H * sizeof(float));
	st = cai_bilstm_infer_proj(&fw, &bw, proj, idx, V, len, B, T, H, outp, work, &err);
	CHECK(st == CAI_OK, "bilstm infer from projections: %s", err.msg);
	CHECK_CLOSE("bilstm infer from projections vs infer", outp, out, (size_t) B * T * 2 * H, 1e-5f, 1e-6f);

	/* errors: a row out of range at a real position, a short stride, no index or work */
	idx[T + 2] = V;
	st = cai_bilstm_infer_proj(&fw, &bw, proj, idx, V, len, B, T, H, outp, work, &err);
	CHECK(st == CAI_ERR_INVALID && strstr(err.msg, "projection row") != NULL,
		  "projection row out of range: status %d (%s)", st, err.msg);
	idx[T + 2] = 0;
	st = cai_lstm_infer_proj(&fw, proj, 4 * H - 1, idx, V, len, B, T, H, false, outp, 2 * H, work, &err);
	CHECK(st == CAI_ERR_INVALID, "projection stride below 4H: status %d", st);
	st = cai_lstm_infer_proj(&fw, proj, 8 * H, NULL, V, len, B, T, H, false, outp, 2 * H, work, &err);
	CHECK(st == CAI_ERR_INVALID, "projections without an index: status %d", st);
	st = cai_lstm_infer_proj(&fw, proj, 8 * H, idx, V, len, B, T, H, false, outp, 2 * H, NULL, &err);
	CHECK(st == CAI_ERR_INVALID, "projections without work: status %d", st);

	free(pslab);
	free(table);
	free(proj);
	free(inp);
	free(out);
	free(outp);
	free(work);
}

/*
 * Larger batch with random lengths: inference (several input chunks of
 * 256 rows) vs training forward, an all-empty batch, initialization.
 */
static void
test_lstm_misc(void)
{
	enum
	{
		B = 24, T = 30, C = 5, H = 4
	};
	int32_t		len[B];
	size_t		np = cai_lstm_param_count(C, H);
	float	   *pslab = zeros(np);
	float	   *inp = rand_array((size_t) B * T * C, 1.0f);
	float	   *out = zeros((size_t) B * T * H);
	float	   *outi = zeros((size_t) B * T * H);
	float	   *dout = rand_array((size_t) B * T * H, 1.0f);
	float	   *gslab = zeros(np);
	size_t		na;
	float	   *acts;
	cai_lstm_params p,
				g;
	cai_rng		r2;
	cai_error	err;
	cai_status	st;
	int			nreal = 0;
	bool		ok = true;
	float		k = 1.0f / sqrtf((float) H);

	cai_lstm_params_view(&p, pslab, C, H);
	cai_lstm_params_view(&g, gslab, C, H);
	cai_rng_seed(&r2, 7);
	cai_lstm_init(&p, C, H, &r2);
	for (size_t i = 0; i < (size_t) 4 * H * (C + H); i++)
		ok &= fabsf(p.w_ih[i]) <= k && p.w_ih[i] != 0.0f;	/* w_hh follows w_ih */
	for (int j = 0; j < 4 * H; j++)
		ok &= p.b[j] == ((j >= H && j < 2 * H) ? 1.0f : 0.0f);
	CHECK(ok, "lstm init: weights outside [-1/sqrt(H), 1/sqrt(H)] or wrong biases");

	for (int b = 0; b < B; b++)
	{
		len[b] = (int32_t) cai_rng_below(&rng, T + 1);
		nreal += len[b];
	}
	len[3] = T;
	CHECK(nreal > 256, "test needs several inference chunks (%d rows)", nreal);
	cai_lstm_acts_size(B, T, C, H, &na, &err);
	acts = zeros(na);
	for (int rev = 0; rev < 2; rev++)
	{
		st = cai_lstm_forward(&p, inp, len, B, T, C, H, rev, out, H, acts, &err);
		CHECK(st == CAI_OK, "forward: %s", err.msg);
		memset(outi, 0x7f, (size_t) B * T * H * sizeof(float));
		st = cai_lstm_infer(&p, inp, len, B, T, C, H, rev, outi, H, NULL, &err);
		CHECK(st == CAI_OK, "infer: %s", err.msg);
		CHECK_CLOSE(rev ? "chunked infer vs forward (reverse)" : "chunked infer vs forward",
					outi, out, (size_t) B * T * H, 1e-5f, 1e-6f);
	}

	/* every sequence empty: zero outputs, nothing accumulated */
	{
		int32_t		zl[B] = {0};

		memset(out, 0x7f, (size_t) B * T * H * sizeof(float));
		st = cai_lstm_forward(&p, inp, zl, B, T, C, H, false, out, H, acts, &err);
		CHECK(st == CAI_OK, "empty forward: %s", err.msg);
		ok = true;
		for (size_t i = 0; i < (size_t) B * T * H; i++)
			ok &= out[i] == 0.0f;
		CHECK(ok, "empty batch has nonzero outputs");
		st = cai_lstm_backward(&p, &g, zl, B, T, C, H, false, dout, H, inp, acts, &err);
		ok = true;
		for (size_t i = 0; i < np; i++)
			ok &= gslab[i] == 0.0f;
		CHECK(st == CAI_OK && ok, "empty batch backward: %d", st);
	}
	free(pslab);
	free(inp);
	free(out);
	free(outi);
	free(dout);
	free(gslab);
	free(acts);
}

static void
test_lstm_errors(void)
{
	int32_t		len[2] = {3, 4};
	size_t		np = cai_lstm_param_count(2, 2);
	float	   *pslab = rand_array(np, 0.5f);
	float		inp[2 * 3 * 2] = {0};
	float		out[2 * 3 * 2];
	float		dout[2 * 3 * 2] = {0};
	size_t		na;
	float	   *acts;
	cai_lstm_params p,
				g;
	cai_error	err;
	cai_status	st;

	cai_lstm_params_view(&p, pslab, 2, 2);
	cai_lstm_params_view(&g, pslab, 2, 2);
	cai_lstm_acts_size(2, 3, 2, 2, &na, &err);
	acts = zeros(na);

	st = cai_lstm_forward(&p, inp, len, 2, 3, 2, 2, false, out, 2, acts, &err);
	CHECK(st == CAI_ERR_INVALID, "length > T accepted (%d)", st);
	len[1] = -1;
	st = cai_lstm_forward(&p, inp, len, 2, 3, 2, 2, false, out, 2, acts, &err);
	CHECK(st == CAI_ERR_INVALID, "negative length accepted (%d)", st);
	len[1] = 2;
	st = cai_lstm_forward(&p, inp, len, 2, 3, 2, 2, false, out, 1, acts, &err);
	CHECK(st == CAI_ERR_INVALID, "ldo < H accepted (%d)", st);
	st = cai_lstm_forward(&p, inp, len, 2, 0, 2, 2, false, out, 2, acts, &err);
	CHECK(st == CAI_ERR_INVALID, "T = 0 accepted (%d)", st);
	st = cai_lstm_forward(&p, inp, len, 2, 3, 2, 2, false, out, 2, acts, &err);
	CHECK(st == CAI_OK, "valid forward: %s", err.msg);
	/* backward with lengths that do not match the forward */
	len[1] = 3;
	st = cai_lstm_backward(&p, &g, len, 2, 3, 2, 2, false, dout, 2, NULL, acts, &err);
	CHECK(st == CAI_ERR_INVALID, "mismatched backward accepted (%d)", st);
	CHECK(strstr(err.msg, "do not match") != NULL, "message: %s", err.msg);
	st = cai_lstm_acts_size(1 << 30, 1 << 30, 1 << 20, 1 << 20, &na, &err);
	CHECK(st == CAI_ERR_LIMIT, "huge acts size accepted (%d)", st);
	st = cai_lstm_acts_size(1 << 15, 1 << 14, 1 << 20, 1 << 20, &na, &err);
	CHECK(st == CAI_ERR_LIMIT || (sizeof(size_t) == 8 && st == CAI_OK),
		  "large acts size: %d", st);
	free(pslab);
	free(acts);
}

/* ------------------------------------------------------------------ */
/* CRF                                                                */
/* ------------------------------------------------------------------ */

static bool
path_allowed(const cai_crf_mask *m, const int32_t *y, int T, int K)
{
	if (m == NULL)
		return true;
	if (!m->start[y[0]] || !m->end[y[T - 1]])
		return false;
	for (int t = 1; t < T; t++)
		if (!m->trans[(size_t) y[t - 1] * K + y[t]])
			return false;
	return true;
}

/* Advance y (T digits base K); false after the last path. */
static bool
next_path(int32_t *y, int T, int K)
{
	for (int t = T - 1; t >= 0; t--)
	{
		if (++y[t] < K)
			return true;
		y[t] = 0;
	}
	return false;
}

/*
 * Brute force over all K^T paths: log Z, the best path and its score,
 * and marginals (T, K).
 */
static void
crf_brute(const cai_crf_params *p, int K, const float *emis, int T,
		  const cai_crf_mask *m, double *logz, int32_t *best, double *best_score,
		  double *marg)
{
	int32_t		y[8] = {0};
	double		mx = -INFINITY;
	double		sum = 0.0;
	cai_error	err;

	/* pass 1: max and best path */
	do
	{
		double		s;

		if (!path_allowed(m, y, T, K))
			continue;
		cai_crf_path_score(p, K, emis, T, y, &s, &err);
		if (s > mx)
		{
			mx = s;
			memcpy(best, y, T * sizeof(int32_t));
		}
	} while (next_path(y, T, K));
	*best_score = mx;
	memset(y, 0, sizeof(y));
	memset(marg, 0, (size_t) T * K * sizeof(double));
	do
	{
		double		s,
					e;

		if (!path_allowed(m, y, T, K))
			continue;
		cai_crf_path_score(p, K, emis, T, y, &s, &err);
		e = exp(s - mx);
		sum += e;
		for (int t = 0; t < T; t++)
			marg[(size_t) t * K + y[t]] += e;
	} while (next_path(y, T, K));
	*logz = mx + log(sum);
	for (int k = 0; k < T * K; k++)
		marg[k] /= sum;
}

static void
crf_brute_check(int K, int T, const cai_crf_mask *m, float scale)
{
	size_t		npar = cai_crf_param_count(K);
	float	   *pslab = rand_array(npar, scale);
	float	   *emis = rand_array((size_t) T * K, 2.0f * scale);
	float	   *marg = malloc((size_t) T * K * sizeof(float));
	double	   *bmarg = malloc((size_t) T * K * sizeof(double));
	int32_t		best[8],
				vit[8];
	double		blogz,
				bscore,
				logz,
				logz2,
				vscore;
	size_t		nw;
	double	   *work;
	cai_crf_params p;
	cai_error	err;
	cai_status	st;
	bool		rows_ok = true;
	double		mdiff = 0.0;

	cai_crf_params_view(&p, pslab, K);
	cai_crf_work_size(T, K, &nw, &err);
	work = malloc(nw * sizeof(double));
	crf_brute(&p, K, emis, T, m, &blogz, best, &bscore, bmarg);

	st = cai_crf_log_partition(&p, K, emis, T, m, &logz, work, &err);
	CHECK(st == CAI_OK && fabs(logz - blogz) < 1e-9 * (1.0 + fabs(blogz)),
		  "log Z K=%d T=%d mask=%d: %.12g vs brute %.12g", K, T, m != NULL, logz, blogz);
	st = cai_crf_viterbi(&p, K, emis, T, m, vit, &vscore, work, &err);
	CHECK(st == CAI_OK && memcmp(vit, best, T * sizeof(int32_t)) == 0 &&
		  fabs(vscore - bscore) < 1e-9 * (1.0 + fabs(bscore)),
		  "viterbi K=%d T=%d mask=%d differs from brute force (score %g vs %g)",
		  K, T, m != NULL, vscore, bscore);
	st = cai_crf_marginals(&p, K, emis, T, m, marg, &logz2, NULL, &err);
	CHECK(st == CAI_OK && logz2 == logz, "marginals log Z: %s", err.msg);
	for (int t = 0; t < T; t++)
	{
		double		s = 0.0;

		for (int k = 0; k < K; k++)
		{
			double		d = fabs(marg[t * K + k] - bmarg[t * K + k]);

			s += marg[t * K + k];
			if (d > mdiff)
				mdiff = d;
		}
		rows_ok &= fabs(s - 1.0) < 1e-5;
	}
	CHECK(rows_ok, "marginals K=%d T=%d do not sum to 1", K, T);
	CHECK(mdiff < 1e-6, "marginals K=%d T=%d vs brute force: max diff %g", K, T, mdiff);
	free(pslab);
	free(emis);
	free(marg);
	free(bmarg);
	free(work);
}

/*
 * NLL gradient against brute-force expected counts (exact at any scale, so
 * it also covers the underflow fallbacks of the fast forward-backward).
 */
static void
crf_brute_grad_check(int K, int T, const cai_crf_mask *m, float scale)
{
	size_t		npar = cai_crf_param_count(K);
	float	   *pslab = rand_array(npar, scale);
	float	   *emis = rand_array((size_t) T * K, 2.0f * scale);
	float	   *gslab = zeros(npar);
	float	   *demis = zeros((size_t) T * K);
	float	   *want = zeros(npar + (size_t) T * K);
	double	   *acc = calloc(npar + (size_t) T * K, sizeof(double));
	double	   *bmarg = malloc((size_t) T * K * sizeof(double));
	int32_t		gold[8],
				y[8] = {0};
	double		logz,
				bscore,
				nll;
	cai_crf_params p,
				g;
	cai_error	err;
	cai_status	st;
	char		name[96];

	cai_crf_params_view(&p, pslab, K);
	cai_crf_params_view(&g, gslab, K);
	crf_brute(&p, K, emis, T, m, &logz, gold, &bscore, bmarg);
	/* acc layout: trans (K, K), start (K), end (K), emis (T, K) */
	do
	{
		double		s,
					pr;

		if (!path_allowed(m, y, T, K))
			continue;
		cai_crf_path_score(&p, K, emis, T, y, &s, &err);
		pr = exp(s - logz);
		for (int t = 1; t < T; t++)
			acc[(size_t) y[t - 1] * K + y[t]] += pr;
		acc[(size_t) K * K + y[0]] += pr;
		acc[(size_t) K * K + K + y[T - 1]] += pr;
		for (int t = 0; t < T; t++)
			acc[npar + (size_t) t * K + y[t]] += pr;
	} while (next_path(y, T, K));
	for (int t = 1; t < T; t++)
		acc[(size_t) gold[t - 1] * K + gold[t]] -= 1.0;
	acc[(size_t) K * K + gold[0]] -= 1.0;
	acc[(size_t) K * K + K + gold[T - 1]] -= 1.0;
	for (int t = 0; t < T; t++)
		acc[npar + (size_t) t * K + gold[t]] -= 1.0;
	for (size_t k = 0; k < npar + (size_t) T * K; k++)
		want[k] = (float) acc[k];

	st = cai_crf_nll(&p, K, emis, T, gold, m, 1.0f, &nll, demis, &g, NULL, &err);
	CHECK(st == CAI_OK && fabs(nll - (logz - bscore)) <= 1e-9 * (1.0 + fabs(logz)),
		  "nll K=%d T=%d scale %g: %.12g vs brute %.12g", K, T, scale, nll, logz - bscore);
	snprintf(name, sizeof(name), "crf grad vs brute K=%d T=%d scale %g mask=%d", K, T, scale, m != NULL);
	CHECK_CLOSE(name, gslab, want, npar, 0.0f, 2e-6f);
	snprintf(name, sizeof(name), "crf demis vs brute K=%d T=%d scale %g mask=%d", K, T, scale, m != NULL);
	CHECK_CLOSE(name, demis, want + npar, (size_t) T * K, 0.0f, 2e-6f);
	free(pslab);
	free(emis);
	free(gslab);
	free(demis);
	free(want);
	free(acc);
	free(bmarg);
}

typedef struct crf_fd_ctx
{
	cai_crf_params *p;
	int			K,
				T;
	float	   *emis;
	const int32_t *tags;
	const cai_crf_mask *mask;
} crf_fd_ctx;

static double
crf_fd_loss(void *arg)
{
	crf_fd_ctx *x = arg;
	double		nll = NAN;
	cai_error	err;

	if (cai_crf_nll(x->p, x->K, x->emis, x->T, x->tags, x->mask, 1.0f, &nll,
					NULL, NULL, NULL, &err) != CAI_OK)
		fprintf(stderr, "crf nll failed: %s\n", err.msg);
	return nll;
}

/* Central differences on the double NLL: tight tolerance. */
static void
crf_fd_compare(const char *what, float *x, size_t n, const float *analytic,
			   crf_fd_ctx *ctx, float gscale)
{
	float	   *num = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
	{
		float		x0 = x[i];
		float		xp = x0 + 1e-2f;
		float		xm = x0 - 1e-2f;
		double		lp,
					lm;

		x[i] = xp;
		lp = crf_fd_loss(ctx);
		x[i] = xm;
		lm = crf_fd_loss(ctx);
		x[i] = x0;
		num[i] = (float) (gscale * (lp - lm) / ((double) xp - (double) xm));
	}
	CHECK_CLOSE(what, analytic, num, n, 1e-3f, 1e-4f);
	free(num);
}

static void
test_crf_grad(const cai_crf_mask *mask, const int32_t *tags, int K, int T)
{
	size_t		npar = cai_crf_param_count(K);
	float	   *pslab = rand_array(npar, 1.0f);
	float	   *gslab = zeros(npar);
	float	   *emis = rand_array((size_t) T * K, 2.0f);
	float	   *demis = zeros((size_t) T * K);
	float		gscale = 0.5f;
	cai_crf_params p,
				g;
	crf_fd_ctx	ctx;
	double		nll,
				logz,
				gold;
	cai_error	err;
	cai_status	st;
	char		name[64];
	const char *tag = mask != NULL ? "masked" : "plain";

	cai_crf_params_view(&p, pslab, K);
	cai_crf_params_view(&g, gslab, K);
	st = cai_crf_nll(&p, K, emis, T, tags, mask, gscale, &nll, demis, &g, NULL, &err);
	CHECK(st == CAI_OK, "crf nll: %s", err.msg);
	cai_crf_log_partition(&p, K, emis, T, mask, &logz, NULL, &err);
	cai_crf_path_score(&p, K, emis, T, tags, &gold, &err);
	CHECK(fabs(nll - (logz - gold)) < 1e-9 && nll > 0.0, "nll %g != log Z - gold %g", nll, logz - gold);

	ctx.p = &p;
	ctx.K = K;
	ctx.T = T;
	ctx.emis = emis;
	ctx.tags = tags;
	ctx.mask = mask;
	snprintf(name, sizeof(name), "crf %s demis", tag);
	crf_fd_compare(name, emis, (size_t) T * K, demis, &ctx, gscale);
	snprintf(name, sizeof(name), "crf %s dtrans", tag);
	crf_fd_compare(name, p.trans, (size_t) K * K, g.trans, &ctx, gscale);
	snprintf(name, sizeof(name), "crf %s dstart", tag);
	crf_fd_compare(name, p.start, (size_t) K, g.start, &ctx, gscale);
	snprintf(name, sizeof(name), "crf %s dend", tag);
	crf_fd_compare(name, p.end, (size_t) K, g.end, &ctx, gscale);
	if (mask != NULL)
	{
		bool		zero = true;

		for (int k = 0; k < K * K; k++)
			if (!mask->trans[k])
				zero &= g.trans[k] == 0.0f;
		CHECK(zero, "masked transitions have nonzero gradient");
	}
	free(pslab);
	free(gslab);
	free(emis);
	free(demis);
}

/* mask helper with its own storage */
typedef struct test_mask
{
	uint8_t		buf[32 * 32 + 64];
	cai_crf_mask m;
} test_mask;

static cai_status
build_mask(test_mask *tm, cai_tag_scheme scheme, const char *const *tags, int K, cai_error *err)
{
	memset(tm->buf, 0xAA, sizeof(tm->buf));
	cai_crf_mask_view(&tm->m, tm->buf, K);
	return cai_crf_mask_build(scheme, tags, K, &tm->m, err);
}

static void
test_crf_masks(void)
{
	static const char *const iob[] = {"O", "B-ORG.NAM", "I-ORG.NAM", "B-product", "I-product"};
	/* expected IOB2 transitions [from][to] */
	static const uint8_t iob_tr[5][5] = {
		/* O  B-O I-O B-p I-p */
		{1, 1, 0, 1, 0},		/* O */
		{1, 1, 1, 1, 0},		/* B-ORG.NAM */
		{1, 1, 1, 1, 0},		/* I-ORG.NAM */
		{1, 1, 0, 1, 1},		/* B-product */
		{1, 1, 0, 1, 1},		/* I-product */
	};
	static const uint8_t iob_start[5] = {1, 1, 0, 1, 0};
	static const char *const bioes[] = {"O", "B-PER", "I-PER", "E-PER", "S-PER",
	"B-loc", "I-loc", "E-loc", "S-loc"};
	static const uint8_t bioes_tr[9][9] = {
		/* O BP IP EP SP BL IL EL SL */
		{1, 1, 0, 0, 1, 1, 0, 0, 1},	/* O */
		{0, 0, 1, 1, 0, 0, 0, 0, 0},	/* B-PER */
		{0, 0, 1, 1, 0, 0, 0, 0, 0},	/* I-PER */
		{1, 1, 0, 0, 1, 1, 0, 0, 1},	/* E-PER */
		{1, 1, 0, 0, 1, 1, 0, 0, 1},	/* S-PER */
		{0, 0, 0, 0, 0, 0, 1, 1, 0},	/* B-loc */
		{0, 0, 0, 0, 0, 0, 1, 1, 0},	/* I-loc */
		{1, 1, 0, 0, 1, 1, 0, 0, 1},	/* E-loc */
		{1, 1, 0, 0, 1, 1, 0, 0, 1},	/* S-loc */
	};
	static const uint8_t bioes_start[9] = {1, 1, 0, 0, 1, 1, 0, 0, 1};
	static const uint8_t bioes_end[9] = {1, 0, 0, 1, 1, 0, 0, 1, 1};
	test_mask	tm;
	cai_error	err;
	cai_status	st;
	bool		ok;

	st = build_mask(&tm, CAI_TAGS_IOB2, iob, 5, &err);
	CHECK(st == CAI_OK, "iob2 mask: %s", err.msg);
	CHECK(memcmp(tm.m.trans, iob_tr, 25) == 0, "iob2 transitions differ");
	CHECK(memcmp(tm.m.start, iob_start, 5) == 0, "iob2 start differs");
	ok = true;
	for (int k = 0; k < 5; k++)
		ok &= tm.m.end[k] == 1;
	CHECK(ok, "iob2 end must allow every tag");

	st = build_mask(&tm, CAI_TAGS_BIOES, bioes, 9, &err);
	CHECK(st == CAI_OK, "bioes mask: %s", err.msg);
	CHECK(memcmp(tm.m.trans, bioes_tr, 81) == 0, "bioes transitions differ");
	CHECK(memcmp(tm.m.start, bioes_start, 9) == 0, "bioes start differs");
	CHECK(memcmp(tm.m.end, bioes_end, 9) == 0, "bioes end differs");

	/* invalid tag sets */
	{
		static const char *const bad1[] = {"O", "E-X"};
		static const char *const bad2[] = {"O", "B-"};
		static const char *const bad3[] = {"O", "X-FOO"};
		static const char *const bad4[] = {"B-X", "O", "B-X"};
		static const char *const bad5[] = {"o", "B-X"};
		static const char *const bad6[] = {"O", NULL};
		static const char *const bad7[] = {"O", "BX"};

		CHECK(build_mask(&tm, CAI_TAGS_IOB2, bad1, 2, &err) == CAI_ERR_INVALID, "E-X in iob2");
		CHECK(build_mask(&tm, CAI_TAGS_BIOES, bad2, 2, &err) == CAI_ERR_INVALID, "empty type");
		CHECK(build_mask(&tm, CAI_TAGS_BIOES, bad3, 2, &err) == CAI_ERR_INVALID, "bad prefix");
		CHECK(build_mask(&tm, CAI_TAGS_IOB2, bad4, 3, &err) == CAI_ERR_INVALID, "duplicate");
		CHECK(strstr(err.msg, "duplicate") != NULL, "message: %s", err.msg);
		CHECK(build_mask(&tm, CAI_TAGS_IOB2, bad5, 2, &err) == CAI_ERR_INVALID, "lowercase o");
		CHECK(build_mask(&tm, CAI_TAGS_IOB2, bad6, 2, &err) == CAI_ERR_INVALID, "null tag");
		CHECK(build_mask(&tm, CAI_TAGS_IOB2, bad7, 2, &err) == CAI_ERR_INVALID, "missing dash");
		CHECK(build_mask(&tm, (cai_tag_scheme) 7, iob, 5, &err) == CAI_ERR_INVALID, "bad scheme");
	}
}

/* Viterbi under a BIOES mask always yields a valid BIOES sequence. */
static void
test_crf_viterbi_valid(void)
{
	static const char *const bioes[] = {"O", "B-PER", "I-PER", "E-PER", "S-PER",
	"B-loc", "I-loc", "E-loc", "S-loc"};
	enum
	{
		K = 9, T = 12
	};
	test_mask	tm;
	cai_crf_params p;
	float	   *pslab = rand_array(cai_crf_param_count(K), 3.0f);
	cai_error	err;
	int			nvalid = 0,
				nraw_valid = 0;

	build_mask(&tm, CAI_TAGS_BIOES, bioes, K, &err);
	cai_crf_params_view(&p, pslab, K);
	for (int rep = 0; rep < 50; rep++)
	{
		float	   *emis = rand_array((size_t) T * K, 4.0f);
		int32_t		y[T],
					y2[T];

		if (cai_crf_viterbi(&p, K, emis, T, &tm.m, y, NULL, NULL, &err) == CAI_OK &&
			path_allowed(&tm.m, y, T, K))
			nvalid++;
		if (cai_crf_viterbi(&p, K, emis, T, NULL, y2, NULL, NULL, &err) == CAI_OK &&
			path_allowed(&tm.m, y2, T, K))
			nraw_valid++;
		free(emis);
	}
	CHECK(nvalid == 50, "masked viterbi gave %d of 50 valid BIOES paths", nvalid);
	CHECK(nraw_valid < 50, "unmasked viterbi was always valid (mask test is vacuous)");
	free(pslab);
}

static void
test_crf_batch_and_errors(void)
{
	enum
	{
		B = 4, T = 6, K = 5
	};
	static const int32_t len[B] = {6, 0, 1, 4};
	int32_t		tags[B * T];
	int32_t		vt[B * T];
	size_t		npar = cai_crf_param_count(K);
	float	   *pslab = rand_array(npar, 1.0f);
	float	   *emis = rand_array((size_t) B * T * K, 2.0f);
	float	   *gb = zeros(npar),
			   *gs = zeros(npar);
	float	   *db = zeros((size_t) B * T * K),
			   *ds = zeros((size_t) B * T * K);
	cai_crf_params p,
				g1,
				g2;
	double		sum,
				ref = 0.0;
	cai_error	err;
	cai_status	st;
	bool		ok = true;

	cai_crf_params_view(&p, pslab, K);
	cai_crf_params_view(&g1, gb, K);
	cai_crf_params_view(&g2, gs, K);
	for (int k = 0; k < B * T; k++)
		tags[k] = (int32_t) cai_rng_below(&rng, K);
	st = cai_crf_nll_batch(&p, K, emis, tags, len, B, T, NULL, 0.25f, &sum, db, &g1, NULL, &err);
	CHECK(st == CAI_OK, "nll batch: %s", err.msg);
	for (int b = 0; b < B; b++)
	{
		double		nll;

		if (len[b] == 0)
			continue;
		cai_crf_nll(&p, K, emis + b * T * K, len[b], tags + b * T, NULL, 0.25f, &nll,
					ds + b * T * K, &g2, NULL, &err);
		ref += nll;
	}
	CHECK(sum == ref, "nll batch sum %g vs %g", sum, ref);
	CHECK(memcmp(gb, gs, npar * sizeof(float)) == 0 &&
		  memcmp(db, ds, (size_t) B * T * K * sizeof(float)) == 0,
		  "nll batch gradients differ from the per-sequence loop");
	for (int b = 0; b < B; b++)
		for (int t = len[b]; t < T; t++)
			for (int k = 0; k < K; k++)
				ok &= db[(b * T + t) * K + k] == 0.0f;
	CHECK(ok, "nll batch touched padded emission gradients");

	st = cai_crf_viterbi_batch(&p, K, emis, len, B, T, NULL, vt, NULL, &err);
	CHECK(st == CAI_OK, "viterbi batch: %s", err.msg);
	ok = true;
	for (int b = 0; b < B; b++)
	{
		int32_t		y[T];

		if (len[b] > 0)
		{
			cai_crf_viterbi(&p, K, emis + b * T * K, len[b], NULL, y, NULL, NULL, &err);
			ok &= memcmp(y, vt + b * T, len[b] * sizeof(int32_t)) == 0;
		}
		for (int t = len[b]; t < T; t++)
			ok &= vt[b * T + t] == -1;
	}
	CHECK(ok, "viterbi batch differs from per-sequence viterbi");

	/* determinism of the gradient */
	{
		float	   *g3s = zeros(npar);
		cai_crf_params g3;

		cai_crf_params_view(&g3, g3s, K);
		memset(gb, 0, npar * sizeof(float));
		cai_crf_nll(&p, K, emis, T, tags, NULL, 1.0f, &sum, NULL, &g1, NULL, &err);
		cai_crf_nll(&p, K, emis, T, tags, NULL, 1.0f, &ref, NULL, &g3, NULL, &err);
		CHECK(sum == ref && memcmp(gb, g3s, npar * sizeof(float)) == 0, "crf nll not deterministic");
		free(g3s);
	}

	/* errors */
	{
		int32_t		bad[T] = {0, 1, 5, 0, 0, 0};
		double		nll;
		static const char *const only_bi[] = {"B-X", "I-X"};
		test_mask	tm;
		float		e2[2 * 2] = {0};
		int32_t		y[2];
		cai_crf_params p2;
		float		ps2[8] = {0};

		st = cai_crf_nll(&p, K, emis, T, bad, NULL, 1.0f, &nll, NULL, NULL, NULL, &err);
		CHECK(st == CAI_ERR_INVALID, "out-of-range tag accepted (%d)", st);
		st = cai_crf_nll(&p, K, emis, 0, tags, NULL, 1.0f, &nll, NULL, NULL, NULL, &err);
		CHECK(st == CAI_ERR_INVALID, "T = 0 accepted (%d)", st);
		emis[3] = NAN;
		st = cai_crf_nll(&p, K, emis, T, tags, NULL, 1.0f, &nll, NULL, NULL, NULL, &err);
		CHECK(st == CAI_ERR_NUMERIC, "NaN emission not reported (%d)", st);
		st = cai_crf_viterbi(&p, K, emis, T, NULL, vt, NULL, NULL, &err);
		CHECK(st == CAI_ERR_NUMERIC, "NaN emission in viterbi not reported (%d)", st);
		st = cai_crf_marginals(&p, K, emis, T, NULL, db, NULL, NULL, &err);
		CHECK(st == CAI_ERR_NUMERIC, "NaN emission in marginals not reported (%d)", st);
		emis[3] = 0.0f;
		pslab[2] = INFINITY;
		st = cai_crf_log_partition(&p, K, emis, T, NULL, &nll, NULL, &err);
		CHECK(st == CAI_ERR_NUMERIC, "infinite transition not reported (%d)", st);
		pslab[2] = 0.0f;
		/* every tag forbidden at one position: no path */
		{
			float		save[K];

			memcpy(save, emis + 3 * K, sizeof(save));
			for (int k = 0; k < K; k++)
				emis[3 * K + k] = -INFINITY;
			st = cai_crf_log_partition(&p, K, emis, T, NULL, &nll, NULL, &err);
			CHECK(st == CAI_ERR_INVALID, "all -inf position: log Z status %d", st);
			st = cai_crf_viterbi(&p, K, emis, T, NULL, vt, NULL, NULL, &err);
			CHECK(st == CAI_ERR_INVALID, "all -inf position: viterbi status %d", st);
			memcpy(emis + 3 * K, save, sizeof(save));
		}

		/* a -inf emission forbids that tag: viterbi avoids it, its marginal is 0 */
		{
			int32_t		y[T];
			float		marg[T * K];
			int32_t		t0 = 0;

			cai_crf_viterbi(&p, K, emis, T, NULL, y, NULL, NULL, &err);
			t0 = y[2];
			emis[2 * K + t0] = -INFINITY;
			st = cai_crf_viterbi(&p, K, emis, T, NULL, y, NULL, NULL, &err);
			CHECK(st == CAI_OK && y[2] != t0, "viterbi took a -inf emission (%d)", st);
			st = cai_crf_marginals(&p, K, emis, T, NULL, marg, NULL, NULL, &err);
			CHECK(st == CAI_OK && marg[2 * K + t0] == 0.0f, "-inf emission has marginal %g",
				  marg[2 * K + t0]);
			emis[2 * K + t0] = 0.0f;
		}

		/* a BIOES mask over only B-X, I-X allows no complete path */
		build_mask(&tm, CAI_TAGS_BIOES, only_bi, 2, &err);
		cai_crf_params_view(&p2, ps2, 2);
		st = cai_crf_viterbi(&p2, 2, e2, 2, &tm.m, y, NULL, NULL, &err);
		CHECK(st == CAI_ERR_INVALID, "viterbi with no allowed path (%d)", st);
		st = cai_crf_log_partition(&p2, 2, e2, 2, &tm.m, &nll, NULL, &err);
		CHECK(st == CAI_ERR_INVALID, "log Z with no allowed path (%d)", st);

		/* a gold path the mask forbids */
		{
			static const char *const iob[] = {"O", "B-X", "I-X"};
			int32_t		gold[2] = {0, 2};	/* O I-X */
			float		ps3[15] = {0};
			float		e3[6] = {0};
			cai_crf_params p3;

			build_mask(&tm, CAI_TAGS_IOB2, iob, 3, &err);
			cai_crf_params_view(&p3, ps3, 3);
			st = cai_crf_nll(&p3, 3, e3, 2, gold, &tm.m, 1.0f, &nll, NULL, NULL, NULL, &err);
			CHECK(st == CAI_ERR_INVALID, "forbidden gold path accepted (%d)", st);
			/* extreme but finite scores stay finite (max-shifted log-sum-exp) */
			e3[0] = 3e4f;
			e3[4] = -3e4f;
			gold[1] = 1;
			st = cai_crf_nll(&p3, 3, e3, 2, gold, NULL, 1.0f, &nll, NULL, NULL, NULL, &err);
			CHECK(st == CAI_OK && isfinite(nll) && nll >= 0.0, "extreme scores: st %d nll %g", st, nll);
		}
	}
	free(pslab);
	free(emis);
	free(gb);
	free(gs);
	free(db);
	free(ds);
}

/*
 * cai_crf_path_marginals_batch against cai_crf_marginals: the Viterbi path's
 * marginals of a padded batch, with and without masks, at scales where the
 * scaled pass works and where it falls back to the log domain; errors.
 */
static void
crf_path_marginals_check(int K, int B, int T, const cai_crf_mask *m, float scale)
{
	size_t		npar = cai_crf_param_count(K);
	float	   *pslab = rand_array(npar, scale);
	float	   *emis = rand_array((size_t) B * T * K, 2.0f * scale);
	int32_t    *len = malloc(sizeof(int32_t) * (size_t) B);
	int32_t    *tags = malloc(sizeof(int32_t) * (size_t) B * T);
	float	   *out = malloc(sizeof(float) * (size_t) B * T);
	float	   *marg = malloc(sizeof(float) * (size_t) T * K);
	size_t		nw;
	double	   *work;
	double		mdiff = 0.0;
	size_t		o = 0;
	cai_crf_params p;
	cai_error	err;
	cai_status	st;

	cai_crf_params_view(&p, pslab, K);
	for (int b = 0; b < B; b++)
		len[b] = b == 1 ? 0 : 1 + (b * 7) % T;	/* one empty sequence, lengths 1 .. T */
	cai_crf_work_size(T, K, &nw, &err);
	work = malloc(nw * sizeof(double));
	st = cai_crf_viterbi_batch(&p, K, emis, len, B, T, m, tags, work, &err);
	CHECK(st == CAI_OK, "path marginals K=%d: viterbi %s", K, err.msg);
	st = cai_crf_path_marginals_batch(&p, K, emis, len, B, T, m, tags, out, work, &err);
	CHECK(st == CAI_OK, "path marginals K=%d B=%d T=%d scale %g: %s", K, B, T, scale, err.msg);
	for (int b = 0; b < B && st == CAI_OK; b++)
	{
		if (len[b] == 0)
			continue;
		if (cai_crf_marginals(&p, K, emis + (size_t) b * T * K, len[b], m, marg, NULL, NULL, &err) != CAI_OK)
		{
			CHECK(false, "reference marginals: %s", err.msg);
			break;
		}
		for (int t = 0; t < len[b]; t++)
		{
			double		d = fabs((double) out[o + t] - (double) marg[(size_t) t * K + tags[(size_t) b * T + t]]);

			mdiff = d > mdiff ? d : mdiff;
		}
		o += (size_t) len[b];
	}
	CHECK(mdiff <= 1e-6, "path marginals K=%d B=%d T=%d mask=%d scale %g equal the log-domain ones (max diff %g)",
		  K, B, T, m != NULL, scale, mdiff);

	/* errors: a tag out of range, a NaN emission, no output */
	if (B > 0 && len[0] > 0)
	{
		int32_t		keep = tags[0];

		tags[0] = K;
		st = cai_crf_path_marginals_batch(&p, K, emis, len, B, T, m, tags, out, NULL, &err);
		CHECK(st == CAI_ERR_INVALID, "path marginals: tag out of range refused (%d)", st);
		tags[0] = keep;
		emis[0] = NAN;
		st = cai_crf_path_marginals_batch(&p, K, emis, len, B, T, m, tags, out, NULL, &err);
		CHECK(st == CAI_ERR_NUMERIC, "path marginals: NaN emission refused (%d)", st);
		st = cai_crf_path_marginals_batch(&p, K, emis, len, B, T, m, tags, NULL, NULL, &err);
		CHECK(st == CAI_ERR_INVALID, "path marginals: no output refused (%d)", st);
	}
	free(pslab);
	free(emis);
	free(len);
	free(tags);
	free(out);
	free(marg);
	free(work);
}

static void
test_crf(void)
{
	static const char *const iob[] = {"O", "B-X", "I-X", "B-Y", "I-Y"};
	static const char *const bioes[] = {"O", "B-X", "I-X", "E-X", "S-X"};
	test_mask	mi,
				mb;
	cai_error	err;

	build_mask(&mi, CAI_TAGS_IOB2, iob, 5, &err);
	build_mask(&mb, CAI_TAGS_BIOES, bioes, 5, &err);

	for (int T = 1; T <= 5; T++)
		crf_brute_check(3, T, NULL, 1.0f);
	crf_brute_check(4, 5, NULL, 2.0f);
	crf_brute_check(2, 7, NULL, 3.0f);
	for (int T = 1; T <= 5; T++)
	{
		crf_brute_check(5, T, &mi.m, 1.5f);
		crf_brute_check(5, T, &mb.m, 1.5f);
	}
	/* scores spread over hundreds of nats: the underflow fallbacks */
	crf_brute_check(4, 5, NULL, 300.0f);
	crf_brute_check(5, 5, &mb.m, 500.0f);

	crf_brute_grad_check(3, 4, NULL, 1.0f);
	crf_brute_grad_check(5, 5, &mi.m, 1.0f);
	crf_brute_grad_check(5, 4, &mb.m, 2.0f);
	for (int rep = 0; rep < 4; rep++)
	{
		crf_brute_grad_check(4, 5, NULL, 300.0f);
		crf_brute_grad_check(5, 5, &mb.m, 400.0f);
	}

	{
		static const int32_t tags[6] = {1, 2, 0, 3, 4, 4};	/* valid IOB2 */
		static const int32_t tags1[1] = {2};

		test_crf_grad(NULL, tags, 5, 6);
		test_crf_grad(NULL, tags1, 5, 1);
		test_crf_grad(&mi.m, tags, 5, 6);
	}
	test_crf_masks();
	test_crf_viterbi_valid();
	test_crf_batch_and_errors();
	crf_path_marginals_check(3, 4, 9, NULL, 1.0f);
	crf_path_marginals_check(5, 16, 40, &mi.m, 1.5f);
	crf_path_marginals_check(5, 8, 60, &mb.m, 3.0f);
	crf_path_marginals_check(7, 32, 25, NULL, 5.0f);
	/* scores spread over hundreds of nats: some sequences take the log-domain passes */
	crf_path_marginals_check(4, 8, 20, NULL, 300.0f);
	crf_path_marginals_check(5, 8, 20, &mi.m, 500.0f);
}

int
main(void)
{
	cai_blas_set_threads(1);
	cai_rng_seed(&rng, 20240611);

	{
		static const int32_t len[] = {5, 1, 3, 0};

		test_lstm_grad(false, false, 4, 5, 4, 3, len);
		test_lstm_grad(false, true, 4, 5, 4, 3, len);
		test_lstm_grad(true, false, 4, 5, 4, 3, len);
	}
	{
		/*
		 * The recurrent products' tiles (6 rows, 16 columns) and their
		 * edges: 13 rows at the first steps (6 + 6 + 1), 4H = 80 columns
		 * (5 panels) forward, H = 20 (a panel and 4 columns) backward.
		 */
		static const int32_t len[] = {6, 6, 5, 6, 2, 6, 0, 6, 3, 6, 6, 1, 6};

		test_lstm_grad(true, false, 13, 6, 3, 20, len);
	}
	{
		static const int32_t len5[] = {4, 7, 1, 0, 6};
		static const int32_t len13[] = {9, 9, 4, 9, 8, 0, 9, 1, 9, 9, 7, 9, 3};

		test_lstm_reference_and_padding(5, 7, 11, 6, 8, len5);
		test_lstm_reference_and_padding(13, 9, 12, 5, 20, len13);
	}
	test_lstm_infer_proj();
	test_lstm_misc();
	test_lstm_errors();
	test_crf();
	return check_summary("test_seq");
}
