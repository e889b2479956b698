/*
 * ner_shards.c: data-parallel NER training (option "threads" > 1) on the
 * training pool (pool.h).
 *
 * A batch is split into shards by sentence (sentence i of the batch to
 * shard i mod n, the batch being sorted by length this balances the work);
 * shard s runs forward and backward on its own workspace into its own
 * gradients (shard 0 into the slab's) with its own dropout rng seeded from
 * the training rng; the main thread then adds the shard gradients in shard
 * order, clips, and the shards apply the step to their slices of the
 * parameters.  Validation batches go round-robin to the shards.  The pool
 * threads start before these buffers are allocated and never allocate; a
 * shard writes only its own outputs.  The result depends on the seed and the
 * number of threads only.
 */
#include <math.h>
#include <string.h>

#include "ner_internal.h"

/* Zero a shard's own gradients: dense parameters fully, word rows by its row set. */
static void
shard_zero_grad(const NerTrain *t, NerShard *sh)
{
	const cai_slab *slab = &t->m.net.slab;

	for (int i = 0; i < slab->n_params; i++)
	{
		const cai_param *p = &slab->params[i];
		float	   *g = sh->grad + p->offset;

		if (p->sparse)
		{
			size_t		D = p->numel / (size_t) p->shape[0];

			for (int32_t r = 0; r < sh->rows.count; r++)
				memset(g + (size_t) sh->rows.list[r] * D, 0, sizeof(float) * D);
			cai_rowset_clear(&sh->rows);
		}
		else
			memset(g, 0, sizeof(float) * p->numel);
	}
}

/* Job: forward and backward of shard s's sentences (shard 0: into the slab's zeroed gradients). */
static cai_status
shard_train(void *ctx, int s, cai_error *err)
{
	NerTrain   *t = ctx;
	NerShard   *sh = &t->shards.sh[s];
	NerTrainCtx tc = {t->dropout, &sh->rng, t->singleton, NER_UNK_SINGLETON};
	NerGrad		g;
	cai_status	st;

	sh->loss = 0.0;
	if (s == 0)
		g = ner_net_slab_grad(&t->m.net, 1);
	else
	{
		shard_zero_grad(t, sh);
		g.base = sh->grad;
		g.rows = &sh->rows;
	}
	g.scale = t->shards.gscale;
	if (sh->B == 0)
		return CAI_OK;
	if ((st = ner_net_forward(&t->m, &t->tr.enc, sh->ids, sh->B, &sh->ws, &tc, err)) != CAI_OK)
		return st;
	return ner_net_backward(&t->m, &sh->ws, &tc, &g, &sh->loss, err);
}

/* Job: shard s's part of the optimizer step (cai_slab_step_part: the same parameters as one cai_slab_step). */
static cai_status
shard_step(void *ctx, int s, cai_error *err)
{
	const NerTrain *t = ctx;

	cai_slab_step_part(&t->m.net.slab, t->shards.cfg, t->shards.lr, t->shards.step, s, t->shards.n);
	return CAI_OK;
}

/* Job: decode evaluation batch ebatch0 + s, if there is one. */
static cai_status
shard_eval(void *ctx, int s, cai_error *err)
{
	NerTrain   *t = ctx;
	NerShards  *shards = &t->shards;
	const NerEnc *e = shards->ee;
	size_t		p0 = (shards->ebatch0 + (size_t) s) * NER_EVAL_BATCH;
	int			B;

	if (p0 >= e->n)
		return CAI_OK;
	B = (int) (e->n - p0 < NER_EVAL_BATCH ? e->n - p0 : NER_EVAL_BATCH);
	return ner_enc_decode_batch(&t->m, e, shards->eorder + p0, B, s == 0 ? &t->ews : &shards->sh[s].ews,
								shards->epred, NULL, err);
}

/* Free the shards' buffers (stop the pool first). */
void
ner_shards_free(NerShards *shards)
{
	for (int s = 0; shards->sh != NULL && s < shards->n; s++)
	{
		NerShard   *sh = &shards->sh[s];

		ner_ws_free(&sh->ws);
		ner_ws_free(&sh->ews);
		cai_free(sh->grad);
		cai_rowset_free(&sh->rows);
		cai_free(sh->ids);
	}
	cai_free(shards->sh);
	memset(shards, 0, sizeof(*shards));
}

/*
 * The shards' buffers, one shard per thread of t->pool (ner_train_setup,
 * pool running): training workspaces for ceil(batch / n) sentences, and for
 * shards >= 1 gradients, a word row set, and an evaluation workspace like
 * t->ews.
 */
