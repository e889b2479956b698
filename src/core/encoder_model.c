/*
 * encoder_model.c: an encoder bundle (encoder_model.h) built from a
 * checkpoint's three files, stored as model bytes and loaded back, and the
 * sentence embeddings of an encoder.
 */
#include "cai/encoder_model.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "encoder_model_internal.h"
#include "modelutil.h"

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

/* ---------------------------------------------------------------------
 * Model bytes
 */

/* The config as config.json spells it for its family. */
static json_object *
config_to_json(const cai_encoder_config *c)
{
	json_object *o = json_object_new_object();
	bool		distil = c->family == CAI_ENC_DISTILBERT;
	bool		ok = o != NULL;

	ok = ok && cai_json_put(o, "model_type", json_object_new_string(distil ? "distilbert" : "bert"));
	ok = ok && cai_json_put(o, "vocab_size", json_object_new_int(c->vocab_size));
	ok = ok && cai_json_put(o, distil ? "dim" : "hidden_size", json_object_new_int(c->hidden_size));
	ok = ok && cai_json_put(o, distil ? "n_layers" : "num_hidden_layers", json_object_new_int(c->num_hidden_layers));
	ok = ok && cai_json_put(o, distil ? "n_heads" : "num_attention_heads", json_object_new_int(c->num_attention_heads));
	ok = ok && cai_json_put(o, distil ? "hidden_dim" : "intermediate_size", json_object_new_int(c->intermediate_size));
	ok = ok && cai_json_put(o, "max_position_embeddings", json_object_new_int(c->max_position_embeddings));
	if (!distil)
		ok = ok && cai_json_put(o, "type_vocab_size", json_object_new_int(c->type_vocab_size)) &&
			cai_json_put(o, "layer_norm_eps", json_object_new_double(c->layer_norm_eps));
	ok = ok && cai_json_put(o, distil ? "dropout" : "hidden_dropout_prob", json_object_new_double(c->hidden_dropout_prob));
	ok = ok && cai_json_put(o, distil ? "attention_dropout" : "attention_probs_dropout_prob",
							json_object_new_double(c->attention_probs_dropout_prob));
	if (!ok)
	{
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *
cai_encoder_bundle_meta(const cai_encoder_bundle *b)
{
	json_object *sec = json_object_new_object();
	json_object *tok = json_object_new_object();
	bool		ok = sec != NULL && tok != NULL;

	ok = ok && cai_json_put(tok, "lower_case", json_object_new_boolean(b->wp.lower_case)) &&
		cai_json_put(tok, "special_in_text", json_object_new_boolean(b->wp.special_in_text)) &&
		cai_json_put(tok, "max_chars_per_word", json_object_new_int(b->wp.max_chars_per_word));
	ok = ok && cai_json_put(sec, "config", config_to_json(&b->cfg));
	if (ok)
	{
		ok = cai_json_put(sec, "tokenizer", tok);
		tok = NULL;
	}
	ok = ok && cai_json_put(sec, "parameters", json_object_new_int64((int64_t) b->enc->n_params)) &&
		cai_json_put(sec, "vocab_size", json_object_new_int(cai_wordpiece_vocab_size(b->vocab)));
	json_object_put(tok);
	if (!ok)
	{
		json_object_put(sec);
		return NULL;
	}
	return sec;
}

cai_status
cai_encoder_bundle_tensors(const cai_encoder_bundle *b, cai_tensor t[2], char **vocab_txt, cai_error *err)
{
	int32_t		n = cai_wordpiece_vocab_size(b->vocab);
	size_t		total = 0;
	char	   *txt;
	char	   *p;

	*vocab_txt = NULL;
	for (int32_t i = 0; i < n; i++)
	{
		size_t		len;

		(void) cai_wordpiece_token(b->vocab, i, &len);
		total += len + 1;
	}
	if ((txt = cai_malloc(total > 0 ? total : 1)) == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory writing the vocabulary");
	p = txt;
	for (int32_t i = 0; i < n; i++)
	{
		size_t		len;
		const char *tok = cai_wordpiece_token(b->vocab, i, &len);

		memcpy(p, tok, len);
		p[len] = '\n';
		p += len + 1;
	}
	memset(t, 0, 2 * sizeof(cai_tensor));
	snprintf(t[0].name, sizeof(t[0].name), "%s", CAI_ENC_PARAMS_TENSOR);
	t[0].dtype = CAI_F32;
	t[0].ndim = 1;
	t[0].shape[0] = (int64_t) b->enc->n_params;
	t[0].data = b->enc->params;
	t[0].nbytes = b->enc->n_params * sizeof(float);
	snprintf(t[1].name, sizeof(t[1].name), "%s", CAI_ENC_VOCAB_TENSOR);
	t[1].dtype = CAI_U8;
	t[1].ndim = 1;
	t[1].shape[0] = (int64_t) total;
	t[1].data = txt;
	t[1].nbytes = total;
	*vocab_txt = txt;
	return CAI_OK;
}

cai_status
cai_encoder_model_write(const cai_encoder_bundle *b, const char *provenance_json, uint8_t **out,
						size_t *out_len, cai_error *err)
{
	json_object *root;
	json_object *prov = NULL;
	cai_tensor	t[2];
	char	   *vocab_txt = NULL;
	cai_status	st;
	bool		ok;

	*out = NULL;
	*out_len = 0;
	if (b == NULL || b->enc == NULL || b->vocab == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "no encoder to write");
	if (provenance_json != NULL && provenance_json[0] != '\0' &&
		(prov = cai_json_parse_object(provenance_json)) == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "provenance must be a JSON object");
	root = json_object_new_object();
	ok = root != NULL &&
		cai_json_put(root, "task", json_object_new_string("encoder")) &&
		cai_json_put(root, "architecture", json_object_new_string("bert")) &&
		cai_json_put(root, "labels", json_object_new_array()) &&
		cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING)) &&
		cai_json_put(root, "encoder", cai_encoder_bundle_meta(b));
	if (ok && prov != NULL)
	{
		ok = cai_json_put(root, "provenance", prov);
		prov = NULL;
	}
	json_object_put(prov);
	if (!ok)
	{
		json_object_put(root);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory writing the encoder's metadata");
	}
	if ((st = cai_encoder_bundle_tensors(b, t, &vocab_txt, err)) == CAI_OK)
		st = cai_format_write(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), t, 2, out, out_len, err);
	cai_free(vocab_txt);
	json_object_put(root);
	return st;
}

