/* test.h - the few helpers the C tests share: checks that count failures, reference files. */
#ifndef TFM_TEST_H
#define TFM_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures = 0, test_checks = 0;

#define CHECK(cond, ...) do { \
    test_checks++; \
    if (!(cond)) { test_failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

/* Reads a whole file; NULL (and a visible SKIP line) when it is missing. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f) { printf("SKIP: %s missing\n", path); return NULL; }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (char *)malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return NULL; }
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

static inline int test_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { printf("SKIP: %s missing\n", path); return 0; }
    fclose(f);
    return 1;
}

/* Parses the integers after the first ':' of the line that starts with `label`. */
static inline int test_parse_ids(const char *text, const char *label, int *ids, int cap) {
    const char *p = strstr(text, label);
    int n = 0;
    if (!p) return -1;
    p = strchr(p, ':');
    if (!p) return -1;
    p++;
    while (*p && *p != '\n' && n < cap) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int)v;
        p = end;
    }
    return n;
}

static inline int test_summary(const char *name) {
    printf("%s: %d checks, %d failures\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}
#endif
