/*
 * gemm.c: micro-benchmark of cblas_sgemm (row-major, float32) and of the
 * core's own SGEMM (src/core/gemm.h) for the matrix shapes cai_synergy's
 * models use, with 1 and 2 threads (the core's kernel with the threads the
 * encoder gives the shape: one for products under 2^23 multiply-adds).
 *
 *   make -f core.mk bench && build/bench/gemm [--quick] [--encoder]
 *
 * For each shape and kernel (OpenBLAS 1T, core 1T, OpenBLAS 2T, core 2T,
 * core AVX2 1T on an AVX-512 CPU): calibrate an inner loop to at least
 * ~20 ms (5 ms with --quick), then take 11 (3) samples of every kernel in
 * turn, so that the kernels see the same load on a shared machine, and
 * report the median GFLOP/s (2*M*N*K flops per call) and the ratios core /
 * OpenBLAS.  --encoder: the encoder's shapes only.
 *
 * Also estimates the effective core clock with a chain of dependent integer
 * adds (1 cycle each), since VMs report only the nominal clock, and measures
 * the single-thread throughput of loops of independent 256- and 512-bit FMAs.
 *
 * Prints a markdown table and KEY value lines on stdout; bench/gemm.sh wraps
 * them into bench/results-gemm.md.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "../src/core/gemm.h"

typedef struct shape
{
	const char *name;
	const char *what;
	int			m;
	int			n;
	int			k;
	int			trans_a;		/* A stored (K, M), used transposed */
	int			trans_b;		/* B stored (N, K), used transposed */
	int			encoder;		/* an encoder shape: counted in the target summary */
} shape;

