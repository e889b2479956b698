/*
 * options.c: parse and validate user options (a JSON object) against one
 * table of option definitions, and write the effective options back as JSON.
 *
 * JSON is read with json-c (its own malloc; every json-c object is released
 * before returning).  Everything returned to the caller is cai_malloc'ed.
 */
#include "cai/options.h"

#include <errno.h>
#include <stddef.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* Longest piece of user text (a key, a value) quoted in an error message. */
#define CLIP_MAX 48

/* Doubles at or beyond +-2^63 do not fit an int64. */
#define INT64_LIMIT 9223372036854775808.0

/*
 * Copy s into buf (CLIP_MAX + 4 bytes), cut at a UTF-8 boundary with "..."
 * when longer than CLIP_MAX bytes, so messages stay short and valid UTF-8.
 */
static const char *
clip(const char *s, char *buf)
{
	size_t		n = strlen(s);

	if (n <= CLIP_MAX)
		return s;
	n = CLIP_MAX;
	while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
		n--;
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

/* The JSON text of a value, for "got ..." in messages. */
static const char *
json_text(json_object *v, char *buf)
{
	const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
												   JSON_C_TO_STRING_NOSLASHESCAPE);

	return clip(s != NULL ? s : "?", buf);
}

static int
find_def(const cai_opt_def *defs, int n, const char *name)
{
	if (defs == NULL || name == NULL)
		return -1;
	for (int i = 0; i < n; i++)
		if (defs[i].name != NULL && strcmp(defs[i].name, name) == 0)
			return i;
	return -1;
}

/* Is s[0..len) one of the '|'-separated choices? */
static bool
in_choices(const char *choices, const char *s, size_t len)
{
	const char *p = choices;

	for (;;)
	{
		const char *bar = strchr(p, '|');
		size_t		n = bar != NULL ? (size_t) (bar - p) : strlen(p);

		if (n == len && memcmp(p, s, len) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

/* Largest bound that still means "unbounded above" for this type. */
static bool
bound_open_high(const cai_opt_def *d)
{
	return d->type == CAI_OPT_INT ? d->max >= INT64_LIMIT - 1024.0 : d->max >= DBL_MAX;
}

static bool
bound_open_low(const cai_opt_def *d)
{
	return d->type == CAI_OPT_INT ? d->min <= -INT64_LIMIT : d->min <= -DBL_MAX;
}

static void
format_bound(const cai_opt_def *d, double v, char *buf, size_t cap)
{
	if (d->type == CAI_OPT_INT && fabs(v) < INT64_LIMIT)
		snprintf(buf, cap, "%lld", (long long) v);
	else
		snprintf(buf, cap, "%.15g", v);
}

/* The "out of bounds" error for option d and the value text got. */
static cai_status
bounds_error(const cai_opt_def *d, const char *got, cai_error *err)
{
	char		lo[40];
	char		hi[40];
	char		nb[CLIP_MAX + 4];

	format_bound(d, d->min, lo, sizeof(lo));
	format_bound(d, d->max, hi, sizeof(hi));
	if (bound_open_high(d) && !bound_open_low(d))
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be at least %s, got %s",
							 clip(d->name, nb), lo, got);
	if (bound_open_low(d) && !bound_open_high(d))
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be at most %s, got %s",
							 clip(d->name, nb), hi, got);
	if (bound_open_low(d) && bound_open_high(d))
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" is out of range, got %s",
							 clip(d->name, nb), got);
	return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be between %s and %s, got %s",
						 clip(d->name, nb), lo, hi, got);
}

static bool
in_bounds(const cai_opt_def *d, double v)
{
	return v >= d->min && v <= d->max;
}

/* Store an integer value (already checked). */
static void
set_int(cai_opt_value *v, int64_t i)
{
	v->i = i;
	v->f = (double) i;
}

/* Store a finite double value; i is its truncation, clamped to int64. */
static void
set_float(cai_opt_value *v, double f)
{
	v->f = f;
	if (f >= INT64_LIMIT)
		v->i = INT64_MAX;
	else if (f <= -INT64_LIMIT)
		v->i = INT64_MIN;
	else
		v->i = (int64_t) f;
}

