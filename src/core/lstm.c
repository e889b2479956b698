/*
 * lstm.c: a single-direction LSTM over variable-length sequences (forward or
 * reversed) and a bidirectional wrapper.  See include/cai/lstm.h.
 *
 * Packing.  The sequences are stably sorted by decreasing length (counting
 * sort, deterministic).  perm[r] is the batch index of the r-th longest
 * sequence; at step s the sequences perm[0 .. cnt[s]-1] are active (they are
 * exactly those with len > s) and occupy packed rows off[s] .. off[s+1]-1.
 * Because the active set shrinks as a prefix, the state of row r at step s
 * continues row r of step s - 1.  Step s of sequence b reads position
 * s (forward) or len[b] - 1 - s (reverse).
 */
#include "cai/lstm.h"
#include "blas.h"
#include "vectorize.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RG_X86 1
#include <immintrin.h>
#include <pthread.h>
#endif

/* header slots at the start of the index region */
#define LSTM_HDR_S 0			/* number of steps = max len */
#define LSTM_HDR_N 1			/* packed rows = sum of len */
#define LSTM_HDR 2

/* Views into an activation (training) or work (inference) buffer. */
typedef struct lstm_layout
{
	int32_t    *hdr;			/* (LSTM_HDR) */
	int32_t    *perm;			/* (B) batch index by decreasing length */
	int32_t    *cnt;			/* (T) active sequences per step */
	int32_t    *off;			/* (T + 1) first packed row of each step */
	/* training */
	float	   *xp;				/* (B*T, C) packed inputs */
	float	   *g;				/* (B*T, 4H) gate activations i, f, g, o */
	float	   *c;				/* (B*T, H) cell states */
	float	   *tc;				/* (B*T, H) tanh of cell states */
	float	   *hp;				/* (B*T, H) previous hidden state of each row */
	float	   *dg;				/* (B*T, 4H) gradient w.r.t. gate pre-activations */
	float	   *dxp;			/* (B*T, C) packed input gradients */
	float	   *dh;				/* (B, H) recurrent hidden gradient */
	float	   *dc;				/* (B, H) recurrent cell gradient */
	float	   *wt;				/* W_hh^T (forward) or W_hh (backward) packed (rg_pack) */
	/* inference: R = lstm_infer_rows() packed rows per input chunk */
	float	   *xs;				/* (R, C) inputs of a chunk of steps */
	float	   *gs;				/* (R, 4H) gates of a chunk of steps */
	float	   *h;				/* (B, H) hidden state */
	float	   *cs[2];			/* (B, H) cell state, double-buffered */
	float	   *tcs;			/* (B, H) tanh of the cell state */
} lstm_layout;

size_t
cai_lstm_param_count(int C, int H)
{
	return (size_t) 4 * H * C + (size_t) 4 * H * H + (size_t) 4 * H;
}

void
cai_lstm_params_view(cai_lstm_params *p, float *base, int C, int H)
{
	p->w_ih = base;
	p->w_hh = p->w_ih + (size_t) 4 * H * C;
	p->b = p->w_hh + (size_t) 4 * H * H;
}

void
cai_lstm_init(cai_lstm_params *p, int C, int H, cai_rng *rng)
{
	float		k = 1.0f / sqrtf((float) H);
	size_t		nih = (size_t) 4 * H * C;
	size_t		nhh = (size_t) 4 * H * H;

	for (size_t i = 0; i < nih; i++)
		p->w_ih[i] = (2.0f * cai_rng_uniform(rng) - 1.0f) * k;
	for (size_t i = 0; i < nhh; i++)
		p->w_hh[i] = (2.0f * cai_rng_uniform(rng) - 1.0f) * k;
	for (int j = 0; j < 4 * H; j++)
		p->b[j] = (j >= H && j < 2 * H) ? 1.0f : 0.0f;
}

/*
 * The per-step recurrent products.  At step s only the n_s active rows
 * (a few dozen, fewer in each data-parallel shard) meet the (4H, H)
 * recurrent weights; a packed SGEMM (OpenBLAS) repacks all 4H x H weights
 * for each such call, which costs as much as the product itself.  These
 * products run here instead, against the weights packed once per forward
 * (or backward) call into the activation buffer:
 *
 *   C (n, M) = [C +] A (n, K) B (K, M)      row-major
 *
 * B is packed in panels of RG_NR columns (K x RG_NR floats each, k major,
 * the last panel padded with zeros), so a panel is read contiguously.
 * Every element of C is one chain of fused multiply-adds over
 * k = 0, 1, ..., K-1 (fmaf; a vector lane does the same operations as the
 * portable code), so its bits depend neither on the CPU (the AVX2 + FMA
 * path, chosen at run time, or the portable one: fmaf is correctly rounded
 * everywhere) nor on which other rows share the call: padding, batch
 * composition and the split into shards change no bit.
 */
#define RG_MR 6					/* rows of a tile (the 6 x 16 tile of AVX2 SGEMM kernels) */
#define RG_NR 16				/* columns of a panel */
#define RG_UNROLL _Pragma("GCC unroll 6")	/* keeps a tile's accumulators in registers */

static inline size_t
rg_panels(int M)
{
	return ((size_t) M + RG_NR - 1) / RG_NR;
}

