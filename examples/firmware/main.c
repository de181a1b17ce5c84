/* main.c - tfm.h on a bare-metal Cortex-M: greedy generation from a model linked into flash.

   The model is a const byte array (tools/gguf-to-c) read in place: no file system, no copy.
   All RAM tfm.h needs comes from one static pool, sized by the *_heap_size queries and handed
   out once at start-up; TFM_MALLOC is wired to a function that counts calls and returns NULL,
   and the run reports that count (it must be 0). The KV cache is pruned by A2SF to a small
   budget, so RAM stays bounded however long the generation runs.

   The prompt comes as token ids with the model (gguf-to-c --prompt tokenizes it on the host), so
   the board needs no tokenizer to start; the vocabulary only turns the output ids into text. The same file builds on a host (board_host.c) so both outputs can be
   compared line by line. Build-time settings (-D...):
     FW_N_GEN        new tokens to generate (stops early at the model's EOS)
     FW_BUDGET       A2SF budget: kept tokens per layer and KV head
     FW_ALPHA        A2SF forgetting factor
     FW_POOL_BYTES   size of the static pool tfm.h lives in
     FW_LIBM_DOUBLE  route tfm.h's float math (TFM_EXPF, TFM_COSF, ...) through the double
                     functions: nearly always the correctly rounded float, the same on any C
                     library, so a host build prints the very same logits. Slow on a Cortex-M4
                     (software double); the test uses it to show that the only differences
                     between board and host come from the float libm (newlib's cosf is not
                     always correctly rounded, glibc's is). */
#include <stdint.h>
#include <string.h>
#include "board.h"

#ifndef FW_N_GEN
#define FW_N_GEN 48
#endif
#ifndef FW_BUDGET
#define FW_BUDGET 16
#endif
#ifndef FW_ALPHA
#define FW_ALPHA 0.5f
#endif
#ifndef FW_POOL_BYTES
#define FW_POOL_BYTES (128u * 1024u)
#endif

/* Allocation hooks: after start-up nothing may allocate, and start-up itself uses the pool. */
static unsigned fw_alloc_calls;
static void *fw_malloc(size_t n) { (void)n; fw_alloc_calls++; return NULL; }
static void fw_free(void *p) { if (p) fw_alloc_calls++; }

#ifdef FW_LIBM_DOUBLE
#include <math.h>
#define TFM_EXPF(x) ((float)exp((double)(x)))
#define TFM_LOGF(x) ((float)log((double)(x)))
#define TFM_SQRTF(x) ((float)sqrt((double)(x)))
#define TFM_POWF(x, y) ((float)pow((double)(x), (double)(y)))
#define TFM_COSF(x) ((float)cos((double)(x)))
#define TFM_SINF(x) ((float)sin((double)(x)))
#define TFM_TANHF(x) ((float)tanh((double)(x)))
#endif

#define TFM_NO_STDIO
#define TFM_NO_SIMD
#define TFM_STATIC
#define TFM_MALLOC(n) fw_malloc(n)
#define TFM_FREE(p) fw_free(p)
#define TFM_IMPLEMENTATION
#include "tfm.h"

/* from tools/gguf-to-c: the GGUF bytes (32-byte aligned) and the prompt */
extern const unsigned char tfm_model_gguf[];
extern const size_t tfm_model_gguf_size;
extern const int32_t tfm_model_gguf_prompt[];
extern const size_t tfm_model_gguf_prompt_len;

/* ---------------------------------------------------------------- output without printf */

static void put_str(const char *s) { while (*s) board_putc(*s++); }

static void put_u64(uint64_t v) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) board_putc(tmp[--n]);
}

static void put_i64(int64_t v) {
    if (v < 0) { board_putc('-'); put_u64((uint64_t)(-(v + 1)) + 1); }
    else put_u64((uint64_t)v);
}

static void put_hex(uint32_t v) {
    int i;
    put_str("0x");
    for (i = 7; i >= 0; i--) board_putc("0123456789abcdef"[(v >> (4 * i)) & 15]);
}

/* x with 4 decimals, rounded half away from zero (enough to compare logits across machines);
   |x| is clamped to 200000. */