static cai_status
set_string(cai_opt_value *v, const char *s, size_t len, cai_error *err)
{
	char	   *copy = cai_strndup(s, len);

	if (copy == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for an option value");
	cai_free(v->s);
	v->s = copy;
	return CAI_OK;
}

/* Check one def and store its default into v; a bad table is a bug. */
static cai_status
set_default(const cai_opt_def *d, cai_opt_value *v, cai_error *err)
{
	const char *t = d->def;
	char	   *end;

	if (d->type != CAI_OPT_STRING && t == NULL)
		return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has no default", d->name);
	switch (d->type)
	{
		case CAI_OPT_INT:
			{
				long long	i;

				if (!(d->min <= d->max))
					return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has bad bounds", d->name);
				errno = 0;
				i = strtoll(t, &end, 10);
				if (errno != 0 || end == t || *end != '\0' || !in_bounds(d, (double) i))
					return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has a bad default \"%s\"",
										 d->name, t);
				set_int(v, (int64_t) i);
				return CAI_OK;
			}
		case CAI_OPT_FLOAT:
			{
				double		f;

				if (!(d->min <= d->max))
					return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has bad bounds", d->name);
				errno = 0;
				f = strtod(t, &end);
				if (errno != 0 || end == t || *end != '\0' || !isfinite(f) || !in_bounds(d, f))
					return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has a bad default \"%s\"",
										 d->name, t);
				set_float(v, f);
				return CAI_OK;
			}
		case CAI_OPT_BOOL:
			if (strcmp(t, "true") == 0)
				v->b = true;
			else if (strcmp(t, "false") == 0)
				v->b = false;
			else
				return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has a bad default \"%s\"",
									 d->name, t);
			return CAI_OK;
		case CAI_OPT_STRING:
			if (t == NULL)
				return CAI_OK;	/* no value */
			if (d->choices != NULL && !in_choices(d->choices, t, strlen(t)))
				return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has a bad default \"%s\"",
									 d->name, t);
			return set_string(v, t, strlen(t), err);
	}
	return cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" has an unknown type", d->name);
}

/* "a, b, c" from "a|b|c", cut with "..." to fit buf (cap >= 8). */
static void
format_choices(const char *choices, char *buf, size_t cap)
{
	size_t		o = 0;
	const char *p;

	for (p = choices; *p != '\0' && o + 6 < cap; p++)
	{
		if (*p == '|')
		{
			buf[o++] = ',';
			buf[o++] = ' ';
		}
		else
			buf[o++] = *p;
	}
	if (*p != '\0')
	{
		/* do not cut a UTF-8 sequence (no '|' expansion lies inside one) */
		while (o > 0 && ((unsigned char) *p & 0xC0) == 0x80)
		{
			o--;
			p--;
		}
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

/* Validate one user value v for def d and store it into out. */
static cai_status
apply_value(const cai_opt_def *d, json_object *v, cai_opt_value *out, cai_error *err)
{
	enum json_type jt = json_object_get_type(v);
	char		got[CLIP_MAX + 4];
	char		nb[CLIP_MAX + 4];
	const char *name = clip(d->name, nb);

	switch (d->type)
	{
		case CAI_OPT_INT:
			if (jt == json_type_int)
			{
				int64_t		i = json_object_get_int64(v);
				bool		too_big = i == INT64_MAX &&
					json_object_get_uint64(v) > (uint64_t) INT64_MAX;

				if (too_big && bound_open_high(d))
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" is too large, got %s",
										 name, json_text(v, got));
				if (too_big || !in_bounds(d, (double) i))
					return bounds_error(d, json_text(v, got), err);
				set_int(out, i);
			}
			else if (jt == json_type_double)
			{
				double		f = json_object_get_double(v);

				if (!isfinite(f) || f != floor(f))
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be an integer, got %s",
										 name, json_text(v, got));
				if (f >= INT64_LIMIT && bound_open_high(d))
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" is too large, got %s",
										 name, json_text(v, got));
				if (!in_bounds(d, f) || f >= INT64_LIMIT || f < -INT64_LIMIT)
					return bounds_error(d, json_text(v, got), err);
				set_int(out, (int64_t) f);
			}
			else
				return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be an integer, got %s",
									 name, json_text(v, got));
			break;
		case CAI_OPT_FLOAT:
			{
				double		f;

				if (jt != json_type_int && jt != json_type_double)
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be a number, got %s",
										 name, json_text(v, got));
				f = json_object_get_double(v);
				if (jt == json_type_int && json_object_get_int64(v) == INT64_MAX)
					f = (double) json_object_get_uint64(v);
				if (!isfinite(f))
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be a finite number, got %s",
										 name, json_text(v, got));
				if (!in_bounds(d, f))
					return bounds_error(d, json_text(v, got), err);
				set_float(out, f);
			}
			break;
		case CAI_OPT_BOOL:
			if (jt != json_type_boolean)
				return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be true or false, got %s",
									 name, json_text(v, got));
			out->b = json_object_get_boolean(v) != 0;
			break;
		case CAI_OPT_STRING:
			{
				const char *s;
				size_t		len;
				cai_status	st;

				if (jt == json_type_null && d->def == NULL)
				{
					/* no value, as the default */
					cai_free(out->s);
					out->s = NULL;
					break;
				}
				if (jt != json_type_string)
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be a string, got %s",
										 name, json_text(v, got));
				s = json_object_get_string(v);
				len = (size_t) json_object_get_string_len(v);
				if (strlen(s) != len)
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must not contain NUL characters",
										 name);
				if (d->choices != NULL && !in_choices(d->choices, s, len))
				{
					char		list[96];

					format_choices(d->choices, list, sizeof(list));
					return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\" must be one of %s, got %s",
										 name, list, json_text(v, got));
				}
				if ((st = set_string(out, s, len, err)) != CAI_OK)
					return st;
			}
			break;
	}
	out->set_by_user = true;
	return CAI_OK;
}

