/*
 * gemm.c: the core's own SGEMM, packed panels and register-blocked
 * micro-kernels (see gemm.h).
 *
 * C (M, N) = alpha op(A) (M, K) op(B) (K, N) + beta C, row-major.  The loops
 * are the usual ones of a packed GEMM (Goto, BLIS): for each block of GEMM_KC
 * rows of op(B), op(B)'s columns are packed into panels of NR columns (k
 * major: NR floats for each k); for each block of MC rows of op(A) these are
 * packed into panels of MR rows (MR floats for each k); then a micro-kernel
 * multiplies one A panel by one B panel into an MR x NR tile of C held in
 * registers (vectors along C's rows, op(A) broadcast).  Panels are padded
 * with zeros; a tile that overhangs C is computed into a scratch tile and
 * only its part inside C is written.  The first K block applies beta, the
 * others add.
 *
 * The kernels (one body, gemm_kernel.h, instantiated per instruction set:
 * the machine code is what two hand-written copies compiled to) are
 * compiled with function target attributes and chosen at
 * run time by cpuid (__builtin_cpu_supports), like the CRC32C of format.c;
 * they use fused multiply-adds (their results differ from OpenBLAS's only
 * by rounding, and only the encoder uses them).
 */
#include "gemm.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GEMM_X86 1
#include <immintrin.h>
#endif

#ifndef GEMM_KC
#define GEMM_KC 256				/* rows of op(B) in a block: a B panel is GEMM_KC x NR */
#endif
#ifndef MC_PANELS
#define MC_PANELS 10			/* A panels in a block of rows */
#endif
#ifndef GEMM_NC
#define GEMM_NC 3072			/* columns of op(B) packed at once */
#endif
#define MAX_MR 14
#define MAX_NR 32
#define MAX_THREADS 8

/* C's tile (MR x NR, row stride ldc) = alpha a . b + beta C (C not read when beta is 0). */
typedef void (*gemm_kern_fn) (int kc, const float *a, const float *b, float *c, size_t ldc, float alpha, float beta);

/*
 * dst[c * ldd + r] = src[r * ld + c] for r < rows (<= 16), c < 16: a block
 * of a transposing pack.
 */
typedef void (*gemm_tr16_fn) (const float *src, size_t ld, int rows, float *dst, size_t ldd);

/* pack_rows's contract (below) with vector copies, for w <= 32. */
typedef void (*gemm_rows_fn) (float *restrict dst, const float *src, size_t ld, int kc, int n, int w);

typedef struct gemm_kernel
{
	int			mr;
	int			nr;
	gemm_kern_fn fn;
	gemm_tr16_fn tr16;			/* NULL: the packs transpose element by element */
	gemm_rows_fn rows;			/* NULL: the packs copy rows with memcpy */
} gemm_kernel;

/* One product, and the columns [j0, j1) of C one thread computes. */
typedef struct gemm_args
{
	const gemm_kernel *kern;
	bool		ta;
	bool		tb;
	int			M;
	int			N;
	int			K;
	float		alpha;
	float		beta;
	const float *A;
	int			lda;
	const float *B;
	int			ldb;
	float	   *C;
	int			ldc;
} gemm_args;

/* ---------------------------------------------------------------------
 * Micro-kernels
 */

#ifdef GEMM_X86

#define AVX512_MR 14
#define AVX2_MR 6

/* AVX-512: 14 x 32 tiles (28 of the 32 vector registers accumulate) */
#define KERN_NAME kern_avx512
#define KERN_TARGET "avx512f,fma"
#define KERN_MR AVX512_MR
#define KERN_W 16
#define KERN_UNROLL _Pragma("GCC unroll 14")
#define VEC __m512
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_LOAD(p) _mm512_load_ps(p)
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, x) _mm512_storeu_ps(p, x)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define KERN_END() ((void) 0)
#include "gemm_kernel.h"

