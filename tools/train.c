/* train.c - trains tfm.h's default model (a small Llama) on the King James Bible, in plain C.

   USAGE (reproduces models/tfm-kjv.gguf bit for bit; see models/README.md)
     bible -l100000 "Genesis 1:1-Revelation 22:21" > build/kjv.txt
     cc -std=c99 -O2 -march=native -ffp-contract=off -fopenmp tools/train.c -o build/train -lm
     OMP_WAIT_POLICY=passive build/train --corpus build/kjv.txt --out models/tfm-kjv.gguf --threads 2
   `build/train --help` lists the options; the defaults are the shipped model's settings.
   Other modes: --dump-logits MODEL.gguf ID... prints the logits this program's forward pass gives
   for a token sequence; --sample MODEL.gguf [--prompt TEXT] prints generated text.

   WHAT IT DOES
     1. Reads the `bible` program's output (chapter headers "Book N", verses "  N text", wrapped
        lines joined) into verses. Chapter i (0-based, canonical order) is held out when
        i % 50 == 49: 23 of the 1189 chapters, never seen by the tokenizer or the model.
     2. Learns a SentencePiece-style BPE vocabulary (ids 0 <unk>, 1 <s>, 2 </s>, 3..258 byte
        tokens, then the merges in the order learned with score -rank, then the single
        characters) from the training verses, normalized as llama's SentencePiece does (a space
        prefix, ' ' -> U+2581). Merges stay inside a word chunk (U+2581 only at a piece's start,
        letters, digits and punctuation never mixed), so they never cross verse boundaries.
        The corpus is then encoded with the standard encoder rule (tr_encode_norm).
     3. Trains a Llama (RMSNorm, RoPE on adjacent pairs, grouped-query attention, SwiGLU, tied
        output head) with hand-written forward and backward passes, AdamW, warmup + cosine
        learning rate, global gradient clipping. Each training sequence is <s> followed by the
        tokens from a random verse start on (verses run on, one space apart). Held-out loss is
        measured on <s> + whole held-out verses per window, each held-out token scored once.
     4. Writes the weights and vocabulary as an F32 GGUF that tfm.h (and other GGUF readers) run.

   DETERMINISM
     Everything follows from --seed. Threads (OpenMP) only split work over independent outputs
     (rows of a matrix product, attention (sequence, KV head) pairs, parameters); every sum runs
     in a fixed order inside one thread, so the result does not depend on the thread count.
     Build with -ffp-contract=off so that no compiler fuses a*b+c (clang does by default); then
     -O level, -march and thread count leave the bits unchanged. Training's exp is tr_expf
     (plain IEEE arithmetic); only initialization uses libm (log, cos, sin, pow in double).

   PRECISION
     Math is written over `real` (float; -DTRAIN_DOUBLE makes it double, which the gradient
     check in tests/ uses).
*/
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef TRAIN_NO_TFM_IMPLEMENTATION
#define TFM_IMPLEMENTATION
#endif
#include "../tfm.h"
#include "gguf_write.h"

#ifdef TRAIN_DOUBLE
typedef double real;
#else
typedef float real;
#endif

#ifdef _OPENMP
#include <omp.h>
#define TR_PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
/* for the heavy loops: a busy core (the machine is shared) then slows only its own share */
#define TR_PARALLEL_FOR_DYNAMIC _Pragma("omp parallel for schedule(dynamic)")
#else
#define TR_PARALLEL_FOR
#define TR_PARALLEL_FOR_DYNAMIC
#endif

/* Tests include this file; there its functions get external linkage so that the parts a test
   does not use raise no unused-function warnings. */
#ifdef TRAIN_NO_MAIN
#define TRDEF
#else
#define TRDEF static
#endif

#define TR_MAX_LAYERS 32
#define TR_HOLDOUT_EVERY 50 /* chapter i is held out when i % 50 == 49 */
#define TR_UNK 0
#define TR_BOS 1
#define TR_EOS 2
#define TR_BYTE0 3           /* <0x00> */
#define TR_FIRST_LEARNED 259 /* first id after the byte tokens */
#define TR_RMS_EPS 1e-5
#define TR_ROPE_THETA 10000.0

/* ===================================================================== small utilities */

TRDEF void *tr_alloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        fprintf(stderr, "train: out of memory (%lu bytes)\n", (unsigned long)n);
        exit(1);
    }
    return p;
}

TRDEF double tr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

TRDEF int tr_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* splitmix64: small, seedable, and its whole state fits in a checkpoint. */
typedef struct { uint64_t s; } tr_rng;

TRDEF uint64_t tr_rng_next(tr_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
TRDEF double tr_rng_uniform(tr_rng *r) { return (double)(tr_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
TRDEF double tr_rng_normal(tr_rng *r) {
    double u1 = tr_rng_uniform(r), u2 = tr_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}
TRDEF size_t tr_rng_below(tr_rng *r, size_t n) { return (size_t)(tr_rng_next(r) % (uint64_t)n); }

TRDEF int tr_read_file(const char *path, char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    long len;
    if (!f) return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return -1; }
    *out = (char *)tr_alloc((size_t)len + 1);
    *n = fread(*out, 1, (size_t)len, f);
    fclose(f);
    if (*n != (size_t)len) { free(*out); return -1; }
    return 0;
}

/* ===================================================================== string map */
/* Open addressing from a byte string to an int; keys are copied. */

typedef struct { char *key; int len; int val; } tr_slot;
typedef struct { tr_slot *s; size_t cap, n; } tr_map;

TRDEF uint64_t tr_hash(const char *s, int len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    int i;
    for (i = 0; i < len; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

TRDEF tr_slot *tr_map_find(const tr_map *m, const char *s, int len) {
    size_t i;
    if (!m->cap) return NULL;
    for (i = (size_t)tr_hash(s, len) & (m->cap - 1); m->s[i].key; i = (i + 1) & (m->cap - 1))
        if (m->s[i].len == len && memcmp(m->s[i].key, s, (size_t)len) == 0) return &m->s[i];
    return NULL;
}

TRDEF int tr_map_get(const tr_map *m, const char *s, int len) {
    const tr_slot *e = tr_map_find(m, s, len);
    return e ? e->val : -1;
}

TRDEF void tr_map_place(tr_map *m, tr_slot e) {
    size_t i = (size_t)tr_hash(e.key, e.len) & (m->cap - 1);
    while (m->s[i].key) i = (i + 1) & (m->cap - 1);
    m->s[i] = e;
}

/* Inserts s -> val unless s is present; returns the slot either way. */
TRDEF tr_slot *tr_map_put(tr_map *m, const char *s, int len, int val) {
    tr_slot *e = tr_map_find(m, s, len), ne;
    if (e) return e;
    if ((m->n + 1) * 2 > m->cap) {
        tr_map old = *m;
        size_t i;
        m->cap = old.cap ? old.cap * 2 : 64;
        m->s = (tr_slot *)tr_alloc(m->cap * sizeof *m->s);
        for (i = 0; i < old.cap; i++) if (old.s[i].key) tr_map_place(m, old.s[i]);
        free(old.s);
    }
    ne.key = (char *)tr_alloc((size_t)len + 1);
    memcpy(ne.key, s, (size_t)len);
    ne.len = len;
    ne.val = val;
    tr_map_place(m, ne);
    m->n++;
    return tr_map_find(m, s, len);
}

TRDEF void tr_map_free(tr_map *m) {
    size_t i;
    for (i = 0; i < m->cap; i++) free(m->s[i].key);
    free(m->s);
    memset(m, 0, sizeof *m);
}

/* ===================================================================== corpus */

typedef struct {
    char *text;      /* verse texts, each NUL-terminated, single spaces, trimmed */
    size_t *verse;   /* [n_verses] offset of each verse in text */
    int *chapter;    /* [n_verses] 0-based chapter of each verse, canonical order */
    size_t n_verses, len, cap, verse_cap;
    int n_chapters;
} tr_corpus;

TRDEF int tr_is_held_out(int chapter) { return chapter % TR_HOLDOUT_EVERY == TR_HOLDOUT_EVERY - 1; }

TRDEF void tr_corpus_putc(tr_corpus *c, char ch) {
    if (c->len + 2 > c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1 << 16;
        c->text = (char *)realloc(c->text, c->cap);
        if (!c->text) { fprintf(stderr, "train: out of memory\n"); exit(1); }
    }
    c->text[c->len++] = ch;
    c->text[c->len] = 0;
}

/* Appends words of line[0..n) to the open verse, collapsing whitespace. */
TRDEF void tr_corpus_append(tr_corpus *c, const char *line, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        int space = line[i] == ' ' || line[i] == '\t';
        int at_start = c->len == c->verse[c->n_verses - 1];
        if (space && (at_start || c->text[c->len - 1] == ' ')) continue;
        tr_corpus_putc(c, space ? ' ' : line[i]);
    }
}

TRDEF void tr_corpus_close_verse(tr_corpus *c) {
    if (c->n_verses && c->len > c->verse[c->n_verses - 1] && c->text[c->len - 1] == ' ') c->text[--c->len] = 0;
    if (c->n_verses) c->len++; /* keep the NUL */
}

TRDEF void tr_corpus_open_verse(tr_corpus *c, int chapter) {
    tr_corpus_close_verse(c);
    if (c->n_verses == c->verse_cap) {
        c->verse_cap = c->verse_cap ? c->verse_cap * 2 : 1024;
        c->verse = (size_t *)realloc(c->verse, c->verse_cap * sizeof *c->verse);
        c->chapter = (int *)realloc(c->chapter, c->verse_cap * sizeof *c->chapter);
        if (!c->verse || !c->chapter) { fprintf(stderr, "train: out of memory\n"); exit(1); }
    }
    tr_corpus_putc(c, 0);
    c->len--;
    c->verse[c->n_verses] = c->len;
    c->chapter[c->n_verses++] = chapter;
}

/* "Book N" after a blank line: a chapter header. */
TRDEF int tr_is_header(const char *s, size_t n, int after_blank) {
    size_t i = n;
    if (!after_blank || n < 3 || s[0] == ' ') return 0;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') i--;
    return i < n && i > 0 && s[i - 1] == ' ';
}

/* Parses the `bible` program's output. Returns 0, or -1 when no verse was found. */
TRDEF int tr_corpus_parse(tr_corpus *c, const char *buf, size_t n) {
    size_t pos = 0;
    int chapter = -1, after_blank = 1;
    memset(c, 0, sizeof *c);
    while (pos < n) {
        size_t end = pos, len, i = 0;
        const char *s = buf + pos;
        while (end < n && buf[end] != '\n') end++;
        len = end - pos;
        pos = end + 1;
        while (len && (s[len - 1] == '\r' || s[len - 1] == ' ')) len--;
        if (len == 0) { after_blank = 1; continue; }
        if (tr_is_header(s, len, after_blank)) {
            chapter++;
        } else {
            while (i < len && s[i] == ' ') i++;
            if (i > 0 && i < len && s[i] >= '0' && s[i] <= '9') {
                while (i < len && s[i] >= '0' && s[i] <= '9') i++;
                if (chapter < 0) chapter = 0;
                tr_corpus_open_verse(c, chapter);
            } else if (!c->n_verses) {
                after_blank = 0;
                continue; /* text before the first verse */
            } else {
                tr_corpus_putc(c, ' ');
            }
            tr_corpus_append(c, s + i, len - i);
        }
        after_blank = 0;
    }
    tr_corpus_close_verse(c);
    c->n_chapters = chapter + 1;
    return c->n_verses ? 0 : -1;
}

TRDEF void tr_corpus_free(tr_corpus *c) {
    free(c->text);
    free(c->verse);
    free(c->chapter);
    memset(c, 0, sizeof *c);
}

/* ===================================================================== tokenizer */

typedef struct {
    int n, cap;
    char **piece;  /* [n] NUL-terminated UTF-8 */
    int *len;      /* [n] */
    float *score;  /* [n] */
    int32_t *type; /* [n] 1 normal, 2 unknown, 3 control, 6 byte */
    tr_map normal; /* text -> id, normal pieces only: the only ones text can turn into */
} tr_vocab;

TRDEF int tr_vocab_add(tr_vocab *v, const char *s, int len, float score, int32_t type) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 512;
        v->piece = (char **)realloc(v->piece, (size_t)v->cap * sizeof *v->piece);
        v->len = (int *)realloc(v->len, (size_t)v->cap * sizeof *v->len);
        v->score = (float *)realloc(v->score, (size_t)v->cap * sizeof *v->score);
        v->type = (int32_t *)realloc(v->type, (size_t)v->cap * sizeof *v->type);
        if (!v->piece || !v->len || !v->score || !v->type) { fprintf(stderr, "train: out of memory\n"); exit(1); }
    }
    v->piece[v->n] = (char *)tr_alloc((size_t)len + 1);
    memcpy(v->piece[v->n], s, (size_t)len);
    v->len[v->n] = len;
    v->score[v->n] = score;
    v->type[v->n] = type;
    if (type == 1) tr_map_put(&v->normal, s, len, v->n);
    return v->n++;
}

TRDEF void tr_vocab_free(tr_vocab *v) {
    int i;
    for (i = 0; i < v->n; i++) free(v->piece[i]);
    free(v->piece);
    free(v->len);
    free(v->score);
    free(v->type);
    tr_map_free(&v->normal);
    memset(v, 0, sizeof *v);
}

/* <unk>, <s>, </s>, <0x00>..<0xFF>: ids 0..258. */
TRDEF void tr_vocab_base(tr_vocab *v) {
    int b;
    tr_vocab_add(v, "<unk>", 5, 0, 2);
    tr_vocab_add(v, "<s>", 3, 0, 3);
    tr_vocab_add(v, "</s>", 4, 0, 3);
    for (b = 0; b < 256; b++) {
        char s[8];
        sprintf(s, "<0x%02X>", b);
        tr_vocab_add(v, s, 6, 0, 6);
    }
}

/* A checksum of the vocabulary, kept in checkpoints so a resume uses the same tokens. */
TRDEF uint64_t tr_vocab_hash(const tr_vocab *v) {
    uint64_t h = 0;
    int i;
    for (i = 0; i < v->n; i++) h = h * 31 + tr_hash(v->piece[i], v->len[i]) + (uint64_t)v->type[i];
    return h;
}

#define TR_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */

TRDEF int tr_is_space_at(const char *s, int n) { return n >= 3 && memcmp(s, TR_SPACE, 3) == 0; }

TRDEF int tr_utf8_len(const char *s, int n) {
    unsigned char c = (unsigned char)s[0];
    int l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    return l <= n ? l : 1;
}

/* llama's SentencePiece normalization: a space prefix, then ' ' -> U+2581.
   out needs room for 3 * (n + 1) bytes; returns the length written. */
TRDEF int tr_normalize(const char *text, int n, char *out) {
    int i, k = 0;
    memcpy(out, TR_SPACE, 3);
    k = 3;
    for (i = 0; i < n; i++) {
        if (text[i] == ' ') { memcpy(out + k, TR_SPACE, 3); k += 3; }
        else out[k++] = text[i];
    }
    return k;
}

/* 1 letter (and apostrophe, hyphen, non-ASCII), 2 digit, 3 other. */
TRDEF int tr_char_class(unsigned char c) {
    if ((c | 32) >= 'a' && (c | 32) <= 'z') return 1;
    if (c == '\'' || c == '-' || c >= 0x80) return 1;
    if (c >= '0' && c <= '9') return 2;
    return 3;
}

/* End of the word chunk starting at pos: U+2581s, then a run of one character class.
   BPE merges never cross chunks, so no piece holds an inner U+2581 or mixes classes. */
TRDEF int tr_chunk_end(const char *s, int n, int pos) {
    int i = pos, cls;
    while (i < n && tr_is_space_at(s + i, n - i)) i += 3;
    if (i >= n) return i;
    cls = tr_char_class((unsigned char)s[i]);
    while (i < n && !tr_is_space_at(s + i, n - i) && tr_char_class((unsigned char)s[i]) == cls)
        i += tr_utf8_len(s + i, n - i);
    return i;
}

/* The SentencePiece BPE encoder: start from UTF-8 characters, repeatedly merge the adjacent
   pair whose concatenation is a normal piece with the highest score (leftmost on ties), then
   emit each symbol's id or, if it is not a piece, its bytes as byte tokens.
   s is normalized text; out needs room for n ids. Returns the number of ids. */
TRDEF int tr_encode_norm(const tr_vocab *v, const char *s, int n, int *out) {
    int *start = (int *)tr_alloc((size_t)(n + 1) * sizeof(int)), *len = (int *)tr_alloc((size_t)(n + 1) * sizeof(int));
    int ns = 0, i, k = 0;
    for (i = 0; i < n; i += len[ns++]) { start[ns] = i; len[ns] = tr_utf8_len(s + i, n - i); }
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (i = 0; i + 1 < ns; i++) {
            int id = tr_map_get(&v->normal, s + start[i], len[i] + len[i + 1]);
            if (id >= 0 && (best < 0 || v->score[id] > best_score)) { best = i; best_score = v->score[id]; }
        }
        if (best < 0) break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, (size_t)(ns - best - 2) * sizeof(int));
        memmove(len + best + 1, len + best + 2, (size_t)(ns - best - 2) * sizeof(int));
        ns--;
    }
    for (i = 0; i < ns; i++) {
        int id = tr_map_get(&v->normal, s + start[i], len[i]), b;
        if (id >= 0) out[k++] = id;
        else for (b = 0; b < len[i]; b++) out[k++] = TR_BYTE0 + (unsigned char)s[start[i] + b];
    }
    free(start);
    free(len);
    return k;
}

