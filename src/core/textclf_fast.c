/*
 * textclf_fast.c: the "fast" text classification architecture, inference:
 * cai_textclf_fast_predict, _free and _load.  Training and serialization
 * are in textclf_fast_train.c; the two share textclf_fast_internal.h
 * (features, loaded model, vector kernels).
 *
 * The fast architecture (fastText's supervised model, Joulin et al. 2016):
 *
 *   features  every token of cai_tokenize(), normalized by
 *             cai_token_normalize(), contributes
 *               - its vocabulary row, when the word occurred at least
 *                 min_count times in the training rows;
 *               - one hashed row per character n-gram (minn..maxn code
 *                 points of "<word>"), so unseen and misspelled words still
 *                 have features;
 *               - one hashed row per word n-gram (2..word_ngrams) ending at
 *                 the token.
 *             Hashed features land in `buckets` buckets.  Only the buckets
 *             that occur in the training rows get a row ("bucket rows"); a
 *             bucket never seen in training contributes nothing.
 *   model     h = mean of the feature rows of E (V + K, D);
 *             p = softmax(W h), W (L, D).  As in fastText there is no
 *             bias: every text ends with an end-of-text pseudo-token
 *             (a word of its own and the last word n-grams), which does
 *             that job and measurably beats a bias when the class balance
 *             of the training rows differs from the texts classified.
 *   training  per-example SGD with a linearly decaying learning rate
 *             (fastText's), optional feature dropout, seeded: with one
 *             thread the same data, options and seed give a bit-identical
 *             model; more threads update lock-free (textclf_fast_train.c),
 *             which is not reproducible bit for bit.
 *             The epoch with the best validation accuracy is kept.
 *
 * Model tensors (shapes in rows of the embedding):
 *   fast.vocab.bytes    U8  (nbytes)   vocabulary words, each NUL-terminated
 *   fast.vocab.offsets  I32 (V + 1)    word i is bytes[offsets[i] .. offsets[i+1] - 1)
 *   fast.buckets        I32 (K)        bucket of each bucket row, increasing
 *   fast.embedding      F32 (V + K, D) vocabulary rows, then bucket rows
 *   fast.output.weight  F32 (L, D)
 * and, so that a load builds nothing and copies nothing (the loader uses
 * every tensor in place; models written before these existed still load,
 * with the tables and word vectors built privately at load):
 *   fast.vocab.slots    I32 (cap)      format.h cai_strindex slots of the vocabulary
 *   fast.buckets.slots  I32 (cap)      cai_intindex slots of fast.buckets
 *   fast.buckets.rank   I32 (ceil(buckets / 64), 3)  the bucket -> row map the
 *                                      loader uses when present (textclf_internal.h
 *                                      cai_bucket_rank_find; since 0.2.0)
 *   fast.word_vectors   F32 (V, D)     word row + its character n-gram rows
 *   fast.word_counts    I32 (V)        rows summed into each word vector
 * A tensor whose first dimension would be 0 is omitted (the format has no
 * empty tensors); the counts in the metadata say which to expect.
 */
#include "textclf_fast_internal.h"

#include <inttypes.h>
#include <stdio.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <json-c/json.h>

#include "modelutil.h"

/* See fast_prefetch_row. */
bool		cai_fast_have_prefetchw;

#if defined(__x86_64__) || defined(__i386__)
__attribute__((constructor))
static void
fast_prefetch_init(void)
{
	unsigned int a,
				b,
				c,
				d;

	cai_fast_have_prefetchw = __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & bit_PRFCHW) != 0;
}
#endif

/* ---------------------------------------------------------------------- */
/* Inference                                                              */
/* ---------------------------------------------------------------------- */

/*
 * The feature rows of a text are gathered (and prefetched) before they are
 * summed, so that the reads of rows scattered over the embedding overlap
 * instead of each waiting for the last; the sum is taken in the order the
 * features come, as it would be row by row.
 */
#define FAST_PREDICT_ROWS		256

