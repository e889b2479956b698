/*
 * encoder_torch_check.c: the core's encoder against the PyTorch reference
 * (bench/peers/encoder_torch_ref.py wrote DIR: config.json,
 * model.safetensors, inputs.txt, expected.txt, dout.txt, grads.txt).
 *
 *   build/bench/encoder_torch_check DIR
 *
 * Loads the checkpoint, runs the batch forward (inference, no dropout) and
 * backward with dout, and prints the largest absolute difference of the
 * last hidden states at the unpadded positions, then for each gradient in
 * grads.txt its largest absolute difference and the reference's largest
 * value, then the largest absolute difference of the logits of the
 * reference's head (head.txt, logits.txt; test/unit/encoder_torch.h: per
 * token, mean- and [CLS]-pooled, through tf_forward_infer), and a line
 * "RESULT hidden_maxabs grad_maxrel logits_maxabs" (grad_maxrel: the
 * largest over the tensors of maxabs diff / max |reference|).  Exit status
 * 1 if the hidden states or the logits differ by more than 1e-4 or a
 * gradient by more than 1e-4 of its scale (the unit test's tolerances), 2
 * on an error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cai/encoder.h"
#include "../test/unit/encoder_torch.h"

static const char *dir;

static unsigned char *
slurp(const char *name, size_t *len)
{
	char		path[1024];
	FILE	   *f;
	long		n;
	unsigned char *p = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(p = malloc((size_t) n + 1)) != NULL)
	{
		*len = fread(p, 1, (size_t) n, f);
		if (*len != (size_t) n)
		{
			free(p);
			p = NULL;
		}
	}
	fclose(f);
	return p;
}

static FILE *
open_in(const char *name)
{
	char		path[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return fopen(path, "r");
}

/* n floats of a text file, one a line; NULL if fewer */
static float *
floats_of(const char *name, size_t n)
{
	FILE	   *f = open_in(name);
	float	   *x = calloc(n + 1, sizeof(float));
	size_t		i = 0;

	while (f != NULL && x != NULL && i < n && fscanf(f, "%f", &x[i]) == 1)
		i++;
	if (f != NULL)
		fclose(f);
	if (i != n)
	{
		free(x);
		return NULL;
	}
	return x;
}

static int
fail(const char *what, const cai_error *err)
{
	fprintf(stderr, "encoder_torch_check: %s: %s\n", what, err != NULL ? err->msg : "");
	return 2;
}

