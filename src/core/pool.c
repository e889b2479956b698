/*
 * pool.c: the data-parallel thread pool of training (see pool.h).
 *
 * One mutex and two condition variables: the caller publishes a job under a
 * new generation and wakes the pool threads (go), runs shard 0 itself, then
 * waits until the last pool thread has finished (done): a barrier per job.
 */
#include "pool.h"

#include <signal.h>
#include <string.h>

/* Body of pool thread s >= 1: run each new job on shard s until told to exit. */
static void *
pool_main(void *arg)
{
	cai_pool_thread *me = arg;
	cai_pool   *pool = me->pool;
	int			s = me->shard;
	uint64_t	seen = 0;

	cai_pool_thread_enter();
	pthread_mutex_lock(&pool->mu);
	for (;;)
	{
		cai_pool_fn fn;
		void	   *ctx;

		while (pool->gen == seen)
			pthread_cond_wait(&pool->go, &pool->mu);
		seen = pool->gen;
		if (pool->exit)
			break;
		fn = pool->fn;
		ctx = pool->ctx;
		pthread_mutex_unlock(&pool->mu);
		pool->st[s] = fn(ctx, s, &pool->err[s]);
		pthread_mutex_lock(&pool->mu);
		if (--pool->pending == 0)
			pthread_cond_signal(&pool->done);
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* The pool threads of cai_pool_start; false leaves a partial pool for cai_pool_stop. */
static bool
pool_spawn(cai_pool *pool, int threads)
{
	sigset_t	all,
				old;

	pool->th = cai_calloc((size_t) threads, sizeof(cai_pool_thread));
	pool->st = cai_calloc((size_t) threads, sizeof(cai_status));
	pool->err = cai_calloc((size_t) threads, sizeof(cai_error));
	if (pool->th == NULL || pool->st == NULL || pool->err == NULL)
		return false;
	if (pthread_mutex_init(&pool->mu, NULL) != 0)
		return false;
	if (pthread_cond_init(&pool->go, NULL) != 0)
	{
		pthread_mutex_destroy(&pool->mu);
		return false;
	}
	if (pthread_cond_init(&pool->done, NULL) != 0)
	{
		pthread_cond_destroy(&pool->go);
		pthread_mutex_destroy(&pool->mu);
		return false;
	}
	pool->sync_ok = true;
	/* the pool threads inherit the mask: no signal handler ever runs on them */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int s = 1; s < threads; s++)
	{
		pool->th[s].pool = pool;
		pool->th[s].shard = s;
		if (pthread_create(&pool->th[s].th, NULL, pool_main, &pool->th[s]) != 0)
			break;
		pool->started = s;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pool->started == threads - 1;
}

/* See pool.h. */
void
cai_pool_start(cai_pool *pool, int threads)
{
	int			blas_prev = cai_blas_get_threads();

	memset(pool, 0, sizeof(*pool));
	pool->n = 1;
	if (threads > 1)
	{
		if (pool_spawn(pool, threads))
			pool->n = threads;
		else
			cai_pool_stop(pool);
	}
	/* with the pool every thread runs single-threaded BLAS */
	cai_blas_set_threads(pool->n > 1 ? 1 : threads);
	pool->blas_prev = blas_prev;
	pool->blas_set = true;
}

/* See pool.h. */
cai_status
cai_pool_run(cai_pool *pool, cai_pool_fn fn, void *ctx, cai_error *err)
{
	if (pool->n <= 1)
		return fn(ctx, 0, err);
	for (int s = 0; s < pool->n; s++)
	{
		pool->st[s] = CAI_OK;
		pool->err[s].status = CAI_OK;
		pool->err[s].msg[0] = '\0';
	}
	pthread_mutex_lock(&pool->mu);
	pool->fn = fn;
	pool->ctx = ctx;
	pool->pending = pool->n - 1;
	pool->gen++;
	pthread_cond_broadcast(&pool->go);
	pthread_mutex_unlock(&pool->mu);
	pool->st[0] = fn(ctx, 0, &pool->err[0]);
	pthread_mutex_lock(&pool->mu);
	while (pool->pending > 0)
		pthread_cond_wait(&pool->done, &pool->mu);
	pthread_mutex_unlock(&pool->mu);
	for (int s = 0; s < pool->n; s++)
		if (pool->st[s] != CAI_OK)
		{
			if (err != NULL)
				*err = pool->err[s];
			return pool->st[s];
		}
	return CAI_OK;
}

/* See pool.h. */
void
cai_pool_stop(cai_pool *pool)
{
	if (pool->started > 0)
	{
		pthread_mutex_lock(&pool->mu);
		pool->exit = true;
		pool->gen++;
		pthread_cond_broadcast(&pool->go);
		pthread_mutex_unlock(&pool->mu);
		for (int s = 1; s <= pool->started; s++)
			pthread_join(pool->th[s].th, NULL);
		pool->started = 0;
	}
	if (pool->sync_ok)
	{
		pthread_cond_destroy(&pool->done);
		pthread_cond_destroy(&pool->go);
		pthread_mutex_destroy(&pool->mu);
		pool->sync_ok = false;
	}
	if (pool->blas_set)
		cai_blas_set_threads(pool->blas_prev);
	cai_free(pool->th);
	cai_free(pool->st);
	cai_free(pool->err);
	memset(pool, 0, sizeof(*pool));
	pool->n = 1;
}
