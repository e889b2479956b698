/*
 * cai_encoder.c: the cai command's encoder parts (cai_cli.h): a checkpoint
 * directory for training a transformer, and sentence embeddings.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cai/encoder_model.h"
#include "cai_cli.h"

/* The whole of a file (malloc'ed, *len bytes), or NULL with errno. */
static char *
slurp(FILE *f, size_t *len)
{
	size_t		cap = 1 << 16;
	size_t		n = 0;
	size_t		got;
	char	   *b = malloc(cap);

	while (b != NULL && (got = fread(b + n, 1, cap - n, f)) > 0)
	{
		n += got;
		if (n == cap)
		{
			char	   *nb = realloc(b, cap *= 2);

			if (nb == NULL)
				free(b);
			b = nb;
		}
	}
	if (b != NULL && ferror(f))
	{
		free(b);
		b = NULL;
	}
	*len = n;
	return b;
}

static char *
read_in(const char *dir, const char *name, size_t *len, char *msg, size_t cap)
{
	char		path[4096];
	FILE	   *f;
	char	   *b;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "rb")) == NULL)
	{
		snprintf(msg, cap, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	b = slurp(f, len);
	if (b == NULL)
		snprintf(msg, cap, "cannot read %s: %s", path, strerror(errno));
	fclose(f);
	return b;
}

/* the model an encoder given as a model file came from (cli_encoder_close frees it) */
static cai_model *encoder_model;

void
cli_encoder_close(const cai_encoder_bundle *b)
{
	if (encoder_model != NULL)
		cai_model_free(encoder_model);
	else
		cai_encoder_bundle_free((cai_encoder_bundle *) b);
	encoder_model = NULL;
}

/* An encoder model file (cai_export of an imported encoder, or a transformer model): its encoder. */
static int
encoder_from_model(const char *path, const cai_encoder_bundle **out, char *msg, size_t cap)
{
	FILE	   *f = fopen(path, "rb");
	size_t		len = 0;
	char	   *bytes = f != NULL ? slurp(f, &len) : NULL;
	cai_error	err = {0};
	int			rc = 0;

	if (bytes == NULL)
	{
		snprintf(msg, cap, "cannot read %s: %s", path, strerror(errno));
		rc = EXIT_INPUT;
	}
	else if (cai_model_load((const uint8_t *) bytes, len, false, true, &encoder_model, &err) != CAI_OK)
	{
		snprintf(msg, cap, "%s is not a valid model: %s", path, err.msg);
		rc = EXIT_INPUT;
	}
	else if ((*out = cai_model_encoder_bundle(encoder_model)) == NULL)
	{
		snprintf(msg, cap, "%s: a %s %s model holds no encoder", path, cai_model_task(encoder_model),
				 cai_model_architecture(encoder_model));
		rc = EXIT_INPUT;
	}
	if (f != NULL)
		fclose(f);
	free(bytes);
	return rc;
}

int
cli_encoder_open(const char *dir, const cai_encoder_bundle **out, char *msg, size_t cap)
{
	size_t		lc = 0;
	size_t		lv = 0;
	size_t		lw = 0;
	struct stat sb;
	char	   *cfg;
	char	   *voc;
	char	   *wts;
	cai_error	err = {0};
	cai_status	st;
	int			rc = EXIT_INPUT;
	cai_encoder_bundle *b = NULL;

	*out = NULL;
	if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode))
		return encoder_from_model(dir, out, msg, cap);
	cfg = read_in(dir, "config.json", &lc, msg, cap);
	voc = cfg != NULL ? read_in(dir, "vocab.txt", &lv, msg, cap) : NULL;
	wts = voc != NULL ? read_in(dir, "model.safetensors", &lw, msg, cap) : NULL;
	if (wts != NULL)
	{
		st = cai_encoder_bundle_from_checkpoint(cfg, lc, voc, lv, wts, lw, NULL, &b, &err);
		*out = b;
		if (st == CAI_OK)
			rc = 0;
		else
			snprintf(msg, cap, "the encoder in %s cannot be used: %s: %s", dir, cai_status_name(st), err.msg);
	}
	free(cfg);
	free(voc);
	free(wts);
	return rc;
}

int
cli_embed(const char *model, const char *input, const char *pooling, int max_length, char *msg, size_t cap)
{
	FILE	   *f = fopen(model, "rb");
	FILE	   *in = input == NULL || strcmp(input, "-") == 0 ? stdin : fopen(input, "rb");
	char	   *bytes = NULL;
	char	   *text = NULL;
	size_t		len = 0;
	size_t		tlen = 0;
	cai_model  *m = NULL;
	const cai_encoder_bundle *b;
	cai_pooling pool;
	cai_error	err = {0};
	float	   *v = NULL;
	int			rc = 0;

	if (f == NULL || (bytes = slurp(f, &len)) == NULL)
	{
		snprintf(msg, cap, "cannot read %s: %s", model, strerror(errno));
		rc = EXIT_MODEL;
	}
	else if (cai_model_load((const uint8_t *) bytes, len, false, true, &m, &err) != CAI_OK)
	{
		snprintf(msg, cap, "%s is not a valid model: %s", model, err.msg);
		rc = EXIT_MODEL;
	}
	else if ((b = cai_model_encoder_bundle(m)) == NULL)
	{
		snprintf(msg, cap, "a %s %s model has no encoder to embed with", cai_model_task(m), cai_model_architecture(m));
		rc = EXIT_TASK;
	}
	else if (cai_pooling_parse(pooling, &pool, &err) != CAI_OK)
	{
		snprintf(msg, cap, "%s", err.msg);
		rc = EXIT_USAGE;
	}
	else if (in == NULL || (text = slurp(in, &tlen)) == NULL)
	{
		snprintf(msg, cap, "cannot read %s: %s", input, strerror(errno));
		rc = EXIT_INPUT;
	}
	else if ((v = malloc(sizeof(float) * (size_t) b->cfg.hidden_size)) == NULL)
	{
		snprintf(msg, cap, "out of memory");
		rc = EXIT_RUN;
	}
	for (size_t at = 0; rc == 0 && at < tlen;)
	{
		char	   *nl = memchr(text + at, '\n', tlen - at);
		size_t		stop = nl != NULL ? (size_t) (nl - text) : tlen;
		size_t		l = stop - at;

		if (l > 0 && text[at + l - 1] == '\r')
			l--;
		if (cai_encoder_embed(b, text + at, l, pool, max_length, v, &err) != CAI_OK)
		{
			snprintf(msg, cap, "embedding failed: %s", err.msg);
			rc = EXIT_RUN;
			break;
		}
		for (int j = 0; j < b->cfg.hidden_size; j++)
			printf(j > 0 ? " %.9g" : "%.9g", v[j]);
		putchar('\n');
		at = stop + 1;
	}
	if (f != NULL)
		fclose(f);
	if (in != NULL && in != stdin)
		fclose(in);
	free(v);
	free(text);
	cai_model_free(m);
	free(bytes);
	return rc;
}
