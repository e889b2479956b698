/*
 * test_safetensors.c: the safetensors reader: a round trip through a file
 * written here (st_write: header length, JSON, data), every damage the reader
 * must refuse with its status and message, and byte flips that must never
 * crash it.
 */
#include "cai/safetensors.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

/* A safetensors file: 8-byte little-endian length of json, json, data. */
static unsigned char *
st_write(const char *json, const void *data, size_t data_len, size_t *len)
{
	size_t		hl = strlen(json);
	unsigned char *b = malloc(8 + hl + data_len + 1);

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char) ((uint64_t) hl >> (8 * i));
	memcpy(b + 8, json, hl);
	if (data_len > 0)
		memcpy(b + 8 + hl, data, data_len);
	*len = 8 + hl + data_len;
	return b;
}

static void
test_round_trip(void)
{
	/* a: F32 [2, 3]; b: F16 [4]; c: BF16 [2]; ids: I64 [2]; e: F32 [0] */
	unsigned char data[24 + 8 + 4 + 16];
	float		a[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -1e30f};
	uint16_t	h[4] = {0x3C00, 0xC000, 0x0001, 0x7C00};	/* 1, -2, 2^-24, inf */
	uint16_t	bf[2] = {0x3F80, 0xC0A0};	/* 1, -5 */
	int64_t		ids[2] = {7, -1};
	const char *json =
		"{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\\\"y\"},"
		"\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
		"\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24],\"extra\":1},"
		"\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[36,36]},"
		"\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[32,36]},"
		"\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[36,52]}}   ";
	unsigned char *file;
	size_t		len;
	cai_safetensors *st = NULL;
	const cai_st_tensor *t;
	float		out[6];
	cai_error	err;

	/* little-endian data, written byte by byte */
	for (int i = 0; i < 6; i++)
	{
		uint32_t	u;

		memcpy(&u, &a[i], 4);
		for (int k = 0; k < 4; k++)
			data[4 * i + k] = (unsigned char) (u >> (8 * k));
	}
	for (int i = 0; i < 4; i++)
	{
		data[24 + 2 * i] = (unsigned char) h[i];
		data[24 + 2 * i + 1] = (unsigned char) (h[i] >> 8);
	}
	for (int i = 0; i < 2; i++)
	{
		data[32 + 2 * i] = (unsigned char) bf[i];
		data[32 + 2 * i + 1] = (unsigned char) (bf[i] >> 8);
	}
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 8; k++)
			data[36 + 8 * i + k] = (unsigned char) ((uint64_t) ids[i] >> (8 * k));

	file = st_write(json, data, sizeof(data), &len);
	err.msg[0] = '\0';
	CHECK(cai_safetensors_parse(file, len, &st, &err) == CAI_OK, "round trip parses: %s", err.msg);
	if (st == NULL)
	{
		free(file);
		return;
	}
	CHECK(cai_safetensors_count(st) == 5, "5 tensors, got %zu", cai_safetensors_count(st));
	CHECK(strcmp(cai_safetensors_tensor(st, 0)->name, "a") == 0 &&
		  strcmp(cai_safetensors_tensor(st, 4)->name, "ids") == 0 && cai_safetensors_tensor(st, 5) == NULL,
		  "sorted by name");
	CHECK(cai_safetensors_find(st, "zz") == NULL && cai_safetensors_find(st, "__metadata__") == NULL,
		  "absent names");
	CHECK(cai_safetensors_metadata(st, "format") != NULL && strcmp(cai_safetensors_metadata(st, "format"), "pt") == 0 &&
		  strcmp(cai_safetensors_metadata(st, "note"), "x\"y") == 0 && cai_safetensors_metadata(st, "none") == NULL,
		  "metadata");

	t = cai_safetensors_find(st, "a");
	CHECK(t != NULL && t->dtype == CAI_ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
		  t->n_elements == 6 && t->nbytes == 24 && t->offset == 0, "a: F32 [2, 3]");
	CHECK(t != NULL && cai_safetensors_to_f32(t, out, 6, &err) == CAI_OK && memcmp(out, a, sizeof(a)) == 0,
		  "a: values");
	t = cai_safetensors_find(st, "b");
	CHECK(t != NULL && cai_safetensors_to_f32(t, out, 4, &err) == CAI_OK && out[0] == 1.0f && out[1] == -2.0f &&
		  out[2] == 5.9604644775390625e-8f && isinf(out[3]) && out[3] > 0, "b: F16 values %g %g %g %g",
		  out[0], out[1], out[2], out[3]);
	t = cai_safetensors_find(st, "c");
	CHECK(t != NULL && cai_safetensors_to_f32(t, out, 2, &err) == CAI_OK && out[0] == 1.0f && out[1] == -5.0f,
		  "c: BF16 values");
	t = cai_safetensors_find(st, "e");
	CHECK(t != NULL && t->n_elements == 0 && t->nbytes == 0 && cai_safetensors_to_f32(t, out, 0, &err) == CAI_OK,
		  "e: empty");
	t = cai_safetensors_find(st, "ids");
	CHECK(t != NULL && t->dtype == CAI_ST_I64 && t->data[0] == 7, "ids: I64 read, data in place");
	CHECK(t != NULL && cai_safetensors_to_f32(t, out, 2, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "unsupported dtype I64") != NULL, "I64 not converted: %s", err.msg);
	t = cai_safetensors_find(st, "a");
	CHECK(cai_safetensors_to_f32(t, out, 5, &err) == CAI_ERR_INVALID, "wrong element count");
	cai_safetensors_free(st);
	free(file);

	/* F16 subnormal / NaN / negative zero, and an empty file */
	{
		unsigned char d[8] = {0xFF, 0x03, 0x01, 0x7E, 0x00, 0x80, 0xFF, 0x7B};	/* max subnormal, NaN, -0, 65504 */
		float		f[4];

		file = st_write("{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", d, 8, &len);
		CHECK(cai_safetensors_parse(file, len, &st, &err) == CAI_OK, "%s", err.msg);
		CHECK(st != NULL && cai_safetensors_to_f32(cai_safetensors_find(st, "h"), f, 4, &err) == CAI_OK &&
			  f[0] == 6.0975551605224609375e-5f && isnan(f[1]) && f[2] == 0.0f && signbit(f[2]) && f[3] == 65504.0f,
			  "F16 specials %g %g %g %g", f[0], f[1], f[2], f[3]);
		cai_safetensors_free(st);
		free(file);
	}
	file = st_write("{} \n\t", NULL, 0, &len);
	CHECK(cai_safetensors_parse(file, len, &st, &err) == CAI_OK && cai_safetensors_count(st) == 0,
		  "{} and JSON white space parse");
	cai_safetensors_free(st);
	free(file);
}

