/*
 * encoder.c: the BERT-style encoder of encoder.h: config, parameter slab,
 * checkpoint loading, forward and backward passes.
 *
 * Layout of the parameter slab, in this order (BERT's names without the
 * "bert." prefix, as the tensor table gives them):
 *   embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm.{weight,bias},
 *   per layer: attention.self.{query,key,value}.{weight,bias}, attention.output.dense.{weight,bias},
 *   attention.output.LayerNorm.{weight,bias}, intermediate.dense.{weight,bias},
 *   output.dense.{weight,bias}, output.LayerNorm.{weight,bias}.
 */
#include "cai/encoder.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "cai/ops.h"
#include "cai/safetensors.h"
#include "gemm.h"
#include "modelutil.h"
#include "vectorize.h"

/* The matrix products on the core's own SGEMM where it wins (gemm.h). */
#define enc_linear_forward(...) cai_linear_forward_by(cai_sgemm_encoder, __VA_ARGS__)
#define enc_linear_backward(...) cai_linear_backward_by(cai_sgemm_encoder, __VA_ARGS__)
#include "encoder_ops.h"

/* <complex.h>, which cblas.h includes, defines I; here I is the intermediate size */
#undef I

#define ENC_EMB_TENSORS		5
#define ENC_LAYER_TENSORS	16

/* Parts attention_backward runs at once at most (each has its own scratch in the activations). */
#define ATT_BWD_PARTS		4

/* ---------------------------------------------------------------------
 * Config
 */

static cai_status
cfg_int(json_object *root, const char *key, int32_t max, int32_t *out, cai_error *err)
{
	json_object *v;
	int64_t		x;

	if (!json_object_object_get_ex(root, key, &v))
		return cai_error_set(err, CAI_ERR_FORMAT, "config lacks \"%s\"", key);
	if (!json_object_is_type(v, json_type_int))
		return cai_error_set(err, CAI_ERR_FORMAT, "config \"%s\" is not an integer", key);
	x = json_object_get_int64(v);
	if (x < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "config \"%s\" is %lld (must be at least 1)",
							 key, (long long) x);
	if (x > max)
		return cai_error_set(err, CAI_ERR_LIMIT, "config \"%s\" is %lld (at most %d supported)",
							 key, (long long) x, (int) max);
	*out = (int32_t) x;
	return CAI_OK;
}

/* An optional number; *out unchanged when absent. */
static cai_status
cfg_float(json_object *root, const char *key, float *out, cai_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(root, key, &v))
		return CAI_OK;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return cai_error_set(err, CAI_ERR_FORMAT, "config \"%s\" is not a number", key);
	*out = (float) json_object_get_double(v);
	return CAI_OK;
}

/* An optional string member that must equal one of want (NULL-terminated) when present. */
static cai_status
cfg_string_is(json_object *root, const char *key, const char *const *want, cai_error *err)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(root, key, &v))
		return CAI_OK;
	if (!json_object_is_type(v, json_type_string))
		return cai_error_set(err, CAI_ERR_FORMAT, "config \"%s\" is not a string", key);
	s = json_object_get_string(v);
	for (int i = 0; want[i] != NULL; i++)
		if (strcmp(s, want[i]) == 0)
			return CAI_OK;
	return cai_error_set(err, CAI_ERR_INVALID, "config \"%s\" is \"%.64s\" (supported: \"%s\")",
						 key, s, want[0]);
}

/* A family's config keys; sizes in the order of cai_encoder_config (NULL: not in the file). */
typedef struct cfg_keys
{
	const char *size[7];
	const char *hidden_dropout;
	const char *attention_dropout;
	const char *act;
	const char *eps;			/* NULL: fixed 1e-12 */
} cfg_keys;

static const cfg_keys bert_keys = {
	{"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
	"max_position_embeddings", "type_vocab_size"},
	"hidden_dropout_prob", "attention_probs_dropout_prob", "hidden_act", "layer_norm_eps",
};

static const cfg_keys distil_keys = {
	{"vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings", NULL},
	"dropout", "attention_dropout", "activation", NULL,
};

/* Limits of the sizes, in the order of cfg_keys.size. */
static const int32_t size_max[7] = {CAI_ENC_MAX_VOCAB, CAI_ENC_MAX_HIDDEN, CAI_ENC_MAX_LAYERS, CAI_ENC_MAX_HEADS,
CAI_ENC_MAX_INTERMEDIATE, CAI_ENC_MAX_POSITIONS, CAI_ENC_MAX_TYPES};

static const cfg_keys *
keys_of(const cai_encoder_config *c)
{
	return c->family == CAI_ENC_DISTILBERT ? &distil_keys : &bert_keys;
}

cai_status
cai_encoder_config_check(const cai_encoder_config *c, cai_error *err)
{
	const cfg_keys *k = keys_of(c);
	const int32_t v[7] = {c->vocab_size, c->hidden_size, c->num_hidden_layers, c->num_attention_heads,
	c->intermediate_size, c->max_position_embeddings, c->type_vocab_size};
	size_t		bytes;

	if (c->family != CAI_ENC_BERT && c->family != CAI_ENC_DISTILBERT)
		return cai_error_set(err, CAI_ERR_INVALID, "unknown encoder family %d", (int) c->family);
	for (int i = 0; i < 7; i++)
	{
		if (k->size[i] == NULL)
		{
			if (v[i] != 0)
				return cai_error_set(err, CAI_ERR_INVALID, "a DistilBERT encoder has no token types (type_vocab_size %d)",
									 (int) v[i]);
			continue;
		}
		if (v[i] < 1)
			return cai_error_set(err, CAI_ERR_INVALID, "config \"%s\" is %d (must be at least 1)", k->size[i], (int) v[i]);
		if (v[i] > size_max[i])
			return cai_error_set(err, CAI_ERR_LIMIT, "config \"%s\" is %d (at most %d supported)",
								 k->size[i], (int) v[i], (int) size_max[i]);
	}
	if (c->hidden_size % c->num_attention_heads != 0)
		return cai_error_set(err, CAI_ERR_INVALID, "config \"%s\" %d is not a multiple of \"%s\" %d",
							 k->size[1], (int) c->hidden_size, k->size[3], (int) c->num_attention_heads);
	if (!(c->layer_norm_eps > 0.0f) || !isfinite(c->layer_norm_eps))
		return cai_error_set(err, CAI_ERR_INVALID, "config \"layer_norm_eps\" must be positive");
	if (!(c->hidden_dropout_prob >= 0.0f && c->hidden_dropout_prob < 1.0f))
		return cai_error_set(err, CAI_ERR_INVALID, "config \"%s\" must be in [0, 1)", k->hidden_dropout);
	if (!(c->attention_probs_dropout_prob >= 0.0f && c->attention_probs_dropout_prob < 1.0f))
		return cai_error_set(err, CAI_ERR_INVALID, "config \"%s\" must be in [0, 1)", k->attention_dropout);
	if (!cai_encoder_param_bytes(c, true, &bytes))
		return cai_error_set(err, CAI_ERR_LIMIT, "config: the parameter count overflows");
	return CAI_OK;
}

