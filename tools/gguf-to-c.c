/* gguf-to-c - turn a GGUF checkpoint into something a firmware image can link: a C const byte
   array (default) or an assembler file that .incbin's the GGUF. Optionally re-encodes the weight
   matrices as Q8_0 first, so a model four times smaller fits in flash.

   usage: gguf-to-c [options] in.gguf out.c|out.S
     --name NAME       symbol of the array (default tfm_model_gguf); NAME_size holds its length
     --q8_0            re-encode every 2-D F32/F16/BF16 matrix whose rows are a multiple of 32
                       values as Q8_0 (others keep their type); metadata is copied byte for byte
     --gguf-out PATH   also write the GGUF that the array holds (e.g. the Q8_0 one, for a host run)
     --asm             write an assembler file (.S, run through the C preprocessor) that
                       .incbin's PATH from --gguf-out, instead of a C array
     --prompt-ids IDS  also emit NAME_prompt[] (int32_t) and NAME_prompt_len: token ids (space or
                       comma separated), so a board can start generating without a tokenizer
     --prompt TEXT     the same, tokenized here with the model's vocabulary (BOS as it says)

   Alignment: tfm.h reads weights in place. GGUF places every tensor at a multiple of its
   alignment (32 by default, general.alignment if set) from the start of the file, and F32 rows
   are read with word loads (a Cortex-M faults on an unaligned VLDR), so the array itself is
   aligned to max(32, general.alignment); then every tensor is too. */
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#include "gguf_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROMPT 4096

typedef struct {
    const char *in, *out, *name, *gguf_out, *prompt_text;
    int q8_0, assembler;
    int32_t prompt[MAX_PROMPT];
    size_t n_prompt;
} options;

/* "1 403, 407" -> ids; 0 on anything else. */
static int parse_ids(const char *s, options *o) {
    while (*s) {
        char *end;
        long v;
        if (*s == ' ' || *s == ',') { s++; continue; }
        v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX || o->n_prompt == MAX_PROMPT) return 0;
        o->prompt[o->n_prompt++] = (int32_t)v;
        s = end;
    }
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: gguf-to-c [--name NAME] [--q8_0] [--gguf-out PATH] [--asm] [--prompt-ids IDS | --prompt TEXT] in.gguf out.c|out.S\n");
    return 2;
}

static int parse_args(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->name = "tfm_model_gguf";
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--q8_0")) o->q8_0 = 1;
        else if (!strcmp(argv[i], "--asm")) o->assembler = 1;
        else if (!strcmp(argv[i], "--name") && i + 1 < argc) o->name = argv[++i];
        else if (!strcmp(argv[i], "--gguf-out") && i + 1 < argc) o->gguf_out = argv[++i];
        else if (!strcmp(argv[i], "--prompt-ids") && i + 1 < argc) { if (!parse_ids(argv[++i], o)) return 0; }
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) o->prompt_text = argv[++i];
        else if (argv[i][0] == '-') return 0;
        else if (!o->in) o->in = argv[i];
        else if (!o->out) o->out = argv[i];
        else return 0;
    }
    if (!o->in || !o->out || (o->assembler && !o->gguf_out) || (o->prompt_text && o->n_prompt)) return 0;
    for (i = 0; o->name[i]; i++) {
        char c = o->name[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9'))) return 0;
    }
    return 1;
}

static int quantizable(const tfm_gguf_tensor *t) {
    return t->t.n_dims == 2 && t->t.data && t->t.ne[0] % TFM_QK == 0 &&
           (t->t.type == TFM_TYPE_F32 || t->t.type == TFM_TYPE_F16 || t->t.type == TFM_TYPE_BF16);
}

/* The bytes of metadata pair i as the file holds them: its key (with the length before it) up to
   the next key, or up to the first tensor description for the last pair. */
static int kv_span(const tfm_gguf *g, size_t i, const uint8_t **start, size_t *len) {
    const uint8_t *a = (const uint8_t *)g->kv[i].key.ptr - 8, *b;
    if (i + 1 < g->n_kv) b = (const uint8_t *)g->kv[i + 1].key.ptr - 8;
    else if (g->n_tensors) b = (const uint8_t *)g->tensors[0].name.ptr - 8;
    else return 0;
    if (b <= a) return 0;
    *start = a;
    *len = (size_t)(b - a);
    return 1;
}

