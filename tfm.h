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
     TFM_EXPF/TFM_LOGF/TFM_SQRTF/TFM_POWF/TFM_COSF/TFM_SINF/TFM_TANHF/TFM_FABSF   libm replacements
     OpenMP (-fopenmp)      threads over matrix rows and attention heads; logits are bit-identical
                            whatever the thread count and batching (each output is one sum in
                            one order); TFM_NO_SIMD's plain kernels differ by rounding only

   GGUF KEYS AND TENSORS
     As the ecosystem writes them: general.architecture = llama | mistral | qwen2 | gpt2 | opt;
     <arch>.context_length, .embedding_length, .block_count, .feed_forward_length,
     .attention.head_count, .attention.head_count_kv, .attention.key_length (optional),
     .attention.layer_norm_rms_epsilon (RMSNorm) or .attention.layer_norm_epsilon (LayerNorm),
     .rope.dimension_count, .rope.freq_base; tensors token_embd, position_embd (learned positions),
     output_norm(.bias), output (absent: tied to token_embd), blk.N.attn_norm, attn_q/k/v (or fused
     attn_qkv), attn_output, ffn_norm, ffn_gate (SwiGLU), ffn_up, ffn_down, each .weight and, where
     the file has one, .bias. tokenizer.ggml.* as llama.cpp writes it.
     OPT has no ecosystem name; this library defines, in the same style: general.architecture = opt,
     opt.context_length (positions, without OPT's 2 offset rows), opt.embedding_length,
     opt.block_count, opt.feed_forward_length, opt.attention.head_count,
     opt.attention.layer_norm_epsilon, opt.position_offset (default 2); position_embd.weight holds
     all rows including the offset; attn_norm = self_attn_layer_norm, ffn_norm = final_layer_norm of
     the block, ffn_up = fc1, ffn_down = fc2, output_norm = the decoder's final_layer_norm.
     Weight types: F32, F16, BF16, Q8_0, Q4_0 (norms and biases F32).

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
#if defined(__GNUC__) || defined(__clang__)
#define TFMDEF static __attribute__((unused)) /* a private copy need not use every function */
#else
#define TFMDEF static
#endif
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
/* The kernels this build selected at compile time: "AVX-512" (with VNNI and VBMI), "AVX2" (with
   FMA and F16C), "NEON" or "plain C". */
TFMDEF const char *tfm_kernels(void);

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
/*  What it reads (tokenizer.ggml.* keys of a GGUF):
      model "llama"  SentencePiece BPE: the text gets a leading space when add_space_prefix (default
                     on) and is not empty, spaces become U+2581, then the adjacent pair whose
                     concatenation is a token with the highest score merges first (ties: leftmost),
                     as llama.cpp and llama2.c do; characters left without a token become byte
                     tokens <0xXX> (or one unknown token per character if the vocabulary has none).
      model "gpt2"   byte-level BPE: the text is split by the pre-tokenizer `pre` names (absent:
                     gpt-2), every byte of a piece maps to one GPT-2 "byte character", then ranked
                     merges apply (lower index first). Pre-tokenizers: "gpt-2" (also "phi-2"),
                     "llama-bpe" (also "llama3", "llama-v3"; whole pieces that are tokens are kept as
                     they are, and add_bos defaults to on, as llama.cpp does), "qwen2" (also
                     "deepseek-r1-qwen", "megrez"). Others give TFM_ERR_UNSUPPORTED.
    Encoding never produces control tokens (BOS, EOS, <|endoftext|> ...) from text: there is no
    special-token parsing, "<s>" in the text is ordinary text. Tokens of type control, unknown,
    unused and byte are never the result of a merge. Invalid UTF-8 never crashes: each byte that
    does not start a valid character is a character of its own (no letter, number or space), so
    SentencePiece emits it as a byte token and byte-level BPE keeps it exactly.
    Decoding is the exact inverse on valid UTF-8: decode(encode(s)) == s, where for SentencePiece
    the space that encoding put in front is dropped again (tfm_detokenize drops the leading space
    of the first piece of a sequence and of the first piece after control tokens that start it).
    The vocabulary borrows the GGUF bytes (token strings are not copied): keep them alive.
    A GGUF with neither tokenizer.ggml.model nor tokenizer.ggml.tokens gives an empty vocabulary
    (n_tokens 0, type TFM_VOCAB_NONE; BOS/EOS ids still read from their keys) so that a model can
    run on token ids; encoding and decoding with it return TFM_ERR_MISSING / 0 bytes.
    Limits: at most 2^28 tokens and 2^24 merges; tfm_tokenize takes at most 2^30 bytes of text
    per call; work memory is about 32 bytes per byte of text (tfm_tokenize_work_size). */
typedef enum {
    TFM_VOCAB_NONE = 0,  /* the GGUF has no vocabulary */
    TFM_VOCAB_SPM = 1,   /* tokenizer.ggml.model "llama" */
    TFM_VOCAB_BPE = 2    /* tokenizer.ggml.model "gpt2" */
} tfm_vocab_type;

typedef enum {
    TFM_PRE_NONE = 0,    /* SentencePiece: no pre-tokenizer */
    TFM_PRE_GPT2,        /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    TFM_PRE_LLAMA3,      /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    TFM_PRE_QWEN2        /* as TFM_PRE_LLAMA3 with \p{N} (one digit at a time) */
} tfm_pretok;

typedef struct tfm_vocab {
    int32_t n_tokens;
    int32_t bos_id, eos_id, unk_id, pad_id;   /* -1 when absent (or out of range in the file) */
    int add_bos, add_eos;      /* from the file, or the convention: SentencePiece and llama-bpe
                                  add BOS, other byte-level BPE does not; no one adds EOS */
    int add_space_prefix;      /* SentencePiece only: from the file, default 1 */
    tfm_vocab_type type;
    tfm_pretok pre;
    size_t max_piece_len;      /* longest tfm_token_to_piece result, bytes */
    char error[192];
    /* private: arrays in the heap given to init, strings in the GGUF bytes */
    const uint8_t *tok_base_;  /* first element of tokenizer.ggml.tokens in the GGUF bytes */
    uint32_t *tok_off_;        /* [n_tokens] offset of token i's u64 length from tok_base_ */
    float *score_;             /* [n_tokens] SentencePiece merge scores (0 when absent) */
    uint8_t *ttype_;           /* [n_tokens] GGUF token type: 1 normal, 2 unknown, 3 control,
                                  4 user-defined, 5 unused, 6 byte, 0 other */
    int32_t *tok_hash_;        /* [tok_hash_n_] token ids by string hash, -1 = empty slot */
    uint32_t tok_hash_n_;      /* power of two, at least 2 * n_tokens */
    int32_t *merge_;           /* [n_merges_][3] left id, right id, merged id (-1: unusable);
                                  the rank of a merge is its index */
    int32_t *merge_hash_;      /* [merge_hash_n_] ranks by (left, right) hash, -1 = empty */
    uint32_t merge_hash_n_;
    int32_t n_merges_;
    int32_t byte_tok_[256];    /* SentencePiece: id of <0xXX>; BPE: id of the byte's character */
    size_t max_tok_len_;       /* longest token string, bytes */
    void *heap_;               /* set by tfm_vocab_init only */
} tfm_vocab;

/* Heap bytes tfm_vocab_init_preallocated needs for this GGUF's vocabulary. */
TFMDEF tfm_result tfm_vocab_heap_size(const tfm_gguf *g, size_t *bytes);
TFMDEF tfm_result tfm_vocab_init_preallocated(tfm_vocab *v, const tfm_gguf *g, void *heap, size_t heap_size);
TFMDEF tfm_result tfm_vocab_init(tfm_vocab *v, const tfm_gguf *g);   /* allocates with TFM_MALLOC */
TFMDEF void tfm_vocab_free(tfm_vocab *v);                              /* frees only what _init allocated */

/* Encodes len bytes of text (any bytes). add_special: 1 adds BOS/EOS as the vocabulary says, 0
   never. Writes up to cap ids to out (out may be NULL when cap is 0) and sets *n_out to the
   number of ids the whole text needs: TFM_ERR_BUFFER when that is more than cap. The _ex version
   uses the caller's work memory of at least tfm_tokenize_work_size(v, len) bytes (any alignment)
   and never allocates; tfm_tokenize allocates and frees it with TFM_MALLOC / TFM_FREE.
   tfm_tokenize_work_size returns 0 when len is over the limit (then tokenizing gives
   TFM_ERR_ARG). Any number of threads may tokenize with one vocabulary at the same time. */
TFMDEF size_t tfm_tokenize_work_size(const tfm_vocab *v, size_t len);
TFMDEF tfm_result tfm_tokenize_ex(const tfm_vocab *v, const char *text, size_t len, int add_special,
                                  int32_t *out, size_t cap, size_t *n_out, void *work, size_t work_size);
TFMDEF tfm_result tfm_tokenize(const tfm_vocab *v, const char *text, size_t len, int add_special,
                               int32_t *out, size_t cap, size_t *n_out);

/* The bytes `token` contributes to decoded text: SentencePiece U+2581 -> ' ' and <0xXX> -> that
   byte; byte-level BPE reverses GPT-2's byte-to-character mapping; control and unused tokens ->
   nothing; the unknown token -> U+2585 (as llama.cpp). With SentencePiece and add_space_prefix,
   a piece right after BOS (prev_token == bos_id) loses its leading space, as llama2.c and
   llama.cpp print it; pass prev_token -1 when there is no previous token. Writes at most cap
   bytes (a longer piece is cut; max_piece_len bytes always suffice) and returns the count, 0 for
   an id out of range. No terminating 0. */
TFMDEF size_t tfm_token_to_piece(const tfm_vocab *v, int32_t prev_token, int32_t token, char *buf, size_t cap);
/* Decodes n ids into buf (sum of the pieces, the first piece of the sequence without its
   SentencePiece prefix space). Writes at most cap bytes plus a terminating 0 when there is room
   (not counted), sets *n_needed to the full length: TFM_ERR_BUFFER when it is more than cap,
   TFM_ERR_TOKEN when an id is out of range (such ids contribute nothing). */
TFMDEF tfm_result tfm_detokenize(const tfm_vocab *v, const int32_t *ids, size_t n, char *buf, size_t cap, size_t *n_needed);
/* The id whose string is exactly piece[0..len) (lowest id if repeated), or -1. */
TFMDEF int32_t tfm_vocab_find(const tfm_vocab *v, const char *piece, size_t len);
/* >>tokenizer-api-end */

/* ===================================================================== model */

typedef enum { TFM_NORM_RMS, TFM_NORM_LAYER } tfm_norm_kind;
typedef enum { TFM_POS_ROPE, TFM_POS_ROPE_NEOX, TFM_POS_LEARNED } tfm_pos_kind;
typedef enum { TFM_FFN_SWIGLU, TFM_FFN_GELU, TFM_FFN_RELU } tfm_ffn_kind;

/* One row per architecture family: everything the single forward loop needs to know.
   Biases are used wherever the file has them; fused QKV wherever `attn_qkv` exists. */
typedef struct {
    const char *name;          /* general.architecture */
    tfm_norm_kind norm;
    tfm_pos_kind pos;
    int32_t pos_offset;        /* learned positions: row of position 0 (OPT: 2) */
    tfm_ffn_kind ffn;
    float default_eps;
} tfm_arch;

typedef struct {
    int32_t n_vocab;           /* rows of the embedding table (may exceed the tokenizer's count) */
    int32_t dim;               /* embedding width */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t ffn_dim;
    int32_t n_ctx_train;       /* positions the model was trained with */
    int32_t rope_dim;          /* leading dimensions of each head that RoPE rotates (0: learned positions) */
    int32_t pos_offset;        /* learned positions: table row of position 0 (OPT: 2) */
    float rope_base;
    float norm_eps;
} tfm_hparams;

/* Weight views of one block. W (ne = {in, out}) means out rows of in values. */
typedef struct {
    tfm_tensor attn_norm, attn_norm_b;   /* [dim] */
    tfm_tensor wq, bq;                   /* {dim, n_head*hd}, [n_head*hd] */
    tfm_tensor wk, bk;                   /* {dim, n_head_kv*hd}, [n_head_kv*hd] */
    tfm_tensor wv, bv;                   /* {dim, n_head_kv*hd}, [n_head_kv*hd] */
    tfm_tensor wqkv, bqkv;               /* fused {dim, (n_head+2*n_head_kv)*hd} (GPT-2) */
    tfm_tensor wo, bo;                   /* {n_head*hd, dim}, [dim] */
    tfm_tensor ffn_norm, ffn_norm_b;     /* [dim] */
    tfm_tensor w_gate;                   /* {dim, ffn} (SwiGLU only) */
    tfm_tensor w_up, b_up;               /* {dim, ffn}, [ffn] */
    tfm_tensor w_down, b_down;           /* {ffn, dim}, [dim] */
} tfm_layer;

typedef struct {
    const tfm_arch *arch;
    tfm_hparams hp;
    tfm_tensor tok_embd;                 /* {dim, n_vocab} */
    tfm_tensor pos_embd;                 /* {dim, n_pos_rows} (learned positions only) */
    tfm_tensor out_norm, out_norm_b;     /* [dim] */
    tfm_tensor output;                   /* {dim, n_vocab}; the embedding when tied */
    tfm_layer *layers;                   /* [n_layer] */
    tfm_vocab vocab;
    const tfm_gguf *gguf;
    char error[192];
    /* private */
    tfm_gguf own_gguf_;
    void *heap_;
} tfm_model;

TFMDEF tfm_result tfm_model_heap_size(const tfm_gguf *g, size_t *bytes);
/* The model borrows g (and g's bytes) for its whole life. */
TFMDEF tfm_result tfm_model_init_preallocated(tfm_model *m, const tfm_gguf *g, void *heap, size_t heap_size);
TFMDEF tfm_result tfm_model_init(tfm_model *m, const tfm_gguf *g);
#ifndef TFM_NO_STDIO
/* Opens (mmaps) a GGUF file and builds the model; tfm_model_free releases both. */
TFMDEF tfm_result tfm_model_load(tfm_model *m, const char *path);
#endif
TFMDEF void tfm_model_free(tfm_model *m);
/* Largest position a sequence can reach (learned position tables end; RoPE has no hard end). */
TFMDEF int32_t tfm_model_max_positions(const tfm_model *m);

/* ===================================================================== session (KV cache + forward) */

typedef enum {
    TFM_KV_FULL = 0,   /* no eviction; capacity = n_ctx */
    TFM_KV_A2SF,       /* accumulative attention score with forgetting factor alpha */
    TFM_KV_H2O,        /* A2SF with alpha = 1 and n_recent = budget / 2 */
    TFM_KV_WINDOW      /* first n_sink and last budget - n_sink positions */
} tfm_kv_policy;

typedef struct {
    tfm_kv_policy policy;
    int32_t budget;     /* kept tokens per layer and KV head (pruning policies; must be > 0) */
    float alpha;        /* A2SF forgetting factor, used as given (0 = only the latest attention) */
    int32_t n_recent;   /* protected most recent positions (H2O: 0 means budget / 2) */
    int32_t n_sink;     /* protected first positions */
    tfm_type type;      /* cached keys and values: TFM_TYPE_F32 (0) or TFM_TYPE_F16 (half the memory,
                           and half the bytes each token's attention reads; values beyond
                           +-65504 would become infinite). SIMD builds with n_batch > 1 also keep
                           an F32 copy of one KV head's cache per thread (at most n_head_kv
                           copies) for a chunk's rows */
} tfm_kv_config;

/* Called after each token's attention in each layer and KV head (for tests and analysis):
   the kept slots' positions and their A2SF probabilities p (summed over the group's query heads),
   n slots including the new token, and the position evicted (-1 if none). */
typedef void (*tfm_attention_observer)(void *user, int32_t seq, int32_t layer, int32_t kv_head, int32_t pos,
                                       const int32_t *slot_pos, const float *p, int32_t n, int32_t evicted_pos);

typedef struct {
    int32_t n_ctx;      /* positions per sequence; 0: the model's training context */
    int32_t n_seq;      /* parallel sequences; 0: 1 */
    int32_t n_batch;    /* tokens per forward chunk; 0: 64 */
    int32_t n_threads;  /* OpenMP threads; 0: all available (omp_get_max_threads() when sized:
                           set it explicitly for a preallocated session if that may change) */
    int32_t threads_fixed; /* 1: every eval uses n_threads. 0: an eval may use fewer while they
                              are faster (a busy machine, where a thread sharing a core holds
                              up the others), trying the full count again now and then. Outputs
                              are the same for any thread count. */
    tfm_kv_config kv;
    tfm_attention_observer observer;
    void *observer_user;
} tfm_session_config;

/* Private: how many threads the next evals use (see tfm__governor_next). Costs are seconds per
   eval, of evals with the same token count. */
typedef struct {
    int32_t now;         /* threads in use */
    int32_t probe;       /* threads being tried instead, 0: none */
    int32_t probe_evals; /* evals of the current try so far */
    int32_t wait;        /* evals until the next try */
    int32_t interval;    /* evals between tries: doubles while tries lose */
    int32_t go_up;       /* the next try adds a thread (else it halves them) */
    int32_t n_cost;      /* evals in `cost` (counts up to TFM__GOV_TRY) */
    size_t n_tokens;     /* tokens per eval of those evals */
    double cost;         /* mean cost of the recent evals at `now` (moving average) */
    double probe_sum;    /* summed cost of the current try */
} tfm__governor;

typedef struct {
    const tfm_model *model;
    tfm_session_config cfg;     /* resolved: no zero defaults left */
    int32_t n_threads_used;     /* threads the last eval ran on (see cfg.threads_fixed) */
    int32_t capacity;           /* cache slots per (sequence, layer, KV head) */
    int32_t *n_pos;             /* [n_seq] tokens seen by each sequence (next position) */
    float *logits;              /* [n_seq][n_vocab] after the last token of each sequence */
    float *hidden;              /* [n_seq][dim] final-norm output of that token */
    char error[192];
    /* private: cache [n_seq][n_layer][n_head_kv] x capacity slots */
    unsigned char *k_, *v_;     /* [..][capacity][head_dim] keys (after RoPE) and values, of cfg.kv.type */
    int32_t *slot_pos_;         /* [..][capacity] */
    float *slot_score_;         /* [..][capacity] */
    int32_t *n_used_;           /* [n_seq][n_layer][n_head_kv] */
    float *x_;                  /* [n_batch][dim] residual stream of the chunk */
    float *xb_;                 /* [n_batch][max(dim, n_head*hd, ffn)] normed input / block output */
    float *q_;                  /* [n_batch][(n_head + 2*n_head_kv)*hd] q | k | v per row */
    float *att_;                /* [n_batch][n_head*hd] attention output */
    float *hb_, *hb2_;          /* [n_batch][ffn] */
    float *probs_;              /* [n_head + n_head_kv][capacity] softmax per head, sum per group */
    void *xq_;                  /* Q8_0 blocks of the activation rows */
    float *rope_inv_freq_;      /* [rope_dim / 2] */
    float *rope_cs_;            /* [n_batch][rope_dim] cos, sin per pair of each chunk row */
    float *wrow_;               /* [n_threads][wrow_stride_] dequantized weight row */
    float *kv_wide_;            /* [min(n_threads, n_head_kv)][2][capacity][head_dim] an F16 cache widened for a chunk (SIMD, n_batch > 1) */
    int64_t wrow_stride_;
    float *row_logits_;         /* [min(n_seq, n_batch)][n_vocab] */
    int32_t *seq_last_;         /* [n_seq] index of the last token of each sequence in a call */
    int32_t *seq_count_;        /* [n_seq] */
    int32_t *pos_rows_;         /* [n_batch] position of each chunk row */
    int32_t *head_rows_;        /* [n_batch] chunk rows that need logits */
    tfm__governor gov_;
    void *heap_;
} tfm_session;

TFMDEF tfm_result tfm_session_heap_size(const tfm_model *m, const tfm_session_config *cfg, size_t *bytes);
TFMDEF tfm_result tfm_session_init_preallocated(tfm_session *s, const tfm_model *m, const tfm_session_config *cfg, void *heap, size_t heap_size);
TFMDEF tfm_result tfm_session_init(tfm_session *s, const tfm_model *m, const tfm_session_config *cfg);
TFMDEF void tfm_session_free(tfm_session *s);

/* Runs n tokens: token i is appended to sequence seq[i] (seq NULL: all sequence 0). Tokens of one
   sequence are taken in order; different sequences advance together (one read of the weights).
   Afterwards tfm_session_logits(s, q) holds the logits after the last token given to sequence q.
   all_logits, if not NULL, receives [n][n_vocab] logits for every token. Checks everything before
   changing any state: a bad id, a bad sequence or a full context leaves the session untouched. */
TFMDEF tfm_result tfm_session_eval(tfm_session *s, const int32_t *tokens, const int32_t *seq, size_t n, float *all_logits);
TFMDEF const float *tfm_session_logits(const tfm_session *s, int32_t seq);
/* Copies sequence src's cache (slots, positions, scores) and state onto dst. */
TFMDEF tfm_result tfm_seq_copy(tfm_session *s, int32_t dst, int32_t src);
TFMDEF tfm_result tfm_seq_reset(tfm_session *s, int32_t seq);
/* Kept positions of (seq, layer, kv_head), unordered; returns their count (copies up to cap). */
TFMDEF int32_t tfm_seq_kept(const tfm_session *s, int32_t seq, int32_t layer, int32_t kv_head, int32_t *pos, int32_t cap);

/* ===================================================================== sampler */

/* Logits processors run in this order: repetition penalty, temperature, top-k, top-p, min-p;
   then one draw from the renormalized distribution. temperature == 0 is exact greedy (argmax,
   ties to the lowest id) whatever else is set. Zero in any field means "off" (or the default). */
typedef struct {
    float temperature;      /* 0: greedy */
    int32_t top_k;          /* keep the k most likely tokens; 0: off */
    float top_p;            /* keep the smallest set whose probability reaches p; 0 or >= 1: off */
    float min_p;            /* drop tokens below min_p * (top probability); 0: off */
    float repeat_penalty;   /* > 1: divide positive / multiply negative logits of recent tokens; 0: off */
    int32_t repeat_last_n;  /* how many recent tokens the penalty looks at; 0: 64 */
    uint64_t seed;          /* 0: a fixed default seed */
} tfm_sampler_config;

typedef struct {
    tfm_sampler_config cfg;
    int32_t n_vocab;
    uint64_t rng;
    float *probs;           /* [n_vocab] working copy of the logits / probabilities */
    int32_t *idx;           /* [n_vocab] candidate ids */
    void *heap_;
} tfm_sampler;

TFMDEF tfm_result tfm_sampler_heap_size(int32_t n_vocab, size_t *bytes);
TFMDEF tfm_result tfm_sampler_init_preallocated(tfm_sampler *s, const tfm_sampler_config *cfg, int32_t n_vocab, void *heap, size_t heap_size);
TFMDEF tfm_result tfm_sampler_init(tfm_sampler *s, const tfm_sampler_config *cfg, int32_t n_vocab);
TFMDEF void tfm_sampler_free(tfm_sampler *s);
/* Picks the next token from logits [n_vocab]; history holds the tokens so far (for the penalty).
   Returns -1 on bad arguments. */
TFMDEF int32_t tfm_sample(tfm_sampler *s, const float *logits, const int32_t *history, size_t n_history);
TFMDEF int32_t tfm_argmax(const float *x, int32_t n);
/* log softmax of logits [n] into out [n] (out may equal logits). */
TFMDEF void tfm_log_softmax(const float *logits, float *out, int32_t n);

/* ===================================================================== search (beam search) */
/* >>search-api-begin */
/* Beam search with the semantics of Hugging Face generate(num_beams=...), and conditional beam
   search (Yoshida et al., "MAP's not dead yet", arXiv 2311.08817): the most likely output given
   that it satisfies a condition A.

   The beams are the sequences of one session (n_seq = n_beams): a step feeds one token per
   running beam in one tfm_session_eval call (every weight read once for all beams). Reordering
   takes a beam's sequence over in place when it has one child and tfm_seq_copy's it into a freed
   sequence for every further child, so the cache (slots, positions, A2SF scores) moves with the
   beam under every KV policy, and no spare sequences are needed.

   One step, as Hugging Face does it: every running beam b with log-likelihood L_b proposes each
   token t with score L_b + log p(t | beam) + log q(A | beam + t); the 2 * n_beams best candidates
   are taken in order; a candidate ending in EOS becomes a finished hypothesis if it ranks among
   the first n_beams, the others become the next beams until n_beams are running. A finished
   hypothesis scores (L + log q) / len^length_penalty, len counting the generated tokens and EOS.
   The search stops when early_stopping says so or at max_new_tokens (running beams then become
   hypotheses too), and returns the n_return best.

   Conditions. log q(A | prefix) is not accumulated: each candidate gets the value for its whole
   prefix, so the search maximizes log p(y) + log q(A | y) = log p(y | A) + const, while the true
   log-likelihood log p(y) is kept and reported apart. Built-in conditions are decided exactly from
   the prefix: log q is 0, or -inf for a candidate that already violates one (a repeated n-gram
   cannot be undone, EOS before min_len cannot be taken back). They do not estimate the chance that
   a continuation will violate them later; a callback can (e.g. a classifier trained on the
   model's samples, as in the paper), and a callback returning -inf rejects a candidate.

   Deliberate differences from Hugging Face:
     - length_penalty is used as given: zero config means 0, a plain sum of log-probabilities
       (the MAP objective). Hugging Face's default is 1.0; set it to match.
     - candidates scored -inf (banned by no_repeat_ngram_size, min_new_tokens or a condition) never
       become beams or hypotheses, so fewer than n_beams beams may run; if no output satisfies the
       conditions, n_results is 0.
     - the first step expands only the prompt's beam (Hugging Face gives the other copies -1e9,
       which is the same unless n_vocab < 2 * n_beams).
     - equal scores rank by (beam, token id) ascending; one EOS id; result tokens exclude EOS
       (the `eos` flag says whether it ended with EOS); one prompt per searcher.
   n_beams = 1 is greedy decoding (early_stopping heuristic or true; with "never" the beam goes on
   past an EOS, as in Hugging Face). */

typedef enum {
    TFM_EARLY_HEURISTIC = 0, /* early_stopping=False: stop when the best candidate, at the current
                                length, cannot beat the worst of n_beams finished hypotheses */
    TFM_EARLY_TRUE,          /* early_stopping=True: stop once n_beams hypotheses are finished */
    TFM_EARLY_NEVER          /* early_stopping="never": stop only when no better one is possible
                                (exact for length_penalty <= 0; with > 0, bounds by max_new_tokens) */
} tfm_early_stopping;

/* What a condition callback sees: one candidate = a running beam plus one token. */
typedef struct {
    const int32_t *prompt;     /* [n_prompt] */
    size_t n_prompt;
    const int32_t *tokens;     /* [n_tokens] generated tokens, the candidate's new token last (EOS included) */
    size_t n_tokens;
    const float *hidden;       /* [dim] final-norm hidden state after the beam's last token: the state
                                  whose logits proposed tokens[n_tokens - 1] */
    int32_t dim;
    float logprob;             /* model log-likelihood of tokens given the prompt */
    int finished;              /* 1: the output would end here (EOS, or max_new_tokens reached) */
} tfm_beam_candidate;

/* Returns log q(A | candidate) <= 0; -inf (or NaN) rejects the candidate. */
typedef float (*tfm_beam_condition_fn)(void *user, const tfm_beam_candidate *c);

typedef struct {
    int not_empty;             /* at least one token before EOS */
    int32_t no_repeat_ngram;   /* k > 0: no k-gram occurs twice in the output (the prompt is not looked at) */
    int32_t no_prompt_copy;    /* k > 0: no k-gram of the output occurs in the prompt */
    int32_t min_len;           /* output length (EOS not counted) >= min_len */
    int32_t max_len;           /* output length <= max_len (needs an EOS); 0: no bound */
    tfm_beam_condition_fn fn;  /* optional learned or hand-written condition */
    void *user;
    int32_t fn_top_k;          /* with fn: only the fn_top_k likeliest allowed tokens of each beam are
                                  candidates (fn is called once per candidate); 0: every token */
} tfm_beam_condition;

typedef struct {
    int32_t n_beams;           /* 0: 4 */
    int32_t n_return;          /* best hypotheses returned (<= n_beams); 0: 1 */
    int32_t max_new_tokens;    /* generated tokens at most, EOS included; 0: until the context is full */
    int32_t min_new_tokens;    /* EOS is banned before this many new tokens */
    float length_penalty;      /* exponent on the generated length, used as given (see above) */
    tfm_early_stopping early_stopping;
    int32_t no_repeat_ngram_size; /* > 0: no n-gram of prompt + output occurs twice; 0: off */
    int32_t eos_id;            /* 0: the model's EOS (tokenizer.ggml.eos_token_id); -1: none */
    tfm_beam_condition cond;   /* all zero: plain beam search */
    tfm_session_config session;/* cache policy, context, threads; n_seq is set to n_beams */
} tfm_beam_config;

typedef struct {
    const int32_t *tokens;     /* [n_tokens] generated tokens, EOS not included */
    int32_t n_tokens;
    int eos;                   /* 1: ended with EOS; 0: stopped at max_new_tokens */
    float score;               /* what the search ranks: (logprob + cond_logq) / len^length_penalty */
    float logprob;             /* true model log-likelihood of the output (and its EOS) given the prompt */
    float cond_logq;           /* log q(A | output) from the callback (0 without one) */
} tfm_beam_hyp;

typedef struct {
    tfm_beam_config cfg;       /* resolved: no zero defaults left */
    tfm_session session;       /* the beams' caches: n_seq = n_beams */
    const tfm_model *model;
    int32_t max_new;           /* max_new_tokens of the current search */
    int32_t n_gen;             /* tokens generated by every running beam so far */
    int32_t n_active;          /* running beams */
    int done;                  /* early stopping fired: running beams are not hypotheses */
    int stopped;               /* no further step will run */
    int32_t *beam_seq;         /* [n_beams] session sequence of each running beam (-1: its last token not fed) */
    float *beam_logprob;       /* [n_beams] true log-likelihood of each running beam */
    float *beam_logq;          /* [n_beams] log q of each running beam's prefix */
    int32_t *beam_tokens;      /* [n_beams][cap_tokens] generated tokens of each running beam */
    int32_t n_hyps;            /* finished hypotheses kept (<= n_beams) */
    tfm_beam_hyp *hyps;        /* [n_beams]; after tfm_beam_finish: best first */
    int32_t n_results;         /* after tfm_beam_finish: min(n_return, n_hyps) = the first n_results hyps */
    char error[192];
    /* private */
    int32_t cap_tokens_, n_prompt_, n_cand_, hyp_count_;
    int32_t *prompt_;          /* [n_ctx] */
    int32_t *tokens_next_;     /* [n_beams][cap_tokens] */
    int32_t *hyp_tokens_;      /* [n_beams][cap_tokens] */
    int32_t *hyp_order_;       /* [n_beams] insertion order, for ties */
    int32_t *next_src_, *next_seq_, *next_tok_; /* [n_beams] */
    unsigned char *claimed_;   /* [n_beams] */
    float *logp_;              /* [n_vocab] */
    void *cand_;               /* [2 * n_beams] ranked candidates */
    int32_t *scratch_;         /* [cap_tokens + 1] a candidate's tokens */
    int32_t *topk_;            /* [fn_top_k] */
    void *heap_;
} tfm_beam;

TFMDEF tfm_result tfm_beam_heap_size(const tfm_model *m, const tfm_beam_config *cfg, size_t *bytes);
TFMDEF tfm_result tfm_beam_init_preallocated(tfm_beam *b, const tfm_model *m, const tfm_beam_config *cfg, void *heap, size_t heap_size);
TFMDEF tfm_result tfm_beam_init(tfm_beam *b, const tfm_model *m, const tfm_beam_config *cfg);
TFMDEF void tfm_beam_free(tfm_beam *b);
/* The whole search: start, step until stopped, finish. Results: b->hyps[0 .. b->n_results). */
TFMDEF tfm_result tfm_beam_search(tfm_beam *b, const int32_t *prompt, size_t n_prompt);
/* The same in pieces (to watch or stop a search): start feeds the prompt (n_prompt >= 1, copied)
   into sequence 0; each step ranks candidates, keeps hypotheses, reorders and feeds the running
   beams in one batched call; finish turns running beams into hypotheses and sorts. */
TFMDEF tfm_result tfm_beam_start(tfm_beam *b, const int32_t *prompt, size_t n_prompt);
TFMDEF tfm_result tfm_beam_step(tfm_beam *b);
TFMDEF tfm_result tfm_beam_finish(tfm_beam *b);
/* >>search-api-end */

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
#ifndef TFM_FABSF
#define TFM_FABSF fabsf
#endif

#ifdef _OPENMP
#include <omp.h>
#if defined(__linux__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__))
#include <unistd.h>
#include <sys/syscall.h>
#if !defined(__USE_MISC) /* strict C modes hide it; the call is the same */
extern long syscall(long number, ...);
#endif
#define TFM__FUTEX 1 /* threads waiting at a barrier sleep in the kernel until woken */
#elif defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define TFM__YIELD() sched_yield()
#endif
#endif
#ifndef TFM__YIELD
#define TFM__YIELD() ((void)0)
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

/* Aligns the address (not only the offset), so a caller's unaligned static array works; a
   measuring pass (base NULL) may come out up to 63 bytes short, which every heap size adds. */
static void *tfm__arena_take(tfm__arena *a, size_t bytes) {
    size_t addr = (size_t)a->base, start;
    if (a->used == SIZE_MAX || a->used > SIZE_MAX - addr - 128) { a->used = SIZE_MAX; return NULL; }
    start = tfm__align_up(addr + a->used, 64) - addr;
    if (bytes > SIZE_MAX - start - 64) { a->used = SIZE_MAX; return NULL; }
    a->used = start + bytes;
    if (!a->base || a->used > a->cap) return NULL;
    return a->base + start;
}

/* tfm__arena_take for n1 * n2 * n3 elements of `size` bytes, overflow-checked (32-bit targets). */
static void *tfm__arena_array(tfm__arena *a, size_t n1, size_t n2, size_t n3, size_t size) {
    size_t n = size;
    if ((n1 && n > SIZE_MAX / n1) || ((n *= n1), (n2 && n > SIZE_MAX / n2)) || ((n *= n2), (n3 && n > SIZE_MAX / n3))) {
        a->used = SIZE_MAX;
        return NULL;
    }
    return tfm__arena_take(a, n * n3);
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

/* 1 / d for a block scale, or 0 where d is 0 or so small (under 2^-128) that its inverse is
   infinite: such a block quantizes to zeros (its fp16 scale is 0 anyway) rather than through
   the undefined conversion of an infinity, the same in the plain and the SIMD quantizers. */
static float tfm__inv_scale(float d) {
    const float id = d != 0 ? 1.0f / d : 0.0f;
    return id <= 3.40282347e38f && id >= -3.40282347e38f ? id : 0.0f;
}

static void tfm__quantize_q8_0(const float *x, tfm_block_q8_0 *b, int64_t n) {
    int64_t i;
    int j;
    for (i = 0; i < n / TFM_QK; i++, x += TFM_QK) {
        float amax = 0, d, id;
        for (j = 0; j < TFM_QK; j++) amax = TFM_FABSF(x[j]) > amax ? TFM_FABSF(x[j]) : amax;
        d = amax / 127.0f;
        id = tfm__inv_scale(d);
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
            if (TFM_FABSF(x[j]) > amax) { amax = TFM_FABSF(x[j]); max = x[j]; }
        d = max / -8.0f;
        id = tfm__inv_scale(d);
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

/* bad: 0 fine, 1 ran past the end (truncated), 2 impossible content (malformed) */
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
        if (r->bad) return;
        if (depth > 3 || et >= TFM_GGUF_TYPE_COUNT) { r->bad = 2; return; }
        if (n > r->n) { r->bad = 2; return; } /* more elements than the file has bytes */
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
    if (!tfm__gguf_scalar_size(t)) { r->bad = 2; return; }
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
    /* both counts are bounded by the file size; the products can still wrap a 32-bit size_t */
    if (nkv > (SIZE_MAX / 2 - 64) / sizeof(tfm_gguf_kv) || nt > (SIZE_MAX / 2 - 64) / sizeof(tfm_gguf_tensor)) return TFM_ERR_NOMEM;
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
        if (r->bad) return tfm__gguf_fail(g, r->bad == 1 ? TFM_ERR_TRUNCATED : TFM_ERR_FORMAT, r->bad == 1 ? "GGUF truncated in the value of " : "GGUF metadata value malformed: ", kv->key);
        if (tfm__str_eq(kv->key, "general.alignment")) {
            uint32_t a;
            tfm_str none = {"", 0};
            if (kv->type != TFM_GGUF_U32) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "general.alignment is not u32", none);
            memcpy(&a, kv->value, 4);
            if (a == 0 || (a & (a - 1)) || a > 65536) return tfm__gguf_fail(g, TFM_ERR_FORMAT, "general.alignment is not a power of two <= 65536", none);
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
    size_t need = 0;
    tfm__reader r;
    tfm_result rc;
    if (!g) return TFM_ERR_ARG;
    memset(g, 0, sizeof *g);
    rc = tfm__gguf_header(data, size, &g->version, &nt, &nkv, g->error, sizeof g->error);
    if (rc != TFM_OK) return rc;
    if (tfm_gguf_heap_size(data, size, &need) != TFM_OK) { tfm__set_error(g->error, sizeof g->error, "GGUF index larger than the address space", NULL, 0); return TFM_ERR_NOMEM; }
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
#if defined(__linux__) && !defined(MADV_HUGEPAGE) /* strict C modes hide it; the call is the same */
extern int madvise(void *addr, size_t len, int advice);
#define MADV_HUGEPAGE 14
#endif
#endif
#include <stdio.h>

/* Maps (or, without mmap, reads) a whole file. */
static tfm_result tfm__map_file(const char *path, void **map, size_t *size) {
#ifdef TFM__HAVE_MMAP
    struct stat st;
    int fd = open(path, O_RDONLY);
    void *p;
    if (fd < 0) return TFM_ERR_IO;
    if (fstat(fd, &st) != 0) { close(fd); return TFM_ERR_IO; }
    if (st.st_size <= 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX) { close(fd); return st.st_size == 0 ? TFM_ERR_TRUNCATED : TFM_ERR_IO; }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return TFM_ERR_IO;
#ifdef MADV_HUGEPAGE
    /* Each decoded token reads every weight: with 2 MB pages (where the page cache can hold the
       file in 2 MB folios) that is one TLB miss per 2 MB instead of per 4 KB. Measured on a
       virtual machine: TinyLlama-1.1B F32 decode 3x faster, first token 55 ms instead of 700. */
    madvise(p, (size_t)st.st_size, MADV_HUGEPAGE);
#endif
#if defined(__linux__)
    /* MADV_POPULATE_READ (Linux 5.14; older kernels refuse it, harmlessly): map the whole file now
       in one call instead of one page fault per page during the first token, which reads every
       weight anyway (TinyLlama-1.1B Q4_0, file in the page cache: open to first token ~20% less). */
    madvise(p, (size_t)st.st_size, 22);
#endif
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
    if (n == 0) { TFM_FREE(p); return TFM_ERR_TRUNCATED; }
    *map = p;
    *size = (size_t)n;
    return TFM_OK;
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

/* ===================================================================== >>kernels */
/* Every kernel has a plain C version, tfm__*_ref: the reference in tests and the fallback on any
   CPU. SIMD versions are chosen at compile time (AVX-512, AVX2 + FMA + F16C, NEON on AArch64);
   TFM_NO_SIMD keeps only the plain ones. The SIMD versions add in another order, so results
   differ from the plain ones by float rounding only (integer dot products of the quantized
   types are exact; see tests/test_kernels.c for the tolerances).
   Matrix products read each weight row once for all activation rows of a chunk: decode (one
   activation row) streams the rows in memory order; prefill and beams use register tiles
   (weight rows x activation rows: AVX-512 6 x 4 for floats, 8 x 3 quantized; AVX2 4 x 2 and
   8 x 1) over blocks of activation rows that fit the L2 cache, with weight panels in L1 (see
   tfm__frows_tiles). Each output is one accumulation in one order whatever the batch, so a
   token gives the same bits alone, in a prompt or among beams. A forward pass is one OpenMP
   parallel region whose threads take chunks of weight rows (and KV heads in attention) and
   meet at a spinning barrier between steps (see "threads" below). */

/* AVX-512 means F, BW, DQ, VL with VNNI (int8 dot products) and VBMI (block gathers): Ice Lake,
   Zen 4 and later. AVX-512 cores without both (Skylake-X, Cascade Lake, Cooper Lake) take the
   AVX2 kernels. */
#if !defined(TFM_NO_SIMD) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
#define TFM__AVX512 1
#if defined(__GNUC__) && !defined(__clang__) && defined(__cplusplus)
/* GCC's C++ front end warns inside the AVX-512 intrinsics (their "undefined" inputs) */
#define TFM__GCC_PRAGMAS 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#elif !defined(TFM_NO_SIMD) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define TFM__AVX2 1
#include <immintrin.h>
#elif !defined(TFM_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#define TFM__NEON 1
#include <arm_neon.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TFM__INLINE static inline __attribute__((always_inline))
#define TFM__REF static __attribute__((unused)) /* unused when a SIMD version replaces it */
#define TFM__OMP_ONLY static __attribute__((unused)) /* used only with OpenMP (tests call it) */
#else
#define TFM__INLINE static inline
#define TFM__REF static
#define TFM__OMP_ONLY static
#endif

/* ---------------------------------------------------------------- plain C reference kernels */

TFM__REF float tfm__dot_f32_ref(const float *a, const float *b, int64_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* y[i] += a * x[i] */
TFM__REF void tfm__axpy_ref(float *y, float a, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] += a * x[i];
}

/* Attention scores: p[i] = scale * (q . K[i]) for n keys of hd values (rows of K contiguous). */
TFM__REF void tfm__scores_ref(float *p, const float *q, const float *K, int64_t n, int64_t hd, float scale) {
    int64_t i;
    for (i = 0; i < n; i++) p[i] = tfm__dot_f32_ref(q, K + i * hd, hd) * scale;
}

/* Attention output: o = sum over i < n of p[i] * V[i] (hd values each). */
TFM__REF void tfm__mix_ref(float *o, const float *p, const float *V, int64_t n, int64_t hd) {
    int64_t i;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (i = 0; i < n; i++) tfm__axpy_ref(o, p[i], V + i * hd, hd);
}

/* tfm__scores_ref and tfm__mix_ref over an F16 cache. */
TFM__REF void tfm__scores_f16_ref(float *p, const float *q, const uint16_t *K, int64_t n, int64_t hd, float scale) {
    int64_t i, d;
    for (i = 0; i < n; i++) {
        float sum = 0;
        for (d = 0; d < hd; d++) sum += q[d] * tfm_fp16_to_fp32(K[i * hd + d]);
        p[i] = sum * scale;
    }
}

TFM__REF void tfm__mix_f16_ref(float *o, const float *p, const uint16_t *V, int64_t n, int64_t hd) {
    int64_t i, d;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (i = 0; i < n; i++)
        for (d = 0; d < hd; d++) o[d] += p[i] * tfm_fp16_to_fp32(V[i * hd + d]);
}

/* p = softmax(p), n >= 1. */
TFM__REF void tfm__softmax_ref(float *p, int64_t n) {
    float max = p[0], sum = 0;
    int64_t i;
    for (i = 1; i < n; i++) max = p[i] > max ? p[i] : max;
    for (i = 0; i < n; i++) { p[i] = TFM_EXPF(p[i] - max); sum += p[i]; }
    for (i = 0; i < n; i++) p[i] /= sum;
}

/* Scores, softmax and output of `group` query heads over an F16 cache (see tfm__attend_f16). */
TFM__REF void tfm__attend_f16_ref(float *p, size_t ps, const float *q, float *o, int32_t group, const uint16_t *K, const uint16_t *V, int64_t n, int64_t hd, float scale) {
    int32_t g;
    for (g = 0; g < group; g++) {
        tfm__scores_f16_ref(p + g * ps, q + g * hd, K, n, hd, scale);
        tfm__softmax_ref(p + g * ps, n);
        tfm__mix_f16_ref(o + g * hd, p + g * ps, V, n, hd);
    }
}

/* h = h * silu(gate) over n values (SwiGLU). */
TFM__REF void tfm__swiglu_ref(float *h, const float *gate, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) h[i] *= gate[i] / (1.0f + TFM_EXPF(-gate[i]));
}

/* Q8_0 weights . Q8_0 activations: integer sums per block, scaled by both block scales. */
static float tfm__dot_q8_0_ref(const tfm_block_q8_0 *w, const tfm_block_q8_0 *x, int64_t nb) {
    float sum = 0;
    int64_t i;
    int j;
    for (i = 0; i < nb; i++) {
        int32_t acc = 0;
        for (j = 0; j < TFM_QK; j++) acc += (int32_t)w[i].qs[j] * (int32_t)x[i].qs[j];
        sum += (float)acc * (tfm_fp16_to_fp32(w[i].d) * tfm_fp16_to_fp32(x[i].d));
    }
    return sum;
}

/* Q4_0 weights . Q8_0 activations. */
static float tfm__dot_q4_0_ref(const tfm_block_q4_0 *w, const tfm_block_q8_0 *x, int64_t nb) {
    float sum = 0;
    int64_t i;
    int j;
    for (i = 0; i < nb; i++) {
        int32_t acc = 0;
        for (j = 0; j < TFM_QK / 2; j++) {
            acc += ((w[i].qs[j] & 15) - 8) * (int32_t)x[i].qs[j];
            acc += ((w[i].qs[j] >> 4) - 8) * (int32_t)x[i].qs[j + TFM_QK / 2];
        }
        sum += (float)acc * (tfm_fp16_to_fp32(w[i].d) * tfm_fp16_to_fp32(x[i].d));
    }
    return sum;
}

/* ---------------------------------------------------------------- threads */
/* One forward pass runs in one OpenMP parallel region: the threads of a team walk the same code,
   split each step's work, and meet at a spinning barrier between steps. A parallel region per
   matrix product costs a fork and a join (and, with OMP_WAIT_POLICY=passive, waking sleeping
   threads) hundreds of times per token; a spinning barrier costs well under a microsecond. */
typedef struct {
    int n;            /* threads in the team */
    int arrived;      /* threads at the current barrier */
    int generation;   /* barriers passed */
    int sleepers;     /* threads asleep at the barrier (futex) */
    int64_t handed;   /* work items handed out, over all steps (see tfm__team_take) */
} tfm__team;

/* What a matrix product needs besides its operands: scratch, and the thread's place in its team. */
typedef struct {
    int n_threads;
    float *wrow;              /* [n_threads][wrow_stride] widened weight row (plain C F16/BF16) */
    int64_t wrow_stride;
    void *xq;                 /* quantized activation rows (layout depends on the kernel) */
    tfm__team *team;          /* the team this thread is in; NULL outside a forward pass */
    int tid;                  /* this thread's index in the team */
    int64_t seen;             /* team->handed at the start of this thread's current step */
    int xq_ready;             /* xq already holds this product's activations, quantized (see
                                 tfm__same_input) */
} tfm__mm_ctx;

#if defined(_OPENMP) && (defined(__GNUC__) || defined(__clang__))
#define TFM__FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define TFM__LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define TFM__STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#if defined(__x86_64__) || defined(__i386__)
#define TFM__PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define TFM__PAUSE() __asm__ __volatile__("yield")
#endif
#endif
#ifndef TFM__PAUSE
#define TFM__PAUSE() ((void)0)
#endif
#ifndef TFM__SPINS
#define TFM__SPINS 8192 /* pauses before sleeping: about 0.2 ms (a pause is ~20 ns on Zen 5), enough
                            to span a small model's layers run on thread 0 without a wake-up */
#endif

#ifdef TFM__FUTEX
/* Linux futex calls (the numbers are the kernel's ABI): wait while *word == value; wake all. */
static void tfm__futex_wait(int *word, int value) { syscall(SYS_futex, word, 0 | 128, value, NULL, NULL, 0); }
static void tfm__futex_wake(int *word) { syscall(SYS_futex, word, 1 | 128, 0x7fffffff, NULL, NULL, 0); }
#endif

/* All threads of the team wait here until every one has arrived. A waiting thread spins for a
   few microseconds (the next step is usually that close), then sleeps until the last one wakes
   it: on a busy machine a thread that lost its core must get one back, and a spinning thread
   would keep the scheduler from moving it to ours. */
static void tfm__sync(const tfm__mm_ctx *c) {
    tfm__team *t = c->team;
    if (!t || t->n <= 1) return;
#ifdef TFM__FETCH_ADD
    {
        const int gen = TFM__LOAD(&t->generation);
        long spins = 0;
        if (TFM__FETCH_ADD(&t->arrived, 1) == t->n - 1) {
            TFM__STORE(&t->arrived, 0);
            __atomic_store_n(&t->generation, gen + 1, __ATOMIC_SEQ_CST);
#ifdef TFM__FUTEX
            if (__atomic_load_n(&t->sleepers, __ATOMIC_SEQ_CST) > 0) tfm__futex_wake(&t->generation);
#endif
            return;
        }
        while (TFM__LOAD(&t->generation) == gen) {
            if (++spins < TFM__SPINS) { TFM__PAUSE(); continue; }
#ifdef TFM__FUTEX
            __atomic_fetch_add(&t->sleepers, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&t->generation, __ATOMIC_SEQ_CST) == gen) tfm__futex_wait(&t->generation, gen);
            __atomic_fetch_sub(&t->sleepers, 1, __ATOMIC_SEQ_CST);
#else
            TFM__YIELD();
#endif
        }
    }
#elif defined(_OPENMP)
#pragma omp barrier
#endif
}

/* The next of `count` work items of the current step for this thread, or -1 when all are taken.
   Every thread of the team calls it until it gets -1, so each step hands out exactly count + n
   numbers and every thread knows where the next step's numbering starts without a reset. */
static int64_t tfm__team_take(tfm__mm_ctx *c, int64_t count) {
    int64_t i;
    tfm__team *t = c->team;
#ifdef TFM__FETCH_ADD
    i = TFM__FETCH_ADD(&t->handed, 1);
#elif defined(_OPENMP)
#pragma omp atomic capture
    i = t->handed++;
#else
    i = t->handed++;
#endif
    i -= c->seen;
    if (i < count) return i;
    c->seen += count + t->n;
    return -1;
}

/* This thread's share [*lo, *hi) of n items split evenly over the team. */
static void tfm__team_range(const tfm__mm_ctx *c, int64_t n, int64_t *lo, int64_t *hi) {
    const int64_t k = c->team ? c->team->n : 1, t = c->team ? c->tid : 0;
    *lo = n * t / k;
    *hi = n * (t + 1) / k;
}

/* Bytes of quantized activations per row of n values, for any kernel (the plain one needs 34 per
   block, the AVX-512 one up to 96 per block plus a padded last group). */
static size_t tfm__xq_row_bytes(int64_t n) { return (size_t)(n / TFM_QK + 4) * 96; }

/* A product (or a layer whose largest step has) fewer multiply-adds than this runs on one thread
   of the team: a few microseconds of work, about what splitting it costs in meetings. With 2^16
   stories15M's layers split too. On two Zen 3 threads (2026-12-07, medians of seven alternating
   `bench -t 2` runs) its decode ran 18-29% faster than with 2^19: F32 592 -> 698, F16 1100 ->
   1392, Q8_0 1519 -> 1890, Q4_0 1830 -> 2358 tokens/s. With one core kept busy by another
   process, neither setting left the governor at two threads in 20 runs each. */
#define TFM__SPLIT_MACS ((int64_t)1 << 16)

/* Rows [r0, r1) of y = W x for the B activation rows, one weight row at a time. */
static void tfm__matmul_rows_ref(const tfm__mm_ctx *c, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t in = W->ne[0], nb = in / TFM_QK;
    const size_t row_size = tfm_type_row_size(W->type, in);
    const tfm_block_q8_0 *xq = (const tfm_block_q8_0 *)c->xq;
    int64_t r;
    int b;
    for (r = r0; r < r1; r++) {
        const void *row = (const unsigned char *)W->data + (size_t)r * row_size;
        switch (W->type) {
        case TFM_TYPE_F32:
            for (b = 0; b < B; b++) y[(size_t)b * ldy + r] = tfm__dot_f32_ref((const float *)row, x + (size_t)b * in, in);
            break;
        case TFM_TYPE_Q8_0:
            for (b = 0; b < B; b++) y[(size_t)b * ldy + r] = tfm__dot_q8_0_ref((const tfm_block_q8_0 *)row, xq + (size_t)b * nb, nb);
            break;
        case TFM_TYPE_Q4_0:
            for (b = 0; b < B; b++) y[(size_t)b * ldy + r] = tfm__dot_q4_0_ref((const tfm_block_q4_0 *)row, xq + (size_t)b * nb, nb);
            break;
        default: { /* F16, BF16: widen the row once, then plain dots */
            float *w = c->wrow + (size_t)c->tid * (size_t)c->wrow_stride;
            tfm_dequantize_row(W->type, row, w, in);
            for (b = 0; b < B; b++) y[(size_t)b * ldy + r] = tfm__dot_f32_ref(w, x + (size_t)b * in, in);
        }
        }
    }
}

typedef void (*tfm__rows_fn)(const tfm__mm_ctx *c, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1);
typedef void (*tfm__quant_fn)(tfm_type wt, const float *x, int64_t n, unsigned char *out);

static void tfm__quantize_act_ref(tfm_type wt, const float *x, int64_t n, unsigned char *out) {
    (void)wt;
    tfm__quantize_q8_0(x, (tfm_block_q8_0 *)(void *)out, n);
}

/* The team's step y = W x: the threads quantize the activation rows (quantized weights), then take
   chunks of weight rows as they come free (on a shared machine a thread that loses its core for
   a while does not hold up the others). About 8 chunks per thread, multiples of 16 rows. */
static void tfm__matmul_step(tfm__mm_ctx *c, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, tfm__rows_fn rows, tfm__quant_fn quant, size_t xq_row) {
    const int64_t in = W->ne[0], out = W->ne[1], nt = c->team->n;
    int64_t lo, hi, b, i;
    if ((W->type == TFM_TYPE_Q8_0 || W->type == TFM_TYPE_Q4_0) && !c->xq_ready) {
        tfm__team_range(c, B, &lo, &hi);
        for (b = lo; b < hi; b++) quant(W->type, x + (size_t)b * in, in, (unsigned char *)c->xq + (size_t)b * xq_row);
        tfm__sync(c);
    }
    if (nt == 1 || in * out * (int64_t)B < TFM__SPLIT_MACS) {
        if (c->tid == 0) rows(c, W, x, B, y, ldy, 0, out);
    } else {
        const int64_t chunk = ((out + nt * 8 - 1) / (nt * 8) + 15) / 16 * 16, n = (out + chunk - 1) / chunk;
        while ((i = tfm__team_take(c, n)) >= 0) rows(c, W, x, B, y, ldy, i * chunk, (i + 1) * chunk < out ? (i + 1) * chunk : out);
    }
    tfm__sync(c);
}

/* A product inside a forward pass is a step of its team; outside one (tests) it gets a team of
   c->n_threads for itself. */
static void tfm__matmul_any(tfm__mm_ctx *c, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, tfm__rows_fn rows, tfm__quant_fn quant, size_t xq_row) {
    tfm__team t;
    if (c->team) { tfm__matmul_step(c, W, x, B, y, ldy, rows, quant, xq_row); return; }
    memset(&t, 0, sizeof t);
    t.n = 1;
#ifdef _OPENMP
    if (c->n_threads > 1) {
#pragma omp parallel num_threads(c->n_threads)
        {
            tfm__mm_ctx me = *c;
#pragma omp single
            t.n = omp_get_num_threads();
            me.team = &t;
            me.tid = omp_get_thread_num();
            me.seen = 0;
            tfm__matmul_step(&me, W, x, B, y, ldy, rows, quant, xq_row);
        }
        return;
    }
#endif
    {
        tfm__mm_ctx me = *c;
        me.team = &t;
        me.tid = 0;
        me.seen = 0;
        tfm__matmul_step(&me, W, x, B, y, ldy, rows, quant, xq_row);
    }
}

/* y[b*ldy + r] = W[r] . x[b*in ..] for the B rows of x (W is {in, out}); quantized weights
   multiply activations quantized to Q8_0 (d = fp16(max|x| / 127), q = round(x / d)), the
   scheme the reference engine uses, so quantized models match it. */
TFM__REF void tfm__matmul_ref(tfm__mm_ctx *c, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy) {
    tfm__matmul_any(c, W, x, B, y, ldy, tfm__matmul_rows_ref, tfm__quantize_act_ref, (size_t)(W->ne[0] / TFM_QK) * sizeof(tfm_block_q8_0));
}

/* ---------------------------------------------------------------- SIMD float vectors */
/* One vector type per ISA with the handful of operations the float kernels need. */
#if defined(TFM__AVX512)
#define TFM__VL 16
#define TFM__MR 6 /* weight rows per register tile */
#define TFM__NR 4 /* activation rows per register tile */
typedef __m512 tfm__vf;
#define tfm__vf_zero() _mm512_setzero_ps()
#define tfm__vf_set1(a) _mm512_set1_ps(a)
#define tfm__vf_load(p) _mm512_loadu_ps(p)
#define tfm__vf_store(p, v) _mm512_storeu_ps(p, v)
#define tfm__vf_fma(a, b, c) _mm512_fmadd_ps(a, b, c) /* a * b + c */
#define tfm__vf_add(a, b) _mm512_add_ps(a, b)
#define tfm__vf_mul(a, b) _mm512_mul_ps(a, b)
#define tfm__vf_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define tfm__vf_bf16(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
TFM__INLINE float tfm__vf_sum(__m512 v) { return _mm512_reduce_add_ps(v); }
#elif defined(TFM__AVX2)
#define TFM__VL 8
#define TFM__MR 4
#define TFM__NR 2
typedef __m256 tfm__vf;
#define tfm__vf_zero() _mm256_setzero_ps()
#define tfm__vf_set1(a) _mm256_set1_ps(a)
#define tfm__vf_load(p) _mm256_loadu_ps(p)
#define tfm__vf_store(p, v) _mm256_storeu_ps(p, v)
#define tfm__vf_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define tfm__vf_add(a, b) _mm256_add_ps(a, b)
#define tfm__vf_mul(a, b) _mm256_mul_ps(a, b)
#define tfm__vf_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define tfm__vf_bf16(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
TFM__INLINE float tfm__vf_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
TFM__INLINE float tfm__vf_hmax(__m256 v) { /* the largest lane */
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
#elif defined(TFM__NEON)
#define TFM__VL 4
#define TFM__MR 4
#define TFM__NR 4
typedef float32x4_t tfm__vf;
#define tfm__vf_zero() vdupq_n_f32(0.0f)
#define tfm__vf_set1(a) vdupq_n_f32(a)
#define tfm__vf_load(p) vld1q_f32(p)
#define tfm__vf_store(p, v) vst1q_f32(p, v)
#define tfm__vf_fma(a, b, c) vfmaq_f32(c, a, b)
#define tfm__vf_add(a, b) vaddq_f32(a, b)
#define tfm__vf_mul(a, b) vmulq_f32(a, b)
#define tfm__vf_f16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)(p))))
#define tfm__vf_bf16(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)(p)), 16))
TFM__INLINE float tfm__vf_sum(float32x4_t v) { return vaddvq_f32(v); }
#endif

#if defined(TFM__AVX512)
/* The 16 horizontal sums of a[0..15] as one vector (lane k = sum of a[k]), by a transposing add
   tree: about 45 operations instead of about 150 for 16 separate sums. */
TFM__INLINE __m512 tfm__sum16(const __m512 *a) {
    __m512 b[8], c[4], e0, e1;
    int i;
    for (i = 0; i < 8; i++) /* per 128-bit lane: partial sums of a[2i] and a[2i+1] */
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (i = 0; i < 4; i++) /* per 128-bit lane: the lane's sums of a[4i .. 4i+3] */
        c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xee));
    e0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
    e1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(e0, e1, 0x88), _mm512_shuffle_f32x4(e0, e1, 0xdd));
}
#define tfm__sum_lanes tfm__sum16
#elif defined(TFM__AVX2)
/* The 8 horizontal sums of a[0..7] as one vector (lane k = sum of a[k]). */
TFM__INLINE __m256 tfm__sum8(const __m256 *a) {
    const __m256 b0 = _mm256_hadd_ps(a[0], a[1]), b1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 b2 = _mm256_hadd_ps(a[4], a[5]), b3 = _mm256_hadd_ps(a[6], a[7]);
    /* c0: the sums of a[0..3] over their low halves, then over their high halves; c1: a[4..7] */
    const __m256 c0 = _mm256_hadd_ps(b0, b1), c1 = _mm256_hadd_ps(b2, b3);
    return _mm256_add_ps(_mm256_permute2f128_ps(c0, c1, 0x20), _mm256_permute2f128_ps(c0, c1, 0x31));
}
#define tfm__sum_lanes tfm__sum8
#endif

#ifdef TFM__VL
static float tfm__dot_f32(const float *a, const float *b, int64_t n) {
    tfm__vf s0 = tfm__vf_zero(), s1 = tfm__vf_zero();
    float tail = 0;
    int64_t i = 0;
    for (; i + 2 * TFM__VL <= n; i += 2 * TFM__VL) {
        s0 = tfm__vf_fma(tfm__vf_load(a + i), tfm__vf_load(b + i), s0);
        s1 = tfm__vf_fma(tfm__vf_load(a + i + TFM__VL), tfm__vf_load(b + i + TFM__VL), s1);
    }
    for (; i + TFM__VL <= n; i += TFM__VL) s0 = tfm__vf_fma(tfm__vf_load(a + i), tfm__vf_load(b + i), s0);
    for (; i < n; i++) tail += a[i] * b[i];
    return tfm__vf_sum(s0) + tfm__vf_sum(s1) + tail;
}

static void tfm__axpy(float *y, float a, const float *x, int64_t n) {
    const tfm__vf va = tfm__vf_set1(a);
    int64_t i = 0;
    for (; i + TFM__VL <= n; i += TFM__VL) tfm__vf_store(y + i, tfm__vf_fma(va, tfm__vf_load(x + i), tfm__vf_load(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* n F16 values as floats (KV cache rows into a block buffer). */
static void tfm__f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + TFM__VL <= n; i += TFM__VL) tfm__vf_store(dst + i, tfm__vf_f16(src + i));
    for (; i < n; i++) dst[i] = tfm_fp16_to_fp32(src[i]);
}

#if defined(TFM__AVX512) || defined(TFM__AVX2)
static void tfm__scores(float *p, const float *q, const float *K, int64_t n, int64_t hd, float scale) {
    int64_t i = 0, d, k;
    if (hd % TFM__VL == 0 && hd <= TFM_MAX_HEAD_DIM)
        for (; i + TFM__VL <= n; i += TFM__VL) { /* VL keys at once, one add tree for their sums */
            tfm__vf acc[TFM__VL];
            for (k = 0; k < TFM__VL; k++) acc[k] = tfm__vf_zero();
            for (d = 0; d < hd; d += TFM__VL) {
                const tfm__vf qv = tfm__vf_load(q + d);
                for (k = 0; k < TFM__VL; k++) acc[k] = tfm__vf_fma(tfm__vf_load(K + (i + k) * hd + d), qv, acc[k]);
            }
            tfm__vf_store(p + i, tfm__vf_mul(tfm__sum_lanes(acc), tfm__vf_set1(scale)));
        }
    for (; i < n; i++) p[i] = tfm__dot_f32(q, K + i * hd, hd) * scale;
}

#if defined(TFM__AVX512)
#define tfm__vf_max(a, b) _mm512_max_ps(a, b)
#define tfm__vf_fnma(a, b, c) _mm512_fnmadd_ps(a, b, c) /* c - a * b */
#define tfm__vf_round(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define tfm__vf_exp2(e, k) _mm512_scalef_ps(e, k) /* e * 2^k */
#else
#define tfm__vf_max(a, b) _mm256_max_ps(a, b)
#define tfm__vf_fnma(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define tfm__vf_round(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* e * 2^k for integral k in [-126, 0] (tfm__exp_neg's range): 2^k built from its exponent bits */
#define tfm__vf_exp2(e, k) _mm256_mul_ps(e, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23)))
#endif

/* e^x for x <= 0 (softmax, after subtracting the max): x = k ln2 + r with |r| <= ln2 / 2, e^r
   by its Taylor polynomial of degree 7 (truncation under 6e-9 relative), times 2^k.
   Inputs below -87.3 give e^-87.3 (1e-38) instead of less: nothing a probability notices. */
TFM__INLINE tfm__vf tfm__exp_neg(tfm__vf x) {
    tfm__vf k, r, e;
    x = tfm__vf_max(x, tfm__vf_set1(-87.3f));
    k = tfm__vf_round(tfm__vf_mul(x, tfm__vf_set1(1.44269504f)));
    r = tfm__vf_fnma(k, tfm__vf_set1(0.693359375f), x); /* ln2 in two parts: k * hi is exact */
    r = tfm__vf_fnma(k, tfm__vf_set1(-2.12194440e-4f), r);
    e = tfm__vf_set1(1.0f / 5040);
    e = tfm__vf_fma(e, r, tfm__vf_set1(1.0f / 720));
    e = tfm__vf_fma(e, r, tfm__vf_set1(1.0f / 120));
    e = tfm__vf_fma(e, r, tfm__vf_set1(1.0f / 24));
    e = tfm__vf_fma(e, r, tfm__vf_set1(1.0f / 6));
    e = tfm__vf_fma(e, r, tfm__vf_set1(0.5f));
    e = tfm__vf_fma(e, r, tfm__vf_set1(1.0f));
    e = tfm__vf_fma(e, r, tfm__vf_set1(1.0f));
    return tfm__vf_exp2(e, k);
}
#endif

#if defined(TFM__AVX512)
/* The lanes of a 16-wide step that hold one of the `left` remaining values. */
TFM__INLINE __mmask16 tfm__lanes(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

/* tfm__softmax_ref with the exponentials 16 at a time (masked at the end). */
static void tfm__softmax(float *p, int64_t n) {
    __m512 vmax = _mm512_set1_ps(p[0]), vsum = _mm512_setzero_ps(), m, sum;
    int64_t i;
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = tfm__lanes(n - i);
        vmax = _mm512_mask_max_ps(vmax, k, vmax, _mm512_maskz_loadu_ps(k, p + i));
    }
    m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = tfm__lanes(n - i);
        const __m512 e = tfm__exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p + i), m));
        vsum = _mm512_mask_add_ps(vsum, k, vsum, e);
        _mm512_mask_storeu_ps(p + i, k, e);
    }
    sum = _mm512_set1_ps(_mm512_reduce_add_ps(vsum));
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = tfm__lanes(n - i);
        _mm512_mask_storeu_ps(p + i, k, _mm512_div_ps(_mm512_maskz_loadu_ps(k, p + i), sum));
    }
}
#elif defined(TFM__AVX2)
/* tfm__softmax_ref with the exponentials 8 at a time (the last n % 8 through TFM_EXPF). */
static void tfm__softmax(float *p, int64_t n) {
    const int64_t full = n / 8 * 8;
    __m256 vmax = _mm256_set1_ps(p[0]), vsum = _mm256_setzero_ps(), m8, sum8;
    float m, sum;
    int64_t i;
    for (i = 0; i < full; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p + i));
    m = tfm__vf_hmax(vmax);
    for (i = full; i < n; i++) m = p[i] > m ? p[i] : m;
    m8 = _mm256_set1_ps(m);
    for (i = 0; i < full; i += 8) {
        const __m256 e = tfm__exp_neg(_mm256_sub_ps(_mm256_loadu_ps(p + i), m8));
        vsum = _mm256_add_ps(vsum, e);
        _mm256_storeu_ps(p + i, e);
    }
    sum = tfm__vf_sum(vsum);
    for (i = full; i < n; i++) sum += p[i] = TFM_EXPF(p[i] - m);
    sum8 = _mm256_set1_ps(sum);
    for (i = 0; i < full; i += 8) _mm256_storeu_ps(p + i, _mm256_div_ps(_mm256_loadu_ps(p + i), sum8));
    for (i = full; i < n; i++) p[i] /= sum;
}
#else
static void tfm__scores(float *p, const float *q, const float *K, int64_t n, int64_t hd, float scale) {
    int64_t i;
    for (i = 0; i < n; i++) p[i] = tfm__dot_f32(q, K + i * hd, hd) * scale;
}
#define tfm__softmax tfm__softmax_ref
#endif

