/*
 * transformer_train.c: fine-tuning the "transformer" architecture (see
 * transformer_internal.h): options, training, memory estimate, gradient
 * check.
 *
 * A step: the batch's inputs are split over the training pool's shards
 * (data parallel, contiguous slices); each shard runs the encoder forward
 * (dropout from its own generator, seeded by seed, step and shard), the
 * head and its loss (classification: the mean cross-entropy of the inputs;
 * NER: of the labels, or with a CRF the mean negative log-likelihood of the
 * inputs), and the backward pass into its own gradients; the
 * shards' gradients are added in shard order; after grad_accumulation
 * batches the global gradient norm is clipped and AdamW updates every
 * tensor that is not frozen (weight decay on matrices only), the learning
 * rate warmed up linearly over the first warmup fraction of the steps and
 * decayed linearly to 0.  So the bytes depend on the data, the options,
 * the seed and threads only.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "cai/metrics.h"
#include "encoder_model_internal.h"
#include "gradcheck.h"
#include "modelutil.h"
#include "pool.h"
#include "trainer.h"
#include "transformer_internal.h"

/* ---------------------------------------------------------------------
 * Options
 */

#define TF_OPT_COMMON \
	{"architecture", CAI_OPT_STRING, "transformer", 0, 0, "transformer", \
	"model: transformer (a pretrained encoder, option encoder, fine-tuned with a linear head)"}, \
	{"encoder", CAI_OPT_STRING, NULL, 0, 0, NULL, \
	"the pretrained encoder to fine-tune (an encoder model, resolved by the SQL layer)"}, \
	{"epochs", CAI_OPT_INT, "3", 1, 1000, NULL, \
	"passes over the training data", \
	{CAI_TUNE_LINEAR, 1, 5}}, \
	{"learning_rate", CAI_OPT_FLOAT, "5e-5", 1e-8, 1.0, NULL, \
	"AdamW peak learning rate of the encoder", \
	{CAI_TUNE_LOG, 1e-5, 1e-4}}, \
	{"head_learning_rate", CAI_OPT_FLOAT, "0", 0.0, 1.0, NULL, \
	"AdamW peak learning rate of the head (0 = learning_rate)"}, \
	{"warmup", CAI_OPT_FLOAT, "0.1", 0.0, 1.0, NULL, \
	"fraction of the steps over which the learning rate rises linearly from 0; then it decays linearly to 0"}, \
	{"weight_decay", CAI_OPT_FLOAT, "0.01", 0.0, 1.0, NULL, \
	"AdamW decoupled weight decay of the matrices (not of biases and LayerNorm)", \
	{CAI_TUNE_LOG, 0.001, 0.1}}, \
	{"batch_size", CAI_OPT_INT, "16", 1, 4096, NULL, \
	"inputs per forward pass", \
	{CAI_TUNE_LOG, 8, 32}}, \
	{"grad_accumulation", CAI_OPT_INT, "1", 1, 1024, NULL, \
	"batches whose gradients are added before each update"}, \
	{"freeze_layers", CAI_OPT_INT, "0", 0, 256, NULL, \
	"freeze the embeddings and the bottom this many layers (0 = train everything)"}, \
	{"dropout", CAI_OPT_FLOAT, "-1", -1.0, 0.9, NULL, \
	"dropout of the encoder's hidden states and attention probabilities (-1 = the encoder's own)"}, \
	{"max_length", CAI_OPT_INT, "128", 3, 65536, NULL, \
	"word pieces per input, [CLS] and [SEP] included (at most the encoder's positions)"}, \
	{"clip", CAI_OPT_FLOAT, "1", 0.0, 1e6, NULL, \
	"clip the gradient to this global L2 norm (0 = no clipping)"}, \
	{"seed", CAI_OPT_INT, "42", 0, 2147483647.0, NULL, \
	"random seed: the same data, options, seed and threads give the same model"}, \
	{"validation_seed", CAI_OPT_INT, "-1", -1, 2147483647.0, NULL, \
	"seed of the validation split when no validation data are given (-1 = seed): trainings with other seeds then hold out the same data, as cai_tune's \"seeds\" trials do"}, \
	{"validation_fraction", CAI_OPT_FLOAT, "0.1", 0.0, 0.5, NULL, \
	"fraction of the training data held out for validation when none is given; 0: the last epoch is kept and only it is scored (on the training data)"}, \
	{"validation_source", CAI_OPT_STRING, NULL, 0, 0, NULL, \
	"where validation data come from (used by the SQL layer)"}, \
	{"max_seconds", CAI_OPT_FLOAT, "0", 0.0, 1e7, NULL, \
	"stop training after this many seconds, keeping the best epoch so far (0 = no limit)"}, \
	{"patience", CAI_OPT_INT, "0", 0, 1000, NULL, \
	"stop after this many epochs in which neither the validation score got better nor the validation loss fell below its lowest (0 = never stop early)"}, \
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL, \
	"training threads: each batch is split over them (data parallel); the same seed and threads give the same model"}, \
	{"deploy", CAI_OPT_STRING, "auto", 0, 0, "auto|always|never", \
	"whether the new model replaces the deployed one (used by the SQL layer)"}

const cai_opt_def cai_tf_textclf_option_defs[] = {
	TF_OPT_COMMON,
	{"pooling", CAI_OPT_STRING, "cls", 0, 0, "cls|mean",
	"what the head reads: the last layer's [CLS] vector (cls) or its mean over every position (mean)"},
};
const int	cai_tf_textclf_n_option_defs = sizeof(cai_tf_textclf_option_defs) / sizeof(cai_tf_textclf_option_defs[0]);

const cai_opt_def cai_tf_ner_option_defs[] = {
	TF_OPT_COMMON,
	{"labeling", CAI_OPT_STRING, "first", 0, 0, "first|all",
	"which word pieces of a token carry its tag: the first (first) or all of them (all)"},
	{"crf", CAI_OPT_BOOL, "false", 0, 0, NULL,
	"a linear-chain CRF over the tags (Viterbi decoding), else each tag on its own"},
};
const int	cai_tf_ner_n_option_defs = sizeof(cai_tf_ner_option_defs) / sizeof(cai_tf_ner_option_defs[0]);

/* ---------------------------------------------------------------------
 * Training state
 */

typedef struct TfShard
{
	cai_encoder_acts *acts;
	int			aB;				/* shape of acts */
	int			aT;
	cai_encoder_grads *g;
	float	   *hg;				/* head gradients */
	cai_crf_params crfg;		/* view into hg */
	size_t		cap_bt;			/* B T of ids, mask, dout */
	size_t		cap_rows;		/* rows of x, dx, logits */
	int32_t    *ids;
	uint8_t    *mask;
	int		   *lens;
	int32_t    *targets;		/* (cap_rows) */
	float	   *dout;
	float	   *x;
	float	   *dx;
	float	   *logits;
	float	   *dlogits;
	double	   *work;			/* CRF */
	size_t		cap_work;
	cai_rng		rng;
	/* the job */
	const int32_t *idx;
	int			B;
	int			T;
	size_t		rows;			/* pooled rows (B) or labels */
	float		scale;
	double		loss;
} TfShard;

/* Evaluation buffers: predictions of the validation inputs (classes, or tags of their tokens) */
typedef struct EvalOut
{
	int32_t    *pred;
	int64_t    *off;			/* NER: (sentences + 1) into pred */
	int32_t    *gold;			/* NER: gold internal tags in pred's order */
} EvalOut;