static void put_f4(float x) {
    float ax = x < 0 ? -x : x;
    uint32_t a = (uint32_t)((ax < 200000.0f ? ax : 200000.0f) * 10000.0f + 0.5f);
    if (x < 0) board_putc('-');
    put_u64(a / 10000);
    board_putc('.');
    board_putc((char)('0' + a / 1000 % 10));
    board_putc((char)('0' + a / 100 % 10));
    board_putc((char)('0' + a / 10 % 10));
    board_putc((char)('0' + a % 10));
}

static void put_kv(const char *key, uint64_t v) { put_str(key); put_u64(v); }

static void put_ids(const char *label, const int32_t *ids, size_t n) {
    size_t i;
    put_str(label);
    put_str("(");
    put_u64(n);
    put_str("):");
    for (i = 0; i < n; i++) { board_putc(' '); put_i64(ids[i]); }
    board_putc('\n');
}

static int fail(const char *what, tfm_result r, const char *detail) {
    put_str("ERROR: ");
    put_str(what);
    put_str(": ");
    put_str(tfm_result_string(r));
    if (detail && *detail) { put_str(": "); put_str(detail); }
    board_putc('\n');
    return 1;
}

/* ---------------------------------------------------------------- the static pool */

static unsigned char fw_pool[FW_POOL_BYTES] __attribute__((aligned(64)));
static size_t fw_pool_used;

/* Hands out the next n bytes of the pool (64-aligned); NULL when it is exhausted. */
static void *pool_take(size_t n) {
    size_t start = (fw_pool_used + 63u) & ~(size_t)63u;
    if (n > sizeof fw_pool || start > sizeof fw_pool - n) {
        put_kv("\npool: needs ", start + n);
        put_kv(" B, FW_POOL_BYTES is ", sizeof fw_pool);
        board_putc('\n');
        return NULL;
    }
    fw_pool_used = start + n;
    return fw_pool + start;
}

/* ---------------------------------------------------------------- generation */

static tfm_gguf fw_gguf;
static tfm_model fw_model;
static tfm_session fw_session;
static const int32_t *fw_prompt;
static size_t fw_n_prompt;
static int32_t fw_bos[1];
static int32_t fw_out[FW_N_GEN];

/* Decoded text of ids (prev: the id before the first, -1 if none); nothing when the model has no
   vocabulary. tfm_token_to_piece writes into our buffer and allocates nothing. */
static void put_text(const char *label, const int32_t *ids, size_t n, int32_t prev) {
    char piece[64];
    size_t i, k, j;
    if (fw_model.vocab.n_tokens == 0) return;
    put_str(label);
    for (i = 0; i < n; prev = ids[i++]) {
        k = tfm_token_to_piece(&fw_model.vocab, prev, ids[i], piece, sizeof piece);
        for (j = 0; j < k; j++) board_putc(piece[j] == '\n' ? ' ' : piece[j]);
    }
    board_putc('\n');
}

/* The prompt given with the model (read from flash in place), or the BOS token alone. */
static int take_prompt(void) {
    fw_prompt = tfm_model_gguf_prompt;
    fw_n_prompt = tfm_model_gguf_prompt_len;
    if (fw_n_prompt == 0 && fw_model.vocab.bos_id >= 0) {
        fw_bos[0] = fw_model.vocab.bos_id;
        fw_prompt = fw_bos;
        fw_n_prompt = 1;
    }
    if (fw_n_prompt == 0) return fail("prompt", TFM_ERR_ARG, "no prompt ids and no BOS token");
    return 0;
}

/* Sizes must be refused, not wrapped, where a 32-bit size_t cannot hold them: a GGUF header
   claiming 2^28 keys in a 3.75 GB buffer (the size query reads only the 24-byte header) needs an
   index of 2^28 * sizeof(tfm_gguf_kv) bytes, past 4 GB. */
static int check_limits(void) {
    static const uint32_t header[6] = {0x46554747u, 3, 0, 0, 1u << 28, 0}; /* magic, version, n_tensors, n_kv */
    size_t need = 0;
    tfm_result r = tfm_gguf_heap_size(header, (size_t)0xf0000000u, &need);
    if (r == TFM_OK && need / sizeof(tfm_gguf_kv) < ((size_t)1 << 28)) {
        put_str("ERROR: limits: the size of a 2^28-key GGUF index wrapped around\n");
        return 1;
    }
    put_str("limits: a 2^28-key GGUF index is ");
    put_str(r == TFM_OK ? "sized without wrapping\n" : "refused\n");
    return 0;
}

