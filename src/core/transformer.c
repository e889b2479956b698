/*
 * transformer.c: the "transformer" architecture's model (see
 * transformer_internal.h): inputs, inference, load and model bytes.
 */
#include <float.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_model_internal.h"
#include "modelutil.h"
#include "transformer_internal.h"

#define TF_HEAD_TENSOR "head"

/* ---------------------------------------------------------------------
 * The model
 */

size_t
tf_head_size(int K, int H, bool crf)
{
	return (size_t) K * (size_t) H + (size_t) K + (crf ? cai_crf_param_count(K) : 0);
}

void
tf_head_views(Tf *m)
{
	if (m->crf)
		cai_crf_params_view(&m->crfp, m->head + (size_t) m->K * m->H + m->K, m->K);
}

void
tf_free(Tf *m)
{
	if (m == NULL)
		return;
	cai_encoder_bundle_free(m->b);
	if (m->own_head)
		cai_free(m->head);
	cai_strtab_free(&m->classes);
	cai_strtab_free(&m->tt.types);
	cai_strtab_free(&m->tt.labels);
	cai_strtab_free(&m->tt.tags);
	cai_free(m->tt.tag_label);
	cai_free(m->tt.maskbuf);
	cai_free(m);
}

/* ---------------------------------------------------------------------
 * Inputs
 */

void
tf_inputs_free(TfInputs *in)
{
	cai_free(in->id_off);
	cai_free(in->ids);
	cai_free(in->lab_off);
	cai_free(in->pos);
	cai_free(in->lab_gold);
	cai_free(in->gold);
	cai_free(in->sent);
	cai_free(in->u0);
	cai_free(in->u1);
	cai_free(in->unit_off);
	cai_free(in->unit_tok);
	memset(in, 0, sizeof(*in));
}

/* Grow an array of elem-byte items from *cap to at least need (doubling). */
static bool
grow(void **p, size_t elem, size_t *cap, size_t need)
{
	size_t		nc = *cap < 64 ? 64 : *cap;

	if (need <= *cap)
		return true;
	while (nc < need)
		nc *= 2;
	if (!cai_grow_array(p, elem, *cap, nc))
		return false;
	*cap = nc;
	return true;
}

/* Room for one more input with n_ids ids and n_lab labels. */
static cai_status
inputs_reserve(TfInputs *in, size_t n_ids, size_t n_lab, cai_error *err)
{
	size_t		cap = in->cap;
	size_t		ids_need = (in->n > 0 ? (size_t) in->id_off[in->n] : 0) + n_ids;
	size_t		lab_need = (in->n > 0 ? (size_t) in->lab_off[in->n] : 0) + n_lab;
	size_t		c;
	bool		ok = true;

	if (in->n + 2 > cap)
	{
		c = cap;
		ok = grow((void **) &in->id_off, sizeof(int64_t), &c, in->n + 2);
		c = cap;
		ok = ok && grow((void **) &in->lab_off, sizeof(int64_t), &c, in->n + 2);
		c = cap;
		ok = ok && grow((void **) &in->sent, sizeof(int32_t), &c, in->n + 2);
		c = cap;
		ok = ok && grow((void **) &in->u0, sizeof(int32_t), &c, in->n + 2);
		c = cap;
		ok = ok && grow((void **) &in->u1, sizeof(int32_t), &c, in->n + 2);
		c = cap;
		ok = ok && grow((void **) &in->gold, sizeof(int32_t), &c, in->n + 2);
		if (ok)
			in->cap = c;
		if (ok && in->n == 0)
			in->id_off[0] = in->lab_off[0] = 0;
	}
	ok = ok && grow((void **) &in->ids, sizeof(int32_t), &in->ids_cap, ids_need);
	if (ok && lab_need > in->lab_cap)
	{
		size_t		c1 = in->lab_cap;
		size_t		c2 = in->lab_cap;

		ok = grow((void **) &in->pos, sizeof(int32_t), &c1, lab_need) &&
			grow((void **) &in->lab_gold, sizeof(int32_t), &c2, lab_need);
		if (ok)
			in->lab_cap = c1;
	}
	if (!ok)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the transformer's inputs");
	return CAI_OK;
}

static int32_t
special(const Tf *m, cai_wp_special s)
{
	return cai_wordpiece_special_id(m->b->vocab, s);
}

