/*
 * catalog.c: the model store (@extschema@.cai_model_store) and the SQL
 * functions that manage it: cai_import, cai_export, cai_deploy,
 * cai_rollback, cai_drop_model, cai_model_info.
 *
 * Security model: every function runs with the caller's rights.  Ordinary
 * roles have no write privilege on the store, so the C code checks model
 * ownership itself (owner, member of the owner role, or superuser) and then
 * performs the catalog statement as the table owner, with search_path pinned
 * to pg_catalog so a hostile search_path cannot redirect any operator.
 * Transaction abort restores the caller's identity and settings if anything
 * fails in between.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "cai_pg.h"

/* State of one elevated catalog session (not nested). */
static Oid	caller_userid = InvalidOid;
static int	saved_sec_context;
static int	saved_guc_nest;
static int	catalog_depth = 0;
/*
 * Qualified names of the catalog tables: *_name is written (on Citus, the
 * reference table: every node's copy), *_read is read (this node's copy; the
 * table itself without Citus; see citus.c).
 */
static char store_name[2 * NAMEDATALEN + 64];
static char store_read[2 * NAMEDATALEN + 64];
static char history_name[2 * NAMEDATALEN + 64];
static char history_read[2 * NAMEDATALEN + 64];
static bool catalog_has_history = false;
static Oid	store_relid = InvalidOid;	/* cai_model_store, as of the last CaiCatalogResolve */
static Oid	store_copy = InvalidOid;	/* the relation this node reads it from */
static Oid	store_nspoid = InvalidOid;
static char schema_name[2 * NAMEDATALEN + 8];

static const char *CaiCopyName(Oid copy);

/*
 * The schema cai_synergy is installed in, InvalidOid if it is not installed
 * in this database: one index scan of pg_extension by name (which has no
 * syscache; get_extension_schema is not exported before PostgreSQL 16).
 * While the store found before is still the table of that name in that
 * schema (a syscache probe), the scan is skipped: a new connection's first
 * prediction pays one scan, later statements none.
 */
static Oid
CaiExtensionSchema(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	if (OidIsValid(store_relid) && get_relname_relid("cai_model_store", store_nspoid) == store_relid)
		return store_nspoid;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("cai_synergy"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		result = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/* Qualified names of the catalog tables; returns the store's owner. */
static Oid
CaiCatalogResolve(void)
{
	Oid			nspoid = CaiExtensionSchema();
	Oid			relid;
	HeapTuple	tup;
	Oid			owner;
	const char *nsp;

	if (!OidIsValid(nspoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"cai_synergy\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION cai_synergy.")));
	relid = get_relname_relid("cai_model_store", nspoid);
	if (!OidIsValid(relid))
		elog(ERROR, "cai_synergy model store is missing. Please report a bug.");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	store_relid = relid;
	store_nspoid = nspoid;
	/* 0.2.0's catalog (until ALTER EXTENSION UPDATE the library may run with 0.1.0's) */
	catalog_has_history = get_attnum(relid, "history") != InvalidAttrNumber;

	store_copy = CaiLocalCopy(relid);

	nsp = quote_identifier(get_namespace_name(nspoid));
	strlcpy(schema_name, nsp, sizeof(schema_name));
	snprintf(store_name, sizeof(store_name), "%s.cai_model_store", nsp);
	snprintf(history_name, sizeof(history_name), "%s.cai_deployments", nsp);
	snprintf(store_read, sizeof(store_read), "%s.%s", nsp, CaiCopyName(store_copy));
	snprintf(history_read, sizeof(history_read), "%s", CaiCatalogReadable("cai_deployments"));
	return owner;
}

/*
 * The quoted name of the relation this node reads a catalog table from
 * (citus.c): it can vanish between the lookup and here only if a concurrent
 * undistribute_table or DROP committed; say so rather than quote a NULL.
 */
static const char *
CaiCopyName(Oid copy)
{
	char	   *name = get_rel_name(copy);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("a cai_synergy catalog table changed while it was being read"),
				 errhint("Retry the statement.")));
	return quote_identifier(name);
}

/* Error if this is a Citus worker node (training runs on the coordinator; citus.c). */
void
CaiCheckTrainingNode(const char *what)
{
	(void) CaiCatalogResolve();
	CaiCheckNotCitusWorker(store_relid, what);
}

/* An error inside a session ends it: forget its state at (sub)transaction abort. */
static void
CaiCatalogXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		catalog_depth = 0;
}

static void
CaiCatalogSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		catalog_depth = 0;
}

/*
 * Start an elevated catalog session: SPI connected, acting as the store's
 * owner, search_path = pg_catalog, pg_temp.
 */