cai_status
cai_encoder_config_from_json(const char *json, size_t len, cai_encoder_config *cfg, cai_error *err)
{
	static const char *const gelu[] = {"gelu", NULL};
	static const char *const absolute[] = {"absolute", NULL};
	cai_encoder_config c = {0};
	int32_t    *sizes[7] = {&c.vocab_size, &c.hidden_size, &c.num_hidden_layers, &c.num_attention_heads,
	&c.intermediate_size, &c.max_position_embeddings, &c.type_vocab_size};
	const cfg_keys *k;
	json_object *root;
	json_object *mt;
	char	   *text;
	cai_status	st = CAI_OK;

	if (memchr(json, '\0', len) != NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "config contains a NUL byte");
	if ((text = cai_strndup(json, len)) == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory reading the config");
	root = cai_json_parse_object(text);
	cai_free(text);
	if (root == NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "config is not a JSON object");

	if (json_object_object_get_ex(root, "model_type", &mt))
	{
		if (!json_object_is_type(mt, json_type_string))
			st = cai_error_set(err, CAI_ERR_FORMAT, "config \"model_type\" is not a string");
		else if (strcmp(json_object_get_string(mt), "distilbert") == 0)
			c.family = CAI_ENC_DISTILBERT;
		else if (strcmp(json_object_get_string(mt), "bert") != 0)
			st = cai_error_set(err, CAI_ERR_INVALID, "config \"model_type\" is \"%.64s\" (supported: \"bert\", \"distilbert\")",
							   json_object_get_string(mt));
	}
	k = keys_of(&c);
	c.layer_norm_eps = 1e-12f;
	c.hidden_dropout_prob = 0.1f;
	c.attention_probs_dropout_prob = 0.1f;
	for (int i = 0; i < 7 && st == CAI_OK; i++)
		if (k->size[i] != NULL)
			st = cfg_int(root, k->size[i], size_max[i], sizes[i], err);
	if (st == CAI_OK && k->eps != NULL)
		st = cfg_float(root, k->eps, &c.layer_norm_eps, err);
	if (st == CAI_OK)
		st = cfg_float(root, k->hidden_dropout, &c.hidden_dropout_prob, err);
	if (st == CAI_OK)
		st = cfg_float(root, k->attention_dropout, &c.attention_probs_dropout_prob, err);
	if (st == CAI_OK)
		st = cfg_string_is(root, k->act, gelu, err);
	if (st == CAI_OK && c.family == CAI_ENC_BERT)
		st = cfg_string_is(root, "position_embedding_type", absolute, err);
	json_object_put(root);
	if (st != CAI_OK || (st = cai_encoder_config_check(&c, err)) != CAI_OK)
		return st;
	*cfg = c;
	return CAI_OK;
}

/* ---------------------------------------------------------------------
 * The tensor table and the slab
 */

static const char *const layer_names[ENC_LAYER_TENSORS] = {
	"attention.self.query.weight", "attention.self.query.bias",
	"attention.self.key.weight", "attention.self.key.bias",
	"attention.self.value.weight", "attention.self.value.bias",
	"attention.output.dense.weight", "attention.output.dense.bias",
	"attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
	"intermediate.dense.weight", "intermediate.dense.bias",
	"output.dense.weight", "output.dense.bias",
	"output.LayerNorm.weight", "output.LayerNorm.bias",
};

/* Shape of layer tensor j: rows (0 for a vector) and columns. */
static void
layer_shape(const cai_encoder_config *c, int j, int64_t *rows, int64_t *cols)
{
	const int64_t H = c->hidden_size;
	const int64_t I = c->intermediate_size;
	const bool	vec = (j % 2) == 1 || j == 8 || j == 14;

	switch (j)
	{
		case 10:				/* intermediate.dense.weight */
			*rows = I;
			*cols = H;
			break;
		case 11:
			*rows = 0;
			*cols = I;
			break;
		case 12:				/* output.dense.weight */
			*rows = H;
			*cols = I;
			break;
		default:
			*rows = vec ? 0 : H;
			*cols = H;
	}
}

static int
n_tensors_of(const cai_encoder_config *c)
{
	return ENC_EMB_TENSORS + ENC_LAYER_TENSORS * c->num_hidden_layers;
}

/* Fill tab (n_tensors_of entries) and the slab size; false on overflow. */
static bool
build_table(const cai_encoder_config *c, cai_encoder_tensor *tab, size_t *n_params)
{
	/* no token types (DistilBERT): one zero row, never loaded nor trained, so that segment 0 reads zeros */
	const int64_t emb_rows[3] = {c->vocab_size, c->max_position_embeddings, c->type_vocab_size > 0 ? c->type_vocab_size : 1};
	static const char *const emb_names[ENC_EMB_TENSORS] = {
		"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
		"embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
	};
	size_t		off = 0;

	for (int i = 0; i < n_tensors_of(c); i++)
	{
		cai_encoder_tensor *t = &tab[i];
		int64_t		rows;
		int64_t		cols;
		size_t		n;

		if (i < ENC_EMB_TENSORS)
		{
			snprintf(t->name, sizeof(t->name), "%s", emb_names[i]);
			rows = i < 3 ? emb_rows[i] : 0;
			cols = c->hidden_size;
		}
		else
		{
			int			l = (i - ENC_EMB_TENSORS) / ENC_LAYER_TENSORS;
			int			j = (i - ENC_EMB_TENSORS) % ENC_LAYER_TENSORS;

			snprintf(t->name, sizeof(t->name), "encoder.layer.%d.%s", l, layer_names[j]);
			layer_shape(c, j, &rows, &cols);
		}
		t->ndim = rows > 0 ? 2 : 1;
		t->shape[0] = rows > 0 ? rows : cols;
		t->shape[1] = rows > 0 ? cols : 0;
		if (!cai_size_mul((size_t) (rows > 0 ? rows : 1), (size_t) cols, &n))
			return false;
		t->offset = off;
		t->numel = n;
		if (!cai_size_add(off, n, &off))
			return false;
	}
	*n_params = off;
	return true;
}

/* Views of a slab laid out by tab; layers has L entries. */
static void
make_views(const cai_encoder_config *c, const cai_encoder_tensor *tab, float *slab,
		   cai_encoder_layer *layers, cai_encoder_weights *w)
{
	w->word = slab + tab[0].offset;
	w->position = slab + tab[1].offset;
	w->token_type = slab + tab[2].offset;
	w->emb_ln_g = slab + tab[3].offset;
	w->emb_ln_b = slab + tab[4].offset;
	w->layers = layers;
	for (int l = 0; l < c->num_hidden_layers; l++)
	{
		const cai_encoder_tensor *t = tab + ENC_EMB_TENSORS + ENC_LAYER_TENSORS * l;
		float	  **v[ENC_LAYER_TENSORS] = {
			&layers[l].q_w, &layers[l].q_b, &layers[l].k_w, &layers[l].k_b,
			&layers[l].v_w, &layers[l].v_b, &layers[l].ao_w, &layers[l].ao_b,
			&layers[l].ln1_g, &layers[l].ln1_b, &layers[l].ff1_w, &layers[l].ff1_b,
			&layers[l].ff2_w, &layers[l].ff2_b, &layers[l].ln2_g, &layers[l].ln2_b,
		};

		for (int j = 0; j < ENC_LAYER_TENSORS; j++)
			*v[j] = slab + t[j].offset;
	}
}

bool
cai_encoder_param_bytes(const cai_encoder_config *c, bool with_grads, size_t *bytes)
{
	size_t		n = 0;
	size_t		b;
	size_t		meta;
	int64_t		H = c->hidden_size;
	int64_t		I = c->intermediate_size;
	int64_t		per_layer;
	int64_t		total;

	if (c->num_hidden_layers < 1 || c->num_hidden_layers > CAI_ENC_MAX_LAYERS)
		return false;
	/* the sizes are bounded by the limits, so int64 does not overflow here */
	per_layer = 4 * H * H + 4 * H + 2 * H * I + I + H + 4 * H;
	total = ((int64_t) c->vocab_size + c->max_position_embeddings + (c->type_vocab_size > 0 ? c->type_vocab_size : 1) + 2) * H
		+ per_layer * c->num_hidden_layers;
	n = (size_t) total;
	if (!cai_size_mul(n, sizeof(float) * (with_grads ? 2 : 1), &b))
		return false;
	meta = sizeof(cai_encoder) + (size_t) n_tensors_of(c) * sizeof(cai_encoder_tensor)
		+ (size_t) c->num_hidden_layers * sizeof(cai_encoder_layer) * (with_grads ? 2 : 1)
		+ (with_grads ? sizeof(cai_encoder_grads) : 0);
	return cai_size_add(b, meta, bytes);
}

void
cai_encoder_free(cai_encoder *enc)
{
	if (enc == NULL)
		return;
	cai_free(enc->tensors);
	if (!enc->borrowed)
		cai_free(enc->params);
	cai_free(enc->w.layers);
	cai_free(enc);
}

/* An encoder of cfg over params (NULL: a zeroed slab of its own); see cai_encoder_view. */
static cai_status
encoder_make(const cai_encoder_config *cfg, const float *params, size_t n_params, cai_encoder **out,
			 cai_error *err)
{
	cai_encoder *enc;
	cai_status	st;
	cai_encoder_layer *layers;

	*out = NULL;
	if ((st = cai_encoder_config_check(cfg, err)) != CAI_OK)
		return st;
	if ((enc = cai_calloc(1, sizeof(*enc))) == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the encoder");
	enc->cfg = *cfg;
	enc->n_tensors = n_tensors_of(cfg);
	enc->tensors = cai_calloc((size_t) enc->n_tensors, sizeof(cai_encoder_tensor));
	layers = cai_calloc((size_t) cfg->num_hidden_layers, sizeof(cai_encoder_layer));
	if (enc->tensors == NULL || layers == NULL || !build_table(cfg, enc->tensors, &enc->n_params))
	{
		cai_free(layers);
		cai_encoder_free(enc);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the encoder's parameters");
	}
	if (params != NULL)
	{
		if (n_params != enc->n_params)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "the encoder has %zu parameters, its config needs %zu",
							   n_params, enc->n_params);
			cai_free(layers);
			cai_encoder_free(enc);
			return st;
		}
		enc->borrowed = true;
		enc->params = (float *) params; /* never written: see cai_encoder_view */
	}
	else if ((enc->params = cai_calloc(enc->n_params, sizeof(float))) == NULL)
	{
		cai_free(layers);
		cai_encoder_free(enc);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the encoder's parameters");
	}
	make_views(cfg, enc->tensors, enc->params, layers, &enc->w);
	*out = enc;
	return CAI_OK;
}

