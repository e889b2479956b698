/*
 * test_ops.c: finite-difference gradient checks for every op in ops.h,
 * optimizer / clipping / schedule / slab tests and a small end-to-end
 * training run (2-layer MLP on a seeded XOR-like dataset) with a
 * bit-identical determinism check.
 */
#include "cai/ops.h"
#include "cai/optim.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "../../src/core/blas.h"

#define EPS 1e-3f
#define RTOL 1e-2f
#define ATOL 1e-3f

typedef double (*loss_fn) (void *ctx);

/* Central differences of f with respect to x[0..n), in double. */
static void
numgrad(loss_fn f, void *ctx, float *x, size_t n, float *g)
{
	for (size_t i = 0; i < n; i++)
	{
		float		old = x[i];
		float		xp = old + EPS;
		float		xm = old - EPS;
		double		lp,
					lm;

		x[i] = xp;
		lp = f(ctx);
		x[i] = xm;
		lm = f(ctx);
		x[i] = old;
		g[i] = (float) ((lp - lm) / ((double) xp - (double) xm));
	}
}

/* sum(out * r): the scalar every gradient check differentiates */
static double
dot(const float *out, const float *r, size_t n)
{
	double		s = 0.0;

	for (size_t i = 0; i < n; i++)
		s += (double) out[i] * (double) r[i];
	return s;
}

static void
fill_uniform(float *x, size_t n, float a, cai_rng *rng)
{
	cai_init_uniform(x, n, a, rng);
}

/* Compare analytic and numeric gradients with the test tolerance. */
#define GRADCHECK(what, f, ctx, x, n, analytic) \
	do { \
		float	   *ng_ = calloc((n), sizeof(float)); \
		numgrad((f), (ctx), (x), (n), ng_); \
		CHECK_CLOSE((what), (analytic), ng_, (n), RTOL, ATOL); \
		free(ng_); \
	} while (0)

/* ---------------------------------------------------------------------
 * Linear
 */
#define LN 4
#define LIC 5
#define LOC 3

typedef struct
{
	float		inp[LN * LIC];
	float		w[LOC * LIC];
	float		b[LOC];
	float		out[LN * LOC];
	float		r[LN * LOC];
	bool		use_bias;
} linear_ctx;

static double
linear_loss(void *p)
{
	linear_ctx *c = p;

	cai_linear_forward(c->out, c->inp, c->w, c->use_bias ? c->b : NULL, LN, LIC, LOC);
	return dot(c->out, c->r, LN * LOC);
}

static void
test_linear(cai_rng *rng)
{
	linear_ctx	c;
	float		dinp[LN * LIC] = {0};
	float		dw[LOC * LIC] = {0};
	float		db[LOC] = {0};
	float		ref[LN * LOC];

	fill_uniform(c.inp, LN * LIC, 1.0f, rng);
	fill_uniform(c.w, LOC * LIC, 1.0f, rng);
	fill_uniform(c.b, LOC, 1.0f, rng);
	fill_uniform(c.r, LN * LOC, 1.0f, rng);
	c.use_bias = true;

	/* forward against a naive loop */
	linear_loss(&c);
	for (int n = 0; n < LN; n++)
		for (int o = 0; o < LOC; o++)
		{
			double		s = c.b[o];

			for (int i = 0; i < LIC; i++)
				s += (double) c.inp[n * LIC + i] * c.w[o * LIC + i];
			ref[n * LOC + o] = (float) s;
		}
	CHECK_CLOSE("linear out", c.out, ref, LN * LOC, 1e-5f, 1e-5f);

	cai_linear_backward(dinp, dw, db, c.r, c.inp, c.w, LN, LIC, LOC);
	GRADCHECK("linear dinp", linear_loss, &c, c.inp, LN * LIC, dinp);
	GRADCHECK("linear dweight", linear_loss, &c, c.w, LOC * LIC, dw);
	GRADCHECK("linear dbias", linear_loss, &c, c.b, LOC, db);

	/* backward accumulates: a second call doubles the gradients */
	{
		float		db2[LOC];

		for (int o = 0; o < LOC; o++)
			db2[o] = 2.0f * db[o];
		cai_linear_backward(NULL, NULL, db, c.r, c.inp, c.w, LN, LIC, LOC);
		CHECK_CLOSE("linear dbias accumulates", db, db2, LOC, 1e-6f, 1e-6f);
	}

	/* no bias */
	c.use_bias = false;
	memset(dinp, 0, sizeof(dinp));
	memset(dw, 0, sizeof(dw));
	cai_linear_backward(dinp, dw, NULL, c.r, c.inp, c.w, LN, LIC, LOC);
	GRADCHECK("linear dinp (no bias)", linear_loss, &c, c.inp, LN * LIC, dinp);
	GRADCHECK("linear dweight (no bias)", linear_loss, &c, c.w, LOC * LIC, dw);
}

/* ---------------------------------------------------------------------
 * Activations
 */
#define AN 24

typedef struct
{
	float		x[AN];
	float		out[AN];
	float		r[AN];
	int			which;			/* 0 tanh, 1 sigmoid, 2 relu */
} act_ctx;

static double
act_loss(void *p)
{
	act_ctx    *c = p;

	if (c->which == 0)
		cai_tanh_forward(c->out, c->x, AN);
	else if (c->which == 1)
		cai_sigmoid_forward(c->out, c->x, AN);
	else
		cai_relu_forward(c->out, c->x, AN);
	return dot(c->out, c->r, AN);
}

static void
test_activations(cai_rng *rng)
{
	static const char *names[] = {"tanh dinp", "sigmoid dinp", "relu dinp"};

	for (int which = 0; which < 3; which++)
	{
		act_ctx		c;
		float		dx[AN] = {0};

		fill_uniform(c.x, AN, 3.0f, rng);
		/* keep relu away from its kink */
		for (int i = 0; i < AN; i++)
			if (fabsf(c.x[i]) < 0.05f)
				c.x[i] = 0.1f;
		fill_uniform(c.r, AN, 1.0f, rng);
		c.which = which;
		act_loss(&c);
		if (which == 0)
			cai_tanh_backward(dx, c.r, c.out, AN);
		else if (which == 1)
			cai_sigmoid_backward(dx, c.r, c.out, AN);
		else
			cai_relu_backward(dx, c.r, c.out, AN);
		GRADCHECK(names[which], act_loss, &c, c.x, AN, dx);
	}

	/* sigmoid is finite and exact at the extremes */
	{
		float		x[4] = {-1000.0f, -50.0f, 50.0f, 1000.0f};
		float		y[4];

		cai_sigmoid_forward(y, x, 4);
		CHECK(y[0] == 0.0f && y[3] == 1.0f && y[1] >= 0.0f && y[2] <= 1.0f,
			  "sigmoid extremes %g %g %g %g", y[0], y[1], y[2], y[3]);
	}
}

