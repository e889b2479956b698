/*
 * textclf_fast_train.c: training of the "fast" text classification
 * architecture (the model and its features: textclf_fast.c and
 * textclf_fast_internal.h): the training rows as feature rows, per-row SGD,
 * scoring through the inference arithmetic, the metadata and serialized
 * model, cai_textclf_fast_train and cai_textclf_fast_train_memory.
 *
 * With threads > 1, lock-free SGD on the training pool (pool.h), as
 * fastText's threads (Hogwild): each round of an epoch takes the next
 * threads * FAST_SHARD_ROWS rows of the shuffled order, shard s trains its
 * contiguous part of them by per-row SGD on the shared embeddings (the
 * learning rate of each row from its position in the epoch, as with one
 * thread), with its own scratch and dropout rng, and the caller polls for
 * progress and cancellation between rounds.  The output weights (L x D,
 * written by every row) are the exception: each shard updates its own copy
 * during a round, and the caller adds every shard's change to the shared
 * weights after it, in shard order (shared, they moved between the cores'
 * caches at every row: 2 threads trained 1.35x as fast as one on 1,000,000
 * SST-2 rows, now 1.65x), and so are the most used embedding rows in
 * trainings of many rounds (hot rows, FAST_HOT_MAX).  Concurrent updates of
 * the other embedding rows interleave as the threads are scheduled, so a
 * model trained with more than one thread is not reproducible bit for bit
 * unless no such row is shared (its quality is: see
 * bench/results-threads.md); one thread is the sequential loop.
 */
#include "textclf_fast_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "cai/metrics.h"
#include "modelutil.h"
#include "pool.h"
#include "trainer.h"

/*
 * Rows each shard trains in a round (threads > 1): the caller reports
 * progress and checks cancellation between rounds, and the hot rows are
 * copied and merged once a round (see FAST_HOT_MAX; 4,096 before session 22).
 */
#define FAST_SHARD_ROWS 8192

/*
 * Hot rows (threads > 1).  The shards share the embedding rows, and the rows
 * most training rows have (the end-of-text row, frequent words, their
 * character n-grams and word pairs) are written by every shard many times a
 * round: each write takes the row's cache lines from the other core, which
 * costs as much as the host's placement of the two vCPUs makes it (a line's
 * round trip measured 55 ns and 330 ns on the same machine minutes apart,
 * and two threads trained at 1.9-2.0x one thread's rate in the first case,
 * 1.0-1.2x in the second).  So each shard trains on its own copy of the rows
 * most rows have (at most FAST_HOT_MAX, counted in a sample of
 * FAST_HOT_SAMPLE rows, each in two of them at least), copied at the
 * round's start, and after it every shard's change is added to the shared
 * row, in shard order, as for the output weights (the threads each merge a
 * part of the rows: fast_hot_combine).  On SST-2 sentences
 * the 4,096 most frequent rows are about two thirds of a row's features;
 * on 1,000,000 SST-2 rows the rows a shard touches after the other shard
 * wrote them last are 22 a training row with 4,096 hot rows, 10 with 16,384
 * and 3 with 65,536.  Measured in one process whose epochs alternate
 * between 4,096 hot rows with rounds of 4,096 (the setting until session
 * 22) and another (textclf_cli -T, 1,030,438 rows, 8 epochs, two threads;
 * ratios of the mean epoch rates): 16,384 rows with rounds of 8,192 ran
 * 0.95-1.02x in fast minutes (the old setting at 716-873k rows/s) and
 * 1.07-1.15x in slow ones (575-684k); 16,384 with rounds of 4,096
 * 0.95-0.99x and 32,768 with 8,192 0.94-0.99x in fast minutes, 65,536 with
 * 16,384 0.91-1.11x: the copies and merges of larger sets cost more than
 * they save unless rounds are longer.  Test accuracy the same (SST-2 x 17, seeds 1-3, default
 * options: 83.49 / 82.68 / 82.91 before, 83.14 / 82.80 / 83.03 after),
 * though the validation score moves more between epochs while the learning
 * rate is high.  With every row that more than one training row has among them (small
 * vocabularies), no row is written by two threads and the training is the
 * same for the same seed and threads.
 */
#define FAST_HOT_MAX 16384
#define FAST_HOT_SAMPLE 65536

/*
 * The hot rows' slots and every thread's copies take at most this many
 * bytes, so that many threads of long rows get fewer hot rows rather than
 * gigabytes of copies (2 threads of 48 dimensions: 9 MB for 16,384 rows;
 * 64 threads of 300 dimensions would have needed 1.3 GB).
 */
#define FAST_HOT_BYTES ((size_t) 64 << 20)

/* the options' limits (threads 64, dimensions TEXTCLF_MAX_DIM) leave hundreds of hot rows */
_Static_assert(FAST_HOT_BYTES / (65 * TEXTCLF_MAX_DIM * sizeof(float)) >= 64,
			   "FAST_HOT_BYTES leaves too few hot rows for 64 threads of the longest rows");

/* Hot rows at most, for a training on threads threads of dim floats a row. */
static size_t
fast_hot_limit(int threads, int dim)
{
	size_t		fit = FAST_HOT_BYTES / (((size_t) threads + 1) * (size_t) dim * sizeof(float));

	return fit < FAST_HOT_MAX ? fit : FAST_HOT_MAX;
}

/*
 * A shard's change of a hot row reaches the others at the round's end, so
 * hot rows are kept only when an epoch has at least FAST_HOT_MIN_ROUNDS
 * rounds (2 threads: 262,144 rows): a small training's round is most of its
 * epoch, and shards that each step a shared row for a whole epoch from the
 * same start overshoot together (a 3-thread unit training on 2,000 rows lost
 * 1-2 points of accuracy).  Small trainings take a second or two anyway.
 */
#define FAST_HOT_MIN_ROUNDS 16

/* Cache line size: the shards' buffers start on lines of their own (FastShard). */
#define FAST_LINE ((size_t) 64)

/*
 * Weight decay (option weight_decay, L2): every row's step also multiplies
 * all parameters by (1 - lr * weight_decay), which keeps the weights from
 * growing without bound when rows are seen many times (long trainings,
 * repeated rows: SST-2's sentences repeated to 2,000,000 rows and trained
 * 5 epochs scored 1.6-2.6 points lower on SST-2's test set than the
 * original rows without it, 0.2-0.8 higher with it).  Scaling the whole
 * embedding table at every row would cost far more than the row's step, so
 * the parameters are kept as a scale times stored values (Bottou's sparse
 * SGD): the embeddings are scale * the stored rows, the output weights
 * wscale * theirs; a step divides its updates by the scales and the decay
 * multiplies the scales alone.  With more threads each shard follows the
 * scales from its first row's position in the epoch with its own copy of
 * the output weights, and the caller combines the copies at the end of the
 * round with the decay each change still had to undergo, so both paths
 * decay every row's step exactly.  The stored values are folded back
 * (values times the scale, the scale 1) when the embedding scale falls
 * below FAST_SCALE_FOLD (a round ends early if its decay alone would take
 * it there) and at the end of every epoch, so that scoring, the best copy
 * and the model see plain parameters.  Weight decay 0 keeps the scales at
 * exactly 1: the same bytes as before the option existed.
 */
#define FAST_SCALE_FOLD 1e-6

/* The scale below which the stored values are folded: FAST_SCALE_FOLD (a test seam). */
double		cai_textclf_fast_scale_fold = FAST_SCALE_FOLD;

/* The rows a shard trains in a round: FAST_SHARD_ROWS (a test seam: fewer make a small training's rounds). */
size_t		cai_textclf_fast_shard_rows = FAST_SHARD_ROWS;

/*
 * One shard of the lock-free training (threads > 1): its scratch and its
 * rows.  The scratch is one block (block) whose buffers each start on a
 * cache line of their own, and the loop keeps what it writes at every row
 * (loss, scales, rng) in locals: a line one thread writes at every row and
 * another reads moves between the cores each time, and how much that costs
 * depends on where the host puts the two vCPUs (a line's round trip between
 * them measured 55 ns and 330 ns on the same machine minutes apart).
 */
typedef struct FastShard
{
	void	   *block;			/* the scratch below, in one allocation */
	float	   *hidden;			/* (D) */
	float	   *grad;			/* (D) */
	float	   *probs;			/* (L) */
	uint32_t   *feat;			/* (max features of a row) the row's features */
	float	   *W;				/* (L, D) the shard's output weights during a round */
	float	   *W0;				/* (L, D) the shared ones at the round's start */
	uint32_t   *kept;			/* (max features of a row) */
	int32_t    *types;			/* (fast_row_scratch) the row's type ids and word n-gram buckets */
	cai_rng		rng;			/* dropout, seeded from the training rng every epoch */
	size_t		from;			/* this round: positions [from, to) of the epoch's order */
	size_t		to;
	double		loss;			/* this round's summed loss */
	/* weight decay (see FAST_SCALE_FOLD): set by fast_round_decay */
	double		escale;			/* the embeddings' scale at the shard's row */
	double		wscale;			/* the scale of its output weights W (their decay since the round's start) */
	double		decay_to;		/* the decay from the round's start to the end of the shard's rows */
} FastShard;

/* ---------------------------------------------------------------------- */
/* Training: data preparation                                             */
/* ---------------------------------------------------------------------- */

/* Everything the trainer allocates. */
typedef struct FastTrain
{
	FastParams	p;
	cai_textclf_prep prep;		/* rows, tokens, vocabulary, bucket rows, predictions */
	cai_textclf_vec_match vm;	/* pretrained vectors of the vocabulary words */
	/* character n-gram buckets of every type */
	size_t	   *type_cg_off;	/* (n_types + 1) */
	uint32_t   *type_cg;		/* (n_type_cg) */
	/* the features every occurrence of a type gives: its vocabulary row, its character n-gram rows */
	size_t	   *type_feat_off;	/* (n_types + 1) */
	uint32_t   *type_feat;
	size_t		max_feat;		/* most features of a row (fast_row_features) */
	size_t		ahead;			/* fast_prefetch_ahead(p.dim) */
	/* the gradient probe's rows' features, fast_row_features' (the probe only) */
	size_t	   *feat_off;		/* (n_rows + 1) */
	uint32_t   *feat;			/* (n_feat) */
	float	   *wordvec;		/* (V, D) word row plus its character n-gram rows */
	int32_t    *wordcnt;		/* (V) rows summed into each word vector */
	/*
	 * threads > 1: the hot rows (fast_hot_select).  After W in params, their
	 * values during an epoch (slot h: row hot0 + h, the shared rows stale
	 * until fast_hot_store) and each shard's copies (hot0 + (1 + s) * n_hot + h)
	 */
	size_t		n_hot;
	uint32_t   *hot_row;		/* (n_hot) the shared row of each slot, ascending */
	uint64_t   *hot_bits;		/* (R / 64 + 1) the hot rows */
	uint32_t   *hot_rank;		/* (R / 64 + 1) the hot rows before each word of hot_bits */
	uint32_t	hot0;			/* R + L: the first slot */
	/* parameters: E (R, D) | W (L, D) [| hot slots | each shard's copies]; best copy: E | W */
	size_t		n_params;
	float	   *params;			/* read at random: cai_calloc_large (huge pages) */
	size_t		params_mapped;	/* for cai_free_large */
	float	   *best;
	/* scratch */
	float	   *hidden;			/* (D) */
	float	   *grad;			/* (D) */
	float	   *probs;			/* (L) */
	uint32_t   *rowfeat;		/* (max_feat) the row's features */
	uint32_t   *kept;			/* (max_feat) */
	int32_t    *rowtypes;		/* (fast_row_scratch) a row's type ids and word n-gram buckets */
	int32_t    *order;			/* (n_tr) */
	/* the epochs (trainer hooks) */
	cai_rng		rng;			/* initialization, shuffles, dropout */
	double		lr0;
	double		dropout;
	double		weight_decay;
	double		scale;			/* the embeddings are scale * the stored rows (weight decay) */
	double		wscale;			/* the output weights are wscale * the stored ones (one thread) */
	size_t		step;			/* rows trained so far */
	size_t		steps_total;	/* epochs * training rows */
	/* lock-free training (option threads > 1; pool.n <= 1 otherwise) */
	cai_pool	pool;
	FastShard  *sh;				/* (pool_shards) when pool.n > 1 */
	int			pool_shards;	/* entries of sh */
	size_t		epoch_step;		/* step at the start of the current epoch */

} FastTrain;

