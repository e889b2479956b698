/*
 * make_bad_models.c: write the crafted model cases of test/unit/format_craft.h
 * as files, for the SQL tests (cai_import of corrupt bytes) and as fuzz seeds.
 *
 * Build and run (from the repository root):
 *
 *   cc -std=gnu11 -O1 -Iinclude -Itest/unit -o build/make_bad_models \
 *       test/fuzz/make_bad_models.c src/core/format.c src/core/common.c \
 *       -lopenblas -ljson-c -lm
 *   build/make_bad_models DIR                # DIR/<case>.bin + DIR/cases.tsv
 *   build/make_bad_models --fuzz-seeds DIR   # regenerate test/fuzz/corpus/fuzz_format
 *
 * Bad-model mode writes valid.bin, empty.bin, random.bin, truncated_N.bin,
 * flipped_N.bin and one file per case in format_craft.h (bad_magic,
 * future_version, shape_overflow, offset_past_end, duplicate_names,
 * meta_not_json, meta_missing_labels, ...), plus cases.tsv: one line per file
 * with the name, the expected status (CAI_OK, CAI_ERR_FORMAT,
 * CAI_ERR_CHECKSUM, CAI_ERR_VERSION) and the reader's exact message.  It exits
 * non-zero if the reader disagrees with the expectation in format_craft.h.
 *
 * Fuzz-seed mode writes inputs for test/fuzz/fuzz_format.c: one mode byte
 * followed by model bytes (bit 0 of the mode byte: recompute the checksum;
 * bit 1: patch total_size to the length).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cai/format.h"
#include "format_craft.h"

static const char *
status_enum(cai_status st)
{
	switch (st)
	{
		case CAI_OK:
			return "CAI_OK";
		case CAI_ERR_FORMAT:
			return "CAI_ERR_FORMAT";
		case CAI_ERR_CHECKSUM:
			return "CAI_ERR_CHECKSUM";
		case CAI_ERR_VERSION:
			return "CAI_ERR_VERSION";
		case CAI_ERR_NOMEM:
			return "CAI_ERR_NOMEM";
		case CAI_ERR_INVALID:
			return "CAI_ERR_INVALID";
		default:
			return "CAI_ERR_OTHER";
	}
}

static int
write_file(const char *dir, const char *name, const uint8_t *prefix, size_t plen,
		   const uint8_t *b, size_t n)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
	{
		perror(path);
		return -1;
	}
	if ((plen > 0 && fwrite(prefix, 1, plen, f) != plen) ||
		(n > 0 && fwrite(b, 1, n, f) != n))
	{
		perror(path);
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* Write DIR/<name>.bin and a manifest line; returns 1 if the status differs from want. */
static int
emit(const char *dir, FILE *tsv, const char *name, const uint8_t *b, size_t n,
	 cai_status want)
{
	char		file[256];
	cai_error	err = {0};
	cai_status	st = cai_format_verify(b, n, &err);

	snprintf(file, sizeof(file), "%s.bin", name);
	if (write_file(dir, file, NULL, 0, b, n) != 0)
		return 1;
	fprintf(tsv, "%s\t%s\t%s\n", name, status_enum(st), st == CAI_OK ? "" : err.msg);
	if (st != want)
	{
		fprintf(stderr, "%s: reader says %s (%s), expected %s\n", name,
				status_enum(st), err.msg, status_enum(want));
		return 1;
	}
	return 0;
}