/* AVX2: 6 x 16 tiles (12 of the 16 vector registers accumulate) */
#define KERN_NAME kern_avx2
#define KERN_TARGET "avx2,fma"
#define KERN_MR AVX2_MR
#define KERN_W 8
#define KERN_UNROLL _Pragma("GCC unroll 6")
#define VEC __m256
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_LOAD(p) _mm256_load_ps(p)
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, x) _mm256_storeu_ps(p, x)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define KERN_END() _mm256_zeroupper()
#include "gemm_kernel.h"

/* 16 x 16 transposition: 4 rounds of 16 shuffles (pairs, quads, 128-bit lanes, 256-bit halves) */
__attribute__((target("avx512f")))
static void
tr16_avx512(const float *src, size_t ld, int rows, float *dst, size_t ldd)
{
	const __mmask16 keep = (__mmask16) ((1u << rows) - 1);
	__m512		x[16];
	__m512		y[16];

#pragma GCC unroll 16
	for (int r = 0; r < 16; r++)
		x[r] = r < rows ? _mm512_loadu_ps(src + (size_t) r * ld) : _mm512_setzero_ps();
#pragma GCC unroll 8
	for (int r = 0; r < 16; r += 2)
	{
		y[r] = _mm512_unpacklo_ps(x[r], x[r + 1]);
		y[r + 1] = _mm512_unpackhi_ps(x[r], x[r + 1]);
	}
#pragma GCC unroll 4
	for (int r = 0; r < 16; r += 4)
	{
		x[r] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(y[r]), _mm512_castps_pd(y[r + 2])));
		x[r + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(y[r]), _mm512_castps_pd(y[r + 2])));
		x[r + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(y[r + 1]), _mm512_castps_pd(y[r + 3])));
		x[r + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(y[r + 1]), _mm512_castps_pd(y[r + 3])));
	}
	/* x[4q + i] holds column 4 l + i of rows 4q..4q+3 in its 128-bit lane l */
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++)
	{
		y[i] = _mm512_shuffle_f32x4(x[i], x[4 + i], 0x88);		/* lanes 0, 2 of rows 0-3, then of rows 4-7 */
		y[4 + i] = _mm512_shuffle_f32x4(x[i], x[4 + i], 0xdd);	/* lanes 1, 3 */
		y[8 + i] = _mm512_shuffle_f32x4(x[8 + i], x[12 + i], 0x88);
		y[12 + i] = _mm512_shuffle_f32x4(x[8 + i], x[12 + i], 0xdd);
	}
	/* y[i] = column i (lane 0) and i + 8 (lane 2) of rows 0-7; y[8 + i] the same of rows 8-15 */
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++)
	{
		_mm512_mask_storeu_ps(dst + (size_t) i * ldd, keep, _mm512_shuffle_f32x4(y[i], y[8 + i], 0x88));
		_mm512_mask_storeu_ps(dst + (size_t) (i + 8) * ldd, keep, _mm512_shuffle_f32x4(y[i], y[8 + i], 0xdd));
		_mm512_mask_storeu_ps(dst + (size_t) (i + 4) * ldd, keep, _mm512_shuffle_f32x4(y[4 + i], y[12 + i], 0x88));
		_mm512_mask_storeu_ps(dst + (size_t) (i + 12) * ldd, keep, _mm512_shuffle_f32x4(y[4 + i], y[12 + i], 0xdd));
	}
}

/*
 * pack_rows with masked vector loads and stores: w floats written for each
 * row and panel (zeros past n), never a library call for a few dozen bytes
 * (an attention head's A^T is 128 rows of ten 14-float pieces).  Masked-off
 * lanes are neither read nor written, so nothing past src's n or dst's w is
 * touched.
 */
