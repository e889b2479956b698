/*
 * gemm_kernel.h: the SGEMM micro-kernel, one body for every instruction set
 * (internal to gemm.c, which includes it once per set with the macros below
 * defined; it undefines them at its end).
 *
 * C[MR x 2W] = alpha * (A panel . B panel) + beta * C: for each of kc steps,
 * MR floats of the A panel are broadcast and multiplied by two vectors (2W
 * floats) of the B panel into MR x 2 accumulators held in registers; the
 * tile is then scaled and added to C (row stride ldc), reading C only when
 * beta is not zero (its lines are prefetched for writing at the start).
 *
 *   KERN_NAME, KERN_TARGET ("avx512f,fma"), KERN_MR, KERN_W (floats a vector),
 *   KERN_UNROLL (_Pragma("GCC unroll <KERN_MR>")), VEC (the vector type),
 *   V_ZERO(), V_SET1(x), V_BCAST(p) (*p in every lane), V_LOAD(p) (aligned),
 *   V_LOADU(p), V_STOREU(p, x), V_MUL(a, b), V_FMA(a, b, c) (a * b + c),
 *   KERN_END() (after the stores, e.g. vzeroupper).
 */
__attribute__((target(KERN_TARGET)))
static void
KERN_NAME(int kc, const float *restrict a, const float *restrict b, float *c, size_t ldc, float alpha, float beta)
{
	VEC			acc[KERN_MR][2];
	const VEC	va = V_SET1(alpha);
	const VEC	vb = V_SET1(beta);

	/*
	 * C's tile is fetched while the products run: its rows are ldc apart,
	 * and at a power-of-two-ish ldc (3072 floats: BERT's feed-forward) they
	 * share cache sets, so the loads at the end would otherwise miss one
	 * after another (measured: 1.6 -> 1.75x OpenBLAS at 1024 x 3072 x 768).
	 */
	KERN_UNROLL
	for (int r = 0; r < KERN_MR; r++)
	{
		__builtin_prefetch(c + (size_t) r * ldc, 1, 3);
		__builtin_prefetch(c + (size_t) r * ldc + 2 * KERN_W - 1, 1, 3);
		acc[r][0] = acc[r][1] = V_ZERO();
	}
	for (int k = 0; k < kc; k++)
	{
		const VEC	b0 = V_LOAD(b);
		const VEC	b1 = V_LOAD(b + KERN_W);

		KERN_UNROLL
		for (int r = 0; r < KERN_MR; r++)
		{
			const VEC	ar = V_BCAST(a + r);

			acc[r][0] = V_FMA(ar, b0, acc[r][0]);
			acc[r][1] = V_FMA(ar, b1, acc[r][1]);
		}
		a += KERN_MR;
		b += 2 * KERN_W;
	}
	KERN_UNROLL
	for (int r = 0; r < KERN_MR; r++)
	{
		float	   *cr = c + (size_t) r * ldc;
		VEC			x0 = V_MUL(va, acc[r][0]);
		VEC			x1 = V_MUL(va, acc[r][1]);

		if (beta != 0.0f)
		{
			x0 = V_FMA(vb, V_LOADU(cr), x0);
			x1 = V_FMA(vb, V_LOADU(cr + KERN_W), x1);
		}
		V_STOREU(cr, x0);
		V_STOREU(cr + KERN_W, x1);
	}
	KERN_END();
}

#undef KERN_NAME
#undef KERN_TARGET
#undef KERN_MR
#undef KERN_W
#undef KERN_UNROLL
#undef VEC
#undef V_ZERO
#undef V_SET1
#undef V_BCAST
#undef V_LOAD
#undef V_LOADU
#undef V_STOREU
#undef V_MUL
#undef V_FMA
#undef KERN_END