void
CaiCatalogConnect(void)
{
	Oid			owner;
	Oid			userid;

	static bool callbacks_registered = false;

	if (!callbacks_registered)
	{
		RegisterXactCallback(CaiCatalogXactCallback, NULL);
		RegisterSubXactCallback(CaiCatalogSubXactCallback, NULL);
		callbacks_registered = true;
	}
	if (catalog_depth++ > 0)
		elog(ERROR, "nested cai_synergy catalog session. Please report a bug.");
	GetUserIdAndSecContext(&userid, &saved_sec_context);
	caller_userid = userid;
	owner = CaiCatalogResolve();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	saved_guc_nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(owner, saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
CaiCatalogDisconnect(void)
{
	SetUserIdAndSecContext(caller_userid, saved_sec_context);
	AtEOXact_GUC(true, saved_guc_nest);
	SPI_finish();
	catalog_depth = 0;
}

/* Reset after an error unwound a session (called at the start of each entry point). */
static void
CaiCatalogReset(void)
{
	catalog_depth = 0;
}

/*
 * Whether the catalog keeps training curves (cai_model_store.history and
 * cai_job_store.history, from 0.2.0 on); inside a session.
 */
bool
CaiCatalogHasHistory(void)
{
	return catalog_has_history;
}

/* Schema-qualified name of one of the extension's relations (inside a session): for writes. */
char *
CaiCatalogQualify(const char *relname)
{
	return psprintf("%s.%s", schema_name, relname);
}

/*
 * Schema-qualified name of the relation this node reads one of the
 * extension's tables from (inside a session): the table itself, or on a Citus
 * cluster its copy on this node (citus.c).
 */
char *
CaiCatalogReadable(const char *relname)
{
	Oid			relid = get_relname_relid(relname, store_nspoid);

	if (!OidIsValid(relid))
		elog(ERROR, "cai_synergy catalog table \"%s\" is missing. Please report a bug.", relname);
	return psprintf("%s.%s", schema_name, CaiCopyName(CaiLocalCopy(relid)));
}

void
CaiCatalogExecute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "cai_synergy catalog statement failed (SPI code %d): %s", rc, sql);
}

static void
CaiExec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "cai_synergy catalog statement failed (SPI code %d): %s", rc, sql);
}

/* Owner of a model (any version), InvalidOid if the model does not exist. Inside a session. */
static Oid
CaiModelOwnerInSession(const char *name)
{
	char		sql[512];
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Datum		d;

	snprintf(sql, sizeof(sql), "SELECT owner::oid FROM %s WHERE name = $1 LIMIT 1", store_read);
	CaiExec(sql, 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return InvalidOid;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidOid : DatumGetObjectId(d);
}

Oid
CaiCatalogModelOwner(const char *name)
{
	Oid			owner;

	CaiCatalogReset();
	CaiCatalogConnect();
	owner = CaiModelOwnerInSession(name);
	CaiCatalogDisconnect();
	return owner;
}

/*
 * Error unless the caller (the one of the current catalog session, if any)
 * may manage an object of the catalog owned by owner; kind: "model",
 * "vector set".
 */
void
CaiCheckOwnership(const char *kind, const char *name, Oid owner, const char *action)
{
	Oid			userid = catalog_depth > 0 ? caller_userid : GetUserId();

	if (!OidIsValid(owner) || has_privs_of_role(userid, owner))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of %s \"%s\" to %s", kind, name, action),
			 errdetail("The %s is owned by role \"%s\".", kind,
					   GetUserNameFromId(owner, true) ? GetUserNameFromId(owner, true) : "?"),
			 errhint("Ask its owner, a member of that role, or a superuser.")));
}

void
CaiCheckModelOwnership(const char *name, Oid owner, const char *action)
{
	CaiCheckOwnership("model", name, owner, action);
}

static void
CaiModelNotFound(const char *name, int32 version)
{
	if (version > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no version %d", name, version)));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("model \"%s\" does not exist", name),
			 errhint("List models with SELECT * FROM cai_models.")));
}

static void
CaiNoDeployedVersion(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("model \"%s\" has no deployed version", name),
			 errhint("Deploy a version with cai_deploy('%s', version).", name)));
}

/* Error for a version that was not found: no such model, version, or no deployed version. */
static void
CaiVersionMissing(const char *name, int32 version)
{
	if (version == 0 && OidIsValid(CaiCatalogModelOwner(name)))
		CaiNoDeployedVersion(name);
	CaiModelNotFound(name, version);
}

/*
 * Fetch one version (version <= 0: the deployed one) into row, allocated in
 * the caller's memory context.  Returns false if there is no such row.
 */
bool
CaiCatalogFetch(const char *name, int32 version, bool want_bytes, CaiModelRow *row)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	char		sql[512];
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		found = false;

	CaiCatalogReset();
	CaiCatalogConnect();
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	if (version <= 0)
		nulls[1] = 'n';
	snprintf(sql, sizeof(sql),
			 "SELECT version, task, owner::oid, metrics, %s FROM %s "
			 "WHERE name = $1 AND CASE WHEN $2 IS NULL THEN deployed ELSE version = $2 END",
			 want_bytes ? "model" : "NULL::bytea", store_read);
	CaiExec(sql, 2, types, values, nulls, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		MemoryContext old = MemoryContextSwitchTo(caller_cxt);

		found = true;
		row->name = pstrdup(name);
		row->version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		row->task = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		row->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		row->metrics = isnull ? NULL : DatumGetJsonbPCopy(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		row->model = isnull ? NULL : DatumGetByteaPCopy(d);
		MemoryContextSwitchTo(old);
	}
	CaiCatalogDisconnect();
	return found;
}

