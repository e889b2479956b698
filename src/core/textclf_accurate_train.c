/*
 * textclf_accurate_train.c: training of the "accurate" text classification
 * architecture (the model: textclf_accurate.c and
 * textclf_accurate_internal.h): the training rows as embedding bags,
 * length-sorted batches, forward and backward passes, Adam, scoring through
 * the inference code, the ensemble's fast model (cai_textclf_fast_train),
 * the metadata and serialized model, cai_textclf_accurate_train and
 * cai_textclf_accurate_train_memory.
 */
#include "textclf_accurate_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/metrics.h"
#include "cai/ops.h"
#include "cai/optim.h"
#include "modelutil.h"
#include "pool.h"
#include "trainer.h"

/* ---------------------------------------------------------------------- */
/* Training: data preparation                                             */
/* ---------------------------------------------------------------------- */

/* A training batch: rows order[first .. first + n), padded to T tokens. */
typedef struct AccBatch
{
	int32_t		first;
	int32_t		n;
	int32_t		T;
} AccBatch;

/* The buffers of one batch's forward and backward pass. */
typedef struct AccWork
{
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
	/*
	 * gradients: NULL = the slab's; else (slab.numel) a shard's own dense
	 * ones (with threads every shard's bag gradients go straight into the
	 * slab's rows, acc_shard_reduce: the embedding part stays unused)
	 */
	float	   *grad;
} AccWork;

/* The sizes AccWork buffers are allocated for (the largest batch). */
typedef struct AccWorkDims
{
	size_t		acts;			/* floats of the BiLSTM activations */
	size_t		pos;			/* padded positions */
	size_t		rows;
	size_t		ids;			/* bag ids of a batch */
} AccWorkDims;

/* What scoring one evaluation row needs (acc_eval_rows), one per thread. */
typedef struct AccEvalBuf
{
	float	   *scratch;		/* cai_textclf_accurate_infer_floats(longest row) */
	int32_t    *ids;			/* (max bag ids + 1) */
	int32_t    *offs;			/* (longest row + 1) */
	float	   *probs;			/* (L) */
} AccEvalBuf;

/* One shard of a data-parallel step (threads > 1): its rows of the batch and its buffers. */
typedef struct AccShard
{
	AccWork		w;				/* shard 0: unused (it works in AccTrain.w) */
	int32_t    *ids;			/* (max rows) its rows of the batch */
	AccBatch	bt;				/* n: its row count, T: their longest */
	cai_rng		rng;			/* dropout and word dropout, seeded from the training rng every step */
	double		loss;
	int32_t    *emb_rows;		/* (embedding rows) the rows of its class it added to this step */
	int32_t		n_emb_rows;
	double		sumsq;			/* squares of the reduced gradients of its slice and rows (clipping) */
} AccShard;

typedef struct AccTrain
{
	AccParams	p;
	cai_textclf_prep prep;		/* rows, tokens, vocabulary, bucket rows, predictions */
	const cai_word_vectors *vec;	/* pretrained vectors (NULL: none) */
	cai_textclf_vec_match vm;	/* their rows for the vocabulary words */
	bool		freeze;			/* the rows vm initialises stay fixed */
	size_t	   *bag_off;		/* (n_types + 1) */
	int32_t    *bag;			/* embedding rows of each type; the first is the word or UNK row */
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
	/* batch buffers (and each shard's, threads > 1) */
	AccWork		w;
	AccWorkDims wd;
	cai_pool	pool;			/* data-parallel training (threads > 1; pool.n <= 1 otherwise) */
	AccShard   *sh;				/* (n_sh) when pool.n > 1 */
	int			n_sh;
	float		shard_scale;	/* 1 / rows of the batch being split */
	float		step_lr;		/* the optimizer step the shards share out (acc_shard_step) */
	float		clip_f;			/* its clipping factor (1: none) */
	/* epoch 1's first batches during the fast model's training (acc_early_job) */
	bool		early_begun;	/* epoch 1's shuffle done (acc_begin_epoch skips it once) */
	int			early_stop;		/* set by the caller (atomic) */
	size_t		early_max;		/* at most this many (tests) */
	size_t		early_batches;	/* batches done */
	double		early_loss;		/* their loss times rows */
	size_t		early_rows;
	/* evaluation: a buffer per pool thread (one without the pool), rows scored in rounds */
	AccEvalBuf *ev;
	int			n_ev;
	AccNet		ev_net;			/* the current parameters (acc_eval) */
	size_t		ev_i0;
	size_t		ev_i1;
	double	   *ev_nll;			/* (n_eval) each row's negative log-likelihood */
	uint8_t    *ev_acc_ok;		/* (n_eval) 1 where the accurate model alone is right */
	/* the ensemble's fast model */
	uint8_t    *fast_bytes;
	size_t		fast_len;
	cai_model_file *fast_file;	/* fast_bytes read; fast uses its tensors */
	cai_textclf *fast;
	float	   *fast_probs;		/* (n_eval, L) */
	size_t		acc_correct;	/* evaluation rows the accurate model alone gets right */
	size_t		best_acc_correct;
	size_t		fast_correct;
	/* the epochs (trainer hooks) */
	cai_rng		rng;			/* initialization, shuffles, dropout */
	cai_optim_config cfg;
	double		lr0;
	double		dropout;
	double		word_dropout;
	int64_t		step;			/* optimizer steps so far */
	int64_t		steps_total;	/* epochs * batches */
} AccTrain;

static void
acc_work_free(AccWork *w)
{
	cai_free(w->b_ids);
	cai_free(w->b_offs);
	cai_free(w->b_len);
	cai_free(w->b_y);
	cai_free(w->x);
	cai_free(w->dx);
	cai_free(w->h);
	cai_free(w->dh);
	cai_free(w->feat);
	cai_free(w->featd);
	cai_free(w->dfeat);
	cai_free(w->dfeatd);
	cai_free(w->mask);
	cai_free(w->am);
	cai_free(w->logits);
	cai_free(w->dlogits);
	cai_free(w->acts);
	cai_free(w->grad);
}

/*
 * The buffers of w for batches up to d (b_ids: d->ids, so that it never
 * grows on a pool thread); with own_grad, gradients of its own.
 */
static cai_status
acc_work_alloc(const AccTrain *t, const AccWorkDims *d, bool own_grad, AccWork *w, cai_error *err)
{
	const size_t D = (size_t) t->p.dim;
	const size_t H = (size_t) t->p.hidden;
	const size_t P = d->pos;
	const size_t M = d->rows;

	w->acts = cai_malloc(sizeof(float) * (d->acts + 1));
	w->b_offs = cai_malloc(sizeof(int32_t) * (P + 1));
	w->b_len = cai_malloc(sizeof(int32_t) * M);
	w->b_y = cai_malloc(sizeof(int32_t) * M);
	w->x = cai_malloc(sizeof(float) * P * D);
	w->dx = cai_malloc(sizeof(float) * P * D);
	w->h = cai_malloc(sizeof(float) * P * 2 * H);
	w->dh = cai_malloc(sizeof(float) * P * 2 * H);
	w->feat = cai_malloc(sizeof(float) * M * 4 * H);
	w->featd = cai_malloc(sizeof(float) * M * 4 * H);
	w->dfeat = cai_malloc(sizeof(float) * M * 4 * H);
	w->dfeatd = cai_malloc(sizeof(float) * M * 4 * H);
	w->mask = cai_malloc(M * 4 * H);
	w->am = cai_malloc(sizeof(int32_t) * M * 2 * H);
	w->logits = cai_malloc(sizeof(float) * M * (size_t) t->prep.L);
	w->dlogits = cai_malloc(sizeof(float) * M * (size_t) t->prep.L);
	if (w->acts == NULL || w->b_offs == NULL || w->b_len == NULL || w->b_y == NULL ||
		w->x == NULL || w->dx == NULL || w->h == NULL || w->dh == NULL || w->feat == NULL ||
		w->featd == NULL || w->dfeat == NULL || w->dfeatd == NULL || w->mask == NULL ||
		w->am == NULL || w->logits == NULL || w->dlogits == NULL)
		return NOMEM(err);
	if (!own_grad)
		return CAI_OK;
	w->b_ids = cai_malloc(sizeof(int32_t) * (d->ids + 1));
	w->b_ids_cap = d->ids + 1;
	w->grad = cai_calloc(t->slab.numel, sizeof(float));
	if (w->b_ids == NULL || w->grad == NULL)
		return NOMEM(err);
	return CAI_OK;
}

