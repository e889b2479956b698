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
 * A file is named by database, model name, version and creation time, so a
 * dropped and re-created model never reuses a stale file.  The files' total
 * size is bounded by cai.shared_cache_size: the least recently used are
 * removed (a process that still maps one keeps its mapping).  Everything here
 * is best effort: on any failure the caller loads a private copy instead.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#include "cai_pg.h"

#define CAI_CACHE_DIR		"pg_dynshmem"
#define CAI_CACHE_PREFIX	"cai."

static char *
CaiCachePath(const char *name, int32 version, int64 stamp)
{
	uint64		h = cai_hash_bytes(name, strlen(name), 0);

	return psprintf("%s/%s/%s%u.%016llx.%d." INT64_FORMAT, DataDir, CAI_CACHE_DIR, CAI_CACHE_PREFIX,
					MyDatabaseId, (unsigned long long) h, version, stamp);
}

bool
CaiSharedCacheEnabled(void)
{
	return cai_shared_cache_size_mb > 0;
}

/* Map the cached file of a model version read-only; false if there is none. */
bool
CaiSharedCacheOpen(const char *name, int32 version, int64 stamp, void **map, size_t *len)
{
	char	   *path = CaiCachePath(name, version, stamp);
	int			fd;
	struct stat st;
	void	   *p;

	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
	{
		close(fd);
		return false;
	}
	p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return false;
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

/* Keep the cache within cai.shared_cache_size: remove least recently used files. */
static void
CaiSharedCacheEvict(const char *keep)
{
	char	   *dirpath = psprintf("%s/%s", DataDir, CAI_CACHE_DIR);
	DIR		   *dir;
	struct dirent *de;
	int64		limit = (int64) cai_shared_cache_size_mb * 1024 * 1024;

	for (;;)
	{
		int64		total = 0;
		char	   *oldest = NULL;
		struct timespec oldest_t = {0, 0};

		dir = opendir(dirpath);
		if (dir == NULL)
			return;
		while ((de = readdir(dir)) != NULL)
		{
			char	   *p;
			struct stat st;

			if (strncmp(de->d_name, CAI_CACHE_PREFIX, strlen(CAI_CACHE_PREFIX)) != 0)
				continue;
			p = psprintf("%s/%s", dirpath, de->d_name);
			if (stat(p, &st) != 0)
				continue;
			total += st.st_size;
			if (strcmp(p, keep) != 0 && strstr(de->d_name, ".tmp") == NULL &&
				(oldest == NULL || st.st_mtim.tv_sec < oldest_t.tv_sec ||
				 (st.st_mtim.tv_sec == oldest_t.tv_sec && st.st_mtim.tv_nsec < oldest_t.tv_nsec)))
			{
				oldest = p;
				oldest_t = st.st_mtim;
			}
		}
		closedir(dir);
		if (total <= limit || oldest == NULL)
			return;
		(void) unlink(oldest);
	}
}

/*
 * Write validated model bytes as the shared file of a model version.
 * Returns false (after a LOG message) if it could not.
 */
bool
CaiSharedCacheStore(const char *name, int32 version, int64 stamp, const void *bytes, size_t len)
{
	char	   *path = CaiCachePath(name, version, stamp);
	char	   *tmp = psprintf("%s.tmp%d", path, MyProcPid);
	int			fd;
	size_t		done = 0;

	if ((int64) len > (int64) cai_shared_cache_size_mb * 1024 * 1024)
		return false;
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
	return true;
}
