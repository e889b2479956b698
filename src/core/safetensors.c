/*
 * safetensors.c: the safetensors reader (the checks are listed in
 * safetensors.h).
 *
 * json-c keeps the last of two equal keys, so duplicates are found by
 * counting the members of the header's top-level object in the raw text
 * (one ':' outside strings at depth 1 per member) and comparing with the
 * object json-c built.
 */
#include "cai/safetensors.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

struct cai_safetensors
{
	cai_st_tensor *tensors;		/* sorted by name */
	size_t		n;
	char	   *names;			/* every name, NUL-terminated */
	char	  **meta;			/* key, value, key, value, ... sorted by key */
	size_t		n_meta;
};

static const struct
{
	const char *name;
	size_t		size;
}			dtypes[CAI_ST_N_DTYPES] = {
	[CAI_ST_F32] = {"F32", 4},
	[CAI_ST_F16] = {"F16", 2},
	[CAI_ST_BF16] = {"BF16", 2},
	[CAI_ST_F64] = {"F64", 8},
	[CAI_ST_I64] = {"I64", 8},
	[CAI_ST_I32] = {"I32", 4},
	[CAI_ST_I16] = {"I16", 2},
	[CAI_ST_I8] = {"I8", 1},
	[CAI_ST_U64] = {"U64", 8},
	[CAI_ST_U32] = {"U32", 4},
	[CAI_ST_U16] = {"U16", 2},
	[CAI_ST_U8] = {"U8", 1},
	[CAI_ST_BOOL] = {"BOOL", 1},
	[CAI_ST_F8_E4M3] = {"F8_E4M3", 1},
	[CAI_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *
cai_st_dtype_name(cai_st_dtype d)
{
	return (int) d >= 0 && d < CAI_ST_N_DTYPES ? dtypes[d].name : "?";
}

void
cai_safetensors_free(cai_safetensors *st)
{
	if (st == NULL)
		return;
	cai_free(st->tensors);
	cai_free(st->names);
	if (st->meta != NULL)
		for (size_t i = 0; i < 2 * st->n_meta; i++)
			cai_free(st->meta[i]);
	cai_free(st->meta);
	cai_free(st);
}

/* Members of the top-level object of a JSON text known to be valid. */
static size_t
count_top_members(const char *s, size_t n)
{
	size_t		members = 0;
	int			depth = 0;
	bool		in_str = false;

	for (size_t i = 0; i < n; i++)
	{
		char		c = s[i];

		if (in_str)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"')
			in_str = true;
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']')
			depth--;
		else if (c == ':' && depth == 1)
			members++;
	}
	return members;
}

/* A non-negative JSON integer into *v; false otherwise. */
static bool
json_uint(json_object *o, uint64_t *v)
{
	if (!json_object_is_type(o, json_type_int))
		return false;
	if (json_object_get_int64(o) < 0)
		return false;
	*v = json_object_get_uint64(o);
	return true;
}

static int
cmp_tensor_name(const void *a, const void *b)
{
	return strcmp(((const cai_st_tensor *) a)->name, ((const cai_st_tensor *) b)->name);
}

static int
cmp_tensor_offset(const void *a, const void *b)
{
	const cai_st_tensor *x = *(const cai_st_tensor *const *) a;
	const cai_st_tensor *y = *(const cai_st_tensor *const *) b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	/* empty tensors first at an offset, so a tiling stays a tiling */
	if (x->nbytes != y->nbytes)
		return x->nbytes < y->nbytes ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
cmp_meta(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Check one tensor entry and fill t (name already set). */
static cai_status
parse_tensor(json_object *info, const unsigned char *data, size_t data_len, cai_st_tensor *t, cai_error *err)
{
	json_object *dt;
	json_object *shape;
	json_object *offs;
	const char *dname;
	uint64_t	begin;
	uint64_t	end;
	size_t		nbytes;
	size_t		ndim;
	int			d;

	if (!json_object_is_type(info, json_type_object))
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\": entry is not an object", t->name);
	if (!json_object_object_get_ex(info, "dtype", &dt) || !json_object_is_type(dt, json_type_string))
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\": dtype missing or not a string", t->name);
	dname = json_object_get_string(dt);
	for (d = 0; d < CAI_ST_N_DTYPES; d++)
		if (strcmp(dname, dtypes[d].name) == 0)
			break;
	if (d == CAI_ST_N_DTYPES)
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\": unknown dtype \"%.16s\"", t->name, dname);
	t->dtype = (cai_st_dtype) d;

	if (!json_object_object_get_ex(info, "shape", &shape) || !json_object_is_type(shape, json_type_array))
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\": shape missing or not an array", t->name);
	ndim = json_object_array_length(shape);
	if (ndim > CAI_ST_MAX_DIMS)
		return cai_error_set(err, CAI_ERR_LIMIT, "tensor \"%.64s\": %zu dimensions, more than %d",
							 t->name, ndim, CAI_ST_MAX_DIMS);
	t->ndim = (int) ndim;
	t->n_elements = 1;
	nbytes = dtypes[d].size;
	for (size_t i = 0; i < ndim; i++)
	{
		uint64_t	dim;

		if (!json_uint(json_object_array_get_idx(shape, i), &dim) || dim > (uint64_t) INT64_MAX)
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\": dimension %zu is not a non-negative integer",
								 t->name, i + 1);
		t->shape[i] = (int64_t) dim;
		if (dim > SIZE_MAX || !cai_size_mul(nbytes, (size_t) dim, &nbytes))
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\": the shape's size overflows", t->name);
		t->n_elements *= dim;	/* <= nbytes, no overflow */
	}

	if (!json_object_object_get_ex(info, "data_offsets", &offs) || !json_object_is_type(offs, json_type_array) ||
		json_object_array_length(offs) != 2 ||
		!json_uint(json_object_array_get_idx(offs, 0), &begin) ||
		!json_uint(json_object_array_get_idx(offs, 1), &end))
		return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\": data_offsets is not two non-negative integers",
							 t->name);
	if (begin > end || end > data_len)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor \"%.64s\": data_offsets [%llu, %llu] outside the data buffer of %zu bytes",
							 t->name, (unsigned long long) begin, (unsigned long long) end, data_len);
	if (end - begin != nbytes)
		return cai_error_set(err, CAI_ERR_FORMAT,
							 "tensor \"%.64s\": %llu bytes, but its shape and dtype %s need %zu",
							 t->name, (unsigned long long) (end - begin), dtypes[d].name, nbytes);
	t->offset = (size_t) begin;
	t->nbytes = nbytes;
	t->data = data + begin;
	return CAI_OK;
}

