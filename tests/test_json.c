/* Tests for tools/json.h: hand-worked valid documents, a list of malformed ones that must be
 * refused, nesting limits, every truncation of a valid document, and random mutations (run this
 * under -fsanitize=address,undefined: every input is copied into an exact-size heap block, so an
 * over-read is caught).
 *
 *   cc -std=c99 -Wall -Wextra -pedantic -g -fsanitize=address,undefined -I. tests/test_json.c -o build/test_json && build/test_json
 */
#include "tools/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* Parses a private exact-size copy so that reading one byte too far is a sanitizer error. */
static int parse_copy(json_doc *d, const char *text, size_t len, char **copy) {
    *copy = (char *)malloc(len ? len : 1);
    memcpy(*copy, text, len);
    return json_parse(d, *copy, len);
}

static void test_valid(void) {
    static const char doc[] =
        "\xEF\xBB\xBF { \"a\": 1, \"b\" : [true, false, null, -0, 1.5e3, \"x\"], \"c\": {},"
        " \"s\": \"\\ud83d\\ude00\\u00e9\\u20ac\\n\\t\\\"\\\\\\/\\u0000z\", \"k\\u0065y\": \"v\", \"e\": [], "
        " \"big\": 9007199254740993, \"neg\": -42, \"frac\": 0.25, \"a\": 2 }";
    json_doc d;
    char *copy, *s;
    size_t len, b, k, n;
    int64_t i64;
    double x;
    int bv;
    CHECK(parse_copy(&d, doc, sizeof doc - 1, &copy) == 0, "valid document refused: %s", d.error);
    if (d.n == 0) { free(copy); return; }
    CHECK(json_type_of(&d, JSON_ROOT) == JSON_OBJECT, "root type");
    CHECK(d.nodes[JSON_ROOT].count == 10, "root has 10 pairs, got %zu", d.nodes[JSON_ROOT].count);
    CHECK(json_int(&d, json_get(&d, JSON_ROOT, "a"), 0, 10, &i64) && i64 == 1, "first of a repeated key wins");
    b = json_get(&d, JSON_ROOT, "b");
    CHECK(b != JSON_NONE && json_type_of(&d, b) == JSON_ARRAY && d.nodes[b].count == 6, "array b");
    for (n = 0, k = json_first(&d, b); k != JSON_NONE; k = json_next(&d, k)) n++;
    CHECK(n == 6, "iterating b gives 6 elements, got %zu", n);
    k = json_first(&d, b);
    CHECK(json_bool(&d, k, &bv) && bv == 1, "true");
    k = json_next(&d, k);
    CHECK(json_bool(&d, k, &bv) && bv == 0, "false");
    k = json_next(&d, k);
    CHECK(json_type_of(&d, k) == JSON_NULL, "null");
    k = json_next(&d, k);
    CHECK(json_int(&d, k, -5, 5, &i64) && i64 == 0, "-0");
    k = json_next(&d, k);
    CHECK(json_number(&d, k, &x) && x == 1500.0, "1.5e3");
    CHECK(!json_int(&d, k, 0, 1000, &i64), "1500 outside [0, 1000]");
    k = json_next(&d, k);
    CHECK(json_eq(&d, k, "x"), "string x");
    CHECK(json_next(&d, k) == JSON_NONE, "end of b");
    CHECK(json_first(&d, json_get(&d, JSON_ROOT, "c")) == JSON_NONE, "empty object");
    CHECK(json_first(&d, json_get(&d, JSON_ROOT, "e")) == JSON_NONE, "empty array");
    s = json_strdup(&d, json_get(&d, JSON_ROOT, "s"), &len);
    /* U+1F600 = F0 9F 98 80, U+00E9 = C3 A9, U+20AC = E2 82 AC, then \n \t " \ / NUL z */
    CHECK(s && len == 16 && memcmp(s, "\xF0\x9F\x98\x80\xC3\xA9\xE2\x82\xAC\n\t\"\\/\0z", 16) == 0, "escapes decode");
    free(s);
    CHECK(json_eq(&d, json_get(&d, JSON_ROOT, "key"), "v"), "escaped key found by its decoded text");
    CHECK(json_get(&d, JSON_ROOT, "k\\u0065y") == JSON_NONE, "raw escaped text is not the key");
    CHECK(json_int(&d, json_get(&d, JSON_ROOT, "big"), 0, INT64_MAX, &i64) && i64 == 9007199254740993LL, "2^53 + 1 read exactly");
    CHECK(!json_int(&d, json_get(&d, JSON_ROOT, "big"), 0, 9007199254740992LL, &i64), "2^53 + 1 above hi");
    CHECK(json_int(&d, json_get(&d, JSON_ROOT, "neg"), -100, 0, &i64) && i64 == -42, "-42");
    CHECK(!json_int(&d, json_get(&d, JSON_ROOT, "frac"), -100, 100, &i64), "0.25 is not an integer");
    CHECK(json_get(&d, JSON_ROOT, "missing") == JSON_NONE, "missing key");
    CHECK(json_get(&d, b, "a") == JSON_NONE, "json_get on an array");
    CHECK(json_strdup(&d, b, NULL) == NULL, "strdup of an array");
    json_free(&d);
    free(copy);
}

