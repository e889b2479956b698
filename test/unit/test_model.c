/*
 * test_model.c: the model interface (model.h).  The registry finds tasks by
 * name and alias and every architecture by (task, name), with a function
 * table that matches its task's kind; a model of each architecture, trained
 * on toy data, loads through cai_model_load (copied and in place) and answers
 * exactly like its architecture's own functions; run functions of the other
 * kind, unknown tasks and architectures, and damaged bytes are refused.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/model.h"
#include "cai/textclf.h"
#include "cai/tokenize.h"
#include "check.h"
#include "textclf_fixtures.h"
#include "ner_fixtures.h"
#include "../../src/core/modelutil.h"

static cai_options *
opts_of(const char *json)
{
	cai_options *o = NULL;
	cai_error	err = {0};

	if (cai_textclf_parse_options(json, &o, &err) != CAI_OK)
		return NULL;
	return o;
}

/* An aligned copy of bytes, as a shared mapping would be. */
static uint8_t *
aligned_copy(const uint8_t *b, size_t len)
{
	size_t		cap = (len + CAI_FORMAT_ALIGN - 1) / CAI_FORMAT_ALIGN * CAI_FORMAT_ALIGN;
	uint8_t    *p = aligned_alloc(CAI_FORMAT_ALIGN, cap);

	memcpy(p, b, len);
	return p;
}

static void
test_registry(void)
{
	int			n_archs = 0;

	CHECK(cai_task_find("sentiment") == cai_task_find("text_classification"), "sentiment is an alias");
	CHECK(cai_task_find("SENTIMENT") != NULL && cai_task_find("Classification") != NULL, "aliases ignore case");
	CHECK(cai_task_find("ner") != NULL && cai_task_find("ner")->kind == CAI_KIND_TAG, "ner tags");
	CHECK(cai_task_find("token_classification") == cai_task_find("ner"), "token_classification is ner");
	CHECK(cai_task_find("text_classification")->kind == CAI_KIND_CLASSIFY, "text classification classifies");
	CHECK(cai_task_find("translation") == NULL && cai_task_find("") == NULL && cai_task_find(NULL) == NULL,
		  "unknown tasks are not found");
	CHECK(cai_task_find("word_vectors") == cai_task_find("vectors") && cai_task_find("vectors")->kind == CAI_KIND_EMBED,
		  "vectors (word_vectors) embeds");
	CHECK(cai_task_find("encoder") != NULL && cai_task_find("encoder")->kind == CAI_KIND_ENCODER, "encoder");
	CHECK(cai_task_at(4) == NULL && cai_task_at(-1) == NULL, "four tasks");
	for (const cai_arch *a; (a = cai_arch_at(n_archs)) != NULL; n_archs++)
	{
		bool		classify = a->task->kind == CAI_KIND_CLASSIFY;

		if (a->task->kind == CAI_KIND_EMBED)
		{
			/* trains a vector set: no model functions */
			CHECK(a->train && a->train_memory && !a->load && !a->classify && !a->tag && !a->gradcheck,
				  "%s: trains, and has no model functions", a->name);
			CHECK(*a->n_options > 0 && a->options != NULL, "%s: an option table", a->name);
			continue;
		}
		if (a->task->kind == CAI_KIND_ENCODER)
		{
			/* an imported encoder: loads, embeds (test_encoder_model.c), is not trained */
			CHECK(!a->train && !a->train_memory && a->load && a->free && a->memory && a->encoder && !a->classify &&
				  !a->tag, "%s: loads, is not trained, neither classifies nor tags", a->name);
			continue;
		}

		if (strcmp(a->name, "ensemble") == 0)
		{
			/* built by cai_tune from trained models (test_ensemble.c): loads and classifies, is not trained */
			CHECK(classify && !a->train && !a->train_memory && !a->gradcheck && a->load && a->free && a->memory &&
				  a->n_labels && a->label && a->classify && a->classify_batch && !a->tag && *a->n_options == 0,
				  "%s: loads and classifies, is not trained", a->name);
			continue;
		}
		CHECK(cai_arch_find(a->task->name, a->name) == a, "%s/%s is found by name", a->task->name, a->name);
		CHECK(a->load && a->free && a->memory && a->n_labels && a->label, "%s: the common functions", a->name);
		CHECK((a->classify != NULL && a->classify_batch != NULL) == classify, "%s: classify exactly for classifiers",
			  a->name);
		CHECK((a->tag != NULL && a->tag_batch != NULL && a->entities != NULL && a->entities_batch != NULL) ==
			  !classify,
			  "%s: tag functions exactly for taggers", a->name);
		CHECK(*a->n_options > 0 && a->options != NULL, "%s: an option table", a->name);
	}
	CHECK(n_archs == 8, "eight architectures, got %d", n_archs);
	CHECK(cai_arch_find("text_classification", "transformer") != NULL && cai_arch_find("ner", "transformer") != NULL,
		  "transformer for both tasks");
	CHECK(cai_arch_find("text_classification", "fast") != NULL && cai_arch_find("text_classification", "accurate") != NULL &&
		  cai_arch_find("ner", "bilstm_crf") != NULL, "fast, accurate, bilstm_crf");
	CHECK(cai_arch_find("ner", "fast") == NULL && cai_arch_find("text_classification", "bilstm_crf") == NULL,
		  "an architecture belongs to its task");
	for (int i = 0; cai_task_at(i) != NULL; i++)
		CHECK(cai_arch_find(cai_task_at(i)->name, cai_task_at(i)->default_arch) != NULL,
			  "%s: its default architecture is registered", cai_task_at(i)->name);

	/* options are parsed with the chosen architecture's table */
	{
		const cai_task *tc = cai_task_find("sentiment");
		const cai_arch *a = NULL;
		cai_options *o = NULL;
		cai_error	err = {0};

		CHECK(cai_task_parse_options(tc, "{}", &a, &o, &err) == CAI_OK && a == cai_arch_find("text_classification", "accurate") &&
			  cai_opt_float(o, "learning_rate") == 0.003, "no architecture: accurate, with its defaults");
		cai_options_free(o);
		CHECK(cai_task_parse_options(tc, "{\"architecture\": \"fast\"}", &a, &o, &err) == CAI_OK &&
			  strcmp(a->name, "fast") == 0 && cai_opt_float(o, "learning_rate") == 0.1, "fast, with its defaults");
		cai_options_free(o);
		CHECK(cai_task_parse_options(tc, "{\"architecture\": \"fast\", \"batch_size\": 2}", &a, &o, &err) == CAI_ERR_INVALID &&
			  a != NULL && strstr(err.msg, "batch_size") != NULL, "an option fast does not have: %s", err.msg);
		CHECK(cai_task_parse_options(tc, "{\"architecture\": \"xl\"}", &a, &o, &err) == CAI_ERR_INVALID && a == NULL &&
			  strstr(err.msg, "fast, accurate") != NULL, "an unknown architecture names the valid ones: %s", err.msg);
		CHECK(cai_task_parse_options(cai_task_find("ner"), "{\"epochs\": 3}", &a, &o, &err) == CAI_OK &&
			  strcmp(a->name, "bilstm_crf") == 0 && cai_opt_int(o, "epochs") == 3, "ner: bilstm_crf");
		cai_options_free(o);
	}
}