/* ---------------------------------------------------------------------
 * Softmax + cross-entropy
 */
#define SN 5
#define SC 4

typedef struct
{
	float		logits[SN * SC];
	float		probs[SN * SC];
	int32_t		targets[SN];
	float		scale;
} xent_ctx;

static double
xent_loss(void *p)
{
	xent_ctx   *c = p;
	double		loss = 0.0;

	cai_softmax_xent_forward(c->probs, &loss, c->logits, c->targets, SN, SC, c->scale, NULL);
	return loss;
}

static void
test_softmax_xent(cai_rng *rng)
{
	xent_ctx	c;
	float		dl[SN * SC] = {0};
	double		loss,
				want = 0.0;
	cai_error	err;

	fill_uniform(c.logits, SN * SC, 2.0f, rng);
	c.targets[0] = 1;
	c.targets[1] = 0;
	c.targets[2] = CAI_IGNORE_TARGET;
	c.targets[3] = 3;
	c.targets[4] = 2;
	c.scale = 1.0f / 4.0f;		/* mean over the 4 non-ignored rows */

	loss = xent_loss(&c);
	for (int n = 0; n < SN; n++)
	{
		double		sum = 0.0;

		if (c.targets[n] < 0)
			continue;
		for (int k = 0; k < SC; k++)
			sum += exp(c.logits[n * SC + k]);
		want += -log(exp(c.logits[n * SC + c.targets[n]]) / sum);
	}
	want /= 4.0;
	CHECK(fabs(loss - want) < 1e-5, "xent loss %.9g want %.9g", loss, want);

	cai_softmax_xent_backward(dl, c.probs, c.targets, SN, SC, c.scale);
	GRADCHECK("softmax-xent dlogits", xent_loss, &c, c.logits, SN * SC, dl);
	for (int k = 0; k < SC; k++)
		CHECK(dl[2 * SC + k] == 0.0f, "ignored row got gradient %g", dl[2 * SC + k]);

	/* rows of probs sum to 1; huge logits stay finite */
	{
		float		big[2 * 3] = {1000.0f, 0.0f, -1000.0f, 88.0f, 89.0f, 90.0f};
		float		pb[2 * 3];
		int32_t		t[2] = {2, 0};
		double		l;

		CHECK(cai_softmax_xent_forward(pb, &l, big, t, 2, 3, 1.0f, &err) == CAI_OK, "%s", err.msg);
		CHECK(isfinite(l) && l > 1999.0 && l < 2003.0, "stable loss %g", l);
		CHECK(fabsf(pb[3] + pb[4] + pb[5] - 1.0f) < 1e-6f, "probs sum");
		CHECK(pb[0] == 1.0f && pb[2] == 0.0f, "saturated probs %g %g", pb[0], pb[2]);
	}

	/* in place (probs aliases logits) gives the same loss */
	{
		float		x[SN * SC];
		double		l2;

		loss = xent_loss(&c);	/* the gradient check left probs of a perturbed input */
		memcpy(x, c.logits, sizeof(x));
		cai_softmax_xent_forward(x, &l2, x, c.targets, SN, SC, c.scale, NULL);
		CHECK(l2 == loss, "in-place loss %.9g vs %.9g", l2, loss);
		CHECK(memcmp(x, c.probs, sizeof(x)) == 0, "in-place probs differ");
	}

	/* bad target */
	{
		int32_t		bad[SN] = {0, 1, 4, 0, 0};
		float		pr[SN * SC];

		CHECK(cai_softmax_xent_forward(pr, NULL, c.logits, bad, SN, SC, 1.0f, &err) == CAI_ERR_INVALID,
			  "target 4 of 4 classes accepted");
		bad[2] = -2;
		CHECK(cai_softmax_xent_forward(pr, NULL, c.logits, bad, SN, SC, 1.0f, &err) == CAI_ERR_INVALID,
			  "target -2 accepted");
	}
	CHECK(cai_argmax((float[]) {1, 3, 3, 2}, 4) == 1, "argmax first on ties");
}

/* ---------------------------------------------------------------------
 * Dropout
 */
#define DN 64

typedef struct
{
	float		x[DN];
	float		out[DN];
	uint8_t		mask[DN];
	float		r[DN];
	float		p;
} drop_ctx;

static double
drop_loss(void *p)
{
	drop_ctx   *c = p;
	cai_rng		rng;

	cai_rng_seed(&rng, 77);		/* same seed: same mask every call */
	cai_dropout_forward(c->out, c->mask, c->x, DN, c->p, true, &rng, NULL);
	return dot(c->out, c->r, DN);
}

static void
test_dropout(cai_rng *rng)
{
	drop_ctx	c;
	float		dx[DN] = {0};
	cai_error	err;
	int			kept = 0;

	fill_uniform(c.x, DN, 1.0f, rng);
	fill_uniform(c.r, DN, 1.0f, rng);
	c.p = 0.3f;
	drop_loss(&c);
	for (int i = 0; i < DN; i++)
	{
		kept += c.mask[i];
		if (!(c.mask[i] ? fabsf(c.out[i] - c.x[i] / 0.7f) < 1e-6f : c.out[i] == 0.0f))
		{
			CHECK(false, "dropout out[%d] = %g for x %g mask %d", i, c.out[i], c.x[i], c.mask[i]);
			break;
		}
	}
	CHECK(kept > 0 && kept < DN, "dropout kept %d of %d", kept, DN);
	cai_dropout_backward(dx, c.r, c.mask, DN, c.p, true);
	GRADCHECK("dropout dinp", drop_loss, &c, c.x, DN, dx);

	/* p = 0 and eval mode are the identity, in place too, without draws */
	{
		float		y[DN];
		float		dy[DN] = {0};
		cai_rng		r1,
					r2;

		cai_rng_seed(&r1, 5);
		r2 = r1;
		CHECK(cai_dropout_forward(y, NULL, c.x, DN, 0.0f, true, &r1, &err) == CAI_OK, "%s", err.msg);
		CHECK(memcmp(y, c.x, sizeof(y)) == 0, "p = 0 is not the identity");
		CHECK(cai_dropout_forward(y, NULL, y, DN, 0.5f, false, NULL, &err) == CAI_OK, "%s", err.msg);
		CHECK(memcmp(y, c.x, sizeof(y)) == 0, "eval mode is not the identity");
		CHECK(memcmp(&r1, &r2, sizeof(r1)) == 0, "identity dropout drew random numbers");
		cai_dropout_backward(dy, c.r, NULL, DN, 0.5f, false);
		CHECK(memcmp(dy, c.r, sizeof(dy)) == 0, "eval backward is not the identity");
	}
	CHECK(cai_dropout_forward(c.out, c.mask, c.x, DN, 1.0f, true, rng, &err) == CAI_ERR_INVALID, "p = 1 accepted");
	CHECK(cai_dropout_forward(c.out, c.mask, c.x, DN, -0.1f, true, rng, &err) == CAI_ERR_INVALID, "p < 0 accepted");
	CHECK(cai_dropout_forward(c.out, c.mask, c.x, DN, NAN, true, rng, &err) == CAI_ERR_INVALID, "p NaN accepted");

	/* keep rate close to 1 - p on many elements */
	{
		size_t		n = 100000;
		float	   *x = calloc(n, sizeof(float));
		uint8_t    *m = calloc(n, 1);
		size_t		k = 0;

		cai_dropout_forward(x, m, x, n, 0.25f, true, rng, NULL);
		for (size_t i = 0; i < n; i++)
			k += m[i];
		CHECK(fabs((double) k / n - 0.75) < 0.01, "keep rate %g", (double) k / n);
		free(x);
		free(m);
	}
}

