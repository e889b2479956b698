/*
 * test_ensemble.c: the "ensemble" architecture (ensemble.h): greedy
 * selection on validation predictions, the model file of trained members,
 * predictions equal to the weighted mean of the members' own, and the
 * errors of bad members and damaged files.
 */
#include "cai/ensemble.h"
#include "cai/format.h"
#include "cai/options.h"
#include "cai/textclf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "check.h"
#include "ner_fixtures.h"
#include "textclf_fixtures.h"

static cai_options *
opts_of(const char *json)
{
	cai_options *o = NULL;
	const cai_arch *a = NULL;
	cai_error	err = {0};

	if (cai_task_parse_options(cai_task_find("text_classification"), json, &a, &o, &err) != CAI_OK)
		return NULL;
	return o;
}

/* Selection on hand-made probabilities. */
static void
test_select(void)
{
	/* 4 rows, 2 labels; gold 0 1 0 1 */
	const int32_t gold[] = {0, 1, 0, 1};
	/* a: right on rows 0, 1, 2 (0.75); b: right on 1, 2, 3 (0.75), less sure; c: always wrong */
	const float a[] = {0.9f, 0.1f, 0.2f, 0.8f, 0.6f, 0.4f, 0.7f, 0.3f};
	const float b[] = {0.45f, 0.55f, 0.4f, 0.6f, 0.55f, 0.45f, 0.2f, 0.8f};
	const float c[] = {0.1f, 0.9f, 0.9f, 0.1f, 0.1f, 0.9f, 0.9f, 0.1f};
	const float *probs[] = {c, a, b};
	int			counts[3];
	double		acc,
				ll;

	cai_ensemble_select(probs, 3, gold, 4, 2, 5, counts, &acc, &ll);
	/* a first (same accuracy as b, higher log-probability); a + b: higher log-probability, right on all four rows */
	CHECK(counts[0] == 0 && counts[1] >= 1 && counts[2] >= 1, "picks a and b, never c: %d %d %d", counts[0],
		  counts[1], counts[2]);
	CHECK(acc == 1.0, "the pair is right on every row: %g", acc);
	/* one pick at most: the best single model */
	cai_ensemble_select(probs, 3, gold, 4, 2, 1, counts, &acc, &ll);
	CHECK(counts[0] == 0 && counts[1] == 1 && counts[2] == 0 && acc == 0.75 &&
		  fabs(ll - (log(0.9) + log(0.8) + log(0.6) + log(0.3)) / 4) < 1e-6, "one pick: a (%d %d %d, %g, %g)",
		  counts[0], counts[1], counts[2], acc, ll);
	/* no rows: the first (the caller's best) */
	cai_ensemble_select(probs, 3, gold, 0, 2, 3, counts, &acc, &ll);
	CHECK(counts[0] == 1 && counts[1] == 0 && counts[2] == 0 && isnan(acc) && isnan(ll), "no rows: the first model alone");
}

/* Argmax agreement and closeness of p and q (n, L). */
static bool
close_probs(const float *p, const float *q, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fabsf(p[i] - q[i]) > 1e-5f)
			return false;
	return true;
}

/*
 * Files the writer never makes, each with a valid checksum: the loader's own
 * checks.  meta from the good ensemble ens; member the bytes of a model.
 */
