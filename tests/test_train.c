/* Tests of tools/train.c apart from the gradients (tests/test_train_grad.c): the corpus reader,
   the BPE trainer and encoder on hand-worked examples, the exp approximation, the GGUF it
   writes, bit-identical resume and thread-count independence on a tiny run, and (when
   build/kjv.txt and models/tfm-kjv.gguf exist) the shipped vocabulary.
   Run from the repository root:
   cc -std=c99 -O2 -fopenmp tests/test_train.c -o build/test_train -lm && build/test_train */
#define TRAIN_NO_MAIN
#include "../tools/train.c"

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static int same_files(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    int same;
    if (tr_read_file(a, &x, &nx)) return 0;
    if (tr_read_file(b, &y, &ny)) { free(x); return 0; }
    same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

/* ---------------------------------------------------------------- corpus */

static void test_corpus(void) {
    /* the `bible` program's layout, wrapped at 80 columns as it does by default */
    const char *text =
        "\nGenesis 1\n\n"
        "  1 In the beginning God created the heaven and the earth.\n"
        "  2 And the earth was without form, and void; and darkness was upon the face of\n"
        "the deep. And the Spirit of God moved upon the face of the waters.\n"
        "\n2 Kings 3\n\n"
        "  10 And the king of Israel said, Alas!\n";
    tr_corpus c;
    int held = 0, ch;
    check(tr_corpus_parse(&c, text, strlen(text)) == 0 && c.n_verses == 3 && c.n_chapters == 2, "corpus: 3 verses in 2 chapters");
    if (c.n_verses == 3) {
        check(strcmp(c.text + c.verse[0], "In the beginning God created the heaven and the earth.") == 0, "corpus: verse number stripped");
        check(strcmp(c.text + c.verse[1], "And the earth was without form, and void; and darkness was upon the face of "
                                          "the deep. And the Spirit of God moved upon the face of the waters.") == 0,
              "corpus: wrapped verse joined with one space");
        check(strcmp(c.text + c.verse[2], "And the king of Israel said, Alas!") == 0, "corpus: header with a number in the book name");
        check(c.chapter[0] == 0 && c.chapter[1] == 0 && c.chapter[2] == 1, "corpus: chapter of each verse");
    }
    tr_corpus_free(&c);
    for (ch = 0; ch < 1189; ch++) held += tr_is_held_out(ch);
    check(held == 23 && tr_is_held_out(49) && !tr_is_held_out(50) && !tr_is_held_out(0), "corpus: every 50th chapter held out (23 of 1189)");
}

/* ---------------------------------------------------------------- tokenizer */

static int id_of(const tr_vocab *v, const char *piece) { return tr_map_get(&v->normal, piece, (int)strlen(piece)); }

/* One verse "ab ab ab ac" -> chunks "_ab" x3, "_ac" (_ = U+2581). Pair counts: (_,a) 4,
   (a,b) 3, (a,c) 1, so the merges are "_a", then "_ab" (3), then "_ac" (1); the characters
   a b c _ follow (sorted by bytes). */
static void test_bpe_training(void) {
    const char *text = "\nBook 1\n\n  1 ab ab ab ac\n";
    tr_corpus c;
    tr_vocab v;
    int ids[16], n, ok;
    tr_corpus_parse(&c, text, strlen(text));
    ok = tr_vocab_train(&v, &c, 266) == 0 && v.n == 266;
    check(ok, "bpe: 259 + 3 merges + 4 characters = 266 pieces");
    if (ok) {
        check(strcmp(v.piece[259], TR_SPACE "a") == 0 && strcmp(v.piece[260], TR_SPACE "ab") == 0 &&
              strcmp(v.piece[261], TR_SPACE "ac") == 0, "bpe: merges in frequency order");
        check(strcmp(v.piece[262], "a") == 0 && strcmp(v.piece[265], TR_SPACE) == 0, "bpe: characters after the merges");
        check(v.score[259] == 0 && v.score[260] == -1 && v.score[265] == -6 && v.type[259] == 1, "bpe: score -rank, type normal");
        check(v.type[0] == 2 && v.type[1] == 3 && v.type[2] == 3 && v.type[3] == 6 && strcmp(v.piece[3 + 0x41], "<0x41>") == 0,
              "bpe: <unk>, control <s> </s>, byte tokens <0xNN>");
        n = tr_encode_text(&v, "ab ac", ids);
        check(n == 2 && ids[0] == 260 && ids[1] == 261, "bpe: encode \"ab ac\" = [_ab, _ac]");
    }
    if (ok) tr_vocab_free(&v);
    printf("(a \"corpus only supports 3 merges\" message is expected next)\n");
    fflush(stdout);
    check(tr_vocab_train(&v, &c, 267) != 0, "bpe: asking for more merges than the corpus has fails");
    tr_corpus_free(&c);
}

/* Hand-built vocabulary where the merge order matters:
   "_t" 0, "he" -1, "_the" -2, "_th" -3, "er" -4, "e" -5, "h" -6, "t" -7, "r" -8, "_" -9.
   "the"  -> _ t h e: best pair "_t" (0) -> _t h e; then "he" (-1) beats "_th" (-3) -> _t he;
             then "_the" -> [_the].
   "ther" -> _ t h e r: "_t" -> _t h e r; "he" (-1) beats "er" (-4) and "_th" (-3) -> _t he r;
             "_the" (-2) -> _the r; "_ther" absent -> [_the, r].
   "thé"  -> _ t h é: "_t" -> _t h é; "_th" (-3) is the only pair left -> _th é; é has no
             piece: byte fallback -> [_th, <0xC3>, <0xA9>]. */
static void test_encoder(void) {
    tr_vocab v;
    const char *pieces[] = {TR_SPACE "t", "he", TR_SPACE "the", TR_SPACE "th", "er", "e", "h", "t", "r", TR_SPACE};
    int ids[32], n, i;
    memset(&v, 0, sizeof v);
    tr_vocab_base(&v);
    for (i = 0; i < 10; i++) tr_vocab_add(&v, pieces[i], (int)strlen(pieces[i]), -(float)i, 1);
    n = tr_encode_text(&v, "the", ids);
    check(n == 1 && ids[0] == id_of(&v, TR_SPACE "the"), "encoder: \"the\" -> [_the]");
    n = tr_encode_text(&v, "ther", ids);
    check(n == 2 && ids[0] == id_of(&v, TR_SPACE "the") && ids[1] == id_of(&v, "r"), "encoder: \"ther\" -> [_the, r]");
    n = tr_encode_text(&v, "th\xc3\xa9", ids);
    check(n == 3 && ids[0] == id_of(&v, TR_SPACE "th") && ids[1] == 3 + 0xC3 && ids[2] == 3 + 0xA9,
          "encoder: unknown character -> byte tokens");
    n = tr_encode_text(&v, "<s>", ids);
    check(n == 4 && ids[0] == id_of(&v, TR_SPACE) && ids[1] == 3 + '<', "encoder: control piece text is not matched");
    tr_vocab_free(&v);
}

static void test_exp(void) {
    double worst = 0;
    char what[96];
    for (int i = -80000; i <= 80000; i++) {
        float x = (float)i / 1000.0f + 0.000123f;
        double ref = exp((double)x), rel = fabs(tr_expf(x) - ref) / ref;
        if (rel > worst) worst = rel;
    }
    snprintf(what, sizeof what, "tr_expf on [-80, 80]: max relative error %.2e (< 5e-7)", worst);
    check(worst < 5e-7, what);
    check(tr_expf(-1000.0f) < 1e-37f && tr_expf(0.0f) == 1.0f, "tr_expf: clamps, exp(0) = 1");
}

/* ---------------------------------------------------------------- tiny training runs */

static const char *sentences[] = {
    "In the beginning God created the heaven and the earth.",
    "And God said, Let there be light: and there was light.",
    "And God saw the light, that it was good.",
    "And the evening and the morning were the first day.",
    "The LORD is my shepherd; I shall not want.",
    "He maketh me to lie down in green pastures.",
    "Blessed are the meek: for they shall inherit the earth.",
    "Ask, and it shall be given you; seek, and ye shall find.",
    "For God so loved the world, that he gave his only begotten Son.",
    "Jesus wept.",
    "And the light shineth in darkness; and the darkness comprehended it not.",
    "Let not your heart be troubled: ye believe in God, believe also in me.",
};

static const char *corpus_path = "build/test_train_corpus.txt";

static int write_tiny_corpus(void) {
    FILE *f = fopen(corpus_path, "w");
    if (!f) return -1;
    for (int ch = 0; ch < 60; ch++) {
        fprintf(f, "\nBook %d\n\n", ch + 1);
        for (int v = 0; v < 10; v++) fprintf(f, "  %d %s\n", v + 1, sentences[(ch * 7 + v * 5) % 12]);
    }
    return fclose(f);
}

static void tiny_options(tr_options *o, const char *out, const char *ckpt) {
    memset(o, 0, sizeof *o);
    o->corpus = corpus_path;
    o->out = out;
    o->ckpt = ckpt;
    o->name = "tiny";
    o->quiet = 1;
    o->log_every = 1;
    o->c.dim = 32; o->c.n_layers = 2; o->c.n_heads = 2; o->c.n_kv_heads = 1; o->c.ffn = 64; o->c.vocab = 320; o->c.seq_len = 16;
    o->h.batch = 4; o->h.steps = 6; o->h.warmup = 2; o->h.lr = 1e-2; o->h.seed = 5;
}

static void test_gguf_metadata(const char *path) {
    tfm_gguf g;
    tfm_str s;
    int64_t i64;
    double f;
    int b, ok;
    const tfm_gguf_kv *types;
    const tfm_gguf_tensor *t;
    if (tfm_gguf_open(&g, path) != TFM_OK) { check(0, "gguf: written file opens with tfm_gguf_open"); return; }
#define HAS_INT(key, want) (tfm_gguf_get_int(&g, key, &i64) && i64 == (want))
    check(tfm_gguf_get_str(&g, "general.architecture", &s) && s.len == 5 && memcmp(s.ptr, "llama", 5) == 0, "gguf: architecture llama");
    check(HAS_INT("llama.context_length", 16) && HAS_INT("llama.embedding_length", 32) && HAS_INT("llama.block_count", 2) &&
          HAS_INT("llama.feed_forward_length", 64) && HAS_INT("llama.attention.head_count", 2) &&
          HAS_INT("llama.attention.head_count_kv", 1) && HAS_INT("llama.rope.dimension_count", 16), "gguf: llama.* sizes");
    check(tfm_gguf_get_float(&g, "llama.rope.freq_base", &f) && f == 10000.0 &&
          tfm_gguf_get_float(&g, "llama.attention.layer_norm_rms_epsilon", &f) && fabs(f - 1e-5) < 1e-12, "gguf: rope base, rms eps");
    check(tfm_gguf_get_str(&g, "tokenizer.ggml.model", &s) && s.len == 5 && memcmp(s.ptr, "llama", 5) == 0 &&
          HAS_INT("tokenizer.ggml.bos_token_id", 1) && HAS_INT("tokenizer.ggml.eos_token_id", 2) &&
          HAS_INT("tokenizer.ggml.unknown_token_id", 0) && tfm_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b) && b,
          "gguf: tokenizer model and special ids");
    types = tfm_gguf_find(&g, "tokenizer.ggml.token_type");
    ok = types && types->arr_n == 320 && types->arr_type == TFM_GGUF_I32;
    for (int i = 0; ok && i < 320; i++)
        ok = tfm_gguf_arr_int(types, (uint64_t)i, &i64) && i64 == (i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1);
    check(ok, "gguf: token types 2, 3, 3, 6 x 256, then 1");
    ok = tfm_gguf_arr_str(tfm_gguf_find(&g, "tokenizer.ggml.tokens"), 258, &s) && s.len == 6 && memcmp(s.ptr, "<0xFF>", 6) == 0 &&
         tfm_gguf_arr_float(tfm_gguf_find(&g, "tokenizer.ggml.scores"), 300, &f) && f == -41;
    check(ok, "gguf: byte piece names, scores -(id - 259)");
    check(g.n_tensors == 20 && !tfm_gguf_find_tensor(&g, "output.weight"), "gguf: 20 tensors, tied head (no output.weight)");
    t = tfm_gguf_find_tensor(&g, "token_embd.weight");
    check(t && t->t.type == TFM_TYPE_F32 && t->t.ne[0] == 32 && t->t.ne[1] == 320, "gguf: token_embd ne {32, 320} F32");
    t = tfm_gguf_find_tensor(&g, "blk.1.attn_k.weight");
    check(t && t->t.ne[0] == 32 && t->t.ne[1] == 16, "gguf: attn_k ne {dim, n_kv * hd} = {32, 16}");
    t = tfm_gguf_find_tensor(&g, "blk.0.ffn_down.weight");
    check(t && t->t.ne[0] == 64 && t->t.ne[1] == 32, "gguf: ffn_down ne {ffn, dim} = {64, 32}");
    t = tfm_gguf_find_tensor(&g, "output_norm.weight");
    check(t && t->t.n_dims == 1 && t->t.ne[0] == 32, "gguf: output_norm 1-D");
#undef HAS_INT
    tfm_gguf_free(&g);
}

