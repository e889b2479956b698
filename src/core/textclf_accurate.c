/*
 * textclf_accurate.c: the "accurate" text classification architecture,
 * inference: the network's inference, the loaded model, cai_textclf_accurate_predict, _predict_batch
 * (texts of similar length through one LSTM pass, see "Batched inference"), _free and _load.  Training,
 * serialization and the ensemble's fast model are in
 * textclf_accurate_train.c; the two share textclf_accurate_internal.h.
 *
 *   token     every token of cai_tokenize() (at most max_tokens), normalized
 *             by cai_token_normalize(), is a bag of embedding rows: its
 *             vocabulary row (words seen min_count times in the training
 *             rows; any other word uses the UNK row), then one hashed row
 *             per character n-gram (minn..maxn code points of "<word>") seen
 *             in the training rows.  x_t = mean of the bag (D).  Unseen and
 *             misspelled words still get a vector from their n-grams.
 *   encoder   a bidirectional LSTM (lstm.h) over x_1..x_T, H units per
 *             direction: h_t (2H).
 *   pooling   f = [max_t h_t, mean_t h_t] (4H); dropout while training.
 *   output    p = softmax(W f + b), W (L, 4H).
 *   training  mini-batches of rows of similar length (so padding costs
 *             little), Adam with lazy (row-sparse) updates of the embedding
 *             table, gradient clipping at norm 5, a learning rate decaying
 *             linearly to a tenth.  While training, the vocabulary row of a
 *             token is replaced by the UNK row with probability word_dropout
 *             (dropout / 2), which teaches the n-gram rows to stand in for
 *             words never seen.  The epoch with the best validation accuracy
 *             is kept; patience stops early.  One BLAS thread and the same
 *             seed give a bit-identical model.
 *
 * Ensemble: the accurate model also trains a fast model (textclf_fast.c, its
 * own defaults, the same training rows and seed) and stores it whole in the
 * tensor accurate.fast_model; a prediction is the mean of the two models'
 * probabilities.  metrics reports the accuracy of each alone too
 * (accurate_only_accuracy, fast_only_accuracy).
 *
 * Validation predictions are computed by the inference code itself (one
 * text at a time), so a loaded model reproduces the training-time metrics.
 *
 * Defaults of the shared options when the user does not set them (the
 * option table's defaults belong to the fast architecture):
 *   dimensions 64 (embedding size D and LSTM units per direction H),
 *   learning_rate 0.003 (Adam), batch_size 32, dropout 0.5,
 *   epochs automatic: enough passes for about 250000 row updates, 4 to 30.
 *
 * Model tensors:
 *   accurate.vocab.bytes     U8  (nbytes)       vocabulary words, NUL-terminated
 *   accurate.vocab.offsets   I32 (V + 1)
 *   accurate.buckets         I32 (K)            bucket of each bucket row, increasing
 *   accurate.embedding       F32 (V + 1 + K, D) words, UNK, bucket rows
 *   accurate.lstm.{fw,bw}.w_ih  F32 (4H, D)
 *   accurate.lstm.{fw,bw}.w_hh  F32 (4H, H)
 *   accurate.lstm.{fw,bw}.b     F32 (4H)
 *   accurate.output.weight   F32 (L, 4H)
 *   accurate.output.bias     F32 (L)
 *   accurate.fast_model      U8  (nbytes)       a serialized fast model (format.h)
 *   accurate.vocab.slots     I32 (cap)          format.h cai_strindex slots of the vocabulary
 *   accurate.buckets.slots   I32 (cap)          cai_intindex slots of accurate.buckets
 * The vocabulary and bucket tensors are omitted when empty.  The slot
 * tensors let a load use every tensor in place; models written before they
 * existed still load, with the tables built privately.
 */
#include "textclf_accurate_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "blas.h"
#include "cai/ops.h"
#include "modelutil.h"
#include "vectorize.h"

/* ---------------------------------------------------------------------- */
/* The network's inference (also scores the validation rows in training)  */
/* ---------------------------------------------------------------------- */

/* See textclf_accurate_internal.h. */
bool
cai_textclf_accurate_infer_floats(const AccNet *net, int T, size_t *nfloats)
{
	size_t		work = 0;
	size_t		n;
	int			Tm = T > 0 ? T : 1;

	if (cai_lstm_infer_size(1, Tm, net->D, net->H, &work, NULL) != CAI_OK)
		return false;
	/* x (T, D) | h (T, 2H) | feat (4H) | argmax (2H) | work */
	n = (size_t) Tm * ((size_t) net->D + 2 * (size_t) net->H);
	n += 6 * (size_t) net->H + work + (size_t) net->L;
	*nfloats = n;
	return n < (size_t) 1 << 40;
}