/* Floats of B (K, M) packed. */
static size_t
rg_packed_size(int K, int M)
{
	return rg_panels(M) * RG_NR * (size_t) K;
}

/* Floats of the packed recurrent weights: W_hh^T (H, 4H) or W_hh (4H, H). */
static size_t
lstm_wt_size(int H)
{
	size_t		fwd = rg_packed_size(H, 4 * H);
	size_t		bwd = rg_packed_size(4 * H, H);

	return fwd > bwd ? fwd : bwd;
}

/*
 * Pack B (K, M) into panels: B[k][j] = src[k * ld + j], or src[j * ld + k]
 * when trans (B is the transpose of the row-major src).
 */
static void
rg_pack(float *restrict dst, const float *restrict src, int ld, bool trans, int K, int M)
{
	for (size_t p = 0; p < rg_panels(M); p++)
	{
		float	   *panel = dst + p * RG_NR * (size_t) K;
		int			j0 = (int) p * RG_NR;
		int			w = M - j0 < RG_NR ? M - j0 : RG_NR;

		for (int k = 0; k < K; k++)
		{
			float	   *row = panel + (size_t) k * RG_NR;

			for (int jj = 0; jj < w; jj++)
				row[jj] = trans ? src[(size_t) (j0 + jj) * ld + k] : src[(size_t) k * ld + j0 + jj];
			for (int jj = w; jj < RG_NR; jj++)
				row[jj] = 0.0f;
		}
	}
}

/* The portable code. */
static void
rg_gemm_portable(int n, int M, int K, const float *A, int lda, const float *Bp, bool add, float *C, int ldc)
{
	for (int r = 0; r < n; r++)
		for (int j = 0; j < M; j++)
		{
			const float *b = Bp + (size_t) (j / RG_NR) * RG_NR * K + j % RG_NR;
			float		s = add ? C[(size_t) r * ldc + j] : 0.0f;

			for (int k = 0; k < K; k++)
				s = fmaf(A[(size_t) r * lda + k], b[(size_t) k * RG_NR], s);
			C[(size_t) r * ldc + j] = s;
		}
}

#ifdef RG_X86
/*
 * An R x 16 tile (R <= RG_MR, a constant after inlining) of C (w <= 16 of
 * its columns): 2R accumulators, one panel row (2 vectors) loaded per k.
 */
__attribute__((target("avx2,fma"), always_inline))
static inline void
rg_tile(const int R, int K, const float *A, int lda, const float *panel, bool add, float *C, int ldc, int w)
{
	__m256		c0[RG_MR],
				c1[RG_MR];
	float		edge[RG_MR][RG_NR];

	RG_UNROLL
	for (int r = 0; r < R; r++)
	{
		const float *cr = C + (size_t) r * ldc;

		if (add && w < RG_NR)
		{
			memset(edge[r], 0, sizeof(edge[r]));
			memcpy(edge[r], cr, sizeof(float) * (size_t) w);
			cr = edge[r];
		}
		c0[r] = add ? _mm256_loadu_ps(cr) : _mm256_setzero_ps();
		c1[r] = add ? _mm256_loadu_ps(cr + 8) : _mm256_setzero_ps();
	}
	for (int k = 0; k < K; k++)
	{
		__m256		b0 = _mm256_loadu_ps(panel + (size_t) k * RG_NR);
		__m256		b1 = _mm256_loadu_ps(panel + (size_t) k * RG_NR + 8);

		RG_UNROLL
	for (int r = 0; r < R; r++)
		{
			__m256		a = _mm256_broadcast_ss(A + (size_t) r * lda + k);

			c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
			c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
		}
	}
	RG_UNROLL
	for (int r = 0; r < R; r++)
	{
		float	   *cr = C + (size_t) r * ldc;

		if (w == RG_NR)
		{
			_mm256_storeu_ps(cr, c0[r]);
			_mm256_storeu_ps(cr + 8, c1[r]);
		}
		else
		{
			_mm256_storeu_ps(edge[r], c0[r]);
			_mm256_storeu_ps(edge[r] + 8, c1[r]);
			memcpy(cr, edge[r], sizeof(float) * (size_t) w);
		}
	}
}

__attribute__((target("avx2,fma")))
static void
rg_gemm_avx2(int n, int M, int K, const float *A, int lda, const float *Bp, bool add, float *C, int ldc)
{
	/* panels outside, so a panel (K x 16) stays in L1 over the row tiles */
	for (size_t p = 0; p < rg_panels(M); p++)
	{
		const float *panel = Bp + p * RG_NR * (size_t) K;
		int			j0 = (int) p * RG_NR;
		int			w = M - j0 < RG_NR ? M - j0 : RG_NR;

		for (int r = 0; r < n; r += RG_MR)
		{
			const float *Ar = A + (size_t) r * lda;
			float	   *Cr = C + (size_t) r * ldc + j0;

			switch (n - r < RG_MR ? n - r : RG_MR)
			{
				case 6: rg_tile(6, K, Ar, lda, panel, add, Cr, ldc, w); break;
				case 5: rg_tile(5, K, Ar, lda, panel, add, Cr, ldc, w); break;
				case 4: rg_tile(4, K, Ar, lda, panel, add, Cr, ldc, w); break;
				case 3: rg_tile(3, K, Ar, lda, panel, add, Cr, ldc, w); break;
				case 2: rg_tile(2, K, Ar, lda, panel, add, Cr, ldc, w); break;
				default: rg_tile(1, K, Ar, lda, panel, add, Cr, ldc, w); break;
			}
		}
	}
	_mm256_zeroupper();
}

