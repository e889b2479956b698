/*
 * test_gemm.c: the core's own SGEMM (src/core/gemm.h) against the plain-loop
 * product (cai_sgemm_reference, in double) and OpenBLAS: every kernel this
 * CPU runs, 1 to 3 threads, all transpositions, odd sizes, 1 x 1, K = 1,
 * sizes crossing the kernel's blocks, padded leading dimensions, alpha and
 * beta (beta = 0 must not read C: it starts as NaN), and two callers at once.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cai/common.h"
#include "../../src/core/gemm.h"

typedef struct shape
{
	int			M;
	int			N;
	int			K;
} shape;

static const shape shapes[] = {
	{1, 1, 1}, {1, 1, 7}, {5, 3, 1}, {13, 37, 19}, {14, 32, 256}, {15, 33, 257}, {29, 65, 300},
	{150, 70, 40}, {141, 97, 513}, {3, 3100, 5}, {128, 128, 64}, {128, 64, 128}, {2, 200, 3},
};

#define N_SHAPES ((int) (sizeof(shapes) / sizeof(shapes[0])))
#define PAD 3

static float *
rand_floats(cai_rng *rng, size_t n)
{
	float	   *p = malloc(n * sizeof(float));

	for (size_t i = 0; p != NULL && i < n; i++)
		p[i] = cai_rng_uniform(rng) - 0.5f;
	return p;
}

/*
 * One product of kernel isa on threads threads against the reference: the
 * number of elements of C (with its padding) outside the tolerance, which
 * grows with K (entries in [-0.5, 0.5): a sum of K products of at most 0.25).
 */
static int
one_case(cai_gemm_isa isa, int threads, const shape *s, bool ta, bool tb, float alpha, float beta, cai_rng *rng,
		 double *worst)
{
	const int	lda = (ta ? s->M : s->K) + PAD;
	const int	ldb = (tb ? s->K : s->N) + PAD;
	const int	ldc = s->N + PAD;
	const size_t na = (size_t) (ta ? s->K : s->M) * lda;
	const size_t nb = (size_t) (tb ? s->N : s->K) * ldb;
	const size_t nc = (size_t) s->M * ldc;
	float	   *A = rand_floats(rng, na);
	float	   *B = rand_floats(rng, nb);
	float	   *C = rand_floats(rng, nc);
	float	   *R = malloc(nc * sizeof(float));
	const double tol = 1e-6 * (s->K + 1) * 0.25 * fabs(alpha) + 1e-6;
	int			bad = 0;

	if (A == NULL || B == NULL || C == NULL || R == NULL)
		abort();
	if (beta == 0.0f)
		for (int i = 0; i < s->M; i++)
			for (int j = 0; j < s->N; j++)
				C[(size_t) i * ldc + j] = NAN;
	memcpy(R, C, nc * sizeof(float));
	if (!cai_gemm_run(isa, threads, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K,
					  alpha, A, lda, B, ldb, beta, C, ldc))
		bad = -1;
	cai_sgemm_reference(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, s->M, s->N,
						s->K, alpha, A, lda, B, ldb, beta, R, ldc);
	for (size_t v = 0; bad >= 0 && v < nc; v++)
	{
		double		d = fabs((double) C[v] - (double) R[v]);

		if (!(d <= tol))
		{
			if (bad < 3)
				fprintf(stderr, "  %s %dT %dx%dx%d ta=%d tb=%d beta=%g: C[%zu] = %.7g, want %.7g\n",
						cai_gemm_isa_name(isa), threads, s->M, s->N, s->K, ta, tb, beta, v, C[v], R[v]);
			bad++;
		}
		else if (d / tol > *worst)
			*worst = d / tol;
	}
	free(A);
	free(B);
	free(C);
	free(R);
	return bad;
}

