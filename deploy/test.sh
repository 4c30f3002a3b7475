#!/usr/bin/env bash
# Install what is missing, build with warnings as errors and ASan + UBSan into
# build/, build the Release configuration operators install (docs/operations.md)
# with warnings as errors into build-release/ and run its unit tests, then run
# every test of build/ (unit, integration, browser, fuzz replays, soak and
# bench smoke runs). Then, when clang is installed, a fuzz smoke run: the
# libFuzzer targets built into build-fuzz/ and each run for
# BFR_FUZZ_SMOKE_SECONDS (10) seconds (tests/fuzz/campaign.sh). Exit status
# non-zero on any failure. BFR_SKIP_DEPS=1 skips the dependency check,
# BFR_SKIP_FUZZ=1 the fuzz smoke run.
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
# -O2 without sanitizers warns where the sanitizer build does not
# (maybe-uninitialized, format-truncation): what operators build must be clean.
# Everything is built, tests included; grep also catches linker warnings.
echo "test.sh: configure build-release/ (Ninja, Release, -Werror, no sanitizers)"
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DBFR_WERROR=ON \
	-DBFR_SANITIZE=OFF
echo "test.sh: build build-release/"
cmake --build build-release -j "$JOBS" 2>&1 | tee build-release/build.log
if grep -q "warning:" build-release/build.log; then
	echo "test.sh: the Release build printed warnings (above)" >&2
	exit 1
fi
# ~10 s: optimised code without sanitizers must pass too. Integration tests
# run once, on build/.
echo "test.sh: unit tests of build-release/"
ctest --test-dir build-release --output-on-failure -j "$JOBS" -L unit
echo "test.sh: test"
ctest --test-dir build --output-on-failure -j "$JOBS"

if [ "${BFR_SKIP_FUZZ:-0}" != 1 ] && command -v clang >/dev/null 2>&1; then
	echo "test.sh: fuzz smoke run (build-fuzz/, clang, ${BFR_FUZZ_SMOKE_SECONDS:-10} s per target)"
	smoke=$(mktemp -d)
	trap 'rm -rf "$smoke"' EXIT
	CC=clang cmake -S . -B build-fuzz -G Ninja -DBFR_WERROR=ON -DBFR_SANITIZE=ON -DBFR_FUZZ=ON \
		>/dev/null
	tests/fuzz/campaign.sh -b build-fuzz -o "$smoke" "${BFR_FUZZ_SMOKE_SECONDS:-10}"
else
	echo "test.sh: no clang (or BFR_SKIP_FUZZ=1): fuzz smoke run skipped; the fuzz inputs were replayed by ctest"
fi
