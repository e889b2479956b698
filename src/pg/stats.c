/*
 * stats.c: per-model prediction counts and time, for the cai_model_stats view.
 *
 * Each backend (and parallel worker) counts in its loaded model (rows scored
 * and nanoseconds spent in the inference functions, CaiStatsBegin/End) and
 * adds the counts to a table shared by every process at the end of each
 * transaction.  PostgreSQL 15 gives an extension that is not in
 * shared_preload_libraries no named shared memory, so the table is a file in
 * $PGDATA/pg_dynshmem (as the shared model copies are, cache.c), mapped
 * read-write by every process that reports or reads: a fixed array of slots,
 * each claimed once by compare-and-swap for (database, model name, version)
 * and then only added to with atomic operations.  Nothing takes a lock, so
 * nothing can deadlock or block a query; a slot's key is written before the
 * slot is published (write barrier), so a reader never sees half a key.  Two
 * processes that claim a slot for the same key at the same moment may each
 * get one: the view sums them.  The file is named by the server lifetime
 * (counts start at zero after a restart, like pg_stat_statements without its
 * dump file); a table that is full drops further models' counts and counts the
 * drops.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "cai_pg.h"

#define CAI_STATS_SLOTS		1024
#define CAI_STATS_PREFIX	"cai_stats."
#define CAI_STATS_FREE		0
#define CAI_STATS_CLAIMED	1
#define CAI_STATS_READY		2

typedef struct CaiStatsSlot
{
	pg_atomic_uint32 state;
	Oid			db;
	int32		version;
	uint64		hash;
	char		name[CAI_MODEL_NAME_MAX + 1];
	pg_atomic_uint64 rows;
	pg_atomic_uint64 ns;
	pg_atomic_uint64 last;		/* µs since the PostgreSQL epoch of the last report */
	pg_atomic_uint64 reset;		/* µs since the PostgreSQL epoch of the last reset (0: lifetime start) */
} CaiStatsSlot;

typedef struct CaiStatsFile
{
	pg_atomic_uint64 dropped;	/* reports lost to a full table */
	CaiStatsSlot slots[CAI_STATS_SLOTS];
} CaiStatsFile;

static CaiStatsFile *stats = NULL;
static bool stats_failed = false;	/* could not map: stop trying in this process */

/* Remove the tables of earlier server lifetimes (best effort). */
static void
CaiStatsRemoveOld(const char *keep)
{
	char	   *dirpath = psprintf("%s/pg_dynshmem", DataDir);
	DIR		   *dir = opendir(dirpath);
	struct dirent *de;

	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL)
		if (strncmp(de->d_name, CAI_STATS_PREFIX, strlen(CAI_STATS_PREFIX)) == 0 && strcmp(de->d_name, keep) != 0)
		{
			char	   *p = psprintf("%s/%s", dirpath, de->d_name);

			(void) unlink(p);
			pfree(p);
		}
	closedir(dir);
}