/* A trainer with nothing allocated, its parameters plain (scales 1: see FAST_SCALE_FOLD). */
static void
fast_train_init(FastTrain *t)
{
	memset(t, 0, sizeof(*t));
	t->scale = 1.0;
	t->wscale = 1.0;
}

static void
fast_train_free(FastTrain *t)
{
	cai_pool_stop(&t->pool);
	for (int s = 0; t->sh != NULL && s < t->pool_shards; s++)
	{
		cai_free(t->sh[s].block);
	}
	cai_free(t->sh);
	cai_textclf_prep_free(&t->prep);
	cai_textclf_vec_match_free(&t->vm);
	cai_free(t->type_cg_off);
	cai_free(t->type_cg);
	cai_free(t->type_feat_off);
	cai_free(t->type_feat);
	cai_free(t->feat_off);
	cai_free(t->feat);
	cai_free(t->rowtypes);
	cai_free(t->hot_row);
	cai_free(t->hot_bits);
	cai_free(t->hot_rank);
	cai_free(t->wordvec);
	cai_free(t->wordcnt);
	cai_free_large(t->params, t->params_mapped);
	cai_free(t->best);
	cai_free(t->hidden);
	cai_free(t->grad);
	cai_free(t->probs);
	cai_free(t->kept);
	cai_free(t->rowfeat);
	cai_free(t->order);
}

_Static_assert(FAST_NORM_MAX == TEXTCLF_NORM_MAX, "training normalizes, and loading checks words, with TEXTCLF_NORM_MAX bytes");

/* The character n-gram buckets of every type. */
static cai_status
fast_prepare_char_ngrams(FastTrain *t, cai_error *err)
{
	cai_textclf_types  *tt = &t->prep.types;
	size_t		total = 0;
	uint64_t	cg[FAST_CHAR_NGRAMS_MAX];

	t->type_cg_off = cai_calloc(tt->n + 1, sizeof(size_t));
	if (t->type_cg_off == NULL)
		return NOMEM(err);

	for (size_t i = 0; i < tt->n; i++)
	{
		int			nc = fast_type_char_ngrams(&t->p, tt->arena + tt->off[i], tt->len[i], cg);

		total += (size_t) nc;
		t->type_cg_off[i + 1] = total;
	}
	if (total > 0)
	{
		t->type_cg = cai_malloc(sizeof(uint32_t) * total);
		if (t->type_cg == NULL)
			return NOMEM(err);
		for (size_t i = 0; i < tt->n; i++)
		{
			int			nc = fast_type_char_ngrams(&t->p, tt->arena + tt->off[i], tt->len[i], cg);
			uint32_t   *dst = t->type_cg + t->type_cg_off[i];

			for (int j = 0; j < nc; j++)
				dst[j] = cai_textclf_char_bucket(cg[j], t->p.buckets);
		}
	}
	return CAI_OK;
}

/*
 * Features of row r as inference computes them (see
 * cai_textclf_fast_predict): per token its word vector (vocabulary word: the
 * word's row plus its character n-gram rows, summed at load time) or, for
 * other tokens, the character n-gram rows; then the word n-grams ending at
 * the token.  Buckets without a row are skipped.  Writes to out when not
 * NULL; returns the count.
 */
static size_t
fast_eval_features(const FastTrain *t, size_t r, uint32_t *out, int32_t *tbuf)
{
	const int	wn = t->p.word_ngrams;
	const uint32_t V = (uint32_t) t->prep.V;
	size_t		nt;
	const int32_t *ty = cai_textclf_row_types(&t->prep, r, tbuf, &nt);
	uint64_t	hist[FAST_MAX_NGRAMS] = {0};
	size_t		n = 0;

	for (size_t i = 0; i < nt; i++)
	{
		int32_t		v = t->prep.type_vocab[ty[i]];

		if (v >= 0)
		{
			if (out != NULL)
				out[n] = (uint32_t) v;
			n++;
		}
		else
		{
			for (size_t j = t->type_cg_off[ty[i]]; j < t->type_cg_off[ty[i] + 1]; j++)
			{
				int32_t		row = t->prep.bmap[t->type_cg[j]];

				if (row >= 0)
				{
					if (out != NULL)
						out[n] = V + (uint32_t) row;
					n++;
				}
			}
		}
		if (wn > 1)
		{
			int			have = i + 1 < (size_t) wn ? (int) i + 1 : wn;

			fast_hist_push(hist, t->prep.types.hash[ty[i]]);
			for (int g = 2; g <= have; g++)
			{
				int32_t		row = t->prep.bmap[fast_ngram_bucket(hist + FAST_MAX_NGRAMS - g, g, t->p.buckets)];

				if (row >= 0)
				{
					if (out != NULL)
						out[n] = V + (uint32_t) row;
					n++;
				}
			}
		}
	}
	return n;
}

/*
 * Scratch fast_row_features needs (int32 entries): the row's type ids
 * (max_tokens + 2), then its word n-gram buckets (FAST_MAX_NGRAMS - 1 a
 * token at most).
 */
static inline size_t
fast_row_scratch(const FastParams *p)
{
	return ((size_t) p->max_tokens + 2) * FAST_MAX_NGRAMS;
}

/* The hot slots (copy 0) or shard s - 1's copies of them (copy s >= 1). */
static inline float *
fast_hot_slots(const FastTrain *t, int copy)
{
	return t->params + ((size_t) t->hot0 + (size_t) copy * t->n_hot) * (size_t) t->p.dim;
}

static inline bool
fast_is_hot(const FastTrain *t, uint32_t f)
{
	return (t->hot_bits[f / 64] >> (f % 64)) & 1;
}

/* Slot of hot row f: the hot rows before it. */
static inline uint32_t
fast_hot_slot(const FastTrain *t, uint32_t f)
{
	uint64_t	below = t->hot_bits[f / 64] & ((UINT64_C(1) << (f % 64)) - 1);

	return t->hot_rank[f / 64] + cai_popcount64(below);
}

/*
 * The features of row r, as training steps on them (written to out, which
 * holds t->max_feat): per token its vocabulary row, its character n-gram
 * rows, then the rows of the word n-grams ending at it, each bucket row as
 * V + row.  Buckets no training row has are left out (validation rows;
 * inference ignores them too).  Made each time the row is trained on from
 * its token type ids (tbuf: fast_row_scratch entries), every type's feature
 * list and the word n-grams hashed again (as fastText does), so that the
 * training data is the rows' token ids alone (4 bytes a token) instead of
 * 4 bytes a feature (about 14 features a token with the default character
 * n-grams), or 8 bytes a token with the n-gram rows stored.  The word
 * n-grams are hashed first and their entries of the bucket map (4 bytes a
 * bucket: larger than the caches) asked for, so that those reads overlap.
 * With hot rows (threads > 1), a hot row is given as its slot, hot0 + slot,
 * plus hot_shift: (s + 1) * n_hot names shard s's copies; 0 the slots.
 */
static size_t
fast_row_features(const FastTrain *t, size_t r, uint32_t *out, int32_t *tbuf, uint32_t hot_shift)
{
	const int	wn = t->p.word_ngrams;
	const uint32_t V = (uint32_t) t->prep.V;
	const uint32_t hot0 = t->hot0;
	size_t		nt;
	const int32_t *ty = cai_textclf_row_types(&t->prep, r, tbuf, &nt);
	uint32_t   *bk = (uint32_t *) tbuf + (size_t) t->p.max_tokens + 2;
	uint64_t	hist[FAST_MAX_NGRAMS] = {0};
	size_t		n = 0;
	size_t		nb = 0;

	if (wn > 1)
		for (size_t i = 0; i < nt; i++)
		{
			int			have = i + 1 < (size_t) wn ? (int) i + 1 : wn;

			fast_hist_push(hist, t->prep.types.hash[ty[i]]);
			for (int g = 2; g <= have; g++)
			{
				bk[nb] = fast_ngram_bucket(hist + FAST_MAX_NGRAMS - g, g, t->p.buckets);
				__builtin_prefetch(t->prep.bmap + bk[nb]);
				nb++;
			}
		}
	nb = 0;
	for (size_t i = 0; i < nt; i++)
	{
		size_t		a = t->type_feat_off[ty[i]];
		size_t		m = t->type_feat_off[ty[i] + 1] - a;
		int			have = i + 1 < (size_t) wn ? (int) i + 1 : wn;

		const uint32_t *tf = t->type_feat + a;

		/*
		 * One loop for the copy and the shift (a plain copy when hot_shift
		 * is 0): a type's list is a dozen entries, which a call of memcpy
		 * per token cost more than copying them (about a tenth of an
		 * epoch's time).
		 */
		for (size_t q = 0; q < m; q++)
			out[n + q] = tf[q] + (tf[q] >= hot0 ? hot_shift : 0);
		n += m;
		for (int g = 2; g <= have; g++)
		{
			int32_t		row = t->prep.bmap[bk[nb++]];

			if (row >= 0)
			{
				uint32_t	f = V + (uint32_t) row;

				if (t->n_hot > 0 && fast_is_hot(t, f))
					f = t->hot0 + fast_hot_slot(t, f) + hot_shift;
				out[n++] = f;
			}
		}
	}
	return n;
}

/* fast_prepare_features' pass over the rows, split over the pool's shards. */
typedef struct FastMark
{
	FastTrain  *t;
	bool	   *train_type;		/* (types.n) a training row has the type */
	int32_t   **tbuf;			/* (shards) each shard's fast_row_scratch */
	size_t	   *max_feat;		/* (shards) the most features of a row of the shard's */
} FastMark;