/* Writes a GGUF with the same metadata and the tensors re-encoded as Q8_0 where possible. */
static int write_q8_0(const tfm_gguf *g, const char *path) {
    gw_writer w;
    void **bufs = (void **)calloc(g->n_tensors + 1, sizeof *bufs);
    size_t i, n_q = 0, before = 0, after = 0;
    int rc = -1;
    float *row = NULL;
    gw_init(&w);
    w.alignment = (uint32_t)g->alignment;
    if (!bufs) goto done;
    for (i = 0; i < g->n_kv; i++) {
        const uint8_t *p;
        size_t len;
        if (!kv_span(g, i, &p, &len)) { fprintf(stderr, "gguf-to-c: cannot locate metadata pair %zu\n", i); goto done; }
        gw__put(&w, p, len);
        w.n_kv++;
    }
    for (i = 0; i < g->n_tensors; i++) {
        const tfm_gguf_tensor *t = &g->tensors[i];
        char name[128];
        const void *data = t->t.data;
        int type = (int)t->t.type;
        if (t->name.len >= sizeof name || !t->t.data) { fprintf(stderr, "gguf-to-c: tensor %zu: name too long or unknown type\n", i); goto done; }
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = 0;
        before += t->nbytes;
        if (quantizable(t)) {
            int64_t r, n_rows = t->t.ne[1], in = t->t.ne[0];
            size_t qrow = tfm_type_row_size(TFM_TYPE_Q8_0, in), srow = tfm_type_row_size(t->t.type, in);
            unsigned char *q = (unsigned char *)malloc(qrow * (size_t)n_rows);
            free(row);
            row = (float *)malloc((size_t)in * sizeof(float));
            if (!q || !row) { free(q); goto done; }
            bufs[i] = q;
            for (r = 0; r < n_rows; r++) {
                tfm_dequantize_row(t->t.type, (const unsigned char *)t->t.data + (size_t)r * srow, row, in);
                tfm_quantize_row(TFM_TYPE_Q8_0, row, q + (size_t)r * qrow, in);
            }
            data = q;
            type = TFM_TYPE_Q8_0;
            n_q++;
        }
        if (gw_tensor(&w, name, type, (uint32_t)t->t.n_dims, t->t.ne, data) != 0) goto done;
        after += (size_t)w.tensors[w.n_tensors - 1].nbytes;
    }
    if (gw_write(&w, path) != 0) { fprintf(stderr, "gguf-to-c: cannot write %s\n", path); goto done; }
    fprintf(stderr, "gguf-to-c: %zu of %zu tensors as Q8_0, tensor bytes %zu -> %zu\n", n_q, g->n_tensors, before, after);
    rc = 0;
done:
    if (bufs) for (i = 0; i < g->n_tensors; i++) free(bufs[i]);
    free(bufs);
    free(row);
    gw_free(&w);
    return rc;
}

/* Tokenizes --prompt with the model's own vocabulary. */
static int tokenize_prompt(const tfm_gguf *g, options *o) {
    tfm_vocab v;
    tfm_result r = tfm_vocab_init(&v, g);
    if (r != TFM_OK) { fprintf(stderr, "gguf-to-c: no vocabulary to tokenize the prompt: %s\n", v.error); return -1; }
    r = tfm_tokenize(&v, o->prompt_text, strlen(o->prompt_text), 1, o->prompt, MAX_PROMPT, &o->n_prompt);
    tfm_vocab_free(&v);
    if (r != TFM_OK) { fprintf(stderr, "gguf-to-c: cannot tokenize the prompt: %s\n", tfm_result_string(r)); return -1; }
    return 0;
}

static int read_file(const char *path, unsigned char **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    long n;
    *data = NULL;
    if (!f) return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return -1; }
    *data = (unsigned char *)malloc((size_t)n);
    if (!*data || fread(*data, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(*data); *data = NULL; return -1; }
    fclose(f);
    *size = (size_t)n;
    return 0;
}

static void write_header_comment(FILE *f, const options *o, size_t size, size_t align) {
    fprintf(f, "/* Generated by tools/gguf-to-c from %s%s: %zu bytes, aligned to %zu. Do not edit. */\n",
            o->in, o->q8_0 ? " (matrices re-encoded as Q8_0)" : "", size, align);
}