static void
acc_train_free(AccTrain *t)
{
	cai_pool_stop(&t->pool);
	cai_textclf_prep_free(&t->prep);
	cai_textclf_vec_match_free(&t->vm);
	cai_free(t->bag_off);
	cai_free(t->bag);
	cai_free(t->order);
	cai_free(t->len_key);
	cai_free(t->batches);
	cai_free(t->batch_perm);
	cai_slab_free(&t->slab);
	cai_free(t->best);
	acc_work_free(&t->w);
	for (int i = 0; t->sh != NULL && i < t->n_sh; i++)
	{
		acc_work_free(&t->sh[i].w);
		cai_free(t->sh[i].ids);
		cai_free(t->sh[i].emb_rows);
	}
	cai_free(t->sh);
	for (int i = 0; t->ev != NULL && i < t->n_ev; i++)
	{
		cai_free(t->ev[i].scratch);
		cai_free(t->ev[i].ids);
		cai_free(t->ev[i].offs);
		cai_free(t->ev[i].probs);
	}
	cai_free(t->ev);
	cai_free(t->ev_nll);
	cai_free(t->ev_acc_ok);
	cai_free(t->fast_bytes);
	cai_textclf_free(t->fast);
	cai_model_file_free(t->fast_file);
	cai_free(t->fast_probs);
}

_Static_assert(ACC_NORM_MAX == TEXTCLF_NORM_MAX, "training normalizes, and loading checks words, with TEXTCLF_NORM_MAX bytes");

/*
 * Bucket rows (character n-gram buckets of the types seen in training rows)
 * and the embedding bag of every type, as inference builds it.
 */
