/*
 * test_encoder.c: the BERT-style encoder (src/core/encoder.c).
 *
 *  - config.json parsing and validation, each bad member named;
 *  - the forward pass of a tiny checkpoint against an independent numpy
 *    implementation (scripts/gen_encoder_fixture.py wrote
 *    test/fixtures/encoder/, or $CAI_ENCODER_FIXTURES): the "bert." prefix
 *    with pooler and head tensors, no prefix with gamma/beta names, F16,
 *    BF16;
 *  - padding: unpadded outputs do not depend on the padded positions;
 *  - dropout: 0 or inference is deterministic, a seed fixes the masks;
 *  - the whole-model gradient check (gradcheck.c) of every parameter tensor,
 *    with dropout off and on (fixed masks), and the input-embedding gradient;
 *  - damaged checkpoints: wrong shape, missing, extra, bad dtype, NaN,
 *    truncated and flipped bytes: a status and a message naming the tensor;
 *  - a PyTorch reference (bench/peers/encoder_torch_ref.py wrote
 *    test/fixtures/encoder_torch/): hidden states and the gradients of a
 *    weighted sum of them, autograd in float64.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cai/encoder.h"
#include "cai/encoder_model.h"
#include "check.h"
#include "../../src/core/gemm.h"
#include "../../src/core/gradcheck.h"
#include "../../src/core/pool.h"
#include "encoder_torch.h"

static const char *fixture_dir;

typedef struct Bytes
{
	unsigned char *data;
	size_t		len;
} Bytes;

static Bytes
read_file(const char *name)
{
	char		path[512];
	Bytes		b = {0};
	FILE	   *f;
	long		n;

	snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
	if ((f = fopen(path, "rb")) == NULL)
		return b;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(b.data = malloc((size_t) n)) != NULL)
	{
		b.len = fread(b.data, 1, (size_t) n, f);
		if (b.len != (size_t) n)
		{
			free(b.data);
			b.data = NULL;
			b.len = 0;
		}
	}
	fclose(f);
	return b;
}

/* The fixture batch: B, T, ids, segments, mask. */
typedef struct Batch
{
	int			B;
	int			T;
	int32_t    *ids;
	int32_t    *seg;
	uint8_t    *mask;
} Batch;

static bool
read_inputs(Batch *in)
{
	char		path[512];
	FILE	   *f;
	bool		ok;
	int			n;

	snprintf(path, sizeof(path), "%s/inputs.txt", fixture_dir);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	ok = fscanf(f, "%d %d", &in->B, &in->T) == 2 && in->B > 0 && in->T > 0 && in->B * in->T < 10000;
	n = ok ? in->B * in->T : 0;
	in->ids = calloc((size_t) n + 1, sizeof(int32_t));
	in->seg = calloc((size_t) n + 1, sizeof(int32_t));
	in->mask = calloc((size_t) n + 1, 1);
	for (int i = 0; ok && i < n; i++)
		ok = fscanf(f, "%d", &in->ids[i]) == 1;
	for (int i = 0; ok && i < n; i++)
		ok = fscanf(f, "%d", &in->seg[i]) == 1;
	for (int i = 0; ok && i < n; i++)
	{
		int			m;

		ok = fscanf(f, "%d", &m) == 1;
		in->mask[i] = (uint8_t) m;
	}
	fclose(f);
	return ok;
}

static float *
read_floats(const char *name, size_t n)
{
	char		path[512];
	FILE	   *f;
	float	   *x = calloc(n, sizeof(float));
	size_t		i = 0;

	snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
	if (x == NULL || (f = fopen(path, "r")) == NULL)
	{
		free(x);
		return NULL;
	}
	while (i < n && fscanf(f, "%f", &x[i]) == 1)
		i++;
	fclose(f);
	if (i != n)
	{
		free(x);
		return NULL;
	}
	return x;
}

static cai_status
config_of(const char *json, cai_encoder_config *c, cai_error *err)
{
	return cai_encoder_config_from_json(json, strlen(json), c, err);
}

static bool
fixture_config(const char *file, cai_encoder_config *c)
{
	Bytes		b = read_file(file);
	cai_error	err = {0};
	cai_status	st = b.data ? cai_encoder_config_from_json((const char *) b.data, b.len, c, &err) : CAI_ERR_INVALID;

	free(b.data);
	CHECK(st == CAI_OK, "fixture %s parses: %s", file, err.msg);
	return st == CAI_OK;
}

/* ------------------------------------------------------------------ */

static void
test_config(void)
{
	cai_encoder_config c;
	cai_error	err = {0};
	cai_status	st;
	const char *ok = "{\"vocab_size\": 30522, \"hidden_size\": 768, \"num_hidden_layers\": 12, "
		"\"num_attention_heads\": 12, \"intermediate_size\": 3072, \"max_position_embeddings\": 512, "
		"\"type_vocab_size\": 2}";
	static const struct
	{
		const char *json;
		cai_status	st;
		const char *names;		/* expected in the message */
	}			bad[] = {
		{"not json", CAI_ERR_FORMAT, "JSON"},
		{"[1, 2]", CAI_ERR_FORMAT, "JSON"},
		{"{\"hidden_size\": 8}", CAI_ERR_FORMAT, "vocab_size"},
		{"{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 3, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2}",
		CAI_ERR_INVALID, "num_attention_heads"},
		{"{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 0, \"num_attention_heads\": 2, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2}",
		CAI_ERR_INVALID, "num_hidden_layers"},
		{"{\"vocab_size\": 10, \"hidden_size\": \"8\", \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2}",
		CAI_ERR_FORMAT, "hidden_size"},
		{"{\"vocab_size\": 99999999, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2}",
		CAI_ERR_LIMIT, "vocab_size"},
		{"{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2, \"hidden_act\": \"relu\"}",
		CAI_ERR_INVALID, "hidden_act"},
		{"{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2, \"layer_norm_eps\": 0}",
		CAI_ERR_INVALID, "layer_norm_eps"},
		{"{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2, \"hidden_dropout_prob\": 1}",
		CAI_ERR_INVALID, "hidden_dropout_prob"},
		{"{\"model_type\": \"roberta\", \"vocab_size\": 10}", CAI_ERR_INVALID, "model_type"},
		{"{\"model_type\": \"distilbert\", \"vocab_size\": 10, \"hidden_size\": 8}", CAI_ERR_FORMAT, "dim"},
		{"{\"model_type\": \"distilbert\", \"vocab_size\": 10, \"dim\": 8, \"n_layers\": 1, \"n_heads\": 3, "
			"\"hidden_dim\": 4, \"max_position_embeddings\": 4}", CAI_ERR_INVALID, "n_heads"},
		{"{\"model_type\": \"distilbert\", \"vocab_size\": 10, \"dim\": 8, \"n_layers\": 1, \"n_heads\": 2, "
			"\"hidden_dim\": 4, \"max_position_embeddings\": 4, \"activation\": \"relu\"}", CAI_ERR_INVALID, "activation"},
		{"{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
			"\"intermediate_size\": 4, \"max_position_embeddings\": 4, \"type_vocab_size\": 2, "
			"\"position_embedding_type\": \"relative_key\"}",
		CAI_ERR_INVALID, "position_embedding_type"},
	};

	st = config_of(ok, &c, &err);
	CHECK(st == CAI_OK, "bert-base config parses: %s", err.msg);
	CHECK(c.hidden_size == 768 && c.num_hidden_layers == 12 && c.intermediate_size == 3072 &&
		  c.layer_norm_eps == 1e-12f && c.hidden_dropout_prob == 0.1f, "bert-base values and defaults");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		memset(&err, 0, sizeof(err));
		st = config_of(bad[i].json, &c, &err);
		CHECK(st == bad[i].st, "bad config %zu: status %s, want %s (%s)", i, cai_status_name(st),
			  cai_status_name(bad[i].st), err.msg);
		CHECK(strstr(err.msg, bad[i].names) != NULL, "bad config %zu: message \"%s\" names %s", i, err.msg,
			  bad[i].names);
	}
	/* a NUL inside the text, and text that is not NUL-terminated */
	st = cai_encoder_config_from_json("{}\0{}", 5, &c, &err);
	CHECK(st == CAI_ERR_FORMAT, "config with a NUL: %s", cai_status_name(st));
	st = cai_encoder_config_from_json(ok, 20, &c, &err);
	CHECK(st == CAI_ERR_FORMAT, "cut config: %s", cai_status_name(st));
}

