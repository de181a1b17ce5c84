/* hf_fixture - writes a small synthetic Hugging Face checkpoint directory AND the GGUF that
 * converting it must give, from one table of tensor names kept here independently of
 * tools/convert.c. Used by tests/test_convert.sh for what the shared reference files do not
 * cover: Qwen2 (q/k/v biases, no permutation, tied head), sharded checkpoints with
 * model.safetensors.index.json, BF16 and F16 sources, an untied Llama with a different
 * n_kv_heads permuted the Hugging Face way, and both tokenizer.json kinds (SentencePiece-style
 * BPE with byte fallback, and byte-level BPE with added tokens and [a, b] merges).
 *
 *   hf_fixture qwen2|llama DIR EXPECTED.gguf
 *   convert DIR OUT.gguf --type f32 --name fixture   must then equal EXPECTED.gguf key for key
 *                                                    and byte for byte in every tensor
 *
 * Every weight is (k % 17 - 8) / 8 for a k mixed from the GGUF name, row and column: multiples
 * of 1/8 are exact in F32, F16 and BF16, so the conversion to F32 must be bit-exact.
 * The Hugging Face q/k rows are made from the GGUF (Meta) rows with the permutation Hugging
 * Face's own conversion script applies (per head, Meta row 2i + j goes to row j * hd/2 + i).
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. tests/hf_fixture.c -lm -o build/hf_fixture
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "tools/gguf_write.h"
#include "tools/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DIM = 64, HEADS = 4, LAYERS = 2, FFN = 96 };

typedef struct {
    char gguf[64], hf[96];
    int64_t rows, cols;   /* GGUF view: rows of cols (rows == 0: a vector of cols) */
    int permute_heads;    /* > 0: Hugging Face q/k row order over this many heads */
    int shard;            /* 0 or 1 */
    const char *dtype;    /* "F32", "F16", "BF16" */
} fx_tensor;

typedef struct {
    fx_tensor t[64];
    int n;
    int kv_heads, vocab, tied, qwen2;
} fixture;

static float value(const char *gguf_name, int64_t r, int64_t c) {
    uint32_t h = 2166136261u;
    for (; *gguf_name; gguf_name++) h = (h ^ (unsigned char)*gguf_name) * 16777619u;
    h += (uint32_t)(r * 31 + c * 7);
    return (float)((int)(h % 17) - 8) / 8.0f;
}

static void add(fixture *f, const char *g, const char *hf, int64_t rows, int64_t cols, int permute, int shard, const char *dtype) {
    fx_tensor *t = &f->t[f->n++];
    snprintf(t->gguf, sizeof t->gguf, "%s", g);
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    t->rows = rows; t->cols = cols; t->permute_heads = permute; t->shard = shard;
    t->dtype = rows ? dtype : "F32";
}

static void build_table(fixture *f, int qwen2) {
    int l, kv = qwen2 ? 2 : 1, s;
    int64_t kvd = DIM / HEADS * kv;
    const char *mat = qwen2 ? "BF16" : "F16";
    char g[64], h[96];
    memset(f, 0, sizeof *f);
    f->qwen2 = qwen2; f->kv_heads = kv; f->vocab = qwen2 ? 16 : 270; f->tied = qwen2;
    add(f, "token_embd.weight", "model.embed_tokens.weight", f->vocab, DIM, 0, 0, mat);
    add(f, "output_norm.weight", "model.norm.weight", 0, DIM, 0, qwen2, "F32");
    if (!f->tied) add(f, "output.weight", "lm_head.weight", f->vocab, DIM, 0, qwen2, mat);
    for (l = 0; l < LAYERS; l++) {
        s = qwen2 ? l % 2 : 0; /* Qwen2: layer 0 in shard 0 as BF16, layer 1 in shard 1 as F16 */
        mat = !qwen2 ? "F16" : s ? "F16" : "BF16";
#define A(gs, hs, rows, cols, perm) \
        (snprintf(g, sizeof g, "blk.%d." gs, l), snprintf(h, sizeof h, "model.layers.%d." hs, l), add(f, g, h, rows, cols, perm, s, mat))
        A("attn_norm.weight", "input_layernorm.weight", 0, DIM, 0);
        A("attn_q.weight", "self_attn.q_proj.weight", DIM, DIM, qwen2 ? 0 : HEADS);
        A("attn_k.weight", "self_attn.k_proj.weight", kvd, DIM, qwen2 ? 0 : kv);
        A("attn_v.weight", "self_attn.v_proj.weight", kvd, DIM, 0);
        if (qwen2) {
            A("attn_q.bias", "self_attn.q_proj.bias", 0, DIM, 0);
            A("attn_k.bias", "self_attn.k_proj.bias", 0, kvd, 0);
            A("attn_v.bias", "self_attn.v_proj.bias", 0, kvd, 0);
        }
        A("attn_output.weight", "self_attn.o_proj.weight", DIM, DIM, 0);
        A("ffn_norm.weight", "post_attention_layernorm.weight", 0, DIM, 0);
        A("ffn_gate.weight", "mlp.gate_proj.weight", FFN, DIM, 0);
        A("ffn_up.weight", "mlp.up_proj.weight", FFN, DIM, 0);
        A("ffn_down.weight", "mlp.down_proj.weight", DIM, FFN, 0);
#undef A
    }
}