/* ---------------------------------------------------------------------
 * Embedding and embedding bag
 */
#define EV 6
#define ED 3
#define EN 5

typedef struct
{
	float		w[EV * ED];
	int32_t		ids[EN];
	int32_t		offsets[4];
	float		out[EN * ED];
	float		r[EN * ED];
	bool		bag;
} emb_ctx;

static double
emb_loss(void *p)
{
	emb_ctx    *c = p;

	if (c->bag)
	{
		cai_embedding_bag_mean_forward(c->out, c->w, c->ids, c->offsets, 3, EV, ED, NULL);
		return dot(c->out, c->r, 3 * ED);
	}
	cai_embedding_forward(c->out, c->w, c->ids, EN, EV, ED, NULL);
	return dot(c->out, c->r, EN * ED);
}

static void
test_embedding(cai_rng *rng)
{
	emb_ctx		c;
	float		dw[EV * ED] = {0};
	cai_rowset	rs;
	cai_error	err;
	int32_t		ids[EN] = {4, 1, 4, 0, 2};

	fill_uniform(c.w, EV * ED, 1.0f, rng);
	fill_uniform(c.r, EN * ED, 1.0f, rng);
	memcpy(c.ids, ids, sizeof(ids));
	c.bag = false;

	CHECK(cai_rowset_init(&rs, EV, &err) == CAI_OK, "%s", err.msg);
	emb_loss(&c);
	CHECK(memcmp(c.out + 2 * ED, c.w + 4 * ED, ED * sizeof(float)) == 0, "embedding row gathered");
	cai_embedding_backward(dw, &rs, c.r, c.ids, EN, EV, ED);
	GRADCHECK("embedding dweight", emb_loss, &c, c.w, EV * ED, dw);
	CHECK(rs.count == 4 && rs.list[0] == 4 && rs.list[1] == 1 && rs.list[2] == 0 && rs.list[3] == 2,
		  "touched rows: count %d", rs.count);
	CHECK(rs.flags[3] == 0 && rs.flags[5] == 0 && rs.flags[4] == 1, "touched flags");
	cai_rowset_clear(&rs);
	CHECK(rs.count == 0 && rs.flags[4] == 0, "rowset clear");

	/* out-of-range ids are refused, not read */
	{
		int32_t		bad[2] = {0, EV};
		float		o[2 * ED];

		CHECK(cai_embedding_forward(o, c.w, bad, 2, EV, ED, &err) == CAI_ERR_INVALID, "id V accepted");
		bad[1] = -1;
		CHECK(cai_embedding_forward(o, c.w, bad, 2, EV, ED, &err) == CAI_ERR_INVALID, "id -1 accepted");
		memset(dw, 0, sizeof(dw));
		cai_embedding_backward(dw, &rs, o, bad, 2, EV, ED);	/* skips -1 */
		CHECK(rs.count == 1, "backward recorded %d rows", rs.count);
		cai_rowset_clear(&rs);
	}

	/* bag: {1, 4, 4}, {}, {0, 2} */
	{
		int32_t		offs[4] = {0, 3, 3, 5};
		int32_t		bids[EN] = {1, 4, 4, 0, 2};
		float		want[ED];

		c.bag = true;
		memcpy(c.ids, bids, sizeof(bids));
		memcpy(c.offsets, offs, sizeof(offs));
		memset(dw, 0, sizeof(dw));
		emb_loss(&c);
		for (int d = 0; d < ED; d++)
			want[d] = (c.w[1 * ED + d] + 2.0f * c.w[4 * ED + d]) / 3.0f;
		CHECK_CLOSE("bag mean", c.out, want, ED, 1e-6f, 1e-6f);
		CHECK(c.out[ED] == 0.0f && c.out[ED + 1] == 0.0f, "empty bag is zero");
		cai_embedding_bag_mean_backward(dw, &rs, c.r, c.ids, c.offsets, 3, EV, ED);
		GRADCHECK("embedding bag dweight", emb_loss, &c, c.w, EV * ED, dw);
		CHECK(rs.count == 4, "bag touched %d rows", rs.count);

		offs[0] = 1;
		CHECK(cai_embedding_bag_mean_forward(c.out, c.w, bids, offs, 3, EV, ED, &err) == CAI_ERR_INVALID,
			  "offsets not starting at 0 accepted");
		offs[0] = 0;
		offs[2] = 2;
		CHECK(cai_embedding_bag_mean_forward(c.out, c.w, bids, offs, 3, EV, ED, &err) == CAI_ERR_INVALID,
			  "decreasing offsets accepted");
		offs[2] = 3;
		bids[4] = 99;
		CHECK(cai_embedding_bag_mean_forward(c.out, c.w, bids, offs, 3, EV, ED, &err) == CAI_ERR_INVALID,
			  "bag id 99 accepted");
	}
	cai_rowset_free(&rs);
}

/*
 * cai_embedding_bag_mean_backward_part: the parts' rows together are the
 * whole backward, bit for bit (60 bags of up to 9 ids over 37 rows of
 * width 13, some ids out of range), every touched row flagged and listed
 * once, by the part that owns it; in 2, 3 and 4 parts (a power of two takes
 * a row's class with a mask).
 */
