/*
 * cai_synergy.c: module entry point, settings, and the bridge from core
 * statuses to ereport().
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "cai_pg.h"

PG_MODULE_MAGIC;

static char *cai_default_model = NULL;
static int	cai_max_model_size_kb = CAI_MAX_MODEL_SIZE_DEFAULT;
static int	cai_max_input_length = CAI_MAX_INPUT_LENGTH_DEFAULT;
static int	cai_training_memory_kb = CAI_TRAINING_MEMORY_DEFAULT;
static int	cai_threads = CAI_THREADS_DEFAULT;
static int	cai_max_training_jobs = CAI_MAX_TRAINING_JOBS_DEFAULT;
static int	cai_shared_cache_size_mb = CAI_SHARED_CACHE_SIZE_DEFAULT;

void		_PG_init(void);

/*
 * The core allocates through this hook: memory comes from the current memory
 * context, and a failed allocation returns NULL to the core (which reports
 * CAI_ERR_NOMEM) instead of throwing through core frames.
 */
static void *
CaiContextAlloc(void *ctx, size_t size)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, size,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
CaiContextFree(void *ctx, void *ptr)
{
	pfree(ptr);
}

void
CaiUseMemoryContextAllocator(void)
{
	static const cai_allocator a = {CaiContextAlloc, CaiContextFree, NULL};

	cai_set_allocator(&a);
}

int
CaiStatusSqlstate(cai_status st)
{
	switch (st)
	{
		case CAI_OK:
			return ERRCODE_SUCCESSFUL_COMPLETION;
		case CAI_ERR_NOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		case CAI_ERR_INVALID:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case CAI_ERR_FORMAT:
			return ERRCODE_INVALID_BINARY_REPRESENTATION;
		case CAI_ERR_CHECKSUM:
			return ERRCODE_DATA_CORRUPTED;
		case CAI_ERR_VERSION:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		case CAI_ERR_LIMIT:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case CAI_ERR_CANCELLED:
			return ERRCODE_QUERY_CANCELED;
		case CAI_ERR_NUMERIC:
			return ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
		case CAI_ERR_INTERNAL:
			return ERRCODE_INTERNAL_ERROR;
		case CAI_ERR_SYSTEM:
			return ERRCODE_SYSTEM_ERROR;
	}
	return ERRCODE_INTERNAL_ERROR;
}

/* Raise the ERROR that corresponds to a core status. */
void
CaiReportCoreError(cai_status st, const cai_error *err, const char *context)
{
	const char *msg = (err != NULL && err->msg[0] != '\0') ? err->msg : cai_status_name(st);

	if (st == CAI_ERR_INTERNAL)
		elog(ERROR, "%s: %s. Please report a bug.", context, msg);
	ereport(ERROR,
			(errcode(CaiStatusSqlstate(st)),
			 errmsg("%s: %s", context, msg)));
	pg_unreachable();
}

void
CaiCheckModelName(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model name must not be empty")));
	if (len > CAI_MODEL_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("model name is too long"),
				 errdetail("The name has %zu bytes; the maximum is %d.", len, CAI_MODEL_NAME_MAX)));
	for (size_t i = 0; i < len; i++)
	{
		if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("model name must not contain control characters")));
	}
}

void
CaiCheckInputLength(Size len)
{
	int			limit = CaiSettingMaxInputLength();

	if (len > (Size) limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("input text is too long"),
				 errdetail("The input has %zu bytes; cai.max_input_length is %d.",
						   (size_t) len, limit),
				 errhint("Raise cai.max_input_length or split the text.")));
}

PG_FUNCTION_INFO_V1(cai_version);
Datum
cai_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(CAI_VERSION_STRING));
}

/*
 * Settings.  PostgreSQL 15 re-sorts its whole array of about 360 settings for
 * every custom setting a library defines (PostgreSQL 16 keeps them in a hash
 * table): about 0.06 ms each, paid by every new connection that loads the
 * library.  So on PostgreSQL 15 an ordinary backend defines none of the seven
 * when the library loads; it defines all of them at once
 *
 *  - when the library loads and one of them was already set (a placeholder:
 *    postgresql.conf, ALTER ROLE/DATABASE ... SET, or a SET before the load),
 *  - when one is SET later: the readers and an ExecutorStart hook notice a new
 *    placeholder (GetNumConfigOptions() grows) and define them, outside
 *    parallel mode, before the value is read,
 *  - when a function first needs a training or catalog setting (training,
 *    storing or importing models and vector sets).
 *
 * Until then the defaults apply, and a SET is kept as PostgreSQL keeps any
 * setting of a library not yet loaded (a placeholder), validated and applied
 * (with the privilege check of the role that set it) when defined.  Defining
 * applies a placeholder's value through set_config_option, which refuses in
 * parallel mode; the ExecutorStart hook runs before a query enters parallel
 * mode, and a SET cannot run inside one, so a parallel query never reads a
 * setting with a pending placeholder (if it did, it would read the default
 * and the next statement would define it).  A library preloaded through
 * shared_preload_libraries, a background worker (parallel workers included:
 * they restore the leader's settings after the library loads) and
 * PostgreSQL 16 or later define all seven at load.
 */
#if PG_VERSION_NUM >= 160000
#define CAI_LAZY_SETTINGS false
#else
#define CAI_LAZY_SETTINGS (!process_shared_preload_libraries_in_progress && !IsBackgroundWorker)
#endif