static cai_status
acc_prepare_bags(AccTrain *t, cai_error *err)
{
	cai_textclf_types   *tt = &t->prep.types;
	size_t		total = 0;
	uint64_t	cg[ACC_NGRAMS_MAX];
	int32_t		k = 0;

	t->bag_off = cai_calloc(tt->n + 1, sizeof(size_t));
	t->prep.bmap = cai_malloc(sizeof(int32_t) * (size_t) t->p.buckets);
	if (t->bag_off == NULL || t->prep.bmap == NULL)
		return NOMEM(err);

	/* bucket rows: the buckets of training types, in increasing order */
	memset(t->prep.bmap, 0xff, sizeof(int32_t) * (size_t) t->p.buckets);
	for (size_t i = 0; i < tt->n; i++)
	{
		int			nc = cai_textclf_char_ngrams(t->p.minn, t->p.maxn, tt->arena + tt->off[i], tt->len[i], cg);

		total += 1 + (size_t) nc;
		t->bag_off[i + 1] = total;
		if (tt->count[i] > 0)
			for (int j = 0; j < nc; j++)
				t->prep.bmap[cai_textclf_char_bucket(cg[j], t->p.buckets)] = 0;
	}
	for (uint32_t b = 0; b < t->p.buckets; b++)
		if (t->prep.bmap[b] == 0)
			t->prep.bmap[b] = k++;
	t->prep.K = k;
	if ((int64_t) t->prep.V + 1 + k >= INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many embedding rows");

	t->bag = cai_malloc(sizeof(int32_t) * (total + 1));
	if (t->bag == NULL)
		return NOMEM(err);
	total = 0;
	for (size_t i = 0; i < tt->n; i++)
	{
		int			nc = cai_textclf_char_ngrams(t->p.minn, t->p.maxn, tt->arena + tt->off[i], tt->len[i], cg);

		t->bag_off[i] = total;
		t->bag[total++] = t->prep.type_vocab[i] >= 0 ? t->prep.type_vocab[i] : t->prep.V;
		for (int j = 0; j < nc; j++)
		{
			int32_t		row = t->prep.bmap[cai_textclf_char_bucket(cg[j], t->p.buckets)];

			if (row >= 0)
				t->bag[total++] = t->prep.V + 1 + row;
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
	for (size_t i = t->prep.tok_off[r]; i < t->prep.tok_off[r + 1]; i++)
	{
		int32_t		ty = t->prep.tok_type[i];

		for (size_t j = t->bag_off[ty]; j < t->bag_off[ty + 1]; j++)
			ids[n++] = t->bag[j];
		offs[i - t->prep.tok_off[r] + 1] = (int32_t) n;
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

	for (size_t i = 0; i < t->prep.rows.n_tr; i++)
		if (t->len_key[i] > max_len)
			max_len = t->len_key[i];
	cnt = cai_calloc((size_t) max_len + 2, sizeof(size_t));
	tmp = cai_malloc(sizeof(int32_t) * (t->prep.rows.n_tr + 1));
	if (cnt == NULL || tmp == NULL)
	{
		cai_free(cnt);
		cai_free(tmp);
		return NOMEM(err);
	}
	for (size_t i = 0; i < t->prep.rows.n_tr; i++)
		cnt[t->len_key[t->order[i]] + 1]++;
	for (int32_t l = 0; l <= max_len; l++)
		cnt[l + 1] += cnt[l];
	for (size_t i = 0; i < t->prep.rows.n_tr; i++)
		tmp[cnt[t->len_key[t->order[i]]]++] = t->order[i];
	memcpy(t->order, tmp, sizeof(int32_t) * t->prep.rows.n_tr);
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
	cai_textclf_accurate_net_view(net, views, t->p.dim, t->p.hidden, t->prep.L, t->prep.V + 1 + t->prep.K);
}

/*
 * freeze_vectors: the word rows that vectors initialised leave the batch's
 * touched rows, their gradient zeroed, so clipping does not count them and
 * the lazy optimizer step (cai_optim_step_rows) never moves them: they stay
 * bit-equal to the vectors.  acc_drop_frozen drops them from a list of rows
 * (flags: the row set's) and returns the count left; with threads each one
 * drops them from its class of rows (acc_shard_reduce).
 */
static int32_t
acc_drop_frozen(const AccTrain *t, float *g, uint8_t *flags, int32_t *list, int32_t count)
{
	const size_t D = (size_t) t->p.dim;
	int32_t		w = 0;

	for (int32_t i = 0; i < count; i++)
	{
		int32_t		r = list[i];

		if (r < t->prep.V && t->vm.row[r] >= 0)
		{
			memset(g + (size_t) r * D, 0, sizeof(float) * D);
			flags[r] = 0;
		}
		else
			list[w++] = r;
	}
	return w;
}

static void
acc_drop_frozen_rows(AccTrain *t)
{
	cai_rowset *rs = cai_slab_rowset(&t->slab, t->pi[0]);

	rs->count = acc_drop_frozen(t, cai_slab_grad(&t->slab, t->pi[0]), rs->flags, rs->list, rs->count);
}

/* Gradient k (of t->pi) that w writes: the slab's, or w's own. */
static float *
acc_work_grad(AccTrain *t, AccWork *w, int k)
{
	if (w->grad == NULL)
		return cai_slab_grad(&t->slab, t->pi[k]);
	return w->grad + t->slab.params[t->pi[k]].offset;
}

/*
 * Zero w's gradients: one thread, the slab's (cai_slab_zero_grad); with
 * threads, the dense ones w writes (the slab's for shard 0, else its own):
 * each thread zeroes its class of embedding rows in acc_shard_reduce.
 */
static void
acc_work_zero_grad(AccTrain *t, AccWork *w)
{
	if (t->n_sh <= 1)
	{
		cai_slab_zero_grad(&t->slab);
		return;
	}
	for (int k = 1; k < ACC_N_FLOAT_TENSORS; k++)
		memset(acc_work_grad(t, w, k), 0, sizeof(float) * t->slab.params[t->pi[k]].numel);
}

/*
 * Forward, backward and gradients of the batch rows[0 .. bt->n), padded to
 * bt->T, in w (the gradients zeroed first); *loss gets the batch's loss
 * times scale * bt->n (scale 1 / bt->n: the mean loss; a shard of a batch
 * of B rows uses 1 / B, so that the shards' gradients and losses add up to
 * the batch's).
 */
static cai_status
acc_batch_step(AccTrain *t, AccWork *w, const AccBatch *bt, const int32_t *rows, float dropout,
			   float word_dropout, cai_rng *rng, float scale, double *loss, cai_error *err)
{
	const int	D = t->p.dim;
	const int	H = t->p.hidden;
	const int	L = t->prep.L;
	const int	B = bt->n;
	const int	T = bt->T > 0 ? bt->T : 1;
	const int32_t R = t->prep.V + 1 + t->prep.K;
	const int32_t UNK = t->prep.V;
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
		size_t		nt = t->prep.tok_off[r + 1] - t->prep.tok_off[r];
		size_t		need = 0;

		for (size_t i = t->prep.tok_off[r]; i < t->prep.tok_off[r + 1]; i++)
			need += t->bag_off[t->prep.tok_type[i] + 1] - t->bag_off[t->prep.tok_type[i]];
		if (n_ids + need > w->b_ids_cap)
		{
			size_t		nc = w->b_ids_cap * 2 > n_ids + need ? w->b_ids_cap * 2 : n_ids + need;

			if (!cai_grow_array((void **) &w->b_ids, sizeof(int32_t), w->b_ids_cap, nc))
				return NOMEM(err);
			w->b_ids_cap = nc;
		}
		w->b_len[b] = (int32_t) nt;
		w->b_y[b] = t->prep.rows.lab[r];
		for (size_t i = 0; i < (size_t) T; i++)
		{
			w->b_offs[(size_t) b * T + i] = (int32_t) n_ids;
			if (i < nt)
			{
				int32_t		ty = t->prep.tok_type[t->prep.tok_off[r] + i];
				size_t		j0 = t->bag_off[ty];

				for (size_t j = j0; j < t->bag_off[ty + 1]; j++)
					w->b_ids[n_ids++] = t->bag[j];
				/* word dropout: the UNK row instead of the word's */
				if (word_dropout > 0 && t->bag[j0] != UNK && cai_rng_uniform(rng) < word_dropout)
					w->b_ids[w->b_offs[(size_t) b * T + i]] = UNK;
			}
		}
	}
	w->b_offs[(size_t) B * T] = (int32_t) n_ids;

	/* forward */
	if ((st = cai_embedding_bag_mean_forward(w->x, net.emb, w->b_ids, w->b_offs, B * T, R, D, err)) != CAI_OK)
		return st;
	if ((st = cai_bilstm_forward(&net.fw, &net.bw, w->x, w->b_len, B, T, D, H, w->h, w->acts, err)) != CAI_OK)
		return st;
	for (int b = 0; b < B; b++)
	{
		float	   *hb = w->h + (size_t) b * T * 2 * H;
		float	   *fb = w->feat + (size_t) b * 4 * H;

		cai_maxpool_forward(fb, w->am + (size_t) b * 2 * H, hb, w->b_len[b], 2 * H);
		cai_meanpool_forward(fb + 2 * H, hb, w->b_len[b], 2 * H);
	}
	if ((st = cai_dropout_forward(w->featd, w->mask, w->feat, (size_t) B * 4 * H, dropout, true, rng, err)) != CAI_OK)
		return st;
	cai_linear_forward(w->logits, w->featd, net.out_w, net.out_b, B, 4 * H, L);
	if ((st = cai_softmax_xent_forward(w->logits, loss, w->logits, w->b_y, B, L, scale, err)) != CAI_OK)
		return st;

	/* backward */
	acc_work_zero_grad(t, w);
	memset(w->dlogits, 0, sizeof(float) * (size_t) B * L);
	cai_softmax_xent_backward(w->dlogits, w->logits, w->b_y, B, L, scale);
	memset(w->dfeatd, 0, sizeof(float) * (size_t) B * 4 * H);
	cai_linear_backward(w->dfeatd, acc_work_grad(t, w, 7), acc_work_grad(t, w, 8),
						w->dlogits, w->featd, net.out_w, B, 4 * H, L);
	memset(w->dfeat, 0, sizeof(float) * (size_t) B * 4 * H);
	cai_dropout_backward(w->dfeat, w->dfeatd, w->mask, (size_t) B * 4 * H, dropout, true);
	memset(w->dh, 0, sizeof(float) * (size_t) B * T * 2 * H);
	for (int b = 0; b < B; b++)
	{
		float	   *dhb = w->dh + (size_t) b * T * 2 * H;
		float	   *dfb = w->dfeat + (size_t) b * 4 * H;

		cai_maxpool_backward(dhb, dfb, w->am + (size_t) b * 2 * H, w->b_len[b], 2 * H);
		cai_meanpool_backward(dhb, dfb + 2 * H, w->b_len[b], 2 * H);
	}
	gfw.w_ih = acc_work_grad(t, w, 1);
	gfw.w_hh = acc_work_grad(t, w, 2);
	gfw.b = acc_work_grad(t, w, 3);
	gbw.w_ih = acc_work_grad(t, w, 4);
	gbw.w_hh = acc_work_grad(t, w, 5);
	gbw.b = acc_work_grad(t, w, 6);
	memset(w->dx, 0, sizeof(float) * (size_t) B * T * D);
	if ((st = cai_bilstm_backward(&net.fw, &net.bw, &gfw, &gbw, w->b_len, B, T, D, H,
								  w->dh, w->dx, w->acts, err)) != CAI_OK)
		return st;
	/* with threads, acc_shard_reduce adds every shard's dx to the rows */
	if (t->n_sh <= 1)
		cai_embedding_bag_mean_backward(acc_work_grad(t, w, 0), cai_slab_rowset(&t->slab, t->pi[0]),
										w->dx, w->b_ids, w->b_offs, B * T, R, D);
	return CAI_OK;
}

/*
 * Score evaluation rows [i0, i1) (from the split's row from) with buffer
 * ev: each row's prediction, negative log-likelihood and whether the
 * accurate model alone is right.
 */
static cai_status
acc_eval_rows(AccTrain *t, AccEvalBuf *ev, size_t i0, size_t i1, cai_error *err)
{
	cai_status	st;

	for (size_t i = i0; i < i1; i++)
	{
		size_t		r = cai_textclf_eval_row(&t->prep, i);
		int			T = (int) (t->prep.tok_off[r + 1] - t->prep.tok_off[r]);

		acc_row_bags(t, r, ev->ids, ev->offs);
		if ((st = cai_textclf_accurate_net_infer(&t->ev_net, ev->ids, ev->offs, T, ev->scratch,
												 ev->probs, err)) != CAI_OK)
			return st;
		t->ev_acc_ok[i] = cai_argmax(ev->probs, t->prep.L) == t->prep.rows.lab[r];
		if (t->fast != NULL)
		{
			const float *f = t->fast_probs + i * (size_t) t->prep.L;

			for (int c = 0; c < t->prep.L; c++)
				ev->probs[c] = 0.5f * (ev->probs[c] + f[c]);
		}
		t->prep.pred[i] = cai_argmax(ev->probs, t->prep.L);
		t->ev_nll[i] = -log(fmax((double) ev->probs[t->prep.rows.lab[r]], 1e-30));
	}
	return CAI_OK;
}

/* Job: shard s's slice of this round's evaluation rows. */
static cai_status
acc_eval_job(void *ctx, int s, cai_error *err)
{
	AccTrain   *t = ctx;
	size_t		m = t->ev_i1 - t->ev_i0;

	return acc_eval_rows(t, &t->ev[s], t->ev_i0 + m * (size_t) s / (size_t) t->n_ev,
						 t->ev_i0 + m * (size_t) (s + 1) / (size_t) t->n_ev, err);
}

/* Evaluation rows scored in a round (per thread), between cancellation checks. */
#define ACC_EVAL_ROUND 256

/*
 * Predict the evaluation rows with the current parameters through the
 * inference code, on the pool's threads when there is one (the rows'
 * results do not depend on which thread scores them; the loss is summed in
 * row order).  CAI_ERR_CANCELLED when the callback cancels.
 */
static cai_status
acc_eval(AccTrain *t, cai_trainer *tk, size_t n, double *mean_loss, cai_error *err)
{
	const size_t round = ACC_EVAL_ROUND * (size_t) t->n_ev;
	double		loss = 0.0;
	cai_status	st;

	acc_train_net(t, &t->ev_net);
	for (size_t i0 = 0; i0 < n; i0 += round)
	{
		if (i0 > 0 && !cai_trainer_tick(tk, tk->p.fraction))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		t->ev_i0 = i0;
		t->ev_i1 = n - i0 < round ? n : i0 + round;
		if (t->n_ev > 1)
			st = cai_pool_run(&t->pool, acc_eval_job, t, err);
		else
			st = acc_eval_rows(t, &t->ev[0], t->ev_i0, t->ev_i1, err);
		if (st != CAI_OK)
			return st;
	}
	t->acc_correct = 0;
	for (size_t i = 0; i < n; i++)
	{
		t->acc_correct += t->ev_acc_ok[i];
		loss += t->ev_nll[i];
	}
	*mean_loss = n > 0 ? loss / (double) n : 0.0;
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Training: entry points                                                 */
/* ---------------------------------------------------------------------- */

static cai_status
acc_params_from_options(const cai_options *o, const cai_word_vectors *vec, AccParams *ap, cai_error *err)
{
	cai_status	st;

	if ((st = cai_textclf_vector_dim(o, vec, &ap->dim, err)) != CAI_OK)
		return st;
	ap->hidden = ap->dim;
	ap->minn = (int) cai_opt_int(o, "minn");
	ap->maxn = (int) cai_opt_int(o, "maxn");
	/*
	 * With word vectors the character n-grams are off unless the user sets
	 * them: a token's input is the mean of its rows, and a dozen n-gram rows
	 * averaged with the word's pretrained row drown it (SST-2, 1,000
	 * labeled rows, GloVe: 72.9% validation accuracy with them, 79.6%
	 * without; all 60,614 rows: within a point either way, see
	 * bench/results-vectors.md).  Words the vectors lack keep their own row
	 * or the unknown word's; the ensemble's fast model keeps its n-grams.
	 */
	if (vec != NULL && vec->n > 0 && !cai_opt_is_set(o, "minn") && !cai_opt_is_set(o, "maxn"))
		ap->minn = ap->maxn = 0;
	ap->max_tokens = (int) cai_opt_int(o, "max_tokens");
	ap->buckets = (uint32_t) cai_opt_int(o, "buckets");
	if (ap->dim < 1 || ap->dim > ACC_MAX_DIM)
		return cai_error_set(err, CAI_ERR_INVALID, "dimensions must be 1 to %d", ACC_MAX_DIM);
	return cai_textclf_check_token_options(ap->minn, ap->maxn, ap->max_tokens, ACC_BYTES_PER_TOKEN,
										   ap->buckets, ACC_MAX_BUCKETS, err);
}

/*
 * Deliberately high estimate from the text bytes alone (see the fast
 * architecture's): ~4 bytes per token, distinct words ~ 40 sqrt(tokens),
 * each distinct word bringing 2 new character n-grams per n-gram length.
 */
size_t
cai_textclf_accurate_train_memory(const cai_options *opts, const cai_textclf_data *train, int n_labels,
								  const cai_word_vectors *vec)
{
	AccParams	ap;
	size_t		tokens = 0;
	size_t		bytes = 0;
	size_t		types,
				rows,
				nchar,
				params,
				acts = 0,
				total;
	int			bsz;
	int			threads;

	if (opts == NULL || train == NULL || n_labels < 1 || acc_params_from_options(opts, vec, &ap, NULL) != CAI_OK)
		return 0;
	threads = (int) cai_opt_int(opts, "threads");
	bsz = (int) cai_opt_int(opts, "batch_size");
	cai_textclf_estimate_tokens(train, ap.max_tokens, ACC_BYTES_PER_TOKEN, 0, &bytes, &tokens);
	nchar = ap.minn > 0 ? (size_t) (ap.maxn - ap.minn + 1) : 0;
	types = (size_t) (40.0 * sqrt((double) tokens)) + 1;
	if (types > tokens + 1)
		types = tokens + 1;
	rows = types + 1 + (nchar * 2 * types < ap.buckets ? nchar * 2 * types : ap.buckets);
	if (vec != NULL && vec->n > 0)	/* the vector words the vocabulary may gain (cai_textclf_extend_vocab) */
		rows += (size_t) cai_opt_int(opts, "vector_words") < vec->n ? (size_t) cai_opt_int(opts, "vector_words") : vec->n;
	params = rows * (size_t) ap.dim +
		2 * cai_lstm_param_count(ap.dim, ap.hidden) + (size_t) n_labels * (4 * (size_t) ap.hidden + 1);
	/* data, grad, m, v, best copy, row sets */
	total = 5 * params * sizeof(float) + rows * 5;
	{
		int			T = ap.max_tokens < ACC_TOKEN_BUDGET ? ap.max_tokens : ACC_TOKEN_BUDGET;
		int			B = ACC_TOKEN_BUDGET / T > bsz ? ACC_TOKEN_BUDGET / T : bsz;
		size_t		work;

		if (B * T > 4 * ACC_TOKEN_BUDGET)
			B = 4 * ACC_TOKEN_BUDGET / T;
		if (cai_bilstm_acts_size(B, T, ap.dim, ap.hidden, &acts, NULL) != CAI_OK)
			acts = 0;
		work = acts * sizeof(float) +
			(size_t) B * T * (2 * (size_t) ap.dim + 4 * (size_t) ap.hidden) * sizeof(float);
		total += work;
		/*
		 * threads > 1: every other thread's batch buffers and gradients,
		 * every thread's bag ids of a batch (batch_size
		 * rows of at most max_tokens tokens of 1 + ACC_NGRAMS_MAX ids) and
		 * list of embedding rows, and the pool
		 */
		if (threads > 1)
			total += (size_t) (threads - 1) * (work + params * sizeof(float)) +
				(size_t) threads * ((size_t) bsz * (size_t) ap.max_tokens * (1 + ACC_NGRAMS_MAX) * sizeof(int32_t) +
									rows * sizeof(int32_t) +
									(size_t) B * sizeof(int32_t) + sizeof(AccShard) + sizeof(cai_error) + 64);
	}
	total += tokens * (sizeof(int32_t) + (1 + 5 * nchar) * sizeof(int32_t)) + bytes;
	total += types * (64 + (1 + 5 * nchar) * sizeof(int32_t));
	total += (size_t) ap.buckets * sizeof(int32_t);
	total += train->n * (6 * sizeof(int32_t) + sizeof(char *) + 2 * sizeof(size_t));
	total += vec != NULL && vec->n > 0 ? types * sizeof(int32_t) : 0;	/* the vectors matched */
	total += params * sizeof(float) + bytes / 2;	/* the serialized model */
	return total;
}

/* Metadata JSON text (cai_malloc'ed) or NULL on out of memory. */
static char *
acc_metadata(const AccTrain *t, const cai_options *opts, const char *const *label_names,
			 json_object *metrics, json_object *prov, uint64_t fingerprint, json_object *train_opts)
{
	json_object *aj = cai_textclf_feature_json(ACC_FEATURE_VERSION, fingerprint, t->p.dim);

	if (aj != NULL &&
		!(cai_json_put(aj, "hidden", json_object_new_int(t->p.hidden)) &&
		  cai_textclf_put_token_options(aj, t->p.minn, t->p.maxn, t->p.max_tokens, t->p.buckets) &&
		  cai_json_put(aj, "vocab_size", json_object_new_int(t->prep.V)) &&
		  cai_json_put(aj, "bucket_rows", json_object_new_int(t->prep.K)) &&
		  cai_json_put(aj, "ensemble_fast", json_object_new_int(t->fast != NULL)) &&
		  cai_json_put(aj, "training", json_object_get(train_opts))))
	{
		json_object_put(aj);
		aj = NULL;
	}
	return cai_textclf_metadata("accurate", opts, t->vm.row != NULL ? t->p.dim : 0, label_names, t->prep.L, aj,
								metrics, prov);
}

static cai_status
acc_serialize(AccTrain *t, const char *meta, uint8_t **model, size_t *model_len, cai_error *err)
{
	cai_tensor	ts[6 + ACC_N_FLOAT_TENSORS];
	cai_textclf_tables tab;
	AccTensorSpec specs[ACC_N_FLOAT_TENSORS];
	int			nt = 0;
	cai_status	st;

	if ((st = cai_textclf_pack_tables(&t->prep.types, t->prep.vitems, t->prep.V, ACC_SEED_WORD, t->prep.bmap, t->p.buckets,
									  t->prep.K, "accurate", ts, &nt, &tab, err)) != CAI_OK)
		goto done;
	cai_textclf_accurate_tensor_specs((int64_t) t->prep.V + 1 + t->prep.K, t->p.dim, t->p.hidden, t->prep.L, specs);
	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
		cai_textclf_tensor(&ts[nt++], specs[i].name, CAI_F32, specs[i].ndim, specs[i].shape[0],
						   specs[i].shape[1], t->best + t->slab.params[t->pi[i]].offset);
	if (t->fast != NULL)
		cai_textclf_tensor(&ts[nt++], "accurate.fast_model", CAI_U8, 1, (int64_t) t->fast_len, 0,
						   t->fast_bytes);
	st = cai_format_write(meta, ts, nt, model, model_len, err);
done:
	cai_textclf_tables_free(&tab);
	return st;
}

/* Progress of the fast model's training: ticks only (its epochs are not ours). */
static bool
acc_fast_progress(void *ctx, const cai_progress *p)
{
	return cai_trainer_tick((cai_trainer *) ctx, 0.0);
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
			   const cai_textclf_data *train, const cai_textclf_data *valid, cai_trainer *tk,
			   cai_error *err)
{
	const size_t n_eval = t->prep.n_eval;
	char	   *buf = NULL;		/* a row's text, with token ids */
	size_t		buf_cap = 0;
	char		js[512];
	cai_options *fo = NULL;
	json_object *fprov;
	char	   *fmetrics = NULL;
	cai_error	e2;
	cai_status	st;

	snprintf(js, sizeof(js),
			 "{\"architecture\": \"fast\", \"seed\": %" PRId64 ", \"validation_seed\": %" PRId64 ", "
			 "\"validation_fraction\": %.17g, "
			 "\"min_count\": %" PRId64 ", \"max_tokens\": %d, \"minn\": %d, \"maxn\": %d, "
			 "\"buckets\": %u, \"patience\": %" PRId64 ", \"vector_words\": %" PRId64 "}",
			 cai_opt_int(opts, "seed"), cai_opt_int(opts, "validation_seed"), cai_opt_float(opts, "validation_fraction"),
			 cai_opt_int(opts, "min_count"), t->p.max_tokens,
			 (int) cai_opt_int(opts, "minn"), (int) cai_opt_int(opts, "maxn"),
			 t->p.buckets, cai_opt_int(opts, "patience"), cai_opt_int(opts, "vector_words"));
	if ((st = cai_options_parse(cai_textclf_fast_option_defs, cai_textclf_fast_n_option_defs,
								js, &fo, err)) != CAI_OK)
		return st;
	/* the fast model's own provenance, which its training fills in */
	if ((fprov = json_object_new_object()) == NULL)
	{
		cai_options_free(fo);
		return NOMEM(err);
	}
	st = cai_textclf_fast_train(fo, label_names, t->prep.L, train, valid, t->vec, fprov, acc_fast_progress, tk,
								&t->fast_bytes, &t->fast_len, &fmetrics, &e2);
	json_object_put(fprov);
	cai_options_free(fo);
	cai_free(fmetrics);
	if (st != CAI_OK)
		return cai_error_set(err, st, "%s", e2.msg);
	if ((st = cai_format_read(t->fast_bytes, t->fast_len, &t->fast_file, err)) != CAI_OK)
		return st;
	/* the loaded model uses the model file's tensors: keep it until acc_train_free */
	if ((st = cai_textclf_load_fast(t->fast_file, &t->fast, err)) != CAI_OK)
		return st;
	t->fast_probs = cai_malloc(sizeof(float) * (n_eval * (size_t) t->prep.L + 1));
	if (t->fast_probs == NULL)
		return NOMEM(err);
	t->fast_correct = 0;
	for (size_t i = 0; i < n_eval; i++)
	{
		size_t		r = cai_textclf_eval_row(&t->prep, i);
		float	   *f = t->fast_probs + i * (size_t) t->prep.L;
		const char *text;
		size_t		len;

		if ((i & 255) == 255 && !cai_trainer_tick(tk, 0.0))
			st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		else if (!cai_textclf_row_text(&t->prep.rows, r, &buf, &buf_cap, &text, &len))
			st = NOMEM(err);
		else
			st = cai_textclf_predict(t->fast, text, len, f, err);
		if (st != CAI_OK)
			break;
		t->fast_correct += cai_argmax(f, t->prep.L) == t->prep.rows.lab[r];
	}
	cai_free(buf);
	return st;
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
	cai_textclf_accurate_tensor_specs((int64_t) t->prep.V + 1 + t->prep.K, t->p.dim, t->p.hidden, t->prep.L, specs);
	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
		if ((st = cai_slab_declare(&t->slab, specs[i].name, specs[i].ndim, specs[i].shape,
								   &t->pi[i], err)) != CAI_OK)
			return st;
	if ((st = cai_slab_set_sparse(&t->slab, t->pi[0], err)) != CAI_OK ||
		(st = cai_slab_alloc(&t->slab, true, cai_optim_state_slabs(cfg), 0, err)) != CAI_OK)
		return st;
	cai_init_uniform(cai_slab_data(&t->slab, t->pi[0]), spec_numel(&specs[0]), 0.1f, rng);

	/*
	 * Pretrained vectors replace the random rows of their words, unscaled
	 * (as NER training and fastText take them; for freeze_vectors the rows
	 * are then the vectors bit for bit).  A token's input is the mean of its
	 * word row and its character n-gram rows (about a dozen, U(-0.1, 0.1)):
	 * vectors scaled down to that range would be buried under them, while
	 * GloVe's entries (|x| ~ 0.4) keep the word's signal above them.  Adam's
	 * steps do not grow with the rows' scale, so fine-tuning moves the
	 * vectors gently (lr 0.003 against entries of 0.4).
	 */
	cai_textclf_copy_vectors(&t->vm, t->prep.V, t->vec, cai_slab_data(&t->slab, t->pi[0]));
	fw.w_ih = cai_slab_data(&t->slab, t->pi[1]);
	fw.w_hh = cai_slab_data(&t->slab, t->pi[2]);
	fw.b = cai_slab_data(&t->slab, t->pi[3]);
	bw.w_ih = cai_slab_data(&t->slab, t->pi[4]);
	bw.w_hh = cai_slab_data(&t->slab, t->pi[5]);
	bw.b = cai_slab_data(&t->slab, t->pi[6]);
	cai_lstm_init(&fw, t->p.dim, t->p.hidden, rng);
	cai_lstm_init(&bw, t->p.dim, t->p.hidden, rng);
	cai_init_xavier(cai_slab_data(&t->slab, t->pi[7]), spec_numel(&specs[7]), 4 * t->p.hidden, t->prep.L, rng);
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

	t->batches = cai_malloc(sizeof(AccBatch) * (t->prep.rows.n_tr + 1));
	t->batch_perm = cai_malloc(sizeof(int32_t) * (t->prep.rows.n_tr + 1));
	if (t->batches == NULL || t->batch_perm == NULL)
		return NOMEM(err);
	t->n_batches = 0;
	*max_ids = 0;
	while (i < t->prep.rows.n_tr)
	{
		AccBatch   *b = &t->batches[t->n_batches];
		size_t		acts;
		cai_status	st;

		b->first = (int32_t) i;
		b->n = 0;
		b->T = 1;
		while (i < t->prep.rows.n_tr && b->n < batch_size)
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
	for (size_t r = 0; r < t->prep.rows.n_tr + t->prep.rows.n_va; r++)
	{
		size_t		n = 0;

		for (size_t j = t->prep.tok_off[r]; j < t->prep.tok_off[r + 1]; j++)
			n += t->bag_off[t->prep.tok_type[j] + 1] - t->bag_off[t->prep.tok_type[j]];
		if (n > *max_ids)
			*max_ids = n;
	}
	t->wd.acts = max_acts;
	t->wd.pos = (size_t) max_pos;
	t->wd.rows = (size_t) max_rows;
	t->wd.ids = (size_t) max_rows * *max_ids;	/* no batch row has more */
	return acc_work_alloc(t, &t->wd, false, &t->w, err);
}

/*
 * The training data as batches, and the initial parameters: rows, tokens
 * and vocabulary (cai_textclf_prepare), the bags of every type, the
 * training rows sorted by length, the batches (*max_ids: the most bag ids
 * of a row) and the parameters from the seeded rng.
 */
static cai_status
acc_prepare(AccTrain *t, const cai_options *opts, int n_labels, const cai_textclf_data *train,
			const cai_textclf_data *valid, cai_trainer *tk, size_t *max_ids, cai_error *err)
{
	cai_textclf_token_rule rule = acc_token_rule(&t->p);
	size_t		n_tr;
	cai_status	st;

	if ((st = cai_textclf_prepare(opts, n_labels, train, valid, &rule, tk, &t->prep, err)) != CAI_OK ||
		(t->vec != NULL &&
		 (st = cai_textclf_extend_vocab(&t->prep, &rule, t->vec, cai_opt_int(opts, "vector_words"), err)) != CAI_OK) ||
		(st = cai_textclf_match_vectors(&t->prep, &rule, t->vec, NULL, &t->vm, err)) != CAI_OK ||
		(st = acc_prepare_bags(t, err)) != CAI_OK)
		return st;
	n_tr = t->prep.rows.n_tr;
	t->order = cai_malloc(sizeof(int32_t) * (n_tr + 1));
	t->len_key = cai_malloc(sizeof(int32_t) * (n_tr + 1));
	if (t->order == NULL || t->len_key == NULL)
		return NOMEM(err);
	for (size_t r = 0; r < n_tr; r++)
	{
		t->order[r] = (int32_t) r;
		t->len_key[r] = (int32_t) (t->prep.tok_off[r + 1] - t->prep.tok_off[r]);
	}
	cai_rng_seed(&t->rng, (uint64_t) cai_opt_int(opts, "seed"));
	if ((st = acc_sort_by_length(t, err)) != CAI_OK ||
		(st = acc_make_batches(t, (int) cai_opt_int(opts, "batch_size"), max_ids, err)) != CAI_OK)
		return st;
	return acc_init_params(t, &t->cfg, &t->rng, err);
}

/* ---------------------------------------------------------------------- */
/* Training: the trainer's hooks (trainer.h)                              */
/* ---------------------------------------------------------------------- */

/* Reshuffle rows within each length, then the batch order. */
static cai_status
acc_begin_epoch(void *ctx, int epoch, cai_error *err)
{
	AccTrain   *t = ctx;
	cai_status	st;

	if (t->early_begun)
	{
		/* epoch 1 began during the fast model's training (cai_textclf_accurate_train) */
		t->early_begun = false;
		return CAI_OK;
	}
	cai_rng_shuffle(&t->rng, t->order, t->prep.rows.n_tr);
	if ((st = acc_sort_by_length(t, err)) != CAI_OK)
		return st;
	cai_rng_shuffle(&t->rng, t->batch_perm, t->n_batches);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Training: data parallel (threads > 1)                                  */
/* ---------------------------------------------------------------------- */

/* Job: forward and backward of shard s's rows of the batch (shard 0 into the slab's gradients). */
static cai_status
acc_shard_train(void *ctx, int s, cai_error *err)
{
	AccTrain   *t = ctx;
	AccShard   *sh = &t->sh[s];
	AccWork    *w = s == 0 ? &t->w : &sh->w;

	sh->loss = 0.0;
	if (sh->bt.n == 0)
	{
		acc_work_zero_grad(t, w);
		return CAI_OK;
	}
	return acc_batch_step(t, w, &sh->bt, sh->ids, (float) t->dropout, (float) t->word_dropout, &sh->rng,
						  t->shard_scale, &sh->loss, err);
}

/*
 * Job: slice s of the dense parameters' floats (in slab order): the other
 * shards' gradients added into the slab's, shard by shard (each float
 * gets the same additions in the same order, whatever the slices); then
 * the embedding rows r with r mod n = s: the last step's zeroed, every
 * shard's bag gradients (its dx), shard by shard, straight into the slab's
 * rows, flagged in the slab's row set (the caller lists them).
 */
static cai_status
acc_shard_reduce(void *ctx, int s, cai_error *err)
{
	AccTrain   *t = ctx;
	const cai_slab *slab = &t->slab;
	AccShard   *me = &t->sh[s];
	const int32_t R = t->prep.V + 1 + t->prep.K;
	const size_t D = (size_t) t->p.dim;
	float	   *ge = cai_slab_grad(slab, t->pi[0]);
	cai_rowset *srows = cai_slab_rowset(&t->slab, t->pi[0]);
	size_t		dense = 0;
	size_t		d0;
	size_t		d1;
	size_t		pos = 0;

	for (int k = 1; k < ACC_N_FLOAT_TENSORS; k++)
		dense += slab->params[t->pi[k]].numel;
	d0 = dense * (size_t) s / (size_t) t->n_sh;
	d1 = dense * (size_t) (s + 1) / (size_t) t->n_sh;
	me->sumsq = 0.0;
	for (int k = 1; k < ACC_N_FLOAT_TENSORS; k++)
	{
		const cai_param *p = &slab->params[t->pi[k]];
		size_t		a = pos > d0 ? pos : d0;
		size_t		b = pos + p->numel < d1 ? pos + p->numel : d1;

		for (int sh = 1; sh < t->n_sh && a < b; sh++)
		{
			float	   *dst = slab->grad + p->offset;
			const float *src = t->sh[sh].w.grad + p->offset;

			for (size_t j = a - pos; j < b - pos; j++)
				dst[j] += src[j];
		}
		if (a < b)
			me->sumsq += cai_sumsq(slab->grad + p->offset + (a - pos), b - a);
		pos += p->numel;
	}
	/* the rows of this class the last step added to, zeroed and unflagged */
	for (int32_t i = 0; i < me->n_emb_rows; i++)
	{
		memset(ge + (size_t) me->emb_rows[i] * D, 0, sizeof(float) * D);
		srows->flags[me->emb_rows[i]] = 0;
	}
	me->n_emb_rows = 0;
	for (int k = 0; k < t->n_sh; k++)
	{
		const AccShard *sk = &t->sh[k];
		const AccWork *w = k == 0 ? &t->w : &sk->w;

		if (sk->bt.n > 0)
			cai_embedding_bag_mean_backward_part(ge, srows->flags,
												 me->emb_rows, &me->n_emb_rows, w->dx, w->b_ids, w->b_offs,
												 sk->bt.n * (sk->bt.T > 0 ? sk->bt.T : 1), R, t->p.dim, s, t->n_sh);
	}
	if (t->freeze && t->vm.row != NULL)
		me->n_emb_rows = acc_drop_frozen(t, ge, srows->flags, me->emb_rows, me->n_emb_rows);
	me->sumsq += cai_rows_sumsq(ge, D, me->emb_rows, (size_t) me->n_emb_rows);
	return CAI_OK;
}

/*
 * Job fn for every shard: on the pool, or (serial) one shard after another
 * on this thread, as acc_early_job runs them.  A job touches its shard's
 * buffers and its slice only, so the bits are the same either way.
 */
static cai_status
acc_run(AccTrain *t, cai_pool_fn fn, bool serial, cai_error *err)
{
	if (!serial)
		return cai_pool_run(&t->pool, fn, t, err);
	for (int s = 0; s < t->n_sh; s++)
	{
		cai_status	st = fn(t, s, err);

		if (st != CAI_OK)
			return st;
	}
	return CAI_OK;
}

/*
 * acc_batch_step of batch bt split over the pool: row i of the batch (the
 * rows are sorted by length, so this balances the work) to shard i mod n,
 * each with its own dropout rng seeded from the training rng; the shards'
 * gradients are then added to the slab's in shard order.  serial: every
 * shard's jobs on this thread (acc_run).
 */
static cai_status
acc_batch_step_par(AccTrain *t, const AccBatch *bt, bool serial, double *loss, cai_error *err)
{
	const int32_t *rows = t->order + bt->first;
	cai_rowset *srows = cai_slab_rowset(&t->slab, t->pi[0]);
	cai_status	st;

	for (int s = 0; s < t->n_sh; s++)
	{
		t->sh[s].bt.first = 0;
		t->sh[s].bt.n = 0;
		t->sh[s].bt.T = 1;
		cai_rng_seed(&t->sh[s].rng, cai_rng_u64(&t->rng));
	}
	for (int b = 0; b < bt->n; b++)
	{
		AccShard   *sh = &t->sh[b % t->n_sh];

		sh->ids[sh->bt.n++] = rows[b];
		if (t->len_key[rows[b]] > sh->bt.T)
			sh->bt.T = t->len_key[rows[b]];
	}
	t->shard_scale = 1.0f / (float) bt->n;
	if ((st = acc_run(t, acc_shard_train, serial, err)) != CAI_OK)
		return st;
	*loss = 0.0;
	for (int s = 0; s < t->n_sh; s++)
		*loss += t->sh[s].loss;
	/* the dense gradients and the embedding rows, in parts by the pool; the touched rows' list here */
	if ((st = acc_run(t, acc_shard_reduce, serial, err)) != CAI_OK)
		return st;
	srows->count = 0;
	for (int s = 0; s < t->n_sh; s++)
	{
		memcpy(srows->list + srows->count, t->sh[s].emb_rows, sizeof(int32_t) * (size_t) t->sh[s].n_emb_rows);
		srows->count += t->sh[s].n_emb_rows;
	}
	return CAI_OK;
}

/* The shards' buffers (the pool running with n > 1 threads; shard 0 works in t->w). */
static cai_status
acc_shards_alloc(AccTrain *t, cai_error *err)
{
	cai_status	st;

	if ((t->sh = cai_calloc((size_t) t->pool.n, sizeof(AccShard))) == NULL)
		return NOMEM(err);
	t->n_sh = t->pool.n;
	/* shard 0's bag ids never grow on the caller's thread either: one size for all */
	if (t->w.b_ids_cap < t->wd.ids + 1)
	{
		if (!cai_grow_array((void **) &t->w.b_ids, sizeof(int32_t), t->w.b_ids_cap, t->wd.ids + 1))
			return NOMEM(err);
		t->w.b_ids_cap = t->wd.ids + 1;
	}
	for (int s = 0; s < t->n_sh; s++)
	{
		if ((t->sh[s].ids = cai_malloc(sizeof(int32_t) * (t->wd.rows + 1))) == NULL ||
			(t->sh[s].emb_rows = cai_malloc(sizeof(int32_t) * ((size_t) t->prep.V + 1 + t->prep.K))) == NULL)
			return NOMEM(err);
		if (s > 0 && (st = acc_work_alloc(t, &t->wd, true, &t->sh[s].w, err)) != CAI_OK)
			return st;
	}
	return CAI_OK;
}

/* Job: shard s's part of the clipping's scaling and of the optimizer step (the same parameters as one cai_slab_step). */
static cai_status
acc_shard_step(void *ctx, int s, cai_error *err)
{
	AccTrain   *t = ctx;

	if (t->clip_f != 1.0f)
		cai_slab_scale_grad_part(&t->slab, t->clip_f, s, t->n_sh);
	cai_slab_step_part(&t->slab, &t->cfg, t->step_lr, t->step, s, t->n_sh);
	return CAI_OK;
}

/*
 * One Adam step on batch bt (the forward and backward, the gradient
 * clipping, a linearly decaying learning rate): with the pool when it has
 * threads (serial: its shards on this thread, acc_early_job), else on t->w.
 */
static cai_status
acc_step(AccTrain *t, const AccBatch *bt, bool serial, int epoch, double *loss, cai_error *err)
{
	float		lr = cai_lr_schedule(CAI_LR_LINEAR, (float) t->lr0, (float) t->lr0 * ACC_MIN_LR_FRACTION,
									 t->step, 0, t->steps_total);
	float		norm;
	cai_status	st;

	*loss = 0.0;
	if (t->pool.n > 1)
	{
		/* the shards reduced, dropped frozen rows and summed squares (acc_shard_reduce) */
		double		sumsq = 0.0;
		double		norm_d;

		if ((st = acc_batch_step_par(t, bt, serial, loss, err)) != CAI_OK)
			return st;
		for (int s = 0; s < t->n_sh; s++)
			sumsq += t->sh[s].sumsq;
		norm_d = sqrt(sumsq);
		norm = (float) norm_d;
		t->clip_f = cai_clip_factor(norm_d, ACC_CLIP_NORM);
	}
	else
	{
		if ((st = acc_batch_step(t, &t->w, bt, t->order + bt->first, (float) t->dropout,
								 (float) t->word_dropout, &t->rng, 1.0f / (float) bt->n, loss, err)) != CAI_OK)
			return st;
		if (t->freeze && t->vm.row != NULL)
			acc_drop_frozen_rows(t);
		norm = cai_slab_clip_grad_norm(&t->slab, ACC_CLIP_NORM);
	}
	if (!isfinite(norm) || !isfinite(*loss))
		return cai_error_set(err, CAI_ERR_NUMERIC,
							 "training diverged in epoch %d (the loss is not finite); lower learning_rate", epoch);
	t->step++;
	if (t->pool.n > 1)
	{
		t->step_lr = lr;
		if ((st = cai_slab_step_check(&t->slab, &t->cfg, lr, err)) != CAI_OK)
			return st;
		return acc_run(t, acc_shard_step, serial, err);
	}
	return cai_slab_step(&t->slab, &t->cfg, lr, t->step, err);
}

static long acc_early_test = -1;	/* cai_textclf_accurate_early_batches */

/* See cai/textclf.h. */
void
cai_textclf_accurate_early_batches(long n)
{
	acc_early_test = n;
}

/* The most batches acc_early_job may run. */
static size_t
acc_early_max(void)
{
	return acc_early_test < 0 ? SIZE_MAX : (size_t) acc_early_test;
}

/*
 * Job, pool thread 1 only (threads > 1): epoch 1's first batches while the
 * caller trains the ensemble's fast model, which allocates and so runs on
 * the caller, leaving the other threads idle.  Every shard's part of each
 * step runs here, in the order the pool would run them, until the caller
 * sets early_stop; acc_train_epoch goes on from there.  The model has the
 * same bits whichever thread ran which batch (tested).
 */
static cai_status
acc_early_job(void *ctx, int s, cai_error *err)
{
	AccTrain   *t = ctx;

	if (s != 1)
		return CAI_OK;
	while (t->early_batches < t->n_batches && t->early_batches < t->early_max &&
		   !__atomic_load_n(&t->early_stop, __ATOMIC_ACQUIRE))
	{
		const AccBatch *bt = &t->batches[t->batch_perm[t->early_batches]];
		double		loss;
		cai_status	st;

		if ((st = acc_step(t, bt, true, 1, &loss, err)) != CAI_OK)
			return st;
		t->early_loss += loss * bt->n;
		t->early_rows += (size_t) bt->n;
		t->early_batches++;
	}
	return CAI_OK;
}

/* An epoch of acc_step over the shuffled batches (epoch 1 from where acc_early_job stopped). */
static cai_status
acc_train_epoch(void *ctx, cai_trainer *tr, int epoch, double *loss_out, double *rows, cai_error *err)
{
	AccTrain   *t = ctx;
	double		loss_sum = t->early_loss;
	size_t		rows_done = t->early_rows;
	size_t		bi0 = t->early_batches;
	cai_status	st;

	t->early_batches = 0;
	t->early_loss = 0.0;
	t->early_rows = 0;
	for (size_t bi = bi0; bi < t->n_batches; bi++)
	{
		const AccBatch *bt = &t->batches[t->batch_perm[bi]];
		double		loss = 0.0;

		if ((st = cai_trainer_poll(tr, (double) t->step / (double) t->steps_total, err)) != CAI_OK)
			return st;
		if (cai_trainer_out_of_time(tr))
			break;
		if ((st = acc_step(t, bt, false, epoch, &loss, err)) != CAI_OK)
			return st;
		loss_sum += loss * bt->n;
		rows_done += (size_t) bt->n;
	}
	*loss_out = loss_sum / (double) (rows_done > 0 ? rows_done : 1);
	*rows = (double) rows_done;
	return CAI_OK;
}

/* Accuracy of the ensemble on the evaluation rows; ties go to the lower mean loss. */
static cai_status
acc_evaluate(void *ctx, cai_trainer *tr, int epoch, double *score, double *loss, cai_error *err)
{
	AccTrain   *t = ctx;
	double		mf1;
	cai_status	st;

	*loss = 0;
	if ((st = acc_eval(t, tr, t->prep.n_eval, loss, err)) != CAI_OK)
		return st;
	cai_classification_scores(t->prep.eval_lab, t->prep.pred, t->prep.n_eval, t->prep.L, score, &mf1);
	return CAI_OK;
}

/* The best epoch: the serialized parameters and the predictions its metrics come from. */
static void
acc_snapshot(void *ctx)
{
	AccTrain   *t = ctx;

	memcpy(t->best, t->slab.data, sizeof(float) * t->slab.numel);
	memcpy(t->prep.best_pred, t->prep.pred, sizeof(int32_t) * t->prep.n_eval);
	t->best_acc_correct = t->acc_correct;
}

/* ---------------------------------------------------------------------- */
/* The gradient check's probe (gradcheck.h)                       */
/* ---------------------------------------------------------------------- */

typedef struct AccProbe
{
	AccTrain	t;
	const AccBatch *bt;			/* the checked batch */
} AccProbe;

static void
acc_probe_free(void *ctx)
{
	AccProbe   *ap = ctx;

	acc_train_free(&ap->t);
	cai_free(ap);
}

/* acc_batch_step on the batch, dropout and word dropout off; its gradient copied out. */
static cai_status
acc_probe_loss(void *ctx, float *const *grad, double *loss, cai_error *err)
{
	AccProbe   *ap = ctx;
	AccTrain   *t = &ap->t;
	cai_status	st;

	if ((st = acc_batch_step(t, &t->w, ap->bt, t->order + ap->bt->first, 0.0f, 0.0f, &t->rng,
							 1.0f / (float) ap->bt->n, loss, err)) != CAI_OK)
		return st;
	if (t->freeze && t->vm.row != NULL)
		acc_drop_frozen_rows(t);
	if (grad != NULL)
		for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
			memcpy(grad[i], cai_slab_grad(&t->slab, t->pi[i]), sizeof(float) * t->slab.params[t->pi[i]].numel);
	return CAI_OK;
}

/* See textclf_internal.h: the training's batch with the most padded positions, at its initialization. */
cai_status
cai_textclf_accurate_grad_probe(const cai_options *opts, int n_labels, const cai_textclf_data *train,
								cai_grad_probe *probe, cai_error *err)
{
	AccProbe   *ap = cai_calloc(1, sizeof(AccProbe));
	AccTrain   *t;
	AccTensorSpec specs[ACC_N_FLOAT_TENSORS];
	cai_trainer tk;
	size_t		max_ids;
	cai_status	st;

	memset(probe, 0, sizeof(*probe));
	if (ap == NULL)
		return NOMEM(err);
	t = &ap->t;
	cai_slab_init(&t->slab);
	t->cfg = cai_optim_defaults(CAI_OPTIM_ADAM);
	cai_trainer_init(&tk, NULL, NULL, 0.0);
	if ((st = acc_params_from_options(opts, NULL, &t->p, err)) != CAI_OK ||
		(st = acc_prepare(t, opts, n_labels, train, NULL, &tk, &max_ids, err)) != CAI_OK)
		goto fail;
	ap->bt = &t->batches[0];
	for (size_t b = 1; b < t->n_batches; b++)
		if ((int64_t) t->batches[b].n * t->batches[b].T > (int64_t) ap->bt->n * ap->bt->T)
			ap->bt = &t->batches[b];

	cai_textclf_accurate_tensor_specs((int64_t) t->prep.V + 1 + t->prep.K, t->p.dim, t->p.hidden, t->prep.L, specs);
	probe->n_tensors = ACC_N_FLOAT_TENSORS;
	for (int i = 0; i < ACC_N_FLOAT_TENSORS; i++)
	{
		probe->name[i] = specs[i].name;
		probe->data[i] = cai_slab_data(&t->slab, t->pi[i]);
		probe->numel[i] = spec_numel(&specs[i]);
	}
	/* the embedding rows of the batch's bags: b_ids as a first step fills it, and every later step alike */
	{
		double		loss;

		if ((st = acc_probe_loss(ap, NULL, &loss, err)) != CAI_OK)
			goto fail;
	}
	probe->rows[0] = t->w.b_ids;
	probe->n_rows[0] = (size_t) t->w.b_offs[(size_t) ap->bt->n * (size_t) (ap->bt->T > 0 ? ap->bt->T : 1)];
	probe->row_len[0] = t->p.dim;
	probe->loss = acc_probe_loss;
	probe->free = acc_probe_free;
	probe->ctx = ap;
	return CAI_OK;
fail:
	acc_probe_free(ap);
	return st;
}

cai_status
cai_textclf_accurate_train(const cai_options *opts, const char *const *label_names, int n_labels,
						   const cai_textclf_data *train, const cai_textclf_data *valid,
						   const cai_word_vectors *vec, json_object *prov,
						   cai_progress_fn progress, void *progress_ctx,
						   uint8_t **model, size_t *model_len, char **metrics_json, cai_error *err)
{
	AccTrain	t;
	cai_trainer tk;
	const cai_trainer_hooks hooks = {
		.ctx = &t, .begin_epoch = acc_begin_epoch, .train_epoch = acc_train_epoch,
		.evaluate = acc_evaluate, .snapshot = acc_snapshot,
	};
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
	size_t		n_eval;
	double		seconds;
	uint64_t	fingerprint;
	json_object *metrics = NULL;
	json_object *train_opts = NULL;
	char	   *meta = NULL;
	cai_status	st;

	memset(&t, 0, sizeof(t));
	cai_slab_init(&t.slab);
	cai_trainer_init(&tk, progress, progress_ctx, cai_opt_float(opts, "max_seconds"));
	t.cfg = cai_optim_defaults(CAI_OPTIM_ADAM);
	t.lr0 = lr0;
	t.dropout = dropout;
	t.word_dropout = word_dropout;
	t.vec = vec != NULL && vec->n > 0 ? vec : NULL;
	t.freeze = cai_opt_bool(opts, "freeze_vectors");

	if ((st = acc_params_from_options(opts, vec, &t.p, err)) != CAI_OK)
		return st;
	if (epochs < 0 || !(lr0 > 0) || !(dropout >= 0 && dropout < 1) || !(frac >= 0 && frac < 1) ||
		min_count < 1 || batch_size < 1)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "epochs, learning_rate, dropout, validation_fraction, batch_size or min_count out of range");
	if ((st = cai_textclf_accurate_fingerprint(&t.p, &fingerprint, err)) != CAI_OK)
		return st;
	if (threads <= 1)
		cai_blas_set_threads(threads);

	if ((st = acc_prepare(&t, opts, n_labels, train, valid, &tk, &max_ids, err)) != CAI_OK)
		goto done;
	if (threads > 1)
	{
		/* the pool threads first, then their buffers (pool.h); BLAS single-threaded in each */
		cai_pool_start(&t.pool, threads);
		if (t.pool.n > 1 && (st = acc_shards_alloc(&t, err)) != CAI_OK)
			goto done;
	}
	n_eval = t.prep.n_eval;

	/* evaluation buffers */
	{
		int			maxT = 1;
		size_t		nf;
		AccNet		net;

		for (size_t j = 0; j < n_eval; j++)
		{
			size_t		r = cai_textclf_eval_row(&t.prep, j);

			if ((int) (t.prep.tok_off[r + 1] - t.prep.tok_off[r]) > maxT)
				maxT = (int) (t.prep.tok_off[r + 1] - t.prep.tok_off[r]);
		}
		acc_train_net(&t, &net);
		if (!cai_textclf_accurate_infer_floats(&net, maxT, &nf))
		{
			st = cai_error_set(err, CAI_ERR_LIMIT, "validation texts are too long");
			goto done;
		}
		t.n_ev = t.pool.n > 1 ? t.pool.n : 1;
		t.ev = cai_calloc((size_t) t.n_ev, sizeof(AccEvalBuf));
		t.ev_nll = cai_malloc(sizeof(double) * (n_eval + 1));
		t.ev_acc_ok = cai_malloc(n_eval + 1);
		if (t.ev == NULL || t.ev_nll == NULL || t.ev_acc_ok == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		for (int i = 0; i < t.n_ev; i++)
		{
			AccEvalBuf *ev = &t.ev[i];

			ev->scratch = cai_malloc(sizeof(float) * nf);
			ev->ids = cai_malloc(sizeof(int32_t) * (max_ids + 1));
			ev->offs = cai_malloc(sizeof(int32_t) * ((size_t) maxT + 1));
			ev->probs = cai_malloc(sizeof(float) * (size_t) n_labels);
			if (ev->scratch == NULL || ev->ids == NULL || ev->offs == NULL || ev->probs == NULL)
			{
				st = NOMEM(err);
				goto done;
			}
		}
	}

	if (epochs == 0)
		epochs = cai_textclf_auto_epochs(t.prep.rows.n_tr, ACC_AUTO_UPDATES, ACC_AUTO_MIN_EPOCHS, ACC_AUTO_MAX_EPOCHS);
	t.steps_total = (int64_t) epochs * (int64_t) t.n_batches;

	/* the fast model on this thread; with threads, epoch 1 begins meanwhile on pool thread 1 */
	if (t.pool.n > 1 && epochs > 0)
	{
		if ((st = acc_begin_epoch(&t, 1, err)) != CAI_OK)
			goto done;
		t.early_begun = true;
		t.early_max = acc_early_max();
		cai_pool_launch(&t.pool, acc_early_job, &t);
	}
	st = acc_train_fast(&t, opts, label_names, train, valid, &tk, err);
	if (t.pool.launched)
	{
		cai_error	e2;
		cai_status	st2;

		/* (a test's count of early batches: the job stops there itself) */
		if (acc_early_test < 0 || st != CAI_OK)
			__atomic_store_n(&t.early_stop, 1, __ATOMIC_RELEASE);
		st2 = cai_pool_join(&t.pool, &e2);
		if (st == CAI_OK && st2 != CAI_OK)
		{
			*err = e2;
			st = st2;
		}
	}
	if (st != CAI_OK)
		goto done;
	if ((st = cai_textclf_run_epochs(&tk, &hooks, epochs, patience, &t.prep, t.best, t.slab.numel, label_names,
									 prov, seed, &seconds, &metrics, err)) != CAI_OK)
		goto done;
	train_opts = json_object_new_object();
	if (train_opts == NULL || !cai_textclf_put_vector_coverage(metrics, &t.vm) ||
		!cai_json_put(metrics, "accurate_only_accuracy",
			 json_object_new_double((double) t.best_acc_correct / (double) (n_eval > 0 ? n_eval : 1))) ||
		!cai_json_put(metrics, "fast_only_accuracy",
			 json_object_new_double((double) t.fast_correct / (double) (n_eval > 0 ? n_eval : 1))) ||
		!cai_json_put(train_opts, "learning_rate", json_object_new_double(lr0)) ||
		!cai_json_put(train_opts, "dropout", json_object_new_double(dropout)) ||
		!cai_json_put(train_opts, "word_dropout", json_object_new_double(word_dropout)) ||
		!cai_json_put(train_opts, "batch_size", json_object_new_int(batch_size)) ||
		!cai_json_put(train_opts, "epochs", json_object_new_int(epochs)))
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
	st = cai_textclf_return_metrics(metrics, seconds, model, model_len, metrics_json, err);

done:
	cai_pool_stop(&t.pool);
	cai_blas_set_threads(old_threads);
	json_object_put(metrics);
	json_object_put(train_opts);
	cai_free(meta);
	acc_train_free(&t);
	return st;
}
