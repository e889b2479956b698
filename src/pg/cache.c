/*
 * cache.c: one shared copy of each model version for all processes.
 *
 * PostgreSQL 15 offers no named shared memory to an extension that is not
 * preloaded, so the shared copy is a file in $PGDATA/pg_dynshmem (the
 * directory PostgreSQL uses for its own file-backed dynamic shared memory,
 * excluded from base backups): the first process that needs a model version
 * writes its validated bytes there (atomically, by rename), and every process,
 * parallel workers included, maps the same file read-only.  The kernel page
 * cache holds one copy; the model's tensors are used in place.
 *
 * A file is named by database, model name, version, creation time and the
 * server lifetime that wrote it (the postmaster's start time), so a dropped
 * and re-created model never reuses a stale file.  The files' total size is
 * bounded by cai.shared_cache_size: files of earlier lifetimes go first, then
 * the least recently used (a process that still maps one keeps its mapping).
 *
 * Trust.  A file is mapped without re-verification only within the server
 * lifetime that wrote it: within one lifetime the kernel's page cache is the
 * file, so what another process wrote and renamed is what we read, even if
 * that process crashed later.  Only an operating-system crash or power loss
 * can tear a file, and that always ends the lifetime.  A file of an earlier
 * lifetime is therefore never mapped directly: before the first load in a new
 * lifetime it is compared byte for byte with the catalog's (checksummed)
 * bytes, renamed into the current lifetime when equal, and otherwise logged
 * once, removed and rewritten.  This is also why the files are not fsynced:
 * durability across a crash is never relied on, the catalog is the truth.
 *
 * Everything here is best effort: on any failure the caller loads a private
 * copy from the catalog instead.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"
#include "utils/timestamp.h"

#include "cai_pg.h"

#define CAI_CACHE_DIR		"pg_dynshmem"
#define CAI_CACHE_PREFIX	"cai."

/* "cai.<db>.<name hash>.<version>.<stamp>." : every file of one model version */
static char *
CaiCacheVersionPrefix(const char *name, int32 version, int64 stamp)
{
	uint64		h = cai_hash_bytes(name, strlen(name), 0);

	return psprintf("%s%u.%016llx.%d." INT64_FORMAT ".", CAI_CACHE_PREFIX,
					MyDatabaseId, (unsigned long long) h, version, stamp);
}

/* The current server lifetime's file of a model version. */
static char *
CaiCachePath(const char *name, int32 version, int64 stamp)
{
	char	   *prefix = CaiCacheVersionPrefix(name, version, stamp);
	char	   *path = psprintf("%s/%s/%s" INT64_FORMAT, DataDir, CAI_CACHE_DIR, prefix,
								(int64) PgStartTime);

	pfree(prefix);
	return path;
}

/*
 * The server lifetime a cache file name was written in (the part after the
 * stamp, before any ".tmp<pid>"); false if the name is not one of ours.
 */
static bool
CaiCacheFileLifetime(const char *fname, int64 *lifetime)
{
	unsigned int db;
	unsigned long long h;
	int			version;
	long long	stamp;
	long long	life;
	int			used = 0;

	if (sscanf(fname, CAI_CACHE_PREFIX "%u.%llx.%d.%lld.%lld%n", &db, &h, &version, &stamp,
			   &life, &used) != 5 || used == 0)
		return false;
	*lifetime = (int64) life;
	return true;
}

bool
CaiSharedCacheEnabled(void)
{
	return CaiSettingSharedCacheSizeMb() > 0;
}

/*
 * Map the current lifetime's file of a model version read-only; false if
 * there is none.  Files of earlier lifetimes are never mapped here: they are
 * checked against the catalog first (CaiSharedCacheStore).
 */
