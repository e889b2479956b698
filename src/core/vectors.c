/*
 * vectors.c: word vector sets (include/cai/vectors.h): the writer, the
 * parsers of GloVe / word2vec / fastText files, the loader and the queries.
 *
 * Parsers and writer share one packed form (VecPacked): the words packed
 * NUL-terminated with their offsets, an open-addressing index over them
 * filled as words arrive (so a duplicate is found at once, naming the first
 * occurrence), the (V, D) matrix and the row norms.  Serializing stores that
 * index as the "words.slots" tensor, so a load uses it in place.
 */
#include "cai/vectors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "cai/tokenize.h"
#include "modelutil.h"

#define NOMEM(err) cai_error_set((err), CAI_ERR_NOMEM, "out of memory")
#define STR_(x) #x
#define STR(x) STR_(x)

/* A row norm stored in the bytes must equal the recomputed one within this. */
#define NORM_RTOL 1e-4
#define UNIT_TOL 1e-3
/* Bytes a lower-cased word may take (one code point of 3 bytes may lower to 1, 2 to 3). */
#define LOWER_IN_MAX (3 * CAI_VEC_WORD_MAX)
#define LOWER_BUF (5 * CAI_VEC_WORD_MAX)

struct cai_vectors
{
	cai_model_file *own_mf;		/* cai_vectors_open's; NULL after cai_vectors_load */
	int32_t		V;
	int32_t		D;
	cai_strindex words;
	const float *vec;			/* (V, D) */
	const float *norm;			/* (V) */
	int32_t		minn;
	int32_t		maxn;
	uint32_t	buckets;
	cai_intindex sub;			/* n = K subword rows, 0 when none */
	const float *subvec;		/* (K, D) */
	bool		lowercase;
	bool		unit_length;
	char	   *source;
	const char **wptr;			/* (V) cai_vectors_word_vectors, built once */
	size_t	   *wlen;			/* (V) */
	size_t		mem;
};

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

/* L2 norm, accumulated in double. */
static float
row_norm(const float *x, int32_t D)
{
	double		s = 0;

	for (int32_t j = 0; j < D; j++)
		s += (double) x[j] * x[j];
	return (float) sqrt(s);
}

static float
dot(const float *a, const float *b, int32_t D)
{
	float		s[8] = {0};
	int32_t		j = 0;

	for (; j + 8 <= D; j += 8)
		for (int u = 0; u < 8; u++)
			s[u] += a[j + u] * b[j + u];
	for (; j < D; j++)
		s[0] += a[j] * b[j];
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/*
 * Why w[0..len) cannot be a word: NULL when it can.  *at gets the 0-based
 * byte of a NUL or of invalid UTF-8.
 */
static const char *
word_fault(const char *w, size_t len, size_t *at)
{
	if (len == 0)
		return "is empty";
	if (len > CAI_VEC_WORD_MAX)
		return "is longer than " STR(CAI_VEC_WORD_MAX) " bytes";
	for (size_t i = 0; i < len;)
	{
		int32_t		cp;
		int			n = cai_utf8_decode(w + i, len - i, &cp);

		*at = i;
		if (cp < 0)
			return "is not valid UTF-8";
		if (cp == 0)
			return "contains a NUL byte";
		i += (size_t) n;
	}
	return NULL;
}

/* s[0..len) as printable ASCII for a message, at most 24 bytes, others as '?'. */
static const char *
shown(const char *s, size_t len, char *buf)
{
	size_t		n = len < 24 ? len : 24;

	for (size_t i = 0; i < n; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	if (len > n)
		memcpy(buf + n, "...", 4);
	else
		buf[n] = '\0';
	return buf;
}

/* Lower-case s[0..len) into buf (LOWER_BUF bytes); false when it cannot be a word then. */
static bool
lower_word(const char *s, size_t len, char *buf, size_t *out_len)
{
	if (len > LOWER_IN_MAX)
		return false;
	*out_len = cai_token_normalize(s, len, false, buf, LOWER_BUF);
	return *out_len > 0 && *out_len <= CAI_VEC_WORD_MAX;
}

/* ---------------------------------------------------------------------- */
/* The packed form shared by parsers and writer                           */
/* ---------------------------------------------------------------------- */

typedef struct VecPacked
{
	int32_t		V;				/* words so far */
	int32_t		cap;			/* rows allocated */
	int32_t		D;
	char	   *bytes;			/* (bcap) */
	size_t		nbytes;
	size_t		bcap;
	int32_t    *off;			/* (cap + 1) */
	int32_t    *slot;			/* (mask + 1) index of the first V words */
	uint32_t	mask;
	float	   *mat;			/* (cap, D) */
	float	   *norm;			/* (cap) */
	int32_t    *line;			/* (cap) parsers: where each word was */
} VecPacked;

static void
packed_free(VecPacked *p)
{
	cai_free(p->bytes);
	cai_free(p->off);
	cai_free(p->slot);
	cai_free(p->mat);
	cai_free(p->norm);
	cai_free(p->line);
	memset(p, 0, sizeof(*p));
}

/* Room for cap rows of D values (bytes_hint: initial word bytes). */
static cai_status
packed_init(VecPacked *p, int32_t cap, int32_t D, size_t bytes_hint, bool lines, cai_error *err)
{
	size_t		nmat;

	memset(p, 0, sizeof(*p));
	p->cap = cap;
	p->D = D;
	p->mask = cai_index_capacity(cap) - 1;
	p->bcap = bytes_hint < 64 ? 64 : bytes_hint;
	if (!cai_size_mul((size_t) cap, (size_t) D, &nmat) || !cai_size_mul(nmat, sizeof(float), &nmat))
		return cai_error_set(err, CAI_ERR_LIMIT, "vector set of %d words of %d dimensions is too large",
							 (int) cap, (int) D);
	p->bytes = cai_malloc(p->bcap);
	p->off = cai_malloc(sizeof(int32_t) * ((size_t) cap + 1));
	p->slot = cai_calloc((size_t) p->mask + 1, sizeof(int32_t));
	p->mat = cai_malloc(nmat > 0 ? nmat : 1);
	p->norm = cai_malloc(sizeof(float) * ((size_t) cap + 1));
	p->line = lines ? cai_malloc(sizeof(int32_t) * ((size_t) cap + 1)) : NULL;
	if (p->bytes == NULL || p->off == NULL || p->slot == NULL || p->mat == NULL || p->norm == NULL ||
		(lines && p->line == NULL))
	{
		packed_free(p);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for %d words of %d dimensions",
							 (int) cap, (int) D);
	}
	p->off[0] = 0;
	return CAI_OK;
}

static cai_strindex
packed_index(const VecPacked *p)
{
	return (cai_strindex) {p->V, p->bytes, p->nbytes, p->off, p->slot, p->mask, CAI_VEC_INDEX_SEED};
}

/*
 * Add word w[0..len) (valid, checked by word_fault) as row p->V; returns the
 * row of an earlier equal word instead (nothing added), -1 when added, -2 out
 * of memory or word bytes past INT32_MAX.  The caller checked p->V < p->cap.
 */
static int32_t
packed_add(VecPacked *p, const char *w, size_t len)
{
	cai_strindex ix = packed_index(p);
	int32_t		prev = cai_strindex_find(&ix, w, len);
	uint32_t	i;

	if (prev >= 0)
		return prev;
	if (p->nbytes + len + 1 > INT32_MAX)
		return -2;
	if (p->nbytes + len + 1 > p->bcap)
	{
		size_t		ncap = p->bcap;

		while (ncap < p->nbytes + len + 1)
			ncap *= 2;
		if (!cai_grow_array((void **) &p->bytes, 1, p->bcap, ncap))
			return -2;
		p->bcap = ncap;
	}
	memcpy(p->bytes + p->nbytes, w, len);
	p->bytes[p->nbytes + len] = '\0';
	p->nbytes += len + 1;
	p->off[p->V + 1] = (int32_t) p->nbytes;
	for (i = (uint32_t) cai_hash_bytes(w, len, CAI_VEC_INDEX_SEED) & p->mask; p->slot[i] != 0;
		 i = (i + 1) & p->mask)
		;
	p->slot[i] = p->V + 1;
	p->V++;
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Serializing                                                            */
/* ---------------------------------------------------------------------- */

typedef struct VecSub
{
	int32_t		minn;
	int32_t		maxn;
	uint32_t	buckets;
	int32_t		K;
	const int32_t *ids;			/* (K) validated */
	const float *vec;			/* (K, D) validated */
} VecSub;

static void
set_tensor(cai_tensor *t, const char *name, cai_dtype dt, int64_t d0, int64_t d1, const void *data)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, CAI_NAME_MAX, "%s", name);
	t->dtype = dt;
	t->ndim = d1 > 0 ? 2 : 1;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->data = (void *) data;
	t->nbytes = cai_dtype_size(dt) * (size_t) d0 * (size_t) (d1 > 0 ? d1 : 1);
}

