/*
 * test_format.c: the model format reader and writer.
 *
 * Round trips bit for bit, rejects every crafted corruption in
 * format_craft.h with the right status and message, every truncation and
 * every single-byte flip of a small model, writer misuse, allocation
 * failures, and round-trips a 20 MB model.  cai_format_read_view gives the
 * same tensors in place and the same verdict on every input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cai/format.h"
#include "check.h"
#include "format_craft.h"

static double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Bit-at-a-time CRC-32C, the reference for cai_crc32c. */
static uint32_t
crc32c_ref(const uint8_t *p, size_t n)
{
	uint32_t	c = 0xffffffffu;

	for (size_t i = 0; i < n; i++)
	{
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
	}
	return c ^ 0xffffffffu;
}

static void
test_crc(void)
{
	uint8_t		buf[4096 + 8];
	cai_rng		rng;
	int			bad = 0;

	CHECK(cai_crc32c("123456789", 9) == 0xe3069283u, "check value 0x%08x", cai_crc32c("123456789", 9));
	CHECK(cai_crc32c("", 0) == 0, "empty crc");
	cai_rng_seed(&rng, 1);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t) cai_rng_u64(&rng);
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n < 200; n++)
			bad += cai_crc32c(buf + off, n) != crc32c_ref(buf + off, n);
	bad += cai_crc32c(buf, 4096) != crc32c_ref(buf, 4096);
	CHECK(bad == 0, "%d crc mismatches against the bitwise reference", bad);

	/*
	 * Long inputs are summed in blocks of three 8 KB stripes whose registers
	 * are combined (format.c): lengths around one, two and three blocks, at
	 * every alignment, and a corrupted byte in each stripe.
	 */
	{
		const size_t block = 3 * 8192;
		const size_t cap = 3 * block + 64;
		uint8_t    *big = malloc(cap);
		const size_t lens[] = {block - 1, block, block + 1, block + 7, 2 * block - 8, 2 * block,
		2 * block + 13, 3 * block + 40};
		int			big_bad = 0,
					missed = 0,
					runs = 0;

		for (size_t i = 0; i < cap; i++)
			big[i] = (uint8_t) cai_rng_u64(&rng);
		for (size_t off = 0; off < 8; off++)
			for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
			{
				big_bad += cai_crc32c(big + off, lens[k]) != crc32c_ref(big + off, lens[k]);
				runs++;
			}
		for (size_t at = 5; at < 2 * block; at += 8192)
		{
			uint32_t	before = cai_crc32c(big, 2 * block);

			big[at] ^= 0x10;
			missed += cai_crc32c(big, 2 * block) == before;
			big_bad += cai_crc32c(big, 2 * block) != crc32c_ref(big, 2 * block);
			big[at] ^= 0x10;
		}
		CHECK(big_bad == 0, "%d of %d long-input crcs differ from the bitwise reference", big_bad, runs + 6);
		CHECK(missed == 0, "a flipped bit in each of 6 stripes changes the crc (%d missed)", missed);
		free(big);
	}
}

