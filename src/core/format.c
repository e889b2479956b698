/*
 * format.c: reader and writer of the cai_synergy model format.
 *
 * See include/cai/format.h for the layout.  Every integer is read and written
 * byte by byte in little-endian order, never by casting a struct, so the code
 * is independent of the host's byte order and of struct padding.
 *
 * The reader trusts nothing.  Its checks run in this order:
 *
 *   1. header: non-empty, magic, header length, format version
 *      (CAI_ERR_VERSION), flags, total_size equal to the buffer length,
 *      alignment, and the metadata, table and data sections inside the
 *      buffer, in that order, without overlap, before the trailer;
 *   2. the CRC-32C trailer (CAI_ERR_CHECKSUM);
 *   3. the tensor table: count limit, every entry bounds-checked, names
 *      (length, valid UTF-8, no control characters), dtype, ndim, shape
 *      product and byte size overflow-checked, offsets aligned and inside the
 *      data section, no duplicate names, no overlapping tensor data;
 *   4. the metadata: valid JSON, an object, the required keys with the right
 *      types.
 *
 * The header is checked before the checksum so that a truncated buffer, a
 * file of another kind or one from a newer version gets a message saying so
 * rather than a bare checksum mismatch.  Everything after the header is
 * checked after the checksum: accidental corruption then reads as
 * "checksum mismatch" instead of some puzzling structural complaint, and the
 * structural checks still run (a checksum is no defence against crafted
 * bytes).  Nothing is returned before the checksum has been verified.
 * Failures are CAI_ERR_FORMAT unless stated above.
 *
 * The writer applies the same name and metadata rules (as CAI_ERR_INVALID),
 * so anything the writer accepts the reader accepts and vice versa.
 */
#include "cai/format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/*
 * CRC-32C by the SSE4.2 crc32 instruction where the CPU has it: always in a
 * build for such a CPU (-march=native), else chosen at load time; a build
 * with -DCAI_NO_DISPATCH (the baseline of bench/portable.sh) or for another
 * architecture uses the table.
 */
#if defined(__x86_64__) && (defined(__SSE4_2__) || !defined(CAI_NO_DISPATCH))
#define CRC32C_HW 1
#include <nmmintrin.h>
#else
#define CRC32C_HW 0
#endif

/* Fixed header: see the layout comment in format.h. */
#define HDR_MAGIC			0
#define HDR_VERSION			8
#define HDR_FLAGS			12
#define HDR_TOTAL_SIZE		16
#define HDR_META_OFFSET		24
#define HDR_META_SIZE		32
#define HDR_TABLE_OFFSET	40
#define HDR_TABLE_SIZE		48
#define HDR_N_TENSORS		56
#define HDR_ALIGNMENT		60
#define HDR_DATA_OFFSET		64
#define HDR_DATA_SIZE		72
#define HEADER_SIZE			80
#define TRAILER_SIZE		4

/* Smallest table entry: 1-byte name, one dimension. */
#define MIN_ENTRY_SIZE		(2 + 1 + 1 + 1 + 8 + 8 + 8)

/* Accepted alignment field values (powers of two); the writer uses CAI_FORMAT_ALIGN. */
#define MIN_FILE_ALIGN		4
#define MAX_FILE_ALIGN		4096

/* A parsed header (host order). */
typedef struct fmt_header
{
	uint32_t	version;
	uint32_t	flags;
	uint64_t	total_size;
	uint64_t	meta_offset;
	uint64_t	meta_size;
	uint64_t	table_offset;
	uint64_t	table_size;
	uint32_t	n_tensors;
	uint32_t	alignment;
	uint64_t	data_offset;
	uint64_t	data_size;
} fmt_header;

/* A parsed, validated table entry; name points into the caller's buffer. */
typedef struct fmt_entry
{
	const char *name;			/* not NUL-terminated */
	size_t		name_len;
	cai_dtype	dtype;
	int			ndim;
	int64_t		shape[CAI_MAX_DIMS];
	uint64_t	offset;			/* from data_offset */
	uint64_t	nbytes;
} fmt_entry;

/* ---------------------------------------------------------------------- */
/* Little-endian byte access                                              */
/* ---------------------------------------------------------------------- */

static inline uint16_t
rd_u16(const uint8_t *p)
{
	return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t
rd_u32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static inline uint64_t
rd_u64(const uint8_t *p)
{
	return (uint64_t) rd_u32(p) | ((uint64_t) rd_u32(p + 4) << 32);
}

static inline void
wr_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
}

static inline void
wr_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
}

static inline void
wr_u64(uint8_t *p, uint64_t v)
{
	wr_u32(p, (uint32_t) v);
	wr_u32(p + 4, (uint32_t) (v >> 32));
}

/* ---------------------------------------------------------------------- */
/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78)                  */
/* ---------------------------------------------------------------------- */

#if CRC32C_HW

/*
 * a * b modulo the CRC-32C polynomial, both in the bit order of the CRC
 * register (reflected: bit 31 holds the coefficient of x^0).  Multiplying
 * by x is a right shift, reduced by the polynomial when x^31 falls out.
 */
static uint32_t
crc32c_mulmod(uint32_t a, uint32_t b)
{
	uint32_t	prod = 0;

	for (int i = 0; i < 32; i++)
	{
		if (a & (0x80000000u >> i))
			prod ^= b;
		b = (b >> 1) ^ (0x82f63b78u & (0u - (b & 1u)));
	}
	return prod;
}

/*
 * The SSE4.2 crc32 instruction computes exactly CRC-32C, one 8-byte word per
 * instruction, but each depends on the one before (a latency of 3 cycles).
 * Long inputs are therefore cut into blocks of three stripes that are
 * summed in three independent chains, and the three registers are combined:
 * processing bytes D from register r gives r * x^(8|D|) + R0(D) modulo the
 * polynomial, R0(D) being the register after D from 0, so a block's register
 * is ((r0 * x^(8S)) + r1) * x^(8S) + r2 for stripes of S bytes, where r0
 * continues from the register before the block and r1, r2 start at 0.
 */
#define CRC32C_STRIPE 8192		/* bytes; 8 * CRC32C_STRIPE = 2^16 */

static uint32_t crc32c_x_stripe;	/* x^(8 * CRC32C_STRIPE) modulo the polynomial */