static bool
all_lowercase(const VecPacked *p)
{
	char		buf[LOWER_BUF];

	for (int32_t i = 0; i < p->V; i++)
	{
		const char *w = p->bytes + p->off[i];
		size_t		len = (size_t) (p->off[i + 1] - p->off[i] - 1);
		size_t		n;

		if (!lower_word(w, len, buf, &n) || n != len || memcmp(buf, w, len) != 0)
			return false;
	}
	return true;
}

/*
 * Serialize p (words valid and unique, the first V rows of mat finite with
 * finite norms) and sub (NULL: none).
 */
static cai_status
packed_write(VecPacked *p, const VecSub *sub, const char *source, uint8_t **out, size_t *out_len,
			 cai_error *err)
{
	json_object *root = json_object_new_object();
	json_object *vj = json_object_new_object();
	cai_tensor	ts[8];
	int			nt = 0;
	int32_t    *slot = p->slot;
	int32_t    *own_slot = NULL;
	int32_t    *sub_slot = NULL;
	bool		unit = true;
	cai_status	st;

	if (root == NULL || vj == NULL)
	{
		json_object_put(root);
		json_object_put(vj);
		return NOMEM(err);
	}
	for (int32_t i = 0; i < p->V && unit; i++)
		unit = fabsf(p->norm[i] - 1.0f) <= UNIT_TOL;
	if (!(cai_json_put(root, "task", json_object_new_string("vectors")) &&
		  cai_json_put(root, "architecture", json_object_new_string("word_vectors")) &&
		  cai_json_put(root, "kind", json_object_new_string("vectors")) &&
		  cai_json_put(root, "labels", json_object_new_array()) &&
		  cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING)) &&
		  cai_json_put(vj, "words", json_object_new_int(p->V)) &&
		  cai_json_put(vj, "dims", json_object_new_int(p->D)) &&
		  cai_json_put(vj, "source", json_object_new_string(source != NULL ? source : "")) &&
		  cai_json_put(vj, "index_seed", json_object_new_int64((int64_t) CAI_VEC_INDEX_SEED)) &&
		  cai_json_put(vj, "lowercase", json_object_new_boolean(all_lowercase(p))) &&
		  cai_json_put(vj, "unit_length", json_object_new_boolean(unit)) &&
		  cai_json_put(vj, "minn", json_object_new_int(sub != NULL ? sub->minn : 0)) &&
		  cai_json_put(vj, "maxn", json_object_new_int(sub != NULL ? sub->maxn : 0)) &&
		  cai_json_put(vj, "buckets", json_object_new_int64(sub != NULL ? sub->buckets : 0)) &&
		  cai_json_put(vj, "subword_rows", json_object_new_int(sub != NULL ? sub->K : 0))))
	{
		json_object_put(root);
		json_object_put(vj);
		return NOMEM(err);
	}
	if (!cai_json_put(root, "vectors", vj))
	{
		json_object_put(root);
		return NOMEM(err);
	}

	/* the parser's index was sized for its row bound: rebuild when V needs another size */
	if (p->mask + 1 != cai_index_capacity(p->V))
	{
		cai_strindex ix = packed_index(p);

		if ((own_slot = cai_malloc(sizeof(int32_t) * cai_index_capacity(p->V))) == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		if ((st = cai_strindex_build(&ix, own_slot, "vector set words", err)) != CAI_OK)
			goto done;
		slot = own_slot;
	}
	set_tensor(&ts[nt++], "words.bytes", CAI_U8, (int64_t) p->nbytes, 0, p->bytes);
	set_tensor(&ts[nt++], "words.offsets", CAI_I32, (int64_t) p->V + 1, 0, p->off);
	set_tensor(&ts[nt++], "words.slots", CAI_I32, cai_index_capacity(p->V), 0, slot);
	set_tensor(&ts[nt++], "vectors", CAI_F32, p->V, p->D, p->mat);
	set_tensor(&ts[nt++], "norms", CAI_F32, p->V, 0, p->norm);
	if (sub != NULL && sub->K > 0)
	{
		cai_intindex ix = {sub->K, sub->ids, NULL, cai_index_capacity(sub->K) - 1};

		if ((sub_slot = cai_malloc(sizeof(int32_t) * cai_index_capacity(sub->K))) == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		if ((st = cai_intindex_build(&ix, sub_slot, "subword ids", err)) != CAI_OK)
			goto done;
		set_tensor(&ts[nt++], "subwords.ids", CAI_I32, sub->K, 0, sub->ids);
		set_tensor(&ts[nt++], "subwords.slots", CAI_I32, cai_index_capacity(sub->K), 0, sub_slot);
		set_tensor(&ts[nt++], "subwords.vectors", CAI_F32, sub->K, p->D, sub->vec);
	}
	st = cai_format_write(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), ts, nt, out,
						  out_len, err);
done:
	json_object_put(root);
	cai_free(own_slot);
	cai_free(sub_slot);
	return st;
}

