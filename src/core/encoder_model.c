/*
 * encoder_model.c: an encoder bundle (encoder_model.h) built from a
 * checkpoint's three files.
 */
#include "cai/encoder_model.h"

#include <stdio.h>
#include <string.h>

/* Prefix err's message with which file it is about. */
static cai_status
bundle_fail(cai_error *err, cai_status st, const char *file)
{
	char		msg[sizeof(err->msg)];

	if (err == NULL)
		return st;
	snprintf(msg, sizeof(msg), "%s", err->msg);
	return cai_error_set(err, st, "%s: %s", file, msg);
}

cai_status
cai_encoder_bundle_from_checkpoint(const char *config_json, size_t config_len,
								   const char *vocab, size_t vocab_len,
								   const void *weights, size_t weights_len,
								   const cai_wordpiece_options *wp,
								   cai_encoder_bundle **out, cai_error *err)
{
	cai_encoder_bundle *b;
	cai_status	st;
	const unsigned need = CAI_WP_NEED(CAI_WP_UNK) | CAI_WP_NEED(CAI_WP_CLS) |
		CAI_WP_NEED(CAI_WP_SEP) | CAI_WP_NEED(CAI_WP_PAD);

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "no output bundle");
	*out = NULL;
	if (config_json == NULL || vocab == NULL || weights == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "a checkpoint needs config.json, vocab.txt and model.safetensors");
	if ((b = cai_calloc(1, sizeof(*b))) == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for an encoder");
	if (wp != NULL)
		b->wp = *wp;
	else
		cai_wordpiece_options_default(&b->wp);

	if ((st = cai_encoder_config_from_json(config_json, config_len, &b->cfg, err)) != CAI_OK)
	{
		cai_encoder_bundle_free(b);
		return bundle_fail(err, st, "config.json");
	}
	if ((st = cai_wordpiece_vocab_load(vocab, vocab_len, need, &b->vocab, err)) != CAI_OK)
	{
		cai_encoder_bundle_free(b);
		return bundle_fail(err, st, "vocab.txt");
	}
	if (cai_wordpiece_vocab_size(b->vocab) > b->cfg.vocab_size)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT,
						   "vocab.txt has %d tokens, more than the config's vocab_size %d",
						   (int) cai_wordpiece_vocab_size(b->vocab), (int) b->cfg.vocab_size);
		cai_encoder_bundle_free(b);
		return st;
	}
	if ((st = cai_encoder_from_safetensors(&b->cfg, weights, weights_len, &b->enc, err)) != CAI_OK)
	{
		cai_encoder_bundle_free(b);
		return bundle_fail(err, st, "model.safetensors");
	}
	*out = b;
	return CAI_OK;
}

void
cai_encoder_bundle_free(cai_encoder_bundle *b)
{
	if (b == NULL)
		return;
	cai_encoder_free(b->enc);
	cai_wordpiece_vocab_free(b->vocab);
	cai_free(b);
}