__attribute__((target("avx512f")))
static void
rows_avx512(float *restrict dst, const float *src, size_t ld, int kc, int n, int w)
{
	const __mmask16 store0 = (__mmask16) ((1u << (w < 16 ? w : 16)) - 1);
	const __mmask16 store1 = (__mmask16) ((1u << (w > 16 ? w - 16 : 0)) - 1);
	const int	last = (n - 1) / w * w;	/* the first column of the last panel */
	const int	tail = n - last;	/* its columns in src */
	const __mmask16 tail0 = (__mmask16) ((1u << (tail < 16 ? tail : 16)) - 1);
	const __mmask16 tail1 = (__mmask16) ((1u << (tail > 16 ? tail - 16 : 0)) - 1);

	for (int k = 0; k < kc; k++, src += ld)
	{
		float	   *d = dst + (size_t) k * w;

		for (int p = 0; p < n; p += w, d += (size_t) kc * w)
		{
			const __mmask16 load0 = p == last ? tail0 : store0;
			const __mmask16 load1 = p == last ? tail1 : store1;

			_mm512_mask_storeu_ps(d, store0, _mm512_maskz_loadu_ps(load0, src + p));
			if (w > 16)
				_mm512_mask_storeu_ps(d + 16, store1, _mm512_maskz_loadu_ps(load1, src + p + 16));
		}
	}
}

static const gemm_kernel kernel_avx512 = {AVX512_MR, 32, kern_avx512, tr16_avx512, rows_avx512};
static const gemm_kernel kernel_avx2 = {AVX2_MR, 16, kern_avx2, NULL, NULL};

#endif							/* GEMM_X86 */

static const gemm_kernel *
kernel_of(cai_gemm_isa isa)
{
#ifdef GEMM_X86
	if (isa == CAI_GEMM_AVX512)
		return &kernel_avx512;
	if (isa == CAI_GEMM_AVX2)
		return &kernel_avx2;
#endif
	return NULL;
}

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static cai_gemm_isa cpu_isa = CAI_GEMM_BLAS;

static void
isa_detect(void)
{
#ifdef GEMM_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		cpu_isa = CAI_GEMM_AVX512;
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		cpu_isa = CAI_GEMM_AVX2;
#endif
}

cai_gemm_isa
cai_gemm_cpu_isa(void)
{
	pthread_once(&isa_once, isa_detect);
	return cpu_isa;
}

const char *
cai_gemm_isa_name(cai_gemm_isa isa)
{
	return isa == CAI_GEMM_AVX512 ? "avx512" : isa == CAI_GEMM_AVX2 ? "avx2" : "openblas";
}

/* ---------------------------------------------------------------------
 * Packing
 */

/*
 * Copy rows of a matrix into panels: row k of src (n floats) goes to
 * dst + p kc w + k w for panel p, w floats each, zeros past n.  The rows of
 * src are read whole, one after the other: walking down a column instead
 * would touch rows a large power-of-two-ish stride apart, which evict each
 * other from the cache.
 */
static void
pack_rows(float *restrict dst, const float *src, size_t ld, int kc, int n, int w)
{
	for (int k = 0; k < kc; k++, src += ld)
		for (int p = 0; p < n; p += w)
		{
			const int	c = n - p < w ? n - p : w;
			float	   *d = dst + (size_t) p * kc + (size_t) k * w;

			memcpy(d, src + p, (size_t) c * sizeof(float));
			if (c < w)
				memset(d + c, 0, (size_t) (w - c) * sizeof(float));
		}
}

/*
 * Transpose into panels: dst + p kc w + k w + j = src[(p w + j) ld + k]
 * for panel p, zeros past n (rows of src).  16 x 16 blocks with the
 * kernel's tr16 where there is one.
 */
static void
pack_cols(float *restrict dst, const float *src, size_t ld, int kc, int n, int w, gemm_tr16_fn tr16)
{
	for (int p = 0; p < n; p += w, dst += (size_t) kc * w)
	{
		const int	c = n - p < w ? n - p : w;
		const float *s = src + (size_t) p * ld;
		int			k = 0;

		if (tr16 != NULL)
			for (; k + 16 <= kc; k += 16)
			{
				for (int j = 0; j < c; j += 16)
					tr16(s + (size_t) j * ld + k, ld, c - j < 16 ? c - j : 16, dst + (size_t) k * w + j, (size_t) w);
				for (int q = 0; q < 16 && c < w; q++)
					memset(dst + (size_t) (k + q) * w + c, 0, (size_t) (w - c) * sizeof(float));
			}
		for (; k < kc; k++)
		{
			float	   *d = dst + (size_t) k * w;

			for (int j = 0; j < c; j++)
				d[j] = s[(size_t) j * ld + k];
			for (int j = c; j < w; j++)
				d[j] = 0.0f;
		}
	}
}

