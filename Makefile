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
TOOLS    := $(B)/llama2c-to-gguf $(B)/gguf-random $(B)/convert $(B)/train $(B)/kernel-bench

KERNEL_TESTS := $(B)/test_kernels $(if $(filter x86_64 amd64,$(shell uname -m)),$(B)/test_kernels_avx2 $(B)/test_kv_avx2)
TESTS    := $(B)/test_models $(B)/test_gguf $(B)/test_tokenizer $(B)/test_json $(B)/test_safetensors $(B)/test_beam $(B)/test_kv $(B)/test_sampler $(B)/test_train $(B)/test_train_grad $(B)/test_train_tfm $(B)/test_noalloc $(KERNEL_TESTS)

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

# examples/run with the plain C kernels only (what the firmware runs), for comparisons
$(B)/run_plain: examples/run.c examples/kv_flags.h examples/beam_flags.h tfm.h | $(B)
	$(CC) -O2 $(WARN) -DTFM_NO_SIMD -I. $< -o $@ -lm

run: $(B)/run
	$(B)/run -m $(MODEL) -p "$(PROMPT)" -n $(N)

test: $(TESTS) $(TESTS:$(B)/test_%=$(B)/san_%) $(B)/contract_kernels $(B)/run $(B)/llama2c-to-gguf
	@set -e; for t in $(TESTS) $(B)/contract_kernels; do echo "== $$t"; $$t; done
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

# ---- the default model (models/README.md): retrains models/tfm-kjv.gguf from the KJV (Debian bible-kjv)
model: | $(B)
	@command -v bible >/dev/null || { echo "make model needs the KJV text: apt-get install bible-kjv"; exit 1; }
	bible -l100000 "Genesis 1:1-Revelation 22:21" > $(B)/kjv.txt
	$(CC) -std=c99 -O2 -march=native -ffp-contract=off $(OMP) tools/train.c -o $(B)/train -lm
	OMP_WAIT_POLICY=passive $(B)/train --corpus $(B)/kjv.txt --out models/tfm-kjv.gguf --threads 2

# ===================================================================== firmware (examples/firmware)
# `make firmware`: tfm.h bare-metal on QEMU's mps2-an386 (Cortex-M4F), built with arm-none-eabi-gcc
# and newlib; the model (re-encoded as Q8_0) is linked into flash by tools/gguf-to-c. Also builds
# the same main.c for the host, to compare outputs (tests/test_firmware.sh). `make firmware-run`
# runs it under QEMU, counting instructions (-icount shift=0: 1 ns of virtual time each).
FW_CC         ?= arm-none-eabi-gcc
FW_MODEL      ?= $(if $(wildcard $(MODEL)),$(MODEL),../shared/models/stories260K.gguf)
FW_PROMPT     ?= $(if $(wildcard $(MODEL)),$(PROMPT),Once upon a time)
FW_PROMPT_IDS ?=
FW_PROMPT_ARG  = $(if $(strip $(FW_PROMPT_IDS)),--prompt-ids "$(FW_PROMPT_IDS)",--prompt "$(FW_PROMPT)")
FW_N_GEN      ?= 48
FW_BUDGET     ?= 16
FW_ALPHA      ?= 0.5
FW_POOL       ?= 131072
FW_DIR        ?= $(B)/firmware
FW_OPT        ?= -O2
FW_ARCH       := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -fno-math-errno
FW_XDEFS      ?=
FW_DEFS        = -DFW_N_GEN=$(FW_N_GEN) -DFW_BUDGET=$(FW_BUDGET) -DFW_ALPHA=$(FW_ALPHA)f -DFW_POOL_BYTES=$(FW_POOL) $(FW_XDEFS)
FW_SRC        := examples/firmware/main.c examples/firmware/board.h
FW_QEMU       := qemu-system-arm -M mps2-an386 -nographic -monitor none -serial stdio \
                 -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off

.PHONY: firmware firmware-run FORCE
firmware: $(FW_DIR)/firmware.elf $(FW_DIR)/host