cai_status
tf_inputs_texts(const Tf *m, const char *const *texts, const size_t *lens, const int32_t *labels, size_t n,
				const int32_t *rows, TfInputs *in, cai_error *err)
{
	cai_status	st = CAI_OK;

	for (size_t i = 0; i < n && st == CAI_OK; i++)
	{
		size_t		r = rows != NULL ? (size_t) rows[i] : i;
		cai_wordpiece_piece *pc = NULL;
		size_t		np = 0;
		cai_error	e2 = {0};

		if (texts[r] == NULL && lens[r] > 0)
			return cai_error_set(err, CAI_ERR_INVALID, "text %zu: NULL with length %zu", r, lens[r]);
		st = cai_wordpiece_encode(m->b->vocab, &m->b->wp, texts[r] != NULL ? texts[r] : "", lens[r], NULL, 0,
								  (size_t) m->max_length, &pc, &np, NULL, &e2);
		if (st != CAI_OK)
			cai_error_set(err, st, "text %zu: %s", r, e2.msg);
		if (st == CAI_OK)
			st = inputs_reserve(in, np, 0, err);
		if (st == CAI_OK)
		{
			int32_t    *ids = in->ids + in->id_off[in->n];

			for (size_t j = 0; j < np; j++)
				ids[j] = pc[j].id;
			in->gold[in->n] = labels != NULL ? labels[r] : -1;
			in->sent[in->n] = (int32_t) r;
			in->u0[in->n] = in->u1[in->n] = 0;
			in->id_off[in->n + 1] = in->id_off[in->n] + (int64_t) np;
			in->lab_off[in->n + 1] = in->lab_off[in->n];
			in->n++;
		}
		cai_free(pc);
	}
	return st;
}

/*
 * Gold internal tags of units [u0, u1) of a sentence whose unit-level
 * chunks are ch[0..nch): the chunks cut to the window, BIOES.
 */
static void
window_gold(const cai_chunk *ch, size_t nch, int32_t u0, int32_t u1, cai_chunk *tmp, char *pf, int32_t *ty,
			int32_t *gold)
{
	size_t		k = 0;
	int32_t		n = u1 - u0;

	for (size_t c = 0; c < nch; c++)
	{
		int32_t		a = ch[c].start > u0 ? ch[c].start : u0;
		int32_t		b = ch[c].end < u1 ? ch[c].end : u1;

		if (a < b)
		{
			tmp[k].start = a - u0;
			tmp[k].end = b - u0;
			tmp[k].type = ch[c].type;
			k++;
		}
	}
	cai_chunks_to_tags(tmp, k, (size_t) n, CAI_SCHEME_BIOES, pf, ty);
	for (int32_t i = 0; i < n; i++)
		gold[i] = ner_tag_index(pf[i], ty[i]);
}

/* Chunks of internal tags tags[0..n) into ch (n entries); pf, ty scratch (n). */
static size_t
tag_chunks(const int32_t *tags, size_t n, char *pf, int32_t *ty, cai_chunk *ch)
{
	for (size_t i = 0; i < n; i++)
	{
		pf[i] = ner_tag_prefix(tags[i]);
		ty[i] = ner_tag_type(tags[i]);
	}
	return cai_chunks_extract(pf, ty, n, ch);
}

/* Scratch of one sentence: pieces, first piece of each token, chunks, gold. */
typedef struct SentScratch
{
	size_t		cap;
	int32_t    *pieces;
	int32_t    *first;			/* (tokens + 1) */
	int32_t    *tok_of;			/* (pieces) token of each piece */
	cai_chunk  *ch;
	cai_chunk  *tmp;
	char	   *pf;
	int32_t    *ty;
	int32_t    *gold;
} SentScratch;

static void
scratch_free(SentScratch *s)
{
	cai_free(s->pieces);
	cai_free(s->first);
	cai_free(s->tok_of);
	cai_free(s->ch);
	cai_free(s->tmp);
	cai_free(s->pf);
	cai_free(s->ty);
	cai_free(s->gold);
	memset(s, 0, sizeof(*s));
}

static bool
scratch_fit(SentScratch *s, size_t n)
{
	size_t		c;

	if (n + 1 <= s->cap)
		return true;
	c = s->cap;
	if (!grow((void **) &s->pieces, sizeof(int32_t), &c, n + 1))
		return false;
	c = s->cap;
	if (!grow((void **) &s->first, sizeof(int32_t), &c, n + 1))
		return false;
	c = s->cap;
	if (!grow((void **) &s->tok_of, sizeof(int32_t), &c, n + 1))
		return false;
	c = s->cap;
	if (!grow((void **) &s->ch, sizeof(cai_chunk), &c, n + 1))
		return false;
	c = s->cap;
	if (!grow((void **) &s->tmp, sizeof(cai_chunk), &c, n + 1))
		return false;
	c = s->cap;
	if (!grow((void **) &s->pf, 1, &c, n + 1))
		return false;
	c = s->cap;
	if (!grow((void **) &s->ty, sizeof(int32_t), &c, n + 1))
		return false;
	c = s->cap;
	if (!grow((void **) &s->gold, sizeof(int32_t), &c, n + 1))
		return false;
	s->cap = c;
	return true;
}

/* The pieces of one sentence's tokens into s (pieces, first, tok_of); *np the count. */
static cai_status
sentence_pieces(const Tf *m, const char *const *tokens, const size_t *lens, size_t nt, SentScratch *s, size_t *np,
				cai_error *err)
{
	size_t		p = 0;
	int32_t		unk = special(m, CAI_WP_UNK);
	cai_status	st;

	if (!scratch_fit(s, nt))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a sentence's pieces");
	for (size_t i = 0; i < nt; i++)
	{
		cai_wordpiece_piece *pc = NULL;
		size_t		k = 0;

		if ((st = cai_wordpiece_tokenize(m->b->vocab, &m->b->wp, tokens[i] != NULL ? tokens[i] : "",
										 tokens[i] != NULL ? lens[i] : 0, 0, &pc, &k, err)) != CAI_OK)
			return st;
		if (!scratch_fit(s, p + (k > 0 ? k : 1) + nt))
		{
			cai_free(pc);
			return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a sentence's pieces");
		}
		s->first[i] = (int32_t) p;
		if (k == 0)
		{
			s->tok_of[p] = (int32_t) i;
			s->pieces[p++] = unk;
		}
		for (size_t j = 0; j < k; j++)
		{
			s->tok_of[p] = (int32_t) i;
			s->pieces[p++] = pc[j].id;
		}
		cai_free(pc);
	}
	s->first[nt] = (int32_t) p;
	*np = p;
	return CAI_OK;
}

