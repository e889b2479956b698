/*
 * cai.h: the one header of libcai, the cai_synergy core as a C library
 * without PostgreSQL (build/libcai.a, build/libcai.so; `make -f core.mk lib`).
 *
 * Every header under include/cai/ is public: what they declare is exported
 * by libcai.so (core.mk generates its version script from these headers) and
 * nothing else is.  Most programs need only what this file includes:
 *
 *   common.h    statuses, errors, allocator hook, BLAS threads, progress
 *   format.h    the model bytes (what cai_export writes), read and verify
 *   options.h   training options: parse, read, list
 *   model.h     the registry: load a model, classify, tag, entities, train
 *   metrics.h   classification reports (cai_evaluate's numbers)
 *   ner.h       tagging data, entities, conlleval scoring (cai_conll_eval)
 *   vectors.h   word vector sets
 *   encoder_model.h  pretrained encoders: checkpoints, sentence embeddings
 *
 * The lower-level headers (ops.h, lstm.h, crf.h, optim.h, tokenize.h,
 * chunks.h, textclf.h) are the building blocks the models use; they are
 * exported too, but their interfaces change more often.  src/cli/cai.c, the
 * `cai` command, uses only this header.
 *
 * Threads: a loaded cai_model is only read by the run functions, so one model
 * may serve several threads; cai_set_allocator must be called (if at all)
 * before anything else.
 */
#ifndef CAI_CAI_H
#define CAI_CAI_H

#include "cai/common.h"
#include "cai/encoder_model.h"
#include "cai/ensemble.h"
#include "cai/format.h"
#include "cai/metrics.h"
#include "cai/model.h"
#include "cai/ner.h"
#include "cai/options.h"
#include "cai/vectors.h"

#endif							/* CAI_CAI_H */