cai_status
cai_encoder_create(const cai_encoder_config *cfg, cai_encoder **out, cai_error *err)
{
	return encoder_make(cfg, NULL, 0, out, err);
}

cai_status
cai_encoder_view(const cai_encoder_config *cfg, const float *params, size_t n_params, cai_encoder **out,
				 cai_error *err)
{
	if (params == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "no parameters to view");
	return encoder_make(cfg, params, n_params, out, err);
}

void
cai_encoder_init_random(cai_encoder *enc, float std, cai_rng *rng)
{
	for (int i = 0; i < enc->n_tensors; i++)
	{
		const cai_encoder_tensor *t = &enc->tensors[i];
		float	   *x = enc->params + t->offset;
		bool		gain = strstr(t->name, "LayerNorm.weight") != NULL;

		if (i == 2 && enc->cfg.type_vocab_size == 0)
		{
			/* no token types: the row segment 0 reads stays zero */
			memset(x, 0, t->numel * sizeof(float));
			continue;
		}
		for (size_t j = 0; j < t->numel; j++)
			x[j] = t->ndim == 2 ? std * cai_rng_normal(rng) : (gain ? 1.0f : 0.0f);
	}
}

cai_status
cai_encoder_grads_create(const cai_encoder *enc, cai_encoder_grads **out, cai_error *err)
{
	cai_encoder_grads *g = cai_calloc(1, sizeof(*g));
	cai_encoder_layer *layers = cai_calloc((size_t) enc->cfg.num_hidden_layers, sizeof(cai_encoder_layer));

	*out = NULL;
	if (g == NULL || layers == NULL || (g->data = cai_calloc(enc->n_params, sizeof(float))) == NULL)
	{
		cai_free(layers);
		cai_free(g);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the encoder's gradients");
	}
	g->n_params = enc->n_params;
	make_views(&enc->cfg, enc->tensors, g->data, layers, &g->w);
	*out = g;
	return CAI_OK;
}

void
cai_encoder_grads_zero(cai_encoder_grads *g)
{
	memset(g->data, 0, g->n_params * sizeof(float));
}

void
cai_encoder_grads_free(cai_encoder_grads *g)
{
	if (g == NULL)
		return;
	cai_free(g->data);
	cai_free(g->w.layers);
	cai_free(g);
}

/* ---------------------------------------------------------------------
 * Loading a checkpoint
 */

/* The head tensors a BERT or DistilBERT checkpoint may hold besides the encoder (stripped of the prefix). */
static bool
ignored_name(const char *n)
{
	static const char *const prefixes[] = {"pooler.", "cls.", "classifier.", "pre_classifier.", "qa_outputs.",
		"vocab_transform.", "vocab_layer_norm.", "vocab_projector.", NULL};

	if (strcmp(n, "embeddings.position_ids") == 0 || strcmp(n, "embeddings.token_type_ids") == 0)
		return true;
	for (int i = 0; prefixes[i] != NULL; i++)
		if (strncmp(n, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* DistilBERT's names of a layer's tensors, in layer_names' order. */
static const char *const distil_layer_names[ENC_LAYER_TENSORS] = {
	"attention.q_lin.weight", "attention.q_lin.bias",
	"attention.k_lin.weight", "attention.k_lin.bias",
	"attention.v_lin.weight", "attention.v_lin.bias",
	"attention.out_lin.weight", "attention.out_lin.bias",
	"sa_layer_norm.weight", "sa_layer_norm.bias",
	"ffn.lin1.weight", "ffn.lin1.bias",
	"ffn.lin2.weight", "ffn.lin2.bias",
	"output_layer_norm.weight", "output_layer_norm.bias",
};

/*
 * The name of tensor i in a checkpoint of enc's family, without prefix,
 * into buf; false if the family's checkpoints do not hold it (DistilBERT's
 * token types).
 */
static bool
checkpoint_name(const cai_encoder *enc, int i, char *buf, size_t size)
{
	if (enc->cfg.family != CAI_ENC_DISTILBERT || i < ENC_EMB_TENSORS)
	{
		snprintf(buf, size, "%s", enc->tensors[i].name);
		return enc->cfg.type_vocab_size > 0 || i != 2;
	}
	i -= ENC_EMB_TENSORS;
	snprintf(buf, size, "transformer.layer.%d.%s", i / ENC_LAYER_TENSORS, distil_layer_names[i % ENC_LAYER_TENSORS]);
	return true;
}

/* name with a final ".weight"/".bias" of a LayerNorm renamed ".gamma"/".beta" into buf; false if none. */
static bool
legacy_name(const char *name, char *buf, size_t size)
{
	size_t		n = strlen(name);

	if (strstr(name, "LayerNorm.") == NULL)
		return false;
	if (n > 7 && strcmp(name + n - 7, ".weight") == 0)
		return snprintf(buf, size, "%.*s.gamma", (int) (n - 7), name) < (int) size;
	if (n > 5 && strcmp(name + n - 5, ".bias") == 0)
		return snprintf(buf, size, "%.*s.beta", (int) (n - 5), name) < (int) size;
	return false;
}

/* Copy one checkpoint tensor into its slab place after checking dtype, shape and values. */
static cai_status
load_tensor(const cai_st_tensor *s, const cai_encoder_tensor *t, float *dst, cai_error *err)
{
	cai_status	st;

	if (s->dtype != CAI_ST_F32 && s->dtype != CAI_ST_F16 && s->dtype != CAI_ST_BF16)
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.120s\" has dtype %s (F32, F16 or BF16 expected)",
							 s->name, cai_st_dtype_name(s->dtype));
	if (s->ndim != t->ndim || s->shape[0] != t->shape[0] || (t->ndim == 2 && s->shape[1] != t->shape[1]))
	{
		char		got[96] = "[";
		size_t		k = 1;

		for (int d = 0; d < s->ndim && k < sizeof(got) - 24; d++)
			k += (size_t) snprintf(got + k, sizeof(got) - k, "%s%lld", d ? ", " : "", (long long) s->shape[d]);
		snprintf(got + k, sizeof(got) - k, "]");
		if (t->ndim == 2)
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "tensor \"%.120s\" has shape %s, the config needs [%lld, %lld]", s->name, got,
								 (long long) t->shape[0], (long long) t->shape[1]);
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.120s\" has shape %s, the config needs [%lld]",
							 s->name, got, (long long) t->shape[0]);
	}
	if ((st = cai_safetensors_to_f32(s, dst, t->numel, err)) != CAI_OK)
		return st;
	for (size_t i = 0; i < t->numel; i++)
		if (!isfinite(dst[i]))
			return cai_error_set(err, CAI_ERR_NUMERIC, "tensor \"%.120s\" holds a NaN or infinity at %zu",
								 s->name, i);
	return CAI_OK;
}

/* Whether name (without prefix) is tensor i's in a checkpoint of enc's family, under either LayerNorm name. */
static bool
is_tensor(const cai_encoder *enc, int i, const char *name)
{
	char		own[128];
	char		alt[128];

	return checkpoint_name(enc, i, own, sizeof(own)) &&
		(strcmp(name, own) == 0 || (legacy_name(own, alt, sizeof(alt)) && strcmp(name, alt) == 0));
}

