/* The sampler against hand-worked distributions: each processor's effect is computed here by hand
   (or from the softmax formula) and compared with the empirical frequencies of many draws. */
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#include "test.h"

#define V 6
#define DRAWS 200000

/* Frequencies of DRAWS samples. */
static void frequencies(const tfm_sampler_config *cfg, const float *logits, const int32_t *hist, size_t nh, double *freq) {
    tfm_sampler s;
    int i;
    CHECK(tfm_sampler_init(&s, cfg, V) == TFM_OK, "sampler init");
    for (i = 0; i < V; i++) freq[i] = 0;
    for (i = 0; i < DRAWS; i++) {
        int32_t t = tfm_sample(&s, logits, hist, nh);
        CHECK(t >= 0 && t < V, "sample in range");
        if (t >= 0 && t < V) freq[t] += 1.0 / DRAWS;
    }
    tfm_sampler_free(&s);
}

/* Expected distribution: softmax(logits / T) restricted to `keep`, renormalized. */
static void expected(const float *logits, float T, const int *keep, double *p) {
    double sum = 0;
    int i;
    for (i = 0; i < V; i++) { p[i] = keep[i] ? exp(logits[i] / T) : 0; sum += p[i]; }
    for (i = 0; i < V; i++) p[i] /= sum;
}

static void compare(const char *what, const double *got, const double *want) {
    double worst = 0;
    int i;
    for (i = 0; i < V; i++) {
        /* 5 standard deviations of a frequency over DRAWS draws, plus exact zeros */
        double sd = sqrt(want[i] * (1 - want[i]) / DRAWS) + 1e-9, d = fabs(got[i] - want[i]);
        if (want[i] == 0) CHECK(got[i] == 0, "%s: token %d drawn though filtered out", what, i);
        else CHECK(d < 5 * sd + 1e-4, "%s: token %d frequency %.4f, want %.4f", what, i, got[i], want[i]);
        worst = d > worst ? d : worst;
    }
    printf("  %-40s max |freq - p| = %.4f\n", what, worst);
}