typedef struct TfTrain
{
	Tf		   *m;				/* the model being trained: its encoder and head own their parameters */
	const cai_options *opts;
	TfInputs	tr;				/* training inputs */
	TfInputs	va;				/* validation inputs (classification) */
	const cai_ner_data *va_data;	/* NER validation sentences */
	const int32_t *va_rows;
	size_t		n_va;
	int32_t    *va_gold;		/* NER: internal gold tags of every token of the data */
	int32_t    *order;
	cai_pool	pool;
	TfShard    *sh;
	int			n_sh;
	float	   *m1;				/* AdamW moments of the encoder, then of the head */
	float	   *v1;
	float	   *best;			/* snapshot: encoder params, then head */
	size_t		n_enc;
	size_t		n_head;
	int			batch;
	int			accum;
	int			freeze;
	float		lr;
	float		head_lr;
	float		warmup;
	float		wd;
	float		clip;
	uint64_t	seed;
	int64_t		step;			/* updates so far */
	int64_t		total;			/* updates planned */
	int64_t		micro;			/* batches so far */
	int			epochs;
	bool		has_validation; /* else the training rows are evaluated */
	size_t		n_tr_rows;		/* training rows (texts or sentences) */
	EvalOut		ev;
} TfTrain;

static void
shard_free(TfShard *s)
{
	cai_encoder_acts_free(s->acts);
	cai_encoder_grads_free(s->g);
	cai_free(s->hg);
	cai_free(s->ids);
	cai_free(s->mask);
	cai_free(s->lens);
	cai_free(s->targets);
	cai_free(s->dout);
	cai_free(s->x);
	cai_free(s->dx);
	cai_free(s->logits);
	cai_free(s->dlogits);
	cai_free(s->work);
}

static cai_status
nomem(cai_error *err)
{
	return cai_error_set(err, CAI_ERR_NOMEM, "out of memory training a transformer");
}

/* Size a shard's buffers for its job (on the calling thread: pool threads do not allocate). */
static cai_status
shard_prepare(TfTrain *t, TfShard *s, cai_error *err)
{
	const Tf   *m = t->m;
	size_t		bt = (size_t) s->B * s->T;
	size_t		rows = s->B;
	size_t		maxl = 1;
	cai_status	st;

	if (m->ner)
	{
		rows = 0;
		for (int b = 0; b < s->B; b++)
		{
			size_t		l = (size_t) (t->tr.lab_off[s->idx[b] + 1] - t->tr.lab_off[s->idx[b]]);

			rows += l;
			if (l > maxl)
				maxl = l;
		}
	}
	s->rows = rows;
	if (s->B > 0 && (s->acts == NULL || s->aB != s->B || s->aT != s->T))
	{
		cai_encoder_acts_free(s->acts);
		s->acts = NULL;
		if ((st = cai_encoder_acts_create(&m->b->cfg, s->B, s->T, true, &s->acts, err)) != CAI_OK)
			return st;
		s->aB = s->B;
		s->aT = s->T;
	}
	if (bt > s->cap_bt)
	{
		cai_free(s->ids);
		cai_free(s->mask);
		cai_free(s->dout);
		s->ids = cai_malloc(sizeof(int32_t) * bt);
		s->mask = cai_malloc(bt);
		s->dout = cai_malloc(sizeof(float) * bt * (size_t) m->H);
		if (s->ids == NULL || s->mask == NULL || s->dout == NULL)
			return nomem(err);
		s->cap_bt = bt;
	}
	if (rows + (size_t) s->B > s->cap_rows)
	{
		size_t		r = rows + (size_t) s->B;

		cai_free(s->x);
		cai_free(s->dx);
		cai_free(s->logits);
		cai_free(s->dlogits);
		cai_free(s->targets);
		cai_free(s->lens);
		s->x = cai_malloc(sizeof(float) * r * (size_t) m->H);
		s->dx = cai_malloc(sizeof(float) * r * (size_t) m->H);
		s->logits = cai_malloc(sizeof(float) * r * (size_t) m->K);
		s->dlogits = cai_malloc(sizeof(float) * r * (size_t) m->K);
		s->targets = cai_malloc(sizeof(int32_t) * r);
		s->lens = cai_malloc(sizeof(int) * r);
		if (s->x == NULL || s->dx == NULL || s->logits == NULL || s->dlogits == NULL || s->targets == NULL ||
			s->lens == NULL)
			return nomem(err);
		s->cap_rows = r;
	}
	if (m->crf)
	{
		size_t		need;

		if ((st = cai_crf_work_size((int) maxl, m->K, &need, err)) != CAI_OK)
			return st;
		if (need > s->cap_work)
		{
			cai_free(s->work);
			if ((s->work = cai_malloc(sizeof(double) * need)) == NULL)
				return nomem(err);
			s->cap_work = need;
		}
	}
	return CAI_OK;
}

/* One shard's forward, loss and backward (on its pool thread). */
static cai_status
shard_job(void *ctx, int shard, cai_error *err)
{
	TfTrain    *t = ctx;
	TfShard    *s = &t->sh[shard];
	const Tf   *m = t->m;
	const TfInputs *in = &t->tr;
	const int	H = m->H;
	const int	K = m->K;
	const int	T = s->T;
	const int32_t pad = cai_wordpiece_special_id(m->b->vocab, CAI_WP_PAD);
	const float *W = m->head;
	const float *bias = m->head + (size_t) K * H;
	float	   *dW = s->hg;
	float	   *db = s->hg + (size_t) K * H;
	const float *h;
	cai_status	st;

	s->loss = 0.0;
	if (s->B == 0)
		return CAI_OK;
	for (int b = 0; b < s->B; b++)
	{
		const int32_t *src = in->ids + in->id_off[s->idx[b]];

		s->lens[b] = (int) (in->id_off[s->idx[b] + 1] - in->id_off[s->idx[b]]);
		for (int tt = 0; tt < T; tt++)
		{
			s->ids[(size_t) b * T + tt] = tt < s->lens[b] ? src[tt] : pad;
			s->mask[(size_t) b * T + tt] = tt < s->lens[b];
		}
	}
	if ((st = cai_encoder_forward(m->b->enc, s->acts, s->ids, NULL, s->mask, true, &s->rng, err)) != CAI_OK)
		return st;
	h = cai_encoder_output(s->acts);
	memset(s->dout, 0, sizeof(float) * (size_t) s->B * T * H);
	memset(s->dlogits, 0, sizeof(float) * s->rows * (size_t) K);
	if (!m->ner)
	{
		for (int b = 0; b < s->B; b++)
			s->targets[b] = in->gold[s->idx[b]];
		tf_pool(m, h, s->B, T, s->lens, s->x);
		cai_linear_forward(s->logits, s->x, W, bias, s->B, H, K);
		if ((st = cai_softmax_xent_forward(s->logits, &s->loss, s->logits, s->targets, s->B, K, s->scale, err)) != CAI_OK)
			return st;
		cai_softmax_xent_backward(s->dlogits, s->logits, s->targets, s->B, K, s->scale);
		memset(s->dx, 0, sizeof(float) * (size_t) s->B * H);
		cai_linear_backward(s->dx, dW, db, s->dlogits, s->x, W, s->B, H, K);
		for (int b = 0; b < s->B; b++)
		{
			const float *d = s->dx + (size_t) b * H;
			float	   *o = s->dout + (size_t) b * T * H;

			if (m->pooling == CAI_POOL_CLS)
				memcpy(o, d, sizeof(float) * (size_t) H);
			else
				for (int tt = 0; tt < s->lens[b]; tt++)
					for (int j = 0; j < H; j++)
						o[(size_t) tt * H + j] = d[j] / (float) s->lens[b];
		}
	}
	else
	{
		size_t		k = 0;

		for (int b = 0; b < s->B; b++)
			for (int64_t j = in->lab_off[s->idx[b]]; j < in->lab_off[s->idx[b] + 1]; j++)
			{
				memcpy(s->x + k * H, h + ((size_t) b * T + in->pos[j]) * H, sizeof(float) * (size_t) H);
				s->targets[k++] = in->lab_gold[j];
			}
		if (s->rows > 0)
		{
			cai_linear_forward(s->logits, s->x, W, bias, (int) s->rows, H, K);
			if (m->crf)
			{
				k = 0;
				for (int b = 0; b < s->B; b++)
				{
					int			n = (int) (in->lab_off[s->idx[b] + 1] - in->lab_off[s->idx[b]]);
					double		nll = 0.0;

					if (n > 0 &&
						(st = cai_crf_nll(&m->crfp, K, s->logits + k * K, n, s->targets + k, &m->tt.mask, s->scale,
										  &nll, s->dlogits + k * K, &s->crfg, s->work, err)) != CAI_OK)
						return st;
					s->loss += s->scale * nll;
					k += (size_t) n;
				}
			}
			else
			{
				if ((st = cai_softmax_xent_forward(s->logits, &s->loss, s->logits, s->targets, (int) s->rows, K,
												   s->scale, err)) != CAI_OK)
					return st;
				cai_softmax_xent_backward(s->dlogits, s->logits, s->targets, (int) s->rows, K, s->scale);
			}
			memset(s->dx, 0, sizeof(float) * s->rows * H);
			cai_linear_backward(s->dx, dW, db, s->dlogits, s->x, W, (int) s->rows, H, K);
			k = 0;
			for (int b = 0; b < s->B; b++)
				for (int64_t j = in->lab_off[s->idx[b]]; j < in->lab_off[s->idx[b] + 1]; j++)
				{
					float	   *o = s->dout + ((size_t) b * T + in->pos[j]) * H;

					for (int c = 0; c < H; c++)
						o[c] += s->dx[k * H + c];
					k++;
				}
		}
	}
	return cai_encoder_backward(m->b->enc, s->acts, s->g, s->dout, s->ids, NULL, s->mask, err);
}

