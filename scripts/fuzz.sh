#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of every loader of outside
# bytes: safetensors, the files of a checkpoint (config.json, vocab.json,
# model/optimizer safetensors, tokenizer.json, trainer_state.json),
# vocab.json, tokenizer.json, metrics.jsonl, sentence-pair files and the HTTP
# request bodies of `recurrent serve`. The targets are in fuzz/fuzz_targets,
# their seed inputs in fuzz/seeds; what libFuzzer learns goes to fuzz/corpus
# (kept between runs, not committed).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]    (default 60 s, every target)
#
# Installs the nightly toolchain and cargo-fuzz when missing. Prints one line
# per target: executions, coverage (edges) and corpus size when it stopped.
# Exits non-zero when a target crashed; the input is in fuzz/artifacts/TARGET/
# (reproduce: cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...).
# FUZZ_SANITIZER=none builds without AddressSanitizer (faster; CI does so).
# FUZZ_BUILD=dev builds unoptimized with debug assertions (overflow checks):
# slower to run, about four times quicker to build; CI's short runs use it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")
if [ "${FUZZ_BUILD:-release}" = dev ]; then
    profile=(--dev)
else
    profile=(-O)
fi

cd fuzz
cargo +nightly fuzz build "${profile[@]}" "${sanitizer[@]}"
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if cargo +nightly fuzz run "${profile[@]}" "${sanitizer[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=CRASHED
        failed=1
        tail -n 40 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    line=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1 || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$line" | grep -o '[0-9]*' || echo "?")
    corp=$(grep -o 'corp: [0-9]*' <<<"$line" | grep -o '[0-9]*' || echo "?")
    printf 'fuzz %-18s %s: %s runs in %s s, coverage %s edges, corpus %s inputs\n' \
        "$target" "$status" "$runs" "$seconds" "$cov" "$corp"
    rm -f "$log"
done
exit $failed
