/*
 * vectors_train.c: word vectors trained from texts (include/cai/vectors.h,
 * cai_vectors_train): skip-gram or CBOW with negative sampling, words as
 * their own row plus the rows of their hashed character n-grams (fastText's
 * subword model), written as a vector set with the subword rows so a word
 * outside the vocabulary still gets a vector.
 *
 * Phases:
 *   1. count: tokenize (cai_tokenize, the texts cut into segments of at
 *      most VT_SEGMENT bytes at whitespace), normalize, count types;
 *   2. vocabulary: types with min_count occurrences, most frequent first
 *      (ties: first seen), each with its list of input rows (its own row,
 *      then V + the compact row of each n-gram bucket, buckets numbered in
 *      increasing order over the buckets some word uses), the token stream
 *      of word ids (a second tokenization) cut into pieces of at most
 *      max_tokens, the unigram^0.75 negative table and the keep
 *      probabilities of subsampling;
 *   3. epochs (trainer.h): the stream in chunks of VT_CHUNK tokens per
 *      shard, each chunk split over the pool's shards (pool.h) by token
 *      position, lock-free updates of the shared matrices (Hogwild, as
 *      fastText) when there is more than one; the caller reports progress
 *      and checks cancellation between chunks;
 *   4. output: a word's vector is the mean of its rows (fastText's
 *      getWordVector), the n-gram rows are stored as they are.
 *
 * Skip-gram computes the centre word's hidden vector once: every one of its
 * rows receives the same gradient, so after a context pair the mean moves
 * by that gradient times dup (sum of squared multiplicities / rows; 1 when
 * the rows are distinct), and the rows receive the sum of the pairs'
 * gradients after the window.  This is the arithmetic of fastText's
 * per-pair update, without recomputing the mean of ~30 rows per pair.
 *
 * Memory: everything is allocated before the pool runs; the exact need of
 * phase 2 and the writer is computed from the counts and refused against
 * memory_limit_mb before it is allocated, and phase 1 refuses to grow past
 * it.  cai_vectors_train_memory bounds the same arithmetic from the bytes.
 */
#include "cai/vectors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/tokenize.h"
#include "modelutil.h"
#include "pool.h"
#include "trainer.h"
#include "vectorize.h"

#define NOMEM(err) cai_error_set((err), CAI_ERR_NOMEM, "out of memory")

#define VT_SIGMOID_MAX 8.0f
#define VT_SIGMOID_SIZE 512
#define VT_LOG_SIZE 10000
#define VT_NEG_TABLE_MAX 10000000	/* fastText's NEGATIVE_TABLE_SIZE */
#define VT_NEG_PER_WORD 1000	/* table entries per word below the maximum */
#define VT_NEG_TRIES 16			/* draws for a negative that is not the target */
#define VT_CHUNK 131072			/* tokens per shard between progress checks */
#define VT_SEGMENT 16384		/* bytes of text tokenized at once */
#define VT_LOWER_BUF (5 * CAI_VEC_WORD_MAX)
#define VT_MAX_DIM 1024
#define VT_MAX_N 10
/* bytes cai_tokenize may hold for one segment (doubling buffer, one token per byte at most) */
#define VT_TOKENIZE_BYTES ((size_t) 3 * sizeof(cai_token) * (VT_SEGMENT + 16))
#define VT_SMALL_BYTES ((size_t) 256 * 1024)	/* structs, tables, metrics, the pool */

const cai_opt_def cai_vectors_option_defs[] = {
	{"model", CAI_OPT_STRING, "skipgram", 0, 0, "skipgram|cbow",
	"skipgram predicts each context word from the centre word; cbow the centre word from the mean of its context"},
	{"dimensions", CAI_OPT_INT, "100", 1, VT_MAX_DIM, NULL,
	"size of the word vectors"},
	{"window", CAI_OPT_INT, "5", 1, 100, NULL,
	"largest context window: each centre word draws its window size uniformly from 1 to this"},
	{"epochs", CAI_OPT_INT, "5", 1, 1000, NULL,
	"passes over the texts"},
	{"negative", CAI_OPT_INT, "5", 1, 100, NULL,
	"negative samples per target, drawn from the unigram distribution raised to 0.75"},
	{"min_count", CAI_OPT_INT, "5", 1, 1000000000, NULL,
	"minimum occurrences of a word to get a vector; rarer words are dropped from the texts"},
	{"minn", CAI_OPT_INT, "3", 0, VT_MAX_N, NULL,
	"shortest character n-gram of the subwords, in code points of \"<word>\""},
	{"maxn", CAI_OPT_INT, "6", 0, VT_MAX_N, NULL,
	"longest character n-gram of the subwords (0 = no subwords: words outside the vocabulary get no vector)"},
	{"buckets", CAI_OPT_INT, "2000000", 1, 2147483647.0, NULL,
	"hash buckets of the character n-grams; only buckets some word uses get a row"},
	{"learning_rate", CAI_OPT_FLOAT, "0.05", 1e-6, 10.0, NULL,
	"initial SGD step, decreasing linearly to 0 over the epochs"},
	{"sample", CAI_OPT_FLOAT, "0.0001", 0.0, 1.0, NULL,
	"subsampling threshold: a word of frequency f is kept with probability sqrt(t/f) + t/f (0 = keep all)"},
	{"seed", CAI_OPT_INT, "42", 0, 2147483647.0, NULL,
	"random seed: with threads 1 the same texts, options and seed give the same bytes"},
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL,
	"training threads; more than 1 updates the vectors lock-free (Hogwild, as fastText): faster, not reproducible"},
	{"max_seconds", CAI_OPT_FLOAT, "0", 0.0, 1e7, NULL,
	"stop training after this many seconds and keep the vectors so far (0 = no limit)"},
	{"lowercase", CAI_OPT_BOOL, "true", 0, 0, NULL,
	"lower-case words before counting (the set is then looked up lower-cased); false keeps case, as fastText"},
	{"max_tokens", CAI_OPT_INT, "1024", 2, 1000000, NULL,
	"longest piece of text in tokens (fastText's line limit); longer texts are trained in pieces"},
	{"memory_limit_mb", CAI_OPT_INT, "0", 0, 16777216.0, NULL,
	"refuse training that would allocate more than this many MB (0 = no limit; the SQL layer caps it)"},
	{"char_bigrams", CAI_OPT_BOOL, "false", 0, 0, NULL,
	"also train vectors for the bigrams of neighbouring tokens, keyed as NER's char_bigrams features "
	"(two CJK characters joined, else with a space), as pieces of their own"},
};
const int	cai_vectors_n_option_defs = sizeof(cai_vectors_option_defs) / sizeof(cai_vectors_option_defs[0]);

/* ---------------------------------------------------------------------- */
/* Options                                                                */
/* ---------------------------------------------------------------------- */