static pthread_once_t rg_once = PTHREAD_ONCE_INIT;
static bool rg_avx2;

static void
rg_detect(void)
{
	__builtin_cpu_init();
	rg_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

static bool rg_portable_only;	/* cai_lstm_portable_kernel */

void
cai_lstm_portable_kernel(bool on)
{
	rg_portable_only = on;
}

/* C (n, M) = [C +] A (n, K) B (K, M), B packed by rg_pack. */
static void
rg_gemm(int n, int M, int K, const float *A, int lda, const float *Bp, bool add, float *C, int ldc)
{
#ifdef RG_X86
	pthread_once(&rg_once, rg_detect);
	if (rg_avx2 && !rg_portable_only)
	{
		rg_gemm_avx2(n, M, K, A, lda, Bp, add, C, ldc);
		return;
	}
#endif
	rg_gemm_portable(n, M, K, A, lda, Bp, add, C, ldc);
}

/*
 * Activations.  The gate nonlinearities dominate the time outside sgemm, so
 * they use a branch-free expf (Cephes polynomial, about 1 ulp on the
 * clamped range) that compilers vectorize, in array passes.  On GCC the
 * passes are compiled with the vectorizer on and without FMA contraction
 * (CAI_VECTORIZE), so an element gives the same bits whether it lands in
 * the vector body or the scalar tail: results do not depend on buffer
 * alignment, batch composition or padding.
 *
 * The clamp of exp's argument is a pass of its own, before the polynomial:
 * in one loop GCC (12) threads the clamped constants through the
 * polynomial, the loop keeps branches and is vectorized for no target
 * below AVX-512 (the scalar code then took half of a batch's time).  The
 * operations, and so the bits, are those of one loop.
 */
static inline float
exp_clamp(float x)
{
	x = x < -87.0f ? -87.0f : x;
	return x > 88.0f ? 88.0f : x;
}

/* exp(x) for x clamped by exp_clamp */
static inline float
exp_poly(float x)
{
	float		n,
				r,
				z,
				q,
				scale;
	int32_t		e;

	/* n = round(x / ln 2) by the 1.5 * 2^23 trick */
	n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	/* r = x - n ln 2 in two parts (Cody-Waite) */
	r = x - n * 0.693359375f;
	r = r + n * 2.12194440e-4f;
	z = r * r;
	q = 1.9875691500e-4f;
	q = q * r + 1.3981999507e-3f;
	q = q * r + 8.3334519073e-3f;
	q = q * r + 4.1665795894e-2f;
	q = q * r + 1.6666665459e-1f;
	q = q * r + 5.0000001201e-1f;
	q = q * z + r + 1.0f;
	e = ((int32_t) n + 127) << 23;
	memcpy(&scale, &e, sizeof(scale));
	return q * scale;
}

/* a = sigmoid(a) = 1 / (1 + exp(-a)) */
CAI_VECTORIZE static void
lstm_sigmoid_inplace(float *restrict a, int n)
{
	for (int k = 0; k < n; k++)
		a[k] = exp_clamp(-a[k]);
	for (int k = 0; k < n; k++)
		a[k] = 1.0f / (1.0f + exp_poly(a[k]));
}

/* a = tanh(a) = 2 sigmoid(2a) - 1: absolute error below 2e-7 */
CAI_VECTORIZE static void
lstm_tanh_inplace(float *restrict a, int n)
{
	for (int k = 0; k < n; k++)
		a[k] = exp_clamp(-(2.0f * a[k]));
	for (int k = 0; k < n; k++)
		a[k] = 2.0f * (1.0f / (1.0f + exp_poly(a[k]))) - 1.0f;
}

/*
 * One LSTM cell on a row: the gate pre-activations a (4H) become
 * activations i, f, g, o in place; writes c, tc = tanh(c) and h = o * tc.
 * cprev NULL means a zero previous cell state.  h may be strided memory
 * (an output row); no argument may alias another.
 */
CAI_VECTORIZE static void
lstm_cell(float *restrict a, const float *restrict cprev, float *restrict c,
		  float *restrict tc, float *restrict h, int H)
{
	const float *i = a;
	const float *f = a + H;
	const float *g = a + 2 * H;
	const float *o = a + 3 * H;

	lstm_sigmoid_inplace(a, 2 * H);
	lstm_tanh_inplace(a + 2 * H, H);
	lstm_sigmoid_inplace(a + 3 * H, H);
	if (cprev != NULL)
		for (int j = 0; j < H; j++)
			c[j] = f[j] * cprev[j] + i[j] * g[j];
	else
		for (int j = 0; j < H; j++)
			c[j] = i[j] * g[j];
	memcpy(tc, c, sizeof(float) * (size_t) H);
	lstm_tanh_inplace(tc, H);
	for (int j = 0; j < H; j++)
		h[j] = o[j] * tc[j];
}

static cai_status
lstm_check_dims(int B, int T, int C, int H, cai_error *err)
{
	if (B < 1 || T < 1 || C < 1 || H < 1)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "lstm sizes must be positive (B=%d, T=%d, C=%d, H=%d)",
							 B, T, C, H);
	if ((int64_t) B * T > INT32_MAX / 2 || H > INT32_MAX / 8 || C > INT32_MAX / 2)
		return cai_error_set(err, CAI_ERR_LIMIT,
							 "lstm sizes too large (B=%d, T=%d, C=%d, H=%d)",
							 B, T, C, H);
	return CAI_OK;
}