static bool cai_all_settings_defined = false;
static int	cai_options_seen = -1;	/* GetNumConfigOptions() at the last look */
#if PG_VERSION_NUM < 160000
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
#endif

static const char *const cai_setting_names[] = {
	"cai.default_model", "cai.max_input_length", "cai.shared_cache_size", "cai.max_model_size",
	"cai.training_memory", "cai.threads", "cai.max_training_jobs",
};

/* all seven, then the prefix; once per process */
void
CaiDefineAllSettings(void)
{
	if (cai_all_settings_defined)
		return;
	cai_all_settings_defined = true;
	DefineCustomStringVariable("cai.default_model",
							   "Model used by cai_predict(input) without a model name.",
							   "When empty and exactly one model is deployed, that one is used.",
							   &cai_default_model, NULL,
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("cai.max_input_length",
							"Longest input text (bytes) accepted by inference functions.",
							NULL, &cai_max_input_length,
							CAI_MAX_INPUT_LENGTH_DEFAULT, CAI_MAX_INPUT_LENGTH_MIN, CAI_MAX_INPUT_LENGTH_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("cai.shared_cache_size",
							"Disk and page-cache budget for the shared model copies that all processes map.",
							"Least recently used copies are removed beyond it; 0 gives each process a private copy.",
							&cai_shared_cache_size_mb,
							CAI_SHARED_CACHE_SIZE_DEFAULT, CAI_SHARED_CACHE_SIZE_MIN, CAI_SHARED_CACHE_SIZE_MAX,
							PGC_SUSET, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable("cai.max_model_size",
							"Largest model accepted by cai_import and training.",
							NULL, &cai_max_model_size_kb,
							CAI_MAX_MODEL_SIZE_DEFAULT, CAI_MAX_MODEL_SIZE_MIN, CAI_MAX_MODEL_SIZE_MAX,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("cai.training_memory",
							"Most memory one training job may use.",
							"A job that would need more is refused before it allocates.",
							&cai_training_memory_kb,
							CAI_TRAINING_MEMORY_DEFAULT, CAI_TRAINING_MEMORY_MIN, CAI_TRAINING_MEMORY_MAX,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("cai.threads",
							"Most BLAS threads one training job may use.",
							"The training option \"threads\" is capped by this.",
							&cai_threads,
							CAI_THREADS_DEFAULT, CAI_THREADS_MIN, CAI_THREADS_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("cai.max_training_jobs",
							"Most training jobs that run at once.",
							"cai_train refuses beyond it; cai_train_async jobs wait in state queued.",
							&cai_max_training_jobs,
							CAI_MAX_TRAINING_JOBS_DEFAULT, CAI_MAX_TRAINING_JOBS_MIN, CAI_MAX_TRAINING_JOBS_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("cai");
#else
	EmitWarningsOnPlaceholders("cai");
#endif
}

/*
 * Define the settings if one of them has been set since the last look (the
 * number of settings grows when a SET creates a placeholder).  Cheap when
 * nothing changed: one call and a comparison.
 */
static void
CaiDefineSettingsIfSet(void)
{
	int			n;

	if (cai_all_settings_defined)
		return;
	n = GetNumConfigOptions();
	if (n == cai_options_seen || IsInParallelMode())
		return;
	cai_options_seen = n;
	for (int i = 0; i < lengthof(cai_setting_names); i++)
	{
		if (GetConfigOption(cai_setting_names[i], true, false) != NULL)
		{
			CaiDefineAllSettings();
			return;
		}
	}
}

#if PG_VERSION_NUM < 160000
static void
CaiExecutorStart(QueryDesc *queryDesc, int eflags)
{
	CaiDefineSettingsIfSet();
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}
#endif

const char *
CaiSettingDefaultModel(void)
{
	CaiDefineSettingsIfSet();
	return cai_default_model;
}

int
CaiSettingMaxInputLength(void)
{
	CaiDefineSettingsIfSet();
	return cai_max_input_length;
}

int
CaiSettingSharedCacheSizeMb(void)
{
	CaiDefineSettingsIfSet();
	return cai_shared_cache_size_mb;
}

int
CaiSettingMaxModelSizeKb(void)
{
	CaiDefineAllSettings();
	return cai_max_model_size_kb;
}

int
CaiSettingTrainingMemoryKb(void)
{
	CaiDefineAllSettings();
	return cai_training_memory_kb;
}

int
CaiSettingThreads(void)
{
	CaiDefineAllSettings();
	return cai_threads;
}

int
CaiSettingMaxTrainingJobs(void)
{
	CaiDefineAllSettings();
	return cai_max_training_jobs;
}

void
_PG_init(void)
{
#if PG_VERSION_NUM < 160000
	if (CAI_LAZY_SETTINGS)
	{
		CaiDefineSettingsIfSet();
		prev_ExecutorStart = ExecutorStart_hook;
		ExecutorStart_hook = CaiExecutorStart;
	}
	else
#endif
		CaiDefineAllSettings();

	CaiUseMemoryContextAllocator();

	/*
	 * Ordinary backends run BLAS single-threaded; training sets its own
	 * count.  Never touch BLAS threading in the postmaster (when preloaded).
	 */
	if (!process_shared_preload_libraries_in_progress)
		cai_blas_set_threads(1);
}