#if defined(TFM__AVX512) || defined(TFM__AVX2)
#if defined(TFM__AVX512)
#define tfm__vf_div(a, b) _mm512_div_ps(a, b)
#define tfm__vf_negabs(v) _mm512_or_ps(v, _mm512_set1_ps(-0.0f)) /* -|v| */
#define tfm__vf_if_neg(v, a, b) _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(v)), b, a) /* sign bit set: a */
#else
#define tfm__vf_div(a, b) _mm256_div_ps(a, b)
#define tfm__vf_negabs(v) _mm256_or_ps(v, _mm256_set1_ps(-0.0f))
#define tfm__vf_if_neg(v, a, b) _mm256_blendv_ps(b, a, v)
#endif

/* h * silu(g) for VL values. With t = e^-|g| (no overflow, tfm__exp_neg), sigmoid(g) is 1 / (1 + t)
   for g >= 0 and t / (1 + t) below. Lane by lane: a value's result does not depend on where it
   sits, so batch and thread splits give the same bits. */
TFM__INLINE tfm__vf tfm__swiglu_v(tfm__vf h, tfm__vf g) {
    const tfm__vf one = tfm__vf_set1(1.0f), t = tfm__exp_neg(tfm__vf_negabs(g));
    return tfm__vf_mul(h, tfm__vf_div(tfm__vf_mul(g, tfm__vf_if_neg(g, t, one)), tfm__vf_add(one, t)));
}

/* tfm__swiglu_ref with VL values at a time; the last n % VL go through the same lanes. On one
   Zen 3 thread libm's expf here was 7% of a stories15M prefill. */
static void tfm__swiglu(float *h, const float *gate, int64_t n) {
    int64_t i;
    for (i = 0; i + TFM__VL <= n; i += TFM__VL) tfm__vf_store(h + i, tfm__swiglu_v(tfm__vf_load(h + i), tfm__vf_load(gate + i)));
    if (i < n) {
        float a[TFM__VL] = {0}, g[TFM__VL] = {0};
        memcpy(a, h + i, (size_t)(n - i) * sizeof(float));
        memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
        tfm__vf_store(a, tfm__swiglu_v(tfm__vf_load(a), tfm__vf_load(g)));
        memcpy(h + i, a, (size_t)(n - i) * sizeof(float));
    }
}
#else
#define tfm__swiglu tfm__swiglu_ref
#endif

/* o[c .. c + NV vectors) = sum over the n keys of p[i] V[i][c ..]: the NV output vectors stay in
   registers, each one sum in key order (as tfm__mix_ref's). */
TFM__INLINE void tfm__mix_cols(int add, float *o, const float *p, const float *V, int64_t n, int64_t hd, int64_t c, int NV) {
    tfm__vf a[4];
    int64_t i;
    int j;
    for (j = 0; j < NV; j++) a[j] = add ? tfm__vf_load(o + c + j * TFM__VL) : tfm__vf_zero();
    for (i = 0; i < n; i++) {
        const tfm__vf pi = tfm__vf_set1(p[i]);
        const float *v = V + i * hd + c;
        for (j = 0; j < NV; j++) a[j] = tfm__vf_fma(pi, tfm__vf_load(v + j * TFM__VL), a[j]);
    }
    for (j = 0; j < NV; j++) tfm__vf_store(o + c + j * TFM__VL, a[j]);
}

/* o = (add ? o : 0) + sum over the n keys of p[i] V[i]. Adding block after block gives the bits
   of one pass: each output keeps one running sum in key order. */
TFM__INLINE void tfm__mix_t(int add, float *o, const float *p, const float *V, int64_t n, int64_t hd) {
    int64_t c = 0, i;
    for (; c + 4 * TFM__VL <= hd; c += 4 * TFM__VL) tfm__mix_cols(add, o, p, V, n, hd, c, 4);
    switch ((hd - c) / TFM__VL) { /* head sizes such as 48, 80 or 96 */
    case 3: tfm__mix_cols(add, o, p, V, n, hd, c, 3); c += 3 * TFM__VL; break;
    case 2: tfm__mix_cols(add, o, p, V, n, hd, c, 2); c += 2 * TFM__VL; break;
    case 1: tfm__mix_cols(add, o, p, V, n, hd, c, 1); c += TFM__VL; break;
    default: break;
    }
    if (c < hd) {
        if (!add) memset(o + c, 0, (size_t)(hd - c) * sizeof(float));
        for (i = 0; i < n; i++) tfm__axpy(o + c, p[i], V + i * hd + c, hd - c);
    }
}
static void tfm__mix(float *o, const float *p, const float *V, int64_t n, int64_t hd) { tfm__mix_t(0, o, p, V, n, hd); }

