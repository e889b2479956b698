/*
 * common.h: status codes, errors, allocator hook, hashing, RNG and BLAS
 * thread control shared by every module of the PostgreSQL-free core.
 *
 * The core never prints, exits or aborts.  Every fallible function returns a
 * cai_status and, when given a cai_error, fills it with a one-line message.
 * The PostgreSQL layer turns these into ereport()s.
 */
#ifndef CAI_COMMON_H
#define CAI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAI_VERSION_STRING "0.2.0"

typedef enum cai_status
{
	CAI_OK = 0,
	CAI_ERR_NOMEM,				/* allocation failed or was refused */
	CAI_ERR_INVALID,			/* bad argument or option value */
	CAI_ERR_FORMAT,				/* model bytes are malformed */
	CAI_ERR_CHECKSUM,			/* model bytes fail the checksum */
	CAI_ERR_VERSION,			/* unsupported model format version */
	CAI_ERR_LIMIT,				/* a configured limit would be exceeded */
	CAI_ERR_CANCELLED,			/* the progress callback asked to stop */
	CAI_ERR_NUMERIC,			/* NaN or infinity appeared */
	CAI_ERR_INTERNAL,			/* a bug: impossible state */
	CAI_ERR_SYSTEM				/* the system refused (a shared library could not be loaded) */
} cai_status;

#define CAI_ERRMSG_MAX 256

typedef struct cai_error
{
	cai_status	status;
	char		msg[CAI_ERRMSG_MAX];	/* lower case, no period */
} cai_error;

/* Fill err (may be NULL) and return st. */
cai_status	cai_error_set(cai_error *err, cai_status st, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
const char *cai_status_name(cai_status st);

/*
 * Allocator hook.  Defaults to malloc/free.  The server installs one backed
 * by a memory context that returns NULL (not longjmp) on failure.
 */
typedef struct cai_allocator
{
	void	   *(*alloc) (void *ctx, size_t size);
	void		(*free) (void *ctx, void *ptr);
	void	   *ctx;
} cai_allocator;

void		cai_set_allocator(const cai_allocator *a);	/* NULL = malloc */
void	   *cai_malloc(size_t size);	/* NULL on failure or size 0 */
void	   *cai_calloc(size_t n, size_t size);	/* zeroed, overflow-checked */
void	   *cai_realloc(void *ptr, size_t old_size, size_t new_size);
void		cai_free(void *ptr);	/* NULL allowed */
char	   *cai_strndup(const char *s, size_t n);
/*
 * Large arrays read at random (the fast trainer's embeddings): zeroed, on
 * Linux in memory the kernel may back with 2 MB transparent huge pages (far
 * fewer TLB misses), elsewhere or below 2 MB from cai_calloc.  *mapped is the
 * size to give cai_free_large (0 when it came from cai_calloc).
 */
void	   *cai_calloc_large(size_t n, size_t size, size_t *mapped);
void		cai_free_large(void *ptr, size_t mapped);

/*
 * Pool threads (the worker threads the core starts for data-parallel
 * training) must never allocate or free through the hook: in the server it
 * points at PostgreSQL memory contexts, which are not thread-safe.  Each pool
 * thread calls cai_pool_thread_enter() first.  Builds with
 * CAI_CHECK_POOL_ALLOC defined (core.mk: unit tests and the sanitizer build)
 * make cai_malloc / cai_free on such a thread print the call and abort, so a
 * missed work buffer fails the threaded tests loudly.
 */
void		cai_pool_thread_enter(void);
bool		cai_on_pool_thread(void);

/* Overflow-checked size arithmetic: false on overflow. */
bool		cai_size_mul(size_t a, size_t b, size_t *out);
bool		cai_size_add(size_t a, size_t b, size_t *out);

/* 64-bit FNV-1a style hash of bytes, seedable. */
uint64_t	cai_hash_bytes(const void *data, size_t len, uint64_t seed);

/* MD5 of data as 32 lowercase hex digits and a NUL (PostgreSQL's md5()); not for security */
void		cai_md5_hex(const void *data, size_t len, char out[33]);

/* Deterministic RNG (xoshiro128+-like, splitmix64 seeding). */
typedef struct cai_rng
{
	uint64_t	s[2];
} cai_rng;

void		cai_rng_seed(cai_rng *r, uint64_t seed);

/*
 * xorshift128+: cai_rng_u64's step, inline for loops that draw millions of
 * numbers (a call each cost more than the step); the same numbers.
 */
static inline uint64_t
cai_rng_u64_inline(cai_rng *r)
{
	uint64_t	s1 = r->s[0];
	const uint64_t s0 = r->s[1];
	const uint64_t result = s0 + s1;

	r->s[0] = s0;
	s1 ^= s1 << 23;
	r->s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
	return result;
}

/* cai_rng_uniform inline (the same numbers). */
static inline float
cai_rng_uniform_inline(cai_rng *r)
{
	return (float) (cai_rng_u64_inline(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t	cai_rng_u64(cai_rng *r);
uint32_t	cai_rng_below(cai_rng *r, uint32_t n);	/* uniform in [0, n) */
float		cai_rng_uniform(cai_rng *r);	/* uniform in [0, 1) */
float		cai_rng_normal(cai_rng *r); /* standard normal */
void		cai_rng_shuffle(cai_rng *r, int32_t *a, size_t n);

/*
 * OpenBLAS threads, set explicitly (never inherited; 1 until set).  n < 1
 * means 1.  OpenBLAS is opened on first use (src/core/blas.h); the count is
 * applied then.
 */
void		cai_blas_set_threads(int n);
int			cai_blas_get_threads(void);

/*
 * Progress and cancellation: training calls this between steps (at least
 * every few hundred milliseconds).  Return false to cancel; the trainer then
 * returns CAI_ERR_CANCELLED.
 */
typedef struct cai_progress
{
	int			epoch;			/* 1-based, 0 before the first epoch ends */
	int			epochs;
	double		fraction;		/* overall progress in [0, 1] */
	double		loss;			/* mean training loss of the last epoch */
	double		val_score;		/* validation score of the last epoch */
	double		rows_per_sec;
	bool		epoch_done;		/* true exactly once at the end of an epoch */
} cai_progress;

typedef bool (*cai_progress_fn) (void *ctx, const cai_progress *p);

#endif							/* CAI_COMMON_H */