typedef struct VtParams
{
	bool		cbow;
	int			D;
	int			window;
	int			epochs;
	int			negative;
	int64_t		min_count;
	int			minn;			/* 0 with maxn 0: no subwords */
	int			maxn;
	uint32_t	buckets;
	double		lr;
	double		sample;
	uint64_t	seed;
	int			threads;
	double		max_seconds;
	bool		lowercase;
	size_t		max_tokens;
	size_t		limit;			/* bytes, 0 = none */
	bool		bigrams;		/* char_bigrams */
} VtParams;

static cai_status
vt_params(const cai_options *o, VtParams *p, cai_error *err)
{
	const char *model;

	if (o == NULL || o->defs != cai_vectors_option_defs)
		return cai_error_set(err, CAI_ERR_INVALID, "options were not parsed with the vector training table");
	model = cai_opt_string(o, "model");
	p->cbow = model != NULL && strcmp(model, "cbow") == 0;
	p->D = (int) cai_opt_int(o, "dimensions");
	p->window = (int) cai_opt_int(o, "window");
	p->epochs = (int) cai_opt_int(o, "epochs");
	p->negative = (int) cai_opt_int(o, "negative");
	p->min_count = cai_opt_int(o, "min_count");
	p->minn = (int) cai_opt_int(o, "minn");
	p->maxn = (int) cai_opt_int(o, "maxn");
	p->buckets = (uint32_t) cai_opt_int(o, "buckets");
	p->lr = cai_opt_float(o, "learning_rate");
	p->sample = cai_opt_float(o, "sample");
	p->seed = (uint64_t) cai_opt_int(o, "seed");
	p->threads = (int) cai_opt_int(o, "threads");
	p->max_seconds = cai_opt_float(o, "max_seconds");
	p->lowercase = cai_opt_bool(o, "lowercase");
	p->max_tokens = (size_t) cai_opt_int(o, "max_tokens");
	p->limit = (size_t) cai_opt_int(o, "memory_limit_mb") * 1024 * 1024;
	p->bigrams = cai_opt_bool(o, "char_bigrams");
	if (p->maxn == 0)
		p->minn = 0;
	else if (p->minn < 1 || p->minn > p->maxn)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "option \"minn\" must be between 1 and maxn (%d) when maxn is not 0, got %d",
							 p->maxn, p->minn);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* State                                                                  */
/* ---------------------------------------------------------------------- */

/* A distinct token form (phase 1). */
typedef struct VtType
{
	uint64_t	hash;
	size_t		off;			/* into the arena */
	uint32_t	len;
	int32_t		word;			/* vocabulary id, -1 below min_count */
	int64_t		count;
} VtType;

/* One shard's work buffers and counters. */
typedef struct VtShard
{
	cai_rng		rng;			/* window sizes, subsampling */
	size_t		negpos;			/* next entry of the negative table */
	float	   *hidden;			/* (D) */
	float	   *grad;			/* (D) */
	float	   *acc;			/* (D) skip-gram: the centre word's summed gradient */
	int32_t    *line;			/* (max_tokens) a piece after subsampling */
	uint32_t   *bow;			/* (2 window max_rows) CBOW: the context's rows */
	/* this chunk */
	double		loss;
	int64_t		pairs;
	int64_t		tokens;
} VtShard;

typedef struct VtTrain
{
	VtParams	p;
	size_t		mem;			/* bytes allocated now (memory_limit_mb) */
	/* phase 1: the types, insertion order, and their index */
	VtType	   *types;			/* (n_types) */
	size_t		n_types;
	size_t		cap_types;
	int32_t    *slot;			/* (mask + 1) type + 1, 0 empty */
	size_t		mask;
	char	   *arena;			/* (acap) the forms */
	size_t		nbytes;
	size_t		acap;
	int64_t		n_tokens;		/* tokens counted */
	/* phase 2: vocabulary and subwords */
	int32_t		V;
	int32_t		K;
	int32_t    *word_type;		/* (V) */
	size_t	   *row_off;		/* (V + 1) */
	uint32_t   *rows;			/* (n_rows) input rows of each word */
	size_t		n_rows;
	size_t		max_rows;		/* most rows of one word */
	float	   *dup;			/* (V) sum of squared multiplicities / rows */
	int32_t    *sub_ids;		/* (n_rows - V, K used) bucket of each subword row */
	float	   *keep;			/* (V) subsampling: keep probability */
	int32_t    *neg;			/* (n_neg) */
	size_t		n_neg;
	/* the token stream */
	int32_t    *stream;			/* (S) */
	size_t		S;
	size_t		S_cap;
	size_t	   *piece;			/* (n_pieces + 1) start of each piece */
	size_t		n_pieces;
	size_t		piece_cap;
	/* parameters: in (V + K, D) | out (V, D) */
	float	   *params;
	float	   *in;
	float	   *out;
	float		sig[VT_SIGMOID_SIZE + 1];
	float		logt[VT_LOG_SIZE + 1];
	/* threads */
	cai_pool	pool;
	VtShard    *shard;			/* (pool.n) */
	void	   *shard_mem;
	/* the current chunk */
	size_t		chunk_lo;
	size_t		chunk_hi;
	double		done_before;	/* tokens trained before the chunk */
	double		total;			/* epochs * S */
	double		ep_loss;
	int64_t		ep_pairs;
	double		train_start;
	double		train_seconds;
	double		last_loss;
} VtTrain;

static void
vt_free(VtTrain *t)
{
	cai_pool_stop(&t->pool);
	cai_free(t->types);
	cai_free(t->slot);
	cai_free(t->arena);
	cai_free(t->word_type);
	cai_free(t->row_off);
	cai_free(t->rows);
	cai_free(t->dup);
	cai_free(t->sub_ids);
	cai_free(t->keep);
	cai_free(t->neg);
	cai_free(t->stream);
	cai_free(t->piece);
	cai_free(t->params);
	cai_free(t->shard);
	cai_free(t->shard_mem);
}

