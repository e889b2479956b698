/*
 * vectors_cli.c: train word vectors (cai_vectors_train) on a text file, one
 * text per line, and print the speed; optionally write the vectors as a
 * .vec text file, print nearest neighbours, compare the neighbours with
 * another .vec file (fastText's) and score both on a downstream task
 * (logistic regression on mean vectors, SST-2 style "label<TAB>text" files).
 *
 *   vectors_cli [-j options_json] [-o out.vec] [-q w1,w2,...] [-c other.vec]
 *               [-n queries] [-s train.tsv,dev.tsv] corpus.txt
 *
 * Output lines are "key value" pairs a script can grep: texts, tokens,
 * words, subword_rows, train_seconds, tokens_per_sec, seconds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cai/options.h"
#include "cai/vectors.h"
#include "bench_util.h"

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *b;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t) n + 1);
	if (b == NULL || fread(b, 1, (size_t) n, f) != (size_t) n)
	{
		fclose(f);
		free(b);
		return NULL;
	}
	fclose(f);
	b[n] = '\0';
	*len = (size_t) n;
	return b;
}

/* Lines of buf (cut in place; "\r\n" accepted). */
static size_t
split_lines(char *buf, size_t len, const char ***texts, size_t **lens)
{
	size_t		n = 0,
				cap = 1024;

	*texts = malloc(cap * sizeof(char *));
	*lens = malloc(cap * sizeof(size_t));
	for (size_t i = 0; i < len;)
	{
		size_t		e = i;

		while (e < len && buf[e] != '\n')
			e++;
		if (n == cap)
		{
			cap *= 2;
			*texts = realloc(*texts, cap * sizeof(char *));
			*lens = realloc(*lens, cap * sizeof(size_t));
		}
		(*texts)[n] = buf + i;
		(*lens)[n] = e - i - (e > i && buf[e - 1] == '\r');
		n++;
		i = e + 1;
	}
	return n;
}

static cai_vectors *
open_vec_file(const char *path)
{
	size_t		len;
	char	   *b = read_file(path, &len);
	uint8_t    *out = NULL;
	size_t		ol = 0;
	cai_vectors *v = NULL;
	cai_error	err = {0};

	if (b == NULL)
		return NULL;
	if (cai_vectors_parse((const uint8_t *) b, len, CAI_VEC_TEXT, NULL, path, &out, &ol, NULL, NULL, &err) != CAI_OK ||
		cai_vectors_open(out, ol, false, true, &v, &err) != CAI_OK)
		fprintf(stderr, "%s: %s\n", path, err.msg);
	free(b);
	cai_free(out);
	return v;
}

static void
print_neighbours(const cai_vectors *v, const char *label, char *list)
{
	for (char *w = strtok(list, ","); w != NULL; w = strtok(NULL, ","))
	{
		int32_t		ids[10];
		float		sc[10];
		int			k = 0;
		cai_vec_hit h;
		cai_error	err = {0};

		cai_vectors_similar_word(v, w, strlen(w), CAI_VEC_CASE_AUTO, 10, ids, sc, &k, &h, &err);
		printf("%s %s%s:", label, w, h == CAI_VEC_SUBWORD ? " (subwords)" : h == CAI_VEC_MISS ? " (miss)" : "");
		for (int i = 0; i < k; i++)
			printf(" %s(%.2f)", cai_vectors_word(v, ids[i], NULL), sc[i]);
		printf("\n");
	}
}

static int
cmp_score(const void *a, const void *b)
{
	const float *x = a,
			   *y = b;

	return (x[0] < y[0]) - (x[0] > y[0]);
}

/*
 * The mean fraction of shared top-10 neighbours of the first nq words of a
 * (most frequent first) found in b, both searched among the words the two
 * sets share.
 */
