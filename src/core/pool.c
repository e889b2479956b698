/*
 * pool.c: the data-parallel thread pool of training (see pool.h).
 *
 * One mutex and two condition variables: the caller publishes a job under a
 * new generation and wakes the pool threads (go), runs shard 0 itself, then
 * waits until the last pool thread has finished (done): a barrier per job.
 * Both sides poll briefly before they sleep (POOL_SPINS).
 */
#include "pool.h"

#include <signal.h>
#include <string.h>

/*
 * A job's hand-over is a spin, then a sleep: a data-parallel training step
 * runs three or four jobs of a fraction of a millisecond each, and waking a
 * sleeping thread through the condition variable costs tens of
 * microseconds (more in a virtual machine), so a thread first polls the
 * word it waits on for POOL_SPINS pauses (about 50-200 microseconds) and
 * sleeps only if nothing came: between epochs, or while the caller works
 * alone.  Correctness rests on the mutex alone: every change of gen and
 * pending is also made or re-checked under it before anyone sleeps.
 */
#define POOL_SPINS 4000

static inline void
pool_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Poll *word for at most POOL_SPINS pauses until it equals value (equal) or
 * differs from it (!equal): true if it came.
 */
static bool
pool_spin(const uint64_t *word, uint64_t value, bool equal)
{
	for (int i = 0; i < POOL_SPINS; i++)
	{
		if ((__atomic_load_n(word, __ATOMIC_ACQUIRE) == value) == equal)
			return true;
		pool_relax();
	}
	return false;
}

/*
 * Body of pool thread s >= 1: run each new job on shard s until told to
 * exit.  The caller writes fn, ctx, pending and exit before it publishes
 * the job's generation (a release store, under mu), so a thread that saw
 * the new generation (an acquire load) reads them without the mutex.
 */
static void *
pool_main(void *arg)
{
	cai_pool_thread *me = arg;
	cai_pool   *pool = me->pool;
	int			s = me->shard;
	uint64_t	seen = 0;

	cai_pool_thread_enter();
	for (;;)
	{
		if (!pool_spin(&pool->gen, seen, false))
		{
			pthread_mutex_lock(&pool->mu);
			while (__atomic_load_n(&pool->gen, __ATOMIC_ACQUIRE) == seen)
				pthread_cond_wait(&pool->go, &pool->mu);
			pthread_mutex_unlock(&pool->mu);
		}
		seen = __atomic_load_n(&pool->gen, __ATOMIC_ACQUIRE);
		if (pool->exit)
			break;
		pool->st[s] = pool->fn(pool->ctx, s, &pool->err[s]);
		/* the last one wakes the caller, in case it sleeps (it re-checks pending under mu) */
		if (__atomic_sub_fetch(&pool->pending, 1, __ATOMIC_ACQ_REL) == 0)
		{
			pthread_mutex_lock(&pool->mu);
			pthread_cond_signal(&pool->done);
			pthread_mutex_unlock(&pool->mu);
		}
	}
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
void
cai_pool_launch(cai_pool *pool, cai_pool_fn fn, void *ctx)
{
	if (pool->n <= 1)
		return;
	for (int s = 0; s < pool->n; s++)
	{
		pool->st[s] = CAI_OK;
		pool->err[s].status = CAI_OK;
		pool->err[s].msg[0] = '\0';
	}
	pthread_mutex_lock(&pool->mu);
	pool->fn = fn;
	pool->ctx = ctx;
	pool->launched = true;
	__atomic_store_n(&pool->pending, (uint64_t) pool->n - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&pool->gen, pool->gen + 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&pool->go);
	pthread_mutex_unlock(&pool->mu);
}

/* Wait until every pool thread has finished the launched job. */
static void
pool_wait(cai_pool *pool)
{
	if (!pool_spin(&pool->pending, 0, true))
	{
		pthread_mutex_lock(&pool->mu);
		while (__atomic_load_n(&pool->pending, __ATOMIC_ACQUIRE) > 0)
			pthread_cond_wait(&pool->done, &pool->mu);
		pthread_mutex_unlock(&pool->mu);
	}
	pool->launched = false;
}

/* See pool.h. */
cai_status
cai_pool_join(cai_pool *pool, cai_error *err)
{
	if (pool->n <= 1 || !pool->launched)
		return CAI_OK;
	pool_wait(pool);
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
cai_status
cai_pool_run(cai_pool *pool, cai_pool_fn fn, void *ctx, cai_error *err)
{
	if (pool->n <= 1)
		return fn(ctx, 0, err);
	cai_pool_launch(pool, fn, ctx);
	pool->st[0] = fn(ctx, 0, &pool->err[0]);
	return cai_pool_join(pool, err);
}

/* See pool.h. */
void
cai_pool_stop(cai_pool *pool)
{
	if (pool->launched)
		pool_wait(pool);
	if (pool->started > 0)
	{
		pthread_mutex_lock(&pool->mu);
		pool->exit = true;
		__atomic_store_n(&pool->gen, pool->gen + 1, __ATOMIC_RELEASE);
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
