#!/usr/bin/env bash
# Crash campaign of the server (issue 16): `kill -9` `recurrent serve` at random
# instants while clients stream completions from it, then check that nothing
# was lost or left behind and that a new server comes up at once.
#
# One tiny model is trained first; its run folder is hashed. Each trial starts
# `recurrent serve RUN --port P`, waits for /health, starts four clients that
# stream long completions (curl, bounded by --max-time), kills the server
# after a random 0.05-1.5 s, and checks:
#   - every client ended within its bound (none hangs on the dead server);
#   - the run folder is byte for byte what it was, with no new file
#     (serving only reads: no lock, no temporary);
#   - a new server on the same port answers /health within 5 s and serves a
#     completion (no stale socket or lock blocks it); it is then stopped with
#     SIGTERM and must exit 0 within 5 s (graceful shutdown).
#
# Usage: scripts/crash_campaign_serve.sh [TRIALS] [BINARY]
#   TRIALS defaults to 100; BINARY to target/debug/recurrent (built if missing).
set -uo pipefail
cd "$(dirname "$0")/.."
trials=${1:-100}
bin=${2:-${CARGO_TARGET_DIR:-target}/debug/recurrent}
if [[ ! -x $bin ]]; then
    cargo build --bin recurrent || exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/crash-serve.XXXXXX")
server=
cleanup() {
    [[ -n $server ]] && kill -9 "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

run=$work/run
"$bin" train --out "$run" --layers 1 --hidden 64 --embed 16 --steps 20 --threads 1 \
    --sample-length 0 >"$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
snapshot() { (cd "$run" && find . -type f | sort | xargs sha256sum); }
snapshot >"$work/before.sums"

# A free port: the kernel picks one for a throwaway listener.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port

start_server() { # starts the server in the background; sets $server
    "$bin" serve "$run" --port "$port" --threads 1 >"$work/serve.log" 2>&1 &
    server=$!
}
wait_healthy() { # waits up to $1 seconds for /health
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        curl -sf --max-time 1 "$url/health" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}
complete() { # one completion; prints its HTTP status
    curl -s -o "$work/completion.json" -w '%{http_code}' --max-time 10 "$url/v1/completions" \
        -H 'content-type: application/json' \
        -d '{"model":"run","prompt":"The ","max_tokens":20,"seed":1}'
}

declare -A count
bump() { count[$1]=$(( ${count[$1]:-0} + 1 )); }
fail() { bump failed; echo "trial $1: FAILED: $2" >&2; }

started=$(date +%s)
for ((t = 1; t <= trials; t++)); do
    ok=1
    start_server
    if ! wait_healthy 30; then
        fail "$t" "the server did not come up: $(tail -3 "$work/serve.log")"
        kill -9 "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=
        continue
    fi
    clients=()
    for c in 1 2 3 4; do
        curl -sN --max-time 20 "$url/v1/completions" -H 'content-type: application/json' \
            -d "{\"model\":\"run\",\"prompt\":\"$c\",\"max_tokens\":4000,\"stream\":true,\"seed\":$c}" \
            >"$work/client-$c.log" 2>&1 &
        clients+=($!)
    done
    delay=$(awk -v seed="$RANDOM$t" 'BEGIN { srand(seed); printf "%.2f", 0.05 + rand() * 1.45 }')
    sleep "$delay"
    kill -9 "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    server=
    # Every client must end soon after its server died.
    deadline=$((SECONDS + 5))
    for pid in "${clients[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
        if kill -0 "$pid" 2>/dev/null; then
            ok=0; bump client_hung; fail "$t" "a client was still waiting 5 s after the kill"
            kill -9 "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    if grep -q '"text"' "$work"/client-*.log 2>/dev/null; then bump streamed_before_kill; fi
    # Nothing in the run folder changed or appeared.
    if ! snapshot | cmp -s - "$work/before.sums"; then
        ok=0; fail "$t" "the run folder changed: $(snapshot | diff - "$work/before.sums" | head -3)"
    fi
    # A new server on the same port comes up and serves.
    start_server
    if wait_healthy 5; then
        status=$(complete)
        if [[ $status == 200 ]] && grep -q '"text"' "$work/completion.json"; then
            bump restarted
        else
            ok=0; fail "$t" "the new server answered $status: $(head -c 300 "$work/completion.json")"
        fi
    else
        ok=0; fail "$t" "no new server on port $port within 5 s: $(tail -3 "$work/serve.log")"
    fi
    kill -TERM "$server" 2>/dev/null
    deadline=$((SECONDS + 5))
    while kill -0 "$server" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$server" 2>/dev/null; then
        ok=0; fail "$t" "SIGTERM did not stop the server within 5 s"
        kill -9 "$server" 2>/dev/null
    fi
    wait "$server" 2>/dev/null
    code=$?
    server=
    if [[ $code -ne 0 ]]; then
        ok=0; fail "$t" "after SIGTERM the server exited with $code: $(tail -3 "$work/serve.log")"
    fi
    ((ok)) && bump passed
done
elapsed=$(( $(date +%s) - started ))

echo "server crash campaign: $trials trials in ${elapsed}s with $bin"
echo "  ${count[passed]:-0} of $trials trials passed every check"
echo "  ${count[streamed_before_kill]:-0} of $trials kills came while clients were receiving text"
echo "  ${count[client_hung]:-0} clients still waiting 5 s after the kill"
echo "  ${count[restarted]:-0} of $trials new servers on the same port served a completion within 5 s"
echo "  ${count[failed]:-0} failures"
[[ ${count[failed]:-0} -eq 0 ]]
