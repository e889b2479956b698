/*
 * cai.c: the `cai` command, the edge runtime of cai_synergy: run and train
 * models outside PostgreSQL from the bytes cai_export writes, through libcai
 * (include/cai/cai.h) alone.
 *
 *   cai info MODEL                       JSON: task, architecture, labels, options, metrics, sizes
 *   cai predict MODEL [FILE|-]           one text per line -> one label per line
 *   cai proba MODEL [FILE|-]             one text per line -> {"label": p, ...} per line
 *   cai tag MODEL [FILE|-]               CoNLL tokens -> token<TAB>tag, blank line between sentences
 *   cai entities MODEL [FILE|-]          one text per line -> [{"entity", "label", "start", "end", "score"}]
 *   cai evaluate MODEL FILE              TSV label<TAB>text (header line) or CoNLL -> cai_evaluate's report
 *   cai train TASK FILE -o MODEL [--valid FILE] [--options JSON] [--encoder DIR]
 *   cai embed MODEL [FILE|-]             one text per line -> one vector per line (cai_encoder.c)
 *
 * Outputs are written exactly as the SQL functions print them (see
 * usage_text and README "The cai command"): cai_predict_proba's jsonb (keys in
 * jsonb order, each probability as float8_numeric renders the float: %.15g
 * written without an exponent), cai_predict's JSON text of an NER model,
 * cai_evaluate's jsonb text.  Input is streamed in chunks of --batch-size
 * lines (or sentences) run through the batch functions
 * (cai_model_classify_batch, cai_model_entities_batch, cai_model_tag_batch),
 * as cai_predict_query does; --per-row runs the one-text functions
 * (cai_model_classify, cai_model_entities, cai_model_tag) as cai_predict,
 * cai_predict_proba, cai_entities and cai_tag do.  cai evaluate is per row
 * unless --batch-size is given, as cai_evaluate is.
 *
 * Exit status: 0 success, 1 a failure while running or training, 2 usage
 * (unknown command or option, bad option value), 3 the model file cannot be
 * read or is not a valid model (checksum and every tensor verified), 4 the
 * model's task does not fit the command, 5 the input cannot be read or is
 * malformed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cai_cli.h"

#define DEFAULT_BATCH 256		/* cai_predict_query's default batch_size */
#define MAX_BATCH 100000
#define MAX_LABELS 100000		/* as the server's training (CaiLabelSet) */

static const char usage_text[] =
"usage: cai COMMAND [ARGS] [OPTIONS]\n"
"\n"
"  info MODEL                 model facts as JSON (task, architecture, labels, options,\n"
"                             metrics and provenance from its metadata, size, memory, load time)\n"
"  predict MODEL [FILE|-]     one text per line -> one label per line\n"
"  proba MODEL [FILE|-]       one text per line -> one JSON object {\"label\": probability} per line\n"
"  tag MODEL [FILE|-]         CoNLL (token in the first column, blank line between sentences)\n"
"                             -> token<TAB>tag lines\n"
"  entities MODEL [FILE|-]    one text per line -> one JSON array of entities per line:\n"
"                             [{\"entity\", \"label\", \"start\", \"end\", \"score\"}], 1-based\n"
"                             character positions, end inclusive (as cai_predict on an NER model)\n"
"  evaluate MODEL FILE        the report of cai_evaluate: for a classifier a TSV file\n"
"                             (header line, then label<TAB>text), for an NER model CoNLL\n"
"                             (token first, gold tag last column)\n"
"  train TASK FILE -o MODEL   train as cai_train does from a TSV (classification) or CoNLL (ner) file;\n"
"                             TASK vectors: word vectors as cai_train_vectors does, one text a line\n"
"                             (the bytes cai_export_vectors gives)\n"
"  embed MODEL [FILE|-]       one text per line -> its sentence embedding, floats separated by spaces,\n"
"                             from an encoder model or a fine-tuned transformer's encoder\n"
"\n"
"options:\n"
"  -b, --batch-size N         texts (sentences for tag) per call of the batch functions (default 256,\n"
"                             cai_predict_query's); the output equals cai_predict_query's with this\n"
"                             batch_size\n"
"      --per-row              one call per text: output equal to cai_predict, cai_predict_proba,\n"
"                             cai_entities, cai_tag (the default of evaluate)\n"
"      --verify full|checksum|none\n"
"                             checks of the model file before use: full (default) as cai_import\n"
"                             (checksum and every tensor), checksum (then a trusted load that skips\n"
"                             the content scans), none (bounds and shapes are still checked)\n"
"  -o, --output FILE          train: where the model is written (the bytes cai_export gives)\n"
"      --valid FILE           train: validation rows (else a split of the training rows)\n"
"      --options JSON         train: training options, as cai_train's options argument\n"
"      --source TEXT          train: provenance \"source\" (default: the training file's name)\n"
"      --role TEXT            train: provenance \"role\" (default: cai)\n"
"      --database TEXT        train: provenance \"database\" (default: cai)\n"
"      --vectors FILE         train: word vectors, the bytes of cai_export_vectors or a GloVe /\n"
"                             word2vec / fastText text file (as the \"word_vectors\" option; its\n"
"                             name is the option's value, else the file's name)\n"
"      --vectors-version N    train: the vector set's version recorded with the model (default 1)\n"
"      --encoder PATH         train: the pretrained encoder of architecture transformer: a checkpoint\n"
"                             directory (config.json, vocab.txt, model.safetensors; uncased) or a\n"
"                             model file holding an encoder\n"
"      --pooling mean|cls     embed: mean of the last layer (default) or its [CLS] vector\n"
"      --max-length N         embed: word pieces per text, [CLS] and [SEP] included (default: the\n"
"                             encoder's positions)\n"
"  -q, --quiet                train: no progress lines on stderr\n"
"  -h, --help                 this text\n"
"      --version              the library version\n"
"\n"
"Lines end with \\n (a \\r before it is dropped).  Exit status: 0 success, 1 a run or training\n"
"failure, 2 usage, 3 the model cannot be read or is invalid, 4 the model's task does not fit\n"
"the command, 5 the input cannot be read or is malformed.\n";

/* cai.training_memory's default (src/pg/cai_pg.h), the memory bound of a vectors training */
#define CLI_TRAINING_MEMORY_MB 4096

/* How much of a model file is checked before use (--verify). */
enum
{
	VERIFY_FULL,				/* checksum and every tensor's contents (cai_import's check) */
	VERIFY_CHECKSUM,			/* checksum; content scans skipped (the core's trusted load) */
	VERIFY_NONE					/* neither: shapes and bounds are still checked */
};

typedef struct Args
{
	const char *command;
	const char *pos[2];			/* MODEL / TASK, then FILE */
	int			n_pos;
	size_t		batch;
	bool		batch_given;
	bool		per_row;
	const char *output;
	const char *valid;
	const char *options;
	const char *source;
	const char *role;
	const char *database;
	const char *vectors;		/* train: --vectors FILE */
	int			vectors_version;	/* train: --vectors-version N */
	const char *encoder;		/* train: --encoder DIR */
	const char *pooling;		/* embed: --pooling */
	int			max_length;		/* embed: --max-length */
	bool		quiet;
	int			verify;			/* VERIFY_* */
} Args;

static void fail(int code, const char *fmt,...) __attribute__((format(printf, 2, 3), noreturn));

