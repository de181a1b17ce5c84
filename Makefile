# tfm.h - build, run, test.   make run | make test | make bench | make model | make firmware
CC       ?= cc
CFLAGS   ?= -O2 -march=native
WARN     := -std=c99 -Wall -Wextra -pedantic
OMP      := $(shell printf 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
SAN      := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
B        := build
MODEL    ?= models/tfm-kjv.gguf
PROMPT   ?= And God said
N        ?= 120

EXAMPLES := $(B)/run
TOOLS    := $(B)/llama2c-to-gguf $(B)/gguf-random $(B)/convert $(B)/train

KERNEL_TESTS := $(B)/test_kernels $(if $(filter x86_64 amd64,$(shell uname -m)),$(B)/test_kernels_avx2)
TESTS    := $(B)/test_models $(B)/test_gguf $(B)/test_tokenizer $(B)/test_json $(B)/test_safetensors $(B)/test_beam $(B)/test_kv $(B)/test_sampler $(KERNEL_TESTS)

.PHONY: all run test test-san bench model firmware clean bench-beams
all: $(EXAMPLES)

$(B):
	mkdir -p $(B)

$(B)/%: examples/%.c tfm.h | $(B)
	$(CC) $(CFLAGS) $(OMP) $(WARN) -I. $< -o $@ -lm

$(B)/%: tools/%.c tfm.h | $(B)
	$(CC) $(CFLAGS) $(OMP) $(WARN) -I. $< -o $@ -lm

$(B)/test_%: tests/test_%.c tests/test.h tfm.h | $(B)
	$(CC) $(CFLAGS) $(OMP) $(WARN) -Itests -I. $< -o $@ -lm

$(B)/san_%: tests/test_%.c tests/test.h tfm.h | $(B)
	$(CC) $(SAN) $(WARN) -Itests -I. $< -o $@ -lm

run: $(B)/run
	$(B)/run -m $(MODEL) -p "$(PROMPT)" -n $(N)

test: $(TESTS) $(TESTS:$(B)/test_%=$(B)/san_%) $(B)/run $(B)/llama2c-to-gguf
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done
	@set -e; for t in $(TESTS:$(B)/test_%=$(B)/san_%); do echo "== $$t (ASan+UBSan)"; $$t; done
	@bash tests/test_cli.sh
	@sh tests/test_convert.sh
	@bash tests/test_build.sh
	@bash tests/fuzz_gguf.sh 10
	@echo "make test: all passed"

clean:
	rm -rf $(B)

# ---- architecture cross-checks against an independent float64 forward (tests/test_arch.sh)
.PHONY: test-arch
test: test-arch
test-arch: $(B)/logits
	@bash tests/test_arch.sh

# >> beam search (branch beam): batched 4-beam step vs 4 single steps, JSON on stdout
bench-beams: $(B)/bench_beams
	$(B)/bench_beams
$(B)/test_beam $(B)/san_beam: examples/beam_flags.h tools/gguf_write.h
$(B)/bench_beams: tools/gguf_write.h

# ---- KV-cache pruning evaluation (docs/kv-eval.md): tables and plot. Per model: FULL, H2O, WINDOW
# and A2SF (5 alphas) at 5 cache ratios, then A2SF again with the last half of the budget protected.
KV_EVAL_STORIES ?= ../shared/models/stories260K.gguf
KV_EVAL_RUNS := $(B)/kv-eval-stories260K.jsonl $(B)/kv-eval-stories260K-recent.jsonl $(B)/kv-eval-tfm-kjv.jsonl $(B)/kv-eval-tfm-kjv-recent.jsonl
.PHONY: kv-eval
kv-eval: $(B)/kv_eval
	$(B)/kv_eval -m $(KV_EVAL_STORIES) --name stories260K --text docs/kv-eval-stories.txt --ctx 512 --sweep > $(B)/kv-eval-stories260K.jsonl
	$(B)/kv_eval -m $(KV_EVAL_STORIES) --name stories260K --text docs/kv-eval-stories.txt --ctx 512 --sweep --a2sf-only --recent-frac 0.5 > $(B)/kv-eval-stories260K-recent.jsonl
	$(B)/kv_eval -m $(MODEL) --name tfm-kjv --text docs/kv-eval-kjv.txt --lines --sweep > $(B)/kv-eval-tfm-kjv.jsonl
	$(B)/kv_eval -m $(MODEL) --name tfm-kjv --text docs/kv-eval-kjv.txt --lines --sweep --a2sf-only --recent-frac 0.5 > $(B)/kv-eval-tfm-kjv-recent.jsonl
	$(B)/kv_eval --report docs/kv-eval.md --svg docs/kv-eval.svg $(KV_EVAL_RUNS)

# ---- speed: the AVX2 kernels (also where the default build takes AVX-512), NEON under qemu, bench
$(B)/test_kernels_avx2: tests/test_kernels.c tests/test.h tfm.h | $(B)
	$(CC) -O2 -mavx2 -mfma -mf16c $(OMP) $(WARN) -Itests -I. $< -o $@ -lm

$(B)/san_kernels_avx2: tests/test_kernels.c tests/test.h tfm.h | $(B)
	$(CC) $(SAN) -mavx2 -mfma -mf16c $(WARN) -Itests -I. $< -o $@ -lm

# needs gcc-aarch64-linux-gnu and qemu-user (not part of make test)
.PHONY: test-neon
test-neon: | $(B)
	aarch64-linux-gnu-gcc -O2 -march=armv8.2-a+dotprod -static $(WARN) -Itests -I. tests/test_kernels.c -o $(B)/test_kernels_neon -lm
	qemu-aarch64 -cpu max $(B)/test_kernels_neon

bench: $(B)/bench $(B)/gguf-random
	@bash tools/bench-suite.sh