/* MD5 (common.c) against RFC 1321's test suite and md5sum on lengths around the padding edges */
static void
test_md5(void)
{
	static const char *const rfc[][2] = {
		{"", "d41d8cd98f00b204e9800998ecf8427e"},
		{"a", "0cc175b9c0f1b6a831c399e269772661"},
		{"abc", "900150983cd24fb0d6963f7d28e17f72"},
		{"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
		{"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
		{"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
		"57edf4a22be3c955ac49da2e2107b67a"},
	};
	char		hex[33];
	int			bad = 0;

	for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++)
	{
		cai_md5_hex(rfc[i][0], strlen(rfc[i][0]), hex);
		bad += strcmp(hex, rfc[i][1]) != 0;
	}
	CHECK(bad == 0, "%d of 7 RFC 1321 digests differ", bad);
	/* 55, 56 and 64 bytes of "a" (one or two padding blocks), as md5sum gives them */
	{
		char		a[65];

		memset(a, 'a', sizeof(a));
		cai_md5_hex(a, 55, hex);
		CHECK(strcmp(hex, "ef1772b6dff9a122358552954ad0df65") == 0, "55 bytes: %s", hex);
		cai_md5_hex(a, 56, hex);
		CHECK(strcmp(hex, "3b0c8ac703f828b04c6c197006d17218") == 0, "56 bytes: %s", hex);
		cai_md5_hex(a, 64, hex);
		CHECK(strcmp(hex, "014842d480b571495a4a0363793f7367") == 0, "64 bytes: %s", hex);
	}
}

static void
test_dtype(void)
{
	CHECK(cai_dtype_size(CAI_F32) == 4, "f32");
	CHECK(cai_dtype_size(CAI_I32) == 4, "i32");
	CHECK(cai_dtype_size(CAI_U8) == 1, "u8");
	CHECK(cai_dtype_size((cai_dtype) 7) == 0, "unknown");
}

/* Write mf back out; compare to want[0..n) byte for byte. */
static int
rewrite_equals(const cai_model_file *mf, const uint8_t *want, size_t n)
{
	uint8_t    *again;
	size_t		alen;
	cai_error	err;
	int			same;

	if (cai_format_write(mf->meta_json, mf->tensors, mf->n_tensors, &again, &alen, &err) != CAI_OK)
	{
		fprintf(stderr, "  rewrite failed: %s\n", err.msg);
		return 0;
	}
	same = alen == n && memcmp(again, want, n) == 0;
	cai_free(again);
	return same;
}

static void
test_round_trip(void)
{
	uint8_t    *b;
	size_t		n;
	cai_model_file *mf = NULL;
	cai_error	err;
	const float want_w[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -0.0f, 7.75f};
	const int32_t want_ids[4] = {1, -2, 300000, 4};
	const uint8_t want_mask[5] = {1, 0, 1, 1, 255};
	size_t		data_off;
	size_t		table_end;
	int			nonzero = 0;

	CHECK(craft_valid(&b, &n) == 0, "craft_valid");
	CHECK(cai_format_verify(b, n, &err) == CAI_OK, "verify: %s", err.msg);
	CHECK(cai_format_read(b, n, &mf, &err) == CAI_OK, "read: %s", err.msg);
	if (mf == NULL)
	{
		free(b);
		return;
	}
	CHECK(mf->meta_len == strlen(craft_meta) && strcmp(mf->meta_json, craft_meta) == 0,
		  "metadata %s", mf->meta_json);
	CHECK(mf->n_tensors == 4, "n_tensors %d", mf->n_tensors);
	CHECK(strcmp(mf->tensors[0].name, "w") == 0 && mf->tensors[0].ndim == 2 &&
		  mf->tensors[0].shape[0] == 2 && mf->tensors[0].shape[1] == 3 &&
		  mf->tensors[0].dtype == CAI_F32 && mf->tensors[0].nbytes == 24, "tensor w");
	CHECK(memcmp(mf->tensors[0].data, want_w, sizeof(want_w)) == 0, "w data bit for bit");
	CHECK(strcmp(mf->tensors[2].name, "ids") == 0 && mf->tensors[2].dtype == CAI_I32 &&
		  memcmp(mf->tensors[2].data, want_ids, sizeof(want_ids)) == 0, "ids data");
	CHECK(strcmp(mf->tensors[3].name, "mask") == 0 && mf->tensors[3].dtype == CAI_U8 &&
		  memcmp(mf->tensors[3].data, want_mask, sizeof(want_mask)) == 0, "mask data");
	for (int i = 0; i < mf->n_tensors; i++)
		CHECK(((uintptr_t) mf->tensors[i].data % CAI_FORMAT_ALIGN) == 0, "tensor %d aligned", i);
	CHECK(((const float *) mf->tensors[1].data)[2] == -0.3f, "float data usable directly");
	CHECK(rewrite_equals(mf, b, n), "write(read(x)) == x");
	CHECK(cai_model_file_tensor(mf, "ids") == &mf->tensors[2], "lookup ids");
	CHECK(cai_model_file_tensor(mf, "nope") == NULL, "lookup absent");
	CHECK(cai_model_file_tensor(mf, "id") == NULL, "lookup prefix");

	/* layout: aligned sections, zero padding, offsets aligned */
	data_off = (size_t) craft_get(b + CR_DATA_OFFSET, 8);
	table_end = (size_t) (craft_get(b + CR_TABLE_OFFSET, 8) + craft_get(b + CR_TABLE_SIZE, 8));
	CHECK(data_off % CAI_FORMAT_ALIGN == 0, "data offset %zu aligned", data_off);
	CHECK(craft_get(b + CR_ALIGNMENT, 4) == CAI_FORMAT_ALIGN, "alignment field");
	CHECK(craft_get(b + CR_META_OFFSET, 8) == CR_HEADER_SIZE, "meta right after header");
	for (size_t i = table_end; i < data_off; i++)
		nonzero += b[i] != 0;
	for (int i = 0; i < 4; i++)
	{
		uint64_t	off = craft_get(b + craft_entry_field(b, i, CR_E_OFFSET, 0), 8);

		CHECK(off % CAI_FORMAT_ALIGN == 0, "tensor %d offset %llu aligned", i, (unsigned long long) off);
		if (i < 3)
		{
			uint64_t	next = craft_get(b + craft_entry_field(b, i + 1, CR_E_OFFSET, 0), 8);
			uint64_t	end = off + craft_get(b + craft_entry_field(b, i, CR_E_NBYTES, 0), 8);

			for (uint64_t k = end; k < next; k++)
				nonzero += b[data_off + k] != 0;
		}
	}
	CHECK(nonzero == 0, "%d non-zero padding bytes", nonzero);
	CHECK(data_off + craft_get(b + CR_DATA_SIZE, 8) + 4 == n, "trailer follows data");

	cai_model_file_free(mf);
	free(b);
}

/* A model with a gap before the data section is accepted and rewritten canonically. */
static void
test_lenient_gap(void)
{
	uint8_t    *b;
	uint8_t    *g;
	size_t		n;
	size_t		data_off;
	cai_model_file *mf = NULL;
	cai_error	err;

	CHECK(craft_valid(&b, &n) == 0, "craft_valid");
	data_off = (size_t) craft_get(b + CR_DATA_OFFSET, 8);
	g = calloc(1, n + 64);
	memcpy(g, b, data_off);
	memcpy(g + data_off + 64, b + data_off, n - data_off);
	craft_put(g + CR_DATA_OFFSET, 8, data_off + 64);
	craft_put(g + CR_TOTAL_SIZE, 8, n + 64);
	craft_fix_crc(g, n + 64);
	CHECK(cai_format_read(g, n + 64, &mf, &err) == CAI_OK, "gap model: %s", err.msg);
	if (mf != NULL)
		CHECK(rewrite_equals(mf, b, n), "gap model rewrites canonically");
	cai_model_file_free(mf);
	free(g);
	free(b);
}

static void
test_cases(void)
{
	for (int k = 0; k < CRAFT_N_CASES; k++)
	{
		const craft_case *c = &craft_cases[k];
		uint8_t    *b = NULL;
		size_t		n = 0;
		cai_model_file *mf = NULL;
		cai_error	err = {0};
		cai_error	verr = {0};
		cai_status	st;
		cai_status	vst;

		if (craft_build(c->name, &b, &n) != 0)
		{
			CHECK(0, "cannot build case %s", c->name);
			continue;
		}
		st = cai_format_read(b, n, &mf, &err);
		vst = cai_format_verify(b, n, &verr);
		CHECK(st == c->want, "case %s: got %s (%s), want %s", c->name,
			  cai_status_name(st), st == CAI_OK ? "" : err.msg, cai_status_name(c->want));
		CHECK(vst == st && (st == CAI_OK || strcmp(verr.msg, err.msg) == 0),
			  "case %s: verify says %s (%s)", c->name, cai_status_name(vst), verr.msg);
		if (st != CAI_OK)
		{
			CHECK(strstr(err.msg, c->msg) != NULL, "case %s: message \"%s\" lacks \"%s\"",
				  c->name, err.msg, c->msg);
			CHECK(mf == NULL, "case %s: no model on failure", c->name);
		}
		cai_model_file_free(mf);
		free(b);
	}
	/* NULL buffer, NULL output */
	{
		cai_error	err;
		cai_model_file *mf = NULL;

		CHECK(cai_format_read(NULL, 10, &mf, &err) == CAI_ERR_INVALID, "NULL buffer");
		CHECK(cai_format_read(NULL, 0, &mf, &err) == CAI_ERR_FORMAT, "NULL empty buffer");
		CHECK(cai_format_read((const uint8_t *) "x", 1, NULL, &err) == CAI_ERR_INVALID, "NULL out");
		CHECK(cai_format_verify((const uint8_t *) "CAIMODEL", 8, NULL) == CAI_ERR_FORMAT, "NULL err ok");
	}
}

static void
test_truncations(void)
{
	uint8_t    *b;
	size_t		n;
	int			wrong = 0;

	CHECK(craft_valid(&b, &n) == 0, "craft_valid");
	for (size_t len = 0; len < n; len++)
	{
		uint8_t    *p = malloc(len + 1);	/* exact size: ASan sees any overread */
		cai_model_file *mf = NULL;
		cai_error	err;
		cai_status	st;

		memcpy(p, b, len);
		st = cai_format_read(len == 0 ? NULL : p, len, &mf, &err);
		if (st != CAI_ERR_FORMAT || mf != NULL ||
			(strstr(err.msg, "truncated") == NULL && strstr(err.msg, "empty") == NULL))
		{
			if (wrong++ < 3)
				fprintf(stderr, "  prefix %zu: %s: %s\n", len, cai_status_name(st), err.msg);
		}
		cai_model_file_free(mf);
		free(p);
	}
	CHECK(wrong == 0, "%d of %zu prefixes not rejected as truncated", wrong, n);
	free(b);
}

static void
test_flips(void)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff, 0x5a};
	uint8_t    *b;
	size_t		n;
	int			accepted = 0;
	int			not_crc = 0;
	int			structural_accepted = 0;
	int			rewrite_bad = 0;

	CHECK(craft_valid(&b, &n) == 0, "craft_valid");

	/* plain flips: never accepted; past the header always the checksum */
	for (size_t i = 0; i < n; i++)
	{
		for (size_t m = 0; m < sizeof(masks); m++)
		{
			cai_model_file *mf = NULL;
			cai_error	err;
			cai_status	st;

			b[i] ^= masks[m];
			st = cai_format_read(b, n, &mf, &err);
			b[i] ^= masks[m];
			if (st == CAI_OK)
				accepted++;
			if (i >= CR_HEADER_SIZE && st != CAI_ERR_CHECKSUM)
				not_crc++;
			cai_model_file_free(mf);
		}
	}
	CHECK(accepted == 0, "%d single-byte flips accepted", accepted);
	CHECK(not_crc == 0, "%d flips past the header not reported as checksum errors", not_crc);

	/*
	 * Flips with the checksum recomputed reach the structural checks.  Some
	 * (in tensor data or padding) are legitimately accepted; those must
	 * round-trip through the writer.
	 */
	for (size_t i = 0; i + 4 < n; i++)
	{
		for (size_t m = 0; m < sizeof(masks); m++)
		{
			uint8_t    *c = malloc(n);
			cai_model_file *mf = NULL;
			cai_error	err;

			memcpy(c, b, n);
			c[i] ^= masks[m];
			craft_fix_crc(c, n);
			if (cai_format_read(c, n, &mf, &err) == CAI_OK)
			{
				uint8_t    *w;
				size_t		wl;
				cai_model_file *mf2 = NULL;

				structural_accepted++;
				if (cai_format_write(mf->meta_json, mf->tensors, mf->n_tensors, &w, &wl, &err) != CAI_OK)
					rewrite_bad++;
				else
				{
					if (cai_format_read(w, wl, &mf2, &err) != CAI_OK || !rewrite_equals(mf2, w, wl))
						rewrite_bad++;
					cai_model_file_free(mf2);
					cai_free(w);
				}
			}
			cai_model_file_free(mf);
			free(c);
		}
	}
	CHECK(rewrite_bad == 0, "%d accepted mutants do not round-trip", rewrite_bad);
	CHECK(structural_accepted > 0 && structural_accepted < (int) (n * sizeof(masks)),
		  "structural mutants accepted: %d", structural_accepted);
	free(b);
}

