/*
 * textclf_accurate.c: the "accurate" text classification architecture,
 * inference: the network's inference, the loaded model, cai_textclf_accurate_predict, _free and _load.  Training,
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

#include "cai/ops.h"
#include "modelutil.h"

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
	offs[0] = 0;
	for (size_t i = 0; i < n_toks; i++)
	{
		size_t		nl = acc_token_norm(text, toks, i, n_toks, norm);
		int32_t		id = acc_vocab_find(m, norm, nl);
		int			nc = cai_textclf_char_ngrams(ap->minn, ap->maxn, norm, nl, cg);

		ids[n_ids++] = id >= 0 ? id : V;
		for (int j = 0; j < nc; j++)
		{
			int32_t		r = acc_bucket_find(m, cai_textclf_char_bucket(cg[j], ap->buckets));

			if (r >= 0)
				ids[n_ids++] = V + 1 + r;
		}
		offs[i + 1] = (int32_t) n_ids;
	}
	st = cai_textclf_accurate_net_infer(&m->net, ids, offs, (int) n_toks, scratch, probs, err);
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
