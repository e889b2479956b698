/*
 * format.h: the cai_synergy model format (the bytes stored in the catalog and
 * exchanged by cai_export/cai_import).
 *
 * Layout (all integers little-endian):
 *
 *   header   magic "CAIMODEL" (8), format_version u32, flags u32,
 *            total_size u64, meta_offset u64, meta_size u64,
 *            table_offset u64, table_size u64, n_tensors u32, alignment u32,
 *            data_offset u64, data_size u64
 *   meta     UTF-8 JSON object (json-c), meta_size bytes, no NUL
 *   table    n_tensors entries: name_len u16, name bytes, dtype u8, ndim u8,
 *            shape u64[ndim], offset u64 (from data_offset), nbytes u64
 *   data     tensor bytes, each tensor starting at a multiple of alignment
 *   trailer  CRC-32C u32 over bytes [0, total_size - 4)
 *
 * The reader trusts nothing: it bounds every count, checks every shape
 * product for overflow, every offset and size against the buffer, rejects
 * duplicate names, verifies the checksum and the required metadata keys
 * before returning a model.
 */
#ifndef CAI_FORMAT_H
#define CAI_FORMAT_H

#include "cai/common.h"

#define CAI_FORMAT_MAGIC "CAIMODEL"
#define CAI_FORMAT_VERSION 1
#define CAI_MAX_DIMS 4
#define CAI_NAME_MAX 64			/* including the terminating NUL */
#define CAI_MAX_TENSORS 4096
#define CAI_FORMAT_ALIGN 32

typedef enum cai_dtype
{
	CAI_F32 = 0,
	CAI_I32 = 1,
	CAI_U8 = 2
} cai_dtype;

typedef struct cai_tensor
{
	char		name[CAI_NAME_MAX];
	cai_dtype	dtype;
	int			ndim;
	int64_t		shape[CAI_MAX_DIMS];
	void	   *data;			/* aligned to CAI_FORMAT_ALIGN when read; read-only
								 * (it may point into a shared read-only mapping) */
	size_t		nbytes;
} cai_tensor;

/*
 * A validated, deserialized model: metadata JSON plus named tensors.
 *
 * From cai_format_read every tensor is a private copy in one aligned slab.
 * From cai_format_read_view (borrowed) the tensors point into the caller's
 * buffer, which must stay mapped, unchanged, for as long as this model file
 * and every model loaded from it live; cai_model_file_free then frees only
 * the table, the metadata copy and the slab of any tensor that had to be
 * copied.
 *
 * trusted (a view read with verify_checksum false) records the caller's
 * promise that these exact bytes passed a full validation before (the
 * checksum here and a model loader's load of a model file from them).  The
 * loaders (cai_textclf_load, cai_ner_load) then skip their checks that scan
 * tensor contents (finite weights, vocabulary strings, duplicate words,
 * consistency of serialized hash tables) and so do O(1) work per tensor;
 * every check that guards memory stays: shapes are checked on every load,
 * and lookups through tables and offsets are bounds-checked and bounded at
 * inference whatever the contents.
 */
typedef struct cai_model_file
{
	char	   *meta_json;		/* NUL-terminated copy of the metadata */
	size_t		meta_len;
	int			n_tensors;
	cai_tensor *tensors;		/* data in slab, or in the caller's buffer */
	void	   *slab;			/* copied tensors; NULL when none */
	bool		borrowed;		/* tensors may point into the caller's buffer */
	bool		trusted;		/* bytes validated before: loaders skip content scans */
} cai_model_file;

/* Element size of a dtype (0 if unknown). */
size_t		cai_dtype_size(cai_dtype dt);

/*
 * Serialize metadata and tensors.  *out is allocated with cai_malloc.
 * The metadata must be a JSON object holding the required keys
 * ("task", "architecture", "labels", "cai_version").
 */
cai_status	cai_format_write(const char *meta_json, const cai_tensor *tensors,
							 int n_tensors, uint8_t **out, size_t *out_len,
							 cai_error *err);

/* Validate and deserialize; on success *out must be freed with cai_model_file_free. */
cai_status	cai_format_read(const uint8_t *buf, size_t len, cai_model_file **out,
							cai_error *err);

