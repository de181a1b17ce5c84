#!/bin/bash
# End to end through the programs a user runs: tools/llama2c-to-gguf, examples/run.
# References come from other implementations (../shared/ref); missing files are skipped visibly.
cd "$(dirname "$0")/.."
B=build; S=../shared
fail=0
ok()   { echo "ok: $*"; }
bad()  { echo "FAIL: $*"; fail=1; }
have() { [ -e "$1" ] || { echo "SKIP: $1 missing"; return 1; }; }
ids_of() { sed -n "s/^$2([0-9]*): *//p" "$1"; } # the ids on the line "label(n): ..."

if have $S/models/stories260K.bin && have $S/models/tok512.bin; then
    $B/llama2c-to-gguf $S/models/stories260K.bin $S/models/tok512.bin $B/stories260K.gguf > /dev/null || bad "llama2c-to-gguf"
    if have $S/ref/test_all_expected_stdout.bin; then
        # llama2.c: BOS then 200 sampled tokens at temperature 0, no trailing newline
        $B/run -m $B/stories260K.gguf -p "" -n 200 2>/dev/null | head -c -1 > $B/cli_empty.txt
        cmp -s $B/cli_empty.txt $S/ref/test_all_expected_stdout.bin && ok "stories260K (converted here), empty prompt: llama2.c's text byte for byte" \
            || bad "stories260K empty prompt differs from llama2.c ($(cmp $B/cli_empty.txt $S/ref/test_all_expected_stdout.bin 2>&1))"
    fi
    ref=$S/ref/stories260K_once_upon_t0_n256.tokens.txt
    if have $ref; then
        want=$(ids_of $ref sequence | xargs)
        for m in $B/stories260K.gguf $S/models/stories260K.gguf; do
            [ -e $m ] || continue
            got=$($B/run -m $m -p "Once upon a time" -n 252 -c 256 --print-ids 2>/dev/null | xargs)
            [ "$got" = "$want" ] && ok "$(basename $(dirname $m))/$(basename $m): 'Once upon a time' greedy ids equal llama2.c's (256 positions)" \
                || bad "$m: greedy ids differ from $ref"
        done
    fi
fi

# errors: clear message, non-zero exit, no crash
out=$($B/run -m /nonexistent.gguf -p hi 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] && echo "$out" | grep -q "nonexistent.gguf" && ok "missing model: exit $rc, '$out'" || bad "missing model: exit $rc, '$out'"
if [ -e $B/stories260K.gguf ]; then
    out=$($B/run -m $B/stories260K.gguf -p "Once upon a time there was a little girl" -c 4 2>&1); rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] && echo "$out" | grep -qi "context" && ok "prompt longer than the context: exit $rc, '$(echo "$out" | tail -1)'" || bad "long prompt: exit $rc, '$out'"
    out=$($B/run -m $B/stories260K.gguf --prompt-ids "1 999999" 2>&1); rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] && echo "$out" | grep -qi "token" && ok "token id out of range: exit $rc" || bad "bad id: exit $rc, '$out'"
    printf 'GGUF\x03\x00\x00\x00garbage' > $B/cli_broken.gguf
    out=$($B/run -m $B/cli_broken.gguf 2>&1); rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] && ok "broken file: exit $rc, '$out'" || bad "broken file: exit $rc, '$out'"
fi
exit $fail
