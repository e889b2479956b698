/*
 * textclf_accurate.c: the "accurate" text classification architecture.
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
#include "textclf_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cai/lstm.h"
#include "cai/metrics.h"
#include "cai/ops.h"
#include "cai/optim.h"
#include "cai/tokenize.h"
#include "modelutil.h"

#define ACC_FEATURE_VERSION		1
#define ACC_NORM_MAX			128 /* bytes of a normalized token (incl. NUL) */
#define ACC_NGRAMS_MAX			128 /* character n-grams per token */
#define ACC_BYTES_PER_TOKEN		32	/* text read: at most max_tokens * this */
#define ACC_MAX_DIM				1024
#define ACC_MAX_BUCKETS			16777216
#define ACC_TOKEN_BUDGET		2048	/* padded positions per training batch */
#define ACC_CLIP_NORM			5.0f
#define ACC_MAX_LABELS_STACK	64
#define ACC_MIN_LR_FRACTION		0.1f
#define ACC_SEED_WORD			0x61636377ULL	/* "accw" */
#define ACC_SALT_CHAR			0x9e3779b97f4a7c15ULL

/* the automatic epoch count (option epochs = 0) */
#define ACC_AUTO_UPDATES		250000	/* row updates the automatic epoch count aims at */
#define ACC_AUTO_MIN_EPOCHS		4
#define ACC_AUTO_MAX_EPOCHS		30

typedef struct AccParams
{
	int			dim;			/* D: embedding size */
	int			hidden;			/* H: LSTM units per direction */
	int			minn;
	int			maxn;
	int			max_tokens;
	uint32_t	buckets;
} AccParams;

/* ---------------------------------------------------------------------- */
/* Features                                                               */
/* ---------------------------------------------------------------------- */

static inline uint64_t
acc_word_hash(const char *s, size_t len)
{
	return cai_hash_bytes(s, len, ACC_SEED_WORD);
}

static inline uint32_t
acc_char_bucket(uint64_t h, uint32_t buckets)
{
	return (uint32_t) (cai_textclf_mix(h ^ ACC_SALT_CHAR) % buckets);
}

static inline int
acc_char_ngrams(const AccParams *ap, const char *norm, size_t len, uint64_t *out)
{
	if (ap->minn <= 0 || ap->maxn <= 0)
		return 0;
	return (int) cai_char_ngram_hashes(norm, len, ap->minn, ap->maxn, out, ACC_NGRAMS_MAX);
}

static inline size_t
acc_token_norm(const char *text, const cai_token *tok, char *norm)
{
	return cai_token_normalize(text + tok->start, (size_t) (tok->end - tok->start),
							   false, norm, ACC_NORM_MAX);
}

/*
 * Fingerprint of the raw features of a probe text (see
 * cai_textclf_fast_fingerprint in textclf_fast.c).
 */
static cai_status
acc_fingerprint(const AccParams *ap, uint64_t *out, cai_error *err)
{
	static const char probe[] =
	"The U.S. film's 2nd half isn't bad -- it's GREAT!!! caf\xc3\xa9 na\xc3\xafve "
	"\xe5\xa5\xbd\xe7\x9c\x8b\xe7\x9a\x84\xe7\x94\xb5\xe5\xbd\xb1 "
	"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 3.14 e-mail";
	cai_token  *toks;
	size_t		n;
	uint64_t	h = 14695981039346656037ULL;
	uint64_t	cg[ACC_NGRAMS_MAX];
	char		norm[ACC_NORM_MAX];
	cai_status	st;

	st = cai_textclf_tokenize(probe, sizeof(probe) - 1, 512, ACC_BYTES_PER_TOKEN, &toks, &n, err);
	if (st != CAI_OK)
		return st;
	for (size_t i = 0; i < n; i++)
	{
		size_t		nl = acc_token_norm(probe, &toks[i], norm);
		int			nc = acc_char_ngrams(ap, norm, nl, cg);

		h = cai_textclf_mix(h ^ (uint64_t) toks[i].start) + (uint64_t) toks[i].end;
		h = cai_textclf_mix(h ^ acc_word_hash(norm, nl));
		for (int j = 0; j < nc; j++)
			h = cai_textclf_mix(h ^ cg[j]);
	}
	cai_free(toks);
	*out = cai_textclf_mix(h ^ (uint64_t) ACC_FEATURE_VERSION);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* The network (shared by training-time evaluation and inference)         */
/* ---------------------------------------------------------------------- */

typedef struct AccNet
{
	int			D;
	int			H;
	int			L;
	int32_t		R;				/* embedding rows: V + 1 + K */
	const float *emb;			/* (R, D) */
	cai_lstm_params fw;			/* w_ih (4H, D), w_hh (4H, H), b (4H) */
	cai_lstm_params bw;
	const float *out_w;			/* (L, 4H) */
	const float *out_b;			/* (L) */
} AccNet;

/* Scratch floats acc_net_infer needs for T tokens (false on overflow). */
static bool
acc_infer_floats(const AccNet *net, int T, size_t *nfloats)
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

/*
 * Probabilities (L) of one text given as T token bags (ids, offsets (T + 1)).
 * scratch holds acc_infer_floats(T) floats.
 */
static cai_status
acc_net_infer(const AccNet *net, const int32_t *ids, const int32_t *offs, int T,
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

cai_status
cai_textclf_accurate_predict(const cai_textclf_accurate *m, const char *text, size_t len,
							 float *probs, cai_error *err)
{
	const AccParams *ap = &m->p;
	const int32_t V = m->n_vocab;
	cai_token  *toks = NULL;
	size_t		n_toks;
	int32_t    *ids = NULL;
	int32_t    *offs = NULL;
	float	   *scratch = NULL;
	size_t		nf;
	size_t		n_ids = 0;
	uint64_t	cg[ACC_NGRAMS_MAX];
	char		norm[ACC_NORM_MAX];
	cai_status	st;

	st = cai_textclf_tokenize(text, len, ap->max_tokens, ACC_BYTES_PER_TOKEN, &toks, &n_toks, err);
	if (st != CAI_OK)
		return st;
	ids = cai_malloc(sizeof(int32_t) * (n_toks * (1 + ACC_NGRAMS_MAX) + 1));
	offs = cai_malloc(sizeof(int32_t) * (n_toks + 1));
	if (!acc_infer_floats(&m->net, (int) n_toks, &nf))
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
	offs[0] = 0;
	for (size_t i = 0; i < n_toks; i++)
	{
		size_t		nl = acc_token_norm(text, &toks[i], norm);
		int32_t		id = acc_vocab_find(m, norm, nl);
		int			nc = acc_char_ngrams(ap, norm, nl, cg);

		ids[n_ids++] = id >= 0 ? id : V;
		for (int j = 0; j < nc; j++)
		{
			int32_t		r = acc_bucket_find(m, acc_char_bucket(cg[j], ap->buckets));

			if (r >= 0)
				ids[n_ids++] = V + 1 + r;
		}
		offs[i + 1] = (int32_t) n_ids;
	}
	st = acc_net_infer(&m->net, ids, offs, (int) n_toks, scratch, probs, err);
	if (st == CAI_OK && m->fast != NULL)
	{
		float		fp[ACC_MAX_LABELS_STACK];
		float	   *f = m->L <= ACC_MAX_LABELS_STACK ? fp : (float *) scratch;

		/* scratch is no longer needed and holds at least L floats */
		if ((st = cai_textclf_predict(m->fast, text, len, f, err)) == CAI_OK)
			for (int c = 0; c < m->L; c++)
				probs[c] = 0.5f * (probs[c] + f[c]);
	}
done:
	cai_free(toks);
	cai_free(ids);
	cai_free(offs);
	cai_free(scratch);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

/* Names and shapes of the float tensors, in parameter-slab order. */
#define ACC_N_FLOAT_TENSORS 9

typedef struct AccTensorSpec
{
	const char *name;
	int			ndim;
	int64_t		shape[2];
} AccTensorSpec;

static void
acc_tensor_specs(int64_t R, int D, int H, int L, AccTensorSpec *s)
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

static size_t
spec_numel(const AccTensorSpec *s)
{
	return (size_t) s->shape[0] * (s->ndim == 2 ? (size_t) s->shape[1] : 1);
}

/* Point net at the float tensors (read-only). */
static void
acc_net_view(AccNet *net, float *const *t, int D, int H, int L, int32_t R)
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
	if ((st = acc_fingerprint(&m->p, &fp_have, err)) != CAI_OK)
		goto fail;
	if (fp_have != fp_want)
	{
		st = cai_error_set(err, CAI_ERR_VERSION,
						   "model was trained with a tokenizer or feature hashing that differs from this build's");
		goto fail;
	}

	/*
	 * vocabulary.  A trusted model file (bytes that passed this validation
	 * before) skips the scans of tensor contents: the lookups are
	 * bounds-checked whatever the tensors hold.  Models without the
	 * serialized tables get the full checks and private tables.
	 */
	if (V > 0)
	{
		const cai_tensor *tb;
		const int32_t *off;
		int64_t		shape_off[1] = {V + 1};
		bool		serialized;

		if ((st = cai_model_file_expect(mf, "accurate.vocab.offsets", CAI_I32, 1, shape_off, &t, err)) != CAI_OK ||
			(st = cai_model_file_expect(mf, "accurate.vocab.bytes", CAI_U8, 1, NULL, &tb, err)) != CAI_OK)
			goto fail;
		off = t->data;
		if (tb->shape[0] > INT32_MAX || off[0] != 0 || off[V] != tb->shape[0])
		{
			st = cai_error_set(err, CAI_ERR_FORMAT,
							   "tensor \"accurate.vocab.offsets\" must start at 0 and end at the vocabulary bytes");
			goto fail;
		}
		m->vocab.n = (int32_t) V;
		m->vocab.bytes = tb->data;
		m->vocab.nbytes = tb->nbytes;
		m->vocab.off = off;
		m->vocab.seed = ACC_SEED_WORD;
		if ((st = cai_textclf_index_slots(mf, "accurate.vocab.slots", V, &m->vocab.slot, &m->vocab.mask,
								  &m->own_vocab_slot, &serialized, &mem, err)) != CAI_OK)
			goto fail;
		if (!mf->trusted || !serialized)
		{
			for (int64_t i = 0; i < V; i++)
			{
				const char *w;

				if ((int64_t) off[i + 1] - (int64_t) off[i] < 2 || off[i + 1] > off[V] ||
					off[i + 1] - off[i] > ACC_NORM_MAX)
				{
					st = cai_error_set(err, CAI_ERR_FORMAT,
									   "tensor \"accurate.vocab.offsets\" entry %" PRId64 " is out of range", i + 1);
					goto fail;
				}
				w = (const char *) tb->data + off[i];
				if (memchr(w, '\0', (size_t) (off[i + 1] - off[i])) != w + (off[i + 1] - off[i] - 1))
				{
					st = cai_error_set(err, CAI_ERR_FORMAT,
									   "vocabulary word %" PRId64 " is not a single NUL-terminated string", i);
					goto fail;
				}
			}
			st = serialized ? cai_strindex_check(&m->vocab, "vocabulary", err) :
				cai_strindex_build(&m->vocab, m->own_vocab_slot, "vocabulary", err);
			if (st != CAI_OK)
				goto fail;
		}
	}
	else if (cai_model_file_tensor(mf, "accurate.vocab.offsets") != NULL ||
			 cai_model_file_tensor(mf, "accurate.vocab.bytes") != NULL ||
			 cai_model_file_tensor(mf, "accurate.vocab.slots") != NULL)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model has vocabulary tensors but vocab_size 0");
		goto fail;
	}

	/* bucket rows */
	if (K > 0)
	{
		int64_t		shape_b[1] = {K};
		const int32_t *b;
		bool		serialized;

		if ((st = cai_model_file_expect(mf, "accurate.buckets", CAI_I32, 1, shape_b, &t, err)) != CAI_OK)
			goto fail;
		b = t->data;
		m->bucket.n = (int32_t) K;
		m->bucket.keys = b;
		if ((st = cai_textclf_index_slots(mf, "accurate.buckets.slots", K, &m->bucket.slot, &m->bucket.mask,
								  &m->own_bucket_slot, &serialized, &mem, err)) != CAI_OK)
			goto fail;
		if (!mf->trusted || !serialized)
		{
			for (int64_t r = 0; r < K; r++)
			{
				if (b[r] < 0 || (uint32_t) b[r] >= m->p.buckets || (r > 0 && b[r] <= b[r - 1]))
				{
					st = cai_error_set(err, CAI_ERR_FORMAT,
									   "tensor \"accurate.buckets\" entry %" PRId64 " is out of range or not increasing", r);
					goto fail;
				}
			}
			st = serialized ? cai_intindex_check(&m->bucket, "bucket index", err) :
				cai_intindex_build(&m->bucket, m->own_bucket_slot, "bucket index", err);
			if (st != CAI_OK)
				goto fail;
		}
	}
	else if (cai_model_file_tensor(mf, "accurate.buckets") != NULL ||
			 cai_model_file_tensor(mf, "accurate.buckets.slots") != NULL)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"accurate.buckets\" but bucket_rows 0");
		goto fail;
	}

	/* float tensors, used in place (read-only; the views are not const only for cai_lstm_params) */
	acc_tensor_specs(V + 1 + K, m->p.dim, m->p.hidden, n_labels, specs);
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
	acc_net_view(&m->net, views, m->p.dim, m->p.hidden, n_labels, (int32_t) (V + 1 + K));

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
		if (cai_textclf_load(m->fast_file, &m->fast, &e2) != CAI_OK)
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

