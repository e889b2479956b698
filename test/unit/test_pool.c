/*
 * test_pool.c: the training pool (pool.c) with toy jobs: every shard runs
 * exactly once per job, shard 0 on the caller and shard s always on pool
 * thread s, many jobs in a row, the barrier, shard errors, launch and join,
 * signals blocked
 * and the allocation guard on the pool threads, the BLAS threads, stop
 * without jobs and a pool of one shard.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "../../src/core/pool.h"

enum
{
	MAX_SHARDS = 8
};

/* The status a failing shard s returns: one of its own (shard 0 CAI_ERR_NOMEM, 1 CAI_ERR_INVALID, ...). */
#define SHARD_STATUS(s) ((cai_status) (CAI_ERR_NOMEM + (s)))

/* What the toy jobs record, one slot per shard (the job never allocates). */
typedef struct Toy
{
	int			runs[MAX_SHARDS];	/* calls of shard s */
	pthread_t	thread[MAX_SHARDS]; /* thread of the last call */
	bool		on_pool[MAX_SHARDS];	/* cai_on_pool_thread() there */
	bool		masked[MAX_SHARDS]; /* SIGINT, SIGTERM and SIGUSR1 blocked there */
	int			slow_shard;		/* this shard sleeps first (-1: none) */
	int			fail_from;		/* shards >= this fail with SHARD_STATUS, -1: none */
	int			sum_after;		/* the caller's sum of runs, read after the barrier */
} Toy;

