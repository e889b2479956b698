/*
 * textclf_tables.c: the lookup tables both text-classification
 * architectures store in a model (see textclf_internal.h): the vocabulary
 * ("<prefix>.vocab.{bytes,offsets,slots}") and the bucket rows
 * ("<prefix>.buckets{,.slots}"), written as tensors by training with the
 * slots a load uses in place, and read back, checked or (for models written
 * before the slots existed) built privately, by loading.
 */
#include "textclf_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "modelutil.h"

/* ---------------------------------------------------------------------- */
/* Writing (training)                                                     */
/* ---------------------------------------------------------------------- */

/* See textclf_internal.h. */
void
cai_textclf_tensor(cai_tensor *t, const char *name, cai_dtype dtype, int ndim, int64_t d0, int64_t d1,
				   const void *data)
{
	size_t		elem = dtype == CAI_U8 ? 1 : 4;

	memset(t, 0, sizeof(*t));
	snprintf(t->name, CAI_NAME_MAX, "%s", name);
	t->dtype = dtype;
	t->ndim = ndim;
	t->shape[0] = d0;
	if (ndim == 2)
		t->shape[1] = d1;
	t->data = (void *) data;
	t->nbytes = elem * (size_t) d0 * (ndim == 2 ? (size_t) d1 : 1);
}

/*
 * Pack the vocabulary (V items, each the NUL-terminated token of type
 * items[v].type) into tab->bytes and tab->off.
 */
