/* llama2c-to-gguf - converts a llama2.c checkpoint (v0 "legacy" format) and its tokenizer.bin
 * into a GGUF file for the llama architecture.
 *
 *   llama2c-to-gguf model.bin tokenizer.bin out.gguf [--type f32|f16|bf16|q8_0|q4_0] [--name NAME]
 *
 * model.bin: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
 * a negative vocab_size means an untied classifier follows), then fp32 arrays:
 *   token_embedding [vocab][dim], rms_att [L][dim], wq [L][dim][dim], wk [L][kv_dim][dim],
 *   wv [L][kv_dim][dim], wo [L][dim][dim], rms_ffn [L][dim], w1 [L][hidden][dim],
 *   w2 [L][dim][hidden], w3 [L][hidden][dim], rms_final [dim],
 *   freq_cis_real [seq_len][head_size/2], freq_cis_imag (same; skipped), wcls [vocab][dim] if untied.
 * llama2.c rotates adjacent pairs, the GGUF layout, so Q/K rows are copied unchanged.
 * w1 = gate, w3 = up, w2 = down.
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. tools/llama2c-to-gguf.c -lm -o build/llama2c-to-gguf
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "tools/gguf_write.h"
#include "tools/vocab.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of one fp32 matrix somewhere in the checkpoint file. */
typedef struct {
    FILE *f;
    uint64_t offset; /* bytes from the start of the file */
    int64_t cols;
} src_rows;

static int read_rows(void *user, int64_t row0, int64_t n, float *dst) {
    const src_rows *s = (const src_rows *)user;
    uint64_t off = s->offset + (uint64_t)row0 * (uint64_t)s->cols * 4;
    size_t count = (size_t)n * (size_t)s->cols;
    if (off > (uint64_t)LONG_MAX || fseek(s->f, (long)off, SEEK_SET) != 0) return -1;
    return fread(dst, sizeof(float), count, s->f) == count ? 0 : -1;
}

typedef struct {
    int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    int tied;
} l2c_config;

/* Byte offsets of each array in the file (all fp32). */
typedef struct {
    uint64_t emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls, end;
} l2c_layout;

static int fail(const char *msg, const char *detail) {
    fprintf(stderr, "llama2c-to-gguf: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    return 1;
}

/* Adds n floats to *off, refusing to go past 2^62 bytes (no overflow anywhere below). */
static int advance(uint64_t *off, uint64_t a, uint64_t b, uint64_t c) {
    const uint64_t lim = (uint64_t)1 << 62;
    if (a > lim || b > lim || c > lim) return 0;
    if (a && b > lim / a) return 0;
    if (a * b != 0 && c > lim / (a * b)) return 0;
    if (a * b * c > (lim - *off) / 4) return 0;
    *off += 4 * a * b * c;
    return 1;
}

static int read_config(FILE *f, l2c_config *c) {
    int32_t h[7];
    if (fread(h, 4, 7, f) != 7) return fail("model file shorter than its 28-byte header", NULL);
    c->dim = h[0]; c->hidden = h[1]; c->n_layers = h[2]; c->n_heads = h[3]; c->n_kv_heads = h[4];
    c->tied = h[5] > 0;
    c->vocab = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c->seq_len = h[6];
    if (c->dim <= 0 || c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->vocab <= 0 || c->seq_len <= 0)
        return fail("header has a zero or negative size (not a llama2.c v0 checkpoint?)", NULL);
    if (c->n_layers > TFM_MAX_LAYERS) return fail("too many layers", NULL);
    if (c->dim % c->n_heads != 0) return fail("dim is not a multiple of n_heads", NULL);
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0) return fail("n_heads is not a multiple of n_kv_heads", NULL);
    if ((c->dim / c->n_heads) % 2 != 0) return fail("head size is odd (RoPE needs pairs)", NULL);
    return 0;
}