/* ------------------------------------------------------------------ */

/* Forward of the fixture batch through the checkpoint file; compared with want at unpadded positions. */
static void
check_reference(const cai_encoder_config *cfg, const Batch *in, const char *file, const char *want_file)
{
	Bytes		b = read_file(file);
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_error	err = {0};
	const int	H = cfg->hidden_size;
	const size_t n = (size_t) in->B * in->T * H;
	float	   *want = read_floats(want_file, n);
	float	   *got;
	float	   *exp;
	size_t		k = 0;
	cai_status	st;

	CHECK(b.data != NULL && want != NULL, "fixture %s and %s read", file, want_file);
	if (b.data == NULL || want == NULL)
		goto done;
	st = cai_encoder_from_safetensors(cfg, b.data, b.len, &enc, &err);
	CHECK(st == CAI_OK, "%s loads: %s", file, err.msg);
	if (st != CAI_OK)
		goto done;
	st = cai_encoder_acts_create(cfg, in->B, in->T, false, &acts, &err);
	CHECK(st == CAI_OK, "acts: %s", err.msg);
	/* DistilBERT has no token types: no segment ids */
	if (st == CAI_OK)
		st = cai_encoder_forward(enc, acts, in->ids, cfg->type_vocab_size > 0 ? in->seg : NULL, in->mask, false,
								 NULL, &err);
	CHECK(st == CAI_OK, "%s forward: %s", file, err.msg);
	if (st != CAI_OK)
		goto done;
	/* gather the unpadded positions */
	got = calloc(n, sizeof(float));
	exp = calloc(n, sizeof(float));
	for (int r = 0; r < in->B * in->T; r++)
		if (in->mask[r])
		{
			memcpy(got + k, cai_encoder_output(acts) + (size_t) r * H, H * sizeof(float));
			memcpy(exp + k, want + (size_t) r * H, H * sizeof(float));
			k += (size_t) H;
		}
	CHECK(k > 0, "some unpadded positions");
	CHECK_CLOSE(file, got, exp, k, 1e-4f, 1e-5f);
	free(got);
	free(exp);
done:
	cai_encoder_acts_free(acts);
	cai_encoder_free(enc);
	free(want);
	free(b.data);
}

static void expect_load(const cai_encoder_config *cfg, const Bytes *b, cai_status want, const char *name,
						const char *what);

/* The DistilBERT checkpoint of the same weights (no token types), and its names checked. */
static void
test_distilbert(const cai_encoder_config *bert_cfg, const Batch *in)
{
	cai_encoder_config cfg;
	Bytes		b = read_file("model.safetensors");
	Bytes		d = read_file("distilbert.safetensors");
	Bytes		np = read_file("model_noprefix.safetensors");
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_error	err = {0};
	cai_status	st;

	if (!fixture_config("distilbert_config.json", &cfg) || b.data == NULL || d.data == NULL || np.data == NULL)
	{
		CHECK(false, "DistilBERT fixtures read");
		goto done;
	}
	CHECK(cfg.family == CAI_ENC_DISTILBERT && cfg.type_vocab_size == 0 && cfg.hidden_size == bert_cfg->hidden_size &&
		  cfg.num_hidden_layers == bert_cfg->num_hidden_layers && cfg.intermediate_size == bert_cfg->intermediate_size &&
		  cfg.layer_norm_eps == 1e-12f, "DistilBERT config read into the same shape");
	check_reference(&cfg, in, "distilbert.safetensors", "expected_distilbert.txt");
	/* BERT names under a DistilBERT config, and the reverse: the first tensor not found is named */
	expect_load(&cfg, &b, CAI_ERR_FORMAT, "\"embeddings.word_embeddings.weight", "BERT checkpoint, DistilBERT config");
	expect_load(&cfg, &np, CAI_ERR_FORMAT, "\"transformer.layer.0.attention.q_lin.weight",
				"BERT checkpoint without prefix, DistilBERT config");
	expect_load(bert_cfg, &d, CAI_ERR_FORMAT, "\"embeddings.word_embeddings.weight",
				"DistilBERT checkpoint, BERT config");
	/* a segment id other than 0 has no embedding */
	if (cai_encoder_from_safetensors(&cfg, d.data, d.len, &enc, &err) == CAI_OK &&
		cai_encoder_acts_create(&cfg, in->B, in->T, false, &acts, &err) == CAI_OK)
	{
		st = cai_encoder_forward(enc, acts, in->ids, in->seg, in->mask, false, NULL, &err);
		CHECK(st == CAI_ERR_INVALID && strstr(err.msg, "segment"), "segment 1 without token types: %s", err.msg);
	}
	else
		CHECK(false, "DistilBERT load: %s", err.msg);
done:
	cai_encoder_acts_free(acts);
	cai_encoder_free(enc);
	free(b.data);
	free(d.data);
	free(np.data);
}

/* ------------------------------------------------------------------ */

/* Padding: change what the padded positions hold; the unpadded outputs stay. */
static void
test_padding(const cai_encoder_config *cfg, const Batch *in)
{
	Bytes		b = read_file("model.safetensors");
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_error	err = {0};
	const int	N = in->B * in->T;
	const int	H = cfg->hidden_size;
	float	   *first = calloc((size_t) N * H, sizeof(float));
	int32_t    *ids = malloc(sizeof(int32_t) * N);
	int32_t    *seg = malloc(sizeof(int32_t) * N);
	int			n_pad = 0;
	bool		same = true;
	bool		pad_changed = false;

	if (b.data == NULL || cai_encoder_from_safetensors(cfg, b.data, b.len, &enc, &err) != CAI_OK ||
		cai_encoder_acts_create(cfg, in->B, in->T, false, &acts, &err) != CAI_OK ||
		cai_encoder_forward(enc, acts, in->ids, in->seg, in->mask, false, NULL, &err) != CAI_OK)
	{
		CHECK(false, "padding test setup: %s", err.msg);
		goto done;
	}
	memcpy(first, cai_encoder_output(acts), sizeof(float) * N * H);
	for (int r = 0; r < N; r++)
	{
		ids[r] = in->mask[r] ? in->ids[r] : (in->ids[r] + 3 + r) % cfg->vocab_size;
		seg[r] = in->mask[r] ? in->seg[r] : 1 - in->seg[r];
		n_pad += !in->mask[r];
	}
	CHECK(n_pad > 0, "the fixture batch has padding");
	if (cai_encoder_forward(enc, acts, ids, seg, in->mask, false, NULL, &err) != CAI_OK)
	{
		CHECK(false, "padding forward: %s", err.msg);
		goto done;
	}
	for (int r = 0; r < N; r++)
		for (int i = 0; i < H; i++)
		{
			float		d = fabsf(cai_encoder_output(acts)[(size_t) r * H + i] - first[(size_t) r * H + i]);

			if (in->mask[r] && d > 1e-6f)
				same = false;
			if (!in->mask[r] && d > 1e-3f)
				pad_changed = true;
		}
	CHECK(same, "unpadded outputs do not depend on the padded tokens");
	CHECK(pad_changed, "the padded positions did change (the test changes something)");
done:
	free(first);
	free(ids);
	free(seg);
	cai_encoder_acts_free(acts);
	cai_encoder_free(enc);
	free(b.data);
}

/* ------------------------------------------------------------------ */
/* Gradient check: loss = mean over unpadded positions of <proj, out>. */

typedef struct GradCtx
{
	cai_encoder *enc;
	cai_encoder_grads *grads;
	cai_encoder_acts *acts;
	const int32_t *ids;
	const int32_t *seg;
	const uint8_t *mask;
	float	   *proj;			/* (N, H); zero at padded rows */
	int			N;
	bool		training;
	int			n_idx;
	int			idx[CAI_GRAD_MAX_TENSORS];	/* the encoder's tensor of each probe tensor */
} GradCtx;

