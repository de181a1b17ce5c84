/* convert - converts a Hugging Face checkpoint directory into a GGUF file.
 *
 *   convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0] [--vocab-from FILE.gguf]
 *                           [--tokenizer-bin tokenizer.bin] [--name NAME] [--no-permute]
 *
 * HF_DIR holds config.json and model.safetensors, or shards listed in
 * model.safetensors.index.json. model_type: llama and mistral (written as llama), qwen2, gpt2,
 * opt. Source tensors F32, F16 or BF16.
 * --type: default f32 when the checkpoint's embedding is F32, else f16. Norms and biases stay
 *   F32; with q8_0/q4_0, matrices whose rows are not a multiple of 32 values are F16, and with
 *   q4_0 the output head is Q8_0 (see gw_pick_type in tools/gguf_write.h).
 * Tokenizer, first found of: --vocab-from (copies every tokenizer.* key of a GGUF),
 *   --tokenizer-bin (llama2.c tokenizer), tokenizer.json (BPE: SentencePiece-style with byte
 *   fallback, or byte-level), vocab.json + merges.txt, encoder.json + vocab.bpe (byte-level).
 *   tokenizer_config.json's add_bos_token/add_eos_token are used when present. A vocabulary
 *   shorter than the embedding is padded with "[PADn]" tokens of type unused.
 * Layouts: Llama/Mistral q_proj/k_proj rows are permuted back from Hugging Face's rotate-halves
 *   order to GGUF's adjacent pairs (per head, HF row i < hd/2 becomes row 2i, row hd/2 + i
 *   becomes 2i + 1); Qwen2 keeps Hugging Face's order (its GGUF RoPE is the rotate-halves kind).
 *   --no-permute keeps q/k rows as they are (for Llama checkpoints exported in GGUF/Meta order).
 *   GPT-2 Conv1D weights [in, out] are transposed to GGUF rows of `in`.
 *   OPT keeps all embed_positions rows (including OPT's 2 offset rows) and writes
 *   opt.position_offset = 2; opt.context_length excludes the offset rows. OPT variants with
 *   do_layer_norm_before = false or word_embed_proj_dim != hidden_size (opt-350m) are refused.
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. tools/convert.c -lm -o build/convert
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "tools/gguf_write.h"
#include "tools/vocab.h"
#include "tools/json.h"
#include "tools/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_GPT2, ARCH_OPT } arch_id;

typedef struct {
    arch_id arch;
    const char *arch_name;      /* GGUF general.architecture */
    char model_type[32];
    int64_t vocab, dim, layers, heads, kv_heads, ffn, ctx;
    double eps, rope_theta;
    int tied;
    int64_t bos, eos, pad, unk; /* -1: not given */
} hf_config;

typedef struct {
    const char *dir, *out, *vocab_from, *tokenizer_bin, *name;
    int type;                   /* -1: default */
    int no_permute;             /* Llama q/k rows are already in GGUF order */
} options;