static cai_status
section_bool(json_object *o, const char *key, bool *out, cai_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks boolean encoder.tokenizer.%s", key);
	*out = json_object_get_boolean(v);
	return CAI_OK;
}

cai_status
cai_encoder_bundle_load(const cai_model_file *mf, json_object *section, cai_encoder_bundle **out, cai_error *err)
{
	const unsigned need = CAI_WP_NEED(CAI_WP_UNK) | CAI_WP_NEED(CAI_WP_CLS) |
		CAI_WP_NEED(CAI_WP_SEP) | CAI_WP_NEED(CAI_WP_PAD);
	cai_encoder_bundle *b;
	json_object *cfg;
	json_object *tok;
	const cai_tensor *params;
	const cai_tensor *vocab;
	const char *cfg_text;
	int64_t		v64;
	int64_t		any = -1;
	cai_status	st;

	*out = NULL;
	if (section == NULL || !json_object_is_type(section, json_type_object) ||
		!json_object_object_get_ex(section, "config", &cfg) || !json_object_is_type(cfg, json_type_object) ||
		!json_object_object_get_ex(section, "tokenizer", &tok) || !json_object_is_type(tok, json_type_object))
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks the encoder's config or tokenizer");
	if ((b = cai_calloc(1, sizeof(*b))) == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading an encoder");
	cfg_text = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN);
	if ((st = cai_encoder_config_from_json(cfg_text, strlen(cfg_text), &b->cfg, err)) != CAI_OK)
		st = bundle_fail(err, st == CAI_ERR_NOMEM ? st : CAI_ERR_FORMAT, "encoder.config");
	if (st == CAI_OK && (st = section_bool(tok, "lower_case", &b->wp.lower_case, err)) == CAI_OK &&
		(st = section_bool(tok, "special_in_text", &b->wp.special_in_text, err)) == CAI_OK &&
		(st = cai_json_get_int(tok, "encoder.tokenizer", "max_chars_per_word", 1, INT32_MAX, &v64, err)) == CAI_OK)
		b->wp.max_chars_per_word = (int32_t) v64;
	if (st == CAI_OK)
		st = cai_model_file_expect(mf, CAI_ENC_PARAMS_TENSOR, CAI_F32, 1, &any, &params, err);
	if (st == CAI_OK)
		st = cai_model_file_expect(mf, CAI_ENC_VOCAB_TENSOR, CAI_U8, 1, &any, &vocab, err);
	if (st == CAI_OK)
		st = cai_encoder_view(&b->cfg, params->data, (size_t) params->shape[0], &b->enc, err);
	if (st == CAI_OK && !mf->trusted && !cai_all_finite(params->data, (size_t) params->shape[0]))
		st = cai_error_set(err, CAI_ERR_NUMERIC, "tensor \"%s\" holds a non-finite value", CAI_ENC_PARAMS_TENSOR);
	if (st == CAI_OK && (st = cai_wordpiece_vocab_load(vocab->data, vocab->nbytes, need, &b->vocab, err)) != CAI_OK)
		st = bundle_fail(err, st == CAI_ERR_NOMEM ? st : CAI_ERR_FORMAT, CAI_ENC_VOCAB_TENSOR);
	if (st == CAI_OK && cai_wordpiece_vocab_size(b->vocab) > b->cfg.vocab_size)
		st = cai_error_set(err, CAI_ERR_FORMAT, "the encoder's vocabulary has %d tokens, more than its vocab_size %d",
						   (int) cai_wordpiece_vocab_size(b->vocab), (int) b->cfg.vocab_size);
	if (st != CAI_OK)
	{
		cai_encoder_bundle_free(b);
		return st;
	}
	*out = b;
	return CAI_OK;
}