size_t
cai_options_valid_keys(const cai_opt_def *defs, int n, char *buf, size_t cap)
{
	size_t		total = 0;
	size_t		at = 0;			/* bytes written to buf */

	for (int i = 0; defs != NULL && i < n; i++)
	{
		const char *name = defs[i].name != NULL ? defs[i].name : "";
		const char *parts[2] = {i > 0 ? ", " : "", name};

		for (int k = 0; k < 2; k++)
		{
			size_t		len = strlen(parts[k]);

			total += len;
			if (buf != NULL && cap > 0 && at < cap - 1)
			{
				size_t		take = len < cap - 1 - at ? len : cap - 1 - at;

				memcpy(buf + at, parts[k], take);
				at += take;
			}
		}
	}
	if (buf != NULL && cap > 0)
		buf[at] = '\0';
	return total;
}

/* See options.h. */
size_t
cai_options_valid_keys_fit(const cai_opt_def *defs, int n, char *buf, size_t cap)
{
	size_t		len = 0;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	if (cai_options_valid_keys(defs, n, NULL, 0) < cap)
		return cai_options_valid_keys(defs, n, buf, cap);
	/* whole names while they fit, then "..." */
	for (int i = 0; i < n; i++)
	{
		const char *name = defs[i].name;
		size_t		need = strlen(name) + (i > 0 ? 2 : 0);

		if (len + need + 5 >= cap)
			break;
		len += (size_t) snprintf(buf + len, cap - len, "%s%s", i > 0 ? ", " : "", name);
	}
	if (len + 5 < cap)
		len += (size_t) snprintf(buf + len, cap - len, "%s...", len > 0 ? ", " : "");
	return len;
}

/* The unknown-key error: the name and as many valid keys as fit. */
static cai_status
unknown_key_error(const cai_opt_def *defs, int n, const char *key, cai_error *err)
{
	char		kb[CLIP_MAX + 4];
	char		msg[CAI_ERRMSG_MAX];
	size_t		len;

	len = (size_t) snprintf(msg, sizeof(msg), "unknown option \"%s\", valid options are: ", clip(key, kb));
	if (len >= sizeof(msg))
		len = sizeof(msg) - 1;
	if (n == 0)
		snprintf(msg, sizeof(msg), "unknown option \"%s\", this function takes no options", clip(key, kb));
	else
		cai_options_valid_keys_fit(defs, n, msg + len, sizeof(msg) - len);
	return cai_error_set(err, CAI_ERR_INVALID, "%s", msg);
}