/*
 * Job: shard s of the rows (all of them, training and validation): the
 * types and word n-gram buckets of training rows marked (train_type true,
 * bmap 0) and the most features of a row.  Shards mark the same entries
 * with the same values (relaxed atomic stores: plain stores on x86 and
 * arm64; a load to test first would wait for its miss where a store does
 * not), so the result does not depend on the shards.
 */
static cai_status
fast_mark_rows(void *ctx, int s, cai_error *err)
{
	FastMark   *mk = ctx;
	const FastTrain *t = mk->t;
	const size_t n_all = t->prep.rows.n_tr + t->prep.rows.n_va;
	const size_t shards = t->pool.n > 1 ? (size_t) t->pool.n : 1;
	const int	wn = t->p.word_ngrams;
	const uint32_t buckets = t->p.buckets;
	const int32_t *type_vocab = t->prep.type_vocab;
	const size_t *cg_off = t->type_cg_off;
	const uint64_t *type_hash = t->prep.types.hash;
	bool	   *train_type = mk->train_type;
	int32_t    *bmap = t->prep.bmap;
	size_t		max_feat = 0;

	(void) err;
	for (size_t r = n_all * (size_t) s / shards; r < n_all * ((size_t) s + 1) / shards; r++)
	{
		size_t		nt;
		const int32_t *ty = cai_textclf_row_types(&t->prep, r, mk->tbuf[s], &nt);
		uint64_t	hist[FAST_MAX_NGRAMS] = {0};
		size_t		n = 0;
		bool		train_row = r < t->prep.rows.n_tr;

		for (size_t i = 0; i < nt; i++)
		{
			n += (type_vocab[ty[i]] >= 0) + (cg_off[ty[i] + 1] - cg_off[ty[i]]);
			n += (size_t) (i + 1 < (size_t) wn ? (int) i : wn - 1);
			if (train_row)
				__atomic_store_n(&train_type[ty[i]], true, __ATOMIC_RELAXED);
			if (wn > 1)
			{
				int			have = i + 1 < (size_t) wn ? (int) i + 1 : wn;

				fast_hist_push(hist, type_hash[ty[i]]);
				for (int g = 2; g <= have && train_row; g++)
				{
					uint32_t	b = fast_ngram_bucket(hist + FAST_MAX_NGRAMS - g, g, buckets);

					__atomic_store_n(&bmap[b], 0, __ATOMIC_RELAXED);
				}
			}
		}
		if (n > max_feat)
			max_feat = n;
	}
	mk->max_feat[s] = max_feat;
	return CAI_OK;
}

/*
 * The bucket rows: the buckets the training rows use (their character
 * n-grams and word n-grams), in increasing order; the row of every type's
 * character n-grams; the most features a row can have.  The pass over the
 * rows runs on the pool (started before, when threads > 1).
 */
