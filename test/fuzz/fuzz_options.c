/*
 * fuzz_options.c: libFuzzer target for the options parser.
 *
 *   make -f core.mk BUILD=build-tok fuzz FUZZERS=fuzz_options FUZZ_SECONDS=60
 *
 * Input: arbitrary bytes (up to the first NUL) parsed as options against a
 * sample table with every type.
 * Oracles (a failure traps):
 *   - the status is CAI_OK or CAI_ERR_INVALID, never anything else;
 *   - an error leaves *out NULL and has a non-empty, NUL-terminated message
 *     that is valid UTF-8 (the server passes it to ereport);
 *   - accepted options are within bounds and choices; cai_options_to_json
 *     parses back to the same values and the same JSON text.
 * Seeds: test/fuzz/corpus/fuzz_options.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/options.h"

#define REQUIRE(c) do { if (!(c)) __builtin_trap(); } while (0)

static const cai_opt_def defs[] = {
	{"epochs", CAI_OPT_INT, "10", 1, 1000, NULL, "training epochs"},
	{"lr", CAI_OPT_FLOAT, "0.1", 1e-6, 10, NULL, "learning rate"},
	{"lowercase", CAI_OPT_BOOL, "true", 0, 0, NULL, "lower-case tokens"},
	{"mode", CAI_OPT_STRING, "fast", 0, 0, "fast|accurate|\xc3\xa9t\xc3\xa9", "speed or accuracy"},
	{"label", CAI_OPT_STRING, NULL, 0, 0, NULL, "free text"},
	{"seed", CAI_OPT_INT, "42", -9223372036854775808.0, 9223372036854775807.0, NULL, "seed"},
	{"shift", CAI_OPT_FLOAT, "-0.5", -DBL_MAX, DBL_MAX, NULL, "any number"},
	{"dim", CAI_OPT_INT, "100", 1, 4096, NULL, "embedding size"},
	{"dropout", CAI_OPT_FLOAT, "0", 0, 0.9, NULL, "dropout"},
};
static const int n_defs = sizeof(defs) / sizeof(defs[0]);

static int
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p)
	{
		int			n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 :
			(*p & 0xF8) == 0xF0 ? 4 : 0;

		if (n == 0 || (n == 2 && *p < 0xC2))
			return 0;
		for (int k = 1; k < n; k++)
			if ((p[k] & 0xC0) != 0x80)
				return 0;
		p += n;
	}
	return 1;
}

static void
check_values(const cai_options *o)
{
	for (int i = 0; i < n_defs; i++)
	{
		const cai_opt_def *d = &defs[i];

		switch (d->type)
		{
			case CAI_OPT_INT:
				REQUIRE((double) cai_opt_int(o, d->name) >= d->min && (double) cai_opt_int(o, d->name) <= d->max);
				break;
			case CAI_OPT_FLOAT:
				REQUIRE(isfinite(cai_opt_float(o, d->name)));
				REQUIRE(cai_opt_float(o, d->name) >= d->min && cai_opt_float(o, d->name) <= d->max);
				break;
			case CAI_OPT_BOOL:
				break;
			case CAI_OPT_STRING:
				if (d->choices != NULL)
				{
					const char *s = cai_opt_string(o, d->name);

					REQUIRE(s != NULL && (strcmp(s, "fast") == 0 || strcmp(s, "accurate") == 0 ||
										  strcmp(s, "\xc3\xa9t\xc3\xa9") == 0));
				}
				break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *json = malloc(size + 1);
	cai_options *o = (cai_options *) 1;
	cai_error	err;
	cai_status	st;

	if (json == NULL)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';

	memset(&err, 0x55, sizeof(err));
	st = cai_options_parse(defs, n_defs, json, &o, &err);
	REQUIRE(st == CAI_OK || st == CAI_ERR_INVALID);
	if (st != CAI_OK)
	{
		REQUIRE(o == NULL && err.status == st);
		REQUIRE(memchr(err.msg, '\0', sizeof(err.msg)) != NULL && err.msg[0] != '\0');
		REQUIRE(valid_utf8(err.msg));
	}
	else
	{
		char	   *js = cai_options_to_json(o);
		cai_options *o2 = NULL;
		char	   *js2;

		REQUIRE(o != NULL && js != NULL);
		check_values(o);
		REQUIRE(cai_options_parse(defs, n_defs, js, &o2, &err) == CAI_OK);
		js2 = cai_options_to_json(o2);
		REQUIRE(js2 != NULL && strcmp(js, js2) == 0);
		for (int i = 0; i < n_defs; i++)
		{
			const char *a = cai_opt_string(o, defs[i].name);
			const char *b = cai_opt_string(o2, defs[i].name);

			REQUIRE(cai_opt_int(o, defs[i].name) == cai_opt_int(o2, defs[i].name));
			REQUIRE(cai_opt_float(o, defs[i].name) == cai_opt_float(o2, defs[i].name));
			REQUIRE(cai_opt_bool(o, defs[i].name) == cai_opt_bool(o2, defs[i].name));
			REQUIRE((a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0));
		}
		cai_free(js);
		cai_free(js2);
		cai_options_free(o2);
		cai_options_free(o);
	}

	/* the key list, at every small capacity */
	{
		char		buf[16];
		size_t		full = cai_options_valid_keys(defs, n_defs, NULL, 0);
		size_t		cap = size % sizeof(buf);

		REQUIRE(cai_options_valid_keys(defs, n_defs, buf, cap) == full);
		if (cap > 0)
			REQUIRE(strlen(buf) == (full < cap - 1 ? full : cap - 1));
	}
	free(json);
	return 0;
}