/* See vectors.h. */
cai_status
cai_vectors_write(const cai_vectors_data *d, uint8_t **out, size_t *out_len, cai_error *err)
{
	VecPacked	p;
	VecSub		sub = {0};
	int32_t    *ids = NULL;
	size_t		nbytes = 0;
	cai_status	st;

	if (out == NULL || out_len == NULL || d == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer or data is NULL");
	*out = NULL;
	*out_len = 0;
	if (d->n_words < 1 || d->n_words > CAI_VEC_MAX_WORDS)
		return cai_error_set(err, CAI_ERR_INVALID, "vector set has %d words (must be 1 to %" PRId64 ")",
							 (int) d->n_words, CAI_VEC_MAX_WORDS);
	if (d->dim < 1 || d->dim > CAI_VEC_MAX_DIM)
		return cai_error_set(err, CAI_ERR_INVALID, "vector set has %d dimensions (must be 1 to %d)",
							 (int) d->dim, CAI_VEC_MAX_DIM);
	if (d->words == NULL || d->lens == NULL || d->vectors == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "vector set lacks words or values");
	if (d->minn != 0 || d->maxn != 0 || d->n_subword_rows != 0 || d->buckets != 0)
	{
		if (d->minn < 1 || d->maxn < d->minn || d->maxn > CAI_NGRAM_MAXN)
			return cai_error_set(err, CAI_ERR_INVALID, "subword n-gram lengths %d to %d are invalid (need 1 <= minn <= maxn <= %d)",
								 (int) d->minn, (int) d->maxn, CAI_NGRAM_MAXN);
		if (d->buckets < 1 || d->buckets > INT32_MAX || d->n_subword_rows < 0 ||
			(uint32_t) d->n_subword_rows > d->buckets)
			return cai_error_set(err, CAI_ERR_INVALID, "subword rows %d of %u buckets are invalid",
								 (int) d->n_subword_rows, d->buckets);
		if (d->n_subword_rows > 0 && d->subword_vectors == NULL)
			return cai_error_set(err, CAI_ERR_INVALID, "subword rows lack values");
		sub = (VecSub) {d->minn, d->maxn, d->buckets, d->n_subword_rows, d->subword_ids, d->subword_vectors};
	}
	for (int32_t i = 0; i < d->n_words; i++)
		nbytes += d->lens[i] <= CAI_VEC_WORD_MAX ? d->lens[i] + 1 : 0;
	if ((st = packed_init(&p, d->n_words, d->dim, nbytes, false, err)) != CAI_OK)
		return st;
	for (int32_t i = 0; i < d->n_words; i++)
	{
		const float *row = d->vectors + (size_t) i * d->dim;
		const char *why;
		size_t		at = 0;
		int32_t		prev;

		if (d->words[i] == NULL)
			why = "is missing";
		else
			why = word_fault(d->words[i], d->lens[i], &at);
		if (why != NULL)
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "word %d %s (byte %zu)", (int) i, why, at);
			goto done;
		}
		if ((prev = packed_add(&p, d->words[i], d->lens[i])) != -1)
		{
			st = prev == -2 ? cai_error_set(err, CAI_ERR_LIMIT, "the words take more than 2 GB") :
				cai_error_set(err, CAI_ERR_INVALID, "word %d repeats word %d", (int) i, (int) prev);
			goto done;
		}
		if (!cai_all_finite(row, (size_t) d->dim))
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "vector %d holds NaN or infinity", (int) i);
			goto done;
		}
		p.norm[i] = row_norm(row, d->dim);
		if (!isfinite(p.norm[i]))
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "vector %d has a norm beyond float32 range", (int) i);
			goto done;
		}
		memcpy(p.mat + (size_t) i * d->dim, row, sizeof(float) * (size_t) d->dim);
	}
	if (sub.K > 0)
	{
		if (sub.ids == NULL)
		{
			if ((ids = cai_malloc(sizeof(int32_t) * (size_t) sub.K)) == NULL)
			{
				st = NOMEM(err);
				goto done;
			}
			for (int32_t k = 0; k < sub.K; k++)
				ids[k] = k;
			sub.ids = ids;
		}
		for (int32_t k = 0; k < sub.K; k++)
			if (sub.ids[k] < 0 || (uint32_t) sub.ids[k] >= sub.buckets || (k > 0 && sub.ids[k] <= sub.ids[k - 1]))
			{
				st = cai_error_set(err, CAI_ERR_INVALID, "subword id %d (%d) is out of range or not increasing",
								   (int) k, (int) sub.ids[k]);
				goto done;
			}
		if (!cai_all_finite(sub.vec, (size_t) sub.K * d->dim))
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "subword vectors hold NaN or infinity");
			goto done;
		}
	}
	st = packed_write(&p, sub.minn > 0 ? &sub : NULL, d->source, out, out_len, err);
done:
	cai_free(ids);
	packed_free(&p);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Parsing                                                                */
/* ---------------------------------------------------------------------- */

static const struct
{
	const char *name;
	cai_vec_format fmt;
}			vec_formats[] = {
	{"text", CAI_VEC_TEXT}, {"glove", CAI_VEC_TEXT}, {"word2vec", CAI_VEC_TEXT},
	{"word2vec_text", CAI_VEC_TEXT}, {"fasttext", CAI_VEC_TEXT}, {"vec", CAI_VEC_TEXT},
	{"binary", CAI_VEC_BINARY}, {"bin", CAI_VEC_BINARY}, {"word2vec_binary", CAI_VEC_BINARY},
};

/* See vectors.h. */
cai_status
cai_vec_format_find(const char *name, cai_vec_format *out, cai_error *err)
{
	for (size_t i = 0; name != NULL && i < sizeof(vec_formats) / sizeof(vec_formats[0]); i++)
		if (strcasecmp(name, vec_formats[i].name) == 0)
		{
			*out = vec_formats[i].fmt;
			return CAI_OK;
		}
	return cai_error_set(err, CAI_ERR_INVALID,
						 "unknown vector file format \"%.32s\" (use text, glove, word2vec, fasttext, vec, "
						 "binary or word2vec_binary)", name != NULL ? name : "");
}

static inline bool
is_sep(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static const double pow10_tab[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

typedef enum NumResult
{
	NUM_OK = 0,
	NUM_BAD,					/* not a number */
	NUM_NONFINITE,				/* NaN or infinity written out */
	NUM_RANGE					/* beyond float32 */
} NumResult;

/*
 * s[0..len) as a float32, correctly rounded.  Plain decimals with at most 19
 * significant digits and a power of ten up to 22 go through one double
 * operation (exact operands; double rounding of one operation to float is
 * innocuous as 53 >= 2 * 24 + 2); everything else through strtof.
 */
static NumResult
parse_float(const char *s, size_t len, float *out)
{
	size_t		i = 0;
	bool		neg = false;
	uint64_t	m = 0;
	int			digits = 0;
	int			e10 = 0;
	bool		any = false;
	char		tmp[64];
	char	   *end;
	float		f;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, any = true)
		if (m != 0 || s[i] != '0')
		{
			if (++digits <= 19)
				m = m * 10 + (uint64_t) (s[i] - '0');
			else
				e10++;
		}
	if (i < len && s[i] == '.')
	{
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, any = true)
		{
			if (m == 0 && s[i] == '0')
				e10--;
			else if (++digits <= 19)
			{
				m = m * 10 + (uint64_t) (s[i] - '0');
				e10--;
			}
		}
	}
	if (any && i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		size_t		j = i + 1;
		bool		eneg = false;
		int			ev = 0;

		if (j < len && (s[j] == '-' || s[j] == '+'))
			eneg = s[j++] == '-';
		if (j < len && s[j] >= '0' && s[j] <= '9')
		{
			for (; j < len && s[j] >= '0' && s[j] <= '9'; j++)
				if (ev < 100000)
					ev = ev * 10 + (s[j] - '0');
			e10 += eneg ? -ev : ev;
			i = j;
		}
	}
	if (any && i == len && digits <= 19 && m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22)
	{
		double		v = e10 < 0 ? (double) m / pow10_tab[-e10] : (double) m * pow10_tab[e10];

		f = (float) v;
		if (!isfinite(f))
			return NUM_RANGE;
		*out = neg ? -f : f;
		return NUM_OK;
	}

	/* the slow path: strtof on a NUL-terminated copy */
	if (len == 0 || len >= sizeof(tmp))
		return NUM_BAD;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	f = strtof(tmp, &end);
	if (end != tmp + len || end == tmp)
		return NUM_BAD;
	if (isnan(f) || (isinf(f) && errno != ERANGE))
		return NUM_NONFINITE;
	if (isinf(f))
		return NUM_RANGE;
	*out = f;
	return NUM_OK;
}