/* Load model bytes copied and in place; both answer like the architecture itself. */
static void
check_textclf_model(const char *arch, const uint8_t *bytes, size_t len, const Toy *probe)
{
	cai_model  *copied = NULL;
	cai_model  *viewed = NULL;
	cai_model_file *mf = NULL;
	cai_textclf *direct = NULL;
	cai_error	err = {0};
	uint8_t    *al = aligned_copy(bytes, len);
	const char *tags[1];
	cai_entity *ents = NULL;
	size_t		n_ents = 0;

	CHECK(cai_model_load(bytes, len, false, true, &copied, &err) == CAI_OK, "%s: load copied: %s", arch, err.msg);
	CHECK(cai_model_load(al, len, true, false, &viewed, &err) == CAI_OK, "%s: load in place: %s", arch, err.msg);
	CHECK(cai_format_read(bytes, len, &mf, &err) == CAI_OK && cai_textclf_load(mf, &direct, &err) == CAI_OK,
		  "%s: the architecture's own load", arch);
	if (copied == NULL || viewed == NULL || direct == NULL)
		goto done;
	CHECK(strcmp(cai_model_task(copied), "text_classification") == 0 && cai_model_kind(copied) == CAI_KIND_CLASSIFY,
		  "%s: task", arch);
	CHECK(strcmp(cai_model_architecture(copied), arch) == 0 && cai_model_arch(viewed) == cai_arch_find("text_classification", arch),
		  "%s: architecture", arch);
	CHECK(cai_model_n_labels(copied) == 3 && strcmp(cai_model_label(copied, 2), "positive") == 0, "%s: labels", arch);
	CHECK(cai_model_memory(viewed) > 0 && strstr(cai_model_meta_json(viewed), "\"labels\"") != NULL, "%s: memory and metadata", arch);
	for (size_t i = 0; i < probe->d.n; i++)
	{
		float		p1[3];
		float		p2[3];
		float		p3[3];

		CHECK(cai_model_classify(copied, probe->d.texts[i], probe->d.lens[i], p1, &err) == CAI_OK &&
			  cai_model_classify(viewed, probe->d.texts[i], probe->d.lens[i], p2, &err) == CAI_OK &&
			  cai_textclf_predict(direct, probe->d.texts[i], probe->d.lens[i], p3, &err) == CAI_OK,
			  "%s: classify text %zu", arch, i);
		CHECK(memcmp(p1, p3, sizeof(p1)) == 0 && memcmp(p2, p3, sizeof(p2)) == 0,
			  "%s: text %zu: the same probabilities through the interface, copied and in place", arch, i);
	}
	tags[0] = "x";
	CHECK(cai_model_tag(copied, tags, &(size_t) {1}, 1, tags, NULL, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "text_classification") != NULL, "%s: a classifier does not tag: %s", arch, err.msg);
	CHECK(cai_model_entities(copied, "Ann", 3, 0, &ents, &n_ents, &err) == CAI_ERR_INVALID, "%s: nor find entities", arch);

	/* damaged bytes: one flipped byte fails the checksum; a truncated model its structure */
	{
		uint8_t    *bad = malloc(len);
		cai_model  *m = NULL;

		memcpy(bad, bytes, len);
		bad[len / 2] ^= 0x40;
		CHECK(cai_model_load(bad, len, false, true, &m, &err) == CAI_ERR_CHECKSUM && m == NULL,
			  "%s: a flipped byte is refused: %s", arch, err.msg);
		CHECK(cai_model_load(bytes, len / 2, false, true, &m, &err) != CAI_OK && m == NULL,
			  "%s: a truncated model is refused", arch);
		free(bad);
	}
done:
	cai_model_free(copied);
	cai_model_free(viewed);
	cai_textclf_free(direct);
	cai_model_file_free(mf);
	free(al);
}