/* Forward, loss and backward of inputs idx[0..B) over the shards, gradients added to each shard's. */
static cai_status
run_batch(TfTrain *t, const int32_t *idx, int B, float scale, double *loss, cai_error *err)
{
	cai_status	st;

	if (t->m->ner && !t->m->crf)
	{
		/* tags on their own: the mean cross-entropy of the batch's labels (as token classification usually is) */
		int64_t		labels = 0;

		for (int b = 0; b < B; b++)
			labels += t->tr.lab_off[idx[b] + 1] - t->tr.lab_off[idx[b]];
		scale = scale * (float) B / (float) (labels > 0 ? labels : 1);
	}
	for (int s = 0; s < t->n_sh; s++)
	{
		TfShard    *sh = &t->sh[s];
		int			lo = (int) ((int64_t) B * s / t->n_sh);
		int			hi = (int) ((int64_t) B * (s + 1) / t->n_sh);

		sh->idx = idx + lo;
		sh->B = hi - lo;
		sh->T = sh->B > 0 ? 0 : 1;
		for (int b = 0; b < sh->B; b++)
		{
			int			l = (int) (t->tr.id_off[sh->idx[b] + 1] - t->tr.id_off[sh->idx[b]]);

			if (l > sh->T)
				sh->T = l;
		}
		sh->scale = scale;
		cai_rng_seed(&sh->rng, t->seed * UINT64_C(0x9E3779B97F4A7C15) + (uint64_t) t->micro * 64 + (uint64_t) s + 1);
		if ((st = shard_prepare(t, sh, err)) != CAI_OK)
			return st;
	}
	t->micro++;
	if ((st = cai_pool_run(&t->pool, shard_job, t, err)) != CAI_OK)
		return st;
	for (int s = 0; s < t->n_sh; s++)
		*loss += t->sh[s].loss;
	return CAI_OK;
}

/* Whether encoder tensor i is frozen. */
static bool
frozen(const TfTrain *t, int i)
{
	return t->freeze > 0 && (i < 5 || (i - 5) / 16 < t->freeze);
}

/* Add the shards' gradients into shard 0's (shard order), clip, update, zero them. */
static cai_status
update(TfTrain *t, cai_error *err)
{
	const cai_encoder *enc = t->m->b->enc;
	float	   *g = t->sh[0].g->data;
	float	   *hg = t->sh[0].hg;
	double		sq;
	float		lr;
	float		hlr;
	int64_t		warm = (int64_t) ((double) t->warmup * (double) t->total);

	for (int s = 1; s < t->n_sh; s++)
	{
		for (size_t i = 0; i < t->n_enc; i++)
			g[i] += t->sh[s].g->data[i];
		for (size_t i = 0; i < t->n_head; i++)
			hg[i] += t->sh[s].hg[i];
	}
	sq = cai_sumsq(g, t->n_enc) + cai_sumsq(hg, t->n_head);
	if (!isfinite(sq))
		return cai_error_set(err, CAI_ERR_NUMERIC, "the gradient is not finite (try a lower learning_rate)");
	if (t->clip > 0.0f && sqrt(sq) > t->clip)
	{
		float		c = (float) (t->clip / sqrt(sq));

		cai_scale(g, t->n_enc, c);
		cai_scale(hg, t->n_head, c);
	}
	lr = cai_lr_schedule(CAI_LR_LINEAR, t->lr, 0.0f, t->step, warm, t->total);
	hlr = cai_lr_schedule(CAI_LR_LINEAR, t->head_lr, 0.0f, t->step, warm, t->total);
	t->step++;
	for (int i = 0; i < enc->n_tensors; i++)
	{
		const cai_encoder_tensor *te = &enc->tensors[i];

		if (frozen(t, i))
			continue;
		cai_adamw_step(enc->params + te->offset, g + te->offset, t->m1 + te->offset, t->v1 + te->offset, te->numel,
					   lr, 0.9f, 0.999f, 1e-8f, te->ndim == 2 ? t->wd : 0.0f, t->step);
	}
	{
		size_t		kh = (size_t) t->m->K * t->m->H;
		float	   *hm = t->m1 + t->n_enc;
		float	   *hv = t->v1 + t->n_enc;

		cai_adamw_step(t->m->head, hg, hm, hv, kh, hlr, 0.9f, 0.999f, 1e-8f, t->wd, t->step);
		cai_adamw_step(t->m->head + kh, hg + kh, hm + kh, hv + kh, t->n_head - kh, hlr, 0.9f, 0.999f, 1e-8f, 0.0f,
					   t->step);
	}
	for (int s = 0; s < t->n_sh; s++)
	{
		cai_encoder_grads_zero(t->sh[s].g);
		memset(t->sh[s].hg, 0, sizeof(float) * t->n_head);
	}
	return CAI_OK;
}

/* ---------------------------------------------------------------------
 * Trainer hooks
 */

static cai_status
hook_begin_epoch(void *ctx, int epoch, cai_error *err)
{
	TfTrain    *t = ctx;
	cai_rng		rng;

	cai_rng_seed(&rng, t->seed + (uint64_t) epoch * 7919);
	for (size_t i = 0; i < t->tr.n; i++)
		t->order[i] = (int32_t) i;
	cai_rng_shuffle(&rng, t->order, t->tr.n);
	return CAI_OK;
}

static cai_status
hook_train_epoch(void *ctx, cai_trainer *tr, int epoch, double *loss, double *rows, cai_error *err)
{
	TfTrain    *t = ctx;
	size_t		n = t->tr.n;
	size_t		done = 0;
	double		sum = 0.0;
	int			in_group = 0;
	cai_status	st;

	*loss = 0.0;
	*rows = 0.0;
	for (size_t b0 = 0; b0 < n; b0 += (size_t) t->batch)
	{
		int			B = (int) (n - b0 < (size_t) t->batch ? n - b0 : (size_t) t->batch);
		float		scale = 1.0f / (float) ((size_t) B * (size_t) t->accum);
		double		bl = 0.0;

		if ((st = run_batch(t, t->order + b0, B, scale, &bl, err)) != CAI_OK)
			return st;
		sum += bl * B * t->accum;	/* the batch's summed loss */
		done += (size_t) B;
		if (++in_group == t->accum || b0 + (size_t) B >= n)
		{
			if ((st = update(t, err)) != CAI_OK)
				return st;
			in_group = 0;
		}
		if ((st = cai_trainer_poll(tr, ((epoch - 1) + (double) done / (double) n) / t->epochs, err)) != CAI_OK)
			return st;
		if (cai_trainer_out_of_time(tr))
		{
			if (in_group > 0 && (st = update(t, err)) != CAI_OK)
				return st;
			break;
		}
	}
	*loss = done > 0 ? sum / (double) done : 0.0;
	*rows = (double) done;
	return CAI_OK;
}