# rebuild when a setting changes
$(FW_DIR)/settings: FORCE
	@mkdir -p $(FW_DIR)
	@echo '$(FW_MODEL)|$(FW_PROMPT_ARG)|$(FW_DEFS)|$(FW_CC) $(FW_ARCH) $(FW_OPT)' | cmp -s - $@ || echo '$(FW_MODEL)|$(FW_PROMPT_ARG)|$(FW_DEFS)|$(FW_CC) $(FW_ARCH) $(FW_OPT)' > $@

# the model as an .incbin of the Q8_0 GGUF (assembles in no time; `gguf-to-c` without --asm
# writes a C array instead)
$(FW_DIR)/model.S: $(FW_MODEL) $(B)/gguf-to-c $(FW_DIR)/settings
	$(B)/gguf-to-c --q8_0 --asm $(FW_PROMPT_ARG) --gguf-out $(FW_DIR)/model.gguf $(FW_MODEL) $@

$(FW_DIR)/firmware.elf: $(FW_DIR)/model.S $(FW_SRC) examples/firmware/startup.c examples/firmware/board_mps2.c examples/firmware/mps2-an386.ld tfm.h
	$(FW_CC) $(FW_ARCH) $(FW_OPT) $(WARN) -ffunction-sections -fdata-sections -I. -Iexamples/firmware $(FW_DEFS) \
	    examples/firmware/startup.c examples/firmware/board_mps2.c examples/firmware/main.c $(FW_DIR)/model.S \
	    -T examples/firmware/mps2-an386.ld -nostartfiles --specs=nano.specs -Wl,--gc-sections \
	    -Wl,-Map=$(FW_DIR)/firmware.map -o $@ -lm
	$(FW_CC:gcc=size) $@

$(FW_DIR)/host: $(FW_DIR)/model.S $(FW_SRC) examples/firmware/board_host.c tfm.h
	$(CC) -O2 $(WARN) -I. -Iexamples/firmware $(FW_DEFS) examples/firmware/main.c examples/firmware/board_host.c $(FW_DIR)/model.S -o $@ -lm

firmware-run: $(FW_DIR)/firmware.elf
	timeout 120 $(FW_QEMU) -kernel $<

# the firmware test runs with `make test` (it prints SKIP when the ARM toolchain or QEMU is absent)
.PHONY: test-firmware
test: test-firmware
test-firmware:
	@bash tests/test_firmware.sh

# ---- speed: the AVX2 kernels (also where the default build takes AVX-512), NEON under qemu, bench
$(B)/test_kernels_avx2: tests/test_kernels.c tests/test.h tfm.h | $(B)
	$(CC) -O2 -mavx2 -mfma -mf16c $(OMP) $(WARN) -Itests -I. $< -o $@ -lm

# once more with floating-point contraction on (what gcc does outside -std=c99): decode and the
# prefill tiles must still give the same bits
$(B)/contract_kernels: tests/test_kernels.c tests/test.h tfm.h | $(B)
	$(CC) $(CFLAGS) $(OMP) -std=gnu99 -ffp-contract=fast -Wall -Wextra -pedantic -Itests -I. $< -o $@ -lm

$(B)/san_kernels_avx2: tests/test_kernels.c tests/test.h tfm.h | $(B)
	$(CC) $(SAN) -mavx2 -mfma -mf16c $(WARN) -Itests -I. $< -o $@ -lm

# the KV cache with SIMD attention (the F16 cache's widened copies are SIMD only), also sanitized
$(B)/test_kv_avx2: tests/test_kv.c tests/test.h tfm.h examples/kv_flags.h | $(B)
	$(CC) -O2 -mavx2 -mfma -mf16c $(OMP) $(WARN) -Itests -I. $< -o $@ -lm

$(B)/san_kv_avx2: tests/test_kv.c tests/test.h tfm.h examples/kv_flags.h | $(B)
	$(CC) $(SAN) -mavx2 -mfma -mf16c $(WARN) -Itests -I. $< -o $@ -lm

# needs gcc-aarch64-linux-gnu and qemu-user (not part of make test)
.PHONY: test-neon
test-neon: | $(B)
	aarch64-linux-gnu-gcc -O2 -march=armv8.2-a+dotprod -static $(WARN) -Itests -I. tests/test_kernels.c -o $(B)/test_kernels_neon -lm
	qemu-aarch64 -cpu max $(B)/test_kernels_neon

bench: $(B)/bench $(B)/gguf-random
	@bash tools/bench-suite.sh
