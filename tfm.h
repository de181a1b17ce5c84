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

/* ===================================================================== >>gguf */

typedef struct { const uint8_t *p; size_t n, at; int bad; } tfm__reader;

static int tfm__rd_need(tfm__reader *r, size_t n) {
    if (r->bad || n > r->n - r->at) { r->bad = 1; return 0; }
    return 1;
}
static uint32_t tfm__rd_u32(tfm__reader *r) {
    uint32_t v = 0;
    if (tfm__rd_need(r, 4)) { memcpy(&v, r->p + r->at, 4); r->at += 4; }
    return v;
}
static uint64_t tfm__rd_u64(tfm__reader *r) {
    uint64_t v = 0;
    if (tfm__rd_need(r, 8)) { memcpy(&v, r->p + r->at, 8); r->at += 8; }
    return v;
}
static tfm_str tfm__rd_str(tfm__reader *r) {
    tfm_str s = {NULL, 0};
    uint64_t len = tfm__rd_u64(r);
    if (r->bad || len > r->n - r->at) { r->bad = 1; return s; }
    s.ptr = (const char *)(r->p + r->at);
    s.len = (size_t)len;
    r->at += (size_t)len;
    return s;
}

static size_t tfm__gguf_scalar_size(uint32_t t) {
    static const unsigned char sizes[TFM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < TFM_GGUF_TYPE_COUNT ? sizes[t] : 0;
}

/* Skips one value of type t (arrays may nest a few levels). */
static void tfm__rd_skip_value(tfm__reader *r, uint32_t t, int depth) {
    if (t == TFM_GGUF_STRING) { tfm__rd_str(r); return; }
    if (t == TFM_GGUF_ARRAY) {
        uint32_t et = tfm__rd_u32(r);
        uint64_t n = tfm__rd_u64(r), i;
        size_t es = tfm__gguf_scalar_size(et);
        if (r->bad || depth > 3 || et >= TFM_GGUF_TYPE_COUNT) { r->bad = 1; return; }
        if (es) {
            if (n > (r->n - r->at) / es) { r->bad = 1; return; }
            r->at += (size_t)n * es;
            return;
        }
        /* strings or nested arrays: every element holds at least 8 bytes */
        if (n > (r->n - r->at) / 8) { r->bad = 1; return; }
        for (i = 0; i < n && !r->bad; i++) tfm__rd_skip_value(r, et, depth + 1);
        return;
    }
    if (!tfm__gguf_scalar_size(t)) { r->bad = 1; return; }
    if (tfm__rd_need(r, tfm__gguf_scalar_size(t))) r->at += tfm__gguf_scalar_size(t);
}

static int tfm__str_eq(tfm_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && memcmp(a.ptr, b, n) == 0;
}

/* Reads magic, version and counts; the counts are bounded by the file size so that the
   index memory is never larger than a small multiple of the file. */
static tfm_result tfm__gguf_header(const void *data, size_t size, uint32_t *version, uint64_t *n_tensors, uint64_t *n_kv, char *err, size_t errcap) {
    tfm__reader r;
    r.p = (const uint8_t *)data; r.n = size; r.at = 0; r.bad = 0;
    if (!data) { tfm__set_error(err, errcap, "no data", NULL, 0); return TFM_ERR_ARG; }
    if (size < 24) { tfm__set_error(err, errcap, "GGUF header truncated (file shorter than 24 bytes)", NULL, 0); return TFM_ERR_TRUNCATED; }
    if (tfm__rd_u32(&r) != 0x46554747u) { tfm__set_error(err, errcap, "not a GGUF file (bad magic)", NULL, 0); return TFM_ERR_FORMAT; }
    *version = tfm__rd_u32(&r);
    if (*version != 2 && *version != 3) {
        tfm__set_error(err, errcap, "unsupported GGUF version ", NULL, 0);
        tfm__append_u64(err, errcap, *version);
        return TFM_ERR_UNSUPPORTED;
    }
    *n_tensors = tfm__rd_u64(&r);
    *n_kv = tfm__rd_u64(&r);
    /* a key/value takes at least 13 bytes, a tensor description at least 32 */
    if (*n_kv > size / 13 || *n_tensors > size / 32 || *n_kv * 13 + *n_tensors * 32 > size) {
        tfm__set_error(err, errcap, "GGUF counts larger than the file (tensors ", NULL, 0);
        tfm__append_u64(err, errcap, *n_tensors);
        tfm__append(err, errcap, ", keys ", 7);
        tfm__append_u64(err, errcap, *n_kv);
        tfm__append(err, errcap, ")", 1);
        return TFM_ERR_FORMAT;
    }
    return TFM_OK;
}

TFMDEF tfm_result tfm_gguf_heap_size(const void *data, size_t size, size_t *bytes) {
    uint32_t version;
    uint64_t nt, nkv;
    char err[8];
    tfm_result rc;
    if (!bytes) return TFM_ERR_ARG;
    rc = tfm__gguf_header(data, size, &version, &nt, &nkv, err, sizeof err);
    if (rc != TFM_OK) return rc;
    *bytes = (size_t)nkv * sizeof(tfm_gguf_kv) + (size_t)nt * sizeof(tfm_gguf_tensor) + 64;
    return TFM_OK;
}

static tfm_result tfm__gguf_fail(tfm_gguf *g, tfm_result rc, const char *what, tfm_str name) {
    tfm__set_error(g->error, sizeof g->error, what, name.ptr, name.len);
    return rc;
}

static tfm_result tfm__gguf_read_kv(tfm_gguf *g, tfm__reader *r) {
    size_t i;
    for (i = 0; i < g->n_kv; i++) {
        tfm_gguf_kv *kv = &g->kv[i];
        kv->key = tfm__rd_str(r);
        kv->type = (tfm_gguf_type)tfm__rd_u32(r);
        if (r->bad) return tfm__gguf_fail(g, TFM_ERR_TRUNCATED, "GGUF truncated in metadata key ", kv->key);
        if ((uint32_t)kv->type >= TFM_GGUF_TYPE_COUNT) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "unknown metadata value type for key ", kv->key);
        kv->arr_type = kv->type;
        kv->arr_n = 0;
        if (kv->type == TFM_GGUF_ARRAY) {
            size_t at = r->at;
            kv->arr_type = (tfm_gguf_type)tfm__rd_u32(r);
            kv->arr_n = tfm__rd_u64(r);
            kv->value = r->p + r->at;
            r->at = at;
        } else {
            kv->value = r->p + r->at;
        }
        tfm__rd_skip_value(r, (uint32_t)kv->type, 0);
        if (r->bad) return tfm__gguf_fail(g, r->at >= r->n ? TFM_ERR_TRUNCATED : TFM_ERR_FORMAT, "GGUF metadata value malformed or truncated: ", kv->key);
        if (tfm__str_eq(kv->key, "general.alignment")) {
            uint32_t a;
            if (kv->type != TFM_GGUF_U32) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "general.alignment is not u32", kv->key);
            memcpy(&a, kv->value, 4);
            if (a == 0 || (a & (a - 1)) || a > 65536) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "general.alignment is not a power of two", kv->key);
            g->alignment = a;
        }
    }
    return TFM_OK;
}