cai_status
ner_shards_alloc(NerTrain *t, const NerDims *d, const NerEnc *ev, cai_error *err)
{
	NerShards  *shards = &t->shards;
	int			n = t->pool.n;
	int			Bs = (t->batch + n - 1) / n;
	int			maxT;
	size_t		maxN,
				maxNc;
	cai_status	st;

	if ((st = ner_enc_bounds(&t->tr.enc, Bs, &maxT, &maxN, &maxNc, err)) != CAI_OK)
		return st;
	if ((shards->sh = cai_calloc((size_t) n, sizeof(NerShard))) == NULL)
		return NOMEM(err);
	shards->n = n;
	for (int s = 0; s < shards->n; s++)
	{
		NerShard   *sh = &shards->sh[s];

		if ((st = ner_ws_init(&sh->ws, d, Bs, maxT, maxN, maxNc, true, false, NULL, err)) != CAI_OK)
			return st;
		if ((sh->ids = cai_malloc(sizeof(int32_t) * (size_t) Bs)) == NULL)
			return NOMEM(err);
		if (s == 0)
			continue;
		if ((st = ner_ws_for_order(d, ev, t->eorder, &sh->ews, false, NULL, err)) != CAI_OK ||
			(st = cai_rowset_init(&sh->rows, d->Vw, err)) != CAI_OK)
			return st;
		if ((sh->grad = cai_calloc(t->m.net.slab.numel, sizeof(float))) == NULL)
			return NOMEM(err);
	}
	return CAI_OK;
}

/*
 * One optimizer step on the batch ids[0..B) split over the pool: shard
 * gradients are added in shard order and clipped as in train_step, then
 * the shards apply the update (shard_step: the same parameters as
 * cai_slab_step).
 */
cai_status
ner_train_step_par(NerTrain *t, const cai_optim_config *cfg, cai_rng *rng, const int32_t *ids, int B,
				   int64_t step, double *loss, cai_error *err)
{
	NerShards  *shards = &t->shards;
	cai_slab   *slab = &t->m.net.slab;
	float		norm;
	cai_status	st;

	for (int s = 0; s < shards->n; s++)
	{
		shards->sh[s].B = 0;
		cai_rng_seed(&shards->sh[s].rng, cai_rng_u64(rng));
	}
	for (int b = 0; b < B; b++)
	{
		NerShard   *sh = &shards->sh[b % shards->n];

		sh->ids[sh->B++] = ids[b];
	}
	shards->gscale = 1.0f / (float) B;
	cai_slab_zero_grad(slab);
	if ((st = cai_pool_run(&t->pool, shard_train, t, err)) != CAI_OK)
		return st;
	*loss = 0.0;
	for (int s = 0; s < shards->n; s++)
		*loss += shards->sh[s].loss;
	for (int s = 1; s < shards->n; s++)
	{
		const NerShard *sh = &shards->sh[s];

		for (int i = 0; i < slab->n_params; i++)
		{
			const cai_param *p = &slab->params[i];
			float	   *dst = slab->grad + p->offset;
			const float *src = sh->grad + p->offset;

			if (p->sparse)
			{
				size_t		D = p->numel / (size_t) p->shape[0];
				cai_rowset *rows = cai_slab_rowset(slab, i);

				for (int32_t r = 0; r < sh->rows.count; r++)
				{
					size_t		o = (size_t) sh->rows.list[r] * D;

					for (size_t j = 0; j < D; j++)
						dst[o + j] += src[o + j];
					cai_rowset_add(rows, sh->rows.list[r]);
				}
			}
			else
				for (size_t j = 0; j < p->numel; j++)
					dst[j] += src[j];
		}
	}
	norm = cai_slab_clip_grad_norm(slab, t->clip);
	if (!isfinite(norm) || !isfinite(*loss))
		return cai_error_set(err, CAI_ERR_NUMERIC, "training diverged (the loss or gradient is not finite)");
	if ((st = cai_slab_step_check(slab, cfg, t->lr, err)) != CAI_OK)
		return st;
	ner_step_pretrained(t, cfg, step);
	shards->cfg = cfg;
	shards->lr = t->lr;
	shards->step = step;
	return cai_pool_run(&t->pool, shard_step, t, err);
}

/* ner_enc_decode of the evaluation side with the pool: rounds of one batch per shard. */
cai_status
ner_enc_decode_par(NerTrain *t, const NerEnc *e, int32_t *pred, cai_trainer *tk, double frac0, double frac1,
				   cai_error *err)
{
	NerShards  *shards = &t->shards;
	size_t		nb = (e->n + NER_EVAL_BATCH - 1) / NER_EVAL_BATCH;
	cai_status	st;

	shards->ee = e;
	shards->eorder = t->eorder;
	shards->epred = pred;
	for (size_t b0 = 0; b0 < nb; b0 += (size_t) shards->n)
	{
		size_t		upto;

		shards->ebatch0 = b0;
		if ((st = cai_pool_run(&t->pool, shard_eval, t, err)) != CAI_OK)
			return st;
		upto = (b0 + (size_t) shards->n) * NER_EVAL_BATCH;
		if (upto > e->n)
			upto = e->n;
		if (tk != NULL && !cai_trainer_tick(tk, frac0 + (frac1 - frac0) * (double) upto / (double) e->n))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
	}
	return CAI_OK;
}
