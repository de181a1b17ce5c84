/* Broken GGUF files and bad arguments: each is rejected with a specific error, never a crash.
   The files are built here byte by byte (a valid tiny Llama, then one defect at a time). */
#include <stddef.h>
#include <stdlib.h>
static long alloc_budget = -1; /* allocations allowed before TFM_MALLOC fails (-1: unlimited) */
static void *counting_malloc(size_t n);
#define TFM_MALLOC(n) counting_malloc(n)
#define TFM_FREE(p) free(p)
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#include "test.h"

static void *counting_malloc(size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return malloc(n);
}

/* ---- a tiny GGUF builder with knobs for every defect ---- */
typedef struct { unsigned char *p; size_t n, cap; } buf;
static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) { b->cap = (b->n + n) * 2 + 256; b->p = (unsigned char *)realloc(b->p, b->cap); }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_u32(buf *b, const char *k, uint32_t v) { str(b, k); u32(b, TFM_GGUF_U32); u32(b, v); }
static void kv_str(buf *b, const char *k, const char *v) { str(b, k); u32(b, TFM_GGUF_STRING); str(b, v); }

typedef struct {
    uint32_t magic, version;
    uint64_t n_tensors_delta, n_kv_override;
    const char *arch;          /* NULL: key absent */
    int drop_block_count, head_count, head_count_kv, alignment;
    int bad_kv_type, bad_arr_type, huge_arr, huge_key_len;
    int q_ne0, q_ndims, q_type, q_dim1, q_huge_dims, rename_q, q_misalign, q_offset_past_end;
    size_t truncate;           /* keep only this many bytes (0: all) */
} opts;

enum { DIM = 32, FFN = 64, VOCAB = 8, LAYERS = 1 };

static opts defaults(void) {
    opts o;
    memset(&o, 0, sizeof o);
    o.magic = 0x46554747u; o.version = 3; o.arch = "llama"; o.head_count = 2; o.head_count_kv = 2;
    o.q_ne0 = DIM; o.q_ndims = 2; o.q_type = TFM_TYPE_F32; o.q_dim1 = DIM;
    return o;
}

typedef struct { const char *name; int64_t ne0, ne1; int ndims; uint32_t type; } tinfo;