bool
CaiSharedCacheOpen(const char *name, int32 version, int64 stamp, void **map, size_t *len)
{
	char	   *path = CaiCachePath(name, version, stamp);
	int			fd;
	struct stat st;
	void	   *p;

	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
	{
		pfree(path);
		return false;
	}
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
	{
		close(fd);
		pfree(path);
		return false;
	}
	p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
	{
		pfree(path);
		return false;
	}
	/* mark it recently used, for eviction */
	(void) utimensat(AT_FDCWD, path, NULL, 0);
	*map = p;
	*len = (size_t) st.st_size;
	pfree(path);
	return true;
}

void
CaiSharedCacheUnmap(void *map, size_t len)
{
	if (map != NULL)
		(void) munmap(map, len);
}

/* Remove a cached file found to be unusable. */
void
CaiSharedCacheDiscard(const char *name, int32 version, int64 stamp)
{
	char	   *path = CaiCachePath(name, version, stamp);

	(void) unlink(path);
	pfree(path);
}

/*
 * Keep the cache within cai.shared_cache_size: remove files of earlier server
 * lifetimes first (never mapped again before a check), then the least
 * recently used.  Temporary files of the current lifetime are being written
 * by another process and are left alone.
 */
static void
CaiSharedCacheEvict(const char *keep)
{
	char	   *dirpath = psprintf("%s/%s", DataDir, CAI_CACHE_DIR);
	DIR		   *dir;
	struct dirent *de;
	int64		limit = (int64) CaiSettingSharedCacheSizeMb() * 1024 * 1024;

	for (;;)
	{
		int64		total = 0;
		char	   *victim = NULL;
		bool		victim_stale = false;
		struct timespec victim_t = {0, 0};

		dir = opendir(dirpath);
		if (dir == NULL)
			break;
		while ((de = readdir(dir)) != NULL)
		{
			char	   *p;
			struct stat st;
			int64		life;
			bool		stale;

			if (!CaiCacheFileLifetime(de->d_name, &life))
				continue;
			p = psprintf("%s/%s", dirpath, de->d_name);
			if (stat(p, &st) != 0)
			{
				pfree(p);
				continue;
			}
			total += st.st_size;
			stale = life != (int64) PgStartTime;
			if (strcmp(p, keep) == 0 || (!stale && strstr(de->d_name, ".tmp") != NULL))
			{
				pfree(p);
				continue;
			}
			if (victim == NULL || (stale && !victim_stale) ||
				(stale == victim_stale &&
				 (st.st_mtim.tv_sec < victim_t.tv_sec ||
				  (st.st_mtim.tv_sec == victim_t.tv_sec && st.st_mtim.tv_nsec < victim_t.tv_nsec))))
			{
				if (victim)
					pfree(victim);
				victim = p;
				victim_stale = stale;
				victim_t = st.st_mtim;
			}
			else
				pfree(p);
		}
		closedir(dir);
		if (total <= limit || victim == NULL)
			break;
		(void) unlink(victim);
		pfree(victim);
	}
	pfree(dirpath);
}

/*
 * Compare a file with the expected bytes.  Returns NULL when equal, else a
 * short description of the difference (for the log).
 */
static char *
CaiCacheFileDiffers(const char *path, const uint8 *bytes, size_t len)
{
	int			fd = open(path, O_RDONLY | PG_BINARY, 0);
	struct stat st;
	char		buf[65536];
	size_t		off = 0;

	if (fd < 0)
		return psprintf("cannot be opened: %m");
	if (fstat(fd, &st) != 0)
	{
		close(fd);
		return psprintf("cannot be examined: %m");
	}
	if ((size_t) st.st_size != len)
	{
		close(fd);
		return psprintf("its size is %lld bytes, the catalog's model has %zu",
						(long long) st.st_size, len);
	}
	while (off < len)
	{
		ssize_t		n = read(fd, buf, Min(sizeof(buf), len - off));

		if (n <= 0)
		{
			close(fd);
			return psprintf("cannot be read at byte %zu", off);
		}
		if (memcmp(buf, bytes + off, (size_t) n) != 0)
		{
			size_t		i = 0;

			while (buf[i] == (char) bytes[off + i])
				i++;
			close(fd);
			return psprintf("its content differs from the catalog's model from byte %zu on", off + i);
		}
		off += (size_t) n;
	}
	close(fd);
	return NULL;
}

