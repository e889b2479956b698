/*
 * vectorize.h: the hot kernels' attributes (internal to src/core).
 *
 * CAI_KERNEL marks one of the few functions that hold the hot loops
 * (LSTM gates, embedding bag sums, max pooling, the fast classifier's SGD
 * step and prediction, the word-vector updates).  The default build is portable (baseline x86-64,
 * no -march=native); on x86-64 with GCC or clang and glibc, a CAI_KERNEL
 * function is compiled three times, for AVX-512, AVX2 and the baseline,
 * and the dynamic loader picks one from cpuid when the library is loaded
 * (target_clones, an ifunc).  A kernel's callees that are inlined into it
 * are compiled with its target, and a clone calls the clones of the same
 * target directly.  Only on static functions (an exported function calls
 * its kernel): clang 14 names the ifunc of a global one "name.ifunc", which
 * other files do not call.
 *
 * Every clone computes the same bits: the core builds with
 * -ffp-contract=off (no fused multiply-add) and without -ffast-math, so a
 * vector lane does exactly the IEEE operations of the scalar code, in the
 * same order, and reductions are never reordered; a wider vector only
 * computes more independent lanes at once.  Model bytes and predictions do
 * not depend on the CPU (OpenBLAS, which picks its own kernels, and libm
 * aside: see README "Building").
 *
 * CAI_VECTORIZE is CAI_KERNEL for element-wise float loops: on GCC, which
 * vectorizes at -O2 only with its cheapest cost model, the function is also
 * compiled with the vectorizer fully on, so an element gives the same bits
 * whether it lands in the vector body or the scalar tail.  Clang
 * vectorizes at -O2 anyway.
 *
 * For the checks of bench/portable.sh on an AVX-512 machine (the same bits
 * from every clone): -DCAI_NO_DISPATCH builds the baseline only, and
 * -DCAI_NO_AVX512 the AVX2 and baseline clones only.  Elsewhere (arm64, other C libraries, compilers
 * without target_clones) the kernels are compiled once, for the target the
 * compiler was given.
 */
#ifndef CAI_VECTORIZE_H
#define CAI_VECTORIZE_H

#include <limits.h>				/* defines __GLIBC__ on glibc */

#ifndef __has_attribute
#define __has_attribute(x) 0
#endif

#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) && \
	!defined(CAI_NO_DISPATCH) && __has_attribute(target_clones)
#ifdef CAI_NO_AVX512
#define CAI_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define CAI_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#else
#define CAI_KERNEL
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define CAI_VECTORIZE CAI_KERNEL \
	__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off")))
#else
#define CAI_VECTORIZE CAI_KERNEL
#endif

#endif							/* CAI_VECTORIZE_H */
