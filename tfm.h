/* tfm.h - v0.1 - decoder-only transformer inference on CPUs, one header, MIT license (see end)

   Do this:
       #define TFM_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the implementation.
   Every other file includes it without the define and sees only declarations.

   WHAT IT DOES
     Runs Llama-family (Llama, Mistral, TinyLlama), Qwen2, GPT-2 and OPT checkpoints stored as
     GGUF (v2, v3) on a CPU: loading (zero copy from mmap, a memory buffer or flash), the forward
     pass, a KV cache bounded by a token budget and pruned by A2SF / H2O / a window, the tokenizer
     the file names, sampling and beam search.

   DOES NOT
     - run encoder or encoder-decoder models, mixture-of-experts, or multimodal projectors;
     - run on GPUs;
     - convert checkpoints (tools/convert and tools/llama2c-to-gguf do that);
     - support big-endian hosts (GGUF is little-endian; loads are refused there).

   DATA FLOW
       bytes -> tfm_gguf (index, zero copy) -> tfm_model (weights + vocabulary)
             -> tfm_session (KV cache + scratch for n_seq sequences) -> logits
             -> tfm_sampler / tfm_beam_search -> tokens -> tfm_token_to_piece -> text

   MEMORY
     Every stateful object follows one pattern:
         tfm_X_heap_size(config..., &bytes)          how much memory it needs
         tfm_X_init_preallocated(obj, ..., heap, n)  uses the caller's memory (static RAM)
         tfm_X_init(obj, ...)                        the two above plus one TFM_MALLOC
     After init nothing allocates; generation runs in the memory sized up front.

   ERRORS
     Every fallible call returns tfm_result (0 = TFM_OK, negative = error kind);
     tfm_result_string() names it. Objects keep a one-line detail in their `error` field.
     The library never prints, never exits, never aborts.

   BUILD OPTIONS (define before including the implementation)
     TFM_STATIC             all functions static (private copy in one translation unit)
     TFM_NO_STDIO           no files, no mmap: load from memory only (firmware)
     TFM_NO_SIMD            plain C kernels only
     TFM_MALLOC/TFM_FREE    allocator (define both or neither)
     TFM_ASSERT(x)          internal consistency checks (default: none)
     TFM_EXPF/TFM_LOGF/TFM_SQRTF/TFM_POWF/TFM_COSF/TFM_SINF/TFM_TANHF   libm replacements
     OpenMP (-fopenmp)      threads over matrix rows and attention heads; results are the same
                            up to float rounding order

   LIMITS
     Up to TFM_MAX_LAYERS layers; head dimension up to TFM_MAX_HEAD_DIM; quantized row lengths
     must be multiples of 32 (as GGUF requires). Sizes are size_t/int64_t throughout; every
     size read from a file is checked against the buffer before use.
*/
#ifndef TFM_H
#define TFM_H

#include <stddef.h>
#include <stdint.h>

#ifndef TFMDEF
#ifdef TFM_STATIC
#define TFMDEF static
#else
#define TFMDEF extern
#endif
#endif

#ifndef TFM_MAX_LAYERS
#define TFM_MAX_LAYERS 256
#endif
#ifndef TFM_MAX_HEAD_DIM
#define TFM_MAX_HEAD_DIM 512
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================== results */

#define TFM_RESULT_LIST(X) \
    X(TFM_OK,              0, "ok") \
    X(TFM_ERR_ARG,        -1, "invalid argument") \
    X(TFM_ERR_NOMEM,      -2, "out of memory") \
    X(TFM_ERR_IO,         -3, "cannot read file") \
    X(TFM_ERR_FORMAT,     -4, "malformed GGUF") \
    X(TFM_ERR_TRUNCATED,  -5, "file truncated") \
    X(TFM_ERR_UNSUPPORTED,-6, "unsupported model or type") \
    X(TFM_ERR_MISSING,    -7, "required key or tensor missing") \
    X(TFM_ERR_SHAPE,      -8, "tensor shape does not match the model") \
    X(TFM_ERR_CONTEXT,    -9, "context length exceeded") \
    X(TFM_ERR_TOKEN,     -10, "token id out of range") \
    X(TFM_ERR_BUFFER,    -11, "buffer too small")

