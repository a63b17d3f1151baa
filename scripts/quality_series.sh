#!/usr/bin/env bash
# A documented real run of `recurrent series` (docs/SERIES.md): weekly CO2 at
# Mauna Loa (statsmodels' `co2` dataset, March 1958 to December 2001, 2284
# weeks), exported to CSV, trained on the first 70% of the weeks, validated on
# the next 15%, and scored on the last 15% against the seasonal-naive forecast
# (the value 52 weeks earlier).
#
#   scripts/quality_series.sh            # everything under target/quality_series/
#   OUT=/tmp/co2 scripts/quality_series.sh
#
# statsmodels is installed from PyPI into a throwaway venv under target/ the
# first time. The missing weeks of the dataset (59 of them) are filled by
# linear interpolation before export, as statsmodels' own examples do.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/quality_series}
VENV=${VENV:-target/statsvenv}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import statsmodels" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q statsmodels
fi
mkdir -p "$OUT"
"$VENV/bin/python" - "$OUT/co2.csv" <<'PY'
import sys
import statsmodels.api as sm

data = sm.datasets.co2.load_pandas().data  # weekly means, ppm; some weeks missing
print(f"{len(data)} weeks, {int(data['co2'].isna().sum())} missing (interpolated)", file=sys.stderr)
data = data.interpolate()
data.index.name = "week"
data.to_csv(sys.argv[1], float_format="%.3f")
PY

cargo build --bin recurrent
BIN="$CARGO_TARGET_DIR/debug/recurrent"
rm -rf "$OUT/run"
# Two years of weeks in, a quarter out; MSE; the rest are the command's defaults.
"$BIN" series train --csv "$OUT/co2.csv" --columns co2 --target co2 \
    --window 104 --horizon 13 --hidden 64 --epochs 20 --patience 5 \
    --seed 1 --threads "$THREADS" --out "$OUT/run"
echo "--- held-out tail, direct forecasts (13 weeks from every origin) ---"
"$BIN" series eval "$OUT/run" --csv "$OUT/co2.csv" --season 52 --threads "$THREADS"
"$BIN" series eval "$OUT/run" --csv "$OUT/co2.csv" --season 52 --threads "$THREADS" --json \
    > "$OUT/eval_direct.json"
echo "--- held-out tail, recursive forecasts ---"
"$BIN" series eval "$OUT/run" --csv "$OUT/co2.csv" --season 52 --method recursive \
    --threads "$THREADS"
"$BIN" series eval "$OUT/run" --csv "$OUT/co2.csv" --season 52 --method recursive \
    --threads "$THREADS" --json > "$OUT/eval_recursive.json"
echo "--- the 13 weeks after the data ---"
"$BIN" series forecast "$OUT/run" --csv "$OUT/co2.csv" --steps 13 --threads "$THREADS"
