/*
 * test_options.c: option tables, JSON parsing, validation messages and
 * the JSON round trip.
 */
#include "cai/options.h"
#include "check.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static const cai_opt_def defs[] = {
	{"epochs", CAI_OPT_INT, "10", 1, 1000, NULL, "training epochs"},
	{"lr", CAI_OPT_FLOAT, "0.1", 1e-6, 10, NULL, "learning rate"},
	{"lowercase", CAI_OPT_BOOL, "true", 0, 0, NULL, "lower-case tokens"},
	{"mode", CAI_OPT_STRING, "fast", 0, 0, "fast|accurate", "speed or accuracy"},
	{"label", CAI_OPT_STRING, NULL, 0, 0, NULL, "free text, no default"},
	{"seed", CAI_OPT_INT, "42", 0, 9223372036854775807.0, NULL, "random seed"},
	{"shift", CAI_OPT_FLOAT, "-0.5", -DBL_MAX, DBL_MAX, NULL, "any number"},
};
static const int n_defs = sizeof(defs) / sizeof(defs[0]);

/* Parse json; expect st and, when st is an error, msg_part in the message. */
static cai_options *
parse(int line, const char *json, cai_status want, const char *msg_part)
{
	cai_options *o = NULL;
	cai_error	err = {0};
	cai_status	st = cai_options_parse(defs, n_defs, json, &o, &err);

	CHECK(st == want, "line %d: %s: status %d (%s), want %d", line, json ? json : "NULL", st,
		  err.msg, want);
	if (st != CAI_OK)
	{
		CHECK(o == NULL, "line %d: no options on error", line);
		CHECK(err.status == st, "line %d: err.status", line);
		if (msg_part != NULL)
			CHECK(strstr(err.msg, msg_part) != NULL, "line %d: message \"%s\" lacks \"%s\"", line,
				  err.msg, msg_part);
	}
	return o;
}

#define OK(json) parse(__LINE__, (json), CAI_OK, NULL)
#define BAD(json, part) cai_options_free(parse(__LINE__, (json), CAI_ERR_INVALID, (part)))

static void
test_defaults(void)
{
	const char *empties[] = {NULL, "", "  \n", "{}", " { } "};

	for (size_t k = 0; k < sizeof(empties) / sizeof(empties[0]); k++)
	{
		cai_options *o = OK(empties[k]);

		if (o == NULL)
			continue;
		CHECK(cai_opt_int(o, "epochs") == 10, "default epochs");
		CHECK(cai_opt_float(o, "lr") == 0.1, "default lr");
		CHECK(cai_opt_bool(o, "lowercase") == true, "default lowercase");
		CHECK(strcmp(cai_opt_string(o, "mode"), "fast") == 0, "default mode");
		CHECK(cai_opt_string(o, "label") == NULL, "no label");
		CHECK(cai_opt_int(o, "seed") == 42 && cai_opt_float(o, "shift") == -0.5, "defaults");
		CHECK(!cai_opt_is_set(o, "epochs") && !cai_opt_is_set(o, "mode"), "not set by user");
		cai_options_free(o);
	}
}