static cai_status
parse_metadata(cai_safetensors *st, json_object *meta, cai_error *err)
{
	size_t		n;
	size_t		i = 0;

	if (!json_object_is_type(meta, json_type_object))
		return cai_error_set(err, CAI_ERR_FORMAT, "__metadata__ is not an object");
	n = (size_t) json_object_object_length(meta);
	if (n == 0)
		return CAI_OK;
	st->meta = cai_calloc(2 * n, sizeof(char *));
	if (st->meta == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the metadata");
	json_object_object_foreach(meta, key, val)
	{
		if (!json_object_is_type(val, json_type_string))
			return cai_error_set(err, CAI_ERR_FORMAT, "__metadata__ \"%.64s\" is not a string", key);
		st->meta[2 * i] = cai_strndup(key, strlen(key));
		st->meta[2 * i + 1] = cai_strndup(json_object_get_string(val), (size_t) json_object_get_string_len(val));
		st->n_meta = ++i;
		if (st->meta[2 * i - 2] == NULL || st->meta[2 * i - 1] == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the metadata");
	}
	qsort(st->meta, st->n_meta, 2 * sizeof(char *), cmp_meta);
	return CAI_OK;
}

/* Parse the header JSON into root (a new reference). */
static cai_status
parse_header_json(const char *h, size_t n, json_object **root, cai_error *err)
{
	json_tokener *tok;
	enum json_tokener_error jerr;
	size_t		where;
	const char *nul;

	*root = NULL;
	if (n == 0 || h[0] != '{')
		return cai_error_set(err, CAI_ERR_FORMAT, "header does not begin with '{'");
	nul = memchr(h, '\0', n);
	if (nul != NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "header contains a NUL byte at offset %zu", (size_t) (nul - h));
	tok = json_tokener_new_ex(8);
	if (tok == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory parsing the header");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	*root = json_tokener_parse_ex(tok, h, (int) n);
	jerr = json_tokener_get_error(tok);
	where = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (*root == NULL || jerr != json_tokener_success)
	{
		json_object_put(*root);
		*root = NULL;
		return cai_error_set(err, CAI_ERR_FORMAT, "header is not valid JSON: %s (near byte %zu)",
							 jerr == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(jerr), where);
	}
	for (size_t i = where; i < n; i++)
		if (h[i] != ' ')
		{
			json_object_put(*root);
			*root = NULL;
			return cai_error_set(err, CAI_ERR_FORMAT, "header has bytes other than spaces after its JSON (at byte %zu)", i);
		}
	if (!json_object_is_type(*root, json_type_object))
	{
		json_object_put(*root);
		*root = NULL;
		return cai_error_set(err, CAI_ERR_FORMAT, "header is not a JSON object");
	}
	return CAI_OK;
}

cai_status
cai_safetensors_parse(const void *buf, size_t len, cai_safetensors **out, cai_error *err)
{
	const unsigned char *b = buf;
	uint64_t	hlen = 0;
	const unsigned char *data;
	size_t		data_len;
	json_object *root = NULL;
	json_object *meta = NULL;
	cai_safetensors *st = NULL;
	cai_st_tensor **order = NULL;
	size_t		n_members;
	size_t		n_tensors;
	size_t		names_len = 0;
	size_t		k = 0;
	cai_status	rc;

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "out must not be NULL");
	*out = NULL;
	if (buf == NULL && len > 0)
		return cai_error_set(err, CAI_ERR_INVALID, "buffer is NULL");
	if (len < 8)
		return cai_error_set(err, CAI_ERR_FORMAT, "file of %zu bytes is shorter than the 8-byte header length", len);
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | b[i];
	if (hlen > CAI_ST_MAX_HEADER)
		return cai_error_set(err, CAI_ERR_LIMIT, "header length %llu exceeds the limit of %d bytes",
							 (unsigned long long) hlen, CAI_ST_MAX_HEADER);
	if (hlen > len - 8)
		return cai_error_set(err, CAI_ERR_FORMAT, "header length %llu exceeds the %zu bytes after it",
							 (unsigned long long) hlen, len - 8);
	data = b + 8 + hlen;
	data_len = len - 8 - (size_t) hlen;

	rc = parse_header_json((const char *) b + 8, (size_t) hlen, &root, err);
	if (rc != CAI_OK)
		return rc;
	n_members = (size_t) json_object_object_length(root);
	if (count_top_members((const char *) b + 8, (size_t) hlen) != n_members)
	{
		json_object_put(root);
		return cai_error_set(err, CAI_ERR_FORMAT, "header names a tensor twice (%zu entries, %zu distinct)",
							 count_top_members((const char *) b + 8, (size_t) hlen), n_members);
	}
	n_tensors = n_members - (json_object_object_get_ex(root, "__metadata__", &meta) ? 1 : 0);
	if (n_tensors > CAI_ST_MAX_TENSORS)
	{
		json_object_put(root);
		return cai_error_set(err, CAI_ERR_LIMIT, "%zu tensors, more than %d", n_tensors, CAI_ST_MAX_TENSORS);
	}

	st = cai_calloc(1, sizeof(*st));
	if (st == NULL)
	{
		json_object_put(root);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the tensor table");
	}
	json_object_object_foreach(root, key0, val0)
	{
		(void) val0;
		if (strcmp(key0, "__metadata__") != 0)
			names_len += strlen(key0) + 1;	/* keys are short: within the header */
	}
	st->tensors = cai_calloc(n_tensors > 0 ? n_tensors : 1, sizeof(cai_st_tensor));
	st->names = cai_malloc(names_len > 0 ? names_len : 1);
	order = cai_calloc(n_tensors > 0 ? n_tensors : 1, sizeof(cai_st_tensor *));
	if (st->tensors == NULL || st->names == NULL || order == NULL)
	{
		rc = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for %zu tensors", n_tensors);
		goto fail;
	}
	names_len = 0;
	json_object_object_foreach(root, key, val)
	{
		cai_st_tensor *t;
		size_t		kl = strlen(key);

		if (strcmp(key, "__metadata__") == 0)
			continue;
		t = &st->tensors[k];
		memcpy(st->names + names_len, key, kl + 1);
		t->name = st->names + names_len;
		names_len += kl + 1;
		if ((rc = parse_tensor(val, data, data_len, t, err)) != CAI_OK)
			goto fail;
		order[k] = t;
		k++;
	}
	st->n = k;
	if (meta != NULL && (rc = parse_metadata(st, meta, err)) != CAI_OK)
		goto fail;

	/* the tensors tile the data buffer */
	qsort(order, k, sizeof(cai_st_tensor *), cmp_tensor_offset);
	{
		size_t		at = 0;

		for (size_t i = 0; i < k; i++)
		{
			if (order[i]->offset != at)
			{
				rc = order[i]->offset > at ?
					cai_error_set(err, CAI_ERR_FORMAT, "data buffer has %zu unused bytes before tensor \"%.64s\" at %zu",
								  order[i]->offset - at, order[i]->name, order[i]->offset) :
					cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%.64s\" overlaps tensor \"%.64s\"",
								  order[i]->name, order[i - 1]->name);
				goto fail;
			}
			at += order[i]->nbytes;
		}
		if (at != data_len)
		{
			rc = cai_error_set(err, CAI_ERR_FORMAT, "data buffer has %zu unused bytes at its end", data_len - at);
			goto fail;
		}
	}
	/* sort by name last: order points into st->tensors */
	cai_free(order);
	order = NULL;
	qsort(st->tensors, k, sizeof(cai_st_tensor), cmp_tensor_name);
	for (size_t i = 1; i < k; i++)
		if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
		{
			/* distinct JSON keys equal up to an escaped NUL */
			rc = cai_error_set(err, CAI_ERR_FORMAT, "header names tensor \"%.64s\" twice", st->tensors[i].name);
			goto fail;
		}
	json_object_put(root);
	*out = st;
	return CAI_OK;

fail:
	cai_free(order);
	json_object_put(root);
	cai_safetensors_free(st);
	return rc;
}

size_t
cai_safetensors_count(const cai_safetensors *st)
{
	return st == NULL ? 0 : st->n;
}

const cai_st_tensor *
cai_safetensors_tensor(const cai_safetensors *st, size_t i)
{
	return st == NULL || i >= st->n ? NULL : &st->tensors[i];
}

const cai_st_tensor *
cai_safetensors_find(const cai_safetensors *st, const char *name)
{
	cai_st_tensor key;

	if (st == NULL || name == NULL || st->n == 0)
		return NULL;
	key.name = name;
	return bsearch(&key, st->tensors, st->n, sizeof(cai_st_tensor), cmp_tensor_name);
}

const char *
cai_safetensors_metadata(const cai_safetensors *st, const char *key)
{
	char	  **hit;

	if (st == NULL || key == NULL || st->n_meta == 0)
		return NULL;
	hit = bsearch(&key, st->meta, st->n_meta, 2 * sizeof(char *), cmp_meta);
	return hit == NULL ? NULL : hit[1];
}

/* IEEE half to float, exactly. */
static float
half_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h >> 15) << 31;
	uint32_t	exp = (h >> 10) & 0x1F;
	uint32_t	man = h & 0x3FF;
	uint32_t	bits;
	float		f;

	if (exp == 0x1F)
		bits = sign | 0x7F800000u | (man << 13);	/* infinity, NaN (payload kept) */
	else if (exp != 0)
		bits = sign | ((exp + 112) << 23) | (man << 13);
	else if (man == 0)
		bits = sign;
	else
	{
		/* subnormal: normalize */
		int			e = -1;

		do
		{
			e++;
			man <<= 1;
		} while ((man & 0x400) == 0);
		bits = sign | ((uint32_t) (112 - e) << 23) | ((man & 0x3FF) << 13);
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

cai_status
cai_safetensors_to_f32(const cai_st_tensor *t, float *out, size_t n, cai_error *err)
{
	const unsigned char *p;

	if (t == NULL || (out == NULL && n > 0))
		return cai_error_set(err, CAI_ERR_INVALID, "tensor and out must not be NULL");
	if (t->dtype != CAI_ST_F32 && t->dtype != CAI_ST_F16 && t->dtype != CAI_ST_BF16)
		return cai_error_set(err, CAI_ERR_INVALID, "tensor \"%.64s\": unsupported dtype %s (F32, F16 and BF16 are)",
							 t->name, cai_st_dtype_name(t->dtype));
	if (n != t->n_elements)
		return cai_error_set(err, CAI_ERR_INVALID, "tensor \"%.64s\" has %llu elements, not %zu",
							 t->name, (unsigned long long) t->n_elements, n);
	p = t->data;
	for (size_t i = 0; i < n; i++)
	{
		uint32_t	bits;

		switch (t->dtype)
		{
			case CAI_ST_F32:
				bits = (uint32_t) p[4 * i] | ((uint32_t) p[4 * i + 1] << 8) |
					((uint32_t) p[4 * i + 2] << 16) | ((uint32_t) p[4 * i + 3] << 24);
				memcpy(&out[i], &bits, sizeof(float));
				break;
			case CAI_ST_F16:
				out[i] = half_to_float((uint16_t) (p[2 * i] | (p[2 * i + 1] << 8)));
				break;
			default:			/* BF16 */
				bits = ((uint32_t) p[2 * i] << 16) | ((uint32_t) p[2 * i + 1] << 24);
				memcpy(&out[i], &bits, sizeof(float));
				break;
		}
	}
	return CAI_OK;
}