/* ---------------------------------------------------------------------- */
/* Training: data preparation                                             */
/* ---------------------------------------------------------------------- */

typedef struct Ticker
{
	cai_progress_fn fn;
	void	   *ctx;
	double		start;
	double		last;
	double		max_seconds;
	cai_progress p;
} Ticker;

static bool
ticker_tick(Ticker *tk, double fraction)
{
	double		t = cai_now_seconds();

	if (tk->fn == NULL || t - tk->last < 0.1)
		return true;
	tk->last = t;
	tk->p.fraction = fraction < tk->p.fraction ? tk->p.fraction : fraction > 1 ? 1 : fraction;
	tk->p.epoch_done = false;
	return tk->fn(tk->ctx, &tk->p);
}

/* A training batch: rows order[first .. first + n), padded to T tokens. */
typedef struct AccBatch
{
	int32_t		first;
	int32_t		n;
	int32_t		T;
} AccBatch;

typedef struct AccTrain
{
	AccParams	p;
	int			L;
	cai_textclf_rows rows;		/* train rows first, then validation rows */
	size_t	   *tok_off;		/* (n_all + 1) */
	int32_t    *tok_type;		/* (n_tokens) */
	size_t		tok_cap;
	cai_textclf_types	types;
	int32_t		V;
	int32_t		K;
	cai_textclf_vocab_item  *vitems;			/* (V) */
	int32_t    *type_vocab;		/* (n_types) vocabulary id or -1 */
	size_t	   *bag_off;		/* (n_types + 1) */
	int32_t    *bag;			/* embedding rows of each type; the first is the word or UNK row */
	int32_t    *bmap;			/* (buckets) bucket row or -1 */
	/* batches */
	int32_t    *order;			/* (n_tr) rows sorted by length */
	int32_t    *len_key;		/* (n_tr) */
	AccBatch   *batches;
	size_t		n_batches;
	int32_t    *batch_perm;		/* (n_batches) */
	/* parameters */
	cai_slab	slab;
	int			pi[ACC_N_FLOAT_TENSORS];
	float	   *best;			/* (slab.numel) */
	/* batch buffers */
	int32_t    *b_ids;
	size_t		b_ids_cap;
	int32_t    *b_offs;			/* (budget + 1) */
	int32_t    *b_len;			/* (max rows) */
	int32_t    *b_y;			/* (max rows) */
	float	   *x;				/* (budget, D) */
	float	   *dx;				/* (budget, D) */
	float	   *h;				/* (budget, 2H) */
	float	   *dh;				/* (budget, 2H) */
	float	   *feat;			/* (max rows, 4H) */
	float	   *featd;			/* (max rows, 4H) after dropout */
	float	   *dfeat;			/* (max rows, 4H) */
	float	   *dfeatd;			/* (max rows, 4H) */
	uint8_t    *mask;			/* (max rows, 4H) */
	int32_t    *am;				/* (max rows, 2H) */
	float	   *logits;			/* (max rows, L) */
	float	   *dlogits;		/* (max rows, L) */
	float	   *acts;
	/* evaluation */
	float	   *ev_scratch;
	int32_t    *ev_ids;
	int32_t    *ev_offs;
	float	   *probs;			/* (L) */
	int32_t    *pred;
	int32_t    *best_pred;
	/* the ensemble's fast model */
	uint8_t    *fast_bytes;
	size_t		fast_len;
	cai_model_file *fast_file;	/* fast_bytes read; fast uses its tensors */
	cai_textclf *fast;
	float	   *fast_probs;		/* (n_eval, L) */
	size_t		acc_correct;	/* evaluation rows the accurate model alone gets right */
	size_t		best_acc_correct;
	size_t		fast_correct;
} AccTrain;

