/*
 * fuzz_vectors.c: libFuzzer target for the vector set parsers, the loader
 * and the queries (src/core/vectors.c).
 *
 * Input: mode byte, then
 *   mode % 4 == 0: the rest is a text vector file (GloVe / word2vec text / .vec);
 *   mode % 4 == 1: the rest is a word2vec binary file.
 *     What parses must load (verified, copied), every word must be found at
 *     its row, and lookup, embed (of the input itself) and similar must run;
 *     a rejection must carry a message.
 *   mode % 4 == 2: the rest replaces the metadata JSON of a valid set;
 *   mode % 4 == 3: triples (tensor u8, offset u16 le, xor u8) flip bytes of the
 *     tensors of a valid set with subwords.
 *     In both, mode & 4 marks the model file trusted (as a view read without
 *     the checksum): the loader skips its content scans and damage may load,
 *     but neither the load nor any query may read out of bounds or loop.
 *     Untrusted, what loads must answer consistently (every word at its row).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/vectors.h"

static cai_model_file *base;

static void
make_base(void)
{
	const char *words[] = {"the", "cat", "sat", "on", "mat", "Paris", "日本", "é"};
	size_t		lens[8];
	float		vals[8 * 4];
	float		sub[16 * 4];
	int32_t		ids[16];
	cai_vectors_data d = {8, 4, words, lens, vals, 2, 4, 97, 16, ids, sub, "fuzz"};
	uint8_t    *b = NULL;
	size_t		bl = 0;

	for (int i = 0; i < 8; i++)
		lens[i] = strlen(words[i]);
	for (int i = 0; i < 32; i++)
		vals[i] = (float) ((i * 37) % 11) - 5.0f;
	for (int i = 0; i < 64; i++)
		sub[i] = (float) ((i * 13) % 7) - 3.0f;
	for (int i = 0; i < 16; i++)
		ids[i] = i * 6;
	if (cai_vectors_write(&d, &b, &bl, NULL) != CAI_OK || cai_format_read(b, bl, &base, NULL) != CAI_OK)
		abort();
	cai_free(b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	make_base();
	return 0;
}

/* Run every query; with check, the answers must be consistent. */
static void
exercise(cai_vectors *v, const uint8_t *text, size_t len, bool check)
{
	int32_t		V = cai_vectors_count(v);
	int32_t		D = cai_vectors_dim(v);
	float	   *out = malloc(sizeof(float) * (size_t) D);
	int32_t		ids[5];
	float		sc[5];
	int			n;
	cai_vec_hit hit;
	cai_error	err;
	cai_word_vectors wv;
	size_t		nt,
				nf;

	for (int32_t i = 0; i < V && i < 64; i++)
	{
		size_t		l = 0;
		const char *w = cai_vectors_word(v, i, &l);
		int32_t		row;

		if (w == NULL)
		{
			if (check)
				__builtin_trap();
			continue;
		}
		if (cai_vectors_find(v, w, l) != i && check)
			__builtin_trap();
		hit = cai_vectors_lookup(v, w, l, CAI_VEC_CASE_AUTO, out, &row);
		if (check && cai_vectors_lookup(v, w, l, CAI_VEC_CASE_EXACT, out, &row) != CAI_VEC_EXACT)
			__builtin_trap();
		if (cai_vectors_similar_word(v, w, l, (cai_vec_case) (i % 4), 5, ids, sc, &n, &hit, &err) != CAI_OK)
			__builtin_trap();
		for (int k = 0; k < n; k++)
			if (ids[k] < 0 || ids[k] >= V || (check && k > 0 && sc[k] > sc[k - 1]))
				__builtin_trap();
	}
	if (cai_vectors_embed(v, (const char *) text, len, CAI_VEC_CASE_AUTO, 0, out, &nt, &nf, &err) != CAI_OK ||
		nf > nt)
		__builtin_trap();
	(void) cai_vectors_lookup(v, "unknownish", 10, CAI_VEC_CASE_FALLBACK, out, NULL);
	if (cai_vectors_word_vectors(v, &wv, &err) != CAI_OK || wv.n != (size_t) V || wv.dim != D)
		__builtin_trap();
	free(out);
}

static void
parse_case(const uint8_t *data, size_t size, cai_vec_format fmt)
{
	cai_vec_limits lim = {4096, 1 << 20};
	uint8_t    *b = NULL;
	size_t		bl = 0;
	int32_t		nw = 0,
				dim = 0;
	cai_error	err = {0};
	cai_vectors *v = NULL;
	cai_status	st = cai_vectors_parse(data, size, fmt, &lim, "fuzz", &b, &bl, &nw, &dim, &err);

	if (st != CAI_OK)
	{
		if (err.msg[0] == '\0' || b != NULL)
			__builtin_trap();
		return;
	}
	if (cai_vectors_open(b, bl, false, true, &v, &err) != CAI_OK || cai_vectors_count(v) != nw ||
		cai_vectors_dim(v) != dim)
		__builtin_trap();
	exercise(v, data, size, true);
	cai_vectors_free(v);
	cai_free(b);
}

static void
load_case(const uint8_t *data, size_t size, bool meta, bool trusted)
{
	cai_model_file mf = *base;
	cai_tensor *ts = malloc(sizeof(cai_tensor) * (size_t) base->n_tensors);
	void	   *copies[16] = {0};
	char	   *json = NULL;
	cai_vectors *v = NULL;
	cai_error	err = {0};
	cai_status	st;

	memcpy(ts, base->tensors, sizeof(cai_tensor) * (size_t) base->n_tensors);
	mf.tensors = ts;
	mf.trusted = trusted;
	if (meta)
	{
		json = malloc(size + 1);
		memcpy(json, data, size);
		json[size] = '\0';
		mf.meta_json = json;
		mf.meta_len = size;
	}
	else
	{
		for (int i = 0; i < mf.n_tensors && i < 16; i++)
		{
			copies[i] = malloc(ts[i].nbytes);
			memcpy(copies[i], ts[i].data, ts[i].nbytes);
			ts[i].data = copies[i];
		}
		for (size_t p = 0; p + 4 <= size; p += 4)
		{
			int			t = data[p] % mf.n_tensors;
			size_t		off = (size_t) (data[p + 1] | (data[p + 2] << 8));

			if (ts[t].nbytes > 0)
				((uint8_t *) ts[t].data)[off % ts[t].nbytes] ^= data[p + 3];
		}
	}
	st = cai_vectors_load(&mf, &v, &err);
	if ((st == CAI_OK) != (v != NULL) || (st != CAI_OK && err.msg[0] == '\0'))
		__builtin_trap();
	if (v != NULL)
	{
		exercise(v, data, size, !trusted);
		cai_vectors_free(v);
	}
	for (int i = 0; i < 16; i++)
		free(copies[i]);
	free(json);
	free(ts);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	switch (mode % 4)
	{
		case 0:
			parse_case(data, size, CAI_VEC_TEXT);
			break;
		case 1:
			parse_case(data, size, CAI_VEC_BINARY);
			break;
		default:
			load_case(data, size, mode % 4 == 2, (mode & 4) != 0);
			break;
	}
	return 0;
}