static cai_status
grad_loss(void *vctx, float *const *grad, double *loss, cai_error *err)
{
	GradCtx    *g = vctx;
	const int	H = g->enc->cfg.hidden_size;
	cai_rng		rng;
	double		s = 0.0;
	const float *out;
	cai_status	st;

	cai_rng_seed(&rng, 42);		/* the same dropout masks at every call */
	if ((st = cai_encoder_forward(g->enc, g->acts, g->ids, g->seg, g->mask, g->training, &rng, err)) != CAI_OK)
		return st;
	out = cai_encoder_output(g->acts);
	for (size_t i = 0; i < (size_t) g->N * H; i++)
		s += (double) g->proj[i] * out[i];
	*loss = s;
	if (grad == NULL)
		return CAI_OK;
	cai_encoder_grads_zero(g->grads);
	if ((st = cai_encoder_backward(g->enc, g->acts, g->grads, g->proj, g->ids, g->seg, g->mask, err)) != CAI_OK)
		return st;
	for (int i = 0; i < g->n_idx; i++)
	{
		const cai_encoder_tensor *t = &g->enc->tensors[g->idx[i]];

		memcpy(grad[i], g->grads->data + t->offset, t->numel * sizeof(float));
	}
	return CAI_OK;
}

static void
grad_free(void *ctx)
{
}

static void
test_gradients(bool training, cai_encoder_family family)
{
	const bool	distil = family == CAI_ENC_DISTILBERT;
	cai_encoder_config cfg = {
		.family = family,
		.vocab_size = 11, .hidden_size = 8, .num_hidden_layers = 2, .num_attention_heads = 2,
		.intermediate_size = 12, .max_position_embeddings = 7, .type_vocab_size = distil ? 0 : 2,
		.layer_norm_eps = 1e-12f, .hidden_dropout_prob = training ? 0.1f : 0.0f,
		.attention_probs_dropout_prob = training ? 0.1f : 0.0f,
	};
	enum
	{
		B = 2, T = 5, N = B * T
	};
	const int32_t ids[N] = {1, 4, 7, 9, 2, 3, 5, 10, 0, 0};
	const int32_t seg[N] = {0, 0, 0, 1, 1, 0, 0, 1, 0, 0};
	const uint8_t mask[N] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
	int32_t		word_rows[N];
	int32_t		pos_rows[T] = {0, 1, 2, 3, 4};
	int32_t		type_rows[2] = {0, 1};
	cai_encoder *enc = NULL;
	cai_encoder_grads *grads = NULL;
	cai_encoder_acts *acts = NULL;
	cai_error	err = {0};
	cai_rng		rng;
	GradCtx		g = {0};
	double		worst = 0.0;
	int			checked = 0;

	if (cai_encoder_create(&cfg, &enc, &err) != CAI_OK || cai_encoder_grads_create(enc, &grads, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, B, T, true, &acts, &err) != CAI_OK)
	{
		CHECK(false, "gradient check setup: %s", err.msg);
		goto done;
	}
	cai_rng_seed(&rng, 3);
	cai_encoder_init_random(enc, 0.5f, &rng);
	if (distil)
	{
		bool		zero = true;

		for (size_t j = 0; j < enc->tensors[2].numel; j++)
			zero = zero && enc->params[enc->tensors[2].offset + j] == 0.0f;
		CHECK(zero, "no token types: their row stays zero after the initialisation");
	}
	/* LayerNorm gains and biases away from 1 and 0, so their gradients are exercised in general position */
	for (int i = 0; i < enc->n_tensors; i++)
		if (enc->tensors[i].ndim == 1)
			for (size_t j = 0; j < enc->tensors[i].numel; j++)
				enc->params[enc->tensors[i].offset + j] += 0.2f * cai_rng_normal(&rng);
	for (int i = 0; i < N; i++)
		word_rows[i] = ids[i];
	g.enc = enc;
	g.grads = grads;
	g.acts = acts;
	g.ids = ids;
	g.seg = distil ? NULL : seg;
	g.mask = mask;
	g.N = N;
	g.training = training;
	g.proj = calloc((size_t) N * cfg.hidden_size, sizeof(float));
	for (int r = 0; r < N; r++)
		for (int i = 0; i < cfg.hidden_size && mask[r]; i++)
			g.proj[r * cfg.hidden_size + i] = cai_rng_normal(&rng) / 8.0f;

	/* probes of up to CAI_GRAD_MAX_TENSORS tensors; without token types that table is no parameter */
	for (int next = 0; next < enc->n_tensors;)
	{
		cai_grad_probe p = {0};
		double		e = 1.0;
		cai_status	st;

		g.n_idx = 0;
		for (; next < enc->n_tensors && g.n_idx < CAI_GRAD_MAX_TENSORS; next++)
		{
			const cai_encoder_tensor *t = &enc->tensors[next];
			int			i = g.n_idx;

			if (next == 2 && distil)
				continue;
			g.idx[g.n_idx++] = next;
			p.name[i] = t->name;
			p.data[i] = enc->params + t->offset;
			p.numel[i] = t->numel;
			if (next <= 2)
			{
				/* the embedding tables: sample the rows the batch uses */
				p.rows[i] = next == 0 ? word_rows : next == 1 ? pos_rows : type_rows;
				p.n_rows[i] = next == 0 ? N : next == 1 ? T : 2;
				p.row_len[i] = cfg.hidden_size;
			}
			p.n_tensors = i + 1;
		}
		p.loss = grad_loss;
		p.free = grad_free;
		p.ctx = &g;
		st = cai_gradcheck_compare(&p, 6, &e, &err);
		CHECK(st == CAI_OK, "gradient check runs: %s", err.msg);
		CHECK(e < 1e-2, "%s gradient check of tensors %s .. %s (dropout %s): max relative error %g",
			  distil ? "DistilBERT" : "BERT", p.name[0], p.name[p.n_tensors - 1], training ? "on" : "off", e);
		worst = e > worst ? e : worst;
		checked += p.n_tensors;
	}
	CHECK(checked == (distil ? 4 : 5) + 16 * 2, "every parameter tensor checked (%d)", checked);
	printf("%s encoder gradient check (dropout %s): %d tensors, max relative error %.3g\n",
		   distil ? "DistilBERT" : "BERT", training ? "on" : "off", checked, worst);

	/* the input-embedding gradient: word, position and token-type gradients are its scatter */
	{
		const float *de = cai_encoder_input_grad(acts);
		double		sum_de = 0.0;
		double		sum_pos = 0.0;
		double		sum_abs = 0.0;
		double		row_diff = 0.0;
		double		loss;
		float	   *gr[CAI_GRAD_MAX_TENSORS] = {0};

		g.n_idx = 0;			/* copy nothing */
		CHECK(grad_loss(&g, gr, &loss, &err) == CAI_OK, "backward: %s", err.msg);
		for (int i = 0; i < N * cfg.hidden_size; i++)
		{
			sum_de += de[i];
			sum_abs += fabs(de[i]);
		}
		for (int i = 0; i < T * cfg.hidden_size; i++)
			sum_pos += grads->data[enc->tensors[1].offset + i];
		/* token 1 occurs once (position 0): its word-gradient row is that position's input gradient */
		for (int i = 0; i < cfg.hidden_size; i++)
			row_diff += fabs(grads->data[enc->tensors[0].offset + 1 * cfg.hidden_size + i] - de[i]);
		CHECK(sum_abs > 0.0, "the input gradient is not zero");
		CHECK(fabs(sum_de - sum_pos) < 1e-5 * (1 + sum_abs), "input gradient sums to the position gradient");
		CHECK(row_diff < 1e-6, "word gradient row of a single occurrence = its input gradient (%g)", row_diff);
		for (int i = 8 * cfg.hidden_size; i < N * cfg.hidden_size; i++)
			CHECK(de[i] == 0.0f, "padded position %d gets no input gradient", i / cfg.hidden_size);
	}
done:
	free(g.proj);
	cai_encoder_acts_free(acts);
	cai_encoder_grads_free(grads);
	cai_encoder_free(enc);
}

