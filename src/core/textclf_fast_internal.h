/*
 * textclf_fast_internal.h: what the two files of the fast text
 * classification architecture share: textclf_fast.c (features, the loaded
 * model, load and predict) and textclf_fast_train.c (training and
 * serialization, which builds the loader's tables).  The feature
 * definitions, the loaded model and the vector kernels are here so that
 * training computes exactly what inference computes.
 */
#ifndef CAI_TEXTCLF_FAST_INTERNAL_H
#define CAI_TEXTCLF_FAST_INTERNAL_H

#include <math.h>
#include <string.h>

#include "textclf_internal.h"
#include "vectorize.h"

/* ---------------------------------------------------------------------- */
/* Features (shared by training and inference)                            */
/* ---------------------------------------------------------------------- */

/*
 * Version of the feature extraction.  Bump it when anything below changes
 * the features of a text; models record it and the fingerprint of a probe
 * text, and loading refuses a model whose features this build would compute
 * differently.
 */
#define FAST_FEATURE_VERSION	1
#define FAST_NORM_MAX			128 /* bytes of a normalized token (incl. NUL) */
#define FAST_CHAR_NGRAMS_MAX	TEXTCLF_CHAR_NGRAMS_MAX
#define FAST_MAX_NGRAMS			5	/* upper bound of word_ngrams */
#define FAST_BYTES_PER_TOKEN	TEXTCLF_BYTES_PER_TOKEN	/* text read: at most max_tokens * this */
#define FAST_FOLD_DIGITS		false
#define FAST_AUTO_UPDATES		100000	/* row updates the automatic epoch count aims at */
#define FAST_SEED_WORD			0x63616977ULL	/* "caiw" */
#define FAST_SALT_NGRAM			0xc2b2ae3d27d4eb4fULL

typedef struct FastParams
{
	int			dim;
	int			word_ngrams;
	int			minn;
	int			maxn;
	int			max_tokens;
	uint32_t	buckets;
	int			eos;			/* 1: an end-of-text pseudo-token ends every text */
} FastParams;

static inline uint64_t
fast_word_hash(const char *s, size_t len)
{
	return cai_hash_bytes(s, len, FAST_SEED_WORD);
}

/* Bucket of the word n-gram hashes[0..n) (n >= 2). */
static inline uint32_t
fast_ngram_bucket(const uint64_t *hashes, int n, uint32_t buckets)
{
	uint64_t	g = hashes[0];

	for (int j = 1; j < n; j++)
		g = g * 116049371ULL + hashes[j];
	return (uint32_t) (cai_textclf_mix(g ^ (FAST_SALT_NGRAM * (uint64_t) n)) % buckets);
}

/*
 * The word hashes of the last FAST_MAX_NGRAMS tokens, newest last: h pushed.
 * Written out: gcc calls memmove for the shift, a call per token.
 */
static inline void
fast_hist_push(uint64_t *hist, uint64_t h)
{
	_Static_assert(FAST_MAX_NGRAMS == 5, "fast_hist_push shifts FAST_MAX_NGRAMS entries");
	hist[0] = hist[1];
	hist[1] = hist[2];
	hist[2] = hist[3];
	hist[3] = hist[4];
	hist[4] = h;
}

/* The end-of-text pseudo-token (the tokenizer never produces it: '<' is punctuation). */
#define FAST_EOS "</s>"
#define FAST_EOS_LEN 4

/* Character n-grams of a normalized token (none for the end-of-text pseudo-token). */
static inline int
fast_type_char_ngrams(const FastParams *fp, const char *s, size_t len, uint64_t *out)
{
	if (len == FAST_EOS_LEN && memcmp(s, FAST_EOS, FAST_EOS_LEN) == 0)
		return 0;
	return cai_textclf_char_ngrams(fp->minn, fp->maxn, s, len, out);
}

/*
 * Normalized text of token i of toks (n_toks tokens), or of the end-of-text
 * pseudo-token when i == n_toks.
 */
static inline size_t
fast_token_norm(const char *text, const cai_token *toks, size_t i, size_t n_toks, char *norm)
{
	if (i == n_toks)
	{
		memcpy(norm, FAST_EOS, FAST_EOS_LEN + 1);
		return FAST_EOS_LEN;
	}
	return cai_token_normalize(text + toks[i].start, (size_t) (toks[i].end - toks[i].start),
							   FAST_FOLD_DIGITS, norm, FAST_NORM_MAX);
}

