/*
 * ner_net.c: the NER network on a batch of sentences: the batch workspace,
 * the forward pass (character CNN, features, BiLSTM, emissions), the
 * backward pass of the CRF loss into the parameter gradients, Viterbi
 * decoding with marginals, and the gradient self-check (cai_ner_gradcheck).
 */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "ner_internal.h"

/* ---------------------------------------------------------------------- */
/* Workspace of a batch                                                   */
/* ---------------------------------------------------------------------- */

typedef struct Carve
{
	char	   *base;
	size_t		off;
	bool		ok;
} Carve;

static void *
carve(Carve *c, size_t n, size_t elem)
{
	size_t		bytes;
	size_t		off = c->off;

	if (!cai_size_mul(n < 1 ? 1 : n, elem, &bytes) || !cai_size_add(bytes, 63, &bytes))
	{
		c->ok = false;
		return NULL;
	}
	bytes &= ~(size_t) 63;
	if (!cai_size_add(c->off, bytes, &c->off))
	{
		c->ok = false;
		return NULL;
	}
	return c->base != NULL ? c->base + off : NULL;
}

static void
ws_carve(NerWs *w, const NerDims *d, Carve *c, size_t lstm_floats, size_t crf_doubles)
{
	size_t		BT = (size_t) w->maxB * (size_t) w->maxT;
	size_t		N = w->maxN;
	size_t		Nc = w->maxNc;
	size_t		H2 = 2 * (size_t) d->H;

	w->len = carve(c, (size_t) w->maxB, sizeof(int32_t));
	w->tstart = carve(c, (size_t) w->maxB + 1, sizeof(int32_t));
	w->word = carve(c, N, sizeof(int32_t));
	w->bg = carve(c, d->bigrams ? 2 * N : 1, sizeof(int32_t));
	w->cas = carve(c, N, 1);
	w->cstart = carve(c, N + 1, sizeof(int32_t));
	w->cids = carve(c, Nc, sizeof(int32_t));
	w->tags = carve(c, BT, sizeof(int32_t));
	w->im2col = carve(c, Nc * NER_CHAR_WIDTH * (size_t) d->Dc, sizeof(float));
	w->conv = carve(c, Nc * (size_t) d->F, sizeof(float));
	w->cargmax = carve(c, N * (size_t) d->F, sizeof(int32_t));
	w->cfeat = carve(c, N * (size_t) d->F, sizeof(float));
	w->x = carve(c, BT * (size_t) d->C, sizeof(float));
	w->h = carve(c, BT * H2, sizeof(float));
	w->emis = carve(c, BT * (size_t) d->K, sizeof(float));
	w->lstm = carve(c, lstm_floats, sizeof(float));
	w->crf = carve(c, crf_doubles, sizeof(double));
	w->score = carve(c, N, sizeof(float));
	if (w->train)
	{
		w->xmask = carve(c, BT * (size_t) d->C, 1);
		w->hmask = carve(c, BT * H2, 1);
		w->demis = carve(c, BT * (size_t) d->K, sizeof(float));
		w->dh = carve(c, BT * H2, sizeof(float));
		w->dx = carve(c, BT * (size_t) d->C, sizeof(float));
		w->dcfeat = carve(c, N * (size_t) d->F, sizeof(float));
		w->dconv = carve(c, Nc * (size_t) d->F, sizeof(float));
		w->dim2col = carve(c, Nc * NER_CHAR_WIDTH * (size_t) d->Dc, sizeof(float));
	}
}

void
ner_ws_free(NerWs *w)
{
	cai_free(w->block);
	memset(w, 0, sizeof(*w));
}

/*
 * Size (bytes) and optionally allocate a workspace.  With bytes_only the
 * workspace is not allocated and only *bytes is set.
 */
