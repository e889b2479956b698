/*
 * stream.c: the rows of a training source, read where they can be seen.
 *
 * A synchronous cai_train must see exactly what its calling statement sees:
 * rows the caller's transaction inserted, tables it created, its temporary
 * tables, its privileges and row-level security.  A background worker has
 * its own transaction and snapshot and sees none of the first three, so the
 * caller runs the source queries itself (an SPI cursor with the statement's
 * snapshot) and sends each row to the worker through a shm_mq, as a parallel
 * query's workers send tuples to their leader:
 *
 *   'D' natts, then (type oid, typmod) per column   once per query
 *   'T' a MinimalTuple, its out-of-line values inlined
 *   'E'                                             end of the query
 *
 * The worker rebuilds the tuple descriptor and deforms the tuples with the
 * same types (one database, one catalog).  While the queue is full the caller
 * keeps reading the worker's own messages (progress, errors), so neither side
 * can wait for the other forever; if the worker exits, the caller stops
 * sending and reports the worker's error.
 *
 * An asynchronous job outlives its caller's transaction, so its worker runs
 * the queries itself (the SPI form of CaiSource), as it always has.
 */
#include "postgres.h"

#include "access/heaptoast.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/shm_mq.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "cai_pg.h"
#include "train.h"

/* The worker's queue of rows from its caller; NULL: run the queries (SPI). */
static shm_mq_handle *source_queue = NULL;

void
CaiSourceUseQueue(shm_mq_handle *mqh)
{
	source_queue = mqh;
}

/* Next message of the caller's queue (type byte, body); errors if the caller went away. */
static char
CaiSourceReceive(char **body, Size *len)
{
	Size		nbytes;
	void	   *data;

	if (shm_mq_receive(source_queue, &nbytes, &data, false) != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the backend that called cai_train stopped sending training rows")));
	if (nbytes < 1)
		elog(ERROR, "empty message in the training rows queue");
	*body = (char *) data + 1;
	*len = nbytes - 1;
	return ((char *) data)[0];
}

void
CaiSourceOpen(CaiSource *s, const char *query, const char *what)
{
	memset(s, 0, sizeof(*s));
	s->what = what;
	s->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "cai_synergy source batch", ALLOCSET_DEFAULT_SIZES);
	if (source_queue != NULL)
	{
		char	   *body;
		Size		len;
		uint16		natts;

		if (CaiSourceReceive(&body, &len) != 'D' || len < sizeof(uint16))
			elog(ERROR, "the training rows queue did not start the %s with its columns", what);
		memcpy(&natts, body, sizeof(uint16));
		if (len != sizeof(uint16) + (Size) natts * (sizeof(Oid) + sizeof(int32)))
			elog(ERROR, "malformed column list in the training rows queue");
		s->desc = CreateTemplateTupleDesc(natts);
		for (int i = 0; i < natts; i++)
		{
			Oid			typid;
			int32		typmod;

			memcpy(&typid, body + sizeof(uint16) + i * (sizeof(Oid) + sizeof(int32)), sizeof(Oid));
			memcpy(&typmod, body + sizeof(uint16) + i * (sizeof(Oid) + sizeof(int32)) + sizeof(Oid), sizeof(int32));
			TupleDescInitEntry(s->desc, (AttrNumber) (i + 1), NULL, typid, typmod, 0);
		}
		return;
	}
	{
		SPIPlanPtr	plan = SPI_prepare(query, 0, NULL);

		if (plan == NULL)
			elog(ERROR, "could not prepare the %s query: %s", what, SPI_result_code_string(SPI_result));
		s->portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
		s->desc = s->portal->tupDesc;
	}
}

