/*
 * format_craft.h: build a small valid model and deliberately corrupt variants
 * of it (with the CRC-32C trailer recomputed, so that the check under test is
 * reached rather than the checksum).  Shared by test/unit/test_format.c,
 * test/fuzz/make_bad_models.c (which writes the cases as files for the SQL
 * tests) and test/fuzz/fuzz_format.c.
 *
 * The field offsets below are written out independently of src/core/format.c
 * on purpose: they restate the layout documented in include/cai/format.h.
 *
 * Buffers returned by craft_* are malloc'ed; release them with free().
 */
#ifndef CAI_FORMAT_CRAFT_H
#define CAI_FORMAT_CRAFT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/format.h"

/* header field offsets */
#define CR_VERSION		8
#define CR_FLAGS		12
#define CR_TOTAL_SIZE	16
#define CR_META_OFFSET	24
#define CR_META_SIZE	32
#define CR_TABLE_OFFSET 40
#define CR_TABLE_SIZE	48
#define CR_N_TENSORS	56
#define CR_ALIGNMENT	60
#define CR_DATA_OFFSET	64
#define CR_DATA_SIZE	72
#define CR_HEADER_SIZE	80

static inline uint64_t
craft_get(const uint8_t *p, int nbytes)
{
	uint64_t	v = 0;

	for (int i = nbytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline void
craft_put(uint8_t *p, int nbytes, uint64_t v)
{
	for (int i = 0; i < nbytes; i++)
		p[i] = (uint8_t) (v >> (8 * i));
}

/* Recompute the trailer: CRC-32C of [0, len - 4) stored in the last 4 bytes. */
static inline void
craft_fix_crc(uint8_t *buf, size_t len)
{
	if (len >= 4)
		craft_put(buf + len - 4, 4, cai_crc32c(buf, len - 4));
}

/* Entry fields */
enum
{
	CR_E_NAME_LEN, CR_E_NAME, CR_E_DTYPE, CR_E_NDIM, CR_E_SHAPE, CR_E_OFFSET, CR_E_NBYTES
};

/* Byte position of field `field` (dimension d for CR_E_SHAPE) of table entry i. */
static inline size_t
craft_entry_field(const uint8_t *buf, int i, int field, int d)
{
	size_t		p = (size_t) craft_get(buf + CR_TABLE_OFFSET, 8);

	for (int k = 0;; k++)
	{
		size_t		nl = (size_t) craft_get(buf + p, 2);
		int			ndim = buf[p + 2 + nl + 1];

		if (k == i)
		{
			switch (field)
			{
				case CR_E_NAME_LEN:
					return p;
				case CR_E_NAME:
					return p + 2;
				case CR_E_DTYPE:
					return p + 2 + nl;
				case CR_E_NDIM:
					return p + 3 + nl;
				case CR_E_SHAPE:
					return p + 4 + nl + 8 * (size_t) d;
				case CR_E_OFFSET:
					return p + 4 + nl + 8 * (size_t) ndim;
				default:
					return p + 12 + nl + 8 * (size_t) ndim;
			}
		}
		p += 2 + nl + 2 + 8 * (size_t) ndim + 16;
	}
}

static const char craft_meta[] =
"{\"task\":\"classify\",\"architecture\":\"test\",\"labels\":[\"neg\",\"pos\"],\"cai_version\":\"0.1.0\"}";

/*
 * The small valid model: 4 tensors
 *   0 "w"    f32 (2, 3)
 *   1 "b"    f32 (3)
 *   2 "ids"  i32 (4)
 *   3 "mask" u8  (5)
 */
static inline int
craft_valid(uint8_t **out, size_t *len)
{
	static float w[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -0.0f, 7.75f};
	static float b[3] = {0.1f, 0.2f, -0.3f};
	static int32_t ids[4] = {1, -2, 300000, 4};
	static uint8_t mask[5] = {1, 0, 1, 1, 255};
	cai_tensor	t[4];
	uint8_t    *buf;
	cai_error	err;

	memset(t, 0, sizeof(t));
	strcpy(t[0].name, "w");
	t[0].dtype = CAI_F32;
	t[0].ndim = 2;
	t[0].shape[0] = 2;
	t[0].shape[1] = 3;
	t[0].data = w;
	t[0].nbytes = sizeof(w);
	strcpy(t[1].name, "b");
	t[1].dtype = CAI_F32;
	t[1].ndim = 1;
	t[1].shape[0] = 3;
	t[1].data = b;
	t[1].nbytes = sizeof(b);
	strcpy(t[2].name, "ids");
	t[2].dtype = CAI_I32;
	t[2].ndim = 1;
	t[2].shape[0] = 4;
	t[2].data = ids;
	t[2].nbytes = sizeof(ids);
	strcpy(t[3].name, "mask");
	t[3].dtype = CAI_U8;
	t[3].ndim = 1;
	t[3].shape[0] = 5;
	t[3].data = mask;
	t[3].nbytes = sizeof(mask);

	if (cai_format_write(craft_meta, t, 4, &buf, len, &err) != CAI_OK)
		return -1;
	*out = malloc(*len);
	if (*out == NULL)
	{
		cai_free(buf);
		return -1;
	}
	memcpy(*out, buf, *len);
	cai_free(buf);
	return 0;
}

/*
 * Replace the metadata of a valid model by meta[0..mlen) (any bytes), moving
 * the table and data and fixing the header and the checksum.
 */
static inline int
craft_splice_meta(const uint8_t *src, const char *meta, size_t mlen,
				  uint8_t **out, size_t *len)
{
	size_t		table_size = (size_t) craft_get(src + CR_TABLE_SIZE, 8);
	size_t		table_off = (size_t) craft_get(src + CR_TABLE_OFFSET, 8);
	size_t		data_off = (size_t) craft_get(src + CR_DATA_OFFSET, 8);
	size_t		data_size = (size_t) craft_get(src + CR_DATA_SIZE, 8);
	size_t		ntable = CR_HEADER_SIZE + mlen;
	size_t		ndata = (ntable + table_size + 31) & ~(size_t) 31;
	size_t		total = ndata + data_size + 4;
	uint8_t    *b = calloc(1, total);

	if (b == NULL)
		return -1;
	memcpy(b, src, CR_HEADER_SIZE);
	memcpy(b + CR_HEADER_SIZE, meta, mlen);
	memcpy(b + ntable, src + table_off, table_size);
	memcpy(b + ndata, src + data_off, data_size);
	craft_put(b + CR_TOTAL_SIZE, 8, total);
	craft_put(b + CR_META_SIZE, 8, mlen);
	craft_put(b + CR_TABLE_OFFSET, 8, ntable);
	craft_put(b + CR_DATA_OFFSET, 8, ndata);
	craft_fix_crc(b, total);
	*out = b;
	*len = total;
	return 0;
}

/* One corrupt (or valid) case: what the reader must say about it. */
typedef struct craft_case
{
	const char *name;
	cai_status	want;
	const char *msg;			/* substring of the expected error message */
} craft_case;

static const craft_case craft_cases[] = {
	{"valid", CAI_OK, ""},
	{"empty", CAI_ERR_FORMAT, "model is empty"},
	{"random", CAI_ERR_FORMAT, "bad magic"},
	{"bad_magic", CAI_ERR_FORMAT, "bad magic"},
	{"header_truncated", CAI_ERR_FORMAT, "model is truncated: 50 bytes is shorter than the 80-byte header"},
	{"truncated", CAI_ERR_FORMAT, "model is truncated: header says"},
	{"future_version", CAI_ERR_VERSION, "unsupported model format version 7 (this build reads version 1)"},
	{"version_zero", CAI_ERR_VERSION, "unsupported model format version 0"},
	{"bad_flags", CAI_ERR_FORMAT, "unknown format flags 0x00000004"},
	{"trailing_bytes", CAI_ERR_FORMAT, "model has 10 trailing bytes"},
	{"too_small", CAI_ERR_FORMAT, "too small for the header and checksum"},
	{"bad_alignment", CAI_ERR_FORMAT, "bad alignment 24"},
	{"meta_before_header", CAI_ERR_FORMAT, "metadata section offset 40 overlaps the header"},
	{"meta_past_end", CAI_ERR_FORMAT, "metadata section (offset 80, size 18446744073709551615) extends past the end"},
	{"table_overlaps_meta", CAI_ERR_FORMAT, "tensor table section offset"},
	{"data_past_end", CAI_ERR_FORMAT, "data section (offset"},
	{"data_unaligned", CAI_ERR_FORMAT, "is not a multiple of the alignment 32"},
	{"checksum", CAI_ERR_CHECKSUM, "checksum mismatch: stored 0x"},
	{"too_many_tensors", CAI_ERR_FORMAT, "model has 4097 tensors (limit 4096)"},
	{"table_too_small", CAI_ERR_FORMAT, "is too small for 9 tensors"},
	{"table_unused_bytes", CAI_ERR_FORMAT, "tensor table has 32 unused bytes after the last entry"},
	{"entry_truncated", CAI_ERR_FORMAT, "tensor 3: table entry is truncated"},
	{"name_empty", CAI_ERR_FORMAT, "tensor 1 has an empty name"},
	{"name_nul", CAI_ERR_FORMAT, "tensor 2 name is not valid UTF-8 or contains a control character (byte 1)"},
	{"name_bad_utf8", CAI_ERR_FORMAT, "tensor 2 name is not valid UTF-8"},
	{"name_too_long", CAI_ERR_FORMAT, "tensor 0 name is too long (300 bytes, limit 63)"},
	{"bad_dtype", CAI_ERR_FORMAT, "tensor 1 (\"b\") has unknown dtype 9"},
	{"ndim_zero", CAI_ERR_FORMAT, "tensor 1 (\"b\") has 0 dimensions (must be 1 to 4)"},
	{"ndim_five", CAI_ERR_FORMAT, "tensor 1 (\"b\") has 5 dimensions"},
	{"dim_zero", CAI_ERR_FORMAT, "tensor 0 (\"w\") dimension 1 is 0"},
	{"shape_overflow", CAI_ERR_FORMAT, "tensor 0 (\"w\") shape product overflows"},
	{"bytes_overflow", CAI_ERR_FORMAT, "tensor 0 (\"w\") byte size overflows"},
	{"nbytes_mismatch", CAI_ERR_FORMAT, "tensor 1 (\"b\") says 16 bytes but its shape and dtype need 12"},
	{"offset_unaligned", CAI_ERR_FORMAT, "tensor \"b\" data offset 33 is not a multiple of the alignment 32"},
	{"offset_past_end", CAI_ERR_FORMAT, "tensor \"b\" data offset 4096 + size 12 is past the end of the data section (size 101)"},
	{"offset_wraps", CAI_ERR_FORMAT, "is past the end of the data section"},
	{"overlap", CAI_ERR_FORMAT, "in the data section"},
	{"duplicate_names", CAI_ERR_FORMAT, "duplicate tensor name \"w\""},
	{"meta_empty", CAI_ERR_FORMAT, "metadata is empty"},
	{"meta_not_json", CAI_ERR_FORMAT, "metadata is not valid JSON"},
	{"meta_truncated_json", CAI_ERR_FORMAT, "metadata is not valid JSON"},
	{"meta_trailing_garbage", CAI_ERR_FORMAT, "metadata is not valid JSON"},
	{"meta_bad_utf8", CAI_ERR_FORMAT, "metadata is not valid JSON"},
	{"meta_nul", CAI_ERR_FORMAT, "metadata contains a NUL byte at offset 1"},
	{"meta_not_object", CAI_ERR_FORMAT, "metadata is not a JSON object"},
	{"meta_number", CAI_ERR_FORMAT, "metadata is not a JSON object"},
	{"meta_missing_task", CAI_ERR_FORMAT, "metadata lacks required key \"task\""},
	{"meta_missing_architecture", CAI_ERR_FORMAT, "metadata lacks required key \"architecture\""},
	{"meta_missing_labels", CAI_ERR_FORMAT, "metadata lacks required key \"labels\""},
	{"meta_missing_cai_version", CAI_ERR_FORMAT, "metadata lacks required key \"cai_version\""},
	{"meta_task_not_string", CAI_ERR_FORMAT, "metadata key \"task\" must be a string"},
	{"meta_architecture_not_string", CAI_ERR_FORMAT, "metadata key \"architecture\" must be a string"},
	{"meta_labels_not_array", CAI_ERR_FORMAT, "metadata key \"labels\" must be an array of strings"},
	{"meta_labels_not_strings", CAI_ERR_FORMAT, "metadata key \"labels\" element 1 must be a string"},
	{"meta_cai_version_not_string", CAI_ERR_FORMAT, "metadata key \"cai_version\" must be a string"},
};

#define CRAFT_N_CASES ((int) (sizeof(craft_cases) / sizeof(craft_cases[0])))

static inline int
craft_is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* Metadata variants, by case name (NULL if the case is not a metadata one). */
static inline const char *
craft_meta_for(const char *name, size_t *mlen)
{
	static const struct
	{
		const char *name;
		const char *meta;
	}			metas[] = {
		{"meta_empty", ""},
		{"meta_not_json", "this is not json"},
		{"meta_truncated_json", "{\"task\":\"classify\",\"labels\":["},
		{"meta_trailing_garbage", "{\"task\":\"classify\",\"architecture\":\"test\",\"labels\":[],\"cai_version\":\"0.1.0\"} x"},
		{"meta_bad_utf8", "{\"task\":\"\xff\xfe\",\"architecture\":\"test\",\"labels\":[],\"cai_version\":\"0.1.0\"}"},
		{"meta_not_object", "[\"task\",\"architecture\",\"labels\",\"cai_version\"]"},
		{"meta_number", "42"},
		{"meta_missing_task", "{\"architecture\":\"test\",\"labels\":[\"a\"],\"cai_version\":\"0.1.0\"}"},
		{"meta_missing_architecture", "{\"task\":\"classify\",\"labels\":[\"a\"],\"cai_version\":\"0.1.0\"}"},
		{"meta_missing_labels", "{\"task\":\"classify\",\"architecture\":\"test\",\"cai_version\":\"0.1.0\"}"},
		{"meta_missing_cai_version", "{\"task\":\"classify\",\"architecture\":\"test\",\"labels\":[\"a\"]}"},
		{"meta_task_not_string", "{\"task\":1,\"architecture\":\"test\",\"labels\":[\"a\"],\"cai_version\":\"0.1.0\"}"},
		{"meta_architecture_not_string", "{\"task\":\"classify\",\"architecture\":null,\"labels\":[\"a\"],\"cai_version\":\"0.1.0\"}"},
		{"meta_labels_not_array", "{\"task\":\"classify\",\"architecture\":\"test\",\"labels\":\"a,b\",\"cai_version\":\"0.1.0\"}"},
		{"meta_labels_not_strings", "{\"task\":\"classify\",\"architecture\":\"test\",\"labels\":[\"a\",2],\"cai_version\":\"0.1.0\"}"},
		{"meta_cai_version_not_string", "{\"task\":\"classify\",\"architecture\":\"test\",\"labels\":[\"a\"],\"cai_version\":0.1}"},
	};

	if (craft_is(name, "meta_nul"))
	{
		*mlen = 3;
		return "{\0}";
	}
	for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++)
	{
		if (craft_is(name, metas[i].name))
		{
			*mlen = strlen(metas[i].meta);
			return metas[i].meta;
		}
	}
	return NULL;
}

/*
 * Build the bytes of case `name` (see craft_cases).  Returns 0 on success,
 * -1 for an unknown name or allocation failure.
 */
static inline int
craft_build(const char *name, uint8_t **out, size_t *len)
{
	uint8_t    *b;
	size_t		n;
	const char *meta;
	size_t		mlen;
	int			fix = 1;		/* recompute the checksum afterwards */

	if (craft_valid(&b, &n) != 0)
		return -1;

	meta = craft_meta_for(name, &mlen);
	if (meta != NULL)
	{
		int			rc = craft_splice_meta(b, meta, mlen, out, len);

		free(b);
		return rc;
	}

	if (craft_is(name, "valid"))
		;
	else if (craft_is(name, "empty"))
		n = 0, fix = 0;
	else if (craft_is(name, "random"))
	{
		uint64_t	x = 0x9e3779b97f4a7c15ULL;

		for (size_t i = 0; i < n; i++)
		{
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			b[i] = (uint8_t) x;
		}
		b[0] = 'c';				/* never the magic by accident */
		fix = 0;
	}
	else if (craft_is(name, "bad_magic"))
		b[3] = 'X';
	else if (craft_is(name, "header_truncated"))
		n = 50, fix = 0;
	else if (craft_is(name, "truncated"))
		n = n - 1, fix = 0;
	else if (craft_is(name, "future_version"))
		craft_put(b + CR_VERSION, 4, 7);
	else if (craft_is(name, "version_zero"))
		craft_put(b + CR_VERSION, 4, 0);
	else if (craft_is(name, "bad_flags"))
		craft_put(b + CR_FLAGS, 4, 4);
	else if (craft_is(name, "trailing_bytes"))
	{
		uint8_t    *nb = realloc(b, n + 10);

		if (nb == NULL)
		{
			free(b);
			return -1;
		}
		b = nb;
		memset(b + n, 0, 10);
		craft_fix_crc(b, n);
		n += 10;
		fix = 0;
	}
	else if (craft_is(name, "too_small"))
	{
		n = CR_HEADER_SIZE;
		craft_put(b + CR_TOTAL_SIZE, 8, n);
	}
	else if (craft_is(name, "bad_alignment"))
		craft_put(b + CR_ALIGNMENT, 4, 24);
	else if (craft_is(name, "meta_before_header"))
		craft_put(b + CR_META_OFFSET, 8, 40);
	else if (craft_is(name, "meta_past_end"))
		craft_put(b + CR_META_SIZE, 8, UINT64_MAX);
	else if (craft_is(name, "table_overlaps_meta"))
		craft_put(b + CR_TABLE_OFFSET, 8, craft_get(b + CR_TABLE_OFFSET, 8) - 1);
	else if (craft_is(name, "data_past_end"))
		craft_put(b + CR_DATA_SIZE, 8, craft_get(b + CR_DATA_SIZE, 8) + 1);
	else if (craft_is(name, "data_unaligned"))
	{
		craft_put(b + CR_DATA_OFFSET, 8, craft_get(b + CR_DATA_OFFSET, 8) + 4);
		craft_put(b + CR_DATA_SIZE, 8, craft_get(b + CR_DATA_SIZE, 8) - 4);
	}
	else if (craft_is(name, "checksum"))
	{
		b[craft_get(b + CR_DATA_OFFSET, 8)] ^= 0x10;
		fix = 0;
	}
	else if (craft_is(name, "too_many_tensors"))
		craft_put(b + CR_N_TENSORS, 4, CAI_MAX_TENSORS + 1);
	else if (craft_is(name, "table_too_small"))
		craft_put(b + CR_N_TENSORS, 4, 9);
	else if (craft_is(name, "table_unused_bytes"))
		craft_put(b + CR_N_TENSORS, 4, 3);
	else if (craft_is(name, "entry_truncated"))
	{
		/* the table ends 8 bytes early: the last entry's nbytes is cut */
		craft_put(b + CR_TABLE_SIZE, 8, craft_get(b + CR_TABLE_SIZE, 8) - 8);
	}
	else if (craft_is(name, "name_empty"))
		craft_put(b + craft_entry_field(b, 1, CR_E_NAME_LEN, 0), 2, 0);
	else if (craft_is(name, "name_nul"))
		b[craft_entry_field(b, 2, CR_E_NAME, 0) + 1] = 0;
	else if (craft_is(name, "name_bad_utf8"))
		b[craft_entry_field(b, 2, CR_E_NAME, 0) + 1] = 0xc0;
	else if (craft_is(name, "name_too_long"))
		craft_put(b + craft_entry_field(b, 0, CR_E_NAME_LEN, 0), 2, 300);
	else if (craft_is(name, "bad_dtype"))
		b[craft_entry_field(b, 1, CR_E_DTYPE, 0)] = 9;
	else if (craft_is(name, "ndim_zero"))
		b[craft_entry_field(b, 1, CR_E_NDIM, 0)] = 0;
	else if (craft_is(name, "ndim_five"))
		b[craft_entry_field(b, 1, CR_E_NDIM, 0)] = 5;
	else if (craft_is(name, "dim_zero"))
		craft_put(b + craft_entry_field(b, 0, CR_E_SHAPE, 1), 8, 0);
	else if (craft_is(name, "shape_overflow"))
	{
		craft_put(b + craft_entry_field(b, 0, CR_E_SHAPE, 0), 8, 1ULL << 32);
		craft_put(b + craft_entry_field(b, 0, CR_E_SHAPE, 1), 8, 1ULL << 32);
	}
	else if (craft_is(name, "bytes_overflow"))
	{
		craft_put(b + craft_entry_field(b, 0, CR_E_SHAPE, 0), 8, 1ULL << 62);
		craft_put(b + craft_entry_field(b, 0, CR_E_SHAPE, 1), 8, 2);
	}
	else if (craft_is(name, "nbytes_mismatch"))
		craft_put(b + craft_entry_field(b, 1, CR_E_NBYTES, 0), 8, 16);
	else if (craft_is(name, "offset_unaligned"))
		craft_put(b + craft_entry_field(b, 1, CR_E_OFFSET, 0), 8, 33);
	else if (craft_is(name, "offset_past_end"))
		craft_put(b + craft_entry_field(b, 1, CR_E_OFFSET, 0), 8, 4096);
	else if (craft_is(name, "offset_wraps"))
		craft_put(b + craft_entry_field(b, 1, CR_E_OFFSET, 0), 8, UINT64_MAX - 31);
	else if (craft_is(name, "overlap"))
		craft_put(b + craft_entry_field(b, 1, CR_E_OFFSET, 0), 8, 0);
	else if (craft_is(name, "duplicate_names"))
		b[craft_entry_field(b, 1, CR_E_NAME, 0)] = 'w';
	else
	{
		free(b);
		return -1;
	}

	if (fix)
		craft_fix_crc(b, n);
	*out = b;
	*len = n;
	return 0;
}

#endif							/* CAI_FORMAT_CRAFT_H */