static cai_status
toy_job(void *ctx, int s, cai_error *err)
{
	Toy		   *t = ctx;
	sigset_t	mask;

	if (s == t->slow_shard)
	{
		struct timespec ts = {0, 2 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	t->runs[s]++;
	t->thread[s] = pthread_self();
	t->on_pool[s] = cai_on_pool_thread();
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	t->masked[s] = sigismember(&mask, SIGINT) == 1 && sigismember(&mask, SIGTERM) == 1 &&
		sigismember(&mask, SIGUSR1) == 1;
	if (t->fail_from >= 0 && s >= t->fail_from)
		return cai_error_set(err, SHARD_STATUS(s), "shard %d failed", s);
	return CAI_OK;
}

static void
toy_init(Toy *t)
{
	memset(t, 0, sizeof(*t));
	t->slow_shard = -1;
	t->fail_from = -1;
}

/* Every shard once per job, on its own thread, many jobs in a row; the barrier. */
static void
test_jobs(void)
{
	cai_pool	pool;
	Toy			t;
	pthread_t	first[MAX_SHARDS];
	cai_error	err = {0};
	int			bad_runs = 0,
				bad_thread = 0,
				bad_sum = 0;
	const int	jobs = 2000;

	toy_init(&t);
	cai_pool_start(&pool, 4);
	CHECK(pool.n == 4 && pool.started == 3, "4 shards, 3 pool threads (n %d, started %d)", pool.n, pool.started);
	for (int j = 1; j <= jobs; j++)
	{
		int			sum = 0;

		t.slow_shard = j % 50 == 0 ? j / 50 % 4 : -1;	/* now and then one shard is late */
		if (cai_pool_run(&pool, toy_job, &t, &err) != CAI_OK)
		{
			CHECK(0, "job %d: %s", j, err.msg);
			break;
		}
		for (int s = 0; s < pool.n; s++)
		{
			sum += t.runs[s];
			bad_runs += t.runs[s] != j;
			if (j == 1)
				first[s] = t.thread[s];
			else
				bad_thread += !pthread_equal(first[s], t.thread[s]);
		}
		bad_sum += sum != 4 * j;	/* the late shard finished before cai_pool_run returned */
	}
	CHECK(bad_runs == 0, "every shard ran exactly once per job (%d misses)", bad_runs);
	CHECK(bad_sum == 0, "cai_pool_run waits for every shard (%d early returns)", bad_sum);
	CHECK(bad_thread == 0, "shard s always runs on the same thread (%d moves)", bad_thread);
	CHECK(pthread_equal(t.thread[0], pthread_self()) && !t.on_pool[0], "shard 0 runs on the caller");
	for (int s = 1; s < pool.n; s++)
	{
		CHECK(!pthread_equal(t.thread[s], pthread_self()) && t.on_pool[s], "shard %d runs on a pool thread", s);
		CHECK(t.masked[s], "shard %d: signals are blocked on its pool thread", s);
		for (int r = 1; r < s; r++)
			CHECK(!pthread_equal(t.thread[s], t.thread[r]), "shards %d and %d have their own threads", r, s);
	}
	CHECK(!t.masked[0], "the caller's signal mask is left as it was");
	cai_pool_stop(&pool);
	CHECK(pool.n == 1 && pool.started == 0 && pool.th == NULL, "stopped: a pool of one shard");
	cai_pool_stop(&pool);
	CHECK(pool.n == 1, "stop twice");
}

/* A shard's failure: the first in shard order is returned, every shard's is kept. */
static void
test_errors(void)
{
	cai_pool	pool;
	Toy			t;
	cai_error	err = {0};
	cai_status	st;

	toy_init(&t);
	cai_pool_start(&pool, 3);
	t.fail_from = 1;
	st = cai_pool_run(&pool, toy_job, &t, &err);
	CHECK(st == SHARD_STATUS(1) && strcmp(err.msg, "shard 1 failed") == 0,
		  "the first failing shard's status and error (%d, %s)", (int) st, err.msg);
	CHECK(pool.st[0] == CAI_OK && pool.st[1] == SHARD_STATUS(1) && pool.st[2] == SHARD_STATUS(2) &&
		  strcmp(pool.err[2].msg, "shard 2 failed") == 0, "each shard's status and error are kept");
	CHECK(t.runs[0] == 1 && t.runs[1] == 1 && t.runs[2] == 1, "a failing job still ran every shard once");
	t.fail_from = 2;
	st = cai_pool_run(&pool, toy_job, &t, &err);
	CHECK(st == SHARD_STATUS(2) && strcmp(err.msg, "shard 2 failed") == 0 && pool.st[1] == CAI_OK,
		  "the next job reports its own failures only (%d, %s)", (int) st, err.msg);
	t.fail_from = 0;
	st = cai_pool_run(&pool, toy_job, &t, NULL);
	CHECK(st == SHARD_STATUS(0), "shard 0 fails first; err may be NULL");
	t.fail_from = -1;
	CHECK(cai_pool_run(&pool, toy_job, &t, &err) == CAI_OK && pool.st[2] == CAI_OK, "then a job succeeds");
	CHECK(t.runs[0] == 4 && t.runs[1] == 4 && t.runs[2] == 4, "4 jobs, 4 runs of each shard");
	cai_pool_stop(&pool);
}

/*
 * cai_pool_launch / cai_pool_join: the pool threads' shards run while the
 * caller works (shard 0 is not run), join waits for a late one and returns
 * the first failure; cai_pool_run works after; stop joins a launched job;
 * with one shard both do nothing.
 */
static void
test_launch_join(void)
{
	cai_pool	pool;
	Toy			t;
	cai_error	err = {0};
	cai_status	st;

	toy_init(&t);
	cai_pool_start(&pool, 3);
	t.slow_shard = 2;
	cai_pool_launch(&pool, toy_job, &t);
	CHECK(pool.launched, "launched");
	st = cai_pool_join(&pool, &err);
	CHECK(st == CAI_OK && !pool.launched, "joined (%d)", (int) st);
	CHECK(t.runs[0] == 0 && t.runs[1] == 1 && t.runs[2] == 1, "the pool threads' shards ran once, shard 0 not (%d %d %d)",
		  t.runs[0], t.runs[1], t.runs[2]);
	CHECK(t.on_pool[1] && t.on_pool[2], "on the pool threads");
	t.slow_shard = -1;
	t.fail_from = 2;
	cai_pool_launch(&pool, toy_job, &t);
	st = cai_pool_join(&pool, &err);
	CHECK(st == SHARD_STATUS(2) && strcmp(err.msg, "shard 2 failed") == 0, "join returns a failure (%d, %s)",
		  (int) st, err.msg);
	CHECK(cai_pool_join(&pool, &err) == CAI_OK, "a second join has nothing to wait for");
	t.fail_from = -1;
	CHECK(cai_pool_run(&pool, toy_job, &t, &err) == CAI_OK && t.runs[0] == 1 && t.runs[2] == 3,
		  "cai_pool_run after a join");
	t.slow_shard = 1;
	cai_pool_launch(&pool, toy_job, &t);
	cai_pool_stop(&pool);
	CHECK(t.runs[1] == 4 && pool.n == 1, "stop joins a launched job first (runs %d)", t.runs[1]);
	cai_pool_start(&pool, 1);
	cai_pool_launch(&pool, toy_job, &t);
	CHECK(cai_pool_join(&pool, &err) == CAI_OK && t.runs[0] == 1, "one shard: launch and join do nothing");
	cai_pool_stop(&pool);
}

/* Stop without a job, a zeroed pool, a pool of one shard; the BLAS threads. */
static void
test_start_stop(void)
{
	cai_pool	pool;
	Toy			t;
	cai_error	err = {0};

	cai_blas_set_threads(2);
	cai_pool_start(&pool, 3);
	CHECK(pool.n == 3 && cai_blas_get_threads() == 1, "with the pool BLAS is single-threaded (%d)",
		  cai_blas_get_threads());
	cai_pool_stop(&pool);
	CHECK(pool.n == 1 && cai_blas_get_threads() == 2, "stop without jobs restores BLAS threads (%d)",
		  cai_blas_get_threads());

	memset(&pool, 0, sizeof(pool));
	cai_pool_stop(&pool);
	CHECK(pool.n == 1 && cai_blas_get_threads() == 2, "a zeroed pool stops, BLAS untouched");

	toy_init(&t);
	cai_pool_start(&pool, 1);
	CHECK(pool.n == 1 && pool.started == 0 && cai_blas_get_threads() == 1, "threads 1: no pool thread");
	t.fail_from = 0;
	CHECK(cai_pool_run(&pool, toy_job, &t, &err) == SHARD_STATUS(0) && strcmp(err.msg, "shard 0 failed") == 0 &&
		  t.runs[0] == 1 && pthread_equal(t.thread[0], pthread_self()),
		  "one shard: the job runs on the caller, its error straight into err");
	cai_pool_stop(&pool);
	CHECK(cai_blas_get_threads() == 2, "BLAS threads restored (%d)", cai_blas_get_threads());
	cai_blas_set_threads(1);
}

/*
 * Run body in a child process; its stderr into out.  The wait status, -1 if
 * the child could not run.
 */
static int
child_status(void (*body) (void), char *out, size_t size)
{
	int			fds[2];
	pid_t		pid;
	int			status = 0;
	ssize_t		n;

	out[0] = '\0';
	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0)
	{
		dup2(fds[1], 2);
		close(fds[0]);
		body();
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], out, size - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* A thread of its own that enters the guard and allocates. */
static void *
allocating_thread(void *arg)
{
	cai_pool_thread_enter();
	cai_free(cai_malloc(16));
	return arg;
}

static void
allocate_on_thread(void)
{
	pthread_t	th;

	if (pthread_create(&th, NULL, allocating_thread, NULL) == 0)
		pthread_join(th, NULL);
}

/* A job that allocates on shard 1. */
static cai_status
allocating_job(void *ctx, int s, cai_error *err)
{
	if (s == 1)
		cai_free(cai_malloc(24));
	return CAI_OK;
}

static void
allocate_in_job(void)
{
	cai_pool	pool;

	cai_pool_start(&pool, 2);
	if (pool.n == 2)
		cai_pool_run(&pool, allocating_job, NULL, NULL);
	cai_pool_stop(&pool);
}

/* The allocation guard (common.c): a pool thread that allocates aborts and says why. */
static void
test_alloc_guard(void)
{
	char		out[512];
	int			status;
	void	   *p = cai_malloc(16);

	CHECK(p != NULL && !cai_on_pool_thread(), "the main thread allocates");
	cai_free(p);
#ifndef CAI_CHECK_POOL_ALLOC
	CHECK(0, "the unit tests must be built with CAI_CHECK_POOL_ALLOC (core.mk)");
	return;
#endif
	status = child_status(allocate_on_thread, out, sizeof(out));
	CHECK(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		  "an allocation on a thread that entered the guard aborts (status %d)", status);
	CHECK(strstr(out, "cai_malloc(16) on a pool thread") != NULL, "and says why: %s", out);
	status = child_status(allocate_in_job, out, sizeof(out));
	CHECK(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		  "an allocation in a job on a pool thread aborts (status %d)", status);
	CHECK(strstr(out, "cai_malloc(24) on a pool thread") != NULL, "and says why: %s", out);
}

int
main(void)
{
	test_jobs();
	test_errors();
	test_launch_join();
	test_start_stop();
	test_alloc_guard();
	return check_summary("test_pool");
}