/* ---- writer ---- */

static cai_tensor
mk(const char *name, cai_dtype dt, int ndim, int64_t d0, int64_t d1, void *data)
{
	cai_tensor	t;

	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.dtype = dt;
	t.ndim = ndim;
	t.shape[0] = d0;
	t.shape[1] = d1;
	t.shape[2] = 1;
	t.shape[3] = 1;
	t.data = data;
	t.nbytes = (size_t) (d0 * (ndim > 1 ? d1 : 1)) * cai_dtype_size(dt);
	return t;
}

static void
expect_write_fail(const char *what, const char *meta, const cai_tensor *t, int n,
				  const char *msg)
{
	uint8_t    *out = (uint8_t *) 1;
	size_t		len = 1;
	cai_error	err = {0};
	cai_status	st = cai_format_write(meta, t, n, &out, &len, &err);

	CHECK(st == CAI_ERR_INVALID, "writer %s: got %s (%s)", what, cai_status_name(st), err.msg);
	CHECK(strstr(err.msg, msg) != NULL, "writer %s: message \"%s\" lacks \"%s\"", what, err.msg, msg);
	CHECK(out == NULL && len == 0, "writer %s: outputs cleared", what);
	if (st == CAI_OK)
		cai_free(out);
}

static void
test_writer_rejects(void)
{
	float		data[64] = {0};
	cai_tensor	t[3];
	cai_tensor	one;
	uint8_t    *out;
	size_t		len;
	cai_error	err;

	/* metadata: reuse the reader's metadata cases */
	for (int k = 0; k < CRAFT_N_CASES; k++)
	{
		size_t		mlen;
		const char *m = craft_meta_for(craft_cases[k].name, &mlen);

		if (m == NULL || craft_is(craft_cases[k].name, "meta_nul"))
			continue;
		t[0] = mk("w", CAI_F32, 1, 4, 0, data);
		expect_write_fail(craft_cases[k].name, m, t, 1, craft_cases[k].msg);
	}
	expect_write_fail("NULL metadata", NULL, NULL, 0, "metadata is missing");

	t[0] = mk("w", CAI_F32, 1, 4, 0, data);
	expect_write_fail("negative count", craft_meta, t, -1, "cannot write -1 tensors");
	expect_write_fail("too many", craft_meta, t, CAI_MAX_TENSORS + 1, "cannot write 4097 tensors");
	expect_write_fail("NULL tensors", craft_meta, NULL, 2, "tensor array is NULL");

	one = mk("", CAI_F32, 1, 4, 0, data);
	expect_write_fail("empty name", craft_meta, &one, 1, "tensor 0 has an empty name");
	one = mk("w", CAI_F32, 1, 4, 0, data);
	memset(one.name, 'a', sizeof(one.name));	/* no NUL at all */
	expect_write_fail("long name", craft_meta, &one, 1, "tensor 0 name is too long (64 bytes, limit 63)");
	one = mk("a\tb", CAI_F32, 1, 4, 0, data);
	expect_write_fail("control char", craft_meta, &one, 1, "contains a control character (byte 1)");
	one = mk("caf\xc3", CAI_F32, 1, 4, 0, data);
	expect_write_fail("bad utf8", craft_meta, &one, 1, "tensor 0 name is not valid UTF-8");
	one = mk("w", CAI_F32, 1, 4, 0, data);
	one.dtype = (cai_dtype) 7;
	expect_write_fail("dtype", craft_meta, &one, 1, "tensor \"w\" has unknown dtype 7");
	one = mk("w", CAI_F32, 1, 4, 0, data);
	one.ndim = 0;
	expect_write_fail("ndim 0", craft_meta, &one, 1, "has 0 dimensions (must be 1 to 4)");
	one.ndim = 5;
	expect_write_fail("ndim 5", craft_meta, &one, 1, "has 5 dimensions");
	one = mk("w", CAI_F32, 2, 4, 0, data);
	expect_write_fail("dim 0", craft_meta, &one, 1, "tensor \"w\" dimension 1 is 0 (must be at least 1)");
	one = mk("w", CAI_F32, 1, -3, 0, data);
	expect_write_fail("dim -3", craft_meta, &one, 1, "dimension 0 is -3");
	one = mk("w", CAI_F32, 2, 1, 1, data);
	one.shape[0] = one.shape[1] = INT64_C(1) << 40;
	expect_write_fail("shape overflow", craft_meta, &one, 1, "tensor \"w\" shape product overflows");
	one.shape[0] = INT64_C(1) << 62;
	one.shape[1] = 2;
	expect_write_fail("bytes overflow", craft_meta, &one, 1, "tensor \"w\" byte size overflows");
	one = mk("w", CAI_F32, 1, 4, 0, data);
	one.nbytes = 15;
	expect_write_fail("nbytes", craft_meta, &one, 1, "tensor \"w\" has nbytes 15 but its shape and dtype need 16");
	one = mk("w", CAI_F32, 1, 4, 0, NULL);
	expect_write_fail("no data", craft_meta, &one, 1, "tensor \"w\" has no data");
	t[0] = mk("a", CAI_F32, 1, 4, 0, data);
	t[1] = mk("b", CAI_U8, 1, 3, 0, data);
	t[2] = mk("a", CAI_I32, 1, 2, 0, data);
	expect_write_fail("duplicates", craft_meta, t, 3, "duplicate tensor name \"a\"");

	CHECK(cai_format_write(craft_meta, t, 1, NULL, &len, &err) == CAI_ERR_INVALID, "NULL out");
	CHECK(cai_format_write(craft_meta, t, 1, &out, NULL, &err) == CAI_ERR_INVALID, "NULL out_len");
}