/* A file with header json and data_len zero bytes must fail with want and a message holding part. */
static void
expect_bad(const char *what, const char *json, size_t data_len, cai_status want, const char *part)
{
	unsigned char *data = calloc(1, data_len + 1);
	size_t		len;
	unsigned char *file = st_write(json, data, data_len, &len);
	cai_safetensors *st = (cai_safetensors *) &st;
	cai_error	err;
	cai_status	rc;

	err.msg[0] = '\0';
	rc = cai_safetensors_parse(file, len, &st, &err);
	CHECK(rc == want && st == NULL && strstr(err.msg, part) != NULL,
		  "%s: %s \"%s\", want %s \"%s\"", what, cai_status_name(rc), err.msg, cai_status_name(want), part);
	free(file);
	free(data);
}

#define T(name, dt, shape, b, e) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void
test_damage(void)
{
	unsigned char small[8] = {4, 0, 0, 0, 0, 0, 0, 0};
	unsigned char big[16] = {0x01, 0xE1, 0xF5, 0x05, 0, 0, 0, 0, '{', '}'};	/* 100000001 */
	unsigned char huge[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, '{', '}'};
	cai_safetensors *st = NULL;
	cai_error	err;

	CHECK(cai_safetensors_parse(small, 7, &st, &err) == CAI_ERR_FORMAT && strstr(err.msg, "shorter") != NULL,
		  "7 bytes: %s", err.msg);
	CHECK(cai_safetensors_parse(small, 8, &st, &err) == CAI_ERR_FORMAT && strstr(err.msg, "exceeds the 0 bytes") != NULL,
		  "header past the end: %s", err.msg);
	CHECK(cai_safetensors_parse(big, 10, &st, &err) == CAI_ERR_LIMIT && strstr(err.msg, "limit") != NULL,
		  "header over the limit: %s", err.msg);
	CHECK(cai_safetensors_parse(huge, 10, &st, &err) == CAI_ERR_LIMIT, "header length 2^64-1: %s", err.msg);
	CHECK(cai_safetensors_parse(NULL, 10, &st, &err) == CAI_ERR_INVALID, "NULL buffer");
	CHECK(cai_safetensors_parse(small, 8, NULL, &err) == CAI_ERR_INVALID, "NULL out");

	expect_bad("empty header", "", 0, CAI_ERR_FORMAT, "begin with '{'");
	expect_bad("array header", "[]", 0, CAI_ERR_FORMAT, "begin with '{'");
	expect_bad("invalid JSON", "{\"a\":", 0, CAI_ERR_FORMAT, "not valid JSON");
	expect_bad("invalid JSON 2", "{\"a\" 1}", 0, CAI_ERR_FORMAT, "not valid JSON");
	expect_bad("trailing garbage", "{} x", 0, CAI_ERR_FORMAT, "not valid JSON");
	expect_bad("second object", "{}{}", 0, CAI_ERR_FORMAT, "not valid JSON");
	expect_bad("bad UTF-8", "{\"\xff\":{}}", 0, CAI_ERR_FORMAT, "not valid JSON");
	{
		/* a NUL inside the header */
		unsigned char f[8 + 4] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 0, '}', ' '};

		CHECK(cai_safetensors_parse(f, sizeof(f), &st, &err) == CAI_ERR_FORMAT && strstr(err.msg, "NUL") != NULL,
			  "NUL in the header: %s", err.msg);
	}
	expect_bad("duplicate", "{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8,
			   CAI_ERR_FORMAT, "twice");
	expect_bad("duplicate by escape", "{" T("a", "F32", "[1]", 0, 4) ",\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[1],"
			   "\"data_offsets\":[4,8]}}", 8, CAI_ERR_FORMAT, "twice");
	expect_bad("entry not object", "{\"a\":[1]}", 0, CAI_ERR_FORMAT, "tensor \"a\": entry is not an object");
	expect_bad("no dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CAI_ERR_FORMAT, "dtype missing");
	expect_bad("dtype not string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CAI_ERR_FORMAT,
			   "dtype missing");
	expect_bad("unknown dtype", "{" T("a", "F128", "[1]", 0, 16) "}", 16, CAI_ERR_FORMAT, "unknown dtype \"F128\"");
	expect_bad("no shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, CAI_ERR_FORMAT, "shape missing");
	expect_bad("negative dim", "{" T("a", "F32", "[-1]", 0, 4) "}", 4, CAI_ERR_FORMAT, "dimension 1");
	expect_bad("float dim", "{" T("a", "F32", "[1.0]", 0, 4) "}", 4, CAI_ERR_FORMAT, "dimension 1");
	expect_bad("string dim", "{" T("a", "F32", "[1,\"2\"]", 0, 8) "}", 8, CAI_ERR_FORMAT, "dimension 2");
	expect_bad("too many dims", "{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, CAI_ERR_LIMIT,
			   "9 dimensions");
	expect_bad("shape overflow", "{" T("a", "F32", "[4294967296,4294967296]", 0, 4) "}", 4, CAI_ERR_FORMAT,
			   "overflows");
	expect_bad("dim above int64", "{" T("a", "U8", "[18446744073709551615]", 0, 4) "}", 4, CAI_ERR_FORMAT,
			   "dimension 1");
	expect_bad("no offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, CAI_ERR_FORMAT, "data_offsets");
	expect_bad("three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4,
			   CAI_ERR_FORMAT, "data_offsets");
	expect_bad("negative offset", "{" T("a", "F32", "[1]", -4, 0) "}", 4, CAI_ERR_FORMAT, "data_offsets");
	expect_bad("begin > end", "{" T("a", "F32", "[1]", 4, 0) "}", 4, CAI_ERR_FORMAT, "outside the data buffer");
	expect_bad("end past data", "{" T("a", "F32", "[2]", 0, 8) "}", 4, CAI_ERR_FORMAT, "outside the data buffer");
	expect_bad("huge offset", "{" T("a", "F32", "[1]", 0, 18446744073709551615) "}", 4, CAI_ERR_FORMAT,
			   "outside the data buffer");
	expect_bad("size mismatch", "{" T("a", "F32", "[2]", 0, 4) "}", 4, CAI_ERR_FORMAT, "need 8");
	expect_bad("gap", "{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 8, 12) "}", 12, CAI_ERR_FORMAT,
			   "4 unused bytes before tensor \"b\"");
	expect_bad("gap at start", "{" T("a", "F32", "[1]", 4, 8) "}", 8, CAI_ERR_FORMAT, "unused bytes before");
	expect_bad("overlap", "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[1]", 4, 8) "}", 8, CAI_ERR_FORMAT,
			   "overlaps");
	expect_bad("same range", "{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 0, 4) "}", 4, CAI_ERR_FORMAT,
			   "overlaps");
	expect_bad("unused end", "{" T("a", "F32", "[1]", 0, 4) "}", 6, CAI_ERR_FORMAT, "2 unused bytes at its end");
	expect_bad("data without tensors", "{}", 1, CAI_ERR_FORMAT, "1 unused bytes");
	expect_bad("metadata not object", "{\"__metadata__\":[]}", 0, CAI_ERR_FORMAT, "__metadata__ is not an object");
	expect_bad("metadata value", "{\"__metadata__\":{\"k\":1}}", 0, CAI_ERR_FORMAT, "__metadata__ \"k\"");
	expect_bad("too deep", "{\"a\":{\"dtype\":[[[[[[[[[1]]]]]]]]]}}", 0, CAI_ERR_FORMAT, "not valid JSON");
}