static void
test_textclf(void)
{
	static const char *const archs[] = {"fast", "accurate"};
	Toy			train;
	Toy			probe;

	toy_make(&train, 300, 11, false);
	toy_make(&probe, 20, 12, true);
	for (int a = 0; a < 2; a++)
	{
		char		json[128];
		Trained		r;

		snprintf(json, sizeof(json), "{\"architecture\": \"%s\", \"epochs\": 2, \"seed\": 3}", archs[a]);
		r = train_with(json, &train.d, NULL, NULL, NULL);
		CHECK(r.st == CAI_OK, "train %s: %s", archs[a], r.err.msg);
		if (r.st == CAI_OK)
			check_textclf_model(archs[a], r.model, r.len, &probe);
		trained_free(&r);
	}
	toy_free(&train);
	toy_free(&probe);
}

static void
test_ner(void)
{
	enum
	{
		N = NER_N, T = NER_T
	};
	cai_ner_data d = ner_corpus();
	const char *const *tokens = ner_tokens;
	const size_t *lens = ner_lens;
	cai_error	err = {0};
	size_t		len = 0;
	uint8_t    *bytes = ner_train_bytes("{\"epochs\": 2}", &len);
	cai_model  *m = NULL;
	cai_model_file *mf = NULL;
	cai_ner    *direct = NULL;

	CHECK(bytes != NULL, "train an NER model");
	if (bytes == NULL)
		goto done;
	CHECK(cai_model_load(bytes, len, false, true, &m, &err) == CAI_OK, "load the NER model: %s", err.msg);
	CHECK(cai_format_read(bytes, len, &mf, &err) == CAI_OK && cai_ner_load(mf, &direct, &err) == CAI_OK, "its own load");
	if (m == NULL || direct == NULL)
		goto done;
	CHECK(strcmp(cai_model_task(m), "ner") == 0 && strcmp(cai_model_architecture(m), "bilstm_crf") == 0 &&
		  cai_model_kind(m) == CAI_KIND_TAG, "task and architecture");
	CHECK(cai_model_n_labels(m) == 2, "two entity types, got %d", cai_model_n_labels(m));
	{
		const char *got[T];
		const char *want[T];
		float		s1[T];
		float		s2[T];
		const char *batch[N * T];
		const char *batch2[N * T];
		cai_entity *ents = NULL;
		cai_entity *ents2 = NULL;
		size_t		n_ents = 0;
		size_t		n_ents2 = 0;
		float		probs[4];

		CHECK(cai_model_tag(m, tokens, lens, T, got, s1, &err) == CAI_OK &&
			  cai_ner_tag(direct, tokens, lens, T, want, s2, &err) == CAI_OK, "tag a sentence");
		for (int i = 0; i < T; i++)
			CHECK(strcmp(got[i], want[i]) == 0 && s1[i] == s2[i], "token %d: the same tag and score", i);
		CHECK(cai_model_tag_batch(m, &d, batch, NULL, &err) == CAI_OK &&
			  cai_ner_tag_batch(direct, &d, batch2, NULL, &err) == CAI_OK, "tag a batch");
		for (int i = 0; i < N * T; i++)
			if (strcmp(batch[i], batch2[i]) != 0)
			{
				CHECK(0, "batch token %d: %s, the architecture says %s", i, batch[i], batch2[i]);
				break;
			}
		CHECK(cai_model_entities(m, "Ann lives in Oslo .", 19, 0, &ents, &n_ents, &err) == CAI_OK &&
			  cai_ner_entities(direct, "Ann lives in Oslo .", 19, 0, &ents2, &n_ents2, &err) == CAI_OK &&
			  n_ents == n_ents2 && (n_ents == 0 || memcmp(ents, ents2, sizeof(cai_entity) * n_ents) == 0),
			  "entities in raw text: the same %zu", n_ents);
		cai_free(ents);
		cai_free(ents2);
		CHECK(cai_model_classify(m, "x", 1, probs, &err) == CAI_ERR_INVALID && strstr(err.msg, "ner") != NULL,
			  "a tagger does not classify: %s", err.msg);
	}
done:
	cai_model_free(m);
	cai_ner_free(direct);
	cai_model_file_free(mf);
	cai_free(bytes);
}