static void
test_writer_edge(void)
{
	uint8_t    *out = NULL;
	size_t		len = 0;
	cai_error	err;
	cai_model_file *mf = NULL;
	float		x[3] = {1, 2, 3};
	cai_tensor	t[2];

	/* no tensors at all */
	CHECK(cai_format_write(craft_meta, NULL, 0, &out, &len, &err) == CAI_OK, "zero tensors: %s", err.msg);
	CHECK(cai_format_read(out, len, &mf, &err) == CAI_OK, "read zero tensors: %s", err.msg);
	if (mf != NULL)
		CHECK(mf->n_tensors == 0 && mf->tensors == NULL, "no tensors");
	cai_model_file_free(mf);
	mf = NULL;
	cai_free(out);

	/* 4-d tensor, UTF-8 name of 63 bytes, metadata with unicode and extra keys */
	t[0] = mk("\xc3\xa9mbed", CAI_F32, 1, 3, 0, x);
	t[0].ndim = 4;
	t[0].shape[0] = 1;
	t[0].shape[1] = 3;
	t[0].shape[2] = 1;
	t[0].shape[3] = 1;
	t[1] = mk("n", CAI_F32, 1, 3, 0, x);
	memset(t[1].name, 'n', CAI_NAME_MAX - 1);
	t[1].name[CAI_NAME_MAX - 1] = '\0';
	CHECK(cai_format_write("{\"task\":\"ner\",\"architecture\":\"bilstm_crf\",\"labels\":[\"O\",\"B-\\u00e9\"],"
						   "\"cai_version\":\"0.1.0\",\"extra\":{\"x\":[1,2.5,null,true]}}",
						   t, 2, &out, &len, &err) == CAI_OK, "edge write: %s", err.msg);
	CHECK(cai_format_read(out, len, &mf, &err) == CAI_OK, "edge read: %s", err.msg);
	if (mf != NULL)
	{
		const int64_t want[4] = {1, 3, 1, 1};
		const int64_t any[4] = {-1, 3, -1, -1};
		const int64_t wrong[4] = {1, 4, 1, 1};
		const cai_tensor *got = NULL;

		CHECK(mf->tensors[0].ndim == 4 && mf->tensors[0].shape[3] == 1, "4-d shape");
		CHECK(strlen(mf->tensors[1].name) == CAI_NAME_MAX - 1, "63-byte name");
		CHECK(rewrite_equals(mf, out, len), "edge rewrite");

		/* cai_model_file_expect */
		CHECK(cai_model_file_expect(mf, "\xc3\xa9mbed", CAI_F32, 4, want, &got, &err) == CAI_OK &&
			  got == &mf->tensors[0], "expect exact: %s", err.msg);
		CHECK(cai_model_file_expect(mf, "\xc3\xa9mbed", CAI_F32, 4, any, NULL, &err) == CAI_OK, "expect wildcard");
		CHECK(cai_model_file_expect(mf, "\xc3\xa9mbed", CAI_F32, 4, NULL, NULL, &err) == CAI_OK, "expect any shape");
		CHECK(cai_model_file_expect(mf, "absent", CAI_F32, 1, NULL, &got, &err) == CAI_ERR_FORMAT &&
			  got == NULL && strcmp(err.msg, "model lacks tensor \"absent\"") == 0, "expect absent: %s", err.msg);
		CHECK(cai_model_file_expect(mf, "\xc3\xa9mbed", CAI_I32, 4, NULL, NULL, &err) == CAI_ERR_FORMAT &&
			  strstr(err.msg, "has dtype f32, expected i32") != NULL, "expect dtype: %s", err.msg);
		CHECK(cai_model_file_expect(mf, "\xc3\xa9mbed", CAI_F32, 2, NULL, NULL, &err) == CAI_ERR_FORMAT &&
			  strstr(err.msg, "has 4 dimensions, expected 2") != NULL, "expect ndim: %s", err.msg);
		CHECK(cai_model_file_expect(mf, "\xc3\xa9mbed", CAI_F32, 4, wrong, NULL, &err) == CAI_ERR_FORMAT &&
			  strstr(err.msg, "has shape (1, 3, 1, 1), expected (1, 4, 1, 1)") != NULL, "expect shape: %s", err.msg);
		CHECK(cai_model_file_expect(mf, NULL, CAI_F32, 1, NULL, NULL, &err) == CAI_ERR_INVALID, "expect NULL name");
	}
	cai_model_file_free(mf);
	cai_free(out);
	cai_model_file_free(NULL);
}