/* Index region in floats (int32 slots), rounded up to 64 bytes. */
static size_t
lstm_idx_slots(int B, int T)
{
	size_t		n = (size_t) LSTM_HDR + (size_t) B + 2 * (size_t) T + 1;

	return (n + 15) & ~(size_t) 15;
}

/* total += a * b, with overflow tracking */
static inline bool
size_addmul(size_t *total, size_t a, size_t b)
{
	size_t		m;

	return cai_size_mul(a, b, &m) && cai_size_add(*total, m, total);
}

cai_status
cai_lstm_acts_size(int B, int T, int C, int H, size_t *nfloats, cai_error *err)
{
	cai_status	st = lstm_check_dims(B, T, C, H, err);
	size_t		total;
	size_t		nt = (size_t) B * T;
	size_t		h = (size_t) H;
	size_t		i = (size_t) C;

	if (st != CAI_OK)
		return st;
	total = lstm_idx_slots(B, T);
	/* xp, dxp: C each; g, dg: 4H each; c, tc, hp: H each; dh, dc: (B, H); wt: (H, 4H) */
	if (!size_addmul(&total, nt, 2 * i) ||
		!size_addmul(&total, nt, 8 * h) ||
		!size_addmul(&total, nt, 3 * h) ||
		!size_addmul(&total, (size_t) B, 2 * h) ||
		!cai_size_add(total, lstm_wt_size(H), &total) ||
		total > SIZE_MAX / sizeof(float))
		return cai_error_set(err, CAI_ERR_LIMIT,
							 "lstm activation size overflows (B=%d, T=%d, C=%d, H=%d)",
							 B, T, C, H);
	*nfloats = total;
	return CAI_OK;
}

/*
 * Inference projects the inputs of several steps with one sgemm: chunks of
 * up to R packed rows, R = max(B, LSTM_INFER_ROWS) (at most B * T).
 */
#define LSTM_INFER_ROWS 256

static size_t
lstm_infer_rows(int B, int T)
{
	size_t		r = B > LSTM_INFER_ROWS ? (size_t) B : LSTM_INFER_ROWS;

	return r < (size_t) B * T ? r : (size_t) B * T;
}

cai_status
cai_lstm_infer_size(int B, int T, int C, int H, size_t *nfloats, cai_error *err)
{
	cai_status	st = lstm_check_dims(B, T, C, H, err);
	size_t		total;

	if (st != CAI_OK)
		return st;
	total = lstm_idx_slots(B, T);
	/* xs (R, C), gs (R, 4H); h, cs[0], cs[1], tcs (B, H) */
	if (!size_addmul(&total, lstm_infer_rows(B, T), (size_t) C + 4 * (size_t) H) ||
		!size_addmul(&total, (size_t) B, 4 * (size_t) H) ||
		total > SIZE_MAX / sizeof(float))
		return cai_error_set(err, CAI_ERR_LIMIT,
							 "lstm work size overflows (B=%d, T=%d, C=%d, H=%d)",
							 B, T, C, H);
	*nfloats = total;
	return CAI_OK;
}

static void
lstm_layout_index(lstm_layout *L, float *buf, int B, int T)
{
	int32_t    *idx = (int32_t *) buf;

	memset(L, 0, sizeof(*L));
	L->hdr = idx;
	L->perm = idx + LSTM_HDR;
	L->cnt = L->perm + B;
	L->off = L->cnt + T;
}

static void
lstm_layout_train(lstm_layout *L, float *acts, int B, int T, int C, int H)
{
	size_t		nt = (size_t) B * T;
	float	   *p = acts + lstm_idx_slots(B, T);

	lstm_layout_index(L, acts, B, T);
	L->xp = p;
	p += nt * C;
	L->g = p;
	p += nt * 4 * H;
	L->c = p;
	p += nt * H;
	L->tc = p;
	p += nt * H;
	L->hp = p;
	p += nt * H;
	L->dg = p;
	p += nt * 4 * H;
	L->dxp = p;
	p += nt * C;
	L->dh = p;
	p += (size_t) B * H;
	L->dc = p;
	p += (size_t) B * H;
	L->wt = p;
}

static void
lstm_layout_infer(lstm_layout *L, float *work, int B, int T, int C, int H)
{
	float	   *p = work + lstm_idx_slots(B, T);
	size_t		R = lstm_infer_rows(B, T);

	lstm_layout_index(L, work, B, T);
	L->xs = p;
	p += R * C;
	L->gs = p;
	p += R * 4 * H;
	L->h = p;
	p += (size_t) B * H;
	L->cs[0] = p;
	p += (size_t) B * H;
	L->cs[1] = p;
	p += (size_t) B * H;
	L->tcs = p;
}

