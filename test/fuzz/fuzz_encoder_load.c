/*
 * fuzz_encoder_load.c: libFuzzer target for the loaders of encoder models
 * (encoder_model.c), transformer models (transformer.c) and ensembles
 * (ensemble.c, here of the transformer classifier and a fast model), and
 * what runs on what they load.
 *
 * As fuzz_load: the bases are valid models (an encoder model of a tiny
 * random encoder, a transformer classifier and a transformer tagger
 * fine-tuned from it for one epoch); the input damages what lies behind the
 * checksum: the metadata JSON or the tensors' bytes and first dimension.
 * The loader must refuse the damage with a status, or load a model that
 * embeds, classifies and tags without reading out of bounds.
 *
 * Input: base byte (model = byte % 4), mode byte, then as fuzz_load:
 *   mode & 1: the rest replaces the metadata JSON;
 *   else: triples (tensor u8, offset u32 le, xor u8) flip tensor bytes, and
 *   with mode & 2 the first triple's xor byte shrinks that tensor's first
 *   dimension to (xor % dim0) + 1.
 * mode & 4 marks the model file trusted (content scans skipped); then only
 * the vocabulary (U8) is damaged, as in fuzz_load (not an ensemble's
 * members: whole model files, F32 tensors inside).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/encoder_fixtures.h"
#include "cai/ensemble.h"
#include "cai/model.h"

static cai_model_file *base[4];

static void
add_base(int i, const uint8_t *bytes, size_t len)
{
	if (cai_format_read(bytes, len, &base[i], NULL) != CAI_OK)
		abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const words[] = {"good", "bad", "film", "john", "paris", "went", "to"};
	static const char *texts[8] = {"good film", "bad film", "a good one", "so bad", "good", "bad", "film good",
	"film bad"};
	static const int32_t labels[8] = {1, 0, 1, 0, 1, 0, 1, 0};
	static size_t lens[8];
	static const char *toks[8] = {"john", "went", "to", "paris", "paris", "went", "to", "john"};
	static size_t tlens[8] = {4, 4, 2, 5, 5, 4, 2, 4};
	static const char *tags[8] = {"B-PER", "O", "O", "B-LOC", "B-LOC", "O", "O", "B-PER"};
	static int64_t off[3] = {0, 4, 8};
	const char *names[2] = {"neg", "pos"};
	cai_encoder_bundle *b = fixture_bundle(words, 7, 8, 1, 2, 16, 16, false, 3);
	cai_textclf_data d = {8, texts, lens, labels};
	cai_ner_data nd = {2, off, toks, tlens, tags};
	cai_train_set set = {0};
	const cai_arch *a = NULL;
	cai_options *o = NULL;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	char	   *metrics = NULL;

	for (int i = 0; i < 8; i++)
		lens[i] = strlen(texts[i]);
	if (cai_encoder_model_write(b, NULL, &bytes, &len, NULL) != CAI_OK)
		abort();
	add_base(0, bytes, len);
	cai_free(bytes);
	set.encoder = b;
	set.texts = &d;
	set.label_names = names;
	set.n_labels = 2;
	if (cai_task_parse_options(cai_task_find("sentiment"),
							   "{\"architecture\": \"transformer\", \"epochs\": 1, \"max_length\": 16, \"validation_fraction\": 0}",
							   &a, &o, NULL) != CAI_OK ||
		cai_arch_train(a, o, &set, NULL, NULL, NULL, &bytes, &len, &metrics, NULL) != CAI_OK)
		abort();
	add_base(1, bytes, len);
	{
		/* an ensemble of this transformer classifier and a fast model of the same rows */
		uint8_t    *fast = NULL;
		size_t		fast_len = 0;
		char	   *fm = NULL;
		cai_options *fo = NULL;
		const uint8_t *members[2];
		size_t		lens2[2];
		int			counts[2] = {1, 2};
		uint8_t    *ens = NULL;
		size_t		ens_len = 0;

		if (cai_task_parse_options(cai_task_find("sentiment"), "{\"architecture\": \"fast\", \"epochs\": 2, \"dimensions\": 4, "
								   "\"buckets\": 1000, \"validation_fraction\": 0}", &a, &fo, NULL) != CAI_OK ||
			cai_arch_train(a, fo, &set, NULL, NULL, NULL, &fast, &fast_len, &fm, NULL) != CAI_OK)
			abort();
		members[0] = bytes;
		lens2[0] = len;
		members[1] = fast;
		lens2[1] = fast_len;
		if (cai_ensemble_write(members, lens2, counts, 2, NULL, &ens, &ens_len, NULL) != CAI_OK)
			abort();
		add_base(3, ens, ens_len);
		cai_free(ens);
		cai_free(fast);
		cai_free(fm);
		cai_options_free(fo);
	}
	cai_free(bytes);
	cai_free(metrics);
	cai_options_free(o);
	memset(&set, 0, sizeof(set));
	set.encoder = b;
	set.sentences = &nd;
	if (cai_task_parse_options(cai_task_find("ner"),
							   "{\"architecture\": \"transformer\", \"epochs\": 1, \"max_length\": 6, \"crf\": true, \"validation_fraction\": 0}",
							   &a, &o, NULL) != CAI_OK ||
		cai_arch_train(a, o, &set, NULL, NULL, NULL, &bytes, &len, &metrics, NULL) != CAI_OK)
		abort();
	add_base(2, bytes, len);
	cai_free(bytes);
	cai_free(metrics);
	cai_options_free(o);
	cai_encoder_bundle_free(b);
	return 0;
}