/* ---- allocation failures ---- */

static int	alloc_budget;

static void *
failing_alloc(void *ctx, size_t size)
{
	(void) ctx;
	if (alloc_budget-- <= 0)
		return NULL;
	return malloc(size);
}

static void
plain_free(void *ctx, void *p)
{
	(void) ctx;
	free(p);
}

static void
test_alloc_failures(void)
{
	cai_allocator a = {failing_alloc, plain_free, NULL};
	uint8_t    *b;
	size_t		n;
	int			bad = 0;
	int			read_ok_at = -1;
	int			write_ok_at = -1;

	CHECK(craft_valid(&b, &n) == 0, "craft_valid");
	cai_set_allocator(&a);
	for (int k = 0; k < 20; k++)
	{
		cai_model_file *mf = NULL;
		uint8_t    *out = NULL;
		size_t		len;
		cai_error	err;
		cai_status	st;

		alloc_budget = k;
		st = cai_format_read(b, n, &mf, &err);
		if (st == CAI_OK && read_ok_at < 0)
			read_ok_at = k;
		if (!(st == CAI_OK || (st == CAI_ERR_NOMEM && mf == NULL)))
			bad++;
		alloc_budget = k;
		if (mf != NULL)
		{
			st = cai_format_write(mf->meta_json, mf->tensors, mf->n_tensors, &out, &len, &err);
			if (st == CAI_OK && write_ok_at < 0)
				write_ok_at = k;
			if (!(st == CAI_OK || (st == CAI_ERR_NOMEM && out == NULL)))
				bad++;
		}
		alloc_budget = 1000;
		cai_free(out);
		cai_model_file_free(mf);
	}
	cai_set_allocator(NULL);
	CHECK(bad == 0, "%d allocation failures mishandled", bad);
	CHECK(read_ok_at > 0 && write_ok_at > 0, "read ok with %d allocations, write with %d",
		  read_ok_at, write_ok_at);
	free(b);
}

