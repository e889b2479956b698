/*
 * textclf_features.c: what both text-classification architectures use (see
 * textclf_internal.h): the bounded tokenization of a text, the stratified
 * split into training and validation rows, the table of distinct tokens,
 * the training rows as type ids and the choice of a vocabulary.  The
 * tables a model stores (vocabulary, bucket rows) are in textclf_tables.c.
 */
#include "textclf_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelutil.h"
#include "trainer.h"

/* See textclf_internal.h. */
/* len cut to at most max_tokens * bytes_per_token bytes, at a space if one is near the end */
static size_t
textclf_cut(const char *text, size_t len, int max_tokens, size_t bytes_per_token)
{
	size_t		cap = (size_t) max_tokens * bytes_per_token;
	size_t		cut = cap;
	size_t		floor = cap > 256 ? cap - 256 : 0;

	if (len <= cap)
		return len;
	while (cut > 0 && ((unsigned char) text[cut] & 0xC0) == 0x80)
		cut--;
	for (size_t i = cut; i > floor; i--)
	{
		if (text[i - 1] == ' ' || text[i - 1] == '\n' || text[i - 1] == '\t')
		{
			cut = i;
			break;
		}
	}
	return cut;
}

cai_status
cai_textclf_tokenize(const char *text, size_t len, int max_tokens, size_t bytes_per_token,
					 cai_token **toks, size_t *n_toks, cai_error *err)
{
	cai_status	st;

	*toks = NULL;
	*n_toks = 0;
	if (len == 0)
		return CAI_OK;
	if (text == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "text is NULL");
	st = cai_tokenize(text, textclf_cut(text, len, max_tokens, bytes_per_token), 0, toks, n_toks, err);
	if (st != CAI_OK)
		return st;
	if (*n_toks > (size_t) max_tokens)
		*n_toks = (size_t) max_tokens;
	return CAI_OK;
}