static int
bad_models(const char *dir)
{
	char		path[4096];
	FILE	   *tsv;
	uint8_t    *v;
	size_t		n;
	int			bad = 0;
	size_t		data_off;

	snprintf(path, sizeof(path), "%s/cases.tsv", dir);
	tsv = fopen(path, "w");
	if (tsv == NULL)
	{
		perror(path);
		return 1;
	}
	fprintf(tsv, "name\tstatus\tmessage\n");

	for (int k = 0; k < CRAFT_N_CASES; k++)
	{
		uint8_t    *b;
		size_t		len;

		if (craft_is(craft_cases[k].name, "truncated"))
			continue;			/* written as truncated_N below */
		if (craft_build(craft_cases[k].name, &b, &len) != 0)
		{
			fprintf(stderr, "cannot build %s\n", craft_cases[k].name);
			bad++;
			continue;
		}
		bad += emit(dir, tsv, craft_cases[k].name, b, len, craft_cases[k].want);
		free(b);
	}

	if (craft_valid(&v, &n) != 0)
	{
		fclose(tsv);
		return 1;
	}

	/* truncations: inside the magic, inside the header, inside each section */
	{
		size_t		cuts[] = {1, 8, 40, 79, 80, 120, 200, 300, n - 4, n - 1};

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		{
			char		name[64];

			snprintf(name, sizeof(name), "truncated_%zu", cuts[i]);
			bad += emit(dir, tsv, name, v, cuts[i], CAI_ERR_FORMAT);
		}
	}

	/* single-byte flips: magic, version, metadata, table, data, trailer */
	data_off = (size_t) craft_get(v + CR_DATA_OFFSET, 8);
	{
		struct
		{
			size_t		pos;
			cai_status	want;
		}			flips[] = {
			{0, CAI_ERR_FORMAT},
			{CR_VERSION, CAI_ERR_VERSION},
			{100, CAI_ERR_CHECKSUM},
			{200, CAI_ERR_CHECKSUM},
			{0, CAI_ERR_CHECKSUM},
			{0, CAI_ERR_CHECKSUM},
		};

		flips[4].pos = data_off;
		flips[5].pos = n - 1;
		for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++)
		{
			char		name[64];

			snprintf(name, sizeof(name), "flipped_%zu", flips[i].pos);
			v[flips[i].pos] ^= 0x01;
			bad += emit(dir, tsv, name, v, n, flips[i].want);
			v[flips[i].pos] ^= 0x01;
		}
	}
	free(v);
	if (fclose(tsv) != 0)
		bad++;
	if (bad == 0)
		printf("wrote %s/*.bin and %s\n", dir, path);
	return bad == 0 ? 0 : 1;
}

static int
fuzz_seeds(const char *dir)
{
	static const uint8_t plain = 0x00;
	static const uint8_t fixcrc = 0x01;
	float		x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	cai_tensor	t;
	uint8_t    *b;
	size_t		n;
	int			bad = 0;
	cai_error	err;

	/* valid models: the small one, one without tensors, one 4-d tensor */
	if (craft_valid(&b, &n) != 0)
		return 1;
	bad += write_file(dir, "valid_small", &plain, 1, b, n) != 0;
	bad += write_file(dir, "valid_small_fixcrc", &fixcrc, 1, b, n) != 0;
	free(b);

	if (cai_format_write(craft_meta, NULL, 0, &b, &n, &err) != CAI_OK)
		return 1;
	bad += write_file(dir, "valid_no_tensors", &plain, 1, b, n) != 0;
	cai_free(b);

	memset(&t, 0, sizeof(t));
	strcpy(t.name, "conv.w");
	t.dtype = CAI_F32;
	t.ndim = 4;
	t.shape[0] = 2;
	t.shape[1] = 3;
	t.shape[2] = 2;
	t.shape[3] = 1;
	t.data = x;
	t.nbytes = sizeof(x);
	if (cai_format_write("{\"task\":\"ner\",\"architecture\":\"char_cnn\",\"labels\":[\"O\",\"B-PER\",\"I-PER\"],"
						 "\"cai_version\":\"0.1.0\",\"dims\":{\"char\":30}}", &t, 1, &b, &n, &err) != CAI_OK)
		return 1;
	bad += write_file(dir, "valid_4d", &fixcrc, 1, b, n) != 0;
	cai_free(b);

	/* one crafted case per structural check, checksum fixed */
	for (int k = 0; k < CRAFT_N_CASES; k++)
	{
		char		name[80];

		if (craft_cases[k].want == CAI_OK || craft_is(craft_cases[k].name, "empty"))
			continue;
		if (craft_build(craft_cases[k].name, &b, &n) != 0)
			return 1;
		snprintf(name, sizeof(name), "case_%s", craft_cases[k].name);
		bad += write_file(dir, name, &fixcrc, 1, b, n) != 0;
		free(b);
	}
	if (bad == 0)
		printf("wrote fuzz seeds to %s\n", dir);
	return bad == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--fuzz-seeds") == 0)
		return fuzz_seeds(argv[2]);
	if (argc == 2 && argv[1][0] != '-')
		return bad_models(argv[1]);
	fprintf(stderr, "usage: %s DIR | --fuzz-seeds DIR\n", argv[0]);
	return 2;
}