/*
 * CaiCatalogVersion through a query of the table: on a Citus node that holds
 * no copy of the catalog yet (citus.c), a distributed query.
 */
static int32
CaiVersionByQuery(const char *name, int32 version, char **task, int64 *stamp)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	int32		result = -1;

	CaiCatalogConnect();
	/* the wanted version first; another row (wanted = false) only when it is missing */
	CaiExec(psprintf("SELECT version, task, (extract(epoch FROM created_at) * 1000000)::int8, "
					 "CASE WHEN $2 = 0 THEN deployed ELSE version = $2 END AS wanted FROM %s "
					 "WHERE name = $1 ORDER BY wanted DESC LIMIT 1", store_name),
			2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		result = 0;
		if (DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)))
		{
			MemoryContext old = MemoryContextSwitchTo(caller_cxt);

			result = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			if (task != NULL)
				*task = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
			if (stamp != NULL)
				*stamp = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
			MemoryContextSwitchTo(old);
		}
	}
	CaiCatalogDisconnect();
	return result;
}

/*
 * Look up one version of a model without reading its bytes: version 0 is the
 * deployed one, version > 0 that stored version.  Returns the version found
 * (with its task and creation stamp), 0 if the model has no such version (or
 * none deployed), -1 if the model does not exist.
 */
int32
CaiCatalogVersion(const char *name, int32 version, char **task, int64 *stamp)
{
	Relation	rel;
	Oid			pkey;
	ScanKeyData key;
	SysScanDesc scan;
	Snapshot	snap;
	HeapTuple	tup;
	TupleDesc	desc;
	AttrNumber	att_version,
				att_task,
				att_deployed,
				att_created;
	int32		result = -1;

	/*
	 * An index scan of the store by name, without SPI: this runs once per
	 * statement per call site, and as the first thing of a new connection's
	 * first prediction, where parsing and planning a query would cost more
	 * than the prediction.  It reads with the calling statement's snapshot
	 * (the one parallel workers share with their leader, so all processes of
	 * a parallel query find the same version); no privilege check, as the
	 * catalog session (the store's owner) would have read it.
	 */
	(void) CaiCatalogResolve();
	if (CaiCopyIsRemote(store_relid))
		return CaiVersionByQuery(name, version, task, stamp);
	rel = table_open(store_copy, AccessShareLock);
	pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pkey))
		elog(ERROR, "cai_synergy model store index is missing. Please report a bug.");
	desc = RelationGetDescr(rel);
	att_version = attnameAttNum(rel, "version", false);
	att_task = attnameAttNum(rel, "task", false);
	att_deployed = attnameAttNum(rel, "deployed", false);
	att_created = attnameAttNum(rel, "created_at", false);
	ScanKeyInit(&key, attnameAttNum(rel, "name", false), BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(name));
	key.sk_collation = TupleDescAttr(desc, key.sk_attno - 1)->attcollation;
	snap = RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetLatestSnapshot());
	scan = systable_beginscan(rel, pkey, true, snap, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		int32		v = DatumGetInt32(heap_getattr(tup, att_version, desc, &isnull));

		if (result < 0)
			result = 0;
		if (version > 0 ? v != version : !DatumGetBool(heap_getattr(tup, att_deployed, desc, &isnull)))
			continue;
		result = v;
		if (stamp != NULL)
			/* microseconds since the Unix epoch, as extract(epoch FROM created_at) * 1000000 */
			*stamp = DatumGetTimestampTz(heap_getattr(tup, att_created, desc, &isnull)) +
				(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC;
		if (task != NULL)
			*task = TextDatumGetCString(heap_getattr(tup, att_task, desc, &isnull));
		break;
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return result;
}

/* Inside a session: make version the deployed one and push it on the history. */
static void
CaiDeployInSession(const char *name, int32 version)
{
	char		sql[512];
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};

	snprintf(sql, sizeof(sql),
			 "UPDATE %s SET deployed = false WHERE name = $1 AND deployed AND version <> $2", store_name);
	CaiExec(sql, 2, types, values, NULL, SPI_OK_UPDATE);
	snprintf(sql, sizeof(sql),
			 "UPDATE %s SET deployed = true WHERE name = $1 AND version = $2", store_name);
	CaiExec(sql, 2, types, values, NULL, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		CaiModelNotFound(name, version);
	snprintf(sql, sizeof(sql), "INSERT INTO %s (name, version) VALUES ($1, $2)", history_name);
	CaiExec(sql, 2, types, values, NULL, SPI_OK_INSERT);
}

/* Serialize concurrent writers of one model name (transaction-scoped). */
static void
CaiLockModelName(const char *name)
{
	char		sql[256];
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	/* 0x43414953 = 'CAIS': our advisory lock class */
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(1128351059, hashtext($1))");
	CaiExec(sql, 1, types, values, NULL, SPI_OK_SELECT);
}

/*
 * The contract of a model name.  A name is bound to the task of its first
 * (lowest remaining) version: every later version must have the same task, so
 * cai_predict('m', ...) keeps returning the same kind of answer.  Automatic
 * deployment compares only versions whose labels (for NER: entity types) are
 * the same set as the deployed version's; an explicit cai_deploy may change the
 * labels and says how.
 */

/* SQL for the sorted label set of a row alias (task and metadata columns) */
#define CAI_LABEL_SET(task, meta) \
	"(SELECT coalesce(jsonb_agg(x ORDER BY x), '[]'::jsonb) FROM jsonb_array_elements_text(" \
	"CASE WHEN " task " = 'ner' THEN " meta " -> 'types' ELSE " meta " -> 'labels' END) x)"

/* Task of a model's first version, NULL if the model does not exist. Inside a session. */
static char *
CaiModelTaskInSession(const char *name)
{
	char		sql[512];
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;

	snprintf(sql, sizeof(sql), "SELECT task FROM %s WHERE name = $1 ORDER BY version LIMIT 1", store_read);
	CaiExec(sql, 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
CaiTaskMismatch(const char *name, const char *bound, const char *task, const char *action)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("model \"%s\" is a %s model, not %s", name, bound, task),
			 errdetail("Cannot %s: a model name keeps the task of its first version, so that queries using it keep their meaning.", action),
			 errhint("Use another model name, or drop the model first with cai_drop_model('%s').", name)));
}