__attribute__((target("sse4.2")))
static uint32_t
crc32c_sse42(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t	crc = 0xffffffffu;

	while (len > 0 && ((uintptr_t) p & 7) != 0)
	{
		crc = _mm_crc32_u8((uint32_t) crc, *p++);
		len--;
	}
	while (len >= 3 * CRC32C_STRIPE)
	{
		uint64_t	c1 = 0,
					c2 = 0;

		for (size_t i = 0; i < CRC32C_STRIPE; i += 8)
		{
			uint64_t	w0,
						w1,
						w2;

			memcpy(&w0, p + i, 8);	/* x86 is little-endian */
			memcpy(&w1, p + CRC32C_STRIPE + i, 8);
			memcpy(&w2, p + 2 * CRC32C_STRIPE + i, 8);
			crc = _mm_crc32_u64(crc, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
		}
		crc = crc32c_mulmod(crc32c_mulmod((uint32_t) crc, crc32c_x_stripe) ^ (uint32_t) c1,
							crc32c_x_stripe) ^ (uint32_t) c2;
		p += 3 * CRC32C_STRIPE;
		len -= 3 * CRC32C_STRIPE;
	}
	while (len >= 8)
	{
		uint64_t	w;

		memcpy(&w, p, 8);
		crc = _mm_crc32_u64(crc, w);
		p += 8;
		len -= 8;
	}
	while (len > 0)
	{
		crc = _mm_crc32_u8((uint32_t) crc, *p++);
		len--;
	}
	return (uint32_t) crc ^ 0xffffffffu;
}

#endif

/*
 * Slicing-by-8.  The tables (and whether the CPU has SSE4.2) are filled
 * once when the library is loaded (a constructor runs before any thread
 * could call us).
 */
static uint32_t crc32c_table[8][256];
#if CRC32C_HW
static bool crc32c_have_sse42;
#endif

__attribute__((constructor))
static void
crc32c_init(void)
{
#if CRC32C_HW && defined(__SSE4_2__)
	crc32c_have_sse42 = true;
#elif CRC32C_HW
	__builtin_cpu_init();
	crc32c_have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
#if CRC32C_HW
	/* x^(2^16) by squaring x sixteen times */
	crc32c_x_stripe = 0x40000000u;
	for (int k = 0; k < 16; k++)
		crc32c_x_stripe = crc32c_mulmod(crc32c_x_stripe, crc32c_x_stripe);
#endif
	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t	c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8) ^
				crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
}

static uint32_t
crc32c_table8(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t	crc = 0xffffffffu;

	while (len >= 8)
	{
		uint32_t	lo = rd_u32(p) ^ crc;
		uint32_t	hi = rd_u32(p + 4);

		crc = crc32c_table[7][lo & 0xff] ^
			crc32c_table[6][(lo >> 8) & 0xff] ^
			crc32c_table[5][(lo >> 16) & 0xff] ^
			crc32c_table[4][lo >> 24] ^
			crc32c_table[3][hi & 0xff] ^
			crc32c_table[2][(hi >> 8) & 0xff] ^
			crc32c_table[1][(hi >> 16) & 0xff] ^
			crc32c_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len > 0)
	{
		crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	return crc ^ 0xffffffffu;
}

uint32_t
cai_crc32c(const void *data, size_t len)
{
#if CRC32C_HW
	if (crc32c_have_sse42)
		return crc32c_sse42(data, len);
#endif
	return crc32c_table8(data, len);
}

/* ---------------------------------------------------------------------- */
/* Shared rules: dtypes, names, metadata                                  */
/* ---------------------------------------------------------------------- */

size_t
cai_dtype_size(cai_dtype dt)
{
	switch (dt)
	{
		case CAI_F32:
			return 4;
		case CAI_I32:
			return 4;
		case CAI_U8:
			return 1;
	}
	return 0;
}

static const char *
dtype_name(cai_dtype dt)
{
	switch (dt)
	{
		case CAI_F32:
			return "f32";
		case CAI_I32:
			return "i32";
		case CAI_U8:
			return "u8";
	}
	return "unknown";
}

/*
 * Is s[0..len) well-formed UTF-8 without control characters (and so without
 * NUL)?  Rejects overlong forms, surrogates and code points past U+10FFFF.
 * On failure *bad is the offending byte offset.
 */
static bool
name_chars_ok(const uint8_t *s, size_t len, size_t *bad)
{
	size_t		i = 0;

	while (i < len)
	{
		uint8_t		c = s[i];
		uint32_t	cp;
		int			n;

		if (c < 0x80)
		{
			if (c < 0x20 || c == 0x7f)
				goto fail;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
		{
			n = 1;
			cp = c & 0x1f;
		}
		else if (c >= 0xe0 && c <= 0xef)
		{
			n = 2;
			cp = c & 0x0f;
		}
		else if (c >= 0xf0 && c <= 0xf4)
		{
			n = 3;
			cp = c & 0x07;
		}
		else
			goto fail;
		if (len - i < (size_t) n + 1)
			goto fail;
		for (int k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xc0) != 0x80)
				goto fail;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
			(cp >= 0x80 && cp < 0xa0))	/* C1 controls */
			goto fail;
		i += (size_t) n + 1;
	}
	return true;

fail:
	*bad = i;
	return false;
}

/* Name rule shared by reader and writer; what names the tensor in messages. */
static cai_status
check_name(const uint8_t *name, size_t len, const char *what, cai_status st,
		   cai_error *err)
{
	size_t		bad;

	if (len == 0)
		return cai_error_set(err, st, "%s has an empty name", what);
	if (len >= CAI_NAME_MAX)
		return cai_error_set(err, st, "%s name is too long (%zu bytes, limit %d)",
							 what, len, CAI_NAME_MAX - 1);
	if (!name_chars_ok(name, len, &bad))
		return cai_error_set(err, st,
							 "%s name is not valid UTF-8 or contains a control character (byte %zu)",
							 what, bad);
	return CAI_OK;
}

static cai_status
check_string_key(json_object *root, const char *key, cai_status st, cai_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(root, key, &v))
		return cai_error_set(err, st, "metadata lacks required key \"%s\"", key);
	if (!json_object_is_type(v, json_type_string))
		return cai_error_set(err, st, "metadata key \"%s\" must be a string", key);
	return CAI_OK;
}