/* Dropout: off in inference and at p = 0; with a seed, the same masks. */
static void
test_dropout(const cai_encoder_config *fixture_cfg, const Batch *in)
{
	cai_encoder_config cfg = *fixture_cfg;
	Bytes		b = read_file("model.safetensors");
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_error	err = {0};
	const size_t n = (size_t) in->B * in->T * cfg.hidden_size;
	float	   *x[4];
	cai_rng		rng;
	cai_status	st;

	for (int i = 0; i < 4; i++)
		x[i] = calloc(n, sizeof(float));
	if (b.data == NULL || cai_encoder_from_safetensors(&cfg, b.data, b.len, &enc, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, in->B, in->T, true, &acts, &err) != CAI_OK)
	{
		CHECK(false, "dropout test setup: %s", err.msg);
		goto done;
	}
	/* 0: inference; 1, 2: training, seed 5 twice; 3: training with the probabilities set to 0 */
	for (int i = 0; i < 4; i++)
	{
		cai_rng_seed(&rng, 5);
		enc->cfg.hidden_dropout_prob = i == 3 ? 0.0f : cfg.hidden_dropout_prob;
		enc->cfg.attention_probs_dropout_prob = i == 3 ? 0.0f : cfg.attention_probs_dropout_prob;
		st = cai_encoder_forward(enc, acts, in->ids, in->seg, in->mask, i > 0, &rng, &err);
		CHECK(st == CAI_OK, "forward %d: %s", i, err.msg);
		memcpy(x[i], cai_encoder_output(acts), n * sizeof(float));
	}
	CHECK(memcmp(x[1], x[2], n * sizeof(float)) == 0, "the same seed gives the same dropout");
	CHECK(memcmp(x[0], x[1], n * sizeof(float)) != 0, "dropout changes the training outputs");
	CHECK(memcmp(x[0], x[3], n * sizeof(float)) == 0, "dropout 0 in training equals inference");
	enc->cfg.hidden_dropout_prob = cfg.hidden_dropout_prob;
	enc->cfg.attention_probs_dropout_prob = cfg.attention_probs_dropout_prob;
	st = cai_encoder_forward(enc, acts, in->ids, in->seg, in->mask, true, NULL, &err);
	CHECK(st == CAI_ERR_INVALID && strstr(err.msg, "generator"), "dropout without a generator: %s", err.msg);
	/* inference acts refuse a training pass */
	{
		cai_encoder_acts *inf = NULL;

		if (cai_encoder_acts_create(&cfg, in->B, in->T, false, &inf, &err) == CAI_OK)
		{
			st = cai_encoder_forward(enc, inf, in->ids, in->seg, in->mask, true, &rng, &err);
			CHECK(st == CAI_ERR_INVALID, "training pass on inference activations: %s", cai_status_name(st));
		}
		cai_encoder_acts_free(inf);
	}
done:
	for (int i = 0; i < 4; i++)
		free(x[i]);
	cai_encoder_acts_free(acts);
	cai_encoder_free(enc);
	free(b.data);
}

/* ------------------------------------------------------------------ */
/* Damaged checkpoints and inputs */

/*
 * A copy of b with the first `from` after `anchor` in its header replaced
 * by `to` (of any length: the header length is rewritten, the data buffer
 * and its offsets stay).
 */
static Bytes
patched(const Bytes *b, const char *anchor, const char *from, const char *to)
{
	uint64_t	hlen;
	Bytes		c = {0};
	const char *h = (const char *) b->data + 8;
	const char *a;
	const char *f = NULL;
	size_t		at;
	uint64_t	nlen;

	memcpy(&hlen, b->data, 8);
	a = memmem(h, hlen, anchor, strlen(anchor));
	if (a != NULL)
		f = memmem(a, hlen - (size_t) (a - h), from, strlen(from));
	CHECK(f != NULL, "patch %s: %s -> %s", anchor, from, to);
	if (f == NULL)
		f = h;
	at = (size_t) (f - h);
	nlen = hlen - (f != h ? strlen(from) : 0) + (f != h ? strlen(to) : 0);
	c.len = b->len - hlen + nlen;
	c.data = malloc(c.len);
	memcpy(c.data, &nlen, 8);
	memcpy(c.data + 8, h, at);
	if (f != h)
	{
		memcpy(c.data + 8 + at, to, strlen(to));
		memcpy(c.data + 8 + at + strlen(to), f + strlen(from), hlen - at - strlen(from));
	}
	else
		memcpy(c.data + 8, h, hlen);
	memcpy(c.data + 8 + nlen, b->data + 8 + hlen, b->len - 8 - hlen);
	return c;
}

static void
expect_load(const cai_encoder_config *cfg, const Bytes *b, cai_status want, const char *name, const char *what)
{
	cai_encoder *enc = NULL;
	cai_error	err = {0};
	cai_status	st = cai_encoder_from_safetensors(cfg, b->data, b->len, &enc, &err);

	CHECK(st == want, "%s: status %s, want %s (%s)", what, cai_status_name(st), cai_status_name(want), err.msg);
	CHECK(name == NULL || strstr(err.msg, name) != NULL, "%s: message \"%s\" names %s", what, err.msg, name);
	CHECK((st == CAI_OK) == (enc != NULL), "%s: an encoder exactly on success", what);
	cai_encoder_free(enc);
}