static cai_status
textclf_pack_vocab(const cai_textclf_types *types, const cai_textclf_vocab_item *items, int32_t V,
				   cai_textclf_tables *tab, size_t *nbytes_out, cai_error *err)
{
	size_t		nbytes = 0;

	for (int32_t v = 0; v < V; v++)
		nbytes += types->len[items[v].type] + 1;
	if (nbytes > INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "vocabulary is too large");
	tab->off = cai_malloc(sizeof(int32_t) * ((size_t) V + 1));
	tab->bytes = cai_malloc(nbytes > 0 ? nbytes : 1);
	if (tab->off == NULL || tab->bytes == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory");
	tab->off[0] = 0;
	for (int32_t v = 0; v < V; v++)
	{
		uint32_t	l = types->len[items[v].type];

		memcpy(tab->bytes + tab->off[v], items[v].s, l + 1);
		tab->off[v + 1] = tab->off[v] + (int32_t) l + 1;
	}
	*nbytes_out = nbytes;
	return CAI_OK;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_pack_tables(const cai_textclf_types *types, const cai_textclf_vocab_item *items, int32_t V,
						uint64_t seed, const int32_t *bmap, uint32_t buckets, int32_t K,
						const char *prefix, cai_tensor *ts, int *nt, cai_textclf_tables *tab,
						cai_error *err)
{
	char		name[CAI_NAME_MAX];
	cai_status	st;

	memset(tab, 0, sizeof(*tab));
	if (V > 0)
	{
		size_t		nbytes = 0;
		uint32_t	mask = cai_index_capacity(V) - 1;

		if ((st = textclf_pack_vocab(types, items, V, tab, &nbytes, err)) != CAI_OK)
			return st;
		snprintf(name, sizeof(name), "%s.vocab.bytes", prefix);
		cai_textclf_tensor(&ts[(*nt)++], name, CAI_U8, 1, (int64_t) nbytes, 0, tab->bytes);
		snprintf(name, sizeof(name), "%s.vocab.offsets", prefix);
		cai_textclf_tensor(&ts[(*nt)++], name, CAI_I32, 1, (int64_t) V + 1, 0, tab->off);

		/* the lookup table, serialized so that loading builds nothing */
		tab->vocab = (cai_strindex) {V, tab->bytes, nbytes, tab->off, NULL, mask, seed};
		if ((tab->vslot = cai_malloc(sizeof(int32_t) * ((size_t) mask + 1))) == NULL)
			return NOMEM(err);
		if ((st = cai_strindex_build(&tab->vocab, tab->vslot, "vocabulary", err)) != CAI_OK)
			return st;
		tab->vocab.slot = tab->vslot;
		snprintf(name, sizeof(name), "%s.vocab.slots", prefix);
		cai_textclf_tensor(&ts[(*nt)++], name, CAI_I32, 1, (int64_t) mask + 1, 0, tab->vslot);
	}
	if (K > 0)
	{
		int32_t		k = 0;
		uint32_t	mask = cai_index_capacity(K) - 1;

		if ((tab->bids = cai_malloc(sizeof(int32_t) * (size_t) K)) == NULL)
			return NOMEM(err);
		for (uint32_t b = 0; b < buckets; b++)
			if (bmap[b] >= 0)
				tab->bids[k++] = (int32_t) b;
		snprintf(name, sizeof(name), "%s.buckets", prefix);
		cai_textclf_tensor(&ts[(*nt)++], name, CAI_I32, 1, K, 0, tab->bids);

		tab->bucket = (cai_intindex) {K, tab->bids, NULL, mask};
		if ((tab->bslot = cai_malloc(sizeof(int32_t) * ((size_t) mask + 1))) == NULL)
			return NOMEM(err);
		if ((st = cai_intindex_build(&tab->bucket, tab->bslot, "bucket index", err)) != CAI_OK)
			return st;
		tab->bucket.slot = tab->bslot;
		snprintf(name, sizeof(name), "%s.buckets.slots", prefix);
		cai_textclf_tensor(&ts[(*nt)++], name, CAI_I32, 1, (int64_t) mask + 1, 0, tab->bslot);
	}
	return CAI_OK;
}

/* The rank map (see textclf_internal.h) of the K increasing buckets bids into rank. */
static void
textclf_fill_bucket_rank(const int32_t *bids, int32_t K, uint32_t buckets, int32_t *rank)
{
	uint32_t	nblk = cai_bucket_rank_blocks(buckets);
	int32_t		r = 0;

	for (uint32_t j = 0; j < nblk; j++)
	{
		uint64_t	bits = 0;

		rank[(size_t) j * 3] = r;
		for (; r < K && (uint32_t) bids[r] / TEXTCLF_RANK_BLOCK == j; r++)
			bits |= 1ULL << ((uint32_t) bids[r] % TEXTCLF_RANK_BLOCK);
		rank[(size_t) j * 3 + 1] = (int32_t) (uint32_t) bits;
		rank[(size_t) j * 3 + 2] = (int32_t) (uint32_t) (bits >> 32);
	}
}

/* See textclf_internal.h. */
cai_status
cai_textclf_pack_bucket_rank(cai_textclf_tables *tab, uint32_t buckets, const char *prefix,
							 cai_tensor *ts, int *nt, cai_error *err)
{
	char		name[CAI_NAME_MAX];
	uint32_t	nblk = cai_bucket_rank_blocks(buckets);

	if ((tab->brank = cai_malloc(sizeof(int32_t) * 3 * (size_t) nblk)) == NULL)
		return NOMEM(err);
	textclf_fill_bucket_rank(tab->bids, tab->bucket.n, buckets, tab->brank);
	snprintf(name, sizeof(name), "%s.buckets.rank", prefix);
	cai_textclf_tensor(&ts[(*nt)++], name, CAI_I32, 2, nblk, 3, tab->brank);
	return CAI_OK;
}

/* See textclf_internal.h. */
void
cai_textclf_tables_free(cai_textclf_tables *tab)
{
	cai_free(tab->bytes);
	cai_free(tab->off);
	cai_free(tab->vslot);
	cai_free(tab->bids);
	cai_free(tab->bslot);
	cai_free(tab->brank);
	memset(tab, 0, sizeof(*tab));
}

/* ---------------------------------------------------------------------- */
/* Reading (loading)                                                      */
/* ---------------------------------------------------------------------- */

/*
 * The slot array of a loaded model's index: the serialized tensor name (I32,
 * n's capacity) when the model has it (*serialized), else a private zeroed
 * array in *own for the caller to build (its bytes added to *mem).
 */
static cai_status
textclf_index_slots(const cai_model_file *mf, const char *name, int64_t n,
					const int32_t **slot, uint32_t *mask, int32_t **own, bool *serialized,
					size_t *mem, cai_error *err)
{
	uint32_t	cap = cai_index_capacity(n);
	int64_t		shape[1] = {cap};
	const cai_tensor *t;
	cai_status	st;

	*mask = cap - 1;
	*serialized = cai_model_file_tensor(mf, name) != NULL;
	if (*serialized)
	{
		if ((st = cai_model_file_expect(mf, name, CAI_I32, 1, shape, &t, err)) != CAI_OK)
			return st;
		*slot = t->data;
		return CAI_OK;
	}
	*own = cai_calloc(cap, sizeof(int32_t));
	if (*own == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model index");
	*mem += sizeof(int32_t) * (size_t) cap;
	*slot = *own;
	return CAI_OK;
}

/*
 * A trusted model file (bytes that passed this validation before) skips the
 * scans of tensor contents: the lookups are bounds-checked whatever the
 * tensors hold.  Models without the serialized tables get the full checks
 * and private tables.
 */

/* See textclf_internal.h. */
cai_status
cai_textclf_load_vocab(const cai_model_file *mf, const char *prefix, int64_t V, uint64_t seed,
					   cai_strindex *ix, int32_t **own_slot, size_t *mem, cai_error *err)
{
	char		n_off[CAI_NAME_MAX];
	char		n_bytes[CAI_NAME_MAX];
	char		n_slots[CAI_NAME_MAX];
	const cai_tensor *t;
	const cai_tensor *tb;
	const int32_t *off;
	int64_t		shape_off[1] = {V + 1};
	bool		serialized;
	cai_status	st;

	snprintf(n_off, sizeof(n_off), "%s.vocab.offsets", prefix);
	snprintf(n_bytes, sizeof(n_bytes), "%s.vocab.bytes", prefix);
	snprintf(n_slots, sizeof(n_slots), "%s.vocab.slots", prefix);
	if (V == 0)
	{
		if (cai_model_file_tensor(mf, n_off) != NULL || cai_model_file_tensor(mf, n_bytes) != NULL ||
			cai_model_file_tensor(mf, n_slots) != NULL)
			return cai_error_set(err, CAI_ERR_FORMAT, "model has vocabulary tensors but vocab_size 0");
		return CAI_OK;
	}
	if ((st = cai_model_file_expect(mf, n_off, CAI_I32, 1, shape_off, &t, err)) != CAI_OK ||
		(st = cai_model_file_expect(mf, n_bytes, CAI_U8, 1, NULL, &tb, err)) != CAI_OK)
		return st;
	if (tb->shape[0] > INT32_MAX)
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" is too large", n_bytes);
	off = t->data;
	if (off[0] != 0 || off[V] != tb->shape[0])
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor \"%s\" must start at 0 and end at the %" PRId64 " vocabulary bytes",
							 n_off, tb->shape[0]);
	ix->n = (int32_t) V;
	ix->bytes = tb->data;
	ix->nbytes = tb->nbytes;
	ix->off = off;
	ix->seed = seed;
	if ((st = textclf_index_slots(mf, n_slots, V, &ix->slot, &ix->mask, own_slot, &serialized, mem,
								  err)) != CAI_OK)
		return st;
	if (mf->trusted && serialized)
		return CAI_OK;
	for (int64_t i = 0; i < V; i++)
	{
		const char *w;

		if ((int64_t) off[i + 1] - (int64_t) off[i] < 2 || off[i + 1] > off[V])
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" entry %" PRId64 " is out of range",
								 n_off, i + 1);
		w = (const char *) tb->data + off[i];
		if (memchr(w, '\0', (size_t) (off[i + 1] - off[i])) != w + (off[i + 1] - off[i] - 1))
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "vocabulary word %" PRId64 " is not a single NUL-terminated string", i);
		if (off[i + 1] - off[i] > TEXTCLF_NORM_MAX)
			return cai_error_set(err, CAI_ERR_FORMAT, "vocabulary word %" PRId64 " is too long", i);
	}
	return serialized ? cai_strindex_check(ix, "vocabulary", err) :
		cai_strindex_build(ix, *own_slot, "vocabulary", err);
}

