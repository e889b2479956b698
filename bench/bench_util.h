/*
 * bench_util.h: what the bench tools share (load_bench.c, ner_cli.c,
 * textclf_cli.c, portable_probe.c): a monotonic clock, a qsort order for
 * timings, the reader of labelled TSV files (a header line, then
 * `label<TAB>text` rows) and the reader of CoNLL-style files
 * (`token<TAB>tag` lines, a blank line between sentences), a file's bytes
 * and word vectors from a GloVe / word2vec / fastText text file.  Header-only:
 * each tool is one .c file (core.mk's bench rule).
 */
#ifndef CAI_BENCH_UTIL_H
#define CAI_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "cai/ner.h"
#include "cai/vectors.h"

/* Seconds on the monotonic clock. */
static inline double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Write the n bytes p to path: 0, or -1 after perror(path). */
static inline int
write_file(const char *path, const void *p, size_t n)
{
	FILE	   *f = fopen(path, "wb");

	if (f != NULL && fwrite(p, 1, n, f) == n && fclose(f) == 0)
		return 0;
	perror(path);
	if (f != NULL)
		fclose(f);
	return -1;
}

/* qsort order of doubles, ascending (for medians of timings). */
static inline int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/* Labelled texts; labels index label_names, in order of first appearance. */
typedef struct Tsv
{
	size_t		n;
	char	  **texts;
	size_t	   *lens;
	int32_t    *labels;
} Tsv;

static char *label_names[1024];
static int	n_label_names = 0;

/* The index of label s; a new one is added when add (-1 if not found or full). */
static inline int
label_index(const char *s, bool add)
{
	for (int i = 0; i < n_label_names; i++)
		if (strcmp(label_names[i], s) == 0)
			return i;
	if (!add || n_label_names == 1024)
		return -1;
	label_names[n_label_names] = strdup(s);
	return n_label_names++;
}

/*
 * Read path into t; rows of a label not seen before are added when
 * add_labels (the training file), else skipped with a message.  -1 (with a
 * message) if the file cannot be opened.
 */
static inline int
read_tsv(const char *path, Tsv *t, bool add_labels)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		got;
	size_t		alloc = 0;
	bool		header = true;

	if (f == NULL)
	{
		perror(path);
		return -1;
	}
	memset(t, 0, sizeof(*t));
	while ((got = getline(&line, &cap, f)) >= 0)
	{
		char	   *tab;
		int			lab;

		if (header)
		{
			header = false;
			continue;
		}
		while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = '\0';
		tab = strchr(line, '\t');
		if (tab == NULL)
			continue;
		*tab = '\0';
		lab = label_index(line, add_labels);
		if (lab < 0)
		{
			fprintf(stderr, "%s: unknown label \"%s\"\n", path, line);
			continue;
		}
		if (t->n == alloc)
		{
			alloc = alloc ? alloc * 2 : 1024;
			t->texts = realloc(t->texts, alloc * sizeof(char *));
			t->lens = realloc(t->lens, alloc * sizeof(size_t));
			t->labels = realloc(t->labels, alloc * sizeof(int32_t));
		}
		t->texts[t->n] = strdup(tab + 1);
		t->lens[t->n] = strlen(tab + 1);
		t->labels[t->n] = lab;
		t->n++;
	}
	free(line);
	fclose(f);
	return 0;
}

/* A CoNLL file: n sentences, the tokens of sentence i at [off[i], off[i + 1]). */
typedef struct Conll
{
	size_t		n;
	size_t		ntok;
	int64_t    *off;			/* (n + 1) */
	char	  **tok;			/* (ntok) */
	size_t	   *len;			/* (ntok) */
	char	  **tag;			/* (ntok) */
} Conll;

/*
 * Read path into c: the token is what precedes the last tab of a line, the
 * tag what follows it.  -1 (with a message) if the file cannot be opened or
 * a non-blank line has no tab.  Allocation failures are not checked (a bench
 * tool).
 */
