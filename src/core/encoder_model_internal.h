/*
 * encoder_model_internal.h: the encoder part of model bytes (see
 * encoder_model.h), shared by the "encoder" model (encoder_model.c) and the
 * fine-tuned transformer models (transformer*.c).
 *
 * Internal header of the core, beside its sources.
 */
#ifndef CAI_ENCODER_MODEL_INTERNAL_H
#define CAI_ENCODER_MODEL_INTERNAL_H

#include "cai/encoder_model.h"
#include "cai/format.h"

struct json_object;

#define CAI_ENC_PARAMS_TENSOR "encoder.params"
#define CAI_ENC_VOCAB_TENSOR "encoder.vocab"

/*
 * The two tensors of b's encoder (t[0] the slab, t[1] the vocabulary); the
 * vocabulary's vocab.txt bytes are made in *vocab_txt (cai_malloc'ed; free
 * it after writing).  t[0] points at b's parameters.
 */
cai_status	cai_encoder_bundle_tensors(const cai_encoder_bundle *b, cai_tensor t[2], char **vocab_txt,
									   cai_error *err);

/* The "encoder" metadata section of b (a new object; NULL out of memory). */
struct json_object *cai_encoder_bundle_meta(const cai_encoder_bundle *b);

/*
 * A bundle read from a validated model file: the section (the metadata's
 * "encoder" object) and the two tensors; the encoder views the file's slab
 * (the file must outlive the bundle).  Contents are scanned (finite
 * weights) unless mf->trusted.
 */
cai_status	cai_encoder_bundle_load(const cai_model_file *mf, struct json_object *section,
									cai_encoder_bundle **out, cai_error *err);

/*
 * A copy of src that owns its parameters (writable: for fine-tuning) and
 * its vocabulary, with the dropout probabilities of cfg replaced by
 * dropout unless it is negative.
 */
cai_status	cai_encoder_bundle_copy(const cai_encoder_bundle *src, float dropout, cai_encoder_bundle **out,
									cai_error *err);

/* Model-file entry points of the "bert" architecture (model.c's registry). */
cai_status	cai_encoder_model_load(const cai_model_file *mf, void **impl, cai_error *err);
size_t		cai_encoder_bundle_memory(const cai_encoder_bundle *b);
bool		cai_encoder_bundle_known_word(const cai_encoder_bundle *b, const char *word, size_t len);

#endif							/* CAI_ENCODER_MODEL_INTERNAL_H */
