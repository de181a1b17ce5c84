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

EXAMPLES := $(B)/run $(B)/bench $(B)/kv_eval
TOOLS    := $(B)/llama2c-to-gguf $(B)/gguf-random $(B)/convert $(B)/train
KERNEL_TESTS := $(B)/test_kernels $(if $(filter x86_64 amd64,$(shell uname -m)),$(B)/test_kernels_avx2)
TESTS    := $(B)/test_models $(B)/test_gguf $(KERNEL_TESTS)

.PHONY: all run test test-san bench model firmware clean
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

test: $(TESTS) $(TESTS:$(B)/test_%=$(B)/san_%)
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done
	@set -e; for t in $(TESTS:$(B)/test_%=$(B)/san_%); do echo "== $$t (ASan+UBSan)"; $$t; done
	@bash tests/test_build.sh
	@bash tests/fuzz_gguf.sh 10
	@echo "make test: all passed"

clean:
	rm -rf $(B)

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