static void
test_damaged(const cai_encoder_config *cfg, const Batch *in)
{
	Bytes		b = read_file("model.safetensors");
	Bytes		c;
	cai_encoder_config other;
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_error	err = {0};
	int			fails = 0;
	cai_rng		rng;
	size_t		hdr;

	if (b.data == NULL)
	{
		CHECK(false, "model.safetensors read");
		return;
	}
	/* shapes and tensor sets against the config */
	for (int k = 0; k < 5; k++)
	{
		static const struct
		{
			cai_status	st;
			const char *name;
			const char *what;
		}			want[5] = {
			{CAI_ERR_FORMAT, "bert.encoder.layer.0.intermediate.dense.weight", "intermediate 12"},
			{CAI_ERR_FORMAT, "bert.embeddings.word_embeddings.weight", "vocabulary 17"},
			{CAI_ERR_FORMAT, "bert.encoder.layer.2.attention.self.query.weight", "3 layers: missing"},
			{CAI_ERR_FORMAT, "bert.encoder.layer.1.", "1 layer: extra tensors"},
			{CAI_ERR_INVALID, "num_attention_heads", "3 heads: config checked at load"},
		};

		other = *cfg;
		other.intermediate_size = k == 0 ? 12 : cfg->intermediate_size;
		other.vocab_size = k == 1 ? 17 : cfg->vocab_size;
		other.num_hidden_layers = k == 2 ? 3 : k == 3 ? 1 : cfg->num_hidden_layers;
		other.num_attention_heads = k == 4 ? 3 : cfg->num_attention_heads;
		expect_load(&other, &b, want[k].st, want[k].name, want[k].what);
	}

	/* a renamed tensor: missing, then an unknown one */
	c = patched(&b, "bert.encoder.layer.0.attention.self.key.weight", "key.weight", "kez.weight");
	expect_load(cfg, &c, CAI_ERR_FORMAT, "bert.encoder.layer.0.attention.self.key.weight", "missing key");
	free(c.data);
	c = patched(&b, "bert.pooler.dense.bias", "pooler.dense", "poolerXdense");
	expect_load(cfg, &c, CAI_ERR_FORMAT, "bert.poolerXdense.bias", "unknown tensor");
	free(c.data);
	/* the same tensor under its new and its old name */
	c = patched(&b, "bert.pooler.dense.bias", "pooler.dense.bias", "embeddings.LayerNorm.beta");
	expect_load(cfg, &c, CAI_ERR_FORMAT, "bert.embeddings.LayerNorm.beta", "bias and beta");
	free(c.data);
	/* LayerNorm's old name for the bias is accepted */
	c = patched(&b, "bert.embeddings.LayerNorm.bias", "LayerNorm.bias", "LayerNorm.beta");
	expect_load(cfg, &c, CAI_OK, NULL, "LayerNorm.beta");
	free(c.data);
	/* a dtype of the same size the encoder does not take */
	c = patched(&b, "\"bert.embeddings.LayerNorm.bias\"", "F32", "I32");
	expect_load(cfg, &c, CAI_ERR_FORMAT, "bert.embeddings.LayerNorm.bias", "I32 tensor");
	free(c.data);
	/* a NaN in the first tensor of the data buffer */
	memcpy(&hdr, b.data, 8);
	c.data = malloc(b.len);
	c.len = b.len;
	memcpy(c.data, b.data, b.len);
	memcpy(c.data + 8 + hdr, &(float)
		   {
		   NAN
		   }, sizeof(float));
	expect_load(cfg, &c, CAI_ERR_NUMERIC, "bert.embeddings.LayerNorm.bias", "NaN");
	free(c.data);

	/* every truncation (exact-size copies, so that a read past the end is caught by ASan) */
	for (size_t len = 0; len < b.len; len += len < hdr + 16 ? 1 : 13)
	{
		unsigned char *t = malloc(len ? len : 1);
		cai_status	st;

		memcpy(t, b.data, len);
		st = cai_encoder_from_safetensors(cfg, t, len, &enc, &err);
		if (st != CAI_ERR_FORMAT || enc != NULL)
			fails++;
		cai_encoder_free(enc);
		enc = NULL;
		free(t);
	}
	CHECK(fails == 0, "every truncated file is refused with CAI_ERR_FORMAT (%d not)", fails);

	/* flipped bytes: any status, never a crash, never an encoder with a non-finite weight */
	cai_rng_seed(&rng, 9);
	fails = 0;
	for (int k = 0; k < 300; k++)
	{
		unsigned char *t = malloc(b.len);
		cai_status	st;

		memcpy(t, b.data, b.len);
		for (int j = 0; j < 3; j++)
			t[cai_rng_below(&rng, (uint32_t) (k % 2 ? hdr + 8 : b.len))] ^= (unsigned char) (1 + cai_rng_below(&rng, 255));
		st = cai_encoder_from_safetensors(cfg, t, b.len, &enc, &err);
		if (st == CAI_OK)
			for (size_t i = 0; i < enc->n_params; i++)
				if (!isfinite(enc->params[i]))
					fails++;
		cai_encoder_free(enc);
		enc = NULL;
		free(t);
	}
	CHECK(fails == 0, "flipped bytes never give non-finite weights");

	/* bad inputs to the forward pass */
	if (cai_encoder_from_safetensors(cfg, b.data, b.len, &enc, &err) == CAI_OK &&
		cai_encoder_acts_create(cfg, in->B, in->T, false, &acts, &err) == CAI_OK)
	{
		int32_t    *ids = malloc(sizeof(int32_t) * in->B * in->T);
		uint8_t    *mask = malloc((size_t) in->B * in->T);
		cai_status	st;

		memcpy(ids, in->ids, sizeof(int32_t) * in->B * in->T);
		memcpy(mask, in->mask, (size_t) in->B * in->T);
		ids[3] = cfg->vocab_size;
		st = cai_encoder_forward(enc, acts, ids, in->seg, in->mask, false, NULL, &err);
		CHECK(st == CAI_ERR_INVALID && strstr(err.msg, "vocabulary"), "id out of range: %s", err.msg);
		ids[3] = in->ids[3];
		ids[4] = in->ids[4];
		mask[2] = 2;
		st = cai_encoder_forward(enc, acts, ids, in->seg, mask, false, NULL, &err);
		CHECK(st == CAI_ERR_INVALID, "mask value 2: %s", err.msg);
		ids[0] = cfg->type_vocab_size;
		st = cai_encoder_forward(enc, acts, in->ids, ids, in->mask, false, NULL, &err);
		CHECK(st == CAI_ERR_INVALID && strstr(err.msg, "segment"), "segment out of range: %s", err.msg);
		free(ids);
		free(mask);
	}
	else
		CHECK(false, "load: %s", err.msg);
	cai_encoder_acts_free(acts);
	acts = NULL;
	{
		cai_status	st = cai_encoder_acts_create(cfg, 1, cfg->max_position_embeddings + 1, false, &acts, &err);
		cai_encoder_config longer = *cfg;

		CHECK(st == CAI_ERR_INVALID && acts == NULL, "T beyond max_position_embeddings: %s", err.msg);
		/* activations of a config with more positions, used with this encoder */
		longer.max_position_embeddings = cfg->max_position_embeddings + 1;
		if (enc != NULL && cai_encoder_acts_create(&longer, 1, longer.max_position_embeddings, false, &acts, &err) == CAI_OK)
		{
			int32_t    *ids = calloc((size_t) longer.max_position_embeddings, sizeof(int32_t));

			st = cai_encoder_forward(enc, acts, ids, NULL, NULL, false, NULL, &err);
			CHECK(st == CAI_ERR_INVALID, "activations longer than the position table: %s", err.msg);
			free(ids);
		}
		cai_encoder_acts_free(acts);
	}
	cai_encoder_free(enc);
	free(b.data);
}

/* ------------------------------------------------------------------ */

static size_t counted;

static void *
count_alloc(void *ctx, size_t size)
{
	counted += size;
	return malloc(size);
}

static void
count_free(void *ctx, void *ptr)
{
	free(ptr);
}

static void
test_memory(void)
{
	cai_encoder_config base = {
		.vocab_size = 30522, .hidden_size = 768, .num_hidden_layers = 12, .num_attention_heads = 12,
		.intermediate_size = 3072, .max_position_embeddings = 512, .type_vocab_size = 2,
		.layer_norm_eps = 1e-12f, .hidden_dropout_prob = 0.1f, .attention_probs_dropout_prob = 0.1f,
	};
	cai_encoder_config tiny = {
		.vocab_size = 11, .hidden_size = 8, .num_hidden_layers = 2, .num_attention_heads = 2,
		.intermediate_size = 12, .max_position_embeddings = 7, .type_vocab_size = 2,
		.layer_norm_eps = 1e-12f,
	};
	size_t		p1 = 0;
	size_t		p2 = 0;
	size_t		a_inf = 0;
	size_t		a_train = 0;
	size_t		total = 0;
	cai_error	err = {0};
	cai_status	st;
	cai_encoder *enc = NULL;

	CHECK(cai_encoder_param_bytes(&base, false, &p1) && cai_encoder_param_bytes(&base, true, &p2),
		  "bert-base parameter bytes");
	/* bert-base has 109,482,240 parameters without the pooler (108,891,648 + 590,592 pooler = 109,482,240 with) */
	CHECK(p1 >= 108891648ull * 4 && p1 < 108891648ull * 4 + (1 << 20), "bert-base: %zu bytes of parameters", p1);
	CHECK(p2 > 2 * 108891648ull * 4 && p2 < 2 * 108891648ull * 4 + (1 << 20), "with gradients: %zu", p2);
	CHECK(cai_encoder_act_bytes(&base, 8, 128, false, &a_inf) && cai_encoder_act_bytes(&base, 8, 128, true, &a_train),
		  "bert-base activation bytes");
	CHECK(a_train > a_inf, "the backward pass needs more (%zu > %zu)", a_train, a_inf);
	printf("bert-base: parameters %.1f MB (%.1f MB with gradients); activations for 8 x 128: inference %.1f MB, "
		   "training %.1f MB\n", p1 / 1048576.0, p2 / 1048576.0, a_inf / 1048576.0, a_train / 1048576.0);
	st = cai_encoder_memory_check(&base, 8, 128, true, (size_t) 512 << 20, &total, &err);
	CHECK(st == CAI_ERR_LIMIT && strstr(err.msg, "MB"), "refused beyond the limit: %s", err.msg);
	st = cai_encoder_memory_check(&base, 8, 128, true, 0, &total, &err);
	CHECK(st == CAI_OK && total == p2 + a_train, "no limit: %zu bytes", total);
	st = cai_encoder_memory_check(&base, 1 << 30, 512, true, 0, &total, &err);
	CHECK(st == CAI_ERR_LIMIT && strstr(err.msg, "too large"), "a batch beyond int rows is refused: %s", err.msg);
	st = cai_encoder_memory_check(&base, 8, 513, false, 0, &total, &err);
	CHECK(st == CAI_ERR_INVALID && strstr(err.msg, "max_position_embeddings"), "T > P: %s", err.msg);
	CHECK(!cai_encoder_act_bytes(&base, 0, 8, false, &a_inf), "B = 0 has no size");
	/* the estimate is what the encoder allocates, byte for byte (a counting allocator) */
	for (int bw = 0; bw < 2; bw++)
	{
		cai_allocator counting = {count_alloc, count_free, NULL};
		cai_encoder_grads *grads = NULL;
		cai_encoder_acts *acts = NULL;
		size_t		want = 0;

		CHECK(cai_encoder_memory_check(&tiny, 3, 5, bw, 0, &want, &err) == CAI_OK, "tiny estimate: %s", err.msg);
		counted = 0;
		cai_set_allocator(&counting);
		st = cai_encoder_create(&tiny, &enc, &err);
		if (st == CAI_OK && bw)
			st = cai_encoder_grads_create(enc, &grads, &err);
		if (st == CAI_OK)
			st = cai_encoder_acts_create(&tiny, 3, 5, bw, &acts, &err);
		cai_set_allocator(NULL);
		CHECK(st == CAI_OK, "tiny create: %s", err.msg);
		CHECK(counted == want, "%s: allocated %zu bytes, estimated %zu", bw ? "training" : "inference", counted, want);
		cai_encoder_acts_free(acts);
		cai_encoder_grads_free(grads);
		cai_encoder_free(enc);
		enc = NULL;
	}
	/* the slab size matches the parameter count */
	CHECK(cai_encoder_create(&tiny, &enc, &err) == CAI_OK, "tiny create: %s", err.msg);
	if (enc != NULL)
	{
		size_t		want = (11 + 7 + 2 + 2) * 8 + 2 * (4 * 8 * 8 + 4 * 8 + 2 * 8 * 12 + 12 + 8 + 4 * 8);

		CHECK(enc->n_params == want, "tiny parameter count %zu, want %zu", enc->n_params, want);
		CHECK(enc->n_tensors == 37 && strcmp(enc->tensors[36].name, "encoder.layer.1.output.LayerNorm.bias") == 0,
			  "tensor table ends with %s", enc->tensors[enc->n_tensors - 1].name);
	}
	cai_encoder_free(enc);
}