static buf build(const opts *o) {
    buf b = {NULL, 0, 0};
    tinfo t[16];
    int nt = 0, i, nkv = 0;
    size_t kv_count_at, off = 0, align = o->alignment ? (size_t)o->alignment : 32;
    uint64_t offsets[16];
    t[nt].name = "token_embd.weight"; t[nt].ne0 = DIM; t[nt].ne1 = VOCAB; t[nt].ndims = 2; t[nt++].type = TFM_TYPE_F32;
    t[nt].name = "output_norm.weight"; t[nt].ne0 = DIM; t[nt].ne1 = 1; t[nt].ndims = 1; t[nt++].type = TFM_TYPE_F32;
    t[nt].name = "blk.0.attn_norm.weight"; t[nt].ne0 = DIM; t[nt].ne1 = 1; t[nt].ndims = 1; t[nt++].type = TFM_TYPE_F32;
    t[nt].name = o->rename_q ? "blk.0.attn_qq.weight" : "blk.0.attn_q.weight";
    t[nt].ne0 = o->q_ne0; t[nt].ne1 = o->q_dim1; t[nt].ndims = o->q_ndims; t[nt++].type = (uint32_t)o->q_type;
    t[nt].name = "blk.0.attn_k.weight"; t[nt].ne0 = DIM; t[nt].ne1 = DIM; t[nt].ndims = 2; t[nt++].type = TFM_TYPE_F32;
    t[nt].name = "blk.0.attn_v.weight"; t[nt].ne0 = DIM; t[nt].ne1 = DIM; t[nt].ndims = 2; t[nt++].type = TFM_TYPE_F32;
    t[nt].name = "blk.0.attn_output.weight"; t[nt].ne0 = DIM; t[nt].ne1 = DIM; t[nt].ndims = 2; t[nt++].type = TFM_TYPE_F32;
    t[nt].name = "blk.0.ffn_norm.weight"; t[nt].ne0 = DIM; t[nt].ne1 = 1; t[nt].ndims = 1; t[nt++].type = TFM_TYPE_F32;
    t[nt].name = "blk.0.ffn_gate.weight"; t[nt].ne0 = DIM; t[nt].ne1 = FFN; t[nt].ndims = 2; t[nt++].type = TFM_TYPE_Q8_0;
    t[nt].name = "blk.0.ffn_up.weight"; t[nt].ne0 = DIM; t[nt].ne1 = FFN; t[nt].ndims = 2; t[nt++].type = TFM_TYPE_Q4_0;
    t[nt].name = "blk.0.ffn_down.weight"; t[nt].ne0 = FFN; t[nt].ne1 = DIM; t[nt].ndims = 2; t[nt++].type = TFM_TYPE_F16;
    u32(&b, o->magic);
    u32(&b, o->version);
    u64(&b, (uint64_t)nt + o->n_tensors_delta);
    kv_count_at = b.n;
    u64(&b, 0);
    if (o->arch) { kv_str(&b, "general.architecture", o->arch); nkv++; }
    if (o->alignment) { kv_u32(&b, "general.alignment", (uint32_t)o->alignment); nkv++; }
    kv_u32(&b, "llama.embedding_length", DIM); nkv++;
    if (!o->drop_block_count) { kv_u32(&b, "llama.block_count", LAYERS); nkv++; }
    kv_u32(&b, "llama.attention.head_count", (uint32_t)o->head_count); nkv++;
    kv_u32(&b, "llama.attention.head_count_kv", (uint32_t)o->head_count_kv); nkv++;
    kv_u32(&b, "llama.feed_forward_length", FFN); nkv++;
    kv_u32(&b, "llama.context_length", 16); nkv++;
    if (o->bad_kv_type) { str(&b, "x.bad"); u32(&b, 77); u32(&b, 0); nkv++; }
    if (o->bad_arr_type) { str(&b, "x.arr"); u32(&b, TFM_GGUF_ARRAY); u32(&b, 55); u64(&b, 1); u32(&b, 0); nkv++; }
    if (o->huge_arr) { str(&b, "x.arr"); u32(&b, TFM_GGUF_ARRAY); u32(&b, TFM_GGUF_U32); u64(&b, (uint64_t)1 << 61); nkv++; }
    if (o->huge_key_len) { u64(&b, (uint64_t)1 << 40); nkv++; }
    memcpy(b.p + kv_count_at, o->n_kv_override ? &o->n_kv_override : &(uint64_t){(uint64_t)nkv}, 8);
    for (i = 0; i < nt; i++) {
        int d;
        size_t row = tfm_type_row_size((tfm_type)t[i].type, t[i].ne0), bytes = row * (size_t)t[i].ne1;
        str(&b, t[i].name);
        u32(&b, (uint32_t)t[i].ndims);
        for (d = 0; d < t[i].ndims; d++) {
            int64_t ne = d == 0 ? t[i].ne0 : d == 1 ? t[i].ne1 : 1;
            if (o->q_huge_dims && i == 3) ne = (int64_t)1 << 40;
            u64(&b, (uint64_t)ne);
        }
        u32(&b, t[i].type);
        offsets[i] = off;
        if (i == 3 && o->q_misalign) offsets[i] += 4;
        if (i == 3 && o->q_offset_past_end) offsets[i] = (uint64_t)1 << 30;
        u64(&b, offsets[i]);
        if (!row) bytes = 64;
        off = (off + bytes + align - 1) / align * align;
    }
    while (b.n % align) { unsigned char z = 0; put(&b, &z, 1); }
    {
        /* tensor data: small deterministic values, valid in every type */
        size_t start = b.n;
        unsigned char *z = (unsigned char *)calloc(off + 64, 1);
        put(&b, z, off);
        free(z);
        for (i = 0; i < nt; i++) {
            int64_t r, n = t[i].ne0 * t[i].ne1;
            if (t[i].type != TFM_TYPE_F32 || o->q_misalign || o->q_offset_past_end || o->q_huge_dims) continue;
            for (r = 0; r < n; r++) {
                float v = t[i].ndims == 1 ? 1.0f : (float)((r * 7 + i) % 13 - 6) * 0.02f;
                memcpy(b.p + start + offsets[i] + (size_t)r * 4, &v, 4);
            }
        }
    }
    if (o->truncate && o->truncate < b.n) b.n = o->truncate;
    return b;
}

/* Loads GGUF then model; returns the first error and checks the message is not empty. */
static tfm_result load(const opts *o, char *msg, size_t cap) {
    buf b = build(o);
    tfm_gguf g;
    tfm_model m;
    tfm_result r = tfm_gguf_init(&g, b.p, b.n);
    if (r == TFM_OK) {
        r = tfm_model_init(&m, &g);
        snprintf(msg, cap, "%s", m.error);
        if (r == TFM_OK) tfm_model_free(&m);
        tfm_gguf_free(&g);
    } else {
        snprintf(msg, cap, "%s", g.error);
    }
    free(b.p);
    return r;
}