static tfm_result tfm__gguf_read_tensor_info(tfm_gguf *g, tfm__reader *r) {
    size_t i;
    uint32_t d;
    for (i = 0; i < g->n_tensors; i++) {
        tfm_gguf_tensor *t = &g->tensors[i];
        uint32_t type;
        uint64_t rows = 1;
        t->name = tfm__rd_str(r);
        t->t.n_dims = (int32_t)tfm__rd_u32(r);
        if (r->bad) return tfm__gguf_fail(g, TFM_ERR_TRUNCATED, "GGUF truncated in tensor info ", t->name);
        if (t->t.n_dims < 1 || t->t.n_dims > 4) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "tensor has 0 or more than 4 dimensions: ", t->name);
        for (d = 0; d < 4; d++) t->t.ne[d] = 1;
        for (d = 0; d < (uint32_t)t->t.n_dims; d++) {
            uint64_t ne = tfm__rd_u64(r);
            if (ne == 0 || ne > (uint64_t)INT64_MAX / 2) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "tensor dimension zero or too large: ", t->name);
            t->t.ne[d] = (int64_t)ne;
            if (d > 0) {
                if (rows > (uint64_t)INT64_MAX / ne) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "tensor element count overflows: ", t->name);
                rows *= ne;
            }
        }
        type = tfm__rd_u32(r);
        t->offset = tfm__rd_u64(r);
        if (r->bad) return tfm__gguf_fail(g, TFM_ERR_TRUNCATED, "GGUF truncated in tensor info ", t->name);
        t->t.type = (tfm_type)type;
        t->t.data = NULL;
        t->nbytes = 0;
        {
            size_t row = tfm_type_row_size((tfm_type)type, t->t.ne[0]);
            /* unknown types stay in the index without data; the model names them if used */
            if (row && rows <= SIZE_MAX / row) t->nbytes = row * (size_t)rows;
            else if (row) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "tensor byte size overflows: ", t->name);
            else if (type == TFM_TYPE_Q8_0 || type == TFM_TYPE_Q4_0) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "quantized tensor row length not a multiple of 32: ", t->name);
        }
    }
    return TFM_OK;
}

