/*
 * modelutil.c: helpers shared by the model modules.  See modelutil.h.
 */
#include "modelutil.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "vectorize.h"

double
cai_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/*
 * An infinity or a NaN has every exponent bit set.  The bits of a block are
 * tested without an early exit, so the loop vectorizes; the answer is the
 * same as isfinite's on every element.
 */
CAI_VECTORIZE static bool
all_finite_kernel(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i += 4096)
	{
		size_t		end = n - i > 4096 ? i + 4096 : n;
		uint32_t	bad = 0;

		for (size_t j = i; j < end; j++)
		{
			uint32_t	u;

			memcpy(&u, x + j, sizeof(u));
			bad |= (uint32_t) ((u & 0x7f800000u) == 0x7f800000u);
		}
		if (bad != 0)
			return false;
	}
	return true;
}

bool
cai_all_finite(const float *x, size_t n)
{
	return all_finite_kernel(x, n);
}

bool
cai_grow_array(void **p, size_t elem, size_t old_n, size_t new_n)
{
	void	   *q;
	size_t		ob,
				nb;

	if (!cai_size_mul(elem, old_n, &ob) || !cai_size_mul(elem, new_n, &nb))
		return false;
	q = cai_realloc(*p, ob, nb);
	if (q == NULL)
		return false;
	*p = q;
	return true;
}

bool
cai_json_put(json_object *obj, const char *key, json_object *val)
{
	if (val == NULL)
		return false;
	if (json_object_object_add(obj, key, val) != 0)
	{
		json_object_put(val);
		return false;
	}
	return true;
}

json_object *
cai_json_parse_object(const char *s)
{
	json_object *o = s != NULL ? json_tokener_parse(s) : NULL;

	if (o != NULL && !json_object_is_type(o, json_type_object))
	{
		json_object_put(o);
		return NULL;
	}
	return o;
}

cai_status
cai_json_get_int(json_object *obj, const char *section, const char *key,
				 int64_t min, int64_t max, int64_t *out, cai_error *err)
{
	json_object *v;
	int64_t		x;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks integer \"%s.%s\"", section, key);
	x = json_object_get_int64(v);
	if (x < min || x > max)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "model metadata \"%s.%s\" is %" PRId64 " (must be %" PRId64 " to %" PRId64 ")",
							 section, key, x, min, max);
	*out = x;
	return CAI_OK;
}