/* The next batch of rows into s->tuples / s->n; false at the end. */
bool
CaiSourceNext(CaiSource *s)
{
	MemoryContextReset(s->batch_cxt);
	s->n = 0;
	if (s->done)
		return false;
	if (source_queue == NULL)
	{
		if (SPI_tuptable != NULL)
			SPI_freetuptable(SPI_tuptable);
		SPI_cursor_fetch(s->portal, true, CAI_FETCH_BATCH);
		s->tuples = SPI_tuptable->vals;
		s->n = SPI_processed;
		s->done = SPI_processed == 0;
		return !s->done;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(s->batch_cxt);

		s->tuples = palloc(sizeof(HeapTuple) * CAI_FETCH_BATCH);
		while (s->n < CAI_FETCH_BATCH)
		{
			char	   *body;
			Size		len;
			char		type = CaiSourceReceive(&body, &len);
			HeapTuple	tup;
			MinimalTuple mt;

			if (type == 'E')
			{
				s->done = true;
				break;
			}
			if (type != 'T' || len < offsetof(MinimalTupleData, t_bits) || len > MaxAllocSize / 2)
				elog(ERROR, "unexpected message '%c' in the training rows queue", type);
			/*
			 * One aligned copy, read in place as a heap tuple: t_data points
			 * MINIMAL_TUPLE_OFFSET bytes before the minimal tuple, whose
			 * header fields are those of a heap tuple from there on.
			 */
			tup = palloc(HEAPTUPLESIZE + MINIMAL_TUPLE_OFFSET + len);
			mt = (MinimalTuple) ((char *) tup + HEAPTUPLESIZE + MINIMAL_TUPLE_OFFSET);
			memcpy(mt, body, len);
			if (mt->t_len != len)
				elog(ERROR, "malformed row in the training rows queue");
			tup->t_len = len + MINIMAL_TUPLE_OFFSET;
			ItemPointerSetInvalid(&tup->t_self);
			tup->t_tableOid = InvalidOid;
			tup->t_data = (HeapTupleHeader) ((char *) mt - MINIMAL_TUPLE_OFFSET);
			s->tuples[s->n++] = tup;
		}
		MemoryContextSwitchTo(old);
		CHECK_FOR_INTERRUPTS();
		return s->n > 0;
	}
}

void
CaiSourceClose(CaiSource *s)
{
	if (s->portal != NULL)
	{
		if (SPI_tuptable != NULL)
			SPI_freetuptable(SPI_tuptable);
		SPI_cursor_close(s->portal);
	}
	MemoryContextDelete(s->batch_cxt);
}

/*
 * Send one message to the worker; while the queue is full, hand the worker's
 * messages to on_message.  false when the worker has gone (its queue then
 * holds why).
 */
