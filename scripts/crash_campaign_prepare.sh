#!/usr/bin/env bash
# Crash campaign of `recurrent prepare` (issue 16): `kill -9` it at random
# instants while it tokenizes a corpus, then check that what it left is
# either a whole prepared folder or nothing a user could mistake for one.
#
# A 60 MB corpus (tiny-shakespeare repeated) is made once. Each trial runs
# `recurrent prepare --input corpus --out data` and kills it after a random
# 0.02-2.5 s (a few finish first), then checks:
#   - when data/manifest.json exists, the folder verifies: `recurrent train
#     --data data` trains 2 steps (it checks sizes and the manifest);
#   - when it does not, `train --data data` fails with one clear error (no
#     panic), and a new `prepare` into the same folder completes and trains;
#   - after that, no temporary (*.tmp*) is left in the folder or beside it.
#
# Usage: scripts/crash_campaign_prepare.sh [TRIALS] [BINARY] [TEXT]
#   TRIALS defaults to 100; BINARY to target/debug/recurrent (built if
#   missing); TEXT to ../shared/data/tinyshakespeare/input.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
trials=${1:-100}
bin=${2:-${CARGO_TARGET_DIR:-target}/debug/recurrent}
text=${3:-../shared/data/tinyshakespeare/input.txt}
if [[ ! -x $bin ]]; then
    cargo build --bin recurrent || exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/crash-prepare.XXXXXX")
trap 'rm -rf "$work"' EXIT
for _ in $(seq 60); do cat "$text"; done | head -c 60000000 >"$work/corpus.txt"

tiny=(--layers 1 --hidden 16 --embed 8 --batch 4 --seq-len 16 --steps 2 --threads 1
      --sample-length 0)
declare -A count
bump() { count[$1]=$(( ${count[$1]:-0} + 1 )); }
fail() { bump failed; echo "trial $1: FAILED: $2" >&2; }
trains() { # trains 2 steps on a prepared folder into a fresh run
    rm -rf "$work/run"
    "$bin" train --data "$1" "${tiny[@]}" --out "$work/run" >"$work/train.log" 2>&1
}
litter() { # temporaries in or beside the prepared folder
    find "$work" -maxdepth 2 -name '*.tmp*' -printf '%P\n' | sort | tr '\n' ' '
}

started=$(date +%s)
for ((t = 1; t <= trials; t++)); do
    data=$work/data
    rm -rf "$data"
    "$bin" prepare --input "$work/corpus.txt" --out "$data" --threads 2 >"$work/prepare.log" 2>&1 &
    pid=$!
    delay=$(awk -v seed="$RANDOM$t" 'BEGIN { srand(seed); printf "%.2f", 0.02 + rand() * 2.48 }')
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then bump killed; else bump finished_first; fi
    wait "$pid" 2>/dev/null
    ok=1
    if [[ -f $data/manifest.json ]]; then
        bump left_manifest
        if trains "$data"; then bump whole_trained; else
            ok=0; fail "$t" "a folder with a manifest does not train: $(tail -2 "$work/train.log")"
        fi
    else
        bump left_no_manifest
        if trains "$data"; then
            ok=0; fail "$t" "training on a folder without a manifest succeeded"
        elif grep -q panicked "$work/train.log" || [[ $(grep -c '^error:' "$work/train.log") -ne 1 ]]; then
            ok=0; fail "$t" "no single clear error: $(tail -3 "$work/train.log")"
        fi
        if "$bin" prepare --input "$work/corpus.txt" --out "$data" --threads 2 >"$work/prepare.log" 2>&1 &&
            trains "$data"; then
            bump redone
        else
            ok=0; fail "$t" "preparing again failed: $(tail -2 "$work/prepare.log" "$work/train.log")"
        fi
    fi
    left=$(litter)
    if [[ -n $left ]]; then ok=0; bump litter; fail "$t" "left behind: $left"; fi
    ((ok)) && bump passed
done
elapsed=$(( $(date +%s) - started ))

echo "prepare crash campaign: $trials trials in ${elapsed}s with $bin"
echo "  ${count[passed]:-0} of $trials trials passed every check"
echo "  ${count[killed]:-0} killed mid-way, ${count[finished_first]:-0} finished before the kill"
echo "  ${count[left_manifest]:-0} left a folder with a manifest (${count[whole_trained]:-0} trained);" \
     "${count[left_no_manifest]:-0} left none (${count[redone]:-0} prepared again and trained)"
echo "  ${count[litter]:-0} trials left temporaries after the checks"
echo "  ${count[failed]:-0} failures"
[[ ${count[failed]:-0} -eq 0 ]]
