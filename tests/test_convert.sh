#!/bin/sh
# Converter tests: builds the tools, converts the reference checkpoints in ../shared/models and
# compares the results with files other implementations wrote (tools/gguf-diff).
# Run from the repository root: sh tests/test_convert.sh   (CC=clang to change the compiler)
# Prints one line per check; exit status 1 if any check failed. A missing reference file is
# reported as "SKIP: <file> missing" and skips only the checks that need it.
set -u
CC=${CC:-cc}
CFLAGS=${CFLAGS:-"-O2 -std=c99 -Wall -Wextra -pedantic"}
B=build
M=../shared/models
T=$B/test_convert
mkdir -p $T
fails=0
checks=0

for tool in llama2c-to-gguf gguf-random gguf-diff gguf-dump convert; do
    $CC $CFLAGS -I. tools/$tool.c -lm -o $B/$tool || { echo "FAIL: cannot build tools/$tool.c"; exit 1; }
done
for t in check_logits hf_fixture; do
    $CC $CFLAGS -I. tests/$t.c -lm -o $B/$t || { echo "FAIL: cannot build tests/$t.c"; exit 1; }
done

# check NAME COMMAND...: runs COMMAND quietly, prints PASS/FAIL NAME (output shown on failure).
check() {
    name=$1; shift
    checks=$((checks + 1))
    if "$@" > $T/out.txt 2>&1; then echo "PASS: $name"
    else echo "FAIL: $name"; sed 's/^/    /' $T/out.txt | tail -20; fails=$((fails + 1)); fi
}
# fails_as_expected NAME COMMAND...: the command must exit with status 1 (a detected difference).
fails_as_expected() {
    name=$1; shift
    checks=$((checks + 1))
    "$@" > $T/out.txt 2>&1
    if [ $? -eq 1 ]; then echo "PASS: $name"; else echo "FAIL: $name"; sed 's/^/    /' $T/out.txt | tail -5; fails=$((fails + 1)); fi
}
have() {
    for f in "$@"; do [ -e "$f" ] || { echo "SKIP: $f missing"; return 1; }; done
    return 0
}
DIFF=$B/gguf-diff
LOGITS=$B/check_logits
R=../shared/ref
TOKKEYS="--key tokenizer.ggml.model --key tokenizer.ggml.tokens --key tokenizer.ggml.scores --key tokenizer.ggml.token_type --key tokenizer.ggml.bos_token_id --key tokenizer.ggml.eos_token_id --key tokenizer.ggml.unknown_token_id"

# ---- llama2.c -> GGUF against llama.cpp's conversion of the same weights
if have $M/stories260K.bin $M/tok512.bin $M/stories260K.gguf; then
    check "llama2c-to-gguf stories260K (f32)" $B/llama2c-to-gguf $M/stories260K.bin $M/tok512.bin $T/s.f32.gguf
    # llama.cpp's converter writes the tied head out as output.weight; ours omits it
    check "stories260K: tensors byte-identical to llama.cpp's, same vocabulary and shape keys" \
        $DIFF $T/s.f32.gguf $M/stories260K.gguf --alias output.weight=token_embd.weight $TOKKEYS \
        --key general.architecture --key llama.embedding_length --key llama.feed_forward_length \
        --key llama.block_count --key llama.attention.head_count --key llama.attention.head_count_kv \
        --key llama.rope.dimension_count --key llama.attention.layer_norm_rms_epsilon
    for t in f16 bf16 q8_0 q4_0; do
        check "llama2c-to-gguf stories260K ($t)" $B/llama2c-to-gguf $M/stories260K.bin $M/tok512.bin $T/s.$t.gguf --type $t
    done
    # F16 and BF16 round each value once: relative error 2^-11 and 2^-8 of the value
    check "f16 values within fp16 rounding" $DIFF $T/s.f16.gguf $T/s.f32.gguf --no-keys --block-rtol 0.0005
    check "bf16 values within bf16 rounding" $DIFF $T/s.bf16.gguf $T/s.f32.gguf --no-keys --block-rtol 0.004
    # Q8_0: |error| <= d/2 + fp16 rounding of d, d = max|block|/127; Q4_0: <= |d| = max|block|/8
    check "q8_0 values within Q8_0 error" $DIFF $T/s.q8_0.gguf $T/s.f32.gguf --no-keys --block-rtol 0.0045
    check "q4_0 values within Q4_0 error" $DIFF $T/s.q4_0.gguf $T/s.f32.gguf --no-keys --block-rtol 0.13
    fails_as_expected "gguf-diff notices Q4_0 error beyond Q8_0's bound" $DIFF $T/s.q4_0.gguf $T/s.f32.gguf --no-keys --block-rtol 0.0045
    # the same weights as an untied checkpoint: vocab_size -512 in the header, the embedding
    # appended as the classifier; llama.cpp's file then matches with no alias at all
    { head -c 20 $M/stories260K.bin; printf '\000\376\377\377'; tail -c +25 $M/stories260K.bin
      tail -c +29 $M/stories260K.bin | head -c 131072; } > $T/untied.bin
    check "llama2c-to-gguf untied classifier" $B/llama2c-to-gguf $T/untied.bin $M/tok512.bin $T/untied.gguf
    check "untied: output.weight written, all tensors byte-identical to llama.cpp's" $DIFF $T/untied.gguf $M/stories260K.gguf --no-keys
    head -c 100000 $M/stories260K.bin > $T/short.bin
    fails_as_expected "llama2c-to-gguf refuses a truncated checkpoint" $B/llama2c-to-gguf $T/short.bin $M/tok512.bin $T/bad.gguf