static void
test_values(void)
{
	cai_options *o = OK("{\"epochs\": 5, \"lr\": 0.01, \"lowercase\": false, \"mode\": \"accurate\","
						" \"label\": \"x\\u00e9\\\"y\", \"seed\": 9223372036854775807, \"shift\": -1e300}");

	if (o != NULL)
	{
		CHECK(cai_opt_int(o, "epochs") == 5 && cai_opt_is_set(o, "epochs"), "epochs");
		CHECK(cai_opt_float(o, "lr") == 0.01, "lr");
		CHECK(cai_opt_bool(o, "lowercase") == false && cai_opt_is_set(o, "lowercase"), "lowercase");
		CHECK(strcmp(cai_opt_string(o, "mode"), "accurate") == 0, "mode");
		CHECK(strcmp(cai_opt_string(o, "label"), "x\xc3\xa9\"y") == 0, "label %s", cai_opt_string(o, "label"));
		CHECK(cai_opt_int(o, "seed") == INT64_MAX, "seed");
		CHECK(cai_opt_float(o, "shift") == -1e300, "shift");
		/* cross-type getters and unknown names */
		CHECK(cai_opt_float(o, "epochs") == 5.0 && cai_opt_int(o, "lr") == 0, "int/float conversion");
		CHECK(cai_opt_int(o, "mode") == 0 && cai_opt_string(o, "epochs") == NULL &&
			  !cai_opt_bool(o, "epochs") && cai_opt_int(o, "nope") == 0 && !cai_opt_is_set(o, "nope") &&
			  cai_opt_string(o, NULL) == NULL, "mismatches");
		cai_options_free(o);
	}
	CHECK(cai_opt_int(NULL, "epochs") == 0 && cai_opt_string(NULL, "mode") == NULL, "NULL options");

	/* INT takes integral doubles */
	o = OK("{\"epochs\": 7.0}");
	CHECK(o != NULL && cai_opt_int(o, "epochs") == 7, "7.0");
	cai_options_free(o);
	o = OK("{\"epochs\": 1e3}");
	CHECK(o != NULL && cai_opt_int(o, "epochs") == 1000, "1e3");
	cai_options_free(o);
	/* FLOAT takes integers */
	o = OK("{\"lr\": 2, \"shift\": 12345678901234567890}");
	CHECK(o != NULL && cai_opt_float(o, "lr") == 2.0, "lr 2");
	CHECK(o != NULL && cai_opt_float(o, "shift") == 12345678901234567890.0, "shift beyond int64");
	cai_options_free(o);
	/* bounds are inclusive */
	o = OK("{\"epochs\": 1, \"lr\": 10}");
	CHECK(o != NULL && cai_opt_int(o, "epochs") == 1, "min");
	cai_options_free(o);
	o = OK("{\"epochs\": 1000, \"lr\": 0.000001}");
	CHECK(o != NULL && cai_opt_int(o, "epochs") == 1000, "max");
	cai_options_free(o);
	/* a repeated key keeps the last value */
	o = OK("{\"epochs\": 3, \"epochs\": 4}");
	CHECK(o != NULL && cai_opt_int(o, "epochs") == 4, "last of repeated keys");
	cai_options_free(o);
}