typedef enum {
#define TFM__RESULT_ENUM(name, value, text) name = value,
    TFM_RESULT_LIST(TFM__RESULT_ENUM)
#undef TFM__RESULT_ENUM
    TFM_RESULT_END_ = 1
} tfm_result;

TFMDEF const char *tfm_result_string(tfm_result r);

/* ===================================================================== tensors and types */

/* Weight types, numbered as GGUF numbers them; block layouts bit for bit as GGUF stores them. */
typedef enum {
    TFM_TYPE_F32 = 0,
    TFM_TYPE_F16 = 1,
    TFM_TYPE_Q4_0 = 2,   /* 32 values: fp16 scale d, 16 bytes of nibbles; x = d * (q - 8) */
    TFM_TYPE_Q8_0 = 8,   /* 32 values: fp16 scale d, 32 int8; x = d * q */
    TFM_TYPE_BF16 = 30
} tfm_type;

#define TFM_QK 32 /* values per quantized block */
typedef struct { uint16_t d; uint8_t qs[TFM_QK / 2]; } tfm_block_q4_0; /* low nibbles: values 0..15, high: 16..31 */
typedef struct { uint16_t d; int8_t qs[TFM_QK]; } tfm_block_q8_0;

/* A view of weights someone else owns. ne[0] is the contiguous dimension (GGUF order): a matrix
   with ne = {n_in, n_out} has n_out rows of n_in values, and computes y[n_out] = W x[n_in]. */
typedef struct {
    tfm_type type;
    int32_t n_dims;
    int64_t ne[4];      /* unused dimensions are 1 */
    const void *data;   /* NULL: tensor absent */
} tfm_tensor;

TFMDEF const char *tfm_type_name(tfm_type t);
/* Bytes of one row of n values (0 if the type is unknown or n does not fit its blocks). */
TFMDEF size_t tfm_type_row_size(tfm_type t, int64_t n);

TFMDEF float tfm_fp16_to_fp32(uint16_t h);
TFMDEF uint16_t tfm_fp32_to_fp16(float f);     /* round to nearest even */
TFMDEF float tfm_bf16_to_fp32(uint16_t h);
TFMDEF uint16_t tfm_fp32_to_bf16(float f);     /* round to nearest even, NaN kept */
/* Converts n floats (a multiple of 32 for quantized types) into `type`'s row layout. */
TFMDEF tfm_result tfm_quantize_row(tfm_type type, const float *x, void *dst, int64_t n);
TFMDEF tfm_result tfm_dequantize_row(tfm_type type, const void *src, float *y, int64_t n);

/* ===================================================================== GGUF */

typedef struct { const char *ptr; size_t len; } tfm_str; /* not NUL-terminated */

typedef enum {
    TFM_GGUF_U8 = 0, TFM_GGUF_I8, TFM_GGUF_U16, TFM_GGUF_I16, TFM_GGUF_U32, TFM_GGUF_I32,
    TFM_GGUF_F32, TFM_GGUF_BOOL, TFM_GGUF_STRING, TFM_GGUF_ARRAY, TFM_GGUF_U64, TFM_GGUF_I64,
    TFM_GGUF_F64, TFM_GGUF_TYPE_COUNT
} tfm_gguf_type;

typedef struct {
    tfm_str key;
    tfm_gguf_type type;       /* for arrays: TFM_GGUF_ARRAY */
    tfm_gguf_type arr_type;   /* element type of an array */
    uint64_t arr_n;           /* element count of an array */
    const uint8_t *value;     /* the value's bytes (for a string: its 8-byte length first;
                                 for an array: the first element) */
} tfm_gguf_kv;

typedef struct {
    tfm_str name;
    tfm_tensor t;
    uint64_t offset;          /* from the start of the tensor data section */
    size_t nbytes;
} tfm_gguf_tensor;

typedef struct {
    const uint8_t *data;      /* the whole file, borrowed (or mapped, see tfm_gguf_open) */
    size_t size;
    uint32_t version;
    size_t alignment;
    size_t n_kv;
    tfm_gguf_kv *kv;          /* [n_kv] */
    size_t n_tensors;
    tfm_gguf_tensor *tensors; /* [n_tensors] */
    size_t data_offset;       /* start of the tensor data section */
    char error[192];
    /* private */
    void *heap_;
    void *map_;
    size_t map_size_;
} tfm_gguf;