/* Predicted classes (valid inputs) and mean cross-entropy. */
static cai_status
eval_classes(TfTrain *t, int32_t *pred, double *loss, cai_error *err)
{
	const TfInputs *in = &t->va;
	const int	K = t->m->K;
	float	   *lg = cai_malloc(sizeof(float) * TF_INFER_BATCH * (size_t) K);
	int32_t		idx[TF_INFER_BATCH];
	double		sum = 0.0;
	cai_status	st = CAI_OK;

	if (lg == NULL)
		return nomem(err);
	for (size_t b0 = 0; b0 < in->n && st == CAI_OK; b0 += TF_INFER_BATCH)
	{
		int			B = (int) (in->n - b0 < TF_INFER_BATCH ? in->n - b0 : TF_INFER_BATCH);

		for (int b = 0; b < B; b++)
			idx[b] = (int32_t) (b0 + b);
		if ((st = tf_forward_infer(t->m, in, idx, B, lg, err)) != CAI_OK)
			break;
		cai_softmax_forward(lg, lg, B, K);
		for (int b = 0; b < B; b++)
		{
			const float *p = lg + (size_t) b * K;

			pred[b0 + b] = cai_argmax(p, K);
			sum -= log(p[in->gold[b0 + b]] > 1e-30f ? p[in->gold[b0 + b]] : 1e-30f);
		}
	}
	cai_free(lg);
	*loss = in->n > 0 ? sum / (double) in->n : 0.0;
	return st;
}

/* Internal tags of the validation sentences, token by token (pred indexed like va_data's tokens of va_rows). */
static cai_status
eval_tags(TfTrain *t, int32_t *pred, int64_t *off, cai_error *err)
{
	cai_status	st = CAI_OK;
	size_t		k = 0;

	off[0] = 0;
	for (size_t i = 0; i < t->n_va && st == CAI_OK; i++)
	{
		size_t		r = (size_t) t->va_rows[i];
		int64_t		o2[2];

		o2[0] = t->va_data->offsets[r];
		o2[1] = t->va_data->offsets[r + 1];
		st = tf_tag_sentences(t->m, 1, o2, t->va_data->tokens + o2[0], t->va_data->token_lens + o2[0], pred + k,
							  NULL, err);
		k += (size_t) (o2[1] - o2[0]);
		off[i + 1] = (int64_t) k;
	}
	return st;
}

/* F1 of predicted against gold internal tags (sentences off). */
static double
tags_f1(const int32_t *gold, const int32_t *pred, const int64_t *off, size_t n, char *gp, int32_t *gt, char *pp,
		int32_t *pt)
{
	int64_t		g = 0;
	int64_t		p = 0;
	int64_t		c = 0;

	for (size_t s = 0; s < n; s++)
	{
		size_t		len = (size_t) (off[s + 1] - off[s]);

		for (size_t i = 0; i < len; i++)
		{
			gp[i] = ner_tag_prefix(gold[off[s] + i]);
			gt[i] = ner_tag_type(gold[off[s] + i]);
			pp[i] = ner_tag_prefix(pred[off[s] + i]);
			pt[i] = ner_tag_type(pred[off[s] + i]);
		}
		cai_chunks_count(gp, gt, pp, pt, len, &g, &p, &c);
	}
	return p + g > 0 ? 2.0 * (double) c / (double) (p + g) : 0.0;
}

static cai_status
hook_evaluate(void *ctx, cai_trainer *tr, int epoch, double *score, double *loss, cai_error *err)
{
	TfTrain    *t = ctx;
	EvalOut    *e = &t->ev;
	cai_status	st;

	if (!t->m->ner)
	{
		int64_t		right = 0;

		if ((st = eval_classes(t, e->pred, loss, err)) != CAI_OK)
			return st;
		for (size_t i = 0; i < t->va.n; i++)
			right += e->pred[i] == t->va.gold[i];
		*score = t->va.n > 0 ? (double) right / (double) t->va.n : 0.0;
		return CAI_OK;
	}
	if ((st = eval_tags(t, e->pred, e->off, err)) != CAI_OK)
		return st;
	{
		size_t		maxl = 1;
		char	   *gp;
		char	   *pp;
		int32_t    *gt;
		int32_t    *pt;

		for (size_t s = 0; s < t->n_va; s++)
			if ((size_t) (e->off[s + 1] - e->off[s]) > maxl)
				maxl = (size_t) (e->off[s + 1] - e->off[s]);
		gp = cai_malloc(maxl);
		pp = cai_malloc(maxl);
		gt = cai_malloc(sizeof(int32_t) * maxl);
		pt = cai_malloc(sizeof(int32_t) * maxl);
		if (gp == NULL || pp == NULL || gt == NULL || pt == NULL)
			st = nomem(err);
		else
			*score = tags_f1(e->gold, e->pred, e->off, t->n_va, gp, gt, pp, pt);
		cai_free(gp);
		cai_free(pp);
		cai_free(gt);
		cai_free(pt);
	}
	*loss = NAN;
	return st;
}

static void
hook_snapshot(void *ctx)
{
	TfTrain    *t = ctx;

	memcpy(t->best, t->m->b->enc->params, sizeof(float) * t->n_enc);
	memcpy(t->best + t->n_enc, t->m->head, sizeof(float) * t->n_head);
}

static cai_status
hook_restore(void *ctx, cai_error *err)
{
	TfTrain    *t = ctx;

	memcpy(t->m->b->enc->params, t->best, sizeof(float) * t->n_enc);
	memcpy(t->m->head, t->best + t->n_enc, sizeof(float) * t->n_head);
	return CAI_OK;
}

/* ---------------------------------------------------------------------
 * Setup
 */

static cai_status
need_encoder(const cai_train_set *set, cai_error *err)
{
	if (set->encoder == NULL)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "the transformer architecture fine-tunes a pretrained encoder: give option \"encoder\", "
							 "the name of an imported encoder");
	return CAI_OK;
}

/* Internal BIOES tags of every token of data (chunks read as conlleval reads any scheme); types interned. */
static cai_status
read_tags(const cai_ner_data *d, cai_strtab *types, int32_t *out, cai_error *err)
{
	size_t		maxl = 1;
	char	   *pf;
	int32_t    *ty;
	cai_chunk  *ch;
	cai_status	st = CAI_OK;

	for (size_t s = 0; s < d->n; s++)
		if ((size_t) (d->offsets[s + 1] - d->offsets[s]) > maxl)
			maxl = (size_t) (d->offsets[s + 1] - d->offsets[s]);
	pf = cai_malloc(maxl);
	ty = cai_malloc(sizeof(int32_t) * maxl);
	ch = cai_malloc(sizeof(cai_chunk) * maxl);
	if (pf == NULL || ty == NULL || ch == NULL)
		st = nomem(err);
	for (size_t s = 0; s < d->n && st == CAI_OK; s++)
	{
		int64_t		t0 = d->offsets[s];
		size_t		n = (size_t) (d->offsets[s + 1] - t0);
		size_t		k;

		for (size_t i = 0; i < n && st == CAI_OK; i++)
		{
			const char *tag = cai_ner_data_tag(d, t0 + (int64_t) i);
			const char *type;
			size_t		tl;

			if (!cai_tag_parse(tag, &pf[i], &type, &tl))
				st = cai_error_set(err, CAI_ERR_INVALID, "sentence %zu token %zu: invalid tag \"%.64s\"", s, i,
								   tag != NULL ? tag : "(null)");
			else if (pf[i] == 'O')
				ty[i] = -1;
			else
				st = cai_strtab_intern(types, type, tl, &ty[i], NULL, err);
		}
		if (st != CAI_OK)
			break;
		k = cai_chunks_extract(pf, ty, n, ch);
		cai_chunks_to_tags(ch, k, n, CAI_SCHEME_BIOES, pf, ty);
		for (size_t i = 0; i < n; i++)
			out[t0 + i] = ner_tag_index(pf[i], ty[i]);
	}
	cai_free(pf);
	cai_free(ty);
	cai_free(ch);
	return st;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * The NER model's types (sorted by name) from the training (and
 * validation) tags, and every token's internal gold tag (tags, vtags).
 */
