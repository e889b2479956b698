/*
 * pool.h: the data-parallel thread pool of training (internal to src/core).
 *
 * A pool of n shards runs a job fn(ctx, shard, err) once for every shard
 * 0..n-1 and waits for all of them: shard 0 on the calling thread, shard
 * s >= 1 always on the same pool thread s.  It knows nothing of models: the
 * architecture splits its batch over the shards, gives each shard its own
 * preallocated buffers and reduces their outputs in shard order after the
 * job, so the result depends on the data, the seed and n only.
 *
 * Pool threads entered cai_pool_thread_enter() (they must not allocate or
 * free through the core's allocator: in the server it is a memory context)
 * and block every signal (the server's handlers run on the main thread
 * only).  They never call the progress callback.  While the pool runs, BLAS
 * is single-threaded.
 *
 * A run:
 *     cai_pool_start(&pool, threads);        (before the training buffers)
 *     ... allocate pool.n shards' buffers ...
 *     st = cai_pool_run(&pool, job, ctx, err);   (as often as needed)
 *     cai_pool_stop(&pool);                   (before training returns)
 */
#ifndef CAI_POOL_H
#define CAI_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "cai/common.h"

/*
 * A job's body for one shard.  It writes only its shard's outputs and
 * reports a failure through its status and err (the shard's own).
 */
typedef cai_status (*cai_pool_fn) (void *ctx, int shard, cai_error *err);

struct cai_pool;

typedef struct cai_pool_thread
{
	struct cai_pool *pool;
	int			shard;
	pthread_t	th;
} cai_pool_thread;

typedef struct cai_pool
{
	int			n;				/* shards (1 = no pool threads: jobs run on the caller) */
	int			started;		/* pool threads running (shards 1..started) */
	cai_pool_thread *th;		/* (n) th[s] runs shard s, s >= 1 */
	cai_status *st;				/* (n) each shard's status of the last job */
	cai_error  *err;			/* (n) each shard's error of the last job */
	pthread_mutex_t mu;
	pthread_cond_t go;
	pthread_cond_t done;
	bool		sync_ok;		/* mu, go, done initialised */
	/*
	 * the current job, written under mu; gen and pending are also read
	 * without it (atomic loads, pool.c): the threads poll them
	 */
	uint64_t	gen;			/* job generation */
	uint64_t	pending;		/* pool threads still on the job */
	bool		exit;			/* the pool threads return */
	bool		launched;		/* a cai_pool_launch not joined yet */
	cai_pool_fn fn;
	void	   *ctx;
	/* BLAS threads to restore at cai_pool_stop */
	bool		blas_set;
	int			blas_prev;
} cai_pool;

/*
 * Start threads - 1 pool threads (they wait for the first job) and set the
 * BLAS threads: 1 with the pool, threads without it.  Any failure (or
 * threads <= 1) leaves a pool of one shard, jobs then run on the caller
 * with BLAS on threads threads: training is slower, never refused.
 */
void		cai_pool_start(cai_pool *pool, int threads);

/*
 * Run fn(ctx, s, &pool->err[s]) for s = 0..n-1 and wait for all.  Returns
 * the status of the first failing shard in shard order (its error copied
 * into err), else CAI_OK; pool->st[s] and pool->err[s] keep every shard's.
 * With one shard: fn(ctx, 0, err) on the caller.
 */
cai_status	cai_pool_run(cai_pool *pool, cai_pool_fn fn, void *ctx, cai_error *err);

/*
 * cai_pool_run in two halves, for a caller with other work meanwhile:
 * cai_pool_launch starts fn(ctx, s, &pool->err[s]) on the pool threads
 * s = 1..n-1 only (shard 0 is the caller's to run or not) and returns;
 * cai_pool_join waits for them and returns as cai_pool_run.  Nothing else
 * may run on the pool in between.  With one shard launch does nothing and
 * join returns CAI_OK.  cai_pool_stop joins a launched job first.
 */
void		cai_pool_launch(cai_pool *pool, cai_pool_fn fn, void *ctx);
cai_status	cai_pool_join(cai_pool *pool, cai_error *err);

/*
 * Join the pool threads, restore the BLAS threads cai_pool_start found and
 * free the pool: it is a pool of one shard again.  Idempotent; a zeroed
 * cai_pool may be stopped.
 */
void		cai_pool_stop(cai_pool *pool);

#endif							/* CAI_POOL_H */