static void
acc_train_free(AccTrain *t)
{
	cai_textclf_rows_free(&t->rows);
	cai_free(t->tok_off);
	cai_free(t->tok_type);
	cai_textclf_types_free(&t->types);
	cai_free(t->vitems);
	cai_free(t->type_vocab);
	cai_free(t->bag_off);
	cai_free(t->bag);
	cai_free(t->bmap);
	cai_free(t->order);
	cai_free(t->len_key);
	cai_free(t->batches);
	cai_free(t->batch_perm);
	cai_slab_free(&t->slab);
	cai_free(t->best);
	cai_free(t->b_ids);
	cai_free(t->b_offs);
	cai_free(t->b_len);
	cai_free(t->b_y);
	cai_free(t->x);
	cai_free(t->dx);
	cai_free(t->h);
	cai_free(t->dh);
	cai_free(t->feat);
	cai_free(t->featd);
	cai_free(t->dfeat);
	cai_free(t->dfeatd);
	cai_free(t->mask);
	cai_free(t->am);
	cai_free(t->logits);
	cai_free(t->dlogits);
	cai_free(t->acts);
	cai_free(t->ev_scratch);
	cai_free(t->ev_ids);
	cai_free(t->ev_offs);
	cai_free(t->probs);
	cai_free(t->pred);
	cai_free(t->best_pred);
	cai_free(t->fast_bytes);
	cai_textclf_free(t->fast);
	cai_model_file_free(t->fast_file);
	cai_free(t->fast_probs);
}

/* Tokenize every row into type ids; count types in the training rows. */
static cai_status
acc_prepare_tokens(AccTrain *t, Ticker *tk, cai_error *err)
{
	size_t		n_all = t->rows.n_tr + t->rows.n_va;
	char		norm[ACC_NORM_MAX];
	cai_status	st;

	t->tok_off = cai_calloc(n_all + 1, sizeof(size_t));
	if (t->tok_off == NULL)
		return NOMEM(err);
	for (size_t r = 0; r < n_all; r++)
	{
		cai_token  *toks;
		size_t		nt;

		if ((r & 255) == 0 && !ticker_tick(tk, 0.0))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		if ((st = cai_textclf_tokenize(t->rows.txt[r], t->rows.len[r], t->p.max_tokens,
									   ACC_BYTES_PER_TOKEN, &toks, &nt, err)) != CAI_OK)
			return st;
		if (t->tok_off[r] + nt + 1 > t->tok_cap)
		{
			size_t		nc = t->tok_cap == 0 ? 65536 : t->tok_cap;

			while (nc < t->tok_off[r] + nt + 1)
				nc *= 2;
			if (!cai_grow_array((void **) &t->tok_type, sizeof(int32_t), t->tok_cap, nc))
			{
				cai_free(toks);
				return NOMEM(err);
			}
			t->tok_cap = nc;
		}
		for (size_t i = 0; i < nt; i++)
		{
			size_t		nl = acc_token_norm(t->rows.txt[r], &toks[i], norm);
			int64_t		ty = cai_textclf_types_intern(&t->types, norm, nl, acc_word_hash(norm, nl));

			if (ty < 0 || ty >= INT32_MAX)
			{
				cai_free(toks);
				return NOMEM(err);
			}
			t->tok_type[t->tok_off[r] + i] = (int32_t) ty;
			if (r < t->rows.n_tr)
				t->types.count[ty]++;
		}
		cai_free(toks);
		t->tok_off[r + 1] = t->tok_off[r] + nt;
	}
	return CAI_OK;
}

/*
 * Vocabulary (types seen min_count times in training rows), bucket rows
 * (character n-gram buckets of the types seen in training rows) and the
 * embedding bag of every type, as inference builds it.
 */