/* GGUF row of Hugging Face row r, for q/k rows permuted over n_head heads. */
static int64_t meta_row(int64_t r, int64_t n_rows, int n_head) {
    int64_t hd = n_rows / n_head, h = r / hd, k = r % hd, j = k / (hd / 2), i = k % (hd / 2);
    return h * hd + 2 * i + j;
}

static void put_value(unsigned char *dst, const char *dtype, float v) {
    if (strcmp(dtype, "F32") == 0) memcpy(dst, &v, 4);
    else {
        uint16_t x = strcmp(dtype, "F16") == 0 ? tfm_fp32_to_fp16(v) : tfm_fp32_to_bf16(v);
        memcpy(dst, &x, 2);
    }
}

static int write_shard(const fixture *f, int shard, const char *path) {
    char *header = (char *)malloc(65536);
    size_t hl = 0, off = 0, total = 0;
    unsigned char *data, len8[8];
    int i, b;
    FILE *out;
    hl += (size_t)sprintf(header + hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (i = 0; i < f->n; i++) {
        const fx_tensor *t = &f->t[i];
        size_t n = (size_t)(t->rows ? t->rows : 1) * (size_t)t->cols * (strcmp(t->dtype, "F32") ? 2 : 4);
        if (t->shard != shard) continue;
        if (t->rows) hl += (size_t)sprintf(header + hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                           t->hf, t->dtype, (long long)t->rows, (long long)t->cols, off, off + n);
        else hl += (size_t)sprintf(header + hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                   t->hf, t->dtype, (long long)t->cols, off, off + n);
        off += n;
    }
    header[hl++] = '}';
    total = off;
    data = (unsigned char *)malloc(total + 1);
    for (off = 0, i = 0; i < f->n; i++) {
        const fx_tensor *t = &f->t[i];
        int64_t r, c, rows = t->rows ? t->rows : 1;
        size_t es = strcmp(t->dtype, "F32") ? 2 : 4;
        if (t->shard != shard) continue;
        for (r = 0; r < rows; r++)
            for (c = 0; c < t->cols; c++) {
                int64_t gr = t->permute_heads ? meta_row(r, rows, t->permute_heads) : r;
                put_value(data + off, t->dtype, value(t->gguf, gr, c));
                off += es;
            }
    }
    if (!(out = fopen(path, "wb"))) return -1;
    for (b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)hl >> (8 * b));
    fwrite(len8, 1, 8, out);
    fwrite(header, 1, hl, out);
    fwrite(data, 1, total, out);
    free(header);
    free(data);
    return fclose(out);
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "wb"))) return -1;
    fputs(text, f);
    return fclose(f);
}

/* ------------------------------------------------------------------ tokenizers and configs */

