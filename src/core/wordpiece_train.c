/*
 * wordpiece_train.c: the WordPiece vocabulary trainer (wordpiece.h has the
 * rules).
 *
 * 1. The texts are split into words by the tokenizer's own basic
 *    tokenization (wp_basic_split), counted in a hash table of distinct words.
 * 2. Every word becomes a sequence of symbols: its first character, then "##"
 *    + each next one.  The alphabet is every such symbol.
 * 3. Merges: a table of adjacent symbol pairs with their counts (occurrences
 *    weighted by word frequency) and the count of every symbol.  Each merge
 *    scans the pair table for the best score count(ab) / (count(a) count(b)),
 *    compared exactly in 128-bit integers, then rewrites only the words that
 *    hold symbol a (an index from symbol to words, which may hold stale
 *    entries): their pairs are taken out, the merge applied left to right,
 *    and their pairs put back.  A merge costs one pass over the pair table
 *    plus the words of a.
 */
#include "wordpiece_internal.h"

#include "cai/tokenize.h"

#include <stdlib.h>
#include <string.h>

#define N_SPECIAL_OUT 5
static const char *const special_out[N_SPECIAL_OUT] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

/* A growable array of bytes, int32 or other fixed-size items. */
typedef struct grow
{
	void	   *p;
	size_t		n;				/* items */
	size_t		cap;
	size_t		size;			/* bytes per item */
} grow;

static bool
grow_reserve(grow *g, size_t more)
{
	size_t		need;
	size_t		cap;
	size_t		old_bytes;
	size_t		new_bytes;
	void	   *p;

	if (!cai_size_add(g->n, more, &need))
		return false;
	if (need <= g->cap)
		return true;
	cap = g->cap < 16 ? 16 : g->cap;
	while (cap < need)
		if (!cai_size_mul(cap, 2, &cap))
			return false;
	if (!cai_size_mul(g->cap, g->size, &old_bytes) || !cai_size_mul(cap, g->size, &new_bytes))
		return false;
	p = cai_realloc(g->p, old_bytes, new_bytes);
	if (p == NULL)
		return false;
	g->p = p;
	g->cap = cap;
	return true;
}

static bool
grow_push(grow *g, const void *item)
{
	if (!grow_reserve(g, 1))
		return false;
	memcpy((char *) g->p + g->n * g->size, item, g->size);
	g->n++;
	return true;
}

/* An open-addressing map from byte strings (in an arena) to int32 ids. */
typedef struct strmap
{
	int32_t    *slots;			/* -1 empty */
	size_t		mask;
	size_t		n;
} strmap;

/* A distinct word: its UTF-8 in the words arena and its symbols. */
typedef struct word
{
	uint32_t	text_off;
	uint32_t	text_len;
	uint64_t	count;
	uint32_t	sym_off;		/* symbols in the syms slab */
	uint32_t	n_sym;			/* current number of symbols */
	uint32_t	stamp;			/* the last merge that visited it */
} word;

typedef struct symbol
{
	uint32_t	text_off;		/* in the symbol arena */
	uint32_t	text_len;
	uint64_t	count;
	grow		words;			/* uint32 word indices (may repeat or be stale) */
} symbol;

/* A pair of adjacent symbols: key a << 32 | b, count. */
typedef struct pair_slot
{
	uint64_t	key;			/* UINT64_MAX empty */
	uint64_t	count;
} pair_slot;

typedef struct trainer
{
	grow		word_text;		/* bytes */
	grow		words;			/* word */
	strmap		word_map;
	grow		sym_text;		/* bytes */
	grow		syms;			/* symbol */
	strmap		sym_map;
	grow		slab;			/* int32 symbol ids of every word */
	pair_slot  *pairs;
	size_t		pair_mask;
	size_t		pair_used;
	char	   *utf8;			/* scratch for one word */
	cai_error  *err;
} trainer;

static inline uint64_t
hash_str(const char *s, size_t n)
{
	return cai_hash_bytes(s, n, 0x77707472u);
}

static inline uint64_t
hash_pair(uint64_t key)
{
	key ^= key >> 33;
	key *= UINT64_C(0xff51afd7ed558ccd);
	key ^= key >> 33;
	return key;
}

