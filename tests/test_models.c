/* Forward pass against other implementations: greedy ids and logits from ../shared/ref. */
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#include "test.h"

#define MAXTOK 1024

typedef struct {
    const char *model, *tokens, *logits; /* reference files (logits may be NULL) */
    double tol;                          /* max |logit difference| allowed */
    int n_ctx;
} ref_case;

/* Reads the logits lines "pos P input_token T argmax A logits: v v v" into rows[P]. */
static int read_ref_logits(const char *path, float *rows, int n_rows, int V) {
    char *text = test_read_file(path, NULL), *line;
    int got = 0;
    if (!text) return -1;
    for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        int pos;
        char *p = strstr(line, "logits:"), *nl = strchr(line, '\n');
        if (sscanf(line, "pos %d", &pos) != 1 || !p || (nl && p > nl) || pos < 0 || pos >= n_rows) continue;
        p += 7;
        for (int i = 0; i < V; i++) rows[(size_t)pos * V + i] = strtof(p, &p);
        got++;
    }
    free(text);
    return got;
}

/* Prompt and expected continuation from either reference format. */
static int read_ref_tokens(const char *path, int *prompt, int *n_prompt, int *gen, int *n_gen) {
    char *text = test_read_file(path, NULL);
    int seq[MAXTOK], n;
    if (!text) return 0;
    *n_prompt = test_parse_ids(text, "prompt_", prompt, MAXTOK);
    *n_gen = test_parse_ids(text, "generated_ids", gen, MAXTOK);
    if (*n_gen < 0 && (n = test_parse_ids(text, "sequence", seq, MAXTOK)) > *n_prompt) {
        *n_gen = n - *n_prompt;
        memcpy(gen, seq + *n_prompt, (size_t)*n_gen * sizeof(int));
    }
    free(text);
    return *n_prompt > 0 && *n_gen > 0;
}

static void run_case(const ref_case *rc, int n_batch) {
    tfm_model m;
    tfm_session s;
    tfm_session_config cfg;
    int prompt[MAXTOK], gen[MAXTOK], np, ng, i;
    int32_t toks[MAXTOK];
    float *all, *ref;
    tfm_result r;
    if (!test_exists(rc->model) || !read_ref_tokens(rc->tokens, prompt, &np, gen, &ng)) return;
    r = tfm_model_load(&m, rc->model);
    CHECK(r == TFM_OK, "%s: %s", rc->model, m.error);
    if (r != TFM_OK) return;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_ctx = rc->n_ctx;
    cfg.n_batch = n_batch;
    r = tfm_session_init(&s, &m, &cfg);
    CHECK(r == TFM_OK, "session: %s", s.error);
    all = (float *)malloc((size_t)np * m.hp.n_vocab * sizeof(float));
    ref = (float *)malloc((size_t)3 * m.hp.n_vocab * sizeof(float));
    for (i = 0; i < np; i++) toks[i] = prompt[i];
    r = tfm_session_eval(&s, toks, NULL, (size_t)np, all);
    CHECK(r == TFM_OK, "eval prompt: %s", s.error);
    if (rc->logits && read_ref_logits(rc->logits, ref, 3, m.hp.n_vocab) == 3) {
        double worst = 0;
        for (i = 0; i < 3 * m.hp.n_vocab && i < np * m.hp.n_vocab; i++) {
            double d = fabs((double)all[i] - ref[i]);
            worst = d > worst ? d : worst;
        }
        CHECK(worst <= rc->tol, "%s: logits at positions 0..2 differ by %.3g (> %.1g)", rc->model, worst, rc->tol);
        printf("  %s (n_batch %d): max |logit diff| positions 0..2 = %.3g\n", rc->model, n_batch, worst);
    }
    for (i = 0; i < ng; i++) {
        int32_t next = tfm_argmax(tfm_session_logits(&s, 0), m.hp.n_vocab);
        if (next != gen[i]) { CHECK(0, "%s: greedy id %d is %d, reference %d", rc->model, i, next, gen[i]); break; }
        if (i + 1 < ng && (r = tfm_session_eval(&s, &next, NULL, 1, NULL)) != TFM_OK) { CHECK(0, "eval: %s", s.error); break; }
    }
    if (i == ng) printf("  %s (n_batch %d): %d greedy ids equal the reference\n", rc->model, n_batch, ng);
    free(all);
    free(ref);
    tfm_session_free(&s);
    tfm_model_free(&m);
}

int main(void) {
    static const ref_case cases[] = {
        {"../shared/models/stories260K.gguf", "../shared/ref/stories260K_once_upon_t0_n256.tokens.txt",
         "../shared/ref/stories260K_once_upon_t0_n256.logits.txt", 1e-4, 256},
        {"../shared/models/llama-2-tiny-random.gguf", "../shared/ref/llama-2-tiny-random_hello_world_greedy32.llama.cpp.tokens.txt",
         "../shared/ref/llama-2-tiny-random_hello_world_greedy32.llama.cpp.logits.txt", 1e-4, 64},
        {"../shared/models/llama-q/llama-tiny-random.q8_0.gguf", "../shared/ref/llama-q/q8_0.hello.llamacpp.tokens.txt",
         "../shared/ref/llama-q/q8_0.hello.llamacpp.logits.txt", 1e-3, 64},
        {"../shared/models/llama-q/llama-tiny-random.q4_0.gguf", "../shared/ref/llama-q/q4_0.hello.llamacpp.tokens.txt",
         "../shared/ref/llama-q/q4_0.hello.llamacpp.logits.txt", 1e-3, 64},
        {"../shared/models/gpt2-A/gpt2-tiny-random-A.f32.gguf", "../shared/ref/gpt2-A/A.hello.hf424-float64.tokens.txt",
         "../shared/ref/gpt2-A/A.hello.hf424-float64.logits.txt", 1e-4, 128},
        {"../shared/models/gpt2-A/gpt2-tiny-random-A.f32.gguf", "../shared/ref/gpt2-A/A.once.hf424-float64.tokens.txt",
         "../shared/ref/gpt2-A/A.once.hf424-float64.logits.txt", 1e-4, 128},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], 0);
        run_case(&cases[i], 1); /* token by token through the same code */
    }
    return test_summary("test_models");
}
