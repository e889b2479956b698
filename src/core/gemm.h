/*
 * gemm.h: the core's own SGEMM for the encoder (internal to src/core).
 *
 * OpenBLAS as Debian builds it runs its Haswell (AVX2) kernels on this
 * project's machines, about half of what an AVX-512 core can do.
 * cai_sgemm_encoder computes the same product as cai_sgemm (row-major, any
 * transposes, alpha, beta, leading dimensions) with packed panels and
 * register-blocked micro-kernels: 14 x 32 FMA tiles for AVX-512, 6 x 16 for
 * AVX2, compiled with function target attributes and chosen at run time by
 * cpuid (the build stays portable; other CPUs and architectures get
 * cai_sgemm).  Large products are split over cai_blas_get_threads()
 * threads by columns of C: the caller computes one part, helper threads
 * started on first use (signals blocked, never allocating through the
 * core's allocator) the others.  Packing buffers come from malloc, one per
 * thread, kept for the next call.
 *
 * Only the encoder calls it (src/core/encoder.c): the BiLSTM's large
 * products stay on cai_sgemm (OpenBLAS); its per-step recurrent products
 * in training have their own small kernel (lstm.c).  Results equal OpenBLAS's
 * within float rounding (another summation order), not bit for bit.
 */
#ifndef CAI_GEMM_H
#define CAI_GEMM_H

#include <stdbool.h>

#include "blas.h"

/* Instruction sets of the micro-kernels. */
typedef enum cai_gemm_isa
{
	CAI_GEMM_BLAS = 0,			/* no own kernel: cai_sgemm */
	CAI_GEMM_AVX2 = 1,			/* AVX2 + FMA, 6 x 16 tiles */
	CAI_GEMM_AVX512 = 2,		/* AVX-512F, 14 x 32 tiles */
} cai_gemm_isa;

/* The best kernel this CPU runs (CAI_GEMM_BLAS off x86-64). */
cai_gemm_isa cai_gemm_cpu_isa(void);

/* Its name: "openblas", "avx2", "avx512". */
const char *cai_gemm_isa_name(cai_gemm_isa isa);

/*
 * cai_sgemm's arguments: the core's kernel where this CPU has one and the
 * shape is one it is measured to win on (bench/results-gemm.md), else
 * cai_sgemm.
 */
void		cai_sgemm_encoder(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
							  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
							  float *C, int ldc);

/* Whether cai_sgemm_encoder runs the core's kernel (not OpenBLAS) now. */
bool		cai_gemm_encoder_own(void);

/*
 * fn(ctx, part, parts) for every part in [0, parts), parts <= threads: part
 * 0 on the caller, the others on the SGEMM's helper threads (started on
 * first use, polling between jobs), all done on return.  parts is 1 (one
 * call, fn(ctx, 0, 1)) when threads is 1 or another caller has the
 * helpers.  The parts must be independent; a core-kernel product inside fn
 * runs on one thread (the helpers are taken), so fn must not call
 * cai_sgemm (OpenBLAS's own threads) when parts > 1.  For the encoder's
 * per-(sequence, head) attention and its element-wise layers.
 */
typedef void (*cai_gemm_part_fn) (void *ctx, int part, int parts);
void		cai_gemm_parallel(int threads, cai_gemm_part_fn fn, void *ctx);

/* The threads cai_sgemm_encoder gives an M x N x K product out of threads: 1 for small ones. */
int			cai_gemm_threads_for(int M, int N, int K, int threads);

/*
 * The kernel cai_sgemm_encoder uses from now on (bench tools comparing it
 * with OpenBLAS; not thread-safe): CAI_GEMM_BLAS is OpenBLAS, a kernel this
 * CPU lacks is OpenBLAS too, (cai_gemm_isa) -1 the rule above (the default).
 */
void		cai_gemm_encoder_use(cai_gemm_isa isa);

/*
 * The product (row-major) with kernel isa on threads threads, whatever the
 * shape (tests and bench/gemm.c).  Returns false, touching nothing, if this
 * CPU cannot run isa; CAI_GEMM_BLAS is cai_sgemm.  Never fails otherwise
 * (without memory for its panels it calls cai_sgemm).
 */
bool		cai_gemm_run(cai_gemm_isa isa, int threads, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
						 float alpha, const float *A, int lda, const float *B, int ldb, float beta,
						 float *C, int ldc);

#endif							/* CAI_GEMM_H */