static cai_status
lstm_check_lengths(const int32_t *len, int B, int T, cai_error *err)
{
	for (int b = 0; b < B; b++)
		if (len[b] < 0 || len[b] > T)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "sequence %d has length %d outside [0, %d]",
								 b, (int) len[b], T);
	return CAI_OK;
}

/*
 * Build perm/cnt/off from the lengths (already checked to be in [0, T]):
 * a stable counting sort by decreasing length.
 */
static void
lstm_pack(const lstm_layout *L, const int32_t *len, int B, int T)
{
	int32_t    *off = L->off;
	int32_t		acc = 0;
	int			S = 0;

	/* histogram of lengths in off[0..T] */
	memset(off, 0, sizeof(int32_t) * (size_t) (T + 1));
	for (int b = 0; b < B; b++)
		off[len[b]]++;
	/* off[l] := number of sequences longer than l = first slot of length l */
	for (int l = T; l >= 0; l--)
	{
		int32_t		h = off[l];

		off[l] = acc;
		acc += h;
	}
	for (int s = 0; s < T; s++)
	{
		L->cnt[s] = off[s];
		if (off[s] > 0)
			S = s + 1;
	}
	for (int b = 0; b < B; b++)
		L->perm[off[len[b]]++] = b;
	off[0] = 0;
	for (int s = 0; s < T; s++)
		off[s + 1] = off[s] + L->cnt[s];
	L->hdr[LSTM_HDR_S] = S;
	L->hdr[LSTM_HDR_N] = off[T];
}

/*
 * The backward trusts the index region only after checking that it is a
 * valid packing of these lengths (so a mismatched call cannot index out of
 * bounds).
 */
static cai_status
lstm_check_pack(const lstm_layout *L, const int32_t *len, int B, int T,
				cai_error *err)
{
	int32_t		prev = INT32_MAX;
	int32_t		S = L->hdr[LSTM_HDR_S];

	for (int r = 0; r < B; r++)
	{
		int32_t		b = L->perm[r];

		if (b < 0 || b >= B || len[b] > prev)
			goto bad;
		prev = len[b];
	}
	if (S < 0 || S > T || L->off[0] != 0)
		goto bad;
	for (int s = 0; s < T; s++)
	{
		int32_t		n = L->cnt[s];

		if (n < 0 || n > B || (s < S) != (n > 0))
			goto bad;
		if (n > 0 && len[L->perm[n - 1]] <= s)
			goto bad;
		if (n < B && len[L->perm[n]] > s)
			goto bad;
		if (L->off[s + 1] != L->off[s] + n)
			goto bad;
	}
	if (L->hdr[LSTM_HDR_N] != L->off[T])
		goto bad;
	return CAI_OK;
bad:
	return cai_error_set(err, CAI_ERR_INVALID,
						 "lstm activations do not match the sequence lengths of this call");
}

static inline size_t
lstm_pos(const int32_t *len, int32_t b, int s, bool reverse)
{
	return (size_t) (reverse ? len[b] - 1 - s : s);
}

/* Zero the output rows of padded positions. */
static void
lstm_zero_padding(float *out, int ldo, const int32_t *len, int B, int T, int H)
{
	for (int b = 0; b < B; b++)
		for (int t = len[b]; t < T; t++)
			memset(out + ((size_t) b * T + t) * ldo, 0, sizeof(float) * (size_t) H);
}

static cai_status
lstm_check_args(const cai_lstm_params *p, const float *inp, const int32_t *len,
				int B, int T, int C, int H, const float *out, int ldo,
				cai_error *err)
{
	cai_status	st = lstm_check_dims(B, T, C, H, err);

	if (st != CAI_OK)
		return st;
	if (p == NULL || p->w_ih == NULL || p->w_hh == NULL || p->b == NULL ||
		len == NULL || inp == NULL || out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "lstm argument is null");
	if (ldo < H)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "lstm output stride %d is smaller than the hidden size %d",
							 ldo, H);
	return lstm_check_lengths(len, B, T, err);
}