/*
 * The same data, options, seed and threads give identical model bytes for
 * every architecture (wall-clock time is in the returned metrics only).
 */
static void
test_identical_bytes(void)
{
	static const char *const textclf[] = {
		"{\"architecture\": \"fast\", \"epochs\": 2, \"seed\": 5}",
		"{\"architecture\": \"accurate\", \"epochs\": 1, \"seed\": 5, \"dimensions\": 16}",
	};
	static const char *const ner[] = {"{\"epochs\": 2, \"seed\": 5}", "{\"epochs\": 2, \"seed\": 5, \"threads\": 2}"};
	Toy			train;

	toy_make(&train, 200, 21, false);
	for (int i = 0; i < 2; i++)
	{
		Trained		a = train_with(textclf[i], &train.d, NULL, NULL, NULL);
		Trained		b = train_with(textclf[i], &train.d, NULL, NULL, NULL);

		CHECK(a.st == CAI_OK && b.st == CAI_OK && a.len == b.len && memcmp(a.model, b.model, a.len) == 0,
			  "%s: identical bytes", textclf[i]);
		trained_free(&a);
		trained_free(&b);
	}
	toy_free(&train);
	for (int i = 0; i < 2; i++)
	{
		size_t		la = 0,
					lb = 0;
		uint8_t    *a = ner_train_bytes(ner[i], &la);
		uint8_t    *b = ner_train_bytes(ner[i], &lb);

		CHECK(a != NULL && b != NULL && la == lb && memcmp(a, b, la) == 0, "ner %s: identical bytes", ner[i]);
		cai_free(a);
		cai_free(b);
	}
}