static cai_status
acc_prepare_bags(AccTrain *t, int64_t min_count, cai_error *err)
{
	cai_textclf_types   *tt = &t->types;
	size_t		nv = 0;
	size_t		total = 0;
	uint64_t	cg[ACC_NGRAMS_MAX];
	int32_t		k = 0;

	t->type_vocab = cai_malloc(sizeof(int32_t) * (tt->n + 1));
	t->vitems = cai_malloc(sizeof(cai_textclf_vocab_item) * (tt->n + 1));
	t->bag_off = cai_calloc(tt->n + 1, sizeof(size_t));
	t->bmap = cai_malloc(sizeof(int32_t) * (size_t) t->p.buckets);
	if (t->type_vocab == NULL || t->vitems == NULL || t->bag_off == NULL || t->bmap == NULL)
		return NOMEM(err);
	for (size_t i = 0; i < tt->n; i++)
	{
		t->type_vocab[i] = -1;
		if (tt->count[i] >= min_count && tt->len[i] > 0 &&
			memchr(tt->arena + tt->off[i], '\0', tt->len[i]) == NULL)
		{
			t->vitems[nv].s = tt->arena + tt->off[i];
			t->vitems[nv].count = tt->count[i];
			t->vitems[nv].type = (int32_t) i;
			nv++;
		}
	}
	if (nv > 0)
		qsort(t->vitems, nv, sizeof(cai_textclf_vocab_item), cai_textclf_vocab_item_cmp);
	for (size_t v = 0; v < nv; v++)
		t->type_vocab[t->vitems[v].type] = (int32_t) v;
	t->V = (int32_t) nv;

	/* bucket rows: the buckets of training types, in increasing order */
	memset(t->bmap, 0xff, sizeof(int32_t) * (size_t) t->p.buckets);
	for (size_t i = 0; i < tt->n; i++)
	{
		int			nc = acc_char_ngrams(&t->p, tt->arena + tt->off[i], tt->len[i], cg);

		total += 1 + (size_t) nc;
		t->bag_off[i + 1] = total;
		if (tt->count[i] > 0)
			for (int j = 0; j < nc; j++)
				t->bmap[acc_char_bucket(cg[j], t->p.buckets)] = 0;
	}
	for (uint32_t b = 0; b < t->p.buckets; b++)
		if (t->bmap[b] == 0)
			t->bmap[b] = k++;
	t->K = k;
	if ((int64_t) t->V + 1 + k >= INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many embedding rows");

	t->bag = cai_malloc(sizeof(int32_t) * (total + 1));
	if (t->bag == NULL)
		return NOMEM(err);
	total = 0;
	for (size_t i = 0; i < tt->n; i++)
	{
		int			nc = acc_char_ngrams(&t->p, tt->arena + tt->off[i], tt->len[i], cg);

		t->bag_off[i] = total;
		t->bag[total++] = t->type_vocab[i] >= 0 ? t->type_vocab[i] : t->V;
		for (int j = 0; j < nc; j++)
		{
			int32_t		row = t->bmap[acc_char_bucket(cg[j], t->p.buckets)];

			if (row >= 0)
				t->bag[total++] = t->V + 1 + row;
		}
	}
	t->bag_off[tt->n] = total;
	return CAI_OK;
}

/* Bag ids and offsets of row r (tokens in order) into ids/offs; returns the id count. */
static size_t
acc_row_bags(const AccTrain *t, size_t r, int32_t *ids, int32_t *offs)
{
	size_t		n = 0;

	offs[0] = 0;
	for (size_t i = t->tok_off[r]; i < t->tok_off[r + 1]; i++)
	{
		int32_t		ty = t->tok_type[i];

		for (size_t j = t->bag_off[ty]; j < t->bag_off[ty + 1]; j++)
			ids[n++] = t->bag[j];
		offs[i - t->tok_off[r] + 1] = (int32_t) n;
	}
	return n;
}

/*
 * Stable sort of t->order by length (insertion into counting buckets keeps
 * the shuffled order within a length).
 */
static cai_status
acc_sort_by_length(AccTrain *t, cai_error *err)
{
	int32_t		max_len = 0;
	size_t	   *cnt;
	int32_t    *tmp;

	for (size_t i = 0; i < t->rows.n_tr; i++)
		if (t->len_key[i] > max_len)
			max_len = t->len_key[i];
	cnt = cai_calloc((size_t) max_len + 2, sizeof(size_t));
	tmp = cai_malloc(sizeof(int32_t) * (t->rows.n_tr + 1));
	if (cnt == NULL || tmp == NULL)
	{
		cai_free(cnt);
		cai_free(tmp);
		return NOMEM(err);
	}
	for (size_t i = 0; i < t->rows.n_tr; i++)
		cnt[t->len_key[t->order[i]] + 1]++;
	for (int32_t l = 0; l <= max_len; l++)
		cnt[l + 1] += cnt[l];
	for (size_t i = 0; i < t->rows.n_tr; i++)
		tmp[cnt[t->len_key[t->order[i]]]++] = t->order[i];
	memcpy(t->order, tmp, sizeof(int32_t) * t->rows.n_tr);
	cai_free(cnt);
	cai_free(tmp);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Training: one batch                                                    */
/* ---------------------------------------------------------------------- */

static void
acc_train_net(AccTrain *t, AccNet *net)
{
	float	   *views[ACC_N_FLOAT_TENSORS];

	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
		views[i] = cai_slab_data(&t->slab, t->pi[i]);
	acc_net_view(net, views, t->p.dim, t->p.hidden, t->L, t->V + 1 + t->K);
}

/* Forward, backward and gradients of one batch; *loss gets the mean loss. */
static cai_status
acc_batch_step(AccTrain *t, const AccBatch *bt, const int32_t *rows, float dropout,
			   float word_dropout, cai_rng *rng, double *loss, cai_error *err)
{
	const int	D = t->p.dim;
	const int	H = t->p.hidden;
	const int	L = t->L;
	const int	B = bt->n;
	const int	T = bt->T > 0 ? bt->T : 1;
	const int32_t R = t->V + 1 + t->K;
	const int32_t UNK = t->V;
	cai_slab   *s = &t->slab;
	AccNet		net;
	cai_lstm_params gfw,
				gbw;
	size_t		n_ids = 0;
	cai_status	st;

	acc_train_net(t, &net);
	/* bags of every padded position (padding: empty bags, zero vectors) */
	for (int b = 0; b < B; b++)
	{
		size_t		r = (size_t) rows[b];
		size_t		nt = t->tok_off[r + 1] - t->tok_off[r];
		size_t		need = 0;

		for (size_t i = t->tok_off[r]; i < t->tok_off[r + 1]; i++)
			need += t->bag_off[t->tok_type[i] + 1] - t->bag_off[t->tok_type[i]];
		if (n_ids + need > t->b_ids_cap)
		{
			size_t		nc = t->b_ids_cap * 2 > n_ids + need ? t->b_ids_cap * 2 : n_ids + need;

			if (!cai_grow_array((void **) &t->b_ids, sizeof(int32_t), t->b_ids_cap, nc))
				return NOMEM(err);
			t->b_ids_cap = nc;
		}
		t->b_len[b] = (int32_t) nt;
		t->b_y[b] = t->rows.lab[r];
		for (size_t i = 0; i < (size_t) T; i++)
		{
			t->b_offs[(size_t) b * T + i] = (int32_t) n_ids;
			if (i < nt)
			{
				int32_t		ty = t->tok_type[t->tok_off[r] + i];
				size_t		j0 = t->bag_off[ty];

				for (size_t j = j0; j < t->bag_off[ty + 1]; j++)
					t->b_ids[n_ids++] = t->bag[j];
				/* word dropout: the UNK row instead of the word's */
				if (word_dropout > 0 && t->bag[j0] != UNK && cai_rng_uniform(rng) < word_dropout)
					t->b_ids[t->b_offs[(size_t) b * T + i]] = UNK;
			}
		}
	}
	t->b_offs[(size_t) B * T] = (int32_t) n_ids;

	/* forward */
	if ((st = cai_embedding_bag_mean_forward(t->x, net.emb, t->b_ids, t->b_offs, B * T, R, D, err)) != CAI_OK)
		return st;
	if ((st = cai_bilstm_forward(&net.fw, &net.bw, t->x, t->b_len, B, T, D, H, t->h, t->acts, err)) != CAI_OK)
		return st;
	for (int b = 0; b < B; b++)
	{
		float	   *hb = t->h + (size_t) b * T * 2 * H;
		float	   *fb = t->feat + (size_t) b * 4 * H;

		cai_maxpool_forward(fb, t->am + (size_t) b * 2 * H, hb, t->b_len[b], 2 * H);
		cai_meanpool_forward(fb + 2 * H, hb, t->b_len[b], 2 * H);
	}
	if ((st = cai_dropout_forward(t->featd, t->mask, t->feat, (size_t) B * 4 * H, dropout, true, rng, err)) != CAI_OK)
		return st;
	cai_linear_forward(t->logits, t->featd, net.out_w, net.out_b, B, 4 * H, L);
	if ((st = cai_softmax_xent_forward(t->logits, loss, t->logits, t->b_y, B, L, 1.0f / (float) B, err)) != CAI_OK)
		return st;

	/* backward */
	cai_slab_zero_grad(s);
	memset(t->dlogits, 0, sizeof(float) * (size_t) B * L);
	cai_softmax_xent_backward(t->dlogits, t->logits, t->b_y, B, L, 1.0f / (float) B);
	memset(t->dfeatd, 0, sizeof(float) * (size_t) B * 4 * H);
	cai_linear_backward(t->dfeatd, cai_slab_grad(s, t->pi[7]), cai_slab_grad(s, t->pi[8]),
						t->dlogits, t->featd, net.out_w, B, 4 * H, L);
	memset(t->dfeat, 0, sizeof(float) * (size_t) B * 4 * H);
	cai_dropout_backward(t->dfeat, t->dfeatd, t->mask, (size_t) B * 4 * H, dropout, true);
	memset(t->dh, 0, sizeof(float) * (size_t) B * T * 2 * H);
	for (int b = 0; b < B; b++)
	{
		float	   *dhb = t->dh + (size_t) b * T * 2 * H;
		float	   *dfb = t->dfeat + (size_t) b * 4 * H;

		cai_maxpool_backward(dhb, dfb, t->am + (size_t) b * 2 * H, t->b_len[b], 2 * H);
		cai_meanpool_backward(dhb, dfb + 2 * H, t->b_len[b], 2 * H);
	}
	gfw.w_ih = cai_slab_grad(s, t->pi[1]);
	gfw.w_hh = cai_slab_grad(s, t->pi[2]);
	gfw.b = cai_slab_grad(s, t->pi[3]);
	gbw.w_ih = cai_slab_grad(s, t->pi[4]);
	gbw.w_hh = cai_slab_grad(s, t->pi[5]);
	gbw.b = cai_slab_grad(s, t->pi[6]);
	memset(t->dx, 0, sizeof(float) * (size_t) B * T * D);
	if ((st = cai_bilstm_backward(&net.fw, &net.bw, &gfw, &gbw, t->b_len, B, T, D, H,
								  t->dh, t->dx, t->acts, err)) != CAI_OK)
		return st;
	cai_embedding_bag_mean_backward(cai_slab_grad(s, t->pi[0]), cai_slab_rowset(s, t->pi[0]),
									t->dx, t->b_ids, t->b_offs, B * T, R, D);
	return CAI_OK;
}

/*
 * Predict the evaluation rows with the current parameters through the
 * inference code; false (and *cancelled) when the callback cancels.
 */
static cai_status
acc_eval(AccTrain *t, Ticker *tk, size_t from, size_t n, double *mean_loss, cai_error *err)
{
	AccNet		net;
	double		loss = 0.0;
	cai_status	st;

	acc_train_net(t, &net);
	t->acc_correct = 0;
	for (size_t i = 0; i < n; i++)
	{
		size_t		r = from + i;
		int			T = (int) (t->tok_off[r + 1] - t->tok_off[r]);

		if ((i & 255) == 255 && !ticker_tick(tk, tk->p.fraction))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		acc_row_bags(t, r, t->ev_ids, t->ev_offs);
		if ((st = acc_net_infer(&net, t->ev_ids, t->ev_offs, T, t->ev_scratch, t->probs, err)) != CAI_OK)
			return st;
		if (t->fast != NULL)
		{
			const float *f = t->fast_probs + i * (size_t) t->L;

			t->acc_correct += cai_argmax(t->probs, t->L) == t->rows.lab[r];
			for (int c = 0; c < t->L; c++)
				t->probs[c] = 0.5f * (t->probs[c] + f[c]);
		}
		t->pred[i] = cai_argmax(t->probs, t->L);
		loss -= log(fmax((double) t->probs[t->rows.lab[r]], 1e-30));
	}
	*mean_loss = n > 0 ? loss / (double) n : 0.0;
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Training: entry points                                                 */
/* ---------------------------------------------------------------------- */

static cai_status
acc_params_from_options(const cai_options *o, AccParams *ap, cai_error *err)
{
	ap->dim = (int) cai_opt_int(o, "dimensions");
	ap->hidden = ap->dim;
	ap->minn = (int) cai_opt_int(o, "minn");
	ap->maxn = (int) cai_opt_int(o, "maxn");
	ap->max_tokens = (int) cai_opt_int(o, "max_tokens");
	ap->buckets = (uint32_t) cai_opt_int(o, "buckets");
	if (ap->dim < 1 || ap->dim > ACC_MAX_DIM)
		return cai_error_set(err, CAI_ERR_INVALID, "dimensions must be 1 to %d", ACC_MAX_DIM);
	if (ap->minn < 0 || ap->maxn < 0 || (ap->minn == 0) != (ap->maxn == 0) || ap->minn > ap->maxn)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "minn (%d) and maxn (%d) must both be 0 or satisfy 1 <= minn <= maxn",
							 ap->minn, ap->maxn);
	if (ap->max_tokens < 1 || ap->max_tokens > INT32_MAX / ACC_BYTES_PER_TOKEN)
		return cai_error_set(err, CAI_ERR_INVALID, "max_tokens is out of range");
	if (ap->buckets < 1 || ap->buckets > ACC_MAX_BUCKETS)
		return cai_error_set(err, CAI_ERR_INVALID, "buckets must be 1 to %d", ACC_MAX_BUCKETS);
	return CAI_OK;
}

/*
 * Deliberately high estimate from the text bytes alone (see the fast
 * architecture's): ~4 bytes per token, distinct words ~ 40 sqrt(tokens),
 * each distinct word bringing 2 new character n-grams per n-gram length.
 */
size_t
cai_textclf_accurate_train_memory(const cai_options *opts, const cai_textclf_data *train, int n_labels)
{
	AccParams	ap;
	size_t		tokens = 0;
	size_t		bytes = 0;
	size_t		cap;
	size_t		types,
				rows,
				nchar,
				params,
				acts = 0,
				total;
	int			bsz;

	if (opts == NULL || train == NULL || n_labels < 1 || acc_params_from_options(opts, &ap, NULL) != CAI_OK)
		return 0;
	bsz = (int) cai_opt_int(opts, "batch_size");
	cap = (size_t) ap.max_tokens * ACC_BYTES_PER_TOKEN;
	for (size_t i = 0; i < train->n; i++)
	{
		size_t		l = train->lens != NULL ? train->lens[i] : 0;

		if (l > cap)
			l = cap;
		bytes += l;
		tokens += l / 4 + 1 < (size_t) ap.max_tokens ? l / 4 + 1 : (size_t) ap.max_tokens;
	}
	nchar = ap.minn > 0 ? (size_t) (ap.maxn - ap.minn + 1) : 0;
	types = (size_t) (40.0 * sqrt((double) tokens)) + 1;
	if (types > tokens + 1)
		types = tokens + 1;
	rows = types + 1 + (nchar * 2 * types < ap.buckets ? nchar * 2 * types : ap.buckets);
	params = rows * (size_t) ap.dim +
		2 * cai_lstm_param_count(ap.dim, ap.hidden) + (size_t) n_labels * (4 * (size_t) ap.hidden + 1);
	/* data, grad, m, v, best copy, row sets */
	total = 5 * params * sizeof(float) + rows * 5;
	{
		int			T = ap.max_tokens < ACC_TOKEN_BUDGET ? ap.max_tokens : ACC_TOKEN_BUDGET;
		int			B = ACC_TOKEN_BUDGET / T > bsz ? ACC_TOKEN_BUDGET / T : bsz;

		if (B * T > 4 * ACC_TOKEN_BUDGET)
			B = 4 * ACC_TOKEN_BUDGET / T;
		if (cai_bilstm_acts_size(B, T, ap.dim, ap.hidden, &acts, NULL) != CAI_OK)
			acts = 0;
		total += acts * sizeof(float);
		total += (size_t) B * T * (2 * (size_t) ap.dim + 4 * (size_t) ap.hidden) * sizeof(float);
	}
	total += tokens * (sizeof(int32_t) + (1 + 5 * nchar) * sizeof(int32_t)) + bytes;
	total += types * (64 + (1 + 5 * nchar) * sizeof(int32_t));
	total += (size_t) ap.buckets * sizeof(int32_t);
	total += train->n * (6 * sizeof(int32_t) + sizeof(char *) + 2 * sizeof(size_t));
	total += params * sizeof(float) + bytes / 2;	/* the serialized model */
	return total;
}

static char *
acc_metadata(const AccTrain *t, const cai_options *opts, const char *const *label_names,
			 json_object *metrics, json_object *prov, uint64_t fingerprint, json_object *train_opts)
{
	json_object *root = json_object_new_object();
	json_object *labels = json_object_new_array();
	json_object *aj = json_object_new_object();
	json_object *oj = NULL;
	char	   *ojs = cai_options_to_json(opts);
	char		fpbuf[32];
	char	   *out = NULL;
	bool		ok;

	if (ojs != NULL)
		oj = cai_json_parse_object(ojs);
	cai_free(ojs);
	snprintf(fpbuf, sizeof(fpbuf), "%016" PRIx64, fingerprint);
	ok = root != NULL && labels != NULL && aj != NULL && oj != NULL;
	for (int c = 0; ok && c < t->L; c++)
		ok = json_object_array_add(labels, json_object_new_string(label_names[c])) == 0;
	ok = ok &&
		cai_json_put(aj, "feature_version", json_object_new_int(ACC_FEATURE_VERSION)) &&
		cai_json_put(aj, "feature_fingerprint", json_object_new_string(fpbuf)) &&
		cai_json_put(aj, "dimensions", json_object_new_int(t->p.dim)) &&
		cai_json_put(aj, "hidden", json_object_new_int(t->p.hidden)) &&
		cai_json_put(aj, "minn", json_object_new_int(t->p.minn)) &&
		cai_json_put(aj, "maxn", json_object_new_int(t->p.maxn)) &&
		cai_json_put(aj, "max_tokens", json_object_new_int(t->p.max_tokens)) &&
		cai_json_put(aj, "buckets", json_object_new_int64(t->p.buckets)) &&
		cai_json_put(aj, "vocab_size", json_object_new_int(t->V)) &&
		cai_json_put(aj, "bucket_rows", json_object_new_int(t->K)) &&
		cai_json_put(aj, "ensemble_fast", json_object_new_int(t->fast != NULL)) &&
		cai_json_put(aj, "training", json_object_get(train_opts));
	if (ok)
	{
		ok = cai_json_put(root, "task", json_object_new_string("text_classification")) &&
			cai_json_put(root, "architecture", json_object_new_string("accurate")) &&
			cai_json_put(root, "labels", labels);
		labels = NULL;
		ok = ok && cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING)) &&
			cai_json_put(root, "options", oj);
		oj = NULL;
		ok = ok && cai_json_put(root, "accurate", aj);
		aj = NULL;
		ok = ok && cai_json_put(root, "metrics", json_object_get(metrics)) &&
			cai_json_put(root, "provenance", json_object_get(prov));
	}
	if (ok)
	{
		const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);

		if (s != NULL)
			out = cai_strndup(s, strlen(s));
	}
	json_object_put(root);
	json_object_put(labels);
	json_object_put(aj);
	json_object_put(oj);
	return out;
}

