/*
 * encoder_bench.c: time the encoder's forward pass (inference) and one
 * training step (forward and backward with dropout on, then AdamW over the
 * whole parameter slab) on a randomly initialised encoder, with the matrix
 * products on OpenBLAS and on the core's own SGEMM (src/core/gemm.h),
 * interleaved: each repetition runs both.
 *
 *   build/bench/encoder_bench [H L heads I B T threads reps]
 *
 * Defaults: BERT-base's shape (768 12 12 3072), B = 8, T = 128, 1 BLAS
 * thread, 3 repetitions after an untimed one (as the PyTorch peer,
 * bench/peers/transformer_torch.py); with threads > 1 each kernel's forward
 * starts 0.3 s after the other's last call (OpenBLAS's threads stop
 * spinning); prints the memory estimate, the median times of
 * each kernel and, for bench/transformer.sh, lines
 * "RESULT kernel forward_s train_s" (medians).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "cai/encoder.h"
#include "cai/optim.h"
#include "../src/core/gemm.h"

#define N_KERNELS 2

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
	double	   *tf[N_KERNELS];
	double	   *tb[N_KERNELS];
	cai_gemm_isa kernels[N_KERNELS] = {CAI_GEMM_BLAS, cai_gemm_cpu_isa()};
	int			n_kernels = cai_gemm_cpu_isa() == CAI_GEMM_AVX512 ? 2 : 1;
	const cai_optim_config adamw = cai_optim_defaults(CAI_OPTIM_ADAMW);
	float	   *m;
	float	   *v;
	int64_t		step = 0;
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
	m = calloc(enc->n_params, sizeof(float));
	v = calloc(enc->n_params, sizeof(float));
	for (int q = 0; q < N_KERNELS; q++)
	{
		tf[q] = malloc(sizeof(double) * reps);
		tb[q] = malloc(sizeof(double) * reps);
	}
	if (m == NULL || v == NULL)
	{
		fprintf(stderr, "encoder_bench: out of memory for the AdamW moments\n");
		return 1;
	}
	for (int r = 0; r < B * T; r++)
	{
		ids[r] = (int32_t) cai_rng_below(&rng, (uint32_t) cfg.vocab_size);
		mask[r] = (r % T) < T - (r / T) % 8;	/* a few padded positions per sequence */
	}
	for (size_t i = 0; i < (size_t) B * T * cfg.hidden_size; i++)
		dout[i] = cai_rng_normal(&rng) * 1e-3f;
	/* k = -1: an untimed round first (first-touch allocations, thread start), as the PyTorch peer does */
	for (int k = -1; k < reps; k++)
		for (int q = 0; q < n_kernels; q++)
		{
			double		t0;

			cai_gemm_encoder_use(kernels[q]);
			if (threads > 1)
			{
				/*
				 * OpenBLAS's worker threads spin (sched_yield) for about
				 * 0.1 s after its last threaded call (bench/gemm.c): the
				 * other kernel timed meanwhile would share a core with
				 * them.  Every config waits, the same way.
				 */
				struct timespec ts = {0, 300000000L};

				nanosleep(&ts, NULL);
			}
			t0 = now();
			if (cai_encoder_forward(enc, inf, ids, NULL, mask, false, NULL, &err) != CAI_OK)
				break;
			if (k >= 0)
				tf[q][k] = now() - t0;
			t0 = now();
			cai_encoder_grads_zero(grads);
			if (cai_encoder_forward(enc, train, ids, NULL, mask, true, &rng, &err) != CAI_OK ||
				cai_encoder_backward(enc, train, grads, dout, ids, NULL, mask, &err) != CAI_OK)
				break;
			cai_optim_step(&adamw, 1e-5f, ++step, enc->params, grads->data, m, v, enc->n_params);
			if (k >= 0)
				tb[q][k] = now() - t0;
		}
	if (err.status != CAI_OK)
	{
		fprintf(stderr, "encoder_bench: %s\n", err.msg);
		return 1;
	}
	printf("encoder H=%d L=%d heads=%d I=%d, batch %d x %d, %d BLAS thread(s): %zu parameters\n",
		   cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size, B, T, threads,
		   enc->n_params);
	printf("memory estimate: inference %.1f MB, training %.1f MB\n", bytes_inf / 1048576.0, bytes_train / 1048576.0);
	for (int q = 0; q < n_kernels; q++)
	{
		const char *name = cai_gemm_isa_name(kernels[q]);

		qsort(tf[q], (size_t) reps, sizeof(double), cmp_double);
		qsort(tb[q], (size_t) reps, sizeof(double), cmp_double);
		printf("%s: forward (inference): %.3f s median of %d (%.2f sequences/s)\n", name, tf[q][reps / 2], reps,
			   B / tf[q][reps / 2]);
		printf("%s: training step (forward + backward + AdamW): %.3f s median of %d (%.2f sequences/s)\n", name,
			   tb[q][reps / 2], reps, B / tb[q][reps / 2]);
		printf("RESULT %s %.4f %.4f\n", name, tf[q][reps / 2], tb[q][reps / 2]);
	}
	if (n_kernels == 2)
		printf("core / OpenBLAS speed: forward %.2fx, training step %.2fx\n", tf[0][reps / 2] / tf[1][reps / 2],
			   tb[0][reps / 2] / tb[1][reps / 2]);
	free(ids);
	free(mask);
	free(dout);
	for (int q = 0; q < N_KERNELS; q++)
	{
		free(tf[q]);
		free(tb[q]);
	}
	free(m);
	free(v);
	cai_encoder_acts_free(inf);
	cai_encoder_acts_free(train);
	cai_encoder_grads_free(grads);
	cai_encoder_free(enc);
	return 0;
}