/* Add the units of one sentence to in (their tokens). */
static cai_status
add_units(TfInputs *in, const Tf *m, const SentScratch *s, size_t nt, size_t np, cai_error *err)
{
	size_t		nu = m->all_pieces ? np : nt;
	size_t		c = in->sent_cap;
	size_t		base;

	if (!grow((void **) &in->unit_off, sizeof(int64_t), &c, in->n_sent + 2))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the transformer's inputs");
	in->sent_cap = c;
	if (in->n_sent == 0)
		in->unit_off[0] = 0;
	base = (size_t) in->unit_off[in->n_sent];
	if (!grow((void **) &in->unit_tok, sizeof(int32_t), &in->unit_cap, base + nu + 1))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the transformer's inputs");
	for (size_t u = 0; u < nu; u++)
		in->unit_tok[base + u] = m->all_pieces ? s->tok_of[u] : (int32_t) u;
	in->unit_off[in->n_sent + 1] = (int64_t) (base + nu);
	in->n_sent++;
	return CAI_OK;
}

cai_status
tf_inputs_sentences(const Tf *m, const cai_ner_data *data, const int32_t *tags, const int32_t *rows, size_t n,
					TfInputs *in, cai_error *err)
{
	const int	W = m->max_length - 2;
	const int32_t cls = special(m, CAI_WP_CLS);
	const int32_t sep = special(m, CAI_WP_SEP);
	SentScratch s;
	cai_status	st = CAI_OK;

	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < n && st == CAI_OK; i++)
	{
		size_t		r = rows != NULL ? (size_t) rows[i] : i;
		int64_t		t0 = data->offsets[r];
		size_t		nt = (size_t) (data->offsets[r + 1] - t0);
		size_t		np = 0;
		size_t		nch = 0;
		int32_t		P;

		if ((st = sentence_pieces(m, data->tokens + t0, data->token_lens + t0, nt, &s, &np, err)) != CAI_OK ||
			(st = add_units(in, m, &s, nt, np, err)) != CAI_OK)
			break;
		P = (int32_t) np;
		if (tags != NULL)
		{
			/* unit-level gold chunks: of tokens, or of their pieces */
			nch = tag_chunks(tags + t0, nt, s.pf, s.ty, s.ch);
			if (m->all_pieces)
				for (size_t c = 0; c < nch; c++)
				{
					s.ch[c].start = s.first[s.ch[c].start];
					s.ch[c].end = s.first[s.ch[c].end];
				}
		}
		for (int32_t a = 0;; a += W / 2 > 0 ? W / 2 : 1)
		{
			int32_t		e;
			int32_t		u0;
			int32_t		u1;
			int32_t		nl;

			if (a + W >= P)
				a = P - W > 0 ? P - W : 0;
			e = a + W < P ? a + W : P;
			if (m->all_pieces)
			{
				u0 = a;
				u1 = e;
			}
			else
			{
				u0 = 0;
				while (u0 < (int32_t) nt && s.first[u0] < a)
					u0++;
				u1 = u0;
				while (u1 < (int32_t) nt && s.first[u1] < e)
					u1++;
			}
			nl = u1 - u0;
			if ((st = inputs_reserve(in, (size_t) (e - a + 2), (size_t) nl, err)) != CAI_OK)
				break;
			{
				int32_t    *ids = in->ids + in->id_off[in->n];
				int64_t		l0 = in->lab_off[in->n];

				ids[0] = cls;
				memcpy(ids + 1, s.pieces + a, sizeof(int32_t) * (size_t) (e - a));
				ids[e - a + 1] = sep;
				if (tags != NULL)
					window_gold(s.ch, nch, u0, u1, s.tmp, s.pf, s.ty, s.gold);
				for (int32_t u = u0; u < u1; u++)
				{
					in->pos[l0 + u - u0] = 1 + (m->all_pieces ? u : s.first[u]) - a;
					in->lab_gold[l0 + u - u0] = tags != NULL ? s.gold[u - u0] : -1;
				}
				in->sent[in->n] = (int32_t) (in->n_sent - 1);
				in->u0[in->n] = u0;
				in->u1[in->n] = u1;
				in->gold[in->n] = -1;
				in->id_off[in->n + 1] = in->id_off[in->n] + (e - a + 2);
				in->lab_off[in->n + 1] = l0 + nl;
				in->n++;
			}
			if (e >= P)
				break;
		}
	}
	scratch_free(&s);
	return st;
}

