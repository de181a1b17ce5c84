#!/bin/bash
# Architecture cross-checks: tfm.h's forward pass for Llama (GQA, rotate-halves checkpoints),
# Mistral, Qwen2 (tied and untied), GPT-2 and OPT against an independent float64 forward written
# from the Hugging Face modeling code (tests/hf_reference.py), and against other implementations'
# outputs in ../shared/ref. Checkpoints go Hugging Face dir -> build/convert -> GGUF -> tfm.h.
#
#   bash tests/test_arch.sh            (from the repository root; CONVERT=path overrides build/convert)
#
# One PASS/FAIL line per check (its measurements indented below); a missing file or tool prints
# "SKIP: <what> missing" and skips only the checks that need it. Exit status 1 if a check failed.
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1   # tiny models: threads only add contention
PY=/usr/bin/python3
B=build
T=$B/arch
M=../shared/models
R=../shared/ref
REF="$PY tests/hf_reference.py"
LOGITS="$B/logits --threads 1"
CONVERT=${CONVERT:-$B/convert}
TOK512=$M/tok512.bin
fails=0
checks=0

# check NAME COMMAND...: runs COMMAND; PASS/FAIL NAME, then COMMAND's output indented.
check() {
    local name=$1 out
    shift
    checks=$((checks + 1))
    if out=$("$@" 2>&1); then echo "PASS: $name"; else echo "FAIL: $name"; fails=$((fails + 1)); fi
    [ -n "$out" ] && echo "$out" | tail -8 | sed 's/^/    /'
    return 0
}
have() {
    local f
    for f in "$@"; do [ -e "$f" ] || { echo "SKIP: $f missing"; return 1; }; done
    return 0
}
ids_of_ref_logits() { awk '/^pos /{printf "%s ", $4}' "$1"; }   # the input token of each position

if ! $PY -c 'import numpy' 2>/dev/null; then echo "SKIP: numpy missing (python3-numpy): architecture checks"; exit 0; fi
mkdir -p $T
make -s $B/logits || { echo "FAIL: cannot build $B/logits"; exit 1; }
have_run=0
make -s $B/run 2>/dev/null && have_run=1 || echo "SKIP: $B/run does not build (tokenizer not merged?): run CLI checks"
have_convert=0
if [ "$CONVERT" != "$B/convert" ]; then have_convert=1
elif have tools/convert.c && make -s $B/convert; then have_convert=1; fi

# tfm_vs_ref NAME GGUF HF_DIR PROMPT TOL [BATCH...]: tfm.h's logits at every prompt position (the
# prompt fed BATCH tokens per call; 0 = all at once) against the float64 reference
tfm_vs_ref() {
    local name=$1 gguf=$2 hf=$3 prompt=$4 tol=$5 b files=""
    shift 5
    for b in "${@:-0}"; do
        $LOGITS -m "$gguf" --prompt-ids "$prompt" --all --batch $b > $T/$name.b$b.txt || return 1
        files="$files --check $T/$name.b$b.txt"
    done
    $REF logits "$hf" --prompt-ids "$prompt" --all $files --tol "$tol"
}
# greedy_vs_file GGUF TOKENS_FILE [run]: tfm.h's greedy ids equal the reference file's
# continuation (with "run": through the run example's command line, --prompt-ids and --print-ids)
greedy_vs_file() {
    local prompt gen got np
    prompt=$(grep -E '^prompt_(ids|tokens)' "$2" | cut -d: -f2)
    gen=$(grep '^generated_ids' "$2" | cut -d: -f2)
    if [ -z "$gen" ]; then
        np=$(echo $prompt | wc -w)
        gen=$(grep '^sequence' "$2" | cut -d: -f2 | cut -d' ' -f$((np + 2))-)
    fi
    if [ "${3:-}" = run ]; then
        got=$($B/run -m "$1" --prompt-ids "$prompt" -n $(echo $gen | wc -w) --ignore-eos --print-ids --threads 1 2>/dev/null) || return 1
        got=$(echo $got | cut -d' ' -f$(($(echo $prompt | wc -w) + 1))-)
    else
        got=$($LOGITS -m "$1" --prompt-ids "$prompt" -n $(echo $gen | wc -w) | cut -d: -f2) || return 1
    fi
    [ "$(echo $got)" = "$(echo $gen)" ] || { echo "tfm.h:     $got"; echo "reference: $gen"; return 1; }
    echo "$(echo $gen | wc -w) greedy ids after prompt [$(echo $prompt)] equal $(basename $2)"
}
# run_text_vs_file GGUF TEXT TOKENS_FILE: the run example on a text prompt prints the file's
# whole sequence (tokenizer with BOS, then greedy ids)
run_text_vs_file() {
    local want got
    want=$(grep '^sequence' "$3" | cut -d: -f2)
    got=$($B/run -m "$1" -p "$2" -n $(($(echo $want | wc -w) - $(grep '^prompt_tokens' "$3" | cut -d'(' -f2 | cut -d')' -f1))) \
        --ignore-eos --print-ids --threads 1 2>/dev/null) || return 1
    [ "$(echo $got)" = "$(echo $want)" ] || { echo "run:       $got"; echo "reference: $want"; return 1; }
    echo "$(echo $want | wc -w) ids equal $(basename $3)"
}
# greedy_vs_hf NAME GGUF HF_DIR PROMPT N: tfm.h's greedy ids equal the float64 reference's
greedy_vs_hf() {
    $LOGITS -m "$2" --prompt-ids "$4" -n $5 > $T/$1.greedy.txt && $REF greedy "$3" --prompt-ids "$4" -n $5 --check $T/$1.greedy.txt
}