/* Find s in m (texts of the entries via arena/offsets); -1 if absent, *slot where it goes. */
static int32_t
strmap_find(const strmap *m, const char *arena, const void *items, size_t item_size,
			const char *s, size_t n, size_t *slot)
{
	for (size_t i = hash_str(s, n) & m->mask;; i = (i + 1) & m->mask)
	{
		int32_t		id = m->slots[i];
		const uint32_t *off;

		if (id < 0)
		{
			*slot = i;
			return -1;
		}
		/* word and symbol both start with text_off, text_len */
		off = (const uint32_t *) ((const char *) items + (size_t) id * item_size);
		if (off[1] == n && memcmp(arena + off[0], s, n) == 0)
			return id;
	}
}

static bool
strmap_init(strmap *m, size_t cap)
{
	m->mask = cap - 1;
	m->n = 0;
	m->slots = cai_malloc(cap * sizeof(int32_t));
	if (m->slots == NULL)
		return false;
	memset(m->slots, 0xFF, cap * sizeof(int32_t));
	return true;
}

/* Double m when half full; the entries are re-hashed from their texts. */
static bool
strmap_grow(strmap *m, const char *arena, const void *items, size_t item_size)
{
	strmap		g;

	if (2 * (m->n + 1) <= m->mask + 1)
		return true;
	if (!strmap_init(&g, 2 * (m->mask + 1)))
		return false;
	for (size_t i = 0; i <= m->mask; i++)
	{
		int32_t		id = m->slots[i];
		const uint32_t *off;
		size_t		slot;

		if (id < 0)
			continue;
		off = (const uint32_t *) ((const char *) items + (size_t) id * item_size);
		strmap_find(&g, arena, items, item_size, arena + off[0], off[1], &slot);
		g.slots[slot] = id;
	}
	g.n = m->n;
	cai_free(m->slots);
	*m = g;
	return true;
}

/* Id of a symbol, created when absent (*created set). -1 on failure. */
static int32_t
symbol_get(trainer *t, const char *s, size_t n, bool *created)
{
	size_t		slot;
	int32_t		id;
	symbol		sym;

	*created = false;
	if (!strmap_grow(&t->sym_map, t->sym_text.p, t->syms.p, sizeof(symbol)))
		return -1;
	id = strmap_find(&t->sym_map, t->sym_text.p, t->syms.p, sizeof(symbol), s, n, &slot);
	if (id >= 0)
		return id;
	if (t->syms.n >= INT32_MAX || t->sym_text.n + n > UINT32_MAX || !grow_reserve(&t->sym_text, n))
		return -1;
	memset(&sym, 0, sizeof(sym));
	sym.text_off = (uint32_t) t->sym_text.n;
	sym.text_len = (uint32_t) n;
	sym.words.size = sizeof(uint32_t);
	memcpy((char *) t->sym_text.p + t->sym_text.n, s, n);
	t->sym_text.n += n;
	if (!grow_push(&t->syms, &sym))
		return -1;
	id = (int32_t) (t->syms.n - 1);
	t->sym_map.slots[slot] = id;
	t->sym_map.n++;
	*created = true;
	return id;
}

/* Count one word (wp_word_fn). */
static cai_status
count_word(void *ctx, const wp_word *w, cai_error *err)
{
	trainer    *t = ctx;
	size_t		n = 0;
	size_t		slot;
	int32_t		id;
	word		wd;

	if (w->special >= 0 || w->too_long || w->n == 0)
		return CAI_OK;
	for (size_t i = 0; i < w->n; i++)
		n += (size_t) cai_utf8_encode(w->chars[i].cp, t->utf8 + n);
	if (!strmap_grow(&t->word_map, t->word_text.p, t->words.p, sizeof(word)))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the word table");
	id = strmap_find(&t->word_map, t->word_text.p, t->words.p, sizeof(word), t->utf8, n, &slot);
	if (id >= 0)
	{
		((word *) t->words.p)[id].count++;
		return CAI_OK;
	}
	if (t->words.n >= INT32_MAX || t->word_text.n + n > UINT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "the texts hold too many distinct words");
	if (!grow_reserve(&t->word_text, n))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the word table");
	memset(&wd, 0, sizeof(wd));
	wd.text_off = (uint32_t) t->word_text.n;
	wd.text_len = (uint32_t) n;
	wd.count = 1;
	memcpy((char *) t->word_text.p + t->word_text.n, t->utf8, n);
	t->word_text.n += n;
	if (!grow_push(&t->words, &wd))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the word table");
	t->word_map.slots[slot] = (int32_t) (t->words.n - 1);
	t->word_map.n++;
	return CAI_OK;
}