/*
 * Parse meta[0..len) as a JSON object holding the required keys with the
 * right types.  st is the status to report (FORMAT when reading, INVALID
 * when writing).
 */
static cai_status
check_metadata(const char *meta, size_t len, cai_status st, cai_error *err)
{
	json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	const char *nul;
	size_t		where;
	cai_status	rc;
	json_object *labels;

	if (len == 0)
		return cai_error_set(err, st, "metadata is empty");
	if (len > (size_t) INT32_MAX)
		return cai_error_set(err, st, "metadata of %zu bytes is too large", len);
	nul = memchr(meta, '\0', len);
	if (nul != NULL)
		return cai_error_set(err, st, "metadata contains a NUL byte at offset %zu",
							 (size_t) (nul - meta));

	tok = json_tokener_new();
	if (tok == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory parsing metadata");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, meta, (int) len);
	jerr = json_tokener_get_error(tok);
	where = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue)
	{
		/* a NUL ends the input: completes a bare number, else "end of data" */
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		where = len;
	}
	if (root == NULL || jerr != json_tokener_success)
	{
		rc = cai_error_set(err, st, "metadata is not valid JSON: %s (near byte %zu)",
						   json_tokener_error_desc(jerr), where);
		json_object_put(root);
		json_tokener_free(tok);
		return rc;
	}
	json_tokener_free(tok);

	if (!json_object_is_type(root, json_type_object))
	{
		json_object_put(root);
		return cai_error_set(err, st, "metadata is not a JSON object");
	}

	rc = check_string_key(root, "task", st, err);
	if (rc == CAI_OK)
		rc = check_string_key(root, "architecture", st, err);
	if (rc == CAI_OK)
	{
		if (!json_object_object_get_ex(root, "labels", &labels))
			rc = cai_error_set(err, st, "metadata lacks required key \"labels\"");
		else if (!json_object_is_type(labels, json_type_array))
			rc = cai_error_set(err, st, "metadata key \"labels\" must be an array of strings");
		else
		{
			size_t		n = json_object_array_length(labels);

			for (size_t i = 0; i < n; i++)
			{
				if (!json_object_is_type(json_object_array_get_idx(labels, i),
										 json_type_string))
				{
					rc = cai_error_set(err, st,
									   "metadata key \"labels\" element %zu must be a string", i);
					break;
				}
			}
		}
	}
	if (rc == CAI_OK)
		rc = check_string_key(root, "cai_version", st, err);
	json_object_put(root);
	return rc;
}

/* Sort helpers for duplicate and overlap detection. */
typedef struct sort_item
{
	const char *name;
	size_t		name_len;
	uint64_t	offset;
	uint64_t	nbytes;
} sort_item;

static int
cmp_name(const void *a, const void *b)
{
	const sort_item *x = a;
	const sort_item *y = b;
	size_t		n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int			c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int
cmp_offset(const void *a, const void *b)
{
	const sort_item *x = a;
	const sort_item *y = b;

	return (x->offset > y->offset) - (x->offset < y->offset);
}

/*
 * Sort items (n > 1) by name and report the first duplicate.  The items are
 * left sorted by name.
 */
static cai_status
check_duplicates(sort_item *items, size_t n, cai_status st, cai_error *err)
{
	qsort(items, n, sizeof(sort_item), cmp_name);
	for (size_t i = 1; i < n; i++)
	{
		if (cmp_name(&items[i - 1], &items[i]) == 0)
			return cai_error_set(err, st, "duplicate tensor name \"%.*s\"",
								 (int) items[i].name_len, items[i].name);
	}
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Reader                                                                 */
/* ---------------------------------------------------------------------- */

static inline bool
is_pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/*
 * Check that the section [off, off + size) starts at or after `after` (the
 * end of the previous section, called prev) and ends at or before limit.
 * On success *end is off + size.
 */
static cai_status
check_section(const char *what, uint64_t off, uint64_t size,
			  const char *prev, uint64_t after, uint64_t limit,
			  uint64_t *end, cai_error *err)
{
	if (off < after)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "%s section offset %" PRIu64 " overlaps the %s, which ends at %" PRIu64,
							 what, off, prev, after);
	if (size > UINT64_MAX - off || off + size > limit)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "%s section (offset %" PRIu64 ", size %" PRIu64 ") extends past the end of the model (%" PRIu64 " bytes before the checksum)",
							 what, off, size, limit);
	*end = off + size;
	return CAI_OK;
}

