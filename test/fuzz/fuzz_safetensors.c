/*
 * fuzz_safetensors.c: libFuzzer target for the safetensors reader.
 *
 *   make -f core.mk BUILD=build-st fuzz FUZZERS=fuzz_safetensors FUZZ_SECONDS=60
 *
 * Input: the bytes of a file.
 * Oracles (a failure traps):
 *   - an error leaves *out NULL and a message;
 *   - a parsed file's tensors lie inside the data buffer (which follows the
 *     header), tile it in offset order, have nbytes = elements x dtype size,
 *     are sorted by name and are found by name;
 *   - float tensors convert (the element count checked), others are refused.
 * Seeds: test/fuzz/corpus/fuzz_safetensors.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/safetensors.h"

#define REQUIRE(c) do { if (!(c)) __builtin_trap(); } while (0)

static const size_t dtype_size[CAI_ST_N_DTYPES] = {4, 2, 2, 8, 8, 4, 2, 1, 8, 4, 2, 1, 1, 1, 1};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cai_safetensors *st = (cai_safetensors *) &st;
	cai_error	err;
	cai_status	rc;
	uint64_t	hlen = 0;
	size_t		n;
	size_t		total = 0;

	err.msg[0] = '\0';
	rc = cai_safetensors_parse(data, size, &st, &err);
	if (rc != CAI_OK)
	{
		REQUIRE(st == NULL && err.msg[0] != '\0');
		return 0;
	}
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | data[i];
	n = cai_safetensors_count(st);
	for (size_t i = 0; i < n; i++)
	{
		const cai_st_tensor *t = cai_safetensors_tensor(st, i);
		uint64_t	elems = 1;

		REQUIRE(t != NULL && t->name != NULL);
		REQUIRE(t->data == data + 8 + hlen + t->offset);
		REQUIRE(t->offset + t->nbytes <= size - 8 - hlen);
		for (int d = 0; d < t->ndim; d++)
			elems *= (uint64_t) t->shape[d];
		REQUIRE(elems == t->n_elements && t->nbytes == elems * dtype_size[t->dtype]);
		REQUIRE(cai_safetensors_find(st, t->name) == t);
		if (i > 0)
			REQUIRE(strcmp(cai_safetensors_tensor(st, i - 1)->name, t->name) < 0);
		total += t->nbytes;
		if (t->n_elements <= 65536)
		{
			float	   *f = malloc(t->n_elements * sizeof(float) + 1);
			bool		is_float = t->dtype == CAI_ST_F32 || t->dtype == CAI_ST_F16 || t->dtype == CAI_ST_BF16;

			REQUIRE(f != NULL);
			REQUIRE((cai_safetensors_to_f32(t, f, t->n_elements, &err) == CAI_OK) == is_float);
			if (t->n_elements > 0)
				REQUIRE(cai_safetensors_to_f32(t, f, t->n_elements - 1, &err) == CAI_ERR_INVALID);
			free(f);
		}
	}
	/* tiles: the sizes add up to the data buffer */
	REQUIRE(total == size - 8 - hlen);
	REQUIRE(cai_safetensors_tensor(st, n) == NULL);
	(void) cai_safetensors_metadata(st, "format");
	cai_safetensors_free(st);
	return 0;
}