cai_status
cai_encoder_from_safetensors(const cai_encoder_config *cfg, const void *buf, size_t len,
							 cai_encoder **out, cai_error *err)
{
	cai_safetensors *st = NULL;
	cai_encoder *enc = NULL;
	const char *prefix;
	size_t		plen;
	size_t		own = 0;
	size_t		expected = 0;
	char		base[128];
	char		name[160];
	char		alt[160];
	cai_status	rc;

	*out = NULL;
	if ((rc = cai_encoder_create(cfg, &enc, err)) != CAI_OK)
		return rc;
	if ((rc = cai_safetensors_parse(buf, len, &st, err)) != CAI_OK)
		goto done;
	prefix = cfg->family == CAI_ENC_DISTILBERT ? "distilbert." : "bert.";
	snprintf(name, sizeof(name), "%sembeddings.word_embeddings.weight", prefix);
	if (cai_safetensors_find(st, name) == NULL)
		prefix = "";
	plen = strlen(prefix);

	for (int i = 0; i < enc->n_tensors; i++)
	{
		const cai_encoder_tensor *t = &enc->tensors[i];
		const cai_st_tensor *s;
		const cai_st_tensor *s2 = NULL;

		if (!checkpoint_name(enc, i, base, sizeof(base)))
			continue;
		expected++;
		snprintf(name, sizeof(name), "%s%s", prefix, base);
		s = cai_safetensors_find(st, name);
		if (legacy_name(name, alt, sizeof(alt)))
			s2 = cai_safetensors_find(st, alt);
		if (s != NULL && s2 != NULL)
		{
			rc = cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" is given twice (also as \"%s\")", name, alt);
			goto done;
		}
		if (s == NULL && (s = s2) == NULL)
		{
			rc = cai_error_set(err, CAI_ERR_FORMAT, "checkpoint lacks tensor \"%s\"", name);
			goto done;
		}
		if ((rc = load_tensor(s, t, enc->params + t->offset, err)) != CAI_OK)
			goto done;
	}

	/* every tensor of the encoder's own namespace must have been used: name the first extra one */
	for (size_t i = 0; i < cai_safetensors_count(st); i++)
	{
		const char *n = cai_safetensors_tensor(st, i)->name;

		if (strncmp(n, prefix, plen) != 0 || ignored_name(n + plen))
			continue;
		own++;
	}
	if (own != expected)
	{
		for (size_t i = 0; i < cai_safetensors_count(st); i++)
		{
			const char *n = cai_safetensors_tensor(st, i)->name;
			bool		known = false;

			if (strncmp(n, prefix, plen) != 0 || ignored_name(n + plen))
				continue;
			for (int j = 0; j < enc->n_tensors && !known; j++)
				known = is_tensor(enc, j, n + plen);
			if (!known)
			{
				rc = cai_error_set(err, CAI_ERR_FORMAT,
								   "checkpoint holds tensor \"%.120s\", which a %s encoder of this config does not have",
								   n, cfg->family == CAI_ENC_DISTILBERT ? "DistilBERT" : "BERT");
				goto done;
			}
		}
		rc = cai_error_set(err, CAI_ERR_INTERNAL, "checkpoint tensor count differs. Please report a bug");
		goto done;
	}
	rc = CAI_OK;
done:
	cai_safetensors_free(st);
	if (rc != CAI_OK)
		cai_encoder_free(enc);
	else
		*out = enc;
	return rc;
}

/* ---------------------------------------------------------------------
 * Activations
 */

typedef struct enc_layer_acts
{
	float	   *q;				/* (N, H) */
	float	   *k;				/* (N, H) */
	float	   *v;				/* (N, H) */
	float	   *probs;			/* (B, NH, T, T) softmax */
	float	   *att;			/* (B, NH, T, T) after dropout (for_backward only) */
	uint8_t    *att_mask;		/* (B, NH, T, T) (for_backward only) */
	float	   *ctx;			/* (N, H) */
	float	   *ao;				/* (N, H) attention output after dropout */
	uint8_t    *ao_mask;		/* (N, H) (for_backward only) */
	float	   *res1;			/* (N, H) x + ao */
	float	   *mean1;			/* (N) */
	float	   *rstd1;			/* (N) */
	float	   *h1;				/* (N, H) LN1(res1) */
	float	   *ff1;			/* (N, I) before gelu */
	float	   *gelu;			/* (N, I) */
	float	   *ff2;			/* (N, H) after dropout */
	uint8_t    *ff_mask;		/* (N, H) (for_backward only) */
	float	   *res2;			/* (N, H) h1 + ff2 */
	float	   *mean2;			/* (N) */
	float	   *rstd2;			/* (N) */
	float	   *out;			/* (N, H) LN2(res2): the next layer's input */
} enc_layer_acts;

struct cai_encoder_acts
{
	int			B;
	int			T;
	int			H;
	int			I;
	int			NH;
	int			L;
	bool		for_backward;
	bool		training;		/* of the last forward pass */
	float		p_hidden;		/* dropout of the last forward pass (0 when not training) */
	float		p_ao;			/* on the attention output: p_hidden, 0 for DistilBERT */
	float		p_att;
	float	   *fslab;
	uint8_t    *bslab;
	float	   *emb;			/* (N, H) word + position + token type */
	float	   *emb_mean;		/* (N) */
	float	   *emb_rstd;		/* (N) */
	float	   *emb_ln;			/* (N, H) */
	uint8_t    *emb_mask;		/* (N, H) (for_backward only) */
	float	   *x0;				/* (N, H) after dropout: the first layer's input */
	enc_layer_acts *layers;		/* (L) */
	/* backward scratch (for_backward only) */
	float	   *dx;				/* (N, H) */
	float	   *dres;			/* (N, H) */
	float	   *dh;				/* (N, H) */
	float	   *dtmp;			/* (N, H) */
	float	   *dctx;			/* (N, H) */
	float	   *dq;				/* (N, H) */
	float	   *dk;				/* (N, H) */
	float	   *dv;				/* (N, H) */
	float	   *dff;			/* (N, I) */
	float	   *dgelu;			/* (N, I) */
	float	   *datt;			/* (ATT_BWD_PARTS, T, T) */
	float	   *dscore;			/* (ATT_BWD_PARTS, T, T) */
	float	   *dembed;			/* (N, H) */
};

/* Carves float and byte arrays out of two slabs; with NULL bases it only counts. */
typedef struct enc_plan
{
	float	   *fbase;
	uint8_t    *bbase;
	size_t		floats;
	size_t		bytes;
	bool		ok;
} enc_plan;

/* Take a * b elements at *cursor (p->floats or p->bytes); false on overflow, then and ever after. */
static bool
plan_take(enc_plan *p, size_t *cursor, size_t a, size_t b, size_t *at)
{
	size_t		n;

	*at = *cursor;
	if (!cai_size_mul(a, b, &n) || !cai_size_add(*cursor, n, cursor))
		p->ok = false;
	return p->ok;
}

static float *
plan_f(enc_plan *p, size_t a, size_t b)
{
	size_t		at;

	return plan_take(p, &p->floats, a, b, &at) && p->fbase != NULL ? p->fbase + at : NULL;
}

static uint8_t *
plan_b(enc_plan *p, size_t a, size_t b)
{
	size_t		at;

	return plan_take(p, &p->bytes, a, b, &at) && p->bbase != NULL ? p->bbase + at : NULL;
}

/* Lay out a->fields (a->B ... set) in the plan's slabs; with a->layers NULL only count. */
static void
plan_acts(enc_plan *p, cai_encoder_acts *a)
{
	const size_t N = (size_t) a->B * (size_t) a->T;
	const size_t H = (size_t) a->H;
	const size_t I = (size_t) a->I;
	size_t		att;
	const bool	bw = a->for_backward;

	if (!cai_size_mul((size_t) a->B * (size_t) a->NH, (size_t) a->T * (size_t) a->T, &att))
	{
		p->ok = false;
		return;
	}
	a->emb = plan_f(p, N, H);
	a->emb_mean = plan_f(p, N, 1);
	a->emb_rstd = plan_f(p, N, 1);
	a->emb_ln = plan_f(p, N, H);
	a->emb_mask = bw ? plan_b(p, N, H) : NULL;
	a->x0 = plan_f(p, N, H);
	for (int l = 0; l < a->L; l++)
	{
		enc_layer_acts scratch;
		enc_layer_acts *la = a->layers != NULL ? &a->layers[l] : &scratch;

		/* inference keeps two layers' activations: layer l reads layer l - 1's output and overwrites l - 2's */
		if (!bw && l >= 2)
		{
			if (a->layers != NULL)
				*la = a->layers[l - 2];
			continue;
		}
		la->q = plan_f(p, N, H);
		la->k = plan_f(p, N, H);
		la->v = plan_f(p, N, H);
		la->probs = plan_f(p, att, 1);
		la->att = bw ? plan_f(p, att, 1) : NULL;
		la->att_mask = bw ? plan_b(p, att, 1) : NULL;
		la->ctx = plan_f(p, N, H);
		la->ao = plan_f(p, N, H);
		la->ao_mask = bw ? plan_b(p, N, H) : NULL;
		la->res1 = plan_f(p, N, H);
		la->mean1 = plan_f(p, N, 1);
		la->rstd1 = plan_f(p, N, 1);
		la->h1 = plan_f(p, N, H);
		la->ff1 = plan_f(p, N, I);
		la->gelu = plan_f(p, N, I);
		la->ff2 = plan_f(p, N, H);
		la->ff_mask = bw ? plan_b(p, N, H) : NULL;
		la->res2 = plan_f(p, N, H);
		la->mean2 = plan_f(p, N, 1);
		la->rstd2 = plan_f(p, N, 1);
		la->out = plan_f(p, N, H);
	}
	if (bw)
	{
		a->dx = plan_f(p, N, H);
		a->dres = plan_f(p, N, H);
		a->dh = plan_f(p, N, H);
		a->dtmp = plan_f(p, N, H);
		a->dctx = plan_f(p, N, H);
		a->dq = plan_f(p, N, H);
		a->dk = plan_f(p, N, H);
		a->dv = plan_f(p, N, H);
		a->dff = plan_f(p, N, I);
		a->dgelu = plan_f(p, N, I);
		/* one (T, T) pair for each part attention_backward can run at once */
		a->datt = plan_f(p, (size_t) ATT_BWD_PARTS * a->T, (size_t) a->T);
		a->dscore = plan_f(p, (size_t) ATT_BWD_PARTS * a->T, (size_t) a->T);
		a->dembed = plan_f(p, N, H);
	}
}