/* Byte flips and truncations of a valid file: any status, never a crash, a message on error. */
static void
test_mutations(void)
{
	float		v[4] = {1, 2, 3, 4};
	size_t		len;
	unsigned char *file = st_write("{" T("w", "F32", "[2,2]", 0, 16) ",\"__metadata__\":{\"a\":\"b\"}}", v, 16, &len);
	unsigned char *m = malloc(len);
	cai_rng		rng;
	int			bad = 0;
	int			ok = 0;

	cai_rng_seed(&rng, 7);
	for (int iter = 0; iter < 5000; iter++)
	{
		size_t		n = len;
		cai_safetensors *st = NULL;
		cai_error	err;
		cai_status	rc;

		memcpy(m, file, len);
		for (int k = 1 + (int) cai_rng_below(&rng, 3); k > 0; k--)
			m[cai_rng_below(&rng, (uint32_t) len)] ^= (unsigned char) (1u << cai_rng_below(&rng, 8));
		if (cai_rng_below(&rng, 4) == 0)
			n = cai_rng_below(&rng, (uint32_t) len);
		err.msg[0] = '\0';
		rc = cai_safetensors_parse(m, n, &st, &err);
		if (rc == CAI_OK)
		{
			ok++;
			for (size_t i = 0; i < cai_safetensors_count(st); i++)
			{
				const cai_st_tensor *t = cai_safetensors_tensor(st, i);

				if (t->data < m || t->data + t->nbytes > m + n)
					bad++;
			}
		}
		else if (st != NULL || err.msg[0] == '\0')
			bad++;
		cai_safetensors_free(st);
	}
	CHECK(bad == 0, "mutations: %d bad results", bad);
	CHECK(ok > 0, "some mutations still parse (%d)", ok);
	free(m);
	free(file);
}

int
main(void)
{
	test_round_trip();
	test_damage();
	test_mutations();
	return check_summary("test_safetensors");
}
