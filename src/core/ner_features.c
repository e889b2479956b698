/*
 * ner_features.c: the input of the NER network (see ner_internal.h): the
 * features of each token, the vocabulary counts they are built from, the
 * encoding of sentences into feature rows, and the checks of cai_ner_data.
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
 *   bigrams (option char_bigrams; NerDims.bigrams) two more rows of
 *           word_emb: the bigram of the token with the one before it and
 *           the bigram with the one after it (Zhang and Yang 2018's
 *           character bigrams; for text tagged a character a token, the
 *           standard feature for Chinese and Japanese).  A bigram's key in
 *           the word vocabulary is its two normalized tokens joined: as the
 *           word they spell when both are one CJK character ("中国", so
 *           that vector sets of Chinese words initialise them), else with
 *           a space between; NER_BIGRAM_EDGE stands for the neighbour
 *           before the first token and after the last.  Bigrams seen at
 *           least max(min_count, NER_BIGRAM_MIN) times get a row; others
 *           use row 0, the unknown word.
 */
#include <inttypes.h>
#include <string.h>

#include "ner_internal.h"

/* ---------------------------------------------------------------------- */
/* Token features                                                         */
/* ---------------------------------------------------------------------- */

/* Embedding row of a vocabulary key (a normalized word or a bigram key; 0 = unknown). */
static inline int32_t
ner_vocab_row(const cai_ner *m, const char *key, size_t len)
{
	return (m->loaded ? cai_strindex_find(&m->wordix, key, len) : cai_strtab_find(&m->words, key, len)) + 1;
}

/* Embedding row of a word (0 = unknown). */
static inline int32_t
ner_word_row(const cai_ner *m, const char *s, size_t len)
{
	char		norm[NER_NORM_MAX];
	size_t		n = ner_norm(s, len, norm);

	return ner_vocab_row(m, norm, n);
}

/*
 * Each of the len + 1 bigram keys of a sentence (the tokens from..from+len
 * of src), in order: bigram k joins token k - 1 and token k (the edge for
 * k = 0 and k = len), passed to fn with k.
 */
typedef cai_status (*ner_bigram_fn) (void *ctx, size_t k, const char *key, size_t len, cai_error *err);

static cai_status
ner_sentence_bigrams(const cai_ner_data *src, int64_t from, size_t len, ner_bigram_fn fn, void *ctx,
					 cai_error *err)
{
	char		prev[NER_NORM_MAX];
	char		cur[NER_NORM_MAX];
	char		key[2 * NER_NORM_MAX];
	size_t		pl = strlen(NER_BIGRAM_EDGE);
	cai_status	st;

	memcpy(prev, NER_BIGRAM_EDGE, pl);
	for (size_t k = 0; k <= len; k++)
	{
		size_t		cl,
					kl;

		if (k < len)
		{
			size_t		tl;
			const char *tok = cai_ner_data_token(src, from + (int64_t) k, &tl);

			cl = ner_norm(tok, tl, cur);
		}
		else
		{
			cl = strlen(NER_BIGRAM_EDGE);
			memcpy(cur, NER_BIGRAM_EDGE, cl);
		}
		kl = cai_bigram_key(prev, pl, cur, cl, key, sizeof(key));
		if ((st = fn(ctx, k, key, kl, err)) != CAI_OK)
			return st;
		memcpy(prev, cur, cl);
		pl = cl;
	}
	return CAI_OK;
}

/* ner_enc_build's bigram rows of one sentence: its first token's at bigram. */
typedef struct NerBigramRows
{
	const cai_ner *m;
	int32_t    *bigram;			/* (2 len) left and right bigram of each token */
	size_t		len;
} NerBigramRows;

static cai_status
ner_bigram_rows_fn(void *ctx, size_t k, const char *key, size_t len, cai_error *err)
{
	NerBigramRows *r = ctx;
	int32_t		row = ner_vocab_row(r->m, key, len);

	(void) err;
	if (k < r->len)
		r->bigram[2 * k] = row;
	if (k > 0)
		r->bigram[2 * (k - 1) + 1] = row;
	return CAI_OK;
}