#define EXPECT(o, code, what) do { \
    char msg_[256]; tfm_result r_ = load(&(o), msg_, sizeof msg_); \
    CHECK(r_ == (code), "%s: got %s (%s), want %s", what, tfm_result_string(r_), msg_, tfm_result_string(code)); \
    CHECK(r_ == TFM_OK || msg_[0], "%s: error without a message", what); \
    if (r_ != TFM_OK) printf("  %-34s -> %s: %s\n", what, tfm_result_string(r_), msg_); \
} while (0)

static void test_broken_files(void) {
    opts o;
    int n_cases = 0;
    o = defaults(); EXPECT(o, TFM_OK, "valid file"); n_cases++;
    o = defaults(); o.magic = 0x46554746u; EXPECT(o, TFM_ERR_FORMAT, "bad magic"); n_cases++;
    o = defaults(); o.version = 1; EXPECT(o, TFM_ERR_UNSUPPORTED, "version 1"); n_cases++;
    o = defaults(); o.version = 99; EXPECT(o, TFM_ERR_UNSUPPORTED, "version 99"); n_cases++;
    o = defaults(); o.n_tensors_delta = (uint64_t)1 << 60; EXPECT(o, TFM_ERR_FORMAT, "huge tensor count"); n_cases++;
    o = defaults(); o.n_kv_override = (uint64_t)1 << 62; EXPECT(o, TFM_ERR_FORMAT, "huge key count"); n_cases++;
    o = defaults(); o.n_tensors_delta = 3; EXPECT(o, TFM_ERR_FORMAT, "more tensors than present"); n_cases++;
    o = defaults(); o.n_kv_override = 40; EXPECT(o, TFM_ERR_TRUNCATED, "more keys than present"); n_cases++;
    o = defaults(); o.bad_kv_type = 1; EXPECT(o, TFM_ERR_FORMAT, "unknown value type"); n_cases++;
    o = defaults(); o.bad_arr_type = 1; EXPECT(o, TFM_ERR_FORMAT, "unknown array element type"); n_cases++;
    o = defaults(); o.huge_arr = 1; EXPECT(o, TFM_ERR_FORMAT, "huge array count"); n_cases++;
    o = defaults(); o.huge_key_len = 1; EXPECT(o, TFM_ERR_TRUNCATED, "key length past the end"); n_cases++;
    o = defaults(); o.alignment = 3; EXPECT(o, TFM_ERR_FORMAT, "alignment not a power of two"); n_cases++;
    o = defaults(); o.alignment = 64; EXPECT(o, TFM_OK, "alignment 64"); n_cases++;
    o = defaults(); o.q_ndims = 0; EXPECT(o, TFM_ERR_FORMAT, "tensor with 0 dimensions"); n_cases++;
    o = defaults(); o.q_ndims = 5; EXPECT(o, TFM_ERR_FORMAT, "tensor with 5 dimensions"); n_cases++;
    o = defaults(); o.q_dim1 = 0; EXPECT(o, TFM_ERR_FORMAT, "zero dimension"); n_cases++;
    o = defaults(); o.q_huge_dims = 1; EXPECT(o, TFM_ERR_FORMAT, "overflowing dimensions"); n_cases++;
    o = defaults(); o.q_type = 12; EXPECT(o, TFM_ERR_UNSUPPORTED, "unknown tensor type"); n_cases++;
    o = defaults(); o.q_type = TFM_TYPE_Q8_0; o.q_ne0 = 33; EXPECT(o, TFM_ERR_FORMAT, "Q8_0 row not a multiple of 32"); n_cases++;
    o = defaults(); o.q_misalign = 1; EXPECT(o, TFM_ERR_FORMAT, "misaligned tensor offset"); n_cases++;
    o = defaults(); o.q_offset_past_end = 1; EXPECT(o, TFM_ERR_TRUNCATED, "tensor offset past the end"); n_cases++;
    o = defaults(); o.arch = NULL; EXPECT(o, TFM_ERR_MISSING, "no general.architecture"); n_cases++;
    o = defaults(); o.arch = "bert"; EXPECT(o, TFM_ERR_UNSUPPORTED, "unknown architecture"); n_cases++;
    o = defaults(); o.drop_block_count = 1; EXPECT(o, TFM_ERR_MISSING, "no block_count"); n_cases++;
    o = defaults(); o.head_count = 0; EXPECT(o, TFM_ERR_FORMAT, "zero heads"); n_cases++;
    o = defaults(); o.head_count_kv = 3; EXPECT(o, TFM_ERR_FORMAT, "heads not a multiple of KV heads"); n_cases++;
    o = defaults(); o.rename_q = 1; EXPECT(o, TFM_ERR_MISSING, "missing tensor"); n_cases++;
    o = defaults(); o.q_dim1 = DIM + 1; EXPECT(o, TFM_ERR_SHAPE, "wrong tensor shape"); n_cases++;
    o = defaults(); o.q_ndims = 1; EXPECT(o, TFM_ERR_SHAPE, "matrix stored as a vector"); n_cases++;
    o = defaults(); o.truncate = 20; EXPECT(o, TFM_ERR_TRUNCATED, "truncated header"); n_cases++;
    printf("  %d hand-made broken files\n", n_cases);
}

