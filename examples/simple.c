/* simple - the smallest complete use of tfm.h: load, tokenize, generate greedily, print.
   cc -O2 -I. examples/simple.c -lm -o build/simple && build/simple models/tfm-kjv.gguf "In the beginning" */
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    tfm_model model;
    tfm_session session;
    int32_t tokens[512], next;
    size_t n, i;
    char piece[128];
    if (argc < 3) { fprintf(stderr, "usage: simple model.gguf \"prompt\"\n"); return 2; }
    if (tfm_model_load(&model, argv[1]) != TFM_OK) { fprintf(stderr, "%s\n", model.error); return 1; }
    if (tfm_session_init(&session, &model, NULL) != TFM_OK) { fprintf(stderr, "%s\n", session.error); return 1; }
    if (tfm_tokenize(&model.vocab, argv[2], strlen(argv[2]), 1, tokens, 512, &n) != TFM_OK) return 1;
    if (tfm_session_eval(&session, tokens, NULL, n, NULL) != TFM_OK) { fprintf(stderr, "%s\n", session.error); return 1; }
    printf("%s", argv[2]);
    for (i = 0; i < 60; i++) {
        next = tfm_argmax(tfm_session_logits(&session, 0), model.hp.n_vocab);
        if (next == model.vocab.eos_id) break;
        fwrite(piece, 1, tfm_token_to_piece(&model.vocab, tokens[n - 1], next, piece, sizeof piece), stdout);
        tokens[n - 1] = next; /* only the previous token matters for decoding */
        if (tfm_session_eval(&session, &next, NULL, 1, NULL) != TFM_OK) break;
    }
    printf("\n");
    tfm_session_free(&session);
    tfm_model_free(&model);
    return 0;
}