/* Fields of s[0..len) separated by is_sep runs. */
static size_t
count_fields(const char *s, size_t len)
{
	size_t		n = 0;

	for (size_t i = 0; i < len;)
	{
		while (i < len && is_sep((uint8_t) s[i]))
			i++;
		if (i == len)
			break;
		n++;
		while (i < len && !is_sep((uint8_t) s[i]))
			i++;
	}
	return n;
}

/* An unsigned decimal integer field, false when s[0..len) is not one (or > INT64_MAX / 2). */
static bool
parse_count(const char *s, size_t len, int64_t *out)
{
	int64_t		v = 0;

	if (len == 0 || len > 18)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Message helper for number faults. */
static cai_status
num_error(cai_error *err, const char *where, int64_t at, int k, NumResult r, const char *s, size_t len)
{
	char		b[32];

	return cai_error_set(err, CAI_ERR_FORMAT, "%s %" PRId64 ": value %d (\"%s\") %s", where, at, k,
						 shown(s, len, b),
						 r == NUM_NONFINITE ? "is NaN or infinite" :
						 r == NUM_RANGE ? "is out of float32 range" : "is not a number");
}

/* The add of a checked word, with the messages both parsers give. */
static cai_status
parse_add_word(VecPacked *p, const char *w, size_t len, const char *where, int64_t at, cai_error *err)
{
	const char *why;
	size_t		byte = 0;
	int32_t		prev;
	char		b[32];

	if ((why = word_fault(w, len, &byte)) != NULL)
		return len > CAI_VEC_WORD_MAX || len == 0 ?
			cai_error_set(err, CAI_ERR_FORMAT, "%s %" PRId64 ": word %s", where, at, why) :
			cai_error_set(err, CAI_ERR_FORMAT, "%s %" PRId64 ": word %s (byte %zu)", where, at, why, byte + 1);
	if ((prev = packed_add(p, w, len)) == -2)
		return cai_error_set(err, CAI_ERR_LIMIT, "%s %" PRId64 ": the words take more than 2 GB", where, at);
	if (prev >= 0)
		return cai_error_set(err, CAI_ERR_FORMAT, "%s %" PRId64 ": duplicate word \"%s\" (first on %s %d)",
							 where, at, shown(w, len, b), where, (int) p->line[prev]);
	p->line[p->V - 1] = (int32_t) (at < INT32_MAX ? at : INT32_MAX);
	return CAI_OK;
}

/* Row p->V - 1's norm, checked. */
static cai_status
parse_norm(VecPacked *p, const char *where, int64_t at, cai_error *err)
{
	int32_t		r = p->V - 1;

	p->norm[r] = row_norm(p->mat + (size_t) r * p->D, p->D);
	if (!isfinite(p->norm[r]))
		return cai_error_set(err, CAI_ERR_FORMAT, "%s %" PRId64 ": the vector's norm is beyond float32 range",
							 where, at);
	return CAI_OK;
}

static cai_status
parse_text(const char *buf, size_t len, int64_t max_words, VecPacked *p, cai_error *err)
{
	size_t		pos = 0;
	int64_t		lineno = 0;
	int64_t		n_lines = 1;
	int64_t		hdr_V = -1;
	int64_t		dim_line = 0;	/* the line D came from */
	int32_t		D = 0;
	cai_status	st;

	for (const char *q = buf; (q = memchr(q, '\n', (size_t) (buf + len - q))) != NULL; q++)
		n_lines++;

	while (pos < len)
	{
		const char *s = buf + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t		ll = nl != NULL ? (size_t) (nl - s) : len - pos;
		size_t		a = 0;
		size_t		e = ll;
		size_t		nf;

		pos += ll + (nl != NULL);
		lineno++;
		while (a < e && is_sep((uint8_t) s[a]))
			a++;
		while (e > a && is_sep((uint8_t) s[e - 1]))
			e--;
		if (a == e)
			continue;			/* blank */
		s += a;
		ll = e - a;

		if (D == 0)
		{
			int64_t		hv = 0;
			int64_t		hd = 0;
			int64_t		bound;
			const char *sp;

			nf = count_fields(s, ll);
			sp = s;
			while (sp < s + ll && !is_sep((uint8_t) *sp))
				sp++;
			if (nf == 2 && parse_count(s, (size_t) (sp - s), &hv))
			{
				const char *t = sp;

				while (is_sep((uint8_t) *t))
					t++;
				if (parse_count(t, (size_t) (s + ll - t), &hd))
				{
					/* "V D" header */
					if (hd < 1 || hd > CAI_VEC_MAX_DIM)
						return cai_error_set(err, CAI_ERR_FORMAT,
											 "line %" PRId64 ": the header declares %" PRId64
											 " dimensions (must be 1 to %d)", lineno, hd, CAI_VEC_MAX_DIM);
					if (hv < 1)
						return cai_error_set(err, CAI_ERR_FORMAT, "line %" PRId64 ": the header declares no words",
											 lineno);
					if (hv > max_words)
						return cai_error_set(err, CAI_ERR_LIMIT,
											 "line %" PRId64 ": the header declares %" PRId64
											 " words, more than the limit of %" PRId64, lineno, hv, max_words);
					hdr_V = hv;
					D = (int32_t) hd;
					dim_line = lineno;
					bound = hv;
					if (bound > n_lines - lineno)
						bound = n_lines - lineno;
					if (bound < 1)
						bound = 1;
					if ((int64_t) (len / (2 * (size_t) D + 1)) + 1 < bound)
						bound = (int64_t) (len / (2 * (size_t) D + 1)) + 1;
					if ((st = packed_init(p, (int32_t) bound, D, (size_t) bound * 8, true, err)) != CAI_OK)
						return st;
					continue;
				}
			}
			if (nf < 2)
				return cai_error_set(err, CAI_ERR_FORMAT, "line %" PRId64 ": a word without values", lineno);
			if (nf - 1 > CAI_VEC_MAX_DIM)
				return cai_error_set(err, CAI_ERR_FORMAT, "line %" PRId64 ": %zu values (at most %d dimensions)",
									 lineno, nf - 1, CAI_VEC_MAX_DIM);
			D = (int32_t) (nf - 1);
			dim_line = lineno;
			bound = n_lines - lineno + 1;
			if ((int64_t) (len / (2 * (size_t) D + 1)) + 1 < bound)
				bound = (int64_t) (len / (2 * (size_t) D + 1)) + 1;
			if (bound > max_words)
				bound = max_words;
			if ((st = packed_init(p, (int32_t) bound, D, (size_t) bound * 8, true, err)) != CAI_OK)
				return st;
		}

		/* a row: the last D fields are the values, what comes before them the word */
		if (p->V >= p->cap)
		{
			if (hdr_V >= 0 && p->V >= hdr_V)
				return cai_error_set(err, CAI_ERR_FORMAT,
									 "line %" PRId64 ": more words than the %" PRId64 " the header declares",
									 lineno, hdr_V);
			if (p->V >= max_words)
				return cai_error_set(err, CAI_ERR_LIMIT, "line %" PRId64 ": more than the limit of %" PRId64 " words",
									 lineno, max_words);
			return cai_error_set(err, CAI_ERR_INTERNAL, "line %" PRId64 ": row bound exceeded", lineno);
		}
		{
			float	   *row = p->mat + (size_t) p->V * D;
			size_t		r = ll;
			int			k;
			char		wherebuf[48];

			if (hdr_V >= 0)
				snprintf(wherebuf, sizeof(wherebuf), "as the header declares");
			else
				snprintf(wherebuf, sizeof(wherebuf), "as line %" PRId64 " has", dim_line);
			for (k = D; k >= 1; k--)
			{
				size_t		fe = r;
				size_t		fs;
				NumResult	nr;

				while (r > 0 && !is_sep((uint8_t) s[r - 1]))
					r--;
				fs = r;
				if (fs == 0)
					return cai_error_set(err, CAI_ERR_FORMAT, "line %" PRId64 ": expected %d values (%s), found %d",
										 lineno, (int) D, wherebuf, D - k);
				if ((nr = parse_float(s + fs, fe - fs, &row[k - 1])) != NUM_OK)
				{
					/* a word with fewer values would have them all; report counts first */
					nf = count_fields(s, ll);
					if (nf - 1 < (size_t) D)
						return cai_error_set(err, CAI_ERR_FORMAT,
											 "line %" PRId64 ": expected %d values (%s), found %zu",
											 lineno, (int) D, wherebuf, nf - 1);
					return num_error(err, "line", lineno, (int) (nf - 1 - (size_t) (D - k)), nr, s + fs, fe - fs);
				}
				while (r > 0 && is_sep((uint8_t) s[r - 1]))
					r--;
			}
			if (r == 0)
				return cai_error_set(err, CAI_ERR_FORMAT, "line %" PRId64 ": expected %d values (%s), found %d",
									 lineno, (int) D, wherebuf, D - 1);
			/* more fields before the values: a word with spaces, unless they are numbers too */
			{
				size_t		ws = r;
				float		dummy;

				while (ws > 0 && !is_sep((uint8_t) s[ws - 1]))
					ws--;
				if (ws > 0 && parse_float(s + ws, r - ws, &dummy) != NUM_BAD)
					return cai_error_set(err, CAI_ERR_FORMAT,
										 "line %" PRId64 ": expected %d values (%s), found %zu",
										 lineno, (int) D, wherebuf, count_fields(s, ll) - 1);
			}
			if ((st = parse_add_word(p, s, r, "line", lineno, err)) != CAI_OK ||
				(st = parse_norm(p, "line", lineno, err)) != CAI_OK)
				return st;
		}
	}
	if (D == 0)
		return cai_error_set(err, CAI_ERR_FORMAT, "input is empty");
	if (hdr_V >= 0 && p->V != hdr_V)
		return cai_error_set(err, CAI_ERR_FORMAT, "the header (line %" PRId64 ") declares %" PRId64
							 " words but the input has %d", dim_line, hdr_V, (int) p->V);
	return CAI_OK;
}

static cai_status
parse_binary(const uint8_t *buf, size_t len, int64_t max_words, VecPacked *p, cai_error *err)
{
	size_t		pos = 0;
	size_t		a;
	int64_t		V = 0;
	int64_t		D = 0;
	int64_t		bound;
	size_t		rowbytes;
	cai_status	st;

	while (pos < len && (is_sep(buf[pos]) || buf[pos] == '\n'))
		pos++;
	if (pos == len)
		return cai_error_set(err, CAI_ERR_FORMAT, "input is empty");
	for (a = pos; pos < len && buf[pos] >= '0' && buf[pos] <= '9'; pos++)
		;
	if (!parse_count((const char *) buf + a, pos - a, &V) || pos == len || !is_sep(buf[pos]))
		return cai_error_set(err, CAI_ERR_FORMAT, "header: expected \"<words> <dimensions>\" and a newline");
	while (pos < len && is_sep(buf[pos]))
		pos++;
	for (a = pos; pos < len && buf[pos] >= '0' && buf[pos] <= '9'; pos++)
		;
	if (!parse_count((const char *) buf + a, pos - a, &D))
		return cai_error_set(err, CAI_ERR_FORMAT, "header: expected \"<words> <dimensions>\" and a newline");
	while (pos < len && is_sep(buf[pos]))
		pos++;
	if (pos == len || buf[pos] != '\n')
		return cai_error_set(err, CAI_ERR_FORMAT, "header: expected \"<words> <dimensions>\" and a newline");
	pos++;
	if (D < 1 || D > CAI_VEC_MAX_DIM)
		return cai_error_set(err, CAI_ERR_FORMAT, "header declares %" PRId64 " dimensions (must be 1 to %d)",
							 D, CAI_VEC_MAX_DIM);
	if (V < 1)
		return cai_error_set(err, CAI_ERR_FORMAT, "header declares no words");
	if (V > max_words)
		return cai_error_set(err, CAI_ERR_LIMIT, "header declares %" PRId64 " words, more than the limit of %" PRId64,
							 V, max_words);
	rowbytes = 4 * (size_t) D;
	/* an entry takes at least a word byte, a space and the values */
	bound = (int64_t) ((len - pos) / (rowbytes + 2));
	if (bound > V)
		bound = V;
	if (bound < V)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "header declares %" PRId64 " words of %" PRId64 " dimensions but the %zu bytes after it"
							 " hold at most %" PRId64, V, D, len - pos, bound);
	if ((st = packed_init(p, (int32_t) bound, (int32_t) D, (size_t) bound * 8, true, err)) != CAI_OK)
		return st;
	for (int64_t e = 1; e <= V; e++)
	{
		const uint8_t *sp;
		size_t		wl;
		float	   *row = p->mat + (size_t) p->V * (size_t) D;

		while (pos < len && buf[pos] == '\n')
			pos++;
		if (pos == len)
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "input ends after %" PRId64 " of the %" PRId64 " entries the header declares",
								 e - 1, V);
		sp = memchr(buf + pos, ' ', len - pos < CAI_VEC_WORD_MAX + 1 ? len - pos : CAI_VEC_WORD_MAX + 1);
		if (sp == NULL)
			return len - pos <= CAI_VEC_WORD_MAX ?
				cai_error_set(err, CAI_ERR_FORMAT, "entry %" PRId64 ": input ends inside the word", e) :
				cai_error_set(err, CAI_ERR_FORMAT, "entry %" PRId64 ": word is longer than %d bytes",
							  e, CAI_VEC_WORD_MAX);
		wl = (size_t) (sp - (buf + pos));
		if (wl == 0)
			return cai_error_set(err, CAI_ERR_FORMAT, "entry %" PRId64 ": empty word", e);
		if (len - pos - wl - 1 < rowbytes)
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "entry %" PRId64 ": input ends inside the vector (%zu bytes needed, %zu left)",
								 e, rowbytes, len - pos - wl - 1);
		if ((st = parse_add_word(p, (const char *) buf + pos, wl, "entry", e, err)) != CAI_OK)
			return st;
		pos += wl + 1;
		for (int64_t j = 0; j < D; j++, pos += 4)
		{
			uint32_t	u = (uint32_t) buf[pos] | ((uint32_t) buf[pos + 1] << 8) |
				((uint32_t) buf[pos + 2] << 16) | ((uint32_t) buf[pos + 3] << 24);

			memcpy(&row[j], &u, 4);
			if (!isfinite(row[j]))
				return cai_error_set(err, CAI_ERR_FORMAT, "entry %" PRId64 ": value %" PRId64 " is NaN or infinite",
									 e, j + 1);
		}
		if ((st = parse_norm(p, "entry", e, err)) != CAI_OK)
			return st;
	}
	while (pos < len && (buf[pos] == '\n' || is_sep(buf[pos])))
		pos++;
	if (pos != len)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "input continues after the %" PRId64 " entries the header declares (byte %zu)",
							 V, pos + 1);
	return CAI_OK;
}