static void
crafted(const uint8_t *ens, size_t ens_len, const uint8_t *member, size_t member_len)
{
	cai_model_file *mf = NULL;
	cai_error	err = {0};
	uint8_t    *bad_member = malloc(member_len);
	float		w2[] = {2.0f, 1.0f};
	float		w_neg[] = {1.0f, -1.0f};
	float		w_nan[] = {1.0f, NAN};
	float		w3[] = {1.0f, 1.0f, 1.0f};
	struct
	{
		const char *what;
		int			members;	/* member tensors written */
		const float *w;
		int			n_w;
		bool		damage;		/* a flipped byte inside member 1 */
		bool		nest;		/* member 1 is the good ensemble itself */
		const char *meta_members;	/* "members": value in the metadata */
		const char *msg;
	}			cases[] = {
		{"the good file, rewritten", 2, w2, 2, false, false, "2", NULL},
		{"a negative weight", 2, w_neg, 2, false, false, "2", "not positive"},
		{"a NaN weight", 2, w_nan, 2, false, false, "2", "not positive"},
		{"weights of another length", 2, w3, 3, false, false, "2", "ensemble.weights"},
		{"a member missing", 1, w2, 2, false, false, "2", "ensemble.member.1"},
		{"a member too many", 3, w2, 2, false, false, "2", "ensemble.member.2"},
		{"members 0", 2, w2, 2, false, false, "0", "members"},
		{"members 99", 2, w2, 2, false, false, "99", "members"},
		{"members not a number", 2, w2, 2, false, false, "\"two\"", "members"},
		{"a damaged member", 2, w2, 2, true, false, "2", "ensemble.member.1"},
		{"an ensemble as a member", 2, w2, 2, false, true, "2", "is an ensemble"},
	};

	memcpy(bad_member, member, member_len);
	bad_member[member_len / 2] ^= 0x08;
	CHECK(cai_format_read(ens, ens_len, &mf, &err) == CAI_OK, "the good ensemble reads");
	for (size_t c = 0; mf != NULL && c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		cai_tensor	ts[4];
		json_object *meta = json_tokener_parse(mf->meta_json);
		json_object *info;
		uint8_t    *bytes = NULL;
		size_t		len = 0;
		cai_model  *m = NULL;
		int			nt = 0;
		cai_status	st;

		json_object_object_get_ex(meta, "ensemble", &info);
		json_object_object_add(info, "members", json_tokener_parse(cases[c].meta_members));
		memset(ts, 0, sizeof(ts));
		for (int i = 0; i < cases[c].members; i++, nt++)
		{
			snprintf(ts[nt].name, CAI_NAME_MAX, "ensemble.member.%d", i);
			ts[nt].dtype = CAI_U8;
			ts[nt].ndim = 1;
			ts[nt].shape[0] = (int64_t) (cases[c].nest && i == 1 ? ens_len : member_len);
			ts[nt].data = (void *) (cases[c].damage && i == 1 ? bad_member : cases[c].nest && i == 1 ? ens : member);
			ts[nt].nbytes = (size_t) ts[nt].shape[0];
		}
		snprintf(ts[nt].name, CAI_NAME_MAX, "ensemble.weights");
		ts[nt].dtype = CAI_F32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = cases[c].n_w;
		ts[nt].data = (void *) cases[c].w;
		ts[nt].nbytes = sizeof(float) * (size_t) cases[c].n_w;
		nt++;
		CHECK(cai_format_write(json_object_to_json_string(meta), ts, nt, &bytes, &len, &err) == CAI_OK,
			  "%s: written", cases[c].what);
		st = cai_model_load(bytes, len, false, true, &m, &err);
		if (cases[c].msg == NULL)
			CHECK(st == CAI_OK, "%s: loads: %s", cases[c].what, err.msg);
		else
			CHECK(st == CAI_ERR_FORMAT && m == NULL && strstr(err.msg, cases[c].msg) != NULL,
				  "%s: refused with \"%s\": %d %s", cases[c].what, cases[c].msg, st, err.msg);
		cai_model_free(m);
		cai_free(bytes);
		json_object_put(meta);
	}
	cai_model_file_free(mf);
	free(bad_member);
}