/* ---- views (cai_format_read_view) ---- */

/* An aligned private copy of b (aligned_alloc needs a multiple of the alignment). */
static uint8_t *
aligned_copy(const uint8_t *b, size_t n)
{
	uint8_t    *p = aligned_alloc(CAI_FORMAT_ALIGN, (n + CAI_FORMAT_ALIGN) & ~(size_t) (CAI_FORMAT_ALIGN - 1));

	if (p != NULL && n > 0)
		memcpy(p, b, n);
	return p;
}

/* Same status and message from read and from a view (checksum verified). */
static bool
same_verdict(const uint8_t *b, size_t n, const char *what)
{
	uint8_t    *p = aligned_copy(b, n);
	cai_model_file *mf = NULL;
	cai_model_file *mv = NULL;
	cai_error	e1 = {0};
	cai_error	e2 = {0};
	cai_status	s1;
	cai_status	s2;
	bool		ok;

	s1 = cai_format_read(b, n, &mf, &e1);
	s2 = cai_format_read_view(n == 0 ? NULL : p, n, true, &mv, &e2);
	ok = s1 == s2 && (s1 == CAI_OK || (strcmp(e1.msg, e2.msg) == 0 && mv == NULL));
	if (!ok)
		fprintf(stderr, "  %s: read %s (%s), view %s (%s)\n", what,
				cai_status_name(s1), e1.msg, cai_status_name(s2), e2.msg);
	cai_model_file_free(mf);
	cai_model_file_free(mv);
	free(p);
	return ok;
}