/* Step 1: the header and section layout. */
static cai_status
parse_header(const uint8_t *buf, size_t len, fmt_header *h, cai_error *err)
{
	const size_t magic_len = sizeof(CAI_FORMAT_MAGIC) - 1;
	uint64_t	limit;
	uint64_t	meta_end;
	uint64_t	table_end;
	uint64_t	data_end;
	cai_status	rc;

	if (len == 0)
		return cai_error_set(err, CAI_ERR_FORMAT, "model is empty");
	if (buf == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model buffer is NULL");
	if (memcmp(buf, CAI_FORMAT_MAGIC, len < magic_len ? len : magic_len) != 0)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "bad magic: not a cai_synergy model (expected \"%s\")",
							 CAI_FORMAT_MAGIC);
	if (len < HEADER_SIZE)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "model is truncated: %zu bytes is shorter than the %d-byte header",
							 len, HEADER_SIZE);

	h->version = rd_u32(buf + HDR_VERSION);
	h->flags = rd_u32(buf + HDR_FLAGS);
	h->total_size = rd_u64(buf + HDR_TOTAL_SIZE);
	h->meta_offset = rd_u64(buf + HDR_META_OFFSET);
	h->meta_size = rd_u64(buf + HDR_META_SIZE);
	h->table_offset = rd_u64(buf + HDR_TABLE_OFFSET);
	h->table_size = rd_u64(buf + HDR_TABLE_SIZE);
	h->n_tensors = rd_u32(buf + HDR_N_TENSORS);
	h->alignment = rd_u32(buf + HDR_ALIGNMENT);
	h->data_offset = rd_u64(buf + HDR_DATA_OFFSET);
	h->data_size = rd_u64(buf + HDR_DATA_SIZE);

	if (h->version != CAI_FORMAT_VERSION)
		return cai_error_set(err, CAI_ERR_VERSION,
							 "unsupported model format version %u (this build reads version %d)",
							 h->version, CAI_FORMAT_VERSION);
	if (h->flags != 0)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "unknown format flags 0x%08x (format version %d defines none)",
							 h->flags, CAI_FORMAT_VERSION);
	if (h->total_size > len)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "model is truncated: header says %" PRIu64 " bytes but only %zu are present",
							 h->total_size, len);
	if (h->total_size < len)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "model has %zu trailing bytes: header says %" PRIu64 " bytes but %zu are present",
							 (size_t) (len - h->total_size), h->total_size, len);
	if (h->total_size < HEADER_SIZE + TRAILER_SIZE)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "model of %" PRIu64 " bytes is too small for the header and checksum",
							 h->total_size);
	if (!is_pow2(h->alignment) || h->alignment < MIN_FILE_ALIGN ||
		h->alignment > MAX_FILE_ALIGN)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "bad alignment %u (must be a power of two from %d to %d)",
							 h->alignment, MIN_FILE_ALIGN, MAX_FILE_ALIGN);

	limit = h->total_size - TRAILER_SIZE;
	rc = check_section("metadata", h->meta_offset, h->meta_size,
					   "header", HEADER_SIZE, limit, &meta_end, err);
	if (rc == CAI_OK)
		rc = check_section("tensor table", h->table_offset, h->table_size,
						   "metadata", meta_end, limit, &table_end, err);
	if (rc == CAI_OK)
		rc = check_section("data", h->data_offset, h->data_size,
						   "tensor table", table_end, limit, &data_end, err);
	if (rc != CAI_OK)
		return rc;
	if (h->data_offset % h->alignment != 0)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "data section offset %" PRIu64 " is not a multiple of the alignment %u",
							 h->data_offset, h->alignment);
	return CAI_OK;
}

/* Step 3: one table entry at *pos (advanced); i is its index. */
static cai_status
parse_entry(const uint8_t *buf, const fmt_header *h, uint64_t *pos, uint64_t end,
			uint32_t i, fmt_entry *e, cai_error *err)
{
	uint64_t	p = *pos;
	uint16_t	name_len;
	uint8_t		dtype;
	uint8_t		ndim;
	size_t		count = 1;
	size_t		need;
	size_t		esize;
	char		what[32];
	cai_status	rc;

#define NEED(n) \
	do { \
		if (end - p < (uint64_t) (n)) \
			return cai_error_set(err, CAI_ERR_FORMAT, \
								 "tensor %u: table entry is truncated at byte %" PRIu64 " of the %" PRIu64 "-byte table", \
								 i, p - h->table_offset, h->table_size); \
	} while (0)

	NEED(2);
	name_len = rd_u16(buf + p);
	p += 2;
	snprintf(what, sizeof(what), "tensor %u", i);
	if (name_len == 0 || name_len >= CAI_NAME_MAX)	/* reported without reading */
		return check_name(buf + p, name_len, what, CAI_ERR_FORMAT, err);
	NEED(name_len);
	rc = check_name(buf + p, name_len, what, CAI_ERR_FORMAT, err);
	if (rc != CAI_OK)
		return rc;
	e->name = (const char *) (buf + p);
	e->name_len = name_len;
	p += name_len;

	NEED(2);
	dtype = buf[p];
	ndim = buf[p + 1];
	p += 2;
	if (cai_dtype_size((cai_dtype) dtype) == 0)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor %u (\"%.*s\") has unknown dtype %u",
							 i, (int) name_len, e->name, dtype);
	if (ndim < 1 || ndim > CAI_MAX_DIMS)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor %u (\"%.*s\") has %u dimensions (must be 1 to %d)",
							 i, (int) name_len, e->name, ndim, CAI_MAX_DIMS);
	e->dtype = (cai_dtype) dtype;
	e->ndim = ndim;

	NEED(8 * (uint64_t) ndim + 16);
	for (int d = 0; d < ndim; d++)
	{
		uint64_t	dim = rd_u64(buf + p);

		p += 8;
		if (dim == 0 || dim > (uint64_t) INT64_MAX)
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "tensor %u (\"%.*s\") dimension %d is %" PRIu64 " (must be at least 1)",
								 i, (int) name_len, e->name, d, dim);
		e->shape[d] = (int64_t) dim;
		if (!cai_size_mul(count, (size_t) dim, &count))
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "tensor %u (\"%.*s\") shape product overflows",
								 i, (int) name_len, e->name);
	}
	for (int d = ndim; d < CAI_MAX_DIMS; d++)
		e->shape[d] = 1;
	e->offset = rd_u64(buf + p);
	e->nbytes = rd_u64(buf + p + 8);
	p += 16;

	esize = cai_dtype_size(e->dtype);
	if (!cai_size_mul(count, esize, &need))
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor %u (\"%.*s\") byte size overflows",
							 i, (int) name_len, e->name);
	if (e->nbytes != need)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor %u (\"%.*s\") says %" PRIu64 " bytes but its shape and dtype need %zu",
							 i, (int) name_len, e->name, e->nbytes, need);
	if (e->offset % h->alignment != 0)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor \"%.*s\" data offset %" PRIu64 " is not a multiple of the alignment %u",
							 (int) name_len, e->name, e->offset, h->alignment);
	if (e->offset > h->data_size || e->nbytes > h->data_size - e->offset)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor \"%.*s\" data offset %" PRIu64 " + size %" PRIu64 " is past the end of the data section (size %" PRIu64 ")",
							 (int) name_len, e->name, e->offset, e->nbytes, h->data_size);
#undef NEED

	*pos = p;
	return CAI_OK;
}

/*
 * Run every check.  On success *entries_out (cai_malloc'ed, NULL when there
 * are no tensors) holds the parsed table; the caller frees it.
 */
