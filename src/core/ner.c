/*
 * ner.c: named-entity recognition, a BiLSTM-CRF tagger (Lample et al. 2016,
 * with a character CNN as in Ma and Hovy 2016).
 *
 * Features of a token (the model input, one row of x (B, T, C)):
 *
 *   word    row of word_emb (Vw, Dw): the token lower-cased with digits
 *           folded to 0 (cai_token_normalize); row 0 is the unknown word.
 *           The vocabulary holds the training words seen min_count times
 *           (plus the words of user vectors); while training, a word seen
 *           once is replaced by the unknown word with probability 0.5.
 *   chars   a character CNN over the token's code points (cased): each
 *           code point is a row of char_emb (Vc, Dc) (row 0 = unknown),
 *           a width-3 convolution with F filters ("same" padding), max over
 *           time, tanh.  Words longer than NER_WORD_CHARS code points keep
 *           their first and last NER_WORD_CHARS / 2.
 *   casing  row of case_emb (CAI_CASE_COUNT, Dcase) (cai_token_casing).
 *
 * Network: dropout(x) -> BiLSTM (H per direction) -> dropout -> linear to
 * K tag scores -> linear-chain CRF.  Tags are BIOES internally (O, then
 * B-, I-, E-, S- of each type, types sorted by name); training data in
 * IOB1, IOB2 or BIOES is read into chunks with conlleval's rules and
 * re-tagged.  Viterbi is restricted to valid BIOES transitions, and the
 * result is returned as IOB2 (B- for B and S, I- for I and E).
 *
 * Training: mini-batches of sentences of similar length (seeded shuffle,
 * length-sorted windows), Adam, gradient clipping by global norm, the
 * CRF negative log-likelihood averaged over the sentences of a batch;
 * validation entity F1 (conlleval counting) after every epoch; the best
 * epoch is kept, training stops after `patience` epochs without a better
 * score or after max_seconds.  One BLAS thread gives bit-identical models
 * for the same data, options and seed.
 *
 * Model tensors:
 *   ner.words.bytes / ner.words.offsets   U8 / I32 (n_words + 1): word i
 *       (embedding row i + 1) is bytes[off[i] .. off[i + 1] - 1), NUL-ended
 *   ner.chars.bytes / ner.chars.offsets   likewise, one code point each
 *   ner.words.slots / ner.chars.slots     I32: format.h cai_strindex slots of
 *       each vocabulary (seed NER_SEED_VOCAB), so that a load builds no table
 *       (models written before them still load, building the slots privately)
 *   ner.<parameter>                       F32, shapes in param_shape()
 * A vocabulary with no entries has no tensors (the metadata says so).
 */
#include "cai/ner.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>
#include <signal.h>

#include <cblas.h>
#include <json-c/json.h>

#include "cai/chunks.h"
#include "cai/crf.h"
#include "cai/lstm.h"
#include "cai/modelutil.h"
#include "cai/ops.h"
#include "cai/optim.h"

/* ---------------------------------------------------------------------- */
/* Constants and options                                                  */
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
#define NER_EVAL_BATCH		64		/* sentences per inference batch */
#define NER_SENT_BREAK		200		/* cai_ner_entities: tokens per chunk */

const cai_opt_def cai_ner_option_defs[] = {
	{"architecture", CAI_OPT_STRING, "bilstm_crf", 0, 0, "bilstm_crf",
	"model: bilstm_crf (word, character CNN and casing features, BiLSTM, CRF)"},
	{"epochs", CAI_OPT_INT, "30", 1, 1000, NULL,
	"maximum passes over the training sentences"},
	{"learning_rate", CAI_OPT_FLOAT, "0.002", 1e-6, 1.0, NULL,
	"Adam learning rate"},
	{"batch_size", CAI_OPT_INT, "32", 1, 4096, NULL,
	"sentences per update"},
	{"seed", CAI_OPT_INT, "42", 0, 2147483647.0, NULL,
	"random seed: the same data, options, seed and threads give the same model"},
	{"dimensions", CAI_OPT_INT, "100", 1, NER_MAX_DIM, NULL,
	"word embedding size"},
	{"char_dimensions", CAI_OPT_INT, "25", 1, NER_MAX_DIM, NULL,
	"character embedding size"},
	{"char_filters", CAI_OPT_INT, "50", 1, NER_MAX_DIM, NULL,
	"filters of the character CNN (width 3)"},
	{"hidden", CAI_OPT_INT, "100", 1, NER_MAX_DIM, NULL,
	"LSTM units per direction"},
	{"dropout", CAI_OPT_FLOAT, "0.5", 0.0, 0.9, NULL,
	"dropout probability on the LSTM input and output"},
	{"validation_fraction", CAI_OPT_FLOAT, "0.1", 0.0, 0.5, NULL,
	"fraction of the training sentences held out for validation when no validation sentences are given"},
	{"validation_source", CAI_OPT_STRING, NULL, 0, 0, NULL,
	"where validation sentences come from (used by the SQL layer)"},
	{"max_seconds", CAI_OPT_FLOAT, "0", 0.0, 1e7, NULL,
	"stop training after this many seconds, keeping the best epoch so far (0 = no limit)"},
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL,
	"training threads: each batch is split over them (data parallel); the same seed and threads give the same model"},
	{"deploy", CAI_OPT_STRING, "auto", 0, 0, "auto|always|never",
	"whether the new model replaces the deployed one (used by the SQL layer)"},
	{"patience", CAI_OPT_INT, "5", 0, 1000, NULL,
	"stop after this many epochs without a better validation F1 (0 = never stop early)"},
	{"min_count", CAI_OPT_INT, "1", 1, 1000000, NULL,
	"minimum occurrences of a word (lower-cased, digits folded) to get its own embedding"},
	{"tag_scheme", CAI_OPT_STRING, "auto", 0, 0, "auto|iob1|iob2|bioes",
	"tag scheme of the training tags (auto = detect)"},
	{"max_tokens", CAI_OPT_INT, "256", 8, 100000, NULL,
	"longest sentence in tokens; longer ones are tagged in pieces"},
	{"clip", CAI_OPT_FLOAT, "5", 0.0, 1e6, NULL,
	"clip the gradient to this global L2 norm (0 = no clipping)"},
	{"word_vectors", CAI_OPT_STRING, NULL, 0, 0, NULL,
	"pretrained word vectors to initialise the word embeddings (used by the SQL layer)"},
};

const int	cai_ner_n_option_defs = sizeof(cai_ner_option_defs) / sizeof(cai_ner_option_defs[0]);

#define NOMEM(err) cai_error_set((err), CAI_ERR_NOMEM, "out of memory")

/* ---------------------------------------------------------------------- */
/* Network parameters                                                     */
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
	int			C;				/* LSTM input: Dw + F + Dcase */
} NerDims;

enum
{
	P_WORD, P_CHAR, P_CONV_W, P_CONV_B, P_CASE,
	P_FW_WIH, P_FW_WHH, P_FW_B, P_BW_WIH, P_BW_WHH, P_BW_B,
	P_OUT_W, P_OUT_B, P_CRF_TRANS, P_CRF_START, P_CRF_END,
	P_COUNT
};

static const char *const param_names[P_COUNT] = {
	"word_emb", "char_emb", "char_conv.weight", "char_conv.bias", "case_emb",
	"lstm.fw.w_ih", "lstm.fw.w_hh", "lstm.fw.b", "lstm.bw.w_ih", "lstm.bw.w_hh", "lstm.bw.b",
	"out.weight", "out.bias", "crf.trans", "crf.start", "crf.end",
};

static int
param_shape(const NerDims *d, int p, int64_t *shape)
{
	switch (p)
	{
		case P_WORD:
			shape[0] = d->Vw;
			shape[1] = d->Dw;
			return 2;
		case P_CHAR:
			shape[0] = d->Vc;
			shape[1] = d->Dc;
			return 2;
		case P_CONV_W:
			shape[0] = d->F;
			shape[1] = NER_CHAR_WIDTH;
			shape[2] = d->Dc;
			return 3;
		case P_CONV_B:
			shape[0] = d->F;
			return 1;
		case P_CASE:
			shape[0] = CAI_CASE_COUNT;
			shape[1] = d->Dcase;
			return 2;
		case P_FW_WIH:
		case P_BW_WIH:
			shape[0] = 4 * (int64_t) d->H;
			shape[1] = d->C;
			return 2;
		case P_FW_WHH:
		case P_BW_WHH:
			shape[0] = 4 * (int64_t) d->H;
			shape[1] = d->H;
			return 2;
		case P_FW_B:
		case P_BW_B:
			shape[0] = 4 * (int64_t) d->H;
			return 1;
		case P_OUT_W:
			shape[0] = d->K;
			shape[1] = 2 * (int64_t) d->H;
			return 2;
		case P_OUT_B:
		case P_CRF_START:
		case P_CRF_END:
			shape[0] = d->K;
			return 1;
		case P_CRF_TRANS:
			shape[0] = d->K;
			shape[1] = d->K;
			return 2;
	}
	return 0;
}

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

/* Declare the parameters of d in a fresh slab (not yet allocated). */
static cai_status
net_declare(NerNet *net, const NerDims *d, cai_error *err)
{
	cai_status	st;

	cai_slab_init(&net->slab);
	net->d = *d;
	for (int p = 0; p < P_COUNT; p++)
	{
		int64_t		shape[CAI_PARAM_MAX_DIMS];
		int			nd = param_shape(d, p, shape);

		if ((st = cai_slab_declare(&net->slab, param_names[p], nd, shape, &net->idx[p], err)) != CAI_OK)
			return st;
	}
	/* no weight decay anywhere (Adam without decay) */
	for (int p = 0; p < P_COUNT; p++)
		cai_slab_set_decay(&net->slab, net->idx[p], false);
	return cai_slab_set_sparse(&net->slab, net->idx[P_WORD], err);
}

/* LSTM parameters (g NULL) or their gradients in g. */
static void
net_lstm_views(const NerNet *net, const NerGrad *g, cai_lstm_params *fw, cai_lstm_params *bw)
{
	fw->w_ih = PV(net, g, P_FW_WIH);
	fw->w_hh = PV(net, g, P_FW_WHH);
	fw->b = PV(net, g, P_FW_B);
	bw->w_ih = PV(net, g, P_BW_WIH);
	bw->w_hh = PV(net, g, P_BW_WHH);
	bw->b = PV(net, g, P_BW_B);
}

static void
net_crf_view(const NerNet *net, const NerGrad *g, cai_crf_params *c)
{
	c->trans = PV(net, g, P_CRF_TRANS);
	c->start = PV(net, g, P_CRF_START);
	c->end = PV(net, g, P_CRF_END);
}

/* Random initialisation of every parameter (index order, one rng). */
static void
net_init_params(NerNet *net, cai_rng *rng)
{
	const NerDims *d = &net->d;
	cai_lstm_params fw,
				bw;

	cai_init_uniform(PD(net, P_WORD), (size_t) d->Vw * d->Dw, sqrtf(3.0f / (float) d->Dw), rng);
	cai_init_uniform(PD(net, P_CHAR), (size_t) d->Vc * d->Dc, sqrtf(3.0f / (float) d->Dc), rng);
	cai_init_xavier(PD(net, P_CONV_W), (size_t) d->F * NER_CHAR_WIDTH * d->Dc,
					NER_CHAR_WIDTH * d->Dc, d->F, rng);
	cai_init_const(PD(net, P_CONV_B), (size_t) d->F, 0.0f);
	cai_init_uniform(PD(net, P_CASE), (size_t) CAI_CASE_COUNT * d->Dcase,
					 sqrtf(3.0f / (float) d->Dcase), rng);
	net_lstm_views(net, NULL, &fw, &bw);
	cai_lstm_init(&fw, d->C, d->H, rng);
	cai_lstm_init(&bw, d->C, d->H, rng);
	cai_init_xavier(PD(net, P_OUT_W), (size_t) d->K * 2 * d->H, 2 * d->H, d->K, rng);
	cai_init_const(PD(net, P_OUT_B), (size_t) d->K, 0.0f);
	cai_init_const(PD(net, P_CRF_TRANS), (size_t) d->K * d->K, 0.0f);
	cai_init_const(PD(net, P_CRF_START), (size_t) d->K, 0.0f);
	cai_init_const(PD(net, P_CRF_END), (size_t) d->K, 0.0f);
}

/* ---------------------------------------------------------------------- */
/* The model                                                              */
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

static const char bioes_prefix[4] = {'B', 'I', 'E', 'S'};

static inline char
tag_prefix(int32_t k)
{
	return k <= 0 ? 'O' : bioes_prefix[(k - 1) & 3];
}

static inline int32_t
tag_type(int32_t k)
{
	return k <= 0 ? -1 : (k - 1) >> 2;
}

static inline int32_t
tag_index(char prefix, int32_t type)
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

static void
ner_release(cai_ner *m)
{
	cai_slab_free(&m->net.slab);
	cai_strtab_free(&m->words);
	cai_strtab_free(&m->chars);
	cai_strtab_free(&m->types);
	cai_strtab_free(&m->labels);
	cai_strtab_free(&m->tags);
	cai_free(m->tag_label);
	cai_free(m->maskbuf);
	cai_free(m->own_word_slot);
	cai_free(m->own_char_slot);
}

void
cai_ner_free(cai_ner *m)
{
	if (m == NULL)
		return;
	ner_release(m);
	cai_free(m);
}

size_t
cai_ner_memory(const cai_ner *m)
{
	return m != NULL ? m->memory : 0;
}

int
cai_ner_n_types(const cai_ner *m)
{
	return m != NULL ? m->types.n : 0;
}

const char *
cai_ner_type(const cai_ner *m, int i)
{
	return m != NULL ? cai_strtab_str(&m->types, i) : NULL;
}

/*
 * With m->types filled (sorted): build the IOB2 labels, the BIOES tags,
 * tag_label and the transition mask.
 */
static cai_status
ner_build_tags(cai_ner *m, cai_error *err)
{
	int			T = m->types.n;
	int			K = 1 + 4 * T;
	char		buf[CAI_TAG_TYPE_MAX + 3];
	const char **names = NULL;
	cai_status	st;
	int32_t		id;

	if ((st = cai_strtab_init(&m->labels, 1 + 2 * T, err)) != CAI_OK ||
		(st = cai_strtab_init(&m->tags, K, err)) != CAI_OK)
		return st;
	m->tag_label = cai_malloc(sizeof(int32_t) * (size_t) K);
	m->maskbuf = cai_malloc((size_t) K * K + 2 * (size_t) K);
	names = cai_malloc(sizeof(char *) * (size_t) K);
	if (m->tag_label == NULL || m->maskbuf == NULL || names == NULL)
	{
		cai_free(names);
		return NOMEM(err);
	}
	if ((st = cai_strtab_intern(&m->labels, "O", 1, &id, NULL, err)) != CAI_OK ||
		(st = cai_strtab_intern(&m->tags, "O", 1, &id, NULL, err)) != CAI_OK)
		goto done;
	m->tag_label[0] = 0;
	for (int t = 0; t < T; t++)
	{
		const char *ty = cai_strtab_str(&m->types, t);

		for (int j = 0; j < 2; j++)
		{
			int			n = snprintf(buf, sizeof(buf), "%c-%s", j == 0 ? 'B' : 'I', ty);

			if ((st = cai_strtab_intern(&m->labels, buf, (size_t) n, &id, NULL, err)) != CAI_OK)
				goto done;
		}
		for (int j = 0; j < 4; j++)
		{
			int			n = snprintf(buf, sizeof(buf), "%c-%s", bioes_prefix[j], ty);

			if ((st = cai_strtab_intern(&m->tags, buf, (size_t) n, &id, NULL, err)) != CAI_OK)
				goto done;
			/* B and S begin an entity; I and E continue it */
			m->tag_label[id] = (j == 0 || j == 3) ? 1 + 2 * t : 2 + 2 * t;
		}
	}
	if (m->labels.n != 1 + 2 * T || m->tags.n != K)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "entity types are not distinct");
		goto done;
	}
	for (int k = 0; k < K; k++)
		names[k] = cai_strtab_str(&m->tags, k);
	cai_crf_mask_view(&m->mask, m->maskbuf, K);
	st = cai_crf_mask_build(CAI_TAGS_BIOES, names, K, &m->mask, err);
done:
	cai_free(names);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Token features                                                         */
/* ---------------------------------------------------------------------- */

/* Normalized word form for vocabulary lookup; returns its length. */
static inline size_t
ner_norm(const char *s, size_t len, char *out)
{
	return cai_token_normalize(s, len, true, out, NER_NORM_MAX);
}

/* Embedding row of a word (0 = unknown). */
static inline int32_t
ner_word_row(const cai_ner *m, const char *s, size_t len)
{
	char		norm[NER_NORM_MAX];
	size_t		n = ner_norm(s, len, norm);
	int32_t		id = m->loaded ? cai_strindex_find(&m->wordix, norm, n) : cai_strtab_find(&m->words, norm, n);

	return id + 1;
}

/*
 * Character rows of a token into out (room for NER_WORD_CHARS); returns
 * the count, at least 1 (an empty token is one unknown character).  A long
 * word keeps its first and last NER_WORD_CHARS / 2 code points.
 */
static int
ner_char_rows(const cai_ner *m, const char *s, size_t len, int32_t *out)
{
	size_t		ncp = cai_utf8_length(s, len);
	size_t		head = ncp <= NER_WORD_CHARS ? ncp : NER_WORD_CHARS / 2;
	size_t		tail_from = ncp <= NER_WORD_CHARS ? ncp : ncp - NER_WORD_CHARS / 2;
	size_t		pos = 0;
	size_t		i = 0;
	int			n = 0;

	while (pos < len)
	{
		int32_t		cp;
		int			k = cai_utf8_decode(s + pos, len - pos, &cp);

		if (k <= 0)
			break;
		if (i < head || i >= tail_from)
			out[n++] = cp < 0 ? 0 :
				(m->loaded ? cai_strindex_find(&m->charix, s + pos, (size_t) k) :
				 cai_strtab_find(&m->chars, s + pos, (size_t) k)) + 1;
		pos += (size_t) k;
		i++;
	}
	if (n == 0)
		out[n++] = 0;
	return n;
}