/* See textclf_internal.h. */
cai_status
cai_textclf_load_buckets(const cai_model_file *mf, const char *prefix, int64_t K, uint32_t buckets,
						 cai_intindex *ix, int32_t **own_slot, size_t *mem, cai_error *err)
{
	char		n_keys[CAI_NAME_MAX];
	char		n_slots[CAI_NAME_MAX];
	int64_t		shape_b[1] = {K};
	const cai_tensor *t;
	const int32_t *b;
	bool		serialized;
	cai_status	st;

	snprintf(n_keys, sizeof(n_keys), "%s.buckets", prefix);
	snprintf(n_slots, sizeof(n_slots), "%s.buckets.slots", prefix);
	if (K == 0)
	{
		if (cai_model_file_tensor(mf, n_keys) != NULL || cai_model_file_tensor(mf, n_slots) != NULL)
			return cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"%s\" but bucket_rows 0", n_keys);
		return CAI_OK;
	}
	if ((st = cai_model_file_expect(mf, n_keys, CAI_I32, 1, shape_b, &t, err)) != CAI_OK)
		return st;
	b = t->data;
	ix->n = (int32_t) K;
	ix->keys = b;
	if ((st = textclf_index_slots(mf, n_slots, K, &ix->slot, &ix->mask, own_slot, &serialized, mem,
								  err)) != CAI_OK)
		return st;
	if (mf->trusted && serialized)
		return CAI_OK;
	for (int64_t r = 0; r < K; r++)
		if (b[r] < 0 || (uint32_t) b[r] >= buckets || (r > 0 && b[r] <= b[r - 1]))
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "tensor \"%s\" entry %" PRId64 " (%d) is out of range or not increasing",
								 n_keys, r, (int) b[r]);
	return serialized ? cai_intindex_check(ix, "bucket index", err) :
		cai_intindex_build(ix, *own_slot, "bucket index", err);
}