/*
 * Rows [i0, i0 + mc) and columns [p0, p0 + kc) of op(A) into panels of mr
 * rows: panel p holds op(A)(i0 + p mr + r, p0 + k) at [p][k][r], zero rows
 * past mc.
 */
static void
pack_a(float *restrict dst, const gemm_args *g, int i0, int mc, int p0, int kc)
{
	if (g->ta)
		(g->kern->rows != NULL ? g->kern->rows : pack_rows) (dst, g->A + (size_t) p0 * g->lda + i0,
															  (size_t) g->lda, kc, mc, g->kern->mr);
	else
		pack_cols(dst, g->A + (size_t) i0 * g->lda + p0, (size_t) g->lda, kc, mc, g->kern->mr, g->kern->tr16);
}

/*
 * Rows [p0, p0 + kc) and columns [j0, j0 + nc) of op(B) into panels of nr
 * columns: panel p holds op(B)(p0 + k, j0 + p nr + j) at [p][k][j], zero
 * columns past nc.
 */
static void
pack_b(float *restrict dst, const gemm_args *g, int p0, int kc, int j0, int nc)
{
	if (g->tb)
		pack_cols(dst, g->B + (size_t) j0 * g->ldb + p0, (size_t) g->ldb, kc, nc, g->kern->nr, g->kern->tr16);
	else
		(g->kern->rows != NULL ? g->kern->rows : pack_rows) (dst, g->B + (size_t) p0 * g->ldb + j0,
															  (size_t) g->ldb, kc, nc, g->kern->nr);
}

/* ---------------------------------------------------------------------
 * The blocked product
 */

/*
 * Each thread's packing buffer (64-byte aligned), kept between calls and
 * freed when the thread exits.
 */
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static bool ws_key_ok;
static __thread float *ws_buf;
static __thread size_t ws_cap;

static void
ws_free(void *p)
{
	free(p);
}

static void
ws_init(void)
{
	ws_key_ok = pthread_key_create(&ws_key, ws_free) == 0;
}

static float *
ws_get(size_t floats)
{
	void	   *p = NULL;

	if (floats <= ws_cap)
		return ws_buf;
	pthread_once(&ws_once, ws_init);
	if (!ws_key_ok || posix_memalign(&p, 64, floats * sizeof(float)) != 0)
		return NULL;
	free(ws_buf);
	ws_buf = p;
	ws_cap = floats;
	pthread_setspecific(ws_key, p);
	return p;
}

static size_t
ws_floats(const gemm_kernel *kern)
{
	return (size_t) MC_PANELS * kern->mr * GEMM_KC + (size_t) GEMM_KC * GEMM_NC + (size_t) MAX_MR * MAX_NR;
}

/* C's rows [i0, i1) and columns [j0, j1) with the buffer ws. */
static void
gemm_part(const gemm_args *g, int i0, int i1, int j0, int j1, float *ws)
{
	const gemm_kernel *kern = g->kern;
	const int	mr = kern->mr;
	const int	nr = kern->nr;
	const int	mc_max = MC_PANELS * mr;
	float	   *pa = ws;
	float	   *pb = pa + (size_t) mc_max * GEMM_KC;
	float	   *tile = pb + (size_t) GEMM_KC * GEMM_NC;

	for (int jc = j0; jc < j1; jc += GEMM_NC)
	{
		const int	nc = j1 - jc < GEMM_NC ? j1 - jc : GEMM_NC;

		for (int pc = 0; pc < g->K; pc += GEMM_KC)
		{
			const int	kc = g->K - pc < GEMM_KC ? g->K - pc : GEMM_KC;
			const float beta = pc == 0 ? g->beta : 1.0f;

			pack_b(pb, g, pc, kc, jc, nc);
			for (int ic = i0; ic < i1; ic += mc_max)
			{
				const int	mc = i1 - ic < mc_max ? i1 - ic : mc_max;

				pack_a(pa, g, ic, mc, pc, kc);
				for (int jr = 0; jr < nc; jr += nr)
				{
					const int	n = nc - jr < nr ? nc - jr : nr;
					const float *b = pb + (size_t) jr * kc;

					for (int ir = 0; ir < mc; ir += mr)
					{
						const int	m = mc - ir < mr ? mc - ir : mr;
						const float *a = pa + (size_t) ir * kc;
						float	   *c = g->C + (size_t) (ic + ir) * g->ldc + jc + jr;

						if (m == mr && n == nr)
						{
							kern->fn(kc, a, b, c, (size_t) g->ldc, g->alpha, beta);
							continue;
						}
						/* an overhanging tile: computed aside, its part inside C written */
						kern->fn(kc, a, b, tile, (size_t) nr, 1.0f, 0.0f);
						for (int r = 0; r < m; r++)
							for (int j = 0; j < n; j++)
							{
								float	   *cj = c + (size_t) r * g->ldc + j;
								float		x = g->alpha * tile[r * nr + j];

								*cj = beta == 0.0f ? x : x + beta * *cj;
							}
					}
				}
			}
		}
	}
}