static void
acts_header(const cai_encoder_config *c, int B, int T, bool for_backward, cai_encoder_acts *a)
{
	memset(a, 0, sizeof(*a));
	a->B = B;
	a->T = T;
	a->H = c->hidden_size;
	a->I = c->intermediate_size;
	a->NH = c->num_attention_heads;
	a->L = c->num_hidden_layers;
	a->for_backward = for_backward;
}

bool
cai_encoder_act_bytes(const cai_encoder_config *c, int B, int T, bool for_backward, size_t *bytes)
{
	cai_encoder_acts a;
	enc_plan	p = {.ok = true};
	size_t		fb;
	size_t		lb;

	if (B < 1 || T < 1 || c->num_hidden_layers < 1 || c->num_hidden_layers > CAI_ENC_MAX_LAYERS)
		return false;
	acts_header(c, B, T, for_backward, &a);
	plan_acts(&p, &a);
	lb = (size_t) c->num_hidden_layers * sizeof(enc_layer_acts) + sizeof(cai_encoder_acts);
	return p.ok && cai_size_mul(p.floats, sizeof(float), &fb) && cai_size_add(fb, p.bytes, bytes) &&
		cai_size_add(*bytes, lb, bytes);
}

cai_status
cai_encoder_memory_check(const cai_encoder_config *cfg, int B, int T, bool for_backward,
						 size_t limit, size_t *bytes, cai_error *err)
{
	size_t		pb;
	size_t		ab;
	size_t		total;
	cai_status	st;

	if ((st = cai_encoder_config_check(cfg, err)) != CAI_OK)
		return st;
	if (B < 1 || T < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "batch of %d sequences of %d positions", B, T);
	if (T > cfg->max_position_embeddings)
		return cai_error_set(err, CAI_ERR_INVALID, "sequences of %d positions exceed max_position_embeddings %d",
							 T, (int) cfg->max_position_embeddings);
	/* the layers take N = B * T rows as an int, as BLAS does, and their outputs hold N * max(H, I) floats */
	if ((int64_t) B * T * (cfg->hidden_size > cfg->intermediate_size ? cfg->hidden_size : cfg->intermediate_size)
		> INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "a batch of %d sequences of %d positions is too large", B, T);
	if (!cai_encoder_param_bytes(cfg, for_backward, &pb) || !cai_encoder_act_bytes(cfg, B, T, for_backward, &ab) ||
		!cai_size_add(pb, ab, &total))
		return cai_error_set(err, CAI_ERR_LIMIT, "the encoder's memory for %d x %d overflows", B, T);
	if (bytes != NULL)
		*bytes = total;
	if (limit > 0 && total > limit)
		return cai_error_set(err, CAI_ERR_LIMIT,
							 "the encoder needs %zu MB (parameters %zu MB, activations %zu MB for %d x %d), more than the %zu MB allowed",
							 total >> 20, pb >> 20, ab >> 20, B, T, limit >> 20);
	return CAI_OK;
}

void
cai_encoder_acts_free(cai_encoder_acts *a)
{
	if (a == NULL)
		return;
	cai_free(a->fslab);
	cai_free(a->bslab);
	cai_free(a->layers);
	cai_free(a);
}

cai_status
cai_encoder_acts_create(const cai_encoder_config *cfg, int B, int T, bool for_backward,
						cai_encoder_acts **out, cai_error *err)
{
	cai_encoder_acts *a;
	enc_plan	p = {.ok = true};
	cai_status	st;

	*out = NULL;
	if ((st = cai_encoder_memory_check(cfg, B, T, for_backward, 0, NULL, err)) != CAI_OK)
		return st;
	if ((a = cai_calloc(1, sizeof(*a))) == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the encoder's activations");
	acts_header(cfg, B, T, for_backward, a);
	if ((a->layers = cai_calloc((size_t) a->L, sizeof(enc_layer_acts))) == NULL)
		goto nomem;
	plan_acts(&p, a);
	if (!p.ok)
		goto nomem;
	p.fbase = cai_calloc(p.floats, sizeof(float));
	p.bbase = p.bytes > 0 ? cai_calloc(p.bytes, 1) : NULL;
	a->fslab = p.fbase;
	a->bslab = p.bbase;
	if (p.fbase == NULL || (p.bytes > 0 && p.bbase == NULL))
		goto nomem;
	p.floats = 0;
	p.bytes = 0;
	plan_acts(&p, a);
	*out = a;
	return CAI_OK;
nomem:
	cai_encoder_acts_free(a);
	return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the encoder's activations (%d x %d)", B, T);
}

const float *
cai_encoder_output(const cai_encoder_acts *a)
{
	return a->layers[a->L - 1].out;
}

const float *
cai_encoder_input_grad(const cai_encoder_acts *a)
{
	return a->dembed;
}

/* ---------------------------------------------------------------------
 * Layers of the encoder
 */

/* out (N, C) = (x - mean) * rstd * g + b per row; mean and rstd (N) kept. */
static void
layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *g, const float *b,
				  int N, int C, float eps)
{
	for (int r = 0; r < N; r++)
	{
		const float *xr = x + (size_t) r * C;
		float	   *o = out + (size_t) r * C;
		double		m = 0.0;
		double		v = 0.0;
		float		s;

		for (int i = 0; i < C; i++)
			m += xr[i];
		m /= C;
		for (int i = 0; i < C; i++)
			v += (xr[i] - m) * (xr[i] - m);
		v /= C;
		s = (float) (1.0 / sqrt(v + eps));
		for (int i = 0; i < C; i++)
			o[i] = ((xr[i] - (float) m) * s) * g[i] + b[i];
		mean[r] = (float) m;
		rstd[r] = s;
	}
}

/* dx += d LN / dx . dout; dg, db += their parts. */
static void
layernorm_backward(float *dx, float *dg, float *db, const float *dout, const float *x, const float *mean,
				   const float *rstd, const float *g, int N, int C)
{
	for (int r = 0; r < N; r++)
	{
		const float *xr = x + (size_t) r * C;
		const float *dor = dout + (size_t) r * C;
		float	   *dxr = dx + (size_t) r * C;
		double		mean_d = 0.0;
		double		mean_dx = 0.0;

		for (int i = 0; i < C; i++)
		{
			float		xhat = (xr[i] - mean[r]) * rstd[r];
			float		dn = dor[i] * g[i];

			mean_d += dn;
			mean_dx += dn * xhat;
			dg[i] += dor[i] * xhat;
			db[i] += dor[i];
		}
		mean_d /= C;
		mean_dx /= C;
		for (int i = 0; i < C; i++)
		{
			float		xhat = (xr[i] - mean[r]) * rstd[r];
			float		dn = dor[i] * g[i];

			dxr[i] += rstd[r] * (float) (dn - mean_d - xhat * mean_dx);
		}
	}
}

#define INV_SQRT2	0.70710678118654752440
#define INV_SQRT2PI	0.39894228040143267794

/*
 * The GELU and softmax loops are vectorized (vectorize.h), so they cannot call libm:
 * they evaluate e^x and Phi(x) by branch-free approximations, in double so
 * that the only rounding of any weight is the final one to float (the
 * gradient checks take finite differences of the forward pass: it must be
 * as smooth as with libm's erf).  GCC if-converts their clamps and
 * selects only without -ftrapping-math (MATH_KERNEL: exceptions flags are
 * not looked at; values and NaNs are unchanged).
 *
 * e^x: x clamped to [-700, 700], x = n ln 2 + r with |r| <= ln 2 / 2, e^r
 * by its Taylor series to r^12 (error under 2e-16), 2^n put in the exponent
 * bits.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* CAI_VECTORIZE's options and one more (a second optimize attribute would replace the first) */
#define MATH_OPT __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off", \
										 "no-trapping-math")))
#else
#define MATH_OPT
#endif
#define MATH_KERNEL CAI_KERNEL MATH_OPT
#define MATH_INLINE static inline __attribute__((always_inline)) MATH_OPT