/*
 * Error unless the caller may add a version of task to model name: owner (or
 * member) of an existing model, and the model's task.  Checked again by
 * CaiCatalogStore under the name's lock; this is the early refusal (before a
 * training starts), in one catalog session.
 */
static Oid
CaiCheckNewVersionInSession(const char *name, const char *task, const char *action)
{
	Oid			owner = CaiModelOwnerInSession(name);

	if (OidIsValid(owner))
	{
		char	   *bound = CaiModelTaskInSession(name);

		CaiCheckModelOwnership(name, owner, "add a version to it");
		if (bound != NULL && strcmp(bound, task) != 0)
			CaiTaskMismatch(name, bound, task, action);
	}
	return owner;
}

void
CaiCheckNewVersion(const char *name, const char *task, const char *action)
{
	CaiCatalogReset();
	CaiCatalogConnect();
	(void) CaiCheckNewVersionInSession(name, task, action);
	CaiCatalogDisconnect();
}

/* How a version (task, metadata) compares with the deployed version of its model. */
typedef struct CaiDeployedDiff
{
	int32		version;		/* deployed version, 0 if none */
	bool		same_task;
	bool		same_labels;
	char	   *added;			/* labels only in the new version, or NULL */
	char	   *removed;		/* labels only in the deployed version, or NULL */
	bool		score_null;		/* deployed version has no validation score */
	double		score;
} CaiDeployedDiff;

/* Inside a session: compare (task, meta_json) with the deployed version of name. */
static void
CaiCompareWithDeployed(const char *name, const char *task, const char *meta_json, CaiDeployedDiff *diff)
{
	char		sql[2048];
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	memset(diff, 0, sizeof(*diff));
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(task);
	values[2] = CStringGetTextDatum(meta_json);
	snprintf(sql, sizeof(sql),
			 "WITH n AS (SELECT $2 AS task, $3::jsonb AS metadata), "
			 "l AS (SELECT d.version, d.task = n.task AS same_task, (d.metrics ->> 'score')::float8 AS score, "
			 "             " CAI_LABEL_SET("d.task", "d.metadata") " AS old, "
			 "             " CAI_LABEL_SET("n.task", "n.metadata") " AS new "
			 "        FROM %s d, n WHERE d.name = $1 AND d.deployed) "
			 "SELECT version, same_task, old = new, "
			 "       (SELECT string_agg(x, ', ' ORDER BY x) FROM jsonb_array_elements_text(new) x WHERE NOT old ? x), "
			 "       (SELECT string_agg(x, ', ' ORDER BY x) FROM jsonb_array_elements_text(old) x WHERE NOT new ? x), "
			 "       score FROM l", store_read);
	CaiExec(sql, 3, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	diff->version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	diff->same_task = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	diff->same_labels = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)) && diff->same_task;
	d = SPI_getbinval(tup, desc, 4, &isnull);
	diff->added = isnull ? NULL : TextDatumGetCString(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	diff->removed = isnull ? NULL : TextDatumGetCString(d);
	d = SPI_getbinval(tup, desc, 6, &diff->score_null);
	diff->score = diff->score_null ? 0.0 : DatumGetFloat8(d);
}