cai_status
cai_lstm_forward(const cai_lstm_params *p,
				 const float *inp, const int32_t *len,
				 int B, int T, int C, int H, bool reverse,
				 float *out, int ldo,
				 float *acts, cai_error *err)
{
	cai_status	st = lstm_check_args(p, inp, len, B, T, C, H, out, ldo, err);
	lstm_layout L;
	int			S;
	int			N;
	int			G4 = 4 * H;

	if (st != CAI_OK)
		return st;
	if (acts == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "lstm activation buffer is null");
	lstm_layout_train(&L, acts, B, T, C, H);
	lstm_pack(&L, len, B, T);
	S = L.hdr[LSTM_HDR_S];
	N = L.hdr[LSTM_HDR_N];
	lstm_zero_padding(out, ldo, len, B, T, H);
	if (N == 0)
		return CAI_OK;

	/* gather the packed inputs, initialize every gate row with the bias */
	for (int s = 0; s < S; s++)
		for (int r = 0; r < L.cnt[s]; r++)
		{
			int32_t		b = L.perm[r];
			size_t		row = (size_t) L.off[s] + r;
			size_t		t = lstm_pos(len, b, s, reverse);

			memcpy(L.xp + row * C, inp + ((size_t) b * T + t) * C, sizeof(float) * (size_t) C);
			memcpy(L.g + row * G4, p->b, sizeof(float) * (size_t) G4);
		}
	/* input projection of all positions at once: (N, C) x (C, 4H) */
	cai_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, G4, C,
			  1.0f, L.xp, C, p->w_ih, C, 1.0f, L.g, G4);
	/* W_hh^T (H, 4H) packed for the steps' products */
	if (S > 1)
		rg_pack(L.wt, p->w_hh, H, true, H, G4);

	for (int s = 0; s < S; s++)
	{
		int			n = L.cnt[s];
		int			nnext = (s + 1 < T) ? L.cnt[s + 1] : 0;
		float	   *gs = L.g + (size_t) L.off[s] * G4;

		/* recurrent projection (n, H) x (H, 4H); h is zero at s = 0 */
		if (s > 0)
			rg_gemm(n, G4, H, L.hp + (size_t) L.off[s] * H, H, L.wt, true, gs, G4);
		for (int r = 0; r < n; r++)
		{
			int32_t		b = L.perm[r];
			size_t		row = (size_t) L.off[s] + r;
			size_t		t = lstm_pos(len, b, s, reverse);
			const float *cprev = s > 0 ? L.c + ((size_t) L.off[s - 1] + r) * H : NULL;
			float	   *h = out + ((size_t) b * T + t) * ldo;

			lstm_cell(L.g + row * G4, cprev, L.c + row * H, L.tc + row * H, h, H);
			if (r < nnext)
				memcpy(L.hp + ((size_t) L.off[s + 1] + r) * H, h, sizeof(float) * (size_t) H);
		}
	}
	return CAI_OK;
}

cai_status
cai_lstm_backward(const cai_lstm_params *p, cai_lstm_params *grad,
				  const int32_t *len,
				  int B, int T, int C, int H, bool reverse,
				  const float *dout, int ldo, float *dinp,
				  float *acts, cai_error *err)
{
	cai_status	st;
	lstm_layout L;
	int			S;
	int			N;
	int			G4 = 4 * H;

	/* dout stands in for the input in the shared argument check */
	st = lstm_check_args(p, dout, len, B, T, C, H, dout, ldo, err);
	if (st != CAI_OK)
		return st;
	if (acts == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "lstm activation buffer is null");
	if (grad == NULL || grad->w_ih == NULL || grad->w_hh == NULL || grad->b == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "lstm gradient is null");
	lstm_layout_train(&L, acts, B, T, C, H);
	st = lstm_check_pack(&L, len, B, T, err);
	if (st != CAI_OK)
		return st;
	S = L.hdr[LSTM_HDR_S];
	N = L.hdr[LSTM_HDR_N];
	if (N == 0)
		return CAI_OK;

	/* W_hh (4H, H) packed for the steps' products */
	if (S > 1)
		rg_pack(L.wt, p->w_hh, H, false, G4, H);
	for (int s = S - 1; s >= 0; s--)
	{
		int			n = L.cnt[s];
		int			nnext = (s + 1 < T) ? L.cnt[s + 1] : 0;

		/* rows that end at this step have no gradient from the future */
		memset(L.dh + (size_t) nnext * H, 0, sizeof(float) * (size_t) (n - nnext) * H);
		memset(L.dc + (size_t) nnext * H, 0, sizeof(float) * (size_t) (n - nnext) * H);
		for (int r = 0; r < n; r++)
		{
			int32_t		b = L.perm[r];
			size_t		row = (size_t) L.off[s] + r;
			size_t		t = lstm_pos(len, b, s, reverse);
			const float *a = L.g + row * G4;
			const float *tc = L.tc + row * H;
			const float *cprev = s > 0 ? L.c + ((size_t) L.off[s - 1] + r) * H : NULL;
			const float *dy = dout + ((size_t) b * T + t) * ldo;
			float	   *da = L.dg + row * G4;
			float	   *dhr = L.dh + (size_t) r * H;
			float	   *dcr = L.dc + (size_t) r * H;

			for (int j = 0; j < H; j++)
			{
				float		i = a[j];
				float		f = a[H + j];
				float		g = a[2 * H + j];
				float		o = a[3 * H + j];
				float		dh = dy[j] + dhr[j];
				float		dc = dcr[j] + dh * o * (1.0f - tc[j] * tc[j]);
				float		cp = cprev != NULL ? cprev[j] : 0.0f;

				da[j] = dc * g * i * (1.0f - i);
				da[H + j] = dc * cp * f * (1.0f - f);
				da[2 * H + j] = dc * i * (1.0f - g * g);
				da[3 * H + j] = dh * tc[j] * o * (1.0f - o);
				dcr[j] = dc * f;
			}
		}
		/* hidden gradient into step s - 1: (n, 4H) x (4H, H) */
		if (s > 0)
			rg_gemm(n, H, G4, L.dg + (size_t) L.off[s] * G4, G4, L.wt, false, L.dh, H);
	}

	/* dW_ih += dA^T Xp: (4H, N) x (N, C) */
	cai_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G4, C, N,
			  1.0f, L.dg, G4, L.xp, C, 1.0f, grad->w_ih, C);
	/* dW_hh += dA^T Hprev over the rows after step 0 */
	if (N - L.off[1] > 0)
		cai_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G4, H, N - L.off[1],
				  1.0f, L.dg + (size_t) L.off[1] * G4, G4,
				  L.hp + (size_t) L.off[1] * H, H, 1.0f, grad->w_hh, H);
	for (int row = 0; row < N; row++)
	{
		const float *da = L.dg + (size_t) row * G4;

		for (int k = 0; k < G4; k++)
			grad->b[k] += da[k];
	}
	if (dinp != NULL)
	{
		/* dXp = dA W_ih: (N, 4H) x (4H, C), then scatter-add */
		cai_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, G4,
				  1.0f, L.dg, G4, p->w_ih, C, 0.0f, L.dxp, C);
		for (int s = 0; s < S; s++)
			for (int r = 0; r < L.cnt[s]; r++)
			{
				int32_t		b = L.perm[r];
				size_t		t = lstm_pos(len, b, s, reverse);
				const float *src = L.dxp + ((size_t) L.off[s] + r) * C;
				float	   *dst = dinp + ((size_t) b * T + t) * C;

				for (int k = 0; k < C; k++)
					dst[k] += src[k];
			}
	}
	return CAI_OK;
}