/* See vectors.h. */
cai_status
cai_vectors_parse(const uint8_t *buf, size_t len, cai_vec_format fmt, const cai_vec_limits *limits,
				  const char *source, uint8_t **out, size_t *out_len, int32_t *n_words, int32_t *dim,
				  cai_error *err)
{
	int64_t		max_words = CAI_VEC_MAX_WORDS;
	size_t		max_bytes = SIZE_MAX;
	VecPacked	p;
	cai_status	st;

	if (out == NULL || out_len == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer is NULL");
	*out = NULL;
	*out_len = 0;
	if (limits != NULL && limits->max_words > 0 && limits->max_words < max_words)
		max_words = limits->max_words;
	if (limits != NULL && limits->max_bytes > 0)
		max_bytes = limits->max_bytes;
	if (len > max_bytes)
		return cai_error_set(err, CAI_ERR_LIMIT, "input of %zu bytes is larger than the limit of %zu bytes",
							 len, max_bytes);
	if (buf == NULL || len == 0)
		return cai_error_set(err, CAI_ERR_FORMAT, "input is empty");
	memset(&p, 0, sizeof(p));
	if (fmt == CAI_VEC_TEXT)
		st = parse_text((const char *) buf, len, max_words, &p, err);
	else if (fmt == CAI_VEC_BINARY)
		st = parse_binary(buf, len, max_words, &p, err);
	else
		st = cai_error_set(err, CAI_ERR_INVALID, "unknown vector file format %d", (int) fmt);
	if (st == CAI_OK)
		st = packed_write(&p, NULL, source, out, out_len, err);
	if (st == CAI_OK && n_words != NULL)
		*n_words = p.V;
	if (st == CAI_OK && dim != NULL)
		*dim = p.D;
	packed_free(&p);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

static cai_status
load_meta(cai_vectors *v, const cai_model_file *mf, int64_t *seed, int64_t *K, cai_error *err)
{
	json_object *root = cai_json_parse_object(mf->meta_json);
	json_object *vj;
	json_object *x;
	int64_t		V,
				D,
				minn,
				maxn,
				buckets;
	cai_status	st;

	if (root == NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "vector set metadata is not a JSON object");
	if (!json_object_object_get_ex(root, "kind", &x) || !json_object_is_type(x, json_type_string) ||
		strcmp(json_object_get_string(x), "vectors") != 0 ||
		!json_object_object_get_ex(root, "vectors", &vj) || !json_object_is_type(vj, json_type_object))
	{
		json_object_put(root);
		return cai_error_set(err, CAI_ERR_FORMAT, "model bytes are not a vector set");
	}
	if ((st = cai_json_get_int(vj, "vectors", "words", 1, CAI_VEC_MAX_WORDS, &V, err)) != CAI_OK ||
		(st = cai_json_get_int(vj, "vectors", "dims", 1, CAI_VEC_MAX_DIM, &D, err)) != CAI_OK ||
		(st = cai_json_get_int(vj, "vectors", "index_seed", INT64_MIN, INT64_MAX, seed, err)) != CAI_OK ||
		(st = cai_json_get_int(vj, "vectors", "minn", 0, CAI_NGRAM_MAXN, &minn, err)) != CAI_OK ||
		(st = cai_json_get_int(vj, "vectors", "maxn", minn, CAI_NGRAM_MAXN, &maxn, err)) != CAI_OK ||
		(st = cai_json_get_int(vj, "vectors", "buckets", 0, INT32_MAX, &buckets, err)) != CAI_OK ||
		(st = cai_json_get_int(vj, "vectors", "subword_rows", 0, buckets, K, err)) != CAI_OK)
	{
		json_object_put(root);
		return st;
	}
	if ((minn == 0) != (buckets == 0) || (minn == 0 && (maxn != 0 || *K != 0)))
	{
		json_object_put(root);
		return cai_error_set(err, CAI_ERR_FORMAT, "vector set subword settings are inconsistent");
	}
	v->V = (int32_t) V;
	v->D = (int32_t) D;
	v->minn = (int32_t) minn;
	v->maxn = (int32_t) maxn;
	v->buckets = (uint32_t) buckets;
	v->lowercase = json_object_object_get_ex(vj, "lowercase", &x) && json_object_get_boolean(x);
	v->unit_length = json_object_object_get_ex(vj, "unit_length", &x) && json_object_get_boolean(x);
	if (json_object_object_get_ex(vj, "source", &x) && json_object_is_type(x, json_type_string))
		v->source = cai_strndup(json_object_get_string(x), (size_t) json_object_get_string_len(x));
	else
		v->source = cai_strndup("", 0);
	json_object_put(root);
	if (v->source == NULL)
		return NOMEM(err);
	v->mem += strlen(v->source) + 1;
	return CAI_OK;
}

/* The full scan of untrusted words, rows and norms. */
static cai_status
load_scan(const cai_vectors *v, cai_error *err)
{
	const int32_t *off = v->words.off;
	cai_status	st;

	for (int32_t i = 0; i < v->V; i++)
	{
		const char *w;
		size_t		at = 0;
		const char *why;
		float		n;

		if (off[i + 1] <= off[i] || off[i + 1] > off[v->V])
			return cai_error_set(err, CAI_ERR_FORMAT, "vector set word %d has bad offsets", (int) i);
		w = v->words.bytes + off[i];
		if (w[off[i + 1] - off[i] - 1] != '\0')
			return cai_error_set(err, CAI_ERR_FORMAT, "vector set word %d is not NUL-terminated", (int) i);
		if ((why = word_fault(w, (size_t) (off[i + 1] - off[i] - 1), &at)) != NULL)
			return cai_error_set(err, CAI_ERR_FORMAT, "vector set word %d %s", (int) i, why);
		if (!cai_all_finite(v->vec + (size_t) i * v->D, (size_t) v->D))
			return cai_error_set(err, CAI_ERR_FORMAT, "vector set row %d holds NaN or infinity", (int) i);
		n = row_norm(v->vec + (size_t) i * v->D, v->D);
		if (!isfinite(n) || !(fabs((double) v->norm[i] - n) <= NORM_RTOL * n + 1e-30))
			return cai_error_set(err, CAI_ERR_FORMAT, "vector set norm %d does not match its row", (int) i);
	}
	if ((st = cai_strindex_check(&v->words, "vector set word index", err)) != CAI_OK)
		return st;
	if (v->sub.n > 0)
	{
		for (int32_t k = 0; k < v->sub.n; k++)
			if (v->sub.keys[k] < 0 || (uint32_t) v->sub.keys[k] >= v->buckets ||
				(k > 0 && v->sub.keys[k] <= v->sub.keys[k - 1]))
				return cai_error_set(err, CAI_ERR_FORMAT, "subword id %d is out of range or not increasing",
									 (int) k);
		if (!cai_all_finite(v->subvec, (size_t) v->sub.n * v->D))
			return cai_error_set(err, CAI_ERR_FORMAT, "subword vectors hold NaN or infinity");
		if ((st = cai_intindex_check(&v->sub, "subword index", err)) != CAI_OK)
			return st;
	}
	return CAI_OK;
}

/* See vectors.h. */
cai_status
cai_vectors_load(const cai_model_file *mf, cai_vectors **out, cai_error *err)
{
	cai_vectors *v;
	const cai_tensor *tb,
			   *to,
			   *tsl,
			   *tv,
			   *tn;
	int64_t		seed = 0;
	int64_t		K = 0;
	cai_status	st;

	*out = NULL;
	if ((v = cai_calloc(1, sizeof(cai_vectors))) == NULL)
		return NOMEM(err);
	v->mem = sizeof(cai_vectors);
	if ((st = load_meta(v, mf, &seed, &K, err)) != CAI_OK)
		goto fail;
	{
		int64_t		s_off[1] = {(int64_t) v->V + 1};
		int64_t		s_slot[1] = {cai_index_capacity(v->V)};
		int64_t		s_vec[2] = {v->V, v->D};
		int64_t		s_norm[1] = {v->V};

		if ((st = cai_model_file_expect(mf, "words.bytes", CAI_U8, 1, NULL, &tb, err)) != CAI_OK ||
			(st = cai_model_file_expect(mf, "words.offsets", CAI_I32, 1, s_off, &to, err)) != CAI_OK ||
			(st = cai_model_file_expect(mf, "words.slots", CAI_I32, 1, s_slot, &tsl, err)) != CAI_OK ||
			(st = cai_model_file_expect(mf, "vectors", CAI_F32, 2, s_vec, &tv, err)) != CAI_OK ||
			(st = cai_model_file_expect(mf, "norms", CAI_F32, 1, s_norm, &tn, err)) != CAI_OK)
			goto fail;
	}
	if (tb->shape[0] > INT32_MAX || ((const int32_t *) to->data)[0] != 0 ||
		((const int32_t *) to->data)[v->V] != tb->shape[0])
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "vector set word offsets do not span the word bytes");
		goto fail;
	}
	v->words = (cai_strindex) {v->V, tb->data, tb->nbytes, to->data, tsl->data,
		cai_index_capacity(v->V) - 1, (uint64_t) seed};
	v->vec = tv->data;
	v->norm = tn->data;
	if (K > 0)
	{
		const cai_tensor *ti,
				   *ts,
				   *tsv;
		int64_t		s_ids[1] = {K};
		int64_t		s_sl[1] = {cai_index_capacity(K)};
		int64_t		s_sv[2] = {K, v->D};

		if ((st = cai_model_file_expect(mf, "subwords.ids", CAI_I32, 1, s_ids, &ti, err)) != CAI_OK ||
			(st = cai_model_file_expect(mf, "subwords.slots", CAI_I32, 1, s_sl, &ts, err)) != CAI_OK ||
			(st = cai_model_file_expect(mf, "subwords.vectors", CAI_F32, 2, s_sv, &tsv, err)) != CAI_OK)
			goto fail;
		v->sub = (cai_intindex) {(int32_t) K, ti->data, ts->data, cai_index_capacity(K) - 1};
		v->subvec = tsv->data;
	}
	else if (cai_model_file_tensor(mf, "subwords.ids") != NULL)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "vector set has subword tensors but subword_rows 0");
		goto fail;
	}
	if (!mf->trusted && (st = load_scan(v, err)) != CAI_OK)
		goto fail;
	*out = v;
	return CAI_OK;