/* "added: a, b; removed: c" for messages */
static char *
CaiLabelChange(const CaiDeployedDiff *diff)
{
	return psprintf("added: %s; removed: %s",
					diff->added ? diff->added : "none", diff->removed ? diff->removed : "none");
}

/* NOTICE when deploying version changes the labels of the deployed version (diff) */
static void
CaiNoticeLabelChange(const char *name, int32 version, const CaiDeployedDiff *diff)
{
	if (diff->version > 0 && diff->same_task && !diff->same_labels)
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d has other labels than version %d, deployed until now",
						name, version, diff->version),
				 errdetail("Labels %s.", CaiLabelChange(diff)),
				 errhint("Queries using the model may now return other labels.")));
}

/* Inside a session: task and metadata (as text) of one version; false if it does not exist. */
static bool
CaiVersionTaskMeta(const char *name, int32 version, char **task, char **meta_json)
{
	char		sql[512];
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	bool		isnull;

	snprintf(sql, sizeof(sql), "SELECT task, metadata::text FROM %s WHERE name = $1 AND version = $2", store_read);
	CaiExec(sql, 2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*task = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*meta_json = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return true;
}

/*
 * Inside a session, before an explicit deployment (cai_deploy, cai_rollback)
 * of version: refuse a version of another task than the model's, and say how
 * the labels change when they do.
 */
static void
CaiCheckExplicitDeploy(const char *name, int32 version, const char *action)
{
	char	   *task;
	char	   *meta;
	char	   *bound = CaiModelTaskInSession(name);
	CaiDeployedDiff diff;

	if (!CaiVersionTaskMeta(name, version, &task, &meta))
		CaiModelNotFound(name, version);
	if (bound != NULL && strcmp(bound, task) != 0)
		CaiTaskMismatch(name, bound, task, action);
	CaiCompareWithDeployed(name, task, meta, &diff);
	if (diff.version != version)
		CaiNoticeLabelChange(name, version, &diff);
}

/*
 * Inside a session, before storing bytes as version of name: whether that
 * version exists already.  With the same bytes it does (true: nothing to
 * store); with other bytes it is refused, since a version number names one
 * model for good (the pinned inference functions rely on it).
 */
static bool
CaiVersionAlreadyStored(const char *name, int32 version, bytea *data)
{
	char		sql[512];
	Oid			types[3] = {TEXTOID, INT4OID, BYTEAOID};
	Datum		values[3] = {CStringGetTextDatum(name), Int32GetDatum(version), PointerGetDatum(data)};
	bool		isnull;

	snprintf(sql, sizeof(sql), "SELECT model = $3 FROM %s WHERE name = $1 AND version = $2", store_read);
	CaiExec(sql, 3, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already has a version %d with other bytes", name, version),
				 errdetail("A version number names one model for good: calls pinned to it, such as cai_predict('%s', %d, input), must keep their answers.",
						   name, version),
				 errhint("To replace it, drop it with cai_drop_model('%s', %d) first, and rebuild any index or generated column that uses it.",
						 name, version)));
	return true;
}

/*
 * A bytea of len bytes, its contents to be filled: refused above the most a
 * varlena holds (1 GB), which cai.max_model_size may exceed.
 */
bytea *
CaiByteaAlloc(Size len)
{
	bytea	   *data;

	if (len > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot store %zu bytes in one bytea value", (size_t) len),
				 errdetail("A bytea value holds at most 1 GB: a model or vector set this large cannot be stored.")));
	data = palloc(VARHDRSZ + len);
	SET_VARSIZE(data, VARHDRSZ + len);
	return data;
}

/* A bytea holding a copy of len bytes (CaiByteaAlloc). */
bytea *
CaiBytea(const void *bytes, Size len)
{
	bytea	   *data = CaiByteaAlloc(len);

	memcpy(VARDATA(data), bytes, len);
	return data;
}

/*
 * Store a new version: the next number, or version_wanted when it is > 0
 * (cai_import(model, data, version): a copy that keeps its number; the same
 * bytes already stored under it are not stored again).  deploy_policy: "auto"
 * (first version, or better validation score than the deployed one),
 * "always", "never", or "import" (deploy only when nothing is deployed).
 * data: the model bytes, any varlena form but not toasted (the caller's: a
 * model arrives once, in the bytea the row is made of).  Returns the
 * version.
 */
