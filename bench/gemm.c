/*
 * gemm.c: micro-benchmark of cblas_sgemm (row-major, float32) for the matrix
 * shapes cai_synergy's models use, with 1 and 2 OpenBLAS threads.
 *
 *   make -f core.mk bench && build/bench/gemm [--quick]
 *
 * For each shape and thread count: calibrate an inner loop to at least
 * ~20 ms (5 ms with --quick), take 15 (3) such samples and report the median
 * and the best GFLOP/s (2*M*N*K flops per call) and the median time per
 * call.  The best sample is the better estimate of what the hardware can do
 * on a machine shared with other jobs; the median is what a job saw.
 *
 * Also estimates the effective core clock with a chain of dependent integer
 * adds (1 cycle each), since VMs report only the nominal clock, and measures
 * the single-thread throughput of a loop of independent 256-bit FMAs.
 *
 * Prints a markdown table and KEY value lines on stdout; bench/gemm.sh wraps
 * them into bench/results-gemm.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

typedef struct shape
{
	const char *name;
	const char *what;
	int			m;
	int			n;
	int			k;
	int			trans_a;		/* A stored (K, M), used transposed */
	int			trans_b;		/* B stored (N, K), used transposed */
} shape;

static const shape shapes[] = {
	{"lstm_step", "LSTM recurrent step: h (B=32, H=200) x W_hh (200, 4H=800)", 32, 800, 200, 0, 0},
	{"lstm_step_dW", "LSTM step backward dW_hh: h^T (200, 32) x dgates (32, 800)", 200, 800, 32, 1, 0},
	{"lstm_step_dh", "LSTM step backward dh: dgates (32, 800) x W_hh^T (800, 200)", 32, 200, 800, 0, 1},
	{"lstm_input_proj", "LSTM input projection, all steps: x (B*T=32*40, E=125) x W_ih (125, 800)", 1280, 800, 125, 0, 0},
	{"classifier_k2", "classifier: (256, 300) x (300, K=2)", 256, 2, 300, 0, 0},
	{"classifier_k5", "classifier: (256, 300) x (300, K=5)", 256, 5, 300, 0, 0},
	{"classifier_k20", "classifier: (256, 300) x (300, K=20)", 256, 20, 300, 0, 0},
	{"embbag_out", "embedding-bag output, one row: (1, 100) x (100, 2)", 1, 2, 100, 0, 0},
	{"embbag_out_b64", "embedding-bag output, batch 64: (64, 100) x (100, 2)", 64, 2, 100, 0, 0},
	{"charcnn_im2col", "char CNN im2col: (T*B=1280*16, 3*30=90) x (90, 50)", 20480, 50, 90, 0, 0},
	{"square_512", "square 512^3", 512, 512, 512, 0, 0},
	{"square_1024", "square 1024^3 (peak)", 1024, 1024, 1024, 0, 0},
};

#define N_SHAPES ((int) (sizeof(shapes) / sizeof(shapes[0])))

static double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

