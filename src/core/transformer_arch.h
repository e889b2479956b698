/*
 * transformer_arch.h: the "transformer" architecture's entry points for the
 * registry (model.c); see transformer_internal.h.  Internal header of the
 * core, beside its sources.
 */
#ifndef CAI_TRANSFORMER_ARCH_H
#define CAI_TRANSFORMER_ARCH_H

#include "cai/encoder_model.h"
#include "cai/model.h"

/* The registry's entry points (model.c). */
extern const cai_opt_def cai_tf_textclf_option_defs[];
extern const int cai_tf_textclf_n_option_defs;
extern const cai_opt_def cai_tf_ner_option_defs[];
extern const int cai_tf_ner_n_option_defs;

cai_status	cai_tf_load(const cai_model_file *mf, void **impl, cai_error *err);
void		cai_tf_free(void *impl);
size_t		cai_tf_memory(const void *impl);
int			cai_tf_n_labels(const void *impl);
const char *cai_tf_label(const void *impl, int i);
bool		cai_tf_known_word(const void *impl, const char *word, size_t len);
const cai_encoder_bundle *cai_tf_encoder(const void *impl);
cai_status	cai_tf_classify(const void *impl, const char *text, size_t len, float *probs, cai_error *err);
cai_status	cai_tf_classify_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n,
								  float *probs, cai_error *err);
cai_status	cai_tf_tag(const void *impl, const char *const *tokens, const size_t *lens, size_t n,
					   const char **tags_out, float *scores, cai_error *err);
cai_status	cai_tf_tag_batch(const void *impl, const cai_ner_data *data, const char **tags_out, float *scores,
							 cai_error *err);
cai_status	cai_tf_entities(const void *impl, const char *text, size_t len, size_t max_tokens,
							cai_entity **out, size_t *n_out, cai_error *err);
cai_status	cai_tf_entities_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n,
								  size_t max_tokens, cai_entity **out, size_t *offsets, cai_error *err);

size_t		cai_tf_train_memory(const cai_options *opts, const cai_train_set *set);
cai_status	cai_tf_train(const cai_options *opts, const cai_train_set *set, const char *provenance_json,
						 cai_progress_fn progress, void *progress_ctx, uint8_t **model, size_t *model_len,
						 char **metrics_json, cai_error *err);
cai_status	cai_tf_gradcheck(const cai_options *opts, const cai_train_set *set, int samples, double *max_rel_err,
							 cai_error *err);

#endif							/* CAI_TRANSFORMER_ARCH_H */