/* Run what a loaded model can run. */
static void
exercise(const cai_model *m)
{
	static const char *probe[] = {"", "good film", "难看 👎 unseen words", "john went to paris . bad"};
	const cai_encoder_bundle *b = cai_model_encoder_bundle(m);
	float		v[64];
	float		p[8];

	for (int i = 0; i < 4; i++)
	{
		size_t		len = strlen(probe[i]);

		if (b != NULL && b->cfg.hidden_size <= 64)
			(void) cai_encoder_embed(b, probe[i], len, CAI_POOL_MEAN, 0, v, NULL);
		if (cai_model_kind(m) == CAI_KIND_CLASSIFY && cai_model_n_labels(m) <= 8)
			(void) cai_model_classify(m, probe[i], len, p, NULL);
		if (cai_model_kind(m) == CAI_KIND_TAG)
		{
			cai_entity *e = NULL;
			size_t		n = 0;

			(void) cai_model_entities(m, probe[i], len, 0, &e, &n, NULL);
			cai_free(e);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cai_model_file *bf;
	cai_tensor *t;
	uint8_t    *out = NULL;
	size_t		out_len = 0;
	char	   *meta = NULL;
	cai_model  *m = NULL;
	uint8_t		mode;

	if (size < 2)
		return 0;
	bf = base[data[0] % 4];
	mode = data[1];
	data += 2;
	size -= 2;
	t = malloc(sizeof(cai_tensor) * (size_t) bf->n_tensors);
	for (int i = 0; i < bf->n_tensors; i++)
	{
		t[i] = bf->tensors[i];
		t[i].data = malloc(t[i].nbytes + 1);
		memcpy(t[i].data, bf->tensors[i].data, t[i].nbytes);
	}
	if (mode & 1)
	{
		meta = malloc(size + 1);
		memcpy(meta, data, size);
		meta[size] = '\0';
	}
	else
	{
		for (size_t p = 0; p + 6 <= size; p += 6)
		{
			cai_tensor *x = &t[data[p] % bf->n_tensors];
			uint32_t	o = data[p + 1] | data[p + 2] << 8 | data[p + 3] << 16 | (uint32_t) data[p + 4] << 24;

			if (p == 0 && (mode & 2) && x->shape[0] > 1)
			{
				int64_t		d0 = x->shape[0];
				int64_t		nd0 = (data[p + 5] % d0) + 1;

				x->shape[0] = nd0;
				x->nbytes = x->nbytes / (size_t) d0 * (size_t) nd0;
				continue;
			}
			if (x->nbytes > 0 && !((mode & 4) && (x->dtype == CAI_F32 || strncmp(x->name, "ensemble.member.", 16) == 0)))
				((uint8_t *) x->data)[o % x->nbytes] ^= data[p + 5];
		}
	}
	/* the damaged model as bytes with a valid checksum, loaded as the server loads them */
	if (cai_format_write(meta != NULL ? meta : bf->meta_json, t, bf->n_tensors, &out, &out_len, NULL) == CAI_OK)
	{
		uint8_t    *al = fixture_aligned_copy(out, out_len);

		if (cai_model_load(al, out_len, true, (mode & 4) == 0, &m, NULL) == CAI_OK)
		{
			exercise(m);
			cai_model_free(m);
		}
		free(al);
	}
	cai_free(out);
	for (int i = 0; i < bf->n_tensors; i++)
		free(t[i].data);
	free(t);
	free(meta);
	return 0;
}