/*
 * Step s of an inference pass: gs (cnt[s], 4H) holds the input projections
 * (x W_ih^T + b) of the active rows; adds the recurrent projection, runs the
 * cells (the state in L) and writes each row's h to its output position.
 */
static void
lstm_infer_step(const lstm_layout *L, const cai_lstm_params *p, float *gs, int s, const int32_t *len, int T,
				int H, bool reverse, float *out, int ldo)
{
	int			n = L->cnt[s];
	int			G4 = 4 * H;
	float	   *cprev = L->cs[(s + 1) & 1];
	float	   *cur = L->cs[s & 1];

	/*
	 * BLAS, not rg_gemm: a stored version's answers must stay bit for bit
	 * those of earlier releases (IMMUTABLE functions, expression indexes;
	 * test/faults/upgrade_history.sh), and rg_gemm rounds otherwise.  It
	 * would make a row's prediction about twice as fast (W_hh is repacked
	 * here at every step): a change for a release that may change answers.
	 */
	if (s > 0)
		cai_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, G4, H,
				  1.0f, L->h, H, p->w_hh, H, 1.0f, gs, G4);
	for (int r = 0; r < n; r++)
	{
		int32_t		b = L->perm[r];
		size_t		t = lstm_pos(len, b, s, reverse);
		float	   *h = L->h + (size_t) r * H;

		/* h is overwritten in place: the sgemm above already read it */
		lstm_cell(gs + (size_t) r * G4, s > 0 ? cprev + (size_t) r * H : NULL,
				  cur + (size_t) r * H, L->tcs + (size_t) r * H, h, H);
		memcpy(out + ((size_t) b * T + t) * ldo, h, sizeof(float) * (size_t) H);
	}
}

cai_status
cai_lstm_infer(const cai_lstm_params *p,
			   const float *inp, const int32_t *len,
			   int B, int T, int C, int H, bool reverse,
			   float *out, int ldo,
			   float *work, cai_error *err)
{
	cai_status	st;
	lstm_layout L;
	float	   *owned = NULL;
	size_t		R;
	int			S;
	int			G4 = 4 * H;

	st = lstm_check_args(p, inp, len, B, T, C, H, out, ldo, err);
	if (st != CAI_OK)
		return st;
	if (work == NULL)
	{
		size_t		nf;

		st = cai_lstm_infer_size(B, T, C, H, &nf, err);
		if (st != CAI_OK)
			return st;
		owned = cai_malloc(nf * sizeof(float));
		if (owned == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM,
								 "out of memory for lstm work buffer (%zu bytes)",
								 nf * sizeof(float));
		work = owned;
	}
	lstm_layout_infer(&L, work, B, T, C, H);
	R = lstm_infer_rows(B, T);
	lstm_pack(&L, len, B, T);
	S = L.hdr[LSTM_HDR_S];
	lstm_zero_padding(out, ldo, len, B, T, H);

	for (int s0 = 0; s0 < S;)
	{
		int			s1 = s0 + 1;
		int			rows;

		/* a chunk of steps [s0, s1) whose packed rows fit in xs/gs */
		while (s1 < S && (size_t) (L.off[s1 + 1] - L.off[s0]) <= R)
			s1++;
		rows = L.off[s1] - L.off[s0];
		for (int s = s0; s < s1; s++)
			for (int r = 0; r < L.cnt[s]; r++)
			{
				int32_t		b = L.perm[r];
				size_t		t = lstm_pos(len, b, s, reverse);
				size_t		row = (size_t) (L.off[s] - L.off[s0]) + r;

				memcpy(L.xs + row * C, inp + ((size_t) b * T + t) * C, sizeof(float) * (size_t) C);
				memcpy(L.gs + row * G4, p->b, sizeof(float) * (size_t) G4);
			}
		cai_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, G4, C,
				  1.0f, L.xs, C, p->w_ih, C, 1.0f, L.gs, G4);

		for (int s = s0; s < s1; s++)
			lstm_infer_step(&L, p, L.gs + (size_t) (L.off[s] - L.off[s0]) * G4, s, len, T, H, reverse,
							out, ldo);
		s0 = s1;
	}
	cai_free(owned);
	return CAI_OK;
}

