/*
 * fuzz_load.c: libFuzzer target for the model-specific loaders and inference.
 *
 * The format reader (fuzz_format) guarantees structure and checksum; this
 * target starts from a valid, freshly trained model and damages what lies
 * behind the checksum: the metadata JSON and the tensor contents and shapes,
 * as a hostile cai_import could.  The loader must reject the damage with a
 * status, or load a model whose predictions are proper distributions.
 *
 * Input: mode byte, then
 *   mode & 1: the rest replaces the metadata JSON;
 *   else: triples (tensor u8, offset u32 le, xor u8) flip tensor bytes, and
 *   with mode & 2 the first triple's xor byte shrinks that tensor's first
 *   dimension to (xor % dim0) + 1 (nbytes follows, as the reader enforces).
 * mode & 4 marks the model file trusted (as cai_format_read_view with
 * verify_checksum false does): the loader then skips its content scans, so
 * damage may load and give garbage probabilities, but the loader and
 * inference must still never read out of bounds or loop forever.  Trusted
 * mode damages only the integer and byte tensors (tables, offsets,
 * vocabularies): a non-finite weight is not a memory hazard, only garbage
 * (and UBSan would flag the float-to-int conversions it reaches).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/format.h"
#include "cai/textclf.h"

static cai_model_file *base;

static void
train_base(void)
{
	static const char *texts[] = {
		"good great film", "loved it", "wonderful acting", "superb 好看 👍",
		"bad awful film", "hated it", "boring acting", "terrible 难看 👎"};
	const char *ptr[80];
	size_t		lens[80];
	int32_t		labels[80];
	const char *names[] = {"neg", "pos"};
	cai_textclf_data d = {0};
	cai_options *o = NULL;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	char	   *metrics = NULL;

	for (int i = 0; i < 80; i++)
	{
		ptr[i] = texts[i % 8];
		lens[i] = strlen(texts[i % 8]);
		labels[i] = (i % 8) < 4 ? 1 : 0;
	}
	d.n = 80;
	d.texts = ptr;
	d.lens = lens;
	d.labels = labels;
	if (cai_textclf_parse_options("{\"epochs\": 2, \"buckets\": 1000, \"dimensions\": 8}",
								  &o, NULL) != CAI_OK ||
		cai_textclf_train(o, names, 2, &d, NULL, NULL, NULL, NULL, NULL, &bytes, &len, &metrics, NULL) != CAI_OK ||
		cai_format_read(bytes, len, &base, NULL) != CAI_OK)
		abort();
	cai_options_free(o);
	cai_free(bytes);
	cai_free(metrics);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	train_base();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cai_model_file mf = *base;
	cai_tensor *t;
	uint8_t    *slab;
	size_t		total = 0;
	size_t		off = 0;
	cai_textclf *m = NULL;
	char	   *meta = NULL;

	if (size < 1)
		return 0;
	/* private copies of the tensors (the loader may keep pointers into them) */
	t = malloc(sizeof(cai_tensor) * (size_t) base->n_tensors);
	for (int i = 0; i < base->n_tensors; i++)
		total += (base->tensors[i].nbytes + 31) & ~(size_t) 31;
	slab = aligned_alloc(32, total > 0 ? total : 32);
	for (int i = 0; i < base->n_tensors; i++)
	{
		t[i] = base->tensors[i];
		t[i].data = slab + off;
		memcpy(t[i].data, base->tensors[i].data, t[i].nbytes);
		off += (t[i].nbytes + 31) & ~(size_t) 31;
	}
	mf.tensors = t;
	mf.slab = NULL;
	mf.borrowed = true;
	mf.trusted = (data[0] & 4) != 0;

	if (data[0] & 1)
	{
		meta = malloc(size);
		memcpy(meta, data + 1, size - 1);
		meta[size - 1] = '\0';
		mf.meta_json = meta;
		mf.meta_len = strlen(meta);
	}
	else
	{
		for (size_t p = 1; p + 6 <= size; p += 6)
		{
			cai_tensor *x = &t[data[p] % base->n_tensors];
			uint32_t	o = data[p + 1] | data[p + 2] << 8 | data[p + 3] << 16 | (uint32_t) data[p + 4] << 24;

			if (p == 1 && (data[0] & 2) && x->shape[0] > 1)
			{
				int64_t		d0 = x->shape[0];
				int64_t		nd0 = (data[p + 5] % d0) + 1;

				x->shape[0] = nd0;
				x->nbytes = x->nbytes / (size_t) d0 * (size_t) nd0;
				continue;
			}
			if (x->nbytes > 0 && !((data[0] & 4) && x->dtype == CAI_F32))
				((uint8_t *) x->data)[o % x->nbytes] ^= data[p + 5];
		}
	}

	if (cai_textclf_load(&mf, &m, NULL) == CAI_OK)
	{
		static const char *probe[] = {"", "good film", "难看 👎 unseen words", "x"};
		int			n = cai_textclf_n_labels(m);
		float	   *probs = malloc(sizeof(float) * (size_t) (n > 0 ? n : 1));

		for (int i = 0; i < 4; i++)
		{
			double		sum = 0;

			if (cai_textclf_predict(m, probe[i], strlen(probe[i]), probs, NULL) != CAI_OK || mf.trusted)
				continue;
			for (int k = 0; k < n; k++)
			{
				if (!(probs[k] >= 0 && probs[k] <= 1))
					abort();
				sum += probs[k];
			}
			if (fabs(sum - 1) > 1e-3)
				abort();
		}
		free(probs);
		cai_textclf_free(m);
	}
	free(meta);
	free(slab);
	free(t);
	return 0;
}