fail:
	cai_vectors_free(v);
	return st;
}

/* See vectors.h. */
cai_status
cai_vectors_open(const uint8_t *buf, size_t len, bool view, bool verify, cai_vectors **out, cai_error *err)
{
	cai_model_file *mf = NULL;
	cai_status	st;

	*out = NULL;
	st = view ? cai_format_read_view(buf, len, verify, &mf, err) : cai_format_read(buf, len, &mf, err);
	if (st != CAI_OK)
		return st;
	if ((st = cai_vectors_load(mf, out, err)) != CAI_OK)
	{
		cai_model_file_free(mf);
		return st;
	}
	(*out)->own_mf = mf;
	return CAI_OK;
}

void
cai_vectors_free(cai_vectors *v)
{
	if (v == NULL)
		return;
	cai_model_file_free(v->own_mf);
	cai_free(v->source);
	cai_free(v->wptr);
	cai_free(v->wlen);
	cai_free(v);
}

int32_t
cai_vectors_count(const cai_vectors *v)
{
	return v->V;
}

int32_t
cai_vectors_dim(const cai_vectors *v)
{
	return v->D;
}

bool
cai_vectors_lowercase(const cai_vectors *v)
{
	return v->lowercase;
}

bool
cai_vectors_has_subwords(const cai_vectors *v)
{
	return v->sub.n > 0;
}