cai_status
cai_lstm_infer_proj(const cai_lstm_params *p, const float *proj, int ldp, const int32_t *idx, int n_proj,
					const int32_t *len, int B, int T, int H, bool reverse,
					float *out, int ldo, float *work, cai_error *err)
{
	cai_status	st;
	lstm_layout L;
	int			S;
	int			G4 = 4 * H;

	/* proj stands in for the input in the shared argument check */
	st = lstm_check_args(p, proj, len, B, T, 1, H, out, ldo, err);
	if (st != CAI_OK)
		return st;
	if (idx == NULL || work == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "lstm argument is null");
	if (ldp < G4)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "lstm projection stride %d is smaller than the gates %d", ldp, G4);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < len[b]; t++)
			if (idx[(size_t) b * T + t] < 0 || idx[(size_t) b * T + t] >= n_proj)
				return cai_error_set(err, CAI_ERR_INVALID,
									 "sequence %d position %d has projection row %d outside [0, %d)",
									 b, t, (int) idx[(size_t) b * T + t], n_proj);
	lstm_layout_infer(&L, work, B, T, 1, H);
	lstm_pack(&L, len, B, T);
	S = L.hdr[LSTM_HDR_S];
	lstm_zero_padding(out, ldo, len, B, T, H);

	for (int s = 0; s < S; s++)
	{
		/* the step's gate inputs are rows of proj: gs holds at least B rows */
		for (int r = 0; r < L.cnt[s]; r++)
		{
			int32_t		b = L.perm[r];
			size_t		t = lstm_pos(len, b, s, reverse);

			memcpy(L.gs + (size_t) r * G4, proj + (size_t) idx[(size_t) b * T + t] * ldp,
				   sizeof(float) * (size_t) G4);
		}
		lstm_infer_step(&L, p, L.gs, s, len, T, H, reverse, out, ldo);
	}
	return CAI_OK;
}

cai_status
cai_bilstm_acts_size(int B, int T, int C, int H, size_t *nfloats, cai_error *err)
{
	size_t		one;
	cai_status	st = cai_lstm_acts_size(B, T, C, H, &one, err);

	if (st != CAI_OK)
		return st;
	if (!cai_size_mul(one, 2, nfloats))
		return cai_error_set(err, CAI_ERR_LIMIT, "bilstm activation size overflows");
	return CAI_OK;
}

cai_status
cai_bilstm_forward(const cai_lstm_params *fw, const cai_lstm_params *bw,
				   const float *inp, const int32_t *len,
				   int B, int T, int C, int H,
				   float *out, float *acts, cai_error *err)
{
	size_t		one;
	cai_status	st = cai_lstm_acts_size(B, T, C, H, &one, err);

	if (st != CAI_OK)
		return st;
	if (out == NULL || acts == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "bilstm argument is null");
	st = cai_lstm_forward(fw, inp, len, B, T, C, H, false, out, 2 * H, acts, err);
	if (st != CAI_OK)
		return st;
	return cai_lstm_forward(bw, inp, len, B, T, C, H, true, out + H, 2 * H,
							acts + one, err);
}

cai_status
cai_bilstm_backward(const cai_lstm_params *fw, const cai_lstm_params *bw,
					cai_lstm_params *gfw, cai_lstm_params *gbw,
					const int32_t *len, int B, int T, int C, int H,
					const float *dout, float *dinp,
					float *acts, cai_error *err)
{
	size_t		one;
	cai_status	st = cai_lstm_acts_size(B, T, C, H, &one, err);

	if (st != CAI_OK)
		return st;
	if (dout == NULL || acts == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "bilstm argument is null");
	st = cai_lstm_backward(fw, gfw, len, B, T, C, H, false, dout, 2 * H, dinp,
						   acts, err);
	if (st != CAI_OK)
		return st;
	return cai_lstm_backward(bw, gbw, len, B, T, C, H, true, dout + H, 2 * H, dinp,
							 acts + one, err);
}

cai_status
cai_bilstm_infer(const cai_lstm_params *fw, const cai_lstm_params *bw,
				 const float *inp, const int32_t *len,
				 int B, int T, int C, int H,
				 float *out, float *work, cai_error *err)
{
	cai_status	st;

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "bilstm argument is null");
	st = cai_lstm_infer(fw, inp, len, B, T, C, H, false, out, 2 * H, work, err);
	if (st != CAI_OK)
		return st;
	return cai_lstm_infer(bw, inp, len, B, T, C, H, true, out + H, 2 * H, work, err);
}

cai_status
cai_bilstm_infer_proj(const cai_lstm_params *fw, const cai_lstm_params *bw,
					  const float *proj, const int32_t *idx, int n_proj,
					  const int32_t *len, int B, int T, int H,
					  float *out, float *work, cai_error *err)
{
	cai_status	st;

	if (out == NULL || proj == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "bilstm argument is null");
	st = cai_lstm_infer_proj(fw, proj, 8 * H, idx, n_proj, len, B, T, H, false, out, 2 * H, work, err);
	if (st != CAI_OK)
		return st;
	return cai_lstm_infer_proj(bw, proj + 4 * H, 8 * H, idx, n_proj, len, B, T, H, true, out + H, 2 * H,
							   work, err);
}