cai_status
cai_encoder_model_load(const cai_model_file *mf, void **impl, cai_error *err)
{
	json_object *meta = cai_json_parse_object(mf->meta_json);
	json_object *sec = NULL;
	cai_status	st;

	*impl = NULL;
	if (meta == NULL || !json_object_object_get_ex(meta, "encoder", &sec))
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks the \"encoder\" section");
	else
		st = cai_encoder_bundle_load(mf, sec, (cai_encoder_bundle **) impl, err);
	json_object_put(meta);
	return st;
}

size_t
cai_encoder_bundle_memory(const cai_encoder_bundle *b)
{
	size_t		n = sizeof(*b) + sizeof(cai_encoder) +
		(size_t) b->enc->n_tensors * sizeof(cai_encoder_tensor) +
		(size_t) b->cfg.num_hidden_layers * sizeof(cai_encoder_layer);
	int32_t		nv = cai_wordpiece_vocab_size(b->vocab);

	if (!b->enc->borrowed)
		n += b->enc->n_params * sizeof(float);
	/* the vocabulary: its text, offsets and slots (about 2 per token) */
	for (int32_t i = 0; i < nv; i++)
	{
		size_t		len;

		(void) cai_wordpiece_token(b->vocab, i, &len);
		n += len + 3 * sizeof(int32_t);
	}
	return n;
}

bool
cai_encoder_bundle_known_word(const cai_encoder_bundle *b, const char *word, size_t len)
{
	cai_wordpiece_piece *pieces = NULL;
	size_t		n = 0;
	bool		known;

	if (cai_wordpiece_tokenize(b->vocab, &b->wp, word, len, 2, &pieces, &n, NULL) != CAI_OK)
	{
		cai_free(pieces);
		return false;
	}
	known = n == 1 && pieces[0].id != cai_wordpiece_special_id(b->vocab, CAI_WP_UNK);
	cai_free(pieces);
	return known;
}