static void
test_embedding_bag_parts(cai_rng *rng, int n_parts)
{
	enum
	{
		PB = 60, PV = 37, PD = 13, MAX_PARTS = 4
	};
	int32_t		offs[PB + 1];
	int32_t		ids[PB * 9];
	float	   *dout = malloc(sizeof(float) * PB * PD);
	float	   *whole = calloc(PV * PD, sizeof(float));
	float	   *parts = calloc(PV * PD, sizeof(float));
	uint8_t		flags[PV] = {0};
	int32_t		list[MAX_PARTS][PV];
	int32_t		count[MAX_PARTS] = {0};
	int			listed = 0;
	bool		ok = true;
	cai_rowset	rs;
	cai_error	err;

	offs[0] = 0;
	for (int b = 0; b < PB; b++)
	{
		int			n = (int) (cai_rng_u64(rng) % 10);

		for (int j = 0; j < n; j++)
			ids[offs[b] + j] = (int32_t) (cai_rng_u64(rng) % (PV + 2)) - 1;	/* -1 and PV: skipped */
		offs[b + 1] = offs[b] + n;
	}
	for (int i = 0; i < PB * PD; i++)
		dout[i] = cai_rng_uniform(rng) * 2.0f - 1.0f;
	CHECK(cai_rowset_init(&rs, PV, &err) == CAI_OK, "%s", err.msg);
	cai_embedding_bag_mean_backward(whole, &rs, dout, ids, offs, PB, PV, PD);
	for (int p = 0; p < n_parts; p++)
		cai_embedding_bag_mean_backward_part(parts, flags, list[p], &count[p], dout, ids, offs, PB, PV, PD,
											 p, n_parts);
	CHECK(memcmp(whole, parts, sizeof(float) * PV * PD) == 0, "bag backward by %d parts differs from the whole",
		  n_parts);
	for (int p = 0; p < n_parts; p++)
		for (int i = 0; i < count[p]; i++)
		{
			ok &= list[p][i] % n_parts == p && rs.flags[list[p][i]];
			listed++;
		}
	for (int r = 0; r < PV; r++)
		ok &= flags[r] == rs.flags[r];
	CHECK(ok && listed == rs.count, "bag backward by %d parts: %d rows listed, %d touched", n_parts, listed,
		  rs.count);
	cai_rowset_free(&rs);
	free(dout);
	free(whole);
	free(parts);
}

/* cai_sumsq (eight running sums) against a plain double sum, every tail length */
static void
test_sumsq(cai_rng *rng)
{
	float		x[203];
	bool		ok = true;

	for (int i = 0; i < 203; i++)
		x[i] = (cai_rng_uniform(rng) - 0.5f) * 1e3f;
	for (size_t n = 0; n <= 203; n += n < 20 ? 1 : 61)
	{
		double		ref = 0.0;
		double		got = cai_sumsq(x, n);

		for (size_t i = 0; i < n; i++)
			ref += (double) x[i] * (double) x[i];
		ok &= fabs(got - ref) <= 1e-12 * ref;
	}
	CHECK(ok, "sumsq differs from the plain sum");
	CHECK(cai_sumsq(x, 0) == 0.0, "sumsq of nothing");
}

/* ---------------------------------------------------------------------
 * Conv1d + max-pool
 */
#define CT 7
#define CCI 3
#define CCO 4
#define CK 3

typedef struct
{
	float		inp[CT * CCI];
	float		w[CCO * CK * CCI];
	float		b[CCO];
	float		pooled[CCO];
	int32_t		argmax[CCO];
	float		r[CCO];
	float	   *scratch;
	int			T;
	int			K;
	cai_padding pad;
} conv_ctx;

static double
conv_loss(void *p)
{
	conv_ctx   *c = p;

	cai_conv1d_maxpool_forward(c->pooled, c->argmax, c->scratch, c->inp, c->w, c->b,
							   c->T, CCI, CCO, c->K, c->pad, NULL);
	return dot(c->pooled, c->r, CCO);
}

/* naive reference: conv then max over time */
static void
conv_ref(const conv_ctx *c, float *pooled, int32_t *argmax)
{
	int			T_out = cai_conv1d_out_len(c->T, c->K, c->pad);
	int			pl = c->pad == CAI_PAD_SAME ? (c->K - 1) / 2 : 0;

	for (int o = 0; o < CCO; o++)
	{
		for (int t = 0; t < T_out; t++)
		{
			double		s = c->b[o];

			for (int k = 0; k < c->K; k++)
			{
				int			src = t + k - pl;

				if (src < 0 || src >= c->T)
					continue;
				for (int i = 0; i < CCI; i++)
					s += (double) c->w[(o * c->K + k) * CCI + i] * c->inp[src * CCI + i];
			}
			if (t == 0 || (float) s > pooled[o])
			{
				pooled[o] = (float) s;
				argmax[o] = t;
			}
		}
	}
}

static void
test_conv1d(cai_rng *rng)
{
	static const struct
	{
		int			T;
		int			K;
		cai_padding pad;
		const char *name;
	}			cases[] = {
		{CT, CK, CAI_PAD_VALID, "valid K3"},
		{CT, CK, CAI_PAD_SAME, "same K3"},
		{CT, 2, CAI_PAD_SAME, "same K2"},
		{2, CK, CAI_PAD_SAME, "same T2 K3"},
		{CK, CK, CAI_PAD_VALID, "valid T=K"},
	};
	cai_error	err;

	for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
	{
		conv_ctx	c;
		size_t		nf;
		float		dinp[CT * CCI] = {0};
		float		dw[CCO * CK * CCI] = {0};
		float		db[CCO] = {0};
		float		refp[CCO];
		int32_t		refa[CCO];
		char		what[64];
		cai_status	st;

		c.T = cases[ci].T;
		c.K = cases[ci].K;
		c.pad = cases[ci].pad;
		fill_uniform(c.inp, CT * CCI, 1.0f, rng);
		fill_uniform(c.w, CCO * CK * CCI, 1.0f, rng);
		fill_uniform(c.b, CCO, 0.5f, rng);
		fill_uniform(c.r, CCO, 1.0f, rng);
		CHECK(cai_conv1d_scratch_floats(c.T, CCI, CCO, c.K, c.pad, &nf), "scratch size %s", cases[ci].name);
		c.scratch = calloc(nf, sizeof(float));
		st = cai_conv1d_maxpool_forward(c.pooled, c.argmax, c.scratch, c.inp, c.w, c.b,
										c.T, CCI, CCO, c.K, c.pad, &err);
		CHECK(st == CAI_OK, "conv %s: %s", cases[ci].name, err.msg);
		conv_ref(&c, refp, refa);
		snprintf(what, sizeof(what), "conv %s pooled", cases[ci].name);
		CHECK_CLOSE(what, c.pooled, refp, CCO, 1e-5f, 1e-5f);
		CHECK(memcmp(c.argmax, refa, sizeof(refa)) == 0, "conv %s argmax", cases[ci].name);

		cai_conv1d_maxpool_backward(dinp, dw, db, c.r, c.argmax, c.inp, c.w,
									c.T, CCI, CCO, c.K, c.pad);
		snprintf(what, sizeof(what), "conv %s dinp", cases[ci].name);
		GRADCHECK(what, conv_loss, &c, c.inp, (size_t) c.T * CCI, dinp);
		snprintf(what, sizeof(what), "conv %s dweight", cases[ci].name);
		GRADCHECK(what, conv_loss, &c, c.w, (size_t) CCO * c.K * CCI, dw);
		snprintf(what, sizeof(what), "conv %s dbias", cases[ci].name);
		GRADCHECK(what, conv_loss, &c, c.b, CCO, db);
		free(c.scratch);
	}

	{
		float		dummy[64];
		float		pooled[CCO];
		int32_t		am[CCO];
		size_t		nf;

		CHECK(!cai_conv1d_scratch_floats(2, CCI, CCO, 3, CAI_PAD_VALID, &nf), "T < K valid sized");
		CHECK(cai_conv1d_maxpool_forward(pooled, am, dummy, dummy, dummy, NULL, 2, CCI, CCO, 3,
										 CAI_PAD_VALID, &err) == CAI_ERR_INVALID, "T < K valid accepted");
		CHECK(cai_conv1d_maxpool_forward(pooled, am, dummy, dummy, dummy, NULL, 0, CCI, CCO, 3,
										 CAI_PAD_SAME, &err) == CAI_ERR_INVALID, "T = 0 accepted");
		CHECK(cai_conv1d_out_len(5, 4, CAI_PAD_SAME) == 5 && cai_conv1d_out_len(5, 4, CAI_PAD_VALID) == 2,
			  "out_len");
	}
}