MATH_INLINE double
exp_approx(double x)
{
	double		n;
	double		r;
	double		p;
	double		scale;
	int64_t		e;

	/* 2^n without a double-to-integer conversion (none in AVX2 or AVX-512F vectors) */
	x = x < -700.0 ? -700.0 : x;
	x = x > 700.0 ? 700.0 : x;
	n = floor(x * 1.4426950408889634 + 0.5);
	r = x - n * 0.6931471803691238;
	r = r - n * 1.9082149292705877e-10;
	p = 1.0 / 479001600.0;
	p = p * r + 1.0 / 39916800.0;
	p = p * r + 1.0 / 3628800.0;
	p = p * r + 1.0 / 362880.0;
	p = p * r + 1.0 / 40320.0;
	p = p * r + 1.0 / 5040.0;
	p = p * r + 1.0 / 720.0;
	p = p * r + 1.0 / 120.0;
	p = p * r + 1.0 / 24.0;
	p = p * r + 1.0 / 6.0;
	p = p * r + 0.5;
	p = p * r + 1.0;
	p = p * r + 1.0;
	scale = n + 1023.0 + 4503599627370496.0;	/* 2^52: n + 1023 in the low bits */
	memcpy(&e, &scale, sizeof(e));
	e = (int64_t) ((uint64_t) e << 52);
	memcpy(&scale, &e, sizeof(scale));
	return p * scale;
}

/*
 * Phi(x) = (1 + erf(x / sqrt 2)) / 2 by Abramowitz and Stegun 7.1.26
 * (erf's absolute error under 1.5e-7, a smooth function of x): with
 * z = |x| / sqrt 2 and q = t P(t) e^(-z^2), t = 1 / (1 + 0.3275911 z),
 * erfc(z) ~ q, so Phi = q / 2 below 0 (no cancellation in the left tail)
 * and 1 - q / 2 above.
 */
MATH_INLINE double
phi_approx(double x)
{
	const double z = fabs(x) * INV_SQRT2;
	const double t = 1.0 / (1.0 + 0.3275911 * z);
	double		p = 1.061405429;
	double		q;

	p = p * t - 1.453152027;
	p = p * t + 1.421413741;
	p = p * t - 0.284496736;
	p = p * t + 0.254829592;
	q = 0.5 * p * t * exp_approx(-z * z);
	return x < 0.0 ? q : 1.0 - q;
}

/* gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), BERT's exact form. */
MATH_KERNEL static void
gelu_forward(float *out, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (float) (x[i] * phi_approx(x[i]));
}

/* dx += dout * (Phi(x) + x phi(x)); takes the input x. */
MATH_KERNEL static void
gelu_backward(float *dx, const float *dout, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		const double xi = x[i];
		const double d = phi_approx(xi) + xi * INV_SQRT2PI * exp_approx(-0.5 * xi * xi);

		dx[i] += (float) (dout[i] * d);
	}
}

/* p[j] = e^(p[j] - mx) where mask[j] (everywhere if mask is NULL), else 0. */
MATH_KERNEL static void
softmax_exp(float *p, const uint8_t *mask, int n, float mx)
{
	if (mask == NULL)
		for (int j = 0; j < n; j++)
			p[j] = (float) exp_approx((double) (p[j] - mx));
	else
		for (int j = 0; j < n; j++)
			p[j] = mask[j] ? (float) exp_approx((double) (p[j] - mx)) : 0.0f;
}

/* p[j] /= sum (sum > 0). */
MATH_KERNEL static void
softmax_div(float *p, int n, double sum)
{
	for (int j = 0; j < n; j++)
		p[j] = (float) (p[j] / sum);
}

/* One row of attention scores (n) into probabilities over the positions mask keeps (all 0 if none). */
static void
softmax_row(float *p, const uint8_t *mask, int n)
{
	float		mx = -INFINITY;
	double		sum = 0.0;

	for (int j = 0; j < n; j++)
		if ((mask == NULL || mask[j]) && p[j] > mx)
			mx = p[j];
	if (mx == -INFINITY)
	{
		memset(p, 0, (size_t) n * sizeof(float));
		return;
	}
	softmax_exp(p, mask, n, mx);
	for (int j = 0; j < n; j++)
		sum += p[j];
	softmax_div(p, n, sum);
}

/* The shape of the attention of a batch: B sequences of T, NH heads of d = H / NH. */
typedef struct att_dims
{
	int			B;
	int			T;
	int			H;
	int			NH;
	int			d;
	float		scale;			/* 1 / sqrt(d) */
	size_t		tt;				/* T * T: one head's probabilities */
	bool		drop;			/* attention dropout in this pass */
} att_dims;

static att_dims
att_dims_of(const cai_encoder_acts *a)
{
	att_dims	z = {a->B, a->T, a->H, a->NH, a->H / a->NH, 0.0f, (size_t) a->T * a->T,
	a->training && a->p_att > 0.0f};

	z.scale = (float) (1.0 / sqrt((double) z.d));
	return z;
}

/* The first and last + 1 of n items that part of parts takes (in multiples of unit). */
static void
part_range(size_t n, size_t unit, int part, int parts, size_t *i0, size_t *i1)
{
	const size_t units = (n + unit - 1) / unit;

	*i0 = units * (size_t) part / (size_t) parts * unit;
	*i1 = units * (size_t) (part + 1) / (size_t) parts * unit;
	if (*i0 > n)
		*i0 = n;
	if (*i1 > n)
		*i1 = n;
}

/*
 * Work of at least PAR_MIN floats (or multiply-adds) is shared out over the
 * encoder's threads (cai_gemm_parallel) in independent parts, each doing
 * exactly what one thread would for its items: same results for any
 * number of threads.  Less work stays on the caller (a hand-off costs a few
 * microseconds).
 */
#define PAR_MIN (1 << 16)

static int
par_threads(double work)
{
	return work >= PAR_MIN ? cai_blas_get_threads() : 1;
}

/* Unit u = b NH + h of the attention: its sequence b, and where its head's columns start in (N, H) rows. */
static inline int
att_unit_seq(const att_dims *z, size_t u)
{
	return (int) (u / (size_t) z->NH);
}

static inline size_t
att_unit_rows(const att_dims *z, size_t u)
{
	return u / (size_t) z->NH * (size_t) z->T * z->H + u % (size_t) z->NH * (size_t) z->d;
}

/* One pass of attention_forward over (sequence, head) units. */
typedef struct att_par
{
	att_dims	z;
	enc_layer_acts *la;
	const uint8_t *mask;
	const float *att;			/* the probabilities ctx reads (after dropout) */
	bool		ctx;			/* false: scores and softmax; true: ctx = att v */
} att_par;

static void
attention_units(void *arg, int part, int parts)
{
	const att_par *w = arg;
	const att_dims z = w->z;
	enc_layer_acts *la = w->la;
	size_t		u0;
	size_t		u1;

	part_range((size_t) z.B * z.NH, 1, part, parts, &u0, &u1);
	for (size_t u = u0; u < u1; u++)
	{
		const int	b = att_unit_seq(&z, u);
		const size_t rows = att_unit_rows(&z, u);

		if (w->ctx)
		{
			cai_sgemm_encoder(CblasRowMajor, CblasNoTrans, CblasNoTrans, z.T, z.d, z.T, 1.0f, w->att + u * z.tt, z.T,
							  la->v + rows, z.H, 0.0f, la->ctx + rows, z.H);
			continue;
		}
		{
			const uint8_t *mb = w->mask != NULL ? w->mask + (size_t) b * z.T : NULL;
			float	   *p = la->probs + u * z.tt;

			cai_sgemm_encoder(CblasRowMajor, CblasNoTrans, CblasTrans, z.T, z.T, z.d, z.scale, la->q + rows, z.H,
							  la->k + rows, z.H, 0.0f, p, z.T);
			for (int i = 0; i < z.T; i++)
				softmax_row(p + (size_t) i * z.T, mb, z.T);
		}
	}
}

/*
 * Self-attention of layer la: probs = masked softmax(q k^T / sqrt d) per
 * (sequence, head), dropout, ctx = att v.  The (sequence, head) units are
 * shared out over the threads, each unit's products on one thread, when
 * the core's kernel runs the encoder's products (OpenBLAS threads its own).
 */
static cai_status
attention_forward(cai_encoder_acts *a, enc_layer_acts *la, const uint8_t *mask, cai_rng *rng, cai_error *err)
{
	const att_dims z = att_dims_of(a);
	att_par		w = {z, la, mask, z.drop ? la->att : la->probs, false};
	const int	threads = cai_gemm_encoder_own() && z.B * z.NH > 1 ?
		par_threads(2.0 * z.B * z.NH * (double) z.tt * z.d) : 1;
	cai_status	st;

	cai_gemm_parallel(threads, attention_units, &w);
	if (z.drop &&
		(st = cai_dropout_forward(la->att, la->att_mask, la->probs, (size_t) z.B * z.NH * z.tt, a->p_att, true,
								  rng, err)) != CAI_OK)
		return st;
	w.ctx = true;
	cai_gemm_parallel(threads, attention_units, &w);
	return CAI_OK;
}

