/*
 * metrics.h: evaluation reports.
 *
 * Classification: the same numbers as scikit-learn's classification_report
 * (precision, recall, F1, support per class; accuracy; macro and weighted
 * averages; zero_division = 0) plus the confusion matrix.
 *
 * Sequence labelling: entity-level scores counted exactly as the CoNLL
 * shared-task conlleval script counts them.
 */
#ifndef CAI_METRICS_H
#define CAI_METRICS_H

#include "cai/common.h"

/*
 * Report for gold/pred class indices (n each) over n_labels classes as a JSON
 * object text (cai_malloc'ed):
 * {"accuracy": .., "macro_f1": .., "weighted_f1": ..,
 *  "classes": {"<label>": {"precision":..,"recall":..,"f1":..,"support":..}, ...},
 *  "macro avg": {...}, "weighted avg": {...},
 *  "confusion_matrix": {"labels": [..], "matrix": [[..], ..]}  (rows = gold, columns = predicted),
 *  "n": ..}
 */
cai_status	cai_classification_report(const int32_t *gold, const int32_t *pred, size_t n,
									  const char *const *label_names, int n_labels,
									  char **json_out, cai_error *err);

/* Convenience: accuracy and macro-F1 without building JSON. */
void		cai_classification_scores(const int32_t *gold, const int32_t *pred, size_t n,
									  int n_labels, double *accuracy, double *macro_f1);

#endif							/* CAI_METRICS_H */
