/*
 * line_rtt.c: how long a cache line takes to go from one CPU to another and
 * back, now: two threads pinned to CPUs A and B hand one word back and forth
 * (each waits for the other's store, then stores), and the mean round trip
 * is printed in nanoseconds.
 *
 *   build/bench/line_rtt [ITERATIONS [CPU_A CPU_B]]     default 20000, CPUs 0 and 1
 *
 * Why: the lock-free training's threads share rows of the embedding table,
 * and what a shared write costs is this round trip.  On the project's 2-vCPU
 * guests the host moves the two vCPUs: the same machine measured 55 ns and
 * 330 ns minutes apart, and two-thread epochs ran at about twice one
 * thread's rate in the first case and near one thread's in the second
 * (bench/threads_sql.sh records it before each timed training).  20,000
 * round trips take 1-7 ms, little enough to probe between runs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Probe
{
	_Alignas(64) volatile int turn;	/* 1: the other thread's move, 0: ours */
	long		iterations;
	int			cpu;
	int			pinned;
} Probe;

static int
pin(int cpu)
{
	cpu_set_t	set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

static void *
other(void *arg)
{
	Probe	   *p = arg;

	p->pinned = pin(p->cpu);
	for (long i = 0; i < p->iterations; i++)
	{
		while (__atomic_load_n(&p->turn, __ATOMIC_ACQUIRE) != 1)
			;
		__atomic_store_n(&p->turn, 0, __ATOMIC_RELEASE);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static Probe p;
	pthread_t	th;
	struct timespec t0,
				t1;
	int			cpu_a = argc > 3 ? atoi(argv[2]) : 0;

	p.iterations = argc > 1 ? atol(argv[1]) : 20000;
	p.cpu = argc > 3 ? atoi(argv[3]) : 1;
	if (p.iterations < 1 || !pin(cpu_a))
	{
		fprintf(stderr, "usage: %s [ITERATIONS [CPU_A CPU_B]] (CPUs this process may use)\n", argv[0]);
		return 2;
	}
	if (pthread_create(&th, NULL, other, &p) != 0)
	{
		perror("pthread_create");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < p.iterations; i++)
	{
		__atomic_store_n(&p.turn, 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&p.turn, __ATOMIC_ACQUIRE) != 0)
			;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(th, NULL);
	if (!p.pinned)
	{
		fprintf(stderr, "%s: cannot run on CPU %d\n", argv[0], p.cpu);
		return 2;
	}
	printf("%.1f\n", ((double) (t1.tv_sec - t0.tv_sec) * 1e9 + (double) (t1.tv_nsec - t0.tv_nsec)) / (double) p.iterations);
	return 0;
}