/* One part of attention_backward's (sequence, head) units. */
typedef struct att_bwd_par
{
	att_dims	z;
	cai_encoder_acts *a;
	const enc_layer_acts *la;
} att_bwd_par;

static void
attention_backward_units(void *arg, int part, int parts)
{
	const att_bwd_par *w = arg;
	const att_dims z = w->z;
	cai_encoder_acts *a = w->a;
	const enc_layer_acts *la = w->la;
	float	   *datt = a->datt + (size_t) part * z.tt;	/* this part's scratch */
	float	   *dscore = a->dscore + (size_t) part * z.tt;
	size_t		u0;
	size_t		u1;

	part_range((size_t) z.B * z.NH, 1, part, parts, &u0, &u1);
	for (size_t u = u0; u < u1; u++)
	{
		const size_t rows = att_unit_rows(&z, u);
		const size_t bh = u * z.tt;
		const float *p = la->probs + bh;
		const float *att = z.drop ? la->att + bh : p;

		/* datt = dctx v^T; dv += att^T dctx */
		cai_sgemm_encoder(CblasRowMajor, CblasNoTrans, CblasTrans, z.T, z.T, z.d, 1.0f, a->dctx + rows, z.H,
						  la->v + rows, z.H, 0.0f, datt, z.T);
		cai_sgemm_encoder(CblasRowMajor, CblasTrans, CblasNoTrans, z.T, z.d, z.T, 1.0f, att, z.T,
						  a->dctx + rows, z.H, 1.0f, a->dv + rows, z.H);
		/* through the dropout into d probs (dscore holds it for a moment) */
		memset(dscore, 0, z.tt * sizeof(float));
		cai_dropout_backward(dscore, datt, z.drop ? la->att_mask + bh : NULL, z.tt, a->p_att, z.drop);
		/* softmax: ds_ij = p_ij (dp_ij - sum_k p_ik dp_ik) */
		for (int i = 0; i < z.T; i++)
		{
			const float *pr = p + (size_t) i * z.T;
			float	   *dr = dscore + (size_t) i * z.T;
			double		dot = 0.0;

			for (int j = 0; j < z.T; j++)
				dot += (double) pr[j] * dr[j];
			for (int j = 0; j < z.T; j++)
				dr[j] = pr[j] * (float) (dr[j] - dot);
		}
		/* dq += scale ds k; dk += scale ds^T q */
		cai_sgemm_encoder(CblasRowMajor, CblasNoTrans, CblasNoTrans, z.T, z.d, z.T, z.scale, dscore, z.T,
						  la->k + rows, z.H, 1.0f, a->dq + rows, z.H);
		cai_sgemm_encoder(CblasRowMajor, CblasTrans, CblasNoTrans, z.T, z.d, z.T, z.scale, dscore, z.T,
						  la->q + rows, z.H, 1.0f, a->dk + rows, z.H);
	}
}

/*
 * dq, dk, dv (zeroed by the caller) += the attention's gradients from
 * a->dctx; the (sequence, head) units write disjoint slices of them, so
 * they are shared out like attention_forward's (each part with its own
 * datt / dscore scratch, at most ATT_BWD_PARTS parts).
 */
static void
attention_backward(cai_encoder_acts *a, const enc_layer_acts *la)
{
	const att_dims z = att_dims_of(a);
	att_bwd_par w = {z, a, la};
	int			threads = cai_gemm_encoder_own() && z.B * z.NH > 1 ?
		par_threads(4.0 * z.B * z.NH * (double) z.tt * z.d) : 1;

	cai_gemm_parallel(threads < ATT_BWD_PARTS ? threads : ATT_BWD_PARTS, attention_backward_units, &w);
}

static cai_status
check_inputs(const cai_encoder *enc, const cai_encoder_acts *a, const int32_t *ids, const int32_t *segments,
			 const uint8_t *mask, cai_error *err)
{
	const size_t N = (size_t) a->B * a->T;
	const int32_t types = enc->cfg.type_vocab_size > 0 ? enc->cfg.type_vocab_size : 1;

	if (a->H != enc->cfg.hidden_size || a->I != enc->cfg.intermediate_size || a->NH != enc->cfg.num_attention_heads ||
		a->L != enc->cfg.num_hidden_layers || a->T > enc->cfg.max_position_embeddings)
		return cai_error_set(err, CAI_ERR_INVALID, "activations made for another encoder config");
	for (size_t r = 0; r < N; r++)
	{
		if (ids[r] < 0 || ids[r] >= enc->cfg.vocab_size)
			return cai_error_set(err, CAI_ERR_INVALID, "token id %d at %zu is outside the vocabulary of %d",
								 (int) ids[r], r, (int) enc->cfg.vocab_size);
		if (segments != NULL && (segments[r] < 0 || segments[r] >= types))
			return cai_error_set(err, CAI_ERR_INVALID, "segment id %d at %zu is outside [0, %d)",
								 (int) segments[r], r, (int) types);
		if (mask != NULL && mask[r] > 1)
			return cai_error_set(err, CAI_ERR_INVALID, "attention mask value %d at %zu (0 or 1 expected)",
								 (int) mask[r], r);
	}
	return CAI_OK;
}

/* layernorm_forward or gelu_forward over a part of the rows or values. */
typedef struct ew_par
{
	float	   *out;
	float	   *mean;			/* NULL: gelu_forward */
	float	   *rstd;
	const float *x;
	const float *g;
	const float *b;
	size_t		n;				/* rows (layer norm) or values (GELU) */
	int			C;
	float		eps;
} ew_par;

static void
elementwise_part(void *arg, int part, int parts)
{
	const ew_par *w = arg;
	size_t		i0;
	size_t		i1;

	if (w->mean == NULL)
	{
		part_range(w->n, 64, part, parts, &i0, &i1);
		gelu_forward(w->out + i0, w->x + i0, i1 - i0);
		return;
	}
	part_range(w->n, 1, part, parts, &i0, &i1);
	layernorm_forward(w->out + i0 * w->C, w->mean + i0, w->rstd + i0, w->x + i0 * w->C, w->g, w->b, (int) (i1 - i0),
					  w->C, w->eps);
}

/* layernorm_forward on the encoder's threads (rows shared out). */
static void
layernorm_forward_par(float *out, float *mean, float *rstd, const float *x, const float *g, const float *b,
					  int N, int C, float eps)
{
	ew_par		w = {out, mean, rstd, x, g, b, (size_t) N, C, eps};

	cai_gemm_parallel(par_threads((double) N * C), elementwise_part, &w);
}

/* gelu_forward on the encoder's threads (values shared out). */
static void
gelu_forward_par(float *out, const float *x, size_t n)
{
	ew_par		w = {.out = out, .x = x, .n = n};

	cai_gemm_parallel(par_threads((double) n), elementwise_part, &w);
}