/* Encodes raw text (normalizes it first). out needs room for 3 * (n + 1) ids. */
TRDEF int tr_encode_text(const tr_vocab *v, const char *text, int *out) {
    int n = (int)strlen(text), k;
    char *norm = (char *)tr_alloc(3 * ((size_t)n + 1));
    k = tr_normalize(text, n, norm);
    k = tr_encode_norm(v, norm, k, out);
    free(norm);
    return k;
}

/* Text of one token for printing: U+2581 -> ' ', byte tokens -> their byte. */
TRDEF int tr_token_text(const tr_vocab *v, int id, char *buf, int cap) {
    int i, k = 0;
    if (id < 0 || id >= v->n || v->type[id] == 2 || v->type[id] == 3) return 0;
    if (v->type[id] == 6) { buf[0] = (char)(id - TR_BYTE0); return 1; }
    for (i = 0; i < v->len[id] && k < cap; ) {
        if (tr_is_space_at(v->piece[id] + i, v->len[id] - i)) { buf[k++] = ' '; i += 3; }
        else buf[k++] = v->piece[id][i++];
    }
    return k;
}

/* ---------------------------------------------------------------- BPE training */

/* Unique word chunks of the training text with their counts, as sequences of symbol ids. */
typedef struct {
    tr_map chunk_ids;    /* chunk text -> chunk index */
    int64_t *count;      /* [n_chunks] */
    int *seq;            /* symbols of every chunk, back to back */
    size_t *off;         /* [n_chunks] start of chunk i in seq */
    int *len;            /* [n_chunks] current symbol count of chunk i */
    size_t n_chunks, cap_chunks, n_seq, cap_seq;
    tr_map sym_ids;      /* symbol text -> symbol id */
    char **sym;          /* [n_sym] symbol text */
    int *sym_len;
    int n_sym, cap_sym;
} tr_bpe;

TRDEF int tr_bpe_symbol(tr_bpe *b, const char *s, int len) {
    tr_slot *e = tr_map_put(&b->sym_ids, s, len, b->n_sym);
    if (e->val == b->n_sym) {
        if (b->n_sym == b->cap_sym) {
            b->cap_sym = b->cap_sym ? b->cap_sym * 2 : 256;
            b->sym = (char **)realloc(b->sym, (size_t)b->cap_sym * sizeof *b->sym);
            b->sym_len = (int *)realloc(b->sym_len, (size_t)b->cap_sym * sizeof *b->sym_len);
            if (!b->sym || !b->sym_len) { fprintf(stderr, "train: out of memory\n"); exit(1); }
        }
        b->sym[b->n_sym] = e->key;
        b->sym_len[b->n_sym++] = len;
    }
    return e->val;
}

TRDEF void tr_bpe_add_chunk(tr_bpe *b, const char *s, int len) {
    tr_slot *e = tr_map_put(&b->chunk_ids, s, len, (int)b->n_chunks);
    int i;
    if ((size_t)e->val != b->n_chunks) { b->count[e->val]++; return; }
    if (b->n_chunks == b->cap_chunks) {
        b->cap_chunks = b->cap_chunks ? b->cap_chunks * 2 : 1024;
        b->count = (int64_t *)realloc(b->count, b->cap_chunks * sizeof *b->count);
        b->off = (size_t *)realloc(b->off, b->cap_chunks * sizeof *b->off);
        b->len = (int *)realloc(b->len, b->cap_chunks * sizeof *b->len);
        if (!b->count || !b->off || !b->len) { fprintf(stderr, "train: out of memory\n"); exit(1); }
    }
    if (b->n_seq + (size_t)len > b->cap_seq) {
        b->cap_seq = (b->cap_seq + (size_t)len) * 2;
        b->seq = (int *)realloc(b->seq, b->cap_seq * sizeof *b->seq);
        if (!b->seq) { fprintf(stderr, "train: out of memory\n"); exit(1); }
    }
    b->count[b->n_chunks] = 1;
    b->off[b->n_chunks] = b->n_seq;
    b->len[b->n_chunks] = 0;
    for (i = 0; i < len; ) {
        int l = tr_utf8_len(s + i, len - i);
        b->seq[b->n_seq++] = tr_bpe_symbol(b, s + i, l);
        b->len[b->n_chunks]++;
        i += l;
    }
    b->n_chunks++;
}

TRDEF void tr_bpe_free(tr_bpe *b) {
    tr_map_free(&b->chunk_ids);
    tr_map_free(&b->sym_ids); /* owns the symbol texts */
    free(b->count); free(b->seq); free(b->off); free(b->len); free(b->sym); free(b->sym_len);
    memset(b, 0, sizeof *b);
}

/* The most frequent adjacent symbol pair over all chunks (ties: smallest ids). 0 if none. */
TRDEF int tr_bpe_best_pair(const tr_bpe *b, uint32_t *keys, int64_t *cnt, size_t cap, int *a_out, int *b_out) {
    size_t c, i;
    uint32_t best_key = 0;
    int64_t best = 0;
    memset(keys, 0, cap * sizeof *keys);
    for (c = 0; c < b->n_chunks; c++) {
        const int *s = b->seq + b->off[c];
        int j;
        for (j = 0; j + 1 < b->len[c]; j++) {
            uint32_t key = ((uint32_t)s[j] << 16 | (uint32_t)s[j + 1]) + 1;
            for (i = (key * 2654435761u) & (cap - 1); keys[i] && keys[i] != key; i = (i + 1) & (cap - 1)) {}
            if (!keys[i]) { keys[i] = key; cnt[i] = 0; }
            cnt[i] += b->count[c];
        }
    }
    for (i = 0; i < cap; i++)
        if (keys[i] && (cnt[i] > best || (cnt[i] == best && keys[i] < best_key))) { best = cnt[i]; best_key = keys[i]; }
    if (!best) return 0;
    *a_out = (int)((best_key - 1) >> 16);
    *b_out = (int)((best_key - 1) & 0xffff);
    return 1;
}

TRDEF void tr_bpe_apply(tr_bpe *b, int x, int y, int id) {
    size_t c;
    for (c = 0; c < b->n_chunks; c++) {
        int *s = b->seq + b->off[c], j = 0, k = 0;
        while (j < b->len[c]) {
            if (j + 1 < b->len[c] && s[j] == x && s[j + 1] == y) { s[k++] = id; j += 2; }
            else s[k++] = s[j++];
        }
        b->len[c] = k;
    }
}