static void
test_view(void)
{
	uint8_t    *b;
	uint8_t    *p;
	size_t		n;
	cai_model_file *mf = NULL;
	cai_model_file *mv = NULL;
	cai_error	err;
	int			differ = 0;
	int			outside = 0;

	CHECK(craft_valid(&b, &n) == 0, "craft_valid");
	p = aligned_copy(b, n);

	/* round trip: the tensors are the buffer's bytes, in place */
	CHECK(cai_format_read(b, n, &mf, &err) == CAI_OK, "read: %s", err.msg);
	CHECK(cai_format_read_view(p, n, true, &mv, &err) == CAI_OK, "view: %s", err.msg);
	if (mf != NULL && mv != NULL)
	{
		CHECK(mv->borrowed && !mv->trusted && !mf->borrowed && !mf->trusted, "view flags");
		CHECK(mv->slab == NULL, "a view of an aligned file copies nothing");
		CHECK(strcmp(mv->meta_json, mf->meta_json) == 0 && mv->n_tensors == mf->n_tensors, "view metadata");
		for (int i = 0; i < mv->n_tensors; i++)
		{
			const cai_tensor *a = &mf->tensors[i];
			const cai_tensor *v = &mv->tensors[i];
			uint64_t	off = craft_get(b + CR_DATA_OFFSET, 8) +
				craft_get(b + craft_entry_field(b, i, CR_E_OFFSET, 0), 8);

			CHECK(strcmp(a->name, v->name) == 0 && a->dtype == v->dtype && a->ndim == v->ndim &&
				  memcmp(a->shape, v->shape, sizeof(a->shape)) == 0 && a->nbytes == v->nbytes,
				  "view tensor %d header", i);
			CHECK((const uint8_t *) v->data == p + off, "view tensor %d points into the buffer", i);
			CHECK(memcmp(a->data, v->data, a->nbytes) == 0, "view tensor %d bytes", i);
			CHECK(((uintptr_t) v->data % CAI_FORMAT_ALIGN) == 0, "view tensor %d aligned", i);
		}
		CHECK(rewrite_equals(mv, b, n), "write(view(x)) == x");
	}
	cai_model_file_free(mv);
	mv = NULL;
	CHECK(memcmp(p, b, n) == 0, "freeing a view leaves the buffer alone");

	/* without the checksum: trusted, and a bad checksum passes */
	p[n - 1] ^= 0x55;
	CHECK(cai_format_read_view(p, n, true, &mv, &err) == CAI_ERR_CHECKSUM && mv == NULL,
		  "view rejects a bad checksum when verifying");
	CHECK(cai_format_read_view(p, n, false, &mv, &err) == CAI_OK, "unverified view: %s", err.msg);
	CHECK(mv != NULL && mv->trusted && mv->borrowed, "unverified view is trusted");
	cai_model_file_free(mv);
	mv = NULL;
	p[n - 1] ^= 0x55;

	/* a misaligned buffer is refused */
	{
		uint8_t    *q = aligned_alloc(CAI_FORMAT_ALIGN, (n + 64 + CAI_FORMAT_ALIGN - 1) & ~(size_t) (CAI_FORMAT_ALIGN - 1));

		memcpy(q + 4, b, n);
		CHECK(cai_format_read_view(q + 4, n, true, &mv, &err) == CAI_ERR_INVALID && mv == NULL,
			  "misaligned buffer refused");
		CHECK(strstr(err.msg, "aligned") != NULL, "message: %s", err.msg);
		free(q);
	}
	CHECK(cai_format_read_view(p, n, true, NULL, &err) == CAI_ERR_INVALID, "view NULL out");
	CHECK(cai_format_read_view(NULL, 10, true, &mv, &err) == CAI_ERR_INVALID, "view NULL buffer");

	/* a file written with alignment 4 and tensors off the 32-byte grid: those are copied */
	{
		size_t		data_off = (size_t) craft_get(b + CR_DATA_OFFSET, 8);
		uint8_t    *g = aligned_alloc(CAI_FORMAT_ALIGN, (n + 64 + CAI_FORMAT_ALIGN - 1) & ~(size_t) (CAI_FORMAT_ALIGN - 1));

		memset(g, 0, n + 64);
		memcpy(g, b, data_off);
		memcpy(g + data_off + 4, b + data_off, n - data_off);
		craft_put(g + CR_DATA_OFFSET, 8, data_off + 4);
		craft_put(g + CR_TOTAL_SIZE, 8, n + 4);
		craft_put(g + CR_ALIGNMENT, 4, 4);
		craft_fix_crc(g, n + 4);
		CHECK(cai_format_read_view(g, n + 4, true, &mv, &err) == CAI_OK, "alignment-4 view: %s", err.msg);
		if (mv != NULL && mf != NULL)
		{
			CHECK(mv->slab != NULL, "misaligned tensors copied");
			for (int i = 0; i < mv->n_tensors; i++)
			{
				CHECK(((uintptr_t) mv->tensors[i].data % CAI_FORMAT_ALIGN) == 0, "copied tensor %d aligned", i);
				CHECK(memcmp(mv->tensors[i].data, mf->tensors[i].data, mf->tensors[i].nbytes) == 0,
					  "copied tensor %d bytes", i);
			}
		}
		cai_model_file_free(mv);
		mv = NULL;
		free(g);
	}
	cai_model_file_free(mf);

	/* rejections identical to cai_format_read: crafted cases, truncations, flips */
	for (int k = 0; k < CRAFT_N_CASES; k++)
	{
		uint8_t    *c = NULL;
		size_t		cn = 0;

		if (craft_build(craft_cases[k].name, &c, &cn) != 0)
			continue;
		differ += !same_verdict(c, cn, craft_cases[k].name);
		free(c);
	}
	for (size_t len = 0; len < n; len += 7)
		differ += !same_verdict(b, len, "prefix");
	for (size_t i = 0; i < n; i++)
	{
		b[i] ^= 0x5a;
		differ += !same_verdict(b, n, "flip");
		/* unverified: structural checks still hold, no tensor outside the buffer */
		memcpy(p, b, n);
		if (cai_format_read_view(p, n, false, &mv, &err) == CAI_OK)
		{
			for (int t = 0; t < mv->n_tensors; t++)
				outside += (const uint8_t *) mv->tensors[t].data < p ||
					(const uint8_t *) mv->tensors[t].data + mv->tensors[t].nbytes > p + n;
		}
		cai_model_file_free(mv);
		mv = NULL;
		b[i] ^= 0x5a;
	}
	CHECK(differ == 0, "%d inputs judged differently by read and view", differ);
	CHECK(outside == 0, "%d unverified views with a tensor outside the buffer", outside);

	/* allocation failures */
	{
		cai_allocator a = {failing_alloc, plain_free, NULL};
		int			bad = 0;
		int			ok_at = -1;

		memcpy(p, b, n);
		cai_set_allocator(&a);
		for (int k = 0; k < 10; k++)
		{
			cai_status	st;

			alloc_budget = k;
			st = cai_format_read_view(p, n, true, &mv, &err);
			if (st == CAI_OK && ok_at < 0)
				ok_at = k;
			if (!(st == CAI_OK || (st == CAI_ERR_NOMEM && mv == NULL)))
				bad++;
			alloc_budget = 1000;
			cai_model_file_free(mv);
			mv = NULL;
		}
		cai_set_allocator(NULL);
		CHECK(bad == 0 && ok_at > 0, "view allocation failures: %d mishandled, ok with %d", bad, ok_at);
	}
	free(p);
	free(b);
}

