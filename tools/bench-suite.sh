#!/bin/bash
# make bench: prefill and decode tokens/s of three model shapes x four weight types x 1 and 2
# threads, on random-weight GGUFs (written once into build/models-bench by build/gguf-random),
# as a Markdown table next to llama.cpp's figures for the same shapes (llama-bench -p 128 -n 64,
# c392e509, measured on this kind of machine). JSON lines of every run go to build/bench.jsonl.
# SUITES=3 runs the whole suite three times and each cell shows the median of the three: on a
# shared host bandwidth drifts by tens of percent over minutes, and repeating a file at once
# would keep its runs in the same drift. TABLE_ONLY=FILE prints the table of a saved bench.jsonl.
#   SHAPES="s15m s110m tl1b" TYPES="f32 f16 q8_0 q4_0" THREADS="1 2" REPS=3 SUITES=1 bash tools/bench-suite.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=build
DIR=$B/models-bench
SHAPES=${SHAPES:-"s15m s110m tl1b"}
TYPES=${TYPES:-"f32 f16 q8_0 q4_0"}
THREADS=${THREADS:-"1 2"}
REPS=${REPS:-3}
SUITES=${SUITES:-1}
# Inside a forward pass tfm.h's threads wait for each other with their own barrier (spin, then
# sleep); OMP_WAIT_POLICY only decides how they wait between passes. Left to the environment.
# The thread count is fixed (bench -f, no thread governor), as llama-bench's -t is: each cell
# compares the same file on the same number of threads.
OUT=$B/bench.jsonl
# Files written by an older gguf-random are written again (bump when its output changes;
# 2: the head and embedding in the named type too).
GEN=2
mkdir -p "$DIR"
if [ "$(cat "$DIR/GEN" 2>/dev/null)" != "$GEN" ]; then rm -f "$DIR"/*.gguf; echo "$GEN" > "$DIR/GEN"; fi

shape_args() {
    case $1 in
    s15m)  echo "--dim 288 --layers 6 --heads 6 --kv-heads 6 --ffn 768 --vocab 32000 --ctx 256" ;;
    s110m) echo "--dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32000 --ctx 1024" ;;
    tl1b)  echo "--dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000 --ctx 2048" ;;
    *) echo "unknown shape $1" >&2; exit 2 ;;
    esac
}

if [ -n "${TABLE_ONLY:-}" ]; then OUT=$TABLE_ONLY; else
: > "$OUT"
for suite in $(seq 1 "$SUITES"); do
    for shape in $SHAPES; do
        for type in $TYPES; do
            f=$DIR/$shape-$type.gguf
            if [ ! -s "$f" ]; then
                # shellcheck disable=SC2046
                $B/gguf-random $(shape_args "$shape") --type "$type" "$f.tmp" >&2 && mv "$f.tmp" "$f"
            fi
            # Drop the file from the page cache and read it back through tfm.h's mapping (which asks
            # for huge pages), so the cache holds it in 2 MB folios, as on a machine that has served
            # the model before; start-up then measures mapping and the first token, not the disk.
            # (a file just written is dirty in the cache and cannot be dropped: write it out first)
            sync "$f" 2>/dev/null || sync
            dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true
            $B/bench -m "$f" -t 1 -p 1 -n 1 -r 1 > /dev/null
            for t in $THREADS; do
                line=$($B/bench -m "$f" -t "$t" -r "$REPS" -f)
                echo "$line" | tee -a "$OUT" >&2
            done
        done
    done
done
fi

/usr/bin/python3 - "$OUT" <<'EOF'
import json, sys, os
# llama.cpp c392e509, llama-bench -p 128 -n 64, tokens/s: (prefill t1, decode t1, prefill t2, decode t2)
REF = {
    ("s15m", "F32"): (7326, 479, 9980, 638), ("s15m", "F16"): (7241, 427, 13187, 787),
    ("s15m", "Q8_0"): (8160, 1597, 14863, 2230), ("s15m", "Q4_0"): (12415, 2167, 22207, 3059),
    ("s110m", "F32"): (751, 67, 1319, 87), ("s110m", "F16"): (802, 131, 1398, 191),
    ("s110m", "Q8_0"): (731, 220, 1291, 234), ("s110m", "Q4_0"): (1200, 310, 1794, 393),
    ("tl1b", "F32"): (60, 8.6, 117, 15.7), ("tl1b", "F16"): (93, 16.0, 170, 26.3),
    ("tl1b", "Q8_0"): (75, 25.2, 141, 38.5), ("tl1b", "Q4_0"): (120, 38.5, 230, 65.7),
}
NAMES = {"s15m": "stories15M-like", "s110m": "stories110M-like", "tl1b": "TinyLlama-1.1B shape"}
import statistics
lines = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    shape = os.path.basename(r["model"]).split("-")[0]
    lines.setdefault((shape, r["type"], r["threads"]), []).append(r)
runs = {}  # each number the median over the suite runs
for k, rs in lines.items():
    runs[k] = dict(rs[0], **{f: statistics.median(r[f] for r in rs) for f in rs[0] if isinstance(rs[0][f], (int, float))})
n_suites = max(len(rs) for rs in lines.values()) if lines else 0
def fmt(x): return f"{x:.0f}" if x >= 100 else f"{x:.1f}"
def cell(v, ref):
    if v is None: return "-"
    return f"{fmt(v)} / {fmt(ref)} ({v / ref:.2f}x)"
print("| shape | type | prefill t1 | decode t1 | prefill t2 | decode t2 | decode / bandwidth limit t1, t2 | start-up ms t1, t2 | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|")
for (shape, typ), ref in REF.items():
    r1, r2 = runs.get((shape, typ, 1)), runs.get((shape, typ, 2))
    if not r1 and not r2: continue
    g = lambda r, k: r[k] if r else None
    bw = " , ".join(f"{100 * r['bw_fraction']:.0f}% of {r['bw_limit_tps']:.3g} ({r['bandwidth_gbs']:.0f} GB/s)" for r in (r1, r2) if r)
    r0 = r1 or r2
    up = ", ".join("%.0f" % r["startup_ms"] for r in (r1, r2) if r)
    print(f"| {NAMES[shape]} | {typ} | {cell(g(r1, 'prefill_tps'), ref[0])} | {cell(g(r1, 'decode_tps'), ref[1])} | "
          f"{cell(g(r2, 'prefill_tps'), ref[2])} | {cell(g(r2, 'decode_tps'), ref[3])} | {bw} | {up} | {r0['peak_rss_mb']:.0f} |")
print()
first = next(iter(runs.values()), {})
pol = first.get("omp_wait_policy", "?")
# where the lines ran, as bench wrote it into each line (lines before 2026-12-07 lack it)
cpu, kernels = first.get("cpu", "not recorded"), first.get("kernels", "not recorded")
print(f"Medians of {n_suites} suite run(s). OMP_WAIT_POLICY={pol}. Cells: tfm.h / llama.cpp tokens/s (ratio; llama.cpp's "
      f"figures are from an AVX-512 Zen 5). Machine: {cpu}, tfm.h kernels {kernels}.")
EOF
