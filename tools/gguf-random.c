/* gguf-random - writes a random-weight Llama GGUF of any shape (for tests and benchmarks).
 *
 *   gguf-random --dim D --layers L --heads H --kv-heads K --ffn F --vocab V --ctx C
 *               --type f32|f16|bf16|q8_0|q4_0 [--seed S] [--arch llama] [--tied] OUT.gguf
 *
 * The same arguments always give the same file (own xorshift generator; each tensor's stream
 * depends only on the seed and the tensor's position). Matrices are zero-mean, near-normal with
 * standard deviation 1/sqrt(row length), so that after each RMSNorm every projection and the
 * logits have a standard deviation near 1 whatever the shape; norm weights are 1.
 * The vocabulary is a synthetic SentencePiece one: <unk>, <s>, </s>, the 256 byte pieces
 * <0x00>..<0xFF>, then ASCII characters and lower-case letter strings, each also with the
 * U+2581 word marker, scored by rank. Tensors are generated while being written, so the
 * TinyLlama shape (dim 2048, 22 layers, ffn 5632, vocab 32000) needs only a few MB of memory.
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. tools/gguf-random.c -lm -o build/gguf-random
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "tools/gguf_write.h"
#include "tools/vocab.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long dim, layers, heads, kv_heads, ffn, vocab, ctx;
    unsigned long long seed;
    int type, tied;
} rnd_config;

/* ------------------------------------------------------------------ random numbers */

static uint64_t xorshift64s(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* splitmix64 turns (seed, tensor number) into a well-mixed non-zero starting state */
static uint64_t mix_seed(uint64_t seed, uint64_t stream) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 1;
}

/* Sum of four 16-bit uniforms (Irwin-Hall), scaled to unit variance: close enough to a normal
   for weights, and one generator call per value keeps 1e9 values fast. */
static float near_normal(uint64_t *s) {
    uint64_t r = xorshift64s(s);
    float sum = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
    /* mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12 */
    return (sum - 131070.0f) * (1.0f / 37837.23f);
}

/* One tensor's generator: value = std * near_normal, or a constant when std == 0. */
typedef struct {
    uint64_t state, start;
    int64_t cols, next_row;
    float std, constant;
} rnd_tensor;

static int fill_rows(void *user, int64_t row0, int64_t n, float *dst) {
    rnd_tensor *t = (rnd_tensor *)user;
    int64_t i, count = n * t->cols;
    if (row0 == 0) { t->state = t->start; t->next_row = 0; }
    if (row0 != t->next_row) return -1; /* rows must come in order */
    t->next_row += n;
    for (i = 0; i < count; i++) dst[i] = t->std != 0 ? t->std * near_normal(&t->state) : t->constant;
    return 0;
}

/* ------------------------------------------------------------------ vocabulary */

static int add_piece(vocab *v, const char *s, size_t n, int marker, float *score) {
    char buf[16];
    size_t k = 0;
    if (marker) { buf[k++] = (char)0xe2; buf[k++] = (char)0x96; buf[k++] = (char)0x81; }
    memcpy(buf + k, s, n);
    *score -= 1.0f;
    return vocab_add(v, buf, k + n, *score, VOCAB_NORMAL);
}

/* Appends every lower-case string of length len, each bare and with the word marker, until the
   vocabulary has `target` tokens. */
static int add_letter_strings(vocab *v, size_t target, int len, float *score) {
    char s[8];
    long i, total = 1, x;
    int k;
    for (k = 0; k < len; k++) total *= 26;
    for (i = 0; i < total && v->n < target; i++) {
        for (x = i, k = len - 1; k >= 0; k--, x /= 26) s[k] = (char)('a' + x % 26);
        if (add_piece(v, s, (size_t)len, 1, score) != 0) return -1;
        if (v->n < target && add_piece(v, s, (size_t)len, 0, score) != 0) return -1;
    }
    return 0;
}