/* The shared table, mapped on first use; NULL if it cannot be (counts are then dropped). */
static CaiStatsFile *
CaiStatsMap(void)
{
	char		fname[64];
	char	   *path;
	int			fd;
	struct stat st;
	void	   *p;

	if (stats != NULL || stats_failed)
		return stats;
	stats_failed = true;
	snprintf(fname, sizeof(fname), CAI_STATS_PREFIX INT64_FORMAT, (int64) PgStartTime);
	path = psprintf("%s/pg_dynshmem/%s", DataDir, fname);
	fd = open(path, O_RDWR | O_CREAT | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0 || fstat(fd, &st) != 0)
	{
		if (fd >= 0)
			close(fd);
		elog(DEBUG1, "cai_synergy: cannot open the statistics file \"%s\": %m", path);
		return NULL;
	}
	if (st.st_size < (off_t) sizeof(CaiStatsFile))
	{
		/* new (or being created by another process: growing to the same size is harmless); zero-filled */
		if (ftruncate(fd, sizeof(CaiStatsFile)) != 0)
		{
			close(fd);
			elog(DEBUG1, "cai_synergy: cannot size the statistics file \"%s\": %m", path);
			return NULL;
		}
		CaiStatsRemoveOld(fname);
	}
	p = mmap(NULL, sizeof(CaiStatsFile), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
	{
		elog(DEBUG1, "cai_synergy: cannot map the statistics file \"%s\": %m", path);
		return NULL;
	}
	stats = (CaiStatsFile *) p;
	stats_failed = false;
	return stats;
}

/* The slot of (this database, name, version), claimed if new; NULL when the table is full. */
static CaiStatsSlot *
CaiStatsSlotFor(CaiStatsFile *f, const char *name, int32 version)
{
	uint64		h = cai_hash_bytes(name, strlen(name), ((uint64) MyDatabaseId << 32) ^ (uint32) version);

	for (int probe = 0; probe < CAI_STATS_SLOTS; probe++)
	{
		CaiStatsSlot *s = &f->slots[(h + probe) % CAI_STATS_SLOTS];
		uint32		state = pg_atomic_read_u32(&s->state);

		if (state == CAI_STATS_FREE)
		{
			uint32		expected = CAI_STATS_FREE;

			if (pg_atomic_compare_exchange_u32(&s->state, &expected, CAI_STATS_CLAIMED))
			{
				s->db = MyDatabaseId;
				s->version = version;
				s->hash = h;
				strlcpy(s->name, name, sizeof(s->name));
				pg_write_barrier();
				pg_atomic_write_u32(&s->state, CAI_STATS_READY);
				return s;
			}
			state = expected;
		}
		if (state == CAI_STATS_READY)
		{
			pg_read_barrier();
			if (s->hash == h && s->db == MyDatabaseId && s->version == version && strcmp(s->name, name) == 0)
				return s;
		}
		/* another key, or one being claimed right now: the next slot */
	}
	return NULL;
}

/* Add a model's counts since its last report to the shared table (never raises an error). */
void
CaiStatsReport(CaiLoadedModel *m)
{
	CaiStatsFile *f;
	CaiStatsSlot *s;

	if (m == NULL || m->stat_rows == 0)
		return;
	f = CaiStatsMap();
	if (f != NULL)
	{
		s = CaiStatsSlotFor(f, m->name, m->version);
		if (s == NULL)
			pg_atomic_fetch_add_u64(&f->dropped, 1);
		else
		{
			pg_atomic_fetch_add_u64(&s->rows, m->stat_rows);
			pg_atomic_fetch_add_u64(&s->ns, m->stat_ns);
			pg_atomic_write_u64(&s->last, (uint64) GetCurrentTimestamp());
		}
	}
	m->stat_rows = 0;
	m->stat_ns = 0;
}

/* cai_model_stats_rows(): this database's slots. */
PG_FUNCTION_INFO_V1(cai_model_stats_rows);
Datum
cai_model_stats_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CaiStatsFile *f;

	InitMaterializedSRF(fcinfo, 0);
	CaiStatsFlushAll();			/* this backend's own counts first */
	f = CaiStatsMap();
	if (f == NULL)
		return (Datum) 0;
	for (int i = 0; i < CAI_STATS_SLOTS; i++)
	{
		CaiStatsSlot *s = &f->slots[i];
		Datum		values[6];
		bool		nulls[6] = {false};
		uint64		last,
					reset;

		if (pg_atomic_read_u32(&s->state) != CAI_STATS_READY)
			continue;
		pg_read_barrier();
		if (s->db != MyDatabaseId)
			continue;
		last = pg_atomic_read_u64(&s->last);
		reset = pg_atomic_read_u64(&s->reset);
		values[0] = CStringGetTextDatum(s->name);
		values[1] = Int32GetDatum(s->version);
		values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&s->rows));
		values[3] = Float8GetDatum((double) pg_atomic_read_u64(&s->ns) / 1e6);
		values[4] = TimestampTzGetDatum((TimestampTz) last);
		nulls[4] = last == 0;
		values[5] = TimestampTzGetDatum(reset != 0 ? (TimestampTz) reset : PgStartTime);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* cai_model_stats_reset(): zero this database's counts. */
PG_FUNCTION_INFO_V1(cai_model_stats_reset);
Datum
cai_model_stats_reset(PG_FUNCTION_ARGS)
{
	CaiStatsFile *f = CaiStatsMap();
	uint64		now = (uint64) GetCurrentTimestamp();

	CaiStatsFlushAll();
	if (f == NULL)
		PG_RETURN_VOID();
	for (int i = 0; i < CAI_STATS_SLOTS; i++)
	{
		CaiStatsSlot *s = &f->slots[i];

		if (pg_atomic_read_u32(&s->state) != CAI_STATS_READY)
			continue;
		pg_read_barrier();
		if (s->db != MyDatabaseId)
			continue;
		pg_atomic_write_u64(&s->rows, 0);
		pg_atomic_write_u64(&s->ns, 0);
		pg_atomic_write_u64(&s->last, 0);
		pg_atomic_write_u64(&s->reset, now);
	}
	PG_RETURN_VOID();
}
