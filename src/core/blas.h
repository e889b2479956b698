/*
 * blas.h: the BLAS routines the core uses, from OpenBLAS loaded on first use
 * (internal to src/core).
 *
 * The extension is not linked with OpenBLAS: loading it (its CPU detection,
 * buffers and thread pool, about 4 ms) would be paid by every new connection
 * that calls any cai_ function, while only the matrix products of the BiLSTM
 * models need it.  blas.c opens libopenblas.so.0 once per process, the first
 * time a matrix product runs or cai_blas_load() is called (thread-safe), and
 * sets the thread count chosen with cai_blas_set_threads (1 until then).
 *
 * Architectures that multiply matrices say so in the registry (uses_blas),
 * and cai_model_load / cai_arch_train call cai_blas_load() first so that a
 * missing library is an error with a message, not a crash.  cai_sgemm never
 * fails: if the library could not be opened it computes the product with a
 * plain loop (slow, for callers that skipped cai_blas_load, such as op-level
 * tests).
 */
#ifndef CAI_BLAS_H
#define CAI_BLAS_H

#include <cblas.h>

#include "cai/common.h"

/* Open OpenBLAS now if it is not open; CAI_ERR_SYSTEM with dlerror()'s message if it cannot be. */
cai_status	cai_blas_load(cai_error *err);

/* cblas_sgemm with the same arguments. */
void		cai_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
					  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
					  float *C, int ldc);

/* cai_sgemm's type: the linear layers below take the product to use. */
typedef void (*cai_sgemm_fn) (CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
							  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
							  float *C, int ldc);

/*
 * cai_linear_forward / cai_linear_backward (cai/ops.h) with the product
 * sgemm instead of cai_sgemm (the encoder passes cai_sgemm_encoder, gemm.h).
 */
void		cai_linear_forward_by(cai_sgemm_fn sgemm, float *out, const float *inp, const float *weight,
								  const float *bias, int N, int IC, int OC);
void		cai_linear_backward_by(cai_sgemm_fn sgemm, float *dinp, float *dweight, float *dbias,
								   const float *dout, const float *inp, const float *weight, int N, int IC, int OC);

/* The same product by a plain loop (accumulating in double): the fallback, and a reference for tests. */
void		cai_sgemm_reference(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
								float alpha, const float *A, int lda, const float *B, int ldb, float beta,
								float *C, int ldc);

#endif							/* CAI_BLAS_H */
