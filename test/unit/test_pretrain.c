/*
 * test_pretrain.c: MLM pretraining (src/core/pretrain.c): on sentences of
 * a tiny grammar (the verb follows from the subject, the object's article
 * from the object) the MLM loss falls clearly and held-out masked-token
 * accuracy beats the unigram baseline; the result is an encoder model that
 * loads and embeds; the MLM head's gradient by finite differences
 * (the encoder's own are test_encoder's); whole-word masking takes whole
 * words within the budget and never specials; bytes identical for a seed
 * and thread count; cancel; memory refusal and bad options.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cai/encoder_model.h"
#include "cai/model.h"
#include "cai/options.h"
#include "cai/pretrain.h"
#include "check.h"
#include "../../src/core/gradcheck.h"
#include "../../src/core/pretrain_internal.h"

/* ---------------------------------------------------------------------- */
/* The corpus                                                             */
/* ---------------------------------------------------------------------- */

#define N_TEXTS 600

static const char *const subj[] = {"the cat", "the dog", "a bird", "the farmer", "my teacher", "the engine"};
static const char *const verb[] = {"meows at", "barks at", "sings to", "ploughs", "explains", "powers"};
static const char *const obj[] = {"the moon", "an apple", "the unbelievable lighthouse", "an orange",
	"the tractor", "an elephant"};
static const char *const adv[] = {"quietly", "loudly", "happily", "again"};

static char *texts[N_TEXTS];
static size_t lens[N_TEXTS];

static void
make_corpus(void)
{
	cai_rng		r;

	cai_rng_seed(&r, 7);
	for (int i = 0; i < N_TEXTS; i++)
	{
		char		buf[256];
		int			s = (int) cai_rng_below(&r, 6);
		int			o = (int) cai_rng_below(&r, 6);
		int			a = (int) cai_rng_below(&r, 4);

		snprintf(buf, sizeof(buf), "%s %s %s %s.", subj[s], verb[s], obj[o], adv[a]);
		texts[i] = strdup(buf);
		lens[i] = strlen(buf);
	}
}

static cai_options *
opts_of(const char *json)
{
	cai_options *o = NULL;
	cai_error	err = {0};

	if (cai_options_parse(cai_pretrain_option_defs, cai_pretrain_n_option_defs, json, &o, &err) != CAI_OK)
		fprintf(stderr, "options: %s\n", err.msg);
	return o;
}

static const char *small_opts =
"{\"layers\": 1, \"hidden\": 32, \"heads\": 2, \"intermediate\": 64, \"max_length\": 32,"
" \"vocab_size\": 120, \"batch_size\": 16, \"learning_rate\": 0.003, \"dropout\": 0.0,"
" \"validation_fraction\": 0.1, \"warmup\": 0.05";

static cai_status
run(const char *extra, bool (*progress) (void *, const cai_progress *), void *ctx, uint8_t **bytes,
	size_t *len, char **metrics, cai_error *err)
{
	char		json[1024];
	cai_options *o;
	cai_status	st;

	snprintf(json, sizeof(json), "%s%s}", small_opts, extra);
	if ((o = opts_of(json)) == NULL)
		return CAI_ERR_INVALID;
	st = cai_pretrain_run(o, (const char *const *) texts, lens, N_TEXTS, progress, ctx, bytes, len, metrics, err);
	cai_options_free(o);
	return st;
}

static double
jnum(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : NAN;
}

/* ---------------------------------------------------------------------- */