static bool
CaiStreamSendv(shm_mq_handle *rows, shm_mq_handle *worker, void (*on_message) (void *, Size, void *), void *arg,
			   shm_mq_iovec *iov, int iovcnt, bool flush)
{
	for (;;)
	{
		shm_mq_result r = shm_mq_sendv(rows, iov, iovcnt, true, flush);
		Size		nbytes;
		void	   *data;

		if (r == SHM_MQ_SUCCESS)
			return true;
		if (r == SHM_MQ_DETACHED)
			return false;
		/* full: read what the worker says (an error is raised here), then wait */
		while (shm_mq_receive(worker, &nbytes, &data, true) == SHM_MQ_SUCCESS)
			on_message(data, nbytes, arg);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static bool
CaiStreamSend(shm_mq_handle *rows, shm_mq_handle *worker, void (*on_message) (void *, Size, void *), void *arg,
			  char type, const void *body, Size len, bool flush)
{
	shm_mq_iovec iov[2] = {{&type, 1}, {(const char *) body, len}};

	return CaiStreamSendv(rows, worker, on_message, arg, iov, len > 0 ? 2 : 1, flush);
}

/*
 * Caller side: the executor hands each row of the source query to this
 * receiver, which sends it on at once (no SPI tuple table, no copy of a row
 * read from a table's buffer): the bytes of a MinimalTuple are those of the
 * heap tuple after MINIMAL_TUPLE_OFFSET with their own length in front.
 */
typedef struct CaiStreamDest
{
	DestReceiver pub;
	shm_mq_handle *rows;
	shm_mq_handle *worker;
	void		(*on_message) (void *, Size, void *);
	void	   *arg;
	bool		alive;
} CaiStreamDest;

static void
CaiStreamStartup(DestReceiver *self, int operation, TupleDesc desc)
{
	CaiStreamDest *d = (CaiStreamDest *) self;
	StringInfoData cols;
	uint16		natts = (uint16) desc->natts;

	initStringInfo(&cols);
	appendBinaryStringInfo(&cols, (char *) &natts, sizeof(uint16));
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		appendBinaryStringInfo(&cols, (char *) &a->atttypid, sizeof(Oid));
		appendBinaryStringInfo(&cols, (char *) &a->atttypmod, sizeof(int32));
	}
	d->alive = CaiStreamSend(d->rows, d->worker, d->on_message, d->arg, 'D', cols.data, cols.len, true);
	pfree(cols.data);
}

static bool
CaiStreamReceive(TupleTableSlot *slot, DestReceiver *self)
{
	CaiStreamDest *d = (CaiStreamDest *) self;
	bool		free_tup;
	HeapTuple	tup = ExecFetchSlotHeapTuple(slot, false, &free_tup);
	HeapTuple	flat = NULL;
	uint32		len;
	char		type = 'T';
	shm_mq_iovec iov[3];

	if (!d->alive)
		return false;
	/* values stored out of line (TOAST) travel inline: the worker cannot read our TOAST */
	if (HeapTupleHasExternal(tup))
		flat = toast_flatten_tuple(tup, slot->tts_tupleDescriptor);
	len = (flat != NULL ? flat : tup)->t_len - MINIMAL_TUPLE_OFFSET;
	iov[0].data = &type;
	iov[0].len = 1;
	iov[1].data = (const char *) &len;
	iov[1].len = sizeof(uint32);
	iov[2].data = (const char *) (flat != NULL ? flat : tup)->t_data + MINIMAL_TUPLE_OFFSET + sizeof(uint32);
	iov[2].len = len - sizeof(uint32);
	d->alive = CaiStreamSendv(d->rows, d->worker, d->on_message, d->arg, iov, 3, false);
	if (flat != NULL)
		heap_freetuple(flat);
	if (free_tup)
		heap_freetuple(tup);
	return d->alive;
}

static void
CaiStreamShutdown(DestReceiver *self)
{
}

static void
CaiStreamDestroy(DestReceiver *self)
{
}

/*
 * Caller side: run query with the calling statement's snapshot and rights and
 * send its rows.  false if the worker stopped reading (it has exited).
 */
bool
CaiStreamQuery(shm_mq_handle *rows, shm_mq_handle *worker, void (*on_message) (void *, Size, void *), void *arg,
			   const char *query, const char *what)
{
	CaiStreamDest d;
	SPIExecuteOptions opts;
	SPIPlanPtr	plan;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the %s query: %s", what, SPI_result_code_string(SPI_result));
	/* one query returning rows, as a cursor would require */
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_CURSOR_DEFINITION),
				 errmsg("the %s must be one query that returns rows", what)));
	memset(&d, 0, sizeof(d));
	d.pub.receiveSlot = CaiStreamReceive;
	d.pub.rStartup = CaiStreamStartup;
	d.pub.rShutdown = CaiStreamShutdown;
	d.pub.rDestroy = CaiStreamDestroy;
	d.pub.mydest = DestNone;	/* not DestSPI: SPI keeps no tuple table */
	d.rows = rows;
	d.worker = worker;
	d.on_message = on_message;
	d.arg = arg;
	d.alive = true;
	memset(&opts, 0, sizeof(opts));
	opts.read_only = true;		/* the statement's snapshot, as the cursor had */
	opts.dest = &d.pub;
	ret = SPI_execute_plan_extended(plan, &opts);
	if (ret < 0)
		elog(ERROR, "could not run the %s query: %s", what, SPI_result_code_string(ret));
	if (d.alive)
		d.alive = CaiStreamSend(rows, worker, on_message, arg, 'E', NULL, 0, true);
	SPI_finish();
	return d.alive;
}