static double
shared_neighbours(const cai_vectors *a, const cai_vectors *b, int nq, int *used)
{
	int32_t		Va = cai_vectors_count(a);
	int32_t    *map = malloc(sizeof(int32_t) * (size_t) Va);
	int32_t    *common = malloc(sizeof(int32_t) * (size_t) Va);
	int			nc = 0,
				q = 0;
	double		sum = 0;
	float	   *sa,
			   *sb;

	for (int32_t i = 0; i < Va; i++)
	{
		size_t		l;
		const char *w = cai_vectors_word(a, i, &l);

		map[i] = cai_vectors_find(b, w, l);
		if (map[i] >= 0)
			common[nc++] = i;
	}
	sa = malloc(sizeof(float) * 2 * (size_t) nc);
	sb = malloc(sizeof(float) * 2 * (size_t) nc);
	for (int qi = 0; qi < nc && q < nq; qi++, q++)
	{
		int32_t		w = common[qi];
		const float *ra = cai_vectors_row(a, w),
				   *rb = cai_vectors_row(b, map[w]);
		int			shared = 0;

		for (int j = 0; j < nc; j++)
		{
			const float *xa = cai_vectors_row(a, common[j]),
					   *xb = cai_vectors_row(b, map[common[j]]);
			double		da = 0,
						na = 0,
						ma = 0,
						db = 0,
						nb = 0,
						mb = 0;

			for (int d = 0; d < cai_vectors_dim(a); d++)
			{
				da += (double) ra[d] * xa[d];
				na += (double) ra[d] * ra[d];
				ma += (double) xa[d] * xa[d];
			}
			for (int d = 0; d < cai_vectors_dim(b); d++)
			{
				db += (double) rb[d] * xb[d];
				nb += (double) rb[d] * rb[d];
				mb += (double) xb[d] * xb[d];
			}
			sa[2 * j] = common[j] == w ? -2.0f : (float) (da / sqrt(na * ma + 1e-30));
			sb[2 * j] = common[j] == w ? -2.0f : (float) (db / sqrt(nb * mb + 1e-30));
			memcpy(&sa[2 * j + 1], &j, sizeof(int));
			memcpy(&sb[2 * j + 1], &j, sizeof(int));
		}
		qsort(sa, (size_t) nc, 2 * sizeof(float), cmp_score);
		qsort(sb, (size_t) nc, 2 * sizeof(float), cmp_score);
		for (int x = 0; x < 10 && x < nc; x++)
			for (int y = 0; y < 10 && y < nc; y++)
				shared += memcmp(&sa[2 * x + 1], &sb[2 * y + 1], sizeof(int)) == 0;
		sum += shared / 10.0;
	}
	free(map);
	free(common);
	free(sa);
	free(sb);
	*used = q;
	return q > 0 ? sum / q : 0;
}

/* "label<TAB>text" rows (a header line without a numeric label is skipped). */
typedef struct Rows
{
	size_t		n;
	int		   *label;
	const char **text;
	size_t	   *len;
	char	   *buf;
} Rows;

static int
read_rows(const char *path, Rows *r)
{
	size_t		len;
	const char **lines;
	size_t	   *ll;
	size_t		n;

	memset(r, 0, sizeof(*r));
	if ((r->buf = read_file(path, &len)) == NULL)
		return -1;
	n = split_lines(r->buf, len, &lines, &ll);
	r->label = malloc(sizeof(int) * n);
	r->text = malloc(sizeof(char *) * n);
	r->len = malloc(sizeof(size_t) * n);
	for (size_t i = 0; i < n; i++)
	{
		const char *tab = memchr(lines[i], '\t', ll[i]);

		if (tab == NULL || (lines[i][0] != '0' && lines[i][0] != '1'))
			continue;
		r->label[r->n] = lines[i][0] - '0';
		r->text[r->n] = tab + 1;
		r->len[r->n] = ll[i] - (size_t) (tab + 1 - lines[i]);
		r->n++;
	}
	free(lines);
	free(ll);
	return 0;
}

/* Mean vectors of the rows' texts (n, D), L2-normalised. */
static float *
embed_rows(const cai_vectors *v, const Rows *r)
{
	int			D = cai_vectors_dim(v);
	float	   *x = calloc(r->n * (size_t) D, sizeof(float));

	for (size_t i = 0; i < r->n; i++)
	{
		cai_error	err = {0};
		double		nn = 0;
		float	   *xi = x + i * (size_t) D;

		cai_vectors_embed(v, r->text[i], r->len[i], CAI_VEC_CASE_AUTO, 0, xi, NULL, NULL, &err);
		for (int d = 0; d < D; d++)
			nn += (double) xi[d] * xi[d];
		for (int d = 0; d < D && nn > 0; d++)
			xi[d] /= (float) sqrt(nn);
	}
	return x;
}

/* Dev accuracy of logistic regression (SGD, 20 epochs, fixed order and rate) on mean vectors. */
static double
downstream(const cai_vectors *v, const Rows *tr, const Rows *dev)
{
	int			D = cai_vectors_dim(v);
	float	   *xt = embed_rows(v, tr),
			   *xd = embed_rows(v, dev);
	double	   *w = calloc((size_t) D + 1, sizeof(double));
	size_t		ok = 0;

	for (int ep = 0; ep < 20; ep++)
		for (size_t i = 0; i < tr->n; i++)
		{
			size_t		r = (i * 7919) % tr->n;
			const float *xi = xt + r * (size_t) D;
			double		z = w[D];
			double		g;

			for (int d = 0; d < D; d++)
				z += w[d] * xi[d];
			g = (1.0 / (1.0 + exp(-z)) - tr->label[r]) * 0.1 / (1.0 + ep);
			for (int d = 0; d < D; d++)
				w[d] -= g * xi[d];
			w[D] -= g;
		}
	for (size_t i = 0; i < dev->n; i++)
	{
		const float *xi = xd + i * (size_t) D;
		double		z = w[D];

		for (int d = 0; d < D; d++)
			z += w[d] * xi[d];
		ok += (z > 0) == (dev->label[i] == 1);
	}
	free(xt);
	free(xd);
	free(w);
	return dev->n > 0 ? (double) ok / (double) dev->n : 0;
}

