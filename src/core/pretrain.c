/*
 * pretrain.c: masked-language-model pretraining of a BERT encoder on the
 * caller's texts (see include/cai/pretrain.h).
 *
 * Phases: options and the memory check; the held-out split and the
 * WordPiece vocabulary (from the training texts); tokenizing and packing;
 * the training loop (cai_trainer: epochs, progress, cancel, max_seconds)
 * whose steps shard each batch over the pool; the encoder model bytes.
 */
#include "cai/pretrain.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cai/encoder.h"
#include "cai/encoder_model.h"
#include "cai/ops.h"
#include "cai/optim.h"
#include "cai/wordpiece.h"
#include "blas.h"
#include "encoder_ops.h"
#include "modelutil.h"
#include "pool.h"
#include "pretrain_internal.h"
#include "trainer.h"

#define NOMEM(err) cai_error_set((err), CAI_ERR_NOMEM, "out of memory in pretraining")
#define PT_CURVE_POINTS 20
#define PT_CLIP 1.0f

const cai_opt_def cai_pretrain_option_defs[] = {
	{"vocab_size", CAI_OPT_INT, "8000", 64, 1000000, NULL,
	"WordPiece vocabulary learnt from the texts: at most this many tokens, the special tokens included"},
	{"min_frequency", CAI_OPT_INT, "2", 1, 1000000000, NULL,
	"least count of a pair of pieces merged into a vocabulary token"},
	{"lower_case", CAI_OPT_BOOL, "true", 0, 0, NULL,
	"an uncased vocabulary: lower-case and strip accents (as bert-base-uncased)"},
	{"layers", CAI_OPT_INT, "4", 1, 24, NULL, "encoder layers"},
	{"hidden", CAI_OPT_INT, "256", 8, 1024, NULL, "hidden size (a multiple of heads)"},
	{"heads", CAI_OPT_INT, "4", 1, 16, NULL, "attention heads"},
	{"intermediate", CAI_OPT_INT, "1024", 8, 4096, NULL, "feed-forward size"},
	{"max_length", CAI_OPT_INT, "128", 8, 512, NULL,
	"pieces a packed sequence holds ([CLS] and [SEP] included), the encoder's max_position_embeddings"},
	{"batch_size", CAI_OPT_INT, "32", 1, 4096, NULL, "sequences per optimizer step"},
	{"learning_rate", CAI_OPT_FLOAT, "0.0005", 1e-7, 1.0, NULL,
	"peak AdamW learning rate, after warm-up; it decays linearly to 0"},
	{"warmup", CAI_OPT_FLOAT, "0.06", 0.0, 0.5, NULL, "fraction of training spent raising the learning rate"},
	{"weight_decay", CAI_OPT_FLOAT, "0.01", 0.0, 1.0, NULL,
	"AdamW decoupled weight decay (not on biases and LayerNorm)"},
	{"dropout", CAI_OPT_FLOAT, "0.1", 0.0, 0.9, NULL, "hidden and attention dropout"},
	{"mask_fraction", CAI_OPT_FLOAT, "0.15", 0.01, 0.5, NULL, "fraction of each sequence's pieces masked (whole words)"},
	{"epochs", CAI_OPT_INT, "10", 1, 100000, NULL, "passes over the training texts"},
	{"max_seconds", CAI_OPT_FLOAT, "0", 0.0, 1e7, NULL,
	"stop after this many seconds (vocabulary included) and keep the last state (0 = no limit)"},
	{"seed", CAI_OPT_INT, "42", 0, 2147483647.0, NULL,
	"random seed: without max_seconds the same texts, options, seed and threads give the same bytes"},
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL, "training threads (each batch split into this many shards)"},
	{"validation_fraction", CAI_OPT_FLOAT, "0.02", 0.0, 0.5, NULL,
	"fraction of the texts held out to measure masked-token accuracy"},
	{"memory_limit_mb", CAI_OPT_INT, "0", 0, 16777216.0, NULL,
	"refuse pretraining that would allocate more than this many MB (0 = no limit; the SQL layer caps it)"},
};
const int	cai_pretrain_n_option_defs = sizeof(cai_pretrain_option_defs) / sizeof(cai_pretrain_option_defs[0]);

typedef struct PtParams
{
	int			vocab_size;
	int			min_frequency;
	bool		lower_case;
	int			layers;
	int			hidden;
	int			heads;
	int			intermediate;
	int			T;				/* max_length */
	int			batch;
	float		lr;
	float		warmup;
	float		wd;
	float		dropout;
	float		mask_fraction;
	int			epochs;
	double		max_seconds;
	uint64_t	seed;
	int			threads;
	double		val_fraction;
	int64_t		memory_limit_mb;
} PtParams;

static cai_status
pt_params(const cai_options *o, PtParams *p, cai_error *err)
{
	if (o == NULL || o->defs != cai_pretrain_option_defs)
		return cai_error_set(err, CAI_ERR_INVALID, "pretraining options were not parsed against its table");
	p->vocab_size = (int) cai_opt_int(o, "vocab_size");
	p->min_frequency = (int) cai_opt_int(o, "min_frequency");
	p->lower_case = cai_opt_bool(o, "lower_case");
	p->layers = (int) cai_opt_int(o, "layers");
	p->hidden = (int) cai_opt_int(o, "hidden");
	p->heads = (int) cai_opt_int(o, "heads");
	p->intermediate = (int) cai_opt_int(o, "intermediate");
	p->T = (int) cai_opt_int(o, "max_length");
	p->batch = (int) cai_opt_int(o, "batch_size");
	p->lr = (float) cai_opt_float(o, "learning_rate");
	p->warmup = (float) cai_opt_float(o, "warmup");
	p->wd = (float) cai_opt_float(o, "weight_decay");
	p->dropout = (float) cai_opt_float(o, "dropout");
	p->mask_fraction = (float) cai_opt_float(o, "mask_fraction");
	p->epochs = (int) cai_opt_int(o, "epochs");
	p->max_seconds = cai_opt_float(o, "max_seconds");
	p->seed = (uint64_t) cai_opt_int(o, "seed");
	p->threads = (int) cai_opt_int(o, "threads");
	p->val_fraction = cai_opt_float(o, "validation_fraction");
	p->memory_limit_mb = cai_opt_int(o, "memory_limit_mb");
	if (p->hidden % p->heads != 0)
		return cai_error_set(err, CAI_ERR_INVALID, "option \"heads\" (%d) must divide \"hidden\" (%d)",
							 p->heads, p->hidden);
	return CAI_OK;
}