TFMDEF tfm_result tfm_gguf_heap_size(const void *data, size_t size, size_t *bytes);
TFMDEF tfm_result tfm_gguf_init_preallocated(tfm_gguf *g, const void *data, size_t size, void *heap, size_t heap_size);
TFMDEF tfm_result tfm_gguf_init(tfm_gguf *g, const void *data, size_t size);
#ifndef TFM_NO_STDIO
TFMDEF tfm_result tfm_gguf_open(tfm_gguf *g, const char *path); /* mmap where available */
#endif
TFMDEF void tfm_gguf_free(tfm_gguf *g);

TFMDEF const tfm_gguf_kv *tfm_gguf_find(const tfm_gguf *g, const char *key);
TFMDEF const tfm_gguf_tensor *tfm_gguf_find_tensor(const tfm_gguf *g, const char *name);
/* Typed getters: return 1 and set *out if the key exists with a compatible type, else 0. */
TFMDEF int tfm_gguf_get_int(const tfm_gguf *g, const char *key, int64_t *out);   /* any integer type */
TFMDEF int tfm_gguf_get_float(const tfm_gguf *g, const char *key, double *out);  /* f32/f64/int */
TFMDEF int tfm_gguf_get_bool(const tfm_gguf *g, const char *key, int *out);
TFMDEF int tfm_gguf_get_str(const tfm_gguf *g, const char *key, tfm_str *out);
/* Element i of an array (string arrays: walks the array; O(i)). */
TFMDEF int tfm_gguf_arr_str(const tfm_gguf_kv *kv, uint64_t i, tfm_str *out);
TFMDEF int tfm_gguf_arr_float(const tfm_gguf_kv *kv, uint64_t i, double *out);
TFMDEF int tfm_gguf_arr_int(const tfm_gguf_kv *kv, uint64_t i, int64_t *out);

/* ===================================================================== tokenizer (tfm_vocab) */
/* >>tokenizer-api-begin (owned by the tokenizer section) */
/* >>tokenizer-api-end */

#ifdef __cplusplus
}
#endif
#endif /* TFM_H */

/* ######################################################################################### */
/* >>implementation                                                                          */
/* ######################################################################################### */
#ifdef TFM_IMPLEMENTATION
#ifndef TFM__IMPLEMENTED
#define TFM__IMPLEMENTED

#include <string.h>
#include <math.h>

#if defined(TFM_MALLOC) != defined(TFM_FREE)
#error "define both TFM_MALLOC and TFM_FREE, or neither"
#endif
#ifndef TFM_MALLOC
#include <stdlib.h>
#define TFM_MALLOC(n) malloc(n)
#define TFM_FREE(p) free(p)
#endif
#ifndef TFM_ASSERT
#define TFM_ASSERT(x) ((void)0)
#endif
#ifndef TFM_EXPF
#define TFM_EXPF expf
#endif
#ifndef TFM_LOGF
#define TFM_LOGF logf
#endif
#ifndef TFM_SQRTF
#define TFM_SQRTF sqrtf
#endif
#ifndef TFM_POWF
#define TFM_POWF powf
#endif
#ifndef TFM_COSF
#define TFM_COSF cosf
#endif
#ifndef TFM_SINF
#define TFM_SINF sinf
#endif
#ifndef TFM_TANHF
#define TFM_TANHF tanhf
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef __cplusplus
#define TFM__CAST(T, x) static_cast<T>(x)
#else
#define TFM__CAST(T, x) ((T)(x))
#endif

/* ===================================================================== >>utilities */

TFMDEF const char *tfm_result_string(tfm_result r) {
    switch (r) {
#define TFM__RESULT_CASE(name, value, text) case name: return text;
        TFM_RESULT_LIST(TFM__RESULT_CASE)
#undef TFM__RESULT_CASE
    default: return "unknown result";
    }
}

/* Writes "prefix: detail" into an object's error field without stdio. */
static void tfm__set_error(char *dst, size_t cap, const char *a, const char *b, size_t b_len) {
    size_t n = 0;
    if (!dst || cap == 0) return;
    while (a && *a && n + 1 < cap) dst[n++] = *a++;
    while (b && b_len-- && n + 1 < cap) dst[n++] = *b++;
    dst[n] = 0;
}