# ---- 1. the reference itself, against other implementations' outputs
# (hf424/numpy files: float64 runs printed as float32, half an ulp at |logit| < 32 is 1e-6)
if have $M/opt-A/hf $R/opt-A/opt.hello.numpy.logits.txt $R/opt-A/opt.once.numpy.logits.txt \
        $R/opt-A/opt.hello.hf424-float64.tokens.txt $R/opt-A/opt.once.hf424-float64.tokens.txt; then
    check "hf_reference.py = HF/numpy float64 on opt-A" $REF check-ref $M/opt-A/hf --tol 2e-6 \
        --logits $R/opt-A/opt.hello.numpy.logits.txt --logits $R/opt-A/opt.once.numpy.logits.txt \
        --tokens $R/opt-A/opt.hello.hf424-float64.tokens.txt --tokens $R/opt-A/opt.once.hf424-float64.tokens.txt
fi
if have $M/gpt2-A/hf $R/gpt2-A/A.hello.hf424-float64.logits.txt $R/gpt2-A/A.once.hf424-float64.logits.txt \
        $R/gpt2-A/A.hello.hf424-float64.tokens.txt $R/gpt2-A/A.once.hf424-float64.tokens.txt; then
    check "hf_reference.py = HF float64 on gpt2-A" $REF check-ref $M/gpt2-A/hf --tol 2e-6 \
        --logits $R/gpt2-A/A.hello.hf424-float64.logits.txt --logits $R/gpt2-A/A.once.hf424-float64.logits.txt \
        --tokens $R/gpt2-A/A.hello.hf424-float64.tokens.txt --tokens $R/gpt2-A/A.once.hf424-float64.tokens.txt
fi
# llama2.c computes in float32: 1e-4 over 256 positions
S=$R/stories260K_once_upon_t0_n256
have $M/stories260K-hf $S.logits.txt $S.tokens.txt &&
    check "hf_reference.py = llama2.c on stories260K-hf (256 positions)" $REF check-ref $M/stories260K-hf \
        --logits $S.logits.txt --tokens $S.tokens.txt --tol 1e-4

# ---- 2. tfm.h on the shared GPT-2 GGUF (converted elsewhere), more positions than ../shared/ref has
P12="7454 2402 257 640 11 612 373 257 1310 2576 3706 13"
have $M/gpt2-A/gpt2-tiny-random-A.f32.gguf $M/gpt2-A/hf &&
    check "gpt2-A GGUF: tfm.h = hf_reference.py (12 positions, batched and token by token)" \
        tfm_vs_ref gpt2-gguf $M/gpt2-A/gpt2-tiny-random-A.f32.gguf $M/gpt2-A/hf "$P12" 1e-4 0 1

if [ $have_convert = 0 ]; then
    echo "SKIP: $CONVERT missing: conversion checks"
    echo "test_arch: $checks checks, $fails failures"
    [ $fails = 0 ]; exit
fi

# ---- 3. the shared Hugging Face checkpoints through the converter (F32), against ../shared/ref
# files (the float64 reference equals them, section 1) and over more positions against hf_reference.py
for m in opt-A gpt2-A; do
    have $M/$m/hf || continue
    check "convert $m" $CONVERT $M/$m/hf $T/$m.gguf --type f32
    pairs=""
    for p in hello once; do
        case $m in opt-A) f=$R/opt-A/opt.$p ;; *) f=$R/gpt2-A/A.$p ;; esac
        have $f.hf424-float64.tokens.txt && check "$m: greedy ids = HF float64 ($p)" greedy_vs_file $T/$m.gguf $f.hf424-float64.tokens.txt
        [ $have_run = 1 ] && have $f.hf424-float64.tokens.txt &&
            check "$m: greedy ids = HF float64 ($p, run --prompt-ids)" greedy_vs_file $T/$m.gguf $f.hf424-float64.tokens.txt run
        [ $m = opt-A ] && f=$f.numpy.logits.txt || f=$f.hf424-float64.logits.txt
        have $f || continue
        $LOGITS -m $T/$m.gguf --prompt-ids "$(ids_of_ref_logits $f)" --all > $T/$m.$p.txt
        pairs="$pairs $T/$m.$p.txt $f"
    done
    [ -n "$pairs" ] && check "$m: tfm.h logits = ../shared/ref float64 logits" $REF compare $pairs --tol 1e-4
