/*
 * ner_pool.c: data-parallel NER training (option "threads" > 1).
 *
 * A batch is split into shards by sentence (sentence i of the batch to
 * shard i mod n, the batch being sorted by length this balances the work);
 * shard s runs forward and backward on its own workspace into its own
 * gradients (shard 0 into the slab's) with its own dropout rng seeded from
 * the training rng; the main thread then adds the shard gradients in shard
 * order, clips and steps.  Validation batches go round-robin to the shards.
 * The main thread runs shard 0; n - 1 pool threads, started before the
 * buffers are allocated and joined before cai_ner_train returns, run the
 * others.  Pool threads never allocate (cai_malloc may be a server memory
 * context), never call the progress callback and write only their shard's
 * outputs; BLAS runs single-threaded meanwhile.  The result depends on the
 * seed and the number of threads only.
 */
#include <math.h>
#include <signal.h>
#include <string.h>

#include <pthread.h>

#include "ner_internal.h"

/* Zero a shard's own gradients: dense parameters fully, word rows by its row set. */
static void
shard_zero_grad(NerShard *sh)
{
	const cai_slab *slab = &sh->t->m.net.slab;

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

/* Forward and backward of the shard's sentences (shard 0: into the slab's zeroed gradients). */
static void
shard_train(NerShard *sh)
{
	NerTrain   *t = sh->t;
	NerTrainCtx tc = {t->dropout, &sh->rng, t->singleton, NER_UNK_SINGLETON};
	NerGrad		g;

	sh->loss = 0.0;
	sh->st = CAI_OK;
	if (sh->id == 0)
		g = ner_net_slab_grad(&t->m.net, 1);
	else
	{
		shard_zero_grad(sh);
		g.base = sh->grad;
		g.rows = &sh->rows;
	}
	g.scale = t->pool.gscale;
	if (sh->B == 0)
		return;
	if ((sh->st = ner_net_forward(&t->m, &t->tr.enc, sh->ids, sh->B, &sh->ws, &tc, &sh->err)) == CAI_OK)
		sh->st = ner_net_backward(&t->m, &sh->ws, &tc, &g, &sh->loss, &sh->err);
}

/*
 * Shard id's part of the optimizer step: slice id of n of the dense
 * parameters' floats (taken in slab order) and of each sparse parameter's
 * touched rows, updated as cai_slab_step would (elementwise, so the
 * parameters come out the same as with one cai_slab_step).
 */
static void
shard_step(NerShard *sh)
{
	const NerPool *pool = &sh->t->pool;
	const cai_slab *slab = &sh->t->m.net.slab;
	size_t		n = (size_t) pool->n;
	size_t		id = (size_t) sh->id;
	size_t		d0 = pool->dense * id / n;
	size_t		d1 = pool->dense * (id + 1) / n;
	size_t		pos = 0;

	sh->st = CAI_OK;
	for (int i = 0; i < slab->n_params; i++)
	{
		const cai_param *p = &slab->params[i];
		cai_optim_config c = *pool->cfg;
		size_t		off = p->offset;
		float	   *m = slab->m != NULL ? slab->m + off : NULL;
		float	   *v = slab->v != NULL ? slab->v + off : NULL;

		if (!p->decay)
			c.weight_decay = 0.0f;
		if (p->sparse)
		{
			size_t		R = (size_t) p->rows.count;
			size_t		r0 = R * id / n;
			size_t		r1 = R * (id + 1) / n;

			cai_optim_step_rows(&c, pool->lr, pool->step, slab->data + off, slab->grad + off, m, v,
								p->numel / (size_t) p->shape[0], p->rows.list + r0, r1 - r0);
		}
		else
		{
			size_t		a = pos > d0 ? pos : d0;
			size_t		b = pos + p->numel < d1 ? pos + p->numel : d1;

			if (a < b)
			{
				off += a - pos;
				cai_optim_step(&c, pool->lr, pool->step, slab->data + off, slab->grad + off,
							   m != NULL ? m + (a - pos) : NULL, v != NULL ? v + (a - pos) : NULL, b - a);
			}
			pos += p->numel;
		}
	}
}

/* Decode evaluation batch ebatch0 + id, if there is one. */
static void
shard_eval(NerShard *sh)
{
	NerTrain   *t = sh->t;
	const NerPool *pool = &t->pool;
	const NerEnc *e = pool->ee;
	size_t		p0 = (pool->ebatch0 + (size_t) sh->id) * NER_EVAL_BATCH;
	int			B;

	sh->st = CAI_OK;
	if (p0 >= e->n)
		return;
	B = (int) (e->n - p0 < NER_EVAL_BATCH ? e->n - p0 : NER_EVAL_BATCH);
	sh->st = ner_enc_decode_batch(&t->m, e, pool->eorder + p0, B, sh->id == 0 ? &t->ews : &sh->ews,
								  pool->epred, NULL, &sh->err);
}

static void
shard_run(NerShard *sh, NerJob job)
{
	if (job == JOB_TRAIN)
		shard_train(sh);
	else if (job == JOB_STEP)
		shard_step(sh);
	else if (job == JOB_EVAL)
		shard_eval(sh);
}

/* Body of pool thread s >= 1: run each new job on shard s until JOB_EXIT. */
static void *
pool_main(void *arg)
{
	NerShard   *sh = arg;
	NerPool    *pool = &sh->t->pool;
	uint64_t	seen = 0;

	cai_pool_thread_enter();
	pthread_mutex_lock(&pool->mu);
	for (;;)
	{
		NerJob		job;

		while (pool->gen == seen)
			pthread_cond_wait(&pool->go, &pool->mu);
		seen = pool->gen;
		job = pool->job;
		pthread_mutex_unlock(&pool->mu);
		if (job == JOB_EXIT)
			return NULL;
		shard_run(sh, job);
		pthread_mutex_lock(&pool->mu);
		if (--pool->pending == 0)
			pthread_cond_signal(&pool->done);
	}
}

/* Run job on every shard (shard 0 on the calling thread) and wait for all. */
static void
pool_run(NerPool *pool, NerJob job)
{
	pthread_mutex_lock(&pool->mu);
	pool->job = job;
	pool->pending = pool->n - 1;
	pool->gen++;
	pthread_cond_broadcast(&pool->go);
	pthread_mutex_unlock(&pool->mu);
	shard_run(&pool->sh[0], job);
	pthread_mutex_lock(&pool->mu);
	while (pool->pending > 0)
		pthread_cond_wait(&pool->done, &pool->mu);
	pthread_mutex_unlock(&pool->mu);
}

/* Stop and join the pool threads (idempotent; the shard buffers stay). */
void
ner_pool_stop(NerPool *pool)
{
	if (pool->started > 0)
	{
		pthread_mutex_lock(&pool->mu);
		pool->job = JOB_EXIT;
		pool->gen++;
		pthread_cond_broadcast(&pool->go);
		pthread_mutex_unlock(&pool->mu);
		for (int s = 1; s <= pool->started; s++)
			pthread_join(pool->th[s], NULL);
		pool->started = 0;
	}
	if (pool->sync_ok)
	{
		pthread_cond_destroy(&pool->done);
		pthread_cond_destroy(&pool->go);
		pthread_mutex_destroy(&pool->mu);
		pool->sync_ok = false;
	}
}

void
ner_pool_free(NerPool *pool)
{
	ner_pool_stop(pool);
	for (int s = 0; pool->sh != NULL && s < pool->n; s++)
	{
		NerShard   *sh = &pool->sh[s];

		ner_ws_free(&sh->ws);
		ner_ws_free(&sh->ews);
		cai_free(sh->grad);
		cai_rowset_free(&sh->rows);
		cai_free(sh->ids);
	}
	cai_free(pool->sh);
	cai_free(pool->th);
	memset(pool, 0, sizeof(*pool));
	pool->n = 1;
}

/*
 * Start n - 1 pool threads for t (before any training buffer exists; they
 * wait for the first job).  Any failure leaves a stopped pool of one shard:
 * training then runs on the calling thread.  Signals are blocked in the
 * pool threads: the server's handlers run on the main thread only.
 */
void
ner_pool_start(NerTrain *t, int n)
{
	NerPool    *pool = &t->pool;
	sigset_t	all,
				old;

	memset(pool, 0, sizeof(*pool));
	pool->n = 1;
	if (n <= 1)
		return;
	pool->sh = cai_calloc((size_t) n, sizeof(NerShard));
	pool->th = cai_calloc((size_t) n, sizeof(pthread_t));
	if (pool->sh == NULL || pool->th == NULL)
		goto fail;
	pool->n = n;
	for (int s = 0; s < n; s++)
	{
		pool->sh[s].t = t;
		pool->sh[s].id = s;
	}
	if (pthread_mutex_init(&pool->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&pool->go, NULL) != 0)
	{
		pthread_mutex_destroy(&pool->mu);
		goto fail;
	}
	if (pthread_cond_init(&pool->done, NULL) != 0)
	{
		pthread_cond_destroy(&pool->go);
		pthread_mutex_destroy(&pool->mu);
		goto fail;
	}
	pool->sync_ok = true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int s = 1; s < n; s++)
	{
		if (pthread_create(&pool->th[s], NULL, pool_main, &pool->sh[s]) != 0)
			break;
		pool->started = s;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pool->started == n - 1)
		return;
fail:
	ner_pool_free(pool);
}

