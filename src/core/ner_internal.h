/*
 * ner_internal.h: what the files of the named-entity recognizer share, a
 * BiLSTM-CRF tagger (Lample et al. 2016, with a character CNN as in Ma and
 * Hovy 2016).  Not a public header: the SQL layer and the model registry use
 * cai/ner.h only.
 *
 * The tagger by phase:
 *   ner_features.c  token features (word, characters, casing), vocabulary
 *                   counts, encoded sentences, checks of cai_ner_data
 *   ner_params.c    the parameters, the model and its tag tables,
 *                   serialization, cai_ner_load, cai_ner_free, cai_ner_memory
 *   ner_net.c       batch workspaces, forward, backward and Viterbi decode of
 *                   the network, cai_ner_gradcheck
 *   ner_train.c     the options table, training data, cai_ner_train and
 *                   cai_ner_train_memory
 *   ner_shards.c    data-parallel training (option "threads"): the batch
 *                   split over the training pool's shards
 *   ner_tag.c       batched decoding, cai_ner_tag, cai_ner_tag_batch,
 *                   cai_ner_entities, cai_ner_entities_batch,
 *                   cai_ner_spans_to_tags
 *
 * Network: dropout(x) -> BiLSTM (H per direction) -> dropout -> linear to
 * K tag scores -> linear-chain CRF.  Tags are BIOES internally (O, then
 * B-, I-, E-, S- of each type, types sorted by name); training data in
 * IOB1, IOB2 or BIOES is read into chunks with conlleval's rules and
 * re-tagged.  Viterbi is restricted to valid BIOES transitions, and the
 * result is returned as IOB2 (B- for B and S, I- for I and E).
 */
#ifndef CAI_NER_INTERNAL_H
#define CAI_NER_INTERNAL_H

#include "cai/chunks.h"
#include "cai/crf.h"
#include "cai/lstm.h"
#include "cai/ner.h"
#include "cai/ops.h"
#include "cai/optim.h"
#include "modelutil.h"
#include "pool.h"
#include "trainer.h"

struct json_object;

/* ---------------------------------------------------------------------- */
/* Constants                                                              */
/* ---------------------------------------------------------------------- */

#define NER_FEATURE_VERSION	1
#define NER_WORD_CHARS		32		/* code points of a word the char CNN sees */
#define NER_CHAR_WIDTH		3		/* convolution width */
#define NER_CASE_DIM		8		/* casing embedding size */
#define NER_SEED_VOCAB		0x6e65727655ULL	/* hash seed of the serialized vocabulary slots */
#define NER_NORM_MAX		256		/* bytes of a normalized word (incl. NUL) */
#define NER_MAX_TYPES		250		/* K = 1 + 4 types <= 1001 */
#define NER_MAX_DIM			2048
#define NER_MAX_VOCAB		(INT32_MAX / 4)
#define NER_UNK_SINGLETON	0.5f	/* singleton -> unknown word probability */
#define NER_VECTOR_LR		0.1f	/* learning rate of pretrained word rows / learning_rate */
#define NER_EVAL_BATCH		64		/* sentences per inference batch */
#define NER_SENT_BREAK		200		/* cai_ner_entities: tokens per chunk */
#define NER_BIGRAM_MIN		2		/* occurrences of a character bigram for its own row (at least) */
#define NER_BIGRAM_SHARE	0.3		/* char_bigrams auto: share of single-CJK-character tokens */
#define NER_BIGRAM_EDGE		"\x02"	/* the neighbour of a sentence's first and last token */

#define NOMEM(err) cai_error_set((err), CAI_ERR_NOMEM, "out of memory")

/* ---------------------------------------------------------------------- */
/* Network parameters (ner_params.c)                                      */
/* ---------------------------------------------------------------------- */