/*
 * Files of this model version written in earlier server lifetimes: the first
 * one equal to the catalog's bytes is renamed into the current lifetime
 * (returns true); every other one is logged, once, and removed.
 */
static bool
CaiSharedCacheRecheck(const char *name, int32 version, int64 stamp, const char *path,
					  const uint8 *bytes, size_t len)
{
	char	   *dirpath = psprintf("%s/%s", DataDir, CAI_CACHE_DIR);
	char	   *prefix = CaiCacheVersionPrefix(name, version, stamp);
	size_t		prefix_len = strlen(prefix);
	DIR		   *dir;
	struct dirent *de;
	List	   *stale = NIL;
	ListCell   *lc;
	bool		adopted = false;

	dir = opendir(dirpath);
	if (dir == NULL)
		return false;
	while ((de = readdir(dir)) != NULL)
	{
		int64		life;

		if (strncmp(de->d_name, prefix, prefix_len) == 0 &&
			CaiCacheFileLifetime(de->d_name, &life) && life != (int64) PgStartTime)
			stale = lappend(stale, psprintf("%s/%s", dirpath, de->d_name));
	}
	closedir(dir);

	foreach(lc, stale)
	{
		char	   *old = (char *) lfirst(lc);
		char	   *why = strstr(old, ".tmp") != NULL ? pstrdup("it is an unfinished temporary file")
			: CaiCacheFileDiffers(old, bytes, len);

		if (why == NULL && !adopted && rename(old, path) == 0)
		{
			adopted = true;
			continue;
		}
		/* whoever removes it logs it: once, however many processes race here */
		if (unlink(old) == 0 && why != NULL)
			ereport(LOG,
					(errmsg("cai_synergy: removed damaged shared model file \"%s\" of model \"%s\" version %d",
							old, name, version),
					 errdetail("The file was written before the server's last start and %s; "
							   "the model is loaded from the catalog and the file rewritten.", why)));
	}
	list_free_deep(stale);
	pfree(prefix);
	pfree(dirpath);
	return adopted;
}

/*
 * Make the current lifetime's file of a model version hold the catalog's
 * validated bytes: adopt an equal file of an earlier lifetime, else write it.
 * Returns false (after a LOG message) if it could not.
 */
bool
CaiSharedCacheStore(const char *name, int32 version, int64 stamp, const void *bytes, size_t len)
{
	char	   *path;
	char	   *tmp;
	int			fd;
	size_t		done = 0;

	if ((int64) len > (int64) CaiSettingSharedCacheSizeMb() * 1024 * 1024)
		return false;
	path = CaiCachePath(name, version, stamp);
	if (CaiSharedCacheRecheck(name, version, stamp, path, bytes, len))
	{
		CaiSharedCacheEvict(path);
		pfree(path);
		return true;
	}
	tmp = psprintf("%s.tmp%d", path, MyProcPid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		ereport(LOG, (errcode_for_file_access(), errmsg("could not create \"%s\": %m", tmp)));
		return false;
	}
	while (done < len)
	{
		ssize_t		w = write(fd, (const char *) bytes + done, len - done);

		if (w <= 0)
		{
			ereport(LOG, (errcode_for_file_access(), errmsg("could not write \"%s\": %m", tmp)));
			close(fd);
			unlink(tmp);
			return false;
		}
		done += (size_t) w;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
	{
		ereport(LOG, (errcode_for_file_access(), errmsg("could not install \"%s\": %m", path)));
		unlink(tmp);
		return false;
	}
	CaiSharedCacheEvict(path);
	pfree(tmp);
	pfree(path);
	return true;
}