static void
test_errors(void)
{
	BAD("{\"epochs\": 0}", "option \"epochs\" must be between 1 and 1000, got 0");
	BAD("{\"epochs\": 1001}", "must be between 1 and 1000, got 1001");
	BAD("{\"epochs\": 1.5}", "option \"epochs\" must be an integer, got 1.5");
	BAD("{\"epochs\": \"5\"}", "option \"epochs\" must be an integer, got \"5\"");
	BAD("{\"epochs\": true}", "must be an integer, got true");
	BAD("{\"epochs\": null}", "must be an integer, got null");
	BAD("{\"epochs\": [1]}", "must be an integer, got [1]");
	BAD("{\"epochs\": 99999999999999999999}", "must be between 1 and 1000");
	BAD("{\"epochs\": -99999999999999999999}", "must be between 1 and 1000");
	BAD("{\"epochs\": 1e300}", "must be between 1 and 1000, got 1e300");
	BAD("{\"seed\": -1}", "option \"seed\" must be at least 0, got -1");
	BAD("{\"seed\": 99999999999999999999}", "option \"seed\" is too large");
	BAD("{\"seed\": 1e19}", "option \"seed\" is too large, got 1e19");
	BAD("{\"lr\": 0}", "option \"lr\" must be between 1e-06 and 10, got 0");
	BAD("{\"lr\": \"0.1\"}", "option \"lr\" must be a number, got \"0.1\"");
	BAD("{\"lr\": NaN}", "option \"lr\" must be a finite number, got NaN");
	BAD("{\"lr\": Infinity}", "must be a finite number");
	BAD("{\"shift\": 1e999}", "option \"shift\" must be a finite number");
	BAD("{\"epochs\": NaN}", "must be an integer");
	BAD("{\"lowercase\": 1}", "option \"lowercase\" must be true or false, got 1");
	BAD("{\"lowercase\": \"true\"}", "must be true or false, got \"true\"");
	BAD("{\"mode\": \"slow\"}", "option \"mode\" must be one of fast, accurate, got \"slow\"");
	BAD("{\"mode\": \"Fast\"}", "must be one of");
	BAD("{\"mode\": \"fast|accurate\"}", "must be one of");
	BAD("{\"mode\": 1}", "option \"mode\" must be a string, got 1");
	BAD("{\"mode\": null}", "option \"mode\" must be a string, got null");
	BAD("{\"label\": \"a\\u0000b\"}", "must not contain NUL");
	BAD("{\"foo\": 1}", "unknown option \"foo\", valid options are: epochs, lr, lowercase, mode, label, seed, shift");
	BAD("{\"Epochs\": 1}", "unknown option \"Epochs\"");
	BAD("{\"epochs\": 5, \"bar\": 1}", "unknown option \"bar\"");
	BAD("[1, 2]", "options must be a JSON object");
	BAD("5", "options must be a JSON object");
	BAD("\"epochs\"", "options must be a JSON object");
	BAD("null", "options must be a JSON object");
	BAD("{", "options are not valid JSON");
	BAD("{\"epochs\": }", "options are not valid JSON");
	BAD("{\"epochs\": 5,}", "options are not valid JSON");
	BAD("{\"epochs\": 5} x", "options are not valid JSON");
	BAD("{} {}", "options are not valid JSON");
	BAD("{\"a\xff\": 1}", "options are not valid UTF-8 at byte 3");
	BAD("{\"a\xc0\xbb\": 1}", "options are not valid UTF-8 at byte 3");	/* overlong */
	BAD("{\"label\": \"\xed\xa0\x80\"}", "options are not valid UTF-8 at byte 11");	/* surrogate */
	BAD("{\"label\": \"\xe2\x82\"}", "options are not valid UTF-8");	/* truncated */
	BAD("epochs=5", "options are not valid JSON");

	/* a long unknown key is clipped, and the message stays short */
	{
		char		json[600];
		cai_options *o = NULL;
		cai_error	err = {0};

		memset(json, 'k', sizeof(json));
		json[0] = '{';
		json[1] = '"';
		memcpy(json + 500, "\": 1}", 6);
		CHECK(cai_options_parse(defs, n_defs, json, &o, &err) == CAI_ERR_INVALID && strstr(err.msg, "...\""),
			  "clipped key: %s", err.msg);
	}
	/* deep nesting is refused, not a stack overflow */
	{
		char	   *deep = malloc(200001);
		cai_options *o = NULL;

		memset(deep, '[', 200000);
		deep[200000] = '\0';
		CHECK(cai_options_parse(defs, n_defs, deep, &o, NULL) == CAI_ERR_INVALID && o == NULL, "deep");
		free(deep);
	}
	CHECK(cai_options_parse(defs, n_defs, "{}", NULL, NULL) == CAI_ERR_INVALID, "NULL out");
}