/* The most masked pieces of one sequence. */
static int
pt_max_pred(const PtParams *p)
{
	return (int) ceil(p->mask_fraction * p->T) + 1;
}

/* Sequences of a shard: the batch split in threads parts. */
static int
pt_shard_rows(int batch, int shards)
{
	return (batch + shards - 1) / shards;
}

static void
pt_config(const PtParams *p, int32_t V, cai_encoder_config *c)
{
	memset(c, 0, sizeof(*c));
	c->family = CAI_ENC_BERT;
	c->vocab_size = V;
	c->hidden_size = p->hidden;
	c->num_hidden_layers = p->layers;
	c->num_attention_heads = p->heads;
	c->intermediate_size = p->intermediate;
	c->max_position_embeddings = p->T;
	c->type_vocab_size = 2;
	c->layer_norm_eps = 1e-12f;
	c->hidden_dropout_prob = p->dropout;
	c->attention_probs_dropout_prob = p->dropout;
}

/* ---------------------------------------------------------------------- */
/* Masking and the MLM head                                               */
/* ---------------------------------------------------------------------- */

int
cai_pt_mask(const int32_t *ids, const uint8_t *kind, int len, float frac, int max_pred, int32_t first_id,
			int32_t V, int32_t mask_id, cai_rng *rng, int32_t *inp, int32_t *pos, int32_t *tgt, int32_t *scratch)
{
	int32_t    *words = scratch;	/* start position of each word */
	int32_t    *take = scratch + len;	/* 1 at the masked positions */
	int			n_words = 0,
				real = 0,
				budget,
				covered = 0,
				n = 0;

	for (int t = 0; t < len; t++)
	{
		inp[t] = ids[t];
		take[t] = 0;
		if (kind[t] != CAI_PT_SPECIAL)
			real++;
		if (kind[t] == CAI_PT_START)
			words[n_words++] = t;
	}
	if (n_words == 0)
		return 0;
	budget = (int) lrintf(frac * (float) real);
	if (budget < 1)
		budget = 1;
	if (budget > max_pred)
		budget = max_pred;
	cai_rng_shuffle(rng, words, (size_t) n_words);
	for (int w = 0; w < n_words && covered < budget; w++)
	{
		int			s = words[w],
					e = s + 1;

		while (e < len && kind[e] == CAI_PT_CONT)
			e++;
		if (covered + (e - s) > budget)
			continue;
		for (int t = s; t < e; t++)
			take[t] = 1;
		covered += e - s;
	}
	for (int t = 0; t < len; t++)
	{
		float		r;

		if (!take[t])
			continue;
		r = cai_rng_uniform(rng);
		if (r < 0.8f)
			inp[t] = mask_id;
		else if (r < 0.9f)
			inp[t] = first_id + (int32_t) cai_rng_below(rng, (uint32_t) (V - first_id));
		pos[n] = t;
		tgt[n] = ids[t];
		n++;
	}
	return n;
}

size_t
cai_mlm_head_size(int H, int V)
{
	return (size_t) H * H + 3 * (size_t) H + (size_t) V;
}

void
cai_mlm_head_views(float *slab, int H, int V, cai_mlm_head *h)
{
	h->H = H;
	h->V = V;
	h->w = slab;
	h->b = h->w + (size_t) H * H;
	h->ln_g = h->b + H;
	h->ln_b = h->ln_g + H;
	h->dec_b = h->ln_b + H;
}

size_t
cai_mlm_acts_floats(int P, int H, int V)
{
	return (size_t) P * (6 * (size_t) H + 2 + (size_t) V);
}

void
cai_mlm_acts_views(float *block, int P, int H, int V, cai_mlm_acts *a)
{
	size_t		ph = (size_t) P * H;

	a->h1 = block;
	a->ga = a->h1 + ph;
	a->hn = a->ga + ph;
	a->dn = a->hn + ph;
	a->dga = a->dn + ph;
	a->dh1 = a->dga + ph;
	a->mean = a->dh1 + ph;
	a->rstd = a->mean + P;
	a->logits = a->rstd + P;
}

cai_status
cai_mlm_forward(const cai_mlm_head *h, const float *word, const float *x, const int32_t *tgt, int P,
				float eps, cai_mlm_acts *a, double *loss_sum, int *correct, cai_error *err)
{
	const int	H = h->H,
				V = h->V;
	cai_status	st;

	*loss_sum = 0.0;
	*correct = 0;
	if (P <= 0)
		return CAI_OK;
	cai_linear_forward(a->h1, x, h->w, h->b, P, H, H);
	cai_enc_gelu_forward(a->ga, a->h1, (size_t) P * H);
	cai_enc_layernorm_forward(a->hn, a->mean, a->rstd, a->ga, h->ln_g, h->ln_b, P, H, eps);
	cai_linear_forward(a->logits, a->hn, word, h->dec_b, P, H, V);
	for (int r = 0; r < P; r++)
		if (cai_argmax(a->logits + (size_t) r * V, V) == tgt[r])
			(*correct)++;
	st = cai_softmax_xent_forward(a->logits, loss_sum, a->logits, tgt, P, V, 1.0f, err);
	return st;
}

void
cai_mlm_backward(const cai_mlm_head *h, const float *word, const float *x, const int32_t *tgt, int P,
				 float scale, cai_mlm_acts *a, cai_mlm_head *g, float *dword, float *dx)
{
	const int	H = h->H,
				V = h->V;
	const size_t ph = (size_t) P * H;

	if (P <= 0)
		return;
	/* dlogits = scale * (probs - onehot), in place */
	for (int r = 0; r < P; r++)
	{
		float	   *row = a->logits + (size_t) r * V;

		for (int v = 0; v < V; v++)
			row[v] *= scale;
		row[tgt[r]] -= scale;
	}
	memset(a->dn, 0, ph * sizeof(float));
	memset(a->dga, 0, ph * sizeof(float));
	memset(a->dh1, 0, ph * sizeof(float));
	memset(dx, 0, ph * sizeof(float));
	cai_linear_backward(a->dn, dword, g->dec_b, a->logits, a->hn, word, P, H, V);
	cai_enc_layernorm_backward(a->dga, g->ln_g, g->ln_b, a->dn, a->ga, a->mean, a->rstd, h->ln_g, P, H);
	cai_enc_gelu_backward(a->dh1, a->dga, a->h1, ph);
	cai_linear_backward(dx, g->w, g->b, a->dh1, x, h->w, P, H, H);
}