/* ---------------------------------------------------------------------
 * Mean / max pooling
 */
#define PT 6
#define PC 5

typedef struct
{
	float		inp[PT * PC];
	float		out[PC];
	int32_t		argmax[PC];
	float		r[PC];
	bool		max;
} pool_ctx;

static double
pool_loss(void *p)
{
	pool_ctx   *c = p;

	if (c->max)
		cai_maxpool_forward(c->out, c->argmax, c->inp, PT, PC);
	else
		cai_meanpool_forward(c->out, c->inp, PT, PC);
	return dot(c->out, c->r, PC);
}

static void
test_pool(cai_rng *rng)
{
	for (int mx = 0; mx < 2; mx++)
	{
		pool_ctx	c;
		float		dx[PT * PC] = {0};

		fill_uniform(c.inp, PT * PC, 1.0f, rng);
		fill_uniform(c.r, PC, 1.0f, rng);
		c.max = mx;
		pool_loss(&c);
		if (mx)
			cai_maxpool_backward(dx, c.r, c.argmax, PT, PC);
		else
			cai_meanpool_backward(dx, c.r, PT, PC);
		GRADCHECK(mx ? "maxpool dinp" : "meanpool dinp", pool_loss, &c, c.inp, PT * PC, dx);
	}
	{
		float		out[2] = {9, 9};
		int32_t		am[2] = {9, 9};

		cai_maxpool_forward(out, am, NULL, 0, 2);
		CHECK(out[0] == 0.0f && am[1] == 0, "empty max pool");
		cai_meanpool_forward(out, NULL, 0, 2);
		CHECK(out[0] == 0.0f && out[1] == 0.0f, "empty mean pool");
	}
}

/* ---------------------------------------------------------------------
 * Optimizers, clipping, schedule
 */

static void
test_optimizers(void)
{
	/* SGD with momentum, by hand */
	{
		float		p[1] = {1.0f};
		float		g[1] = {0.5f};
		float		buf[1] = {0.0f};

		cai_sgd_step(p, g, buf, 1, 0.1f, 0.9f, 0.0f);
		CHECK(fabsf(p[0] - 0.95f) < 1e-6f && fabsf(buf[0] - 0.5f) < 1e-6f, "sgd step 1: p %g buf %g", p[0], buf[0]);
		cai_sgd_step(p, g, buf, 1, 0.1f, 0.9f, 0.0f);
		/* buf = 0.9 * 0.5 + 0.5 = 0.95; p = 0.95 - 0.095 = 0.855 */
		CHECK(fabsf(p[0] - 0.855f) < 1e-6f && fabsf(buf[0] - 0.95f) < 1e-6f, "sgd step 2: p %g buf %g", p[0], buf[0]);
		/* weight decay 0.1, no momentum: g' = 0.5 + 0.0855 = 0.5855, p = 0.855 - 0.05855 */
		cai_sgd_step(p, g, NULL, 1, 0.1f, 0.0f, 0.1f);
		CHECK(fabsf(p[0] - 0.79645f) < 1e-6f, "sgd weight decay: p %g", p[0]);
	}

	/* Adam and AdamW: first step moves every parameter by about lr * sign(g) */
	{
		float		p[3] = {1.0f, -2.0f, 0.5f};
		float		g[3] = {0.3f, -4.0f, 0.0f};
		float		m[3] = {0},
					v[3] = {0};
		float		want1[3] = {1.0f - 0.01f, -2.0f + 0.01f, 0.5f};

		cai_adam_step(p, g, m, v, 3, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);
		CHECK_CLOSE("adam step 1", p, want1, 3, 1e-6f, 1e-6f);

		/* step 2 with g2: m = .9 m1 + .1 g2, v = .999 v1 + .001 g2^2, bias corrected */
		{
			float		g2[3] = {-0.1f, -4.0f, 1.0f};
			float		want2[3];

			for (int i = 0; i < 3; i++)
			{
				double		m1 = 0.1 * g[i],
							v1 = 0.001 * (double) g[i] * g[i];
				double		m2 = 0.9 * m1 + 0.1 * g2[i];
				double		v2 = 0.999 * v1 + 0.001 * (double) g2[i] * g2[i];
				double		mh = m2 / (1.0 - 0.81);
				double		vh = v2 / (1.0 - 0.999 * 0.999);

				want2[i] = (float) (want1[i] - 0.01 * mh / (sqrt(vh) + 1e-8));
			}
			cai_adam_step(p, g2, m, v, 3, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 2);
			CHECK_CLOSE("adam step 2", p, want2, 3, 1e-5f, 1e-6f);
		}
	}
	{
		float		p[2] = {2.0f, -1.0f};
		float		g[2] = {0.5f, 0.5f};
		float		m[2] = {0},
					v[2] = {0};
		/* AdamW: p -= lr * (sign(g) + wd * p) */
		float		want[2] = {2.0f - 0.1f * (1.0f + 0.5f * 2.0f), -1.0f - 0.1f * (1.0f + 0.5f * -1.0f)};

		cai_adamw_step(p, g, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.5f, 1);
		CHECK_CLOSE("adamw step 1", p, want, 2, 1e-6f, 1e-6f);
	}
	{
		float		p[2] = {2.0f, -0.5f};
		float		g[2] = {0.5f, 0.5f};
		float		m[2] = {0},
					v[2] = {0};
		/* Adam + L2: g' = g + wd * p = {2.5, 0}: p0 moves by lr, p1 stays */
		float		want[2] = {1.9f, -0.5f};

		cai_adam_step(p, g, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 1.0f, 1);
		CHECK_CLOSE("adam l2 step 1", p, want, 2, 1e-6f, 1e-6f);
		CHECK(fabsf(m[0] - 0.25f) < 1e-7f && m[1] == 0.0f, "adam l2 moments %g %g", m[0], m[1]);
	}

	/* config */
	{
		cai_optim_config c = cai_optim_defaults(CAI_OPTIM_ADAMW);
		cai_error	err;

		CHECK(cai_optim_check(&c, &err) == CAI_OK && cai_optim_state_slabs(&c) == 2, "adamw defaults");
		c.beta2 = 1.0f;
		CHECK(cai_optim_check(&c, &err) == CAI_ERR_INVALID, "beta2 = 1 accepted");
		c = cai_optim_defaults(CAI_OPTIM_SGD);
		CHECK(cai_optim_state_slabs(&c) == 1, "sgd momentum state");
		c.momentum = 0.0f;
		CHECK(cai_optim_state_slabs(&c) == 0, "plain sgd state");
		c.weight_decay = -1.0f;
		CHECK(cai_optim_check(&c, &err) == CAI_ERR_INVALID, "negative decay accepted");
	}

	/* clipping */
	{
		float		g[2] = {3.0f, 4.0f};
		float		want[2] = {0.6f, 0.8f};
		float		n;

		n = cai_clip_grad_norm(g, 2, 10.0f);
		CHECK(n == 5.0f && g[0] == 3.0f, "no clip below max: %g", n);
		n = cai_clip_grad_norm(g, 2, 1.0f);
		CHECK(n == 5.0f, "norm before clipping %g", n);
		CHECK_CLOSE("clipped", g, want, 2, 1e-6f, 1e-7f);
		n = cai_clip_grad_norm(g, 2, 0.0f);
		CHECK(fabsf(n - 1.0f) < 1e-6f, "max_norm 0 only measures: %g", n);
		g[1] = NAN;
		n = cai_clip_grad_norm(g, 2, 1e-3f);
		CHECK(isnan(n) && g[0] == want[0], "nan norm leaves grads");
	}

	/* schedule: warmup 10, total 110, base 1, min 0.1 */
	{
		struct
		{
			cai_lr_decay d;
			int64_t		step;
			float		want;
		}			s[] = {
			{CAI_LR_LINEAR, 0, 0.1f}, {CAI_LR_LINEAR, 4, 0.5f}, {CAI_LR_LINEAR, 9, 1.0f},
			{CAI_LR_LINEAR, 10, 1.0f}, {CAI_LR_LINEAR, 60, 0.55f}, {CAI_LR_LINEAR, 110, 0.1f},
			{CAI_LR_LINEAR, 500, 0.1f}, {CAI_LR_COSINE, 10, 1.0f}, {CAI_LR_COSINE, 60, 0.55f},
			{CAI_LR_COSINE, 35, 0.1f + 0.9f * 0.5f * (1.0f + 0.70710678f)}, {CAI_LR_COSINE, 110, 0.1f},
			{CAI_LR_CONSTANT, 3, 0.4f}, {CAI_LR_CONSTANT, 100, 1.0f},
		};

		for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		{
			float		lr = cai_lr_schedule(s[i].d, 1.0f, 0.1f, s[i].step, 10, 110);

			CHECK(fabsf(lr - s[i].want) < 1e-5f, "schedule %d step %lld: %g want %g",
				  (int) s[i].d, (long long) s[i].step, lr, s[i].want);
		}
		CHECK(cai_lr_schedule(CAI_LR_LINEAR, 1.0f, 0.0f, 0, 0, 100) == 1.0f, "no warmup starts at base");
	}
}