static void
test_bad_tables(void)
{
	static const cai_opt_def bad_int[] = {{"a", CAI_OPT_INT, "x", 0, 10, NULL, NULL}};
	static const cai_opt_def bad_range[] = {{"a", CAI_OPT_INT, "11", 0, 10, NULL, NULL}};
	static const cai_opt_def bad_float[] = {{"a", CAI_OPT_FLOAT, "nan", 0, 10, NULL, NULL}};
	static const cai_opt_def bad_bool[] = {{"a", CAI_OPT_BOOL, "yes", 0, 0, NULL, NULL}};
	static const cai_opt_def bad_choice[] = {{"a", CAI_OPT_STRING, "c", 0, 0, "a|b", NULL}};
	static const cai_opt_def no_def[] = {{"a", CAI_OPT_FLOAT, NULL, 0, 1, NULL, NULL}};
	static const cai_opt_def dup[] = {{"a", CAI_OPT_BOOL, "true", 0, 0, NULL, NULL},
	{"a", CAI_OPT_BOOL, "true", 0, 0, NULL, NULL}};
	static const cai_opt_def no_name[] = {{NULL, CAI_OPT_BOOL, "true", 0, 0, NULL, NULL}};
	static const cai_opt_def bounds[] = {{"a", CAI_OPT_INT, "1", 10, 0, NULL, NULL}};
	static const struct
	{
		const cai_opt_def *d;
		const char *what;
	}			cases[] = {
		{bad_int, "bad default"}, {bad_range, "bad default"}, {bad_float, "bad default"},
		{bad_bool, "bad default"}, {bad_choice, "bad default"}, {no_def, "no default"},
		{dup, "defined twice"}, {no_name, "no name"}, {bounds, "bad bounds"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		cai_options *o = NULL;
		cai_error	err = {0};
		int			n = cases[i].d == dup ? 2 : 1;
		cai_status	st = cai_options_parse(cases[i].d, n, NULL, &o, &err);

		CHECK(st == CAI_ERR_INTERNAL && o == NULL && strstr(err.msg, cases[i].what) != NULL,
			  "table %zu: %d %s", i, st, err.msg);
	}
	/* an empty table */
	{
		cai_options *o = NULL;
		cai_error	err = {0};
		char	   *js;

		CHECK(cai_options_parse(NULL, 0, "{}", &o, &err) == CAI_OK && o != NULL, "empty table");
		js = cai_options_to_json(o);
		CHECK(js != NULL && strcmp(js, "{}") == 0, "empty table json %s", js ? js : "NULL");
		cai_free(js);
		cai_options_free(o);
		o = NULL;
		CHECK(cai_options_parse(NULL, 0, "{\"a\": 1}", &o, &err) == CAI_ERR_INVALID &&
			  strstr(err.msg, "takes no options") != NULL, "no options: %s", err.msg);
		CHECK(cai_options_parse(NULL, 3, "{}", &o, &err) == CAI_ERR_INTERNAL, "NULL defs");
	}
}

static void
test_valid_keys(void)
{
	char		buf[256];
	size_t		n = cai_options_valid_keys(defs, n_defs, buf, sizeof(buf));
	const char *want = "epochs, lr, lowercase, mode, label, seed, shift";

	CHECK(n == strlen(want) && strcmp(buf, want) == 0, "valid keys: %s", buf);
	CHECK(cai_options_valid_keys(defs, n_defs, buf, 9) == strlen(want) && strcmp(buf, "epochs, ") == 0,
		  "truncated: [%s]", buf);
	CHECK(cai_options_valid_keys(defs, n_defs, NULL, 0) == strlen(want), "length only");
	CHECK(cai_options_valid_keys(defs, 0, buf, sizeof(buf)) == 0 && buf[0] == '\0', "none");
	/* cut to whole names for a message */
	CHECK(cai_options_valid_keys_fit(defs, n_defs, buf, sizeof(buf)) == strlen(want) && strcmp(buf, want) == 0,
		  "fits: %s", buf);
	CHECK(cai_options_valid_keys_fit(defs, n_defs, buf, 20) == strlen(buf) && strcmp(buf, "epochs, lr, ...") == 0,
		  "cut at a name: [%s]", buf);
	CHECK(cai_options_valid_keys_fit(defs, n_defs, buf, 6) == 3 && strcmp(buf, "...") == 0, "no name fits: [%s]", buf);

	/* a table too long for the message: whole names then ", ..." */
	{
		static char names[40][16];
		cai_opt_def many[40];
		cai_options *o = NULL;
		cai_error	err = {0};

		for (int i = 0; i < 40; i++)
		{
			snprintf(names[i], sizeof(names[i]), "option_%02d", i);
			many[i] = (cai_opt_def) {names[i], CAI_OPT_BOOL, "false", 0, 0, NULL, NULL};
		}
		CHECK(cai_options_parse(many, 40, "{\"zzz\": 1}", &o, &err) == CAI_ERR_INVALID, "many");
		n = strlen(err.msg);
		CHECK(n < CAI_ERRMSG_MAX - 1 && strcmp(err.msg + n - 5, ", ...") == 0 &&
			  strstr(err.msg, "option_00, option_01") != NULL, "many: %s", err.msg);
		CHECK(cai_options_valid_keys(many, 40, NULL, 0) == 40 * 9 + 39 * 2, "full length");
	}
}

static void
test_round_trip(void)
{
	cai_options *o = OK("{\"epochs\": 5, \"lr\": 0.1, \"lowercase\": false, \"label\": \"a\\\"b\\\\c\\n\","
						" \"shift\": 3}");
	cai_options *o2;
	char	   *js;
	char	   *js2;
	const char *want = "{\"epochs\":5,\"lr\":0.1,\"lowercase\":false,\"mode\":\"fast\","
		"\"label\":\"a\\\"b\\\\c\\n\",\"seed\":42,\"shift\":3.0}";

	if (o == NULL)
		return;
	js = cai_options_to_json(o);
	CHECK(js != NULL && strcmp(js, want) == 0, "to_json: %s", js ? js : "NULL");
	o2 = OK(js);
	js2 = o2 ? cai_options_to_json(o2) : NULL;
	CHECK(js2 != NULL && strcmp(js, js2) == 0, "round trip: %s", js2 ? js2 : "NULL");
	CHECK(o2 != NULL && strcmp(cai_opt_string(o2, "label"), "a\"b\\c\n") == 0 &&
		  cai_opt_float(o2, "shift") == 3.0, "round trip values");
	cai_free(js);
	cai_free(js2);
	cai_options_free(o);
	cai_options_free(o2);

	/* doubles round-trip exactly; label null */
	o = OK("{\"lr\": 0.30000000000000004, \"shift\": 1e-300}");
	js = o ? cai_options_to_json(o) : NULL;
	CHECK(js != NULL && strstr(js, "\"lr\":0.30000000000000004") != NULL &&
		  strstr(js, "\"shift\":1e-300") != NULL && strstr(js, "\"label\":null") != NULL, "json: %s", js ? js : "NULL");
	o2 = js ? OK(js) : NULL;
	CHECK(o2 != NULL && cai_opt_float(o2, "lr") == 0.30000000000000004 && cai_opt_float(o2, "shift") == 1e-300,
		  "exact doubles");
	cai_free(js);
	cai_options_free(o);
	cai_options_free(o2);
	CHECK(cai_options_to_json(NULL) == NULL, "NULL");

	/* null is the "no value" of a string option without default */
	o2 = OK("{\"label\": null}");
	CHECK(o2 != NULL && cai_opt_string(o2, "label") == NULL && cai_opt_is_set(o2, "label"), "label null");
	cai_options_free(o2);
}

/* An allocator that fails after a budget of allocations. */
static int	alloc_budget;

static void *
failing_alloc(void *ctx, size_t size)
{
	(void) ctx;
	if (alloc_budget-- <= 0)
		return NULL;
	return malloc(size);
}

static void
plain_free(void *ctx, void *p)
{
	(void) ctx;
	free(p);
}

static void
test_nomem(void)
{
	cai_allocator a = {failing_alloc, plain_free, NULL};
	cai_status	st = CAI_OK;
	cai_options *o = NULL;
	int			budget;

	cai_set_allocator(&a);
	for (budget = 0; budget < 20; budget++)
	{
		alloc_budget = budget;
		st = cai_options_parse(defs, n_defs, "{\"label\": \"x\", \"mode\": \"accurate\"}", &o, NULL);
		if (st == CAI_OK)
			break;
		CHECK(st == CAI_ERR_NOMEM && o == NULL, "budget %d: %d", budget, st);
	}
	CHECK(st == CAI_OK && budget > 2, "succeeds with enough memory (%d)", budget);
	alloc_budget = 0;
	CHECK(cai_options_to_json(o) == NULL, "to_json out of memory");
	cai_set_allocator(NULL);
	cai_options_free(o);
}

int
main(void)
{
	test_defaults();
	test_values();
	test_errors();
	test_bad_tables();
	test_valid_keys();
	test_round_trip();
	test_nomem();
	return check_summary("test_options");
}
