#!/usr/bin/env bash
# Browser check and screenshots of the pages: trains a small character LSTM
# on the built-in corpus, writes its `recurrent inspect` view of a short text
# and takes a headless Chromium screenshot of it (default
# docs/img/inspect.png), then serves the model and runs the playground's
# browser test (tests/python/test_playground.py) on it, which saves a
# screenshot of the playground (default docs/img/playground.png). Look at the
# pictures: the text coloured by surprisal, the unit view, the ranked units
# and the gate plots should all be drawn.
#
#   scripts/browser_check.sh [INSPECT.png [PLAYGROUND.png]]
#
# Needs Debian's chromium and chromium-driver; exits 0 with a message when
# chromium is absent.
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-docs/img/inspect.png}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
playground=${2:-docs/img/playground.png}
case "$playground" in /*) ;; *) playground="$PWD/$playground" ;; esac
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "browser_check: chromium is not installed; skipping (apt-get install -y chromium)"
    exit 0
fi

cargo build --quiet --bin recurrent
bin=$(realpath "${CARGO_TARGET_DIR:-target}/debug/recurrent")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! "$bin" train --out "$work/run" --layers 2 --hidden 48 --embed 16 --steps 800 \
    --seq-len 64 --batch 16 --lr 3e-3 --threads 2 --sample-length 0 --seed 1 >"$work/train.log" 2>&1; then
    cat "$work/train.log"
    exit 1
fi
cat >"$work/probe.txt" <<'TEXT'
The model reads "one character at a time" (and keeps a state).
Run `recurrent train --input novel.txt` to train it; then sample [with a seed]:
    let text = generator.generate(&options, |_, piece| out.push_str(piece))?;
TEXT
(cd "$work" && "$bin" inspect run --input probe.txt --out view.html --threads 2)
# The page's script ran without errors when it drew every section.
dom=$("$browser" --headless --no-sandbox --disable-gpu --dump-dom "file://$work/view.html" 2>/dev/null)
for section in "<h2>Surprisal</h2>" "<h2>Hidden units</h2>" "<h2>Gate saturation</h2>" \
    "<h3>bracket depth</h3>" 'data-i="0"' "<circle"; do
    if ! grep -q "$section" <<<"$dom"; then
        echo "browser_check: the page did not draw $section"
        exit 1
    fi
done

mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --screenshot="$out" --window-size=1200,900 "file://$work/view.html" 2>/dev/null
[ -s "$out" ] || { echo "browser_check: chromium wrote no screenshot"; exit 1; }
echo "browser_check: wrote $out ($(wc -c <"$out") bytes)"

RECURRENT_BINARY="$bin" RECURRENT_CHECKPOINT="$work/run" RECURRENT_SCREENSHOT="$playground" \
    RECURRENT_REQUIRE_BROWSER=1 RECURRENT_BINARY_BUILT=1 \
    scripts/test_python.sh -q tests/python/test_playground.py
echo "browser_check: wrote $playground ($(wc -c <"$playground") bytes)"