static void
test_learns(void)
{
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	char	   *metrics = NULL;
	cai_error	err = {0};
	cai_status	st = run(", \"epochs\": 40", NULL, NULL, &bytes, &len, &metrics, &err);
	json_object *m,
			   *curve;
	cai_model  *model = NULL;

	CHECK(st == CAI_OK, "pretraining failed: %s", err.msg);
	if (st != CAI_OK)
		return;
	m = json_tokener_parse(metrics);
	CHECK(m != NULL && json_object_object_get_ex(m, "loss_curve", &curve) &&
		  json_object_array_length(curve) >= 10, "loss curve in %s", metrics);
	if (m != NULL && json_object_object_get_ex(m, "loss_curve", &curve) && json_object_array_length(curve) >= 2)
	{
		double		first = json_object_get_double(json_object_array_get_idx(curve, 0));
		double		last = json_object_get_double(json_object_array_get_idx(curve,
																		 json_object_array_length(curve) - 1));

		printf("  loss %.3f -> %.3f, held-out accuracy %.3f (unigram %.3f), vocab %g\n", first, last,
			   jnum(m, "mlm_accuracy"), jnum(m, "unigram_accuracy"), jnum(m, "vocab_size"));
		CHECK(last < 0.6 * first, "loss fell from %g to %g only", first, last);
	}
	CHECK(jnum(m, "mlm_accuracy") > jnum(m, "unigram_accuracy") + 0.2,
		  "held-out accuracy %g vs unigram %g", jnum(m, "mlm_accuracy"), jnum(m, "unigram_accuracy"));
	CHECK(jnum(m, "vocab_size") > 40 && jnum(m, "vocab_size") <= 120, "vocab %g", jnum(m, "vocab_size"));
	CHECK(jnum(m, "validation_texts") == 60, "held out %g", jnum(m, "validation_texts"));
	json_object_put(m);

	/* an encoder model, usable as an imported one */
	st = cai_model_load(bytes, len, false, true, &model, &err);
	CHECK(st == CAI_OK, "load: %s", err.msg);
	if (st == CAI_OK)
	{
		const cai_encoder_bundle *b = cai_model_encoder_bundle(model);
		float		e1[32],
					e2[32];
		double		d = 0;

		CHECK(strcmp(cai_model_task(model), "encoder") == 0 && strcmp(cai_model_architecture(model), "bert") == 0,
			  "task %s", cai_model_task(model));
		CHECK(b != NULL && b->cfg.hidden_size == 32 && b->cfg.num_hidden_layers == 1, "bundle");
		CHECK(strstr(cai_model_meta_json(model), "\"mlm_accuracy\"") != NULL, "provenance has the figures");
		if (b != NULL &&
			cai_encoder_embed(b, "the cat meows", 13, CAI_POOL_MEAN, 0, e1, &err) == CAI_OK &&
			cai_encoder_embed(b, "the engine powers", 17, CAI_POOL_MEAN, 0, e2, &err) == CAI_OK)
		{
			for (int i = 0; i < 32; i++)
				d += fabs(e1[i] - e2[i]);
			CHECK(isfinite(d) && d > 1e-3, "embeddings differ (%g)", d);
		}
		else
			CHECK(false, "embed: %s", err.msg);
		cai_model_free(model);
	}
	cai_free(bytes);
	cai_free(metrics);
}

static void
test_determinism(void)
{
	uint8_t    *b[4] = {0};
	size_t		l[4] = {0};
	cai_error	err = {0};

	CHECK(run(", \"epochs\": 2, \"dropout\": 0.1", NULL, NULL, &b[0], &l[0], NULL, &err) == CAI_OK, "%s", err.msg);
	CHECK(run(", \"epochs\": 2, \"dropout\": 0.1", NULL, NULL, &b[1], &l[1], NULL, &err) == CAI_OK, "%s", err.msg);
	CHECK(run(", \"epochs\": 2, \"dropout\": 0.1, \"threads\": 2", NULL, NULL, &b[2], &l[2], NULL, &err) == CAI_OK,
		  "%s", err.msg);
	CHECK(run(", \"epochs\": 2, \"dropout\": 0.1, \"threads\": 2", NULL, NULL, &b[3], &l[3], NULL, &err) == CAI_OK,
		  "%s", err.msg);
	CHECK(l[0] > 0 && l[0] == l[1] && memcmp(b[0], b[1], l[0]) == 0, "one thread: same bytes");
	CHECK(l[2] > 0 && l[2] == l[3] && memcmp(b[2], b[3], l[2]) == 0, "two threads: same bytes");
	CHECK(l[0] != l[2] || memcmp(b[0], b[2], l[0]) != 0, "two shards draw other dropout masks");
	cai_free(b[0]);
	b[0] = NULL;
	CHECK(run(", \"epochs\": 2, \"dropout\": 0.1, \"seed\": 43", NULL, NULL, &b[0], &l[0], NULL, &err) == CAI_OK,
		  "%s", err.msg);
	CHECK(l[0] > 0 && (l[0] != l[1] || memcmp(b[0], b[1], l[0]) != 0), "another seed, other bytes");
	for (int i = 0; i < 4; i++)
		cai_free(b[i]);
}