/* ---------------------------------------------------------------------
 * Pair counts
 * --------------------------------------------------------------------- */

static bool
pairs_init(trainer *t, size_t cap)
{
	t->pairs = cai_malloc(cap * sizeof(pair_slot));
	if (t->pairs == NULL)
		return false;
	for (size_t i = 0; i < cap; i++)
		t->pairs[i].key = UINT64_MAX;
	t->pair_mask = cap - 1;
	t->pair_used = 0;
	return true;
}

/* Add delta (may be "negative": wrapping) to the count of (a, b). */
static bool
pair_add(trainer *t, int32_t a, int32_t b, uint64_t delta, bool sub)
{
	uint64_t	key = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
	size_t		i;

	if (2 * (t->pair_used + 1) > t->pair_mask + 1)
	{
		pair_slot  *old = t->pairs;
		size_t		old_cap = t->pair_mask + 1;
		size_t		cap = old_cap;
		size_t		live = 0;

		for (size_t k = 0; k < old_cap; k++)
			live += old[k].key != UINT64_MAX && old[k].count > 0;
		while (cap < 4 * (live + 1))
			cap *= 2;
		if (!pairs_init(t, cap))
		{
			t->pairs = old;
			return false;
		}
		for (size_t k = 0; k < old_cap; k++)
		{
			if (old[k].key == UINT64_MAX || old[k].count == 0)
				continue;
			for (i = hash_pair(old[k].key) & t->pair_mask; t->pairs[i].key != UINT64_MAX; i = (i + 1) & t->pair_mask)
				;
			t->pairs[i] = old[k];
			t->pair_used++;
		}
		cai_free(old);
	}
	for (i = hash_pair(key) & t->pair_mask; t->pairs[i].key != UINT64_MAX && t->pairs[i].key != key;
		 i = (i + 1) & t->pair_mask)
		;
	if (t->pairs[i].key == UINT64_MAX)
	{
		t->pairs[i].key = key;
		t->pairs[i].count = 0;
		t->pair_used++;
	}
	if (sub)
		t->pairs[i].count -= delta;
	else
		t->pairs[i].count += delta;
	return true;
}

/* Take a word's pairs and symbol occurrences out of the counts (sub) or put them in. */
static bool
word_account(trainer *t, const word *w, bool sub)
{
	const int32_t *s = (const int32_t *) t->slab.p + w->sym_off;
	symbol	   *syms = t->syms.p;

	for (uint32_t k = 0; k < w->n_sym; k++)
	{
		if (sub)
			syms[s[k]].count -= w->count;
		else
			syms[s[k]].count += w->count;
		if (k + 1 < w->n_sym && !pair_add(t, s[k], s[k + 1], w->count, sub))
			return false;
	}
	return true;
}

/* The best pair: highest score, then count, then lowest (a, b); false when none qualifies. */
static bool
best_pair(const trainer *t, uint64_t min_count, int32_t *a, int32_t *b)
{
	const symbol *syms = t->syms.p;
	const pair_slot *best = NULL;
	unsigned __int128 best_den = 1;

	for (size_t i = 0; i <= t->pair_mask; i++)
	{
		const pair_slot *p = &t->pairs[i];
		unsigned __int128 den;

		if (p->key == UINT64_MAX || p->count == 0 || p->count < min_count)
			continue;
		den = (unsigned __int128) syms[p->key >> 32].count * syms[p->key & 0xFFFFFFFFu].count;
		if (best != NULL)
		{
			/* p->count / den vs best->count / best_den */
			unsigned __int128 l = (unsigned __int128) p->count * best_den;
			unsigned __int128 r = (unsigned __int128) best->count * den;

			if (l < r || (l == r && (p->count < best->count || (p->count == best->count && p->key > best->key))))
				continue;
		}
		best = p;
		best_den = den;
	}
	if (best == NULL)
		return false;
	*a = (int32_t) (best->key >> 32);
	*b = (int32_t) (best->key & 0xFFFFFFFFu);
	return true;
}