static int load(void) {
    size_t need;
    void *heap;
    tfm_result r;
    if (((uintptr_t)tfm_model_gguf & 31u) != 0) return fail("model array", TFM_ERR_ARG, "not 32-byte aligned");
    if ((r = tfm_gguf_heap_size(tfm_model_gguf, tfm_model_gguf_size, &need)) != TFM_OK) return fail("gguf size", r, NULL);
    if (!(heap = pool_take(need))) return fail("gguf index", TFM_ERR_NOMEM, "pool too small");
    if ((r = tfm_gguf_init_preallocated(&fw_gguf, tfm_model_gguf, tfm_model_gguf_size, heap, need)) != TFM_OK) return fail("gguf", r, fw_gguf.error);
    put_kv("gguf: index ", need);
    if ((r = tfm_model_heap_size(&fw_gguf, &need)) != TFM_OK) return fail("model size", r, NULL);
    if (!(heap = pool_take(need))) return fail("model", TFM_ERR_NOMEM, "pool too small");
    if ((r = tfm_model_init_preallocated(&fw_model, &fw_gguf, heap, need)) != TFM_OK) return fail("model", r, fw_model.error);
    put_kv(" B, model ", need);
    return 0;
}

/* The same for a session: 4096 sequences of 2^20 positions with no eviction would need a KV
   cache of n_seq * n_layer * n_head_kv * n_ctx * head_dim * 8 bytes - far past 4 GB. */
static int check_session_limits(void) {
    const tfm_hparams *hp = &fw_model.hp;
    tfm_session_config cfg;
    size_t need = 0;
    tfm_result r;
    uint64_t kv = (uint64_t)4096 * (uint64_t)hp->n_layer * (uint64_t)hp->n_head_kv * ((uint64_t)1 << 20) * (uint64_t)hp->head_dim * 8u;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_ctx = 1 << 20;
    cfg.n_seq = 4096;
    cfg.n_threads = 1;
    r = tfm_session_heap_size(&fw_model, &cfg, &need);
    if (r == TFM_OK && (uint64_t)need < kv / 2) {
        put_str("ERROR: limits: the size of a huge session wrapped around\n");
        return 1;
    }
    put_str("limits: a session needing ");
    put_u64(kv >> 30);
    put_str(r == TFM_OK ? " GB is sized without wrapping\n" : " GB is refused\n");
    return 0;
}

static int start_session(void) {
    tfm_session_config cfg;
    size_t need;
    void *heap;
    tfm_result r;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_ctx = (int32_t)(fw_n_prompt + FW_N_GEN);
    cfg.n_batch = (int32_t)fw_n_prompt; /* the whole prompt in one chunk: each weight read once */
    cfg.n_threads = 1;
    cfg.kv.policy = TFM_KV_A2SF;
    cfg.kv.budget = FW_BUDGET;
    cfg.kv.alpha = FW_ALPHA;
    if ((r = tfm_session_heap_size(&fw_model, &cfg, &need)) != TFM_OK) return fail("session size", r, NULL);
    if (!(heap = pool_take(need))) return fail("session", TFM_ERR_NOMEM, "pool too small");
    if ((r = tfm_session_init_preallocated(&fw_session, &fw_model, &cfg, heap, need)) != TFM_OK) return fail("session", r, fw_session.error);
    put_kv(" B, session ", need);
    put_kv(" B; pool used ", fw_pool_used);
    put_kv(" of ", sizeof fw_pool);
    put_str(" B\n");
    put_kv("kv: A2SF budget ", (uint64_t)FW_BUDGET);
    put_str(" alpha ");
    put_f4(FW_ALPHA);
    put_kv(" capacity ", (uint64_t)fw_session.capacity);
    put_kv(" n_ctx ", (uint64_t)fw_session.cfg.n_ctx);
    board_putc('\n');
    return 0;
}

/* Ticks of one call, as instructions (meaningful under QEMU -icount shift=0). */
static uint64_t insns(uint32_t t0, uint32_t t1) { return (uint64_t)(uint32_t)(t1 - t0) * BOARD_INSNS_PER_TICK; }

static void calibrate(void) {
    uint32_t t0 = board_ticks();
    board_spin(5000000u);
    put_kv("calibration: 10000000 instructions counted as ", insns(t0, board_ticks()));
    board_putc('\n');
}

/* Decode statistics: instructions per tfm_session_eval of one token. */
typedef struct { uint64_t total, lo, hi; size_t n; } fw_stats;

