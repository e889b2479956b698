/*
 * fuzz_format.c: libFuzzer target for the model reader.
 *
 *   make -f core.mk BUILD=build-format fuzz FUZZERS=fuzz_format FUZZ_SECONDS=60
 *
 * Input: one mode byte, then the model bytes.  Random mutations almost never
 * keep a valid CRC-32C, so the mode byte lets the fuzzer get past it:
 *   bit 0  recompute the checksum trailer before reading
 *   bit 1  patch header total_size to the actual length (before bit 0)
 * With both bits set every structural check behind the checksum is reachable.
 *
 * Oracles (a failure traps):
 *   - cai_format_verify agrees with cai_format_read (status and message);
 *   - an error message is non-empty;
 *   - anything the reader accepts, the writer accepts, and the rewritten
 *     bytes read back to the same metadata and tensors, and rewrite
 *     identically (the writer's output is canonical).
 * Seeds: test/fuzz/corpus/fuzz_format (regenerate with make_bad_models --fuzz-seeds).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/format.h"

static void
put_le(uint8_t *p, int n, uint64_t v)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t) (v >> (8 * i));
}

static int
same_model(const cai_model_file *a, const cai_model_file *b)
{
	if (a->meta_len != b->meta_len || memcmp(a->meta_json, b->meta_json, a->meta_len) != 0 ||
		a->n_tensors != b->n_tensors)
		return 0;
	for (int i = 0; i < a->n_tensors; i++)
	{
		const cai_tensor *x = &a->tensors[i];
		const cai_tensor *y = &b->tensors[i];

		if (strcmp(x->name, y->name) != 0 || x->dtype != y->dtype || x->ndim != y->ndim ||
			memcmp(x->shape, y->shape, sizeof(x->shape)) != 0 || x->nbytes != y->nbytes ||
			memcmp(x->data, y->data, x->nbytes) != 0 ||
			((uintptr_t) x->data % CAI_FORMAT_ALIGN) != 0)
			return 0;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		mode;
	size_t		len;
	uint8_t    *buf;
	cai_model_file *mf = NULL;
	cai_error	err = {0};
	cai_error	verr = {0};
	cai_status	st;
	cai_status	vst;

	if (size == 0)
		return 0;
	mode = data[0];
	len = size - 1;
	buf = malloc(len > 0 ? len : 1);	/* exact size, so ASan catches overreads */
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, len);
	if ((mode & 2) && len >= 24)
		put_le(buf + 16, 8, len);
	if ((mode & 1) && len >= 4)
		put_le(buf + len - 4, 4, cai_crc32c(buf, len - 4));

	st = cai_format_read(buf, len, &mf, &err);
	vst = cai_format_verify(buf, len, &verr);
	if (st != vst || (st != CAI_OK && (err.msg[0] == '\0' || strcmp(err.msg, verr.msg) != 0)))
		__builtin_trap();
	if ((st == CAI_OK) != (mf != NULL))
		__builtin_trap();

	if (st == CAI_OK)
	{
		uint8_t    *w1 = NULL;
		uint8_t    *w2 = NULL;
		size_t		l1;
		size_t		l2;
		cai_model_file *mf2 = NULL;

		if (cai_format_write(mf->meta_json, mf->tensors, mf->n_tensors, &w1, &l1, &err) != CAI_OK)
			__builtin_trap();
		if (cai_format_read(w1, l1, &mf2, &err) != CAI_OK || !same_model(mf, mf2))
			__builtin_trap();
		if (cai_format_write(mf2->meta_json, mf2->tensors, mf2->n_tensors, &w2, &l2, &err) != CAI_OK ||
			l1 != l2 || memcmp(w1, w2, l1) != 0)
			__builtin_trap();
		for (int i = 0; i < mf->n_tensors; i++)
		{
			if (cai_model_file_tensor(mf, mf->tensors[i].name) == NULL ||
				cai_model_file_expect(mf, mf->tensors[i].name, mf->tensors[i].dtype,
									  mf->tensors[i].ndim, mf->tensors[i].shape,
									  NULL, &err) != CAI_OK)
				__builtin_trap();
		}
		cai_model_file_free(mf2);
		cai_free(w1);
		cai_free(w2);
	}
	cai_model_file_free(mf);
	free(buf);
	return 0;
}