int32
CaiCatalogStore(const char *name, int32 version_wanted, const char *task, bytea *data,
				const char *meta_json, const char *metrics_json, const char *history_json,
				const char *deploy_policy, bool *deployed)
{
	char		sql[1024];
	Oid			owner;
	int32		version;
	bool		isnull;
	bool		deploy = false;
	Size		len = VARSIZE_ANY_EXHDR(data);

	if (len > (Size) CaiSettingMaxModelSizeKb() * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model is too large: %zu bytes", (size_t) len),
				 errdetail("cai.max_model_size is %d kB.", CaiSettingMaxModelSizeKb())));

	CaiCatalogReset();
	CaiCatalogConnect();
	CaiLockModelName(name);
	owner = CaiCheckNewVersionInSession(name, task, "add a version");
	if (!OidIsValid(owner))
		owner = caller_userid;
	if (version_wanted > 0 && CaiVersionAlreadyStored(name, version_wanted, data))
	{
		CaiCatalogDisconnect();
		if (deployed)
			*deployed = false;
		return version_wanted;
	}

	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		values[2];
		char		nulls[2] = {' ', ' '};
		bool		new_null;
		double		new_score;
		CaiDeployedDiff diff;

		values[0] = CStringGetTextDatum(name);
		values[1] = metrics_json ? CStringGetTextDatum(metrics_json) : (Datum) 0;
		if (metrics_json == NULL)
			nulls[1] = 'n';
		/* next version and the new version's validation score */
		snprintf(sql, sizeof(sql),
				 "SELECT (SELECT coalesce(max(s.version), 0) + 1 FROM %s s WHERE s.name = $1), "
				 "(($2::jsonb) ->> 'score')::float8", store_read);
		CaiExec(sql, 2, types, values, nulls, SPI_OK_SELECT);
		version = version_wanted > 0 ? version_wanted :
			DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		new_score = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &new_null));
		CaiCompareWithDeployed(name, task, meta_json, &diff);

		if (strcmp(deploy_policy, "always") == 0)
		{
			deploy = true;
			CaiNoticeLabelChange(name, version, &diff);
		}
		else if (strcmp(deploy_policy, "never") == 0)
			deploy = false;
		else if (diff.version == 0)
			deploy = true;
		else if (strcmp(deploy_policy, "auto") != 0)
			deploy = false;		/* "import": only when nothing is deployed */
		else if (!diff.same_task)
		{
			deploy = false;
			ereport(NOTICE,
					(errmsg("model \"%s\" version %d is not compared with deployed version %d: that version is of another task",
							name, version, diff.version),
					 errdetail("The deployed version was stored by an earlier release that did not bind a model name to a task."),
					 errhint("Deploy a version explicitly with cai_deploy('%s', version).", name)));
		}
		else if (!diff.same_labels)
		{
			deploy = false;
			ereport(NOTICE,
					(errmsg("model \"%s\" version %d is not compared with deployed version %d: their labels differ",
							name, version, diff.version),
					 errdetail("Labels %s. Automatic deployment compares only versions with the same labels.",
							   CaiLabelChange(&diff)),
					 errhint("If the new labels are intended, deploy it with cai_deploy('%s', %d).", name, version)));
		}
		else
			deploy = !new_null && (diff.score_null || new_score > diff.score);
	}

	{
		Oid			types[8] = {TEXTOID, INT4OID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID, OIDOID, TEXTOID};
		Datum		values[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		bool		with_history = CaiCatalogHasHistory();

		values[0] = CStringGetTextDatum(name);
		values[1] = Int32GetDatum(version);
		values[2] = CStringGetTextDatum(task);
		values[3] = PointerGetDatum(data);
		values[4] = CStringGetTextDatum(meta_json);
		values[5] = metrics_json ? CStringGetTextDatum(metrics_json) : (Datum) 0;
		if (metrics_json == NULL)
			nulls[5] = 'n';
		values[6] = ObjectIdGetDatum(owner);
		values[7] = history_json ? CStringGetTextDatum(history_json) : (Datum) 0;
		if (history_json == NULL)
			nulls[7] = 'n';
		snprintf(sql, sizeof(sql),
				 "INSERT INTO %s (name, version, task, model, metadata, metrics, owner%s) "
				 "VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::regrole%s)", store_name,
				 with_history ? ", history" : "", with_history ? ", $8::jsonb" : "");
		CaiExec(sql, with_history ? 8 : 7, types, values, nulls, SPI_OK_INSERT);
	}
	if (deploy)
		CaiDeployInSession(name, version);
	CaiCatalogDisconnect();
	if (deployed)
		*deployed = deploy;
	return version;
}

/*
 * Full validation of model bytes: structure and checksum (format.c), then the
 * architecture's own consistency checks (the same load that inference does,
 * found through the registry).  Returns the model's task and metadata.
 */
void
CaiValidateModelBytes(const uint8 *bytes, Size len, char **task, char **meta_json)
{
	cai_error	err = {0};
	cai_model  *model = NULL;
	cai_status	st;

	if (len > (Size) CaiSettingMaxModelSizeKb() * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model is too large: %zu bytes", (size_t) len),
				 errdetail("cai.max_model_size is %d kB.", CaiSettingMaxModelSizeKb())));
	st = cai_model_load(bytes, len, false, true, &model, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "invalid model");
	*task = pstrdup(cai_model_task(model));
	if (meta_json)
		*meta_json = pstrdup(cai_model_meta_json(model));
	cai_model_free(model);
}

