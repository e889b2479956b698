/*
 * blas.c: OpenBLAS opened with dlopen on first use (see blas.h).
 */
#include "blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#ifndef CAI_BLAS_LIBRARY
#define CAI_BLAS_LIBRARY "libopenblas.so.0"
#endif

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static __typeof__(cblas_sgemm) *blas_sgemm;
static void (*blas_set_num_threads) (int);
static char blas_error[200];

/* the thread count for OpenBLAS, applied when it opens */
static int	blas_threads = 1;

static void
blas_open(void)
{
	void	   *h = dlopen(CAI_BLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);

	if (h == NULL)
	{
		snprintf(blas_error, sizeof(blas_error), "could not load %s: %s", CAI_BLAS_LIBRARY, dlerror());
		return;
	}
	blas_set_num_threads = (void (*) (int)) dlsym(h, "openblas_set_num_threads");
	blas_sgemm = (__typeof__(cblas_sgemm) *) dlsym(h, "cblas_sgemm");
	if (blas_sgemm == NULL)
	{
		snprintf(blas_error, sizeof(blas_error), "%s has no cblas_sgemm", CAI_BLAS_LIBRARY);
		return;
	}
	if (blas_set_num_threads != NULL)
		blas_set_num_threads(blas_threads);
}

cai_status
cai_blas_load(cai_error *err)
{
	pthread_once(&blas_once, blas_open);
	if (blas_sgemm == NULL)
		return cai_error_set(err, CAI_ERR_SYSTEM, "%s", blas_error);
	return CAI_OK;
}

void
cai_blas_set_threads(int n)
{
	if (n < 1)
		n = 1;
	blas_threads = n;
	if (blas_sgemm != NULL && blas_set_num_threads != NULL)
		blas_set_num_threads(n);
}

int
cai_blas_get_threads(void)
{
	return blas_threads;
}

/*
 * C (M, N) = alpha op(A) (M, K) . op(B) (K, N) + beta C, in double; element
 * (i, j) of a row-major X is x[i * ld + j], of a column-major one x[j * ld + i].
 */
void
cai_sgemm_reference(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
				float alpha, const float *A, int lda, const float *B, int ldb, float beta,
				float *C, int ldc)
{
	const bool	row = order == CblasRowMajor;

	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++)
		{
			double		s = 0.0;
			float	   *c = row ? &C[(size_t) i * ldc + j] : &C[(size_t) j * ldc + i];

			for (int k = 0; k < K; k++)
			{
				/* op(A)[i][k] and op(B)[k][j]: transposing swaps the indices, column-major swaps them again */
				bool		a_swap = (ta != CblasNoTrans) != !row;
				bool		b_swap = (tb != CblasNoTrans) != !row;
				float		a = a_swap ? A[(size_t) k * lda + i] : A[(size_t) i * lda + k];
				float		b = b_swap ? B[(size_t) j * ldb + k] : B[(size_t) k * ldb + j];

				s += (double) a * (double) b;
			}
			*c = (float) (alpha * s + (beta == 0.0f ? 0.0 : (double) beta * *c));
		}
}

void
cai_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
		  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
		  float *C, int ldc)
{
	pthread_once(&blas_once, blas_open);
	if (blas_sgemm != NULL)
		blas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	else
		cai_sgemm_reference(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