/*
 * Encoded sentences: the features of every token, ready for batches.
 * Sentences longer than max_tokens are split into pieces (each a sentence
 * here; tokens stay in their original order).
 */
typedef struct NerEnc
{
	size_t		n;				/* sentences (pieces) */
	int64_t    *soff;			/* (n + 1) first token of each */
	size_t		ntok;
	int32_t    *word;			/* (ntok) word row */
	uint8_t    *casing;			/* (ntok) */
	int64_t    *coff;			/* (ntok + 1) first char of each token */
	int32_t    *chars;			/* (coff[ntok]) char rows */
	int32_t    *tags;			/* (ntok) internal gold tag, or NULL */
} NerEnc;

static void
enc_free(NerEnc *e)
{
	cai_free(e->soff);
	cai_free(e->word);
	cai_free(e->casing);
	cai_free(e->coff);
	cai_free(e->chars);
	cai_free(e->tags);
	memset(e, 0, sizeof(*e));
}

/*
 * Encode n sentences given by offsets (n + 1) over tokens/lens, splitting
 * sentences longer than max_tokens.  Empty sentences are kept (as empty).
 */
static cai_status
enc_build(const cai_ner *m, size_t n, const int64_t *offsets,
		  const char *const *tokens, const size_t *lens, int max_tokens,
		  NerEnc *e, cai_error *err)
{
	size_t		ntok = (size_t) (offsets[n] - offsets[0]);
	size_t		npieces = 0;
	size_t		ccap;
	size_t		s = 0;

	memset(e, 0, sizeof(*e));
	for (size_t i = 0; i < n; i++)
	{
		int64_t		len = offsets[i + 1] - offsets[i];

		npieces += len <= max_tokens ? 1 : (size_t) ((len + max_tokens - 1) / max_tokens);
	}
	e->n = npieces;
	e->ntok = ntok;
	e->soff = cai_malloc(sizeof(int64_t) * (npieces + 1));
	e->word = cai_malloc(sizeof(int32_t) * (ntok + 1));
	e->casing = cai_malloc(ntok + 1);
	e->coff = cai_malloc(sizeof(int64_t) * (ntok + 1));
	ccap = ntok < 1024 ? 1024 : ntok * 4;
	e->chars = cai_malloc(sizeof(int32_t) * ccap);
	if (e->soff == NULL || e->word == NULL || e->casing == NULL || e->coff == NULL || e->chars == NULL)
	{
		enc_free(e);
		return NOMEM(err);
	}
	for (size_t i = 0; i < n; i++)
	{
		int64_t		a = offsets[i] - offsets[0];
		int64_t		b = offsets[i + 1] - offsets[0];

		do
		{
			e->soff[s++] = a;
			a += max_tokens;
		} while (a < b);
	}
	e->soff[s] = (int64_t) ntok;
	e->coff[0] = 0;
	for (size_t t = 0; t < ntok; t++)
	{
		const char *tok = tokens[offsets[0] + (int64_t) t];
		size_t		len = lens[offsets[0] + (int64_t) t];
		int32_t		buf[NER_WORD_CHARS];
		int			nc;

		if (tok == NULL && len > 0)
		{
			enc_free(e);
			return cai_error_set(err, CAI_ERR_INVALID, "token %zu is NULL", t);
		}
		if (tok == NULL)
			tok = "";
		e->word[t] = ner_word_row(m, tok, len);
		e->casing[t] = (uint8_t) cai_token_casing(tok, len);
		nc = ner_char_rows(m, tok, len, buf);
		if ((size_t) e->coff[t] + (size_t) nc > ccap)
		{
			size_t		nc2 = ccap * 2;
			int32_t    *p = cai_realloc(e->chars, sizeof(int32_t) * ccap, sizeof(int32_t) * nc2);

			if (p == NULL)
			{
				enc_free(e);
				return NOMEM(err);
			}
			e->chars = p;
			ccap = nc2;
		}
		memcpy(e->chars + e->coff[t], buf, sizeof(int32_t) * (size_t) nc);
		e->coff[t + 1] = e->coff[t] + nc;
	}
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Serialization                                                          */
/* ---------------------------------------------------------------------- */

static char *
json_dup(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

	return s != NULL ? cai_strndup(s, strlen(s)) : NULL;
}

static json_object *
strtab_to_json(const cai_strtab *t)
{
	json_object *a = json_object_new_array();

	for (int32_t i = 0; a != NULL && i < t->n; i++)
	{
		if (json_object_array_add(a, json_object_new_string_len(cai_strtab_str(t, i),
																(int) cai_strtab_len(t, i))) != 0)
		{
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

/* Metadata JSON text (cai_malloc'ed) or NULL when out of memory. */
static char *
ner_metadata(const cai_ner *m, const cai_options *opts, json_object *metrics, json_object *prov)
{
	const NerDims *d = &m->net.d;
	json_object *root = json_object_new_object();
	json_object *nj = json_object_new_object();
	json_object *oj = NULL;
	char	   *ojs = opts != NULL ? cai_options_to_json(opts) : NULL;
	char	   *out = NULL;
	bool		ok;

	if (ojs != NULL)
		oj = cai_json_parse_object(ojs);
	cai_free(ojs);
	ok = root != NULL && nj != NULL && (opts == NULL || oj != NULL);
	ok = ok &&
		cai_json_put(nj, "feature_version", json_object_new_int(NER_FEATURE_VERSION)) &&
		cai_json_put(nj, "dimensions", json_object_new_int(d->Dw)) &&
		cai_json_put(nj, "char_dimensions", json_object_new_int(d->Dc)) &&
		cai_json_put(nj, "char_filters", json_object_new_int(d->F)) &&
		cai_json_put(nj, "char_width", json_object_new_int(NER_CHAR_WIDTH)) &&
		cai_json_put(nj, "word_chars", json_object_new_int(NER_WORD_CHARS)) &&
		cai_json_put(nj, "case_dimensions", json_object_new_int(d->Dcase)) &&
		cai_json_put(nj, "hidden", json_object_new_int(d->H)) &&
		cai_json_put(nj, "words", json_object_new_int(m->words.n)) &&
		cai_json_put(nj, "chars", json_object_new_int(m->chars.n)) &&
		cai_json_put(nj, "tags", json_object_new_int(d->K)) &&
		cai_json_put(nj, "scheme", json_object_new_string("bioes")) &&
		cai_json_put(nj, "max_tokens", json_object_new_int(m->max_tokens));
	ok = ok &&
		cai_json_put(root, "task", json_object_new_string("ner")) &&
		cai_json_put(root, "architecture", json_object_new_string("bilstm_crf")) &&
		cai_json_put(root, "labels", strtab_to_json(&m->labels)) &&
		cai_json_put(root, "types", strtab_to_json(&m->types)) &&
		cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING));
	if (ok && oj != NULL)
	{
		ok = cai_json_put(root, "options", oj);
		oj = NULL;
	}
	if (ok)
	{
		ok = cai_json_put(root, "ner", nj);
		nj = NULL;
	}
	if (ok && metrics != NULL)
		ok = cai_json_put(root, "metrics", json_object_get(metrics));
	if (ok && prov != NULL)
		ok = cai_json_put(root, "provenance", json_object_get(prov));
	if (ok)
		out = json_dup(root);
	json_object_put(root);
	json_object_put(nj);
	json_object_put(oj);
	return out;
}

/* Vocabulary t as a bytes blob (NUL-terminated words) and offsets (n + 1). */
static cai_status
vocab_blob(const cai_strtab *t, uint8_t **bytes, size_t *nbytes, int32_t **off, cai_error *err)
{
	*bytes = NULL;
	*off = NULL;
	*nbytes = (size_t) t->off[t->n];
	if (*nbytes > INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "vocabulary is too large to store");
	*bytes = cai_malloc(*nbytes);
	*off = cai_malloc(sizeof(int32_t) * ((size_t) t->n + 1));
	if (*bytes == NULL || *off == NULL)
	{
		cai_free(*bytes);
		cai_free(*off);
		*bytes = NULL;
		*off = NULL;
		return NOMEM(err);
	}
	memcpy(*bytes, t->arena, *nbytes);
	for (int32_t i = 0; i <= t->n; i++)
		(*off)[i] = (int32_t) t->off[i];
	return CAI_OK;
}

/* The serialized lookup table (format.h cai_strindex) of a vocabulary blob, as tensor *t. */
static cai_status
vocab_slots(int32_t n, const uint8_t *bytes, size_t nbytes, const int32_t *off, const char *name,
			int32_t **slot, cai_tensor *t, cai_error *err)
{
	cai_strindex ix = {n, (const char *) bytes, nbytes, off, NULL, cai_index_capacity(n) - 1, NER_SEED_VOCAB};
	cai_status	st;

	*slot = cai_malloc(sizeof(int32_t) * ((size_t) ix.mask + 1));
	if (*slot == NULL)
		return NOMEM(err);
	if ((st = cai_strindex_build(&ix, *slot, name, err)) != CAI_OK)
		return st;
	snprintf(t->name, CAI_NAME_MAX, "%s", name);
	t->dtype = CAI_I32;
	t->ndim = 1;
	t->shape[0] = (int64_t) ix.mask + 1;
	t->data = *slot;
	t->nbytes = sizeof(int32_t) * ((size_t) ix.mask + 1);
	return CAI_OK;
}

static cai_status
ner_serialize(const cai_ner *m, const char *meta, uint8_t **model, size_t *model_len, cai_error *err)
{
	cai_tensor	ts[6 + P_COUNT];
	uint8_t    *wb = NULL,
			   *cb = NULL;
	int32_t    *wo = NULL,
			   *co = NULL;
	int32_t    *ws = NULL,
			   *cs = NULL;
	size_t		wn = 0,
				cn = 0;
	int			nt = 0;
	cai_status	st;

	memset(ts, 0, sizeof(ts));
	if ((st = vocab_blob(&m->words, &wb, &wn, &wo, err)) != CAI_OK ||
		(st = vocab_blob(&m->chars, &cb, &cn, &co, err)) != CAI_OK)
		goto done;
	if (m->words.n > 0)
	{
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.words.bytes");
		ts[nt].dtype = CAI_U8;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = (int64_t) wn;
		ts[nt].data = wb;
		ts[nt].nbytes = wn;
		nt++;
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.words.offsets");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = m->words.n + 1;
		ts[nt].data = wo;
		ts[nt].nbytes = sizeof(int32_t) * ((size_t) m->words.n + 1);
		nt++;
		if ((st = vocab_slots(m->words.n, wb, wn, wo, "ner.words.slots", &ws, &ts[nt], err)) != CAI_OK)
			goto done;
		nt++;
	}
	if (m->chars.n > 0)
	{
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.chars.bytes");
		ts[nt].dtype = CAI_U8;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = (int64_t) cn;
		ts[nt].data = cb;
		ts[nt].nbytes = cn;
		nt++;
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.chars.offsets");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = m->chars.n + 1;
		ts[nt].data = co;
		ts[nt].nbytes = sizeof(int32_t) * ((size_t) m->chars.n + 1);
		nt++;
		if ((st = vocab_slots(m->chars.n, cb, cn, co, "ner.chars.slots", &cs, &ts[nt], err)) != CAI_OK)
			goto done;
		nt++;
	}
	for (int p = 0; p < P_COUNT; p++)
	{
		const cai_param *pp = &m->net.slab.params[m->net.idx[p]];

		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.%s", param_names[p]);
		ts[nt].dtype = CAI_F32;
		ts[nt].ndim = pp->ndim;
		memcpy(ts[nt].shape, pp->shape, sizeof(int64_t) * (size_t) pp->ndim);
		ts[nt].data = PD(&m->net, p);
		ts[nt].nbytes = sizeof(float) * pp->numel;
		nt++;
	}
	st = cai_format_write(meta, ts, nt, model, model_len, err);
done:
	cai_free(wb);
	cai_free(cb);
	cai_free(wo);
	cai_free(co);
	cai_free(ws);
	cai_free(cs);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

static cai_status
json_int(json_object *obj, const char *key, int64_t min, int64_t max, int *out, cai_error *err)
{
	json_object *v;
	int64_t		x;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks integer \"ner.%s\"", key);
	x = json_object_get_int64(v);
	if (x < min || x > max)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata \"ner.%s\" is out of range", key);
	*out = (int) x;
	return CAI_OK;
}

/*
 * Point ix at a vocabulary blob of the model file (no copy).  Unless the
 * model file is trusted and has the serialized slots, every offset is
 * checked: starting at 0, strictly increasing, the last equal to the blob
 * size, each entry NUL-terminated with no NUL inside, no duplicates (the
 * slots' check or build); chars entries must be exactly one valid code
 * point.  Models without ner.<what>.slots get a private slot array (*own).
 */
static cai_status
load_vocab(const cai_model_file *mf, const char *what, int n, bool one_cp,
		   cai_strindex *ix, int32_t **own, size_t *mem, cai_error *err)
{
	char		name[CAI_NAME_MAX];
	char		sname[CAI_NAME_MAX];
	const cai_tensor *tb;
	const cai_tensor *to;
	const cai_tensor *ts;
	const uint8_t *bytes;
	const int32_t *off;
	uint32_t	cap;
	cai_status	st;

	memset(ix, 0, sizeof(*ix));
	ix->seed = NER_SEED_VOCAB;
	snprintf(sname, sizeof(sname), "ner.%s.slots", what);
	if (n == 0)
	{
		snprintf(name, sizeof(name), "ner.%s.bytes", what);
		if (cai_model_file_tensor(mf, name) != NULL || cai_model_file_tensor(mf, sname) != NULL)
			return cai_error_set(err, CAI_ERR_FORMAT, "model has an unexpected tensor \"%s\"", name);
		return CAI_OK;
	}
	/* shapes first, so a lying count allocates nothing */
	snprintf(name, sizeof(name), "ner.%s.bytes", what);
	if ((st = cai_model_file_expect(mf, name, CAI_U8, 1, (int64_t[]) {-1}, &tb, err)) != CAI_OK)
		return st;
	snprintf(name, sizeof(name), "ner.%s.offsets", what);
	if ((st = cai_model_file_expect(mf, name, CAI_I32, 1, (int64_t[]) {(int64_t) n + 1}, &to, err)) != CAI_OK)
		return st;
	bytes = tb->data;
	off = to->data;
	if (off[0] != 0 || (int64_t) off[n] != tb->shape[0])
		return cai_error_set(err, CAI_ERR_FORMAT, "model %s vocabulary offsets do not cover its bytes", what);
	ix->n = n;
	ix->bytes = (const char *) bytes;
	ix->nbytes = tb->nbytes;
	ix->off = off;
	cap = cai_index_capacity(n);
	ix->mask = cap - 1;
	ts = cai_model_file_tensor(mf, sname);
	if (ts != NULL)
	{
		if ((st = cai_model_file_expect(mf, sname, CAI_I32, 1, (int64_t[]) {cap}, &ts, err)) != CAI_OK)
			return st;
		ix->slot = ts->data;
		if (mf->trusted)
			return CAI_OK;
	}
	for (int i = 0; i < n; i++)
	{
		int32_t		a = off[i];
		int32_t		b = off[i + 1];

		if (b <= a || b > off[n] || bytes[b - 1] != '\0' ||
			memchr(bytes + a, '\0', (size_t) (b - a - 1)) != NULL)
			return cai_error_set(err, CAI_ERR_FORMAT, "model %s vocabulary entry %d is malformed", what, i);
		if (one_cp)
		{
			int32_t		cp;

			if (b - a - 1 < 1 || cai_utf8_decode((const char *) bytes + a, (size_t) (b - a - 1), &cp) != b - a - 1 ||
				cp < 0)
				return cai_error_set(err, CAI_ERR_FORMAT, "model %s vocabulary entry %d is not one character", what, i);
		}
	}
	snprintf(name, sizeof(name), "model %s vocabulary", what);
	if (ts != NULL)
		return cai_strindex_check(ix, name, err);
	*own = cai_malloc(sizeof(int32_t) * (size_t) cap);
	if (*own == NULL)
		return NOMEM(err);
	*mem += sizeof(int32_t) * (size_t) cap;
	ix->slot = *own;
	return cai_strindex_build(ix, *own, name, err);
}

cai_status
cai_ner_load(const cai_model_file *mf, cai_ner **out, cai_error *err)
{
	json_object *root = NULL;
	json_object *nj,
			   *v,
			   *types,
			   *labels;
	cai_ner    *m = NULL;
	NerDims		d;
	int			n_words,
				n_chars,
				K,
				fv,
				cw,
				wc;
	cai_status	st;

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer is required");
	*out = NULL;
	if (mf == NULL || mf->meta_json == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model file is required");
	root = cai_json_parse_object(mf->meta_json);
	if (root == NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata is not a JSON object");
	if (!json_object_object_get_ex(root, "task", &v) || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "ner") != 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "model is not a named-entity recognition model");
		goto fail;
	}
	if (!json_object_object_get_ex(root, "architecture", &v) || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "bilstm_crf") != 0)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "unknown ner architecture");
		goto fail;
	}
	if (!json_object_object_get_ex(root, "ner", &nj) || !json_object_is_type(nj, json_type_object) ||
		!json_object_object_get_ex(root, "types", &types) || !json_object_is_type(types, json_type_array) ||
		!json_object_object_get_ex(root, "labels", &labels) || !json_object_is_type(labels, json_type_array))
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks \"ner\", \"types\" or \"labels\"");
		goto fail;
	}
	memset(&d, 0, sizeof(d));
	if ((st = json_int(nj, "feature_version", NER_FEATURE_VERSION, NER_FEATURE_VERSION, &fv, err)) != CAI_OK ||
		(st = json_int(nj, "char_width", NER_CHAR_WIDTH, NER_CHAR_WIDTH, &cw, err)) != CAI_OK ||
		(st = json_int(nj, "word_chars", NER_WORD_CHARS, NER_WORD_CHARS, &wc, err)) != CAI_OK ||
		(st = json_int(nj, "dimensions", 1, NER_MAX_DIM, &d.Dw, err)) != CAI_OK ||
		(st = json_int(nj, "char_dimensions", 1, NER_MAX_DIM, &d.Dc, err)) != CAI_OK ||
		(st = json_int(nj, "char_filters", 1, NER_MAX_DIM, &d.F, err)) != CAI_OK ||
		(st = json_int(nj, "case_dimensions", 1, NER_MAX_DIM, &d.Dcase, err)) != CAI_OK ||
		(st = json_int(nj, "hidden", 1, NER_MAX_DIM, &d.H, err)) != CAI_OK ||
		(st = json_int(nj, "words", 0, NER_MAX_VOCAB, &n_words, err)) != CAI_OK ||
		(st = json_int(nj, "chars", 0, NER_MAX_VOCAB, &n_chars, err)) != CAI_OK ||
		(st = json_int(nj, "tags", 5, 1 + 4 * NER_MAX_TYPES, &K, err)) != CAI_OK)
		goto fail;
	if (!json_object_object_get_ex(nj, "scheme", &v) || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "bioes") != 0)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata \"ner.scheme\" is not \"bioes\"");
		goto fail;
	}
	m = cai_calloc(1, sizeof(cai_ner));
	if (m == NULL)
	{
		st = NOMEM(err);
		goto fail;
	}
	m->memory = sizeof(cai_ner);
	if ((st = json_int(nj, "max_tokens", 1, 100000, &m->max_tokens, err)) != CAI_OK)
		goto fail;
	/* types: distinct valid type names, sorted, consistent with K */
	{
		size_t		nt = json_object_array_length(types);

		if (nt < 1 || nt > NER_MAX_TYPES || (int) (1 + 4 * nt) != K)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model types do not match its tag count");
			goto fail;
		}
		if ((st = cai_strtab_init(&m->types, (int32_t) nt, err)) != CAI_OK)
			goto fail;
		for (size_t i = 0; i < nt; i++)
		{
			json_object *e = json_object_array_get_idx(types, i);
			const char *s;
			size_t		len;
			int32_t		id;
			bool		added;

			if (e == NULL || !json_object_is_type(e, json_type_string))
			{
				st = cai_error_set(err, CAI_ERR_FORMAT, "model type %zu is not a string", i);
				goto fail;
			}
			s = json_object_get_string(e);
			len = (size_t) json_object_get_string_len(e);
			if (len == 0 || len > CAI_TAG_TYPE_MAX || strlen(s) != len ||
				(i > 0 && strcmp(cai_strtab_str(&m->types, (int32_t) i - 1), s) >= 0))
			{
				st = cai_error_set(err, CAI_ERR_FORMAT, "model type %zu is invalid or out of order", i);
				goto fail;
			}
			if ((st = cai_strtab_intern(&m->types, s, len, &id, &added, err)) != CAI_OK)
				goto fail;
		}
	}
	if ((st = ner_build_tags(m, err)) != CAI_OK)
	{
		if (st == CAI_ERR_INVALID)
			st = cai_error_set(err, CAI_ERR_FORMAT, "model types are invalid");
		goto fail;
	}
	if (json_object_array_length(labels) != (size_t) m->labels.n)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model labels do not match its types");
		goto fail;
	}
	for (int32_t i = 0; i < m->labels.n; i++)
	{
		json_object *e = json_object_array_get_idx(labels, (size_t) i);

		if (e == NULL || !json_object_is_type(e, json_type_string) ||
			strcmp(json_object_get_string(e), cai_strtab_str(&m->labels, i)) != 0)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model label %d does not match its types", i);
			goto fail;
		}
	}
	m->memory += cai_strtab_memory(&m->types) + cai_strtab_memory(&m->labels) +
		cai_strtab_memory(&m->tags) + sizeof(int32_t) * (size_t) K + (size_t) K * K + 2 * (size_t) K;
	m->loaded = true;
	if ((st = load_vocab(mf, "words", n_words, false, &m->wordix, &m->own_word_slot, &m->memory, err)) != CAI_OK ||
		(st = load_vocab(mf, "chars", n_chars, true, &m->charix, &m->own_char_slot, &m->memory, err)) != CAI_OK)
		goto fail;

	d.Vw = n_words + 1;
	d.Vc = n_chars + 1;
	d.n_types = m->types.n;
	d.K = K;
	d.C = d.Dw + d.F + d.Dcase;
	/* the parameters are the model file's tensors, used in place (net.view) */
	if ((st = net_declare(&m->net, &d, err)) != CAI_OK)
		goto fail;
	m->memory += sizeof(cai_param) * (size_t) m->net.slab.n_params;
	for (int p = 0; p < P_COUNT; p++)
	{
		char		name[CAI_NAME_MAX];
		int64_t		shape[CAI_PARAM_MAX_DIMS];
		int			nd = param_shape(&d, p, shape);
		const cai_tensor *t;
		const cai_param *pp = &m->net.slab.params[m->net.idx[p]];

		snprintf(name, sizeof(name), "ner.%s", param_names[p]);
		if ((st = cai_model_file_expect(mf, name, CAI_F32, nd, shape, &t, err)) != CAI_OK)
			goto fail;
		if (!mf->trusted && !cai_all_finite(t->data, pp->numel))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model tensor \"%s\" holds NaN or infinity", name);
			goto fail;
		}
		m->net.view[p] = t->data;
	}
	json_object_put(root);
	*out = m;
	return CAI_OK;