static cai_status
ner_setup(Tf *m, const cai_train_set *set, int32_t *tags, int32_t *vtags, cai_error *err)
{
	cai_strtab	seen;
	const char **names = NULL;
	int32_t    *remap = NULL;
	cai_status	st;

	memset(&seen, 0, sizeof(seen));
	if ((st = cai_strtab_init(&seen, 16, err)) != CAI_OK ||
		(st = read_tags(set->sentences, &seen, tags, err)) != CAI_OK ||
		(set->valid_sentences != NULL && (st = read_tags(set->valid_sentences, &seen, vtags, err)) != CAI_OK))
		goto done;
	if (seen.n == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "the training tags contain no entities (every tag is O)");
		goto done;
	}
	if (seen.n > NER_MAX_TYPES)
	{
		st = cai_error_set(err, CAI_ERR_LIMIT, "too many entity types (%d, at most %d)", seen.n, NER_MAX_TYPES);
		goto done;
	}
	names = cai_malloc(sizeof(char *) * (size_t) seen.n);
	remap = cai_malloc(sizeof(int32_t) * (size_t) seen.n);
	if (names == NULL || remap == NULL || (st = cai_strtab_init(&m->tt.types, seen.n, err)) != CAI_OK)
	{
		st = st != CAI_OK ? st : nomem(err);
		goto done;
	}
	for (int i = 0; i < seen.n; i++)
		names[i] = cai_strtab_str(&seen, i);
	qsort(names, (size_t) seen.n, sizeof(char *), cmp_str);
	for (int i = 0; i < seen.n && st == CAI_OK; i++)
	{
		int32_t		id;

		st = cai_strtab_intern(&m->tt.types, names[i], strlen(names[i]), &id, NULL, err);
		remap[cai_strtab_find(&seen, names[i], strlen(names[i]))] = id;
	}
	if (st != CAI_OK || (st = ner_build_tags(&m->tt, err)) != CAI_OK)
		goto done;
	m->K = 1 + 4 * seen.n;
	for (int side = 0; side < 2; side++)
	{
		const cai_ner_data *d = side == 0 ? set->sentences : set->valid_sentences;
		int32_t    *g = side == 0 ? tags : vtags;

		for (int64_t i = 0; d != NULL && i < d->offsets[d->n]; i++)
			if (g[i] > 0)
				g[i] = ner_tag_index(ner_tag_prefix(g[i]), remap[ner_tag_type(g[i])]);
	}
done:
	cai_free(names);
	cai_free(remap);
	cai_strtab_free(&seen);
	return st;
}

static void
train_free(TfTrain *t)
{
	cai_pool_stop(&t->pool);
	for (int s = 0; s < t->n_sh; s++)
		shard_free(&t->sh[s]);
	cai_free(t->sh);
	tf_inputs_free(&t->tr);
	tf_inputs_free(&t->va);
	cai_free(t->order);
	cai_free(t->m1);
	cai_free(t->v1);
	cai_free(t->best);
	cai_free(t->ev.pred);
	cai_free(t->ev.off);
	cai_free(t->ev.gold);
	cai_free((void *) t->va_rows);
	tf_free(t->m);
}

/*
 * Everything before the first epoch: the model (a copy of the encoder, a
 * random head), the split, the inputs, the pool and its shards, the
 * optimizer state.  tags/vtags: NER gold tags, owned by the caller.
 */