static void
write_vec(const cai_vectors *v, const char *path)
{
	FILE	   *f = fopen(path, "w");

	if (f == NULL)
		return;
	fprintf(f, "%d %d\n", cai_vectors_count(v), cai_vectors_dim(v));
	for (int32_t i = 0; i < cai_vectors_count(v); i++)
	{
		const float *r = cai_vectors_row(v, i);

		fputs(cai_vectors_word(v, i, NULL), f);
		for (int d = 0; d < cai_vectors_dim(v); d++)
			fprintf(f, " %.6g", r[d]);
		fputc('\n', f);
	}
	fclose(f);
}

static const char *
metric(const char *json, const char *key, char *buf)
{
	char		pat[64];
	const char *p;
	size_t		n;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if (json == NULL || (p = strstr(json, pat)) == NULL)
		return "?";
	p += strlen(pat);
	n = strcspn(p, ",}");
	snprintf(buf, 64, "%.*s", (int) n, p);
	return buf;
}

int
main(int argc, char **argv)
{
	const char *json = "{}";
	const char *out_vec = NULL;
	char	   *queries = NULL;
	const char *other = NULL;
	char	   *sst = NULL;
	int			nq = 1000;
	int			c;
	size_t		len;
	char	   *buf;
	const char **texts;
	size_t	   *lens;
	size_t		n;
	cai_options *o = NULL;
	cai_error	err = {0};
	uint8_t    *bytes = NULL;
	size_t		bl = 0;
	char	   *metrics = NULL;
	cai_vectors *v = NULL;
	double		t0;
	char		m[64];

	while ((c = getopt(argc, argv, "j:o:q:c:n:s:")) != -1)
		switch (c)
		{
			case 'j':
				json = optarg;
				break;
			case 'o':
				out_vec = optarg;
				break;
			case 'q':
				queries = optarg;
				break;
			case 'c':
				other = optarg;
				break;
			case 'n':
				nq = atoi(optarg);
				break;
			case 's':
				sst = optarg;
				break;
			default:
				fprintf(stderr, "usage: %s [-j json] [-o out.vec] [-q words] [-c other.vec] [-n queries] "
						"[-s train.tsv,dev.tsv] corpus.txt\n", argv[0]);
				return 2;
		}
	if (optind >= argc || (buf = read_file(argv[optind], &len)) == NULL)
	{
		fprintf(stderr, "cannot read the corpus\n");
		return 2;
	}
	n = split_lines(buf, len, &texts, &lens);
	if (cai_options_parse(cai_vectors_option_defs, cai_vectors_n_option_defs, json, &o, &err) != CAI_OK)
	{
		fprintf(stderr, "options: %s\n", err.msg);
		return 2;
	}
	printf("estimate_mb %.1f\n", cai_vectors_train_memory(o, texts, lens, n) / 1048576.0);
	t0 = now();
	if (cai_vectors_train(o, texts, lens, n, NULL, NULL, &bytes, &bl, &metrics, &err) != CAI_OK)
	{
		fprintf(stderr, "training: %s\n", err.msg);
		return 1;
	}
	printf("texts %zu\ntokens %s\n", n, metric(metrics, "tokens", m));
	printf("words %s\n", metric(metrics, "words", m));
	printf("subword_rows %s\n", metric(metrics, "subword_rows", m));
	printf("loss %s\n", metric(metrics, "loss", m));
	printf("train_seconds %s\n", metric(metrics, "train_seconds", m));
	printf("tokens_per_sec %s\n", metric(metrics, "tokens_per_sec", m));
	printf("seconds %.3f\n", now() - t0);
	printf("bytes %zu\n", bl);
	if (cai_vectors_open(bytes, bl, false, true, &v, &err) != CAI_OK)
	{
		fprintf(stderr, "open: %s\n", err.msg);
		return 1;
	}
	if (out_vec != NULL)
		write_vec(v, out_vec);
	if (queries != NULL)
	{
		char	   *q1 = strdup(queries);

		print_neighbours(v, "cai", q1);
		free(q1);
	}
	if (other != NULL)
	{
		cai_vectors *w = open_vec_file(other);

		if (w != NULL)
		{
			int			used = 0;
			double		f = shared_neighbours(v, w, nq, &used);

			printf("other_words %d\n", cai_vectors_count(w));
			printf("shared_top10 %.3f (%d most frequent common words)\n", f, used);
			if (queries != NULL)
				print_neighbours(w, "other", queries);
			if (sst != NULL)
			{
				char	   *comma = strchr(sst, ',');
				Rows		tr,
							dev;

				*comma = '\0';
				if (read_rows(sst, &tr) == 0 && read_rows(comma + 1, &dev) == 0)
				{
					printf("downstream_cai %.4f\n", downstream(v, &tr, &dev));
					printf("downstream_other %.4f\n", downstream(w, &tr, &dev));
				}
			}
			cai_vectors_free(w);
		}
	}
	cai_vectors_free(v);
	cai_free(bytes);
	cai_free(metrics);
	cai_options_free(o);
	free(texts);
	free(lens);
	free(buf);
	return 0;
}
