/*
 * test_compat.c: models written by release 0.1.0 still load and predict the
 * same with the current core.
 *
 * The fixtures (test/fixtures/0.1.0/, see its README.md) are fast.cai,
 * accurate.cai and ner.cai, serialized by 0.1.0 (commit e43b0b4), and
 * expected.tsv with what 0.1.0 predicted for fixed probe inputs (written by
 * test/fixtures/make_fixtures.c; its header describes the columns).  The
 * directory is $CAI_FIXTURES_DIR, by default test/fixtures/0.1.0 (the unit
 * tests run from the repository root).  A missing or unreadable fixture is a
 * failure.
 *
 * Each model is loaded four ways: cai_format_read + the architecture's own
 * loader (cai_textclf_load / cai_ner_load), and cai_model_load with copied
 * tensors, in place from an aligned copy (checksum verified) and in place
 * trusted (checksum skipped).  Each must report cai_version 0.1.0 and its
 * task, architecture and labels, and reproduce every line of expected.tsv:
 * the same predicted class and every probability within 1e-5 (BLAS kernels
 * differ across CPUs), or exactly the same tags.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/format.h"
#include "cai/model.h"
#include "cai/ner.h"
#include "cai/textclf.h"
#include "check.h"

#define PROBES_PER_MODEL 11		/* lines of each model in expected.tsv */
#define PROB_ATOL 1e-5f
#define MAX_LABELS 16
#define MAX_TOKENS 64

static const char *dir;

/* ---------------------------------------------------------------------- */
/* Files                                                                  */
/* ---------------------------------------------------------------------- */