/* Account for bytes about to be allocated: CAI_ERR_LIMIT past memory_limit_mb. */
static cai_status
vt_reserve(VtTrain *t, size_t bytes, cai_error *err)
{
	if (t->p.limit > 0 && (bytes > t->p.limit || t->mem > t->p.limit - bytes))
		return cai_error_set(err, CAI_ERR_LIMIT,
							 "training word vectors would need more than memory_limit_mb (%zu MB); "
							 "raise min_count, lower dimensions or train on fewer texts",
							 t->p.limit / (1024 * 1024));
	t->mem += bytes;
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Phase 1 and the stream: tokens and their forms                         */
/* ---------------------------------------------------------------------- */

/*
 * The end of the next segment of s[0..len) from 0: all of it when short,
 * else just after the last ASCII whitespace in the first VT_SEGMENT bytes,
 * else at a code point boundary (a token longer than that is no word anyway).
 */
static size_t
vt_segment(const char *s, size_t len)
{
	size_t		e;

	if (len <= VT_SEGMENT)
		return len;
	for (e = VT_SEGMENT; e > VT_SEGMENT / 2; e--)
		if (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\t' || s[e - 1] == '\r')
			return e;
	for (e = VT_SEGMENT; e > 1 && ((unsigned char) s[e] & 0xC0) == 0x80; e--)
		;
	return e;
}

/* Grow the type index to hold more types (rehash). */
static cai_status
vt_rehash(VtTrain *t, cai_error *err)
{
	size_t		ncap = (t->mask + 1) * 2;
	int32_t    *ns;
	cai_status	st;

	if (ncap > ((size_t) 1 << 31))
		return cai_error_set(err, CAI_ERR_LIMIT, "the texts have too many distinct words");
	if ((st = vt_reserve(t, ncap * sizeof(int32_t), err)) != CAI_OK)
		return st;
	if ((ns = cai_calloc(ncap, sizeof(int32_t))) == NULL)
		return NOMEM(err);
	for (size_t i = 0; i < t->n_types; i++)
	{
		size_t		j = (size_t) t->types[i].hash & (ncap - 1);

		while (ns[j] != 0)
			j = (j + 1) & (ncap - 1);
		ns[j] = (int32_t) i + 1;
	}
	cai_free(t->slot);
	t->mem -= (t->mask + 1) * sizeof(int32_t);
	t->slot = ns;
	t->mask = ncap - 1;
	return CAI_OK;
}

/* Grow a doubling array, accounting for old and new while both live. */
static cai_status
vt_grow(VtTrain *t, void **p, size_t elem, size_t *cap, size_t need, cai_error *err)
{
	size_t		ncap = *cap < 16 ? 16 : *cap;
	cai_status	st;

	while (ncap < need)
		ncap *= 2;
	if (ncap == *cap)
		return CAI_OK;
	if ((st = vt_reserve(t, ncap * elem, err)) != CAI_OK)
		return st;
	if (!cai_grow_array(p, elem, *cap, ncap))
		return NOMEM(err);
	t->mem -= *cap * elem;
	*cap = ncap;
	return CAI_OK;
}

/* The type of form f[0..len): its index, or a new one when add (else -1). */
static cai_status
vt_type(VtTrain *t, const char *f, size_t len, bool add, int64_t *out, cai_error *err)
{
	uint64_t	h = cai_hash_bytes(f, len, CAI_VEC_INDEX_SEED);
	size_t		j = (size_t) h & t->mask;
	cai_status	st;

	for (; t->slot[j] != 0; j = (j + 1) & t->mask)
	{
		VtType	   *ty = &t->types[t->slot[j] - 1];

		if (ty->hash == h && ty->len == len && memcmp(t->arena + ty->off, f, len) == 0)
		{
			*out = t->slot[j] - 1;
			return CAI_OK;
		}
	}
	*out = -1;
	if (!add)
		return CAI_OK;
	if (t->n_types >= INT32_MAX - 1)
		return cai_error_set(err, CAI_ERR_LIMIT, "the texts have too many distinct words");
	if ((st = vt_grow(t, (void **) &t->types, sizeof(VtType), &t->cap_types, t->n_types + 1, err)) != CAI_OK ||
		(st = vt_grow(t, (void **) &t->arena, 1, &t->acap, t->nbytes + len, err)) != CAI_OK)
		return st;
	memcpy(t->arena + t->nbytes, f, len);
	t->types[t->n_types] = (VtType) {h, t->nbytes, (uint32_t) len, -1, 0};
	t->nbytes += len;
	t->slot[j] = (int32_t) t->n_types + 1;
	*out = (int64_t) t->n_types++;
	if (2 * t->n_types > t->mask + 1)
		return vt_rehash(t, err);
	return CAI_OK;
}

/* Close the current piece (from piece[n_pieces] to S): kept when it has two tokens. */
static void
vt_close_piece(VtTrain *t)
{
	if (t->S - t->piece[t->n_pieces] >= 2)
		t->piece[++t->n_pieces] = t->S;
	else
		t->S = t->piece[t->n_pieces];
}

/*
 * Count form f[0..len) (first pass) or append its word id to the stream
 * (second), closing a piece at max_tokens.
 */
static cai_status
vt_form(VtTrain *t, const char *f, size_t len, bool second, cai_error *err)
{
	int64_t		ty;
	cai_status	st;

	if ((st = vt_type(t, f, len, !second, &ty, err)) != CAI_OK)
		return st;
	if (!second)
	{
		t->types[ty].count++;
		t->n_tokens++;
	}
	else if (ty >= 0 && t->types[ty].word >= 0 && t->S < t->S_cap)
	{
		t->stream[t->S++] = t->types[ty].word;
		if (t->S - t->piece[t->n_pieces] == t->p.max_tokens)
			vt_close_piece(t);
	}
	return CAI_OK;
}

/*
 * One pass over the texts: count the types (first), or append the word ids
 * of the tokens of kept words to the stream, in pieces (second).  With
 * char_bigrams each segment's bigrams of neighbouring tokens (two forms
 * apart from a skipped token are no bigram) follow its tokens as pieces of
 * their own, so that a bigram's context is bigrams.
 */
static cai_status
vt_scan(VtTrain *t, const char *const *texts, const size_t *lens, size_t n, bool second,
		cai_trainer *tr, cai_error *err)
{
	char		buf[VT_LOWER_BUF];
	char		key[2 * VT_LOWER_BUF + 1];
	char	   *bigrams = NULL;	/* a segment's bigram keys, NUL-separated */
	size_t		bcap = 0;
	cai_status	st = CAI_OK;

	for (size_t i = 0; i < n && st == CAI_OK; i++)
	{
		const char *s = texts[i];
		size_t		len = s != NULL ? lens[i] : 0;

		if ((i & 255) == 255 && (st = cai_trainer_poll(tr, 0.0, err)) != CAI_OK)
			break;
		while (len > 0 && st == CAI_OK)
		{
			size_t		seg = vt_segment(s, len);
			cai_token  *tok = NULL;
			size_t		nt = 0;
			size_t		nb = 0;	/* bytes of bigram keys */
			char		prev[VT_LOWER_BUF];
			size_t		pl = 0;	/* 0: no previous token */

			if ((st = cai_tokenize(s, seg, 0, &tok, &nt, err)) != CAI_OK)
				break;
			for (size_t k = 0; k < nt && st == CAI_OK; k++)
			{
				const char *f = s + tok[k].start;
				size_t		fl = (size_t) (tok[k].end - tok[k].start);

				if (tok[k].kind == CAI_TOK_INVALID || fl > CAI_VEC_WORD_MAX)
				{
					pl = 0;
					continue;
				}
				if (t->p.lowercase)
				{
					fl = cai_token_normalize(f, fl, false, buf, sizeof(buf));
					f = buf;
					if (fl == 0 || fl > CAI_VEC_WORD_MAX)
					{
						pl = 0;
						continue;
					}
				}
				st = vt_form(t, f, fl, second, err);
				if (t->p.bigrams)
				{
					size_t		kl = pl > 0 ? cai_bigram_key(prev, pl, f, fl, key, sizeof(key)) : 0;

					/* keys of at most CAI_VEC_WORD_MAX bytes, as words */
					if (st == CAI_OK && kl > 0 && kl <= CAI_VEC_WORD_MAX &&
						(st = vt_grow(t, (void **) &bigrams, 1, &bcap, nb + kl + 1, err)) == CAI_OK)
					{
						memcpy(bigrams + nb, key, kl);
						bigrams[nb + kl] = '\0';
						nb += kl + 1;
					}
					memcpy(prev, f, fl);
					pl = fl;
				}
			}
			cai_free(tok);
			if (nb > 0 && st == CAI_OK)
			{
				if (second)
					vt_close_piece(t);
				for (size_t at = 0; at < nb && st == CAI_OK; at += strlen(bigrams + at) + 1)
					st = vt_form(t, bigrams + at, strlen(bigrams + at), second, err);
				if (second)
					vt_close_piece(t);
			}
			s += seg;
			len -= seg;
		}
		if (second)
			vt_close_piece(t);
	}
	cai_free(bigrams);
	t->mem -= bcap;
	return st;
}

/* ---------------------------------------------------------------------- */
/* Phase 2: vocabulary, subwords, tables                                  */
/* ---------------------------------------------------------------------- */

typedef struct VtRank
{
	int64_t		count;
	int32_t		type;
} VtRank;

static int
vt_rank_cmp(const void *a, const void *b)
{
	const VtRank *x = a,
			   *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return (x->type > y->type) - (x->type < y->type);
}

static int
vt_u32_cmp(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a,
				y = *(const uint32_t *) b;

	return (x > y) - (x < y);
}

/*
 * The n-gram buckets of word w[0..len) into out (cap entries), one n at a
 * time as cai_vectors_lookup computes them; returns how many.
 */
static size_t
vt_word_buckets(const VtParams *p, const char *w, size_t len, uint32_t *out, size_t cap)
{
	uint64_t	h[CAI_VEC_WORD_MAX + 2];
	size_t		m = 0;

	for (int n = p->minn; n >= 1 && n <= p->maxn; n++)
	{
		size_t		nh = cai_char_ngram_hashes(w, len, n, n, h, CAI_VEC_WORD_MAX + 2);

		for (size_t i = 0; i < nh && m < cap; i++)
			out[m++] = (uint32_t) (h[i] % p->buckets);
	}
	return m;
}

/* Most rows a word can have: itself and a gram per code point and boundary per n. */
static size_t
vt_rows_cap(const VtParams *p)
{
	return 1 + (p->maxn > 0 ? (size_t) (p->maxn - p->minn + 1) * (CAI_VEC_WORD_MAX + 2) : 0);
}

/* Entries of the negative table for V words. */
static size_t
vt_neg_size(int64_t V)
{
	return V >= VT_NEG_TABLE_MAX / VT_NEG_PER_WORD ? VT_NEG_TABLE_MAX : (size_t) V * VT_NEG_PER_WORD;
}

/* Bytes of one shard's buffers (floats first, then ints). */
static size_t
vt_shard_bytes(const VtParams *p, size_t max_rows)
{
	return 3 * sizeof(float) * (size_t) p->D + sizeof(int32_t) * p->max_tokens +
		(p->cbow ? sizeof(uint32_t) * 2 * (size_t) p->window * max_rows : 0) + 64;
}

/*
 * Bytes phase 2, training and the writer allocate on top of phase 1, for V
 * words with n_rows rows in all (K of them subword rows), S stream tokens
 * in pieces, word bytes wbytes: the one formula the refusal and the
 * estimate share.
 */
static size_t
vt_phase2_bytes(const VtParams *p, double V, double K, double n_rows, double max_rows, double S,
				double pieces, double wbytes, int shards)
{
	double		D = p->D;
	double		idx = 4.0 * (4.0 * V + 64) + 4.0 * (4.0 * K + 64);	/* word and subword slots */
	double		b = 0;

	b += V * (sizeof(VtRank) + 4 + 8 + 4 + 4) + 8 + n_rows * 4 * 2 + max_rows * 4;	/* vocabulary, rows */
	b += (double) vt_neg_size((int64_t) V) * 4;
	b += S * 4 + (pieces + 2) * 8;
	b += (2 * V + K) * D * 4;	/* parameters */
	b += shards * ((double) vt_shard_bytes(p, (size_t) max_rows) + sizeof(VtShard));
	/* the writer: word pointers and lengths, its packed copy and the output bytes */
	b += V * 16;
	b += 2 * (wbytes + V + 64 + 4 * (V + 1) + V * D * 4 + 4 * (V + 1) + idx);
	b += K * D * 4 + K * 4 + 64 * 16 + 65536;
	b += VT_SMALL_BYTES;
	return b >= (double) SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t) b;
}

/* The vocabulary, each word's rows, the subword buckets and the tables. */
static cai_status
vt_vocabulary(VtTrain *t, cai_error *err)
{
	const VtParams *p = &t->p;
	VtRank	   *rank = NULL;
	uint32_t   *tmp = NULL;
	size_t		V = 0,
				n_rows = 0,
				max_rows = 1,
				S = 0,
				wbytes = 0;
	size_t		rows_cap = vt_rows_cap(p);
	uint32_t   *b = NULL;
	cai_status	st;

	for (size_t i = 0; i < t->n_types; i++)
		if (t->types[i].count >= p->min_count)
		{
			V++;
			S += (size_t) t->types[i].count;
			wbytes += t->types[i].len + 1;
		}
	if (V == 0)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "no word occurs min_count (%lld) times in the %zu tokens of the texts; "
							 "lower min_count or give more text", (long long) p->min_count, (size_t) t->n_tokens);
	if (V > (size_t) CAI_VEC_MAX_WORDS / 2)
		return cai_error_set(err, CAI_ERR_LIMIT, "the texts have too many distinct words");
	t->V = (int32_t) V;
	/* rows of every word: count first (bounded by the bytes: the grams of the word) */
	if ((st = vt_reserve(t, sizeof(uint32_t) * rows_cap + V * sizeof(VtRank), err)) != CAI_OK)
		return st;
	b = cai_malloc(sizeof(uint32_t) * rows_cap);
	rank = cai_malloc(V * sizeof(VtRank));
	if (b == NULL || rank == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	V = 0;
	for (size_t i = 0; i < t->n_types; i++)
		if (t->types[i].count >= p->min_count)
			rank[V++] = (VtRank) {t->types[i].count, (int32_t) i};
	qsort(rank, V, sizeof(VtRank), vt_rank_cmp);
	for (size_t w = 0; w < V; w++)
	{
		const VtType *ty = &t->types[rank[w].type];
		size_t		m = 1 + vt_word_buckets(p, t->arena + ty->off, ty->len, b, rows_cap - 1);

		n_rows += m;
		max_rows = m > max_rows ? m : max_rows;
	}
	/* the exact need from here on */
	{
		size_t		need = vt_phase2_bytes(p, (double) V, (double) (n_rows - V), (double) n_rows,
										   (double) max_rows, (double) S,
										   (double) (S / 2 + 1), (double) wbytes, p->threads);

		if ((st = vt_reserve(t, need, err)) != CAI_OK)
			goto done;
	}
	t->word_type = cai_malloc(V * sizeof(int32_t));
	t->row_off = cai_malloc((V + 1) * sizeof(size_t));
	t->rows = cai_malloc(n_rows * sizeof(uint32_t));
	t->dup = cai_malloc(V * sizeof(float));
	t->keep = cai_malloc(V * sizeof(float));
	tmp = cai_malloc((n_rows - V + 1) * sizeof(uint32_t));
	if (t->word_type == NULL || t->row_off == NULL || t->rows == NULL || t->dup == NULL ||
		t->keep == NULL || tmp == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	t->n_rows = n_rows;
	t->max_rows = max_rows;
	t->row_off[0] = 0;
	for (size_t w = 0; w < V; w++)
	{
		VtType	   *ty = &t->types[rank[w].type];
		size_t		o = t->row_off[w];
		size_t		m = vt_word_buckets(p, t->arena + ty->off, ty->len, t->rows + o + 1, rows_cap - 1);
		double		f = (double) ty->count / (double) t->n_tokens;

		ty->word = (int32_t) w;
		t->word_type[w] = rank[w].type;
		t->rows[o] = (uint32_t) w;
		t->row_off[w + 1] = o + 1 + m;
		t->keep[w] = p->sample > 0 ? (float) (sqrt(p->sample / f) + p->sample / f) : 2.0f;
		memcpy(tmp + (o - w), t->rows + o + 1, m * sizeof(uint32_t));
	}
	/* the buckets some word uses, increasing: subword row k is bucket sub_ids[k] */
	qsort(tmp, n_rows - V, sizeof(uint32_t), vt_u32_cmp);
	t->K = 0;
	for (size_t i = 0; i < n_rows - V; i++)
		if (i == 0 || tmp[i] != tmp[i - 1])
			tmp[t->K++] = tmp[i];
	t->sub_ids = (int32_t *) tmp;
	tmp = NULL;
	if ((uint64_t) V + (uint64_t) t->K >= INT32_MAX)
	{
		st = cai_error_set(err, CAI_ERR_LIMIT, "the texts have too many distinct words and n-grams");
		goto done;
	}
	for (size_t w = 0; w < V; w++)
	{
		size_t		o = t->row_off[w];
		size_t		m = t->row_off[w + 1] - o;
		double		sq = 0;

		for (size_t i = 1; i < m; i++)
		{
			uint32_t	bk = t->rows[o + i];
			size_t		lo = 0,
						hi = (size_t) t->K;

			while (lo < hi)
			{
				size_t		mid = (lo + hi) / 2;

				if ((uint32_t) t->sub_ids[mid] < bk)
					lo = mid + 1;
				else
					hi = mid;
			}
			t->rows[o + i] = (uint32_t) V + (uint32_t) lo;
		}
		/* multiplicities: the rows sorted (a copy) */
		memcpy(b, t->rows + o, m * sizeof(uint32_t));
		qsort(b, m, sizeof(uint32_t), vt_u32_cmp);
		for (size_t i = 0; i < m;)
		{
			size_t		j = i;

			while (j < m && b[j] == b[i])
				j++;
			sq += (double) (j - i) * (double) (j - i);
			i = j;
		}
		t->dup[w] = (float) (sq / (double) m);
	}

	/* negative table: word i c_i^0.75 / sum of them of the entries, shuffled */
	{
		size_t		T = vt_neg_size((int64_t) V);
		double		z = 0;
		size_t		k = 0;

		t->neg = cai_malloc(T * sizeof(int32_t));
		if (t->neg == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		for (size_t w = 0; w < V; w++)
			z += pow((double) rank[w].count, 0.75);
		for (size_t w = 0; w < V && k < T; w++)
		{
			double		c = pow((double) rank[w].count, 0.75);

			for (size_t j = 0; j < (size_t) (c * (double) T / z) && k < T; j++)
				t->neg[k++] = (int32_t) w;
		}
		if (k == 0)
			t->neg[k++] = 0;
		t->n_neg = k;
	}
	/* the stream: every token of a kept word, pieces of at least two tokens */
	t->S_cap = S;
	t->piece_cap = S / 2 + 2;
	t->stream = cai_malloc((S > 0 ? S : 1) * sizeof(int32_t));
	t->piece = cai_malloc(t->piece_cap * sizeof(size_t));
	if (t->stream == NULL || t->piece == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	t->piece[0] = 0;
	st = CAI_OK;
done:
	cai_free(b);
	cai_free(rank);
	cai_free(tmp);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Phase 3: the updates                                                   */
/* ---------------------------------------------------------------------- */

typedef float vt_v8 __attribute__((vector_size(32)));

static inline float
vt_dot(const float *a, const float *b, int D)
{
	vt_v8		s0 = {0},
				s1 = {0};
	int			j = 0;
	float		s;

	for (; j + 16 <= D; j += 16)
	{
		vt_v8		x0,
					y0,
					x1,
					y1;

		memcpy(&x0, a + j, 32);
		memcpy(&y0, b + j, 32);
		memcpy(&x1, a + j + 8, 32);
		memcpy(&y1, b + j + 8, 32);
		s0 += x0 * y0;
		s1 += x1 * y1;
	}
	for (; j + 8 <= D; j += 8)
	{
		vt_v8		x,
					y;

		memcpy(&x, a + j, 32);
		memcpy(&y, b + j, 32);
		s0 += x * y;
	}
	s0 += s1;
	s = ((s0[0] + s0[1]) + (s0[2] + s0[3])) + ((s0[4] + s0[5]) + (s0[6] + s0[7]));
	for (; j < D; j++)
		s += a[j] * b[j];
	return s;
}

/* y += a x */
static inline void
vt_axpy(float *y, float a, const float *x, int D)
{
	vt_v8		av = {a, a, a, a, a, a, a, a};
	int			j = 0;

	for (; j + 8 <= D; j += 8)
	{
		vt_v8		xv,
					yv;

		memcpy(&xv, x + j, 32);
		memcpy(&yv, y + j, 32);
		yv += av * xv;
		memcpy(y + j, &yv, 32);
	}
	for (; j < D; j++)
		y[j] += a * x[j];
}

/* y += x */
static inline void
vt_add(float *y, const float *x, int D)
{
	int			j = 0;

	for (; j + 8 <= D; j += 8)
	{
		vt_v8		xv,
					yv;

		memcpy(&xv, x + j, 32);
		memcpy(&yv, y + j, 32);
		yv += xv;
		memcpy(y + j, &yv, 32);
	}
	for (; j < D; j++)
		y[j] += x[j];
}

static inline float
vt_sigmoid(const VtTrain *t, float x)
{
	if (!(x >= -VT_SIGMOID_MAX))
		return x < -VT_SIGMOID_MAX ? 0.0f : x;	/* NaN stays NaN: the loss shows it */
	if (x > VT_SIGMOID_MAX)
		return 1.0f;
	return t->sig[(int) ((x + VT_SIGMOID_MAX) * (VT_SIGMOID_SIZE / VT_SIGMOID_MAX / 2))];
}

static inline float
vt_log(const VtTrain *t, float x)
{
	if (!(x <= 1.0f))
		return x > 1.0f ? 0.0f : x;
	return t->logt[(int) (x * VT_LOG_SIZE)];
}

/* One logistic step on output row o (fastText's binaryLogistic); returns the loss. */
static inline float
vt_logistic(const VtTrain *t, int32_t o, bool label, const float *hidden, float *grad, float lr)
{
	float	   *wo = t->out + (size_t) o * (size_t) t->p.D;
	float		s = vt_sigmoid(t, vt_dot(wo, hidden, t->p.D));
	float		alpha = lr * ((label ? 1.0f : 0.0f) - s);

	vt_axpy(grad, alpha, wo, t->p.D);
	vt_axpy(wo, alpha, hidden, t->p.D);
	return label ? -vt_log(t, s) : -vt_log(t, 1.0f - s);
}

/* Negative sampling for target: grad (zeroed here) receives the hidden vector's gradient. */
static inline float
vt_negative_sampling(const VtTrain *t, VtShard *sh, int32_t target, const float *hidden, float *grad, float lr)
{
	float		loss;

	memset(grad, 0, sizeof(float) * (size_t) t->p.D);
	loss = vt_logistic(t, target, true, hidden, grad, lr);
	for (int n = 0; n < t->p.negative; n++)
	{
		int32_t		neg = target;

		for (int k = 0; k < VT_NEG_TRIES && neg == target; k++)
		{
			neg = t->neg[sh->negpos];
			sh->negpos = sh->negpos + 1 == t->n_neg ? 0 : sh->negpos + 1;
		}
		if (neg != target)
			loss += vt_logistic(t, neg, false, hidden, grad, lr);
	}
	return loss;
}

/* hidden = mean of the input rows rows[0..m) */
static inline void
vt_mean(const VtTrain *t, const uint32_t *rows, size_t m, float *hidden)
{
	const int	D = t->p.D;

	memset(hidden, 0, sizeof(float) * (size_t) D);
	for (size_t i = 0; i < m; i++)
		vt_add(hidden, t->in + (size_t) rows[i] * (size_t) D, D);
	for (int j = 0; j < D; j++)
		hidden[j] *= 1.0f / (float) m;
}

/* Train one piece of the stream (a kernel: vectorize.h; the updates above are inlined into it). */
CAI_KERNEL static void
vt_piece(VtTrain *t, VtShard *sh, const int32_t *w, size_t L, int shards)
{
	const VtParams *p = &t->p;
	const int	D = p->D;
	size_t		n = 0;
	double		lr_scale = p->lr / t->total;

	for (size_t i = 0; i < L; i++)
	{
		float		k = t->keep[w[i]];

		if (k >= 1.0f || cai_rng_uniform(&sh->rng) < k)
			sh->line[n++] = w[i];
	}
	for (size_t i = 0; i < n; i++)
	{
		double		done = t->done_before + (double) (sh->tokens + (int64_t) (i * L / n)) * shards;
		float		lr = (float) (p->lr - done * lr_scale);
		int			b = (int) cai_rng_below(&sh->rng, (uint32_t) p->window) + 1;
		size_t		lo = i >= (size_t) b ? i - (size_t) b : 0;
		size_t		hi = i + (size_t) b < n ? i + (size_t) b : n - 1;

		if (lr < 0)
			lr = 0;
		if (!p->cbow)
		{
			int32_t		c = sh->line[i];
			const uint32_t *rows = t->rows + t->row_off[c];
			size_t		m = t->row_off[c + 1] - t->row_off[c];
			float		dup = t->dup[c];

			vt_mean(t, rows, m, sh->hidden);
			memset(sh->acc, 0, sizeof(float) * (size_t) D);
			for (size_t j = lo; j <= hi; j++)
			{
				if (j == i)
					continue;
				sh->loss += vt_negative_sampling(t, sh, sh->line[j], sh->hidden, sh->grad, lr);
				sh->pairs++;
				vt_add(sh->acc, sh->grad, D);
				vt_axpy(sh->hidden, dup, sh->grad, D);
			}
			for (size_t r = 0; r < m; r++)
				vt_add(t->in + (size_t) rows[r] * (size_t) D, sh->acc, D);
		}
		else
		{
			size_t		m = 0;

			for (size_t j = lo; j <= hi; j++)
			{
				int32_t		c = sh->line[j];
				size_t		o = t->row_off[c],
							e = t->row_off[c + 1];

				if (j == i)
					continue;
				memcpy(sh->bow + m, t->rows + o, (e - o) * sizeof(uint32_t));
				m += e - o;
			}
			if (m == 0)
				continue;
			vt_mean(t, sh->bow, m, sh->hidden);
			sh->loss += vt_negative_sampling(t, sh, sh->line[i], sh->hidden, sh->grad, lr);
			sh->pairs++;
			for (size_t r = 0; r < m; r++)
				vt_add(t->in + (size_t) sh->bow[r] * (size_t) D, sh->grad, D);
		}
	}
	sh->tokens += (int64_t) L;
}

/* First piece starting at or after token position pos. */
static size_t
vt_piece_at(const VtTrain *t, size_t pos)
{
	size_t		lo = 0,
				hi = t->n_pieces;

	while (lo < hi)
	{
		size_t		mid = (lo + hi) / 2;

		if (t->piece[mid] < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The pool's job: shard s trains the pieces starting in its share of the chunk. */
static cai_status
vt_shard_job(void *ctx, int s, cai_error *err)
{
	VtTrain    *t = ctx;
	VtShard    *sh = &t->shard[s];
	int			n = t->pool.n;
	size_t		span = t->chunk_hi - t->chunk_lo;
	size_t		a = vt_piece_at(t, t->chunk_lo + span * (size_t) s / (size_t) n);
	size_t		e = vt_piece_at(t, t->chunk_lo + span * (size_t) (s + 1) / (size_t) n);

	sh->loss = 0;
	sh->pairs = 0;
	sh->tokens = 0;
	for (size_t k = a; k < e; k++)
		vt_piece(t, sh, t->stream + t->piece[k], t->piece[k + 1] - t->piece[k], n);
	return CAI_OK;
}

/* The trainer's epoch: the stream in chunks, progress and cancellation between them. */
static cai_status
vt_train_epoch(void *ctx, cai_trainer *tr, int epoch, double *loss, double *rows, cai_error *err)
{
	VtTrain    *t = ctx;
	size_t		step = (size_t) VT_CHUNK * (size_t) t->pool.n;
	double		ep_tokens = 0;
	cai_status	st;

	t->ep_loss = 0;
	t->ep_pairs = 0;
	for (size_t lo = 0; lo < t->S; lo += step)
	{
		double		el;

		t->chunk_lo = lo;
		t->chunk_hi = t->S - lo > step ? lo + step : t->S;
		if ((st = cai_pool_run(&t->pool, vt_shard_job, t, err)) != CAI_OK)
			return st;
		for (int s = 0; s < t->pool.n; s++)
		{
			t->ep_loss += t->shard[s].loss;
			t->ep_pairs += t->shard[s].pairs;
			t->done_before += (double) t->shard[s].tokens;
			ep_tokens += (double) t->shard[s].tokens;
		}
		el = cai_now_seconds() - t->train_start;
		tr->p.rows_per_sec = el > 0 ? t->done_before / el : 0;
		tr->p.loss = t->ep_pairs > 0 ? t->ep_loss / (double) t->ep_pairs : 0;
		if (!isfinite(t->ep_loss))
			return cai_error_set(err, CAI_ERR_NUMERIC,
								 "training diverged in epoch %d (the loss is not finite); lower learning_rate", epoch);
		if ((st = cai_trainer_poll(tr, t->done_before / t->total, err)) != CAI_OK)
			return st;
		if (cai_trainer_out_of_time(tr))
			break;
	}
	*loss = t->ep_pairs > 0 ? t->ep_loss / (double) t->ep_pairs : 0;
	*rows = ep_tokens;
	t->last_loss = *loss;
	return CAI_OK;
}

/* No validation: every epoch is kept, its score is minus its loss. */
static cai_status
vt_evaluate(void *ctx, cai_trainer *tr, int epoch, double *score, double *loss, cai_error *err)
{
	VtTrain    *t = ctx;

	*score = -t->last_loss;
	*loss = NAN;
	return CAI_OK;
}

static void
vt_snapshot(void *ctx)
{
}

/* ---------------------------------------------------------------------- */
/* Entry points                                                           */
/* ---------------------------------------------------------------------- */

/* The parameters, the shards' buffers and the lookup tables (phase 2 reserved their bytes). */
static cai_status
vt_setup(VtTrain *t, cai_error *err)
{
	const VtParams *p = &t->p;
	const size_t D = (size_t) p->D;
	size_t		R = (size_t) t->V + (size_t) t->K;
	size_t		sb = vt_shard_bytes(p, t->max_rows);
	cai_rng		rng;
	char	   *m;

	cai_pool_start(&t->pool, p->threads);
	t->params = cai_malloc((R + (size_t) t->V) * D * sizeof(float));
	t->shard = cai_calloc((size_t) t->pool.n, sizeof(VtShard));
	t->shard_mem = cai_malloc(sb * (size_t) t->pool.n);
	if (t->params == NULL || t->shard == NULL || t->shard_mem == NULL)
		return NOMEM(err);
	t->in = t->params;
	t->out = t->params + R * D;
	/* in uniform(-1/D, 1/D), out zero (fastText) */
	cai_rng_seed(&rng, p->seed);
	for (size_t i = 0; i < R * D; i++)
		t->in[i] = (2.0f * cai_rng_uniform(&rng) - 1.0f) / (float) D;
	memset(t->out, 0, (size_t) t->V * D * sizeof(float));
	cai_rng_shuffle(&rng, t->neg, t->n_neg);
	m = t->shard_mem;
	for (int s = 0; s < t->pool.n; s++)
	{
		VtShard    *sh = &t->shard[s];
		char	   *q = m + sb * (size_t) s;

		cai_rng_seed(&sh->rng, p->seed * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t) s + 1);
		sh->negpos = t->n_neg * (size_t) s / (size_t) t->pool.n;
		sh->hidden = (float *) q;
		sh->grad = sh->hidden + D;
		sh->acc = sh->grad + D;
		sh->line = (int32_t *) (sh->acc + D);
		sh->bow = (uint32_t *) (sh->line + p->max_tokens);
	}
	for (int i = 0; i <= VT_SIGMOID_SIZE; i++)
	{
		double		x = (double) i * 2.0 * VT_SIGMOID_MAX / VT_SIGMOID_SIZE - VT_SIGMOID_MAX;

		t->sig[i] = (float) (1.0 / (1.0 + exp(-x)));
	}
	for (int i = 0; i <= VT_LOG_SIZE; i++)
		t->logt[i] = (float) log(((double) i + 1e-5) / VT_LOG_SIZE);
	return CAI_OK;
}

/* The vector set: word vectors (means of their rows, into out) and the subword rows. */
static cai_status
vt_write(VtTrain *t, uint8_t **bytes, size_t *len, cai_error *err)
{
	const size_t D = (size_t) t->p.D;
	const char **words = cai_malloc(sizeof(char *) * (size_t) t->V);
	size_t	   *lens = cai_malloc(sizeof(size_t) * (size_t) t->V);
	cai_vectors_data d;
	cai_status	st;

	if (words == NULL || lens == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (int32_t w = 0; w < t->V; w++)
	{
		const VtType *ty = &t->types[t->word_type[w]];
		size_t		o = t->row_off[w];

		words[w] = t->arena + ty->off;
		lens[w] = ty->len;
		vt_mean(t, t->rows + o, t->row_off[w + 1] - o, t->out + (size_t) w * D);
	}
	if (!cai_all_finite(t->out, (size_t) t->V * D) ||
		!cai_all_finite(t->in + (size_t) t->V * D, (size_t) t->K * D))
	{
		st = cai_error_set(err, CAI_ERR_NUMERIC, "training diverged (a vector is not finite); lower learning_rate");
		goto done;
	}
	memset(&d, 0, sizeof(d));
	d.n_words = t->V;
	d.dim = t->p.D;
	d.words = words;
	d.lens = lens;
	d.vectors = t->out;
	if (t->p.maxn > 0)
	{
		d.minn = t->p.minn;
		d.maxn = t->p.maxn;
		d.buckets = t->p.buckets;
		d.n_subword_rows = t->K;
		d.subword_ids = t->sub_ids;
		d.subword_vectors = t->in + (size_t) t->V * D;
	}
	d.source = t->p.cbow ? "cai_vectors_train cbow" : "cai_vectors_train skipgram";
	st = cai_vectors_write(&d, bytes, len, err);
done:
	cai_free(words);
	cai_free(lens);
	return st;
}

static char *
vt_metrics(const VtTrain *t, const cai_trainer *tr, size_t n)
{
	json_object *m = json_object_new_object();
	const char *s;
	char	   *out = NULL;

	if (m == NULL)
		return NULL;
	if (cai_trainer_put_metrics(tr, m, "texts", n, 0) &&
		cai_json_put(m, "model", json_object_new_string(t->p.cbow ? "cbow" : "skipgram")) &&
		cai_json_put(m, "words", json_object_new_int(t->V)) &&
		cai_json_put(m, "subword_rows", json_object_new_int(t->K)) &&
		cai_json_put(m, "tokens", json_object_new_int64((int64_t) t->S)) &&
		cai_json_put(m, "loss", json_object_new_double(t->last_loss)) &&
		cai_json_put(m, "tokens_per_sec",
					 json_object_new_double(t->train_seconds > 0 ? t->done_before / t->train_seconds : 0)) &&
		cai_json_put(m, "train_seconds", json_object_new_double(t->train_seconds)) &&
		cai_json_put(m, "seconds", json_object_new_double(cai_trainer_seconds(tr))) &&
		(s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN)) != NULL)
		out = cai_strndup(s, strlen(s));
	json_object_put(m);
	return out;
}

/* See vectors.h. */
cai_status
cai_vectors_train(const cai_options *opts, const char *const *texts, const size_t *lens, size_t n,
				  cai_progress_fn progress, void *progress_ctx, uint8_t **bytes, size_t *len,
				  char **metrics_json, cai_error *err)
{
	VtTrain    *t;
	cai_trainer tr;
	cai_trainer_config cfg = {0};
	cai_trainer_hooks hooks = {0};
	cai_status	st;

	if (bytes == NULL || len == NULL || (n > 0 && (texts == NULL || lens == NULL)))
		return cai_error_set(err, CAI_ERR_INVALID, "texts or output pointers are NULL");
	*bytes = NULL;
	*len = 0;
	if (metrics_json != NULL)
		*metrics_json = NULL;
	if ((t = cai_calloc(1, sizeof(VtTrain))) == NULL)
		return NOMEM(err);
	if ((st = vt_params(opts, &t->p, err)) != CAI_OK)
		goto done;
	t->mem = VT_SMALL_BYTES + VT_TOKENIZE_BYTES;
	cai_trainer_init(&tr, progress, progress_ctx, t->p.max_seconds);

	/* phase 1 */
	t->mask = 1023;
	if ((st = vt_reserve(t, (t->mask + 1) * sizeof(int32_t), err)) != CAI_OK)
		goto done;
	if ((t->slot = cai_calloc(t->mask + 1, sizeof(int32_t))) == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	if ((st = vt_scan(t, texts, lens, n, false, &tr, err)) != CAI_OK)
		goto done;
	/* phase 2 */
	if ((st = vt_vocabulary(t, err)) != CAI_OK ||
		(st = vt_scan(t, texts, lens, n, true, &tr, err)) != CAI_OK)
		goto done;
	if (t->n_pieces == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID,
						   "no text has two tokens of words occurring min_count (%lld) times; "
						   "lower min_count or give more text", (long long) t->p.min_count);
		goto done;
	}
	cai_pool_stop(&t->pool);
	if ((st = vt_setup(t, err)) != CAI_OK)
		goto done;

	/* phase 3 */
	t->total = (double) t->p.epochs * (double) t->S;
	t->train_start = cai_now_seconds();
	cfg.epochs = t->p.epochs;
	cfg.has_validation = false;
	cfg.time_check_after_epoch = true;
	hooks.ctx = t;
	hooks.train_epoch = vt_train_epoch;
	hooks.evaluate = vt_evaluate;
	hooks.snapshot = vt_snapshot;
	st = cai_trainer_run(&tr, &cfg, &hooks, err);
	t->train_seconds = cai_now_seconds() - t->train_start;
	cai_pool_stop(&t->pool);
	if (st != CAI_OK)
		goto done;

	/* phase 4 */
	if ((st = vt_write(t, bytes, len, err)) != CAI_OK)
		goto done;
	if (metrics_json != NULL && (*metrics_json = vt_metrics(t, &tr, n)) == NULL)
	{
		cai_free(*bytes);
		*bytes = NULL;
		*len = 0;
		st = NOMEM(err);
	}
done:
	vt_free(t);
	cai_free(t);
	return st;
}

/*
 * See vectors.h.  From B text bytes: at most B tokens and types, phase 1's
 * doubling arrays at most three times their content while they grow, V at
 * most B / min_count words whose bytes, and so whose n-grams, add up to at
 * most B / min_count, K at most the n-grams and buckets, S at most B.
 */
size_t
cai_vectors_train_memory(const cai_options *opts, const char *const *texts, const size_t *lens, size_t n)
{
	VtParams	p;
	double		B = 0,
				V,
				grams,
				K,
				phase1,
				max_rows;
	size_t		total;

	if (vt_params(opts, &p, NULL) != CAI_OK || (n > 0 && lens == NULL))
		return 0;
	for (size_t i = 0; i < n; i++)
		B += texts != NULL && texts[i] != NULL ? (double) lens[i] : 0;
	/* char_bigrams: a key per token of at most two tokens' bytes and a space, besides the tokens */
	if (p.bigrams)
		B *= 4;
	/* types: entries and arena (lower-casing may grow a form by half) and their index */
	phase1 = 3.0 * (sizeof(VtType) * (B + 16)) + 3.0 * (1.5 * B + 16) + 3.0 * 4.0 * (4.0 * B + 1024);
	V = floor(B / (double) p.min_count) + 1;
	grams = p.maxn > 0 ? (double) (p.maxn - p.minn + 1) * (B / (double) p.min_count + 2.0 * V) : 0;
	K = grams < (double) p.buckets ? grams : (double) p.buckets;
	max_rows = (double) vt_rows_cap(&p);
	total = vt_phase2_bytes(&p, V, K, V + grams, max_rows, B, B / 2 + 1, 1.5 * B + V, p.threads);
	phase1 += VT_SMALL_BYTES + VT_TOKENIZE_BYTES + sizeof(uint32_t) * max_rows + V * sizeof(VtRank);
	if (phase1 + (double) total >= (double) SIZE_MAX / 2)
		return SIZE_MAX / 2;
	return total + (size_t) phase1;
}
