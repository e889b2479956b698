/*
 * encoder_torch.h: the logits side of the PyTorch reference check
 * (bench/peers/encoder_torch_ref.py writes head.txt and logits.txt), shared
 * by test/unit/test_encoder.c and bench/encoder_torch_check.c.
 *
 * torch_logits runs a transformer model's head (W (K, H) then the bias (K),
 * as head.txt holds them) on the encoder through tf_forward_infer, the
 * function every transformer prediction goes through (padding, pooling,
 * the head), on a single-segment batch of the rows' unpadded ids (mask:
 * B x T, padding at the end of each row).  pass 0: per token at every
 * unpadded position, as NER labels them ((unpadded positions) x K); 1:
 * mean pooling (B x K); 2: [CLS] pooling (B x K): the order of logits.txt.
 */
#ifndef CAI_TEST_ENCODER_TORCH_H
#define CAI_TEST_ENCODER_TORCH_H

#include <string.h>

#include "cai/encoder_model.h"
#include "../../src/core/transformer_internal.h"

#define TORCH_LOGIT_PASSES 3

static const char *const torch_logit_pass[TORCH_LOGIT_PASSES] = {"per token (NER)", "mean-pooled", "[CLS]-pooled"};

static inline cai_status
torch_logits(const cai_encoder_config *cfg, cai_encoder *enc, const float *head, int K, int B, int T,
			 const int32_t *ids, const uint8_t *mask, int pass, float *out, cai_error *err)
{
	static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
	cai_encoder_bundle b = {.cfg = *cfg, .enc = enc};
	Tf			m = {.b = &b, .H = cfg->hidden_size, .K = K, .head = (float *) head, .ner = pass == 0,
	.pooling = pass == 2 ? CAI_POOL_CLS : CAI_POOL_MEAN};
	TfInputs	ti = {.n = (size_t) B};
	int32_t    *idx = cai_calloc((size_t) B, sizeof(int32_t));
	cai_status	st;

	ti.id_off = cai_calloc((size_t) B + 1, sizeof(int64_t));
	ti.lab_off = cai_calloc((size_t) B + 1, sizeof(int64_t));
	ti.ids = cai_calloc((size_t) B * T, sizeof(int32_t));
	ti.pos = cai_calloc((size_t) B * T, sizeof(int32_t));
	if (idx == NULL || ti.id_off == NULL || ti.lab_off == NULL || ti.ids == NULL || ti.pos == NULL)
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory");
	else
		st = cai_wordpiece_vocab_load(vocab, strlen(vocab), CAI_WP_NEED_ALL, &b.vocab, err);
	if (st == CAI_OK)
	{
		for (int i = 0, k = 0; i < B; i++)
		{
			for (int t = 0; t < T; t++)
				if (mask[(size_t) i * T + t])
				{
					ti.ids[k] = ids[(size_t) i * T + t];
					ti.pos[k++] = t;
				}
			ti.id_off[i + 1] = k;
			ti.lab_off[i + 1] = pass == 0 ? k : 0;
			idx[i] = i;
		}
		st = tf_forward_infer(&m, &ti, idx, B, out, err);
	}
	cai_wordpiece_vocab_free(b.vocab);
	tf_inputs_free(&ti);
	cai_free(idx);
	return st;
}

#endif							/* CAI_TEST_ENCODER_TORCH_H */