done
have $M/opt-A/hf && check "opt-A: tfm.h = hf_reference.py (13 positions, batched and token by token)" \
    tfm_vs_ref opt-A $T/opt-A.gguf $M/opt-A/hf "2 $P12" 1e-4 0 1
if have $M/stories260K-hf $TOK512; then
    check "convert stories260K-hf" $CONVERT $M/stories260K-hf $T/stories260K-hf.gguf --type f32 --tokenizer-bin $TOK512
    check "stories260K-hf: tfm.h = hf_reference.py (8 positions)" tfm_vs_ref stories $T/stories260K-hf.gguf $M/stories260K-hf \
        "1 403 407 261 378 432 383 286" 1e-4
    have $S.tokens.txt && check "stories260K-hf: greedy ids = llama2.c (252 tokens)" greedy_vs_file $T/stories260K-hf.gguf $S.tokens.txt
    [ $have_run = 1 ] && have $S.tokens.txt &&
        check "stories260K-hf: run -p \"Once upon a time\": prompt and 252 greedy ids = llama2.c" run_text_vs_file \
            $T/stories260K-hf.gguf "Once upon a time" $S.tokens.txt
fi

# ---- 4. random checkpoints of the shapes the shared ones do not cover (tests/make_random_hf.py)
check "make_random_hf.py" $PY tests/make_random_hf.py $T/hf
PROMPT="5 100 37 250 7 42 200 11 64 1 2 3 99 180 17 3"
for m in qwen2-tied qwen2-untied llama-gqa mistral; do
    case $m in llama*|mistral) tok="--tokenizer-bin $TOK512"; have $TOK512 || continue ;; *) tok="" ;; esac
    check "convert $m" $CONVERT $T/hf/$m $T/$m.gguf --type f32 $tok
    check "$m: tfm.h = hf_reference.py (16 positions, batched and token by token)" tfm_vs_ref $m $T/$m.gguf $T/hf/$m "$PROMPT" 1e-4 0 1
    check "$m: greedy ids = hf_reference.py" greedy_vs_hf $m $T/$m.gguf $T/hf/$m "$PROMPT" 24
done
# 160 positions: RoPE angles are float32 (as in a Hugging Face float32 run, which is itself
# ~6e-5 off float64 on llama-gqa at 200 positions), so the difference grows with the position
LONG=$($PY -c "import random; r = random.Random(7); print(' '.join(str(r.randrange(280)) for _ in range(160)))")
for m in qwen2-untied llama-gqa; do
    [ -e $T/$m.gguf ] && check "$m: tfm.h = hf_reference.py (160 positions, chunks of 7)" \
        tfm_vs_ref $m-long $T/$m.gguf $T/hf/$m "$LONG" 2e-4 7
done

# ---- 5. lossy weight types against F32 (llama-gqa: 4 heads / 2 KV heads, F32 source)
# F16 rounds each weight by <= 2^-11 relative (measured: max|d| 0.022, rms 0.08%); Q8_0 also
# quantizes activations (measured: max|d| 0.55, rms 2.6% of logits of rms ~4)
if [ -e $T/llama-gqa.gguf ]; then
    $LOGITS -m $T/llama-gqa.gguf --prompt-ids "$PROMPT" --all > $T/llama-gqa.f32.txt
    for t in f16 q8_0; do
        check "convert llama-gqa ($t)" $CONVERT $T/hf/llama-gqa $T/llama-gqa.$t.gguf --type $t --tokenizer-bin $TOK512
        $LOGITS -m $T/llama-gqa.$t.gguf --prompt-ids "$PROMPT" --all > $T/llama-gqa.$t.txt
    done
    check "llama-gqa F16: logits within 0.1 of F32, same argmax" $REF compare $T/llama-gqa.f16.txt $T/llama-gqa.f32.txt --tol 0.1
    check "llama-gqa Q8_0: logits within 1.5 of F32, rms within 8%" $REF compare $T/llama-gqa.q8_0.txt $T/llama-gqa.f32.txt \
        --tol 1.5 --rms-tol 0.08
fi

# BF16 weights from a BF16 checkpoint are the same numbers: identical logits
if [ -e $T/qwen2-untied.gguf ]; then
    check "convert qwen2-untied (bf16)" $CONVERT $T/hf/qwen2-untied $T/qwen2-untied.bf16.gguf --type bf16
    $LOGITS -m $T/qwen2-untied.gguf --prompt-ids "$PROMPT" --all > $T/qwen2-untied.f32.txt
    $LOGITS -m $T/qwen2-untied.bf16.gguf --prompt-ids "$PROMPT" --all > $T/qwen2-untied.bf16.txt
    check "qwen2-untied BF16 (BF16 source): logits identical to F32" $REF compare $T/qwen2-untied.bf16.txt $T/qwen2-untied.f32.txt --tol 0
fi

echo "test_arch: $checks checks, $fails failures"
[ $fails = 0 ]
