/*
 * chunks.c: tag parsing, conlleval's chunk rules, scheme detection and
 * conversion, entity-level evaluation (cai_conll_eval) and a string table.
 * See include/cai/chunks.h and include/cai/ner.h.
 */
#include "cai/chunks.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/ner.h"
#include "modelutil.h"

const char *
cai_chunk_scheme_name(cai_chunk_scheme s)
{
	switch (s)
	{
		case CAI_SCHEME_IOB1:
			return "iob1";
		case CAI_SCHEME_IOB2:
			return "iob2";
		case CAI_SCHEME_BIOES:
			return "bioes";
	}
	return "unknown";
}

bool
cai_tag_parse(const char *tag, char *prefix, const char **type, size_t *type_len)
{
	size_t		len;

	if (tag == NULL)
		return false;
	if (tag[0] == 'O' && tag[1] == '\0')
	{
		*prefix = 'O';
		*type = NULL;
		*type_len = 0;
		return true;
	}
	if (tag[0] != 'B' && tag[0] != 'I' && tag[0] != 'E' && tag[0] != 'S')
		return false;
	if (tag[1] != '-')
		return false;
	len = strnlen(tag + 2, CAI_TAG_TYPE_MAX + 1);
	if (len == 0 || len > CAI_TAG_TYPE_MAX)
		return false;
	*prefix = tag[0];
	*type = tag + 2;
	*type_len = len;
	return true;
}

/* ---------------------------------------------------------------------
 * conlleval's rules (with BIOES as in its Python port)
 */

bool
cai_chunk_ends(char prev, int32_t prev_type, char cur, int32_t cur_type)
{
	if (prev == 'O')
		return false;
	if (prev == 'E' || prev == 'S')
		return true;
	/* prev is B or I */
	if (cur == 'B' || cur == 'S' || cur == 'O')
		return true;
	return prev_type != cur_type;
}

bool
cai_chunk_starts(char prev, int32_t prev_type, char cur, int32_t cur_type)
{
	if (cur == 'O')
		return false;
	if (cur == 'B' || cur == 'S')
		return true;
	/* cur is I or E */
	if (prev == 'O' || prev == 'E' || prev == 'S')
		return true;
	return prev_type != cur_type;
}

size_t
cai_chunks_extract(const char *prefix, const int32_t *type, size_t n, cai_chunk *out)
{
	size_t		k = 0;
	char		prev = 'O';
	int32_t		ptype = -1;
	bool		open = false;

	for (size_t i = 0; i <= n; i++)
	{
		char		cur = i < n ? prefix[i] : 'O';
		int32_t		ctype = i < n && cur != 'O' ? type[i] : -1;

		if (open && cai_chunk_ends(prev, ptype, cur, ctype))
		{
			out[k - 1].end = (int32_t) i;
			open = false;
		}
		/* a non-O tag that starts nothing while no chunk is open cannot
		 * happen under these rules; open one anyway */
		if (cur != 'O' && (!open || cai_chunk_starts(prev, ptype, cur, ctype)))
		{
			if (open)
				out[k - 1].end = (int32_t) i;
			out[k].start = (int32_t) i;
			out[k].end = (int32_t) i + 1;
			out[k].type = ctype;
			k++;
			open = true;
		}
		prev = cur;
		ptype = ctype;
	}
	return k;
}

/* Streaming state of one tag sequence for cai_chunks_count. */
typedef struct ChunkCursor
{
	char		prev;
	int32_t		ptype;
	bool		open;
	int32_t		start;
	int32_t		type;
} ChunkCursor;

/* Advance over tag i (cur, ctype); *closed gets whether a chunk ended before i. */
static inline void
cursor_step(ChunkCursor *c, int32_t i, char cur, int32_t ctype,
			bool *closed, int32_t *cstart, int32_t *ctyp, int64_t *count)
{
	*closed = false;
	if (c->open && cai_chunk_ends(c->prev, c->ptype, cur, ctype))
	{
		*closed = true;
		*cstart = c->start;
		*ctyp = c->type;
		c->open = false;
	}
	if (cur != 'O' && (!c->open || cai_chunk_starts(c->prev, c->ptype, cur, ctype)))
	{
		if (c->open)
		{
			*closed = true;
			*cstart = c->start;
			*ctyp = c->type;
		}
		c->open = true;
		c->start = i;
		c->type = ctype;
		(*count)++;
	}
	c->prev = cur;
	c->ptype = ctype;
}