typedef struct FastRows
{
	const float *row[FAST_PREDICT_ROWS];
	int			n;
	int			dim;
	float	   *h;				/* (dim) the sum */
} FastRows;

static inline void
fast_rows_flush(FastRows *fr)
{
	for (int i = 0; i < fr->n; i++)
		vec_add(fr->h, fr->row[i], fr->dim);
	fr->n = 0;
}

static inline void
fast_rows_push(FastRows *fr, const float *row)
{
	if (fr->n == FAST_PREDICT_ROWS)
		fast_rows_flush(fr);
	fast_prefetch_row(row, fr->dim, false);
	fr->row[fr->n++] = row;
}

/*
 * cai_textclf_fast_predict's body: a kernel (vectorize.h), static since
 * clang 14 does not give a multiversioned global function its own name.
 */
CAI_KERNEL static cai_status
fast_predict(const cai_textclf_fast *fm, int n_labels, const char *text, size_t len,
			 float *probs, cai_error *err)
{
	const FastParams *fp = &fm->p;
	const int	D = fp->dim;
	const int32_t V = fm->n_vocab;
	float		h[TEXTCLF_MAX_DIM];
	uint64_t	hist[FAST_MAX_NGRAMS] = {0};	/* word hashes of the last tokens */
	uint64_t	cg[FAST_CHAR_NGRAMS_MAX];
	char		norm[FAST_NORM_MAX];
	FastRows	fr;
	cai_token  *toks;
	size_t		n_toks;
	int64_t		nf = 0;
	cai_status	st;

	st = cai_textclf_tokenize(text, len, fp->max_tokens, FAST_BYTES_PER_TOKEN, &toks, &n_toks, err);
	if (st != CAI_OK)
		return st;
	memset(h, 0, sizeof(float) * (size_t) D);
	fr.n = 0;
	fr.dim = D;
	fr.h = h;
	for (size_t i = 0; i < n_toks + (size_t) fp->eos; i++)
	{
		size_t		nl = fast_token_norm(text, toks, i, n_toks, norm);
		uint64_t	wh = fast_word_hash(norm, nl);
		uint32_t	nb[FAST_MAX_NGRAMS + 1];	/* buckets of the word n-grams ending here */
		int			have = 0;
		int32_t		id;

		/* shift the history, newest last; the n-grams' lookups start now */
		if (fp->word_ngrams > 1)
		{
			have = i + 1 < (size_t) fp->word_ngrams ? (int) i + 1 : fp->word_ngrams;
			fast_hist_push(hist, wh);
			for (int n = 2; n <= have; n++)
			{
				nb[n] = fast_ngram_bucket(hist + FAST_MAX_NGRAMS - n, n, fp->buckets);
				fast_bucket_prefetch(fm, nb[n]);
			}
		}
		id = fast_vocab_find(fm, norm, nl, wh);
		if (id >= 0)
		{
			/* the word's row and its character n-gram rows, summed before */
			fast_rows_push(&fr, fm->wordvec + (size_t) id * D);
			nf += fm->word_cnt[id];
		}
		else
		{
			int			nc = fast_type_char_ngrams(fp, norm, nl, cg);
			uint32_t	cb[FAST_CHAR_NGRAMS_MAX];

			for (int j = 0; j < nc; j++)
			{
				cb[j] = cai_textclf_char_bucket(cg[j], fp->buckets);
				fast_bucket_prefetch(fm, cb[j]);
			}
			for (int j = 0; j < nc; j++)
			{
				int32_t		r = fast_bucket_find(fm, cb[j]);

				if (r >= 0)
				{
					fast_rows_push(&fr, fm->emb + ((size_t) V + (size_t) r) * D);
					nf++;
				}
			}
		}
		for (int n = 2; n <= have; n++)
		{
			int32_t		r = fast_bucket_find(fm, nb[n]);

			if (r >= 0)
			{
				fast_rows_push(&fr, fm->emb + ((size_t) V + (size_t) r) * D);
				nf++;
			}
		}
	}
	cai_free(toks);
	fast_rows_flush(&fr);
	if (nf > 0)
	{
		float		inv = 1.0f / (float) nf;

		for (int d = 0; d < D; d++)
			h[d] *= inv;
	}
	fast_output_forward(fm->out_w, h, n_labels, D, probs);
	softmax_inplace(probs, n_labels);
	return CAI_OK;
}