/* ---------------------------------------------------------------------
 * Inference
 */

void
tf_pool(const Tf *m, const float *h, int B, int T, const int *lens, float *pooled)
{
	const int	H = m->H;

	for (int b = 0; b < B; b++)
	{
		const float *hb = h + (size_t) b * T * H;
		float	   *o = pooled + (size_t) b * H;

		if (m->pooling == CAI_POOL_CLS)
		{
			memcpy(o, hb, sizeof(float) * (size_t) H);
			continue;
		}
		for (int j = 0; j < H; j++)
		{
			double		sum = 0.0;

			for (int t = 0; t < lens[b]; t++)
				sum += hb[(size_t) t * H + j];
			o[j] = (float) (sum / (double) lens[b]);
		}
	}
}

/* The longest of inputs idx[0..B). */
static int
batch_T(const TfInputs *in, const int32_t *idx, int B)
{
	int			T = 1;

	for (int b = 0; b < B; b++)
	{
		int			t = (int) (in->id_off[idx[b] + 1] - in->id_off[idx[b]]);

		if (t > T)
			T = t;
	}
	return T;
}

cai_status
tf_forward_infer(const Tf *m, const TfInputs *in, const int32_t *idx, int B, float *out, cai_error *err)
{
	const int	H = m->H;
	const int	T = batch_T(in, idx, B);
	const int32_t pad = special(m, CAI_WP_PAD);
	int32_t    *ids = cai_malloc(sizeof(int32_t) * (size_t) B * T);
	uint8_t    *mask = cai_malloc((size_t) B * T);
	int		   *lens = cai_malloc(sizeof(int) * (size_t) B);
	size_t		nl = 0;
	float	   *x = NULL;
	cai_encoder_acts *acts = NULL;
	cai_status	st;

	for (int b = 0; b < B; b++)
		nl += (size_t) (in->lab_off[idx[b] + 1] - in->lab_off[idx[b]]);
	x = cai_malloc(sizeof(float) * (size_t) H * (m->ner ? nl + 1 : (size_t) B));
	if (ids == NULL || mask == NULL || lens == NULL || x == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a transformer batch");
		goto done;
	}
	for (int b = 0; b < B; b++)
	{
		const int32_t *src = in->ids + in->id_off[idx[b]];

		lens[b] = (int) (in->id_off[idx[b] + 1] - in->id_off[idx[b]]);
		for (int t = 0; t < T; t++)
		{
			ids[(size_t) b * T + t] = t < lens[b] ? src[t] : pad;
			mask[(size_t) b * T + t] = t < lens[b];
		}
	}
	if ((st = cai_encoder_acts_create(&m->b->cfg, B, T, false, &acts, err)) != CAI_OK ||
		(st = cai_encoder_forward(m->b->enc, acts, ids, NULL, mask, false, NULL, err)) != CAI_OK)
		goto done;
	if (!m->ner)
	{
		tf_pool(m, cai_encoder_output(acts), B, T, lens, x);
		cai_linear_forward(out, x, m->head, m->head + (size_t) m->K * H, B, H, m->K);
	}
	else
	{
		const float *h = cai_encoder_output(acts);
		size_t		k = 0;

		for (int b = 0; b < B; b++)
			for (int64_t j = in->lab_off[idx[b]]; j < in->lab_off[idx[b] + 1]; j++)
				memcpy(x + (k++) * H, h + ((size_t) b * T + in->pos[j]) * H, sizeof(float) * (size_t) H);
		if (nl > 0)
			cai_linear_forward(out, x, m->head, m->head + (size_t) m->K * H, (int) nl, H, m->K);
	}
done:
	cai_encoder_acts_free(acts);
	cai_free(ids);
	cai_free(mask);
	cai_free(lens);
	cai_free(x);
	return st;
}

/* Inputs 0..in->n - 1 ordered by length (then index), for batches of similar length. */
static int32_t *
length_order(const TfInputs *in)
{
	NerLenItem *it = cai_malloc(sizeof(NerLenItem) * (in->n + 1));
	int32_t    *order = cai_malloc(sizeof(int32_t) * (in->n + 1));

	if (it == NULL || order == NULL)
	{
		cai_free(it);
		cai_free(order);
		return NULL;
	}
	for (size_t i = 0; i < in->n; i++)
	{
		it[i].len = (int32_t) (in->id_off[i + 1] - in->id_off[i]);
		it[i].pos = (int32_t) i;
		it[i].id = (int32_t) i;
	}
	qsort(it, in->n, sizeof(NerLenItem), ner_cmp_len_asc);
	for (size_t i = 0; i < in->n; i++)
		order[i] = it[i].id;
	cai_free(it);
	return order;
}