cai_status
cai_encoder_bundle_copy(const cai_encoder_bundle *src, float dropout, cai_encoder_bundle **out, cai_error *err)
{
	cai_encoder_bundle *b = cai_calloc(1, sizeof(*b));
	cai_tensor	t[2];
	char	   *txt = NULL;
	cai_status	st;

	*out = NULL;
	if (b == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory copying an encoder");
	b->cfg = src->cfg;
	b->wp = src->wp;
	if (dropout >= 0.0f)
		b->cfg.hidden_dropout_prob = b->cfg.attention_probs_dropout_prob = dropout;
	st = cai_encoder_create(&b->cfg, &b->enc, err);
	if (st == CAI_OK)
	{
		memcpy(b->enc->params, src->enc->params, sizeof(float) * b->enc->n_params);
		st = cai_encoder_bundle_tensors(src, t, &txt, err);
	}
	if (st == CAI_OK)
		st = cai_wordpiece_vocab_load(txt, t[1].nbytes, 0, &b->vocab, err);
	cai_free(txt);
	if (st != CAI_OK)
	{
		cai_encoder_bundle_free(b);
		return st;
	}
	*out = b;
	return CAI_OK;
}

/* ---------------------------------------------------------------------
 * Sentence embeddings
 */

cai_status
cai_pooling_parse(const char *name, cai_pooling *out, cai_error *err)
{
	if (name != NULL && strcasecmp(name, "mean") == 0)
		*out = CAI_POOL_MEAN;
	else if (name != NULL && strcasecmp(name, "cls") == 0)
		*out = CAI_POOL_CLS;
	else
		return cai_error_set(err, CAI_ERR_INVALID, "unknown pooling \"%.32s\" (valid: mean, cls)",
							 name != NULL ? name : "");
	return CAI_OK;
}

cai_status
cai_encoder_embed(const cai_encoder_bundle *b, const char *text, size_t len, cai_pooling pooling, int max_length,
				  float *out, cai_error *err)
{
	const int	H = b->cfg.hidden_size;
	cai_wordpiece_piece *pieces = NULL;
	size_t		n = 0;
	cai_encoder_acts *acts = NULL;
	int32_t    *ids = NULL;
	cai_status	st;

	if (max_length == 0)
		max_length = b->cfg.max_position_embeddings;
	if (max_length < 3 || max_length > b->cfg.max_position_embeddings)
		return cai_error_set(err, CAI_ERR_INVALID, "max_length %d is outside 3 .. %d (the encoder's positions)",
							 max_length, (int) b->cfg.max_position_embeddings);
	if (pooling != CAI_POOL_MEAN && pooling != CAI_POOL_CLS)
		return cai_error_set(err, CAI_ERR_INVALID, "unknown pooling %d", (int) pooling);
	st = cai_wordpiece_encode(b->vocab, &b->wp, text != NULL ? text : "", text != NULL ? len : 0, NULL, 0,
							  (size_t) max_length, &pieces, &n, NULL, err);
	if (st == CAI_OK && (ids = cai_malloc(n * sizeof(int32_t))) == NULL)
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for an embedding");
	if (st == CAI_OK)
	{
		for (size_t i = 0; i < n; i++)
			ids[i] = pieces[i].id;
		st = cai_encoder_acts_create(&b->cfg, 1, (int) n, false, &acts, err);
	}
	if (st == CAI_OK)
		st = cai_encoder_forward(b->enc, acts, ids, NULL, NULL, false, NULL, err);
	if (st == CAI_OK)
	{
		const float *h = cai_encoder_output(acts);

		if (pooling == CAI_POOL_CLS)
			memcpy(out, h, (size_t) H * sizeof(float));
		else
		{
			/* sum in double, position by position, then divide (as a mean over the unpadded tokens) */
			for (int j = 0; j < H; j++)
			{
				double		s = 0.0;

				for (size_t t = 0; t < n; t++)
					s += h[t * (size_t) H + (size_t) j];
				out[j] = (float) (s / (double) n);
			}
		}
	}
	cai_encoder_acts_free(acts);
	cai_free(ids);
	cai_free(pieces);
	return st;
}