static cai_status
train_setup(TfTrain *t, const cai_options *opts, const cai_train_set *set, bool for_gradcheck, int32_t **tags_out,
			int32_t **vtags_out, cai_error *err)
{
	const cai_encoder_bundle *src = set->encoder;
	bool		ner = set->sentences != NULL && set->texts == NULL;
	size_t		n_rows = ner ? set->sentences->n : set->texts->n;
	bool	   *isva = NULL;
	int32_t    *rows = NULL;
	int32_t    *vrows = NULL;
	size_t		n_tr = 0;
	size_t		n_va = 0;
	int32_t    *tags = NULL;
	int32_t    *vtags = NULL;
	Tf		   *m;
	cai_rng		rng;
	cai_status	st;
	float		dropout = (float) cai_opt_float(opts, "dropout");

	memset(t, 0, sizeof(*t));
	*tags_out = *vtags_out = NULL;
	t->opts = opts;
	if ((st = need_encoder(set, err)) != CAI_OK)
		return st;
	t->epochs = (int) cai_opt_int(opts, "epochs");
	t->batch = (int) cai_opt_int(opts, "batch_size");
	t->accum = (int) cai_opt_int(opts, "grad_accumulation");
	t->freeze = (int) cai_opt_int(opts, "freeze_layers");
	t->lr = (float) cai_opt_float(opts, "learning_rate");
	t->head_lr = cai_opt_float(opts, "head_learning_rate") > 0 ? (float) cai_opt_float(opts, "head_learning_rate") : t->lr;
	t->warmup = (float) cai_opt_float(opts, "warmup");
	t->wd = (float) cai_opt_float(opts, "weight_decay");
	t->clip = (float) cai_opt_float(opts, "clip");
	t->seed = (uint64_t) cai_opt_int(opts, "seed");
	if (cai_opt_int(opts, "max_length") > src->cfg.max_position_embeddings)
		return cai_error_set(err, CAI_ERR_INVALID, "option \"max_length\" %d is more than the encoder's %d positions",
							 (int) cai_opt_int(opts, "max_length"), (int) src->cfg.max_position_embeddings);
	if (t->freeze > src->cfg.num_hidden_layers)
		return cai_error_set(err, CAI_ERR_INVALID, "option \"freeze_layers\" %d is more than the encoder's %d layers",
							 t->freeze, (int) src->cfg.num_hidden_layers);
	if (!ner && (set->n_labels < 2 || set->label_names == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "a classifier needs at least two labels");

	if ((t->m = m = cai_calloc(1, sizeof(Tf))) == NULL)
		return nomem(err);
	m->ner = ner;
	m->max_length = (int) cai_opt_int(opts, "max_length");
	if ((st = cai_encoder_bundle_copy(src, for_gradcheck ? 0.0f : dropout, &m->b, err)) != CAI_OK)
		return st;
	m->H = m->b->cfg.hidden_size;
	if (ner)
	{
		m->crf = cai_opt_bool(opts, "crf");
		m->all_pieces = strcmp(cai_opt_string(opts, "labeling"), "all") == 0;
		tags = cai_malloc(sizeof(int32_t) * ((size_t) set->sentences->offsets[set->sentences->n] + 1));
		if (set->valid_sentences != NULL)
			vtags = cai_malloc(sizeof(int32_t) * ((size_t) set->valid_sentences->offsets[set->valid_sentences->n] + 1));
		*tags_out = tags;
		*vtags_out = vtags;
		if (tags == NULL || (set->valid_sentences != NULL && vtags == NULL))
			return nomem(err);
		if (cai_ner_data_token_ids(set->sentences) ||
			(set->valid_sentences != NULL && cai_ner_data_token_ids(set->valid_sentences)))
			return cai_error_set(err, CAI_ERR_INVALID,
								 "the transformer reads sentences as strings (cai_tf_train converts ids)");
		if ((st = ner_check_data(set->sentences, "training", true, err)) != CAI_OK ||
			(set->valid_sentences != NULL && (st = ner_check_data(set->valid_sentences, "validation", true, err)) != CAI_OK) ||
			(st = ner_setup(m, set, tags, vtags, err)) != CAI_OK)
			return st;
	}
	else
	{
		if ((st = cai_pooling_parse(cai_opt_string(opts, "pooling"), &m->pooling, err)) != CAI_OK ||
			(st = cai_strtab_init(&m->classes, set->n_labels, err)) != CAI_OK)
			return st;
		for (int i = 0; i < set->n_labels && st == CAI_OK; i++)
		{
			int32_t		id;
			bool		added = false;

			st = cai_strtab_intern(&m->classes, set->label_names[i], strlen(set->label_names[i]), &id, &added, err);
			if (st == CAI_OK && !added)
				st = cai_error_set(err, CAI_ERR_INVALID, "label \"%.64s\" is given twice", set->label_names[i]);
		}
		if (st != CAI_OK)
			return st;
		m->K = set->n_labels;
		for (size_t i = 0; i < n_rows; i++)
			if (set->texts->labels[i] < 0 || set->texts->labels[i] >= m->K)
				return cai_error_set(err, CAI_ERR_INVALID, "row %zu: label %d is outside 0 .. %d", i,
									 (int) set->texts->labels[i], m->K - 1);
	}

	/* the head: W normal(0, 0.02), bias and CRF zero */
	t->n_enc = m->b->enc->n_params;
	t->n_head = tf_head_size(m->K, m->H, m->crf);
	if ((m->head = cai_calloc(t->n_head, sizeof(float))) == NULL)
		return nomem(err);
	m->own_head = true;
	tf_head_views(m);
	cai_rng_seed(&rng, t->seed);
	for (size_t i = 0; i < (size_t) m->K * m->H; i++)
		m->head[i] = 0.02f * cai_rng_normal(&rng);

	/* it tokenizes with the encoder's WordPiece vocabulary: rows kept only as cai_tokenize ids will not do */
	if (!ner && (set->texts->texts == NULL || (set->valid_texts != NULL && set->valid_texts->texts == NULL)))
		return cai_error_set(err, CAI_ERR_INVALID,
							 "the transformer architecture trains on the texts themselves, not on token ids");
	/* the split: the registry's validation mask, so that drift sees the same rows */
	rows = cai_malloc(sizeof(int32_t) * (n_rows + 1));
	vrows = cai_malloc(sizeof(int32_t) * (n_rows + 1));
	isva = cai_calloc(n_rows + 1, sizeof(bool));
	if (rows == NULL || vrows == NULL || isva == NULL)
	{
		cai_free(rows);
		cai_free(vrows);
		cai_free(isva);
		return nomem(err);
	}
	if ((ner ? set->valid_sentences == NULL : set->valid_texts == NULL) && !for_gradcheck)
		st = ner ? cai_ner_validation_mask(n_rows, opts, isva, err) :
			cai_textclf_validation_mask(set->texts, cai_opt_float(opts, "validation_fraction"), set->n_labels,
										cai_opt_split_seed(opts), isva, err);
	for (size_t i = 0; i < n_rows; i++)
		if (isva[i])
			vrows[n_va++] = (int32_t) i;
		else
			rows[n_tr++] = (int32_t) i;
	cai_free(isva);
	if (st == CAI_OK && n_tr == 0)
		st = cai_error_set(err, CAI_ERR_INVALID, "no training rows");
	if (st == CAI_OK)
		st = ner ? tf_inputs_sentences(m, set->sentences, tags, rows, n_tr, &t->tr, err) :
			tf_inputs_texts(m, set->texts->texts, set->texts->lens, set->texts->labels, n_tr, rows, &t->tr, err);
	/* validation: the given data, the held-out rows, else the training rows */
	if (st == CAI_OK && !ner)
	{
		const cai_textclf_data *vd = set->valid_texts != NULL ? set->valid_texts : set->texts;
		const int32_t *vr = set->valid_texts != NULL ? NULL : n_va > 0 ? vrows : rows;
		size_t		nv = set->valid_texts != NULL ? set->valid_texts->n : n_va > 0 ? n_va : n_tr;

		st = tf_inputs_texts(m, vd->texts, vd->lens, vd->labels, nv, vr, &t->va, err);
		t->n_va = nv;
		if (st == CAI_OK && (t->ev.pred = cai_malloc(sizeof(int32_t) * (nv + 1))) == NULL)
			st = nomem(err);
		for (size_t i = 0; st == CAI_OK && i < t->va.n; i++)
			if (t->va.gold[i] < 0 || t->va.gold[i] >= m->K)
				st = cai_error_set(err, CAI_ERR_INVALID, "validation row %zu: label outside the labels", i);
	}
	else if (st == CAI_OK)
	{
		const int32_t *g = set->valid_sentences != NULL ? vtags : tags;
		int32_t    *vr = vrows;
		size_t		ntok = 0;
		size_t		k = 0;

		t->va_data = set->valid_sentences != NULL ? set->valid_sentences : set->sentences;
		t->n_va = set->valid_sentences != NULL ? set->valid_sentences->n : n_va > 0 ? n_va : n_tr;
		if (set->valid_sentences != NULL)
		{
			cai_free(vrows);
			vrows = vr = cai_malloc(sizeof(int32_t) * (t->n_va + 1));
			if (vr == NULL)
				st = nomem(err);
			for (size_t i = 0; vr != NULL && i < t->n_va; i++)
				vr[i] = (int32_t) i;
		}
		else if (n_va == 0)
			memcpy(vr, rows, sizeof(int32_t) * n_tr);
		for (size_t i = 0; st == CAI_OK && i < t->n_va; i++)
			ntok += (size_t) (t->va_data->offsets[vr[i] + 1] - t->va_data->offsets[vr[i]]);
		if (st == CAI_OK)
		{
			t->ev.pred = cai_malloc(sizeof(int32_t) * (ntok + 1));
			t->ev.gold = cai_malloc(sizeof(int32_t) * (ntok + 1));
			t->ev.off = cai_malloc(sizeof(int64_t) * (t->n_va + 1));
			if (t->ev.pred == NULL || t->ev.gold == NULL || t->ev.off == NULL)
				st = nomem(err);
		}
		for (size_t i = 0; st == CAI_OK && i < t->n_va; i++)
			for (int64_t j = t->va_data->offsets[vr[i]]; j < t->va_data->offsets[vr[i] + 1]; j++)
				t->ev.gold[k++] = g[j];
		t->va_rows = vr;
		vrows = NULL;
	}
	cai_free(rows);
	cai_free(vrows);
	if (st != CAI_OK)
		return st;
	t->n_tr_rows = n_tr;
	t->has_validation = (ner ? set->valid_sentences != NULL : set->valid_texts != NULL) || n_va > 0;

	/* the pool, its shards and the optimizer state */
	cai_pool_start(&t->pool, for_gradcheck ? 1 : (int) cai_opt_int(opts, "threads"));
	t->n_sh = t->pool.n;
	if ((t->sh = cai_calloc((size_t) t->n_sh, sizeof(TfShard))) == NULL)
		return nomem(err);
	for (int s = 0; s < t->n_sh; s++)
	{
		if ((st = cai_encoder_grads_create(m->b->enc, &t->sh[s].g, err)) != CAI_OK)
			return st;
		if ((t->sh[s].hg = cai_calloc(t->n_head, sizeof(float))) == NULL)
			return nomem(err);
		if (m->crf)
			cai_crf_params_view(&t->sh[s].crfg, t->sh[s].hg + (size_t) m->K * m->H + m->K, m->K);
	}
	t->order = cai_malloc(sizeof(int32_t) * (t->tr.n + 1));
	t->m1 = cai_calloc(t->n_enc + t->n_head, sizeof(float));
	t->v1 = cai_calloc(t->n_enc + t->n_head, sizeof(float));
	t->best = cai_malloc(sizeof(float) * (t->n_enc + t->n_head));
	if (t->order == NULL || t->m1 == NULL || t->v1 == NULL || t->best == NULL)
		return nomem(err);
	{
		int64_t		batches = (int64_t) ((t->tr.n + (size_t) t->batch - 1) / (size_t) t->batch);

		t->total = (int64_t) t->epochs * ((batches + t->accum - 1) / t->accum);
	}
	return CAI_OK;
}

/* ---------------------------------------------------------------------
 * Training
 */

static json_object *
strtab_json(const cai_strtab *t)
{
	json_object *a = json_object_new_array();

	for (int32_t i = 0; a != NULL && i < t->n; i++)
		if (json_object_array_add(a, json_object_new_string(cai_strtab_str(t, i))) != 0)
		{
			json_object_put(a);
			return NULL;
		}
	return a;
}

/* The kept model's report on the evaluated rows, with "score" and the trainer's keys. */
static cai_status
final_metrics(TfTrain *t, const cai_trainer *tk, json_object **out, cai_error *err)
{
	const Tf   *m = t->m;
	char	   *report = NULL;
	json_object *mj;
	json_object *v;
	cai_status	st;
	size_t		n_valid = t->has_validation ? t->n_va : 0;

	*out = NULL;
	if (!m->ner)
	{
		const char **names = cai_malloc(sizeof(char *) * (size_t) m->K);
		double		loss;

		if (names == NULL)
			return nomem(err);
		for (int i = 0; i < m->K; i++)
			names[i] = cai_strtab_str(&m->classes, i);
		st = eval_classes(t, t->ev.pred, &loss, err);
		if (st == CAI_OK)
			st = cai_classification_report(t->va.gold, t->ev.pred, t->va.n, names, m->K, &report, err);
		cai_free(names);
	}
	else
	{
		size_t		ntok;
		const char **gold = NULL;
		const char **pred = NULL;

		st = eval_tags(t, t->ev.pred, t->ev.off, err);
		ntok = (size_t) t->ev.off[t->n_va];
		if (st == CAI_OK)
		{
			gold = cai_malloc(sizeof(char *) * (ntok + 1));
			pred = cai_malloc(sizeof(char *) * (ntok + 1));
			if (gold == NULL || pred == NULL)
				st = nomem(err);
		}
		for (size_t i = 0; st == CAI_OK && i < ntok; i++)
		{
			gold[i] = cai_strtab_str(&m->tt.labels, m->tt.tag_label[t->ev.gold[i]]);
			pred[i] = cai_strtab_str(&m->tt.labels, m->tt.tag_label[t->ev.pred[i]]);
		}
		if (st == CAI_OK)
			st = cai_conll_eval(t->ev.off, t->n_va, gold, pred, &report, err);
		cai_free(gold);
		cai_free(pred);
	}
	if (st != CAI_OK)
		return st;
	mj = cai_json_parse_object(report);
	cai_free(report);
	if (mj == NULL || !json_object_object_get_ex(mj, m->ner ? "f1" : "accuracy", &v) ||
		!cai_json_put(mj, "score", json_object_new_double(json_object_get_double(v))) ||
		!cai_trainer_put_metrics(tk, mj, m->ner ? "sentences" : "rows", t->n_tr_rows, n_valid))
	{
		json_object_put(mj);
		return nomem(err);
	}
	*out = mj;
	return CAI_OK;
}

static cai_status
tf_train_strings(const cai_options *opts, const cai_train_set *set, const char *provenance_json,
				 cai_progress_fn progress, void *progress_ctx, uint8_t **model, size_t *model_len,
				 char **metrics_json, cai_error *err);

/*
 * NER sentences given as ids (cai_ner_data's compact form) are read here as
 * strings: the pieces of every token are looked up from its string.
 */
cai_status
cai_tf_train(const cai_options *opts, const cai_train_set *set, const char *provenance_json,
			 cai_progress_fn progress, void *progress_ctx, uint8_t **model, size_t *model_len,
			 char **metrics_json, cai_error *err)
{
	cai_train_set s = *set;
	cai_ner_data tr,
				va;
	void	   *own_tr = NULL;
	void	   *own_va = NULL;
	cai_status	st = CAI_OK;

	*model = NULL;
	*model_len = 0;
	*metrics_json = NULL;
	if (set->sentences != NULL &&
		(st = ner_data_strings(set->sentences, &tr, &own_tr, err)) == CAI_OK)
		s.sentences = &tr;
	if (st == CAI_OK && set->valid_sentences != NULL &&
		(st = ner_data_strings(set->valid_sentences, &va, &own_va, err)) == CAI_OK)
		s.valid_sentences = &va;
	if (st == CAI_OK)
		st = tf_train_strings(opts, &s, provenance_json, progress, progress_ctx, model, model_len, metrics_json, err);
	cai_free(own_tr);
	cai_free(own_va);
	return st;
}

static cai_status
tf_train_strings(const cai_options *opts, const cai_train_set *set, const char *provenance_json,
				 cai_progress_fn progress, void *progress_ctx, uint8_t **model, size_t *model_len,
				 char **metrics_json, cai_error *err)
{
	TfTrain		t;
	cai_trainer tk;
	cai_trainer_config cfg = {0};
	cai_trainer_hooks hooks = {0};
	int32_t    *tags = NULL;
	int32_t    *vtags = NULL;
	json_object *metrics = NULL;
	json_object *prov = NULL;
	json_object *root = NULL;
	char	   *oj = NULL;
	cai_status	st;

	*model = NULL;
	*model_len = 0;
	*metrics_json = NULL;
	cai_trainer_init(&tk, progress, progress_ctx, cai_opt_float(opts, "max_seconds"));
	if (provenance_json != NULL && provenance_json[0] != '\0' && (prov = cai_json_parse_object(provenance_json)) == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "provenance must be a JSON object");
	st = train_setup(&t, opts, set, false, &tags, &vtags, err);
	if (st == CAI_OK)
	{
		cfg.epochs = t.epochs;
		cfg.patience = (int) cai_opt_int(opts, "patience");
		cfg.has_validation = t.has_validation;
		cfg.time_check_after_epoch = true;
		cfg.evaluate_last_only = true;
		hooks.ctx = &t;
		hooks.begin_epoch = hook_begin_epoch;
		hooks.train_epoch = hook_train_epoch;
		hooks.evaluate = hook_evaluate;
		hooks.snapshot = hook_snapshot;
		hooks.restore = hook_restore;
		st = cai_trainer_run(&tk, &cfg, &hooks, err);
	}
	cai_pool_stop(&t.pool);
	if (st == CAI_OK)
		st = final_metrics(&t, &tk, &metrics, err);
	if (st == CAI_OK)
	{
		const Tf   *m = t.m;
		bool		ok;

		if (prov == NULL)
			prov = json_object_new_object();
		oj = cai_options_to_json(opts);
		root = json_object_new_object();
		ok = prov != NULL && oj != NULL && root != NULL &&
			cai_trainer_put_provenance(prov, m->ner ? "sentences" : "rows", t.n_tr_rows,
									   t.has_validation ? t.n_va : 0, t.seed) &&
			cai_json_put(root, "task", json_object_new_string(m->ner ? "ner" : "text_classification")) &&
			cai_json_put(root, "architecture", json_object_new_string("transformer")) &&
			cai_json_put(root, "labels", strtab_json(m->ner ? &m->tt.labels : &m->classes)) &&
			(!m->ner || cai_json_put(root, "types", strtab_json(&m->tt.types))) &&
			cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING)) &&
			cai_json_put(root, "options", cai_json_parse_object(oj)) &&
			cai_json_put(root, "metrics", json_object_get(metrics)) &&
			cai_json_put(root, "provenance", json_object_get(prov));
		st = ok ? tf_serialize(m, root, model, model_len, err) : nomem(err);
	}
	if (st == CAI_OK)
	{
		const char *s;

		/* wall-clock time only in the returned metrics, never in the model bytes */
		if (!cai_json_put(metrics, "seconds", json_object_new_double(cai_trainer_seconds(&tk))) ||
			(s = json_object_to_json_string_ext(metrics, JSON_C_TO_STRING_PLAIN)) == NULL ||
			(*metrics_json = cai_strndup(s, strlen(s))) == NULL)
			st = nomem(err);
	}
	if (st != CAI_OK)
	{
		cai_free(*model);
		*model = NULL;
		*model_len = 0;
	}
	cai_free(oj);
	json_object_put(root);
	json_object_put(metrics);
	json_object_put(prov);
	cai_free(tags);
	cai_free(vtags);
	train_free(&t);
	return st;
}