static int write_c(const options *o, const unsigned char *data, size_t size, size_t align) {
    FILE *f = fopen(o->out, "w");
    size_t i;
    int ok = 1;
    if (!f) return -1;
    write_header_comment(f, o, size, align);
    fprintf(f, "#include <stddef.h>\n#include <stdint.h>\n"
               "#if defined(__GNUC__) || defined(__clang__)\n#define GGUF_TO_C_ALIGN __attribute__((aligned(%zu)))\n"
               "#else\n#error \"add your compiler's way to align an array to %zu bytes\"\n#endif\n", align, align);
    fprintf(f, "extern const unsigned char %s[%zu];\nextern const size_t %s_size;\n", o->name, size, o->name);
    fprintf(f, "const size_t %s_size = %zu;\n", o->name, size);
    fprintf(f, "const unsigned char %s[%zu] GGUF_TO_C_ALIGN = {\n", o->name, size);
    for (i = 0; i < size; i++) {
        fprintf(f, "%u,", data[i]);
        if (i % 32 == 31) fputc('\n', f);
    }
    fprintf(f, "\n};\n");
    fprintf(f, "extern const int32_t %s_prompt[];\nextern const size_t %s_prompt_len;\n", o->name, o->name);
    fprintf(f, "const size_t %s_prompt_len = %zu;\nconst int32_t %s_prompt[%zu] = {", o->name, o->n_prompt, o->name, o->n_prompt ? o->n_prompt : 1);
    for (i = 0; i < o->n_prompt; i++) fprintf(f, "%s%ld", i ? ", " : "", (long)o->prompt[i]);
    fprintf(f, "%s};\n", o->n_prompt ? "" : "0");
    ok = !ferror(f);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Assembler for GNU as through cpp (a .S file): the section flag syntax and the .incbin
   directive are the same on ARM and x86, only the size word differs. */
static int write_asm(const options *o, size_t size, size_t align) {
    FILE *f = fopen(o->out, "w");
    size_t i;
    int ok;
    if (!f) return -1;
    write_header_comment(f, o, size, align);
    fprintf(f, "    .section .rodata.%s, \"a\"\n    .balign %zu\n    .global %s\n%s:\n    .incbin \"%s\"\n%s_end:\n",
            o->name, align, o->name, o->name, o->gguf_out, o->name);
    fprintf(f, "    .balign 8\n    .global %s_size\n%s_size:\n#if __SIZEOF_SIZE_T__ == 8\n    .quad %s_end - %s\n#else\n    .long %s_end - %s\n#endif\n",
            o->name, o->name, o->name, o->name, o->name, o->name);
    fprintf(f, "    .balign 4\n    .global %s_prompt\n%s_prompt:\n    .long ", o->name, o->name);
    for (i = 0; i < o->n_prompt; i++) fprintf(f, "%s%ld", i ? ", " : "", (long)o->prompt[i]);
    fprintf(f, "%s\n    .balign 8\n    .global %s_prompt_len\n%s_prompt_len:\n#if __SIZEOF_SIZE_T__ == 8\n    .quad %zu\n#else\n    .long %zu\n#endif\n",
            o->n_prompt ? "" : "0", o->name, o->name, o->n_prompt, o->n_prompt);
    /* no executable stack wanted (GNU linkers warn when an object does not say so) */
    fprintf(f, "#if defined(__ELF__) && defined(__linux__)\n    .section .note.GNU-stack, \"\", %%progbits\n#endif\n");
    ok = !ferror(f);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int main(int argc, char **argv) {
    options o;
    tfm_gguf g;
    unsigned char *data = NULL;
    size_t size = 0, align;
    tfm_result r;
    if (!parse_args(argc, argv, &o)) return usage();
    r = tfm_gguf_open(&g, o.in);
    if (r != TFM_OK) { fprintf(stderr, "gguf-to-c: %s: %s\n", tfm_result_string(r), g.error); return 1; }
    align = g.alignment > 32 ? g.alignment : 32;
    if (o.prompt_text && tokenize_prompt(&g, &o) != 0) { tfm_gguf_free(&g); return 1; }
    if (o.q8_0) {
        char tmp[1024];
        const char *path = o.gguf_out;
        if (!path) { /* next to the output, removed again */
            if (strlen(o.out) + 10 > sizeof tmp) return usage();
            sprintf(tmp, "%s.tmp.gguf", o.out);
            path = tmp;
        }
        if (write_q8_0(&g, path) != 0 || read_file(path, &data, &size) != 0) { tfm_gguf_free(&g); return 1; }
        if (!o.gguf_out) remove(path);
    } else {
        if (read_file(o.in, &data, &size) != 0) { fprintf(stderr, "gguf-to-c: cannot read %s\n", o.in); tfm_gguf_free(&g); return 1; }
        if (o.gguf_out) {
            FILE *f = fopen(o.gguf_out, "wb");
            if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) { fprintf(stderr, "gguf-to-c: cannot write %s\n", o.gguf_out); return 1; }
        }
    }
    tfm_gguf_free(&g);
    {   /* what we emit must load: the same reader the firmware uses */
        tfm_gguf check;
        r = tfm_gguf_init(&check, data, size);
        if (r != TFM_OK) { fprintf(stderr, "gguf-to-c: output does not parse: %s\n", check.error); free(data); return 1; }
        tfm_gguf_free(&check);
    }
    if ((o.assembler ? write_asm(&o, size, align) : write_c(&o, data, size, align)) != 0) {
        fprintf(stderr, "gguf-to-c: cannot write %s\n", o.out);
        free(data);
        return 1;
    }
    free(data);
    return 0;
}