static cai_status
acc_serialize(AccTrain *t, const char *meta, uint8_t **model, size_t *model_len, cai_error *err)
{
	cai_tensor	ts[6 + ACC_N_FLOAT_TENSORS];
	int32_t    *vslot = NULL;
	int32_t    *bslot = NULL;
	AccTensorSpec specs[ACC_N_FLOAT_TENSORS];
	int			nt = 0;
	int32_t    *off = NULL;
	char	   *bytes = NULL;
	int32_t    *bids = NULL;
	size_t		nbytes = 0;
	cai_status	st;

	memset(ts, 0, sizeof(ts));
	if (t->V > 0)
	{
		st = cai_textclf_pack_vocab(&t->types, t->vitems, t->V, "accurate", &ts[nt],
									(char **) &bytes, &off, &nbytes, err);
		if (st != CAI_OK)
			goto done;
		nt += 2;
		{
			cai_strindex ix = {t->V, bytes, nbytes, off, NULL, cai_index_capacity(t->V) - 1, ACC_SEED_WORD};

			if ((vslot = cai_malloc(sizeof(int32_t) * ((size_t) ix.mask + 1))) == NULL)
			{
				st = NOMEM(err);
				goto done;
			}
			if ((st = cai_strindex_build(&ix, vslot, "vocabulary", err)) != CAI_OK)
				goto done;
			strcpy(ts[nt].name, "accurate.vocab.slots");
			ts[nt].dtype = CAI_I32;
			ts[nt].ndim = 1;
			ts[nt].shape[0] = (int64_t) ix.mask + 1;
			ts[nt].data = vslot;
			ts[nt].nbytes = sizeof(int32_t) * ((size_t) ix.mask + 1);
			nt++;
		}
	}
	if (t->K > 0)
	{
		int32_t		k = 0;

		bids = cai_malloc(sizeof(int32_t) * (size_t) t->K);
		if (bids == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		for (uint32_t b = 0; b < t->p.buckets; b++)
			if (t->bmap[b] >= 0)
				bids[k++] = (int32_t) b;
		strcpy(ts[nt].name, "accurate.buckets");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = t->K;
		ts[nt].data = bids;
		ts[nt].nbytes = sizeof(int32_t) * (size_t) t->K;
		nt++;
		{
			cai_intindex ix = {t->K, bids, NULL, cai_index_capacity(t->K) - 1};

			if ((bslot = cai_malloc(sizeof(int32_t) * ((size_t) ix.mask + 1))) == NULL)
			{
				st = NOMEM(err);
				goto done;
			}
			if ((st = cai_intindex_build(&ix, bslot, "bucket index", err)) != CAI_OK)
				goto done;
			strcpy(ts[nt].name, "accurate.buckets.slots");
			ts[nt].dtype = CAI_I32;
			ts[nt].ndim = 1;
			ts[nt].shape[0] = (int64_t) ix.mask + 1;
			ts[nt].data = bslot;
			ts[nt].nbytes = sizeof(int32_t) * ((size_t) ix.mask + 1);
			nt++;
		}
	}
	acc_tensor_specs((int64_t) t->V + 1 + t->K, t->p.dim, t->p.hidden, t->L, specs);
	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
	{
		strcpy(ts[nt].name, specs[i].name);
		ts[nt].dtype = CAI_F32;
		ts[nt].ndim = specs[i].ndim;
		ts[nt].shape[0] = specs[i].shape[0];
		ts[nt].shape[1] = specs[i].shape[1];
		ts[nt].data = t->best + t->slab.params[t->pi[i]].offset;
		ts[nt].nbytes = sizeof(float) * spec_numel(&specs[i]);
		nt++;
	}
	if (t->fast != NULL)
	{
		strcpy(ts[nt].name, "accurate.fast_model");
		ts[nt].dtype = CAI_U8;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = (int64_t) t->fast_len;
		ts[nt].data = t->fast_bytes;
		ts[nt].nbytes = t->fast_len;
		nt++;
	}
	st = cai_format_write(meta, ts, nt, model, model_len, err);
done:
	cai_free(off);
	cai_free(bytes);
	cai_free(bids);
	cai_free(vslot);
	cai_free(bslot);
	return st;
}

/* Progress of the fast model's training: ticks only (its epochs are not ours). */
static bool
acc_fast_progress(void *ctx, const cai_progress *p)
{
	return ticker_tick((Ticker *) ctx, 0.0);
}

/*
 * Train the ensemble's fast model on the same training rows (the same
 * seeded split when valid is NULL), with the fast architecture's defaults
 * for its own hyperparameters (its option table, as cai_textclf_parse_options
 * would choose for "architecture": "fast"), then predict the evaluation rows
 * with it.
 */
static cai_status
acc_train_fast(AccTrain *t, const cai_options *opts, const char *const *label_names,
			   const cai_textclf_data *train, const cai_textclf_data *valid,
			   size_t eval_from, size_t n_eval, Ticker *tk, cai_error *err)
{
	char		js[512];
	cai_options *fo = NULL;
	json_object *fprov;
	char	   *fmetrics = NULL;
	cai_error	e2;
	cai_status	st;

	snprintf(js, sizeof(js),
			 "{\"architecture\": \"fast\", \"seed\": %" PRId64 ", \"validation_fraction\": %.17g, "
			 "\"min_count\": %" PRId64 ", \"max_tokens\": %d, \"minn\": %d, \"maxn\": %d, "
			 "\"buckets\": %u, \"patience\": %" PRId64 "}",
			 cai_opt_int(opts, "seed"), cai_opt_float(opts, "validation_fraction"),
			 cai_opt_int(opts, "min_count"), t->p.max_tokens, t->p.minn, t->p.maxn,
			 t->p.buckets, cai_opt_int(opts, "patience"));
	if ((st = cai_options_parse(cai_textclf_fast_option_defs, cai_textclf_fast_n_option_defs,
								js, &fo, err)) != CAI_OK)
		return st;
	/* the fast model's own provenance, which its training fills in */
	if ((fprov = json_object_new_object()) == NULL)
	{
		cai_options_free(fo);
		return NOMEM(err);
	}
	st = cai_textclf_fast_train(fo, label_names, t->L, train, valid, fprov, acc_fast_progress, tk,
								&t->fast_bytes, &t->fast_len, &fmetrics, &e2);
	json_object_put(fprov);
	cai_options_free(fo);
	cai_free(fmetrics);
	if (st != CAI_OK)
		return cai_error_set(err, st, "%s", e2.msg);
	if ((st = cai_format_read(t->fast_bytes, t->fast_len, &t->fast_file, err)) != CAI_OK)
		return st;
	/* the loaded model uses the model file's tensors: keep it until acc_train_free */
	if ((st = cai_textclf_load(t->fast_file, &t->fast, err)) != CAI_OK)
		return st;
	t->fast_probs = cai_malloc(sizeof(float) * (n_eval * (size_t) t->L + 1));
	if (t->fast_probs == NULL)
		return NOMEM(err);
	t->fast_correct = 0;
	for (size_t i = 0; i < n_eval; i++)
	{
		size_t		r = eval_from + i;
		float	   *f = t->fast_probs + i * (size_t) t->L;

		if ((i & 255) == 255 && !ticker_tick(tk, 0.0))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		if ((st = cai_textclf_predict(t->fast, t->rows.txt[r], t->rows.len[r], f, err)) != CAI_OK)
			return st;
		t->fast_correct += cai_argmax(f, t->L) == t->rows.lab[r];
	}
	return CAI_OK;
}

/* Declare and allocate the parameters; initialize them from rng. */
static cai_status
acc_init_params(AccTrain *t, const cai_optim_config *cfg, cai_rng *rng, cai_error *err)
{
	AccTensorSpec specs[ACC_N_FLOAT_TENSORS];
	cai_lstm_params fw,
				bw;
	cai_status	st;

	cai_slab_init(&t->slab);
	acc_tensor_specs((int64_t) t->V + 1 + t->K, t->p.dim, t->p.hidden, t->L, specs);
	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
		if ((st = cai_slab_declare(&t->slab, specs[i].name, specs[i].ndim, specs[i].shape,
								   &t->pi[i], err)) != CAI_OK)
			return st;
	if ((st = cai_slab_set_sparse(&t->slab, t->pi[0], err)) != CAI_OK ||
		(st = cai_slab_alloc(&t->slab, true, cai_optim_state_slabs(cfg), 0, err)) != CAI_OK)
		return st;
	cai_init_uniform(cai_slab_data(&t->slab, t->pi[0]), spec_numel(&specs[0]), 0.1f, rng);
	fw.w_ih = cai_slab_data(&t->slab, t->pi[1]);
	fw.w_hh = cai_slab_data(&t->slab, t->pi[2]);
	fw.b = cai_slab_data(&t->slab, t->pi[3]);
	bw.w_ih = cai_slab_data(&t->slab, t->pi[4]);
	bw.w_hh = cai_slab_data(&t->slab, t->pi[5]);
	bw.b = cai_slab_data(&t->slab, t->pi[6]);
	cai_lstm_init(&fw, t->p.dim, t->p.hidden, rng);
	cai_lstm_init(&bw, t->p.dim, t->p.hidden, rng);
	cai_init_xavier(cai_slab_data(&t->slab, t->pi[7]), spec_numel(&specs[7]), 4 * t->p.hidden, t->L, rng);
	t->best = cai_malloc(sizeof(float) * t->slab.numel);
	if (t->best == NULL)
		return NOMEM(err);
	memcpy(t->best, t->slab.data, sizeof(float) * t->slab.numel);
	return CAI_OK;
}

/* Batches over t->order (sorted by length): at most batch_size rows and ACC_TOKEN_BUDGET padded positions. */
static cai_status
acc_make_batches(AccTrain *t, int batch_size, size_t *max_ids, cai_error *err)
{
	size_t		i = 0;
	size_t		max_acts = 0;
	int			max_rows = 1;
	int32_t		max_pos = 1;

	t->batches = cai_malloc(sizeof(AccBatch) * (t->rows.n_tr + 1));
	t->batch_perm = cai_malloc(sizeof(int32_t) * (t->rows.n_tr + 1));
	if (t->batches == NULL || t->batch_perm == NULL)
		return NOMEM(err);
	t->n_batches = 0;
	*max_ids = 0;
	while (i < t->rows.n_tr)
	{
		AccBatch   *b = &t->batches[t->n_batches];
		size_t		acts;
		cai_status	st;

		b->first = (int32_t) i;
		b->n = 0;
		b->T = 1;
		while (i < t->rows.n_tr && b->n < batch_size)
		{
			int32_t		l = t->len_key[t->order[i]];
			int32_t		T = l > b->T ? l : b->T;

			if (b->n > 0 && (int64_t) (b->n + 1) * T > ACC_TOKEN_BUDGET)
				break;
			b->T = T;
			b->n++;
			i++;
		}
		if ((st = cai_bilstm_acts_size(b->n, b->T, t->p.dim, t->p.hidden, &acts, err)) != CAI_OK)
			return st;
		if (acts > max_acts)
			max_acts = acts;
		if (b->n > max_rows)
			max_rows = b->n;
		if (b->n * b->T > max_pos)
			max_pos = b->n * b->T;
		t->batch_perm[t->n_batches] = (int32_t) t->n_batches;
		t->n_batches++;
	}
	for (size_t r = 0; r < t->rows.n_tr + t->rows.n_va; r++)
	{
		size_t		n = 0;

		for (size_t j = t->tok_off[r]; j < t->tok_off[r + 1]; j++)
			n += t->bag_off[t->tok_type[j] + 1] - t->bag_off[t->tok_type[j]];
		if (n > *max_ids)
			*max_ids = n;
	}
	{
		const size_t D = (size_t) t->p.dim;
		const size_t H = (size_t) t->p.hidden;
		const size_t P = (size_t) max_pos;
		const size_t M = (size_t) max_rows;

		t->acts = cai_malloc(sizeof(float) * (max_acts + 1));
		t->b_offs = cai_malloc(sizeof(int32_t) * (P + 1));
		t->b_len = cai_malloc(sizeof(int32_t) * M);
		t->b_y = cai_malloc(sizeof(int32_t) * M);
		t->x = cai_malloc(sizeof(float) * P * D);
		t->dx = cai_malloc(sizeof(float) * P * D);
		t->h = cai_malloc(sizeof(float) * P * 2 * H);
		t->dh = cai_malloc(sizeof(float) * P * 2 * H);
		t->feat = cai_malloc(sizeof(float) * M * 4 * H);
		t->featd = cai_malloc(sizeof(float) * M * 4 * H);
		t->dfeat = cai_malloc(sizeof(float) * M * 4 * H);
		t->dfeatd = cai_malloc(sizeof(float) * M * 4 * H);
		t->mask = cai_malloc(M * 4 * H);
		t->am = cai_malloc(sizeof(int32_t) * M * 2 * H);
		t->logits = cai_malloc(sizeof(float) * M * (size_t) t->L);
		t->dlogits = cai_malloc(sizeof(float) * M * (size_t) t->L);
		if (t->acts == NULL || t->b_offs == NULL || t->b_len == NULL || t->b_y == NULL ||
			t->x == NULL || t->dx == NULL || t->h == NULL || t->dh == NULL || t->feat == NULL ||
			t->featd == NULL || t->dfeat == NULL || t->dfeatd == NULL || t->mask == NULL ||
			t->am == NULL || t->logits == NULL || t->dlogits == NULL)
			return NOMEM(err);
	}
	return CAI_OK;
}

cai_status
cai_textclf_accurate_train(const cai_options *opts, const char *const *label_names, int n_labels,
						   const cai_textclf_data *train, const cai_textclf_data *valid,
						   json_object *prov, cai_progress_fn progress, void *progress_ctx,
						   uint8_t **model, size_t *model_len, char **metrics_json, cai_error *err)
{
	AccTrain	t;
	Ticker		tk;
	cai_rng		rng;
	cai_optim_config cfg = cai_optim_defaults(CAI_OPTIM_ADAM);
	int			epochs = (int) cai_opt_int(opts, "epochs");
	const double lr0 = cai_opt_float(opts, "learning_rate");
	const double dropout = cai_opt_float(opts, "dropout");
	const double word_dropout = dropout / 2;
	const int	batch_size = (int) cai_opt_int(opts, "batch_size");
	const double frac = cai_opt_float(opts, "validation_fraction");
	const int64_t min_count = cai_opt_int(opts, "min_count");
	const int	patience = (int) cai_opt_int(opts, "patience");
	const uint64_t seed = (uint64_t) cai_opt_int(opts, "seed");
	const int	threads = (int) cai_opt_int(opts, "threads");
	const int	old_threads = cai_blas_get_threads();
	size_t		max_ids = 0;
	size_t		n_eval,
				eval_from;
	int64_t		step = 0,
				steps_total;
	int			best_epoch = 0;
	int			epochs_run = 0;
	double		best_acc = -1.0;
	double		best_loss = INFINITY;
	double		seconds;
	uint64_t	fingerprint;
	json_object *metrics = NULL;
	json_object *acc;
	json_object *train_opts = NULL;
	char	   *report = NULL;
	char	   *meta = NULL;
	cai_status	st;

	memset(&t, 0, sizeof(t));
	cai_slab_init(&t.slab);
	memset(&tk, 0, sizeof(tk));
	tk.fn = progress;
	tk.ctx = progress_ctx;
	tk.start = tk.last = cai_now_seconds();
	tk.max_seconds = cai_opt_float(opts, "max_seconds");
	t.L = n_labels;

	if ((st = acc_params_from_options(opts, &t.p, err)) != CAI_OK)
		return st;
	if (epochs < 0 || !(lr0 > 0) || !(dropout >= 0 && dropout < 1) || !(frac >= 0 && frac < 1) ||
		min_count < 1 || batch_size < 1)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "epochs, learning_rate, dropout, validation_fraction, batch_size or min_count out of range");
	if ((st = acc_fingerprint(&t.p, &fingerprint, err)) != CAI_OK)
		return st;
	cai_blas_set_threads(threads);

	if ((st = cai_textclf_split(train, valid, frac, n_labels, seed, &t.rows, err)) != CAI_OK)
		goto done;
	if (t.rows.n_tr == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "no training rows");
		goto done;
	}
	n_eval = t.rows.n_va > 0 ? t.rows.n_va : t.rows.n_tr;
	eval_from = t.rows.n_va > 0 ? t.rows.n_tr : 0;
	if ((st = acc_prepare_tokens(&t, &tk, err)) != CAI_OK ||
		(st = acc_prepare_bags(&t, min_count, err)) != CAI_OK)
		goto done;

	/* rows by length, batches */
	t.order = cai_malloc(sizeof(int32_t) * (t.rows.n_tr + 1));
	t.len_key = cai_malloc(sizeof(int32_t) * (t.rows.n_tr + 1));
	if (t.order == NULL || t.len_key == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (size_t r = 0; r < t.rows.n_tr; r++)
	{
		t.order[r] = (int32_t) r;
		t.len_key[r] = (int32_t) (t.tok_off[r + 1] - t.tok_off[r]);
	}
	cai_rng_seed(&rng, seed);
	if ((st = acc_sort_by_length(&t, err)) != CAI_OK ||
		(st = acc_make_batches(&t, batch_size, &max_ids, err)) != CAI_OK ||
		(st = acc_init_params(&t, &cfg, &rng, err)) != CAI_OK)
		goto done;

	/* evaluation buffers */
	{
		int			maxT = 1;
		size_t		nf;
		AccNet		net;

		for (size_t r = eval_from; r < eval_from + n_eval; r++)
			if ((int) (t.tok_off[r + 1] - t.tok_off[r]) > maxT)
				maxT = (int) (t.tok_off[r + 1] - t.tok_off[r]);
		acc_train_net(&t, &net);
		if (!acc_infer_floats(&net, maxT, &nf))
		{
			st = cai_error_set(err, CAI_ERR_LIMIT, "validation texts are too long");
			goto done;
		}
		t.ev_scratch = cai_malloc(sizeof(float) * nf);
		t.ev_ids = cai_malloc(sizeof(int32_t) * (max_ids + 1));
		t.ev_offs = cai_malloc(sizeof(int32_t) * ((size_t) maxT + 1));
		t.probs = cai_malloc(sizeof(float) * (size_t) n_labels);
		t.pred = cai_malloc(sizeof(int32_t) * n_eval);
		t.best_pred = cai_malloc(sizeof(int32_t) * n_eval);
		if (t.ev_scratch == NULL || t.ev_ids == NULL || t.ev_offs == NULL || t.probs == NULL ||
			t.pred == NULL || t.best_pred == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
	}

	if ((st = acc_train_fast(&t, opts, label_names, train, valid, eval_from, n_eval, &tk, err)) != CAI_OK)
		goto done;

	if (epochs == 0)
	{
		size_t		want = (ACC_AUTO_UPDATES + t.rows.n_tr - 1) / t.rows.n_tr;

		epochs = want < ACC_AUTO_MIN_EPOCHS ? ACC_AUTO_MIN_EPOCHS :
			want > ACC_AUTO_MAX_EPOCHS ? ACC_AUTO_MAX_EPOCHS : (int) want;
	}
	tk.p.epochs = epochs;
	steps_total = (int64_t) epochs * (int64_t) t.n_batches;
	for (int ep = 1; ep <= epochs; ep++)
	{
		double		ep_start = cai_now_seconds();
		double		loss_sum = 0.0;
		size_t		rows_done = 0;
		double		acc,
					mf1,
					vloss = 0;
		bool		out_of_time = false;

		/* reshuffle rows within each length, then the batch order */
		cai_rng_shuffle(&rng, t.order, t.rows.n_tr);
		if ((st = acc_sort_by_length(&t, err)) != CAI_OK)
			goto done;
		cai_rng_shuffle(&rng, t.batch_perm, t.n_batches);
		for (size_t bi = 0; bi < t.n_batches; bi++)
		{
			const AccBatch *bt = &t.batches[t.batch_perm[bi]];
			float		lr = cai_lr_schedule(CAI_LR_LINEAR, (float) lr0, (float) lr0 * ACC_MIN_LR_FRACTION,
											 step, 0, steps_total);
			double		loss = 0.0;
			float		norm;

			if (!ticker_tick(&tk, (double) step / (double) steps_total))
			{
				st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
				goto done;
			}
			if (tk.max_seconds > 0 && cai_now_seconds() - tk.start >= tk.max_seconds)
			{
				out_of_time = true;
				break;
			}
			if ((st = acc_batch_step(&t, bt, t.order + bt->first, (float) dropout, (float) word_dropout,
									 &rng, &loss, err)) != CAI_OK)
				goto done;
			norm = cai_slab_clip_grad_norm(&t.slab, ACC_CLIP_NORM);
			if (!isfinite(norm) || !isfinite(loss))
			{
				st = cai_error_set(err, CAI_ERR_NUMERIC,
								   "training diverged in epoch %d (the loss is not finite); lower learning_rate", ep);
				goto done;
			}
			step++;
			if ((st = cai_slab_step(&t.slab, &cfg, lr, step, err)) != CAI_OK)
				goto done;
			loss_sum += loss * bt->n;
			rows_done += (size_t) bt->n;
		}
		epochs_run = ep;
		if ((st = acc_eval(&t, &tk, eval_from, n_eval, &vloss, err)) != CAI_OK)
			goto done;
		cai_classification_scores(t.rows.lab + eval_from, t.pred, n_eval, n_labels, &acc, &mf1);
		if (acc > best_acc || (acc == best_acc && vloss < best_loss))
		{
			best_acc = acc;
			best_loss = vloss;
			best_epoch = ep;
			memcpy(t.best, t.slab.data, sizeof(float) * t.slab.numel);
			memcpy(t.best_pred, t.pred, sizeof(int32_t) * n_eval);
			t.best_acc_correct = t.acc_correct;
		}
		tk.p.epoch = ep;
		tk.p.loss = loss_sum / (double) (rows_done > 0 ? rows_done : 1);
		tk.p.val_score = acc;
		tk.p.rows_per_sec = (double) (rows_done > 0 ? rows_done : 1) / fmax(cai_now_seconds() - ep_start, 1e-9);
		tk.p.fraction = (double) ep / (double) epochs;
		tk.p.epoch_done = true;
		if (progress != NULL && !progress(progress_ctx, &tk.p))
		{
			st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
			goto done;
		}
		tk.last = cai_now_seconds();
		out_of_time = out_of_time || (tk.max_seconds > 0 && cai_now_seconds() - tk.start >= tk.max_seconds);
		if (out_of_time || (patience > 0 && t.rows.n_va > 0 && ep - best_epoch >= patience))
			break;
	}
	if (t.rows.n_va == 0)
	{
		memcpy(t.best, t.slab.data, sizeof(float) * t.slab.numel);
		memcpy(t.best_pred, t.pred, sizeof(int32_t) * n_eval);
		t.best_acc_correct = t.acc_correct;
		best_epoch = epochs_run;
	}
	if (!cai_all_finite(t.best, t.slab.numel))
	{
		st = cai_error_set(err, CAI_ERR_NUMERIC, "training diverged (a weight is not finite); lower learning_rate");
		goto done;
	}
	seconds = cai_now_seconds() - tk.start;

	if ((st = cai_classification_report(t.rows.lab + eval_from, t.best_pred, n_eval, label_names, n_labels,
										&report, err)) != CAI_OK)
		goto done;
	metrics = cai_json_parse_object(report);
	train_opts = json_object_new_object();
	if (metrics == NULL || train_opts == NULL ||
		!cai_json_put(metrics, "evaluated_on", json_object_new_string(t.rows.n_va > 0 ? "validation" : "train")) ||
		!cai_json_put(metrics, "train_rows", json_object_new_int64((int64_t) t.rows.n_tr)) ||
		!cai_json_put(metrics, "validation_rows", json_object_new_int64((int64_t) t.rows.n_va)) ||
		!cai_json_put(metrics, "best_epoch", json_object_new_int(best_epoch)) ||
		!cai_json_put(metrics, "epochs_run", json_object_new_int(epochs_run)) ||
		!cai_json_put(metrics, "epochs_planned", json_object_new_int(epochs)) ||
		!cai_json_put(metrics, "vocab_size", json_object_new_int(t.V)) ||
		!cai_json_put(metrics, "bucket_rows", json_object_new_int(t.K)) ||
		!cai_json_put(metrics, "accurate_only_accuracy",
			 json_object_new_double((double) t.best_acc_correct / (double) (n_eval > 0 ? n_eval : 1))) ||
		!cai_json_put(metrics, "fast_only_accuracy",
			 json_object_new_double((double) t.fast_correct / (double) (n_eval > 0 ? n_eval : 1))) ||
		!cai_json_put(train_opts, "learning_rate", json_object_new_double(lr0)) ||
		!cai_json_put(train_opts, "dropout", json_object_new_double(dropout)) ||
		!cai_json_put(train_opts, "word_dropout", json_object_new_double(word_dropout)) ||
		!cai_json_put(train_opts, "batch_size", json_object_new_int(batch_size)) ||
		!cai_json_put(train_opts, "epochs", json_object_new_int(epochs)) ||
		!cai_json_put(prov, "train_rows", json_object_new_int64((int64_t) t.rows.n_tr)) ||
		!cai_json_put(prov, "validation_rows", json_object_new_int64((int64_t) t.rows.n_va)) ||
		!cai_json_put(prov, "seed", json_object_new_int64((int64_t) seed)) ||
		!cai_json_put(prov, "library", json_object_new_string("cai_synergy " CAI_VERSION_STRING)))
	{
		st = NOMEM(err);
		goto done;
	}
	meta = acc_metadata(&t, opts, label_names, metrics, prov, fingerprint, train_opts);
	if (meta == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	if ((st = acc_serialize(&t, meta, model, model_len, err)) != CAI_OK)
		goto done;
	/*
	 * "score": the validation score every architecture reports (here accuracy),
	 * which deploy-if-better compares; wall-clock time goes to the returned
	 * metrics only, never into the model bytes.
	 */
	if (!json_object_object_get_ex(metrics, "accuracy", &acc) ||
		!cai_json_put(metrics, "score", json_object_new_double(json_object_get_double(acc))) ||
		!cai_json_put(metrics, "seconds", json_object_new_double(seconds)))
	{
		st = NOMEM(err);
		goto done;
	}
	{
		const char *s = json_object_to_json_string_ext(metrics, JSON_C_TO_STRING_PLAIN);

		*metrics_json = s != NULL ? cai_strndup(s, strlen(s)) : NULL;
		if (*metrics_json == NULL)
		{
			cai_free(*model);
			*model = NULL;
			*model_len = 0;
			st = NOMEM(err);
			goto done;
		}
	}
	st = CAI_OK;

done:
	cai_blas_set_threads(old_threads);
	json_object_put(metrics);
	json_object_put(train_opts);
	cai_free(report);
	cai_free(meta);
	acc_train_free(&t);
	return st;
}