cai_status
cai_encoder_forward(const cai_encoder *enc, cai_encoder_acts *a, const int32_t *ids, const int32_t *segments,
					const uint8_t *mask, bool training, cai_rng *rng, cai_error *err)
{
	const cai_encoder_config *c = &enc->cfg;
	const int	T = a->T;
	const int	H = a->H;
	const int	I = a->I;
	const int	N = a->B * a->T;
	const size_t NHs = (size_t) N * H;
	const float *x;
	cai_status	st;

	if ((st = check_inputs(enc, a, ids, segments, mask, err)) != CAI_OK)
		return st;
	if (training && !a->for_backward)
		return cai_error_set(err, CAI_ERR_INVALID, "a training forward pass needs activations made for the backward pass");
	if (training && rng == NULL && (c->hidden_dropout_prob > 0.0f || c->attention_probs_dropout_prob > 0.0f))
		return cai_error_set(err, CAI_ERR_INVALID, "a training forward pass with dropout needs a random generator");
	a->training = training;
	a->p_hidden = training ? c->hidden_dropout_prob : 0.0f;
	a->p_ao = c->family == CAI_ENC_DISTILBERT ? 0.0f : a->p_hidden;
	a->p_att = training ? c->attention_probs_dropout_prob : 0.0f;

	for (int r = 0; r < N; r++)
	{
		const float *we = enc->w.word + (size_t) ids[r] * H;
		const float *pe = enc->w.position + (size_t) (r % T) * H;
		const float *te = enc->w.token_type + (size_t) (segments != NULL ? segments[r] : 0) * H;
		float	   *e = a->emb + (size_t) r * H;

		for (int i = 0; i < H; i++)
			e[i] = we[i] + pe[i] + te[i];
	}
	layernorm_forward(a->emb_ln, a->emb_mean, a->emb_rstd, a->emb, enc->w.emb_ln_g, enc->w.emb_ln_b, N, H,
					  c->layer_norm_eps);
	if ((st = cai_dropout_forward(a->x0, a->emb_mask, a->emb_ln, NHs, a->p_hidden, training, rng, err)) != CAI_OK)
		return st;
	x = a->x0;
	for (int l = 0; l < a->L; l++)
	{
		const cai_encoder_layer *w = &enc->w.layers[l];
		enc_layer_acts *la = &a->layers[l];

		enc_linear_forward(la->q, x, w->q_w, w->q_b, N, H, H);
		enc_linear_forward(la->k, x, w->k_w, w->k_b, N, H, H);
		enc_linear_forward(la->v, x, w->v_w, w->v_b, N, H, H);
		if ((st = attention_forward(a, la, mask, rng, err)) != CAI_OK)
			return st;
		enc_linear_forward(la->ao, la->ctx, w->ao_w, w->ao_b, N, H, H);
		if ((st = cai_dropout_forward(la->ao, la->ao_mask, la->ao, NHs, a->p_ao, training, rng, err)) != CAI_OK)
			return st;
		for (size_t i = 0; i < NHs; i++)
			la->res1[i] = x[i] + la->ao[i];
		layernorm_forward_par(la->h1, la->mean1, la->rstd1, la->res1, w->ln1_g, w->ln1_b, N, H, c->layer_norm_eps);
		enc_linear_forward(la->ff1, la->h1, w->ff1_w, w->ff1_b, N, H, I);
		gelu_forward_par(la->gelu, la->ff1, (size_t) N * I);
		enc_linear_forward(la->ff2, la->gelu, w->ff2_w, w->ff2_b, N, I, H);
		if ((st = cai_dropout_forward(la->ff2, la->ff_mask, la->ff2, NHs, a->p_hidden, training, rng, err)) != CAI_OK)
			return st;
		for (size_t i = 0; i < NHs; i++)
			la->res2[i] = la->h1[i] + la->ff2[i];
		layernorm_forward_par(la->out, la->mean2, la->rstd2, la->res2, w->ln2_g, w->ln2_b, N, H, c->layer_norm_eps);
		x = la->out;
	}
	return CAI_OK;
}

/*
 * Backward through y = LN(skip + drop_p(branch)) given dy: dskip = d(skip)
 * (overwritten), a->dtmp = d(branch) (overwritten); LN's dg, db added.
 * dskip may not alias dy.
 */
static void
residual_ln_backward(cai_encoder_acts *a, float p, float *dskip, const float *dy, float *dg, float *db, const float *res,
					 const float *mean, const float *rstd, const float *g, const uint8_t *mask)
{
	const int	N = a->B * a->T;
	const size_t n = (size_t) N * a->H;

	memset(a->dres, 0, n * sizeof(float));
	layernorm_backward(a->dres, dg, db, dy, res, mean, rstd, g, N, a->H);
	memcpy(dskip, a->dres, n * sizeof(float));
	memset(a->dtmp, 0, n * sizeof(float));
	cai_dropout_backward(a->dtmp, a->dres, mask, n, p, a->training && p > 0.0f);
}

cai_status
cai_encoder_backward(const cai_encoder *enc, cai_encoder_acts *a, cai_encoder_grads *grads, const float *dout,
					 const int32_t *ids, const int32_t *segments, const uint8_t *mask, cai_error *err)
{
	const int	T = a->T;
	const int	H = a->H;
	const int	I = a->I;
	const int	N = a->B * a->T;
	const size_t NHs = (size_t) N * H;
	const size_t NIs = (size_t) N * I;
	const bool	drop = a->training && a->p_hidden > 0.0f;
	cai_status	st;

	if (!a->for_backward || grads->n_params != enc->n_params)
		return cai_error_set(err, CAI_ERR_INVALID, "the backward pass needs activations made for it and this encoder's gradients");
	if ((st = check_inputs(enc, a, ids, segments, mask, err)) != CAI_OK)
		return st;
	memcpy(a->dx, dout, NHs * sizeof(float));
	for (int l = a->L - 1; l >= 0; l--)
	{
		const cai_encoder_layer *w = &enc->w.layers[l];
		cai_encoder_layer *g = &grads->w.layers[l];
		const enc_layer_acts *la = &a->layers[l];
		const float *x_in = l > 0 ? a->layers[l - 1].out : a->x0;

		/* out = LN2(res2), res2 = h1 + drop(ff2) */
		residual_ln_backward(a, a->p_hidden, a->dh, a->dx, g->ln2_g, g->ln2_b, la->res2, la->mean2, la->rstd2, w->ln2_g,
							 la->ff_mask);
		/* ff2 = gelu(ff1) W2^T + b2, ff1 = h1 W1^T + b1 */
		memset(a->dgelu, 0, NIs * sizeof(float));
		enc_linear_backward(a->dgelu, g->ff2_w, g->ff2_b, a->dtmp, la->gelu, w->ff2_w, N, I, H);
		memset(a->dff, 0, NIs * sizeof(float));
		gelu_backward(a->dff, a->dgelu, la->ff1, NIs);
		enc_linear_backward(a->dh, g->ff1_w, g->ff1_b, a->dff, la->h1, w->ff1_w, N, H, I);
		/* h1 = LN1(res1), res1 = x_in + drop(ctx Wo^T + bo) */
		residual_ln_backward(a, a->p_ao, a->dx, a->dh, g->ln1_g, g->ln1_b, la->res1, la->mean1, la->rstd1, w->ln1_g,
							 la->ao_mask);
		memset(a->dctx, 0, NHs * sizeof(float));
		enc_linear_backward(a->dctx, g->ao_w, g->ao_b, a->dtmp, la->ctx, w->ao_w, N, H, H);
		/* attention, then q, k, v = x_in W^T + b */
		memset(a->dq, 0, NHs * sizeof(float));
		memset(a->dk, 0, NHs * sizeof(float));
		memset(a->dv, 0, NHs * sizeof(float));
		attention_backward(a, la);
		enc_linear_backward(a->dx, g->q_w, g->q_b, a->dq, x_in, w->q_w, N, H, H);
		enc_linear_backward(a->dx, g->k_w, g->k_b, a->dk, x_in, w->k_w, N, H, H);
		enc_linear_backward(a->dx, g->v_w, g->v_b, a->dv, x_in, w->v_w, N, H, H);
	}
	/* x0 = drop(LN(emb)), emb = word[ids] + position[t] + token_type[segments] */
	memset(a->dtmp, 0, NHs * sizeof(float));
	cai_dropout_backward(a->dtmp, a->dx, a->emb_mask, NHs, a->p_hidden, drop);
	memset(a->dembed, 0, NHs * sizeof(float));
	layernorm_backward(a->dembed, grads->w.emb_ln_g, grads->w.emb_ln_b, a->dtmp, a->emb, a->emb_mean, a->emb_rstd,
					   enc->w.emb_ln_g, N, H);
	for (int r = 0; r < N; r++)
	{
		const float *de = a->dembed + (size_t) r * H;
		float	   *gw = grads->w.word + (size_t) ids[r] * H;
		float	   *gp = grads->w.position + (size_t) (r % T) * H;
		/* no token types: the zero row gets no gradient, it is not a parameter */
		float	   *gt = enc->cfg.type_vocab_size > 0 ?
			grads->w.token_type + (size_t) (segments != NULL ? segments[r] : 0) * H : NULL;

		for (int i = 0; i < H; i++)
		{
			gw[i] += de[i];
			gp[i] += de[i];
			if (gt != NULL)
				gt[i] += de[i];
		}
	}
	return CAI_OK;
}

/*
 * The encoder's LayerNorm and GELU for the heads that sit on it (the MLM
 * head of pretraining, src/core/pretrain.c); declared in encoder_ops.h.
 */
void
cai_enc_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *g,
						  const float *b, int N, int C, float eps)
{
	layernorm_forward(out, mean, rstd, x, g, b, N, C, eps);
}

void
cai_enc_layernorm_backward(float *dx, float *dg, float *db, const float *dout, const float *x,
						   const float *mean, const float *rstd, const float *g, int N, int C)
{
	layernorm_backward(dx, dg, db, dout, x, mean, rstd, g, N, C);
}

void
cai_enc_gelu_forward(float *out, const float *x, size_t n)
{
	gelu_forward(out, x, n);
}

void
cai_enc_gelu_backward(float *dx, const float *dout, const float *x, size_t n)
{
	gelu_backward(dx, dout, x, n);
}
