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
	void	   *data;			/* aligned to CAI_FORMAT_ALIGN when read */
	size_t		nbytes;
} cai_tensor;

/* A validated, deserialized model: metadata JSON plus named tensors. */
typedef struct cai_model_file
{
	char	   *meta_json;		/* NUL-terminated copy of the metadata */
	size_t		meta_len;
	int			n_tensors;
	cai_tensor *tensors;		/* data points into one aligned slab */
	void	   *slab;
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

/* CRC-32C (Castagnoli) of a buffer. */
uint32_t	cai_crc32c(const void *data, size_t len);

#endif							/* CAI_FORMAT_H */