static cai_status
parse_model(const uint8_t *buf, size_t len, bool verify_checksum, fmt_header *h,
			fmt_entry **entries_out, cai_error *err)
{
	fmt_entry  *entries = NULL;
	sort_item  *items = NULL;
	uint64_t	pos;
	uint64_t	table_end;
	uint32_t	stored;
	uint32_t	computed;
	size_t		n;
	cai_status	rc;

	*entries_out = NULL;

	/* 1. header */
	rc = parse_header(buf, len, h, err);
	if (rc != CAI_OK)
		return rc;

	/* 2. checksum (skipped only for bytes the caller validated before) */
	stored = rd_u32(buf + h->total_size - TRAILER_SIZE);
	computed = verify_checksum ? cai_crc32c(buf, h->total_size - TRAILER_SIZE) : stored;
	if (stored != computed)
		return cai_error_set(err, CAI_ERR_CHECKSUM,
							 "checksum mismatch: stored 0x%08x computed 0x%08x",
							 stored, computed);

	/* 3. tensor table */
	if (h->n_tensors > CAI_MAX_TENSORS)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "model has %u tensors (limit %d)", h->n_tensors, CAI_MAX_TENSORS);
	n = h->n_tensors;
	if ((uint64_t) n * MIN_ENTRY_SIZE > h->table_size)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor table of %" PRIu64 " bytes is too small for %zu tensors",
							 h->table_size, n);
	if (n > 0)
	{
		entries = cai_calloc(n, sizeof(fmt_entry));
		items = cai_calloc(n, sizeof(sort_item));
		if (entries == NULL || items == NULL)
		{
			rc = cai_error_set(err, CAI_ERR_NOMEM,
							   "out of memory reading a tensor table of %zu entries", n);
			goto fail;
		}
	}
	pos = h->table_offset;
	table_end = h->table_offset + h->table_size;
	for (size_t i = 0; i < n; i++)
	{
		rc = parse_entry(buf, h, &pos, table_end, (uint32_t) i, &entries[i], err);
		if (rc != CAI_OK)
			goto fail;
		items[i].name = entries[i].name;
		items[i].name_len = entries[i].name_len;
		items[i].offset = entries[i].offset;
		items[i].nbytes = entries[i].nbytes;
	}
	if (pos != table_end)
	{
		rc = cai_error_set(err, CAI_ERR_FORMAT,
						   "tensor table has %" PRIu64 " unused bytes after the last entry",
						   table_end - pos);
		goto fail;
	}
	if (n > 1)
	{
		rc = check_duplicates(items, n, CAI_ERR_FORMAT, err);
		if (rc != CAI_OK)
			goto fail;
		qsort(items, n, sizeof(sort_item), cmp_offset);
		for (size_t i = 1; i < n; i++)
		{
			/* both ranges are inside the data section: no overflow */
			if (items[i - 1].offset + items[i - 1].nbytes > items[i].offset)
			{
				rc = cai_error_set(err, CAI_ERR_FORMAT,
								   "tensor \"%.*s\" overlaps tensor \"%.*s\" in the data section",
								   (int) items[i].name_len, items[i].name,
								   (int) items[i - 1].name_len, items[i - 1].name);
				goto fail;
			}
		}
	}
	cai_free(items);
	items = NULL;

	/* 4. metadata */
	rc = check_metadata((const char *) buf + h->meta_offset, h->meta_size,
						CAI_ERR_FORMAT, err);
	if (rc != CAI_OK)
		goto fail;

	*entries_out = entries;
	return CAI_OK;

fail:
	cai_free(items);
	cai_free(entries);
	return rc;
}

cai_status
cai_format_verify(const uint8_t *buf, size_t len, cai_error *err)
{
	fmt_header	h;
	fmt_entry  *entries;
	cai_status	rc;

	rc = parse_model(buf, len, true, &h, &entries, err);
	cai_free(entries);
	return rc;
}

static inline size_t
align_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/*
 * The shared body of cai_format_read and cai_format_read_view.  copy: every
 * tensor goes into one private slab.  Otherwise tensors point into buf
 * (which is CAI_FORMAT_ALIGN-aligned), except a tensor whose place in buf is
 * not CAI_FORMAT_ALIGN-aligned (possible only in a file written with a
 * smaller alignment field), which is copied into the slab so that every
 * tensor is aligned either way.
 */
static cai_status
format_read(const uint8_t *buf, size_t len, bool copy, bool verify_checksum,
			cai_model_file **out, cai_error *err)
{
	fmt_header	h;
	fmt_entry  *entries;
	cai_model_file *mf;
	size_t		slab_size = CAI_FORMAT_ALIGN - 1;	/* room to align the base */
	bool		any_copy = false;
	uint8_t    *base;
	size_t		pos;
	cai_status	rc;

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer is NULL");
	*out = NULL;
	if (!copy && buf != NULL && ((uintptr_t) buf % CAI_FORMAT_ALIGN) != 0)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "model buffer is not aligned to %d bytes", CAI_FORMAT_ALIGN);

	rc = parse_model(buf, len, verify_checksum, &h, &entries, err);
	if (rc != CAI_OK)
		return rc;

	/*
	 * Each copied tensor gets its own CAI_FORMAT_ALIGN-aligned place in one
	 * slab.  The sizes were bounded by the buffer length, so this cannot
	 * overflow in practice; check anyway.
	 */
	for (uint32_t i = 0; i < h.n_tensors; i++)
	{
		if (!copy && (h.data_offset + entries[i].offset) % CAI_FORMAT_ALIGN == 0)
			continue;
		any_copy = true;
		if (!cai_size_add(slab_size, align_up(entries[i].nbytes, CAI_FORMAT_ALIGN), &slab_size))
		{
			cai_free(entries);
			return cai_error_set(err, CAI_ERR_NOMEM, "model tensors are too large to load");
		}
	}

	mf = cai_calloc(1, sizeof(cai_model_file));
	if (mf == NULL)
		goto nomem;
	mf->meta_json = cai_strndup((const char *) buf + h.meta_offset, h.meta_size);
	if (mf->meta_json == NULL)
		goto nomem;
	mf->meta_len = h.meta_size;
	mf->n_tensors = (int) h.n_tensors;
	mf->borrowed = !copy;
	mf->trusted = !verify_checksum;
	if (h.n_tensors > 0)
	{
		mf->tensors = cai_calloc(h.n_tensors, sizeof(cai_tensor));
		if (mf->tensors == NULL)
			goto nomem;
	}
	if (any_copy && (mf->slab = cai_malloc(slab_size)) == NULL)
		goto nomem;

	base = (uint8_t *) align_up((uintptr_t) mf->slab, CAI_FORMAT_ALIGN);
	pos = 0;
	for (uint32_t i = 0; i < h.n_tensors; i++)
	{
		const fmt_entry *e = &entries[i];
		cai_tensor *t = &mf->tensors[i];
		const uint8_t *src = buf + h.data_offset + e->offset;

		memcpy(t->name, e->name, e->name_len);
		t->name[e->name_len] = '\0';
		t->dtype = e->dtype;
		t->ndim = e->ndim;
		memcpy(t->shape, e->shape, sizeof(t->shape));
		t->nbytes = e->nbytes;
		if (!copy && (h.data_offset + e->offset) % CAI_FORMAT_ALIGN == 0)
		{
			t->data = (void *) src;	/* read-only: the buffer is the caller's */
			continue;
		}
		t->data = base + pos;
		memcpy(t->data, src, e->nbytes);
		pos += align_up(e->nbytes, CAI_FORMAT_ALIGN);
	}

	cai_free(entries);
	*out = mf;
	return CAI_OK;