static int	calls;

static bool
cancel_after(void *ctx, const cai_progress *p)
{
	calls++;
	return calls < *(int *) ctx;
}

static void
test_cancel(void)
{
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	char	   *metrics = NULL;
	cai_error	err = {0};
	int			limit = 3;
	cai_status	st;

	calls = 0;
	st = run(", \"epochs\": 1000", cancel_after, &limit, &bytes, &len, &metrics, &err);
	CHECK(st == CAI_ERR_CANCELLED && bytes == NULL && len == 0 && metrics == NULL, "cancel: %d %s", st, err.msg);

	/* max_seconds stops a long run with the last state */
	st = run(", \"epochs\": 100000, \"max_seconds\": 1.0", NULL, NULL, &bytes, &len, &metrics, &err);
	CHECK(st == CAI_OK && bytes != NULL, "max_seconds: %s", err.msg);
	if (metrics != NULL)
	{
		json_object *m = json_tokener_parse(metrics);

		CHECK(jnum(m, "seconds") < 10.0 && jnum(m, "epochs_run") < 100000, "stopped after %g s",
			  jnum(m, "seconds"));
		json_object_put(m);
	}
	cai_free(bytes);
	cai_free(metrics);
}

static void
test_refusals(void)
{
	cai_options *o = opts_of("{\"memory_limit_mb\": 10}");
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	cai_error	err = {0};
	cai_status	st;
	size_t		need;

	need = cai_pretrain_memory(o, (const char *const *) texts, lens, N_TEXTS);
	CHECK(need > 10u * 1024 * 1024, "default shape needs %zu bytes", need);
	st = cai_pretrain_run(o, (const char *const *) texts, lens, N_TEXTS, NULL, NULL, &bytes, &len, NULL, &err);
	CHECK(st == CAI_ERR_LIMIT && bytes == NULL && strstr(err.msg, "memory_limit_mb") != NULL, "limit: %s", err.msg);
	cai_options_free(o);

	o = opts_of("{\"hidden\": 30, \"heads\": 4}");
	st = cai_pretrain_run(o, (const char *const *) texts, lens, N_TEXTS, NULL, NULL, &bytes, &len, NULL, &err);
	CHECK(st == CAI_ERR_INVALID && strstr(err.msg, "heads") != NULL, "heads: %s", err.msg);
	cai_options_free(o);

	o = opts_of("{}");
	{
		const char *empty[2] = {"", " \t\n "};
		size_t		el[2] = {0, 4};

		st = cai_pretrain_run(o, empty, el, 2, NULL, NULL, &bytes, &len, NULL, &err);
		CHECK(st == CAI_ERR_INVALID && bytes == NULL, "no words: %d %s", st, err.msg);
	}
	cai_options_free(o);
	o = NULL;
	CHECK(cai_options_parse(cai_pretrain_option_defs, cai_pretrain_n_option_defs, "{\"layers\": 0}", &o, &err) ==
		  CAI_ERR_INVALID && o == NULL, "layers 0");
}

/* ---------------------------------------------------------------------- */
/* Whole-word masking                                                     */
/* ---------------------------------------------------------------------- */