cai_status
tf_classify(const Tf *m, const char *const *texts, const size_t *lens, size_t n, float *probs, cai_error *err)
{
	TfInputs	in;
	int32_t    *order = NULL;
	float	   *logits = cai_malloc(sizeof(float) * (size_t) TF_INFER_BATCH * m->K);
	cai_status	st;

	memset(&in, 0, sizeof(in));
	if (logits == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for classification");
	st = tf_inputs_texts(m, texts, lens, NULL, n, NULL, &in, err);
	if (st == CAI_OK && (order = length_order(&in)) == NULL)
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for classification");
	for (size_t b0 = 0; st == CAI_OK && b0 < in.n; b0 += TF_INFER_BATCH)
	{
		int			B = (int) (in.n - b0 < TF_INFER_BATCH ? in.n - b0 : TF_INFER_BATCH);

		if ((st = tf_forward_infer(m, &in, order + b0, B, logits, err)) != CAI_OK)
			break;
		cai_softmax_forward(logits, logits, B, m->K);
		for (int b = 0; b < B; b++)
			memcpy(probs + (size_t) order[b0 + b] * m->K, logits + (size_t) b * m->K, sizeof(float) * (size_t) m->K);
	}
	cai_free(order);
	cai_free(logits);
	tf_inputs_free(&in);
	return st;
}

/* Tags and scores of one window's labels from their emissions e (n, K). */
static cai_status
decode_window(const Tf *m, float *e, int n, int32_t *tags, float *scores, float *marg, cai_error *err)
{
	cai_status	st;

	if (n == 0)
		return CAI_OK;
	if (m->crf)
	{
		if ((st = cai_crf_viterbi(&m->crfp, m->K, e, n, &m->tt.mask, tags, NULL, NULL, err)) != CAI_OK ||
			(st = cai_crf_marginals(&m->crfp, m->K, e, n, &m->tt.mask, marg, NULL, NULL, err)) != CAI_OK)
			return st;
		memcpy(e, marg, sizeof(float) * (size_t) n * m->K);
	}
	else
	{
		cai_softmax_forward(e, e, n, m->K);
		for (int i = 0; i < n; i++)
			tags[i] = cai_argmax(e + (size_t) i * m->K, m->K);
	}
	for (int i = 0; i < n; i++)
		scores[i] = e[(size_t) i * m->K + tags[i]];
	return CAI_OK;
}

/*
 * Token tags of one sentence from its units' tags: units are tokens, or
 * pieces whose chunks are mapped to the tokens they cover; either way the
 * result is re-tagged from its chunks (valid BIOES).  ut, us: the units'
 * tags and scores (nu); unit_tok: the token of each unit; out (nt).
 */
static void
sentence_tags(const Tf *m, const int32_t *ut, const float *us, const int32_t *unit_tok, size_t nu, size_t nt,
			  SentScratch *s, int32_t *pred, float *scores)
{
	size_t		k = tag_chunks(ut, nu, s->pf, s->ty, s->ch);
	size_t		kept = 0;
	int32_t		prev_end = 0;

	for (size_t c = 0; c < k; c++)
	{
		int32_t		a = unit_tok[s->ch[c].start];
		int32_t		b = unit_tok[s->ch[c].end - 1] + 1;

		if (a < prev_end)
			continue;			/* two chunks in one token: the first wins */
		s->tmp[kept].start = a;
		s->tmp[kept].end = b;
		s->tmp[kept].type = s->ch[c].type;
		kept++;
		prev_end = b;
	}
	cai_chunks_to_tags(s->tmp, kept, nt, CAI_SCHEME_BIOES, s->pf, s->ty);
	for (size_t i = 0; i < nt; i++)
		pred[i] = ner_tag_index(s->pf[i], s->ty[i]);
	if (scores != NULL)
	{
		/* a token's score: its first unit's */
		for (size_t i = 0; i < nt; i++)
			scores[i] = 1.0f;
		for (size_t u = nu; u-- > 0;)
			scores[unit_tok[u]] = us[u];
	}
}

cai_status
tf_tag_sentences(const void *model, size_t n, const int64_t *offsets, const char *const *tokens,
				 const size_t *lens, int32_t *pred, float *scores, cai_error *err)
{
	const Tf   *m = model;
	cai_ner_data d = {0};
	TfInputs	in;
	SentScratch s;
	int32_t    *order = NULL;
	float	   *e = NULL;
	int32_t    *wt = NULL;
	float	   *ws = NULL;
	float	   *marg = NULL;
	int32_t    *ut = NULL;			/* per unit of all sentences: tag, score, centrality */
	float	   *us = NULL;
	int32_t    *uc = NULL;
	size_t		total;
	size_t		lmax = 0;
	cai_status	st;

	memset(&in, 0, sizeof(in));
	memset(&s, 0, sizeof(s));
	if (n == 0)
		return CAI_OK;
	/* offsets relative to the first sentence: tokens[offsets[0]] is the first token */
	d.n = n;
	d.offsets = offsets;
	d.tokens = tokens - offsets[0];
	d.token_lens = lens - offsets[0];
	d.tags = NULL;
	if ((st = tf_inputs_sentences(m, &d, NULL, NULL, n, &in, err)) != CAI_OK)
		goto done;
	total = (size_t) in.unit_off[in.n_sent];
	for (size_t i = 0; i < in.n; i++)
		if ((size_t) (in.lab_off[i + 1] - in.lab_off[i]) > lmax)
			lmax = (size_t) (in.lab_off[i + 1] - in.lab_off[i]);
	order = length_order(&in);
	e = cai_malloc(sizeof(float) * ((size_t) in.lab_off[in.n] + 1) * (size_t) m->K);
	wt = cai_malloc(sizeof(int32_t) * (lmax + 1));
	ws = cai_malloc(sizeof(float) * (lmax + 1));
	marg = cai_malloc(sizeof(float) * (lmax + 1) * (size_t) m->K);
	ut = cai_malloc(sizeof(int32_t) * (total + 1));
	us = cai_malloc(sizeof(float) * (total + 1));
	uc = cai_malloc(sizeof(int32_t) * (total + 1));
	if (order == NULL || e == NULL || wt == NULL || ws == NULL || marg == NULL || ut == NULL || us == NULL || uc == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory tagging sentences");
		goto done;
	}
	for (size_t u = 0; u < total; u++)
	{
		ut[u] = 0;
		us[u] = 1.0f;
		uc[u] = -1;
	}
	/* emissions of every label, batch by batch of similar length, at the labels' own place */
	for (size_t b0 = 0; b0 < in.n; b0 += TF_INFER_BATCH)
	{
		int			B = (int) (in.n - b0 < TF_INFER_BATCH ? in.n - b0 : TF_INFER_BATCH);
		float	   *be = NULL;
		size_t		k = 0;

		for (int b = 0; b < B; b++)
			k += (size_t) (in.lab_off[order[b0 + b] + 1] - in.lab_off[order[b0 + b]]);
		if ((be = cai_malloc(sizeof(float) * (k + 1) * (size_t) m->K)) == NULL)
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory tagging sentences");
			goto done;
		}
		if ((st = tf_forward_infer(m, &in, order + b0, B, be, err)) != CAI_OK)
		{
			cai_free(be);
			goto done;
		}
		k = 0;
		for (int b = 0; b < B; b++)
		{
			int32_t		i = order[b0 + b];
			size_t		nl = (size_t) (in.lab_off[i + 1] - in.lab_off[i]);

			memcpy(e + (size_t) in.lab_off[i] * m->K, be + k * m->K, sizeof(float) * nl * (size_t) m->K);
			k += nl;
		}
		cai_free(be);
	}
	/* each window's decode; a unit keeps the prediction of the window where it is most central */
	for (size_t i = 0; i < in.n; i++)
	{
		int32_t		nl = (int32_t) (in.lab_off[i + 1] - in.lab_off[i]);
		int64_t		base = in.unit_off[in.sent[i]];

		if ((st = decode_window(m, e + (size_t) in.lab_off[i] * m->K, nl, wt, ws, marg, err)) != CAI_OK)
			goto done;
		for (int32_t j = 0; j < nl; j++)
		{
			int32_t		u = in.u0[i] + j;
			int32_t		c = j < nl - 1 - j ? j : nl - 1 - j;

			if (c > uc[base + u])
			{
				uc[base + u] = c;
				ut[base + u] = wt[j];
				us[base + u] = ws[j];
			}
		}
	}
	for (size_t r = 0; r < n; r++)
	{
		size_t		nt = (size_t) (offsets[r + 1] - offsets[r]);
		int64_t		u0 = in.unit_off[r];
		size_t		nu = (size_t) (in.unit_off[r + 1] - u0);
		int64_t		o = offsets[r] - offsets[0];

		if (!scratch_fit(&s, nu > nt ? nu : nt))
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory tagging sentences");
			goto done;
		}
		sentence_tags(m, ut + u0, us + u0, in.unit_tok + u0, nu, nt, &s, pred + o, scores != NULL ? scores + o : NULL);
	}