fi

# ---- JSON and safetensors readers on hostile input, under the sanitizers when available
SAN="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all"
if echo 'int main(void){return 0;}' > $T/san.c && $CC $SAN $T/san.c -o $T/san 2>/dev/null && $T/san; then :; else
    echo "note: $CC cannot build with sanitizers here; running the reader tests without them"; SAN="-g -O1"; fi
$CC -std=c99 -Wall -Wextra -pedantic $SAN -I. tests/test_json.c -o $B/test_json && check "tests/test_json.c" $B/test_json
$CC -std=c99 -Wall -Wextra -pedantic $SAN -I. tests/test_safetensors.c -lm -o $B/test_safetensors && check "tests/test_safetensors.c" $B/test_safetensors

# ---- Hugging Face Llama: q/k un-permutation must give the llama2.c layout exactly
HF=$M/stories260K-hf
if have $HF/config.json $HF/model.safetensors $M/tok512.bin $M/stories260K.bin; then
    [ -e $T/s.f32.gguf ] || $B/llama2c-to-gguf $M/stories260K.bin $M/tok512.bin $T/s.f32.gguf > /dev/null
    check "convert stories260K-hf --tokenizer-bin" $B/convert $HF $T/shf.gguf --tokenizer-bin $M/tok512.bin
    check "stories260K-hf: every tensor byte-identical to the llama2.c conversion" \
        $DIFF $T/shf.gguf $T/s.f32.gguf --no-keys
    check "stories260K-hf: same vocabulary as from llama2c-to-gguf" $DIFF $T/shf.gguf $T/s.f32.gguf $TOKKEYS
    check "convert stories260K-hf --no-permute" $B/convert $HF $T/shf-np.gguf --tokenizer-bin $M/tok512.bin --no-permute
    fails_as_expected "without un-permuting, attn_q/attn_k differ (the check can fail)" $DIFF $T/shf-np.gguf $T/s.f32.gguf --no-keys
    if have $R/stories260K_once_upon_t0_n256.logits.txt $R/stories260K_once_upon_t0_n256.tokens.txt; then
        check "stories260K-hf GGUF: logits within 1e-4 of llama2.c, 252 greedy ids equal" \
            $LOGITS $T/shf.gguf $R/stories260K_once_upon_t0_n256.logits.txt 1e-4 $R/stories260K_once_upon_t0_n256.tokens.txt
        fails_as_expected "un-permuted q/k give wrong logits" $LOGITS $T/shf-np.gguf $R/stories260K_once_upon_t0_n256.logits.txt 1e-4
    fi
    if have $M/stories260K.gguf; then
        check "convert stories260K-hf --vocab-from stories260K.gguf" $B/convert $HF $T/shf-vf.gguf --vocab-from $M/stories260K.gguf
        check "--vocab-from copies every tokenizer key" $DIFF $T/shf-vf.gguf $M/stories260K.gguf $TOKKEYS \
            --key tokenizer.ggml.seperator_token_id --key tokenizer.ggml.padding_token_id --alias output.weight=token_embd.weight
    fi
fi