/* ---------------------------------------------------------------------
 * Slab
 */

static void *
failing_alloc(void *ctx, size_t size)
{
	return NULL;
}

static void
failing_free(void *ctx, void *ptr)
{
}

static void
test_slab(cai_rng *rng)
{
	cai_slab	s;
	cai_error	err;
	int			iw,
				ib,
				ie;
	size_t		bytes,
				bytes_inf;
	cai_optim_config cfg = cai_optim_defaults(CAI_OPTIM_ADAM);

	cai_slab_init(&s);
	CHECK(cai_slab_declare(&s, "emb", 2, (int64_t[]) {10, 3}, &ie, &err) == CAI_OK, "%s", err.msg);
	CHECK(cai_slab_declare(&s, "fc.weight", 2, (int64_t[]) {2, 3}, &iw, &err) == CAI_OK, "%s", err.msg);
	CHECK(cai_slab_declare(&s, "fc.bias", 1, (int64_t[]) {2}, &ib, &err) == CAI_OK, "%s", err.msg);
	CHECK(cai_slab_declare(&s, "fc.bias", 1, (int64_t[]) {2}, NULL, &err) == CAI_ERR_INVALID, "duplicate accepted");
	CHECK(cai_slab_declare(&s, "zero", 2, (int64_t[]) {0, 3}, NULL, &err) == CAI_ERR_INVALID, "zero dim accepted");
	CHECK(cai_slab_declare(&s, "huge", 3, (int64_t[]) {INT64_MAX / 2, 1 << 20, 1 << 20}, NULL, &err) != CAI_OK,
		  "overflowing shape accepted");
	CHECK(cai_slab_declare(&s, "", 1, (int64_t[]) {1}, NULL, &err) == CAI_ERR_INVALID, "empty name accepted");
	CHECK(cai_slab_declare(&s, "x", 5, (int64_t[]) {1, 1, 1, 1, 1}, NULL, &err) == CAI_ERR_INVALID, "5 dims accepted");
	CHECK(s.n_params == 3 && cai_slab_find(&s, "fc.weight") == iw && cai_slab_find(&s, "nope") == -1, "find");
	CHECK(cai_slab_set_sparse(&s, ie, &err) == CAI_OK, "%s", err.msg);
	CHECK(s.numel == 32 + 16 + 16, "numel %zu", s.numel);

	CHECK(cai_slab_bytes(&s, true, 2, &bytes, &err) == CAI_OK, "%s", err.msg);
	CHECK(cai_slab_bytes(&s, false, 0, &bytes_inf, &err) == CAI_OK, "%s", err.msg);
	CHECK(bytes == 64 * 4 * 4 + 64 + 10 * 5 && bytes_inf == 64 * 4 + 64, "bytes %zu / %zu", bytes, bytes_inf);
	CHECK(cai_slab_alloc(&s, true, 2, bytes - 1, &err) == CAI_ERR_LIMIT, "limit not enforced");
	CHECK(s.data == NULL, "refused slab allocated");
	CHECK(cai_slab_alloc(&s, true, 2, bytes, &err) == CAI_OK, "%s", err.msg);
	CHECK(cai_slab_declare(&s, "late", 1, (int64_t[]) {1}, NULL, &err) == CAI_ERR_INVALID, "declare after alloc");

	for (int i = 0; i < s.n_params; i++)
		CHECK(((uintptr_t) cai_slab_data(&s, i) & 63) == 0 && ((uintptr_t) cai_slab_grad(&s, i) & 63) == 0,
			  "param %d not 64-byte aligned", i);
	CHECK(cai_slab_rowset(&s, ie) != NULL && cai_slab_rowset(&s, iw) == NULL, "rowsets");
	CHECK(s.params[iw].decay && !s.params[ib].decay, "default decay flags");

	/* load */
	{
		float		wv[6] = {1, 2, 3, 4, 5, 6};

		CHECK(cai_slab_load(&s, "fc.weight", 2, (int64_t[]) {2, 3}, wv, &err) == CAI_OK, "%s", err.msg);
		CHECK(memcmp(cai_slab_data(&s, iw), wv, sizeof(wv)) == 0, "loaded values");
		CHECK(cai_slab_load(&s, "fc.weight", 2, (int64_t[]) {3, 2}, wv, &err) == CAI_ERR_FORMAT, "shape mismatch loaded");
		CHECK(cai_slab_load(&s, "nope", 1, (int64_t[]) {6}, wv, &err) == CAI_ERR_FORMAT, "unknown loaded");
	}

	/* sparse step: only touched rows of the embedding move */
	{
		float	   *E = cai_slab_data(&s, ie);
		float	   *dE = cai_slab_grad(&s, ie);
		float		before[30];
		float		dout[2 * 3] = {1, 1, 1, -1, -1, -1};
		int32_t		ids[2] = {7, 2};
		float		norm;

		cai_init_uniform(E, 30, 1.0f, rng);
		cai_init_const(cai_slab_grad(&s, ib), 2, 2.0f);
		memcpy(before, E, sizeof(before));
		cai_embedding_backward(dE, cai_slab_rowset(&s, ie), dout, ids, 2, 10, 3);
		norm = cai_slab_clip_grad_norm(&s, 0.0f);
		CHECK(fabsf(norm - sqrtf(6.0f + 8.0f)) < 1e-5f, "slab norm %g", norm);
		CHECK(cai_slab_step(&s, &cfg, 0.1f, 1, &err) == CAI_OK, "%s", err.msg);
		for (int r = 0; r < 10; r++)
		{
			bool		moved = memcmp(E + r * 3, before + r * 3, 3 * sizeof(float)) != 0;

			CHECK(moved == (r == 7 || r == 2), "row %d moved %d", r, moved);
		}
		CHECK(fabsf(E[7 * 3] - (before[7 * 3] - 0.1f)) < 1e-6f, "sparse adam row 7");
		CHECK(fabsf(cai_slab_data(&s, ib)[0] + 0.1f) < 1e-6f, "dense bias stepped");
		cai_slab_zero_grad(&s);
		CHECK(cai_sumsq(s.grad, s.numel) == 0.0 && cai_slab_rowset(&s, ie)->count == 0, "zero grad");

		cfg.beta1 = 2.0f;
		CHECK(cai_slab_step(&s, &cfg, 0.1f, 2, &err) == CAI_ERR_INVALID, "bad config stepped");
	}
	cai_slab_free(&s);

	/* plain SGD needs no state; Adam on a slab without state is refused */
	cai_slab_init(&s);
	cai_slab_declare(&s, "w", 1, (int64_t[]) {5}, NULL, &err);
	CHECK(cai_slab_alloc(&s, true, 0, 0, &err) == CAI_OK, "%s", err.msg);
	cfg = cai_optim_defaults(CAI_OPTIM_ADAM);
	CHECK(cai_slab_step(&s, &cfg, 0.1f, 1, &err) == CAI_ERR_INVALID, "adam without state");
	cfg = cai_optim_defaults(CAI_OPTIM_SGD);
	cfg.momentum = 0.0f;
	CHECK(cai_slab_step(&s, &cfg, 0.1f, 1, &err) == CAI_OK, "%s", err.msg);
	cai_slab_free(&s);

	/* allocation failure is a status, not a crash */
	{
		cai_allocator fail = {failing_alloc, failing_free, NULL};
		cai_rowset	rs;

		cai_slab_init(&s);
		cai_slab_declare(&s, "w", 2, (int64_t[]) {4, 4}, NULL, &err);
		cai_set_allocator(&fail);
		CHECK(cai_slab_alloc(&s, true, 2, 0, &err) == CAI_ERR_NOMEM, "failing allocator: %s", err.msg);
		CHECK(cai_rowset_init(&rs, 10, &err) == CAI_ERR_NOMEM, "rowset with failing allocator");
		cai_set_allocator(NULL);
		cai_slab_free(&s);
	}

	/* initialisers */
	{
		float		x[4000];
		double		mean = 0.0,
					var = 0.0;
		float		a = sqrtf(6.0f / 30.0f);
		bool		in = true;

		cai_init_normal(x, 4000, 0.5f, rng);
		for (int i = 0; i < 4000; i++)
			mean += x[i];
		mean /= 4000;
		for (int i = 0; i < 4000; i++)
			var += (x[i] - mean) * (x[i] - mean);
		var /= 4000;
		CHECK(fabs(mean) < 0.05 && fabs(sqrt(var) - 0.5) < 0.03, "normal mean %g std %g", mean, sqrt(var));
		cai_init_xavier(x, 4000, 10, 20, rng);
		for (int i = 0; i < 4000; i++)
			in = in && x[i] >= -a && x[i] < a;
		CHECK(in, "xavier range");
	}
}