static float *
alloc_rand(size_t n, unsigned *seed)
{
	float	   *p = NULL;

	if (posix_memalign((void **) &p, 64, n * sizeof(float)) != 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
	{
		*seed = *seed * 1664525u + 1013904223u;
		p[i] = (float) (*seed >> 8) / 16777216.0f - 0.5f;
	}
	return p;
}

static void
run_gemm(const shape *s, const float *a, const float *b, float *c)
{
	int			lda = s->trans_a ? s->m : s->k;
	int			ldb = s->trans_b ? s->k : s->n;

	cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans,
				s->trans_b ? CblasTrans : CblasNoTrans,
				s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
}

/* Effective clock in GHz: best of several runs of 10^8 dependent adds; 0 if unknown. */
static double
estimate_ghz(void)
{
#if defined(__x86_64__)
	double		best = 0;

	for (int r = 0; r < 15; r++)
	{
		unsigned long x = 0;
		double		t = now_sec();

		for (int i = 0; i < 1000000; i++)
			__asm__ volatile(".rept 100\n\tadd $1, %0\n\t.endr" : "+r"(x));
		t = now_sec() - t;
		if (x == 100000000UL && 0.1 / t > best)
			best = 0.1 / t;
	}
	return best;
#else
	return 0;
#endif
}

/*
 * Single-thread FMA throughput in GFLOP/s: 10 independent chains of 256-bit
 * vfmadd231ps (8 lanes x 2 flops each), best of several runs; 0 if not built
 * for AVX2+FMA.  Confirms the 32 flops/cycle assumption.
 */
static double
fma_loop_gflops(void)
{
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
	double		best = 0;

	for (int r = 0; r < 10; r++)
	{
		const long	iters = 5000000;
		double		t = now_sec();

		for (long i = 0; i < iters; i++)
			__asm__ volatile(".rept 10\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm3\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm4\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm5\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm6\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm7\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm8\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm9\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm10\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm11\n\t"
							 "vfmadd231ps %%ymm1, %%ymm2, %%ymm12\n\t"
							 ".endr"
							 :::"xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
							 "xmm9", "xmm10", "xmm11", "xmm12");
		t = now_sec() - t;
		if (iters * 100 * 16.0 / t * 1e-9 > best)
			best = iters * 100 * 16.0 / t * 1e-9;
	}
	__asm__ volatile("vzeroupper");
	return best;
#else
	return 0;
#endif
}

/* Median and best GFLOP/s, median microseconds per call. */
static void
measure(const shape *s, int samples, double min_sec, double *gflops, double *best,
		double *usec)
{
	unsigned	seed = 12345;
	float	   *a = alloc_rand((size_t) s->m * s->k, &seed);
	float	   *b = alloc_rand((size_t) s->k * s->n, &seed);
	float	   *c = alloc_rand((size_t) s->m * s->n, &seed);
	double		flops = 2.0 * s->m * s->n * s->k;
	double		times[32];
	long		iters = 1;
	double		t;

	if (a == NULL || b == NULL || c == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	/* warm up, then grow the inner loop until one sample takes min_sec */
	run_gemm(s, a, b, c);
	for (;;)
	{
		t = now_sec();
		for (long i = 0; i < iters; i++)
			run_gemm(s, a, b, c);
		t = now_sec() - t;
		if (t >= min_sec)
			break;
		iters = t <= 0 ? iters * 10 : (long) (iters * (min_sec / t) * 1.2) + 1;
	}
	for (int r = 0; r < samples; r++)
	{
		t = now_sec();
		for (long i = 0; i < iters; i++)
			run_gemm(s, a, b, c);
		times[r] = (now_sec() - t) / iters;
	}
	qsort(times, samples, sizeof(double), cmp_double);
	*usec = times[samples / 2] * 1e6;
	*gflops = flops / times[samples / 2] * 1e-9;
	*best = flops / times[0] * 1e-9;
	free(a);
	free(b);
	free(c);
}

int
main(int argc, char **argv)
{
	int			quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	int			samples = quick ? 3 : 15;
	double		min_sec = quick ? 0.005 : 0.02;
	double		peak[3] = {0, 0, 0};
	double		peak_best[3] = {0, 0, 0};
	double		ghz = estimate_ghz();
	double		fma = fma_loop_gflops();

	printf("| shape | M | N | K | op | 1 thread GFLOP/s median | best | us/call | 2 threads GFLOP/s median | best | us/call | what |\n");
	printf("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n");
	for (int i = 0; i < N_SHAPES; i++)
	{
		const shape *s = &shapes[i];
		double		g[3];
		double		gb[3];
		double		us[3];

		for (int th = 1; th <= 2; th++)
		{
			openblas_set_num_threads(th);
			measure(s, samples, min_sec, &g[th], &gb[th], &us[th]);
			if (strcmp(s->name, "square_1024") == 0)
			{
				peak[th] = g[th];
				peak_best[th] = gb[th];
			}
		}
		printf("| %s | %d | %d | %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n",
			   s->name, s->m, s->n, s->k,
			   s->trans_a ? "A^T B" : s->trans_b ? "A B^T" : "A B",
			   g[1], gb[1], us[1], g[2], gb[2], us[2], s->what);
		fflush(stdout);
	}
	printf("\nMEASURED_PEAK_1T %.1f %.1f\nMEASURED_PEAK_2T %.1f %.1f\n",
		   peak[1], peak_best[1], peak[2], peak_best[2]);
	printf("CLOCK_GHZ %.2f\n", ghz);
	printf("FMA_LOOP_1T %.1f\n", fma);
	printf("OPENBLAS_CONFIG %s (core %s)\n", openblas_get_config(), openblas_get_corename());
	return 0;
}