/* See textclf_accurate_internal.h. */
cai_status
cai_textclf_accurate_net_infer(const AccNet *net, const int32_t *ids, const int32_t *offs, int T,
							   float *scratch, float *probs, cai_error *err)
{
	const int	D = net->D;
	const int	H = net->H;
	float	   *x = scratch;	/* (T, D) */
	float	   *h = x + (size_t) (T > 0 ? T : 1) * D;	/* (T, 2H) */
	float	   *feat = h + (size_t) (T > 0 ? T : 1) * 2 * H;	/* (4H) */
	int32_t    *am = (int32_t *) (feat + 4 * H);	/* (2H) */
	float	   *work = feat + 6 * H;
	cai_status	st;

	memset(feat, 0, sizeof(float) * 4 * (size_t) H);
	if (T > 0)
	{
		int32_t		len = T;

		st = cai_embedding_bag_mean_forward(x, net->emb, ids, offs, T, net->R, D, err);
		if (st != CAI_OK)
			return st;
		st = cai_bilstm_infer(&net->fw, &net->bw, x, &len, 1, T, D, H, h, work, err);
		if (st != CAI_OK)
			return st;
		cai_maxpool_forward(feat, am, h, T, 2 * H);
		cai_meanpool_forward(feat + 2 * H, h, T, 2 * H);
	}
	cai_linear_forward(probs, feat, net->out_w, net->out_b, 1, 4 * H, net->L);
	cai_softmax_forward(probs, probs, 1, net->L);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* The loaded model                                                       */
/* ---------------------------------------------------------------------- */

/*
 * A loaded accurate model.  Every table and weight is a view of the model
 * file's tensors (possibly a shared read-only mapping), and the ensemble's
 * fast model is loaded from a view of the accurate.fast_model bytes in
 * place; nothing is written after load.  Private memory (counted in
 * cai_textclf_memory): the struct, the fast model's, and only for models
 * written before the serialized tables existed, the slot arrays (own_*).
 * The caller keeps the model file (and its buffer) alive while the model
 * lives.
 */
struct cai_textclf_accurate
{
	AccParams	p;
	int			L;
	int32_t		n_vocab;		/* V */
	int32_t		n_bucket_rows;	/* K */
	cai_strindex vocab;			/* accurate.vocab.{bytes,offsets,slots} */
	cai_intindex bucket;		/* accurate.buckets{,.slots} */
	int32_t    *own_vocab_slot; /* private tables of old models, else NULL */
	int32_t    *own_bucket_slot;
	AccNet		net;			/* views of the float tensors */
	cai_model_file *fast_file;	/* the ensemble's fast model, a view */
	cai_textclf *fast;
};

static inline int32_t
acc_vocab_find(const cai_textclf_accurate *m, const char *s, size_t len)
{
	return cai_strindex_find(&m->vocab, s, len);
}

static inline int32_t
acc_bucket_find(const cai_textclf_accurate *m, uint32_t b)
{
	return cai_intindex_find(&m->bucket, (int32_t) b);
}

void
cai_textclf_accurate_free(cai_textclf_accurate *m)
{
	if (m == NULL)
		return;
	cai_free(m->own_vocab_slot);
	cai_free(m->own_bucket_slot);
	cai_textclf_free(m->fast);
	cai_model_file_free(m->fast_file);
	cai_free(m);
}

/*
 * The bag of the normalized token norm (nl bytes) into ids (at most
 * 1 + ACC_NGRAMS_MAX): its vocabulary row (or UNK), then its character
 * n-grams' bucket rows.  Returns the number of rows.
 */
static int32_t
acc_token_bag(const cai_textclf_accurate *m, const char *norm, size_t nl, int32_t *ids)
{
	const AccParams *ap = &m->p;
	const int32_t V = m->n_vocab;
	uint64_t	cg[ACC_NGRAMS_MAX];
	int32_t		id = acc_vocab_find(m, norm, nl);
	int			nc = cai_textclf_char_ngrams(ap->minn, ap->maxn, norm, nl, cg);
	int32_t		n_ids = 0;

	ids[n_ids++] = id >= 0 ? id : V;
	for (int j = 0; j < nc; j++)
	{
		int32_t		r = acc_bucket_find(m, cai_textclf_char_bucket(cg[j], ap->buckets));

		if (r >= 0)
			ids[n_ids++] = V + 1 + r;
	}
	return n_ids;
}

/*
 * The token bags of the n_toks tokens toks of text into ids and offs
 * (n_toks + 1, from 0).  ids holds n_toks * (1 + ACC_NGRAMS_MAX) entries.
 */
static void
acc_text_bags(const cai_textclf_accurate *m, const char *text, const cai_token *toks, size_t n_toks,
			  int32_t *ids, int32_t *offs)
{
	char		norm[ACC_NORM_MAX];

	offs[0] = 0;
	for (size_t i = 0; i < n_toks; i++)
	{
		size_t		nl = acc_token_norm(text, toks, i, n_toks, norm);

		offs[i + 1] = offs[i] + acc_token_bag(m, norm, nl, ids + offs[i]);
	}
}

/* The ensemble: probs (L) becomes the mean of the network's and the fast model's. */
static cai_status
acc_ensemble(const cai_textclf_accurate *m, const char *text, size_t len, float *probs, float *f,
			 cai_error *err)
{
	cai_status	st;

	if (m->fast == NULL)
		return CAI_OK;
	if ((st = cai_textclf_predict(m->fast, text, len, f, err)) != CAI_OK)
		return st;
	for (int c = 0; c < m->L; c++)
		probs[c] = 0.5f * (probs[c] + f[c]);
	return CAI_OK;
}

/* See textclf_internal.h. */
bool
cai_textclf_accurate_known_word(const cai_textclf_accurate *m, const char *word, size_t len)
{
	char		norm[ACC_NORM_MAX];
	size_t		nl = cai_token_normalize(word, len, false, norm, ACC_NORM_MAX);

	return acc_vocab_find(m, norm, nl) >= 0;
}

cai_status
cai_textclf_accurate_predict(const cai_textclf_accurate *m, const char *text, size_t len,
							 float *probs, cai_error *err)
{
	const AccParams *ap = &m->p;
	cai_token  *toks = NULL;
	size_t		n_toks;
	int32_t    *ids = NULL;
	int32_t    *offs = NULL;
	float	   *scratch = NULL;
	size_t		nf;
	cai_status	st;

	st = cai_textclf_tokenize(text, len, ap->max_tokens, ACC_BYTES_PER_TOKEN, &toks, &n_toks, err);
	if (st != CAI_OK)
		return st;
	ids = cai_malloc(sizeof(int32_t) * (n_toks * (1 + ACC_NGRAMS_MAX) + 1));
	offs = cai_malloc(sizeof(int32_t) * (n_toks + 1));
	if (!cai_textclf_accurate_infer_floats(&m->net, (int) n_toks, &nf))
	{
		st = cai_error_set(err, CAI_ERR_LIMIT, "text is too long");
		goto done;
	}
	scratch = cai_malloc(sizeof(float) * nf);
	if (ids == NULL || offs == NULL || scratch == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory classifying a text");
		goto done;
	}
	acc_text_bags(m, text, toks, n_toks, ids, offs);
	st = cai_textclf_accurate_net_infer(&m->net, ids, offs, (int) n_toks, scratch, probs, err);
	if (st == CAI_OK)
	{
		float		fp[ACC_MAX_LABELS_STACK];

		/* scratch is no longer needed and holds at least L floats */
		st = acc_ensemble(m, text, len, probs, m->L <= ACC_MAX_LABELS_STACK ? fp : scratch, err);
	}
done:
	cai_free(toks);
	cai_free(ids);
	cai_free(offs);
	cai_free(scratch);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Batched inference                                                      */
/* ---------------------------------------------------------------------- */

/*
 * A batch is at most ACC_INFER_BATCH texts of similar token counts whose
 * padded positions (texts x the longest one's tokens) stay within
 * ACC_INFER_POSITIONS and the token cache's capacity; a longer text is a
 * batch of its own (its tokens are bounded by max_tokens, as in the
 * single-text path).  So the scratch is bounded by the batch, not by n: at
 * D = H = 64, about 3.5 MB of floats, and 8 MB of token cache (below); n
 * itself costs 16 bytes a text (its token count and position, counted in a
 * first tokenizing pass).
 */
#define ACC_INFER_BATCH			64
#define ACC_INFER_POSITIONS		4096

typedef struct AccBatchItem
{
	int32_t		T;				/* tokens */
	size_t		pos;			/* index in the caller's arrays */
} AccBatchItem;

/* longest first, then by position (a stable, deterministic order) */
static int
acc_item_cmp(const void *a, const void *b)
{
	const AccBatchItem *x = a;
	const AccBatchItem *y = b;

	if (x->T != y->T)
		return x->T > y->T ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * The embedding x_t of a token, and so its input projections x_t W_ih^T + b
 * in both LSTM directions, is a function of its normalized text, and a
 * table's texts repeat the same few thousand tokens: a call keeps the
 * projections (8H floats, the forward layer's then the reverse layer's) of
 * up to cap distinct tokens, so each is looked up, hashed into n-grams,
 * averaged and projected once per call, and the LSTM reads its gate inputs
 * from the cache (cai_bilstm_infer_proj) instead of multiplying every
 * position's x_t.  Entries are found by open addressing on acc_word_hash,
 * their strings kept in an arena.  cap is ACC_CACHE_TOKENS, less when the
 * projections would pass ACC_CACHE_FLOATS (large H) or the call has fewer
 * positions.  A batch whose new tokens do not fit empties the cache first;
 * a batch with more distinct tokens than cap (a single text longer than
 * cap) is computed position by position, as the single-text path does.
 * The mean bag of a token is the one cai_embedding_bag_mean_forward
 * computes for the token alone, bit for bit.
 */
#define ACC_CACHE_TOKENS		4096
#define ACC_CACHE_FLOATS		((size_t) 2 << 20)
#define ACC_CACHE_TOKEN_BYTES	16	/* arena bytes a token, on average */

typedef struct AccTokenCache
{
	int32_t    *slot;			/* (nslot) entry + 1, 0 if empty */
	uint64_t   *hash;			/* (cap) */
	int32_t    *off;			/* (cap + 1) strings in bytes */
	char	   *bytes;			/* (nbytes) */
	float	   *proj;			/* (cap, 8H) */
	int32_t		cap;
	uint32_t	nslot;			/* a power of two >= 2 cap */
	size_t		nbytes;
	int32_t		n;				/* entries */
} AccTokenCache;

/* Entries of the cache of a call of positions padded positions (at least 1). */
static int32_t
acc_cache_cap(const AccNet *net, size_t positions)
{
	size_t		cap = ACC_CACHE_FLOATS / (8 * (size_t) net->H);

	if (cap > ACC_CACHE_TOKENS)
		cap = ACC_CACHE_TOKENS;
	if (cap > positions)
		cap = positions;
	return cap > 0 ? (int32_t) cap : 1;
}

static bool
acc_cache_init(AccTokenCache *c, int32_t cap, int H)
{
	memset(c, 0, sizeof(*c));
	c->cap = cap;
	c->nslot = 2;
	while (c->nslot < 2 * (uint32_t) cap)
		c->nslot *= 2;
	c->nbytes = ACC_CACHE_TOKEN_BYTES * (size_t) cap + ACC_NORM_MAX;
	c->slot = cai_calloc(c->nslot, sizeof(int32_t));
	c->hash = cai_malloc(sizeof(uint64_t) * (size_t) cap);
	c->off = cai_malloc(sizeof(int32_t) * ((size_t) cap + 1));
	c->bytes = cai_malloc(c->nbytes);
	c->proj = cai_malloc(sizeof(float) * (size_t) cap * 8 * (size_t) H);
	if (c->off != NULL)
		c->off[0] = 0;
	return c->slot != NULL && c->hash != NULL && c->off != NULL && c->bytes != NULL && c->proj != NULL;
}

static void
acc_cache_reset(AccTokenCache *c)
{
	memset(c->slot, 0, sizeof(int32_t) * c->nslot);
	c->n = 0;
}

static void
acc_cache_free(AccTokenCache *c)
{
	cai_free(c->slot);
	cai_free(c->hash);
	cai_free(c->off);
	cai_free(c->bytes);
	cai_free(c->proj);
}

/* The entry of the normalized token norm (nl bytes), added if new; -1 if the cache is full. */
static int32_t
acc_cache_add(AccTokenCache *c, const char *norm, size_t nl)
{
	uint64_t	h = acc_word_hash(norm, nl);
	uint32_t	s = (uint32_t) h & (c->nslot - 1);
	int32_t		e;

	for (; c->slot[s] != 0; s = (s + 1) & (c->nslot - 1))
	{
		e = c->slot[s] - 1;
		if (c->hash[e] == h && (size_t) (c->off[e + 1] - c->off[e]) == nl &&
			memcmp(c->bytes + c->off[e], norm, nl) == 0)
			return e;
	}
	if (c->n == c->cap || (size_t) c->off[c->n] + nl > c->nbytes)
		return -1;
	e = c->n++;
	c->hash[e] = h;
	memcpy(c->bytes + c->off[e], norm, nl);
	c->off[e + 1] = c->off[e] + (int32_t) nl;
	c->slot[s] = e + 1;
	return e;
}

/* x (D) = the mean bag of the normalized token norm (nl bytes); ids: 1 + ACC_NGRAMS_MAX entries of scratch. */
static cai_status
acc_token_mean(const cai_textclf_accurate *m, const char *norm, size_t nl, int32_t *ids, float *x,
			   cai_error *err)
{
	int32_t		offs[2] = {0, 0};

	offs[1] = acc_token_bag(m, norm, nl, ids);
	return cai_embedding_bag_mean_forward(x, m->net.emb, ids, offs, 1, m->net.R, m->net.D, err);
}

/*
 * x (D) = the mean of the n >= 1 embedding rows ids: the sums and the
 * scaling of cai_embedding_bag_mean_forward in the same order, so the same
 * bits, vectorized across D.  The ids come from the model's checked tables
 * (acc_token_bag), so they are in range.
 */
CAI_VECTORIZE static void
acc_bag_mean(float *restrict x, const float *restrict emb, const int32_t *ids, int32_t n, int D)
{
	float		inv = 1.0f / (float) n;

	memset(x, 0, sizeof(float) * (size_t) D);
	for (int32_t j = 0; j < n; j++)
	{
		const float *w = emb + (size_t) ids[j] * D;

		for (int d = 0; d < D; d++)
			x[d] += w[d];
	}
	for (int d = 0; d < D; d++)
		x[d] *= inv;
}

/*
 * Ask for the n embedding rows ids (D floats each) to be brought into the
 * cache.  Always inlined: GCC 12 finds a call to it free of side effects
 * (prefetches do not count) and deletes it, as it did until this was added.
 */
static inline __attribute__((always_inline)) void
acc_bag_prefetch(const float *emb, const int32_t *ids, int32_t n, int D)
{
	for (int32_t j = 0; j < n; j++)
	{
		const char *w = (const char *) (emb + (size_t) ids[j] * D);

		for (size_t b = 0; b < sizeof(float) * (size_t) D; b += 64)
			__builtin_prefetch(w + b);
	}
}

/*
 * The projections of the entries [e0, c->n): their mean bags into x
 * (c->n - e0, D), then both directions' x W_ih^T + b as cai_lstm_infer
 * computes them (the bias, then one product).  The bag of the next token
 * is looked up (and its rows prefetched) before this one's rows are
 * summed, so the table's cache misses overlap the lookups; ids holds two
 * bags.
 */
static void
acc_cache_project(const cai_textclf_accurate *m, AccTokenCache *c, int32_t e0, int32_t *ids, float *x)
{
	const AccNet *net = &m->net;
	const int	D = net->D;
	const int	G4 = 4 * net->H;
	const int	nn = c->n - e0;
	float	   *proj = c->proj + (size_t) e0 * 2 * G4;
	int32_t    *bag[2] = {ids, ids + 1 + ACC_NGRAMS_MAX};
	int32_t		nb[2] = {0, 0};

	if (nn == 0)
		return;
	for (int k = 0; k <= nn; k++)
	{
		if (k < nn)
		{
			int32_t		e = e0 + k;
			size_t		nl = (size_t) (c->off[e + 1] - c->off[e]);

			nb[k & 1] = acc_token_bag(m, c->bytes + c->off[e], nl, bag[k & 1]);
			acc_bag_prefetch(net->emb, bag[k & 1], nb[k & 1], D);
			memcpy(proj + (size_t) k * 2 * G4, net->fw.b, sizeof(float) * (size_t) G4);
			memcpy(proj + (size_t) k * 2 * G4 + G4, net->bw.b, sizeof(float) * (size_t) G4);
		}
		if (k > 0)
			acc_bag_mean(x + (size_t) (k - 1) * D, net->emb, bag[(k - 1) & 1], nb[(k - 1) & 1], D);
	}
	cai_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nn, G4, D, 1.0f, x, D, net->fw.w_ih, D, 1.0f, proj,
			  2 * G4);
	cai_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nn, G4, D, 1.0f, x, D, net->bw.w_ih, D, 1.0f,
			  proj + G4, 2 * G4);
}

/* out (C) = max over t of inp (T, C), T >= 1: cai_maxpool_forward's values without its argmax (vectorizes). */
static void
acc_maxpool(float *restrict out, const float *restrict inp, int T, int C)
{
	memcpy(out, inp, sizeof(float) * (size_t) C);
	for (int t = 1; t < T; t++)
	{
		const float *x = inp + (size_t) t * C;

		for (int c = 0; c < C; c++)
			out[c] = x[c] > out[c] ? x[c] : out[c];
	}
}

/* Texts of the batch starting at items[i]: up to ACC_INFER_BATCH within max_pos padded positions. */
static size_t
acc_batch_end(const AccBatchItem *items, size_t n, size_t i, size_t max_pos)
{
	size_t		Tm = (size_t) (items[i].T > 0 ? items[i].T : 1);
	size_t		j = i + 1;

	while (j < n && j - i < ACC_INFER_BATCH && (j - i + 1) * Tm <= max_pos)
		j++;
	return j;
}

/*
 * Scratch floats of a batch of B texts padded to Tm tokens:
 * x (B, Tm, D) | h (B, Tm, 2H) | feat (B, 4H) | logits (B, L) | lstm work.
 */
static bool
acc_batch_floats(const AccNet *net, int B, int Tm, size_t *nfloats)
{
	size_t		work = 0;
	size_t		pos = (size_t) B * (size_t) Tm;
	size_t		n;

	if (cai_lstm_infer_size(B, Tm, net->D, net->H, &work, NULL) != CAI_OK)
		return false;
	n = pos * ((size_t) net->D + 2 * (size_t) net->H);
	n += (size_t) B * (4 * (size_t) net->H + (size_t) net->L) + work;
	*nfloats = n;
	return n < (size_t) 1 << 40;
}

/* Tokens of text (at most max_tokens), or an error naming row i. */
static cai_status
acc_tokenize_row(const cai_textclf_accurate *m, const char *const *texts, const size_t *lens, size_t i,
				 cai_token **toks, size_t *n_toks, cai_error *err)
{
	cai_error	e2 = {0};
	cai_status	st = cai_textclf_tokenize(texts[i], lens[i], m->p.max_tokens, ACC_BYTES_PER_TOKEN,
										  toks, n_toks, &e2);

	if (st != CAI_OK)
		return cai_error_set(err, st, "text %zu: %s", i, e2.msg);
	return CAI_OK;
}

/*
 * The tokens of the batch items[0..B), positions padded to Tp, and their
 * counts into len (B).  With a cache: each position's entry into idx
 * (B, Tp), new tokens added; *full if the cache cannot take them all.
 * Without: each position's mean bag into x (B, Tp, D) (ids: a bag's
 * scratch).
 */
static cai_status
acc_batch_tokens(const cai_textclf_accurate *m, const char *const *texts, const size_t *lens,
				 const AccBatchItem *items, int B, size_t Tp, AccTokenCache *cache, int32_t *idx,
				 int32_t *ids, float *x, int32_t *len, bool *full, cai_error *err)
{
	cai_status	st = CAI_OK;

	*full = false;
	for (int b = 0; b < B && !*full; b++)
	{
		size_t		i = items[b].pos;
		cai_token  *toks = NULL;
		size_t		n_toks;

		if ((st = acc_tokenize_row(m, texts, lens, i, &toks, &n_toks, err)) != CAI_OK)
			return st;
		if (n_toks != (size_t) items[b].T)
		{
			cai_free(toks);
			return cai_error_set(err, CAI_ERR_INTERNAL, "text %zu: tokens changed between two passes", i);
		}
		len[b] = (int32_t) n_toks;
		for (size_t t = 0; t < n_toks && st == CAI_OK && !*full; t++)
		{
			char		norm[ACC_NORM_MAX];
			size_t		nl = acc_token_norm(texts[i], toks, t, n_toks, norm);
			size_t		p = (size_t) b * Tp + t;

			if (cache == NULL)
				st = acc_token_mean(m, norm, nl, ids, x + p * (size_t) m->net.D, err);
			else if ((idx[p] = acc_cache_add(cache, norm, nl)) < 0)
				*full = true;
		}
		cai_free(toks);
		if (st != CAI_OK)
			return st;
	}
	return CAI_OK;
}

/*
 * One batch items[0..B) (longest first): every text's tokens through the
 * cache (or, if they cannot fit, their mean bags padded to Tm =
 * items[0].T), one bidirectional LSTM pass over the batch, each text's max
 * and mean pooling over its own tokens, and the output layer and softmax as
 * one product over the batch; probabilities go to probs at each text's
 * position.  idx holds B * Tm entries.
 */
static cai_status
acc_batch_infer(const cai_textclf_accurate *m, const char *const *texts, const size_t *lens,
				const AccBatchItem *items, int B, AccTokenCache *cache, int32_t *ids, int32_t *idx,
				int32_t *len, float *scratch, float *probs, cai_error *err)
{
	const AccNet *net = &m->net;
	const int	D = net->D;
	const int	H = net->H;
	const int	L = net->L;
	const int	Tm = items[0].T;
	const size_t Tp = (size_t) (Tm > 0 ? Tm : 1);
	float	   *x = scratch;	/* (B, Tm, D); the new tokens' (at most B * Tm) with the cache */
	float	   *h = x + (size_t) B * Tp * D;	/* (B, Tm, 2H) */
	float	   *feat = h + (size_t) B * Tp * 2 * H;	/* (B, 4H) */
	float	   *logits = feat + (size_t) B * 4 * H;	/* (B, L) */
	float	   *work = logits + (size_t) B * L;
	int32_t		e0 = cache->n;
	bool		full;
	cai_status	st;

	st = acc_batch_tokens(m, texts, lens, items, B, Tp, cache, idx, ids, NULL, len, &full, err);
	if (st == CAI_OK && full && e0 > 0)
	{
		/* make room: the batch alone may fit */
		acc_cache_reset(cache);
		e0 = 0;
		st = acc_batch_tokens(m, texts, lens, items, B, Tp, cache, idx, ids, NULL, len, &full, err);
	}
	if (st != CAI_OK)
		return st;
	if (full)
	{
		/* more distinct tokens than the cache holds: every position's x, as the single-text path */
		acc_cache_reset(cache);
		st = acc_batch_tokens(m, texts, lens, items, B, Tp, NULL, NULL, ids, x, len, &full, err);
		if (st == CAI_OK && Tm > 0)
			st = cai_bilstm_infer(&net->fw, &net->bw, x, len, B, Tm, D, H, h, work, err);
	}
	else
	{
		acc_cache_project(m, cache, e0, ids, x);
		if (Tm > 0)
			st = cai_bilstm_infer_proj(&net->fw, &net->bw, cache->proj, idx, cache->n, len, B, Tm, H, h, work,
									   err);
	}
	if (st != CAI_OK)
		return st;

	memset(feat, 0, sizeof(float) * (size_t) B * 4 * H);
	for (int b = 0; b < B && Tm > 0; b++)
	{
		const float *hb = h + (size_t) b * Tp * 2 * H;
		float	   *fb = feat + (size_t) b * 4 * H;

		if (len[b] == 0)
			continue;
		acc_maxpool(fb, hb, len[b], 2 * H);
		cai_meanpool_forward(fb + 2 * H, hb, len[b], 2 * H);
	}
	cai_linear_forward(logits, feat, net->out_w, net->out_b, B, 4 * H, L);
	cai_softmax_forward(logits, logits, B, L);
	for (int b = 0; b < B; b++)
		memcpy(probs + items[b].pos * (size_t) L, logits + (size_t) b * L, sizeof(float) * (size_t) L);
	return CAI_OK;
}

cai_status
cai_textclf_accurate_predict_batch(const cai_textclf_accurate *m, const char *const *texts,
								   const size_t *lens, size_t n, float *probs, cai_error *err)
{
	AccBatchItem *items = NULL;
	AccTokenCache cache = {0};
	int32_t    *ids = NULL;
	int32_t    *idx = NULL;
	int32_t    *len = NULL;
	float	   *scratch = NULL;
	size_t		max_nf = 0;
	size_t		max_pos = 0;
	size_t		positions = 0;
	size_t		batch_pos;
	int32_t		cap;
	cai_status	st = CAI_OK;

	if (n == 0)
		return CAI_OK;
	items = cai_malloc(sizeof(AccBatchItem) * n);
	if (items == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory classifying %zu texts", n);

	/* token counts, then batches of similar counts */
	for (size_t i = 0; i < n; i++)
	{
		cai_token  *toks = NULL;
		size_t		n_toks;

		if ((st = acc_tokenize_row(m, texts, lens, i, &toks, &n_toks, err)) != CAI_OK)
			goto done;
		cai_free(toks);
		items[i].T = (int32_t) n_toks;
		items[i].pos = i;
		positions += n_toks;
	}
	qsort(items, n, sizeof(AccBatchItem), acc_item_cmp);
	cap = acc_cache_cap(&m->net, positions);
	batch_pos = (size_t) cap < ACC_INFER_POSITIONS ? (size_t) cap : ACC_INFER_POSITIONS;
	for (size_t i = 0; i < n; i = acc_batch_end(items, n, i, batch_pos))
	{
		size_t		j = acc_batch_end(items, n, i, batch_pos);
		size_t		Tp = (size_t) (items[i].T > 0 ? items[i].T : 1);
		size_t		nf;

		if (!acc_batch_floats(&m->net, (int) (j - i), (int) Tp, &nf))
		{
			st = cai_error_set(err, CAI_ERR_LIMIT, "text %zu is too long", items[i].pos);
			goto done;
		}
		if (nf > max_nf)
			max_nf = nf;
		if ((j - i) * Tp > max_pos)
			max_pos = (j - i) * Tp;
	}
	ids = cai_malloc(sizeof(int32_t) * 2 * (1 + ACC_NGRAMS_MAX));
	idx = cai_malloc(sizeof(int32_t) * max_pos);
	len = cai_malloc(sizeof(int32_t) * ACC_INFER_BATCH);
	scratch = cai_malloc(sizeof(float) * max_nf);
	if (!acc_cache_init(&cache, cap, m->net.H) || ids == NULL || idx == NULL || len == NULL || scratch == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory classifying %zu texts", n);
		goto done;
	}

	for (size_t i = 0; i < n; i = acc_batch_end(items, n, i, batch_pos))
	{
		size_t		j = acc_batch_end(items, n, i, batch_pos);

		st = acc_batch_infer(m, texts, lens, items + i, (int) (j - i), &cache, ids, idx, len, scratch, probs,
							 err);
		if (st != CAI_OK)
			goto done;
	}

	/* the ensemble, text by text as in the single-text path */
	if (m->fast != NULL)
	{
		float		fp[ACC_MAX_LABELS_STACK];

		for (size_t i = 0; i < n; i++)
		{
			cai_error	e2 = {0};

			/* scratch holds at least L floats */
			if (acc_ensemble(m, texts[i], lens[i], probs + i * (size_t) m->L,
							 m->L <= ACC_MAX_LABELS_STACK ? fp : scratch, &e2) != CAI_OK)
			{
				st = cai_error_set(err, e2.status, "text %zu: %s", i, e2.msg);
				goto done;
			}
		}
	}
done:
	cai_free(items);
	acc_cache_free(&cache);
	cai_free(ids);
	cai_free(idx);
	cai_free(len);
	cai_free(scratch);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

/* See textclf_accurate_internal.h. */
void
cai_textclf_accurate_tensor_specs(int64_t R, int D, int H, int L, AccTensorSpec *s)
{
	static const char *const names[ACC_N_FLOAT_TENSORS] = {
		"accurate.embedding",
		"accurate.lstm.fw.w_ih", "accurate.lstm.fw.w_hh", "accurate.lstm.fw.b",
		"accurate.lstm.bw.w_ih", "accurate.lstm.bw.w_hh", "accurate.lstm.bw.b",
		"accurate.output.weight", "accurate.output.bias",
	};

	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
		s[i].name = names[i];
	s[0] = (AccTensorSpec) {names[0], 2, {R, D}};
	for (int d = 0; d < 2; d++)
	{
		s[1 + 3 * d] = (AccTensorSpec) {names[1 + 3 * d], 2, {4 * (int64_t) H, D}};
		s[2 + 3 * d] = (AccTensorSpec) {names[2 + 3 * d], 2, {4 * (int64_t) H, H}};
		s[3 + 3 * d] = (AccTensorSpec) {names[3 + 3 * d], 1, {4 * (int64_t) H, 0}};
	}
	s[7] = (AccTensorSpec) {names[7], 2, {L, 4 * (int64_t) H}};
	s[8] = (AccTensorSpec) {names[8], 1, {L, 0}};
}

/* See textclf_accurate_internal.h. */
void
cai_textclf_accurate_net_view(AccNet *net, float *const *t, int D, int H, int L, int32_t R)
{
	net->D = D;
	net->H = H;
	net->L = L;
	net->R = R;
	net->emb = t[0];
	net->fw.w_ih = t[1];
	net->fw.w_hh = t[2];
	net->fw.b = t[3];
	net->bw.w_ih = t[4];
	net->bw.w_hh = t[5];
	net->bw.b = t[6];
	net->out_w = t[7];
	net->out_b = t[8];
}

cai_status
cai_textclf_accurate_load(const cai_model_file *mf, json_object *meta, int n_labels,
						  cai_textclf_accurate **out, size_t *mem_out, cai_error *err)
{
	cai_textclf_accurate *m;
	json_object *aj;
	json_object *fpj;
	int64_t		v,
				V,
				K;
	uint64_t	fp_want,
				fp_have;
	AccTensorSpec specs[ACC_N_FLOAT_TENSORS];
	float	   *views[ACC_N_FLOAT_TENSORS];
	size_t		mem = sizeof(cai_textclf_accurate);
	const cai_tensor *t;
	cai_status	st;

	*out = NULL;
	m = cai_calloc(1, sizeof(cai_textclf_accurate));
	if (m == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
	m->L = n_labels;

	if (!json_object_object_get_ex(meta, "accurate", &aj) || !json_object_is_type(aj, json_type_object))
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks object \"accurate\"");
		goto fail;
	}
	if (cai_json_get_int(aj, "accurate", "feature_version", ACC_FEATURE_VERSION, ACC_FEATURE_VERSION, &v, NULL) != CAI_OK)
	{
		st = cai_error_set(err, CAI_ERR_VERSION,
						   "model uses text features of another version (this build computes version %d)",
						   ACC_FEATURE_VERSION);
		goto fail;
	}
	if ((st = cai_json_get_int(aj, "accurate", "dimensions", 1, ACC_MAX_DIM, &v, err)) != CAI_OK)
		goto fail;
	m->p.dim = (int) v;
	if ((st = cai_json_get_int(aj, "accurate", "hidden", 1, ACC_MAX_DIM, &v, err)) != CAI_OK)
		goto fail;
	m->p.hidden = (int) v;
	if ((st = cai_json_get_int(aj, "accurate", "minn", 0, 100, &v, err)) != CAI_OK)
		goto fail;
	m->p.minn = (int) v;
	if ((st = cai_json_get_int(aj, "accurate", "maxn", 0, 100, &v, err)) != CAI_OK)
		goto fail;
	m->p.maxn = (int) v;
	if ((m->p.minn == 0) != (m->p.maxn == 0) || m->p.minn > m->p.maxn)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata has inconsistent minn %d and maxn %d",
						   m->p.minn, m->p.maxn);
		goto fail;
	}
	if ((st = cai_json_get_int(aj, "accurate", "max_tokens", 1, INT32_MAX / ACC_BYTES_PER_TOKEN, &v, err)) != CAI_OK)
		goto fail;
	m->p.max_tokens = (int) v;
	if ((st = cai_json_get_int(aj, "accurate", "buckets", 1, ACC_MAX_BUCKETS, &v, err)) != CAI_OK)
		goto fail;
	m->p.buckets = (uint32_t) v;
	if ((st = cai_json_get_int(aj, "accurate", "vocab_size", 0, INT32_MAX / 2, &V, err)) != CAI_OK ||
		(st = cai_json_get_int(aj, "accurate", "bucket_rows", 0, m->p.buckets, &K, err)) != CAI_OK)
		goto fail;
	m->n_vocab = (int32_t) V;
	m->n_bucket_rows = (int32_t) K;

	if (!json_object_object_get_ex(aj, "feature_fingerprint", &fpj) ||
		!json_object_is_type(fpj, json_type_string) ||
		sscanf(json_object_get_string(fpj), "%" SCNx64, &fp_want) != 1)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks \"accurate.feature_fingerprint\"");
		goto fail;
	}
	if ((st = cai_textclf_accurate_fingerprint(&m->p, &fp_have, err)) != CAI_OK)
		goto fail;
	if (fp_have != fp_want)
	{
		st = cai_error_set(err, CAI_ERR_VERSION,
						   "model was trained with a tokenizer or feature hashing that differs from this build's");
		goto fail;
	}

	/* the lookup tables */
	if ((st = cai_textclf_load_vocab(mf, "accurate", V, ACC_SEED_WORD, &m->vocab, &m->own_vocab_slot, &mem,
									 err)) != CAI_OK ||
		(st = cai_textclf_load_buckets(mf, "accurate", K, m->p.buckets, &m->bucket, &m->own_bucket_slot,
									   &mem, err)) != CAI_OK)
		goto fail;

	/* float tensors, used in place (read-only; the views are not const only for cai_lstm_params) */
	cai_textclf_accurate_tensor_specs(V + 1 + K, m->p.dim, m->p.hidden, n_labels, specs);
	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
	{
		size_t		n = spec_numel(&specs[i]);

		if ((st = cai_model_file_expect(mf, specs[i].name, CAI_F32, specs[i].ndim, specs[i].shape,
										&t, err)) != CAI_OK)
			goto fail;
		if (!mf->trusted && !cai_all_finite(t->data, n))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" holds a non-finite value", specs[i].name);
			goto fail;
		}
		views[i] = (float *) t->data;
	}
	cai_textclf_accurate_net_view(&m->net, views, m->p.dim, m->p.hidden, n_labels,
								  (int32_t) (V + 1 + K));

	/* the ensemble's fast model: a whole model file, which must be a fast model with our labels */
	if ((st = cai_json_get_int(aj, "accurate", "ensemble_fast", 0, 1, &v, err)) != CAI_OK)
		goto fail;
	if (v == 1)
	{
		cai_error	e2;
		json_object *fm = NULL;
		json_object *x;
		json_object *l1,
				   *l2;
		bool		ok;

		if ((st = cai_model_file_expect(mf, "accurate.fast_model", CAI_U8, 1, NULL, &t, err)) != CAI_OK)
			goto fail;
		/* in place: the tensor is 32-byte aligned and outlives the model, like mf */
		if (cai_format_read_view(t->data, t->nbytes, !mf->trusted, &m->fast_file, &e2) != CAI_OK)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "tensor \"accurate.fast_model\" is not a model: %s", e2.msg);
			goto fail;
		}
		fm = json_tokener_parse(m->fast_file->meta_json);
		ok = fm != NULL && json_object_is_type(fm, json_type_object) &&
			json_object_object_get_ex(fm, "architecture", &x) && json_object_is_type(x, json_type_string) &&
			strcmp(json_object_get_string(x), "fast") == 0 &&
			json_object_object_get_ex(fm, "labels", &l1) && json_object_object_get_ex(meta, "labels", &l2) &&
			json_object_equal(l1, l2);
		json_object_put(fm);
		if (!ok)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT,
							   "tensor \"accurate.fast_model\" is not a fast model with the same labels");
			goto fail;
		}
		if (cai_textclf_load_fast(m->fast_file, &m->fast, &e2) != CAI_OK)
		{
			st = cai_error_set(err, e2.status == CAI_ERR_NOMEM ? CAI_ERR_NOMEM : CAI_ERR_FORMAT,
							   "tensor \"accurate.fast_model\": %s", e2.msg);
			goto fail;
		}
		mem += cai_textclf_memory(m->fast) + sizeof(cai_model_file) +
			sizeof(cai_tensor) * (size_t) m->fast_file->n_tensors + m->fast_file->meta_len + 1;
	}
	else if (cai_model_file_tensor(mf, "accurate.fast_model") != NULL)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"accurate.fast_model\" but ensemble_fast 0");
		goto fail;
	}
	*out = m;
	*mem_out = mem;
	return CAI_OK;

fail:
	cai_textclf_accurate_free(m);
	return st;
}