/* Every prefix of a valid file fails cleanly (header, metadata, tensor infos, data). */
static void test_every_truncation(void) {
    opts o = defaults();
    buf full = build(&o);
    size_t len;
    int failures = 0;
    for (len = 0; len < full.n; len++) {
        tfm_gguf g;
        tfm_model m;
        tfm_result r = tfm_gguf_init(&g, full.p, len);
        if (r == TFM_OK) {
            r = tfm_model_init(&m, &g);
            if (r == TFM_OK) tfm_model_free(&m);
            tfm_gguf_free(&g);
        }
        if (r == TFM_OK) failures++;
    }
    CHECK(failures == 0, "%d truncated prefixes loaded as if valid", failures);
    printf("  %zu truncated prefixes rejected\n", full.n);
    free(full.p);
}

/* Fixed-seed mutation fuzzing (the libFuzzer target tests/fuzz_gguf.c does the same open-ended). */
static void test_mutations(void) {
    opts o = defaults();
    buf base = build(&o);
    unsigned char *p = (unsigned char *)malloc(base.n);
    uint64_t rng = 12345;
    int iter, loaded = 0;
    for (iter = 0; iter < 3000; iter++) {
        int k, flips = 1 + iter % 4;
        tfm_gguf g;
        tfm_model m;
        memcpy(p, base.p, base.n);
        for (k = 0; k < flips; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            p[(rng >> 33) % (base.n < 600 ? base.n : 600)] = (unsigned char)(rng >> 13); /* header + metadata mostly */
        }
        if (tfm_gguf_init(&g, p, base.n) == TFM_OK) {
            if (tfm_model_init(&m, &g) == TFM_OK) {
                tfm_session s;
                tfm_session_config c;
                memset(&c, 0, sizeof c);
                c.n_ctx = 8;
                if (tfm_session_init(&s, &m, &c) == TFM_OK) {
                    int32_t toks[3] = {1, 2, 3};
                    tfm_session_eval(&s, toks, NULL, 3, NULL);
                    tfm_session_free(&s);
                }
                tfm_model_free(&m);
                loaded++;
            }
            tfm_gguf_free(&g);
        }
    }
    printf("  3000 mutated files: %d still loaded, none crashed\n", loaded);
    free(p);
    free(base.p);
}