static char *
CaiArgName(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	CaiCheckModelName(name);
	return name;
}

static int32
CaiArgVersion(FunctionCallInfo fcinfo, int argno)
{
	int32		v;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return 0;
	v = PG_GETARG_INT32(argno);
	if (v <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model version must be positive, got %d", v)));
	return v;
}

PG_FUNCTION_INFO_V1(cai_import);
Datum
cai_import(PG_FUNCTION_ARGS)
{
	char	   *name = CaiArgName(fcinfo, 0);
	bytea	   *data;
	char	   *task;
	char	   *meta;
	int32		version;

	CaiCheckWritable("import a model");

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model data must not be NULL")));
	data = PG_GETARG_BYTEA_PP(1);
	if (VARSIZE_ANY_EXHDR(data) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid model: the data is empty")));
	CaiValidateModelBytes((const uint8 *) VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), &task, &meta);
	/* cai_import(model, data, version): keep the version number (see CaiCatalogStore) */
	if (PG_NARGS() > 2 && PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model version must not be NULL"),
				 errhint("Call cai_import(model, data) to store the bytes as the next version.")));
	version = CaiCatalogStore(name, CaiArgVersion(fcinfo, 2), task, data, meta, NULL, NULL, "import", NULL);
	PG_RETURN_INT32(version);
}

PG_FUNCTION_INFO_V1(cai_export);
Datum
cai_export(PG_FUNCTION_ARGS)
{
	char	   *name = CaiArgName(fcinfo, 0);
	int32		version = CaiArgVersion(fcinfo, 1);
	CaiModelRow row;

	if (!CaiCatalogFetch(name, version, true, &row))
	{
		CaiVersionMissing(name, version);
	}
	CaiCheckModelOwnership(name, row.owner, "export it");
	PG_RETURN_BYTEA_P(row.model);
}

PG_FUNCTION_INFO_V1(cai_model_info);
Datum
cai_model_info(PG_FUNCTION_ARGS)
{
	char	   *name = CaiArgName(fcinfo, 0);
	int32		version = CaiArgVersion(fcinfo, 1);
	char		sql[2048];
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	MemoryContext caller_cxt = CurrentMemoryContext;
	Jsonb	   *result = NULL;

	CaiCatalogReset();
	CaiCatalogConnect();
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	if (version == 0)
		nulls[1] = 'n';
	snprintf(sql, sizeof(sql),
			 "SELECT s.metadata || CASE WHEN s.metrics ? 'tuning' THEN jsonb_build_object('tuning', s.metrics -> 'tuning') "
			 "ELSE '{}' END || jsonb_build_object('version', s.version, 'deployed', s.deployed, "
			 "'owner', s.owner::text, 'created_at', s.created_at, 'size', octet_length(s.model), "
			 "'labels_changed', (SELECT " CAI_LABEL_SET("s.task", "s.metadata") " <> " CAI_LABEL_SET("d.task", "d.metadata")
			 " OR s.task <> d.task FROM %s d WHERE d.name = s.name AND d.deployed)) "
			 "FROM %s s WHERE s.name = $1 AND CASE WHEN $2 IS NULL THEN s.deployed ELSE s.version = $2 END",
			 store_read, store_read);
	CaiExec(sql, 2, types, values, nulls, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(caller_cxt);

		result = DatumGetJsonbPCopy(d);
		MemoryContextSwitchTo(old);
	}
	CaiCatalogDisconnect();
	if (result == NULL)
	{
		CaiVersionMissing(name, version);
	}
	PG_RETURN_JSONB_P(result);
}

