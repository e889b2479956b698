/*
 * textclf_internal.h: what textclf.c (the public entry points and the fast
 * architecture) shares with textclf_accurate.c (the accurate architecture).
 * Not a public header: the SQL layer uses textclf.h only.
 */
#ifndef CAI_TEXTCLF_INTERNAL_H
#define CAI_TEXTCLF_INTERNAL_H

#include "cai/textclf.h"

struct json_object;

typedef struct cai_textclf_accurate cai_textclf_accurate;

/*
 * Train the accurate architecture.  The caller (cai_textclf_train) has
 * validated the labels and data; prov is the provenance object, which this
 * function extends and embeds in the model metadata.
 */
cai_status	cai_textclf_accurate_train(const cai_options *opts,
									   const char *const *label_names, int n_labels,
									   const cai_textclf_data *train,
									   const cai_textclf_data *valid,
									   struct json_object *prov,
									   cai_progress_fn progress, void *progress_ctx,
									   uint8_t **model, size_t *model_len,
									   char **metrics_json, cai_error *err);

/*
 * Build the accurate model from a model file whose metadata (meta, parsed)
 * the caller has checked for task, labels and architecture.  *mem gets the
 * bytes the model occupies.
 */
cai_status	cai_textclf_accurate_load(const cai_model_file *mf, struct json_object *meta,
									  int n_labels, cai_textclf_accurate **out,
									  size_t *mem, cai_error *err);
void		cai_textclf_accurate_free(cai_textclf_accurate *m);

/* Class probabilities (n_labels floats); per-call scratch, m is not modified. */
cai_status	cai_textclf_accurate_predict(const cai_textclf_accurate *m,
										 const char *text, size_t len,
										 float *probs, cai_error *err);

/* Upper estimate of the bytes the accurate training allocates. */
size_t		cai_textclf_accurate_train_memory(const cai_options *opts,
											  const cai_textclf_data *train, int n_labels);

#endif							/* CAI_TEXTCLF_INTERNAL_H */