static int write_qwen2_files(const fixture *f, const char *dir) {
    char path[512], idx[8192];
    size_t n = 0;
    int i;
    n += (size_t)sprintf(idx + n, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (i = 0; i < f->n; i++)
        n += (size_t)sprintf(idx + n, "%s\"%s\": \"model-%05d-of-00002.safetensors\"", i ? ", " : "", f->t[i].hf, f->t[i].shard + 1);
    sprintf(idx + n, "}}");
    for (i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-00002.safetensors", dir, i + 1);
        if (write_shard(f, i, path)) return -1;
    }
    return write_text(dir, "model.safetensors.index.json", idx) ||
        write_text(dir, "config.json",
            "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"vocab_size\": 16, \"hidden_size\": 64,\n"
            " \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,\n"
            " \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true,\n"
            " \"bos_token_id\": 8, \"eos_token_id\": 8, \"rope_scaling\": null, \"torch_dtype\": \"bfloat16\"}\n") ||
        write_text(dir, "tokenizer_config.json", "{\"add_bos_token\": false, \"add_eos_token\": false, \"model_max_length\": 256}\n") ||
        write_text(dir, "tokenizer.json",
            "{\"version\": \"1.0\", \"added_tokens\": [\n"
            "  {\"id\": 8, \"content\": \"<|endoftext|>\", \"special\": true},\n"
            "  {\"id\": 9, \"content\": \"<|im_start|>\", \"special\": true},\n"
            "  {\"id\": 10, \"content\": \"<tool>\", \"special\": false}],\n"
            " \"normalizer\": {\"type\": \"NFC\"},\n"
            " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"}},"
            " {\"type\": \"ByteLevel\", \"add_prefix_space\": false}]},\n"
            " \"decoder\": {\"type\": \"ByteLevel\"},\n"
            " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0120\": 2, \"\\u0120a\": 3, \"ab\": 4, \"\\u0120ab\": 5,"
            " \"c\": 6, \"\\u00c3\\u00a9\": 7},\n"
            "  \"merges\": [[\"\\u0120\", \"a\"], [\"a\", \"b\"], [\"\\u0120a\", \"b\"]]}}\n");
}

/* The vocabulary the Qwen2 tokenizer.json above must become. */
static void expected_qwen2_vocab(vocab *v) {
    static const char *const toks[] = {"a", "b", "\xc4\xa0", "\xc4\xa0" "a", "ab", "\xc4\xa0" "ab", "c", "\xc3\x83\xc2\xa9",
                                       "<|endoftext|>", "<|im_start|>", "<tool>"};
    char pad[32];
    int i;
    for (i = 0; i < 11; i++) vocab_add(v, toks[i], strlen(toks[i]), 0, i >= 8 ? (i == 10 ? VOCAB_USER : VOCAB_CONTROL) : VOCAB_NORMAL);
    for (i = 11; i < 16; i++) { sprintf(pad, "[PAD%d]", i); vocab_add(v, pad, strlen(pad), 0, VOCAB_UNUSED); }
    vocab_add_merge(v, "\xc4\xa0 a", 4);
    vocab_add_merge(v, "a b", 3);
    vocab_add_merge(v, "\xc4\xa0" "a b", 5);
    v->model = "gpt2"; v->pre = "qwen2";
    v->bos = 8; v->eos = 8; v->add_bos = 0; v->add_eos = 0;
}

static int write_llama_files(const fixture *f, const char *dir) {
    char path[512], *tok = (char *)malloc(65536);
    size_t n = 0;
    int i, rc;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (write_shard(f, 0, path)) return -1;
    n += (size_t)sprintf(tok + n,
        "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
        " {\"id\": 1, \"content\": \"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}],\n"
        " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
        " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},\n"
        " \"pre_tokenizer\": null,\n"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"\\u2581\"}, \"content\": \" \"},"
        " {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},\n"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true, \"fuse_unk\": true,\n"
        "  \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2");
    for (i = 0; i < 256; i++) n += (size_t)sprintf(tok + n, ", \"<0x%02X>\": %d", i, i + 3);
    n += (size_t)sprintf(tok + n, ", \"\\u2581\": 259, \"a\": 260, \"b\": 261, \"\\u2581a\": 262, \"ab\": 263, \"\\u2581ab\": 264, \"\\u00e9\": 265},\n"
                                  "  \"merges\": [\"\\u2581 a\", \"a b\", \"\\u2581a b\"]}}\n");
    (void)n;
    rc = write_text(dir, "tokenizer.json", tok) ||
         write_text(dir, "config.json",
            "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 270, \"hidden_size\": 64,\n"
            " \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 1,\n"
            " \"max_position_embeddings\": 2048, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false,\n"
            " \"bos_token_id\": 1, \"eos_token_id\": [2, 2], \"torch_dtype\": \"float16\"}\n");
    free(tok);
    return rc;
}