/* Places every tensor inside the data section, checking alignment and bounds. */
static tfm_result tfm__gguf_place_tensors(tfm_gguf *g) {
    size_t i;
    if (g->data_offset > g->size) {
        tfm_str none = {"", 0};
        return tfm__gguf_fail(g, TFM_ERR_TRUNCATED, "GGUF truncated before the tensor data section", none);
    }
    for (i = 0; i < g->n_tensors; i++) {
        tfm_gguf_tensor *t = &g->tensors[i];
        size_t room = g->size - g->data_offset;
        if (t->offset % g->alignment) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "tensor data offset not aligned: ", t->name);
        if (t->offset > room || t->nbytes > room - t->offset) return tfm__gguf_fail(g, TFM_ERR_TRUNCATED, "tensor data past the end of the file: ", t->name);
        if (t->nbytes) t->t.data = g->data + g->data_offset + t->offset;
    }
    return TFM_OK;
}

TFMDEF tfm_result tfm_gguf_init_preallocated(tfm_gguf *g, const void *data, size_t size, void *heap, size_t heap_size) {
    uint64_t nt, nkv;
    size_t need;
    tfm__reader r;
    tfm_result rc;
    if (!g) return TFM_ERR_ARG;
    memset(g, 0, sizeof *g);
    rc = tfm__gguf_header(data, size, &g->version, &nt, &nkv, g->error, sizeof g->error);
    if (rc != TFM_OK) return rc;
    tfm_gguf_heap_size(data, size, &need);
    if (!heap || heap_size < need) { tfm__set_error(g->error, sizeof g->error, "GGUF index heap too small", NULL, 0); return TFM_ERR_BUFFER; }
    g->data = (const uint8_t *)data;
    g->size = size;
    g->alignment = 32;
    g->n_kv = (size_t)nkv;
    g->n_tensors = (size_t)nt;
    g->kv = (tfm_gguf_kv *)tfm__align_up((size_t)heap, 16);
    g->tensors = (tfm_gguf_tensor *)(void *)(g->kv + g->n_kv);
    r.p = g->data; r.n = size; r.at = 24; r.bad = 0;
    if ((rc = tfm__gguf_read_kv(g, &r)) != TFM_OK) return rc;
    if ((rc = tfm__gguf_read_tensor_info(g, &r)) != TFM_OK) return rc;
    g->data_offset = tfm__align_up(r.at, g->alignment);
    if (g->n_tensors == 0) g->data_offset = r.at;
    return tfm__gguf_place_tensors(g);
}

TFMDEF tfm_result tfm_gguf_init(tfm_gguf *g, const void *data, size_t size) {
    size_t need;
    void *heap;
    tfm_result rc;
    if (!g) return TFM_ERR_ARG;
    memset(g, 0, sizeof *g);
    rc = tfm_gguf_heap_size(data, size, &need);
    if (rc != TFM_OK) return tfm_gguf_init_preallocated(g, data, size, NULL, 0); /* fills error */
    heap = TFM_MALLOC(need);
    if (!heap) { tfm__set_error(g->error, sizeof g->error, "out of memory for the GGUF index", NULL, 0); return TFM_ERR_NOMEM; }
    rc = tfm_gguf_init_preallocated(g, data, size, heap, need);
    if (rc != TFM_OK) TFM_FREE(heap); /* a failed init leaves nothing to free */
    else g->heap_ = heap;
    return rc;
}

