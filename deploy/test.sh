#!/usr/bin/env bash
# Install what is missing, build with warnings as errors and ASan + UBSan into
# build/, run every test (unit and integration). Exit status non-zero on any
# failure. BFR_SKIP_DEPS=1 skips the dependency check.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${BFR_JOBS:-2}

if [ "${BFR_SKIP_DEPS:-0}" != 1 ]; then
	bash deploy/install-deps.sh
fi

echo "test.sh: configure build/ (Ninja, -Werror, ASan + UBSan)"
cmake -S . -B build -G Ninja -DBFR_WERROR=ON -DBFR_SANITIZE=ON
echo "test.sh: build"
cmake --build build -j "$JOBS"
echo "test.sh: test"
ctest --test-dir build --output-on-failure -j "$JOBS"