/* ---------------------------------------------------------------------
 * Helper threads: thread t >= 1 computes part t of the current job.
 */

typedef struct gemm_job
{
	const gemm_args *g;			/* a product's part, or (g NULL) fn's */
	cai_gemm_part_fn fn;
	void	   *ctx;
	int			parts;
	bool		by_rows;		/* parts split the rows of C (else its columns) */
	int			bounds[MAX_THREADS + 1];	/* part t: rows or columns [bounds[t], bounds[t + 1]) */
	bool		failed[MAX_THREADS];		/* a helper had no buffer: the caller redoes its part */
} gemm_job;

/*
 * Handing out a product: the caller publishes the job, then bumps
 * helper_gen; a helper polls helper_gen for SPIN_NS after its last part
 * before it sleeps on helper_go, so products of a few microseconds (an
 * attention head's) that follow one another reach helpers already awake,
 * as OpenBLAS's threads do (they poll for about 0.1 s).  The caller polls
 * helper_pending for the helpers' parts (they are its own size).  Sleeping
 * and waking are ordered by sequentially consistent atomics on helper_gen
 * and helper_sleepers (a helper counts itself a sleeper under helper_mu
 * before it checks helper_gen; the caller bumps helper_gen before it
 * checks for sleepers), so a helper never sleeps through a job.
 */
#define SPIN_NS 200000			/* 0.2 ms */

static pthread_mutex_t helper_busy = PTHREAD_MUTEX_INITIALIZER;	/* one threaded product at a time */
static pthread_mutex_t helper_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t helper_go = PTHREAD_COND_INITIALIZER;
static int	helpers;			/* started helper threads (under helper_busy) */
static uint64_t helper_gen;		/* atomic: jobs handed out */
static uint64_t helper_first_gen[MAX_THREADS];	/* helper t waits for jobs after this generation */
static int	helper_pending;		/* atomic: helpers still on the current job */
static int	helper_sleepers;	/* atomic: helpers waiting on helper_go */
static gemm_job *helper_job;	/* written before helper_gen is bumped */

