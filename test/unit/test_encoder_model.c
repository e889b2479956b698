#define _GNU_SOURCE
/*
 * test_encoder_model.c: an encoder stored as model bytes (encoder_model.h):
 * write, load (copied and in place), the bundle of a loaded model, sentence
 * embeddings, and damaged bytes refused with a status.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cai/encoder_model.h"
#include "cai/model.h"
#include "check.h"
#include "encoder_fixtures.h"

static const char *const words[] = {"the", "film", "was", "good", "bad", "paris", "john", "went", "to"};

/* The embedding computed by hand from a forward pass of the bundle's encoder. */
static void
embed_by_hand(const cai_encoder_bundle *b, const char *text, cai_pooling pooling, float *out)
{
	cai_wordpiece_piece *p = NULL;
	size_t		n = 0;
	cai_encoder_acts *a = NULL;
	int32_t		ids[64];
	const float *h;
	const int	H = b->cfg.hidden_size;

	cai_wordpiece_encode(b->vocab, &b->wp, text, strlen(text), NULL, 0, 64, &p, &n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		ids[i] = p[i].id;
	cai_encoder_acts_create(&b->cfg, 1, (int) n, false, &a, NULL);
	cai_encoder_forward(b->enc, a, ids, NULL, NULL, false, NULL, NULL);
	h = cai_encoder_output(a);
	for (int j = 0; j < H; j++)
	{
		double		s = 0;

		for (size_t t = 0; t < (pooling == CAI_POOL_CLS ? 1 : n); t++)
			s += h[t * H + j];
		out[j] = (float) (s / (pooling == CAI_POOL_CLS ? 1 : (double) n));
	}
	cai_encoder_acts_free(a);
	cai_free(p);
}

/* Rewrite model bytes with the metadata replaced (meta non-NULL) or a tensor changed by fn. */
typedef void (*damage_fn) (cai_tensor *t, int n);

static void
rewrite(const uint8_t *bytes, size_t len, const char *meta, damage_fn fn, uint8_t **out, size_t *out_len)
{
	cai_model_file *mf = NULL;
	cai_tensor	t[2];
	uint8_t    *copies[2];

	*out = NULL;
	if (cai_format_read(bytes, len, &mf, NULL) != CAI_OK)
		return;
	for (int i = 0; i < mf->n_tensors && i < 2; i++)
	{
		t[i] = mf->tensors[i];
		copies[i] = malloc(t[i].nbytes + 1);
		memcpy(copies[i], t[i].data, t[i].nbytes);
		t[i].data = copies[i];
	}
	if (fn != NULL)
		fn(t, mf->n_tensors);
	cai_format_write(meta != NULL ? meta : mf->meta_json, t, mf->n_tensors, out, out_len, NULL);
	for (int i = 0; i < mf->n_tensors && i < 2; i++)
		free(copies[i]);
	cai_model_file_free(mf);
}

static void
shorten_params(cai_tensor *t, int n)
{
	t[0].shape[0] -= 1;
	t[0].nbytes -= sizeof(float);
}

static void
nan_param(cai_tensor *t, int n)
{
	((float *) t[0].data)[7] = NAN;
}

static void
drop_cls(cai_tensor *t, int n)
{
	/* "[CLS]" becomes "[CLX]": the vocabulary lacks a special token */
	char	   *p = memmem(t[1].data, t[1].nbytes, "[CLS]", 5);

	if (p != NULL)
		p[3] = 'X';
}

static void
vocab_garbage(cai_tensor *t, int n)
{
	/* a NUL byte inside a token */
	((char *) t[1].data)[2] = '\0';
}

/* Metadata of bytes with one key of the encoder section changed (path: "config.hidden_size", ...). */
static char *
meta_with(const uint8_t *bytes, size_t len, const char *sub, const char *key, json_object *val)
{
	cai_model_file *mf = NULL;
	json_object *root;
	json_object *sec;
	json_object *o;
	char	   *s;

	cai_format_read(bytes, len, &mf, NULL);
	root = json_tokener_parse(mf->meta_json);
	json_object_object_get_ex(root, "encoder", &sec);
	o = sec;
	if (sub != NULL)
		json_object_object_get_ex(sec, sub, &o);
	if (val == NULL)
		json_object_object_del(o, key);
	else
		json_object_object_add(o, key, val);
	s = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	cai_model_file_free(mf);
	return s;
}

static void
expect_refused(const uint8_t *bytes, size_t len, cai_status want, const char *needle, const char *what)
{
	cai_model  *m = NULL;
	cai_error	err = {0};
	cai_status	st;

	CHECK(bytes != NULL, "%s: rewritten", what);
	if (bytes == NULL)
		return;
	st = cai_model_load(bytes, len, false, true, &m, &err);
	CHECK(st == want && m == NULL && strstr(err.msg, needle) != NULL, "%s: status %d (want %d): %s", what, st, want,
		  err.msg);
	cai_model_free(m);
}

static void
test_round_trip(bool distil)
{
	cai_encoder_bundle *b = fixture_bundle(words, 9, 16, 2, 2, 24, 32, distil, 7);
	uint8_t    *bytes = NULL;
	uint8_t    *again = NULL;
	size_t		len = 0;
	size_t		len2 = 0;
	cai_error	err = {0};
	const char *const probe = "The film was GOOD, john went to Paris";

	CHECK(cai_encoder_model_write(b, "{\"source\": \"test\"}", &bytes, &len, &err) == CAI_OK, "write: %s", err.msg);
	CHECK(cai_encoder_model_write(b, "{\"source\": \"test\"}", &again, &len2, &err) == CAI_OK &&
		  len == len2 && memcmp(bytes, again, len) == 0, "the same bundle gives the same bytes");
	cai_free(again);
	CHECK(cai_encoder_model_write(b, "[1]", &again, &len2, &err) == CAI_ERR_INVALID && again == NULL,
		  "provenance must be an object");

	for (int view = 0; view < 2; view++)
	{
		uint8_t    *buf = view ? fixture_aligned_copy(bytes, len) : bytes;
		cai_model  *m = NULL;
		const cai_encoder_bundle *lb;
		float		got[16];
		float		want[16];
		float		probs[2];
		const char *tok[1] = {"x"};
		size_t		tlen[1] = {1};
		const char *tags[1];

		CHECK(cai_model_load(buf, len, view, true, &m, &err) == CAI_OK, "load (view %d): %s", view, err.msg);
		if (m == NULL)
			continue;
		CHECK(strcmp(cai_model_task(m), "encoder") == 0 && strcmp(cai_model_architecture(m), "bert") == 0 &&
			  cai_model_kind(m) == CAI_KIND_ENCODER && cai_model_n_labels(m) == 0, "an encoder model");
		lb = cai_model_encoder_bundle(m);
		CHECK(lb != NULL && lb->enc->n_params == b->enc->n_params &&
			  memcmp(lb->enc->params, b->enc->params, b->enc->n_params * sizeof(float)) == 0,
			  "the loaded encoder has the written weights");
		CHECK(lb != NULL && memcmp(&lb->cfg, &b->cfg, sizeof(b->cfg)) == 0, "and the config (family %d)", distil);
		CHECK(lb != NULL && lb->wp.lower_case == b->wp.lower_case && lb->wp.max_chars_per_word == b->wp.max_chars_per_word &&
			  cai_wordpiece_vocab_size(lb->vocab) == cai_wordpiece_vocab_size(b->vocab), "and the tokenizer");
		CHECK(view == 0 || (lb != NULL && (const uint8_t *) lb->enc->params >= buf &&
							(const uint8_t *) lb->enc->params < buf + len), "view: the weights are used in place");
		CHECK(cai_model_known_word(m, "paris", 5) && cai_model_known_word(m, "Paris", 5) &&
			  !cai_model_known_word(m, "parisx", 6), "known words: whole vocabulary entries");
		if (lb != NULL)
		{
			for (int p = 0; p < 2; p++)
			{
				CHECK(cai_encoder_embed(lb, probe, strlen(probe), (cai_pooling) p, 0, got, &err) == CAI_OK,
					  "embed: %s", err.msg);
				embed_by_hand(b, probe, (cai_pooling) p, want);
				CHECK_CLOSE(p ? "cls embedding" : "mean embedding", got, want, 16, 1e-6f, 1e-6f);
			}
			CHECK(cai_encoder_embed(lb, probe, strlen(probe), CAI_POOL_MEAN, 2, got, &err) == CAI_ERR_INVALID,
				  "max_length 2 is refused");
			CHECK(cai_encoder_embed(lb, probe, strlen(probe), CAI_POOL_MEAN, 33, got, &err) == CAI_ERR_INVALID &&
				  strstr(err.msg, "32"), "max_length beyond the positions is refused: %s", err.msg);
			CHECK(cai_encoder_embed(lb, "", 0, CAI_POOL_CLS, 0, got, &err) == CAI_OK, "an empty text embeds ([CLS] [SEP])");
		}
		CHECK(cai_model_classify(m, "x", 1, probs, &err) == CAI_ERR_INVALID && strstr(err.msg, "encoder"),
			  "classify names the task: %s", err.msg);
		CHECK(cai_model_tag(m, tok, tlen, 1, tags, NULL, &err) == CAI_ERR_INVALID && strstr(err.msg, "encoder"),
			  "tag names the task: %s", err.msg);
		CHECK(cai_model_memory(m) > 0, "memory");
		cai_model_free(m);
		if (view)
			free(buf);
	}

	/* damaged bytes */
	{
		uint8_t    *d = NULL;
		size_t		dl = 0;
		char	   *meta;
		cai_model  *m = NULL;
		cai_error	e2 = {0};

		rewrite(bytes, len, NULL, shorten_params, &d, &dl);
		expect_refused(d, dl, CAI_ERR_FORMAT, "parameters", "a slab one float short");
		cai_free(d);
		rewrite(bytes, len, NULL, nan_param, &d, &dl);
		expect_refused(d, dl, CAI_ERR_NUMERIC, "encoder.params", "a NaN weight");
		cai_free(d);
		rewrite(bytes, len, NULL, drop_cls, &d, &dl);
		expect_refused(d, dl, CAI_ERR_FORMAT, "[CLS]", "no [CLS] in the vocabulary");
		cai_free(d);
		rewrite(bytes, len, NULL, vocab_garbage, &d, &dl);
		expect_refused(d, dl, CAI_ERR_FORMAT, "encoder.vocab", "a NUL in the vocabulary");
		cai_free(d);
		meta = meta_with(bytes, len, "config", distil ? "dim" : "hidden_size", NULL);
		rewrite(bytes, len, meta, NULL, &d, &dl);
		expect_refused(d, dl, CAI_ERR_FORMAT, distil ? "dim" : "hidden_size", "a config size missing");
		free(meta);
		cai_free(d);
		meta = meta_with(bytes, len, "config", "max_position_embeddings", json_object_new_int(33));
		rewrite(bytes, len, meta, NULL, &d, &dl);
		expect_refused(d, dl, CAI_ERR_FORMAT, "parameters", "a config that disagrees with the slab");
		free(meta);
		cai_free(d);
		meta = meta_with(bytes, len, "tokenizer", "lower_case", json_object_new_string("yes"));
		rewrite(bytes, len, meta, NULL, &d, &dl);
		expect_refused(d, dl, CAI_ERR_FORMAT, "lower_case", "a tokenizer option of the wrong type");
		free(meta);
		cai_free(d);
		meta = meta_with(bytes, len, NULL, "config", NULL);
		rewrite(bytes, len, meta, NULL, &d, &dl);
		expect_refused(d, dl, CAI_ERR_FORMAT, "config", "no config");
		free(meta);
		cai_free(d);
		/* every truncation and a flipped byte anywhere: a status, never a crash */
		for (size_t cut = 0; cut < len; cut += 97)
		{
			CHECK(cai_model_load(bytes, cut, false, true, &m, &e2) != CAI_OK && m == NULL, "truncated at %zu", cut);
			if (m != NULL)
				cai_model_free(m);
		}
		for (size_t at = 0; at < len; at += 131)
		{
			bytes[at] ^= 0x5a;
			CHECK(cai_model_load(bytes, len, false, true, &m, &e2) != CAI_OK && m == NULL, "byte %zu flipped", at);
			cai_model_free(m);
			m = NULL;
			bytes[at] ^= 0x5a;
		}
	}
	cai_free(bytes);
	cai_encoder_bundle_free(b);
}

static void
test_registry(void)
{
	const cai_task *t = cai_task_find("encoder");
	const cai_arch *a = NULL;
	cai_options *o = NULL;
	cai_error	err = {0};
	cai_pooling p;

	CHECK(t != NULL && t->kind == CAI_KIND_ENCODER && cai_arch_find("encoder", "bert") != NULL,
		  "task encoder, architecture bert");
	CHECK(cai_task_parse_options(t, "{}", &a, &o, &err) == CAI_ERR_INVALID && o == NULL && strstr(err.msg, "imported"),
		  "encoders are not trained: %s", err.msg);
	CHECK(cai_pooling_parse("MEAN", &p, &err) == CAI_OK && p == CAI_POOL_MEAN &&
		  cai_pooling_parse("cls", &p, &err) == CAI_OK && p == CAI_POOL_CLS &&
		  cai_pooling_parse("max", &p, &err) == CAI_ERR_INVALID && strstr(err.msg, "mean"), "poolings");
}

int
main(void)
{
	test_registry();
	test_round_trip(false);
	test_round_trip(true);
	return check_summary("test_encoder_model");
}