static void test_bad_arguments(void) {
    opts o = defaults();
    buf b = build(&o);
    tfm_gguf g;
    tfm_model m;
    tfm_session s;
    tfm_session_config c;
    int32_t toks[40];
    int i;
    size_t bytes;
    CHECK(tfm_gguf_init(NULL, b.p, b.n) == TFM_ERR_ARG, "NULL gguf");
    CHECK(tfm_gguf_init(&g, NULL, 100) == TFM_ERR_ARG, "NULL data");
    CHECK(tfm_model_init(&m, NULL) == TFM_ERR_ARG, "NULL model gguf");
    CHECK(tfm_session_init(&s, NULL, NULL) == TFM_ERR_ARG, "NULL session model");
    CHECK(tfm_gguf_open(&g, "/nonexistent/file.gguf") == TFM_ERR_IO, "missing file");
    CHECK(strstr(g.error, "/nonexistent/file.gguf") != NULL, "missing file message names the path: %s", g.error);
    CHECK(tfm_gguf_init(&g, b.p, b.n) == TFM_OK, "valid");
    CHECK(tfm_model_init(&m, &g) == TFM_OK, "valid model: %s", m.error);
    memset(&c, 0, sizeof c);
    c.kv.policy = TFM_KV_A2SF;
    CHECK(tfm_session_init(&s, &m, &c) == TFM_ERR_ARG, "budget 0 refused");
    CHECK(strstr(s.error, "budget") != NULL, "budget message: %s", s.error);
    CHECK(tfm_session_heap_size(&m, &c, &bytes) == TFM_ERR_ARG, "budget 0 refused by heap_size");
    c.kv.budget = 4;
    c.kv.alpha = 2;
    CHECK(tfm_session_init(&s, &m, &c) == TFM_ERR_ARG, "alpha 2 refused");
    memset(&c, 0, sizeof c);
    c.n_ctx = 16;
    CHECK(tfm_session_init(&s, &m, &c) == TFM_OK, "session: %s", s.error);
    for (i = 0; i < 40; i++) toks[i] = i % VOCAB;
    CHECK(tfm_session_eval(&s, toks, NULL, 17, NULL) == TFM_ERR_CONTEXT, "prompt longer than the context");
    CHECK(s.n_pos[0] == 0, "a refused prompt changes nothing");
    CHECK(tfm_session_eval(&s, toks, NULL, 16, NULL) == TFM_OK, "prompt filling the context: %s", s.error);
    CHECK(tfm_session_eval(&s, toks, NULL, 1, NULL) == TFM_ERR_CONTEXT, "one past the context");
    tfm_seq_reset(&s, 0);
    toks[0] = VOCAB;
    CHECK(tfm_session_eval(&s, toks, NULL, 1, NULL) == TFM_ERR_TOKEN, "token id out of range");
    toks[0] = -1;
    CHECK(tfm_session_eval(&s, toks, NULL, 1, NULL) == TFM_ERR_TOKEN, "negative token id");
    { int32_t q = 1; toks[0] = 0; CHECK(tfm_session_eval(&s, toks, &q, 1, NULL) == TFM_ERR_ARG, "sequence out of range"); }
    CHECK(tfm_session_eval(&s, NULL, NULL, 1, NULL) == TFM_ERR_ARG, "NULL tokens");
    CHECK(tfm_seq_copy(&s, 0, 5) == TFM_ERR_ARG, "copy from a bad sequence");
    CHECK(tfm_session_logits(&s, 3) == NULL, "logits of a bad sequence");
    tfm_session_free(&s);
    { /* a caller's static array need not be aligned; a failed init refuses every later call */
        static unsigned char heap[1 << 20];
        size_t need;
        tfm_session ps;
        memset(&c, 0, sizeof c);
        c.n_ctx = 16;
        CHECK(tfm_session_heap_size(&m, &c, &need) == TFM_OK && need + 3 < sizeof heap, "heap size");
        CHECK(tfm_session_init_preallocated(&ps, &m, &c, heap + 3, need) == TFM_OK, "unaligned heap: %s", ps.error);
        CHECK(((size_t)ps.logits % 16) == 0 && ((size_t)ps.k_ % 16) == 0, "arrays aligned in an unaligned heap");
        CHECK(tfm_session_eval(&ps, toks, NULL, 4, NULL) == TFM_OK, "eval in an unaligned heap");
        CHECK(tfm_session_init_preallocated(&ps, &m, &c, heap, need / 2) == TFM_ERR_BUFFER, "heap too small");
        CHECK(tfm_session_eval(&ps, toks, NULL, 1, NULL) == TFM_ERR_ARG, "eval on a failed session is refused");
    }
    /* out of memory: every allocation point fails cleanly */
    for (i = 0; i < 3; i++) {
        tfm_gguf g2;
        tfm_model m2;
        tfm_result r;
        alloc_budget = i;
        r = tfm_gguf_init(&g2, b.p, b.n);
        if (r == TFM_OK) {
            r = tfm_model_init(&m2, &g2);
            if (r == TFM_OK) {
                r = tfm_session_init(&s, &m2, NULL);
                if (r == TFM_OK) tfm_session_free(&s);
                tfm_model_free(&m2);
            }
            tfm_gguf_free(&g2);
        }
        CHECK(r == TFM_ERR_NOMEM, "allocation %d failing gives TFM_ERR_NOMEM, got %s", i, tfm_result_string(r));
    }
    alloc_budget = -1;
    tfm_model_free(&m);
    tfm_gguf_free(&g);
    free(b.p);
}

/* Leaves the valid tiny file as a seed for the libFuzzer target (tests/fuzz_gguf.c). */
static void write_fuzz_seed(const char *path) {
    opts o = defaults();
    buf b = build(&o);
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(b.p, 1, b.n, f); fclose(f); }
    free(b.p);
}

int main(int argc, char **argv) {
    if (argc > 1) write_fuzz_seed(argv[1]);
    test_broken_files();
    test_every_truncation();
    test_mutations();
    test_bad_arguments();
    return test_summary("test_gguf");
}
