/*
 * pretrain_internal.h: the parts of pretraining the unit tests reach
 * (internal to src/core): whole-word masking and the MLM head.
 */
#ifndef CAI_PRETRAIN_INTERNAL_H
#define CAI_PRETRAIN_INTERNAL_H

#include "cai/common.h"

/* What a piece of a packed sequence is, for masking. */
#define CAI_PT_SPECIAL	0		/* [CLS], [SEP], padding: never masked */
#define CAI_PT_START	1		/* the first piece of a word */
#define CAI_PT_CONT		2		/* a "##" piece continuing the word before */

/*
 * Whole-word masking of one sequence ids[0..len) whose pieces are kind[]:
 * words (a START piece and the CONT pieces after it) in an order drawn
 * from rng are taken while their pieces fit in the budget
 * min(max_pred, max(1, round(frac * real pieces))); each piece of a taken
 * word, in position order, becomes mask_id (p 0.8), a random id in
 * [first_id, V) (p 0.1) or stays (p 0.1).  inp[0..len) gets the input ids,
 * pos[] and tgt[] the masked positions (ascending) and their original ids.
 * scratch: 2 * len ints.  Returns the number of masked pieces.
 */
int			cai_pt_mask(const int32_t *ids, const uint8_t *kind, int len, float frac, int max_pred,
						int32_t first_id, int32_t V, int32_t mask_id, cai_rng *rng,
						int32_t *inp, int32_t *pos, int32_t *tgt, int32_t *scratch);

/* The MLM head's parameters: views into one slab of cai_mlm_head_size(H, V) floats. */
typedef struct cai_mlm_head
{
	int			H;
	int			V;
	float	   *w;				/* (H, H) dense */
	float	   *b;				/* (H) */
	float	   *ln_g;			/* (H) */
	float	   *ln_b;			/* (H) */
	float	   *dec_b;			/* (V) decoder bias; the decoder weight is the word table */
} cai_mlm_head;

size_t		cai_mlm_head_size(int H, int V);
void		cai_mlm_head_views(float *slab, int H, int V, cai_mlm_head *h);

/* Activations of P rows (cai_mlm_acts_floats(P, H, V) floats, one block). */
typedef struct cai_mlm_acts
{
	float	   *h1;				/* (P, H) dense output */
	float	   *ga;				/* (P, H) gelu */
	float	   *hn;				/* (P, H) LayerNorm */
	float	   *mean;			/* (P) */
	float	   *rstd;			/* (P) */
	float	   *logits;			/* (P, V) probabilities after forward, dlogits after backward */
	float	   *dn;				/* (P, H) */
	float	   *dga;			/* (P, H) */
	float	   *dh1;			/* (P, H) */
} cai_mlm_acts;

size_t		cai_mlm_acts_floats(int P, int H, int V);
void		cai_mlm_acts_views(float *block, int P, int H, int V, cai_mlm_acts *a);

/*
 * Forward of x (P, H) (the encoder's outputs at the masked positions) with
 * targets tgt (P): *loss_sum the summed cross-entropy, *correct the rows
 * whose most probable token is the target.  word: (V, H), the encoder's.
 */
cai_status	cai_mlm_forward(const cai_mlm_head *h, const float *word, const float *x, const int32_t *tgt,
							int P, float eps, cai_mlm_acts *a, double *loss_sum, int *correct,
							cai_error *err);

/*
 * Backward of the last forward for the loss scale * loss_sum: ADDS the
 * head's gradients into g (a head of the same shape), the decoder's into
 * dword (V, H) and sets dx (P, H).
 */
void		cai_mlm_backward(const cai_mlm_head *h, const float *word, const float *x, const int32_t *tgt,
							 int P, float scale, cai_mlm_acts *a, cai_mlm_head *g, float *dword, float *dx);

#endif							/* CAI_PRETRAIN_INTERNAL_H */