/* Merge (a, b) -> m in every word holding a; stamp marks the words done. */
static cai_status
apply_merge(trainer *t, int32_t a, int32_t b, int32_t m, uint32_t stamp)
{
	size_t		n_idx = ((symbol *) t->syms.p)[a].words.n;

	for (size_t k = 0; k < n_idx; k++)
	{
		uint32_t	wi = ((const uint32_t *) ((symbol *) t->syms.p)[a].words.p)[k];
		word	   *w = &((word *) t->words.p)[wi];
		int32_t    *s = (int32_t *) t->slab.p + w->sym_off;
		bool		has = false;
		uint32_t	o = 0;

		if (w->stamp == stamp)
			continue;
		w->stamp = stamp;
		for (uint32_t j = 0; j + 1 < w->n_sym && !has; j++)
			has = s[j] == a && s[j + 1] == b;
		if (!has)
			continue;
		if (!word_account(t, w, true))
			return cai_error_set(t->err, CAI_ERR_NOMEM, "out of memory for pair counts");
		for (uint32_t j = 0; j < w->n_sym; j++)
		{
			if (j + 1 < w->n_sym && s[j] == a && s[j + 1] == b)
			{
				s[o++] = m;
				j++;
			}
			else
				s[o++] = s[j];
		}
		w->n_sym = o;
		if (!word_account(t, w, false) || !grow_push(&((symbol *) t->syms.p)[m].words, &wi))
			return cai_error_set(t->err, CAI_ERR_NOMEM, "out of memory for pair counts");
	}
	return CAI_OK;
}

static int
cmp_u64(const void *x, const void *y)
{
	uint64_t	a = *(const uint64_t *) x;
	uint64_t	b = *(const uint64_t *) y;

	return a < b ? -1 : a > b;
}

/* Split the words into characters and build the alphabet, the slab and the counts. */
static cai_status
build_alphabet(trainer *t)
{
	grow		chars = {NULL, 0, 0, sizeof(uint64_t)};	/* cp << 1 | continuation */
	word	   *words = t->words.p;
	cai_status	st = CAI_OK;
	size_t		n_chars = 0;
	uint64_t   *c;
	size_t		nu = 0;

	for (size_t i = 0; i < t->words.n; i++)
	{
		const char *s = (const char *) t->word_text.p + words[i].text_off;
		size_t		pos = 0;
		bool		first = true;

		while (pos < words[i].text_len)
		{
			int32_t		cp;
			uint64_t	item;

			pos += (size_t) cai_utf8_decode(s + pos, words[i].text_len - pos, &cp);
			item = ((uint64_t) (uint32_t) cp << 1) | (first ? 0 : 1);
			first = false;
			n_chars++;
			if (!grow_push(&chars, &item))
			{
				cai_free(chars.p);
				return cai_error_set(t->err, CAI_ERR_NOMEM, "out of memory for the alphabet");
			}
		}
	}
	/* distinct (cp, continuation), word-initial forms first, each in code point order */
	c = chars.p;
	for (size_t i = 0; i < chars.n; i++)
		c[i] = ((c[i] & 1) << 40) | (c[i] >> 1);
	if (chars.n > 1)
		qsort(c, chars.n, sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; i < chars.n; i++)
	{
		char		buf[6] = {'#', '#'};
		bool		cont = (c[i] >> 40) != 0;
		int			nb;
		bool		created;

		if (nu > 0 && c[nu - 1] == c[i])
			continue;
		c[nu++] = c[i];
		nb = cai_utf8_encode((int32_t) (c[i] & 0xFFFFFFFFFFu), buf + 2);
		if (symbol_get(t, cont ? buf : buf + 2, (size_t) nb + (cont ? 2 : 0), &created) < 0)
		{
			st = cai_error_set(t->err, CAI_ERR_NOMEM, "out of memory for the alphabet");
			break;
		}
	}
	cai_free(chars.p);
	if (st != CAI_OK)
		return st;

	/* every word as symbols, indexed by symbol, and counted */
	if (!grow_reserve(&t->slab, n_chars))
		return cai_error_set(t->err, CAI_ERR_NOMEM, "out of memory for %zu characters", n_chars);
	for (size_t i = 0; i < t->words.n; i++)
	{
		const char *s = (const char *) t->word_text.p + words[i].text_off;
		size_t		pos = 0;

		words[i].sym_off = (uint32_t) t->slab.n;
		words[i].n_sym = 0;
		while (pos < words[i].text_len)
		{
			char		buf[6] = {'#', '#'};
			size_t		nb = (size_t) cai_utf8_decode(s + pos, words[i].text_len - pos, NULL);
			bool		cont = pos > 0;
			bool		created;
			int32_t		id;
			uint32_t	wi = (uint32_t) i;

			memcpy(buf + 2, s + pos, nb);
			pos += nb;
			id = symbol_get(t, cont ? buf : buf + 2, nb + (cont ? 2 : 0), &created);
			if (created)
				return cai_error_set(t->err, CAI_ERR_INTERNAL, "character missing from the alphabet. Please report a bug.");
			if (id < 0 || !grow_push(&((symbol *) t->syms.p)[id].words, &wi))
				return cai_error_set(t->err, CAI_ERR_NOMEM, "out of memory for the word index");
			((int32_t *) t->slab.p)[t->slab.n++] = id;
			words[i].n_sym++;
		}
		if (!word_account(t, &words[i], false))
			return cai_error_set(t->err, CAI_ERR_NOMEM, "out of memory for pair counts");
	}
	return CAI_OK;
}