size_t
cai_tf_train_memory(const cai_options *opts, const cai_train_set *set)
{
	const cai_encoder_bundle *b = set->encoder;
	int			threads = (int) cai_opt_int(opts, "threads");
	int			batch = (int) cai_opt_int(opts, "batch_size");
	int			T = (int) cai_opt_int(opts, "max_length");
	int			per = (batch + threads - 1) / threads;
	size_t		params;
	size_t		acts;
	size_t		rows;
	size_t		total;
	size_t		n_params;

	if (b == NULL || T > b->cfg.max_position_embeddings || threads < 1 ||
		!cai_encoder_param_bytes(&b->cfg, false, &params) ||
		!cai_encoder_act_bytes(&b->cfg, per, T, true, &acts))
		return 0;
	n_params = b->enc->n_params;
	rows = set->sentences != NULL ? (size_t) set->sentences->offsets[set->sentences->n] * 2 :
		set->texts != NULL ? set->texts->n : 0;
	/*
	 * the model's copy, two moments and the best snapshot; per shard its
	 * gradients, activations and batch buffers (about 3 of the last layer's
	 * (per, T, H)); the inputs (ids and labels, at most T per row); the
	 * checkpoint's own bundle is the caller's
	 */
	total = params + 3 * n_params * sizeof(float);
	total += (size_t) threads * (n_params * sizeof(float) + acts +
								 3 * (size_t) per * T * b->cfg.hidden_size * sizeof(float));
	total += rows * (size_t) T * 3 * sizeof(int32_t);
	return total;
}

