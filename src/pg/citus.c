/*
 * citus.c: the catalog on a Citus cluster.
 *
 * cai_citus_setup() (SQL) makes the catalog tables that must be the same on
 * every node (cai_model_store, cai_deployments, cai_vector_store) Citus
 * reference tables.  A reference table keeps its rows in one shard with a
 * copy (a "placement", a plain table named <table>_<shardid>) on every node,
 * while the table itself stays empty.  So:
 *
 * - writes go to the table: Citus sends each INSERT / UPDATE / DELETE to every
 *   placement inside the caller's transaction and commits them together with
 *   two-phase commit, so storing, deploying, rolling back or dropping a
 *   version reaches every node or none;
 * - reads go to this node's placement, found here through Citus's metadata
 *   (pg_dist_partition, pg_dist_shard, pg_dist_placement, pg_dist_local_group:
 *   plain local tables, synchronised to every node).  A query of the table
 *   itself inside a pushed-down shard query would be a nested distributed
 *   query, which Citus refuses; the direct index scan of the per-statement
 *   model lookup reads a relation, not a query, and would find the empty
 *   table.
 *
 * Without Citus, or before cai_citus_setup(), the copy of a table is the table
 * itself.  Nothing here links to Citus: it reads its catalog by name, once per
 * backend and table, and again after a relcache invalidation of the table
 * (create_reference_table and undistribute_table invalidate it on every node).
 */
#include "postgres.h"

#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "cai_pg.h"

/* A table of the catalog and the relation this node reads it from. */
typedef struct CaiCopyEntry
{
	Oid			relid;			/* the table (InvalidOid: free slot) */
	Oid			copy;			/* relid itself, or this node's placement */
	bool		distributed;	/* a Citus table */
	bool		remote;			/* distributed, and this node holds no copy yet */
	int32		group;			/* this node's Citus group (0: the coordinator) */
} CaiCopyEntry;

#define CAI_COPY_ENTRIES 8

static CaiCopyEntry copies[CAI_COPY_ENTRIES];
static bool copies_callback = false;

static void
CaiCopyInvalidate(Datum arg, Oid relid)
{
	for (int i = 0; i < CAI_COPY_ENTRIES; i++)
		if (!OidIsValid(relid) || copies[i].relid == relid || copies[i].copy == relid)
			copies[i].relid = InvalidOid;
}

/* Look the table up in Citus's metadata (SPI; nests inside a catalog session). */
static void
CaiCopyResolve(CaiCopyEntry *e, Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;
	int64		shardid = 0;

	e->relid = InvalidOid;
	e->copy = relid;
	e->distributed = false;
	e->remote = false;
	e->group = 0;
	/* Citus's metadata tables exist while the extension does (a syscache probe, negative entries cached) */
	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
	{
		e->relid = relid;
		return;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* operators qualified: this may run with the caller's search_path */
	if (SPI_execute_with_args("SELECT (SELECT groupid FROM pg_catalog.pg_dist_local_group), "
							  "       (SELECT pl.shardid FROM pg_catalog.pg_dist_shard s "
							  "          JOIN pg_catalog.pg_dist_placement pl "
							  "            ON pl.shardid OPERATOR(pg_catalog.=) s.shardid "
							  "         WHERE s.logicalrelid OPERATOR(pg_catalog.=) p.logicalrelid "
							  "           AND pl.groupid OPERATOR(pg_catalog.=) "
							  "               (SELECT groupid FROM pg_catalog.pg_dist_local_group) "
							  "         LIMIT 1) "
							  "  FROM pg_catalog.pg_dist_partition p "
							  " WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the Citus metadata of relation %u", relid);
	if (SPI_processed > 0)
	{
		Datum		d;

		e->distributed = true;
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		e->group = isnull ? 0 : DatumGetInt32(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		shardid = isnull ? 0 : DatumGetInt64(d);
	}
	SPI_finish();
	if (shardid > 0)
	{
		char	   *shard = psprintf("%s_" INT64_FORMAT, get_rel_name(relid), shardid);

		e->copy = get_relname_relid(shard, get_rel_namespace(relid));
		if (!OidIsValid(e->copy))
			elog(ERROR, "Citus placement \"%s\" of a cai_synergy catalog table is missing", shard);
	}
	else if (e->distributed)
	{
		/*
		 * A node added after the catalog was distributed holds no copy until
		 * Citus replicates reference tables to it (on the next rebalance,
		 * create_distributed_table or replicate_reference_tables()).  Until
		 * then it reads through the table: a distributed query to a node that
		 * has one.  Shard queries never run here before that replication.
		 */
		e->remote = true;
	}
	e->relid = relid;
}

static CaiCopyEntry *
CaiCopyLookup(Oid relid)
{
	CaiCopyEntry *free_slot = NULL;

	if (!copies_callback)
	{
		CacheRegisterRelcacheCallback(CaiCopyInvalidate, (Datum) 0);
		copies_callback = true;
	}
	for (int i = 0; i < CAI_COPY_ENTRIES; i++)
	{
		if (copies[i].relid == relid &&
			(copies[i].copy == relid || SearchSysCacheExists1(RELOID, ObjectIdGetDatum(copies[i].copy))))
			return &copies[i];
		if (free_slot == NULL && (!OidIsValid(copies[i].relid) || copies[i].relid == relid))
			free_slot = &copies[i];
	}
	if (free_slot == NULL)
		free_slot = &copies[0];
	CaiCopyResolve(free_slot, relid);
	return free_slot;
}

/* The relation this node reads the catalog table relid from: the table or its Citus placement. */
Oid
CaiLocalCopy(Oid relid)
{
	return CaiCopyLookup(relid)->copy;
}

/* Whether this node reads the catalog table relid through a distributed query (it holds no copy yet). */
bool
CaiCopyIsRemote(Oid relid)
{
	return CaiCopyLookup(relid)->remote;
}

/*
 * Error unless this node may start training: on a Citus cluster whose catalog
 * is distributed, only the coordinator runs training jobs (their rows, progress
 * and cancel live in its cai_jobs; the model it stores reaches every node).
 */
void
CaiCheckNotCitusWorker(Oid relid, const char *what)
{
	CaiCopyEntry *e = CaiCopyLookup(relid);

	if (e->distributed && e->group != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot %s on a Citus worker node", what),
				 errdetail("Training jobs run on the coordinator, whose cai_jobs shows them; the models they store reach every node."),
				 errhint("Connect to the coordinator and run it there.")));
}