static void expected_llama_vocab(vocab *v) {
    static const char *const toks[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab", "\xc3\xa9"};
    static const float scores[] = {0, 0, 0, -1, -2, -3, 0}; /* a token made by merge r scores -(r + 1) */
    char s[32];
    int i;
    vocab_add(v, "<unk>", 5, 0, VOCAB_UNKNOWN);
    vocab_add(v, "<s>", 3, 0, VOCAB_CONTROL);
    vocab_add(v, "</s>", 4, 0, VOCAB_CONTROL);
    for (i = 0; i < 256; i++) { sprintf(s, "<0x%02X>", i); vocab_add(v, s, 6, 0, VOCAB_BYTE); }
    for (i = 0; i < 7; i++) vocab_add(v, toks[i], strlen(toks[i]), scores[i], VOCAB_NORMAL);
    for (i = 266; i < 270; i++) { sprintf(s, "[PAD%d]", i); vocab_add(v, s, strlen(s), 0, VOCAB_UNUSED); }
    v->model = "llama"; v->has_scores = 1;
    v->unk = 0; v->bos = 1; v->eos = 2; v->add_bos = 1; v->add_eos = 0;
}

/* ------------------------------------------------------------------ expected GGUF */

typedef struct { const fx_tensor *t; } fx_src;

static int fx_rows(void *user, int64_t row0, int64_t n, float *dst) {
    const fx_tensor *t = ((fx_src *)user)->t;
    int64_t r, c;
    for (r = row0; r < row0 + n; r++)
        for (c = 0; c < t->cols; c++) *dst++ = value(t->gguf, r, c);
    return 0;
}

static int write_expected(const fixture *f, const char *path) {
    gw_writer w;
    vocab v;
    fx_src src[64];
    const char *a = f->qwen2 ? "qwen2" : "llama";
    char key[96];
    int i, rc;
    gw_init(&w);
    vocab_init(&v);
#define K(s) (snprintf(key, sizeof key, "%s.%s", a, s), key)
    gw_str(&w, "general.architecture", a);
    gw_str(&w, "general.name", "fixture");       /* convert --name fixture --type f32 */
    gw_u32(&w, "general.file_type", 0);
    gw_u32(&w, K("vocab_size"), (uint32_t)f->vocab);
    gw_u32(&w, K("context_length"), f->qwen2 ? 256 : 2048);
    gw_u32(&w, K("embedding_length"), DIM);
    gw_u32(&w, K("block_count"), LAYERS);
    gw_u32(&w, K("feed_forward_length"), FFN);
    gw_u32(&w, K("attention.head_count"), HEADS);
    gw_u32(&w, K("attention.head_count_kv"), (uint32_t)f->kv_heads);
    gw_u32(&w, K("rope.dimension_count"), DIM / HEADS);
    gw_f32(&w, K("rope.freq_base"), f->qwen2 ? 1e6f : 5e5f);
    gw_f32(&w, K("attention.layer_norm_rms_epsilon"), f->qwen2 ? 1e-6f : 1e-5f);
#undef K
    if (f->qwen2) expected_qwen2_vocab(&v); else expected_llama_vocab(&v);
    vocab_write(&v, &w);
    for (i = 0; i < f->n; i++) {
        int64_t ne[2];
        ne[0] = f->t[i].cols; ne[1] = f->t[i].rows;
        src[i].t = &f->t[i];
        gw_tensor_rows(&w, f->t[i].gguf, TFM_TYPE_F32, f->t[i].rows ? 2 : 1, ne, fx_rows, &src[i]);
    }
    rc = gw_write(&w, path);
    if (rc) fprintf(stderr, "hf_fixture: %s\n", w.error);
    gw_free(&w);
    vocab_free(&v);
    return rc;
}

int main(int argc, char **argv) {
    fixture f;
    int qwen2;
    if (argc != 4 || (strcmp(argv[1], "qwen2") && strcmp(argv[1], "llama"))) {
        fprintf(stderr, "usage: hf_fixture qwen2|llama DIR EXPECTED.gguf  (DIR must exist)\n");
        return 2;
    }
    qwen2 = strcmp(argv[1], "qwen2") == 0;
    build_table(&f, qwen2);
    if ((qwen2 ? write_qwen2_files(&f, argv[2]) : write_llama_files(&f, argv[2])) || write_expected(&f, argv[3])) {
        fprintf(stderr, "hf_fixture: cannot write the fixture into %s\n", argv[2]);
        return 1;
    }
    return 0;
}