static int make_vocab(vocab *v, size_t n) {
    static const char chars[] = "etaoinshrdlcumwfgypbvkjxqz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()[]{}<>/\\|@#$%^&*_+=~`";
    char s[8];
    float score = 0.0f;
    int c, len;
    v->model = "llama";
    v->has_scores = 1;
    v->unk = 0; v->bos = 1; v->eos = 2;
    v->add_bos = 1; v->add_eos = 0;
    if (vocab_add(v, "<unk>", 5, 0, VOCAB_UNKNOWN) || vocab_add(v, "<s>", 3, 0, VOCAB_CONTROL) ||
        vocab_add(v, "</s>", 4, 0, VOCAB_CONTROL))
        return -1;
    for (c = 0; c < 256; c++) {
        snprintf(s, sizeof s, "<0x%02X>", c);
        if (vocab_add(v, s, 6, 0, VOCAB_BYTE)) return -1;
    }
    if (add_piece(v, "", 0, 1, &score)) return -1; /* the lone word marker */
    for (c = 0; chars[c] && v->n < n; c++) {    /* printable ASCII, letters first */
        if (add_piece(v, chars + c, 1, 1, &score)) return -1;
        if (v->n < n && add_piece(v, chars + c, 1, 0, &score)) return -1;
    }
    for (len = 2; len <= 6 && v->n < n; len++)
        if (add_letter_strings(v, n, len, &score)) return -1;
    while (v->n > n) free(v->text[--v->n]); /* the fixed part may overshoot a tiny target */
    return v->n == n ? 0 : -1;
}

/* ------------------------------------------------------------------ model */

static void add_metadata(gw_writer *w, const rnd_config *c) {
    char name[96];
    snprintf(name, sizeof name, "random-llama-d%ld-l%ld-s%llu", c->dim, c->layers, c->seed);
    gw_str(w, "general.architecture", "llama");
    gw_str(w, "general.name", name);
    gw_str(w, "general.description", "random weights from tools/gguf-random, NOT a trained model");
    gw_u32(w, "general.file_type", gw_file_type(c->type));
    if (c->type == TFM_TYPE_Q8_0 || c->type == TFM_TYPE_Q4_0) gw_u32(w, "general.quantization_version", 2);
    {
        gw_llama_shape sh;
        sh.vocab = c->vocab; sh.ctx = c->ctx; sh.dim = c->dim; sh.layers = c->layers;
        sh.ffn = c->ffn; sh.heads = c->heads; sh.kv_heads = c->kv_heads;
        gw_llama_keys(w, &sh);
    }
}

typedef struct {
    rnd_tensor *t;
    size_t n;
    unsigned long long seed;
} rnd_list;

/* A matrix of `rows` rows of `cols` (std 1/sqrt(cols)), or a vector of ones when rows == 0. */
static void add(gw_writer *w, rnd_list *rl, const char *name, int type, long rows, long cols) {
    rnd_tensor *t = &rl->t[rl->n];
    int64_t ne[2];
    t->start = t->state = mix_seed(rl->seed, rl->n);
    rl->n++;
    t->cols = cols;
    t->std = rows ? 1.0f / sqrtf((float)cols) : 0.0f;
    t->constant = 1.0f;
    ne[0] = cols; ne[1] = rows;
    gw_tensor_rows(w, name, rows ? type : TFM_TYPE_F32, rows ? 2 : 1, ne, fill_rows, t);
}

static void add_tensors(gw_writer *w, rnd_list *rl, const rnd_config *c) {
    long d = c->dim, kv = c->dim / c->heads * c->kv_heads, l;
    int ty = c->type;
    char name[64];
    /* Every matrix in the named type, the head too (tools/convert keeps a Q4_0 model's head in
       Q8_0 for quality; random weights have none to keep): the speed figures these files are
       compared with were measured with every matrix in one type. */
    add(w, rl, "token_embd.weight", gw_pick_type(ty, 2, d, 0), c->vocab, d);
    add(w, rl, "output_norm.weight", ty, 0, d);
    if (!c->tied) add(w, rl, "output.weight", gw_pick_type(ty, 2, d, 0), c->vocab, d);
    for (l = 0; l < c->layers; l++) {
#define T(suffix, rows, cols) \
        (snprintf(name, sizeof name, "blk.%ld." suffix, l), add(w, rl, name, gw_pick_type(ty, 2, cols, 0), rows, cols))
        T("attn_norm.weight", 0, d);
        T("attn_q.weight", d, d);
        T("attn_k.weight", kv, d);
        T("attn_v.weight", kv, d);
        T("attn_output.weight", d, d);
        T("ffn_norm.weight", 0, d);
        T("ffn_gate.weight", c->ffn, d);
        T("ffn_up.weight", c->ffn, d);
        T("ffn_down.weight", d, c->ffn);
#undef T
    }
}