void
cai_wordpiece_train_options_default(cai_wordpiece_train_options *o)
{
	memset(o, 0, sizeof(*o));
	o->vocab_size = 30522;
	o->min_frequency = 2;
	o->lower_case = true;
	o->max_chars_per_word = CAI_WP_DEFAULT_MAX_CHARS;
}

static void
trainer_free(trainer *t)
{
	symbol	   *syms = t->syms.p;

	for (size_t i = 0; i < t->syms.n; i++)
		cai_free(syms[i].words.p);
	cai_free(t->word_text.p);
	cai_free(t->words.p);
	cai_free(t->word_map.slots);
	cai_free(t->sym_text.p);
	cai_free(t->syms.p);
	cai_free(t->sym_map.slots);
	cai_free(t->slab.p);
	cai_free(t->pairs);
	cai_free(t->utf8);
}

/* The vocabulary: the special tokens, then every symbol in id order. */
static cai_status
write_vocab(const trainer *t, char **out, size_t *out_len, cai_error *err)
{
	const symbol *syms = t->syms.p;
	size_t		len = 0;
	char	   *buf;
	size_t		o = 0;

	for (int s = 0; s < N_SPECIAL_OUT; s++)
		len += strlen(special_out[s]) + 1;
	len += t->sym_text.n + t->syms.n;
	buf = cai_malloc(len + 1);
	if (buf == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a vocabulary of %zu bytes", len);
	for (int s = 0; s < N_SPECIAL_OUT; s++)
	{
		size_t		n = strlen(special_out[s]);

		memcpy(buf + o, special_out[s], n);
		o += n;
		buf[o++] = '\n';
	}
	for (size_t i = 0; i < t->syms.n; i++)
	{
		memcpy(buf + o, (const char *) t->sym_text.p + syms[i].text_off, syms[i].text_len);
		o += syms[i].text_len;
		buf[o++] = '\n';
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return CAI_OK;
}

cai_status
cai_wordpiece_train(const char *const *texts, const size_t *lens, size_t n,
					const cai_wordpiece_train_options *o,
					char **vocab_out, size_t *vocab_len, cai_error *err)
{
	trainer		t;
	wp_char    *chars = NULL;
	cai_status	st = CAI_OK;
	uint32_t	merges = 0;
	size_t		mc;

	if (vocab_out == NULL || vocab_len == NULL || o == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "vocab_out, vocab_len and options must not be NULL");
	*vocab_out = NULL;
	*vocab_len = 0;
	if (n > 0 && (texts == NULL || lens == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "texts and lens must not be NULL");
	if (o->vocab_size < N_SPECIAL_OUT || o->vocab_size > CAI_WP_MAX_VOCAB)
		return cai_error_set(err, CAI_ERR_INVALID, "vocab_size must be between %d and %d, not %d",
							 N_SPECIAL_OUT, CAI_WP_MAX_VOCAB, o->vocab_size);
	if (o->min_frequency < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "min_frequency must be at least 1, not %d", o->min_frequency);
	/* 127 characters of 4 bytes and "##": a token the loader accepts */
	if (o->max_chars_per_word < 1 || o->max_chars_per_word > (CAI_WP_MAX_TOKEN_BYTES - 2) / 4)
		return cai_error_set(err, CAI_ERR_INVALID, "max_chars_per_word must be between 1 and %d, not %d",
							 (CAI_WP_MAX_TOKEN_BYTES - 2) / 4, o->max_chars_per_word);
	mc = (size_t) o->max_chars_per_word;

	memset(&t, 0, sizeof(t));
	t.err = err;
	t.word_text.size = t.sym_text.size = 1;
	t.words.size = sizeof(word);
	t.syms.size = sizeof(symbol);
	t.slab.size = sizeof(int32_t);
	chars = cai_calloc(mc + 1, sizeof(wp_char));
	t.utf8 = cai_malloc(4 * (mc + 1));
	if (chars == NULL || t.utf8 == NULL || !strmap_init(&t.word_map, 1024) || !strmap_init(&t.sym_map, 1024) ||
		!pairs_init(&t, 1024))
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the trainer");
		goto done;
	}

	for (size_t i = 0; i < n && st == CAI_OK; i++)
	{
		if (lens[i] > 0 && texts[i] == NULL)
			st = cai_error_set(err, CAI_ERR_INVALID, "text %zu is NULL", i + 1);
		else
			st = wp_basic_split(NULL, o->lower_case, false, o->max_chars_per_word, texts[i], lens[i],
								chars, count_word, &t, err);
	}
	if (st != CAI_OK || (st = build_alphabet(&t)) != CAI_OK)
		goto done;
	if (N_SPECIAL_OUT + t.syms.n > (size_t) o->vocab_size)
	{
		st = cai_error_set(err, CAI_ERR_INVALID,
						   "vocab_size %d is below the %zu tokens of the special tokens and the alphabet",
						   o->vocab_size, N_SPECIAL_OUT + t.syms.n);
		goto done;
	}

	while (N_SPECIAL_OUT + t.syms.n < (size_t) o->vocab_size)
	{
		int32_t		a;
		int32_t		b;
		int32_t		m;
		bool		created;
		char	   *buf;
		const symbol *sa;
		const symbol *sb;
		size_t		skip;
		size_t		len;

		if (o->progress != NULL && merges % 64 == 0)
		{
			cai_progress p;

			memset(&p, 0, sizeof(p));
			p.fraction = (double) (N_SPECIAL_OUT + t.syms.n) / o->vocab_size;
			if (!o->progress(o->progress_ctx, &p))
			{
				st = cai_error_set(err, CAI_ERR_CANCELLED, "vocabulary training cancelled");
				goto done;
			}
		}
		if (!best_pair(&t, (uint64_t) o->min_frequency, &a, &b))
			break;
		sa = &((const symbol *) t.syms.p)[a];
		sb = &((const symbol *) t.syms.p)[b];
		skip = 2;				/* b is always a "##" continuation */
		len = sa->text_len + sb->text_len - skip;
		buf = cai_malloc(len);
		if (buf == NULL)
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a symbol");
			goto done;
		}
		memcpy(buf, (const char *) t.sym_text.p + sa->text_off, sa->text_len);
		memcpy(buf + sa->text_len, (const char *) t.sym_text.p + sb->text_off + skip, sb->text_len - skip);
		m = symbol_get(&t, buf, len, &created);
		cai_free(buf);
		if (m < 0)
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a symbol");
			goto done;
		}
		merges++;
		if ((st = apply_merge(&t, a, b, m, merges)) != CAI_OK)
			goto done;
	}
	st = write_vocab(&t, vocab_out, vocab_len, err);
done:
	cai_free(chars);
	trainer_free(&t);
	return st;
}