typedef struct NerDims
{
	int			Vw;				/* word rows (vocabulary + 1) */
	int			Vc;				/* char rows (vocabulary + 1) */
	int			Dw;				/* word embedding */
	int			Dc;				/* char embedding */
	int			F;				/* char CNN filters */
	int			Dcase;			/* casing embedding */
	int			H;				/* LSTM units per direction */
	int			n_types;
	int			K;				/* internal (BIOES) tags: 1 + 4 n_types */
	int			bigrams;		/* 1: two bigram rows of word_emb per token (char_bigrams) */
	int			C;				/* LSTM input: Dw + F + Dcase (+ 2 Dw with bigrams) */
} NerDims;

/* The LSTM input size of d's features. */
static inline int
ner_dims_input(const NerDims *d)
{
	return d->Dw + d->F + d->Dcase + (d->bigrams ? 2 * d->Dw : 0);
}

enum
{
	P_WORD, P_CHAR, P_CONV_W, P_CONV_B, P_CASE,
	P_FW_WIH, P_FW_WHH, P_FW_B, P_BW_WIH, P_BW_WHH, P_BW_B,
	P_OUT_W, P_OUT_B, P_CRF_TRANS, P_CRF_START, P_CRF_END,
	P_COUNT
};

typedef struct NerNet
{
	NerDims		d;
	cai_slab	slab;			/* training: owns the parameters */
	int			idx[P_COUNT];
	const float *view[P_COUNT]; /* a loaded model: the model file's tensors, read-only */
} NerNet;

/* Parameter p: the loaded tensor, else the slab's (inference never writes through it). */
static inline float *
PD(const NerNet *n, int p)
{
	if (n->view[p] != NULL)
		return (float *) n->view[p];
	return cai_slab_data(&n->slab, n->idx[p]);
}

/*
 * Where a backward pass accumulates: gradient slabs laid out like the
 * parameter slab (the slab's own, or a training thread's copy), the word
 * rows touched, and the scale of the CRF loss (1 / sentences of the whole
 * batch, so that shard gradients add up to the batch mean).
 */
typedef struct NerGrad
{
	float	   *base;			/* (slab numel) */
	cai_rowset *rows;			/* touched rows of word_emb */
	float		scale;
} NerGrad;

/* Gradient of parameter p in g. */
static inline float *
GG(const NerNet *n, const NerGrad *g, int p)
{
	return g->base + n->slab.params[n->idx[p]].offset;
}

/* Parameter p (g NULL) or its gradient in g. */
static inline float *
PV(const NerNet *n, const NerGrad *g, int p)
{
	return g != NULL ? GG(n, g, p) : PD(n, p);
}

/* ---------------------------------------------------------------------- */
/* The model (ner_params.c)                                               */
/* ---------------------------------------------------------------------- */

/*
 * The model.  Trained: the vocabularies are string tables and the
 * parameters a slab.  Loaded (cai_ner_load): the vocabularies are
 * cai_strindex views (wordix, charix) and the parameters net.view, all in
 * the model file's tensors, which the caller keeps alive while the model
 * lives; private memory is the struct, the small tag tables (types, labels,
 * tags, tag_label, maskbuf) and, only for models written before the slot
 * tensors existed, the slot arrays (own_*).
 */
struct cai_ner
{
	NerNet		net;
	cai_strtab	words;			/* word i is embedding row i + 1 (trained) */
	cai_strtab	chars;			/* UTF-8 of code point i is row i + 1 (trained) */
	bool		loaded;			/* wordix and charix, not words and chars */
	cai_strindex wordix;		/* ner.words.{bytes,offsets,slots} (loaded) */
	cai_strindex charix;		/* ner.chars.{bytes,offsets,slots} (loaded) */
	int32_t    *own_word_slot;
	int32_t    *own_char_slot;
	cai_strtab	types;			/* entity types, sorted */
	cai_strtab	labels;			/* IOB2: 0 "O", 1 + 2t "B-t", 2 + 2t "I-t" */
	cai_strtab	tags;			/* internal BIOES: 0 "O", 1 + 4t + {B,I,E,S} */
	int32_t    *tag_label;		/* (K) IOB2 label of each internal tag */
	uint8_t    *maskbuf;		/* K*K + 2K */
	cai_crf_mask mask;
	int			max_tokens;
	size_t		memory;
};

