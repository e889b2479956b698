/*
 * safetensors.h: a reader of the safetensors format (Hugging Face's
 * checkpoint files, model.safetensors) that trusts nothing.
 *
 * The format: an 8-byte little-endian header length N, N bytes of a JSON
 * object (UTF-8, starting with '{', possibly padded with trailing spaces),
 * then the data buffer.  Each key of the object is a tensor name with
 * {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, the
 * offsets relative to the data buffer; the optional "__metadata__" key holds
 * an object of string values.
 *
 * cai_safetensors_parse checks, and fails with CAI_ERR_FORMAT (or
 * CAI_ERR_LIMIT where a limit is passed) and a message naming the tensor:
 *  - the file holds 8 bytes, N fits in the file (CAI_ERR_FORMAT) and N is at
 *    most CAI_ST_MAX_HEADER (CAI_ERR_LIMIT);
 *  - the header is valid UTF-8 JSON (no NUL), an object, followed by JSON
 *    white space only (as the reference reader, serde_json, allows); no
 *    name appears twice (also after unescaping, "\u0061" is "a"); at most CAI_ST_MAX_TENSORS tensors;
 *  - every tensor: an object with a known dtype (F64 F32 F16 BF16 I64 I32 I16
 *    I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2), a shape of at most
 *    CAI_ST_MAX_DIMS non-negative integers, data_offsets two non-negative
 *    integers begin <= end inside the data buffer, and end - begin equal to
 *    the product of the shape times the dtype's size (overflow-checked);
 *    other keys of a tensor object are ignored, as the reference reader does;
 *  - the tensors, in offset order, tile the data buffer exactly: the first
 *    begins at 0, each begins where the one before ends (no gap, no
 *    overlap), the last ends at the end of the file;
 *  - "__metadata__" (optional) is an object of strings.
 * The result points into the caller's buffer (tensor data), which must
 * outlive it; names and metadata are copied.
 */
#ifndef CAI_SAFETENSORS_H
#define CAI_SAFETENSORS_H

#include "cai/common.h"

#define CAI_ST_MAX_HEADER 100000000	/* bytes, as the reference reader */
#define CAI_ST_MAX_TENSORS 1000000
#define CAI_ST_MAX_DIMS 8

typedef enum cai_st_dtype
{
	CAI_ST_F32 = 0,
	CAI_ST_F16,
	CAI_ST_BF16,
	CAI_ST_F64,
	CAI_ST_I64,
	CAI_ST_I32,
	CAI_ST_I16,
	CAI_ST_I8,
	CAI_ST_U64,
	CAI_ST_U32,
	CAI_ST_U16,
	CAI_ST_U8,
	CAI_ST_BOOL,
	CAI_ST_F8_E4M3,
	CAI_ST_F8_E5M2,
	CAI_ST_N_DTYPES
} cai_st_dtype;

typedef struct cai_st_tensor
{
	const char *name;			/* NUL-terminated */
	cai_st_dtype dtype;
	int			ndim;			/* 0 for a scalar */
	int64_t		shape[CAI_ST_MAX_DIMS];
	uint64_t	n_elements;		/* product of the shape (1 for a scalar) */
	const unsigned char *data;	/* into the caller's buffer; nbytes bytes, not aligned */
	size_t		nbytes;
	size_t		offset;			/* begin, relative to the data buffer */
} cai_st_tensor;

typedef struct cai_safetensors cai_safetensors;

cai_status	cai_safetensors_parse(const void *buf, size_t len, cai_safetensors **out, cai_error *err);
void		cai_safetensors_free(cai_safetensors *st);	/* NULL allowed */

/* Tensors sorted by name: i in [0, count). */
size_t		cai_safetensors_count(const cai_safetensors *st);
const cai_st_tensor *cai_safetensors_tensor(const cai_safetensors *st, size_t i);

/* The tensor called name, or NULL. */
const cai_st_tensor *cai_safetensors_find(const cai_safetensors *st, const char *name);

/* The value of a "__metadata__" key, or NULL. */
const char *cai_safetensors_metadata(const cai_safetensors *st, const char *key);

/* "F32", "BF16", ... */
const char *cai_st_dtype_name(cai_st_dtype d);

/*
 * Convert a tensor of dtype F32, F16 or BF16 (little-endian) to float32 into
 * out[0..n), n == t->n_elements: F16 exactly (subnormals, infinities, NaN
 * kept), BF16 exactly.  Other dtypes: CAI_ERR_INVALID ("unsupported dtype");
 * n differing: CAI_ERR_INVALID.
 */
cai_status	cai_safetensors_to_f32(const cai_st_tensor *t, float *out, size_t n, cai_error *err);

#endif							/* CAI_SAFETENSORS_H */
