/* Tests for tools/safetensors.h on hand-made files: one valid file read back value by value, and
 * broken ones (header length, JSON, dtype, shape, offsets) that must be refused with a message.
 * Run under -fsanitize=address,undefined.
 *
 *   cc -std=c99 -Wall -Wextra -pedantic -g -fsanitize=address,undefined -I. tests/test_safetensors.c -lm -o build/test_safetensors && build/test_safetensors
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "tools/json.h"
#include "tools/safetensors.h"

#include <stdio.h>
#include <string.h>

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static const char *path = "build/test_safetensors.tmp";

/* Writes a file: u64 header length (or `hlen_override` if nonzero), header, data bytes. */
static void write_file(const char *header, uint64_t hlen_override, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    uint64_t hlen = hlen_override ? hlen_override : strlen(header);
    unsigned char len8[8];
    int i;
    for (i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static int try_open(st_index *st) {
    memset(st, 0, sizeof *st);
    return st_add_file(st, path);
}

static void test_valid(void) {
    /* F32 [2, 3] = 0..5, F16 [2] = {1.0, -2.0}, BF16 [1] = 0.5, then an I64 nobody reads */
    unsigned char data[24 + 4 + 2 + 8];
    float f[6] = {0, 1, 2, 3, 4, 5};
    uint16_t h[2] = {0x3C00, 0xC000}, b = 0x3F00;
    st_index st;
    const st_tensor *t;
    unsigned char buf[24];
    memcpy(data, f, 24);
    memcpy(data + 24, h, 4);
    memcpy(data + 28, &b, 2);
    memset(data + 30, 7, 8);
    write_file("{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
               "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
               "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[28,30]},"
               "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[30,38]}}", 0, data, sizeof data);
    CHECK(try_open(&st) == 0, "valid file refused: %s", st.error);
    CHECK(st.n == 4, "4 tensors, got %zu", st.n);
    t = st_find(&st, "w");
    CHECK(t && t->dtype == ST_F32 && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nbytes == 24, "w indexed");
    if (t) {
        CHECK(st_read(&st, t, buf) == 0 && st_get(ST_F32, buf, 5) == 5.0f, "w[1][2] == 5");
    }
    t = st_find(&st, "h");
    CHECK(t && st_read(&st, t, buf) == 0 && st_get(ST_F16, buf, 0) == 1.0f && st_get(ST_F16, buf, 1) == -2.0f, "F16 values");
    t = st_find(&st, "b");
    CHECK(t && st_read(&st, t, buf) == 0 && st_get(ST_BF16, buf, 0) == 0.5f, "BF16 value");
    t = st_find(&st, "i");
    CHECK(t && t->dtype == ST_OTHER && t->n_dims == 0, "I64 scalar indexed as unreadable");
    CHECK(st_find(&st, "__metadata__") == NULL, "metadata is not a tensor");
    st_free(&st);
}

static void test_broken(void) {
    static const struct { const char *header; uint64_t hlen; size_t data; const char *why; } cases[] = {
        {"{}", 1000, 0, "header length past the end"},
        {"{}", (uint64_t)1 << 62, 0, "huge header length"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 0, 8, "truncated JSON"},
        {"[1]", 0, 0, "header not an object"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 0, 8, "data past the end"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8, "size does not match the shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 0, 8, "begin after end"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 0, 8, "one offset"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8, "negative dimension"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 0, 8, "five dimensions"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 0, 8, "element count overflow"},
        {"{\"w\":{\"dtype\":\"Q9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "unknown dtype"},
        {"{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "no dtype"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}", 0, 8, "fractional offset"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 0, 8, "shape not an array"},
        {"{\"w\":3}", 0, 0, "entry not an object"},
    };
    static const unsigned char zeros[64] = {0};
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_index st;
        write_file(cases[i].header, cases[i].hlen, zeros, cases[i].data);
        CHECK(try_open(&st) != 0 && st.error[0], "accepted: %s", cases[i].why);
        st_free(&st);
    }
    { /* a file of 5 bytes */
        FILE *f = fopen(path, "wb");
        st_index st;
        fwrite("abcde", 1, 5, f);
        fclose(f);
        CHECK(try_open(&st) != 0, "5-byte file accepted");
        st_free(&st);
    }
}

int main(void) {
    test_valid();
    test_broken();
    remove(path);
    printf("%s: test_safetensors, %d checks, %d failures\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures != 0;
}