/* Values per block buffer of tfm__attend_f16, on the stack: VL rows of the longest head (AVX2:
   16 KB, AVX-512: 32 KB, NEON: 8 KB with TFM_MAX_HEAD_DIM 512). */
#define TFM__KV_BLOCK (TFM__VL * TFM_MAX_HEAD_DIM)

/* Attention of `group` query heads (q + g hd; scores and then probabilities into p + g ps, outputs
   into o + g hd) over n F16 keys and values: blocks of rows are widened once into a buffer and
   go through the F32 kernels for every head of the group, so GQA does not convert a row per
   head. Blocks start at multiples of VL rows, so the sums are those of tfm__scores / tfm__mix
   over the whole widened cache, bit for bit. */
static void tfm__attend_f16(float *p, size_t ps, const float *q, float *o, int32_t group, const uint16_t *K, const uint16_t *V, int64_t n, int64_t hd, float scale) {
    float buf[TFM__KV_BLOCK];
    const int64_t rows = TFM__KV_BLOCK / hd / TFM__VL * TFM__VL; /* hd <= TFM_MAX_HEAD_DIM: at least VL */
    int64_t i0;
    int32_t g;
    for (i0 = 0; i0 < n; i0 += rows) {
        const int64_t m = n - i0 < rows ? n - i0 : rows;
        tfm__f16_to_f32(buf, K + i0 * hd, m * hd);
        for (g = 0; g < group; g++) tfm__scores(p + g * ps + i0, q + g * hd, buf, m, hd, scale);
    }
    for (g = 0; g < group; g++) tfm__softmax(p + g * ps, n);
    for (i0 = 0; i0 < n; i0 += rows) {
        const int64_t m = n - i0 < rows ? n - i0 : rows;
        tfm__f16_to_f32(buf, V + i0 * hd, m * hd);
        for (g = 0; g < group; g++) tfm__mix_t(i0 > 0, o + g * hd, p + g * ps + i0, buf, m, hd);
    }
}

/* F32 weights on AVX-512 are read as two 32-byte halves: GGUF aligns tensors to 32 bytes, so a
   full-width load would straddle two cache lines every time, and even on aligned rows two halves
   streamed faster (45 vs 31 GB/s on the Zen 5 this was tuned on; no difference in prefill). */
#define TFM__F32_SPLIT ((tfm_type)1000)

/* VL weights of a row of type t starting at element k, widened to float. */
TFM__INLINE tfm__vf tfm__vf_weights(tfm_type t, const void *row, int64_t k) {
    if (t == TFM_TYPE_F16) return tfm__vf_f16((const uint16_t *)row + k);
    if (t == TFM_TYPE_BF16) return tfm__vf_bf16((const uint16_t *)row + k);
#if defined(TFM__AVX512)
    if (t == TFM__F32_SPLIT) {
        const float *p = (const float *)row + k;
        return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8), 1);
    }
#endif
    return tfm__vf_load((const float *)row + k);
}

TFM__INLINE float tfm__weight1(tfm_type t, const void *row, int64_t k) {
    if (t == TFM_TYPE_F16) return tfm_fp16_to_fp32(((const uint16_t *)row)[k]);
    if (t == TFM_TYPE_BF16) return tfm_bf16_to_fp32(((const uint16_t *)row)[k]);
    return ((const float *)row)[k];
}

/* Holds a loaded vector in a register: compilers otherwise fold the load into every FMA that
   uses it, which makes a register tile load-bound. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(TFM__AVX512) || defined(TFM__AVX2))
#define TFM__KEEP(v) __asm__("" : "+v"(v))
#else
#define TFM__KEEP(v) (void)0
#endif

/* Writes (or adds) the horizontal sums of an MR x NR tile of accumulators (acc[i * NR + j] for
   weight row i, activation row j) to y[j*ldy + i], for i < mr, j < nr. */
TFM__INLINE void tfm__tile_store(const tfm__vf *acc, int MR, int NR, int mr, int nr, float *y, int64_t ldy, int add) {
    float sums[TFM__MR * TFM__NR + 16];
    int i, j;
#if defined(TFM__AVX512)
    for (i = 0; i < MR * NR; i += 16) { /* the same add tree as decode (tfm__row_sums) */
        __m512 v[16];
        for (j = 0; j < 16; j++) v[j] = i + j < MR * NR ? acc[i + j] : _mm512_setzero_ps();
        _mm512_storeu_ps(sums + i, tfm__sum16(v));
    }
#else
    for (i = 0; i < MR * NR; i++) sums[i] = tfm__vf_sum(acc[i]);
#endif
    for (i = 0; i < mr; i++)
        for (j = 0; j < nr; j++) y[(size_t)j * ldy + i] = (add ? y[(size_t)j * ldy + i] : 0.0f) + sums[i * NR + j];
}

/* A tile's n accumulators at the start of k-block kb: zero for the first, else what tfm__tile_keep
   saved at the end of the one before (each output stays one sum in k order). */
TFM__INLINE void tfm__tile_resume(tfm__vf *acc, const tfm__vf *saved, int n, int64_t kb) {
    int i;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 32
#endif
    for (i = 0; i < n; i++) acc[i] = kb == 0 ? tfm__vf_zero() : saved[i];
}

TFM__INLINE void tfm__tile_keep(tfm__vf *saved, const tfm__vf *acc, int n) {
    int i;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 32
#endif
    for (i = 0; i < n; i++) saved[i] = acc[i];
}

/* y[i] = (sum of acc[i]) + tail[i] for the m <= 16 rows of a decode step. */
TFM__INLINE void tfm__row_sums(tfm__vf *acc, const float *tail, int m, float *y) {
    int i;
#if defined(TFM__AVX512)
    float sums[16];
    _mm512_storeu_ps(sums, tfm__sum16(acc));
    for (i = 0; i < m; i++) y[i] = sums[i] + tail[i];
#else
    for (i = 0; i < m; i++) y[i] = tfm__vf_sum(acc[i]) + tail[i];
#endif
}

/* Decode: rows [r0, r1) of a product with one activation row, 16 rows per add tree. The rows are
   read as S runs of 16-row units in lockstep, each run in memory order: S long sequential streams
   that prefetchers follow, and S independent chains of adds. Rows side by side instead (adjacent
   rows in lockstep) restart every stream at each row: on the Zen 5 this was tuned on they
   streamed at half the rate. rows_k computes K <= S rows' accumulators and scalar tails (fewer
   than S where a thread's chunk of rows has fewer than S units, or at its last row) into
   acc[k * 16] and tail[k * 16] (the unit's [stream][row] arrays). The driver and the kernels are
   inlined into each type's product (constant rows_k), and each call passes a constant K, so
   every K gets its own unrolled kernel. */
#define TFM__STREAMS_MAX 4
typedef void (*tfm__rows_k_fn)(const void *x, int64_t n, int K, const unsigned char *const *w, tfm__vf *acc, float *tail);
TFM__INLINE void tfm__decode_rows(int S, tfm__rows_k_fn rows_k, const void *x, int64_t n, const tfm_tensor *W, float *y, int64_t r0, int64_t r1) {
    const int64_t units = (r1 - r0 + 15) / 16, run = (units + S - 1) / S;
    const size_t ws = tfm_type_row_size(W->type, W->ne[0]);
    const unsigned char *wd = (const unsigned char *)W->data;
    int64_t u;
    int i, k;
    for (u = 0; u < run; u++) {
        tfm__vf acc[TFM__STREAMS_MAX][16];
        float tail[TFM__STREAMS_MAX][16];
        int64_t rs[TFM__STREAMS_MAX] = {0};
        int ns = 0; /* streams with rows left: the first ns; only the last can end inside a unit */
        for (k = 0; k < S && k * run + u < units; k++) rs[ns++] = r0 + 16 * (k * run + u);
        for (i = 0; i < 16; i++) {
            const unsigned char *w[TFM__STREAMS_MAX];
            const int nk = rs[ns - 1] + i < r1 ? ns : ns - 1; /* streams that have a row i */
            for (k = 0; k < ns; k++) w[k] = wd + (size_t)(rs[k] + i) * ws;
            if (nk < ns) {
                acc[ns - 1][i] = tfm__vf_zero();
                tail[ns - 1][i] = 0;
            }
            /* a constant K per call (S is constant too, so no kernel is built for K > S) */
            if (nk == S) rows_k(x, n, S, w, &acc[0][i], &tail[0][i]);
            else if (S > 1 && nk == 1) rows_k(x, n, 1, w, &acc[0][i], &tail[0][i]);
            else if (S > 2 && nk == 2) rows_k(x, n, 2, w, &acc[0][i], &tail[0][i]);
            else if (S > 3 && nk == 3) rows_k(x, n, 3, w, &acc[0][i], &tail[0][i]);
        }
        for (k = 0; k < ns; k++) tfm__row_sums(acc[k], tail[k], r1 - rs[k] < 16 ? (int)(r1 - rs[k]) : 16, y + rs[k]);
    }
}

#if defined(__GNUC__) || defined(__clang__)
#define TFM__PREFETCH(p) __builtin_prefetch(p)
#else
#define TFM__PREFETCH(p) (void)0
#endif

/* K weight rows' dots with x in lockstep: one accumulator per row (as in the tiles: the same
   sums) and a scalar tail, to acc[j * 16] and tail[j * 16] (see tfm__decode_rows); each row
   prefetches pf bytes ahead (0: none). */
TFM__INLINE void tfm__frows_k(tfm_type t, int pf, const float *x, int64_t n, int K, const unsigned char *const *w, tfm__vf *acc, float *tail) {
    const int64_t wb = t == TFM_TYPE_F16 || t == TFM_TYPE_BF16 ? 2 : 4; /* bytes per weight */
    tfm__vf s[TFM__STREAMS_MAX];
    int64_t k;
    int j;
    for (j = 0; j < K; j++) {
        s[j] = tfm__vf_zero();
        tail[j * 16] = 0;
    }
    for (k = 0; k + TFM__VL <= n; k += TFM__VL) {
        const tfm__vf xv = tfm__vf_load(x + k);
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 4
#endif
        for (j = 0; j < K; j++) {
            if (pf) TFM__PREFETCH(w[j] + k * wb + pf);
            s[j] = tfm__vf_fma(tfm__vf_weights(t, w[j], k), xv, s[j]);
        }
    }
    for (; k < n; k++) /* fmaf: decode and the tiles must round alike even where compilers
                          would contract a * b + c on their own (-ffp-contract=fast) */
        for (j = 0; j < K; j++) tail[j * 16] = fmaf(tfm__weight1(t, w[j], k), x[k], tail[j * 16]);
    for (j = 0; j < K; j++) acc[j * 16] = s[j];
}

/* Decode stream counts and prefetch distances per type, measured streaming TinyLlama-shaped
   matrices from memory on one core (kernel time / plain read time of the same bytes). Zen 5
   (AVX-512): F16 with four prefetching streams 1.04-1.07 (two streams, no prefetch: 0.82-0.85);
   F32 is best as two streams without prefetch (0.96-1.0; prefetching, 0.77-0.81). Zen 3 (AVX2,
   tools/kernel-bench, four-stream plain read): F32 four streams without prefetch 0.98-1.0 (two:
   0.84-0.85; prefetching 1-2 KB ahead 0.82-0.90), F16 four streams 0.87-0.92 with or without
   prefetch (two: 0.69-0.75). */
#if defined(TFM__AVX512)
#define TFM__F32_STREAMS 2
#else
#define TFM__F32_STREAMS 4
#endif
TFM__INLINE void tfm__frows_k_f32(const void *x, int64_t n, int K, const unsigned char *const *w, tfm__vf *acc, float *tail) {
#if defined(TFM__AVX512)
    tfm__frows_k(TFM__F32_SPLIT, 0, (const float *)x, n, K, w, acc, tail);
#else
    tfm__frows_k(TFM_TYPE_F32, 0, (const float *)x, n, K, w, acc, tail);
#endif
}
TFM__INLINE void tfm__frows_k_f16(const void *x, int64_t n, int K, const unsigned char *const *w, tfm__vf *acc, float *tail) {
    tfm__frows_k(TFM_TYPE_F16, 1024, (const float *)x, n, K, w, acc, tail);
}
TFM__INLINE void tfm__frows_k_bf16(const void *x, int64_t n, int K, const unsigned char *const *w, tfm__vf *acc, float *tail) {
    tfm__frows_k(TFM_TYPE_BF16, 1024, (const float *)x, n, K, w, acc, tail);
}

TFM__INLINE void tfm__frows1(tfm_type t, const tfm_tensor *W, const float *x, float *y, int64_t r0, int64_t r1) {
    if (t == TFM_TYPE_F16) tfm__decode_rows(4, tfm__frows_k_f16, x, W->ne[0], W, y, r0, r1);
    else if (t == TFM_TYPE_BF16) tfm__decode_rows(4, tfm__frows_k_bf16, x, W->ne[0], W, y, r0, r1);
    else tfm__decode_rows(TFM__F32_STREAMS, tfm__frows_k_f32, x, W->ne[0], W, y, r0, r1);
}

/* Prefill cache blocking. A weight tile (MR rows) is widened to float once per k-block into a
   panel that stays in L1 while every activation tile of the block runs over it; the
   activation rows of a block stay in L2. When a row is longer than one k-block the tile's
   accumulators are saved between k-blocks and reloaded: each output is still one accumulator
   summed in k order, bit for bit the sum decode makes. Panels and saved accumulators are on the
   stack: under 100 KB on AVX-512. */
#define TFM__KC 1024 /* values per panel row (one k-block: 24 KB panels of F32 on AVX-512) */
#define TFM__BBK 128 /* activation rows per block when rows span several k-blocks */

/* Activation rows per cache block: as many as fit in about 1 MB (the L2 cache of current cores;
   512 KB was slower: each weight is read from memory once per block), at most TFM__BBK when the
   rows span several (nkb) k-blocks (the saved accumulators are on the stack), a multiple of the
   register tile. */
static int tfm__block_rows(int64_t row_bytes, int nr, int64_t nkb) {
    int64_t rows = ((int64_t)1024 << 10) / (row_bytes > 0 ? row_bytes : 1);
    if (nkb > 1 && rows > TFM__BBK) rows = TFM__BBK;
    rows = rows / nr * nr;
    return rows < nr ? nr : rows > 4096 ? 4096 : (int)rows;
}

/* acc[i * NR + j] += panel row i . x[j] from value k0 on, kv vectors (register tile). With
   fill = 1 the weights come from the rows w and are written to the panel as they are used (the
   first tile of a panel overlaps reading the weights from memory with its arithmetic); with
   fill = 2 they come from the rows and there is no panel. */
TFM__INLINE void tfm__fkern(tfm_type t, const void *const *w, int fill, tfm__vf *panel, int64_t kv, const float *const *x, int64_t k0, int MR, int NR, tfm__vf *acc) {
    int64_t s;
    int i, j;
    for (s = 0; s < kv; s++) {
        tfm__vf a[TFM__MR];
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 8
#endif
        for (i = 0; i < MR; i++) {
            if (fill == 2) a[i] = tfm__vf_weights(t, w[i], k0 + s * TFM__VL);
            else if (fill) panel[s * MR + i] = a[i] = tfm__vf_weights(t, w[i], k0 + s * TFM__VL);
            else a[i] = panel[s * MR + i];
            TFM__KEEP(a[i]);
        }
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 8
#endif
        for (j = 0; j < NR; j++) {
            tfm__vf xv = tfm__vf_load(x[j] + k0 + s * TFM__VL);
            TFM__KEEP(xv);
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 8
#endif
            for (i = 0; i < MR; i++) acc[i * NR + j] = tfm__vf_fma(a[i], xv, acc[i * NR + j]);
        }
    }
}

/* Prefill: for each block of activation rows, each MR-row weight tile, each k-block: the panel,
   then every NR-row activation tile over it. */
TFM__INLINE void tfm__frows_tiles(tfm_type t, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    enum { MR = TFM__MR, NR = TFM__NR, KV = TFM__KC / TFM__VL };
    /* F16 / BF16 rows are read in place, whole (widening them in the loop cost less than the
       panel's k-blocks); F32 rows go through the panel, which also makes their loads aligned */
    const int direct = t != TFM_TYPE_F32;
    const int64_t in = W->ne[0], nv = in / TFM__VL, nkb = nv > 0 && !direct ? (nv + KV - 1) / KV : 1;
    const size_t ws = tfm_type_row_size(W->type, in);
    const unsigned char *wd = (const unsigned char *)W->data;
    const int bb = tfm__block_rows(in * 4, NR, nkb);
    tfm__vf panel[MR * KV], saved[(TFM__BBK / NR) * MR * NR];
    int64_t r, kb;
    int b0, b, i, j;
    for (b0 = 0; b0 < B; b0 += bb) {
        const int b1 = B - b0 < bb ? B : b0 + bb;
        for (r = r0; r < r1; r += MR) {
            const int mr = r1 - r < MR ? (int)(r1 - r) : MR;
            const void *wp[MR];
            for (i = 0; i < MR; i++) wp[i] = wd + (size_t)(r + (i < mr ? i : mr - 1)) * ws;
            for (kb = 0; kb < nkb; kb++) {
                const int64_t k0 = kb * KV * TFM__VL, kv = direct || nv - kb * KV < KV ? nv - kb * KV : (int64_t)KV;
                for (b = b0; b < b1; b += NR) {
                    const int nr = b1 - b < NR ? b1 - b : NR;
                    tfm__vf acc[MR * NR], *sv = saved + (size_t)((b - b0) / NR) * MR * NR;
                    const float *xp[NR];
                    for (j = 0; j < NR; j++) xp[j] = x + (size_t)(b + (j < nr ? j : nr - 1)) * (size_t)in;
                    tfm__tile_resume(acc, sv, MR * NR, kb);
                    if (direct) tfm__fkern(t, wp, 2, panel, kv, xp, k0, MR, NR, acc);
                    else if (b == b0) tfm__fkern(t, wp, 1, panel, kv, xp, k0, MR, NR, acc);
                    else tfm__fkern(t, wp, 0, panel, kv, xp, k0, MR, NR, acc);
                    if (kb + 1 < nkb) {
                        tfm__tile_keep(sv, acc, MR * NR);
                    } else {
                        float *yt = y + (size_t)b * ldy + r;
                        int add = 0;
                        if (nv * TFM__VL < in) { /* a row length that is not a multiple of the vector */
                            for (i = 0; i < mr; i++)
                                for (j = 0; j < nr; j++) {
                                    float tail = 0;
                                    int64_t k;
                                    for (k = nv * TFM__VL; k < in; k++) tail = fmaf(tfm__weight1(t, wp[i], k), xp[j][k], tail); /* as decode */
                                    yt[(size_t)j * ldy + i] = tail;
                                }
                            add = 1;
                        }
                        tfm__tile_store(acc, MR, NR, mr, nr, yt, ldy, add);
                    }
                }
            }
        }
    }
}

/* Rows [r0, r1) of a float-type product. */
TFM__INLINE void tfm__frows(tfm_type t, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    if (B == 1) { tfm__frows1(t, W, x, y, r0, r1); return; }
    /* tiles load F32 rows whole: the split load is a streaming trick for decode */
    tfm__frows_tiles(t == TFM__F32_SPLIT ? TFM_TYPE_F32 : t, W, x, B, y, ldy, r0, r1);
}
static void tfm__frows_f32(const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
#if defined(TFM__AVX512)
    tfm__frows(TFM__F32_SPLIT, W, x, B, y, ldy, r0, r1);
#else
    tfm__frows(TFM_TYPE_F32, W, x, B, y, ldy, r0, r1);
#endif
}
static void tfm__frows_f16(const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) { tfm__frows(TFM_TYPE_F16, W, x, B, y, ldy, r0, r1); }
static void tfm__frows_bf16(const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) { tfm__frows(TFM_TYPE_BF16, W, x, B, y, ldy, r0, r1); }
#else
#define tfm__dot_f32 tfm__dot_f32_ref
#define tfm__axpy tfm__axpy_ref
#define tfm__scores tfm__scores_ref
#define tfm__mix tfm__mix_ref
#define tfm__attend_f16 tfm__attend_f16_ref
#define tfm__softmax tfm__softmax_ref
#define tfm__swiglu tfm__swiglu_ref
static void tfm__f16_to_f32(float *dst, const uint16_t *src, int64_t n) { (void)tfm_dequantize_row(TFM_TYPE_F16, src, dst, n); }
#endif

/* ---------------------------------------------------------------- SIMD quantized products */

#if defined(TFM__AVX512) || defined(TFM__AVX2)
/* Activation rows are laid out for the kernel when they are quantized, in groups of blocks that
   fill one vector of TFM__VB bytes (AVX-512: 64, AVX2: 32) per operand:
     Q8_0 weights, VB/32 blocks: [VB int8 q][AVX-512: VB of int32 offset terms][VB of float d]
     Q4_0 weights, 4 blocks: AVX-512: [VB int8: q[0..15] of each block][VB int8: q[16..31] of each]
                             AVX2, blocks A B C D: [q[0..15] of A, B][q[16..31] of A, B]
                                                   [q[0..15] of C, D][q[16..31] of C, D]
                             then [VB of int32 offset terms: -8 * sum(q) of a block over its lanes]
                                  [VB of float d: each block's scale in its lanes]
   (TFM__QPOS and TFM__QLANE say where a value and a lane's share go). AVX2 packs the four
   blocks' int16 pair sums into one vector before widening (lanes A C A C | B D B D), so its
   conversions, scales and multiply-adds run once per 4 blocks instead of per 2: 4.8 instead of
   6.1 cycles per 64 weights of a row from L1 on the Zen 3 it was tuned on (four rows in lockstep;
   5.0 with two).
   Integer products multiply unsigned by signed bytes. VNNI's vpdpbusd sums them into int32: the
   weights enter as unsigned (Q8_0: q + 128, Q4_0: the raw nibble) and each accumulator starts at
   its lane's share of minus the offset times the block's activation sum. AVX2's vpmaddubsw sums
   pairs into saturating int16: Q4_0 nibbles (<= 15) times |q| <= 127 stay far below that, with
   the same offset terms; Q8_0 weights would not (255 * 127 * 2), so they enter as |w| and their
   signs move onto the activations (|q| <= 127: the negation cannot overflow), no offset. Exact
   integer arithmetic either way, as in the plain kernels. A partial last group has zero blocks. */
#if defined(TFM__AVX512)
typedef __m512i tfm__vi;
#define TFM__VB 64
#define TFM__QOFF8 1 /* Q8_0 products carry an offset term */
#define tfm__vi_load(p) _mm512_loadu_si512((const void *)(p))
#define tfm__vi_zero() _mm512_setzero_si512()
#define tfm__vi_float(v) _mm512_cvtepi32_ps(v)
#define tfm__vi_as_vf(v) _mm512_castsi512_ps(v)
#define tfm__vf_as_vi(v) _mm512_castps_si512(v)
#else
typedef __m256i tfm__vi;
#define TFM__VB 32
#define TFM__QOFF8 0
#define tfm__vi_load(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define tfm__vi_zero() _mm256_setzero_si256()
#define tfm__vi_float(v) _mm256_cvtepi32_ps(v)
#define tfm__vi_as_vf(v) _mm256_castsi256_ps(v)
#define tfm__vf_as_vi(v) _mm256_castps_si256(v)
#endif
#define TFM__QG(q4) ((q4) ? 4 : TFM__VB / 32)                         /* blocks per group */
#define TFM__QXV(q4) ((q4) ? 2 * 4 * 16 / TFM__VB : 1)                /* q vectors per group */
#define TFM__QGB(q4) ((TFM__QXV(q4) + ((q4) ? 2 : 1 + TFM__QOFF8)) * TFM__VB) /* bytes per group */
#define TFM__QXI(q4) (TFM__QXV(q4) * TFM__VB)                          /* offset terms in a group */
#define TFM__QXD(q4) (TFM__QGB(q4) - TFM__VB)                         /* scales in a group */
#define TFM__QHAS_OFF(q4) ((q4) || TFM__QOFF8)
#if defined(TFM__AVX512)
/* Byte of a group holding value j (0..31) of its block k; lane holding share i of block k. */
#define TFM__QPOS(q4, k, j) ((q4) ? ((j) < 16 ? 0 : TFM__VB) + 16 * (k) + (j) % 16 : 32 * (k) + (j))
#define TFM__QLANE(q4, k, i) ((k) * (TFM__VL / TFM__QG(q4)) + (i))
#else
#define TFM__QPOS(q4, k, j) ((q4) ? 64 * ((k) >> 1) + ((j) < 16 ? 0 : 32) + 16 * ((k) & 1) + (j) % 16 : (j))
#define TFM__QLANE(q4, k, i) ((q4) ? 4 * ((k) & 1) + ((k) >> 1) + 2 * (i) : (i))
#endif
/* Panel vectors per row and group (tfm__qpack): the integer vectors of a tfm__qwg (Q4_0: low and
   high nibbles, AVX2: of blocks A B and of C D; AVX2 Q8_0: |q| and q; AVX-512 Q8_0: q + 128 once)
   and the scales. */
#define TFM__QW(q4) ((q4) ? 1 + TFM__QXV(q4) : TFM__QOFF8 ? 2 : 3)

/* One weight row's group as the kernel uses it: QW - 1 integer vectors and the scales per lane. */
typedef struct {
    tfm__vi v0, v1, v2, v3; /* named, not an array: gcc copied arrays of vectors through the stack */
    tfm__vf d;
} tfm__qwg;

/* One activation group's vectors: its q values (the first TFM__QXV), offset terms (zero where the
   layout has none) and scales. */
typedef struct {
    tfm__vi x0, x1, x2, x3, off;
    tfm__vf dx;
} tfm__qx;

#if defined(TFM__AVX512)
/* One block as tfm__quantize_q8_0 makes it, bit for bit (the same float operations in the same
   order: d = max|x| / 127, q = trunc(x * (1/d) +- 0.5)), plus the sum of q and d as a float. */
TFM__INLINE void tfm__quantize_block(const float *x, int8_t *q, float *d, int32_t *sum) {
    const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    const float dd = amax / 127.0f, id = tfm__inv_scale(dd);
    const __m512 vid = _mm512_set1_ps(id), half = _mm512_set1_ps(0.5f);
    const __m512 ta = _mm512_mul_ps(a, vid), tb = _mm512_mul_ps(b, vid);
    const __m512 ra = _mm512_add_ps(ta, _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(ta), sign), _mm512_castps_si512(half))));
    const __m512 rb = _mm512_add_ps(tb, _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(tb), sign), _mm512_castps_si512(half))));
    const __m512i ia = _mm512_cvttps_epi32(ra), ib = _mm512_cvttps_epi32(rb);
    _mm_storeu_si128((__m128i *)(void *)q, _mm512_cvtepi32_epi8(ia));
    _mm_storeu_si128((__m128i *)(void *)(q + 16), _mm512_cvtepi32_epi8(ib));
    *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(ia, ib));
    *d = tfm_fp16_to_fp32(tfm_fp32_to_fp16(dd));
}
#else
/* As the AVX-512 tfm__quantize_block, 8 values at a time (bit for bit tfm__quantize_q8_0). */
TFM__INLINE void tfm__quantize_block(const float *x, int8_t *q, float *d, int32_t *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
    __m256 v[4];
    __m256i iv[4], b;
    __m128i s;
    float amax, dd, id;
    int i;
    for (i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = tfm__vf_hmax(_mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])), _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3]))));
    dd = amax / 127.0f;
    id = tfm__inv_scale(dd);
    for (i = 0; i < 4; i++) {
        const __m256 t = _mm256_mul_ps(v[i], _mm256_set1_ps(id));
        iv[i] = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_or_ps(_mm256_and_ps(t, sign), half)));
    }
    /* |q| <= 127: the saturating packs are exact; they interleave 4-byte runs across the lanes */
    b = _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
    _mm256_storeu_si256((__m256i *)(void *)q, _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    b = _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
    s = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    *sum = _mm_cvtsi128_si32(s);
    *d = tfm_fp16_to_fp32(tfm_fp32_to_fp16(dd));
}
#endif

static void tfm__quantize_act(tfm_type wt, const float *x, int64_t n, unsigned char *out) {
    const int q4 = wt == TFM_TYPE_Q4_0, per = TFM__QG(q4), lanes = TFM__VL / per;
    const int32_t share = TFM__QHAS_OFF(q4) ? (q4 ? -8 : -128) / lanes : 0; /* each lane's part of the offset (8 or 128) */
    const int64_t nb = n / TFM_QK, ng = (nb + per - 1) / per;
    int64_t i;
    int j;
    memset(out + (size_t)(ng - 1) * TFM__QGB(q4), 0, TFM__QGB(q4)); /* a partial last group */
    for (i = 0; i < nb; i++) {
        struct { int8_t qs[TFM_QK]; } blk;
        unsigned char *g = out + (size_t)(i / per) * TFM__QGB(q4);
        int k = (int)(i % per);
        int32_t sum, init;
        float d;
        tfm__quantize_block(x + i * TFM_QK, blk.qs, &d, &sum);
        init = share * sum;
        memcpy(g + TFM__QPOS(q4, k, 0), blk.qs, 16);
        memcpy(g + TFM__QPOS(q4, k, 16), blk.qs + 16, 16);
        for (j = 0; j < lanes; j++) {
            if (TFM__QHAS_OFF(q4)) memcpy(g + TFM__QXI(q4) + 4 * TFM__QLANE(q4, k, j), &init, 4);
            memcpy(g + TFM__QXD(q4) + 4 * TFM__QLANE(q4, k, j), &d, 4);
        }
    }
}

#if defined(TFM__AVX512)
#define TFM__I16(a) a, a + 1, a + 2, a + 3, a + 4, a + 5, a + 6, a + 7, a + 8, a + 9, a + 10, a + 11, a + 12, a + 13, a + 14, a + 15
/* Where each q byte of a group sits in the weight bytes (blocks are 34 / 18 bytes, scale first). */
static const unsigned char tfm__q8_gather[64] = {TFM__I16(2), TFM__I16(18), TFM__I16(36), TFM__I16(52)};
static const unsigned char tfm__q4_gather[64] = {TFM__I16(2), TFM__I16(20), TFM__I16(38), TFM__I16(56)};
/* Which 16-bit word holds the scale for each int32 lane. */
static const unsigned short tfm__q8_scale[32] = {0, 0, 0, 0, 0, 0, 0, 0, 17, 17, 17, 17, 17, 17, 17, 17};
static const unsigned short tfm__q4_scale[32] = {0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27};

/* One weight row's group g: q bytes (Q8_0: + 128; Q4_0: low nibbles in lo, high in hi) and
   the scales per lane. Loads only the group's bytes (masked), never past the row. */
TFM__INLINE void tfm__qload(int q4, const unsigned char *p, int nblocks, tfm__qwg *w) {
    __m512i *lo = &w->v0, *hi = &w->v1;
    __m512 *d = &w->d;
    const int bytes = nblocks * (q4 ? 18 : 34);
    const __m512i gather = _mm512_loadu_si512(q4 ? tfm__q4_gather : tfm__q8_gather);
    const __m512i scale = _mm512_loadu_si512(q4 ? tfm__q4_scale : tfm__q8_scale);
    __m512i a, b, q;
    if (!q4 && nblocks == 2) { /* two 32-byte loads and broadcast scales: in-lane work only, which
                                   streamed 40% faster from memory than the byte gather below */
        uint16_t d0, d1;
        memcpy(&d0, p, 2);
        memcpy(&d1, p + 34, 2);
        q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2))), _mm256_loadu_si256((const __m256i *)(const void *)(p + 36)), 1);
        *d = _mm512_cvtph_ps(_mm256_mask_set1_epi16(_mm256_set1_epi16((short)d0), 0xff00, (short)d1));
        *lo = _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
        *hi = *lo;
        return;
    }
    if (q4 && nblocks == 4) {
        a = _mm512_loadu_si512(p);
        b = _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(const void *)(p + 64))); /* Q4_0: 8 bytes */
    } else {
        a = _mm512_maskz_loadu_epi8(bytes >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << bytes) - 1), p);
        b = _mm512_setzero_si512();
    }
    q = _mm512_permutex2var_epi8(a, gather, b);
    *d = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(scale, a)));
    if (q4) {
        const __m512i m = _mm512_set1_epi8(15);
        *lo = _mm512_and_si512(q, m);
        *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
    } else {
        *lo = _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
        *hi = *lo;
    }
}

/* The integer dot of a weight group (tfm__qload's lo in v0, hi in v1) with an activation group
   (its q vectors x0, x1 and offset terms), per lane. */
TFM__INLINE __m512i tfm__qdot(int q4, const tfm__qwg *w, const tfm__qx *a) {
    const __m512i s = _mm512_dpbusd_epi32(a->off, w->v0, a->x0);
    return q4 ? _mm512_dpbusd_epi32(s, w->v1, a->x1) : s;
}

#define TFM__QMR 8 /* weight rows per quantized register tile */
#define TFM__QNR 3 /* activation rows per quantized register tile */
#define TFM__QKG(q4) ((q4) ? 16 : 24) /* groups per k-block: 2048 / 1536 values, panels of 24 KB */
/* Decode streams and prefetch distances (see tfm__decode_rows), measured on one Zen 5 core
   streaming TinyLlama-shaped matrices from memory (kernel time / plain read time): Q8_0 four
   prefetching streams 0.98-1.04, one row after another 0.72-0.80. Q4_0 is bound by its
   arithmetic (4.7-5 cycles per row and 4-block group from L1): four streams (with or without
   prefetch) ran 15-25% slower on rows held in cache (stories15M), while from memory they gained
   less than the noise of a whole decode, so it reads one row after another. */
#define TFM__QSTREAMS(q4) ((q4) ? 1 : 4)
#define TFM__QSTREAMS_SHORT(q4) TFM__QSTREAMS(q4)
#define TFM__QPF(q4) ((q4) ? 0 : 2048)
#else
/* The 16 nibble bytes of Q4_0 blocks p and p + 18 (those of the nblocks there; zeros for the
   rest), as one vector. Two blocks load 32 bytes at p + 2 and p + 4 (both inside the two blocks)
   and keep a half of each: a blend, where inserting a 16-byte load costs more. */
TFM__INLINE __m256i tfm__q4_pair(const unsigned char *p, int nblocks) {
    if (nblocks >= 2) return _mm256_blend_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2)), _mm256_loadu_si256((const __m256i *)(const void *)(p + 4)), 0xf0);
    return _mm256_inserti128_si256(_mm256_setzero_si256(), nblocks == 1 ? _mm_loadu_si128((const __m128i *)(const void *)(p + 2)) : _mm_setzero_si128(), 0);
}

/* A block's scale bits, 0 past the group's blocks. */
TFM__INLINE uint64_t tfm__q_scale_bits(const unsigned char *p, int k, int nblocks) {
    uint16_t d = 0;
    if (k < nblocks) memcpy(&d, p + 18 * k, 2);
    return d;
}

/* One weight row's group: Q4_0: the low and high nibbles of blocks A B (v0, v1) and C D (v2, v3)
   and the scales in the lanes A C A C | B D B D; Q8_0: |q| in v0, q in v1, the scale in every
   lane. Never reads past the group's blocks. */
TFM__INLINE void tfm__qload(int q4, const unsigned char *p, int nblocks, tfm__qwg *w) {
    if (q4) {
        const __m256i m = _mm256_set1_epi8(15);
        const __m256i ab = tfm__q4_pair(p, nblocks), cd = tfm__q4_pair(p + 36, nblocks - 2);
        const uint64_t h = tfm__q_scale_bits(p, 0, nblocks) | tfm__q_scale_bits(p, 2, nblocks) << 16 | tfm__q_scale_bits(p, 1, nblocks) << 32 | tfm__q_scale_bits(p, 3, nblocks) << 48;
        w->v0 = _mm256_and_si256(ab, m);
        w->v1 = _mm256_and_si256(_mm256_srli_epi16(ab, 4), m);
        w->v2 = _mm256_and_si256(cd, m);
        w->v3 = _mm256_and_si256(_mm256_srli_epi16(cd, 4), m);
        w->d = _mm256_cvtph_ps(_mm_shuffle_epi8(_mm_set_epi64x(0, (long long)h), _mm_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7)));
    } else {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2));
        uint16_t d0;
        memcpy(&d0, p, 2);
        (void)nblocks;
        w->v0 = _mm256_sign_epi8(q, q);
        w->v1 = w->v2 = w->v3 = q;
        w->d = _mm256_cvtph_ps(_mm_set1_epi16((short)d0));
    }
}