const char *
cai_vectors_source(const cai_vectors *v)
{
	return v->source;
}

size_t
cai_vectors_memory(const cai_vectors *v)
{
	return v->mem;
}

/* Word i's bytes, NULL when its offsets are bad (possible only in trusted bytes). */
const char *
cai_vectors_word(const cai_vectors *v, int32_t i, size_t *len)
{
	int32_t		a,
				b;

	if (i < 0 || i >= v->V)
		return NULL;
	a = v->words.off[i];
	b = v->words.off[i + 1];
	if (a < 0 || b <= a || (size_t) b > v->words.nbytes)
		return NULL;
	if (len != NULL)
		*len = (size_t) (b - a - 1);
	return v->words.bytes + a;
}

const float *
cai_vectors_row(const cai_vectors *v, int32_t i)
{
	return i >= 0 && i < v->V ? v->vec + (size_t) i * v->D : NULL;
}

int32_t
cai_vectors_find(const cai_vectors *v, const char *word, size_t len)
{
	return cai_strindex_find(&v->words, word, len);
}

/* ---------------------------------------------------------------------- */
/* Queries                                                                */
/* ---------------------------------------------------------------------- */

/* Mean of the rows of word[0..len)'s n-grams into out; false when none has a row. */
static bool
subword_mean(const cai_vectors *v, const char *word, size_t len, float *out)
{
	uint64_t	h[CAI_VEC_WORD_MAX + 2];
	int			found = 0;

	if (v->sub.n == 0 || len == 0 || len > CAI_VEC_WORD_MAX)
		return false;
	memset(out, 0, sizeof(float) * (size_t) v->D);
	/* one n at a time: at most a hash per code point and boundary */
	for (int n = v->minn; n <= v->maxn; n++)
	{
		size_t		nh = cai_char_ngram_hashes(word, len, n, n, h, CAI_VEC_WORD_MAX + 2);

		for (size_t i = 0; i < nh; i++)
		{
			int32_t		r = cai_intindex_find(&v->sub, (int32_t) (h[i] % v->buckets));

			if (r < 0)
				continue;
			for (int32_t j = 0; j < v->D; j++)
				out[j] += v->subvec[(size_t) r * v->D + j];
			found++;
		}
	}
	if (found == 0)
		return false;
	for (int32_t j = 0; j < v->D; j++)
		out[j] /= (float) found;
	return true;
}

/* Row of a token under case policy cs, -1 if none; *form / *flen: the form to use for subwords. */
static int32_t
find_cased(const cai_vectors *v, const char *word, size_t len, cai_vec_case cs, char *buf,
		   const char **form, size_t *flen)
{
	int32_t		r = -1;
	size_t		n;

	if (cs == CAI_VEC_CASE_AUTO)
		cs = v->lowercase ? CAI_VEC_CASE_LOWER : CAI_VEC_CASE_FALLBACK;
	*form = word;
	*flen = len;
	if (cs != CAI_VEC_CASE_LOWER && (r = cai_strindex_find(&v->words, word, len)) >= 0)
		return r;
	if (cs == CAI_VEC_CASE_EXACT)
		return -1;
	if (!lower_word(word, len, buf, &n))
		return -1;
	if (cs == CAI_VEC_CASE_LOWER)
	{
		*form = buf;
		*flen = n;
	}
	return cai_strindex_find(&v->words, buf, n);
}

