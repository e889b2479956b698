/*
 * test_cli.c: the cai command (src/cli/cai.c) against direct calls of the
 * core API (include/cai/cai.h).
 *
 *   test_cli BUILD_DIR WORK_DIR    (make -f core.mk check-cli, through test/cli/run.sh)
 *
 * On generated data it trains a tiny model of every architecture with
 * `cai train` and checks: the bytes equal a training through
 * cai_arch_train with the labels, options and provenance the server gives it
 * (train_worker.c), tensor by tensor; info; predict and proba (per row and
 * batched, exact floats); tag; entities; evaluate (every number of the
 * report); the library built as libcai.so gives the same outputs; reading
 * standard input; exit codes of usage errors, missing, truncated and corrupt
 * models, wrong tasks and bad input.  Prints "N passed, N failed".
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <json-c/json.h>

#include "cai/cai.h"

static int	passed = 0;
static int	failed = 0;
static const char *bin;			/* BUILD_DIR/cai */
static const char *build;
static const char *work;

#define CHECK(cond, ...) \
	do { \
		if (cond) passed++; \
		else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
	} while (0)

static char *
fmt(const char *f,...)
{
	va_list		ap;
	char	   *s;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	size_t		cap = 0,
				n = 0,
				got;

	if (f == NULL)
		return NULL;
	do
	{
		if (n + 65536 > cap)
		{
			cap = (n + 65536) * 2;
			buf = realloc(buf, cap + 1);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

/* Run a shell command; stdout into *out (may be NULL), returns the exit status. */
static int
run(const char *cmd, char **out)
{
	char	   *path = fmt("%s/out.txt", work);
	char	   *full = fmt("%s > %s 2> %s/err.txt", cmd, path, work);
	int			st = system(full);

	if (out != NULL)
		*out = slurp(path, NULL);
	free(path);
	free(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void
write_file(const char *name, const char *text)
{
	char	   *p = fmt("%s/%s", work, name);
	FILE	   *f = fopen(p, "wb");

	fputs(text, f);
	fclose(f);
	free(p);
}

/* Lines of s (modified in place); *n of them. */
static char **
lines(char *s, size_t *n)
{
	size_t		cap = 64;
	char	  **l = malloc(sizeof(char *) * cap);

	*n = 0;
	while (s != NULL && *s != '\0')
	{
		char	   *nl = strchr(s, '\n');

		if (*n == cap)
			l = realloc(l, sizeof(char *) * (cap *= 2));
		l[(*n)++] = s;
		if (nl == NULL)
			break;
		*nl = '\0';
		s = nl + 1;
	}
	return l;
}

/* ------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------ */

static uint64_t rng = 88172645463325252ULL;

static unsigned
rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned) (rng % n);
}

static const char *const filler[] = {"the", "a", "film", "story", "café", "is", "was", "quite", "\"so\"", "back\\slash",
"of", "and", "naïve", "it", "plot"};
static const char *const cues[3][3] = {{"awful", "boring", "dull"}, {"great", "superb", "lovely"}, {"fine", "okay", "average"}};
static const char *const cls_labels[3] = {"a_neg", "b_pos", "10"};	/* sorted by the server: "10", "a_neg", "b_pos" */

static char *
cls_text(int c)
{
	char		buf[512] = "";
	int			n = 3 + (int) rnd(8);

	for (int i = 0; i < n; i++)
	{
		strcat(buf, i == n / 2 ? cues[c][rnd(3)] : filler[rnd(15)]);
		if (i < n - 1)
			strcat(buf, " ");
	}
	return strdup(buf);
}

static void
write_cls(const char *name, int rows, bool unknown_label)
{
	char	   *p = fmt("%s/%s", work, name);
	FILE	   *f = fopen(p, "w");

	fputs("label\tsentence\n", f);
	for (int i = 0; i < rows; i++)
	{
		int			c = (int) rnd(3);
		char	   *t = cls_text(c);

		fprintf(f, "%s\t%s\n", unknown_label && i == 3 ? "zzz" : cls_labels[c], t);
		free(t);
	}
	fclose(f);
	free(p);
}

static const char *const people[] = {"Anna", "Bruno", "Zoë", "Karl", "Mei"};
static const char *const places[] = {"Paris", "Köln", "Lima", "Oslo", "Rome"};
static const char *const words[] = {"visited", "met", "left", "saw", "liked", "today", "again", "and"};

/* CoNLL sentences (token TAB pos TAB tag when extra, else token TAB tag) and the raw sentences */
static void
write_ner(const char *name, const char *raw_name, int sentences, bool extra)
{
	char	   *p = fmt("%s/%s", work, name);
	FILE	   *f = fopen(p, "w");
	FILE	   *r = NULL;

	if (raw_name != NULL)
	{
		char	   *rp = fmt("%s/%s", work, raw_name);

		r = fopen(rp, "w");
		free(rp);
	}
	for (int s = 0; s < sentences; s++)
	{
		int			n = 3 + (int) rnd(6);

		for (int i = 0; i < n; i++)
		{
			const char *tok;
			const char *tag;

			switch (rnd(4))
			{
				case 0:
					tok = people[rnd(5)];
					tag = "B-PER";
					break;
				case 1:
					tok = places[rnd(5)];
					tag = "B-LOC";
					break;
				default:
					tok = words[rnd(8)];
					tag = "O";
			}
			fprintf(f, extra ? "%s\tX\t%s\n" : "%s\t%s\n", tok, tag);
			if (r != NULL)
				fprintf(r, "%s%s", i > 0 ? " " : "", tok);
		}
		fputs(s < sentences - 1 ? "\n" : "", f);
		if (r != NULL)
			fputs(" .\n", r);
	}
	fclose(f);
	if (r != NULL)
		fclose(r);
	free(p);
}

/* ------------------------------------------------------------------------
 * Reference: the core API directly
 * ------------------------------------------------------------------------ */

typedef struct Rows
{
	size_t		n;
	char	  **labels;
	char	  **texts;
	size_t	   *lens;
} Rows;

static void
read_rows(const char *name, bool header, Rows *r)
{
	char	   *p = fmt("%s/%s", work, name);
	char	   *s = slurp(p, NULL);
	size_t		n;
	char	  **l = lines(s, &n);

	memset(r, 0, sizeof(*r));
	r->labels = malloc(sizeof(char *) * (n + 1));
	r->texts = malloc(sizeof(char *) * (n + 1));
	r->lens = malloc(sizeof(size_t) * (n + 1));
	for (size_t i = header ? 1 : 0; i < n; i++)
	{
		char	   *tab = header ? strchr(l[i], '\t') : NULL;
		size_t		len;

		if (tab != NULL)
			*tab = '\0';
		r->labels[r->n] = header ? l[i] : NULL;
		r->texts[r->n] = header ? tab + 1 : l[i];
		len = strlen(r->texts[r->n]);
		if (len > 0 && r->texts[r->n][len - 1] == '\r')
			len--;
		r->lens[r->n] = len;
		r->n++;
	}
	free(p);
}

/* the server's label order (train_worker.c CaiCompareLabels) */
static int
compare_labels(const void *a, const void *b)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;
	char	   *ex,
			   *ey;
	long		lx = strtol(x, &ex, 10),
				ly = strtol(y, &ey, 10);

	if (*x && *y && *ex == '\0' && *ey == '\0')
		return (lx > ly) - (lx < ly);
	return strcmp(x, y);
}

typedef struct Sents
{
	size_t		n;
	int64_t    *off;
	char	  **tok;
	size_t	   *len;
	char	  **tag;
} Sents;

static void
read_sents(const char *name, Sents *c)
{
	char	   *p = fmt("%s/%s", work, name);
	char	   *s = slurp(p, NULL);
	size_t		n,
				nt = 0;
	char	  **l = lines(s, &n);

	c->off = malloc(sizeof(int64_t) * (n + 2));
	c->tok = malloc(sizeof(char *) * (n + 1));
	c->len = malloc(sizeof(size_t) * (n + 1));
	c->tag = malloc(sizeof(char *) * (n + 1));
	c->n = 0;
	c->off[0] = 0;
	for (size_t i = 0; i <= n; i++)
	{
		if (i == n || l[i][0] == '\0')
		{
			if ((int64_t) nt > c->off[c->n])
				c->off[++c->n] = (int64_t) nt;
			continue;
		}
		c->tok[nt] = l[i];
		*strchr(l[i], '\t') = '\0';
		c->len[nt] = strlen(l[i]);
		c->tag[nt] = strrchr(l[i] + c->len[nt] + 1, '\t') ? strrchr(l[i] + c->len[nt] + 1, '\t') + 1 :
			l[i] + c->len[nt] + 1;
		nt++;
	}
	free(p);
}

static cai_ner_data
sents_data(const Sents *c)
{
	cai_ner_data d = {c->n, c->off, (const char *const *) c->tok, c->len, (const char *const *) c->tag};

	return d;
}

static uint8_t *
load_bytes(const char *name, size_t *len)
{
	char	   *p = fmt("%s/%s", work, name);
	uint8_t    *b = (uint8_t *) slurp(p, len);

	free(p);
	return b;
}

static cai_model *
load_model(const char *name, uint8_t **bytes)
{
	size_t		len;
	cai_model  *m = NULL;
	cai_error	err = {0};

	*bytes = load_bytes(name, &len);
	if (*bytes == NULL || cai_model_load(*bytes, len, false, true, &m, &err) != CAI_OK)
	{
		printf("FAIL cannot load %s: %s\n", name, err.msg);
		failed++;
		return NULL;
	}
	return m;
}

/* Train in process as the server does (train_worker.c) and compare with the file cai train wrote. */
static void
check_train_bytes(const char *task_name, const char *options, const char *train, const char *valid,
				  const char *model_name)
{
	const cai_task *task = cai_task_find(task_name);
	const cai_arch *arch = NULL;
	cai_options *opts = NULL;
	cai_error	err = {0};
	cai_train_set set = {0};
	uint8_t    *model = NULL;
	size_t		model_len = 0;
	char	   *metrics = NULL;
	Rows		tr,
				va;
	Sents		str,
				sva;
	cai_textclf_data dtr = {0},
				dva = {0};
	cai_ner_data ntr,
				nva;
	size_t		n_train,
				n_valid = 0;
	char	  **labels = NULL;
	int			n_labels = 0;
	char	   *prov;
	size_t		file_len;
	uint8_t    *file = load_bytes(model_name, &file_len);
	cai_model_file *a = NULL,
			   *b = NULL;
	bool		same_tensors;

	/* the options the server gets: the user's, validation_source naming the validation table */
	char	   *opts_json = valid != NULL ? fmt("{%s%s\"validation_source\": \"%s\"}", options,
											   options[0] ? ", " : "", valid) : fmt("{%s}", options);

	CHECK(cai_task_parse_options(task, opts_json, &arch, &opts, &err) == CAI_OK, "options %s: %s", opts_json, err.msg);
	if (task->kind == CAI_KIND_CLASSIFY)
	{
		char	  **sorted;
		int32_t    *ids,
				   *vids = NULL;

		read_rows(train, true, &tr);
		sorted = malloc(sizeof(char *) * tr.n);
		labels = malloc(sizeof(char *) * tr.n);
		memcpy(sorted, tr.labels, sizeof(char *) * tr.n);
		qsort(sorted, tr.n, sizeof(char *), compare_labels);
		for (size_t i = 0; i < tr.n; i++)
			if (n_labels == 0 || strcmp(labels[n_labels - 1], sorted[i]) != 0)
				labels[n_labels++] = sorted[i];
		ids = malloc(sizeof(int32_t) * tr.n);
		for (size_t i = 0; i < tr.n; i++)
			ids[i] = (int32_t) ((char **) bsearch(&tr.labels[i], labels, n_labels, sizeof(char *), compare_labels) - labels);
		dtr = (cai_textclf_data) {tr.n, (const char *const *) tr.texts, tr.lens, ids};
		set.texts = &dtr;
		set.label_names = (const char *const *) labels;
		set.n_labels = n_labels;
		n_train = tr.n;
		if (valid != NULL)
		{
			read_rows(valid, true, &va);
			vids = malloc(sizeof(int32_t) * va.n);
			for (size_t i = 0; i < va.n; i++)
				vids[i] = (int32_t) ((char **) bsearch(&va.labels[i], labels, n_labels, sizeof(char *), compare_labels) - labels);
			dva = (cai_textclf_data) {va.n, (const char *const *) va.texts, va.lens, vids};
			set.valid_texts = &dva;
			n_valid = va.n;
		}
	}
	else
	{
		read_sents(train, &str);
		ntr = sents_data(&str);
		set.sentences = &ntr;
		n_train = str.n;
		if (valid != NULL)
		{
			read_sents(valid, &sva);
			nva = sents_data(&sva);
			set.valid_sentences = &nva;
			n_valid = sva.n;
		}
	}
	/* CaiWorkerReadEnd's text, with cai train's stand-ins */
	prov = fmt("{\"train_rows\": %zu, \"skipped_rows\": 0, \"validation_rows\": %zu, \"role\": \"cai\", "
			   "\"database\": \"cai\", \"source\": \"%s\"}", n_train, n_valid, train);
	CHECK(cai_arch_train(arch, opts, &set, prov, NULL, NULL, &model, &model_len, &metrics, &err) == CAI_OK,
		  "train %s: %s", model_name, err.msg);
	CHECK(file != NULL && model_len == file_len && memcmp(model, file, model_len) == 0,
		  "%s: cai train's bytes differ from the server's training (%zu vs %zu bytes)", model_name, file_len, model_len);
	/* tensor by tensor, bit for bit */
	same_tensors = cai_format_read(model, model_len, &a, &err) == CAI_OK &&
		cai_format_read(file, file_len, &b, &err) == CAI_OK && a->n_tensors == b->n_tensors;
	for (int i = 0; same_tensors && i < a->n_tensors; i++)
		same_tensors = strcmp(a->tensors[i].name, b->tensors[i].name) == 0 &&
			a->tensors[i].nbytes == b->tensors[i].nbytes &&
			memcmp(a->tensors[i].data, b->tensors[i].data, a->tensors[i].nbytes) == 0;
	CHECK(same_tensors, "%s: tensors differ", model_name);
	CHECK(a != NULL && b != NULL && strcmp(a->meta_json, b->meta_json) == 0, "%s: metadata differs", model_name);
	cai_model_file_free(a);
	cai_model_file_free(b);
	cai_free(model);
	cai_free(metrics);
	cai_options_free(opts);
	free(prov);
	free(opts_json);
	free(file);
}

/* ------------------------------------------------------------------------
 * Checks of each command
 * ------------------------------------------------------------------------ */

static void
check_info(const char *model_name, cai_model *m)
{
	char	   *out;
	char	   *cmd = fmt("%s info %s/%s", bin, work, model_name);
	int			st = run(cmd, &out);
	struct json_object *o = json_tokener_parse(out);
	struct json_object *v;
	size_t		len;
	uint8_t    *bytes = load_bytes(model_name, &len);

	CHECK(st == 0 && o != NULL, "info %s: exit %d", model_name, st);
	if (o == NULL)
		return;
	CHECK(json_object_object_get_ex(o, "task", &v) && strcmp(json_object_get_string(v), cai_model_task(m)) == 0,
		  "info task");
	CHECK(json_object_object_get_ex(o, "architecture", &v) &&
		  strcmp(json_object_get_string(v), cai_model_architecture(m)) == 0, "info architecture");
	CHECK(json_object_object_get_ex(o, "labels", &v) &&
		  (int) json_object_array_length(v) == cai_model_n_labels(m), "info labels");
	for (int i = 0; v != NULL && i < cai_model_n_labels(m) && i < (int) json_object_array_length(v); i++)
		CHECK(strcmp(json_object_get_string(json_object_array_get_idx(v, i)), cai_model_label(m, i)) == 0,
			  "info label %d", i);
	CHECK(json_object_object_get_ex(o, "size_bytes", &v) && (size_t) json_object_get_int64(v) == len, "info size");
	CHECK(json_object_object_get_ex(o, "memory_bytes", &v) &&
		  (size_t) json_object_get_int64(v) == cai_model_memory(m), "info memory");
	CHECK(json_object_object_get_ex(o, "options", &v) && json_object_is_type(v, json_type_object), "info options");
	CHECK(json_object_object_get_ex(o, "metrics", &v), "info metrics");
	CHECK(json_object_object_get_ex(o, "provenance", &v) && json_object_object_get_ex(v, "source", &v),
		  "info provenance");
	json_object_put(o);
	free(out);
	free(cmd);
	free(bytes);
}

/* the CLI's proba keys must come in jsonb order: shorter first, then bytes */
static bool
jsonb_ordered(const char *a, const char *b)
{
	size_t		la = strlen(a),
				lb = strlen(b);

	return la < lb || (la == lb && strcmp(a, b) < 0);
}

static void
check_classify(const char *model_name, cai_model *m, const char *input, const char *flags, size_t chunk)
{
	Rows		r;
	int			L = cai_model_n_labels(m);
	float	   *probs;
	cai_error	err = {0};
	char	   *out,
			   *pout;
	char	   *cmd = fmt("%s predict %s %s/%s %s/%s", bin, flags, work, model_name, work, input);
	char	   *pcmd = fmt("%s proba %s %s/%s %s/%s", bin, flags, work, model_name, work, input);
	size_t		n_out,
				n_pout;
	char	  **lo,
			  **lp;
	int			st = run(cmd, &out);
	int			pst = run(pcmd, &pout);
	bool		ok_labels = true,
				ok_probs = true,
				ok_order = true,
				ok_format = true;

	read_rows(input, false, &r);
	probs = malloc(sizeof(float) * r.n * (size_t) L);
	/* chunk 0: one cai_model_classify per text (cai_predict); else cai_model_classify_batch calls (cai_predict_query) */
	for (size_t i = 0; i < r.n; i += chunk ? chunk : 1)
	{
		size_t		k = chunk == 0 ? 1 : (r.n - i < chunk ? r.n - i : chunk);

		if (chunk == 0)
			CHECK(cai_model_classify(m, r.texts[i], r.lens[i], probs + i * L, &err) == CAI_OK, "classify %s", err.msg);
		else
			CHECK(cai_model_classify_batch(m, (const char *const *) r.texts + i, r.lens + i, k, probs + i * L, &err) == CAI_OK,
				  "classify_batch %s", err.msg);
	}
	lo = lines(out, &n_out);
	lp = lines(pout, &n_pout);
	CHECK(st == 0 && n_out == r.n, "predict %s %s: exit %d, %zu lines for %zu texts", model_name, flags, st, n_out, r.n);
	CHECK(pst == 0 && n_pout == r.n, "proba %s %s: exit %d, %zu lines for %zu texts", model_name, flags, pst, n_pout, r.n);
	for (size_t i = 0; i < r.n && i < n_out && i < n_pout; i++)
	{
		const float *p = probs + i * L;
		int			best = 0;
		struct json_object *o = json_tokener_parse(lp[i]);
		const char *prev = NULL;

		for (int c = 1; c < L; c++)
			if (p[c] > p[best])
				best = c;
		ok_labels &= strcmp(lo[i], cai_model_label(m, best)) == 0;
		if (o == NULL || json_object_object_length(o) != L)
		{
			ok_probs = false;
			continue;
		}
		for (int c = 0; c < L; c++)
		{
			struct json_object *v;

			ok_probs &= json_object_object_get_ex(o, cai_model_label(m, c), &v) &&
				(float) json_object_get_double(v) == p[c];
		}
		json_object_object_foreach(o, key, val)
		{
			char		g[64];
			const char *txt = json_object_to_json_string(val);

			ok_order &= prev == NULL || jsonb_ordered(prev, key);
			prev = key;
			/* float8_numeric's value (%.15g), written without an exponent */
			snprintf(g, sizeof(g), "%.15g", json_object_get_double(val));
			ok_format &= strchr(txt, 'e') == NULL && strtod(g, NULL) == strtod(txt, NULL);
		}
		json_object_put(o);
	}
	CHECK(ok_labels, "predict %s %s: labels differ from the core's", model_name, flags);
	CHECK(ok_probs, "proba %s %s: probabilities differ from the core's", model_name, flags);
	CHECK(ok_order, "proba %s: keys not in jsonb order", model_name);
	CHECK(ok_format, "proba %s: numbers not as float8_numeric prints them", model_name);
	free(probs);
	free(out);
	free(pout);
	free(lo);
	free(lp);
	free(cmd);
	free(pcmd);
}

static void
check_tag(const char *model_name, cai_model *m, const char *input, const char *flags, bool per_row)
{
	Sents		c;
	cai_ner_data d = {0};
	const char **tags;
	cai_error	err = {0};
	char	   *out;
	char	   *cmd = fmt("%s tag %s %s/%s %s/%s", bin, flags, work, model_name, work, input);
	int			st = run(cmd, &out);
	size_t		n;
	char	  **l = lines(out, &n);
	size_t		li = 0;
	bool		ok = true;

	read_sents(input, &c);
	d = sents_data(&c);
	tags = malloc(sizeof(char *) * (size_t) c.off[c.n]);
	if (per_row)
		for (size_t s = 0; s < c.n; s++)
			CHECK(cai_model_tag(m, (const char *const *) c.tok + c.off[s], c.len + c.off[s], c.off[s + 1] - c.off[s],
								tags + c.off[s], NULL, &err) == CAI_OK, "tag %s", err.msg);
	else
		CHECK(cai_model_tag_batch(m, &d, tags, NULL, &err) == CAI_OK, "tag_batch %s", err.msg);
	CHECK(st == 0, "tag %s: exit %d", flags, st);
	for (size_t s = 0; s < c.n && ok; s++)
	{
		for (int64_t k = c.off[s]; k < c.off[s + 1] && ok; k++)
		{
			char	   *want = fmt("%s\t%s", c.tok[k], tags[k]);

			ok = li < n && strcmp(l[li++], want) == 0;
			free(want);
		}
		ok = ok && li < n && l[li++][0] == '\0';
	}
	CHECK(ok && li == n, "tag %s: output differs from the core's (line %zu)", flags, li);
	free(tags);
	free(out);
	free(l);
	free(cmd);
}

static void
check_entities(const char *model_name, cai_model *m, const char *input, const char *flags, bool per_row)
{
	Rows		r;
	cai_error	err = {0};
	char	   *out;
	char	   *cmd = fmt("%s entities %s %s/%s %s/%s", bin, flags, work, model_name, work, input);
	int			st = run(cmd, &out);
	size_t		n;
	char	  **l = lines(out, &n);
	cai_entity *all = NULL;
	size_t	   *offsets;
	bool		ok = true;
	size_t		total = 0;

	read_rows(input, false, &r);
	offsets = malloc(sizeof(size_t) * (r.n + 1));
	if (!per_row)
		CHECK(cai_model_entities_batch(m, (const char *const *) r.texts, r.lens, r.n, 0, &all, offsets, &err) == CAI_OK,
			  "entities_batch %s", err.msg);
	CHECK(st == 0 && n == r.n, "entities %s: exit %d, %zu lines for %zu texts", flags, st, n, r.n);
	for (size_t i = 0; i < r.n && i < n && ok; i++)
	{
		cai_entity *e = NULL;
		size_t		ne = 0;
		struct json_object *o = json_tokener_parse(l[i]);

		if (per_row)
			CHECK(cai_model_entities(m, r.texts[i], r.lens[i], 0, &e, &ne, &err) == CAI_OK, "entities %s", err.msg);
		else
		{
			e = all + offsets[i];
			ne = offsets[i + 1] - offsets[i];
		}
		ok = o != NULL && json_object_is_type(o, json_type_array) && json_object_array_length(o) == ne;
		for (size_t k = 0; ok && k < ne; k++)
		{
			struct json_object *x = json_object_array_get_idx(o, k);
			struct json_object *v;
			char		s4[32];

			snprintf(s4, sizeof(s4), "%.4f", e[k].score);
			ok = json_object_object_get_ex(x, "entity", &v) &&
				(size_t) json_object_get_string_len(v) == (size_t) (e[k].end - e[k].start) &&
				memcmp(json_object_get_string(v), r.texts[i] + e[k].start, e[k].end - e[k].start) == 0 &&
				json_object_object_get_ex(x, "label", &v) &&
				strcmp(json_object_get_string(v), cai_model_label(m, e[k].type)) == 0 &&
				json_object_object_get_ex(x, "start", &v) && json_object_get_int64(v) == e[k].cstart + 1 &&
				json_object_object_get_ex(x, "end", &v) && json_object_get_int64(v) == e[k].cend &&
				json_object_object_get_ex(x, "score", &v) && strcmp(json_object_to_json_string(v), s4) == 0;
		}
		total += ne;
		json_object_put(o);
		if (per_row)
			cai_free(e);
		if (!ok)
			printf("  line %zu: %s\n", i + 1, l[i]);
	}
	CHECK(ok, "entities %s: output differs from the core's", flags);
	CHECK(total > 0, "entities %s: the test found no entities at all", flags);
	cai_free(all);
	free(offsets);
	free(out);
	free(l);
	free(cmd);
}

/* every value of want in got, numbers equal as doubles */
static bool
json_same(struct json_object *want, struct json_object *got)
{
	json_type	t = json_object_get_type(want);

	if (t == json_type_int || t == json_type_double)
		return (json_object_is_type(got, json_type_int) || json_object_is_type(got, json_type_double)) &&
			json_object_get_double(want) == json_object_get_double(got);
	if (t != json_object_get_type(got))
		return false;
	if (t == json_type_string)
		return strcmp(json_object_get_string(want), json_object_get_string(got)) == 0;
	if (t == json_type_array)
	{
		if (json_object_array_length(want) != json_object_array_length(got))
			return false;
		for (size_t i = 0; i < json_object_array_length(want); i++)
			if (!json_same(json_object_array_get_idx(want, i), json_object_array_get_idx(got, i)))
				return false;
		return true;
	}
	if (t == json_type_object)
	{
		struct json_object *v;

		if (json_object_object_length(want) != json_object_object_length(got))
			return false;
		json_object_object_foreach(want, key, val)
			if (!json_object_object_get_ex(got, key, &v) || !json_same(val, v))
			return false;
		return true;
	}
	return true;
}

static void
check_evaluate_cls(const char *model_name, cai_model *m, const char *input)
{
	Rows		r;
	int			L = cai_model_n_labels(m);
	int			n_labels = L;
	const char **labels;
	int32_t    *gold,
			   *pred;
	float	   *p = malloc(sizeof(float) * L);
	char	   *json = NULL;
	cai_error	err = {0};
	char	   *out;
	char	   *cmd = fmt("%s evaluate %s/%s %s/%s", bin, work, model_name, work, input);
	int			st = run(cmd, &out);
	struct json_object *want,
			   *got;

	read_rows(input, true, &r);
	labels = malloc(sizeof(char *) * (L + r.n));
	gold = malloc(sizeof(int32_t) * r.n);
	pred = malloc(sizeof(int32_t) * r.n);
	for (int i = 0; i < L; i++)
		labels[i] = cai_model_label(m, i);
	for (size_t i = 0; i < r.n; i++)
	{
		int			g,
					b = 0;

		cai_model_classify(m, r.texts[i], r.lens[i], p, &err);
		for (int c = 1; c < L; c++)
			if (p[c] > p[b])
				b = c;
		pred[i] = b;
		for (g = 0; g < n_labels && strcmp(labels[g], r.labels[i]) != 0; g++)
			;
		if (g == n_labels)
			labels[n_labels++] = r.labels[i];
		gold[i] = g;
	}
	CHECK(cai_classification_report(gold, pred, r.n, labels, n_labels, &json, &err) == CAI_OK, "report %s", err.msg);
	want = json_tokener_parse(json);
	json_object_object_add(want, "skipped_rows", json_object_new_int(0));
	got = json_tokener_parse(out);
	CHECK(st == 0 && got != NULL && json_same(want, got), "evaluate %s: report differs from the core's:\n%s", model_name, out);
	CHECK(out != NULL && strncmp(out, "{\"n\": ", 6) == 0, "evaluate: keys not in jsonb order: %.40s", out);
	json_object_put(want);
	json_object_put(got);
	cai_free(json);
	free(labels);
	free(gold);
	free(pred);
	free(p);
	free(out);
	free(cmd);
}

static void
check_evaluate_ner(const char *model_name, cai_model *m, const char *input)
{
	Sents		c;
	const char **tags;
	char	   *json = NULL;
	cai_error	err = {0};
	char	   *out;
	char	   *cmd = fmt("%s evaluate %s/%s %s/%s", bin, work, model_name, work, input);
	int			st = run(cmd, &out);
	struct json_object *want,
			   *got;

	read_sents(input, &c);
	tags = malloc(sizeof(char *) * (size_t) c.off[c.n]);
	for (size_t s = 0; s < c.n; s++)
		cai_model_tag(m, (const char *const *) c.tok + c.off[s], c.len + c.off[s], c.off[s + 1] - c.off[s],
					  tags + c.off[s], NULL, &err);
	CHECK(cai_conll_eval(c.off, c.n, (const char *const *) c.tag, tags, &json, &err) == CAI_OK, "conll_eval %s", err.msg);
	want = json_tokener_parse(json);
	json_object_object_add(want, "sentences", json_object_new_int64((int64_t) c.n));
	json_object_object_add(want, "skipped_rows", json_object_new_int(0));
	got = json_tokener_parse(out);
	CHECK(st == 0 && got != NULL && json_same(want, got), "evaluate %s: report differs from the core's:\n%s", model_name, out);
	json_object_put(want);
	json_object_put(got);
	cai_free(json);
	free(tags);
	free(out);
	free(cmd);
}

static void
check_exit(const char *what, const char *args, int want)
{
	char	   *cmd = fmt("%s %s", bin, args);
	int			st = run(cmd, NULL);
	char	   *ep = fmt("%s/err.txt", work);
	char	   *err = slurp(ep, NULL);

	CHECK(st == want, "%s: exit %d, expected %d (%s)", what, st, want, err ? err : "");
	if (want != 0)
		CHECK(err != NULL && strncmp(err, "cai: ", 5) == 0, "%s: no message on stderr", what);
	free(cmd);
	free(ep);
	free(err);
}

/* the same command through cai and cai-shared, and from a file and from standard input */
static void
check_same_output(const char *args, const char *input)
{
	char	   *a = NULL,
			   *b = NULL,
			   *c = NULL;
	int			s1,
				s2,
				s3;
	char	   *c1 = fmt("%s %s %s/%s", bin, args, work, input);
	char	   *c2 = fmt("%s/cai-shared %s %s/%s", build, args, work, input);
	char	   *c3 = fmt("%s %s - < %s/%s", bin, args, work, input);

	s1 = run(c1, &a);
	s2 = run(c2, &b);
	s3 = run(c3, &c);
	CHECK(s1 == 0 && s2 == 0 && s3 == 0, "%s: exit status %d %d %d", args, s1, s2, s3);
	CHECK(a && b && strcmp(a, b) == 0, "cai-shared %s differs from cai", args);
	CHECK(a && c && strcmp(a, c) == 0, "cai %s from standard input differs", args);
	free(a);
	free(b);
	free(c);
	free(c1);
	free(c2);
	free(c3);
}

/*
 * A random encoder model (2 layers, hidden 16) with a WordPiece vocabulary
 * learned from the classification rows, as a stored encoder is.
 */
static void
write_encoder(const char *name)
{
	Rows		r;
	cai_wordpiece_train_options wo;
	cai_encoder_bundle b;
	char	   *vocab = NULL;
	size_t		vlen = 0;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	cai_rng		rng;
	char	   *p = fmt("%s/%s", work, name);
	FILE	   *f;

	read_rows("cls_train.tsv", true, &r);
	cai_wordpiece_train_options_default(&wo);
	wo.vocab_size = 400;
	wo.min_frequency = 1;
	memset(&b, 0, sizeof(b));
	cai_wordpiece_options_default(&b.wp);
	if (cai_wordpiece_train((const char *const *) r.texts, r.lens, r.n, &wo, &vocab, &vlen, NULL) != CAI_OK ||
		cai_wordpiece_vocab_load(vocab, vlen, CAI_WP_NEED_ALL, &b.vocab, NULL) != CAI_OK)
		abort();
	b.cfg = (cai_encoder_config) {
		.family = CAI_ENC_BERT, .vocab_size = cai_wordpiece_vocab_size(b.vocab), .hidden_size = 16,
		.num_hidden_layers = 2, .num_attention_heads = 2, .intermediate_size = 32, .max_position_embeddings = 64,
		.type_vocab_size = 2, .layer_norm_eps = 1e-12f, .hidden_dropout_prob = 0.1f, .attention_probs_dropout_prob = 0.1f,
	};
	if (cai_encoder_create(&b.cfg, &b.enc, NULL) != CAI_OK)
		abort();
	cai_rng_seed(&rng, 7);
	cai_encoder_init_random(b.enc, 0.02f, &rng);
	if (cai_encoder_model_write(&b, NULL, &bytes, &len, NULL) != CAI_OK || (f = fopen(p, "wb")) == NULL)
		abort();
	fwrite(bytes, 1, len, f);
	fclose(f);
	cai_free(bytes);
	cai_free(vocab);
	cai_encoder_free(b.enc);
	cai_wordpiece_vocab_free(b.vocab);
	free(p);
}

/* cai train --encoder (transformer, both tasks) and cai embed against the core API. */
static void
check_encoder(void)
{
	uint8_t    *eb = NULL;
	uint8_t    *tb = NULL;
	uint8_t    *nb = NULL;
	cai_model  *enc;
	cai_model  *tf;
	cai_model  *ner;
	char	   *out = NULL;
	int			st;

	write_encoder("enc.cai");
	st = run(fmt("%s train sentiment %s/cls_train.tsv --encoder %s/enc.cai -q -o %s/tf.cai --options "
				 "'{\"architecture\": \"transformer\", \"epochs\": 2, \"max_length\": 32, \"learning_rate\": 0.001}'",
				 bin, work, work, work), NULL);
	CHECK(st == 0, "train sentiment --encoder: exit %d", st);
	st = run(fmt("%s train ner %s/ner_train.conll --encoder %s/enc.cai -q -o %s/tfner.cai --options "
				 "'{\"architecture\": \"transformer\", \"epochs\": 2, \"max_length\": 16, \"crf\": true}'",
				 bin, work, work, work), NULL);
	CHECK(st == 0, "train ner --encoder: exit %d", st);
	enc = load_model("enc.cai", &eb);
	tf = load_model("tf.cai", &tb);
	ner = load_model("tfner.cai", &nb);
	CHECK(enc != NULL && tf != NULL && ner != NULL, "the encoder and the transformers load");
	if (tf != NULL)
	{
		check_classify("tf.cai", tf, "cls_input.txt", "--per-row", 0);
		check_classify("tf.cai", tf, "cls_input.txt", "", 256);
	}
	if (ner != NULL)
	{
		check_entities("tfner.cai", ner, "ner_input.txt", "--per-row", true);
		check_entities("tfner.cai", ner, "ner_input.txt", "", false);
	}
	/* embed: every line of the input, as cai_encoder_embed gives it (%.9g reads back exactly) */
	if (enc != NULL && tf != NULL)
	{
		for (int k = 0; k < 2; k++)
		{
			const cai_encoder_bundle *b = cai_model_encoder_bundle(k == 0 ? enc : tf);
			Rows		r;
			size_t		n = 0;
			char	  **ln;
			int			bad = 0;

			st = run(fmt("%s embed %s/%s %s/cls_input.txt --pooling %s", bin, work, k == 0 ? "enc.cai" : "tf.cai", work,
						 k == 0 ? "mean" : "cls"), &out);
			CHECK(st == 0 && out != NULL, "embed: exit %d", st);
			if (out == NULL)
				continue;
			read_rows("cls_input.txt", false, &r);
			ln = lines(out, &n);
			CHECK(n == r.n, "embed: %zu lines for %zu texts", n, r.n);
			for (size_t i = 0; i < n && i < r.n; i++)
			{
				float		want[16];
				char	   *q = ln[i];

				cai_encoder_embed(b, r.texts[i], r.lens[i], k == 0 ? CAI_POOL_MEAN : CAI_POOL_CLS, 0, want, NULL);
				for (int j = 0; j < 16; j++)
				{
					char	   *end;
					float		got = strtof(q, &end);

					bad += end == q || got != want[j];
					q = end;
				}
			}
			CHECK(bad == 0, "embed: %d values differ from cai_encoder_embed", bad);
			free(ln);
			free(out);
			out = NULL;
		}
	}
	check_exit("embed with a model without an encoder", fmt("embed %s/fast.cai %s/cls_input.txt", work, work), 4);
	check_exit("embed: bad pooling", fmt("embed --pooling max %s/enc.cai %s/cls_input.txt", work, work), 2);
	check_exit("train --encoder: no such directory",
			   fmt("train sentiment %s/cls_train.tsv --encoder %s/nope -o %s/x.cai --options '{\"architecture\": \"transformer\"}'",
				   work, work, work), 5);
	check_exit("train transformer without --encoder",
			   fmt("train sentiment %s/cls_train.tsv -o %s/x.cai --options '{\"architecture\": \"transformer\"}'", work, work), 1);
	cai_model_free(enc);
	cai_model_free(tf);
	cai_model_free(ner);
	free(eb);
	free(tb);
	free(nb);
}

int
main(int argc, char **argv)
{
	static const struct
	{
		const char *name;
		const char *task;
		const char *options;	/* the inside of a JSON object */
		bool		valid;
	}			archs[] = {
		{"fast.cai", "sentiment", "\"architecture\": \"fast\", \"epochs\": 4, \"dimensions\": 8, \"buckets\": 5000", true},
		{"accurate.cai", "text_classification", "\"architecture\": \"accurate\", \"epochs\": 2, \"dimensions\": 8, \"buckets\": 5000, \"batch_size\": 16", false},
		{"ner.cai", "ner", "\"epochs\": 3, \"dimensions\": 8, \"char_dimensions\": 4, \"char_filters\": 4, \"hidden\": 8", true},
	};
	uint8_t    *bytes[3] = {0};
	cai_model  *models[3] = {0};

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s BUILD_DIR WORK_DIR\n", argv[0]);
		return 2;
	}
	build = argv[1];
	work = argv[2];
	bin = fmt("%s/cai", build);

	write_cls("cls_train.tsv", 240, false);
	write_cls("cls_valid.tsv", 60, false);
	write_cls("cls_test.tsv", 50, true);
	{
		Rows		t;
		char	   *p = fmt("%s/cls_input.txt", work);
		FILE	   *f = fopen(p, "w");

		read_rows("cls_test.tsv", true, &t);
		for (size_t i = 0; i < t.n; i++)
			fprintf(f, "%s%s\n", t.texts[i], i == 5 ? "\r" : "");
		fputs("\n", f);			/* an empty text */
		fputs("no newline at the end", f);
		fclose(f);
		free(p);
	}
	write_ner("ner_train.conll", NULL, 160, false);
	write_ner("ner_valid.conll", NULL, 40, false);
	write_ner("ner_test.conll", "ner_input.txt", 30, true);

	for (int a = 0; a < 3; a++)
	{
		bool		ner = strcmp(archs[a].task, "ner") == 0;
		const char *train = ner ? "ner_train.conll" : "cls_train.tsv";
		const char *valid = archs[a].valid ? (ner ? "ner_valid.conll" : "cls_valid.tsv") : NULL;
		char	   *vflag = valid ? fmt("--valid %s/%s", work, valid) : strdup("");
		char	   *cmd = fmt("%s train %s %s/%s %s --options '{%s}' -q -o %s/%s", bin, archs[a].task, work, train,
							  vflag, archs[a].options, work, archs[a].name);
		int			st = run(cmd, NULL);

		CHECK(st == 0, "%s: exit %d", cmd, st);
		check_train_bytes(archs[a].task, archs[a].options, train, valid, archs[a].name);
		models[a] = load_model(archs[a].name, &bytes[a]);
		if (models[a] == NULL)
			continue;
		check_info(archs[a].name, models[a]);
		if (!ner)
		{
			check_classify(archs[a].name, models[a], "cls_input.txt", "--per-row", 0);
			check_classify(archs[a].name, models[a], "cls_input.txt", "", 256);
			check_classify(archs[a].name, models[a], "cls_input.txt", "--batch-size 7", 7);
			check_evaluate_cls(archs[a].name, models[a], "cls_test.tsv");
			check_same_output(fmt("proba %s/%s", work, archs[a].name), "cls_input.txt");
		}
		else
		{
			check_tag(archs[a].name, models[a], "ner_test.conll", "--per-row", true);
			check_tag(archs[a].name, models[a], "ner_test.conll", "--batch-size 4", false);
			check_entities(archs[a].name, models[a], "ner_input.txt", "--per-row", true);
			check_entities(archs[a].name, models[a], "ner_input.txt", "", false);
			check_evaluate_ner(archs[a].name, models[a], "ner_test.conll");
			check_same_output(fmt("entities %s/%s", work, archs[a].name), "ner_input.txt");
		}
		free(cmd);
		free(vflag);
	}

	/* an ensemble (built by cai_tune in the server) of the two classifiers: the same commands through the registry */
	if (models[0] != NULL && models[1] != NULL)
	{
		const uint8_t *members[] = {bytes[0], bytes[1]};
		size_t		lens[2];
		int			counts[] = {1, 2};
		uint8_t    *eb = NULL;
		size_t		el = 0;
		cai_error	err = {0};
		cai_model  *em = NULL;
		uint8_t    *ebytes = NULL;

		free(load_bytes("fast.cai", &lens[0]));
		free(load_bytes("accurate.cai", &lens[1]));
		CHECK(cai_ensemble_write(members, lens, counts, 2, NULL, &eb, &el, &err) == CAI_OK, "ensemble: %s", err.msg);
		if (eb != NULL)
		{
			char	   *p = fmt("%s/ensemble.cai", work);
			FILE	   *f = fopen(p, "wb");

			fwrite(eb, 1, el, f);
			fclose(f);
			free(p);
			cai_free(eb);
			em = load_model("ensemble.cai", &ebytes);
		}
		CHECK(em != NULL && strcmp(cai_model_architecture(em), "ensemble") == 0, "the ensemble loads");
		if (em != NULL)
		{
			check_info("ensemble.cai", em);
			check_classify("ensemble.cai", em, "cls_input.txt", "--per-row", 0);
			check_classify("ensemble.cai", em, "cls_input.txt", "--batch-size 7", 7);
			check_evaluate_cls("ensemble.cai", em, "cls_test.tsv");
			check_same_output(fmt("proba %s/ensemble.cai", work), "cls_input.txt");
			cai_model_free(em);
		}
		free(ebytes);
	}

	/* errors and their exit codes */
	{
		size_t		len;
		uint8_t    *b = load_bytes("fast.cai", &len);
		char	   *p = fmt("%s/corrupt.cai", work);
		FILE	   *f = fopen(p, "wb");

		b[len / 2] ^= 0x40;
		fwrite(b, 1, len, f);
		fclose(f);
		free(p);
		p = fmt("%s/truncated.cai", work);
		f = fopen(p, "wb");
		fwrite(b, 1, len / 3, f);
		fclose(f);
		free(p);
		free(b);
	}
	write_file("not_a_model.cai", "hello\n");
	write_file("bad.tsv", "label\tsentence\nno tab on this line\n");
	check_exit("no arguments", "", 2);
	check_exit("--help", "--help", 0);
	check_exit("unknown command", "frobnicate x", 2);
	check_exit("bad option", fmt("predict --nope %s/fast.cai", work), 2);
	check_exit("batch size 0", fmt("predict -b 0 %s/fast.cai", work), 2);
	check_exit("missing MODEL", "predict", 2);
	check_exit("missing model file", fmt("predict %s/nonexistent.cai %s/cls_input.txt", work, work), 3);
	check_exit("corrupt model (checksum)", fmt("predict %s/corrupt.cai %s/cls_input.txt", work, work), 3);
	check_exit("corrupt model, --verify checksum", fmt("info --verify checksum %s/corrupt.cai", work), 3);
	check_exit("truncated model", fmt("info %s/truncated.cai", work), 3);
	check_exit("not a model", fmt("info %s/not_a_model.cai", work), 3);
	check_exit("a directory", fmt("info %s", work), 3);
	check_exit("tag with a classifier", fmt("tag %s/fast.cai %s/ner_test.conll", work, work), 4);
	check_exit("proba with an NER model", fmt("proba %s/ner.cai %s/cls_input.txt", work, work), 4);
	check_exit("entities with a classifier", fmt("entities %s/accurate.cai %s/ner_input.txt", work, work), 4);
	check_exit("unreadable input", fmt("predict %s/fast.cai %s/nonexistent.txt", work, work), 5);
	check_exit("evaluate without a tab", fmt("evaluate %s/fast.cai %s/bad.tsv", work, work), 5);
	check_exit("train: unknown task", fmt("train nope %s/cls_train.tsv -o %s/x.cai", work, work), 2);
	check_exit("train: no -o", fmt("train sentiment %s/cls_train.tsv", work), 2);
	check_exit("train: options not JSON", fmt("train sentiment %s/cls_train.tsv --options '{' -o %s/x.cai", work, work), 2);
	check_exit("train: unknown option", fmt("train sentiment %s/cls_train.tsv --options '{\"nope\": 1}' -o %s/x.cai", work, work), 2);
	check_exit("train: missing file", fmt("train sentiment %s/nonexistent.tsv -o %s/x.cai", work, work), 5);
	write_file("tokens_only.conll", "Anna\nmet\nBruno\n\nOslo\n");
	check_exit("train: CoNLL without tags", fmt("train ner %s/tokens_only.conll -o %s/x.cai", work, work), 5);
	check_exit("train: NER from a TSV file", fmt("train ner %s/cls_train.tsv -o %s/x.cai", work, work), 1);
	check_exit("predict on a good model", fmt("predict --verify none %s/fast.cai %s/cls_input.txt", work, work), 0);
	check_encoder();

	for (int a = 0; a < 3; a++)
	{
		cai_model_free(models[a]);
		free(bytes[a]);
	}
	printf("test_cli: %d passed, %d failed\n", passed, failed);
	return failed > 0;
}