static int fail(const char *msg, const char *detail) {
    fprintf(stderr, "convert: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    return -1;
}

/* ================================================================== files */

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = (char *)malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int file_exists(const char *dir, const char *name) {
    char *p = path_join(dir, name);
    FILE *f = p ? fopen(p, "rb") : NULL;
    free(p);
    if (f) fclose(f);
    return f != NULL;
}

/* Reads dir/name (at most 1 GB) into a malloc'd buffer; NULL if it cannot. */
static char *read_file(const char *dir, const char *name, size_t *size) {
    char *p = path_join(dir, name);
    unsigned char *buf = p ? vocab_read_file(p, (size_t)1 << 30, size) : NULL;
    free(p);
    return (char *)buf;
}

/* A parsed JSON file; text and doc live together. */
typedef struct { char *text; json_doc doc; } json_file;

static int load_json(const char *dir, const char *name, json_file *j) {
    size_t size;
    memset(j, 0, sizeof *j);
    if (!(j->text = read_file(dir, name, &size))) return fail("cannot read", name);
    if (json_parse(&j->doc, j->text, size) != 0) {
        fprintf(stderr, "convert: %s: %s\n", name, j->doc.error);
        free(j->text);
        j->text = NULL;
        return -1;
    }
    return 0;
}

static void free_json(json_file *j) { json_free(&j->doc); free(j->text); j->text = NULL; }

/* ================================================================== config.json */

/* The first present key of `keys` ("a|b|c") as an integer in [lo, hi]; def if none is present
   (def == REQ: required). Arrays give their first element (e.g. eos_token_id: [a, b]). */
#define REQ INT64_MIN
static int cfg_int(const json_doc *d, const char *keys, int64_t lo, int64_t hi, int64_t def, int64_t *out) {
    char key[64];
    const char *k = keys;
    while (*k) {
        size_t n = strcspn(k, "|"), v;
        snprintf(key, sizeof key, "%.*s", (int)n, k);
        k += n + (k[n] == '|');
        v = json_get(d, JSON_ROOT, key);
        if (v == JSON_NONE || json_type_of(d, v) == JSON_NULL) continue;
        if (json_type_of(d, v) == JSON_ARRAY) v = json_first(d, v);
        if (!json_int(d, v, lo, hi, out)) return fail("config.json value not an integer in range", key);
        return 0;
    }
    if (def == REQ) return fail("config.json lacks", keys);
    *out = def;
    return 0;
}

static double cfg_num(const json_doc *d, const char *key, double def) {
    double x;
    return json_number(d, json_get(d, JSON_ROOT, key), &x) ? x : def;
}

static int cfg_bool(const json_doc *d, const char *key, int def) {
    int b;
    return json_bool(d, json_get(d, JSON_ROOT, key), &b) ? b : def;
}


static int config_llama(const json_doc *d, hf_config *c) {
    size_t rs = json_get(d, JSON_ROOT, "rope_scaling");
    int64_t head_dim;
    if (cfg_int(d, "hidden_size", 1, 1 << 20, REQ, &c->dim) ||
        cfg_int(d, "num_hidden_layers", 1, TFM_MAX_LAYERS, REQ, &c->layers) ||
        cfg_int(d, "num_attention_heads", 1, 1 << 16, REQ, &c->heads) ||
        cfg_int(d, "num_key_value_heads", 1, 1 << 16, c->heads, &c->kv_heads) ||
        cfg_int(d, "intermediate_size", 1, 1 << 24, REQ, &c->ffn) ||
        cfg_int(d, "max_position_embeddings", 1, 1 << 30, REQ, &c->ctx) ||
        cfg_int(d, "head_dim", 1, 1 << 16, c->dim / c->heads, &head_dim))
        return -1;
    if (head_dim != c->dim / c->heads) return fail("head_dim != hidden_size / num_attention_heads is not supported", NULL);
    if (rs != JSON_NONE && json_type_of(d, rs) != JSON_NULL) return fail("rope_scaling is not supported", c->model_type);
    c->eps = cfg_num(d, "rms_norm_eps", 1e-6);
    c->rope_theta = cfg_num(d, "rope_theta", 10000.0);
    c->tied = cfg_bool(d, "tie_word_embeddings", 0);
    if (json_get(d, JSON_ROOT, "sliding_window") != JSON_NONE && json_type_of(d, json_get(d, JSON_ROOT, "sliding_window")) != JSON_NULL &&
        c->arch == ARCH_LLAMA)
        fprintf(stderr, "convert: warning: sliding_window is ignored (full attention over the context)\n");
    return 0;
}

static int config_gpt2(const json_doc *d, hf_config *c) {
    size_t act = json_get(d, JSON_ROOT, "activation_function");
    if (cfg_int(d, "n_embd|hidden_size", 1, 1 << 20, REQ, &c->dim) ||
        cfg_int(d, "n_layer|num_hidden_layers", 1, TFM_MAX_LAYERS, REQ, &c->layers) ||
        cfg_int(d, "n_head|num_attention_heads", 1, 1 << 16, REQ, &c->heads) ||
        cfg_int(d, "n_inner", 1, 1 << 24, 4 * c->dim, &c->ffn) ||
        cfg_int(d, "n_positions|n_ctx|max_position_embeddings", 1, 1 << 30, REQ, &c->ctx))
        return -1;
    if (act != JSON_NONE && !json_eq(d, act, "gelu_new") && !json_eq(d, act, "gelu_pytorch_tanh"))
        fprintf(stderr, "convert: warning: GPT-2 activation is not tanh-GELU; tfm.h computes tanh-GELU\n");
    c->kv_heads = c->heads;
    c->eps = cfg_num(d, "layer_norm_epsilon", 1e-5);
    c->tied = 1;
    return 0;
}

static int config_opt(const json_doc *d, hf_config *c) {
    int64_t proj;
    size_t act = json_get(d, JSON_ROOT, "activation_function");
    if (cfg_int(d, "hidden_size", 1, 1 << 20, REQ, &c->dim) ||
        cfg_int(d, "num_hidden_layers", 1, TFM_MAX_LAYERS, REQ, &c->layers) ||
        cfg_int(d, "num_attention_heads", 1, 1 << 16, REQ, &c->heads) ||
        cfg_int(d, "ffn_dim", 1, 1 << 24, REQ, &c->ffn) ||
        cfg_int(d, "max_position_embeddings", 1, 1 << 30, REQ, &c->ctx) ||
        cfg_int(d, "word_embed_proj_dim", 1, 1 << 20, c->dim, &proj))
        return -1;
    if (!cfg_bool(d, "do_layer_norm_before", 1))
        return fail("OPT with do_layer_norm_before = false (post-LayerNorm, e.g. opt-350m) is not supported", NULL);
    if (proj != c->dim) return fail("OPT with word_embed_proj_dim != hidden_size (project_in/out, e.g. opt-350m) is not supported", NULL);
    if (!cfg_bool(d, "enable_bias", 1) || !cfg_bool(d, "layer_norm_elementwise_affine", 1))
        return fail("OPT without biases or without LayerNorm weights is not supported", NULL);
    if (act != JSON_NONE && !json_eq(d, act, "relu")) return fail("OPT activation other than relu is not supported", NULL);
    c->kv_heads = c->heads;
    c->eps = 1e-5; /* OPT's LayerNorm uses PyTorch's default */
    c->tied = 1;
    return 0;
}

static int load_config(const char *dir, hf_config *c) {
    json_file j;
    size_t mt;
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (load_json(dir, "config.json", &j)) return -1;
    mt = json_get(&j.doc, JSON_ROOT, "model_type");
    if (json_eq(&j.doc, mt, "llama") || json_eq(&j.doc, mt, "mistral")) c->arch = ARCH_LLAMA, c->arch_name = "llama";
    else if (json_eq(&j.doc, mt, "qwen2")) c->arch = ARCH_QWEN2, c->arch_name = "qwen2";
    else if (json_eq(&j.doc, mt, "gpt2")) c->arch = ARCH_GPT2, c->arch_name = "gpt2";
    else if (json_eq(&j.doc, mt, "opt")) c->arch = ARCH_OPT, c->arch_name = "opt";
    else { fail("config.json model_type is missing or not one of llama, mistral, qwen2, gpt2, opt", NULL); goto done; }
    { char *s = json_strdup(&j.doc, mt, NULL); snprintf(c->model_type, sizeof c->model_type, "%s", s ? s : "?"); free(s); }
    if (cfg_int(&j.doc, "vocab_size", 1, 1 << 30, REQ, &c->vocab) ||
        cfg_int(&j.doc, "bos_token_id", 0, 1 << 30, -1, &c->bos) ||
        cfg_int(&j.doc, "eos_token_id", 0, 1 << 30, -1, &c->eos) ||
        cfg_int(&j.doc, "pad_token_id", 0, 1 << 30, -1, &c->pad))
        goto done;
    c->unk = -1;
    switch (c->arch) {
    case ARCH_LLAMA: case ARCH_QWEN2: rc = config_llama(&j.doc, c); break;
    case ARCH_GPT2: rc = config_gpt2(&j.doc, c); break;
    case ARCH_OPT: rc = config_opt(&j.doc, c); break;
    }
    if (rc == 0 && (c->dim % c->heads || c->heads % c->kv_heads || (c->dim / c->heads) % 2))
        rc = fail("hidden size not a multiple of heads, heads not a multiple of KV heads, or odd head size", NULL);
done:
    free_json(&j);
    return rc;
}

/* ================================================================== tensors */

typedef enum { XF_NONE, XF_TRANSPOSE, XF_PERMUTE } xform;

/* One output tensor produced from one checkpoint tensor. Output: `rows` rows of `cols` values
   (a vector: rows == 1). The source is loaded when its first row is asked for and freed after
   its last, so only one tensor is in memory at a time. */
typedef struct {
    st_index *st;
    const st_tensor *src;
    xform xf;
    int64_t rows, cols;
    int64_t n_head;      /* XF_PERMUTE: heads whose rows (or vector elements) are permuted */
    unsigned char *buf;  /* source bytes while being written */
} conv_src;

/* The source element for output element j of row r. */
static size_t src_index(const conv_src *s, int64_t r, int64_t j) {
    if (s->xf == XF_TRANSPOSE) return (size_t)j * (size_t)s->rows + (size_t)r;
    if (s->xf == XF_PERMUTE) {
        /* permute what the heads split: rows of a matrix, elements of a bias vector */
        int64_t n = s->rows > 1 ? s->rows : s->cols, i = s->rows > 1 ? r : j, hd = n / s->n_head;
        int64_t h = i / hd, k = i % hd, src = h * hd + (k % 2) * (hd / 2) + k / 2;
        return s->rows > 1 ? (size_t)src * (size_t)s->cols + (size_t)j : (size_t)src;
    }
    return (size_t)r * (size_t)s->cols + (size_t)j;
}

static int conv_rows(void *user, int64_t row0, int64_t n, float *dst) {
    conv_src *s = (conv_src *)user;
    int64_t r, j;
    if (row0 == 0 && !s->buf) {
        if (!(s->buf = (unsigned char *)malloc((size_t)s->src->nbytes ? (size_t)s->src->nbytes : 1))) return fail("out of memory", NULL);
        if (st_read(s->st, s->src, s->buf)) { free(s->buf); s->buf = NULL; return fail(s->st->error, NULL); }
    }
    if (!s->buf) return -1;
    for (r = row0; r < row0 + n; r++)
        for (j = 0; j < s->cols; j++) *dst++ = st_get(s->src->dtype, s->buf, src_index(s, r, j));
    if (row0 + n == s->rows) { free(s->buf); s->buf = NULL; }
    return 0;
}

typedef struct {
    st_index st;
    conv_src *src;          /* [n_src] */
    size_t n_src, cap_src;
    const char *prefixes[4];/* tried in order before each checkpoint name */
    int type;               /* target file type */
    int no_permute;
    gw_writer *w;
} converter;

static const st_tensor *find_src(const converter *cv, const char *name, char *found, size_t cap) {
    int p;
    char full[256];
    for (p = 0; p < 4 && cv->prefixes[p]; p++) {
        const st_tensor *t;
        snprintf(full, sizeof full, "%s%s", cv->prefixes[p], name);
        if ((t = st_find(&cv->st, full))) { snprintf(found, cap, "%s", full); return t; }
    }
    return NULL;
}

/* Adds GGUF tensor `gname` from checkpoint tensor `hname` (prefixes tried), checking that its
   shape gives `rows` x `cols` after the transform (rows == 0: a vector of cols). Returns 0, 1 if
   absent and optional, -1 on error. */
static int add_tensor(converter *cv, const char *gname, const char *hname, xform xf, int64_t rows, int64_t cols,
                      int64_t n_head, int optional, int is_head) {
    char found[256];
    const st_tensor *t = find_src(cv, hname, found, sizeof found);
    conv_src *s;
    int64_t ne[2];
    int ok;
    if (!t) {
        if (optional) return 1;
        fprintf(stderr, "convert: checkpoint tensor %s%s not found (for %s)\n", cv->prefixes[0], hname, gname);
        return -1;
    }
    if (t->dtype == ST_OTHER) return fail("checkpoint tensor dtype is not F32, F16 or BF16", found);
    if (rows == 0) ok = t->n_dims == 1 && t->shape[0] == cols;
    else if (xf == XF_TRANSPOSE) ok = t->n_dims == 2 && t->shape[0] == cols && t->shape[1] == rows;
    else ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (!ok) {
        fprintf(stderr, "convert: %s has shape [%lld%s%lld], expected %s[%lld, %lld]\n", found, (long long)t->shape[0],
                t->n_dims > 1 ? ", " : "", (long long)(t->n_dims > 1 ? t->shape[1] : 0), xf == XF_TRANSPOSE ? "transposed " : "",
                (long long)(rows ? rows : 1), (long long)cols);
        return -1;
    }
    s = &cv->src[cv->n_src++];
    s->st = &cv->st; s->src = t; s->xf = xf; s->rows = rows ? rows : 1; s->cols = cols; s->n_head = n_head; s->buf = NULL;
    ne[0] = cols; ne[1] = rows;
    return gw_tensor_rows(cv->w, gname, rows ? gw_pick_type(cv->type, 2, cols, is_head) : TFM_TYPE_F32, rows ? 2 : 1, ne, conv_rows, s);
}

/* Adds a per-layer tensor: names are formats with one %d (the layer). */
static int add_layer(converter *cv, int l, const char *gfmt, const char *hfmt, xform xf, int64_t rows, int64_t cols, int64_t n_head, int optional) {
    char g[96], h[192];
    snprintf(g, sizeof g, gfmt, l);
    snprintf(h, sizeof h, hfmt, l);
    return add_tensor(cv, g, h, xf, rows, cols, n_head, optional, 0);
}

static int map_llama(converter *cv, const hf_config *c) {
    int64_t d = c->dim, kv = c->dim / c->heads * c->kv_heads;
    int l, bias = c->arch == ARCH_QWEN2, rc = 0;
    xform qk = c->arch == ARCH_LLAMA && !cv->no_permute ? XF_PERMUTE : XF_NONE;
    cv->prefixes[0] = "model."; cv->prefixes[1] = "";
    rc |= add_tensor(cv, "token_embd.weight", "embed_tokens.weight", XF_NONE, c->vocab, d, 0, 0, c->tied) < 0;
    rc |= add_tensor(cv, "output_norm.weight", "norm.weight", XF_NONE, 0, d, 0, 0, 0) < 0;
    if (!c->tied) {
        cv->prefixes[0] = ""; cv->prefixes[1] = "model.";
        rc |= add_tensor(cv, "output.weight", "lm_head.weight", XF_NONE, c->vocab, d, 0, 0, 1) < 0;
        cv->prefixes[0] = "model."; cv->prefixes[1] = "";
    }
    for (l = 0; l < c->layers && !rc; l++) {
        rc |= add_layer(cv, l, "blk.%d.attn_norm.weight", "layers.%d.input_layernorm.weight", XF_NONE, 0, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_q.weight", "layers.%d.self_attn.q_proj.weight", qk, d, d, c->heads, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_k.weight", "layers.%d.self_attn.k_proj.weight", qk, kv, d, c->kv_heads, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_v.weight", "layers.%d.self_attn.v_proj.weight", XF_NONE, kv, d, 0, 0) < 0;
        /* Qwen2 always has q/k/v biases; a Llama with attention_bias has them too */
        rc |= add_layer(cv, l, "blk.%d.attn_q.bias", "layers.%d.self_attn.q_proj.bias", qk, 0, d, c->heads, !bias) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_k.bias", "layers.%d.self_attn.k_proj.bias", qk, 0, kv, c->kv_heads, !bias) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_v.bias", "layers.%d.self_attn.v_proj.bias", XF_NONE, 0, kv, 0, !bias) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_output.weight", "layers.%d.self_attn.o_proj.weight", XF_NONE, d, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_norm.weight", "layers.%d.post_attention_layernorm.weight", XF_NONE, 0, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_gate.weight", "layers.%d.mlp.gate_proj.weight", XF_NONE, c->ffn, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_up.weight", "layers.%d.mlp.up_proj.weight", XF_NONE, c->ffn, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_down.weight", "layers.%d.mlp.down_proj.weight", XF_NONE, d, c->ffn, 0, 0) < 0;
    }
    return rc ? -1 : 0;
}

static int map_gpt2(converter *cv, const hf_config *c) {
    int64_t d = c->dim;
    int l, rc = 0;
    cv->prefixes[0] = "transformer."; cv->prefixes[1] = "";
    rc |= add_tensor(cv, "token_embd.weight", "wte.weight", XF_NONE, c->vocab, d, 0, 0, 1) < 0;
    rc |= add_tensor(cv, "position_embd.weight", "wpe.weight", XF_NONE, c->ctx, d, 0, 0, 0) < 0;
    for (l = 0; l < c->layers && !rc; l++) {
        rc |= add_layer(cv, l, "blk.%d.attn_norm.weight", "h.%d.ln_1.weight", XF_NONE, 0, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_norm.bias", "h.%d.ln_1.bias", XF_NONE, 0, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_qkv.weight", "h.%d.attn.c_attn.weight", XF_TRANSPOSE, 3 * d, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_qkv.bias", "h.%d.attn.c_attn.bias", XF_NONE, 0, 3 * d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_output.weight", "h.%d.attn.c_proj.weight", XF_TRANSPOSE, d, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.attn_output.bias", "h.%d.attn.c_proj.bias", XF_NONE, 0, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_norm.weight", "h.%d.ln_2.weight", XF_NONE, 0, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_norm.bias", "h.%d.ln_2.bias", XF_NONE, 0, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_up.weight", "h.%d.mlp.c_fc.weight", XF_TRANSPOSE, c->ffn, d, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_up.bias", "h.%d.mlp.c_fc.bias", XF_NONE, 0, c->ffn, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_down.weight", "h.%d.mlp.c_proj.weight", XF_TRANSPOSE, d, c->ffn, 0, 0) < 0;
        rc |= add_layer(cv, l, "blk.%d.ffn_down.bias", "h.%d.mlp.c_proj.bias", XF_NONE, 0, d, 0, 0) < 0;
    }
    rc |= add_tensor(cv, "output_norm.weight", "ln_f.weight", XF_NONE, 0, d, 0, 0, 0) < 0;
    rc |= add_tensor(cv, "output_norm.bias", "ln_f.bias", XF_NONE, 0, d, 0, 0, 0) < 0;
    return rc ? -1 : 0;
}

static int map_opt(converter *cv, const hf_config *c) {
    static const char *const pairs[][2] = { /* GGUF name in a layer, checkpoint name in a layer */
        {"attn_norm", "self_attn_layer_norm"}, {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.out_proj"}, {"ffn_norm", "final_layer_norm"},
        {"ffn_up", "fc1"}, {"ffn_down", "fc2"}};
    int64_t d = c->dim;
    int l, p, rc = 0;
    cv->prefixes[0] = "model.decoder."; cv->prefixes[1] = "decoder."; cv->prefixes[2] = "";
    rc |= add_tensor(cv, "token_embd.weight", "embed_tokens.weight", XF_NONE, c->vocab, d, 0, 0, 1) < 0;
    rc |= add_tensor(cv, "position_embd.weight", "embed_positions.weight", XF_NONE, c->ctx + 2, d, 0, 0, 0) < 0;
    for (l = 0; l < c->layers && !rc; l++)
        for (p = 0; p < 8; p++) {
            char g[64], h[96];
            int norm = p == 0 || p == 5;
            int64_t rows = norm ? 0 : p == 6 ? c->ffn : d, cols = p == 7 ? c->ffn : d;
            snprintf(g, sizeof g, "blk.%%d.%s.weight", pairs[p][0]);
            snprintf(h, sizeof h, "layers.%%d.%s.weight", pairs[p][1]);
            rc |= add_layer(cv, l, g, h, XF_NONE, rows, cols, 0, 0) < 0;
            snprintf(g, sizeof g, "blk.%%d.%s.bias", pairs[p][0]);
            snprintf(h, sizeof h, "layers.%%d.%s.bias", pairs[p][1]);
            rc |= add_layer(cv, l, g, h, XF_NONE, 0, rows ? rows : d, 0, 0) < 0;
        }
    rc |= add_tensor(cv, "output_norm.weight", "final_layer_norm.weight", XF_NONE, 0, d, 0, 0, 0) < 0;
    rc |= add_tensor(cv, "output_norm.bias", "final_layer_norm.bias", XF_NONE, 0, d, 0, 0, 0) < 0;
    return rc ? -1 : 0;
}

/* Indexes model.safetensors, or every shard named in model.safetensors.index.json. */
static int load_checkpoint(const char *dir, st_index *st) {
    json_file j;
    size_t map, k, k2;
    int rc = 0;
    memset(st, 0, sizeof *st);
    if (file_exists(dir, "model.safetensors")) {
        char *p = path_join(dir, "model.safetensors");
        rc = p ? st_add_file(st, p) : -1;
        free(p);
        return rc ? fail(st->error, NULL) : 0;
    }
    if (!file_exists(dir, "model.safetensors.index.json"))
        return fail("no model.safetensors or model.safetensors.index.json in", dir);
    if (load_json(dir, "model.safetensors.index.json", &j)) return -1;
    map = json_get(&j.doc, JSON_ROOT, "weight_map");
    if (map == JSON_NONE || json_type_of(&j.doc, map) != JSON_OBJECT) rc = fail("index has no weight_map object", NULL);
    for (k = json_first(&j.doc, map); rc == 0 && k != JSON_NONE; k = json_next(&j.doc, k)) {
        char *shard = json_strdup(&j.doc, k + 1, NULL), *p;
        int seen = 0;
        if (!shard || strchr(shard, '/') || strchr(shard, '\\') || shard[0] == '.' || !shard[0]) {
            rc = fail("weight_map names a file outside the directory", shard);
            free(shard);
            break;
        }
        for (k2 = json_first(&j.doc, map); k2 != k && !seen; k2 = json_next(&j.doc, k2)) seen = json_eq(&j.doc, k2 + 1, shard);
        if (!seen) {
            p = path_join(dir, shard);
            if (!p || st_add_file(st, p)) rc = fail(st->error, NULL);
            free(p);
        }
        free(shard);
    }
    free_json(&j);
    return rc;
}

/* ================================================================== tokenizers */

/* Byte-level BPE vocabulary from a {token: id} object, ordered by id (gaps become [PADn]). */
static int vocab_from_map(vocab *v, const json_doc *d, size_t obj, const hf_config *c) {
    size_t *by_id, k, n = 0, i;
    int64_t id = 0, max_id = -1;
    int rc = 0;
    if (obj == JSON_NONE || json_type_of(d, obj) != JSON_OBJECT) return fail("vocabulary is not a {token: id} object", NULL);
    for (k = json_first(d, obj); k != JSON_NONE; k = json_next(d, k)) {
        if (!json_int(d, k + 1, 0, (1 << 24) - 1, &id)) return fail("token id not an integer below 2^24", NULL);
        if (id > max_id) max_id = id;
        n++;
    }
    if (!(by_id = (size_t *)malloc((size_t)(max_id + 1) * sizeof *by_id + 1))) return fail("out of memory", NULL);
    for (i = 0; i < (size_t)(max_id + 1); i++) by_id[i] = JSON_NONE;
    for (k = json_first(d, obj); k != JSON_NONE; k = json_next(d, k)) {
        json_int(d, k + 1, 0, (1 << 24) - 1, &id);
        if (by_id[id] != JSON_NONE) { free(by_id); return fail("two tokens share an id", NULL); }
        by_id[id] = k;
    }
    for (i = 0; rc == 0 && i < (size_t)(max_id + 1); i++) {
        char pad[32], *s;
        size_t len;
        int special = 0;
        if (by_id[i] == JSON_NONE) {
            snprintf(pad, sizeof pad, "[PAD%zu]", i);
            rc = vocab_add(v, pad, strlen(pad), 0, VOCAB_UNUSED);
            continue;
        }
        if (!(s = json_strdup(d, by_id[i], &len))) { rc = fail("out of memory", NULL); break; }
        /* the special ids of config.json are control tokens when they look like one (<...>) */
        if (((int64_t)i == c->bos || (int64_t)i == c->eos || (int64_t)i == c->pad || (int64_t)i == c->unk) && len > 2 && s[0] == '<' && s[len - 1] == '>') special = 1;
        rc = vocab_add(v, s, len, 0, special ? VOCAB_CONTROL : VOCAB_NORMAL);
        free(s);
    }
    free(by_id);
    return rc ? fail(v->error[0] ? v->error : "cannot build the vocabulary", NULL) : 0;
}

/* merges.txt / vocab.bpe: one "left right" per line; a first line starting with #version is a
   header. */
static int merges_from_text(vocab *v, const char *text, size_t size) {
    size_t pos = 0, line = 0;
    while (pos < size) {
        const char *s = text + pos, *nl = (const char *)memchr(s, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - s) : size - pos;
        pos += len + (nl != NULL);
        if (len && s[len - 1] == '\r') len--;
        if (line++ == 0 && len >= 8 && memcmp(s, "#version", 8) == 0) continue;
        if (!len) continue;
        if (!memchr(s, ' ', len)) return fail("merge line without a space", NULL);
        if (vocab_add_merge(v, s, len)) return fail(v->error, NULL);
    }
    return 0;
}

static int merges_from_json(vocab *v, const json_doc *d, size_t arr) {
    size_t k;
    for (k = json_first(d, arr); k != JSON_NONE; k = json_next(d, k)) {
        char *a, *b, *m;
        size_t la = 0, lb = 0;
        int rc;
        if (json_type_of(d, k) == JSON_STRING) { /* "left right" */
            a = json_strdup(d, k, &la);
            rc = a ? vocab_add_merge(v, a, la) : -1;
            free(a);
        } else { /* ["left", "right"] */
            size_t e = json_first(d, k);
            if (json_type_of(d, k) != JSON_ARRAY || d->nodes[k].count != 2) return fail("merge is neither \"a b\" nor [a, b]", NULL);
            a = json_strdup(d, e, &la);
            b = json_strdup(d, json_next(d, e), &lb);
            m = a && b ? (char *)malloc(la + lb + 2) : NULL;
            if (m) { memcpy(m, a, la); m[la] = ' '; memcpy(m + la + 1, b, lb); }
            rc = m ? vocab_add_merge(v, m, la + lb + 1) : -1;
            free(a); free(b); free(m);
        }
        if (rc) return fail("bad merge or out of memory", NULL);
    }
    return 0;
}

static const char *bpe_pre_name(const hf_config *c) {
    return c->arch == ARCH_QWEN2 ? "qwen2" : c->arch == ARCH_LLAMA ? "llama-bpe" : "gpt-2";
}

/* Scores for a SentencePiece-style BPE vocabulary from tokenizer.json, which has merges but
   no scores: a token made by merge number r scores -(r + 1), so "merge the best-scoring pair"
   follows the merge order; tokens no merge produces score 0 (never a merge result). Tokens are
   found through a sorted index: vocabularies reach 150k tokens and as many merges. */
typedef struct { const char *s; size_t len, id; } tok_ref;

static int cmp_tok(const void *pa, const void *pb) {
    const tok_ref *a = (const tok_ref *)pa, *b = (const tok_ref *)pb;
    int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int scores_from_merges(vocab *v) {
    tok_ref *refs = (tok_ref *)malloc(v->n * sizeof *refs + 1), key;
    char *buf = NULL;
    size_t cap = 0, i, m;
    if (!refs) return fail("out of memory", NULL);
    for (i = 0; i < v->n; i++) { refs[i].s = v->text[i]; refs[i].len = v->len[i]; refs[i].id = i; v->scores[i] = 0; }
    qsort(refs, v->n, sizeof *refs, cmp_tok);
    for (m = v->n_merges; m-- > 0;) { /* last to first, so the earliest merge wins */
        const char *sp = strchr(v->merges[m], ' ');
        size_t la = (size_t)(sp - v->merges[m]), lb = strlen(sp + 1);
        const tok_ref *hit;
        if (la + lb > cap) {
            char *nb = (char *)realloc(buf, cap = 2 * (la + lb) + 16);
            if (!nb) { free(buf); free(refs); return fail("out of memory", NULL); }
            buf = nb;
        }
        memcpy(buf, v->merges[m], la);
        memcpy(buf + la, sp + 1, lb);
        key.s = buf; key.len = la + lb; key.id = 0;
        if ((hit = (const tok_ref *)bsearch(&key, refs, v->n, sizeof *refs, cmp_tok))) v->scores[hit->id] = -(float)(m + 1);
    }
    free(buf);
    free(refs);
    return 0;
}

/* Does the JSON subtree's text mention `word`? (for "type": "ByteLevel" anywhere inside) */
static int subtree_mentions(const json_doc *d, size_t node, const char *word) {
    size_t n = strlen(word), i;
    const char *t;
    if (node == JSON_NONE) return 0;
    t = d->text + d->nodes[node].start;
    for (i = 0; i + n <= d->nodes[node].len; i++)
        if (memcmp(t + i, word, n) == 0) return 1;
    return 0;
}

static int vocab_from_tokenizer_json(vocab *v, const char *dir, const hf_config *c) {
    json_file j;
    const json_doc *d;
    size_t model, added, k;
    int rc = -1, byte_level;
    if (load_json(dir, "tokenizer.json", &j)) return -1;
    d = &j.doc;
    model = json_get(d, JSON_ROOT, "model");
    if (!json_eq(d, json_get(d, model, "type"), "BPE")) { fail("tokenizer.json: only BPE models are supported", NULL); goto done; }
    byte_level = subtree_mentions(d, json_get(d, JSON_ROOT, "pre_tokenizer"), "ByteLevel") ||
                 subtree_mentions(d, json_get(d, JSON_ROOT, "decoder"), "ByteLevel");
    if (vocab_from_map(v, d, json_get(d, model, "vocab"), c)) goto done;
    if (merges_from_json(v, d, json_get(d, model, "merges"))) goto done;
    /* added tokens: control if special, else user-defined; may extend the vocabulary */
    added = json_get(d, JSON_ROOT, "added_tokens");
    for (k = json_first(d, added); k != JSON_NONE; k = json_next(d, k)) {
        int64_t id;
        int special = 0;
        size_t len;
        char *s = json_strdup(d, json_get(d, k, "content"), &len);
        if (!s || !json_int(d, json_get(d, k, "id"), 0, (1 << 24) - 1, &id)) { free(s); fail("tokenizer.json: bad added token", NULL); goto done; }
        json_bool(d, json_get(d, k, "special"), &special);
        while ((int64_t)v->n <= id) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%zu]", v->n);
            if (vocab_add(v, pad, strlen(pad), 0, VOCAB_UNUSED)) { free(s); goto done; }
        }
        free(v->text[id]);
        v->text[id] = s;
        v->len[id] = len;
        v->types[id] = special ? VOCAB_CONTROL : VOCAB_USER;
    }
    if (byte_level) {
        v->model = "gpt2";
        v->pre = bpe_pre_name(c);
    } else { /* SentencePiece-style: byte pieces, unknown token, scores from the merge order */
        char *unk = json_strdup(d, json_get(d, model, "unk_token"), NULL);
        v->model = "llama";
        v->has_scores = 1;
        for (k = 0; k < v->n; k++) {
            if (v->types[k] == VOCAB_NORMAL && vocab_is_byte_piece(v->text[k], v->len[k])) v->types[k] = VOCAB_BYTE;
            if (unk && strcmp(v->text[k], unk) == 0) { v->types[k] = VOCAB_UNKNOWN; v->unk = (int64_t)k; }
        }
        free(unk);
        if (scores_from_merges(v)) goto done;
        while (v->n_merges) free(v->merges[--v->n_merges]); /* the scores carry them now */
    }
    rc = 0;
done:
    free_json(&j);
    return rc;
}

/* vocab.json + merges.txt (or encoder.json + vocab.bpe): GPT-2 style byte-level BPE. */
static int vocab_from_bpe_files(vocab *v, const char *dir, const char *vocab_name, const char *merges_name, const hf_config *c) {
    json_file j;
    size_t size;
    char *merges;
    int rc;
    if (load_json(dir, vocab_name, &j)) return -1;
    rc = vocab_from_map(v, &j.doc, JSON_ROOT, c);
    free_json(&j);
    if (rc) return -1;
    if (!(merges = read_file(dir, merges_name, &size))) return fail("cannot read", merges_name);
    rc = merges_from_text(v, merges, size);
    free(merges);
    v->model = "gpt2";
    v->pre = bpe_pre_name(c);
    return rc;
}

/* tokenizer_config.json's add_bos_token / add_eos_token, when present. */
static void read_tokenizer_config(vocab *v, const char *dir) {
    json_file j;
    int b;
    if (!file_exists(dir, "tokenizer_config.json") || load_json(dir, "tokenizer_config.json", &j)) return;
    if (json_bool(&j.doc, json_get(&j.doc, JSON_ROOT, "add_bos_token"), &b)) v->add_bos = b;
    if (json_bool(&j.doc, json_get(&j.doc, JSON_ROOT, "add_eos_token"), &b)) v->add_eos = b;
    free_json(&j);
}

static int load_vocab(vocab *v, const options *o, const hf_config *c) {
    int rc;
    if (o->tokenizer_bin) rc = vocab_load_llama2c(v, o->tokenizer_bin) ? fail(v->error, NULL) : 0;
    else if (file_exists(o->dir, "tokenizer.json")) rc = vocab_from_tokenizer_json(v, o->dir, c);
    else if (file_exists(o->dir, "vocab.json") && file_exists(o->dir, "merges.txt")) rc = vocab_from_bpe_files(v, o->dir, "vocab.json", "merges.txt", c);
    else if (file_exists(o->dir, "encoder.json") && file_exists(o->dir, "vocab.bpe")) rc = vocab_from_bpe_files(v, o->dir, "encoder.json", "vocab.bpe", c);
    else return fail("no tokenizer found (tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe); use --vocab-from or --tokenizer-bin", NULL);
    if (rc) return -1;
    if (!o->tokenizer_bin) { /* llama2.c tokenizers fix their own special ids */
        v->bos = c->bos; v->eos = c->eos;
        if (c->pad >= 0 && c->pad != c->eos) v->pad = c->pad;
    }
    /* defaults: Llama (SentencePiece and Llama 3 alike), Mistral and OPT add BOS; GPT-2 and
       Qwen2 do not */
    v->add_bos = c->arch == ARCH_OPT || c->arch == ARCH_LLAMA;
    v->add_eos = 0;
    if (!o->tokenizer_bin) read_tokenizer_config(v, o->dir);
    while ((int64_t)v->n < c->vocab) { /* embedding rows past the tokenizer */
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%zu]", v->n);
        if (vocab_add(v, pad, strlen(pad), 0, VOCAB_UNUSED)) return fail(v->error, NULL);
    }
    if ((int64_t)v->n > c->vocab) {
        fprintf(stderr, "convert: tokenizer has %zu tokens but the embedding only %lld rows\n", v->n, (long long)c->vocab);
        return -1;
    }
    return 0;
}

