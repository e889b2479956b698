/*
 * common.c: errors, allocator hook, hashing, RNG.
 */
#include "cai/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif


cai_status
cai_error_set(cai_error *err, cai_status st, const char *fmt,...)
{
	if (err != NULL)
	{
		va_list		ap;

		err->status = st;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return st;
}

const char *
cai_status_name(cai_status st)
{
	switch (st)
	{
		case CAI_OK:
			return "ok";
		case CAI_ERR_NOMEM:
			return "out of memory";
		case CAI_ERR_INVALID:
			return "invalid argument";
		case CAI_ERR_FORMAT:
			return "malformed model";
		case CAI_ERR_CHECKSUM:
			return "checksum mismatch";
		case CAI_ERR_VERSION:
			return "unsupported format version";
		case CAI_ERR_LIMIT:
			return "limit exceeded";
		case CAI_ERR_CANCELLED:
			return "cancelled";
		case CAI_ERR_NUMERIC:
			return "numeric error";
		case CAI_ERR_INTERNAL:
			return "internal error";
		case CAI_ERR_SYSTEM:
			return "system error";
	}
	return "unknown status";
}

static void *
default_alloc(void *ctx, size_t size)
{
	(void) ctx;
	return malloc(size);
}

static void
default_free(void *ctx, void *ptr)
{
	(void) ctx;
	free(ptr);
}

static cai_allocator allocator = {default_alloc, default_free, NULL};

void
cai_set_allocator(const cai_allocator *a)
{
	if (a == NULL)
	{
		allocator.alloc = default_alloc;
		allocator.free = default_free;
		allocator.ctx = NULL;
	}
	else
		allocator = *a;
}

static __thread bool on_pool_thread = false;

void
cai_pool_thread_enter(void)
{
	on_pool_thread = true;
}

bool
cai_on_pool_thread(void)
{
	return on_pool_thread;
}

#ifdef CAI_CHECK_POOL_ALLOC
static void
pool_alloc_violation(const char *what, size_t size)
{
	fprintf(stderr, "cai: %s(%zu) on a pool thread: pool threads must use preallocated work buffers\n",
			what, size);
	abort();
}
#define CHECK_POOL_ALLOC(what, size) \
	do { if (on_pool_thread) pool_alloc_violation((what), (size)); } while (0)
#else
#define CHECK_POOL_ALLOC(what, size) ((void) 0)
#endif

void *
cai_malloc(size_t size)
{
	CHECK_POOL_ALLOC("cai_malloc", size);
	if (size == 0)
		return NULL;
	return allocator.alloc(allocator.ctx, size);
}

void *
cai_calloc(size_t n, size_t size)
{
	size_t		total;
	void	   *p;

	if (!cai_size_mul(n, size, &total) || total == 0)
		return NULL;
	p = cai_malloc(total);
	if (p != NULL)
		memset(p, 0, total);
	return p;
}

void *
cai_realloc(void *ptr, size_t old_size, size_t new_size)
{
	void	   *p = cai_malloc(new_size);

	if (p == NULL)
		return NULL;
	if (ptr != NULL)
	{
		memcpy(p, ptr, old_size < new_size ? old_size : new_size);
		cai_free(ptr);
	}
	return p;
}

void
cai_free(void *ptr)
{
	if (ptr == NULL)
		return;
	CHECK_POOL_ALLOC("cai_free", (size_t) 0);
	if (ptr != NULL)
		allocator.free(allocator.ctx, ptr);
}

/*
 * See common.h.  Linux: an anonymous mapping of whole 2 MB pages, aligned to
 * 2 MB (a larger mapping with the slack before and after unmapped), marked
 * MADV_HUGEPAGE before anything touches it, so that its first writes fault
 * in transparent huge pages where the kernel allows them (mode "madvise" or
 * "always"); mappings are zero.  It bypasses the allocator hook: it is for
 * arrays whose owner frees them on every path (the core never jumps out of
 * its frames; a process that dies returns its mappings).
 */
#define CAI_HUGE_PAGE ((size_t) 2 << 20)

void *
cai_calloc_large(size_t n, size_t size, size_t *mapped)
{
	size_t		total;

	*mapped = 0;
	if (!cai_size_mul(n, size, &total) || total == 0)
		return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
	if (total >= CAI_HUGE_PAGE && total <= SIZE_MAX - 2 * CAI_HUGE_PAGE)
	{
		size_t		len = (total + CAI_HUGE_PAGE - 1) & ~(CAI_HUGE_PAGE - 1);
		char	   *m = mmap(NULL, len + CAI_HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char	   *p;
		size_t		head;

		if (m == MAP_FAILED)
			return NULL;
		p = (char *) (((uintptr_t) m + CAI_HUGE_PAGE - 1) & ~(uintptr_t) (CAI_HUGE_PAGE - 1));
		head = (size_t) (p - m);
		if (head > 0)
			munmap(m, head);
		munmap(p + len, CAI_HUGE_PAGE - head);	/* head < CAI_HUGE_PAGE: never empty */
		(void) madvise(p, len, MADV_HUGEPAGE);	/* advice: without it, 4 kB pages */
		*mapped = len;
		return p;
	}
#endif
	return cai_calloc(n, size);
}

void
cai_free_large(void *ptr, size_t mapped)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
	if (ptr != NULL && mapped > 0)
	{
		munmap(ptr, mapped);
		return;
	}
#endif
	cai_free(ptr);
}

char *
cai_strndup(const char *s, size_t n)
{
	char	   *p = cai_malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

bool
cai_size_mul(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

bool
cai_size_add(size_t a, size_t b, size_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

uint64_t
cai_hash_bytes(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t	h = 14695981039346656037ULL ^ seed;

	for (size_t i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	/* final avalanche (splitmix64 finalizer) so low bits are well mixed */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
cai_rng_seed(cai_rng *r, uint64_t seed)
{
	uint64_t	x = seed;

	r->s[0] = splitmix64(&x);
	r->s[1] = splitmix64(&x);
	if (r->s[0] == 0 && r->s[1] == 0)
		r->s[1] = 1;
}

uint64_t
cai_rng_u64(cai_rng *r)
{
	return cai_rng_u64_inline(r);
}

uint32_t
cai_rng_below(cai_rng *r, uint32_t n)
{
	if (n == 0)
		return 0;
	return (uint32_t) (((cai_rng_u64(r) >> 32) * (uint64_t) n) >> 32);
}

float
cai_rng_uniform(cai_rng *r)
{
	return cai_rng_uniform_inline(r);
}

float
cai_rng_normal(cai_rng *r)
{
	/* Box-Muller; one value per call keeps the stream simple to reason about */
	double		u1 = ((cai_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
	double		u2 = (cai_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);

	return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void
cai_rng_shuffle(cai_rng *r, int32_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--)
	{
		size_t		j = cai_rng_below(r, (uint32_t) i);
		int32_t		t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}

/*
 * MD5 (RFC 1321), for the provenance of models trained with a vector set:
 * the server records the set's bytes by PostgreSQL's md5, and the cai
 * command must record the same digest.  Not for security.
 */
static const int md5_shift[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

static void
md5_block(uint32_t h[4], const uint32_t k[64], const uint8_t *p)
{
	uint32_t	m[16];
	uint32_t	a = h[0],
				b = h[1],
				c = h[2],
				d = h[3];

	for (int i = 0; i < 16; i++)
		m[i] = (uint32_t) p[4 * i] | (uint32_t) p[4 * i + 1] << 8 |
			(uint32_t) p[4 * i + 2] << 16 | (uint32_t) p[4 * i + 3] << 24;
	for (int i = 0; i < 64; i++)
	{
		uint32_t	f;
		int			g;
		int			s = md5_shift[i / 16][i % 4];
		uint32_t	t;

		switch (i / 16)
		{
			case 0:
				f = (b & c) | (~b & d);
				g = i;
				break;
			case 1:
				f = (d & b) | (~d & c);
				g = (5 * i + 1) % 16;
				break;
			case 2:
				f = b ^ c ^ d;
				g = (3 * i + 5) % 16;
				break;
			default:
				f = c ^ (b | ~d);
				g = (7 * i) % 16;
				break;
		}
		t = a + f + k[i] + m[g];
		a = d;
		d = c;
		c = b;
		b = b + ((t << s) | (t >> (32 - s)));
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
}

void
cai_md5_hex(const void *data, size_t len, char out[33])
{
	const uint8_t *p = data;
	uint32_t	h[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
	uint8_t		tail[128] = {0};
	size_t		rest = len % 64;
	size_t		tail_len = rest < 56 ? 64 : 128;
	uint64_t	bits = (uint64_t) len * 8;
	uint32_t	k[64];

	/* the constants are floor(|sin(i + 1)| * 2^32), exact in double precision */
	for (int i = 0; i < 64; i++)
		k[i] = (uint32_t) (fabs(sin((double) (i + 1))) * 4294967296.0);
	for (size_t off = 0; off + 64 <= len; off += 64)
		md5_block(h, k, p + off);
	memcpy(tail, p + (len - rest), rest);
	tail[rest] = 0x80;
	for (int i = 0; i < 8; i++)
		tail[tail_len - 8 + i] = (uint8_t) (bits >> (8 * i));
	md5_block(h, k, tail);
	if (tail_len == 128)
		md5_block(h, k, tail + 64);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", (unsigned) (h[i / 4] >> (8 * (i % 4))) & 0xffu);
}