static void
test_whole_words(void)
{
	/* [CLS] w0 w1## w1## w2 w3## [SEP] w4 w5## w5## w5## [SEP] */
	const uint8_t kind[] = {0, 1, 1, 2, 2, 1, 1, 2, 0, 1, 1, 2, 2, 2, 0};
	const int	len = (int) sizeof(kind);
	int32_t		ids[sizeof(kind)],
				inp[sizeof(kind)],
				pos[sizeof(kind)],
				tgt[sizeof(kind)],
				scratch[2 * sizeof(kind)];
	cai_rng		r;
	int			bad_whole = 0,
				bad_special = 0,
				bad_budget = 0,
				n_total = 0,
				n_mask = 0,
				n_kept = 0;
	int			picked_long = 0;

	for (int t = 0; t < len; t++)
		ids[t] = 10 + t;
	cai_rng_seed(&r, 1);
	for (int it = 0; it < 4000; it++)
	{
		int			n = cai_pt_mask(ids, kind, len, 0.4f, 100, 5, 50, 4, &r, inp, pos, tgt, scratch);
		bool		m[sizeof(kind)] = {0};

		if (n > 5 || n < 1)		/* round(0.4 * 12 real pieces) = 5 */
			bad_budget++;
		for (int i = 0; i < n; i++)
		{
			m[pos[i]] = true;
			if (tgt[i] != ids[pos[i]] || (i > 0 && pos[i] <= pos[i - 1]))
				bad_whole++;
			n_total++;
			n_mask += inp[pos[i]] == 4;
			n_kept += inp[pos[i]] == ids[pos[i]];
		}
		for (int t = 0; t < len; t++)
		{
			if (kind[t] == CAI_PT_SPECIAL && (m[t] || inp[t] != ids[t]))
				bad_special++;
			if (!m[t] && inp[t] != ids[t])
				bad_whole++;
			/* a word is masked entirely or not at all */
			if (kind[t] == CAI_PT_CONT && m[t] != m[t - 1])
				bad_whole++;
		}
		picked_long += m[10];
	}
	CHECK(bad_whole == 0, "%d masks split a word or mislabel", bad_whole);
	CHECK(bad_special == 0, "%d masks touched [CLS]/[SEP]", bad_special);
	CHECK(bad_budget == 0, "%d masks over the budget", bad_budget);
	CHECK(picked_long > 0, "the four-piece word fits the budget and is picked sometimes");
	CHECK(fabs((double) n_mask / n_total - 0.8) < 0.03 && fabs((double) n_kept / n_total - 0.1) < 0.03,
		  "[MASK] %.3f kept %.3f", (double) n_mask / n_total, (double) n_kept / n_total);
}

/* ---------------------------------------------------------------------- */
/* The MLM head's gradient                                                */
/* ---------------------------------------------------------------------- */

#define GH 6
#define GV 11
#define GP 4

typedef struct HeadProbe
{
	float		head[GH * GH + 3 * GH + GV];
	float		word[GV * GH];
	float		x[GP * GH];
	int32_t		tgt[GP];
	float		acts[GP * (6 * GH + 2 + GV)];
} HeadProbe;

static cai_status
head_loss(void *ctx, float *const *grad, double *loss, cai_error *err)
{
	HeadProbe  *p = ctx;
	cai_mlm_head h,
				g;
	cai_mlm_acts a;
	double		sum;
	int			correct;
	cai_status	st;

	cai_mlm_head_views(p->head, GH, GV, &h);
	cai_mlm_acts_views(p->acts, GP, GH, GV, &a);
	if ((st = cai_mlm_forward(&h, p->word, p->x, p->tgt, GP, 1e-12f, &a, &sum, &correct, err)) != CAI_OK)
		return st;
	*loss = sum / GP;
	if (grad != NULL)
	{
		/* the head's tensors are one slab: grad[0..4] are views of one block */
		g.H = GH;
		g.V = GV;
		g.w = grad[0];
		g.b = grad[1];
		g.ln_g = grad[2];
		g.ln_b = grad[3];
		g.dec_b = grad[4];
		memset(grad[5], 0, sizeof(float) * GV * GH);
		for (int i = 0; i < 5; i++)
			memset(grad[i], 0, sizeof(float) * (i == 0 ? GH * GH : i == 4 ? GV : GH));
		cai_mlm_backward(&h, p->word, p->x, p->tgt, GP, 1.0f / GP, &a, &g, grad[5], grad[6]);
	}
	return CAI_OK;
}