static void
fail(int code, const char *fmt,...)
{
	va_list		ap;

	fflush(stdout);
	fputs("cai: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n > 0 ? n : 1);

	if (p == NULL)
		fail(EXIT_RUN, "out of memory (%zu bytes)", n);
	return p;
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n > 0 ? n : 1);
	if (p == NULL)
		fail(EXIT_RUN, "out of memory (%zu bytes)", n);
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char	   *d = xmalloc(n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec * 1e-6;
}

/* ------------------------------------------------------------------------
 * Model files
 * ------------------------------------------------------------------------ */

typedef struct ModelFile
{
	const char *path;
	uint8_t    *bytes;			/* mapped (page-aligned) or read into an aligned buffer */
	size_t		len;
	bool		mapped;
	cai_model  *model;
	double		load_ms;		/* open, map, verify and load */
} ModelFile;

/*
 * Load path, the tensors used in place from a read-only mapping of the file.
 * verify: VERIFY_FULL checks what cai_import checks (the checksum and every
 * tensor's contents: cai_model_load with verify); VERIFY_CHECKSUM the
 * checksum (cai_format_verify) and then loads as trusted bytes, skipping the
 * loaders' content scans; VERIFY_NONE skips both.  Trusted loads keep every
 * check that guards memory (format.h), so a corrupt file can give wrong
 * outputs but cannot make the program read out of bounds.
 */
static void
model_open(ModelFile *mf, const char *path, int verify)
{
	double		t0 = now_ms();
	int			fd = open(path, O_RDONLY);
	struct stat st;
	cai_error	err = {0};
	cai_status	s;

	memset(mf, 0, sizeof(*mf));
	mf->path = path;
	if (fd < 0 || fstat(fd, &st) != 0)
		fail(EXIT_MODEL, "cannot open model \"%s\": %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		fail(EXIT_MODEL, "cannot open model \"%s\": it is a directory", path);
	if (S_ISREG(st.st_mode) && st.st_size > 0)
	{
		/* a verified load reads every page: map them all at once */
		int			flags = MAP_PRIVATE | (verify != VERIFY_NONE ? MAP_POPULATE : 0);
		void	   *p = mmap(NULL, (size_t) st.st_size, PROT_READ, flags, fd, 0);

		if (p != MAP_FAILED)
		{
			mf->bytes = p;
			mf->len = (size_t) st.st_size;
			mf->mapped = true;
		}
	}
	if (!mf->mapped)
	{
		/* a pipe or a file that cannot be mapped: read it into an aligned buffer */
		size_t		cap = 1 << 20;
		ssize_t		got;

		mf->bytes = aligned_alloc(4096, cap);
		if (mf->bytes == NULL)
			fail(EXIT_RUN, "out of memory reading \"%s\"", path);
		while ((got = read(fd, mf->bytes + mf->len, cap - mf->len)) > 0)
		{
			mf->len += (size_t) got;
			if (mf->len == cap)
			{
				uint8_t    *b = aligned_alloc(4096, cap * 2);

				if (b == NULL)
					fail(EXIT_RUN, "out of memory reading \"%s\"", path);
				memcpy(b, mf->bytes, mf->len);
				free(mf->bytes);
				mf->bytes = b;
				cap *= 2;
			}
		}
		if (got < 0)
			fail(EXIT_MODEL, "cannot read model \"%s\": %s", path, strerror(errno));
	}
	close(fd);
	if (verify == VERIFY_CHECKSUM && (s = cai_format_verify(mf->bytes, mf->len, &err)) != CAI_OK)
		fail(EXIT_MODEL, "\"%s\" is not a usable model: %s: %s", path, cai_status_name(s), err.msg);
	s = cai_model_load(mf->bytes, mf->len, true, verify == VERIFY_FULL, &mf->model, &err);
	if (s != CAI_OK)
		fail(EXIT_MODEL, "\"%s\" is not a usable model: %s: %s", path, cai_status_name(s), err.msg);
	mf->load_ms = now_ms() - t0;
}

static void
model_close(ModelFile *mf)
{
	cai_model_free(mf->model);
	if (mf->mapped)
		munmap(mf->bytes, mf->len);
	else
		free(mf->bytes);
}

static void
require_kind(const ModelFile *mf, cai_task_kind kind, const char *command)
{
	if (cai_model_kind(mf->model) != kind)
		fail(EXIT_TASK, "model \"%s\" is a %s model, but cai %s needs a %s model", mf->path,
			 cai_model_task(mf->model), command,
			 kind == CAI_KIND_CLASSIFY ? "text classification" : "token classification (ner)");
}

/* ------------------------------------------------------------------------
 * Output as PostgreSQL prints it
 * ------------------------------------------------------------------------ */

static char outbuf[1 << 20];

/* s (len bytes) as a JSON string, escaped as PostgreSQL's escape_json does */
static void
put_json_string(FILE *o, const char *s, size_t len)
{
	size_t		run = 0;

	putc('"', o);
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		const char *esc = NULL;
		char		u[8];

		switch (c)
		{
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			default:
				if (c < ' ')
				{
					snprintf(u, sizeof(u), "\\u%04x", (int) c);
					esc = u;
				}
		}
		if (esc != NULL)
		{
			fwrite(s + run, 1, i - run, o);
			fputs(esc, o);
			run = i + 1;
		}
	}
	fwrite(s + run, 1, len - run, o);
	putc('"', o);
}

/*
 * A JSON number text as PostgreSQL's numeric prints it after reading it
 * (numeric_in, then numeric_out): no exponent, the display scale of the text
 * (digits after the point minus the exponent), no leading zeros, no "-0".
 * out has room for 400 bytes; numbers beyond that are copied as they are.
 */
static void
numeric_text(const char *in, char *out, size_t cap)
{
	const char *p = in;
	char		digits[64];
	int			nd = 0;
	int			nint = 0;
	int			nfrac = 0;
	long		ex = 0;
	bool		neg = false;
	bool		nonzero = false;
	int			point;
	size_t		w = 0;

	if (*p == '-')
	{
		neg = true;
		p++;
	}
	for (; *p >= '0' && *p <= '9' && nd < 60; p++, nint++)
		digits[nd++] = *p;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9' && nd < 60; p++, nfrac++)
			digits[nd++] = *p;
	if (*p == 'e' || *p == 'E')
		ex = strtol(p + 1, (char **) &p, 10);
	if (*p != '\0' || nd == 0 || ex > 300 || ex < -300 || cap < 400)
	{
		snprintf(out, cap, "%s", in);
		return;
	}
	for (int i = 0; i < nd; i++)
		nonzero |= digits[i] != '0';
	point = nint + (int) ex;	/* digits before the decimal point */
	if (neg && nonzero)
		out[w++] = '-';
	if (point <= 0)
	{
		out[w++] = '0';
		if (nfrac - ex > 0)
		{
			out[w++] = '.';
			for (int i = 0; i < -point; i++)
				out[w++] = '0';
			for (int i = 0; i < nd; i++)
				out[w++] = digits[i];
		}
	}
	else
	{
		bool		any = false;

		/* integer part without leading zeros (at least one digit) */
		for (int i = 0; i < point; i++)
		{
			char		d = i < nd ? digits[i] : '0';

			if (d == '0' && !any && i < point - 1)
				continue;
			any = true;
			out[w++] = d;
		}
		if (nd > point)
		{
			out[w++] = '.';
			for (int i = point; i < nd; i++)
				out[w++] = digits[i];
		}
	}
	out[w] = '\0';
}

/* a float probability as cai_predict_proba's jsonb has it: float8_numeric((double) p) */
static void
put_pg_float(FILE *o, float p)
{
	char		g[64];
	char		n[400];

	snprintf(g, sizeof(g), "%.15g", (double) p);	/* float8_numeric: "%.*g", DBL_DIG */
	numeric_text(g, n, sizeof(n));
	fputs(n, o);
}

/* jsonb's key order: shorter keys first, then bytes (lengthCompareJsonbString) */
static int
jsonb_key_cmp(const char *a, size_t la, const char *b, size_t lb)
{
	if (la != lb)
		return la < lb ? -1 : 1;
	return memcmp(a, b, la);
}

typedef struct KeyRef
{
	const char *key;
	struct json_object *val;
} KeyRef;

static int
keyref_cmp(const void *x, const void *y)
{
	const KeyRef *a = x;
	const KeyRef *b = y;

	return jsonb_key_cmp(a->key, strlen(a->key), b->key, strlen(b->key));
}