/* Q4_0: each pair of blocks' int16 pair sums (at most 2 * 2 * 15 * 127), then the two pairs'
   interleaved and added (at most 15240: no int16 overflow), widened once. */
TFM__INLINE __m256i tfm__qdot(int q4, const tfm__qwg *w, const tfm__qx *a) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (q4) {
        const __m256i ab = _mm256_add_epi16(_mm256_maddubs_epi16(w->v0, a->x0), _mm256_maddubs_epi16(w->v1, a->x1));
        const __m256i cd = _mm256_add_epi16(_mm256_maddubs_epi16(w->v2, a->x2), _mm256_maddubs_epi16(w->v3, a->x3));
        const __m256i t = _mm256_add_epi16(_mm256_unpacklo_epi32(ab, cd), _mm256_unpackhi_epi32(ab, cd));
        return _mm256_add_epi32(_mm256_madd_epi16(t, ones), a->off);
    }
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w->v0, _mm256_sign_epi8(a->x0, w->v1)), ones);
}

/* Tiles of 8 weight rows x 1 activation row: the activation group stays in registers while the
   8 rows' panel vectors stream from L1. On the Zen 3 this was tuned on (one core, 128 rows,
   768 x 2048 and 2048 x 5632) Q4_0 ran at 45-49 G multiply-adds/s against 40 for 4 x 2 and
   28-44 for the other shapes tried (2 x 4, 3 x 3, 4 x 3, 6 x 1, 10 x 1, 12 x 1); Q8_0 at 29-30
   with any. With Q4_0 groups of 4 blocks (5 panel vectors a row) 8 x 1 ran 2048 x 2048 at 41-43
   against 36-38 before, and 4 x 1, 6 x 1, 4 x 2, 2 x 2 were no better (tools/kernel-bench, 64
   rows, alternating). */
#define TFM__QMR 8
#define TFM__QNR 1
#define TFM__QKG(q4) ((q4) ? 16 : 32) /* 2048 / 1024 values, panels of 20 / 24 KB */
/* Decode on the same Zen 3, streaming 2048 x 5632 matrices from memory (tools/kernel-bench:
   kernel time / four-stream read time): Q8_0 four streams prefetching 2 KB ahead 0.73-0.89 (two
   streams 0.62-0.68). Q4_0 with groups of 4 blocks: four streams 1 KB ahead 0.61-0.71, two
   0.57-0.67, no prefetch 0.46-0.58 (groups of 2 blocks, two streams: 0.55-0.65). On one core of it
   both are bound by their arithmetic: from L2 they run no faster. */
#define TFM__QSTREAMS(q4) 4
/* Rows under 1024 values read as two streams: Q4_0 rows of 288 values (stories15M) ran faster so
   (tools/kernel-bench --in 288 --out 32000, alternating runs: two streams 40-48 G multiply-adds/s
   on two threads and 21-26 on one, four streams 35-41 and 18-22), TinyLlama's long rows slower
   (decode 55-60% of the bandwidth on one thread against 64-67%). */
#define TFM__QSTREAMS_SHORT(q4) ((q4) ? 2 : 4)
#define TFM__QPF(q4) ((q4) ? 1024 : 2048)
#endif

TFM__INLINE tfm__qx tfm__qx_load(int q4, const unsigned char *xg) {
    tfm__qx a;
    a.x0 = tfm__vi_load(xg);
    a.x1 = TFM__QXV(q4) > 1 ? tfm__vi_load(xg + TFM__VB) : a.x0;
    a.x2 = TFM__QXV(q4) > 2 ? tfm__vi_load(xg + 2 * TFM__VB) : a.x0;
    a.x3 = TFM__QXV(q4) > 3 ? tfm__vi_load(xg + 3 * TFM__VB) : a.x0;
    a.off = TFM__QHAS_OFF(q4) ? tfm__vi_load(xg + TFM__QXI(q4)) : tfm__vi_zero();
    a.dx = tfm__vf_load((const float *)(const void *)(xg + TFM__QXD(q4)));
    return a;
}

/* acc + (integer dot of weight group w with activation group a) * dx * dw: the one sequence
   decode and the tiles both use, so their sums are the same bits. */
TFM__INLINE tfm__vf tfm__qmac(int q4, const tfm__qwg *w, const tfm__qx *a, tfm__vf acc) {
    return tfm__vf_fma(tfm__vf_mul(tfm__vi_float(tfm__qdot(q4, w, a)), a->dx), w->d, acc);
}

/* acc[k] += (integer dot of group g) * dx * dw for K weight rows w[k] and one activation row:
   the group's activation vectors are loaded once for all K rows. Each row prefetches pf bytes
   ahead (0: none). */
TFM__INLINE void tfm__qstep(int q4, int pf, int K, const unsigned char *const *w, int64_t g, int nblk, const unsigned char *xq, tfm__vf *acc) {
    const size_t off = (size_t)g * TFM__QG(q4) * (q4 ? 18 : 34);
    const tfm__qx a = tfm__qx_load(q4, xq + (size_t)g * TFM__QGB(q4));
    int k;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 4
#endif
    for (k = 0; k < K; k++) {
        tfm__qwg wg;
        if (pf) TFM__PREFETCH(w[k] + off + pf);
        tfm__qload(q4, w[k] + off, nblk, &wg);
        acc[k] = tfm__qmac(q4, &wg, &a, acc[k]);
    }
}

/* The panel of a quantized weight tile: tfm__qload's vectors for groups g0 .. g0 + kg - 1 of each
   row, panel[(g * MR + i) * QW + {0 .. QW - 2: tfm__qwg's v, QW - 1: scales}]. (Unpacking
   in the first tile instead, as the float tiles do, was slower on AVX-512.) */
TFM__INLINE void tfm__qpack(int q4, const unsigned char *const *w, int MR, int64_t g0, int64_t kg, int64_t nb, tfm__vi *panel) {
    const int per = TFM__QG(q4), qw = TFM__QW(q4);
    const size_t wgb = (size_t)per * (q4 ? 18 : 34);
    int64_t g;
    int i;
    for (g = 0; g < kg; g++) {
        const int64_t gg = g0 + g;
        const int nblk = nb - gg * per < per ? (int)(nb - gg * per) : per;
        for (i = 0; i < MR; i++) {
            tfm__vi *p = panel + (g * MR + i) * qw;
            tfm__qwg wg;
            tfm__qload(q4, w[i] + (size_t)gg * wgb, nblk, &wg);
            p[0] = wg.v0;
            if (qw > 2) p[1] = wg.v1;
            if (qw > 3) {
                p[2] = wg.v2;
                p[3] = wg.v3;
            }
            p[qw - 1] = tfm__vf_as_vi(wg.d);
        }
    }
}

/* acc[i * NR + j] += panel row i . activation row xa[j] over the panel's kg groups (from group
   g0): tfm__qstep's arithmetic, with a weight row's vectors held in registers for the tile's
   activation rows. */
TFM__INLINE void tfm__qkern(int q4, const tfm__vi *panel, int64_t kg, const unsigned char *const *xa, int64_t g0, int MR, int NR, tfm__vf *acc) {
    const int qw = TFM__QW(q4);
    int64_t g;
    int i, j;
    for (g = 0; g < kg; g++) {
        const tfm__vi *pw = panel + g * MR * qw;
        const size_t xo = (size_t)(g0 + g) * TFM__QGB(q4);
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 8
#endif
        for (i = 0; i < MR; i++) {
            tfm__qwg wg;
            wg.v0 = pw[i * qw];
            wg.v1 = qw > 2 ? pw[i * qw + 1] : wg.v0;
            wg.v2 = qw > 3 ? pw[i * qw + 2] : wg.v0;
            wg.v3 = qw > 3 ? pw[i * qw + 3] : wg.v0;
            wg.d = tfm__vi_as_vf(pw[i * qw + qw - 1]);
            TFM__KEEP(wg.v0);
            if (qw > 2) TFM__KEEP(wg.v1);
            if (qw > 3) {
                TFM__KEEP(wg.v2);
                TFM__KEEP(wg.v3);
            }
            TFM__KEEP(wg.d);
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 8
#endif
            for (j = 0; j < NR; j++) {
                const tfm__qx a = tfm__qx_load(q4, xa[j] + xo);
                acc[i * NR + j] = tfm__qmac(q4, &wg, &a, acc[i * NR + j]);
            }
        }
    }
}

/* Prefill: as tfm__frows_tiles, with panels of unpacked quantized groups. */
TFM__INLINE void tfm__qrows_tiles(int q4, const tfm__mm_ctx *c, const tfm_tensor *W, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    enum { MR = TFM__QMR, NR = TFM__QNR };
    const int64_t in = W->ne[0], nb = in / TFM_QK, per = TFM__QG(q4), ng = (nb + per - 1) / per, kgm = TFM__QKG(q4);
    const int64_t nkb = (ng + kgm - 1) / kgm;
    const size_t ws = tfm_type_row_size(W->type, in), xs = tfm__xq_row_bytes(in);
    const int bb = tfm__block_rows((int64_t)xs, NR, nkb);
    const unsigned char *wd = (const unsigned char *)W->data, *xq = (const unsigned char *)c->xq;
    tfm__vi panel[MR * (TFM__QW(1) * TFM__QKG(1) > TFM__QW(0) * TFM__QKG(0) ? TFM__QW(1) * TFM__QKG(1) : TFM__QW(0) * TFM__QKG(0))];
    tfm__vf saved[(TFM__BBK / NR) * MR * NR];
    int64_t r, kb;
    int b0, b, i, j;
    for (b0 = 0; b0 < B; b0 += bb) {
        const int b1 = B - b0 < bb ? B : b0 + bb;
        for (r = r0; r < r1; r += MR) {
            const int mr = r1 - r < MR ? (int)(r1 - r) : MR;
            const unsigned char *wp[MR];
            for (i = 0; i < MR; i++) wp[i] = wd + (size_t)(r + (i < mr ? i : mr - 1)) * ws;
            for (kb = 0; kb < nkb; kb++) {
                const int64_t g0 = kb * kgm, kg = ng - g0 < kgm ? ng - g0 : kgm;
                tfm__qpack(q4, wp, MR, g0, kg, nb, panel);
                for (b = b0; b < b1; b += NR) {
                    const int nr = b1 - b < NR ? b1 - b : NR;
                    tfm__vf acc[MR * NR], *sv = saved + (size_t)((b - b0) / NR) * MR * NR;
                    const unsigned char *xp[NR];
                    for (j = 0; j < NR; j++) xp[j] = xq + (size_t)(b + (j < nr ? j : nr - 1)) * xs;
                    tfm__tile_resume(acc, sv, MR * NR, kb);
                    tfm__qkern(q4, panel, kg, xp, g0, MR, NR, acc);
                    if (kb + 1 < nkb) tfm__tile_keep(sv, acc, MR * NR);
                    else tfm__tile_store(acc, MR, NR, mr, nr, y + (size_t)b * ldy + r, ldy, 0);
                }
            }
        }
    }
}

/* K weight rows' dots with one quantized activation row xq (nb blocks), in lockstep: one
   accumulator per row, as in the tiles (the same sums), to out[k * 16] (see tfm__decode_rows).
   Full groups first, so their loop knows its block count. */
TFM__INLINE void tfm__qrows_k(int q4, int pf, const unsigned char *xq, int64_t nb, int K, const unsigned char *const *w, tfm__vf *out, float *tail) {
    const int per = TFM__QG(q4);
    const int64_t full = nb / per;
    tfm__vf acc[TFM__STREAMS_MAX];
    int64_t g;
    int k;
    for (k = 0; k < K; k++) acc[k] = tfm__vf_zero();
    for (g = 0; g < full; g++) tfm__qstep(q4, pf, K, w, g, per, xq, acc);
    if (full * per < nb) tfm__qstep(q4, pf, K, w, full, (int)(nb - full * per), xq, acc);
    for (k = 0; k < K; k++) {
        out[k * 16] = acc[k];
        tail[k * 16] = 0;
    }
}

TFM__INLINE void tfm__qrows_k_q8_0(const void *x, int64_t n, int K, const unsigned char *const *w, tfm__vf *acc, float *tail) {
    tfm__qrows_k(0, TFM__QPF(0), (const unsigned char *)x, n, K, w, acc, tail);
}
TFM__INLINE void tfm__qrows_k_q4_0(const void *x, int64_t n, int K, const unsigned char *const *w, tfm__vf *acc, float *tail) {
    tfm__qrows_k(1, TFM__QPF(1), (const unsigned char *)x, n, K, w, acc, tail);
}

TFM__INLINE void tfm__qrows(int q4, const tfm__mm_ctx *c, const tfm_tensor *W, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    if (B == 1 && W->ne[0] < 1024) tfm__decode_rows(TFM__QSTREAMS_SHORT(q4), q4 ? tfm__qrows_k_q4_0 : tfm__qrows_k_q8_0, c->xq, W->ne[0] / TFM_QK, W, y, r0, r1);
    else if (B == 1) tfm__decode_rows(TFM__QSTREAMS(q4), q4 ? tfm__qrows_k_q4_0 : tfm__qrows_k_q8_0, c->xq, W->ne[0] / TFM_QK, W, y, r0, r1);
    else tfm__qrows_tiles(q4, c, W, B, y, ldy, r0, r1);
}
static void tfm__qrows_q8_0(const tfm__mm_ctx *c, const tfm_tensor *W, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) { tfm__qrows(0, c, W, B, y, ldy, r0, r1); }
static void tfm__qrows_q4_0(const tfm__mm_ctx *c, const tfm_tensor *W, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) { tfm__qrows(1, c, W, B, y, ldy, r0, r1); }
#define TFM__HAVE_QROWS 1

#elif defined(TFM__NEON)
/* Activations stay plain Q8_0 blocks; one block of 32 products per step. */
static void tfm__quantize_act(tfm_type wt, const float *x, int64_t n, unsigned char *out) {
    (void)wt;
    tfm__quantize_q8_0(x, (tfm_block_q8_0 *)(void *)out, n);
}

TFM__INLINE int32x4_t tfm__dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

TFM__INLINE float tfm__qdot(int q4, const unsigned char *w, const tfm_block_q8_0 *x, int64_t nb) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    int64_t i;
    for (i = 0; i < nb; i++) {
        const unsigned char *blk = w + (size_t)i * (q4 ? 18 : 34);
        uint16_t dw;
        int8x16_t a0, a1;
        int32x4_t s = vdupq_n_s32(0);
        memcpy(&dw, blk, 2);
        if (q4) {
            const uint8x16_t v = vld1q_u8(blk + 2), m = vdupq_n_u8(15);
            a0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m)), vdupq_n_s8(8));
            a1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
        } else {
            a0 = vld1q_s8((const int8_t *)(blk + 2));
            a1 = vld1q_s8((const int8_t *)(blk + 18));
        }
        s = tfm__dot16_neon(s, a0, vld1q_s8(x[i].qs));
        s = tfm__dot16_neon(s, a1, vld1q_s8(x[i].qs + 16));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), tfm_fp16_to_fp32(dw) * tfm_fp16_to_fp32(x[i].d));
    }
    return vaddvq_f32(acc);
}

TFM__INLINE void tfm__qrows(int q4, const tfm__mm_ctx *c, const tfm_tensor *W, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t in = W->ne[0], nb = in / TFM_QK;
    const size_t ws = tfm_type_row_size(W->type, in), xs = tfm__xq_row_bytes(in);
    const unsigned char *wd = (const unsigned char *)W->data, *xq = (const unsigned char *)c->xq;
    int64_t r;
    int b;
    for (r = r0; r < r1; r++)
        for (b = 0; b < B; b++)
            y[(size_t)b * ldy + r] = tfm__qdot(q4, wd + (size_t)r * ws, (const tfm_block_q8_0 *)(const void *)(xq + (size_t)b * xs), nb);
}
static void tfm__qrows_q8_0(const tfm__mm_ctx *c, const tfm_tensor *W, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) { tfm__qrows(0, c, W, B, y, ldy, r0, r1); }
static void tfm__qrows_q4_0(const tfm__mm_ctx *c, const tfm_tensor *W, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) { tfm__qrows(1, c, W, B, y, ldy, r0, r1); }
#define TFM__HAVE_QROWS 1
#endif

TFMDEF const char *tfm_kernels(void) {
#if defined(TFM__AVX512)
    return "AVX-512";
#elif defined(TFM__AVX2)
    return "AVX2";
#elif defined(TFM__NEON)
    return "NEON";
#else
    return "plain C";
#endif
}

/* ---------------------------------------------------------------- matrix product */

#if defined(TFM__VL) && defined(TFM__HAVE_QROWS)
static void tfm__matmul_rows(const tfm__mm_ctx *c, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    switch (W->type) {
    case TFM_TYPE_F32: tfm__frows_f32(W, x, B, y, ldy, r0, r1); break;
    case TFM_TYPE_F16: tfm__frows_f16(W, x, B, y, ldy, r0, r1); break;
    case TFM_TYPE_BF16: tfm__frows_bf16(W, x, B, y, ldy, r0, r1); break;
    case TFM_TYPE_Q8_0: tfm__qrows_q8_0(c, W, B, y, ldy, r0, r1); break;
    case TFM_TYPE_Q4_0: tfm__qrows_q4_0(c, W, B, y, ldy, r0, r1); break;
    default: break;
    }
}

/* y[b*ldy + r] = W[r] . x[b*in ..] for the B rows of x (W is {in, out}), with the SIMD kernels. */
static void tfm__matmul(tfm__mm_ctx *c, const tfm_tensor *W, const float *x, int B, float *y, int64_t ldy) {
    tfm__matmul_any(c, W, x, B, y, ldy, tfm__matmul_rows, tfm__quantize_act, tfm__xq_row_bytes(W->ne[0]));
}
#else
#define tfm__matmul tfm__matmul_ref
#endif


#ifdef TFM__GCC_PRAGMAS
#pragma GCC diagnostic pop
#endif

