/*
 * vectorize.h: CAI_VECTORIZE, for element-wise float loops that must give
 * the same bits whether an element lands in the vector body or the scalar
 * tail (internal to src/core).
 *
 * The core builds at -O2; on GCC the marked function is compiled with the
 * vectorizer on and without FMA contraction (-fno-fast-math is kept, so a
 * vector lane computes exactly what the scalar code does).  Other
 * compilers get nothing (clang vectorizes at -O2 and does not contract
 * across statements).
 */
#ifndef CAI_VECTORIZE_H
#define CAI_VECTORIZE_H

#if defined(__GNUC__) && !defined(__clang__)
#define CAI_VECTORIZE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off")))
#else
#define CAI_VECTORIZE
#endif

#endif							/* CAI_VECTORIZE_H */