static void
test_kernel(cai_gemm_isa isa, cai_rng *rng)
{
	static const float betas[] = {0.0f, 1.0f, 0.5f};
	int			cases = 0;
	int			bad = 0;
	double		worst = 0.0;

	for (int threads = 1; threads <= 3; threads++)
		for (int i = 0; i < N_SHAPES; i++)
			for (int t = 0; t < 4; t++)
				for (int b = 0; b < 3; b++)
				{
					int			r = one_case(isa, threads, &shapes[i], t & 1, t >> 1, b == 2 ? 0.7f : 1.0f,
											 betas[b], rng, &worst);

					cases++;
					bad += r != 0;
				}
	CHECK(bad == 0, "%s: %d of %d products outside the tolerance (worst inside: %.2f of it)",
		  cai_gemm_isa_name(isa), bad, cases, worst);
	printf("  %s: %d products, worst difference %.2f of the tolerance\n", cai_gemm_isa_name(isa), cases, worst);
}

/* The encoder's entry point against OpenBLAS, on an encoder-like shape. */
static void
test_encoder_entry(cai_rng *rng)
{
	const int	M = 64, N = 96, K = 768;
	float	   *A = rand_floats(rng, (size_t) M * K);
	float	   *W = rand_floats(rng, (size_t) N * K);
	float	   *C0 = rand_floats(rng, (size_t) M * N);
	float	   *C1 = malloc((size_t) M * N * sizeof(float));
	cai_error	err = {0};

	memcpy(C1, C0, (size_t) M * N * sizeof(float));
	CHECK(cai_blas_load(&err) == CAI_OK, "OpenBLAS opens: %s", err.msg);
	cai_sgemm_encoder(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 1.0f, C0, N);
	cai_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 1.0f, C1, N);
	CHECK_CLOSE("encoder product vs OpenBLAS", C0, C1, (size_t) M * N, 0.0f, (float) (1e-6 * K * 0.25));
	/* column-major goes to OpenBLAS */
	memcpy(C1, C0, (size_t) M * N * sizeof(float));
	cai_sgemm_encoder(CblasColMajor, CblasNoTrans, CblasNoTrans, 8, 8, 8, 1.0f, A, 8, W, 8, 0.0f, C0, 8);
	cai_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, 8, 8, 8, 1.0f, A, 8, W, 8, 0.0f, C1, 8);
	CHECK(memcmp(C0, C1, (size_t) M * N * sizeof(float)) == 0, "column-major: OpenBLAS's bits");
	free(A);
	free(W);
	free(C0);
	free(C1);
}

typedef struct caller
{
	cai_gemm_isa isa;
	uint64_t	seed;
	int			bad;
} caller;

static void *
caller_main(void *arg)
{
	caller	   *c = arg;
	cai_rng		rng;
	double		worst = 0.0;
	const shape s = {90, 300, 200};

	cai_rng_seed(&rng, c->seed);
	for (int r = 0; r < 4; r++)
		c->bad += one_case(c->isa, 2, &s, r & 1, r >> 1, 1.0f, 0.5f, &rng, &worst) != 0;
	return NULL;
}

/* Two threads asking for 2 threads each at once: one gets the helper, both are right. */
static void
test_concurrent(cai_gemm_isa isa)
{
	caller		c[2] = {{isa, 1, 0}, {isa, 2, 0}};
	pthread_t	th;
	bool		started = pthread_create(&th, NULL, caller_main, &c[1]) == 0;

	caller_main(&c[0]);
	if (started)
		pthread_join(th, NULL);
	CHECK(started && c[0].bad == 0 && c[1].bad == 0, "%s: concurrent callers (%d, %d wrong)",
		  cai_gemm_isa_name(isa), c[0].bad, c[1].bad);
}

int
main(void)
{
	cai_rng		rng;
	const cai_gemm_isa cpu = cai_gemm_cpu_isa();
	float		x = 1.0f;

	cai_rng_seed(&rng, 20261202);
	printf("  this CPU's kernel: %s\n", cai_gemm_isa_name(cpu));
	for (cai_gemm_isa isa = CAI_GEMM_AVX2; isa <= CAI_GEMM_AVX512; isa++)
	{
		if (isa > cpu)
		{
			CHECK(!cai_gemm_run(isa, 1, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &x, 1, &x, 1, 0.0f, &x, 1) &&
				  x == 1.0f, "%s refused on this CPU, C untouched", cai_gemm_isa_name(isa));
			continue;
		}
		test_kernel(isa, &rng);
		test_concurrent(isa);
	}
	test_encoder_entry(&rng);
	return check_summary("test_gemm");
}
