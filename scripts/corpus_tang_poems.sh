#!/usr/bin/env bash
# A large-vocabulary benchmark corpus: the Complete Tang Poems (全唐詩,
# traditional characters; public domain) from the npm package
# chinese-poetry@2.0.1 (MIT), one verse line per line and a blank line
# between poems: about 10.8 MB, 57,559 poems, 9,384 distinct characters
# (319 of them outside the Basic Multilingual Plane). Editorial notes
# （一作…）, glyph descriptions {…} and lines with □, digits or Latin
# letters are dropped. Used by the corpus-fitted defaults' measurements
# (issue 14); never committed.
#
#   scripts/corpus_tang_poems.sh [OUT]    (default target/tang-poems.txt)
# Needs npm (the registry is reachable) and python3; downloads 85 MB once.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/tang-poems.txt}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack chinese-poetry@2.0.1 --silent >/dev/null \
    && tar xzf chinese-poetry-2.0.1.tgz --wildcards 'package/dist/quantangshi/poet.tang.*')
python3 - "$work/package/dist/quantangshi" "$out" <<'PY'
import glob, json, os, re, sys
folder, out = sys.argv[1:]
def natural(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]
def clean(line):
    while True:  # notes nest: （一作（…））
        shorter = re.sub(r"（[^（）]*）", "", line)
        if shorter == line:
            break
        line = shorter
    return re.sub(r"\{[^{}]*\}", "", line).replace("[", "").replace("]", "").strip()
poems = 0
with open(out, "w", encoding="utf-8") as w:
    for path in sorted(glob.glob(os.path.join(folder, "poet.tang.*.json")), key=natural):
        for poem in json.load(open(path, encoding="utf-8")):
            lines = [clean(l) for l in poem.get("paragraphs", [])]
            lines = [l for l in lines if l and not re.search(r"[〖〗0-9A-Za-z（）□]", l)]
            if lines:
                w.write("\n".join(lines) + "\n\n")
                poems += 1
text = open(out, encoding="utf-8").read()
print(f"{out}: {poems} poems, {len(text.encode()) / 1e6:.2f} MB, {len(set(text))} distinct characters")
PY