/* cai_textclf_tokenize into a buffer kept between calls (cai_tokenize_reuse) */
static cai_status
textclf_tokenize_reuse(const char *text, size_t len, int max_tokens, size_t bytes_per_token,
					   cai_token **toks, size_t *cap, size_t *n_toks, cai_error *err)
{
	cai_status	st;

	*n_toks = 0;
	if (len == 0)
		return CAI_OK;
	if (text == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "text is NULL");
	st = cai_tokenize_reuse(text, textclf_cut(text, len, max_tokens, bytes_per_token), 0, toks, cap, n_toks, err);
	if (st != CAI_OK)
		return st;
	if (*n_toks > (size_t) max_tokens)
		*n_toks = (size_t) max_tokens;
	return CAI_OK;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_fingerprint(const cai_textclf_token_rule *rule, int minn, int maxn, int feature_version,
						uint64_t *out, cai_error *err)
{
	static const char probe[] =
	"The U.S. film's 2nd half isn't bad -- it's GREAT!!! caf\xc3\xa9 na\xc3\xafve "
	"\xe5\xa5\xbd\xe7\x9c\x8b\xe7\x9a\x84\xe7\x94\xb5\xe5\xbd\xb1 "
	"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 3.14 e-mail";
	cai_token  *toks;
	size_t		n;
	uint64_t	h = 14695981039346656037ULL;
	uint64_t	cg[TEXTCLF_CHAR_NGRAMS_MAX];
	char		norm[TEXTCLF_NORM_MAX];
	cai_status	st;

	st = cai_textclf_tokenize(probe, sizeof(probe) - 1, 512, rule->bytes_per_token, &toks, &n, err);
	if (st != CAI_OK)
		return st;
	for (size_t i = 0; i < n; i++)
	{
		size_t		nl = rule->norm(probe, toks, i, n, norm);
		int			nc = cai_textclf_char_ngrams(minn, maxn, norm, nl, cg);

		h = cai_textclf_mix(h ^ (uint64_t) toks[i].start) + (uint64_t) toks[i].end;
		h = cai_textclf_mix(h ^ rule->hash(norm, nl));
		for (int j = 0; j < nc; j++)
			h = cai_textclf_mix(h ^ cg[j]);
	}
	cai_free(toks);
	*out = cai_textclf_mix(h ^ (uint64_t) feature_version);
	return CAI_OK;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_check_token_options(int minn, int maxn, int max_tokens, size_t bytes_per_token,
								uint32_t buckets, uint32_t max_buckets, cai_error *err)
{
	if (minn < 0 || maxn < 0 || (minn == 0) != (maxn == 0) || minn > maxn)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "minn (%d) and maxn (%d) must both be 0 or satisfy 1 <= minn <= maxn",
							 minn, maxn);
	if (max_tokens < 1 || (size_t) max_tokens > INT32_MAX / bytes_per_token)
		return cai_error_set(err, CAI_ERR_INVALID, "max_tokens is out of range");
	if (buckets < 1 || buckets > max_buckets)
		return cai_error_set(err, CAI_ERR_INVALID, "buckets must be 1 to %u", max_buckets);
	return CAI_OK;
}

/* Row i of d as row w of rows (with token ids, src[w] = i + base when rows have src). */
static inline void
textclf_put_row(cai_textclf_rows *rows, size_t w, const cai_textclf_data *d, size_t i, size_t base)
{
	if (rows->src != NULL)
		rows->src[w] = base + i;
	else if (rows->tok_tr == NULL)
	{
		rows->txt[w] = d->texts[i];
		rows->len[w] = d->lens[i];
	}
	rows->lab[w] = d->labels[i];
}

/* The rows of cai_textclf_split. */
static cai_status
textclf_split_rows(const cai_textclf_data *train, const cai_textclf_data *valid,
				   double fraction, int n_labels, uint64_t seed,
				   cai_textclf_rows *rows, cai_error *err)
{
	size_t		n_all = train->n + (valid != NULL ? valid->n : 0);
	bool	   *is_val = NULL;
	cai_status	st;
	size_t		w;

	rows->lab = cai_malloc(sizeof(int32_t) * n_all);
	if (train->tokens != NULL)
	{
		rows->tok_tr = train->tokens;
		rows->tok_va = valid != NULL ? valid->tokens : NULL;
	}
	else
	{
		rows->txt = cai_malloc(sizeof(char *) * n_all);
		rows->len = cai_malloc(sizeof(size_t) * n_all);
	}
	if (rows->lab == NULL || (rows->tok_tr == NULL && (rows->txt == NULL || rows->len == NULL)))
		return NOMEM(err);
	/* the data's order (token ids: no src), the training rows then the validation rows */
	if (valid != NULL || fraction <= 0.0)
	{
		for (size_t i = 0; i < train->n; i++)
			textclf_put_row(rows, i, train, i, 0);
		for (size_t i = 0; valid != NULL && i < valid->n; i++)
			textclf_put_row(rows, train->n + i, valid, i, train->n);
		rows->n_tr = train->n;
		rows->n_va = valid != NULL ? valid->n : 0;
		return CAI_OK;
	}
	if (rows->tok_tr != NULL && (rows->src = cai_malloc(sizeof(size_t) * n_all)) == NULL)
		return NOMEM(err);

	is_val = cai_calloc(train->n + 1, sizeof(bool));
	if (is_val == NULL)
		return NOMEM(err);
	if ((st = cai_textclf_validation_mask(train, fraction, n_labels, seed, is_val, err)) != CAI_OK)
	{
		cai_free(is_val);
		return st;
	}
	w = 0;
	for (int pass = 0; pass < 2; pass++)
	{
		for (size_t i = 0; i < train->n; i++)
		{
			if (is_val[i] != (pass == 1))
				continue;
			textclf_put_row(rows, w++, train, i, 0);
		}
		if (pass == 0)
			rows->n_tr = w;
	}
	rows->n_va = w - rows->n_tr;
	cai_free(is_val);
	return CAI_OK;
}

/* See textclf.h: per class, shuffle its rows, hold out round(count * fraction), keep >= 1 for training. */
cai_status
cai_textclf_validation_mask(const cai_textclf_data *train, double fraction, int n_labels, uint64_t seed,
							bool *is_valid, cai_error *err)
{
	int32_t    *idx = cai_malloc(sizeof(int32_t) * (train->n + 1));
	size_t	   *cls_n = cai_calloc((size_t) n_labels, sizeof(size_t));
	cai_rng		rng;

	if (idx == NULL || cls_n == NULL)
	{
		cai_free(idx);
		cai_free(cls_n);
		return NOMEM(err);
	}
	memset(is_valid, 0, sizeof(bool) * train->n);
	cai_rng_seed(&rng, seed ^ 0x73706c6974ULL);	/* "split" */
	for (size_t i = 0; i < train->n; i++)
		cls_n[train->labels[i]]++;
	for (int c = 0; c < n_labels; c++)
	{
		size_t		m = 0;
		size_t		take;

		if (cls_n[c] < 2)
			continue;
		for (size_t i = 0; i < train->n; i++)
			if (train->labels[i] == c)
				idx[m++] = (int32_t) i;
		cai_rng_shuffle(&rng, idx, m);
		take = (size_t) floor((double) m * fraction + 0.5);
		if (take > m - 1)
			take = m - 1;
		for (size_t j = 0; j < take; j++)
			is_valid[idx[j]] = true;
	}
	cai_free(idx);
	cai_free(cls_n);
	return CAI_OK;
}

/* See textclf_internal.h (the stratified split both architectures use). */
cai_status
cai_textclf_split(const cai_textclf_data *train, const cai_textclf_data *valid,
				  double fraction, int n_labels, uint64_t seed,
				  cai_textclf_rows *rows, size_t *eval_from, size_t *n_eval, cai_error *err)
{
	cai_status	st;

	if ((st = textclf_split_rows(train, valid, fraction, n_labels, seed, rows, err)) != CAI_OK)
		return st;
	if (rows->n_tr == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "no training rows");
	/* scores come from the validation rows, or the training rows when there are none */
	*n_eval = rows->n_va > 0 ? rows->n_va : rows->n_tr;
	*eval_from = rows->n_va > 0 ? rows->n_tr : 0;
	return CAI_OK;
}

void
cai_textclf_rows_free(cai_textclf_rows *rows)
{
	cai_free(rows->txt);
	cai_free(rows->len);
	cai_free(rows->lab);
	cai_free(rows->src);
}

/* See textclf_internal.h. */
bool
cai_textclf_row_text(const cai_textclf_rows *rows, size_t r, char **buf, size_t *cap,
					 const char **text, size_t *len)
{
	const cai_textclf_tokens *t;
	size_t		i;

	if (rows->tok_tr == NULL)
	{
		*text = rows->txt[r];
		*len = rows->len[r];
		return true;
	}
	t = cai_textclf_row_where(rows, r, &i);
	*len = cai_textclf_tokens_text(t, i, buf, cap);
	*text = *buf;
	return *len != (size_t) -1;
}

/* ---------------------------------------------------------------------- */
/* Texts as token ids (cai/textclf.h)                                     */
/* ---------------------------------------------------------------------- */

/* See textclf.h. */
cai_status
cai_textclf_tokens_init(cai_textclf_tokens *t, cai_strtab *words, int max_tokens, cai_error *err)
{
	memset(t, 0, sizeof(*t));
	if (words == NULL || max_tokens < 1 || max_tokens > 100000)
		return cai_error_set(err, CAI_ERR_INVALID, "token rows need a word table and max_tokens 1 to 100000");
	t->words = words;
	t->max_tokens = max_tokens;
	t->cap = 1024;
	t->off = cai_calloc(t->cap + 1, sizeof(int64_t));
	if (t->off == NULL)
		return NOMEM(err);
	return CAI_OK;
}

/* See textclf.h. */
cai_status
cai_textclf_tokens_add(cai_textclf_tokens *t, const char *text, size_t len, cai_error *err)
{
	const size_t chunk = (size_t) 1 << TEXTCLF_TOKENS_CHUNK_BITS;
	cai_token  *toks;
	size_t		nt;
	size_t		c = t->n_chunks > 0 ? t->n_chunks - 1 : 0;
	int32_t    *dst;
	cai_status	st;

	if ((st = textclf_tokenize_reuse(text, len, t->max_tokens, TEXTCLF_BYTES_PER_TOKEN, &t->scratch, &t->scratch_cap,
									 &nt, err)) != CAI_OK)
		return st;
	toks = t->scratch;
	if (t->n == t->cap)
	{
		/* the row offsets grow by half (copied; 8 bytes a row) */
		size_t		nc = t->cap + t->cap / 2;

		if (!cai_grow_array((void **) &t->off, sizeof(int64_t), t->cap + 1, nc + 1))
			return NOMEM(err);
		t->cap = nc;
	}
	/* a new chunk when this one cannot hold the row (positions stay below chunk) */
	if (t->n_chunks == 0 || t->fill[c] + nt >= chunk)
	{
		if (t->n_chunks == t->chunks_cap)
		{
			size_t		nc = t->chunks_cap == 0 ? 16 : 2 * t->chunks_cap;

			if (!cai_grow_array((void **) &t->chunks, sizeof(int32_t *), t->chunks_cap, nc) ||
				!cai_grow_array((void **) &t->fill, sizeof(uint32_t), t->chunks_cap, nc))
				return NOMEM(err);
			t->chunks_cap = nc;
		}
		if ((t->chunks[t->n_chunks] = cai_malloc(sizeof(int32_t) * chunk)) == NULL)
			return NOMEM(err);
		c = t->n_chunks++;
		t->fill[c] = 0;
		t->off[t->n] = (int64_t) c << TEXTCLF_TOKENS_CHUNK_BITS;
	}
	dst = t->chunks[c] + t->fill[c];
	for (size_t i = 0; i < nt; i++)
	{
		if ((st = cai_strtab_intern(t->words, text + toks[i].start, (size_t) (toks[i].end - toks[i].start),
									&dst[i], NULL, err)) != CAI_OK)
			return st;
	}
	t->fill[c] += (uint32_t) nt;
	t->off[++t->n] = ((int64_t) c << TEXTCLF_TOKENS_CHUNK_BITS) + t->fill[c];
	return CAI_OK;
}

/* See textclf.h. */
void
cai_textclf_tokens_free(cai_textclf_tokens *t)
{
	for (size_t c = 0; c < t->n_chunks; c++)
		cai_free(t->chunks[c]);
	cai_free(t->chunks);
	cai_free(t->fill);
	cai_free(t->off);
	cai_free(t->scratch);
	memset(t, 0, sizeof(*t));
}

/* See textclf.h. */
size_t
cai_textclf_tokens_memory(const cai_textclf_tokens *t)
{
	return (t->cap + 1) * sizeof(int64_t) + t->n_chunks * (sizeof(int32_t) << TEXTCLF_TOKENS_CHUNK_BITS) +
		t->chunks_cap * (sizeof(int32_t *) + sizeof(uint32_t)) + t->scratch_cap * sizeof(cai_token);
}

/* See textclf.h. */
size_t
cai_textclf_tokens_text(const cai_textclf_tokens *t, size_t i, char **buf, size_t *cap)
{
	size_t		need = 1;
	size_t		n = 0;
	size_t		nt;
	const int32_t *ids = cai_textclf_tokens_row(t, i, &nt);

	for (size_t k = 0; k < nt; k++)
		need += cai_strtab_len(t->words, ids[k]) + 1;
	if (need > *cap)
	{
		char	   *nb = cai_realloc(*buf, *cap, need);

		if (nb == NULL)
			return (size_t) -1;
		*buf = nb;
		*cap = need;
	}
	for (size_t k = 0; k < nt; k++)
	{
		size_t		l = cai_strtab_len(t->words, ids[k]);

		if (n > 0)
			(*buf)[n++] = ' ';
		memcpy(*buf + n, cai_strtab_str(t->words, ids[k]), l);
		n += l;
	}
	(*buf)[n] = '\0';
	return n;
}

void
cai_textclf_types_free(cai_textclf_types *tt)
{
	cai_free(tt->arena);
	cai_free(tt->hash);
	cai_free(tt->off);
	cai_free(tt->len);
	cai_free(tt->count);
	cai_free(tt->slot);
}

int64_t
cai_textclf_types_find(const cai_textclf_types *tt, const char *s, size_t len, uint64_t h)
{
	if (tt->slot == NULL)
		return -1;
	for (size_t i = h & tt->mask; tt->slot[i] != 0; i = (i + 1) & tt->mask)
	{
		size_t		t = tt->slot[i] - 1;

		if (tt->hash[t] == h && tt->len[t] == len && memcmp(tt->arena + tt->off[t], s, len) == 0)
			return (int64_t) t;
	}
	return -1;
}

int64_t
cai_textclf_types_intern(cai_textclf_types *tt, const char *s, size_t len, uint64_t h)
{
	size_t		i;

	if (tt->slot == NULL || (tt->n + 1) * 2 > tt->mask + 1)
	{
		size_t		ncap = tt->slot == NULL ? 1024 : (tt->mask + 1) * 2;
		uint32_t   *ns = cai_calloc(ncap, sizeof(uint32_t));

		if (ns == NULL || ncap > ((size_t) 1 << 31))
		{
			cai_free(ns);
			return -1;
		}
		for (size_t t = 0; t < tt->n; t++)
		{
			for (i = tt->hash[t] & (ncap - 1); ns[i] != 0; i = (i + 1) & (ncap - 1))
				;
			ns[i] = (uint32_t) t + 1;
		}
		cai_free(tt->slot);
		tt->slot = ns;
		tt->mask = ncap - 1;
	}
	for (i = h & tt->mask; tt->slot[i] != 0; i = (i + 1) & tt->mask)
	{
		size_t		t = tt->slot[i] - 1;

		if (tt->hash[t] == h && tt->len[t] == len && memcmp(tt->arena + tt->off[t], s, len) == 0)
			return (int64_t) t;
	}
	if (tt->n == tt->cap)
	{
		size_t		nc = tt->cap == 0 ? 1024 : tt->cap * 2;

		if (!cai_grow_array((void **) &tt->hash, sizeof(uint64_t), tt->cap, nc) ||
			!cai_grow_array((void **) &tt->off, sizeof(size_t), tt->cap, nc) ||
			!cai_grow_array((void **) &tt->len, sizeof(uint32_t), tt->cap, nc) ||
			!cai_grow_array((void **) &tt->count, sizeof(int64_t), tt->cap, nc))
			return -1;
		tt->cap = nc;
	}
	if (tt->arena_len + len + 1 > tt->arena_cap)
	{
		size_t		nc = tt->arena_cap == 0 ? 65536 : tt->arena_cap;

		while (nc < tt->arena_len + len + 1)
			nc *= 2;
		if (!cai_grow_array((void **) &tt->arena, 1, tt->arena_cap, nc))
			return -1;
		tt->arena_cap = nc;
	}
	memcpy(tt->arena + tt->arena_len, s, len);
	tt->arena[tt->arena_len + len] = '\0';
	tt->hash[tt->n] = h;
	tt->off[tt->n] = tt->arena_len;
	tt->len[tt->n] = (uint32_t) len;
	tt->count[tt->n] = 0;
	tt->arena_len += len + 1;
	tt->slot[i] = (uint32_t) tt->n + 1;
	return (int64_t) tt->n++;
}

/* Room in *tok_type (*tok_cap entries) for need entries. */
static bool
textclf_tok_room(int32_t **tok_type, size_t *tok_cap, size_t need)
{
	size_t		nc;

	if (need <= *tok_cap)
		return true;
	nc = *tok_cap == 0 ? 65536 : *tok_cap;
	while (nc < need)
		nc *= 2;
	if (!cai_grow_array((void **) tok_type, sizeof(int32_t), *tok_cap, nc))
		return false;
	*tok_cap = nc;
	return true;
}

/*
 * cai_textclf_tokenize_rows for rows of token ids: each word is normalized
 * by rule once, at its first occurrence in row order, so the types are
 * interned in the order, and counted as, tokenizing the texts would.
 */
static cai_status
textclf_tokenize_ids(const cai_textclf_rows *rows, const cai_textclf_token_rule *rule,
					 struct cai_trainer *tk, cai_textclf_types *types, size_t *off,
					 int32_t **tok_type, size_t *tok_cap, int32_t **word_type, int32_t *eos_out,
					 cai_error *err)
{
	size_t		n_all = rows->n_tr + rows->n_va;
	const cai_strtab *words = rows->tok_tr->words;
	int32_t    *map;
	int64_t		eos_type = -1;
	char		norm[TEXTCLF_NORM_MAX];

	if (rule->max_tokens != rows->tok_tr->max_tokens || rule->bytes_per_token != TEXTCLF_BYTES_PER_TOKEN ||
		(rows->tok_va != NULL && (rows->tok_va->max_tokens != rows->tok_tr->max_tokens ||
								  rows->tok_va->words != words)))
		return cai_error_set(err, CAI_ERR_INVALID,
							 "the rows were read as token ids for max_tokens %d, not %d (or with other words)",
							 rows->tok_tr->max_tokens, rule->max_tokens);
	map = cai_malloc(sizeof(int32_t) * ((size_t) words->n + 1));
	if (map == NULL)
		return NOMEM(err);
	memset(map, 0xff, sizeof(int32_t) * ((size_t) words->n + 1));
	for (size_t r = 0; r < n_all; r++)
	{
		size_t		nt;
		const int32_t *ids = cai_textclf_row_ids(rows, r, &nt);

		if ((r & 255) == 0 && !cai_trainer_tick(tk, 0.0))
		{
			cai_free(map);
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		}
		if (off != NULL && !textclf_tok_room(tok_type, tok_cap, off[r] + nt + 1))
		{
			cai_free(map);
			return NOMEM(err);
		}
		for (size_t i = 0; i < nt + (size_t) rule->eos; i++)
		{
			int64_t		ty = i < nt ? map[ids[i]] : eos_type;

			if (ty < 0)
			{
				size_t		nl;

				if (i < nt)
				{
					cai_token	tok = {0};

					tok.end = (int64_t) cai_strtab_len(words, ids[i]);
					nl = rule->norm(cai_strtab_str(words, ids[i]), &tok, 0, 1, norm);
				}
				else
					nl = rule->norm(NULL, NULL, 0, 0, norm);	/* the end-of-text token */
				ty = cai_textclf_types_intern(types, norm, nl, rule->hash(norm, nl));
				if (ty < 0 || ty >= INT32_MAX)
				{
					cai_free(map);
					return NOMEM(err);
				}
				if (i < nt)
					map[ids[i]] = (int32_t) ty;
				else
					eos_type = ty;
			}
			if (off != NULL)
				(*tok_type)[off[r] + i] = (int32_t) ty;
			if (r < rows->n_tr)
				types->count[ty]++;
		}
		if (off != NULL)
			off[r + 1] = off[r] + nt + (size_t) rule->eos;
	}
	if (word_type != NULL)
	{
		*word_type = map;
		*eos_out = (int32_t) eos_type;
		return CAI_OK;
	}
	cai_free(map);
	return CAI_OK;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_type_words(const cai_textclf_rows *rows, const cai_textclf_token_rule *rule,
					   struct cai_trainer *tk, cai_textclf_types *types, int32_t **word_type,
					   int32_t *eos_type, cai_error *err)
{
	return textclf_tokenize_ids(rows, rule, tk, types, NULL, NULL, NULL, word_type, eos_type, err);
}

/* See textclf_internal.h. */
cai_status
cai_textclf_tokenize_rows(const cai_textclf_rows *rows, const cai_textclf_token_rule *rule,
						  struct cai_trainer *tk, cai_textclf_types *types, size_t **tok_off,
						  int32_t **tok_type, size_t *tok_cap, cai_error *err)
{
	size_t		n_all = rows->n_tr + rows->n_va;
	char		norm[TEXTCLF_NORM_MAX];
	cai_status	st;

	*tok_off = cai_calloc(n_all + 1, sizeof(size_t));
	if (*tok_off == NULL)
		return NOMEM(err);
	if (rows->tok_tr != NULL)
		return textclf_tokenize_ids(rows, rule, tk, types, *tok_off, tok_type, tok_cap, NULL, NULL, err);
	for (size_t r = 0; r < n_all; r++)
	{
		size_t	   *off = *tok_off;
		cai_token  *toks;
		size_t		nt;

		if ((r & 255) == 0 && !cai_trainer_tick(tk, 0.0))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		if ((st = cai_textclf_tokenize(rows->txt[r], rows->len[r], rule->max_tokens,
									   rule->bytes_per_token, &toks, &nt, err)) != CAI_OK)
			return st;
		if (!textclf_tok_room(tok_type, tok_cap, off[r] + nt + 1))
		{
			cai_free(toks);
			return NOMEM(err);
		}
		for (size_t i = 0; i < nt + (size_t) rule->eos; i++)
		{
			size_t		nl = rule->norm(rows->txt[r], toks, i, nt, norm);
			int64_t		ty = cai_textclf_types_intern(types, norm, nl, rule->hash(norm, nl));

			if (ty < 0 || ty >= INT32_MAX)
			{
				cai_free(toks);
				return NOMEM(err);
			}
			(*tok_type)[off[r] + i] = (int32_t) ty;
			if (r < rows->n_tr)
				types->count[ty]++;
		}
		cai_free(toks);
		off[r + 1] = off[r] + nt + (size_t) rule->eos;
	}
	return CAI_OK;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_choose_vocab(const cai_textclf_types *tt, int64_t min_count, int32_t **type_vocab,
						 cai_textclf_vocab_item **items, int32_t *V, cai_error *err)
{
	size_t		nv = 0;

	*type_vocab = cai_malloc(sizeof(int32_t) * (tt->n + 1));
	*items = cai_malloc(sizeof(cai_textclf_vocab_item) * (tt->n + 1));
	if (*type_vocab == NULL || *items == NULL)
		return NOMEM(err);
	for (size_t i = 0; i < tt->n; i++)
	{
		(*type_vocab)[i] = -1;
		/* the model stores words NUL-terminated: a token holding a NUL byte gets no row */
		if (tt->count[i] >= min_count && tt->len[i] > 0 &&
			memchr(tt->arena + tt->off[i], '\0', tt->len[i]) == NULL)
		{
			(*items)[nv].s = tt->arena + tt->off[i];
			(*items)[nv].count = tt->count[i];
			(*items)[nv].type = (int32_t) i;
			nv++;
		}
	}
	if (nv > 0)
		qsort(*items, nv, sizeof(cai_textclf_vocab_item), cai_textclf_vocab_item_cmp);
	for (size_t v = 0; v < nv; v++)
		(*type_vocab)[(*items)[v].type] = (int32_t) v;
	*V = (int32_t) nv;
	return CAI_OK;
}

int
cai_textclf_vocab_item_cmp(const void *a, const void *b)
{
	const cai_textclf_vocab_item *x = a;
	const cai_textclf_vocab_item *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->s, y->s);
}