int
main(int argc, char **argv)
{
	cai_encoder_config cfg;
	cai_encoder *enc = NULL;
	cai_encoder_acts *acts = NULL;
	cai_encoder_grads *g = NULL;
	cai_error	err = {0};
	unsigned char *json;
	unsigned char *st_bytes;
	size_t		json_len = 0;
	size_t		st_len = 0;
	int			B = 0;
	int			T = 0;
	int32_t    *ids;
	int32_t    *seg;
	uint8_t    *mask;
	float	   *want;
	float	   *dout;
	double		hidden_max = 0.0;
	double		grad_rel = 0.0;
	bool		ok = true;
	char		name[64];
	size_t		numel;
	FILE	   *f;
	int			H;
	int			K;
	float	   *head;
	float	   *logits_want;
	float	   *logits;
	size_t		n_tok = 0;
	double		logits_max = 0.0;

	if (argc != 2)
	{
		fprintf(stderr, "usage: encoder_torch_check DIR\n");
		return 2;
	}
	dir = argv[1];
	if ((json = slurp("config.json", &json_len)) == NULL || (st_bytes = slurp("model.safetensors", &st_len)) == NULL)
		return fail("config.json or model.safetensors unreadable", NULL);
	if (cai_encoder_config_from_json((const char *) json, json_len, &cfg, &err) != CAI_OK)
		return fail("config.json", &err);
	if ((f = open_in("inputs.txt")) == NULL || fscanf(f, "%d %d", &B, &T) != 2 || B < 1 || T < 1 ||
		B * T > 1000000)
		return fail("inputs.txt", NULL);
	ids = calloc((size_t) B * T, sizeof(int32_t));
	seg = calloc((size_t) B * T, sizeof(int32_t));
	mask = calloc((size_t) B * T, 1);
	for (int i = 0; ids != NULL && i < B * T; i++)
		ok = ok && fscanf(f, "%d", &ids[i]) == 1;
	for (int i = 0; seg != NULL && i < B * T; i++)
		ok = ok && fscanf(f, "%d", &seg[i]) == 1;
	for (int i = 0; mask != NULL && i < B * T; i++)
	{
		int			m = 0;

		ok = ok && fscanf(f, "%d", &m) == 1;
		mask[i] = (uint8_t) m;
	}
	fclose(f);
	H = cfg.hidden_size;
	want = floats_of("expected.txt", (size_t) B * T * H);
	dout = floats_of("dout.txt", (size_t) B * T * H);
	if (!ok || ids == NULL || seg == NULL || mask == NULL || want == NULL || dout == NULL)
		return fail("inputs.txt, expected.txt or dout.txt", NULL);
	if (cai_encoder_from_safetensors(&cfg, st_bytes, st_len, &enc, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, B, T, true, &acts, &err) != CAI_OK ||
		cai_encoder_grads_create(enc, &g, &err) != CAI_OK ||
		cai_encoder_forward(enc, acts, ids, seg, mask, false, NULL, &err) != CAI_OK)
		return fail("load and forward", &err);
	for (size_t r = 0; r < (size_t) B * T; r++)
		for (int j = 0; mask[r] && j < H; j++)
			hidden_max = fmax(hidden_max, fabs((double) cai_encoder_output(acts)[r * H + j] - want[r * H + j]));
	printf("%s: L %d H %d heads %d I %d V %d, batch %d x %d\n", dir, cfg.num_hidden_layers, H,
		   cfg.num_attention_heads, cfg.intermediate_size, cfg.vocab_size, B, T);
	printf("  hidden states: max abs diff %.3g\n", hidden_max);
	if (cai_encoder_backward(enc, acts, g, dout, ids, seg, mask, &err) != CAI_OK)
		return fail("backward", &err);
	if ((f = open_in("grads.txt")) == NULL)
		return fail("grads.txt", NULL);
	while (fscanf(f, "%63s %zu", name, &numel) == 2)
	{
		const cai_encoder_tensor *t = NULL;
		double		d = 0.0;
		double		scale = 0.0;

		for (int k = 0; k < enc->n_tensors; k++)
			if (strcmp(enc->tensors[k].name, name) == 0)
				t = &enc->tensors[k];
		if (t == NULL || t->numel != numel)
			return fail(name, NULL);
		for (size_t i = 0; i < numel; i++)
		{
			float		ref;

			if (fscanf(f, "%f", &ref) != 1)
				return fail(name, NULL);
			d = fmax(d, fabs((double) g->data[t->offset + i] - ref));
			scale = fmax(scale, fabs(ref));
		}
		printf("  grad %-48s max abs diff %.3g, max |ref| %.3g, ratio %.3g\n", name, d, scale,
			   scale > 0.0 ? d / scale : d);
		grad_rel = fmax(grad_rel, scale > 0.0 ? d / scale : d);
	}
	fclose(f);
	if ((head = floats_of("head.txt", 2)) == NULL || (K = (int) head[0]) < 2 || K > 64 || (int) head[1] != H)
		return fail("head.txt", NULL);
	free(head);
	for (size_t r = 0; r < (size_t) B * T; r++)
		n_tok += mask[r] != 0;
	head = floats_of("head.txt", 2 + (size_t) K * H + (size_t) K);
	logits_want = floats_of("logits.txt", (n_tok + 2 * (size_t) B) * (size_t) K);
	logits = calloc(n_tok * (size_t) K, sizeof(float));
	if (head == NULL || logits_want == NULL || logits == NULL)
		return fail("head.txt or logits.txt", NULL);
	for (int pass = 0, at = 0; pass < TORCH_LOGIT_PASSES; pass++)
	{
		const size_t n = (pass == 0 ? n_tok : (size_t) B) * (size_t) K;
		double		d = 0.0;

		if (torch_logits(&cfg, enc, head + 2, K, B, T, ids, mask, pass, logits, &err) != CAI_OK)
			return fail(torch_logit_pass[pass], &err);
		for (size_t i = 0; i < n; i++)
			d = fmax(d, fabs((double) logits[i] - logits_want[at + i]));
		at += (int) n;
		printf("  logits %-16s max abs diff %.3g\n", torch_logit_pass[pass], d);
		logits_max = fmax(logits_max, d);
	}
	printf("RESULT %.3g %.3g %.3g\n", hidden_max, grad_rel, logits_max);
	cai_encoder_grads_free(g);
	cai_encoder_acts_free(acts);
	cai_encoder_free(enc);
	free(ids);
	free(seg);
	free(mask);
	free(want);
	free(dout);
	free(json);
	free(st_bytes);
	free(head);
	free(logits_want);
	free(logits);
	return hidden_max <= 1e-4 && grad_rel <= 1e-4 && logits_max <= 1e-4 ? 0 : 1;
}