nomem:
	cai_free(entries);
	cai_model_file_free(mf);
	return cai_error_set(err, CAI_ERR_NOMEM,
						 "out of memory loading a model of %zu bytes", len);
}

cai_status
cai_format_read(const uint8_t *buf, size_t len, cai_model_file **out, cai_error *err)
{
	return format_read(buf, len, true, true, out, err);
}

cai_status
cai_format_read_view(const uint8_t *buf, size_t len, bool verify_checksum,
					 cai_model_file **out, cai_error *err)
{
	return format_read(buf, len, false, verify_checksum, out, err);
}

void
cai_model_file_free(cai_model_file *mf)
{
	if (mf == NULL)
		return;
	cai_free(mf->meta_json);
	cai_free(mf->tensors);
	cai_free(mf->slab);			/* never the caller's buffer of a view */
	cai_free(mf);
}

/* ---------------------------------------------------------------------- */
/* Writer                                                                 */
/* ---------------------------------------------------------------------- */

/* Validate one tensor for writing; *name_len receives strlen(name). */
static cai_status
check_tensor(const cai_tensor *t, int i, size_t *name_len, cai_error *err)
{
	char		what[32];
	size_t		nl = strnlen(t->name, CAI_NAME_MAX);
	size_t		esize = cai_dtype_size(t->dtype);
	size_t		count = 1;
	size_t		need;
	cai_status	rc;

	snprintf(what, sizeof(what), "tensor %d", i);
	rc = check_name((const uint8_t *) t->name, nl, what, CAI_ERR_INVALID, err);
	if (rc != CAI_OK)
		return rc;
	if (esize == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "tensor \"%s\" has unknown dtype %d",
							 t->name, (int) t->dtype);
	if (t->ndim < 1 || t->ndim > CAI_MAX_DIMS)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "tensor \"%s\" has %d dimensions (must be 1 to %d)",
							 t->name, t->ndim, CAI_MAX_DIMS);
	for (int d = 0; d < t->ndim; d++)
	{
		if (t->shape[d] < 1)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "tensor \"%s\" dimension %d is %" PRId64 " (must be at least 1)",
								 t->name, d, t->shape[d]);
		if ((uint64_t) t->shape[d] > SIZE_MAX ||
			!cai_size_mul(count, (size_t) t->shape[d], &count))
			return cai_error_set(err, CAI_ERR_INVALID,
								 "tensor \"%s\" shape product overflows", t->name);
	}
	if (!cai_size_mul(count, esize, &need))
		return cai_error_set(err, CAI_ERR_INVALID,
							 "tensor \"%s\" byte size overflows", t->name);
	if (t->nbytes != need)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "tensor \"%s\" has nbytes %zu but its shape and dtype need %zu",
							 t->name, t->nbytes, need);
	if (t->data == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "tensor \"%s\" has no data", t->name);
	*name_len = nl;
	return CAI_OK;
}