# ---- Hugging Face GPT-2 (Conv1D transposes, vocab.json + merges.txt) against the reference GGUF
G=$M/gpt2-A
if have $G/hf/config.json $G/hf/model.safetensors $G/hf/vocab.json $G/hf/merges.txt $G/gpt2-tiny-random-A.f32.gguf; then
    GKEYS="--key tokenizer.ggml.model --key tokenizer.ggml.pre --key tokenizer.ggml.tokens --key tokenizer.ggml.token_type --key tokenizer.ggml.merges --key tokenizer.ggml.bos_token_id --key tokenizer.ggml.eos_token_id --key general.architecture --key gpt2.context_length --key gpt2.embedding_length --key gpt2.feed_forward_length --key gpt2.block_count --key gpt2.attention.head_count --key gpt2.attention.layer_norm_epsilon"
    check "convert gpt2-A/hf" $B/convert $G/hf $T/g.gguf
    check "gpt2-A: tensors byte-identical to the reference GGUF, same vocabulary, merges and shape keys" \
        $DIFF $T/g.gguf $G/gpt2-tiny-random-A.f32.gguf $GKEYS
    if have $M/gpt2/encoder.json $M/gpt2/vocab.bpe; then
        # the same checkpoint with OpenAI's encoder.json + vocab.bpe instead of vocab.json + merges.txt
        mkdir -p $T/gpt2-enc && rm -f $T/gpt2-enc/*
        for f in config.json model.safetensors; do ln -s "$(cd $G/hf && pwd)/$f" $T/gpt2-enc/$f; done
        for f in encoder.json vocab.bpe; do ln -s "$(cd $M/gpt2 && pwd)/$f" $T/gpt2-enc/$f; done
        check "convert gpt2 with encoder.json + vocab.bpe" $B/convert $T/gpt2-enc $T/g-enc.gguf
        check "encoder.json + vocab.bpe give the reference vocabulary and merges" $DIFF $T/g-enc.gguf $G/gpt2-tiny-random-A.f32.gguf $GKEYS
    fi
    check "convert gpt2-A/hf --type q8_0" $B/convert $G/hf $T/g.q8_0.gguf --type q8_0
    check "gpt2-A q8_0 values within Q8_0 error" $DIFF $T/g.q8_0.gguf $T/g.gguf --no-keys --block-rtol 0.0045
    if have $R/gpt2-A/A.hello.hf424-float64.logits.txt $R/gpt2-A/A.once.hf424-float64.tokens.txt; then
        check "gpt2-A GGUF: logits within 1e-4 of HF float64, 32 greedy ids equal (hello)" \
            $LOGITS $T/g.gguf $R/gpt2-A/A.hello.hf424-float64.logits.txt 1e-4 $R/gpt2-A/A.hello.hf424-float64.tokens.txt
        check "gpt2-A GGUF: same (once)" \
            $LOGITS $T/g.gguf $R/gpt2-A/A.once.hf424-float64.logits.txt 1e-4 $R/gpt2-A/A.once.hf424-float64.tokens.txt
    fi
fi

# ---- Hugging Face OPT: no other GGUF exists, so the forward pass is the check
O=$M/opt-A/hf
if have $O/config.json $O/model.safetensors $O/vocab.json $O/merges.txt; then
    check "convert opt-A/hf" $B/convert $O $T/o.gguf
    $B/gguf-dump $T/o.gguf > $T/o.txt
    check "opt-A keys: context 128 without the offset rows, position_offset 2, BOS 2 added" \
        grep -q "^key opt.context_length u32 128$" $T/o.txt
    check "opt-A: position_embd keeps all 130 rows, token_embd all 50272" \
        sh -c "grep -q '^tensor position_embd.weight F32 \[64, 130\]' $T/o.txt && grep -q '^tensor token_embd.weight F32 \[64, 50272\]' $T/o.txt && grep -q '^key opt.position_offset u32 2$' $T/o.txt && grep -q '^key tokenizer.ggml.add_bos_token bool true$' $T/o.txt"
    for p in hello once; do
        if have $R/opt-A/opt.$p.numpy.logits.txt $R/opt-A/opt.$p.numpy.tokens.txt; then
            check "opt-A GGUF: logits within 1e-4 of numpy float64, 32 greedy ids equal ($p)" \
                $LOGITS $T/o.gguf $R/opt-A/opt.$p.numpy.logits.txt 1e-4 $R/opt-A/opt.$p.numpy.tokens.txt
        fi
    done
    # opt-350m-style configs are refused with a message
    mkdir -p $T/opt-bad && rm -f $T/opt-bad/*
    sed 's/"do_layer_norm_before": true/"do_layer_norm_before": false/' $O/config.json > $T/opt-bad/config.json
    ln -s "$(cd $O && pwd)/model.safetensors" $T/opt-bad/model.safetensors
    fails_as_expected "convert refuses OPT with do_layer_norm_before = false" $B/convert $T/opt-bad $T/bad.gguf
    # a truncated checkpoint is refused, not read past its end
    head -c 1000000 $O/model.safetensors > $T/opt-trunc.safetensors
    rm -f $T/opt-bad/model.safetensors && cp $O/config.json $T/opt-bad/config.json && mv $T/opt-trunc.safetensors $T/opt-bad/model.safetensors
    fails_as_expected "convert refuses a truncated safetensors file" $B/convert $T/opt-bad $T/bad.gguf
fi

# ---- synthetic Hugging Face checkpoints (tests/hf_fixture.c writes each with the GGUF it must give):
#      Qwen2 sharded BF16/F16 with biases and byte-level tokenizer.json; untied Llama F16 with
#      1 KV head and a SentencePiece-style tokenizer.json
for k in qwen2 llama; do
    rm -rf $T/fx-$k && mkdir -p $T/fx-$k
    check "hf_fixture $k" $B/hf_fixture $k $T/fx-$k $T/fx-$k.expected.gguf
    check "convert fixture $k" $B/convert $T/fx-$k $T/fx-$k.gguf --type f32 --name fixture
    check "fixture $k: every key and tensor as expected" $DIFF $T/fx-$k.gguf $T/fx-$k.expected.gguf
    check "fixture $k: default type of a 16-bit checkpoint is F16" sh -c \
        "$B/convert $T/fx-$k $T/fx-$k.f16.gguf > /dev/null && $B/gguf-dump $T/fx-$k.f16.gguf | grep -q '^key general.file_type u32 1$'"
    check "fixture $k: F16 output equals the F32 output (values are exact in F16)" $DIFF $T/fx-$k.f16.gguf $T/fx-$k.gguf --no-keys --block-rtol 0
    check "fixture $k: q4_0 within Q4_0 error" sh -c "$B/convert $T/fx-$k $T/fx-$k.q4_0.gguf --type q4_0 > /dev/null && $DIFF $T/fx-$k.q4_0.gguf $T/fx-$k.gguf --no-keys --block-rtol 0.13"
    check "fixture $k loads in tfm.h and gives finite logits" $LOGITS $T/fx-$k.gguf - 0
done
if [ -e $T/fx-qwen2/model.safetensors.index.json ]; then
    sed 's/"model-00002-of-00002.safetensors"/"..\/x.safetensors"/' $T/fx-qwen2/model.safetensors.index.json > $T/index.json &&
        cp $T/index.json $T/fx-qwen2/model.safetensors.index.json
    fails_as_expected "convert refuses a weight_map naming a file outside the directory" $B/convert $T/fx-qwen2 $T/bad.gguf
fi

# ---- gguf-random: deterministic, loadable, every type
check "gguf-random f32" $B/gguf-random --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --vocab 600 --ctx 64 --type f32 --seed 7 $T/r1.gguf
check "gguf-random f32 again" $B/gguf-random --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --vocab 600 --ctx 64 --type f32 --seed 7 $T/r2.gguf
check "gguf-random: same seed, same bytes" cmp $T/r1.gguf $T/r2.gguf
check "gguf-random other seed" $B/gguf-random --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --vocab 600 --ctx 64 --type f32 --seed 8 $T/r3.gguf
fails_as_expected "gguf-random: another seed, other weights" $DIFF $T/r1.gguf $T/r3.gguf --no-keys
for t in f16 bf16 q8_0 q4_0; do
    check "gguf-random $t (untied), tied" sh -c "$B/gguf-random --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --vocab 600 --ctx 64 --type $t --seed 7 $T/r.$t.gguf && $B/gguf-random --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --vocab 600 --ctx 64 --type $t --seed 7 --tied $T/rt.$t.gguf"
done
check "gguf-random models load in tfm.h and give finite logits" sh -c "$LOGITS $T/r1.gguf - 0 && $LOGITS $T/rt.q4_0.gguf - 0"
check "gguf-random q8_0 is the f32 model within Q8_0 error" $DIFF $T/r.q8_0.gguf $T/r1.gguf --no-keys --block-rtol 0.0045
check "gguf-random q4_0: every matrix Q4_0, the head and embedding too" sh -c "$B/gguf-dump $T/r.q4_0.gguf | grep -q '^tensor output.weight Q4_0' && $B/gguf-dump $T/rt.q4_0.gguf | grep -q '^tensor token_embd.weight Q4_0'"
check "gguf-random q4_0 is the f32 model within Q4_0 error" $DIFF $T/r.q4_0.gguf $T/r1.gguf --no-keys --block-rtol 0.13

echo "test_convert: $checks checks, $fails failed"
[ $fails -eq 0 ]
