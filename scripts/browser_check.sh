#!/usr/bin/env bash
# Browser check of `recurrent inspect`: trains a tiny character LSTM on the
# built-in corpus, writes its inspect view of a short text, and takes a
# headless Chromium screenshot of the page (default docs/img/inspect.png).
# Look at the picture: the text coloured by surprisal, the unit view, the
# ranked units and the gate plots should all be drawn.
#
#   scripts/browser_check.sh [OUT.png]
#
# Needs Debian's chromium (`apt-get install -y chromium`); exits 0 with a
# message when it is absent, so CI without a browser passes.
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-docs/img/inspect.png}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
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