PG_FUNCTION_INFO_V1(cai_deploy);
Datum
cai_deploy(PG_FUNCTION_ARGS)
{
	char	   *name = CaiArgName(fcinfo, 0);
	int32		version = CaiArgVersion(fcinfo, 1);
	Oid			owner;

	CaiCheckWritable("deploy a model");

	CaiCatalogReset();
	CaiCatalogConnect();
	CaiLockModelName(name);
	owner = CaiModelOwnerInSession(name);
	if (!OidIsValid(owner))
		CaiModelNotFound(name, 0);
	CaiCheckModelOwnership(name, owner, "deploy it");
	if (version == 0)
	{
		char		sql[256];
		Oid			types[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(name)};
		bool		isnull;

		snprintf(sql, sizeof(sql), "SELECT max(version) FROM %s WHERE name = $1", store_read);
		CaiExec(sql, 1, types, values, NULL, SPI_OK_SELECT);
		version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	CaiCheckExplicitDeploy(name, version, "deploy this version");
	CaiDeployInSession(name, version);
	CaiCatalogDisconnect();
	PG_RETURN_INT32(version);
}

PG_FUNCTION_INFO_V1(cai_rollback);
Datum
cai_rollback(PG_FUNCTION_ARGS)
{
	char	   *name = CaiArgName(fcinfo, 0);
	Oid			owner;
	char		sql[1024];
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	int32		current;
	int32		previous = 0;
	bool		isnull;

	CaiCheckWritable("roll back a model");

	CaiCatalogReset();
	CaiCatalogConnect();
	CaiLockModelName(name);
	owner = CaiModelOwnerInSession(name);
	if (!OidIsValid(owner))
		CaiModelNotFound(name, 0);
	CaiCheckModelOwnership(name, owner, "roll it back");
	values[0] = CStringGetTextDatum(name);

	snprintf(sql, sizeof(sql), "SELECT version FROM %s WHERE name = $1 AND deployed", store_read);
	CaiExec(sql, 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		CaiNoDeployedVersion(name);
	current = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	values[1] = Int32GetDatum(current);

	/* pop the history down to (and including) the current deployment */
	snprintf(sql, sizeof(sql),
			 "UPDATE %s SET rolled_back = true WHERE name = $1 AND NOT rolled_back AND "
			 "id >= (SELECT max(id) FROM %s WHERE name = $1 AND version = $2 AND NOT rolled_back)",
			 history_name, history_name);
	CaiExec(sql, 2, types, values, NULL, SPI_OK_UPDATE);

	/* the latest earlier deployment of a different version that still exists */
	snprintf(sql, sizeof(sql),
			 "SELECT h.version FROM %s h JOIN %s s ON s.name = h.name AND s.version = h.version "
			 "WHERE h.name = $1 AND NOT h.rolled_back AND h.version <> $2 ORDER BY h.id DESC LIMIT 1",
			 history_read, store_read);
	CaiExec(sql, 2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		previous = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (previous == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no earlier deployment to roll back to", name),
				 errdetail("Version %d is deployed and no other version was deployed before it.", current)));

	CaiCheckExplicitDeploy(name, previous, "roll back to this version");
	values[1] = Int32GetDatum(previous);
	snprintf(sql, sizeof(sql),
			 "UPDATE %s SET deployed = false WHERE name = $1 AND deployed", store_name);
	CaiExec(sql, 1, types, values, NULL, SPI_OK_UPDATE);
	snprintf(sql, sizeof(sql),
			 "UPDATE %s SET deployed = true WHERE name = $1 AND version = $2", store_name);
	CaiExec(sql, 2, types, values, NULL, SPI_OK_UPDATE);
	CaiCatalogDisconnect();
	PG_RETURN_INT32(previous);
}

PG_FUNCTION_INFO_V1(cai_drop_model);
Datum
cai_drop_model(PG_FUNCTION_ARGS)
{
	char	   *name = CaiArgName(fcinfo, 0);
	int32		version = CaiArgVersion(fcinfo, 1);
	Oid			owner;
	char		sql[512];
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	uint64		dropped;
	bool		dropped_deployed = false;

	CaiCheckWritable("drop a model");

	CaiCatalogReset();
	CaiCatalogConnect();
	CaiLockModelName(name);
	owner = CaiModelOwnerInSession(name);
	if (!OidIsValid(owner))
		CaiModelNotFound(name, 0);
	CaiCheckModelOwnership(name, owner, "drop it");
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	if (version == 0)
		nulls[1] = 'n';
	snprintf(sql, sizeof(sql),
			 "DELETE FROM %s WHERE name = $1 AND ($2 IS NULL OR version = $2) RETURNING deployed",
			 store_name);
	CaiExec(sql, 2, types, values, nulls, SPI_OK_DELETE_RETURNING);
	dropped = SPI_processed;
	for (uint64 i = 0; i < dropped; i++)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)))
			dropped_deployed = true;
	}
	if (dropped == 0)
		CaiModelNotFound(name, version);
	snprintf(sql, sizeof(sql),
			 "DELETE FROM %s WHERE name = $1 AND ($2 IS NULL OR version = $2)", history_name);
	CaiExec(sql, 2, types, values, nulls, SPI_OK_DELETE);
	CaiCatalogDisconnect();
	if (dropped_deployed && version != 0)
		ereport(NOTICE,
				(errmsg("model \"%s\" has no deployed version now", name),
				 errhint("Deploy another version with cai_deploy('%s', version).", name)));
	PG_RETURN_INT32((int32) dropped);
}

/* Name of the only deployed model, or NULL (then *count says 0 or 2 = many). */
char *
CaiCatalogOnlyDeployedModel(int *count)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	char		sql[256];
	char	   *result = NULL;

	CaiCatalogReset();
	CaiCatalogConnect();
	snprintf(sql, sizeof(sql), "SELECT name FROM %s WHERE deployed LIMIT 2", store_read);
	CaiExec(sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	*count = (int) SPI_processed;
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(caller_cxt);

		result = TextDatumGetCString(d);
		MemoryContextSwitchTo(old);
	}
	CaiCatalogDisconnect();
	return result;
}