TRDEF int tr_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Learns a vocabulary of vocab_size pieces from the training (not held-out) verses. */
TRDEF int tr_vocab_train(tr_vocab *v, const tr_corpus *c, int vocab_size) {
    tr_bpe b;
    size_t i, cap = 1 << 16;
    int n_chars, n_target, *merged, n_merged = 0, ok = 0;
    char *norm = NULL, **chars;
    uint32_t *keys;
    int64_t *cnt;
    memset(&b, 0, sizeof b);
    memset(v, 0, sizeof *v);
    for (i = 0; i < c->n_verses; i++) {
        const char *t = c->text + c->verse[i];
        int n = (int)strlen(t), k, p;
        if (tr_is_held_out(c->chapter[i])) continue;
        norm = (char *)realloc(norm, 3 * ((size_t)n + 1));
        if (!norm) { fprintf(stderr, "train: out of memory\n"); exit(1); }
        k = tr_normalize(t, n, norm);
        for (p = 0; p < k; ) { int e = tr_chunk_end(norm, k, p); tr_bpe_add_chunk(&b, norm + p, e - p); p = e; }
    }
    free(norm);
    n_chars = b.n_sym;
    n_target = vocab_size - TR_FIRST_LEARNED - n_chars;
    if (n_target < 0 || vocab_size > 65535) {
        fprintf(stderr, "train: vocabulary size %d cannot hold the %d bytes, specials and %d characters\n",
                vocab_size, TR_FIRST_LEARNED, n_chars);
        tr_bpe_free(&b);
        return -1;
    }
    while (cap < 4 * b.n_seq) cap *= 2;
    keys = (uint32_t *)tr_alloc(cap * sizeof *keys);
    cnt = (int64_t *)tr_alloc(cap * sizeof *cnt);
    merged = (int *)tr_alloc((size_t)(n_target + 1) * sizeof *merged);
    while (n_merged < n_target) {
        int x, y, id, before = b.n_sym;
        char *s;
        if (!tr_bpe_best_pair(&b, keys, cnt, cap, &x, &y)) break;
        s = (char *)tr_alloc((size_t)(b.sym_len[x] + b.sym_len[y]));
        memcpy(s, b.sym[x], (size_t)b.sym_len[x]);
        memcpy(s + b.sym_len[x], b.sym[y], (size_t)b.sym_len[y]);
        id = tr_bpe_symbol(&b, s, b.sym_len[x] + b.sym_len[y]);
        free(s);
        if (b.n_sym > before) merged[n_merged++] = id; /* a new piece, not another split of one */
        tr_bpe_apply(&b, x, y, id);
    }
    if (n_merged < n_target) {
        fprintf(stderr, "train: the corpus only supports %d merges, %d wanted\n", n_merged, n_target);
    } else {
        chars = (char **)tr_alloc((size_t)n_chars * sizeof *chars);
        for (i = 0; i < (size_t)n_chars; i++) chars[i] = b.sym[i];
        qsort(chars, (size_t)n_chars, sizeof *chars, tr_cmp_str);
        tr_vocab_base(v);
        for (i = 0; i < (size_t)n_merged; i++)
            tr_vocab_add(v, b.sym[merged[i]], b.sym_len[merged[i]], (float)(TR_FIRST_LEARNED - v->n), 1);
        for (i = 0; i < (size_t)n_chars; i++)
            tr_vocab_add(v, chars[i], (int)strlen(chars[i]), (float)(TR_FIRST_LEARNED - v->n), 1);
        free(chars);
        ok = 1;
    }
    free(keys);
    free(cnt);
    free(merged);
    tr_bpe_free(&b);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- encoded corpus */

typedef struct {
    int *tok;            /* [n] every verse's tokens, back to back (joined by their U+2581) */
    size_t n, cap;
    size_t *verse_start; /* [n_verses] where each verse begins in tok */
    size_t n_verses;
    int64_t n_bytes;     /* raw text bytes these tokens stand for (verses + one space each) */
} tr_stream;

TRDEF void tr_stream_push(tr_stream *s, const int *ids, int n) {
    if (s->n + (size_t)n > s->cap) {
        s->cap = (s->cap + (size_t)n) * 2;
        s->tok = (int *)realloc(s->tok, s->cap * sizeof *s->tok);
        if (!s->tok) { fprintf(stderr, "train: out of memory\n"); exit(1); }
    }
    memcpy(s->tok + s->n, ids, (size_t)n * sizeof *ids);
    s->n += (size_t)n;
}

/* Encodes the held-out (held_out = 1) or training verses. Chunks are encoded once and cached:
   no piece crosses a chunk, so this equals encoding each whole verse (tests check it). */
TRDEF void tr_stream_encode(tr_stream *s, const tr_vocab *v, const tr_corpus *c, int held_out) {
    tr_map cache;
    int *cache_tok = NULL, *ids = NULL;
    size_t n_cache = 0, cap_cache = 0, i;
    char *norm = NULL;
    memset(s, 0, sizeof *s);
    memset(&cache, 0, sizeof cache);
    s->verse_start = (size_t *)tr_alloc(c->n_verses * sizeof *s->verse_start);
    for (i = 0; i < c->n_verses; i++) {
        const char *t = c->text + c->verse[i];
        int n = (int)strlen(t), k, p;
        if (tr_is_held_out(c->chapter[i]) != held_out) continue;
        norm = (char *)realloc(norm, 3 * ((size_t)n + 1));
        ids = (int *)realloc(ids, 3 * ((size_t)n + 1) * sizeof *ids);
        if (!norm || !ids) { fprintf(stderr, "train: out of memory\n"); exit(1); }
        k = tr_normalize(t, n, norm);
        s->verse_start[s->n_verses++] = s->n;
        s->n_bytes += n + 1;
        for (p = 0; p < k; ) {
            int e = tr_chunk_end(norm, k, p), m;
            tr_slot *hit = tr_map_find(&cache, norm + p, e - p);
            if (!hit) {
                m = tr_encode_norm(v, norm + p, e - p, ids);
                if (n_cache + (size_t)m + 1 > cap_cache) {
                    cap_cache = (cap_cache + (size_t)m + 1) * 2;
                    cache_tok = (int *)realloc(cache_tok, cap_cache * sizeof *cache_tok);
                    if (!cache_tok) { fprintf(stderr, "train: out of memory\n"); exit(1); }
                }
                cache_tok[n_cache] = m;
                memcpy(cache_tok + n_cache + 1, ids, (size_t)m * sizeof *ids);
                hit = tr_map_put(&cache, norm + p, e - p, (int)n_cache);
                n_cache += (size_t)m + 1;
            }
            tr_stream_push(s, cache_tok + hit->val + 1, cache_tok[hit->val]);
            p = e;
        }
    }
    free(norm);
    free(ids);
    free(cache_tok);
    tr_map_free(&cache);
}

TRDEF void tr_stream_free(tr_stream *s) {
    free(s->tok);
    free(s->verse_start);
    memset(s, 0, sizeof *s);
}

/* ===================================================================== model */

typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, ffn, vocab, seq_len; /* zero: default */
} tr_config;

TRDEF tr_config tr_config_defaults(tr_config c) {
    if (!c.dim) c.dim = 128;
    if (!c.n_layers) c.n_layers = 5;
    if (!c.n_heads) c.n_heads = 8;
    if (!c.n_kv_heads) c.n_kv_heads = 4;
    if (!c.ffn) c.ffn = 320;
    if (!c.vocab) c.vocab = 1024;
    if (!c.seq_len) c.seq_len = 256;
    return c;
}

TRDEF const char *tr_config_check(const tr_config *c) {
    if (c->dim <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->ffn <= 0 || c->vocab <= 0 || c->seq_len < 2)
        return "sizes must be positive (context at least 2)";
    if (c->n_layers < 1 || c->n_layers > TR_MAX_LAYERS) return "layer count out of range";
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2) return "dim must be n_heads times an even head size";
    if (c->n_heads % c->n_kv_heads) return "n_heads must be a multiple of n_kv_heads";
    if (c->dim > 65536 || c->ffn > 1 << 20 || c->vocab > 1 << 20 || c->seq_len > 1 << 16) return "sizes too large";
    return NULL;
}

/* One parameter tensor: GGUF name, shape (ne0 contiguous), place in the parameter array. */
typedef struct {
    char name[48];
    int64_t ne0, ne1; /* ne1 = 1: a vector */
    size_t off;
    int decay;        /* weight decay applies (matrices, not norms) */
} tr_tensor;

/* Views of one parameter-sized array (weights, gradients or transposes). Matrices are stored
   [out][in] as GGUF does (ne = {in, out}). */
typedef struct {
    real *emb;                     /* [vocab][dim], also the output head */
    real *attn_norm[TR_MAX_LAYERS]; /* [dim] */
    real *wq[TR_MAX_LAYERS];       /* [n_heads*hd][dim] */
    real *wk[TR_MAX_LAYERS];       /* [n_kv_heads*hd][dim] */
    real *wv[TR_MAX_LAYERS];       /* [n_kv_heads*hd][dim] */
    real *wo[TR_MAX_LAYERS];       /* [dim][n_heads*hd] */
    real *ffn_norm[TR_MAX_LAYERS]; /* [dim] */
    real *wg[TR_MAX_LAYERS];       /* [ffn][dim] */
    real *wu[TR_MAX_LAYERS];       /* [ffn][dim] */
    real *wd[TR_MAX_LAYERS];       /* [dim][ffn] */
    real *out_norm;                /* [dim] */
} tr_weights;

/* Activations of one batch of B sequences x T positions (N = B*T rows), kept for backward. */
typedef struct {
    real *h1, *h2;   /* [N][dim] normalized inputs of attention / FFN */
    real *r1, *r2;   /* [N] their 1/rms */
    real *q;         /* [N][n_heads*hd] after RoPE */
    real *k, *v;     /* [N][n_kv*hd] (k after RoPE) */
    real *kt, *vt;   /* [B][n_kv][hd][T] the same, transposed for the attention loops */
    real *att;       /* [B][n_heads][T][T] softmax probabilities (zero above the diagonal) */
    real *ao;        /* [N][n_heads*hd] attention output before wo */
    real *x_mid;     /* [N][dim] residual stream after attention */
    real *gate, *up; /* [N][ffn] FFN projections */
    real *act;       /* [N][ffn] silu(gate) * up */
} tr_layer_acts;

typedef struct {
    tr_layer_acts l[TR_MAX_LAYERS];
    real *xs[TR_MAX_LAYERS + 1]; /* [N][dim] residual stream entering layer l; xs[L]: final */
    real *hf, *rf;               /* [N][dim], [N] final norm */
    real *logits;                /* [N][vocab]; after a forward with targets: dloss/dlogits */
    double *row_loss;            /* [N] */
    real *dx, *dh;               /* [N][dim] */
    real *dq, *dao;              /* [N][n_heads*hd] */
    real *dk, *dv;               /* [N][n_kv*hd] */
    real *dgate, *dup, *dact;    /* [N][ffn] */
    real *dp;                    /* [B*n_kv][T] attention scratch, one row per task */
} tr_acts;

typedef struct {
    tr_config c;
    int hd, q_dim, kv_dim;
    int n_tensors;
    tr_tensor tensors[2 + 9 * TR_MAX_LAYERS];
    size_t n_params;
    real *p, *g, *m1, *m2, *pt;  /* [n_params] weights, gradients, Adam moments, transposes */
    tr_weights w, dw, wt;        /* views of p, g, pt (wt: every matrix transposed, [in][out]) */
    int max_b, max_t;            /* the activation buffers hold max_b x max_t positions */
    tr_acts a;
    real *rope_cos, *rope_sin;   /* [seq_len][hd/2] */
    void *allocs[64 + 20 * TR_MAX_LAYERS];
    int n_allocs;
} tr_model;

TRDEF real *tr_new(tr_model *m, size_t n) {
    real *p = (real *)tr_alloc(n * sizeof(real));
    m->allocs[m->n_allocs++] = p;
    return p;
}

TRDEF void tr_add_tensor(tr_model *m, const char *name, int64_t ne0, int64_t ne1, int decay) {
    tr_tensor *t = &m->tensors[m->n_tensors++];
    sprintf(t->name, "%s", name);
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->off = m->n_params;
    t->decay = decay;
    m->n_params += (size_t)(ne0 * ne1);
}

