/*
 * modelutil.h: small helpers the model modules (text classification, NER,
 * the registry in model.c) and the report builders (metrics.c, chunks.c)
 * share: wall-clock time, finiteness checks, growing arrays and building or
 * reading the JSON of model metadata.
 *
 * Internal header of the core, beside its sources: neither the SQL layer
 * nor a user of include/cai/ sees it.
 */
#ifndef CAI_MODELUTIL_H
#define CAI_MODELUTIL_H

#include "cai/common.h"

struct json_object;

/* Monotonic clock in seconds (for timings and time budgets only, never in features). */
double		cai_now_seconds(void);

/* True when none of the n floats of x is NaN or infinite. */
bool		cai_all_finite(const float *x, size_t n);

/*
 * Resize the array *p from old_n to new_n elements of elem bytes
 * (cai_realloc; contents kept).  false on overflow or out of memory, *p
 * then unchanged.
 */
bool		cai_grow_array(void **p, size_t elem, size_t old_n, size_t new_n);

/*
 * Add val to obj under key, taking ownership of val: on failure (val NULL,
 * or json-c refuses) val is released.  false on failure.
 */
bool		cai_json_put(struct json_object *obj, const char *key, struct json_object *val);

/* Parse JSON text into an object; NULL if s is NULL, not JSON or not an object. */
struct json_object *cai_json_parse_object(const char *s);

/*
 * Read the integer member key of the metadata object obj (the "section"
 * object of a model's metadata, named in errors as "section.key") into *out;
 * CAI_ERR_FORMAT when it is missing, not an integer or outside [min, max].
 */
cai_status	cai_json_get_int(struct json_object *obj, const char *section, const char *key,
							 int64_t min, int64_t max, int64_t *out, cai_error *err);

#endif							/* CAI_MODELUTIL_H */
