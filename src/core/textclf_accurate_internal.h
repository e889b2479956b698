/*
 * textclf_accurate_internal.h: what the two files of the accurate text
 * classification architecture share: textclf_accurate.c (features, the
 * network's inference, the loaded model, load and predict) and
 * textclf_accurate_train.c (training, serialization, the ensemble's fast
 * model).  Training scores its validation rows through the inference code,
 * so the features and the network are defined once, here and in
 * textclf_accurate.c.
 */
#ifndef CAI_TEXTCLF_ACCURATE_INTERNAL_H
#define CAI_TEXTCLF_ACCURATE_INTERNAL_H

#include "textclf_internal.h"

#include "cai/lstm.h"

#define ACC_FEATURE_VERSION		1
#define ACC_NORM_MAX			128 /* bytes of a normalized token (incl. NUL) */
#define ACC_NGRAMS_MAX			TEXTCLF_CHAR_NGRAMS_MAX
#define ACC_BYTES_PER_TOKEN		TEXTCLF_BYTES_PER_TOKEN	/* text read: at most max_tokens * this */
#define ACC_MAX_DIM				1024
#define ACC_MAX_BUCKETS			16777216
#define ACC_TOKEN_BUDGET		2048	/* padded positions per training batch */
#define ACC_CLIP_NORM			5.0f
#define ACC_MAX_LABELS_STACK	64
#define ACC_MIN_LR_FRACTION		0.1f
#define ACC_SEED_WORD			0x61636377ULL	/* "accw" */

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

/* Normalized text of token i of toks (cai_textclf_token_rule.norm; no end-of-text token). */
static inline size_t
acc_token_norm(const char *text, const cai_token *toks, size_t i, size_t n_toks, char *norm)
{
	return cai_token_normalize(text + toks[i].start, (size_t) (toks[i].end - toks[i].start),
							   false, norm, ACC_NORM_MAX);
}

/* How the accurate architecture turns the tokens of a text into words. */
static inline cai_textclf_token_rule
acc_token_rule(const AccParams *ap)
{
	return (cai_textclf_token_rule) {
		.max_tokens = ap->max_tokens, .bytes_per_token = ACC_BYTES_PER_TOKEN, .eos = 0,
		.norm = acc_token_norm, .hash = acc_word_hash,
	};
}

/* Fingerprint of the raw features under ap (see cai_textclf_fingerprint). */
static inline cai_status
cai_textclf_accurate_fingerprint(const AccParams *ap, uint64_t *out, cai_error *err)
{
	cai_textclf_token_rule rule = acc_token_rule(ap);

	return cai_textclf_fingerprint(&rule, ap->minn, ap->maxn, ACC_FEATURE_VERSION, out, err);
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

/* Scratch floats cai_textclf_accurate_net_infer needs for T tokens (false on overflow). */
bool		cai_textclf_accurate_infer_floats(const AccNet *net, int T, size_t *nfloats);

/*
 * Probabilities (L) of one text given as T token bags (ids, offsets (T + 1)).
 * scratch holds cai_textclf_accurate_infer_floats(T) floats.
 */
cai_status	cai_textclf_accurate_net_infer(const AccNet *net, const int32_t *ids, const int32_t *offs,
										   int T, float *scratch, float *probs, cai_error *err);

/* ---------------------------------------------------------------------- */
/* The float tensors of a model                                           */
/* ---------------------------------------------------------------------- */

/* Names and shapes of the float tensors, in parameter-slab order. */
#define ACC_N_FLOAT_TENSORS 9

typedef struct AccTensorSpec
{
	const char *name;
	int			ndim;
	int64_t		shape[2];
} AccTensorSpec;

/* The specs of the ACC_N_FLOAT_TENSORS float tensors into s. */
void		cai_textclf_accurate_tensor_specs(int64_t R, int D, int H, int L, AccTensorSpec *s);

static inline size_t
spec_numel(const AccTensorSpec *s)
{
	return (size_t) s->shape[0] * (s->ndim == 2 ? (size_t) s->shape[1] : 1);
}

/* Point net at the float tensors t (in spec order; read-only). */
void		cai_textclf_accurate_net_view(AccNet *net, float *const *t, int D, int H, int L,
										  int32_t R);

#endif							/* CAI_TEXTCLF_ACCURATE_INTERNAL_H */