/* Inference activations (two layers reused in turn) give what the training layout gives. */
static void
test_inference_reuse(void)
{
	cai_encoder_config cfg = {
		.vocab_size = 11, .hidden_size = 8, .num_hidden_layers = 4, .num_attention_heads = 2,
		.intermediate_size = 12, .max_position_embeddings = 7, .type_vocab_size = 2,
		.layer_norm_eps = 1e-12f, .hidden_dropout_prob = 0.1f, .attention_probs_dropout_prob = 0.1f,
	};
	const int32_t ids[6] = {1, 2, 3, 4, 5, 6};
	const uint8_t mask[6] = {1, 1, 1, 1, 1, 0};
	cai_encoder *enc = NULL;
	cai_encoder_acts *inf = NULL;
	cai_encoder_acts *full = NULL;
	cai_error	err = {0};
	cai_rng		rng;

	cai_rng_seed(&rng, 11);
	if (cai_encoder_create(&cfg, &enc, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, 2, 3, false, &inf, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, 2, 3, true, &full, &err) != CAI_OK)
		CHECK(false, "reuse setup: %s", err.msg);
	else
	{
		cai_encoder_init_random(enc, 0.5f, &rng);
		CHECK(cai_encoder_forward(enc, inf, ids, NULL, mask, false, NULL, &err) == CAI_OK &&
			  cai_encoder_forward(enc, full, ids, NULL, mask, false, NULL, &err) == CAI_OK, "forward: %s", err.msg);
		CHECK(memcmp(cai_encoder_output(inf), cai_encoder_output(full), sizeof(float) * 6 * 8) == 0,
			  "4 layers: inference activations give the same outputs as the backward layout");
		CHECK(cai_encoder_input_grad(inf) == NULL, "no input gradient without the backward layout");
	}
	cai_encoder_acts_free(inf);
	cai_encoder_acts_free(full);
	cai_encoder_free(enc);
}

/*
 * The forward and backward passes on 1 and 2 threads: the (sequence, head)
 * attention units (forward and backward), layer norms and GELU shared out
 * over the SGEMM's helper threads (cai_gemm_parallel, with the core's
 * kernel) give the same bits as one thread, for inference and for a
 * training pass with dropout (same seed) and its gradients; a batch large
 * enough for every part to be shared out (PAR_MIN).  The products run on
 * the core's kernel for this CPU (AVX2 or AVX-512): OpenBLAS, which an AVX2
 * CPU's encoder uses by default, promises nothing about its threads' bits
 * (its Zen kernels differ between 1 and 2 threads).
 */
static void
test_forward_threads(void)
{
	cai_encoder_config cfg = {
		.vocab_size = 50, .hidden_size = 128, .num_hidden_layers = 2, .num_attention_heads = 2,
		.intermediate_size = 512, .max_position_embeddings = 64, .type_vocab_size = 2,
		.layer_norm_eps = 1e-12f, .hidden_dropout_prob = 0.1f, .attention_probs_dropout_prob = 0.1f,
	};
	enum {B = 8, T = 64};
	const size_t out_n = (size_t) B * T * 128;
	const int	old_threads = cai_blas_get_threads();
	int32_t		ids[B * T];
	uint8_t		mask[B * T];
	float	   *want[2] = {malloc(sizeof(float) * out_n), malloc(sizeof(float) * out_n)};
	float	   *dout = malloc(sizeof(float) * out_n);
	float	   *want_grads = NULL;
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_encoder_grads *grads = NULL;
	cai_error	err = {0};
	cai_rng		rng;

	for (int r = 0; r < B * T; r++)
	{
		ids[r] = (r * 7 + 3) % 50;
		mask[r] = (r % T) < T - (r / T) * 3;	/* every row padded differently, the first not at all */
	}
	cai_rng_seed(&rng, 5);
	if (want[0] == NULL || want[1] == NULL || dout == NULL || cai_encoder_create(&cfg, &enc, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, B, T, true, &acts, &err) != CAI_OK ||
		cai_encoder_grads_create(enc, &grads, &err) != CAI_OK ||
		(want_grads = malloc(sizeof(float) * grads->n_params)) == NULL)
	{
		CHECK(false, "threads setup: %s", err.msg);
		goto done;
	}
	cai_encoder_init_random(enc, 0.2f, &rng);
	for (size_t i = 0; i < out_n; i++)
		dout[i] = mask[i / 128] ? cai_rng_normal(&rng) : 0.0f;
	if (cai_gemm_cpu_isa() == CAI_GEMM_BLAS)
	{
		printf("  threads: no kernel of the core's on this CPU, bits of 1 vs 2 threads not checked\n");
		goto done;
	}
	cai_gemm_encoder_use(cai_gemm_cpu_isa());
	for (int threads = 1; threads <= 2; threads++)
		for (int training = 0; training <= 1; training++)
		{
			cai_status	st;

			cai_blas_set_threads(threads);
			cai_rng_seed(&rng, 99);
			st = cai_encoder_forward(enc, acts, ids, NULL, mask, training, &rng, &err);
			CHECK(st == CAI_OK, "forward, %d thread(s): %s", threads, err.msg);
			if (st != CAI_OK)
				continue;
			if (threads == 1)
				memcpy(want[training], cai_encoder_output(acts), sizeof(float) * out_n);
			else
				CHECK(memcmp(want[training], cai_encoder_output(acts), sizeof(float) * out_n) == 0,
					  "%s forward: 2 threads give one thread's bits", training ? "training" : "inference");
			if (!training)
				continue;
			cai_encoder_grads_zero(grads);
			st = cai_encoder_backward(enc, acts, grads, dout, ids, NULL, mask, &err);
			CHECK(st == CAI_OK, "backward, %d thread(s): %s", threads, err.msg);
			if (st == CAI_OK && threads == 1)
				memcpy(want_grads, grads->data, sizeof(float) * grads->n_params);
			else if (st == CAI_OK)
				CHECK(memcmp(want_grads, grads->data, sizeof(float) * grads->n_params) == 0,
					  "backward: 2 threads give one thread's gradients, bit for bit");
		}
done:
	cai_gemm_encoder_use((cai_gemm_isa) -1);	/* back to the default rule */
	cai_blas_set_threads(old_threads);
	cai_encoder_grads_free(grads);
	cai_encoder_acts_free(acts);
	cai_encoder_free(enc);
	free(want[0]);
	free(want[1]);
	free(dout);
	free(want_grads);
}

