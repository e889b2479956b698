/*
 * ner_tag.c: tagging with a trained or loaded NER model: decoding encoded
 * sentences in batches of similar length (also used by training to
 * validate), cai_ner_tag and cai_ner_tag_batch, entities in raw text
 * (cai_ner_entities, and cai_ner_entities_batch for many texts at once),
 * and character spans to training tags (cai_ner_spans_to_tags).
 */
#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ner_internal.h"

/* ---------------------------------------------------------------------- */
/* Batches                                                                */
/* ---------------------------------------------------------------------- */

/* qsort orders of NerLenItem: longest first, and shortest first; ties by pos. */
int
ner_cmp_len_desc(const void *a, const void *b)
{
	const NerLenItem *x = a;
	const NerLenItem *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int
ner_cmp_len_asc(const void *a, const void *b)
{
	const NerLenItem *x = a;
	const NerLenItem *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Bounds of a workspace for batches of up to B pieces of e. */
cai_status
ner_enc_bounds(const NerEnc *e, int B, int *maxT, size_t *maxN, size_t *maxNc, cai_error *err)
{
	NerLenItem *it = cai_malloc(sizeof(NerLenItem) * (e->n + 1));

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

			it[p].len = pass == 0 ? (int32_t) (z - a) : (int32_t) ner_enc_span_chars(e, a, z);
			it[p].pos = (int32_t) p;
		}
		qsort(it, e->n, sizeof(NerLenItem), ner_cmp_len_desc);
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
cai_status
ner_enc_decode_batch(const cai_ner *m, const NerEnc *e, const int32_t *order, int B, NerWs *ws,
					 int32_t *pred, float *scores, cai_error *err)
{
	cai_status	st;

	if ((st = ner_net_forward(m, e, order, B, ws, NULL, err)) != CAI_OK ||
		(st = ner_net_decode(m, ws, scores != NULL, err)) != CAI_OK)
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
cai_status
ner_enc_decode(const cai_ner *m, const NerEnc *e, const int32_t *order, NerWs *ws,
			   int32_t *pred, float *scores, cai_trainer *tk, double frac0, double frac1,
			   cai_error *err)
{
	for (size_t p0 = 0; p0 < e->n; p0 += NER_EVAL_BATCH)
	{
		int			B = (int) (e->n - p0 < NER_EVAL_BATCH ? e->n - p0 : NER_EVAL_BATCH);
		cai_status	st;

		if ((st = ner_enc_decode_batch(m, e, order + p0, B, ws, pred, scores, err)) != CAI_OK)
			return st;
		if (tk != NULL && !cai_trainer_tick(tk, frac0 + (frac1 - frac0) * (double) (p0 + B) / (double) e->n))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
	}
	return CAI_OK;
}

/* Pieces of e in increasing length (stable): the evaluation order. */
void
ner_enc_length_order(const NerEnc *e, NerLenItem *tmp, int32_t *order)
{
	for (size_t p = 0; p < e->n; p++)
	{
		tmp[p].len = (int32_t) (e->soff[p + 1] - e->soff[p]);
		tmp[p].pos = (int32_t) p;
	}
	qsort(tmp, e->n, sizeof(NerLenItem), ner_cmp_len_asc);
	for (size_t p = 0; p < e->n; p++)
		order[p] = tmp[p].pos;
}

/* Inference workspace fitting every NER_EVAL_BATCH batch of e in order. */
cai_status
ner_ws_for_order(const NerDims *d, const NerEnc *e, const int32_t *order, NerWs *ws,
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
			Nc += (size_t) ner_enc_span_chars(e, a, z);
		}
		if (N > maxN)
			maxN = N;
		if (Nc > maxNc)
			maxNc = Nc;
	}
	return ner_ws_init(ws, d, e->n < NER_EVAL_BATCH ? (int) e->n : NER_EVAL_BATCH, maxT, maxN, maxNc,
					   false, bytes_only, bytes, err);
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
ner_tag_internal(const cai_ner *m, size_t n, const int64_t *offsets, const cai_ner_data *src,
				 int32_t *pred, float *scores, cai_error *err)
{
	NerEnc		e;
	NerWs		ws;
	NerLenItem *tmp = NULL;
	int32_t    *order = NULL;
	cai_status	st;

	memset(&ws, 0, sizeof(ws));
	if (n == 0 || offsets[n] == offsets[0])
		return CAI_OK;
	if ((st = ner_enc_build(m, n, offsets, NULL, src, m->max_tokens, &e, err)) != CAI_OK)
		return st;
	tmp = cai_malloc(sizeof(NerLenItem) * (e.n + 1));
	order = cai_malloc(sizeof(int32_t) * (e.n + 1));
	if (tmp == NULL || order == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	ner_enc_length_order(&e, tmp, order);
	if ((st = ner_ws_for_order(&m->net.d, &e, order, &ws, false, NULL, err)) != CAI_OK)
		goto done;
	st = ner_enc_decode(m, &e, order, &ws, pred, scores, NULL, 0, 0, err);
done:
	ner_ws_free(&ws);
	cai_free(tmp);
	cai_free(order);
	ner_enc_free(&e);
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
	if ((st = ner_check_data(data, "input", false, err)) != CAI_OK)
		return st;
	ntok = (size_t) (data->offsets[data->n] - data->offsets[0]);
	pred = cai_malloc(sizeof(int32_t) * (ntok + 1));
	if (pred == NULL)
		return NOMEM(err);
	st = ner_tag_internal(m, data->n, data->offsets, data, pred,
						  scores != NULL ? scores + data->offsets[0] : NULL, err);
	if (st == CAI_OK)
		for (size_t i = 0; i < ntok; i++)
			tags_out[data->offsets[0] + (int64_t) i] = cai_strtab_str(&m->labels, m->tag_label[pred[i]]);
	cai_free(pred);
	return st;
}

cai_status
ner_tag_one(ner_tag_batch_fn tag_batch, const void *m, const char *const *tokens, const size_t *lens,
			size_t n, const char **tags_out, float *scores, cai_error *err)
{
	int64_t		off[2] = {0, (int64_t) n};
	cai_ner_data d = {0};

	if (n == 0)
		return CAI_OK;
	if (tokens == NULL || lens == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "tokens and lengths are required");
	d.n = 1;
	d.offsets = off;
	d.tokens = tokens;
	d.token_lens = lens;
	d.tags = NULL;
	return tag_batch(m, &d, tags_out, scores, err);
}

static cai_status
ner_tag_batch_fn_of(const void *m, const cai_ner_data *data, const char **tags_out, float *scores, cai_error *err)
{
	return cai_ner_tag_batch(m, data, tags_out, scores, err);
}

cai_status
cai_ner_tag(const cai_ner *m, const char *const *tokens, const size_t *lens,
			size_t n, const char **tags_out, float *scores, cai_error *err)
{
	return ner_tag_one(ner_tag_batch_fn_of, m, tokens, lens, n, tags_out, scores, err);
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

/*
 * End (exclusive) of the sentence of toks[s0..ntok), s0 < ntok: after a
 * sentence-ending token, before a line break, or after NER_SENT_BREAK tokens.
 */
static size_t
sentence_next(const char *text, const cai_token *toks, size_t ntok, size_t s0)
{
	size_t		i;

	for (i = s0; i + 1 < ntok && i + 1 - s0 < NER_SENT_BREAK; i++)
		if (sentence_end(text + toks[i].start, (size_t) (toks[i].end - toks[i].start)) ||
			memchr(text + toks[i].end, '\n', (size_t) (toks[i + 1].start - toks[i].end)) != NULL)
			break;
	return i + 1;
}

/* Room for one more entity in *out (capacity *cap). */
static cai_status
entities_reserve(cai_entity **out, size_t n_out, size_t *cap, cai_error *err)
{
	size_t		nc;
	cai_entity *p;

	if (n_out < *cap)
		return CAI_OK;
	nc = *cap < 16 ? 16 : *cap * 2;
	p = cai_realloc(*out, sizeof(cai_entity) * *cap, sizeof(cai_entity) * nc);
	if (p == NULL)
		return NOMEM(err);
	*out = p;
	*cap = nc;
	return CAI_OK;
}

/*
 * Append the entities of one tagged sentence, toks[0..n) (n <= NER_SENT_BREAK)
 * with internal tags pred and marginals scores, to *out (*n_out of capacity
 * *cap).  ch, pf and ty are scratch of NER_SENT_BREAK entries.
 */
static cai_status
sentence_entities(const cai_token *toks, size_t n, const int32_t *pred, const float *scores,
				  cai_chunk *ch, char *pf, int32_t *ty, cai_entity **out, size_t *n_out, size_t *cap,
				  cai_error *err)
{
	size_t		k;

	for (size_t i = 0; i < n; i++)
	{
		pf[i] = ner_tag_prefix(pred[i]);
		ty[i] = ner_tag_type(pred[i]);
	}
	k = cai_chunks_extract(pf, ty, n, ch);
	for (size_t c = 0; c < k; c++)
	{
		cai_entity *en;
		double		sum = 0.0;
		cai_status	st;

		if ((st = entities_reserve(out, *n_out, cap, err)) != CAI_OK)
			return st;
		en = &(*out)[(*n_out)++];
		en->start = toks[ch[c].start].start;
		en->end = toks[ch[c].end - 1].end;
		en->cstart = toks[ch[c].start].cstart;
		en->cend = toks[ch[c].end - 1].cend;
		en->type = ch[c].type;
		for (int32_t i = ch[c].start; i < ch[c].end; i++)
			sum += scores[i];
		en->score = (float) (sum / (double) (ch[c].end - ch[c].start));
		if (!(en->score > 0.0f))
			en->score = FLT_MIN;
		if (en->score > 1.0f)
			en->score = 1.0f;
	}
	return CAI_OK;
}

/* Tag tokens toks[t0..t1) of text as sentences (offsets sent (ns + 1)), append entities. */
static cai_status
entities_group(ner_tag_fn tag, const void *m, const char *text, const cai_token *toks, const int64_t *sent, size_t ns,
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
		if ((st = tag(m, ns, rel, ptr, lens, pred, scores, err)) != CAI_OK)
			return st;
	}
	for (size_t s = 0; s < ns; s++)
	{
		int64_t		a = sent[s] - t0;

		if ((st = sentence_entities(toks + sent[s], (size_t) (sent[s + 1] - sent[s]), pred + a, scores + a,
									ch, pf, ty, out, n_out, cap, err)) != CAI_OK)
			return st;
	}
	return CAI_OK;
}

/* ner_tag_internal as a ner_tag_fn */
static cai_status
ner_tag_sentences(const void *m, size_t n, const int64_t *offsets, const char *const *tokens, const size_t *lens,
				  int32_t *pred, float *scores, cai_error *err)
{
	cai_ner_data src = {0};

	src.tokens = tokens;
	src.token_lens = lens;
	return ner_tag_internal(m, n, offsets, &src, pred, scores, err);
}

cai_status
cai_ner_entities(const cai_ner *m, const char *text, size_t len, size_t max_tokens,
				 cai_entity **out, size_t *n_out, cai_error *err)
{
	return ner_entities_with(ner_tag_sentences, m, text, len, max_tokens, out, n_out, err);
}

cai_status
ner_entities_with(ner_tag_fn tag, const void *m, const char *text, size_t len, size_t max_tokens,
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
	/* groups of NER_EVAL_BATCH sentences in text order */
	sent[0] = 0;
	for (size_t s0 = 0; s0 < ntok;)
	{
		s0 = sentence_next(text, toks, ntok, s0);
		sent[++ns] = (int64_t) s0;
		if (ns == NER_EVAL_BATCH || s0 == ntok)
		{
			if ((st = entities_group(tag, m, text, toks, sent, ns, ptr, lens, pred, scores, ch, pf, ty,
									 out, n_out, &cap, err)) != CAI_OK)
				goto done;
			sent[0] = (int64_t) s0;
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

/*
 * cai_ner_entities_batch: the sentences of many texts, tagged together.  A
 * window gathers whole sentences of consecutive texts (their tokens copied)
 * up to ENT_WINDOW_SENTENCES sentences or ENT_WINDOW_TOKENS tokens; a full
 * window is tagged as one ner_tag_internal call (its pieces sorted by length
 * into batches of NER_EVAL_BATCH) and its entities appended in text order.
 * Scratch is bounded by the window, plus the tokens of the text being split
 * (as in cai_ner_entities).
 */
#define ENT_WINDOW_SENTENCES (16 * NER_EVAL_BATCH)
#define ENT_WINDOW_TOKENS	 32768

typedef struct EntWindow
{
	size_t		ns;				/* sentences */
	size_t		ntok;			/* tokens */
	size_t		cap;			/* token capacity of tok, ptr, lens, pred, scores */
	int64_t    *soff;			/* (ENT_WINDOW_SENTENCES + 1) first token of each sentence */
	size_t	   *text;			/* (ENT_WINDOW_SENTENCES) text of each sentence */
	cai_token  *tok;			/* (cap) tokens, offsets into their text */
	const char **ptr;			/* (cap) token bytes */
	size_t	   *lens;			/* (cap) */
	int32_t    *pred;			/* (cap) internal tags */
	float	   *scores;			/* (cap) marginals */
	cai_chunk  *ch;				/* (NER_SENT_BREAK) */
	char	   *pf;				/* (NER_SENT_BREAK) */
	int32_t    *ty;				/* (NER_SENT_BREAK) */
} EntWindow;

static void
ent_window_free(EntWindow *w)
{
	cai_free(w->soff);
	cai_free(w->text);
	cai_free(w->tok);
	cai_free(w->ptr);
	cai_free(w->lens);
	cai_free(w->pred);
	cai_free(w->scores);
	cai_free(w->ch);
	cai_free(w->pf);
	cai_free(w->ty);
}

/* Token capacity of w for at least need tokens (need <= ENT_WINDOW_TOKENS). */
static cai_status
ent_window_grow(EntWindow *w, size_t need, cai_error *err)
{
	size_t		nc = w->cap < 256 ? 256 : w->cap;
	void	   *p;

	if (need <= w->cap)
		return CAI_OK;
	while (nc < need)
		nc *= 2;
	if (nc > ENT_WINDOW_TOKENS)
		nc = ENT_WINDOW_TOKENS;
#define GROW(field) \
	do { \
		if ((p = cai_realloc(w->field, sizeof(*w->field) * w->cap, sizeof(*w->field) * nc)) == NULL) \
			return NOMEM(err); \
		w->field = p; \
	} while (0)
	GROW(tok);
	GROW(ptr);
	GROW(lens);
	GROW(pred);
	GROW(scores);
#undef GROW
	w->cap = nc;
	return CAI_OK;
}

/* Tag the window's sentences, append their entities and count them per text (counts[text]); empty it. */
static cai_status
ent_window_flush(ner_tag_fn tag, const void *m, EntWindow *w, const char *const *texts, cai_entity **out, size_t *n_out,
				 size_t *cap, size_t *counts, cai_error *err)
{
	cai_status	st;

	for (size_t s = 0; s < w->ns; s++)
		for (int64_t i = w->soff[s]; i < w->soff[s + 1]; i++)
		{
			w->ptr[i] = texts[w->text[s]] + w->tok[i].start;
			w->lens[i] = (size_t) (w->tok[i].end - w->tok[i].start);
		}
	if ((st = tag(m, w->ns, w->soff, w->ptr, w->lens, w->pred, w->scores, err)) != CAI_OK)
		return st;
	for (size_t s = 0; s < w->ns; s++)
	{
		int64_t		a = w->soff[s];
		size_t		before = *n_out;

		if ((st = sentence_entities(w->tok + a, (size_t) (w->soff[s + 1] - a), w->pred + a, w->scores + a,
									w->ch, w->pf, w->ty, out, n_out, cap, err)) != CAI_OK)
			return st;
		counts[w->text[s]] += *n_out - before;
	}
	w->ns = 0;
	w->ntok = 0;
	return CAI_OK;
}

cai_status
cai_ner_entities_batch(const cai_ner *m, const char *const *texts, const size_t *lens, size_t n,
					   size_t max_tokens, cai_entity **out, size_t *offsets, cai_error *err)
{
	return ner_entities_batch_with(ner_tag_sentences, m, texts, lens, n, max_tokens, out, offsets, err);
}

cai_status
ner_entities_batch_with(ner_tag_fn tag, const void *m, const char *const *texts, const size_t *lens, size_t n,
						size_t max_tokens, cai_entity **out, size_t *offsets, cai_error *err)
{
	EntWindow	w;
	cai_token  *toks = NULL;
	size_t		n_out = 0;
	size_t		cap = 0;
	cai_status	st = CAI_OK;

	if (out == NULL || offsets == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointers are required");
	*out = NULL;
	memset(offsets, 0, sizeof(size_t) * (n + 1));
	if (m == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model is required");
	if (n == 0)
		return CAI_OK;
	if (texts == NULL || lens == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "texts and lengths are required");
	memset(&w, 0, sizeof(w));
	w.soff = cai_malloc(sizeof(int64_t) * (ENT_WINDOW_SENTENCES + 1));
	w.text = cai_malloc(sizeof(size_t) * ENT_WINDOW_SENTENCES);
	w.ch = cai_malloc(sizeof(cai_chunk) * NER_SENT_BREAK);
	w.pf = cai_malloc(NER_SENT_BREAK);
	w.ty = cai_malloc(sizeof(int32_t) * NER_SENT_BREAK);
	if (w.soff == NULL || w.text == NULL || w.ch == NULL || w.pf == NULL || w.ty == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	w.soff[0] = 0;
	/* offsets[i + 1] counts the entities of text i until the end */
	for (size_t i = 0; i < n; i++)
	{
		size_t		ntok = 0;
		cai_error	e2 = {0};

		if (lens[i] == 0)
			continue;
		if ((st = cai_tokenize(texts[i], lens[i], max_tokens, &toks, &ntok, &e2)) != CAI_OK)
		{
			cai_error_set(err, st, "text %zu: %s", i, e2.msg);
			goto done;
		}
		for (size_t s0 = 0; s0 < ntok;)
		{
			size_t		s1 = sentence_next(texts[i], toks, ntok, s0);

			if (w.ns == ENT_WINDOW_SENTENCES || w.ntok + (s1 - s0) > ENT_WINDOW_TOKENS)
			{
				if ((st = ent_window_flush(tag, m, &w, texts, out, &n_out, &cap, offsets + 1, err)) != CAI_OK)
					goto done;
			}
			if ((st = ent_window_grow(&w, w.ntok + (s1 - s0), err)) != CAI_OK)
				goto done;
			memcpy(w.tok + w.ntok, toks + s0, sizeof(cai_token) * (s1 - s0));
			w.ntok += s1 - s0;
			w.text[w.ns] = i;
			w.soff[++w.ns] = (int64_t) w.ntok;
			s0 = s1;
		}
		cai_free(toks);
		toks = NULL;
	}
	if (w.ns > 0)
		st = ent_window_flush(tag, m, &w, texts, out, &n_out, &cap, offsets + 1, err);
done:
	if (st == CAI_OK)
	{
		for (size_t i = 0; i < n; i++)
			offsets[i + 1] += offsets[i];
	}
	else
		memset(offsets, 0, sizeof(size_t) * (n + 1));
	if (st != CAI_OK || n_out == 0)
	{
		cai_free(*out);
		*out = NULL;
	}
	cai_free(toks);
	ent_window_free(&w);
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
