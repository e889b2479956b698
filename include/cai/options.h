/*
 * options.h: one table of option name, type, default, bounds and help both
 * registers defaults and validates user options (as CRFsuite and fastText do).
 *
 * Users pass a JSON object (jsonb in SQL).  Unknown keys, wrong types and
 * out-of-range values are rejected with CAI_ERR_INVALID and a message that
 * names the key and, for an unknown key, lists the valid ones.
 */
#ifndef CAI_OPTIONS_H
#define CAI_OPTIONS_H

#include "cai/common.h"

typedef enum cai_opt_type
{
	CAI_OPT_INT,
	CAI_OPT_FLOAT,
	CAI_OPT_BOOL,
	CAI_OPT_STRING				/* choices: '|'-separated list in `choices`, or NULL for any */
} cai_opt_type;

/*
 * How automatic tuning (tune.h) searches an option by default: not at all,
 * uniformly in [min, max], or uniformly in log space (min > 0).  An
 * architecture declares its default search space here, beside the option's
 * default and bounds; the tuner needs nothing else per architecture.  For the
 * option "epochs" (the resource of successive halving) the range is that of
 * the trials' epochs: the cheapest trials run min, the longest max.
 */
typedef enum cai_tune_scale
{
	CAI_TUNE_NONE = 0,
	CAI_TUNE_LINEAR,
	CAI_TUNE_LOG
} cai_tune_scale;

typedef struct cai_opt_tune
{
	cai_tune_scale scale;
	double		min;			/* within the option's bounds */
	double		max;
} cai_opt_tune;

typedef struct cai_opt_def
{
	const char *name;
	cai_opt_type type;
	const char *def;			/* default as text: "10", "0.1", "true", "fast";
								 * NULL only for STRING (no value) */
	double		min;			/* bounds for INT/FLOAT (inclusive) */
	double		max;
	const char *choices;		/* for STRING: "fast|accurate", NULL = any text */
	const char *help;
	cai_opt_tune tune;			/* default search range; {0} = not searched */
} cai_opt_def;

typedef struct cai_opt_value
{
	bool		set_by_user;
	int64_t		i;
	double		f;
	bool		b;
	char	   *s;				/* cai_malloc'ed copy */
} cai_opt_value;

typedef struct cai_options
{
	const cai_opt_def *defs;
	int			n;
	cai_opt_value *values;		/* n entries, parallel to defs */
} cai_options;

/*
 * Parse a JSON object text against defs (n entries).  NULL, "" or blank json
 * means all defaults.  On success *out is allocated with cai_malloc.
 *
 * Rules: the text must be one JSON value (UTF-8, nothing after it) and an
 * object; every key must name a def; INT takes JSON integers and doubles
 * with an integral value ("1.0", "1e3"); FLOAT takes any finite number;
 * BOOL only true/false; STRING only strings (no NUL), one of the
 * '|'-separated choices when given; null is rejected except for a STRING
 * without default (def NULL), where it means no value; bounds are inclusive.
 * A repeated key keeps its last value (json-c's behaviour).
 * Errors are CAI_ERR_INVALID with messages such as
 *   option "epochs" must be between 1 and 1000, got 0
 *   unknown option "foo", valid options are: epochs, lr, ...
 * (the list is cut to fit; cai_options_valid_keys gives all of it, for an
 * errhint).  A bad def table (bad or out-of-range default, NULL or repeated
 * name, min > max) is CAI_ERR_INTERNAL.
 */
cai_status	cai_options_parse(const cai_opt_def *defs, int n, const char *json,
							  cai_options **out, cai_error *err);
void		cai_options_free(cai_options *o);

/*
 * Write the option names of defs as "a, b, c" into buf (cap bytes,
 * NUL-terminated, truncated to fit); returns the length of the full list,
 * like snprintf.
 */
size_t		cai_options_valid_keys(const cai_opt_def *defs, int n, char *buf, size_t cap);

/*
 * The same list cut to whole names, ending in "..." when it does not fit in
 * cap bytes (for an error message); returns the length written.
 */
size_t		cai_options_valid_keys_fit(const cai_opt_def *defs, int n, char *buf, size_t cap);

/*
 * Typed getters; the name must be in the table (else 0 / false / NULL).
 * cai_opt_int on a FLOAT option truncates, cai_opt_float on an INT option
 * converts; other type mismatches give 0 / false / NULL.
 */
int64_t		cai_opt_int(const cai_options *o, const char *name);
double		cai_opt_float(const cai_options *o, const char *name);
bool		cai_opt_bool(const cai_options *o, const char *name);
const char *cai_opt_string(const cai_options *o, const char *name);
bool		cai_opt_is_set(const cai_options *o, const char *name);

/*
 * The seed of the validation split: the option "validation_seed" when the
 * table has it and it is not -1, else "seed".  With it, trainings that differ
 * only in seed hold out the same rows (cai_tune's "seeds" trials).
 */
uint64_t	cai_opt_split_seed(const cai_options *o);

/*
 * The effective options as a JSON object text (cai_malloc'ed, NULL when out
 * of memory), for metadata: every def in table order, INT as an integer,
 * FLOAT as a number that reads back to the same double (always with a '.' or
 * an exponent), BOOL as true/false, STRING as a string or null.
 */
char	   *cai_options_to_json(const cai_options *o);

#endif							/* CAI_OPTIONS_H */