/* ---- a 20 MB model ---- */

static void
test_large(void)
{
	const size_t nbig = 5 * 1000 * 1000;	/* 20 MB of f32 */
	float	   *big = malloc(nbig * sizeof(float));
	int32_t		small[7] = {1, 2, 3, 4, 5, 6, 7};
	cai_tensor	t[3];
	uint8_t    *out = NULL;
	size_t		len = 0;
	cai_model_file *mf = NULL;
	cai_error	err;
	cai_rng		rng;
	double		t0;
	double		t_write;
	double		t_read;
	double		t_crc;

	cai_rng_seed(&rng, 42);
	for (size_t i = 0; i < nbig; i++)
		big[i] = cai_rng_normal(&rng);
	t[0] = mk("lstm.w_ih", CAI_F32, 2, 5000, 1000, big);
	t[1] = mk("small", CAI_I32, 1, 7, 0, small);
	t[2] = mk("tail", CAI_F32, 2, 1000, 1, big + 4000000);

	t0 = now_sec();
	CHECK(cai_format_write(craft_meta, t, 3, &out, &len, &err) == CAI_OK, "large write: %s", err.msg);
	t_write = now_sec() - t0;
	t0 = now_sec();
	CHECK(cai_format_read(out, len, &mf, &err) == CAI_OK, "large read: %s", err.msg);
	t_read = now_sec() - t0;
	{
		cai_model_file *mv = NULL;
		uint8_t    *al = aligned_copy(out, len);
		double		t_view;

		t0 = now_sec();
		CHECK(cai_format_read_view(al, len, false, &mv, &err) == CAI_OK, "large view: %s", err.msg);
		t_view = now_sec() - t0;
		CHECK(mv != NULL && memcmp(mv->tensors[0].data, big, nbig * sizeof(float)) == 0, "large view data");
		printf("large model: unverified view %.3f ms\n", t_view * 1e3);
		cai_model_file_free(mv);
		free(al);
	}
	if (mf != NULL)
	{
		CHECK(memcmp(mf->tensors[0].data, big, nbig * sizeof(float)) == 0, "large data bit for bit");
		CHECK(memcmp(mf->tensors[1].data, small, sizeof(small)) == 0, "small data");
		CHECK(rewrite_equals(mf, out, len), "large write(read(x)) == x");
	}
	t0 = now_sec();
	(void) cai_crc32c(out, len);
	t_crc = now_sec() - t0;
	printf("large model: %.1f MB, write %.0f ms, read %.0f ms, crc32c %.0f MB/s\n",
		   len / 1e6, t_write * 1e3, t_read * 1e3, len / 1e6 / (t_crc > 0 ? t_crc : 1e-9));
	cai_model_file_free(mf);
	cai_free(out);
	free(big);
}

int
main(void)
{
	test_crc();
	test_md5();
	test_dtype();
	test_round_trip();
	test_lenient_gap();
	test_cases();
	test_truncations();
	test_flips();
	test_writer_rejects();
	test_writer_edge();
	test_alloc_failures();
	test_view();
	test_large();
	return check_summary("test_format");
}
