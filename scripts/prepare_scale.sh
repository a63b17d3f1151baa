#!/usr/bin/env bash
# Scale measurements for prepared corpora (issue 13): for generated corpora of
# the given sizes, the throughput of `recurrent prepare` and the peak resident
# memory of `recurrent prepare` and of a short `recurrent train --data`.
#
#   scripts/prepare_scale.sh [SIZE_MB ...]     (default: 100 1000)
#
# Environment: RECURRENT (the binary; default target/release/recurrent),
# WORK (scratch folder; default target/prepare-scale), DATA (the shared data
# folder with tinyshakespeare/ and wikitext-2/; default ../shared/data),
# THREADS (default 2), STEPS (training steps; default 50), TOKENIZER (default char),
# INPUT_MAX_MB (largest size also trained with --input for contrast; default 1000),
# MEMORY_LIMIT_MB (when set, `prepare` and `train --data` run in a memory
# cgroup of that limit, v2 or v1, page cache included: a corpus larger than
# the memory the processes may use; needs root).
# Each corpus and its prepared folder are deleted as soon as it is measured.
# Prints one Markdown table row per size (and one for `train --input` on the
# first size, the in-memory path, for contrast).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RECURRENT:-target/release/recurrent}
WORK=${WORK:-target/prepare-scale}
DATA=${DATA:-../shared/data}
THREADS=${THREADS:-2}
STEPS=${STEPS:-50}
TOKENIZER=${TOKENIZER:-char}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100 1000)
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }
mkdir -p "$WORK"
trap 'rm -rf "$WORK"/corpus.txt "$WORK"/data "$WORK"/run "$WORK"/run-input' EXIT

# Runs a command and prints its peak RSS in MB (getrusage of the child) on the last line.
peak() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stderr=subprocess.PIPE, text=True)
sys.stderr.write(r.stderr)
if r.returncode != 0:
    sys.exit(r.returncode)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
PY
}

# Runs a command in a memory cgroup of MEMORY_LIMIT_MB when that is set.
LIMITED=()
if [ -n "${MEMORY_LIMIT_MB:-}" ]; then
    limit=$((MEMORY_LIMIT_MB * 1024 * 1024))
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        CG=/sys/fs/cgroup/recurrent-scale-$$
        mkdir "$CG" && echo "$limit" >"$CG/memory.max"
    else
        CG=/sys/fs/cgroup/memory/recurrent-scale-$$
        mkdir "$CG" && echo "$limit" >"$CG/memory.limit_in_bytes"
    fi
    trap 'rm -rf "$WORK"/corpus.txt "$WORK"/data "$WORK"/run "$WORK"/run-input; rmdir "$CG" 2>/dev/null || true' EXIT
    LIMITED=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG")
    echo "prepare and train --data run in $CG, limited to $MEMORY_LIMIT_MB MB" >&2
fi

# Writes a corpus of about $1 MB: paragraphs of the two texts, shuffled anew
# in every round, each prefixed by its round number so no two rounds repeat.
generate() {
    python3 - "$1" "$WORK/corpus.txt" "$DATA" <<'PY'
import random, sys
target = int(sys.argv[1]) * 1_000_000
paras = []
for name in ("tinyshakespeare/input.txt", "wikitext-2/train.txt"):
    text = open(f"{sys.argv[3]}/{name}", encoding="utf-8").read()
    paras += [p for p in text.split("\n\n") if p.strip()]
written, round_ = 0, 0
with open(sys.argv[2], "w", encoding="utf-8") as out:
    while written < target:
        rng = random.Random(round_)
        order = list(range(len(paras)))
        rng.shuffle(order)
        for i in order:
            chunk = f"[{round_}] {paras[i]}\n\n"
            out.write(chunk)
            written += len(chunk.encode("utf-8"))
            if written >= target:
                break
        round_ += 1
PY
}

TRAIN_FLAGS=(--steps "$STEPS" --threads "$THREADS" --sample-length 0 --eval-every 1000000)
echo "| corpus | tokens | prepare time | MB/s overall | vocabulary pass MB/s | tokens pass MB/s | prepare peak RSS | train --data peak RSS | train --input peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
first=1
for mb in "${SIZES[@]}"; do
    generate "$mb"
    rm -rf "$WORK/data" "$WORK/run" "$WORK/run-input"
    start=$(date +%s.%N)
    prep_rss=$(peak "${LIMITED[@]}" "$BIN" prepare --input "$WORK/corpus.txt" --tokenizer "$TOKENIZER" \
        --val-fraction 0.0002 --out "$WORK/data" --threads "$THREADS" 2>"$WORK/prepare.log" | tail -1)
    end=$(date +%s.%N)
    # "vocabulary 2.0s (53.1 MB/s), tokens 2.2s (48.4 MB/s)"
    vocab_speed=$(grep -o 'vocabulary [0-9.]*s ([0-9.]* MB/s)' "$WORK/prepare.log" | grep -o '([0-9.]*' | tr -d '(' || echo -)
    token_speed=$(grep -o 'tokens [0-9.]*s ([0-9.]* MB/s)' "$WORK/prepare.log" | grep -o '([0-9.]*' | tr -d '(' || echo -)
    tokens=$(grep -o 'prepared [0-9]* tokens' "$WORK/prepare.log" | grep -o '[0-9]*')
    secs=$(python3 -c "print(f'{$end - $start:.1f}')")
    overall=$(python3 -c "print(f'{$mb / ($end - $start):.1f}')")
    train_rss=$(peak "${LIMITED[@]}" "$BIN" train --data "$WORK/data" --out "$WORK/run" "${TRAIN_FLAGS[@]}" \
        2>"$WORK/train.log" | tail -1) || { cat "$WORK/train.log" >&2; exit 1; }
    input_rss="-"
    # The in-memory path needs several bytes of memory per byte of text: only small sizes.
    if [ $first = 1 ] && [ "$mb" -le "${INPUT_MAX_MB:-1000}" ]; then
        input_rss=$(peak "$BIN" train --input "$WORK/corpus.txt" --tokenizer "$TOKENIZER" \
            --val-fraction 0.0002 --out "$WORK/run-input" "${TRAIN_FLAGS[@]}" \
            2>"$WORK/train.log" | tail -1) || { cat "$WORK/train.log" >&2; exit 1; }
        input_rss=$(printf '%.0f MB' "$input_rss")
        first=0
    fi
    du -sh "$WORK/data" >&2
    if [ -n "${CG:-}" ]; then
        for f in memory.peak memory.max_usage_in_bytes memory.events memory.failcnt; do
            [ -f "$CG/$f" ] && echo "$f: $(tr '\n' ' ' <"$CG/$f")" >&2
        done
    fi
    printf '| %s MB | %s | %s s | %s | %s | %s | %.0f MB | %.0f MB | %s |\n' "$mb" "$tokens" \
        "$secs" "$overall" "$vocab_speed" "$token_speed" "$prep_rss" "$train_rss" "$input_rss"
    rm -rf "$WORK/corpus.txt" "$WORK/data" "$WORK/run" "$WORK/run-input"
done