/* v as PostgreSQL prints a jsonb built from its text (jsonb_in, jsonb_out) */
static void
put_jsonb(FILE *o, struct json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			fputs("null", o);
			break;
		case json_type_boolean:
			fputs(json_object_get_boolean(v) ? "true" : "false", o);
			break;
		case json_type_int:
		case json_type_double:
			{
				char		n[400];

				/* json-c keeps the text a number was parsed from */
				numeric_text(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), n, sizeof(n));
				fputs(n, o);
				break;
			}
		case json_type_string:
			put_json_string(o, json_object_get_string(v), (size_t) json_object_get_string_len(v));
			break;
		case json_type_array:
			{
				size_t		n = json_object_array_length(v);

				putc('[', o);
				for (size_t i = 0; i < n; i++)
				{
					if (i > 0)
						fputs(", ", o);
					put_jsonb(o, json_object_array_get_idx(v, i));
				}
				putc(']', o);
				break;
			}
		case json_type_object:
			{
				size_t		n = (size_t) json_object_object_length(v);
				KeyRef	   *keys = xmalloc(sizeof(KeyRef) * n);
				size_t		k = 0;

				json_object_object_foreach(v, key, val)
				{
					keys[k].key = key;
					keys[k].val = val;
					k++;
				}
				qsort(keys, k, sizeof(KeyRef), keyref_cmp);
				putc('{', o);
				for (size_t i = 0; i < k; i++)
				{
					if (i > 0)
						fputs(", ", o);
					put_json_string(o, keys[i].key, strlen(keys[i].key));
					fputs(": ", o);
					put_jsonb(o, keys[i].val);
				}
				putc('}', o);
				free(keys);
				break;
			}
	}
}

static void
finish_output(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		fail(EXIT_RUN, "cannot write the output: %s", strerror(errno));
}

/* ------------------------------------------------------------------------
 * Input
 * ------------------------------------------------------------------------ */

static FILE *
open_input(const char *path)
{
	FILE	   *f;

	if (path == NULL || strcmp(path, "-") == 0)
		return stdin;
	f = fopen(path, "r");
	if (f == NULL)
		fail(EXIT_INPUT, "cannot open \"%s\": %s", path, strerror(errno));
	return f;
}

static const char *
input_name(const char *path)
{
	return path == NULL || strcmp(path, "-") == 0 ? "standard input" : path;
}

/*
 * Lines in chunks without copying: the lines of one chunk point into the
 * reader's buffer and stay valid until the next call.  The buffer moves or
 * grows only between chunks.
 */
typedef struct LineReader
{
	FILE	   *f;
	const char *name;
	char	   *buf;
	size_t		cap;
	size_t		start;			/* first byte not yet returned */
	size_t		end;			/* bytes read */
	bool		eof;
	size_t		lines;			/* lines returned so far */
} LineReader;

static void
lr_init(LineReader *r, FILE *f, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->f = f;
	r->name = name;
	r->cap = 1 << 20;
	r->buf = xmalloc(r->cap);
}

/* Up to max lines (without their "\n" or "\r\n"); 0 at the end of the input. */
static size_t
lr_chunk(LineReader *r, size_t max, const char **texts, size_t *lens)
{
	size_t		n = 0;
	size_t		pos = r->start;

	while (n < max)
	{
		char	   *nl = pos < r->end ? memchr(r->buf + pos, '\n', r->end - pos) : NULL;
		size_t		stop;

		if (nl == NULL)
		{
			size_t		got;

			if (r->eof)
			{
				if (pos == r->end)
					break;
				stop = r->end;	/* a last line without "\n" */
			}
			else
			{
				if (r->end == r->cap)
				{
					if (n > 0)
						break;	/* run the lines we have; make room next time */
					if (r->start > 0)
					{
						memmove(r->buf, r->buf + r->start, r->end - r->start);
						r->end -= r->start;
						pos -= r->start;
						r->start = 0;
					}
					else
					{
						r->cap *= 2;
						r->buf = xrealloc(r->buf, r->cap);
					}
				}
				got = fread(r->buf + r->end, 1, r->cap - r->end, r->f);
				if (got == 0)
				{
					if (ferror(r->f))
						fail(EXIT_INPUT, "cannot read %s: %s", r->name, strerror(errno));
					r->eof = true;
				}
				r->end += got;
				continue;
			}
		}
		else
			stop = (size_t) (nl - r->buf);
		texts[n] = r->buf + pos;
		lens[n] = stop - pos;
		if (lens[n] > 0 && texts[n][lens[n] - 1] == '\r')
			lens[n]--;
		n++;
		pos = stop < r->end ? stop + 1 : stop;
	}
	r->start = pos;
	r->lines += n;
	return n;
}

/*
 * CoNLL sentences: a token per line, columns separated by tabs (by spaces
 * when a line has no tab); the token is the first column, the tag the last;
 * blank lines end sentences.
 */
typedef struct Conll
{
	size_t		n;				/* sentences */
	size_t		ntok;
	size_t		scap;
	size_t		tcap;
	int64_t    *off;			/* (n + 1) */
	char	  **tok;			/* (ntok) */
	size_t	   *len;			/* (ntok) */
	char	  **tag;			/* (ntok) NULL without tags */
	/* reading state */
	FILE	   *f;
	const char *name;
	char	   *line;
	size_t		line_cap;
	size_t		lineno;
	bool		eof;
} Conll;

static void
conll_init(Conll *c, FILE *f, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->f = f;
	c->name = name;
	c->scap = 256;
	c->tcap = 4096;
	c->off = xmalloc(sizeof(int64_t) * (c->scap + 1));
	c->tok = xmalloc(sizeof(char *) * c->tcap);
	c->len = xmalloc(sizeof(size_t) * c->tcap);
	c->tag = xmalloc(sizeof(char *) * c->tcap);
	c->off[0] = 0;
}

static void
conll_clear(Conll *c)
{
	for (size_t i = 0; i < c->ntok; i++)
	{
		free(c->tok[i]);
		free(c->tag[i]);
	}
	c->n = 0;
	c->ntok = 0;
}

static void
conll_end_sentence(Conll *c)
{
	if ((int64_t) c->ntok == c->off[c->n])
		return;
	if (c->n + 1 >= c->scap)
	{
		c->scap *= 2;
		c->off = xrealloc(c->off, sizeof(int64_t) * (c->scap + 1));
	}
	c->off[++c->n] = (int64_t) c->ntok;
}

/*
 * Read whole sentences until max_sent of them (0: no limit) or the end;
 * false at the end of the input with nothing read.  need_tags: a line with a
 * single column is an error.
 */
static bool
conll_read(Conll *c, size_t max_sent, bool need_tags)
{
	ssize_t		r;

	conll_clear(c);
	while ((max_sent == 0 || c->n < max_sent) && !c->eof)
	{
		char	   *s;
		char	   *first_end;
		char	   *last;
		char		sep;

		errno = 0;
		r = getline(&c->line, &c->line_cap, c->f);
		if (r < 0)
		{
			if (ferror(c->f))
				fail(EXIT_INPUT, "cannot read %s: %s", c->name, strerror(errno));
			c->eof = true;
			break;
		}
		c->lineno++;
		s = c->line;
		while (r > 0 && (s[r - 1] == '\n' || s[r - 1] == '\r'))
			s[--r] = '\0';
		if (strspn(s, " \t") == (size_t) r)
		{
			conll_end_sentence(c);
			continue;
		}
		if (strlen(s) != (size_t) r)
			fail(EXIT_INPUT, "%s line %zu: a NUL byte", c->name, c->lineno);
		sep = strchr(s, '\t') != NULL ? '\t' : ' ';
		first_end = strchr(s, sep);
		last = strrchr(s, sep);
		if (need_tags && (first_end == NULL || last[1] == '\0'))
			fail(EXIT_INPUT, "%s line %zu: no tag column (expected token<TAB>...<TAB>tag)", c->name, c->lineno);
		if (c->ntok == c->tcap)
		{
			c->tcap *= 2;
			c->tok = xrealloc(c->tok, sizeof(char *) * c->tcap);
			c->len = xrealloc(c->len, sizeof(size_t) * c->tcap);
			c->tag = xrealloc(c->tag, sizeof(char *) * c->tcap);
		}
		c->len[c->ntok] = first_end != NULL ? (size_t) (first_end - s) : (size_t) r;
		c->tok[c->ntok] = xstrndup(s, c->len[c->ntok]);
		c->tag[c->ntok] = first_end != NULL ? xstrndup(last + 1, strlen(last + 1)) : NULL;
		c->ntok++;
	}
	conll_end_sentence(c);
	return c->n > 0;
}

