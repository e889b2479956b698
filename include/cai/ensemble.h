/*
 * ensemble.h: a classifier that averages the class probabilities of whole
 * models, the "ensemble" architecture of text classification.
 *
 * An ensemble is built, not trained: with the search key "seeds": S,
 * cai_tune stores the mean of its best trial and S trainings of the same
 * options with other seeds; with "ensemble": N it keeps its best trials' models
 * and chooses up to N picks among them by
 * greedy forward selection on the validation rows (Caruana et al., "Ensemble
 * selection from libraries of models", ICML 2004: each pick, with
 * replacement, is the model whose addition scores best; the best prefix is
 * kept), so a model picked twice weighs twice.  The score is the mean
 * log-probability of the right class (then accuracy): on a few hundred
 * validation rows accuracy moves by whole rows and stops at the single best
 * model on noise, where the log-probability, a proper scoring rule, still
 * sees what averaging gains.  Any classifier of the
 * registry can be a member (not an ensemble itself); the members must have
 * the same labels in the same order.
 *
 * Model file (format.h):
 *   metadata                 the lead member's (the most picked, the best
 *                            on ties), with "architecture": "ensemble", its
 *                            own "metrics", and "ensemble": {"members": k,
 *                            "architectures": [..], "weights": [..]}
 *   ensemble.member.<i>      U8  (nbytes)   member i's whole model file, i < k
 *   ensemble.weights         F32 (k)        positive, finite; normalized at load
 * A prediction is the weighted mean of the members' probabilities.
 */
#ifndef CAI_ENSEMBLE_H
#define CAI_ENSEMBLE_H

#include "cai/model.h"

#define CAI_ENSEMBLE_MAX_MEMBERS 8

/*
 * Greedy selection with replacement on validation predictions: probs[m] is
 * model m's (n_rows, n_labels) probabilities, gold the rows' classes.  Each
 * of up to max_picks steps adds the model that gives the averaged picks the
 * best (mean log-probability of the gold class, then accuracy); counts[m]
 * gets how often model m is in the best prefix (at least one pick: the best
 * single model), *accuracy and *log_prob that prefix's validation accuracy
 * and mean log-probability (NAN without rows).
 */
void		cai_ensemble_select(const float *const *probs, int n_models, const int32_t *gold, size_t n_rows,
								int n_labels, int max_picks, int *counts, double *accuracy, double *log_prob);

/*
 * The validation probabilities of a model (bytes of a classifier) on the
 * validation rows of set: set->valid_texts when given, else the rows of
 * set->texts with is_valid[i] (cai_arch_validation_mask).  probs gets
 * (n_valid, n_labels) floats (cai_malloc'ed), gold the rows' classes.
 */
cai_status	cai_ensemble_validation(const uint8_t *model, size_t len, const cai_train_set *set, const bool *is_valid,
									float **probs, int32_t **gold, size_t *n_valid, cai_error *err);

/*
 * All of the above for models[0 .. n_models), best first: their validation
 * probabilities (cai_ensemble_validation), the picks (cai_ensemble_select,
 * up to max_picks; max_picks 0: no selection, every model once, as cai_tune's
 * "seeds" stores the mean of its trainings) into counts, and *report_json (cai_malloc'ed) the
 * chosen ensemble's classification report on the validation rows
 * (metrics.h, with set->label_names) with "score" (the accuracy, as
 * trainers' metrics have it), "log_prob" (its mean
 * log-probability of the right class) and "first_log_prob" (models[0]'s
 * alone), NULL when there are none.
 */
cai_status	cai_ensemble_choose(const uint8_t *const *models, const size_t *lens, int n_models, const cai_train_set *set,
								const bool *is_valid, int max_picks, int *counts, char **report_json, cai_error *err);

/*
 * The model file of the ensemble of models[i] weighted counts[i] (those with
 * counts[i] > 0, at most CAI_ENSEMBLE_MAX_MEMBERS), lead first (see above);
 * metrics_json (an object, or NULL: the lead's) becomes its "metrics".
 * CAI_ERR_INVALID when a model is no classifier, is an ensemble, or its
 * labels differ from the lead's.
 */
cai_status	cai_ensemble_write(const uint8_t *const *models, const size_t *lens, const int *counts, int n_models,
							   const char *metrics_json, uint8_t **out, size_t *out_len, cai_error *err);

/* The registry's functions of the architecture (model.c). */
cai_status	cai_ensemble_load(const cai_model_file *mf, void **impl, cai_error *err);
void		cai_ensemble_free(void *impl);
size_t		cai_ensemble_memory(const void *impl);
int			cai_ensemble_n_labels(const void *impl);
const char *cai_ensemble_label(const void *impl, int i);
bool		cai_ensemble_known_word(const void *impl, const char *word, size_t len);
cai_status	cai_ensemble_classify(const void *impl, const char *text, size_t len, float *probs, cai_error *err);
cai_status	cai_ensemble_classify_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n,
										float *probs, cai_error *err);

#endif							/* CAI_ENSEMBLE_H */