static void
test_head_gradient(void)
{
	HeadProbe  *hp = calloc(1, sizeof(HeadProbe));
	cai_grad_probe p = {0};
	cai_mlm_head h;
	cai_rng		r;
	double		max_err = 1;
	cai_error	err = {0};
	cai_status	st;

	cai_rng_seed(&r, 3);
	for (size_t i = 0; i < sizeof(hp->head) / sizeof(float); i++)
		hp->head[i] = 0.5f * cai_rng_normal(&r);
	cai_mlm_head_views(hp->head, GH, GV, &h);
	for (int i = 0; i < GH; i++)
		h.ln_g[i] += 1.0f;
	for (int i = 0; i < GV * GH; i++)
		hp->word[i] = 0.5f * cai_rng_normal(&r);
	for (int i = 0; i < GP * GH; i++)
		hp->x[i] = cai_rng_normal(&r);
	for (int i = 0; i < GP; i++)
		hp->tgt[i] = (int32_t) cai_rng_below(&r, GV);
	p.n_tensors = 7;
	p.name[0] = "dense.weight";
	p.data[0] = h.w;
	p.numel[0] = GH * GH;
	p.name[1] = "dense.bias";
	p.data[1] = h.b;
	p.numel[1] = GH;
	p.name[2] = "LayerNorm.weight";
	p.data[2] = h.ln_g;
	p.numel[2] = GH;
	p.name[3] = "LayerNorm.bias";
	p.data[3] = h.ln_b;
	p.numel[3] = GH;
	p.name[4] = "decoder.bias";
	p.data[4] = h.dec_b;
	p.numel[4] = GV;
	p.name[5] = "word_embeddings (tied decoder)";
	p.data[5] = hp->word;
	p.numel[5] = GV * GH;
	p.name[6] = "encoder output";
	p.data[6] = hp->x;
	p.numel[6] = GP * GH;
	p.loss = head_loss;
	p.ctx = hp;
	st = cai_gradcheck_compare(&p, 12, &max_err, &err);
	CHECK(st == CAI_OK && max_err < 2e-2, "MLM head gradient: max relative error %g (%s)", max_err, err.msg);
	printf("  MLM head gradient: max relative error %.2e\n", max_err);
	free(hp);
}

/* a corpus smaller than a batch, half held out (the held-out batch may hold more sequences than training) */
static void
test_small_corpus(void)
{
	const char *small[24];
	size_t		sl[24];
	cai_options *o = opts_of("{\"layers\": 1, \"hidden\": 16, \"heads\": 2, \"intermediate\": 16, \"max_length\": 16,"
							 " \"vocab_size\": 80, \"batch_size\": 64, \"epochs\": 2, \"validation_fraction\": 0.5}");
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	cai_error	err = {0};
	cai_status	st;

	for (int i = 0; i < 24; i++)
	{
		small[i] = texts[i];
		sl[i] = i < 12 ? 9 : lens[i];	/* the first half short */
	}
	st = cai_pretrain_run(o, small, sl, 24, NULL, NULL, &bytes, &len, NULL, &err);
	CHECK(st == CAI_OK && len > 0, "small corpus: %s", err.msg);
	cai_free(bytes);
	cai_options_free(o);
}

int
main(void)
{
	make_corpus();
	test_whole_words();
	test_head_gradient();
	test_learns();
	test_determinism();
	test_cancel();
	test_refusals();
	test_small_corpus();
	for (int i = 0; i < N_TEXTS; i++)
		free(texts[i]);
	return check_summary("test_pretrain");
}