static int compute_layout(const l2c_config *c, l2c_layout *o) {
    uint64_t off = 28, L = (uint64_t)c->n_layers, d = (uint64_t)c->dim, h = (uint64_t)c->hidden;
    uint64_t kv = d / (uint64_t)c->n_heads * (uint64_t)c->n_kv_heads, hs = d / (uint64_t)c->n_heads;
    int ok = 1;
    o->emb = off;       ok &= advance(&off, (uint64_t)c->vocab, d, 1);
    o->rms_att = off;   ok &= advance(&off, L, d, 1);
    o->wq = off;        ok &= advance(&off, L, d, d);
    o->wk = off;        ok &= advance(&off, L, kv, d);
    o->wv = off;        ok &= advance(&off, L, kv, d);
    o->wo = off;        ok &= advance(&off, L, d, d);
    o->rms_ffn = off;   ok &= advance(&off, L, d, 1);
    o->w1 = off;        ok &= advance(&off, L, h, d);
    o->w2 = off;        ok &= advance(&off, L, d, h);
    o->w3 = off;        ok &= advance(&off, L, h, d);
    o->rms_final = off; ok &= advance(&off, d, 1, 1);
    ok &= advance(&off, 2 * (uint64_t)c->seq_len, hs / 2, 1); /* freq_cis_real + imag */
    o->wcls = off;
    if (!c->tied) ok &= advance(&off, (uint64_t)c->vocab, d, 1);
    o->end = off;
    return ok ? 0 : fail("header sizes overflow", NULL);
}

/* All sources live here until gw_write returns. */
typedef struct {
    src_rows *src;
    size_t n, cap;
} src_list;

static int add_matrix(gw_writer *w, src_list *sl, FILE *f, const char *name, int type,
                      uint64_t offset, int64_t rows, int64_t cols) {
    int64_t ne[2];
    src_rows *s = &sl->src[sl->n++];
    s->f = f; s->offset = offset; s->cols = cols;
    ne[0] = cols; ne[1] = rows;
    return gw_tensor_rows(w, name, type, rows == 1 ? 1 : 2, ne, read_rows, s);
}

static void add_metadata(gw_writer *w, const l2c_config *c, const char *name, int type) {
    gw_str(w, "general.architecture", "llama");
    gw_str(w, "general.name", name);
    gw_u32(w, "general.file_type", gw_file_type(type));
    if (type == TFM_TYPE_Q8_0 || type == TFM_TYPE_Q4_0) gw_u32(w, "general.quantization_version", 2);
    { /* llama2.c hard-codes RoPE base 10000 and eps 1e-5, as gw_llama_keys writes them */
        gw_llama_shape sh;
        sh.vocab = c->vocab; sh.ctx = c->seq_len; sh.dim = c->dim; sh.layers = c->n_layers;
        sh.ffn = c->hidden; sh.heads = c->n_heads; sh.kv_heads = c->n_kv_heads;
        gw_llama_keys(w, &sh);
    }
}

static void add_tensors(gw_writer *w, src_list *sl, FILE *f, const l2c_config *c, const l2c_layout *o, int type) {
    int64_t d = c->dim, h = c->hidden, kv = (int64_t)c->dim / c->n_heads * c->n_kv_heads;
    int l;
    char name[64];
    add_matrix(w, sl, f, "token_embd.weight", gw_pick_type(type, 2, d, c->tied), o->emb, c->vocab, d);
    add_matrix(w, sl, f, "output_norm.weight", TFM_TYPE_F32, o->rms_final, 1, d);
    if (!c->tied) add_matrix(w, sl, f, "output.weight", gw_pick_type(type, 2, d, 1), o->wcls, c->vocab, d);
    for (l = 0; l < c->n_layers; l++) {
        uint64_t L = (uint64_t)l;
#define T(suffix, off, rows, cols) \
        (snprintf(name, sizeof name, "blk.%d." suffix, l), \
         add_matrix(w, sl, f, name, (rows) == 1 ? TFM_TYPE_F32 : gw_pick_type(type, 2, cols, 0), off, rows, cols))
        T("attn_norm.weight", o->rms_att + L * d * 4, 1, d);
        T("attn_q.weight", o->wq + L * d * d * 4, d, d);
        T("attn_k.weight", o->wk + L * kv * d * 4, kv, d);
        T("attn_v.weight", o->wv + L * kv * d * 4, kv, d);
        T("attn_output.weight", o->wo + L * d * d * 4, d, d);
        T("ffn_norm.weight", o->rms_ffn + L * d * 4, 1, d);
        T("ffn_gate.weight", o->w1 + L * h * d * 4, h, d);
        T("ffn_up.weight", o->w3 + L * h * d * 4, h, d);
        T("ffn_down.weight", o->w2 + L * d * h * 4, d, h);
#undef T
    }
}