/* ------------------------------------------------------------------ command line */

static int usage(void) {
    fprintf(stderr,
            "usage: gguf-random --dim D --layers L --heads H --kv-heads K --ffn F --vocab V --ctx C\n"
            "                   --type f32|f16|bf16|q8_0|q4_0 [--seed S] [--arch llama] [--tied] OUT.gguf\n");
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, rnd_config *c, const char **out) {
    static const char *const names[] = {"--dim", "--layers", "--heads", "--kv-heads", "--ffn", "--vocab", "--ctx"};
    long *fields[7];
    int i, k;
    fields[0] = &c->dim; fields[1] = &c->layers; fields[2] = &c->heads; fields[3] = &c->kv_heads;
    fields[4] = &c->ffn; fields[5] = &c->vocab; fields[6] = &c->ctx;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        for (k = 0; k < 7; k++)
            if (strcmp(a, names[k]) == 0) break;
        if (k < 7) {
            if (i + 1 >= argc || parse_long(argv[++i], 1, 1L << 30, fields[k])) return usage();
        } else if (strcmp(a, "--type") == 0 && i + 1 < argc) {
            if ((c->type = gw_parse_type(argv[++i])) < 0) return usage();
        } else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
            char *end;
            c->seed = strtoull(argv[++i], &end, 10);
            if (*end) return usage();
        } else if (strcmp(a, "--arch") == 0 && i + 1 < argc) {
            if (strcmp(argv[++i], "llama") != 0) { fprintf(stderr, "gguf-random: only --arch llama is supported\n"); return 2; }
        } else if (strcmp(a, "--tied") == 0) c->tied = 1;
        else if (a[0] == '-' && a[1]) return usage();
        else if (!*out) *out = a;
        else return usage();
    }
    for (k = 0; k < 7; k++)
        if (*fields[k] == 0) { fprintf(stderr, "gguf-random: %s is required\n", names[k]); return 2; }
    if (c->type < 0 || !*out) return usage();
    return 0;
}

static int check_config(const rnd_config *c) {
    const char *err = NULL;
    if (c->dim % c->heads) err = "--dim must be a multiple of --heads";
    else if (c->heads % c->kv_heads) err = "--heads must be a multiple of --kv-heads";
    else if ((c->dim / c->heads) % 2 || c->dim / c->heads > TFM_MAX_HEAD_DIM) err = "head size must be even and at most TFM_MAX_HEAD_DIM";
    else if (c->layers > TFM_MAX_LAYERS) err = "too many layers";
    else if (c->vocab < 3 + 256 + 1) err = "--vocab must be at least 260 (3 control + 256 byte tokens + 1)";
    else if (c->vocab > 4000000) err = "--vocab must be at most 4000000";
    if (err) fprintf(stderr, "gguf-random: %s\n", err);
    return err ? 2 : 0;
}

int main(int argc, char **argv) {
    rnd_config c;
    const char *out = NULL;
    rnd_list rl;
    vocab v;
    gw_writer w;
    int rc;
    memset(&c, 0, sizeof c);
    c.type = -1;
    if ((rc = parse_args(argc, argv, &c, &out)) != 0 || (rc = check_config(&c)) != 0) return rc;
    if (c.type == -1) return usage();

    vocab_init(&v);
    gw_init(&w);
    rl.n = 0;
    rl.seed = c.seed;
    rl.t = (rnd_tensor *)calloc(3 + 9 * (size_t)c.layers, sizeof *rl.t);
    rc = 1;
    if (!rl.t || make_vocab(&v, (size_t)c.vocab) != 0) fprintf(stderr, "gguf-random: cannot build the vocabulary\n");
    else {
        add_metadata(&w, &c);
        vocab_write(&v, &w);
        add_tensors(&w, &rl, &c);
        if (gw_write(&w, out) != 0) fprintf(stderr, "gguf-random: %s\n", w.error);
        else {
            printf("wrote %s: random llama, dim %ld, %ld layers, %ld heads (%ld kv), ffn %ld, vocab %ld, ctx %ld, %s, seed %llu\n",
                   out, c.dim, c.layers, c.heads, c.kv_heads, c.ffn, c.vocab, c.ctx, tfm_type_name((tfm_type)c.type), c.seed);
            rc = 0;
        }
    }
    free(rl.t);
    gw_free(&w);
    vocab_free(&v);
    return rc;
}
