/* Gradient check of tools/train.c: every parameter tensor's analytic gradient against central
   finite differences, in double precision on a tiny model; then AdamW steps on a fixed batch
   must lower the loss.
   cc -std=c99 -O2 -fopenmp tests/test_train_grad.c -o build/test_train_grad -lm */
#define TRAIN_DOUBLE
#define TRAIN_NO_MAIN
#include "../tools/train.c"

#define B_ 2
#define T_ 6

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

/* Weights far from the trained regime on purpose: large enough that attention is not uniform,
   norms not all one, so every path carries gradient. */
static void randomize_wide(tr_model *m, uint64_t seed) {
    tr_rng rng;
    rng.s = seed;
    for (int t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensors[t];
        for (int64_t i = 0; i < T->ne0 * T->ne1; i++)
            m->p[T->off + (size_t)i] = T->decay ? 0.5 * tr_rng_normal(&rng) : 1.0 + 0.3 * tr_rng_normal(&rng);
    }
}

static double loss_of(tr_model *m, const int *tok, const int *tgt) {
    int n;
    return tr_forward(m, tok, tgt, B_, T_, &n) / n;
}

int main(void) {
    tr_config c = {8, 2, 2, 1, 12, 20, 8}; /* dim, layers, heads, kv heads, ffn, vocab, context */
    tr_model m;
    tr_rng rng;
    int tok[B_ * T_], tgt[B_ * T_], n;
    const double eps = 1e-5, tol = 1e-6;
    double worst = 0;
    if (tr_model_init(&m, c, B_, T_)) { printf("FAIL: model init\n"); return 1; }
    randomize_wide(&m, 7);
    rng.s = 99;
    for (int i = 0; i < B_ * T_; i++) { tok[i] = (int)tr_rng_below(&rng, 20); tgt[i] = (int)tr_rng_below(&rng, 20); }
    tgt[3] = -1; /* an unscored position must not contribute */
    tr_forward(&m, tok, tgt, B_, T_, &n);
    tr_backward(&m, tok, B_, T_);
    check(n == B_ * T_ - 1, "scored positions counted");
    for (int t = 0; t < m.n_tensors; t++) {
        const tr_tensor *T = &m.tensors[t];
        double diff = 0, norm = 0, rel;
        char what[128];
        for (int64_t i = 0; i < T->ne0 * T->ne1; i++) {
            size_t j = T->off + (size_t)i;
            double keep = m.p[j], lp, lm, num;
            m.p[j] = keep + eps; lp = loss_of(&m, tok, tgt);
            m.p[j] = keep - eps; lm = loss_of(&m, tok, tgt);
            m.p[j] = keep;
            num = (lp - lm) / (2 * eps);
            diff += (num - m.g[j]) * (num - m.g[j]);
            norm += num * num + m.g[j] * m.g[j];
        }
        rel = sqrt(diff) / (sqrt(norm) > 1e-12 ? sqrt(norm) : 1e-12);
        if (rel > worst) worst = rel;
        snprintf(what, sizeof what, "gradient of %-26s relative error %.2e (tolerance %.0e, |g| %.3e)", T->name, rel, tol, sqrt(norm));
        check(rel < tol && norm > 1e-20, what);
    }
    printf("worst relative error %.2e over %d tensors\n", worst, m.n_tensors);

    /* A few AdamW steps on one fixed batch must fit it. */
    {
        tr_hparams h;
        double first, last = 0;
        char what[128];
        memset(&h, 0, sizeof h);
        h.steps = 100; h.warmup = 1; h.lr = 1e-2;
        h = tr_hparams_defaults(h);
        tr_model_randomize(&m, 3);
        first = loss_of(&m, tok, tgt);
        for (int s = 0; s < h.steps; s++) {
            last = loss_of(&m, tok, tgt);
            tr_backward(&m, tok, B_, T_);
            tr_adamw(&m, &h, s, tr_lr_at(&h, s), tr_grad_norm(&m));
        }
        last = loss_of(&m, tok, tgt);
        snprintf(what, sizeof what, "100 AdamW steps on a fixed batch: loss %.4f -> %.4f (must drop below half)", first, last);
        check(last < 0.5 * first, what);
    }
    tr_model_free(&m);
    printf("%s\n", failures ? "test_train_grad: FAILED" : "test_train_grad: all passed");
    return failures != 0;
}