/* Read dir/name whole; NULL (and a failed check) when missing. */
static uint8_t *
read_fixture(const char *name, size_t *len)
{
	char		path[4096];
	FILE	   *f;
	uint8_t    *buf = NULL;
	long		n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	CHECK(f != NULL, "fixture %s is missing (CAI_FIXTURES_DIR=%s)", path, dir);
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
	{
		buf = malloc((size_t) n + 1);
		if (buf != NULL && fread(buf, 1, (size_t) n, f) == (size_t) n)
		{
			buf[n] = '\0';
			*len = (size_t) n;
		}
		else
		{
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	CHECK(buf != NULL, "fixture %s cannot be read", path);
	return buf;
}

/* An aligned copy of bytes, as a shared mapping would be. */
static uint8_t *
aligned_copy(const uint8_t *b, size_t len)
{
	size_t		cap = (len + CAI_FORMAT_ALIGN - 1) / CAI_FORMAT_ALIGN * CAI_FORMAT_ALIGN;
	uint8_t    *p = aligned_alloc(CAI_FORMAT_ALIGN, cap > 0 ? cap : CAI_FORMAT_ALIGN);

	if (p != NULL)
		memcpy(p, b, len);
	return p;
}

/* ---------------------------------------------------------------------- */
/* expected.tsv                                                           */
/* ---------------------------------------------------------------------- */

typedef struct Probe
{
	char		model[16];
	int			index;
	char	   *input;			/* unescaped */
	char	   *output;
	int			line;
} Probe;

static Probe *probes;
static int	n_probes;

/* Unescape \\ \t \n \r in place; false on any other escape. */
static bool
unescape(char *s)
{
	char	   *w = s;

	for (char *r = s; *r; r++)
	{
		if (*r != '\\')
		{
			*w++ = *r;
			continue;
		}
		r++;
		switch (*r)
		{
			case '\\':
				*w++ = '\\';
				break;
			case 't':
				*w++ = '\t';
				break;
			case 'n':
				*w++ = '\n';
				break;
			case 'r':
				*w++ = '\r';
				break;
			default:
				return false;
		}
	}
	*w = '\0';
	return true;
}

static bool
load_expected(void)
{
	size_t		len = 0;
	char	   *text = (char *) read_fixture("expected.tsv", &len);
	int			lineno = 0;
	size_t		n_lines = 1;

	if (text == NULL)
		return false;
	for (size_t i = 0; i < len; i++)
		n_lines += text[i] == '\n';
	probes = calloc(n_lines, sizeof(Probe));
	if (probes == NULL)
	{
		free(text);
		return false;
	}
	for (char *line = text, *next; line != NULL && *line; line = next)
	{
		char	   *f[4];
		int			nf = 0;
		char	   *end;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		if (line[0] == '#')
			continue;
		for (char *p = line;; p++)
		{
			f[nf++] = p;
			p = strchr(p, '\t');
			if (p == NULL || nf == 4)
				break;
			*p = '\0';
		}
		CHECK(nf == 4 && strchr(f[3], '\t') == NULL, "expected.tsv line %d: 4 tab-separated fields", lineno);
		if (nf != 4)
			continue;
		Probe	   *p = &probes[n_probes];

		CHECK(strlen(f[0]) < sizeof(p->model), "expected.tsv line %d: model name", lineno);
		snprintf(p->model, sizeof(p->model), "%s", f[0]);
		p->index = (int) strtol(f[1], &end, 10);
		CHECK(*f[1] && *end == '\0', "expected.tsv line %d: probe index", lineno);
		CHECK(unescape(f[2]), "expected.tsv line %d: escapes", lineno);
		p->input = strdup(f[2]);
		p->output = strdup(f[3]);
		p->line = lineno;
		n_probes++;
	}
	free(text);
	return true;
}

static void
free_expected(void)
{
	for (int i = 0; i < n_probes; i++)
	{
		free(probes[i].input);
		free(probes[i].output);
	}
	free(probes);
}

/* ---------------------------------------------------------------------- */
/* Metadata                                                               */
/* ---------------------------------------------------------------------- */

static void
check_meta(const char *what, const char *meta_json, const char *task, const char *arch)
{
	json_object *root = json_tokener_parse(meta_json);
	json_object *x;

	CHECK(root != NULL && json_object_is_type(root, json_type_object), "%s: metadata is a JSON object", what);
	if (root == NULL)
		return;
	CHECK(json_object_object_get_ex(root, "cai_version", &x) &&
		  strcmp(json_object_get_string(x), "0.1.0") == 0,
		  "%s: cai_version is 0.1.0", what);
	CHECK(json_object_object_get_ex(root, "task", &x) && strcmp(json_object_get_string(x), task) == 0,
		  "%s: task is %s", what, task);
	CHECK(json_object_object_get_ex(root, "architecture", &x) && strcmp(json_object_get_string(x), arch) == 0,
		  "%s: architecture is %s", what, arch);
	json_object_put(root);
}

/* ---------------------------------------------------------------------- */
/* Classifiers                                                            */
/* ---------------------------------------------------------------------- */

static const char *const class_labels[] = {"negative", "neutral", "positive"};

static int
argmax(const float *p, int n)
{
	int			b = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[b])
			b = i;
	return b;
}

/* Compare one prediction with a line of expected.tsv. */
static void
check_probs(const char *how, const Probe *pr, const float *got, int n_labels)
{
	float		want[MAX_LABELS];
	int			n = 0;
	char	   *s = pr->output;
	char	   *end;
	char		what[128];

	while (n < MAX_LABELS)
	{
		float		v = strtof(s, &end);

		if (end == s)
			break;
		want[n++] = v;
		s = end;
	}
	CHECK(n == n_labels && *s == '\0', "%s %s probe %d (line %d): %d probabilities expected, the file has %d",
		  pr->model, how, pr->index, pr->line, n_labels, n);
	if (n != n_labels)
		return;
	snprintf(what, sizeof(what), "%s %s probe %d", pr->model, how, pr->index);
	CHECK(argmax(got, n) == argmax(want, n), "%s: predicted %s, 0.1.0 predicted %s",
		  what, class_labels[argmax(got, n)], class_labels[argmax(want, n)]);
	CHECK_CLOSE(what, got, want, (size_t) n, 0.0f, PROB_ATOL);
}

static void
test_classifier(const char *arch)
{
	char		name[64];
	size_t		len = 0;
	uint8_t    *buf;
	uint8_t    *al;
	cai_model_file *mf = NULL;
	cai_textclf *tc = NULL;
	cai_model  *mc = NULL,
			   *mv = NULL,
			   *mt = NULL;
	cai_error	err = {0};
	int			seen = 0;

	snprintf(name, sizeof(name), "%s.cai", arch);
	if ((buf = read_fixture(name, &len)) == NULL)
		return;
	CHECK(cai_format_verify(buf, len, &err) == CAI_OK, "%s verifies: %s", name, err.msg);

	/* the architecture's own loader */
	CHECK(cai_format_read(buf, len, &mf, &err) == CAI_OK, "%s: cai_format_read: %s", name, err.msg);
	if (mf != NULL)
	{
		check_meta(name, mf->meta_json, "text_classification", arch);
		CHECK(cai_textclf_load(mf, &tc, &err) == CAI_OK, "%s: cai_textclf_load: %s", name, err.msg);
	}
	if (tc != NULL)
	{
		CHECK(cai_textclf_n_labels(tc) == 3, "%s: 3 labels", name);
		for (int i = 0; i < 3 && i < cai_textclf_n_labels(tc); i++)
			CHECK(strcmp(cai_textclf_label(tc, i), class_labels[i]) == 0, "%s: label %d is %s", name, i, class_labels[i]);
	}

	/* the model interface: copied, in place, in place trusted */
	al = aligned_copy(buf, len);
	CHECK(cai_model_load(buf, len, false, true, &mc, &err) == CAI_OK, "%s: cai_model_load: %s", name, err.msg);
	CHECK(al != NULL && cai_model_load(al, len, true, true, &mv, &err) == CAI_OK,
		  "%s: cai_model_load in place: %s", name, err.msg);
	CHECK(al != NULL && cai_model_load(al, len, true, false, &mt, &err) == CAI_OK,
		  "%s: cai_model_load in place, trusted: %s", name, err.msg);
	for (cai_model **mp = (cai_model *[]) {mc, mv, mt}, **e = mp + 3; mp < e; mp++)
	{
		cai_model  *m = *mp;

		if (m == NULL)
			continue;
		CHECK(cai_model_kind(m) == CAI_KIND_CLASSIFY, "%s: a classifier", name);
		CHECK(strcmp(cai_model_task(m), "text_classification") == 0 && strcmp(cai_model_architecture(m), arch) == 0,
			  "%s: task %s, architecture %s", name, cai_model_task(m), cai_model_architecture(m));
		check_meta(name, cai_model_meta_json(m), "text_classification", arch);
		CHECK(cai_model_n_labels(m) == 3, "%s: 3 labels", name);
		for (int i = 0; i < 3 && i < cai_model_n_labels(m); i++)
			CHECK(strcmp(cai_model_label(m, i), class_labels[i]) == 0, "%s: label %d", name, i);
	}

	for (int i = 0; i < n_probes; i++)
	{
		const Probe *pr = &probes[i];
		float		p[MAX_LABELS];

		if (strcmp(pr->model, arch) != 0)
			continue;
		CHECK(pr->index == seen, "%s: probes in order (line %d)", name, pr->line);
		seen++;
		if (tc != NULL)
		{
			CHECK(cai_textclf_predict(tc, pr->input, strlen(pr->input), p, &err) == CAI_OK,
				  "%s probe %d: %s", name, pr->index, err.msg);
			check_probs("cai_textclf_predict", pr, p, 3);
		}
		if (mc != NULL)
		{
			CHECK(cai_model_classify(mc, pr->input, strlen(pr->input), p, &err) == CAI_OK,
				  "%s probe %d: %s", name, pr->index, err.msg);
			check_probs("cai_model_classify", pr, p, 3);
		}
		if (mv != NULL)
		{
			CHECK(cai_model_classify(mv, pr->input, strlen(pr->input), p, &err) == CAI_OK,
				  "%s probe %d: %s", name, pr->index, err.msg);
			check_probs("cai_model_classify in place", pr, p, 3);
		}
		if (mt != NULL)
		{
			CHECK(cai_model_classify(mt, pr->input, strlen(pr->input), p, &err) == CAI_OK,
				  "%s probe %d: %s", name, pr->index, err.msg);
			check_probs("cai_model_classify trusted", pr, p, 3);
		}
	}
	CHECK(seen == PROBES_PER_MODEL, "%s: %d probes in expected.tsv, want %d", name, seen, PROBES_PER_MODEL);

	cai_model_free(mt);
	cai_model_free(mv);
	cai_model_free(mc);
	free(al);
	cai_textclf_free(tc);
	cai_model_file_free(mf);
	free(buf);
}

/* ---------------------------------------------------------------------- */
/* NER                                                                    */
/* ---------------------------------------------------------------------- */

/* Split s (a copy) at single spaces into toks; returns the count. */
static size_t
split_tokens(char *s, const char **toks, size_t *lens)
{
	size_t		n = 0;

	for (char *save = NULL, *t = strtok_r(s, " ", &save); t != NULL && n < MAX_TOKENS; t = strtok_r(NULL, " ", &save))
	{
		toks[n] = t;
		lens[n] = strlen(t);
		n++;
	}
	return n;
}

static void
check_tags(const char *how, const Probe *pr, const char **tags, const float *scores, size_t n)
{
	char		got[1024];
	size_t		w = 0;
	bool		scores_ok = true;

	got[0] = '\0';
	for (size_t i = 0; i < n && w < sizeof(got); i++)
	{
		w += (size_t) snprintf(got + w, sizeof(got) - w, "%s%s", i ? " " : "", tags[i] ? tags[i] : "(null)");
		if (!(scores[i] > 0.0f && scores[i] <= 1.0f + 1e-6f))
			scores_ok = false;
	}
	CHECK(strcmp(got, pr->output) == 0, "ner %s probe %d (line %d): tags \"%s\", 0.1.0 tagged \"%s\"",
		  how, pr->index, pr->line, got, pr->output);
	CHECK(scores_ok, "ner %s probe %d: marginals in (0, 1]", how, pr->index);
}

static void
test_ner(void)
{
	static const char *const types[] = {"LOC", "ORG", "PER"};
	size_t		len = 0;
	uint8_t    *buf;
	uint8_t    *al;
	cai_model_file *mf = NULL;
	cai_ner    *ner = NULL;
	cai_model  *mc = NULL,
			   *mv = NULL,
			   *mt = NULL;
	cai_error	err = {0};
	int			seen = 0;

	if ((buf = read_fixture("ner.cai", &len)) == NULL)
		return;
	CHECK(cai_format_verify(buf, len, &err) == CAI_OK, "ner.cai verifies: %s", err.msg);
	CHECK(cai_format_read(buf, len, &mf, &err) == CAI_OK, "ner.cai: cai_format_read: %s", err.msg);
	if (mf != NULL)
	{
		check_meta("ner.cai", mf->meta_json, "ner", "bilstm_crf");
		CHECK(cai_ner_load(mf, &ner, &err) == CAI_OK, "ner.cai: cai_ner_load: %s", err.msg);
	}
	if (ner != NULL)
	{
		CHECK(cai_ner_n_types(ner) == 3, "ner.cai: 3 entity types");
		for (int i = 0; i < 3 && i < cai_ner_n_types(ner); i++)
			CHECK(strcmp(cai_ner_type(ner, i), types[i]) == 0, "ner.cai: type %d is %s", i, types[i]);
	}

	al = aligned_copy(buf, len);
	CHECK(cai_model_load(buf, len, false, true, &mc, &err) == CAI_OK, "ner.cai: cai_model_load: %s", err.msg);
	CHECK(al != NULL && cai_model_load(al, len, true, true, &mv, &err) == CAI_OK,
		  "ner.cai: cai_model_load in place: %s", err.msg);
	CHECK(al != NULL && cai_model_load(al, len, true, false, &mt, &err) == CAI_OK,
		  "ner.cai: cai_model_load in place, trusted: %s", err.msg);
	for (cai_model **mp = (cai_model *[]) {mc, mv, mt}, **e = mp + 3; mp < e; mp++)
	{
		cai_model  *m = *mp;

		if (m == NULL)
			continue;
		CHECK(cai_model_kind(m) == CAI_KIND_TAG, "ner.cai: a tagger");
		CHECK(strcmp(cai_model_task(m), "ner") == 0 && strcmp(cai_model_architecture(m), "bilstm_crf") == 0,
			  "ner.cai: task %s, architecture %s", cai_model_task(m), cai_model_architecture(m));
		check_meta("ner.cai", cai_model_meta_json(m), "ner", "bilstm_crf");
		CHECK(cai_model_n_labels(m) == 3, "ner.cai: 3 entity types");
		for (int i = 0; i < 3 && i < cai_model_n_labels(m); i++)
			CHECK(strcmp(cai_model_label(m, i), types[i]) == 0, "ner.cai: type %d", i);
	}

	for (int i = 0; i < n_probes; i++)
	{
		const Probe *pr = &probes[i];
		char		copy[1024];
		const char *toks[MAX_TOKENS];
		size_t		lens[MAX_TOKENS];
		const char *tags[MAX_TOKENS];
		float		scores[MAX_TOKENS];
		size_t		n;

		if (strcmp(pr->model, "ner") != 0)
			continue;
		CHECK(pr->index == seen, "ner.cai: probes in order (line %d)", pr->line);
		seen++;
		snprintf(copy, sizeof(copy), "%s", pr->input);
		n = split_tokens(copy, toks, lens);
		if (ner != NULL)
		{
			CHECK(cai_ner_tag(ner, toks, lens, n, tags, scores, &err) == CAI_OK,
				  "ner probe %d: %s", pr->index, err.msg);
			check_tags("cai_ner_tag", pr, tags, scores, n);
		}
		if (mc != NULL)
		{
			CHECK(cai_model_tag(mc, toks, lens, n, tags, scores, &err) == CAI_OK,
				  "ner probe %d: %s", pr->index, err.msg);
			check_tags("cai_model_tag", pr, tags, scores, n);
		}
		if (mv != NULL)
		{
			CHECK(cai_model_tag(mv, toks, lens, n, tags, scores, &err) == CAI_OK,
				  "ner probe %d: %s", pr->index, err.msg);
			check_tags("cai_model_tag in place", pr, tags, scores, n);
		}
		if (mt != NULL)
		{
			CHECK(cai_model_tag(mt, toks, lens, n, tags, scores, &err) == CAI_OK,
				  "ner probe %d: %s", pr->index, err.msg);
			check_tags("cai_model_tag trusted", pr, tags, scores, n);
		}
	}
	CHECK(seen == PROBES_PER_MODEL, "ner.cai: %d probes in expected.tsv, want %d", seen, PROBES_PER_MODEL);

	cai_model_free(mt);
	cai_model_free(mv);
	cai_model_free(mc);
	free(al);
	cai_ner_free(ner);
	cai_model_file_free(mf);
	free(buf);
}

int
main(void)
{
	dir = getenv("CAI_FIXTURES_DIR");
	if (dir == NULL || dir[0] == '\0')
		dir = "test/fixtures/0.1.0";
	cai_blas_set_threads(1);

	if (load_expected())
	{
		for (int i = 0; i < n_probes; i++)
			CHECK(strcmp(probes[i].model, "fast") == 0 || strcmp(probes[i].model, "accurate") == 0 ||
				  strcmp(probes[i].model, "ner") == 0,
				  "expected.tsv line %d: unknown model %s", probes[i].line, probes[i].model);
		CHECK(n_probes == 3 * PROBES_PER_MODEL, "expected.tsv has %d probes, want %d", n_probes, 3 * PROBES_PER_MODEL);
		test_classifier("fast");
		test_classifier("accurate");
		test_ner();
	}
	free_expected();
	return check_summary("test_compat");
}