static void test_tiny_runs(void) {
    tr_options o;
    int ok;
    const char *outputs[] = {"build/tt_a.gguf", "build/tt_b.gguf", "build/tt_c.gguf", "build/tt_d.gguf", "build/tt_a.ckpt",
                             "build/tt_b.ckpt", "build/tt_c.ckpt", "build/tt_d.ckpt"};
    for (int i = 0; i < 8; i++) remove(outputs[i]); /* results of an earlier run must not count */
    if (write_tiny_corpus()) { check(0, "write build/test_train_corpus.txt (run from the repository root, build/ must exist)"); return; }
#ifdef _OPENMP
    omp_set_num_threads(3);
#endif
    tiny_options(&o, "build/tt_a.gguf", "build/tt_a.ckpt");
    ok = tr_train(&o) == 0;
    check(ok, "tiny run: 6 steps train and write a GGUF");
    if (!ok) return;
    test_gguf_metadata("build/tt_a.gguf");
    tiny_options(&o, "build/tt_b.gguf", "build/tt_b.ckpt");
    o.stop_at = 3;
    ok = tr_train(&o) == 0 && !file_exists("build/tt_b.gguf");
    o.stop_at = 0;
    o.resume = 1;
    ok = ok && tr_train(&o) == 0;
    check(ok && same_files("build/tt_a.gguf", "build/tt_b.gguf"), "resume: 3 steps + --resume 3 steps = 6 steps, bit for bit");
#ifdef _OPENMP
    omp_set_num_threads(1);
    tiny_options(&o, "build/tt_c.gguf", "build/tt_c.ckpt");
    ok = tr_train(&o) == 0;
    check(ok && same_files("build/tt_a.gguf", "build/tt_c.gguf"), "threads: 1 thread gives the same bits as 3");
#else
    printf("SKIP: thread-count check (built without -fopenmp)\n");
#endif
    tiny_options(&o, "build/tt_d.gguf", "build/tt_d.ckpt");
    o.h.seed = 6;
    check(tr_train(&o) == 0 && !same_files("build/tt_a.gguf", "build/tt_d.gguf"), "seed: another seed gives other weights");
}