/* The parameter layout, in the order the GGUF lists the tensors. */
TRDEF void tr_layout(tr_model *m) {
    const tr_config *c = &m->c;
    int l;
    char name[48];
    static const char *const fmt[9] = {"blk.%d.attn_norm.weight", "blk.%d.attn_q.weight", "blk.%d.attn_k.weight",
        "blk.%d.attn_v.weight", "blk.%d.attn_output.weight", "blk.%d.ffn_norm.weight", "blk.%d.ffn_gate.weight",
        "blk.%d.ffn_up.weight", "blk.%d.ffn_down.weight"};
    m->n_tensors = 0;
    m->n_params = 0;
    tr_add_tensor(m, "token_embd.weight", c->dim, c->vocab, 1);
    for (l = 0; l < c->n_layers; l++) {
        const int64_t ne[9][2] = {{c->dim, 1}, {c->dim, m->q_dim}, {c->dim, m->kv_dim}, {c->dim, m->kv_dim},
            {m->q_dim, c->dim}, {c->dim, 1}, {c->dim, c->ffn}, {c->dim, c->ffn}, {c->ffn, c->dim}};
        int j;
        for (j = 0; j < 9; j++) {
            sprintf(name, fmt[j], l);
            tr_add_tensor(m, name, ne[j][0], ne[j][1], ne[j][1] > 1);
        }
    }
    tr_add_tensor(m, "output_norm.weight", c->dim, 1, 0);
}

TRDEF void tr_views(const tr_model *m, real *base, tr_weights *w) {
    int l, t = 1;
    w->emb = base + m->tensors[0].off;
    for (l = 0; l < m->c.n_layers; l++) {
        w->attn_norm[l] = base + m->tensors[t++].off;
        w->wq[l] = base + m->tensors[t++].off;
        w->wk[l] = base + m->tensors[t++].off;
        w->wv[l] = base + m->tensors[t++].off;
        w->wo[l] = base + m->tensors[t++].off;
        w->ffn_norm[l] = base + m->tensors[t++].off;
        w->wg[l] = base + m->tensors[t++].off;
        w->wu[l] = base + m->tensors[t++].off;
        w->wd[l] = base + m->tensors[t++].off;
    }
    w->out_norm = base + m->tensors[t].off;
}

TRDEF void tr_alloc_acts(tr_model *m, int B, int T) {
    const tr_config *c = &m->c;
    size_t N = (size_t)B * (size_t)T, D = (size_t)c->dim, F = (size_t)c->ffn;
    size_t Q = (size_t)m->q_dim, K = (size_t)m->kv_dim;
    tr_acts *a = &m->a;
    int l;
    for (l = 0; l < c->n_layers; l++) {
        tr_layer_acts *L = &a->l[l];
        L->h1 = tr_new(m, N * D); L->h2 = tr_new(m, N * D);
        L->r1 = tr_new(m, N); L->r2 = tr_new(m, N);
        L->q = tr_new(m, N * Q); L->ao = tr_new(m, N * Q);
        L->k = tr_new(m, N * K); L->v = tr_new(m, N * K);
        L->kt = tr_new(m, N * K); L->vt = tr_new(m, N * K);
        L->att = tr_new(m, (size_t)B * (size_t)c->n_heads * (size_t)T * (size_t)T);
        L->x_mid = tr_new(m, N * D);
        L->gate = tr_new(m, N * F); L->up = tr_new(m, N * F); L->act = tr_new(m, N * F);
    }
    for (l = 0; l <= c->n_layers; l++) a->xs[l] = tr_new(m, N * D);
    a->hf = tr_new(m, N * D); a->rf = tr_new(m, N);
    a->logits = tr_new(m, N * (size_t)c->vocab);
    a->row_loss = (double *)tr_alloc(N * sizeof(double));
    m->allocs[m->n_allocs++] = a->row_loss;
    a->dx = tr_new(m, N * D); a->dh = tr_new(m, N * D);
    a->dq = tr_new(m, N * Q); a->dao = tr_new(m, N * Q);
    a->dk = tr_new(m, N * K); a->dv = tr_new(m, N * K);
    a->dgate = tr_new(m, N * F); a->dup = tr_new(m, N * F); a->dact = tr_new(m, N * F);
    a->dp = tr_new(m, (size_t)B * (size_t)c->n_kv_heads * (size_t)T);
}

/* Builds a model with room for batches of up to B sequences of up to T positions. */
TRDEF int tr_model_init(tr_model *m, tr_config c, int B, int T) {
    int t, i;
    memset(m, 0, sizeof *m);
    m->c = c;
    if (tr_config_check(&c) || B < 1 || T < 1 || T > c.seq_len) return -1;
    m->hd = c.dim / c.n_heads;
    m->q_dim = c.n_heads * m->hd;
    m->kv_dim = c.n_kv_heads * m->hd;
    m->max_b = B;
    m->max_t = T;
    tr_layout(m);
    m->p = tr_new(m, m->n_params); m->g = tr_new(m, m->n_params);
    m->m1 = tr_new(m, m->n_params); m->m2 = tr_new(m, m->n_params);
    m->pt = tr_new(m, m->n_params);
    tr_views(m, m->p, &m->w);
    tr_views(m, m->g, &m->dw);
    tr_views(m, m->pt, &m->wt);
    tr_alloc_acts(m, B, T);
    m->rope_cos = tr_new(m, (size_t)c.seq_len * (size_t)(m->hd / 2));
    m->rope_sin = tr_new(m, (size_t)c.seq_len * (size_t)(m->hd / 2));
    for (t = 0; t < c.seq_len; t++)
        for (i = 0; i < m->hd / 2; i++) {
            double angle = t * pow(TR_ROPE_THETA, -2.0 * i / m->hd);
            m->rope_cos[t * (m->hd / 2) + i] = (real)cos(angle);
            m->rope_sin[t * (m->hd / 2) + i] = (real)sin(angle);
        }
    return 0;
}

TRDEF void tr_model_free(tr_model *m) {
    int i;
    for (i = 0; i < m->n_allocs; i++) free(m->allocs[i]);
    memset(m, 0, sizeof *m);
}

/* Norms 1; matrices N(0, 0.02), the two that write into the residual stream scaled by
   1/sqrt(2 * layers) so the stream's variance does not grow with depth. */
TRDEF void tr_model_randomize(tr_model *m, uint64_t seed) {
    tr_rng rng;
    int t;
    double out_scale = 1.0 / sqrt(2.0 * m->c.n_layers);
    rng.s = seed;
    for (t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensors[t];
        size_t i, n = (size_t)(T->ne0 * T->ne1);
        int residual = strstr(T->name, "attn_output") || strstr(T->name, "ffn_down");
        double std = 0.02 * (residual ? out_scale : 1.0);
        for (i = 0; i < n; i++) m->p[T->off + i] = T->decay ? (real)(std * tr_rng_normal(&rng)) : (real)1;
    }
    memset(m->m1, 0, m->n_params * sizeof(real));
    memset(m->m2, 0, m->n_params * sizeof(real));
}

/* ===================================================================== kernels */

/* exp(x) for float without libm: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to
   r^7 (truncation below 6e-9), 2^n put into the exponent bits. Plain IEEE operations only, so
   it vectorizes and gives the same bits on every machine (libm's expf differs between builds). */
