/*
 * cai_cli.h: what the files of the cai command share (src/cli).
 */
#ifndef CAI_CLI_H
#define CAI_CLI_H

#include "cai/cai.h"

enum
{
	EXIT_RUN = 1,
	EXIT_USAGE = 2,
	EXIT_MODEL = 3,
	EXIT_TASK = 4,
	EXIT_INPUT = 5
};

/*
 * cai_encoder.c: the encoder of `cai train --encoder PATH`: a checkpoint
 * directory (config.json, vocab.txt, model.safetensors; uncased), or a model
 * file holding an encoder (an encoder model, or a transformer model's); the
 * exit status and a message in msg on failure (0 on success).  Release it
 * with cli_encoder_close.
 */
int			cli_encoder_open(const char *path, const cai_encoder_bundle **out, char *msg, size_t cap);
void		cli_encoder_close(const cai_encoder_bundle *b);

/*
 * `cai embed MODEL [FILE|-]`: one text a line -> one vector a line (its
 * floats separated by spaces, %.9g: they read back exactly), from an
 * encoder model or the encoder of a fine-tuned transformer model; pooling
 * "mean" or "cls", max_length 0: the encoder's positions.  Returns the exit
 * status; msg gets the error.
 */
int			cli_embed(const char *model, const char *input, const char *pooling, int max_length, char *msg,
					  size_t cap);

#endif							/* CAI_CLI_H */