/* ---------------------------------------------------------------------- */
/* State                                                                  */
/* ---------------------------------------------------------------------- */

/* Packed sequences: S rows of T pieces. */
typedef struct PtSeqs
{
	int			S;
	int			cap;
	int32_t    *ids;			/* (S, T) */
	uint8_t    *kind;			/* (S, T) CAI_PT_* */
	int32_t    *len;			/* (S) */
} PtSeqs;

typedef struct PtShard
{
	cai_encoder_acts *acts;
	cai_encoder_grads *g;
	float	   *hg_slab;		/* head gradients */
	cai_mlm_head hg;
	float	   *mlm_block;
	cai_mlm_acts ma;
	int32_t    *inp;			/* (Bs, T) */
	uint8_t    *mask;			/* (Bs, T) */
	int32_t    *pos;			/* (P) rows b * T + t */
	int32_t    *tgt;			/* (P) */
	float	   *xm;				/* (P, H) gathered outputs */
	float	   *dxm;			/* (P, H) */
	float	   *dout;			/* (Bs, T, H) */
	int			n_pred;
	double		loss;
	int			correct;
	cai_rng		rng;			/* dropout of this step */
} PtShard;

typedef struct PtTrain
{
	PtParams	p;
	cai_pool	pool;
	int			Bs;				/* sequences a shard */
	int			P;				/* masked rows a shard holds */
	cai_encoder_config cfg;
	cai_encoder *enc;
	cai_wordpiece_vocab *vocab;
	char	   *vocab_txt;
	size_t		vocab_len;
	int32_t		V;
	int32_t		mask_id;
	float	   *head_slab;
	cai_mlm_head head;
	size_t		n_head;
	float	   *m,
			   *v;				/* AdamW moments: encoder then head */
	PtShard    *sh;				/* (n_sh) */
	int			n_sh;
	PtSeqs		train,
				val;
	int32_t    *order;			/* (max(train.S, batch)) this epoch's order */
	int32_t    *scratch;		/* (2 T) masking */
	int32_t    *val_inp;		/* (val.S, T) held-out inputs, masked once */
	int32_t    *val_pos;		/* (val.S, max_pred) */
	int32_t    *val_tgt;
	int32_t    *val_npred;		/* (val.S) */
	cai_rng		rng;			/* masking and order */
	bool		training;		/* the current pool job trains */
	float		scale;			/* 1 / masked pieces of the batch */
	/* counters */
	int64_t		step;
	int64_t		total_steps;
	double		fraction;
	size_t		n_train_texts,
				n_val_texts;
	int64_t		train_pieces;
	int32_t		unigram_id;		/* the most frequent training piece */
	double		curve[PT_CURVE_POINTS];
	int			n_curve;
	double		curve_loss;
	int64_t		curve_steps;
	double		last_loss;
	double		val_accuracy,
				val_loss,
				unigram_accuracy;
	double		train_seconds;
	int64_t		seqs_trained;
} PtTrain;

static void
pt_seqs_free(PtSeqs *s)
{
	cai_free(s->ids);
	cai_free(s->kind);
	cai_free(s->len);
	memset(s, 0, sizeof(*s));
}

static void
pt_free(PtTrain *t)
{
	cai_pool_stop(&t->pool);
	if (t->sh != NULL)
	{
		for (int s = 0; s < t->n_sh; s++)
		{
			PtShard    *h = &t->sh[s];

			cai_encoder_acts_free(h->acts);
			cai_encoder_grads_free(h->g);
			cai_free(h->hg_slab);
			cai_free(h->mlm_block);
			cai_free(h->inp);
			cai_free(h->mask);
			cai_free(h->pos);
			cai_free(h->tgt);
			cai_free(h->xm);
			cai_free(h->dxm);
			cai_free(h->dout);
		}
		cai_free(t->sh);
	}
	cai_encoder_free(t->enc);
	cai_wordpiece_vocab_free(t->vocab);
	cai_free(t->vocab_txt);
	cai_free(t->head_slab);
	cai_free(t->m);
	cai_free(t->v);
	pt_seqs_free(&t->train);
	pt_seqs_free(&t->val);
	cai_free(t->order);
	cai_free(t->scratch);
	cai_free(t->val_inp);
	cai_free(t->val_pos);
	cai_free(t->val_tgt);
	cai_free(t->val_npred);
}

/* ---------------------------------------------------------------------- */
/* Memory                                                                 */
/* ---------------------------------------------------------------------- */

static size_t
pt_memory(const PtParams *p, double text_bytes, size_t n)
{
	cai_encoder_config c;
	size_t		params = 0,
				acts = 0;
	int			shards = p->threads < p->batch ? p->threads : p->batch;
	int			Bs = pt_shard_rows(p->batch, shards);
	double		P = (double) Bs * pt_max_pred(p);
	double		H = p->hidden;
	double		n_params,
				total;

	pt_config(p, p->vocab_size, &c);
	if (!cai_encoder_param_bytes(&c, true, &params) ||
		!cai_encoder_act_bytes(&c, Bs, p->T, true, &acts))
		return SIZE_MAX / 2;
	n_params = (double) params / 8.0;	/* params + one gradient slab, 4 bytes each */
	total = (double) params + 2.0 * 4.0 * n_params	/* AdamW moments */
		+ (double) (shards - 1) * 4.0 * n_params	/* the other shards' gradients */
		+ (double) shards * (double) acts
		+ (double) shards * 4.0 * (P * (6 * H + 2 + p->vocab_size) + 2 * P * H + (double) Bs * p->T * H +
								   4.0 * cai_mlm_head_size(p->hidden, p->vocab_size))
		/* pieces: at most one a byte plus [CLS]/[SEP] a text, 5 bytes each, packed rows padded */
		+ 2.0 * 5.0 * (text_bytes + 2.0 * (double) n + p->T)
		/* the vocabulary trainer: words and their symbols, a few dozen bytes a text byte */
		+ 48.0 * text_bytes + 64.0 * (double) p->vocab_size + (1 << 20);
	if (total >= (double) SIZE_MAX / 2)
		return SIZE_MAX / 2;
	return (size_t) total;
}

size_t
cai_pretrain_memory(const cai_options *opts, const char *const *texts, const size_t *lens, size_t n)
{
	PtParams	p;
	double		B = 0;

	if (pt_params(opts, &p, NULL) != CAI_OK || (n > 0 && lens == NULL))
		return 0;
	for (size_t i = 0; i < n; i++)
		B += texts != NULL && texts[i] != NULL ? (double) lens[i] : 0;
	return pt_memory(&p, B, n);
}

