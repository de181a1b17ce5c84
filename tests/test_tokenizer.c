/* test_tokenizer.c - tfm.h tokenizer against other implementations' token ids, hand-worked
   pre-tokenizer splits, and broken input.

   Build and run from the repository root (reads ../shared/...):
     cc -O2 -std=c99 -Wall -Wextra -pedantic -Itests -I. tests/test_tokenizer.c -lm -o build/test_tokenizer && build/test_tokenizer

   References:
     ../shared/models/vocab/ggml-vocab-{llama-spm,gpt-2}.gguf.{inp,out}  Hugging Face tokenizers' ids
     ../shared/ref/{tok512,llama2_tokenizer.bin}_encode_run.c.tsv      llama2.c's encoder (BOS first)
     ../shared/ref/stories260K_once_upon_t0_n256.{tokens.txt,txt}      llama2.c's printed text
     ../shared/ref/llama-2-tiny-random_hello_world_greedy32...tokens.txt llama.cpp's ids and text
     ../shared/ref/gpt2-A/A.{hello,once}.llamacpp.tokens.txt           llama.cpp's prompt ids (GPT-2)
*/
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "tok_util.h"
#include <time.h>

#define SHARED "../shared/"

/* ---------------------------------------------------------------- loading vocabularies */

typedef struct {
    unsigned char *bytes; /* GGUF file or in-memory GGUF */
    tfm_gguf g;
    tfm_vocab v;
    int ok;
} vocab_file;

static int vocab_from_bytes(vocab_file *f, unsigned char *bytes, size_t n, const char *what) {
    tfm_result rc;
    f->bytes = bytes;
    f->ok = 0;
    rc = tfm_gguf_init(&f->g, bytes, n);
    CHECK(rc == TFM_OK, "%s: gguf init: %s", what, f->g.error);
    if (rc != TFM_OK) return 0;
    rc = tfm_vocab_init(&f->v, &f->g);
    CHECK(rc == TFM_OK, "%s: vocab init: %s (%s)", what, tfm_result_string(rc), f->v.error);
    f->ok = rc == TFM_OK;
    return f->ok;
}

static int vocab_open(vocab_file *f, const char *path) {
    size_t n;
    unsigned char *b = tu_load(path, &n);
    memset(f, 0, sizeof *f);
    if (!b) return 0;
    return vocab_from_bytes(f, b, n, path);
}