/* "path/to/stories260K.bin" -> "stories260K" */
static void base_name(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/'), *dot;
    size_t n;
    b = b ? b + 1 : path;
    dot = strrchr(b, '.');
    n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (n >= cap) n = cap - 1;
    memcpy(out, b, n);
    out[n] = 0;
}

static int usage(void) {
    fprintf(stderr, "usage: llama2c-to-gguf model.bin tokenizer.bin out.gguf [--type f32|f16|bf16|q8_0|q4_0] [--name NAME]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *paths[3] = {NULL, NULL, NULL}, *name_arg = NULL;
    int n_paths = 0, type = TFM_TYPE_F32, i, rc = 1;
    char name[128];
    FILE *f;
    l2c_config c;
    l2c_layout o;
    src_list sl = {NULL, 0, 0};
    vocab v;
    gw_writer w;
    long fsize;

    memset(&c, 0, sizeof c);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            if ((type = gw_parse_type(argv[++i])) < 0) return usage();
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) name_arg = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) return usage();
        else if (n_paths < 3) paths[n_paths++] = argv[i];
        else return usage();
    }
    if (n_paths != 3) return usage();

    if (!(f = fopen(paths[0], "rb"))) return fail("cannot open", paths[0]);
    if (fseek(f, 0, SEEK_END) != 0 || (fsize = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return fail("cannot get the size of", paths[0]);
    }
    if (read_config(f, &c) || compute_layout(&c, &o)) { fclose(f); return 1; }
    if ((uint64_t)fsize < o.end) {
        fclose(f);
        fprintf(stderr, "llama2c-to-gguf: %s is %ld bytes but its header needs %llu\n", paths[0], fsize,
                (unsigned long long)o.end);
        return 1;
    }
    if ((uint64_t)fsize > o.end)
        fprintf(stderr, "llama2c-to-gguf: warning: %llu bytes after the last tensor are ignored\n",
                (unsigned long long)((uint64_t)fsize - o.end));

    vocab_init(&v);
    if (vocab_load_llama2c(&v, paths[1]) != 0) { fclose(f); fail(v.error, NULL); vocab_free(&v); return 1; }
    if (v.n != (size_t)c.vocab) {
        fprintf(stderr, "llama2c-to-gguf: tokenizer has %zu tokens, model has %d\n", v.n, (int)c.vocab);
        fclose(f); vocab_free(&v);
        return 1;
    }
    v.add_bos = 1;
    v.add_eos = 0;

    sl.cap = 3 + 9 * (size_t)c.n_layers;
    sl.src = (src_rows *)calloc(sl.cap, sizeof *sl.src);
    gw_init(&w);
    if (name_arg) snprintf(name, sizeof name, "%s", name_arg);
    else base_name(paths[0], name, sizeof name);
    if (sl.src) {
        add_metadata(&w, &c, name, type);
        vocab_write(&v, &w);
        add_tensors(&w, &sl, f, &c, &o, type);
        if (gw_write(&w, paths[2]) == 0) rc = 0;
        else fail(w.error, NULL);
    } else fail("out of memory", NULL);
    if (rc == 0)
        printf("wrote %s: llama, dim %d, %d layers, %d heads (%d kv), ffn %d, vocab %d, ctx %d, %s, %s head\n",
               paths[2], (int)c.dim, (int)c.n_layers, (int)c.n_heads, (int)c.n_kv_heads, (int)c.hidden,
               (int)c.vocab, (int)c.seq_len, tfm_type_name((tfm_type)type), c.tied ? "tied" : "untied");
    gw_free(&w);
    vocab_free(&v);
    free(sl.src);
    fclose(f);
    return rc;
}