/* Data-parallel training: two pool shards, each on half the batch with its own acts and grads. */
typedef struct ShardCtx
{
	const cai_encoder *enc;
	cai_encoder_acts *acts[2];
	cai_encoder_grads *grads[2];
	const int32_t *ids;
	const uint8_t *mask;
	const float *dout;
	int			rows;			/* B * T of one shard */
	int			H;
} ShardCtx;

static cai_status
shard_job(void *vctx, int s, cai_error *err)
{
	ShardCtx   *c = vctx;
	const size_t r0 = (size_t) s * c->rows;
	cai_status	st;

	if ((st = cai_encoder_forward(c->enc, c->acts[s], c->ids + r0, NULL, c->mask + r0, false, NULL, err)) != CAI_OK)
		return st;
	return cai_encoder_backward(c->enc, c->acts[s], c->grads[s], c->dout + r0 * c->H, c->ids + r0, NULL,
								c->mask + r0, err);
}

static void
test_shards(void)
{
	cai_encoder_config cfg = {
		.vocab_size = 11, .hidden_size = 8, .num_hidden_layers = 2, .num_attention_heads = 2,
		.intermediate_size = 12, .max_position_embeddings = 7, .type_vocab_size = 2,
		.layer_norm_eps = 1e-12f,
	};
	enum
	{
		B = 4, T = 5, N = B * T, H = 8
	};
	int32_t		ids[N];
	uint8_t		mask[N];
	float		dout[N * H];
	cai_encoder *enc = NULL;
	cai_encoder_acts *full = NULL;
	cai_encoder_grads *g_full = NULL;
	ShardCtx	c = {0};
	cai_pool	pool = {0};
	cai_error	err = {0};
	cai_rng		rng;
	cai_status	st;

	cai_rng_seed(&rng, 21);
	for (int r = 0; r < N; r++)
	{
		ids[r] = (int32_t) cai_rng_below(&rng, 11);
		mask[r] = (r % T) < T - (r / T);
	}
	for (int i = 0; i < N * H; i++)
		dout[i] = mask[i / H] ? cai_rng_normal(&rng) : 0.0f;
	if (cai_encoder_create(&cfg, &enc, &err) != CAI_OK || cai_encoder_grads_create(enc, &g_full, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, B, T, true, &full, &err) != CAI_OK)
	{
		CHECK(false, "shards setup: %s", err.msg);
		goto done;
	}
	cai_encoder_init_random(enc, 0.5f, &rng);
	c.enc = enc;
	c.ids = ids;
	c.mask = mask;
	c.dout = dout;
	c.rows = N / 2;
	c.H = H;
	for (int s = 0; s < 2; s++)
		if (cai_encoder_grads_create(enc, &c.grads[s], &err) != CAI_OK ||
			cai_encoder_acts_create(&cfg, B / 2, T, true, &c.acts[s], &err) != CAI_OK)
		{
			CHECK(false, "shard buffers: %s", err.msg);
			goto done;
		}
	st = cai_encoder_forward(enc, full, ids, NULL, mask, false, NULL, &err);
	if (st == CAI_OK)
		st = cai_encoder_backward(enc, full, g_full, dout, ids, NULL, mask, &err);
	CHECK(st == CAI_OK, "whole batch: %s", err.msg);
	cai_pool_start(&pool, 2);
	CHECK(pool.n == 2, "a pool of 2 shards started (%d)", pool.n);
	if (pool.n == 2)
	{
		st = cai_pool_run(&pool, shard_job, &c, &err);
		CHECK(st == CAI_OK, "the shards run on the pool (no allocation on a pool thread): %s", err.msg);
		for (size_t i = 0; i < enc->n_params; i++)
			c.grads[0]->data[i] += c.grads[1]->data[i];
		/* the halves' sums in another order than the whole batch's (an absolute 1e-5: entries cancel) */
		CHECK_CLOSE("shard gradients summed", c.grads[0]->data, g_full->data, enc->n_params, 1e-4f, 1e-5f);
		CHECK_CLOSE("shard 0 outputs", cai_encoder_output(c.acts[0]), cai_encoder_output(full), N / 2 * H, 1e-5f,
					1e-6f);
		CHECK_CLOSE("shard 1 outputs", cai_encoder_output(c.acts[1]), cai_encoder_output(full) + N / 2 * H, N / 2 * H,
					1e-5f, 1e-6f);
	}
	cai_pool_stop(&pool);
done:
	for (int s = 0; s < 2; s++)
	{
		cai_encoder_acts_free(c.acts[s]);
		cai_encoder_grads_free(c.grads[s]);
	}
	cai_encoder_acts_free(full);
	cai_encoder_grads_free(g_full);
	cai_encoder_free(enc);
}

/* A bundle from the fixture checkpoint's three files; errors name the file. */
static void
test_bundle(void)
{
	Bytes		conf = read_file("config.json");
	Bytes		w = read_file("model.safetensors");
	const char *specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
	char		vocab[256];
	char		big[256];
	cai_encoder_bundle *b = NULL;
	cai_error	err;
	cai_status	st;
	int			i;

	if (conf.data == NULL || w.data == NULL)
	{
		CHECK(false, "bundle fixtures read");
		free(conf.data);
		free(w.data);
		return;
	}
	/* 16 tokens, the fixture's vocab_size; then 17 */
	snprintf(vocab, sizeof(vocab), "%s", specials);
	for (i = 5; i < 16; i++)
		snprintf(vocab + strlen(vocab), sizeof(vocab) - strlen(vocab), "w%d\n", i);
	snprintf(big, sizeof(big), "%sextra\n", vocab);

	st = cai_encoder_bundle_from_checkpoint((const char *) conf.data, conf.len, vocab, strlen(vocab),
											w.data, w.len, NULL, &b, &err);
	CHECK(st == CAI_OK && b != NULL, "bundle from config, vocab and weights: %s", err.msg);
	if (b != NULL)
	{
		CHECK(b->cfg.vocab_size == 16 && cai_wordpiece_vocab_size(b->vocab) == 16 && b->enc != NULL,
			  "bundle holds the config, vocabulary and weights");
		CHECK(b->wp.lower_case, "bundle tokenizer options default to uncased");
	}
	cai_encoder_bundle_free(b);

	b = NULL;
	st = cai_encoder_bundle_from_checkpoint((const char *) conf.data, conf.len, big, strlen(big),
											w.data, w.len, NULL, &b, &err);
	CHECK(st == CAI_ERR_FORMAT && b == NULL && strstr(err.msg, "vocab_size 16") != NULL,
		  "a vocabulary larger than the embedding table is refused: %s", err.msg);

	st = cai_encoder_bundle_from_checkpoint("{", 1, vocab, strlen(vocab), w.data, w.len, NULL, &b, &err);
	CHECK(st == CAI_ERR_FORMAT && strncmp(err.msg, "config.json: ", 13) == 0,
		  "a broken config names config.json: %s", err.msg);
	st = cai_encoder_bundle_from_checkpoint((const char *) conf.data, conf.len, "[PAD]\n[UNK]\n", 12,
											w.data, w.len, NULL, &b, &err);
	CHECK(st == CAI_ERR_FORMAT && strncmp(err.msg, "vocab.txt: ", 11) == 0,
		  "a vocabulary without [CLS] names vocab.txt: %s", err.msg);
	st = cai_encoder_bundle_from_checkpoint((const char *) conf.data, conf.len, vocab, strlen(vocab),
											w.data, w.len / 2, NULL, &b, &err);
	CHECK(st != CAI_OK && b == NULL && strncmp(err.msg, "model.safetensors: ", 19) == 0,
		  "truncated weights name model.safetensors: %s", err.msg);
	free(conf.data);
	free(w.data);
}

/* ------------------------------------------------------------------ */

/*
 * The logits of a transformer model's head on the reference encoder
 * (encoder_torch.h: the reference's random head through tf_forward_infer):
 * per token, mean pooling and [CLS] pooling, each within 1e-4 absolute of
 * PyTorch's float64 logits (logits.txt).
 */