/*
 * Validate like cai_format_read (the checksum only when verify_checksum;
 * skip it only for bytes validated before, see trusted above) but without
 * copying: the tensors point into buf, which must be CAI_FORMAT_ALIGN-aligned
 * (CAI_ERR_INVALID otherwise; a page-aligned mapping is) and must outlive
 * *out and every model loaded from it.  Rejections of malformed bytes are
 * those of cai_format_read.  A tensor whose offset in buf is not a multiple
 * of CAI_FORMAT_ALIGN (a file written with a smaller alignment; this writer
 * never does that) is copied.  Allocates only the tensor table and the
 * metadata copy.
 */
cai_status	cai_format_read_view(const uint8_t *buf, size_t len, bool verify_checksum,
								 cai_model_file **out, cai_error *err);

/* Validate only (no allocation of tensor data). */
cai_status	cai_format_verify(const uint8_t *buf, size_t len, cai_error *err);

void		cai_model_file_free(cai_model_file *mf);

/* Find a tensor by name; NULL if absent. */
const cai_tensor *cai_model_file_tensor(const cai_model_file *mf, const char *name);

/*
 * Find a tensor and check its dtype and shape (ndim entries; -1 = any);
 * returns CAI_ERR_FORMAT naming the tensor when absent or mismatched.
 */
cai_status	cai_model_file_expect(const cai_model_file *mf, const char *name,
								  cai_dtype dtype, int ndim, const int64_t *shape,
								  const cai_tensor **out, cai_error *err);

/*
 * Serialized lookup tables.  A model that maps strings (a vocabulary) or
 * integer keys (hash buckets) to rows stores, next to the keys, an
 * open-addressing slot array built at training time, so that a loader can
 * use it in place instead of building a private hash table:
 *
 *   slots  I32 (cap), cap = cai_index_capacity(n) (a power of two > n):
 *          slot i holds id + 1 of the key stored there, 0 = empty.  Keys are
 *          inserted in id order with linear probing from
 *          hash & (cap - 1): strings hash with cai_hash_bytes(s, len, seed),
 *          integer keys with cai_index_mix(key).
 *
 * The find functions never read out of bounds and always stop, whatever
 * the slot array holds (ids out of range and bad offsets are skipped; at
 * most cap probes), so a table from trusted bytes needs no scan before use.
 * The check functions are the full validation for untrusted bytes: every
 * slot in range, exactly n filled (so probes end at an empty slot), and
 * every key found at its own id (which also rejects duplicate keys).
 */
typedef struct cai_strindex
{
	int32_t		n;				/* strings */
	const char *bytes;			/* (nbytes) strings, each NUL-terminated */
	size_t		nbytes;
	const int32_t *off;			/* (n + 1) string i is bytes[off[i] .. off[i + 1] - 1) */
	const int32_t *slot;		/* (mask + 1) id + 1, 0 = empty */
	uint32_t	mask;
	uint64_t	seed;
} cai_strindex;

typedef struct cai_intindex
{
	int32_t		n;				/* keys */
	const int32_t *keys;		/* (n) */
	const int32_t *slot;		/* (mask + 1) id + 1, 0 = empty */
	uint32_t	mask;
} cai_intindex;

/* Slots for n keys: the smallest power of two >= 2n, at least 16. */
uint32_t	cai_index_capacity(int64_t n);
uint64_t	cai_index_mix(uint64_t h);

/*
 * Fill slot (cai_index_capacity(ix->n) entries, ix->slot is ignored) for the
 * strings (or keys) of ix, in id order.  CAI_ERR_FORMAT naming what when a
 * string (key) repeats; the strings' offsets must have been validated.
 */
cai_status	cai_strindex_build(const cai_strindex *ix, int32_t *slot, const char *what,
							   cai_error *err);
cai_status	cai_intindex_build(const cai_intindex *ix, int32_t *slot, const char *what,
							   cai_error *err);

/* Id of s[0..len) (of key), -1 if absent; safe on any slot contents. */
int32_t		cai_strindex_find(const cai_strindex *ix, const char *s, size_t len);
/* The same given hash = cai_hash_bytes(s, len, ix->seed), which the caller already has. */
int32_t		cai_strindex_find_hashed(const cai_strindex *ix, const char *s, size_t len,
									 uint64_t hash);
int32_t		cai_intindex_find(const cai_intindex *ix, int32_t key);

/* Full validation of ix->slot (see above); messages name what. */
cai_status	cai_strindex_check(const cai_strindex *ix, const char *what, cai_error *err);
cai_status	cai_intindex_check(const cai_intindex *ix, const char *what, cai_error *err);

/* CRC-32C (Castagnoli) of a buffer. */
uint32_t	cai_crc32c(const void *data, size_t len);

#endif							/* CAI_FORMAT_H */