int main(void) {
    /* probabilities at T = 1: softmax of these logits is about .43 .26 .16 .09 .04 .02 */
    const float logits[V] = {2.0f, 1.5f, 1.0f, 0.4f, -0.4f, -1.1f};
    tfm_sampler_config c;
    double got[V], want[V];
    int keep[V] = {1, 1, 1, 1, 1, 1};

    { /* temperature 0: greedy whatever else is set; ties go to the lowest id */
        tfm_sampler s;
        const float tie[V] = {0, 3, 1, 3, 2, -1};
        memset(&c, 0, sizeof c);
        c.top_k = 3; c.top_p = 0.5f; c.repeat_penalty = 5; c.seed = 7;
        tfm_sampler_init(&s, &c, V);
        CHECK(tfm_sample(&s, tie, NULL, 0) == 1, "greedy tie goes to the lowest id");
        CHECK(tfm_sample(&s, logits, NULL, 0) == 0, "greedy");
        tfm_sampler_free(&s);
    }
    memset(&c, 0, sizeof c);
    c.temperature = 1; c.seed = 1;
    frequencies(&c, logits, NULL, 0, got);
    expected(logits, 1, keep, want);
    compare("temperature 1", got, want);

    c.temperature = 0.5f;
    frequencies(&c, logits, NULL, 0, got);
    expected(logits, 0.5f, keep, want);
    compare("temperature 0.5", got, want);

    c.temperature = 1; c.top_k = 2;
    frequencies(&c, logits, NULL, 0, got);
    { int k2[V] = {1, 1, 0, 0, 0, 0}; expected(logits, 1, k2, want); }
    compare("top-k 2", got, want);

    /* top-p 0.8: cumulative .43, .69, .85 -> the first three tokens reach 0.8 */
    c.top_k = 0; c.top_p = 0.8f;
    frequencies(&c, logits, NULL, 0, got);
    { int k3[V] = {1, 1, 1, 0, 0, 0}; expected(logits, 1, k3, want); }
    compare("top-p 0.8", got, want);

    /* min-p 0.2: keep p >= 0.2 * 0.43 = .086 -> tokens 0..3 (p3 = .093) */
    c.top_p = 0; c.min_p = 0.2f;
    frequencies(&c, logits, NULL, 0, got);
    { int k4[V] = {1, 1, 1, 1, 0, 0}; expected(logits, 1, k4, want); }
    compare("min-p 0.2", got, want);

    /* repetition penalty 2 on tokens 0 and 4 (4 listed twice, penalized once):
       2.0 -> 1.0 (positive: divided), -0.4 -> -0.8 (negative: multiplied) */
    {
        const int32_t hist[4] = {0, 4, 4, 3};
        float pen[V];
        memcpy(pen, logits, sizeof pen);
        pen[0] = 1.0f; pen[4] = -0.8f; pen[3] = 0.2f;
        c.min_p = 0; c.repeat_penalty = 2; c.repeat_last_n = 3; /* only the last 3: 4, 4, 3 */
        frequencies(&c, logits, hist, 4, got);
        pen[0] = 2.0f; /* token 0 is outside the last 3 */
        expected(pen, 1, keep, want);
        compare("repeat penalty 2, last 3", got, want);
    }
    { /* the same seed gives the same sequence; another seed another one */
        tfm_sampler a, b;
        int i, same = 1, differ = 0;
        memset(&c, 0, sizeof c);
        c.temperature = 1; c.seed = 42;
        tfm_sampler_init(&a, &c, V);
        tfm_sampler_init(&b, &c, V);
        for (i = 0; i < 100; i++) same &= tfm_sample(&a, logits, NULL, 0) == tfm_sample(&b, logits, NULL, 0);
        tfm_sampler_free(&b);
        c.seed = 43;
        tfm_sampler_init(&b, &c, V);
        for (i = 0; i < 100; i++) differ |= tfm_sample(&a, logits, NULL, 0) != tfm_sample(&b, logits, NULL, 0);
        CHECK(same && differ, "seeded reproducibility");
        tfm_sampler_free(&a);
        tfm_sampler_free(&b);
    }
    { /* bad settings and arguments */
        tfm_sampler s;
        memset(&c, 0, sizeof c);
        c.temperature = -1;
        CHECK(tfm_sampler_init(&s, &c, V) == TFM_ERR_ARG, "negative temperature");
        c.temperature = 1; c.min_p = 2;
        CHECK(tfm_sampler_init(&s, &c, V) == TFM_ERR_ARG, "min-p above 1");
        CHECK(tfm_sampler_init(&s, NULL, 0) == TFM_ERR_ARG, "empty vocabulary");
        CHECK(tfm_sample(NULL, logits, NULL, 0) == -1, "NULL sampler");
    }
    { /* non-finite logits never index out of bounds: the draw falls back to argmax */
        tfm_sampler s;
        float bad[V];
        int i;
        memset(&c, 0, sizeof c);
        c.temperature = 1; c.min_p = 0.1f;
        tfm_sampler_init(&s, &c, V);
        for (i = 0; i < V; i++) bad[i] = -HUGE_VALF;
        CHECK(tfm_sample(&s, bad, NULL, 0) >= 0, "all -inf logits");
        bad[3] = HUGE_VALF;
        CHECK(tfm_sample(&s, bad, NULL, 0) == 3, "+inf logit wins");
        bad[3] = NAN;
        CHECK(tfm_sample(&s, bad, NULL, 0) >= 0, "NaN logit");
        tfm_sampler_free(&s);
    }
    { /* top-p after top-k works on the renormalized top-k set (as Hugging Face and llama.cpp):
         p = .4 .3 .2 .1, top-k 2 -> .57 .43, top-p 0.5 -> only token 0 */
        tfm_sampler s;
        const float l4[V] = {logf(.4f), logf(.3f), logf(.2f), logf(.1f), -HUGE_VALF, -HUGE_VALF};
        int i, only0 = 1;
        memset(&c, 0, sizeof c);
        c.temperature = 1; c.top_k = 2; c.top_p = 0.5f; c.seed = 3;
        tfm_sampler_init(&s, &c, V);
        for (i = 0; i < 2000; i++) only0 &= tfm_sample(&s, l4, NULL, 0) == 0;
        CHECK(only0, "top-p after top-k is relative to the top-k set");
        tfm_sampler_free(&s);
    }
    { /* log-softmax sums to 1 in probability */
        float ls[V];
        double sum = 0;
        int i;
        tfm_log_softmax(logits, ls, V);
        for (i = 0; i < V; i++) sum += exp(ls[i]);
        CHECK(fabs(sum - 1) < 1e-6, "log-softmax normalizes: %g", sum);
    }
    return test_summary("test_sampler");
}
