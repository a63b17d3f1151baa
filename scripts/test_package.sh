#!/usr/bin/env bash
# The Python package's tests alone (tests/python/test_package.py), built and
# installed as scripts/test_python.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
RECURRENT_REQUIRE_PACKAGE=1 exec scripts/test_python.sh tests/python/test_package.py "$@"