static const shape shapes[] = {
	{"lstm_step", "LSTM recurrent step: h (B=32, H=200) x W_hh (200, 4H=800)", 32, 800, 200, 0, 0, 0},
	{"lstm_step_dW", "LSTM step backward dW_hh: h^T (200, 32) x dgates (32, 800)", 200, 800, 32, 1, 0, 0},
	{"lstm_step_dh", "LSTM step backward dh: dgates (32, 800) x W_hh^T (800, 200)", 32, 200, 800, 0, 1, 0},
	{"lstm_input_proj", "LSTM input projection, all steps: x (B*T=32*40, E=125) x W_ih (125, 800)", 1280, 800, 125, 0, 0, 0},
	{"classifier_k2", "classifier: (256, 300) x (300, K=2)", 256, 2, 300, 0, 0, 0},
	{"classifier_k5", "classifier: (256, 300) x (300, K=5)", 256, 5, 300, 0, 0, 0},
	{"classifier_k20", "classifier: (256, 300) x (300, K=20)", 256, 20, 300, 0, 0, 0},
	{"embbag_out", "embedding-bag output, one row: (1, 100) x (100, 2)", 1, 2, 100, 0, 0, 0},
	{"embbag_out_b64", "embedding-bag output, batch 64: (64, 100) x (100, 2)", 64, 2, 100, 0, 0, 0},
	{"charcnn_im2col", "char CNN im2col: (T*B=1280*16, 3*30=90) x (90, 50)", 20480, 50, 90, 0, 0, 0},
	{"square_512", "square 512^3", 512, 512, 512, 0, 0, 0},
	{"square_1024", "square 1024^3 (peak)", 1024, 1024, 1024, 0, 0, 0},
	/* BERT-base (H 768, I 3072, 12 heads of 64), batch 8 x 128 = 1024 tokens */
	{"bert_qkvo", "BERT-base Q/K/V/output projection: x (1024, 768) x W^T (768, 768)", 1024, 768, 768, 0, 1, 1},
	{"bert_ff1", "BERT-base feed-forward in: x (1024, 768) x W1^T (768, 3072)", 1024, 3072, 768, 0, 1, 1},
	{"bert_ff2", "BERT-base feed-forward out: gelu (1024, 3072) x W2^T (3072, 768)", 1024, 768, 3072, 0, 1, 1},
	{"bert_qkvo_dx", "backward dx: dout (1024, 768) x W (768, 768)", 1024, 768, 768, 0, 0, 1},
	{"bert_ff1_dx", "backward ff1 dx: dff (1024, 3072) x W1 (3072, 768)", 1024, 768, 3072, 0, 0, 1},
	{"bert_ff2_dx", "backward ff2 dx: dout (1024, 768) x W2 (768, 3072)", 1024, 3072, 768, 0, 0, 1},
	{"bert_qkvo_dW", "backward dW: dout^T (768, 1024) x x (1024, 768)", 768, 768, 1024, 1, 0, 1},
	{"bert_ff1_dW", "backward ff1 dW: dff^T (3072, 1024) x x (1024, 768)", 3072, 768, 1024, 1, 0, 1},
	{"bert_ff2_dW", "backward ff2 dW: dout^T (768, 1024) x gelu (1024, 3072)", 768, 3072, 1024, 1, 0, 1},
	{"att_scores", "attention per (sequence, head): q (128, 64) x k^T (64, 128); also dctx v^T", 128, 128, 64, 0, 1, 1},
	{"att_ctx", "attention: probs (128, 128) x v (128, 64); also dscore k", 128, 64, 128, 0, 0, 1},
	{"att_dv", "attention backward: probs^T (128, 128) x dctx (128, 64); also dscore^T q", 128, 64, 128, 1, 0, 1},
	/* the small encoder: H 256, I 1024, 4 heads of 64, batch 8 x 128 */
	{"small_qkvo", "small encoder (4 x 256) projection: x (1024, 256) x W^T (256, 256)", 1024, 256, 256, 0, 1, 1},
	{"small_ff1", "small encoder feed-forward in: x (1024, 256) x W1^T (256, 1024)", 1024, 1024, 256, 0, 1, 1},
	{"small_ff2", "small encoder feed-forward out: (1024, 1024) x W2^T (1024, 256)", 1024, 256, 1024, 0, 1, 1},
	{"small_ff1_dx", "small encoder backward ff1 dx: (1024, 1024) x W1 (1024, 256)", 1024, 256, 1024, 0, 0, 1},
	{"small_ff1_dW", "small encoder backward ff1 dW: dff^T (1024, 1024) x x (1024, 256)", 1024, 256, 1024, 1, 0, 1},
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

/* The kernels compared, measured interleaved (sample r of each, then sample r + 1). */
typedef struct config
{
	const char *name;
	cai_gemm_isa isa;			/* CAI_GEMM_BLAS: cblas_sgemm */
	int			threads;
} config;

static config configs[] = {
	{"OpenBLAS 1T", CAI_GEMM_BLAS, 1},
	{"core 1T", CAI_GEMM_AVX512, 1},
	{"OpenBLAS 2T", CAI_GEMM_BLAS, 2},
	{"core 2T", CAI_GEMM_AVX512, 2},
	{"core AVX2 1T", CAI_GEMM_AVX2, 1},
};

#define N_CONFIGS ((int) (sizeof(configs) / sizeof(configs[0])))

/*
 * After a threaded OpenBLAS call its worker threads keep spinning
 * (sched_yield) until OpenBLAS's thread timeout, 2^28 cycles by default
 * (about 0.1 s here): a kernel timed meanwhile would share a core with
 * them (measured: the core's 2-thread samples fell to its 1-thread speed).
 * So after a threaded OpenBLAS sample the next config waits SETTLE_SEC,
 * and OpenBLAS keeps its default timeout (its own best setting); then that
 * config runs one untimed sample first, as the wait leaves the vCPUs idle
 * and the first tens of milliseconds after it ran slow (measured: a
 * 2-thread product at 200 GFLOP/s for ~20 ms after a 0.3 s pause, 290-350
 * after).
 */
#define SETTLE_SEC 0.3

/* Wait after config c if it leaves OpenBLAS threads spinning; true if it waited. */
static bool
settle_after(const config *c)
{
	struct timespec ts = {0, (long) (SETTLE_SEC * 1e9)};

	if (c->isa != CAI_GEMM_BLAS || c->threads <= 1)
		return false;
	nanosleep(&ts, NULL);
	return true;
}

static void
run_gemm(const shape *s, const config *c, const float *a, const float *b, float *out)
{
	int			lda = s->trans_a ? s->m : s->k;
	int			ldb = s->trans_b ? s->k : s->n;
	CBLAS_TRANSPOSE ta = s->trans_a ? CblasTrans : CblasNoTrans;
	CBLAS_TRANSPOSE tb = s->trans_b ? CblasTrans : CblasNoTrans;

	if (c->isa == CAI_GEMM_BLAS)
		cblas_sgemm(CblasRowMajor, ta, tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, out, s->n);
	else
		cai_gemm_run(c->isa, cai_gemm_threads_for(s->m, s->n, s->k, c->threads), ta, tb, s->m, s->n, s->k, 1.0f,
					 a, lda, b, ldb, 0.0f, out, s->n);
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
 * Single-thread FMA throughput in GFLOP/s: 10 independent chains of
 * vfmadd231ps on registers of 256 (ymm) or 512 bits (zmm: 16 lanes x 2
 * flops each), best of several runs; 0 if this CPU lacks the instructions.
 * Checks the flops/cycle assumptions of the peak rows.
 */
#define FMA_CHAINS(R) ".rept 10\n\t" \
	"vfmadd231ps %%" R "1, %%" R "2, %%" R "3\n\tvfmadd231ps %%" R "1, %%" R "2, %%" R "4\n\t" \
	"vfmadd231ps %%" R "1, %%" R "2, %%" R "5\n\tvfmadd231ps %%" R "1, %%" R "2, %%" R "6\n\t" \
	"vfmadd231ps %%" R "1, %%" R "2, %%" R "7\n\tvfmadd231ps %%" R "1, %%" R "2, %%" R "8\n\t" \
	"vfmadd231ps %%" R "1, %%" R "2, %%" R "9\n\tvfmadd231ps %%" R "1, %%" R "2, %%" R "10\n\t" \
	"vfmadd231ps %%" R "1, %%" R "2, %%" R "11\n\tvfmadd231ps %%" R "1, %%" R "2, %%" R "12\n\t.endr"

static double
fma_loop_gflops(int zmm)
{
#if defined(__x86_64__)
	double		best = 0;
	const double lanes = zmm ? 16 : 8;

	__builtin_cpu_init();
	if (zmm ? !__builtin_cpu_supports("avx512f") : !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
		return 0;
	for (int r = 0; r < 10; r++)
	{
		const long	iters = 5000000;
		double		t = now_sec();

		for (long i = 0; i < iters; i++)
		{
			if (zmm)
				__asm__ volatile(FMA_CHAINS("zmm"):::"xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
								 "xmm9", "xmm10", "xmm11", "xmm12");
			else
				__asm__ volatile(FMA_CHAINS("ymm"):::"xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
								 "xmm9", "xmm10", "xmm11", "xmm12");
		}
		t = now_sec() - t;
		if (iters * 100 * lanes * 2 / t * 1e-9 > best)
			best = iters * 100 * lanes * 2 / t * 1e-9;
	}
	__asm__ volatile("vzeroupper");
	return best;
#else
	return 0;
#endif
}

/*
 * Median and best GFLOP/s and median microseconds per call of each config
 * (samples interleaved: the configs see the same load).
 */
static void
measure(const shape *s, int samples, double min_sec, double *gflops, double *best, double *usec)
{
	unsigned	seed = 12345;
	float	   *a = alloc_rand((size_t) s->m * s->k, &seed);
	float	   *b = alloc_rand((size_t) s->k * s->n, &seed);
	float	   *c = alloc_rand((size_t) s->m * s->n, &seed);
	double		flops = 2.0 * s->m * s->n * s->k;
	double		times[N_CONFIGS][32];
	long		iters[N_CONFIGS];
	bool		settled = false;	/* the previous config waited: warm up first */
	double		t;

	if (a == NULL || b == NULL || c == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	/* warm up, then grow each config's inner loop until one sample takes min_sec */
	for (int f = 0; f < N_CONFIGS; f++)
	{
		openblas_set_num_threads(configs[f].threads);
		run_gemm(s, &configs[f], a, b, c);
		for (iters[f] = 1;;)
		{
			t = now_sec();
			for (long i = 0; i < iters[f]; i++)
				run_gemm(s, &configs[f], a, b, c);
			t = now_sec() - t;
			if (t >= min_sec)
				break;
			iters[f] = t <= 0 ? iters[f] * 10 : (long) (iters[f] * (min_sec / t) * 1.2) + 1;
		}
		settled = settle_after(&configs[f]);
	}
	for (int r = 0; r < samples; r++)
		for (int f = 0; f < N_CONFIGS; f++)
		{
			openblas_set_num_threads(configs[f].threads);
			if (settled)
				for (long i = 0; i < iters[f]; i++)
					run_gemm(s, &configs[f], a, b, c);
			t = now_sec();
			for (long i = 0; i < iters[f]; i++)
				run_gemm(s, &configs[f], a, b, c);
			times[f][r] = (now_sec() - t) / iters[f];
			settled = settle_after(&configs[f]);
		}
	for (int f = 0; f < N_CONFIGS; f++)
	{
		qsort(times[f], samples, sizeof(double), cmp_double);
		usec[f] = times[f][samples / 2] * 1e6;
		gflops[f] = flops / times[f][samples / 2] * 1e-9;
		best[f] = flops / times[f][0] * 1e-9;
	}
	free(a);
	free(b);
	free(c);
}

int
main(int argc, char **argv)
{
	int			quick = 0;
	int			encoder_only = 0;
	const char *only = NULL;	/* --only=PREFIX: the shapes whose name starts with it */
	int			samples;
	double		min_sec;
	double		peak[N_CONFIGS] = {0};
	double		peak_best[N_CONFIGS] = {0};
	double		ghz = estimate_ghz();
	double		fma = fma_loop_gflops(0);
	double		fma512 = fma_loop_gflops(1);
	double		lo[2] = {1e9, 1e9};
	double		geo[2] = {0, 0};
	int			n_enc = 0;
	const cai_gemm_isa cpu = cai_gemm_cpu_isa();
	int			n_configs = N_CONFIGS;

	for (int i = 1; i < argc; i++)
	{
		quick |= strcmp(argv[i], "--quick") == 0;
		encoder_only |= strcmp(argv[i], "--encoder") == 0;
		if (strncmp(argv[i], "--only=", 7) == 0)
			only = argv[i] + 7;
	}
	samples = quick ? 3 : 11;
	min_sec = quick ? 0.005 : 0.02;
	/* the core's best kernel here; the AVX2 column only on an AVX-512 CPU */
	for (int f = 0; f < N_CONFIGS; f++)
		if (configs[f].isa == CAI_GEMM_AVX512)
			configs[f].isa = cpu;
	if (cpu != CAI_GEMM_AVX512)
		n_configs--;
	if (cpu == CAI_GEMM_BLAS)
	{
		fprintf(stderr, "gemm: this CPU has no core kernel (AVX2 or AVX-512): only OpenBLAS to measure\n");
		return 1;
	}
	printf("| shape | M | N | K | op | OpenBLAS 1T GFLOP/s | core 1T | core / OpenBLAS 1T | OpenBLAS 2T | core 2T | "
		   "core / OpenBLAS 2T | core %s 1T us/call | %swhat |\n", cai_gemm_isa_name(cpu),
		   n_configs == N_CONFIGS ? "core AVX2 1T | " : "");
	printf("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|%s---|\n",
		   n_configs == N_CONFIGS ? "---:|" : "");
	for (int i = 0; i < N_SHAPES; i++)
	{
		const shape *s = &shapes[i];
		double		g[N_CONFIGS];
		double		gb[N_CONFIGS];
		double		us[N_CONFIGS];
		char		avx2[32] = "";

		if ((encoder_only && !s->encoder) || (only != NULL && strncmp(s->name, only, strlen(only)) != 0))
			continue;
		measure(s, samples, min_sec, g, gb, us);
		if (strcmp(s->name, "square_1024") == 0)
			for (int f = 0; f < N_CONFIGS; f++)
			{
				peak[f] = g[f];
				peak_best[f] = gb[f];
			}
		if (s->encoder)
		{
			for (int t = 0; t < 2; t++)
			{
				double		ratio = g[2 * t + 1] / g[2 * t];

				lo[t] = ratio < lo[t] ? ratio : lo[t];
				geo[t] += log(ratio);
			}
			n_enc++;
		}
		if (n_configs == N_CONFIGS)
			snprintf(avx2, sizeof(avx2), "%.1f | ", g[4]);
		printf("| %s | %d | %d | %d | %s | %.1f | %.1f | **%.2f** | %.1f | %.1f | **%.2f** | %.1f | %s%s |\n",
			   s->name, s->m, s->n, s->k,
			   s->trans_a ? "A^T B" : s->trans_b ? "A B^T" : "A B",
			   g[0], g[1], g[1] / g[0], g[2], g[3], g[3] / g[2], us[1], avx2, s->what);
		fflush(stdout);
	}
	printf("\nMEASURED_PEAK_1T %.1f %.1f\nMEASURED_PEAK_2T %.1f %.1f\n",
		   peak[0], peak_best[0], peak[2], peak_best[2]);
	printf("CORE_PEAK_1T %.1f %.1f\nCORE_PEAK_2T %.1f %.1f\n", peak[1], peak_best[1], peak[3], peak_best[3]);
	if (n_enc > 0)
		printf("ENCODER_RATIO_1T %.2f %.2f\nENCODER_RATIO_2T %.2f %.2f\n",
			   exp(geo[0] / n_enc), lo[0], exp(geo[1] / n_enc), lo[1]);
	printf("CORE_ISA %s\n", cai_gemm_isa_name(cpu));
	printf("CLOCK_GHZ %.2f\n", ghz);
	printf("FMA_LOOP_1T %.1f\nFMA512_LOOP_1T %.1f\n", fma, fma512);
	printf("OPENBLAS_CONFIG %s (core %s)\n", openblas_get_config(), openblas_get_corename());
	return 0;
}