done:
	tf_inputs_free(&in);
	scratch_free(&s);
	cai_free(order);
	cai_free(e);
	cai_free(wt);
	cai_free(ws);
	cai_free(marg);
	cai_free(ut);
	cai_free(us);
	cai_free(uc);
	return st;
}

/* ---------------------------------------------------------------------
 * The registry's run functions
 */

int
cai_tf_n_labels(const void *impl)
{
	const Tf   *m = impl;

	return m->ner ? m->tt.types.n : m->classes.n;
}

const char *
cai_tf_label(const void *impl, int i)
{
	const Tf   *m = impl;

	if (i < 0 || i >= cai_tf_n_labels(impl))
		return NULL;
	return m->ner ? cai_strtab_str(&m->tt.types, i) : cai_strtab_str(&m->classes, i);
}

bool
cai_tf_known_word(const void *impl, const char *word, size_t len)
{
	return cai_encoder_bundle_known_word(((const Tf *) impl)->b, word, len);
}

const cai_encoder_bundle *
cai_tf_encoder(const void *impl)
{
	return ((const Tf *) impl)->b;
}

size_t
cai_tf_memory(const void *impl)
{
	const Tf   *m = impl;
	size_t		n = sizeof(*m) + cai_encoder_bundle_memory(m->b) + cai_strtab_memory(&m->classes) +
		cai_strtab_memory(&m->tt.types) + cai_strtab_memory(&m->tt.labels) + cai_strtab_memory(&m->tt.tags);

	if (m->ner)
		n += sizeof(int32_t) * (size_t) m->K + (size_t) m->K * m->K + 2 * (size_t) m->K;
	if (m->own_head)
		n += sizeof(float) * tf_head_size(m->K, m->H, m->crf);
	return n;
}