/* Metadata naming a task or an architecture this build does not have. */
static void
test_unknown(void)
{
	static const char *const metas[][2] = {
		{"{\"task\":\"translation\",\"architecture\":\"fast\",\"labels\":[],\"cai_version\":\"0.2.0\"}", "unknown task \"translation\""},
		{"{\"task\":\"text_classification\",\"architecture\":\"xl\",\"labels\":[],\"cai_version\":\"0.2.0\"}", "architecture \"xl\" is not supported"},
		{"{\"task\":\"ner\",\"architecture\":\"fast\",\"labels\":[],\"cai_version\":\"0.2.0\"}", "ner architecture \"fast\""},
	};
	float		w[2] = {1.0f, 2.0f};
	cai_tensor	t = {0};

	strcpy(t.name, "w");
	t.dtype = CAI_F32;
	t.ndim = 1;
	t.shape[0] = 2;
	t.data = w;
	t.nbytes = sizeof(w);
	for (int i = 0; i < 3; i++)
	{
		uint8_t    *b = NULL;
		size_t		len = 0;
		cai_model  *m = NULL;
		cai_error	err = {0};

		CHECK(cai_format_write(metas[i][0], &t, 1, &b, &len, &err) == CAI_OK, "write %d", i);
		CHECK(cai_model_load(b, len, false, true, &m, &err) == CAI_ERR_FORMAT && m == NULL &&
			  strstr(err.msg, metas[i][1]) != NULL, "refused with \"%s\": %s", metas[i][1], err.msg);
		cai_free(b);
	}
}

/* the loaders' scan for infinities and NaNs (blocks without an early exit) */
static void
test_all_finite(void)
{
	const size_t n = 3 * 4096 + 5;
	float	   *x = malloc(sizeof(float) * n);
	const float bad[] = {INFINITY, -INFINITY, NAN, -NAN};
	const size_t at[] = {0, 1, 4095, 4096, 4097, 8191, 8192, 3 * 4096, n - 1};
	int			missed = 0,
				wrong = 0;

	for (size_t i = 0; i < n; i++)
		x[i] = (i % 3 == 0 ? FLT_MAX : i % 3 == 1 ? -FLT_MIN / 4 : (float) i) * (i % 2 ? -1.0f : 1.0f);
	CHECK(cai_all_finite(x, n), "large, subnormal and ordinary floats are finite");
	CHECK(cai_all_finite(x, 0), "an empty array is finite");
	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
		for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++)
		{
			float		keep = x[at[k]];

			x[at[k]] = bad[b];
			missed += cai_all_finite(x, n);
			wrong += !cai_all_finite(x, at[k]);	/* before it: still finite */
			x[at[k]] = keep;
		}
	CHECK(missed == 0, "an infinity or NaN at any of 9 places in 3 blocks is found (%d missed of 36)", missed);
	CHECK(wrong == 0, "the elements before it are finite (%d wrong)", wrong);
	free(x);
}

/*
 * cai_model_observe_*: what a model makes of inputs (drift monitoring),
 * against the run functions themselves; and cai_arch_validation_mask, the
 * rows training held out, against the count training reports.
 */