static cai_ner_data
conll_data(const Conll *c)
{
	cai_ner_data d = {c->n, c->off, (const char *const *) c->tok, c->len, (const char *const *) c->tag};

	return d;
}

/* A TSV file with a header line, then label<TAB>text rows (the text may hold tabs). */
typedef struct Tsv
{
	size_t		n;
	char	  **labels;
	char	  **texts;
	size_t	   *lens;
} Tsv;

static void
read_tsv(const char *path, Tsv *t)
{
	FILE	   *f = open_input(path);
	const char *name = input_name(path);
	char	   *line = NULL;
	size_t		cap = 0;
	size_t		alloc = 0;
	size_t		lineno = 0;
	ssize_t		r;

	memset(t, 0, sizeof(*t));
	while ((r = getline(&line, &cap, f)) >= 0)
	{
		char	   *tab;

		lineno++;
		while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r'))
			line[--r] = '\0';
		if (lineno == 1 || r == 0)
			continue;			/* the header; blank lines are no rows */
		if (strlen(line) != (size_t) r)
			fail(EXIT_INPUT, "%s line %zu: a NUL byte", name, lineno);
		tab = strchr(line, '\t');
		if (tab == NULL)
			fail(EXIT_INPUT, "%s line %zu: no tab (expected label<TAB>text)", name, lineno);
		if (t->n == alloc)
		{
			alloc = alloc ? alloc * 2 : 1024;
			t->labels = xrealloc(t->labels, alloc * sizeof(char *));
			t->texts = xrealloc(t->texts, alloc * sizeof(char *));
			t->lens = xrealloc(t->lens, alloc * sizeof(size_t));
		}
		t->labels[t->n] = xstrndup(line, (size_t) (tab - line));
		t->lens[t->n] = (size_t) (line + r - tab - 1);
		t->texts[t->n] = xstrndup(tab + 1, t->lens[t->n]);
		t->n++;
	}
	if (ferror(f))
		fail(EXIT_INPUT, "cannot read %s: %s", name, strerror(errno));
	free(line);
	if (f != stdin)
		fclose(f);
}

/* ------------------------------------------------------------------------
 * info
 * ------------------------------------------------------------------------ */

static int
cmd_info(const Args *a)
{
	ModelFile	mf;
	struct json_object *meta;
	struct json_object *out = json_object_new_object();
	struct json_object *labels = json_object_new_array();

	model_open(&mf, a->pos[0], a->verify);
	meta = json_tokener_parse(cai_model_meta_json(mf.model));
	json_object_object_add(out, "file", json_object_new_string(mf.path));
	json_object_object_add(out, "task", json_object_new_string(cai_model_task(mf.model)));
	json_object_object_add(out, "architecture", json_object_new_string(cai_model_architecture(mf.model)));
	for (int i = 0; i < cai_model_n_labels(mf.model); i++)
		json_object_array_add(labels, json_object_new_string(cai_model_label(mf.model, i)));
	json_object_object_add(out, "labels", labels);
	json_object_object_add(out, "size_bytes", json_object_new_int64((int64_t) mf.len));
	json_object_object_add(out, "memory_bytes", json_object_new_int64((int64_t) cai_model_memory(mf.model)));
	json_object_object_add(out, "load_ms", json_object_new_double(mf.load_ms));
	/* the rest of the metadata: options, metrics, provenance, cai_version, ... */
	if (meta != NULL)
	{
		json_object_object_foreach(meta, key, val)
		{
			struct json_object *have;

			if (!json_object_object_get_ex(out, key, &have))
				json_object_object_add(out, key, json_object_get(val));
		}
	}
	fputs(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
										 JSON_C_TO_STRING_NOSLASHESCAPE), stdout);
	putchar('\n');
	finish_output();
	json_object_put(out);
	json_object_put(meta);
	model_close(&mf);
	return 0;
}

/* ------------------------------------------------------------------------
 * predict, proba
 * ------------------------------------------------------------------------ */

static int
argmax(const float *p, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[best])
			best = i;
	return best;
}

