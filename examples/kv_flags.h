/* kv_flags.h - the --kv* command-line flags of the examples, parsed into a tfm_kv_config.

     --kv full|a2sf|h2o|window   cache policy (default full: no eviction)
     --kv-budget N               kept tokens per layer and KV head: a count ("64"), or a ratio of
                                 the sequence length ("0.2", or "20%" with a percent sign), see kv_flags_budget
     --kv-alpha A                A2SF forgetting factor in [0, 1] (default 0)
     --kv-recent N               protected most recent positions (H2O default: budget / 2), or a
                                 fraction of the budget ("0.5"); A2SF does much better with one,
                                 see docs/kv-eval.md
     --kv-sink N                 protected first positions
     --kv-type f32|f16           cached keys and values (default f32; f16 halves the cache)

   Include after tfm.h (declarations are enough). Everything here is static: one copy per program.

       kv_flags f;
       kv_flags_init(&f);
       for (i = 1; i < argc; i++) {
           int r = kv_flags_parse(&f, argc, argv, &i, err, sizeof err);   // consumes flag + value
           if (r < 0) { fprintf(stderr, "%s\n", err); return 1; }
           if (r > 0) continue;
           ...other flags...
       }
       if (kv_flags_finish(&f, n_ctx, &cfg.kv, err, sizeof err) != 0) ...   // ratio -> count
*/
#ifndef KV_FLAGS_H
#define KV_FLAGS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tfm_kv_config kv;       /* policy, alpha, n_recent, n_sink; budget when given as a count */
    double budget_ratio;    /* > 0: --kv-budget was a ratio of the sequence length */
    double recent_ratio;    /* > 0: --kv-recent was a fraction of the budget */
    int budget_given;
} kv_flags;

#define KV_FLAGS_USAGE \
    "  --kv full|a2sf|h2o|window  KV cache policy (default full)\n" \
    "  --kv-budget N              kept tokens per layer and KV head, or a ratio of the length (0.2 or 20 percent)\n" \
    "  --kv-alpha A               A2SF forgetting factor in [0, 1] (default 0)\n" \
    "  --kv-recent N              protected most recent positions, or a fraction of the budget (0.5);\n" \
    "                             h2o default: budget / 2; a2sf: 0, but half the budget works much better\n" \
    "  --kv-sink N                protected first positions (default 0)\n" \
    "  --kv-type f32|f16          cached keys and values (default f32; f16 halves the cache)\n"

static const char *kv_policy_name(tfm_kv_policy p) {
    switch (p) {
    case TFM_KV_A2SF: return "a2sf";
    case TFM_KV_H2O: return "h2o";
    case TFM_KV_WINDOW: return "window";
    default: return "full";
    }
}

/* 1 and *out on a known name. */
static int kv_policy_parse(const char *s, tfm_kv_policy *out) {
    static const tfm_kv_policy all[4] = {TFM_KV_FULL, TFM_KV_A2SF, TFM_KV_H2O, TFM_KV_WINDOW};
    int i;
    for (i = 0; i < 4; i++)
        if (strcmp(s, kv_policy_name(all[i])) == 0) { *out = all[i]; return 1; }
    return 0;
}

static void kv_flags_init(kv_flags *f) { memset(f, 0, sizeof *f); }

/* Whole non-negative decimal number below 2^31; 1 on success. */
static int kv_flags_count(const char *s, int32_t *out) {
    char *end;
    long v;
    if (!s || !*s || *s == '-' || *s == '+') return 0;
    v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 0x7fffffffL) return 0;
    *out = (int32_t)v;
    return 1;
}

/* "64" -> count; "0.2" or "20%" -> ratio in (0, 1]. */
static int kv_flags_budget_value(kv_flags *f, const char *s) {
    char *end;
    double v;
    if (!strchr(s, '.') && !strchr(s, '%')) return kv_flags_count(s, &f->kv.budget) && f->kv.budget > 0;
    v = strtod(s, &end);
    if (*end == '%') { v /= 100; end++; }
    if (end == s || *end || !(v > 0 && v <= 1)) return 0;
    f->budget_ratio = v;
    return 1;
}

/* If argv[*i] is a --kv* flag: consumes it and its value (advancing *i) and returns 1, or returns
   -1 with a message in err. Returns 0 for any other argument. */
static int kv_flags_parse(kv_flags *f, int argc, char **argv, int *i, char *err, size_t errcap) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int ok;
    if (strncmp(a, "--kv", 4) != 0) return 0;
    if (!v) { snprintf(err, errcap, "%s needs a value", a); return -1; }
    if (strcmp(a, "--kv") == 0) ok = kv_policy_parse(v, &f->kv.policy);
    else if (strcmp(a, "--kv-budget") == 0) {
        ok = kv_flags_budget_value(f, v);
        f->budget_given = 1;
    }
    else if (strcmp(a, "--kv-alpha") == 0) {
        char *end;
        double x = strtod(v, &end);
        ok = end != v && !*end && x >= 0 && x <= 1;
        f->kv.alpha = (float)x;
    } else if (strcmp(a, "--kv-recent") == 0) {
        char *end;
        if (strchr(v, '.')) {
            f->recent_ratio = strtod(v, &end);
            ok = end != v && !*end && f->recent_ratio > 0 && f->recent_ratio <= 1;
        } else ok = kv_flags_count(v, &f->kv.n_recent);
    }
    else if (strcmp(a, "--kv-sink") == 0) ok = kv_flags_count(v, &f->kv.n_sink);
    else if (strcmp(a, "--kv-type") == 0) {
        ok = strcmp(v, "f32") == 0 || strcmp(v, "f16") == 0;
        f->kv.type = strcmp(v, "f16") == 0 ? TFM_TYPE_F16 : TFM_TYPE_F32;
    }
    else { snprintf(err, errcap, "unknown flag %s", a); return -1; }
    if (!ok) {
        snprintf(err, errcap, "bad value for %s: '%s' (policies: full a2sf h2o window; budget: a count, or a ratio like 0.2 or 20%%; recent: a count or a fraction like 0.5; alpha in [0, 1]; type: f32 or f16)", a, v);
        return -1;
    }
    (*i)++;
    return 1;
}

/* Budget in tokens for a sequence of n tokens: a count as given, a ratio rounded to nearest
   (at least 1). */
static int32_t kv_flags_budget(const kv_flags *f, int32_t n) {
    double b;
    if (f->budget_ratio <= 0) return f->kv.budget;
    b = f->budget_ratio * (double)n + 0.5;
    return b < 1 ? 1 : (int32_t)b;
}

/* The config for sequences of n tokens (a ratio budget resolves against n, a fractional n_recent
   against the budget). Returns 0, or -1
   with a message when a pruning policy has no budget or a budget has no pruning policy. */
static int kv_flags_finish(const kv_flags *f, int32_t n, tfm_kv_config *out, char *err, size_t errcap) {
    *out = f->kv;
    if (f->kv.policy == TFM_KV_FULL) {
        if (f->budget_given || f->kv.n_recent || f->recent_ratio > 0 || f->kv.n_sink || f->kv.alpha != 0) {
            snprintf(err, errcap, "--kv-budget/--kv-alpha/--kv-recent/--kv-sink need --kv a2sf, h2o or window");
            return -1;
        }
        return 0;
    }
    if (!f->budget_given) { snprintf(err, errcap, "--kv %s needs --kv-budget", kv_policy_name(f->kv.policy)); return -1; }
    out->budget = kv_flags_budget(f, n);
    if (f->recent_ratio > 0) out->n_recent = (int32_t)(f->recent_ratio * out->budget + 0.5);
    return 0;
}

#endif