TRDEF float tr_expf(float x) {
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n, r, p, scale;
    int32_t bits;
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    n = (x * 1.44269504088896341f + shift) - shift;
    r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f; /* ln2 in two parts */
    p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    bits = ((int32_t)n + 127) << 23;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#ifdef TRAIN_DOUBLE
#define tr_exp exp
#else
#define tr_exp tr_expf
#endif

TRDEF real tr_sigmoid(real x) { return (real)1 / ((real)1 + tr_exp(-x)); }

/* sum of x[i] * y[i] (y NULL: of x[i]) over 16 interleaved partial sums, combined in a fixed
   order: vectorizes without reassociating anything the compiler could reorder. */
TRDEF double tr_dot(const real *x, const real *y, int n) {
    real acc[16] = {0};
    double s = 0;
    int i = 0, j;
    if (y) for (; i + 16 <= n; i += 16) for (j = 0; j < 16; j++) acc[j] += x[i + j] * y[i + j];
    else for (; i + 16 <= n; i += 16) for (j = 0; j < 16; j++) acc[j] += x[i + j];
    for (j = 0; i + j < n; j++) acc[j] += y ? x[i + j] * y[i + j] : x[i + j];
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* o[d] = sum over u < n, in order, of w[u] * rows[u * stride + d], for d < len. Sixteen outputs
   at a time stay in registers (a running o[d] in memory serializes on store-to-load latency). */
TRDEF void tr_weighted_rows(real *o, const real *w, const real *rows, size_t stride, int n, int len) {
    int d0 = 0, u, j;
    for (; d0 + 16 <= len; d0 += 16) {
        real acc[16] = {0};
        for (u = 0; u < n; u++) {
            const real *r = rows + (size_t)u * stride + d0, wu = w[u];
            for (j = 0; j < 16; j++) acc[j] += wu * r[j];
        }
        for (j = 0; j < 16; j++) o[d0 + j] = acc[j];
    }
    for (; d0 < len; d0++) {
        real acc = 0;
        for (u = 0; u < n; u++) acc += w[u] * rows[(size_t)u * stride + d0];
        o[d0] = acc;
    }
}

#define TR_MR 8  /* rows of C per register tile */
#define TR_NR 32 /* columns of C per register tile */

/* C[M][N] = (acc ? C : 0) + A B, where A(m, k) = a[m * a_ms + k * a_ks] and B is [K][N].
   Every C element is summed over k = 0..K-1 in order by one thread: the result does not
   depend on the tiling or the thread count. */
TRDEF void tr_gemm(real *c, const real *a, size_t a_ms, size_t a_ks, const real *b, int M, int K, int N, int acc) {
    int nmb = (M + TR_MR - 1) / TR_MR;
    TR_PARALLEL_FOR_DYNAMIC
    for (int mb = 0; mb < nmb; mb++) {
        int m0 = mb * TR_MR, mr = M - m0 < TR_MR ? M - m0 : TR_MR;
        for (int n0 = 0; n0 < N; n0 += TR_NR) {
            int nr = N - n0 < TR_NR ? N - n0 : TR_NR;
            if (mr == TR_MR && nr == TR_NR) {
                real t[TR_MR][TR_NR];
                for (int r = 0; r < TR_MR; r++)
                    for (int j = 0; j < TR_NR; j++) t[r][j] = acc ? c[(size_t)(m0 + r) * N + n0 + j] : 0;
                for (int k = 0; k < K; k++) {
                    const real *br = b + (size_t)k * N + n0;
                    for (int r = 0; r < TR_MR; r++) {
                        real av = a[(size_t)(m0 + r) * a_ms + (size_t)k * a_ks];
                        for (int j = 0; j < TR_NR; j++) t[r][j] += av * br[j];
                    }
                }
                for (int r = 0; r < TR_MR; r++)
                    for (int j = 0; j < TR_NR; j++) c[(size_t)(m0 + r) * N + n0 + j] = t[r][j];
            } else {
                for (int r = 0; r < mr; r++)
                    for (int j = 0; j < nr; j++) {
                        real s = acc ? c[(size_t)(m0 + r) * N + n0 + j] : 0;
                        for (int k = 0; k < K; k++) s += a[(size_t)(m0 + r) * a_ms + (size_t)k * a_ks] * b[(size_t)k * N + n0 + j];
                        c[(size_t)(m0 + r) * N + n0 + j] = s;
                    }
            }
        }
    }
}

/* y[N][out] = x[N][in] W^T, with wt = W transposed ([in][out]). */
TRDEF void tr_matmul(real *y, const real *x, const real *wt, int N, int in, int out, int acc) {
    tr_gemm(y, x, (size_t)in, 1, wt, N, in, out, acc);
}
/* dx[N][in] (+)= dy[N][out] W, W [out][in]. */
TRDEF void tr_matmul_dx(real *dx, const real *dy, const real *w, int N, int in, int out, int acc) {
    tr_gemm(dx, dy, (size_t)out, 1, w, N, out, in, acc);
}
/* dW[out][in] = dy^T x, summed over the N rows in order. */
TRDEF void tr_matmul_dw(real *dw, const real *dy, const real *x, int N, int in, int out) {
    tr_gemm(dw, dy, 1, (size_t)out, x, out, N, in, 0);
}

TRDEF void tr_transpose(real *dst, const real *src, int64_t rows, int64_t cols) {
    int64_t r, c;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

/* y = x / rms(x) * gain per row; r[n] keeps 1/rms for the backward. */
TRDEF void tr_rmsnorm(real *y, real *r, const real *x, const real *gain, int N, int D) {
    TR_PARALLEL_FOR
    for (int n = 0; n < N; n++) {
        const real *xr = x + (size_t)n * D;
        real inv = (real)(1.0 / sqrt(tr_dot(xr, xr, D) / D + TR_RMS_EPS));
        r[n] = inv;
        for (int i = 0; i < D; i++) y[(size_t)n * D + i] = xr[i] * inv * gain[i];
    }
}

/* dx += d(rmsnorm)/dx^T dy; dgain = sum over rows (in row order). dy is used as scratch. */
TRDEF void tr_rmsnorm_bwd(real *dx, real *dgain, real *dy, const real *x, const real *gain, const real *r, int N, int D) {
    memset(dgain, 0, (size_t)D * sizeof(real));
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++) dgain[i] += dy[(size_t)n * D + i] * x[(size_t)n * D + i] * r[n];
    TR_PARALLEL_FOR
    for (int n = 0; n < N; n++) {
        const real *xr = x + (size_t)n * D;
        real *dxr = dx + (size_t)n * D, *gdy = dy + (size_t)n * D, inv = r[n], k;
        for (int i = 0; i < D; i++) gdy[i] *= gain[i];
        k = (real)(tr_dot(gdy, xr, D) * inv * inv * inv / D);
        for (int i = 0; i < D; i++) dxr[i] += inv * gdy[i] - xr[i] * k;
    }
}

/* Rotates adjacent pairs (x[2i], x[2i+1]) of every head by pos * theta^(-2i/hd), pos = row % T.
   dir -1 applies the inverse rotation (the backward of the forward rotation). */
TRDEF void tr_rope(const tr_model *m, real *x, int N, int T, int n_heads, int dir) {
    int half = m->hd / 2;
    TR_PARALLEL_FOR
    for (int n = 0; n < N; n++) {
        const real *cs = m->rope_cos + (size_t)(n % T) * half, *sn = m->rope_sin + (size_t)(n % T) * half;
        for (int h = 0; h < n_heads; h++) {
            real *v = x + (size_t)n * n_heads * m->hd + (size_t)h * m->hd;
            for (int i = 0; i < half; i++) {
                real a = v[2 * i], b = v[2 * i + 1], s = dir > 0 ? sn[i] : -sn[i];
                v[2 * i] = a * cs[i] - b * s;
                v[2 * i + 1] = a * s + b * cs[i];
            }
        }
    }
}

/* Causal attention for one (sequence b, KV head g): the query heads of g's group. */
TRDEF void tr_attention_task(const tr_model *m, tr_layer_acts *L, int b, int g, int T) {
    int hd = m->hd, nh = m->c.n_heads, grp = nh / m->c.n_kv_heads;
    size_t Q = (size_t)m->q_dim, K = (size_t)m->kv_dim;
    real *kt = L->kt + ((size_t)b * m->c.n_kv_heads + g) * hd * T, *vt = L->vt + ((size_t)b * m->c.n_kv_heads + g) * hd * T;
    real scale = (real)(1.0 / sqrt((double)hd));
    for (int d = 0; d < hd; d++)
        for (int t = 0; t < T; t++) {
            kt[(size_t)d * T + t] = L->k[((size_t)b * T + t) * K + (size_t)g * hd + d];
            vt[(size_t)d * T + t] = L->v[((size_t)b * T + t) * K + (size_t)g * hd + d];
        }
    for (int h = g * grp; h < (g + 1) * grp; h++)
        for (int t = 0; t < T; t++) {
            real *p = L->att + (((size_t)b * nh + h) * T + t) * T, mx;
            const real *q = L->q + ((size_t)b * T + t) * Q + (size_t)h * hd;
            real *o = L->ao + ((size_t)b * T + t) * Q + (size_t)h * hd;
            double sum;
            for (int u = 0; u < T; u++) p[u] = 0;
            for (int d = 0; d < hd; d++)
                for (int u = 0; u <= t; u++) p[u] += q[d] * kt[(size_t)d * T + u];
            mx = p[0] * scale;
            for (int u = 0; u <= t; u++) { p[u] *= scale; mx = p[u] > mx ? p[u] : mx; }
            for (int u = 0; u <= t; u++) p[u] = tr_exp(p[u] - mx);
            sum = tr_dot(p, NULL, t + 1);
            for (int u = 0; u <= t; u++) p[u] = (real)(p[u] / sum);
            tr_weighted_rows(o, p, L->v + (size_t)b * T * K + (size_t)g * hd, K, t + 1, hd);
        }
}

TRDEF void tr_attention_bwd_task(const tr_model *m, tr_layer_acts *L, tr_acts *a, int b, int g, int T) {
    int hd = m->hd, nh = m->c.n_heads, grp = nh / m->c.n_kv_heads;
    size_t Q = (size_t)m->q_dim, K = (size_t)m->kv_dim;
    const real *vt = L->vt + ((size_t)b * m->c.n_kv_heads + g) * hd * T;
    real *dp = a->dp + ((size_t)b * m->c.n_kv_heads + g) * T;
    real scale = (real)(1.0 / sqrt((double)hd));
    for (int t = 0; t < T; t++)
        for (int d = 0; d < hd; d++) {
            a->dk[((size_t)b * T + t) * K + (size_t)g * hd + d] = 0;
            a->dv[((size_t)b * T + t) * K + (size_t)g * hd + d] = 0;
        }
    for (int h = g * grp; h < (g + 1) * grp; h++)
        for (int t = 0; t < T; t++) {
            const real *p = L->att + (((size_t)b * nh + h) * T + t) * T;
            const real *q = L->q + ((size_t)b * T + t) * Q + (size_t)h * hd;
            const real *dout = a->dao + ((size_t)b * T + t) * Q + (size_t)h * hd;
            real *dq = a->dq + ((size_t)b * T + t) * Q + (size_t)h * hd;
            double s = 0;
            for (int u = 0; u <= t; u++) dp[u] = 0;
            for (int d = 0; d < hd; d++)
                for (int u = 0; u <= t; u++) dp[u] += dout[d] * vt[(size_t)d * T + u];
            for (int u = 0; u <= t; u++) {
                real *dvr = a->dv + ((size_t)b * T + u) * K + (size_t)g * hd;
                for (int d = 0; d < hd; d++) dvr[d] += p[u] * dout[d];
            }
            s = tr_dot(p, dp, t + 1);
            for (int u = 0; u <= t; u++) dp[u] = p[u] * (dp[u] - (real)s) * scale;
            tr_weighted_rows(dq, dp, L->k + (size_t)b * T * K + (size_t)g * hd, K, t + 1, hd);
            for (int u = 0; u <= t; u++) {
                real *dkr = a->dk + ((size_t)b * T + u) * K + (size_t)g * hd;
                for (int d = 0; d < hd; d++) dkr[d] += dp[u] * q[d];
            }
        }
}

/* ===================================================================== forward and backward */

/* Transposed copies of the matrices, so the forward's products read B rows contiguously. */
TRDEF void tr_prepare(tr_model *m) {
    int t;
    TR_PARALLEL_FOR
    for (t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensors[t];
        tr_transpose(m->pt + T->off, m->p + T->off, T->ne1, T->ne0);
    }
}

TRDEF void tr_layer_forward(tr_model *m, int l, int B, int T) {
    const tr_config *c = &m->c;
    tr_layer_acts *L = &m->a.l[l];
    int N = B * T, D = c->dim, nkv = c->n_kv_heads;
    const real *x = m->a.xs[l];
    real *y = m->a.xs[l + 1];
    tr_rmsnorm(L->h1, L->r1, x, m->w.attn_norm[l], N, D);
    tr_matmul(L->q, L->h1, m->wt.wq[l], N, D, m->q_dim, 0);
    tr_matmul(L->k, L->h1, m->wt.wk[l], N, D, m->kv_dim, 0);
    tr_matmul(L->v, L->h1, m->wt.wv[l], N, D, m->kv_dim, 0);
    tr_rope(m, L->q, N, T, c->n_heads, 1);
    tr_rope(m, L->k, N, T, nkv, 1);
    TR_PARALLEL_FOR_DYNAMIC
    for (int bg = 0; bg < B * nkv; bg++) tr_attention_task(m, L, bg / nkv, bg % nkv, T);
    memcpy(L->x_mid, x, (size_t)N * D * sizeof(real));
    tr_matmul(L->x_mid, L->ao, m->wt.wo[l], N, m->q_dim, D, 1);
    tr_rmsnorm(L->h2, L->r2, L->x_mid, m->w.ffn_norm[l], N, D);
    tr_matmul(L->gate, L->h2, m->wt.wg[l], N, D, c->ffn, 0);
    tr_matmul(L->up, L->h2, m->wt.wu[l], N, D, c->ffn, 0);
    TR_PARALLEL_FOR
    for (int n = 0; n < N; n++)
        for (int i = 0; i < c->ffn; i++) {
            size_t j = (size_t)n * c->ffn + i;
            L->act[j] = L->gate[j] * tr_sigmoid(L->gate[j]) * L->up[j];
        }
    memcpy(y, L->x_mid, (size_t)N * D * sizeof(real));
    tr_matmul(y, L->act, m->wt.wd[l], N, c->ffn, D, 1);
}

/* Cross-entropy of each row against its target (< 0: not scored). Turns the logits into
   dloss/dlogits for the mean loss over scored rows. Returns the summed loss. */
TRDEF double tr_loss(tr_model *m, const int *targets, int N, int *n_scored) {
    int V = m->c.vocab, count = 0;
    double total = 0, scale;
    for (int n = 0; n < N; n++) count += targets[n] >= 0;
    scale = count ? 1.0 / count : 0;
    TR_PARALLEL_FOR
    for (int n = 0; n < N; n++) {
        real *z = m->a.logits + (size_t)n * V, mx = z[0], zt;
        double sum;
        if (targets[n] < 0) {
            m->a.row_loss[n] = 0;
            memset(z, 0, (size_t)V * sizeof(real));
            continue;
        }
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        zt = z[targets[n]];
        for (int v = 0; v < V; v++) z[v] = tr_exp(z[v] - mx);
        sum = tr_dot(z, NULL, V);
        m->a.row_loss[n] = log(sum) + mx - zt;
        for (int v = 0; v < V; v++) z[v] = (real)(z[v] / sum * scale);
        z[targets[n]] -= (real)scale;
    }
    for (int n = 0; n < N; n++) total += m->a.row_loss[n];
    *n_scored = count;
    return total;
}

/* Runs B sequences of T tokens ([B][T]). With targets ([B][T], < 0: not scored) returns the
   summed loss and leaves dloss/dlogits for tr_backward; without, leaves the logits. */
TRDEF double tr_forward(tr_model *m, const int *tokens, const int *targets, int B, int T, int *n_scored) {
    const tr_config *c = &m->c;
    int N = B * T, D = c->dim;
    tr_prepare(m);
    for (int n = 0; n < N; n++)
        memcpy(m->a.xs[0] + (size_t)n * D, m->w.emb + (size_t)tokens[n] * D, (size_t)D * sizeof(real));
    for (int l = 0; l < c->n_layers; l++) tr_layer_forward(m, l, B, T);
    tr_rmsnorm(m->a.hf, m->a.rf, m->a.xs[c->n_layers], m->w.out_norm, N, D);
    tr_matmul(m->a.logits, m->a.hf, m->wt.emb, N, D, c->vocab, 0);
    if (n_scored) *n_scored = 0;
    return targets ? tr_loss(m, targets, N, n_scored) : 0;
}

TRDEF void tr_layer_backward(tr_model *m, int l, int B, int T) {
    const tr_config *c = &m->c;
    tr_layer_acts *L = &m->a.l[l];
    tr_acts *a = &m->a;
    int N = B * T, D = c->dim, F = c->ffn, nkv = c->n_kv_heads;
    /* FFN: xs[l+1] = x_mid + act wd^T */
    tr_matmul_dx(a->dact, a->dx, m->w.wd[l], N, F, D, 0);
    tr_matmul_dw(m->dw.wd[l], a->dx, L->act, N, F, D);
    TR_PARALLEL_FOR
    for (int n = 0; n < N; n++)
        for (int i = 0; i < F; i++) {
            size_t j = (size_t)n * F + i;
            real s = tr_sigmoid(L->gate[j]), silu = L->gate[j] * s;
            a->dup[j] = a->dact[j] * silu;
            a->dgate[j] = a->dact[j] * L->up[j] * s * (1 + L->gate[j] * (1 - s));
        }
    tr_matmul_dx(a->dh, a->dgate, m->w.wg[l], N, D, F, 0);
    tr_matmul_dx(a->dh, a->dup, m->w.wu[l], N, D, F, 1);
    tr_matmul_dw(m->dw.wg[l], a->dgate, L->h2, N, D, F);
    tr_matmul_dw(m->dw.wu[l], a->dup, L->h2, N, D, F);
    tr_rmsnorm_bwd(a->dx, m->dw.ffn_norm[l], a->dh, L->x_mid, m->w.ffn_norm[l], L->r2, N, D);
    /* attention: x_mid = xs[l] + ao wo^T */
    tr_matmul_dx(a->dao, a->dx, m->w.wo[l], N, m->q_dim, D, 0);
    tr_matmul_dw(m->dw.wo[l], a->dx, L->ao, N, m->q_dim, D);
    TR_PARALLEL_FOR_DYNAMIC
    for (int bg = 0; bg < B * nkv; bg++) tr_attention_bwd_task(m, L, a, bg / nkv, bg % nkv, T);
    tr_rope(m, a->dq, N, T, c->n_heads, -1);
    tr_rope(m, a->dk, N, T, nkv, -1);
    tr_matmul_dx(a->dh, a->dq, m->w.wq[l], N, D, m->q_dim, 0);
    tr_matmul_dx(a->dh, a->dk, m->w.wk[l], N, D, m->kv_dim, 1);
    tr_matmul_dx(a->dh, a->dv, m->w.wv[l], N, D, m->kv_dim, 1);
    tr_matmul_dw(m->dw.wq[l], a->dq, L->h1, N, D, m->q_dim);
    tr_matmul_dw(m->dw.wk[l], a->dk, L->h1, N, D, m->kv_dim);
    tr_matmul_dw(m->dw.wv[l], a->dv, L->h1, N, D, m->kv_dim);
    tr_rmsnorm_bwd(a->dx, m->dw.attn_norm[l], a->dh, m->a.xs[l], m->w.attn_norm[l], L->r1, N, D);
}

/* Gradients of the loss of the last tr_forward (with targets) into m->g. */
TRDEF void tr_backward(tr_model *m, const int *tokens, int B, int T) {
    const tr_config *c = &m->c;
    int N = B * T, D = c->dim;
    tr_acts *a = &m->a;
    tr_matmul_dw(m->dw.emb, a->logits, a->hf, N, D, c->vocab);
    tr_matmul_dx(a->dh, a->logits, m->w.emb, N, D, c->vocab, 0);
    memset(a->dx, 0, (size_t)N * D * sizeof(real));
    tr_rmsnorm_bwd(a->dx, m->dw.out_norm, a->dh, a->xs[c->n_layers], m->w.out_norm, a->rf, N, D);
    for (int l = c->n_layers - 1; l >= 0; l--) tr_layer_backward(m, l, B, T);
    for (int n = 0; n < N; n++) {
        real *row = m->dw.emb + (size_t)tokens[n] * D;
        for (int i = 0; i < D; i++) row[i] += a->dx[(size_t)n * D + i];
    }
}

/* ===================================================================== optimizer */

typedef struct {
    int batch, steps, warmup;                 /* zero: default */
    double lr, min_lr_frac, weight_decay, beta1, beta2, adam_eps, clip;
    uint64_t seed;
} tr_hparams;

TRDEF tr_hparams tr_hparams_defaults(tr_hparams h) {
    if (!h.batch) h.batch = 16;
    if (!h.steps) h.steps = 1500;
    if (!h.warmup) h.warmup = 100;
    if (h.lr == 0) h.lr = 2e-3;
    if (h.min_lr_frac == 0) h.min_lr_frac = 0.1;
    if (h.weight_decay == 0) h.weight_decay = 0.1;
    if (h.beta1 == 0) h.beta1 = 0.9;
    if (h.beta2 == 0) h.beta2 = 0.95;
    if (h.adam_eps == 0) h.adam_eps = 1e-8;
    if (h.clip == 0) h.clip = 1.0;
    if (!h.seed) h.seed = 1;
    return h;
}

/* Linear warmup to lr, then a cosine down to lr * min_lr_frac at the last step. */
TRDEF double tr_lr_at(const tr_hparams *h, int step) {
    double progress, min_lr = h->lr * h->min_lr_frac;
    if (step < h->warmup) return h->lr * (step + 1) / h->warmup;
    if (h->steps <= h->warmup) return h->lr;
    progress = (double)(step - h->warmup) / (double)(h->steps - h->warmup);
    if (progress > 1) progress = 1;
    return min_lr + 0.5 * (h->lr - min_lr) * (1 + cos(3.141592653589793 * progress));
}

/* Global gradient norm, summed in parameter order. */
TRDEF double tr_grad_norm(const tr_model *m) {
    double s = 0;
    size_t i;
    for (i = 0; i < m->n_params; i++) s += (double)m->g[i] * m->g[i];
    return sqrt(s);
}

/* One AdamW update (step counts from 0); gradients clipped to a global norm of h->clip.
   Weight decay only on matrices (tensor decay flag), decoupled from the gradient. */
TRDEF void tr_adamw(tr_model *m, const tr_hparams *h, int step, double lr, double gnorm) {
    double c1 = 1 - pow(h->beta1, step + 1), c2 = 1 - pow(h->beta2, step + 1);
    real gscale = (real)(gnorm > h->clip ? h->clip / gnorm : 1.0), b1 = (real)h->beta1, b2 = (real)h->beta2;
    TR_PARALLEL_FOR
    for (int t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensors[t];
        real wd = (real)(T->decay ? lr * h->weight_decay : 0);
        real *p = m->p + T->off, *g = m->g + T->off, *m1 = m->m1 + T->off, *m2 = m->m2 + T->off;
        for (int64_t i = 0; i < T->ne0 * T->ne1; i++) {
            real gi = g[i] * gscale;
            m1[i] = b1 * m1[i] + (1 - b1) * gi;
            m2[i] = b2 * m2[i] + (1 - b2) * gi * gi;
            p[i] -= (real)(lr * (m1[i] / c1) / (sqrt(m2[i] / c2) + h->adam_eps)) + wd * p[i];
        }
    }
}

/* ===================================================================== data */

/* Training sequence: <s> then tokens from verse start s on; targets are the next tokens. */
TRDEF void tr_make_sequence(const tr_stream *s, size_t start, int T, int *tok, int *tgt) {
    tok[0] = TR_BOS;
    for (int t = 0; t < T; t++) {
        size_t i = start + (size_t)t;
        tgt[t] = i < s->n ? s->tok[i] : -1;
        if (t + 1 < T) tok[t + 1] = i < s->n ? s->tok[i] : TR_EOS;
    }
}

TRDEF void tr_sample_batch(const tr_stream *s, tr_rng *rng, int B, int T, int *tok, int *tgt) {
    size_t usable = s->n_verses;
    while (usable > 1 && s->verse_start[usable - 1] + (size_t)T > s->n) usable--;
    for (int b = 0; b < B; b++)
        tr_make_sequence(s, s->verse_start[tr_rng_below(rng, usable)], T, tok + (size_t)b * T, tgt + (size_t)b * T);
}

/* Held-out windows: <s> plus as many whole verses as fit in T targets, so every token is scored
   once (only a verse longer than T would lose its tail; with T = 256 every held-out token of
   the KJV is scored). Returns the window count; starts[] (if not NULL) receives each first token. */
TRDEF size_t tr_eval_windows(const tr_stream *s, int T, size_t *starts) {
    size_t v = 0, n = 0;
    while (v < s->n_verses) {
        size_t start = s->verse_start[v++];
        if (starts) starts[n] = start;
        n++;
        while (v < s->n_verses && (v + 1 < s->n_verses ? s->verse_start[v + 1] : s->n) <= start + (size_t)T) v++;
    }
    return n;
}

/* Mean held-out loss per token (nats); *n_tok gets the number of scored tokens. */
TRDEF double tr_evaluate(tr_model *m, const tr_stream *s, int T, int64_t *n_tok) {
    size_t n_win = tr_eval_windows(s, T, NULL), w;
    size_t *starts = (size_t *)tr_alloc((n_win + 1) * sizeof *starts);
    int B = m->max_b, *tok = (int *)tr_alloc((size_t)B * T * sizeof(int)), *tgt = (int *)tr_alloc((size_t)B * T * sizeof(int));
    double total = 0;
    int64_t count = 0;
    tr_eval_windows(s, T, starts);
    for (w = 0; w < n_win; w += (size_t)B) {
        int n;
        for (int b = 0; b < B; b++) {
            int *tk = tok + (size_t)b * T, *tg = tgt + (size_t)b * T;
            if (w + (size_t)b < n_win) {
                size_t start = starts[w + b], end = w + b + 1 < n_win ? starts[w + b + 1] : s->n;
                tr_make_sequence(s, start, T, tk, tg);
                for (int t = 0; t < T; t++) if (start + (size_t)t >= end) tg[t] = -1;
            } else {
                for (int t = 0; t < T; t++) { tk[t] = TR_BOS; tg[t] = -1; }
            }
        }
        total += tr_forward(m, tok, tgt, B, T, &n);
        count += n;
    }
    free(starts);
    free(tok);
    free(tgt);
    *n_tok = count;
    return count ? total / (double)count : 0;
}

/* ===================================================================== checkpoints */
/* Raw state for --resume on the same build: header, then weights and both Adam moments. */

#define TR_CKPT_MAGIC "TFMTRN01"

typedef struct {
    int32_t cfg[7], batch, steps, warmup, next_step;
    double hp[7];
    uint64_t seed, rng, vocab_hash, n_params, real_size;
} tr_ckpt_header;

TRDEF void tr_ckpt_fill(tr_ckpt_header *h, const tr_model *m, const tr_hparams *hp, int next_step, uint64_t rng, uint64_t vocab_hash) {
    const tr_config *c = &m->c;
    memset(h, 0, sizeof *h);
    h->cfg[0] = c->dim; h->cfg[1] = c->n_layers; h->cfg[2] = c->n_heads; h->cfg[3] = c->n_kv_heads;
    h->cfg[4] = c->ffn; h->cfg[5] = c->vocab; h->cfg[6] = c->seq_len;
    h->batch = hp->batch; h->steps = hp->steps; h->warmup = hp->warmup; h->next_step = next_step;
    h->hp[0] = hp->lr; h->hp[1] = hp->min_lr_frac; h->hp[2] = hp->weight_decay; h->hp[3] = hp->beta1;
    h->hp[4] = hp->beta2; h->hp[5] = hp->adam_eps; h->hp[6] = hp->clip;
    h->seed = hp->seed; h->rng = rng; h->vocab_hash = vocab_hash;
    h->n_params = m->n_params; h->real_size = sizeof(real);
}

/* Writes to path.tmp, then renames: an interrupted write never replaces a good checkpoint. */
TRDEF int tr_ckpt_save(const char *path, const tr_model *m, const tr_hparams *hp, int next_step, uint64_t rng, uint64_t vocab_hash) {
    tr_ckpt_header h;
    char tmp[1024];
    FILE *f;
    int ok = 1;
    if (strlen(path) + 5 > sizeof tmp) return -1;
    sprintf(tmp, "%s.tmp", path);
    tr_ckpt_fill(&h, m, hp, next_step, rng, vocab_hash);
    f = fopen(tmp, "wb");
    if (!f) return -1;
    ok &= fwrite(TR_CKPT_MAGIC, 1, 8, f) == 8;
    ok &= fwrite(&h, sizeof h, 1, f) == 1;
    ok &= fwrite(m->p, sizeof(real), m->n_params, f) == m->n_params;
    ok &= fwrite(m->m1, sizeof(real), m->n_params, f) == m->n_params;
    ok &= fwrite(m->m2, sizeof(real), m->n_params, f) == m->n_params;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) { remove(tmp); return -1; }
    return 0;
}

/* Loads a checkpoint made with the same settings; returns the next step, or -1. */
TRDEF int tr_ckpt_load(const char *path, tr_model *m, const tr_hparams *hp, uint64_t vocab_hash, uint64_t *rng) {
    tr_ckpt_header want, h;
    char magic[8];
    FILE *f = fopen(path, "rb");
    int ok = 1;
    if (!f) { fprintf(stderr, "train: cannot open checkpoint %s\n", path); return -1; }
    tr_ckpt_fill(&want, m, hp, 0, 0, vocab_hash);
    ok &= fread(magic, 1, 8, f) == 8 && memcmp(magic, TR_CKPT_MAGIC, 8) == 0;
    ok &= fread(&h, sizeof h, 1, f) == 1;
    if (ok) {
        want.next_step = h.next_step;
        want.rng = h.rng;
        if (memcmp(&want, &h, sizeof h) != 0) {
            fprintf(stderr, "train: checkpoint %s was made with other settings (shape, hyperparameters, seed, vocabulary or build)\n", path);
            fclose(f);
            return -1;
        }
    }
    ok &= fread(m->p, sizeof(real), m->n_params, f) == m->n_params;
    ok &= fread(m->m1, sizeof(real), m->n_params, f) == m->n_params;
    ok &= fread(m->m2, sizeof(real), m->n_params, f) == m->n_params;
    fclose(f);
    if (!ok || h.next_step < 0) { fprintf(stderr, "train: checkpoint %s is damaged\n", path); return -1; }
    *rng = h.rng;
    return h.next_step;
}

/* ===================================================================== GGUF */

TRDEF int tr_save_gguf(const tr_model *m, const tr_vocab *v, const char *name, const char *path) {
    const tr_config *c = &m->c;
    gw_writer w;
    float *data = (float *)tr_alloc(m->n_params * sizeof(float));
    size_t i;
    int t, rc = 0;
    for (i = 0; i < m->n_params; i++) data[i] = (float)m->p[i];
    gw_init(&w);
    rc |= gw_str(&w, "general.architecture", "llama");
    rc |= gw_str(&w, "general.name", name);
    rc |= gw_u32(&w, "general.file_type", 0); /* all F32 */
    rc |= gw_u32(&w, "llama.context_length", (uint32_t)c->seq_len);
    rc |= gw_u32(&w, "llama.embedding_length", (uint32_t)c->dim);
    rc |= gw_u32(&w, "llama.block_count", (uint32_t)c->n_layers);
    rc |= gw_u32(&w, "llama.feed_forward_length", (uint32_t)c->ffn);
    rc |= gw_u32(&w, "llama.attention.head_count", (uint32_t)c->n_heads);
    rc |= gw_u32(&w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    rc |= gw_u32(&w, "llama.rope.dimension_count", (uint32_t)m->hd);
    rc |= gw_f32(&w, "llama.rope.freq_base", (float)TR_ROPE_THETA);
    rc |= gw_f32(&w, "llama.attention.layer_norm_rms_epsilon", (float)TR_RMS_EPS);
    rc |= gw_str(&w, "tokenizer.ggml.model", "llama");
    {
        size_t *lens = (size_t *)tr_alloc((size_t)v->n * sizeof *lens);
        for (t = 0; t < v->n; t++) lens[t] = (size_t)v->len[t];
        rc |= gw_arr_str(&w, "tokenizer.ggml.tokens", (const char *const *)v->piece, lens, (size_t)v->n);
        free(lens);
    }
    rc |= gw_arr_f32(&w, "tokenizer.ggml.scores", v->score, (size_t)v->n);
    rc |= gw_arr_i32(&w, "tokenizer.ggml.token_type", v->type, (size_t)v->n);
    rc |= gw_u32(&w, "tokenizer.ggml.bos_token_id", TR_BOS);
    rc |= gw_u32(&w, "tokenizer.ggml.eos_token_id", TR_EOS);
    rc |= gw_u32(&w, "tokenizer.ggml.unknown_token_id", TR_UNK);
    rc |= gw_bool(&w, "tokenizer.ggml.add_bos_token", 1);
    rc |= gw_bool(&w, "tokenizer.ggml.add_eos_token", 0);
    for (t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensors[t];
        int64_t ne[2];
        ne[0] = T->ne0;
        ne[1] = T->ne1;
        rc |= gw_tensor(&w, T->name, TFM_TYPE_F32, T->ne1 > 1 ? 2 : 1, ne, data + T->off);
    }
    if (!rc) rc = gw_write(&w, path);
    gw_free(&w);
    free(data);
    return rc ? -1 : 0;
}

TRDEF int tr_gguf_int(const tfm_gguf *g, const char *key, int *out) {
    int64_t v;
    if (!tfm_gguf_get_int(g, key, &v) || v <= 0 || v > (1 << 30)) {
        fprintf(stderr, "train: GGUF key %s missing or out of range\n", key);
        return -1;
    }
    *out = (int)v;
    return 0;
}

TRDEF int tr_load_vocab(const tfm_gguf *g, tr_vocab *v) {
    const tfm_gguf_kv *tokens = tfm_gguf_find(g, "tokenizer.ggml.tokens");
    const tfm_gguf_kv *scores = tfm_gguf_find(g, "tokenizer.ggml.scores");
    const tfm_gguf_kv *types = tfm_gguf_find(g, "tokenizer.ggml.token_type");
    uint64_t i;
    memset(v, 0, sizeof *v);
    if (!tokens || !scores || !types || tokens->arr_n != scores->arr_n || tokens->arr_n != types->arr_n || tokens->arr_n > (1u << 24)) {
        fprintf(stderr, "train: GGUF vocabulary missing or inconsistent\n");
        return -1;
    }
    for (i = 0; i < tokens->arr_n; i++) {
        tfm_str s;
        double score;
        int64_t type;
        if (!tfm_gguf_arr_str(tokens, i, &s) || !tfm_gguf_arr_float(scores, i, &score) || !tfm_gguf_arr_int(types, i, &type) || s.len > 1 << 16) {
            fprintf(stderr, "train: GGUF vocabulary entry %lu unreadable\n", (unsigned long)i);
            tr_vocab_free(v);
            return -1;
        }
        tr_vocab_add(v, s.ptr, (int)s.len, (float)score, (int32_t)type);
    }
    return 0;
}

/* Loads a GGUF this program wrote (F32 llama) into a model with room for B x T positions
   (T = 0: the file's context length) and its vocabulary. */
TRDEF int tr_load_gguf(const char *path, tr_model *m, tr_vocab *v, int B, int T) {
    tfm_gguf g;
    tr_config c;
    tfm_result r = tfm_gguf_open(&g, path);
    int t, rc = -1;
    if (r != TFM_OK) { fprintf(stderr, "train: %s: %s (%s)\n", path, tfm_result_string(r), g.error); return -1; }
    memset(&c, 0, sizeof c);
    if (tr_gguf_int(&g, "llama.embedding_length", &c.dim) || tr_gguf_int(&g, "llama.block_count", &c.n_layers) ||
        tr_gguf_int(&g, "llama.attention.head_count", &c.n_heads) || tr_gguf_int(&g, "llama.attention.head_count_kv", &c.n_kv_heads) ||
        tr_gguf_int(&g, "llama.feed_forward_length", &c.ffn) || tr_gguf_int(&g, "llama.context_length", &c.seq_len) ||
        tr_load_vocab(&g, v))
        goto done;
    c.vocab = v->n;
    if (tr_config_check(&c)) { fprintf(stderr, "train: %s: %s\n", path, tr_config_check(&c)); goto done; }
    if (tr_model_init(m, c, B, T ? T : c.seq_len)) { fprintf(stderr, "train: %s: bad batch shape\n", path); goto done; }
    for (t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T_ = &m->tensors[t];
        const tfm_gguf_tensor *gt = tfm_gguf_find_tensor(&g, T_->name);
        const float *src;
        int64_t i;
        if (!gt || gt->t.type != TFM_TYPE_F32 || gt->t.ne[0] != T_->ne0 || gt->t.ne[1] != T_->ne1) {
            fprintf(stderr, "train: %s: tensor %s missing or not F32 [%ld, %ld]\n", path, T_->name, (long)T_->ne0, (long)T_->ne1);
            tr_model_free(m);
            goto done;
        }
        src = (const float *)gt->t.data;
        for (i = 0; i < T_->ne0 * T_->ne1; i++) {
            float f;
            memcpy(&f, src + i, sizeof f); /* GGUF data is only 32-byte aligned by convention */
            m->p[T_->off + (size_t)i] = (real)f;
        }
    }
    rc = 0;
done:
    if (rc) tr_vocab_free(v);
    tfm_gguf_free(&g);
    return rc;
}

/* ===================================================================== generation */

/* Continues ids[0..n) (starting with <s>) up to n_total ids, one full forward per token:
   slow but simple, and it uses exactly the training forward. temp 0: greedy. */
TRDEF int tr_generate(tr_model *m, int *ids, int n, int n_total, double temp, tr_rng *rng) {
    int V = m->c.vocab;
    if (n_total > m->max_t) n_total = m->max_t;
    while (n < n_total) {
        const real *z;
        int best = 0;
        tr_forward(m, ids, NULL, 1, n, NULL);
        z = m->a.logits + (size_t)(n - 1) * V;
        for (int v = 1; v < V; v++) if (z[v] > z[best]) best = v;
        if (temp > 0) {
            double sum = 0, r;
            for (int v = 0; v < V; v++) sum += exp((z[v] - z[best]) / temp);
            r = tr_rng_uniform(rng) * sum;
            for (int v = 0; v < V; v++) {
                r -= exp((z[v] - z[best]) / temp);
                if (r <= 0) { best = v; break; }
            }
        }
        ids[n++] = best;
    }
    return n;
}

TRDEF void tr_print_tokens(FILE *f, const tr_vocab *v, const int *ids, int n) {
    char buf[256];
    int first = 1;
    for (int i = 0; i < n; i++) {
        int k = tr_token_text(v, ids[i], buf, (int)sizeof buf), s = 0;
        if (k == 0) continue;
        if (first && buf[0] == ' ') s = 1; /* the normalizer's space prefix */
        first = 0;
        fwrite(buf + s, 1, (size_t)(k - s), f);
    }
    fputc('\n', f);
}

/* ===================================================================== command line */

typedef struct {
    tr_config c;
    tr_hparams h;
    const char *corpus, *out, *ckpt, *name, *dump, *sample, *prompt;
    int resume, stop_at, quiet, eval_every, ckpt_every, log_every, n_sample, n_dump;
    double temp;
} tr_options;

TRDEF void tr_usage(void) {
    fprintf(stderr,
        "usage: train --corpus KJV.txt [options]          train, write a GGUF\n"
        "       train --dump-logits MODEL.gguf ID...      print this program's logits for ids\n"
        "       train --sample MODEL.gguf [--prompt TEXT] [--temp X] [--n N]\n"
        "training options (defaults are the shipped model's):\n"
        "  --out FILE          GGUF to write (models/tfm-kjv.gguf)\n"
        "  --name NAME         general.name (tfm-kjv)\n"
        "  --ckpt FILE         checkpoint (build/train.ckpt); --resume continues from it\n"
        "  --stop-at N         stop after step N (checkpoint written) to --resume later\n"
        "  --quiet             no progress lines\n"
        "  --seed N --steps N --batch N --warmup N --lr X --min-lr-frac X --wd X --clip X\n"
        "  --dim N --layers N --heads N --kv-heads N --ffn N --vocab N --ctx N\n"
        "  --eval-every N --ckpt-every N --log-every N\n"
        "  --threads N         OpenMP threads (default OMP_NUM_THREADS or all); results do not depend on it.\n"
        "                    On a busy machine use 1, or OMP_WAIT_POLICY=passive: spinning threads stall.\n");
}

TRDEF int tr_parse_args(tr_options *o, int argc, char **argv, int *first_id) {
    int i;
    memset(o, 0, sizeof *o);
    o->out = "models/tfm-kjv.gguf";
    o->ckpt = "build/train.ckpt";
    o->name = "tfm-kjv";
    o->eval_every = 250;
    o->ckpt_every = 250;
    o->log_every = 10;
    o->n_sample = 200;
    o->temp = 0.8;
    *first_id = argc;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
#define TR_STR(flag, field) if (!strcmp(a, flag) && val) { field = val; i++; continue; }
#define TR_INT(flag, field) if (!strcmp(a, flag) && val) { field = atoi(val); i++; continue; }
#define TR_DBL(flag, field) if (!strcmp(a, flag) && val) { field = atof(val); i++; continue; }
        TR_STR("--corpus", o->corpus) TR_STR("--out", o->out) TR_STR("--ckpt", o->ckpt) TR_STR("--name", o->name)
        TR_STR("--sample", o->sample) TR_STR("--prompt", o->prompt)
        TR_INT("--steps", o->h.steps) TR_INT("--batch", o->h.batch) TR_INT("--warmup", o->h.warmup)
        TR_DBL("--lr", o->h.lr) TR_DBL("--min-lr-frac", o->h.min_lr_frac) TR_DBL("--wd", o->h.weight_decay) TR_DBL("--clip", o->h.clip)
        TR_INT("--dim", o->c.dim) TR_INT("--layers", o->c.n_layers) TR_INT("--heads", o->c.n_heads)
        TR_INT("--kv-heads", o->c.n_kv_heads) TR_INT("--ffn", o->c.ffn) TR_INT("--vocab", o->c.vocab) TR_INT("--ctx", o->c.seq_len)
        TR_INT("--eval-every", o->eval_every) TR_INT("--ckpt-every", o->ckpt_every) TR_INT("--log-every", o->log_every)
        TR_INT("--n", o->n_sample) TR_DBL("--temp", o->temp) TR_INT("--stop-at", o->stop_at)
#undef TR_STR
#undef TR_INT
#undef TR_DBL
        if (!strcmp(a, "--seed") && val) { o->h.seed = strtoull(val, NULL, 10); i++; continue; }
        if (!strcmp(a, "--resume")) { o->resume = 1; continue; }
        if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (!strcmp(a, "--threads") && val) {
#ifdef _OPENMP
            omp_set_num_threads(atoi(val) > 0 ? atoi(val) : 1);
#endif
            i++;
            continue;
        }
        if (!strcmp(a, "--dump-logits") && val) {
            /* the ids follow the model path; options may come after them */
            o->dump = val;
            *first_id = i + 2;
            for (i += 2; i < argc && argv[i][0] >= '0' && argv[i][0] <= '9'; i++) o->n_dump++;
            i--;
            continue;
        }
        fprintf(stderr, "train: unknown or incomplete option %s\n", a);
        return -1;
    }
    return 0;
}

TRDEF int tr_dump_logits(const char *path, int n, char **argv, int first) {
    tr_model m;
    tr_vocab v;
    int *ids;
    if (n < 1) { fprintf(stderr, "train: --dump-logits needs token ids\n"); return 1; }
    if (tr_load_gguf(path, &m, &v, 1, 0)) return 1;
    if (n > m.max_t) { fprintf(stderr, "train: more ids than the context (%d)\n", m.max_t); return 1; }
    ids = (int *)tr_alloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) {
        char *end;
        long id = strtol(argv[first + i], &end, 10);
        ids[i] = (int)id;
        if (*end || id < 0 || id >= v.n) { fprintf(stderr, "train: bad token id %s (0..%d)\n", argv[first + i], v.n - 1); return 1; }
    }
    tr_forward(&m, ids, NULL, 1, n, NULL);
    for (int t = 0; t < n; t++) {
        printf("pos %d token %d logits:", t, ids[t]);
        for (int k = 0; k < m.c.vocab; k++) printf(" %.9g", (double)m.a.logits[(size_t)t * m.c.vocab + k]);
        printf("\n");
    }
    free(ids);
    tr_vocab_free(&v);
    tr_model_free(&m);
    return 0;
}