static int prefill(void) {
    uint32_t t0;
    tfm_result r;
    put_ids("prompt_ids", fw_prompt, fw_n_prompt);
    t0 = board_ticks();
    r = tfm_session_eval(&fw_session, fw_prompt, NULL, fw_n_prompt, NULL);
    if (r != TFM_OK) return fail("prompt", r, fw_session.error);
    put_kv("prefill: ", (uint64_t)fw_n_prompt);
    put_kv(" tokens, insns ", insns(t0, board_ticks()));
    board_putc('\n');
    return 0;
}

/* Feeds one token and records what it cost. */
static int decode(int32_t token, fw_stats *st) {
    uint32_t t0 = board_ticks();
    uint64_t c;
    tfm_result r = tfm_session_eval(&fw_session, &token, NULL, 1, NULL);
    if (r != TFM_OK) return fail("decode", r, fw_session.error);
    c = insns(t0, board_ticks());
    st->total += c;
    st->lo = st->n == 0 || c < st->lo ? c : st->lo;
    st->hi = c > st->hi ? c : st->hi;
    st->n++;
    put_kv(" insns ", c);
    return 0;
}

/* Greedy: argmax of the last logits, until FW_N_GEN tokens or the end-of-text token. */
static int generate(fw_stats *st, size_t *n_out) {
    const int32_t eos = fw_model.vocab.eos_id;
    size_t n = 0;
    if (prefill()) return 1;
    for (;;) {
        const float *logits = tfm_session_logits(&fw_session, 0);
        int32_t next = tfm_argmax(logits, fw_model.hp.n_vocab);
        put_kv("step ", n);
        put_str(" id ");
        put_i64(next);
        put_str(" logit ");
        put_f4(logits[next]);
        if (next == eos) { put_str(" end of text\n"); break; }
        fw_out[n++] = next;
        if (n == FW_N_GEN) { board_putc('\n'); break; }
        if (decode(next, st)) return 1;
        board_putc('\n');
    }
    *n_out = n;
    return 0;
}

static void report(const fw_stats *st, size_t n) {
    put_ids("generated_ids", fw_out, n);
    put_text("prompt: ", fw_prompt, fw_n_prompt, -1);
    put_text("text: ", fw_out, n, fw_prompt[fw_n_prompt - 1]);
    if (st->n) {
        put_kv("decode insns per token: mean ", st->total / st->n);
        put_kv(" min ", st->lo);
        put_kv(" max ", st->hi);
        put_kv(" over ", (uint64_t)st->n);
        put_str(" tokens\n");
    }
    put_kv("kept positions per layer and KV head: ", (uint64_t)tfm_seq_kept(&fw_session, 0, 0, 0, NULL, 0));
    board_putc('\n');
}

int main(void) {
    put_str("tfm.h firmware\n");
    put_kv("model: ", tfm_model_gguf_size);
    put_str(" bytes at ");
    put_hex((uint32_t)(uintptr_t)tfm_model_gguf);
    board_putc('\n');
    calibrate();
    if (check_limits()) return 1;
    if (load() || take_prompt() || start_session() || check_session_limits()) return 1;
    put_str("arch: ");
    put_str(fw_model.arch->name);
    put_kv(" dim ", (uint64_t)fw_model.hp.dim);
    put_kv(" layers ", (uint64_t)fw_model.hp.n_layer);
    put_kv(" heads ", (uint64_t)fw_model.hp.n_head);
    put_kv("/", (uint64_t)fw_model.hp.n_head_kv);
    put_kv(" ffn ", (uint64_t)fw_model.hp.ffn_dim);
    put_kv(" vocab ", (uint64_t)fw_model.hp.n_vocab);
    board_putc('\n');
    {
        unsigned before = fw_alloc_calls;
        fw_stats st = {0, 0, 0, 0};
        size_t n = 0;
        if (generate(&st, &n)) return 1;
        report(&st, n);
        put_kv("alloc calls: at start-up ", before);
        put_kv(", during generation ", fw_alloc_calls - before);
        board_putc('\n');
        if (fw_alloc_calls) return fail("allocation", TFM_ERR_NOMEM, "TFM_MALLOC/TFM_FREE was called");
    }
    put_kv("stack used: ", board_stack_used());
    put_str(" B\ndone\n");
    return 0;
}