void
cai_chunks_count(const char *gprefix, const int32_t *gtype,
				 const char *pprefix, const int32_t *ptype, size_t n,
				 int64_t *gold, int64_t *pred, int64_t *correct)
{
	ChunkCursor g = {'O', -1, false, 0, -1};
	ChunkCursor p = {'O', -1, false, 0, -1};

	for (size_t i = 0; i <= n; i++)
	{
		char		gc = i < n ? gprefix[i] : 'O';
		char		pc = i < n ? pprefix[i] : 'O';
		int32_t		gt = gc != 'O' ? gtype[i] : -1;
		int32_t		pt = pc != 'O' ? ptype[i] : -1;
		bool		gclosed,
					pclosed;
		int32_t		gs = 0,
					gty = 0,
					ps = 0,
					pty = 0;

		cursor_step(&g, (int32_t) i, gc, gt, &gclosed, &gs, &gty, gold);
		cursor_step(&p, (int32_t) i, pc, pt, &pclosed, &ps, &pty, pred);
		if (gclosed && pclosed && gs == ps && gty == pty)
			(*correct)++;
	}
}

cai_chunk_scheme
cai_chunk_scheme_detect(const char *prefix, const int32_t *type,
						const int64_t *offsets, size_t n_sent)
{
	int64_t		i_starts = 0;
	int64_t		b_starts = 0;

	for (size_t s = 0; s < n_sent; s++)
	{
		char		prev = 'O';
		int32_t		ptype = -1;

		for (int64_t i = offsets[s]; i < offsets[s + 1]; i++)
		{
			char		cur = prefix[i];
			int32_t		ctype = cur != 'O' ? type[i] : -1;

			if (cur == 'E' || cur == 'S')
				return CAI_SCHEME_BIOES;
			if (cur == 'I' && (prev == 'O' || ptype != ctype))
				i_starts++;
			if (cur == 'B' && (prev == 'O' || ptype != ctype))
				b_starts++;
			prev = cur;
			ptype = ctype;
		}
	}
	return i_starts > b_starts ? CAI_SCHEME_IOB1 : CAI_SCHEME_IOB2;
}

void
cai_chunks_to_tags(const cai_chunk *chunks, size_t n_chunks, size_t n,
				   cai_chunk_scheme scheme, char *prefix, int32_t *type)
{
	for (size_t i = 0; i < n; i++)
	{
		prefix[i] = 'O';
		type[i] = -1;
	}
	for (size_t c = 0; c < n_chunks; c++)
	{
		const cai_chunk *ch = &chunks[c];
		int32_t		len = ch->end - ch->start;

		for (int32_t i = ch->start; i < ch->end; i++)
		{
			prefix[i] = 'I';
			type[i] = ch->type;
		}
		switch (scheme)
		{
			case CAI_SCHEME_BIOES:
				if (len == 1)
					prefix[ch->start] = 'S';
				else
				{
					prefix[ch->start] = 'B';
					prefix[ch->end - 1] = 'E';
				}
				break;
			case CAI_SCHEME_IOB2:
				prefix[ch->start] = 'B';
				break;
			case CAI_SCHEME_IOB1:
				if (c > 0 && chunks[c - 1].end == ch->start && chunks[c - 1].type == ch->type)
					prefix[ch->start] = 'B';
				break;
		}
	}
}

/* ---------------------------------------------------------------------
 * String table
 */

/*
 * The table's own hash, never stored (ids are given in the order strings
 * are added, so nothing depends on its values): it reads 8 or 4 bytes at a
 * time and folds 64 x 64 -> 128-bit products (the structure of wyhash), about
 * four times faster than cai_hash_bytes on words.  Interning every token of
 * the training rows is a fifth of reading them.
 */