/* How the fast architecture turns the tokens of a text into words. */
static inline cai_textclf_token_rule
fast_token_rule(const FastParams *fp)
{
	return (cai_textclf_token_rule) {
		.max_tokens = fp->max_tokens, .bytes_per_token = FAST_BYTES_PER_TOKEN, .eos = fp->eos,
		.norm = fast_token_norm, .hash = fast_word_hash,
	};
}

/* Fingerprint of the raw features under fp (see cai_textclf_fingerprint). */
static inline cai_status
cai_textclf_fast_fingerprint(const FastParams *fp, uint64_t *out, cai_error *err)
{
	cai_textclf_token_rule rule = fast_token_rule(fp);

	return cai_textclf_fingerprint(&rule, fp->minn, fp->maxn, FAST_FEATURE_VERSION, out, err);
}

/* ---------------------------------------------------------------------- */
/* The loaded model                                                       */
/* ---------------------------------------------------------------------- */

/*
 * A loaded fast model.  The tables and weights are views of the model
 * file's tensors (which may live in a shared read-only mapping): nothing is
 * written after load.  Private memory (allocated by cai_textclf_fast_load,
 * counted in cai_textclf_memory) is the struct itself and, only for models
 * written before the serialized tables existed, the slot arrays and word
 * vectors built at load (own_*).
 */
struct cai_textclf_fast
{
	FastParams	p;
	int32_t		n_vocab;		/* V */
	int32_t		n_bucket_rows;	/* K */
	cai_strindex vocab;			/* words: fast.vocab.{bytes,offsets,slots} */
	cai_intindex bucket;		/* bucket -> row: fast.buckets{,.slots} */
	const int32_t *bucket_rank; /* bucket -> row: fast.buckets.rank, NULL for older models */
	const float *emb;			/* (V + K, D) word rows, then bucket rows */
	const float *wordvec;		/* (V, D) word row + its character n-gram rows */
	const int32_t *word_cnt;	/* (V) rows summed into each word vector */
	const float *out_w;			/* (L, D) */
	int32_t    *own_vocab_slot; /* private tables of old models, else NULL */
	int32_t    *own_bucket_slot;
	float	   *own_wordvec;
	int32_t    *own_word_cnt;
};

/* Id of word s[0..len) of hash fast_word_hash(s, len) (the vocabulary's seed is FAST_SEED_WORD), -1 if none. */
static inline int32_t
fast_vocab_find(const cai_textclf_fast *fm, const char *s, size_t len, uint64_t hash)
{
	return cai_strindex_find_hashed(&fm->vocab, s, len, hash);
}

/* Row of bucket b (below p.buckets) among the bucket rows, -1 if none. */
static inline int32_t
fast_bucket_find(const cai_textclf_fast *fm, uint32_t b)
{
	if (fm->bucket_rank != NULL)
		return cai_bucket_rank_find(fm->bucket_rank, fm->n_bucket_rows, b);
	return cai_intindex_find(&fm->bucket, (int32_t) b);
}

/*
 * Start reading what fast_bucket_find(fm, b) will read first.  Always
 * inlined, as every helper made only of prefetches: GCC 12 finds a call to
 * one free of side effects and may delete it (it did to the accurate
 * model's).
 */
static inline __attribute__((always_inline)) void
fast_bucket_prefetch(const cai_textclf_fast *fm, uint32_t b)
{
	if (fm->bucket_rank != NULL)
	{
		const int32_t *blk = fm->bucket_rank + (size_t) (b / TEXTCLF_RANK_BLOCK) * 3;

		__builtin_prefetch(blk);
		__builtin_prefetch(blk + 2);
	}
	else if (fm->bucket.slot != NULL)
		__builtin_prefetch(fm->bucket.slot + (cai_index_mix(b) & fm->bucket.mask));
}

/*
 * Each vocabulary word's vector, its row plus its character n-gram rows
 * (textclf_fast.c); training serializes them, and loading checks or builds
 * them.
 */
void		cai_textclf_fast_compute_word_vectors(const cai_textclf_fast *fm, float *wordvec,
												  int32_t *word_cnt);

/* ---------------------------------------------------------------------- */
/* Vector kernels (shared by training and inference)                      */
/* ---------------------------------------------------------------------- */

/*
 * Small vector kernels.  Eight lanes at a time through GCC/clang vector
 * extensions (plain -O2 does not vectorize loops of unknown length); memcpy
 * keeps the loads and stores free of alignment assumptions.  They are
 * inlined into their callers, which are CAI_KERNEL functions (compiled for
 * AVX2 and AVX-512 too, see vectorize.h): one 256-bit operation a step
 * there, two SSE ones in the baseline, the same bits in both.
 */