static int
cmd_classify(const Args *a, bool proba)
{
	ModelFile	mf;
	FILE	   *in;
	LineReader	r;
	const char **texts = xmalloc(sizeof(char *) * a->batch);
	size_t	   *lens = xmalloc(sizeof(size_t) * a->batch);
	float	   *probs;
	int			L;
	int		   *order;			/* label indices in jsonb key order */
	size_t	   *label_len;
	size_t		n;
	cai_error	err = {0};

	model_open(&mf, a->pos[0], a->verify);
	require_kind(&mf, CAI_KIND_CLASSIFY, proba ? "proba" : "predict");
	in = open_input(a->pos[1]);
	L = cai_model_n_labels(mf.model);
	probs = xmalloc(sizeof(float) * a->batch * (size_t) L);
	order = xmalloc(sizeof(int) * (size_t) L);
	label_len = xmalloc(sizeof(size_t) * (size_t) L);
	for (int i = 0; i < L; i++)
	{
		const char *li = cai_model_label(mf.model, i);
		int			j = i;

		label_len[i] = strlen(li);
		/* insertion sort: labels are few */
		while (j > 0 && jsonb_key_cmp(cai_model_label(mf.model, order[j - 1]), label_len[order[j - 1]],
									  li, label_len[i]) > 0)
		{
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	lr_init(&r, in, input_name(a->pos[1]));
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	while ((n = lr_chunk(&r, a->batch, texts, lens)) > 0)
	{
		size_t		first = r.lines - n + 1;

		if (a->per_row)
		{
			for (size_t i = 0; i < n; i++)
				if (cai_model_classify(mf.model, texts[i], lens[i], probs + i * (size_t) L, &err) != CAI_OK)
					fail(EXIT_RUN, "%s line %zu: %s", r.name, first + i, err.msg);
		}
		else if (cai_model_classify_batch(mf.model, texts, lens, n, probs, &err) != CAI_OK)
			fail(EXIT_RUN, "%s lines %zu-%zu: %s", r.name, first, first + n - 1, err.msg);
		for (size_t i = 0; i < n; i++)
		{
			const float *p = probs + i * (size_t) L;

			if (!proba)
			{
				int			b = argmax(p, L);

				fwrite(cai_model_label(mf.model, b), 1, label_len[b], stdout);
				putchar('\n');
				continue;
			}
			putchar('{');
			for (int k = 0; k < L; k++)
			{
				int			c = order[k];

				if (k > 0)
					fputs(", ", stdout);
				put_json_string(stdout, cai_model_label(mf.model, c), label_len[c]);
				fputs(": ", stdout);
				put_pg_float(stdout, p[c]);
			}
			fputs("}\n", stdout);
		}
	}
	finish_output();
	if (in != stdin)
		fclose(in);
	free(r.buf);
	free(texts);
	free(lens);
	free(probs);
	free(order);
	free(label_len);
	model_close(&mf);
	return 0;
}

/* ------------------------------------------------------------------------
 * tag, entities
 * ------------------------------------------------------------------------ */

static int
cmd_tag(const Args *a)
{
	ModelFile	mf;
	FILE	   *in;
	Conll		c;
	const char **tags = NULL;
	size_t		tags_cap = 0;
	cai_error	err = {0};
	size_t		done = 0;

	model_open(&mf, a->pos[0], a->verify);
	require_kind(&mf, CAI_KIND_TAG, "tag");
	in = open_input(a->pos[1]);
	conll_init(&c, in, input_name(a->pos[1]));
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	while (conll_read(&c, a->batch, false))
	{
		cai_ner_data d = conll_data(&c);

		if (c.ntok > tags_cap)
		{
			tags_cap = c.ntok * 2;
			tags = xrealloc(tags, sizeof(char *) * tags_cap);
		}
		if (a->per_row)
		{
			for (size_t s = 0; s < c.n; s++)
				if (cai_model_tag(mf.model, (const char *const *) c.tok + c.off[s], c.len + c.off[s],
								  (size_t) (c.off[s + 1] - c.off[s]), tags + c.off[s], NULL, &err) != CAI_OK)
					fail(EXIT_RUN, "%s sentence %zu: %s", c.name, done + s + 1, err.msg);
		}
		else if (cai_model_tag_batch(mf.model, &d, tags, NULL, &err) != CAI_OK)
			fail(EXIT_RUN, "%s sentences %zu-%zu: %s", c.name, done + 1, done + c.n, err.msg);
		for (size_t s = 0; s < c.n; s++)
		{
			for (int64_t k = c.off[s]; k < c.off[s + 1]; k++)
			{
				fwrite(c.tok[k], 1, c.len[k], stdout);
				putchar('\t');
				fputs(tags[k], stdout);
				putchar('\n');
			}
			putchar('\n');
		}
		done += c.n;
	}
	finish_output();
	conll_clear(&c);
	if (in != stdin)
		fclose(in);
	free(tags);
	model_close(&mf);
	return 0;
}

/* entities of one text as cai_predict prints them for an NER model (src/pg/ner.c) */
static void
put_entities(const ModelFile *mf, const char *text, const cai_entity *e, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++)
	{
		const char *label = cai_model_label(mf->model, e[i].type);

		if (i > 0)
			fputs(", ", stdout);
		fputs("{\"entity\": ", stdout);
		put_json_string(stdout, text + e[i].start, (size_t) (e[i].end - e[i].start));
		fputs(", \"label\": ", stdout);
		put_json_string(stdout, label, strlen(label));
		printf(", \"start\": %lld, \"end\": %lld, \"score\": %.4f}", (long long) e[i].cstart + 1,
			   (long long) e[i].cend, e[i].score);
	}
	fputs("]\n", stdout);
}

static int
cmd_entities(const Args *a)
{
	ModelFile	mf;
	FILE	   *in;
	LineReader	r;
	const char **texts = xmalloc(sizeof(char *) * a->batch);
	size_t	   *lens = xmalloc(sizeof(size_t) * a->batch);
	size_t	   *offsets = xmalloc(sizeof(size_t) * (a->batch + 1));
	size_t		n;
	cai_error	err = {0};

	model_open(&mf, a->pos[0], a->verify);
	require_kind(&mf, CAI_KIND_TAG, "entities");
	in = open_input(a->pos[1]);
	lr_init(&r, in, input_name(a->pos[1]));
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	while ((n = lr_chunk(&r, a->batch, texts, lens)) > 0)
	{
		size_t		first = r.lines - n + 1;
		cai_entity *ents = NULL;

		if (a->per_row)
		{
			for (size_t i = 0; i < n; i++)
			{
				size_t		ne = 0;

				if (cai_model_entities(mf.model, texts[i], lens[i], 0, &ents, &ne, &err) != CAI_OK)
					fail(EXIT_RUN, "%s line %zu: %s", r.name, first + i, err.msg);
				put_entities(&mf, texts[i], ents, ne);
				cai_free(ents);
			}
			continue;
		}
		if (cai_model_entities_batch(mf.model, texts, lens, n, 0, &ents, offsets, &err) != CAI_OK)
			fail(EXIT_RUN, "%s lines %zu-%zu: %s", r.name, first, first + n - 1, err.msg);
		for (size_t i = 0; i < n; i++)
			put_entities(&mf, texts[i], ents + offsets[i], offsets[i + 1] - offsets[i]);
		cai_free(ents);
	}
	finish_output();
	if (in != stdin)
		fclose(in);
	free(r.buf);
	free(texts);
	free(lens);
	free(offsets);
	model_close(&mf);
	return 0;
}

/* ------------------------------------------------------------------------
 * evaluate
 * ------------------------------------------------------------------------ */

/* report JSON (from the core) with extra keys, printed as cai_evaluate's jsonb */
static void
put_report(char *json, const char *extra_json)
{
	struct json_object *rep = json_tokener_parse(json);
	struct json_object *extra = json_tokener_parse(extra_json);

	if (rep == NULL || extra == NULL)
		fail(EXIT_RUN, "the evaluation report is not JSON (a bug)");
	json_object_object_foreach(extra, key, val)
		json_object_object_add(rep, key, json_object_get(val));
	put_jsonb(stdout, rep);
	putchar('\n');
	finish_output();
	json_object_put(rep);
	json_object_put(extra);
	cai_free(json);
}

static int
cmd_evaluate(const Args *a)
{
	ModelFile	mf;
	cai_error	err = {0};
	char	   *json = NULL;
	char		extra[128];

	model_open(&mf, a->pos[0], a->verify);
	if (cai_model_kind(mf.model) == CAI_KIND_TAG)
	{
		FILE	   *in = open_input(a->pos[1]);
		Conll		c;
		const char **pred;
		cai_ner_data d = {0};

		conll_init(&c, in, input_name(a->pos[1]));
		if (!conll_read(&c, 0, true))
			fail(EXIT_INPUT, "%s has no sentences", c.name);
		d = conll_data(&c);
		pred = xmalloc(sizeof(char *) * c.ntok);
		if (a->batch_given && !a->per_row)
		{
			if (cai_model_tag_batch(mf.model, &d, pred, NULL, &err) != CAI_OK)
				fail(EXIT_RUN, "%s: %s", c.name, err.msg);
		}
		else
			for (size_t s = 0; s < c.n; s++)
				if (cai_model_tag(mf.model, (const char *const *) c.tok + c.off[s], c.len + c.off[s],
								  (size_t) (c.off[s + 1] - c.off[s]), pred + c.off[s], NULL, &err) != CAI_OK)
					fail(EXIT_RUN, "%s sentence %zu: %s", c.name, s + 1, err.msg);
		if (cai_conll_eval(c.off, c.n, (const char *const *) c.tag, pred, &json, &err) != CAI_OK)
			fail(EXIT_RUN, "evaluation failed: %s", err.msg);
		snprintf(extra, sizeof(extra), "{\"sentences\": %zu, \"skipped_rows\": 0}", c.n);
		put_report(json, extra);
		free(pred);
		conll_clear(&c);
		if (in != stdin)
			fclose(in);
	}
	else
	{
		Tsv			t;
		int			L;
		int			n_labels;
		const char **labels;
		int32_t    *gold;
		int32_t    *pred;
		float	   *probs;
		size_t		chunk = a->batch_given && !a->per_row ? a->batch : 1;

		require_kind(&mf, CAI_KIND_CLASSIFY, "evaluate");
		read_tsv(a->pos[1], &t);
		if (t.n == 0)
			fail(EXIT_INPUT, "%s has no rows", input_name(a->pos[1]));
		L = cai_model_n_labels(mf.model);
		labels = xmalloc(sizeof(char *) * ((size_t) L + t.n));
		n_labels = L;
		for (int i = 0; i < L; i++)
			labels[i] = cai_model_label(mf.model, i);
		gold = xmalloc(sizeof(int32_t) * t.n);
		pred = xmalloc(sizeof(int32_t) * t.n);
		probs = xmalloc(sizeof(float) * (size_t) L * chunk);
		for (size_t i = 0; i < t.n; i += chunk)
		{
			size_t		k = t.n - i < chunk ? t.n - i : chunk;

			if (chunk == 1)
			{
				if (cai_model_classify(mf.model, t.texts[i], t.lens[i], probs, &err) != CAI_OK)
					fail(EXIT_RUN, "row %zu: %s", i + 1, err.msg);
			}
			else if (cai_model_classify_batch(mf.model, (const char *const *) t.texts + i, t.lens + i, k, probs,
											  &err) != CAI_OK)
				fail(EXIT_RUN, "rows %zu-%zu: %s", i + 1, i + k, err.msg);
			for (size_t j = 0; j < k; j++)
				pred[i + j] = argmax(probs + j * (size_t) L, L);
		}
		/* gold labels the model does not know count as extra classes (as cai_evaluate) */
		for (size_t i = 0; i < t.n; i++)
		{
			int			g;

			for (g = 0; g < n_labels; g++)
				if (strcmp(labels[g], t.labels[i]) == 0)
					break;
			if (g == n_labels)
				labels[n_labels++] = t.labels[i];
			gold[i] = g;
		}
		if (cai_classification_report(gold, pred, t.n, labels, n_labels, &json, &err) != CAI_OK)
			fail(EXIT_RUN, "evaluation failed: %s", err.msg);
		put_report(json, "{\"skipped_rows\": 0}");
		free(labels);
		free(gold);
		free(pred);
		free(probs);
	}
	model_close(&mf);
	return 0;
}

/* ------------------------------------------------------------------------
 * train
 * ------------------------------------------------------------------------ */

/* The server's label order (src/pg/train_worker.c CaiCompareLabels): integers numerically, others by bytes. */
static int
compare_labels(const void *a, const void *b)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;
	char	   *ex;
	char	   *ey;
	long		lx = strtol(x, &ex, 10);
	long		ly = strtol(y, &ey, 10);

	if (*x && *y && *ex == '\0' && *ey == '\0')
		return (lx > ly) - (lx < ly);
	return strcmp(x, y);
}