/* See textclf_internal.h. */
bool
cai_textclf_fast_known_word(const cai_textclf_fast *fm, const char *word, size_t len)
{
	char		norm[FAST_NORM_MAX];
	size_t		nl = cai_token_normalize(word, len, FAST_FOLD_DIGITS, norm, FAST_NORM_MAX);

	return fast_vocab_find(fm, norm, nl, fast_word_hash(norm, nl)) >= 0;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_fast_predict(const cai_textclf_fast *fm, int n_labels, const char *text, size_t len,
						 float *probs, cai_error *err)
{
	return fast_predict(fm, n_labels, text, len, probs, err);
}

void
cai_textclf_fast_free(cai_textclf_fast *fm)
{
	if (fm == NULL)
		return;
	cai_free(fm->own_vocab_slot);
	cai_free(fm->own_bucket_slot);
	cai_free(fm->own_wordvec);
	cai_free(fm->own_word_cnt);
	cai_free(fm);
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

/*
 * Word vectors: each vocabulary word's row plus its character n-gram rows
 * (in the order training's evaluation adds them), so that a known word
 * costs one row at inference instead of a dozen.  Needs fm->emb and both
 * indexes.
 */
CAI_KERNEL static void
fast_compute_word_vectors(const cai_textclf_fast *fm, float *wordvec, int32_t *word_cnt)
{
	const int	D = fm->p.dim;
	const int32_t V = fm->n_vocab;

	for (int32_t id = 0; id < V; id++)
	{
		const char *w = fm->vocab.bytes + fm->vocab.off[id];
		size_t		wl = (size_t) (fm->vocab.off[id + 1] - fm->vocab.off[id] - 1);
		uint64_t	cg[FAST_CHAR_NGRAMS_MAX];
		uint32_t	cb[FAST_CHAR_NGRAMS_MAX];
		int			nc = fast_type_char_ngrams(&fm->p, w, wl, cg);
		float	   *wv = wordvec + (size_t) id * D;
		int32_t		cnt = 1;
		FastRows	fr = {.n = 0, .dim = D, .h = wv};

		/* as fast_predict: bucket lookups and rows read ahead, summed in order */
		for (int j = 0; j < nc; j++)
		{
			cb[j] = cai_textclf_char_bucket(cg[j], fm->p.buckets);
			fast_bucket_prefetch(fm, cb[j]);
		}
		memcpy(wv, fm->emb + (size_t) id * D, sizeof(float) * (size_t) D);
		for (int j = 0; j < nc; j++)
		{
			int32_t		r = fast_bucket_find(fm, cb[j]);

			if (r >= 0)
			{
				fast_rows_push(&fr, fm->emb + ((size_t) V + (size_t) r) * D);
				cnt++;
			}
		}
		fast_rows_flush(&fr);
		word_cnt[id] = cnt;
	}
}

void
cai_textclf_fast_compute_word_vectors(const cai_textclf_fast *fm, float *wordvec,
									  int32_t *word_cnt)
{
	fast_compute_word_vectors(fm, wordvec, word_cnt);
}

/* Fill fm from mf and its metadata meta; *mem grows by what is built privately. */
static cai_status
fast_load(cai_textclf_fast *fm, json_object *meta, const cai_model_file *mf, int64_t L,
		  size_t *mem, cai_error *err)
{
	json_object *fj;
	int64_t		v;
	int64_t		V,
				K,
				rows;
	const cai_tensor *t;
	uint64_t	fp_want,
				fp_have;
	json_object *fpj;
	cai_status	st;

	if (!json_object_object_get_ex(meta, "fast", &fj) || !json_object_is_type(fj, json_type_object))
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks object \"fast\"");
	if ((st = cai_json_get_int(fj, "fast", "feature_version", FAST_FEATURE_VERSION, FAST_FEATURE_VERSION, &v, NULL)) != CAI_OK)
		return cai_error_set(err, CAI_ERR_VERSION,
							 "model uses text features of another version (this build computes version %d)",
							 FAST_FEATURE_VERSION);
	if ((st = cai_json_get_int(fj, "fast", "dimensions", 1, TEXTCLF_MAX_DIM, &v, err)) != CAI_OK)
		return st;
	fm->p.dim = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "word_ngrams", 1, FAST_MAX_NGRAMS, &v, err)) != CAI_OK)
		return st;
	fm->p.word_ngrams = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "minn", 0, 100, &v, err)) != CAI_OK)
		return st;
	fm->p.minn = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "maxn", 0, 100, &v, err)) != CAI_OK)
		return st;
	fm->p.maxn = (int) v;
	if ((fm->p.minn == 0) != (fm->p.maxn == 0) || fm->p.minn > fm->p.maxn)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata has inconsistent minn %d and maxn %d",
							 fm->p.minn, fm->p.maxn);
	if ((st = cai_json_get_int(fj, "fast", "max_tokens", 1, INT32_MAX / FAST_BYTES_PER_TOKEN, &v, err)) != CAI_OK)
		return st;
	fm->p.max_tokens = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "buckets", 1, TEXTCLF_MAX_BUCKETS, &v, err)) != CAI_OK)
		return st;
	fm->p.buckets = (uint32_t) v;
	if ((st = cai_json_get_int(fj, "fast", "eos", 0, 1, &v, err)) != CAI_OK)
		return st;
	fm->p.eos = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "vocab_size", 0, INT32_MAX - 1, &V, err)) != CAI_OK)
		return st;
	if ((st = cai_json_get_int(fj, "fast", "bucket_rows", 0, fm->p.buckets, &K, err)) != CAI_OK)
		return st;
	if (V + K > INT32_MAX)
		return cai_error_set(err, CAI_ERR_FORMAT, "model has too many embedding rows");
	fm->n_vocab = (int32_t) V;
	fm->n_bucket_rows = (int32_t) K;
	rows = V + K;

	/* the features this build computes must be those the model was trained on */
	if (!json_object_object_get_ex(fj, "feature_fingerprint", &fpj) ||
		!json_object_is_type(fpj, json_type_string) ||
		sscanf(json_object_get_string(fpj), "%" SCNx64, &fp_want) != 1)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks \"fast.feature_fingerprint\"");
	if ((st = cai_textclf_fast_fingerprint(&fm->p, &fp_have, err)) != CAI_OK)
		return st;
	if (fp_have != fp_want)
		return cai_error_set(err, CAI_ERR_VERSION,
							 "model was trained with a tokenizer or feature hashing that differs from this build's");

	/* the lookup tables */
	if ((st = cai_textclf_load_vocab(mf, "fast", V, FAST_SEED_WORD, &fm->vocab, &fm->own_vocab_slot, mem,
									 err)) != CAI_OK ||
		(st = cai_textclf_load_buckets(mf, "fast", K, fm->p.buckets, &fm->bucket, &fm->own_bucket_slot, mem,
									   err)) != CAI_OK ||
		(st = cai_textclf_load_bucket_rank(mf, "fast", K, fm->p.buckets, fm->bucket.keys, &fm->bucket_rank,
										   err)) != CAI_OK)
		return st;

	/* parameters */
	if (rows > 0)
	{
		int64_t		shape_e[2] = {rows, fm->p.dim};

		if ((st = cai_model_file_expect(mf, "fast.embedding", CAI_F32, 2, shape_e, &t, err)) != CAI_OK)
			return st;
		if (!mf->trusted && !cai_all_finite(t->data, (size_t) (rows * fm->p.dim)))
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"fast.embedding\" holds a non-finite value");
		fm->emb = t->data;
	}
	else if (cai_model_file_tensor(mf, "fast.embedding") != NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"fast.embedding\" but no rows");
	{
		int64_t		shape_w[2] = {L, fm->p.dim};

		if ((st = cai_model_file_expect(mf, "fast.output.weight", CAI_F32, 2, shape_w, &t, err)) != CAI_OK)
			return st;
		if (!mf->trusted && !cai_all_finite(t->data, (size_t) (L * fm->p.dim)))
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"fast.output.weight\" holds a non-finite value");
		fm->out_w = t->data;
	}

	/*
	 * Word vectors: serialized by training (fast.word_vectors and
	 * fast.word_counts); an untrusted model's must equal what this build
	 * computes from the embedding, bit for bit.  Older models get them
	 * computed here, privately.
	 */
	{
		const cai_tensor *tw = cai_model_file_tensor(mf, "fast.word_vectors");
		const cai_tensor *tc = cai_model_file_tensor(mf, "fast.word_counts");
		const size_t D = (size_t) fm->p.dim;

		if (V == 0)
		{
			if (tw != NULL || tc != NULL)
				return cai_error_set(err, CAI_ERR_FORMAT, "model has word vectors but vocab_size 0");
		}
		else if (tw != NULL || tc != NULL)
		{
			int64_t		shape_v[2] = {V, fm->p.dim};

			if ((st = cai_model_file_expect(mf, "fast.word_vectors", CAI_F32, 2, shape_v, &tw, err)) != CAI_OK ||
				(st = cai_model_file_expect(mf, "fast.word_counts", CAI_I32, 1, shape_v, &tc, err)) != CAI_OK)
				return st;
			fm->wordvec = tw->data;
			fm->word_cnt = tc->data;
			if (!mf->trusted)
			{
				float	   *wv = cai_malloc(sizeof(float) * (size_t) V * D);
				int32_t    *wc = cai_malloc(sizeof(int32_t) * (size_t) V);
				bool		same;

				if (wv == NULL || wc == NULL)
				{
					cai_free(wv);
					cai_free(wc);
					return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
				}
				cai_textclf_fast_compute_word_vectors(fm, wv, wc);
				same = memcmp(wv, fm->wordvec, sizeof(float) * (size_t) V * D) == 0 &&
					memcmp(wc, fm->word_cnt, sizeof(int32_t) * (size_t) V) == 0;
				cai_free(wv);
				cai_free(wc);
				if (!same)
					return cai_error_set(err, CAI_ERR_FORMAT,
										 "tensor \"fast.word_vectors\" does not match the embedding");
			}
		}
		else
		{
			fm->own_wordvec = cai_malloc(sizeof(float) * (size_t) V * D);
			fm->own_word_cnt = cai_malloc(sizeof(int32_t) * (size_t) V);
			if (fm->own_wordvec == NULL || fm->own_word_cnt == NULL)
				return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
			*mem += (sizeof(float) * D + sizeof(int32_t)) * (size_t) V;
			cai_textclf_fast_compute_word_vectors(fm, fm->own_wordvec, fm->own_word_cnt);
			fm->wordvec = fm->own_wordvec;
			fm->word_cnt = fm->own_word_cnt;
		}
	}
	return CAI_OK;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_fast_load(const cai_model_file *mf, json_object *meta, int n_labels,
					  cai_textclf_fast **out, size_t *mem_out, cai_error *err)
{
	cai_textclf_fast *fm;
	size_t		mem = sizeof(cai_textclf_fast);
	cai_status	st;

	*out = NULL;
	fm = cai_calloc(1, sizeof(cai_textclf_fast));
	if (fm == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
	if ((st = fast_load(fm, meta, mf, n_labels, &mem, err)) != CAI_OK)
	{
		cai_textclf_fast_free(fm);
		return st;
	}
	*out = fm;
	*mem_out = mem;
	return CAI_OK;
}