static void test_invalid(void) {
    static const char *const bad[] = {
        "", " ", "{", "}", "[", "]", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "{1:2}", "[1 2]",
        "{\"a\":}", "[,1]", "{,}", "tru", "nul", "falsee", "True", "01", "-", "1.", ".5", "1e", "1e+",
        "+1", "0x10", "--1", "1.2.3", "\"abc", "\"\\\"", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"", "\"a\nb\"", "\"\t\"",
        "[1] [2]", "1 2", "{\"a\":1}}", "[[]]]", "[\"a\":1]", "{\"a\":1 \"b\":2}", "\"\\", "[1,",
        "{\"a\"", "{\"a\":", "nan", "Infinity", "-Infinity", "[1,2", "\xEF\xBB", "\x01",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_doc d;
        char *copy;
        CHECK(parse_copy(&d, bad[i], strlen(bad[i]), &copy) != 0 && d.error[0], "accepted malformed input #%zu \"%s\"", i, bad[i]);
        CHECK(d.nodes == NULL, "failed parse leaves no memory (#%zu)", i);
        free(copy);
    }
    { /* an embedded NUL outside a string */
        json_doc d;
        char *copy;
        CHECK(parse_copy(&d, "[1,\0 2]", 7, &copy) != 0, "NUL between values");
        free(copy);
    }
}

static void test_numbers(void) {
    static const char doc[] = "[9223372036854775807, -9223372036854775808, 9223372036854775808, 1e2, 1.5e300, -1e400, 2.0]";
    json_doc d;
    char *copy;
    size_t k;
    int64_t v;
    double x;
    CHECK(parse_copy(&d, doc, sizeof doc - 1, &copy) == 0, "numbers: %s", d.error);
    k = json_first(&d, JSON_ROOT);
    CHECK(json_int(&d, k, INT64_MIN, INT64_MAX, &v) && v == INT64_MAX, "INT64_MAX exact");
    k = json_next(&d, k);
    CHECK(json_int(&d, k, INT64_MIN, INT64_MAX, &v) && v == INT64_MIN, "INT64_MIN exact");
    k = json_next(&d, k);
    CHECK(!json_int(&d, k, INT64_MIN, INT64_MAX, &v), "2^63 overflows");
    k = json_next(&d, k);
    CHECK(json_int(&d, k, 0, 1000, &v) && v == 100, "1e2 is the integer 100");
    k = json_next(&d, k);
    CHECK(!json_int(&d, k, INT64_MIN, INT64_MAX, &v) && json_number(&d, k, &x) && x == 1.5e300, "1.5e300 is a double only");
    k = json_next(&d, k);
    CHECK(json_number(&d, k, &x) && x < -1e308, "-1e400 is -inf");
    k = json_next(&d, k);
    CHECK(json_int(&d, k, 0, 5, &v) && v == 2, "2.0 is the integer 2");
    json_free(&d);
    free(copy);
}

static void test_depth(void) {
    size_t n = 1000000, i;
    char *s = (char *)malloc(2 * n);
    json_doc d;
    for (i = 0; i < n; i++) { s[i] = '['; s[2 * n - 1 - i] = ']'; }
    CHECK(json_parse(&d, s + n - JSON_MAX_DEPTH, 2 * JSON_MAX_DEPTH) == 0, "depth %d accepted: %s", JSON_MAX_DEPTH, d.error);
    json_free(&d);
    CHECK(json_parse(&d, s + n - JSON_MAX_DEPTH - 1, 2 * JSON_MAX_DEPTH + 2) != 0, "depth %d refused", JSON_MAX_DEPTH + 1);
    CHECK(json_parse(&d, s, 2 * n) != 0, "depth 1e6 refused without recursion");
    CHECK(json_parse(&d, s, n) != 0, "1e6 unclosed brackets refused");
    free(s);
}

/* Walks every node through every accessor (what a tool would do with a parsed document). */
static void touch_all(const json_doc *d) {
    size_t i;
    for (i = 0; i < d->n; i++) {
        double x;
        int64_t v;
        int b;
        char *s = json_strdup(d, i, NULL);
        free(s);
        json_number(d, i, &x);
        json_int(d, i, INT64_MIN, INT64_MAX, &v);
        json_bool(d, i, &b);
        json_get(d, i, "a");
        json_next(d, json_first(d, i));
    }
}

static void test_truncations_and_mutations(void) {
    static const char doc[] = "{\"vocab\": {\"a\\u00e9\": 0, \"\\ud83d\\ude00\": 1}, \"merges\": [\"a b\", \"c d\"],"
                              " \"n\": [1, -2.5e-3, true, null, {\"x\": [[], {}]}]}";
    size_t len = sizeof doc - 1, i;
    unsigned long long rng = 88172645463325252ull;
    int accepted = 0;
    for (i = 0; i < len; i++) {
        json_doc d;
        char *copy;
        CHECK(parse_copy(&d, doc, i, &copy) != 0, "truncation to %zu bytes accepted", i);
        free(copy);
    }
    for (i = 0; i < 200000; i++) {
        char buf[sizeof doc], *copy;
        json_doc d;
        int m, n_mut = 1 + (int)(i % 4);
        memcpy(buf, doc, len);
        for (m = 0; m < n_mut; m++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            static const char alphabet[] = "{}[]\",:\\u0123456789abcdefDE+-.e \x00\xff";
            buf[rng % len] = alphabet[(rng >> 32) % (sizeof alphabet - 1)];
        }
        if (parse_copy(&d, buf, len, &copy) == 0) { accepted++; touch_all(&d); json_free(&d); }
        free(copy);
    }
    CHECK(accepted > 0 && accepted < 200000, "mutations: some accepted, some refused (%d accepted)", accepted);
}

int main(void) {
    test_valid();
    test_invalid();
    test_numbers();
    test_depth();
    test_truncations_and_mutations();
    printf("%s: test_json, %d checks, %d failures\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures != 0;
}