static void vocab_close(vocab_file *f) {
    tfm_vocab_free(&f->v);
    tfm_gguf_free(&f->g);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

/* llama2.c tokenizer.bin (int32 max_token_length, then per token: f32 score, int32 len, bytes)
   as a vocabulary-only GGUF: ids 0..2 <unk>,<s>,</s>, <0x00>..<0xFF> byte tokens at 3..258.
   llama2.c's exporter wrote SentencePiece's U+2581 as ' ': it goes back to U+2581 here. */
static unsigned char *gguf_from_llama2c(const char *path, size_t *out_n) {
    size_t n, at = 4, count = 0, cap = 0, i;
    unsigned char *b = tu_load(path, &n);
    char **strs = NULL;
    size_t *lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    tu_gguf w;
    if (!b) return NULL;
    while (at + 8 <= n) {
        float s;
        int32_t len;
        memcpy(&s, b + at, 4);
        memcpy(&len, b + at + 4, 4);
        if (len < 0 || at + 8 + (size_t)len > n) break;
        if (count == cap) {
            cap = cap ? 2 * cap : 1024;
            strs = (char **)realloc(strs, cap * sizeof *strs);
            lens = (size_t *)realloc(lens, cap * sizeof *lens);
            scores = (float *)realloc(scores, cap * sizeof *scores);
            types = (int32_t *)realloc(types, cap * sizeof *types);
        }
        strs[count] = (char *)malloc(3 * (size_t)len + 1);
        lens[count] = 0;
        for (i = 0; i < (size_t)len; i++) {
            if (b[at + 8 + i] == ' ') { memcpy(strs[count] + lens[count], "\xe2\x96\x81", 3); lens[count] += 3; }
            else strs[count][lens[count]++] = (char)b[at + 8 + i];
        }
        scores[count] = s;
        types[count] = count == 0 ? 2 : count < 3 ? 3 : count < 259 ? 6 : 1;
        count++;
        at += 8 + (size_t)len;
    }
    tu_init(&w);
    tu_kv_str(&w, "tokenizer.ggml.model", "llama");
    tu_kv_strs(&w, "tokenizer.ggml.tokens", strs, lens, count);
    tu_kv_f32s(&w, "tokenizer.ggml.scores", scores, count);
    tu_kv_i32s(&w, "tokenizer.ggml.token_type", types, count);
    tu_kv_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    tu_kv_u32(&w, "tokenizer.ggml.eos_token_id", 2);
    tu_kv_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
    tu_done(&w);
    for (i = 0; i < count; i++) free(strs[i]);
    free(strs); free(lens); free(scores); free(types); free(b);
    *out_n = w.n;
    return w.p;
}

/* ---------------------------------------------------------------- helpers */

static size_t encode(const tfm_vocab *v, const char *s, size_t len, int special, int32_t *out, size_t cap) {
    size_t n = 0;
    tfm_result rc = tfm_tokenize(v, s, len, special, out, cap, &n);
    CHECK(rc == TFM_OK, "tokenize: %s", tfm_result_string(rc));
    return n;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *label, const int32_t *a, size_t n) {
    size_t i;
    printf("    %s:", label);
    for (i = 0; i < n && i < 40; i++) printf(" %d", (int)a[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* Decodes with tfm_detokenize into a malloc'd buffer. */
static char *decode(const tfm_vocab *v, const int32_t *ids, size_t n, size_t *len) {
    size_t need = 0;
    char *buf;
    tfm_result rc = tfm_detokenize(v, ids, n, NULL, 0, &need);
    CHECK(rc == TFM_OK || (rc == TFM_ERR_BUFFER && need > 0), "detokenize size: %s", tfm_result_string(rc));
    buf = (char *)malloc(need + 1);
    rc = tfm_detokenize(v, ids, n, buf, need + 1, len);
    CHECK(rc == TFM_OK && *len == need && buf[need] == 0, "detokenize: %s", tfm_result_string(rc));
    return buf;
}

/* ---------------------------------------------------------------- Hugging Face test vectors */

/* Every string of name.inp encodes (no BOS) to the ids of name.out, and decodes back. */
static void test_hf_vectors(const tfm_vocab *v, const char *name) {
    char path[256];
    size_t n_inp, n_out, k = 0, bad = 0, bad_rt = 0;
    unsigned char *inp, *outs;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *s, *line;
    snprintf(path, sizeof path, SHARED "models/vocab/%s.inp", name);
    inp = tu_load(path, &n_inp);
    snprintf(path, sizeof path, SHARED "models/vocab/%s.out", name);
    outs = tu_load(path, &n_out);
    if (!inp || !outs) { free(inp); free(outs); return; }
    s = (char *)inp;
    line = (char *)outs;
    for (;;) {
        char *end = strstr(s, sep), *nl;
        int32_t want[512], got[512];
        size_t nw, ng, dl;
        char *text;
        if (!end) break;
        nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        nw = tu_parse_ids(line, want, 512);
        ng = encode(v, s, (size_t)(end - s), 0, got, 512);
        if (!ids_equal(want, nw, got, ng)) {
            bad++;
            printf("  mismatch on case %d: \"%.*s\"\n", (int)k, (int)(end - s), s);
            print_ids("want", want, nw);
            print_ids("got ", got, ng);
        }
        text = decode(v, got, ng < 512 ? ng : 512, &dl);
        if (dl != (size_t)(end - s) || memcmp(text, s, dl) != 0) {
            bad_rt++;
            printf("  round trip differs on case %d: \"%.*s\" -> \"%s\"\n", (int)k, (int)(end - s), s, text);
        }
        free(text);
        k++;
        s = end + strlen(sep);
        line = nl + 1;
    }
    CHECK(k == 46, "%s: expected 46 cases, read %d", name, (int)k);
    CHECK(bad == 0, "%s: %d of %d cases encode differently", name, (int)bad, (int)k);
    CHECK(bad_rt == 0, "%s: %d of %d cases do not decode back", name, (int)bad_rt, (int)k);
    printf("  %s: %d cases, %d id mismatches, %d round-trip failures\n", name, (int)k, (int)bad, (int)bad_rt);
    free(inp);
    free(outs);
}

/* ---------------------------------------------------------------- llama2.c tables */

/* Each line "text<TAB>ids" (text with \n escaped; BOS first in ids). */
static void test_llama2c_tsv(const tfm_vocab *v, const char *tsv, const char *label) {
    size_t n, k = 0, bad = 0;
    unsigned char *b = tu_load(tsv, &n);
    char *line;
    if (!b) return;
    for (line = (char *)b; *line; ) {
        char *nl = strchr(line, '\n'), *tab, text[1024];
        int32_t want[512], got[512];
        size_t nw, ng, m = 0;
        const char *p;
        if (nl) *nl = 0;
        tab = strchr(line, '\t');
        if (tab) {
            for (p = line; p < tab && m < sizeof text; p++) {
                if (p[0] == '\\' && p + 1 < tab && p[1] == 'n') { text[m++] = '\n'; p++; }
                else text[m++] = *p;
            }
            nw = tu_parse_ids(tab + 1, want, 512);
            ng = encode(v, text, m, 1, got, 512);
            if (!ids_equal(want, nw, got, ng)) {
                bad++;
                printf("  %s mismatch: \"%.*s\"\n", label, (int)m, text);
                print_ids("want", want, nw);
                print_ids("got ", got, ng);
            }
            k++;
        }
        if (!nl) break;
        line = nl + 1;
    }
    CHECK(k == 11 && bad == 0, "%s: %d of %d lines differ", label, (int)bad, (int)k);
    printf("  %s: %d lines, %d mismatches\n", label, (int)k, (int)bad);
    free(b);
}

/* llama2.c prints the sequence piece by piece, dropping the space after BOS. */
static void test_llama2c_decode(const tfm_vocab *v) {
    size_t n1, n2, ns, i, m = 0;
    unsigned char *tok = tu_load(SHARED "ref/stories260K_once_upon_t0_n256.tokens.txt", &n1);
    unsigned char *txt = tu_load(SHARED "ref/stories260K_once_upon_t0_n256.txt", &n2);
    int32_t seq[600];
    char *s, out[8192];
    if (tok && txt && (s = strstr((char *)tok, "sequence(")) != NULL) {
        ns = tu_parse_ids(strchr(s, ':') + 1, seq, 600);
        for (i = 1; i < ns; i++) m += tfm_token_to_piece(v, seq[i - 1], seq[i], out + m, sizeof out - m);
        if (n2 && txt[n2 - 1] == '\n') n2--; /* llama2.c's final printf("\n") */
        CHECK(ns == 257 && m == n2 && memcmp(out, txt, m) == 0, "stories260K greedy text decodes differently (%d vs %d bytes)", (int)m, (int)n2);
        printf("  llama2.c streaming decode of %d ids: %d bytes, %s\n", (int)ns, (int)m, m == n2 && memcmp(out, txt, m) == 0 ? "equal" : "DIFFERENT");
    }
    free(tok);
    free(txt);
}

/* ---------------------------------------------------------------- llama.cpp reference runs */

/* prompt ids line "<label>(n): ids", text line "text: ..." (optional). */
static void test_prompt_file(const tfm_vocab *v, const char *path, const char *prompt, const char *ids_label, int special) {
    size_t n, nw, ng;
    unsigned char *b = tu_load(path, &n);
    int32_t want[64], got[64];
    char *s;
    if (!b) return;
    s = strstr((char *)b, ids_label);
    CHECK(s != NULL, "%s: no %s line", path, ids_label);
    if (s) {
        nw = tu_parse_ids(strchr(s, ':') + 1, want, 64);
        ng = encode(v, prompt, strlen(prompt), special, got, 64);
        CHECK(ids_equal(want, nw, got, ng), "%s: \"%s\" encodes differently", path, prompt);
        if (!ids_equal(want, nw, got, ng)) { print_ids("want", want, nw); print_ids("got ", got, ng); }
        printf("  \"%s\" -> %d ids, %s %s\n", prompt, (int)ng, ids_equal(want, nw, got, ng) ? "equal to" : "DIFFERENT from", path);
    }
    if ((s = strstr((char *)b, "sequence(")) != NULL && strstr((char *)b, "\ntext: ")) {
        int32_t seq[256];
        size_t ns = tu_parse_ids(strchr(s, ':') + 1, seq, 256), dl, tl;
        char *text = decode(v, seq, ns, &dl), *t = strstr((char *)b, "\ntext: ") + 7, *e = strchr(t, '\n');
        tl = e ? (size_t)(e - t) : strlen(t);
        CHECK(dl == tl && memcmp(text, t, tl) == 0, "%s: sequence decodes to \"%s\"", path, text);
        printf("  %d ids decode to %d bytes, %s the text in that file\n", (int)ns, (int)dl, dl == tl && memcmp(text, t, tl) == 0 ? "equal to" : "DIFFERENT from");
        free(text);
    }
    free(b);
}

/* ---------------------------------------------------------------- pre-tokenizers */

/* Splits text with the pre-tokenizer and joins the pieces with '|'. */
static void pre_split(tfm_pretok pre, const char *text, char *out, size_t cap) {
    size_t n = strlen(text), p = 0, m = 0;
    while (p < n) {
        size_t e = tfm__pretok_next(pre, (const uint8_t *)text, n, p);
        if (p && m + 1 < cap) out[m++] = '|';
        while (p < e && m + 1 < cap) out[m++] = text[p++];
        p = e;
    }
    out[m] = 0;
}

typedef struct { const char *text, *split; } split_case;

static void check_splits(tfm_pretok pre, const char *name, const split_case *c, size_t n) {
    size_t i, bad = 0;
    for (i = 0; i < n; i++) {
        char got[512];
        pre_split(pre, c[i].text, got, sizeof got);
        if (strcmp(got, c[i].split) != 0) {
            bad++;
            printf("  %s split of \"%s\": want \"%s\" got \"%s\"\n", name, c[i].text, c[i].split, got);
        }
    }
    CHECK(bad == 0, "%s: %d of %d hand-worked splits differ", name, (int)bad, (int)n);
    printf("  %s: %d hand-worked splits, %d differ\n", name, (int)n, (int)bad);
}

/* Expected splits worked out by hand from each pattern (first matching alternative wins,
   quantifiers greedy, backtracking as a regex engine does). */
static void test_pretokenizers(void) {
    static const split_case gpt2[] = {
        {"Hello world", "Hello| world"},
        /* ' is not followed by s/t/re/...: " ?[^\s\p{L}\p{N}]+" takes " '"; then "told" */
        {"I've been 'told he's", "I|'ve| been| '|told| he|'s"},
        {"'told", "'t|old"},                       /* contractions match before letters */
        {"don't DON'T", "don|'t| DON|'|T"},         /* case-sensitive: 'T is not a contraction */
        {"  Hello", " | Hello"},                   /* \s+(?!\S) leaves the last space to " ?\p{L}+" */
        {"Hello  ", "Hello|  "},                   /* trailing spaces: the whole run at the end */
        {"a\n\nb", "a|\n|\n|b"},
        {"123abc 4567", "123|abc| 4567"},          /* " ?\p{N}+": any number of digits */
        {"x = 1+2;", "x| =| 1|+|2|;"},
        {"\xe4\xbd\xa0\xe5\xa5\xbd \xe4\xb8\x96\xe7\x95\x8c", "\xe4\xbd\xa0\xe5\xa5\xbd| \xe4\xb8\x96\xe7\x95\x8c"}, /* CJK are letters */
        {"Hi \xf0\x9f\x98\x80\xf0\x9f\x98\x80!", "Hi| \xf0\x9f\x98\x80\xf0\x9f\x98\x80!"}, /* emoji (So) and ! are both "other" */
        {"\xc2\xbd and \xc2\xb2", "\xc2\xbd| and| \xc2\xb2"},                         /* 1/2 and superscript 2 are \p{N} */
        {" \tx", " |\t|x"},
        {"a\xff\xfe" "b", "a|\xff\xfe|b"},         /* invalid bytes: neither letter, number nor space */
        {"a\xe3\x80\x80\xe3\x80\x80" "b", "a|\xe3\x80\x80|\xe3\x80\x80|b"}, /* U+3000 is \s; only ' ' is " ?" */
        {"\xc3\xa9t\xc3\xa9 \xd0\x9c\xd0\xb8\xd1\x80", "\xc3\xa9t\xc3\xa9| \xd0\x9c\xd0\xb8\xd1\x80"},
    };
    static const split_case llama3[] = {
        {"I've been 'told he's", "I|'ve| been| '|told| he|'s"},
        {"DON'T we'RE", "DON|'T| we|'RE"},                   /* (?i:...) */
        {"it'\xc5\xbf", "it|'\xc5\xbf"},                     /* long s case-folds to s */
        /* contraction then letters: case-sensitive matching would give "'TIS" and "'\xc5\xbf" "a" */
        {"'TIS 'Sam", "'T|IS| '|Sam"},
        {"'\xc5\xbf" "a", "'\xc5\xbf|a"},
        {"12345678", "123|456|78"},                          /* \p{N}{1,3} */
        {"abc12345", "abc|123|45"},
        {" 123", " |123"},                                   /* no " ?" before numbers */
        {"hello\n\nworld", "hello|\n\n|world"},              /* \s*[\r\n]+ */
        {"hello  \n  world", "hello|  \n| | world"},
        {"(hello)", "(hello|)"},                             /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        {"\tfoo", "\tfoo"},
        {"\nfoo", "\n|foo"},                                 /* \n cannot lead letters */
        {"x?!\n\ny", "x|?!\n\n|y"},                          /* ?[^\s\p{L}\p{N}]+[\r\n]* */
        {"a\r\nb", "a|\r\n|b"},
        {"x  \r\n", "x|  \r\n"},
        {"hi   ", "hi|   "},
        {"  \t", "  \t"},
        {"\xe4\xbd\xa0\xe5\xa5\xbd\xf0\x9f\x98\x80\xe4\xb8\x96\xe7\x95\x8c", "\xe4\xbd\xa0\xe5\xa5\xbd|\xf0\x9f\x98\x80\xe4\xb8\x96\xe7\x95\x8c"},
        {"a \xf0\x9f\x98\x80 b", "a| \xf0\x9f\x98\x80| b"},
    };
    static const split_case qwen2[] = {
        {"12345678", "1|2|3|4|5|6|7|8"},                     /* \p{N}: one digit */
        {"abc12345 67", "abc|1|2|3|4|5| |6|7"},
        {"I've DON'T", "I|'ve| DON|'T"},
        {"WE'LLX", "WE|'LL|X"},
        {"hello  \n  world", "hello|  \n| | world"},
        {"(hello)", "(hello|)"},
        {"x?!\n\ny", "x|?!\n\n|y"},
        {"\xe4\xbd\xa0\xe5\xa5\xbd 2024\xe5\xb9\xb4", "\xe4\xbd\xa0\xe5\xa5\xbd| |2|0|2|4|\xe5\xb9\xb4"},
    };
    check_splits(TFM_PRE_GPT2, "gpt-2", gpt2, sizeof gpt2 / sizeof gpt2[0]);
    check_splits(TFM_PRE_LLAMA3, "llama-bpe", llama3, sizeof llama3 / sizeof llama3[0]);
    check_splits(TFM_PRE_QWEN2, "qwen2", qwen2, sizeof qwen2 / sizeof qwen2[0]);
}

/* ---------------------------------------------------------------- hand-made vocabularies */

/* Byte-level BPE: ids 0..255 are the GPT-2 characters of bytes 0..255, then "ab", "abc", "aa";
   merges "a b", "a a". */
static unsigned char *toy_bpe(const char *pre, size_t *n) {
    static char chars[256][4];
    char *strs[259];
    const char *merges[2] = {"a b", "a a"};
    int i;
    tu_gguf w;
    for (i = 0; i < 256; i++) {
        memset(chars[i], 0, 4);
        tfm__utf8_put(tfm__byte_to_cp((unsigned)i), chars[i]);
        strs[i] = chars[i];
    }
    strs[256] = (char *)"ab"; strs[257] = (char *)"abc"; strs[258] = (char *)"aa";
    tu_init(&w);
    tu_kv_str(&w, "tokenizer.ggml.model", "gpt2");
    if (pre) tu_kv_str(&w, "tokenizer.ggml.pre", pre);
    tu_kv_strs(&w, "tokenizer.ggml.tokens", strs, NULL, 259);
    tu_kv_strs(&w, "tokenizer.ggml.merges", (char **)merges, NULL, 2);
    tu_done(&w);
    *n = w.n;
    return w.p;
}

static void expect_ids(const tfm_vocab *v, const char *text, const int32_t *want, size_t nw, const char *what) {
    int32_t got[64];
    size_t ng = encode(v, text, strlen(text), 0, got, 64);
    CHECK(ids_equal(want, nw, got, ng), "%s: \"%s\" encodes differently", what, text);
    if (!ids_equal(want, nw, got, ng)) { print_ids("want", want, nw); print_ids("got ", got, ng); }
}

static void test_toy_bpe(void) {
    static const char *pres[3] = {"gpt-2", "llama-bpe", "qwen2"};
    int i;
    for (i = 0; i < 3; i++) {
        vocab_file f;
        size_t n;
        unsigned char *b = toy_bpe(pres[i], &n);
        static const int32_t abcd[3] = {256, 99, 100}, aaaaa[3] = {258, 258, 97}, sp_abc[3] = {32, 256, 99};
        static const int32_t gpt2_abc[2] = {256, 99}, llama_abc[1] = {257};
        memset(&f, 0, sizeof f);
        if (!vocab_from_bytes(&f, b, n, pres[i])) { free(b); continue; }
        /* llama-bpe keeps a piece that is a token whole (llama.cpp's ignore_merges) */
        if (i == 1) expect_ids(&f.v, "abc", llama_abc, 1, pres[i]);
        else expect_ids(&f.v, "abc", gpt2_abc, 2, pres[i]);
        expect_ids(&f.v, "abcd", abcd, 3, pres[i]);
        expect_ids(&f.v, "aaaaa", aaaaa, 3, pres[i]);   /* equal ranks: leftmost first */
        expect_ids(&f.v, " abc", sp_abc, 3, pres[i]);   /* ' ' is byte 32's character U+0120 */
        CHECK(f.v.add_bos == (i == 1) && f.v.bos_id == -1, "%s: add_bos default", pres[i]);
        vocab_close(&f);
    }
}

/* SentencePiece: <unk> <s> </s>, <0x00>..<0xFF> at 3..258 (if with_bytes), then normal tokens. */
static unsigned char *toy_spm(int with_bytes, size_t *n) {
    static char bytes[256][8];
    static const char *extra[] = {"\xe2\x96\x81", "a", "b", "aa", ("\xe2\x96\x81" "a"), "ab", "<", "s", ">", "<s"};
    char *strs[280];
    float scores[280];
    int32_t types[280];
    size_t count = 0;
    int i;
    tu_gguf w;
    strs[count] = (char *)"<unk>"; types[count] = 2; scores[count++] = 0;
    strs[count] = (char *)"<s>"; types[count] = 3; scores[count++] = 0;
    strs[count] = (char *)"</s>"; types[count] = 3; scores[count++] = 0;
    for (i = 0; with_bytes && i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        strs[count] = bytes[i]; types[count] = 6; scores[count++] = 0;
    }
    for (i = 0; i < 10; i++) { strs[count] = (char *)extra[i]; types[count] = 1; scores[count++] = (float)(-1 - i); }
    tu_init(&w);
    tu_kv_str(&w, "tokenizer.ggml.model", "llama");
    tu_kv_strs(&w, "tokenizer.ggml.tokens", strs, NULL, count);
    tu_kv_f32s(&w, "tokenizer.ggml.scores", scores, count);
    tu_kv_i32s(&w, "tokenizer.ggml.token_type", types, count);
    tu_kv_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    tu_kv_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
    tu_done(&w);
    *n = w.n;
    return w.p;
}

static void expect_piece(const tfm_vocab *v, int32_t prev, int32_t id, const char *want) {
    char buf[32];
    size_t n = tfm_token_to_piece(v, prev, id, buf, sizeof buf);
    CHECK(n == strlen(want) && memcmp(buf, want, n) == 0, "piece of %d after %d: \"%.*s\", want \"%s\"", (int)id, (int)prev, (int)n, buf, want);
}

/* Worked by hand. Ids: U+2581 259 (score -1), a 260 (-2), b 261 (-3), aa 262 (-4),
   U+2581a 263 (-5), ab 264 (-6), < 265, s 266, > 267, <s 268 (-10); scores only rank merges. */
static void test_toy_spm(void) {
    vocab_file f;
    size_t n, dl;
    unsigned char *b = toy_spm(1, &n);
    static const int32_t aaa[3] = {259, 262, 260};   /* pairs _a -5, aa -4, aa -4: the left aa */
    static const int32_t aab[3] = {259, 262, 261};   /* aa (-4) beats _a (-5) and ab (-6) */
    static const int32_t a_b[3] = {263, 259, 261};   /* "a b" is _a _ b */
    static const int32_t eacute[3] = {259, 3 + 0xC3, 3 + 0xA9}; /* no token: its two bytes */
    static const int32_t lt_s[3] = {259, 268, 267};  /* "<s" + ">" would be the control token <s>: never */
    static const int32_t bos_a[2] = {1, 263};
    int32_t got[16];
    char *text;
    memset(&f, 0, sizeof f);
    if (vocab_from_bytes(&f, b, n, "toy spm")) {
        expect_ids(&f.v, "aaa", aaa, 3, "toy spm");
        expect_ids(&f.v, "aab", aab, 3, "toy spm");
        expect_ids(&f.v, "a b", a_b, 3, "toy spm");
        expect_ids(&f.v, "\xc3\xa9", eacute, 3, "toy spm");
        expect_ids(&f.v, "<s>", lt_s, 3, "toy spm");
        CHECK(encode(&f.v, "a", 1, 1, got, 16) == 2 && ids_equal(got, 2, bos_a, 2), "toy spm: BOS not added");
        CHECK(f.v.add_bos == 1 && f.v.add_eos == 0 && f.v.eos_id == -1 && f.v.add_space_prefix == 1, "toy spm: defaults");
        CHECK(tfm_vocab_find(&f.v, "aa", 2) == 262 && tfm_vocab_find(&f.v, "zz", 2) == -1 && tfm_vocab_find(&f.v, "<s>", 3) == 1,
              "toy spm: vocab_find");
        expect_piece(&f.v, -1, 263, " a");
        expect_piece(&f.v, 1, 263, "a");             /* after BOS: no leading space */
        expect_piece(&f.v, 262, 263, " a");
        expect_piece(&f.v, -1, 3 + 'A', "A");
        expect_piece(&f.v, -1, 1, "");               /* control */
        expect_piece(&f.v, -1, 0, "\xe2\x96\x85");   /* unknown, as llama.cpp prints it */
        text = decode(&f.v, bos_a, 2, &dl);
        CHECK(dl == 1 && text[0] == 'a', "toy spm: decode BOS _a");
        free(text);
        CHECK(f.v.max_piece_len == 3, "toy spm: max_piece_len %d", (int)f.v.max_piece_len);
        vocab_close(&f);
    } else free(b);
    b = toy_spm(0, &n);
    memset(&f, 0, sizeof f);
    if (vocab_from_bytes(&f, b, n, "toy spm without bytes")) {
        static const int32_t want[4] = {3, 0, 0, 4}; /* ids shift by 256: _ 3, a 4; one <unk> per character */
        expect_ids(&f.v, "\xc3\xa9z" "a", want, 4, "toy spm without bytes");
        vocab_close(&f);
    } else free(b);
}

/* ---------------------------------------------------------------- robustness */

static uint32_t rng_state = 12345;
static uint32_t rng(void) { rng_state ^= rng_state << 13; rng_state ^= rng_state >> 17; rng_state ^= rng_state << 5; return rng_state; }

/* Random bytes and cut UTF-8: no crash (sanitizers watch), exact sizes, and round trips. */
static void test_random_bytes(const tfm_vocab *v, const char *name) {
    static const char *valid = "Gr\xc3\xbc\xc3\x9f \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 caf\xc3\xa9 \xe2\x82\xac 12";
    char text[300];
    int32_t ids[2048];
    int iter, bad_rt = 0, bad_n = 0;
    size_t cut;
    for (iter = 0; iter < 3000; iter++) {
        size_t len = rng() % 200, i, n = 0, n2 = 0, dl;
        char *dec;
        int has_2581 = 0;
        tfm_result rc;
        for (i = 0; i < len; i++) {
            uint32_t r = rng();
            /* mix plain ASCII, spaces and high bytes so that merges and fallback both happen */
            text[i] = (char)(r % 4 == 0 ? ' ' : r % 4 == 1 ? 'a' + (r >> 8) % 26 : (r >> 8) & 255);
        }
        for (i = 0; i + 2 < len; i++) has_2581 |= memcmp(text + i, "\xe2\x96\x81", 3) == 0;
        rc = tfm_tokenize(v, text, len, 0, ids, 2048, &n);
        CHECK(rc == TFM_OK, "%s random: %s", name, tfm_result_string(rc));
        rc = tfm_tokenize(v, text, len, 0, NULL, 0, &n2);
        if (n != n2 || (len && rc != TFM_ERR_BUFFER) || (!len && rc != TFM_OK)) bad_n++;
        dec = decode(v, ids, n, &dl);
        /* SentencePiece reads a literal U+2581 in the text as a space when decoding */
        if (!has_2581 && (dl != len || memcmp(dec, text, len) != 0)) bad_rt++;
        free(dec);
    }
    for (cut = 0; cut <= strlen(valid); cut++) {
        size_t n = 0, dl, j;
        char *dec;
        for (j = 0; j < 3; j++) { /* the cut piece alone, with a tail, with a head */
            char buf[128];
            size_t len = 0;
            if (j == 2) { memcpy(buf, "x ", 2); len = 2; }
            memcpy(buf + len, valid, cut); len += cut;
            if (j == 1) { memcpy(buf + len, " y", 2); len += 2; }
            CHECK(tfm_tokenize(v, buf, len, 1, ids, 2048, &n) == TFM_OK, "%s: cut utf-8", name);
            dec = decode(v, ids, n, &dl);
            if (dl != len || memcmp(dec, buf, len) != 0) bad_rt++;
            free(dec);
        }
    }
    CHECK(bad_n == 0, "%s: %d random texts report different sizes", name, bad_n);
    CHECK(bad_rt == 0, "%s: %d random / cut texts do not decode back", name, bad_rt);
    printf("  %s: 3000 random byte strings and %d cut UTF-8 strings: %d size / %d round-trip failures\n",
           name, (int)(3 * (strlen(valid) + 1)), bad_n, bad_rt);
}

static void test_api_edges(const tfm_vocab *v) {
    int32_t ids[64], bad_ids[3];
    char buf[64];
    size_t n = 99, need = 0, w;
    tfm_result rc;
    void *work;
    /* NULL arguments */
    CHECK(tfm_tokenize(NULL, "a", 1, 0, ids, 64, &n) == TFM_ERR_ARG && n == 0, "NULL vocab");
    CHECK(tfm_tokenize(v, NULL, 1, 0, ids, 64, &n) == TFM_ERR_ARG, "NULL text");
    CHECK(tfm_tokenize(v, NULL, 0, 0, ids, 64, &n) == TFM_OK && n == 0, "NULL empty text");
    CHECK(tfm_tokenize(v, "a", 1, 0, NULL, 4, &n) == TFM_ERR_ARG, "NULL out with cap");
    CHECK(tfm_tokenize(v, "a", 1, 0, ids, 64, NULL) == TFM_ERR_ARG, "NULL n_out");
    CHECK(tfm_tokenize_ex(v, "a", 1, 0, ids, 64, &n, NULL, 0) == TFM_ERR_BUFFER, "NULL work");
    CHECK(tfm_detokenize(NULL, ids, 1, buf, 64, &need) == TFM_ERR_ARG, "detokenize NULL vocab");
    CHECK(tfm_detokenize(v, NULL, 1, buf, 64, &need) == TFM_ERR_ARG, "detokenize NULL ids");
    CHECK(tfm_detokenize(v, ids, 0, NULL, 0, NULL) == TFM_ERR_ARG, "detokenize NULL n_needed");
    CHECK(tfm_token_to_piece(NULL, -1, 1, buf, 64) == 0 && tfm_token_to_piece(v, -1, 1, NULL, 64) == 0, "piece NULL");
    CHECK(tfm_vocab_find(NULL, "a", 1) == -1 && tfm_vocab_find(v, NULL, 1) == -1, "find NULL");
    CHECK(tfm_vocab_heap_size(NULL, &n) == TFM_ERR_ARG && tfm_vocab_init(NULL, NULL) == TFM_ERR_ARG, "vocab NULL");
    CHECK(tfm_tokenize_work_size(NULL, 10) == 0, "work size NULL");
    tfm_vocab_free(NULL);
    /* out-of-range ids */
    CHECK(tfm_token_to_piece(v, -1, -5, buf, 64) == 0 && tfm_token_to_piece(v, -1, v->n_tokens, buf, 64) == 0, "piece out of range");
    bad_ids[0] = 100; bad_ids[1] = v->n_tokens; bad_ids[2] = -1;
    rc = tfm_detokenize(v, bad_ids, 3, buf, 64, &need);
    CHECK(rc == TFM_ERR_TOKEN && need == tfm_token_to_piece(v, -1, 100, buf + 32, 32), "detokenize out of range: %s", tfm_result_string(rc));
    /* output too small: the prefix is written, *n_out is the full count */
    rc = tfm_tokenize(v, "Hello world, hello world", 24, 0, ids, 64, &n);
    CHECK(rc == TFM_OK && n > 3, "tokenize");
    {
        int32_t part[3];
        size_t n2 = 0;
        rc = tfm_tokenize(v, "Hello world, hello world", 24, 0, part, 3, &n2);
        CHECK(rc == TFM_ERR_BUFFER && n2 == n && memcmp(part, ids, sizeof part) == 0, "cap too small");
    }
    /* exact work size works, one byte less does not; any alignment */
    w = tfm_tokenize_work_size(v, 24);
    work = malloc(w + 1);
    CHECK(tfm_tokenize_ex(v, "Hello world, hello world", 24, 0, ids, 64, &n, (char *)work + 1, w) == TFM_OK, "work exact");
    CHECK(tfm_tokenize_ex(v, "Hello world, hello world", 24, 0, ids, 64, &need, work, w - 1) == TFM_ERR_BUFFER, "work short");
    free(work);
    /* decode buffer too small */
    rc = tfm_detokenize(v, ids, n, buf, 5, &need);
    CHECK(rc == TFM_ERR_BUFFER && need == 24 && memcmp(buf, "Hello", 5) == 0, "detokenize small buffer: %s %d", tfm_result_string(rc), (int)need);
}

/* A vocabulary GGUF broken in one way (kind 0..8). */
static unsigned char *bad_vocab(int kind, size_t *n) {
    static char *toks[3] = {(char *)"a", (char *)"b", (char *)"ab"};
    static const float sc[3] = {0, 0, 0};
    static const int32_t ty[3] = {1, 1, 1};
    tu_gguf w;
    tu_init(&w);
    if (kind != 3) tu_kv_str(&w, "tokenizer.ggml.model", kind == 4 ? "bert" : kind == 5 || kind == 6 ? "gpt2" : "llama");
    if (kind == 6) { tu_kv_str(&w, "tokenizer.ggml.pre", "falcon"); tu_kv_strs(&w, "tokenizer.ggml.merges", toks, NULL, 0); }
    if (kind == 0) tu_kv_i32s(&w, "tokenizer.ggml.tokens", ty, 3);           /* not strings */
    else if (kind == 1) tu_kv_str(&w, "tokenizer.ggml.tokens", "ab");        /* not an array */
    else if (kind != 8) tu_kv_strs(&w, "tokenizer.ggml.tokens", toks, NULL, 3);
    tu_kv_f32s(&w, "tokenizer.ggml.scores", sc, kind == 2 ? 2 : 3);
    if (kind == 7) tu_kv_f32s(&w, "tokenizer.ggml.token_type", sc, 3);     /* floats */
    tu_done(&w);
    *n = w.n;
    return w.p;
}

/* Vocabulary GGUFs that are broken in one way each give a clear error. */
static void test_bad_vocabs(void) {
    static const struct { tfm_result want; const char *in_error; } cases[9] = {
        {TFM_ERR_FORMAT, "tokenizer.ggml.tokens"},     /* 0: tokens is an i32 array */
        {TFM_ERR_FORMAT, "tokenizer.ggml.tokens"},     /* 1: tokens is a string */
        {TFM_ERR_FORMAT, "has 2 entries"},             /* 2: 2 scores for 3 tokens */
        {TFM_ERR_MISSING, "tokenizer.ggml.model"},     /* 3: no model */
        {TFM_ERR_UNSUPPORTED, "bert"},                 /* 4: unknown model */
        {TFM_ERR_MISSING, "merges"},                   /* 5: gpt2 without merges */
        {TFM_ERR_UNSUPPORTED, "falcon"},               /* 6: unknown pre-tokenizer */
        {TFM_ERR_FORMAT, "token_type"},                /* 7: token types are floats */
        {TFM_ERR_MISSING, "tokenizer.ggml.tokens"},    /* 8: no tokens */
    };
    int k;
    for (k = 0; k < 9; k++) {
        tfm_gguf g;
        tfm_vocab v;
        tfm_result rc;
        size_t n, hs = 0;
        unsigned char *b = bad_vocab(k, &n);
        if (tfm_gguf_init(&g, b, n) != TFM_OK) { CHECK(0, "bad vocab %d: gguf: %s", k, g.error); free(b); continue; }
        rc = tfm_vocab_init(&v, &g);
        CHECK(rc == cases[k].want && strstr(v.error, cases[k].in_error) != NULL,
              "bad vocab %d: got %s \"%s\", want %s mentioning \"%s\"", k, tfm_result_string(rc), v.error,
              tfm_result_string(cases[k].want), cases[k].in_error);
        CHECK(tfm_vocab_heap_size(&g, &hs) == cases[k].want, "bad vocab %d: heap_size disagrees", k);
        printf("  broken vocab %d: %s: %s\n", k, tfm_result_string(rc), v.error);
        tfm_vocab_free(&v);
        tfm_gguf_free(&g);
        free(b);
    }
}

/* A GGUF without any tokenizer key: an empty vocabulary that refuses to encode and decode. */
static void test_no_vocab(void) {
    tu_gguf w;
    tfm_gguf g;
    tfm_vocab v;
    size_t hs = 99, n = 99;
    int32_t ids[4] = {1, 2, 3, 4};
    char buf[8];
    tu_init(&w);
    tu_kv_str(&w, "general.architecture", "llama");
    tu_kv_u32(&w, "tokenizer.ggml.bos_token_id", 5);
    tu_done(&w);
    if (tfm_gguf_init(&g, w.p, w.n) != TFM_OK) { CHECK(0, "no vocab: gguf %s", g.error); free(w.p); return; }
    CHECK(tfm_vocab_heap_size(&g, &hs) == TFM_OK && hs == 0, "no vocab: heap size %d", (int)hs);
    CHECK(tfm_vocab_init_preallocated(&v, &g, NULL, 0) == TFM_OK && v.n_tokens == 0 && v.type == TFM_VOCAB_NONE && v.bos_id == 5,
          "no vocab: init");
    CHECK(tfm_tokenize(&v, "a", 1, 1, ids, 4, &n) == TFM_ERR_MISSING && n == 0, "no vocab: tokenize");
    CHECK(tfm_detokenize(&v, ids, 4, buf, 8, &n) == TFM_ERR_MISSING, "no vocab: detokenize");
    CHECK(tfm_token_to_piece(&v, -1, 1, buf, 8) == 0 && tfm_vocab_find(&v, "a", 1) == -1, "no vocab: piece, find");
    tfm_vocab_free(&v);
    CHECK(tfm_vocab_init(&v, &g) == TFM_OK && v.n_tokens == 0, "no vocab: allocating init");
    tfm_vocab_free(&v);
    tfm_gguf_free(&g);
    free(w.p);
    printf("  GGUF without a vocabulary: empty vocabulary, encoding refused\n");
}

/* init_preallocated with an unaligned heap, and a heap one byte short. */
static void test_preallocated(const tfm_gguf *g) {
    size_t hs = 0, n = 0;
    unsigned char *heap;
    tfm_vocab v;
    int32_t ids[8];
    CHECK(tfm_vocab_heap_size(g, &hs) == TFM_OK && hs > 0, "heap size");
    heap = (unsigned char *)malloc(hs + 3);
    CHECK(tfm_vocab_init_preallocated(&v, g, heap + 3, hs - 1) == TFM_ERR_BUFFER, "short heap refused");
    CHECK(tfm_vocab_init_preallocated(&v, g, heap + 3, hs) == TFM_OK, "unaligned heap: %s", v.error);
    CHECK(tfm_tokenize(&v, "Hello world", 11, 0, ids, 8, &n) == TFM_OK && n >= 2, "tokenize with preallocated vocab");
    tfm_vocab_free(&v); /* frees nothing: the heap is ours */
    free(heap);
    printf("  preallocated vocabulary: %d heap bytes\n", (int)hs);
}

/* ---------------------------------------------------------------- speed */

static double seconds(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* A 4 MB text made of the test strings, plus 1 MB without any space (one huge piece). */
static void test_speed(const tfm_vocab *v, const char *name) {
    size_t n_inp, len = 4u << 20, m = 0, n = 0;
    unsigned char *inp = tu_load(SHARED "models/vocab/ggml-vocab-gpt-2.gguf.inp", &n_inp);
    char *text;
    int32_t *ids;
    double t0, t1, t2;
    if (!inp) return;
    text = (char *)malloc(len);
    while (m < len) { size_t k = len - m < n_inp ? len - m : n_inp; memcpy(text + m, inp, k); m += k; }
    ids = (int32_t *)malloc(len * sizeof *ids);
    t0 = seconds();
    CHECK(tfm_tokenize(v, text, len, 0, ids, len, &n) == TFM_OK, "%s: 4 MB", name);
    t1 = seconds();
    memset(text, 'a', 1u << 20);
    CHECK(tfm_tokenize(v, text, 1u << 20, 0, ids, len, &m) == TFM_OK, "%s: 1 MB of a", name);
    t2 = seconds();
    printf("  %s: 4 MB -> %d tokens in %.2f s; 1 MB of 'a' -> %d tokens in %.2f s\n", name, (int)n, t1 - t0, (int)m, t2 - t1);
    CHECK(t1 - t0 < 15 && t2 - t1 < 15, "%s: tokenizing is too slow", name);
    free(text);
    free(ids);
    free(inp);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    vocab_file spm, gpt2, f;
    unsigned char *b;
    size_t n;
    int fast = argc > 1 && strcmp(argv[1], "--fast") == 0;

    printf("SentencePiece (llama) vocabulary:\n");
    if (vocab_open(&spm, SHARED "models/vocab/ggml-vocab-llama-spm.gguf")) {
        test_hf_vectors(&spm.v, "ggml-vocab-llama-spm.gguf");
        test_llama2c_tsv(&spm.v, SHARED "ref/llama2_tokenizer.bin_encode_run.c.tsv", "llama2 tsv on llama-spm gguf");
        test_random_bytes(&spm.v, "llama-spm");
        test_api_edges(&spm.v);
        test_preallocated(&spm.g);
        if (!fast) test_speed(&spm.v, "llama-spm");
    }
    printf("llama2.c tokenizers:\n");
    if ((b = gguf_from_llama2c(SHARED "models/llama2-tokenizer.bin", &n)) != NULL && vocab_from_bytes(&f, b, n, "llama2-tokenizer.bin")) {
        test_llama2c_tsv(&f.v, SHARED "ref/llama2_tokenizer.bin_encode_run.c.tsv", "llama2-tokenizer.bin");
        vocab_close(&f);
    }
    if ((b = gguf_from_llama2c(SHARED "models/tok512.bin", &n)) != NULL && vocab_from_bytes(&f, b, n, "tok512.bin")) {
        test_llama2c_tsv(&f.v, SHARED "ref/tok512_encode_run.c.tsv", "tok512.bin");
        test_llama2c_decode(&f.v);
        test_random_bytes(&f.v, "tok512");
        vocab_close(&f);
    }
    if (vocab_open(&f, SHARED "models/stories260K.gguf")) {
        test_llama2c_tsv(&f.v, SHARED "ref/tok512_encode_run.c.tsv", "tok512 tsv on stories260K.gguf");
        test_llama2c_decode(&f.v);
        vocab_close(&f);
    }
    if (vocab_open(&f, SHARED "models/llama-2-tiny-random.gguf")) {
        test_prompt_file(&f.v, SHARED "ref/llama-2-tiny-random_hello_world_greedy32.llama.cpp.tokens.txt", "Hello world", "prompt_tokens(", 1);
        vocab_close(&f);
    }
    printf("byte-level BPE (gpt2) vocabulary:\n");
    if (vocab_open(&gpt2, SHARED "models/vocab/ggml-vocab-gpt-2.gguf")) {
        test_hf_vectors(&gpt2.v, "ggml-vocab-gpt-2.gguf");
        test_random_bytes(&gpt2.v, "gpt-2");
        test_api_edges(&gpt2.v);
        if (!fast) test_speed(&gpt2.v, "gpt-2");
    }
    if (vocab_open(&f, SHARED "models/gpt2-A/gpt2-tiny-random-A.f32.gguf")) {
        test_prompt_file(&f.v, SHARED "ref/gpt2-A/A.hello.llamacpp.tokens.txt", "Hello world", "prompt_ids(", 1);
        test_prompt_file(&f.v, SHARED "ref/gpt2-A/A.once.llamacpp.tokens.txt", "Once upon a time", "prompt_ids(", 1);
        vocab_close(&f);
    }
    printf("pre-tokenizers and hand-made vocabularies:\n");
    test_pretokenizers();
    test_toy_bpe();
    test_toy_spm();
    printf("broken vocabularies:\n");
    test_bad_vocabs();
    test_no_vocab();
    if (spm.ok || spm.bytes) vocab_close(&spm);
    if (gpt2.ok || gpt2.bytes) vocab_close(&gpt2);
    printf("%s: %d checks passed, %d failed, %d skipped\n", tu_fail ? "FAILED" : "OK", tu_pass, tu_fail, tu_skip);
    return tu_fail ? 1 : 0;
}