fail:
	json_object_put(root);
	cai_ner_free(m);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Workspace of a batch                                                   */
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
	float	   *marg;			/* (T, K) marginals (inference) */
	float	   *score;			/* (N) marginal of each decoded tag */
	float	   *demis;			/* (B, T, K) train */
	float	   *dh;				/* (B, T, 2H) train */
	float	   *dx;				/* (B, T, C) train */
	float	   *dcfeat;			/* (N, F) train */
	float	   *dconv;			/* (Nc, F) train */
	float	   *dim2col;		/* (Nc, 3 Dc) train */
	void	   *block;
} NerWs;

typedef struct Carve
{
	char	   *base;
	size_t		off;
	bool		ok;
} Carve;

static void *
carve(Carve *c, size_t n, size_t elem)
{
	size_t		bytes;
	size_t		off = c->off;

	if (!cai_size_mul(n < 1 ? 1 : n, elem, &bytes) || !cai_size_add(bytes, 63, &bytes))
	{
		c->ok = false;
		return NULL;
	}
	bytes &= ~(size_t) 63;
	if (!cai_size_add(c->off, bytes, &c->off))
	{
		c->ok = false;
		return NULL;
	}
	return c->base != NULL ? c->base + off : NULL;
}

static void
ws_carve(NerWs *w, const NerDims *d, Carve *c, size_t lstm_floats, size_t crf_doubles)
{
	size_t		BT = (size_t) w->maxB * (size_t) w->maxT;
	size_t		N = w->maxN;
	size_t		Nc = w->maxNc;
	size_t		H2 = 2 * (size_t) d->H;

	w->len = carve(c, (size_t) w->maxB, sizeof(int32_t));
	w->tstart = carve(c, (size_t) w->maxB + 1, sizeof(int32_t));
	w->word = carve(c, N, sizeof(int32_t));
	w->cas = carve(c, N, 1);
	w->cstart = carve(c, N + 1, sizeof(int32_t));
	w->cids = carve(c, Nc, sizeof(int32_t));
	w->tags = carve(c, BT, sizeof(int32_t));
	w->im2col = carve(c, Nc * NER_CHAR_WIDTH * (size_t) d->Dc, sizeof(float));
	w->conv = carve(c, Nc * (size_t) d->F, sizeof(float));
	w->cargmax = carve(c, N * (size_t) d->F, sizeof(int32_t));
	w->cfeat = carve(c, N * (size_t) d->F, sizeof(float));
	w->x = carve(c, BT * (size_t) d->C, sizeof(float));
	w->h = carve(c, BT * H2, sizeof(float));
	w->emis = carve(c, BT * (size_t) d->K, sizeof(float));
	w->lstm = carve(c, lstm_floats, sizeof(float));
	w->crf = carve(c, crf_doubles, sizeof(double));
	w->marg = carve(c, (size_t) w->maxT * (size_t) d->K, sizeof(float));
	w->score = carve(c, N, sizeof(float));
	if (w->train)
	{
		w->xmask = carve(c, BT * (size_t) d->C, 1);
		w->hmask = carve(c, BT * H2, 1);
		w->demis = carve(c, BT * (size_t) d->K, sizeof(float));
		w->dh = carve(c, BT * H2, sizeof(float));
		w->dx = carve(c, BT * (size_t) d->C, sizeof(float));
		w->dcfeat = carve(c, N * (size_t) d->F, sizeof(float));
		w->dconv = carve(c, Nc * (size_t) d->F, sizeof(float));
		w->dim2col = carve(c, Nc * NER_CHAR_WIDTH * (size_t) d->Dc, sizeof(float));
	}
}

static void
ws_free(NerWs *w)
{
	cai_free(w->block);
	memset(w, 0, sizeof(*w));
}

/*
 * Size (bytes) and optionally allocate a workspace.  With bytes_only the
 * workspace is not allocated and only *bytes is set.
 */