static inline uint64_t
strtab_load64(const unsigned char *p)
{
	uint64_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t
strtab_load32(const unsigned char *p)
{
	uint32_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t
strtab_mix(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128) a * b;

	return (uint64_t) r ^ (uint64_t) (r >> 64);
}

#define STRTAB_K0 UINT64_C(0xa0761d6478bd642f)
#define STRTAB_K1 UINT64_C(0xe7037ed1a0b428db)
#define STRTAB_K2 UINT64_C(0x8ebc6af09c88c6e3)

static uint64_t
strtab_hash(const char *str, size_t len)
{
	const unsigned char *p = (const unsigned char *) str;
	uint64_t	h = UINT64_C(0x73747274616221) ^ STRTAB_K0;
	uint64_t	a;
	uint64_t	b;

	if (len <= 16)
	{
		if (len >= 4)
		{
			size_t		q = (len >> 3) << 2;	/* 0 or 4: the two halves overlap for len < 8 */

			a = (strtab_load32(p) << 32) | strtab_load32(p + q);
			b = (strtab_load32(p + len - 4) << 32) | strtab_load32(p + len - 4 - q);
		}
		else if (len > 0)
		{
			a = ((uint64_t) p[0] << 16) | ((uint64_t) p[len >> 1] << 8) | p[len - 1];
			b = 0;
		}
		else
			a = b = 0;
	}
	else
	{
		size_t		i = len;

		while (i > 16)
		{
			h = strtab_mix(strtab_load64(p) ^ STRTAB_K1, strtab_load64(p + 8) ^ h);
			p += 16;
			i -= 16;
		}
		a = strtab_load64(p + i - 16);
		b = strtab_load64(p + i - 8);
	}
	return strtab_mix(STRTAB_K1 ^ (uint64_t) len, strtab_mix(a ^ STRTAB_K1, b ^ h) ^ STRTAB_K2);
}

/* s and t (len bytes each) are equal; inlined for the short strings of words */
static inline bool
strtab_equal(const char *s, const char *t, size_t len)
{
	const unsigned char *a = (const unsigned char *) s;
	const unsigned char *b = (const unsigned char *) t;

	if (len >= 8)
	{
		size_t		i;

		for (i = 0; i + 8 <= len; i += 8)
			if (strtab_load64(a + i) != strtab_load64(b + i))
				return false;
		return i == len || strtab_load64(a + len - 8) == strtab_load64(b + len - 8);
	}
	if (len >= 4)
		return strtab_load32(a) == strtab_load32(b) && strtab_load32(a + len - 4) == strtab_load32(b + len - 4);
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

cai_status
cai_strtab_init(cai_strtab *t, int32_t expected, cai_error *err)
{
	uint32_t	slots = 64;

	memset(t, 0, sizeof(*t));
	if (expected < 16)
		expected = 16;
	while (slots < (uint32_t) expected * 2u && slots < (1u << 30))
		slots <<= 1;
	t->cap = expected;
	t->mask = slots - 1;
	t->slots = cai_malloc(sizeof(uint64_t) * slots);
	t->hash = cai_malloc(sizeof(uint64_t) * (size_t) t->cap);
	t->off = cai_malloc(sizeof(int64_t) * ((size_t) t->cap + 1));
	t->arena_cap = (size_t) expected * 8;
	t->arena = cai_malloc(t->arena_cap);
	if (t->slots == NULL || t->hash == NULL || t->off == NULL || t->arena == NULL)
	{
		cai_strtab_free(t);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for a string table");
	}
	memset(t->slots, 0xff, sizeof(uint64_t) * slots);
	t->off[0] = 0;
	return CAI_OK;
}

void
cai_strtab_free(cai_strtab *t)
{
	cai_free(t->slots);
	cai_free(t->hash);
	cai_free(t->off);
	cai_free(t->arena);
	memset(t, 0, sizeof(*t));
}

/*
 * A slot holds the high 32 bits of its string's hash and its id (low 32
 * bits; all ones when empty): a probe compares the hash bits in the slot
 * itself and reads the string's offsets and bytes only when they match.
 */
#define STRTAB_EMPTY UINT64_MAX
#define STRTAB_ENTRY(h, id) (((h) & UINT64_C(0xffffffff00000000)) | (uint32_t) (id))

static inline int32_t
strtab_lookup(const cai_strtab *t, const char *s, size_t len, uint64_t h, uint32_t *slot)
{
	uint32_t	i = (uint32_t) h & t->mask;
	uint64_t	tag = h >> 32;

	for (;;)
	{
		uint64_t	e = t->slots[i];

		if (e == STRTAB_EMPTY)
		{
			*slot = i;
			return -1;
		}
		if ((e >> 32) == tag)
		{
			int32_t		id = (int32_t) (uint32_t) e;

			if ((size_t) (t->off[id + 1] - t->off[id] - 1) == len &&
				strtab_equal(t->arena + t->off[id], s, len))
			{
				*slot = i;
				return id;
			}
		}
		i = (i + 1) & t->mask;
	}
}

int32_t
cai_strtab_find(const cai_strtab *t, const char *s, size_t len)
{
	uint32_t	slot;

	if (t->slots == NULL)
		return -1;
	return strtab_lookup(t, s, len, strtab_hash(s, len), &slot);
}

static cai_status
strtab_rehash(cai_strtab *t, cai_error *err)
{
	uint32_t	slots = (t->mask + 1) * 2;
	uint64_t   *ns = cai_malloc(sizeof(uint64_t) * slots);

	if (ns == NULL || slots < 2)
	{
		cai_free(ns);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory growing a string table");
	}
	memset(ns, 0xff, sizeof(uint64_t) * slots);
	for (int32_t id = 0; id < t->n; id++)
	{
		uint32_t	i = (uint32_t) t->hash[id] & (slots - 1);

		while (ns[i] != STRTAB_EMPTY)
			i = (i + 1) & (slots - 1);
		ns[i] = STRTAB_ENTRY(t->hash[id], id);
	}
	cai_free(t->slots);
	t->slots = ns;
	t->mask = slots - 1;
	return CAI_OK;
}

cai_status
cai_strtab_intern(cai_strtab *t, const char *s, size_t len, int32_t *id,
				  bool *added, cai_error *err)
{
	uint64_t	h = strtab_hash(s, len);
	uint32_t	slot;
	int32_t		found;
	size_t		need;

	if (added != NULL)
		*added = false;
	found = strtab_lookup(t, s, len, h, &slot);
	if (found >= 0)
	{
		*id = found;
		return CAI_OK;
	}
	if (t->n >= INT32_MAX - 1)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many distinct strings");
	if (t->n == t->cap)
	{
		int32_t		cap = t->cap <= INT32_MAX / 2 ? t->cap * 2 : INT32_MAX - 1;
		uint64_t   *nh = cai_realloc(t->hash, sizeof(uint64_t) * (size_t) t->cap,
									 sizeof(uint64_t) * (size_t) cap);

		if (nh == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM, "out of memory growing a string table");
		t->hash = nh;
		{
			int64_t    *no = cai_realloc(t->off, sizeof(int64_t) * ((size_t) t->cap + 1),
										 sizeof(int64_t) * ((size_t) cap + 1));

			if (no == NULL)
				return cai_error_set(err, CAI_ERR_NOMEM, "out of memory growing a string table");
			t->off = no;
		}
		t->cap = cap;
	}
	if (!cai_size_add(t->arena_len, len + 1, &need))
		return cai_error_set(err, CAI_ERR_LIMIT, "string table is too large");
	if (need > t->arena_cap)
	{
		size_t		cap = t->arena_cap * 2;
		char	   *na;

		if (cap < need)
			cap = need;
		na = cai_realloc(t->arena, t->arena_cap, cap);
		if (na == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM, "out of memory growing a string table");
		t->arena = na;
		t->arena_cap = cap;
	}
	memcpy(t->arena + t->arena_len, s, len);
	t->arena[t->arena_len + len] = '\0';
	t->arena_len = need;
	t->hash[t->n] = h;
	t->off[t->n + 1] = (int64_t) need;
	t->slots[slot] = STRTAB_ENTRY(h, t->n);
	*id = t->n;
	t->n++;
	if (added != NULL)
		*added = true;
	/* keep the load factor at most one half */
	if ((uint32_t) t->n * 2u > t->mask + 1)
		return strtab_rehash(t, err);
	return CAI_OK;
}

const char *
cai_strtab_str(const cai_strtab *t, int32_t id)
{
	if (id < 0 || id >= t->n)
		return NULL;
	return t->arena + t->off[id];
}

size_t
cai_strtab_len(const cai_strtab *t, int32_t id)
{
	if (id < 0 || id >= t->n)
		return 0;
	return (size_t) (t->off[id + 1] - t->off[id] - 1);
}

size_t
cai_strtab_memory(const cai_strtab *t)
{
	return sizeof(uint64_t) * ((size_t) t->mask + 1) +
		(sizeof(uint64_t) + sizeof(int64_t)) * (size_t) t->cap + t->arena_cap;
}

/* ---------------------------------------------------------------------
 * cai_conll_eval
 */

static void
prf(int64_t correct, int64_t pred, int64_t gold, double *p, double *r, double *f)
{
	*p = pred > 0 ? (double) correct / (double) pred : 0.0;
	*r = gold > 0 ? (double) correct / (double) gold : 0.0;
	*f = *p + *r > 0 ? 2.0 * *p * *r / (*p + *r) : 0.0;
}

/* Parse the tags of one side into prefix/type arrays, interning the types. */
static cai_status
eval_parse(const char *const *tags, const int64_t *offsets, size_t n, const char *side,
		   cai_strtab *types, char *prefix, int32_t *type, cai_error *err)
{
	for (size_t s = 0; s < n; s++)
	{
		for (int64_t i = offsets[s]; i < offsets[s + 1]; i++)
		{
			const char *t;
			size_t		tl;
			cai_status	st;

			if (!cai_tag_parse(tags[i], &prefix[i], &t, &tl))
				return cai_error_set(err, CAI_ERR_INVALID,
									 "malformed %s tag \"%.64s\" in sentence %zu (expected O, B-, I-, E- or S- and a type)",
									 side, tags[i] != NULL ? tags[i] : "(null)", s);
			type[i] = -1;
			if (prefix[i] != 'O' &&
				(st = cai_strtab_intern(types, t, tl, &type[i], NULL, err)) != CAI_OK)
				return st;
		}
	}
	return CAI_OK;
}

typedef struct TypeOrder
{
	const cai_strtab *tab;
	int32_t		id;
} TypeOrder;

static int
type_order_cmp(const void *a, const void *b)
{
	const TypeOrder *x = a;
	const TypeOrder *y = b;

	return strcmp(cai_strtab_str(x->tab, x->id), cai_strtab_str(y->tab, y->id));
}

cai_status
cai_conll_eval(const int64_t *offsets, size_t n,
			   const char *const *gold, const char *const *pred,
			   char **json_out, cai_error *err)
{
	size_t		ntok;
	char	   *gp = NULL;
	char	   *pp = NULL;
	int32_t    *gt = NULL;
	int32_t    *pt = NULL;
	cai_chunk  *gch = NULL;
	cai_chunk  *pch = NULL;
	int64_t    *cnt = NULL;		/* (n_types, 3) gold, pred, correct */
	TypeOrder  *order = NULL;
	cai_strtab	types;
	json_object *root = NULL;
	json_object *tj = NULL;
	int64_t		n_gold = 0,
				n_pred = 0,
				n_ok = 0,
				n_acc = 0;
	double		p,
				r,
				f;
	cai_status	st;

	memset(&types, 0, sizeof(types));
	if (json_out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer is required");
	*json_out = NULL;
	if (offsets == NULL || (n > 0 && (gold == NULL || pred == NULL)))
		return cai_error_set(err, CAI_ERR_INVALID, "offsets and tags are required");
	if (offsets[0] != 0)
		return cai_error_set(err, CAI_ERR_INVALID, "offsets must start at 0");
	for (size_t s = 0; s < n; s++)
		if (offsets[s + 1] < offsets[s] || offsets[s + 1] - offsets[s] > INT32_MAX)
			return cai_error_set(err, CAI_ERR_INVALID, "offsets of sentence %zu are not increasing", s);
	ntok = (size_t) offsets[n];

	if ((st = cai_strtab_init(&types, 16, err)) != CAI_OK)
		return st;
	gp = cai_malloc(ntok + 1);
	pp = cai_malloc(ntok + 1);
	gt = cai_malloc(sizeof(int32_t) * (ntok + 1));
	pt = cai_malloc(sizeof(int32_t) * (ntok + 1));
	gch = cai_malloc(sizeof(cai_chunk) * (ntok + 1));
	pch = cai_malloc(sizeof(cai_chunk) * (ntok + 1));
	if (gp == NULL || pp == NULL || gt == NULL || pt == NULL || gch == NULL || pch == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory evaluating %zu tokens", ntok);
		goto done;
	}
	if ((st = eval_parse(gold, offsets, n, "gold", &types, gp, gt, err)) != CAI_OK ||
		(st = eval_parse(pred, offsets, n, "predicted", &types, pp, pt, err)) != CAI_OK)
		goto done;
	cnt = cai_calloc((size_t) types.n * 3 + 1, sizeof(int64_t));
	order = cai_malloc(sizeof(TypeOrder) * ((size_t) types.n + 1));
	if (cnt == NULL || order == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory evaluating %zu tokens", ntok);
		goto done;
	}

	for (size_t s = 0; s < n; s++)
	{
		size_t		o = (size_t) offsets[s];
		size_t		len = (size_t) (offsets[s + 1] - offsets[s]);
		size_t		ng = cai_chunks_extract(gp + o, gt + o, len, gch);
		size_t		np = cai_chunks_extract(pp + o, pt + o, len, pch);
		size_t		a = 0,
					b = 0;

		for (size_t i = o; i < o + len; i++)
			if (strcmp(gold[i], pred[i]) == 0)
				n_acc++;
		for (size_t i = 0; i < ng; i++)
			cnt[gch[i].type * 3 + 0]++;
		for (size_t i = 0; i < np; i++)
			cnt[pch[i].type * 3 + 1]++;
		n_gold += (int64_t) ng;
		n_pred += (int64_t) np;
		/* both lists are ordered by start: merge */
		while (a < ng && b < np)
		{
			if (gch[a].start < pch[b].start)
				a++;
			else if (gch[a].start > pch[b].start)
				b++;
			else
			{
				if (gch[a].end == pch[b].end && gch[a].type == pch[b].type)
				{
					cnt[gch[a].type * 3 + 2]++;
					n_ok++;
				}
				a++;
				b++;
			}
		}
	}

	root = json_object_new_object();
	tj = json_object_new_object();
	if (root == NULL || tj == NULL)
		goto nomem;
	prf(n_ok, n_pred, n_gold, &p, &r, &f);
	if (!cai_json_put(root, "precision", json_object_new_double(p)) ||
		!cai_json_put(root, "recall", json_object_new_double(r)) ||
		!cai_json_put(root, "f1", json_object_new_double(f)) ||
		!cai_json_put(root, "accuracy", json_object_new_double(ntok > 0 ? (double) n_acc / (double) ntok : 0.0)) ||
		!cai_json_put(root, "tokens", json_object_new_int64((int64_t) ntok)) ||
		!cai_json_put(root, "gold_entities", json_object_new_int64(n_gold)) ||
		!cai_json_put(root, "predicted_entities", json_object_new_int64(n_pred)) ||
		!cai_json_put(root, "correct_entities", json_object_new_int64(n_ok)))
		goto nomem;
	for (int32_t i = 0; i < types.n; i++)
	{
		order[i].tab = &types;
		order[i].id = i;
	}
	qsort(order, (size_t) types.n, sizeof(TypeOrder), type_order_cmp);
	for (int32_t k = 0; k < types.n; k++)
	{
		int32_t		i = order[k].id;
		json_object *o = json_object_new_object();

		if (o == NULL)
			goto nomem;
		if (json_object_object_add(tj, cai_strtab_str(&types, i), o) != 0)
		{
			json_object_put(o);
			goto nomem;
		}
		prf(cnt[i * 3 + 2], cnt[i * 3 + 1], cnt[i * 3 + 0], &p, &r, &f);
		if (!cai_json_put(o, "precision", json_object_new_double(p)) ||
			!cai_json_put(o, "recall", json_object_new_double(r)) ||
			!cai_json_put(o, "f1", json_object_new_double(f)) ||
			!cai_json_put(o, "support", json_object_new_int64(cnt[i * 3 + 0])) ||
			!cai_json_put(o, "predicted", json_object_new_int64(cnt[i * 3 + 1])) ||
			!cai_json_put(o, "correct", json_object_new_int64(cnt[i * 3 + 2])))
			goto nomem;
	}
	if (!cai_json_put(root, "types", tj))
	{
		tj = NULL;
		goto nomem;
	}
	tj = NULL;
	{
		const char *js = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);

		*json_out = js != NULL ? cai_strndup(js, strlen(js)) : NULL;
		if (*json_out == NULL)
			goto nomem;
	}
	st = CAI_OK;
	goto done;
nomem:
	st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory building the evaluation report");
done:
	json_object_put(root);
	json_object_put(tj);
	cai_strtab_free(&types);
	cai_free(gp);
	cai_free(pp);
	cai_free(gt);
	cai_free(pt);
	cai_free(gch);
	cai_free(pch);
	cai_free(cnt);
	cai_free(order);
	return st;
}