static void tfm__append_u64(char *dst, size_t cap, uint64_t v) {
    char tmp[24];
    size_t n = 0, len = strlen(dst);
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n && len + 1 < cap) dst[len++] = tmp[--n];
    dst[len] = 0;
}

static void tfm__append(char *dst, size_t cap, const char *s, size_t n) {
    size_t len = strlen(dst);
    while (n-- && *s && len + 1 < cap) dst[len++] = *s++;
    dst[len] = 0;
}

static size_t tfm__align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* Carves aligned pieces out of one caller-provided block (or only measures when base is NULL). */
typedef struct { unsigned char *base; size_t used, cap; } tfm__arena;

static void *tfm__arena_take(tfm__arena *a, size_t bytes) {
    size_t start = tfm__align_up(a->used, 64);
    void *p;
    if (bytes > SIZE_MAX - start - 64) { a->used = SIZE_MAX; return NULL; }
    a->used = start + bytes;
    if (!a->base || a->used > a->cap) return NULL;
    p = a->base + start;
    return p;
}

/* Multiplies sizes, reporting overflow instead of wrapping. */
static int tfm__mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* ===================================================================== >>types (fp16, bf16, blocks) */

TFMDEF float tfm_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    float f;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 112u) << 23) | (man << 13);
    memcpy(&f, &bits, 4);
    return f;
}

