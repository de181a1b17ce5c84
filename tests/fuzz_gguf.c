/* libFuzzer target for the GGUF reader and model loader:
   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz_gguf.c -o build/fuzz_gguf -lm
   build/fuzz_gguf -max_total_time=60 */
#define TFM_IMPLEMENTATION
#include "../tfm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tfm_gguf g;
    tfm_model m;
    if (tfm_gguf_init(&g, data, size) != TFM_OK) return 0;
    if (tfm_model_init(&m, &g) == TFM_OK) {
        tfm_session s;
        tfm_session_config c;
        memset(&c, 0, sizeof c);
        c.n_ctx = 4;
        if (tfm_session_init(&s, &m, &c) == TFM_OK) {
            int32_t t = 0;
            tfm_session_eval(&s, &t, NULL, 1, NULL);
            tfm_session_free(&s);
        }
        tfm_model_free(&m);
    }
    tfm_gguf_free(&g);
    return 0;
}
