/*
 * encoder_bench.c: time the encoder's forward pass (inference) and forward +
 * backward pass (training, dropout on) on a randomly initialised encoder.
 *
 *   build/bench/encoder_bench [H L heads I B T threads reps]
 *
 * Defaults: BERT-base's shape (768 12 12 3072), B = 8, T = 128, 1 BLAS
 * thread, 3 repetitions; prints the memory estimate and the median times.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "cai/encoder.h"

int
main(int argc, char **argv)
{
	cai_encoder_config cfg = {
		.vocab_size = 30522, .hidden_size = 768, .num_hidden_layers = 12, .num_attention_heads = 12,
		.intermediate_size = 3072, .max_position_embeddings = 512, .type_vocab_size = 2,
		.layer_norm_eps = 1e-12f, .hidden_dropout_prob = 0.1f, .attention_probs_dropout_prob = 0.1f,
	};
	int			B = 8;
	int			T = 128;
	int			threads = 1;
	int			reps = 3;
	cai_encoder *enc = NULL;
	cai_encoder_grads *grads = NULL;
	cai_encoder_acts *inf = NULL;
	cai_encoder_acts *train = NULL;
	cai_error	err = {0};
	cai_rng		rng;
	int32_t    *ids;
	uint8_t    *mask;
	float	   *dout;
	double	   *tf;
	double	   *tb;
	size_t		bytes_inf = 0;
	size_t		bytes_train = 0;

	if (argc > 1)
		cfg.hidden_size = atoi(argv[1]);
	if (argc > 2)
		cfg.num_hidden_layers = atoi(argv[2]);
	if (argc > 3)
		cfg.num_attention_heads = atoi(argv[3]);
	if (argc > 4)
		cfg.intermediate_size = atoi(argv[4]);
	if (argc > 5)
		B = atoi(argv[5]);
	if (argc > 6)
		T = atoi(argv[6]);
	if (argc > 7)
		threads = atoi(argv[7]);
	if (argc > 8)
		reps = atoi(argv[8]);
	if (reps < 1)
		reps = 1;
	cai_blas_set_threads(threads);
	if (cai_encoder_memory_check(&cfg, B, T, false, 0, &bytes_inf, &err) != CAI_OK ||
		cai_encoder_memory_check(&cfg, B, T, true, 0, &bytes_train, &err) != CAI_OK ||
		cai_encoder_create(&cfg, &enc, &err) != CAI_OK || cai_encoder_grads_create(enc, &grads, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, B, T, false, &inf, &err) != CAI_OK ||
		cai_encoder_acts_create(&cfg, B, T, true, &train, &err) != CAI_OK)
	{
		fprintf(stderr, "encoder_bench: %s\n", err.msg);
		return 1;
	}
	cai_rng_seed(&rng, 1);
	cai_encoder_init_random(enc, 0.02f, &rng);
	ids = malloc(sizeof(int32_t) * B * T);
	mask = malloc((size_t) B * T);
	dout = malloc(sizeof(float) * B * T * cfg.hidden_size);
	tf = malloc(sizeof(double) * reps);
	tb = malloc(sizeof(double) * reps);
	for (int r = 0; r < B * T; r++)
	{
		ids[r] = (int32_t) cai_rng_below(&rng, (uint32_t) cfg.vocab_size);
		mask[r] = (r % T) < T - (r / T) % 8;	/* a few padded positions per sequence */
	}
	for (size_t i = 0; i < (size_t) B * T * cfg.hidden_size; i++)
		dout[i] = cai_rng_normal(&rng) * 1e-3f;
	for (int k = 0; k < reps; k++)
	{
		double		t0 = now();

		if (cai_encoder_forward(enc, inf, ids, NULL, mask, false, NULL, &err) != CAI_OK)
			break;
		tf[k] = now() - t0;
		t0 = now();
		if (cai_encoder_forward(enc, train, ids, NULL, mask, true, &rng, &err) != CAI_OK ||
			cai_encoder_backward(enc, train, grads, dout, ids, NULL, mask, &err) != CAI_OK)
			break;
		tb[k] = now() - t0;
	}
	if (err.status != CAI_OK)
	{
		fprintf(stderr, "encoder_bench: %s\n", err.msg);
		return 1;
	}
	qsort(tf, (size_t) reps, sizeof(double), cmp_double);
	qsort(tb, (size_t) reps, sizeof(double), cmp_double);
	printf("encoder H=%d L=%d heads=%d I=%d, batch %d x %d, %d BLAS thread(s): %zu parameters\n",
		   cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size, B, T, threads,
		   enc->n_params);
	printf("memory estimate: inference %.1f MB, training %.1f MB\n", bytes_inf / 1048576.0, bytes_train / 1048576.0);
	printf("forward (inference): %.3f s median of %d (%.0f tokens/s)\n", tf[reps / 2], reps, B * T / tf[reps / 2]);
	printf("forward + backward (training): %.3f s median of %d (%.0f tokens/s)\n", tb[reps / 2], reps,
		   B * T / tb[reps / 2]);
	free(ids);
	free(mask);
	free(dout);
	free(tf);
	free(tb);
	cai_encoder_acts_free(inf);
	cai_encoder_acts_free(train);
	cai_encoder_grads_free(grads);
	cai_encoder_free(enc);
	return 0;
}