static void
test_members(void)
{
	Toy			train,
				valid;
	Trained		m1,
				m2,
				m3;
	cai_textclf_data two_labels;
	const uint8_t *models[3];
	size_t		lens[3];
	int			counts[3] = {2, 1, 0};
	uint8_t    *ens = NULL;
	size_t		ens_len = 0;
	cai_model  *e = NULL;
	cai_model  *a = NULL;
	cai_model  *b = NULL;
	cai_error	err = {0};
	cai_train_set set = {0};
	float	   *vp = NULL;
	int32_t    *vg = NULL;
	size_t		nv = 0;

	toy_make(&train, 240, 7, false);
	toy_make(&valid, 60, 8, true);
	m1 = train_with("{\"architecture\": \"fast\", \"epochs\": 3, \"seed\": 1}", &train.d, &valid.d, NULL, NULL);
	m2 = train_with("{\"architecture\": \"fast\", \"epochs\": 3, \"seed\": 2, \"dimensions\": 16}", &train.d, &valid.d,
					NULL, NULL);
	CHECK(m1.st == CAI_OK && m2.st == CAI_OK, "two fast members train");
	if (m1.st != CAI_OK || m2.st != CAI_OK)
		return;
	models[0] = m1.model;
	lens[0] = m1.len;
	models[1] = m2.model;
	lens[1] = m2.len;

	/* validation predictions of a member: the rows of valid_texts */
	set.texts = &train.d;
	set.valid_texts = &valid.d;
	set.label_names = label_names;
	set.n_labels = 3;
	CHECK(cai_ensemble_validation(m1.model, m1.len, &set, NULL, &vp, &vg, &nv, &err) == CAI_OK && nv == valid.d.n,
		  "validation predictions of every validation row: %s", err.msg);
	for (size_t i = 0; vg != NULL && i < nv; i++)
		CHECK(vg[i] == valid.d.labels[i], "gold class of row %zu", i);
	cai_free(vp);
	cai_free(vg);
	{
		/* or the masked rows of the training texts */
		bool	   *mask = calloc(train.d.n, sizeof(bool));

		mask[3] = mask[10] = mask[11] = true;
		set.valid_texts = NULL;
		CHECK(cai_ensemble_validation(m1.model, m1.len, &set, mask, &vp, &vg, &nv, &err) == CAI_OK && nv == 3 &&
			  vg[0] == train.d.labels[3] && vg[2] == train.d.labels[11], "validation rows by a mask");
		cai_free(vp);
		cai_free(vg);
		free(mask);
	}

	for (int picks = 3; picks >= 0; picks -= 3)
	{
		/*
		 * chosen on the validation rows (picks 3), or the mean of both (picks
		 * 0): the report is the written ensemble's own accuracy there
		 */
		int			cnt[2];
		char	   *rep = NULL;
		uint8_t    *x = NULL;
		size_t		xl = 0;
		cai_model  *xm = NULL;
		json_object *rj;
		json_object *v;
		json_object *w;
		size_t		right = 0;

		set.valid_texts = &valid.d;
		CHECK(cai_ensemble_choose(models, lens, 2, &set, NULL, picks, cnt, &rep, &err) == CAI_OK && rep != NULL &&
			  cnt[0] + cnt[1] >= 1 && cnt[0] + cnt[1] <= 3, "picks %d: chooses: %s", picks, err.msg);
		CHECK(picks > 0 || (cnt[0] == 1 && cnt[1] == 1), "picks 0: every model once (%d, %d)", cnt[0], cnt[1]);
		CHECK(cai_ensemble_write(models, lens, cnt, 2, rep, &x, &xl, &err) == CAI_OK &&
			  cai_model_load(x, xl, false, true, &xm, &err) == CAI_OK, "the chosen ensemble loads: %s", err.msg);
		for (size_t i = 0; xm != NULL && i < valid.d.n; i++)
		{
			float		p[3];

			if (cai_model_classify(xm, valid.d.texts[i], valid.d.lens[i], p, &err) == CAI_OK)
				right += argmax(p, 3) == valid.d.labels[i];
		}
		rj = rep != NULL ? json_tokener_parse(rep) : NULL;
		CHECK(rj != NULL && json_object_object_get_ex(rj, "accuracy", &v) &&
			  fabs(json_object_get_double(v) - (double) right / (double) valid.d.n) < 1e-9,
			  "picks %d: the report's accuracy is the ensemble's: %zu of %zu", picks, right, valid.d.n);
		CHECK(rj != NULL && json_object_object_get_ex(rj, "score", &w) &&
			  json_object_get_double(w) == (double) right / (double) valid.d.n, "its score is that accuracy");
		CHECK(rj != NULL && json_object_object_get_ex(rj, "log_prob", &v) &&
			  json_object_object_get_ex(rj, "first_log_prob", &w) &&
			  (picks == 0 || json_object_get_double(v) >= json_object_get_double(w)) && json_object_get_double(v) < 0,
			  "picks %d: a log-probability, the chosen ensemble's at least the first model's", picks);
		json_object_put(rj);
		cai_model_free(xm);
		cai_free(x);
		cai_free(rep);
	}
	CHECK(cai_ensemble_write(models, lens, counts, 2, "{\"score\": 0.5, \"accuracy\": 0.5}", &ens, &ens_len, &err) ==
		  CAI_OK, "writes: %s", err.msg);
	CHECK(cai_model_load(ens, ens_len, false, true, &e, &err) == CAI_OK, "loads: %s", err.msg);
	CHECK(cai_model_load(m1.model, m1.len, false, true, &a, &err) == CAI_OK &&
		  cai_model_load(m2.model, m2.len, false, true, &b, &err) == CAI_OK, "members load alone");
	if (e != NULL && a != NULL && b != NULL)
	{
		size_t		n = valid.d.n;
		float	   *pe = calloc(n * 3, sizeof(float));
		float	   *pb = calloc(n * 3, sizeof(float));
		float	   *pa = calloc(n * 3, sizeof(float));
		float	   *pm = calloc(n * 3, sizeof(float));
		json_object *meta = json_tokener_parse(cai_model_meta_json(e));
		json_object *v;
		json_object *w;

		CHECK(strcmp(cai_model_architecture(e), "ensemble") == 0 && cai_model_kind(e) == CAI_KIND_CLASSIFY &&
			  cai_model_n_labels(e) == 3 && strcmp(cai_model_label(e, 2), "positive") == 0, "an ensemble classifier");
		CHECK(meta != NULL && json_object_object_get_ex(meta, "ensemble", &v) &&
			  json_object_object_get_ex(v, "weights", &w) && json_object_array_length(w) == 2 &&
			  json_object_get_int(json_object_array_get_idx(w, 0)) == 2 &&
			  json_object_object_get_ex(meta, "metrics", &v) && json_object_object_get_ex(v, "score", &w) &&
			  json_object_get_double(w) == 0.5 && !json_object_object_get_ex(meta, "fast", NULL) &&
			  json_object_object_get_ex(meta, "options", &v), "metadata: weights, its metrics, the lead's options");
		json_object_put(meta);
		CHECK(cai_model_classify_batch(e, (const char *const *) valid.d.texts, valid.d.lens, n, pe, &err) == CAI_OK &&
			  cai_model_classify_batch(a, (const char *const *) valid.d.texts, valid.d.lens, n, pa, &err) == CAI_OK &&
			  cai_model_classify_batch(b, (const char *const *) valid.d.texts, valid.d.lens, n, pb, &err) == CAI_OK,
			  "batches classify");
		for (size_t i = 0; i < n * 3; i++)
			pm[i] = (2.0f * pa[i] + pb[i]) / 3.0f;
		CHECK(close_probs(pe, pm, n * 3), "the ensemble's probabilities are the 2:1 mean of its members'");
		for (size_t i = 0; i < n; i++)
		{
			float		p[3];

			CHECK(cai_model_classify(e, valid.d.texts[i], valid.d.lens[i], p, &err) == CAI_OK &&
				  close_probs(p, pe + i * 3, 3), "row %zu alone = in a batch", i);
		}
		CHECK(cai_model_known_word(e, "great", 5) == (cai_model_known_word(a, "great", 5) ||
													   cai_model_known_word(b, "great", 5)),
			  "a word any member knows");
		CHECK(cai_model_memory(e) > cai_model_memory(a), "memory counts the members");
		free(pe);
		free(pa);
		free(pb);
		free(pm);
	}
	cai_model_free(a);
	cai_model_free(b);

	/* a view of the bytes loads too, and an ensemble is no member */
	{
		cai_model  *ev = NULL;
		const uint8_t *nested[] = {ens, m1.model};
		size_t		nested_len[] = {ens_len, m1.len};
		int			one[] = {1, 1};
		uint8_t    *x = NULL;
		size_t		xl = 0;

		uint8_t    *al = aligned_alloc(32, (ens_len + 31) / 32 * 32);

		memcpy(al, ens, ens_len);
		CHECK(cai_model_load(al, ens_len, true, true, &ev, &err) == CAI_OK, "loads as a view: %s", err.msg);
		cai_model_free(ev);
		free(al);
		CHECK(cai_ensemble_write(nested, nested_len, one, 2, NULL, &x, &xl, &err) == CAI_ERR_INVALID &&
			  strstr(err.msg, "not ensembles") != NULL, "no nested ensemble: %s", err.msg);
	}

	/* members with other labels */
	two_labels = train.d;
	{
		int32_t    *l2 = malloc(sizeof(int32_t) * train.d.n);
		static const char *const names2[] = {"negative", "positive"};
		cai_options *o = opts_of("{\"architecture\": \"fast\", \"epochs\": 1}");
		const uint8_t *mixed[2];
		size_t		mixed_len[2];
		int			one[] = {1, 1};
		uint8_t    *x = NULL;
		size_t		xl = 0;

		for (size_t i = 0; i < train.d.n; i++)
			l2[i] = train.d.labels[i] == 2 ? 1 : 0;
		two_labels.labels = l2;
		memset(&m3, 0, sizeof(m3));
		m3.st = cai_textclf_train(o, names2, 2, &two_labels, NULL, NULL, "{}", NULL, NULL, &m3.model, &m3.len,
								  &m3.metrics, &m3.err);
		CHECK(m3.st == CAI_OK, "a two-label model trains");
		mixed[0] = m1.model;
		mixed_len[0] = m1.len;
		mixed[1] = m3.model;
		mixed_len[1] = m3.len;
		CHECK(cai_ensemble_write(mixed, mixed_len, one, 2, NULL, &x, &xl, &err) == CAI_ERR_INVALID &&
			  strstr(err.msg, "labels") != NULL, "members with other labels are refused: %s", err.msg);
		cai_options_free(o);
		free(l2);
		trained_free(&m3);
	}
	{
		/* a tagger is no member */
		size_t		nl = 0;
		uint8_t    *ner = ner_train_bytes("{\"epochs\": 1}", &nl);
		const uint8_t *mixed[] = {m1.model, ner};
		size_t		mixed_len[] = {m1.len, nl};
		int			one[] = {1, 1};
		uint8_t    *x = NULL;
		size_t		xl = 0;

		CHECK(ner != NULL, "an NER model trains");
		if (ner != NULL)
			CHECK(cai_ensemble_write(mixed, mixed_len, one, 2, NULL, &x, &xl, &err) == CAI_ERR_INVALID &&
				  strstr(err.msg, "classifiers") != NULL, "a tagger is refused: %s", err.msg);
		cai_free(ner);
	}
	{
		int			none[] = {0, 0};
		uint8_t    *x = NULL;
		size_t		xl = 0;

		CHECK(cai_ensemble_write(models, lens, none, 2, NULL, &x, &xl, &err) == CAI_ERR_INVALID, "no member");
		CHECK(cai_ensemble_write(models, lens, counts, 2, "[1]", &x, &xl, &err) == CAI_ERR_INVALID,
			  "metrics must be an object");
	}

	/* damaged files: every truncation fails cleanly; a flipped byte in a member fails the check */
	for (size_t cut = 0; ens != NULL && cut < ens_len; cut += 1 + cut / 3)
	{
		cai_model  *bad = NULL;

		CHECK(cai_model_load(ens, cut, false, true, &bad, &err) != CAI_OK && bad == NULL, "truncated at %zu", cut);
	}
	if (ens != NULL)
	{
		uint8_t    *copy = malloc(ens_len);
		cai_model  *bad = NULL;

		memcpy(copy, ens, ens_len);
		copy[ens_len / 2] ^= 0x40;
		CHECK(cai_model_load(copy, ens_len, false, true, &bad, &err) == CAI_ERR_CHECKSUM && bad == NULL,
			  "a flipped byte: %s", err.msg);
		free(copy);
		crafted(ens, ens_len, m1.model, m1.len);
	}

	cai_model_free(e);
	cai_free(ens);
	trained_free(&m1);
	trained_free(&m2);
	toy_free(&train);
	toy_free(&valid);
}

int
main(void)
{
	test_select();
	test_members();
	return check_summary("test_ensemble");
}