static void
test_observe(void)
{
	Toy			train;
	Toy			probe;
	cai_error	err = {0};

	toy_make(&train, 300, 11, false);
	toy_make(&probe, 20, 12, true);
	for (int a = 0; a < 2; a++)
	{
		const char *arch = a == 0 ? "fast" : "accurate";
		char		json[128];
		Trained		r;
		cai_model  *m = NULL;
		cai_observation o = {0};
		cai_options *opts;
		bool	   *mask = calloc(train.d.n, sizeof(bool));
		size_t		n_valid = 0;
		cai_train_set set = {.texts = &train.d, .label_names = label_names, .n_labels = 3};
		static const char *const odd = "zqxv wplk qqzz";

		snprintf(json, sizeof(json), "{\"architecture\": \"%s\", \"epochs\": 2, \"seed\": 5}", arch);
		r = train_with(json, &train.d, NULL, NULL, NULL);
		opts = opts_of(json);
		CHECK(r.st == CAI_OK && opts != NULL, "train %s: %s", arch, r.err.msg);
		if (r.st != CAI_OK || opts == NULL || cai_model_load(r.model, r.len, false, true, &m, &err) != CAI_OK)
			goto next;
		CHECK(cai_arch_validation_mask(cai_model_arch(m), opts, &set, mask, &err) == CAI_OK, "%s: mask", arch);
		for (size_t i = 0; i < train.d.n; i++)
			n_valid += mask[i];
		CHECK(n_valid > 0 && (double) n_valid == json_num(r.metrics, "validation_rows"),
			  "%s: the mask holds out the %g rows training validated on, got %zu", arch,
			  json_num(r.metrics, "validation_rows"), n_valid);
		CHECK(cai_model_n_categories(m) == 3 && cai_model_category(m, 3) == NULL &&
			  strcmp(cai_model_category(m, 0), "negative") == 0, "%s: categories are the labels", arch);
		CHECK(cai_model_has_vocabulary(m), "%s: has a vocabulary", arch);
		CHECK(cai_model_observe_texts(m, probe.d.texts, probe.d.lens, probe.d.n, &o, &err) == CAI_OK &&
			  o.n == probe.d.n && o.n_out == probe.d.n && o.unseen != NULL, "%s: observe texts: %s", arch, err.msg);
		for (size_t i = 0; i < o.n && o.n == probe.d.n; i++)
		{
			float		p[3];
			cai_token  *toks = NULL;
			size_t		nt = 0;

			CHECK(cai_model_classify(m, probe.d.texts[i], probe.d.lens[i], p, &err) == CAI_OK &&
				  fabsf(p[o.category[i]] - o.confidence[i]) < 1e-5f &&
				  p[o.category[i]] >= p[0] && p[o.category[i]] >= p[1] && p[o.category[i]] >= p[2],
				  "%s text %zu: the most probable class and its probability", arch, i);
			CHECK(cai_tokenize(probe.d.texts[i], probe.d.lens[i], 100000, &toks, &nt, &err) == CAI_OK &&
				  (size_t) o.tokens[i] == nt && o.unseen[i] >= 0 && o.unseen[i] <= o.tokens[i],
				  "%s text %zu: %d tokens, %d unseen", arch, i, o.tokens[i], o.unseen[i]);
			cai_free(toks);
		}
		cai_observation_free(&o);
		CHECK(cai_model_observe_texts(m, &train.d.texts[0], &train.d.lens[0], 1, &o, &err) == CAI_OK &&
			  o.unseen[0] == 0 && o.tokens[0] > 0, "%s: a training text has no unseen word", arch);
		cai_observation_free(&o);
		CHECK(cai_model_observe_texts(m, &odd, &(size_t) {strlen(odd)}, 1, &o, &err) == CAI_OK &&
			  o.tokens[0] == 3 && o.unseen[0] == 3, "%s: made-up words are all unseen", arch);
		cai_observation_free(&o);
		{
			/* a sentence of tokens reads as its tokens joined by spaces */
			const char *toks[] = {"zqxv", "wplk", "qqzz"};
			size_t		tl[] = {4, 4, 4};
			int64_t		off[] = {0, 3};
			cai_ner_data d = {.n = 1, .offsets = off, .tokens = toks, .token_lens = tl};
			cai_observation o2 = {0};

			CHECK(cai_model_observe_sentences(m, &d, &o, &err) == CAI_OK &&
				  cai_model_observe_texts(m, &odd, &(size_t) {strlen(odd)}, 1, &o2, &err) == CAI_OK &&
				  o.tokens[0] == o2.tokens[0] && o.unseen[0] == o2.unseen[0] && o.category[0] == o2.category[0] &&
				  o.confidence[0] == o2.confidence[0], "%s: sentences observed as joined texts", arch);
			cai_observation_free(&o);
			cai_observation_free(&o2);
		}
next:
		cai_model_free(m);
		cai_options_free(opts);
		trained_free(&r);
		free(mask);
	}
	toy_free(&train);
	toy_free(&probe);

	{
		cai_ner_data d = ner_corpus();
		size_t		len = 0;
		uint8_t    *bytes = ner_train_bytes("{\"epochs\": 2, \"seed\": 4}", &len);
		cai_model  *m = NULL;
		cai_observation o = {0};
		cai_options *opts = NULL;
		bool		mask[NER_N];
		bool		mask2[NER_N];
		size_t		n_valid = 0;
		cai_train_set set = {.sentences = &d};
		const char *tags[NER_N * NER_T];
		float		scores[NER_N * NER_T];
		static const char *const text = "Ann lives in Qwzx .";

		CHECK(bytes != NULL && cai_model_load(bytes, len, false, true, &m, &err) == CAI_OK, "load an NER model");
		if (m == NULL)
		{
			cai_free(bytes);
			return;
		}
		CHECK(cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, "{\"seed\": 4}", &opts, &err) == CAI_OK &&
			  cai_arch_validation_mask(cai_model_arch(m), opts, &set, mask, &err) == CAI_OK, "ner: mask");
		for (int i = 0; i < NER_N; i++)
			n_valid += mask[i];
		CHECK(n_valid == 6, "ner: 10%% of 60 sentences held out, got %zu", n_valid);
		cai_options_free(opts);
		CHECK(cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, "{\"seed\": 5}", &opts, &err) == CAI_OK &&
			  cai_arch_validation_mask(cai_model_arch(m), opts, &set, mask2, &err) == CAI_OK &&
			  memcmp(mask, mask2, sizeof(mask)) != 0, "ner: another seed holds out other sentences");
		cai_options_free(opts);
		CHECK(cai_arch_validation_mask(cai_arch_find("ner", "bilstm_crf"), NULL, &(cai_train_set) {0}, mask, &err) ==
			  CAI_ERR_INVALID, "ner: a set without sentences is refused");

		CHECK(cai_model_n_categories(m) == 3 && strcmp(cai_model_category(m, 2), "O") == 0 &&
			  strcmp(cai_model_category(m, 0), "LOC") == 0, "ner: categories are the entity types, then O");
		CHECK(cai_model_observe_sentences(m, &d, &o, &err) == CAI_OK && o.n == NER_N && o.n_out == NER_N * NER_T &&
			  cai_model_tag_batch(m, &d, tags, scores, &err) == CAI_OK, "ner: observe sentences: %s", err.msg);
		for (size_t i = 0; i < o.n_out && o.n_out == NER_N * NER_T; i++)
		{
			const char *want = cai_model_category(m, o.category[i]);

			CHECK(o.confidence[i] == scores[i] &&
				  (strcmp(tags[i], "O") == 0 ? strcmp(want, "O") == 0 : strcmp(tags[i] + 2, want) == 0),
				  "ner token %zu: %s is category %s", i, tags[i], want);
		}
		for (size_t s = 0; s < o.n && o.n == NER_N; s++)
			CHECK(o.tokens[s] == NER_T && o.unseen != NULL && o.unseen[s] == 0, "ner sentence %zu: known words", s);
		/* the same sentences as ids into their distinct strings: the same observation; bad ids refused */
		{
			static const char *strs[NER_N * NER_T];
			static size_t slens[NER_N * NER_T];
			static int32_t ids[NER_N * NER_T];
			cai_observation oi = {0};
			cai_ner_data di = d;
			size_t		ns = check_distinct(d.tokens, NER_N * NER_T, ids, strs);

			for (size_t k = 0; k < ns; k++)
				slens[k] = strlen(strs[k]);
			di.tokens = NULL;
			di.token_lens = NULL;
			di.token_ids = ids;
			di.strings = strs;
			di.string_lens = slens;
			di.n_strings = ns;
			CHECK(cai_model_observe_sentences(m, &di, &oi, &err) == CAI_OK && oi.n_out == o.n_out &&
				  memcmp(oi.category, o.category, sizeof(o.category[0]) * o.n_out) == 0 &&
				  memcmp(oi.confidence, o.confidence, sizeof(float) * o.n_out) == 0 &&
				  memcmp(oi.unseen, o.unseen, sizeof(o.unseen[0]) * o.n) == 0, "ner: observe token ids: %s", err.msg);
			cai_observation_free(&oi);
			ids[3] = (int32_t) ns;
			CHECK(cai_model_observe_sentences(m, &di, &oi, &err) == CAI_ERR_INVALID && strstr(err.msg, "token id") != NULL,
				  "ner: observe refuses a token id past the strings: %s", err.msg);
			cai_observation_free(&oi);
			CHECK(cai_model_tag_batch(m, &di, tags, scores, &err) == CAI_ERR_INVALID, "ner: tagging refuses it too");
			/* ids are read only where the strings are NULL: whatever they hold beside strings is ignored */
			di = d;
			di.token_ids = ids;
			di.n_strings = 0;
			CHECK(cai_model_observe_sentences(m, &di, &oi, &err) == CAI_OK && oi.n_out == o.n_out &&
				  memcmp(oi.category, o.category, sizeof(o.category[0]) * o.n_out) == 0,
				  "ner: ids beside strings are ignored: %s", err.msg);
			cai_observation_free(&oi);
		}
		cai_observation_free(&o);
		CHECK(cai_model_observe_texts(m, &text, &(size_t) {strlen(text)}, 1, &o, &err) == CAI_OK &&
			  o.n == 1 && o.n_out == 5 && o.tokens[0] == 5 && o.unseen[0] == 1,
			  "ner: a raw text is tokenized, one unseen word of five");
		cai_observation_free(&o);
		cai_model_free(m);
		cai_free(bytes);
	}
}