static cai_status
fast_prepare_features(FastTrain *t, cai_error *err)
{
	const int	shards = t->pool.n > 1 ? t->pool.n : 1;
	const uint32_t V = (uint32_t) t->prep.V;
	size_t		n_cg = t->type_cg_off[t->prep.types.n];
	int32_t		k = 0;
	bool	   *train_type;
	FastMark	mk = {.t = t};
	cai_status	st;

	t->prep.bmap = cai_calloc_large(t->p.buckets, sizeof(int32_t), &t->prep.bmap_mapped);
	train_type = cai_calloc(t->prep.types.n + 1, sizeof(bool));
	mk.tbuf = cai_calloc((size_t) shards, sizeof(int32_t *));
	mk.max_feat = cai_calloc((size_t) shards, sizeof(size_t));
	for (int s = 0; mk.tbuf != NULL && s < shards; s++)
		mk.tbuf[s] = cai_malloc(sizeof(int32_t) * fast_row_scratch(&t->p));
	mk.train_type = train_type;
	st = t->prep.bmap == NULL || train_type == NULL || mk.tbuf == NULL || mk.max_feat == NULL ? NOMEM(err) : CAI_OK;
	for (int s = 0; st == CAI_OK && s < shards; s++)
		if (mk.tbuf[s] == NULL)
			st = NOMEM(err);
	if (st == CAI_OK)
	{
		memset(t->prep.bmap, 0xff, sizeof(int32_t) * (size_t) t->p.buckets);

		/*
		 * The buckets training rows use (marked 0): their word n-grams, row
		 * by row, and the character n-grams of the types they have, type by
		 * type (once a type, not once an occurrence); the most features of
		 * a row.
		 */
		st = cai_pool_run(&t->pool, fast_mark_rows, &mk, err);
	}
	t->max_feat = 0;
	for (int s = 0; st == CAI_OK && s < shards; s++)
		if (mk.max_feat[s] > t->max_feat)
			t->max_feat = mk.max_feat[s];
	for (int s = 0; mk.tbuf != NULL && s < shards; s++)
		cai_free(mk.tbuf[s]);
	cai_free(mk.tbuf);
	cai_free(mk.max_feat);
	if (st != CAI_OK)
	{
		cai_free(train_type);
		return st;
	}
	for (size_t ty = 0; ty < t->prep.types.n; ty++)
		for (size_t j = t->type_cg_off[ty]; train_type[ty] && j < t->type_cg_off[ty + 1]; j++)
			t->prep.bmap[t->type_cg[j]] = 0;
	cai_free(train_type);
	if (t->max_feat >= UINT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many features (%zu) in a training row", t->max_feat);
	for (uint32_t b = 0; b < t->p.buckets; b++)
		if (t->prep.bmap[b] == 0)
			t->prep.bmap[b] = k++;
	t->prep.K = k;
	if ((int64_t) t->prep.V + k >= INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many embedding rows");

	/* every type's features */
	t->type_feat_off = cai_calloc(t->prep.types.n + 1, sizeof(size_t));
	t->type_feat = cai_malloc(sizeof(uint32_t) * (t->prep.types.n + n_cg + 1));
	if (t->type_feat_off == NULL || t->type_feat == NULL)
		return NOMEM(err);
	for (size_t ty = 0, n = 0; ty < t->prep.types.n; ty++)
	{
		if (t->prep.type_vocab[ty] >= 0)
			t->type_feat[n++] = (uint32_t) t->prep.type_vocab[ty];
		for (size_t j = t->type_cg_off[ty]; j < t->type_cg_off[ty + 1]; j++)
			if (t->prep.bmap[t->type_cg[j]] >= 0)
				t->type_feat[n++] = V + (uint32_t) t->prep.bmap[t->type_cg[j]];
		t->type_feat_off[ty + 1] = n;
	}

	return CAI_OK;
}

/*
 * The training data as feature rows: rows, tokens and vocabulary
 * (cai_textclf_prepare; with vectors, up to vector_words of their words the
 * rows lack join the vocabulary, as the accurate network's do), then the
 * character n-grams of every type and the features of every row.
 */
static cai_status
fast_prepare(FastTrain *t, const cai_options *opts, int n_labels, const cai_textclf_data *train,
			 const cai_textclf_data *valid, const cai_word_vectors *vec, cai_trainer *tk, cai_error *err)
{
	cai_textclf_token_rule rule = fast_token_rule(&t->p);
	cai_status	st;

	t->prep.types_by_word = true;
	if ((st = cai_textclf_prepare(opts, n_labels, train, valid, &rule, tk, &t->prep, err)) != CAI_OK ||
		(vec != NULL && vec->n > 0 &&
		 (st = cai_textclf_extend_vocab(&t->prep, &rule, vec, cai_opt_int(opts, "vector_words"), err)) != CAI_OK) ||
		(st = fast_prepare_char_ngrams(t, err)) != CAI_OK)
		return st;
	if ((t->rowtypes = cai_malloc(sizeof(int32_t) * fast_row_scratch(&t->p))) == NULL)
		return NOMEM(err);
	return fast_prepare_features(t, err);
}

/* ---------------------------------------------------------------------- */
/* Training: the model                                                    */
/* ---------------------------------------------------------------------- */

/*
 * Cache lines the forward sum asks for ahead of the row it adds: about 32
 * rows of the default 48 dimensions (3 lines each), fewer of longer rows
 * (fast_prefetch_ahead).  Measured in one process alternating the settings
 * every round (textclf_cli -T, 1,030,438 SST-2 rows): 32 rows ahead instead
 * of 16 trained 2-4% faster with one thread, 5-7% with two; 24 and 48 rows
 * were about 1% slower than 32, 64 rows 5%; with 100 dimensions (7 lines a
 * row) 14 and 32 rows were 1-2% slower than 16.
 */
#define FAST_PREFETCH_LINES 96

/* Rows of dim floats that fast_hidden_forward asks for ahead: FAST_PREFETCH_LINES of them, 4 to 64 rows. */
static inline size_t
fast_prefetch_ahead(int dim)
{
	size_t		lines = (sizeof(float) * (size_t) dim + 63) / 64;
	size_t		rows = FAST_PREFETCH_LINES / lines;

	return rows < 4 ? 4 : rows > 64 ? 64 : rows;
}

/*
 * h (D) = mean of E rows f[0..k), asking for the rows ahead rows in advance
 * (FastTrain.ahead).  Always inlined: its one caller is a
 * kernel (vectorize.h), whose clones must each have their own copy.
 */
static inline __attribute__((always_inline)) void
fast_hidden_forward(const float *E, const uint32_t *f, size_t k, int D, size_t ahead, float *h)
{
	memset(h, 0, sizeof(float) * (size_t) D);
	for (size_t j = 0; j < k && j < ahead; j++)
		fast_prefetch_row(E + (size_t) f[j] * D, D, true);
	for (size_t j = 0; j < k; j++)
	{
		if (j + ahead < k)
			fast_prefetch_row(E + (size_t) f[j + ahead] * D, D, true);
		vec_add(h, E + (size_t) f[j] * D, D);
	}
	if (k > 0)
	{
		float		inv = 1.0f / (float) k;

		for (int d = 0; d < D; d++)
			h[d] *= inv;
	}
}

/*
 * One SGD step on a row with features f[0..k) and label y on the
 * embeddings es * E (E at params) and the output weights ws * W (L, D),
 * with scratch h, dh (D) and p (L); returns the loss (the caller decays
 * the scales: see FAST_SCALE_FOLD).
 * h = es mean(E[f_j]); z = ws W h; dz = p - onehot(y); dh = ws W^T dz;
 * W -= lr dz h^T / ws; E[f_j] -= lr dh / (k es).
 */
CAI_KERNEL static double
fast_sgd_step_on(const FastTrain *t, float *params, float *W, float *h, float *dh, float *p,
				 const uint32_t *f, size_t k, int y, float lr, float es, float ws)
{
	const int	D = t->p.dim;
	const int	L = t->prep.L;
	float	   *E = params;
	double		lse;
	double		loss;

	fast_hidden_forward(E, f, k, D, t->ahead, h);
	for (int d = 0; d < D; d++)
		h[d] *= es;
	fast_output_forward(W, h, L, D, p);
	for (int c = 0; c < L; c++)
		p[c] *= ws;
	loss = p[y];
	lse = softmax_inplace(p, L);
	loss = lse - loss;
	memset(dh, 0, sizeof(float) * (size_t) D);
	for (int c = 0; c < L; c++)
	{
		float		g = p[c] - (c == y ? 1.0f : 0.0f);
		float	   *wc = W + (size_t) c * D;
		float		a = -lr * g / ws;

		if (g == 0.0f)
			continue;
		vec_axpy(dh, g * ws, wc, D);
		vec_axpy(wc, a, h, D);
	}
	if (k > 0)
	{
		float		a = -lr / ((float) k * es);

		for (size_t j = 0; j < k; j++)
			vec_axpy(E + (size_t) f[j] * D, a, dh, D);
	}
	return loss;
}

/* The shared output weights (L, D): after the embedding rows in the parameters. */
static inline float *
fast_out_weights(const FastTrain *t)
{
	return t->params + (size_t) (t->prep.V + t->prep.K) * (size_t) t->p.dim;
}

/* fast_sgd_step_on the training's own parameters and scratch (one thread). */
static inline double
fast_sgd_step(FastTrain *t, const uint32_t *f, size_t k, int y, float lr)
{
	return fast_sgd_step_on(t, t->params, fast_out_weights(t), t->hidden, t->grad, t->probs, f, k, y, lr,
							(float) t->scale, (float) t->wscale);
}

/* The learning rate of the row trained at step (counted over all epochs): linear decay to 0. */
static inline float
fast_lr(const FastTrain *t, size_t step)
{
	return (float) (t->lr0 * (1.0 - (double) step / (double) t->steps_total));
}

/* The factor by which weight decay multiplies the parameters at a step of learning rate lr. */
static inline double
fast_decay(const FastTrain *t, float lr)
{
	return 1.0 - (double) lr * t->weight_decay;
}

/* A step of learning rate lr done: its decay applied to the embeddings' and output weights' scales. */
static inline void
fast_decay_scales(const FastTrain *t, float lr, double *es, double *ws)
{
	const double d = fast_decay(t, lr);

	*es *= d;
	*ws *= d;
}

/*
 * The stored values times their scales, the scales 1 (weight decay: see
 * FAST_SCALE_FOLD).  The rows of words only the vectors have (vector_words)
 * that no training row contains are never trained and keep their vectors
 * (the option's promise): they are not decayed.
 */
static void
fast_decay_fold(FastTrain *t)
{
	const size_t D = (size_t) t->p.dim;
	const size_t nw = (size_t) t->prep.L * D;
	const int32_t v0 = t->prep.V - t->prep.V_vectors;
	float	   *W = fast_out_weights(t);
	const float g = (float) t->scale;

	if (t->scale != 1.0)
	{
		for (size_t i = 0; i < (size_t) v0 * D; i++)
			t->params[i] *= g;
		for (int32_t v = v0; v < t->prep.V; v++)
			if (t->prep.types.count[t->prep.vitems[v].type] > 0)
				for (size_t d = 0; d < D; d++)
					t->params[(size_t) v * D + d] *= g;
		for (size_t i = (size_t) t->prep.V * D; i < ((size_t) t->prep.V + (size_t) t->prep.K) * D; i++)
			t->params[i] *= g;
	}
	if (t->wscale != 1.0)
		for (size_t j = 0; j < nw; j++)
			W[j] *= (float) t->wscale;
	t->scale = 1.0;
	t->wscale = 1.0;
}

/* Word vectors: each vocabulary word's row plus its character n-gram rows. */
CAI_KERNEL static void
fast_word_vectors(FastTrain *t)
{
	const int	D = t->p.dim;
	const float *E = t->params;

	for (int32_t v = 0; v < t->prep.V; v++)
	{
		int32_t		ty = t->prep.vitems[v].type;
		float	   *wv = t->wordvec + (size_t) v * D;
		int32_t		cnt = 1;

		memcpy(wv, E + (size_t) v * D, sizeof(float) * (size_t) D);
		for (size_t j = t->type_cg_off[ty]; j < t->type_cg_off[ty + 1]; j++)
		{
			int32_t		row = t->prep.bmap[t->type_cg[j]];

			if (row >= 0)
			{
				vec_add(wv, E + ((size_t) t->prep.V + (size_t) row) * D, D);
				cnt++;
			}
		}
		t->wordcnt[v] = cnt;
	}
}

/*
 * Predict evaluation row r (eval_from on) with the current parameters,
 * computing what cai_textclf_fast_predict() computes, in the same order (the
 * same bits); h (D), probs (L), feat (max_feat) and types (max_tokens + 2)
 * are scratch.  *loss gets the row's loss; returns the predicted class.
 */
CAI_KERNEL static int
fast_eval_row(const FastTrain *t, size_t r, float *h, float *probs, uint32_t *feat, int32_t *types, double *loss)
{
	const int	D = t->p.dim;
	const int	L = t->prep.L;
	const float *E = t->params;
	const float *W = E + (size_t) (t->prep.V + t->prep.K) * D;
	const uint32_t V = (uint32_t) t->prep.V;
	int32_t		y = t->prep.eval_lab[r];
	size_t		k = fast_eval_features(t, cai_textclf_eval_row(&t->prep, r), feat, types);
	int64_t		nf = 0;
	int			best = 0;
	double		lse;
	float		zy;

	memset(h, 0, sizeof(float) * (size_t) D);
	for (size_t j = 0; j < k; j++)
	{
		uint32_t	x = feat[j];

		if (x < V)
		{
			vec_add(h, t->wordvec + (size_t) x * D, D);
			nf += t->wordcnt[x];
		}
		else
		{
			vec_add(h, E + (size_t) x * D, D);
			nf++;
		}
	}
	if (nf > 0)
	{
		float		inv = 1.0f / (float) nf;

		for (int d = 0; d < D; d++)
			h[d] *= inv;
	}
	fast_output_forward(W, h, L, D, probs);
	zy = probs[y];
	for (int c = 1; c < L; c++)
		if (probs[c] > probs[best])
			best = c;
	lse = softmax_inplace(probs, L);
	*loss = lse - zy;
	return best;
}

/* Job: shard s predicts evaluation rows [from, to) (threads > 1), its loss summed in row order. */
static cai_status
fast_shard_eval(void *ctx, int s, cai_error *err)
{
	FastTrain  *t = ctx;
	FastShard  *sh = &t->sh[s];

	double		loss = 0.0;

	for (size_t r = sh->from; r < sh->to; r++)
	{
		double		l;

		t->prep.pred[r] = fast_eval_row(t, r, sh->hidden, sh->probs, sh->feat, sh->types, &l);
		loss += l;
	}
	sh->loss = loss;
	return CAI_OK;
}

/*
 * Predict the evaluation rows into t->prep.pred; *loss gets the mean loss.
 * One thread: row by row, the loss summed in row order.  With the pool
 * (threads > 1), rounds of threads * FAST_SHARD_ROWS rows, each shard's
 * contiguous part summed in order and the shards' sums added in shard
 * order: the same predictions, a loss equal up to rounding, the same for
 * the same threads.  false when the progress callback cancels.
 */
static bool
fast_eval(FastTrain *t, cai_trainer *tk, double *mean_loss)
{
	const size_t n_eval = t->prep.n_eval;
	double		loss = 0.0;
	cai_error	err;

	fast_word_vectors(t);
	if (t->pool.n <= 1)
	{
		for (size_t r = 0; r < n_eval; r++)
		{
			double		l;

			if ((r & 1023) == 1023 && !cai_trainer_tick(tk, tk->p.fraction))
				return false;
			t->prep.pred[r] = fast_eval_row(t, r, t->hidden, t->probs, t->rowfeat, t->rowtypes, &l);
			loss += l;
		}
	}
	else
	{
		const size_t n = (size_t) t->pool.n;

		for (size_t b0 = 0; b0 < n_eval; b0 += n * FAST_SHARD_ROWS)
		{
			size_t		m = n_eval - b0 < n * FAST_SHARD_ROWS ? n_eval - b0 : n * FAST_SHARD_ROWS;

			if (b0 > 0 && !cai_trainer_tick(tk, tk->p.fraction))
				return false;
			for (size_t s = 0; s < n; s++)
			{
				t->sh[s].from = b0 + m * s / n;
				t->sh[s].to = b0 + m * (s + 1) / n;
			}
			if (cai_pool_run(&t->pool, fast_shard_eval, t, &err) != CAI_OK)
				return false;
			for (size_t s = 0; s < n; s++)
				loss += t->sh[s].loss;
		}
	}
	*mean_loss = n_eval > 0 ? loss / (double) n_eval : 0.0;
	return true;
}

/* ---------------------------------------------------------------------- */
/* Training: entry points                                                 */
/* ---------------------------------------------------------------------- */

static cai_status
fast_params_from_options(const cai_options *o, const cai_word_vectors *vec, FastParams *fp, cai_error *err)
{
	cai_status	st;

	if ((st = cai_textclf_vector_dim(o, vec, &fp->dim, err)) != CAI_OK)
		return st;
	fp->word_ngrams = (int) cai_opt_int(o, "word_ngrams");
	fp->minn = (int) cai_opt_int(o, "minn");
	fp->maxn = (int) cai_opt_int(o, "maxn");
	fp->max_tokens = (int) cai_opt_int(o, "max_tokens");
	fp->buckets = (uint32_t) cai_opt_int(o, "buckets");
	fp->eos = 1;
	if (fp->dim < 1 || fp->dim > TEXTCLF_MAX_DIM)
		return cai_error_set(err, CAI_ERR_INVALID, "dimensions must be 1 to %d", TEXTCLF_MAX_DIM);
	if (fp->word_ngrams < 1 || fp->word_ngrams > FAST_MAX_NGRAMS)
		return cai_error_set(err, CAI_ERR_INVALID, "word_ngrams must be 1 to %d", FAST_MAX_NGRAMS);
	return cai_textclf_check_token_options(fp->minn, fp->maxn, fp->max_tokens, FAST_BYTES_PER_TOKEN,
										   fp->buckets, TEXTCLF_MAX_BUCKETS, err);
}

/* fast_count_buckets' pass over the rows' word n-grams, split over a pool's shards. */
typedef struct FastCount
{
	const FastParams *fp;
	const cai_textclf_tokens *tk;
	const uint64_t *wh;			/* (words) each word's hash */
	uint64_t	eos_hash;
	int			shards;
	uint64_t  **seen;			/* (shards) each shard's bitmap of the buckets */
} FastCount;

#define FAST_MARK(seen, b) ((seen)[(b) / 64] |= 1ULL << ((b) % 64))

/* Job: the word n-gram buckets of shard s's rows marked in its own bitmap. */
static cai_status
fast_count_rows(void *ctx, int s, cai_error *err)
{
	const FastCount *c = ctx;
	const FastParams *fp = c->fp;
	const size_t n = c->tk->n;
	uint64_t   *seen = c->seen[s];

	(void) err;
	for (size_t r = n * (size_t) s / (size_t) c->shards; r < n * ((size_t) s + 1) / (size_t) c->shards; r++)
	{
		uint64_t	hist[FAST_MAX_NGRAMS] = {0};
		size_t		nt;
		const int32_t *ids = cai_textclf_tokens_row(c->tk, r, &nt);

		for (size_t i = 0; i < nt + (size_t) fp->eos; i++)
		{
			int			have = i + 1 < (size_t) fp->word_ngrams ? (int) i + 1 : fp->word_ngrams;

			fast_hist_push(hist, i < nt ? c->wh[ids[i]] : c->eos_hash);
			for (int g = 2; g <= have; g++)
				FAST_MARK(seen, fast_ngram_bucket(hist + FAST_MAX_NGRAMS - g, g, fp->buckets));
		}
	}
	return CAI_OK;
}

/*
 * With rows of token ids: how many buckets the rows' character n-grams and
 * word n-grams fall in, counted in one pass over the ids in memory (a
 * bitmap of the buckets; the words' hashes as the features take them), the
 * rows split over threads (a pool of its own; each thread its bitmap, OR-ed
 * after).  At least the bucket rows training makes: the words of validation
 * rows, and validation rows split from these, are counted too.  SIZE_MAX on
 * out of memory.
 */
static size_t
fast_count_buckets(const FastParams *fp, const cai_textclf_tokens *tk, int threads)
{
	const cai_strtab *words = tk->words;
	const size_t nwords = ((size_t) fp->buckets + 63) / 64;
	uint64_t   *wh = cai_malloc(sizeof(uint64_t) * ((size_t) words->n + 1));
	uint64_t	cg[TEXTCLF_CHAR_NGRAMS_MAX];
	char		norm[TEXTCLF_NORM_MAX];
	cai_pool	pool = {0};
	FastCount	c = {.fp = fp, .tk = tk, .wh = wh};
	size_t		k = SIZE_MAX;
	cai_error	err;

	if (fp->word_ngrams > 1 && threads > 1)
		cai_pool_start(&pool, threads);
	c.shards = pool.n > 1 ? pool.n : 1;
	c.seen = cai_calloc((size_t) c.shards, sizeof(uint64_t *));
	for (int s = 0; c.seen != NULL && s < c.shards; s++)
		if ((c.seen[s] = cai_calloc(nwords, sizeof(uint64_t))) == NULL)
			goto done;
	if (wh == NULL || c.seen == NULL)
		goto done;
	for (int32_t w = 0; w < words->n; w++)
	{
		cai_token	tok = {0};
		size_t		nl;
		int			nc;

		tok.end = (int64_t) cai_strtab_len(words, w);
		nl = fast_token_norm(cai_strtab_str(words, w), &tok, 0, 1, norm);
		wh[w] = fast_word_hash(norm, nl);
		nc = fast_type_char_ngrams(fp, norm, nl, cg);
		for (int j = 0; j < nc; j++)
			FAST_MARK(c.seen[0], cai_textclf_char_bucket(cg[j], fp->buckets));
	}
	c.eos_hash = fast_word_hash(norm, fast_token_norm(NULL, NULL, 0, 0, norm));
	if (fp->word_ngrams > 1 && cai_pool_run(&pool, fast_count_rows, &c, &err) != CAI_OK)
		goto done;
	k = 0;
	for (size_t j = 0; j < nwords; j++)
	{
		uint64_t	m = 0;

		for (int s = 0; s < c.shards; s++)
			m |= c.seen[s][j];
		k += cai_popcount64(m);
	}
done:
	cai_pool_stop(&pool);
	for (int s = 0; c.seen != NULL && s < c.shards; s++)
		cai_free(c.seen[s]);
	cai_free(c.seen);
	cai_free(wh);
	return k;
}

#undef FAST_MARK

/* See textclf_internal.h. */
size_t
cai_textclf_fast_count_buckets(const cai_options *opts, const cai_textclf_tokens *tk, int threads)
{
	FastParams	fp;

	if (opts == NULL || tk == NULL || fast_params_from_options(opts, NULL, &fp, NULL) != CAI_OK)
		return SIZE_MAX;
	return fast_count_buckets(&fp, tk, threads);
}

/*
 * An estimate, on the high side.  From texts, from the text bytes alone
 * (1.2 to 4 times the peak measured on SST-2 and on small sets): the
 * numbers of distinct words and n-grams are only known after tokenizing.
 * Assumptions: about 4 bytes per token; distinct words ~ 40 sqrt(tokens)
 * and distinct word n-grams ~ 8 tokens^0.75 (Heaps' law); each distinct word
 * brings 2 new character n-grams per n-gram length.  From token ids, the
 * tokens, the distinct words (an upper bound of the types) and the buckets
 * used (fast_count_buckets) are counted.  The embedding rows (parameters,
 * the best epoch's copy, the serialized model: 12 bytes a dimension a row)
 * dominate; the rows cost 4 bytes a row in the trainer with token ids (the
 * order, labels and row indexes: 20), with texts 4 bytes a token more.
 */
size_t
cai_textclf_fast_train_memory(const cai_options *opts, const cai_textclf_data *train, int n_labels,
							  const cai_word_vectors *vec)
{
	FastParams	fp;
	size_t		bytes = 0;
	size_t		tokens = 0;
	size_t		rows;
	size_t		types;
	size_t		ngram_rows;
	size_t		char_rows;
	size_t		n_params;
	size_t		total;
	size_t		nchar;
	int			threads;

	if (opts == NULL || train == NULL || n_labels < 1 ||
		fast_params_from_options(opts, vec, &fp, NULL) != CAI_OK)
		return 0;
	threads = (int) cai_opt_int(opts, "threads");
	/* the end-of-text token included */
	cai_textclf_estimate_tokens(train, fp.max_tokens, FAST_BYTES_PER_TOKEN, fp.eos, &bytes, &tokens);
	/* character n-grams per type: ~5 per n-gram length */
	nchar = fp.minn > 0 ? (size_t) (fp.maxn - fp.minn + 1) * 5 : 0;
	types = (size_t) (40.0 * sqrt((double) tokens)) + 1;
	if (types > tokens)
		types = tokens;
	ngram_rows = (size_t) (fp.word_ngrams - 1) * (size_t) (8.0 * pow((double) tokens, 0.75));
	if (ngram_rows > (size_t) (fp.word_ngrams - 1) * tokens)
		ngram_rows = (size_t) (fp.word_ngrams - 1) * tokens;
	char_rows = fp.minn > 0 ? (size_t) (fp.maxn - fp.minn + 1) * 2 * types : 0;
	rows = ngram_rows + char_rows < fp.buckets ? ngram_rows + char_rows : fp.buckets;
	if (train->tokens != NULL)
	{
		size_t		k = fast_count_buckets(&fp, train->tokens, threads);

		types = (size_t) train->tokens->words->n + 1;
		if (k != SIZE_MAX)
			rows = k;
	}
	/* the vector words the vocabulary may gain (cai_textclf_extend_vocab; no character n-gram rows) */
	if (vec != NULL && vec->n > 0)
		types += (size_t) cai_opt_int(opts, "vector_words") < vec->n ? (size_t) cai_opt_int(opts, "vector_words") : vec->n;
	rows += types;
	n_params = (rows + (size_t) n_labels) * (size_t) fp.dim;

	total = 2 * n_params * sizeof(float);	/* parameters and the best epoch's copy */
	total += types * (size_t) fp.dim * sizeof(float);	/* word vectors for scoring */
	/*
	 * features: every type's (a row's features are made from its tokens when
	 * it is trained on or scored); the rows' type ids and their offsets with
	 * texts, or with token ids the type of each word; the type strings
	 */
	total += types * (1 + nchar) * sizeof(uint32_t);
	if (train->tokens != NULL)
		total += types * sizeof(int32_t) + bytes;
	else
		total += tokens * sizeof(int32_t) + (train->n + 1) * sizeof(size_t) + bytes;
	total += types * (sizeof(uint64_t) + 2 * sizeof(size_t) + 4 + 8 + 4 + 4 + sizeof(cai_textclf_vocab_item));
	total += types * nchar * sizeof(uint32_t);
	total += (size_t) fp.buckets * sizeof(int32_t);
	total += train->n * (4 * sizeof(int32_t) + sizeof(char *) + sizeof(size_t));
	total += vec != NULL && vec->n > 0 ? types * sizeof(int32_t) : 0;	/* the vectors matched */
	/*
	 * the serialized model: the parameters, the word vectors, the lookup
	 * tables (bucket ranks, slots) both built and in the model bytes, the
	 * metadata
	 */
	total += n_params * sizeof(float) + bytes / 2 + types * (size_t) fp.dim * sizeof(float);
	total += 2 * ((size_t) fp.buckets * 3 / 16 + rows * 4 * sizeof(int32_t)) + 65536;
	/*
	 * threads > 1: each thread's scratch (the features of its longest row
	 * bounded by max_tokens) and the pool; the hot rows' slots and copies,
	 * their counts while they are chosen and their bitmap
	 */
	if (threads > 1)
	{
		const size_t hot = fast_hot_limit(threads, fp.dim);

		total += (size_t) threads *
			((2 * (size_t) fp.dim + (size_t) n_labels * (1 + 2 * (size_t) fp.dim) + (size_t) (fp.max_tokens + 1) * (size_t) (fp.word_ngrams + FAST_CHAR_NGRAMS_MAX)) *
			 sizeof(float) + sizeof(FastShard) + sizeof(cai_error) + 4 * FAST_LINE);
		total += ((size_t) threads + 1) * hot * (size_t) fp.dim * sizeof(float);
		total += rows * sizeof(uint32_t) + rows / 4 + hot * (sizeof(uint64_t) + sizeof(uint32_t));
	}
	/* counted from token ids, the margin is for what is still guessed (character n-grams per type) */
	if (train->tokens != NULL)
		total += total / 8;
	return total;
}

/* Metadata JSON text (cai_malloc'ed) or NULL on out of memory. */
static char *
fast_metadata(const FastTrain *t, const cai_options *opts, const char *const *label_names,
			  json_object *metrics, json_object *prov, uint64_t fingerprint)
{
	json_object *fj = cai_textclf_feature_json(FAST_FEATURE_VERSION, fingerprint, t->p.dim);

	if (fj != NULL &&
		!(cai_json_put(fj, "word_ngrams", json_object_new_int(t->p.word_ngrams)) &&
		  cai_textclf_put_token_options(fj, t->p.minn, t->p.maxn, t->p.max_tokens, t->p.buckets) &&
		  cai_json_put(fj, "eos", json_object_new_int(t->p.eos)) &&
		  cai_json_put(fj, "vocab_size", json_object_new_int(t->prep.V)) &&
		  cai_json_put(fj, "bucket_rows", json_object_new_int(t->prep.K))))
	{
		json_object_put(fj);
		fj = NULL;
	}
	return cai_textclf_metadata("fast", opts, t->vm.row != NULL ? t->p.dim : 0, label_names, t->prep.L, fj,
								metrics, prov);
}

static cai_status
fast_serialize(FastTrain *t, const char *meta, uint8_t **model, size_t *model_len, cai_error *err)
{
	cai_tensor	ts[10];
	int			nt = 0;
	cai_textclf_tables tab;
	float	   *wordvec = NULL;
	int32_t    *wordcnt = NULL;
	cai_textclf_fast fm;			/* the loader's view, to compute what it would */
	const int	D = t->p.dim;
	size_t		R = (size_t) t->prep.V + (size_t) t->prep.K;
	cai_status	st;

	if ((st = cai_textclf_pack_tables(&t->prep.types, t->prep.vitems, t->prep.V, FAST_SEED_WORD, t->prep.bmap, t->p.buckets,
									  t->prep.K, "fast", ts, &nt, &tab, err)) != CAI_OK ||
		(t->prep.K > 0 &&
		 (st = cai_textclf_pack_bucket_rank(&tab, t->p.buckets, "fast", ts, &nt, err)) != CAI_OK))
		goto done;
	memset(&fm, 0, sizeof(fm));
	fm.p = t->p;
	fm.n_vocab = t->prep.V;
	fm.n_bucket_rows = t->prep.K;
	fm.emb = t->best;
	fm.vocab = tab.vocab;
	fm.bucket = tab.bucket;
	fm.bucket_rank = tab.brank;
	if (R > 0)
		cai_textclf_tensor(&ts[nt++], "fast.embedding", CAI_F32, 2, (int64_t) R, D, t->best);
	if (t->prep.V > 0)
	{
		/* word vectors exactly as the loader of an older model computes them */
		wordvec = cai_malloc(sizeof(float) * (size_t) t->prep.V * (size_t) D);
		wordcnt = cai_malloc(sizeof(int32_t) * (size_t) t->prep.V);
		if (wordvec == NULL || wordcnt == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		cai_textclf_fast_compute_word_vectors(&fm, wordvec, wordcnt);
		cai_textclf_tensor(&ts[nt++], "fast.word_vectors", CAI_F32, 2, t->prep.V, D, wordvec);
		cai_textclf_tensor(&ts[nt++], "fast.word_counts", CAI_I32, 1, t->prep.V, 0, wordcnt);
	}
	cai_textclf_tensor(&ts[nt++], "fast.output.weight", CAI_F32, 2, t->prep.L, D, t->best + R * (size_t) D);
	st = cai_format_write(meta, ts, nt, model, model_len, err);
done:
	cai_textclf_tables_free(&tab);
	cai_free(wordvec);
	cai_free(wordcnt);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Training: the trainer's hooks (trainer.h)                              */
/* ---------------------------------------------------------------------- */

static cai_status
fast_begin_epoch(void *ctx, int epoch, cai_error *err)
{
	FastTrain  *t = ctx;

	cai_rng_shuffle(&t->rng, t->order, t->prep.rows.n_tr);
	return CAI_OK;
}

/* Feature dropout: the features f[0..*k) kept (at least one) into kept, *k their count; returns kept. */
static const uint32_t *
fast_drop_features(const uint32_t *f, size_t *k, float dropout, cai_rng *rng, uint32_t *kept)
{
	size_t		m = 0;

	for (size_t j = 0; j < *k; j++)
		if (cai_rng_uniform_inline(rng) >= dropout)
			kept[m++] = f[j];
	if (m == 0)
		kept[m++] = f[cai_rng_below(rng, (uint32_t) *k)];
	*k = m;
	return kept;
}

static cai_status fast_train_epoch_par(FastTrain *t, cai_trainer *tr, int epoch, double *loss, double *rows,
									   cai_error *err);

/* Per-row SGD over the shuffled training rows, the learning rate decaying linearly (threads > 1: fast_train_epoch_par). */
static cai_status
fast_train_epoch(void *ctx, cai_trainer *tr, int epoch, double *loss, double *rows, cai_error *err)
{
	FastTrain  *t = ctx;
	double		loss_sum = 0.0;
	size_t		rows_done = 0;
	cai_status	st;

	if (t->pool.n > 1)
		return fast_train_epoch_par(t, tr, epoch, loss, rows, err);
	for (size_t i = 0; i < t->prep.rows.n_tr; i++)
	{
		size_t		r = (size_t) t->order[i];
		const uint32_t *f = t->rowfeat;
		size_t		k;
		float		lr = fast_lr(t, t->step);

		cai_textclf_prep_prefetch(&t->prep, t->order, i, t->prep.rows.n_tr);
		k = fast_row_features(t, r, t->rowfeat, t->rowtypes, 0);

		if ((i & 255) == 0 && i > 0)
		{
			if ((st = cai_trainer_poll(tr, (double) t->step / (double) t->steps_total, err)) != CAI_OK)
				return st;
			/* out of time: score what we have (a partial epoch) and stop */
			if (cai_trainer_out_of_time(tr))
				break;
		}
		if (t->dropout > 0 && k > 0)
			f = fast_drop_features(f, &k, (float) t->dropout, &t->rng, t->kept);
		loss_sum += fast_sgd_step(t, f, k, t->prep.rows.lab[r], lr);
		fast_decay_scales(t, lr, &t->scale, &t->wscale);
		if (t->scale < cai_textclf_fast_scale_fold)
			fast_decay_fold(t);
		t->step++;
		rows_done++;
	}
	fast_decay_fold(t);
	if (!isfinite(loss_sum))
		return cai_error_set(err, CAI_ERR_NUMERIC,
							 "training diverged in epoch %d (the loss is not finite); lower learning_rate", epoch);
	*loss = loss_sum / (double) (rows_done > 0 ? rows_done : 1);
	*rows = (double) rows_done;
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Training: data parallel (threads > 1)                                  */
/* ---------------------------------------------------------------------- */

/*
 * Job: shard s trains positions [from, to) of the epoch's order as
 * fast_train_epoch does, on the shared parameters (lock-free).
 */
static cai_status
fast_shard_train(void *ctx, int s, cai_error *err)
{
	FastTrain  *t = ctx;
	FastShard  *sh = &t->sh[s];
	const size_t nw = (size_t) t->prep.L * (size_t) t->p.dim;
	float	   *const W = sh->W;
	uint32_t   *const feat = sh->feat;
	int32_t    *const types = sh->types;
	const size_t to = sh->to;
	/* written at every row: locals until the round's end (FastShard) */
	cai_rng		rng = sh->rng;
	double		loss = 0.0;
	double		escale = sh->escale;
	double		wscale = sh->wscale;

	/* the round starts from the shared output weights and hot rows */
	memcpy(W, fast_out_weights(t), sizeof(float) * nw);
	memcpy(sh->W0, W, sizeof(float) * nw);
	if (t->n_hot > 0)
		memcpy(fast_hot_slots(t, s + 1), fast_hot_slots(t, 0), sizeof(float) * t->n_hot * (size_t) t->p.dim);
	for (size_t i = sh->from; i < to; i++)
	{
		size_t		r = (size_t) t->order[i];
		const uint32_t *f = feat;
		size_t		k;
		float		lr = fast_lr(t, t->epoch_step + i);

		cai_textclf_prep_prefetch(&t->prep, t->order, i, to);
		k = fast_row_features(t, r, feat, types, (uint32_t) ((size_t) (s + 1) * t->n_hot));

		if (t->dropout > 0 && k > 0)
			f = fast_drop_features(f, &k, (float) t->dropout, &rng, sh->kept);
		loss += fast_sgd_step_on(t, t->params, W, sh->hidden, sh->grad, sh->probs, f, k,
								 t->prep.rows.lab[r], lr, (float) escale, (float) wscale);
		fast_decay_scales(t, lr, &escale, &wscale);
	}
	sh->rng = rng;
	sh->loss = loss;
	sh->escale = escale;
	sh->wscale = wscale;
	return CAI_OK;
}

/*
 * Weight decay: the rows of a round (at most m) whose decay together stays
 * above FAST_SCALE_FOLD, at least one, so that a shard's scales never get
 * so small that its steps' updates divided by them lose precision.
 */
static size_t
fast_round_rows(const FastTrain *t, size_t m)
{
	double		d = 1.0;

	for (size_t i = 0; i < m; i++)
	{
		d *= fast_decay(t, fast_lr(t, t->step + i));
		if (d < cai_textclf_fast_scale_fold)
			return i > 0 ? i : 1;
	}
	return m;
}

/*
 * Weight decay over the round's shards: each shard's scales at its first
 * row (the embeddings' scale and the decay of the output weights since the
 * round's start) and decay_to, the decay from the round's start to its
 * end; returns the decay of the whole round.
 */
static double
fast_round_decay(FastTrain *t)
{
	double		d = 1.0;

	for (int s = 0; s < t->pool.n; s++)
	{
		FastShard  *sh = &t->sh[s];

		sh->escale = t->scale * d;
		sh->wscale = d;
		for (size_t i = sh->from; i < sh->to && t->weight_decay > 0; i++)
			d *= fast_decay(t, fast_lr(t, t->epoch_step + i));
		sh->decay_to = d;
	}
	return d;
}

/*
 * Job: each shard's change of the hot rows added to their values, in shard
 * order (stored values: the round's decay is in the scale); shard s does its
 * part of the slots' floats, so the merge runs on every thread.
 */
static cai_status
fast_hot_combine(void *ctx, int s, cai_error *err)
{
	FastTrain  *t = ctx;
	const int	n = t->pool.n;
	const size_t m = t->n_hot * (size_t) t->p.dim;
	const size_t from = m * (size_t) s / (size_t) n;
	const size_t to = m * (size_t) (s + 1) / (size_t) n;
	float	   *restrict base = fast_hot_slots(t, 0);
	const float *restrict first = fast_hot_slots(t, 1);	/* shard 0's copy: base plus its change */

	(void) err;
	for (size_t i = from; i < to; i++)
	{
		float		sum = first[i];

		for (int c = 2; c <= n; c++)
			sum += fast_hot_slots(t, c)[i] - base[i];
		base[i] = sum;
	}
	return CAI_OK;
}

/* The hot rows' values into their slots (an epoch's start), or back (its end). */
static void
fast_hot_move(FastTrain *t, bool to_slots)
{
	const size_t D = (size_t) t->p.dim;
	float	   *hot = fast_hot_slots(t, 0);

	for (size_t h = 0; h < t->n_hot; h++)
	{
		float	   *row = t->params + (size_t) t->hot_row[h] * D;

		if (to_slots)
			memcpy(hot + h * D, row, sizeof(float) * D);
		else
			memcpy(row, hot + h * D, sizeof(float) * D);
	}
}

/* fast_train_epoch with the pool: rounds of cai_textclf_fast_shard_rows rows per shard. */
static cai_status
fast_train_epoch_par(FastTrain *t, cai_trainer *tr, int epoch, double *loss, double *rows, cai_error *err)
{
	const size_t n_tr = t->prep.rows.n_tr;
	const size_t n = (size_t) t->pool.n;
	double		loss_sum = 0.0;
	size_t		rows_done = 0;
	double		decay;
	cai_status	st = CAI_OK;

	t->epoch_step = t->step;
	for (size_t s = 0; s < n; s++)
		cai_rng_seed(&t->sh[s].rng, cai_rng_u64(&t->rng));
	fast_hot_move(t, true);
	for (size_t b0 = 0, m = 0; b0 < n_tr; b0 += m)
	{
		m = n_tr - b0 < n * cai_textclf_fast_shard_rows ? n_tr - b0 : n * cai_textclf_fast_shard_rows;
		if (b0 > 0)
		{
			if ((st = cai_trainer_poll(tr, (double) t->step / (double) t->steps_total, err)) != CAI_OK)
				break;
			/* out of time: score what we have (a partial epoch) and stop */
			if (cai_trainer_out_of_time(tr))
				break;
		}
		if (t->weight_decay > 0)
			m = fast_round_rows(t, m);
		for (size_t s = 0; s < n; s++)
		{
			t->sh[s].from = b0 + m * s / n;
			t->sh[s].to = b0 + m * (s + 1) / n;
		}
		decay = fast_round_decay(t);
		if ((st = cai_pool_run(&t->pool, fast_shard_train, t, err)) != CAI_OK)
			break;
		{
			float	   *W = fast_out_weights(t);
			const size_t nw = (size_t) t->prep.L * (size_t) t->p.dim;

			/*
			 * Each shard's change of the output weights, added in shard
			 * order, decayed by the rest of the round; the round's start
			 * by all of it (fast_round_decay).
			 */
			for (size_t j = 0; j < nw; j++)
				W[j] *= (float) decay;
			for (size_t s = 0; s < n; s++)
			{
				const FastShard *sh = &t->sh[s];
				const float c = (float) (decay / sh->decay_to * sh->wscale);

				for (size_t j = 0; j < nw; j++)
					W[j] += c * sh->W[j] - (float) decay * sh->W0[j];
				loss_sum += sh->loss;
			}
		}
		if (t->n_hot > 0 && (st = cai_pool_run(&t->pool, fast_hot_combine, t, err)) != CAI_OK)
			break;
		t->scale *= decay;
		if (t->scale < cai_textclf_fast_scale_fold)
		{
			fast_hot_move(t, false);
			fast_decay_fold(t);
			fast_hot_move(t, true);
		}
		t->step += m;
		rows_done += m;
	}
	fast_hot_move(t, false);
	if (st != CAI_OK)
		return st;
	fast_decay_fold(t);
	if (!isfinite(loss_sum))
		return cai_error_set(err, CAI_ERR_NUMERIC,
							 "training diverged in epoch %d (the loss is not finite); lower learning_rate", epoch);
	*loss = loss_sum / (double) (rows_done > 0 ? rows_done : 1);
	*rows = (double) rows_done;
	return CAI_OK;
}

static inline size_t
fast_line_round(size_t bytes)
{
	return (bytes + FAST_LINE - 1) & ~(FAST_LINE - 1);
}

/* The shards' scratch (the pool running with n > 1 threads): see FastShard. */
static cai_status
fast_shards_alloc(FastTrain *t, size_t max_feat, cai_error *err)
{
	const size_t D = (size_t) t->p.dim;
	const size_t L = (size_t) t->prep.L;
	const size_t nf = max_feat > 0 ? max_feat : 1;
	const size_t bytes[] = {
		sizeof(float) * D, sizeof(float) * D, sizeof(float) * L, sizeof(uint32_t) * nf, sizeof(uint32_t) * nf,
		sizeof(int32_t) * fast_row_scratch(&t->p), sizeof(float) * L * D, sizeof(float) * L * D,
	};
	size_t		off[sizeof(bytes) / sizeof(bytes[0])];	/* each buffer's start, on a line of its own */
	size_t		total = 0;

	for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++)
	{
		off[i] = total;
		total += fast_line_round(bytes[i]);
	}
	total += 2 * FAST_LINE;		/* aligning the first buffer, a free line after the last */
	if ((t->sh = cai_calloc((size_t) t->pool.n, sizeof(FastShard))) == NULL)
		return NOMEM(err);
	t->pool_shards = t->pool.n;
	for (int s = 0; s < t->pool.n; s++)
	{
		FastShard  *sh = &t->sh[s];
		char	   *p;

		if ((sh->block = cai_malloc(total)) == NULL)
			return NOMEM(err);
		p = (char *) (((uintptr_t) sh->block + FAST_LINE - 1) & ~(uintptr_t) (FAST_LINE - 1));
		sh->hidden = (float *) (p + off[0]);
		sh->grad = (float *) (p + off[1]);
		sh->probs = (float *) (p + off[2]);
		sh->kept = (uint32_t *) (p + off[3]);
		sh->feat = (uint32_t *) (p + off[4]);
		sh->types = (int32_t *) (p + off[5]);
		sh->W = (float *) (p + off[6]);
		sh->W0 = (float *) (p + off[7]);
	}
	return CAI_OK;
}

static int
fast_cmp_desc_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * The hot rows (threads > 1, at most fast_hot_limit; none when an epoch
 * has fewer than FAST_HOT_MIN_ROUNDS rounds): counted in every stride-th
 * training row (FAST_HOT_SAMPLE rows), the fast_hot_limit rows most of them have (ties to
 * the lower row) among those two of them have at least, slots in row order;
 * the types' feature lists then name their slots (hot0 + slot) instead of
 * the rows.  The choice depends on the rows alone, not on the threads'
 * timing.
 */
static cai_status
fast_hot_select(FastTrain *t, cai_error *err)
{
	const size_t R = (size_t) t->prep.V + (size_t) t->prep.K;
	const size_t n_tr = t->prep.rows.n_tr;
	const size_t stride = n_tr > FAST_HOT_SAMPLE ? n_tr / FAST_HOT_SAMPLE : 1;
	const size_t n_words = R / 64 + 1;
	const size_t limit = fast_hot_limit(t->pool.n, t->p.dim);
	uint32_t   *count;
	uint64_t   *cand;
	size_t		n_cand = 0;
	const uint32_t least = 2;

	t->hot0 = (uint32_t) (R + (size_t) t->prep.L);
	if (t->pool.n <= 1 || n_tr < FAST_HOT_MIN_ROUNDS * (size_t) t->pool.n * cai_textclf_fast_shard_rows)
		return CAI_OK;
	if ((count = cai_calloc(R, sizeof(uint32_t))) == NULL)
		return NOMEM(err);
	for (size_t r = 0; r < n_tr; r += stride)
	{
		size_t		k = fast_row_features(t, r, t->rowfeat, t->rowtypes, 0);

		for (size_t j = 0; j < k; j++)
			count[t->rowfeat[j]]++;
	}
	for (size_t f = 0; f < R; f++)
		n_cand += count[f] >= least;
	if (n_cand == 0)
	{
		cai_free(count);
		return CAI_OK;
	}
	t->hot_bits = cai_calloc(n_words, sizeof(uint64_t));
	t->hot_rank = cai_calloc(n_words, sizeof(uint32_t));
	t->n_hot = n_cand < limit ? n_cand : limit;
	t->hot_row = cai_malloc(sizeof(uint32_t) * t->n_hot);
	cand = n_cand > limit ? cai_malloc(sizeof(uint64_t) * n_cand) : NULL;
	if (t->hot_bits == NULL || t->hot_rank == NULL || t->hot_row == NULL || (n_cand > limit && cand == NULL))
	{
		cai_free(count);
		return NOMEM(err);
	}
	if (cand == NULL)			/* every candidate is hot */
		for (size_t f = 0; f < R; f++)
		{
			if (count[f] >= least)
				t->hot_bits[f / 64] |= UINT64_C(1) << (f % 64);
		}
	else
	{
		/* the most frequent first, ties to the lower row: count, then the row complemented */
		n_cand = 0;
		for (size_t f = 0; f < R; f++)
			if (count[f] >= least)
				cand[n_cand++] = (uint64_t) count[f] << 32 | (uint64_t) (UINT32_MAX - (uint32_t) f);
		qsort(cand, n_cand, sizeof(uint64_t), fast_cmp_desc_u64);
		for (size_t h = 0; h < t->n_hot; h++)
		{
			uint32_t	f = UINT32_MAX - (uint32_t) (cand[h] & UINT32_MAX);

			t->hot_bits[f / 64] |= UINT64_C(1) << (f % 64);
		}
		cai_free(cand);
	}
	cai_free(count);
	/* slots in row order: the bitmap's order */
	for (size_t f = 0, h = 0; f < R; f++)
		if (fast_is_hot(t, (uint32_t) f))
			t->hot_row[h++] = (uint32_t) f;
	for (size_t w = 1; w < n_words; w++)
		t->hot_rank[w] = t->hot_rank[w - 1] + cai_popcount64(t->hot_bits[w - 1]);
	for (size_t i = 0; i < t->type_feat_off[t->prep.types.n]; i++)
		if (fast_is_hot(t, t->type_feat[i]))
			t->type_feat[i] = t->hot0 + fast_hot_slot(t, t->type_feat[i]);
	return CAI_OK;
}

/* Accuracy on the evaluation rows; ties go to the lower mean loss. */
static cai_status
fast_evaluate(void *ctx, cai_trainer *tr, int epoch, double *score, double *loss, cai_error *err)
{
	FastTrain  *t = ctx;
	double		mf1;

	if (!fast_eval(t, tr, loss))
		return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
	cai_classification_scores(t->prep.eval_lab, t->prep.pred, t->prep.n_eval, t->prep.L, score, &mf1);
	return CAI_OK;
}

/* The best epoch: the serialized parameters and the predictions its metrics come from. */
static void
fast_snapshot(void *ctx)
{
	FastTrain  *t = ctx;

	memcpy(t->best, t->params, sizeof(float) * t->n_params);
	memcpy(t->prep.best_pred, t->prep.pred, sizeof(int32_t) * t->prep.n_eval);
}

/* ---------------------------------------------------------------------- */
/* The gradient check's probe (gradcheck.h)                       */
/* ---------------------------------------------------------------------- */

#define FAST_GRAD_ROWS 8		/* training rows of the checked batch */

typedef struct FastProbe
{
	FastTrain	t;
	size_t		n_rows;			/* the batch: training rows [0, n_rows) */
	float	   *work;			/* (n_params) parameters a step of rate 1 changes */
} FastProbe;

static void
fast_probe_free(void *ctx)
{
	FastProbe  *fp = ctx;

	fast_train_free(&fp->t);
	cai_free(fp->work);
	cai_free(fp);
}

/*
 * The mean loss of the batch from fast_sgd_step at rate 0 (its forward pass
 * and loss; it changes nothing); the gradient from fast_sgd_step at rate 1
 * on a copy of the parameters, plain SGD, so minus the change is the
 * gradient.
 */
static cai_status
fast_probe_loss(void *ctx, float *const *grad, double *loss, cai_error *err)
{
	FastProbe  *fp = ctx;
	FastTrain  *t = &fp->t;
	float	   *params = t->params;
	const size_t n_e = (size_t) (t->prep.V + t->prep.K) * (size_t) t->p.dim;
	const double scale = 1.0 / (double) fp->n_rows;
	double		sum = 0.0;

	if (grad != NULL)
	{
		memset(grad[0], 0, sizeof(float) * n_e);
		memset(grad[1], 0, sizeof(float) * (t->n_params - n_e));
	}
	for (size_t r = 0; r < fp->n_rows; r++)
	{
		const uint32_t *f = t->feat + t->feat_off[r];
		size_t		k = t->feat_off[r + 1] - t->feat_off[r];

		if (grad == NULL)
		{
			sum += fast_sgd_step(t, f, k, t->prep.rows.lab[r], 0.0f);
			continue;
		}
		memcpy(fp->work, params, sizeof(float) * t->n_params);
		t->params = fp->work;
		sum += fast_sgd_step(t, f, k, t->prep.rows.lab[r], 1.0f);
		t->params = params;
		for (size_t i = 0; i < t->n_params; i++)
		{
			float	   *g = i < n_e ? grad[0] + i : grad[1] + (i - n_e);

			*g += (float) (((double) params[i] - (double) fp->work[i]) * scale);
		}
	}
	*loss = sum * scale;
	return CAI_OK;
}

/* See textclf_internal.h: the training's features of the first training rows. */
cai_status
cai_textclf_fast_grad_probe(const cai_options *opts, int n_labels, const cai_textclf_data *train,
							cai_grad_probe *probe, cai_error *err)
{
	FastProbe  *fp = cai_calloc(1, sizeof(FastProbe));
	FastTrain  *t;
	cai_trainer tk;
	size_t		n_e;
	cai_status	st;

	memset(probe, 0, sizeof(*probe));
	if (fp == NULL)
		return NOMEM(err);
	t = &fp->t;
	fast_train_init(t);
	cai_trainer_init(&tk, NULL, NULL, 0.0);
	if ((st = fast_params_from_options(opts, NULL, &t->p, err)) != CAI_OK ||
		(st = fast_prepare(t, opts, n_labels, train, NULL, NULL, &tk, err)) != CAI_OK)
		goto fail;
	fp->n_rows = t->prep.rows.n_tr < FAST_GRAD_ROWS ? t->prep.rows.n_tr : FAST_GRAD_ROWS;
	/* the batch's features, one array (the probe names the embedding rows they touch) */
	t->feat_off = cai_calloc(fp->n_rows + 1, sizeof(size_t));
	t->feat = cai_malloc(sizeof(uint32_t) * (fp->n_rows * t->max_feat + 1));
	if (t->feat_off == NULL || t->feat == NULL)
	{
		st = NOMEM(err);
		goto fail;
	}
	for (size_t r = 0; r < fp->n_rows; r++)
		t->feat_off[r + 1] = t->feat_off[r] + fast_row_features(t, r, t->feat + t->feat_off[r], t->rowtypes, 0);
	n_e = (size_t) (t->prep.V + t->prep.K) * (size_t) t->p.dim;
	t->n_params = n_e + (size_t) n_labels * (size_t) t->p.dim;
	t->params = cai_malloc(sizeof(float) * t->n_params);
	fp->work = cai_malloc(sizeof(float) * t->n_params);
	t->ahead = fast_prefetch_ahead(t->p.dim);
	t->hidden = cai_malloc(sizeof(float) * (size_t) t->p.dim);
	t->grad = cai_malloc(sizeof(float) * (size_t) t->p.dim);
	t->probs = cai_malloc(sizeof(float) * (size_t) n_labels);
	if (t->params == NULL || fp->work == NULL || t->hidden == NULL || t->grad == NULL || t->probs == NULL)
	{
		st = NOMEM(err);
		goto fail;
	}
	/* a point where the softmax is not flat: every weight U(-0.5, 0.5) */
	cai_rng_seed(&t->rng, (uint64_t) cai_opt_int(opts, "seed"));
	for (size_t i = 0; i < t->n_params; i++)
		t->params[i] = cai_rng_uniform(&t->rng) - 0.5f;

	probe->n_tensors = 2;
	probe->name[0] = "fast.embedding";
	probe->data[0] = t->params;
	probe->numel[0] = n_e;
	probe->rows[0] = (const int32_t *) t->feat;
	probe->n_rows[0] = t->feat_off[fp->n_rows];
	probe->row_len[0] = t->p.dim;
	probe->name[1] = "fast.output.weight";
	probe->data[1] = t->params + n_e;
	probe->numel[1] = t->n_params - n_e;
	probe->loss = fast_probe_loss;
	probe->free = fast_probe_free;
	probe->ctx = fp;
	return CAI_OK;
fail:
	fast_probe_free(fp);
	return st;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_fast_train(const cai_options *opts, const char *const *label_names, int n_labels,
					   const cai_textclf_data *train, const cai_textclf_data *valid,
					   const cai_word_vectors *vec, json_object *prov,
					   cai_progress_fn progress, void *progress_ctx,
					   uint8_t **model, size_t *model_len, char **metrics_json, cai_error *err)
{
	FastTrain	t;
	cai_trainer tk;
	const cai_trainer_hooks hooks = {
		.ctx = &t, .begin_epoch = fast_begin_epoch, .train_epoch = fast_train_epoch,
		.evaluate = fast_evaluate, .snapshot = fast_snapshot,
	};
	int			epochs = (int) cai_opt_int(opts, "epochs");
	const double lr0 = cai_opt_float(opts, "learning_rate");
	const double weight_decay = cai_opt_float(opts, "weight_decay");
	const double dropout = cai_opt_float(opts, "dropout");
	const double frac = cai_opt_float(opts, "validation_fraction");
	const int64_t min_count = cai_opt_int(opts, "min_count");
	const int	patience = (int) cai_opt_int(opts, "patience");
	const uint64_t seed = (uint64_t) cai_opt_int(opts, "seed");
	const int	threads = (int) cai_opt_int(opts, "threads");
	size_t		R;
	size_t		max_feat = 0;
	double		seconds;
	uint64_t	fingerprint;
	json_object *metrics = NULL;
	char	   *meta = NULL;
	cai_status	st;

	fast_train_init(&t);
	cai_trainer_init(&tk, progress, progress_ctx, cai_opt_float(opts, "max_seconds"));
	t.lr0 = lr0;
	t.dropout = dropout;
	t.weight_decay = weight_decay;

	if ((st = fast_params_from_options(opts, vec, &t.p, err)) != CAI_OK)
		return st;
	if (epochs < 0 || !(lr0 > 0) || !(dropout >= 0 && dropout < 1) || !(frac >= 0 && frac < 1) || min_count < 1 ||
		!(weight_decay >= 0 && lr0 * weight_decay <= 0.5))
		return cai_error_set(err, CAI_ERR_INVALID,
							 "epochs, learning_rate, dropout, validation_fraction, min_count or weight_decay out of range "
							 "(learning_rate * weight_decay at most 0.5)");
	if ((st = cai_textclf_fast_fingerprint(&t.p, &fingerprint, err)) != CAI_OK)
		return st;

	/* the pool threads first, then their buffers (pool.h); no pool: one thread */
	if (threads > 1)
		cai_pool_start(&t.pool, threads);
	if ((st = fast_prepare(&t, opts, n_labels, train, valid, vec, &tk, err)) != CAI_OK)
		goto done;
	{
		cai_textclf_token_rule rule = fast_token_rule(&t.p);

		if ((st = cai_textclf_match_vectors(&t.prep, &rule, vec, FAST_EOS, &t.vm, err)) != CAI_OK)
			goto done;
	}


	/* parameters: E uniform(-1/D, 1/D), W zero (as fastText) */
	R = (size_t) t.prep.V + (size_t) t.prep.K;
	t.n_params = (R + (size_t) n_labels) * (size_t) t.p.dim;
	t.best = cai_malloc(sizeof(float) * t.n_params);
	t.ahead = fast_prefetch_ahead(t.p.dim);
	t.hidden = cai_malloc(sizeof(float) * (size_t) t.p.dim);
	t.grad = cai_malloc(sizeof(float) * (size_t) t.p.dim);
	t.probs = cai_malloc(sizeof(float) * (size_t) n_labels);
	t.order = cai_malloc(sizeof(int32_t) * t.prep.rows.n_tr);
	t.wordvec = cai_malloc(sizeof(float) * ((size_t) t.prep.V * (size_t) t.p.dim + 1));
	t.wordcnt = cai_malloc(sizeof(int32_t) * ((size_t) t.prep.V + 1));
	max_feat = t.max_feat;
	t.kept = cai_malloc(sizeof(uint32_t) * (max_feat > 0 ? max_feat : 1));
	t.rowfeat = cai_malloc(sizeof(uint32_t) * (max_feat > 0 ? max_feat : 1));
	if (t.best == NULL || t.hidden == NULL || t.grad == NULL || t.probs == NULL ||
		t.order == NULL || t.kept == NULL || t.rowfeat == NULL || t.wordvec == NULL || t.wordcnt == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	if ((st = fast_hot_select(&t, err)) != CAI_OK)
		goto done;
	t.params = cai_calloc_large(t.n_params + ((size_t) t.pool.n + 1) * t.n_hot * (size_t) t.p.dim, sizeof(float),
								&t.params_mapped);
	if (t.params == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	cai_rng_seed(&t.rng, seed);
	{
		float		a = 1.0f / (float) t.p.dim;

		for (size_t i = 0; i < R * (size_t) t.p.dim; i++)
			t.params[i] = (2.0f * cai_rng_uniform_inline(&t.rng) - 1.0f) * a;
	}

	/*
	 * Pretrained vectors replace the random rows of their words, unscaled,
	 * as fastText's -pretrainedVectors and NER training take them: a text's
	 * vector is the mean of its words', n-grams' and character n-grams' rows,
	 * so the near-zero random rows (1/D) shrink the words' signal but do
	 * not drown it, and the output weights start at zero, so the first steps
	 * fit W to the vectors before the rows themselves move.
	 */
	cai_textclf_copy_vectors(&t.vm, t.prep.V, vec, t.params);
	memcpy(t.best, t.params, sizeof(float) * t.n_params);
	for (size_t r = 0; r < t.prep.rows.n_tr; r++)
		t.order[r] = (int32_t) r;
	if (t.pool.n > 1 && (st = fast_shards_alloc(&t, max_feat, err)) != CAI_OK)
		goto done;

	/* automatic: 5 passes, more for small data (at least FAST_AUTO_UPDATES row updates, at most 50 passes) */
	if (epochs == 0)
		epochs = cai_textclf_auto_epochs(t.prep.rows.n_tr, FAST_AUTO_UPDATES, 5, 50);
	t.steps_total = (size_t) epochs * t.prep.rows.n_tr;
	if ((st = cai_textclf_run_epochs(&tk, &hooks, epochs, patience, &t.prep, t.best, t.n_params, label_names,
									 prov, seed, &seconds, &metrics, err)) != CAI_OK)
		goto done;
	if (!cai_textclf_put_vector_coverage(metrics, &t.vm))
	{
		st = NOMEM(err);
		goto done;
	}
	meta = fast_metadata(&t, opts, label_names, metrics, prov, fingerprint);
	if (meta == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	if ((st = fast_serialize(&t, meta, model, model_len, err)) != CAI_OK)
		goto done;
	st = cai_textclf_return_metrics(metrics, seconds, model, model_len, metrics_json, err);

done:
	json_object_put(metrics);
	cai_free(meta);
	fast_train_free(&t);
	return st;
}
