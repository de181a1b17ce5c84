#!/bin/bash
# The header compiles without a warning as C99 and C++, with gcc and clang, and as a
# TFM_NO_STDIO build with a custom allocator (what firmware uses).
set -e
cd "$(dirname "$0")/.."
fail=0
check() { # name, command...
    local name=$1; shift
    local out
    if ! out=$("$@" 2>&1) || [ -n "$out" ]; then echo "FAIL: $name"; echo "$out" | head -20; fail=1; else echo "ok: $name"; fi
}
impl='#define TFM_IMPLEMENTATION
#include "tfm.h"'
nostdio='#include <stddef.h>
static unsigned char pool[1 << 16]; static size_t used;
static void *my_alloc(size_t n) { void *p = used + n <= sizeof pool ? pool + used : NULL; used += (n + 15) / 16 * 16; return p; }
static void my_free(void *p) { (void)p; }
#define TFM_MALLOC(n) my_alloc(n)
#define TFM_FREE(p) my_free(p)
#define TFM_NO_STDIO
#define TFM_NO_SIMD
#define TFM_STATIC
#define TFM_IMPLEMENTATION
#include "tfm.h"
int use(void) { return tfm_result_string(TFM_OK)[0]; }'
for cc in gcc clang; do
    command -v $cc >/dev/null || { echo "SKIP: $cc not installed"; continue; }
    check "$cc C99" sh -c "printf '%s\n' '$impl' | $cc -x c -std=c99 -Wall -Wextra -pedantic -I. -c -o /dev/null -"
    cxx=$([ $cc = gcc ] && echo g++ || echo clang++)
    check "$cxx C++" sh -c "printf '%s\n' '$impl' | $cxx -x c++ -Wall -Wextra -pedantic -I. -c -o /dev/null -"
    check "$cc C99 -fopenmp" sh -c "printf '%s\n' '$impl' | $cc -x c -std=c99 -fopenmp -Wall -Wextra -pedantic -I. -c -o /dev/null - 2>&1 | grep -v 'unsupported option' || true"
    if [ "$(uname -m)" = x86_64 ]; then # each SIMD path compiles wherever the tests run (only one of them can run here)
        for isa in "icelake-server TFM__AVX512" "skylake-avx512 TFM__AVX2" "haswell TFM__AVX2"; do
            set -- $isa
            check "$cc -march=$1 ($2)" sh -c "printf '%s\n#ifndef $2\n#error not $2\n#endif\n' '$impl' | $cc -x c -std=c99 -march=$1 -O2 -Wall -Wextra -pedantic -I. -c -o /dev/null - && printf '%s\n' '$impl' | $cxx -x c++ -march=$1 -O2 -Wall -Wextra -pedantic -I. -c -o /dev/null -"
        done
    fi
    check "$cc TFM_NO_STDIO + allocator" sh -c "printf '%s\n' '$nostdio' | $cc -x c -std=c99 -Wall -Wextra -pedantic -I. -c -o /dev/null -"
done
exit $fail
