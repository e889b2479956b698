/*
 * pair_probe.c: how two threads that share nothing scale on this machine,
 * now: the same work on one thread, then on two at once, for two kinds of
 * work, and the throughput of two against one (2.00x = two full CPUs).
 *
 *   build/bench/pair_probe [SCALE]        default 1 (about 1.5 s in all)
 *
 * - "registers": a multiply-xor chain kept in registers (no memory);
 * - "memory": 16-float read-modify-writes at random places of the thread's
 *   own 64 MB buffer (cache and memory latency, no line shared).
 *
 * Why: two-thread fast training (lock-free, shared embedding rows) runs at
 * 1.5x one thread's rate in some minutes and 2.1x in others on these 2-vCPU
 * guests.  If work that shares nothing also drops below 2x at such times,
 * the host is sharing a core or memory between the vCPUs; if it stays near
 * 2x while training does not, the cost is the lines the threads share.
 * bench/results-threads-sql.md records what it found.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MEM_FLOATS ((size_t) 16 << 20)	/* 64 MB a thread */

typedef struct Job
{
	int			kind;			/* 0 registers, 1 memory */
	long		iterations;
	float	   *buf;
	uint64_t	seed;
	uint64_t	out;
} Job;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void *
run(void *arg)
{
	Job		   *j = arg;
	uint64_t	x = j->seed * 2 + 1;
	uint64_t	y = 3;

	for (long i = 0; i < j->iterations; i++)
	{
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		if (j->kind == 0)
			y ^= x >> 7;
		else
		{
			size_t		at = (size_t) (x >> 33) & (MEM_FLOATS - 1) & ~(size_t) 15;

			for (int q = 0; q < 16; q++)
				j->buf[at + (size_t) q] += 0.5f;
		}
	}
	j->out = x ^ y;
	return NULL;
}

/* Seconds of one job alone, then of two at once: the throughput ratio. */
static double
pair_ratio(int kind, long iterations, float **bufs, double *one, double *two)
{
	Job			jobs[2];
	pthread_t	th[2];
	double		t0;

	for (int k = 0; k < 2; k++)
		jobs[k] = (Job) {.kind = kind,.iterations = iterations,.buf = bufs[k],.seed = (uint64_t) k};
	t0 = now();
	run(&jobs[0]);
	*one = now() - t0;
	t0 = now();
	for (int k = 0; k < 2; k++)
		if (pthread_create(&th[k], NULL, run, &jobs[k]) != 0)
		{
			fprintf(stderr, "pair_probe: cannot start a thread\n");
			exit(1);
		}
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	*two = now() - t0;
	return 2.0 * *one / *two;
}

int
main(int argc, char **argv)
{
	double		scale = argc > 1 ? atof(argv[1]) : 1.0;
	float	   *bufs[2];
	double		one,
				two,
				r;

	if (!(scale > 0 && scale <= 1000))
	{
		fprintf(stderr, "usage: pair_probe [SCALE, above 0 and at most 1000]\n");
		return 2;
	}
	for (int k = 0; k < 2; k++)
	{
		if ((bufs[k] = malloc(sizeof(float) * MEM_FLOATS)) == NULL)
		{
			fprintf(stderr, "pair_probe: out of memory\n");
			return 1;
		}
		for (size_t i = 0; i < MEM_FLOATS; i++)
			bufs[k][i] = (float) (i & 1023);
	}
	r = pair_ratio(0, (long) (3e8 * scale), bufs, &one, &two);
	printf("registers: one %.3f s, two %.3f s, %.2fx\n", one, two, r);
	r = pair_ratio(1, (long) (2e7 * scale), bufs, &one, &two);
	printf("memory: one %.3f s, two %.3f s, %.2fx\n", one, two, r);
	free(bufs[0]);
	free(bufs[1]);
	return 0;
}