typedef float v8f __attribute__((vector_size(32)));

/* y += x */
static inline void
vec_add(float *restrict y, const float *restrict x, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		v8f			a,
					b;

		memcpy(&a, y + i, sizeof(a));
		memcpy(&b, x + i, sizeof(b));
		a += b;
		memcpy(y + i, &a, sizeof(a));
	}
	for (; i < n; i++)
		y[i] += x[i];
}

/*
 * Whether the CPU has PREFETCHW (x86-64: AMD since the K6-2, Intel since
 * Broadwell), filled when the library is loaded (textclf_fast.c: a
 * constructor runs before any thread could train or predict).
 */
extern bool cai_fast_have_prefetchw;

/*
 * Ask for the cache lines of an embedding row (dim floats) ahead of its use:
 * the rows of a text's features are scattered over an embedding too large
 * for the caches, and reading them one after the other waits for each.
 * Every line the row touches once, whatever its alignment.
 *
 * write: training reads a row in the forward sum and updates it in the
 * backward step.  A line asked for reading comes shared, and the update must
 * then take it from every other core that has it, a second round trip
 * between the cores when another thread trained on the same row (with two
 * threads, on rows outside the hot copies).  Measured in one process
 * alternating the two every round (textclf_cli -T, 1,030,438 SST-2 rows, 2
 * threads): 0.4-1% faster while the two vCPUs exchanged a cache line in
 * 80-100 ns (bench/line_rtt), 4-12% in minutes when two threads trained at
 * 1.4-1.8x one thread's rate; one thread the same.  The portable build's
 * __builtin_prefetch(p, 1) is a read prefetch (PREFETCHW needs -mprfchw),
 * hence the instruction itself where cpuid has it.
 *
 * Always inlined with a constant write (see fast_bucket_prefetch).
 */
static inline __attribute__((always_inline)) void
fast_prefetch_row(const float *row, int dim, bool write)
{
	uintptr_t	line = (uintptr_t) row & ~(uintptr_t) 63;
	uintptr_t	last = ((uintptr_t) row + sizeof(float) * (size_t) dim - 1) & ~(uintptr_t) 63;

	for (; line <= last; line += 64)
	{
		const char *p = (const char *) line;

		if (!write)
			__builtin_prefetch(p);
#if defined(__x86_64__) || defined(__i386__)
		else if (cai_fast_have_prefetchw)
			__asm__ volatile("prefetchw %0" : : "m"(*(const char (*)[1]) p));
#endif
		else
			__builtin_prefetch(p, 1);
	}
}

/* y += alpha x */
static inline void
vec_axpy(float *restrict y, float alpha, const float *restrict x, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		v8f			a,
					b;

		memcpy(&a, y + i, sizeof(a));
		memcpy(&b, x + i, sizeof(b));
		a += alpha * b;
		memcpy(y + i, &a, sizeof(a));
	}
	for (; i < n; i++)
		y[i] += alpha * x[i];
}

/* x . y, summed in eight lanes then across them */
static inline float
vec_dot(const float *x, const float *y, int n)
{
	v8f			acc = {0};
	float		s = 0.0f;
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		v8f			a,
					b;

		memcpy(&a, x + i, sizeof(a));
		memcpy(&b, y + i, sizeof(b));
		acc += a * b;
	}
	for (int j = 0; j < 8; j++)
		s += acc[j];
	for (; i < n; i++)
		s += x[i] * y[i];
	return s;
}

/* logits -> probabilities in place; returns log-sum-exp */
static inline double
softmax_inplace(float *z, int n)
{
	float		mx = z[0];
	double		sum = 0.0;

	for (int i = 1; i < n; i++)
		if (z[i] > mx)
			mx = z[i];
	for (int i = 0; i < n; i++)
	{
		z[i] = expf(z[i] - mx);
		sum += z[i];
	}
	for (int i = 0; i < n; i++)
		z[i] = (float) (z[i] / sum);
	return (double) mx + log(sum);
}

/* z (L) = W h (no bias, as fastText: the end-of-text token plays its part) */
static inline void
fast_output_forward(const float *w, const float *h, int L, int D, float *z)
{
	for (int c = 0; c < L; c++)
		z[c] = vec_dot(w + (size_t) c * D, h, D);
}

#endif							/* CAI_TEXTCLF_FAST_INTERNAL_H */