cai_status
cai_tf_classify(const void *impl, const char *text, size_t len, float *probs, cai_error *err)
{
	const char *t[1] = {text};
	size_t		l[1] = {len};

	return tf_classify(impl, t, l, 1, probs, err);
}

cai_status
cai_tf_classify_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n, float *probs,
					  cai_error *err)
{
	if (n > 0 && (texts == NULL || lens == NULL || probs == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "texts, lengths and output are required");
	return tf_classify(impl, texts, lens, n, probs, err);
}

cai_status
cai_tf_tag_batch(const void *impl, const cai_ner_data *data, const char **tags_out, float *scores, cai_error *err)
{
	const Tf   *m = impl;
	size_t		ntok;
	int32_t    *pred;
	cai_status	st;

	if (data == NULL || tags_out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "data and output are required");
	if (data->n == 0)
		return CAI_OK;
	if ((st = ner_check_data(data, "input", false, err)) != CAI_OK)
		return st;
	if (cai_ner_data_token_ids(data))
	{
		/* the compact form, as strings */
		cai_ner_data sd;
		void	   *own = NULL;

		if ((st = ner_data_strings(data, &sd, &own, err)) == CAI_OK)
			st = cai_tf_tag_batch(impl, &sd, tags_out, scores, err);
		cai_free(own);
		return st;
	}
	ntok = (size_t) (data->offsets[data->n] - data->offsets[0]);
	if ((pred = cai_malloc(sizeof(int32_t) * (ntok + 1))) == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory tagging sentences");
	st = tf_tag_sentences(m, data->n, data->offsets, data->tokens + data->offsets[0],
						  data->token_lens + data->offsets[0],
						  pred, scores != NULL ? scores + data->offsets[0] : NULL, err);
	if (st == CAI_OK)
		for (size_t i = 0; i < ntok; i++)
			tags_out[data->offsets[0] + (int64_t) i] = cai_strtab_str(&m->tt.labels, m->tt.tag_label[pred[i]]);
	cai_free(pred);
	return st;
}

cai_status
cai_tf_tag(const void *impl, const char *const *tokens, const size_t *lens, size_t n, const char **tags_out,
		   float *scores, cai_error *err)
{
	return ner_tag_one(cai_tf_tag_batch, impl, tokens, lens, n, tags_out, scores, err);
}

cai_status
cai_tf_entities(const void *impl, const char *text, size_t len, size_t max_tokens, cai_entity **out,
				size_t *n_out, cai_error *err)
{
	return ner_entities_with(tf_tag_sentences, impl, text, len, max_tokens, out, n_out, err);
}

cai_status
cai_tf_entities_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n, size_t max_tokens,
					  cai_entity **out, size_t *offsets, cai_error *err)
{
	return ner_entities_batch_with(tf_tag_sentences, impl, texts, lens, n, max_tokens, out, offsets, err);
}

/* ---------------------------------------------------------------------
 * Model bytes
 */

cai_status
tf_serialize(const Tf *m, json_object *root, uint8_t **out, size_t *out_len, cai_error *err)
{
	json_object *sec = json_object_new_object();
	cai_tensor	t[3];
	char	   *vocab_txt = NULL;
	cai_status	st;
	bool		ok;

	ok = sec != NULL &&
		cai_json_put(sec, "max_length", json_object_new_int(m->max_length)) &&
		cai_json_put(sec, "crf", json_object_new_boolean(m->crf)) &&
		cai_json_put(sec, m->ner ? "labeling" : "pooling",
					 json_object_new_string(m->ner ? (m->all_pieces ? "all" : "first") :
											(m->pooling == CAI_POOL_CLS ? "cls" : "mean"))) &&
		cai_json_put(sec, "outputs", json_object_new_int(m->K));
	if (ok)
	{
		ok = cai_json_put(root, "transformer", sec);
		sec = NULL;
	}
	ok = ok && cai_json_put(root, "encoder", cai_encoder_bundle_meta(m->b));
	json_object_put(sec);
	if (!ok)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory writing the model's metadata");
	if ((st = cai_encoder_bundle_tensors(m->b, t, &vocab_txt, err)) != CAI_OK)
		return st;
	memset(&t[2], 0, sizeof(t[2]));
	snprintf(t[2].name, sizeof(t[2].name), "%s", TF_HEAD_TENSOR);
	t[2].dtype = CAI_F32;
	t[2].ndim = 1;
	t[2].shape[0] = (int64_t) tf_head_size(m->K, m->H, m->crf);
	t[2].data = m->head;
	t[2].nbytes = tf_head_size(m->K, m->H, m->crf) * sizeof(float);
	st = cai_format_write(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), t, 3, out, out_len, err);
	cai_free(vocab_txt);
	return st;
}