cai_status
cai_format_write(const char *meta_json, const cai_tensor *tensors,
				 int n_tensors, uint8_t **out, size_t *out_len,
				 cai_error *err)
{
	size_t		meta_len;
	size_t	   *name_lens = NULL;
	size_t	   *offsets = NULL;
	sort_item  *items = NULL;
	size_t		table_size = 0;
	size_t		table_offset;
	size_t		data_offset;
	size_t		data_size = 0;
	size_t		total;
	uint8_t    *buf;
	uint8_t    *p;
	cai_status	rc;

	if (out == NULL || out_len == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer is NULL");
	*out = NULL;
	*out_len = 0;
	if (meta_json == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "metadata is missing");
	if (n_tensors < 0 || n_tensors > CAI_MAX_TENSORS)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "cannot write %d tensors (must be 0 to %d)",
							 n_tensors, CAI_MAX_TENSORS);
	if (n_tensors > 0 && tensors == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "tensor array is NULL");

	meta_len = strlen(meta_json);
	rc = check_metadata(meta_json, meta_len, CAI_ERR_INVALID, err);
	if (rc != CAI_OK)
		return rc;

	if (n_tensors > 0)
	{
		name_lens = cai_calloc((size_t) n_tensors, sizeof(size_t));
		offsets = cai_calloc((size_t) n_tensors, sizeof(size_t));
		items = cai_calloc((size_t) n_tensors, sizeof(sort_item));
		if (name_lens == NULL || offsets == NULL || items == NULL)
		{
			rc = cai_error_set(err, CAI_ERR_NOMEM, "out of memory writing a model");
			goto done;
		}
	}

	/* validate, and lay out the table and the data section */
	for (int i = 0; i < n_tensors; i++)
	{
		const cai_tensor *t = &tensors[i];

		rc = check_tensor(t, i, &name_lens[i], err);
		if (rc != CAI_OK)
			goto done;
		items[i].name = t->name;
		items[i].name_len = name_lens[i];
		table_size += 2 + name_lens[i] + 2 + 8 * (size_t) t->ndim + 16;

		if (i > 0)
			data_size = align_up(data_size, CAI_FORMAT_ALIGN);
		offsets[i] = data_size;
		if (!cai_size_add(data_size, t->nbytes, &data_size) ||
			data_size > SIZE_MAX / 2)
		{
			rc = cai_error_set(err, CAI_ERR_LIMIT, "model would be too large to serialize");
			goto done;
		}
	}
	if (n_tensors > 1)
	{
		rc = check_duplicates(items, (size_t) n_tensors, CAI_ERR_INVALID, err);
		if (rc != CAI_OK)
			goto done;
	}

	/* header, metadata, table, padding to the alignment, data, trailer */
	table_offset = HEADER_SIZE + meta_len;	/* meta_len <= INT32_MAX */
	if (!cai_size_add(table_offset, table_size, &data_offset) ||
		data_offset > SIZE_MAX - CAI_FORMAT_ALIGN ||
		!cai_size_add(align_up(data_offset, CAI_FORMAT_ALIGN), data_size, &total) ||
		!cai_size_add(total, TRAILER_SIZE, &total))
	{
		rc = cai_error_set(err, CAI_ERR_LIMIT, "model would be too large to serialize");
		goto done;
	}
	data_offset = align_up(data_offset, CAI_FORMAT_ALIGN);

	buf = cai_malloc(total);
	if (buf == NULL)
	{
		rc = cai_error_set(err, CAI_ERR_NOMEM,
						   "out of memory serializing a model of %zu bytes", total);
		goto done;
	}
	memset(buf, 0, total);

	/* header */
	memcpy(buf + HDR_MAGIC, CAI_FORMAT_MAGIC, 8);
	wr_u32(buf + HDR_VERSION, CAI_FORMAT_VERSION);
	wr_u32(buf + HDR_FLAGS, 0);
	wr_u64(buf + HDR_TOTAL_SIZE, total);
	wr_u64(buf + HDR_META_OFFSET, HEADER_SIZE);
	wr_u64(buf + HDR_META_SIZE, meta_len);
	wr_u64(buf + HDR_TABLE_OFFSET, table_offset);
	wr_u64(buf + HDR_TABLE_SIZE, table_size);
	wr_u32(buf + HDR_N_TENSORS, (uint32_t) n_tensors);
	wr_u32(buf + HDR_ALIGNMENT, CAI_FORMAT_ALIGN);
	wr_u64(buf + HDR_DATA_OFFSET, data_offset);
	wr_u64(buf + HDR_DATA_SIZE, data_size);

	/* metadata, verbatim */
	memcpy(buf + HEADER_SIZE, meta_json, meta_len);

	/* table and data */
	p = buf + table_offset;
	for (int i = 0; i < n_tensors; i++)
	{
		const cai_tensor *t = &tensors[i];

		wr_u16(p, (uint16_t) name_lens[i]);
		p += 2;
		memcpy(p, t->name, name_lens[i]);
		p += name_lens[i];
		*p++ = (uint8_t) t->dtype;
		*p++ = (uint8_t) t->ndim;
		for (int d = 0; d < t->ndim; d++)
		{
			wr_u64(p, (uint64_t) t->shape[d]);
			p += 8;
		}
		wr_u64(p, offsets[i]);
		wr_u64(p + 8, t->nbytes);
		p += 16;
		memcpy(buf + data_offset + offsets[i], t->data, t->nbytes);
	}

	wr_u32(buf + total - TRAILER_SIZE, cai_crc32c(buf, total - TRAILER_SIZE));
	*out = buf;
	*out_len = total;
	rc = CAI_OK;

done:
	cai_free(name_lens);
	cai_free(offsets);
	cai_free(items);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Lookup                                                                 */
/* ---------------------------------------------------------------------- */

const cai_tensor *
cai_model_file_tensor(const cai_model_file *mf, const char *name)
{
	if (mf == NULL || name == NULL)
		return NULL;
	for (int i = 0; i < mf->n_tensors; i++)
	{
		if (strcmp(mf->tensors[i].name, name) == 0)
			return &mf->tensors[i];
	}
	return NULL;
}

/* "(3, 4)"; -1 entries print as "*" */
static void
format_shape(char *dst, size_t size, int ndim, const int64_t *shape)
{
	size_t		used = 0;

	used += (size_t) snprintf(dst + used, size - used, "(");
	for (int d = 0; d < ndim && used < size; d++)
	{
		if (shape[d] < 0)
			used += (size_t) snprintf(dst + used, size - used, "%s*", d > 0 ? ", " : "");
		else
			used += (size_t) snprintf(dst + used, size - used, "%s%" PRId64,
									  d > 0 ? ", " : "", shape[d]);
	}
	if (used < size)
		snprintf(dst + used, size - used, ")");
}

cai_status
cai_model_file_expect(const cai_model_file *mf, const char *name,
					  cai_dtype dtype, int ndim, const int64_t *shape,
					  const cai_tensor **out, cai_error *err)
{
	const cai_tensor *t = cai_model_file_tensor(mf, name);

	if (out != NULL)
		*out = NULL;
	if (name == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "tensor name is NULL");
	if (t == NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "model lacks tensor \"%s\"", name);
	if (t->dtype != dtype)
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" has dtype %s, expected %s",
							 name, dtype_name(t->dtype), dtype_name(dtype));
	if (t->ndim != ndim)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor \"%s\" has %d dimensions, expected %d",
							 name, t->ndim, ndim);
	if (shape != NULL)
	{
		for (int d = 0; d < ndim; d++)
		{
			if (shape[d] >= 0 && shape[d] != t->shape[d])
			{
				char		got[96];
				char		want[96];

				format_shape(got, sizeof(got), t->ndim, t->shape);
				format_shape(want, sizeof(want), ndim, shape);
				return cai_error_set(err, CAI_ERR_FORMAT,
									 "tensor \"%s\" has shape %s, expected %s",
									 name, got, want);
			}
		}
	}
	if (out != NULL)
		*out = t;
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Serialized lookup tables                                               */
/* ---------------------------------------------------------------------- */

uint32_t
cai_index_capacity(int64_t n)
{
	uint32_t	p = 16;

	while ((int64_t) p < 2 * n && p < (1U << 31))
		p <<= 1;
	return p;
}