/* ---------------------------------------------------------------------- */
/* Data                                                                   */
/* ---------------------------------------------------------------------- */

typedef struct PtVocabTick
{
	cai_trainer *tr;
} PtVocabTick;

static bool
pt_vocab_progress(void *ctx, const cai_progress *p)
{
	PtVocabTick *vt = ctx;

	return cai_trainer_tick(vt->tr, 0.0);	/* progress is training's (the trainer's epochs) */
}

static cai_status
pt_seqs_grow(PtSeqs *s, int T, cai_error *err)
{
	int			cap = s->cap > 0 ? s->cap * 2 : 64;
	int32_t    *ids,
			   *len;
	uint8_t    *kind;

	ids = cai_malloc(sizeof(int32_t) * (size_t) cap * T);
	kind = cai_malloc((size_t) cap * T);
	len = cai_malloc(sizeof(int32_t) * (size_t) cap);
	if (ids == NULL || kind == NULL || len == NULL)
	{
		cai_free(ids);
		cai_free(kind);
		cai_free(len);
		return NOMEM(err);
	}
	if (s->S > 0)
	{
		memcpy(ids, s->ids, sizeof(int32_t) * (size_t) s->S * T);
		memcpy(kind, s->kind, (size_t) s->S * T);
		memcpy(len, s->len, sizeof(int32_t) * (size_t) s->S);
	}
	cai_free(s->ids);
	cai_free(s->kind);
	cai_free(s->len);
	s->ids = ids;
	s->kind = kind;
	s->len = len;
	s->cap = cap;
	return CAI_OK;
}

/* Start a new packed sequence: "[CLS]". */
static cai_status
pt_seq_open(PtTrain *t, PtSeqs *s, cai_error *err)
{
	const int	T = t->p.T;
	cai_status	st;

	if (s->S == s->cap && (st = pt_seqs_grow(s, T, err)) != CAI_OK)
		return st;
	for (int i = 0; i < T; i++)
	{
		s->ids[(size_t) s->S * T + i] = cai_wordpiece_special_id(t->vocab, CAI_WP_PAD);
		s->kind[(size_t) s->S * T + i] = CAI_PT_SPECIAL;
	}
	s->ids[(size_t) s->S * T] = cai_wordpiece_special_id(t->vocab, CAI_WP_CLS);
	s->len[s->S] = 1;
	s->S++;
	return CAI_OK;
}

/* Tokenize texts[idx[0..k)] and pack them into s. */
static cai_status
pt_pack(PtTrain *t, PtSeqs *s, const char *const *texts, const size_t *lens, const int32_t *idx, size_t k,
		cai_trainer *tr, cai_error *err)
{
	const int	T = t->p.T;
	const int32_t sep = cai_wordpiece_special_id(t->vocab, CAI_WP_SEP);
	cai_wordpiece_options wo;
	cai_status	st = CAI_OK;

	cai_wordpiece_options_default(&wo);
	wo.lower_case = t->p.lower_case;
	wo.special_in_text = false;
	for (size_t j = 0; j < k; j++)
	{
		const char *txt = texts[idx[j]];
		cai_wordpiece_piece *pc = NULL;
		size_t		np = 0;
		int			use;

		if (txt == NULL)
			continue;
		if ((j & 255) == 0 && (st = cai_trainer_poll(tr, 0.0, err)) != CAI_OK)
			return st;
		if ((st = cai_wordpiece_tokenize(t->vocab, &wo, txt, lens[idx[j]], 0, &pc, &np, err)) != CAI_OK)
			return st;
		use = np > (size_t) (T - 2) ? T - 2 : (int) np;
		if (use > 0 && (s->S == 0 || s->len[s->S - 1] + use + 1 > T))
			st = pt_seq_open(t, s, err);
		for (int i = 0; st == CAI_OK && i < use; i++)
		{
			size_t		o = (size_t) (s->S - 1) * T + s->len[s->S - 1];
			size_t		tl = 0;
			const char *tok = cai_wordpiece_token(t->vocab, pc[i].id, &tl);

			s->ids[o] = pc[i].id;
			s->kind[o] = (i > 0 && tok != NULL && tl > 2 && tok[0] == '#' && tok[1] == '#') ?
				CAI_PT_CONT : CAI_PT_START;
			s->len[s->S - 1]++;
		}
		if (st == CAI_OK && use > 0)
			s->ids[(size_t) (s->S - 1) * T + s->len[s->S - 1]++] = sep;
		cai_free(pc);
		if (st != CAI_OK)
			return st;
	}
	return CAI_OK;
}