TFMDEF uint16_t tfm_fp32_to_fp16(float f) {
    uint32_t x, sign, mag;
    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000u;
    mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u : 0));
    if (mag >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504: inf */
    if (mag < 0x38800000u) {
        /* subnormal half: value = mag * 2^24 rounded to an integer, nearest even */
        uint32_t shift, man, r, half;
        if (mag < 0x33000000u) return (uint16_t)sign; /* below half the smallest subnormal */
        shift = 126u - (mag >> 23);                /* 14 .. 24 */
        man = (mag & 0x7fffffu) | 0x800000u;
        r = man >> shift;
        half = 1u << (shift - 1);
        if ((man & ((half << 1) - 1)) > half || ((man & ((half << 1) - 1)) == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    {
        uint32_t r = mag - 0x38000000u; /* rebias exponent 127 -> 15 (still 23-bit mantissa) */
        uint32_t low = r & 0x1fffu;
        r >>= 13;
        if (low > 0x1000u || (low == 0x1000u && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
}

TFMDEF float tfm_bf16_to_fp32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

TFMDEF uint16_t tfm_fp32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

TFMDEF const char *tfm_type_name(tfm_type t) {
    switch (t) {
    case TFM_TYPE_F32: return "F32";
    case TFM_TYPE_F16: return "F16";
    case TFM_TYPE_BF16: return "BF16";
    case TFM_TYPE_Q8_0: return "Q8_0";
    case TFM_TYPE_Q4_0: return "Q4_0";
    default: return "unknown";
    }
}

TFMDEF size_t tfm_type_row_size(tfm_type t, int64_t n) {
    if (n <= 0 || (uint64_t)n > SIZE_MAX / 8) return 0;
    switch (t) {
    case TFM_TYPE_F32: return (size_t)n * 4;
    case TFM_TYPE_F16:
    case TFM_TYPE_BF16: return (size_t)n * 2;
    case TFM_TYPE_Q8_0: return n % TFM_QK ? 0 : (size_t)(n / TFM_QK) * sizeof(tfm_block_q8_0);
    case TFM_TYPE_Q4_0: return n % TFM_QK ? 0 : (size_t)(n / TFM_QK) * sizeof(tfm_block_q4_0);
    default: return 0;
    }
}

/* Rounds half away from zero, as the reference engine's quantizers do. */
static int tfm__round(float x) { return (int)(x >= 0 ? x + 0.5f : x - 0.5f); }

static void tfm__quantize_q8_0(const float *x, tfm_block_q8_0 *b, int64_t n) {
    int64_t i;
    int j;
    for (i = 0; i < n / TFM_QK; i++, x += TFM_QK) {
        float amax = 0, d, id;
        for (j = 0; j < TFM_QK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        d = amax / 127.0f;
        id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = tfm_fp32_to_fp16(d);
        for (j = 0; j < TFM_QK; j++) b[i].qs[j] = (int8_t)tfm__round(x[j] * id);
    }
}

/* Q4_0 as GGUF writers make it: the value of largest magnitude maps to -8. */
static void tfm__quantize_q4_0(const float *x, tfm_block_q4_0 *b, int64_t n) {
    int64_t i;
    int j;
    for (i = 0; i < n / TFM_QK; i++, x += TFM_QK) {
        float amax = 0, max = 0, d, id;
        for (j = 0; j < TFM_QK; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
        d = max / -8.0f;
        id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = tfm_fp32_to_fp16(d);
        for (j = 0; j < TFM_QK / 2; j++) {
            int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + TFM_QK / 2] * id + 8.5f);
            lo = lo > 15 ? 15 : lo < 0 ? 0 : lo;
            hi = hi > 15 ? 15 : hi < 0 ? 0 : hi;
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

TFMDEF tfm_result tfm_quantize_row(tfm_type type, const float *x, void *dst, int64_t n) {
    int64_t i;
    if (!x || !dst || tfm_type_row_size(type, n) == 0) return TFM_ERR_ARG;
    switch (type) {
    case TFM_TYPE_F32: memcpy(dst, x, (size_t)n * 4); break;
    case TFM_TYPE_F16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = tfm_fp32_to_fp16(x[i]); break;
    case TFM_TYPE_BF16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = tfm_fp32_to_bf16(x[i]); break;
    case TFM_TYPE_Q8_0: tfm__quantize_q8_0(x, (tfm_block_q8_0 *)dst, n); break;
    case TFM_TYPE_Q4_0: tfm__quantize_q4_0(x, (tfm_block_q4_0 *)dst, n); break;
    default: return TFM_ERR_UNSUPPORTED;
    }
    return TFM_OK;
}

TFMDEF tfm_result tfm_dequantize_row(tfm_type type, const void *src, float *y, int64_t n) {
    int64_t i;
    int j;
    if (!src || !y || tfm_type_row_size(type, n) == 0) return TFM_ERR_ARG;
    switch (type) {
    case TFM_TYPE_F32: memcpy(y, src, (size_t)n * 4); break;
    case TFM_TYPE_F16: for (i = 0; i < n; i++) y[i] = tfm_fp16_to_fp32(((const uint16_t *)src)[i]); break;
    case TFM_TYPE_BF16: for (i = 0; i < n; i++) y[i] = tfm_bf16_to_fp32(((const uint16_t *)src)[i]); break;
    case TFM_TYPE_Q8_0: {
        const tfm_block_q8_0 *b = (const tfm_block_q8_0 *)src;
        for (i = 0; i < n / TFM_QK; i++) {
            float d = tfm_fp16_to_fp32(b[i].d);
            for (j = 0; j < TFM_QK; j++) y[i * TFM_QK + j] = d * (float)b[i].qs[j];
        }
        break;
    }
    case TFM_TYPE_Q4_0: {
        const tfm_block_q4_0 *b = (const tfm_block_q4_0 *)src;
        for (i = 0; i < n / TFM_QK; i++) {
            float d = tfm_fp16_to_fp32(b[i].d);
            for (j = 0; j < TFM_QK / 2; j++) {
                y[i * TFM_QK + j] = d * (float)((b[i].qs[j] & 15) - 8);
                y[i * TFM_QK + j + TFM_QK / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
            }
        }
        break;
    }
    default: return TFM_ERR_UNSUPPORTED;
    }
    return TFM_OK;
}

/* ===================================================================== >>tokenizer */
/* >>tokenizer-impl-begin */
/* >>tokenizer-impl-end */

#endif /* TFM__IMPLEMENTED */
#endif /* TFM_IMPLEMENTATION */

/*
   LICENSE (MIT)
   Copyright (c) 2026 the tfm.h authors
   Permission is hereby granted, free of charge, to any person obtaining a copy of this software
   and associated documentation files (the "Software"), to deal in the Software without
   restriction, including without limitation the rights to use, copy, modify, merge, publish,
   distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
   Software is furnished to do so, subject to the following conditions:
   The above copyright notice and this permission notice shall be included in all copies or
   substantial portions of the Software.
   THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
   BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
   NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
   DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
   OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
*/