static inline int
read_conll(const char *path, Conll *c)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0,
				tcap = 1024,
				scap = 1024;
	ssize_t		r;

	memset(c, 0, sizeof(*c));
	if (f == NULL)
	{
		perror(path);
		return -1;
	}
	c->off = malloc(sizeof(int64_t) * scap);
	c->tok = malloc(sizeof(char *) * tcap);
	c->len = malloc(sizeof(size_t) * tcap);
	c->tag = malloc(sizeof(char *) * tcap);
	c->off[0] = 0;
	while ((r = getline(&line, &cap, f)) >= 0)
	{
		char	   *tab;

		while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r'))
			line[--r] = '\0';
		if (r == 0)
		{
			if ((int64_t) c->ntok > c->off[c->n])
			{
				if (c->n + 2 > scap)
				{
					scap *= 2;
					c->off = realloc(c->off, sizeof(int64_t) * scap);
				}
				c->off[++c->n] = (int64_t) c->ntok;
			}
			continue;
		}
		tab = strrchr(line, '\t');
		if (tab == NULL)
		{
			fprintf(stderr, "%s: line without a tab\n", path);
			fclose(f);
			free(line);
			return -1;
		}
		*tab = '\0';
		if (c->ntok == tcap)
		{
			tcap *= 2;
			c->tok = realloc(c->tok, sizeof(char *) * tcap);
			c->len = realloc(c->len, sizeof(size_t) * tcap);
			c->tag = realloc(c->tag, sizeof(char *) * tcap);
		}
		c->tok[c->ntok] = strdup(line);
		c->len[c->ntok] = strlen(line);
		c->tag[c->ntok] = strdup(tab + 1);
		c->ntok++;
	}
	if ((int64_t) c->ntok > c->off[c->n])
	{
		if (c->n + 2 > scap)
			c->off = realloc(c->off, sizeof(int64_t) * (scap + 2));
		c->off[++c->n] = (int64_t) c->ntok;
	}
	free(line);
	fclose(f);
	return 0;
}

/* Read dir/name.conll (a data set's split: "train", "dev", "test"); as read_conll. */
static inline int
read_conll_split(const char *dir, const char *name, Conll *c)
{
	char		path[4096];

	snprintf(path, sizeof(path), "%s/%s.conll", dir, name);
	return read_conll(path, c);
}

/* The file as the core's tagging data (pointing into c). */
static inline cai_ner_data
conll_data(const Conll *c)
{
	cai_ner_data d = {c->n, c->off, (const char *const *) c->tok, c->len, (const char *const *) c->tag};

	return d;
}

/* The bytes of a file (cai_malloc'ed, *len of them); NULL (and a message) if it cannot be read. */
static inline uint8_t *
read_bytes(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf = NULL;
	long		sz;

	if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(buf = cai_malloc((size_t) sz + 1)) != NULL)
		*len = fread(buf, 1, (size_t) sz, f);
	if (buf == NULL)
		perror(path);
	if (f != NULL)
		fclose(f);
	return buf;
}

/*
 * Word vectors from a GloVe / word2vec / fastText text file (cai_vectors_parse),
 * as the "word_vectors" option gives them to training in SQL: *wv points
 * into *vset (free it with cai_vectors_free).  0, or 1 after a message.
 */
static inline int
load_vectors(const char *path, cai_vectors **vset, cai_word_vectors *wv)
{
	size_t		n,
				vlen;
	uint8_t    *buf = read_bytes(path, &n);
	uint8_t    *vb = NULL;
	int32_t		V,
				D;
	double		t0 = now();
	cai_error	err;

	if (buf == NULL)
		return 1;
	if (cai_vectors_parse(buf, n, CAI_VEC_TEXT, NULL, path, &vb, &vlen, &V, &D, &err) != CAI_OK ||
		cai_vectors_open(vb, vlen, false, true, vset, &err) != CAI_OK ||
		cai_vectors_word_vectors(*vset, wv, &err) != CAI_OK)
	{
		fprintf(stderr, "vectors: %s\n", err.msg);
		cai_free(buf);
		cai_free(vb);
		return 1;
	}
	cai_free(buf);
	cai_free(vb);
	fprintf(stderr, "vectors: %d words of %d dimensions (%.1f s)\n", V, D, now() - t0);
	return 0;
}

#endif							/* CAI_BENCH_UTIL_H */