/* Intern the strings of the metadata array key into t; CAI_ERR_FORMAT when absent or empty. */
static cai_status
strings_of(json_object *root, const char *key, cai_strtab *t, cai_error *err)
{
	json_object *a;
	size_t		n;
	cai_status	st;

	if (!json_object_object_get_ex(root, key, &a) || !json_object_is_type(a, json_type_array) ||
		(n = json_object_array_length(a)) == 0 || n > 100000)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks the \"%s\" of a transformer model", key);
	if ((st = cai_strtab_init(t, (int32_t) n, err)) != CAI_OK)
		return st;
	for (size_t i = 0; i < n; i++)
	{
		json_object *v = json_object_array_get_idx(a, i);
		bool		added = false;
		int32_t		id;

		if (!json_object_is_type(v, json_type_string))
			return cai_error_set(err, CAI_ERR_FORMAT, "metadata \"%s\" element %zu is not a string", key, i);
		if ((st = cai_strtab_intern(t, json_object_get_string(v), (size_t) json_object_get_string_len(v), &id, &added,
									err)) != CAI_OK)
			return st;
		if (!added)
			return cai_error_set(err, CAI_ERR_FORMAT, "metadata \"%s\" repeats \"%.64s\"", key, json_object_get_string(v));
	}
	return CAI_OK;
}

cai_status
cai_tf_load(const cai_model_file *mf, void **impl, cai_error *err)
{
	json_object *root = cai_json_parse_object(mf->meta_json);
	json_object *sec = NULL;
	json_object *enc = NULL;
	json_object *v;
	Tf		   *m = cai_calloc(1, sizeof(Tf));
	const cai_tensor *head;
	int64_t		want;
	int64_t		i64;
	cai_status	st = CAI_OK;

	*impl = NULL;
	if (m == NULL)
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading a transformer model");
	else if (root == NULL || !json_object_object_get_ex(root, "transformer", &sec) ||
			 !json_object_is_type(sec, json_type_object) || !json_object_object_get_ex(root, "encoder", &enc) ||
			 !json_object_object_get_ex(root, "task", &v))
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks the \"transformer\" or \"encoder\" section");
	if (st == CAI_OK)
	{
		m->ner = strcmp(json_object_get_string(v), "ner") == 0;
		st = cai_encoder_bundle_load(mf, enc, &m->b, err);
	}
	if (st == CAI_OK)
	{
		m->H = m->b->cfg.hidden_size;
		st = cai_json_get_int(sec, "transformer", "max_length", 3, m->b->cfg.max_position_embeddings, &i64, err);
		m->max_length = (int) i64;
	}
	if (st == CAI_OK)
	{
		if (!json_object_object_get_ex(sec, "crf", &v) || !json_object_is_type(v, json_type_boolean))
			st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks transformer.crf");
		else
			m->crf = json_object_get_boolean(v);
	}
	if (st == CAI_OK)
	{
		const char *key = m->ner ? "labeling" : "pooling";
		const char *val = json_object_object_get_ex(sec, key, &v) && json_object_is_type(v, json_type_string) ?
			json_object_get_string(v) : "";

		if (m->ner && (strcmp(val, "first") == 0 || strcmp(val, "all") == 0))
			m->all_pieces = strcmp(val, "all") == 0;
		else if (!m->ner && cai_pooling_parse(val, &m->pooling, NULL) == CAI_OK)
			;
		else
			st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata transformer.%s is not valid", key);
		if (st == CAI_OK && m->crf && !m->ner)
			st = cai_error_set(err, CAI_ERR_FORMAT, "a text classifier has no CRF");
	}
	if (st == CAI_OK && m->ner)
	{
		if ((st = strings_of(root, "types", &m->tt.types, err)) == CAI_OK && m->tt.types.n > NER_MAX_TYPES)
			st = cai_error_set(err, CAI_ERR_FORMAT, "too many entity types");
		if (st == CAI_OK)
			st = ner_build_tags(&m->tt, err);
		if (st != CAI_OK && st != CAI_ERR_NOMEM)
			st = CAI_ERR_FORMAT;
		m->K = 1 + 4 * m->tt.types.n;
	}
	else if (st == CAI_OK)
	{
		if ((st = strings_of(root, "labels", &m->classes, err)) == CAI_OK && m->classes.n < 2)
			st = cai_error_set(err, CAI_ERR_FORMAT, "a classifier needs two labels");
		m->K = m->classes.n;
	}
	if (st == CAI_OK && json_object_object_get_ex(sec, "outputs", &v) &&
		(!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != m->K))
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata transformer.outputs disagrees with the labels");
	if (st == CAI_OK)
	{
		want = (int64_t) tf_head_size(m->K, m->H, m->crf);
		st = cai_model_file_expect(mf, TF_HEAD_TENSOR, CAI_F32, 1, &want, &head, err);
	}
	if (st == CAI_OK)
	{
		m->head = (float *) head->data;	/* read-only: never written after load */
		if (!mf->trusted && !cai_all_finite(m->head, (size_t) want))
			st = cai_error_set(err, CAI_ERR_NUMERIC, "tensor \"%s\" holds a non-finite value", TF_HEAD_TENSOR);
		tf_head_views(m);
	}
	json_object_put(root);
	if (st != CAI_OK)
	{
		tf_free(m);
		return st;
	}
	*impl = m;
	return CAI_OK;
}

void
cai_tf_free(void *impl)
{
	tf_free(impl);
}