/* See vectors.h. */
cai_vec_hit
cai_vectors_lookup(const cai_vectors *v, const char *word, size_t len, cai_vec_case cs, float *out,
				   int32_t *row)
{
	char		buf[LOWER_BUF];
	const char *form;
	size_t		flen;
	int32_t		r = find_cased(v, word, len, cs, buf, &form, &flen);

	if (row != NULL)
		*row = r;
	if (r >= 0)
	{
		memcpy(out, v->vec + (size_t) r * v->D, sizeof(float) * (size_t) v->D);
		return CAI_VEC_EXACT;
	}
	if (subword_mean(v, form, flen, out))
		return CAI_VEC_SUBWORD;
	memset(out, 0, sizeof(float) * (size_t) v->D);
	return CAI_VEC_MISS;
}

/* See vectors.h. */
cai_status
cai_vectors_embed(const cai_vectors *v, const char *text, size_t len, cai_vec_case cs, size_t max_tokens,
				  float *out, size_t *n_tokens, size_t *n_found, cai_error *err)
{
	cai_token  *toks = NULL;
	size_t		nt = 0;
	size_t		found = 0;
	float	   *tmp;
	cai_status	st;

	memset(out, 0, sizeof(float) * (size_t) v->D);
	if (n_tokens != NULL)
		*n_tokens = 0;
	if (n_found != NULL)
		*n_found = 0;
	if ((st = cai_tokenize(text, len, max_tokens, &toks, &nt, err)) != CAI_OK)
		return st;
	if ((tmp = cai_malloc(sizeof(float) * (size_t) v->D)) == NULL)
	{
		cai_free(toks);
		return NOMEM(err);
	}
	for (size_t t = 0; t < nt; t++)
	{
		if (cai_vectors_lookup(v, text + toks[t].start, (size_t) (toks[t].end - toks[t].start), cs, tmp,
							   NULL) == CAI_VEC_MISS)
			continue;
		for (int32_t j = 0; j < v->D; j++)
			out[j] += tmp[j];
		found++;
	}
	if (found > 0)
		for (int32_t j = 0; j < v->D; j++)
			out[j] /= (float) found;
	cai_free(tmp);
	cai_free(toks);
	if (n_tokens != NULL)
		*n_tokens = nt;
	if (n_found != NULL)
		*n_found = found;
	return CAI_OK;
}

/* a ranks before b: higher score, then lower row */
static inline bool
before(float sa, int32_t ia, float sb, int32_t ib)
{
	return sa > sb || (sa == sb && ia < ib);
}

static inline void
swap_entry(int32_t *ids, float *sc, int a, int b)
{
	int32_t		ti = ids[a];
	float		ts = sc[a];

	ids[a] = ids[b];
	sc[a] = sc[b];
	ids[b] = ti;
	sc[b] = ts;
}

/* Sift entry i down the heap of n whose root is the worst entry. */
static void
heap_down(int32_t *ids, float *sc, int n, int i)
{
	for (;;)
	{
		int			w = i;
		int			l = 2 * i + 1;
		int			r = l + 1;

		if (l < n && before(sc[w], ids[w], sc[l], ids[l]))
			w = l;
		if (r < n && before(sc[w], ids[w], sc[r], ids[r]))
			w = r;
		if (w == i)
			return;
		swap_entry(ids, sc, i, w);
		i = w;
	}
}

/* See vectors.h. */
cai_status
cai_vectors_similar(const cai_vectors *v, const float *query, int32_t exclude, int k, int32_t *ids,
					float *scores, int *n_out, cai_error *err)
{
	float	   *q;
	float		qn;
	int			n = 0;

	*n_out = 0;
	if (k < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "k must be at least 1 (got %d)", k);
	if ((q = cai_malloc(sizeof(float) * (size_t) v->D)) == NULL)
		return NOMEM(err);
	/* unit query: dot products stay within the row norms */
	qn = row_norm(query, v->D);
	for (int32_t j = 0; j < v->D; j++)
		q[j] = qn > 0 && isfinite(qn) ? query[j] / qn : 0.0f;
	for (int32_t i = 0; i < v->V; i++)
	{
		float		nr = v->norm[i];
		float		s;

		if (i == exclude)
			continue;
		s = nr > 0 ? dot(q, v->vec + (size_t) i * v->D, v->D) / nr : 0.0f;
		if (isnan(s))
			s = -INFINITY;		/* only garbage (trusted, damaged) bytes get here */
		if (n < k)
		{
			/* grow the heap: sift the new entry up */
			int			c = n++;

			ids[c] = i;
			scores[c] = s;
			for (; c > 0 && before(scores[(c - 1) / 2], ids[(c - 1) / 2], scores[c], ids[c]); c = (c - 1) / 2)
				swap_entry(ids, scores, c, (c - 1) / 2);
		}
		else if (before(s, i, scores[0], ids[0]))
		{
			ids[0] = i;
			scores[0] = s;
			heap_down(ids, scores, n, 0);
		}
	}
	cai_free(q);
	/* heap sort: the worst goes last */
	for (int m = n - 1; m > 0; m--)
	{
		swap_entry(ids, scores, 0, m);
		heap_down(ids, scores, m, 0);
	}
	*n_out = n;
	return CAI_OK;
}

/* See vectors.h. */
cai_status
cai_vectors_similar_word(const cai_vectors *v, const char *word, size_t len, cai_vec_case cs, int k,
						 int32_t *ids, float *scores, int *n_out, cai_vec_hit *hit, cai_error *err)
{
	float	   *q;
	int32_t		row = -1;
	cai_status	st = CAI_OK;

	*n_out = 0;
	*hit = CAI_VEC_MISS;
	if (k < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "k must be at least 1 (got %d)", k);
	if ((q = cai_malloc(sizeof(float) * (size_t) v->D)) == NULL)
		return NOMEM(err);
	*hit = cai_vectors_lookup(v, word, len, cs, q, &row);
	if (*hit != CAI_VEC_MISS)
		st = cai_vectors_similar(v, q, row, k, ids, scores, n_out, err);
	cai_free(q);
	return st;
}

/* See vectors.h. */
cai_status
cai_vectors_word_vectors(cai_vectors *v, cai_word_vectors *out, cai_error *err)
{
	if (v->wptr == NULL)
	{
		const char **p = cai_malloc(sizeof(char *) * (size_t) v->V);
		size_t	   *l = cai_malloc(sizeof(size_t) * (size_t) v->V);

		if (p == NULL || l == NULL)
		{
			cai_free(p);
			cai_free(l);
			return NOMEM(err);
		}
		for (int32_t i = 0; i < v->V; i++)
		{
			/* NULL (skipped by NER training) only for damaged trusted bytes */
			p[i] = cai_vectors_word(v, i, &l[i]);
			if (p[i] == NULL)
				l[i] = 0;
		}
		v->wptr = p;
		v->wlen = l;
		v->mem += (sizeof(char *) + sizeof(size_t)) * (size_t) v->V;
	}
	out->n = (size_t) v->V;
	out->dim = v->D;
	out->words = v->wptr;
	out->lens = v->wlen;
	out->vectors = v->vec;
	return CAI_OK;
}
