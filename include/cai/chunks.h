/*
 * chunks.h: entity tags and chunks for sequence labelling.
 *
 * A tag is "O" or a prefix letter, '-', and a non-empty type: "B-PER",
 * "I-ORG.NAM", "E-x", "S-LOC".  Prefixes B, I, E, S are known; which ones
 * are valid depends on the scheme (IOB1 and IOB2 use B and I, BIOES all
 * four).
 *
 * Chunks are found with the rules of conlleval (the CoNLL shared-task
 * script, in the form that also knows BIOES, as in its Python port): a
 * chunk ends before the current tag when the previous one was E or S, when
 * B or I is followed by B, S or O, or when the type changes; a chunk starts
 * at B or S, at I or E after O, E or S, and at any type change.  So a stray
 * I-X after O or after another type starts a chunk, "B-PER B-PER" is two
 * chunks, and IOB1, IOB2 and BIOES sequences are all read correctly.
 *
 * Types are compared as exact byte strings; callers map them to small
 * integers (cai_strtab) and pass prefixes and type ids.
 */
#ifndef CAI_CHUNKS_H
#define CAI_CHUNKS_H

#include "cai/common.h"

#define CAI_TAG_TYPE_MAX 128	/* longest entity type, bytes */

typedef enum cai_chunk_scheme
{
	CAI_SCHEME_IOB1 = 0,		/* I-X inside chunks, B-X only between two chunks of one type */
	CAI_SCHEME_IOB2 = 1,		/* B-X at every chunk start (BIO) */
	CAI_SCHEME_BIOES = 2		/* B-X I-X.. E-X, and S-X for one token */
} cai_chunk_scheme;

/* "iob1", "iob2", "bioes" */
const char *cai_chunk_scheme_name(cai_chunk_scheme s);

/*
 * Parse a NUL-terminated tag.  On success *prefix is 'O', 'B', 'I', 'E' or
 * 'S' and *type / *type_len the type (NULL / 0 for "O").  Returns false for
 * anything else: an unknown prefix ("X-PER", "L-PER"), a missing '-', an
 * empty type ("B-"), a type longer than CAI_TAG_TYPE_MAX bytes, or NULL.
 */
bool		cai_tag_parse(const char *tag, char *prefix, const char **type, size_t *type_len);

/*
 * conlleval's rules on (prefix, type id) pairs; the sentence boundary is
 * prefix 'O' on either side.  Type ids of 'O' are ignored.
 */
bool		cai_chunk_ends(char prev, int32_t prev_type, char cur, int32_t cur_type);
bool		cai_chunk_starts(char prev, int32_t prev_type, char cur, int32_t cur_type);

/* One chunk: tokens [start, end) of type. */
typedef struct cai_chunk
{
	int32_t		start;
	int32_t		end;
	int32_t		type;
} cai_chunk;

/*
 * Chunks of one sentence of n tags, in order, into out (room for n chunks:
 * there are never more).  Returns the number of chunks.
 */
size_t		cai_chunks_extract(const char *prefix, const int32_t *type, size_t n, cai_chunk *out);

/*
 * Count gold, predicted and correct (same span and type) chunks of one
 * sentence, without allocating; the counts are added to *gold, *pred and
 * *correct.
 */
void		cai_chunks_count(const char *gprefix, const int32_t *gtype,
							 const char *pprefix, const int32_t *ptype, size_t n,
							 int64_t *gold, int64_t *pred, int64_t *correct);

/*
 * Guess the scheme of n_sent sentences (offsets (n_sent + 1)) of parsed
 * tags: BIOES when any E or S occurs; otherwise IOB1 when I-X starts chunks
 * (after O, another type or at the sentence start) more often than B-X
 * does, else IOB2.
 */
cai_chunk_scheme cai_chunk_scheme_detect(const char *prefix, const int32_t *type,
										 const int64_t *offsets, size_t n_sent);

/*
 * Tags of a scheme for chunks of a sentence of n tokens: prefix (n) and
 * type (n) get 'O' / -1 outside chunks.  BIOES: S for one-token chunks,
 * else B I.. E; IOB2: B I..; IOB1: I.., B only at the start of a chunk that
 * follows a chunk of the same type.  Chunks must be in order and disjoint
 * within [0, n).
 */
void		cai_chunks_to_tags(const cai_chunk *chunks, size_t n_chunks, size_t n,
							   cai_chunk_scheme scheme, char *prefix, int32_t *type);

/* ---------------------------------------------------------------------
 * String table: interns byte strings as ids 0, 1, 2, ... in first-seen
 * order (open addressing on a hash of its own, never stored).  The strings are copied into
 * one growing arena; cai_strtab_str() returns a NUL-terminated view.
 */
typedef struct cai_strtab
{
	int32_t		n;				/* strings */
	int32_t		cap;			/* id capacity */
	uint32_t	mask;			/* slots - 1 */
	uint64_t   *slots;			/* (mask + 1) high 32 hash bits | id; all ones: empty */
	uint64_t   *hash;			/* (cap) */
	int64_t    *off;			/* (cap + 1) arena offset of each string */
	char	   *arena;			/* strings, each NUL-terminated */
	size_t		arena_cap;
	size_t		arena_len;
} cai_strtab;

cai_status	cai_strtab_init(cai_strtab *t, int32_t expected, cai_error *err);
void		cai_strtab_free(cai_strtab *t);	/* safe on a zeroed struct */

/* Id of s[0..len), -1 if absent. */
int32_t		cai_strtab_find(const cai_strtab *t, const char *s, size_t len);

/* Id of s[0..len), added if absent (*added tells, may be NULL). */
cai_status	cai_strtab_intern(cai_strtab *t, const char *s, size_t len, int32_t *id,
							  bool *added, cai_error *err);

const char *cai_strtab_str(const cai_strtab *t, int32_t id);
size_t		cai_strtab_len(const cai_strtab *t, int32_t id);
size_t		cai_strtab_memory(const cai_strtab *t);

#endif							/* CAI_CHUNKS_H */