uint64_t
cai_index_mix(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

/* String id's bytes, false when its offsets are out of range. */
static inline bool
strindex_get(const cai_strindex *ix, int32_t id, const char **s, size_t *len)
{
	int32_t		a = ix->off[id];
	int32_t		b = ix->off[id + 1];

	if (a < 0 || b <= a || (size_t) b > ix->nbytes)
		return false;
	*s = ix->bytes + a;
	*len = (size_t) (b - a - 1);
	return true;
}

int32_t
cai_strindex_find(const cai_strindex *ix, const char *s, size_t len)
{
	if (ix->slot == NULL || ix->n <= 0)
		return -1;
	return cai_strindex_find_hashed(ix, s, len, cai_hash_bytes(s, len, ix->seed));
}

int32_t
cai_strindex_find_hashed(const cai_strindex *ix, const char *s, size_t len, uint64_t hash)
{
	uint32_t	i;

	if (ix->slot == NULL || ix->n <= 0)
		return -1;
	i = (uint32_t) hash & ix->mask;
	for (uint32_t k = 0; k <= ix->mask; k++, i = (i + 1) & ix->mask)
	{
		int32_t		v = ix->slot[i];
		const char *w;
		size_t		wl;

		if (v <= 0)
			return -1;
		if (v > ix->n || !strindex_get(ix, v - 1, &w, &wl))
			continue;
		if (wl == len && memcmp(w, s, len) == 0)
			return v - 1;
	}
	return -1;
}

int32_t
cai_intindex_find(const cai_intindex *ix, int32_t key)
{
	uint32_t	i;

	if (ix->slot == NULL || ix->n <= 0)
		return -1;
	i = (uint32_t) cai_index_mix((uint32_t) key) & ix->mask;
	for (uint32_t k = 0; k <= ix->mask; k++, i = (i + 1) & ix->mask)
	{
		int32_t		v = ix->slot[i];

		if (v <= 0)
			return -1;
		if (v <= ix->n && ix->keys[v - 1] == key)
			return v - 1;
	}
	return -1;
}

cai_status
cai_strindex_build(const cai_strindex *ix, int32_t *slot, const char *what, cai_error *err)
{
	uint32_t	cap = cai_index_capacity(ix->n);
	cai_strindex tmp = *ix;

	memset(slot, 0, sizeof(int32_t) * cap);
	tmp.slot = slot;
	tmp.mask = cap - 1;
	for (int32_t id = 0; id < ix->n; id++)
	{
		const char *w;
		size_t		wl;
		uint32_t	i;

		if (!strindex_get(ix, id, &w, &wl))
			return cai_error_set(err, CAI_ERR_FORMAT, "%s entry %d is out of range", what, (int) id);
		if (cai_strindex_find(&tmp, w, wl) >= 0)
			return cai_error_set(err, CAI_ERR_FORMAT, "%s word %d is a duplicate", what, (int) id);
		for (i = (uint32_t) cai_hash_bytes(w, wl, ix->seed) & tmp.mask; slot[i] != 0; i = (i + 1) & tmp.mask)
			;
		slot[i] = id + 1;
	}
	return CAI_OK;
}

cai_status
cai_intindex_build(const cai_intindex *ix, int32_t *slot, const char *what, cai_error *err)
{
	uint32_t	cap = cai_index_capacity(ix->n);
	cai_intindex tmp = *ix;

	memset(slot, 0, sizeof(int32_t) * cap);
	tmp.slot = slot;
	tmp.mask = cap - 1;
	for (int32_t id = 0; id < ix->n; id++)
	{
		uint32_t	i;

		if (cai_intindex_find(&tmp, ix->keys[id]) >= 0)
			return cai_error_set(err, CAI_ERR_FORMAT, "%s key %d is a duplicate", what, (int) id);
		for (i = (uint32_t) cai_index_mix((uint32_t) ix->keys[id]) & tmp.mask; slot[i] != 0;
			 i = (i + 1) & tmp.mask)
			;
		slot[i] = id + 1;
	}
	return CAI_OK;
}

/* Slots in range, exactly n filled; the caller checked mask + 1 == cai_index_capacity(n). */
static cai_status
index_check_slots(const int32_t *slot, uint32_t mask, int32_t n, const char *what, cai_error *err)
{
	int64_t		filled = 0;

	for (uint32_t i = 0; i <= mask; i++)
	{
		if (slot[i] < 0 || slot[i] > n)
			return cai_error_set(err, CAI_ERR_FORMAT, "%s slot %u holds %d (must be 0 to %d)",
								 what, i, (int) slot[i], (int) n);
		filled += slot[i] != 0;
	}
	if (filled != n)
		return cai_error_set(err, CAI_ERR_FORMAT, "%s has %" PRId64 " filled slots for %d entries",
							 what, filled, (int) n);
	return CAI_OK;
}

cai_status
cai_strindex_check(const cai_strindex *ix, const char *what, cai_error *err)
{
	cai_status	st;

	if ((int64_t) ix->mask + 1 != cai_index_capacity(ix->n))
		return cai_error_set(err, CAI_ERR_FORMAT, "%s has %u slots for %d entries",
							 what, ix->mask + 1, (int) ix->n);
	if ((st = index_check_slots(ix->slot, ix->mask, ix->n, what, err)) != CAI_OK)
		return st;
	for (int32_t id = 0; id < ix->n; id++)
	{
		const char *w;
		size_t		wl;

		if (!strindex_get(ix, id, &w, &wl))
			return cai_error_set(err, CAI_ERR_FORMAT, "%s entry %d is out of range", what, (int) id);
		if (cai_strindex_find(ix, w, wl) != id)
			return cai_error_set(err, CAI_ERR_FORMAT, "%s word %d is a duplicate or not in its slot",
								 what, (int) id);
	}
	return CAI_OK;
}

cai_status
cai_intindex_check(const cai_intindex *ix, const char *what, cai_error *err)
{
	cai_status	st;

	if ((int64_t) ix->mask + 1 != cai_index_capacity(ix->n))
		return cai_error_set(err, CAI_ERR_FORMAT, "%s has %u slots for %d entries",
							 what, ix->mask + 1, (int) ix->n);
	if ((st = index_check_slots(ix->slot, ix->mask, ix->n, what, err)) != CAI_OK)
		return st;
	for (int32_t id = 0; id < ix->n; id++)
	{
		if (cai_intindex_find(ix, ix->keys[id]) != id)
			return cai_error_set(err, CAI_ERR_FORMAT, "%s key %d is a duplicate or not in its slot",
								 what, (int) id);
	}
	return CAI_OK;
}
