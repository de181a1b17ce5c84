#!/bin/bash
# Runs the libFuzzer target for the GGUF reader for N seconds (default 10), seeded with a valid tiny
# model. Skips (saying so) when clang's libFuzzer is not installed.
cd "$(dirname "$0")/.."
secs=${1:-10}
mkdir -p build/fuzz_corpus
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz_gguf.c -o build/fuzz_gguf -lm 2>/dev/null; then
    echo "SKIP: libFuzzer (clang -fsanitize=fuzzer) not available; the fixed-seed mutation loop in test_gguf ran instead"
    exit 0
fi
make -s build/test_gguf >/dev/null && build/test_gguf build/fuzz_corpus/seed.gguf >/dev/null
if build/fuzz_gguf -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 build/fuzz_corpus > build/fuzz.log 2>&1; then
    echo "ok: libFuzzer on the GGUF reader, $secs s: $(grep -o 'stat::number_of_executed_units: *[0-9]*' build/fuzz.log | grep -o '[0-9]*$') runs, no crash"
else
    echo "FAIL: libFuzzer found a crash (see build/fuzz.log)"; tail -30 build/fuzz.log; exit 1
fi