TFMDEF const tfm_gguf_kv *tfm_gguf_find(const tfm_gguf *g, const char *key) {
    size_t i;
    if (!g || !key || !g->kv) return NULL;
    for (i = 0; i < g->n_kv; i++)
        if (tfm__str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

TFMDEF const tfm_gguf_tensor *tfm_gguf_find_tensor(const tfm_gguf *g, const char *name) {
    size_t i;
    if (!g || !name || !g->tensors) return NULL;
    for (i = 0; i < g->n_tensors; i++)
        if (tfm__str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* Reads a scalar of GGUF type t at p as int64 (integers and bools) or double. */
static int tfm__gguf_scalar_int(uint32_t t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case TFM_GGUF_U8: case TFM_GGUF_BOOL: *out = p[0]; return 1;
    case TFM_GGUF_I8: *out = (int8_t)p[0]; return 1;
    case TFM_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 1; }
    case TFM_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *out = v; return 1; }
    case TFM_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 1; }
    case TFM_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *out = v; return 1; }
    case TFM_GGUF_U64: { uint64_t v; memcpy(&v, p, 8); if (v > (uint64_t)INT64_MAX) return 0; *out = (int64_t)v; return 1; }
    case TFM_GGUF_I64: { int64_t v; memcpy(&v, p, 8); *out = v; return 1; }
    default: return 0;
    }
}

static int tfm__gguf_scalar_float(uint32_t t, const uint8_t *p, double *out) {
    int64_t i;
    if (t == TFM_GGUF_F32) { float v; memcpy(&v, p, 4); *out = v; return 1; }
    if (t == TFM_GGUF_F64) { double v; memcpy(&v, p, 8); *out = v; return 1; }
    if (t != TFM_GGUF_BOOL && tfm__gguf_scalar_int(t, p, &i)) { *out = (double)i; return 1; }
    return 0;
}

TFMDEF int tfm_gguf_get_int(const tfm_gguf *g, const char *key, int64_t *out) {
    const tfm_gguf_kv *kv = tfm_gguf_find(g, key);
    return kv && out && kv->type != TFM_GGUF_BOOL && tfm__gguf_scalar_int(kv->type, kv->value, out);
}

TFMDEF int tfm_gguf_get_float(const tfm_gguf *g, const char *key, double *out) {
    const tfm_gguf_kv *kv = tfm_gguf_find(g, key);
    return kv && out && tfm__gguf_scalar_float(kv->type, kv->value, out);
}

TFMDEF int tfm_gguf_get_bool(const tfm_gguf *g, const char *key, int *out) {
    const tfm_gguf_kv *kv = tfm_gguf_find(g, key);
    if (!kv || !out || kv->type != TFM_GGUF_BOOL) return 0;
    *out = kv->value[0] != 0;
    return 1;
}

TFMDEF int tfm_gguf_get_str(const tfm_gguf *g, const char *key, tfm_str *out) {
    const tfm_gguf_kv *kv = tfm_gguf_find(g, key);
    uint64_t len;
    if (!kv || !out || kv->type != TFM_GGUF_STRING) return 0;
    memcpy(&len, kv->value, 8); /* checked against the buffer when the index was built */
    out->ptr = (const char *)kv->value + 8;
    out->len = (size_t)len;
    return 1;
}

TFMDEF int tfm_gguf_arr_str(const tfm_gguf_kv *kv, uint64_t i, tfm_str *out) {
    const uint8_t *p;
    uint64_t k, len;
    if (!kv || !out || kv->type != TFM_GGUF_ARRAY || kv->arr_type != TFM_GGUF_STRING || i >= kv->arr_n) return 0;
    p = kv->value;
    for (k = 0;; k++) {
        memcpy(&len, p, 8);
        if (k == i) break;
        p += 8 + len;
    }
    out->ptr = (const char *)p + 8;
    out->len = (size_t)len;
    return 1;
}