/* Distinct labels sorted as the server sorts them (CaiLabelSet), then each row's index (CaiLabelIds). */
static char **
label_set(const Tsv *t, int *n_labels)
{
	char	  **sorted = xmalloc(sizeof(char *) * t->n);
	char	  **labels = xmalloc(sizeof(char *) * t->n);
	int			n = 0;

	memcpy(sorted, t->labels, sizeof(char *) * t->n);
	qsort(sorted, t->n, sizeof(char *), compare_labels);
	for (size_t i = 0; i < t->n; i++)
		if (n == 0 || strcmp(labels[n - 1], sorted[i]) != 0)
		{
			if (n >= MAX_LABELS)
				fail(EXIT_INPUT, "too many distinct labels (more than %d); is the label the first column?",
					 MAX_LABELS);
			labels[n++] = sorted[i];
		}
	free(sorted);
	*n_labels = n;
	return labels;
}

static int32_t *
label_ids(const Tsv *t, char **labels, int n_labels, const char *what)
{
	int32_t    *ids = xmalloc(sizeof(int32_t) * t->n);

	for (size_t i = 0; i < t->n; i++)
	{
		char	  **hit = bsearch(&t->labels[i], labels, (size_t) n_labels, sizeof(char *), compare_labels);

		if (hit == NULL)
			fail(EXIT_INPUT, "%s label \"%s\" does not occur in the training data", what, t->labels[i]);
		ids[i] = (int32_t) (hit - labels);
	}
	return ids;
}

