#!/usr/bin/env bash
# Crash campaign (issue 16): `kill -9` training at random instants, then check
# that what it left loads and resumes, and that the resume leaves nothing behind.
#
# Each trial trains a tiny LSTM on the built-in corpus into a fresh run folder,
# validating every 10 steps and (when the binary has --save-every) writing
# last/ every 3 steps, kills it after a random 0.2-4 s, and then checks:
#   - best/ and last/, when present, load (`recurrent info`);
#   - `--resume` continues (a few more steps, exit 0) and moves the step on;
#   - after the resume, no temporaries (*.tmp-*), no *.old and no run.lock are left;
#   - while the first run holds the folder, a second `train --resume` into it
#     fails at once naming the process (checked when the lock is already taken).
# A kill before the first save leaves no last/; then a new run into the folder
# must start instead.
#
# Usage: scripts/crash_campaign.sh [TRIALS] [BINARY]
#   TRIALS defaults to 100; BINARY to target/debug/recurrent (built if missing).
#   Every trial is bounded: a resume trains for 1 s, a whole trial takes ~5-10 s.
set -uo pipefail
cd "$(dirname "$0")/.."
trials=${1:-100}
bin=${2:-${CARGO_TARGET_DIR:-target}/debug/recurrent}
if [[ ! -x $bin ]]; then
    cargo build --bin recurrent || exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/crash-campaign.XXXXXX")
trap 'rm -rf "$work"' EXIT

model=(--layers 1 --hidden 32 --embed 16 --seq-len 32 --batch 8 --threads 1
       --sample-length 0 --eval-every 10 --steps 1000000)
if "$bin" train --help | grep -q -- --save-every; then
    model+=(--save-every 3)
fi

step_of() { # the step a checkpoint folder was saved at
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["trainer"]["step"])' \
        "$1/trainer_state.json" 2>/dev/null || echo "?"
}
leftovers() { # temporaries, .old folders and lock files in a run folder
    find "$1" -maxdepth 1 \( -name '*.tmp-*' -o -name '*.old' -o -name run.lock \) -printf '%f\n' |
        sed -E 's/[0-9]+/N/g' | sort | tr '\n' ' '
}

declare -A count
declare -a litter
bump() { count[$1]=$(( ${count[$1]:-0} + 1 )); }
fail() { bump failed; echo "trial $1: FAILED: $2" >&2; }

started=$(date +%s)
for ((t = 1; t <= trials; t++)); do
    out=$work/run-$t
    "$bin" train --out "$out" "${model[@]}" >"$work/train.log" 2>&1 &
    pid=$!
    delay=$(awk -v seed="$RANDOM$t" 'BEGIN { srand(seed); printf "%.2f", 0.2 + rand() * 3.8 }')
    sleep "$delay"
    if [[ -f $out/run.lock ]] && [[ $(cat "$out/run.lock" 2>/dev/null) == "$pid" ]] &&
        kill -0 "$pid" 2>/dev/null; then
        # The first run holds the folder: a second one must fail at once, naming it.
        if second=$("$bin" train --resume "$out" --time 1s --sample-length 0 2>&1); then
            fail "$t" "a second run into the folder of process $pid succeeded"
        elif grep -q "in use by process $pid" <<<"$second"; then
            bump lock_refused
        else
            fail "$t" "a second run failed without naming process $pid: $second"
        fi
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [[ -f $out/run.lock ]] && bump left_lock
    left=$(leftovers "$out" | sed 's/run.lock //')
    [[ -n $left ]] && { bump left_litter; litter[$t]=$left; }

    ok=1
    for slot in best last; do
        if [[ -d $out/$slot || -d $out/$slot.old ]]; then
            bump "has_$slot"
            if ! "$bin" info "$out/$slot" >/dev/null 2>"$work/info.log"; then
                ok=0; fail "$t" "$slot/ does not load: $(cat "$work/info.log")"
            fi
        fi
    done
    if [[ -d $out/last || -d $out/last.old ]]; then
        before=$(step_of "$out/last"); [[ $before == "?" ]] && before=$(step_of "$out/last.old")
        if "$bin" train --resume "$out" --time 1s --sample-length 0 >"$work/resume.log" 2>&1; then
            after=$(step_of "$out/last")
            if [[ $before != "?" && $after != "?" && $after -gt $before ]]; then
                bump resumed
            else
                ok=0; fail "$t" "the resume did not move on (step $before -> $after)"
            fi
        else
            ok=0; fail "$t" "the resume failed: $(tail -3 "$work/resume.log")"
        fi
    else
        # Killed before the first save: a new run into the folder must start.
        bump no_last
        if "$bin" train --out "$out" "${model[@]/1000000/3}" >"$work/restart.log" 2>&1; then
            bump restarted
        else
            ok=0; fail "$t" "a new run into the folder failed: $(tail -3 "$work/restart.log")"
        fi
    fi
    left_after=$(leftovers "$out")
    if [[ -n $left_after ]]; then
        ok=0; bump litter_after_resume; fail "$t" "left after the resume: $left_after"
    fi
    ((ok)) && bump passed
    rm -rf "$out"
done
elapsed=$(( $(date +%s) - started ))

echo "crash campaign: $trials trials in ${elapsed}s with $bin"
echo "  ${count[passed]:-0} of $trials trials passed every check"
echo "  ${count[has_best]:-0} of $trials left a best/ and ${count[has_last]:-0} a last/ (or .old); all that were there loaded unless failures are listed"
echo "  ${count[resumed]:-0} of ${count[has_last]:-0} with a last/ resumed and moved on; ${count[restarted]:-0} of ${count[no_last]:-0} killed before the first save restarted"
echo "  ${count[left_litter]:-0} of $trials kills left temporaries or .old folders (${count[left_lock]:-0} a run.lock); ${count[litter_after_resume]:-0} of $trials had any of them after the resume"
echo "  ${count[lock_refused]:-0} second runs into a folder in use were refused naming the process"
for t in "${!litter[@]}"; do echo "${litter[$t]}"; done | sort | uniq -c | sed 's/^/    kills that left: /' 
echo "  ${count[failed]:-0} failures"
[[ ${count[failed]:-0} -eq 0 ]]