/* See textclf_internal.h. */
cai_status
cai_textclf_load_bucket_rank(const cai_model_file *mf, const char *prefix, int64_t K, uint32_t buckets,
							 const int32_t *keys, const int32_t **rank, cai_error *err)
{
	char		name[CAI_NAME_MAX];
	uint32_t	nblk = cai_bucket_rank_blocks(buckets);
	int64_t		shape[2] = {nblk, 3};
	const cai_tensor *t;
	const int32_t *m;
	int64_t		r = 0;
	cai_status	st;

	*rank = NULL;
	snprintf(name, sizeof(name), "%s.buckets.rank", prefix);
	if (cai_model_file_tensor(mf, name) == NULL)
		return CAI_OK;
	if (K == 0)
		return cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"%s\" but bucket_rows 0", name);
	if ((st = cai_model_file_expect(mf, name, CAI_I32, 2, shape, &t, err)) != CAI_OK)
		return st;
	m = t->data;
	if (!mf->trusted)
	{
		/* exactly the map of the keys (increasing and below buckets: checked) */
		for (uint32_t j = 0; j < nblk; j++)
		{
			uint64_t	bits = 0;

			if (m[(size_t) j * 3] != r)
				return cai_error_set(err, CAI_ERR_FORMAT,
									 "tensor \"%s\" block %u holds rank %d (must be %" PRId64 ")",
									 name, j, (int) m[(size_t) j * 3], r);
			for (; r < K && (uint32_t) keys[r] / TEXTCLF_RANK_BLOCK == j; r++)
				bits |= 1ULL << ((uint32_t) keys[r] % TEXTCLF_RANK_BLOCK);
			if ((uint32_t) m[(size_t) j * 3 + 1] != (uint32_t) bits ||
				(uint32_t) m[(size_t) j * 3 + 2] != (uint32_t) (bits >> 32))
				return cai_error_set(err, CAI_ERR_FORMAT,
									 "tensor \"%s\" block %u does not match the bucket rows", name, j);
		}
	}
	*rank = m;
	return CAI_OK;
}