/* See ner.h. */
bool
cai_ner_known_word(const cai_ner *m, const char *word, size_t len)
{
	return m != NULL && word != NULL && ner_word_row(m, word, len) > 0;
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

void
ner_enc_free(NerEnc *e)
{
	cai_free(e->soff);
	cai_free(e->type);
	cai_free(e->word);
	cai_free(e->casing);
	cai_free(e->coff);
	cai_free(e->chars);
	cai_free(e->tags);
	cai_free(e->bigram);
	memset(e, 0, sizeof(*e));
}

/* Append type id's features (token tok of len bytes) to e, growing its arrays. */
static cai_status
ner_enc_add_type(const cai_ner *m, NerEnc *e, size_t *tcap, size_t *ccap, const char *tok, size_t len,
				 cai_error *err)
{
	const size_t id = e->ntypes;
	int32_t		buf[NER_WORD_CHARS];
	int			nc;

	if (id == *tcap)
	{
		size_t		c2 = *tcap * 2;

		if (!cai_grow_array((void **) &e->word, sizeof(int32_t), *tcap, c2) ||
			!cai_grow_array((void **) &e->casing, 1, *tcap, c2) ||
			!cai_grow_array((void **) &e->coff, sizeof(int64_t), *tcap + 1, c2 + 1))
			return NOMEM(err);
		*tcap = c2;
	}
	e->word[id] = ner_word_row(m, tok, len);
	e->casing[id] = (uint8_t) cai_token_casing(tok, len);
	nc = ner_char_rows(m, tok, len, buf);
	if ((size_t) e->coff[id] + (size_t) nc > *ccap)
	{
		/* doubled until the word fits: one doubling is not enough for a long word in a short text */
		size_t		c2 = *ccap * 2;

		while ((size_t) e->coff[id] + (size_t) nc > c2)
			c2 *= 2;
		if (!cai_grow_array((void **) &e->chars, sizeof(int32_t), *ccap, c2))
			return NOMEM(err);
		*ccap = c2;
	}
	memcpy(e->chars + e->coff[id], buf, sizeof(int32_t) * (size_t) nc);
	e->coff[id + 1] = e->coff[id] + nc;
	e->ntypes++;
	return CAI_OK;
}

/*
 * Encode n sentences given by offsets (n + 1) over the tokens of src
 * (checked: ner_check_data), splitting sentences longer than max_tokens.
 * Empty sentences are kept (as empty).  start NULL: sentence i is tokens
 * offsets[i] .. offsets[i + 1] of src; else it is the same number of tokens
 * from token start[i] (a selection of the caller's sentences, encoded as if
 * they were consecutive).
 */
cai_status
ner_enc_build(const cai_ner *m, size_t n, const int64_t *offsets, const int64_t *start,
			  const cai_ner_data *src, int max_tokens, NerEnc *e, cai_error *err)
{
	size_t		ntok = (size_t) (offsets[n] - offsets[0]);
	size_t		npieces = 0;
	size_t		tcap = ntok < 1024 ? ntok + 1 : 1024;	/* types: at most the tokens */
	size_t		ccap = tcap * 4;
	size_t		s = 0;
	cai_strtab	types = {0};
	int32_t    *type_of = NULL;
	cai_status	st = CAI_OK;

	memset(e, 0, sizeof(*e));
	for (size_t i = 0; i < n; i++)
	{
		int64_t		len = offsets[i + 1] - offsets[i];

		npieces += len <= max_tokens ? 1 : (size_t) ((len + max_tokens - 1) / max_tokens);
	}
	e->n = npieces;
	e->ntok = ntok;
	e->soff = cai_malloc(sizeof(int64_t) * (npieces + 1));
	e->type = cai_malloc(sizeof(int32_t) * (ntok + 1));
	e->word = cai_malloc(sizeof(int32_t) * tcap);
	e->casing = cai_malloc(tcap);
	e->coff = cai_malloc(sizeof(int64_t) * (tcap + 1));
	e->chars = cai_malloc(sizeof(int32_t) * ccap);
	if (m->net.d.bigrams)
		e->bigram = cai_malloc(sizeof(int32_t) * (2 * ntok + 1));
	if (e->soff == NULL || e->type == NULL || e->word == NULL || e->casing == NULL || e->coff == NULL ||
		e->chars == NULL || (m->net.d.bigrams && e->bigram == NULL))
	{
		ner_enc_free(e);
		return NOMEM(err);
	}
	/*
	 * A type per distinct token string: given as ids, the caller's string id
	 * names it (type_of); given as strings, they are interned here.  Either
	 * way types are numbered in first-seen order.
	 */
	if (cai_ner_data_token_ids(src))
	{
		if ((type_of = cai_malloc(sizeof(int32_t) * (src->n_strings + 1))) == NULL)
		{
			ner_enc_free(e);
			return NOMEM(err);
		}
		memset(type_of, 0xff, sizeof(int32_t) * (src->n_strings + 1));
	}
	else if ((st = cai_strtab_init(&types, (int32_t) tcap, err)) != CAI_OK)
	{
		ner_enc_free(e);
		return st;
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
	for (size_t i = 0; i < n && st == CAI_OK; i++)
	{
		int64_t		from = start != NULL ? start[i] : offsets[i];
		size_t		t0 = (size_t) (offsets[i] - offsets[0]);
		size_t		len_i = (size_t) (offsets[i + 1] - offsets[i]);

		for (size_t k = 0; k < len_i && st == CAI_OK; k++)
		{
			size_t		t = t0 + k;
			size_t		len;
			const char *tok = cai_ner_data_token(src, from + (int64_t) k, &len);
			int32_t		id = 0;
			bool		added = false;

			if (type_of != NULL)
			{
				int32_t		sid = src->token_ids[from + (int64_t) k];

				if ((added = type_of[sid] < 0))
					type_of[sid] = (int32_t) e->ntypes;
				id = type_of[sid];
			}
			else
				st = cai_strtab_intern(&types, tok, len, &id, &added, err);
			if (st == CAI_OK && added)
				st = ner_enc_add_type(m, e, &tcap, &ccap, tok, len, err);
			e->type[t] = id;
		}
		if (st == CAI_OK && e->bigram != NULL)
		{
			NerBigramRows r = {m, e->bigram + 2 * t0, len_i};

			st = ner_sentence_bigrams(src, from, len_i, ner_bigram_rows_fn, &r, err);
		}
	}
	cai_strtab_free(&types);
	cai_free(type_of);
	if (st != CAI_OK)
		ner_enc_free(e);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Vocabulary counts                                                      */
/* ---------------------------------------------------------------------- */

void
ner_counter_free(NerCounter *c)
{
	cai_strtab_free(&c->tab);
	cai_free(c->cnt);
	memset(c, 0, sizeof(*c));
}

static cai_status
counter_add(NerCounter *c, const char *s, size_t len, cai_error *err)
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

static cai_status
counter_bigram_fn(void *ctx, size_t k, const char *key, size_t len, cai_error *err)
{
	(void) k;
	return counter_add(ctx, key, len, err);
}

/*
 * Count the normalized words and the code points of the tokens of s, and
 * with bc (not NULL) the bigram keys of its sentences.
 */
cai_status
ner_count_vocab(const NerSide *s, NerCounter *wc, NerCounter *cc, NerCounter *bc, cai_error *err)
{
	cai_status	st;

	if ((st = cai_strtab_init(&wc->tab, 1024, err)) != CAI_OK ||
		(st = cai_strtab_init(&cc->tab, 256, err)) != CAI_OK ||
		(bc != NULL && (st = cai_strtab_init(&bc->tab, 1024, err)) != CAI_OK))
		return st;
	for (size_t i = 0; i < s->n && bc != NULL; i++)
		if ((st = ner_sentence_bigrams(s->src, s->start[i], (size_t) (s->off[i + 1] - s->off[i]),
									   counter_bigram_fn, bc, err)) != CAI_OK)
			return st;
	for (size_t i = 0; i < s->n; i++)
		for (int64_t j = s->off[i]; j < s->off[i + 1]; j++)
		{
			char		norm[NER_NORM_MAX];
			size_t		len;
			const char *tok = ner_side_token(s, i, j, &len);
			size_t		n = ner_norm(tok, len, norm);
			size_t		pos = 0;

			if ((st = counter_add(wc, norm, n, err)) != CAI_OK)
				return st;
			while (pos < len)
			{
				int32_t		cp;
				int			k = cai_utf8_decode(tok + pos, len - pos, &cp);

				if (k <= 0)
					break;
				if (cp >= 0 && (st = counter_add(cc, tok + pos, (size_t) k, err)) != CAI_OK)
					return st;
				pos += (size_t) k;
			}
		}
	return CAI_OK;
}

/* The share of the tokens of s that are one CJK character (0 for no tokens). */
double
ner_cjk_share(const NerSide *s)
{
	int64_t		cjk = 0;
	int64_t		ntok = s->n > 0 ? s->off[s->n] : 0;

	for (size_t i = 0; i < s->n; i++)
		for (int64_t j = s->off[i]; j < s->off[i + 1]; j++)
		{
			size_t		len;
			const char *tok = ner_side_token(s, i, j, &len);

			cjk += cai_token_is_one_cjk(tok, len);
		}
	return ntok > 0 ? (double) cjk / (double) ntok : 0.0;
}

/* See ner_internal.h. */
cai_status
ner_data_strings(const cai_ner_data *d, cai_ner_data *out, void **owned, cai_error *err)
{
	size_t		ntok;
	bool		tag_ids = cai_ner_data_tag_ids(d);
	char	   *block;
	const char **tok;
	size_t	   *len;
	const char **tag = NULL;
	int64_t		a;
	cai_status	st;

	*out = *d;
	*owned = NULL;
	if (!cai_ner_data_token_ids(d) && !tag_ids)
		return CAI_OK;
	/* the ids are read below: checked first (a tag id out of range reads as NULL, refused later) */
	if ((st = ner_check_data(d, "input", false, err)) != CAI_OK || d->n == 0)
		return st;
	/* the arrays keep the data's indexing (offsets[0] need not be 0) */
	ntok = (size_t) d->offsets[d->n];
	block = cai_malloc((sizeof(char *) * 2 + sizeof(size_t)) * (ntok + 1));
	if (block == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for %zu tokens", ntok);
	tok = (const char **) block;
	len = (size_t *) (block + sizeof(char *) * (ntok + 1));
	if (tag_ids)
		tag = (const char **) (block + (sizeof(char *) + sizeof(size_t)) * (ntok + 1));
	for (a = d->offsets[0]; a < d->offsets[d->n]; a++)
	{
		tok[a] = cai_ner_data_token(d, a, &len[a]);
		if (tag != NULL)
			tag[a] = cai_ner_data_tag(d, a);
	}
	out->tokens = tok;
	out->token_lens = len;
	out->token_ids = NULL;
	if (tag != NULL)
	{
		out->tags = tag;
		out->tag_ids = NULL;
	}
	*owned = block;
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Input checks                                                           */
/* ---------------------------------------------------------------------- */

/*
 * Check data of sentences (what names it in messages): offsets that never
 * decrease, tokens NULL only when empty, and with need_tags the tags.
 */
cai_status
ner_check_data(const cai_ner_data *d, const char *what, bool need_tags, cai_error *err)
{
	bool		ids = cai_ner_data_token_ids(d);

	if (d->n > 0 && (d->offsets == NULL ||
					 (ids ? d->strings == NULL || d->string_lens == NULL : d->tokens == NULL || d->token_lens == NULL)))
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
	if (need_tags && !cai_ner_data_has_tags(d))
		return cai_error_set(err, CAI_ERR_INVALID, "%s data has no tags", what);
	if (need_tags && cai_ner_data_tag_ids(d))
		for (int64_t i = d->offsets[0]; i < d->offsets[d->n]; i++)
			if (d->tag_ids[i] >= d->n_tag_names)
				return cai_error_set(err, CAI_ERR_INVALID, "%s tag id %u of token %" PRId64 " is not below %zu",
									 what, (unsigned) d->tag_ids[i], i, d->n_tag_names);
	if (ids)
	{
		for (int64_t i = d->offsets[0]; i < d->offsets[d->n]; i++)
			if (d->token_ids[i] < 0 || (size_t) d->token_ids[i] >= d->n_strings)
				return cai_error_set(err, CAI_ERR_INVALID, "%s token id %d of token %" PRId64 " is not below %zu",
									 what, (int) d->token_ids[i], i, d->n_strings);
		for (size_t k = 0; k < d->n_strings; k++)
			if (d->strings[k] == NULL && d->string_lens[k] > 0)
				return cai_error_set(err, CAI_ERR_INVALID, "%s string %zu is NULL", what, k);
		return CAI_OK;
	}
	for (int64_t i = d->offsets[0]; i < d->offsets[d->n]; i++)
		if (d->tokens[i] == NULL && d->token_lens[i] > 0)
			return cai_error_set(err, CAI_ERR_INVALID, "%s token %" PRId64 " is NULL", what, i);
	return CAI_OK;
}