/* --vocab-from: every tokenizer.* key of another GGUF, copied as it is. */
static int copy_vocab_keys(gw_writer *w, const char *path, const hf_config *c) {
    tfm_gguf g;
    size_t i, n = 0;
    const tfm_gguf_kv *toks;
    if (tfm_gguf_open(&g, path) != TFM_OK) return fail(g.error, NULL);
    for (i = 0; i < g.n_kv; i++) {
        char key[256];
        const tfm_gguf_kv *kv = &g.kv[i];
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0 || kv->key.len >= sizeof key) continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        gw_copy_kv(w, key, kv);
        n++;
    }
    toks = tfm_gguf_find(&g, "tokenizer.ggml.tokens");
    if (toks && (int64_t)toks->arr_n != c->vocab)
        fprintf(stderr, "convert: warning: %s has %llu tokens, the embedding %lld rows\n", path, (unsigned long long)toks->arr_n, (long long)c->vocab);
    tfm_gguf_free(&g);
    if (!n || !toks) return fail("no tokenizer.ggml.tokens in", path);
    return w->failed ? fail(w->error, NULL) : 0;
}

/* ================================================================== metadata */

static void add_metadata(gw_writer *w, const hf_config *c, const char *name, int type) {
    char key[96];
    const char *a = c->arch_name;
#define K(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    gw_str(w, "general.architecture", a);
    gw_str(w, "general.name", name);
    gw_u32(w, "general.file_type", gw_file_type(type));
    if (type == TFM_TYPE_Q8_0 || type == TFM_TYPE_Q4_0) gw_u32(w, "general.quantization_version", 2);
    gw_u32(w, K("vocab_size"), (uint32_t)c->vocab);
    gw_u32(w, K("context_length"), (uint32_t)c->ctx);
    gw_u32(w, K("embedding_length"), (uint32_t)c->dim);
    gw_u32(w, K("block_count"), (uint32_t)c->layers);
    gw_u32(w, K("feed_forward_length"), (uint32_t)c->ffn);
    gw_u32(w, K("attention.head_count"), (uint32_t)c->heads);
    if (c->arch == ARCH_LLAMA || c->arch == ARCH_QWEN2) {
        gw_u32(w, K("attention.head_count_kv"), (uint32_t)c->kv_heads);
        gw_u32(w, K("rope.dimension_count"), (uint32_t)(c->dim / c->heads));
        gw_f32(w, K("rope.freq_base"), (float)c->rope_theta);
        gw_f32(w, K("attention.layer_norm_rms_epsilon"), (float)c->eps);
    } else gw_f32(w, K("attention.layer_norm_epsilon"), (float)c->eps);
    if (c->arch == ARCH_OPT) gw_u32(w, K("position_offset"), 2);
#undef K
}