/*
 * Per-shard buffers (ner_train_setup, pool running): training workspaces for
 * ceil(batch / n) sentences, and for shards >= 1 gradients, a word row set,
 * and an evaluation workspace like t->ews.
 */
cai_status
ner_pool_alloc(NerTrain *t, const NerDims *d, const NerEnc *ev, cai_error *err)
{
	NerPool    *pool = &t->pool;
	int			Bs = (t->batch + pool->n - 1) / pool->n;
	int			maxT;
	size_t		maxN,
				maxNc;
	cai_status	st;

	if ((st = ner_enc_bounds(&t->tr.enc, Bs, &maxT, &maxN, &maxNc, err)) != CAI_OK)
		return st;
	pool->dense = 0;
	for (int i = 0; i < t->m.net.slab.n_params; i++)
		if (!t->m.net.slab.params[i].sparse)
			pool->dense += t->m.net.slab.params[i].numel;
	for (int s = 0; s < pool->n; s++)
	{
		NerShard   *sh = &pool->sh[s];

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
 * the pool applies the update (JOB_STEP: the same parameters as
 * cai_slab_step).
 */
cai_status
ner_train_step_par(NerTrain *t, const cai_optim_config *cfg, cai_rng *rng, const int32_t *ids, int B,
				   int64_t step, double *loss, cai_error *err)
{
	NerPool    *pool = &t->pool;
	cai_slab   *slab = &t->m.net.slab;
	float		norm;
	cai_status	st;

	for (int s = 0; s < pool->n; s++)
	{
		pool->sh[s].B = 0;
		cai_rng_seed(&pool->sh[s].rng, cai_rng_u64(rng));
	}
	for (int b = 0; b < B; b++)
	{
		NerShard   *sh = &pool->sh[b % pool->n];

		sh->ids[sh->B++] = ids[b];
	}
	pool->gscale = 1.0f / (float) B;
	cai_slab_zero_grad(slab);
	pool_run(pool, JOB_TRAIN);
	*loss = 0.0;
	for (int s = 0; s < pool->n; s++)
	{
		if (pool->sh[s].st != CAI_OK)
		{
			if (err != NULL)
				*err = pool->sh[s].err;
			return pool->sh[s].st;
		}
		*loss += pool->sh[s].loss;
	}
	for (int s = 1; s < pool->n; s++)
	{
		const NerShard *sh = &pool->sh[s];

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
	if ((st = cai_optim_check(cfg, err)) != CAI_OK)
		return st;
	if (slab->n_state < cai_optim_state_slabs(cfg) || !(t->lr >= 0.0f && isfinite(t->lr)))
		return cai_error_set(err, CAI_ERR_INTERNAL, "optimizer state or learning rate is invalid");
	pool->cfg = cfg;
	pool->lr = t->lr;
	pool->step = step;
	pool_run(pool, JOB_STEP);
	return CAI_OK;
}

/* ner_enc_decode of the evaluation side with the pool: rounds of one batch per shard. */
cai_status
ner_enc_decode_par(NerTrain *t, const NerEnc *e, int32_t *pred, cai_trainer *tk, double frac0, double frac1,
				   cai_error *err)
{
	NerPool    *pool = &t->pool;
	size_t		nb = (e->n + NER_EVAL_BATCH - 1) / NER_EVAL_BATCH;

	pool->ee = e;
	pool->eorder = t->eorder;
	pool->epred = pred;
	for (size_t b0 = 0; b0 < nb; b0 += (size_t) pool->n)
	{
		size_t		upto;

		pool->ebatch0 = b0;
		pool_run(pool, JOB_EVAL);
		for (int s = 0; s < pool->n; s++)
			if (pool->sh[s].st != CAI_OK)
			{
				if (err != NULL)
					*err = pool->sh[s].err;
				return pool->sh[s].st;
			}
		upto = (b0 + (size_t) pool->n) * NER_EVAL_BATCH;
		if (upto > e->n)
			upto = e->n;
		if (tk != NULL && !cai_trainer_tick(tk, frac0 + (frac1 - frac0) * (double) upto / (double) e->n))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
	}
	return CAI_OK;
}