/* Split, vocabulary, packing. */
static cai_status
pt_data(PtTrain *t, const char *const *texts, const size_t *lens, size_t n, cai_trainer *tr, cai_error *err)
{
	int32_t    *idx;
	size_t		n_val,
				k = 0;
	const char **tr_texts = NULL;
	size_t	   *tr_lens = NULL;
	cai_wordpiece_train_options wto;
	PtVocabTick vt = {tr};
	cai_status	st;

	if ((idx = cai_malloc(sizeof(int32_t) * (n > 0 ? n : 1))) == NULL)
		return NOMEM(err);
	for (size_t i = 0; i < n; i++)
		if (texts[i] != NULL && lens[i] > 0)
			idx[k++] = (int32_t) i;
	cai_rng_shuffle(&t->rng, idx, k);
	n_val = (size_t) floor(t->p.val_fraction * (double) k);
	if (n_val == 0 && t->p.val_fraction > 0 && k >= 10)
		n_val = 1;
	t->n_val_texts = n_val;
	t->n_train_texts = k - n_val;
	tr_texts = cai_malloc(sizeof(char *) * (k - n_val + 1));
	tr_lens = cai_malloc(sizeof(size_t) * (k - n_val + 1));
	if (tr_texts == NULL || tr_lens == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	/* the vocabulary from the training texts in their original order */
	{
		uint8_t    *in = cai_calloc(n > 0 ? n : 1, 1);
		size_t		j = 0;

		if (in == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		for (size_t i = n_val; i < k; i++)
			in[idx[i]] = 1;
		for (size_t i = 0; i < n; i++)
			if (in[i])
			{
				tr_texts[j] = texts[i];
				tr_lens[j++] = lens[i];
			}
		cai_free(in);
	}
	cai_wordpiece_train_options_default(&wto);
	wto.vocab_size = t->p.vocab_size;
	wto.min_frequency = t->p.min_frequency;
	wto.lower_case = t->p.lower_case;
	wto.progress = pt_vocab_progress;
	wto.progress_ctx = &vt;
	if ((st = cai_wordpiece_train(tr_texts, tr_lens, k - n_val, &wto, &t->vocab_txt, &t->vocab_len, err)) != CAI_OK)
		goto done;
	if ((st = cai_wordpiece_vocab_load(t->vocab_txt, t->vocab_len, CAI_WP_NEED_ALL, &t->vocab, err)) != CAI_OK)
		goto done;
	t->V = cai_wordpiece_vocab_size(t->vocab);
	t->mask_id = cai_wordpiece_special_id(t->vocab, CAI_WP_MASK);
	if ((st = pt_pack(t, &t->train, texts, lens, idx + n_val, k - n_val, tr, err)) != CAI_OK ||
		(st = pt_pack(t, &t->val, texts, lens, idx, n_val, tr, err)) != CAI_OK)
		goto done;
	if (t->train.S == 0)
		st = cai_error_set(err, CAI_ERR_INVALID, "no training text has a word to pretrain on");
done:
	cai_free(idx);
	cai_free(tr_texts);
	cai_free(tr_lens);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Buffers                                                                */
/* ---------------------------------------------------------------------- */

static cai_status
pt_setup(PtTrain *t, cai_error *err)
{
	const int	T = t->p.T,
				H = t->p.hidden;
	const int	max_pred = pt_max_pred(&t->p);
	const size_t n_enc = t->enc->n_params;
	int64_t    *counts;
	cai_status	st;

	t->n_head = cai_mlm_head_size(H, t->V);
	t->head_slab = cai_calloc(t->n_head, sizeof(float));
	t->m = cai_calloc(n_enc + t->n_head, sizeof(float));
	t->v = cai_calloc(n_enc + t->n_head, sizeof(float));
	t->sh = cai_calloc((size_t) t->pool.n, sizeof(PtShard));
	t->n_sh = t->sh != NULL ? t->pool.n : 0;
	/* also the held-out batches' rows (pt_evaluate): at least batch_size */
	t->order = cai_malloc(sizeof(int32_t) * (size_t) (t->train.S > t->p.batch ? t->train.S : t->p.batch));
	t->scratch = cai_malloc(sizeof(int32_t) * 2 * (size_t) T);
	counts = cai_calloc((size_t) t->V, sizeof(int64_t));
	if (t->head_slab == NULL || t->m == NULL || t->v == NULL || t->sh == NULL || t->order == NULL ||
		t->scratch == NULL || counts == NULL)
	{
		cai_free(counts);
		return NOMEM(err);
	}
	cai_mlm_head_views(t->head_slab, H, t->V, &t->head);
	for (int i = 0; i < H * H; i++)
		t->head.w[i] = 0.02f * cai_rng_normal(&t->rng);
	for (int i = 0; i < H; i++)
		t->head.ln_g[i] = 1.0f;
	for (int s = 0; s < t->train.S; s++)
		for (int i = 0; i < t->train.len[s]; i++)
			if (t->train.kind[(size_t) s * T + i] != CAI_PT_SPECIAL)
			{
				counts[t->train.ids[(size_t) s * T + i]]++;
				t->train_pieces++;
			}
	t->unigram_id = 0;
	for (int32_t v = 1; v < t->V; v++)
		if (counts[v] > counts[t->unigram_id])
			t->unigram_id = v;
	cai_free(counts);
	for (int s = 0; s < t->pool.n; s++)
	{
		PtShard    *h = &t->sh[s];
		const size_t bt = (size_t) t->Bs * T;

		if ((st = cai_encoder_acts_create(&t->cfg, t->Bs, T, true, &h->acts, err)) != CAI_OK ||
			(st = cai_encoder_grads_create(t->enc, &h->g, err)) != CAI_OK)
			return st;
		h->hg_slab = cai_calloc(t->n_head, sizeof(float));
		h->mlm_block = cai_calloc(cai_mlm_acts_floats(t->P, H, t->V), sizeof(float));
		h->inp = cai_calloc(bt, sizeof(int32_t));
		h->mask = cai_calloc(bt, 1);
		h->pos = cai_calloc((size_t) t->P, sizeof(int32_t));
		h->tgt = cai_calloc((size_t) t->P, sizeof(int32_t));
		h->xm = cai_calloc((size_t) t->P * H, sizeof(float));
		h->dxm = cai_calloc((size_t) t->P * H, sizeof(float));
		h->dout = cai_calloc(bt * H, sizeof(float));
		if (h->hg_slab == NULL || h->mlm_block == NULL || h->inp == NULL || h->mask == NULL || h->pos == NULL ||
			h->tgt == NULL || h->xm == NULL || h->dxm == NULL || h->dout == NULL)
			return NOMEM(err);
		cai_mlm_head_views(h->hg_slab, H, t->V, &h->hg);
		cai_mlm_acts_views(h->mlm_block, t->P, H, t->V, &h->ma);
	}
	/* the held-out sequences, masked once with their own stream */
	if (t->val.S > 0)
	{
		cai_rng		vr;

		t->val_inp = cai_malloc(sizeof(int32_t) * (size_t) t->val.S * T);
		t->val_pos = cai_malloc(sizeof(int32_t) * (size_t) t->val.S * max_pred);
		t->val_tgt = cai_malloc(sizeof(int32_t) * (size_t) t->val.S * max_pred);
		t->val_npred = cai_malloc(sizeof(int32_t) * (size_t) t->val.S);
		if (t->val_inp == NULL || t->val_pos == NULL || t->val_tgt == NULL || t->val_npred == NULL)
			return NOMEM(err);
		cai_rng_seed(&vr, t->p.seed ^ 0x5eed0fa1dull);
		for (int s = 0; s < t->val.S; s++)
			t->val_npred[s] = cai_pt_mask(t->val.ids + (size_t) s * T, t->val.kind + (size_t) s * T,
										  t->val.len[s], t->p.mask_fraction, max_pred, CAI_WP_N_SPECIAL,
										  t->V, t->mask_id, &vr, t->val_inp + (size_t) s * T,
										  t->val_pos + (size_t) s * max_pred,
										  t->val_tgt + (size_t) s * max_pred, t->scratch);
	}
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Steps                                                                  */
/* ---------------------------------------------------------------------- */

/* One shard: encoder forward, MLM head, and in training both backwards. */
static cai_status
pt_shard_job(void *ctx, int s, cai_error *err)
{
	PtTrain    *t = ctx;
	PtShard    *h = &t->sh[s];
	const int	H = t->p.hidden;
	const float *X;
	cai_status	st;

	h->loss = 0.0;
	h->correct = 0;
	if (t->training)
	{
		cai_encoder_grads_zero(h->g);
		memset(h->hg_slab, 0, t->n_head * sizeof(float));
	}
	if (h->n_pred == 0)
		return CAI_OK;
	if ((st = cai_encoder_forward(t->enc, h->acts, h->inp, NULL, h->mask, t->training, &h->rng, err)) != CAI_OK)
		return st;
	X = cai_encoder_output(h->acts);
	for (int p = 0; p < h->n_pred; p++)
		memcpy(h->xm + (size_t) p * H, X + (size_t) h->pos[p] * H, sizeof(float) * H);
	if ((st = cai_mlm_forward(&t->head, t->enc->w.word, h->xm, h->tgt, h->n_pred, t->cfg.layer_norm_eps,
							  &h->ma, &h->loss, &h->correct, err)) != CAI_OK || !t->training)
		return st;
	cai_mlm_backward(&t->head, t->enc->w.word, h->xm, h->tgt, h->n_pred, t->scale, &h->ma, &h->hg,
					 h->g->w.word, h->dxm);
	memset(h->dout, 0, sizeof(float) * (size_t) t->Bs * t->p.T * H);
	for (int p = 0; p < h->n_pred; p++)
	{
		float	   *d = h->dout + (size_t) h->pos[p] * H;
		const float *g = h->dxm + (size_t) p * H;

		for (int i = 0; i < H; i++)
			d[i] += g[i];
	}
	return cai_encoder_backward(t->enc, h->acts, h->g, h->dout, h->inp, NULL, h->mask, err);
}

/*
 * Fill the shards with sequences rows[0..nb) of seqs; masked here (train:
 * drawn from t->rng) or taken from the held-out masks (val).  Returns the
 * batch's masked pieces.
 */
static int
pt_fill(PtTrain *t, const PtSeqs *seqs, const int32_t *rows, int nb, bool val)
{
	const int	T = t->p.T;
	const int	max_pred = pt_max_pred(&t->p);
	const int32_t pad = cai_wordpiece_special_id(t->vocab, CAI_WP_PAD);
	int			total = 0;

	for (int s = 0; s < t->pool.n; s++)
	{
		PtShard    *h = &t->sh[s];

		h->n_pred = 0;
		for (int b = 0; b < t->Bs; b++)
		{
			int			r = s * t->Bs + b;
			int32_t    *inp = h->inp + (size_t) b * T;
			uint8_t    *mk = h->mask + (size_t) b * T;
			int			len,
						np;
			int32_t    *pos = h->pos + h->n_pred,
					   *tgt = h->tgt + h->n_pred;

			if (r >= nb)
			{
				for (int i = 0; i < T; i++)
				{
					inp[i] = pad;
					mk[i] = 0;
				}
				continue;
			}
			len = seqs->len[rows[r]];
			if (val)
			{
				np = t->val_npred[rows[r]];
				memcpy(inp, t->val_inp + (size_t) rows[r] * T, sizeof(int32_t) * T);
				memcpy(pos, t->val_pos + (size_t) rows[r] * max_pred, sizeof(int32_t) * np);
				memcpy(tgt, t->val_tgt + (size_t) rows[r] * max_pred, sizeof(int32_t) * np);
			}
			else
				np = cai_pt_mask(seqs->ids + (size_t) rows[r] * T, seqs->kind + (size_t) rows[r] * T, len,
								 t->p.mask_fraction, max_pred, CAI_WP_N_SPECIAL, t->V, t->mask_id, &t->rng,
								 inp, pos, tgt, t->scratch);
			for (int i = len; i < T; i++)
				inp[i] = pad;
			for (int i = 0; i < T; i++)
				mk[i] = i < len;
			for (int p = 0; p < np; p++)
				pos[p] += b * T;
			h->n_pred += np;
		}
		total += h->n_pred;
	}
	return total;
}

/* Learning rate at progress fraction f of training (after this step). */
static float
pt_lr(const PtParams *p, double f)
{
	if (p->warmup > 0 && f < p->warmup)
		return (float) (p->lr * f / p->warmup);
	return (float) fmax(0.0, p->lr * (1.0 - f) / (1.0 - p->warmup));
}

/* Add the shards' gradients into shard 0's, clip, step. */
static cai_status
pt_update(PtTrain *t, cai_trainer *tr, cai_error *err)
{
	PtShard    *h0 = &t->sh[0];
	const size_t n_enc = t->enc->n_params;
	double		sq;
	float		lr;
	double		f;

	for (int s = 1; s < t->pool.n; s++)
	{
		const float *ge = t->sh[s].g->data;
		const float *gh = t->sh[s].hg_slab;

		for (size_t i = 0; i < n_enc; i++)
			h0->g->data[i] += ge[i];
		for (size_t i = 0; i < t->n_head; i++)
			h0->hg_slab[i] += gh[i];
	}
	sq = cai_sumsq(h0->g->data, n_enc) + cai_sumsq(h0->hg_slab, t->n_head);
	if (!isfinite(sq))
		return cai_error_set(err, CAI_ERR_NUMERIC, "pretraining diverged (a gradient is not finite); lower learning_rate");
	if (sqrt(sq) > PT_CLIP)
	{
		float		c = (float) (PT_CLIP / sqrt(sq));

		cai_scale(h0->g->data, n_enc, c);
		cai_scale(h0->hg_slab, t->n_head, c);
	}
	t->step++;
	f = (double) t->step / (double) t->total_steps;
	if (t->p.max_seconds > 0)
		f = fmax(f, cai_trainer_seconds(tr) / t->p.max_seconds);
	t->fraction = fmin(f, 1.0);
	lr = pt_lr(&t->p, t->fraction);
	for (int i = 0; i < t->enc->n_tensors; i++)
	{
		const cai_encoder_tensor *te = &t->enc->tensors[i];
		/* the word table is the decoder too: decayed as a matrix */
		float		wd = te->ndim == 2 ? t->p.wd : 0.0f;

		cai_adamw_step(t->enc->params + te->offset, h0->g->data + te->offset, t->m + te->offset,
					   t->v + te->offset, te->numel, lr, 0.9f, 0.999f, 1e-6f, wd, t->step);
	}
	{
		const size_t hh = (size_t) t->p.hidden * t->p.hidden;

		cai_adamw_step(t->head_slab, h0->hg_slab, t->m + n_enc, t->v + n_enc, hh, lr, 0.9f, 0.999f, 1e-6f,
					   t->p.wd, t->step);
		cai_adamw_step(t->head_slab + hh, h0->hg_slab + hh, t->m + n_enc + hh, t->v + n_enc + hh,
					   t->n_head - hh, lr, 0.9f, 0.999f, 1e-6f, 0.0f, t->step);
	}
	return CAI_OK;
}

static cai_status
pt_begin_epoch(void *ctx, int epoch, cai_error *err)
{
	PtTrain    *t = ctx;

	for (int s = 0; s < t->train.S; s++)
		t->order[s] = s;
	cai_rng_shuffle(&t->rng, t->order, (size_t) t->train.S);
	return CAI_OK;
}

static cai_status
pt_train_epoch(void *ctx, cai_trainer *tr, int epoch, double *loss, double *rows, cai_error *err)
{
	PtTrain    *t = ctx;
	double		sum = 0.0;
	int64_t		steps = 0;
	double		start = cai_now_seconds();
	cai_status	st = CAI_OK;

	t->training = true;
	for (int b0 = 0; b0 < t->train.S; b0 += t->p.batch)
	{
		int			nb = t->train.S - b0 < t->p.batch ? t->train.S - b0 : t->p.batch;
		int			total = pt_fill(t, &t->train, t->order + b0, nb, false);
		double		bl = 0.0;

		if (total == 0)
			continue;
		t->scale = 1.0f / (float) total;
		for (int s = 0; s < t->pool.n; s++)
			cai_rng_seed(&t->sh[s].rng, t->p.seed * 1000003ull + (uint64_t) t->step * 131ull + (uint64_t) s + 1);
		if ((st = cai_pool_run(&t->pool, pt_shard_job, t, err)) != CAI_OK)
			break;
		for (int s = 0; s < t->pool.n; s++)
			bl += t->sh[s].loss;
		bl /= total;
		if ((st = pt_update(t, tr, err)) != CAI_OK)
			break;
		sum += bl;
		steps++;
		t->seqs_trained += nb;
		t->last_loss = bl;
		t->curve_loss += bl;
		t->curve_steps++;
		if (t->n_curve < PT_CURVE_POINTS && t->fraction >= (double) (t->n_curve + 1) / PT_CURVE_POINTS)
		{
			t->curve[t->n_curve++] = t->curve_loss / (double) t->curve_steps;
			t->curve_loss = 0.0;
			t->curve_steps = 0;
		}
		tr->p.loss = bl;		/* the running loss for progress reports within the epoch */
		if ((st = cai_trainer_poll(tr, t->fraction, err)) != CAI_OK)
			break;
		if (cai_trainer_out_of_time(tr))
			break;
	}
	t->train_seconds += cai_now_seconds() - start;
	*loss = steps > 0 ? sum / (double) steps : 0.0;
	*rows = (double) steps * t->p.batch;
	return st;
}

static cai_status
pt_evaluate(void *ctx, cai_trainer *tr, int epoch, double *score, double *loss, cai_error *err)
{
	PtTrain    *t = ctx;
	double		lsum = 0.0;
	int64_t		correct = 0,
				total = 0,
				uni = 0;
	const int	max_pred = pt_max_pred(&t->p);
	int32_t    *rows = t->order;	/* reused: the next epoch redraws it */
	cai_status	st = CAI_OK;

	*score = 0.0;
	*loss = NAN;
	if (t->val.S == 0)
		return CAI_OK;
	t->training = false;
	for (int b0 = 0; b0 < t->val.S; b0 += t->p.batch)
	{
		int			nb = t->val.S - b0 < t->p.batch ? t->val.S - b0 : t->p.batch;

		for (int r = 0; r < nb; r++)
			rows[r] = b0 + r;
		total += pt_fill(t, &t->val, rows, nb, true);
		if ((st = cai_pool_run(&t->pool, pt_shard_job, t, err)) != CAI_OK)
			return st;
		for (int s = 0; s < t->pool.n; s++)
		{
			lsum += t->sh[s].loss;
			correct += t->sh[s].correct;
		}
		if ((st = cai_trainer_poll(tr, t->fraction, err)) != CAI_OK)
			return st;
	}
	for (int s = 0; s < t->val.S; s++)
		for (int p = 0; p < t->val_npred[s]; p++)
			uni += t->val_tgt[(size_t) s * max_pred + p] == t->unigram_id;
	t->val_accuracy = total > 0 ? (double) correct / (double) total : 0.0;
	t->val_loss = total > 0 ? lsum / (double) total : 0.0;
	t->unigram_accuracy = total > 0 ? (double) uni / (double) total : 0.0;
	*score = t->val_accuracy;
	*loss = t->val_loss;
	return CAI_OK;
}

static void
pt_snapshot(void *ctx)
{
	/* the last state is kept */
}

/* ---------------------------------------------------------------------- */
/* Output                                                                 */
/* ---------------------------------------------------------------------- */

/* The deterministic figures (provenance and metrics alike). */
static bool
pt_put_figures(const PtTrain *t, const cai_trainer *tr, json_object *o)
{
	json_object *curve = json_object_new_array();

	if (curve == NULL)
		return false;
	for (int i = 0; i < t->n_curve; i++)
		if (json_object_array_add(curve, json_object_new_double(t->curve[i])) != 0)
		{
			json_object_put(curve);
			return false;
		}
	return cai_json_put(o, "objective", json_object_new_string("masked_lm whole_word")) &&
		cai_json_put(o, "vocab_size", json_object_new_int(t->V)) &&
		cai_json_put(o, "train_texts", json_object_new_int64((int64_t) t->n_train_texts)) &&
		cai_json_put(o, "validation_texts", json_object_new_int64((int64_t) t->n_val_texts)) &&
		cai_json_put(o, "train_sequences", json_object_new_int(t->train.S)) &&
		cai_json_put(o, "train_pieces", json_object_new_int64(t->train_pieces)) &&
		cai_json_put(o, "steps", json_object_new_int64(t->step)) &&
		cai_json_put(o, "epochs_run", json_object_new_int(tr->epochs_run)) &&
		cai_json_put(o, "loss", json_object_new_double(t->last_loss)) &&
		cai_json_put(o, "loss_curve", curve) &&
		cai_json_put(o, "mlm_accuracy", json_object_new_double(t->val_accuracy)) &&
		cai_json_put(o, "mlm_loss", json_object_new_double(t->val_loss)) &&
		cai_json_put(o, "unigram_accuracy", json_object_new_double(t->unigram_accuracy));
}

static cai_status
pt_write(PtTrain *t, const cai_options *opts, const cai_trainer *tr, uint8_t **bytes, size_t *len,
		 char **metrics_json, cai_error *err)
{
	cai_encoder_bundle b;
	json_object *prov = json_object_new_object();
	json_object *m = NULL;
	char	   *ojs = cai_options_to_json(opts);
	json_object *oj = ojs != NULL ? json_tokener_parse(ojs) : NULL;
	cai_status	st;
	const char *s;

	cai_free(ojs);
	if (!cai_all_finite(t->enc->params, t->enc->n_params))
	{
		json_object_put(prov);
		json_object_put(oj);
		return cai_error_set(err, CAI_ERR_NUMERIC, "pretraining diverged (a weight is not finite); lower learning_rate");
	}
	if (prov == NULL || oj == NULL ||
		!cai_json_put(prov, "source", json_object_new_string("cai_pretrain")) ||
		!cai_json_put(prov, "options", oj) ||
		!cai_json_put(prov, "seed", json_object_new_int64((int64_t) t->p.seed)) ||
		!cai_json_put(prov, "library", json_object_new_string("cai_synergy " CAI_VERSION_STRING)) ||
		!pt_put_figures(t, tr, prov) || (s = json_object_to_json_string_ext(prov, JSON_C_TO_STRING_PLAIN)) == NULL)
	{
		json_object_put(prov);
		return NOMEM(err);
	}
	memset(&b, 0, sizeof(b));
	b.cfg = t->cfg;
	b.enc = t->enc;
	b.vocab = t->vocab;
	cai_wordpiece_options_default(&b.wp);
	b.wp.lower_case = t->p.lower_case;
	st = cai_encoder_model_write(&b, s, bytes, len, err);
	json_object_put(prov);
	if (st != CAI_OK || metrics_json == NULL)
		return st;
	if ((m = json_object_new_object()) != NULL && pt_put_figures(t, tr, m) &&
		cai_json_put(m, "score", json_object_new_double(t->val_accuracy)) &&
		cai_json_put(m, "seconds", json_object_new_double(cai_trainer_seconds(tr))) &&
		cai_json_put(m, "train_seconds", json_object_new_double(t->train_seconds)) &&
		cai_json_put(m, "sequences_per_sec",
					 json_object_new_double(t->train_seconds > 0 ? (double) t->seqs_trained / t->train_seconds : 0)) &&
		(s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN)) != NULL)
		*metrics_json = cai_strndup(s, strlen(s));
	json_object_put(m);
	if (*metrics_json == NULL)
	{
		cai_free(*bytes);
		*bytes = NULL;
		*len = 0;
		return NOMEM(err);
	}
	return CAI_OK;
}

/* See pretrain.h. */
cai_status
cai_pretrain_run(const cai_options *opts, const char *const *texts, const size_t *lens, size_t n,
				 cai_progress_fn progress, void *progress_ctx, uint8_t **bytes, size_t *len,
				 char **metrics_json, cai_error *err)
{
	PtTrain    *t;
	cai_trainer tr;
	cai_trainer_config cfg = {0};
	cai_trainer_hooks hooks = {0};
	cai_status	st;
	size_t		need;

	if (bytes == NULL || len == NULL || (n > 0 && (texts == NULL || lens == NULL)))
		return cai_error_set(err, CAI_ERR_INVALID, "texts or output pointers are NULL");
	*bytes = NULL;
	*len = 0;
	if (metrics_json != NULL)
		*metrics_json = NULL;
	if ((t = cai_calloc(1, sizeof(PtTrain))) == NULL)
		return NOMEM(err);
	if ((st = pt_params(opts, &t->p, err)) != CAI_OK || (st = cai_blas_load(err)) != CAI_OK)
		goto done;
	need = cai_pretrain_memory(opts, texts, lens, n);
	if (t->p.memory_limit_mb > 0 && need > (size_t) t->p.memory_limit_mb * 1024 * 1024)
	{
		st = cai_error_set(err, CAI_ERR_LIMIT,
						   "pretraining would need about %zu MB, over memory_limit_mb (%lld MB); "
						   "lower hidden, layers, vocab_size, batch_size or max_length",
						   need / (1024 * 1024) + 1, (long long) t->p.memory_limit_mb);
		goto done;
	}
	cai_rng_seed(&t->rng, t->p.seed);
	cai_trainer_init(&tr, progress, progress_ctx, t->p.max_seconds);
	if ((st = pt_data(t, texts, lens, n, &tr, err)) != CAI_OK)
		goto done;

	pt_config(&t->p, t->V, &t->cfg);
	if ((st = cai_encoder_config_check(&t->cfg, err)) != CAI_OK ||
		(st = cai_encoder_create(&t->cfg, &t->enc, err)) != CAI_OK)
		goto done;
	cai_encoder_init_random(t->enc, 0.02f, &t->rng);
	cai_pool_start(&t->pool, t->p.threads < t->p.batch ? t->p.threads : t->p.batch);
	t->Bs = pt_shard_rows(t->p.batch, t->pool.n);
	t->P = t->Bs * pt_max_pred(&t->p);
	if ((st = pt_setup(t, err)) != CAI_OK)
		goto done;

	t->total_steps = (int64_t) t->p.epochs * ((t->train.S + t->p.batch - 1) / t->p.batch);
	cfg.epochs = t->p.epochs;
	cfg.has_validation = false;
	cfg.time_check_after_epoch = true;
	hooks.ctx = t;
	hooks.begin_epoch = pt_begin_epoch;
	hooks.train_epoch = pt_train_epoch;
	hooks.evaluate = pt_evaluate;
	hooks.snapshot = pt_snapshot;
	st = cai_trainer_run(&tr, &cfg, &hooks, err);
	cai_pool_stop(&t->pool);
	if (st != CAI_OK)
		goto done;
	if (t->curve_steps > 0 && t->n_curve < PT_CURVE_POINTS)
		t->curve[t->n_curve++] = t->curve_loss / (double) t->curve_steps;
	st = pt_write(t, opts, &tr, bytes, len, metrics_json, err);
done:
	pt_free(t);
	cai_free(t);
	return st;
}