TFMDEF int tfm_gguf_arr_float(const tfm_gguf_kv *kv, uint64_t i, double *out) {
    size_t es;
    if (!kv || !out || kv->type != TFM_GGUF_ARRAY || i >= kv->arr_n) return 0;
    es = tfm__gguf_scalar_size(kv->arr_type);
    return es && tfm__gguf_scalar_float(kv->arr_type, kv->value + (size_t)i * es, out);
}

TFMDEF int tfm_gguf_arr_int(const tfm_gguf_kv *kv, uint64_t i, int64_t *out) {
    size_t es;
    if (!kv || !out || kv->type != TFM_GGUF_ARRAY || i >= kv->arr_n) return 0;
    es = tfm__gguf_scalar_size(kv->arr_type);
    return es && kv->arr_type != TFM_GGUF_BOOL && tfm__gguf_scalar_int(kv->arr_type, kv->value + (size_t)i * es, out);
}

#ifndef TFM_NO_STDIO
#if defined(__unix__) || defined(__APPLE__)
#define TFM__HAVE_MMAP 1
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#endif
#include <stdio.h>

/* Maps (or, without mmap, reads) a whole file. */
static tfm_result tfm__map_file(const char *path, void **map, size_t *size) {
#ifdef TFM__HAVE_MMAP
    struct stat st;
    int fd = open(path, O_RDONLY);
    void *p;
    if (fd < 0) return TFM_ERR_IO;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX) { close(fd); return st.st_size == 0 ? TFM_ERR_TRUNCATED : TFM_ERR_IO; }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return TFM_ERR_IO;
    *map = p;
    *size = (size_t)st.st_size;
    return TFM_OK;
#else
    FILE *f = fopen(path, "rb");
    long n;
    void *p;
    if (!f) return TFM_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return TFM_ERR_IO; }
    p = TFM_MALLOC(n ? (size_t)n : 1);
    if (!p) { fclose(f); return TFM_ERR_NOMEM; }
    if (fread(p, 1, (size_t)n, f) != (size_t)n) { fclose(f); TFM_FREE(p); return TFM_ERR_IO; }
    fclose(f);
    *map = p;
    *size = (size_t)n;
    return n ? TFM_OK : TFM_ERR_TRUNCATED;
#endif
}

static void tfm__unmap_file(void *map, size_t size) {
#ifdef TFM__HAVE_MMAP
    if (map) munmap(map, size);
#else
    (void)size;
    TFM_FREE(map);
#endif
}

TFMDEF tfm_result tfm_gguf_open(tfm_gguf *g, const char *path) {
    void *map = NULL;
    size_t size = 0;
    tfm_result rc;
    if (!g) return TFM_ERR_ARG;
    memset(g, 0, sizeof *g);
    if (!path) { tfm__set_error(g->error, sizeof g->error, "no path given", NULL, 0); return TFM_ERR_ARG; }
    rc = tfm__map_file(path, &map, &size);
    if (rc != TFM_OK) {
        tfm__set_error(g->error, sizeof g->error, rc == TFM_ERR_TRUNCATED ? "empty file: " : "cannot open or read ", path, strlen(path));
        return rc;
    }
    rc = tfm_gguf_init(g, map, size);
    if (rc != TFM_OK) {
        char detail[sizeof g->error];
        memcpy(detail, g->error, sizeof detail);
        tfm__unmap_file(map, size);
        tfm__set_error(g->error, sizeof g->error, path, NULL, 0);
        tfm__append(g->error, sizeof g->error, ": ", 2);
        tfm__append(g->error, sizeof g->error, detail, sizeof detail);
        return rc;
    }
    g->map_ = map;
    g->map_size_ = size;
    return rc;
}
#endif /* TFM_NO_STDIO */

TFMDEF void tfm_gguf_free(tfm_gguf *g) {
    if (!g) return;
    if (g->heap_) TFM_FREE(g->heap_);
#ifndef TFM_NO_STDIO
    if (g->map_) tfm__unmap_file(g->map_, g->map_size_);
#endif
    memset(g, 0, sizeof *g);
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