cai_status
ner_ws_init(NerWs *w, const NerDims *d, int maxB, int maxT, size_t maxN, size_t maxNc,
			bool train, bool bytes_only, size_t *bytes, cai_error *err)
{
	size_t		lstm_floats;
	size_t		crf_doubles;
	Carve		c = {NULL, 0, true};
	cai_status	st;

	memset(w, 0, sizeof(*w));
	w->maxB = maxB < 1 ? 1 : maxB;
	w->maxT = maxT < 1 ? 1 : maxT;
	w->maxN = maxN < 1 ? 1 : maxN;
	w->maxNc = maxNc < 1 ? 1 : maxNc;
	w->train = train;
	if (train)
		st = cai_bilstm_acts_size(w->maxB, w->maxT, d->C, d->H, &lstm_floats, err);
	else
		st = cai_lstm_infer_size(w->maxB, w->maxT, d->C, d->H, &lstm_floats, err);
	if (st != CAI_OK)
		return st;
	if ((st = cai_crf_work_size(w->maxT, d->K, &crf_doubles, err)) != CAI_OK)
		return st;
	ws_carve(w, d, &c, lstm_floats, crf_doubles);
	if (!c.ok)
		return cai_error_set(err, CAI_ERR_LIMIT, "batch workspace size overflows");
	if (bytes != NULL)
		*bytes = c.off;
	if (bytes_only)
		return CAI_OK;
	w->block = cai_malloc(c.off);
	if (w->block == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a batch workspace (%zu bytes)", c.off);
	c.base = w->block;
	c.off = 0;
	ws_carve(w, d, &c, lstm_floats, crf_doubles);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Forward and backward                                                   */
/* ---------------------------------------------------------------------- */

/* Inverted dropout backward in place: g = g * mask / (1 - p). */
static void
dropout_backward_inplace(float *g, const uint8_t *mask, size_t n, float p)
{
	float		s = 1.0f / (1.0f - p);

	for (size_t i = 0; i < n; i++)
		g[i] = mask[i] ? g[i] * s : 0.0f;
}

/*
 * Load the batch of sentences sids[0..B) of e into w and compute the
 * emissions w->emis (B, T, K).  With tc (training) dropout and singleton
 * replacement apply and the BiLSTM keeps its activations for backward;
 * gold tags are copied when e has them.
 */
cai_status
ner_net_forward(const cai_ner *m, const NerEnc *e, const int32_t *sids, int B,
				NerWs *w, const NerTrainCtx *tc, cai_error *err)
{
	const NerNet *net = &m->net;
	const NerDims *d = &net->d;
	const int	Dc = d->Dc;
	const int	F = d->F;
	const int	C = d->C;
	const float *cemb = PD(net, P_CHAR);
	const float *wemb = PD(net, P_WORD);
	const float *kemb = PD(net, P_CASE);
	cai_lstm_params fw,
				bw;
	size_t		N = 0,
				Nc = 0;
	int			T = 0;
	cai_status	st;

	if (B < 1 || B > w->maxB)
		return cai_error_set(err, CAI_ERR_INTERNAL, "batch of %d sentences exceeds the workspace", B);
	/* gather tokens */
	for (int b = 0; b < B; b++)
	{
		int64_t		a = e->soff[sids[b]];
		int64_t		z = e->soff[sids[b] + 1];
		int32_t		len = (int32_t) (z - a);

		w->len[b] = len;
		w->tstart[b] = (int32_t) N;
		if (len > T)
			T = len;
		if (len > w->maxT || N + (size_t) len > w->maxN)
			return cai_error_set(err, CAI_ERR_INTERNAL, "batch exceeds the workspace");
		for (int64_t t = a; t < z; t++)
		{
			const int32_t ty = e->type[t];
			int32_t		wr = e->word[ty];
			int64_t		c0 = e->coff[ty];
			int64_t		c1 = e->coff[ty + 1];

			if (tc != NULL && tc->singleton != NULL && tc->singleton[wr] &&
				cai_rng_uniform(tc->rng) < tc->unk_p)
				wr = 0;
			w->word[N] = wr;
			if (d->bigrams)
			{
				w->bg[2 * N] = e->bigram[2 * t];
				w->bg[2 * N + 1] = e->bigram[2 * t + 1];
			}
			w->cas[N] = e->casing[ty];
			w->cstart[N] = (int32_t) Nc;
			if (Nc + (size_t) (c1 - c0) > w->maxNc)
				return cai_error_set(err, CAI_ERR_INTERNAL, "batch exceeds the workspace");
			memcpy(w->cids + Nc, e->chars + c0, sizeof(int32_t) * (size_t) (c1 - c0));
			Nc += (size_t) (c1 - c0);
			N++;
		}
	}
	w->tstart[B] = (int32_t) N;
	w->cstart[N] = (int32_t) Nc;
	if (T < 1)
		T = 1;
	w->B = B;
	w->T = T;
	w->N = N;
	w->Nc = Nc;

	/* character CNN: im2col (Nc, 3 Dc), one sgemm, max over each word, tanh */
	for (size_t i = 0; i < N; i++)
	{
		int32_t		c0 = w->cstart[i];
		int32_t		L = w->cstart[i + 1] - c0;

		for (int32_t j = 0; j < L; j++)
		{
			float	   *row = w->im2col + (size_t) (c0 + j) * NER_CHAR_WIDTH * Dc;

			for (int k = 0; k < NER_CHAR_WIDTH; k++)
			{
				int32_t		pos = j + k - (NER_CHAR_WIDTH - 1) / 2;

				if (pos >= 0 && pos < L)
					memcpy(row + k * Dc, cemb + (size_t) w->cids[c0 + pos] * Dc, sizeof(float) * Dc);
				else
					memset(row + k * Dc, 0, sizeof(float) * Dc);
			}
		}
	}
	cai_linear_forward(w->conv, w->im2col, PD(net, P_CONV_W), PD(net, P_CONV_B),
					   (int) Nc, NER_CHAR_WIDTH * Dc, F);
	for (size_t i = 0; i < N; i++)
		cai_maxpool_forward(w->cfeat + i * F, w->cargmax + i * F,
							w->conv + (size_t) w->cstart[i] * F,
							w->cstart[i + 1] - w->cstart[i], F);
	cai_tanh_forward(w->cfeat, w->cfeat, N * (size_t) F);

	/* x (B, T, C) = [word | chars | casing | left bigram | right bigram], zero padding */
	memset(w->x, 0, sizeof(float) * (size_t) B * T * C);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < w->len[b]; t++)
		{
			size_t		i = (size_t) w->tstart[b] + t;
			float	   *row = w->x + ((size_t) b * T + t) * C;

			memcpy(row, wemb + (size_t) w->word[i] * d->Dw, sizeof(float) * d->Dw);
			memcpy(row + d->Dw, w->cfeat + i * F, sizeof(float) * F);
			memcpy(row + d->Dw + F, kemb + (size_t) w->cas[i] * d->Dcase, sizeof(float) * d->Dcase);
			if (d->bigrams)
				for (int k = 0; k < 2; k++)
					memcpy(row + d->Dw + F + d->Dcase + k * d->Dw, wemb + (size_t) w->bg[2 * i + k] * d->Dw,
						   sizeof(float) * d->Dw);
		}
	if (tc != NULL && tc->dropout > 0 &&
		(st = cai_dropout_forward(w->x, w->xmask, w->x, (size_t) B * T * C, tc->dropout, true,
								  tc->rng, err)) != CAI_OK)
		return st;

	ner_net_lstm_views(net, NULL, &fw, &bw);
	if (tc != NULL)
		st = cai_bilstm_forward(&fw, &bw, w->x, w->len, B, T, C, d->H, w->h, w->lstm, err);
	else
		st = cai_bilstm_infer(&fw, &bw, w->x, w->len, B, T, C, d->H, w->h, w->lstm, err);
	if (st != CAI_OK)
		return st;
	if (tc != NULL && tc->dropout > 0 &&
		(st = cai_dropout_forward(w->h, w->hmask, w->h, (size_t) B * T * 2 * d->H, tc->dropout, true,
								  tc->rng, err)) != CAI_OK)
		return st;
	cai_linear_forward(w->emis, w->h, PD(net, P_OUT_W), PD(net, P_OUT_B), B * T, 2 * d->H, d->K);

	/* gold tags, padded with -1 */
	if (e->tags != NULL)
		for (int b = 0; b < B; b++)
		{
			int64_t		a = e->soff[sids[b]];

			for (int t = 0; t < T; t++)
				w->tags[(size_t) b * T + t] = t < w->len[b] ? e->tags[a + t] : -1;
		}
	return CAI_OK;
}

/* The slab's own gradients, for a batch of B sentences. */
NerGrad
ner_net_slab_grad(NerNet *net, int B)
{
	NerGrad		g = {net->slab.grad, cai_slab_rowset(&net->slab, net->idx[P_WORD]), 1.0f / (float) B};

	return g;
}

/*
 * CRF loss of the batch in w (scaled by g->scale) and the backward pass:
 * accumulates every parameter gradient into g (zeroed by the caller).
 * *loss gets the summed NLL.  Reads the model only, so training threads
 * run it concurrently on their own w and g.
 */
cai_status
ner_net_backward(const cai_ner *m, NerWs *w, const NerTrainCtx *tc, const NerGrad *g,
				 double *loss, cai_error *err)
{
	const NerNet *net = &m->net;
	const NerDims *d = &net->d;
	const int	B = w->B;
	const int	T = w->T;
	const int	Dc = d->Dc;
	const int	F = d->F;
	const int	C = d->C;
	const size_t BT = (size_t) B * T;
	const size_t H2 = 2 * (size_t) d->H;
	cai_crf_params crf,
				gcrf;
	cai_lstm_params fw,
				bw,
				gfw,
				gbw;
	float	   *gword = GG(net, g, P_WORD);
	float	   *gchar = GG(net, g, P_CHAR);
	float	   *gcase = GG(net, g, P_CASE);
	cai_rowset *rows = g->rows;
	float		pdrop = tc != NULL ? tc->dropout : 0.0f;
	cai_status	st;

	ner_net_crf_view(net, NULL, &crf);
	ner_net_crf_view(net, g, &gcrf);
	memset(w->demis, 0, sizeof(float) * BT * d->K);
	if ((st = cai_crf_nll_batch(&crf, d->K, w->emis, w->tags, w->len, B, T, &m->mask,
								g->scale, loss, w->demis, &gcrf, w->crf, err)) != CAI_OK)
		return st;
	memset(w->dh, 0, sizeof(float) * BT * H2);
	cai_linear_backward(w->dh, GG(net, g, P_OUT_W), GG(net, g, P_OUT_B), w->demis, w->h,
						PD(net, P_OUT_W), (int) BT, (int) H2, d->K);
	if (pdrop > 0)
		dropout_backward_inplace(w->dh, w->hmask, BT * H2, pdrop);
	memset(w->dx, 0, sizeof(float) * BT * C);
	ner_net_lstm_views(net, NULL, &fw, &bw);
	ner_net_lstm_views(net, g, &gfw, &gbw);
	if ((st = cai_bilstm_backward(&fw, &bw, &gfw, &gbw, w->len, B, T, C, d->H, w->dh, w->dx,
								  w->lstm, err)) != CAI_OK)
		return st;
	if (pdrop > 0)
		dropout_backward_inplace(w->dx, w->xmask, BT * C, pdrop);

	/* split dx into the word, char, casing and bigram parts */
	for (int b = 0; b < B; b++)
		for (int t = 0; t < w->len[b]; t++)
		{
			size_t		i = (size_t) w->tstart[b] + t;
			const float *row = w->dx + ((size_t) b * T + t) * C;
			float	   *gw = gword + (size_t) w->word[i] * d->Dw;
			float	   *gk = gcase + (size_t) w->cas[i] * d->Dcase;
			const float *cf = w->cfeat + i * F;
			float	   *dcf = w->dcfeat + i * F;

			for (int j = 0; j < d->Dw; j++)
				gw[j] += row[j];
			cai_rowset_add(rows, w->word[i]);
			for (int j = 0; j < F; j++)
				dcf[j] = row[d->Dw + j] * (1.0f - cf[j] * cf[j]);
			for (int j = 0; j < d->Dcase; j++)
				gk[j] += row[d->Dw + F + j];
			for (int k = 0; k < 2 * d->bigrams; k++)
			{
				const float *rb = row + d->Dw + F + d->Dcase + k * d->Dw;
				float	   *gb = gword + (size_t) w->bg[2 * i + k] * d->Dw;

				for (int j = 0; j < d->Dw; j++)
					gb[j] += rb[j];
				cai_rowset_add(rows, w->bg[2 * i + k]);
			}
		}

	/* char CNN: route through the max positions, then the im2col sgemm */
	memset(w->dconv, 0, sizeof(float) * w->Nc * F);
	for (size_t i = 0; i < w->N; i++)
	{
		const int32_t *am = w->cargmax + i * F;
		const float *dcf = w->dcfeat + i * F;
		float	   *dc = w->dconv + (size_t) w->cstart[i] * F;

		for (int f = 0; f < F; f++)
			dc[(size_t) am[f] * F + f] += dcf[f];
	}
	memset(w->dim2col, 0, sizeof(float) * w->Nc * NER_CHAR_WIDTH * Dc);
	cai_linear_backward(w->dim2col, GG(net, g, P_CONV_W), GG(net, g, P_CONV_B), w->dconv, w->im2col,
						PD(net, P_CONV_W), (int) w->Nc, NER_CHAR_WIDTH * Dc, F);
	for (size_t i = 0; i < w->N; i++)
	{
		int32_t		c0 = w->cstart[i];
		int32_t		L = w->cstart[i + 1] - c0;

		for (int32_t j = 0; j < L; j++)
		{
			const float *row = w->dim2col + (size_t) (c0 + j) * NER_CHAR_WIDTH * Dc;

			for (int k = 0; k < NER_CHAR_WIDTH; k++)
			{
				int32_t		pos = j + k - (NER_CHAR_WIDTH - 1) / 2;
				float	   *g;

				if (pos < 0 || pos >= L)
					continue;
				g = gchar + (size_t) w->cids[c0 + pos] * Dc;
				for (int c = 0; c < Dc; c++)
					g[c] += row[k * Dc + c];
			}
		}
	}
	return CAI_OK;
}

/*
 * Viterbi decode of the batch in w (after ner_net_forward) into w->tags, and
 * with want_scores each token's marginal probability of its tag into
 * w->score (N, packed).
 */
cai_status
ner_net_decode(const cai_ner *m, NerWs *w, bool want_scores, cai_error *err)
{
	const NerDims *d = &m->net.d;
	cai_crf_params crf;
	cai_status	st;

	ner_net_crf_view(&m->net, NULL, &crf);
	if ((st = cai_crf_viterbi_batch(&crf, d->K, w->emis, w->len, w->B, w->T, &m->mask,
									w->tags, w->crf, err)) != CAI_OK)
		return st;
	if (!want_scores)
		return CAI_OK;
	return cai_crf_path_marginals_batch(&crf, d->K, w->emis, w->len, w->B, w->T, &m->mask, w->tags,
										w->score, w->crf, err);
}

/* ---------------------------------------------------------------------- */
/* Gradient self-check                                                    */
/* ---------------------------------------------------------------------- */

/* CRF loss (summed NLL) of the batch in w, no gradient. */
static cai_status
net_loss(const cai_ner *m, NerWs *w, double *loss, cai_error *err)
{
	cai_crf_params crf;

	ner_net_crf_view(&m->net, NULL, &crf);
	return cai_crf_nll_batch(&crf, m->net.d.K, w->emis, w->tags, w->len, w->B, w->T, &m->mask,
							 1.0f / (float) w->B, loss, NULL, NULL, w->crf, err);
}

/* One batch of the training data, the first sentences, dropout and word replacement off. */
typedef struct NerProbe
{
	NerTrain	t;
	NerTrainCtx tc;
	cai_rng		rng;
	int32_t    *ids;			/* (B) */
	int			B;
	int32_t    *rows;			/* (3 N) with bigrams: the batch's word and bigram rows */
} NerProbe;

static void
ner_probe_free(void *ctx)
{
	NerProbe   *np = ctx;

	cai_free(np->ids);
	cai_free(np->rows);
	ner_train_free(&np->t);
	cai_free(np);
}

/* The mean CRF loss of the batch; with grad, ner_net_backward's gradient (of the mean) copied out. */
static cai_status
ner_probe_loss(void *ctx, float *const *grad, double *loss, cai_error *err)
{
	NerProbe   *np = ctx;
	NerNet	   *net = &np->t.m.net;
	NerGrad		g;
	cai_status	st;

	if ((st = ner_net_forward(&np->t.m, &np->t.tr.enc, np->ids, np->B, &np->t.ws, &np->tc, err)) != CAI_OK)
		return st;
	if (grad == NULL)
		st = net_loss(&np->t.m, &np->t.ws, loss, err);
	else
	{
		memset(net->slab.grad, 0, sizeof(float) * net->slab.numel);
		cai_slab_zero_grad(&net->slab);
		g = ner_net_slab_grad(net, np->B);
		st = ner_net_backward(&np->t.m, &np->t.ws, &np->tc, &g, loss, err);
		for (int p = 0; p < P_COUNT && st == CAI_OK; p++)
			memcpy(grad[p], GG(net, &g, p), sizeof(float) * net->slab.params[net->idx[p]].numel);
	}
	*loss /= (double) np->B;
	return st;
}

cai_status
cai_ner_gradcheck(const cai_options *opts, const cai_ner_data *train, int samples,
				  double *max_err, cai_error *err)
{
	NerProbe   *np;
	NerNet	   *net;
	cai_grad_probe probe;
	double		loss;
	cai_status	st;

	*max_err = 0.0;
	if (opts == NULL || train == NULL || train->n == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "options and data are required");
	if ((np = cai_calloc(1, sizeof(NerProbe))) == NULL)
		return NOMEM(err);
	np->t.pool.n = 1;
	net = &np->t.m.net;
	if ((st = ner_check_data(train, "training", true, err)) != CAI_OK ||
		(st = ner_train_setup(&np->t, opts, train, train, NULL, err)) != CAI_OK)
		goto done;
	np->B = (int) (np->t.tr.enc.n < (size_t) np->t.batch ? np->t.tr.enc.n : (size_t) np->t.batch);
	if ((np->ids = cai_malloc(sizeof(int32_t) * (size_t) np->B)) == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (int b = 0; b < np->B; b++)
		np->ids[b] = b;
	cai_rng_seed(&np->rng, 7);
	np->tc.rng = &np->rng;
	/* the batch's word and character rows: as the forward pass loads them */
	if ((st = ner_probe_loss(np, NULL, &loss, err)) != CAI_OK)
		goto done;
	memset(&probe, 0, sizeof(probe));
	probe.n_tensors = P_COUNT;
	for (int p = 0; p < P_COUNT; p++)
	{
		const cai_param *pp = &net->slab.params[net->idx[p]];

		probe.name[p] = pp->name;
		probe.data[p] = PD(net, p);
		probe.numel[p] = pp->numel;
	}
	probe.rows[P_WORD] = np->t.ws.word;
	probe.n_rows[P_WORD] = np->t.ws.N;
	if (net->d.bigrams)
	{
		size_t		N = np->t.ws.N;

		if ((np->rows = cai_malloc(sizeof(int32_t) * 3 * N)) == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		memcpy(np->rows, np->t.ws.word, sizeof(int32_t) * N);
		memcpy(np->rows + N, np->t.ws.bg, sizeof(int32_t) * 2 * N);
		probe.rows[P_WORD] = np->rows;
		probe.n_rows[P_WORD] = 3 * N;
	}
	probe.row_len[P_WORD] = net->d.Dw;
	probe.rows[P_CHAR] = np->t.ws.cids;
	probe.n_rows[P_CHAR] = np->t.ws.Nc;
	probe.row_len[P_CHAR] = net->d.Dc;
	probe.loss = ner_probe_loss;
	probe.free = ner_probe_free;
	probe.ctx = np;
	st = cai_gradcheck_compare(&probe, samples, max_err, err);
done:
	ner_probe_free(np);
	return st;
}