/*
 * Offset of the first byte of s that is not strict UTF-8 (json-c's own check
 * lets overlong forms and surrogates through), or -1 when all is valid.
 */
static ptrdiff_t
invalid_utf8_at(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p != '\0')
	{
		unsigned int c = *p;
		unsigned int lo = 0x80;
		unsigned int hi = 0xBF;
		int			n;

		if (c < 0x80)
		{
			p++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 2;
		else if (c >= 0xE0 && c <= 0xEF)
		{
			n = 3;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			n = 4;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		}
		else
			return (const char *) p - s;
		if (p[1] < lo || p[1] > hi)
			return (const char *) p - s;
		for (int k = 2; k < n; k++)
			if ((p[k] & 0xC0) != 0x80)
				return (const char *) p - s;
		p += n;
	}
	return -1;
}

static bool
is_blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

/* Parse json and apply every key to o. */
static cai_status
apply_json(cai_options *o, const char *json, cai_error *err)
{
	json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	size_t		len = strlen(json);
	cai_status	st = CAI_OK;
	ptrdiff_t	bad;

	bad = invalid_utf8_at(json);
	if (bad >= 0)
		return cai_error_set(err, CAI_ERR_INVALID, "options are not valid UTF-8 at byte %td", bad);

	tok = json_tokener_new();
	if (tok == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory parsing options");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* include the terminating NUL so a bare number at the end is complete */
	root = json_tokener_parse_ex(tok, json, (int) (len < (size_t) INT32_MAX ? len + 1 : (size_t) INT32_MAX));
	jerr = json_tokener_get_error(tok);
	if (jerr != json_tokener_success)
	{
		size_t		at = json_tokener_get_parse_end(tok);

		json_object_put(root);
		json_tokener_free(tok);
		if (len >= (size_t) INT32_MAX)
			return cai_error_set(err, CAI_ERR_INVALID, "options are too long");
		return cai_error_set(err, CAI_ERR_INVALID, "options are not valid JSON: %s at byte %zu",
							 json_tokener_error_desc(jerr), at);
	}
	json_tokener_free(tok);

	if (root == NULL || !json_object_is_type(root, json_type_object))	/* NULL: null */
	{
		json_object_put(root);
		return cai_error_set(err, CAI_ERR_INVALID, "options must be a JSON object");
	}

	{
		json_object_object_foreach(root, key, val)
		{
			int			i = find_def(o->defs, o->n, key);

			if (i < 0)
				st = unknown_key_error(o->defs, o->n, key, err);
			else
				st = apply_value(&o->defs[i], val, &o->values[i], err);
			if (st != CAI_OK)
				break;
		}
	}
	json_object_put(root);
	return st;
}

cai_status
cai_options_parse(const cai_opt_def *defs, int n, const char *json,
				  cai_options **out, cai_error *err)
{
	cai_options *o;
	cai_status	st = CAI_OK;

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "out must not be NULL");
	*out = NULL;
	if (n < 0 || (n > 0 && defs == NULL))
		return cai_error_set(err, CAI_ERR_INTERNAL, "invalid option table");

	o = cai_calloc(1, sizeof(cai_options));
	if (o == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for options");
	o->defs = defs;
	o->n = n;
	if (n > 0)
	{
		o->values = cai_calloc((size_t) n, sizeof(cai_opt_value));
		if (o->values == NULL)
		{
			cai_free(o);
			return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for options");
		}
	}

	for (int i = 0; i < n && st == CAI_OK; i++)
	{
		if (defs[i].name == NULL)
			st = cai_error_set(err, CAI_ERR_INTERNAL, "option %d has no name", i);
		else if (find_def(defs, i, defs[i].name) >= 0)
			st = cai_error_set(err, CAI_ERR_INTERNAL, "option \"%s\" is defined twice", defs[i].name);
		else
			st = set_default(&defs[i], &o->values[i], err);
	}
	if (st == CAI_OK && json != NULL && !is_blank(json))
		st = apply_json(o, json, err);
	if (st != CAI_OK)
	{
		cai_options_free(o);
		return st;
	}
	*out = o;
	return CAI_OK;
}

void
cai_options_free(cai_options *o)
{
	if (o == NULL)
		return;
	for (int i = 0; o->values != NULL && i < o->n; i++)
		cai_free(o->values[i].s);
	cai_free(o->values);
	cai_free(o);
}

static const cai_opt_value *
lookup(const cai_options *o, const char *name, const cai_opt_def **def)
{
	int			i;

	if (o == NULL)
		return NULL;
	i = find_def(o->defs, o->n, name);
	if (i < 0)
		return NULL;
	*def = &o->defs[i];
	return &o->values[i];
}

int64_t
cai_opt_int(const cai_options *o, const char *name)
{
	const cai_opt_def *d = NULL;
	const cai_opt_value *v = lookup(o, name, &d);

	if (v == NULL || (d->type != CAI_OPT_INT && d->type != CAI_OPT_FLOAT))
		return 0;
	return v->i;
}

double
cai_opt_float(const cai_options *o, const char *name)
{
	const cai_opt_def *d = NULL;
	const cai_opt_value *v = lookup(o, name, &d);

	if (v == NULL || (d->type != CAI_OPT_INT && d->type != CAI_OPT_FLOAT))
		return 0.0;
	return v->f;
}

bool
cai_opt_bool(const cai_options *o, const char *name)
{
	const cai_opt_def *d = NULL;
	const cai_opt_value *v = lookup(o, name, &d);

	return v != NULL && d->type == CAI_OPT_BOOL && v->b;
}

const char *
cai_opt_string(const cai_options *o, const char *name)
{
	const cai_opt_def *d = NULL;
	const cai_opt_value *v = lookup(o, name, &d);

	if (v == NULL || d->type != CAI_OPT_STRING)
		return NULL;
	return v->s;
}

bool
cai_opt_is_set(const cai_options *o, const char *name)
{
	const cai_opt_def *d = NULL;
	const cai_opt_value *v = lookup(o, name, &d);

	return v != NULL && v->set_by_user;
}

uint64_t
cai_opt_split_seed(const cai_options *o)
{
	const cai_opt_def *d = NULL;
	const cai_opt_value *v = lookup(o, "validation_seed", &d);

	if (v != NULL && d->type == CAI_OPT_INT && v->i >= 0)
		return (uint64_t) v->i;
	return (uint64_t) cai_opt_int(o, "seed");
}

/* Shortest "%.Ng" text that reads back as f, always looking like a double. */
static void
format_double(double f, char *buf, size_t cap)
{
	for (int prec = 15; prec <= 17; prec++)
	{
		snprintf(buf, cap, "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	if (strpbrk(buf, ".eE") == NULL)
	{
		size_t		n = strlen(buf);

		if (n + 2 < cap)
			memcpy(buf + n, ".0", 3);
	}
}

char *
cai_options_to_json(const cai_options *o)
{
	json_object *obj;
	const char *text;
	char	   *result = NULL;
	bool		ok = true;

	if (o == NULL)
		return NULL;
	obj = json_object_new_object();
	if (obj == NULL)
		return NULL;
	for (int i = 0; i < o->n && ok; i++)
	{
		const cai_opt_def *d = &o->defs[i];
		const cai_opt_value *v = &o->values[i];
		json_object *jv = NULL;
		char		num[40];

		switch (d->type)
		{
			case CAI_OPT_INT:
				jv = json_object_new_int64(v->i);
				break;
			case CAI_OPT_FLOAT:
				format_double(v->f, num, sizeof(num));
				jv = json_object_new_double_s(v->f, num);
				break;
			case CAI_OPT_BOOL:
				jv = json_object_new_boolean(v->b);
				break;
			case CAI_OPT_STRING:
				jv = v->s != NULL ? json_object_new_string(v->s) : json_object_new_null();
				break;
		}
		/* json_object_new_null() is NULL itself: only a string can fail */
		if (jv == NULL && !(d->type == CAI_OPT_STRING && v->s == NULL))
			ok = false;
		else if (json_object_object_add(obj, d->name, jv) != 0)
		{
			json_object_put(jv);
			ok = false;
		}
	}
	if (ok)
	{
		text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		if (text != NULL)
			result = cai_strndup(text, strlen(text));
	}
	json_object_put(obj);
	return result;
}