/* ================================================================== main */

static int usage(void) {
    fprintf(stderr, "usage: convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0] [--vocab-from FILE.gguf]\n"
                    "                               [--tokenizer-bin tokenizer.bin] [--name NAME] [--no-permute]\n");
    return 2;
}

static int parse_args(int argc, char **argv, options *o) {
    int i, np = 0;
    memset(o, 0, sizeof *o);
    o->type = -1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--type") == 0 && i + 1 < argc) { if ((o->type = gw_parse_type(argv[++i])) < 0) return usage(); }
        else if (strcmp(a, "--vocab-from") == 0 && i + 1 < argc) o->vocab_from = argv[++i];
        else if (strcmp(a, "--tokenizer-bin") == 0 && i + 1 < argc) o->tokenizer_bin = argv[++i];
        else if (strcmp(a, "--name") == 0 && i + 1 < argc) o->name = argv[++i];
        else if (strcmp(a, "--no-permute") == 0) o->no_permute = 1;
        else if (a[0] == '-' || np == 2) return usage();
        else if (np++ == 0) o->dir = a;
        else o->out = a;
    }
    return np == 2 ? 0 : usage();
}

/* "path/to/Model-Dir/" -> "Model-Dir" */
static void dir_name(const char *dir, char *out, size_t cap) {
    size_t n = strlen(dir);
    const char *b;
    while (n > 1 && dir[n - 1] == '/') n--;
    for (b = dir + n; b > dir && b[-1] != '/'; b--) {}
    n = (size_t)(dir + n - b);
    if (n >= cap) n = cap - 1;
    memcpy(out, b, n);
    out[n] = 0;
}