/* Internal tag k: its BIOES prefix letter, its type (-1 for O), and back. */
extern const char ner_bioes_prefix[4];

static inline char
ner_tag_prefix(int32_t k)
{
	return k <= 0 ? 'O' : ner_bioes_prefix[(k - 1) & 3];
}

static inline int32_t
ner_tag_type(int32_t k)
{
	return k <= 0 ? -1 : (k - 1) >> 2;
}

static inline int32_t
ner_tag_index(char prefix, int32_t type)
{
	switch (prefix)
	{
		case 'B':
			return 1 + 4 * type;
		case 'I':
			return 2 + 4 * type;
		case 'E':
			return 3 + 4 * type;
		case 'S':
			return 4 + 4 * type;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Token features (ner_features.c)                                        */
/* ---------------------------------------------------------------------- */

/* Normalized word form for vocabulary lookup; returns its length. */
static inline size_t
ner_norm(const char *s, size_t len, char *out)
{
	return cai_token_normalize(s, len, true, out, NER_NORM_MAX);
}

/*
 * Encoded sentences: the features of every token, ready for batches.
 * Sentences longer than max_tokens are split into pieces (each a sentence
 * here; tokens stay in their original order).  A token's features depend
 * on its string only, so they are kept once per distinct string (a type):
 * a token holds its type, 4 bytes, whatever its length (a million
 * sentences hold far fewer types than tokens).
 */
typedef struct NerEnc
{
	size_t		n;				/* sentences (pieces) */
	int64_t    *soff;			/* (n + 1) first token of each */
	size_t		ntok;
	int32_t    *type;			/* (ntok) the token's type */
	int32_t    *tags;			/* (ntok) internal gold tag, or NULL */
	size_t		ntypes;
	int32_t    *word;			/* (ntypes) word row */
	uint8_t    *casing;			/* (ntypes) */
	int64_t    *coff;			/* (ntypes + 1) first char of each type */
	int32_t    *chars;			/* (coff[ntypes]) char rows */
	int32_t    *bigram;			/* (2 ntok) rows of the bigrams ending and starting at each token, or NULL */
} NerEnc;

/* Characters (char rows) of token t of e. */
static inline int64_t
ner_enc_nchars(const NerEnc *e, int64_t t)
{
	return e->coff[e->type[t] + 1] - e->coff[e->type[t]];
}

/* Characters of tokens [a, z) of e. */
static inline int64_t
ner_enc_span_chars(const NerEnc *e, int64_t a, int64_t z)
{
	int64_t		c = 0;

	for (int64_t t = a; t < z; t++)
		c += ner_enc_nchars(e, t);
	return c;
}

/* Count normalized training words; first-seen order. */
typedef struct NerCounter
{
	cai_strtab	tab;
	int64_t    *cnt;
	size_t		cap;
} NerCounter;

/* ---------------------------------------------------------------------- */
/* Workspace of a batch, forward and backward (ner_net.c)                 */
/* ---------------------------------------------------------------------- */

/*
 * Buffers of one batch of at most maxB sentences, maxT tokens each, maxN
 * tokens and maxNc characters in all.  Tokens are packed sentence by
 * sentence ("packed index" i = tstart[b] + t); the LSTM works on the padded
 * (B, T, .) layout.  One allocation; the training buffers only when train.
 */
typedef struct NerWs
{
	int			maxB;
	int			maxT;
	size_t		maxN;
	size_t		maxNc;
	bool		train;
	/* current batch */
	int			B;
	int			T;
	size_t		N;
	size_t		Nc;
	int32_t    *len;			/* (B) */
	int32_t    *tstart;			/* (B + 1) */
	int32_t    *word;			/* (N) word rows */
	int32_t    *bg;				/* (2N) bigram rows (word_emb), with bigrams */
	uint8_t    *cas;			/* (N) casing ids */
	int32_t    *cstart;			/* (N + 1) */
	int32_t    *cids;			/* (Nc) char rows */
	int32_t    *tags;			/* (B, T) gold (train) or decoded tags */
	float	   *im2col;			/* (Nc, 3 Dc) */
	float	   *conv;			/* (Nc, F) */
	int32_t    *cargmax;		/* (N, F) */
	float	   *cfeat;			/* (N, F) after tanh */
	float	   *x;				/* (B, T, C) */
	uint8_t    *xmask;			/* (B, T, C) train */
	float	   *h;				/* (B, T, 2H) */
	uint8_t    *hmask;			/* (B, T, 2H) train */
	float	   *emis;			/* (B, T, K) */
	float	   *lstm;			/* BiLSTM activations (train) or work */
	double	   *crf;			/* CRF work for (T, K) */
	float	   *score;			/* (N) marginal of each decoded tag */
	float	   *demis;			/* (B, T, K) train */
	float	   *dh;				/* (B, T, 2H) train */
	float	   *dx;				/* (B, T, C) train */
	float	   *dcfeat;			/* (N, F) train */
	float	   *dconv;			/* (Nc, F) train */
	float	   *dim2col;		/* (Nc, 3 Dc) train */
	void	   *block;
} NerWs;

/* Training-time randomness; NULL for inference. */
typedef struct NerTrainCtx
{
	float		dropout;
	cai_rng    *rng;
	const uint8_t *singleton;	/* (Vw) 1 for words seen once, or NULL */
	float		unk_p;
} NerTrainCtx;

/* ---------------------------------------------------------------------- */
/* Training (ner_train.c) and its shards (ner_shards.c)                   */
/* ---------------------------------------------------------------------- */

/* One shard of the data-parallel training: its buffers and outputs. */
typedef struct NerShard
{
	NerWs		ws;				/* training workspace for the shard's sentences */
	NerWs		ews;			/* evaluation workspace (shard >= 1; shard 0 uses t->ews) */
	float	   *grad;			/* (slab numel) own gradients (shard >= 1) */
	cai_rowset	rows;			/* word rows touched in grad (shard >= 1) */
	int32_t    *ids;			/* (ws.maxB) the shard's sentences of the batch */
	int			B;
	cai_rng		rng;			/* dropout and unknown-word replacement */
	double		loss;			/* summed NLL of the shard */
} NerShard;

/* The shards (one per thread of the training pool) and the inputs of their jobs. */
typedef struct NerShards
{
	int			n;				/* shards with buffers (0 = none) */
	NerShard   *sh;				/* (n) */
	/* inputs of the job, written by the main thread before it starts */
	float		gscale;			/* train: 1 / sentences of the batch */
	const cai_optim_config *cfg;	/* step */
	float		lr;
	int64_t		step;
	const NerEnc *ee;			/* eval */
	const int32_t *eorder;
	int32_t    *epred;
	size_t		ebatch0;		/* first evaluation batch of the round */
} NerShards;

/*
 * One side (train or validation) of the data, rebased at token 0: token j
 * of the side (sentence i, off[i] <= j < off[i + 1]) is token
 * start[i] + j - off[i] of src, read there (ner_side_token, ner_side_tag)
 * rather than copied, so that a side costs 5 bytes a token besides src.
 */
typedef struct NerSide
{
	size_t		n;				/* sentences */
	int64_t    *off;			/* (n + 1) */
	const cai_ner_data *src;	/* the caller's sentences (not owned) */
	int64_t    *start;			/* (n) index in src of each sentence's first token */
	char	   *prefix;			/* (ntok) parsed tags */
	int32_t    *type;			/* (ntok) model type id, >= n_types for unknown */
	NerEnc		enc;
} NerSide;

/* Token j of sentence i of side s ("" for a NULL token), its byte length in *len. */
static inline const char *
ner_side_token(const NerSide *s, size_t i, int64_t j, size_t *len)
{
	return cai_ner_data_token(s->src, s->start[i] + j - s->off[i], len);
}

/* Tag string of token j of sentence i of side s (NULL when the data has no tags). */
static inline const char *
ner_side_tag(const NerSide *s, size_t i, int64_t j)
{
	return cai_ner_data_tag(s->src, s->start[i] + j - s->off[i]);
}

/* One training run (cai_ner_train, cai_ner_gradcheck): options, data, the model, buffers. */
typedef struct NerTrain
{
	cai_ner		m;
	int			epochs;
	int			batch;
	int			patience;
	int			min_count;
	float		lr;
	float		dropout;
	float		clip;
	uint64_t	seed;
	cai_chunk_scheme scheme;	/* of the training tags */
	NerSide		tr;
	NerSide		va;
	uint8_t    *singleton;		/* (Vw) */
	uint8_t    *pretrained;		/* (Vw) 1 for rows word vectors initialised, or NULL */
	int32_t    *vrows;			/* (Vw) a step's touched pretrained rows (with pretrained) */
	float	   *best;			/* (slab numel) parameters of the best epoch */
	int32_t    *pred;			/* (va ntok) internal tags of the current model */
	int32_t    *best_pred;		/* (va ntok) of the best epoch */
	int32_t    *order;			/* (tr pieces) */
	int32_t    *bstart;			/* (batches + 1) */
	int32_t    *border;			/* (batches) */
	int32_t    *eorder;			/* (va pieces) evaluation order */
	NerWs		ws;				/* training batches (one thread) */
	NerWs		ews;			/* evaluation batches (thread 0) */
	cai_pool	pool;			/* data-parallel training threads (threads > 1) */
	NerShards	shards;			/* (pool.n when pool.n > 1) */
} NerTrain;

/* A piece of encoded data by length, for sorting (stable by pos). */
typedef struct NerLenItem
{
	int32_t		len;
	int32_t		pos;
	int32_t		id;
} NerLenItem;

/* ---------------------------------------------------------------------- */
/* Functions shared between the files                                     */
/* ---------------------------------------------------------------------- */

/* ner_features.c */
void		ner_enc_free(NerEnc *e);
cai_status	ner_enc_build(const cai_ner *m, size_t n, const int64_t *offsets, const int64_t *start,
						  const cai_ner_data *src, int max_tokens, NerEnc *e, cai_error *err);
/*
 * d in the string form (tokens, token_lens, tags): d itself, or when it has
 * ids, *out with arrays materialized in *owned (cai_free it; NULL if none).
 */
cai_status	ner_data_strings(const cai_ner_data *d, cai_ner_data *out, void **owned, cai_error *err);
void		ner_counter_free(NerCounter *c);
cai_status	ner_count_vocab(const NerSide *s, NerCounter *wc, NerCounter *cc, NerCounter *bc, cai_error *err);
double		ner_cjk_share(const NerSide *s);
cai_status	ner_check_data(const cai_ner_data *d, const char *what, bool need_tags, cai_error *err);

/* ner_params.c */
cai_status	ner_net_declare(NerNet *net, const NerDims *d, cai_error *err);
void		ner_net_lstm_views(const NerNet *net, const NerGrad *g, cai_lstm_params *fw, cai_lstm_params *bw);
void		ner_net_crf_view(const NerNet *net, const NerGrad *g, cai_crf_params *c);
void		ner_net_init_params(NerNet *net, cai_rng *rng);
void		ner_release(cai_ner *m);
cai_status	ner_build_tags(cai_ner *m, cai_error *err);
char	   *ner_json_dup(struct json_object *o);
char	   *ner_metadata(const cai_ner *m, const cai_options *opts, struct json_object *metrics,
						 struct json_object *prov);
cai_status	ner_serialize(const cai_ner *m, const char *meta, uint8_t **model, size_t *model_len,
						  cai_error *err);

/* ner_net.c */
cai_status	ner_ws_init(NerWs *w, const NerDims *d, int maxB, int maxT, size_t maxN, size_t maxNc,
						bool train, bool bytes_only, size_t *bytes, cai_error *err);
void		ner_ws_free(NerWs *w);
cai_status	ner_net_forward(const cai_ner *m, const NerEnc *e, const int32_t *sids, int B,
							NerWs *w, const NerTrainCtx *tc, cai_error *err);
NerGrad		ner_net_slab_grad(NerNet *net, int B);
cai_status	ner_net_backward(const cai_ner *m, NerWs *w, const NerTrainCtx *tc, const NerGrad *g,
							 double *loss, cai_error *err);
cai_status	ner_net_decode(const cai_ner *m, NerWs *w, bool want_scores, cai_error *err);

/* ner_train.c */
cai_status	ner_train_setup(NerTrain *t, const cai_options *opts, const cai_ner_data *train,
							const cai_ner_data *valid, const cai_word_vectors *vec, cai_error *err);
void		ner_train_free(NerTrain *t);

void		ner_step_pretrained(NerTrain *t, const cai_optim_config *cfg, int64_t step);

/* ner_shards.c */
cai_status	ner_shards_alloc(NerTrain *t, const NerDims *d, const NerEnc *ev, cai_error *err);
cai_status	ner_train_step_par(NerTrain *t, const cai_optim_config *cfg, cai_rng *rng, const int32_t *ids,
							   int B, int64_t step, double *loss, cai_error *err);
cai_status	ner_enc_decode_par(NerTrain *t, const NerEnc *e, int32_t *pred, cai_trainer *tk,
							   double frac0, double frac1, cai_error *err);
void		ner_shards_free(NerShards *shards);

/* ner_tag.c */
/*
 * A tagger of sentences into internal (BIOES) tags, as ner_tag_internal:
 * n sentences (offsets (n + 1) over tokens/lens), tags into pred and
 * marginals into scores, both indexed from offsets[0].  The entity code
 * (cai_ner_entities, cai_ner_entities_batch) runs on any such tagger: the
 * BiLSTM-CRF's, or the transformer's (transformer.c).
 */
typedef cai_status (*ner_tag_fn) (const void *model, size_t n, const int64_t *offsets, const char *const *tokens,
								  const size_t *lens, int32_t *pred, float *scores, cai_error *err);
/* One sentence through a tagger's tag_batch (cai_ner_tag, and the transformer's tag). */
typedef cai_status (*ner_tag_batch_fn) (const void *model, const cai_ner_data *data, const char **tags_out,
										float *scores, cai_error *err);
cai_status	ner_tag_one(ner_tag_batch_fn tag_batch, const void *model, const char *const *tokens, const size_t *lens,
						size_t n, const char **tags_out, float *scores, cai_error *err);
cai_status	ner_entities_with(ner_tag_fn tag, const void *model, const char *text, size_t len, size_t max_tokens,
							  cai_entity **out, size_t *n_out, cai_error *err);
cai_status	ner_entities_batch_with(ner_tag_fn tag, const void *model, const char *const *texts, const size_t *lens,
									size_t n, size_t max_tokens, cai_entity **out, size_t *offsets, cai_error *err);

int			ner_cmp_len_desc(const void *a, const void *b);
int			ner_cmp_len_asc(const void *a, const void *b);
cai_status	ner_enc_bounds(const NerEnc *e, int B, int *maxT, size_t *maxN, size_t *maxNc, cai_error *err);
cai_status	ner_enc_decode_batch(const cai_ner *m, const NerEnc *e, const int32_t *order, int B, NerWs *ws,
								 int32_t *pred, float *scores, cai_error *err);
cai_status	ner_enc_decode(const cai_ner *m, const NerEnc *e, const int32_t *order, NerWs *ws,
						   int32_t *pred, float *scores, cai_trainer *tk, double frac0, double frac1,
						   cai_error *err);
void		ner_enc_length_order(const NerEnc *e, NerLenItem *tmp, int32_t *order);
cai_status	ner_ws_for_order(const NerDims *d, const NerEnc *e, const int32_t *order, NerWs *ws,
							 bool bytes_only, size_t *bytes, cai_error *err);

#endif							/* CAI_NER_INTERNAL_H */