/* ---------------------------------------------------------------------
 * Gradient check
 */

typedef struct TfProbe
{
	TfTrain		t;
	int32_t    *tags;
	int32_t    *vtags;
	int32_t    *idx;
	int			B;
	int32_t    *rows;			/* word-embedding rows the batch uses */
	size_t		n_rows;
	size_t		off[CAI_GRAD_MAX_TENSORS];	/* where each probed tensor's gradient is: encoder offset, or head */
	bool		in_head[CAI_GRAD_MAX_TENSORS];
	size_t		numel[CAI_GRAD_MAX_TENSORS];
	int			n;
} TfProbe;

static cai_status
probe_loss(void *ctx, float *const *grad, double *loss, cai_error *err)
{
	TfProbe    *p = ctx;
	TfShard    *s = &p->t.sh[0];
	cai_status	st;

	*loss = 0.0;
	cai_encoder_grads_zero(s->g);
	memset(s->hg, 0, sizeof(float) * p->t.n_head);
	if ((st = run_batch(&p->t, p->idx, p->B, 1.0f / (float) p->B, loss, err)) != CAI_OK)
		return st;
	if (grad != NULL)
		for (int i = 0; i < p->n; i++)
		{
			const float *src = p->in_head[i] ? s->hg + p->off[i] : s->g->data + p->off[i];

			memcpy(grad[i], src, sizeof(float) * p->numel[i]);
		}
	return CAI_OK;
}

static void
probe_free(void *ctx)
{
	TfProbe    *p = ctx;

	train_free(&p->t);
	cai_free(p->tags);
	cai_free(p->vtags);
	cai_free(p->idx);
	cai_free(p->rows);
}

/* Add tensor data (n floats at off of the encoder's params, or of the head) to the probe. */
static void
probe_add(TfProbe *p, cai_grad_probe *g, const char *name, bool head, size_t off, size_t n)
{
	int			i = g->n_tensors++;

	g->name[i] = name;
	g->data[i] = (head ? p->t.m->head : p->t.m->b->enc->params) + off;
	g->numel[i] = n;
	p->in_head[i] = head;
	p->off[i] = off;
	p->numel[i] = n;
	p->n = g->n_tensors;
}

cai_status
cai_tf_gradcheck(const cai_options *opts, const cai_train_set *set, int samples, double *max_rel_err,
				 cai_error *err)
{
	TfProbe    *p = cai_calloc(1, sizeof(TfProbe));
	cai_grad_probe g;
	const cai_encoder *enc;
	int			probed[4];
	char		names[4][64];
	cai_status	st;

	*max_rel_err = 0.0;
	if (p == NULL)
		return nomem(err);
	memset(&g, 0, sizeof(g));
	if ((st = train_setup(&p->t, opts, set, true, &p->tags, &p->vtags, err)) != CAI_OK)
	{
		probe_free(p);
		cai_free(p);
		return st;
	}
	enc = p->t.m->b->enc;
	/*
	 * the path from the head into the encoder: the last layer's output
	 * weights and LayerNorm gain, the word embeddings the batch uses, the
	 * first layer's value weights (every tensor of the encoder alone is
	 * checked in test_encoder.c)
	 */
	probed[0] = 0;
	probed[1] = enc->n_tensors - 4;	/* last layer's output.dense.weight */
	probed[2] = enc->n_tensors - 2;	/* its output.LayerNorm.weight */
	probed[3] = 5 + 4;			/* layer 0 attention.self.value.weight */
	p->B = p->t.batch < (int) p->t.tr.n ? p->t.batch : (int) p->t.tr.n;
	p->idx = cai_malloc(sizeof(int32_t) * (size_t) p->B);
	p->rows = cai_malloc(sizeof(int32_t) * ((size_t) p->t.tr.id_off[p->B] + 1));
	if (p->idx == NULL || p->rows == NULL)
		st = nomem(err);
	for (int b = 0; st == CAI_OK && b < p->B; b++)
		p->idx[b] = b;
	/* the distinct word ids of the batch */
	for (int64_t j = 0; st == CAI_OK && j < p->t.tr.id_off[p->B]; j++)
	{
		bool		seen = false;

		for (size_t k = 0; k < p->n_rows && !seen; k++)
			seen = p->rows[k] == p->t.tr.ids[j];
		if (!seen)
			p->rows[p->n_rows++] = p->t.tr.ids[j];
	}
	if (st == CAI_OK)
	{
		for (int k = 0; k < 4; k++)
		{
			int			i = probed[k];

			snprintf(names[k], sizeof(names[k]), "%s", enc->tensors[i].name);
			probe_add(p, &g, names[k], false, enc->tensors[i].offset, enc->tensors[i].numel);
		}
		g.rows[0] = p->rows;
		g.n_rows[0] = p->n_rows;
		g.row_len[0] = p->t.m->H;
		probe_add(p, &g, "head.weight", true, 0, (size_t) p->t.m->K * p->t.m->H);
		probe_add(p, &g, "head.bias", true, (size_t) p->t.m->K * p->t.m->H, (size_t) p->t.m->K);
		if (p->t.m->crf)
			probe_add(p, &g, "crf", true, (size_t) p->t.m->K * p->t.m->H + p->t.m->K, cai_crf_param_count(p->t.m->K));
		g.loss = probe_loss;
		g.free = probe_free;
		g.ctx = p;
		st = cai_gradcheck_compare(&g, samples, max_rel_err, err);
	}
	probe_free(p);
	cai_free(p);
	return st;
}