/* ---------------------------------------------------------------------
 * End-to-end: linear - tanh - linear - softmax-xent with Adam
 */
#define MN 256
#define MIN_ 2
#define MH 16
#define MC 2
#define MSTEPS 400

static void
make_xor(float *x, int32_t *y, uint64_t seed)
{
	cai_rng		rng;

	cai_rng_seed(&rng, seed);
	for (int n = 0; n < MN; n++)
	{
		float		a = 2.0f * cai_rng_uniform(&rng) - 1.0f;
		float		b = 2.0f * cai_rng_uniform(&rng) - 1.0f;

		/* keep a margin around the axes so the classes separate */
		a += a >= 0.0f ? 0.1f : -0.1f;
		b += b >= 0.0f ? 0.1f : -0.1f;
		x[n * 2] = a;
		x[n * 2 + 1] = b;
		y[n] = (a > 0.0f) != (b > 0.0f);
	}
}

/* Train and return the final loss; the slab is left for the caller to inspect. */
static double
train_mlp(cai_slab *s, uint64_t seed, double *first_loss)
{
	float		x[MN * MIN_];
	int32_t		y[MN];
	float		h[MN * MH],
				a[MN * MH],
				logits[MN * MC];
	float		da[MN * MH],
				dh[MN * MH],
				dlogits[MN * MC];
	int			i1,
				i2,
				i3,
				i4;
	cai_rng		rng;
	cai_error	err;
	cai_optim_config cfg = cai_optim_defaults(CAI_OPTIM_ADAM);
	double		loss = NAN;

	make_xor(x, y, 1234);
	cai_slab_init(s);
	cai_slab_declare(s, "fc1.weight", 2, (int64_t[]) {MH, MIN_}, &i1, &err);
	cai_slab_declare(s, "fc1.bias", 1, (int64_t[]) {MH}, &i2, &err);
	cai_slab_declare(s, "fc2.weight", 2, (int64_t[]) {MC, MH}, &i3, &err);
	cai_slab_declare(s, "fc2.bias", 1, (int64_t[]) {MC}, &i4, &err);
	if (cai_slab_alloc(s, true, cai_optim_state_slabs(&cfg), 0, &err) != CAI_OK)
		return NAN;
	cai_rng_seed(&rng, seed);
	cai_init_xavier(cai_slab_data(s, i1), MH * MIN_, MIN_, MH, &rng);
	cai_init_xavier(cai_slab_data(s, i3), MC * MH, MH, MC, &rng);

	for (int step = 1; step <= MSTEPS; step++)
	{
		float		lr = cai_lr_schedule(CAI_LR_COSINE, 0.05f, 0.005f, step - 1, 20, MSTEPS);

		cai_linear_forward(h, x, cai_slab_data(s, i1), cai_slab_data(s, i2), MN, MIN_, MH);
		cai_tanh_forward(a, h, MN * MH);
		cai_linear_forward(logits, a, cai_slab_data(s, i3), cai_slab_data(s, i4), MN, MH, MC);
		if (cai_softmax_xent_forward(logits, &loss, logits, y, MN, MC, 1.0f / MN, &err) != CAI_OK)
			return NAN;
		if (step == 1)
			*first_loss = loss;

		cai_slab_zero_grad(s);
		memset(dlogits, 0, sizeof(dlogits));
		memset(da, 0, sizeof(da));
		memset(dh, 0, sizeof(dh));
		cai_softmax_xent_backward(dlogits, logits, y, MN, MC, 1.0f / MN);
		cai_linear_backward(da, cai_slab_grad(s, i3), cai_slab_grad(s, i4), dlogits, a,
							cai_slab_data(s, i3), MN, MH, MC);
		cai_tanh_backward(dh, da, a, MN * MH);
		cai_linear_backward(NULL, cai_slab_grad(s, i1), cai_slab_grad(s, i2), dh, x,
							cai_slab_data(s, i1), MN, MIN_, MH);
		if (!isfinite(cai_slab_clip_grad_norm(s, 5.0f)))
			return NAN;
		if (cai_slab_step(s, &cfg, lr, step, &err) != CAI_OK)
			return NAN;
	}
	return loss;
}