static void
test_torch_logits(const cai_encoder_config *cfg, cai_encoder *enc, const Batch *in)
{
	const int	H = cfg->hidden_size;
	cai_error	err = {0};
	float	   *head = read_floats("head.txt", 2);
	float	   *want = NULL;
	float	   *got = NULL;
	size_t		n_tok = 0;
	int			K;

	for (int r = 0; r < in->B * in->T; r++)
		n_tok += in->mask[r] != 0;
	K = head != NULL && (int) head[1] == H ? (int) head[0] : 0;
	free(head);
	CHECK(K >= 2 && K <= 64, "torch fixture head.txt: K x H = %d x %d", K, H);
	if (K < 2 || K > 64)
		return;
	head = read_floats("head.txt", 2 + (size_t) K * H + (size_t) K);
	want = read_floats("logits.txt", (n_tok + 2 * (size_t) in->B) * (size_t) K);
	got = calloc(n_tok * (size_t) K, sizeof(float));
	CHECK(head != NULL && want != NULL && got != NULL, "torch fixture head.txt and logits.txt read");
	for (int pass = 0; head != NULL && want != NULL && got != NULL && pass < TORCH_LOGIT_PASSES; pass++)
	{
		const size_t n = pass == 0 ? n_tok : (size_t) in->B;
		const float *w = want + (pass == 0 ? 0 : n_tok + (size_t) (pass - 1) * in->B) * (size_t) K;
		cai_status	st = torch_logits(cfg, enc, head + 2, K, in->B, in->T, in->ids, in->mask, pass, got, &err);

		CHECK(st == CAI_OK, "logits %s: %s", torch_logit_pass[pass], err.msg);
		if (st == CAI_OK)
			CHECK_CLOSE(torch_logit_pass[pass], got, w, n * (size_t) K, 0.0f, 1e-4f);
	}
	free(head);
	free(want);
	free(got);
}

/*
 * The PyTorch reference (bench/peers/encoder_torch_ref.py wrote
 * test/fixtures/encoder_torch/ with "encoder_torch_ref.py DIR 2 64 --vocab
 * 100 --positions 32 --batch 3 --seq 16", or $CAI_ENCODER_TORCH_FIXTURES): a
 * random 2-layer checkpoint in float64 autograd.  The last hidden states at the
 * unpadded positions within 1e-4 absolute (issue 13); the gradients of
 * loss = sum(hidden * dout) within 1e-4 of each tensor's largest reference
 * value, absolute: float32 sums over the batch's rows and the hidden size
 * carry relative errors near 1e-6 each, and the backward pass chains a few
 * dozen of them, so 1e-4 of the scale leaves a margin of about 10x while a
 * wrong term (a missing bias, a transposed weight) is off by the scale.
 */
static void
test_torch_reference(void)
{
	const char *saved = fixture_dir;
	cai_encoder_config cfg;
	Batch		in = {0};
	Bytes		b = {0};
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_encoder_grads *g = NULL;
	cai_error	err = {0};
	float	   *want = NULL;
	float	   *dout = NULL;
	FILE	   *f = NULL;
	char		path[512];
	char		name[64];
	size_t		numel;
	int			n_grads = 0;
	cai_status	st;

	fixture_dir = getenv("CAI_ENCODER_TORCH_FIXTURES");
	if (fixture_dir == NULL)
		fixture_dir = "test/fixtures/encoder_torch";
	if (!fixture_config("config.json", &cfg))
		goto done;
	CHECK(read_inputs(&in), "torch fixture inputs.txt read");
	b = read_file("model.safetensors");
	want = read_floats("expected.txt", (size_t) in.B * in.T * cfg.hidden_size);
	dout = read_floats("dout.txt", (size_t) in.B * in.T * cfg.hidden_size);
	CHECK(in.ids != NULL && b.data != NULL && want != NULL && dout != NULL, "torch fixtures read");
	if (in.ids == NULL || b.data == NULL || want == NULL || dout == NULL)
		goto done;
	st = cai_encoder_from_safetensors(&cfg, b.data, b.len, &enc, &err);
	CHECK(st == CAI_OK, "torch checkpoint loads: %s", err.msg);
	if (st == CAI_OK)
		st = cai_encoder_acts_create(&cfg, in.B, in.T, true, &acts, &err);
	if (st == CAI_OK)
		st = cai_encoder_grads_create(enc, &g, &err);
	if (st == CAI_OK)
		st = cai_encoder_forward(enc, acts, in.ids, in.seg, in.mask, false, NULL, &err);
	CHECK(st == CAI_OK, "torch reference forward: %s", err.msg);
	if (st != CAI_OK)
		goto done;
	for (int r = 0; r < in.B * in.T; r++)
		if (in.mask[r])
		{
			char		what[64];

			snprintf(what, sizeof(what), "torch hidden state row %d", r);
			CHECK_CLOSE(what, cai_encoder_output(acts) + (size_t) r * cfg.hidden_size,
						want + (size_t) r * cfg.hidden_size, (size_t) cfg.hidden_size, 0.0f, 1e-4f);
		}
	st = cai_encoder_backward(enc, acts, g, dout, in.ids, in.seg, in.mask, &err);
	CHECK(st == CAI_OK, "torch reference backward: %s", err.msg);
	if (st != CAI_OK)
		goto done;
	snprintf(path, sizeof(path), "%s/grads.txt", fixture_dir);
	f = fopen(path, "r");
	CHECK(f != NULL, "%s opens", path);
	while (f != NULL && fscanf(f, "%63s %zu", name, &numel) == 2)
	{
		const cai_encoder_tensor *t = NULL;
		float	   *ref = calloc(numel + 1, sizeof(float));
		float		scale = 0.0f;
		size_t		i;

		for (int k = 0; k < enc->n_tensors; k++)
			if (strcmp(enc->tensors[k].name, name) == 0)
				t = &enc->tensors[k];
		CHECK(t != NULL && t->numel == numel, "gradient %s: a tensor of %zu values", name, numel);
		for (i = 0; ref != NULL && i < numel && fscanf(f, "%f", &ref[i]) == 1; i++)
			scale = fmaxf(scale, fabsf(ref[i]));
		CHECK(ref != NULL && i == numel, "gradient %s read", name);
		if (t != NULL && t->numel == numel && ref != NULL && i == numel)
		{
			CHECK(scale > 0.0f, "gradient %s is not all zero", name);
			CHECK_CLOSE(name, g->data + t->offset, ref, numel, 0.0f, 1e-4f * scale);
			n_grads++;
		}
		free(ref);
		if (t == NULL || i != numel)
			break;
	}
	CHECK(n_grads >= 10, "%d gradients compared with PyTorch's", n_grads);
	test_torch_logits(&cfg, enc, &in);
done:
	if (f != NULL)
		fclose(f);
	cai_encoder_grads_free(g);
	cai_encoder_acts_free(acts);
	cai_encoder_free(enc);
	free(b.data);
	free(want);
	free(dout);
	free(in.ids);
	free(in.seg);
	free(in.mask);
	fixture_dir = saved;
}

int
main(void)
{
	cai_encoder_config cfg;
	Batch		in = {0};

	fixture_dir = getenv("CAI_ENCODER_FIXTURES");
	if (fixture_dir == NULL)
		fixture_dir = "test/fixtures/encoder";
	test_config();
	test_bundle();
	test_memory();
	test_inference_reuse();
	test_forward_threads();
	test_shards();
	test_gradients(false, CAI_ENC_BERT);
	test_gradients(true, CAI_ENC_BERT);
	test_gradients(true, CAI_ENC_DISTILBERT);
	test_torch_reference();
	if (fixture_config("config.json", &cfg))
	{
		CHECK(read_inputs(&in), "fixture inputs.txt read");
		if (in.ids != NULL)
		{
			check_reference(&cfg, &in, "model.safetensors", "expected.txt");
			check_reference(&cfg, &in, "model_noprefix.safetensors", "expected.txt");
			check_reference(&cfg, &in, "model_f16.safetensors", "expected_f16.txt");
			check_reference(&cfg, &in, "model_bf16.safetensors", "expected_bf16.txt");
			test_distilbert(&cfg, &in);
			test_padding(&cfg, &in);
			test_dropout(&cfg, &in);
			test_damaged(&cfg, &in);
		}
	}
	free(in.ids);
	free(in.seg);
	free(in.mask);
	return check_summary("test_encoder");
}