static void tfm__rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    float ss = 0, scale;
    int64_t i;
    for (i = 0; i < n; i++) ss += x[i] * x[i];
    scale = 1.0f / TFM_SQRTF(ss / (float)n + eps);
    for (i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void tfm__layernorm(float *out, const float *x, const float *w, const float *b, int64_t n, float eps) {
    float mean = 0, var = 0, scale;
    int64_t i;
    for (i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    for (i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    scale = 1.0f / TFM_SQRTF(var / (float)n + eps);
    for (i = 0; i < n; i++) out[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
}

/* Rotates the first rope_dim values of one head. cs holds cos, sin per pair. NeoX pairs
   (i, i + rope_dim/2); the original layout pairs (2i, 2i+1). */
static void tfm__rope(float *h, const float *cs, int rope_dim, int neox) {
    int i, half = rope_dim / 2;
    for (i = 0; i < half; i++) {
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float c = cs[2 * i], s = cs[2 * i + 1], x0 = h[a], x1 = h[b];
        h[a] = x0 * c - x1 * s;
        h[b] = x0 * s + x1 * c;
    }
}

/* GELU, tanh form (Hugging Face gelu_new), computed in float without table rounding. */
static float tfm__gelu(float x) {
    return 0.5f * x * (1.0f + TFM_TANHF(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

static void tfm__add(float *y, const float *b, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] += b[i];
}

/* ===================================================================== >>model */

static const tfm_arch tfm__archs[] = {
    /* name     norm            positions          offset ffn             eps */
    {"llama",   TFM_NORM_RMS,   TFM_POS_ROPE,      0,     TFM_FFN_SWIGLU, 1e-5f},
    {"mistral", TFM_NORM_RMS,   TFM_POS_ROPE,      0,     TFM_FFN_SWIGLU, 1e-5f},
    {"qwen2",   TFM_NORM_RMS,   TFM_POS_ROPE_NEOX, 0,     TFM_FFN_SWIGLU, 1e-6f},
    {"gpt2",    TFM_NORM_LAYER, TFM_POS_LEARNED,   0,     TFM_FFN_GELU,   1e-5f},
    {"opt",     TFM_NORM_LAYER, TFM_POS_LEARNED,   2,     TFM_FFN_RELU,   1e-5f},
};

/* Builds "<arch>.<suffix>" or "blk.<i>.<suffix>" into buf. */
static const char *tfm__key(char *buf, size_t cap, const char *prefix, int64_t layer, const char *suffix) {
    buf[0] = 0;
    if (layer >= 0) { tfm__append(buf, cap, "blk.", 4); tfm__append_u64(buf, cap, (uint64_t)layer); }
    else tfm__append(buf, cap, prefix, strlen(prefix));
    tfm__append(buf, cap, ".", 1);
    tfm__append(buf, cap, suffix, strlen(suffix));
    return buf;
}

static tfm_result tfm__model_fail(tfm_model *m, tfm_result rc, const char *what, const char *name) {
    tfm__set_error(m->error, sizeof m->error, what, name, name ? strlen(name) : 0);
    return rc;
}

static tfm_result tfm__hparam_int(tfm_model *m, const char *arch, const char *suffix, int required, int64_t def, int64_t lo, int64_t hi, int32_t *out) {
    char key[96];
    int64_t v = def;
    tfm__key(key, sizeof key, arch, -1, suffix);
    if (!tfm_gguf_get_int(m->gguf, key, &v)) {
        if (tfm_gguf_find(m->gguf, key)) return tfm__model_fail(m, TFM_ERR_FORMAT, "metadata key is not an integer: ", key);
        if (required) return tfm__model_fail(m, TFM_ERR_MISSING, "missing metadata key ", key);
    }
    if (v < lo || v > hi) return tfm__model_fail(m, TFM_ERR_FORMAT, "metadata value out of range: ", key);
    *out = (int32_t)v;
    return TFM_OK;
}

static tfm_result tfm__read_hparams(tfm_model *m) {
    const tfm_gguf *g = m->gguf;
    const char *a = m->arch->name;
    tfm_hparams *hp = &m->hp;
    tfm_result rc;
    double f;
    char key[96];
    if ((rc = tfm__hparam_int(m, a, "embedding_length", 1, 0, 1, 1 << 20, &hp->dim)) != TFM_OK) return rc;
    if ((rc = tfm__hparam_int(m, a, "block_count", 1, 0, 1, TFM_MAX_LAYERS, &hp->n_layer)) != TFM_OK) return rc;
    if ((rc = tfm__hparam_int(m, a, "attention.head_count", 1, 0, 1, 1 << 16, &hp->n_head)) != TFM_OK) return rc;
    if ((rc = tfm__hparam_int(m, a, "attention.head_count_kv", 0, hp->n_head, 1, hp->n_head, &hp->n_head_kv)) != TFM_OK) return rc;
    if (hp->n_head % hp->n_head_kv) return tfm__model_fail(m, TFM_ERR_FORMAT, "head_count is not a multiple of head_count_kv", NULL);
    if ((rc = tfm__hparam_int(m, a, "attention.key_length", 0, hp->dim / hp->n_head, 1, TFM_MAX_HEAD_DIM, &hp->head_dim)) != TFM_OK) return rc;
    if ((rc = tfm__hparam_int(m, a, "feed_forward_length", 1, 0, 1, 1 << 24, &hp->ffn_dim)) != TFM_OK) return rc;
    if ((rc = tfm__hparam_int(m, a, "context_length", 1, 0, 1, INT32_MAX / 2, &hp->n_ctx_train)) != TFM_OK) return rc;
    if ((rc = tfm__hparam_int(m, a, "rope.dimension_count", 0, hp->head_dim, 0, hp->head_dim, &hp->rope_dim)) != TFM_OK) return rc;
    if (hp->rope_dim % 2) return tfm__model_fail(m, TFM_ERR_FORMAT, "rope.dimension_count is odd", NULL);
    if ((rc = tfm__hparam_int(m, a, "position_offset", 0, m->arch->pos_offset, 0, 1 << 16, &hp->pos_offset)) != TFM_OK) return rc;
    if (m->arch->pos == TFM_POS_LEARNED) hp->rope_dim = 0;
    hp->rope_base = tfm_gguf_get_float(g, tfm__key(key, sizeof key, a, -1, "rope.freq_base"), &f) ? (float)f : 10000.0f;
    hp->norm_eps = m->arch->default_eps;
    if (tfm_gguf_get_float(g, tfm__key(key, sizeof key, a, -1, m->arch->norm == TFM_NORM_RMS ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon"), &f))
        hp->norm_eps = (float)f;
    if (!(hp->norm_eps >= 0 && hp->norm_eps < 1) || !(hp->rope_base > 0)) return tfm__model_fail(m, TFM_ERR_FORMAT, "norm epsilon or rope base out of range", NULL);
    return TFM_OK;
}

/* Looks up a tensor and checks its type and shape {ne0, ne1} (ne1 = 0: a vector). */
static tfm_result tfm__get_tensor(tfm_model *m, tfm_tensor *out, const char *name, int64_t ne0, int64_t ne1, int required) {
    const tfm_gguf_tensor *t = tfm_gguf_find_tensor(m->gguf, name);
    memset(out, 0, sizeof *out);
    if (!t) return required ? tfm__model_fail(m, TFM_ERR_MISSING, "missing tensor ", name) : TFM_OK;
    if (!t->t.data) return tfm__model_fail(m, TFM_ERR_UNSUPPORTED, "unsupported weight type in tensor ", name);
    if (t->t.ne[0] != ne0 || (ne1 ? t->t.ne[1] != ne1 : t->t.n_dims != 1) || t->t.ne[2] != 1 || t->t.ne[3] != 1)
        return tfm__model_fail(m, TFM_ERR_SHAPE, "unexpected shape of tensor ", name);
    if (ne1 == 0 && t->t.type != TFM_TYPE_F32) return tfm__model_fail(m, TFM_ERR_UNSUPPORTED, "norm/bias tensor is not F32: ", name);
    *out = t->t;
    return TFM_OK;
}

static tfm_result tfm__load_layer(tfm_model *m, int64_t i, tfm_layer *L) {
    const tfm_hparams *hp = &m->hp;
    int64_t d = hp->dim, hd = hp->head_dim, nq = hp->n_head * hd, nkv = hp->n_head_kv * hd, f = hp->ffn_dim;
    int layer_norm = m->arch->norm == TFM_NORM_LAYER, swiglu = m->arch->ffn == TFM_FFN_SWIGLU;
    char k[96];
    tfm_result rc = TFM_OK;
#define TFM__T(field, suffix, ne0, ne1, req) \
    if (rc == TFM_OK) rc = tfm__get_tensor(m, &L->field, tfm__key(k, sizeof k, "", i, suffix), ne0, ne1, req)
    TFM__T(attn_norm, "attn_norm.weight", d, 0, 1);
    TFM__T(attn_norm_b, "attn_norm.bias", d, 0, layer_norm);
    TFM__T(wqkv, "attn_qkv.weight", d, nq + 2 * nkv, 0);
    TFM__T(bqkv, "attn_qkv.bias", nq + 2 * nkv, 0, 0);
    TFM__T(wq, "attn_q.weight", d, nq, !L->wqkv.data);
    TFM__T(bq, "attn_q.bias", nq, 0, 0);
    TFM__T(wk, "attn_k.weight", d, nkv, !L->wqkv.data);
    TFM__T(bk, "attn_k.bias", nkv, 0, 0);
    TFM__T(wv, "attn_v.weight", d, nkv, !L->wqkv.data);
    TFM__T(bv, "attn_v.bias", nkv, 0, 0);
    TFM__T(wo, "attn_output.weight", nq, d, 1);
    TFM__T(bo, "attn_output.bias", d, 0, 0);
    TFM__T(ffn_norm, "ffn_norm.weight", d, 0, 1);
    TFM__T(ffn_norm_b, "ffn_norm.bias", d, 0, layer_norm);
    TFM__T(w_gate, "ffn_gate.weight", d, f, swiglu);
    TFM__T(w_up, "ffn_up.weight", d, f, 1);
    TFM__T(b_up, "ffn_up.bias", f, 0, 0);
    TFM__T(w_down, "ffn_down.weight", f, d, 1);
    TFM__T(b_down, "ffn_down.bias", d, 0, 0);
#undef TFM__T
    return rc;
}

static tfm_result tfm__model_arch(tfm_model *m) {
    tfm_str name;
    size_t i;
    if (!tfm_gguf_get_str(m->gguf, "general.architecture", &name)) return tfm__model_fail(m, TFM_ERR_MISSING, "missing metadata key general.architecture", NULL);
    for (i = 0; i < sizeof tfm__archs / sizeof tfm__archs[0]; i++)
        if (tfm__str_eq(name, tfm__archs[i].name)) { m->arch = &tfm__archs[i]; return TFM_OK; }
    tfm__set_error(m->error, sizeof m->error, "unsupported architecture: ", name.ptr, name.len < 64 ? name.len : 64);
    return TFM_ERR_UNSUPPORTED;
}

TFMDEF tfm_result tfm_model_heap_size(const tfm_gguf *g, size_t *bytes) {
    size_t vocab_bytes = 0;
    int64_t n_layer = 0;
    tfm_str arch;
    char key[96];
    tfm_result rc;
    if (!g || !bytes) return TFM_ERR_ARG;
    if (!tfm_gguf_get_str(g, "general.architecture", &arch) || arch.len > 40) return TFM_ERR_MISSING;
    memcpy(key, arch.ptr, arch.len);
    memcpy(key + arch.len, ".block_count", 13);
    if (!tfm_gguf_get_int(g, key, &n_layer)) return TFM_ERR_MISSING;
    if (n_layer < 1 || n_layer > TFM_MAX_LAYERS) return TFM_ERR_FORMAT;
    if ((rc = tfm_vocab_heap_size(g, &vocab_bytes)) != TFM_OK) return rc; /* no tokenizer: empty vocab, ids still read */
    *bytes = (size_t)n_layer * sizeof(tfm_layer) + 64 + vocab_bytes + 64;
    return TFM_OK;
}

static tfm_result tfm__model_embeddings(tfm_model *m) {
    const tfm_hparams *hp = &m->hp;
    const tfm_gguf_tensor *t = tfm_gguf_find_tensor(m->gguf, "token_embd.weight");
    int layer_norm = m->arch->norm == TFM_NORM_LAYER;
    tfm_result rc;
    if (!t) return tfm__model_fail(m, TFM_ERR_MISSING, "missing tensor token_embd.weight", NULL);
    if (t->t.ne[1] > INT32_MAX / 2) return tfm__model_fail(m, TFM_ERR_SHAPE, "vocabulary too large", NULL);
    m->hp.n_vocab = (int32_t)t->t.ne[1];
    if ((rc = tfm__get_tensor(m, &m->tok_embd, "token_embd.weight", hp->dim, hp->n_vocab, 1)) != TFM_OK) return rc;
    if ((rc = tfm__get_tensor(m, &m->out_norm, "output_norm.weight", hp->dim, 0, 1)) != TFM_OK) return rc;
    if ((rc = tfm__get_tensor(m, &m->out_norm_b, "output_norm.bias", hp->dim, 0, layer_norm)) != TFM_OK) return rc;
    if ((rc = tfm__get_tensor(m, &m->output, "output.weight", hp->dim, hp->n_vocab, 0)) != TFM_OK) return rc;
    if (!m->output.data) m->output = m->tok_embd; /* tied head */
    if (m->arch->pos == TFM_POS_LEARNED) {
        const tfm_gguf_tensor *p = tfm_gguf_find_tensor(m->gguf, "position_embd.weight");
        if (!p) return tfm__model_fail(m, TFM_ERR_MISSING, "missing tensor position_embd.weight", NULL);
        if ((rc = tfm__get_tensor(m, &m->pos_embd, "position_embd.weight", hp->dim, p->t.ne[1], 1)) != TFM_OK) return rc;
        if (p->t.ne[1] <= hp->pos_offset) return tfm__model_fail(m, TFM_ERR_SHAPE, "position_embd.weight has no rows past the offset", NULL);
    }
    return TFM_OK;
}

TFMDEF tfm_result tfm_model_init_preallocated(tfm_model *m, const tfm_gguf *g, void *heap, size_t heap_size) {
    size_t need;
    tfm__arena arena;
    tfm_result rc;
    int32_t i;
    if (!m) return TFM_ERR_ARG;
    memset(m, 0, sizeof *m);
    if (!g) return tfm__model_fail(m, TFM_ERR_ARG, "no GGUF given", NULL);
    m->gguf = g;
    if ((rc = tfm__model_arch(m)) != TFM_OK) return rc;
    if ((rc = tfm__read_hparams(m)) != TFM_OK) return rc;
    if ((rc = tfm_model_heap_size(g, &need)) != TFM_OK) return tfm__model_fail(m, rc, "cannot size the model", NULL);
    if (!heap || heap_size < need) return tfm__model_fail(m, TFM_ERR_BUFFER, "model heap too small", NULL);
    arena.base = (unsigned char *)heap; arena.used = 0; arena.cap = heap_size;
    m->layers = (tfm_layer *)tfm__arena_take(&arena, (size_t)m->hp.n_layer * sizeof(tfm_layer));
    if ((rc = tfm__model_embeddings(m)) != TFM_OK) return rc;
    for (i = 0; i < m->hp.n_layer; i++)
        if ((rc = tfm__load_layer(m, i, &m->layers[i])) != TFM_OK) return rc;
    {
        size_t vbytes = 0;
        void *vheap;
        tfm_vocab_heap_size(g, &vbytes);
        vheap = tfm__arena_take(&arena, vbytes ? vbytes : 1);
        rc = tfm_vocab_init_preallocated(&m->vocab, g, vheap, vbytes);
        if (rc != TFM_OK) return tfm__model_fail(m, rc, "vocabulary: ", m->vocab.error);
    }
    return TFM_OK;
}

TFMDEF tfm_result tfm_model_init(tfm_model *m, const tfm_gguf *g) {
    size_t need;
    void *heap;
    tfm_result rc;
    if (!m) return TFM_ERR_ARG;
    memset(m, 0, sizeof *m);
    rc = tfm_model_heap_size(g, &need);
    if (rc != TFM_OK) return tfm_model_init_preallocated(m, g, NULL, 0); /* names the problem */
    heap = TFM_MALLOC(need);
    if (!heap) return tfm__model_fail(m, TFM_ERR_NOMEM, "out of memory for the model", NULL);
    rc = tfm_model_init_preallocated(m, g, heap, need);
    if (rc != TFM_OK) { TFM_FREE(heap); return rc; }
    m->heap_ = heap;
    return TFM_OK;
}

#ifndef TFM_NO_STDIO
TFMDEF tfm_result tfm_model_load(tfm_model *m, const char *path) {
    tfm_gguf g;
    tfm_result rc;
    if (!m) return TFM_ERR_ARG;
    memset(m, 0, sizeof *m);
    rc = tfm_gguf_open(&g, path);
    if (rc != TFM_OK) { memcpy(m->error, g.error, sizeof m->error); return rc; }
    rc = tfm_model_init(m, &g);
    if (rc != TFM_OK) { tfm_gguf_free(&g); return rc; }
    m->own_gguf_ = g;
    m->gguf = &m->own_gguf_;
    return TFM_OK;
}
#endif

TFMDEF void tfm_model_free(tfm_model *m) {
    if (!m) return;
    if (m->heap_) TFM_FREE(m->heap_);
    if (m->own_gguf_.data) tfm_gguf_free(&m->own_gguf_);
    memset(m, 0, sizeof *m);
}

TFMDEF int32_t tfm_model_max_positions(const tfm_model *m) {
    if (!m || !m->arch) return 0;
    if (m->arch->pos == TFM_POS_LEARNED) return (int32_t)(m->pos_embd.ne[1] - m->hp.pos_offset);
    return INT32_MAX / 2;
}

/* ===================================================================== >>kvcache */
/* For each (sequence, layer, KV head): `capacity` slots, each a key (after RoPE, at the token's
   own position), a value, the position and the accumulated score. Slots [0, n_used) are in use;
   attention over them is order-free, so evicting moves the last slot into the hole.

   The policy rule (tfm__kv_step), run after each token's attention in each layer and KV head:
     score[i] = alpha * score[i] + p[i] over the kept slots, p being the softmax the attention used
     (over the kept slots and the new token, summed over the query heads of a GQA group); the new
     token enters with its own p. With more than `budget` slots kept, the one with the smallest
     score is evicted, outside the protected last n_recent and first n_sink positions; ties evict
     the oldest. H2O is alpha = 1, n_recent = budget / 2; WINDOW evicts the oldest non-sink.
   The config check asks n_sink + n_recent <= budget, so a victim always exists.
   Memory: capacity = budget + 1 slots (the incoming token needs one before eviction), or n_ctx if
   that is smaller. n_ctx only bounds positions then, so a pruned cache can run past the training
   context (set n_ctx larger) for RoPE models; learned position tables (GPT-2, OPT) end at the
   model's context, and n_ctx cannot exceed it. */

static int32_t tfm__sess_nseq(const tfm_session *s) { return s->cfg.n_seq; }

static size_t tfm__cache_index(const tfm_session *s, int32_t seq, int32_t layer, int32_t kvh) {
    const tfm_hparams *hp = &s->model->hp;
    return ((size_t)seq * (size_t)hp->n_layer + (size_t)layer) * (size_t)hp->n_head_kv + (size_t)kvh;
}

/* Resolves zero-means-default fields and checks the rest. */
static tfm_result tfm__session_resolve(const tfm_model *m, const tfm_session_config *in, tfm_session_config *c, int32_t *capacity, char *err, size_t errcap) {
    int32_t maxpos;
    memset(c, 0, sizeof *c);
    if (in) *c = *in;
    if (!m || !m->arch) { tfm__set_error(err, errcap, "no model", NULL, 0); return TFM_ERR_ARG; }
    maxpos = tfm_model_max_positions(m);
    if (c->n_ctx == 0) c->n_ctx = m->hp.n_ctx_train < maxpos ? m->hp.n_ctx_train : maxpos;
    if (c->n_seq == 0) c->n_seq = 1;
    if (c->n_batch == 0) c->n_batch = 64;
    if (c->n_threads <= 0) {
#ifdef _OPENMP
        c->n_threads = omp_get_max_threads();
#else
        c->n_threads = 1;
#endif
    }
    if (c->n_ctx < 1 || c->n_seq < 1 || c->n_batch < 1 || c->n_seq > 4096 || c->n_batch > 65536) {
        tfm__set_error(err, errcap, "n_ctx, n_seq and n_batch must be positive (n_seq <= 4096, n_batch <= 65536)", NULL, 0);
        return TFM_ERR_ARG;
    }
    if (c->n_ctx > maxpos) {
        tfm__set_error(err, errcap, "n_ctx exceeds the model's learned position table (", NULL, 0);
        tfm__append_u64(err, errcap, (uint64_t)maxpos);
        tfm__append(err, errcap, " positions)", 11);
        return TFM_ERR_CONTEXT;
    }
    if (c->kv.type != TFM_TYPE_F32 && c->kv.type != TFM_TYPE_F16) {
        tfm__set_error(err, errcap, "KV cache type must be F32 or F16", NULL, 0);
        return TFM_ERR_ARG;
    }
    if (c->kv.policy == TFM_KV_FULL) { *capacity = c->n_ctx; return TFM_OK; }
    if ((unsigned)c->kv.policy > TFM_KV_WINDOW) { tfm__set_error(err, errcap, "unknown KV cache policy", NULL, 0); return TFM_ERR_ARG; }
    if (c->kv.budget < 1) { tfm__set_error(err, errcap, "KV cache budget must be at least 1 for a pruning policy", NULL, 0); return TFM_ERR_ARG; }
    if (c->kv.n_sink < 0 || c->kv.n_recent < 0 || !(c->kv.alpha >= 0 && c->kv.alpha <= 1)) {
        tfm__set_error(err, errcap, "KV n_sink and n_recent must be >= 0 and alpha in [0, 1]", NULL, 0);
        return TFM_ERR_ARG;
    }
    if (c->kv.policy == TFM_KV_WINDOW && c->kv.n_sink >= c->kv.budget) {
        tfm__set_error(err, errcap, "KV window needs n_sink < budget", NULL, 0);
        return TFM_ERR_ARG;
    }
    if (c->kv.policy == TFM_KV_H2O) {
        c->kv.alpha = 1.0f;
        if (c->kv.n_recent == 0) c->kv.n_recent = c->kv.budget / 2;
    }
    if (c->kv.policy != TFM_KV_WINDOW && (int64_t)c->kv.n_sink + c->kv.n_recent > c->kv.budget) {
        tfm__set_error(err, errcap, "KV n_sink + n_recent must not exceed the budget (nothing could be evicted)", NULL, 0);
        return TFM_ERR_ARG;
    }
    *capacity = c->kv.budget < c->n_ctx ? c->kv.budget + 1 : c->n_ctx;
    return TFM_OK;
}

/* Bytes per cached key or value element. */
static size_t tfm__kv_elt(const tfm_session_config *c) { return c->kv.type == TFM_TYPE_F16 ? 2 : 4; }

/* How many F32 copies of a KV head's F16 cache a session keeps for a chunk's rows (tfm__kv_wide):
   SIMD builds with more than one row per chunk, one per thread, or per KV head when the threads
   are more (a head is one thread's at a time); else none. */
static size_t tfm__kv_wide_count(const tfm_session_config *c, const tfm_hparams *hp) {
#if defined(TFM__VL)
    if (c->kv.type != TFM_TYPE_F16 || c->n_batch <= 1) return 0;
    return (size_t)(c->n_threads < hp->n_head_kv ? c->n_threads : hp->n_head_kv);
#else
    (void)c;
    (void)hp;
    return 0;
#endif
}

/* Bytes of one cache array of up to 4-byte elements, `per_slot` per slot (an upper bound, for the
   overflow check); 0 if it overflows size_t. */
static size_t tfm__kv_array_bytes(const tfm_hparams *hp, const tfm_session_config *c, int32_t capacity, size_t per_slot) {
    size_t n = (size_t)c->n_seq, f[4];
    int i;
    f[0] = (size_t)hp->n_layer; f[1] = (size_t)hp->n_head_kv; f[2] = (size_t)capacity; f[3] = per_slot * 4;
    for (i = 0; i < 4; i++) {
        if (f[i] != 0 && n > SIZE_MAX / 2 / f[i]) return 0;
        n *= f[i];
    }
    return n;
}

/* Lays the session's arrays out in one block; with a NULL base it only measures. */
static void tfm__session_layout(tfm_session *s, tfm__arena *a) {
    const tfm_hparams *hp = &s->model->hp;
    const size_t B = (size_t)s->cfg.n_batch, nseq = (size_t)s->cfg.n_seq, cap = (size_t)s->capacity;
    const size_t hd = (size_t)hp->head_dim, nq = (size_t)hp->n_head * hd, nkv = (size_t)hp->n_head_kv * hd;
    const size_t heads = (size_t)hp->n_layer * (size_t)hp->n_head_kv; /* per sequence; small */
    const size_t V = (size_t)hp->n_vocab, dim = (size_t)hp->dim, ffn = (size_t)hp->ffn_dim, F = sizeof(float), I = sizeof(int32_t);
    const size_t wide = tfm__kv_wide_count(&s->cfg, hp);
    size_t max_in = dim;
    if (nq > max_in) max_in = nq;
    if (ffn > max_in) max_in = ffn;
    s->n_pos = (int32_t *)tfm__arena_array(a, nseq, 1, 1, I);
    s->logits = (float *)tfm__arena_array(a, nseq, V, 1, F);
    s->hidden = (float *)tfm__arena_array(a, nseq, dim, 1, F);
    s->k_ = (unsigned char *)tfm__arena_array(a, nseq * heads, cap, hd, tfm__kv_elt(&s->cfg));
    s->v_ = (unsigned char *)tfm__arena_array(a, nseq * heads, cap, hd, tfm__kv_elt(&s->cfg));
    s->slot_pos_ = (int32_t *)tfm__arena_array(a, nseq * heads, cap, 1, I);
    s->slot_score_ = (float *)tfm__arena_array(a, nseq * heads, cap, 1, F);
    s->n_used_ = (int32_t *)tfm__arena_array(a, nseq, heads, 1, I);
    s->x_ = (float *)tfm__arena_array(a, B, dim, 1, F);
    s->xb_ = (float *)tfm__arena_array(a, B, max_in, 1, F);
    s->q_ = (float *)tfm__arena_array(a, B, nq + 2 * nkv, 1, F);
    s->att_ = (float *)tfm__arena_array(a, B, nq, 1, F);
    s->hb_ = (float *)tfm__arena_array(a, B, ffn, 1, F);
    s->hb2_ = (float *)tfm__arena_array(a, B, ffn, 1, F);
    s->probs_ = (float *)tfm__arena_array(a, (size_t)hp->n_head + (size_t)hp->n_head_kv, cap, 1, F);
    s->xq_ = tfm__arena_array(a, B, tfm__xq_row_bytes((int64_t)max_in), 1, 1);
    s->rope_inv_freq_ = (float *)tfm__arena_array(a, (size_t)hp->rope_dim / 2 + 1, 1, 1, F);
    s->rope_cs_ = (float *)tfm__arena_array(a, B, (size_t)hp->rope_dim + 1, 1, F);
    s->wrow_ = (float *)tfm__arena_array(a, (size_t)s->cfg.n_threads, max_in, 1, F);
    s->wrow_stride_ = (int64_t)max_in;
    s->kv_wide_ = wide ? (float *)tfm__arena_array(a, wide, 2 * cap, hd, F) : NULL;
    s->row_logits_ = (float *)tfm__arena_array(a, nseq < B ? nseq : B, V, 1, F);
    s->seq_last_ = (int32_t *)tfm__arena_array(a, nseq, 1, 1, I);
    s->seq_count_ = (int32_t *)tfm__arena_array(a, nseq, 1, 1, I);
    s->pos_rows_ = (int32_t *)tfm__arena_array(a, B, 1, 1, I);
    s->head_rows_ = (int32_t *)tfm__arena_array(a, B, 1, 1, I);
}

TFMDEF tfm_result tfm_session_heap_size(const tfm_model *m, const tfm_session_config *cfg, size_t *bytes) {
    tfm_session s;
    tfm__arena a;
    tfm_result rc;
    if (!bytes) return TFM_ERR_ARG;
    memset(&s, 0, sizeof s);
    rc = tfm__session_resolve(m, cfg, &s.cfg, &s.capacity, s.error, sizeof s.error);
    if (rc != TFM_OK) return rc;
    if (tfm__kv_array_bytes(&m->hp, &s.cfg, s.capacity, (size_t)m->hp.head_dim) == 0) return TFM_ERR_NOMEM;
    s.model = m;
    a.base = NULL; a.used = 0; a.cap = 0;
    tfm__session_layout(&s, &a);
    if (a.used == SIZE_MAX) return TFM_ERR_NOMEM;
    *bytes = a.used + 64;
    return TFM_OK;
}

TFMDEF tfm_result tfm_seq_reset(tfm_session *s, int32_t seq) {
    const tfm_hparams *hp;
    size_t i, n;
    if (!s || !s->model || seq < 0 || seq >= tfm__sess_nseq(s)) return TFM_ERR_ARG;
    hp = &s->model->hp;
    n = (size_t)hp->n_layer * (size_t)hp->n_head_kv;
    for (i = 0; i < n; i++) s->n_used_[(size_t)seq * n + i] = 0;
    s->n_pos[seq] = 0;
    return TFM_OK;
}

TFMDEF tfm_result tfm_session_init_preallocated(tfm_session *s, const tfm_model *m, const tfm_session_config *cfg, void *heap, size_t heap_size) {
    tfm__arena a;
    size_t need;
    tfm_result rc;
    int32_t i;
    if (!s) return TFM_ERR_ARG;
    memset(s, 0, sizeof *s);
    rc = tfm__session_resolve(m, cfg, &s->cfg, &s->capacity, s->error, sizeof s->error);
    if (rc != TFM_OK) return rc;
    /* s->model stays NULL until init succeeds, so every call on a failed session is refused */
    if (tfm_session_heap_size(m, cfg, &need) != TFM_OK) { tfm__set_error(s->error, sizeof s->error, "session size overflows", NULL, 0); return TFM_ERR_NOMEM; }
    if (!heap || heap_size < need) { tfm__set_error(s->error, sizeof s->error, "session heap too small", NULL, 0); return TFM_ERR_BUFFER; }
    s->model = m;
    a.base = (unsigned char *)heap; a.used = 0; a.cap = heap_size;
    tfm__session_layout(s, &a);
    for (i = 0; i < m->hp.rope_dim / 2; i++)
        s->rope_inv_freq_[i] = 1.0f / TFM_POWF(m->hp.rope_base, (float)(2 * i) / (float)m->hp.rope_dim);
    for (i = 0; i < s->cfg.n_seq; i++) tfm_seq_reset(s, i);
    return TFM_OK;
}

TFMDEF tfm_result tfm_session_init(tfm_session *s, const tfm_model *m, const tfm_session_config *cfg) {
    size_t need;
    void *heap;
    tfm_result rc;
    if (!s) return TFM_ERR_ARG;
    memset(s, 0, sizeof *s);
    rc = tfm_session_heap_size(m, cfg, &need);
    if (rc != TFM_OK) return tfm_session_init_preallocated(s, m, cfg, NULL, 0); /* names it */
    heap = TFM_MALLOC(need);
    if (!heap) { tfm__set_error(s->error, sizeof s->error, "out of memory for the session", NULL, 0); return TFM_ERR_NOMEM; }
    rc = tfm_session_init_preallocated(s, m, cfg, heap, need);
    if (rc != TFM_OK) { TFM_FREE(heap); return rc; }
    s->heap_ = heap;
    return TFM_OK;
}

TFMDEF void tfm_session_free(tfm_session *s) {
    if (!s) return;
    if (s->heap_) TFM_FREE(s->heap_);
    memset(s, 0, sizeof *s);
}

TFMDEF const float *tfm_session_logits(const tfm_session *s, int32_t seq) {
    if (!s || !s->logits || seq < 0 || seq >= s->cfg.n_seq) return NULL;
    return s->logits + (size_t)seq * (size_t)s->model->hp.n_vocab;
}

TFMDEF tfm_result tfm_seq_copy(tfm_session *s, int32_t dst, int32_t src) {
    const tfm_hparams *hp;
    int32_t l, h;
    if (!s || !s->model || dst < 0 || src < 0 || dst >= s->cfg.n_seq || src >= s->cfg.n_seq) return TFM_ERR_ARG;
    if (dst == src) return TFM_OK;
    hp = &s->model->hp;
    for (l = 0; l < hp->n_layer; l++)
        for (h = 0; h < hp->n_head_kv; h++) {
            size_t di = tfm__cache_index(s, dst, l, h), si = tfm__cache_index(s, src, l, h);
            size_t n = (size_t)s->n_used_[si], cap = (size_t)s->capacity, row = (size_t)hp->head_dim * tfm__kv_elt(&s->cfg);
            memcpy(s->k_ + di * cap * row, s->k_ + si * cap * row, n * row);
            memcpy(s->v_ + di * cap * row, s->v_ + si * cap * row, n * row);
            memcpy(s->slot_pos_ + di * cap, s->slot_pos_ + si * cap, n * sizeof(int32_t));
            memcpy(s->slot_score_ + di * cap, s->slot_score_ + si * cap, n * sizeof(float));
            s->n_used_[di] = (int32_t)n;
        }
    s->n_pos[dst] = s->n_pos[src];
    memcpy(s->logits + (size_t)dst * (size_t)hp->n_vocab, s->logits + (size_t)src * (size_t)hp->n_vocab, (size_t)hp->n_vocab * sizeof(float));
    memcpy(s->hidden + (size_t)dst * (size_t)hp->dim, s->hidden + (size_t)src * (size_t)hp->dim, (size_t)hp->dim * sizeof(float));
    return TFM_OK;
}

TFMDEF int32_t tfm_seq_kept(const tfm_session *s, int32_t seq, int32_t layer, int32_t kv_head, int32_t *pos, int32_t cap) {
    size_t ci;
    int32_t n, i;
    if (!s || !s->model || seq < 0 || seq >= s->cfg.n_seq || layer < 0 || layer >= s->model->hp.n_layer || kv_head < 0 || kv_head >= s->model->hp.n_head_kv) return 0;
    ci = tfm__cache_index(s, seq, layer, kv_head);
    n = s->n_used_[ci];
    for (i = 0; i < n && i < cap && pos; i++) pos[i] = s->slot_pos_[ci * (size_t)s->capacity + (size_t)i];
    return n;
}

/* The slot to evict among n kept ones (the newest token at position cur included). */
static int32_t tfm__choose_victim(const tfm_kv_config *kv, const int32_t *pos, const float *score, int32_t n, int32_t cur) {
    int32_t i, best = -1;
    if (kv->policy == TFM_KV_WINDOW) {
        for (i = 0; i < n; i++)
            if (pos[i] >= kv->n_sink && (best < 0 || pos[i] < pos[best])) best = i;
        return best;
    }
    for (i = 0; i < n; i++) {
        if (pos[i] < kv->n_sink || pos[i] > cur - kv->n_recent) continue; /* protected */
        if (best < 0 || score[i] < score[best] || (score[i] == score[best] && pos[i] < pos[best])) best = i;
    }
    TFM_ASSERT(best >= 0); /* n_sink + n_recent <= budget < n leaves one unprotected */
    return best;
}

/* One step of the policy on n kept slots whose last one is the new token at position cur, after
   an attention that gave them probabilities p: updates the scores and returns the slot to evict
   (-1: none). The attention calls exactly this; so do the tests. */
static int32_t tfm__kv_step(const tfm_kv_config *kv, const int32_t *pos, float *score, const float *p, int32_t n, int32_t cur) {
    int32_t i;
    if (kv->policy == TFM_KV_FULL) return -1;
    for (i = 0; i + 1 < n; i++) {
        float decayed = kv->alpha * score[i]; /* two statements: no fused multiply-add, so an */
        score[i] = decayed + p[i];            /* independent replay gets the same float bits */
    }
    score[n - 1] = p[n - 1];
    return n > kv->budget ? tfm__choose_victim(kv, pos, score, n, cur) : -1;
}

/* ===================================================================== >>forward */

typedef struct {
    int32_t layer, seq, pos;
    const float *q;   /* [n_head * hd] this token's queries (after RoPE) */
    const float *k;   /* [n_head_kv * hd] this token's keys (after RoPE) */
    const float *v;   /* [n_head_kv * hd] */
    float *out;       /* [n_head * hd] */
} tfm__att_row;

/* One (sequence, layer, KV head)'s F16 cache widened to F32 while a chunk's rows attend to it in
   order: a row widens only the slots added since the row before (the new token's, or all of them
   when the sequence changes) instead of the whole cache, and evictions move rows here as in the
   cache. tfm__attend_f32 over these rows gives tfm__attend_f16's bits (SIMD builds only: the plain
   tfm__attend_f16_ref reads F16 in its own order). */
typedef struct {
    float *k, *v;  /* [capacity][head_dim] */
    int32_t seq;   /* whose slots [0, n) are widened; -1: none yet */
    int32_t n;
} tfm__kv_wide;

static void tfm__kv_widen(tfm__kv_wide *w, int32_t seq, const uint16_t *K, const uint16_t *V, int32_t n, int64_t hd) {
    const int32_t from = w->seq == seq && w->n <= n ? w->n : 0;
    tfm__f16_to_f32(w->k + (size_t)from * (size_t)hd, K + (size_t)from * (size_t)hd, (int64_t)(n - from) * hd);
    tfm__f16_to_f32(w->v + (size_t)from * (size_t)hd, V + (size_t)from * (size_t)hd, (int64_t)(n - from) * hd);
    w->seq = seq;
    w->n = n;
}

/* Slot `from`'s row of `row` bytes into slot `to` (an eviction fills its hole with the last slot). */
static void tfm__slot_move(void *base, size_t row, int32_t to, int32_t from) {
    memcpy((unsigned char *)base + (size_t)to * row, (const unsigned char *)base + (size_t)from * row, row);
}

/* tfm__attend_f16 over an F32 cache: each query head of the group in turn. */
static void tfm__attend_f32(float *p, size_t ps, const float *q, float *o, int32_t group, const float *K, const float *V, int64_t n, int64_t hd, float scale) {
    int32_t g;
    for (g = 0; g < group; g++) {
        tfm__scores(p + g * ps, q + g * hd, K, n, hd, scale);
        tfm__softmax(p + g * ps, n);
        tfm__mix(o + g * hd, p + g * ps, V, n, hd);
    }
}

/* One token's attention for one KV head and its group of query heads, then the cache policy.
   w: the F16 cache's widened rows for this head (NULL: widen in blocks per token). */
static void tfm__attend_kv_head(tfm_session *s, const tfm__att_row *r, int32_t kvh, tfm__kv_wide *w) {
    const tfm_hparams *hp = &s->model->hp;
    const tfm_kv_config *kv = &s->cfg.kv;
    const int32_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, cap = s->capacity;
    const size_t ci = tfm__cache_index(s, r->seq, r->layer, kvh), row = (size_t)hd * tfm__kv_elt(&s->cfg);
    unsigned char *K = s->k_ + ci * (size_t)cap * row, *V = s->v_ + ci * (size_t)cap * row;
    int32_t *pos = s->slot_pos_ + ci * (size_t)cap;
    float *score = s->slot_score_ + ci * (size_t)cap;
    float *psum = s->probs_ + (size_t)(hp->n_head + kvh) * (size_t)cap;
    const size_t h0 = (size_t)kvh * (size_t)group; /* the group's first query head */
    float *p0 = s->probs_ + h0 * (size_t)cap, *o0 = r->out + h0 * (size_t)hd;
    const float *q0 = r->q + h0 * (size_t)hd;
    const float scale = 1.0f / TFM_SQRTF((float)hd);
    int32_t n, i, g, e;
    n = s->n_used_[ci];
    TFM_ASSERT(n < cap);
    (void)tfm_quantize_row(kv->type, r->k + (size_t)kvh * hd, K + (size_t)n * row, hd); /* F32 or F16: checked at init */
    (void)tfm_quantize_row(kv->type, r->v + (size_t)kvh * hd, V + (size_t)n * row, hd);
    pos[n] = r->pos;
    score[n] = 0;
    n++;
    if (kv->type == TFM_TYPE_F16 && w) {
        tfm__kv_widen(w, r->seq, (const uint16_t *)(const void *)K, (const uint16_t *)(const void *)V, n, hd);
        tfm__attend_f32(p0, (size_t)cap, q0, o0, group, w->k, w->v, n, hd, scale);
    } else if (kv->type == TFM_TYPE_F16) {
        tfm__attend_f16(p0, (size_t)cap, q0, o0, group, (const uint16_t *)(const void *)K, (const uint16_t *)(const void *)V, n, hd, scale);
    } else
        tfm__attend_f32(p0, (size_t)cap, q0, o0, group, (const float *)(const void *)K, (const float *)(const void *)V, n, hd, scale);
    for (i = 0; i < n; i++) psum[i] = 0;
    for (g = 0; g < group; g++)
        for (i = 0; i < n; i++) psum[i] += p0[(size_t)g * (size_t)cap + (size_t)i];
    e = tfm__kv_step(kv, pos, score, psum, n, r->pos);
    if (s->cfg.observer) s->cfg.observer(s->cfg.observer_user, r->seq, r->layer, kvh, r->pos, pos, psum, n, e >= 0 ? pos[e] : -1);
    if (e >= 0) {
        const int32_t last = n - 1;
        if (e != last) {
            tfm__slot_move(K, row, e, last);
            tfm__slot_move(V, row, e, last);
            pos[e] = pos[last];
            score[e] = score[last];
            if (w) {
                tfm__slot_move(w->k, (size_t)hd * sizeof(float), e, last);
                tfm__slot_move(w->v, (size_t)hd * sizeof(float), e, last);
            }
        }
        n--;
    }
    if (w) w->n = n;
    s->n_used_[ci] = n;
}

static tfm__mm_ctx tfm__mm(tfm_session *s) {
    tfm__mm_ctx c;
    memset(&c, 0, sizeof c);
    c.n_threads = s->cfg.n_threads;
    c.wrow = s->wrow_;
    c.wrow_stride = s->wrow_stride_;
    c.xq = (tfm_block_q8_0 *)s->xq_;
    return c;
}

static void tfm__norm(const tfm_model *m, float *out, const float *x, const tfm_tensor *w, const tfm_tensor *b) {
    if (m->arch->norm == TFM_NORM_RMS) tfm__rmsnorm(out, x, (const float *)w->data, m->hp.dim, m->hp.norm_eps);
    else tfm__layernorm(out, x, (const float *)w->data, (const float *)b->data, m->hp.dim, m->hp.norm_eps);
}

/* This thread's rows of out = norm(x) (rows of dim values), then the team meets. */
static void tfm__norm_rows(tfm__mm_ctx *mm, const tfm_model *m, float *out, const float *x, const tfm_tensor *w, const tfm_tensor *b, int B) {
    const int64_t dim = m->hp.dim;
    int64_t lo, hi, i;
    tfm__team_range(mm, B, &lo, &hi);
    for (i = lo; i < hi; i++) tfm__norm(m, out + (size_t)i * dim, x + (size_t)i * dim, w, b);
    tfm__sync(mm);
}

static void tfm__bias_row(float *y, const tfm_tensor *b, int64_t off) {
    if (b->data) tfm__add(y + off, (const float *)b->data, b->ne[0]);
}

/* This thread's rows of y += bias (if any) and x += y (the residual), then the team meets. */
static void tfm__bias_residual(tfm__mm_ctx *mm, float *x, float *y, const tfm_tensor *bias, int64_t dim, int B) {
    int64_t lo, hi, i;
    tfm__team_range(mm, B, &lo, &hi);
    for (i = lo; i < hi; i++) {
        tfm__bias_row(y + (size_t)i * dim, bias, 0);
        tfm__add(x + (size_t)i * dim, y + (size_t)i * dim, dim);
    }
    tfm__sync(mm);
}

/* Attention of the chunk's B rows (queries, keys, values after RoPE in s->q_) for KV head h, on
   thread tid. An F16 cache goes through the widened copy for runs of rows of one sequence; a
   row between rows of other sequences (beams, one row each) would widen the whole cache for
   itself, so it takes the blocked path. */
static void tfm__attend_rows(tfm_session *s, int32_t l, const int32_t *seq, const int32_t *pos, int B, int32_t h, int tid) {
    const tfm_hparams *hp = &s->model->hp;
    const int64_t hd = hp->head_dim, nq = hp->n_head * hd, nkv = hp->n_head_kv * hd, ld = nq + 2 * nkv;
    const size_t wide = 2 * (size_t)s->capacity * (size_t)hd;
    const int32_t copy = s->cfg.n_threads < hp->n_head_kv ? tid : h; /* see tfm__kv_wide_count */
    tfm__kv_wide w;
    int b;
    w.k = s->kv_wide_ ? s->kv_wide_ + (size_t)copy * wide : NULL;
    w.v = w.k ? w.k + wide / 2 : NULL;
    w.seq = -1;
    w.n = 0;
    for (b = 0; b < B; b++) {
        tfm__att_row r;
        const float *row = s->q_ + (size_t)b * ld;
        int run;
        r.layer = l; r.seq = seq ? seq[b] : 0; r.pos = pos[b];
        r.q = row; r.k = row + nq; r.v = row + nq + nkv; r.out = s->att_ + (size_t)b * nq;
        run = w.seq == r.seq || (b + 1 < B && (seq ? seq[b + 1] : 0) == r.seq);
        tfm__attend_kv_head(s, &r, h, w.k && run ? &w : NULL);
    }
}

/* KV heads are independent, so threads take whole heads, each running the rows in order (a row's
   attention sees the rows before it). Small work, and runs with an observer (called in order),
   stay on thread 0. */
static void tfm__attention_heads(tfm_session *s, tfm__mm_ctx *mm, int32_t l, const int32_t *seq, const int32_t *pos, int B) {
    const tfm_hparams *hp = &s->model->hp;
    int64_t work = 0, h;
    int b;
    for (b = 0; b < B; b++) work += (int64_t)(pos[b] + 1) * hp->n_head * hp->head_dim; /* about the multiply-adds */
    if (mm->team->n > 1 && hp->n_head_kv > 1 && !s->cfg.observer && work >= TFM__SPLIT_MACS) {
        while ((h = tfm__team_take(mm, hp->n_head_kv)) >= 0) tfm__attend_rows(s, l, seq, pos, B, (int32_t)h, mm->tid);
    } else if (mm->tid == 0) {
        for (h = 0; h < hp->n_head_kv; h++) tfm__attend_rows(s, l, seq, pos, B, (int32_t)h, 0);
    }
    tfm__sync(mm);
}

/* This thread's rows of the projections' biases and RoPE, then the team meets. */
static void tfm__qkv_finish(tfm__mm_ctx *mm, tfm_session *s, const tfm_layer *L, int B) {
    const tfm_model *m = s->model;
    const tfm_hparams *hp = &m->hp;
    const int64_t hd = hp->head_dim, nq = hp->n_head * hd, nkv = hp->n_head_kv * hd, ld = nq + 2 * nkv;
    const int neox = m->arch->pos == TFM_POS_ROPE_NEOX;
    int64_t lo, hi, b, h;
    tfm__team_range(mm, B, &lo, &hi);
    for (b = lo; b < hi; b++) {
        float *row = s->q_ + (size_t)b * ld;
        const float *cs = s->rope_cs_ + (size_t)b * (size_t)hp->rope_dim;
        tfm__bias_row(row, &L->bqkv, 0);
        tfm__bias_row(row, &L->bq, 0);
        tfm__bias_row(row, &L->bk, nq);
        tfm__bias_row(row, &L->bv, nq + nkv);
        if (hp->rope_dim > 0) {
            for (h = 0; h < hp->n_head; h++) tfm__rope(row + h * hd, cs, hp->rope_dim, neox);
            for (h = 0; h < hp->n_head_kv; h++) tfm__rope(row + nq + h * hd, cs, hp->rope_dim, neox);
        }
    }
    tfm__sync(mm);
}

/* Whether the product with `next`, of the same input as the one with `prev` just before, can use
   the activations that product quantized (same quantized type: the same layout). */
static int tfm__same_input(const tfm_tensor *prev, const tfm_tensor *next) {
    return prev->type == next->type && (next->type == TFM_TYPE_Q8_0 || next->type == TFM_TYPE_Q4_0);
}

/* Attention block of one layer for the chunk's B rows (residual stream in s->x_). */
static void tfm__attention_layer(tfm_session *s, tfm__mm_ctx *mm, int32_t l, const int32_t *seq, const int32_t *pos, int B) {
    const tfm_model *m = s->model;
    const tfm_hparams *hp = &m->hp;
    const tfm_layer *L = &m->layers[l];
    const int64_t dim = hp->dim, hd = hp->head_dim, nq = hp->n_head * hd, nkv = hp->n_head_kv * hd, ld = nq + 2 * nkv;
    tfm__norm_rows(mm, m, s->xb_, s->x_, &L->attn_norm, &L->attn_norm_b, B);
    if (L->wqkv.data) {
        tfm__matmul(mm, &L->wqkv, s->xb_, B, s->q_, ld);
    } else {
        tfm__matmul(mm, &L->wq, s->xb_, B, s->q_, ld);
        mm->xq_ready = tfm__same_input(&L->wq, &L->wk);
        tfm__matmul(mm, &L->wk, s->xb_, B, s->q_ + nq, ld);
        mm->xq_ready = mm->xq_ready && tfm__same_input(&L->wk, &L->wv);
        tfm__matmul(mm, &L->wv, s->xb_, B, s->q_ + nq + nkv, ld);
        mm->xq_ready = 0;
    }
    tfm__qkv_finish(mm, s, L, B);
    tfm__attention_heads(s, mm, l, seq, pos, B);
    tfm__matmul(mm, &L->wo, s->att_, B, s->xb_, dim);
    tfm__bias_residual(mm, s->x_, s->xb_, &L->bo, dim, B);
}

/* This thread's share of the activation over n values of h (SwiGLU: h * silu(gate)). */
static void tfm__activation(tfm__mm_ctx *mm, const tfm_model *m, float *h, const float *gate, int64_t n) {
    int64_t lo, hi, i;
    tfm__team_range(mm, n, &lo, &hi);
    switch (m->arch->ffn) {
    case TFM_FFN_SWIGLU: tfm__swiglu(h + lo, gate + lo, hi - lo); break;
    case TFM_FFN_GELU: for (i = lo; i < hi; i++) h[i] = tfm__gelu(h[i]); break;
    case TFM_FFN_RELU: for (i = lo; i < hi; i++) h[i] = h[i] > 0 ? h[i] : 0; break;
    }
    tfm__sync(mm);
}

static void tfm__ffn_layer(tfm_session *s, tfm__mm_ctx *mm, int32_t l, int B) {
    const tfm_model *m = s->model;
    const tfm_layer *L = &m->layers[l];
    const int64_t dim = m->hp.dim, f = m->hp.ffn_dim;
    int64_t lo, hi, i;
    tfm__norm_rows(mm, m, s->xb_, s->x_, &L->ffn_norm, &L->ffn_norm_b, B);
    tfm__matmul(mm, &L->w_up, s->xb_, B, s->hb_, f);
    if (m->arch->ffn == TFM_FFN_SWIGLU) {
        mm->xq_ready = tfm__same_input(&L->w_up, &L->w_gate);
        tfm__matmul(mm, &L->w_gate, s->xb_, B, s->hb2_, f);
        mm->xq_ready = 0;
    }
    if (L->b_up.data) {
        tfm__team_range(mm, B, &lo, &hi);
        for (i = lo; i < hi; i++) tfm__bias_row(s->hb_ + (size_t)i * f, &L->b_up, 0);
        tfm__sync(mm);
    }
    tfm__activation(mm, m, s->hb_, s->hb2_, (int64_t)B * f);
    tfm__matmul(mm, &L->w_down, s->hb_, B, s->xb_, dim);
    tfm__bias_residual(mm, s->x_, s->xb_, &L->b_down, dim, B);
}

/* Token (and learned position) embeddings of the chunk's rows, and their RoPE angles. */
static void tfm__embed(tfm_session *s, const int32_t *tokens, const int32_t *pos, int B) {
    const tfm_model *m = s->model;
    const tfm_hparams *hp = &m->hp;
    const size_t row = tfm_type_row_size(m->tok_embd.type, hp->dim);
    int b, i;
    for (b = 0; b < B; b++) {
        float *x = s->x_ + (size_t)b * (size_t)hp->dim;
        tfm_dequantize_row(m->tok_embd.type, (const unsigned char *)m->tok_embd.data + (size_t)tokens[b] * row, x, hp->dim);
        if (m->pos_embd.data) {
            const size_t prow = tfm_type_row_size(m->pos_embd.type, hp->dim);
            float *tmp = s->xb_;
            tfm_dequantize_row(m->pos_embd.type, (const unsigned char *)m->pos_embd.data + (size_t)(pos[b] + hp->pos_offset) * prow, tmp, hp->dim);
            tfm__add(x, tmp, hp->dim);
        }
        for (i = 0; i < hp->rope_dim / 2; i++) {
            float theta = (float)pos[b] * s->rope_inv_freq_[i];
            s->rope_cs_[(size_t)b * (size_t)hp->rope_dim + 2 * (size_t)i] = TFM_COSF(theta);
            s->rope_cs_[(size_t)b * (size_t)hp->rope_dim + 2 * (size_t)i + 1] = TFM_SINF(theta);
        }
    }
}

/* Final norm and output head for the rows that need logits (row choice and copies on thread 0). */
static void tfm__head(tfm_session *s, tfm__mm_ctx *mm, const int32_t *seq, int B, size_t first, float *all_logits) {
    const tfm_model *m = s->model;
    const int64_t dim = m->hp.dim, V = m->hp.n_vocab;
    int b, k = 0;
    for (b = 0; b < B; b++) { /* every thread counts the rows, thread 0 also prepares them */
        int32_t q = seq ? seq[b] : 0;
        if (!all_logits && s->seq_last_[q] != (int32_t)(first + (size_t)b)) continue;
        if (mm->tid == 0) {
            tfm__norm(m, s->xb_ + (size_t)k * dim, s->x_ + (size_t)b * dim, &m->out_norm, &m->out_norm_b);
            memcpy(s->hidden + (size_t)q * dim, s->xb_ + (size_t)k * dim, (size_t)dim * sizeof(float));
            s->head_rows_[k] = b;
        }
        k++;
    }
    if (k == 0) return;
    tfm__sync(mm);
    if (all_logits) {
        tfm__matmul(mm, &m->output, s->xb_, k, all_logits + first * (size_t)V, V);
        if (mm->tid == 0)
            for (b = 0; b < B; b++) {
                int32_t q = seq ? seq[b] : 0;
                if (s->seq_last_[q] == (int32_t)(first + (size_t)b))
                    memcpy(s->logits + (size_t)q * V, all_logits + (first + (size_t)b) * (size_t)V, (size_t)V * sizeof(float));
            }
        return;
    }
    tfm__matmul(mm, &m->output, s->xb_, k, s->row_logits_, V);
    if (mm->tid == 0)
        for (b = 0; b < k; b++) {
            int32_t row = s->head_rows_[b], q = seq ? seq[row] : 0;
            memcpy(s->logits + (size_t)q * V, s->row_logits_ + (size_t)b * V, (size_t)V * sizeof(float));
        }
}

static tfm_result tfm__eval_check(tfm_session *s, const int32_t *tokens, const int32_t *seq, size_t n) {
    int32_t q;
    size_t i;
    for (q = 0; q < s->cfg.n_seq; q++) { s->seq_count_[q] = 0; s->seq_last_[q] = -1; }
    for (i = 0; i < n; i++) {
        q = seq ? seq[i] : 0;
        if (q < 0 || q >= s->cfg.n_seq) { tfm__set_error(s->error, sizeof s->error, "sequence id out of range", NULL, 0); return TFM_ERR_ARG; }
        if (tokens[i] < 0 || tokens[i] >= s->model->hp.n_vocab) {
            tfm__set_error(s->error, sizeof s->error, "token id out of range: ", NULL, 0);
            tfm__append_u64(s->error, sizeof s->error, (uint64_t)(uint32_t)tokens[i]);
            return TFM_ERR_TOKEN;
        }
        if (s->n_pos[q] + ++s->seq_count_[q] > s->cfg.n_ctx) {
            tfm__set_error(s->error, sizeof s->error, "context full: n_ctx is ", NULL, 0);
            tfm__append_u64(s->error, sizeof s->error, (uint64_t)s->cfg.n_ctx);
            return TFM_ERR_CONTEXT;
        }
        s->seq_last_[q] = (int32_t)i;
    }
    return TFM_OK;
}

/* Multiply-adds of a layer's largest step for B rows at positions pos (products and attention). */
static int64_t tfm__layer_work(const tfm_model *m, const int32_t *pos, int B) {
    const tfm_hparams *hp = &m->hp;
    int64_t big = hp->dim > hp->ffn_dim ? hp->dim : hp->ffn_dim, att = 0;
    int b;
    big *= (int64_t)hp->dim * B;
    for (b = 0; b < B; b++) att += (int64_t)(pos[b] + 1) * hp->n_head * hp->head_dim;
    return big > att ? big : att;
}

/* One thread's walk through the forward pass of all n tokens, chunk by chunk; every thread of the
   team runs it and they meet between steps. */
static void tfm__forward(tfm_session *s, tfm__mm_ctx *mm, const int32_t *tokens, const int32_t *seq, size_t n, float *all_logits) {
    size_t first;
    for (first = 0; first < n; first += (size_t)s->cfg.n_batch) {
        int B = (int)(n - first < (size_t)s->cfg.n_batch ? n - first : (size_t)s->cfg.n_batch), b;
        const int32_t *sq = seq ? seq + first : NULL;
        int32_t l;
        if (mm->tid == 0) {
            for (b = 0; b < B; b++) s->pos_rows_[b] = s->n_pos[sq ? sq[b] : 0]++; /* next position of its sequence */
            tfm__embed(s, tokens + first, s->pos_rows_, B);
        }
        tfm__sync(mm);
        if (mm->team->n > 1 && tfm__layer_work(s->model, s->pos_rows_, B) < TFM__SPLIT_MACS) {
            /* small layers run on thread 0 alone, the others wait for the head: splitting each
               step would cost more in meetings than it saves */
            if (mm->tid == 0) {
                tfm__team solo;
                tfm__mm_ctx one = *mm;
                memset(&solo, 0, sizeof solo);
                solo.n = 1;
                one.team = &solo;
                one.seen = 0;
                for (l = 0; l < s->model->hp.n_layer; l++) {
                    tfm__attention_layer(s, &one, l, sq, s->pos_rows_, B);
                    tfm__ffn_layer(s, &one, l, B);
                }
            }
            tfm__sync(mm);
        } else {
            for (l = 0; l < s->model->hp.n_layer; l++) {
                tfm__attention_layer(s, mm, l, sq, s->pos_rows_, B);
                tfm__ffn_layer(s, mm, l, B);
            }
        }
        tfm__head(s, mm, sq, B, first, all_logits);
        tfm__sync(mm); /* the next chunk reuses the buffers */
    }
}

/* The thread governor. On a machine whose cores are busy with other work, a thread that shares a
   core runs in slices of a few milliseconds. Most evals are then as fast as ever, but each time
   that thread loses its core in the middle of a step the others wait for it, and those evals
   take milliseconds: two threads can be several times slower than one on average (a small model
   under such load: 370 tokens/s against 1500 on one thread). So an eval may use fewer threads
   than asked. Every `interval` evals the governor tries half the threads (rounded up) or one
   more for TFM__GOV_TRY evals of the same token count, and keeps the change if they cost less
   than 0.9x the moving average of the evals before. Means, not medians: the slow evals are the
   point. Halving, because with more threads than free cores the cost hardly moves until the
   count fits (stories110M with 8 threads on 2 cores: 8.5, 8.3, 12, 22, 23 and 262 tokens/s with
   8, 7, 6, 4, 3 and 2). A try that wins is followed at once by another in the same direction;
   one that loses turns the direction round and doubles the interval (64 to 1024 evals). A try
   stops as soon as it cannot win, or when its evals so far are 1.25x slower than the average
   (1.5x for the first), so on a quiet machine tries cost a few slow evals in a thousand. */
#define TFM__GOV_TRY 16
#define TFM__GOV_FIRST 64
#define TFM__GOV_LAST 1024

/* Threads for the next eval, at most max. */
TFM__OMP_ONLY int32_t tfm__governor_next(tfm__governor *g, int32_t max) {
    if (g->now < 1 || g->now > max) {
        memset(g, 0, sizeof *g);
        g->now = max;
        g->interval = g->wait = TFM__GOV_FIRST;
    }
    return g->probe ? g->probe : g->now;
}

static void tfm__governor_end_try(tfm__governor *g, int won) {
    if (won) {
        g->now = g->probe;
        g->cost = g->probe_sum / TFM__GOV_TRY;
        g->interval = TFM__GOV_FIRST;
        g->wait = 0;
    } else {
        g->interval = g->interval * 2 > TFM__GOV_LAST ? TFM__GOV_LAST : g->interval * 2;
        g->wait = g->interval;
        g->go_up = !g->go_up;
    }
    g->probe = 0;
}

/* Records an eval of n tokens that took `seconds` with tfm__governor_next's thread count. */
TFM__OMP_ONLY void tfm__governor_record(tfm__governor *g, int32_t max, size_t n, double seconds) {
    if (g->probe && n != g->n_tokens) { /* not comparable: try again once evals of n tokens are */
        g->probe = 0;
        g->n_tokens = n;
        g->n_cost = 0;
        g->wait = 0;
        return;
    }
    if (g->probe) {
        const double win_below = 0.9 * g->cost * TFM__GOV_TRY;
        double slow;
        g->probe_sum += seconds;
        g->probe_evals++;
        slow = (g->probe_evals == 1 ? 1.5 : 1.25) * g->cost * g->probe_evals;
        if (g->probe_sum > slow || g->probe_sum >= win_below) tfm__governor_end_try(g, 0);
        else if (g->probe_evals == TFM__GOV_TRY) tfm__governor_end_try(g, 1);
        return;
    }
    if (n != g->n_tokens) { g->n_tokens = n; g->n_cost = 0; }
    g->cost = g->n_cost == 0 ? seconds : g->cost + (seconds - g->cost) / TFM__GOV_TRY;
    if (g->n_cost < TFM__GOV_TRY) g->n_cost++;
    if (g->wait > 0) g->wait--;
    if (g->wait > 0 || g->n_cost < TFM__GOV_TRY || max < 2) return;
    if (g->now == 1) g->go_up = 1;
    if (g->now == max) g->go_up = 0;
    g->probe = g->go_up ? g->now + 1 : (g->now + 1) / 2;
    g->probe_evals = 0;
    g->probe_sum = 0;
}

TFMDEF tfm_result tfm_session_eval(tfm_session *s, const int32_t *tokens, const int32_t *seq, size_t n, float *all_logits) {
    tfm__mm_ctx mm;
    tfm__team team;
    tfm_result rc;
    if (!s || !s->model || (!tokens && n)) return TFM_ERR_ARG;
    if (n > (size_t)INT32_MAX) return TFM_ERR_ARG;
    if ((rc = tfm__eval_check(s, tokens, seq, n)) != TFM_OK) return rc;
    mm = tfm__mm(s);
    memset(&team, 0, sizeof team);
    team.n = 1;
    mm.team = &team;
    s->n_threads_used = 1;
#ifdef _OPENMP
    if (s->cfg.n_threads > 1) {
        const int32_t want = s->cfg.threads_fixed ? s->cfg.n_threads : tfm__governor_next(&s->gov_, s->cfg.n_threads);
        const double t0 = omp_get_wtime();
        if (want > 1) {
#pragma omp parallel num_threads(want)
            {
                tfm__mm_ctx me = mm;
#pragma omp single
                team.n = omp_get_num_threads(); /* fewer than asked inside another parallel region */
                me.tid = omp_get_thread_num();
                tfm__forward(s, &me, tokens, seq, n, all_logits);
            }
        } else {
            tfm__forward(s, &mm, tokens, seq, n, all_logits);
        }
        s->n_threads_used = team.n;
        if (!s->cfg.threads_fixed) tfm__governor_record(&s->gov_, s->cfg.n_threads, n, omp_get_wtime() - t0);
        return TFM_OK;
    }
#endif
    tfm__forward(s, &mm, tokens, seq, n, all_logits);
    return TFM_OK;
}

/* ===================================================================== >>tokenizer */
/* >>tokenizer-impl-begin */
/* Token strings stay in the GGUF bytes; the heap holds offsets, scores, types and two open
   addressing hash tables (strings -> ids, merge pairs -> ranks). Encoding runs one merge engine
   for both tokenizers: a linked list of symbols and a binary heap keyed by the priority of each
   symbol's merge with its right neighbour, so a text of n characters costs O(n log n). */

#define TFM__TOK_MAX ((size_t)1 << 28)     /* tokens, so that hash sizes fit in uint32 */
#define TFM__MERGE_MAX ((size_t)1 << 24)   /* merges, so that -rank is exact in a float */
#define TFM__TEXT_MAX ((size_t)1 << 30)    /* bytes per tokenize call (symbol ids are int32) */
#define TFM__BADCP 0xFFFFFFFFu             /* "code point" of a byte that is not valid UTF-8 */

enum { TFM__TT_NORMAL = 1, TFM__TT_UNKNOWN = 2, TFM__TT_CONTROL = 3, TFM__TT_USER = 4,
       TFM__TT_UNUSED = 5, TFM__TT_BYTE = 6 };

static uint32_t tfm__fnv(uint32_t h, const char *p, size_t n) {
    while (n--) { h ^= (uint8_t)*p++; h *= 16777619u; }
    return h;
}
#define TFM__FNV_INIT 2166136261u

static uint32_t tfm__pow2_at_least(size_t n) {
    uint32_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

static tfm_str tfm__tok(const tfm_vocab *v, int32_t id) {
    const uint8_t *p = v->tok_base_ + v->tok_off_[id];
    uint64_t len;
    tfm_str s;
    memcpy(&len, p, 8);
    s.ptr = (const char *)p + 8;
    s.len = (size_t)len;
    return s;
}

/* Tokens that text may turn into; control, unknown, unused and byte tokens only come from
   explicit rules (BOS/EOS, byte fallback). */
static int tfm__tok_mergeable(const tfm_vocab *v, int32_t id) {
    int t = v->ttype_[id];
    return t != TFM__TT_UNKNOWN && t != TFM__TT_CONTROL && t != TFM__TT_UNUSED && t != TFM__TT_BYTE;
}

/* Id of the token a[0..na) + b[0..nb), the lowest such id (mergeable only if asked), or -1. */
static int32_t tfm__lookup2(const tfm_vocab *v, const char *a, size_t na, const char *b, size_t nb, int mergeable) {
    uint32_t mask = v->tok_hash_n_ - 1, i;
    if (na + nb > v->max_tok_len_) return -1;
    i = tfm__fnv(tfm__fnv(TFM__FNV_INIT, a, na), b, nb) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = v->tok_hash_[i];
        tfm_str s;
        if (id < 0) return -1;
        s = tfm__tok(v, id);
        if (s.len == na + nb && (na == 0 || memcmp(s.ptr, a, na) == 0) && (nb == 0 || memcmp(s.ptr + na, b, nb) == 0) &&
            (!mergeable || tfm__tok_mergeable(v, id)))
            return id;
    }
}

static uint32_t tfm__pair_hash(int32_t a, int32_t b) {
    uint32_t h = (uint32_t)a * 0x9E3779B1u ^ ((uint32_t)b + 0x7F4A7C15u) * 0x85EBCA77u;
    return h ^ (h >> 15);
}

/* Rank of the merge (a, b), or -1. */
static int32_t tfm__merge_rank(const tfm_vocab *v, int32_t a, int32_t b) {
    uint32_t mask = v->merge_hash_n_ - 1, i;
    if (v->merge_hash_n_ == 0) return -1;
    for (i = tfm__pair_hash(a, b) & mask;; i = (i + 1) & mask) {
        int32_t r = v->merge_hash_[i];
        if (r < 0) return -1;
        if (v->merge_[3 * r] == a && v->merge_[3 * r + 1] == b) return r;
    }
}

/* ---- GPT-2's byte <-> character mapping: printable Latin-1 bytes stand for themselves, the
   other 68 bytes (0-32, 127-160, 173) for U+0100.. in byte order. */
static uint32_t tfm__byte_to_cp(unsigned b) {
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 162 + b;
    if (b == 173) return 323;
    return b;
}

static int tfm__cp_to_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 255 && cp != 173)) return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)(cp - 256);
    if (cp >= 289 && cp <= 322) return (int)(cp - 162);
    if (cp == 323) return 173;
    return -1;
}

static size_t tfm__utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 63)); out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 63));
    out[2] = (char)(0x80 | ((cp >> 6) & 63)); out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Decodes the character at p[0..n), n >= 1: returns its length and sets *cp. A byte that does
   not start a well-formed character (overlong, surrogate, truncated, > U+10FFFF) is a character
   of length 1 with *cp = TFM__BADCP. */
static size_t tfm__utf8_char(const uint8_t *p, size_t n, uint32_t *cp) {
    uint32_t c, min;
    size_t len, i;
    uint8_t b = p[0];
    *cp = TFM__BADCP;
    if (b < 0x80) { *cp = b; return 1; }
    if (b >= 0xC2 && b <= 0xDF) { len = 2; c = b & 0x1Fu; min = 0x80; }
    else if (b >= 0xE0 && b <= 0xEF) { len = 3; c = b & 0x0Fu; min = 0x800; }
    else if (b >= 0xF0 && b <= 0xF4) { len = 4; c = b & 0x07u; min = 0x10000; }
    else return 1;
    if (len > n) return 1;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 1;
        c = (c << 6) | (p[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 1;
    *cp = c;
    return len;
}

/* ---- Unicode classes for the pre-tokenizers */
/* generated by tools/gen_unicode_tables.py from Unicode 14.0.0 */
static const uint32_t tfm__uni_letter[697] = {
    0x00020819u, 0x00030819u, 0x00055000u, 0x0005a800u, 0x0005d000u, 0x00060016u, 0x0006c01eu, 0x0007c1c9u,
    0x0016300bu, 0x00170004u, 0x00176000u, 0x00177000u, 0x001b8004u, 0x001bb001u, 0x001bd003u, 0x001bf800u,
    0x001c3000u, 0x001c4002u, 0x001c6000u, 0x001c7013u, 0x001d1852u, 0x001fb88au, 0x002450a5u, 0x00298825u,
    0x002ac800u, 0x002b0028u, 0x002e801au, 0x002f7803u, 0x0031002au, 0x00337001u, 0x00338862u, 0x0036a800u,
    0x00372801u, 0x00377001u, 0x0037d002u, 0x0037f800u, 0x00388000u, 0x0038901du, 0x003a6858u, 0x003d8800u,
    0x003e5020u, 0x003fa001u, 0x003fd000u, 0x00400015u, 0x0040d000u, 0x00412000u, 0x00414000u, 0x00420018u,
    0x0043000au, 0x00438017u, 0x00444805u, 0x00450029u, 0x00482035u, 0x0049e800u, 0x004a8000u, 0x004ac009u,
    0x004b880fu, 0x004c2807u, 0x004c7801u, 0x004c9815u, 0x004d5006u, 0x004d9000u, 0x004db003u, 0x004de800u,
    0x004e7000u, 0x004ee001u, 0x004ef802u, 0x004f8001u, 0x004fe000u, 0x00502805u, 0x00507801u, 0x00509815u,
    0x00515006u, 0x00519001u, 0x0051a801u, 0x0051c001u, 0x0052c803u, 0x0052f000u, 0x00539002u, 0x00542808u,
    0x00547802u, 0x00549815u, 0x00555006u, 0x00559001u, 0x0055a804u, 0x0055e800u, 0x00568000u, 0x00570001u,
    0x0057c800u, 0x00582807u, 0x00587801u, 0x00589815u, 0x00595006u, 0x00599001u, 0x0059a804u, 0x0059e800u,
    0x005ae001u, 0x005af802u, 0x005b8800u, 0x005c1800u, 0x005c2805u, 0x005c7002u, 0x005c9003u, 0x005cc801u,
    0x005ce000u, 0x005cf001u, 0x005d1801u, 0x005d4002u, 0x005d700bu, 0x005e8000u, 0x00602807u, 0x00607002u,
    0x00609016u, 0x0061500fu, 0x0061e800u, 0x0062c002u, 0x0062e800u, 0x00630001u, 0x00640000u, 0x00642807u,
    0x00647002u, 0x00649016u, 0x00655009u, 0x0065a804u, 0x0065e800u, 0x0066e801u, 0x00670001u, 0x00678801u,
    0x00682008u, 0x00687002u, 0x00689028u, 0x0069e800u, 0x006a7000u, 0x006aa002u, 0x006af802u, 0x006bd005u,
    0x006c2811u, 0x006cd017u, 0x006d9808u, 0x006de800u, 0x006e0006u, 0x0070082fu, 0x00719001u, 0x00720006u,
    0x00740801u, 0x00742000u, 0x00743004u, 0x00746017u, 0x00752800u, 0x00753809u, 0x00759001u, 0x0075e800u,
    0x00760004u, 0x00763000u, 0x0076e003u, 0x00780000u, 0x007a0007u, 0x007a4823u, 0x007c4004u, 0x0080002au,
    0x0081f800u, 0x00828005u, 0x0082d003u, 0x00830800u, 0x00832801u, 0x00837002u, 0x0083a80cu, 0x00847000u,
    0x00850025u, 0x00863800u, 0x00866800u, 0x0086802au, 0x0087e14cu, 0x00925003u, 0x00928006u, 0x0092c000u,
    0x0092d003u, 0x00930028u, 0x00945003u, 0x00948020u, 0x00959003u, 0x0095c006u, 0x00960000u, 0x00961003u,
    0x0096400eu, 0x0096c038u, 0x00989003u, 0x0098c042u, 0x009c000fu, 0x009d0055u, 0x009fc005u, 0x00a00a6bu,
    0x00b37810u, 0x00b40819u, 0x00b5004au, 0x00b78807u, 0x00b80011u, 0x00b8f812u, 0x00ba0011u, 0x00bb000cu,
    0x00bb7002u, 0x00bc0033u, 0x00beb800u, 0x00bee000u, 0x00c10058u, 0x00c40004u, 0x00c43821u, 0x00c55000u,
    0x00c58045u, 0x00c8001eu, 0x00ca801du, 0x00cb8004u, 0x00cc002bu, 0x00cd8019u, 0x00d00016u, 0x00d10034u,
    0x00d53800u, 0x00d8282eu, 0x00da2807u, 0x00dc181du, 0x00dd7001u, 0x00ddd02bu, 0x00e00023u, 0x00e26802u,
    0x00e2d023u, 0x00e40008u, 0x00e4802au, 0x00e5e802u, 0x00e74803u, 0x00e77005u, 0x00e7a801u, 0x00e7d000u,
    0x00e800bfu, 0x00f00115u, 0x00f8c005u, 0x00f90025u, 0x00fa4005u, 0x00fa8007u, 0x00fac800u, 0x00fad800u,
    0x00fae800u, 0x00faf81eu, 0x00fc0034u, 0x00fdb006u, 0x00fdf000u, 0x00fe1002u, 0x00fe3006u, 0x00fe8003u,
    0x00feb005u, 0x00ff000cu, 0x00ff9002u, 0x00ffb006u, 0x01038800u, 0x0103f800u, 0x0104800cu, 0x01081000u,
    0x01083800u, 0x01085009u, 0x0108a800u, 0x0108c804u, 0x01092000u, 0x01093000u, 0x01094000u, 0x01095003u,
    0x0109780au, 0x0109e003u, 0x010a2804u, 0x010a7000u, 0x010c1801u, 0x016000e4u, 0x01675803u, 0x01679001u,
    0x01680025u, 0x01693800u, 0x01696800u, 0x01698037u, 0x016b7800u, 0x016c0016u, 0x016d0006u, 0x016d4006u,
    0x016d8006u, 0x016dc006u, 0x016e0006u, 0x016e4006u, 0x016e8006u, 0x016ec006u, 0x01717800u, 0x01802801u,
    0x01818804u, 0x0181d801u, 0x01820855u, 0x0184e802u, 0x01850859u, 0x0187e003u, 0x0188282au, 0x0189885du,
    0x018d001fu, 0x018f800fu, 0x01a007ffu, 0x01e007ffu, 0x022007ffu, 0x026001bfu, 0x027007ffu, 0x02b007ffu,
    0x02f007ffu, 0x033007ffu, 0x037007ffu, 0x03b007ffu, 0x03f007ffu, 0x043007ffu, 0x047007ffu, 0x04b007ffu,
    0x04f0068cu, 0x0526802du, 0x0528010cu, 0x0530800fu, 0x05315001u, 0x0532002eu, 0x0533f81eu, 0x05350045u,
    0x0538b808u, 0x05391066u, 0x053c583fu, 0x053e8001u, 0x053e9800u, 0x053ea804u, 0x053f900fu, 0x05401802u,
    0x05403803u, 0x05406016u, 0x05420033u, 0x05441031u, 0x05479005u, 0x0547d800u, 0x0547e801u, 0x0548501bu,
    0x05498016u, 0x054b001cu, 0x054c202eu, 0x054e7800u, 0x054f0004u, 0x054f3009u, 0x054fd004u, 0x05500028u,
    0x05520002u, 0x05522007u, 0x05530016u, 0x0553d000u, 0x0553f031u, 0x05558800u, 0x0555a801u, 0x0555c804u,
    0x05560000u, 0x05561000u, 0x0556d802u, 0x0557000au, 0x05579002u, 0x05580805u, 0x05584805u, 0x05588805u,
    0x05590006u, 0x05594006u, 0x0559802au, 0x055ae00du, 0x055b8072u, 0x056007ffu, 0x05a007ffu, 0x05e007ffu,
    0x062007ffu, 0x066007ffu, 0x06a003a3u, 0x06bd8016u, 0x06be5830u, 0x07c8016du, 0x07d38069u, 0x07d80006u,
    0x07d89804u, 0x07d8e800u, 0x07d8f809u, 0x07d9500cu, 0x07d9c004u, 0x07d9f000u, 0x07da0001u, 0x07da1801u,
    0x07da306bu, 0x07de996au, 0x07ea803fu, 0x07ec9035u, 0x07ef800bu, 0x07f38004u, 0x07f3b086u, 0x07f90819u,
    0x07fa0819u, 0x07fb3058u, 0x07fe1005u, 0x07fe5005u, 0x07fe9005u, 0x07fed002u, 0x0800000bu, 0x08006819u,
    0x08014012u, 0x0801e001u, 0x0801f80eu, 0x0802800du, 0x0804007au, 0x0814001cu, 0x08150030u, 0x0818001fu,
    0x08196813u, 0x081a1007u, 0x081a8025u, 0x081c001du, 0x081d0023u, 0x081e4007u, 0x0820009du, 0x08258023u,
    0x0826c023u, 0x08280027u, 0x08298033u, 0x082b800au, 0x082be00eu, 0x082c6006u, 0x082ca001u, 0x082cb80au,
    0x082d180eu, 0x082d9806u, 0x082dd801u, 0x08300136u, 0x083a0015u, 0x083b0007u, 0x083c0005u, 0x083c3829u,
    0x083d9008u, 0x08400005u, 0x08404000u, 0x0840502bu, 0x0841b801u, 0x0841e000u, 0x0841f816u, 0x08430016u,
    0x0844001eu, 0x08470012u, 0x0847a001u, 0x08480015u, 0x08490019u, 0x084c0037u, 0x084df001u, 0x08500000u,
    0x08508003u, 0x0850a802u, 0x0850c81cu, 0x0853001cu, 0x0854001cu, 0x08560007u, 0x0856481bu, 0x08580035u,
    0x085a0015u, 0x085b0012u, 0x085c0011u, 0x08600048u, 0x08640032u, 0x08660032u, 0x08680023u, 0x08740029u,
    0x08758001u, 0x0878001cu, 0x08793800u, 0x08798015u, 0x087b8011u, 0x087d8014u, 0x087f0016u, 0x08801834u,
    0x08838801u, 0x0883a800u, 0x0884182cu, 0x08868018u, 0x08881823u, 0x088a2000u, 0x088a3800u, 0x088a8022u,
    0x088bb000u, 0x088c182fu, 0x088e0803u, 0x088ed000u, 0x088ee000u, 0x08900011u, 0x08909818u, 0x08940006u,
    0x08944000u, 0x08945003u, 0x0894780eu, 0x0894f809u, 0x0895802eu, 0x08982807u, 0x08987801u, 0x08989815u,
    0x08995006u, 0x08999001u, 0x0899a804u, 0x0899e800u, 0x089a8000u, 0x089ae804u, 0x08a00034u, 0x08a23803u,
    0x08a2f802u, 0x08a4002fu, 0x08a62001u, 0x08a63800u, 0x08ac002eu, 0x08aec003u, 0x08b0002fu, 0x08b22000u,
    0x08b4002au, 0x08b5c000u, 0x08b8001au, 0x08ba0006u, 0x08c0002bu, 0x08c5003fu, 0x08c7f807u, 0x08c84800u,
    0x08c86007u, 0x08c8a801u, 0x08c8c017u, 0x08c9f800u, 0x08ca0800u, 0x08cd0007u, 0x08cd5026u, 0x08cf0800u,
    0x08cf1800u, 0x08d00000u, 0x08d05827u, 0x08d1d000u, 0x08d28000u, 0x08d2e02du, 0x08d4e800u, 0x08d58048u,
    0x08e00008u, 0x08e05024u, 0x08e20000u, 0x08e3901du, 0x08e80006u, 0x08e84001u, 0x08e85825u, 0x08ea3000u,
    0x08eb0005u, 0x08eb3801u, 0x08eb501fu, 0x08ecc000u, 0x08f70012u, 0x08fd8000u, 0x09000399u, 0x092400c3u,
    0x097c8060u, 0x0980042eu, 0x0a200246u, 0x0b400238u, 0x0b52001eu, 0x0b53804eu, 0x0b56801du, 0x0b58002fu,
    0x0b5a0003u, 0x0b5b1814u, 0x0b5be812u, 0x0b72003fu, 0x0b78004au, 0x0b7a8000u, 0x0b7c980cu, 0x0b7f0001u,
    0x0b7f1800u, 0x0b8007ffu, 0x0bc007ffu, 0x0c0007f7u, 0x0c4004d5u, 0x0c680008u, 0x0d7f8003u, 0x0d7fa806u,
    0x0d7fe801u, 0x0d800122u, 0x0d8a8002u, 0x0d8b2003u, 0x0d8b818bu, 0x0de0006au, 0x0de3800cu, 0x0de40008u,
    0x0de48009u, 0x0ea00054u, 0x0ea2b046u, 0x0ea4f001u, 0x0ea51000u, 0x0ea52801u, 0x0ea54803u, 0x0ea5700bu,
    0x0ea5d800u, 0x0ea5e806u, 0x0ea62840u, 0x0ea83803u, 0x0ea86807u, 0x0ea8b006u, 0x0ea8f01bu, 0x0ea9d803u,
    0x0eaa0004u, 0x0eaa3000u, 0x0eaa5006u, 0x0eaa9153u, 0x0eb54018u, 0x0eb61018u, 0x0eb6e01eu, 0x0eb7e018u,
    0x0eb8b01eu, 0x0eb9b018u, 0x0eba801eu, 0x0ebb8018u, 0x0ebc501eu, 0x0ebd5018u, 0x0ebe2007u, 0x0ef8001eu,
    0x0f08002cu, 0x0f09b806u, 0x0f0a7000u, 0x0f14801du, 0x0f16002bu, 0x0f3f0006u, 0x0f3f4003u, 0x0f3f6801u,
    0x0f3f800eu, 0x0f4000c4u, 0x0f480043u, 0x0f4a5800u, 0x0f700003u, 0x0f70281au, 0x0f710801u, 0x0f712000u,
    0x0f713800u, 0x0f714809u, 0x0f71a003u, 0x0f71c800u, 0x0f71d800u, 0x0f721000u, 0x0f723800u, 0x0f724800u,
    0x0f725800u, 0x0f726802u, 0x0f728801u, 0x0f72a000u, 0x0f72b800u, 0x0f72c800u, 0x0f72d800u, 0x0f72e800u,
    0x0f72f800u, 0x0f730801u, 0x0f732000u, 0x0f733803u, 0x0f736006u, 0x0f73a003u, 0x0f73c803u, 0x0f73f000u,
    0x0f740009u, 0x0f745810u, 0x0f750802u, 0x0f752804u, 0x0f755810u, 0x100007ffu, 0x104007ffu, 0x108007ffu,
    0x10c007ffu, 0x110007ffu, 0x114007ffu, 0x118007ffu, 0x11c007ffu, 0x120007ffu, 0x124007ffu, 0x128007ffu,
    0x12c007ffu, 0x130007ffu, 0x134007ffu, 0x138007ffu, 0x13c007ffu, 0x140007ffu, 0x144007ffu, 0x148007ffu,
    0x14c007ffu, 0x150006dfu, 0x153807ffu, 0x157807ffu, 0x15b80038u, 0x15ba00ddu, 0x15c107ffu, 0x160107ffu,
    0x16410681u, 0x167587ffu, 0x16b587ffu, 0x16f587ffu, 0x17358530u, 0x17c0021du, 0x180007ffu, 0x184007ffu,
    0x1880034au,
};
static const uint32_t tfm__uni_number[134] = {
    0x00018009u, 0x00059001u, 0x0005c800u, 0x0005e002u, 0x00330009u, 0x00378009u, 0x003e0009u, 0x004b3009u,
    0x004f3009u, 0x004fa005u, 0x00533009u, 0x00573009u, 0x005b3009u, 0x005b9005u, 0x005f300cu, 0x00633009u,
    0x0063c006u, 0x00673009u, 0x006ac006u, 0x006b3012u, 0x006f3009u, 0x00728009u, 0x00768009u, 0x00790013u,
    0x00820009u, 0x00848009u, 0x009b4813u, 0x00b77002u, 0x00bf0009u, 0x00bf8009u, 0x00c08009u, 0x00ca3009u,
    0x00ce800au, 0x00d40009u, 0x00d48009u, 0x00da8009u, 0x00dd8009u, 0x00e20009u, 0x00e28009u, 0x01038000u,
    0x0103a005u, 0x01040009u, 0x010a8032u, 0x010c2804u, 0x0123003bu, 0x01275015u, 0x013bb01du, 0x0167e800u,
    0x01803800u, 0x01810808u, 0x0181c002u, 0x018c9003u, 0x01910009u, 0x01924007u, 0x0192880eu, 0x01940009u,
    0x0195880eu, 0x05310009u, 0x05373009u, 0x05418005u, 0x05468009u, 0x05480009u, 0x054e8009u, 0x054f8009u,
    0x05528009u, 0x055f8009u, 0x07f88009u, 0x0808382cu, 0x080a0038u, 0x080c5001u, 0x0817081au, 0x08190003u,
    0x081a0800u, 0x081a5000u, 0x081e8804u, 0x08250009u, 0x0842c007u, 0x0843c806u, 0x08453808u, 0x0847d804u,
    0x0848b005u, 0x084de001u, 0x084e000fu, 0x084e902du, 0x08520008u, 0x0853e801u, 0x0854e802u, 0x08575804u,
    0x085ac007u, 0x085bc007u, 0x085d4806u, 0x0867d005u, 0x08698009u, 0x0873001eu, 0x0878e809u, 0x087a8803u,
    0x087e2806u, 0x0882901du, 0x08878009u, 0x0889b009u, 0x088e8009u, 0x088f0813u, 0x08978009u, 0x08a28009u,
    0x08a68009u, 0x08b28009u, 0x08b60009u, 0x08b9800bu, 0x08c70012u, 0x08ca8009u, 0x08e2801cu, 0x08ea8009u,
    0x08ed0009u, 0x08fe0014u, 0x0920006eu, 0x0b530009u, 0x0b560009u, 0x0b5a8009u, 0x0b5ad806u, 0x0b740016u,
    0x0e970013u, 0x0e9b0018u, 0x0ebe7031u, 0x0f0a0009u, 0x0f178009u, 0x0f463808u, 0x0f4a8009u, 0x0f63883au,
    0x0f656802u, 0x0f658803u, 0x0f68082cu, 0x0f69780eu, 0x0f88000cu, 0x0fdf8009u,
};

enum { TFM__CAT_OTHER = 0, TFM__CAT_LETTER, TFM__CAT_NUMBER, TFM__CAT_SPACE };

static int tfm__uni_in(const uint32_t *tab, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((tab[mid] >> 11) <= cp) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && cp - (tab[lo - 1] >> 11) <= (tab[lo - 1] & 0x7FFu);
}

/* \s is the White_Space property (the same set as onig's and Python regex's \s). */
static int tfm__uni_space(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

static int tfm__uni_cat(uint32_t cp) {
    if (cp < 128) {
        if ((cp | 32) >= 'a' && (cp | 32) <= 'z') return TFM__CAT_LETTER;
        if (cp >= '0' && cp <= '9') return TFM__CAT_NUMBER;
        return tfm__uni_space(cp) ? TFM__CAT_SPACE : TFM__CAT_OTHER;
    }
    if (cp == TFM__BADCP) return TFM__CAT_OTHER;
    if (tfm__uni_space(cp)) return TFM__CAT_SPACE;
    if (tfm__uni_in(tfm__uni_letter, sizeof tfm__uni_letter / sizeof tfm__uni_letter[0], cp)) return TFM__CAT_LETTER;
    if (tfm__uni_in(tfm__uni_number, sizeof tfm__uni_number / sizeof tfm__uni_number[0], cp)) return TFM__CAT_NUMBER;
    return TFM__CAT_OTHER;
}

/* ---- pre-tokenizers: each returns the end of the piece that starts at p < n, following the
   regex alternatives in order (first alternative that matches wins, quantifiers greedy). */

/* Category of the character at p (TFM__CAT_* or -1 at the end), its code point and length. */
static int tfm__cat_at(const uint8_t *t, size_t n, size_t p, uint32_t *cp, size_t *len) {
    if (p >= n) { *cp = TFM__BADCP; *len = 0; return -1; }
    *len = tfm__utf8_char(t + p, n - p, cp);
    return tfm__uni_cat(*cp);
}

/* End of the run of characters of category cat that starts at p (at most max of them). */
static size_t tfm__run(const uint8_t *t, size_t n, size_t p, int cat, size_t max) {
    uint32_t cp;
    size_t len;
    while (max-- && tfm__cat_at(t, n, p, &cp, &len) == cat) p += len;
    return p;
}

/* 's|'t|'re|'ve|'m|'ll|'d at p: length matched or 0. With icase, as (?i:...): ASCII letters of
   either case, and U+017F (long s, which case-folds to s) for s. */
static size_t tfm__contraction(const uint8_t *t, size_t n, size_t p, int icase) {
    int a, b;
    if (t[p] != '\'' || p + 1 >= n) return 0;
    a = t[p + 1];
    b = p + 2 < n ? t[p + 2] : 0;
    if (icase) {
        if (a == 0xC5 && b == 0xBF) return 3;
        a = (a >= 'A' && a <= 'Z') ? a + 32 : a;
        b = (b >= 'A' && b <= 'Z') ? b + 32 : b;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at p (a space character): the whole run at the end of the text, else the run
   without its last character when that leaves at least one. */
static size_t tfm__space_tail(const uint8_t *t, size_t n, size_t p) {
    uint32_t cp;
    size_t len, e = p, last = p;
    while (tfm__cat_at(t, n, e, &cp, &len) == TFM__CAT_SPACE) { last = e; e += len; }
    if (e == n || last == p) return e;
    return last;
}

static size_t tfm__pre_gpt2(const uint8_t *t, size_t n, size_t p) {
    uint32_t c0, c1;
    size_t l0, l1, m = tfm__contraction(t, n, p, 0);
    int k0, k1;
    if (m) return p + m;
    k0 = tfm__cat_at(t, n, p, &c0, &l0);
    if (k0 != TFM__CAT_SPACE) return tfm__run(t, n, p, k0, (size_t)-1);     /* ?\p{L}+ etc. */
    k1 = tfm__cat_at(t, n, p + 1, &c1, &l1);
    if (c0 == ' ' && k1 >= 0 && k1 != TFM__CAT_SPACE) return tfm__run(t, n, p + 1, k1, (size_t)-1);
    return tfm__space_tail(t, n, p);
}

/* Llama 3 (max_digits 3) and Qwen2 (max_digits 1). */
static size_t tfm__pre_llama3(const uint8_t *t, size_t n, size_t p, size_t max_digits) {
    uint32_t c0, c1, cp;
    size_t l0, l1, len, e, nl, m = tfm__contraction(t, n, p, 1);
    int k0;
    if (m) return p + m;
    k0 = tfm__cat_at(t, n, p, &c0, &l0);
    if (k0 == TFM__CAT_LETTER) return tfm__run(t, n, p, k0, (size_t)-1);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 != TFM__CAT_NUMBER && c0 != '\r' && c0 != '\n' && tfm__cat_at(t, n, p + l0, &c1, &l1) == TFM__CAT_LETTER)
        return tfm__run(t, n, p + l0, TFM__CAT_LETTER, (size_t)-1);
    if (k0 == TFM__CAT_NUMBER) return tfm__run(t, n, p, k0, max_digits);
    /* ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (k0 == TFM__CAT_OTHER || (c0 == ' ' && tfm__cat_at(t, n, p + 1, &c1, &l1) == TFM__CAT_OTHER)) {
        e = tfm__run(t, n, k0 == TFM__CAT_OTHER ? p : p + 1, TFM__CAT_OTHER, (size_t)-1);
        while (e < n && (t[e] == '\r' || t[e] == '\n')) e++;
        return e;
    }
    /* \s*[\r\n]+ : through the last line break of the space run */
    for (e = p, nl = 0; tfm__cat_at(t, n, e, &cp, &len) == TFM__CAT_SPACE; e += len)
        if (cp == '\r' || cp == '\n') nl = e + 1;
    if (nl) return nl;
    return tfm__space_tail(t, n, p);
}

static size_t tfm__pretok_next(tfm_pretok pre, const uint8_t *t, size_t n, size_t p) {
    switch (pre) {
    case TFM_PRE_LLAMA3: return tfm__pre_llama3(t, n, p, 3);
    case TFM_PRE_QWEN2: return tfm__pre_llama3(t, n, p, 1);
    default: return tfm__pre_gpt2(t, n, p);
    }
}

/* ---- loading */

/* What the GGUF holds, checked; shared by heap_size and init. */
typedef struct {
    tfm_vocab_type type;
    tfm_pretok pre;
    const tfm_gguf_kv *tokens, *scores, *types, *merges;
    size_t n_tokens, n_merges;
} tfm__vocab_src;

static int tfm__is_int_type(tfm_gguf_type t) {
    return t == TFM_GGUF_U8 || t == TFM_GGUF_I8 || t == TFM_GGUF_U16 || t == TFM_GGUF_I16 || t == TFM_GGUF_U32 ||
           t == TFM_GGUF_I32 || t == TFM_GGUF_U64 || t == TFM_GGUF_I64;
}

#define TFM__VERR sizeof(((tfm_vocab *)0)->error)

/* Sets err (when given) to what + detail[0..n) and returns rc. */
static tfm_result tfm__vocab_fail(char *err, tfm_result rc, const char *what, const char *detail, size_t n) {
    if (err) tfm__set_error(err, TFM__VERR, what, detail, n);
    return rc;
}

/* An optional per-token array: absent, or numbers (integers unless want_float), one per token. */
static tfm_result tfm__vocab_arr(const tfm_gguf *g, const char *key, int want_float, size_t n_tokens,
                                 const tfm_gguf_kv **out, char *err) {
    const tfm_gguf_kv *kv = tfm_gguf_find(g, key);
    *out = kv;
    if (!kv) return TFM_OK;
    if (kv->type != TFM_GGUF_ARRAY || !(tfm__is_int_type(kv->arr_type) || (want_float && (kv->arr_type == TFM_GGUF_F32 || kv->arr_type == TFM_GGUF_F64)))) {
        tfm__vocab_fail(err, TFM_ERR_FORMAT, key, NULL, 0);
        if (err) tfm__append(err, TFM__VERR, want_float ? " is not a numeric array" : " is not an integer array", 32);
        return TFM_ERR_FORMAT;
    }
    if (kv->arr_n != n_tokens) {
        if (err) {
            tfm__set_error(err, TFM__VERR, key, " has ", 5);
            tfm__append_u64(err, TFM__VERR, kv->arr_n);
            tfm__append(err, TFM__VERR, " entries but tokenizer.ggml.tokens has ", 40);
            tfm__append_u64(err, TFM__VERR, n_tokens);
        }
        return TFM_ERR_FORMAT;
    }
    return TFM_OK;
}

static tfm_result tfm__vocab_pre(tfm_str pre, tfm_pretok *out, char *err) {
    static const char *const gpt2[] = {"gpt-2", "phi-2"};
    static const char *const llama3[] = {"llama-bpe", "llama3", "llama-v3"};
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "megrez"};
    size_t i;
    for (i = 0; i < sizeof gpt2 / sizeof gpt2[0]; i++) if (tfm__str_eq(pre, gpt2[i])) { *out = TFM_PRE_GPT2; return TFM_OK; }
    for (i = 0; i < sizeof llama3 / sizeof llama3[0]; i++) if (tfm__str_eq(pre, llama3[i])) { *out = TFM_PRE_LLAMA3; return TFM_OK; }
    for (i = 0; i < sizeof qwen2 / sizeof qwen2[0]; i++) if (tfm__str_eq(pre, qwen2[i])) { *out = TFM_PRE_QWEN2; return TFM_OK; }
    tfm__vocab_fail(err, TFM_ERR_UNSUPPORTED, "pre-tokenizer not supported (gpt-2, llama-bpe, qwen2): ", pre.ptr, pre.len);
    return TFM_ERR_UNSUPPORTED;
}

static tfm_result tfm__vocab_scan(const tfm_gguf *g, tfm__vocab_src *s, char *err) {
    tfm_str model, pre;
    tfm_result rc;
    memset(s, 0, sizeof *s);
    if (!g) return tfm__vocab_fail(err, TFM_ERR_ARG, "no GGUF given", NULL, 0);
    if (!tfm_gguf_find(g, "tokenizer.ggml.model") && !tfm_gguf_find(g, "tokenizer.ggml.tokens"))
        return TFM_OK; /* no vocabulary at all: an empty one (TFM_VOCAB_NONE) */
    if (!tfm_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return tfm__vocab_fail(err, TFM_ERR_MISSING, "tokenizer.ggml.model missing (or not a string)", NULL, 0);
    if (tfm__str_eq(model, "llama")) s->type = TFM_VOCAB_SPM;
    else if (tfm__str_eq(model, "gpt2")) s->type = TFM_VOCAB_BPE;
    else return tfm__vocab_fail(err, TFM_ERR_UNSUPPORTED, "tokenizer model not supported (llama, gpt2): ", model.ptr, model.len);
    s->tokens = tfm_gguf_find(g, "tokenizer.ggml.tokens");
    if (!s->tokens) return tfm__vocab_fail(err, TFM_ERR_MISSING, "tokenizer.ggml.tokens missing", NULL, 0);
    if (s->tokens->type != TFM_GGUF_ARRAY || s->tokens->arr_type != TFM_GGUF_STRING)
        return tfm__vocab_fail(err, TFM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings", NULL, 0);
    if (s->tokens->arr_n == 0 || s->tokens->arr_n > TFM__TOK_MAX)
        return tfm__vocab_fail(err, TFM_ERR_FORMAT, "tokenizer.ggml.tokens is empty or has more than 2^28 tokens", NULL, 0);
    s->n_tokens = (size_t)s->tokens->arr_n;
    if ((rc = tfm__vocab_arr(g, "tokenizer.ggml.scores", 1, s->n_tokens, &s->scores, err)) != TFM_OK) return rc;
    if ((rc = tfm__vocab_arr(g, "tokenizer.ggml.token_type", 0, s->n_tokens, &s->types, err)) != TFM_OK) return rc;
    if (s->type == TFM_VOCAB_SPM) return TFM_OK;
    s->pre = TFM_PRE_GPT2;
    if (tfm_gguf_get_str(g, "tokenizer.ggml.pre", &pre) && (rc = tfm__vocab_pre(pre, &s->pre, err)) != TFM_OK) return rc;
    s->merges = tfm_gguf_find(g, "tokenizer.ggml.merges");
    if (!s->merges) return tfm__vocab_fail(err, TFM_ERR_MISSING, "tokenizer.ggml.merges missing (needed by model gpt2)", NULL, 0);
    if (s->merges->type != TFM_GGUF_ARRAY || s->merges->arr_type != TFM_GGUF_STRING)
        return tfm__vocab_fail(err, TFM_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings", NULL, 0);
    if (s->merges->arr_n > TFM__MERGE_MAX) return tfm__vocab_fail(err, TFM_ERR_UNSUPPORTED, "more than 2^24 merges", NULL, 0);
    s->n_merges = (size_t)s->merges->arr_n;
    return TFM_OK;
}

/* Places the vocabulary's arrays (or only measures them when a->base is NULL). */
static void tfm__vocab_layout(tfm__arena *a, tfm_vocab *v, const tfm__vocab_src *s) {
    uint32_t th = tfm__pow2_at_least(2 * s->n_tokens), mh = s->n_merges ? tfm__pow2_at_least(2 * s->n_merges) : 0;
    v->tok_off_ = (uint32_t *)tfm__arena_take(a, s->n_tokens * sizeof(uint32_t));
    v->score_ = (float *)tfm__arena_take(a, s->n_tokens * sizeof(float));
    v->ttype_ = (uint8_t *)tfm__arena_take(a, s->n_tokens);
    v->tok_hash_ = (int32_t *)tfm__arena_take(a, (size_t)th * sizeof(int32_t));
    v->tok_hash_n_ = th;
    v->merge_ = (int32_t *)tfm__arena_take(a, s->n_merges * 3 * sizeof(int32_t));
    v->merge_hash_ = (int32_t *)tfm__arena_take(a, (size_t)mh * sizeof(int32_t));
    v->merge_hash_n_ = mh;
}

TFMDEF tfm_result tfm_vocab_heap_size(const tfm_gguf *g, size_t *bytes) {
    tfm__vocab_src s;
    tfm__arena a;
    tfm_vocab v;
    tfm_result rc;
    if (!bytes) return TFM_ERR_ARG;
    *bytes = 0;
    if ((rc = tfm__vocab_scan(g, &s, NULL)) != TFM_OK) return rc;
    if (s.type == TFM_VOCAB_NONE) return TFM_OK;
    {   /* the arrays must fit a size_t (32-bit targets) before they are laid out */
        uint64_t th = tfm__pow2_at_least(2 * s.n_tokens), mh = tfm__pow2_at_least(2 * s.n_merges);
        uint64_t total = 9 * (uint64_t)s.n_tokens + 4 * th + 12 * (uint64_t)s.n_merges + 4 * mh + 1024;
        if (total > (uint64_t)SIZE_MAX) return TFM_ERR_NOMEM;
    }
    a.base = NULL; a.used = 0; a.cap = 0;
    tfm__vocab_layout(&a, &v, &s);
    if (a.used > SIZE_MAX - 64) return TFM_ERR_NOMEM;
    *bytes = a.used + 64; /* room to align the caller's block */
    return TFM_OK;
}

/* Walks the token strings once: offsets, longest token, and the string hash. */
static tfm_result tfm__vocab_tokens(tfm_vocab *v, const tfm__vocab_src *s) {
    const uint8_t *p = s->tokens->value;
    uint32_t mask = v->tok_hash_n_ - 1;
    size_t i;
    v->tok_base_ = p;
    for (i = 0; i < v->tok_hash_n_; i++) v->tok_hash_[i] = -1;
    for (i = 0; i < s->n_tokens; i++) {
        uint64_t len;
        uint32_t h;
        size_t off = (size_t)(p - v->tok_base_);
        if (off > 0xFFFFFFFFu) return tfm__vocab_fail(v->error, TFM_ERR_UNSUPPORTED, "token strings larger than 4 GiB", NULL, 0);
        memcpy(&len, p, 8); /* bounds were checked when the GGUF index was built */
        v->tok_off_[i] = (uint32_t)off;
        if (len > v->max_tok_len_) v->max_tok_len_ = (size_t)len;
        h = tfm__fnv(TFM__FNV_INIT, (const char *)p + 8, (size_t)len) & mask;
        while (v->tok_hash_[h] >= 0) h = (h + 1) & mask;
        v->tok_hash_[h] = (int32_t)i; /* equal strings: the lower id sits earlier in the probe */
        p += 8 + (size_t)len;
    }
    return TFM_OK;
}

static void tfm__vocab_scores_types(tfm_vocab *v, const tfm__vocab_src *s) {
    size_t i;
    for (i = 0; i < s->n_tokens; i++) {
        double d = 0;
        int64_t t = TFM__TT_NORMAL;
        if (s->scores) tfm_gguf_arr_float(s->scores, i, &d);
        if (d != d) d = -1e30; /* NaN would break the heap order */
        v->score_[i] = d > 3e38 ? 3e38f : d < -3e38 ? -3e38f : (float)d;
        if (s->types) tfm_gguf_arr_int(s->types, i, &t);
        v->ttype_[i] = (uint8_t)(t >= 0 && t <= 255 ? t : 0);
    }
}

/* Merge i is "left right" (split at the first space after the first byte): its parts and their
   concatenation must be tokens, the result one that text may become, else the merge can never
   apply and is marked unusable. */
static void tfm__vocab_merges(tfm_vocab *v, const tfm__vocab_src *s) {
    const uint8_t *p;
    uint32_t mask = v->merge_hash_n_ - 1;
    size_t i;
    if (!s->merges) return;
    for (i = 0; i < v->merge_hash_n_; i++) v->merge_hash_[i] = -1;
    p = s->merges->value;
    for (i = 0; i < s->n_merges; i++) {
        uint64_t len;
        const char *str = (const char *)p + 8, *sp;
        int32_t a = -1, b = -1, c = -1;
        memcpy(&len, p, 8);
        p += 8 + (size_t)len;
        sp = len > 2 ? (const char *)memchr(str + 1, ' ', (size_t)len - 2) : NULL;
        if (sp) {
            size_t na = (size_t)(sp - str), nb = (size_t)len - na - 1;
            a = tfm__lookup2(v, str, na, "", 0, 0);
            b = tfm__lookup2(v, sp + 1, nb, "", 0, 0);
            c = tfm__lookup2(v, str, na, sp + 1, nb, 0);
        }
        if (a < 0 || b < 0 || c < 0 || !tfm__tok_mergeable(v, c)) a = b = c = -1;
        v->merge_[3 * i] = a; v->merge_[3 * i + 1] = b; v->merge_[3 * i + 2] = c;
        if (c >= 0 && tfm__merge_rank(v, a, b) < 0) { /* a repeated pair keeps its first rank */
            uint32_t h = tfm__pair_hash(a, b) & mask;
            while (v->merge_hash_[h] >= 0) h = (h + 1) & mask;
            v->merge_hash_[h] = (int32_t)i;
        }
    }
    v->n_merges_ = (int32_t)s->n_merges;
}

static void tfm__vocab_bytes(tfm_vocab *v) {
    static const char hex[] = "0123456789ABCDEF";
    unsigned b;
    for (b = 0; b < 256; b++) {
        char buf[8];
        size_t n;
        if (v->type == TFM_VOCAB_SPM) {
            buf[0] = '<'; buf[1] = '0'; buf[2] = 'x'; buf[3] = hex[b >> 4]; buf[4] = hex[b & 15]; buf[5] = '>';
            n = 6;
        } else {
            n = tfm__utf8_put(tfm__byte_to_cp(b), buf);
        }
        v->byte_tok_[b] = tfm__lookup2(v, buf, n, "", 0, 0);
    }
}

/* A special token id from its key: -1 when absent or out of range (with no vocabulary, any
   int32 is taken: the model's embedding decides). */
static int32_t tfm__vocab_id(const tfm_gguf *g, const char *key, int32_t n_tokens) {
    int64_t id;
    if (!tfm_gguf_get_int(g, key, &id) || id < 0 || id >= (n_tokens ? n_tokens : INT32_MAX)) return -1;
    return (int32_t)id;
}

static size_t tfm__piece(const tfm_vocab *v, int32_t id, int strip_space, char *buf, size_t cap);

static void tfm__vocab_flags(tfm_vocab *v, const tfm_gguf *g) {
    int32_t i;
    v->bos_id = tfm__vocab_id(g, "tokenizer.ggml.bos_token_id", v->n_tokens);
    v->eos_id = tfm__vocab_id(g, "tokenizer.ggml.eos_token_id", v->n_tokens);
    v->unk_id = tfm__vocab_id(g, "tokenizer.ggml.unknown_token_id", v->n_tokens);
    v->pad_id = tfm__vocab_id(g, "tokenizer.ggml.padding_token_id", v->n_tokens);
    v->add_bos = v->type == TFM_VOCAB_SPM || v->pre == TFM_PRE_LLAMA3;
    v->add_eos = 0;
    v->add_space_prefix = v->type == TFM_VOCAB_SPM;
    tfm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    tfm_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
    if (v->type == TFM_VOCAB_SPM) tfm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    v->max_piece_len = 0;
    for (i = 0; i < v->n_tokens; i++) {
        size_t n = tfm__piece(v, i, 0, NULL, 0);
        if (n > v->max_piece_len) v->max_piece_len = n;
    }
}

TFMDEF tfm_result tfm_vocab_init_preallocated(tfm_vocab *v, const tfm_gguf *g, void *heap, size_t heap_size) {
    tfm__vocab_src s;
    tfm__arena a;
    size_t need, skip;
    tfm_result rc;
    if (!v) return TFM_ERR_ARG;
    memset(v, 0, sizeof *v);
    if ((rc = tfm__vocab_scan(g, &s, v->error)) != TFM_OK) return rc;
    if ((rc = tfm_vocab_heap_size(g, &need)) != TFM_OK)
        return tfm__vocab_fail(v->error, rc, "vocabulary too large for this platform", NULL, 0);
    if (s.type == TFM_VOCAB_NONE) {
        tfm__vocab_flags(v, g);
        return TFM_OK;
    }
    skip = heap ? tfm__align_up((size_t)heap, 64) - (size_t)heap : 0;
    if (!heap || heap_size < need) return tfm__vocab_fail(v->error, TFM_ERR_BUFFER, "vocabulary heap too small", NULL, 0);
    a.base = (unsigned char *)heap + skip; a.used = 0; a.cap = heap_size - skip;
    v->type = s.type;
    v->pre = s.pre;
    v->n_tokens = (int32_t)s.n_tokens;
    tfm__vocab_layout(&a, v, &s);
    if ((rc = tfm__vocab_tokens(v, &s)) != TFM_OK) {
        char err[TFM__VERR];
        memcpy(err, v->error, sizeof err);
        memset(v, 0, sizeof *v); /* nothing half-built stays usable */
        memcpy(v->error, err, sizeof err);
        return rc;
    }
    tfm__vocab_scores_types(v, &s);
    tfm__vocab_merges(v, &s);
    tfm__vocab_bytes(v);
    tfm__vocab_flags(v, g);
    return TFM_OK;
}

TFMDEF tfm_result tfm_vocab_init(tfm_vocab *v, const tfm_gguf *g) {
    size_t need;
    void *heap;
    tfm_result rc;
    if (!v) return TFM_ERR_ARG;
    memset(v, 0, sizeof *v);
    if ((rc = tfm_vocab_heap_size(g, &need)) != TFM_OK) return tfm_vocab_init_preallocated(v, g, NULL, 0); /* fills error */
    if (need == 0) return tfm_vocab_init_preallocated(v, g, NULL, 0); /* no vocabulary */
    heap = TFM_MALLOC(need);
    if (!heap) return tfm__vocab_fail(v->error, TFM_ERR_NOMEM, "out of memory for the vocabulary", NULL, 0);
    rc = tfm_vocab_init_preallocated(v, g, heap, need);
    if (rc != TFM_OK) TFM_FREE(heap);
    else v->heap_ = heap;
    return rc;
}

TFMDEF void tfm_vocab_free(tfm_vocab *v) {
    if (!v) return;
    if (v->heap_) TFM_FREE(v->heap_);
    memset(v, 0, sizeof *v);
}

TFMDEF int32_t tfm_vocab_find(const tfm_vocab *v, const char *piece, size_t len) {
    if (!v || !v->tok_off_ || (!piece && len)) return -1;
    return tfm__lookup2(v, len ? piece : "", len, "", 0, 0);
}

/* ---- decoding */

static void tfm__put_byte(char *buf, size_t cap, size_t *n, char c) {
    if (*n < cap) buf[*n] = c;
    (*n)++;
}

/* <0xXX> -> XX, or -1. */
static int tfm__byte_piece(tfm_str s) {
    int hi, lo;
    if (s.len != 6 || memcmp(s.ptr, "<0x", 3) != 0 || s.ptr[5] != '>') return -1;
    hi = s.ptr[3]; lo = s.ptr[4];
    hi = hi >= '0' && hi <= '9' ? hi - '0' : (hi | 32) >= 'a' && (hi | 32) <= 'f' ? (hi | 32) - 'a' + 10 : -1;
    lo = lo >= '0' && lo <= '9' ? lo - '0' : (lo | 32) >= 'a' && (lo | 32) <= 'f' ? (lo | 32) - 'a' + 10 : -1;
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Decoded bytes of token id (valid): writes up to cap of them to buf, returns the full count. */
static size_t tfm__piece(const tfm_vocab *v, int32_t id, int strip_space, char *buf, size_t cap) {
    tfm_str s = tfm__tok(v, id);
    int t = v->ttype_[id], byte;
    size_t n = 0, i = 0, k;
    if (t == TFM__TT_CONTROL || t == TFM__TT_UNUSED) return 0;
    if (t == TFM__TT_UNKNOWN) {
        for (k = 0; k < 3; k++) tfm__put_byte(buf, cap, &n, "\xe2\x96\x85"[k]);
        return n;
    }
    if (t == TFM__TT_BYTE && (byte = tfm__byte_piece(s)) >= 0) {
        tfm__put_byte(buf, cap, &n, (char)byte);
        return n;
    }
    if (v->type == TFM_VOCAB_SPM) {
        for (; i < s.len; i++) {
            if (i + 2 < s.len && memcmp(s.ptr + i, "\xe2\x96\x81", 3) == 0) {
                if (!(strip_space && n == 0 && i == 0)) tfm__put_byte(buf, cap, &n, ' ');
                i += 2;
            } else {
                tfm__put_byte(buf, cap, &n, s.ptr[i]);
            }
        }
        return n;
    }
    while (i < s.len) { /* byte-level: characters back to bytes; user-defined text as it is */
        uint32_t cp;
        size_t len = tfm__utf8_char((const uint8_t *)s.ptr + i, s.len - i, &cp);
        byte = t == TFM__TT_USER ? -1 : tfm__cp_to_byte(cp);
        if (byte >= 0) tfm__put_byte(buf, cap, &n, (char)byte);
        else for (k = 0; k < len; k++) tfm__put_byte(buf, cap, &n, s.ptr[i + k]);
        i += len;
    }
    return n;
}

TFMDEF size_t tfm_token_to_piece(const tfm_vocab *v, int32_t prev_token, int32_t token, char *buf, size_t cap) {
    int strip;
    size_t n;
    if (!v || !v->tok_off_ || token < 0 || token >= v->n_tokens || (!buf && cap)) return 0;
    strip = v->type == TFM_VOCAB_SPM && v->add_space_prefix && prev_token >= 0 && prev_token == v->bos_id;
    n = tfm__piece(v, token, strip, buf, cap);
    return n < cap ? n : cap;
}

TFMDEF tfm_result tfm_detokenize(const tfm_vocab *v, const int32_t *ids, size_t n, char *buf, size_t cap, size_t *n_needed) {
    size_t i, total = 0;
    int bad = 0, at_start = 1;
    if (n_needed) *n_needed = 0;
    if (!v || (!ids && n) || (!buf && cap) || !n_needed) return TFM_ERR_ARG;
    if (!v->tok_off_) return TFM_ERR_MISSING; /* no vocabulary */
    for (i = 0; i < n; i++) {
        int32_t id = ids[i];
        int strip, t;
        if (id < 0 || id >= v->n_tokens) { bad = 1; continue; }
        t = v->ttype_[id];
        strip = at_start && v->type == TFM_VOCAB_SPM && v->add_space_prefix;
        total += tfm__piece(v, id, strip, total < cap ? buf + total : NULL, total < cap ? cap - total : 0);
        if (t != TFM__TT_CONTROL && t != TFM__TT_UNUSED) at_start = 0;
    }
    *n_needed = total;
    if (total < cap) buf[total] = 0;
    return bad ? TFM_ERR_TOKEN : total > cap ? TFM_ERR_BUFFER : TFM_OK;
}

/* ---- encoding: the merge engine */

typedef struct {
    int32_t prev, next;   /* neighbours in the list, -1 at the ends */
    int32_t id;           /* this symbol's token, -1 if it is none */
    int32_t pair;         /* token made by merging with next, -1 if none */
    int32_t hpos;         /* place in the heap, -1 when not queued */
    uint32_t start;       /* offset of the symbol's bytes in the text */
} tfm__sym;

/* A queued merge; the priority is kept here so that sifting stays inside the heap array. */
typedef struct {
    float prio;           /* score (SentencePiece) or -rank (BPE) */
    int32_t sym;          /* left symbol of the pair */
} tfm__qent;

typedef struct {
    const tfm_vocab *v;
    tfm__sym *s;          /* [n_sym] */
    tfm__qent *heap;      /* [n_heap] queued merges, best first */
    int32_t n_heap;
    const char *text;     /* SentencePiece: the escaped text the symbols point into */
    size_t text_len;
    int32_t *out;         /* emitted ids: [cap], n counts all of them */
    size_t cap, n;
} tfm__enc;

static void tfm__emit(tfm__enc *e, int32_t id) {
    if (e->n < e->cap) e->out[e->n] = id;
    e->n++;
}

/* Higher priority first, then the leftmost symbol. */
static int tfm__heap_before(tfm__qent a, tfm__qent b) {
    return a.prio > b.prio || (a.prio == b.prio && a.sym < b.sym);
}

static void tfm__heap_set(tfm__enc *e, int32_t pos, tfm__qent q) {
    e->heap[pos] = q;
    e->s[q.sym].hpos = pos;
}

/* A 4-ary heap: half the depth of a binary one, and the 4 children share a cache line. */
static void tfm__heap_up(tfm__enc *e, int32_t pos) {
    tfm__qent q = e->heap[pos];
    while (pos > 0 && tfm__heap_before(q, e->heap[(pos - 1) / 4])) {
        tfm__heap_set(e, pos, e->heap[(pos - 1) / 4]);
        pos = (pos - 1) / 4;
    }
    tfm__heap_set(e, pos, q);
}

static void tfm__heap_down(tfm__enc *e, int32_t pos) {
    tfm__qent q = e->heap[pos];
    for (;;) {
        int32_t c = 4 * pos + 1, best = c, k;
        if (c >= e->n_heap) break;
        for (k = c + 1; k < c + 4 && k < e->n_heap; k++)
            if (tfm__heap_before(e->heap[k], e->heap[best])) best = k;
        if (!tfm__heap_before(e->heap[best], q)) break;
        tfm__heap_set(e, pos, e->heap[best]);
        pos = best;
    }
    tfm__heap_set(e, pos, q);
}

static void tfm__heap_remove(tfm__enc *e, int32_t sym) {
    int32_t pos = e->s[sym].hpos;
    tfm__qent last = e->heap[--e->n_heap];
    e->s[sym].hpos = -1;
    if (last.sym == sym) return;
    tfm__heap_set(e, pos, last);
    tfm__heap_up(e, pos);
    tfm__heap_down(e, e->s[last.sym].hpos);
}

/* Finds the merge of symbol i with its right neighbour and (re)queues or dequeues i. */
static void tfm__requeue(tfm__enc *e, int32_t i) {
    tfm__sym *a = &e->s[i];
    int32_t j = a->next;
    tfm__qent q;
    q.sym = i;
    q.prio = 0;
    a->pair = -1;
    if (j >= 0 && e->v->type == TFM_VOCAB_SPM) {
        size_t end = e->s[j].next >= 0 ? e->s[e->s[j].next].start : e->text_len;
        a->pair = tfm__lookup2(e->v, e->text + a->start, end - a->start, "", 0, 1);
        if (a->pair >= 0) q.prio = e->v->score_[a->pair];
    } else if (j >= 0 && a->id >= 0 && e->s[j].id >= 0) {
        int32_t r = tfm__merge_rank(e->v, a->id, e->s[j].id);
        if (r >= 0) { a->pair = e->v->merge_[3 * r + 2]; q.prio = -(float)r; }
    }
    if (a->pair < 0) {
        if (a->hpos >= 0) tfm__heap_remove(e, i);
    } else if (a->hpos >= 0) {
        e->heap[a->hpos] = q;
        tfm__heap_up(e, a->hpos);
        tfm__heap_down(e, a->hpos);
    } else {
        e->heap[e->n_heap] = q;
        tfm__heap_up(e, e->n_heap++);
    }
}

/* Merges symbols 0..n-1 (linked in order, ids set) until no pair merges. */
static void tfm__merge_all(tfm__enc *e, int32_t n) {
    int32_t i;
    e->n_heap = 0;
    for (i = 0; i < n; i++) e->s[i].hpos = -1;
    for (i = 0; i + 1 < n; i++) tfm__requeue(e, i);
    while (e->n_heap > 0) {
        int32_t j, k;
        i = e->heap[0].sym;
        j = e->s[i].next;
        tfm__heap_remove(e, i);
        e->s[i].id = e->s[i].pair;
        if (e->s[j].hpos >= 0) tfm__heap_remove(e, j);
        k = e->s[j].next;
        e->s[i].next = k;
        if (k >= 0) e->s[k].prev = i;
        tfm__requeue(e, i);
        if (e->s[i].prev >= 0) tfm__requeue(e, e->s[i].prev);
    }
}

static void tfm__sym_init(tfm__sym *s, int32_t i, int32_t n, int32_t id, size_t start) {
    s->prev = i - 1;
    s->next = i + 1 < n ? i + 1 : -1;
    s->id = id;
    s->pair = -1;
    s->hpos = -1;
    s->start = (uint32_t)start;
}

/* SentencePiece: escape, split into characters, merge, emit with byte fallback. */
static void tfm__encode_spm(tfm__enc *e, const char *text, size_t len, char *esc) {
    const tfm_vocab *v = e->v;
    size_t i, m = 0, p;
    int32_t n = 0, k;
    if (len == 0) return;
    if (v->add_space_prefix) { memcpy(esc, "\xe2\x96\x81", 3); m = 3; }
    for (i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(esc + m, "\xe2\x96\x81", 3); m += 3; }
        else esc[m++] = text[i];
    }
    e->text = esc;
    e->text_len = m;
    for (p = 0; p < m; n++) {
        uint32_t cp;
        size_t cl = tfm__utf8_char((const uint8_t *)esc + p, m - p, &cp);
        e->s[n].start = (uint32_t)p;
        p += cl;
    }
    for (k = 0; k < n; k++) {
        size_t start = e->s[k].start, end = k + 1 < n ? e->s[k + 1].start : m;
        tfm__sym_init(&e->s[k], k, n, tfm__lookup2(v, esc + start, end - start, "", 0, 1), start);
    }
    tfm__merge_all(e, n);
    for (k = 0; k >= 0; k = e->s[k].next) {
        size_t start = e->s[k].start, end = e->s[k].next >= 0 ? e->s[e->s[k].next].start : m, b;
        int all = 1;
        if (e->s[k].id >= 0) { tfm__emit(e, e->s[k].id); continue; }
        for (b = start; b < end; b++) all &= v->byte_tok_[(uint8_t)esc[b]] >= 0;
        if (all) for (b = start; b < end; b++) tfm__emit(e, v->byte_tok_[(uint8_t)esc[b]]);
        else if (v->unk_id >= 0) tfm__emit(e, v->unk_id);
    }
}

/* Byte-level BPE of one pre-tokenized piece. mapped: room for 2 * len bytes. */
static void tfm__encode_bpe_word(tfm__enc *e, const uint8_t *w, size_t len, char *mapped) {
    const tfm_vocab *v = e->v;
    int32_t k, n = (int32_t)len;
    if (len == 1) {
        if (v->byte_tok_[w[0]] >= 0) tfm__emit(e, v->byte_tok_[w[0]]);
        else if (v->unk_id >= 0) tfm__emit(e, v->unk_id);
        return;
    }
    if (v->pre == TFM_PRE_LLAMA3) { /* llama.cpp's ignore_merges: a piece that is a token stays whole */
        size_t m = 0, i;
        int32_t id;
        for (i = 0; i < len; i++) m += tfm__utf8_put(tfm__byte_to_cp(w[i]), mapped + m);
        id = tfm__lookup2(v, mapped, m, "", 0, 1);
        if (id >= 0) { tfm__emit(e, id); return; }
    }
    for (k = 0; k < n; k++) tfm__sym_init(&e->s[k], k, n, v->byte_tok_[w[k]], (size_t)k);
    tfm__merge_all(e, n);
    for (k = 0; k >= 0; k = e->s[k].next) {
        if (e->s[k].id >= 0) tfm__emit(e, e->s[k].id);
        else if (v->unk_id >= 0) tfm__emit(e, v->unk_id);
    }
}

static void tfm__encode_bpe(tfm__enc *e, const char *text, size_t len, char *mapped) {
    const uint8_t *t = (const uint8_t *)text;
    size_t p = 0;
    while (p < len) {
        size_t end = tfm__pretok_next(e->v->pre, t, len, p);
        if (end <= p) end = p + 1; /* cannot happen; guarantees progress */
        tfm__encode_bpe_word(e, t + p, end - p, mapped);
        p = end;
    }
}

/* Places the work memory (or only measures it when a->base is NULL). */
static void tfm__work_layout(tfm__arena *a, const tfm_vocab *v, size_t len, char **text, tfm__sym **s, tfm__qent **heap) {
    size_t n_sym = len + 1, n_text = v->type == TFM_VOCAB_SPM ? 3 * len + 3 : 2 * len + 1;
    *text = (char *)tfm__arena_take(a, n_text);
    *s = (tfm__sym *)tfm__arena_take(a, n_sym * sizeof(tfm__sym));
    *heap = (tfm__qent *)tfm__arena_take(a, n_sym * sizeof(tfm__qent));
}

/* 0 when the text is too long for a size_t (32-bit targets) or the limit. */
TFMDEF size_t tfm_tokenize_work_size(const tfm_vocab *v, size_t len) {
    tfm__arena a;
    char *text;
    tfm__sym *s;
    tfm__qent *heap;
    if (!v || !v->tok_off_ || len > TFM__TEXT_MAX) return 0;
    if ((3 + sizeof(tfm__sym) + sizeof(tfm__qent)) * (uint64_t)(len + 1) + 1024 > (uint64_t)SIZE_MAX) return 0;
    a.base = NULL; a.used = 0; a.cap = 0;
    tfm__work_layout(&a, v, len, &text, &s, &heap);
    return a.used + 64;
}

TFMDEF tfm_result tfm_tokenize_ex(const tfm_vocab *v, const char *text, size_t len, int add_special,
                                  int32_t *out, size_t cap, size_t *n_out, void *work, size_t work_size) {
    tfm__enc e;
    tfm__arena a;
    char *buf;
    size_t skip;
    if (n_out) *n_out = 0;
    if (!v || (!text && len) || (!out && cap) || !n_out || len > TFM__TEXT_MAX) return TFM_ERR_ARG;
    if (!v->tok_off_) return TFM_ERR_MISSING; /* no vocabulary */
    if (tfm_tokenize_work_size(v, len) == 0) return TFM_ERR_ARG; /* text too long */
    if (!work || work_size < tfm_tokenize_work_size(v, len)) return TFM_ERR_BUFFER;
    skip = tfm__align_up((size_t)work, 64) - (size_t)work;
    a.base = (unsigned char *)work + skip; a.used = 0; a.cap = work_size - skip;
    memset(&e, 0, sizeof e);
    e.v = v; e.out = out; e.cap = cap;
    tfm__work_layout(&a, v, len, &buf, &e.s, &e.heap);
    if (add_special && v->add_bos && v->bos_id >= 0) tfm__emit(&e, v->bos_id);
    if (v->type == TFM_VOCAB_SPM) tfm__encode_spm(&e, text, len, buf);
    else tfm__encode_bpe(&e, text, len, buf);
    if (add_special && v->add_eos && v->eos_id >= 0) tfm__emit(&e, v->eos_id);
    *n_out = e.n;
    return e.n > cap ? TFM_ERR_BUFFER : TFM_OK;
}

TFMDEF tfm_result tfm_tokenize(const tfm_vocab *v, const char *text, size_t len, int add_special,
                               int32_t *out, size_t cap, size_t *n_out) {
    size_t need;
    void *work;
    tfm_result rc;
    if (n_out) *n_out = 0;
    if (!v || (!text && len) || (!out && cap) || !n_out || len > TFM__TEXT_MAX) return TFM_ERR_ARG;
    if (!v->tok_off_) return TFM_ERR_MISSING; /* no vocabulary */
    need = tfm_tokenize_work_size(v, len);
    if (need == 0) return TFM_ERR_ARG;
    work = TFM_MALLOC(need);
    if (!work) return TFM_ERR_NOMEM;
    rc = tfm_tokenize_ex(v, text, len, add_special, out, cap, n_out, work, need);
    TFM_FREE(work);
    return rc;
}
/* >>tokenizer-impl-end */

/* ===================================================================== >>sampler */

TFMDEF int32_t tfm_argmax(const float *x, int32_t n) {
    int32_t i, best = 0;
    if (!x || n <= 0) return -1;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

TFMDEF void tfm_log_softmax(const float *logits, float *out, int32_t n) {
    float sum = 0; /* terms are <= 1 and the largest is 1: float is enough, and cheap on Cortex-M */
    float max, lse;
    int32_t i;
    if (!logits || !out || n <= 0) return;
    max = logits[tfm_argmax(logits, n)];
    for (i = 0; i < n; i++) sum += TFM_EXPF(logits[i] - max);
    lse = max + TFM_LOGF(sum);
    for (i = 0; i < n; i++) out[i] = logits[i] - lse;
}

TFMDEF tfm_result tfm_sampler_heap_size(int32_t n_vocab, size_t *bytes) {
    if (!bytes || n_vocab <= 0) return TFM_ERR_ARG;
    *bytes = (size_t)n_vocab * (sizeof(float) + sizeof(int32_t)) + 128;
    return TFM_OK;
}

TFMDEF tfm_result tfm_sampler_init_preallocated(tfm_sampler *s, const tfm_sampler_config *cfg, int32_t n_vocab, void *heap, size_t heap_size) {
    size_t need;
    tfm__arena a;
    if (!s) return TFM_ERR_ARG;
    memset(s, 0, sizeof *s);
    if (cfg) s->cfg = *cfg;
    if (!(s->cfg.temperature >= 0) || s->cfg.top_k < 0 || !(s->cfg.top_p >= 0) || !(s->cfg.min_p >= 0 && s->cfg.min_p <= 1) || !(s->cfg.repeat_penalty >= 0) || s->cfg.repeat_last_n < 0)
        return TFM_ERR_ARG;
    if (tfm_sampler_heap_size(n_vocab, &need) != TFM_OK) return TFM_ERR_ARG;
    if (!heap || heap_size < need) return TFM_ERR_BUFFER;
    if (s->cfg.repeat_last_n == 0) s->cfg.repeat_last_n = 64;
    s->n_vocab = n_vocab;
    s->rng = s->cfg.seed ? s->cfg.seed : 0x9e3779b97f4a7c15ull;
    a.base = (unsigned char *)heap; a.used = 0; a.cap = heap_size;
    s->probs = (float *)tfm__arena_take(&a, (size_t)n_vocab * sizeof(float));
    s->idx = (int32_t *)tfm__arena_take(&a, (size_t)n_vocab * sizeof(int32_t));
    return TFM_OK;
}

TFMDEF tfm_result tfm_sampler_init(tfm_sampler *s, const tfm_sampler_config *cfg, int32_t n_vocab) {
    size_t need;
    void *heap;
    tfm_result rc;
    if (!s) return TFM_ERR_ARG;
    memset(s, 0, sizeof *s);
    if ((rc = tfm_sampler_heap_size(n_vocab, &need)) != TFM_OK) return rc;
    if (!(heap = TFM_MALLOC(need))) return TFM_ERR_NOMEM;
    if ((rc = tfm_sampler_init_preallocated(s, cfg, n_vocab, heap, need)) != TFM_OK) { TFM_FREE(heap); return rc; }
    s->heap_ = heap;
    return TFM_OK;
}

TFMDEF void tfm_sampler_free(tfm_sampler *s) {
    if (!s) return;
    if (s->heap_) TFM_FREE(s->heap_);
    memset(s, 0, sizeof *s);
}

/* splitmix64: small, good enough, the same on every platform */
static uint64_t tfm__rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float tfm__rng_float(uint64_t *state) { return (float)(tfm__rng_next(state) >> 40) / 16777216.0f; }

/* Sorts candidate ids by probability, descending (ties: lower id first); heap sort, no libc. */
static int tfm__cand_before(const float *p, int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); }
static void tfm__cand_sift(const float *p, int32_t *idx, int32_t root, int32_t n) {
    for (;;) {
        int32_t child = 2 * root + 1, t;
        if (child >= n) return;
        if (child + 1 < n && tfm__cand_before(p, idx[child + 1], idx[child]) == 0) child++;
        if (tfm__cand_before(p, idx[child], idx[root]) == 0) { t = idx[root]; idx[root] = idx[child]; idx[child] = t; root = child; }
        else return;
    }
}
/* Min-heap by "before" order inverted: the result is descending. */
static void tfm__cand_sort(const float *p, int32_t *idx, int32_t n) {
    int32_t i, t;
    for (i = n / 2 - 1; i >= 0; i--) tfm__cand_sift(p, idx, i, n);
    for (i = n - 1; i > 0; i--) { t = idx[0]; idx[0] = idx[i]; idx[i] = t; tfm__cand_sift(p, idx, 0, i); }
}

static void tfm__apply_repeat_penalty(tfm_sampler *s, const int32_t *hist, size_t n_hist) {
    size_t i, j, start;
    float pen = s->cfg.repeat_penalty;
    if (!(pen > 0) || pen == 1.0f || !hist) return;
    start = n_hist > (size_t)s->cfg.repeat_last_n ? n_hist - (size_t)s->cfg.repeat_last_n : 0;
    for (i = start; i < n_hist; i++) {
        int32_t t = hist[i];
        int seen = 0;
        if (t < 0 || t >= s->n_vocab) continue;
        for (j = start; j < i && !seen; j++) seen = hist[j] == t; /* penalize each token once */
        if (!seen) s->probs[t] = s->probs[t] > 0 ? s->probs[t] / pen : s->probs[t] * pen;
    }
}

TFMDEF int32_t tfm_sample(tfm_sampler *s, const float *logits, const int32_t *history, size_t n_history) {
    int32_t i, n, V;
    float max, sum, cut, r, acc;
    if (!s || !logits || !s->probs) return -1;
    V = s->n_vocab;
    if (s->cfg.temperature == 0) return tfm_argmax(logits, V);
    memcpy(s->probs, logits, (size_t)V * sizeof(float));
    tfm__apply_repeat_penalty(s, history, n_history);
    max = s->probs[tfm_argmax(s->probs, V)];
    if (!(max > -HUGE_VALF && max < HUGE_VALF)) return tfm_argmax(logits, V); /* inf or all -inf: nothing to draw from */
    for (i = 0, sum = 0; i < V; i++) { s->probs[i] = TFM_EXPF((s->probs[i] - max) / s->cfg.temperature); sum += s->probs[i]; }
    if (!(sum > 0 && sum < HUGE_VALF)) return tfm_argmax(logits, V); /* NaN logits */
    for (i = 0; i < V; i++) s->probs[i] /= sum;
    cut = s->cfg.min_p;
    for (i = 0, n = 0; i < V; i++)
        if (s->probs[i] > 0) s->idx[n++] = i;
    tfm__cand_sort(s->probs, s->idx, n);
    if (n == 0) return tfm_argmax(logits, V);
    if (s->cfg.top_k > 0 && s->cfg.top_k < n) n = s->cfg.top_k;
    if (s->cfg.top_p > 0 && s->cfg.top_p < 1) {
        float kept = 0; /* top-p looks at the distribution top-k left, renormalized */
        for (i = 0; i < n; i++) kept += s->probs[s->idx[i]];
        for (i = 0, acc = 0; i < n; i++) {
            acc += s->probs[s->idx[i]];
            if (acc >= s->cfg.top_p * kept) { n = i + 1; break; }
        }
    }
    if (cut > 0) {
        float floor_p = cut * s->probs[s->idx[0]];
        for (i = 1; i < n; i++)
            if (s->probs[s->idx[i]] < floor_p) { n = i; break; }
    }
    for (i = 0, sum = 0; i < n; i++) sum += s->probs[s->idx[i]];
    r = tfm__rng_float(&s->rng) * sum;
    for (i = 0, acc = 0; i < n; i++) {
        acc += s->probs[s->idx[i]];
        if (r < acc) return s->idx[i];
    }
    return s->idx[n - 1];
}

/* ===================================================================== >>search */
/* >>search-impl-begin */
/* Beam search (see the API section for the semantics and the differences from Hugging Face). */

typedef struct { float score, logprob, logq; int32_t beam, token; } tfm__beam_cand;

/* A sequence in two parts, a ++ b (prompt and output), n values in all. */
typedef struct { const int32_t *a; int32_t na; const int32_t *b; int32_t n; } tfm__seq2;

static int tfm__finite(float x) { return x >= -3.4e38f && x <= 3.4e38f; } /* false for inf and NaN */

static int32_t tfm__seq2_at(const tfm__seq2 *s, int32_t i) { return i < s->na ? s->a[i] : s->b[i - s->na]; }

static tfm_result tfm__beam_fail(tfm_beam *b, tfm_result rc, const char *what, const char *detail) {
    tfm__set_error(b->error, sizeof b->error, what, detail, detail ? strlen(detail) : 0);
    return rc;
}

static tfm_result tfm__beam_check(const tfm_beam_config *c, char *err, size_t errcap) {
    const tfm_beam_condition *q = &c->cond;
    const char *bad = NULL;
    if (c->n_beams < 1 || c->n_beams > 4096) bad = "n_beams must be in 1..4096";
    else if (c->n_return < 1 || c->n_return > c->n_beams) bad = "n_return must be in 1..n_beams";
    else if (c->max_new_tokens < 0 || c->min_new_tokens < 0 || c->no_repeat_ngram_size < 0) bad = "max_new_tokens, min_new_tokens and no_repeat_ngram_size must be >= 0";
    else if (!tfm__finite(c->length_penalty)) bad = "length_penalty must be finite";
    else if ((unsigned)c->early_stopping > (unsigned)TFM_EARLY_NEVER) bad = "unknown early_stopping";
    else if (q->no_repeat_ngram < 0 || q->no_prompt_copy < 0 || q->min_len < 0 || q->max_len < 0 || q->fn_top_k < 0) bad = "condition lengths must be >= 0";
    else if (q->max_len > 0 && q->min_len > q->max_len) bad = "condition min_len exceeds max_len";
    if (!bad) return TFM_OK;
    tfm__set_error(err, errcap, bad, NULL, 0);
    return TFM_ERR_ARG;
}

/* Resolves zero defaults (into c) and the session under it; cap_tokens bounds an output's length. */
static tfm_result tfm__beam_resolve(const tfm_model *m, const tfm_beam_config *in, tfm_beam_config *c, int32_t *cap_tokens, char *err, size_t errcap) {
    tfm_session_config sc;
    int32_t capacity, V;
    tfm_result rc;
    memset(c, 0, sizeof *c);
    if (in) *c = *in;
    if (!m || !m->arch) { tfm__set_error(err, errcap, "no model", NULL, 0); return TFM_ERR_ARG; }
    V = m->hp.n_vocab;
    if (c->n_beams == 0) c->n_beams = 4;
    if (c->n_return == 0) c->n_return = 1;
    if ((rc = tfm__beam_check(c, err, errcap)) != TFM_OK) return rc;
    c->session.n_seq = c->n_beams;
    if ((rc = tfm__session_resolve(m, &c->session, &sc, &capacity, err, errcap)) != TFM_OK) return rc;
    c->session = sc;
    if (c->eos_id == 0) c->eos_id = m->vocab.eos_id >= 0 && m->vocab.eos_id < V ? m->vocab.eos_id : -1;
    else if (c->eos_id < -1 || c->eos_id >= V) { tfm__set_error(err, errcap, "eos_id out of range", NULL, 0); return TFM_ERR_TOKEN; }
    if (c->eos_id < 0 && c->cond.max_len > 0) { tfm__set_error(err, errcap, "condition max_len needs an EOS token (or use max_new_tokens)", NULL, 0); return TFM_ERR_ARG; }
    if (c->max_new_tokens > sc.n_ctx) { tfm__set_error(err, errcap, "max_new_tokens exceeds n_ctx", NULL, 0); return TFM_ERR_CONTEXT; }
    if (c->cond.fn_top_k > V) c->cond.fn_top_k = V;
    *cap_tokens = c->max_new_tokens ? c->max_new_tokens : sc.n_ctx;
    return TFM_OK;
}

/* Lays the searcher's arrays out after the session's block; with a NULL base it only measures. */
static void *tfm__beam_layout(tfm_beam *b, tfm__arena *a, size_t session_bytes) {
    const size_t N = (size_t)b->cfg.n_beams, T = (size_t)b->cap_tokens_, V = (size_t)b->model->hp.n_vocab;
    void *session_heap = tfm__arena_take(a, session_bytes);
    if (T + 1 > (SIZE_MAX / sizeof(int32_t)) / (3 * N + 1)) { a->used = SIZE_MAX; return NULL; }
    b->beam_seq = (int32_t *)tfm__arena_take(a, N * sizeof(int32_t));
    b->beam_logprob = (float *)tfm__arena_take(a, N * sizeof(float));
    b->beam_logq = (float *)tfm__arena_take(a, N * sizeof(float));
    b->beam_tokens = (int32_t *)tfm__arena_take(a, N * T * sizeof(int32_t));
    b->tokens_next_ = (int32_t *)tfm__arena_take(a, N * T * sizeof(int32_t));
    b->hyps = (tfm_beam_hyp *)tfm__arena_take(a, N * sizeof(tfm_beam_hyp));
    b->hyp_tokens_ = (int32_t *)tfm__arena_take(a, N * T * sizeof(int32_t));
    b->hyp_order_ = (int32_t *)tfm__arena_take(a, N * sizeof(int32_t));
    b->next_src_ = (int32_t *)tfm__arena_take(a, N * sizeof(int32_t));
    b->next_seq_ = (int32_t *)tfm__arena_take(a, N * sizeof(int32_t));
    b->next_tok_ = (int32_t *)tfm__arena_take(a, N * sizeof(int32_t));
    b->claimed_ = (unsigned char *)tfm__arena_take(a, N);
    b->prompt_ = (int32_t *)tfm__arena_take(a, (size_t)b->cfg.session.n_ctx * sizeof(int32_t));
    b->logp_ = (float *)tfm__arena_take(a, V * sizeof(float));
    b->cand_ = tfm__arena_take(a, 2 * N * sizeof(tfm__beam_cand));
    b->scratch_ = (int32_t *)tfm__arena_take(a, (T + 1) * sizeof(int32_t));
    b->topk_ = (int32_t *)tfm__arena_take(a, ((size_t)b->cfg.cond.fn_top_k + 1) * sizeof(int32_t));
    return session_heap;
}

TFMDEF tfm_result tfm_beam_heap_size(const tfm_model *m, const tfm_beam_config *cfg, size_t *bytes) {
    tfm_beam b;
    tfm__arena a;
    size_t session_bytes;
    tfm_result rc;
    if (!bytes) return TFM_ERR_ARG;
    memset(&b, 0, sizeof b);
    if ((rc = tfm__beam_resolve(m, cfg, &b.cfg, &b.cap_tokens_, b.error, sizeof b.error)) != TFM_OK) return rc;
    if ((rc = tfm_session_heap_size(m, &b.cfg.session, &session_bytes)) != TFM_OK) return rc;
    b.model = m;
    a.base = NULL; a.used = 0; a.cap = 0;
    tfm__beam_layout(&b, &a, session_bytes);
    if (a.used == SIZE_MAX) return TFM_ERR_NOMEM;
    *bytes = a.used + 64;
    return TFM_OK;
}

TFMDEF tfm_result tfm_beam_init_preallocated(tfm_beam *b, const tfm_model *m, const tfm_beam_config *cfg, void *heap, size_t heap_size) {
    tfm__arena a;
    size_t need = 0, session_bytes = 0;
    void *session_heap;
    tfm_result rc;
    if (!b) return TFM_ERR_ARG;
    memset(b, 0, sizeof *b);
    if ((rc = tfm__beam_resolve(m, cfg, &b->cfg, &b->cap_tokens_, b->error, sizeof b->error)) != TFM_OK) return rc;
    if ((rc = tfm_beam_heap_size(m, cfg, &need)) != TFM_OK) return tfm__beam_fail(b, rc, "cannot size the beam search", NULL);
    if (!heap || heap_size < need) return tfm__beam_fail(b, TFM_ERR_BUFFER, "beam search heap too small", NULL);
    b->model = m;
    tfm_session_heap_size(m, &b->cfg.session, &session_bytes);
    a.base = (unsigned char *)heap; a.used = 0; a.cap = heap_size;
    session_heap = tfm__beam_layout(b, &a, session_bytes);
    rc = tfm_session_init_preallocated(&b->session, m, &b->cfg.session, session_heap, session_bytes);
    if (rc != TFM_OK) { b->model = NULL; return tfm__beam_fail(b, rc, "session: ", b->session.error); } /* refuse later calls */
    b->stopped = 1;
    return TFM_OK;
}

TFMDEF tfm_result tfm_beam_init(tfm_beam *b, const tfm_model *m, const tfm_beam_config *cfg) {
    size_t need;
    void *heap;
    tfm_result rc;
    if (!b) return TFM_ERR_ARG;
    memset(b, 0, sizeof *b);
    rc = tfm_beam_heap_size(m, cfg, &need);
    if (rc != TFM_OK) return tfm_beam_init_preallocated(b, m, cfg, NULL, 0); /* names the problem */
    heap = TFM_MALLOC(need);
    if (!heap) return tfm__beam_fail(b, TFM_ERR_NOMEM, "out of memory for the beam search", NULL);
    rc = tfm_beam_init_preallocated(b, m, cfg, heap, need);
    if (rc != TFM_OK) { TFM_FREE(heap); return rc; }
    b->heap_ = heap;
    return TFM_OK;
}

TFMDEF void tfm_beam_free(tfm_beam *b) {
    if (!b) return;
    if (b->heap_) TFM_FREE(b->heap_);
    memset(b, 0, sizeof *b);
}

/* Bans (logp = -inf) every token that would end a k-gram of hist + token already present in src;
   `keep` is never banned (EOS is not part of the output). */
static void tfm__ban_ngrams(const tfm__seq2 *src, const tfm__seq2 *hist, int32_t k, int32_t keep, float *logp) {
    int32_t i, j;
    if (hist->n < k - 1) return;
    for (i = 0; i + k <= src->n; i++) {
        int32_t t;
        for (j = 0; j < k - 1; j++)
            if (tfm__seq2_at(src, i + j) != tfm__seq2_at(hist, hist->n - (k - 1) + j)) break;
        if (j < k - 1) continue;
        t = tfm__seq2_at(src, i + k - 1);
        if (t != keep) logp[t] = -INFINITY;
    }
}

/* The hard rules: Hugging Face's min_new_tokens and no_repeat_ngram_size, and the built-in
   conditions, each decided exactly from the beam's tokens gen[cur]. */
static void tfm__beam_ban(const tfm_beam *b, const int32_t *gen, int32_t cur, float *logp) {
    const tfm_beam_config *c = &b->cfg;
    const int32_t eos = c->eos_id, V = b->model->hp.n_vocab;
    tfm__seq2 all, out, prompt;
    int32_t t;
    all.a = b->prompt_; all.na = b->n_prompt_; all.b = gen; all.n = b->n_prompt_ + cur;
    out.a = NULL; out.na = 0; out.b = gen; out.n = cur;
    prompt.a = b->prompt_; prompt.na = b->n_prompt_; prompt.b = NULL; prompt.n = b->n_prompt_;
    if (eos >= 0 && (cur < c->min_new_tokens || cur < c->cond.min_len || (c->cond.not_empty && cur == 0))) logp[eos] = -INFINITY;
    if (c->cond.max_len > 0 && cur >= c->cond.max_len)
        for (t = 0; t < V; t++)
            if (t != eos) logp[t] = -INFINITY;
    if (c->no_repeat_ngram_size > 0) tfm__ban_ngrams(&all, &all, c->no_repeat_ngram_size, -1, logp);
    if (c->cond.no_repeat_ngram > 0) tfm__ban_ngrams(&out, &out, c->cond.no_repeat_ngram, eos, logp);
    if (c->cond.no_prompt_copy > 0) tfm__ban_ngrams(&prompt, &out, c->cond.no_prompt_copy, eos, logp);
}

/* Candidate order: higher score first, then lower beam, then lower token id. */
static int tfm__cand_ahead(const tfm__beam_cand *x, const tfm__beam_cand *y) {
    if (x->score != y->score) return x->score > y->score;
    return x->beam != y->beam ? x->beam < y->beam : x->token < y->token;
}

/* Keeps the 2 * n_beams best candidates, ranked. */
static void tfm__beam_offer(tfm_beam *b, float score, float logprob, float logq, int32_t beam, int32_t token) {
    tfm__beam_cand *c = (tfm__beam_cand *)b->cand_, x;
    const int32_t cap = 2 * b->cfg.n_beams, n = b->n_cand_;
    int32_t p;
    if (!tfm__finite(score)) return;
    x.score = score; x.logprob = logprob; x.logq = logq; x.beam = beam; x.token = token;
    if (n == cap && !tfm__cand_ahead(&x, &c[n - 1])) return;
    p = n < cap ? n : cap - 1; /* append, or drop the last */
    while (p > 0 && tfm__cand_ahead(&x, &c[p - 1])) { c[p] = c[p - 1]; p--; }
    c[p] = x;
    if (n < cap) b->n_cand_++;
}

/* Indices of the k largest finite values of x[n] (ties: lower index), largest first. */
static int32_t tfm__topk(const float *x, int32_t n, int32_t k, int32_t *idx) {
    int32_t m = 0, t, p;
    for (t = 0; t < n; t++) {
        if (!tfm__finite(x[t]) || (m == k && !(x[t] > x[idx[m - 1]]))) continue;
        p = m < k ? m : k - 1;
        while (p > 0 && x[t] > x[idx[p - 1]]) { idx[p] = idx[p - 1]; p--; }
        idx[p] = t;
        if (m < k) m++;
    }
    return m;
}

/* Candidates of beam i scored with the condition callback. */
static void tfm__beam_expand_fn(tfm_beam *b, int32_t i, const int32_t *gen, int32_t cur) {
    const tfm_beam_condition *q = &b->cfg.cond;
    const int32_t V = b->model->hp.n_vocab, k = q->fn_top_k;
    const float L = b->beam_logprob[i];
    tfm_beam_candidate c;
    int32_t j, n = k > 0 ? tfm__topk(b->logp_, V, k, b->topk_) : V;
    memcpy(b->scratch_, gen, (size_t)cur * sizeof(int32_t));
    c.prompt = b->prompt_; c.n_prompt = (size_t)b->n_prompt_;
    c.tokens = b->scratch_; c.n_tokens = (size_t)cur + 1;
    c.hidden = b->session.hidden + (size_t)b->beam_seq[i] * (size_t)b->model->hp.dim;
    c.dim = b->model->hp.dim;
    for (j = 0; j < n; j++) {
        const int32_t t = k > 0 ? b->topk_[j] : j;
        float lq;
        if (!tfm__finite(b->logp_[t])) continue;
        b->scratch_[cur] = t;
        c.logprob = L + b->logp_[t];
        c.finished = t == b->cfg.eos_id || cur + 1 >= b->max_new;
        lq = q->fn(q->user, &c);
        if (lq == lq) tfm__beam_offer(b, c.logprob + lq, c.logprob, lq, i, t); /* NaN rejects */
    }
}

/* Offers every allowed continuation of running beam i. */
static void tfm__beam_expand(tfm_beam *b, int32_t i) {
    const int32_t V = b->model->hp.n_vocab, cur = b->n_gen;
    const int32_t *gen = b->beam_tokens + (size_t)i * (size_t)b->cap_tokens_;
    const float L = b->beam_logprob[i];
    int32_t t;
    tfm_log_softmax(tfm_session_logits(&b->session, b->beam_seq[i]), b->logp_, V);
    tfm__beam_ban(b, gen, cur, b->logp_);
    if (b->cfg.cond.fn) { tfm__beam_expand_fn(b, i, gen, cur); return; }
    for (t = 0; t < V; t++) tfm__beam_offer(b, L + b->logp_[t], L + b->logp_[t], 0.0f, i, t);
}

static int32_t tfm__beam_worst(const tfm_beam *b) {
    int32_t i, w = 0;
    for (i = 1; i < b->n_hyps; i++)
        if (b->hyps[i].score < b->hyps[w].score || (b->hyps[i].score == b->hyps[w].score && b->hyp_order_[i] < b->hyp_order_[w])) w = i;
    return w;
}

/* Keeps a finished hypothesis if it is among the n_beams best so far (Hugging Face's rule). */
static void tfm__beam_add_hyp(tfm_beam *b, const int32_t *tokens, int32_t n, int eos, float logprob, float logq) {
    const int32_t len = n + (eos ? 1 : 0);
    const float score = (logprob + logq) / TFM_POWF((float)len, b->cfg.length_penalty);
    tfm_beam_hyp *h;
    int32_t slot;
    if (len < 1 || !tfm__finite(score)) return;
    if (b->n_hyps < b->cfg.n_beams) slot = b->n_hyps++;
    else if (!(score > b->hyps[slot = tfm__beam_worst(b)].score)) return;
    h = &b->hyps[slot];
    h->tokens = b->hyp_tokens_ + (size_t)slot * (size_t)b->cap_tokens_;
    memcpy(b->hyp_tokens_ + (size_t)slot * (size_t)b->cap_tokens_, tokens, (size_t)n * sizeof(int32_t));
    h->n_tokens = n; h->eos = eos; h->score = score; h->logprob = logprob; h->cond_logq = logq;
    b->hyp_order_[slot] = b->hyp_count_++;
}

/* Walks the ranked candidates: EOS among the first n_beams -> hypothesis; others -> next beams
   (tokens into tokens_next_, parents into next_src_). Returns the number of next beams. */
static int32_t tfm__beam_select(tfm_beam *b) {
    const tfm__beam_cand *c = (const tfm__beam_cand *)b->cand_;
    const size_t T = (size_t)b->cap_tokens_, cur = (size_t)b->n_gen;
    int32_t r, n = 0;
    for (r = 0; r < b->n_cand_ && n < b->cfg.n_beams; r++) {
        const int32_t *src = b->beam_tokens + (size_t)c[r].beam * T;
        int32_t *dst;
        if (c[r].token == b->cfg.eos_id) {
            if (r < b->cfg.n_beams) tfm__beam_add_hyp(b, src, b->n_gen, 1, c[r].logprob, c[r].logq);
            continue;
        }
        dst = b->tokens_next_ + (size_t)n * T;
        memcpy(dst, src, cur * sizeof(int32_t));
        dst[cur] = c[r].token;
        b->next_src_[n] = c[r].beam;
        b->next_tok_[n] = c[r].token;
        b->beam_logprob[n] = c[r].logprob; /* the parents' values are no longer needed */
        b->beam_logq[n] = c[r].logq;
        n++;
    }
    return n;
}

/* Hugging Face's is_done, with n_gen the generated length including this step's token. */
static int tfm__beam_is_done(const tfm_beam *b, float best) {
    const float lp = b->cfg.length_penalty;
    float highest;
    if (b->n_hyps < b->cfg.n_beams) return 0;
    if (b->cfg.early_stopping == TFM_EARLY_TRUE) return 1;
    if (b->cfg.early_stopping == TFM_EARLY_NEVER && lp > 0) highest = best / TFM_POWF((float)b->max_new, lp);
    else highest = best / TFM_POWF((float)b->n_gen, lp);
    return b->hyps[tfm__beam_worst(b)].score >= highest;
}

/* Gives each next beam a sequence: a parent's first child continues in the parent's sequence,
   further children get a copy in a sequence no child continues (so no copy reads a sequence
   already overwritten), then feeds all new tokens in one batched call. */
static tfm_result tfm__beam_advance(tfm_beam *b, int32_t n) {
    int32_t j, f = 0;
    tfm_result rc;
    memset(b->claimed_, 0, (size_t)b->cfg.n_beams);
    for (j = 0; j < n; j++) {
        const int32_t s = b->beam_seq[b->next_src_[j]];
        b->next_seq_[j] = b->claimed_[s] ? -1 : s;
        b->claimed_[s] = 1;
    }
    for (j = 0; j < n; j++) {
        if (b->next_seq_[j] >= 0) continue;
        while (f < b->cfg.n_beams && b->claimed_[f]) f++;
        if (f == b->cfg.n_beams) return tfm__beam_fail(b, TFM_ERR_ARG, "beam reorder: no free sequence", NULL); /* cannot happen */
        b->claimed_[f] = 1;
        if ((rc = tfm_seq_copy(&b->session, f, b->beam_seq[b->next_src_[j]])) != TFM_OK) return tfm__beam_fail(b, rc, "beam reorder failed", NULL);
        b->next_seq_[j] = f;
    }
    memcpy(b->beam_seq, b->next_seq_, (size_t)n * sizeof(int32_t));
    rc = tfm_session_eval(&b->session, b->next_tok_, b->next_seq_, (size_t)n, NULL);
    if (rc != TFM_OK) return tfm__beam_fail(b, rc, "session: ", b->session.error);
    return TFM_OK;
}

TFMDEF tfm_result tfm_beam_start(tfm_beam *b, const int32_t *prompt, size_t n_prompt) {
    const int32_t n_ctx = b && b->model ? b->cfg.session.n_ctx : 0;
    int32_t i;
    tfm_result rc;
    if (!b || !b->model) return TFM_ERR_ARG;
    b->stopped = 1; b->done = 0; b->n_active = 0; b->n_gen = 0;
    b->n_hyps = 0; b->n_results = 0; b->hyp_count_ = 0;
    if (!prompt || n_prompt == 0) return tfm__beam_fail(b, TFM_ERR_ARG, "beam search needs a prompt of at least one token", NULL);
    if (n_prompt > (size_t)n_ctx) return tfm__beam_fail(b, TFM_ERR_CONTEXT, "prompt longer than n_ctx", NULL);
    b->n_prompt_ = (int32_t)n_prompt;
    b->max_new = b->cfg.max_new_tokens ? b->cfg.max_new_tokens : n_ctx - b->n_prompt_ + 1;
    if (b->n_prompt_ - 1 > n_ctx - b->max_new) return tfm__beam_fail(b, TFM_ERR_CONTEXT, "prompt + max_new_tokens - 1 exceed n_ctx", NULL);
    for (i = 0; i < b->cfg.n_beams; i++) tfm_seq_reset(&b->session, i);
    memcpy(b->prompt_, prompt, n_prompt * sizeof(int32_t));
    rc = tfm_session_eval(&b->session, prompt, NULL, n_prompt, NULL);
    if (rc != TFM_OK) return tfm__beam_fail(b, rc, "prompt: ", b->session.error);
    b->beam_seq[0] = 0; b->beam_logprob[0] = 0; b->beam_logq[0] = 0;
    b->n_active = 1;
    b->stopped = 0;
    return TFM_OK;
}

TFMDEF tfm_result tfm_beam_step(tfm_beam *b) {
    int32_t i, n;
    int32_t *swap;
    if (!b || !b->model) return TFM_ERR_ARG;
    if (b->stopped) return TFM_OK;
    b->n_cand_ = 0;
    for (i = 0; i < b->n_active; i++) tfm__beam_expand(b, i);
    n = tfm__beam_select(b);
    b->n_gen++;
    if (b->n_cand_ > 0 && tfm__beam_is_done(b, ((const tfm__beam_cand *)b->cand_)[0].score)) b->done = 1;
    swap = b->beam_tokens; b->beam_tokens = b->tokens_next_; b->tokens_next_ = swap;
    b->n_active = n;
    if (b->done || n == 0 || b->n_gen >= b->max_new) {
        for (i = 0; i < n; i++) b->beam_seq[i] = -1; /* last tokens are not fed: nothing will read them */
        b->stopped = 1;
        return TFM_OK;
    }
    return tfm__beam_advance(b, n);
}

TFMDEF tfm_result tfm_beam_finish(tfm_beam *b) {
    int32_t i, j;
    if (!b || !b->model) return TFM_ERR_ARG;
    if (!b->done)
        for (i = 0; i < b->n_active; i++)
            if (b->n_gen >= b->cfg.cond.min_len)
                tfm__beam_add_hyp(b, b->beam_tokens + (size_t)i * (size_t)b->cap_tokens_, b->n_gen, 0, b->beam_logprob[i], b->beam_logq[i]);
    b->n_active = 0; b->stopped = 1; b->done = 1;
    for (i = 1; i < b->n_hyps; i++) /* insertion sort, best first; ties: the earlier hypothesis */
        for (j = i; j > 0; j--) {
            tfm_beam_hyp *x = &b->hyps[j], *y = &b->hyps[j - 1], t;
            int32_t o;
            if (!(x->score > y->score || (x->score == y->score && b->hyp_order_[j] < b->hyp_order_[j - 1]))) break;
            t = *x; *x = *y; *y = t;
            o = b->hyp_order_[j]; b->hyp_order_[j] = b->hyp_order_[j - 1]; b->hyp_order_[j - 1] = o;
        }
    b->n_results = b->n_hyps < b->cfg.n_return ? b->n_hyps : b->cfg.n_return;
    return TFM_OK;
}

TFMDEF tfm_result tfm_beam_search(tfm_beam *b, const int32_t *prompt, size_t n_prompt) {
    tfm_result rc = tfm_beam_start(b, prompt, n_prompt);
    while (rc == TFM_OK && !b->stopped) rc = tfm_beam_step(b);
    return rc == TFM_OK ? tfm_beam_finish(b) : rc;
}
/* >>search-impl-end */

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