/* ---------------------------------------------------------------- the real corpus and model */

static void test_shipped_vocab(void) {
    const char *kjv = "build/kjv.txt", *model = "models/tfm-kjv.gguf";
    tr_vocab shipped, fresh;
    tr_model m;
    tr_corpus c;
    char *buf, *norm = NULL;
    size_t len, i, n_checked = 0, n_bad = 0, n_merge_bad = 0;
    int *whole = NULL;
    char what[160];
    if (!file_exists(model)) { printf("SKIP: %s missing\n", model); return; }
    if (tr_load_gguf(model, &m, &shipped, 1, 8)) { check(0, "shipped model loads"); return; }
    tr_model_free(&m);
    /* every merge must be reachable: encoding a merged piece's own text gives that piece */
    for (int id = TR_FIRST_LEARNED; id < shipped.n; id++) {
        int ids[64], n;
        if (shipped.len[id] < 2 || shipped.len[id] > 60 || tr_utf8_len(shipped.piece[id], shipped.len[id]) == shipped.len[id]) continue;
        n = tr_encode_norm(&shipped, shipped.piece[id], shipped.len[id], ids);
        n_merge_bad += !(n == 1 && ids[0] == id);
    }
    snprintf(what, sizeof what, "shipped vocabulary: every merged piece encodes to itself (%lu do not)", (unsigned long)n_merge_bad);
    check(n_merge_bad == 0, what);
    if (!file_exists(kjv)) {
        printf("SKIP: %s missing (bible -l100000 \"Genesis 1:1-Revelation 22:21\" > %s)\n", kjv, kjv);
        tr_vocab_free(&shipped);
        return;
    }
    tr_read_file(kjv, &buf, &len);
    tr_corpus_parse(&c, buf, len);
    free(buf);
    check(c.n_verses == 31102 && c.n_chapters == 1189, "kjv: 31102 verses, 1189 chapters");
    if (tr_vocab_train(&fresh, &c, shipped.n) == 0) {
        int same = fresh.n == shipped.n;
        for (int id = 0; same && id < fresh.n; id++)
            same = fresh.len[id] == shipped.len[id] && memcmp(fresh.piece[id], shipped.piece[id], (size_t)fresh.len[id]) == 0 &&
                   fresh.score[id] == shipped.score[id] && fresh.type[id] == shipped.type[id];
        check(same, "kjv: retraining the tokenizer reproduces the shipped vocabulary");
        tr_vocab_free(&fresh);
    }
    /* the corpus encoder (chunk cache) must equal encoding each whole verse */
    {
        tr_stream s;
        tr_stream_encode(&s, &shipped, &c, 1);
        for (i = 0; i < c.n_verses; i++) {
            const char *t = c.text + c.verse[i];
            size_t end = n_checked + 1 < s.n_verses ? s.verse_start[n_checked + 1] : s.n;
            int n = (int)strlen(t), k;
            if (!tr_is_held_out(c.chapter[i])) continue;
            norm = (char *)realloc(norm, 3 * ((size_t)n + 1));
            whole = (int *)realloc(whole, 3 * ((size_t)n + 1) * sizeof *whole);
            k = tr_encode_norm(&shipped, norm, tr_normalize(t, n, norm), whole);
            n_bad += !((size_t)k == end - s.verse_start[n_checked] && memcmp(whole, s.tok + s.verse_start[n_checked], (size_t)k * sizeof *whole) == 0);
            n_checked++;
        }
        snprintf(what, sizeof what, "kjv: chunked encoding equals whole-verse encoding on %lu held-out verses (%lu differ)",
                 (unsigned long)n_checked, (unsigned long)n_bad);
        check(n_checked > 500 && n_bad == 0, what);
        tr_stream_free(&s);
    }
    free(norm);
    free(whole);
    tr_corpus_free(&c);
    tr_vocab_free(&shipped);
}

int main(void) {
    test_corpus();
    test_bpe_training();
    test_encoder();
    test_exp();
    test_tiny_runs();
    test_shipped_vocab();
    printf("%s\n", failures ? "test_train: FAILED" : "test_train: all passed");
    return failures != 0;
}