static bool
on_progress(void *ctx, const cai_progress *p)
{
	if (p->epoch_done && !*(const bool *) ctx)
		fprintf(stderr, "epoch %d/%d: loss %.4f, validation %.4f, %.0f rows/s\n",
				p->epoch, p->epochs, p->loss, p->val_score, p->rows_per_sec);
	return true;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

/*
 * The provenance the server gives the trainer (CaiWorkerReadEnd), with the
 * file's stand-ins: the same keys in the same order.
 */
static char *
provenance_json(const Args *a, size_t n, size_t n_valid, struct json_object *vectors)
{
	struct json_object *p = json_object_new_object();
	char	   *s;

	json_object_object_add(p, "train_rows", json_object_new_int64((int64_t) n));
	json_object_object_add(p, "skipped_rows", json_object_new_int64(0));
	json_object_object_add(p, "validation_rows", json_object_new_int64((int64_t) n_valid));
	json_object_object_add(p, "role", json_object_new_string(a->role != NULL ? a->role : "cai"));
	json_object_object_add(p, "database", json_object_new_string(a->database != NULL ? a->database : "cai"));
	json_object_object_add(p, "source",
						   json_object_new_string(a->source != NULL ? a->source :
												  strcmp(a->pos[1], "-") == 0 ? "stdin" : base_name(a->pos[1])));
	if (vectors != NULL)
		json_object_object_add(p, "vectors", vectors);
	s = strdup(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
	json_object_put(p);
	return s;
}

/* The name a vector set file stands for: its base name without the extension. */
static const char *
vectors_name(const char *path)
{
	static char name[256];
	const char *dot;

	snprintf(name, sizeof(name), "%s", base_name(path));
	dot = strrchr(name, '.');
	if (dot != NULL && dot != name)
		name[dot - name] = '\0';
	return name;
}

/* all of a file (or standard input for "-") */
static uint8_t *
read_whole(const char *path, size_t *len)
{
	FILE	   *f = open_input(path);
	size_t		cap = 1 << 20;
	size_t		n = 0;
	size_t		got;
	uint8_t    *b = xmalloc(cap);

	while ((got = fread(b + n, 1, cap - n, f)) > 0)
	{
		n += got;
		if (n == cap)
			b = xrealloc(b, cap *= 2);
	}
	if (ferror(f))
		fail(EXIT_INPUT, "cannot read %s: %s", input_name(path), strerror(errno));
	if (f != stdin)
		fclose(f);
	*len = n;
	return b;
}

/*
 * Word vectors for training (--vectors FILE): the bytes of a vector set as
 * cai_export_vectors writes them, or a GloVe / word2vec / fastText text file,
 * converted as cai_import_vectors(name, data, 'text') converts it.  The
 * provenance entry is the server's (vector_sets.c): name, version, the MD5
 * of the set's bytes, words, dimensions.
 */
typedef struct TrainVectors
{
	uint8_t    *bytes;			/* the set in the model format */
	size_t		len;
	bool		core_owned;		/* bytes from cai_vectors_parse (cai_free) */
	cai_vectors *set;
	cai_word_vectors wv;
} TrainVectors;

static struct json_object *
train_vectors_open(const Args *a, const char *name, TrainVectors *tv)
{
	cai_error	err = {0};
	cai_status	st;
	size_t		len;
	uint8_t    *raw = read_whole(a->vectors, &len);
	struct json_object *p;
	char		md5[33];

	memset(tv, 0, sizeof(*tv));
	if (len >= 8 && memcmp(raw, CAI_FORMAT_MAGIC, 8) == 0)
	{
		tv->bytes = raw;
		tv->len = len;
	}
	else
	{
		cai_vec_limits limits = {0, len};

		st = cai_vectors_parse(raw, len, CAI_VEC_TEXT, &limits, "text", &tv->bytes, &tv->len, NULL, NULL, &err);
		if (st != CAI_OK)
			fail(EXIT_INPUT, "the vectors file %s cannot be read: %s", input_name(a->vectors), err.msg);
		tv->core_owned = true;
		free(raw);
	}
	st = cai_vectors_open(tv->bytes, tv->len, false, true, &tv->set, &err);
	if (st == CAI_OK)
		st = cai_vectors_word_vectors(tv->set, &tv->wv, &err);
	if (st != CAI_OK)
		fail(EXIT_INPUT, "the vectors file %s is not a usable vector set: %s: %s", input_name(a->vectors),
			 cai_status_name(st), err.msg);
	cai_md5_hex(tv->bytes, tv->len, md5);
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(name));
	json_object_object_add(p, "version", json_object_new_int(a->vectors_version));
	json_object_object_add(p, "md5", json_object_new_string(md5));
	json_object_object_add(p, "words", json_object_new_int(cai_vectors_count(tv->set)));
	json_object_object_add(p, "dims", json_object_new_int(cai_vectors_dim(tv->set)));
	return p;
}

static void
train_vectors_close(TrainVectors *tv)
{
	cai_vectors_free(tv->set);
	if (tv->core_owned)
		cai_free(tv->bytes);
	else
		free(tv->bytes);
}

/*
 * The options JSON for the core: the user's, checked to be an object, with
 * "validation_source" naming the --valid file when not given (the server's
 * options name the validation table).
 */
static char *
train_options(const Args *a, const cai_task *task)
{
	struct json_object *o = json_tokener_parse(a->options != NULL ? a->options : "{}");
	struct json_object *v;
	char	   *s;

	if (o == NULL || !json_object_is_type(o, json_type_object))
		fail(EXIT_USAGE, "--options must be a JSON object, e.g. '{\"epochs\": 5}'");
	if (a->vectors == NULL && json_object_object_get_ex(o, "word_vectors", &v) && !json_object_is_type(v, json_type_null))
		fail(EXIT_USAGE, "the \"word_vectors\" option names a vector set in the database: give its bytes "
			 "(cai_export_vectors) or a text vectors file with --vectors FILE");
	if (a->vectors != NULL)
	{
		if (!json_object_object_get_ex(o, "word_vectors", &v))
			json_object_object_add(o, "word_vectors", json_object_new_string(vectors_name(a->vectors)));
		else if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
			fail(EXIT_USAGE, "with --vectors, \"word_vectors\" is the vector set's name (a string)");
	}
	if (json_object_object_get_ex(o, "validation_source", &v) && a->valid == NULL &&
		json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
		fail(EXIT_USAGE, "\"validation_source\" is given but --valid is not: cai train reads validation rows from --valid FILE");
	if (a->valid != NULL && !json_object_object_get_ex(o, "validation_source", &v))
		json_object_object_add(o, "validation_source", json_object_new_string(base_name(a->valid)));
	/* the server bounds a vectors training by cai.training_memory (train_worker.c) */
	if (task->kind == CAI_KIND_EMBED && !json_object_object_get_ex(o, "memory_limit_mb", &v))
		json_object_object_add(o, "memory_limit_mb", json_object_new_int(CLI_TRAINING_MEMORY_MB));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static void
write_model(const char *path, const uint8_t *bytes, size_t len)
{
	size_t		plen = strlen(path);
	char	   *tmp = xmalloc(plen + 16);
	FILE	   *f;

	snprintf(tmp, plen + 16, "%s.tmp%d", path, (int) getpid());
	f = fopen(tmp, "wb");
	if (f == NULL || fwrite(bytes, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0)
		fail(EXIT_RUN, "cannot write \"%s\": %s", tmp, strerror(errno));
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		fail(EXIT_RUN, "cannot write \"%s\": %s", path, strerror(errno));
	free(tmp);
}

static int
cmd_train(const Args *a)
{
	const cai_task *task = cai_task_find(a->pos[0]);
	const cai_arch *arch = NULL;
	cai_options *opts = NULL;
	cai_train_set set = {0};
	cai_error	err = {0};
	cai_status	st;
	char	   *opts_json;
	char	   *prov;
	uint8_t    *model = NULL;
	size_t		model_len = 0;
	char	   *metrics = NULL;
	Tsv			tr = {0};
	Tsv			va = {0};
	Conll		ctr;
	Conll		cva;
	cai_textclf_data dtr = {0};
	cai_textclf_data dva = {0};
	cai_ner_data ntr = {0};
	cai_ner_data nva = {0};
	int			n_labels = 0;
	char	  **labels = NULL;
	size_t		n_rows;
	size_t		n_valid = 0;
	int			threads;
	TrainVectors tv;
	struct json_object *vectors_prov = NULL;
	uint8_t    *corpus = NULL;
	const cai_encoder_bundle *encoder = NULL;

	if (task == NULL)
	{
		char		names[256] = "";

		for (int i = 0; cai_task_at(i) != NULL; i++)
		{
			strncat(names, i > 0 ? ", " : "", sizeof(names) - strlen(names) - 1);
			strncat(names, cai_task_at(i)->name, sizeof(names) - strlen(names) - 1);
		}
		fail(EXIT_USAGE, "unknown task \"%s\"; tasks are: %s", a->pos[0], names);
	}
	if (a->output == NULL)
		fail(EXIT_USAGE, "cai train needs -o MODEL, the file to write");
	opts_json = train_options(a, task);
	st = cai_task_parse_options(task, opts_json, &arch, &opts, &err);
	if (st != CAI_OK)
		fail(EXIT_USAGE, "invalid training options: %s", err.msg);

	if (task->kind == CAI_KIND_EMBED)
	{
		/* one text a line, as the rows of cai_train_vectors' input column */
		size_t		len;
		size_t		cap = 1024;

		corpus = read_whole(a->pos[1], &len);
		dtr.texts = xmalloc(sizeof(char *) * cap);
		dtr.lens = xmalloc(sizeof(size_t) * cap);
		dtr.n = 0;
		for (size_t at = 0; at < len;)
		{
			uint8_t    *nl = memchr(corpus + at, '\n', len - at);
			size_t		stop = nl != NULL ? (size_t) (nl - corpus) : len;
			size_t		l = stop - at;

			if (dtr.n == cap)
			{
				cap *= 2;
				dtr.texts = xrealloc((void *) dtr.texts, sizeof(char *) * cap);
				dtr.lens = xrealloc((void *) dtr.lens, sizeof(size_t) * cap);
			}
			if (l > 0 && corpus[at + l - 1] == '\r')
				l--;
			((const char **) dtr.texts)[dtr.n] = (const char *) corpus + at;
			((size_t *) dtr.lens)[dtr.n++] = l;
			at = stop + 1;
		}
		if (dtr.n == 0)
			fail(EXIT_INPUT, "the training file %s has no lines", input_name(a->pos[1]));
		set.texts = &dtr;
		n_rows = dtr.n;
	}
	else if (task->kind == CAI_KIND_CLASSIFY)
	{
		read_tsv(a->pos[1], &tr);
		if (tr.n == 0)
			fail(EXIT_INPUT, "the training file %s has no rows", input_name(a->pos[1]));
		labels = label_set(&tr, &n_labels);
		if (n_labels < 2)
			fail(EXIT_INPUT, "the training data has a single class \"%s\"; a classifier needs at least two", labels[0]);
		dtr.n = tr.n;
		dtr.texts = (const char *const *) tr.texts;
		dtr.lens = tr.lens;
		dtr.labels = label_ids(&tr, labels, n_labels, "training");
		set.texts = &dtr;
		set.label_names = (const char *const *) labels;
		set.n_labels = n_labels;
		if (a->valid != NULL)
		{
			read_tsv(a->valid, &va);
			if (va.n == 0)
				fail(EXIT_INPUT, "the validation file %s has no rows", a->valid);
			dva.n = va.n;
			dva.texts = (const char *const *) va.texts;
			dva.lens = va.lens;
			dva.labels = label_ids(&va, labels, n_labels, "validation");
			set.valid_texts = &dva;
		}
		n_rows = tr.n;
		n_valid = va.n;
	}
	else
	{
		conll_init(&ctr, open_input(a->pos[1]), input_name(a->pos[1]));
		if (!conll_read(&ctr, 0, true))
			fail(EXIT_INPUT, "the training file %s has no sentences", ctr.name);
		ntr = conll_data(&ctr);
		set.sentences = &ntr;
		if (a->valid != NULL)
		{
			conll_init(&cva, open_input(a->valid), a->valid);
			if (!conll_read(&cva, 0, true))
				fail(EXIT_INPUT, "the validation file %s has no sentences", a->valid);
			nva = conll_data(&cva);
			set.valid_sentences = &nva;
			n_valid = cva.n;
		}
		n_rows = ctr.n;
	}
	if (a->encoder != NULL)
	{
		char		msg[1024];
		int			rc = cli_encoder_open(a->encoder, &encoder, msg, sizeof(msg));

		if (rc != 0)
			fail(rc, "%s", msg);
		set.encoder = encoder;
	}
	if (a->vectors != NULL)
	{
		struct json_object *o = json_tokener_parse(opts_json);
		struct json_object *name;

		json_object_object_get_ex(o, "word_vectors", &name);	/* train_options put it there */
		vectors_prov = train_vectors_open(a, json_object_get_string(name), &tv);
		json_object_put(o);
		set.vectors = &tv.wv;
	}
	prov = provenance_json(a, n_rows, n_valid, vectors_prov);
	threads = (int) cai_opt_int(opts, "threads");
	cai_blas_set_threads(threads > 1 ? threads : 1);
	st = cai_arch_train(arch, opts, &set, prov, on_progress, (void *) &a->quiet, &model, &model_len, &metrics,
						&err);
	if (st != CAI_OK)
		fail(EXIT_RUN, "training failed: %s: %s", cai_status_name(st), err.msg);
	write_model(a->output, model, model_len);
	puts(metrics != NULL ? metrics : "{}");
	finish_output();
	cai_free(model);
	cai_free(metrics);
	cai_options_free(opts);
	free(opts_json);
	free(prov);
	if (a->vectors != NULL)
		train_vectors_close(&tv);
	if (encoder != NULL)
		cli_encoder_close(encoder);
	free(corpus);
	return 0;
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

static void
usage_error(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));

static void
usage_error(const char *fmt,...)
{
	va_list		ap;

	fputs("cai: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry \"cai --help\".\n", stderr);
	exit(EXIT_USAGE);
}

int
main(int argc, char **argv)
{
	enum
	{
		OPT_PER_ROW = 256, OPT_VALID, OPT_OPTIONS, OPT_SOURCE, OPT_ROLE, OPT_DATABASE, OPT_VERSION, OPT_VERIFY,
		OPT_VECTORS, OPT_VECTORS_VERSION, OPT_ENCODER, OPT_POOLING, OPT_MAX_LENGTH
	};
	static const struct option long_opts[] = {
		{"batch-size", required_argument, NULL, 'b'},
		{"per-row", no_argument, NULL, OPT_PER_ROW},
		{"output", required_argument, NULL, 'o'},
		{"valid", required_argument, NULL, OPT_VALID},
		{"options", required_argument, NULL, OPT_OPTIONS},
		{"source", required_argument, NULL, OPT_SOURCE},
		{"role", required_argument, NULL, OPT_ROLE},
		{"database", required_argument, NULL, OPT_DATABASE},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{"verify", required_argument, NULL, OPT_VERIFY},
		{"vectors", required_argument, NULL, OPT_VECTORS},
		{"vectors-version", required_argument, NULL, OPT_VECTORS_VERSION},
		{"encoder", required_argument, NULL, OPT_ENCODER},
		{"pooling", required_argument, NULL, OPT_POOLING},
		{"max-length", required_argument, NULL, OPT_MAX_LENGTH},
		{NULL, 0, NULL, 0}
	};
	static const struct
	{
		const char *name;
		int			min_pos;
		int			max_pos;
	}			commands[] = {
		{"info", 1, 1}, {"predict", 1, 2}, {"proba", 1, 2}, {"tag", 1, 2}, {"entities", 1, 2},
		{"evaluate", 2, 2}, {"train", 2, 2}, {"embed", 1, 2}
	};
	Args		a = {0};
	int			opt;
	int			ci = -1;

	a.batch = DEFAULT_BATCH;
	a.vectors_version = 1;
	if (argc < 2)
	{
		fputs("cai: no command\n", stderr);
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
	{
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0)
	{
		printf("cai %s\n", CAI_VERSION_STRING);
		return 0;
	}
	a.command = argv[1];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, a.command) == 0)
			ci = (int) i;
	if (ci < 0)
		usage_error("unknown command \"%s\"", a.command);
	opterr = 0;					/* our own messages */
	while ((opt = getopt_long(argc - 1, argv + 1, ":b:o:qh", long_opts, NULL)) != -1)
	{
		switch (opt)
		{
			case 'b':
				{
					char	   *end;
					long		v = strtol(optarg, &end, 10);

					if (*end != '\0' || v < 1 || v > MAX_BATCH)
						usage_error("--batch-size must be an integer between 1 and %d, not \"%s\"", MAX_BATCH, optarg);
					a.batch = (size_t) v;
					a.batch_given = true;
					break;
				}
			case OPT_PER_ROW:
				a.per_row = true;
				break;
			case 'o':
				a.output = optarg;
				break;
			case OPT_VALID:
				a.valid = optarg;
				break;
			case OPT_OPTIONS:
				a.options = optarg;
				break;
			case OPT_SOURCE:
				a.source = optarg;
				break;
			case OPT_ROLE:
				a.role = optarg;
				break;
			case OPT_DATABASE:
				a.database = optarg;
				break;
			case OPT_VECTORS:
				a.vectors = optarg;
				break;
			case OPT_VECTORS_VERSION:
				{
					char	   *end;
					long		v = strtol(optarg, &end, 10);

					if (*end != '\0' || v < 1 || v > INT32_MAX)
						usage_error("--vectors-version must be a positive integer, not \"%s\"", optarg);
					a.vectors_version = (int) v;
					break;
				}
			case OPT_ENCODER:
				a.encoder = optarg;
				break;
			case OPT_POOLING:
				a.pooling = optarg;
				break;
			case OPT_MAX_LENGTH:
				{
					char	   *end;
					long		v = strtol(optarg, &end, 10);

					if (*end != '\0' || v < 3 || v > 65536)
						usage_error("--max-length must be an integer between 3 and 65536, not \"%s\"", optarg);
					a.max_length = (int) v;
					break;
				}
			case 'q':
				a.quiet = true;
				break;
			case 'h':
				fputs(usage_text, stdout);
				return 0;
			case OPT_VERIFY:
				if (strcmp(optarg, "full") == 0)
					a.verify = VERIFY_FULL;
				else if (strcmp(optarg, "checksum") == 0)
					a.verify = VERIFY_CHECKSUM;
				else if (strcmp(optarg, "none") == 0)
					a.verify = VERIFY_NONE;
				else
					usage_error("--verify must be full, checksum or none, not \"%s\"", optarg);
				break;
			case OPT_VERSION:
				printf("cai %s\n", CAI_VERSION_STRING);
				return 0;
			case ':':
				usage_error("option \"%s\" of cai %s needs a value", argv[optind], a.command);
			default:
				usage_error("unknown option \"%s\" for cai %s", argv[optind], a.command);
		}
	}
	for (int i = optind + 1; i < argc; i++)
	{
		if (a.n_pos == 2)
			usage_error("too many arguments for cai %s", a.command);
		a.pos[a.n_pos++] = argv[i];
	}
	if (a.n_pos < commands[ci].min_pos || a.n_pos > commands[ci].max_pos)
		usage_error("cai %s needs %s", a.command,
					strcmp(a.command, "train") == 0 ? "TASK FILE -o MODEL" :
					strcmp(a.command, "evaluate") == 0 ? "MODEL FILE" :
					strcmp(a.command, "info") == 0 ? "MODEL" : "MODEL [FILE|-]");
	if (strcmp(a.command, "info") == 0)
		return cmd_info(&a);
	if (strcmp(a.command, "predict") == 0)
		return cmd_classify(&a, false);
	if (strcmp(a.command, "proba") == 0)
		return cmd_classify(&a, true);
	if (strcmp(a.command, "tag") == 0)
		return cmd_tag(&a);
	if (strcmp(a.command, "entities") == 0)
		return cmd_entities(&a);
	if (strcmp(a.command, "evaluate") == 0)
		return cmd_evaluate(&a);
	if (strcmp(a.command, "embed") == 0)
	{
		char		msg[1024];
		int			rc = cli_embed(a.pos[0], a.n_pos > 1 ? a.pos[1] : NULL, a.pooling != NULL ? a.pooling : "mean",
								   a.max_length, msg, sizeof(msg));

		if (rc != 0)
			fail(rc, "%s", msg);
		finish_output();
		return 0;
	}
	return cmd_train(&a);
}