TRDEF int tr_sample_cmd(const tr_options *o) {
    tr_model m;
    tr_vocab v;
    tr_rng rng;
    int *ids, n = 1;
    if (tr_load_gguf(o->sample, &m, &v, 1, 0)) return 1;
    ids = (int *)tr_alloc(((size_t)m.max_t + 3 * (o->prompt ? strlen(o->prompt) : 0) + 4) * sizeof *ids);
    ids[0] = TR_BOS;
    if (o->prompt && *o->prompt) n += tr_encode_text(&v, o->prompt, ids + 1);
    rng.s = o->h.seed ? o->h.seed : 1;
    if (n >= m.max_t) { fprintf(stderr, "train: prompt longer than the context\n"); return 1; }
    n = tr_generate(&m, ids, n, n + o->n_sample, o->temp, &rng);
    tr_print_tokens(stdout, &v, ids + 1, n - 1);
    free(ids);
    tr_vocab_free(&v);
    tr_model_free(&m);
    return 0;
}

/* Progress goes to stderr unless --quiet. */
TRDEF void tr_log(const tr_options *o, const char *fmt, ...) {
    va_list ap;
    if (o->quiet) return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* Held-out loss plus a short greedy sample; returns the loss (nats per token). */
TRDEF double tr_report_eval(const tr_options *o, tr_model *m, const tr_vocab *v, const tr_stream *held, int step) {
    int64_t n_tok;
    double loss = tr_evaluate(m, held, m->max_t, &n_tok);
    int ids[64], n;
    tr_log(o, "eval step %d: held-out loss %.4f ppl %.2f bits/byte %.4f (%ld tokens)\n", step, loss, exp(loss),
           loss * (double)n_tok / (double)held->n_bytes / log(2.0), (long)n_tok);
    if (!o->quiet) {
        ids[0] = TR_BOS;
        n = tr_generate(m, ids, 1, m->max_t < 48 ? m->max_t : 48, 0, NULL);
        fprintf(stderr, "  greedy: ");
        tr_print_tokens(stderr, v, ids + 1, n - 1);
    }
    return loss;
}

/* Corpus -> tokenizer -> encoded train / held-out streams. */
TRDEF int tr_prepare_data(const tr_options *o, int vocab_size, tr_vocab *vocab, tr_stream *train, tr_stream *held) {
    tr_corpus corpus;
    char *buf;
    size_t len;
    int n_held_ch = 0;
    double t0 = tr_now();
    if (tr_read_file(o->corpus, &buf, &len)) { fprintf(stderr, "train: cannot read %s\n", o->corpus); return -1; }
    if (tr_corpus_parse(&corpus, buf, len)) { fprintf(stderr, "train: no verses in %s\n", o->corpus); free(buf); return -1; }
    free(buf);
    for (int ch = 0; ch < corpus.n_chapters; ch++) n_held_ch += tr_is_held_out(ch);
    tr_log(o, "corpus: %lu verses in %d chapters; %d chapters held out (every %dth)\n",
           (unsigned long)corpus.n_verses, corpus.n_chapters, n_held_ch, TR_HOLDOUT_EVERY);
    if (tr_vocab_train(vocab, &corpus, vocab_size)) { tr_corpus_free(&corpus); return -1; }
    tr_stream_encode(train, vocab, &corpus, 0);
    tr_stream_encode(held, vocab, &corpus, 1);
    tr_corpus_free(&corpus);
    tr_log(o, "tokenizer: %d pieces in %.1f s; train %lu tokens (%.2f bytes/token), held-out %lu tokens\n",
           vocab->n, tr_now() - t0, (unsigned long)train->n, (double)train->n_bytes / (double)train->n, (unsigned long)held->n);
    return 0;
}

/* Trains (or resumes), checkpoints, writes the GGUF. Returns 0 on success. */
TRDEF int tr_train(const tr_options *o) {
    tr_vocab vocab;
    tr_stream train, held;
    tr_model m;
    tr_rng rng;
    tr_hparams h = tr_hparams_defaults(o->h);
    tr_config c = tr_config_defaults(o->c);
    int step = 0, T = c.seq_len, B = h.batch, *tok, *tgt, n_acc = 0, rc = 1;
    double t0 = tr_now(), t_log, loss_acc = 0, held_loss;
    const char *err = tr_config_check(&c);
    if (err) { fprintf(stderr, "train: %s\n", err); return 1; }
    if (tr_prepare_data(o, c.vocab, &vocab, &train, &held)) return 1;
    if (train.n < (size_t)T + 1 || held.n == 0 || tr_model_init(&m, c, B, T)) {
        fprintf(stderr, "train: corpus too small for the context, or bad batch shape\n");
        return 1;
    }
    tr_model_randomize(&m, h.seed);
    rng.s = h.seed ^ 0x5eed5eed5eed5eedull;
    tr_log(o, "model: dim %d, %d layers, %d heads (%d KV), ffn %d, vocab %d, context %d: %lu parameters (%.2f MB F32)\n",
           c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn, c.vocab, c.seq_len, (unsigned long)m.n_params, m.n_params * 4.0 / 1e6);
    tr_log(o, "training: %d steps of %d x %d tokens, lr %g (warmup %d, cosine to %g), wd %g, clip %g, seed %lu, %d threads\n",
           h.steps, B, T, h.lr, h.warmup, h.lr * h.min_lr_frac, h.weight_decay, h.clip, (unsigned long)h.seed, tr_threads());
    if (o->resume) {
        step = tr_ckpt_load(o->ckpt, &m, &h, tr_vocab_hash(&vocab), &rng.s);
        if (step < 0) goto done;
        tr_log(o, "resumed from %s at step %d\n", o->ckpt, step);
    }
    tok = (int *)tr_alloc((size_t)B * T * sizeof *tok);
    tgt = (int *)tr_alloc((size_t)B * T * sizeof *tgt);
    t_log = tr_now();
    for (; step < h.steps; step++) {
        int n, last = step + 1 == h.steps || step + 1 == o->stop_at;
        double loss, gnorm, lr = tr_lr_at(&h, step);
        tr_sample_batch(&train, &rng, B, T, tok, tgt);
        loss = tr_forward(&m, tok, tgt, B, T, &n) / n;
        tr_backward(&m, tok, B, T);
        gnorm = tr_grad_norm(&m);
        tr_adamw(&m, &h, step, lr, gnorm);
        loss_acc += loss;
        n_acc++;
        if ((step + 1) % o->log_every == 0 || last) {
            double now = tr_now();
            tr_log(o, "step %5d/%d loss %.4f lr %.2e gnorm %.3f %.0f tok/s %.0f s\n", step + 1, h.steps, loss_acc / n_acc, lr,
                   gnorm, (double)n_acc * B * T / (now - t_log), now - t0);
            loss_acc = 0;
            n_acc = 0;
            t_log = now;
        }
        if (((o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0) || last) &&
            tr_ckpt_save(o->ckpt, &m, &h, step + 1, rng.s, tr_vocab_hash(&vocab))) {
            fprintf(stderr, "train: cannot write checkpoint %s\n", o->ckpt);
            if (last) goto done_buffers;
        }
        if (step + 1 == o->stop_at) {
            tr_log(o, "stopped after step %d; continue with --resume\n", step + 1);
            rc = 0;
            goto done_buffers;
        }
        if (o->eval_every > 0 && (step + 1) % o->eval_every == 0 && step + 1 != h.steps) {
            tr_report_eval(o, &m, &vocab, &held, step + 1);
            t_log = tr_now();
        }
    }
    held_loss = tr_report_eval(o, &m, &vocab, &held, step);
    if (tr_save_gguf(&m, &vocab, o->name, o->out)) {
        fprintf(stderr, "train: cannot write %s\n", o->out);
        goto done_buffers;
    }
    tr_log(o, "wrote %s (%lu parameters) in %.0f s; held-out loss %.4f, perplexity %.2f\n", o->out,
           (unsigned long)m.n_params, tr_now() - t0, held_loss, exp(held_loss));
    rc = 0;
done_buffers:
    free(tok);
    free(tgt);
done:
    tr_model_free(&m);
    tr_stream_free(&train);
    tr_stream_free(&held);
    tr_vocab_free(&vocab);
    return rc;
}

#ifndef TRAIN_NO_MAIN
int main(int argc, char **argv) {
    tr_options o;
    int first_id;
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { tr_usage(); return 0; }
    if (tr_parse_args(&o, argc, argv, &first_id)) { tr_usage(); return 2; }
    if (o.dump) return tr_dump_logits(o.dump, o.n_dump, argv, first_id);
    if (o.sample) return tr_sample_cmd(&o);
    if (!o.corpus) { tr_usage(); return 2; }
    return tr_train(&o);
}
#endif