int main(int argc, char **argv) {
    options o;
    hf_config c;
    converter cv;
    vocab v;
    gw_writer w;
    char name[128];
    int rc;
    if ((rc = parse_args(argc, argv, &o)) != 0) return rc;
    if (load_config(o.dir, &c)) return 1;
    memset(&cv, 0, sizeof cv);
    vocab_init(&v);
    gw_init(&w);
    rc = 1;
    if (load_checkpoint(o.dir, &cv.st)) goto done;
    if (o.type < 0) { /* default: keep F32 checkpoints exact, halve the others */
        const st_tensor *e = st_find(&cv.st, c.arch == ARCH_GPT2 ? "transformer.wte.weight" : "model.embed_tokens.weight");
        o.type = !e || e->dtype == ST_F32 ? TFM_TYPE_F32 : TFM_TYPE_F16;
    }
    if (!o.vocab_from && load_vocab(&v, &o, &c)) goto done;
    if (o.name) snprintf(name, sizeof name, "%s", o.name);
    else dir_name(o.dir, name, sizeof name);

    add_metadata(&w, &c, name, o.type);
    if (o.vocab_from ? copy_vocab_keys(&w, o.vocab_from, &c) : vocab_write(&v, &w)) goto done;
    cv.cap_src = 16 + 24 * (size_t)c.layers;
    if (!(cv.src = (conv_src *)calloc(cv.cap_src, sizeof *cv.src))) { fail("out of memory", NULL); goto done; }
    cv.type = o.type;
    cv.no_permute = o.no_permute;
    cv.w = &w;
    if ((c.arch == ARCH_GPT2 ? map_gpt2(&cv, &c) : c.arch == ARCH_OPT ? map_opt(&cv, &c) : map_llama(&cv, &c)) != 0) {
        if (w.failed) fail(w.error, NULL);
        goto done;
    }
    if (gw_write(&w, o.out) != 0) { fail(w.error, NULL); goto done; }
    printf("wrote %s: %s (%s), dim %lld, %lld layers, %lld heads (%lld kv), ffn %lld, vocab %lld, ctx %lld, %s, %zu tensors\n",
           o.out, c.arch_name, c.model_type, (long long)c.dim, (long long)c.layers, (long long)c.heads, (long long)c.kv_heads,
           (long long)c.ffn, (long long)c.vocab, (long long)c.ctx, tfm_type_name((tfm_type)o.type), cv.n_src);
    rc = 0;
done:
    if (cv.src) { size_t i; for (i = 0; i < cv.n_src; i++) free(cv.src[i].buf); }
    free(cv.src);
    st_free(&cv.st);
    gw_free(&w);
    vocab_free(&v);
    return rc;
}