static inline void
cpu_relax(void)
{
#if defined(GEMM_X86)
	_mm_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Part t of a threaded product, or of cai_gemm_parallel's function. */
static void
job_part(const gemm_job *job, int t, float *ws)
{
	const gemm_args *g = job->g;

	if (g == NULL)
		job->fn(job->ctx, t, job->parts);
	else if (job->by_rows)
		gemm_part(g, job->bounds[t], job->bounds[t + 1], 0, g->N, ws);
	else
		gemm_part(g, 0, g->M, job->bounds[t], job->bounds[t + 1], ws);
}

static void *
helper_main(void *arg)
{
	const int	t = (int) (intptr_t) arg;
	uint64_t	seen = helper_first_gen[t];	/* the jobs before it started are not its own */

	cai_pool_thread_enter();
	for (;;)
	{
		uint64_t	gen = __atomic_load_n(&helper_gen, __ATOMIC_SEQ_CST);
		gemm_job   *job;
		float	   *ws;

		if (gen == seen)
		{
			uint64_t	start = now_ns();
			unsigned	i = 0;

			while ((gen = __atomic_load_n(&helper_gen, __ATOMIC_SEQ_CST)) == seen)
			{
				cpu_relax();
				if ((++i & 63) == 0 && now_ns() - start > SPIN_NS)
					break;
			}
		}
		if (gen == seen)
		{
			pthread_mutex_lock(&helper_mu);
			__atomic_add_fetch(&helper_sleepers, 1, __ATOMIC_SEQ_CST);
			while ((gen = __atomic_load_n(&helper_gen, __ATOMIC_SEQ_CST)) == seen)
				pthread_cond_wait(&helper_go, &helper_mu);
			__atomic_sub_fetch(&helper_sleepers, 1, __ATOMIC_SEQ_CST);
			pthread_mutex_unlock(&helper_mu);
		}
		seen = gen;
		job = helper_job;
		if (t < job->parts)
		{
			ws = job->g != NULL ? ws_get(ws_floats(job->g->kern)) : NULL;
			if (ws != NULL || job->g == NULL)
				job_part(job, t, ws);
			else
				job->failed[t] = true;
		}
		__atomic_sub_fetch(&helper_pending, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* Start helpers up to want (under helper_busy): the number running. */
static int
helpers_start(int want)
{
	sigset_t	all;
	sigset_t	old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (helpers < want)
	{
		pthread_t	th;

		helper_first_gen[helpers + 1] = __atomic_load_n(&helper_gen, __ATOMIC_SEQ_CST);

		if (pthread_create(&th, NULL, helper_main, (void *) (intptr_t) (helpers + 1)) != 0)
			break;
		pthread_detach(th);
		helpers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return helpers;
}

/*
 * The threads a job may use, at most threads: more than 1 only with
 * helper_busy held and the helpers running (1: another caller has them, or
 * they could not be started).
 */
static int
helpers_acquire(int threads)
{
	int			running;

	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if (threads <= 1 || pthread_mutex_trylock(&helper_busy) != 0)
		return 1;
	running = helpers_start(threads - 1);
	if (running < threads - 1)
		threads = 1 + running;
	if (threads == 1)
		pthread_mutex_unlock(&helper_busy);
	return threads;
}

/*
 * Hand job out (helpers_acquire gave job->parts > 1): part 0 here, the
 * others on the helpers; returns when every part is done, helper_busy
 * released.
 */
static void
helpers_run(gemm_job *job, float *ws)
{
	helper_job = job;
	__atomic_store_n(&helper_pending, helpers, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&helper_gen, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&helper_sleepers, __ATOMIC_SEQ_CST) > 0)
	{
		pthread_mutex_lock(&helper_mu);
		pthread_cond_broadcast(&helper_go);
		pthread_mutex_unlock(&helper_mu);
	}
	job_part(job, 0, ws);
	for (unsigned i = 0; __atomic_load_n(&helper_pending, __ATOMIC_SEQ_CST) > 0; i++)
	{
		cpu_relax();
		if ((i & 1023) == 1023)
			sched_yield();		/* a helper that lost its core */
	}
	pthread_mutex_unlock(&helper_busy);
}

void
cai_gemm_parallel(int threads, cai_gemm_part_fn fn, void *ctx)
{
	gemm_job	job = {.fn = fn, .ctx = ctx};

	job.parts = helpers_acquire(threads);
	if (job.parts == 1)
		fn(ctx, 0, 1);
	else
		helpers_run(&job, NULL);
}

/*
 * Threads share out whole panels of C's columns, or of its rows when C is
 * taller than wide: each part packs all of op(A) for a split of the
 * columns, all of op(B) for a split of the rows, so the split goes along
 * the dimension whose packing is cheaper to repeat (a tall product such as
 * 1024 x 256 x 256 barely gained from a second thread split by columns).
 * Every element gets the same operations in the same order either way.
 */
static void
gemm_blocked(const gemm_args *g, int threads)
{
	const bool	by_rows = g->M > g->N;
	const int	unit = by_rows ? g->kern->mr : g->kern->nr;
	const int	extent = by_rows ? g->M : g->N;
	const int	panels = (extent + unit - 1) / unit;
	float	   *ws = ws_get(ws_floats(g->kern));
	gemm_job	job = {.g = g, .by_rows = by_rows};

	if (ws == NULL)
	{
		cai_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, g->M, g->N,
				  g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, g->C, g->ldc);
		return;
	}
	if (threads > panels)
		threads = panels;
	threads = helpers_acquire(threads);	/* 1: another caller has the helpers */
	if (threads == 1)
	{
		gemm_part(g, 0, g->M, 0, g->N, ws);
		return;
	}
	/* whole panels, shared out evenly */
	job.parts = threads;
	for (int t = 0; t <= threads; t++)
	{
		int			j = (int) ((int64_t) panels * t / threads) * unit;

		job.bounds[t] = j < extent ? j : extent;
	}
	helpers_run(&job, ws);
	for (int t = 1; t < threads; t++)
		if (job.failed[t])
			job_part(&job, t, ws);
}

/* C = beta C, C not read when beta is 0 (the product of an empty K). */
static void
scale_c(int M, int N, float beta, float *C, int ldc)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++)
		{
			float	   *c = C + (size_t) i * ldc + j;

			*c = beta == 0.0f ? 0.0f : beta * *c;
		}
}

bool
cai_gemm_run(cai_gemm_isa isa, int threads, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
			 float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	gemm_args	g = {kernel_of(isa), ta != CblasNoTrans, tb != CblasNoTrans, M, N, K, alpha, beta,
	A, lda, B, ldb, C, ldc};

	if (isa == CAI_GEMM_BLAS)
	{
		cai_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return true;
	}
	if (g.kern == NULL || isa > cai_gemm_cpu_isa())
		return false;
	if (M <= 0 || N <= 0)
		return true;
	if (K <= 0 || alpha == 0.0f)
		scale_c(M, N, beta, C, ldc);
	else
		gemm_blocked(&g, threads);
	return true;
}

/*
 * The encoder's rule, from bench/results-gemm.md: the AVX-512 kernel beats
 * OpenBLAS's Haswell kernels on every encoder shape; the AVX2 kernel only
 * matches them (the same FMA width), so AVX2 CPUs keep OpenBLAS.  Products
 * under THREADS_MIN multiply-adds run on one thread.  With helpers that
 * poll for the next product (SPIN_NS) an attention head's 128 x 128 x 64
 * (2^20) gains from a second thread; below 2^19 (a few microseconds) the
 * hand-off costs more than it saves.
 */
#ifndef THREADS_MIN
#define THREADS_MIN (1 << 19)
#endif

static cai_gemm_isa encoder_isa = (cai_gemm_isa) -1;	/* -1: this CPU's, if AVX-512 */

int
cai_gemm_threads_for(int M, int N, int K, int threads)
{
	return (double) M * N * K < THREADS_MIN ? 1 : threads;
}

void
cai_gemm_encoder_use(cai_gemm_isa isa)
{
	encoder_isa = isa;
}

bool
cai_gemm_encoder_own(void)
{
	return (int) encoder_isa < 0 ? cai_gemm_cpu_isa() == CAI_GEMM_AVX512 : encoder_isa != CAI_GEMM_BLAS &&
		encoder_isa <= cai_gemm_cpu_isa();
}

void
cai_sgemm_encoder(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
				  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
				  float *C, int ldc)
{
	cai_gemm_isa isa = encoder_isa;
	const int	threads = cai_gemm_threads_for(M, N, K, cai_blas_get_threads());

	if ((int) isa < 0)
		isa = cai_gemm_cpu_isa() == CAI_GEMM_AVX512 ? CAI_GEMM_AVX512 : CAI_GEMM_BLAS;
	if (order == CblasRowMajor && isa != CAI_GEMM_BLAS &&
		cai_gemm_run(isa, threads, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
		return;
	cai_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