/*
 * validation_seed: trainings that differ only in seed hold out the same rows
 * (cai_tune's seed trials), and the training validates on exactly them.
 */
static void
test_validation_seed(void)
{
	Toy			train;
	cai_error	err = {0};
	cai_train_set set;

	toy_make(&train, 300, 11, false);
	set = (cai_train_set) {.texts = &train.d, .label_names = label_names, .n_labels = 3};
	for (int a = 0; a < 2; a++)
	{
		const char *arch = a == 0 ? "fast" : "accurate";
		char		j_base[128],
					j_other[128],
					j_kept[128];
		cai_options *o_base,
				   *o_other,
				   *o_kept;
		bool	   *m_base = calloc(train.d.n, sizeof(bool));
		bool	   *m_other = calloc(train.d.n, sizeof(bool));
		bool	   *m_kept = calloc(train.d.n, sizeof(bool));
		const cai_arch *ar = cai_arch_find("text_classification", arch);
		size_t		same_other = 0,
					same_kept = 0,
					n_valid = 0,
					right = 0;
		Trained		r;
		cai_model  *m = NULL;

		snprintf(j_base, sizeof(j_base), "{\"architecture\": \"%s\", \"seed\": 5}", arch);
		snprintf(j_other, sizeof(j_other), "{\"architecture\": \"%s\", \"seed\": 9}", arch);
		snprintf(j_kept, sizeof(j_kept), "{\"architecture\": \"%s\", \"seed\": 9, \"validation_seed\": 5, \"epochs\": 2}", arch);
		o_base = opts_of(j_base);
		o_other = opts_of(j_other);
		o_kept = opts_of(j_kept);
		CHECK(o_base && o_other && o_kept && ar &&
			  cai_arch_validation_mask(ar, o_base, &set, m_base, &err) == CAI_OK &&
			  cai_arch_validation_mask(ar, o_other, &set, m_other, &err) == CAI_OK &&
			  cai_arch_validation_mask(ar, o_kept, &set, m_kept, &err) == CAI_OK, "%s: masks: %s", arch, err.msg);
		for (size_t i = 0; i < train.d.n; i++)
		{
			same_other += m_base[i] == m_other[i];
			same_kept += m_base[i] == m_kept[i];
		}
		CHECK(same_kept == train.d.n && same_other < train.d.n,
			  "%s: seed 9 with validation_seed 5 holds out seed 5's rows (%zu of %zu alike), seed 9 alone others (%zu alike)",
			  arch, same_kept, train.d.n, same_other);
		/* the training validates on those rows: its reported accuracy is the model's on them */
		r = train_with(j_kept, &train.d, NULL, NULL, NULL);
		CHECK(r.st == CAI_OK, "train %s: %s", arch, r.err.msg);
		if (r.st == CAI_OK && cai_model_load(r.model, r.len, false, true, &m, &err) == CAI_OK)
		{
			for (size_t i = 0; i < train.d.n; i++)
			{
				float		p[3];
				int			best = 0;

				if (!m_kept[i])
					continue;
				n_valid++;
				if (cai_model_classify(m, train.d.texts[i], train.d.lens[i], p, &err) != CAI_OK)
					break;
				for (int c = 1; c < 3; c++)
					if (p[c] > p[best])
						best = c;
				right += best == train.d.labels[i];
			}
			CHECK((double) n_valid == json_num(r.metrics, "validation_rows") &&
				  fabs((double) right / (double) n_valid - json_num(r.metrics, "accuracy")) < 1e-9,
				  "%s: validated on the %zu rows of validation_seed 5 (metrics: %g rows, accuracy %g; on them %g)", arch,
				  n_valid, json_num(r.metrics, "validation_rows"), json_num(r.metrics, "accuracy"),
				  (double) right / (double) (n_valid ? n_valid : 1));
			cai_model_free(m);
		}
		trained_free(&r);
		cai_options_free(o_base);
		cai_options_free(o_other);
		cai_options_free(o_kept);
		free(m_base);
		free(m_other);
		free(m_kept);
	}
	toy_free(&train);
}

int
main(void)
{
	test_all_finite();
	test_registry();
	test_textclf();
	test_ner();
	test_identical_bytes();
	test_unknown();
	test_observe();
	test_validation_seed();
	return check_summary("test_model");
}