static cai_status
ws_init(NerWs *w, const NerDims *d, int maxB, int maxT, size_t maxN, size_t maxNc,
		bool train, bool bytes_only, size_t *bytes, cai_error *err)
{
	size_t		lstm_floats;
	size_t		crf_doubles;
	Carve		c = {NULL, 0, true};
	cai_status	st;

	memset(w, 0, sizeof(*w));
	w->maxB = maxB < 1 ? 1 : maxB;
	w->maxT = maxT < 1 ? 1 : maxT;
	w->maxN = maxN < 1 ? 1 : maxN;
	w->maxNc = maxNc < 1 ? 1 : maxNc;
	w->train = train;
	if (train)
		st = cai_bilstm_acts_size(w->maxB, w->maxT, d->C, d->H, &lstm_floats, err);
	else
		st = cai_lstm_infer_size(w->maxB, w->maxT, d->C, d->H, &lstm_floats, err);
	if (st != CAI_OK)
		return st;
	if ((st = cai_crf_work_size(w->maxT, d->K, &crf_doubles, err)) != CAI_OK)
		return st;
	ws_carve(w, d, &c, lstm_floats, crf_doubles);
	if (!c.ok)
		return cai_error_set(err, CAI_ERR_LIMIT, "batch workspace size overflows");
	if (bytes != NULL)
		*bytes = c.off;
	if (bytes_only)
		return CAI_OK;
	w->block = cai_malloc(c.off);
	if (w->block == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a batch workspace (%zu bytes)", c.off);
	c.base = w->block;
	c.off = 0;
	ws_carve(w, d, &c, lstm_floats, crf_doubles);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Forward and backward                                                   */
/* ---------------------------------------------------------------------- */

/* Training-time randomness; NULL for inference. */
typedef struct NerTrainCtx
{
	float		dropout;
	cai_rng    *rng;
	const uint8_t *singleton;	/* (Vw) 1 for words seen once, or NULL */
	float		unk_p;
} NerTrainCtx;

/* Inverted dropout backward in place: g = g * mask / (1 - p). */
static void
dropout_backward_inplace(float *g, const uint8_t *mask, size_t n, float p)
{
	float		s = 1.0f / (1.0f - p);

	for (size_t i = 0; i < n; i++)
		g[i] = mask[i] ? g[i] * s : 0.0f;
}

/*
 * Load the batch of sentences sids[0..B) of e into w and compute the
 * emissions w->emis (B, T, K).  With tc (training) dropout and singleton
 * replacement apply and the BiLSTM keeps its activations for backward;
 * gold tags are copied when e has them.
 */
static cai_status
net_forward(const cai_ner *m, const NerEnc *e, const int32_t *sids, int B,
			NerWs *w, const NerTrainCtx *tc, cai_error *err)
{
	const NerNet *net = &m->net;
	const NerDims *d = &net->d;
	const int	Dc = d->Dc;
	const int	F = d->F;
	const int	C = d->C;
	const float *cemb = PD(net, P_CHAR);
	const float *wemb = PD(net, P_WORD);
	const float *kemb = PD(net, P_CASE);
	cai_lstm_params fw,
				bw;
	size_t		N = 0,
				Nc = 0;
	int			T = 0;
	cai_status	st;

	if (B < 1 || B > w->maxB)
		return cai_error_set(err, CAI_ERR_INTERNAL, "batch of %d sentences exceeds the workspace", B);
	/* gather tokens */
	for (int b = 0; b < B; b++)
	{
		int64_t		a = e->soff[sids[b]];
		int64_t		z = e->soff[sids[b] + 1];
		int32_t		len = (int32_t) (z - a);

		w->len[b] = len;
		w->tstart[b] = (int32_t) N;
		if (len > T)
			T = len;
		if (len > w->maxT || N + (size_t) len > w->maxN)
			return cai_error_set(err, CAI_ERR_INTERNAL, "batch exceeds the workspace");
		for (int64_t t = a; t < z; t++)
		{
			int32_t		wr = e->word[t];
			int64_t		c0 = e->coff[t];
			int64_t		c1 = e->coff[t + 1];

			if (tc != NULL && tc->singleton != NULL && tc->singleton[wr] &&
				cai_rng_uniform(tc->rng) < tc->unk_p)
				wr = 0;
			w->word[N] = wr;
			w->cas[N] = e->casing[t];
			w->cstart[N] = (int32_t) Nc;
			if (Nc + (size_t) (c1 - c0) > w->maxNc)
				return cai_error_set(err, CAI_ERR_INTERNAL, "batch exceeds the workspace");
			memcpy(w->cids + Nc, e->chars + c0, sizeof(int32_t) * (size_t) (c1 - c0));
			Nc += (size_t) (c1 - c0);
			N++;
		}
	}
	w->tstart[B] = (int32_t) N;
	w->cstart[N] = (int32_t) Nc;
	if (T < 1)
		T = 1;
	w->B = B;
	w->T = T;
	w->N = N;
	w->Nc = Nc;

	/* character CNN: im2col (Nc, 3 Dc), one sgemm, max over each word, tanh */
	for (size_t i = 0; i < N; i++)
	{
		int32_t		c0 = w->cstart[i];
		int32_t		L = w->cstart[i + 1] - c0;

		for (int32_t j = 0; j < L; j++)
		{
			float	   *row = w->im2col + (size_t) (c0 + j) * NER_CHAR_WIDTH * Dc;

			for (int k = 0; k < NER_CHAR_WIDTH; k++)
			{
				int32_t		pos = j + k - (NER_CHAR_WIDTH - 1) / 2;

				if (pos >= 0 && pos < L)
					memcpy(row + k * Dc, cemb + (size_t) w->cids[c0 + pos] * Dc, sizeof(float) * Dc);
				else
					memset(row + k * Dc, 0, sizeof(float) * Dc);
			}
		}
	}
	cai_linear_forward(w->conv, w->im2col, PD(net, P_CONV_W), PD(net, P_CONV_B),
					   (int) Nc, NER_CHAR_WIDTH * Dc, F);
	for (size_t i = 0; i < N; i++)
		cai_maxpool_forward(w->cfeat + i * F, w->cargmax + i * F,
							w->conv + (size_t) w->cstart[i] * F,
							w->cstart[i + 1] - w->cstart[i], F);
	cai_tanh_forward(w->cfeat, w->cfeat, N * (size_t) F);

	/* x (B, T, C) = [word | chars | casing], zero padding */
	memset(w->x, 0, sizeof(float) * (size_t) B * T * C);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < w->len[b]; t++)
		{
			size_t		i = (size_t) w->tstart[b] + t;
			float	   *row = w->x + ((size_t) b * T + t) * C;

			memcpy(row, wemb + (size_t) w->word[i] * d->Dw, sizeof(float) * d->Dw);
			memcpy(row + d->Dw, w->cfeat + i * F, sizeof(float) * F);
			memcpy(row + d->Dw + F, kemb + (size_t) w->cas[i] * d->Dcase, sizeof(float) * d->Dcase);
		}
	if (tc != NULL && tc->dropout > 0 &&
		(st = cai_dropout_forward(w->x, w->xmask, w->x, (size_t) B * T * C, tc->dropout, true,
								  tc->rng, err)) != CAI_OK)
		return st;

	net_lstm_views(net, NULL, &fw, &bw);
	if (tc != NULL)
		st = cai_bilstm_forward(&fw, &bw, w->x, w->len, B, T, C, d->H, w->h, w->lstm, err);
	else
		st = cai_bilstm_infer(&fw, &bw, w->x, w->len, B, T, C, d->H, w->h, w->lstm, err);
	if (st != CAI_OK)
		return st;
	if (tc != NULL && tc->dropout > 0 &&
		(st = cai_dropout_forward(w->h, w->hmask, w->h, (size_t) B * T * 2 * d->H, tc->dropout, true,
								  tc->rng, err)) != CAI_OK)
		return st;
	cai_linear_forward(w->emis, w->h, PD(net, P_OUT_W), PD(net, P_OUT_B), B * T, 2 * d->H, d->K);

	/* gold tags, padded with -1 */
	if (e->tags != NULL)
		for (int b = 0; b < B; b++)
		{
			int64_t		a = e->soff[sids[b]];

			for (int t = 0; t < T; t++)
				w->tags[(size_t) b * T + t] = t < w->len[b] ? e->tags[a + t] : -1;
		}
	return CAI_OK;
}

/* The slab's own gradients, for a batch of B sentences. */
static NerGrad
net_slab_grad(NerNet *net, int B)
{
	NerGrad		g = {net->slab.grad, cai_slab_rowset(&net->slab, net->idx[P_WORD]), 1.0f / (float) B};

	return g;
}

/*
 * CRF loss of the batch in w (scaled by g->scale) and the backward pass:
 * accumulates every parameter gradient into g (zeroed by the caller).
 * *loss gets the summed NLL.  Reads the model only, so training threads
 * run it concurrently on their own w and g.
 */
static cai_status
net_backward(const cai_ner *m, NerWs *w, const NerTrainCtx *tc, const NerGrad *g,
			 double *loss, cai_error *err)
{
	const NerNet *net = &m->net;
	const NerDims *d = &net->d;
	const int	B = w->B;
	const int	T = w->T;
	const int	Dc = d->Dc;
	const int	F = d->F;
	const int	C = d->C;
	const size_t BT = (size_t) B * T;
	const size_t H2 = 2 * (size_t) d->H;
	cai_crf_params crf,
				gcrf;
	cai_lstm_params fw,
				bw,
				gfw,
				gbw;
	float	   *gword = GG(net, g, P_WORD);
	float	   *gchar = GG(net, g, P_CHAR);
	float	   *gcase = GG(net, g, P_CASE);
	cai_rowset *rows = g->rows;
	float		pdrop = tc != NULL ? tc->dropout : 0.0f;
	cai_status	st;

	net_crf_view(net, NULL, &crf);
	net_crf_view(net, g, &gcrf);
	memset(w->demis, 0, sizeof(float) * BT * d->K);
	if ((st = cai_crf_nll_batch(&crf, d->K, w->emis, w->tags, w->len, B, T, &m->mask,
								g->scale, loss, w->demis, &gcrf, w->crf, err)) != CAI_OK)
		return st;
	memset(w->dh, 0, sizeof(float) * BT * H2);
	cai_linear_backward(w->dh, GG(net, g, P_OUT_W), GG(net, g, P_OUT_B), w->demis, w->h,
						PD(net, P_OUT_W), (int) BT, (int) H2, d->K);
	if (pdrop > 0)
		dropout_backward_inplace(w->dh, w->hmask, BT * H2, pdrop);
	memset(w->dx, 0, sizeof(float) * BT * C);
	net_lstm_views(net, NULL, &fw, &bw);
	net_lstm_views(net, g, &gfw, &gbw);
	if ((st = cai_bilstm_backward(&fw, &bw, &gfw, &gbw, w->len, B, T, C, d->H, w->dh, w->dx,
								  w->lstm, err)) != CAI_OK)
		return st;
	if (pdrop > 0)
		dropout_backward_inplace(w->dx, w->xmask, BT * C, pdrop);

	/* split dx into the word, char and casing parts */
	for (int b = 0; b < B; b++)
		for (int t = 0; t < w->len[b]; t++)
		{
			size_t		i = (size_t) w->tstart[b] + t;
			const float *row = w->dx + ((size_t) b * T + t) * C;
			float	   *gw = gword + (size_t) w->word[i] * d->Dw;
			float	   *gk = gcase + (size_t) w->cas[i] * d->Dcase;
			const float *cf = w->cfeat + i * F;
			float	   *dcf = w->dcfeat + i * F;

			for (int j = 0; j < d->Dw; j++)
				gw[j] += row[j];
			cai_rowset_add(rows, w->word[i]);
			for (int j = 0; j < F; j++)
				dcf[j] = row[d->Dw + j] * (1.0f - cf[j] * cf[j]);
			for (int j = 0; j < d->Dcase; j++)
				gk[j] += row[d->Dw + F + j];
		}

	/* char CNN: route through the max positions, then the im2col sgemm */
	memset(w->dconv, 0, sizeof(float) * w->Nc * F);
	for (size_t i = 0; i < w->N; i++)
	{
		const int32_t *am = w->cargmax + i * F;
		const float *dcf = w->dcfeat + i * F;
		float	   *dc = w->dconv + (size_t) w->cstart[i] * F;

		for (int f = 0; f < F; f++)
			dc[(size_t) am[f] * F + f] += dcf[f];
	}
	memset(w->dim2col, 0, sizeof(float) * w->Nc * NER_CHAR_WIDTH * Dc);
	cai_linear_backward(w->dim2col, GG(net, g, P_CONV_W), GG(net, g, P_CONV_B), w->dconv, w->im2col,
						PD(net, P_CONV_W), (int) w->Nc, NER_CHAR_WIDTH * Dc, F);
	for (size_t i = 0; i < w->N; i++)
	{
		int32_t		c0 = w->cstart[i];
		int32_t		L = w->cstart[i + 1] - c0;

		for (int32_t j = 0; j < L; j++)
		{
			const float *row = w->dim2col + (size_t) (c0 + j) * NER_CHAR_WIDTH * Dc;

			for (int k = 0; k < NER_CHAR_WIDTH; k++)
			{
				int32_t		pos = j + k - (NER_CHAR_WIDTH - 1) / 2;
				float	   *g;

				if (pos < 0 || pos >= L)
					continue;
				g = gchar + (size_t) w->cids[c0 + pos] * Dc;
				for (int c = 0; c < Dc; c++)
					g[c] += row[k * Dc + c];
			}
		}
	}
	return CAI_OK;
}

/*
 * Viterbi decode of the batch in w (after net_forward) into w->tags, and
 * with want_scores each token's marginal probability of its tag into
 * w->score (N, packed).
 */
static cai_status
net_decode(const cai_ner *m, NerWs *w, bool want_scores, cai_error *err)
{
	const NerDims *d = &m->net.d;
	cai_crf_params crf;
	cai_status	st;

	net_crf_view(&m->net, NULL, &crf);
	if ((st = cai_crf_viterbi_batch(&crf, d->K, w->emis, w->len, w->B, w->T, &m->mask,
									w->tags, w->crf, err)) != CAI_OK)
		return st;
	if (!want_scores)
		return CAI_OK;
	for (int b = 0; b < w->B; b++)
	{
		const float *em = w->emis + (size_t) b * w->T * d->K;
		const int32_t *path = w->tags + (size_t) b * w->T;

		if (w->len[b] == 0)
			continue;
		if ((st = cai_crf_marginals(&crf, d->K, em, w->len[b], &m->mask, w->marg, NULL,
									w->crf, err)) != CAI_OK)
			return st;
		for (int t = 0; t < w->len[b]; t++)
			w->score[w->tstart[b] + t] = w->marg[(size_t) t * d->K + path[t]];
	}
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Training                                                               */
/* ---------------------------------------------------------------------- */

/* Progress reporting with a time budget check. */
typedef struct Ticker
{
	cai_progress_fn fn;
	void	   *ctx;
	double		start;
	double		last;
	cai_progress p;
} Ticker;

/* Call the progress callback when 100 ms have passed; false = cancelled. */
static bool
ticker_tick(Ticker *tk, double fraction)
{
	double		t;

	if (tk->fn == NULL)
		return true;
	t = cai_now_seconds();
	if (t - tk->last < 0.1)
		return true;
	tk->last = t;
	tk->p.fraction = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
	tk->p.epoch_done = false;
	return tk->fn(tk->ctx, &tk->p);
}

/*
 * Data-parallel training (option "threads" > 1).  A batch is split into
 * shards by sentence (sentence i of the batch to shard i mod n, the batch
 * being sorted by length this balances the work); shard s runs forward and
 * backward on its own workspace into its own gradients (shard 0 into the
 * slab's) with its own dropout rng seeded from the training rng; the main
 * thread then adds the shard gradients in shard order, clips and steps.
 * Validation batches go round-robin to the shards.  The main thread runs
 * shard 0; n - 1 pool threads, started before the buffers are allocated
 * and joined before cai_ner_train returns, run the others.  Pool threads
 * never allocate (cai_malloc may be a server memory context), never call
 * the progress callback and write only their shard's outputs; BLAS runs
 * single-threaded meanwhile.  The result depends on the seed and the
 * number of threads only.
 */
typedef enum NerJob
{
	JOB_NONE, JOB_TRAIN, JOB_STEP, JOB_EVAL, JOB_EXIT
} NerJob;

struct NerTrain;

typedef struct NerShard
{
	struct NerTrain *t;
	int			id;
	NerWs		ws;				/* training workspace for the shard's sentences */
	NerWs		ews;			/* evaluation workspace (shard >= 1; shard 0 uses t->ews) */
	float	   *grad;			/* (slab numel) own gradients (shard >= 1) */
	cai_rowset	rows;			/* word rows touched in grad (shard >= 1) */
	int32_t    *ids;			/* (ws.maxB) the shard's sentences of the batch */
	int			B;
	cai_rng		rng;			/* dropout and unknown-word replacement */
	double		loss;			/* summed NLL of the shard */
	cai_status	st;
	cai_error	err;
} NerShard;

typedef struct NerPool
{
	int			n;				/* shards (1 = no pool) */
	int			started;		/* pool threads running */
	NerShard   *sh;				/* (n) */
	pthread_t  *th;				/* (n) th[s] runs shard s, s >= 1 */
	pthread_mutex_t mu;
	pthread_cond_t go;
	pthread_cond_t done;
	bool		sync_ok;		/* mu, go, done initialised */
	uint64_t	gen;			/* job generation, under mu */
	int			pending;		/* pool threads still on the job, under mu */
	NerJob		job;
	/* inputs of the job, written by the main thread before it starts */
	float		gscale;			/* JOB_TRAIN: 1 / sentences of the batch */
	const cai_optim_config *cfg;	/* JOB_STEP */
	float		lr;
	int64_t		step;
	size_t		dense;			/* JOB_STEP: floats of the dense parameters */
	const NerEnc *ee;			/* JOB_EVAL */
	const int32_t *eorder;
	int32_t    *epred;
	size_t		ebatch0;		/* first evaluation batch of the round */
} NerPool;

/* One side (train or validation) of the data, rebased at token 0. */
typedef struct NerSide
{
	size_t		n;				/* sentences */
	int64_t    *off;			/* (n + 1) */
	const char **tok;			/* (ntok) */
	size_t	   *len;			/* (ntok) */
	const char **tag;			/* (ntok) */
	char	   *prefix;			/* (ntok) parsed tags */
	int32_t    *type;			/* (ntok) model type id, >= n_types for unknown */
	NerEnc		enc;
} NerSide;

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
	double		max_seconds;
	uint64_t	seed;
	cai_chunk_scheme scheme;	/* of the training tags */
	NerSide		tr;
	NerSide		va;
	uint8_t    *singleton;		/* (Vw) */
	float	   *best;			/* (slab numel) parameters of the best epoch */
	int32_t    *pred;			/* (va ntok) internal tags of the current model */
	int32_t    *best_pred;		/* (va ntok) of the best epoch */
	int32_t    *order;			/* (tr pieces) */
	int32_t    *bstart;			/* (batches + 1) */
	int32_t    *border;			/* (batches) */
	int32_t    *eorder;			/* (va pieces) evaluation order */
	NerWs		ws;				/* training batches (one thread) */
	NerWs		ews;			/* evaluation batches (thread 0) */
	NerPool		pool;			/* data-parallel training (threads > 1) */
} NerTrain;

static void
side_free(NerSide *s)
{
	cai_free(s->off);
	cai_free(s->tok);
	cai_free(s->len);
	cai_free(s->tag);
	cai_free(s->prefix);
	cai_free(s->type);
	enc_free(&s->enc);
	memset(s, 0, sizeof(*s));
}

static void pool_free(NerPool *pool);

static void
train_free(NerTrain *t)
{
	ner_release(&t->m);
	side_free(&t->tr);
	side_free(&t->va);
	cai_free(t->singleton);
	cai_free(t->best);
	cai_free(t->pred);
	cai_free(t->best_pred);
	cai_free(t->order);
	cai_free(t->bstart);
	cai_free(t->border);
	cai_free(t->eorder);
	ws_free(&t->ws);
	ws_free(&t->ews);
	pool_free(&t->pool);
}

static cai_status
check_data(const cai_ner_data *d, const char *what, bool need_tags, cai_error *err)
{
	if (d->n > 0 && (d->offsets == NULL || d->tokens == NULL || d->token_lens == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "%s data lacks offsets, tokens or lengths", what);
	if (d->n == 0)
		return CAI_OK;
	if (d->offsets[0] < 0)
		return cai_error_set(err, CAI_ERR_INVALID, "%s offsets must not be negative", what);
	for (size_t i = 0; i < d->n; i++)
		if (d->offsets[i + 1] < d->offsets[i])
			return cai_error_set(err, CAI_ERR_INVALID, "%s offsets of sentence %zu decrease", what, i);
	if (d->offsets[d->n] - d->offsets[0] > INT32_MAX / 2)
		return cai_error_set(err, CAI_ERR_LIMIT, "%s data has too many tokens", what);
	if (need_tags && d->tags == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "%s data has no tags", what);
	for (int64_t i = d->offsets[0]; i < d->offsets[d->n]; i++)
		if (d->tokens[i] == NULL && d->token_lens[i] > 0)
			return cai_error_set(err, CAI_ERR_INVALID, "%s token %" PRId64 " is NULL", what, i);
	return CAI_OK;
}

/* Copy the non-empty sentences sel[0..k) of d into s (rebased). */
static cai_status
side_build(NerSide *s, const cai_ner_data *d, const int32_t *sel, size_t k, cai_error *err)
{
	size_t		ntok = 0;
	size_t		w = 0;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < k; i++)
		ntok += (size_t) (d->offsets[sel[i] + 1] - d->offsets[sel[i]]);
	s->off = cai_malloc(sizeof(int64_t) * (k + 1));
	s->tok = cai_malloc(sizeof(char *) * (ntok + 1));
	s->len = cai_malloc(sizeof(size_t) * (ntok + 1));
	s->tag = cai_malloc(sizeof(char *) * (ntok + 1));
	s->prefix = cai_malloc(ntok + 1);
	s->type = cai_malloc(sizeof(int32_t) * (ntok + 1));
	if (s->off == NULL || s->tok == NULL || s->len == NULL || s->tag == NULL ||
		s->prefix == NULL || s->type == NULL)
		return NOMEM(err);
	s->off[0] = 0;
	for (size_t i = 0; i < k; i++)
	{
		int64_t		a = d->offsets[sel[i]];
		int64_t		b = d->offsets[sel[i] + 1];

		if (b == a)
			continue;
		for (int64_t j = a; j < b; j++)
		{
			s->tok[w] = d->tokens[j] != NULL ? d->tokens[j] : "";
			s->len[w] = d->token_lens[j];
			s->tag[w] = d->tags != NULL ? d->tags[j] : NULL;
			w++;
		}
		s->off[++s->n] = (int64_t) w;
	}
	return CAI_OK;
}

/*
 * Parse the tags of s.  Training (tt != NULL): types are interned into tt
 * and the scheme rules of `scheme` (-1 = any) are enforced.  Validation:
 * types are looked up in the model's (types) and unknown ones get ids
 * from n_types upwards via extra.
 */
static cai_status
side_parse(NerSide *s, const char *what, cai_strtab *tt, int scheme,
		   const cai_strtab *types, cai_strtab *extra, cai_error *err)
{
	for (size_t i = 0; i < s->n; i++)
		for (int64_t j = s->off[i]; j < s->off[i + 1]; j++)
		{
			const char *ty;
			size_t		tl;
			cai_status	st;

			if (!cai_tag_parse(s->tag[j], &s->prefix[j], &ty, &tl))
				return cai_error_set(err, CAI_ERR_INVALID,
									 "malformed %s tag \"%.64s\" in sentence %zu (expected O or B-, I-, E-, S- and a type)",
									 what, s->tag[j] != NULL ? s->tag[j] : "(null)", i);
			s->type[j] = -1;
			if (s->prefix[j] == 'O')
				continue;
			if (tt != NULL)
			{
				if ((scheme == CAI_SCHEME_IOB1 || scheme == CAI_SCHEME_IOB2) &&
					(s->prefix[j] == 'E' || s->prefix[j] == 'S'))
					return cai_error_set(err, CAI_ERR_INVALID,
										 "%s tag \"%.64s\" in sentence %zu is not valid in the %s scheme",
										 what, s->tag[j], i, cai_chunk_scheme_name((cai_chunk_scheme) scheme));
				if ((st = cai_strtab_intern(tt, ty, tl, &s->type[j], NULL, err)) != CAI_OK)
					return st;
			}
			else
			{
				int32_t		id = cai_strtab_find(types, ty, tl);

				if (id < 0)
				{
					if ((st = cai_strtab_intern(extra, ty, tl, &id, NULL, err)) != CAI_OK)
						return st;
					id += types->n;
				}
				s->type[j] = id;
			}
		}
	return CAI_OK;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Internal BIOES gold tags of the encoded pieces of s: chunks of each
 * piece (conlleval's rules, any input scheme) re-tagged as BIOES.
 */
static cai_status
side_gold_tags(NerSide *s, cai_error *err)
{
	NerEnc	   *e = &s->enc;
	cai_chunk  *ch = cai_malloc(sizeof(cai_chunk) * (e->ntok + 1));
	char	   *pf = cai_malloc(e->ntok + 1);
	int32_t    *ty = cai_malloc(sizeof(int32_t) * (e->ntok + 1));

	e->tags = cai_malloc(sizeof(int32_t) * (e->ntok + 1));
	if (ch == NULL || pf == NULL || ty == NULL || e->tags == NULL)
	{
		cai_free(ch);
		cai_free(pf);
		cai_free(ty);
		return NOMEM(err);
	}
	for (size_t p = 0; p < e->n; p++)
	{
		int64_t		a = e->soff[p];
		size_t		n = (size_t) (e->soff[p + 1] - a);
		size_t		k = cai_chunks_extract(s->prefix + a, s->type + a, n, ch);

		cai_chunks_to_tags(ch, k, n, CAI_SCHEME_BIOES, pf + a, ty + a);
		for (size_t i = 0; i < n; i++)
			e->tags[a + (int64_t) i] = tag_index(pf[a + (int64_t) i], ty[a + (int64_t) i]);
	}
	cai_free(ch);
	cai_free(pf);
	cai_free(ty);
	return CAI_OK;
}

/* Bounds of a workspace for batches of up to B pieces of e. */
typedef struct LenItem
{
	int32_t		len;
	int32_t		pos;
	int32_t		id;
} LenItem;

static int
cmp_len_desc(const void *a, const void *b)
{
	const LenItem *x = a;
	const LenItem *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int
cmp_len_asc(const void *a, const void *b)
{
	const LenItem *x = a;
	const LenItem *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static cai_status
enc_bounds(const NerEnc *e, int B, int *maxT, size_t *maxN, size_t *maxNc, cai_error *err)
{
	LenItem    *it = cai_malloc(sizeof(LenItem) * (e->n + 1));

	*maxT = 1;
	*maxN = 1;
	*maxNc = 1;
	if (it == NULL)
		return NOMEM(err);
	for (int pass = 0; pass < 2; pass++)
	{
		size_t		sum = 0;

		for (size_t p = 0; p < e->n; p++)
		{
			int64_t		a = e->soff[p],
						z = e->soff[p + 1];

			it[p].len = pass == 0 ? (int32_t) (z - a) : (int32_t) (e->coff[z] - e->coff[a]);
			it[p].pos = (int32_t) p;
		}
		qsort(it, e->n, sizeof(LenItem), cmp_len_desc);
		for (size_t p = 0; p < e->n && p < (size_t) B; p++)
			sum += (size_t) it[p].len;
		if (pass == 0)
		{
			*maxT = e->n > 0 ? it[0].len : 1;
			*maxN = sum;
		}
		else
			*maxNc = sum;
	}
	cai_free(it);
	return CAI_OK;
}

/* Decode the pieces order[0..B) of e into pred and scores (may be NULL), indexed like e's tokens. */
static cai_status
enc_decode_batch(const cai_ner *m, const NerEnc *e, const int32_t *order, int B, NerWs *ws,
				 int32_t *pred, float *scores, cai_error *err)
{
	cai_status	st;

	if ((st = net_forward(m, e, order, B, ws, NULL, err)) != CAI_OK ||
		(st = net_decode(m, ws, scores != NULL, err)) != CAI_OK)
		return st;
	for (int b = 0; b < B; b++)
	{
		int64_t		a = e->soff[order[b]];

		for (int t = 0; t < ws->len[b]; t++)
		{
			pred[a + t] = ws->tags[(size_t) b * ws->T + t];
			if (scores != NULL)
				scores[a + t] = ws->score[ws->tstart[b] + t];
		}
	}
	return CAI_OK;
}

/*
 * Decode every piece of e with the current parameters, NER_EVAL_BATCH
 * pieces of similar length at a time; pred (ntok) gets internal tags and
 * scores (ntok, may be NULL) the marginals.  order (e->n) is the batch
 * order (pieces sorted by length); ws must fit every batch.
 */
static cai_status
enc_decode(const cai_ner *m, const NerEnc *e, const int32_t *order, NerWs *ws,
		   int32_t *pred, float *scores, Ticker *tk, double frac0, double frac1,
		   cai_error *err)
{
	for (size_t p0 = 0; p0 < e->n; p0 += NER_EVAL_BATCH)
	{
		int			B = (int) (e->n - p0 < NER_EVAL_BATCH ? e->n - p0 : NER_EVAL_BATCH);
		cai_status	st;

		if ((st = enc_decode_batch(m, e, order + p0, B, ws, pred, scores, err)) != CAI_OK)
			return st;
		if (tk != NULL && !ticker_tick(tk, frac0 + (frac1 - frac0) * (double) (p0 + B) / (double) e->n))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
	}
	return CAI_OK;
}

/* Pieces of e in increasing length (stable): the evaluation order. */
static void
enc_length_order(const NerEnc *e, LenItem *tmp, int32_t *order)
{
	for (size_t p = 0; p < e->n; p++)
	{
		tmp[p].len = (int32_t) (e->soff[p + 1] - e->soff[p]);
		tmp[p].pos = (int32_t) p;
	}
	qsort(tmp, e->n, sizeof(LenItem), cmp_len_asc);
	for (size_t p = 0; p < e->n; p++)
		order[p] = tmp[p].pos;
}

/* Inference workspace fitting every NER_EVAL_BATCH batch of e in order. */
static cai_status
ws_for_order(const NerDims *d, const NerEnc *e, const int32_t *order, NerWs *ws,
			 bool bytes_only, size_t *bytes, cai_error *err)
{
	int			maxT = 1;
	size_t		maxN = 1,
				maxNc = 1;

	for (size_t p0 = 0; p0 < e->n; p0 += NER_EVAL_BATCH)
	{
		size_t		N = 0,
					Nc = 0;

		for (size_t p = p0; p < e->n && p < p0 + NER_EVAL_BATCH; p++)
		{
			int64_t		a = e->soff[order[p]],
						z = e->soff[order[p] + 1];

			if (z - a > maxT)
				maxT = (int) (z - a);
			N += (size_t) (z - a);
			Nc += (size_t) (e->coff[z] - e->coff[a]);
		}
		if (N > maxN)
			maxN = N;
		if (Nc > maxNc)
			maxNc = Nc;
	}
	return ws_init(ws, d, e->n < NER_EVAL_BATCH ? (int) e->n : NER_EVAL_BATCH, maxT, maxN, maxNc,
				   false, bytes_only, bytes, err);
}

/* Entity F1 of internal tags pred against the parsed gold tags of s. */
static double
side_f1(const NerSide *s, const int32_t *pred, char *pp, int32_t *pt)
{
	const NerEnc *e = &s->enc;
	int64_t		gold = 0,
				npred = 0,
				ok = 0;
	double		p,
				r;

	for (size_t i = 0; i < e->ntok; i++)
	{
		pp[i] = tag_prefix(pred[i]);
		pt[i] = tag_type(pred[i]);
	}
	for (size_t q = 0; q < e->n; q++)
	{
		int64_t		a = e->soff[q];

		cai_chunks_count(s->prefix + a, s->type + a, pp + a, pt + a, (size_t) (e->soff[q + 1] - a),
						 &gold, &npred, &ok);
	}
	p = npred > 0 ? (double) ok / (double) npred : 0.0;
	r = gold > 0 ? (double) ok / (double) gold : 0.0;
	return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

/* Count normalized training words; first-seen order. */
typedef struct Counter
{
	cai_strtab	tab;
	int64_t    *cnt;
	size_t		cap;
} Counter;

static void
counter_free(Counter *c)
{
	cai_strtab_free(&c->tab);
	cai_free(c->cnt);
	memset(c, 0, sizeof(*c));
}

static cai_status
counter_add(Counter *c, const char *s, size_t len, cai_error *err)
{
	int32_t		id;
	cai_status	st;

	if ((st = cai_strtab_intern(&c->tab, s, len, &id, NULL, err)) != CAI_OK)
		return st;
	if ((size_t) id >= c->cap)
	{
		size_t		cap = c->cap < 1024 ? 1024 : c->cap * 2;
		int64_t    *p = cai_realloc(c->cnt, sizeof(int64_t) * c->cap, sizeof(int64_t) * cap);

		if (p == NULL)
			return NOMEM(err);
		memset(p + c->cap, 0, sizeof(int64_t) * (cap - c->cap));
		c->cnt = p;
		c->cap = cap;
	}
	c->cnt[id]++;
	return CAI_OK;
}

/* Count the normalized words and the code points of the tokens of s. */
static cai_status
count_vocab(const NerSide *s, Counter *wc, Counter *cc, cai_error *err)
{
	cai_status	st;
	size_t		ntok = (size_t) s->off[s->n];

	if ((st = cai_strtab_init(&wc->tab, 1024, err)) != CAI_OK ||
		(st = cai_strtab_init(&cc->tab, 256, err)) != CAI_OK)
		return st;
	for (size_t i = 0; i < ntok; i++)
	{
		char		norm[NER_NORM_MAX];
		size_t		n = ner_norm(s->tok[i], s->len[i], norm);
		size_t		pos = 0;

		if ((st = counter_add(wc, norm, n, err)) != CAI_OK)
			return st;
		while (pos < s->len[i])
		{
			int32_t		cp;
			int			k = cai_utf8_decode(s->tok[i] + pos, s->len[i] - pos, &cp);

			if (k <= 0)
				break;
			if (cp >= 0 && (st = counter_add(cc, s->tok[i] + pos, (size_t) k, err)) != CAI_OK)
				return st;
			pos += (size_t) k;
		}
	}
	return CAI_OK;
}

static cai_status
dims_from_options(const cai_options *opts, NerDims *d, cai_error *err)
{
	memset(d, 0, sizeof(*d));
	d->Dw = (int) cai_opt_int(opts, "dimensions");
	d->Dc = (int) cai_opt_int(opts, "char_dimensions");
	d->F = (int) cai_opt_int(opts, "char_filters");
	d->H = (int) cai_opt_int(opts, "hidden");
	d->Dcase = NER_CASE_DIM;
	d->C = d->Dw + d->F + d->Dcase;
	if (d->Dw < 1 || d->Dc < 1 || d->F < 1 || d->H < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "options are not ner options");
	return CAI_OK;
}


/* ---------------------------------------------------------------------- */
/* Data-parallel training threads                                         */
/* ---------------------------------------------------------------------- */

/* Zero a shard's own gradients: dense parameters fully, word rows by its row set. */
static void
shard_zero_grad(NerShard *sh)
{
	const cai_slab *slab = &sh->t->m.net.slab;

	for (int i = 0; i < slab->n_params; i++)
	{
		const cai_param *p = &slab->params[i];
		float	   *g = sh->grad + p->offset;

		if (p->sparse)
		{
			size_t		D = p->numel / (size_t) p->shape[0];

			for (int32_t r = 0; r < sh->rows.count; r++)
				memset(g + (size_t) sh->rows.list[r] * D, 0, sizeof(float) * D);
			cai_rowset_clear(&sh->rows);
		}
		else
			memset(g, 0, sizeof(float) * p->numel);
	}
}

/* Forward and backward of the shard's sentences (shard 0: into the slab's zeroed gradients). */
static void
shard_train(NerShard *sh)
{
	NerTrain   *t = sh->t;
	NerTrainCtx tc = {t->dropout, &sh->rng, t->singleton, NER_UNK_SINGLETON};
	NerGrad		g;

	sh->loss = 0.0;
	sh->st = CAI_OK;
	if (sh->id == 0)
		g = net_slab_grad(&t->m.net, 1);
	else
	{
		shard_zero_grad(sh);
		g.base = sh->grad;
		g.rows = &sh->rows;
	}
	g.scale = t->pool.gscale;
	if (sh->B == 0)
		return;
	if ((sh->st = net_forward(&t->m, &t->tr.enc, sh->ids, sh->B, &sh->ws, &tc, &sh->err)) == CAI_OK)
		sh->st = net_backward(&t->m, &sh->ws, &tc, &g, &sh->loss, &sh->err);
}

/*
 * Shard id's part of the optimizer step: slice id of n of the dense
 * parameters' floats (taken in slab order) and of each sparse parameter's
 * touched rows, updated as cai_slab_step would (elementwise, so the
 * parameters come out the same as with one cai_slab_step).
 */
static void
shard_step(NerShard *sh)
{
	const NerPool *pool = &sh->t->pool;
	const cai_slab *slab = &sh->t->m.net.slab;
	size_t		n = (size_t) pool->n;
	size_t		id = (size_t) sh->id;
	size_t		d0 = pool->dense * id / n;
	size_t		d1 = pool->dense * (id + 1) / n;
	size_t		pos = 0;

	sh->st = CAI_OK;
	for (int i = 0; i < slab->n_params; i++)
	{
		const cai_param *p = &slab->params[i];
		cai_optim_config c = *pool->cfg;
		size_t		off = p->offset;
		float	   *m = slab->m != NULL ? slab->m + off : NULL;
		float	   *v = slab->v != NULL ? slab->v + off : NULL;

		if (!p->decay)
			c.weight_decay = 0.0f;
		if (p->sparse)
		{
			size_t		R = (size_t) p->rows.count;
			size_t		r0 = R * id / n;
			size_t		r1 = R * (id + 1) / n;

			cai_optim_step_rows(&c, pool->lr, pool->step, slab->data + off, slab->grad + off, m, v,
								p->numel / (size_t) p->shape[0], p->rows.list + r0, r1 - r0);
		}
		else
		{
			size_t		a = pos > d0 ? pos : d0;
			size_t		b = pos + p->numel < d1 ? pos + p->numel : d1;

			if (a < b)
			{
				off += a - pos;
				cai_optim_step(&c, pool->lr, pool->step, slab->data + off, slab->grad + off,
							   m != NULL ? m + (a - pos) : NULL, v != NULL ? v + (a - pos) : NULL, b - a);
			}
			pos += p->numel;
		}
	}
}

/* Decode evaluation batch ebatch0 + id, if there is one. */
static void
shard_eval(NerShard *sh)
{
	NerTrain   *t = sh->t;
	const NerPool *pool = &t->pool;
	const NerEnc *e = pool->ee;
	size_t		p0 = (pool->ebatch0 + (size_t) sh->id) * NER_EVAL_BATCH;
	int			B;

	sh->st = CAI_OK;
	if (p0 >= e->n)
		return;
	B = (int) (e->n - p0 < NER_EVAL_BATCH ? e->n - p0 : NER_EVAL_BATCH);
	sh->st = enc_decode_batch(&t->m, e, pool->eorder + p0, B, sh->id == 0 ? &t->ews : &sh->ews,
							  pool->epred, NULL, &sh->err);
}

static void
shard_run(NerShard *sh, NerJob job)
{
	if (job == JOB_TRAIN)
		shard_train(sh);
	else if (job == JOB_STEP)
		shard_step(sh);
	else if (job == JOB_EVAL)
		shard_eval(sh);
}

/* Body of pool thread s >= 1: run each new job on shard s until JOB_EXIT. */
static void *
pool_main(void *arg)
{
	NerShard   *sh = arg;
	NerPool    *pool = &sh->t->pool;
	uint64_t	seen = 0;

	cai_pool_thread_enter();
	pthread_mutex_lock(&pool->mu);
	for (;;)
	{
		NerJob		job;

		while (pool->gen == seen)
			pthread_cond_wait(&pool->go, &pool->mu);
		seen = pool->gen;
		job = pool->job;
		pthread_mutex_unlock(&pool->mu);
		if (job == JOB_EXIT)
			return NULL;
		shard_run(sh, job);
		pthread_mutex_lock(&pool->mu);
		if (--pool->pending == 0)
			pthread_cond_signal(&pool->done);
	}
}

/* Run job on every shard (shard 0 on the calling thread) and wait for all. */
static void
pool_run(NerPool *pool, NerJob job)
{
	pthread_mutex_lock(&pool->mu);
	pool->job = job;
	pool->pending = pool->n - 1;
	pool->gen++;
	pthread_cond_broadcast(&pool->go);
	pthread_mutex_unlock(&pool->mu);
	shard_run(&pool->sh[0], job);
	pthread_mutex_lock(&pool->mu);
	while (pool->pending > 0)
		pthread_cond_wait(&pool->done, &pool->mu);
	pthread_mutex_unlock(&pool->mu);
}

/* Stop and join the pool threads (idempotent; the shard buffers stay). */
static void
pool_stop(NerPool *pool)
{
	if (pool->started > 0)
	{
		pthread_mutex_lock(&pool->mu);
		pool->job = JOB_EXIT;
		pool->gen++;
		pthread_cond_broadcast(&pool->go);
		pthread_mutex_unlock(&pool->mu);
		for (int s = 1; s <= pool->started; s++)
			pthread_join(pool->th[s], NULL);
		pool->started = 0;
	}
	if (pool->sync_ok)
	{
		pthread_cond_destroy(&pool->done);
		pthread_cond_destroy(&pool->go);
		pthread_mutex_destroy(&pool->mu);
		pool->sync_ok = false;
	}
}

static void
pool_free(NerPool *pool)
{
	pool_stop(pool);
	for (int s = 0; pool->sh != NULL && s < pool->n; s++)
	{
		NerShard   *sh = &pool->sh[s];

		ws_free(&sh->ws);
		ws_free(&sh->ews);
		cai_free(sh->grad);
		cai_rowset_free(&sh->rows);
		cai_free(sh->ids);
	}
	cai_free(pool->sh);
	cai_free(pool->th);
	memset(pool, 0, sizeof(*pool));
	pool->n = 1;
}

/*
 * Start n - 1 pool threads for t (before any training buffer exists; they
 * wait for the first job).  Any failure leaves a stopped pool of one shard:
 * training then runs on the calling thread.  Signals are blocked in the
 * pool threads: the server's handlers run on the main thread only.
 */
static void
pool_start(NerTrain *t, int n)
{
	NerPool    *pool = &t->pool;
	sigset_t	all,
				old;

	memset(pool, 0, sizeof(*pool));
	pool->n = 1;
	if (n <= 1)
		return;
	pool->sh = cai_calloc((size_t) n, sizeof(NerShard));
	pool->th = cai_calloc((size_t) n, sizeof(pthread_t));
	if (pool->sh == NULL || pool->th == NULL)
		goto fail;
	pool->n = n;
	for (int s = 0; s < n; s++)
	{
		pool->sh[s].t = t;
		pool->sh[s].id = s;
	}
	if (pthread_mutex_init(&pool->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&pool->go, NULL) != 0)
	{
		pthread_mutex_destroy(&pool->mu);
		goto fail;
	}
	if (pthread_cond_init(&pool->done, NULL) != 0)
	{
		pthread_cond_destroy(&pool->go);
		pthread_mutex_destroy(&pool->mu);
		goto fail;
	}
	pool->sync_ok = true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int s = 1; s < n; s++)
	{
		if (pthread_create(&pool->th[s], NULL, pool_main, &pool->sh[s]) != 0)
			break;
		pool->started = s;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pool->started == n - 1)
		return;
fail:
	pool_free(pool);
}

/*
 * Per-shard buffers (train_setup, pool running): training workspaces for
 * ceil(batch / n) sentences, and for shards >= 1 gradients, a word row set,
 * and an evaluation workspace like t->ews.
 */
static cai_status
pool_alloc(NerTrain *t, const NerDims *d, const NerEnc *ev, cai_error *err)
{
	NerPool    *pool = &t->pool;
	int			Bs = (t->batch + pool->n - 1) / pool->n;
	int			maxT;
	size_t		maxN,
				maxNc;
	cai_status	st;

	if ((st = enc_bounds(&t->tr.enc, Bs, &maxT, &maxN, &maxNc, err)) != CAI_OK)
		return st;
	pool->dense = 0;
	for (int i = 0; i < t->m.net.slab.n_params; i++)
		if (!t->m.net.slab.params[i].sparse)
			pool->dense += t->m.net.slab.params[i].numel;
	for (int s = 0; s < pool->n; s++)
	{
		NerShard   *sh = &pool->sh[s];

		if ((st = ws_init(&sh->ws, d, Bs, maxT, maxN, maxNc, true, false, NULL, err)) != CAI_OK)
			return st;
		if ((sh->ids = cai_malloc(sizeof(int32_t) * (size_t) Bs)) == NULL)
			return NOMEM(err);
		if (s == 0)
			continue;
		if ((st = ws_for_order(d, ev, t->eorder, &sh->ews, false, NULL, err)) != CAI_OK ||
			(st = cai_rowset_init(&sh->rows, d->Vw, err)) != CAI_OK)
			return st;
		if ((sh->grad = cai_calloc(t->m.net.slab.numel, sizeof(float))) == NULL)
			return NOMEM(err);
	}
	return CAI_OK;
}

/*
 * One optimizer step on the batch ids[0..B) split over the pool: shard
 * gradients are added in shard order and clipped as in train_step, then
 * the pool applies the update (JOB_STEP: the same parameters as
 * cai_slab_step).
 */
static cai_status
train_step_par(NerTrain *t, const cai_optim_config *cfg, cai_rng *rng, const int32_t *ids, int B,
			   int64_t step, double *loss, cai_error *err)
{
	NerPool    *pool = &t->pool;
	cai_slab   *slab = &t->m.net.slab;
	float		norm;
	cai_status	st;

	for (int s = 0; s < pool->n; s++)
	{
		pool->sh[s].B = 0;
		cai_rng_seed(&pool->sh[s].rng, cai_rng_u64(rng));
	}
	for (int b = 0; b < B; b++)
	{
		NerShard   *sh = &pool->sh[b % pool->n];

		sh->ids[sh->B++] = ids[b];
	}
	pool->gscale = 1.0f / (float) B;
	cai_slab_zero_grad(slab);
	pool_run(pool, JOB_TRAIN);
	*loss = 0.0;
	for (int s = 0; s < pool->n; s++)
	{
		if (pool->sh[s].st != CAI_OK)
		{
			if (err != NULL)
				*err = pool->sh[s].err;
			return pool->sh[s].st;
		}
		*loss += pool->sh[s].loss;
	}
	for (int s = 1; s < pool->n; s++)
	{
		const NerShard *sh = &pool->sh[s];

		for (int i = 0; i < slab->n_params; i++)
		{
			const cai_param *p = &slab->params[i];
			float	   *dst = slab->grad + p->offset;
			const float *src = sh->grad + p->offset;

			if (p->sparse)
			{
				size_t		D = p->numel / (size_t) p->shape[0];
				cai_rowset *rows = cai_slab_rowset(slab, i);

				for (int32_t r = 0; r < sh->rows.count; r++)
				{
					size_t		o = (size_t) sh->rows.list[r] * D;

					for (size_t j = 0; j < D; j++)
						dst[o + j] += src[o + j];
					cai_rowset_add(rows, sh->rows.list[r]);
				}
			}
			else
				for (size_t j = 0; j < p->numel; j++)
					dst[j] += src[j];
		}
	}
	norm = cai_slab_clip_grad_norm(slab, t->clip);
	if (!isfinite(norm) || !isfinite(*loss))
		return cai_error_set(err, CAI_ERR_NUMERIC, "training diverged (the loss or gradient is not finite)");
	if ((st = cai_optim_check(cfg, err)) != CAI_OK)
		return st;
	if (slab->n_state < cai_optim_state_slabs(cfg) || !(t->lr >= 0.0f && isfinite(t->lr)))
		return cai_error_set(err, CAI_ERR_INTERNAL, "optimizer state or learning rate is invalid");
	pool->cfg = cfg;
	pool->lr = t->lr;
	pool->step = step;
	pool_run(pool, JOB_STEP);
	return CAI_OK;
}

/* enc_decode of the evaluation side with the pool: rounds of one batch per shard. */
static cai_status
enc_decode_par(NerTrain *t, const NerEnc *e, int32_t *pred, Ticker *tk, double frac0, double frac1,
			   cai_error *err)
{
	NerPool    *pool = &t->pool;
	size_t		nb = (e->n + NER_EVAL_BATCH - 1) / NER_EVAL_BATCH;

	pool->ee = e;
	pool->eorder = t->eorder;
	pool->epred = pred;
	for (size_t b0 = 0; b0 < nb; b0 += (size_t) pool->n)
	{
		size_t		upto;

		pool->ebatch0 = b0;
		pool_run(pool, JOB_EVAL);
		for (int s = 0; s < pool->n; s++)
			if (pool->sh[s].st != CAI_OK)
			{
				if (err != NULL)
					*err = pool->sh[s].err;
				return pool->sh[s].st;
			}
		upto = (b0 + (size_t) pool->n) * NER_EVAL_BATCH;
		if (upto > e->n)
			upto = e->n;
		if (tk != NULL && !ticker_tick(tk, frac0 + (frac1 - frac0) * (double) upto / (double) e->n))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
	}
	return CAI_OK;
}

/* Decode the evaluation side (t->eorder) into pred, with the pool when there is one. */
static cai_status
train_decode(NerTrain *t, const NerEnc *e, int32_t *pred, Ticker *tk, double frac0, double frac1,
			 cai_error *err)
{
	if (t->pool.n > 1)
		return enc_decode_par(t, e, pred, tk, frac0, frac1, err);
	return enc_decode(&t->m, e, t->eorder, &t->ews, pred, NULL, tk, frac0, frac1, err);
}

/*
 * Everything before the first epoch: split, tags, vocabularies, the
 * network, encoded data and workspaces.
 */
static cai_status
train_setup(NerTrain *t, const cai_options *opts, const cai_ner_data *train,
			const cai_ner_data *valid, const cai_word_vectors *vec, cai_error *err)
{
	cai_ner    *m = &t->m;
	NerDims		d;
	int32_t    *sel = NULL;
	const char **names = NULL;
	int32_t    *remap = NULL;
	Counter		wc,
				cc;
	cai_strtab	tt,
				extra;
	const char *scheme_opt;
	int			scheme = -1;
	cai_rng		rng;
	cai_status	st;

	memset(&wc, 0, sizeof(wc));
	memset(&cc, 0, sizeof(cc));
	memset(&tt, 0, sizeof(tt));
	memset(&extra, 0, sizeof(extra));
	if ((st = dims_from_options(opts, &d, err)) != CAI_OK)
		return st;
	t->epochs = (int) cai_opt_int(opts, "epochs");
	t->batch = (int) cai_opt_int(opts, "batch_size");
	t->patience = (int) cai_opt_int(opts, "patience");
	t->min_count = (int) cai_opt_int(opts, "min_count");
	t->lr = (float) cai_opt_float(opts, "learning_rate");
	t->dropout = (float) cai_opt_float(opts, "dropout");
	t->clip = (float) cai_opt_float(opts, "clip");
	t->max_seconds = cai_opt_float(opts, "max_seconds");
	t->seed = (uint64_t) cai_opt_int(opts, "seed");
	m->max_tokens = (int) cai_opt_int(opts, "max_tokens");
	scheme_opt = cai_opt_string(opts, "tag_scheme");
	if (scheme_opt != NULL && strcmp(scheme_opt, "iob1") == 0)
		scheme = CAI_SCHEME_IOB1;
	else if (scheme_opt != NULL && strcmp(scheme_opt, "iob2") == 0)
		scheme = CAI_SCHEME_IOB2;
	else if (scheme_opt != NULL && strcmp(scheme_opt, "bioes") == 0)
		scheme = CAI_SCHEME_BIOES;
	if (vec != NULL && vec->n > 0)
	{
		if (vec->dim != d.Dw)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "word vectors have %d dimensions but option \"dimensions\" is %d",
								 vec->dim, d.Dw);
		if (vec->words == NULL || vec->lens == NULL || vec->vectors == NULL)
			return cai_error_set(err, CAI_ERR_INVALID, "word vectors lack words or values");
		if (!cai_all_finite(vec->vectors, vec->n * (size_t) vec->dim))
			return cai_error_set(err, CAI_ERR_INVALID, "word vectors hold NaN or infinity");
	}

	/* split */
	sel = cai_malloc(sizeof(int32_t) * (train->n + (valid != NULL ? valid->n : 0) + 1));
	if (sel == NULL)
		return NOMEM(err);
	if (valid != NULL)
	{
		for (size_t i = 0; i < train->n; i++)
			sel[i] = (int32_t) i;
		if ((st = side_build(&t->tr, train, sel, train->n, err)) != CAI_OK)
			goto done;
		for (size_t i = 0; i < valid->n; i++)
			sel[i] = (int32_t) i;
		if ((st = side_build(&t->va, valid, sel, valid->n, err)) != CAI_OK)
			goto done;
	}
	else
	{
		double		frac = cai_opt_float(opts, "validation_fraction");
		size_t		n_va = (size_t) floor(frac * (double) train->n + 0.5);
		uint8_t    *isva = cai_calloc(train->n + 1, 1);
		size_t		a = 0;

		if (isva == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		if (frac > 0 && n_va == 0)
			n_va = 1;
		if (n_va >= train->n)
			n_va = train->n > 1 ? train->n - 1 : 0;
		for (size_t i = 0; i < train->n; i++)
			sel[i] = (int32_t) i;
		cai_rng_seed(&rng, t->seed * UINT64_C(0x9e3779b97f4a7c15) + 1);
		cai_rng_shuffle(&rng, sel, train->n);
		for (size_t i = 0; i < n_va; i++)
			isva[sel[i]] = 1;
		for (int pass = 0; pass < 2 && st == CAI_OK; pass++)
		{
			a = 0;
			for (size_t i = 0; i < train->n; i++)
				if (isva[i] == pass)
					sel[a++] = (int32_t) i;
			st = side_build(pass == 0 ? &t->tr : &t->va, train, sel, a, err);
		}
		cai_free(isva);
		if (st != CAI_OK)
			goto done;
	}
	if (t->tr.n == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "no training sentences with tokens");
		goto done;
	}

	/* tags and types */
	if ((st = cai_strtab_init(&tt, 16, err)) != CAI_OK ||
		(st = side_parse(&t->tr, "training", &tt, scheme, NULL, NULL, err)) != CAI_OK)
		goto done;
	t->scheme = scheme >= 0 ? (cai_chunk_scheme) scheme :
		cai_chunk_scheme_detect(t->tr.prefix, t->tr.type, t->tr.off, t->tr.n);
	if (tt.n == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "the training tags contain no entities (every tag is O)");
		goto done;
	}
	if (tt.n > NER_MAX_TYPES)
	{
		st = cai_error_set(err, CAI_ERR_LIMIT, "too many entity types (%d, at most %d)", tt.n, NER_MAX_TYPES);
		goto done;
	}
	names = cai_malloc(sizeof(char *) * (size_t) tt.n);
	remap = cai_malloc(sizeof(int32_t) * (size_t) tt.n);
	if (names == NULL || remap == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (int32_t i = 0; i < tt.n; i++)
		names[i] = cai_strtab_str(&tt, i);
	qsort(names, (size_t) tt.n, sizeof(char *), cmp_str);
	if ((st = cai_strtab_init(&m->types, tt.n, err)) != CAI_OK)
		goto done;
	for (int32_t i = 0; i < tt.n; i++)
	{
		int32_t		id;

		if ((st = cai_strtab_intern(&m->types, names[i], strlen(names[i]), &id, NULL, err)) != CAI_OK)
			goto done;
	}
	for (int32_t i = 0; i < tt.n; i++)
		remap[i] = cai_strtab_find(&m->types, cai_strtab_str(&tt, i), cai_strtab_len(&tt, i));
	for (int64_t j = 0; j < t->tr.off[t->tr.n]; j++)
		if (t->tr.type[j] >= 0)
			t->tr.type[j] = remap[t->tr.type[j]];
	if ((st = ner_build_tags(m, err)) != CAI_OK)
		goto done;
	if (t->va.n > 0)
	{
		if ((st = cai_strtab_init(&extra, 16, err)) != CAI_OK ||
			(st = side_parse(&t->va, "validation", NULL, -1, &m->types, &extra, err)) != CAI_OK)
			goto done;
	}

	/* vocabularies */
	if ((st = count_vocab(&t->tr, &wc, &cc, err)) != CAI_OK ||
		(st = cai_strtab_init(&m->words, wc.tab.n, err)) != CAI_OK ||
		(st = cai_strtab_init(&m->chars, cc.tab.n, err)) != CAI_OK)
		goto done;
	for (int32_t i = 0; i < wc.tab.n; i++)
	{
		int32_t		id;

		if (wc.cnt[i] >= t->min_count &&
			(st = cai_strtab_intern(&m->words, cai_strtab_str(&wc.tab, i), cai_strtab_len(&wc.tab, i),
									&id, NULL, err)) != CAI_OK)
			goto done;
	}
	for (int32_t i = 0; i < cc.tab.n; i++)
	{
		int32_t		id;

		if ((st = cai_strtab_intern(&m->chars, cai_strtab_str(&cc.tab, i), cai_strtab_len(&cc.tab, i),
									&id, NULL, err)) != CAI_OK)
			goto done;
	}
	if (vec != NULL)
		for (size_t i = 0; i < vec->n; i++)
		{
			char		norm[NER_NORM_MAX];
			size_t		n;
			int32_t		id;

			if (vec->words[i] == NULL)
				continue;
			n = ner_norm(vec->words[i], vec->lens[i], norm);
			if (m->words.n >= NER_MAX_VOCAB - 1)
				break;
			if ((st = cai_strtab_intern(&m->words, norm, n, &id, NULL, err)) != CAI_OK)
				goto done;
		}
	if (m->words.n >= NER_MAX_VOCAB - 1 || m->chars.n >= NER_MAX_VOCAB - 1)
	{
		st = cai_error_set(err, CAI_ERR_LIMIT, "vocabulary is too large");
		goto done;
	}

	/* network */
	d.Vw = m->words.n + 1;
	d.Vc = m->chars.n + 1;
	d.n_types = m->types.n;
	d.K = 1 + 4 * d.n_types;
	if ((st = net_declare(&m->net, &d, err)) != CAI_OK ||
		(st = cai_slab_alloc(&m->net.slab, true, 2, 0, err)) != CAI_OK)
		goto done;
	cai_rng_seed(&rng, t->seed);
	net_init_params(&m->net, &rng);
	t->singleton = cai_calloc((size_t) d.Vw, 1);
	if (t->singleton == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (int32_t i = 0; i < wc.tab.n; i++)
		if (wc.cnt[i] == 1)
		{
			int32_t		id = cai_strtab_find(&m->words, cai_strtab_str(&wc.tab, i), cai_strtab_len(&wc.tab, i));

			if (id >= 0)
				t->singleton[id + 1] = 1;
		}
	if (vec != NULL)
	{
		uint8_t    *done_row = cai_calloc((size_t) d.Vw, 1);

		if (done_row == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		for (size_t i = 0; i < vec->n; i++)
		{
			char		norm[NER_NORM_MAX];
			size_t		n;
			int32_t		row;

			if (vec->words[i] == NULL)
				continue;
			n = ner_norm(vec->words[i], vec->lens[i], norm);
			row = cai_strtab_find(&m->words, norm, n) + 1;
			if (row <= 0 || done_row[row])
				continue;
			done_row[row] = 1;
			t->singleton[row] = 0;
			memcpy(PD(&m->net, P_WORD) + (size_t) row * d.Dw, vec->vectors + i * (size_t) d.Dw,
				   sizeof(float) * d.Dw);
		}
		cai_free(done_row);
	}

	/* encoded data */
	if ((st = enc_build(m, t->tr.n, t->tr.off, t->tr.tok, t->tr.len, m->max_tokens, &t->tr.enc, err)) != CAI_OK ||
		(st = side_gold_tags(&t->tr, err)) != CAI_OK)
		goto done;
	if (t->va.n > 0 &&
		(st = enc_build(m, t->va.n, t->va.off, t->va.tok, t->va.len, m->max_tokens, &t->va.enc, err)) != CAI_OK)
		goto done;
	{
		int			maxT;
		size_t		maxN,
					maxNc;
		const NerSide *ev = t->va.n > 0 ? &t->va : &t->tr;
		LenItem    *tmp = cai_malloc(sizeof(LenItem) * (ev->enc.n + 1));

		t->eorder = cai_malloc(sizeof(int32_t) * (ev->enc.n + 1));
		t->pred = cai_malloc(sizeof(int32_t) * (ev->enc.ntok + 1));
		t->best_pred = cai_malloc(sizeof(int32_t) * (ev->enc.ntok + 1));
		t->best = cai_malloc(sizeof(float) * m->net.slab.numel);
		t->order = cai_malloc(sizeof(int32_t) * (t->tr.enc.n + 1));
		t->bstart = cai_malloc(sizeof(int32_t) * (t->tr.enc.n + 2));
		t->border = cai_malloc(sizeof(int32_t) * (t->tr.enc.n + 1));
		if (tmp == NULL || t->eorder == NULL || t->pred == NULL || t->best_pred == NULL ||
			t->best == NULL || t->order == NULL || t->bstart == NULL || t->border == NULL)
		{
			cai_free(tmp);
			st = NOMEM(err);
			goto done;
		}
		enc_length_order(&ev->enc, tmp, t->eorder);
		cai_free(tmp);
		if ((st = ws_for_order(&d, &ev->enc, t->eorder, &t->ews, false, NULL, err)) != CAI_OK)
			goto done;
		if (t->pool.n > 1)
			st = pool_alloc(t, &d, &ev->enc, err);
		else if ((st = enc_bounds(&t->tr.enc, t->batch, &maxT, &maxN, &maxNc, err)) == CAI_OK)
			st = ws_init(&t->ws, &d, t->batch, maxT, maxN, maxNc, true, false, NULL, err);
		if (st != CAI_OK)
			goto done;
	}
	st = CAI_OK;
done:
	cai_free(sel);
	cai_free(names);
	cai_free(remap);
	counter_free(&wc);
	counter_free(&cc);
	cai_strtab_free(&tt);
	cai_strtab_free(&extra);
	return st;
}

/*
 * This epoch's batches: shuffle the pieces, sort windows of 32 batches by
 * length, cut batches, shuffle the batch order.  Returns the batch count.
 */
static int
make_batches(NerTrain *t, cai_rng *rng, LenItem *tmp)
{
	const NerEnc *e = &t->tr.enc;
	size_t		n = e->n;
	size_t		win = (size_t) t->batch * 32;
	int			nb = 0;

	for (size_t p = 0; p < n; p++)
		t->order[p] = (int32_t) p;
	cai_rng_shuffle(rng, t->order, n);
	for (size_t w0 = 0; w0 < n; w0 += win)
	{
		size_t		k = n - w0 < win ? n - w0 : win;

		for (size_t i = 0; i < k; i++)
		{
			int32_t		p = t->order[w0 + i];

			tmp[i].len = (int32_t) (e->soff[p + 1] - e->soff[p]);
			tmp[i].pos = (int32_t) i;
			tmp[i].id = p;
		}
		qsort(tmp, k, sizeof(LenItem), cmp_len_asc);
		for (size_t i = 0; i < k; i++)
			t->order[w0 + i] = tmp[i].id;
	}
	for (size_t b0 = 0; b0 < n; b0 += (size_t) t->batch)
		t->bstart[nb++] = (int32_t) b0;
	t->bstart[nb] = (int32_t) n;
	for (int b = 0; b < nb; b++)
		t->border[b] = b;
	cai_rng_shuffle(rng, t->border, (size_t) nb);
	return nb;
}

/* One optimizer step on the batch of sentences ids[0..B). */
static cai_status
train_step(NerTrain *t, const cai_optim_config *cfg, const NerTrainCtx *tc, const int32_t *ids, int B,
		   int64_t step, double *loss, cai_error *err)
{
	cai_status	st;
	float		norm;

	NerGrad		g = net_slab_grad(&t->m.net, B);

	cai_slab_zero_grad(&t->m.net.slab);
	if ((st = net_forward(&t->m, &t->tr.enc, ids, B, &t->ws, tc, err)) != CAI_OK ||
		(st = net_backward(&t->m, &t->ws, tc, &g, loss, err)) != CAI_OK)
		return st;
	norm = cai_slab_clip_grad_norm(&t->m.net.slab, t->clip);
	if (!isfinite(norm) || !isfinite(*loss))
		return cai_error_set(err, CAI_ERR_NUMERIC, "training diverged (the loss or gradient is not finite)");
	return cai_slab_step(&t->m.net.slab, cfg, t->lr, step, err);
}

/* The epochs: train, validate, keep the best parameters. */
static cai_status
train_loop(NerTrain *t, Ticker *tk, int *best_epoch_out, int *epochs_run_out, double *best_f1_out,
		   cai_error *err)
{
	cai_optim_config cfg = cai_optim_defaults(CAI_OPTIM_ADAM);
	NerSide    *ev = t->va.n > 0 ? &t->va : &t->tr;
	bool		has_va = t->va.n > 0;
	LenItem    *tmp = cai_malloc(sizeof(LenItem) * ((size_t) t->batch * 32 + 1));
	char	   *pp = cai_malloc(ev->enc.ntok + 1);
	int32_t    *pt = cai_malloc(sizeof(int32_t) * (ev->enc.ntok + 1));
	NerTrainCtx tc;
	cai_rng		rng;
	int64_t		step = 0;
	int			best_epoch = 0;
	int			epochs_run = 0;
	double		best_f1 = -1.0;
	cai_status	st = CAI_OK;

	if (tmp == NULL || pp == NULL || pt == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	cai_rng_seed(&rng, t->seed * UINT64_C(0x9e3779b97f4a7c15) + 2);
	tc.dropout = t->dropout;
	tc.rng = &rng;
	tc.singleton = t->singleton;
	tc.unk_p = NER_UNK_SINGLETON;
	for (int ep = 1; ep <= t->epochs; ep++)
	{
		double		ep_start = cai_now_seconds();
		double		loss_sum = 0.0;
		bool		out_of_time = false;
		int			nb = make_batches(t, &rng, tmp);
		double		f1 = 0.0;
		double		span = 1.0 / (double) t->epochs;

		for (int bi = 0; bi < nb; bi++)
		{
			int32_t		b0 = t->bstart[t->border[bi]];
			int			B = t->bstart[t->border[bi] + 1] - b0;
			double		loss;

			if (t->pool.n > 1)
				st = train_step_par(t, &cfg, &rng, t->order + b0, B, ++step, &loss, err);
			else
				st = train_step(t, &cfg, &tc, t->order + b0, B, ++step, &loss, err);
			if (st != CAI_OK)
				goto done;
			loss_sum += loss;
			if (!ticker_tick(tk, span * ((double) (ep - 1) + 0.95 * (double) (bi + 1) / (double) nb)))
			{
				st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
				goto done;
			}
			if (t->max_seconds > 0 && cai_now_seconds() - tk->start >= t->max_seconds)
			{
				out_of_time = true;
				break;
			}
		}
		epochs_run = ep;
		if (has_va)
		{
			if ((st = train_decode(t, &ev->enc, t->pred, tk,
								   span * ((double) ep - 0.05), span * (double) ep, err)) != CAI_OK)
				goto done;
			f1 = side_f1(ev, t->pred, pp, pt);
		}
		if (!has_va || f1 > best_f1)
		{
			best_f1 = f1;
			best_epoch = ep;
			memcpy(t->best, t->m.net.slab.data, sizeof(float) * t->m.net.slab.numel);
			if (has_va)
				memcpy(t->best_pred, t->pred, sizeof(int32_t) * ev->enc.ntok);
		}
		tk->p.epoch = ep;
		tk->p.epochs = t->epochs;
		tk->p.loss = loss_sum / (double) t->tr.enc.n;
		tk->p.val_score = f1;
		tk->p.rows_per_sec = (double) t->tr.enc.n / fmax(cai_now_seconds() - ep_start, 1e-9);
		tk->p.fraction = (double) ep / (double) t->epochs;
		tk->p.epoch_done = true;
		if (tk->fn != NULL && !tk->fn(tk->ctx, &tk->p))
		{
			st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
			goto done;
		}
		tk->last = cai_now_seconds();
		if (out_of_time || (has_va && t->patience > 0 && ep - best_epoch >= t->patience))
			break;
	}
	memcpy(t->m.net.slab.data, t->best, sizeof(float) * t->m.net.slab.numel);
	if (!has_va &&
		(st = train_decode(t, &ev->enc, t->best_pred, NULL, 0, 0, err)) != CAI_OK)
		goto done;
	if (!has_va)
		best_f1 = side_f1(ev, t->best_pred, pp, pt);
	*best_epoch_out = best_epoch;
	*epochs_run_out = epochs_run;
	*best_f1_out = best_f1;
done:
	cai_free(tmp);
	cai_free(pp);
	cai_free(pt);
	return st;
}

/* Metrics of the kept model on the evaluated side (without "seconds"). */
static cai_status
train_metrics(NerTrain *t, int best_epoch, int epochs_run, json_object **out, cai_error *err)
{
	NerSide    *ev = t->va.n > 0 ? &t->va : &t->tr;
	const char **pred = cai_malloc(sizeof(char *) * (ev->enc.ntok + 1));
	char	   *report = NULL;
	json_object *mj = NULL;
	json_object *v;
	cai_status	st;

	*out = NULL;
	if (pred == NULL)
		return NOMEM(err);
	for (size_t i = 0; i < ev->enc.ntok; i++)
		pred[i] = cai_strtab_str(&t->m.labels, t->m.tag_label[t->best_pred[i]]);
	st = cai_conll_eval(ev->enc.soff, ev->enc.n, ev->tag, pred, &report, err);
	cai_free(pred);
	if (st != CAI_OK)
		return st;
	mj = cai_json_parse_object(report);
	cai_free(report);
	if (mj == NULL || !json_object_object_get_ex(mj, "f1", &v) ||
		!cai_json_put(mj, "score", json_object_new_double(json_object_get_double(v))) ||
		!cai_json_put(mj, "evaluated_on", json_object_new_string(t->va.n > 0 ? "validation" : "train")) ||
		!cai_json_put(mj, "train_sentences", json_object_new_int64((int64_t) t->tr.n)) ||
		!cai_json_put(mj, "validation_sentences", json_object_new_int64((int64_t) t->va.n)) ||
		!cai_json_put(mj, "best_epoch", json_object_new_int(best_epoch)) ||
		!cai_json_put(mj, "epochs_run", json_object_new_int(epochs_run)) ||
		!cai_json_put(mj, "tag_scheme", json_object_new_string(cai_chunk_scheme_name(t->scheme))) ||
		!cai_json_put(mj, "words", json_object_new_int(t->m.words.n)) ||
		!cai_json_put(mj, "chars", json_object_new_int(t->m.chars.n)))
	{
		json_object_put(mj);
		return NOMEM(err);
	}
	*out = mj;
	return CAI_OK;
}

cai_status
cai_ner_train(const cai_options *opts, const cai_ner_data *train,
			  const cai_ner_data *valid, const cai_word_vectors *vectors,
			  const char *provenance_json,
			  cai_progress_fn progress, void *progress_ctx,
			  uint8_t **model, size_t *model_len,
			  char **metrics_json, cai_error *err)
{
	cai_options *own = NULL;
	json_object *prov = NULL;
	json_object *metrics = NULL;
	char	   *meta = NULL;
	const char *arch;
	NerTrain	t;
	Ticker		tk;
	int			best_epoch = 0,
				epochs_run = 0;
	double		best_f1 = 0.0;
	int			prev_threads = cai_blas_get_threads();
	int			threads;
	cai_status	st;

	memset(&t, 0, sizeof(t));
	t.pool.n = 1;
	if (model == NULL || model_len == NULL || metrics_json == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointers are required");
	*model = NULL;
	*model_len = 0;
	*metrics_json = NULL;
	if (train == NULL || train->n == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "no training sentences");
	if ((st = check_data(train, "training", true, err)) != CAI_OK)
		return st;
	if (valid != NULL && valid->n == 0)
		valid = NULL;
	if (valid != NULL && (st = check_data(valid, "validation", true, err)) != CAI_OK)
		return st;
	if (opts == NULL)
	{
		if ((st = cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, NULL, &own, err)) != CAI_OK)
			return st;
		opts = own;
	}
	arch = cai_opt_string(opts, "architecture");
	if (arch != NULL && strcmp(arch, "bilstm_crf") != 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "unknown ner architecture \"%s\"", arch);
		goto done;
	}
	if (provenance_json != NULL && provenance_json[0] != '\0')
	{
		if ((prov = cai_json_parse_object(provenance_json)) == NULL)
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "provenance must be a JSON object");
			goto done;
		}
	}
	else if ((prov = json_object_new_object()) == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	memset(&tk, 0, sizeof(tk));
	tk.fn = progress;
	tk.ctx = progress_ctx;
	tk.start = tk.last = cai_now_seconds();
	tk.p.epochs = (int) cai_opt_int(opts, "epochs");
	threads = (int) cai_opt_int(opts, "threads");
	pool_start(&t, threads);
	/* with the pool every thread runs single-threaded BLAS */
	cai_blas_set_threads(t.pool.n > 1 ? 1 : threads);

	if ((st = train_setup(&t, opts, train, valid, vectors, err)) != CAI_OK ||
		(st = train_loop(&t, &tk, &best_epoch, &epochs_run, &best_f1, err)) != CAI_OK ||
		(st = train_metrics(&t, best_epoch, epochs_run, &metrics, err)) != CAI_OK)
		goto done;
	if (!cai_json_put(prov, "train_sentences", json_object_new_int64((int64_t) t.tr.n)) ||
		!cai_json_put(prov, "validation_sentences", json_object_new_int64((int64_t) t.va.n)) ||
		!cai_json_put(prov, "seed", json_object_new_int64((int64_t) t.seed)) ||
		!cai_json_put(prov, "library", json_object_new_string("cai_synergy " CAI_VERSION_STRING)) ||
		(meta = ner_metadata(&t.m, opts, metrics, prov)) == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	if ((st = ner_serialize(&t.m, meta, model, model_len, err)) != CAI_OK)
		goto done;
	/* wall-clock time only in the returned metrics, never in the model bytes */
	if (!cai_json_put(metrics, "seconds", json_object_new_double(cai_now_seconds() - tk.start)) ||
		(*metrics_json = json_dup(metrics)) == NULL)
	{
		cai_free(*model);
		*model = NULL;
		*model_len = 0;
		st = NOMEM(err);
		goto done;
	}
	st = CAI_OK;
done:
	pool_stop(&t.pool);
	cai_blas_set_threads(prev_threads);
	train_free(&t);
	json_object_put(metrics);
	json_object_put(prov);
	cai_free(meta);
	cai_options_free(own);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Inference                                                              */
/* ---------------------------------------------------------------------- */

/*
 * Tag n sentences (offsets (n + 1) over tokens/lens): internal tags into
 * pred and marginals into scores (may be NULL), both indexed from
 * offsets[0].  Reads the model only; all scratch is allocated here.
 */
static cai_status
ner_tag_internal(const cai_ner *m, size_t n, const int64_t *offsets,
				 const char *const *tokens, const size_t *lens,
				 int32_t *pred, float *scores, cai_error *err)
{
	NerEnc		e;
	NerWs		ws;
	LenItem    *tmp = NULL;
	int32_t    *order = NULL;
	cai_status	st;

	memset(&ws, 0, sizeof(ws));
	if (n == 0 || offsets[n] == offsets[0])
		return CAI_OK;
	if ((st = enc_build(m, n, offsets, tokens, lens, m->max_tokens, &e, err)) != CAI_OK)
		return st;
	tmp = cai_malloc(sizeof(LenItem) * (e.n + 1));
	order = cai_malloc(sizeof(int32_t) * (e.n + 1));
	if (tmp == NULL || order == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	enc_length_order(&e, tmp, order);
	if ((st = ws_for_order(&m->net.d, &e, order, &ws, false, NULL, err)) != CAI_OK)
		goto done;
	st = enc_decode(m, &e, order, &ws, pred, scores, NULL, 0, 0, err);
done:
	ws_free(&ws);
	cai_free(tmp);
	cai_free(order);
	enc_free(&e);
	return st;
}

cai_status
cai_ner_tag_batch(const cai_ner *m, const cai_ner_data *data,
				  const char **tags_out, float *scores, cai_error *err)
{
	size_t		ntok;
	int32_t    *pred;
	cai_status	st;

	if (m == NULL || data == NULL || tags_out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model, data and output are required");
	if (data->n == 0)
		return CAI_OK;
	if ((st = check_data(data, "input", false, err)) != CAI_OK)
		return st;
	ntok = (size_t) (data->offsets[data->n] - data->offsets[0]);
	pred = cai_malloc(sizeof(int32_t) * (ntok + 1));
	if (pred == NULL)
		return NOMEM(err);
	st = ner_tag_internal(m, data->n, data->offsets, data->tokens, data->token_lens, pred,
						  scores != NULL ? scores + data->offsets[0] : NULL, err);
	if (st == CAI_OK)
		for (size_t i = 0; i < ntok; i++)
			tags_out[data->offsets[0] + (int64_t) i] = cai_strtab_str(&m->labels, m->tag_label[pred[i]]);
	cai_free(pred);
	return st;
}

cai_status
cai_ner_tag(const cai_ner *m, const char *const *tokens, const size_t *lens,
			size_t n, const char **tags_out, float *scores, cai_error *err)
{
	int64_t		off[2] = {0, (int64_t) n};
	cai_ner_data d;

	if (n == 0)
		return CAI_OK;
	if (tokens == NULL || lens == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "tokens and lengths are required");
	d.n = 1;
	d.offsets = off;
	d.tokens = tokens;
	d.token_lens = lens;
	d.tags = NULL;
	return cai_ner_tag_batch(m, &d, tags_out, scores, err);
}

/* True for a token after which a sentence ends (. ! ? and CJK forms). */
static bool
sentence_end(const char *s, size_t len)
{
	return (len == 1 && (s[0] == '.' || s[0] == '!' || s[0] == '?')) ||
		(len == 3 && (memcmp(s, "\xe3\x80\x82", 3) == 0 ||	/* U+3002 */
					  memcmp(s, "\xef\xbc\x81", 3) == 0 ||	/* U+FF01 */
					  memcmp(s, "\xef\xbc\x9f", 3) == 0));	/* U+FF1F */
}

/* Tag tokens toks[t0..t1) of text as sentences (offsets sent (ns + 1)), append entities. */
static cai_status
entities_group(const cai_ner *m, const char *text, const cai_token *toks, const int64_t *sent, size_t ns,
			   const char **ptr, size_t *lens, int32_t *pred, float *scores, cai_chunk *ch,
			   char *pf, int32_t *ty, cai_entity **out, size_t *n_out, size_t *cap, cai_error *err)
{
	int64_t		t0 = sent[0];
	int64_t		t1 = sent[ns];
	cai_status	st;

	for (int64_t i = t0; i < t1; i++)
	{
		ptr[i - t0] = text + toks[i].start;
		lens[i - t0] = (size_t) (toks[i].end - toks[i].start);
	}
	{
		/* offsets relative to ptr */
		int64_t		rel[NER_EVAL_BATCH + 1];

		for (size_t s = 0; s <= ns; s++)
			rel[s] = sent[s] - t0;
		if ((st = ner_tag_internal(m, ns, rel, ptr, lens, pred, scores, err)) != CAI_OK)
			return st;
	}
	for (size_t s = 0; s < ns; s++)
	{
		int64_t		a = sent[s] - t0;
		size_t		n = (size_t) (sent[s + 1] - sent[s]);
		size_t		k;

		for (size_t i = 0; i < n; i++)
		{
			pf[i] = tag_prefix(pred[a + (int64_t) i]);
			ty[i] = tag_type(pred[a + (int64_t) i]);
		}
		k = cai_chunks_extract(pf, ty, n, ch);
		for (size_t c = 0; c < k; c++)
		{
			cai_entity *en;
			double		sum = 0.0;

			if (*n_out == *cap)
			{
				size_t		nc = *cap < 16 ? 16 : *cap * 2;
				cai_entity *p = cai_realloc(*out, sizeof(cai_entity) * *cap, sizeof(cai_entity) * nc);

				if (p == NULL)
					return NOMEM(err);
				*out = p;
				*cap = nc;
			}
			en = &(*out)[(*n_out)++];
			en->start = toks[t0 + a + ch[c].start].start;
			en->end = toks[t0 + a + ch[c].end - 1].end;
			en->cstart = toks[t0 + a + ch[c].start].cstart;
			en->cend = toks[t0 + a + ch[c].end - 1].cend;
			en->type = ch[c].type;
			for (int32_t i = ch[c].start; i < ch[c].end; i++)
				sum += scores[a + i];
			en->score = (float) (sum / (double) (ch[c].end - ch[c].start));
			if (!(en->score > 0.0f))
				en->score = FLT_MIN;
			if (en->score > 1.0f)
				en->score = 1.0f;
		}
	}
	return CAI_OK;
}

cai_status
cai_ner_entities(const cai_ner *m, const char *text, size_t len, size_t max_tokens,
				 cai_entity **out, size_t *n_out, cai_error *err)
{
	cai_token  *toks = NULL;
	size_t		ntok = 0;
	size_t		cap = 0;
	size_t		gcap = (size_t) NER_EVAL_BATCH * NER_SENT_BREAK;
	const char **ptr = NULL;
	size_t	   *lens = NULL;
	int32_t    *pred = NULL;
	float	   *scores = NULL;
	cai_chunk  *ch = NULL;
	char	   *pf = NULL;
	int32_t    *ty = NULL;
	int64_t		sent[NER_EVAL_BATCH + 1];
	size_t		ns = 0;
	int64_t		s0 = 0;
	cai_status	st;

	if (out == NULL || n_out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointers are required");
	*out = NULL;
	*n_out = 0;
	if (m == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model is required");
	if (len == 0)
		return CAI_OK;
	if ((st = cai_tokenize(text, len, max_tokens, &toks, &ntok, err)) != CAI_OK)
		return st;
	if (ntok == 0)
		goto done;
	ptr = cai_malloc(sizeof(char *) * gcap);
	lens = cai_malloc(sizeof(size_t) * gcap);
	pred = cai_malloc(sizeof(int32_t) * gcap);
	scores = cai_malloc(sizeof(float) * gcap);
	ch = cai_malloc(sizeof(cai_chunk) * NER_SENT_BREAK);
	pf = cai_malloc(NER_SENT_BREAK);
	ty = cai_malloc(sizeof(int32_t) * NER_SENT_BREAK);
	if (ptr == NULL || lens == NULL || pred == NULL || scores == NULL || ch == NULL || pf == NULL || ty == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	sent[0] = 0;
	for (size_t i = 0; i < ntok; i++)
	{
		bool		brk = (int64_t) i + 1 - s0 >= NER_SENT_BREAK || i + 1 == ntok;

		if (!brk)
		{
			const char *s = text + toks[i].start;

			brk = sentence_end(s, (size_t) (toks[i].end - toks[i].start)) ||
				memchr(text + toks[i].end, '\n', (size_t) (toks[i + 1].start - toks[i].end)) != NULL;
		}
		if (!brk)
			continue;
		s0 = (int64_t) i + 1;
		sent[++ns] = s0;
		if (ns == NER_EVAL_BATCH || i + 1 == ntok)
		{
			if ((st = entities_group(m, text, toks, sent, ns, ptr, lens, pred, scores, ch, pf, ty,
									 out, n_out, &cap, err)) != CAI_OK)
				goto done;
			sent[0] = s0;
			ns = 0;
		}
	}
	st = CAI_OK;
done:
	if (st != CAI_OK)
	{
		cai_free(*out);
		*out = NULL;
		*n_out = 0;
	}
	else if (*n_out == 0)
	{
		cai_free(*out);
		*out = NULL;
	}
	cai_free(toks);
	cai_free(ptr);
	cai_free(lens);
	cai_free(pred);
	cai_free(scores);
	cai_free(ch);
	cai_free(pf);
	cai_free(ty);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Spans to tags                                                          */
/* ---------------------------------------------------------------------- */

typedef struct SpanItem
{
	int64_t		cstart;
	int32_t		id;
} SpanItem;

static int
cmp_span_start(const void *a, const void *b)
{
	const SpanItem *x = a;
	const SpanItem *y = b;

	if (x->cstart != y->cstart)
		return x->cstart < y->cstart ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* First token with cstart >= c (n if none). */
static size_t
token_at(const cai_token *t, size_t n, int64_t c, bool by_end)
{
	size_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if ((by_end ? t[mid].cend : t[mid].cstart) < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

cai_status
cai_ner_spans_to_tags(const char *text, size_t len,
					  const cai_span *spans, size_t n_spans,
					  cai_token **tokens, char ***tags, size_t *n_tokens,
					  cai_error *err)
{
	cai_token  *toks = NULL;
	size_t		ntok = 0;
	SpanItem   *order = NULL;
	int32_t    *tspan = NULL;	/* (ntok) span of each token or -1 */
	char	  **out = NULL;
	size_t		bytes;
	char	   *p;
	int64_t		ncp;
	cai_status	st;

	if (tokens == NULL || tags == NULL || n_tokens == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointers are required");
	*tokens = NULL;
	*tags = NULL;
	*n_tokens = 0;
	if (n_spans > 0 && spans == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "spans are required");
	if (n_spans > INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many spans");
	if (len > 0 && text == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "text is NULL");
	if ((st = cai_tokenize(text, len, 0, &toks, &ntok, err)) != CAI_OK)
		return st;
	ncp = ntok > 0 ? toks[ntok - 1].cend : 0;
	order = cai_malloc(sizeof(SpanItem) * (n_spans + 1));
	tspan = cai_malloc(sizeof(int32_t) * (ntok + 1));
	if (order == NULL || tspan == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (size_t i = 0; i < ntok; i++)
		tspan[i] = -1;
	for (size_t s = 0; s < n_spans; s++)
	{
		const cai_span *sp = &spans[s];
		size_t		ll = sp->label != NULL ? strnlen(sp->label, CAI_TAG_TYPE_MAX + 1) : 0;

		if (ll == 0 || ll > CAI_TAG_TYPE_MAX)
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "span %zu has an empty or too long label (at most %d bytes)",
							   s, CAI_TAG_TYPE_MAX);
			goto done;
		}
		if (sp->cstart < 0 || sp->cend <= sp->cstart)
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "span %zu (%" PRId64 ", %" PRId64 ") is empty or negative",
							   s, sp->cstart, sp->cend);
			goto done;
		}
		order[s].cstart = sp->cstart;
		order[s].id = (int32_t) s;
	}
	qsort(order, n_spans, sizeof(SpanItem), cmp_span_start);
	for (size_t k = 0; k < n_spans; k++)
	{
		const cai_span *sp = &spans[order[k].id];
		size_t		a = token_at(toks, ntok, sp->cstart, false);
		size_t		b = token_at(toks, ntok, sp->cend, true);

		if (sp->cend > ncp || a >= ntok || toks[a].cstart != sp->cstart ||
			b >= ntok || toks[b].cend != sp->cend)
		{
			st = cai_error_set(err, CAI_ERR_INVALID,
							   "span %d (%" PRId64 ", %" PRId64 ", \"%.64s\") does not align with token boundaries",
							   order[k].id, sp->cstart, sp->cend, sp->label);
			goto done;
		}
		if (k > 0 && sp->cstart < spans[order[k - 1].id].cend)
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "span %d overlaps span %d", order[k].id, order[k - 1].id);
			goto done;
		}
		for (size_t i = a; i <= b; i++)
			tspan[i] = order[k].id;
	}
	/* one block: ntok pointers, then the tag strings */
	bytes = sizeof(char *) * (ntok + 1);
	for (size_t i = 0; i < ntok; i++)
		bytes += tspan[i] < 0 ? 2 : strlen(spans[tspan[i]].label) + 3;
	out = cai_malloc(bytes);
	if (out == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	p = (char *) (out + ntok + 1);
	for (size_t i = 0; i < ntok; i++)
	{
		out[i] = p;
		if (tspan[i] < 0)
			p += 1 + sprintf(p, "O");
		else
			p += 1 + sprintf(p, "%c-%s", (i == 0 || tspan[i - 1] != tspan[i]) ? 'B' : 'I',
							 spans[tspan[i]].label);
	}
	out[ntok] = NULL;
	*tokens = toks;
	*tags = out;
	*n_tokens = ntok;
	toks = NULL;
	st = CAI_OK;
done:
	cai_free(toks);
	cai_free(order);
	cai_free(tspan);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Memory estimate and gradient self-check                                */
/* ---------------------------------------------------------------------- */

size_t
cai_ner_train_memory(const cai_options *opts, const cai_ner_data *train)
{
	cai_options *own = NULL;
	NerDims		d;
	NerNet		net;
	NerWs		ws;
	Counter		wc,
				cc;
	cai_strtab	tt;
	NerSide		side;
	int32_t    *sel = NULL;
	size_t		total = 0;
	size_t		slab = 0,
				wsb = 0;
	size_t		ntok,
				nchars = 0;
	int			B,
				maxtok,
				threads;
	LenItem    *it = NULL;

	memset(&wc, 0, sizeof(wc));
	memset(&cc, 0, sizeof(cc));
	memset(&tt, 0, sizeof(tt));
	memset(&side, 0, sizeof(side));
	memset(&net, 0, sizeof(net));
	if (train == NULL || train->n == 0 || check_data(train, "training", true, NULL) != CAI_OK)
		return 0;
	if (opts == NULL)
	{
		if (cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, NULL, &own, NULL) != CAI_OK)
			return 0;
		opts = own;
	}
	if (dims_from_options(opts, &d, NULL) != CAI_OK)
		goto done;
	B = (int) cai_opt_int(opts, "batch_size");
	maxtok = (int) cai_opt_int(opts, "max_tokens");
	threads = (int) cai_opt_int(opts, "threads");
	if (threads > 1)
		B = (B + threads - 1) / threads;	/* each thread's workspace holds its shard */
	sel = cai_malloc(sizeof(int32_t) * (train->n + 1));
	if (sel == NULL)
		goto done;
	for (size_t i = 0; i < train->n; i++)
		sel[i] = (int32_t) i;
	if (side_build(&side, train, sel, train->n, NULL) != CAI_OK ||
		count_vocab(&side, &wc, &cc, NULL) != CAI_OK ||
		cai_strtab_init(&tt, 16, NULL) != CAI_OK)
		goto done;
	ntok = (size_t) side.off[side.n];
	for (size_t i = 0; i < ntok; i++)
	{
		char		pfx;
		const char *ty;
		size_t		tl;
		int32_t		id;

		nchars += side.len[i];
		if (cai_tag_parse(side.tag[i], &pfx, &ty, &tl) && pfx != 'O' && tt.n < NER_MAX_TYPES)
			(void) cai_strtab_intern(&tt, ty, tl, &id, NULL, NULL);
	}
	d.Vw = wc.tab.n + 1;
	d.Vc = cc.tab.n + 1;
	d.n_types = tt.n > 0 ? tt.n : 1;
	d.K = 1 + 4 * d.n_types;
	if (net_declare(&net, &d, NULL) != CAI_OK || cai_slab_bytes(&net.slab, true, 2, &slab, NULL) != CAI_OK)
		goto done;
	/* workspace: the B longest sentences */
	it = cai_malloc(sizeof(LenItem) * (side.n + 1));
	if (it == NULL)
		goto done;
	{
		size_t		maxN = 0,
					maxNc = 0;
		int			maxT = 1;

		for (int pass = 0; pass < 2; pass++)
		{
			size_t		sum = 0;

			for (size_t s = 0; s < side.n; s++)
			{
				int64_t		len = side.off[s + 1] - side.off[s];

				if (len > maxtok)
					len = maxtok;
				it[s].len = (int32_t) (pass == 0 ? len : len * NER_WORD_CHARS);
				if (pass == 1)
				{
					int64_t		c = 0;

					for (int64_t j = side.off[s]; j < side.off[s] + len; j++)
						c += (int64_t) (side.len[j] < NER_WORD_CHARS ? (side.len[j] > 0 ? side.len[j] : 1) : NER_WORD_CHARS);
					it[s].len = (int32_t) c;
				}
				it[s].pos = (int32_t) s;
			}
			qsort(it, side.n, sizeof(LenItem), cmp_len_desc);
			for (size_t s = 0; s < side.n && s < (size_t) B; s++)
				sum += (size_t) it[s].len;
			if (pass == 0)
			{
				maxT = side.n > 0 ? it[0].len : 1;
				maxN = sum;
			}
			else
				maxNc = sum;
		}
		if (ws_init(&ws, &d, B, maxT, maxN, maxNc, true, true, &wsb, NULL) != CAI_OK)
			goto done;
	}
	/* threads: a workspace each, and gradients and a word row set for all but the first */
	if (threads > 1)
	{
		size_t		rsb = 0,
					extra;

		if (!cai_rowset_bytes(d.Vw, &rsb) ||
			!cai_size_mul(wsb, (size_t) threads, &wsb) ||
			!cai_size_mul(net.slab.numel, sizeof(float), &extra) ||
			!cai_size_add(extra, rsb, &extra) ||
			!cai_size_mul(extra, (size_t) threads - 1, &extra) ||
			!cai_size_add(wsb, extra, &wsb))
			goto done;
	}
	/* parameters, gradients, Adam, the best copy, the workspace, encoded data */
	total = slab + sizeof(float) * net.slab.numel + wsb +
		ntok * (sizeof(int32_t) * 4 + sizeof(int64_t) * 2 + sizeof(char *) * 2 + sizeof(size_t) + 2) +
		nchars * sizeof(int32_t) + cai_strtab_memory(&wc.tab) * 2 + cai_strtab_memory(&cc.tab) * 2;
done:
	cai_free(it);
	cai_free(sel);
	side_free(&side);
	counter_free(&wc);
	counter_free(&cc);
	cai_strtab_free(&tt);
	cai_slab_free(&net.slab);
	cai_options_free(own);
	return total;
}

/* CRF loss (summed NLL) of the batch in w, no gradient. */
static cai_status
net_loss(const cai_ner *m, NerWs *w, double *loss, cai_error *err)
{
	cai_crf_params crf;

	net_crf_view(&m->net, NULL, &crf);
	return cai_crf_nll_batch(&crf, m->net.d.K, w->emis, w->tags, w->len, w->B, w->T, &m->mask,
							 1.0f / (float) w->B, loss, NULL, NULL, w->crf, err);
}

cai_status
cai_ner_gradcheck(const cai_options *opts, const cai_ner_data *train, int samples,
				  double *max_err, cai_error *err)
{
	NerTrain	t;
	NerTrainCtx tc;
	NerGrad		g;
	cai_rng		rng;
	int32_t    *ids = NULL;
	float	   *grad = NULL;
	int			B;
	double		loss;
	double		worst = 0.0;
	const float eps = 3e-3f;
	cai_status	st;

	memset(&t, 0, sizeof(t));
	t.pool.n = 1;
	*max_err = 0.0;
	if (opts == NULL || train == NULL || train->n == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "options and data are required");
	if ((st = check_data(train, "training", true, err)) != CAI_OK ||
		(st = train_setup(&t, opts, train, train, NULL, err)) != CAI_OK)
		goto done;
	B = (int) (t.tr.enc.n < (size_t) t.batch ? t.tr.enc.n : (size_t) t.batch);
	ids = cai_malloc(sizeof(int32_t) * (size_t) B);
	grad = cai_malloc(sizeof(float) * t.m.net.slab.numel);
	if (ids == NULL || grad == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (int b = 0; b < B; b++)
		ids[b] = b;
	memset(&tc, 0, sizeof(tc));
	cai_rng_seed(&rng, 7);
	tc.rng = &rng;
	/* the analytic gradient, made dense */
	memset(t.m.net.slab.grad, 0, sizeof(float) * t.m.net.slab.numel);
	cai_slab_zero_grad(&t.m.net.slab);
	g = net_slab_grad(&t.m.net, B);
	if ((st = net_forward(&t.m, &t.tr.enc, ids, B, &t.ws, &tc, err)) != CAI_OK ||
		(st = net_backward(&t.m, &t.ws, &tc, &g, &loss, err)) != CAI_OK)
		goto done;
	memcpy(grad, t.m.net.slab.grad, sizeof(float) * t.m.net.slab.numel);
	for (int p = 0; p < P_COUNT; p++)
	{
		const cai_param *pp = &t.m.net.slab.params[t.m.net.idx[p]];
		float	   *x = PD(&t.m.net, p);
		const float *g = grad + pp->offset;
		size_t		nz = 0;

		for (size_t i = 0; i < pp->numel; i++)
			nz += g[i] != 0.0f;
		for (int k = 0; k < samples; k++)
		{
			size_t		i = cai_rng_below(&rng, (uint32_t) pp->numel);
			double		lp,
						lm,
						num,
						e;
			float		old;

			/* prefer entries that have a gradient */
			if (nz > 0)
				for (int tries = 0; tries < 1000 && g[i] == 0.0f; tries++)
					i = cai_rng_below(&rng, (uint32_t) pp->numel);
			old = x[i];
			x[i] = old + eps;
			if ((st = net_forward(&t.m, &t.tr.enc, ids, B, &t.ws, &tc, err)) != CAI_OK ||
				(st = net_loss(&t.m, &t.ws, &lp, err)) != CAI_OK)
				goto done;
			x[i] = old - eps;
			if ((st = net_forward(&t.m, &t.tr.enc, ids, B, &t.ws, &tc, err)) != CAI_OK ||
				(st = net_loss(&t.m, &t.ws, &lm, err)) != CAI_OK)
				goto done;
			x[i] = old;
			num = (lp - lm) / (2.0 * eps) / (double) B;	/* the gradient is of the mean */
			e = fabs(num - g[i]) / fmax(fabs(num) + fabs(g[i]), 1e-2);
			if (e > worst)
				worst = e;
		}
	}
	*max_err = worst;
	st = CAI_OK;
done:
	cai_free(ids);
	cai_free(grad);
	train_free(&t);
	return st;
}