static void
test_training(void)
{
	cai_slab	s1,
				s2;
	double		l1,
				l2,
				f1 = 0,
				f2 = 0;

	l1 = train_mlp(&s1, 42, &f1);
	l2 = train_mlp(&s2, 42, &f2);
	CHECK(l1 < 0.05, "mlp xor loss %g after %d steps (first %g)", l1, MSTEPS, f1);
	CHECK(f1 > 0.5, "mlp starts untrained: first loss %g", f1);
	CHECK(l1 == l2 && s1.numel == s2.numel && s1.data != NULL && s2.data != NULL &&
		  memcmp(s1.data, s2.data, s1.numel * sizeof(float)) == 0,
		  "training is not bit-identical: %.9g vs %.9g", l1, l2);
	printf("mlp xor: loss %.4f -> %.5f in %d steps\n", f1, l1, MSTEPS);
	cai_slab_free(&s1);
	cai_slab_free(&s2);
}

/*
 * OpenBLAS, opened at run time, against the plain-loop product (the fallback
 * when it cannot be opened): every order and transposition, padded leading
 * dimensions, alpha and beta.
 */
static void
test_blas(cai_rng *rng)
{
	cai_error	err = {0};
	const int	M = 7, N = 5, K = 9, pad = 3;
	float		A[(9 + 3) * (9 + 3)], B[(9 + 3) * (9 + 3)], C0[(7 + 3) * (7 + 3)], C1[(7 + 3) * (7 + 3)];
	int			bad = 0;
	double		worst = 0.0;

	CHECK(cai_blas_load(&err) == CAI_OK, "OpenBLAS opens: %s", err.msg);
	CHECK(cai_blas_get_threads() == 1, "one BLAS thread until set (%d)", cai_blas_get_threads());
	for (int v = 0; v < (int) (sizeof(A) / sizeof(A[0])); v++)
	{
		A[v] = cai_rng_uniform(rng) - 0.5f;
		B[v] = cai_rng_uniform(rng) - 0.5f;
	}
	for (int order = 0; order < 2; order++)
		for (int ta = 0; ta < 2; ta++)
			for (int tb = 0; tb < 2; tb++)
			{
				CBLAS_ORDER o = order ? CblasColMajor : CblasRowMajor;
				CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans;
				CBLAS_TRANSPOSE b = tb ? CblasTrans : CblasNoTrans;
				/* stored rows of op(A) (M, K) and op(B) (K, N) in the chosen order: lda/ldb at least that, plus padding */
				int			lda = ((order == 0) != (ta != 0) ? K : M) + pad;
				int			ldb = ((order == 0) != (tb != 0) ? N : K) + pad;
				int			ldc = (order == 0 ? N : M) + pad;

				for (int v = 0; v < (int) (sizeof(C0) / sizeof(C0[0])); v++)
					C0[v] = C1[v] = (float) v * 0.01f;
				cai_sgemm(o, a, b, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C0, ldc);
				cai_sgemm_reference(o, a, b, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C1, ldc);
				for (int v = 0; v < (int) (sizeof(C0) / sizeof(C0[0])); v++)
				{
					double		d = fabs((double) C0[v] - (double) C1[v]);

					worst = d > worst ? d : worst;
					bad += d > 1e-5;
				}
			}
	CHECK(bad == 0, "OpenBLAS and the plain-loop sgemm agree in all 8 layouts (%d elements differ, worst %.3g)", bad, worst);
}

int
main(void)
{
	cai_rng		rng;

	cai_rng_seed(&rng, 20240601);
	test_blas(&rng);
	cai_blas_set_threads(1);
	test_linear(&rng);
	test_activations(&rng);
	test_softmax_xent(&rng);
	test_dropout(&rng);
	test_embedding(&rng);
	for (int parts = 2; parts <= 4; parts++)
		test_embedding_bag_parts(&rng, parts);
	test_sumsq(&rng);
	test_conv1d(&rng);
	test_pool(&rng);
	test_optimizers();
	test_slab(&rng);
	test_training();
	return check_summary("test_ops");
}
